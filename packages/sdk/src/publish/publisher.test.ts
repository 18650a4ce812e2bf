import { describe, expect, it, vi } from 'vitest';
import { RelayError, type ClientFrame } from '../protocol/index.js';
import type { BrokerConnection } from '../connection/connection.js';
import { resolveClientOptions, type OutboxOptions } from '../options.js';
import { Publisher } from './publisher.js';
import { ROUTING_LIMITS } from './routing.js';

/** A message as sent: its id and seq, from the batch it travelled in. */
interface Sent {
  id: number;
  seq: number;
  partition: number;
  incarnation: number;
}

/** A connection double: records publish frames (one list of messages per frame), answers metadata with `partitions`. */
function fakeConnection(partitions = 1): { connection: BrokerConnection; sent: Sent[][] } {
  const sent: Sent[][] = [];
  const connection = {
    open: true,
    welcome: { limits: { maxPayload: 1024 * 1024, dedupeWindow: 16384, maxCredit: 10000 } },
    send(frame: ClientFrame) {
      if (frame.type === 'publish') {
        sent.push(
          frame.batches.flatMap((b) =>
            b.messages.map((_, i) => ({ id: b.firstId + i, seq: b.firstSeq + i, partition: b.partition, incarnation: b.incarnation ?? 0 })),
          ),
        );
      }
      return true;
    },
    request(frame: { type: string; topics?: string[] }) {
      return Promise.resolve({ type: 'topics', id: 1, topics: (frame.topics ?? []).map((topic) => ({ topic, partitions })) });
    },
  };
  return { connection: connection as unknown as BrokerConnection, sent };
}

function publisher(
  outbox: OutboxOptions = {},
  pooled: (brokerId: string) => BrokerConnection | undefined = () => undefined,
  reach?: (brokerId: string) => boolean,
): { publisher: Publisher; failovers: RelayError[] } {
  const failovers: RelayError[] = [];
  const options = resolveClientOptions({ brokers: ['ws://127.0.0.1:1'], WebSocket: class {} as never, outbox });
  return { publisher: new Publisher(options, (reason) => failovers.push(reason), pooled, reach), failovers };
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('Publisher', () => {
  it('assigns gap-free seqs per partition in call order and sends a tick as one frame, a batch per partition', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection(2);
    p.setConnection(connection);
    for (let i = 0; i < 6; i++) void p.publish('t', i);
    await tick();
    expect(sent).toHaveLength(1);
    expect(sent[0]?.map((m) => [m.partition, m.seq])).toEqual([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
  });

  it('groups one tick by partition and ack level, in first-seen order: a partition of two ack levels is two groups', async () => {
    const { publisher: p } = publisher();
    const frames: Array<Array<[string, number, string, number, number]>> = [];
    const { connection } = fakeConnection();
    const send = connection.send.bind(connection);
    connection.send = (frame: ClientFrame) => {
      if (frame.type === 'publish') frames.push(frame.batches.map((b) => [b.topic, b.partition, b.ack, b.firstSeq, b.messages.length]));
      return send(frame);
    };
    p.setConnection(connection);
    // Metadata of both topics first: then the next tick is admitted, and flushed, at once.
    void p.publish('t', 'first');
    void p.publish('u', 'first');
    await tick();
    await tick();
    frames.length = 0;
    for (const [topic, ack] of [['t', 'quorum'], ['u', 'quorum'], ['t', 'leader'], ['t', 'quorum'], ['t', 'leader']] as const) void p.publish(topic, 'x', { ack });
    await tick();
    expect(frames).toEqual([
      [
        ['t', 0, 'quorum', 1, 1],
        ['t', 0, 'quorum', 3, 1],
        ['u', 0, 'quorum', 1, 1],
        ['t', 0, 'leader', 2, 1],
        ['t', 0, 'leader', 4, 1],
      ],
    ]);
  });

  it('republishes the whole outbox in order, with the same seqs, on a new connection', async () => {
    const { publisher: p } = publisher();
    const first = fakeConnection();
    p.setConnection(first.connection);
    const pending = [p.publish('t', 'a'), p.publish('t', 'b'), p.publish('t', 'c')];
    await tick();
    const ids = first.sent[0]?.map((m) => m.id) ?? [];
    p.onAck({ type: 'ack', acks: [{ id: ids[0] as number, offset: 0, count: 1, duplicate: false }] });
    p.setConnection(undefined);
    const second = fakeConnection();
    p.setConnection(second.connection);
    await tick();
    expect(second.sent[0]?.map((m) => m.seq)).toEqual([1, 2]);
    const resent = second.sent[0]?.map((m) => m.id) ?? [];
    // A late ack for the superseded attempt is ignored; the new attempt's ack counts.
    p.onAck({ type: 'ack', acks: [{ id: ids[1] as number, offset: 99, count: 1, duplicate: false }] });
    p.onAck({ type: 'ack', acks: resent.map((id, i) => ({ id, offset: i + 1, count: 1, duplicate: i === 0 })) });
    expect(await Promise.all(pending)).toEqual([
      { topic: 't', partition: 0, offset: 0, duplicate: false },
      { topic: 't', partition: 0, offset: 1, duplicate: true },
      { topic: 't', partition: 0, offset: 2, duplicate: false },
    ]);
    expect(p.stats()).toMatchObject({ republished: 2, duplicates: 1, outboxMessages: 0 });
  });

  describe('a bounded resend (outbox.resendMessages, outbox.resendBytes)', () => {
    /** Acks every message of `frame` (a list of sent messages), offsets = seqs. */
    const ackAll = (p: Publisher, frame: Sent[] | undefined): void =>
      p.onAck({ type: 'ack', acks: (frame ?? []).map((m) => ({ id: m.id, offset: m.seq, count: 1, duplicate: false })) });

    it('on a new connection resends only the window, then the rest in order as acks free it, with the same seqs; newer publishes wait behind', async () => {
      const { publisher: p } = publisher({ resendMessages: 3 });
      const first = fakeConnection();
      p.setConnection(first.connection);
      const pending = Array.from({ length: 10 }, (_, i) => p.publish('t', i));
      await tick();
      // Steady state is not windowed: all ten leave in one frame.
      expect(first.sent.map((f) => f.length)).toEqual([10]);

      const second = fakeConnection();
      p.setConnection(second.connection);
      await tick();
      expect(second.sent.map((f) => f.map((m) => m.seq))).toEqual([[0, 1, 2]]);
      // Published during the resend: they get the next seqs and wait behind the older ones (no gap at the broker).
      for (let i = 10; i < 14; i++) pending.push(p.publish('t', i));
      await tick();
      expect(second.sent).toHaveLength(1);
      // An ack of one frees one place.
      p.onAck({ type: 'ack', acks: [{ id: second.sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: true }] });
      await tick();
      expect(second.sent[1]?.map((m) => m.seq)).toEqual([3]);
      ackAll(p, second.sent[0]?.slice(1));
      await tick();
      expect(second.sent[2]?.map((m) => m.seq)).toEqual([4, 5]);
      ackAll(p, second.sent[1]);
      ackAll(p, second.sent[2]);
      await tick();
      expect(second.sent[3]?.map((m) => m.seq)).toEqual([6, 7, 8]);
      ackAll(p, second.sent[3]);
      await tick();
      // Seq 9, the last message sent before, ends the resend: the newer ones go with it as in steady state, unbounded.
      expect(second.sent[4]?.map((m) => m.seq)).toEqual([9, 10, 11, 12, 13]);
      ackAll(p, second.sent[4]);
      const all = Array.from({ length: 14 }, (_, i) => i);
      expect((await Promise.all(pending)).map((r) => r.offset)).toEqual(all);
      // Every message went once on the new connection, in seq order, in the first incarnation.
      expect(second.sent.flat().map((m) => m.seq)).toEqual(all);
      expect(second.sent.flat().every((m) => m.incarnation === 0)).toBe(true);
      expect(p.stats()).toMatchObject({ republished: 10, outboxMessages: 0 });
    });

    it('resends at most the window on each of repeated failovers, from the oldest unacknowledged seq', async () => {
      const { publisher: p } = publisher({ resendMessages: 4 });
      const first = fakeConnection();
      p.setConnection(first.connection);
      for (let i = 0; i < 20; i++) void p.publish('t', i);
      await tick();
      const next = fakeConnection();
      p.setConnection(next.connection);
      await tick();
      expect(next.sent.flat().map((m) => m.seq)).toEqual([0, 1, 2, 3]);
      // Two of them acknowledged, then the connection fails over again before the rest are answered.
      ackAll(p, next.sent[0]?.slice(0, 2));
      p.setConnection(undefined);
      for (let round = 0; round < 3; round++) {
        const again = fakeConnection();
        p.setConnection(again.connection);
        await tick();
        expect(again.sent.flat().map((m) => m.seq)).toEqual([2, 3, 4, 5]);
      }
      expect(p.stats().republished).toBe(4 + 3 * 4);
    });

    it('bounds the window in bytes too, and still sends a message larger than it, alone', async () => {
      const { publisher: p } = publisher({ resendBytes: 2500 });
      const first = fakeConnection();
      p.setConnection(first.connection);
      const big = new Uint8Array(3000);
      const small = new Uint8Array(1000);
      for (const data of [big, small, small, small, small]) void p.publish('t', data);
      await tick();
      const second = fakeConnection();
      p.setConnection(second.connection);
      await tick();
      expect(second.sent.flat().map((m) => m.seq)).toEqual([0]);
      ackAll(p, second.sent[0]);
      await tick();
      // 1,000 data bytes plus the per-message overhead each: two fit in 2,500.
      expect(second.sent[1]?.map((m) => m.seq)).toEqual([1, 2]);
    });

    it('keeps each partition to its own window', async () => {
      const { publisher: p } = publisher({ resendMessages: 2 });
      const first = fakeConnection(2);
      p.setConnection(first.connection);
      for (let i = 0; i < 8; i++) void p.publish('t', i);
      await tick();
      const second = fakeConnection(2);
      p.setConnection(second.connection);
      await tick();
      expect(second.sent.flat().map((m) => [m.partition, m.seq])).toEqual([[0, 0], [0, 1], [1, 0], [1, 1]]);
    });

    it('bounds the resend after a gap answer as well, in order', async () => {
      const { publisher: p } = publisher({ resendMessages: 3 });
      const { connection, sent } = fakeConnection();
      p.setConnection(connection);
      for (let i = 0; i < 6; i++) void p.publish('t', i);
      await tick();
      p.onNack({ type: 'nack', id: sent[0]?.[1]?.id as number, code: 'SEQUENCE_GAP', message: 'gap', expectedSeq: 0 });
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(sent.slice(1).flat().map((m) => m.seq)).toEqual([0, 1, 2]);
    });

    it('a refusal frees room in the window as an ack does: SEQUENCE_TOO_OLD answers do not stall the rest', async () => {
      const { publisher: p } = publisher({ resendMessages: 2 });
      const first = fakeConnection();
      p.setConnection(first.connection);
      const pending = Array.from({ length: 4 }, (_, i) => p.publish('t', i));
      const outcomes = Promise.allSettled(pending);
      await tick();
      const second = fakeConnection();
      p.setConnection(second.connection);
      await tick();
      expect(second.sent.flat().map((m) => m.seq)).toEqual([0, 1]);
      for (const m of second.sent[0] ?? []) p.onNack({ type: 'nack', id: m.id, code: 'SEQUENCE_TOO_OLD', message: 'too old', expectedSeq: 9 });
      await tick();
      expect(second.sent[1]?.map((m) => m.seq)).toEqual([2, 3]);
      ackAll(p, second.sent[1]);
      expect((await outcomes).map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    });

    it('a pooled connection closing with older messages on it does not cut short a resend under way', async () => {
      const leader = fakeConnection();
      const { publisher: p } = publisher({ resendMessages: 2 }, (id) => (id === 'b2' ? leader.connection : undefined));
      const active = fakeConnection();
      p.setConnection(active.connection);
      const first = p.publish('t', 0);
      await tick();
      // Forwarded by the active broker: the ack names the leader, which is pooled; the next publishes go there.
      p.onAck({ type: 'ack', acks: [{ id: active.sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
      await first;
      for (let i = 1; i <= 6; i++) void p.publish('t', i);
      await tick();
      expect(leader.sent.flat().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      // The active broker fails over: the partition's resend (seqs 1-6) starts with a window on its leader.
      const next = fakeConnection();
      p.setConnection(next.connection);
      await tick();
      expect(leader.sent.slice(1).flat().map((m) => m.seq)).toEqual([1, 2]);
      // Then the leader's connection closes with that window on it: seqs 1-2 go again, and the resend still ends at seq 6.
      (leader.connection as { open: boolean }).open = false;
      p.connectionClosed(leader.connection);
      await tick();
      expect(next.sent.flat().map((m) => m.seq)).toEqual([1, 2]);
    });
  });

  it('republishes what was in flight when traffic moves straight to a standby (no disconnection between)', async () => {
    const { publisher: p } = publisher();
    const first = fakeConnection();
    p.setConnection(first.connection);
    const pending = [p.publish('t', 'a'), p.publish('t', 'b')];
    await tick();
    expect(first.sent.flat()).toHaveLength(2);
    const standby = fakeConnection();
    p.setConnection(standby.connection);
    await tick();
    expect(standby.sent.flat().map((m) => m.seq)).toEqual([0, 1]);
    p.onAck({ type: 'ack', acks: [{ id: standby.sent[0]?.[0]?.id as number, offset: 0, count: 2, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1]);
  });

  it('after a permanent refusal moves the later messages to a new incarnation, numbered from 0', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const refused = p.publish('t', 'refused');
    const later = [p.publish('t', 'x'), p.publish('t', 'y')];
    await tick();
    const [a, b] = sent[0] ?? [];
    p.onNack({ type: 'nack', id: a?.id as number, code: 'FORBIDDEN', message: 'no' });
    await expect(refused).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await tick();
    expect(sent[1]?.map((m) => [m.incarnation, m.seq])).toEqual([[1, 0], [1, 1]]);
    // The old copies' gap answers are stale (their attempts were superseded): ignored.
    p.onNack({ type: 'nack', id: b?.id as number, code: 'SEQUENCE_GAP', message: 'gap', expectedSeq: 0 });
    p.onAck({ type: 'ack', acks: [{ id: sent[1]?.[0]?.id as number, offset: 0, count: 2, duplicate: false }] });
    expect((await Promise.all(later)).map((r) => r.offset)).toEqual([0, 1]);
    expect(sent).toHaveLength(2);
  });

  it('holds a new incarnation back until the earlier messages settle, so a refusal never reorders a key (issue 10, finding 2)', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    // n is sent and stays unanswered (stuck behind a failing disk); n+1..n+5 are refused at once.
    const n = p.publish('t', 'n', { key: 'k' });
    await tick();
    const refused = p.publish('t', 'n+1', { key: 'k' });
    const moved = [2, 3, 4, 5].map((i) => p.publish('t', `n+${i}`, { key: 'k' }));
    await tick();
    for (const m of sent[1] ?? []) p.onNack({ type: 'nack', id: m.id, code: 'STORAGE_FULL', message: 'disk full' });
    await expect(refused).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    const later = [6, 7, 8].map((i) => p.publish('t', `n+${i}`, { key: 'k' }));
    await tick();
    await tick();
    // Nothing of the new incarnation leaves while n may still be stored: it would be stored before n.
    expect(sent.slice(2).flat().filter((m) => m.incarnation > 0)).toEqual([]);
    const nAttempt = sent.flat().filter((m) => m.incarnation === 0 && m.seq === 0).pop();
    p.onAck({ type: 'ack', acks: [{ id: nAttempt?.id as number, offset: 10, count: 1, duplicate: false }] });
    await expect(n).resolves.toMatchObject({ offset: 10 });
    await tick();
    // Now the rest goes, in publish order, as one new incarnation from seq 0.
    const next = sent.slice(2).flat().filter((m) => m.incarnation > 0);
    expect(next.map((m) => [m.incarnation, m.seq])).toEqual(Array.from({ length: 7 }, (_, i) => [1, i]));
    p.onAck({ type: 'ack', acks: [{ id: next[0]?.id as number, offset: 11, count: 7, duplicate: false }] });
    expect((await Promise.all([...moved, ...later])).map((r) => r.offset)).toEqual([11, 12, 13, 14, 15, 16, 17]);
  });

  it('answers a gap inside what is unacknowledged with an in-order resend, never a renumbering', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const pending = [0, 1, 2].map((i) => p.publish('t', i));
    await tick();
    const ids = sent[0]?.map((m) => m.id) ?? [];
    // Seq 0 is stored (its ack is late); seq 1 arrived before a copy of 0 on another path.
    p.onNack({ type: 'nack', id: ids[1] as number, code: 'SEQUENCE_GAP', message: 'gap', expectedSeq: 0 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(sent[1]?.map((m) => [m.incarnation, m.seq])).toEqual([[0, 0], [0, 1], [0, 2]]);
    p.onAck({ type: 'ack', acks: [{ id: sent[1]?.[0]?.id as number, offset: 0, count: 3, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1, 2]);
  });

  it('continues in a new incarnation when the broker lost seqs it had acknowledged', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    await Promise.all([p.publish('t', 0), tick().then(() => p.onAck({ type: 'ack', acks: [{ id: sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: false }] }))]);
    const next = p.publish('t', 1);
    await tick();
    // A restarted in-memory broker knows nothing of this producer: it expects seq 0 again.
    p.onNack({ type: 'nack', id: sent[1]?.[0]?.id as number, code: 'SEQUENCE_GAP', message: 'gap', expectedSeq: 0 });
    await tick();
    expect(sent[2]?.map((m) => [m.incarnation, m.seq])).toEqual([[1, 0]]);
    p.onAck({ type: 'ack', acks: [{ id: sent[2]?.[0]?.id as number, offset: 0, count: 1, duplicate: false }] });
    await expect(next).resolves.toMatchObject({ offset: 0 });
  });

  it('keeps a message on a retriable refusal and asks to fail over', async () => {
    const { publisher: p, failovers } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    void p.publish('t', 1);
    await tick();
    p.onNack({ type: 'nack', id: sent[0]?.[0]?.id as number, code: 'NO_QUORUM', message: 'no quorum here' });
    expect(failovers.map((f) => f.code)).toEqual(['NO_QUORUM']);
    expect(p.stats().outboxMessages).toBe(1);
  });

  it('follows a leader hint through the active broker (which forwards) instead of failing over', async () => {
    const { publisher: p, failovers } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const pending = [p.publish('t', 1), p.publish('t', 2)];
    await tick();
    // One refused batch: two nacks, one refusal.
    for (const m of sent[0] ?? []) p.onNack({ type: 'nack', id: m.id, code: 'NOT_LEADER', message: 'go', leader: 'b2' });
    await tick();
    expect(failovers).toEqual([]);
    expect(sent.map((frame) => frame.map((m) => m.seq))).toEqual([[0, 1], [0, 1]]);
    p.onAck({ type: 'ack', acks: [{ id: sent[1]?.[0]?.id as number, offset: 0, count: 2, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1]);
  });

  it('sends a partition to its pooled leader, and a refusal there moves it back to the active broker without a failover', async () => {
    const active = fakeConnection();
    const leader = fakeConnection();
    const { publisher: p, failovers } = publisher({}, (id) => (id === 'b2' ? leader.connection : undefined));
    p.setConnection(active.connection);
    const first = p.publish('t', 1);
    await tick();
    // Forwarded by the active broker: the ack names the leader.
    p.onAck({ type: 'ack', acks: [{ id: active.sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
    await first;
    const second = p.publish('t', 2);
    await tick();
    expect(leader.sent.flat().map((m) => m.seq)).toEqual([1]);
    p.onNack({ type: 'nack', id: leader.sent[0]?.[0]?.id as number, code: 'NO_QUORUM', message: 'lost its quorum' });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(failovers).toEqual([]);
    expect(active.sent.flat().map((m) => m.seq)).toEqual([0, 1]);
    p.onAck({ type: 'ack', acks: [{ id: active.sent[1]?.[0]?.id as number, offset: 1, count: 1, duplicate: false }] });
    await expect(second).resolves.toMatchObject({ offset: 1 });
  });

  describe('a partition whose brokers cannot reach its leader (a split)', () => {
    /** Active broker `b1` (two partitions); a refusal of partition 0 names `b4`, which the pool starts dialing. */
    async function refusedTowardB4(): Promise<{
      p: Publisher;
      failovers: RelayError[];
      active: ReturnType<typeof fakeConnection>;
      b4: ReturnType<typeof fakeConnection> & { brokerId: string };
      reached: string[];
      pooled: { b4: boolean };
      receipts: Array<Promise<unknown>>;
    }> {
      const active = fakeConnection(2);
      const b4 = { ...fakeConnection(2), brokerId: 'b4' };
      (b4.connection as unknown as { brokerId: string }).brokerId = 'b4';
      const pooled = { b4: false };
      const reached: string[] = [];
      const { publisher: p, failovers } = publisher(
        {},
        (id) => (id === 'b4' && pooled.b4 ? b4.connection : undefined),
        (id) => {
          reached.push(id);
          return id === 'b4';
        },
      );
      p.setConnection(active.connection);
      // Partitions 0 and 1, round robin.
      const receipts = [0, 1].map((i) => p.publish('t', i));
      await tick();
      const p0 = active.sent[0]?.find((m) => m.partition === 0) as Sent;
      p.onNack({ type: 'nack', id: p0.id, code: 'NO_QUORUM', message: 'b1 lost its links to b4, b5', leader: 'b4' });
      return { p, failovers, active, b4, reached, pooled, receipts };
    }

    it('holds the partition for the broker the refusal named while the pool dials it, then sends it there; no failover', async () => {
      const { p, failovers, active, b4, reached, pooled, receipts } = await refusedTowardB4();
      expect(reached).toEqual(['b4']);
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Not back through b1, which cannot reach the leader and would refuse it again.
      expect(active.sent.flat().filter((m) => m.partition === 0)).toHaveLength(1);
      pooled.b4 = true;
      p.connectionOpened(b4.connection);
      await tick();
      expect(b4.sent.flat().map((m) => [m.partition, m.seq])).toEqual([[0, 0]]);
      expect(failovers).toEqual([]);
      // Partition 1 never waited for partition 0.
      const p1 = active.sent[0]?.find((m) => m.partition === 1) as Sent;
      p.onAck({ type: 'ack', acks: [{ id: p1.id, offset: 0, count: 1, duplicate: false }] }, active.connection);
      await expect(receipts[1]).resolves.toMatchObject({ partition: 1, offset: 0 });
      p.onAck({ type: 'ack', acks: [{ id: b4.sent[0]?.[0]?.id as number, offset: 7, count: 1, duplicate: false, leader: 'b5' }] }, b4.connection);
      await expect(receipts[0]).resolves.toMatchObject({ partition: 0, offset: 7 });
      // The ack names b5 (not pooled): the partition stays with b4, which reached it, rather than going back to b1.
      void p.publish('t', 2);
      await tick();
      expect(b4.sent.flat().map((m) => [m.partition, m.seq])).toEqual([[0, 0], [0, 1]]);
      expect(active.sent.flat().filter((m) => m.partition === 0)).toHaveLength(1);
    });

    it('goes back through the active broker when the named broker is not reached within the bound', async () => {
      vi.useFakeTimers({ now: 1_000_000 });
      try {
        const { active, failovers } = await (async () => {
          const r = refusedTowardB4();
          await vi.advanceTimersByTimeAsync(0);
          return r;
        })();
        await vi.advanceTimersByTimeAsync(ROUTING_LIMITS.dialWaitMs - 10);
        expect(active.sent.flat().filter((m) => m.partition === 0)).toHaveLength(1);
        await vi.advanceTimersByTimeAsync(20);
        expect(active.sent.flat().filter((m) => m.partition === 0).map((m) => m.seq)).toEqual([0, 0]);
        expect(failovers).toEqual([]);
      } finally {
        vi.useRealTimers();
      }
    });

    it('a refusal from the broker that served the partition moves it back to the active broker', async () => {
      const { p, active, b4, pooled } = await refusedTowardB4();
      pooled.b4 = true;
      p.connectionOpened(b4.connection);
      await tick();
      p.onAck({ type: 'ack', acks: [{ id: b4.sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: false, leader: 'b5' }] }, b4.connection);
      pooled.b4 = false; // b4 is still open, but no longer the pooled leader
      void p.publish('t', 2);
      await tick();
      const sentToB4 = b4.sent.flat();
      expect(sentToB4.map((m) => m.seq)).toEqual([0, 1]);
      // b4 cannot reach b5 any more, and names nobody: the partition goes through the active broker.
      p.onNack({ type: 'nack', id: (sentToB4[1] as Sent).id, code: 'NO_QUORUM', message: 'no leader' });
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(active.sent.flat().filter((m) => m.partition === 0).map((m) => m.seq)).toEqual([0, 1]);
    });
  });

  it('follows at most 3 hints in a row with growing pauses, then fails over, and holds off the next failover', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { publisher: p, failovers } = publisher();
      const { connection, sent } = fakeConnection();
      p.setConnection(connection);
      void p.publish('t', 1).catch(() => {});
      await vi.advanceTimersByTimeAsync(0);
      const sentAt: number[] = [Date.now()];
      const refuse = async (): Promise<void> => {
        const last = sent[sent.length - 1]?.[0];
        p.onNack({ type: 'nack', id: last?.id as number, code: 'NOT_LEADER', message: 'go', leader: 'b9' });
        const before = sent.length;
        await vi.advanceTimersByTimeAsync(0);
        for (let waited = 0; sent.length === before && waited < 60_000; waited += 10) await vi.advanceTimersByTimeAsync(10);
        sentAt.push(Date.now());
      };
      for (let i = 0; i < 3; i++) await refuse(); // three hints followed
      expect(failovers).toEqual([]);
      await refuse(); // the fourth: a failover (the fake connection stays, so the partition is resent on it)
      expect(failovers).toHaveLength(1);
      await refuse(); // held off: resent later, no second failover
      expect(failovers).toHaveLength(1);
      const gaps = sentAt.slice(1).map((t, i) => t - (sentAt[i] as number));
      expect(gaps.slice(0, 3)).toEqual([0, 50, 100]);
      expect(gaps[4]).toBeGreaterThanOrEqual(400);
    } finally {
      vi.useRealTimers();
    }
  });

  it('cannot ping-pong: brokers that refuse forever cost a bounded, backed-off number of failovers and sends', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { publisher: p, failovers } = publisher();
      const brokers = [fakeConnection(), fakeConnection()];
      let current = 0;
      p.setConnection(brokers[0]?.connection);
      void p.publish('t', 1).catch(() => {});
      // Each broker refuses every send, naming the other as the leader; a failover swaps them.
      const refuseAll = (): void => {
        for (const b of brokers) {
          for (const frame of b.sent.splice(0)) for (const m of frame) p.onNack({ type: 'nack', id: m.id, code: 'NOT_LEADER', message: 'go', leader: 'other' });
        }
      };
      let sends = 0;
      for (let ms = 0; ms < 60_000; ms += 10) {
        sends += (brokers[0]?.sent.length ?? 0) + (brokers[1]?.sent.length ?? 0);
        const before = failovers.length;
        refuseAll();
        if (failovers.length > before) {
          current = 1 - current;
          p.setConnection(brokers[current]?.connection);
        }
        await vi.advanceTimersByTimeAsync(10);
      }
      // Holds of 1, 1, 2, 4, 8, 16, 30 s: at most 8 failovers in a minute; pauses of up to 2 s between sends.
      expect(failovers.length).toBeLessThanOrEqual(8);
      expect(sends).toBeLessThan(60);
    } finally {
      vi.useRealTimers();
    }
  });

  it('bounds the outbox: reject policy fails fast with OUTBOX_FULL', async () => {
    const { publisher: p } = publisher({ maxMessages: 2, policy: 'reject' });
    const { connection } = fakeConnection();
    p.setConnection(connection);
    void p.publish('t', 1);
    await tick(); // metadata known, both admitted
    void p.publish('t', 2);
    await expect(p.publish('t', 3)).rejects.toMatchObject({ code: 'OUTBOX_FULL' });
    expect(p.stats().outboxMessages).toBe(2);
  });

  it('bounds the outbox: block policy waits for room and keeps call order', async () => {
    const { publisher: p } = publisher({ maxMessages: 2, policy: 'block' });
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const all = [1, 2, 3, 4].map((i) => p.publish('t', i));
    await tick();
    expect(p.stats()).toMatchObject({ outboxMessages: 2, waiting: 2 });
    p.onAck({ type: 'ack', acks: (sent[0] ?? []).map((m, i) => ({ id: m.id, offset: i, count: 1, duplicate: false })) });
    await tick();
    expect(sent[1]?.map((m) => m.seq)).toEqual([2, 3]);
    p.onAck({ type: 'ack', acks: (sent[1] ?? []).map((m, i) => ({ id: m.id, offset: i + 2, count: 1, duplicate: false })) });
    expect((await Promise.all(all)).map((r) => r.offset)).toEqual([0, 1, 2, 3]);
  });

  it('holds publishes while disconnected and sends them on connect', async () => {
    const { publisher: p } = publisher();
    const pending = p.publish('t', 'queued');
    await tick();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    await tick();
    await tick();
    expect(sent.flat().map((m) => m.seq)).toEqual([0]);
    p.onAck({ type: 'ack', acks: [{ id: sent[0]?.[0]?.id as number, offset: 0, count: 1, duplicate: false }] });
    await expect(pending).resolves.toMatchObject({ offset: 0 });
  });

  it('asks for metadata again when the connection it asked on is lost', async () => {
    const { publisher: p } = publisher();
    const lost = {
      open: true,
      welcome: { limits: { maxPayload: 1024 * 1024, dedupeWindow: 16384, maxCredit: 10000 } },
      send: () => true,
      request: () => Promise.reject(new RelayError('CONNECTION_CLOSED', 'gone')),
    } as unknown as BrokerConnection;
    p.setConnection(lost);
    const pending = p.publish('t', 'survives');
    // The replacement arrives before the lost request's rejection is handled.
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    await tick();
    expect(sent.flat().map((m) => m.seq)).toEqual([0]);
    p.onAck({ type: 'ack', acks: [{ id: sent[0]?.[0]?.id as number, offset: 5, count: 1, duplicate: false }] });
    await expect(pending).resolves.toMatchObject({ offset: 5 });
  });

  it('resolves a range of publishes from one ack', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const pending = [p.publish('t', 1), p.publish('t', 2), p.publish('t', 3)];
    await tick();
    p.onAck({ type: 'ack', acks: [{ id: sent[0]?.[0]?.id as number, offset: 10, count: 3, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([10, 11, 12]);
  });

  it('does not renumber on a gap answer that predates an ack received meanwhile: the in-flight seq would be stored twice (issue 10, chaos: stored twice)', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const pending = [0, 1, 2, 3].map((i) => p.publish('t', i));
    await tick();
    const ids = sent[0]?.map((m) => m.id) ?? [];
    // Seq 3 reached the leader (straight, by a pooled connection) when only seq 0 was stored; seqs 1 and 2
    // were still on their way through the active broker. The acks of 0 and 1 arrive first, then that gap answer.
    p.onAck({ type: 'ack', acks: [{ id: ids[0] as number, offset: 0, count: 2, duplicate: false }] });
    p.onNack({ type: 'nack', id: ids[3] as number, code: 'SEQUENCE_GAP', message: 'gap', expectedSeq: 1 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    // Seq 2 may be stored already (its ack is on its way): resent with the same seq, never as a new incarnation.
    expect(sent.slice(1).flat().map((m) => [m.incarnation, m.seq])).toEqual([[0, 2], [0, 3]]);
    p.onAck({ type: 'ack', acks: [{ id: ids[2] as number, offset: 2, count: 1, duplicate: false }] });
    const resent = sent[1] ?? [];
    p.onAck({ type: 'ack', acks: [{ id: resent[0]?.id as number, offset: 2, count: 1, duplicate: true }, { id: resent[1]?.id as number, offset: 3, count: 1, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1, 2, 3]);
  });

  it.each(['INTERNAL', 'PROTOCOL_ERROR', 'LIMIT_EXCEEDED', 'STORAGE_ERROR', 'SOMETHING_NEW'])(
    'keeps the incarnation and seq on %s, whose outcome is unknown, and sends it again (issue 10, chaos: stored twice)',
    async (code) => {
      const { publisher: p } = publisher();
      const { connection, sent } = fakeConnection();
      p.setConnection(connection);
      const first = p.publish('t', 'maybe stored');
      const second = p.publish('t', 'after it');
      await tick();
      const ids = sent[0]?.map((m) => m.id) ?? [];
      p.onNack({ type: 'nack', id: ids[0] as number, code, message: 'the broker proposed it, then failed' });
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(sent.slice(1).flat().map((m) => [m.incarnation, m.seq])).toEqual([[0, 0], [0, 1]]);
      const again = sent[1] ?? [];
      p.onAck({ type: 'ack', acks: [{ id: again[0]?.id as number, offset: 0, count: 2, duplicate: true }] });
      await expect(first).resolves.toMatchObject({ offset: 0, duplicate: true });
      await expect(second).resolves.toMatchObject({ offset: 1 });
    },
  );

  it('keeps the seq when a validation refusal answers a republish: the earlier send may be stored (issue 10, chaos: stored twice)', async () => {
    const { publisher: p } = publisher();
    const first = fakeConnection();
    p.setConnection(first.connection);
    const pending = [p.publish('t', 'a'), p.publish('t', 'b')];
    await tick();
    // The first sends' answers are lost with their connection; a broker that is still starting refuses the republish.
    p.setConnection(undefined);
    const second = fakeConnection();
    p.setConnection(second.connection);
    await tick();
    const ids = second.sent[0]?.map((m) => m.id) ?? [];
    p.onNack({ type: 'nack', id: ids[0] as number, code: 'INVALID_PARTITION', message: 'topic t has no partition 0 (metadata not recovered yet)' });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(second.sent.slice(1).flat().map((m) => [m.incarnation, m.seq])).toEqual([[0, 0], [0, 1]]);
    p.onAck({ type: 'ack', acks: [{ id: second.sent[1]?.[0]?.id as number, offset: 0, count: 2, duplicate: true }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1]);
  });

  it('fails at once on a validation refusal when every earlier send was refused RATE_LIMITED, which the broker says before storing anything', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const startedAt = Date.now();
    const refused = p.publish('t', 'a', { timeoutMs: 5000 });
    const later = p.publish('t', 'b', { timeoutMs: 5000 });
    later.catch(() => {}); // awaited below; not an unhandled rejection should an expectation fail first
    await tick();
    // Over the session's rate: the whole batch is refused before it reaches the engine.
    for (const m of sent[0] ?? []) p.onNack({ type: 'nack', id: m.id, code: 'RATE_LIMITED', message: 'slow down' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(sent[1]?.map((m) => [m.incarnation, m.seq])).toEqual([[0, 0], [0, 1]]);
    // Meanwhile the partition went (a topic deleted and made again with fewer partitions, say).
    p.onNack({ type: 'nack', id: sent[1]?.[0]?.id as number, code: 'INVALID_PARTITION', message: 'topic t has no partition 0' });
    await expect(refused).rejects.toMatchObject({ code: 'INVALID_PARTITION' });
    expect(Date.now() - startedAt).toBeLessThan(1000);
    // Nothing of seq 0 can be stored: the message after it moves to a new incarnation.
    await tick();
    expect(sent[2]?.map((m) => [m.incarnation, m.seq])).toEqual([[1, 0]]);
    p.onAck({ type: 'ack', acks: [{ id: sent[2]?.[0]?.id as number, offset: 0, count: 1, duplicate: false }] });
    await expect(later).resolves.toMatchObject({ offset: 0 });
  });

  it('keeps the seq when a send between the RATE_LIMITED one and the validation refusal was lost with its connection: it may be stored', async () => {
    const { publisher: p } = publisher();
    const first = fakeConnection();
    p.setConnection(first.connection);
    const refused = p.publish('t', 'a', { timeoutMs: 600 });
    await tick();
    p.onNack({ type: 'nack', id: first.sent[0]?.[0]?.id as number, code: 'RATE_LIMITED', message: 'slow down' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(first.sent).toHaveLength(2);
    // The resend's answer is lost with its connection; the next broker refuses the republish.
    p.setConnection(undefined);
    const second = fakeConnection();
    p.setConnection(second.connection);
    await tick();
    p.onNack({ type: 'nack', id: second.sent[0]?.[0]?.id as number, code: 'INVALID_PARTITION', message: 'topic t has no partition 0' });
    await expect(refused).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('INVALID_PARTITION') });
    expect([...first.sent, ...second.sent].flat().every((m) => m.incarnation === 0 && m.seq === 0)).toBe(true);
  });

  it.each(['NOT_READY', 'NOT_LEADER', 'NO_QUORUM', 'SHUTTING_DOWN'] as const)(
    'keeps the seq when a validation refusal follows %s: the broker may say it of a publish it proposed',
    async (code) => {
      const { publisher: p } = publisher();
      const { connection, sent } = fakeConnection();
      p.setConnection(connection);
      const refused = p.publish('t', 'a', { timeoutMs: 400 });
      await tick();
      // E.g. NOT_READY: a broker that lost its metadata leader says it for the TIMEOUT of a publish it took (unlessNotReady).
      p.onNack({ type: 'nack', id: sent[0]?.[0]?.id as number, code, message: 'outcome unknown here' });
      await new Promise((resolve) => setTimeout(resolve, 150));
      p.onNack({ type: 'nack', id: sent.at(-1)?.[0]?.id as number, code: 'INVALID_PARTITION', message: 'topic t has no partition 0' });
      await expect(refused).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('INVALID_PARTITION') });
      expect(sent.flat().every((m) => m.incarnation === 0 && m.seq === 0)).toBe(true);
    },
  );

  it('times out a publish refused with unknown outcome, naming the refusal, and renumbers nothing (issue 10, chaos: stored twice)', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const refused = p.publish('t', 'x', { timeoutMs: 300 });
    await tick();
    p.onNack({ type: 'nack', id: sent[0]?.[0]?.id as number, code: 'INTERNAL', message: 'boom' });
    await expect(refused).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('INTERNAL: boom') });
    expect(sent.flat().every((m) => m.incarnation === 0 && m.seq === 0)).toBe(true);
  });

  it('times out each unanswered publish at its own timeout, on one timer, and leaves no timer once settled', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { publisher: p } = publisher();
      const { connection, sent } = fakeConnection();
      p.setConnection(connection);
      const outcomes: string[] = [];
      const track = (name: string, promise: Promise<unknown>): void => {
        promise.then(
          () => outcomes.push(`${name} acked`),
          (err: RelayError) => outcomes.push(`${name} ${err.code} ${err.message.includes(`within ${name === 'short' ? 100 : 30000} ms`)}`),
        );
      };
      track('default', p.publish('t', 'a'));
      track('short', p.publish('t', 'b', { timeoutMs: 100 }));
      const answered = p.publish('t', 'c');
      await vi.advanceTimersByTimeAsync(0);
      expect(vi.getTimerCount()).toBe(1);
      p.onAck({ type: 'ack', acks: [{ id: sent[0]?.[2]?.id as number, offset: 2, count: 1, duplicate: false }] });
      expect(await answered).toMatchObject({ offset: 2 });
      await vi.advanceTimersByTimeAsync(99);
      expect(outcomes).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(outcomes).toEqual(['short TIMEOUT true']);
      await vi.advanceTimersByTimeAsync(30_000 - 100);
      expect(outcomes).toEqual(['short TIMEOUT true', 'default TIMEOUT true']);
      expect(p.stats().timeouts).toBe(2);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('settles SEQUENCE_TOO_OLD with its outcome unknown and keeps the seqs after it (issue 10, chaos: stored twice)', async () => {
    const { publisher: p } = publisher();
    const { connection, sent } = fakeConnection();
    p.setConnection(connection);
    const old = p.publish('t', 'old');
    const later = p.publish('t', 'later');
    await tick();
    const ids = sent[0]?.map((m) => m.id) ?? [];
    p.onNack({ type: 'nack', id: ids[0] as number, code: 'SEQUENCE_TOO_OLD', message: 'out of the window' });
    await expect(old).rejects.toMatchObject({ code: 'SEQUENCE_TOO_OLD' });
    await tick();
    expect(sent).toHaveLength(1); // nothing renumbered or resent
    p.onAck({ type: 'ack', acks: [{ id: ids[1] as number, offset: 7, count: 1, duplicate: true }] });
    await expect(later).resolves.toMatchObject({ offset: 7 });
  });
});

describe('Publisher: moving a partition to its leader while publishes are in flight', () => {
  /** Active broker (forwards) and partition 0's leader b2 pooled; seqs 0 and 1 sent through the active broker. */
  async function twoInFlightThroughActive(): Promise<{
    p: Publisher;
    active: ReturnType<typeof fakeConnection>;
    leader: ReturnType<typeof fakeConnection>;
    pending: Array<Promise<{ offset: number; duplicate: boolean }>>;
  }> {
    const active = fakeConnection();
    const leader = fakeConnection();
    const { publisher: p } = publisher({}, (id) => (id === 'b2' ? leader.connection : undefined));
    p.setConnection(active.connection);
    const pending = [p.publish('t', 0), p.publish('t', 1)];
    await tick();
    expect(active.sent.map((frame) => frame.map((m) => m.seq))).toEqual([[0, 1]]);
    return { p, active, leader, pending };
  }

  it('holds the newer publishes until the older ones are answered on the old route, then sends them to the leader: no gap, no resend', async () => {
    const { p, active, leader, pending } = await twoInFlightThroughActive();
    const [m0, m1] = active.sent[0] as [Sent, Sent];
    // The forwarded seq 0 is acknowledged naming the leader; seq 1 is still on its way through the active broker.
    p.onAck({ type: 'ack', acks: [{ id: m0.id, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
    pending.push(p.publish('t', 2), p.publish('t', 3));
    await tick();
    // Sent to the leader now, seqs 2 and 3 could reach it before seq 1 (a gap, a resend): they wait.
    expect(leader.sent).toEqual([]);
    expect(active.sent).toHaveLength(1);
    p.onAck({ type: 'ack', acks: [{ id: m1.id, offset: 1, count: 1, duplicate: false, leader: 'b2' }] });
    await tick();
    expect(leader.sent.map((frame) => frame.map((m) => m.seq))).toEqual([[2, 3]]);
    const [m2] = leader.sent[0] as [Sent];
    p.onAck({ type: 'ack', acks: [{ id: m2.id, offset: 2, count: 2, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    expect(p.stats()).toMatchObject({ republished: 0, duplicates: 0 });
    // From now on straight to the leader, without waiting.
    const next = p.publish('t', 4);
    await tick();
    expect(leader.sent.map((frame) => frame.map((m) => m.seq))).toEqual([[2, 3], [4]]);
    p.onAck({ type: 'ack', acks: [{ id: (leader.sent[1] as [Sent])[0].id, offset: 4, count: 1, duplicate: false }] });
    await expect(next).resolves.toMatchObject({ offset: 4 });
  });

  it('sends a publish admitted while its partition waited once, in seq order, when the wait ends in the same turn', async () => {
    const { p, active, leader, pending } = await twoInFlightThroughActive();
    const [m0, m1] = active.sent[0] as [Sent, Sent];
    p.onAck({ type: 'ack', acks: [{ id: m0.id, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
    pending.push(p.publish('t', 2));
    await tick(); // seq 2 waits
    pending.push(p.publish('t', 3)); // queued, not flushed yet
    p.onAck({ type: 'ack', acks: [{ id: m1.id, offset: 1, count: 1, duplicate: false }] }); // the wait ends: seq 2 queued again
    await tick();
    expect(leader.sent.flat().map((m) => m.seq)).toEqual([2, 3]);
    p.onAck({ type: 'ack', acks: [{ id: (leader.sent[0] as [Sent])[0].id, offset: 2, count: 2, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    expect(p.stats()).toMatchObject({ published: 4, acknowledged: 4, republished: 0 });
  });

  it('bounds the wait: when the old route never answers, the partition is resent on the new one from its oldest unacknowledged seq', async () => {
    const { p, active, leader, pending } = await twoInFlightThroughActive();
    const [m0, m1] = active.sent[0] as [Sent, Sent];
    p.onAck({ type: 'ack', acks: [{ id: m0.id, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
    pending.push(p.publish('t', 2));
    await tick();
    expect(leader.sent).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, ROUTING_LIMITS.switchWaitMs + 50));
    // In order from seq 1; the copy of seq 1 on the old route is deduplicated by the leader.
    expect(leader.sent.map((frame) => frame.map((m) => m.seq))).toEqual([[1, 2]]);
    // A late answer on the old route is for a withdrawn attempt: ignored.
    p.onAck({ type: 'ack', acks: [{ id: m1.id, offset: 1, count: 1, duplicate: false }] });
    const [r1] = leader.sent[0] as [Sent];
    p.onAck({ type: 'ack', acks: [{ id: r1.id, offset: 1, count: 2, duplicate: false }] });
    expect((await Promise.all(pending)).map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(p.stats()).toMatchObject({ acknowledged: 3, republished: 1 });
  });

  it('changes a route only on fresher leader information: an ack of an earlier attempt naming another leader is ignored', async () => {
    const active = fakeConnection();
    const b2 = fakeConnection();
    const b3 = fakeConnection();
    const pooled = (id: string): BrokerConnection | undefined => (id === 'b2' ? b2.connection : id === 'b3' ? b3.connection : undefined);
    const { publisher: p } = publisher({}, pooled);
    p.setConnection(active.connection);
    const first = p.publish('t', 0);
    await tick();
    const second = p.publish('t', 1);
    await tick();
    const [[m0], [m1]] = active.sent as [[Sent], [Sent]];
    // Answers over two forwarding paths arrive out of order: the later attempt's (leader b3) first.
    p.onAck({ type: 'ack', acks: [{ id: m1.id, offset: 1, count: 1, duplicate: false, leader: 'b3' }] });
    p.onAck({ type: 'ack', acks: [{ id: m0.id, offset: 0, count: 1, duplicate: false, leader: 'b2' }] });
    await Promise.all([first, second]);
    const third = p.publish('t', 2);
    await tick();
    expect(b3.sent.map((frame) => frame.map((m) => m.seq))).toEqual([[2]]);
    expect(b2.sent).toEqual([]);
    p.onAck({ type: 'ack', acks: [{ id: (b3.sent[0] as [Sent])[0].id, offset: 2, count: 1, duplicate: false }] });
    await expect(third).resolves.toMatchObject({ offset: 2 });
  });
});
