import { EventEmitter } from 'eventemitter3';
import { describe, expect, it, vi } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import type { PeerRpc } from '../net/peer-rpc.js';
import { LeaderForwarding, type LedGroup } from './leader-forwarding.js';
import { LostPeers } from './lost-peers.js';
import { sentOnce } from './peer-messages.js';

/** Broker `a` of group g (voters a, b, c), its peer links as a transport double: `drop`/`restore` a link. */
function setup(leader: string | null, requestTimeoutMs = 400) {
  const links = new EventEmitter<{ up: (peer: string) => void; down: (peer: string) => void }>();
  const group: { id: string; leader: string | null } = { id: 'p/t/0', leader };
  const calls: string[] = [];
  const rpc = {
    call: async (peer: string) => {
      calls.push(peer);
      if (lost.has(peer)) throw new RelayError('NOT_CONNECTED', `broker ${peer} is not connected`);
      return [{ kind: 'stored', offset: 3 }];
    },
  } as unknown as PeerRpc;
  const lost: LostPeers = new LostPeers(links, () => forwarding.linksChanged());
  const forwarding = new LeaderForwarding({ self: 'a', rpc, requestTimeoutMs, now: () => Date.now(), lostPeers: lost, votersOf: () => ['a', 'b', 'c'] });
  const forward = (): Promise<unknown> => forwarding.viaLeader(group as LedGroup, async () => [{ kind: 'stored', offset: 9 }], 'publish', {});
  return { links, group, calls, forward, forwarding };
}

const timed = async (promise: Promise<unknown>): Promise<{ ms: number; outcome: unknown }> => {
  const started = Date.now();
  const outcome = await promise.catch((err: unknown) => err);
  return { ms: Date.now() - started, outcome };
};

describe('LeaderForwarding', () => {
  it('answers NO_QUORUM at once, naming a replica across the lost links, when the links left reach no quorum (a split)', async () => {
    const { links, forward } = setup('b');
    links.emit('down', 'b');
    links.emit('down', 'c');
    const { ms, outcome } = await timed(forward());
    expect(outcome).toBeInstanceOf(RelayError);
    expect(outcome).toMatchObject({ code: 'NO_QUORUM', details: { leader: 'b' } });
    expect(ms).toBeLessThan(100); // before: the whole request timeout (400 ms here, 2 s by default)
  });

  it('also refuses before proposing when it leads but its links reach no quorum, naming a lost replica', async () => {
    const { links, forward } = setup('a');
    links.emit('down', 'b');
    links.emit('down', 'c');
    await expect(forward()).rejects.toMatchObject({ code: 'NO_QUORUM', details: { leader: 'b' } });
  });

  it('a leader whose proposal ends in TIMEOUT once a split leaves it no quorum (check-quorum step-down) names a replica across it, keeping the code', async () => {
    const { links, group, forwarding } = setup('a');
    // The proposal was made before the split; the step-down ends it with TIMEOUT (outcome unknown), without a hint.
    const local = async (): Promise<never> => {
      links.emit('down', 'b');
      links.emit('down', 'c');
      group.leader = null;
      throw new RelayError('TIMEOUT', 'entry 7 of p/t/0: its outcome is unknown (broker a no longer leads)');
    };
    await expect(forwarding.viaLeader(group as LedGroup, local, 'publish', {})).rejects.toMatchObject({ code: 'TIMEOUT', details: { leader: 'b' } });
  });

  it('a TIMEOUT while a quorum is still reachable names no broker (the client retries where it is)', async () => {
    const { group, forwarding } = setup('a');
    const local = async (): Promise<never> => {
      throw new RelayError('TIMEOUT', 'entry 7 of p/t/0 not acknowledged within 400 ms');
    };
    const outcome = await forwarding.viaLeader(group as LedGroup, local, 'publish', {}).catch((err: unknown) => err);
    expect(outcome).toMatchObject({ code: 'TIMEOUT' });
    expect((outcome as RelayError).details.leader).toBeUndefined();
  });

  it('keeps waiting for a new leader while a quorum is reachable (the leader alone was lost, as when it is killed)', async () => {
    const { links, group, forward, forwarding } = setup('b', 2000);
    links.emit('down', 'b');
    const pending = timed(forward());
    await new Promise((resolve) => setTimeout(resolve, 100));
    group.leader = 'c'; // elected by a and c
    forwarding.leaderChanged();
    const { ms, outcome } = await pending;
    expect(outcome).toEqual([{ kind: 'stored', offset: 3 }]);
    expect(ms).toBeLessThan(1000);
  });

  it('a forward waiting for a leader answers as soon as the links drop that leave no quorum', async () => {
    const { links, forward } = setup(null, 5000);
    const pending = timed(forward());
    await new Promise((resolve) => setTimeout(resolve, 50));
    links.emit('down', 'b');
    links.emit('down', 'c');
    const { ms, outcome } = await pending;
    expect(outcome).toMatchObject({ code: 'NO_QUORUM' });
    expect(ms).toBeLessThan(1000);
  });

  it('never refuses for links that were never up (a broker starting) or came back', async () => {
    const started = setup(null, 300);
    await expect(started.forward()).rejects.toMatchObject({ code: 'NO_QUORUM' });
    const healed = setup('b');
    healed.links.emit('down', 'b');
    healed.links.emit('down', 'c');
    healed.links.emit('up', 'b');
    healed.links.emit('up', 'c');
    await expect(healed.forward()).resolves.toEqual([{ kind: 'stored', offset: 3 }]);
  });

  it('a publish resent to the next leader after the first stepped down tells a duplicate as stored: the client sent it once', async () => {
    const group: { id: string; leader: string | null } = { id: 'p/t/0', leader: 'b' };
    const calls: string[] = [];
    const rpc = {
      // b proposed the entry, then lost its role before answering; c, elected with the entry in its log, finds it stored.
      call: (peer: string) => {
        calls.push(peer);
        return peer === 'b' ? new Promise(() => {}) : Promise.resolve([{ kind: 'duplicate', offset: 7 }]);
      },
    } as unknown as PeerRpc;
    const forwarding = new LeaderForwarding({ self: 'a', rpc, requestTimeoutMs: 2000, now: () => Date.now() });
    const pending = forwarding.viaLeader(group as LedGroup, async () => [], 'publish', {}, sentOnce);
    await vi.waitFor(() => expect(calls).toEqual(['b']));
    group.leader = 'c';
    forwarding.leaderChanged();
    await expect(pending).resolves.toEqual([{ kind: 'stored', offset: 7 }]);
    expect(calls).toEqual(['b', 'c']);
    // Sent once, a duplicate is the client's own republish, and says so.
    const once = new LeaderForwarding({ self: 'a', rpc, requestTimeoutMs: 2000, now: () => Date.now() });
    await expect(once.viaLeader({ id: 'p/t/0', leader: 'c' }, async () => [], 'publish', {}, sentOnce)).resolves.toEqual([{ kind: 'duplicate', offset: 7 }]);
  });
  it('a leader that refused a request while handing leadership away runs it itself once the transfer is aborted, without waiting for a leader change', async () => {
    const { group, forwarding, calls } = setup('a', 2000);
    const led = group as { id: string; leader: string | null; transferring: string | null };
    led.transferring = 'b';
    let tries = 0;
    const local = async (): Promise<unknown> => {
      tries++;
      if (led.transferring !== null) throw new RelayError('NOT_LEADER', 'broker a does not lead p/t/0', { leader: 'a' });
      return [{ kind: 'stored', offset: 9 }];
    };
    const started = Date.now();
    const answer = forwarding.viaLeader(led as LedGroup, local, 'publish', {});
    // The transfer times out (the target did not win within an election timeout): a still leads.
    setTimeout(() => {
      led.transferring = null;
      forwarding.leaderChanged();
    }, 50);
    await expect(answer).resolves.toEqual([{ kind: 'stored', offset: 9 }]);
    expect(tries).toBe(2);
    expect(calls).toEqual([]); // never forwarded: a leads
    expect(Date.now() - started).toBeLessThan(1000); // before: it waited for a leader other than a until the request timeout (2 s here)
  });

  it('a request refused for a transfer goes to the new leader once it is elected', async () => {
    const { group, forwarding, calls } = setup('a', 2000);
    const led = group as { id: string; leader: string | null; transferring: string | null };
    led.transferring = 'b';
    const answer = forwarding.viaLeader(led as LedGroup, async () => {
      throw new RelayError('NOT_LEADER', 'broker a does not lead p/t/0', { leader: 'a' });
    }, 'publish', {});
    setTimeout(() => {
      led.transferring = null;
      led.leader = 'b';
      forwarding.leaderChanged();
    }, 50);
    await expect(answer).resolves.toEqual([{ kind: 'stored', offset: 3 }]);
    expect(calls).toEqual(['b']);
  });
  it('a publish whose leader stepped down before committing it is resent to the next leader, not answered TIMEOUT; other requests keep the TIMEOUT', async () => {
    const { group, forwarding, calls } = setup('a', 2000);
    const steppedDown = async (): Promise<never> => {
      group.leader = null; // the transferee's vote request came in: a follower now, no leader known yet
      setTimeout(() => {
        group.leader = 'b';
        forwarding.leaderChanged();
      }, 20);
      throw new RelayError('TIMEOUT', 'entry 7 of p/t/0: its outcome is unknown (broker a no longer leads)');
    };
    await expect(forwarding.viaLeader(group as LedGroup, steppedDown, 'publish', {}, sentOnce)).resolves.toEqual([{ kind: 'stored', offset: 3 }]);
    expect(calls).toEqual(['b']);
    // Any other method's TIMEOUT is the answer (it may not be idempotent).
    group.leader = 'a';
    await expect(forwarding.viaLeader(group as LedGroup, steppedDown, 'meta.move', {})).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(calls).toEqual(['b']);
    // A TIMEOUT while the same leader leads on (it could not commit in time) stays the answer, at the deadline.
    const still = setup('a', 300);
    const { ms, outcome } = await timed(still.forwarding.viaLeader(still.group as LedGroup, async () => Promise.reject(new RelayError('TIMEOUT', 'entry 8 not acknowledged within 300 ms')), 'publish', {}));
    expect(outcome).toMatchObject({ code: 'TIMEOUT', message: 'entry 8 not acknowledged within 300 ms' });
    expect(ms).toBeLessThan(1000);
    expect(still.calls).toEqual([]);
  });

  it('a forwarded publish answered TIMEOUT by a leader that stepped down goes to the next leader once this broker hears of it', async () => {
    const { group, forwarding, calls } = setup('b', 2000);
    let first = true;
    const rpcCalls: string[] = [];
    (forwarding as unknown as { ctx: { rpc: { call: (peer: string) => Promise<unknown> } } }).ctx.rpc.call = async (peer: string) => {
      rpcCalls.push(peer);
      if (first) {
        first = false;
        // b stepped down (a transfer to c) before this broker heard of it: c's first heartbeat comes a moment later.
        setTimeout(() => {
          group.leader = 'c';
          forwarding.leaderChanged();
        }, 30);
        throw new RelayError('TIMEOUT', 'entry 7 of p/t/0: its outcome is unknown (broker b no longer leads)');
      }
      return [{ kind: 'duplicate', offset: 7 }];
    };
    await expect(forwarding.viaLeader(group as LedGroup, async () => [], 'publish', {}, sentOnce)).resolves.toEqual([{ kind: 'stored', offset: 7 }]);
    expect(rpcCalls).toEqual(['b', 'c']);
    expect(calls).toEqual([]);
  });

  it('a request run here at once that THROWS (not rejects) NOT_LEADER goes to the next leader; viaLeader itself never throws', async () => {
    const { group, calls, forwarding } = setup('a');
    const local = (): Promise<unknown> => {
      group.leader = 'b'; // lost between the look and the run
      forwarding.leaderChanged();
      throw new RelayError('NOT_LEADER', 'broker a no longer leads p/t/0');
    };
    let answer: Promise<unknown> | undefined;
    expect(() => (answer = forwarding.viaLeader(group as LedGroup, local, 'publish', {}))).not.toThrow();
    await expect(answer).resolves.toEqual([{ kind: 'stored', offset: 3 }]);
    expect(calls).toEqual(['b']);
  });

  it('a request run here at once that throws anything else is refused as a rejection, not a throw', async () => {
    const { group, forwarding } = setup('a');
    const local = (): Promise<unknown> => {
      throw new RelayError('INVALID_PARTITION', 'no such partition');
    };
    let answer: Promise<unknown> | undefined;
    expect(() => (answer = forwarding.viaLeader(group as LedGroup, local, 'get', {}))).not.toThrow();
    await expect(answer).rejects.toMatchObject({ code: 'INVALID_PARTITION' });
  });

  it('a request that failed here after a while waits for a leader only for what is left of the one deadline, not a new one', async () => {
    const { group, forwarding } = setup('a', 400);
    const local = async (): Promise<never> => {
      await new Promise((resolve) => setTimeout(resolve, 250));
      group.leader = null; // stepped down: no leader follows
      throw new RelayError('NOT_LEADER', 'broker a no longer leads p/t/0');
    };
    const { ms, outcome } = await timed(forwarding.viaLeader(group as LedGroup, local, 'get', {}));
    expect(outcome).toBeInstanceOf(RelayError);
    expect(ms).toBeGreaterThanOrEqual(380);
    expect(ms).toBeLessThan(600); // 250 + a fresh 400 would be 650
  });
});
