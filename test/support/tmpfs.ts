import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Size-limited tmpfs mounts, for tests that fill a real disk. Mounting needs
 * root on Linux in a container that allows it; elsewhere tests skip with the
 * reason this gives.
 */

/** Why this machine cannot mount a tmpfs, or undefined when it can (checked by mounting one). */
export function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const probe = mkdtempSync(join(tmpdir(), 'relaymq-mount-probe-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
    if (mounted.status !== 0) return `mount -t tmpfs failed: ${(mounted.stderr || mounted.error?.message || '').trim()}`;
    spawnSync('umount', [probe]);
    return undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/**
 * Mounts a tmpfs of `size` (mount's syntax: `8m`, or bytes) on the existing
 * directory `dir`; returns its unmount, lazy when a process killed a moment
 * ago still holds a file open.
 */
export function mountTmpfs(dir: string, size: string | number): () => void {
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) throw new Error(`mount -t tmpfs on ${dir} failed: ${(mounted.stderr || mounted.error?.message || '').trim()}`);
  return () => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  };
}
