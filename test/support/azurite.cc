#include "support/azurite.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace sb::test {
namespace {

std::string& LastError() {
  static std::string error;
  return error;
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path == nullptr ? "/usr/local/bin:/usr/bin:/bin" : path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string Tail(const std::string& file, size_t max_chars) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_chars ? s.substr(s.size() - max_chars) : s;
}

void StopGroup(pid_t pid) {
  if (pid <= 0) return;
  kill(-pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      kill(-pid, SIGKILL);  // stragglers in the group, if any
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace

bool AzuriteServer::SkipRequested() {
  const char* v = std::getenv("SMARTBACKUP_SKIP_AZURE");
  return v != nullptr && std::string(v) == "1";
}

const std::string& AzuriteServer::StartError() { return LastError(); }

std::string AzuriteServer::FindBinary() { return FindOnPath("azurite-blob"); }

std::unique_ptr<AzuriteServer> AzuriteServer::Start() {
  std::string binary = FindBinary();
  if (binary.empty()) {
    LastError() =
        "azurite-blob not found on PATH; hint: install Azurite (npm install -g azurite) or set "
        "SMARTBACKUP_SKIP_AZURE=1 to skip the Azure tests";
    return nullptr;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sb-azurite-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    LastError() = "cannot create a temp dir for azurite: " + std::string(strerror(errno));
    return nullptr;
  }
  std::unique_ptr<AzuriteServer> server(new AzuriteServer());
  server->root_ = buf.data();
  std::string data_dir = server->root_ + "/data";
  std::string log_file = server->root_ + "/azurite.log";
  std::filesystem::create_directories(data_dir);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string failures;
  for (int attempt = 0; attempt < 3 && std::chrono::steady_clock::now() < deadline; ++attempt) {
    int port = PickFreePort();
    if (port == 0) {
      LastError() = "cannot find a free loopback port for azurite";
      return nullptr;
    }
    std::string port_str = std::to_string(port);
    std::vector<std::string> args = {binary,        "--blobHost", "127.0.0.1", "--blobPort",           port_str,
                                     "--location",  data_dir,     "--silent",  "--skipApiVersionCheck", "--disableTelemetry",
                                     "--loose"};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      LastError() = "fork failed: " + std::string(strerror(errno));
      return nullptr;
    }
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test binary
      if (getppid() != parent) _exit(127);
      int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    setpgid(pid, pid);
    server->pid_ = pid;
    server->port_ = port;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        exited = true;
        break;
      }
      if (PortAccepts(port)) return server;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (exited) {
      kill(-pid, SIGKILL);
      server->pid_ = -1;
      failures += "azurite on port " + port_str + " exited early; ";
      continue;  // probably lost a race for the port: try another
    }
    break;
  }
  LastError() = "azurite-blob did not start listening within 30 s (" + failures + "log: " +
                Tail(log_file, 2000) + ")";
  return nullptr;  // the destructor stops the process and removes the dir
}

AzuriteServer* AzuriteServer::Shared() {
  static std::mutex mu;
  static std::unique_ptr<AzuriteServer> shared;
  static bool tried = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!tried) {
    tried = true;
    shared = Start();
  }
  return shared.get();
}

AzuriteServer::~AzuriteServer() {
  StopGroup(pid_);
  if (!root_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
}

std::string AzuriteServer::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + kAccount;
}

std::string AzuriteServer::connection_string() const {
  return std::string("DefaultEndpointsProtocol=http;AccountName=") + kAccount + ";AccountKey=" + kAccountKey +
         ";BlobEndpoint=" + endpoint() + ";";
}

void AzuriteServer::Signal(int sig) const {
  if (pid_ > 0) kill(-pid_, sig);
}

}  // namespace sb::test
