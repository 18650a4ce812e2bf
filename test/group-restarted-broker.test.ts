/**
 * A consumer-group member whose in-memory broker restarted. The broker forgot
 * its groups, so the group's epoch counter starts over: the member, which
 * rejoins under the same id, is granted its partition again under a lower
 * epoch than the grant it held before the restart. That grant is the current
 * one (the only one the broker has), not a stale one from a broker behind its
 * coordinator: a member that ignores it handles nothing of the partition ever
 * again (its commits under the old epoch are fenced, and the broker, whose
 * table did not change, sends no other assignment), while the group says the
 * member owns it.
 *
 * Under the same epoch (a single member: epoch 1 before and after) the grant
 * looked like the one the member held, seen again: it kept its position in the
 * lost log, and dropped the new log's messages below it as duplicates, with no
 * `gap` event. The restarted broker names a new log in its `welcome`: the
 * member takes every grant of it as new, with a `gap` event `reset: true`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AssignedEvent, GapEvent, Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy } from './support/proxy.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'restarted.t';
const GROUP = 'restarted';

describe('a group member whose in-memory broker restarted', () => {
  it('takes the grant the restarted broker gives it, under a lower epoch than the one it held, and handles the partition again', async () => {
    const [port] = await freePorts(1);
    const first = await fixture.broker({ port, defaultPartitions: 1 });
    const publisher = await fixture.client([first.url]);
    await publisher.publish(TOPIC, { n: 0 });

    // b takes the one partition (epoch 1); a joins and waits; b leaves, so a is granted it under epoch 2.
    const b = await fixture.client([first.url]);
    let bHandled = 0;
    const bSubscription = await b.subscribe(TOPIC, () => void bHandled++, { group: GROUP, from: 'earliest' });
    await waitFor(() => bHandled === 1, 'b to handle the first message');
    const a = await fixture.client([first.url], { commit: { intervalMs: 20 } });
    const assigned: AssignedEvent[] = [];
    a.on('assigned', (event) => assigned.push(event));
    const seen: number[] = [];
    await a.subscribe(TOPIC, (m: Message<{ n: number }>) => void seen.push(m.data.n), { group: GROUP, from: 'earliest' });
    await bSubscription.unsubscribe();
    await waitFor(() => assigned.length === 1, 'a to be granted the partition b left');
    expect(first.engine.consumerGroups.get(GROUP)?.partitions).toMatchObject([{ partition: 0, epoch: 2 }]);
    await publisher.publish(TOPIC, { n: 1 });
    await waitFor(() => seen.includes(1), 'a to handle a message under its grant');

    // The broker restarts on the same port with nothing: a rejoins, and the topic comes back with the next publish.
    await first.close();
    const second = await fixture.broker({ port, defaultPartitions: 1 });
    await publisher.publish(TOPIC, { n: 2 });
    await waitFor(() => second.engine.consumerGroups.get(GROUP)?.partitions[0]?.owner !== undefined, 'the restarted broker to grant the partition', 10_000);
    expect(second.engine.consumerGroups.get(GROUP)?.partitions).toMatchObject([{ partition: 0, epoch: 1 }]);

    // Before the fix: a kept its epoch 2, ignored the grant under epoch 1, and never handled the partition again.
    await publisher.publish(TOPIC, { n: 3 });
    await waitFor(() => seen.includes(3), 'a to handle a message published after the restart', 10_000);
  });

  it('follows the new log from its start, with a reset gap, when granted again under the same epoch as the one it held', async () => {
    const [port] = await freePorts(1);
    const first = await fixture.broker({ port, defaultPartitions: 1 });
    // The member reaches the broker only through a proxy (no discovery), so it rejoins once the restarted broker has the topic again.
    const proxy = await startProxy(first.port);
    fixture.defer(() => proxy.close());
    const publisher = await fixture.client([first.url]);
    const member = await fixture.client([proxy.url], { commit: { intervalMs: 20 }, discovery: false });
    const gaps: GapEvent[] = [];
    member.on('gap', (event) => void gaps.push(event));
    const seen: number[] = [];
    await member.subscribe(TOPIC, (m: Message<{ n: number }>) => void seen.push(m.data.n), { group: GROUP, from: 'earliest' });
    for (let n = 0; n < 3; n++) await publisher.publish(TOPIC, { n });
    await waitFor(() => seen.length === 3, 'the member to handle the first log');
    expect(first.engine.consumerGroups.get(GROUP)?.partitions).toMatchObject([{ partition: 0, epoch: 1 }]);

    // The broker restarts with nothing; the new log gets offsets 0-2 before the member is back.
    proxy.block();
    await first.close();
    const second = await fixture.broker({ port, defaultPartitions: 1 });
    for (let n = 3; n < 6; n++) await publisher.publish(TOPIC, { n });
    proxy.unblock();
    await waitFor(() => second.engine.consumerGroups.get(GROUP)?.partitions[0]?.owner !== undefined, 'the restarted broker to grant the partition', 10_000);
    expect(second.engine.consumerGroups.get(GROUP)?.partitions).toMatchObject([{ partition: 0, epoch: 1 }]);
    for (let n = 6; n < 8; n++) await publisher.publish(TOPIC, { n });

    // Before the fix: it kept its position 3 under "the same" epoch 1 and handled [0, 1, 2, 6, 7], losing 3-5 silently.
    await waitFor(() => seen.includes(7), 'the member to handle the last message', 10_000);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gaps).toMatchObject([{ topic: TOPIC, partition: 0, expectedOffset: 3, firstAvailableOffset: 0, reset: true }]);
    // What it commits is the new log's position, not the lost one's.
    await waitFor(() => second.engine.consumerGroups.position(GROUP, TOPIC, 0) === 5, 'the member to commit its position in the new log');
  });

  it('takes a grant under an epoch it released before the restart', async () => {
    const [port] = await freePorts(1);
    const first = await fixture.broker({ port, defaultPartitions: 2 });
    const proxy = await startProxy(first.port);
    fixture.defer(() => proxy.close());
    const publisher = await fixture.client([first.url]);
    await publisher.publish(TOPIC, { n: 0 });
    const a = await fixture.client([proxy.url], { commit: { intervalMs: 20 }, discovery: false });
    const handled: Array<{ partition: number; n: number }> = [];
    await a.subscribe(TOPIC, (m: Message<{ n: number }>) => void handled.push({ partition: m.partition, n: m.data.n }), { group: GROUP, from: 'earliest' });
    const table = (engine: typeof first.engine) => engine.consumerGroups.get(GROUP)?.partitions.map((p) => ({ partition: p.partition, epoch: p.epoch, owner: p.owner, revoking: p.revoking === true }));
    await waitFor(() => table(first.engine)?.every((p) => p.owner !== undefined) === true, 'a to own both partitions');
    const aId = table(first.engine)?.[0]?.owner;
    // b joins: a releases one partition (its epoch is then one a released); b leaves: a is granted it under a newer one.
    const b = await fixture.client([first.url]);
    const bSubscription = await b.subscribe(TOPIC, () => {}, { group: GROUP, from: 'earliest' });
    await waitFor(() => table(first.engine)?.some((p) => p.owner !== aId && p.owner !== undefined) === true, 'b to be granted the partition a released');
    await bSubscription.unsubscribe();
    await waitFor(() => table(first.engine)?.every((p) => p.owner === aId && !p.revoking) === true, 'a to own both partitions again');
    const before = table(first.engine) ?? [];

    proxy.block();
    await first.close();
    const second = await fixture.broker({ port, defaultPartitions: 2 });
    await publisher.publish(TOPIC, { n: 1 });
    proxy.unblock();
    await waitFor(() => table(second.engine)?.every((p) => p.owner !== undefined) === true, 'the restarted broker to grant both partitions', 10_000);
    const after = table(second.engine) ?? [];
    // The restarted group's epochs start over at or below the one a released (shown by the figures, so the test says what it covers).
    expect(after.map((p) => p.epoch)).toEqual([1, 2]);
    expect(Math.max(...before.map((p) => p.epoch))).toBeGreaterThan(2);

    // Before the fix: the grant under an epoch a released was ignored as stale, and that partition was handled by nobody.
    for (let n = 2; n < 12; n++) await publisher.publish(TOPIC, { n }, { key: `k${n}` });
    const late = (): Array<{ partition: number; n: number }> => handled.filter((h) => h.n >= 2);
    await waitFor(() => late().length === 10, 'a to handle every message of the new log', 10_000);
    expect(new Set(late().map((h) => h.partition)).size).toBe(2);
    expect(late().map((h) => h.n).sort((x, y) => x - y)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});
