import { readFileSync } from 'node:fs';
import { RelayError } from '@relaymq/sdk/protocol';

/** PEM material read and ready for `node:tls`. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

/** `value` itself when it is PEM text, otherwise the contents of the file it names. */
export function pem(field: string, value: string): Buffer {
  if (value.includes('-----BEGIN ')) return Buffer.from(value);
  let contents: Buffer;
  try {
    contents = readFileSync(value);
  } catch (err) {
    throw new RelayError('INVALID_ARGUMENT', `broker option ${field}: cannot read ${value}: ${(err as Error).message}`);
  }
  if (!contents.includes('-----BEGIN ')) throw new RelayError('INVALID_ARGUMENT', `broker option ${field}: ${value} holds no PEM data`);
  return contents;
}

/** Reads the PEM material of TLS options; `prefix` names the option in errors. */
export function loadTls(prefix: string, options: { cert: string; key: string; ca?: string }): TlsMaterial {
  return {
    cert: pem(`${prefix}.cert`, options.cert),
    key: pem(`${prefix}.key`, options.key),
    ca: options.ca === undefined ? undefined : pem(`${prefix}.ca`, options.ca),
  };
}
