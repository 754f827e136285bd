// WalLookup: finds one WAL segment (or timeline history file) in the
// repository in a constant number of storage requests, whatever the size of
// the history: no manifest is read and no whole-history listing is made.
//
// For segment S of timeline T it lists the container descriptors (their
// names carry system identifier and timeline), and under each container of
// T the key prefix of S's parts (the hex digits of S's start above a block
// of max(segment size, 16 MiB)) plus, only when no part starts at S's first
// byte, the block before it (a format-v1 stream part of at most 16 MiB may
// cross one boundary into S; format-2 parts never cross one). It then
// GETs the fewest parts that cover S. Before T's switch point the bytes come
// from the parent timeline (its history file says where), as PostgreSQL
// copies them at promotion. Requests: 1 LIST + per level (timeline crossed
// within S, usually one) 1 history GET (T > 1) and 1 LIST per container of
// T (2 for format-1 WAL), plus one GET per part used, all issued at once.
// Parts are decoded in place into the segment's buffer.
//
// What it trusts without a manifest: each part's own integrity check (the
// GCM tag of an encrypted part, bound to its key; the zstd frame checksum
// of a plain one — a part with neither is refused as corrupt) and the
// grammar of its key. With a key, plain parts are refused (anyone who can
// write to the storage could have put them there).
//
// Thread-safety: one instance per thread; instances share nothing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "engine/wal/wal_catalog.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/storage.h"

namespace sb {

struct WalSource {
  std::string database;
  uint64_t system_identifier = 0;
  uint64_t segment_size = 0;  // a power of two from 1 MiB to 1 GiB
  const KeySource* keys = nullptr;
};

struct SegmentBytes {
  std::string bytes;     // segment_size bytes, zero-filled past `covered`
  uint64_t covered = 0;  // bytes that came from the repository (segment_size: complete)
};

class WalLookup {
 public:
  WalLookup(Storage& storage, WalSource source);

  // The segment of `timeline` starting at `start`; nullopt when no part
  // covers its first byte (recovery reads that as the end of WAL). A part
  // that is listed but cannot be read, or fails its check, is an error.
  Result<std::optional<SegmentBytes>> Segment(uint32_t timeline, Lsn start);
  // The history file of `timeline`; nullopt when no container has it.
  Result<std::optional<std::string>> History(uint32_t timeline);

 private:
  Result<std::vector<std::string>> ContainersOf(uint32_t timeline);
  Result<std::optional<TimelineSwitch>> SwitchOf(uint32_t timeline);
  Result<std::vector<WalPart>> PartsAround(uint32_t timeline, Lsn segment_start);
  // Checks and decodes `stored` (the GET of `part`), appending its bytes
  // [from, upto) to out.
  Status DecodePart(const WalPart& part, Result<std::string> stored, uint64_t from, uint64_t upto, std::string& out);
  // Appends the bytes of [start, end) on timeline to out, as far as
  // contiguous; kNotFound when nothing covers start.
  Status Assemble(uint32_t timeline, Lsn start, Lsn end, int depth, std::string& out);

  Storage& storage_;
  WalSource source_;
  std::optional<std::vector<std::pair<std::string, uint32_t>>> containers_;  // (name, timeline) of the sysid
};

// The listing prefix width: how many low hex digits of an LSN one listing
// block spans (at least 6: 16 MiB).
int WalBlockDigits(uint64_t segment_size);

}  // namespace sb
