// What status shows of a cluster's repository: every restore window, the
// newest full and log backup (whatever timeline or container: a DBA asks
// "when was the last backup", not "the last one after the newest full"), and
// the recovery point. Published from a WalCatalog by the observer at each pass
// and by the backup runner right after a backup it took, so that status is
// fresh after backup-on-demand instead of waiting for the next pass.
// Thread-safety: PublishCatalogLocked requires c.mu held; RefreshCatalog locks it.
#pragma once

#include "agent/cluster.h"
#include "engine/wal/wal_catalog.h"
#include "repo/repository.h"

namespace sb {

void PublishCatalogLocked(Cluster& c, const WalCatalog& catalog);

// Loads the catalogue of c (its last observed system identifier) and publishes it. Cost: one
// WalCatalog::Load. A failure leaves the published values as they were (the next pass retries).
void RefreshCatalog(Cluster& c, Repository& repo);

}  // namespace sb
