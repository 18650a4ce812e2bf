import { describe, expect, it } from 'vitest';
import { encodeValue } from '@relaymq/sdk/protocol';
import { COPIED_FRAME_BELOW_BYTES, HEADER_BYTES, framed, writeFramed } from './peer-frames.js';

describe('writeFramed', () => {
  it('writes the length and the body itself (no copy of it) in one corked write, the same bytes as a framed copy', () => {
    const body = encodeValue(['raft/p/t/0', { entries: [{ body: new Uint8Array(4096).fill(3) }] }]);
    const chunks: Uint8Array[] = [];
    let corked = 0;
    const socket = {
      cork: () => void corked++,
      uncork: () => void corked--,
      write: (chunk: Uint8Array) => {
        expect(corked).toBe(1);
        chunks.push(chunk);
        return true;
      },
    };
    writeFramed(socket, body);
    expect(corked).toBe(0);
    expect(chunks[1]).toBe(body);
    expect(Buffer.concat(chunks)).toEqual(framed(body));
  });

  it('writes a frame below COPIED_FRAME_BELOW_BYTES as one copied chunk, uncorked, the same bytes; from that size on, the body itself', () => {
    const written = (body: Uint8Array): { chunks: Uint8Array[]; corks: number } => {
      const chunks: Uint8Array[] = [];
      let corks = 0;
      writeFramed({ cork: () => void corks++, uncork: () => {}, write: (chunk) => chunks.push(chunk) > 0 }, body);
      return { chunks, corks };
    };
    const small = new Uint8Array(COPIED_FRAME_BELOW_BYTES - HEADER_BYTES - 1).fill(7);
    const one = written(small);
    expect(one.corks).toBe(0);
    expect(one.chunks).toHaveLength(1);
    expect(one.chunks[0]).not.toBe(small);
    expect(one.chunks[0]).toEqual(framed(small));
    const large = new Uint8Array(COPIED_FRAME_BELOW_BYTES - HEADER_BYTES).fill(7);
    const two = written(large);
    expect(two.corks).toBe(1);
    expect(two.chunks[1]).toBe(large);
    expect(Buffer.concat(two.chunks)).toEqual(framed(large));
  });
});
