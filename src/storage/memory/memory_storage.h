// MemoryStorage: an in-process Storage for tests — a sorted map of objects
// under one mutex. Leases carry a ttl measured on an injectable Clock, so a
// test can expire them with ManualClock::Advance. Nothing is persisted.
//
// Named instances (Named/DropNamed) back the "memory://name" URLs: every
// OpenStorage("memory://x") in the process sees the same data.
//
// Thread-safety: all methods may be called from many threads at once; a Lease
// may outlive the MemoryStorage that issued it (it then only fails cleanly).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "storage/storage.h"

namespace sb {

class MemoryStorage final : public Storage {
 public:
  // clock: not owned, must outlive this object; nullptr means Clock::Real().
  // name: only used by Describe() ("memory://" + name).
  explicit MemoryStorage(Clock* clock = nullptr, std::string name = "");
  ~MemoryStorage() override;

  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) override;
  Status Delete(std::string_view key) override;
  // Leases live beside the objects: leasing a key neither creates nor needs an object.
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override;

  // Number of objects stored (tests).
  size_t ObjectCount() const;

  // The process-wide instance called name, created on first use (Clock::Real()).
  static std::shared_ptr<MemoryStorage> Named(const std::string& name);
  // Forgets the named instance; handles already open keep its data alive.
  static void DropNamed(const std::string& name);

 private:
  struct State;
  class MemoryLease;
  std::shared_ptr<State> state_;
  std::string name_;
};

}  // namespace sb
