// Status and Result<T>: the error currency of ordertrace.  No exceptions cross the ingest
// hot path; functions that can fail on untrusted input return one of these.  Both are
// [[nodiscard]]: a result is handled, or dropped with `(void)` and a comment saying why
// ignoring it is right.
//
// Thread-safety: value types, no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ordertrace {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is malformed (HTTP 400, gRPC INVALID_ARGUMENT)
  kResourceExhausted,  // throttled: retry later (HTTP 429, gRPC RESOURCE_EXHAUSTED + RetryInfo)
  kUnavailable,        // not serving right now, e.g. shutting down (HTTP 503, gRPC UNAVAILABLE)
  kTooLarge,           // a body or message over its configured limit (HTTP 413)
  kUnsupported,        // unsupported media type or encoding (HTTP 415)
  kNotFound,
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status ResourceExhausted(std::string m, int retry_after_ms = 1000) {
    Status s(StatusCode::kResourceExhausted, std::move(m));
    s.retry_after_ms_ = retry_after_ms;
    return s;
  }
  static Status Unavailable(std::string m, int retry_after_ms = 1000) {
    Status s(StatusCode::kUnavailable, std::move(m));
    s.retry_after_ms_ = retry_after_ms;
    return s;
  }
  static Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Milliseconds the client should wait before retrying; meaningful for kResourceExhausted
  // and kUnavailable only.
  int retry_after_ms() const { return retry_after_ms_; }

  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int retry_after_ms_ = 0;
};

const char* StatusCodeName(StatusCode code);

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kTooLarge:
      return "TOO_LARGE";
    case StatusCode::kUnsupported:
      return "UNSUPPORTED";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kInternal:
      return "INTERNAL";
  }
  return "UNKNOWN";
}

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ordertrace

// Early returns on errors (the names Abseil and LevelDB use):
//   RETURN_IF_ERROR(db.Exec(sql));                // returns the Status when it is not ok
//   ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));  // declares `s` from the Result's value, or
//                                                 // returns its Status
// Both work in functions returning Status or any Result<T>.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::ordertrace::Status ot_status_macro_ = (expr);      \
    if (!ot_status_macro_.ok()) return ot_status_macro_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  OT_ASSIGN_OR_RETURN_IMPL_(OT_STATUS_CONCAT_(ot_result_macro_, __LINE__), lhs, expr)
#define OT_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                              \
  if (!result.ok()) return result.status();          \
  lhs = std::move(result).value()
#define OT_STATUS_CONCAT_(a, b) OT_STATUS_CONCAT_INNER_(a, b)
#define OT_STATUS_CONCAT_INNER_(a, b) a##b
