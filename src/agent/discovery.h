// Discovery: which PostgreSQL clusters this host runs (Debian layout,
// <root>/<version>/<name>/postgresql.conf) and how to reach them, read from
// their configuration the way the server itself reads it (PostgreSQL's
// guc-file.l and "Parameter Interaction via the Configuration File"):
//   - one `name = value` or `name value` per line, `#` comments; names are
//     case-insensitive; the last setting of a name wins;
//   - values: a quoted string ('' and backslash escapes), or an unquoted
//     word, number or identifier; anything else is a syntax error;
//   - include / include_if_exists / include_dir, relative paths resolved
//     against the including file's directory; include_dir reads the `*.conf`
//     files of a directory in byte order, skipping names starting with '.';
//     includes nest at most kMaxConfigIncludeDepth deep (this also ends cycles);
//   - then postgresql.auto.conf (ALTER SYSTEM) from the data directory, which
//     `data_directory` names (default: the configuration file's directory).
// A file the server would refuse (syntax error, a missing `include`) fails
// the whole read, as it fails the server's start.
// Thread-safety: free functions over the file system; safe to call from any thread.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sb {

// PostgreSQL's CONF_FILE_MAX_DEPTH: postgresql.conf is depth 0.
inline constexpr int kMaxConfigIncludeDepth = 10;
// Larger files are refused: no real configuration comes close, /dev/zero does.
inline constexpr size_t kMaxConfigFileBytes = 16 << 20;

// One `name = value` line of one file, value unquoted and unescaped.
struct PgConfigLine {
  std::string name;  // as written
  std::string value;
  int line = 0;  // 1-based
};

// The lines of one file's text, include directives among them (not followed).
// kInvalidArgument on the first syntax error, naming `file` and the line.
Result<std::vector<PgConfigLine>> ParseConfigLines(std::string_view text, const std::string& file);

struct PgSetting {
  std::string value;
  std::string file;  // absolute path of the file that set it last
  int line = 0;
};

struct PgSettingsFile {
  std::map<std::string, PgSetting> settings;  // by lower-case name; include directives excluded
  std::string data_directory;                 // absolute; where postgresql.auto.conf was looked for
  std::vector<std::string> files_read;        // absolute paths, in reading order
  std::vector<std::string> files_skipped;     // include_if_exists / auto.conf that could not be opened

  // The effective value of `name` (any case), or nullptr when no file sets it.
  const std::string* Find(std::string_view name) const;
};

// Reads `conf_path` (postgresql.conf), everything it includes, then
// postgresql.auto.conf. kNotFound when conf_path or a strict include is
// missing, kInvalidArgument for a syntax error or nesting too deep,
// kIoError/kPermissionDenied when a file cannot be read.
Result<PgSettingsFile> ReadEffectiveSettings(const std::string& conf_path);

// The entries of a unix_socket_directories value, as the server splits it:
// comma-separated, each optionally double-quoted ("" for a quote inside),
// blanks around entries ignored. Empty value → no entries. kInvalidArgument
// for an empty entry or an unterminated quote.
Result<std::vector<std::string>> SplitSocketDirectories(std::string_view value);

// How to reach the cluster that `conf_path` configures:
// "host=<first unix socket directory> port=<port> dbname=postgres", with
// PostgreSQL's defaults 5432 and /var/run/postgresql. Errors say why the
// cluster cannot be reached through its configuration.
Result<std::string> DiscoverClusterConninfo(const std::string& conf_path);

// Every cluster under `root` (Debian layout): "<version>-<name>" → conninfo.
// A cluster whose configuration cannot be read is left out, with the reason
// logged at debug level. A missing root yields an empty map.
std::map<std::string, std::string> DiscoverClusters(const std::string& root);

}  // namespace sb
