// Writes the seed corpora that come from smartbackup's own writers, so the
// fuzzers start from objects exactly as a repository holds them:
//   manifest/  backup manifests (full with a tablespace, encrypted, log) and
//              the repository and container descriptors a repository holds
//   object/    encoded objects, plain and encrypted under the harness key
//   agent_config/, api/  example configs and one request per API route
// The tar and WAL seeds need GNU tar and a PostgreSQL cluster: make_seeds.sh.
// Usage: fuzz_make_seeds CORPUS_DIR
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/clock.h"
#include "fuzz_util.h"
#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"

namespace {

std::string g_root;

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string d = g_root + "/" + dir;
  std::string cmd = "mkdir -p '" + d + "'";
  if (std::system(cmd.c_str()) != 0) std::abort();
  std::ofstream out(d + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s/%s\n", d.c_str(), name.c_str());
    std::exit(1);
  }
}

template <typename T>
T Must(sb::Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void MustOk(const sb::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", s.message().c_str());
    std::exit(1);
  }
}

sb::ObjectRef Chunk(const std::string& prefix, int n, const std::string& plain, const sb::EncryptionKey* key) {
  const std::string k = prefix + std::to_string(n) + ".zst";  // the prefix ends in "/"
  auto e = Must(sb::EncodeObject(plain, k, {.key = key}));
  return {.key = k, .raw_size = e.raw_size, .stored_size = e.bytes.size(), .sha256 = e.sha256};
}

void Manifests() {
  const sb::SystemTime t0(std::chrono::seconds(1790000000));
  auto storage = std::make_unique<sb::MemoryStorage>();
  sb::MemoryStorage* raw = storage.get();
  sb::ManualClock clock(t0);
  auto repo = Must(sb::Repository::Open(std::move(storage), /*create=*/true, &clock));
  auto container = Must(repo->EnsureContainer("main", 7312345678901234567ULL, 1, "first backup"));
  Must(repo->EnsureContainer("main", 7312345678901234567ULL, 2, "promotion"));

  for (int variant = 0; variant < 3; ++variant) {
    const bool encrypted = variant == 1;
    const sb::BackupType type = variant == 2 ? sb::BackupType::kLog : sb::BackupType::kFull;
    sb::BackupManifest m;
    m.database = "main";
    m.system_identifier = 7312345678901234567ULL;
    m.container = container.name;
    m.backup_id = sb::Repository::NewBackupId(t0 + std::chrono::minutes(variant), type);
    m.type = type;
    m.timeline = 1;
    m.start_lsn = "0/3000028";
    m.end_lsn = "0/3000138";
    m.start_time = t0;
    m.finish_time = t0 + std::chrono::seconds(42);
    if (variant == 0) m.expiration_time = t0 + std::chrono::hours(24 * 7);
    m.server_version_num = 150008;
    m.wal_segment_size = 16 << 20;
    const sb::EncryptionKey* key = encrypted ? &sb::fuzz::FuzzKey() : nullptr;
    if (encrypted) m.encryption_key_id = key->key_id();
    const std::string prefix = sb::Repository::DataPrefix(m.database, m.container, m.backup_id);
    if (type == sb::BackupType::kLog) {
      sb::ArchiveRecord wal{.index = 0, .name = "wal", .raw_bytes = 16 << 20};
      wal.chunks.push_back(Chunk(prefix, 0, std::string(4096, 'w'), key));
      m.archives.push_back(wal);
    } else {
      sb::ArchiveRecord base{.index = 0, .name = "base.tar", .raw_bytes = 3 << 20};
      base.chunks.push_back(Chunk(prefix, 0, "PG_VERSION 15\n", key));
      base.chunks.push_back(Chunk(prefix, 1, std::string(8192, 'b'), key));
      sb::ArchiveRecord ts{.index = 1, .name = "16384.tar", .tablespace_oid = 16384,
                           .location = "/srv/pg/ts1", .raw_bytes = 8192};
      ts.chunks.push_back(Chunk(prefix, 2, std::string(8192, 't'), key));
      m.archives.push_back(base);
      m.archives.push_back(ts);
      m.pg_manifest = Chunk(prefix, 3, "{\"PostgreSQL-Backup-Manifest-Version\": 1}", key);
    }
    for (const auto* o : m.AllObjects()) {
      m.size_bytes += o->raw_size;
      m.stored_bytes += o->stored_size;
    }
    MustOk(repo->WriteManifest(m));
  }
  // Everything JSON the repository now holds, exactly as stored.
  auto page = Must(raw->List("", ""));
  int n = 0;
  for (const auto& o : page.objects) {
    if (o.key.size() < 5 || o.key.compare(o.key.size() - 5, 5, ".json") != 0) continue;
    const char* kind = o.key.find("/containers/") != std::string::npos ? "container-"
                       : o.key.find('/') == std::string::npos      ? "repository-"
                                                                    : "manifest-";
    Write("manifest", kind + std::to_string(n++) + ".json", Must(raw->Get(o.key)));
  }
}

void Objects() {
  const std::string texts[] = {"", "base/1/1259\n", std::string(8192, 'p'),
                               "PG_VERSION 15\nglobal/pg_control a little text that compresses a little"};
  int n = 0;
  for (const auto& t : texts) {
    Write("object", "plain-" + std::to_string(n), Must(sb::EncodeObject(t, sb::fuzz::kObjectKey, {})).bytes);
    Write("object", "encrypted-" + std::to_string(n),
          Must(sb::EncodeObject(t, sb::fuzz::kObjectKey, {.key = &sb::fuzz::FuzzKey()})).bytes);
    ++n;
  }
}

void Configs() {
  Write("agent_config", "example.toml", R"toml(# smartbackup agent configuration (see README "Configuration").
[agent]
state_dir = "/var/lib/smartbackup"
socket    = "/run/smartbackup/agent.sock"
discover  = true
discover_root = "/etc/postgresql"
max_parallel_fulls = 4
loop_interval = "10s"

[defaults]
enabled        = false
storage_url    = "file:///var/backups/smartbackup"
retention_days = 7
mode           = "stream"
full_max_age   = "7d"
full_max_wal   = "1GiB"
log_max_age    = "2h"
log_max_wal    = "5MiB"

[[cluster]]
name     = "main"
conninfo = "host=/var/run/postgresql port=5432 user=smartbackup dbname=postgres"
enabled  = true

[[cluster]]
name     = "reporting"
conninfo = "host=10.0.0.7 port=5433"
mode     = "archive"
storage_url = "azure://backups/reporting"
)toml");
  Write("agent_config", "minimal.toml", "[[cluster]]\nname = \"main\"\nconninfo = \"port=5432\"\n");
  Write("agent_config", "bad-key.toml", "[agent]\nstate_dir = \"/x\"\nretention_dayz = 3\n\n[defaults]\nmode = 'x'\n");
}

void ApiRequests() {
  const char* requests[] = {
      "GET /v1/status\n",
      "GET /v1/health?since=2026-11-30T06:00:00Z\n",
      "GET /v1/instance-config\n",
      ("POST /v1/instance-config\n{\"enable\":true,\"settings\":{\"storage_url\":\"file://@SCRATCH@/repo\","
       "\"retention_days\":\"3\",\"mode\":\"stream\"}}"),
      "GET /v1/db/main/config\n",
      "POST /v1/db/main/config\n{\"enable\":false,\"settings\":{\"full_max_age\":\"1d\",\"log_max_wal\":\"16MiB\"}}",
      "POST /v1/db/main/config\n{\"enable\":null,\"settings\":{\"mode\":\"archive\",\"retention_days\":7}}",
      "POST /v1/master-switch\n{\"on\":false}",
      "POST /v1/db/main/backup\n{\"type\":\"full\"}",
      "POST /v1/db/main/backup\n{\"type\":\"log\"}",
      "GET /v1/db/other/config\n",
      "DELETE /v1/status\n",
  };
  int n = 0;
  for (const char* r : requests) Write("api", "request-" + std::to_string(n++), r);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  g_root = argv[1];
  Manifests();
  Objects();
  Configs();
  ApiRequests();
  return 0;
}
