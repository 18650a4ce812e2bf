import { RelayError } from './errors.js';

/** Longest durable subscription name, in characters. */
export const MAX_DURABLE_NAME_LENGTH = 128;

const DURABLE_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * Why `name` is not a valid durable subscription name, or `undefined` when it
 * is: 1 to {@link MAX_DURABLE_NAME_LENGTH} characters of `[A-Za-z0-9_.-]`.
 */
export function durableNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'durable name is empty';
  if (name.length > MAX_DURABLE_NAME_LENGTH) return `durable name is longer than ${MAX_DURABLE_NAME_LENGTH} characters`;
  if (!DURABLE_NAME.test(name)) return `durable name "${name}" must match [A-Za-z0-9_.-]+`;
  return undefined;
}

/** Throws `INVALID_ARGUMENT` unless `name` is a valid durable subscription name. */
export function assertDurableName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new RelayError('INVALID_ARGUMENT', 'durable must be a string');
  const problem = durableNameProblem(name);
  if (problem !== undefined) throw new RelayError('INVALID_ARGUMENT', problem);
}
