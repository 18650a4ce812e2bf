import type { Span, SpanStatusCode, TextMapGetter } from '@opentelemetry/api';

/** Name of the tracer the broker's spans come from. */
export const TRACER_NAME = '@relaymq/broker';
/** Most spans one publish batch starts: a batch of thousands of traced messages costs at most this many. */
export const MAX_SPANS_PER_BATCH = 16;
/** The W3C trace context header the propagator writes; a message without it is not traced here. */
const TRACEPARENT = 'traceparent';

const headerGetter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The OpenTelemetry API, once {@link loadTracing} loaded it. */
let api: typeof import('@opentelemetry/api') | undefined;

/**
 * Loads the OpenTelemetry API. A broker starts this first and awaits it just
 * before it listens, so the load (its ESM build is 51 modules) overlaps the
 * recovery's disk waits instead of adding to the static imports of every
 * start. A tracer provider registered by the embedding application is found
 * either way: the API keeps it in a process global.
 */
export async function loadTracing(): Promise<void> {
  api ??= await import('@opentelemetry/api');
}

/** What a traced message looks like to the broker: its headers, where the publisher's trace context travels. */
export interface TracedMessage {
  headers?: Record<string, string> | undefined;
}

/**
 * Runs `store` (the hand-off of a publish batch to the engine, replication
 * included) with a SERVER span `<topic> store` per traced message, child of
 * the publisher's span read from the message headers (W3C trace context): a
 * trace goes from publish through the broker to delivery. Untraced messages
 * cost a header lookup; with `@opentelemetry/api` alone (no SDK registered
 * in the broker's process) the spans are no-ops. Nothing is traced before
 * {@link loadTracing} resolved (a broker listens only after).
 */
export function tracedStore<T>(topic: string, partition: number, messages: readonly TracedMessage[], store: () => Promise<T>): Promise<T> {
  if (api === undefined) return store();
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace } = api;
  let spans: Span[] | undefined;
  for (const m of messages) {
    if (m.headers?.[TRACEPARENT] === undefined) continue;
    if ((spans ??= []).length >= MAX_SPANS_PER_BATCH) break;
    const parent = propagation.extract(ROOT_CONTEXT, m.headers, headerGetter);
    spans.push(
      trace.getTracer(TRACER_NAME).startSpan(
        `${topic} store`,
        {
          kind: SpanKind.SERVER,
          attributes: { 'messaging.system': 'relaymq', 'messaging.destination.name': topic, 'messaging.destination.partition.id': String(partition), 'messaging.operation.type': 'receive' },
        },
        parent,
      ),
    );
  }
  // Untraced: the store's own promise (an async wrapper would add microtask hops to every publish).
  if (spans === undefined) return store();
  return endSpans(spans, SpanStatusCode.ERROR, store);
}

async function endSpans<T>(spans: Span[], errorCode: SpanStatusCode, store: () => Promise<T>): Promise<T> {
  try {
    return await store();
  } catch (err) {
    for (const span of spans) span.setStatus({ code: errorCode, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    for (const span of spans) span.end();
  }
}
