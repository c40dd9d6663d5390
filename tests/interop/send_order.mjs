#!/usr/bin/env node
// Sends one order's spans through the OpenTelemetry JS SDK's OTLP/HTTP protobuf exporter, with
// timestamps in the past: the CRM accepted the order (order.stage=SUBMITTED) and published the
// price-calculation message to RabbitMQ, and nothing happened since.  With the default rules
// the gateway must flag the order at once (the MES never picked it up; the message was never
// processed).  Used by tests/journeys/e2e_test.cc.
//
//   node send_order.mjs --endpoint http://127.0.0.1:PORT --order ID [--minutes-ago N]
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
    },
  }).values;
} catch (e) {
  process.stderr.write(`send_order: ${e.message}\n`);
  process.exit(2);
}
if (!args.endpoint || !args.order) {
  process.stderr.write('usage: node send_order.mjs --endpoint URL --order ID [--minutes-ago N]\n');
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
  resource: resourceFromAttributes({ 'service.name': 'crm', 'service.namespace': 'orders' }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('ordertrace-e2e');

const order = args.order;
const t0 = Date.now() - Number(args['minutes-ago']) * 60000;
const messageId = `msg-${order}`;
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
