import { isWildcard } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';
import type { Subscription } from './subscription.js';

/** The session side of a routed subscription: told of an append to a partition its subscription may deliver. */
export interface AppendListener {
  /**
   * `topic`/`partition` got messages and `subscription` (one of this
   * listener's) matches the topic. Returns whether the session will deliver
   * them (it holds the subscription and the subscription delivers the partition).
   */
  appended(subscription: Subscription, topic: string, partition: number): boolean;
  /** `topic`, which `subscription` matches, was deleted. */
  topicDeleted?(subscription: Subscription, topic: string): void;
}

/** Counters of the fan-out, since the broker started. */
export interface FanoutStats {
  /** Sessions told of an append: one per append and session with a subscription that delivers the partition. */
  sessionsWoken: number;
  /** Subscription cursors read by delivery passes (each read of a partition for one subscription). */
  cursorsVisited: number;
}

/**
 * Routes each `appended` event of the engine to the subscriptions that
 * deliver that partition, across every session of the broker, instead of
 * waking every session for every append. Exact-topic subscriptions are found
 * by topic; wildcard ones through a per-topic list of the patterns that
 * match it, built on the topic's first append and rebuilt only when a
 * wildcard subscription comes or goes. An append thus costs its own
 * subscribers, not the broker's sessions or topics.
 */
export class Fanout {
  readonly stats: FanoutStats = { sessionsWoken: 0, cursorsVisited: 0 };
  private readonly listeners = new Map<Subscription, AppendListener>();
  /** Subscriptions to one exact topic, by topic. */
  private readonly exact = new Map<string, Set<Subscription>>();
  private readonly wildcards = new Set<Subscription>();
  /** Per topic that got appends, the wildcard subscriptions matching it; cleared when the wildcards change. */
  private readonly wildcardsByTopic = new Map<string, Subscription[]>();
  /** Sessions woken by the append being routed (reused: one append at a time). */
  private readonly woken = new Set<AppendListener>();
  private readonly onAppended = (topic: string, partition: number): void => this.route(topic, partition);
  private readonly stopDeletions: (() => void) | undefined;

  constructor(private readonly engine: Pick<LogEngine, 'on' | 'off'> & Partial<Pick<LogEngine, 'onTopicDeleted'>>) {
    engine.on('appended', this.onAppended);
    this.stopDeletions = engine.onTopicDeleted?.((topic) => this.deleted(topic));
  }

  /** Tells every subscription matching `topic` that it was deleted (an exact one is ended by its session). */
  private deleted(topic: string): void {
    const matching = [...(this.exact.get(topic) ?? []), ...[...this.wildcards].filter((subscription) => subscription.matches(topic))];
    this.wildcardsByTopic.delete(topic);
    for (const subscription of matching) this.listeners.get(subscription)?.topicDeleted?.(subscription, topic);
  }

  /** Routes the appends `subscription` matches to `listener` until {@link remove}. */
  add(subscription: Subscription, listener: AppendListener): void {
    if (this.listeners.has(subscription)) return;
    this.listeners.set(subscription, listener);
    if (isWildcard(subscription.pattern)) {
      this.wildcards.add(subscription);
      this.wildcardsByTopic.clear();
      return;
    }
    let subscribers = this.exact.get(subscription.pattern);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.exact.set(subscription.pattern, subscribers);
    }
    subscribers.add(subscription);
  }

  remove(subscription: Subscription): void {
    if (!this.listeners.delete(subscription)) return;
    if (this.wildcards.delete(subscription)) {
      this.wildcardsByTopic.clear();
      return;
    }
    const subscribers = this.exact.get(subscription.pattern);
    subscribers?.delete(subscription);
    if (subscribers?.size === 0) this.exact.delete(subscription.pattern);
  }

  /** Subscriptions routed now (for tests). */
  get size(): number {
    return this.listeners.size;
  }

  /** Stops following the engine. */
  close(): void {
    this.engine.off('appended', this.onAppended);
    this.stopDeletions?.();
  }

  private route(topic: string, partition: number): void {
    const exact = this.exact.get(topic);
    if (exact !== undefined) for (const subscription of exact) this.tell(subscription, topic, partition);
    if (this.wildcards.size > 0) for (const subscription of this.wildcardsMatching(topic)) this.tell(subscription, topic, partition);
    this.stats.sessionsWoken += this.woken.size;
    this.woken.clear();
  }

  private tell(subscription: Subscription, topic: string, partition: number): void {
    const listener = this.listeners.get(subscription);
    if (listener !== undefined && listener.appended(subscription, topic, partition)) this.woken.add(listener);
  }

  private wildcardsMatching(topic: string): Subscription[] {
    let matching = this.wildcardsByTopic.get(topic);
    if (matching === undefined) {
      matching = [...this.wildcards].filter((subscription) => subscription.matches(topic));
      this.wildcardsByTopic.set(topic, matching);
    }
    return matching;
  }
}
