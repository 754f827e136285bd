#include "repo/manifest.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "repo/object_codec.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "smartbackup-backup-manifest";
constexpr int kVersion = 1;

json RefToJson(const ObjectRef& r) {
  return {{"key", r.key}, {"raw_size", r.raw_size}, {"stored_size", r.stored_size}, {"sha256", r.sha256}};
}

ObjectRef RefFromJson(const json& j) {
  return ObjectRef{.key = j.at("key").get<std::string>(),
                   .raw_size = j.at("raw_size").get<uint64_t>(),
                   .stored_size = j.at("stored_size").get<uint64_t>(),
                   .sha256 = j.at("sha256").get<std::string>()};
}

SystemTime TimeFromJson(const json& j) {
  auto t = ParseRfc3339(j.get<std::string>());
  if (!t.ok()) throw std::runtime_error(t.status().message());
  return *t;
}

// The checksum covers the canonical dump (sorted keys, compact) without itself.
std::string ChecksumOf(json j) {
  j.erase("checksum");
  return Sha256Hex(j.dump());
}

}  // namespace

const char* BackupTypeName(BackupType type) {
  switch (type) {
    case BackupType::kFull: return "full";
    case BackupType::kCopyOnly: return "copy_only";
    case BackupType::kLog: return "log";
  }
  return "unknown";
}

Result<BackupType> ParseBackupType(const std::string& name) {
  if (name == "full") return BackupType::kFull;
  if (name == "copy_only") return BackupType::kCopyOnly;
  if (name == "log") return BackupType::kLog;
  return Status::InvalidArgument(fmt::format("unknown backup type \"{}\"; hint: use full, copy_only or log", name));
}

std::vector<const ObjectRef*> BackupManifest::AllObjects() const {
  std::vector<const ObjectRef*> out;
  for (const auto& a : archives)
    for (const auto& c : a.chunks) out.push_back(&c);
  if (pg_manifest) out.push_back(&*pg_manifest);
  return out;
}

std::string BackupManifest::ToJson() const {
  json archives_json = json::array();
  for (const auto& a : archives) {
    json chunks = json::array();
    for (const auto& c : a.chunks) chunks.push_back(RefToJson(c));
    archives_json.push_back({{"index", a.index},
                             {"name", a.name},
                             {"tablespace_oid", a.tablespace_oid},
                             {"location", a.location},
                             {"raw_bytes", a.raw_bytes},
                             {"chunks", std::move(chunks)}});
  }
  json j = {{"format", kFormat},
            {"version", kVersion},
            {"database", database},
            {"system_identifier", std::to_string(system_identifier)},
            {"container", container},
            {"backup_id", backup_id},
            {"type", BackupTypeName(type)},
            {"timeline", timeline},
            {"start_lsn", start_lsn},
            {"end_lsn", end_lsn},
            {"start_time", FormatRfc3339(start_time)},
            {"finish_time", FormatRfc3339(finish_time)},
            {"expiration_time", expiration_time ? json(FormatRfc3339(*expiration_time)) : json(nullptr)},
            {"server_version_num", server_version_num},
            {"wal_segment_size", wal_segment_size},
            {"compression", compression},
            {"encryption", encryption_key_id.empty()
                               ? json(nullptr)
                               : json({{"mode", "aes-256-gcm"}, {"key_id", encryption_key_id}})},
            {"size_bytes", size_bytes},
            {"stored_bytes", stored_bytes},
            {"archives", std::move(archives_json)},
            {"pg_manifest", pg_manifest ? RefToJson(*pg_manifest) : json(nullptr)}};
  j["checksum"] = ChecksumOf(j);
  return j.dump(1);
}

Result<BackupManifest> BackupManifest::FromJson(const std::string& text, const std::string& origin) {
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption(fmt::format("backup manifest \"{}\" is corrupt ({}); hint: run verify", origin, why));
  };
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not valid JSON");
  if (j.value("format", "") != kFormat) return corrupt("not a smartbackup manifest");
  if (!j.contains("version") || !j["version"].is_number_integer()) return corrupt("no version");
  if (j["version"].get<int>() > kVersion) {
    return Status::FailedPrecondition(fmt::format(
        "backup manifest \"{}\" has format version {}, newer than this smartbackup supports ({}); hint: upgrade "
        "smartbackup",
        origin, j["version"].get<int>(), kVersion));
  }
  if (!j.contains("checksum") || !j["checksum"].is_string()) return corrupt("no checksum");
  if (j["checksum"].get<std::string>() != ChecksumOf(j)) return corrupt("checksum mismatch");
  try {
    BackupManifest m;
    m.database = j.at("database").get<std::string>();
    m.system_identifier = std::stoull(j.at("system_identifier").get<std::string>());
    m.container = j.at("container").get<std::string>();
    m.backup_id = j.at("backup_id").get<std::string>();
    auto type = ParseBackupType(j.at("type").get<std::string>());
    if (!type.ok()) return corrupt(type.status().message());
    m.type = *type;
    m.timeline = j.at("timeline").get<uint32_t>();
    m.start_lsn = j.at("start_lsn").get<std::string>();
    m.end_lsn = j.at("end_lsn").get<std::string>();
    m.start_time = TimeFromJson(j.at("start_time"));
    m.finish_time = TimeFromJson(j.at("finish_time"));
    if (!j.at("expiration_time").is_null()) m.expiration_time = TimeFromJson(j.at("expiration_time"));
    m.server_version_num = j.at("server_version_num").get<int>();
    m.wal_segment_size = j.at("wal_segment_size").get<uint64_t>();
    m.compression = j.at("compression").get<std::string>();
    if (!j.at("encryption").is_null()) m.encryption_key_id = j.at("encryption").at("key_id").get<std::string>();
    m.size_bytes = j.at("size_bytes").get<uint64_t>();
    m.stored_bytes = j.at("stored_bytes").get<uint64_t>();
    for (const auto& a : j.at("archives")) {
      ArchiveRecord rec;
      rec.index = a.at("index").get<int>();
      rec.name = a.at("name").get<std::string>();
      rec.tablespace_oid = a.at("tablespace_oid").get<uint32_t>();
      rec.location = a.at("location").get<std::string>();
      rec.raw_bytes = a.at("raw_bytes").get<uint64_t>();
      for (const auto& c : a.at("chunks")) rec.chunks.push_back(RefFromJson(c));
      m.archives.push_back(std::move(rec));
    }
    if (!j.at("pg_manifest").is_null()) m.pg_manifest = RefFromJson(j.at("pg_manifest"));
    return m;
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
}

}  // namespace sb
