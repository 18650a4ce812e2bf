import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type ContextManager,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';

/** A finished (or open) span as the in-memory tracer recorded it. */
interface Recorded {
  name: string;
  kind: SpanKind;
  tracer: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Attributes;
  status: SpanStatus | undefined;
  ended: boolean;
}

/** An in-memory tracer provider: every span is recorded; no exporter, no SDK. */
class MemoryTracerProvider implements TracerProvider {
  readonly spans: Recorded[] = [];

  getTracer(name: string): Tracer {
    const spans = this.spans;
    const start = (spanName: string, options: SpanOptions = {}, ctx: Context = context.active()): Span => {
      const parent = trace.getSpanContext(ctx);
      const record: Recorded = {
        name: spanName,
        kind: options.kind ?? SpanKind.INTERNAL,
        tracer: name,
        traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
        spanId: randomBytes(8).toString('hex'),
        parentSpanId: parent?.spanId,
        attributes: { ...options.attributes },
        status: undefined,
        ended: false,
      };
      spans.push(record);
      const spanContext: SpanContext = { traceId: record.traceId, spanId: record.spanId, traceFlags: 1 };
      const span: Span = {
        spanContext: () => spanContext,
        setAttribute: (key, value) => {
          if (value !== undefined) record.attributes[key] = value;
          return span;
        },
        setAttributes: (attributes) => {
          Object.assign(record.attributes, attributes);
          return span;
        },
        addEvent: () => span,
        addLink: () => span,
        addLinks: () => span,
        setStatus: (status) => {
          record.status = status;
          return span;
        },
        updateName: (n) => {
          record.name = n;
          return span;
        },
        end: () => {
          record.ended = true;
        },
        isRecording: () => !record.ended,
        recordException: () => {},
      };
      return span;
    };
    return {
      startSpan: start,
      startActiveSpan: ((spanName: string, ...rest: unknown[]) => {
        const fn = rest.pop() as (span: Span) => unknown;
        const span = start(spanName, rest[0] as SpanOptions | undefined, rest[1] as Context | undefined);
        return context.with(trace.setSpan(context.active(), span), () => fn(span));
      }) as Tracer['startActiveSpan'],
    };
  }
}

/** The W3C `traceparent` header, written and read as the spec says (no tracestate). */
class TraceparentPropagator implements TextMapPropagator {
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(ctx);
    if (span === undefined) return;
    setter.set(carrier, 'traceparent', `00-${span.traceId}-${span.spanId}-0${span.traceFlags.toString(16)}`);
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const value = getter.get(carrier, 'traceparent');
    const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(typeof value === 'string' ? value : '');
    if (match === null) return ctx;
    return trace.setSpanContext(ctx, { traceId: match[1] as string, spanId: match[2] as string, traceFlags: Number.parseInt(match[3] as string, 16), isRemote: true });
  }

  fields(): string[] {
    return ['traceparent'];
  }
}

/** Context across awaits, as the OpenTelemetry Node SDK's AsyncLocalStorage manager does. */
class AsyncContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  trace.disable();
  propagation.disable();
  context.disable();
});

describe('W3C trace context through relaymq', () => {
  describe('with an OpenTelemetry tracer and propagator registered', () => {
    let provider: MemoryTracerProvider;
    beforeEach(() => {
      provider = new MemoryTracerProvider();
      context.setGlobalContextManager(new AsyncContextManager());
      propagation.setGlobalPropagator(new TraceparentPropagator());
      trace.setGlobalTracerProvider(provider);
    });

    it('one trace spans publish, the broker storing it on a 3-broker cluster, and delivery to the handler on another broker', async () => {
      const ids = ['t1', 't2', 't3'];
      const peerPorts = await freePorts(3);
      const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
      const brokers = await Promise.all(ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
      const publisher = await fixture.client([brokers[0]?.url as string], { poolSize: 1, discovery: false });
      const subscriber = await fixture.client([brokers[1]?.url as string], { poolSize: 1, discovery: false });
      const received: Array<{ message: Message; activeTraceId: string | undefined; activeSpanId: string | undefined }> = [];
      await subscriber.subscribe(
        'traced.orders',
        (message: Message) => {
          // The handler runs inside the process span: what it traces joins the publisher's trace.
          const active = trace.getSpanContext(context.active());
          received.push({ message, activeTraceId: active?.traceId, activeSpanId: active?.spanId });
        },
        { from: 'earliest' },
      );

      // The application's own span around the publish: the trace starts there.
      const appSpan = trace.getTracer('app').startSpan('checkout');
      await context.with(trace.setSpan(context.active(), appSpan), () => publisher.publish('traced.orders', { id: 1 }, { headers: { tenant: 'acme' } }));
      appSpan.end();
      await waitFor(() => received.length === 1, 'the traced message to be delivered');

      const app = provider.spans.find((s) => s.name === 'checkout') as Recorded;
      const publish = provider.spans.find((s) => s.name === 'traced.orders publish') as Recorded;
      const stores = provider.spans.filter((s) => s.name === 'traced.orders store');
      const processing = provider.spans.find((s) => s.name === 'traced.orders process') as Recorded;
      expect(publish).toMatchObject({ kind: SpanKind.PRODUCER, tracer: '@relaymq/sdk', traceId: app.traceId, parentSpanId: app.spanId, ended: true });
      expect(publish.attributes).toMatchObject({ 'messaging.system': 'relaymq', 'messaging.destination.name': 'traced.orders' });
      expect(stores.length).toBeGreaterThanOrEqual(1);
      for (const store of stores) expect(store).toMatchObject({ kind: SpanKind.SERVER, tracer: '@relaymq/broker', traceId: app.traceId, parentSpanId: publish.spanId, ended: true });
      expect(processing).toMatchObject({ kind: SpanKind.CONSUMER, tracer: '@relaymq/sdk', traceId: app.traceId, parentSpanId: publish.spanId, ended: true });
      expect(processing.attributes).toMatchObject({ 'messaging.destination.partition.id': '0', 'messaging.relaymq.offset': 0 });

      const [delivered] = received;
      expect(delivered?.message.headers).toEqual({ tenant: 'acme', traceparent: `00-${app.traceId}-${publish.spanId}-01` });
      expect(delivered?.activeTraceId).toBe(app.traceId);
      expect(delivered?.activeSpanId).toBe(processing.spanId);
    });

    it('marks the process span failed when the handler throws', async () => {
      const broker = await fixture.broker({ id: 'solo' });
      const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
      client.on('error', () => {});
      let calls = 0;
      await client.subscribe(
        'traced.failing',
        () => {
          calls++;
          throw new Error('handler broke');
        },
        { from: 'earliest', retry: { attempts: 1 } },
      );
      await client.publish('traced.failing', 'x');
      await waitFor(() => provider.spans.some((s) => s.name === 'traced.failing process' && s.ended), 'the process span to end');
      const processing = provider.spans.find((s) => s.name === 'traced.failing process') as Recorded;
      expect(processing.status).toMatchObject({ code: 2, message: 'handler broke' });
      expect(calls).toBeGreaterThanOrEqual(1);
    });
  });

  it('adds no header and costs nothing visible without an OpenTelemetry SDK (the API alone is a no-op)', async () => {
    const broker = await fixture.broker({ id: 'plain' });
    const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
    const received: Message[] = [];
    await client.subscribe('plain.orders', (m: Message) => void received.push(m), { from: 'earliest' });
    await client.publish('plain.orders', 1);
    await client.publish('plain.orders', 2, { headers: { a: 'b' } });
    await waitFor(() => received.length === 2, 'both messages');
    expect(received.map((m) => m.headers)).toEqual([undefined, { a: 'b' }]);
  });
});
