import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type TextMapGetter } from '@opentelemetry/api';
import type { Message, MessageHandler } from './message.js';

/** Name of the tracer the SDK's spans come from. */
const TRACER_NAME = '@relaymq/sdk';

const headerGetter: TextMapGetter<Record<string, string> | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => carrier?.[key],
};

/**
 * Wraps a handler so that each message is handled in a CONSUMER span
 * `<topic> process` whose parent is the publisher's span, read from the
 * message headers (W3C trace context): the trace goes on from publish
 * through the broker to delivery, and whatever the handler traces joins it.
 * No-op without an OpenTelemetry SDK.
 */
export function tracedHandler<T>(handler: MessageHandler<T>): MessageHandler<T> {
  // The API's proxy tracer: it follows a tracer provider registered later, so one per handler is enough.
  const tracer = trace.getTracer(TRACER_NAME);
  return (message: Message<T>) => {
    const parent = messageTraceContext(message);
    const span = tracer.startSpan(
      `${message.topic} process`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'relaymq',
          'messaging.destination.name': message.topic,
          'messaging.destination.partition.id': String(message.partition),
          'messaging.operation.type': 'process',
          'messaging.relaymq.offset': message.offset,
        },
      },
      parent,
    );
    const settle = (err?: unknown): void => {
      if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.end();
    };
    let result: ReturnType<MessageHandler<T>>;
    try {
      // Without an OpenTelemetry SDK the span is a no-op with no trace of its own: the handler runs in the message's context, no new context per message.
      const active = span.isRecording() || trace.isSpanContextValid(span.spanContext()) ? trace.setSpan(parent, span) : parent;
      result = context.with(active, () => handler(message));
    } catch (err) {
      settle(err);
      throw err;
    }
    if (result instanceof Promise) return result.then(() => settle(), (err: unknown) => { settle(err); throw err; });
    settle();
    return result;
  };
}

/**
 * The trace context a message carries (the publisher's span), for code that
 * reads a subscription as a stream rather than through a handler:
 * `context.with(messageTraceContext(msg), () => ...)`.
 */
export function messageTraceContext(message: Pick<Message, 'headers'>): Context {
  return message.headers === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, message.headers, headerGetter);
}
