#include "repo/manifest.h"

#include <fmt/core.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <zstd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/lsn.h"
#include "common/encoding.h"
#include "common/text.h"
#include "repo/json_fields.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "smartbackup-backup-manifest";
constexpr int kVersion = kManifestFormatVersion;
constexpr std::string_view kMacInfo = "smartbackup manifest mac v1";

json RefToJson(const ObjectRef& r) {
  return {{"key", r.key}, {"raw_size", r.raw_size}, {"stored_size", r.stored_size}, {"sha256", r.sha256}};
}

ObjectRef RefFromJson(const json& j) {
  return ObjectRef{.key = j.at("key").get<std::string>(),
                   .raw_size = IntegerMember<uint64_t>(j, "raw_size"),
                   .stored_size = IntegerMember<uint64_t>(j, "stored_size"),
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

// What the MAC covers: the canonical dump without the checksum and the MAC.
std::string MacInput(json j) {
  j.erase("checksum");
  j.erase("mac");
  return j.dump();
}

bool IsLowerHexString(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// An LSN exactly as PostgreSQL prints it (upper-case hex, no leading zeros).
std::optional<Lsn> StrictLsn(const std::string& text) {
  auto l = Lsn::Parse(text);
  if (!l.ok() || l->ToString() != text) return std::nullopt;
  return *l;
}

// A tablespace location: informational only (restore takes directories from
// the operator's map), but still printed and compared, so absolute, of
// printable characters, without "..".
bool ValidLocation(const std::string& loc) {
  if (loc.empty() || loc[0] != '/' || loc.size() > 4096) return false;
  for (char ch : loc) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  size_t pos = 0;
  while (pos <= loc.size()) {
    size_t next = loc.find('/', pos);
    if (next == std::string::npos) next = loc.size();
    if (loc.compare(pos, next - pos, "..") == 0 && next - pos == 2) return false;
    pos = next + 1;
  }
  return true;
}

// Why a manifest's fields break the grammar of doc/repository.md, or "".
std::string GrammarError(const BackupManifest& m) {
  auto p = [](std::string_view s) { return Printable(s); };
  if (Status s = Repository::ValidateDatabaseName(m.database); !s.ok()) return s.message();
  if (Status s = Repository::ValidateContainerName(m.container); !s.ok()) return s.message();
  if (Status s = Repository::ValidateBackupId(m.backup_id); !s.ok()) return s.message();
  if (!StartsWith(m.container, fmt::format("{}-", m.system_identifier))) {
    return fmt::format("container {} is not of system identifier {}", m.container, m.system_identifier);
  }
  const char letter = m.type == BackupType::kFull ? 'F' : m.type == BackupType::kCopyOnly ? 'C' : 'L';
  if (m.backup_id[17] != letter) return fmt::format("backup id {} is not of type {}", m.backup_id, BackupTypeName(m.type));
  if (m.timeline == 0) return "timeline 0";
  auto start = StrictLsn(m.start_lsn);
  auto end = StrictLsn(m.end_lsn);
  if (!start || !end) return fmt::format("invalid LSN \"{}\" or \"{}\"", p(m.start_lsn), p(m.end_lsn));
  if (*end < *start) return "end_lsn before start_lsn";
  if (m.compression != "zstd") return fmt::format("unknown compression \"{}\"", p(m.compression));
  if (!m.encryption_key_id.empty() && !IsLowerHexString(m.encryption_key_id, 16)) {
    return fmt::format("invalid key id \"{}\"", p(m.encryption_key_id));
  }
  if (m.server_version_num < 0) return "negative server version";
  if (m.archives.size() > kMaxManifestArchives) return fmt::format("{} archives", m.archives.size());

  const std::string prefix = Repository::DataPrefix(m.database, m.container, m.backup_id);
  auto check_ref = [&](const ObjectRef& r, const std::string& want_key) -> std::string {
    if (r.key != want_key) return fmt::format("object key \"{}\" is not \"{}\"", p(r.key), want_key);
    if (!IsLowerHexString(r.sha256, 64)) return fmt::format("invalid sha256 of object \"{}\"", r.key);
    if (r.raw_size > kMaxObjectRawSize) return fmt::format("object \"{}\" over the size limit", r.key);
    if (r.stored_size > kObjectHeaderSize + ZSTD_COMPRESSBOUND(r.raw_size) + 16) {
      return fmt::format("object \"{}\" has an impossible stored size", r.key);
    }
    return "";
  };
  for (size_t i = 0; i < m.archives.size(); ++i) {
    const ArchiveRecord& a = m.archives[i];
    if (a.index != static_cast<int>(i)) return fmt::format("archive {} has index {}", i, a.index);
    if (a.chunks.size() > kMaxArchiveChunks) return fmt::format("archive {} has {} chunks", i, a.chunks.size());
    if (m.type == BackupType::kLog) {
      if (a.name != "wal" || a.tablespace_oid != 0 || !a.location.empty()) {
        return fmt::format("log backup archive \"{}\" is not \"wal\"", p(a.name));
      }
      for (const auto& c : a.chunks) {
        // A log backup's objects are WAL parts of its own database and container.
        auto part = Repository::ParseWalPartKey(c.key);
        if (!part || part->container != m.container ||
            Repository::WalPartKey(m.database, m.container, part->timeline, part->start, part->end) != c.key ||
            c.raw_size != part->end.value - part->start.value) {
          return fmt::format("object key \"{}\" is not a WAL part of this container", p(c.key));
        }
        if (std::string e = check_ref(c, c.key); !e.empty()) return e;
      }
      continue;
    }
    const bool base = a.tablespace_oid == 0;
    if (base ? a.name != "base.tar" : a.name != fmt::format("{}.tar", a.tablespace_oid)) {
      return fmt::format("archive name \"{}\" does not match tablespace oid {}", p(a.name), a.tablespace_oid);
    }
    if (base ? !a.location.empty() : !ValidLocation(a.location)) {
      return fmt::format("invalid tablespace location \"{}\"", p(a.location));
    }
    for (size_t j = 0; j < a.chunks.size(); ++j) {
      if (std::string e = check_ref(a.chunks[j], prefix + fmt::format("{:02}-{:06}", a.index, j)); !e.empty()) return e;
    }
  }
  if (m.pg_manifest) {
    if (m.type == BackupType::kLog) return "a log backup with a backup_manifest";
    if (std::string e = check_ref(*m.pg_manifest, prefix + "backup_manifest"); !e.empty()) return e;
  }
  return "";
}

}  // namespace

std::string ManifestMac(const EncryptionKey& key, std::string_view canonical) {
  // A key of its own for manifests, derived rather than reused: the data key
  // keys AES-GCM, and one key should serve one purpose.
  unsigned char mac_key[32];
  bool ok = false;
  if (EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr)) {
    if (EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf)) {
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
          OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.bytes().data()),
                                            key.bytes().size()),
          OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kMacInfo.data()),
                                            kMacInfo.size()),
          OSSL_PARAM_construct_end()};
      ok = EVP_KDF_derive(ctx, mac_key, sizeof mac_key, params) == 1;
      EVP_KDF_CTX_free(ctx);
    }
    EVP_KDF_free(kdf);
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  ok = ok && HMAC(EVP_sha256(), mac_key, sizeof mac_key, reinterpret_cast<const unsigned char*>(canonical.data()),
                  canonical.size(), mac, &mac_len) != nullptr;
  OPENSSL_cleanse(mac_key, sizeof mac_key);
  if (!ok) {
    // Only fails if the crypto library is unusable; nothing sensible to do.
    std::fputs("smartbackup: fatal: HKDF/HMAC-SHA256 unavailable\n", stderr);
    std::abort();
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

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

std::string BackupManifest::ToJson(const EncryptionKey* mac_key) const {
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
  if (mac_key != nullptr && !encryption_key_id.empty()) j["mac"] = ManifestMac(*mac_key, MacInput(j));
  j["checksum"] = ChecksumOf(j);
  return j.dump(1);
}

Result<BackupManifest> BackupManifest::FromJson(const std::string& text, const std::string& origin,
                                                const KeySource* keys) {
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption(fmt::format("backup manifest \"{}\" is corrupt ({}); hint: run verify", origin, why));
  };
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("not valid JSON");
  // json::value() throws when the member has another type: storage-controlled
  // text must never throw out of the parser (found by fuzz_manifest).
  if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kFormat) {
    return corrupt("not a smartbackup manifest");
  }
  if (!j.contains("version") || !j["version"].is_number_integer()) return corrupt("no version");
  if (j["version"].get<int64_t>() > kVersion) {
    return Status::FailedPrecondition(fmt::format(
        "backup manifest \"{}\" has format version {}, newer than this smartbackup supports ({}); hint: upgrade "
        "smartbackup",
        origin, j["version"].get<int64_t>(), kVersion));
  }
  if (j["version"].get<int64_t>() < 1) return corrupt("bad version");
  if (!j.contains("checksum") || !j["checksum"].is_string()) return corrupt("no checksum");
  BackupManifest m;
  try {
    // Checked on the parsed document itself, without the member (no deep
    // copy: listings parse tens of thousands of manifests).
    const std::string stored_checksum = j["checksum"].get<std::string>();
    j.erase("checksum");
    if (stored_checksum != Sha256Hex(j.dump())) return corrupt("checksum mismatch");
    m.database = j.at("database").get<std::string>();
    auto sysid = Repository::ParseSystemIdentifier(j.at("system_identifier").get<std::string>());
    if (!sysid) return corrupt("invalid system identifier");
    m.system_identifier = *sysid;
    m.container = j.at("container").get<std::string>();
    m.backup_id = j.at("backup_id").get<std::string>();
    auto type = ParseBackupType(j.at("type").get<std::string>());
    if (!type.ok()) return corrupt(type.status().message());
    m.type = *type;
    m.timeline = IntegerMember<uint32_t>(j, "timeline");
    m.start_lsn = j.at("start_lsn").get<std::string>();
    m.end_lsn = j.at("end_lsn").get<std::string>();
    m.start_time = TimeFromJson(j.at("start_time"));
    m.finish_time = TimeFromJson(j.at("finish_time"));
    if (!j.at("expiration_time").is_null()) m.expiration_time = TimeFromJson(j.at("expiration_time"));
    m.server_version_num = IntegerMember<int>(j, "server_version_num");
    m.wal_segment_size = IntegerMember<uint64_t>(j, "wal_segment_size");
    m.compression = j.at("compression").get<std::string>();
    if (!j.at("encryption").is_null()) {
      if (j.at("encryption").at("mode").get<std::string>() != "aes-256-gcm") return corrupt("unknown encryption mode");
      m.encryption_key_id = j.at("encryption").at("key_id").get<std::string>();
      if (m.encryption_key_id.empty()) return corrupt("empty key id");
    }
    m.size_bytes = IntegerMember<uint64_t>(j, "size_bytes");
    m.stored_bytes = IntegerMember<uint64_t>(j, "stored_bytes");
    const json& archives = j.at("archives");
    if (!archives.is_array() || archives.size() > kMaxManifestArchives) return corrupt("invalid archives");
    for (const auto& a : archives) {
      ArchiveRecord rec;
      rec.index = IntegerMember<int>(a, "index");
      rec.name = a.at("name").get<std::string>();
      rec.tablespace_oid = IntegerMember<uint32_t>(a, "tablespace_oid");
      rec.location = a.at("location").get<std::string>();
      rec.raw_bytes = IntegerMember<uint64_t>(a, "raw_bytes");
      const json& chunks = a.at("chunks");
      if (!chunks.is_array()) return corrupt("invalid chunks");
      for (const auto& c : chunks) rec.chunks.push_back(RefFromJson(c));
      m.archives.push_back(std::move(rec));
    }
    if (!j.at("pg_manifest").is_null()) m.pg_manifest = RefFromJson(j.at("pg_manifest"));
    if (std::string why = GrammarError(m); !why.empty()) return corrupt(why);
    if (j.contains("mac") && !(j["mac"].is_string() && IsLowerHexString(j["mac"].get<std::string>(), 64))) {
      return corrupt("invalid mac");
    }

    if (keys == nullptr) return m;
    // A reader with a key trusts only what a key holder wrote: plain
    // manifests and manifests without a valid MAC are refused.
    if (m.encryption_key_id.empty()) {
      return Status::Corruption(
                 fmt::format("backup manifest \"{}\" is not encrypted, but a key was given: anyone able to write "
                             "to the storage could have put it there; hint: run verify, and remove it if it is not "
                             "a backup you made without a key",
                             origin))
          .WithDetail(StatusDetail::kNotEncrypted);
    }
    ASSIGN_OR_RETURN(const EncryptionKey* key, keys->KeyFor(m.encryption_key_id));
    if (key->key_id() != m.encryption_key_id) {
      return Status::PermissionDenied(fmt::format("wrong encryption key for backup manifest \"{}\" (key id {}, the "
                                                  "backup needs {}); hint: pass the key the backup was made with",
                                                  origin, key->key_id(), m.encryption_key_id));
    }
    const std::string want = ManifestMac(*key, MacInput(j));
    const std::string got = j.contains("mac") ? j["mac"].get<std::string>() : "";
    if (got.size() != want.size() || CRYPTO_memcmp(got.data(), want.data(), want.size()) != 0) {
      return Status::Corruption(
                 fmt::format("backup manifest \"{}\" is not authenticated ({}); hint: run verify; a manifest made "
                             "by smartbackup before format version 2 has no MAC",
                             origin, got.empty() ? "no MAC" : "MAC mismatch: edited or not made with this key"))
          .WithDetail(StatusDetail::kNotAuthenticated);
    }
    return m;
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
}

Lsn BackupManifest::StartLsn() const { return Lsn::Parse(start_lsn).value_or(Lsn{}); }
Lsn BackupManifest::EndLsn() const { return Lsn::Parse(end_lsn).value_or(Lsn{}); }

}  // namespace sb
