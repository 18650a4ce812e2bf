import { RelayError } from '@relaymq/sdk/protocol';
import { errorCode } from '../fs.js';

/**
 * Stable codes of storage failures. The broker maps them onto its wire codes
 * (see docs/storage.md):
 *
 * | code | meaning | retriable |
 * | --- | --- | --- |
 * | `STORAGE_FULL` | the disk is full (ENOSPC, EDQUOT); appends fail until space returns, reads still work | yes, later |
 * | `STORAGE_IO` | a write or fsync failed (EIO, ...); appends fail until a retry succeeds, reads still work | yes, later |
 * | `STORAGE_CORRUPT` | the records asked for are damaged on this replica; read them from another replica | elsewhere |
 * | `STORAGE_CLOSED` | the log was closed | no |
 * | `STORAGE_LAYOUT` | the partition directory holds the other storage layout (`split` / `unified`); nothing was touched | no: start on an empty directory or keep that layout |
 */
export type LogStorageErrorCode = 'STORAGE_FULL' | 'STORAGE_IO' | 'STORAGE_CORRUPT' | 'STORAGE_CLOSED' | 'STORAGE_LAYOUT';

/** Facts attached to a {@link LogStorageError}. */
export interface LogStorageErrorDetails {
  /** The Node error code behind it (`ENOSPC`, `EIO`, ...). */
  errno?: string;
  /** The file concerned. */
  path?: string;
  /** For `STORAGE_CORRUPT`: the first damaged offset. */
  offset?: number;
  cause?: unknown;
}

/** A failure of the on-disk log, with a stable {@link LogStorageErrorCode}. */
export class LogStorageError extends Error {
  override readonly name = 'LogStorageError';
  readonly code: LogStorageErrorCode;
  readonly details: LogStorageErrorDetails;

  constructor(code: LogStorageErrorCode, message: string, details: LogStorageErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.details = details;
  }

  /** Whether the same operation may succeed later on this replica (space returns, the disk recovers). */
  get retriable(): boolean {
    return this.code === 'STORAGE_FULL' || this.code === 'STORAGE_IO';
  }
}

const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** Wraps an I/O error: `STORAGE_FULL` when the disk is out of space, else `STORAGE_IO`. */
export function ioError(err: unknown, what: string, path?: string): LogStorageError {
  if (err instanceof LogStorageError) return err;
  const errno = errorCode(err);
  const code = errno !== undefined && FULL.has(errno) ? 'STORAGE_FULL' : 'STORAGE_IO';
  const reason = err instanceof Error ? err.message : String(err);
  const details: LogStorageErrorDetails = { cause: err };
  if (errno !== undefined) details.errno = errno;
  if (path !== undefined) details.path = path;
  return new LogStorageError(code, `${what}: ${reason}`, details);
}

/**
 * A storage failure as clients see it: `STORAGE_FULL` when the disk is out
 * of space, `STORAGE_ERROR` for anything else (a failed write or fsync,
 * damage). `what` says what failed.
 */
export function storageRelayError(err: unknown, what: string): RelayError {
  const storage = ioError(err, what);
  return new RelayError(storage.code === 'STORAGE_FULL' ? 'STORAGE_FULL' : 'STORAGE_ERROR', storage.message, { cause: err });
}

/**
 * A partition directory of the other storage layout (docs/storage.md): its
 * `meta/layout` says `found` (or its files say `split`), and this broker
 * runs `running`. Nothing in it is touched.
 */
export function layoutError(path: string, found: string, running: string): LogStorageError {
  return new LogStorageError(
    'STORAGE_LAYOUT',
    `${path} holds a partition of the ${found} layout, and this broker runs storage.layout '${running}': start it on an empty data directory (the group repairs it from the other replicas) or keep storage.layout '${found}'`,
    { path },
  );
}
