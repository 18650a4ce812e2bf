/** Small helpers the examples share; nothing here is needed to use the SDK. */
import { RelayError } from '@relaymq/sdk';

/** An error as one line: `CODE: message` for relaymq errors. */
export function describe(error: unknown): string {
  return error instanceof RelayError ? `${error.code}: ${error.message}` : String(error);
}

/** Prints `line` after the time of day, to the millisecond. */
export function log(line: string): void {
  console.log(`${new Date().toISOString().slice(11, 23)}  ${line}`);
}

/** The brokers in `RELAYMQ_BROKERS` (comma-separated), by default one on 127.0.0.1:7401. */
export function brokersFromEnv(): string[] {
  return (process.env.RELAYMQ_BROKERS ?? 'ws://127.0.0.1:7401')
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}
