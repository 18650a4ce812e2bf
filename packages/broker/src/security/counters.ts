/** Security events a broker counts (exported in `BrokerStats`). */
export interface SecurityCounters {
  /** Publishes (batches), subscriptions and metadata requests refused with `FORBIDDEN`. */
  denied: number;
  /** Handshakes refused with `UNAUTHORIZED` (missing, unknown, forged or expired token; auth timeout). */
  authFailures: number;
  /** Connections refused because of `maxConnections` or `maxConnectionsPerIp`. */
  connectionsRejected: number;
  /** Subscriptions refused because of `maxSubscriptionsPerConnection`. */
  subscriptionsRejected: number;
  /** Publish batches nacked with `RATE_LIMITED`. */
  rateLimited: number;
  /** Connections cut off with `SLOW_CONSUMER`. */
  slowConsumersCut: number;
  /** TLS handshakes that failed (plain-text clients, missing or untrusted client certificates). */
  tlsHandshakeFailures: number;
}

/** Every counter at zero. */
export function newSecurityCounters(): SecurityCounters {
  return { denied: 0, authFailures: 0, connectionsRejected: 0, subscriptionsRejected: 0, rateLimited: 0, slowConsumersCut: 0, tlsHandshakeFailures: 0 };
}
