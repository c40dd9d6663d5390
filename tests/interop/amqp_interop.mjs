#!/usr/bin/env node
// RabbitMQ trace-context interop with the official OpenTelemetry JS instrumentation
// (@opentelemetry/instrumentation-amqplib over amqplib): the other implementation for
// tests/rabbitmq/rabbitmq_test.cc (Interop cases).
//
//   node amqp_interop.mjs produce --url amqp://guest:guest@127.0.0.1:PORT --queue Q [--order ID]
//     publishes one message to Q (default exchange, confirm channel) inside an app span; the
//     instrumentation makes the PRODUCER span and injects its context into the headers.
//   node amqp_interop.mjs consume --url ... --queue Q [--timeout-ms N]
//     consumes one message from Q and acks it; the instrumentation makes the CONSUMER span from
//     the headers.
//
// Prints, as JSON on stdout, the spans the SDK recorded (in-memory exporter) and the message's
// headers as the script saw them.  Exit status: 0 done, 1 failure, 2 bad arguments.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { AmqplibInstrumentation } from '@opentelemetry/instrumentation-amqplib';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

function usage(message) {
  process.stderr.write(`amqp_interop: ${message}\n` +
    'usage: node amqp_interop.mjs produce|consume --url URL --queue Q [--order ID] ' +
    '[--timeout-ms N]\n');
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      queue: { type: 'string' },
      order: { type: 'string', default: '' },
      'timeout-ms': { type: 'string', default: '10000' },
    },
  });
} catch (e) {
  usage(e.message);
}
const mode = parsed.positionals[0];
const args = parsed.values;
if (!['produce', 'consume'].includes(mode)) usage('mode must be produce or consume');
if (!args.url || !args.queue) usage('--url and --queue are required');

// The SDK first, then the instrumentation, then amqplib through require() so that the
// instrumentation's require hook patches it.
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': `node-amqp-${mode}` }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
provider.register();
registerInstrumentations({ instrumentations: [new AmqplibInstrumentation()] });
const require = createRequire(import.meta.url);
const amqp = require('amqplib');

function spanJson(s) {
  const ctx = s.spanContext();
  const parent = s.parentSpanContext ?? null;
  return {
    name: s.name,
    kind: SpanKind[s.kind],
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: parent ? parent.spanId : (s.parentSpanId ?? ''),
    links: (s.links ?? []).map((l) => ({ trace_id: l.context.traceId, span_id: l.context.spanId })),
    attributes: s.attributes,
  };
}

function headersJson(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k] = Buffer.isBuffer(v) ? v.toString() : v;
  return out;
}

async function produce(conn) {
  const ch = await conn.createConfirmChannel();
  const tracer = trace.getTracer('amqp-interop');
  await tracer.startActiveSpan('node checkout', async (app) => {
    const headers = args.order ? { 'order.id': args.order } : {};
    ch.sendToQueue(args.queue, Buffer.from(JSON.stringify({ order: args.order })),
      { headers, messageId: `node-${process.pid}` });
    await ch.waitForConfirms();
    app.end();
  });
  await ch.close();
  return {};
}

async function consume(conn) {
  const ch = await conn.createChannel();
  const timeoutMs = Number(args['timeout-ms']);
  const msg = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
    ch.consume(args.queue, (m) => {
      if (m === null) return;  // the queue was deleted
      clearTimeout(timer);
      // The instrumentation's CONSUMER span is the active one inside the callback.
      const active = trace.getSpan(context.active());
      ch.ack(m);  // ends the instrumentation's span
      resolve({ m, active: active ? active.spanContext().spanId : '' });
    }, { noAck: false }).catch(reject);
  });
  await ch.close();
  return {
    active_span_id: msg.active,
    headers: headersJson(msg.m.properties.headers),
    message_id: msg.m.properties.messageId ?? '',
    body: msg.m.content.toString(),
  };
}

let conn;
try {
  conn = await amqp.connect(args.url);
  // A channel closed by the broker (e.g. no such queue) also emits 'error' on the connection.
  conn.on('error', (e) => process.stderr.write(`amqp_interop: connection: ${e.message}\n`));
  const extra = mode === 'produce' ? await produce(conn) : await consume(conn);
  await conn.close();
  await provider.forceFlush();
  const spans = exporter.getFinishedSpans().map(spanJson);
  process.stdout.write(JSON.stringify({ mode, spans, ...extra }) + '\n');
  await provider.shutdown();
  process.exit(0);
} catch (e) {
  process.stderr.write(`amqp_interop: ${e.stack ?? e}\n`);
  try { if (conn) await conn.close(); } catch { /* already closed */ }
  process.exit(1);
}
