#include "support/loopback_http_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sb::test {

int BindLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

int ListenOnLoopback(int* port) {
  int fd = BindLoopback(port);
  listen(fd, 16);
  return fd;
}

ScriptedServer::ScriptedServer(std::vector<int> statuses) : statuses_(std::move(statuses)) {
  fd_ = ListenOnLoopback(&port_);
  thread_ = std::thread([this] { Serve(); });
}

ScriptedServer::~ScriptedServer() {
  stop_ = true;
  shutdown(fd_, SHUT_RDWR);
  close(fd_);
  thread_.join();
}

void ScriptedServer::Serve() {
  while (!stop_) {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    int i = requests_++;
    int status = i < static_cast<int>(statuses_.size()) ? statuses_[i] : 200;
    std::string body = status == 200 ? "ok" : "";
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nx-ms-error-code: " +
                       (status == 200 ? "None" : "ServerBusy") + "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
    (void)!write(c, resp.data(), resp.size());
    close(c);
  }
}

FrozenServer::FrozenServer() { fd_ = ListenOnLoopback(&port_); }

FrozenServer::~FrozenServer() { close(fd_); }

}  // namespace sb::test
