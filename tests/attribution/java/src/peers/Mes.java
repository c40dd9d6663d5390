// The Java peer of tests/attribution: a "third-party MES" written with the RabbitMQ Java client
// (com.rabbitmq:amqp-client) and nothing of OpenTelemetry.  It is traced only by the
// OpenTelemetry Java agent attached with -javaagent and configured by OTEL_* variables
// (tests/attribution/README.md); it knows nothing of orders and sets no attribute.
//
//   java -javaagent:target/agent/opentelemetry-javaagent.jar -cp 'target/classes:target/lib/*'
//        peers.Mes --uri amqp://guest:guest@127.0.0.1:PORT/VHOST --queue Q
//        [--exchange mes --routing-key price.calculated --out-queue Q2] [--timeout-s N]
//
// Declares Q (durable, as the producers do), consumes one message and, inside the delivery
// callback (so the agent's consumer span is the parent), publishes its own message to the
// direct exchange --exchange with --routing-key, bound to --out-queue; then acks and exits.
// Without --exchange it only consumes.  Prints JSON lines on stdout: {"ready": true} once it
// consumes, {"consumed": true, ...} when done.  The agent
// exports what is left at JVM exit.  Exit status: 0 done, 1 failure or no message in time,
// 2 bad arguments.
package peers;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DeliverCallback;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

public final class Mes {
  private Mes() {}

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < argv.length; i += 2) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        usage("bad argument '" + argv[i] + "'");
      }
      a.put(argv[i].substring(2), argv[i + 1]);
    }
    if (!a.containsKey("uri") || !a.containsKey("queue")) usage("--uri and --queue are required");
    return a;
  }

  private static void usage(String message) {
    System.err.println("mes: " + message);
    System.err.println("usage: peers.Mes --uri URI --queue Q [--exchange E --routing-key K"
        + " --out-queue Q2] [--timeout-s N]");
    System.exit(2);
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = parse(argv);
    String queue = a.get("queue");
    String exchange = a.getOrDefault("exchange", "");
    String routingKey = a.getOrDefault("routing-key", "");
    String outQueue = a.getOrDefault("out-queue", "");
    long timeoutSeconds = Long.parseLong(a.getOrDefault("timeout-s", "30"));

    ConnectionFactory factory = new ConnectionFactory();
    factory.setUri(a.get("uri"));
    int code = 1;
    try (Connection connection = factory.newConnection("ordertrace-attribution-mes")) {
      Channel channel = connection.createChannel();
      channel.queueDeclare(queue, true, false, false, null);
      if (!exchange.isEmpty()) {
        channel.exchangeDeclare(exchange, "direct", true);
        if (!outQueue.isEmpty()) {
          channel.queueDeclare(outQueue, true, false, false, null);
          channel.queueBind(outQueue, exchange, routingKey);
        }
        channel.confirmSelect();
      }
      CountDownLatch done = new CountDownLatch(1);
      AtomicReference<String> consumed = new AtomicReference<>("");
      AtomicReference<String> published = new AtomicReference<>("");
      AtomicReference<Exception> failure = new AtomicReference<>();
      DeliverCallback onDelivery = (tag, delivery) -> {
        try {
          String id = delivery.getProperties().getMessageId();
          consumed.set(id == null ? "" : id);
          if (!exchange.isEmpty()) {
            String messageId = UUID.randomUUID().toString();
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .messageId(messageId).contentType("application/json").deliveryMode(2).build();
            channel.basicPublish(exchange, routingKey, props,
                "{\"price\": 42}".getBytes(StandardCharsets.UTF_8));
            channel.waitForConfirmsOrDie(10000);
            published.set(messageId);
          }
          channel.basicAck(delivery.getEnvelope().getDeliveryTag(), false);
        } catch (Exception e) {
          failure.set(e);
        } finally {
          done.countDown();
        }
      };
      channel.basicConsume(queue, false, onDelivery, tag -> done.countDown());
      System.out.println("{\"ready\": true}");
      System.out.flush();
      if (!done.await(timeoutSeconds, TimeUnit.SECONDS)) {
        System.err.println("mes: no message on " + queue + " within " + timeoutSeconds + " s");
      } else if (failure.get() != null) {
        System.err.println("mes: " + failure.get());
      } else {
        System.out.println("{\"consumed\": true, \"message_id\": \"" + consumed.get()
            + "\", \"published_message_id\": \"" + published.get() + "\"}");
        code = 0;
      }
    }
    // The agent's shutdown hook exports the spans still queued.
    System.exit(code);
  }
}
