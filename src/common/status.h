// Status and Result<T>: how every layer reports failure. No exceptions cross
// a layer boundary; errno and HTTP codes are translated once, in each driver.
// Messages are lowercase, name the object concerned, and carry a hint where
// the fix is known. Thread-safety: values, freely copyable.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace sb {

enum class StatusCode {
  kOk = 0,
  kNotFound,
  kAlreadyExists,
  kCorruption,
  kIoError,
  kInvalidArgument,
  kUnavailable,       // transient: the only code the retry wrapper retries
  kCancelled,
  kPermissionDenied,  // credentials or privileges
  kFailedPrecondition,
  kInternal,
};

const char* StatusCodeName(StatusCode code);

// A finer cause under a code, for the few places where callers must tell
// errors apart without reading their text.
enum class StatusDetail {
  kNone = 0,
  kNotEncrypted,      // plain data where a key was given: encrypted data was required
  kNotAuthenticated,  // a manifest whose MAC is missing or wrong for the key given
  kNoAnswer,          // a request was sent but no answer came: whether it took effect is unknown
  kSlotInUse,         // a replication slot another process streams from
  kWalRemoved,        // WAL asked for is no longer on the server (a chain break)
  kUsage,             // a command line that cannot run as given (the CLI exits 2)
};

// Which outside party an error came from, so that health counts it where it
// belongs (a full disk under the repository is a storage error even when the
// backup that hit it was reading PostgreSQL). Set by the storage layer on
// every error it returns; kept by WithContext.
enum class ErrorSource {
  kUnknown = 0,
  kStorage,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code_ == StatusCode::kAlreadyExists; }
  bool IsRetryable() const { return code_ == StatusCode::kUnavailable; }

  StatusDetail detail() const { return detail_; }
  Status WithDetail(StatusDetail detail) const {
    Status s = *this;
    s.detail_ = detail;
    return s;
  }

  ErrorSource source() const { return source_; }
  Status WithSource(ErrorSource source) const {
    Status s = *this;
    if (!ok()) s.source_ = source;
    return s;
  }

  // "prefix: message", keeping the code, detail and source. For adding what was being done.
  Status WithContext(const std::string& prefix) const {
    if (ok()) return *this;
    Status s(code_, prefix + ": " + message_);
    s.detail_ = detail_;
    s.source_ = source_;
    return s;
  }
  std::string ToString() const { return ok() ? "ok" : message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  StatusDetail detail_ = StatusDetail::kNone;
  ErrorSource source_ = ErrorSource::kUnknown;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(StatusCode code, std::string message) : status_(code, std::move(message)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace sb

#define SB_CONCAT_INNER(a, b) a##b
#define SB_CONCAT(a, b) SB_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::sb::Status sb_status_ = (expr);        \
    if (!sb_status_.ok()) return sb_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(SB_CONCAT(sb_result_, __LINE__), lhs, expr)
