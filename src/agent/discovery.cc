#include "agent/discovery.h"

#include <dirent.h>

#include <fmt/core.h>

#include <fstream>
#include <optional>

#include "common/text.h"

namespace sb {

std::map<std::string, std::string> DiscoverClusters(const std::string& root) {
  std::map<std::string, std::string> found;
  DIR* versions = ::opendir(root.c_str());
  if (!versions) return found;
  while (dirent* v = ::readdir(versions)) {
    std::string version = v->d_name;
    if (version.empty() || version[0] == '.') continue;
    std::string vdir = root + "/" + version;
    DIR* names = ::opendir(vdir.c_str());
    if (!names) continue;
    while (dirent* n = ::readdir(names)) {
      std::string name = n->d_name;
      if (name.empty() || name[0] == '.') continue;
      std::ifstream conf(vdir + "/" + name + "/postgresql.conf");
      if (!conf) continue;
      std::string line, port = "5432", socket = "/var/run/postgresql";
      while (std::getline(conf, line)) {
        std::string t = Trim(line);
        auto value = [&](const std::string& key) -> std::optional<std::string> {
          if (!StartsWith(t, key)) return std::nullopt;
          auto eq = t.find('=');
          if (eq == std::string::npos || Trim(t.substr(key.size(), eq - key.size())) != "") return std::nullopt;
          std::string val = Trim(t.substr(eq + 1));
          auto hash = val.find('#');
          if (hash != std::string::npos) val = Trim(val.substr(0, hash));
          if (val.size() >= 2 && val.front() == '\'') val = val.substr(1, val.size() - 2);
          return val;
        };
        if (auto p = value("port")) port = *p;
        if (auto s = value("unix_socket_directories")) socket = s->substr(0, s->find(','));
      }
      found[version + "-" + name] = fmt::format("host={} port={} dbname=postgres", socket, port);
    }
    ::closedir(names);
  }
  ::closedir(versions);
  return found;
}

}  // namespace sb
