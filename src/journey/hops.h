// OpenHops: the messages published for active orders and not processed yet ("hops"), as the
// engine tracks them between a send span and its process span:
//   - by send span id (the map), by message id (the latest open publish of it; a retried
//     publish of the same message chains the earlier one in `earlier`), and by deadline
//     (messages.processed_within + grace after the publish, a DeadlineHeap);
//   - the send spans of hops closed lately (an exporter retrying a publish span must not open
//     the hop again);
//   - the "orphans": process spans seen before their publish (out of order), keyed by message id
//     and by the span ids they name (parent, links), so the publish that arrives later finds its
//     processing at once.  The oldest are forgotten beyond capacity; memory follows the orphans
//     waiting now (a ring of `capacity` slots kept every slot's span once it had filled: about
//     60 MB at 100,000, docs/benchmarks.md "Memory under sustained load").
// The engine decides what a hop means for its order (open/late counts, deadlines); this class
// keeps the indexes consistent.
//
// Thread-safety: none; the engine calls it under its state lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "journey/deadline_heap.h"
#include "journey/known_ids.h"
#include "journey/types.h"

namespace ordertrace::journey {

class OpenHops {
 public:
  struct Hop {
    std::string order_id;
    std::string message_id;
    // An earlier open publish of the same message id (a failed publish retried), "" none: the
    // processing of the message closes them all.
    std::string earlier;
    Nanos published_ns = 0;  // the publish span's end: SetRules recomputes the deadline from it
    Nanos deadline_ns = kNoDeadline;  // heap key
    uint32_t heap_pos = kNoHeapPos;
    bool late = false;  // its deadline fired (counted in the order's late_hops)
  };
  using Map = std::unordered_map<std::string, Hop>;  // by send span id
  using Entry = Map::value_type;

  // A process span seen before its publish.
  struct Orphan {
    std::vector<std::string> keys;  // "m:<message id>", "s:<span id>"
    SpanRecord process;             // the process span
  };

  explicit OpenHops(size_t orphan_capacity) : orphan_capacity_(orphan_capacity) {}

  size_t size() const { return hops_.size(); }
  Map& all() { return hops_; }
  Entry* Find(const std::string& send_span_id);
  const Entry* Find(const std::string& send_span_id) const;

  // The open hop a process span closes: by its message id, else by its parent (the producer's
  // span, through the propagated context), else by a link.  Null when none is open.
  Entry* Match(const SpanRecord& process);

  // Adds the open hop of a send span and indexes its message id; false (and the existing
  // entry) when the send span is open already.  The caller sets the deadline (Schedule).
  std::pair<Entry*, bool> Add(const std::string& send_span_id, const std::string& order_id,
                              const std::string& message_id, Nanos published_ns);

  // The hop's deadline changed (kNoDeadline: out of the schedule).
  void Schedule(Entry* h) { heap_.Update(h); }
  void Unschedule(Entry* h) { heap_.Remove(h); }
  // The hop with the earliest deadline, null when none is scheduled.
  Entry* NextDue() const { return heap_.top(); }

  // Forgets a hop its processing closed: the message index moves to an earlier open publish
  // of the same message, if any; the send span is remembered as closed lately.
  void Close(Entry* h);
  // Forgets a hop without processing (its order's journey ended, or retention).
  void Erase(Entry* h);
  // Erase() of every hop `pred(entry)` holds for; returns how many.
  template <typename Pred>
  size_t EraseIf(Pred pred) {
    size_t n = 0;
    for (auto it = hops_.begin(); it != hops_.end();) {
      if (!pred(*it)) {
        ++it;
        continue;
      }
      Unindex(&*it);
      it = hops_.erase(it);
      ++n;
    }
    return n;
  }

  // Whether a hop of this send span was closed lately (a retried publish span).
  bool ClosedLately(const std::string& send_span_id) const {
    return closed_sends_.Contains(send_span_id);
  }

  void RememberOrphan(const SpanRecord& process);
  size_t orphans() const { return orphans_.size(); }  // waiting now
  const Orphan* FindOrphan(const SpanRecord& send) const;
  void ForgetOrphan(const SpanRecord& send);

 private:
  // Out of the message index (when it names this hop) and the schedule.
  void Unindex(Entry* h);

  Map hops_;
  DeadlineHeap<Entry> heap_;
  std::unordered_map<std::string, std::string> by_message_;  // message id → send span id
  RecentIds closed_sends_{100000};  // send spans of hops closed lately (retried publishes)
  void EraseOrphan(std::unordered_map<uint64_t, Orphan>::iterator it);

  size_t orphan_capacity_;
  std::unordered_map<uint64_t, Orphan> orphans_;  // by arrival number
  // Arrival numbers, oldest first, for eviction; a forgotten orphan's number stays until it
  // reaches the front (or a compaction), so forgetting costs no search.
  std::deque<uint64_t> orphan_order_;
  uint64_t orphan_next_ = 0;
  std::unordered_map<std::string, uint64_t> orphan_index_;  // message/parent/link key → number
  mutable std::string key_scratch_;                         // FindOrphan's key, reused
};

}  // namespace ordertrace::journey
