// RetryStorage: a Storage decorator that retries calls failing with a
// retryable status (Status::IsRetryable(), i.e. kUnavailable) with the
// project's one backoff policy (common/backoff.h), sleeping on the injected
// Clock so tests never wait.
// Every other status is returned at once. AcquireLease and the Lease it
// returns are passed through untouched: a lease attempt that timed out may
// have succeeded, and only the caller can decide what to do about that.
//
// Caveat: a Put with if_absent that failed with kUnavailable after the object
// was written will, on retry, fail with kAlreadyExists. Callers that write
// immutable objects with if_absent should treat kAlreadyExists after a retry
// by comparing contents.
//
// Ownership: borrows (raw pointer; the base must outlive this object) or owns
// (unique_ptr) the base. The clock is borrowed; nullptr means Clock::Real().
// Thread-safety: as thread-safe as the base.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/backoff.h"
#include "common/clock.h"
#include "storage/storage.h"

namespace sb {

struct RetryOptions {
  int max_attempts = 5;  // total tries, including the first; >= 1
  BackoffPolicy backoff{};
  Clock* clock = nullptr;  // nullptr: Clock::Real()
  uint64_t seed = 0;       // jitter seed; 0: random
};

class RetryStorage final : public Storage {
 public:
  explicit RetryStorage(Storage* base, RetryOptions options = {});
  explicit RetryStorage(std::unique_ptr<Storage> base, RetryOptions options = {});

  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) override;
  Status Delete(std::string_view key) override;
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override;  // the base's description

  // The sleep before retry number `retry` (1 = after the first failure), with jitter.
  std::chrono::milliseconds BackoffFor(int retry);

  Storage* base() const { return base_; }

 private:
  template <typename T, typename F>
  T Retry(const char* op, std::string_view key, F&& call);

  std::unique_ptr<Storage> owned_;
  Storage* base_;
  RetryOptions options_;
  Clock* clock_;
  Backoff backoff_;
};

}  // namespace sb
