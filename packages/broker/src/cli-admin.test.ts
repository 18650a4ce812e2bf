import { describe, expect, it } from 'vitest';
import { commandUsage, groupUsage, renderClusterStatus, renderMembership, renderMoves, renderTopic, runAdminCommand, type AdminCommandIo } from './cli-admin.js';
import { formatCopied, formatTimeLeft } from './observability/status-report.js';
import type { MembershipDescription, MovesDescription, TopicDescription } from './observability/admin-api.js';

interface Sent {
  method: string;
  url: string;
  authorization: string | undefined;
  body: unknown;
}

/** A fake admin port: records requests, answers with `answer`. */
function io(answer: (sent: Sent) => { status: number; body: unknown }, env: Record<string, string> = {}): AdminCommandIo & { sent: Sent[]; stdout: string[]; stderr: string[] } {
  const sent: Sent[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  const fakeFetch = (async (input: URL | string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const request: Sent = { method: init?.method ?? 'GET', url: String(input), authorization: headers.authorization, body: init?.body === undefined ? undefined : JSON.parse(String(init.body)) };
    sent.push(request);
    const { status, body } = answer(request);
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { env: { RELAYMQ_ADMIN_URL: 'http://127.0.0.1:9401', ...env }, out: (t) => stdout.push(t), err: (t) => stderr.push(t), fetch: fakeFetch, sent, stdout, stderr };
}

const orders: TopicDescription = {
  topic: 'orders',
  replicationFactor: 2,
  partitions: [
    { partition: 0, replicas: ['b1', 'b2'], leader: 'b1' },
    { partition: 1, replicas: ['b2', 'b3'], leader: null },
  ],
};

const membership: MembershipDescription = {
  broker: 'b1',
  clusterId: 'c-1',
  metadataLeader: 'b2',
  metadataVoters: 3,
  members: [
    { id: 'b1', role: 'voter', state: 'alive', url: 'ws://127.0.0.1:7401', replicas: 4, leaders: 2 },
    { id: 'b4', role: 'learner', state: 'alive', url: 'ws://127.0.0.1:7404', replicas: 0, leaders: 0 },
    { id: 'b5', role: 'none', state: 'unknown', url: null, replicas: 0, leaders: 0 },
  ],
};

describe('relaymq topic / cluster', () => {
  it('topic create sends the spec with the admin token and prints the topic', async () => {
    const port = io(() => ({ status: 201, body: { created: true, topic: orders } }), { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runAdminCommand('topic', ['create', 'orders', '--partitions', '2', '--replication-factor', '2'], port)).toBe(0);
    expect(port.sent).toEqual([{ method: 'POST', url: 'http://127.0.0.1:9401/api/topics', authorization: 'Bearer from-env-0123456789', body: { topic: 'orders', partitions: 2, replicationFactor: 2 } }]);
    expect(port.stdout.join('')).toBe(
      'created topic orders: 2 partitions, replication factor 2\nPARTITION  LEADER  REPLICAS\n0          b1      b1,b2\n1          (none)  b2,b3\n',
    );
    // The flag wins over the environment.
    const flagged = io(() => ({ status: 200, body: { created: false, topic: orders } }), { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    await runAdminCommand('topic', ['create', 'orders', '--admin-token', 'from-flag-0123456789', '--broker', 'http://10.0.0.1:9500'], flagged);
    expect(flagged.sent[0]).toMatchObject({ url: 'http://10.0.0.1:9500/api/topics', authorization: 'Bearer from-flag-0123456789', body: { topic: 'orders' } });
    expect(flagged.stdout.join('')).toMatch(/^exists already: topic orders/);
  });

  it('prints JSON with --json, and the broker\'s refusal as one line on stderr with exit 1', async () => {
    const port = io(() => ({ status: 200, body: orders }));
    expect(await runAdminCommand('topic', ['describe', 'orders', '--json'], port)).toBe(0);
    expect(port.sent[0]?.url).toBe('http://127.0.0.1:9401/api/topics?topic=orders');
    expect(JSON.parse(port.stdout.join(''))).toEqual(orders);

    const refused = io(() => ({ status: 401, body: { error: 'the admin token is not valid', code: 'UNAUTHORIZED' } }));
    expect(await runAdminCommand('cluster', ['remove', 'b3'], refused)).toBe(1);
    expect(refused.sent[0]).toMatchObject({ method: 'POST', url: 'http://127.0.0.1:9401/api/cluster/remove', body: { broker: 'b3' } });
    expect(refused.stderr.join('')).toBe('relaymq: cluster remove: the admin token is not valid (UNAUTHORIZED)\n');
    expect(refused.stdout).toEqual([]);

    const refusedJson = io(() => ({ status: 409, body: { error: 'broker b3 still holds 2 partition replicas', code: 'FORBIDDEN' } }));
    expect(await runAdminCommand('cluster', ['remove', 'b3', '--json'], refusedJson)).toBe(1);
    expect(JSON.parse(refusedJson.stdout.join(''))).toEqual({ error: 'broker b3 still holds 2 partition replicas', code: 'FORBIDDEN', status: 409 });
  });

  it('topic delete sends DELETE with the admin token and prints what was deleted; --json; an unknown topic is exit 1 with the 404', async () => {
    const port = io(() => ({ status: 200, body: { deleted: true, topic: orders } }), { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runAdminCommand('topic', ['delete', 'orders'], port)).toBe(0);
    expect(port.sent).toEqual([{ method: 'DELETE', url: 'http://127.0.0.1:9401/api/topics?topic=orders', authorization: 'Bearer from-env-0123456789', body: undefined }]);
    expect(port.stdout.join('')).toBe('deleted topic orders: 2 partitions, replication factor 2\nPARTITION  LEADER  REPLICAS\n0          b1      b1,b2\n1          (none)  b2,b3\n');

    const json = io(() => ({ status: 200, body: { deleted: true, topic: orders } }));
    expect(await runAdminCommand('topic', ['delete', 'a.b-c_d', '--json', '--admin-token', 'from-flag-0123456789'], json)).toBe(0);
    expect(json.sent[0]).toMatchObject({ method: 'DELETE', url: 'http://127.0.0.1:9401/api/topics?topic=a.b-c_d', authorization: 'Bearer from-flag-0123456789' });
    expect(JSON.parse(json.stdout.join(''))).toEqual({ deleted: true, topic: orders });

    const unknown = io(() => ({ status: 404, body: { error: 'no topic "nope"', code: 'INVALID_TOPIC' } }));
    expect(await runAdminCommand('topic', ['delete', 'nope'], unknown)).toBe(1);
    expect(unknown.stderr.join('')).toBe('relaymq: topic delete: no topic "nope" (INVALID_TOPIC)\n');
    expect(unknown.stdout).toEqual([]);

    const usage = io(() => ({ status: 200, body: {} }));
    await expect(runAdminCommand('topic', ['delete'], usage)).rejects.toThrow('topic delete needs a topic name, e.g. relaymq topic delete orders');
    await expect(runAdminCommand('topic', ['delete', 'a', 'b'], usage)).rejects.toThrow('topic delete needs a topic name');
    expect(usage.sent).toEqual([]);
    expect(commandUsage('topic', 'delete')).toContain('There is no undo');
    expect(groupUsage('topic')).toMatch(/delete +delete a topic with its messages/);
  });

  it('cluster forget posts the broker and says what to do next; the broker\'s refusal exits 1', async () => {
    const port = io(() => ({ status: 200, body: membership }));
    expect(await runAdminCommand('cluster', ['forget', 'b5'], port)).toBe(0);
    expect(port.sent).toEqual([{ method: 'POST', url: 'http://127.0.0.1:9401/api/cluster/forget', authorization: undefined, body: { broker: 'b5' } }]);
    expect(port.stdout.join('')).toMatch(/^forgot b5's old data directory: start it on an empty one with --join, then relaymq cluster add b5\n/);
    const refused = io(() => ({ status: 409, body: { error: 'broker b1 is still a member of the metadata group', code: 'FORBIDDEN' } }));
    expect(await runAdminCommand('cluster', ['forget', 'b1'], refused)).toBe(1);
    expect(refused.stderr.join('')).toBe('relaymq: cluster forget: broker b1 is still a member of the metadata group (FORBIDDEN)\n');
  });

  it('reports an unreachable admin port as a failure (exit 1), not a usage error', async () => {
    const port = io(() => ({ status: 200, body: {} }));
    port.fetch = (async () => {
      throw new TypeError('fetch failed');
    }) as typeof fetch;
    expect(await runAdminCommand('cluster', ['status'], port)).toBe(1);
    expect(port.stderr.join('')).toBe('relaymq: cluster status: cannot reach the admin port at http://127.0.0.1:9401: fetch failed\n');
  });

  it('refuses usage errors (cli.ts exits 2 with them)', async () => {
    const port = io(() => ({ status: 200, body: {} }));
    await expect(runAdminCommand('topic', ['create'], port)).rejects.toThrow('topic create needs a topic name');
    await expect(runAdminCommand('topic', ['alter', 'orders'], port)).rejects.toThrow('topic alter needs --partitions <n>');
    await expect(runAdminCommand('topic', ['alter', 'orders', '--partitions', '0'], port)).rejects.toThrow('--partitions must be an integer from 1 to 1024, got "0"');
    await expect(runAdminCommand('topic', ['create', 'a', '--bogus'], port)).rejects.toThrow(/bogus/);
    await expect(runAdminCommand('topic', ['delete-all'], port)).rejects.toThrow('unknown command "topic delete-all"; try: relaymq topic --help');
    await expect(runAdminCommand('cluster', ['status'], { ...port, env: {} })).rejects.toThrow('cluster status needs --broker <admin URL>');
    await expect(runAdminCommand('cluster', ['remove', 'b1', '--broker', 'ws://x:1'], port)).rejects.toThrow('--broker must be the http:// URL of an admin port');
    expect(port.sent).toEqual([]);
  });

  it('has help for every group and command, listing the connection options', async () => {
    const port = io(() => ({ status: 200, body: {} }));
    expect(await runAdminCommand('cluster', ['--help'], port)).toBe(0);
    expect(port.stdout.join('')).toBe(groupUsage('cluster'));
    for (const [group, commands] of [['topic', ['create', 'describe', 'alter', 'delete']], ['cluster', ['status', 'add', 'remove']]] as const) {
      expect(groupUsage(group)).toContain(`usage: relaymq ${group} <command>`);
      for (const name of commands) {
        const out = io(() => ({ status: 200, body: {} }));
        expect(await runAdminCommand(group, [name, '--help'], out)).toBe(0);
        const text = out.stdout.join('');
        expect(text).toBe(commandUsage(group, name));
        expect(text).toContain(`usage: relaymq ${group} ${name}`);
        for (const flag of ['--broker <admin URL>', '--admin-token <token>', '--json', '--timeout-ms <ms>', '-h, --help']) expect(text).toContain(flag);
      }
    }
    expect(commandUsage('topic', 'alter')).toContain('Key order');
  });

  it('renders the cluster status', () => {
    expect(renderMembership(membership)).toBe(
      'cluster c-1 as seen by b1: 3 brokers, metadata leader b2, 1 of at most 3 metadata voters\n' +
        'BROKER  METADATA      STATE    REPLICAS  LEADS  URL\n' +
        'b1      voter         alive    4         2      ws://127.0.0.1:7401\n' +
        'b4      learner       alive    0         0      ws://127.0.0.1:7404\n' +
        'b5      not admitted  unknown  0         0      -\n',
    );
    expect(renderTopic({ topic: 't', replicationFactor: 1, partitions: [{ partition: 0, replicas: ['b1'], leader: 'b1' }] })).toBe('topic t: 1 partition, replication factor 1\nPARTITION  LEADER  REPLICAS\n0          b1      b1\n');
  });

  it('cluster remove says whether the broker left or drains; cluster moves and rebalance show the moves', async () => {
    const draining = io(() => ({ status: 200, body: { ...membership, removal: { broker: 'b1', outcome: 'draining', replicasToMove: 4 } } }));
    expect(await runAdminCommand('cluster', ['remove', 'b1'], draining)).toBe(0);
    expect(draining.stdout.join('')).toMatch(/^draining b1: 4 replicas to move off, then it leaves the metadata group; follow with relaymq cluster moves, stop it once it is not admitted\ncluster c-1/);
    const removed = io(() => ({ status: 200, body: { ...membership, removal: { broker: 'b5', outcome: 'removed', replicasToMove: 0 } } }));
    expect(await runAdminCommand('cluster', ['remove', 'b5'], removed)).toBe(0);
    expect(removed.stdout.join('')).toMatch(/^removed b5: stop it now\n/);

    const moves: MovesDescription = {
      broker: 'b2',
      metadataLeader: 'b2',
      moves: [{ topic: 'orders', partition: 3, from: 'b1', to: 'b5', startedAtMs: 1_000, phase: 'catching-up', match: 120, lastIndex: 400, error: 'NOT_READY' }],
      draining: ['b1'],
      rebalancing: false,
    };
    const shown = io(() => ({ status: 200, body: moves }));
    expect(await runAdminCommand('cluster', ['moves'], shown)).toBe(0);
    expect(shown.sent[0]).toMatchObject({ method: 'GET', url: 'http://127.0.0.1:9401/api/cluster/moves' });
    // An older broker's answer has no byte figures: COPIED and LEFT say so.
    expect(renderMoves(moves, 13_400)).toBe(
      '1 replica move in progress, draining: b1 (as seen by b2; metadata leader b2)\n' +
        'PARTITION  FROM  TO  PHASE        COPIED  LEFT  CAUGHT UP  FOR   LAST ERROR\n' +
        'orders/3   b1    b5  catching-up  -       -     120/400    12 s  NOT_READY\n',
    );
    expect(renderMoves({ ...moves, moves: [], draining: [], rebalancing: true }, 0)).toBe('0 replica moves in progress, no broker draining, rebalancing (as seen by b2; metadata leader b2)\n');
    // A broker off the metadata leader answers with the leader's view, or says it could not.
    expect(renderMoves({ ...moves, broker: 'b3', progressFrom: 'b2' }, 13_400)).toMatch(/^1 replica move in progress, draining: b1 \(as seen by b2, asked by b3; metadata leader b2\)\n/);
    expect(renderMoves({ ...moves, broker: 'b3', progressFrom: 'b3' }, 13_400)).toMatch(/^1 replica move in progress, draining: b1 \(as seen by b3; metadata leader b2; the metadata leader could not be asked: phases unknown\)\n/);

    const rebalance = io(() => ({ status: 200, body: { ...moves, moves: [], draining: [], rebalancing: true } }), { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runAdminCommand('cluster', ['rebalance'], rebalance)).toBe(0);
    expect(rebalance.sent[0]).toMatchObject({ method: 'POST', url: 'http://127.0.0.1:9401/api/cluster/rebalance', authorization: 'Bearer from-env-0123456789' });
    expect(rebalance.stdout.join('')).toMatch(/^rebalance asked\n0 replica moves in progress, no broker draining, rebalancing/);
    await expect(runAdminCommand('cluster', ['moves', 'extra'], shown)).rejects.toThrow('cluster moves takes no arguments');
    for (const name of ['moves', 'rebalance']) expect(commandUsage('cluster', name)).toContain(`usage: relaymq cluster ${name}`);
  });

  it('cluster move posts the move with the admin token and shows the moves; a refusal exits 1 with its code and reason', async () => {
    const moves: MovesDescription = {
      broker: 'b2',
      metadataLeader: 'b2',
      moves: [{ topic: 'orders', partition: 3, from: 'b1', to: 'b4', startedAtMs: 1_000, phase: 'pending', match: 0, lastIndex: 0 }],
      draining: [],
      rebalancing: false,
    };
    const move = { topic: 'orders', partition: 3, from: 'b1', to: 'b4' };
    const port = io(() => ({ status: 200, body: { move, moves } }), { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runAdminCommand('cluster', ['move', 'orders', '3', '--from', 'b1', '--to', 'b4'], port)).toBe(0);
    expect(port.sent).toEqual([{ method: 'POST', url: 'http://127.0.0.1:9401/api/cluster/move', authorization: 'Bearer from-env-0123456789', body: move }]);
    expect(port.stdout.join('')).toMatch(/^moving orders\/3 from b1 to b4: follow with relaymq cluster moves\n1 replica move in progress, no broker draining .*\norders\/3   b1    b4  pending /s);
    const json = io(() => ({ status: 200, body: { move, moves } }));
    expect(await runAdminCommand('cluster', ['move', 'orders', '3', '--from', 'b1', '--to', 'b4', '--json'], json)).toBe(0);
    expect(JSON.parse(json.stdout.join(''))).toEqual({ move, moves });

    const refusal = { error: 'broker b2 holds a replica of orders/3 already (replicas: b1, b2, b3): pick a broker without one', code: 'INVALID_ARGUMENT', reason: 'target-is-replica' };
    const refused = io(() => ({ status: 409, body: refusal }));
    expect(await runAdminCommand('cluster', ['move', 'orders', '3', '--from', 'b1', '--to', 'b2'], refused)).toBe(1);
    expect(refused.stderr.join('')).toBe(`relaymq: cluster move: ${refusal.error} (INVALID_ARGUMENT, target-is-replica)\n`);
    const refusedJson = io(() => ({ status: 409, body: refusal }));
    expect(await runAdminCommand('cluster', ['move', 'orders', '3', '--from', 'b1', '--to', 'b2', '--json'], refusedJson)).toBe(1);
    expect(JSON.parse(refusedJson.stdout.join(''))).toEqual({ ...refusal, status: 409 });

    // Usage errors: nothing is sent.
    const unused = io(() => ({ status: 500, body: {} }));
    await expect(runAdminCommand('cluster', ['move', 'orders', '--from', 'b1', '--to', 'b4'], unused)).rejects.toThrow(/cluster move needs a topic, a partition and two brokers/);
    await expect(runAdminCommand('cluster', ['move', 'orders', 'x', '--from', 'b1', '--to', 'b4'], unused)).rejects.toThrow(/the partition must be a number from 0, got "x"/);
    await expect(runAdminCommand('cluster', ['move', 'orders', '3', '--from', 'b1'], unused)).rejects.toThrow(/--from and --to are required/);
    expect(unused.sent).toEqual([]);
    const help = commandUsage('cluster', 'move');
    expect(help).toContain('usage: relaymq cluster move <topic> <partition> --from <broker> --to <broker> [options]');
    expect(help).toMatch(/--from <broker> +the broker holding the replica now/);
    expect(groupUsage('cluster')).toMatch(/\n  move +move one partition replica from a broker to another\n/);
  });

  it('cluster status marks a broker that drains', () => {
    const draining: MembershipDescription = { ...membership, members: [{ id: 'b1', role: 'voter', state: 'alive', url: null, replicas: 2, leaders: 0, draining: true }] };
    expect(renderMembership(draining)).toContain('b1      voter (draining)  alive  2         0      -\n');
  });

  it('topic describe shows a partition that is moving', () => {
    const moving: TopicDescription = { ...orders, partitions: [{ partition: 0, replicas: ['b1', 'b2'], leader: 'b1', moving: { from: 'b2', to: 'b4' } }, { partition: 1, replicas: ['b2', 'b3'], leader: null }] };
    expect(renderTopic(moving)).toBe(
      'topic orders: 2 partitions, replication factor 2\n' + 'PARTITION  LEADER  REPLICAS  MOVING\n' + '0          b1      b1,b2     b2 -> b4\n' + '1          (none)  b2,b3\n',
    );
  });

  it('cluster moves shows the bytes copied and the time left, in text and in --json', async () => {
    const moves: MovesDescription = {
      broker: 'b2',
      metadataLeader: 'b2',
      moves: [
        { topic: 'orders', partition: 3, from: 'b1', to: 'b5', startedAtMs: 1_000, phase: 'catching-up', match: 0, lastIndex: 400, copiedBytes: 12_897_485, totalBytes: 41_943_040, bytesPerSecond: 3_500_000, timeLeftMs: 8_300 },
        { topic: 'orders', partition: 4, from: 'b1', to: 'b5', startedAtMs: 1_000, phase: 'promoted', match: 400, lastIndex: 400, copiedBytes: 2_048, totalBytes: 2_048, bytesPerSecond: null, timeLeftMs: 0 },
        { topic: 'orders', partition: 5, from: 'b1', to: 'b5', startedAtMs: 1_000, phase: 'catching-up', match: 10, lastIndex: 400, copiedBytes: 100, totalBytes: 4_000, bytesPerSecond: 0, timeLeftMs: null },
      ],
      draining: [],
      rebalancing: false,
    };
    expect(renderMoves(moves, 13_400)).toBe(
      '3 replica moves in progress, no broker draining (as seen by b2; metadata leader b2)\n' +
        'PARTITION  FROM  TO  PHASE        COPIED                LEFT  CAUGHT UP  FOR   LAST ERROR\n' +
        'orders/3   b1    b5  catching-up  12.3 MiB of 40.0 MiB  ~9 s  0/400      12 s\n' +
        'orders/4   b1    b5  promoted     2.0 KiB of 2.0 KiB    0 s   400/400    12 s\n' +
        'orders/5   b1    b5  catching-up  100 B of 3.9 KiB      -     10/400     12 s\n',
    );
    const json = io(() => ({ status: 200, body: moves }));
    expect(await runAdminCommand('cluster', ['moves', '--json'], json)).toBe(0);
    expect(JSON.parse(json.stdout.join('')).moves[0]).toMatchObject({ copiedBytes: 12_897_485, totalBytes: 41_943_040, bytesPerSecond: 3_500_000, timeLeftMs: 8_300 });
    expect(commandUsage('cluster', 'moves')).toContain('COPIED');
  });

  it('formats bytes copied and the time left', () => {
    expect(formatCopied(0, 0)).toBe('0 B of 0 B');
    expect(formatCopied(null, 10)).toBe('-');
    expect(formatCopied(10, undefined)).toBe('-');
    expect(formatTimeLeft(undefined)).toBe('-');
    expect(formatTimeLeft(null)).toBe('-');
    expect(formatTimeLeft(0)).toBe('0 s');
    expect(formatTimeLeft(1)).toBe('~1 s');
    expect(formatTimeLeft(119_000)).toBe('~119 s');
    expect(formatTimeLeft(150_000)).toBe('~3 min');
    expect(formatTimeLeft(3 * 3600_000)).toBe('~3 h');
  });

  it('cluster status adds the moves in progress when there are any', async () => {
    const moves: MovesDescription = {
      broker: 'b1',
      metadataLeader: 'b2',
      moves: [{ topic: 'orders', partition: 3, from: 'b1', to: 'b4', startedAtMs: 1_000, phase: 'catching-up', match: 0, lastIndex: 400, copiedBytes: 1_048_576, totalBytes: 4_194_304, bytesPerSecond: 1_048_576, timeLeftMs: 3_000 }],
      draining: [],
      rebalancing: false,
    };
    const section = '\n1 replica move in progress:\nPARTITION  FROM  TO  PHASE        COPIED              LEFT  CAUGHT UP  FOR   LAST ERROR\norders/3   b1    b4  catching-up  1.0 MiB of 4.0 MiB  ~3 s  0/400      12 s\n';
    expect(renderClusterStatus(membership, moves, 13_400)).toBe(renderMembership(membership) + section);
    expect(renderClusterStatus(membership, { ...moves, moves: [] }, 13_400)).toBe(renderMembership(membership));

    const port = io((sent) => ({ status: 200, body: sent.url.endsWith('/api/cluster/moves') ? moves : membership }));
    expect(await runAdminCommand('cluster', ['status'], port)).toBe(0);
    expect(port.sent.map((s) => s.url)).toEqual(['http://127.0.0.1:9401/api/membership', 'http://127.0.0.1:9401/api/cluster/moves']);
    expect(port.stdout.join('')).toContain('1 replica move in progress:\n');
    expect(port.stdout.join('')).toContain('1.0 MiB of 4.0 MiB  ~3 s');
    const json = io((sent) => ({ status: 200, body: sent.url.endsWith('/api/cluster/moves') ? moves : membership }));
    expect(await runAdminCommand('cluster', ['status', '--json'], json)).toBe(0);
    expect(JSON.parse(json.stdout.join(''))).toEqual({ ...membership, moves: moves.moves });

    // Moves that cannot be read (refused, or not answered) leave the brokers shown.
    const refused = io((sent) => (sent.url.endsWith('/api/cluster/moves') ? { status: 500, body: { error: 'boom' } } : { status: 200, body: membership }));
    expect(await runAdminCommand('cluster', ['status'], refused)).toBe(0);
    expect(refused.stdout.join('')).toBe(renderMembership(membership));
  });
});
