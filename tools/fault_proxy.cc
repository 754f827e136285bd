// fault_proxy: a small HTTP/1.1 TCP proxy that injects storage faults between
// a client (the smartbackup agent) and a storage endpoint (Azurite), for
// bench/chaos.sh. Not part of the product.
//
//   fault_proxy --listen PORT --upstream HOST:PORT --control FILE [--seed S]
//
// Each client connection gets its own upstream connection. Requests from the
// client are parsed (head + Content-Length body) so that a fault can be
// decided per request; responses are piped back unparsed (HTTP/1.1 clients
// such as libcurl do not pipeline, so when a new request arrives the previous
// response is complete and the proxy may answer in its place). A request with
// a chunked body switches that connection to a plain pipe.
//
// The control file holds one line, re-read whenever its mtime changes:
//   pass                  forward everything (also the state when the file is absent)
//   503 P | 500 P | 429 P answer that status (Azure-like XML error, connection kept) with probability P
//   reset P               with probability P cut the connection with a TCP RST, either before the
//                         request is forwarded or half-way through its body
// Entering "reset" also resets every open connection once (dead pooled connections).
// Counters go to stderr every 10 s, on SIGUSR1 (bench/scale.sh reads them
// before and after a window to count the requests a client made) and on
// SIGTERM/SIGINT.
//
// Threads: one acceptor, two per connection (client->upstream parses and
// injects, upstream->client pipes). Shared state: the fault mode (mutex) and
// counters (atomics).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace {

struct Mode {
  std::string kind = "pass";  // pass, 503, 500, 429, reset
  double probability = 0;
};

std::string g_control;
std::string g_upstream_host;
int g_upstream_port = 0;
std::mutex g_mu;  // guards the fields below
Mode g_mode;
timespec g_control_mtime{};
bool g_control_present = false;
std::set<int> g_client_fds;  // open client sockets, for the reset-all on entering "reset"
std::mt19937_64 g_rng;
std::atomic<long> g_requests{0}, g_injected_status{0}, g_injected_resets{0}, g_connections{0};
std::atomic<bool> g_stop{false};

void ResetSocket(int fd) {
  linger l{1, 0};  // close with RST, as a crashed peer or a broken middlebox would
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  shutdown(fd, SHUT_RDWR);
}

// Re-reads the control file when it changed; returns the mode in force.
Mode CurrentMode() {
  struct stat st {};
  std::lock_guard lock(g_mu);
  bool present = stat(g_control.c_str(), &st) == 0;
  if (!present) {
    g_control_present = false;
    g_mode = Mode{};
    return g_mode;
  }
  if (g_control_present && st.st_mtim.tv_sec == g_control_mtime.tv_sec &&
      st.st_mtim.tv_nsec == g_control_mtime.tv_nsec) {
    return g_mode;
  }
  g_control_present = true;
  g_control_mtime = st.st_mtim;
  std::ifstream in(g_control);
  Mode m;
  in >> m.kind >> m.probability;
  if (m.kind != "503" && m.kind != "500" && m.kind != "429" && m.kind != "reset") m = Mode{};
  if (m.kind == "reset" && g_mode.kind != "reset") {
    for (int fd : g_client_fds) ResetSocket(fd);
    g_injected_resets += static_cast<long>(g_client_fds.size());
  }
  if (m.kind != g_mode.kind || m.probability != g_mode.probability) {
    std::fprintf(stderr, "fault_proxy: mode %s %.2f\n", m.kind.c_str(), m.probability);
  }
  g_mode = m;
  return g_mode;
}

double Draw() {
  std::lock_guard lock(g_mu);
  return std::uniform_real_distribution<double>(0, 1)(g_rng);
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int ConnectUpstream() {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(g_upstream_host.c_str(), std::to_string(g_upstream_port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, 0);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

// upstream -> client, unparsed.
void PipeResponses(int from, int to, std::mutex* write_mu) {
  char buf[65536];
  for (;;) {
    ssize_t n = recv(from, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard lock(*write_mu);
    if (!WriteAll(to, buf, static_cast<size_t>(n))) break;
  }
  shutdown(to, SHUT_RDWR);
  shutdown(from, SHUT_RDWR);
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Value of a header in a request head, lower-cased; empty if absent.
std::string Header(const std::string& head, const std::string& name) {
  std::istringstream in(head);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (Lower(line.substr(0, colon)) != name) continue;
    std::string v = line.substr(colon + 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    return Lower(v);
  }
  return "";
}

const char* Reason(const std::string& kind) {
  if (kind == "503") return "Service Unavailable";
  if (kind == "500") return "Internal Server Error";
  return "Too Many Requests";
}

std::string ErrorResponse(const std::string& kind) {
  std::string code = kind == "503" ? "ServerBusy" : kind == "500" ? "InternalError" : "TooManyRequests";
  std::string body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>" + code +
                     "</Code><Message>injected by fault_proxy</Message></Error>";
  return "HTTP/1.1 " + kind + " " + Reason(kind) + "\r\nContent-Type: application/xml\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nx-ms-error-code: " + code + "\r\n" +
         (kind == "429" || kind == "503" ? "Retry-After: 1\r\n" : "") + "\r\n" + body;
}

void ServeClient(int client) {
  {
    std::lock_guard lock(g_mu);
    g_client_fds.insert(client);
  }
  ++g_connections;
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int upstream = ConnectUpstream();
  std::mutex write_mu;
  std::thread responses;
  if (upstream >= 0) responses = std::thread(PipeResponses, upstream, client, &write_mu);
  std::string buf;  // bytes received from the client, not yet handled
  bool pipe_only = false;
  char tmp[65536];
  auto fill = [&]() {
    ssize_t n;
    do n = recv(client, tmp, sizeof(tmp), 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  };
  while (upstream >= 0) {
    if (pipe_only) {
      if (!buf.empty() && !WriteAll(upstream, buf.data(), buf.size())) break;
      buf.clear();
      if (!fill()) break;
      continue;
    }
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > (1 << 20) || !fill()) goto done;
    }
    {
      std::string head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      ++g_requests;
      if (Header(head, "transfer-encoding").find("chunked") != std::string::npos) {
        if (!WriteAll(upstream, head.data(), head.size())) break;
        pipe_only = true;
        continue;
      }
      std::string cl = Header(head, "content-length");
      size_t body = cl.empty() ? 0 : std::strtoull(cl.c_str(), nullptr, 10);
      Mode m = CurrentMode();
      bool inject = m.kind != "pass" && Draw() < m.probability;
      if (inject && m.kind == "reset") {
        ++g_injected_resets;
        if (body > 0 && Draw() < 0.5) {  // half the time: forward the head and half the body first
          WriteAll(upstream, head.data(), head.size());
          size_t half = body / 2;
          while (buf.size() < half && fill()) {
          }
          WriteAll(upstream, buf.data(), std::min(half, buf.size()));
          ResetSocket(upstream);
        }
        ResetSocket(client);
        break;
      }
      if (inject) {
        // Read and drop the body (unless the client waits for 100-continue), then answer.
        bool expect = Header(head, "expect") == "100-continue";
        if (!expect) {
          while (buf.size() < body && fill()) {
          }
          if (buf.size() < body) break;
          buf.erase(0, body);
        }
        ++g_injected_status;
        std::string resp = ErrorResponse(m.kind);
        std::lock_guard lock(write_mu);
        if (!WriteAll(client, resp.data(), resp.size())) break;
        if (expect) {
          // The client may still send the body or not; the connection cannot be trusted: close it.
          shutdown(client, SHUT_RDWR);
          break;
        }
        continue;
      }
      if (!WriteAll(upstream, head.data(), head.size())) break;
      while (body > 0) {
        if (buf.empty() && !fill()) goto done;
        size_t n = std::min(body, buf.size());
        if (!WriteAll(upstream, buf.data(), n)) goto done;
        buf.erase(0, n);
        body -= n;
      }
    }
  }
done:
  if (upstream >= 0) shutdown(upstream, SHUT_RDWR);
  shutdown(client, SHUT_RDWR);
  if (responses.joinable()) responses.join();
  {
    std::lock_guard lock(g_mu);
    g_client_fds.erase(client);
  }
  if (upstream >= 0) close(upstream);
  close(client);
}

void PrintCounters() {
  std::fprintf(stderr, "fault_proxy: connections=%ld requests=%ld injected_status=%ld injected_resets=%ld\n",
               g_connections.load(), g_requests.load(), g_injected_status.load(), g_injected_resets.load());
}

int Usage() {
  std::fprintf(stderr, "usage: fault_proxy --listen PORT --upstream HOST:PORT --control FILE [--seed S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int listen_port = -1;
  unsigned long long seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--listen") {
      listen_port = std::atoi(v.c_str());
    } else if (a == "--upstream") {
      auto colon = v.rfind(':');
      if (colon == std::string::npos) return Usage();
      g_upstream_host = v.substr(0, colon);
      g_upstream_port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--control") {
      g_control = v;
    } else if (a == "--seed") {
      seed = std::strtoull(v.c_str(), nullptr, 10);
    } else {
      return Usage();
    }
  }
  if (argc % 2 != 1 || listen_port < 0 || g_upstream_port <= 0 || g_control.empty()) return Usage();
  g_rng.seed(seed);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(listen_port));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(lfd, 128) != 0) {
    std::fprintf(stderr, "fault_proxy: cannot listen on 127.0.0.1:%d: %s\n", listen_port, std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::fprintf(stderr, "fault_proxy: listening on 127.0.0.1:%d -> %s:%d\n", ntohs(addr.sin_port),
               g_upstream_host.c_str(), g_upstream_port);

  // Signals are taken by a thread of their own (sigwait), so accept() needs no EINTR dance.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set]() {
    int sig = 0;
    for (;;) {
      sigwait(&set, &sig);
      PrintCounters();
      if (sig != SIGUSR1) std::_Exit(0);
    }
  }).detach();
  std::thread([]() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(10));
      PrintCounters();
    }
  }).detach();

  for (;;) {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, 500) <= 0) {
      CurrentMode();  // notice a switch to "reset" even while no connection is made
      continue;
    }
    int c = accept(lfd, nullptr, nullptr);
    if (c < 0) continue;
    std::thread(ServeClient, c).detach();
  }
}
