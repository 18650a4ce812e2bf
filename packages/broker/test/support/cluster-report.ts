import type { ClusterReport } from '../../src/observability/cluster-view.js';

/** `/api/cluster` of a healthy one-broker view with nothing in it (and no moves or backbone field, as an older broker answers), for tests to add to. */
export const QUIET_CLUSTER: Omit<ClusterReport, 'moves' | 'backbone'> = {
  broker: 'b1',
  timeMs: 20_000,
  ready: true,
  healthy: true,
  problems: [],
  metadataLeader: 'b1',
  reached: ['b1'],
  unreachable: [],
  brokers: [],
  partitions: [],
  topics: [],
  consumers: [],
  series: { intervalMs: 1000, cluster: [], brokers: {} },
  events: [],
};
