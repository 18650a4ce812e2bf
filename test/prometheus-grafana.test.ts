import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Broker } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { get, parseMetrics } from './support/admin.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { GATEWAY_ONLY_METRIC, metricNames } from './support/promql.js';
import { waitFor, waitForAsync } from './support/wait.js';

/**
 * The shipped operations parts against the real thing: the alert rules pass
 * `promtool check rules` and their unit tests, and every metric the rules and
 * the Grafana dashboard query is one a live 3-broker cluster exports.
 */

const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const RULES = join(DEPLOY, 'prometheus/relaymq-rules.yml');
const RULE_TESTS = join(DEPLOY, 'prometheus/relaymq-rules.test.yml');
const DASHBOARD = join(DEPLOY, 'grafana/relaymq.json');

/** Series Prometheus makes itself rather than scraping them. */
const PROMETHEUS_OWN = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);

function findPromtool(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}
const promtool = findPromtool();
if (promtool === undefined) {
  // Printed, not silent: `.ci/run` installs Debian's prometheus package, which brings promtool.
  console.warn('SKIPPED promtool checks: promtool is not installed (apt-get install prometheus; .ci/run does this when it can)');
}

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}

async function rules(): Promise<RuleFile> {
  return parseYaml(await readFile(RULES, 'utf8')) as RuleFile;
}

/** Every PromQL text in a Grafana dashboard: panel targets, variable queries, annotation queries. */
function dashboardQueries(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const item of node) dashboardQueries(item, found);
  } else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'expr' || key === 'definition') && typeof value === 'string') found.push(value);
      else if (key === 'query' && typeof value === 'object' && value !== null && typeof (value as { query?: unknown }).query === 'string') {
        found.push((value as { query: string }).query);
      } else dashboardQueries(value, found);
    }
  }
  return found;
}

function runPromtool(args: string[]): { status: number | null; output: string } {
  const run = spawnSync(promtool as string, args, { cwd: join(DEPLOY, 'prometheus'), encoding: 'utf8', timeout: 60_000 });
  const output = `${run.stdout}${run.stderr}`;
  console.log(`$ promtool ${args.join(' ')}\n${output.trim()}`);
  return { status: run.status, output };
}

describe('Prometheus alert rules (deploy/prometheus)', () => {
  it.skipIf(promtool === undefined)('pass promtool check rules', () => {
    const { status, output } = runPromtool(['check', 'rules', 'relaymq-rules.yml']);
    expect(status, output).toBe(0);
    expect(output).toMatch(/SUCCESS: \d+ rules found/);
  });

  it.skipIf(promtool === undefined)('pass their promtool unit tests (series → expected alerts)', () => {
    const { status, output } = runPromtool(['test', 'rules', 'relaymq-rules.test.yml']);
    expect(status, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });

  it('have a unit test for every alert, and cover every webhook alert kind', async () => {
    const alerts = (await rules()).groups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a): a is string => a !== undefined);
    const tests = parseYaml(await readFile(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    const firedInTests = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect([...firedInTests].sort()).toEqual([...alerts].sort());
    // The webhook kinds of packages/broker/src/observability/alerts.ts, each with a rule.
    const source = await readFile(fileURLToPath(new URL('../packages/broker/src/observability/alerts.ts', import.meta.url)), 'utf8');
    const kinds = (/export type AlertKind = ([^;]+);/.exec(source)?.[1] ?? '').match(/'[^']+'/g)?.map((k) => k.slice(1, -1)) ?? [];
    const ruleFor: Record<string, string> = {
      'broker-down': 'RelaymqBrokerDown',
      'partition-leaderless': 'RelaymqPartitionLeaderless',
      'partition-under-replicated': 'RelaymqPartitionUnderReplicated',
      'disk-full': 'RelaymqDiskFull',
      'backbone-unreachable': 'RelaymqBackboneUnreachable',
    };
    expect(kinds.sort()).toEqual(Object.keys(ruleFor).sort());
    for (const kind of kinds) expect(alerts, kind).toContain(ruleFor[kind]);
  });
});

describe('Grafana dashboard (deploy/grafana/relaymq.json)', () => {
  it('has unique panel ids, a query in every panel, and the views operators need', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { uid: string; panels: Array<{ id: number; type: string; title: string; targets?: Array<{ expr?: string }> }> };
    expect(dashboard.uid).toBe('relaymq');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const graphs = dashboard.panels.filter((p) => p.type !== 'row');
    for (const panel of graphs) expect(panel.targets?.some((t) => (t.expr ?? '') !== ''), panel.title).toBe(true);
    const text = JSON.stringify(dashboard);
    for (const metric of ['relaymq_messages_in_total', 'relaymq_publish_latency_seconds_bucket', 'relaymq_partition_leader', 'relaymq_replication_lag_entries', 'relaymq_disk_available_bytes', 'relaymq_consumer_lag_messages', 'ALERTS']) {
      expect(text, metric).toContain(metric);
    }
    expect(text).toContain('sum by (broker)'); // per-broker series
  });
});

describe('metric names of the rules and the Grafana dashboard', () => {
  const fixture = new Fixture();
  afterEach(() => fixture.cleanup());

  it('are all exported by a live 3-broker cluster with data directories, after traffic', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-grafana-'));
    fixture.defer(() => rm(dir, { recursive: true, force: true }));
    const ids = ['g1', 'g2', 'g3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const brokers: Broker[] = await Promise.all(
      ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0, dataDir: join(dir, id) })),
    );
    // Traffic, so the per-topic counters and the histograms have samples.
    const [g1, g2] = brokers as [Broker, Broker, Broker];
    const publisher = await fixture.client([g1.url], { poolSize: 1, discovery: false });
    const subscriber = await fixture.client([g2.url], { poolSize: 1, discovery: false });
    let received = 0;
    // Durable, so the partition's leader exports its consumer lag once the position is committed.
    await subscriber.subscribe('ops.grafana', (_m: Message) => void received++, { from: 'earliest', durable: 'ops-grafana' });
    await Promise.all(Array.from({ length: 20 }, () => publisher.publish('ops.grafana', new Uint8Array(10))));
    await waitFor(() => received === 20, 'the subscriber to get 20 messages');
    await waitForAsync(
      async () => (await Promise.all(brokers.map(async (b) => (await get(`${b.adminUrl}/metrics`)).body))).some((body) => body.includes('relaymq_consumer_lag_messages{')),
      'the leader of ops.grafana/0 to export the durable consumer lag',
    );

    const exported = new Set<string>();
    for (const broker of brokers) {
      const { status, body } = await get(`${broker.adminUrl}/metrics`);
      expect(status).toBe(200);
      for (const s of parseMetrics(body)) exported.add(s.name);
    }

    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as unknown;
    const queries = [...dashboardQueries(dashboard), ...(await rules()).groups.flatMap((g) => g.rules.map((r) => r.expr))];
    const referenced = new Set(queries.flatMap(metricNames));
    // Gateways' own metrics are checked against a live gateway by test/backbone-console.test.ts.
    const missing = [...referenced].filter((name) => !exported.has(name) && !PROMETHEUS_OWN.has(name) && !GATEWAY_ONLY_METRIC.test(name));
    console.log(`checked ${referenced.size} metric names from ${queries.length} queries against ${exported.size} exported by 3 brokers`);
    expect(missing, `referenced by deploy/ but not exported: ${missing.join(', ')}`).toEqual([]);
    // Guard against an extractor that finds nothing: the dashboard covers the broker's own metrics.
    expect(referenced.size).toBeGreaterThanOrEqual(20);
  });
});
