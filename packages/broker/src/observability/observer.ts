/**
 * What the broker's hot paths report to operations (metrics, charts). The
 * hooks are optional on every caller: a broker without an admin port or
 * alerts has no observer, and its publish path pays nothing for it.
 */
export interface BrokerObserver {
  /** Messages of `topic` accepted from a publish frame (after the engine stored them as asked). */
  published(topic: string, messages: number, bytes: number): void;
  /** Messages of `topic` pushed to a subscriber. */
  delivered(topic: string, messages: number, bytes: number): void;
  /** Time from a publish frame's arrival to its acks (or nacks) leaving, in seconds. */
  publishLatency(seconds: number): void;
  /** Duration of one Raft storage write-and-fsync, in seconds. */
  fsync(seconds: number): void;
  /** A Raft group hosted here saw a new leader (`null`: none known). */
  leaderChanged(group: string, leader: string | null, term: number): void;
}
