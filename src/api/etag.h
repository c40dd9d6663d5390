// ETags and conditional GETs (RFC 9110 8.8.3, 13.1.2) for the API's JSON answers that a client
// polls (the web UI every few seconds): summary, rules, the order list, one order, flow, kpi.
//
//   const std::string etag = MakeETag({engine.revision(), broker_generation}, req);
//   if (AnswerNotModified(req, res, etag)) return;  // 304, no body: nothing it shows changed
//   ... build the body ...                           // res carries ETag + Cache-Control now
//
// The ETag is opaque: a hash of the revision parts the answer depends on (Engine::revision(),
// BrokerView::generation(), the rules' generation ...), the request's path and query (another
// order or filter is another answer) and a number drawn once per process (a restarted gateway
// counts revisions from 0 again: its tags never match an older process's).  Read the parts BEFORE
// reading the data the answer shows: the answer is then at least as new as its tag.  Parts
// that change without the data changing only cost a full answer; the caller must include every
// part whose change changes the answer.
//
// Thread-safety: pure functions (the per-process number is initialised once, thread-safely).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "net/http_server.h"

namespace ordertrace::api {

// A strong entity tag, quoted as it goes into the ETag header: "\"<32 hex>\"".  `target` is
// what names the answer besides the parts: the request's path and query (another order, another
// filter: another answer); the second form takes them from `req`.
std::string MakeETag(std::initializer_list<uint64_t> parts, std::string_view target);
std::string MakeETag(std::initializer_list<uint64_t> parts, const net::HttpRequest& req);

// Whether an If-None-Match header value matches `etag` (quoted, as MakeETag makes it): "*", or
// a comma-separated list of entity tags, each maybe weak (W/"..."), compared weakly (the
// opaque parts equal).  An empty or malformed header matches nothing.
bool IfNoneMatchMatches(std::string_view if_none_match, std::string_view etag);

// Adds `ETag: etag` and `Cache-Control: no-cache` (a client revalidates every time) to `res`;
// when the request's If-None-Match matches, also makes `res` a 304 without body or Content-Type
// and returns true: the handler is done.  Call it before building the body.
bool AnswerNotModified(const net::HttpRequest& req, net::HttpResponse& res, std::string_view etag);

}  // namespace ordertrace::api
