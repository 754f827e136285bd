#include "agent/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <thread>

#include "agent/httplib_include.h"
#include "common/logging.h"

namespace sb {
namespace {

constexpr char kForms[] = "hint: use IP:PORT, e.g. 127.0.0.1:9187 or [::1]:9187";

}  // namespace

std::string ListenAddress::ToString() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Result<ListenAddress> ParseListenAddress(const std::string& text, bool allow_any_port) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(fmt::format("[agent] http_listen \"{}\" {}; {}", text, why, kForms));
  };
  std::string host, port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("is not [IPv6]:PORT");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return bad("has no port");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("has an IPv6 address without brackets");
  }
  if (host.empty()) return bad("has no host (0.0.0.0 listens on every interface, and must be written)");
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535 || (port == 0 && !allow_any_port)) {
    return bad("has no valid port (1-65535)");
  }
  ListenAddress a{.host = host, .port = port};
  in_addr v4{};
  in6_addr v6{};
  if (host == "localhost") {
    a.host = "127.0.0.1";
    a.loopback = true;
  } else if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    a.loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    a.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    return bad("names no IP address (host names other than localhost are not resolved)");
  }
  return a;
}

struct HttpListener::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> thread_done{false};
  bool stopped = false;
  int port = 0;
  std::string where;
};

Result<std::unique_ptr<HttpListener>> HttpListener::Start(const ListenAddress& address, PageHandler handler) {
  if (!handler) return Status::InvalidArgument("the HTTP listener needs a handler");
  std::unique_ptr<HttpListener> self(new HttpListener());
  self->impl_ = std::make_unique<Impl>();
  Impl* impl = self->impl_.get();
  httplib::Server& svr = impl->server;
  svr.set_read_timeout(10, 0);
  svr.set_write_timeout(30, 0);
  svr.set_payload_max_length(4096);  // read-only: no request carries a body worth reading
  svr.set_keep_alive_max_count(20);
  auto get = [handler](const httplib::Request& req, httplib::Response& res) {
    PageResponse page;
    try {
      page = handler(req.path);
    } catch (const std::exception& e) {
      log::Error("http listener: GET {} failed: {}", req.path, e.what());
      page = {500, "text/plain; charset=utf-8", "internal error\n"};
    }
    res.status = page.status;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_content(page.body, page.content_type.c_str());
  };
  svr.Get(R"(/.*)", get);
  // No mutating route: every other method is refused.
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("read-only: only GET is served here\n", "text/plain; charset=utf-8");
  };
  svr.Post(R"(/.*)", refuse);
  svr.Put(R"(/.*)", refuse);
  svr.Delete(R"(/.*)", refuse);
  svr.Patch(R"(/.*)", refuse);
  svr.Options(R"(/.*)", refuse);

  if (address.port == 0) {
    impl->port = svr.bind_to_any_port(address.host);
  } else if (svr.bind_to_port(address.host, address.port)) {
    impl->port = address.port;
  } else {
    impl->port = -1;
  }
  if (impl->port <= 0) {
    const int err = errno;
    return Status::IoError(fmt::format("cannot listen on {} ([agent] http_listen): {}; hint: is the port in use?",
                                       address.ToString(), err != 0 ? std::strerror(err) : "bind failed"));
  }
  ListenAddress bound = address;
  bound.port = impl->port;
  impl->where = bound.ToString();
  impl->thread = std::thread([impl] {
    impl->server.listen_after_bind();
    impl->thread_done = true;
  });
  while (!impl->server.is_running() && !impl->thread_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (address.loopback) {
    log::Info("metrics and web page on http://{}/ (read-only)", impl->where);
  } else {
    log::Warn("metrics and web page on http://{}/ (read-only, no authentication): reachable beyond this host; "
              "hint: restrict it with a firewall or use 127.0.0.1",
              impl->where);
  }
  return self;
}

HttpListener::~HttpListener() { Stop(); }

void HttpListener::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpListener::port() const { return impl_ ? impl_->port : 0; }

}  // namespace sb
