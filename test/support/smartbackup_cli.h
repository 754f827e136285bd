// Runs the smartbackup binary the way an operator would, as the "postgres"
// user (when the test runs as root), with extra environment variables.
#pragma once

#include <map>
#include <string>

#include "support/pg_cluster.h"

namespace sb::test {

CommandResult RunSmartbackup(const std::string& args, const std::map<std::string, std::string>& env = {});

// md5 over the ordered rows of a table, computed by the server.
std::string TableMd5(PgCluster& cluster, const std::string& table, const std::string& order_by);

// Writes a file owned by postgres (mode 0600) with the given contents.
void WritePostgresFile(const std::string& path, const std::string& contents);

// An RSA-2048 pair made by openssl as postgres in `dir` (created):
// <name>.pem (private, 0600) and <name>.pub.pem (public). False on failure.
bool MakeRsaKeyPair(const std::string& dir, const std::string& name);

}  // namespace sb::test
