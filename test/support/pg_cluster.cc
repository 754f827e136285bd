#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "common/text.h"

namespace sb::test {
namespace {

// Thrown after ADD_FAILURE() so a broken fixture aborts the current test
// (gtest reports the exception) instead of crashing on a null cluster.
class PgClusterError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& message) {
  ADD_FAILURE() << message;
  throw PgClusterError(message);
}

std::string ReadTail(const std::string& path, size_t max_bytes = 4000) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log at " + path + ")";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

void AppendToFile(const std::string& path, const std::string& text) {
  // Appending keeps the file's owner (postgres) even when we are root.
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
  out.close();
  if (!out) Fail("cannot append to " + path);
}

bool IsRoot() { return geteuid() == 0; }

}  // namespace

std::string PgBinDir() { return "/usr/lib/postgresql/15/bin"; }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

CommandResult RunCommand(const std::string& command_line) {
  CommandResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (pipe(out_pipe) != 0) return result;
  if (pipe(err_pipe) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    result.err = std::string("fork failed: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    execl("/bin/sh", "sh", "-c", command_line.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

CommandResult RunAsPostgres(const std::string& command_line) {
  if (!IsRoot()) return RunCommand(command_line);
  // cd first: postgres may not be allowed into our working directory.
  return RunCommand("cd /tmp && runuser -u postgres -- /bin/sh -c " + ShellQuote(command_line));
}

std::string MakeTempDirForPostgres(const std::string& tag) {
  std::string clean;
  for (char c : tag) clean += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  std::string tmpl = "/tmp/sb-" + clean + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) Fail("mkdtemp " + tmpl + ": " + std::strerror(errno));
  std::string dir(buf.data());
  if (IsRoot()) {
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) Fail("no \"postgres\" user on this machine; hint: install postgresql-15");
    if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) Fail("chown " + dir + ": " + std::strerror(errno));
  }
  if (chmod(dir.c_str(), 0700) != 0) Fail("chmod " + dir + ": " + std::strerror(errno));
  return dir;
}

void RemoveTree(const std::string& path) {
  if (path.empty() || path == "/") return;
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

int FindFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    Fail("cannot find a free port: " + err);
  }
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::unique_ptr<PgCluster> PgCluster::Create(const PgClusterOptions& options) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  c->root_ = MakeTempDirForPostgres("pg");
  c->data_dir_ = c->root_ + "/data";
  CommandResult init = RunAsPostgres(PgBinDir() + "/initdb -D " + ShellQuote(c->data_dir_) +
                                     " -A trust --auth-local=trust --auth-host=trust -U postgres --no-sync -k "
                                     "-E UTF8 --locale=C");
  if (init.exit_code != 0) Fail("initdb failed (exit " + std::to_string(init.exit_code) + "): " + init.err + init.out);
  std::string conf;
  conf += "\n# added by PgCluster (tests)\n";
  conf += "listen_addresses = '127.0.0.1'\n";
  conf += "unix_socket_directories = '" + c->root_ + "'\n";
  conf += "wal_level = " + options.wal_level + "\n";
  conf += "max_wal_senders = 10\n";
  conf += "max_replication_slots = 10\n";
  conf += "fsync = off\n";
  conf += "synchronous_commit = off\n";
  conf += "full_page_writes = on\n";
  conf += "shared_buffers = 32MB\n";
  conf += "log_min_messages = warning\n";
  for (const auto& line : options.extra_conf) conf += line + "\n";
  AppendToFile(c->data_dir_ + "/postgresql.conf", conf);
  AppendToFile(c->data_dir_ + "/pg_hba.conf",
               "\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n");
  // A port found free may be taken by a parallel test before we bind it:
  // retry with another one. port is set last in postgresql.auto.conf style
  // (later lines win), so each attempt appends a new value.
  for (int attempt = 0;; ++attempt) {
    c->port_ = FindFreePort();
    AppendToFile(c->data_dir_ + "/postgresql.conf", "port = " + std::to_string(c->port_) + "\n");
    CommandResult r = RunAsPostgres(PgBinDir() + "/pg_ctl -D " + ShellQuote(c->data_dir_) + " -l " +
                                    ShellQuote(c->root_ + "/server.log") + " -w -t 60 start");
    if (r.exit_code == 0) {
      c->running_ = true;
      return c;
    }
    std::string log = ReadTail(c->root_ + "/server.log");
    if (attempt < 3 && log.find("could not bind") != std::string::npos) continue;
    Fail("pg_ctl start failed: " + r.err + r.out + "\nserver log:\n" + log);
  }
}

std::unique_ptr<PgCluster> PgCluster::Adopt(const std::string& data_dir) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  c->root_ = MakeTempDirForPostgres("adopt");
  c->data_dir_ = data_dir;
  c->port_ = FindFreePort();
  if (IsRoot()) {
    // The restored directory must belong to postgres and be private, or the
    // server refuses to start.
    RunCommand("chown -R postgres:postgres " + ShellQuote(data_dir));
  }
  chmod(data_dir.c_str(), 0700);
  AppendToFile(data_dir + "/postgresql.auto.conf",
               "\n# added by PgCluster::Adopt\nport = " + std::to_string(c->port_) + "\nunix_socket_directories = '" +
                   c->root_ + "'\n");
  c->Start();
  return c;
}

PgCluster::~PgCluster() {
  if (running_) {
    RunAsPostgres(PgBinDir() + "/pg_ctl -D " + ShellQuote(data_dir_) + " -m immediate -w -t 60 stop");
    running_ = false;
  }
  RemoveTree(root_);
}

std::string PgCluster::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres";
}

CommandResult PgCluster::TryPsql(const std::string& sql, const std::string& dbname) {
  return RunAsPostgres(PgBinDir() + "/psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + std::to_string(port_) +
                       " -U postgres -d " + ShellQuote(dbname) + " -c " + ShellQuote(sql));
}

std::string PgCluster::Psql(const std::string& sql, const std::string& dbname) {
  CommandResult r = TryPsql(sql, dbname);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "psql failed (exit " << r.exit_code << ") for: " << sql << "\n"
                  << r.err << "\nserver log tail:\n"
                  << ReadTail(root_ + "/server.log", 2000);
  }
  return Trim(r.out);
}

void PgCluster::Pgbench(const std::string& args) {
  CommandResult r = RunAsPostgres(PgBinDir() + "/pgbench -h 127.0.0.1 -p " + std::to_string(port_) +
                                  " -U postgres " + args + " postgres");
  if (r.exit_code != 0) {
    ADD_FAILURE() << "pgbench " << args << " failed (exit " << r.exit_code << "):\n"
                  << r.err << "\nserver log tail:\n"
                  << ReadTail(root_ + "/server.log", 2000);
  }
}

void PgCluster::Start() {
  CommandResult r = RunAsPostgres(PgBinDir() + "/pg_ctl -D " + ShellQuote(data_dir_) + " -l " +
                                  ShellQuote(root_ + "/server.log") + " -w -t 120 start");
  if (r.exit_code != 0) {
    Fail("pg_ctl start failed for " + data_dir_ + ": " + r.err + r.out + "\nserver log:\n" +
         ReadTail(root_ + "/server.log"));
  }
  running_ = true;
}

void PgCluster::Stop(const std::string& mode) {
  CommandResult r =
      RunAsPostgres(PgBinDir() + "/pg_ctl -D " + ShellQuote(data_dir_) + " -m " + mode + " -w -t 120 stop");
  if (r.exit_code != 0) {
    ADD_FAILURE() << "pg_ctl stop -m " << mode << " failed: " << r.err << r.out << "\nserver log tail:\n"
                  << ReadTail(root_ + "/server.log", 2000);
    return;
  }
  running_ = false;
}

}  // namespace sb::test
