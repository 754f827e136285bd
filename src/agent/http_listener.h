// HttpListener: the operator's read-only HTTP listener ([agent] http_listen,
// off by default): GET /metrics (Prometheus), GET / (the web page) and the
// page's read-only JSON. It answers GET (and HEAD) only, for the paths its
// handler knows; anything else is 405 or 404. It carries no token and no
// mutating route, so it must stay where only monitoring can reach it: the
// address is validated and loopback is what the README shows (a wider address
// is accepted with a warning in the log).
// Thread-safety: the handler is called from server threads concurrently.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace sb {

struct ListenAddress {
  std::string host;  // an IPv4 or IPv6 literal, or "localhost"
  int port = 0;      // 1-65535 (0 only from tests: any free port)
  bool loopback = false;
  std::string ToString() const;  // "127.0.0.1:9187", "[::1]:9187"
};

// "127.0.0.1:9187", "[::1]:9187", "localhost:9187", "0.0.0.0:9187". No host names but
// localhost (the listener must not depend on DNS), no port 0 (allow_any_port: tests).
Result<ListenAddress> ParseListenAddress(const std::string& text, bool allow_any_port = false);

struct PageResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// path (without query) → response; nullopt-like 404 is the handler's own.
using PageHandler = std::function<PageResponse(const std::string& path)>;

class HttpListener {
 public:
  static Result<std::unique_ptr<HttpListener>> Start(const ListenAddress& address, PageHandler handler);
  ~HttpListener();  // Stop()
  void Stop();
  int port() const;  // the bound port (the chosen one when asked for 0)

  struct Impl;

 private:
  HttpListener() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
