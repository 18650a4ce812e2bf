import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, ClusterReport } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { eventually, get, getJson, parseMetrics } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { CHROMIUM, CHROMIUM_ARGS, hasChromium } from './support/chromium.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { ProcessCluster } from './support/process-cluster.js';
import { waitFor, waitForAsync } from './support/wait.js';

if (!hasChromium) {
  console.warn(`SKIPPED dashboard test: no Chromium at ${CHROMIUM} (install the Debian package "chromium", or set RELAYMQ_TEST_CHROMIUM)`);
}

const fixture = new Fixture();
afterEach(async () => {
  // The processes go even when another cleanup step fails: a leftover broker would load the machine for every later test.
  try {
    await fixture.cleanup();
  } finally {
    await BrokerProcess.stopAll();
  }
});


/** What a console page shows that must be the same on every broker: brokers and their states, partitions with leader, replica states and status. */
function shownState(page: Page): Promise<{ brokers: string[]; partitions: string[]; health: string | null }> {
  return page.evaluate(() => ({
    health: document.querySelector('#health')?.textContent ?? null,
    brokers: Array.from(document.querySelectorAll('#brokers tbody tr')).map((r) => `${r.getAttribute('data-broker')} ${r.getAttribute('data-state')} ${r.children[2]?.textContent}`),
    partitions: Array.from(document.querySelectorAll('#partitions tbody tr')).map(
      (r) =>
        `${r.getAttribute('data-partition')} ${r.querySelector('td[data-leader]')?.textContent} ${r.getAttribute('data-status')} ` +
        Array.from(r.querySelectorAll('[data-replica]')).map((b) => `${b.getAttribute('data-replica')}=${b.getAttribute('data-replica-state')}`).join(','),
    ),
  }));
}

describe('cluster dashboard', () => {
  it.skipIf(!hasChromium)('renders brokers, a leader and live throughput from a real 3-broker cluster in headless Chromium', async () => {
    const ids = ['d1', 'd2', 'd3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const brokers = await Promise.all(ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0 })));
    const d1 = brokers[0] as Broker;

    // A subscriber, so that "out" has something to show too.
    const subscriber = await fixture.client([d1.url], { poolSize: 1, discovery: false });
    let received = 0;
    await subscriber.subscribe('dash.traffic', () => void received++, { from: 'earliest' });
    // The traffic starts after d1's first sample, so every message falls in a whole sampled second.
    await waitForAsync(async () => (await getJson<{ points: unknown[] }>(`${d1.adminUrl as string}/api/series`)).points.length > 0, 'd1 to take its first sample');

    // Steady traffic through d1 until the headline is checked; each publish's round trip measured.
    const client = await fixture.client([d1.url], { poolSize: 1, discovery: false });
    let publishing = true;
    let acked = 0;
    let longestRoundTripMs = 0;
    const timedPublish = async (data: unknown): Promise<void> => {
      const started = performance.now();
      await client.publish('dash.traffic', data);
      longestRoundTripMs = Math.max(longestRoundTripMs, performance.now() - started);
      acked++;
    };
    // Caught at once: cleanup closes the client before deferred closers run, which fails the publishes in flight.
    const traffic = (async () => {
      for (let i = 0; publishing && i < 1_000_000; i++) await Promise.all(Array.from({ length: 20 }, (_, j) => timedPublish({ i, j })));
    })().catch(() => {});
    fixture.defer(async () => {
      publishing = false;
      await traffic;
    });

    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    fixture.defer(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const failedRequests: string[] = [];
    page.on('requestfailed', (r) => failedRequests.push(r.url()));
    await page.goto(`${d1.adminUrl}/`);

    await page.waitForFunction(() => document.querySelectorAll('#brokers tbody tr').length === 3, undefined, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('#brokers [data-role="leader"]') !== null, undefined, { timeout: 15_000 });
    await page.waitForFunction(() => Number(document.querySelector('#throughput-in')?.textContent) > 0, undefined, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('#partitions tr[data-partition="dash.traffic/0"] td[data-leader]')?.textContent?.match(/^d[123]$/) !== null, undefined, {
      timeout: 15_000,
    });

    const brokersShown = await page.$$eval('#brokers tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-broker'), r.children[1]?.textContent]));
    expect(brokersShown).toEqual([
      ['d1', 'alive'],
      ['d2', 'alive'],
      ['d3', 'alive'],
    ]);
    expect(await page.textContent('#health')).toBe('healthy');
    expect(Number(await page.textContent('#latency-p50'))).toBeGreaterThan(0);

    // The headline is the cluster chart's point of the second it names, as /api/cluster has it.
    const headline = await page.evaluate(() => ({
      timeMs: Number(document.querySelector<HTMLElement>('#throughput-at')?.dataset.timeMs),
      latencyTimeMs: Number(document.querySelector<HTMLElement>('#latency-at')?.dataset.timeMs),
      in: document.querySelector('#throughput-in')?.textContent,
      out: document.querySelector('#throughput-out')?.textContent,
      p50: Number(document.querySelector('#latency-p50')?.textContent),
      p99: Number(document.querySelector('#latency-p99')?.textContent),
    }));
    publishing = false;
    await traffic;
    expect(headline.latencyTimeMs).toBe(headline.timeMs);
    const point = (await getJson<ClusterReport>(`${d1.adminUrl as string}/api/cluster`)).series.cluster.find((p) => p.timeMs === headline.timeMs);
    expect(point, `the cluster series has the headline's second ${headline.timeMs}`).toBeDefined();
    const shownMs = (v: number | null | undefined): number => (v === null || v === undefined ? Number.NaN : v >= 100 ? Math.round(v) : Number(v.toPrecision(3)));
    expect([headline.in, headline.out, headline.p50, headline.p99]).toEqual([String(point?.inPerSec), String(point?.outPerSec), shownMs(point?.p50Ms), shownMs(point?.p99Ms)]);
    // And true to the traffic: the broker's publish latency lies inside the client's round trips (histogram buckets are 10 % wide)…
    expect(headline.p50).toBeGreaterThan(0);
    expect(headline.p50).toBeLessThanOrEqual(headline.p99);
    expect(headline.p99).toBeLessThanOrEqual(longestRoundTripMs * 1.1 + 0.01);
    // …and what the test published and received: exactly in /metrics, and in the chart's points added up over their seconds.
    await waitFor(() => received === acked, `the subscriber to receive the ${acked} acknowledged messages`);
    const counted = async (name: string): Promise<number> => {
      let total = 0;
      for (const b of brokers) for (const m of parseMetrics((await get(`${b.adminUrl as string}/metrics`)).body)) if (m.name === name && m.labels.topic === 'dash.traffic') total += m.value;
      return total;
    };
    expect([await counted('relaymq_messages_in_total'), await counted('relaymq_messages_out_total')]).toEqual([acked, received]);
    const stoppedMs = Date.now();
    const { cluster: series, brokers: brokerSeries } = await eventually(
      async () => (await getJson<ClusterReport>(`${d1.adminUrl as string}/api/cluster`)).series,
      ({ cluster }) => (cluster[cluster.length - 1]?.timeMs ?? 0) >= stoppedMs + 2000,
      'the cluster series to pass the end of the traffic',
    );
    // Each broker's points over its own intervals: a sampler timer late by more than a second (a loaded machine)
    // closes one point over two seconds, which the cluster chart shows at its second only.
    const summed = (field: 'inPerSec' | 'outPerSec'): number =>
      Object.values(brokerSeries).reduce((total, points) => total + points.reduce((n, p, i) => n + p[field] * (i === 0 ? 1 : (p.timeMs - (points[i - 1] as typeof p).timeMs) / 1000), 0), 0);
    // Rates are rounded per second and divided by the sampler's real interval, hence the margin.
    console.log(
      `dashboard headline: in ${headline.in} out ${headline.out} p50 ${headline.p50} p99 ${headline.p99} ms at ${headline.timeMs} (longest round trip ${longestRoundTripMs.toFixed(1)} ms); ` +
        `published ${acked}, received ${received}; chart sums in ${summed('inPerSec').toFixed(0)} out ${summed('outPerSec').toFixed(0)} over ${series.length} points (the cluster chart's ${series.reduce((n, p, i) => n + p.inPerSec * (i === 0 ? 1 : (p.timeMs - (series[i - 1] as typeof p).timeMs) / 1000), 0).toFixed(0)} in)`,
    );
    for (const [field, truth] of [['inPerSec', acked], ['outPerSec', received]] as const) {
      expect(Math.abs(summed(field) - truth), `${field} over the chart's seconds (${summed(field)}) against ${truth}`).toBeLessThanOrEqual(truth * 0.1 + series.length);
    }
    expect(await page.$$eval('#throughput-chart polyline', (lines) => lines.length)).toBeGreaterThan(0);
    expect(await page.$$eval('#events li', (items) => items.map((i) => i.textContent).join('\n'))).toMatch(/leader d[123]/);
    expect(failedRequests).toEqual([]);

    const dir = await mkdtemp(join(tmpdir(), 'relaymq-dashboard-'));
    fixture.defer(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    const png = await readFile(file);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(1280); // IHDR width
    expect(png.length).toBeGreaterThan(20_000); // a rendered page, not a blank one
    if (process.env.RELAYMQ_TEST_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.RELAYMQ_TEST_SCREENSHOT, fullPage: true });
  });

  it.skipIf(!hasChromium)('shows the same cluster on every live broker of 5 processes (RF 3) after one is killed, the dead one marked, and browses messages', async () => {
    const root = await mkdtemp(join(tmpdir(), 'relaymq-console-'));
    // The processes go before their data directories (closers run together).
    fixture.defer(async () => {
      await BrokerProcess.stopAll();
      await rm(root, { recursive: true, force: true });
    });
    const ids = ['b1', 'b2', 'b3', 'b4', 'b5'];
    const cluster = await ProcessCluster.start(ids, (id) => ['--data-dir', join(root, id), '--replication-factor', '3', '--default-partitions', '5'], 30_000);
    const urls = ids.map((id) => cluster.get(id).url);

    // Steady keyed traffic on every partition, and a durable consumer that read the first messages and left (its lag grows).
    const client = await fixture.client(urls, { poolSize: 2 });
    for (let i = 0; i < 50; i++) await client.publish('shop.orders', { order: i, item: 'book', eur: 12.5 }, { key: `k${i}` });
    const reader = await fixture.client(urls, { poolSize: 1, commit: { intervalMs: 0 } });
    let read = 0;
    await reader.subscribe('shop.orders', (_m: Message) => void read++, { durable: 'billing', from: 'earliest' });
    await waitFor(() => read === 50, 'the durable consumer to read 50 messages');
    const first = cluster.get('b1').adminUrl as string;
    await waitForAsync(async () => (await getJson<ClusterReport>(`${first}/api/cluster`)).consumers.filter((c) => c.consumer === 'billing').reduce((n, c) => n + c.offset, 0) === 50, 'billing to commit 50 positions');
    await reader.close();
    let publishing = true;
    const traffic = (async () => {
      for (let i = 50; publishing && i < 1_000_000; i++) await Promise.all(Array.from({ length: 10 }, (_, j) => client.publish('shop.orders', { order: i * 10 + j }, { key: `k${j}` })));
    })().catch(() => {});
    fixture.defer(async () => {
      publishing = false;
      await traffic;
    });

    // Kill a broker that follows some partition led by another (the case the console used to get wrong).
    const before = await getJson<ClusterReport>(`${first}/api/cluster`);
    const victimId = ids.find((id) => id !== 'b1' && before.partitions.some((p) => p.leader !== id && p.replicas.includes(id))) as string;
    await cluster.get(victimId).signal('SIGKILL');
    const live = ids.filter((id) => id !== victimId);

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    fixture.defer(() => browser.close());
    const pages = await Promise.all(
      live.map(async (id) => {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        await page.goto(`${cluster.get(id).adminUrl}/`);
        return page;
      }),
    );

    // Every live broker's page converges on one state: the victim dead, its partitions under-replicated.
    let states: Array<Awaited<ReturnType<typeof shownState>>> = [];
    await waitForAsync(
      async () => {
        states = await Promise.all(pages.map(shownState));
        const [one] = states;
        return (
          one !== undefined &&
          one.brokers.length === 5 &&
          one.partitions.length === 5 &&
          one.brokers.includes(`${victimId} dead follower`) &&
          one.partitions.every((p) => !p.includes(' unknown') && !p.includes(' leaderless')) &&
          states.every((s) => JSON.stringify(s) === JSON.stringify(one))
        );
      },
      `the ${live.length} live pages to agree that ${victimId} is dead`,
      45_000,
    );
    const [state] = states as [Awaited<ReturnType<typeof shownState>>];
    expect(state.health).toBe('unhealthy');
    for (const id of live) expect(state.brokers.some((b) => b.startsWith(`${id} alive `))).toBe(true);
    const withVictim = state.partitions.filter((p) => p.includes(`${victimId}=`));
    expect(withVictim.length).toBeGreaterThan(0);
    for (const p of withVictim) {
      expect(p).toContain(`${victimId}=dead`);
      expect(p).toContain(' under-replicated ');
      expect(p).not.toMatch(new RegExp(`^\\S+ ${victimId} `)); // never led by the dead broker
    }
    for (const p of state.partitions.filter((x) => !x.includes(`${victimId}=`))) expect(p).toContain(' ok ');

    const page = pages[0] as Page;
    // Headline numbers are the chart's last point; the charts have time axes and legends, per-broker series included.
    await page.waitForFunction(() => Number(document.querySelector('#throughput-in')?.textContent) > 0, undefined, { timeout: 15_000 });
    // The figures are those of the second they name in the cluster series the answering broker reports (the dead one not counted).
    const shown = await page.evaluate(() => [Number(document.querySelector<HTMLElement>('#throughput-at')?.dataset.timeMs), document.querySelector('#throughput-in')?.textContent]);
    const named = (await getJson<ClusterReport>(`${cluster.get(live[0] as string).adminUrl as string}/api/cluster`)).series.cluster.find((p) => p.timeMs === shown[0]);
    expect(String(named?.inPerSec)).toBe(shown[1]);
    expect(await page.$$eval('#throughput-chart .time-label', (labels) => labels.length)).toBeGreaterThan(0);
    expect(await page.$$eval('#throughput-legend [data-legend]', (items) => items.map((i) => i.textContent))).toEqual(['in (published)', 'out (delivered)']);
    const brokerLegend = await page.$$eval('#broker-in-legend [data-legend]', (items) => items.map((i) => i.textContent));
    expect(brokerLegend).toHaveLength(5);
    expect(brokerLegend.find((l) => l?.startsWith(victimId))).toBe(`${victimId} (dead, no data)`);
    expect(await page.$$eval('#broker-in-chart polyline', (lines) => lines.length)).toBeGreaterThanOrEqual(live.length - 1);
    // Topics, sizes, disk usage, consumer lag.
    const topicRow = await page.$eval('#topics tr[data-topic="shop.orders"]', (r) => Array.from(r.children).map((c) => c.textContent));
    expect(topicRow[1]).toBe('5');
    expect(topicRow[3]).toMatch(/\d (B|KiB|MiB)$/);
    const disks = await page.$$eval('#brokers tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-broker'), r.children[7]?.textContent]));
    for (const [id, disk] of disks) expect(disk, `disk of ${id}`).toMatch(id === victimId ? /^–$/ : /^[\d.]+% of /);
    const lags = await page.$$eval('#consumers tbody tr', (rows) => rows.map((r) => [r.children[0]?.textContent, Number(r.querySelector('[data-lag]')?.textContent)]));
    expect(lags.length).toBeGreaterThan(0);
    expect(lags.every(([name, lag]) => name === 'billing' && (lag as number) >= 0)).toBe(true);
    // Nothing cut at 1400 px: no horizontal scroll, and every URL cell shows its whole text.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1400);
    expect(await page.$$eval('#brokers td.url', (cells) => cells.filter((c) => c.scrollWidth > c.clientWidth + 1).length)).toBe(0);

    // The message browser: the last 5 messages of a partition as JSON, then as hex; bad input refused.
    await page.fill('#browse-topic', 'shop.orders');
    await page.fill('#browse-partition', '0');
    await page.fill('#browse-count', '5');
    await page.click('#browse button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('#messages tbody tr').length === 5, undefined, { timeout: 10_000 });
    const json = await page.$$eval('#messages pre', (pres) => pres.map((p) => p.textContent ?? ''));
    for (const text of json) expect(JSON.parse(text)).toHaveProperty('order');
    await page.selectOption('#browse-format', 'hex');
    expect(await page.$eval('#messages pre', (p) => p.textContent)).toMatch(/^000000 {2}([0-9a-f]{2} )+/);
    await page.selectOption('#browse-mode', 'from');
    await page.fill('#browse-from', '0');
    await page.fill('#browse-count', '3');
    await page.click('#browse button[type="submit"]');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#messages tbody tr')).map((r) => r.getAttribute('data-offset')).join() === '0,1,2', undefined, { timeout: 10_000 });
    await page.fill('#browse-count', '500');
    await page.click('#browse button[type="submit"]');
    expect(await page.textContent('#browse-error')).toBe('N: a whole number from 1 to 100');
    await page.fill('#browse-count', '5');
    await page.fill('#browse-topic', 'no.such.topic');
    await page.click('#browse button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#browse-error')?.textContent === 'topic no.such.topic does not exist', undefined, { timeout: 10_000 });

    // A screenshot for the README: the browser showing JSON again.
    await page.fill('#browse-topic', 'shop.orders');
    await page.selectOption('#browse-mode', 'last');
    await page.fill('#browse-count', '3');
    await page.selectOption('#browse-format', 'json');
    await page.click('#browse button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('#messages tbody tr').length === 3, undefined, { timeout: 10_000 });
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.readUInt32BE(16)).toBe(1400);
    if (process.env.RELAYMQ_CONSOLE_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.RELAYMQ_CONSOLE_SCREENSHOT, fullPage: true });
  }, 150_000);
  it.skipIf(!hasChromium)('asks for the admin token: the message browser needs it, protected reads need it for the whole page; kept for the tab, sent as a bearer header', async () => {
    const TOKEN = 'dashboard-admin-token-0123456789';
    // Reads open, a token configured: the cluster shows, the message browser needs the token.
    const open = await fixture.broker({ id: 't-open', adminPort: 0, adminToken: TOKEN });
    // Reads protected: everything but the page itself needs it.
    const closed = await fixture.broker({ id: 't-closed', adminPort: 0, adminToken: TOKEN, adminProtectReads: true });
    for (const broker of [open, closed]) {
      const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
      for (let i = 0; i < 3; i++) await client.publish('private.notes', { note: `n${i}` });
    }
    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    fixture.defer(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    /** The Authorization header of every /api request the page makes. */
    const sent: Array<[string, string | undefined]> = [];
    context.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/')) sent.push([new URL(r.url()).pathname, r.headers().authorization]);
    });
    const browse = async (page: Page): Promise<void> => {
      await page.fill('#browse-topic', 'private.notes');
      await page.fill('#browse-count', '3');
      await page.click('#browse button[type="submit"]');
    };

    const page = await context.newPage();
    await page.goto(`${open.adminUrl as string}/`);
    await page.waitForFunction(() => document.querySelector('#health')?.textContent === 'healthy', undefined, { timeout: 15_000 });
    expect(await page.textContent('#token-state')).toBe('none');
    await browse(page);
    await page.waitForFunction(() => (document.querySelector('#browse-error')?.textContent ?? '') !== '', undefined, { timeout: 10_000 });
    expect(await page.textContent('#browse-error')).toBe(
      'The message browser (it shows message contents) needs the admin token (the brokers\' --admin-token): enter it under "admin token" above.',
    );
    expect(await page.$$eval('#messages tbody tr', (r) => r.length)).toBe(0);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('admin-token');

    // A wrong token: refused, and said so.
    await page.fill('#admin-token', 'not-the-admin-token-at-all');
    await page.click('#token-form button[type="submit"]');
    await browse(page);
    await page.waitForFunction(() => (document.querySelector('#browse-error')?.textContent ?? '').startsWith('The admin token was refused'), undefined, { timeout: 10_000 });

    // The right token: the messages; the field is emptied, the token kept in this tab's sessionStorage only.
    await page.fill('#admin-token', TOKEN);
    await page.click('#token-form button[type="submit"]');
    expect(await page.inputValue('#admin-token')).toBe('');
    expect(await page.textContent('#token-state')).toBe('set for this tab');
    await browse(page);
    await page.waitForFunction(() => document.querySelectorAll('#messages tbody tr').length === 3, undefined, { timeout: 10_000 });
    expect(await page.textContent('#browse-error')).toBe('');
    expect(await page.evaluate(() => [sessionStorage.getItem('relaymq.adminToken'), localStorage.length, location.search])).toEqual([TOKEN, 0, '']);
    const messagesCalls = sent.filter(([path]) => path === '/api/messages').map(([, auth]) => auth);
    expect(messagesCalls).toEqual([undefined, 'Bearer not-the-admin-token-at-all', `Bearer ${TOKEN}`]);

    // Protected reads: the page loads, says what it needs, and shows the cluster once the token is in.
    const guarded = await context.newPage();
    await guarded.goto(`${closed.adminUrl as string}/`);
    await guarded.waitForFunction(() => document.querySelector('#health')?.textContent === 'token needed', undefined, { timeout: 15_000 });
    expect(await guarded.textContent('#auth')).toBe('This broker\'s console (--admin-protect-reads) needs the admin token (the brokers\' --admin-token): enter it under "admin token" above.');
    expect(await guarded.$$eval('#brokers tbody tr', (r) => r.length)).toBe(0);
    await guarded.fill('#admin-token', TOKEN);
    await guarded.click('#token-form button[type="submit"]');
    await guarded.waitForFunction(() => document.querySelector('#health')?.textContent === 'healthy', undefined, { timeout: 15_000 });
    expect(await guarded.textContent('#auth')).toBe('');
    expect(await guarded.$$eval('#brokers tbody tr', (rows) => rows.map((r) => r.getAttribute('data-broker')))).toEqual(['t-closed']);
    await browse(guarded);
    await guarded.waitForFunction(() => document.querySelectorAll('#messages tbody tr').length === 3, undefined, { timeout: 10_000 });
    // A reload keeps it (same tab); Forget drops it and the page asks again.
    await guarded.reload();
    await guarded.waitForFunction(() => document.querySelector('#health')?.textContent === 'healthy', undefined, { timeout: 15_000 });
    await guarded.click('#token-forget');
    await guarded.waitForFunction(() => document.querySelector('#health')?.textContent === 'token needed', undefined, { timeout: 15_000 });
    expect(await guarded.evaluate(() => sessionStorage.getItem('relaymq.adminToken'))).toBeNull();
    // Nothing read with the token stays on the page: the messages and the cluster's tables are gone.
    expect(await guarded.$$eval('#messages tbody tr, #brokers tbody tr, #partitions tbody tr, #topics tbody tr', (r) => r.length)).toBe(0);
  }, 60_000);

  it.skipIf(!hasChromium)('shows consumer-group lag per partition in headless Chromium, equal to /metrics, and follows it as messages arrive', async () => {
    const ids = ['g1', 'g2', 'g3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const brokers = await Promise.all(
      ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0, defaultPartitions: 3 })),
    );
    const [g1, g2] = brokers as [Broker, Broker, Broker];
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const publisher = await fixture.client([g1.url]);
    for (let n = 0; n < 12; n++) await publisher.publish('invoices', { n }, { key: keys[n % keys.length] as string });

    // A group member on another broker than the page's handles the 12 messages and leaves (committing its positions).
    const member = await fixture.client([g2.url], { poolSize: 1, discovery: false, commit: { intervalMs: 0 } });
    let handled = 0;
    await member.subscribe('invoices', () => void handled++, { group: 'workers', from: 'earliest' });
    await waitFor(() => handled === 12, 'the member to handle the 12 messages');
    await member.close();
    for (let n = 12; n < 17; n++) await publisher.publish('invoices', { n }, { key: keys[n % keys.length] as string });

    /** The group's lag per partition as the brokers export it: each partition is reported by its leader only. */
    const metricLags = async (): Promise<Record<string, number>> => {
      const lags: Record<string, number> = {};
      for (const broker of brokers) {
        for (const s of parseMetrics((await get(`${broker.adminUrl as string}/metrics`)).body)) {
          if (s.name === 'relaymq_consumer_lag_messages' && s.labels.kind === 'group' && s.labels.consumer === 'workers') lags[`invoices/${s.labels.partition}`] = s.value;
        }
      }
      return lags;
    };
    const total = (lags: Record<string, number>): number => Object.values(lags).reduce((a, b) => a + b, 0);
    await waitForAsync(async () => total(await metricLags()) === 5, 'the group lag in /metrics to total the 5 messages published after the member left');

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    fixture.defer(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${g1.adminUrl as string}/`);
    /** The group's rows of the consumer-lag table, by partition. */
    const shownLags = (): Promise<Record<string, number>> =>
      page.$$eval('#consumers tbody tr', (rows) =>
        Object.fromEntries(
          rows.filter((r) => r.children[0]?.textContent === 'workers' && r.children[1]?.textContent === 'group').map((r) => [r.children[2]?.textContent ?? '', Number(r.querySelector('[data-lag]')?.textContent)]),
        ),
      );
    await waitForAsync(async () => Object.keys(await shownLags()).length === 3 && total(await shownLags()) === 5, 'the page to show the group’s lag in its 3 partitions', 15_000);
    expect(await shownLags()).toEqual(await metricLags());

    // More messages: the page follows (it refreshes on its own), and still agrees with /metrics.
    for (let n = 17; n < 20; n++) await publisher.publish('invoices', { n }, { key: keys[n % keys.length] as string });
    await waitForAsync(async () => total(await shownLags()) === 8, 'the page to show the lag grown to 8', 15_000);
    await waitForAsync(async () => total(await metricLags()) === 8, '/metrics to show the lag grown to 8');
    expect(await shownLags()).toEqual(await metricLags());
  });
});
