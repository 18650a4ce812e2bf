import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { tempDirs } from './support/temp-dirs.js';
import { startProxy } from './support/proxy.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * Brokers joining a running cluster: one started with `peers` naming the
 * running ones, one with `join` (a running broker's peer address only). Both
 * are admitted: gossip learns them, the running brokers link to them, the
 * metadata group takes them as non-voting members (three voters by
 * default), clients discover them, and new topics place replicas on them.
 */

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-joining-');
afterEach(() => fixture.cleanup());

interface Conf {
  voters: readonly string[];
  learners?: readonly string[];
}
const membership = (broker: Broker): Conf | undefined => (broker.engine as unknown as { membership(group: string): Conf | undefined }).membership('meta');
const hosts = (broker: Broker, topic: string, partition: number): boolean =>
  (broker.engine as unknown as { hostsReplica(t: string, p: number): boolean }).hostsReplica(topic, partition);
const sorted = (ids: readonly string[] | undefined): string => [...(ids ?? [])].sort().join(',');

describe('joining a running cluster', () => {
  it('admits a broker started with peers and one started with join: linked, gossiped, metadata members beyond the 3 voters, discovered by clients, given replicas', async () => {
    const ids = ['j1', 'j2', 'j3', 'j4', 'j5'];
    const peerPorts = await freePorts(5);
    const address = (i: number): string => `${ids[i]}@127.0.0.1:${peerPorts[i]}`;
    const base = async (i: number): Promise<BrokerOptions> => ({ id: ids[i] as string, peerPort: peerPorts[i] as number, dataDir: await tempDir(), replicationFactor: 3, defaultPartitions: 5 });
    const lines: Array<{ broker: string; message: string; fields?: Record<string, unknown> }> = [];
    const logTo = (broker: string): BrokerOptions['log'] => (_level, message, fields) => void lines.push({ broker, message, ...(fields === undefined ? {} : { fields }) });

    const running = await Promise.all(
      [0, 1, 2].map(async (i) => fixture.broker({ ...(await base(i)), peers: [0, 1, 2].filter((j) => j !== i).map(address), log: logTo(ids[i] as string) })),
    );
    const client = await fixture.client([running[0]!.url]);
    await client.publish('before', 'b');

    // j4 names the running brokers as peers (the running brokers know nothing of it); j5 only a peer address of j2.
    const j4 = await fixture.broker({ ...(await base(3)), peers: [0, 1, 2].map(address), log: logTo('j4') });
    const j5 = await fixture.broker({ ...(await base(4)), join: [`127.0.0.1:${peerPorts[1]}`], log: logTo('j5') });
    const all = [...running, j4, j5];

    // The running brokers accept them and say so.
    await waitFor(() => lines.some((l) => l.broker !== 'j4' && l.message.startsWith('a new broker introduced itself') && l.fields?.peer === 'j4'), 'a running broker to accept j4');
    // The metadata leader admits both as learners: three voters stay (metadataVoters defaults to 3).
    await waitFor(
      () => all.every((b) => sorted(membership(b)?.voters) === 'j1,j2,j3' && sorted(membership(b)?.learners) === 'j4,j5'),
      'every broker to see j4 and j5 as metadata learners',
      20_000,
    );
    // Clients learn them by discovery.
    await waitFor(() => client.stats().knownBrokers.includes(j4.url) && client.stats().knownBrokers.includes(j5.url), 'the client to discover j4 and j5', 20_000);

    // A new topic's 5 partitions x 3 replicas are spread over all five brokers: the newcomers host some.
    await within(client.publish('after', 'a', { key: 'k' }), 'a publish to a new topic');
    await waitFor(() => [0, 1, 2, 3, 4].some((p) => hosts(j4, 'after', p)) && [0, 1, 2, 3, 4].some((p) => hosts(j5, 'after', p)), 'j4 and j5 to host replicas of "after"');
    // And they serve: a client of j5 alone reads what was published through j4.
    const viaJ4 = await fixture.client([j4.url], { discovery: false, poolSize: 1 });
    const receipts = await Promise.all(Array.from({ length: 20 }, (_, i) => viaJ4.publish('after', i, { key: `k${i}` })));
    expect(receipts.every((r) => r.duplicate === false)).toBe(true);
    const viaJ5 = await fixture.client([j5.url], { discovery: false, poolSize: 1 });
    const read: number[] = [];
    await viaJ5.subscribe('after', (m: Message<number | string>) => void (typeof m.data === 'number' && read.push(m.data)), { from: 'earliest' });
    await waitFor(() => read.length === 20, 'j5 to deliver the 20 messages published through j4', 20_000);
    expect([...read].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  }, 90_000);
});

describe('readiness of a broker that joins', () => {
  it('reports not ready while it is not admitted (cut off from the cluster), then ready once admitted', async () => {
    const ids = ['r1', 'r2', 'r3'];
    const peerPorts = await freePorts(4);
    const running = await Promise.all(
      ids.map(async (id, i) =>
        fixture.broker({ id, peerPort: peerPorts[i] as number, peers: ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${peerPorts[j]}`])), dataDir: await tempDir() }),
      ),
    );
    const client = await fixture.client([running[0]!.url]);
    await within(client.publish('before', 'b'), 'a publish to the three brokers');
    // r4 reaches the running brokers only through proxies that refuse every connection for now.
    const toRunning = await Promise.all(ids.map((_, i) => startProxy(peerPorts[i] as number)));
    for (const proxy of toRunning) {
      proxy.block();
      fixture.defer(() => proxy.close());
    }
    const r4 = await fixture.broker({
      id: 'r4',
      peerPort: peerPorts[3] as number,
      peers: ids.map((id, i) => `${id}@127.0.0.1:${(toRunning[i] as { port: number }).port}`),
      dataDir: await tempDir(),
      adminPort: 0,
    });
    const readyz = async (): Promise<number> => (await fetch(`${r4.adminUrl as string}/readyz`)).status;
    // It tried to introduce itself and was cut off: still not admitted, so not ready.
    await waitFor(() => toRunning.some((p) => p.refused > 0), 'r4 to try to reach the cluster');
    expect(await readyz()).toBe(503);
    expect(sorted(membership(running[0]!)?.learners)).toBe('');

    for (const proxy of toRunning) proxy.unblock();
    await waitFor(() => running.every((b) => sorted(membership(b)?.learners) === 'r4'), 'the running brokers to admit r4 as a learner', 20_000);
    await waitForAsync(async () => (await readyz()) === 200, 'r4 to report ready once admitted', 20_000);
  }, 60_000);
});

describe('a broker with amnesia', () => {
  it('is refused by the brokers that knew it when it comes back with an empty data directory, with a clear error on both sides; its old data directory is never used under another id', async () => {
    const ids = ['a1', 'a2', 'a3'];
    const peerPorts = await freePorts(3);
    const dirs = await Promise.all(ids.map(() => tempDir()));
    const lines: Array<{ broker: string; level: string; message: string; fields?: Record<string, unknown> }> = [];
    const optionsOf = (i: number, dataDir = dirs[i] as string): BrokerOptions => ({
      id: ids[i] as string,
      peerPort: peerPorts[i] as number,
      peers: ids.flatMap((id, j) => (j === i ? [] : [`${id}@127.0.0.1:${peerPorts[j]}`])),
      dataDir,
      log: (level, message, fields) => void lines.push({ broker: ids[i] as string, level, message, ...(fields === undefined ? {} : { fields }) }),
    });
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(optionsOf(i))));
    const client = await fixture.client([brokers[0]!.url]);
    await client.publish('kept', 'x');
    await waitFor(() => brokers.every((b) => (b as unknown as { cluster(): { brokers: Array<{ state: string }> } }).cluster().brokers.filter((m) => m.state === 'alive').length === 3), 'every broker to see the others alive');

    // a3 loses its disk: it restarts under the same id with an empty data directory.
    await brokers[2]!.close();
    const amnesiac = await fixture.broker(optionsOf(2, await tempDir()));
    await waitFor(() => lines.some((l) => l.broker !== 'a3' && l.level === 'error' && l.message === 'refusing a broker with amnesia' && l.fields?.peer === 'a3'), 'a running broker to refuse a3');
    await waitFor(() => lines.some((l) => l.broker === 'a3' && l.level === 'error' && l.message === 'a peer refused this broker'), 'a3 to log that it was refused');
    // It gets no link, so no vote: the metadata group of a3 never hears of a leader.
    expect((amnesiac.engine as unknown as { membership(g: string): { voters: readonly string[] } }).membership('meta')).toBeDefined();
    expect(brokers.slice(0, 2).every((b) => !(b as unknown as { peers: { connectedPeers(): string[] } }).peers.connectedPeers().includes('a3'))).toBe(true);
    // The cluster of a1 and a2 serves on.
    await within(client.publish('kept', 'y'), 'a publish while a3 is refused');

    // A data directory is never used under another id.
    await expect(fixture.broker({ ...optionsOf(0), id: 'a9', peers: [] })).rejects.toThrow(/belongs to broker a1/);
  }, 60_000);
});

describe('a broker an operator lets come back on an empty data directory', () => {
  it('once removed, the same id is forgotten (refused while it is a member), accepted on its next incarnation, added, and any later incarnation is refused again', async () => {
    const ids = ['f1', 'f2', 'f3'];
    const peerPorts = await freePorts(3);
    const lines: Array<{ broker: string; level: string; message: string; fields?: Record<string, unknown> }> = [];
    const optionsOf = (i: number, dataDir: string): BrokerOptions => ({
      id: ids[i] as string,
      peerPort: peerPorts[i] as number,
      peers: ids.flatMap((id, j) => (j === i ? [] : [`${id}@127.0.0.1:${peerPorts[j]}`])),
      dataDir,
      replicationFactor: 1,
      log: (level, message, fields) => void lines.push({ broker: ids[i] as string, level, message, ...(fields === undefined ? {} : { fields }) }),
    });
    interface Operator {
      removeBroker(b: string): Promise<{ outcome: string }>;
      forgetBroker(b: string): Promise<void>;
      addBroker(b: string): Promise<unknown>;
      metadataMembership(): { voters: string[]; learners: string[] };
    }
    const brokers = await Promise.all([0, 1, 2].map(async (i) => fixture.broker(optionsOf(i, await tempDir()))));
    const [f1, f2] = brokers as [Broker, Broker, Broker];
    const op = f1.engine as unknown as Operator;
    const isMember = (b: Broker, id: string): boolean => {
      const m = (b.engine as unknown as Operator).metadataMembership();
      return m.voters.includes(id) || m.learners.includes(id);
    };
    const linked = (b: Broker, id: string): boolean => (b as unknown as { peers: { connectedPeers(): string[] } }).peers.connectedPeers().includes(id);
    await waitFor(() => isMember(f1, 'f3') && linked(f1, 'f3') && linked(f2, 'f3'), 'f3 to be a linked member');
    const refusals = (): number => lines.filter((l) => l.broker !== 'f3' && l.message === 'refusing a broker with amnesia' && l.fields?.peer === 'f3').length;

    // Not while f3 still votes.
    await expect(op.forgetBroker('f3')).rejects.toThrow(/still a member of the metadata group/);
    // f3 holds no replica: removed at once; then its disk is lost and it comes back under its id: refused.
    // Right after the cluster formed, its metadata leader may not have committed an entry of its term yet: that refusal
    // is NOT_READY and retriable, and an operator's CLI would say so; here the removal is retried until it is taken.
    let removal: { outcome: string } | undefined;
    await waitForAsync(async () => {
      try {
        removal = await op.removeBroker('f3');
        return true;
      } catch (err) {
        if ((err as { retriable?: boolean }).retriable === true) return false;
        throw err;
      }
    }, 'removing f3');
    expect(removal).toMatchObject({ outcome: 'removed' });
    await waitFor(() => !isMember(f1, 'f3') && !isMember(f2, 'f3'), 'f3 to leave the metadata group');
    await brokers[2]!.close();
    let f3 = await fixture.broker(optionsOf(2, await tempDir()));
    await waitFor(() => refusals() > 0, 'the brokers to refuse f3 with an empty disk');
    expect(linked(f1, 'f3') || linked(f2, 'f3')).toBe(false);

    // The operator forgets the old identity: the new incarnation is accepted at f3's next try, and kept; then f3 is added.
    await within(op.forgetBroker('f3'), 'forgetting f3');
    await waitFor(() => linked(f1, 'f3') && linked(f2, 'f3'), 'f3 to link again once forgotten', 20_000);
    expect(lines.some((l) => l.message === 'accepting a new incarnation of a broker an operator let come back on an empty data directory' && l.fields?.peer === 'f3')).toBe(true);
    await within(op.addBroker('f3'), 'adding f3 back');
    await waitFor(() => isMember(f1, 'f3') && isMember(f2, 'f3'), 'f3 to be a member again');
    await waitFor(() => (f3.engine as unknown as Operator).metadataMembership().voters.length > 0 && isMember(f3, 'f3'), 'f3 to learn it is a member');

    // Added: another empty disk under f3 is refused again (forgotten only until added).
    const before = refusals();
    await f3.close();
    f3 = await fixture.broker(optionsOf(2, await tempDir()));
    await waitFor(() => refusals() > before, 'the brokers to refuse f3 again on another empty disk', 20_000);
    expect(linked(f1, 'f3') || linked(f2, 'f3')).toBe(false);
  }, 90_000);
});
