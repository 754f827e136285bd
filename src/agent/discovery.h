// Discovery: the PostgreSQL clusters of a Debian host, from
// <root>/<version>/<name>/postgresql.conf, as "<version>-<name>" → conninfo.
// Thread-safety: stateless.
#pragma once

#include <map>
#include <string>

namespace sb {

std::map<std::string, std::string> DiscoverClusters(const std::string& root);

}  // namespace sb
