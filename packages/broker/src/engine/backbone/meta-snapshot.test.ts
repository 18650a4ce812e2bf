import { describe, expect, it } from 'vitest';
import { BackboneMetadata, type MetaCommand } from './metadata.js';
import {
  captureState,
  CompactionPolicy,
  encodeSnapshot,
  metaRetention,
  parseSnapshotPart,
  partProperties,
  restoreState,
  SnapshotAssembler,
  type SnapshotPart,
} from './meta-snapshot.js';

/** A deterministic pseudo-random source (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Commands touching every part of the state: topics (created, raised, deleted), durable positions, groups. */
function command(rand: () => number, n: number): MetaCommand {
  const topic = `t${Math.floor(rand() * 6)}`;
  const r = rand();
  if (r < 0.15) return { type: 'topic-create', topic, partitions: 1 + Math.floor(rand() * 3), generation: `g${n}`, ...(n % 2 === 0 ? { replicationFactor: 1 + (n % 3) } : {}) };
  if (r < 0.2) return { type: 'topic-alter', topic, partitions: 2 + Math.floor(rand() * 4) };
  if (r < 0.23) return { type: 'topic-delete', topic };
  if (r < 0.75) return { type: 'positions', durable: `d${Math.floor(rand() * 40)}`, positions: [{ topic, partition: 0, offset: n }] };
  if (r < 0.9) return { type: 'group', command: { type: 'group-join', group: `grp${Math.floor(rand() * 3)}`, member: `m${Math.floor(rand() * 5)}`, pattern: 't*', sessionTimeoutMs: 10_000 } };
  return { type: 'group', command: { type: 'group-leave', group: `grp${Math.floor(rand() * 3)}`, member: `m${Math.floor(rand() * 5)}`, positions: [] } };
}

/** The whole state, comparable with toEqual. */
function view(state: BackboneMetadata): unknown {
  return captureState(state);
}

describe('metadata snapshots', () => {
  it('restoring a snapshot taken after k entries and applying the rest gives the state of applying everything', () => {
    const rand = random(7);
    const commands = Array.from({ length: 400 }, (_, n) => command(rand, n));
    const full = new BackboneMetadata();
    for (const c of commands) full.apply(c);
    for (const k of [0, 1, 57, 200, 399]) {
      const before = new BackboneMetadata();
      for (const c of commands.slice(0, k)) before.apply(c);
      const restored = new BackboneMetadata();
      restoreState(restored, JSON.parse(JSON.stringify(captureState(before))) as ReturnType<typeof captureState>);
      for (const c of commands.slice(k)) restored.apply(c);
      expect(view(restored)).toEqual(view(full));
    }
    expect(full.topics.size).toBeGreaterThan(0);
    expect(full.positions.size).toBeGreaterThan(0);
    expect(full.groups.toRecords().length).toBeGreaterThan(0);
  });

  it('splits a snapshot into parts, reads the parts back through their properties, and assembles interleaved snapshots by id', () => {
    const state = new BackboneMetadata();
    const rand = random(3);
    for (let n = 0; n < 300; n++) state.apply(command(rand, n));
    const a = encodeSnapshot('a', 41n, captureState(state), 1000);
    const b = encodeSnapshot('b', 45n, captureState(state), 1500);
    expect(a.length).toBeGreaterThan(2);
    const reread = (p: SnapshotPart): SnapshotPart => parseSnapshotPart(partProperties(p), p.data) as SnapshotPart;
    expect(reread(a[1] as SnapshotPart)).toEqual(a[1]);
    expect(parseSnapshotPart({ other: 'x' }, Buffer.from('{}'))).toBeUndefined();
    expect(parseSnapshotPart({ 'relaymq-snapshot': 'x', upTo: '-1', part: '0', parts: '1' }, Buffer.from('{}'))).toBeUndefined();

    const assembler = new SnapshotAssembler();
    // b's parts interleave with a's; a part of a snapshot whose first part came before the read started is ignored.
    expect(assembler.add(reread(encodeSnapshot('old', 1n, captureState(state), 1000)[1] as SnapshotPart), 99n)).toBeUndefined();
    let offset = 100n;
    const done: Array<{ id: string; firstOffset: bigint; upTo: bigint }> = [];
    const order = [...a.map((p) => ['a', p] as const), ...b.map((p) => ['b', p] as const)].sort((x, y) => x[1].part - y[1].part);
    for (const [, p] of order) {
      const snapshot = assembler.add(reread(p), offset++);
      if (snapshot !== undefined) {
        expect(snapshot.data).toEqual(JSON.parse(JSON.stringify(captureState(state))));
        done.push({ id: snapshot.id, firstOffset: snapshot.firstOffset, upTo: snapshot.upTo });
      }
    }
    expect(done.map((d) => d.id).sort()).toEqual(['a', 'b']);
    expect(done.find((d) => d.id === 'a')).toMatchObject({ firstOffset: 100n, upTo: 41n });
  });

  it('is due after the entry or byte threshold for the coordinator, after twice that for the others, counting from the last snapshot read', () => {
    const policy = new CompactionPolicy(10, 1_000_000);
    for (let o = 0n; o < 10n; o++) policy.entryApplied(o, 10);
    expect(policy.due(true)).toBe(true);
    expect(policy.due(false)).toBe(false);
    for (let o = 10n; o < 20n; o++) policy.entryApplied(o, 10);
    expect(policy.due(false)).toBe(true);
    // A snapshot covering up to offset 14: 5 entries after it.
    policy.snapshotRead(14n);
    expect(policy.since().entries).toBe(5);
    expect(policy.due(true)).toBe(false);
    // An older snapshot read later changes nothing.
    policy.snapshotRead(3n);
    expect(policy.since().entries).toBe(5);
    const bytes = new CompactionPolicy(1_000, 2_000);
    bytes.entryApplied(0n, 2_000);
    expect(bytes.due(true)).toBe(true);
    expect(bytes.due(false)).toBe(false);
  });

  it('sizes the metadata stream so that segments are B/8 and snapshots come after B/16 bytes', () => {
    expect(metaRetention(256 * 1024 * 1024)).toEqual({
      streamArguments: { 'max-length-bytes': 268_435_456, 'stream-max-segment-size-bytes': 33_554_432 },
      snapshotEveryBytes: 16_777_216,
      maxSafeSnapshotBytes: 33_554_432,
    });
  });
});

/**
 * A model of a RabbitMQ stream with size retention (osiris: a segment rolls
 * over once it holds at least the segment size; at a roll-over the oldest
 * segments are deleted while the stream is larger than max-length-bytes,
 * never the active one), written by two gateways that snapshot by the
 * CompactionPolicy, the coordinator sometimes gone. After every write, a
 * gateway starting from the stored pointer, reading only what is retained,
 * must end with the live state.
 */
interface ModelRecord {
  offset: bigint;
  bytes: number;
  entry?: MetaCommand;
  part?: SnapshotPart;
}

class ModelStream {
  /** Segments, oldest first; the last one is active. */
  readonly segments: ModelRecord[][] = [[]];
  private next = 0n;
  deleted = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly segmentBytes: number,
    /** What RabbitMQ stores per record beyond its body (chunk header, AMQP framing), below RECORD_OVERHEAD_BYTES. */
    private readonly overhead = 80,
  ) {}

  append(record: Omit<ModelRecord, 'offset' | 'bytes'>, body: number): bigint {
    const offset = this.next++;
    const active = this.segments.at(-1) as ModelRecord[];
    active.push({ ...record, offset, bytes: body + this.overhead });
    if (size(active) >= this.segmentBytes) {
      this.segments.push([]);
      while (this.segments.length > 1 && this.segments.reduce((n, s) => n + size(s), 0) > this.maxBytes) {
        this.segments.shift();
        this.deleted++;
      }
    }
    return offset;
  }

  retained(): ModelRecord[] {
    return this.segments.flat();
  }
}

const size = (segment: ModelRecord[]): number => segment.reduce((n, r) => n + r.bytes, 0);

describe('metadata stream retention (model)', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`never removes what a starting gateway needs (seed ${seed}): the pointed snapshot and every entry after it survive`, () => {
      const rand = random(seed);
      const maxBytes = 128 * 1024;
      const retention = metaRetention(maxBytes);
      const stream = new ModelStream(maxBytes, retention.streamArguments['stream-max-segment-size-bytes']);
      const live = new BackboneMetadata();
      const gateways = [0, 1].map(() => ({ policy: new CompactionPolicy(400, retention.snapshotEveryBytes), writing: undefined as undefined | { parts: SnapshotPart[]; after: number } }));
      const assemblers = gateways.map(() => new SnapshotAssembler());
      let pointer: bigint | undefined;
      let coordinatorAlive = true;
      let checks = 0;
      for (let n = 0; n < 8_000; n++) {
        if (n % 500 === 0) coordinatorAlive = rand() < 0.6;
        const c = command(rand, n);
        const body = Buffer.byteLength(JSON.stringify({ id: `x:${n}`, command: c }));
        const offset = stream.append({ entry: c }, body);
        live.apply(c);
        gateways.forEach((g, i) => {
          g.policy.entryApplied(offset, body);
          const writer = i === 0 ? coordinatorAlive : true;
          if (writer && g.writing === undefined && g.policy.due(i === 0)) {
            // Captured at this entry; written after a few more entries of other gateways.
            const parts = encodeSnapshot(`g${i}:${n}`, offset, captureState(live), 2048);
            // The regime the sizing is for: snapshots up to B/8.
            expect(parts.reduce((b, p) => b + p.data.length, 0)).toBeLessThanOrEqual(retention.maxSafeSnapshotBytes);
            g.writing = { parts, after: Math.floor(rand() * 30) };
          }
        });
        for (const [i, g] of gateways.entries()) {
          if (g.writing === undefined || g.writing.after-- > 0) continue;
          let first: bigint | undefined;
          for (const part of g.writing.parts) {
            const at = stream.append({ part }, part.data.length);
            first ??= at;
            gateways.forEach((h, j) => {
              const done = assemblers[j]?.add(part, at);
              if (done !== undefined) h.policy.snapshotRead(done.upTo);
            });
          }
          if (pointer === undefined || (first as bigint) > pointer) pointer = first;
          g.writing = undefined;
          void i;
        }
        if (pointer === undefined || n % 10 !== 0) continue;
        // A gateway starting now: the pointed snapshot, then every retained entry after what it covers.
        const records = stream.retained();
        const assembler = new SnapshotAssembler();
        let snapshot;
        for (const r of records) if (r.offset >= pointer && r.part !== undefined) snapshot ??= assembler.add(r.part, r.offset);
        expect(snapshot, `the pointed snapshot at ${pointer} is retained`).toBeDefined();
        if (snapshot === undefined) return;
        const firstRetained = records[0]?.offset ?? 0n;
        expect(firstRetained <= snapshot.upTo + 1n, `entries after ${snapshot.upTo} are retained (first retained ${firstRetained})`).toBe(true);
        const started = new BackboneMetadata();
        restoreState(started, JSON.parse(Buffer.from(JSON.stringify(snapshot.data)).toString()) as ReturnType<typeof captureState>);
        for (const r of records) if (r.offset > snapshot.upTo && r.entry !== undefined) started.apply(r.entry);
        expect(view(started)).toEqual(view(live));
        checks++;
      }
      // Retention did remove segments, and the check ran throughout.
      expect(stream.deleted).toBeGreaterThan(3);
      expect(checks).toBeGreaterThan(50);
    });
  }
});
