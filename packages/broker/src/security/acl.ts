import { topicMatches } from '@relaymq/sdk/protocol';
import type { PrincipalRules } from '../options.js';

/** One resolved rule set: patterns checked, absent lists empty. */
interface CompiledRules {
  allow: readonly string[];
  deny: readonly string[];
}

/** Most memoised answers per session; topics are few, but a client must not grow this without bound. */
const MAX_CACHED_TOPICS = 10_000;

/**
 * What one connection may do with topics. Deny by default: a topic is usable
 * only when an allow pattern matches it and no deny pattern does. Answers are
 * memoised per topic.
 */
export class TopicPermissions {
  /** A connection on a broker without authentication: everything is allowed. */
  static readonly unrestricted = new TopicPermissions(undefined, undefined);

  private readonly cache = { publish: new Map<string, boolean>(), subscribe: new Map<string, boolean>() };

  private constructor(
    private readonly publishRules: CompiledRules | undefined,
    private readonly subscribeRules: CompiledRules | undefined,
  ) {}

  /**
   * The permissions of `principal` under `acl`: its own entry plus the `*`
   * entry, which applies to every authenticated principal.
   */
  static of(acl: Readonly<Record<string, PrincipalRules>>, principal: string): TopicPermissions {
    const own = Object.hasOwn(acl, principal) ? acl[principal] : undefined;
    const everyone = principal !== '*' && Object.hasOwn(acl, '*') ? acl['*'] : undefined;
    const merge = (kind: 'publish' | 'subscribe'): CompiledRules => ({
      allow: [...(own?.[kind]?.allow ?? []), ...(everyone?.[kind]?.allow ?? [])],
      deny: [...(own?.[kind]?.deny ?? []), ...(everyone?.[kind]?.deny ?? [])],
    });
    return new TopicPermissions(merge('publish'), merge('subscribe'));
  }

  /** Whether the connection may publish to `topic`. */
  mayPublish(topic: string): boolean {
    return this.check('publish', this.publishRules, topic);
  }

  /** Whether the connection may receive messages of `topic` and read its metadata. */
  mayRead(topic: string): boolean {
    return this.check('subscribe', this.subscribeRules, topic);
  }

  private check(kind: 'publish' | 'subscribe', rules: CompiledRules | undefined, topic: string): boolean {
    if (rules === undefined) return true;
    const cache = this.cache[kind];
    let allowed = cache.get(topic);
    if (allowed === undefined) {
      allowed = rules.allow.some((p) => topicMatches(p, topic)) && !rules.deny.some((p) => topicMatches(p, topic));
      if (cache.size < MAX_CACHED_TOPICS) cache.set(topic, allowed);
    }
    return allowed;
  }
}
