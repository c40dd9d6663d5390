// KeyRuleTable: the rule for an attribute key (pseudonymise, drop, never touch, or scan the
// value), looked up once for every attribute of every span on the receive path.
//
// Why not std::unordered_map<std::string, ...>: with libstdc++'s std::hash (_Hash_bytes over the
// whole key) and its bucket walk, the lookups took 16 ns each, about 260 ns a span of the ingest
// workload (perf, bench/redact_bench.cc); this table hashes three 8-byte loads and the length
// (short_hash.h) and probes one flat array (open addressing, load at most 1/2), a few ns a lookup.
//
// Thread-safety: immutable after the inserts; Find may run concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ordertrace::redact {

// The rule for an attribute key.
enum class KeyRule : uint8_t { kScan, kSafe, kDrop, kPseudonymise };

class KeyRuleTable {
 public:
  // Adds `key` with `rule`, or sets its rule when it is there already; returns the rule it had
  // (kScan when it was not there).
  KeyRule Set(std::string_view key, KeyRule rule);
  // The rule of `key`, kScan when it has none.
  KeyRule Find(std::string_view key) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string key;
    KeyRule rule;
  };
  // A slot of the open-addressing array: the key's full hash and the entry (index + 1; 0 empty).
  struct Slot {
    uint64_t hash = 0;
    uint32_t entry = 0;
    uint32_t size = 0;
  };
  void Rehash(size_t slots);
  std::vector<Entry> entries_;
  std::vector<Slot> slots_;
  // Bit n set: a key of n bytes is in the table (n < 64); most keys looked up are not, and most
  // of those are told by their length alone.
  uint64_t sizes_ = 0;
  bool long_keys_ = false;  // a key of 64 bytes or more is in the table
};

}  // namespace ordertrace::redact
