/**
 * The SWIM state machine (with memberlist's and Lifeguard's refinements):
 * probe one member per probe interval, ask `indirectChecks` peers to probe it
 * when the direct ack is late, suspect it when neither answered, declare it
 * dead when the suspicion times out unless the member refutes it by raising
 * its incarnation. Updates ride on every message and on periodic gossip
 * rounds; full-state syncs join the cluster, repair what gossip missed, and
 * heal partitions.
 *
 * Pure and tick-driven: no clock, timer, socket or global randomness. The
 * runtime calls `tick()` on every tick of the broker's ticker (the config is
 * converted to that tick from milliseconds), hands each validated peer message to `step()`, and
 * after each call `drain()`s the messages to send and the events to apply.
 */
import { Awareness } from './awareness.js';
import { BroadcastQueue, estimateUpdateBytes, retransmitLimit } from './broadcast.js';
import { indirectNackTicks, resolveSwimConfig, type SwimConfig, type SwimConfigOptions } from './config.js';
import { Suspicion, expectedConfirmations, suspicionBounds } from './suspicion.js';
import type {
  Member,
  MemberId,
  MemberMeta,
  MemberSnapshot,
  MembershipEvent,
  MembershipEventType,
  Outbound,
  RandomSource,
  SeedPeer,
  SwimMessage,
  SwimOutput,
  Update,
} from './types.js';
import { checkIdentity, checkMeta } from './validate.js';

export interface SwimInit {
  /** This member's id (unique in the cluster). */
  id: MemberId;
  /** This member's peer address, `host:port`. */
  address: string;
  /** What this member advertises: its client URL and load. */
  meta: MemberMeta;
  /** Randomness for probe order, gossip targets and start phases; derive it per node. */
  random: RandomSource;
  config?: SwimConfigOptions;
  /**
   * Incarnation to start at. 0 is fine after a restart: the member raises it
   * past whatever the cluster remembers as soon as it hears about itself.
   * @defaultValue 0
   */
  incarnation?: number;
}

/**
 * Switches that break the protocol on purpose, so the simulator can show its
 * checkers are not vacuous. Not exported from `index.ts`.
 * @internal
 */
export interface SwimTestKnobs {
  /** Refute suspicions and deaths about this member. */
  refute: boolean;
  /** Lifeguard local health scaling of probe timeouts. */
  awareness: boolean;
}

const DEFAULT_KNOBS: Readonly<SwimTestKnobs> = Object.freeze({ refute: true, awareness: true });

/** Counters; every queue's size and every drop is visible here. */
export interface SwimStats {
  tick: number;
  incarnation: number;
  /** Lifeguard health score (0 healthy, up to `awarenessMaxMultiplier − 1`). */
  awareness: number;
  members: Record<Member['state'], number>;
  probes: number;
  probesFailed: number;
  indirectProbes: number;
  suspicionsStarted: number;
  refutations: number;
  /** Messages ignored: from self, ping for another id, unknown seq. */
  messagesIgnored: number;
  /** `ping-req`s dropped because `maxPendingIndirect` relays were running. */
  relaysDropped: number;
  /** Updates about new members dropped because `maxMembers` was reached. */
  membersRejected: number;
  outboxDropped: number;
  eventsDropped: number;
  pendingRelays: number;
  broadcasts: ReturnType<BroadcastQueue['stats']>;
}

interface Entry {
  member: Member;
  /** Tick of the last state change (for tombstones and gossip to the dead). */
  changedTick: number;
  suspicion: Suspicion | undefined;
  /**
   * Just became suspect: probe it next, out of turn, once. Its ack carries
   * its latest record (a refutation this node may have missed), and the ping
   * tells it it is suspected.
   */
  probeSoon: boolean;
}

interface Probe {
  target: MemberId;
  seq: number;
  startTick: number;
  timeoutTick: number;
  deadlineTick: number;
  /** Intermediaries asked to probe (empty until the direct timeout); bounded by `indirectChecks`. */
  asked: Set<MemberId>;
  /** Intermediaries that sent a nack; subset of `asked`. */
  nacks: Set<MemberId>;
  indirect: boolean;
}

/** A ping this node sends on behalf of a `ping-req`. */
interface Relay {
  requester: MemberId;
  requesterSeq: number;
  nackTick: number;
  expireTick: number;
  nacked: boolean;
}

export class Swim {
  readonly config: Readonly<SwimConfig>;
  private readonly self: Member;
  private readonly random: RandomSource;
  private readonly knobs: Readonly<SwimTestKnobs>;
  private readonly table = new Map<MemberId, Entry>();
  private readonly queue: BroadcastQueue;
  private readonly awareness: Awareness;
  private readonly relays = new Map<number, Relay>();
  private readonly seeds = new Map<MemberId, SeedPeer>();
  private outbox: Outbound[] = [];
  private events: MembershipEvent[] = [];

  private now = 0;
  private seq = 0;
  private probe: Probe | undefined;
  private probeOrder: MemberId[] = [];
  private probeIndex = 0;
  private nextProbeTick: number;
  private nextGossipTick: number;
  private nextPushPullTick: number;
  private nextReconnectTick: number;
  private nextJoinTick = 0;
  private reconnectIndex = 0;
  private leaving = false;
  /** Whether some member answered a full-state sync: joining is done. */
  private synced = false;
  private readonly counters = {
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    suspicionsStarted: 0,
    refutations: 0,
    messagesIgnored: 0,
    relaysDropped: 0,
    membersRejected: 0,
    outboxDropped: 0,
    eventsDropped: 0,
  };

  constructor(init: SwimInit, knobs: Readonly<SwimTestKnobs> = DEFAULT_KNOBS) {
    this.config = resolveSwimConfig(init.config);
    checkIdentity(init.id, init.address);
    const incarnation = init.incarnation ?? 0;
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) throw new RangeError(`incarnation must be a non-negative integer, got ${incarnation}`);
    this.self = { id: init.id, address: init.address, meta: checkMeta(init.meta), incarnation, state: 'alive' };
    this.table.set(init.id, { member: this.self, changedTick: 0, suspicion: undefined, probeSoon: false });
    this.random = init.random;
    this.knobs = knobs;
    this.queue = new BroadcastQueue({ maxItems: this.config.maxBroadcasts, maxBytes: this.config.maxBroadcastBytes });
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    // Announce this member: its alive (with meta) reaches those its sync did not.
    this.broadcastSelf();
    // Random phases, so members started together do not probe and gossip in lockstep.
    this.nextProbeTick = 1 + this.random.nextInt(this.config.probeIntervalTicks);
    this.nextGossipTick = 1 + this.random.nextInt(this.config.gossipIntervalTicks);
    this.nextPushPullTick = 1 + this.random.nextInt(this.config.pushPullIntervalTicks);
    this.nextReconnectTick = 1 + this.random.nextInt(this.config.reconnectIntervalTicks);
  }

  // ---- inputs ---------------------------------------------------------------

  /**
   * Contacts the static seeds (`id@host:port` from the configuration) with a
   * full-state sync, and retries every `joinRetryTicks` until some member
   * answered one. Seeds stay remembered: an unreachable seed is retried
   * like a dead member, which is what reunites a cluster after a partition.
   */
  join(seeds: readonly SeedPeer[]): void {
    for (const seed of seeds) {
      if (seed.id === this.self.id || this.seeds.has(seed.id)) continue;
      if (this.seeds.size >= this.config.maxMembers) break;
      checkIdentity(seed.id, seed.address);
      this.seeds.set(seed.id, { id: seed.id, address: seed.address });
    }
    this.syncSeeds();
  }

  /** Advances time by one tick: timeouts, probes, gossip, syncs. */
  tick(): void {
    this.now++;
    if (this.leaving) {
      this.gossipTick();
      return;
    }
    this.expireSuspicions();
    this.reapTombstones();
    this.relayTick();
    this.probeTick();
    this.gossipTick();
    if (this.now >= this.nextPushPullTick) {
      this.nextPushPullTick = this.now + this.config.pushPullIntervalTicks;
      this.pushPull();
    }
    if (this.now >= this.nextReconnectTick) {
      this.nextReconnectTick = this.now + this.config.reconnectIntervalTicks;
      this.reconnect();
    }
    if (this.seeds.size > 0 && !this.synced && this.now >= this.nextJoinTick) this.syncSeeds();
  }

  /** Handles one validated message (see `parseSwimMessage`) from member `from`. */
  step(from: MemberId, message: SwimMessage): void {
    if (from === this.self.id) {
      this.counters.messagesIgnored++;
      return;
    }
    if (this.leaving) {
      // A leaving member still answers probes until the others heard it left.
      if (message.type === 'ping' && message.target === this.self.id) this.send(from, { type: 'ack', seq: message.seq, updates: this.piggyback() });
      return;
    }
    if (message.type === 'sync') {
      this.mergeSync(from, message.members);
      if (message.reply) this.send(from, { type: 'sync', reply: false, members: this.snapshot() });
      else this.synced = true;
      return;
    }
    // Directed corrections: claims this node can see are outdated are answered to the sender alone.
    const corrections: Update[] = [];
    for (const update of message.updates) {
      if (update.id === this.self.id && (update.kind === 'suspect' || update.kind === 'dead') && update.incarnation < this.self.incarnation) {
        // An accusation older than this member's incarnation: the accuser missed the refutation.
        if (!corrections.some((c) => c.id === update.id)) corrections.push(this.selfUpdate());
      } else if (update.kind === 'alive' && update.id === from && this.outdated(update)) {
        // The sender's own record is behind what the cluster holds (it restarted, or changed meta without a new incarnation).
        const record = this.recordAbout(from);
        if (record !== undefined) corrections.push(record);
      }
      this.apply(update);
    }
    if (message.type === 'ping') {
      const notice = this.noticeAbout(from);
      if (notice !== undefined && !corrections.some((c) => c.id === notice.id)) corrections.push(notice);
    } else if (corrections.length > 0) {
      this.send(from, { type: 'gossip', updates: corrections });
    }
    switch (message.type) {
      case 'ping':
        this.onPing(from, message.seq, message.target, corrections);
        break;
      case 'ping-req':
        this.onPingReq(from, message.seq, message.target, message.targetAddress);
        break;
      case 'ack':
        this.onAck(message.seq);
        break;
      case 'nack':
        this.onNack(from, message.seq);
        break;
      case 'gossip':
        break;
    }
  }

  /** Changes what this member advertises (client URL, load); bumps its incarnation and gossips it. False if nothing changed. */
  updateMeta(meta: MemberMeta): boolean {
    const checked = checkMeta(meta);
    if (this.leaving || sameMeta(checked, this.self.meta)) return false;
    this.self.meta = checked;
    this.self.incarnation++;
    this.broadcastSelf();
    return true;
  }

  /**
   * Announces a voluntary departure: others mark this member `left`, not
   * `dead`. Keep ticking and draining for a few gossip intervals (until
   * {@link Swim.leaveSent} is true) before closing the transport.
   */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.probe = undefined;
    this.self.state = 'left';
    const update: Update = { kind: 'left', id: this.self.id, incarnation: this.self.incarnation };
    this.queue.enqueue(update);
    for (const entry of this.table.values()) {
      if (entry.member.id !== this.self.id && isLive(entry.member)) this.send(entry.member.id, { type: 'gossip', updates: [update] });
    }
  }

  /** After `leave()`: true once the departure was gossiped its full retransmit count. */
  get leaveSent(): boolean {
    return this.leaving && !this.queue.has(this.self.id);
  }

  /** Takes the messages to send and the events to apply since the last call. */
  drain(): SwimOutput {
    const output = { messages: this.outbox, events: this.events };
    this.outbox = [];
    this.events = [];
    return output;
  }

  // ---- queries --------------------------------------------------------------

  get id(): MemberId {
    return this.self.id;
  }

  /** The current tick (number of `tick()` calls). */
  get currentTick(): number {
    return this.now;
  }

  /** Every known member, self and tombstones included, sorted by id (copies). */
  members(): Member[] {
    return [...this.table.values()].map((e) => copyMember(e.member)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One member (a copy), if known. */
  member(id: MemberId): Member | undefined {
    const entry = this.table.get(id);
    return entry === undefined ? undefined : copyMember(entry.member);
  }

  /** This member as it advertises itself (a copy). */
  local(): Member {
    return copyMember(this.self);
  }

  stats(): SwimStats {
    const members: Record<Member['state'], number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
    for (const entry of this.table.values()) members[entry.member.state]++;
    return {
      tick: this.now,
      incarnation: this.self.incarnation,
      awareness: this.awareness.score,
      members,
      ...this.counters,
      pendingRelays: this.relays.size,
      broadcasts: this.queue.stats(),
    };
  }

  // ---- probing --------------------------------------------------------------

  private probeTick(): void {
    const probe = this.probe;
    if (probe !== undefined) {
      if (!probe.indirect && this.now >= probe.timeoutTick) this.probeIndirectly(probe);
      if (this.now >= probe.deadlineTick) this.probeFailed(probe);
    }
    if (this.probe === undefined && this.now >= this.nextProbeTick) this.startProbe();
  }

  private startProbe(): void {
    const target = this.nextProbeTarget();
    if (target === undefined) {
      this.nextProbeTick = this.now + this.config.probeIntervalTicks;
      return;
    }
    const seq = this.nextSeq();
    const scale = (ticks: number): number => (this.knobs.awareness ? this.awareness.scale(ticks) : ticks);
    this.probe = {
      target: target.id,
      seq,
      startTick: this.now,
      timeoutTick: this.now + scale(this.config.probeTimeoutTicks),
      deadlineTick: this.now + scale(this.config.probeIntervalTicks),
      asked: new Set(),
      nacks: new Set(),
      indirect: false,
    };
    this.counters.probes++;
    // Lifeguard's buddy system: tell a suspect it is suspected, so it refutes at once.
    const notice = this.noticeAbout(target.id);
    this.send(target.id, { type: 'ping', seq, target: target.id, updates: this.probeUpdates(notice) });
  }

  /** A member that just became suspect first (once), else round-robin over a shuffled list of live members, reshuffled each round. */
  private nextProbeTarget(): Member | undefined {
    for (const entry of this.table.values()) {
      if (!entry.probeSoon) continue;
      entry.probeSoon = false;
      if (entry.member.state === 'suspect') return entry.member;
    }
    // Bounded: at most one full pass, one reshuffle, and another full pass.
    const limit = 2 * (this.probeOrder.length + this.table.size) + 2;
    for (let i = 0; i < limit; i++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.probeOrder = this.shuffle([...this.table.values()].filter((e) => e.member.id !== this.self.id && isLive(e.member)).map((e) => e.member.id));
        this.probeIndex = 0;
        if (this.probeOrder.length === 0) return undefined;
      }
      const id = this.probeOrder[this.probeIndex++];
      const entry = id === undefined ? undefined : this.table.get(id);
      if (entry !== undefined && isLive(entry.member)) return entry.member;
    }
    return undefined;
  }

  private probeIndirectly(probe: Probe): void {
    probe.indirect = true;
    const candidates = [...this.table.values()]
      .map((e) => e.member)
      .filter((m) => m.id !== this.self.id && m.id !== probe.target && m.state === 'alive');
    const helpers = this.pick(candidates, this.config.indirectChecks);
    const target = this.table.get(probe.target)?.member;
    if (target === undefined) return;
    for (const helper of helpers) {
      probe.asked.add(helper.id);
      this.counters.indirectProbes++;
      this.send(helper.id, { type: 'ping-req', seq: probe.seq, target: target.id, targetAddress: target.address, updates: this.piggyback() });
    }
  }

  private probeFailed(probe: Probe): void {
    this.probe = undefined;
    this.nextProbeTick = this.now;
    this.counters.probesFailed++;
    // Lifeguard: missing nacks mean this node's own links are the likely problem.
    const missing = probe.asked.size > 0 ? probe.asked.size - probe.nacks.size : 1;
    this.awareness.applyDelta(missing);
    const entry = this.table.get(probe.target);
    if (entry === undefined || !isLive(entry.member)) return;
    this.apply({ kind: 'suspect', id: entry.member.id, incarnation: entry.member.incarnation, from: this.self.id });
  }

  /** Answers a ping for this member; `notices` tell the prober what this node holds against it, so it refutes. */
  private onPing(from: MemberId, seq: number, target: MemberId, notices: Update[]): void {
    if (target !== this.self.id) {
      this.counters.messagesIgnored++;
      return;
    }
    this.send(from, { type: 'ack', seq, updates: this.probeUpdates(...notices) });
  }

  private onPingReq(from: MemberId, requesterSeq: number, target: MemberId, targetAddress: string): void {
    if (target === this.self.id) {
      this.send(from, { type: 'ack', seq: requesterSeq, updates: this.probeUpdates() });
      return;
    }
    if (this.relays.size >= this.config.maxPendingIndirect) {
      this.counters.relaysDropped++;
      return;
    }
    const seq = this.nextSeq();
    this.relays.set(seq, {
      requester: from,
      requesterSeq,
      nackTick: this.now + indirectNackTicks(this.config),
      expireTick: this.now + this.config.probeIntervalTicks,
      nacked: false,
    });
    this.sendTo(target, this.table.get(target)?.member.address ?? targetAddress, { type: 'ping', seq, target, updates: this.probeUpdates() });
  }

  private onAck(seq: number): void {
    const probe = this.probe;
    if (probe !== undefined && probe.seq === seq) {
      this.probe = undefined;
      this.nextProbeTick = Math.max(this.now, probe.startTick + this.config.probeIntervalTicks);
      this.awareness.applyDelta(-1);
      return;
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      // Relayed even after a nack: the requester may still be within its deadline.
      this.relays.delete(seq);
      this.send(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.probeUpdates() });
      return;
    }
    this.counters.messagesIgnored++;
  }

  private onNack(from: MemberId, seq: number): void {
    const probe = this.probe;
    if (probe !== undefined && probe.seq === seq && probe.asked.has(from)) probe.nacks.add(from);
    else this.counters.messagesIgnored++;
  }

  private relayTick(): void {
    for (const [seq, relay] of this.relays) {
      if (!relay.nacked && this.now >= relay.nackTick) {
        relay.nacked = true;
        this.send(relay.requester, { type: 'nack', seq: relay.requesterSeq, updates: this.piggyback() });
      }
      if (this.now >= relay.expireTick) this.relays.delete(seq);
    }
  }

  // ---- updates and their precedence -----------------------------------------

  private apply(update: Update): void {
    switch (update.kind) {
      case 'alive':
        this.applyAlive(update);
        break;
      case 'suspect':
        this.applySuspect(update);
        break;
      case 'dead':
      case 'left':
        this.applyDeath(update);
        break;
    }
  }

  private applyAlive(update: Extract<Update, { kind: 'alive' }>): void {
    if (update.id === this.self.id) {
      // Someone remembers this member with a newer incarnation (it restarted) or other meta: override it.
      const stale =
        update.incarnation < this.self.incarnation ||
        (update.incarnation === this.self.incarnation && update.address === this.self.address && sameMeta(update.meta, this.self.meta));
      if (!stale) this.refute(update.incarnation, false);
      return;
    }
    const entry = this.table.get(update.id);
    if (entry === undefined) {
      if (!this.makeRoom()) {
        this.counters.membersRejected++;
        return;
      }
      const member: Member = { id: update.id, address: update.address, meta: copyMeta(update.meta), incarnation: update.incarnation, state: 'alive' };
      this.table.set(member.id, { member, changedTick: this.now, suspicion: undefined, probeSoon: false });
      // Probed still in this round, at a random place among those not yet probed.
      const at = this.probeIndex + this.random.nextInt(this.probeOrder.length - this.probeIndex + 1);
      this.probeOrder.splice(at, 0, member.id);
      this.emit('joined', member);
      this.queue.enqueue(update);
      return;
    }
    const member = entry.member;
    if (update.incarnation <= member.incarnation) return;
    const previous = member.state;
    const changed = member.address !== update.address || !sameMeta(member.meta, update.meta);
    member.incarnation = update.incarnation;
    member.address = update.address;
    member.meta = copyMeta(update.meta);
    member.state = 'alive';
    entry.suspicion = undefined;
    if (previous !== 'alive') entry.changedTick = this.now;
    if (previous === 'dead' || previous === 'left') this.emit('joined', member);
    else if (previous === 'suspect') this.emit('recovered', member);
    if (changed && previous !== 'dead' && previous !== 'left') this.emit('updated', member);
    this.queue.enqueue(update);
  }

  private applySuspect(update: Extract<Update, { kind: 'suspect' }>): void {
    const entry = this.table.get(update.id);
    if (entry === undefined || update.incarnation < entry.member.incarnation) return;
    const member = entry.member;
    if (member.id === this.self.id) {
      this.refute(update.incarnation, true);
      return;
    }
    if (member.state === 'dead' || member.state === 'left') return;
    if (member.state === 'suspect' && entry.suspicion !== undefined && update.incarnation === member.incarnation) {
      // An independent accuser confirms: the timeout shrinks toward its minimum.
      if (entry.suspicion.confirm(update.from)) this.queue.enqueue(update);
      return;
    }
    const n = this.liveCount();
    member.incarnation = update.incarnation;
    member.state = 'suspect';
    entry.changedTick = this.now;
    entry.suspicion = new Suspicion(this.now, suspicionBounds(this.config, n), expectedConfirmations(this.config.suspicionMult, n), update.from);
    entry.probeSoon = true;
    this.counters.suspicionsStarted++;
    this.emit('suspected', member);
    this.queue.enqueue(update);
  }

  private applyDeath(update: Extract<Update, { kind: 'dead' | 'left' }>): void {
    const entry = this.table.get(update.id);
    if (entry === undefined || update.incarnation < entry.member.incarnation) return;
    const member = entry.member;
    if (member.id === this.self.id) {
      this.refute(update.incarnation, true);
      return;
    }
    if (member.state === 'dead' || member.state === 'left') return;
    member.incarnation = update.incarnation;
    member.state = update.kind === 'left' ? 'left' : 'dead';
    entry.changedTick = this.now;
    entry.suspicion = undefined;
    this.emit(update.kind === 'left' ? 'left' : 'failed', member);
    this.queue.enqueue(update);
  }

  /** Raises this member's incarnation past `accused` and gossips that it is alive. */
  private refute(accused: number, accusation: boolean): void {
    if (!this.knobs.refute) return;
    this.self.incarnation = Math.max(this.self.incarnation, accused) + 1;
    if (accusation) {
      this.counters.refutations++;
      this.awareness.applyDelta(1);
      this.emit('refuted', this.self);
    }
    this.broadcastSelf();
  }

  private broadcastSelf(): void {
    this.queue.enqueue(this.selfUpdate());
  }

  private selfUpdate(): Update {
    const s = this.self;
    return { kind: 'alive', id: s.id, incarnation: s.incarnation, address: s.address, meta: copyMeta(s.meta) };
  }

  private expireSuspicions(): void {
    for (const entry of this.table.values()) {
      const suspicion = entry.suspicion;
      if (suspicion === undefined || this.now < suspicion.deadlineTick()) continue;
      this.apply({ kind: 'dead', id: entry.member.id, incarnation: entry.member.incarnation, from: this.self.id });
    }
  }

  private reapTombstones(): void {
    for (const [id, entry] of this.table) {
      if ((entry.member.state === 'dead' || entry.member.state === 'left') && this.now - entry.changedTick >= this.config.tombstoneTicks) {
        this.table.delete(id);
        this.emit('reaped', entry.member);
      }
    }
  }

  /** Frees a slot for a new member by reaping the oldest tombstone if the table is full. */
  private makeRoom(): boolean {
    if (this.table.size < this.config.maxMembers) return true;
    let oldest: Entry | undefined;
    for (const entry of this.table.values()) {
      if (entry.member.state !== 'dead' && entry.member.state !== 'left') continue;
      if (oldest === undefined || entry.changedTick < oldest.changedTick) oldest = entry;
    }
    if (oldest === undefined) return false;
    this.table.delete(oldest.member.id);
    this.emit('reaped', oldest.member);
    return true;
  }

  // ---- dissemination ----------------------------------------------------------

  private gossipTick(): void {
    if (this.now < this.nextGossipTick) return;
    this.nextGossipTick = this.now + this.config.gossipIntervalTicks;
    if (this.queue.length === 0) return;
    const targets = [...this.table.values()]
      .filter((e) => e.member.id !== this.self.id && (isLive(e.member) || (e.member.state === 'dead' && this.now - e.changedTick < this.config.gossipToTheDeadTicks)))
      .map((e) => e.member);
    for (const target of this.pick(targets, this.config.gossipFanout)) {
      const updates = this.queue.take(this.config.maxGossipBytes, this.transmitLimit());
      if (updates.length === 0) break;
      this.send(target.id, { type: 'gossip', updates });
    }
  }

  /** A full-state exchange with one random alive member: repairs whatever gossip missed. */
  private pushPull(): void {
    const alive = [...this.table.values()].map((e) => e.member).filter((m) => m.id !== this.self.id && m.state === 'alive');
    const [peer] = this.pick(alive, 1);
    if (peer !== undefined) this.send(peer.id, { type: 'sync', reply: true, members: this.snapshot() });
  }

  /** Syncs with the next dead member or seed not known alive, round-robin: heals partitions. */
  private reconnect(): void {
    const candidates = new Map<MemberId, string>();
    for (const entry of this.table.values()) {
      if (entry.member.state === 'dead') candidates.set(entry.member.id, entry.member.address);
    }
    for (const seed of this.seeds.values()) {
      const known = this.table.get(seed.id)?.member;
      if (known === undefined) candidates.set(seed.id, seed.address);
    }
    if (candidates.size === 0) return;
    const ids = [...candidates.keys()].sort();
    const id = ids[this.reconnectIndex++ % ids.length];
    if (id === undefined) return;
    this.sendTo(id, candidates.get(id), { type: 'sync', reply: true, members: this.snapshot() });
  }

  /** Joining: a full-state exchange with every seed, or, once some member answered probes, with one random live member. */
  private syncSeeds(): void {
    this.nextJoinTick = this.now + this.config.joinRetryTicks;
    const live = [...this.table.values()].map((e) => e.member).filter((m) => m.id !== this.self.id && m.state === 'alive');
    const targets: Array<{ id: MemberId; address: string }> = live.length > 0 ? this.pick(live, 1) : [...this.seeds.values()];
    for (const target of targets) this.sendTo(target.id, target.address, { type: 'sync', reply: true, members: this.snapshot() });
  }

  private mergeSync(from: MemberId, members: readonly MemberSnapshot[]): void {
    for (const m of members) {
      switch (m.state) {
        case 'alive':
          this.applyAlive({ kind: 'alive', id: m.id, incarnation: m.incarnation, address: m.address, meta: m.meta });
          break;
        case 'suspect':
        case 'dead':
          // Another view's death is only a suspicion here: the member gets its chance to refute.
          this.applySuspect({ kind: 'suspect', id: m.id, incarnation: m.incarnation, from });
          break;
        case 'left':
          this.applyDeath({ kind: 'left', id: m.id, incarnation: m.incarnation });
          break;
      }
    }
  }

  private snapshot(): MemberSnapshot[] {
    return [...this.table.values()].map((e) => copyMember(e.member));
  }

  /**
   * What pings and acks carry: this member's own alive record first (cheap
   * anti-entropy: whoever exchanges probes with it learns its latest
   * incarnation and meta, even if gossip missed them), then any notice, then
   * queued updates.
   */
  private probeUpdates(...notices: Array<Update | undefined>): Update[] {
    const self = this.selfUpdate();
    return this.piggyback(self, ...notices.filter((n): n is Update => n !== undefined && n.id !== self.id));
  }

  /** Updates from the broadcast queue that fit in a probe message, after the directed notices (which always go). */
  private piggyback(...notices: Update[]): Update[] {
    let budget = this.config.maxPiggybackBytes;
    for (const notice of notices) budget -= estimateUpdateBytes(notice);
    if (notices.length === 0) return this.queue.take(budget, this.transmitLimit());
    return [...notices, ...this.queue.take(Math.max(0, budget), this.transmitLimit(), new Set(notices.map((n) => n.id)))];
  }

  /** Whether this node holds a claim about `update.id` that beats this alive record. */
  private outdated(update: Extract<Update, { kind: 'alive' }>): boolean {
    const member = this.table.get(update.id)?.member;
    if (member === undefined) return false;
    if (update.incarnation !== member.incarnation) return update.incarnation < member.incarnation;
    return member.state !== 'alive' || member.address !== update.address || !sameMeta(member.meta, update.meta);
  }

  /** This node's view of a member, as an update. */
  private recordAbout(id: MemberId): Update | undefined {
    const m = this.table.get(id)?.member;
    if (m === undefined) return undefined;
    switch (m.state) {
      case 'alive':
        return { kind: 'alive', id, incarnation: m.incarnation, address: m.address, meta: copyMeta(m.meta) };
      case 'suspect':
      case 'dead':
        return { kind: m.state, id, incarnation: m.incarnation, from: this.self.id };
      case 'left':
        return { kind: 'left', id, incarnation: m.incarnation };
    }
  }

  /** What this node believes about a member it holds suspect or dead, to tell that member directly. */
  private noticeAbout(id: MemberId): Update | undefined {
    const member = this.table.get(id)?.member;
    if (member === undefined) return undefined;
    if (member.state === 'suspect' || member.state === 'dead') {
      return { kind: member.state, id, incarnation: member.incarnation, from: this.self.id };
    }
    return undefined;
  }

  // ---- helpers --------------------------------------------------------------

  private transmitLimit(): number {
    return retransmitLimit(this.config.retransmitMult, this.liveCount());
  }

  /** Alive and suspect members, self included: the cluster size estimate. */
  private liveCount(): number {
    let n = 0;
    for (const entry of this.table.values()) if (isLive(entry.member)) n++;
    return n;
  }

  private nextSeq(): number {
    this.seq = this.seq >= Number.MAX_SAFE_INTEGER ? 0 : this.seq + 1;
    return this.seq;
  }

  private send(to: MemberId, message: SwimMessage): void {
    this.sendTo(to, this.table.get(to)?.member.address ?? this.seeds.get(to)?.address, message);
  }

  private sendTo(to: MemberId, address: string | undefined, message: SwimMessage): void {
    if (this.outbox.length >= this.config.maxOutboxMessages) {
      this.outbox.shift();
      this.counters.outboxDropped++;
    }
    this.outbox.push({ to, address, message });
  }

  private emit(type: MembershipEventType, member: Member): void {
    if (this.events.length >= this.config.maxPendingEvents) {
      this.events.shift();
      this.counters.eventsDropped++;
    }
    this.events.push({ type, member: copyMember(member), tick: this.now });
  }

  /** Fisher–Yates with the injected randomness. */
  private shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.random.nextInt(i + 1);
      const a = items[i] as T;
      items[i] = items[j] as T;
      items[j] = a;
    }
    return items;
  }

  /** Up to `k` distinct random items (partial Fisher–Yates on a copy). */
  private pick<T>(items: readonly T[], k: number): T[] {
    const copy = [...items];
    const count = Math.min(k, copy.length);
    for (let i = 0; i < count; i++) {
      const j = i + this.random.nextInt(copy.length - i);
      const a = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = a;
    }
    return copy.slice(0, count);
  }
}

function isLive(member: Member): boolean {
  return member.state === 'alive' || member.state === 'suspect';
}

function copyMeta(meta: MemberMeta): MemberMeta {
  return meta.load === undefined ? { clientUrl: meta.clientUrl } : { clientUrl: meta.clientUrl, load: { ...meta.load } };
}

function copyMember(member: Member): Member {
  return { ...member, meta: copyMeta(member.meta) };
}

function sameMeta(a: MemberMeta, b: MemberMeta): boolean {
  return (
    a.clientUrl === b.clientUrl &&
    a.load?.connections === b.load?.connections &&
    a.load?.partitionsLed === b.load?.partitionsLed &&
    (a.load === undefined) === (b.load === undefined)
  );
}

/** Creates a SWIM member. */
export function createSwim(init: SwimInit): Swim {
  return new Swim(init);
}
