#include "engine/drill/drill_scratch.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/text.h"
#include "engine/drill/drill_process.h"
#include "repo/drill_record.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

// Running, not a zombie that has exited and waits for its parent.
bool ProcessAlive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text;
  std::getline(stat, text);
  const auto paren = text.rfind(')');
  return !(paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z');
}

// The first line of a file as a pid, or 0.
pid_t ReadPid(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return 0;
  // The marker is "smartbackup-drill <pid>"; postmaster.pid starts with the pid.
  if (StartsWith(line, "smartbackup-drill ")) line = line.substr(18);
  try {
    const long v = std::stol(line);
    return v > 0 && v < (1L << 22) ? static_cast<pid_t>(v) : 0;
  } catch (...) {
    return 0;
  }
}

// The postmaster running from `data`: the pid its postmaster.pid names, if that process's working
// directory is `data` (a postmaster chdirs into its data directory), so a reused pid is never signalled.
pid_t RunningPostmaster(const std::string& data) {
  const pid_t pid = ReadPid(data + "/postmaster.pid");
  if (pid == 0 || !ProcessAlive(pid)) return 0;
  std::error_code ec;
  const fs::path cwd = fs::read_symlink(fmt::format("/proc/{}/cwd", pid), ec);
  if (ec) return 0;
  const fs::path want = fs::weakly_canonical(data, ec);
  return !ec && cwd == want ? pid : 0;
}

Status Chown(const std::string& path, uid_t uid, gid_t gid) {
  if (::lchown(path.c_str(), uid, gid) != 0) {
    return Status::IoError(fmt::format("cannot give \"{}\" to the postgres user: {}", path, std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace

Result<DrillDir> CreateDrillDir(const std::string& scratch_dir, const std::string& drill_id) {
  RETURN_IF_ERROR(ValidateDrillId(drill_id));
  if (scratch_dir.empty() || scratch_dir[0] != '/') {
    return Status::InvalidArgument(fmt::format("the drill scratch directory \"{}\" is not an absolute path", scratch_dir));
  }
  std::error_code ec;
  const bool made_scratch = !fs::exists(scratch_dir, ec);
  fs::create_directories(scratch_dir, ec);
  if (ec) {
    return Status::IoError(fmt::format("cannot create the drill scratch directory \"{}\": {}; hint: set "
                                       "drill_scratch_dir (or --scratch-dir) to a writable directory",
                                       scratch_dir, ec.message()));
  }
  uid_t uid = 0;
  gid_t gid = 0;
  const bool root = RunningAsRoot();
  if (root) {
    RETURN_IF_ERROR(PostgresUser(&uid, &gid));
    if (made_scratch) RETURN_IF_ERROR(Chown(scratch_dir, uid, gid));
  }
  DrillDir d{.root = scratch_dir + "/" + drill_id};
  if (::mkdir(d.root.c_str(), 0700) != 0) {
    return Status::IoError(fmt::format("cannot create \"{}\": {}", d.root, std::strerror(errno)));
  }
  {
    std::ofstream marker(d.marker());
    marker << "smartbackup-drill " << ::getpid() << "\n";
    if (!marker) return Status::IoError(fmt::format("cannot write \"{}\"", d.marker()));
  }
  for (const auto& sub : {d.data(), d.socket_dir(), d.conf_dir()}) {
    if (::mkdir(sub.c_str(), 0700) != 0) {
      return Status::IoError(fmt::format("cannot create \"{}\": {}", sub, std::strerror(errno)));
    }
  }
  if (root) {
    for (const auto& p : {d.root, d.marker(), d.data(), d.socket_dir(), d.conf_dir()}) RETURN_IF_ERROR(Chown(p, uid, gid));
  }
  return d;
}

Status RemoveDrillDir(const DrillDir& dir) {
  if (const pid_t pm = RunningPostmaster(dir.data())) {
    ::kill(pm, SIGQUIT);  // immediate shutdown: the copy's state does not matter
    for (int i = 0; i < 300 && ProcessAlive(pm); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (ProcessAlive(pm)) ::kill(pm, SIGKILL);
    for (int i = 0; i < 50 && ProcessAlive(pm); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::error_code ec;
  fs::remove_all(dir.root, ec);  // does not follow symlinks
  if (ec) return Status::IoError(fmt::format("cannot remove the drill directory \"{}\": {}", dir.root, ec.message()));
  return Status::Ok();
}

OrphanCleanup CleanOrphanDrills(const std::string& scratch_dir) {
  OrphanCleanup out;
  std::error_code ec;
  if (scratch_dir.empty() || !fs::is_directory(scratch_dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(scratch_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!ValidateDrillId(name).ok() || entry.is_symlink() || !entry.is_directory()) continue;
    DrillDir d{.root = entry.path().string()};
    const pid_t owner = ReadPid(d.marker());
    if (owner != 0 && owner != ::getpid() && ProcessAlive(owner)) continue;  // a drill running now
    if (owner == ::getpid()) continue;
    const bool server = RunningPostmaster(d.data()) != 0;
    Status s = RemoveDrillDir(d);
    if (s.ok()) {
      out.removed.push_back(d.root);
      out.servers_stopped += server;
    } else {
      out.errors.push_back(s);
    }
  }
  return out;
}

Result<uint64_t> FreeBytes(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  while (!p.empty() && !fs::exists(p, ec)) p = p.parent_path();
  struct statvfs st;
  if (p.empty() || ::statvfs(p.c_str(), &st) != 0) {
    return Status::IoError(fmt::format("cannot read the free space of \"{}\": {}", path, std::strerror(errno)));
  }
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace sb
