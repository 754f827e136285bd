// FaultStorage: a Storage decorator for tests that injects failures into the
// calls it forwards to a base Storage. Rules are checked in the order added;
// each matching call bumps the rule's hit count, and the rule fires on hits
// nth .. nth+count-1 (nth = 1 by default; count < 0 means every hit from nth on).
//
//   FaultStorage fs(&base, &clock);
//   fs.FailNthCall(FaultOp::kGet, 1, Status::Unavailable("boom"), 2);  // first two Gets fail
//   fs.FailMatching("wal/", Status::IoError("injected"));              // every op on a wal/ key
//   fs.TornWriteOn("manifest");     // base keeps half the bytes, caller gets kIoError
//   fs.DelayOn(FaultOp::kPut, std::chrono::milliseconds(50));   // SleepFor on the clock
//   fs.CrashAfter(FaultOp::kPut, 3);  // from the 3rd Put on, every call is kUnavailable
//
// Key matching: a rule's key_contains is tested against the key (for List,
// against the prefix); empty matches every call. Lease Renew/Release are ops of
// their own (kRenewLease/kReleaseLease) matched against the lease's key.
//
// Ownership: either borrows the base (raw pointer; the base must outlive this
// object and every Lease it returned) or owns it (unique_ptr). The clock is
// borrowed; nullptr means Clock::Real().
// Thread-safety: all methods, including rule changes, may be called from many
// threads at once; the base is called without holding the rule lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "storage/storage.h"

namespace sb {

enum class FaultOp {
  kPut,
  kGet,
  kGetRange,
  kStat,
  kList,
  kDelete,
  kAcquireLease,
  kRenewLease,
  kReleaseLease,
  kAny,  // in rules: matches every op; in CallCount: the total
};
const char* FaultOpName(FaultOp op);

struct FaultRule {
  enum class Action {
    kFail,        // return status without calling the base
    kTornWrite,   // Put only: store the first half of the data in the base, return kIoError
    kDelay,       // clock->SleepFor(delay), then go on (later rules still apply)
    kCrash,       // enter crash mode before calling the base; this call fails too
    kCrashAfter,  // call the base, then enter crash mode and fail this call anyway
  };
  FaultOp op = FaultOp::kAny;
  std::string key_contains;  // empty: every key
  int64_t nth = 1;           // first matching call (1-based) the rule fires on
  int64_t count = -1;        // how many consecutive matching calls; < 0: all from nth on
  Action action = Action::kFail;
  Status status = Status::Unavailable("injected fault");
  std::chrono::milliseconds delay{0};
};

class FaultStorage final : public Storage {
 public:
  explicit FaultStorage(Storage* base, Clock* clock = nullptr);
  explicit FaultStorage(std::unique_ptr<Storage> base, Clock* clock = nullptr);
  ~FaultStorage() override;

  // Returns an id for RemoveRule.
  int AddRule(FaultRule rule);
  void RemoveRule(int id);
  void ClearRules();

  // Shorthands for common rules; all return the rule id.
  int FailNthCall(FaultOp op, int64_t nth, Status status, int64_t count = 1);
  int FailMatching(std::string key_contains, Status status, FaultOp op = FaultOp::kAny);
  int TornWriteOn(std::string key_contains, int64_t nth = 1, int64_t count = 1);
  int DelayOn(FaultOp op, std::chrono::milliseconds delay, std::string key_contains = "");
  int CrashAfter(FaultOp op, int64_t nth, bool call_base_first = false);

  // Crash mode: every call fails with kUnavailable until Recover().
  void Crash();
  void Recover();
  bool crashed() const;

  // Calls seen per op (including failed ones); kAny gives the total.
  int64_t CallCount(FaultOp op) const;
  void ResetCounts();

  Storage* base() const { return base_; }

  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) override;
  Status Delete(std::string_view key) override;
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override;  // "fault(" + base + ")"

  struct State;  // shared with the Leases handed out

 private:
  std::unique_ptr<Storage> owned_;
  Storage* base_;
  std::shared_ptr<State> state_;
};

}  // namespace sb
