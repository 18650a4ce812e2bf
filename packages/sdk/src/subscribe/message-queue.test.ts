import { describe, expect, it } from 'vitest';
import type { Message } from './message.js';
import { MessageQueue } from './message-queue.js';

const message = (offset: number, partition = 0): Message => ({ topic: 't', partition, offset, timestamp: 0, data: new Uint8Array(0) });

describe('MessageQueue', () => {
  it('hands messages out in order with their bytes, across compactions, and counts the bytes queued', () => {
    const queue = new MessageQueue();
    const taken: Array<[number, number]> = [];
    // 5,000 in, taken in runs, with more pushed meanwhile: the head index compacts several times.
    let pushed = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++, pushed++) queue.push(message(pushed), pushed % 7);
      for (let i = 0; i < 700; i++) {
        const m = queue.shift() as Message;
        taken.push([m.offset, queue.shiftedBytes]);
      }
    }
    expect(queue.length).toBe(1500);
    let expectedBytes = 0;
    for (let i = 3500; i < 5000; i++) expectedBytes += i % 7;
    expect(queue.bytes).toBe(expectedBytes);
    while (queue.length > 0) {
      const m = queue.shift() as Message;
      taken.push([m.offset, queue.shiftedBytes]);
    }
    expect(taken).toEqual(Array.from({ length: 5000 }, (_, i) => [i, i % 7]));
    expect(queue.bytes).toBe(0);
    expect(queue.shift()).toBeUndefined();
  });

  it('removes the messages picked, keeping the order of the others, and says how many and how many bytes', () => {
    const queue = new MessageQueue();
    for (let i = 0; i < 10; i++) queue.push(message(i, i % 2), 10 + i);
    queue.shift(); // offset 0
    expect(queue.remove((m) => m.partition === 1)).toEqual({ count: 5, bytes: 11 + 13 + 15 + 17 + 19 });
    expect(queue.bytes).toBe(12 + 14 + 16 + 18);
    const rest: number[] = [];
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) rest.push(m.offset);
    expect(rest).toEqual([2, 4, 6, 8]);
    queue.push(message(20), 5);
    queue.clear();
    expect([queue.length, queue.bytes]).toEqual([0, 0]);
  });
});
