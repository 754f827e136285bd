#include "support/background_process.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace sb::test {

std::unique_ptr<BackgroundProcess> BackgroundProcess::StartAsPostgres(const std::vector<std::string>& argv,
                                                                      const std::string& log_path) {
  std::unique_ptr<BackgroundProcess> p(new BackgroundProcess());
  p->log_path_ = log_path;
  // Everything the child needs is prepared before fork(): the child of a
  // multi-threaded process may only call async-signal-safe functions.
  uid_t uid = getuid();
  gid_t gid = getgid();
  const bool root = geteuid() == 0;
  if (root) {
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      ADD_FAILURE() << "no \"postgres\" user";
      return nullptr;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ADD_FAILURE() << "cannot open " << log_path << ": " << std::strerror(errno);
    return nullptr;
  }
  if (root && fchown(log_fd, uid, gid) != 0) {
    ADD_FAILURE() << "cannot chown " << log_path;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (chdir("/tmp") != 0) _exit(126);
    if (root) {
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(126);
    }
    // Signals the test process blocks or ignores must not leak into the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log_fd);
  p->pid_ = pid;
  return p;
}

BackgroundProcess::~BackgroundProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(30));
  }
}

bool BackgroundProcess::running() {
  if (exit_code_ || pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

void BackgroundProcess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

std::optional<int> BackgroundProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exit_code_;
}

std::string BackgroundProcess::Log() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sb::test
