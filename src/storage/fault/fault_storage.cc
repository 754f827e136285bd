#include "storage/fault/fault_storage.h"

#include <array>
#include <mutex>
#include <utility>
#include <vector>

namespace sb {

const char* FaultOpName(FaultOp op) {
  switch (op) {
    case FaultOp::kPut: return "put";
    case FaultOp::kGet: return "get";
    case FaultOp::kGetRange: return "get_range";
    case FaultOp::kStat: return "stat";
    case FaultOp::kList: return "list";
    case FaultOp::kDelete: return "delete";
    case FaultOp::kAcquireLease: return "acquire_lease";
    case FaultOp::kRenewLease: return "renew_lease";
    case FaultOp::kReleaseLease: return "release_lease";
    case FaultOp::kAny: return "any";
  }
  return "?";
}

namespace {

constexpr size_t kOpCount = static_cast<size_t>(FaultOp::kAny) + 1;

struct Decision {
  enum class Kind { kProceed, kFail, kTornWrite, kCrashAfter } kind = Kind::kProceed;
  Status status;
  std::chrono::milliseconds delay{0};
};

Status CrashedStatus(FaultOp op, std::string_view key) {
  return Status::Unavailable(std::string("injected crash: storage is down (") + FaultOpName(op) + " \"" +
                             std::string(key) + "\")");
}

}  // namespace

struct FaultStorage::State {
  struct Entry {
    int id;
    FaultRule rule;
    int64_t hits = 0;
  };

  explicit State(Clock* c) : clock(c ? c : Clock::Real()) {}

  Decision Decide(FaultOp op, std::string_view key) {
    std::lock_guard lock(mu);
    ++counts[static_cast<size_t>(op)];
    ++counts[static_cast<size_t>(FaultOp::kAny)];
    Decision d;
    if (crashed) {
      d.kind = Decision::Kind::kFail;
      d.status = CrashedStatus(op, key);
      return d;
    }
    for (Entry& e : rules) {
      const FaultRule& r = e.rule;
      if (r.op != FaultOp::kAny && r.op != op) continue;
      if (!r.key_contains.empty() && key.find(r.key_contains) == std::string_view::npos) continue;
      if (r.action == FaultRule::Action::kTornWrite && op != FaultOp::kPut) continue;
      int64_t hit = ++e.hits;
      if (hit < r.nth || (r.count >= 0 && hit >= r.nth + r.count)) continue;
      switch (r.action) {
        case FaultRule::Action::kDelay:
          d.delay += r.delay;
          continue;
        case FaultRule::Action::kFail:
          d.kind = Decision::Kind::kFail;
          d.status = r.status;
          return d;
        case FaultRule::Action::kTornWrite:
          d.kind = Decision::Kind::kTornWrite;
          return d;
        case FaultRule::Action::kCrash:
          crashed = true;
          d.kind = Decision::Kind::kFail;
          d.status = CrashedStatus(op, key);
          return d;
        case FaultRule::Action::kCrashAfter:
          d.kind = Decision::Kind::kCrashAfter;
          return d;
      }
    }
    return d;
  }

  // Runs call() unless the rules say otherwise. T is Status or Result<…>.
  template <typename T, typename F>
  T Run(FaultOp op, std::string_view key, F&& call) {
    Decision d = Decide(op, key);
    if (d.delay.count() > 0) clock->SleepFor(d.delay);
    switch (d.kind) {
      case Decision::Kind::kFail:
        return T(d.status);
      case Decision::Kind::kCrashAfter: {
        (void)call();
        {
          std::lock_guard lock(mu);
          crashed = true;
        }
        return T(CrashedStatus(op, key));
      }
      case Decision::Kind::kTornWrite:  // only decided for Put, handled there
      case Decision::Kind::kProceed:
        break;
    }
    return call();
  }

  Clock* clock;
  mutable std::mutex mu;
  std::vector<Entry> rules;
  int next_id = 1;
  bool crashed = false;
  std::array<int64_t, kOpCount> counts{};
};

namespace {

class FaultLease final : public Lease {
 public:
  FaultLease(std::shared_ptr<FaultStorage::State> state, std::unique_ptr<Lease> inner, std::string key)
      : state_(std::move(state)), inner_(std::move(inner)), key_(std::move(key)) {}

  Status Renew() override {
    return state_->Run<Status>(FaultOp::kRenewLease, key_, [&] { return inner_->Renew(); });
  }
  Status Release() override {
    return state_->Run<Status>(FaultOp::kReleaseLease, key_, [&] { return inner_->Release(); });
  }

 private:
  std::shared_ptr<FaultStorage::State> state_;
  std::unique_ptr<Lease> inner_;  // destroying it releases the base lease
  std::string key_;
};

}  // namespace

FaultStorage::FaultStorage(Storage* base, Clock* clock) : base_(base), state_(std::make_shared<State>(clock)) {}

FaultStorage::FaultStorage(std::unique_ptr<Storage> base, Clock* clock)
    : owned_(std::move(base)), base_(owned_.get()), state_(std::make_shared<State>(clock)) {}

FaultStorage::~FaultStorage() = default;

int FaultStorage::AddRule(FaultRule rule) {
  std::lock_guard lock(state_->mu);
  int id = state_->next_id++;
  state_->rules.push_back(State::Entry{id, std::move(rule)});
  return id;
}

void FaultStorage::RemoveRule(int id) {
  std::lock_guard lock(state_->mu);
  std::erase_if(state_->rules, [id](const State::Entry& e) { return e.id == id; });
}

void FaultStorage::ClearRules() {
  std::lock_guard lock(state_->mu);
  state_->rules.clear();
}

int FaultStorage::FailNthCall(FaultOp op, int64_t nth, Status status, int64_t count) {
  FaultRule r;
  r.op = op;
  r.nth = nth;
  r.count = count;
  r.status = std::move(status);
  return AddRule(std::move(r));
}

int FaultStorage::FailMatching(std::string key_contains, Status status, FaultOp op) {
  FaultRule r;
  r.op = op;
  r.key_contains = std::move(key_contains);
  r.status = std::move(status);
  return AddRule(std::move(r));
}

int FaultStorage::TornWriteOn(std::string key_contains, int64_t nth, int64_t count) {
  FaultRule r;
  r.op = FaultOp::kPut;
  r.key_contains = std::move(key_contains);
  r.nth = nth;
  r.count = count;
  r.action = FaultRule::Action::kTornWrite;
  return AddRule(std::move(r));
}

int FaultStorage::DelayOn(FaultOp op, std::chrono::milliseconds delay, std::string key_contains) {
  FaultRule r;
  r.op = op;
  r.key_contains = std::move(key_contains);
  r.action = FaultRule::Action::kDelay;
  r.delay = delay;
  return AddRule(std::move(r));
}

int FaultStorage::CrashAfter(FaultOp op, int64_t nth, bool call_base_first) {
  FaultRule r;
  r.op = op;
  r.nth = nth;
  r.count = 1;
  r.action = call_base_first ? FaultRule::Action::kCrashAfter : FaultRule::Action::kCrash;
  return AddRule(std::move(r));
}

void FaultStorage::Crash() {
  std::lock_guard lock(state_->mu);
  state_->crashed = true;
}

void FaultStorage::Recover() {
  std::lock_guard lock(state_->mu);
  state_->crashed = false;
}

bool FaultStorage::crashed() const {
  std::lock_guard lock(state_->mu);
  return state_->crashed;
}

int64_t FaultStorage::CallCount(FaultOp op) const {
  std::lock_guard lock(state_->mu);
  return state_->counts[static_cast<size_t>(op)];
}

void FaultStorage::ResetCounts() {
  std::lock_guard lock(state_->mu);
  state_->counts.fill(0);
}

Status FaultStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  Decision d = state_->Decide(FaultOp::kPut, key);
  if (d.delay.count() > 0) state_->clock->SleepFor(d.delay);
  switch (d.kind) {
    case Decision::Kind::kFail:
      return d.status;
    case Decision::Kind::kTornWrite: {
      size_t kept = data.size() / 2;
      // What a non-atomic writer would leave behind if it died halfway.
      (void)base_->Put(key, data.substr(0, kept), options);
      return Status::IoError("injected torn write of \"" + std::string(key) + "\": stored " + std::to_string(kept) +
                             " of " + std::to_string(data.size()) + " bytes");
    }
    case Decision::Kind::kCrashAfter: {
      (void)base_->Put(key, data, options);
      Crash();
      return CrashedStatus(FaultOp::kPut, key);
    }
    case Decision::Kind::kProceed:
      break;
  }
  return base_->Put(key, data, options);
}

Result<std::string> FaultStorage::Get(std::string_view key) {
  return state_->Run<Result<std::string>>(FaultOp::kGet, key, [&] { return base_->Get(key); });
}

Result<std::string> FaultStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  return state_->Run<Result<std::string>>(FaultOp::kGetRange, key,
                                          [&] { return base_->GetRange(key, offset, length); });
}

Result<ObjectInfo> FaultStorage::Stat(std::string_view key) {
  return state_->Run<Result<ObjectInfo>>(FaultOp::kStat, key, [&] { return base_->Stat(key); });
}

Result<ListPage> FaultStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  return state_->Run<Result<ListPage>>(FaultOp::kList, prefix,
                                       [&] { return base_->List(prefix, page_token, max_results); });
}

Status FaultStorage::Delete(std::string_view key) {
  return state_->Run<Status>(FaultOp::kDelete, key, [&] { return base_->Delete(key); });
}

Result<std::unique_ptr<Lease>> FaultStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  auto result = state_->Run<Result<std::unique_ptr<Lease>>>(FaultOp::kAcquireLease, key,
                                                            [&] { return base_->AcquireLease(key, options); });
  if (!result.ok()) return result.status();
  return std::unique_ptr<Lease>(std::make_unique<FaultLease>(state_, std::move(result).value(), std::string(key)));
}

std::string FaultStorage::Describe() const { return "fault(" + base_->Describe() + ")"; }

}  // namespace sb
