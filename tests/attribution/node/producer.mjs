#!/usr/bin/env node
// The Node peer of tests/attribution: an application that publishes one order message with
// amqplib, instrumented by the official @opentelemetry/instrumentation-amqplib (no change to the
// instrumentation), exporting OTLP/HTTP protobuf to the gateway.  Only the application's own
// span ("checkout") carries order.id (and order.stage); the instrumentation's PRODUCER span is
// its child and carries no order.
//
//   node producer.mjs --url amqp://guest:guest@127.0.0.1:PORT/VHOST --queue Q --order ID
//                     --otlp http://127.0.0.1:PORT/v1/traces [--service NAME] [--stage S]
//                     [--hold-until FILE] [--timeout-ms N]
//
// Declares Q (durable), publishes one message to it on the default exchange (routing key Q)
// inside the app span, waits for the broker's confirm, then exports.  With --hold-until the
// spans are held (batch processor with a one-hour delay) until FILE exists, then flushed: the
// test makes the consumer's spans reach the gateway first.  Prints one JSON line on stdout when
// the message is confirmed ({"published": true, trace_id, span_id}) and one when the spans are
// exported ({"exported": true}).  Exit status: 0 done, 1 failure, 2 bad arguments.
//
// The packages come from tests/interop/node_modules (tests/interop/setup installs them).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(new URL('../../interop/package.json', import.meta.url));

function usage(message) {
  process.stderr.write(`producer: ${message}\n` +
    'usage: node producer.mjs --url URL --queue Q --order ID --otlp URL [--service NAME] ' +
    '[--stage S] [--hold-until FILE] [--timeout-ms N]\n');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: 'string' },
      queue: { type: 'string' },
      order: { type: 'string' },
      otlp: { type: 'string' },
      service: { type: 'string', default: 'node-shop' },
      stage: { type: 'string', default: 'SUBMITTED' },
      'hold-until': { type: 'string', default: '' },
      'timeout-ms': { type: 'string', default: '30000' },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
if (!args.url || !args.queue || !args.order || !args.otlp) {
  usage('--url, --queue, --order and --otlp are required');
}

// The SDK first, then the instrumentation, then amqplib through require() so that the
// instrumentation's require hook patches it.
const { trace } = require('@opentelemetry/api');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const hold = args['hold-until'] !== '';
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': args.service }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: args.otlp }), {
    // Holding: nothing leaves before forceFlush(); else a short delay, as a test wants.
    scheduledDelayMillis: hold ? 3600000 : 100,
    maxExportBatchSize: 512,
    maxQueueSize: 2048,
  })],
});
provider.register();
registerInstrumentations({ instrumentations: [new AmqplibInstrumentation()] });
const amqp = require('amqplib');

function say(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function waitForFile(path, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let conn;
try {
  conn = await amqp.connect(args.url);
  conn.on('error', (e) => process.stderr.write(`producer: connection: ${e.message}\n`));
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(args.queue, { durable: true });
  const tracer = trace.getTracer('ordertrace-attribution-peer');
  let ids;
  // The application's span: the only one that knows the order.
  await tracer.startActiveSpan('checkout', {
    attributes: { 'order.id': args.order, 'order.stage': args.stage },
  }, async (app) => {
    ids = app.spanContext();
    ch.sendToQueue(args.queue, Buffer.from(JSON.stringify({ order: args.order })),
      { persistent: true, messageId: randomBytes(8).toString('hex'),
        contentType: 'application/json' });
    await ch.waitForConfirms();
    app.end();
  });
  await ch.close();
  await conn.close();
  conn = undefined;
  say({ published: true, trace_id: ids.traceId, span_id: ids.spanId, at_ms: Date.now() });
  if (hold) await waitForFile(args['hold-until'], Number(args['timeout-ms']));
  await provider.forceFlush();
  say({ exported: true, at_ms: Date.now() });
  await provider.shutdown();
  process.exit(0);
} catch (e) {
  process.stderr.write(`producer: ${e.stack ?? e}\n`);
  try { if (conn) await conn.close(); } catch { /* already closed */ }
  process.exit(1);
}
