import { RelayError, type Ack, type BrokerFrame, type NackFrame, type PublishBatch, type PublishFrame } from '@relaymq/sdk/protocol';
import type { AppendOutcome } from '../core/partition/partition.js';
import { tracedStore } from '../observability/tracing.js';
import { TokenBucket } from '../security/rate-limit.js';
import type { ClientAccess } from './client-access.js';
import { asRelayError, dataBytes, missingRefusal, unlessNotReady, type SessionContext } from './session-context.js';

/** What the publish path needs of its session. */
export interface PublishSession {
  readonly ctx: SessionContext;
  /** The producer id the client's hello gave (or the broker chose). */
  producerId(): string;
  access(): ClientAccess;
  send(frame: BrokerFrame): void;
}

/**
 * The publish path of one session: checks each batch (draining, ACL, rate
 * limit), hands the batches to the engine in arrival order, and answers with
 * ack ranges and nacks in the order of the messages.
 */
export class PublishHandler {
  /** Messages accepted since the session opened. */
  published = 0;
  /**
   * Of them, messages of partitions another broker leads (as this broker knew
   * when it answered): stored through that leader, two hops longer than a
   * publish to the leader itself. A client learns the leader from the answer.
   */
  forwarded = 0;
  private readonly bucket: TokenBucket | undefined;
  /** Settles once every batch received so far was handed to the engine (undefined: nothing pending). */
  private handOffChain: Promise<void> | undefined;

  constructor(private readonly session: PublishSession) {
    const { ctx } = session;
    const { publishRateLimit, publishBurst } = ctx.options;
    if (publishRateLimit > 0) this.bucket = new TokenBucket(publishRateLimit, publishBurst, ctx.now());
  }

  publish(frame: PublishFrame): void {
    const receivedAt = performance.now();
    const { batches } = frame;
    // Every partition is answered one microtask after its last batch settled, whatever the frame's shape:
    // answers to a partition leave in the order its batches were stored, across frames too.
    if (batches.length === 1) {
      void this.publishBatch(batches[0] as PublishBatch).then((answers) => this.answered(answers, receivedAt));
      return;
    }
    // Answers go out in the order of the messages of each partition: a nack never overtakes the acks before it.
    // Partitions are answered apart, so one whose leader is slow or unreachable holds no other partition's acks
    // (a client resends its whole outbox in one frame after a failover).
    const byPartition = new Map<string, Array<Promise<Array<Ack | NackFrame>>>>();
    for (const batch of batches) {
      const key = `${batch.partition}:${batch.topic}`;
      const list = byPartition.get(key) ?? [];
      list.push(this.publishBatch(batch));
      byPartition.set(key, list);
    }
    for (const group of byPartition.values()) {
      const results: Array<Array<Ack | NackFrame>> = [];
      let left = group.length;
      group.forEach((answers, i) => {
        void answers.then((settled) => {
          results[i] = settled;
          if (--left === 0) this.answered(results.flat(), receivedAt);
        });
      });
    }
  }

  /** Sends one partition's answers and records the latency of what was stored. */
  private answered(answers: Array<Ack | NackFrame>, receivedAt: number): void {
    this.answer(answers);
    const { observer } = this.session.ctx;
    if (observer !== undefined && answers.length > 0) observer.publishLatency((performance.now() - receivedAt) / 1000);
  }

  /** Sends one partition's answers in message order: runs of acks in one frame, each nack on its own. */
  private answer(answers: Array<Ack | NackFrame>): void {
    let acks: Ack[] = [];
    for (const answer of answers) {
      if (!('type' in answer)) {
        acks.push(answer);
        continue;
      }
      if (acks.length > 0) this.session.send({ type: 'ack', acks });
      acks = [];
      this.session.send(answer);
    }
    if (acks.length > 0) this.session.send({ type: 'ack', acks });
  }

  /**
   * Appends one batch and answers it: ranges of acks, a nack per refused
   * message, nothing for `ack: none`. Not async: the store's promise and one
   * `then` (an async frame, suspended across the store, cost more per publish).
   */
  private publishBatch(batch: PublishBatch): Promise<Array<Ack | NackFrame>> {
    const { ctx } = this.session;
    let storing: Promise<AppendOutcome[]>;
    try {
      if (ctx.draining()) throw new RelayError('SHUTTING_DOWN', 'broker is shutting down; publish elsewhere');
      const access = this.session.access();
      if (!access.permissions.mayPublish(batch.topic)) {
        ctx.counters.denied++;
        throw new RelayError('FORBIDDEN', `${access.describe()} may not publish to ${batch.topic}`);
      }
      if (this.bucket !== undefined && !this.bucket.take(batch.messages.length, ctx.now())) {
        ctx.counters.rateLimited++;
        throw new RelayError('RATE_LIMITED', `publishing faster than ${ctx.options.publishRateLimit} messages/s; retry later`);
      }
      storing = tracedStore(batch.topic, batch.partition, batch.messages, () => this.handOff(batch));
    } catch (err) {
      return Promise.resolve(this.refused(batch, err));
    }
    return storing.then(
      (outcomes) => this.stored(batch, outcomes),
      (err: unknown) => this.refused(batch, err),
    );
  }

  /** The answers to a batch the engine took. */
  private stored(batch: PublishBatch, outcomes: AppendOutcome[]): Array<Ack | NackFrame> {
    const { ctx } = this.session;
    try {
      this.published += batch.messages.length;
      if (ctx.observer !== undefined) ctx.observer.published(batch.topic, batch.messages.length, dataBytes(batch.messages));
      if (batch.ack === 'none') return [];
      const result = ackRanges(batch, outcomes);
      // Forwarded: tell the client who leads, so its next publishes go there directly.
      const leader = ctx.engine.leaderOf?.(batch.topic, batch.partition);
      if (leader !== undefined && leader !== ctx.options.id) {
        this.forwarded += batch.messages.length;
        for (const answer of result) if (!('type' in answer)) answer.leader = leader;
      }
      return result;
    } catch (err) {
      return this.refused(batch, err);
    }
  }

  /** The answers to a batch refused (or whose answers could not be made): a nack per message, nothing for `ack: none`. */
  private refused(batch: PublishBatch, err: unknown): Array<Ack | NackFrame> {
    if (batch.ack === 'none') return [];
    const error = unlessNotReady(this.session.ctx, asRelayError(err));
    return batch.messages.map((_, i) => nack(batch.firstId + i, error));
  }

  /**
   * Hands a batch to the engine in arrival order. The engine orders appends
   * by call, so a batch whose topic must first be created (asynchronously)
   * holds back every later batch of this session until it was handed over —
   * but nobody waits for an append to complete before the next is handed over.
   */
  private handOff(batch: PublishBatch): Promise<AppendOutcome[]> {
    const { engine } = this.session.ctx;
    const known = engine.partitionCount(batch.topic);
    if (this.handOffChain === undefined && known !== undefined) return this.append(batch, known);
    const handedOver = (this.handOffChain ?? Promise.resolve()).then(async () => {
      const partitions = engine.partitionCount(batch.topic) ?? (await engine.ensureTopic(batch.topic)).partitions;
      return { outcomes: this.append(batch, partitions) }; // wrapped: the chain must not wait for the append
    });
    const chain = handedOver.then(
      () => undefined,
      () => undefined,
    );
    this.handOffChain = chain;
    void chain.then(() => {
      if (this.handOffChain === chain) this.handOffChain = undefined;
    });
    return handedOver.then((handed) => handed.outcomes);
  }

  private append(batch: PublishBatch, partitions: number): Promise<AppendOutcome[]> {
    // Maybe only missing here (this broker behind its metadata leader, the client told the new count elsewhere).
    if (batch.partition >= partitions) {
      return missingRefusal(this.session.ctx, batch.topic, batch.partition, partitions).then((error) => Promise.reject(error));
    }
    // Each incarnation is its own producer for deduplication (see PublishBatch.incarnation).
    // Authenticated producers are scoped to their principal: nobody can claim another's producer id to disturb its deduplication.
    const owned = this.session.access().owned(this.session.producerId());
    const producerId = batch.incarnation === undefined ? owned : `${owned}#${batch.incarnation}`;
    // The wire batch's messages are handed on as they are: one batch shape down to the log.
    return this.session.ctx.engine.append(batch.topic, batch.partition, { producerId, firstSeq: batch.firstSeq, messages: batch.messages }, batch.ack);
  }
}

function nack(id: number, error: RelayError): NackFrame {
  const frame: NackFrame = { type: 'nack', id, code: error.code, message: error.message };
  if (error.details.leader !== undefined) frame.leader = error.details.leader;
  return frame;
}

/** Collapses per-message outcomes into ack ranges and nacks, in message order. */
export function ackRanges(batch: PublishBatch, outcomes: AppendOutcome[]): Array<Ack | NackFrame> {
  const result: Array<Ack | NackFrame> = [];
  let range: Ack | undefined;
  outcomes.forEach((outcome, i) => {
    const id = batch.firstId + i;
    if (outcome.kind === 'stored' || outcome.kind === 'duplicate') {
      const duplicate = outcome.kind === 'duplicate';
      if (range !== undefined && range.duplicate === duplicate && range.offset + range.count === outcome.offset && range.id + range.count === id) {
        range.count++;
      } else {
        range = { id, offset: outcome.offset, count: 1, duplicate };
        result.push(range);
      }
      return;
    }
    range = undefined;
    const seq = batch.firstSeq + i;
    if (outcome.kind === 'gap') {
      const error = new RelayError('SEQUENCE_GAP', `seq ${seq} skips ahead; expected ${outcome.expectedSeq}`);
      result.push({ ...nack(id, error), expectedSeq: outcome.expectedSeq });
    } else {
      result.push(nack(id, new RelayError('SEQUENCE_TOO_OLD', `seq ${seq} is older than the deduplication window (next is ${outcome.expectedSeq})`)));
    }
  });
  return result;
}
