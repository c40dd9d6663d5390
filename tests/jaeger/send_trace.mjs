#!/usr/bin/env node
// Sends one order's trace through one of the OpenTelemetry JS SDK's OTLP exporters and prints,
// as JSON on stdout, what was sent (from the SDK's own record of the spans), so that
// tests/jaeger/jaeger_fidelity_test.cc can compare it with what Jaeger gives back.
//
//   node send_trace.mjs --exporter proto|json|grpc --endpoint http://127.0.0.1:PORT
//                       --order-id ID --user USER --service NAME
//
// The spans are stamped a minute ago (with nanoseconds), so Jaeger's tag search over the last
// day finds them.  The order's root span carries attributes of every type the span API takes
// (string, bool, integer, double, and an array of each), `order.id`, and `enduser.id` = USER,
// which the gateway pseudonymises.  Exit status: 0 when every span was exported, 1 when an
// export failed, 2 on bad arguments; diagnostics on stderr, only the JSON on stdout.
//
// The printed shape is tests/interop/send_spans.mjs's: ids as lowercase hex, kind as the OTLP
// number (JS kind + 1), times as unix-nanosecond decimal strings, typed attribute values
// ({type: string|bool|int|double|bytes|array|kvlist|empty, value}).
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

// The packages are tests/interop's (tests/interop/setup installs them): resolve from there.
const require = createRequire(new URL('../interop/package.json', import.meta.url));
const {
  context,
  createTraceState,
  diag,
  DiagLogLevel,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter: ProtoExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { OTLPTraceExporter: JsonExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { OTLPTraceExporter: GrpcExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');

function usage(message) {
  process.stderr.write(`send_trace: ${message}\nusage: node send_trace.mjs --exporter ` +
    'proto|json|grpc --endpoint URL --order-id ID --user USER --service NAME\n');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      exporter: { type: 'string' },
      endpoint: { type: 'string' },
      'order-id': { type: 'string' },
      user: { type: 'string' },
      service: { type: 'string' },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
if (!['proto', 'json', 'grpc'].includes(args.exporter)) usage('--exporter must be proto, json or grpc');
for (const name of ['endpoint', 'order-id', 'user', 'service']) {
  if (!args[name]) usage(`--${name} is required`);
}

diag.setLogger({
  error: (...a) => process.stderr.write(`otel error: ${a.join(' ')}\n`),
  warn: (...a) => process.stderr.write(`otel warn: ${a.join(' ')}\n`),
  info: () => {},
  debug: () => {},
  verbose: () => {},
}, DiagLogLevel.WARN);

const endpoint = args.endpoint.replace(/\/+$/, '');
const common = { timeoutMillis: 10000 };
const otlpExporter =
  args.exporter === 'proto' ? new ProtoExporter({ ...common, url: `${endpoint}/v1/traces` })
  : args.exporter === 'json' ? new JsonExporter({ ...common, url: `${endpoint}/v1/traces` })
  : new GrpcExporter({ ...common, url: endpoint });

// Counts what the OTLP exporter reports: the batch processor itself only logs a failure.
const results = { ok: 0, failed: 0, errors: [] };
const checkedExporter = {
  export(spans, done) {
    otlpExporter.export(spans, (result) => {
      if (result.code === 0) {
        results.ok += spans.length;
      } else {
        results.failed += spans.length;
        results.errors.push(String(result.error?.message ?? result.error ?? 'unknown'));
      }
      done(result);
    });
  },
  shutdown: () => otlpExporter.shutdown(),
  forceFlush: () => otlpExporter.forceFlush?.() ?? Promise.resolve(),
};

const memory = new InMemorySpanExporter();
const resource = resourceFromAttributes({
  'service.name': args.service,
  'service.version': '3.1.4',
  'deployment.environment.name': 'e2e',
  'host.cores': 4,
  'host.load': 0.25,
  'host.virtual': false,
  'host.tags': ['blue', 'green'],
  'host.ports': [4317, 4318],
  // Resource attributes reach the serializers unsanitized: bytes and maps too.
  'host.id.bytes': new Uint8Array([0x00, 0x7f, 0x80, 0xff]),
  'host.labels': { rack: 'r7', slot: 2, spare: true },
});
const provider = new BasicTracerProvider({
  resource,
  spanProcessors: [
    new BatchSpanProcessor(checkedExporter, {
      maxExportBatchSize: 512, maxQueueSize: 2048, scheduledDelayMillis: 60000,
    }),
    new SimpleSpanProcessor(memory),
  ],
});
const tracer = provider.getTracer('ordertrace-jaeger-e2e', '0.9.1');
const mes = provider.getTracer('ordertrace-jaeger-e2e-mes');  // no version

// A minute ago, whole seconds, plus nanoseconds per span: HrTime [seconds, nanoseconds].
const T0 = Math.floor(Date.now() / 1000) - 60;
const at = (s, ns) => [T0 + s, ns];

const root = tracer.startSpan('POST /orders', {
  kind: SpanKind.SERVER,
  startTime: at(0, 123456789),
  attributes: {
    'order.id': args['order-id'],
    'order.stage': 'SUBMITTED',
    'enduser.id': args.user,
    'http.request.method': 'POST',
    'http.response.status_code': 201,
    'order.total': 1234.5,
    'order.discount': -0.125,
    'order.negative': -42,
    'order.big': Number.MAX_SAFE_INTEGER,
    'order.priority': true,
    'order.gift': false,
    'order.tags': ['rush', 'b2b', ''],
    'order.flags': [true, false, true],
    'order.lines': [1, 2, 3],
    'order.weights': [0.5, 1.25, -3.75],
    'order.empty': [],
    'order.note': 'caf\u00e9 \u2013 \u{1F69A} "quoted" \\ slash\nnewline',
    'order.empty_string': '',
  },
});
root.setStatus({ code: SpanStatusCode.OK });
const rootCtx = trace.setSpan(context.active(), root);

const price = tracer.startSpan('price.calculate', { startTime: at(1, 5) }, rootCtx);
price.addEvent('calculation.started', { 'calc.items': 3, 'calc.mode': 'full', 'calc.ratio': 0.5,
  'calc.exact': true, 'calc.parts': ['base', 'tax'] }, at(1, 500));
price.addEvent('no.attributes', at(2, 0));
price.recordException(Object.assign(new Error('price service timed out'), { name: 'TimeoutError' }),
  at(3, 999999999));
price.setStatus({ code: SpanStatusCode.ERROR, message: 'calculation failed: timeout' });
price.end(at(4, 1));

const publish = tracer.startSpan('publish order.created', {
  kind: SpanKind.PRODUCER,
  startTime: at(4, 100),
  attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': 'orders' },
}, rootCtx);
publish.end(at(4, 200000));

const client = tracer.startSpan('GET /partners/{id}', {
  kind: SpanKind.CLIENT,
  startTime: at(5, 0),
  attributes: { 'server.address': 'partners.internal', 'server.port': 443 },
}, rootCtx);
client.end(at(5, 250000000));
root.end(at(6, 987654321));

// The consumer continues the trace through a remote parent (the publish span, as from AMQP
// headers) with a tracestate; it links to its parent, to the client span and to another trace.
const remoteParent = {
  traceId: publish.spanContext().traceId,
  spanId: publish.spanContext().spanId,
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: createTraceState('ordertrace=p1,vendor=abc'),
};
const other = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
};
const consume = mes.startSpan('orders process', {
  kind: SpanKind.CONSUMER,
  startTime: at(7, 1),
  links: [
    { context: publish.spanContext(), attributes: { 'link.reason': 'producer' } },
    { context: client.spanContext(), attributes: { 'link.n': 2 } },
    { context: other, attributes: { 'link.score': 0.125 } },
  ],
  attributes: { 'order.id': args['order-id'], 'messaging.operation.type': 'process' },
}, trace.setSpanContext(context.active(), remoteParent));
consume.addEvent('heartbeat', { 'ordertrace.heartbeat': true }, at(8, 0));
consume.end(at(9, 0));

let exitCode = 0;
try {
  await provider.forceFlush();
} catch (e) {
  process.stderr.write(`send_trace: forceFlush failed: ${e?.message ?? e}\n`);
  exitCode = 1;
}
const sent = memory.getFinishedSpans();
if (results.failed > 0 || results.ok !== sent.length) {
  process.stderr.write(`send_trace: export failed: ${results.ok} of ${sent.length} spans ` +
    `exported; errors: ${results.errors.join('; ') || 'none reported'}\n`);
  exitCode = 1;
}

function typed(v) {
  if (v === null || v === undefined) return { type: 'empty' };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'number') {
    // OTLP maps an integral JS number to intValue (a decimal string here: exact), else double.
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

process.stdout.write(`${JSON.stringify({
  exporter: args.exporter,
  resource: { attributes: attributes(resource.attributes) },
  spans: sent.map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    traceState: s.spanContext().traceState?.serialize() ?? '',
    name: s.name,
    kind: s.kind + 1,
    startTimeUnixNano: nanos(s.startTime),
    endTimeUnixNano: nanos(s.endTime),
    attributes: attributes(s.attributes),
    events: s.events.map((e) => ({
      name: e.name, timeUnixNano: nanos(e.time), attributes: attributes(e.attributes),
    })),
    links: s.links.map((l) => ({
      traceId: l.context.traceId, spanId: l.context.spanId, attributes: attributes(l.attributes),
    })),
    status: { code: s.status.code, message: s.status.message ?? '' },
    scope: { name: s.instrumentationScope.name, version: s.instrumentationScope.version ?? '' },
  })),
}, null, 1)}\n`);

await provider.shutdown().catch(() => {});
process.exit(exitCode);
