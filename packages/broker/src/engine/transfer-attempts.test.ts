import { describe, expect, it } from 'vitest';
import { TransferAttempts } from './transfer-attempts.js';

describe('TransferAttempts', () => {
  it('leaves a target alone for a while once a transfer to it did not take (this broker leads again in a later term)', () => {
    let now = 0;
    const attempts = new TransferAttempts(() => now, 10_000);
    expect(attempts.mayTransfer('p/t/0', 'b5', 3)).toBe(true);
    attempts.asking('p/t/0', 'b5', 3);
    // Same term: the transfer may be under way.
    expect(attempts.mayTransfer('p/t/0', 'b5', 3)).toBe(true);
    // b5 campaigned and lost; this broker leads in term 5: not b5 again for now, another target is fine.
    now = 1_000;
    expect(attempts.mayTransfer('p/t/0', 'b5', 5)).toBe(false);
    expect(attempts.mayTransfer('p/t/0', 'b4', 5)).toBe(true);
    expect(attempts.mayTransfer('p/t/1', 'b5', 5)).toBe(true);
    now = 10_000;
    expect(attempts.mayTransfer('p/t/0', 'b5', 5)).toBe(true);
    attempts.asking('p/t/0', 'b5', 5);
    attempts.forget('p/t/0');
    expect(attempts.mayTransfer('p/t/0', 'b5', 7)).toBe(true);
  });
});
