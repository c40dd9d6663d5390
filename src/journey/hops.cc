#include "journey/hops.h"

namespace ordertrace::journey {

OpenHops::Entry* OpenHops::Find(const std::string& send_span_id) {
  auto it = hops_.find(send_span_id);
  return it == hops_.end() ? nullptr : &*it;
}

const OpenHops::Entry* OpenHops::Find(const std::string& send_span_id) const {
  auto it = hops_.find(send_span_id);
  return it == hops_.end() ? nullptr : &*it;
}

OpenHops::Entry* OpenHops::Match(const SpanRecord& r) {
  if (!r.message_id.empty()) {
    auto m = by_message_.find(r.message_id);
    if (m != by_message_.end()) {
      if (Entry* h = Find(m->second)) return h;
    }
  }
  if (!r.parent_span_id.empty()) {
    if (Entry* h = Find(r.parent_span_id)) return h;
  }
  for (const std::string& link : r.links) {
    if (Entry* h = Find(link)) return h;
  }
  return nullptr;
}

std::pair<OpenHops::Entry*, bool> OpenHops::Add(const std::string& send_span_id,
                                                const std::string& order_id,
                                                const std::string& message_id, Nanos published_ns) {
  auto [it, inserted] = hops_.try_emplace(send_span_id);
  if (!inserted) return {&*it, false};
  Hop& h = it->second;
  h.order_id = order_id;
  h.message_id = message_id;
  h.published_ns = published_ns;
  if (!message_id.empty()) {
    // A publish of a message id already open (a retried publish) chains the earlier one.
    auto [m, fresh] = by_message_.try_emplace(message_id, send_span_id);
    if (!fresh && m->second != send_span_id) {
      if (hops_.count(m->second)) h.earlier = m->second;
      m->second = send_span_id;
    }
  }
  return {&*it, true};
}

void OpenHops::Close(Entry* h) {
  const Hop& oh = h->second;
  closed_sends_.Add(h->first);
  if (!oh.message_id.empty()) {
    // The index names the latest open publish of the message: only this hop's entry goes
    // (to an earlier open publish of the same message, if any).
    auto m = by_message_.find(oh.message_id);
    if (m != by_message_.end() && m->second == h->first) {
      if (!oh.earlier.empty() && hops_.count(oh.earlier)) {
        m->second = oh.earlier;
      } else {
        by_message_.erase(m);
      }
    }
  }
  heap_.Remove(h);
  hops_.erase(h->first);
}

void OpenHops::Erase(Entry* h) {
  Unindex(h);
  hops_.erase(h->first);
}

void OpenHops::Unindex(Entry* h) {
  const std::string& message_id = h->second.message_id;
  auto m = message_id.empty() ? by_message_.end() : by_message_.find(message_id);
  if (m != by_message_.end() && m->second == h->first) by_message_.erase(m);
  heap_.Remove(h);
}

void OpenHops::RememberOrphan(const SpanRecord& r) {
  if (orphan_capacity_ == 0) return;
  Orphan o;
  if (!r.message_id.empty()) o.keys.push_back("m:" + r.message_id);
  if (!r.parent_span_id.empty()) o.keys.push_back("s:" + r.parent_span_id);
  for (const std::string& l : r.links) o.keys.push_back("s:" + l);
  if (o.keys.empty()) return;
  o.process = r;  // links included: the stored copy is the span as received
  // Forgotten numbers at the front go; the oldest waiting orphans too while at capacity.
  while (!orphan_order_.empty()) {
    auto it = orphans_.find(orphan_order_.front());
    if (it != orphans_.end() && orphans_.size() < orphan_capacity_) break;
    orphan_order_.pop_front();
    if (it != orphans_.end()) EraseOrphan(it);
  }
  // Numbers of forgotten orphans behind a long-waiting one: dropped once they are the most.
  if (orphan_order_.size() > 2 * orphans_.size() + 1024) {
    std::erase_if(orphan_order_, [&](uint64_t n) { return !orphans_.contains(n); });
  }
  const uint64_t n = orphan_next_++;
  for (const std::string& k : o.keys) orphan_index_[k] = n;
  orphans_.emplace(n, std::move(o));
  orphan_order_.push_back(n);
}

void OpenHops::EraseOrphan(std::unordered_map<uint64_t, Orphan>::iterator it) {
  for (const std::string& k : it->second.keys) {
    auto i = orphan_index_.find(k);
    if (i != orphan_index_.end() && i->second == it->first) orphan_index_.erase(i);
  }
  orphans_.erase(it);
}

const OpenHops::Orphan* OpenHops::FindOrphan(const SpanRecord& send) const {
  // Asked for every new send span: no key built when there is no orphan, and the keys built in
  // one reused string (two heap strings per send span before).
  if (orphan_index_.empty()) return nullptr;
  auto look = [&](const char* prefix, const std::string& id) -> const Orphan* {
    key_scratch_.assign(prefix);
    key_scratch_ += id;
    auto i = orphan_index_.find(key_scratch_);
    if (i == orphan_index_.end()) return nullptr;
    auto it = orphans_.find(i->second);
    return it == orphans_.end() ? nullptr : &it->second;
  };
  if (!send.message_id.empty()) {
    if (const Orphan* o = look("m:", send.message_id)) return o;
  }
  return look("s:", send.span_id);
}

void OpenHops::ForgetOrphan(const SpanRecord& send) {
  auto look = [&](const std::string& key) {
    auto i = orphan_index_.find(key);
    return i == orphan_index_.end() ? orphans_.end() : orphans_.find(i->second);
  };
  auto it = send.message_id.empty() ? orphans_.end() : look("m:" + send.message_id);
  if (it == orphans_.end()) it = look("s:" + send.span_id);
  if (it != orphans_.end()) EraseOrphan(it);
}

}  // namespace ordertrace::journey
