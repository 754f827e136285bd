// Tiny HTTP servers on 127.0.0.1 for transport tests (no Azurite needed):
// ScriptedServer answers each request with the next scripted status;
// FrozenServer accepts connections (through the kernel's backlog) and never
// answers, like a SIGSTOPped endpoint. Each runs one thread; destroy to stop.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace sb::test {

// A TCP socket bound to 127.0.0.1 on a port the kernel picked (*port), not listening yet.
int BindLoopback(int* port);
// The same, listening.
int ListenOnLoopback(int* port);

// Answers each request with the next scripted status (then 200 "ok"), one
// request per connection; non-200 answers carry x-ms-error-code ServerBusy.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<int> statuses);
  ~ScriptedServer();
  int port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void Serve();

  std::vector<int> statuses_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Listens but never accepts: connects succeed, requests are never answered.
class FrozenServer {
 public:
  FrozenServer();
  ~FrozenServer();
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace sb::test
