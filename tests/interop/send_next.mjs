#!/usr/bin/env node
// The order moves on: the MES, through the OpenTelemetry JS SDK's OTLP/HTTP protobuf exporter,
// processes the price-calculation message send_order.mjs published (msg-<order>) and reaches
// PRICE_CALCULATED, stamped now.  A stuck order from send_order.mjs is cleared by it (the
// gateway then resolves its alert).  Used by tests/alerting/alertmanager_e2e_test.cc.
//
//   node send_next.mjs --endpoint http://127.0.0.1:PORT --order ID
//
// Exit status: 0 when the spans were exported, 1 when the export failed, 2 on bad arguments.
import { parseArgs } from 'node:util';
import { context, diag, DiagLogLevel, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

let args;
try {
  args = parseArgs({ options: { endpoint: { type: 'string' }, order: { type: 'string' } } }).values;
} catch (e) {
  process.stderr.write(`send_next: ${e.message}\n`);
  process.exit(2);
}
if (!args.endpoint || !args.order) {
  process.stderr.write('usage: node send_next.mjs --endpoint URL --order ID\n');
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
  resource: resourceFromAttributes({ 'service.name': 'mes', 'service.namespace': 'orders' }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('ordertrace-e2e');

const order = args.order;
const t0 = Date.now() - 2000;
const consume = tracer.startSpan('orders process', {
  kind: SpanKind.CONSUMER,
  startTime: new Date(t0),
  attributes: {
    'order.id': order,
    'messaging.system': 'rabbitmq',
    'messaging.operation.type': 'process',
    'messaging.destination.name': 'orders:price.calculate',
    'messaging.rabbitmq.destination.routing_key': 'price.calculate',
    'messaging.message.id': `msg-${order}`,
  },
});
const calculated = tracer.startSpan('calculate price', {
  kind: SpanKind.INTERNAL,
  startTime: new Date(t0 + 10),
  attributes: { 'order.id': order, 'order.stage': 'PRICE_CALCULATED', 'order.step.status': 'OK' },
}, trace.setSpan(context.active(), consume));
calculated.setStatus({ code: SpanStatusCode.OK });
calculated.end(new Date(t0 + 500));
consume.setStatus({ code: SpanStatusCode.OK });
consume.end(new Date(t0 + 510));

await provider.forceFlush();
await provider.shutdown();
process.exit(failed > 0 ? 1 : 0);
