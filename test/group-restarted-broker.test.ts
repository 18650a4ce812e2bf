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
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AssignedEvent, Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
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
});
