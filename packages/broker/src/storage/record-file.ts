import { crc32 } from 'node:zlib';
import { mkdir, open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeValue, encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';

/** Records are broker-written; they may hold Raft batches, so they nest deeper than client frames. */
const RECORD_SCAN_LIMITS: ScanLimits = { maxDepth: 16, maxElements: 16_000_000, allowTimestamp: false };
/** length (u32) + crc32 of the body (u32). */
const HEADER_BYTES = 8;
/** A record larger than this is corruption, not data. */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

/** What opening found. */
export interface Recovered {
  records: unknown[];
  /** Bytes cut off the end: a torn or corrupt tail from a crash mid-write. */
  truncatedBytes: number;
}

/**
 * An append-only file of length-prefixed, CRC-checked msgpack records. Writes
 * are buffered and leave in one `write` per `flush`, followed by one fsync when
 * asked: group commit. On open, the records are read back and a torn tail is
 * cut off, so a crash never leaves a half record behind.
 */
export class RecordFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushing: Promise<void> = Promise.resolve();

  private constructor(
    private handle: FileHandle,
    private size: number,
    private readonly path: string,
  ) {}

  /** Opens (creating) `path` and returns the records it holds. */
  static async open(path: string): Promise<{ file: RecordFile; recovered: Recovered }> {
    await mkdir(dirname(path), { recursive: true });
    const existed = await stat(path).then(
      () => true,
      () => false,
    );
    const handle = await open(path, 'a+');
    if (!existed) {
      // A new file's directory entry must be durable too, or a crash could lose the whole file.
      const dir = await open(dirname(path), 'r');
      await dir.sync().finally(() => dir.close());
    }
    const bytes = await handle.readFile();
    const { records, validBytes } = parseRecords(bytes);
    if (validBytes < bytes.length) await handle.truncate(validBytes);
    return { file: new RecordFile(handle, validBytes, path), recovered: { records, truncatedBytes: bytes.length - validBytes } };
  }

  /** Bytes in the file, written or queued. */
  get bytes(): number {
    return this.size + this.pendingBytes;
  }

  /** Queues a record; it reaches the file with the next `flush`. */
  append(record: unknown): void {
    const [header, body] = encodeRecord(record);
    this.pending.push(header, body);
    this.pendingBytes += header.length + body.length;
  }

  /**
   * Writes everything queued so far in one write and, with `sync`, fsyncs it.
   * Flushes run one after another, so a resolved flush covers every record
   * appended before it was called.
   */
  flush(sync: boolean): Promise<void> {
    const chunks = this.pending;
    const length = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = this.flushing.then(async () => {
      if (length > 0) {
        await this.handle.write(Buffer.concat(chunks, length));
        this.size += length;
      }
      if (sync) await this.handle.datasync();
    });
    return this.flushing;
  }

  /**
   * Replaces the whole file with `records` (compaction), atomically: they are
   * written to a temporary file, fsynced and renamed over this one, so a crash
   * leaves either file, never a mix. Records queued and not flushed are dropped:
   * call it when `records` already include them.
   */
  rewrite(records: readonly unknown[]): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = this.flushing.then(async () => {
      const tmp = `${this.path}.tmp`;
      const chunks: Buffer[] = [];
      for (const record of records) chunks.push(...encodeRecord(record));
      const body = Buffer.concat(chunks);
      const next = await open(tmp, 'w');
      try {
        await next.write(body);
        await next.datasync();
      } finally {
        await next.close();
      }
      await rename(tmp, this.path);
      const dir = await open(dirname(this.path), 'r');
      await dir.sync().finally(() => dir.close());
      const old = this.handle;
      this.handle = await open(this.path, 'a');
      this.size = body.length;
      await old.close();
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush(true).catch(() => {});
    await this.handle.close();
  }
}

/** A record as its header (length, crc32) and body. */
function encodeRecord(record: unknown): [Buffer, Buffer] {
  const body = encodeValue(record);
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  header.writeUInt32BE(crc32(body), 4);
  return [header, Buffer.from(body.buffer, body.byteOffset, body.byteLength)];
}

/** Reads records until the end or the first that is truncated or fails its checksum. */
export function parseRecords(bytes: Uint8Array): { records: unknown[]; validBytes: number } {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: unknown[] = [];
  let pos = 0;
  while (pos + HEADER_BYTES <= view.length) {
    const length = view.readUInt32BE(pos);
    const checksum = view.readUInt32BE(pos + 4);
    if (length > MAX_RECORD_BYTES || pos + HEADER_BYTES + length > view.length) break;
    const body = view.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + length);
    if (crc32(body) !== checksum) break;
    try {
      records.push(decodeValue(body, RECORD_SCAN_LIMITS));
    } catch {
      break;
    }
    pos += HEADER_BYTES + length;
  }
  return { records, validBytes: pos };
}
