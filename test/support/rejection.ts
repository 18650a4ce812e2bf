import { expect } from 'vitest';

/** What `promise` rejects with, checked to be a `type`; fails the test if it resolves. */
export async function rejection<E>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  let rejected = false;
  let reason: unknown;
  try {
    await promise;
  } catch (err) {
    rejected = true;
    reason = err;
  }
  if (!rejected) throw new Error('expected a rejection');
  expect(reason).toBeInstanceOf(type);
  return reason as E;
}
