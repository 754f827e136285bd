// SealScan: what SealLogBackups needs to know of one container — the WAL
// parts not sealed yet and how far each timeline is sealed — found with a
// bounded number of requests (doc/repository.md, "WAL parts,
// incrementally"): the newest log manifests by listing the backup-id time
// prefixes of the last hours and days only, then the WAL blocks after the
// newest sealed part (and after a newer full backup's start). A container
// whose recent history holds no log backup is listed whole (its WAL is all
// tail), as in format version 1.
// Thread-safety: reentrant.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "repo/repository.h"

namespace sb {

struct SealScan {
  std::vector<WalPart> parts;           // candidates, by (timeline, start); may include sealed ones
  std::map<uint32_t, Lsn> sealed_upto;  // per timeline: the furthest end of its log backups
};

Result<SealScan> ScanForSealing(Repository& repo, const std::string& db, const ContainerInfo& container);

}  // namespace sb
