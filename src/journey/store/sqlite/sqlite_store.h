// SqliteStore: the embedded JourneyStore, one SQLite database file (WAL mode) under --data.
// Semantics are those of store/semantics.h, checked by store_contract_test.cc.  The folder:
// db.h (the SQLite connection and statement wrapper), schema.h (tables, rows), this store.
//
// Schema (version 4, PRAGMA user_version; PRAGMA application_id 'OTJS' marks the file ours;
// an older file is upgraded in place when opened; schema.cc has the DDL and the migrations):
//   orders      WITHOUT ROWID, PRIMARY KEY order_id (CHECK order_id <> ''); services as
//               "svc=ns;svc=ns"; partner and partner_ns (version 2); last_bucket (version 4:
//               schema.h LastBucket).  Indexes: (order_id) WHERE stuck <> 0, (order_id) WHERE
//               closed = 0, (stage, order_id), (last_bucket) for retention, (partner, order_id)
//               WHERE partner <> '' for ?partner=, (first_ns) for the KPIs' scan; for the list's
//               sorts, WHERE stuck <> 0: (stuck_since_ns, order_id, stuck), (stage,
//               stuck_since_ns, order_id, stuck), (stage_ns, order_id, stuck).  A row's update
//               sets the columns no index holds and sets the whole row only when an indexed one
//               changed (sqlite_store.cc PutOrders).
//   spans       a rowid table (version 4; before, WITHOUT ROWID clustered by order): rows
//               appended in arrival order; lowercase-hex ids (trace, span, parent) are stored as
//               blobs (half the bytes), anything else as text; links comma-joined.  Indexes:
//               UNIQUE (order_id, span_id) spans_key (the key: a span written twice is kept
//               once; GetJourney's lookup), (end_ns) for retention and the recent spans,
//               (trace_id) for ?trace_id=.
//   milestones  WITHOUT ROWID, PRIMARY KEY (order_id, stage).  Index: (at_ns) (version 3).
//   hops        a rowid table (span ids are random: rows appended in arrival order keep an
//               order's hops together and the random-keyed part small); UNIQUE
//               (send_span_id).  Indexes: (message_id, published_ns) WHERE message_id <> '',
//               (order_id), (published_ns) (version 3); WHERE open (published_ns <> 0 AND
//               processed_ns = 0), by publish time from version 4 on: (published_ns,
//               send_span_id) for Recover, (queue, published_ns) for ?queue=.
//   episodes    (version 3) stuck episodes, WITHOUT ROWID, PRIMARY KEY (order_id, flagged_ns);
//               a clear updates the order's rows with cleared_ns = 0.  Indexes for the KPIs'
//               scan: (flagged_ns), and since version 4 (cleared_ns) WHERE cleared_ns <> 0 and
//               (flagged_ns) WHERE cleared_ns = 0 (the open ones), both appended to by flags and
//               clears; version 3 had one (cleared_ns) index, where every flag inserted a 0 key
//               at a random place.
//   counters    the orders / spans / hops totals, updated in each write transaction, so
//               Stats() does not count 10M rows.
// A file whose application_id is not ours (or another non-empty database without it), or
// whose user_version is newer than this build's, is refused with a clear error; so is a
// corrupt file.  Every SQLite error becomes Status::Internal naming the file and SQLite's
// message.
//
// Writes: one IMMEDIATE transaction per Write(), rolled back on any error.  Prepared
// statements are cached per connection.  Retention deletes in chunks (1000 orders, or 10000
// spans/hops, per transaction), releasing the writer between chunks.  Durability: WAL with
// synchronous=NORMAL (the default; synchronous_full for FULL): a commit survives the process's
// crash (it is in the WAL file, written before COMMIT returns), a power loss may take the last
// commits back; the facts come from the durable ingest log, which replays what the store lost
// (facts are idempotent).  Checkpoints every 64 MB of WAL (wal_autocheckpoint 16384 pages), on
// the writer's thread, the WAL cut back to 64 MB after (journal_size_limit); docs/benchmarks.md
// ("The journeys write path") has the measurements behind these and the index set.
//
// Thread-safety: two connections, each behind its own mutex: a writer (Write,
// EnforceRetention) and a reader (everything else).  In WAL mode readers see the last
// committed write and never wait for the writer.  GetJourney reads in one transaction (a
// consistent snapshot); ForEachActiveOrder / ForEachOpenHop read pages of 1000 rows in key
// (order id; publish time) order and call `fn` with no lock held, so writes committed meanwhile may
// or may not be seen; the ForEach...Since scans page the same way on their time index ((time, key)
// > last row).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "journey/store/store.h"

namespace ordertrace::journey {

struct SqliteStoreOptions {
  std::string path;               // the database file; its directory must exist
  bool synchronous_full = false;  // PRAGMA synchronous=FULL; NORMAL (the WAL default) if false
  int busy_timeout_ms = 5000;     // another process holding the file (e.g. the CLI)
  int cache_mb = 64;              // page cache of the writer connection (the reader: half)
};

Result<std::unique_ptr<JourneyStore>> OpenSqliteStore(const SqliteStoreOptions& options);

}  // namespace ordertrace::journey
