/**
 * A hosted partition's {@link PartitionHooks}: the engine's broker-wide
 * handlers ({@link PartitionEvents}, one object for all) bound to the
 * partition by a small object whose methods are on its prototype. A broker
 * hosting thousands of partitions made, for each, a hooks object of seven
 * closures and their context (about 500 bytes in a heap snapshot).
 */
import type { ConfState } from '../core/raft/index.js';
import type { RecordPage } from '../storage/segment-raft-storage.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import type { LedGroup } from './leader-forwarding.js';
import type { FetchResponse } from './peer-messages.js';

/** What a partition group tells the engine, and asks of it. */
export interface PartitionHooks {
  /** Messages were stored (or a snapshot installed): subscribers have something to read. */
  appended: () => void;
  /** The group applied entries. */
  applied: () => void;
  leaderChanged: () => void;
  /** The group's configuration changed here (see `RaftGroupOptions.onConfChange`). */
  confChanged: (conf: ConfState, index: number) => void;
  /**
   * Messages from `offset`, from `group.leader`, for a snapshot install or a repair (and, at open, from
   * another replica named as `leader`: see `GroupFactory.partition`).
   */
  fetchFromLeader: (group: LedGroup & { readonly confState: ConfState }, offset: number) => Promise<FetchResponse>;
  /** Committed records of a unified partition from `fromIndex`, from `group.leader` (a backfill below its snapshot). */
  fetchRecords: (group: LedGroup & { readonly confState: ConfState }, fromIndex: number) => Promise<RecordPage>;
  retentionFor: (topic: string) => RetentionPolicy;
}

type Led = LedGroup & { readonly confState: ConfState };

/** What the engine does when any partition's group tells it something (see {@link PartitionHooks}), with the partition named. */
export interface PartitionEvents {
  appended(topic: string, partition: number): void;
  applied(): void;
  leaderChanged(): void;
  confChanged(group: string, conf: ConfState, index: number): void;
  fetchFromLeader(group: Led, topic: string, partition: number, offset: number): Promise<FetchResponse>;
  fetchRecords(group: Led, topic: string, partition: number, fromIndex: number): Promise<RecordPage>;
  retentionFor(topic: string): RetentionPolicy;
}

/** {@link PartitionEvents} bound to one partition (`id` its group's id). */
export class BoundPartitionHooks implements PartitionHooks {
  constructor(
    private readonly events: PartitionEvents,
    private readonly id: string,
    private readonly topic: string,
    private readonly partition: number,
  ) {}

  appended(): void {
    this.events.appended(this.topic, this.partition);
  }

  applied(): void {
    this.events.applied();
  }

  leaderChanged(): void {
    this.events.leaderChanged();
  }

  confChanged(conf: ConfState, index: number): void {
    this.events.confChanged(this.id, conf, index);
  }

  fetchFromLeader(group: Led, offset: number): Promise<FetchResponse> {
    return this.events.fetchFromLeader(group, this.topic, this.partition, offset);
  }

  fetchRecords(group: Led, fromIndex: number): Promise<RecordPage> {
    return this.events.fetchRecords(group, this.topic, this.partition, fromIndex);
  }

  retentionFor(topic: string): RetentionPolicy {
    return this.events.retentionFor(topic);
  }
}
