/**
 * Encode once (issue 12): a leader encodes a normal entry's body once for
 * every follower that reads bodies and for its own record; a follower stores
 * the body its append brought, without encoding the command again; a peer
 * that did not tell it reads bodies gets entries as before.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as protocol from '@relaymq/sdk/protocol';
import type { Message } from '../core/raft/index.js';
import { PeerTransport, type PeerAddress } from '../net/peer-transport.js';
import { PEER_SCAN_LIMITS } from '../net/peer-frames.js';
import { normalEntryBody } from '../storage/entry-bodies.js';
import { DurableRaftStorage } from '../storage/raft-storage.js';
import { SegmentRaftStorage } from '../storage/segment-raft-storage.js';
import { freePorts } from '../../../../test/support/ports.js';
import { waitFor } from '../../../../test/support/wait.js';
import { RaftGroup } from './raft-group.js';
import { ENTRY_BODIES, parseRaftMessage, withEntryBodies } from './raft-wire.js';

/** Every value the pinned codec encoded in this file's module graph: an entry body is `{ t: 'normal', d }`. */
const encoded: unknown[] = [];
vi.mock('@relaymq/sdk/protocol', async (importOriginal) => {
  const original = await importOriginal<typeof protocol>();
  return {
    ...original,
    encodeValue: (value: unknown): Uint8Array => {
      encoded.push(value);
      return original.encodeValue(value);
    },
  };
});

/** Bodies encoded of the command `command` (its entry's record or append). */
const bodiesEncoded = (command: unknown): number => encoded.filter((v) => (v as { t?: unknown; d?: unknown } | null)?.t === 'normal' && (v as { d?: unknown }).d === command).length;

interface Command {
  producerId: string;
  messages: Array<{ data: Uint8Array }>;
}

const parseCommand = (value: unknown): Command | undefined => {
  const o = value as Partial<Command> | null;
  return typeof o === 'object' && o !== null && typeof o.producerId === 'string' && Array.isArray(o.messages) && o.messages.every((m) => m.data instanceof Uint8Array)
    ? { producerId: o.producerId, messages: o.messages.map((m) => ({ data: m.data })) }
    : undefined;
};

const dirs: string[] = [];
const groups: Array<RaftGroup<Command, Command>> = [];
afterEach(async () => {
  for (const group of groups.splice(0)) group.stop();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});


/** Replica `self` of a, b, c on a unified segment log; its transport records what it sends, and tells `reads` (peers that read bodies). */
async function replica(self: string, reads: readonly string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-bodies-'));
  dirs.push(dir);
  const storage = await SegmentRaftStorage.open<Command, never>(join(dir, 'p'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000 });
  const sent: Array<Message<Command, never>> = [];
  const wire: unknown[] = [];
  const logged: string[] = [];
  const transport = {
    send: (_to: string, _channel: string, message: unknown) => {
      wire.push(message);
      sent.push(message as Message<Command, never>);
      return true;
    },
    understands: (peer: string, feature: string) => feature === ENTRY_BODIES && reads.includes(peer),
  } as unknown as PeerTransport;
  const group = new RaftGroup<Command, Command>({ id: 'p/t/0', self, transport, storage, parseData: parseCommand, apply: (d) => d, log: (_level, message) => void logged.push(message) });
  groups.push(group);
  return { group, storage, sent, wire, logged };
}

/** Ticks `a` until it leads (b grants every vote), and commits its no-op on b and c. */
async function lead(a: Awaited<ReturnType<typeof replica>>): Promise<void> {
  const { group, sent } = a;
  const askedB = (): boolean => sent.some((m) => m.to === 'b' && (m.type === 'vote' || m.type === 'pre-vote'));
  // A follower is ticked until it campaigns; a (pre-)candidate's request to b leaves once its vote is on disk, and b
  // grants it (pre-vote, then vote). Not ticked meanwhile: a slow disk must not let its election time out and restart.
  for (let i = 0; i < 500 && !group.isLeader(); i++) {
    if (group.node.role === 'follower') {
      group.tick();
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    await waitFor(() => group.isLeader() || askedB(), 'a to ask b for its vote');
    for (const m of sent.splice(0)) {
      if (m.to === 'b' && (m.type === 'vote' || m.type === 'pre-vote')) group.receive('b', { type: m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp', from: 'b', to: 'a', term: m.term, reject: false });
    }
  }
  await waitFor(() => group.isLeader(), 'a to lead');
  for (const from of ['b', 'c']) group.receive(from, { type: 'app-resp', from, to: 'a', term: group.node.term, index: group.node.lastIndex, reject: false, hintIndex: 0, hintTerm: 0 });
  await waitFor(() => group.applied === group.node.lastIndex, 'the no-op to apply');
}

/** A message as it crosses the peer transport: encoded with the pinned codec, decoded with the peer limits. */
const overTheWire = (value: unknown): unknown => protocol.decodeValue(protocol.encodeValue(value), PEER_SCAN_LIMITS);

const command = (): Command => ({ producerId: 'p1', messages: [1, 2, 3].map((i) => ({ data: new Uint8Array(1024).fill(i) })) });

/** The data of the record at `index` in `storage`'s segment log: the entry's body as stored. */
async function recordBody(storage: SegmentRaftStorage<Command, never>, index: number): Promise<Uint8Array> {
  const [record] = await storage.segments.read(index, 1, 1 << 20);
  expect(record?.offset).toBe(index);
  return Buffer.from(record?.data ?? []);
}

/** `a` leads and proposes a fresh command, counted from an empty encode log; resolves once its own record is written. */
async function proposeAsLeader(a: Awaited<ReturnType<typeof replica>>): Promise<{ proposed: Command; index: number; result: Promise<Command> }> {
  await lead(a);
  a.sent.length = 0;
  a.wire.length = 0;
  const proposed = command();
  const index = a.group.node.lastIndex + 1;
  encoded.length = 0;
  const result = a.group.propose(proposed, 5000);
  result.catch(() => {});
  await waitFor(() => a.storage.segments.durableOffset > index, 'its own record');
  return { proposed, index, result };
}

describe('a leader sending entries to followers that read bodies', () => {
  it('encodes the body once, for both followers and its own record', async () => {
    const a = await replica('a', ['b', 'c']);
    const { proposed, index, result } = await proposeAsLeader(a);
    const appends = a.wire.filter((m): m is { to: string; entries: Array<{ body?: Uint8Array; data?: unknown }> } => (m as { type?: string }).type === 'app' && (m as { entries: unknown[] }).entries.length > 0);
    expect(appends.map((m) => m.to).sort()).toEqual(['b', 'c']);
    const [toB, toC] = appends.map((m) => m.entries[0]);
    expect(toB?.data).toBeUndefined();
    expect(toB?.body).toBeInstanceOf(Uint8Array);
    expect(toC?.body).toBe(toB?.body); // the same bytes, not an equal encoding
    expect(await recordBody(a.storage, index)).toEqual(Buffer.from(toB?.body ?? []));
    expect(bodiesEncoded(proposed)).toBe(1);
    a.group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term: a.group.node.term, index, reject: false, hintIndex: 0, hintTerm: 0 });
    await expect(result).resolves.toEqual(proposed);
    // Applied: the body is not kept for the rest of the in-memory window (a follower lagging gets it encoded again).
    normalEntryBody(proposed);
    expect(bodiesEncoded(proposed)).toBe(2);
  });

  it('sends a peer that did not tell it reads bodies its entries as before, and still encodes once for the rest', async () => {
    const a = await replica('a', ['b']);
    const { proposed, index } = await proposeAsLeader(a);
    const entryTo = (to: string) => (a.wire.find((m) => (m as { to?: string }).to === to && (m as { entries?: unknown[] }).entries?.length) as { entries: Array<Record<string, unknown>> }).entries[0];
    expect(entryTo('c')).toEqual({ type: 'normal', index, term: a.group.node.term, data: proposed });
    expect(entryTo('c')).not.toHaveProperty('body');
    expect(entryTo('b')?.body).toBeInstanceOf(Uint8Array);
    // The old form, across the wire, is what a broker from before reads.
    expect(parseRaftMessage(overTheWire(a.wire.find((m) => (m as { to?: string }).to === 'c' && (m as { entries?: unknown[] }).entries?.length)), parseCommand)).toBeDefined();
    expect(bodiesEncoded(proposed)).toBe(1); // b's append and the record (c's goes through the transport's own encode, as before)
  });
});

describe('a follower receiving bodies', () => {
  it('stores the bytes the leader encoded, without encoding the command again', async () => {
    const b = await replica('b', []);
    const proposed = command();
    const leaderMessage: Message<Command, never> = { type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'normal', index: 1, term: 1, data: proposed }] };
    const sent = withEntryBodies(leaderMessage) as { entries: Array<{ body: Uint8Array }> };
    const leaderBody = Buffer.from(sent.entries[0]?.body ?? []);
    const arrived = overTheWire(sent);
    encoded.length = 0;
    b.group.receive('a', arrived);
    await waitFor(() => b.storage.segments.durableOffset > 1, 'its record');
    expect(await recordBody(b.storage, 1)).toEqual(leaderBody);
    expect(encoded.filter((v) => (v as { t?: unknown } | null)?.t === 'normal')).toEqual([]);
    await waitFor(() => b.group.applied === 1, 'the entry to apply');
    const [stored] = await b.storage.readCommitted(1, 1, 1 << 20);
    expect(stored?.entry).toEqual({ type: 'normal', index: 1, term: 1, data: proposed });
    expect(b.sent.some((m) => m.type === 'app-resp' && !m.reject && m.index === 1)).toBe(true);
  });

  it('drops an append whose body is malformed (it says so) and takes the next good one', async () => {
    const b = await replica('b', []);
    const good = withEntryBodies<Command, never>({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ type: 'normal', index: 1, term: 1, data: command() }] }) as { entries: Array<Record<string, unknown>> };
    const body = good.entries[0]?.body as Uint8Array;
    const broken = [
      Uint8Array.of(0xc1), // not msgpack
      body.subarray(0, body.length - 10), // cut short
      protocol.encodeValue({ t: 'noop' }), // not a normal entry's body
      protocol.encodeValue({ t: 'normal', d: { producerId: 7 } }), // not a command
      Uint8Array.of(0xd6, 0x01, 0, 0, 0, 0), // an extension type
      'not bytes',
    ];
    for (const bad of broken) b.group.receive('a', overTheWire({ ...good, entries: [{ ...good.entries[0], body: bad }] }));
    expect(b.logged.filter((m) => m === 'dropping malformed raft message')).toHaveLength(broken.length);
    expect(b.group.node.lastIndex).toBe(0);
    b.group.receive('a', overTheWire(good));
    await waitFor(() => b.sent.some((m) => m.type === 'app-resp' && !m.reject && m.index === 1), 'the good append to be taken');
  });
});

describe('entries between brokers of two versions, over real sockets', () => {
  const running: Array<{ transport: PeerTransport; group: RaftGroup<Command, Command>; stop: () => void }> = [];
  afterEach(async () => {
    for (const broker of running.splice(0)) {
      broker.stop();
      broker.group.stop();
      await broker.transport.close();
    }
  });

  it('a broker that does not read bodies gets entries as before, the others bodies, and all apply the same commands', async () => {
    const ids = ['a', 'b', 'c'];
    const ports = await freePorts(3);
    const peers: PeerAddress[] = ids.map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number }));
    /** c is from before bodies: it does not tell the feature. */
    const brokers = await Promise.all(
      peers.map(async (self) => {
        const transport = new PeerTransport({
          id: self.id,
          host: '127.0.0.1',
          port: self.port,
          peers,
          maxFrameBytes: 4 * 1024 * 1024,
          maxQueuedBytes: 16 * 1024 * 1024,
          reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
          ...(self.id === 'c' ? {} : { features: [ENTRY_BODIES] }),
          log: () => {},
        });
        const storage = await DurableRaftStorage.open<Command, never>(undefined, ids);
        const applied: Command[] = [];
        const group = new RaftGroup<Command, Command>({
          id: 'p/t/0',
          self: self.id,
          transport,
          storage,
          config: { electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true },
          parseData: parseCommand,
          apply: (command) => (applied.push(command), command),
          log: () => {},
        });
        /** The entries of every append this broker received, as they came off the wire. */
        const received: Array<Record<string, unknown>> = [];
        transport.on('message', (from, channel, payload) => {
          const entries = (payload as { entries?: unknown }).entries;
          if (Array.isArray(entries)) received.push(...(entries as Array<Record<string, unknown>>).filter((e) => e.type === 'normal'));
          if (channel === 'raft/p/t/0') group.receive(from, payload);
        });
        const ticker = setInterval(() => group.tick(), 10);
        const broker = { id: self.id, transport, group, applied, received, stop: () => clearInterval(ticker) };
        running.push(broker);
        return broker;
      }),
    );
    await Promise.all(brokers.map((b) => b.transport.listen()));
    const [a, b, c] = brokers as [(typeof brokers)[number], (typeof brokers)[number], (typeof brokers)[number]];
    await waitFor(() => brokers.some((x) => x.group.isLeader()), 'a leader', 10_000);
    if (!a.group.isLeader()) {
      (brokers.find((x) => x.group.isLeader()) as (typeof brokers)[number]).group.transferLeadership('a');
      await waitFor(() => a.group.isLeader(), 'a to lead', 10_000);
    }
    const commands = [command(), command(), command()];
    for (const proposed of commands) await a.group.propose(proposed, 10_000);
    await waitFor(() => brokers.every((x) => x.applied.length === commands.length), 'every broker to apply the commands', 10_000);
    // Decoded byte strings are Buffers: compare the bytes.
    const bytesOf = (list: Command[]): string[][] => list.map((cmd) => cmd.messages.map((m) => Buffer.from(m.data).toString('hex')));
    for (const x of brokers) expect(bytesOf(x.applied)).toEqual(bytesOf(commands));
    expect(c.received.length).toBeGreaterThanOrEqual(commands.length);
    for (const entry of c.received) expect(Object.keys(entry).sort()).toEqual(['data', 'index', 'term', 'type']);
    expect(b.received.length).toBeGreaterThanOrEqual(commands.length);
    for (const entry of b.received) expect(Object.keys(entry).sort()).toEqual(['body', 'index', 'term', 'type']);
  });
});
