import { pino, type DestinationStream, type Logger } from 'pino';

/** Severity of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The logging seam every broker module uses. */
export type LogFunction = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** Settings of {@link createLogger}. */
export interface LoggerOptions {
  /** Bound to every line as `broker`. */
  brokerId: string;
  level: LogLevel | 'silent';
  /** Where JSON lines go; defaults to stderr (stdout is kept for the CLI's machine-readable lines). */
  destination?: DestinationStream;
}

/**
 * The broker's structured logger: pino writing JSON lines, the broker id in
 * its base bindings, behind the `log(level, message, fields)` seam every
 * module already uses, so a test can still inject its own function.
 */
export function createLogger(options: LoggerOptions): LogFunction {
  if (options.level === 'silent') return () => {};
  const root = pino(
    { level: options.level, base: { broker: options.brokerId }, timestamp: pino.stdTimeFunctions.isoTime },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
  return fromPino(root);
}

/** Adapts a pino logger to the seam; `fields` become the line's context (group, partition, term, ...). */
export function fromPino(logger: Logger): LogFunction {
  return (level, message, fields) => {
    if (fields === undefined) logger[level](message);
    else logger[level](fields, message);
  };
}

/**
 * A logger that adds `bindings` to every line, as pino's child loggers do:
 * a Raft group logs with its `group`, a session with its `clientId`.
 */
export function childLog(log: LogFunction, bindings: Record<string, unknown>): LogFunction {
  return (level, message, fields) => log(level, message, fields === undefined ? bindings : { ...bindings, ...fields });
}
