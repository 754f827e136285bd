// StorageStats: process-wide counters of every storage request — per
// operation and outcome, latency histogram buckets, retries, bytes read and
// written — that InstrumentedStorage (and the retrying layers below it) note
// into, and that the agent's /metrics endpoint reads at scrape time. Plain
// atomics, so noting costs a few relaxed increments and the storage layer does
// not depend on any metrics library.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

#include "common/status.h"

namespace sb {

enum class StorageOp { kPut, kGet, kGetRange, kStat, kList, kDelete, kAcquireLease, kRenewLease, kReleaseLease };
inline constexpr int kStorageOpCount = 9;
// "put", "get", "get_range", "stat", "list", "delete", "acquire_lease", "renew_lease", "release_lease".
const char* StorageOpName(StorageOp op);

// The outcome of one request, by status code (never by message text).
enum class StorageOutcome { kOk, kNotFound, kAlreadyExists, kUnavailable, kPermissionDenied, kError };
inline constexpr int kStorageOutcomeCount = 6;
// "ok", "not_found", "already_exists", "unavailable", "permission_denied", "error".
const char* StorageOutcomeName(StorageOutcome outcome);
StorageOutcome OutcomeOf(const Status& status);

// Upper bounds (seconds) of the latency histogram's buckets; +Inf is implicit.
inline constexpr std::array<double, 14> kStorageLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                  0.25,  0.5,    1,     2.5,  5,    10,  30};

// A copy of one operation's counters.
struct StorageOpCounts {
  std::array<uint64_t, kStorageOutcomeCount> requests{};
  uint64_t retries = 0;
  // Non-cumulative: buckets[i] counts latencies in (bound[i-1], bound[i]]; the last one is +Inf.
  std::array<uint64_t, kStorageLatencyBuckets.size() + 1> buckets{};
  double latency_sum_seconds = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

class StorageStats {
 public:
  static StorageStats& Global();

  void Record(StorageOp op, StorageOutcome outcome, double seconds, uint64_t bytes_read, uint64_t bytes_written);
  // One retry of `op` (a retrying layer is about to try again).
  void NoteRetry(StorageOp op);
  StorageOpCounts Counts(StorageOp op) const;

 private:
  struct Slot {
    std::array<std::atomic<uint64_t>, kStorageOutcomeCount> requests{};
    std::atomic<uint64_t> retries{0};
    std::array<std::atomic<uint64_t>, kStorageLatencyBuckets.size() + 1> buckets{};
    std::atomic<uint64_t> latency_sum_ns{0};
    std::atomic<uint64_t> bytes_read{0};
    std::atomic<uint64_t> bytes_written{0};
  };
  std::array<Slot, kStorageOpCount> slots_;
};

// The storage operation this thread is in, as set by InstrumentedStorage: the retrying layers
// below it (RetryStorage, the HTTP client) call NoteCurrentRetry without knowing the operation.
class ScopedStorageOp {
 public:
  explicit ScopedStorageOp(StorageOp op);
  ~ScopedStorageOp();
  ScopedStorageOp(const ScopedStorageOp&) = delete;
  ScopedStorageOp& operator=(const ScopedStorageOp&) = delete;

 private:
  std::optional<StorageOp> previous_;
};
std::optional<StorageOp> CurrentStorageOp();
// Counts one retry of the current operation (nothing outside an instrumented call).
void NoteCurrentRetry();

}  // namespace sb
