import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { RelayError } from './errors.js';
import { FRAME_SCAN_LIMITS, PAYLOAD_SCAN_LIMITS, scanMsgpack, type ScanLimits } from './scan.js';

/** Bytes from hex, whitespace ignored: `hex('92 01 c0')`. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (!/^(?:[0-9a-f]{2})*$/i.test(clean)) throw new Error(`bad hex ${text}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

const repeat = (byte: number, n: number): Uint8Array => new Uint8Array(n).fill(byte);

/** The PROTOCOL_ERROR message that `scanMsgpack` throws, or undefined when it accepts the bytes. */
function scanError(bytes: Uint8Array, limits: Readonly<ScanLimits> = FRAME_SCAN_LIMITS): string | undefined {
  try {
    scanMsgpack(bytes, limits);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(RelayError);
    expect((err as RelayError).code).toBe('PROTOCOL_ERROR');
    return (err as RelayError).message;
  }
}

const OK = undefined;
const TRUNCATED = /truncated/;
const EXTENSION = /not allowed/;
const NOT_STRING_KEY = /map key is not a string/;
const MORE_THAN_BYTES = /declares more elements than bytes/;

describe('scanMsgpack: every msgpack type', () => {
  it.each<[string, string, RegExp | undefined]>([
    ['positive fixint 0', '00', OK],
    ['positive fixint 127', '7f', OK],
    ['negative fixint -32', 'e0', OK],
    ['negative fixint -1', 'ff', OK],
    ['empty fixmap', '80', OK],
    ['fixmap, string key', '81 a1 61 01', OK],
    ['fixmap of 15', `8f ${Array.from({ length: 15 }, (_, i) => `a1 ${(0x61 + i).toString(16)} c0`).join(' ')}`, OK],
    ['empty fixarray', '90', OK],
    ['fixarray of 15', `9f ${'01 '.repeat(15)}`, OK],
    ['empty fixstr', 'a0', OK],
    ['fixstr', 'a3 61 62 63', OK],
    ['fixstr of 31', `bf ${'61 '.repeat(31)}`, OK],
    ['nil', 'c0', OK],
    ['never-used 0xc1', 'c1', /0xc1 is not allowed/],
    ['false', 'c2', OK],
    ['true', 'c3', OK],
    ['empty bin 8', 'c4 00', OK],
    ['bin 8', 'c4 03 01 02 03', OK],
    ['bin 16', 'c5 00 02 01 02', OK],
    ['bin 32', 'c6 00 00 00 01 ff', OK],
    ['ext 8', 'c7 01 05 00', EXTENSION],
    ['ext 16', 'c8 00 01 05 00', EXTENSION],
    ['ext 32', 'c9 00 00 00 01 05 00', EXTENSION],
    ['float 32', 'ca 3f 80 00 00', OK],
    ['float 64', 'cb 3f f0 00 00 00 00 00 00', OK],
    ['uint 8', 'cc ff', OK],
    ['uint 16', 'cd ff ff', OK],
    ['uint 32', 'ce ff ff ff ff', OK],
    ['uint 64', 'cf 00 00 00 01 00 00 00 00', OK],
    ['int 8', 'd0 80', OK],
    ['int 16', 'd1 80 00', OK],
    ['int 32', 'd2 80 00 00 00', OK],
    ['int 64', 'd3 80 00 00 00 00 00 00 00', OK],
    ['fixext 1', 'd4 01 00', EXTENSION],
    ['fixext 1, record definition', 'd4 72 40 91 a1 61', EXTENSION],
    ['fixext 1, msgpackr undefined', 'd4 00 00', EXTENSION],
    ['fixext 1, invalid date', 'd4 ff ff', EXTENSION],
    ['fixext 2', 'd5 01 00 00', EXTENSION],
    ['fixext 4', 'd6 01 00 00 00 00', EXTENSION],
    ['fixext 4, timestamp 32 in a frame', 'd6 ff 00 00 00 00', EXTENSION],
    ['fixext 8', 'd7 01 00 00 00 00 00 00 00 00', EXTENSION],
    ['fixext 8, timestamp 64 in a frame', 'd7 ff 00 00 00 00 00 00 00 00', EXTENSION],
    ['fixext 16', `d8 01 ${'00 '.repeat(16)}`, EXTENSION],
    ['ext 8, timestamp 96 in a frame', `c7 0c ff ${'00 '.repeat(12)}`, EXTENSION],
    ['empty str 8', 'd9 00', OK],
    ['str 8', 'd9 02 61 62', OK],
    ['str 16', 'da 00 02 61 62', OK],
    ['str 32', 'db 00 00 00 02 61 62', OK],
    ['empty array 16', 'dc 00 00', OK],
    ['array 16', 'dc 00 02 01 02', OK],
    ['array 32', 'dd 00 00 00 02 01 02', OK],
    ['empty map 16', 'de 00 00', OK],
    ['map 16', 'de 00 01 a1 61 01', OK],
    ['map 32', 'df 00 00 00 01 a1 61 01', OK],
  ])('%s: %s', (_name, bytes, expected) => {
    const error = scanError(hex(bytes));
    if (expected === undefined) expect(error).toBeUndefined();
    else expect(error).toMatch(expected);
  });
});

describe('scanMsgpack: truncated values', () => {
  it.each<[string, string]>([
    ['nothing at all', ''],
    ['fixstr', 'a3 61 62'],
    ['bin 8 length', 'c4'],
    ['bin 8 body', 'c4 03 01 02'],
    ['bin 16 length', 'c5 00'],
    ['bin 16 body', 'c5 00 03 01 02'],
    ['bin 32 length', 'c6 00 00 00'],
    ['bin 32 body', 'c6 00 00 00 03 01 02'],
    ['bin 32 of 4 GiB', 'c6 ff ff ff ff 00'],
    ['float 32', 'ca 3f 80 00'],
    ['float 64', 'cb 3f f0 00 00 00 00 00'],
    ['uint 8', 'cc'],
    ['uint 16', 'cd ff'],
    ['uint 32', 'ce ff ff ff'],
    ['uint 64', 'cf 00 00 00 00 00 00 00'],
    ['int 8', 'd0'],
    ['int 16', 'd1 80'],
    ['int 32', 'd2 80 00 00'],
    ['int 64', 'd3 80 00 00 00 00 00 00'],
    ['str 8 length', 'd9'],
    ['str 8 body', 'd9 03 61 62'],
    ['str 16 length', 'da 00'],
    ['str 16 body', 'da 00 03 61 62'],
    ['str 32 length', 'db 00 00'],
    ['str 32 body', 'db 00 00 00 03 61 62'],
    ['str 32 of 4 GiB', 'db ff ff ff ff 61'],
    ['array 16 length', 'dc 00'],
    ['array 32 length', 'dd 00 00 00'],
    ['map 16 length', 'de 00'],
    ['map 32 length', 'df 00 00'],
    ['map value', '81 a1 61'],
    ['fixarray item', '92 01 cd 01'],
    ['nested item', '91 91 cd 01'],
  ])('%s', (_name, bytes) => {
    expect(scanError(hex(bytes))).toMatch(TRUNCATED);
    expect(scanError(hex(bytes), PAYLOAD_SCAN_LIMITS)).toMatch(TRUNCATED);
  });

  it.each<[string, string]>([
    ['timestamp 32', 'd6 ff 00 00 00'],
    ['timestamp 64', 'd7 ff 00 00 00 00 00 00 00'],
    ['timestamp 96', `c7 0c ff ${'00 '.repeat(11)}`],
    ['timestamp 96 header', 'c7 0c'],
    ['fixext type', 'd6'],
  ])('payload %s', (_name, bytes) => {
    expect(scanError(hex(bytes), PAYLOAD_SCAN_LIMITS)).toMatch(TRUNCATED);
  });

  it.each<[string, string]>([
    ['array 16', 'dc 00 03 01 02'],
    ['array 32', 'dd 00 00 00 03 01 02'],
    ['array 32 of 2^32-1 with no bytes', 'dd ff ff ff ff'],
    ['map 16', 'de 00 02 a1 61 01'],
    ['map 32', 'df 00 00 00 02 a1 61 01'],
    ['map 32 of 2^32-1 with no bytes', 'df ff ff ff ff'],
    ['fixarray', '93 01 02'],
    ['fixmap', '82 a1 61 01'],
  ])('%s declaring more elements than there are bytes', (_name, bytes) => {
    expect(scanError(hex(bytes))).toMatch(MORE_THAN_BYTES);
  });
});

describe('scanMsgpack: one value, nothing else', () => {
  it.each<[string, string]>([
    ['two values', '01 02'],
    ['nil after a map', '80 c0'],
    ['a zero byte after a string', 'a1 61 00'],
  ])('rejects trailing bytes: %s', (_name, bytes) => {
    expect(scanError(hex(bytes))).toMatch(/trailing bytes/);
  });
});

describe('scanMsgpack: map keys', () => {
  it.each<[string, string]>([
    ['positive fixint', '81 01 01'],
    ['negative fixint', '81 ff 01'],
    ['nil', '81 c0 01'],
    ['true', '81 c3 01'],
    ['bin', '81 c4 01 61 01'],
    ['float', '81 ca 00 00 00 00 01'],
    ['uint 8', '81 cc 01 01'],
    ['array', '81 91 01 01'],
    ['map', '81 80 01'],
    ['ext', '81 d4 01 00 01'],
    ['second key of a map 16', 'de 00 02 a1 61 01 02 01'],
    ['nested map', '81 a1 61 81 01 01'],
  ])('rejects a %s key', (_name, bytes) => {
    expect(scanError(hex(bytes))).toMatch(NOT_STRING_KEY);
  });

  it.each<[string, string]>([
    ['fixstr', '81 a1 61 01'],
    ['empty fixstr', '81 a0 01'],
    ['str 8', '81 d9 01 61 01'],
    ['str 16', '81 da 00 01 61 01'],
    ['str 32', '81 db 00 00 00 01 61 01'],
  ])('accepts a %s key', (_name, bytes) => {
    expect(scanError(hex(bytes))).toBeUndefined();
  });

  it('checks keys, not values: a map may hold any value', () => {
    expect(scanError(hex('84 a1 61 01 a1 62 c0 a1 63 91 01 a1 64 81 a1 65 c4 00'))).toBeUndefined();
  });

  it('rejects non-string keys from a msgpackr Map', () => {
    const bytes = new Packr({ mapsAsObjects: false, useRecords: false }).pack(new Map<unknown, unknown>([['type', 'ping'], [1, 2]]));
    expect(scanError(bytes)).toMatch(NOT_STRING_KEY);
  });
});

describe('scanMsgpack: depth', () => {
  const nestedArrays = (levels: number, inner = '01'): Uint8Array => concat(repeat(0x91, levels), hex(inner));
  const nestedMaps = (levels: number): Uint8Array => {
    const open = hex('81 a1 6b');
    return concat(...Array.from({ length: levels }, () => open), hex('01'));
  };

  it.each([
    ['frames', FRAME_SCAN_LIMITS],
    ['payloads', PAYLOAD_SCAN_LIMITS],
  ])('%s: allows exactly maxDepth levels of arrays or maps', (_name, limits) => {
    expect(scanError(nestedArrays(limits.maxDepth), limits)).toBeUndefined();
    expect(scanError(nestedArrays(limits.maxDepth + 1), limits)).toMatch(/nests deeper/);
    expect(scanError(nestedMaps(limits.maxDepth), limits)).toBeUndefined();
    expect(scanError(nestedMaps(limits.maxDepth + 1), limits)).toMatch(/nests deeper/);
  });

  it('counts an empty innermost container as a level', () => {
    const limits = FRAME_SCAN_LIMITS;
    expect(scanError(nestedArrays(limits.maxDepth - 1, '90'), limits)).toBeUndefined();
    expect(scanError(nestedArrays(limits.maxDepth, '90'), limits)).toMatch(/nests deeper/);
    expect(scanError(nestedArrays(limits.maxDepth, '80'), limits)).toMatch(/nests deeper/);
    expect(scanError(nestedArrays(limits.maxDepth, 'dc 00 00'), limits)).toMatch(/nests deeper/);
  });

  it('measures depth, not width: siblings do not add up', () => {
    // [[[1]], [[1]], [[1]]] is three levels deep.
    const bytes = hex('93 91 91 01 91 91 01 91 91 01');
    expect(scanError(bytes, { maxDepth: 3, maxElements: 100, allowTimestamp: false })).toBeUndefined();
    expect(scanError(bytes, { maxDepth: 2, maxElements: 100, allowTimestamp: false })).toMatch(/nests deeper/);
  });

  it('rejects 10k levels of nesting without recursion', () => {
    expect(scanError(nestedArrays(10_000))).toMatch(/nests deeper/);
    expect(scanError(nestedMaps(10_000))).toMatch(/nests deeper/);
    expect(scanError(repeat(0x91, 1_000_000))).toMatch(/nests deeper/);
  });

  it('rejects deep nesting even when every level is declared with a 16- or 32-bit header', () => {
    const levels = Array.from({ length: 20 }, (_, i) => hex(i % 2 === 0 ? 'dc 00 01' : 'dd 00 00 00 01'));
    expect(scanError(concat(...levels, hex('c0')))).toMatch(/nests deeper/);
  });
});

describe('scanMsgpack: element counts', () => {
  const limits = (maxElements: number): ScanLimits => ({ maxDepth: 8, maxElements, allowTimestamp: false });

  it('counts array items', () => {
    expect(scanError(hex('93 01 02 03'), limits(3))).toBeUndefined();
    expect(scanError(hex('94 01 02 03 04'), limits(3))).toMatch(/more than 3 elements/);
  });

  it('counts map keys and values', () => {
    expect(scanError(hex('81 a1 61 01'), limits(2))).toBeUndefined();
    expect(scanError(hex('82 a1 61 01 a1 62 02'), limits(3))).toMatch(/more than 3 elements/);
  });

  it('counts across the whole value, not per container', () => {
    // [[1, 2], [3, 4]]: 2 + 2 + 2 = 6 elements.
    const bytes = hex('92 92 01 02 92 03 04');
    expect(scanError(bytes, limits(6))).toBeUndefined();
    expect(scanError(bytes, limits(5))).toMatch(/more than 5 elements/);
  });

  it('rejects before reading the elements', () => {
    // Declares 100 items; only the header is present, the count check comes first.
    expect(scanError(concat(hex('dc 00 64'), repeat(0x01, 100)), limits(99))).toMatch(/more than 99 elements/);
  });

  it('rejects a huge declared count quickly, whatever the limits', () => {
    const start = performance.now();
    for (const header of ['dd ff ff ff ff', 'df ff ff ff ff', 'dc ff ff', 'de ff ff']) {
      expect(scanError(hex(header), PAYLOAD_SCAN_LIMITS)).toMatch(MORE_THAN_BYTES);
      expect(scanError(hex(header), limits(Number.MAX_SAFE_INTEGER))).toMatch(MORE_THAN_BYTES);
    }
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('scanMsgpack: timestamps (allowTimestamp, for payloads)', () => {
  const datePackr = new Packr({ useRecords: false });

  it.each<[string, string]>([
    ['timestamp 32', 'd6 ff 00 00 00 01'],
    ['timestamp 64', 'd7 ff 00 00 00 04 00 00 00 01'],
    ['timestamp 96', `c7 0c ff 00 00 00 00 ff ff ff ff ff ff ff ff`],
    ['timestamp inside a map', '81 a2 61 74 d6 ff 00 00 00 01'],
  ])('accepts a %s in payloads, never in frames', (_name, bytes) => {
    expect(scanError(hex(bytes), PAYLOAD_SCAN_LIMITS)).toBeUndefined();
    expect(scanError(hex(bytes), FRAME_SCAN_LIMITS)).toMatch(EXTENSION);
  });

  it.each<[string, string]>([
    ['fixext 4 of another type', 'd6 01 00 00 00 01'],
    ['fixext 8 of another type', 'd7 00 00 00 00 00 00 00 00 00'],
    ['ext 8 of type -1 but not 12 bytes', 'c7 08 ff 00 00 00 00 00 00 00 00'],
    ['ext 8 of 12 bytes but another type', `c7 0c 01 ${'00 '.repeat(12)}`],
    ['fixext 1 invalid date', 'd4 ff ff'],
    ['fixext 16 of type -1', `d8 ff ${'00 '.repeat(16)}`],
    ['ext 16 of type -1', `c8 00 0c ff ${'00 '.repeat(12)}`],
    ['ext 32 of type -1', `c9 00 00 00 0c ff ${'00 '.repeat(12)}`],
    ['record definition', 'd4 72 40 91 a1 61'],
    ['timestamp as a map key', '81 d6 ff 00 00 00 01 01'],
  ])('rejects %s even in payloads', (_name, bytes) => {
    expect(scanError(hex(bytes), PAYLOAD_SCAN_LIMITS)).toBeDefined();
  });

  it.each([
    ['epoch', new Date(0)],
    ['whole seconds', new Date(1_700_000_000_000)],
    ['milliseconds', new Date(1_700_000_000_123)],
    ['before 1970', new Date(-86_400_000 * 365 - 1)],
    ['after 2106', new Date(Date.UTC(2200, 0, 1))],
    ['earliest Date', new Date(-8.64e15)],
    ['latest Date', new Date(8.64e15)],
  ])('accepts every form msgpackr writes a Date in: %s', (_name, date) => {
    expect(scanError(datePackr.pack({ at: date }), PAYLOAD_SCAN_LIMITS)).toBeUndefined();
  });
});

describe('scanMsgpack: agreement with msgpackr', () => {
  // Plain data: what relaymq frames and payloads are made of.
  const plainArb = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.double({ noNaN: true }),
      fc.string({ maxLength: 40 }),
      fc.string({ minLength: 32, maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5, noNullPrototype: true }),
    ),
  })).value;
  const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

  it('accepts everything msgpackr encodes from plain data, within the limits', () => {
    fc.assert(
      fc.property(plainArb, (value) => {
        expect(scanError(packr.pack(value), PAYLOAD_SCAN_LIMITS)).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });

  it('throws only PROTOCOL_ERROR on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, payload) => {
        scanError(bytes, payload ? PAYLOAD_SCAN_LIMITS : FRAME_SCAN_LIMITS);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads through the view it is given, not the whole underlying buffer', () => {
    const backing = hex('ff ff 92 01 cd 00 01 ff ff');
    expect(scanError(backing.subarray(2, 7))).toBeUndefined();
    expect(scanError(backing.subarray(2, 6))).toMatch(TRUNCATED);
  });
});
