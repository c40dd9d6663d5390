// The journey store's tables in SQLite: the schema (its DDL, version and application id, and
// the check that a file is ours at a version this build reads), the column lists, and how a
// journey record maps onto a row and back.  The layout is described in sqlite_store.h.
//
// Thread-safety: functions on a Db the caller holds (see db.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "journey/store/sqlite/db.h"
#include "journey/store/store.h"
#include "journey/types.h"

namespace ordertrace::journey::sqlite {

// 1: the first; 2: orders.partner, orders.partner_ns and their index; 3: the episodes table and
// the time indexes of the flow and KPI scans; 4: spans a rowid table keyed by the unique index
// spans_key, the open hops' indexes by publish time, and the episodes' index on cleared_ns split
// by state (ended ones by cleared_ns, ongoing ones by flagged_ns: a flag appends to both,
// schema.cc kVersion4Episodes); 5: the verdict log (verdict_log.h).  An older file is upgraded
// in place when opened.
inline constexpr int kSchemaVersion = 5;
inline constexpr int32_t kApplicationId = 0x4F544A53;  // "OTJS"

// orders.last_bucket (version 4): last_ns >> kLastBucketShift (~17 s), the key of orders_last
// (retention's index), so an order row's update rewrites that index entry only when its last
// span moves it into a later bucket, not with every span.  Retention asks for
// LastBucketAtMost(cutoff) AND last_ns < cutoff: the index narrows, last_ns decides.
inline constexpr int kLastBucketShift = 34;
inline int64_t LastBucket(Nanos last_ns) { return last_ns >> kLastBucketShift; }
inline std::string LastBucketAtMost(std::string_view param) {
  return "last_bucket <= (" + std::string(param) + " >> " + std::to_string(kLastBucketShift) + ")";
}

// Checks the file is ours (or empty: creates the schema in WAL mode, `*created` = true) and
// at a version this build reads (an older one is upgraded, in one transaction); a foreign, newer
// or unknown file is refused with a clear error.
Status PrepareSchema(Db& db, bool* created);

// Column lists, in the order the Bind and Read functions below use.
inline constexpr const char* kOrderCols =
    "order_id, stage, stage_start_ns, stage_ns, first_ns, last_ns, last_heartbeat_ns, services, "
    "last_service, spans, open_hops, closed, stuck, stuck_since_ns, deadline_ns, "
    "expected_service, summary, partner, partner_ns";
inline constexpr const char* kSpanCols =
    "order_id, span_id, trace_id, parent_span_id, service, name, start_ns, end_ns, flags, error, "
    "stage, message_id, exchange, routing_key, queue, links";
inline constexpr const char* kMilestoneCols = "order_id, stage, at_ns, service, trace_id, span_id";
inline constexpr const char* kHopCols =
    "send_span_id, order_id, send_trace_id, send_service, message_id, exchange, routing_key, "
    "queue, published_ns, processed_ns, process_service, process_span_id, process_trace_id";
inline constexpr const char* kEpisodeCols =
    "order_id, flagged_ns, stage, kind, expected_service, due_ns, cleared_ns";

// `prefix` followed by a column list: Cols("SELECT ", kHopCols).
inline std::string Cols(std::string_view prefix, const char* cols) {
  return std::string(prefix) + cols;
}

// The SELECT of SqliteStore::ListOrders for `query`'s filters and sort, with named parameters
// :cursor and :key (the position), :s0.. (stages), :v0.. (services), :p0.. (partners), :q0..
// (queues), :trace, :message and :limit; and the count of every match (no position, no limit).
// A partner filter reads the partial index orders_partner (INDEXED BY: without statistics
// SQLite would rather walk the stage or stuck index in order_id order, a scan of every order in
// that stage for one partner's few).
std::string ListOrdersSql(const OrderQuery& query);
std::string CountOrdersSql(const OrderQuery& query);
// Binds the named parameters of either statement (all but :limit) from `query`.
void BindOrderQuery(Stmt& s, const OrderQuery& query);

// Binds parameters ?1.. in column order; reads columns 0.. in column order.
void BindOrder(Stmt& s, const OrderRow& o);
Status ReadOrder(const Db& db, const Stmt& s, OrderRow* o);  // errors on a malformed row
void BindSpan(Stmt& s, const SpanRecord& r);
SpanRecord ReadSpan(const Stmt& s);
void BindMilestone(Stmt& s, const Milestone& m);
Milestone ReadMilestone(const Stmt& s);
void BindHop(Stmt& s, const Hop& h);
Hop ReadHop(const Stmt& s);
void BindEpisode(Stmt& s, const StuckEpisode& e);
StuckEpisode ReadEpisode(const Stmt& s);

}  // namespace ordertrace::journey::sqlite
