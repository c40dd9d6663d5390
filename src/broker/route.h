// Where RabbitMQ routes a message: from an exchange and a routing key to the queues it reaches,
// by the bindings and the exchange type (AMQP 0-9-1):
//
//   default exchange ""  the queue named by the routing key
//   direct               queues bound with exactly the routing key
//   topic                binding keys are words separated by '.', where '*' matches exactly one
//                        word and '#' zero or more
//   fanout               every bound queue, whatever the key
//   headers              not resolved (routing depends on message headers the gateway has not
//                        seen); said so
// Exchange-to-exchange bindings are followed (loops stopped), and an exchange's alternate
// exchange (its "alternate-exchange" argument) when no binding matches; one set by a policy is
// not seen.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "broker/management.h"

namespace ordertrace::broker {

struct Route {
  enum class Kind {
    kQueues,      // the message reaches `queues` (sorted, at least one)
    kUnrouted,    // no queue is bound for this key: RabbitMQ dropped the message
    kNoExchange,  // the exchange does not exist (the publish failed with a channel error)
    kHeaders,     // a headers exchange on the way: not resolved
  };
  Kind kind = Kind::kUnrouted;
  std::vector<std::string> queues;
  std::string exchange_type;  // of the exchange published to ("direct", ...)
};

Route ResolveRoute(const Snapshot& snapshot, std::string_view exchange,
                   std::string_view routing_key);

// AMQP 0-9-1 topic matching of a routing key against a binding key.
bool TopicMatches(std::string_view binding_key, std::string_view routing_key);

}  // namespace ordertrace::broker
