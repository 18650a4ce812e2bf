import type { EventEmitter } from 'eventemitter3';

/**
 * Waiting helpers for tests: every wait is on a condition or an event, and
 * every wait is bounded; a timeout fails the test with what was awaited.
 */

/** Resolves once `condition()` is true; checks after every macrotask, fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Resolves once `count()` reaches `target`. Fails when the count stops growing for `idleMs` (a stall),
 * or after `totalMs` in all: a loaded machine that is slow but progressing is not mistaken for a stuck one.
 */
export async function waitForProgress(count: () => number, target: number, what: string, idleMs: number, totalMs: number): Promise<void> {
  const started = Date.now();
  let last = count();
  let lastProgress = started;
  while (last < target) {
    const now = Date.now();
    if (now - lastProgress > idleMs) throw new Error(`${what}: stuck at ${last} of ${target}, no progress for ${idleMs} ms`);
    if (now - started > totalMs) throw new Error(`${what}: ${last} of ${target} after ${totalMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const current = count();
    if (current > last) lastProgress = Date.now();
    last = current;
  }
}

/** Like {@link waitFor} with an asynchronous condition (e.g. one that reads files), checked every 20 ms. */
export async function waitForAsync(condition: () => Promise<boolean>, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves with the first argument of the next `event`; fails after `timeoutMs`. */
export function nextEvent<Events extends EventEmitter.ValidEventTypes, E extends EventEmitter.EventNames<Events>>(
  emitter: EventEmitter<Events>,
  event: E,
  timeoutMs = 10_000,
): Promise<Parameters<EventEmitter.EventListener<Events, E>>[0]> {
  return new Promise((resolve, reject) => {
    const listener = ((value: Parameters<EventEmitter.EventListener<Events, E>>[0]) => {
      clearTimeout(timer);
      resolve(value);
    }) as EventEmitter.EventListener<Events, E>;
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event ${String(event)}`));
    }, timeoutMs);
    emitter.once(event, listener);
  });
}

/** Rejects if `promise` does not settle within `timeoutMs`. */
export function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    }),
  ]);
}
