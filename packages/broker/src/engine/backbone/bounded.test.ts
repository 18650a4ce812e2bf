import { RelayError } from '@relaymq/sdk/protocol';
import { describe, expect, it } from 'vitest';
import { sentAndConfirmed } from './bounded.js';

describe('sentAndConfirmed', () => {
  it('ends at once when the confirmations fail while a send on the dead connection never settles', async () => {
    const never = new Promise<void>(() => undefined);
    const dropped = new RelayError('NOT_READY', 'the backbone connection publishing to s closed');
    const startedAt = performance.now();
    const outcome = sentAndConfirmed(never, Promise.reject(dropped), 5_000, 's', 3);
    await expect(outcome).rejects.toBe(dropped);
    expect(performance.now() - startedAt).toBeLessThan(1_000);
  });

  it('waits for the sends, then the confirmations, each bounded', async () => {
    let confirm!: () => void;
    const confirmed = new Promise<void>((resolve) => (confirm = resolve));
    const order: string[] = [];
    const outcome = sentAndConfirmed(Promise.resolve().then(() => void order.push('sent')), confirmed.then(() => void order.push('confirmed')), 5_000, 's', 1);
    setTimeout(confirm, 20);
    await outcome;
    expect(order).toEqual(['sent', 'confirmed']);
    await expect(sentAndConfirmed(Promise.resolve(), new Promise<void>(() => undefined), 50, 's', 2)).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('did not confirm 2 message(s) on s') });
    await expect(sentAndConfirmed(new Promise<void>(() => undefined), new Promise<void>(() => undefined), 50, 's', 2)).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('sending to s') });
  });

  it('leaves no rejection unhandled when the send fails after the confirmations did', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let failSend!: (err: Error) => void;
      const sending = new Promise<void>((_, reject) => (failSend = reject));
      await expect(sentAndConfirmed(sending, Promise.reject(new Error('dropped')), 5_000, 's', 1)).rejects.toThrow('dropped');
      failSend(new Error('socket closed'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
