import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import type { PeerRpc, RpcHandler } from '../net/peer-rpc.js';
import { MAX_ROUTE_HOPS, PublishRouter, type RouteContext, type RouteResult, type RoutedPublish } from './routed-publish.js';

/**
 * Routers of brokers on a fake peer network: `replicas` is what each broker's
 * metadata says of partition t/0 (a stale view is a different list), `down`
 * brokers cannot be reached, and hosting brokers answer with leader `lead`.
 */
function network(
  brokers: string[],
  views: Record<string, string[]>,
  down: string[] = [],
  answer: (self: string) => Promise<unknown> = async () => ({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 7 }] }),
  /** Brokers that take the request, then go away before answering. */
  vanish: string[] = [],
  /** Brokers that take the request and never answer, their connections open (SIGSTOP). */
  silent: string[] = [],
): { routers: Map<string, PublishRouter>; calls: string[] } {
  const handlers = new Map<string, RpcHandler>();
  const calls: string[] = [];
  const routers = new Map<string, PublishRouter>();
  for (const self of brokers) {
    const rpc = {
      handle: (_method: string, handler: RpcHandler) => handlers.set(self, handler),
      call: async (peer: string, _method: string, body: unknown) => {
        calls.push(`${self}->${peer}`);
        const handler = handlers.get(peer);
        if (handler === undefined || down.includes(peer)) throw new RelayError('NOT_CONNECTED', `${peer} is down`);
        if (silent.includes(peer)) return new Promise(() => {});
        const reply = await handler(self, structuredClone(body));
        if (vanish.includes(peer)) throw new RelayError('NOT_CONNECTED', `broker ${peer} went away before answering`);
        return reply;
      },
    } as unknown as PeerRpc;
    const replicas = views[self] ?? [];
    routers.set(
      self,
      new PublishRouter({
        self,
        rpc,
        requestTimeoutMs: 100,
        hedgeMs: HEDGE_MS,
        replicasOf: () => replicas,
        hosts: () => replicas.includes(self),
        hostedLeader: () => 'lead',
        publishHosted: async () => (await answer(self)) as RouteResult,
      }),
    );
  }
  return { routers, calls };
}

const HEDGE_MS = 20;

const publish = (hops = 0): RoutedPublish => ({
  topic: 't',
  partition: 0,
  ack: 'quorum',
  hops,
  command: { producerId: 'p', timestampMs: 1, dedupe: true, firstSeq: 0, messages: [{ data: new Uint8Array([1]), encoding: 'raw' }] },
});

/**
 * A router at `self`, a replica of partition t/0 on lead, f1 and f2 that believes `lead` leads; peer calls are
 * refused unless `overrides` gives an rpc, and anything else of the context can be overridden too.
 */
function hostRouter(self: string, overrides: Partial<RouteContext>): PublishRouter {
  return new PublishRouter({
    self,
    rpc: { handle: () => {}, call: async () => Promise.reject(new Error('no copy may be sent')) } as unknown as PeerRpc,
    requestTimeoutMs: 1000,
    hedgeMs: HEDGE_MS,
    replicasOf: () => ['lead', 'f1', 'f2'],
    hosts: () => true,
    hostedLeader: () => 'lead',
    publishHosted: () => new Promise<RouteResult>(() => {}),
    ...overrides,
  });
}

describe('PublishRouter', () => {
  it('passes a publish for a partition not hosted here to a replica and remembers the leader it names', async () => {
    const replicas = ['b3', 'lead', 'b5'];
    const { routers, calls } = network(['b1', 'b3', 'lead', 'b5'], { b1: replicas, b3: replicas, lead: replicas, b5: replicas });
    const b1 = routers.get('b1') as PublishRouter;
    await expect(b1.route(publish())).resolves.toEqual({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 7 }] });
    expect(b1.leaderOf('t', 0)).toBe('lead');
    await b1.route(publish());
    expect(calls).toEqual(['b1->b3', 'b1->lead']); // the second goes to the leader first
  });

  it('tries the next replica when one cannot be reached', async () => {
    const replicas = ['b3', 'b4', 'b5'];
    const { routers, calls } = network(['b1', 'b3', 'b4', 'b5'], { b1: replicas, b3: replicas, b4: replicas, b5: replicas }, ['b3']);
    await expect((routers.get('b1') as PublishRouter).route(publish())).resolves.toMatchObject({ leader: 'lead' });
    expect(calls).toEqual(['b1->b3', 'b1->b4']);
  });

  it(`bounds the hops (${MAX_ROUTE_HOPS}): brokers whose views point at each other answer NOT_LEADER with a hint, never loop`, async () => {
    // Stale views: b1 thinks b2 hosts it, b2 thinks b1 does; nobody hosts it by its own view.
    const { routers, calls } = network(['b1', 'b2'], { b1: ['b2'], b2: ['b1'] });
    const refused = await (routers.get('b1') as PublishRouter).route(publish()).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RelayError);
    expect(refused).toMatchObject({ code: 'NOT_LEADER', details: { leader: 'b2' } });
    expect(calls.length).toBeLessThanOrEqual(MAX_ROUTE_HOPS);
  });

  it('answers NOT_LEADER with the leader hint when no replica can be reached', async () => {
    const replicas = ['b3', 'b4'];
    const { routers } = network(['b1'], { b1: replicas }, ['b3', 'b4']);
    await expect((routers.get('b1') as PublishRouter).route(publish())).rejects.toMatchObject({ code: 'NOT_LEADER', details: { leader: 'b3' } });
  });

  // A refusal the SDK takes as final makes it renumber the messages after it: one a replica may have stored would be stored twice.
  it('answers TIMEOUT (outcome unknown), never INTERNAL or PROTOCOL_ERROR, when a replica failed or answered malformed (issue 10, chaos: stored twice)', async () => {
    const replicas = ['b3', 'b4'];
    const failing = network(['b1', 'b3', 'b4'], { b1: replicas, b3: replicas, b4: replicas }, [], async () => {
      throw new TypeError('cannot read properties of undefined');
    });
    await expect((failing.routers.get('b1') as PublishRouter).route(publish())).rejects.toMatchObject({ code: 'TIMEOUT' });
    const malformed = network(['b1', 'b3', 'b4'], { b1: replicas, b3: replicas, b4: replicas }, [], async () => ({ stored: true }));
    await expect((malformed.routers.get('b1') as PublishRouter).route(publish())).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('answers TIMEOUT, not a validation refusal, when a replica that may have stored the publish went away first (issue 10, chaos: stored twice)', async () => {
    const replicas = ['b3', 'b4'];
    // b3 stores it and goes away before answering; b4 (just restarted) refuses it as if the partition did not exist.
    const { routers, calls } = network(['b1', 'b3', 'b4'], { b1: replicas, b3: replicas, b4: replicas }, [], async (self) => {
      if (self === 'b4') throw new RelayError('INVALID_PARTITION', 'topic t has 0 partitions');
      return { leader: 'b3', outcomes: [{ kind: 'stored', offset: 7 }] };
    }, ['b3']);
    await expect((routers.get('b1') as PublishRouter).route(publish())).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(calls).toEqual(['b1->b3', 'b1->b4']);
  });

  it('passes a validation refusal through when it is the first answer (nothing was proposed)', async () => {
    const replicas = ['b3'];
    const { routers } = network(['b1', 'b3'], { b1: replicas, b3: replicas }, [], async () => {
      throw new RelayError('PAYLOAD_TOO_LARGE', 'too large');
    });
    await expect((routers.get('b1') as PublishRouter).route(publish())).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  // Chaos 5/3 pause runs: a broker routing to a paused leader waited for it to resume (up to the 6 s peer timeout).
  it('goes to the next replica as well when one takes the publish and does not answer (a paused broker), and tries that one last from then on', async () => {
    const replicas = ['b3', 'b4', 'b5'];
    const views = { b1: replicas, b3: replicas, b4: replicas, b5: replicas };
    const { routers, calls } = network(['b1', 'b3', 'b4', 'b5'], views, [], undefined, [], ['b3']);
    const b1 = routers.get('b1') as PublishRouter;
    const started = Date.now();
    await expect(b1.route(publish())).resolves.toMatchObject({ leader: 'lead' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(calls).toEqual(['b1->b3', 'b1->b4']);
    // The next publish skips the silent replica; only the one that answered is asked.
    calls.length = 0;
    await expect(b1.route(publish())).resolves.toMatchObject({ leader: 'lead' });
    expect(calls).toEqual(['b1->b4']);
  });

  it('answers with the first replica to answer when several copies are out', async () => {
    const replicas = ['b3', 'b4', 'b5'];
    const { routers, calls } = network(['b1', 'b3', 'b4', 'b5'], { b1: replicas, b3: replicas, b4: replicas, b5: replicas }, [], async (self) => {
      // b4 is slow (answers after b5 was asked too), b5 answers at once.
      if (self === 'b4') await new Promise((resolve) => setTimeout(resolve, 5 * HEDGE_MS));
      return { leader: self, outcomes: [{ kind: 'stored', offset: self === 'b4' ? 1 : 2 }] };
    }, [], ['b3']);
    await expect((routers.get('b1') as PublishRouter).route(publish())).resolves.toEqual({ leader: 'b5', outcomes: [{ kind: 'stored', offset: 2 }] });
    expect(calls).toEqual(['b1->b3', 'b1->b4', 'b1->b5']);
  });

  // test/routing.test.ts on a loaded machine: a slow replica's hedged twin came back `duplicate`, and a client that
  // never republished counted four duplicates.
  it('answers stored, not duplicate, when a hedged copy finds its own twin already stored', async () => {
    const replicas = ['b3', 'b4'];
    const views = { b1: replicas, b3: replicas, b4: replicas };
    const stored = new Set<string>();
    const { routers } = network(['b1', 'b3', 'b4'], views, [], async (self) => {
      // b3 stores the publish but answers only after b4 was asked too; b4 finds it stored.
      const duplicate = stored.has('p/0');
      stored.add('p/0');
      if (self === 'b3') await new Promise((resolve) => setTimeout(resolve, 5 * HEDGE_MS));
      return { leader: 'b3', outcomes: [{ kind: duplicate ? 'duplicate' : 'stored', offset: 4 }] };
    });
    await expect((routers.get('b1') as PublishRouter).route(publish())).resolves.toEqual({ leader: 'b3', outcomes: [{ kind: 'stored', offset: 4 }] });
  });

  it('passes a duplicate through when only one copy went out (the client republished)', async () => {
    const replicas = ['b3', 'b4'];
    const { routers } = network(['b1', 'b3', 'b4'], { b1: replicas, b3: replicas, b4: replicas }, [], async () => ({ leader: 'b3', outcomes: [{ kind: 'duplicate', offset: 4 }] }));
    await expect((routers.get('b1') as PublishRouter).route(publish())).resolves.toEqual({ leader: 'b3', outcomes: [{ kind: 'duplicate', offset: 4 }] });
  });
});

describe('PublishRouter across a split', () => {
  it("names a replica behind a lost link when the replica it reached answers NO_QUORUM (peer RPC drops the replica's hint)", async () => {
    const lost = new Set(['r2', 'r3']);
    const rpc = {
      handle: () => {},
      call: async (peer: string) => {
        if (lost.has(peer)) throw new RelayError('NOT_CONNECTED', `broker ${peer} is not connected`);
        throw new RelayError('NO_QUORUM', 'broker old lost its links to r2, r3 of the replicas of p/t/0');
      },
    } as unknown as PeerRpc;
    const router = new PublishRouter({
      self: 'b1',
      rpc,
      requestTimeoutMs: 100,
      hedgeMs: HEDGE_MS,
      lostPeers: lost,
      replicasOf: () => ['old', 'r2', 'r3'],
      hosts: () => false,
      hostedLeader: () => undefined,
      publishHosted: async () => ({ leader: undefined, outcomes: [] }),
    });
    await expect(router.route(publish())).rejects.toMatchObject({ code: 'NO_QUORUM', details: { leader: 'r2' } });
    // Without lost links there is nobody better to name: the answer passes as it came.
    const healed = new PublishRouter({
      self: 'b1',
      rpc: { handle: () => {}, call: async () => Promise.reject(new RelayError('NO_QUORUM', 'no leader')) } as unknown as PeerRpc,
      requestTimeoutMs: 100,
      hedgeMs: HEDGE_MS,
      lostPeers: new Set<string>(),
      replicasOf: () => ['old', 'r2', 'r3'],
      hosts: () => false,
      hostedLeader: () => undefined,
      publishHosted: async () => ({ leader: undefined, outcomes: [] }),
    });
    const refusal = await healed.route(publish()).catch((err: unknown) => err);
    expect(refusal).toMatchObject({ code: 'NO_QUORUM' });
    expect((refusal as RelayError).details.leader).toBeUndefined();
  });
});

describe('PublishRouter at a replica that does not lead', () => {
  /** Followers f1 and f2 of partition t/0 led by `lead`; f1's forward to the leader is answered by `ownPath`. */
  function followers(ownPath: () => Promise<RouteResult>, hostedLeader: () => string | undefined = () => 'lead') {
    const replicas = ['lead', 'f1', 'f2'];
    const calls: string[] = [];
    const router = (self: string, publishHosted: () => Promise<RouteResult>, peers: Map<string, PublishRouter>): PublishRouter =>
      new PublishRouter({
        self,
        rpc: {
          handle: () => {},
          call: async (peer: string, _method: string, body: unknown) => {
            calls.push(`${self}->${peer}`);
            return (peers.get(peer) as PublishRouter).route(structuredClone(body) as RoutedPublish);
          },
        } as unknown as PeerRpc,
        requestTimeoutMs: 1000,
        hedgeMs: HEDGE_MS,
        replicasOf: () => replicas,
        hosts: () => true,
        hostedLeader,
        publishHosted,
      });
    const peers = new Map<string, PublishRouter>();
    // f2's forward is answered: the leader already stored f1's copy (it only lost its answer to f1).
    peers.set('f2', router('f2', async () => ({ leader: 'lead', outcomes: [{ kind: 'duplicate', offset: 7 }] }), peers));
    peers.set('f1', router('f1', ownPath, peers));
    return { f1: peers.get('f1') as PublishRouter, calls };
  }

  it('sends a copy through another follower when its own forward to the leader goes unanswered (a one-way partition lost the answers)', async () => {
    let forwards = 0;
    const { f1, calls } = followers(() => {
      forwards++;
      return new Promise<RouteResult>(() => {});
    });
    const started = Date.now();
    // The client sent it once: the copy's `duplicate` (of f1's own forward) is told as `stored`.
    await expect(f1.route(publish())).resolves.toEqual({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 7 }] });
    expect(Date.now() - started).toBeLessThan(500);
    expect(calls).toEqual(['f1->f2']); // never to the leader, whose answers are what got lost
    // Its own way to the leader went unanswered: the next publishes go through f2 first, without waiting for a hedge.
    await f1.route(publish());
    expect(calls).toEqual(['f1->f2', 'f1->f2']);
    expect(forwards).toBe(1);
  });

  it('sends no copy to the leader the last answer named when it no longer hears any (a follower the one-way fault cut off campaigns)', async () => {
    let answering = true;
    let known: string | undefined = 'lead';
    const { f1, calls } = followers(
      () => (answering ? Promise.resolve({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 3 }] }) : new Promise<RouteResult>(() => {})),
      () => known,
    );
    await f1.route(publish()); // answered through its own replica: the answer named `lead`
    answering = false;
    known = undefined; // it stopped hearing `lead` and campaigns
    await expect(f1.route(publish())).resolves.toMatchObject({ leader: 'lead' });
    expect(calls).toEqual(['f1->f2']); // before: to `lead` first, whose answers to f1 are lost (a 10-17 s wait)
  });

  it('sends no copy when its own forward is answered in time', async () => {
    const { f1, calls } = followers(async () => ({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 3 }] }));
    await expect(f1.route(publish())).resolves.toEqual({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 3 }] });
    expect(calls).toEqual([]);
  });

  it('never hedges a copy another broker sent, nor a publish it leads itself: copies stay bounded', async () => {
    const stuck = followers(() => new Promise<RouteResult>(() => {}));
    const relayed = stuck.f1.route(publish(1));
    const outcome = await Promise.race([relayed, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 100))]);
    expect(outcome).toBe('still waiting');
    expect(stuck.calls).toEqual([]);
    const leading = hostRouter('lead', {
      publishHosted: async () => {
        await new Promise((resolve) => setTimeout(resolve, 60)); // slower than the hedge, and still answered here
        return { leader: 'lead', outcomes: [{ kind: 'stored', offset: 1 }] };
      },
    });
    await expect(leading.route(publish())).resolves.toMatchObject({ outcomes: [{ kind: 'stored', offset: 1 }] });
  });

  it('sends its last copy through a broker that holds no replica when its bytes to every other replica are lost (one-way fault, 5 brokers)', async () => {
    // Partition t/0 on lead, f1, f2; n1 holds no replica. f1's bytes to lead and f2 are lost; n1 reaches lead.
    const replicas = ['lead', 'f1', 'f2'];
    const calls: string[] = [];
    const routers = new Map<string, PublishRouter>();
    const make = (self: string, hosts: boolean, publishHosted: () => Promise<RouteResult>): PublishRouter =>
      new PublishRouter({
        self,
        rpc: {
          handle: () => {},
          call: async (peer: string, _method: string, body: unknown) => {
            calls.push(`${self}->${peer}`);
            if (self === 'f1' && replicas.includes(peer)) return new Promise(() => {});
            return (routers.get(peer) as PublishRouter).route(structuredClone(body) as RoutedPublish);
          },
        } as unknown as PeerRpc,
        requestTimeoutMs: 1000,
        hedgeMs: HEDGE_MS,
        brokers: () => ['lead', 'f1', 'f2', 'n1'],
        replicasOf: () => replicas,
        hosts: () => hosts,
        hostedLeader: () => 'lead',
        publishHosted,
      });
    const stored = async (): Promise<RouteResult> => ({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 9 }] });
    routers.set('lead', make('lead', true, stored));
    routers.set('n1', make('n1', false, stored));
    const f1 = make('f1', true, () => new Promise<RouteResult>(() => {}));
    const started = Date.now();
    await expect(f1.route(publish())).resolves.toEqual({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 9 }] });
    expect(Date.now() - started).toBeLessThan(500);
    // Own way first, then the other follower, then the broker with no replica, which passes it to the leader.
    expect(calls).toEqual(['f1->f2', 'f1->n1', 'n1->lead']);
  });

  it('ends in TIMEOUT naming the leader it still hears when no way it sent a publish answers (its bytes to every other replica are lost, 3 brokers)', async () => {
    let heard: string | undefined = 'lead';
    const calls: string[] = [];
    const f1 = hostRouter('f1', {
      rpc: {
        handle: () => {},
        call: async (peer: string) => {
          calls.push(`f1->${peer}`);
          return new Promise(() => {}); // taken, and the answer lost
        },
      } as unknown as PeerRpc,
      brokers: () => ['lead', 'f1', 'f2'],
      heardLeader: () => heard,
    });
    const started = Date.now();
    const error = await f1.route(publish()).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RelayError);
    expect((error as RelayError).code).toBe('TIMEOUT'); // outcome unknown: the leader may have stored it
    expect((error as RelayError).details.leader).toBe('lead'); // the client's own link to it may be open
    expect(Date.now() - started).toBeLessThan(500);
    expect(calls).toEqual(['f1->f2']);

    // A leader not heard from (an election, a paused leader): no such answer, the publish keeps waiting.
    heard = undefined;
    const waiting = f1.route(publish());
    const outcome = await Promise.race([waiting.catch((err: unknown) => err), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10 * HEDGE_MS))]);
    expect(outcome).toBe('still waiting');
    heard = 'lead'; // heard again: the next check ends it
    await expect(waiting).rejects.toMatchObject({ code: 'TIMEOUT', details: { leader: 'lead' } });
  });

  it("gives a leader elected while the publish waited a whole hedge delay to answer before TIMEOUT (a new group's first publish; CI: a 2-broker cluster's first publish refused)", async () => {
    const hedgeMs = 100;
    let heard: string | undefined; // a new group: no leader yet
    let answer: (result: RouteResult) => void = () => {};
    const f1 = hostRouter('f1', {
      rpc: { handle: () => {}, call: async () => new Promise(() => {}) } as unknown as PeerRpc, // the copy waits at lead for its election
      hedgeMs,
      replicasOf: () => ['lead', 'f1'],
      hostedLeader: () => heard,
      heardLeader: () => heard,
      publishHosted: () => new Promise<RouteResult>((resolve) => (answer = resolve)),
    });
    const routed = f1.route(publish());
    // Elected just before the router's first look for lost answers (2 hedge delays in); it commits the publish soon after.
    setTimeout(() => {
      heard = 'lead';
      setTimeout(() => answer({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 0 }] }), 0.8 * hedgeMs);
    }, 1.5 * hedgeMs);
    await expect(routed).resolves.toMatchObject({ leader: 'lead', outcomes: [{ kind: 'stored', offset: 0 }] });
  });

  it('waits on, without TIMEOUT, while answers to other publishes still come back on those ways (a slow link, not a lost one)', async () => {
    // A wider hedge delay than the other tests: the answers must keep coming within it even on a loaded machine.
    const hedgeMs = 250;
    let calls = 0;
    let answering = true;
    const f1 = hostRouter('f1', {
      rpc: { handle: () => {}, call: async () => new Promise(() => {}) } as unknown as PeerRpc,
      hedgeMs,
      heardLeader: () => 'lead',
      publishHosted: async () => {
        calls++;
        if (calls === 1 || !answering) return new Promise<RouteResult>(() => {}); // the first publish's answer is slowest
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { leader: 'lead', outcomes: [{ kind: 'stored', offset: calls }] };
      },
    });
    const slowest = f1.route(publish()).catch((err: unknown) => err);
    const started = Date.now();
    while (Date.now() - started < 4 * hedgeMs) await f1.route(publish()); // later publishes are answered on the same way
    const outcome = await Promise.race([slowest, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5))]);
    expect(outcome).toBe('still waiting');
    answering = false; // the way goes silent: then it is lost
    await expect(slowest).resolves.toMatchObject({ code: 'TIMEOUT', details: { leader: 'lead' } });
  });

  it('ends a publish it took as the leader in TIMEOUT naming its successor once it has followed that one for a hedge delay with no answer (a one-way fault deposed it)', async () => {
    let heard: string | undefined; // a leader hears no leader
    // Proposed here, then forwarded to the successor: lost (the default publishHosted never answers).
    const lead = hostRouter('lead', { heardLeader: () => heard });
    const started = Date.now();
    const outcome = lead.route(publish()).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 3 * HEDGE_MS));
    heard = 'f1'; // deposed: it follows f1 now
    const error = (await outcome) as RelayError;
    expect(error).toBeInstanceOf(RelayError);
    expect(error.code).toBe('TIMEOUT');
    expect(error.details.leader).toBe('f1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * HEDGE_MS); // followed f1 for a whole hedge delay first
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('answers a publish it took as the leader as usual when the answer comes, deposed or not', async () => {
    const lead = hostRouter('lead', {
      heardLeader: () => 'f1',
      publishHosted: async () => {
        await new Promise((resolve) => setTimeout(resolve, HEDGE_MS + HEDGE_MS / 2)); // forwarded to f1, answered after one check
        return { leader: 'f1', outcomes: [{ kind: 'stored', offset: 4 }] };
      },
    });
    await expect(lead.route(publish())).resolves.toEqual({ leader: 'f1', outcomes: [{ kind: 'stored', offset: 4 }] });
  });
});

describe('PublishRouter over a slow link', () => {
  it('does not hedge a replica that answers late but steadily (added latency): copies down a second path overtook the first', async () => {
    const replicas = ['b3', 'b4'];
    const slow = async (): Promise<unknown> => {
      await new Promise((resolve) => setTimeout(resolve, 50)); // well over HEDGE_MS (20), under the request timeout (100)
      return { leader: 'lead', outcomes: [{ kind: 'stored', offset: 7 }] };
    };
    const { routers, calls } = network(['b1', 'b3', 'b4'], { b1: replicas, b3: replicas, b4: replicas }, [], slow);
    const b1 = routers.get('b1') as PublishRouter;
    await b1.route(publish()); // nothing known of b3 yet: hedged as before
    calls.splice(0);
    for (let i = 0; i < 3; i++) await b1.route(publish());
    // One copy each, to the replica that answers: before, every publish went to both (b3, then b4 after 20 ms).
    expect(calls).toEqual(['b1->b3', 'b1->b3', 'b1->b3']);
  });
});
