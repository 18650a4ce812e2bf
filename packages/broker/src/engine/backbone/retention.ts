import { topicMatches } from '@relaymq/sdk/protocol';
import type { RetentionOptions } from '../../options.js';

/** The broker's retention settings a gateway maps onto stream arguments. */
export interface BackboneRetention {
  retention: RetentionOptions;
  topicRetention: ReadonlyArray<{ pattern: string } & RetentionOptions>;
  segmentBytes: number;
}

/**
 * Why a gateway refuses `<field>.maxMessages` (to follow the option's name):
 * RabbitMQ streams retain by age (`max-age`) and size (`max-length-bytes`)
 * only, and a limit silently not applied would keep data an operator
 * expects deleted. `field` names the option (`retention`, `topicRetention[2]`).
 */
export function maxMessagesUnsupported(field: string): string {
  return `has no RabbitMQ stream equivalent and is refused with backbone (streams retain by age and size only): use ${field}.maxBytes (max-length-bytes) or ${field}.maxAgeMs (max-age)`;
}

/**
 * The arguments of a new partition stream of `topic`: its retention (the
 * first `topicRetention` pattern matching it, else `retention`, as the
 * embedded engine chooses) with `maxAgeMs` as `max-age` (whole seconds,
 * rounded up) and `maxBytes` as `max-length-bytes`, and `segmentBytes` as
 * `stream-max-segment-size-bytes`. RabbitMQ applies retention per segment,
 * as the embedded engine does. `maxMessages` is refused when the options
 * are resolved ({@link maxMessagesUnsupported}), never ignored here.
 */
export function streamArguments(topic: string, settings: BackboneRetention): Record<string, string | number> {
  const policy = settings.topicRetention.find((r) => topicMatches(r.pattern, topic)) ?? settings.retention;
  const args: Record<string, string | number> = { 'stream-max-segment-size-bytes': settings.segmentBytes };
  if (policy.maxAgeMs !== undefined) args['max-age'] = `${Math.max(1, Math.ceil(policy.maxAgeMs / 1000))}s`;
  if (policy.maxBytes !== undefined) args['max-length-bytes'] = policy.maxBytes;
  return args;
}
