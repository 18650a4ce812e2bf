import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { manualMoveRefusal } from '../engine/manual-move.js';
import { adminMutations, parseMoveRequest, type AdminActions, type MoveRequest, type MovesDescription } from './admin-api.js';

const noMoves: MovesDescription = { broker: 'b1', metadataLeader: 'b1', moves: [], draining: [], rebalancing: false };

/** The move route over actions whose moveReplica applies the real rules to orders/0 on b1, b2, b3 of members b1 to b4. */
function moveRoute(): (body: unknown) => Promise<{ status: number; body: Record<string, unknown> }> {
  const actions = {
    moveReplica: async (request: MoveRequest) => {
      const refusal = manualMoveRefusal({ ...request, topics: [{ topic: 'orders', partitions: [{ replicas: ['b1', 'b2', 'b3'] }] }], members: ['b1', 'b2', 'b3', 'b4'], draining: [], moves: [], maxMoves: 4 });
      if (refusal !== undefined) throw refusal;
      return { move: request, moves: noMoves };
    },
  } as unknown as AdminActions;
  const route = adminMutations(actions)['POST /api/cluster/move'];
  if (route === undefined) throw new Error('no move route');
  return async (body) => {
    const answer = await route({ body, query: new URLSearchParams() } as never);
    return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> };
  };
}

describe('POST /api/cluster/move', () => {
  it('parses { topic, partition, from, to } and refuses anything else, naming the field', () => {
    expect(parseMoveRequest({ topic: 'orders', partition: 0, from: 'b1', to: 'b4' })).toEqual({ topic: 'orders', partition: 0, from: 'b1', to: 'b4' });
    const refused = (body: unknown): unknown => {
      try {
        parseMoveRequest(body);
      } catch (err) {
        return err instanceof RelayError ? `${err.code}: ${err.message}` : err;
      }
      return 'accepted';
    };
    expect(refused([])).toMatch(/^INVALID_ARGUMENT: expected a JSON object \{ topic, partition, from, to \}/);
    expect(refused({ topic: 'orders', partition: 0, from: 'b1', to: 'b4', force: true })).toMatch(/^INVALID_ARGUMENT: unknown field "force"/);
    expect(refused({ topic: 'orders.>', partition: 0, from: 'b1', to: 'b4' })).toMatch(/^INVALID_TOPIC: /);
    expect(refused({ topic: 'orders', partition: -1, from: 'b1', to: 'b4' })).toMatch(/^INVALID_ARGUMENT: partition must be an integer from 0 to 1023, got -1/);
    expect(refused({ topic: 'orders', partition: '1', from: 'b1', to: 'b4' })).toMatch(/^INVALID_ARGUMENT: partition must be an integer/);
    expect(refused({ topic: 'orders', partition: 0, from: 'b1' })).toMatch(/^INVALID_ARGUMENT: to must be a broker id/);
    expect(refused({ topic: 'orders', partition: 0, from: 'b 1', to: 'b4' })).toMatch(/^INVALID_ARGUMENT: from must be a broker id/);
  });

  it('answers the move, or the refusal with its code, its stable reason and an HTTP status by kind', async () => {
    const post = moveRoute();
    expect(await post({ topic: 'orders', partition: 0, from: 'b1', to: 'b4' })).toEqual({ status: 200, body: { move: { topic: 'orders', partition: 0, from: 'b1', to: 'b4' }, moves: noMoves } });
    expect(await post({ topic: 'nope', partition: 0, from: 'b1', to: 'b4' })).toMatchObject({ status: 404, body: { code: 'INVALID_TOPIC', reason: 'unknown-topic' } });
    expect(await post({ topic: 'orders', partition: 5, from: 'b1', to: 'b4' })).toMatchObject({ status: 404, body: { code: 'INVALID_PARTITION', reason: 'unknown-partition' } });
    expect(await post({ topic: 'orders', partition: 0, from: 'b1', to: 'b9' })).toMatchObject({ status: 404, body: { code: 'INVALID_ARGUMENT', reason: 'unknown-broker' } });
    expect(await post({ topic: 'orders', partition: 0, from: 'b1', to: 'b1' })).toMatchObject({ status: 400, body: { code: 'INVALID_ARGUMENT', reason: 'same-broker' } });
    expect(await post({ topic: 'orders', partition: 0, from: 'b1', to: 'b2' })).toMatchObject({ status: 409, body: { code: 'INVALID_ARGUMENT', reason: 'target-is-replica', error: expect.stringMatching(/b2 holds a replica of orders\/0 already/) } });
    expect(await post({ topic: 'orders', partition: 0, from: 'b4', to: 'b2' })).toMatchObject({ status: 409, body: { code: 'INVALID_ARGUMENT', reason: 'source-not-replica' } });
    // A malformed body: 400 without a reason.
    const malformed = await post({ topic: 'orders' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.reason).toBeUndefined();
  });
});
