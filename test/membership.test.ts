import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, within } from './support/wait.js';

/**
 * Raft membership through the engine, over real sockets: a change proposed
 * on any broker reaches the group's leader, every member observes it, and a
 * broker restarted with its old command line (its static peers) keeps the
 * configuration its log holds instead of going back to its peers list.
 */

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-membership-');
afterEach(() => fixture.cleanup());

interface Conf {
  voters: readonly string[];
  learners?: readonly string[];
}
interface MembershipEngine {
  changeMembership(group: string, change: { type: 'add-learner' | 'promote' | 'remove'; node: string }): Promise<Conf>;
  membership(group: string): Conf | undefined;
  membershipEvents: { on(event: 'changed', listener: (group: string, conf: Conf, index: number) => void): void };
}
const engineOf = (broker: Broker): MembershipEngine => broker.engine as unknown as MembershipEngine;
const sorted = (ids: readonly string[] | undefined): string[] => [...(ids ?? [])].sort();

describe('membership changes of a live cluster', () => {
  it('removes a metadata voter through any broker; every member sees it, and a restart keeps the stored configuration, not its peers list', async () => {
    const ids = ['m1', 'm2', 'm3'];
    const peerPorts = await freePorts(3);
    const dirs = await Promise.all(ids.map(() => tempDir()));
    const optionsOf = (i: number): BrokerOptions => ({
      id: ids[i] as string,
      peerPort: peerPorts[i] as number,
      peers: ids.flatMap((id, j) => (j === i ? [] : [`${id}@127.0.0.1:${peerPorts[j]}`])),
      dataDir: dirs[i] as string,
      replicationFactor: 3,
    });
    const brokers = await Promise.all(ids.map((_, i) => fixture.broker(optionsOf(i))));
    const seen: Array<{ broker: string; group: string; voters: string[] }> = [];
    brokers.forEach((b, i) => engineOf(b).membershipEvents.on('changed', (group, conf) => seen.push({ broker: ids[i] as string, group, voters: sorted(conf.voters) })));

    const client = await fixture.client([brokers[0]!.url]);
    await client.publish('orders', 'before');
    expect(sorted(engineOf(brokers[0]!).membership('meta')?.voters)).toEqual(['m1', 'm2', 'm3']);

    // Proposed on m1 whether or not it leads: forwarded to the leader, answered once committed.
    const conf = await within(engineOf(brokers[0]!).changeMembership('meta', { type: 'remove', node: 'm3' }), 'the removal of m3');
    expect(sorted(conf.voters)).toEqual(['m1', 'm2']);
    await waitFor(() => brokers.slice(0, 2).every((b) => sorted(engineOf(b).membership('meta')?.voters).join() === 'm1,m2'), 'm1 and m2 to apply the removal');
    expect(seen.filter((s) => s.group === 'meta' && s.voters.join() === 'm1,m2').map((s) => s.broker).sort()).toEqual(expect.arrayContaining(['m1', 'm2']));
    // A change that does not apply is refused for good, with a clear code. If m3 led, the removal was answered once it
    // handed over: the next leader may not have committed its term yet (NOT_READY, retriable), so that is retried.
    const refusal = async (): Promise<unknown> => {
      for (let attempt = 1; ; attempt++) {
        const outcome = await engineOf(brokers[1]!).changeMembership('meta', { type: 'remove', node: 'm3' }).then(() => undefined, (err: unknown) => err);
        if (attempt >= 100 || (outcome as { code?: unknown } | undefined)?.code !== 'NOT_READY') return outcome;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    expect(await refusal()).toMatchObject({ code: 'INVALID_ARGUMENT' });

    // m3 goes away for good and m1 restarts with its old command line (m2 and m3 as peers).
    await brokers[2]!.close();
    await brokers[0]!.close();
    const restarted = await fixture.broker(optionsOf(0));
    expect(sorted(engineOf(restarted).membership('meta')?.voters)).toEqual(['m1', 'm2']);
    // The two voters commit metadata without m3: a new topic is created and published to.
    const again = await fixture.client([restarted.url, brokers[1]!.url]);
    const receipt = await within(again.publish('payments', 'after'), 'a publish to a new topic after the restart', 20_000);
    expect(receipt.offset).toBe(0);
    expect(sorted(engineOf(restarted).membership('meta')?.voters)).toEqual(['m1', 'm2']);
  }, 60_000);
});
