import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RelayError } from '@relaymq/sdk/protocol';

/** Options of `relaymq dev`. */
export interface DevClusterOptions {
  /** Brokers to start. */
  count: number;
  /** Client port of the first broker; the others follow (0: each broker a free port). */
  basePort: number;
  /** Peer port of the first broker; the others follow (0 only with one broker: the others must know it). */
  basePeerPort: number;
  /** Admin (metrics, dashboard) port of the first broker; the others follow (0: each broker a free port). */
  baseAdminPort: number;
  host: string;
  logLevel: string;
  /** Each broker keeps its data in `<dataRoot>/<id>`, so a broker killed and restarted comes back with its log. */
  dataRoot: string;
  /** `dataRoot` is a temporary directory the caller removes on exit (said so in the banner). */
  temporaryData: boolean;
  /** The `relaymq` CLI script to run each broker with (the caller's own file). */
  cliPath: string;
}

/** Each broker's ports, by index. */
export interface DevPorts {
  client: number[];
  peer: number[];
  admin: number[];
}

/**
 * The ports of `count` brokers from the first broker's: the next ones follow
 * it, and 0 gives every broker a free port of its own (not ports 1, 2, ...).
 * Peer ports must be known in advance (each broker is told the others'), so
 * 0 is refused for more than one broker; so is a range past 65535.
 */
export function devPorts(count: number, basePort: number, basePeerPort: number, baseAdminPort: number): DevPorts {
  const range = (flag: string, base: number): number[] => {
    if (base !== 0 && base + count - 1 > 65535) throw new RelayError('INVALID_ARGUMENT', `--${flag} ${base} leaves no room for ${count} brokers (the last would be ${base + count - 1}, above 65535)`);
    return Array.from({ length: count }, (_, i) => (base === 0 ? 0 : base + i));
  };
  if (basePeerPort === 0 && count > 1) {
    throw new RelayError('INVALID_ARGUMENT', '--peer-port 0 works with --count 1 only: each broker is told the others\' peer ports before they start');
  }
  return { client: range('port', basePort), peer: range('peer-port', basePeerPort), admin: range('admin-port', baseAdminPort) };
}

/** `1 broker`, `3 brokers`. */
function brokers(count: number): string {
  return `${count} broker${count === 1 ? '' : 's'}`;
}

/** Where a broker's listening line says it is: its client URL and its dashboard. */
const LISTENING = /^relaymq broker (\S+) listening on (ws\S*:\/\/\S+)(?:.* admin on (http\S*:\/\/\S+))?/;

/**
 * `relaymq dev`: a local cluster on loopback for development — one child
 * process per broker (so each can be killed alone), output prefixed with its
 * id, all stopped together on SIGINT/SIGTERM.
 */
export async function runDevCluster(options: DevClusterOptions, write: (line: string) => void): Promise<DevClusterEnd> {
  const ids = Array.from({ length: options.count }, (_, i) => `b${i + 1}`);
  const ports = devPorts(options.count, options.basePort, options.basePeerPort, options.baseAdminPort);
  const peerOf = (i: number): string => `${ids[i]}@${options.host}:${ports.peer[i]}`;
  /** Each broker's URLs once it said it listens; all of them: the ready line. */
  const listening = new Map<string, string>();
  const children: ChildProcess[] = ids.map((id, i) => {
    const args = [
      ...process.execArgv,
      options.cliPath,
      'broker',
      '--id', id,
      '--host', options.host,
      '--port', String(ports.client[i]),
      '--peer-port', String(ports.peer[i]),
      '--peers', ids.map((_, j) => j).filter((j) => j !== i).map(peerOf).join(','),
      '--admin-port', String(ports.admin[i]),
      '--log-level', options.logLevel,
      '--data', join(options.dataRoot, id),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // Whole lines (a chunk may end mid-line), each prefixed with the broker's id.
    const show = (line: string): void => write(`[${id}] ${line}`);
    if (child.stderr !== null) createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', show);
    if (child.stdout !== null) {
      createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
        show(line);
        const match = LISTENING.exec(line);
        if (match === null || listening.has(id)) return;
        listening.set(id, `${id} ${match[2]}${match[3] === undefined ? '' : ` (dashboard ${match[3]}/)`}`);
        if (listening.size === ids.length) write(`relaymq dev: ready: ${ids.map((b) => listening.get(b)).join(', ')}`);
      });
    }
    // 'close' (not 'exit'): after the process's last output lines are written.
    child.on('close', (code, signal) => write(`[${id}] exited (${signal ?? code})`));
    return child;
  });
  write(`relaymq dev: starting ${brokers(options.count)} (${ids.join(', ')}) on ${options.host}; Ctrl-C stops them`);
  write(`relaymq dev: data in ${options.dataRoot}${options.temporaryData ? ' (temporary: removed on exit; --data <dir> keeps it)' : ''}`);
  return new Promise<DevClusterEnd>((resolve) => {
    let stopping = false;
    let failed: string | undefined;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      for (const child of children) child.kill('SIGTERM');
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    let running = children.length;
    children.forEach((child, i) => {
      child.on('close', (code, signal) => {
        running--;
        // Before every broker listens, one that exits (a port taken, bad data) leaves a cluster
        // that will never be ready: stop the others rather than run a partial one. Afterwards a
        // broker that exits was most likely killed on purpose (trying failover), so the rest run on.
        if (!stopping && listening.size < ids.length && failed === undefined) {
          failed = `${ids[i]} exited (${signal ?? code}) before the cluster was ready; stopping the others`;
          write(`relaymq dev: ${failed}`);
          stop();
        }
        if (running === 0) resolve(failed === undefined ? { ok: true } : { ok: false, reason: failed });
      });
    });
  });
}

/** How `relaymq dev` ended: stopped by a signal after it ran, or a broker failed before all were ready. */
export type DevClusterEnd = { ok: true } | { ok: false; reason: string };
