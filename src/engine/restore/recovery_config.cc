#include "engine/restore/recovery_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/core.h>

#include "common/text.h"
#include "common/beneath.h"

namespace sb {
namespace {

// PostgreSQL timestamptz input with microseconds: "2026-11-25 02:33:28.123456+00".
std::string PgTimestamp(SystemTime t) {
  auto secs = std::chrono::floor<std::chrono::seconds>(t);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  std::string base = FormatRfc3339(secs);  // "2026-11-25T02:33:28Z"
  return fmt::format("{} {}.{:06}+00", base.substr(0, 10), base.substr(11, 8), micros);
}

bool IsPlainBackupId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(fmt::format("cannot write \"{}\": {}", path, std::strerror(errno)));
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Opens `name` directly beneath dirfd, refusing a symlink in its place.
Result<int> OpenConfigFile(int dirfd, const std::string& dir, const char* name, int flags) {
  int fd = OpenBeneath(dirfd, name, flags, 0600);
  if (fd < 0) {
    int e = errno;
    std::string path = dir + "/" + name;
    if (e == ELOOP) {
      return Status::Corruption(fmt::format(
          "\"{}\" is a symlink in the restored data directory; hint: the backup is not a plain base backup, run "
          "verify",
          path));
    }
    return Status::IoError(fmt::format("cannot open \"{}\": {}", path, std::strerror(e)));
  }
  return fd;
}

}  // namespace

Status ValidateRecoveryCommandInputs(const RestoreOptions& o) {
  const std::pair<const char*, const std::string*> values[] = {
      {"the smartbackup binary path", &o.smartbackup_path}, {"--repo", &o.repo_url},
      {"--db", &o.database},                                {"--key-file", &o.key_file},
      {"--private-key", &o.private_key_file},
  };
  for (const auto& [what, value] : values) {
    if (HasControlCharacter(*value)) {
      return Status::InvalidArgument(fmt::format(
          "{} \"{}\" holds a control character (newline, carriage return, tab or other) and cannot be written into "
          "restore_command; hint: use a path or URL without one",
          what, Printable(*value)));
    }
  }
  return Status::Ok();
}

std::string QuoteShellArgument(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";  // close the quote, an escaped quote, reopen
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::string QuoteConfigValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\\') {
      out += "\\\\";  // the config lexer reads \x as an escape
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::string RestoreCommand(const RestoreOptions& o, uint64_t system_identifier) {
  // PostgreSQL replaces %f, %p, %r and %% anywhere in restore_command, quotes
  // or not: a literal % in a value (a URL-encoded path, "100%p") is written %%.
  auto arg = [](const std::string& value) {
    std::string escaped;
    for (char c : value) {
      if (c == '%') escaped += '%';
      escaped.push_back(c);
    }
    return QuoteShellArgument(escaped);
  };
  // %f and %p stay outside the quotes: PostgreSQL substitutes a WAL file
  // name and a pg_wal/ path it made itself.
  std::string command = arg(o.smartbackup_path) + " wal-get %f %p --repo " + arg(o.repo_url) + " --db " +
                        arg(o.database) + " --sysid " + std::to_string(system_identifier);
  if (!o.key_file.empty()) command += " --key-file " + arg(o.key_file);
  if (!o.private_key_file.empty()) command += " --private-key " + arg(o.private_key_file);
  // Numbers only: nothing to quote.
  if (o.wal_segment_size != 0) {
    command += " --wal-segment-size " + std::to_string(o.wal_segment_size);
    if (o.prefetch_depth > 0) command += " --prefetch " + std::to_string(o.prefetch_depth);
  }
  return command;
}

Status WriteRecoveryConfig(const std::string& dir, uint64_t system_identifier, const std::string& backup_id,
                           const RestoreOptions& o) {
  RETURN_IF_ERROR(ValidateRecoveryCommandInputs(o));
  std::string conf = IsPlainBackupId(backup_id) ? "\n# Added by smartbackup restore of backup " + backup_id + ".\n"
                                                : std::string("\n# Added by smartbackup restore.\n");
  conf += "restore_command = " + QuoteConfigValue(RestoreCommand(o, system_identifier)) + "\n";
  conf += "recovery_target_timeline = 'latest'\n";
  if (o.target.kind == RecoveryTarget::Kind::kTime) {
    conf += "recovery_target_time = " + QuoteConfigValue(PgTimestamp(o.target.time)) + "\n";
  } else if (o.target.kind == RecoveryTarget::Kind::kLsn) {
    conf += "recovery_target_lsn = " + QuoteConfigValue(o.target.lsn.ToString()) + "\n";
  }
  if (o.target.kind != RecoveryTarget::Kind::kLatest) conf += "recovery_target_action = 'promote'\n";
  // The copy must not push its own WAL into the source's archive.
  conf += "archive_mode = 'off'\n";

  int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return Status::IoError(fmt::format("cannot open \"{}\": {}", dir, std::strerror(errno)));
  Status s;
  auto conf_fd = OpenConfigFile(dirfd, dir, "postgresql.auto.conf", O_WRONLY | O_APPEND | O_CREAT);
  if (conf_fd.ok()) {
    s = WriteAll(*conf_fd, conf, dir + "/postgresql.auto.conf");
    if (::close(*conf_fd) != 0 && s.ok()) {
      s = Status::IoError(fmt::format("cannot write \"{}/postgresql.auto.conf\"", dir));
    }
  } else {
    s = conf_fd.status();
  }
  if (s.ok()) {
    auto signal_fd = OpenConfigFile(dirfd, dir, "recovery.signal", O_WRONLY | O_CREAT | O_TRUNC);
    if (signal_fd.ok()) {
      if (::close(*signal_fd) != 0) s = Status::IoError(fmt::format("cannot write \"{}/recovery.signal\"", dir));
    } else {
      s = signal_fd.status();
    }
  }
  ::close(dirfd);
  return s;
}

}  // namespace sb
