import pRetry, { AbortError } from 'p-retry';
import { FIELD_LIMITS, RelayError, assertTopic } from '../protocol/index.js';
import type { Message, MessageHandler } from './message.js';

/**
 * How often, and how patiently, a failing handler is called again for the
 * same message (exponential backoff, randomized, capped; driven by p-retry).
 */
export interface RetryOptions {
  /**
   * Handler calls per message, the first one included; `1` never retries.
   * @defaultValue 3
   */
  attempts?: number;
  /**
   * Delay before the first retry; later ones grow by `factor`.
   * @defaultValue 100
   */
  minDelayMs?: number;
  /**
   * Longest delay between two attempts.
   * @defaultValue 5000
   */
  maxDelayMs?: number;
  /**
   * Growth of the delay from one retry to the next.
   * @defaultValue 2
   */
  factor?: number;
}

/** The failure policy of one subscription, resolved. */
export interface FailurePolicy {
  retry: Required<RetryOptions>;
  /** Topic a message goes to after its last failed attempt; absent: it is skipped and reported. */
  deadLetter: string | undefined;
}

/** Frozen defaults of {@link RetryOptions}. */
export const RETRY_DEFAULTS: Readonly<Required<RetryOptions>> = Object.freeze({ attempts: 3, minDelayMs: 100, maxDelayMs: 5000, factor: 2 });

/** Headers a dead-lettered message carries, saying where it came from and why it failed. */
export const DEAD_LETTER_HEADERS = Object.freeze({
  /** The topic the message was published to. */
  topic: 'relaymq-dead-letter-topic',
  /** Its partition there. */
  partition: 'relaymq-dead-letter-partition',
  /** Its offset there: with topic and partition, a stable id to recognise a dead letter sent twice. */
  offset: 'relaymq-dead-letter-offset',
  /** Handler calls that failed. */
  attempts: 'relaymq-dead-letter-attempts',
  /** The last error's message (at most 1024 characters). */
  error: 'relaymq-dead-letter-error',
  /** The last error's `code` or `name`, when it had one. */
  errorCode: 'relaymq-dead-letter-error-code',
  /** The durable name or group of the subscription that gave up, when it had one. */
  subscription: 'relaymq-dead-letter-subscription',
});

const MAX_ERROR_HEADER_CHARS = 1024;
const RETRY_KEYS: ReadonlySet<string> = new Set(Object.keys(RETRY_DEFAULTS));

/** Resolves `retry` and `deadLetter` subscribe options; throws `INVALID_ARGUMENT` naming the bad field. */
export function resolveFailurePolicy(retry: RetryOptions | undefined, deadLetter: string | undefined): FailurePolicy {
  for (const key of Object.keys(retry ?? {})) {
    if (!RETRY_KEYS.has(key)) throw new RelayError('INVALID_ARGUMENT', `unknown option retry.${key} (known: ${[...RETRY_KEYS].join(', ')})`);
  }
  const merged = { ...RETRY_DEFAULTS, ...retry };
  const integer = (name: keyof RetryOptions, min: number, max: number): number => {
    const value = merged[name];
    if (!Number.isInteger(value) || value < min || value > max) throw new RelayError('INVALID_ARGUMENT', `retry.${name} must be an integer from ${min} to ${max}`);
    return value;
  };
  const resolved = {
    attempts: integer('attempts', 1, 100),
    minDelayMs: integer('minDelayMs', 0, 3_600_000),
    maxDelayMs: integer('maxDelayMs', 0, 3_600_000),
    factor: merged.factor,
  };
  if (typeof resolved.factor !== 'number' || !Number.isFinite(resolved.factor) || resolved.factor < 1) {
    throw new RelayError('INVALID_ARGUMENT', 'retry.factor must be a number >= 1');
  }
  if (resolved.maxDelayMs < resolved.minDelayMs) throw new RelayError('INVALID_ARGUMENT', 'retry.maxDelayMs must not be below retry.minDelayMs');
  if (deadLetter !== undefined) assertTopic(deadLetter);
  return { retry: resolved, deadLetter };
}

/** What became of a message under the failure policy. */
export type HandlingOutcome =
  | { kind: 'handled'; attempts: number }
  /** Every attempt failed; the message went to the dead-letter topic (acknowledged there). */
  | { kind: 'dead-lettered'; attempts: number; error: unknown }
  /** Every attempt failed and there is no dead-letter topic (or it refused the message for good): reported, then skipped. */
  | { kind: 'skipped'; attempts: number; error: unknown; deadLetterError?: RelayError }
  /** The subscription ended meanwhile: the message was not handled and its position does not move. */
  | { kind: 'aborted' };

/** What handling under the policy needs from the client. */
export interface FailureHooks {
  /** Publishes a dead letter; resolves once acknowledged (the client's idempotent publish). */
  publish(topic: string, data: unknown, options: { key?: string; headers: Record<string, string> }): Promise<unknown>;
  /** A failed attempt (counted; not an `error` event on its own). */
  attemptFailed(error: unknown, attempt: number): void;
  /** A dead-letter publish of `message` failed and will be tried again (so nothing is lost silently). */
  deadLetterFailed(error: RelayError, message: Message): void;
}

/** Thrown to p-retry for a failed handler call: p-retry gives up at once on a `TypeError` or a non-Error, a handler's bug must be retried like any other failure. */
class AttemptFailed extends Error {
  constructor(readonly original: unknown) {
    super('handler failed');
  }
}

/**
 * Calls `handler` for `message` under `policy`: on failure again after a
 * backoff, up to `attempts` calls; then dead-letters it (retrying a
 * publish whose outcome is unknown until `signal` aborts) or skips it. It
 * resolves only once the message's fate is settled, so the caller commits
 * its position after a dead letter is stored, never before. A first call
 * that returns normally settles it at once: the outcome is returned as is,
 * not as a promise.
 */
export function handleWithPolicy(
  message: Message,
  handler: MessageHandler,
  policy: FailurePolicy,
  hooks: FailureHooks,
  signal: AbortSignal,
  subscriptionName: string | undefined,
): HandlingOutcome | Promise<HandlingOutcome> {
  // The first attempt is a plain call: a handler that returns normally costs no promise and no retry machinery (issue 12: replay).
  if (signal.aborted) return ABORTED;
  let result: void | Promise<void>;
  try {
    result = handler(message);
  } catch (err) {
    return retryAfterFailure(message, handler, policy, hooks, signal, subscriptionName, err);
  }
  if (typeof (result as PromiseLike<void> | undefined)?.then !== 'function') return HANDLED_FIRST_TIME;
  return Promise.resolve(result).then(
    () => HANDLED_FIRST_TIME,
    (err: unknown) => retryAfterFailure(message, handler, policy, hooks, signal, subscriptionName, err),
  );
}

const HANDLED_FIRST_TIME: HandlingOutcome = Object.freeze({ kind: 'handled', attempts: 1 });
const ABORTED: HandlingOutcome = Object.freeze({ kind: 'aborted' });

/** The first call failed with `firstError`: the remaining attempts (p-retry, with its backoff), then dead letter or skip. */
async function retryAfterFailure(
  message: Message,
  handler: MessageHandler,
  policy: FailurePolicy,
  hooks: FailureHooks,
  signal: AbortSignal,
  subscriptionName: string | undefined,
  firstError: unknown,
): Promise<HandlingOutcome> {
  // Ended during the first call: p-retry would refuse to start and never report it (its failed attempts are counted).
  if (signal.aborted) {
    hooks.attemptFailed(firstError, 1);
    return ABORTED;
  }
  let attempts = 1;
  let firstReported = false;
  try {
    await pRetry(
      async () => {
        // p-retry's first attempt reports the call already made, so its backoff schedule is unchanged.
        if (!firstReported) {
          firstReported = true;
          throw new AttemptFailed(firstError);
        }
        if (signal.aborted) throw new AbortError('subscription ended');
        attempts++;
        try {
          await handler(message);
        } catch (err) {
          throw new AttemptFailed(err);
        }
      },
      {
        retries: policy.retry.attempts - 1,
        minTimeout: policy.retry.minDelayMs,
        maxTimeout: policy.retry.maxDelayMs,
        factor: policy.retry.factor,
        randomize: true,
        signal,
        onFailedAttempt: ({ error }) => hooks.attemptFailed(error instanceof AttemptFailed ? error.original : error, attempts),
      },
    );
    return { kind: 'handled', attempts };
  } catch (err) {
    if (!(err instanceof AttemptFailed)) return { kind: 'aborted' }; // aborted by the signal
    const error = err.original;
    if (policy.deadLetter === undefined) return { kind: 'skipped', attempts, error };
    const headers = deadLetterHeaders(message, attempts, error, subscriptionName);
    const published = await publishDeadLetter(policy, hooks, signal, message, headers);
    if (published === 'aborted') return { kind: 'aborted' };
    if (published !== 'stored') return { kind: 'skipped', attempts, error, deadLetterError: published };
    return { kind: 'dead-lettered', attempts, error };
  }
}

/**
 * Publishes a dead letter until it is stored. A refusal for good (forbidden,
 * invalid topic) ends the attempts; anything else (a timeout, no broker) is
 * tried again with backoff, since skipping would lose the message.
 */
async function publishDeadLetter(
  policy: FailurePolicy,
  hooks: FailureHooks,
  signal: AbortSignal,
  message: Message,
  headers: Record<string, string>,
): Promise<'stored' | 'aborted' | RelayError> {
  const topic = policy.deadLetter as string;
  let delayMs = Math.max(policy.retry.minDelayMs, 10);
  for (;;) {
    if (signal.aborted) return 'aborted';
    try {
      await hooks.publish(topic, message.data, { ...(message.key === undefined ? {} : { key: message.key }), headers });
      return 'stored';
    } catch (err) {
      const error = err instanceof RelayError ? err : new RelayError('INTERNAL', String(err), { cause: err });
      if (!error.retriable && error.code !== 'TIMEOUT') return error;
      hooks.deadLetterFailed(error, message);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
    delayMs = Math.min(delayMs * policy.retry.factor, Math.max(policy.retry.maxDelayMs, 10));
  }
}

/** The message's own headers (as many as fit) plus where it came from and why it failed. */
export function deadLetterHeaders(message: Message, attempts: number, error: unknown, subscriptionName: string | undefined): Record<string, string> {
  const added: Record<string, string> = {
    [DEAD_LETTER_HEADERS.topic]: message.topic,
    [DEAD_LETTER_HEADERS.partition]: String(message.partition),
    [DEAD_LETTER_HEADERS.offset]: String(message.offset),
    [DEAD_LETTER_HEADERS.attempts]: String(attempts),
    [DEAD_LETTER_HEADERS.error]: errorText(error).slice(0, MAX_ERROR_HEADER_CHARS),
  };
  const code = errorCode(error);
  if (code !== undefined) added[DEAD_LETTER_HEADERS.errorCode] = code.slice(0, 128);
  if (subscriptionName !== undefined) added[DEAD_LETTER_HEADERS.subscription] = subscriptionName;
  // The message's headers come first, minus ours (a dead letter dead-lettered again says where it failed last) and any that would pass the limit.
  const room = FIELD_LIMITS.maxHeaders - Object.keys(added).length;
  const own = Object.entries(message.headers ?? {}).filter(([name]) => !(name in added));
  return { ...Object.fromEntries(own.slice(0, room)), ...added };
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message === '' ? error.name : error.message;
  try {
    return typeof error === 'string' ? error : String(error);
  } catch {
    return 'unprintable error';
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, name } = error as { code?: unknown; name?: unknown };
  if (typeof code === 'string' && code !== '') return code;
  if (typeof name === 'string' && name !== '' && name !== 'Error') return name;
  return undefined;
}
