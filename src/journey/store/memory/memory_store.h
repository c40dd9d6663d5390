// MemoryStore: the in-memory JourneyStore, for unit tests and as the reference for the other
// implementations (store_contract_test.cc runs the same suite on each).  Plain ordered maps
// under one mutex; nothing is persisted.  It keeps the merge rules of store/semantics.h.
//
// Thread-safety: all methods may be called concurrently (one mutex); the ForEach callbacks run
// on a copy, outside the lock.
#pragma once

#include <memory>

#include "journey/store/store.h"

namespace ordertrace::journey {

std::unique_ptr<JourneyStore> NewMemoryStore();

}  // namespace ordertrace::journey
