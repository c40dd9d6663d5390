// SqliteStore: the embedded JourneyStore, one SQLite database file (WAL mode) under --data.
// Semantics are MemoryStore's (memory_store.h), checked by store_contract_test.cc.
//
// Schema (version 2, PRAGMA user_version; PRAGMA application_id 'OTJS' marks the file ours).
// The write path is built around one random key per row where possible (order ids and span
// ids are random; every extra random-keyed index is one more b-tree search and one more dirty
// page per row); the schema comments in sqlite_store.cc say why each index exists.
//   orders      WITHOUT ROWID, PRIMARY KEY order_id (CHECK order_id <> ''); services as
//               "svc=ns;svc=ns"; written by one upsert per order.  Indexes: (order_id)
//               WHERE stuck <> 0, (order_id, last_ns, closed) WHERE closed = 0, (stage,
//               order_id), (last_ns) WHERE closed <> 0 (retention; appends).
//   spans       WITHOUT ROWID, PRIMARY KEY (order_id, span_id), so an order's spans are
//               clustered together and GetJourney reads them by key prefix and sorts by start
//               in memory; lowercase-hex ids (trace, span, parent) are stored as blobs (half
//               the bytes), anything else as text; links comma-joined.  Index: (end_ns) for
//               retention (appends).
//   milestones  WITHOUT ROWID, PRIMARY KEY (order_id, stage).
//   hops        WITHOUT ROWID, PRIMARY KEY send_span_id; written insert-first (a read and a
//               merge only when the hop exists).  Indexes: (message_id, published_ns) WHERE
//               message_id <> '', (order_id), (published_ns) WHERE open (appends).
//   counters    the orders / spans / hops totals, updated in each write transaction, so
//               Stats() does not count 10M rows.
// A file whose application_id is not ours (or another non-empty database without it), whose
// user_version is newer than this build's, or older (version 1: there is no migration, the
// error names both versions), is refused with a clear error; so is a corrupt file.  Every
// SQLite error becomes Status::Internal naming the file and SQLite's message.
//
// Durability: WAL with synchronous=NORMAL by default: a committed Write() survives a crash of
// the process; on power loss or an OS crash the last transactions (up to the last checkpoint's
// fsync) may be lost, which is acceptable for journeys (the spans' sources are the services;
// a lost batch is a gap, not corruption).  synchronous_full trades throughput for that.
// Writes: one IMMEDIATE transaction per Write(), rolled back on any error.  Prepared
// statements are cached per connection; hex ids are bound from a buffer without a copy.
// Retention deletes in chunks (1000 orders, or 10000 spans/hops, per transaction), releasing
// the writer between chunks.
//
// Thread-safety: two connections, each behind its own mutex: a writer (Write,
// EnforceRetention) and a reader (everything else).  In WAL mode readers see the last
// committed write and never wait for the writer.  GetJourney reads in one transaction (a
// consistent snapshot); ForEachActiveOrder / ForEachOpenHop read pages of 1000 rows in key
// order and call `fn` with no lock held, so writes committed meanwhile may or may not be seen.
// ForEachOrderId opens a connection of its own for one statement (a covering scan of the
// stage index, one snapshot), so it holds no lock either.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "journey/store.h"

namespace ordertrace::journey {

struct SqliteStoreOptions {
  std::string path;               // the database file; its directory must exist
  bool synchronous_full = false;  // PRAGMA synchronous=FULL; NORMAL (the WAL default) if false
  int busy_timeout_ms = 5000;     // another process holding the file (e.g. the CLI)
  int cache_mb = 64;              // page cache of the writer connection (the reader: half)
};

Result<std::unique_ptr<JourneyStore>> OpenSqliteStore(const SqliteStoreOptions& options);

}  // namespace ordertrace::journey
