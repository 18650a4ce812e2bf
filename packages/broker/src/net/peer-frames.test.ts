import { describe, expect, it } from 'vitest';
import { encodeValue } from '@relaymq/sdk/protocol';
import { framed, writeFramed } from './peer-frames.js';

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
});
