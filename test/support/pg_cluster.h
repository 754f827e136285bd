// PgCluster: a throwaway PostgreSQL 15 cluster for tests, made with initdb
// and pg_ctl on 127.0.0.1 and a free port, in a temp dir owned by the
// unprivileged "postgres" user (PostgreSQL refuses to run as root; when the
// test runs as root, commands go through `runuser -u postgres --`).
// Stopped (immediate) and removed in the destructor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/testing_env.h"

namespace sb::test {

// Runs a shell command line; returns exit code, captures stdout(+stderr if merge).
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
CommandResult RunCommand(const std::string& command_line);
// Same, as the "postgres" user when we are root (else as ourselves).
CommandResult RunAsPostgres(const std::string& command_line);
std::string ShellQuote(const std::string& s);
// A fresh directory owned by postgres (mode 0700), removed by the caller.
std::string MakeTempDirForPostgres(const std::string& tag);
void RemoveTree(const std::string& path);
int FindFreePort();
// /usr/lib/postgresql/15/bin
std::string PgBinDir();

struct PgClusterOptions {
  std::string wal_level = "replica";
  std::vector<std::string> extra_conf;  // lines appended to postgresql.conf
};

class PgCluster {
 public:
  // initdb + start; aborts the test (FAIL) on error.
  static std::unique_ptr<PgCluster> Create(const PgClusterOptions& options = {});
  ~PgCluster();

  const std::string& data_dir() const { return data_dir_; }
  int port() const { return port_; }
  // "host=127.0.0.1 port=N user=postgres dbname=postgres"
  std::string conninfo() const;
  // psql -XAt -c sql; returns trimmed stdout; FAILs the test on error.
  std::string Psql(const std::string& sql, const std::string& dbname = "postgres");
  CommandResult TryPsql(const std::string& sql, const std::string& dbname = "postgres");
  void Pgbench(const std::string& args);  // e.g. "-i -s 1"
  void Start();
  void Stop(const std::string& mode = "fast");
  // Opens an existing data directory (e.g. one restored) on a new port.
  static std::unique_ptr<PgCluster> Adopt(const std::string& data_dir);

 private:
  PgCluster() = default;
  std::string root_;      // temp root we own (removed in dtor), may be empty for Adopt
  std::string data_dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace sb::test
