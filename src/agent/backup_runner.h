// BackupRunner: runs one full or log backup of a cluster now, on the calling
// thread, as the agent does — under the cluster's storage lease (one writer
// per cluster even if two agents believe they are primary: coexistence rule 1,
// the other one backs off and says so), with the cluster's key (run as jobs: the
// JobManager records them in the job history). Back-offs are noted once per change in health and
// in the state line.
// Thread-safety: any thread; one call per cluster and backup type at a time.
#pragma once

#include <optional>
#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "agent/job_manager.h"
#include "repo/manifest.h"
#include "repo/repository.h"
#include "storage/held_lease.h"

namespace sb {

struct FullRequest {
  std::string reason;
  bool new_container = false;
  // Scheduled fulls: a full of the cluster's current lineage that finished after what the decision
  // saw means another agent took it meanwhile: kAlreadyExists, nothing written.
  bool recheck = false;
  std::optional<SystemTime> seen_last_full;
  JobContext* job = nullptr;  // optional: gets the engine's progress; its cancel token stops the backup
};

class BackupRunner {
 public:
  explicit BackupRunner(const AgentContext& ctx) : ctx_(ctx) {}

  Result<BackupManifest> RunFull(Cluster& c, const ClusterSettings& s, const FullRequest& request);
  Result<BackupManifest> RunLog(Cluster& c, const ClusterSettings& s, const std::string& reason);

  // Records a back-off once (health, log, state line): a full or log backup's until this agent
  // writes again, WAL capture's for as long as the other agent holds the stream lease.
  void NoteBackOff(Cluster& c, const std::string& message, bool stream = false);
  void ClearBackOff(Cluster& c, bool stream = false);
  // A lease held by another agent (kAlreadyExists) as the back-off line; other errors unchanged.
  static Status BackOff(const std::string& db, const Status& lease);

 private:
  // What a writer holds: the repository, the cluster's lease `lock` ("full", "log"), the key.
  struct Writer {
    std::unique_ptr<Repository> repo;
    std::unique_ptr<HeldLease> lease;
    std::optional<EncryptionKey> key;
  };
  Result<Writer> StartWriting(Cluster& c, const ClusterSettings& s, const char* lock);
  Status OtherAgentFinishedFull(Cluster& c, Repository& repo, const FullRequest& request);
  const AgentContext& ctx_;
};

// The key a writer uses: the key_file's, or with public_key a new data key sealed to it (stored
// wrapped in the repository first). nullopt without a key; *error set when it cannot be had.
std::optional<EncryptionKey> LoadWriteKey(const ClusterSettings& s, Storage& storage, Status* error);

}  // namespace sb
