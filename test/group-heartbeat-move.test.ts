/**
 * A group member whose broker is cut off from the other brokers (its own link
 * to the member stays up) sees its heartbeats fail (TIMEOUT, NOT_READY,
 * NO_QUORUM), not FENCED. It must move to another broker and heartbeat there
 * before its session expires, as Kafka clients look for the coordinator again,
 * instead of staying and losing its partitions to an expiry.
 *
 * Three brokers in this process, every peer connection through a fault link.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { RevokedEvent } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'hb.move';
const GROUP = 'hb-movers';
const SESSION_MS = 3000;

interface GroupEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  metadataLeaderKnown(): boolean;
  consumerGroups: { get(group: string): { members: string[] } | undefined; assignmentOf(group: string, member: string): Array<{ partition: number; revoking?: boolean }> };
}
const engineOf = (b: Broker): GroupEngine => b.engine as unknown as GroupEngine;

/** X: a broker that is not the metadata leader (the group coordinator), once every broker knows that leader. */
async function notCoordinating(brokers: Broker[]): Promise<{ xIndex: number; x: string }> {
  await waitFor(() => brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
  const leader = engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader;
  const xIndex = brokers.findIndex((b) => b.id !== leader);
  return { xIndex, x: (brokers[xIndex] as Broker).id };
}

describe('a group member whose heartbeats fail on a cut-off broker', () => {
  it('moves to another broker within the session timeout and keeps its partitions', async () => {
    const ids = ['h1', 'h2', 'h3'];
    const { brokers, peerLinks, urls } = await faultableCluster(fixture, ids, { defaultPartitions: 4 });
    const publisher = await fixture.client(urls);
    await publisher.publish(TOPIC, { n: 0 });

    // X: a broker that is not the metadata leader (the group coordinator), so the coordinator stays put and
    // expires the member a session timeout after its last heartbeat it heard.
    const { xIndex, x } = await notCoordinating(brokers);
    // Seeded with X only: it is the member's first broker; the others are discovered (standbys).
    const member = await fixture.client([urls[xIndex] as string]); // default request timeout (10 s): not waited for
    const revoked: RevokedEvent[] = [];
    member.on('revoked', (e) => revoked.push(e));
    let owned = 0;
    member.on('assigned', (e) => (owned += e.partitions.length));
    await member.subscribe(TOPIC, async () => {}, { group: GROUP, sessionTimeoutMs: SESSION_MS, from: 'earliest' });
    await waitFor(() => owned === 4, 'the member to own the 4 partitions', 10_000);
    const servedBy = (): string | undefined => member.stats().subscribe.servedBy[0]?.broker;
    expect(servedBy()).toBe(x);
    await waitFor(() => member.stats().connectedBrokers.some((c) => c.id !== x), 'a standby connection to another broker', 10_000);
    const others = brokers.filter((b) => b.id !== x);
    const memberIds = (b: Broker): string[] => engineOf(b).consumerGroups.get(GROUP)?.members ?? [];
    await waitFor(() => others.every((b) => memberIds(b).length === 1), 'the member in every other broker table', 10_000);
    const memberId = memberIds(others[0] as Broker)[0] as string;

    // One way: what X sends its peers is lost silently (its connections stay up, the member's link to it too). X
    // still hears the metadata leader, so it stays ready (the pool has no reason to leave it), but every group
    // request it forwards goes unanswered.
    const cut: Array<() => void> = [];
    for (const [name, link] of peerLinks) {
      if (name.startsWith(`${x}->`)) link.drop('forward');
      else if (name.endsWith(`->${x}`)) link.drop('backward');
      else continue;
      cut.push(() => link.heal());
    }
    fixture.defer(async () => void cut.forEach((heal) => heal()));
    const cutAt = Date.now();

    // Its heartbeats fail there: it must serve from (and heartbeat through) another broker before the session
    // expires: once its next two heartbeats (every SESSION_MS / 3) have each gone unanswered for a quarter interval,
    // three quarters of an interval before the coordinator could expire it (the watch below checks that it did not),
    // and 1.25 to 2.25 s after the cut (2.27 to 2.31 s with the rejoin in three runs alone, 2.68 s once among other
    // test files), before X, cut off one way, is judged not ready (2.8 to 6 s in runs without the move).
    await waitFor(() => servedBy() !== undefined && servedBy() !== x, `the member to leave broker ${x}`, 3 * SESSION_MS);
    const movedAfterMs = Date.now() - cutAt;

    // For two session timeouts after the cut, the other side's table keeps it with its 4 partitions, and no `lost`.
    const watchUntil = cutAt + 2 * SESSION_MS + 1000;
    for (let i = 0; i < 200 && Date.now() < watchUntil; i++) {
      for (const b of others) {
        expect(memberIds(b), `the member expired on ${b.id} ${Date.now() - cutAt} ms after the cut`).toEqual([memberId]);
        expect(engineOf(b).consumerGroups.assignmentOf(GROUP, memberId).length).toBe(4);
      }
      expect(revoked.filter((e) => e.reason === 'lost')).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Loose: the coordinator last heard the member less than an interval before the cut, so a move a session after
    // the cut would come after any expiry; the watch above is the exact check.
    expect(movedAfterMs, 'ms from the cut to the move').toBeLessThan(SESSION_MS);
  }, 60_000);

  it('after the move, a member of many partitions and a durable subscription on the same client miss nothing, and their positions commit through the new broker', async () => {
    const ids = ['d1', 'd2', 'd3'];
    const { brokers, peerLinks, urls } = await faultableCluster(fixture, ids, { defaultPartitions: 8 });
    const publisher = await fixture.client(urls);
    await publisher.publish(TOPIC, { n: -1 });
    await publisher.publish('hb.plain', { n: -1 });
    const { xIndex, x } = await notCoordinating(brokers);
    const member = await fixture.client([urls[xIndex] as string]);
    const grouped: number[] = [];
    const plain: number[] = [];
    let owned = 0;
    member.on('assigned', (e) => (owned += e.partitions.length));
    const revoked: RevokedEvent[] = [];
    member.on('revoked', (e) => revoked.push(e));
    await member.subscribe<{ n: number }>(TOPIC, async (m) => void grouped.push(m.data.n), { group: GROUP, sessionTimeoutMs: SESSION_MS, from: 'earliest' });
    await member.subscribe<{ n: number }>('hb.plain', async (m) => void plain.push(m.data.n), { durable: 'hb-durable', from: 'earliest' });
    await waitFor(() => owned === 8, 'the member to own the 8 partitions', 10_000);
    await waitFor(() => member.stats().connectedBrokers.some((c) => c.id !== x), 'a standby connection to another broker', 10_000);
    const others = brokers.filter((b) => b.id !== x);
    const memberIds = (b: Broker): string[] => engineOf(b).consumerGroups.get(GROUP)?.members ?? [];
    await waitFor(() => others.every((b) => memberIds(b).length === 1), 'the member in every other broker table', 10_000);
    const servedBy = (): string | undefined => member.stats().subscribe.servedBy[0]?.broker;

    // Publishes before, across and after the move, through the publisher's own (uncut) brokers.
    let n = 0;
    const publishSome = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, n++) {
        await publisher.publish(TOPIC, { n }, { key: `k${n % 16}` });
        await publisher.publish('hb.plain', { n });
      }
    };
    await publishSome(40);
    const cut: Array<() => void> = [];
    for (const [name, link] of peerLinks) {
      if (name.startsWith(`${x}->`)) link.drop('forward');
      else if (name.endsWith(`->${x}`)) link.drop('backward');
      else continue;
      cut.push(() => link.heal());
    }
    fixture.defer(async () => void cut.forEach((heal) => heal()));
    for (let i = 0; i < 60 && (servedBy() === undefined || servedBy() === x); i++) {
      await publishSome(2);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(servedBy(), 'moved off the cut-off broker').not.toBe(x);
    await publishSome(40);
    const all = Array.from({ length: n }, (_, i) => i);
    await waitFor(() => all.every((i) => grouped.includes(i)), 'every grouped message handled', 15_000);
    await waitFor(() => all.every((i) => plain.includes(i)), 'every plain message handled', 15_000);
    expect(revoked.filter((e) => e.reason === 'lost')).toEqual([]);

    // Positions committed through the new broker (X stays cut off): a fresh client resumes both where the member
    // stopped, with no more than the last uncommitted few again.
    await member.close();
    const next = await fixture.client(urls.filter((_, i) => i !== xIndex));
    const again: number[] = [];
    const againPlain: number[] = [];
    await next.subscribe<{ n: number }>(TOPIC, async (m) => void again.push(m.data.n), { group: GROUP, sessionTimeoutMs: SESSION_MS, from: 'earliest' });
    await next.subscribe<{ n: number }>('hb.plain', async (m) => void againPlain.push(m.data.n), { durable: 'hb-durable', from: 'earliest' });
    await publisher.publish(TOPIC, { n: 100_000 });
    await publisher.publish('hb.plain', { n: 100_000 });
    await waitFor(() => again.includes(100_000) && againPlain.includes(100_000), 'the marker through the fresh client', 15_000);
    const dupGrouped = grouped.length - new Set(grouped).size;
    const dupPlain = plain.length - new Set(plain).size;
    console.log(`rvhb: ${n} messages, duplicates grouped ${dupGrouped} plain ${dupPlain}, handled again by the next client grouped ${again.length - 1} plain ${againPlain.length - 1}`);
    expect(again.filter((v) => v !== 100_000)).toEqual([]);
    expect(againPlain.filter((v) => v !== 100_000).length).toBeLessThanOrEqual(5);
  }, 90_000);

  it('stays on the one broker it knows (discovery off): no close, no redial, however long its heartbeats fail', async () => {
    const ids = ['k1', 'k2', 'k3'];
    const { brokers, peerLinks, urls } = await faultableCluster(fixture, ids, { defaultPartitions: 4 });
    const publisher = await fixture.client(urls);
    await publisher.publish(TOPIC, { n: 0 });
    const { xIndex, x } = await notCoordinating(brokers);
    const member = await fixture.client([urls[xIndex] as string], { discovery: false });
    let owned = 0;
    member.on('assigned', (e) => (owned += e.partitions.length));
    await member.subscribe(TOPIC, async () => {}, { group: GROUP, sessionTimeoutMs: SESSION_MS, from: 'earliest' });
    await waitFor(() => owned === 4, 'the member to own the 4 partitions', 10_000);
    const others = brokers.filter((b) => b.id !== x);
    const memberIds = (b: Broker): string[] => engineOf(b).consumerGroups.get(GROUP)?.members ?? [];
    await waitFor(() => others.every((b) => memberIds(b).length === 1), 'the member in every other broker table', 10_000);
    const memberId = memberIds(others[0] as Broker)[0] as string;
    const left: string[] = [];
    member.on('connecting', ({ url }) => left.push(`dial ${url}`));
    member.on('failover', ({ from }) => left.push(`failover from ${from.id}`));
    member.on('disconnected', ({ broker }) => left.push(`disconnected from ${broker.id}`));

    // The same one-way cut: every heartbeat through X goes unanswered, and X is the only broker the member knows.
    const cut: Array<() => void> = [];
    for (const [name, link] of peerLinks) {
      if (name.startsWith(`${x}->`)) link.drop('forward');
      else if (name.endsWith(`->${x}`)) link.drop('backward');
      else continue;
      cut.push(() => link.heal());
    }
    fixture.defer(async () => void cut.forEach((heal) => heal()));

    // Its heartbeats failed for a whole session: the coordinator expires it (a move would have come two intervals
    // in). All that time, and a session more, the member's one connection stays: nothing closed, nothing redialed.
    await waitFor(() => !memberIds(others[0] as Broker).includes(memberId), 'the coordinator to expire the member', 4 * SESSION_MS);
    const watchUntil = Date.now() + SESSION_MS;
    for (let i = 0; i < 100 && Date.now() < watchUntil; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(left).toEqual([]);
    expect(member.stats().connectedBrokers.map((c) => c.id)).toEqual([x]);
  }, 60_000);
});
