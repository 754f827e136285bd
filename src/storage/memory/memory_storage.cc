#include "storage/memory/memory_storage.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

namespace sb {

namespace {

struct Object {
  std::string data;
  std::chrono::system_clock::time_point mtime{};
};

struct LeaseRecord {
  uint64_t id = 0;
  std::string owner;
  std::string holder_id;  // empty: anonymous, never taken over
  SteadyTime expires;
};

std::string Quote(std::string_view key) { return "\"" + std::string(key) + "\""; }

}  // namespace

struct MemoryStorage::State {
  explicit State(Clock* c) : clock(c) {}
  Clock* clock;
  mutable std::mutex mu;
  std::map<std::string, Object, std::less<>> objects;
  std::map<std::string, LeaseRecord, std::less<>> leases;
  uint64_t next_lease_id = 1;
};

class MemoryStorage::MemoryLease final : public Lease {
 public:
  MemoryLease(std::shared_ptr<State> state, std::string key, uint64_t id, std::chrono::seconds ttl)
      : state_(std::move(state)), key_(std::move(key)), id_(id), ttl_(ttl) {}
  ~MemoryLease() override { (void)Release(); }

  Status Renew() override {
    std::lock_guard lock(state_->mu);
    if (released_) return Status::FailedPrecondition("lease on " + Quote(key_) + " was already released");
    auto it = state_->leases.find(key_);
    if (it == state_->leases.end()) {
      // Expired and nobody took it since: renewing re-establishes it (as Azure does).
      state_->leases[key_] = LeaseRecord{id_, owner_, holder_id_, state_->clock->SteadyNow() + ttl_};
      return Status::Ok();
    }
    LeaseRecord& rec = it->second;
    if (rec.id != id_) {
      return Status::FailedPrecondition("lease on " + Quote(key_) + " was lost: it expired and is now held by " +
                                        rec.owner);
    }
    rec.expires = state_->clock->SteadyNow() + ttl_;
    return Status::Ok();
  }

  Status Release() override {
    std::lock_guard lock(state_->mu);
    if (released_) return Status::Ok();
    released_ = true;
    auto it = state_->leases.find(key_);
    if (it != state_->leases.end() && it->second.id == id_) state_->leases.erase(it);
    return Status::Ok();
  }

  void set_owner(std::string owner, std::string holder_id) {
    owner_ = std::move(owner);
    holder_id_ = std::move(holder_id);
  }

 private:
  std::shared_ptr<State> state_;
  std::string key_;
  std::string owner_;
  std::string holder_id_;
  uint64_t id_;
  std::chrono::seconds ttl_;
  bool released_ = false;  // guarded by state_->mu
};

MemoryStorage::MemoryStorage(Clock* clock, std::string name)
    : state_(std::make_shared<State>(clock ? clock : Clock::Real())), name_(std::move(name)) {}

MemoryStorage::~MemoryStorage() = default;

Status MemoryStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  if (key.empty()) return Status::InvalidArgument("object key must not be empty");
  const auto now = state_->clock->Now();
  std::lock_guard lock(state_->mu);
  auto it = state_->objects.find(key);
  if (it != state_->objects.end()) {
    if (options.if_absent) return Status::AlreadyExists("object " + Quote(key) + " already exists in " + Describe());
    it->second = Object{std::string(data), now};
  } else {
    state_->objects.emplace(std::string(key), Object{std::string(data), now});
  }
  return Status::Ok();
}

Result<std::string> MemoryStorage::Get(std::string_view key) {
  std::lock_guard lock(state_->mu);
  auto it = state_->objects.find(key);
  if (it == state_->objects.end()) return Status::NotFound("object " + Quote(key) + " not found in " + Describe());
  return it->second.data;
}

Result<std::string> MemoryStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  std::lock_guard lock(state_->mu);
  auto it = state_->objects.find(key);
  if (it == state_->objects.end()) return Status::NotFound("object " + Quote(key) + " not found in " + Describe());
  const std::string& d = it->second.data;
  if (offset >= d.size()) return std::string();
  return d.substr(offset, std::min<uint64_t>(length, d.size() - offset));
}

Result<ObjectInfo> MemoryStorage::Stat(std::string_view key) {
  std::lock_guard lock(state_->mu);
  auto it = state_->objects.find(key);
  if (it == state_->objects.end()) return Status::NotFound("object " + Quote(key) + " not found in " + Describe());
  return ObjectInfo{it->first, it->second.data.size(), it->second.mtime};
}

Result<ListPage> MemoryStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  if (max_results <= 0) return Status::InvalidArgument("list max_results must be positive");
  ListPage page;
  std::lock_guard lock(state_->mu);
  auto it = page_token.empty() ? state_->objects.lower_bound(prefix) : state_->objects.upper_bound(page_token);
  if (!page_token.empty() && it != state_->objects.end() && it->first < prefix) {
    it = state_->objects.lower_bound(prefix);
  }
  for (; it != state_->objects.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (static_cast<int>(page.objects.size()) == max_results) {
      page.next_token = page.objects.back().key;
      break;
    }
    page.objects.push_back(ObjectInfo{it->first, it->second.data.size(), it->second.mtime});
  }
  return page;
}

Status MemoryStorage::Delete(std::string_view key) {
  std::lock_guard lock(state_->mu);
  auto it = state_->objects.find(key);
  if (it != state_->objects.end()) state_->objects.erase(it);
  return Status::Ok();
}

Result<std::unique_ptr<Lease>> MemoryStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  if (key.empty()) return Status::InvalidArgument("lease key must not be empty");
  if (options.ttl.count() <= 0) return Status::InvalidArgument("lease ttl must be positive");
  std::lock_guard lock(state_->mu);
  SteadyTime now = state_->clock->SteadyNow();
  auto it = state_->leases.find(key);
  if (it != state_->leases.end() && !options.holder_id.empty() && it->second.holder_id == options.holder_id) {
    // The same holder (restarted after a crash): take it back at once. The
    // lease keeps its id, as an Azure lease keeps its lease id.
    it->second.owner = options.owner;
    it->second.expires = now + options.ttl;
    auto lease = std::make_unique<MemoryLease>(state_, std::string(key), it->second.id, options.ttl);
    lease->set_owner(options.owner, options.holder_id);
    return std::unique_ptr<Lease>(std::move(lease));
  }
  if (it != state_->leases.end()) {
    if (it->second.expires > now) {
      return Status::AlreadyExists("lease on " + Quote(key) + " is held by " +
                                   (it->second.owner.empty() ? std::string("an unnamed owner") : it->second.owner));
    }
    state_->leases.erase(it);  // expired
  }
  uint64_t id = state_->next_lease_id++;
  state_->leases.emplace(std::string(key), LeaseRecord{id, options.owner, options.holder_id, now + options.ttl});
  auto lease = std::make_unique<MemoryLease>(state_, std::string(key), id, options.ttl);
  lease->set_owner(options.owner, options.holder_id);
  return std::unique_ptr<Lease>(std::move(lease));
}

std::string MemoryStorage::Describe() const { return "memory://" + name_; }

size_t MemoryStorage::ObjectCount() const {
  std::lock_guard lock(state_->mu);
  return state_->objects.size();
}

namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, std::shared_ptr<MemoryStorage>>& Registry() {
  static auto* registry = new std::map<std::string, std::shared_ptr<MemoryStorage>>();
  return *registry;
}

}  // namespace

std::shared_ptr<MemoryStorage> MemoryStorage::Named(const std::string& name) {
  std::lock_guard lock(RegistryMutex());
  auto& slot = Registry()[name];
  if (!slot) slot = std::make_shared<MemoryStorage>(nullptr, name);
  return slot;
}

void MemoryStorage::DropNamed(const std::string& name) {
  std::lock_guard lock(RegistryMutex());
  Registry().erase(name);
}

}  // namespace sb
