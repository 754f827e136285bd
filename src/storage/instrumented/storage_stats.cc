#include "storage/instrumented/storage_stats.h"

#include <algorithm>

namespace sb {
namespace {

thread_local std::optional<StorageOp> t_current_op;

size_t BucketOf(double seconds) {
  auto it = std::lower_bound(kStorageLatencyBuckets.begin(), kStorageLatencyBuckets.end(), seconds);
  return static_cast<size_t>(it - kStorageLatencyBuckets.begin());
}

}  // namespace

const char* StorageOpName(StorageOp op) {
  switch (op) {
    case StorageOp::kPut: return "put";
    case StorageOp::kGet: return "get";
    case StorageOp::kGetRange: return "get_range";
    case StorageOp::kStat: return "stat";
    case StorageOp::kList: return "list";
    case StorageOp::kDelete: return "delete";
    case StorageOp::kAcquireLease: return "acquire_lease";
    case StorageOp::kRenewLease: return "renew_lease";
    case StorageOp::kReleaseLease: return "release_lease";
  }
  return "unknown";
}

const char* StorageOutcomeName(StorageOutcome outcome) {
  switch (outcome) {
    case StorageOutcome::kOk: return "ok";
    case StorageOutcome::kNotFound: return "not_found";
    case StorageOutcome::kAlreadyExists: return "already_exists";
    case StorageOutcome::kUnavailable: return "unavailable";
    case StorageOutcome::kPermissionDenied: return "permission_denied";
    case StorageOutcome::kError: return "error";
  }
  return "error";
}

StorageOutcome OutcomeOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return StorageOutcome::kOk;
    case StatusCode::kNotFound: return StorageOutcome::kNotFound;
    case StatusCode::kAlreadyExists: return StorageOutcome::kAlreadyExists;
    case StatusCode::kUnavailable: return StorageOutcome::kUnavailable;
    case StatusCode::kPermissionDenied: return StorageOutcome::kPermissionDenied;
    default: return StorageOutcome::kError;
  }
}

StorageStats& StorageStats::Global() {
  static StorageStats stats;
  return stats;
}

void StorageStats::Record(StorageOp op, StorageOutcome outcome, double seconds, uint64_t bytes_read,
                          uint64_t bytes_written) {
  Slot& s = slots_[static_cast<size_t>(op)];
  s.requests[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  seconds = std::max(seconds, 0.0);
  s.buckets[BucketOf(seconds)].fetch_add(1, std::memory_order_relaxed);
  s.latency_sum_ns.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
  if (bytes_read) s.bytes_read.fetch_add(bytes_read, std::memory_order_relaxed);
  if (bytes_written) s.bytes_written.fetch_add(bytes_written, std::memory_order_relaxed);
}

void StorageStats::NoteRetry(StorageOp op) {
  slots_[static_cast<size_t>(op)].retries.fetch_add(1, std::memory_order_relaxed);
}

StorageOpCounts StorageStats::Counts(StorageOp op) const {
  const Slot& s = slots_[static_cast<size_t>(op)];
  StorageOpCounts out;
  for (size_t i = 0; i < out.requests.size(); ++i) out.requests[i] = s.requests[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < out.buckets.size(); ++i) out.buckets[i] = s.buckets[i].load(std::memory_order_relaxed);
  out.retries = s.retries.load(std::memory_order_relaxed);
  out.latency_sum_seconds = static_cast<double>(s.latency_sum_ns.load(std::memory_order_relaxed)) / 1e9;
  out.bytes_read = s.bytes_read.load(std::memory_order_relaxed);
  out.bytes_written = s.bytes_written.load(std::memory_order_relaxed);
  return out;
}

ScopedStorageOp::ScopedStorageOp(StorageOp op) : previous_(t_current_op) { t_current_op = op; }
ScopedStorageOp::~ScopedStorageOp() { t_current_op = previous_; }

std::optional<StorageOp> CurrentStorageOp() { return t_current_op; }

void NoteCurrentRetry() {
  if (t_current_op) StorageStats::Global().NoteRetry(*t_current_op);
}

}  // namespace sb
