import { describe, expect, it } from 'vitest';
import { TopicPermissions } from './acl.js';

const acl = {
  alice: {
    publish: { allow: ['orders.>'], deny: ['orders.secret.>'] },
    subscribe: { allow: ['orders.*', 'audit.>'], deny: ['orders.secret'] },
  },
  bob: { subscribe: { allow: ['>'] } },
  '*': { publish: { allow: ['public.*'] }, subscribe: { allow: ['public.*'], deny: ['public.hidden'] } },
};

describe('TopicPermissions', () => {
  it('allows what an allow pattern matches, unless a deny pattern matches too', () => {
    const alice = TopicPermissions.of(acl, 'alice');
    const table: Array<[string, boolean, boolean]> = [
      // topic, may publish, may read
      ['orders.created', true, true],
      ['orders.eu.created', true, false], // subscribe allow is orders.* (one segment)
      ['orders.secret', true, false], // publish deny is orders.secret.> (needs a further segment)
      ['orders.secret.keys', false, false],
      ['audit.login', false, true],
      ['public.news', true, true], // the "*" entry applies to everyone
      ['public.hidden', true, false],
      ['payments', false, false], // deny by default
    ];
    for (const [topic, publish, read] of table) {
      expect([topic, alice.mayPublish(topic), alice.mayRead(topic)]).toEqual([topic, publish, read]);
    }
  });

  it('denies everything to a principal with no entry, except what "*" grants', () => {
    const stranger = TopicPermissions.of(acl, 'mallory');
    expect(stranger.mayPublish('orders.created')).toBe(false);
    expect(stranger.mayRead('orders.created')).toBe(false);
    expect(stranger.mayPublish('public.news')).toBe(true);
    const bob = TopicPermissions.of(acl, 'bob');
    expect(bob.mayRead('anything.at.all')).toBe(true);
    expect(bob.mayRead('public.hidden')).toBe(false); // "*" denies win over bob's own allow
    expect(bob.mayPublish('anything')).toBe(false);
  });

  it('is unrestricted without authentication', () => {
    expect(TopicPermissions.unrestricted.mayPublish('x')).toBe(true);
    expect(TopicPermissions.unrestricted.mayRead('x.y')).toBe(true);
  });

  it('ignores inherited object keys as principals', () => {
    expect(TopicPermissions.of(acl, 'constructor').mayRead('orders.created')).toBe(false);
    expect(TopicPermissions.of(acl, '__proto__').mayPublish('orders.created')).toBe(false);
  });
});
