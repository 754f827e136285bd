// BackgroundProcess: runs a program in the background (as the "postgres"
// user when the test runs as root), with stdout and stderr going to a log
// file, and lets the test signal the real process — not a runuser/sh wrapper
// in between — and wait for it with a bounded deadline. fork() + setgid/
// setuid + execv, so the pid we hold is the program's own.
// Killed (SIGKILL) and reaped in the destructor if still running.
// Thread-safety: one owner thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sb::test {

class BackgroundProcess {
 public:
  // argv[0] must be an absolute path. log_path receives stdout+stderr
  // (created, owned by postgres). Returns nullptr (with a gtest failure) if
  // the fork fails.
  static std::unique_ptr<BackgroundProcess> StartAsPostgres(const std::vector<std::string>& argv,
                                                            const std::string& log_path);
  ~BackgroundProcess();

  pid_t pid() const { return pid_; }
  bool running();  // not yet exited (reaps it if it has)
  void Signal(int sig);
  // Waits up to `timeout` for the process to exit; its exit code (128+N for
  // signal N), or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // The log so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  BackgroundProcess() = default;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

}  // namespace sb::test
