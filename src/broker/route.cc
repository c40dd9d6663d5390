#include "broker/route.h"

#include <algorithm>
#include <set>

namespace ordertrace::broker {
namespace {

// An empty key has no words (RabbitMQ: "" matches the binding keys "" and "#" only).
std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> words;
  if (s.empty()) return words;
  size_t start = 0;
  for (;;) {
    const size_t dot = s.find('.', start);
    words.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return words;
}

// Iterative matching with backtracking to the latest '#': linear in practice, no recursion
// depth for hostile keys.
bool MatchWords(const std::vector<std::string_view>& pattern,
                const std::vector<std::string_view>& key) {
  size_t p = 0, k = 0;
  size_t star_p = std::string_view::npos, star_k = 0;  // the latest '#' and where it started
  while (k < key.size()) {
    if (p < pattern.size() && pattern[p] == "#") {
      star_p = p++;
      star_k = k;
    } else if (p < pattern.size() && (pattern[p] == "*" || pattern[p] == key[k])) {
      ++p;
      ++k;
    } else if (star_p != std::string_view::npos) {
      p = star_p + 1;  // let the '#' take one more word
      k = ++star_k;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == "#") ++p;
  return p == pattern.size();
}

struct Walker {
  const Snapshot& snap;
  std::set<std::string> queues;
  std::set<std::string> visited;  // exchanges, against binding loops
  bool headers = false;

  void Route(std::string_view exchange, std::string_view key) {
    if (!visited.insert(std::string(exchange)).second) return;
    if (exchange.empty()) {  // the default exchange: every queue, by its name
      if (snap.FindQueue(key) != nullptr) queues.insert(std::string(key));
      return;
    }
    const ExchangeInfo* ex = snap.FindExchange(exchange);
    if (ex == nullptr) return;
    if (ex->type == "headers") {
      headers = true;
      return;
    }
    std::vector<std::string_view> key_words;
    if (ex->type == "topic") key_words = Words(key);
    bool matched = false;
    for (const BindingInfo& b : snap.bindings) {
      if (b.source != exchange) continue;
      bool match;
      if (ex->type == "fanout") {
        match = true;
      } else if (ex->type == "topic") {
        match = MatchWords(Words(b.routing_key), key_words);
      } else {  // direct, and plugin types we do not know: exact key, the common case
        match = b.routing_key == key;
      }
      if (!match) continue;
      matched = true;
      if (b.destination_type == "exchange") {
        Route(b.destination, key);
      } else {
        queues.insert(b.destination);
      }
    }
    // Nothing bound matched: the exchange's alternate exchange takes the message.
    if (!matched && !ex->alternate_exchange.empty()) Route(ex->alternate_exchange, key);
  }
};

}  // namespace

bool TopicMatches(std::string_view binding_key, std::string_view routing_key) {
  return MatchWords(Words(binding_key), Words(routing_key));
}

Route ResolveRoute(const Snapshot& snapshot, std::string_view exchange,
                   std::string_view routing_key) {
  Route r;
  if (!exchange.empty()) {
    const ExchangeInfo* ex = snapshot.FindExchange(exchange);
    if (ex == nullptr) {
      r.kind = Route::Kind::kNoExchange;
      return r;
    }
    r.exchange_type = ex->type;
  } else {
    r.exchange_type = "direct";
  }
  Walker w{snapshot, {}, {}, false};
  w.Route(exchange, routing_key);
  r.queues.assign(w.queues.begin(), w.queues.end());
  if (!r.queues.empty()) {
    r.kind = Route::Kind::kQueues;
  } else {
    r.kind = w.headers ? Route::Kind::kHeaders : Route::Kind::kUnrouted;
  }
  return r;
}

}  // namespace ordertrace::broker
