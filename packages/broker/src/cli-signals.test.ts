import { describe, expect, it } from 'vitest';
import type { Broker } from './broker.js';
import { serveUntilSignal, type SignalHost } from './cli-signals.js';

/** A process stand-in: signals are raised by the test, exits recorded. */
function fakeHost() {
  const listeners = new Map<string, () => void>();
  const exits: number[] = [];
  let exited: (code: number) => void = () => undefined;
  const exit = new Promise<number>((resolve) => (exited = resolve));
  const host: SignalHost = {
    on: (signal, listener) => listeners.set(signal, listener),
    exit: (code) => {
      exits.push(code);
      exited(code);
    },
  };
  return { host, exits, exit, raise: (signal: string) => listeners.get(signal)?.() };
}

function fakeBroker(closeFails = false) {
  const calls = { close: 0 };
  const broker = {
    close: async () => {
      calls.close++;
      if (closeFails) throw new Error('close failed');
    },
  } as unknown as Broker;
  return { broker, calls };
}

describe('serveUntilSignal', () => {
  it('a SIGTERM during the start closes the broker once it started, and exits 0', async () => {
    const { host, exits, exit, raise } = fakeHost();
    const { broker, calls } = fakeBroker();
    let started: (b: Broker) => void = () => undefined;
    const serving = serveUntilSignal(() => new Promise<Broker>((resolve) => (started = resolve)), () => undefined, host);
    raise('SIGTERM');
    expect(calls.close).toBe(0);
    started(broker);
    await serving;
    expect(await exit).toBe(0);
    expect(calls.close).toBe(1);
    expect(exits).toEqual([0]);
  });

  it('a SIGINT after the start closes the broker once, even when repeated; a failed close exits 1', async () => {
    const { host, exit, raise } = fakeHost();
    const { broker, calls } = fakeBroker(true);
    const logged: unknown[] = [];
    await serveUntilSignal(async () => broker, (_level, message, fields) => logged.push([message, fields]), host);
    raise('SIGINT');
    raise('SIGTERM');
    expect(await exit).toBe(1);
    expect(calls.close).toBe(1);
    expect(logged).toEqual([['shutting down', { signal: 'SIGINT' }]]);
  });
});
