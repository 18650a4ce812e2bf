const encoder = new TextEncoder();

/**
 * FNV-1a (32 bit) over the key's UTF-8 bytes. Broker and SDK must agree on it
 * byte for byte, so it lives here and nowhere else.
 */
export function hashKey(key: string): number {
  const bytes = encoder.encode(key);
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i] as number;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The partition for a keyed message: `hash(key) mod partitions`. */
export function partitionForKey(key: string, partitions: number): number {
  return hashKey(key) % partitions;
}
