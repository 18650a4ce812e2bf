import { describe, expect, it } from 'vitest';
import { parseAddPartitionsRequest, parseAdminMetadataCommand, parseCreateTopicRequest } from './admin-commands.js';

describe('admin commands on the wire', () => {
  it('reads the metadata entries that name the cluster and add partitions, and nothing malformed', () => {
    expect(parseAdminMetadataCommand({ type: 'set-cluster-id', clusterId: 'c-1' })).toEqual({ type: 'set-cluster-id', clusterId: 'c-1' });
    expect(parseAdminMetadataCommand({ type: 'set-cluster-id', clusterId: 'not valid!' })).toBeUndefined();
    expect(parseAdminMetadataCommand({ type: 'add-partitions', topic: 't', partitions: 4, brokers: ['b1', 'b2'] })).toEqual({ type: 'add-partitions', topic: 't', partitions: 4, brokers: ['b1', 'b2'] });
    for (const bad of [
      { type: 'add-partitions', topic: '', partitions: 4, brokers: [] },
      { type: 'add-partitions', topic: 't', partitions: 0, brokers: [] },
      { type: 'add-partitions', topic: 't', partitions: 1025, brokers: [] },
      { type: 'add-partitions', topic: 't', partitions: 2, brokers: [7] },
      { type: 'add-partitions', topic: 't', partitions: 2 },
      { type: 'create-topic', topic: 't', partitions: 1, replicationFactor: 1 },
      null,
      'set-cluster-id',
    ]) {
      expect(parseAdminMetadataCommand(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('reads forwarded requests, refusing bad fields by name', () => {
    expect(parseCreateTopicRequest({ topic: 'orders', partitions: 6, replicationFactor: 3 })).toEqual({ topic: 'orders', settings: { partitions: 6, replicationFactor: 3 } });
    expect(parseCreateTopicRequest({ topic: 'orders' })).toEqual({ topic: 'orders', settings: {} });
    expect(() => parseCreateTopicRequest({ topic: 'orders', replicationFactor: 17 })).toThrow('replicationFactor must be an integer from 1 to 16');
    expect(() => parseCreateTopicRequest({ partitions: 2 })).toThrow('wants a topic name');
    expect(parseAddPartitionsRequest({ topic: 'orders', partitions: 8 })).toEqual({ topic: 'orders', partitions: 8 });
    expect(() => parseAddPartitionsRequest({ topic: 'orders', partitions: 1.5 })).toThrow('partitions must be an integer from 1 to 1024');
  });
});
