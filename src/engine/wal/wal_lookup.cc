#include "engine/wal/wal_lookup.h"

#include <fmt/core.h>
#include <sys/mman.h>

#include <algorithm>
#include <charconv>

#include "common/text.h"
#include "common/thread_pool.h"

namespace sb {
namespace {

constexpr int kMaxTimelineDepth = 64;  // timeline switches crossed inside one segment: one in practice

// "db/<db>/containers/<name>.json" → <name>, when of the container grammar.
std::optional<std::string> ContainerNameOf(const std::string& db, const std::string& key) {
  const std::string root = fmt::format("db/{}/containers/", db);
  if (!StartsWith(key, root) || !EndsWith(key, ".json")) return std::nullopt;
  std::string name = key.substr(root.size(), key.size() - root.size() - 5);
  if (!Repository::ValidateContainerName(name).ok()) return std::nullopt;
  return name;
}

// A plain part must carry zstd's frame checksum: without a manifest's
// sha256 it is the only thing that catches a damaged byte.
Status CheckProtected(std::string_view stored, const std::string& key) {
  ASSIGN_OR_RETURN(ObjectHeaderInfo h, ParseObjectHeader(stored, key));
  if (h.encrypted) return Status::Ok();  // GCM's tag, checked by DecodeObject
  if (h.compressed && stored.size() >= kObjectHeaderSize + 5) {
    // RFC 8878: magic 0xFD2FB528 (little-endian), then the frame header
    // descriptor, whose bit 2 is Content_Checksum_flag. DecodeObject checks
    // the checksum itself while decompressing.
    const auto* f = reinterpret_cast<const unsigned char*>(stored.data() + kObjectHeaderSize);
    const bool magic = f[0] == 0x28 && f[1] == 0xB5 && f[2] == 0x2F && f[3] == 0xFD;
    if (magic && (f[4] & 0x04) != 0) return Status::Ok();
  }
  return Status::Corruption(fmt::format(
      "WAL object \"{}\" carries no checksum (neither encrypted nor a checksummed zstd frame); hint: run verify", key));
}

// Fresh memory costs a page fault per 4 KiB page, and on a virtual machine
// the 4096 faults of a 16 MiB segment were most of a wal-get's time. Where
// the kernel grants transparent huge pages on request (THP "madvise", the
// Debian default), the 2 MiB-aligned interior of the buffer takes 8.
void AdviseHugePages(const char* p, size_t n) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint: errors ignored
}

}  // namespace

int WalBlockDigits(uint64_t segment_size) {
  int bits = 0;
  while ((uint64_t{1} << bits) < segment_size) ++bits;
  return std::max(6, (bits + 3) / 4);
}

WalLookup::WalLookup(Storage& storage, WalSource source) : storage_(storage), source_(std::move(source)) {}

Result<std::vector<std::string>> WalLookup::ContainersOf(uint32_t timeline) {
  if (!containers_) {
    ASSIGN_OR_RETURN(auto objects, ListAll(storage_, fmt::format("db/{}/containers/", source_.database)));
    containers_.emplace();
    for (const auto& o : objects) {
      auto name = ContainerNameOf(source_.database, o.key);
      if (!name) continue;
      // <sysid>-<timeline:08X>[-n]: parts of a timeline live in its containers (every writer names the
      // container after the timeline of the WAL it stores).
      size_t dash = name->find('-');
      auto sysid = Repository::ParseSystemIdentifier(std::string_view(*name).substr(0, dash));
      if (!sysid || *sysid != source_.system_identifier) continue;
      uint32_t tli = 0;
      std::from_chars(name->data() + dash + 1, name->data() + dash + 9, tli, 16);
      containers_->emplace_back(*name, tli);
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, tli] : *containers_) {
    if (tli == timeline) out.push_back(name);
  }
  return out;
}

Result<std::optional<std::string>> WalLookup::History(uint32_t timeline) {
  ASSIGN_OR_RETURN(auto containers, ContainersOf(timeline));
  for (const auto& c : containers) {
    const std::string key = Repository::HistoryKey(source_.database, c, timeline);
    auto stored = storage_.Get(key);
    if (!stored.ok()) {
      if (stored.status().IsNotFound()) continue;
      return stored.status();
    }
    ASSIGN_OR_RETURN(std::string plain, DecodeObject(*stored, key, nullptr));
    return std::optional<std::string>(std::move(plain));
  }
  return std::optional<std::string>();
}

Result<std::optional<TimelineSwitch>> WalLookup::SwitchOf(uint32_t timeline) {
  if (timeline <= 1) return std::optional<TimelineSwitch>();
  ASSIGN_OR_RETURN(auto history, History(timeline));
  if (!history) return std::optional<TimelineSwitch>();
  return ParseTimelineHistory(*history);
}

Result<std::vector<WalPart>> WalLookup::PartsAround(uint32_t timeline, Lsn segment_start) {
  const int digits = WalBlockDigits(source_.segment_size);
  const uint64_t block = segment_start.value >> (4 * digits);
  ASSIGN_OR_RETURN(auto containers, ContainersOf(timeline));
  std::vector<WalPart> parts;
  auto list_block = [&](const std::string& c, uint64_t b) -> Status {
    // The key's 16 hex digits of start, without the low `digits`.
    const std::string prefix =
        fmt::format("db/{}/wal/{}/{:08X}/{:0{}X}", source_.database, c, timeline, b, 16 - digits);
    ASSIGN_OR_RETURN(auto objects, ListAll(storage_, prefix));
    for (const auto& o : objects) {
      auto p = Repository::ParseWalPartKey(o.key);
      if (!p || p->timeline != timeline || p->container != c) continue;
      p->stored_size = o.size;
      p->mtime = o.mtime;
      parts.push_back(std::move(*p));
    }
    return Status::Ok();
  };
  for (const auto& c : containers) {
    const size_t before = parts.size();
    RETURN_IF_ERROR(list_block(c, block));
    // Format-2 parts never cross a segment boundary, so a segment's WAL
    // begins a part at its first byte; only without one can a format-1 part
    // of the block before reach into it.
    const bool starts_here = std::any_of(parts.begin() + before, parts.end(),
                                         [&](const WalPart& p) { return p.start == segment_start; });
    if (!starts_here && block > 0) RETURN_IF_ERROR(list_block(c, block - 1));
  }
  return parts;
}

Status WalLookup::DecodePart(const WalPart& p, Result<std::string> stored, uint64_t from, uint64_t upto,
                             std::string& out) {
  if (!stored.ok()) {
    if (stored.status().IsNotFound()) {
      // Listed a moment ago: not "absent", which would end recovery.
      return Status::Corruption(fmt::format("WAL object \"{}\" is listed but missing; hint: run verify", p.key));
    }
    return stored.status();
  }
  RETURN_IF_ERROR(CheckProtected(*stored, p.key));
  const uint64_t size = p.end.value - p.start.value;
  if (from == 0 && upto == size) {
    // The whole part: decoded in place at the end of `out`.
    const size_t at = out.size();
    out.resize(at + size);
    Status s = DecodeObjectInto(*stored, p.key, source_.keys, size, out.data() + at);
    if (!s.ok()) out.resize(at);
    return s;
  }
  ASSIGN_OR_RETURN(std::string plain, DecodeObject(*stored, p.key, source_.keys, size));
  if (plain.size() != size) {
    return Status::Corruption(
        fmt::format("WAL object \"{}\" holds {} bytes, its name says {}", p.key, plain.size(), size));
  }
  out.append(plain, from, upto - from);
  return Status::Ok();
}

Status WalLookup::Assemble(uint32_t timeline, Lsn start, Lsn end, int depth, std::string& out) {
  if (depth > kMaxTimelineDepth) {
    return Status::Corruption(fmt::format("timeline {} has more than {} ancestors within one segment; hint: run verify",
                                          timeline, kMaxTimelineDepth));
  }
  const size_t base = out.size();
  Lsn x = start;
  ASSIGN_OR_RETURN(auto sw, SwitchOf(timeline));
  if (sw && x < sw->switch_point) {
    if (sw->parent >= timeline) {
      return Status::Corruption(fmt::format("history of timeline {} names parent {}; hint: run verify", timeline,
                                            sw->parent));
    }
    const Lsn upto = std::min(end, sw->switch_point);
    RETURN_IF_ERROR(Assemble(sw->parent, x, upto, depth + 1, out));
    x = Lsn{start.value + (out.size() - base)};
    if (x < upto) return Status::Ok();  // the parent's WAL stops short: so does this
  }
  const Lsn segment_start{start.value - start.value % source_.segment_size};
  ASSIGN_OR_RETURN(auto parts, PartsAround(timeline, segment_start));
  struct Take {
    const WalPart* part;
    uint64_t from, upto;  // the bytes of the part used
  };
  std::vector<Take> takes;
  while (x < end) {
    // Of the parts holding x, the one reaching furthest: the fewest objects
    // when merged and per-flush parts overlap.
    const WalPart* best = nullptr;
    for (const auto& p : parts) {
      if (p.start <= x && p.end > x && (!best || p.end > best->end)) best = &p;
    }
    if (!best) break;
    const uint64_t from = x.value - best->start.value;
    const uint64_t upto = std::min(end.value, best->end.value) - best->start.value;
    takes.push_back({best, from, upto});
    x = Lsn{x.value + (upto - from)};
  }
  // The parts are known from the listing alone: GET them at once (one round
  // trip on a remote storage instead of one per part), decode in order.
  std::vector<std::optional<Result<std::string>>> stored(takes.size());
  ParallelFor(
      takes.size(), [&](size_t i) { stored[i] = storage_.Get(takes[i].part->key); }, /*min_per_thread=*/1,
      /*max_threads=*/std::min<size_t>(takes.size(), 16));
  for (size_t i = 0; i < takes.size(); ++i) {
    RETURN_IF_ERROR(DecodePart(*takes[i].part, std::move(*stored[i]), takes[i].from, takes[i].upto, out));
  }
  if (out.size() == base) {
    return Status::NotFound(fmt::format("no WAL at {} on timeline {} in the repository", start.ToString(), timeline));
  }
  return Status::Ok();
}

Result<std::optional<SegmentBytes>> WalLookup::Segment(uint32_t timeline, Lsn start) {
  const uint64_t seg = source_.segment_size;
  if (seg < (1u << 20) || seg > (uint64_t{1} << 30) || (seg & (seg - 1)) != 0 || start.value % seg != 0) {
    return Status::InvalidArgument(fmt::format("invalid WAL segment size {} or start {}", seg, start.ToString()));
  }
  SegmentBytes out;
  out.bytes.reserve(seg);
  AdviseHugePages(out.bytes.data(), seg);
  Status s = Assemble(timeline, start, Lsn{start.value + seg}, 0, out.bytes);
  if (!s.ok()) {
    if (s.IsNotFound()) return std::optional<SegmentBytes>();
    return s;
  }
  out.covered = out.bytes.size();
  // Past the newest durable WAL the segment is zeros, which recovery reads as the end of WAL.
  out.bytes.resize(seg, '\0');
  return std::optional<SegmentBytes>(std::move(out));
}

}  // namespace sb
