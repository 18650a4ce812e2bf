import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { within } from './support/wait.js';

/**
 * A standalone broker with a data directory is a cluster of one: at
 * shutdown it has nobody to hand its leaderships to. It used to wait the
 * whole drain time for a handover that could not happen, then warn "some
 * groups kept their leader at shutdown".
 */
const fixture = new Fixture();
const tempDir = tempDirs('relaymq-standalone-shutdown-');
afterEach(() => fixture.cleanup());

/** Long enough that a close waiting for it stands out even at a load of 15 on 2 cores. */
const DRAIN_MS = 30_000;

describe('a standalone broker with a data directory', () => {
  it('closes without waiting for a leadership handover, and without warning that groups kept their leader', async () => {
    const lines: Array<{ level: string; message: string }> = [];
    const broker = await fixture.broker({
      id: 's1',
      dataDir: await tempDir(),
      defaultPartitions: 3,
      drainTimeoutMs: DRAIN_MS,
      log: (level, message) => lines.push({ level, message }),
    });
    const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
    await within(client.publish('standalone.t', 'first'), 'the topic to be created', 30_000);
    await client.close(); // no client left: the close waits for no goaway either

    const started = Date.now();
    await within(broker.close(), 'the broker to close', DRAIN_MS + 30_000);
    const tookMs = Date.now() - started;

    expect(lines.filter((l) => l.message.includes('kept their leader'))).toEqual([]);
    // Its metadata group and three partitions: each led here, none with another voter.
    expect(lines.filter((l) => l.message.startsWith('groups without another voter'))).toHaveLength(1);
    expect(tookMs).toBeLessThan(DRAIN_MS / 2);
  }, 120_000);
});
