#!/usr/bin/env node
// Sends one order's spans through the OpenTelemetry JS SDK's OTLP/HTTP protobuf exporter, with
// timestamps in the past: the CRM accepted the order (order.stage=SUBMITTED) and published the
// price-calculation message to RabbitMQ, and nothing happened since.  With the default rules
// the gateway must flag the order at once (the MES never picked it up; the message was never
// processed).  Used by tests/journeys/e2e_test.cc.
//
// With --next the order moves on instead: the MES processes that message (msg-<order>) and
// reaches PRICE_CALCULATED, stamped now, which clears a stuck order (and resolves its alert:
// tests/alerting/alertmanager_e2e_test.cc).
//
//   node send_order.mjs --endpoint http://127.0.0.1:PORT --order ID [--minutes-ago N] [--next]
//
// Exit status: 0 when the spans were exported, 1 when the export failed, 2 on bad arguments.
// stdout: JSON {trace_id, submit_span_id, publish_span_id, message_id}.
import { parseArgs } from 'node:util';
import { context, diag, DiagLogLevel, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

let args;
try {
  args = parseArgs({
    options: {
      endpoint: { type: 'string' },
      order: { type: 'string' },
      'minutes-ago': { type: 'string', default: '10' },
      next: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) {
  process.stderr.write(`send_order: ${e.message}\n`);
  process.exit(2);
}
if (!args.endpoint || !args.order) {
  process.stderr.write(
    'usage: node send_order.mjs --endpoint URL --order ID [--minutes-ago N] [--next]\n');
  process.exit(2);
}
diag.setLogger({
  error: (...a) => process.stderr.write(`otel error: ${a.join(' ')}\n`),
  warn: (...a) => process.stderr.write(`otel warn: ${a.join(' ')}\n`),
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

let failed = 0;
const otlp = new OTLPTraceExporter({ url: `${args.endpoint.replace(/\/+$/, '')}/v1/traces` });
const exporter = {
  export(spans, done) {
    otlp.export(spans, (r) => {
      if (r.code !== 0) {
        failed += spans.length;
        process.stderr.write(`export failed: ${r.error?.message ?? r.error}\n`);
      }
      done(r);
    });
  },
  shutdown: () => otlp.shutdown(),
  forceFlush: () => otlp.forceFlush?.() ?? Promise.resolve(),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({
    'service.name': args.next ? 'mes' : 'crm',
    'service.namespace': 'orders',
  }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('ordertrace-e2e');

const order = args.order;
const messageId = `msg-${order}`;

if (args.next) {
  // The MES consumes the price-calculation message and reaches PRICE_CALCULATED.
  const t1 = Date.now() - 2000;
  const consume = tracer.startSpan('process orders:price.calculate', {
    kind: SpanKind.CONSUMER,
    startTime: new Date(t1),
    attributes: {
      'order.id': order,
      'messaging.system': 'rabbitmq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'orders:price.calculate',
      'messaging.rabbitmq.destination.routing_key': 'price.calculate',
      'messaging.message.id': messageId,
    },
  });
  const calculated = tracer.startSpan('calculate price', {
    kind: SpanKind.INTERNAL,
    startTime: new Date(t1 + 10),
    attributes: { 'order.id': order, 'order.stage': 'PRICE_CALCULATED', 'order.step.status': 'OK' },
  }, trace.setSpan(context.active(), consume));
  calculated.setStatus({ code: SpanStatusCode.OK });
  calculated.end(new Date(t1 + 500));
  consume.setStatus({ code: SpanStatusCode.OK });
  consume.end(new Date(t1 + 510));
  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(JSON.stringify({
    trace_id: consume.spanContext().traceId,
    process_span_id: consume.spanContext().spanId,
    message_id: messageId,
  }) + '\n');
  process.exit(failed > 0 ? 1 : 0);
}

const t0 = Date.now() - Number(args['minutes-ago']) * 60000;
const submit = tracer.startSpan('POST /api/orders', {
  kind: SpanKind.SERVER,
  startTime: new Date(t0),
  attributes: {
    'order.id': order,
    'order.stage': 'SUBMITTED',
    'order.step.status': 'OK',
    'http.request.method': 'POST',
    'http.response.status_code': 201,
  },
});
submit.setStatus({ code: SpanStatusCode.OK });
const publish = tracer.startSpan('send orders:price.calculate', {
  kind: SpanKind.PRODUCER,
  startTime: new Date(t0 + 40),
  attributes: {
    'order.id': order,
    'messaging.system': 'rabbitmq',
    'messaging.operation.type': 'send',
    'messaging.destination.name': 'orders:price.calculate',
    'messaging.rabbitmq.destination.routing_key': 'price.calculate',
    'messaging.message.id': messageId,
  },
}, trace.setSpan(context.active(), submit));
publish.end(new Date(t0 + 45));
submit.end(new Date(t0 + 60));

await provider.forceFlush();
await provider.shutdown();
process.stdout.write(JSON.stringify({
  trace_id: submit.spanContext().traceId,
  submit_span_id: submit.spanContext().spanId,
  publish_span_id: publish.spanContext().spanId,
  message_id: messageId,
}) + '\n');
process.exit(failed > 0 ? 1 : 0);
