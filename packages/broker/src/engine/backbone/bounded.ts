import { RelayError } from '@relaymq/sdk/protocol';

/**
 * `promise`, or `TIMEOUT` after `ms`: every call into the stream client is
 * bounded, since the client has no timeouts of its own and a request on a
 * connection to a node that died unnoticed never answers.
 */
export function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RelayError('TIMEOUT', `${what}: no answer from the backbone within ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}
