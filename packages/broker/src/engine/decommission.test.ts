import { describe, expect, it } from 'vitest';
import { removalRefusal, type RemovalView } from './decommission.js';

const topic = (name: string, replicationFactor: number, replicas: string[][]): RemovalView['topics'][number] => ({ topic: name, replicationFactor, partitions: replicas.map((r) => ({ replicas: r })) });

describe('removalRefusal', () => {
  const five: RemovalView = { broker: 'b5', voters: ['b1', 'b2', 'b3'], learners: ['b4', 'b5'], replicationFactor: 3, topics: [topic('orders', 3, [['b1', 'b2', 'b3']])] };

  it('lets a member that holds no replica go while enough brokers remain', () => {
    expect(removalRefusal(five)).toBeUndefined();
    expect(removalRefusal({ ...five, broker: 'b4' })).toBeUndefined();
  });

  it('refuses when fewer brokers than the replication factor would remain, naming the topic', () => {
    const three: RemovalView = { broker: 'b3', voters: ['b1', 'b2', 'b3'], learners: [], replicationFactor: 2, topics: [topic('orders', 3, [['b1', 'b2', 'b3']])] };
    expect(removalRefusal(three)).toEqual({
      code: 'FORBIDDEN',
      message: 'removing broker b3 would leave 2 brokers, fewer than the replication factor of topic orders (3): add a broker first',
    });
    // No topic that wide: the configured factor counts.
    expect(removalRefusal({ ...three, topics: [], replicationFactor: 3 })?.message).toBe('removing broker b3 would leave 2 brokers, fewer than the replication factor (3): add a broker first');
    expect(removalRefusal({ ...three, topics: [], replicationFactor: 2 })).toBeUndefined();
  });

  it('lets a broker that holds replicas go (they are moved off it first), counting brokers already draining as gone', () => {
    const held: RemovalView = { ...five, broker: 'b2', topics: [topic('t', 3, Array.from({ length: 7 }, () => ['b1', 'b2', 'b3']))] };
    expect(removalRefusal(held)).toBeUndefined();
    // b4 and b5 drain already: taking b2 too would leave b1 and b3 for a factor of 3.
    expect(removalRefusal({ ...held, draining: ['b4', 'b5'] })?.message).toBe(
      'removing broker b2 would leave 2 brokers, fewer than the replication factor (3): add a broker first',
    );
    // Asking again for a broker that drains already is no new loss.
    expect(removalRefusal({ ...held, broker: 'b5', draining: ['b5'] })).toBeUndefined();
  });

  it('refuses a broker that is not a member, and the only voter', () => {
    expect(removalRefusal({ ...five, broker: 'b9' })).toEqual({ code: 'INVALID_ARGUMENT', message: 'broker b9 is not a member of the cluster (members: b1, b2, b3, b4, b5)' });
    expect(removalRefusal({ broker: 'b1', voters: ['b1'], learners: ['b2'], replicationFactor: 1, topics: [] })?.message).toBe('broker b1 is the only metadata voter: let another broker be promoted first');
  });
});
