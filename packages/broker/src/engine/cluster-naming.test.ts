import { describe, expect, it } from 'vitest';
import type { SetClusterIdCommand } from '../core/metadata/metadata.js';
import { ClusterNaming } from './cluster-naming.js';

function harness(preferred?: string) {
  const state = { leader: false, fresh: true, current: undefined as string | undefined, proposals: [] as SetClusterIdCommand[], settle: [] as Array<(ok: boolean) => void> };
  const naming = new ClusterNaming({
    isLeader: () => state.leader,
    current: () => state.current,
    fresh: () => state.fresh,
    preferred,
    propose: (command) => {
      state.proposals.push(command);
      return new Promise((resolve, reject) => state.settle.push((ok) => (ok ? resolve('ok') : reject(new Error('not leader')))));
    },
    log: () => {},
  });
  return { state, naming };
}
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ClusterNaming', () => {
  it('proposes only as the metadata leader of an unnamed cluster, one proposal at a time, the same id each time', async () => {
    const { state, naming } = harness();
    naming.tick();
    expect(state.proposals).toHaveLength(0); // not leading
    state.leader = true;
    naming.tick();
    naming.tick();
    expect(state.proposals).toHaveLength(1); // one in flight
    expect(state.proposals[0]?.clusterId).toMatch(/^[0-9a-f-]{36}$/);
    state.settle[0]?.(false);
    await flush();
    naming.tick();
    expect(state.proposals).toHaveLength(2);
    expect(state.proposals[1]?.clusterId).toBe(state.proposals[0]?.clusterId);
    state.current = state.proposals[1]?.clusterId;
    state.settle[1]?.(true);
    await flush();
    naming.tick();
    expect(state.proposals).toHaveLength(2); // named: nothing more
  });

  it('names the cluster with the id this broker was given, even a running cluster', () => {
    const { state, naming } = harness('prod-eu');
    state.leader = true;
    state.fresh = false;
    naming.tick();
    expect(state.proposals).toEqual([{ type: 'set-cluster-id', clusterId: 'prod-eu' }]);
  });

  it('without a given id, names only a new cluster (brokers from before cluster ids could not apply it)', () => {
    const { state, naming } = harness();
    state.leader = true;
    state.fresh = false;
    naming.tick();
    expect(state.proposals).toHaveLength(0);
  });
});
