import { describe, expect, it } from 'vitest';
import type { ClusterReport } from '../observability/cluster-view.js';
import { QUIET_CLUSTER } from '../../test/support/cluster-report.js';
import { DASHBOARD_HTML } from './page.js';

/** The page's one inline script, as the browser gets it (the template literal's escapes applied). */
function script(): string {
  const match = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_HTML);
  if (match === null) throw new Error('no <script> in the page');
  return match[1] as string;
}

/** Just enough of an element for the page's script: what it sets is kept, a table has a tbody. */
class FakeElement {
  innerHTML = '';
  textContent = '';
  hidden = false;
  className = '';
  value = '';
  disabled = false;
  readonly dataset: Record<string, string> = {};
  private tbody: FakeElement | undefined;
  querySelector(selector: string): FakeElement {
    if (selector !== 'tbody') throw new Error(`unexpected selector ${selector}`);
    this.tbody ??= new FakeElement();
    return this.tbody;
  }
  addEventListener(): void {}
  focus(): void {}
}

/** Runs the page's script against fake elements, with `/api/cluster` answering `cluster`; resolves with the elements once it rendered. */
async function renderPage(cluster: Partial<ClusterReport>): Promise<{ element: (id: string) => FakeElement }> {
  const elements = new Map<string, FakeElement>();
  const element = (id: string): FakeElement => {
    let e = elements.get(id);
    if (e === undefined) elements.set(id, (e = new FakeElement()));
    return e;
  };
  // The page schedules its next refresh once it rendered an answer: that is when it is done.
  let rendered: () => void = () => {};
  const done = new Promise<void>((resolve) => (rendered = resolve));
  const storage = new Map<string, string>();
  const run = new Function('document', 'sessionStorage', 'fetch', 'setTimeout', 'clearTimeout', script());
  run(
    { getElementById: element },
    { getItem: (k: string) => storage.get(k) ?? null, setItem: (k: string, v: string) => storage.set(k, v), removeItem: (k: string) => storage.delete(k) },
    async () => new Response(JSON.stringify(cluster), { status: 200 }),
    // The next refresh (a second later) is never run: each test renders one answer.
    () => {
      rendered();
      return 0;
    },
    () => {},
  );
  await done;
  expect(element('health').textContent).toBe('healthy'); // rendered, not failed
  return { element };
}

const quietCluster: Partial<ClusterReport> = QUIET_CLUSTER;

describe('dashboard page', () => {
  it('has an inline script that parses (a quote escaped once in the template literal ends a JS string early)', () => {
    expect(() => new Function(script())).not.toThrow();
  });

  it('sends the admin token on every /api call and keeps it in sessionStorage only', () => {
    const code = script();
    // Every fetch of the page goes through api(), which adds the bearer header.
    expect(code.match(/\bfetch\(/g)).toHaveLength(1);
    expect(code).toMatch(/function api\(path\) \{[^}]*authorization: 'Bearer ' \+ token/);
    expect(code).not.toMatch(/localStorage|document\.cookie/);
  });

  it('lists the moves in progress with bytes copied and time left, and hides the section when there are none', async () => {
    const moves: ClusterReport['moves'] = [
      { topic: 'orders', partition: 3, from: 'b1', to: 'b4', startedAtMs: 8_000, phase: 'catching-up', copiedBytes: 12_897_485, totalBytes: 41_943_040, bytesPerSecond: 3_500_000, timeLeftMs: 8_300, error: null },
      { topic: 'orders', partition: 5, from: 'b2', to: 'b4', startedAtMs: 19_000, phase: 'pending', copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null, error: 'NOT_LEADER <b2>' },
    ];
    const page = await renderPage({ ...quietCluster, moves });
    expect(page.element('moves-section').hidden).toBe(false);
    const html = page.element('moves').querySelector('tbody').innerHTML;
    expect(html).toContain('data-move="orders/3" data-phase="catching-up"');
    expect(html).toContain('12.3 MiB of 40.0 MiB');
    expect(html).toContain('<td class="num" data-left>~9 s</td>');
    expect(html).toContain('3.3 MiB/s');
    expect(html).toContain('12 s</td>'); // moving since 8 s, the answer is of 20 s
    expect(html).toContain('<td data-copied>–</td>'); // figures not known yet
    expect(html).toContain('NOT_LEADER &lt;b2&gt;'); // escaped

    // No moves, or an older broker's answer without the field: the section is hidden.
    for (const cluster of [{ ...quietCluster, moves: [] }, quietCluster]) {
      const quiet = await renderPage(cluster);
      expect(quiet.element('moves-section').hidden).toBe(true);
      expect(quiet.element('moves').querySelector('tbody').innerHTML).toBe('');
    }
  });

  it('shows gateways leading nothing, and each backbone partition led by its stream\'s RabbitMQ leader', async () => {
    const gateway = (id: string): ClusterReport['brokers'][number] => ({
      id, url: `ws://${id}`, state: 'alive', role: 'gateway', partitionsLed: 0, self: id === 'g1', reachable: true, error: null,
      connections: 1, subscriptions: 0, inPerSec: 0, outPerSec: 0, disk: null,
    });
    const partition = (n: number, stream: string | null, leader: string | null): ClusterReport['partitions'][number] => ({
      topic: 'orders', partition: n, stream, leader, replicas: [], role: 'gateway', term: 0, commit: 0, lastIndex: 0, lag: null, outOfSync: [],
      leaderless: false, underReplicated: false, status: leader === null ? 'unknown' : 'ok', replicaStates: {}, start: 0, end: 40, sizeBytes: null, replicaBytes: 0,
    });
    const page = await renderPage({ ...quietCluster, brokers: [gateway('g1'), gateway('g2')], partitions: [partition(0, 'relaymq:orders:k3x9:0', 'rabbit-1:5552'), partition(1, null, null)] });
    const brokers = page.element('brokers').querySelector('tbody').innerHTML;
    expect(brokers).toContain('<td data-role="gateway">gateway</td><td class="num">–</td>');
    expect(brokers).not.toContain('standalone');
    const partitions = page.element('partitions').querySelector('tbody').innerHTML;
    expect(partitions).toContain('<tr data-partition="orders/0" data-status="ok"><td>orders/0</td><td data-leader>rabbit-1:5552 <span class="muted">RabbitMQ</span></td><td><span class="muted">RabbitMQ stream relaymq:orders:k3x9:0</span></td>');
    expect(partitions).toContain('<tr data-partition="orders/1" data-status="unknown"><td>orders/1</td><td data-leader><span class="warn">unknown</span></td><td><span class="muted">RabbitMQ stream</span></td>');
  });

  it('shows the backbone as each gateway sees it, with unreachable nodes and their errors, and hides the section for an embedded cluster', async () => {
    const backbone: ClusterReport['backbone'] = [
      {
        gateway: 'g1',
        kind: 'rabbitmq-stream',
        connected: true,
        connectedTo: '10.0.0.7:5552',
        advertisedAs: 'rabbit-0:5552',
        connections: 3,
        nodes: [
          { node: '10.0.0.7:5552', reachable: true, lastError: null, checkedAtMs: 19_000, roundTripMs: 2.4137 },
          { node: '10.0.0.9:5552', reachable: false, lastError: 'connect ECONNREFUSED <10.0.0.9>', checkedAtMs: 19_000, roundTripMs: null },
        ],
        partitions: [{ topic: 'orders', partition: 0, stream: 'relaymq:orders:k3x9:0', leader: null }],
        lastConfirmMs: 3.25,
      },
      {
        gateway: 'g2',
        kind: 'rabbitmq-stream',
        connected: false,
        connectedTo: null,
        advertisedAs: null,
        connections: 0,
        nodes: [{ node: '10.0.0.7:5552', reachable: null, lastError: null, checkedAtMs: null, roundTripMs: null }],
        partitions: [{ topic: 'orders', partition: 0, stream: 'relaymq:orders:k3x9:0', leader: '10.0.0.8:5552' }],
        lastConfirmMs: null,
      },
    ];
    const page = await renderPage({ ...quietCluster, backbone });
    expect(page.element('backbone-section').hidden).toBe(false);
    const html = page.element('backbone').querySelector('tbody').innerHTML;
    expect(html).toContain('<tr data-gateway="g1" data-connected="true"><td>g1</td><td class="ok">connected</td><td>10.0.0.7:5552 <span class="muted">(advertised rabbit-0:5552)</span></td><td class="num">3</td><td class="num">3.25 ms</td>');
    expect(html).toContain('data-node="10.0.0.7:5552" data-node-state="reachable">10.0.0.7:5552 reachable 2.41 ms</span>');
    expect(html).toContain('data-node="10.0.0.9:5552" data-node-state="unreachable">10.0.0.9:5552 unreachable: connect ECONNREFUSED &lt;10.0.0.9&gt;</span>');
    expect(html).toContain('<tr data-gateway="g2" data-connected="false"><td>g2</td><td class="bad">unreachable</td><td>–</td>');
    expect(html).toContain('data-node-state="unchecked"');
    // The leader one gateway knows, though the other does not.
    expect(page.element('stream-leaders').querySelector('tbody').innerHTML).toBe(
      '<tr data-stream-partition="orders/0"><td>orders/0</td><td data-leader>10.0.0.8:5552</td><td class="muted">relaymq:orders:k3x9:0</td></tr>',
    );

    for (const cluster of [{ ...quietCluster, backbone: [] }, quietCluster]) {
      const embedded = await renderPage(cluster);
      expect(embedded.element('backbone-section').hidden).toBe(true);
      expect(embedded.element('backbone').querySelector('tbody').innerHTML).toBe('');
    }
  });
});
