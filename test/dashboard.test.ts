import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';

/** Debian's chromium; `.ci/run` installs it where apt is usable. */
const CHROMIUM = process.env.RELAYMQ_TEST_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`SKIPPED dashboard test: no Chromium at ${CHROMIUM} (install the Debian package "chromium", or set RELAYMQ_TEST_CHROMIUM)`);
}

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

describe('cluster dashboard', () => {
  it.skipIf(!hasChromium)('renders brokers, a leader and live throughput from a real 3-broker cluster in headless Chromium', async () => {
    const ids = ['d1', 'd2', 'd3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const brokers = await Promise.all(ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0 })));
    const d1 = brokers[0] as Broker;

    // Steady traffic through d1 for the whole test.
    const client = await fixture.client([d1.url], { poolSize: 1, discovery: false });
    let publishing = true;
    // Caught at once: cleanup closes the client before deferred closers run, which fails the publishes in flight.
    const traffic = (async () => {
      for (let i = 0; publishing && i < 1_000_000; i++) await Promise.all(Array.from({ length: 20 }, (_, j) => client.publish('dash.traffic', { i, j })));
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
});
