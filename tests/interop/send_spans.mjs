#!/usr/bin/env node
// Sends a fixed set of spans through one of the OpenTelemetry JS SDK's OTLP exporters and
// prints, as JSON on stdout, what was sent, so that a test can compare it with what the
// gateway decoded.
//
//   node send_spans.mjs --exporter proto|json|grpc --endpoint http://127.0.0.1:PORT
//                       [--compression none|gzip] [--order-id ID] [--service NAME]
//                       [--user ID] [--recent]
//
// --endpoint is the server's base URL; the HTTP exporters post to <endpoint>/v1/traces.
// For tests/jaeger/jaeger_fidelity_test.cc: --order-id and --service replace the root span's
// order.id and the service name, --user adds enduser.id (which a gateway pseudonymises) to the
// root span, and --recent stamps the spans a minute ago instead of in November 2023, so that
// a search over the last days finds them.
// Exit status: 0 when every span was exported successfully, 1 when the export failed, 2 on
// bad arguments.  Diagnostics go to stderr; stdout carries only the JSON document.
//
// The expected values are derived from the SDK's own record of the spans (an
// InMemorySpanExporter beside the OTLP exporter) with the OTLP mapping rules, not from the
// OTLP serializer under test: ids as lowercase hex, SpanKind + 1 (JS INTERNAL=0 is OTLP 1),
// times as unix-nanosecond decimal strings, integral numbers as int and other numbers as
// double, typed attribute values.
import { parseArgs } from 'node:util';
import {
  context,
  createTraceState,
  diag,
  DiagLogLevel,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';

function usage(message) {
  process.stderr.write(`send_spans: ${message}\n` +
    'usage: node send_spans.mjs --exporter proto|json|grpc --endpoint URL ' +
    '[--compression none|gzip] [--order-id ID] [--service NAME] [--user ID] [--recent]\n');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      exporter: { type: 'string' },
      endpoint: { type: 'string' },
      compression: { type: 'string', default: 'none' },
      'order-id': { type: 'string', default: 'ORD-2024-000042' },
      service: { type: 'string', default: 'interop-crm' },
      user: { type: 'string' },
      recent: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
if (!['proto', 'json', 'grpc'].includes(args.exporter)) usage('--exporter must be proto, json or grpc');
if (!args.endpoint) usage('--endpoint is required');
if (!['none', 'gzip'].includes(args.compression)) usage('--compression must be none or gzip');

// The SDK reports export problems through diag; send them to stderr.
diag.setLogger({
  error: (...a) => process.stderr.write(`otel error: ${a.join(' ')}\n`),
  warn: (...a) => process.stderr.write(`otel warn: ${a.join(' ')}\n`),
  info: () => {},
  debug: () => {},
  verbose: () => {},
}, DiagLogLevel.WARN);

const endpoint = args.endpoint.replace(/\/+$/, '');
const common = { compression: args.compression, timeoutMillis: 10000 };
const otlpExporter =
  args.exporter === 'proto' ? new ProtoExporter({ ...common, url: `${endpoint}/v1/traces` })
  : args.exporter === 'json' ? new JsonExporter({ ...common, url: `${endpoint}/v1/traces` })
  : new GrpcExporter({ ...common, url: endpoint });

// Counts what the OTLP exporter reports, so that a failed export fails the script (the batch
// processor itself only logs).
const exportResults = { ok: 0, failed: 0, errors: [] };
const checkedExporter = {
  export(spans, done) {
    otlpExporter.export(spans, (result) => {
      if (result.code === 0) {
        exportResults.ok += spans.length;
      } else {
        exportResults.failed += spans.length;
        exportResults.errors.push(String(result.error?.message ?? result.error ?? 'unknown'));
      }
      done(result);
    });
  },
  shutdown: () => otlpExporter.shutdown(),
  forceFlush: () => otlpExporter.forceFlush?.() ?? Promise.resolve(),
};

const memory = new InMemorySpanExporter();
const RESOURCE_SCHEMA = 'https://opentelemetry.io/schemas/1.26.0';
const resource = resourceFromAttributes({
  [ATTR_SERVICE_NAME]: args.service,
  'service.version': '2.4.1',
  'deployment.environment.name': 'test',
  'host.cores': 8,
  'host.load': 0.75,
  'host.virtual': true,
  'host.tags': ['blue', 'green'],
  'host.ports': [4317, 4318],
  // Resource attributes are not sanitized by the SDK, so values the span API cannot carry
  // (bytes, maps, nested arrays) reach the OTLP serializers through them.
  'host.id.bytes': new Uint8Array([0x00, 0x7f, 0x80, 0xff]),
  'host.labels': { rack: 'r1', slot: 3, spare: false, weight: 1.5 },
  'host.matrix': [[1, 2], ['a']],
}, { schemaUrl: RESOURCE_SCHEMA });

const provider = new BasicTracerProvider({
  resource,
  spanProcessors: [
    new BatchSpanProcessor(checkedExporter, {
      maxExportBatchSize: 512, maxQueueSize: 2048, scheduledDelayMillis: 60000,
    }),
    new SimpleSpanProcessor(memory),
  ],
});

const SCOPE = { name: 'ordertrace-interop', version: '1.2.3', schemaUrl: 'https://example.com/scope/1' };
const tracer = provider.getTracer(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
const otherTracer = provider.getTracer('ordertrace-interop-mes');  // no version, no schema

// Fixed times (HrTime [seconds, nanoseconds]) so nanoseconds survive exactly.
const T0 = args.recent ? Math.floor(Date.now() / 1000) - 60 : 1700000000;
const at = (s, ns) => [T0 + s, ns];

const root = tracer.startSpan('POST /orders', {
  kind: SpanKind.SERVER,
  startTime: at(0, 123456789),
  attributes: {
    'order.id': args['order-id'],
    'order.stage': 'SUBMITTED',
    ...(args.user ? { 'enduser.id': args.user } : {}),
    'http.request.method': 'POST',
    'http.response.status_code': 201,
    'order.total': 1234.5,
    'order.negative': -42,
    'order.big': Number.MAX_SAFE_INTEGER,
    'order.zero': 0,
    'order.priority': true,
    'order.gift': false,
    'order.tags': ['rush', 'b2b', ''],
    'order.flags': [true, false, true],
    'order.lines': [1, 2, 3],
    'order.weights': [0.5, 1.25, -3.75],
    'order.empty': [],
    'order.sparse': ['a', null, 'c'],
    'order.note': 'caf\u00e9 \u2013 \u{1F69A} "quoted" \\ slash\nnewline',
    'order.empty_string': '',
    'order.long': 'x'.repeat(3000),
  },
});
root.setStatus({ code: SpanStatusCode.OK });
const rootCtx = trace.setSpan(context.active(), root);

const price = tracer.startSpan('price.calculate', {
  kind: SpanKind.INTERNAL,
  startTime: at(1, 5),
}, rootCtx);
price.addEvent('calculation.started', { 'calc.items': 3, 'calc.mode': 'full', 'calc.ratio': 0.5 },
  at(1, 500));
price.addEvent('no.attributes', at(2, 0));
price.recordException(Object.assign(new Error('price service timed out'), { name: 'TimeoutError' }),
  at(3, 999999999));
price.setStatus({ code: SpanStatusCode.ERROR, message: 'calculation failed: timeout' });
price.setAttribute('order.step.status', 'TIMEOUT');
price.end(at(4, 1));

const publish = tracer.startSpan('publish order.created', {
  kind: SpanKind.PRODUCER,
  startTime: at(4, 100),
  attributes: {
    'messaging.system': 'rabbitmq',
    'messaging.destination.name': 'orders',
    'messaging.rabbitmq.destination.routing_key': 'order.created',
    'messaging.operation.type': 'send',
  },
}, rootCtx);
publish.end(at(4, 200));

const client = tracer.startSpan('GET /partners/{id}', {
  kind: SpanKind.CLIENT,
  startTime: at(5, 0),
  attributes: { 'server.address': 'partners.internal', 'server.port': 443 },
}, rootCtx);
client.end(at(5, 250000000));
root.end(at(6, 987654321));

// The consumer continues the producer's trace through a remote parent (as from AMQP headers)
// with a tracestate, and links to the producer and to an unrelated trace.
const remoteParent = {
  traceId: publish.spanContext().traceId,
  spanId: publish.spanContext().spanId,
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: createTraceState('ordertrace=p1,vendor=abc'),
};
const unrelated = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.NONE,
  isRemote: true,
  traceState: createTraceState('congo=t61rcWkgMzE'),
};
const consume = otherTracer.startSpan('orders process', {
  kind: SpanKind.CONSUMER,
  startTime: at(7, 1),
  links: [
    { context: publish.spanContext(), attributes: { 'link.reason': 'producer', 'link.n': 1 } },
    { context: unrelated, attributes: { 'link.flags': [true], 'link.score': 0.125 } },
    { context: unrelated },
  ],
  attributes: { 'messaging.operation.type': 'process', 'messaging.message.id': 'm-77' },
}, trace.setSpanContext(context.active(), remoteParent));
consume.addEvent('heartbeat', { 'ordertrace.heartbeat': true }, at(8, 0));
consume.end(at(9, 0));

// A span with all defaults: current times, INTERNAL, no attributes, status UNSET.
otherTracer.startSpan('defaults').end();

let exitCode = 0;
try {
  await provider.forceFlush();
} catch (e) {
  process.stderr.write(`send_spans: forceFlush failed: ${e?.message ?? e}\n`);
  exitCode = 1;
}
const sent = memory.getFinishedSpans();
if (exportResults.failed > 0 || exportResults.ok !== sent.length) {
  process.stderr.write(`send_spans: export failed: ${exportResults.ok} of ${sent.length} spans ` +
    `exported; errors: ${exportResults.errors.join('; ') || 'none reported'}\n`);
  exitCode = 1;
}

// ---- the expected document ----

function typed(v) {
  if (v === null || v === undefined) return { type: 'empty' };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'number') {
    // OTLP mapping of a JS number: integral → intValue (as a decimal string here, exact),
    // anything else → doubleValue.
    return Number.isInteger(v) ? { type: 'int', value: String(v) } : { type: 'double', value: v };
  }
  if (v instanceof Uint8Array) return { type: 'bytes', value: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return { type: 'array', value: v.map(typed) };
  if (typeof v === 'object') return { type: 'kvlist', value: attributes(v) };
  throw new Error(`unexpected attribute value ${v}`);
}
function attributes(obj) {
  return Object.keys(obj ?? {}).map((key) => ({ key, value: typed(obj[key]) }));
}
const nanos = (hr) => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
const flags = (ctx) => (ctx.traceFlags & 0xff) | 0x100 | (ctx.isRemote ? 0x200 : 0);

const expected = {
  exporter: args.exporter,
  compression: args.compression,
  resource: { schemaUrl: RESOURCE_SCHEMA, attributes: attributes(resource.attributes) },
  spans: sent.map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    traceState: s.spanContext().traceState?.serialize() ?? '',
    flags: flags({ traceFlags: s.spanContext().traceFlags, isRemote: s.parentSpanContext?.isRemote }),
    name: s.name,
    kind: s.kind + 1,
    startTimeUnixNano: nanos(s.startTime),
    endTimeUnixNano: nanos(s.endTime),
    attributes: attributes(s.attributes),
    droppedAttributesCount: s.droppedAttributesCount,
    events: s.events.map((e) => ({
      name: e.name,
      timeUnixNano: nanos(e.time),
      attributes: attributes(e.attributes),
      droppedAttributesCount: e.droppedAttributesCount ?? 0,
    })),
    droppedEventsCount: s.droppedEventsCount,
    links: s.links.map((l) => ({
      traceId: l.context.traceId,
      spanId: l.context.spanId,
      traceState: l.context.traceState?.serialize() ?? '',
      flags: flags(l.context),
      attributes: attributes(l.attributes),
      droppedAttributesCount: l.droppedAttributesCount ?? 0,
    })),
    droppedLinksCount: s.droppedLinksCount,
    status: { code: s.status.code, message: s.status.message ?? '' },
    scope: {
      name: s.instrumentationScope.name,
      version: s.instrumentationScope.version ?? '',
      schemaUrl: s.instrumentationScope.schemaUrl ?? '',
    },
  })),
};
process.stdout.write(`${JSON.stringify(expected, null, 1)}\n`);

await provider.shutdown().catch(() => {});
process.exit(exitCode);
