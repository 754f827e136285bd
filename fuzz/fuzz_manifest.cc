// Fuzzes what a repository's JSON documents go through when read back: the
// backup manifest parser, the container descriptor (Repository::ListContainers)
// and the repository descriptor (Repository::Open). Storage is in memory.
//
// A mutated manifest almost never keeps a valid checksum, so each input is
// also tried "re-signed" the way doc/repository.md documents the checksum
// (SHA-256 of the compact sorted dump without it): that is what lets the
// fuzzer reach the field parsing behind the check. If the manifest format
// gains a keyed MAC, the re-signed pass simply stops at the MAC check.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"

namespace {

using nlohmann::json;

void ParseManifest(const std::string& text) {
  auto m = sb::BackupManifest::FromJson(text, "fuzz/manifest.json");
  if (!m.ok()) return;
  (void)m->AllObjects();
  // What the parser accepted must survive its own writer: a manifest that
  // reads but cannot be written back would break every tool that copies it.
  auto again = sb::BackupManifest::FromJson(m->ToJson(), "fuzz/roundtrip.json");
  if (!again.ok() || again->ToJson() != m->ToJson()) {
    std::fprintf(stderr, "manifest round trip failed: %s\n", again.ok() ? "changed" : again.status().message().c_str());
    std::abort();
  }
}

void ParseContainerDescriptor(const std::string& text) {
  auto storage = std::make_unique<sb::MemoryStorage>();
  auto* raw = storage.get();
  auto repo = sb::Repository::Open(std::move(storage), /*create=*/true);
  if (!repo.ok()) std::abort();  // an empty memory repository always opens
  if (!raw->Put("db/fuzz/containers/1-00000001.json", text).ok()) std::abort();
  (void)(*repo)->ListContainers("fuzz");
}

void ParseRepositoryDescriptor(const std::string& text) {
  auto storage = std::make_unique<sb::MemoryStorage>();
  if (!storage->Put("smartbackup-repo.json", text).ok()) std::abort();
  (void)sb::Repository::Open(std::move(storage), /*create=*/false);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ParseManifest(text);
  ParseContainerDescriptor(text);
  ParseRepositoryDescriptor(text);

  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    json unsigned_j = j;
    unsigned_j.erase("checksum");
    j["checksum"] = sb::Sha256Hex(unsigned_j.dump());
    ParseManifest(j.dump());
  }
  return 0;
}
