/**
 * Waiting for a condition that an event announces: checked at once, then on
 * each emission of the event, never on a timer; bounded by a timeout.
 */
import { RelayError } from '@relaymq/sdk/protocol';

/** What {@link waitFor} needs of an emitter (eventemitter3's and node's fit). */
export interface EventSource<E extends string> {
  on(event: E, listener: () => void): unknown;
  off(event: E, listener: () => void): unknown;
}

/**
 * Resolves with the first defined value of `check`, evaluated now and after
 * every `event` of `emitter`; rejects with `TIMEOUT` after `timeoutMs` (once
 * a last check found nothing), or with whatever `check` throws. Either way
 * its listener and timer are removed.
 */
export function waitFor<E extends string, V>(
  emitter: EventSource<E>,
  event: E,
  check: () => V | undefined,
  timeoutMs: number,
  what: string = event,
): Promise<V> {
  let now: V | undefined;
  try {
    now = check();
  } catch (err) {
    return Promise.reject(err);
  }
  if (now !== undefined) return Promise.resolve(now);
  return new Promise<V>((resolve, reject) => {
    const settle = (outcome: () => void): void => {
      emitter.off(event, onEvent);
      clearTimeout(timer);
      outcome();
    };
    const attempt = (): boolean => {
      let value: V | undefined;
      try {
        value = check();
      } catch (err) {
        settle(() => reject(err));
        return true;
      }
      if (value === undefined) return false;
      settle(() => resolve(value));
      return true;
    };
    const onEvent = (): void => {
      attempt();
    };
    const timer = setTimeout(() => {
      // One last look: a change whose event was missed still counts.
      if (!attempt()) settle(() => reject(new RelayError('TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`)));
    }, timeoutMs);
    emitter.on(event, onEvent);
  });
}
