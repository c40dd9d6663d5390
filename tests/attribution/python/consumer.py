"""The Python peer of tests/attribution: a consumer written with pika, instrumented by the
OpenTelemetry contrib package opentelemetry-instrumentation-pika (no change to it), exporting
OTLP/HTTP protobuf to the gateway.  It knows nothing of orders: it sets no attribute at all.

    .venv/bin/python consumer.py --url amqp://guest:guest@127.0.0.1:PORT/VHOST --queue Q
                                 --otlp http://127.0.0.1:PORT/v1/traces
                                 [--service NAME] [--timeout-s N]

Declares Q (durable, as the producers do), consumes one message, acks it, then exports its
spans (the instrumentation's CONSUMER span is the parent of nothing: it wraps the callback).
Prints JSON lines on stdout: {"ready": true} once it consumes, {"consumed": true, message_id,
exported_at_ms} when done.
Exit status: 0 done, 1 failure or no message within the timeout, 2 bad arguments.

The packages come from tests/attribution/python/.venv (tests/attribution/setup installs them
from requirements.txt).
"""

import argparse
import json
import sys
import time

import pika
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.pika import PikaInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--otlp", required=True, help="the gateway's OTLP/HTTP traces URL")
    parser.add_argument("--service", default="py-consumer")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    args = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": args.service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp), schedule_delay_millis=100))
    trace.set_tracer_provider(provider)
    # Before the first channel: the instrumentor patches the channels a connection opens.
    PikaInstrumentor().instrument(tracer_provider=provider)

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue=args.queue, durable=True)
    got = {}

    def on_message(ch, method, properties, body):
        got["message_id"] = properties.message_id or ""
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.stop_consuming()

    def on_timeout():
        channel.stop_consuming()

    channel.basic_consume(queue=args.queue, on_message_callback=on_message, auto_ack=False)
    print(json.dumps({"ready": True}), flush=True)
    connection.call_later(args.timeout_s, on_timeout)
    channel.start_consuming()
    connection.close()
    if "message_id" not in got:
        print(f"consumer: no message on {args.queue} within {args.timeout_s} s", file=sys.stderr)
        provider.shutdown()
        return 1
    provider.force_flush()
    print(json.dumps({"consumed": True, "message_id": got["message_id"],
                      "exported_at_ms": int(time.time() * 1000)}), flush=True)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
