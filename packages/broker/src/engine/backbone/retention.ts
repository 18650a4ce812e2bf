import { topicMatches } from '@relaymq/sdk/protocol';
import type { RetentionOptions } from '../../options.js';

/** The broker's retention settings a gateway maps onto stream arguments. */
export interface BackboneRetention {
  retention: RetentionOptions;
  topicRetention: ReadonlyArray<{ pattern: string } & RetentionOptions>;
  segmentBytes: number;
}

/**
 * The arguments of a new partition stream of `topic`: its retention (the
 * first `topicRetention` pattern matching it, else `retention`, as the
 * embedded engine chooses) with `maxAgeMs` as `max-age` (whole seconds,
 * rounded up) and `maxBytes` as `max-length-bytes`, and `segmentBytes` as
 * `stream-max-segment-size-bytes`. RabbitMQ applies retention per segment,
 * as the embedded engine does. `maxMessages` is refused when the options
 * are resolved (options.ts), never ignored here.
 */
export function streamArguments(topic: string, settings: BackboneRetention): Record<string, string | number> {
  const policy = settings.topicRetention.find((r) => topicMatches(r.pattern, topic)) ?? settings.retention;
  const args: Record<string, string | number> = { 'stream-max-segment-size-bytes': settings.segmentBytes };
  if (policy.maxAgeMs !== undefined) args['max-age'] = `${Math.max(1, Math.ceil(policy.maxAgeMs / 1000))}s`;
  if (policy.maxBytes !== undefined) args['max-length-bytes'] = policy.maxBytes;
  return args;
}
