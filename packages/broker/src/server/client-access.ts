import { createHash } from 'node:crypto';
import { TopicPermissions } from '../security/acl.js';
import type { Principal } from '../security/auth.js';

/**
 * Who one connection is and what it may do: fixed when its hello is
 * authenticated, read by the publish and delivery paths.
 */
export class ClientAccess {
  /** A connection on a broker without authentication: everything is allowed, names are its own. */
  static readonly anonymous = new ClientAccess(undefined, TopicPermissions.unrestricted);

  constructor(
    /** Who the connection authenticated as; undefined without authentication. */
    readonly principal: Principal | undefined,
    readonly permissions: TopicPermissions,
  ) {}

  /**
   * A client-chosen name (producer id, durable subscription) in the
   * principal's own namespace, so nobody can claim another principal's
   * producer or durable positions. Unchanged without authentication; with it,
   * an opaque digest that fits the grammar and length of either name.
   */
  owned(name: string): string {
    if (this.principal === undefined) return name;
    return `p-${createHash('sha256').update(this.principal.name).update('\0').update(name).digest('base64url')}`;
  }

  /** The connection as error messages name it. */
  describe(): string {
    return this.principal === undefined ? 'this connection' : `principal ${JSON.stringify(this.principal.name)}`;
  }
}
