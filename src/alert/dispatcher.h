// AlertDispatcher: stuck orders in, notifications out (docs/alerting.md).
//
//   Engine ─ OnStuck/OnCleared ─► bounded queue ─► sender thread ─► sinks (Alertmanager, webhook)
//            (enqueue only; a full        │  builds each alert from the stored journey (the
//             queue is counted, never      │  diagnosis line, description, Jaeger links),
//             waited on)                   │  re-sends firing alerts every resend_interval to the
//                                          │  sinks that need it (Alertmanager), sends endsAt
//                                          │  when the order moves on, retries with backoff
//                                          └─ storm control per stage + service
//
// Storm control: when more than `storm_threshold` orders of one stage and expected service are
// flagged within `storm_window`, that group gets ONE alert (OrderStuckStorm, with the count)
// instead of an alert per order; per-order alerts already sent stay firing, new ones are held
// back (the orders stay listed by the API) until the storm calms down: no more than the
// threshold flagged within the window and no more than the threshold still stuck.  Then the
// storm alert is resolved and the orders still stuck get their own alerts.
//
// After a restart Start() rebuilds the firing set from the store (every stuck order) and
// re-sends it with the original startsAt (the order's stuck_since), so Alertmanager sees one
// continuous alert.  A queue overflow triggers the same rebuild, so nothing is lost for good.
// The sinks that do not resend (the webhook) are told only what they have not heard: with
// `notified_path` set, each firing, resolved, storm and storm-over notification they got is
// recorded there right after its delivery (notified_log.h), and after a restart an episode or
// storm recorded as notified goes to the resending sinks only; one recorded as firing that is no
// longer stuck in the store is resolved (to every sink); a storm recorded as going on is taken
// up again with its startsAt and count (and resolved at once if it calmed down meanwhile).
// Episodes already notified do not count as new flags for storm control after a restart.
//
// Thread-safety: OnStuck/OnCleared from any thread (they only take the queue's lock).  Start()
// and Stop() from one controlling thread.  Without Start(), tests drive Poll() themselves.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "alert/alert.h"
#include "alert/notified_log.h"
#include "common/metrics.h"
#include "common/worker.h"
#include "journey/diagnosis.h"
#include "journey/engine.h"
#include "journey/rules/rules.h"
#include "journey/store/store.h"

namespace ordertrace::alert {

struct DispatcherOptions {
  std::string jaeger_ui = "http://localhost:16686";  // links: {jaeger_ui}/trace/{trace_id}
  // The web UI's base ("https://gw.example/ui", config::UiLinkBase): ui_url links
  // {ui}/orders/{id}; "" when the gateway serves no UI (no ui_url).
  std::string ui;
  std::string runbook_url;  // annotation runbook_url when set
  // Firing alerts are sent again this often (must stay below Alertmanager's resolve_timeout,
  // 5m by default, or Alertmanager resolves them between two sends).
  Duration resend_interval{60000};
  size_t storm_threshold = 100;  // 0: no storm control
  Duration storm_window{60000};
  size_t queue_capacity = 100000;  // flags and clears waiting for the sender thread
  // After the first event the sender waits this long for more before sending (a burst of
  // flags from one detector pass goes out, or becomes a storm, as one).
  Duration group_wait{500};
  int max_attempts = 3;  // per batch and sink
  Duration retry_initial{500};
  Duration retry_max{5000};
  // Stop(): events still queued are sent, retries included, within this.
  Duration stop_timeout{5000};
  // The broker's view for the diagnosis (queue state of open hops, outage attribution);
  // nullptr without a broker.  Must outlive the dispatcher.
  const journey::BrokerView* broker = nullptr;
  // Where what the sinks that do not resend were told is recorded (NotifiedLog; the gateway's
  // <data_dir>/alerts-notified.log).  "": nowhere (a memory store): after a restart every stuck
  // order is notified to every sink again.  Unused without a sink that does not resend.
  std::string notified_path;
};

class AlertDispatcher : public journey::EngineListener {
 public:
  using RulesFn = std::function<std::shared_ptr<const journey::Rules>()>;

  // `store`, `clock` and `registry` must outlive the dispatcher; `registry` may be null.
  AlertDispatcher(DispatcherOptions options, std::vector<std::unique_ptr<Sink>> sinks,
                  journey::JourneyStore& store, RulesFn rules, const Clock& clock,
                  metrics::Registry* registry);
  ~AlertDispatcher() override;  // Stop()
  AlertDispatcher(const AlertDispatcher&) = delete;
  AlertDispatcher& operator=(const AlertDispatcher&) = delete;

  void OnStuck(const journey::OrderRow& row) override;
  void OnCleared(const journey::OrderRow& row) override;
  // A detector slice's flags and clears: queued under one lock, one wake-up.
  void OnVerdicts(const std::vector<journey::OrderRow>& stuck,
                  const std::vector<journey::OrderRow>& cleared) override;

  // System alerts (BrokerUnreachable), keyed by `key`: fired to every sink, re-sent while
  // firing like order alerts, resolved (endsAt) by ResolveSystem.  Firing the same key again
  // replaces the alert (its startsAt is kept).  Not rebuilt after a restart: their source
  // (the broker monitor) raises them again.  From any thread.
  void FireSystem(const std::string& key, Alert alert);
  void ResolveSystem(const std::string& key, Nanos at);

  // Alerts delivered since start, every sink (ordertrace_alerts_sent_total).  From any thread.
  uint64_t sent_total() const;

  // Starts the sender thread; its first job rebuilds the firing set from the store.
  void Start();
  // Sends what is queued (within stop_timeout) and joins the thread.  Idempotent.
  void Stop();

  // One pass on the caller's thread: queued events, storms, due re-sends, deliveries.  The
  // sender thread's loop; tests without Start() call it directly.
  void Poll();
  // Re-reads every stuck order from the store into the firing set (and drops firing orders no
  // longer stuck there); the next Poll() sends the difference.  On the sender thread at start.
  Status Rebuild();

  uint64_t dropped() const { return dropped_total_->Value(); }
  // Notifications not repeated to the sinks that do not resend after a restart.
  uint64_t not_repeated() const { return not_repeated_total_->Value(); }
  size_t firing() const { return firing_count_.load(); }  // per-order alerts firing (sent)
  size_t held() const { return held_count_.load(); }      // stuck, held back by a storm
  size_t storms() const { return storm_count_.load(); }

 private:
  struct Event {
    bool stuck = false;
    journey::OrderRow row;
  };
  struct SystemEvent {
    std::string key;
    bool fire = false;
    Alert alert;   // fire
    Nanos at = 0;  // resolve
  };
  struct SystemFiring {
    Alert alert;
    Nanos next_resend = 0;
  };
  struct Firing {
    journey::OrderRow row;
    std::string group;
    bool sent = false;  // has its own alert out (not held back by a storm)
    // The sinks that do not resend heard it firing before a restart (recorded as notified).
    bool notified = false;
    Alert alert;  // built when first sent
    Nanos next_resend = 0;
  };
  struct Group {
    std::string stage, service;
    std::deque<Nanos> flags;  // when orders were flagged, within the window
    size_t stuck = 0;         // orders of the group in the firing set
    bool storm = false;
    bool storm_sent = false;
    // The sinks that do not resend heard this storm start before a restart (recorded as
    // notified): taken up with its startsAt, not announced to them again.
    bool storm_notified = false;
    Alert storm_alert;
    size_t sent_count = 0;     // count in the last storm alert to resending sinks
    size_t webhook_count = 0;  // count in the last storm notification to the others
    Nanos next_resend = 0;
    std::string example_order_id;  // the first order of the storm
    std::string example_summary;
  };
  // What to record once every sink that does not resend has an alert (NotifiedLog).
  struct MarkAction {
    enum class Kind : uint8_t { kNone, kFiring, kResolved, kStorm, kStormEnded };
    Kind kind = Kind::kNone;
    NotifiedEpisode episode;  // kFiring, kResolved
    NotifiedStorm storm;      // kStorm, kStormEnded
  };
  struct Outgoing {
    std::vector<Alert> all;                        // events: every sink
    std::vector<MarkAction> all_marks;             // one per `all`
    std::vector<Alert> resends;                    // re-sends: sinks that resend only
    std::vector<Alert> updates;                    // storm count updates: resending sinks
    std::vector<Alert> webhook_updates;            // storm grown a lot: the other sinks
    std::vector<MarkAction> webhook_update_marks;  // one per `webhook_updates`
    void Add(Alert a, MarkAction m) {
      all.push_back(std::move(a));
      all_marks.push_back(std::move(m));
    }
    void Add(Alert a) { Add(std::move(a), MarkAction()); }
  };

  static std::string GroupKey(const std::string& stage, const std::string& service);
  static std::string ServiceOf(const journey::OrderRow& row);
  std::string SeverityOf(const journey::Rules& rules, const std::string& stage) const;
  void Flag(const journey::OrderRow& row, Nanos now, Outgoing* out);
  void Clear(const std::string& order_id, Nanos now, Outgoing* out);
  // Builds the alert from the stored journey; refreshes `*flagged` from the store.
  Alert OrderAlert(journey::OrderRow* flagged, const journey::Rules& rules, Nanos now);
  Alert StormAlert(const Group& g, const journey::Rules& rules) const;
  void StartStorm(Group* g, Nanos now);
  // `delivered(begin, end)`: alerts [begin, end) were delivered (a 2xx).
  void Deliver(Sink& sink, const std::vector<Alert>& alerts,
               const std::function<void(size_t, size_t)>& delivered = {});
  // The marks: loaded once (by the first Rebuild), recorded after deliveries, compacted.
  void LoadMarks();
  MarkAction FiringMark(const Firing& f) const;
  MarkAction StormMark(const Group& g, size_t count) const;
  MarkAction StormEndedMark(const Group& g);
  void Record(const MarkAction& m);
  void CompactMarks(bool always);
  Alert EndedAlert(const NotifiedEpisode& e, const journey::Rules& rules, Nanos now) const;
  // One pass of the sender thread: the group wait when flags are queued, then Poll().
  void Pass();
  bool stopping() const;
  void UpdateGauges();

  DispatcherOptions options_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  journey::JourneyStore& store_;
  RulesFn rules_;
  const Clock& clock_;

  // The queue (OnStuck/OnCleared ↔ sender).
  mutable std::mutex mu_;
  std::deque<Event> queue_;
  std::deque<SystemEvent> system_queue_;
  bool stop_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  std::atomic<bool> resync_{false};
  bool started_ = false;

  // Sender-thread state.
  std::unordered_map<std::string, Firing> firing_;
  std::map<std::string, Group> groups_;
  std::vector<std::string> pending_fire_;  // flagged, not sent yet
  std::map<std::string, SystemFiring> system_firing_;
  // What the sinks that do not resend were told and not yet told has ended (marks_ mirrors it
  // on disk); episodes recorded as firing that Rebuild found no longer stuck, resolved by the
  // next Poll(); storms recorded as going on, taken up again by the next Poll().
  std::unique_ptr<NotifiedLog> marks_;  // null: no notified_path or no such sink
  bool marks_loaded_ = false;
  size_t non_resending_ = 0;  // sinks that do not resend
  NotifiedState notified_;
  std::vector<NotifiedEpisode> ended_marks_;
  bool restore_storms_ = false;
  bool mark_error_logged_ = false;  // this pass
  bool compact_failed_ = false;     // the last compaction failed (and was logged)

  std::atomic<size_t> firing_count_{0}, held_count_{0}, storm_count_{0};

  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Counter* dropped_total_;
  metrics::Counter* not_repeated_total_;
  metrics::Counter* marks_errors_total_;
  metrics::Family<metrics::Counter>* sent_total_;
  metrics::Family<metrics::Counter>* failed_total_;

  // Last: stopped (joined) first on destruction, while the state above still exists.
  Worker sender_;
};

}  // namespace ordertrace::alert
