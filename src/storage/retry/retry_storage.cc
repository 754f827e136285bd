#include "storage/retry/retry_storage.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"
#include "storage/instrumented/storage_stats.h"

namespace sb {

namespace {

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace

RetryStorage::RetryStorage(Storage* base, RetryOptions options)
    : base_(base),
      options_(options),
      clock_(options.clock ? options.clock : Clock::Real()),
      backoff_(options.backoff, options.seed) {
  options_.max_attempts = std::max(1, options_.max_attempts);
}

RetryStorage::RetryStorage(std::unique_ptr<Storage> base, RetryOptions options)
    : RetryStorage(base.get(), options) {
  owned_ = std::move(base);
}

std::chrono::milliseconds RetryStorage::BackoffFor(int retry) { return backoff_.Delay(retry); }

template <typename T, typename F>
T RetryStorage::Retry(const char* op, std::string_view key, F&& call) {
  for (int attempt = 1;; ++attempt) {
    T result = call();
    const Status& s = StatusOf(result);
    if (s.ok() || !s.IsRetryable() || attempt >= options_.max_attempts) {
      if (!s.ok() && s.IsRetryable() && attempt > 1) {
        return T(s.WithContext("gave up after " + std::to_string(attempt) + " attempts"));
      }
      return result;
    }
    std::chrono::milliseconds wait = BackoffFor(attempt);
    log::Warn("{}: {} \"{}\" failed (attempt {} of {}), retrying in {}ms: {}", base_->Describe(), op, key, attempt,
              options_.max_attempts, wait.count(), s.message());
    NoteCurrentRetry();  // counted under the instrumented operation, for /metrics
    clock_->SleepFor(wait);
  }
}

Status RetryStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  return Retry<Status>("put", key, [&] { return base_->Put(key, data, options); });
}

Result<std::string> RetryStorage::Get(std::string_view key) {
  return Retry<Result<std::string>>("get", key, [&] { return base_->Get(key); });
}

Result<std::string> RetryStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  return Retry<Result<std::string>>("get range of", key, [&] { return base_->GetRange(key, offset, length); });
}

Result<ObjectInfo> RetryStorage::Stat(std::string_view key) {
  return Retry<Result<ObjectInfo>>("stat", key, [&] { return base_->Stat(key); });
}

Result<ListPage> RetryStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  return Retry<Result<ListPage>>("list", prefix, [&] { return base_->List(prefix, page_token, max_results); });
}

Status RetryStorage::Delete(std::string_view key) {
  return Retry<Status>("delete", key, [&] { return base_->Delete(key); });
}

Result<std::unique_ptr<Lease>> RetryStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  return base_->AcquireLease(key, options);
}

std::string RetryStorage::Describe() const { return base_->Describe(); }

}  // namespace sb
