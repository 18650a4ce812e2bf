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

/**
 * Waits for `sending` (the messages written and flushed), then for
 * `confirmed` (the backbone's confirmations), each within `ms`. A `confirmed`
 * that fails first ends the wait for `sending` at once: it fails when the
 * publisher is dropped (its connection closed, a node killed), and a send
 * caught on that dead connection may never settle, which held the append for
 * the whole timeout. Neither promise is left to reject unhandled.
 */
export async function sentAndConfirmed(sending: Promise<void>, confirmed: Promise<void>, ms: number, stream: string, count: number): Promise<void> {
  sending.catch(() => undefined);
  confirmed.catch(() => undefined);
  await bounded(Promise.race([sending, confirmed.then(() => sending)]), ms, `sending to ${stream}`);
  await bounded(confirmed, ms, `the backbone did not confirm ${count} message(s) on ${stream}`);
}
