// Compaction: stream mode writes a WAL part per flush (every few seconds), so
// the object count would grow with wall-clock time. When a run of parts is
// sealed into a log backup, the parts of the run that lie in one WAL segment
// are merged into one object, named by its range like any part
// (db/<db>/wal/<container>/<tli>/<start>-<end>, put-if-absent; an existing
// one is decoded and compared, identical ⇒ reused), and the log manifest
// references the merged objects. The per-flush parts stay until retention
// removes them (PartsReplacedByCompaction): only once a log manifest that
// reads back verified references a part containing their range.
//
// Crash safety: until the manifest is written, the merged objects are extra
// parts overlapping identical WAL (readers take either; the next seal merges
// again and reuses or extends them); after it, the small parts are extra;
// retention deletes only keys it listed. Parts that cannot be decoded here
// (a public-key writer's single-use keys, a plain part under a key, damage)
// are referenced as they are, as before compaction.
// Thread-safety: stateless functions; concurrent sealers are safe
// (put-if-absent, identical content).
#pragma once

#include <string>
#include <vector>

#include "engine/wal/wal_archive.h"
#include "repo/manifest.h"
#include "repo/repository.h"

namespace sb {

// The log manifest's object list for `run` (consecutive parts of one
// timeline, in LSN order): one merged object per segment where the run has
// two or more parts inside it, the part itself otherwise. `known`: SHA-256 of
// parts this process wrote (saves reading them back).
Result<std::vector<ObjectRef>> CompactRun(Repository& repo, const std::string& db, const std::vector<WalPart>& run,
                                          uint64_t segment_size, const EncryptionKey* key,
                                          const KnownPartHashes& known);

// `parts` without those that contain another part of the same container
// and timeline: an unsealed merged object left by an interrupted seal (or
// planted) is not taken as it is; the finer parts are merged again, and the
// object reused only if it holds exactly their bytes. Sorted by timeline and start.
std::vector<WalPart> WithoutContainingParts(std::vector<WalPart> parts);

// Listed WAL parts of `db` that no manifest references and whose range lies
// within a listed part referenced by a readable log manifest (same container
// and timeline): what compaction replaced, which retention may delete.
std::vector<std::string> PartsReplacedByCompaction(const std::string& db, const std::vector<BackupManifest>& manifests,
                                                   const std::vector<ObjectInfo>& listed);

}  // namespace sb
