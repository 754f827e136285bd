// Storage: the narrow, object-store-shaped interface every repository byte
// goes through (like LevelDB's Env). Keys are '/'-separated relative paths
// ("db/main/…/manifest.json") without a leading slash.
//
// Contract for every driver (checked by test/unit/storage/conformance_test.cc):
// - Put is atomic and durable when it returns OK: a reader sees the whole old
//   object or the whole new one, never a torn one, and a crash after OK keeps it.
// - Put with if_absent fails with kAlreadyExists when the key exists.
// - Get/GetRange/Stat of a missing key fail with kNotFound.
// - Delete of a missing key is OK (idempotent).
// - List returns keys in lexicographic order, at most max_results per page;
//   an empty next_token means the listing is complete.
// - A lease is exclusive per key among all holders of the same storage until
//   released or expired; a held lease makes AcquireLease fail with
//   kAlreadyExists naming the holder where known. The same holder_id
//   re-acquires a lease it did not release at once (storage.h LeaseOptions).
// - Errors that may pass by retrying are kUnavailable; bad credentials are
//   kPermissionDenied. Messages never contain secrets.
// Thread-safety: every driver may be called from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sb {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  // Last modification, as precisely as the driver knows it (local disk:
  // nanoseconds; Azure: whole seconds, rounded down).
  std::chrono::system_clock::time_point mtime{};
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::string next_token;  // empty when the listing is complete
};

struct PutOptions {
  bool if_absent = false;  // fail with kAlreadyExists instead of replacing
};

struct LeaseOptions {
  std::chrono::seconds ttl{60};  // expires unless renewed within ttl
  std::string owner;             // recorded for "held by …" messages
  // Stable identity of the holder across restarts (the agent's UUID in its
  // state directory). A lease held under the same non-empty holder_id, e.g.
  // left behind by a kill -9, is taken back at once by that holder; other
  // holders are refused as usual. Empty: every acquisition is a new holder.
  // Two live Lease objects of one holder on one key share the lease (releasing
  // either releases it): one holder_id per process.
  std::string holder_id;
};

// An exclusive hold on one key. Destroying a Lease releases it (best effort).
class Lease {
 public:
  virtual ~Lease() = default;
  virtual Status Renew() = 0;
  virtual Status Release() = 0;
};

class Storage {
 public:
  virtual ~Storage() = default;

  virtual Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) = 0;
  virtual Result<std::string> Get(std::string_view key) = 0;
  // Reads [offset, offset+length); a range past the end is cut at the end.
  virtual Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) = 0;
  virtual Result<ObjectInfo> Stat(std::string_view key) = 0;
  virtual Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) = 0;
  virtual Status Delete(std::string_view key) = 0;
  virtual Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) = 0;

  // A credential-free description for messages and logs ("file:///x", "azure://c/p").
  virtual std::string Describe() const = 0;
};

// Every object under prefix, following continuation tokens.
Result<std::vector<ObjectInfo>> ListAll(Storage& storage, std::string_view prefix);

}  // namespace sb
