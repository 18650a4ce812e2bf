import type { Broker } from './broker.js';
import type { LogFunction } from './observability/logger.js';

/** What {@link serveUntilSignal} needs from the process; the real one in the CLI, a fake in tests. */
export interface SignalHost {
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  exit(code: number): void;
}

/**
 * Starts a broker and closes it cleanly on the first SIGTERM or SIGINT, exit
 * status 0 after a clean close and 1 after a failed one. The handlers are in
 * place before the start: a signal during it (opening thousands of logs can
 * take seconds) stops the broker as soon as it started, instead of killing
 * the process with the signal's default action mid-start.
 */
export async function serveUntilSignal(start: () => Promise<Broker>, log: LogFunction, host: SignalHost): Promise<Broker> {
  let broker: Broker | undefined;
  let stopping = false;
  const closeAndExit = (started: Broker): void => {
    started.close().then(
      () => host.exit(0),
      () => host.exit(1),
    );
  };
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal });
    if (broker !== undefined) closeAndExit(broker);
  };
  host.on('SIGTERM', () => stop('SIGTERM'));
  host.on('SIGINT', () => stop('SIGINT'));
  broker = await start();
  if (stopping) closeAndExit(broker);
  return broker;
}
