/**
 * Broker identity on disk, the guard against Raft amnesia. A data directory
 * records whose it is (`identity.json`: the broker id and an incarnation, a
 * random id made when the directory is first used), and what this broker has
 * seen of its peers (`peers.json`: each peer's incarnation, recorded the first
 * time it is met). A broker started with an empty data directory under an id
 * the cluster knows presents a new incarnation: every broker that met the old
 * one refuses its peer links, so it can never vote again in a term it may
 * already have voted in. A data directory is never used under another id.
 *
 * `identity.json` also records the cluster the directory belongs to (its
 * `clusterId`, once the cluster is named: engine/cluster-naming.ts): a broker
 * never starts under another cluster id (`--cluster-id`), and peers of
 * another cluster refuse its links (net/peer-transport.ts).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { RelayError } from '@relaymq/sdk/protocol';
import { nodeFileSystem, readWholeFile, replaceFile, type FileSystem } from './fs.js';

/** `identity.json`: whose data directory this is. */
export interface BrokerIdentity {
  brokerId: string;
  /** Made once, when the data directory is first used; a broker with amnesia has another. */
  incarnation: string;
  /** The cluster this directory belongs to; absent until the broker learned it (or was given it). */
  clusterId?: string;
}

const MAX_FILE_BYTES = 1024 * 1024;

/** The identity's name in the data directory: written at the directory's first use. */
export const IDENTITY_FILE = 'identity.json';

/**
 * The identity recorded in `dataDir`, created on first use. Throws
 * `INVALID_ARGUMENT` when the directory belongs to another broker id, or to
 * another cluster than `clusterId` (when given; a directory that records
 * none is given it).
 */
export async function loadIdentity(dataDir: string, brokerId: string, fs: FileSystem = nodeFileSystem, clusterId?: string): Promise<BrokerIdentity> {
  await fs.mkdir(dataDir);
  const path = join(dataDir, IDENTITY_FILE);
  const bytes = await readWholeFile(fs, path, MAX_FILE_BYTES);
  if (bytes !== undefined) {
    const stored = parseJson(path, bytes, 'it must hold { brokerId, incarnation }') as Partial<BrokerIdentity> | null;
    if (typeof stored?.brokerId !== 'string' || typeof stored.incarnation !== 'string') {
      throw new RelayError('STORAGE_ERROR', `${path} is damaged: it must hold { brokerId, incarnation }`);
    }
    if (stored.brokerId !== brokerId) {
      throw new RelayError('INVALID_ARGUMENT', `data directory ${dataDir} belongs to broker ${stored.brokerId}, not ${brokerId}: start ${stored.brokerId} on it, or give ${brokerId} its own directory`);
    }
    if (stored.clusterId !== undefined && typeof stored.clusterId !== 'string') throw new RelayError('STORAGE_ERROR', `${path} is damaged: its clusterId must be a string`);
    if (clusterId !== undefined && stored.clusterId !== undefined && stored.clusterId !== clusterId) {
      throw new RelayError('INVALID_ARGUMENT', foreignDataMessage(dataDir, stored.clusterId, clusterId));
    }
    const identity: BrokerIdentity = { brokerId, incarnation: stored.incarnation };
    const cluster = stored.clusterId ?? clusterId;
    if (cluster !== undefined) identity.clusterId = cluster;
    if (stored.clusterId === undefined && clusterId !== undefined) await writeIdentity(fs, path, identity);
    return identity;
  }
  const identity: BrokerIdentity = clusterId === undefined ? { brokerId, incarnation: randomUUID() } : { brokerId, incarnation: randomUUID(), clusterId };
  await writeIdentity(fs, path, identity);
  return identity;
}

/** Why a data directory of cluster `recorded` cannot serve cluster `wanted`. */
export function foreignDataMessage(dataDir: string, recorded: string, wanted: string): string {
  return (
    `data directory ${dataDir} belongs to cluster ${recorded}, not ${wanted}: ` +
    `a broker never starts against another cluster's data; give it an empty data directory to join cluster ${wanted}, or start it in cluster ${recorded}`
  );
}

/** Records the cluster `identity`'s directory belongs to (once: a recorded cluster id never changes). */
export async function recordClusterId(dataDir: string, identity: BrokerIdentity, clusterId: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  if (identity.clusterId !== undefined) return;
  identity.clusterId = clusterId;
  await writeIdentity(fs, join(dataDir, 'identity.json'), identity);
}

function writeIdentity(fs: FileSystem, path: string, identity: BrokerIdentity): Promise<void> {
  return replaceFile(fs, path, `${path}.tmp`, Buffer.from(`${JSON.stringify(identity)}\n`));
}

/**
 * `peers.json`: the incarnation of every peer met so far. Loaded once;
 * {@link remember} writes a newcomer through (atomically, in the background).
 */
export class PeerIncarnations {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly known: Map<string, string>,
    private readonly path: string | undefined,
    private readonly fs: FileSystem,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** In memory only (`dataDir` undefined) or from `<dataDir>/peers.json`. */
  static async open(dataDir: string | undefined, onError: (err: unknown) => void, fs: FileSystem = nodeFileSystem): Promise<PeerIncarnations> {
    if (dataDir === undefined) return new PeerIncarnations(new Map(), undefined, fs, onError);
    const path = join(dataDir, 'peers.json');
    const bytes = await readWholeFile(fs, path, MAX_FILE_BYTES);
    const stored = bytes === undefined ? {} : parseJson(path, bytes, 'remove it to forget the incarnations recorded there');
    if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) {
      throw new RelayError('STORAGE_ERROR', `${path} is damaged: it must map broker ids to incarnations (remove it to forget them)`);
    }
    const known = new Map(Object.entries(stored).filter((e): e is [string, string] => typeof e[1] === 'string'));
    return new PeerIncarnations(known, path, fs, onError);
  }

  /** The incarnation of `peer` as first met, if it was. */
  get(peer: string): string | undefined {
    return this.known.get(peer);
  }

  /** Records the incarnation of a peer met for the first time. */
  remember(peer: string, incarnation: string): void {
    if (this.known.has(peer)) return;
    this.known.set(peer, incarnation);
    const path = this.path;
    if (path === undefined) return;
    const data = Buffer.from(`${JSON.stringify(Object.fromEntries(this.known))}\n`);
    this.writing = this.writing.then(() => replaceFile(this.fs, path, `${path}.tmp`, data)).catch(this.onError);
  }

  /** Records `incarnation` as `peer`'s in place of the one met before (an operator let it come back on an empty data directory). */
  replace(peer: string, incarnation: string): void {
    this.known.delete(peer);
    this.remember(peer, incarnation);
  }

  /** Forgets `peer` (an operator replaced it): its next incarnation is met as new. */
  forget(peer: string): void {
    if (!this.known.delete(peer) || this.path === undefined) return;
    const path = this.path;
    const data = Buffer.from(`${JSON.stringify(Object.fromEntries(this.known))}\n`);
    this.writing = this.writing.then(() => replaceFile(this.fs, path, `${path}.tmp`, data)).catch(this.onError);
  }

  /** Resolves once every write so far is done. */
  flushed(): Promise<void> {
    return this.writing;
  }
}

/** A small JSON file's content; a damaged one is a `STORAGE_ERROR` naming the file and what to do. */
function parseJson(path: string, bytes: Uint8Array, fix: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
  } catch {
    throw new RelayError('STORAGE_ERROR', `${path} is damaged (not JSON): ${fix}`);
  }
}
