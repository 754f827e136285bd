#include "engine/drill/drill_process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>

namespace sb {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;
// linux/ioprio.h: IOPRIO_WHO_PROCESS, the idle class in the top bits.
constexpr int kIoprioWhoProcess = 1;
constexpr int kIoprioIdle = 3 << 13;

}  // namespace

bool RunningAsRoot() { return ::geteuid() == 0; }

Status PostgresUser(uid_t* uid, gid_t* gid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwnam_r("postgres", &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
    return Status::NotFound("there is no \"postgres\" user to run the drill's PostgreSQL as; hint: run as the "
                            "user that owns PostgreSQL, or create that user");
  }
  *uid = pw.pw_uid;
  *gid = pw.pw_gid;
  return Status::Ok();
}

void LowerThreadPriority() {
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  ::setpriority(PRIO_PROCESS, tid, 19);
  ::syscall(SYS_ioprio_set, kIoprioWhoProcess, static_cast<int>(tid), kIoprioIdle);
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  if (argv.empty()) return Status::InvalidArgument("no command to run");
  uid_t uid = 0;
  gid_t gid = 0;
  const bool switch_user = options.as_postgres && RunningAsRoot();
  if (switch_user) RETURN_IF_ERROR(PostgresUser(&uid, &gid));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::IoError(fmt::format("pipe: {}", std::strerror(errno)));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::IoError(fmt::format("cannot start {}: {}", argv[0], std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::setsid();  // its own session: a terminal's signals do not reach the server it starts
    if (options.low_priority) {
      ::setpriority(PRIO_PROCESS, 0, 19);
      ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, kIoprioIdle);
    }
    if (switch_user) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) _exit(126);
    }
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(fds[1]);
  ProcessResult result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
    if (result.output.size() > 2 * kMaxOutput) result.output.erase(0, result.output.size() - kMaxOutput);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (result.output.size() > kMaxOutput) result.output.erase(0, result.output.size() - kMaxOutput);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (result.exit_code == 127) {
    return Status::NotFound(fmt::format("cannot run \"{}\": not found; hint: install the PostgreSQL server "
                                        "binaries (pg_ctl, pg_amcheck) of the backup's major version",
                                        argv[0]));
  }
  return result;
}

}  // namespace sb
