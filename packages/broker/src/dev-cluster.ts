import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** Options of `relaymq dev`. */
export interface DevClusterOptions {
  /** Brokers to start. */
  count: number;
  /** Client port of the first broker; the others follow. */
  basePort: number;
  /** Peer port of the first broker; the others follow. */
  basePeerPort: number;
  /** Admin (metrics, dashboard) port of the first broker; the others follow. */
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

/**
 * `relaymq dev`: a local cluster on loopback for development — one child
 * process per broker (so each can be killed alone), output prefixed with its
 * id, all stopped together on SIGINT/SIGTERM.
 */
export async function runDevCluster(options: DevClusterOptions, write: (line: string) => void): Promise<void> {
  const ids = Array.from({ length: options.count }, (_, i) => `b${i + 1}`);
  const peerOf = (i: number): string => `${ids[i]}@${options.host}:${options.basePeerPort + i}`;
  const children: ChildProcess[] = ids.map((id, i) => {
    const args = [
      ...process.execArgv,
      options.cliPath,
      'broker',
      '--id', id,
      '--host', options.host,
      '--port', String(options.basePort + i),
      '--peer-port', String(options.basePeerPort + i),
      '--peers', ids.map((_, j) => j).filter((j) => j !== i).map(peerOf).join(','),
      '--admin-port', String(options.baseAdminPort + i),
      '--log-level', options.logLevel,
      '--data', join(options.dataRoot, id),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const prefix = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line !== '') write(`[${id}] ${line}`);
    };
    child.stdout?.on('data', prefix);
    child.stderr?.on('data', prefix);
    child.on('exit', (code, signal) => write(`[${id}] exited (${signal ?? code})`));
    return child;
  });
  write(`relaymq dev: ${options.count} brokers on ${ids.map((_, i) => `ws://${options.host}:${options.basePort + i}`).join(', ')}; Ctrl-C stops them`);
  write(`relaymq dev: data in ${options.dataRoot}${options.temporaryData ? ' (temporary: removed on exit; --data <dir> keeps it)' : ''}`);
  write(`relaymq dev: dashboards on ${ids.map((_, i) => `http://${options.host}:${options.baseAdminPort + i}/`).join(', ')}`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      for (const child of children) child.kill('SIGTERM');
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    let running = children.length;
    for (const child of children) {
      child.on('exit', () => {
        running--;
        if (running === 0) resolve();
      });
    }
  });
}
