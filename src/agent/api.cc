// The agent API over cpp-httplib (httplib_include.h).
#include "agent/api.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "agent/httplib_include.h"
#include "common/logging.h"
#include "common/encoding.h"
#include "common/text.h"

namespace sb {
namespace {

constexpr time_t kConnectTimeoutSeconds = 5;
constexpr time_t kWriteTimeoutSeconds = 60;
constexpr size_t kMaxRequestBody = 1 << 20;

std::string ErrnoText(int err) { return std::strerror(err); }

std::string JsonError(const std::string& message) { return nlohmann::json{{"error", message}}.dump(); }

std::string NoAgentMessage(const std::string& socket_path) {
  return "no agent is running on " + socket_path + "; hint: start it with smartbackup agent --config FILE";
}

bool FitsSunPath(const std::string& path) { return !path.empty() && path.size() < sizeof(sockaddr_un::sun_path); }

// connect() to a unix socket; returns 0 or the errno.
int ProbeConnect(const std::string& path) {
  if (!FitsSunPath(path)) return ENAMETOOLONG;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p, new directories 0700 (they hold the socket or the token).
Status MakeDirs(const std::string& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Status::FailedPrecondition("\"" + dir + "\" exists and is not a directory");
    return Status::Ok();
  }
  if (errno != ENOENT) return Status::IoError("cannot stat \"" + dir + "\": " + ErrnoText(errno));
  std::string parent = ParentDir(dir);
  if (parent != dir) RETURN_IF_ERROR(MakeDirs(parent));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    int err = errno;
    Status s(err == EACCES || err == EPERM ? StatusCode::kPermissionDenied : StatusCode::kIoError,
             "cannot create directory \"" + dir + "\": " + ErrnoText(err));
    return s;
  }
  return Status::Ok();
}

// A socket file already at the path is either a live agent (refuse) or left
// behind by one that died (remove). Anything that is not a socket is left
// alone: deleting an operator's file because it sits where the socket goes
// would be worse than refusing to start.
Status ClearSocketPath(const std::string& socket_path) {
  struct stat st{};
  if (::lstat(socket_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError("cannot stat \"" + socket_path + "\": " + ErrnoText(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::FailedPrecondition("\"" + socket_path +
                                      "\" exists and is not a socket; hint: remove it or set [agent] socket elsewhere");
  }
  int err = ProbeConnect(socket_path);
  if (err == 0) return Status::AlreadyExists("another agent is already running on " + socket_path);
  if (err != ECONNREFUSED && err != ENOENT) {
    return Status(err == EACCES || err == EPERM ? StatusCode::kPermissionDenied : StatusCode::kIoError,
                  "cannot check whether an agent is running on " + socket_path + ": " + ErrnoText(err));
  }
  log::Info("removing stale agent socket {}", socket_path);
  if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
    return Status::IoError("cannot remove stale socket \"" + socket_path + "\": " + ErrnoText(errno));
  }
  return Status::Ok();
}

bool TokenMatches(const std::string& header, const std::string& token) {
  static constexpr std::string_view kPrefix = "Bearer ";
  if (header.size() != kPrefix.size() + token.size()) return false;
  if (header.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  return CRYPTO_memcmp(header.data() + kPrefix.size(), token.data(), token.size()) == 0;
}

Status ReadSmallFile(int fd, const std::string& path, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("cannot read \"" + path + "\": " + ErrnoText(errno));
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > 64 * 1024) return Status::Corruption("token file \"" + path + "\" is too large");
  }
  return Status::Ok();
}

Status WriteAll(int fd, const std::string& path, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("cannot write \"" + path + "\": " + ErrnoText(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads the token file; *missing is set (and an error returned) when absent.
Result<std::string> ReadTokenFile(const std::string& path, bool* missing) {
  *missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      *missing = true;
      return Status::PermissionDenied("no API token at \"" + path +
                                      "\"; hint: is the agent running with the same --config?");
    }
    if (err == EACCES || err == EPERM) {
      return Status::PermissionDenied("cannot read API token \"" + path +
                                      "\": permission denied; hint: run as the agent's user or root");
    }
    return Status::IoError("cannot open API token \"" + path + "\": " + ErrnoText(err));
  }
  std::string text;
  Status s = ReadSmallFile(fd, path, &text);
  ::close(fd);
  RETURN_IF_ERROR(s);
  std::string token = Trim(text);
  if (token.empty()) {
    return Status::Corruption("API token file \"" + path + "\" is empty; hint: delete it and restart the agent");
  }
  return token;
}

}  // namespace

// ---------------------------------------------------------------- server

struct ApiServer::Impl {
  std::string socket_path;
  std::string token;
  ApiHandler handler;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> thread_done{false};
  bool stopped = false;
  // Identity of the socket file we created, so Stop() never removes a file
  // that a later agent put at the same path.
  dev_t sock_dev = 0;
  ino_t sock_ino = 0;
};

namespace {

// Routes every /v1/ request to the handler, behind the token check; errors get JSON bodies.
void InstallHandlers(ApiServer::Impl* impl) {
  httplib::Server& svr = impl->server;
  svr.set_address_family(AF_UNIX);
  svr.set_payload_max_length(kMaxRequestBody);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(kWriteTimeoutSeconds, 0);
  svr.set_pre_routing_handler([impl](const httplib::Request& req, httplib::Response& res) {
    if (!TokenMatches(req.get_header_value("Authorization"), impl->token)) {
      res.status = 401;
      res.set_content(JsonError("missing or wrong API token"), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto dispatch = [impl](const httplib::Request& req, httplib::Response& res) {
    ApiRequest request;
    request.method = req.method;
    request.path = req.path;
    if (auto q = req.target.find('?'); q != std::string::npos) request.query = req.target.substr(q + 1);
    request.body = req.body;
    ApiResponse response;
    try {
      response = impl->handler(request);
    } catch (const std::exception& e) {
      log::Error("agent API: {} {} failed: {}", req.method, req.path, e.what());
      response = {500, JsonError(e.what())};
    } catch (...) {
      log::Error("agent API: {} {} failed with an unknown exception", req.method, req.path);
      response = {500, JsonError("internal error")};
    }
    res.status = response.status;
    res.set_content(response.body, "application/json");
  };
  svr.Get(R"(/v1/.*)", dispatch);
  svr.Post(R"(/v1/.*)", dispatch);
  // Unknown routes and httplib's own errors (413, 400...) get a JSON body too.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                            : "request failed with HTTP " + std::to_string(res.status);
    res.set_content(JsonError(message), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
}

// Binds the server to socket_path with mode 0600 from the start.
Status BindPrivately(httplib::Server& svr, const std::string& socket_path, const std::string& parent) {
  // The socket is bound inside a fresh private directory (mkdtemp: 0700),
  // chmod-ed to 0600 there and only then renamed into place, so it is never
  // reachable with umask-derived permissions. This avoids changing the
  // process-wide umask while other threads may be creating files. The rename
  // also atomically replaces a stale file that reappeared meanwhile.
  std::string tmp_dir = parent + "/.sbapiXXXXXX";
  std::string bind_path = tmp_dir + "/s";
  bool use_tmp = FitsSunPath(bind_path);
  if (use_tmp) {
    std::vector<char> templ(tmp_dir.begin(), tmp_dir.end());
    templ.push_back('\0');
    if (::mkdtemp(templ.data()) == nullptr) {
      return Status::IoError("agent API: cannot create a directory in \"" + parent + "\": " + ErrnoText(errno));
    }
    tmp_dir = templ.data();
    bind_path = tmp_dir + "/s";
  } else {
    // Path too long for the detour: bind directly. The parent directory is
    // the only protection until the chmod below.
    bind_path = socket_path;
  }
  auto cleanup_tmp = [&] {
    if (!use_tmp) return;
    ::unlink(bind_path.c_str());
    ::rmdir(tmp_dir.c_str());
  };

  if (!svr.bind_to_port(bind_path, 80)) {
    int err = errno;
    cleanup_tmp();
    return Status::IoError("agent API: cannot listen on " + socket_path + ": " + ErrnoText(err));
  }
  if (::chmod(bind_path.c_str(), 0600) != 0) {
    int err = errno;
    cleanup_tmp();
    return Status::IoError("agent API: cannot chmod " + socket_path + ": " + ErrnoText(err));
  }
  if (use_tmp) {
    if (::rename(bind_path.c_str(), socket_path.c_str()) != 0) {
      int err = errno;
      cleanup_tmp();
      return Status::IoError("agent API: cannot move the socket to " + socket_path + ": " + ErrnoText(err));
    }
    ::rmdir(tmp_dir.c_str());
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::Start(const std::string& socket_path, const std::string& token,
                                                    ApiHandler handler) {
  if (token.empty()) return Status::InvalidArgument("the agent API needs a non-empty token");
  if (!handler) return Status::InvalidArgument("the agent API needs a handler");
  if (!FitsSunPath(socket_path)) {
    return Status::InvalidArgument("socket path \"" + socket_path + "\" is empty or longer than " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                   " bytes; hint: set [agent] socket to a shorter path");
  }
  const std::string parent = ParentDir(socket_path);
  RETURN_IF_ERROR(MakeDirs(parent).WithContext("agent API"));
  RETURN_IF_ERROR(ClearSocketPath(socket_path));

  std::unique_ptr<ApiServer> self(new ApiServer());
  self->impl_ = std::make_unique<Impl>();
  Impl* impl = self->impl_.get();
  impl->socket_path = socket_path;
  impl->token = token;
  impl->handler = std::move(handler);

  InstallHandlers(impl);
  RETURN_IF_ERROR(BindPrivately(impl->server, socket_path, parent));
  struct stat st{};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    impl->sock_dev = st.st_dev;
    impl->sock_ino = st.st_ino;
  }

  impl->thread = std::thread([impl] {
    impl->server.listen_after_bind();
    impl->thread_done = true;
  });
  // httplib's stop() is a no-op until the loop has started; wait for it so
  // a Stop() right after Start() cannot leave the thread running forever.
  while (!impl->server.is_running() && !impl->thread_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log::Info("agent API listening on {}", socket_path);
  return self;
}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  // Returns after the requests in flight have been answered.
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  struct stat st{};
  if (::lstat(impl_->socket_path.c_str(), &st) == 0 && st.st_dev == impl_->sock_dev &&
      st.st_ino == impl_->sock_ino) {
    ::unlink(impl_->socket_path.c_str());
  }
  log::Info("agent API on {} stopped", impl_->socket_path);
}

// ---------------------------------------------------------------- client

// What went wrong with a request that was sent, in words (never the library's
// enumerator name, which means nothing to an operator).
std::string TransportFailure(httplib::Error err, std::chrono::seconds read_timeout) {
  switch (err) {
    case httplib::Error::Read:
      return fmt::format("no answer within {}s, or the connection closed before the answer", read_timeout.count());
    case httplib::Error::Write: return "the request could not be sent (the connection closed)";
    case httplib::Error::Canceled: return "the request was cancelled";
    default: return "the exchange failed before an answer came";
  }
}

Result<ApiResponse> CallAgent(const std::string& socket_path, const std::string& token, const std::string& method,
                              const std::string& path, const std::string& body, std::chrono::seconds read_timeout) {
  if (!FitsSunPath(socket_path)) {
    return Status::InvalidArgument("socket path \"" + socket_path + "\" is empty or too long");
  }
  if (method != "GET" && method != "POST") {
    return Status::InvalidArgument("unsupported agent API method \"" + method + "\"");
  }
  httplib::Client cli(socket_path, 80);
  cli.set_address_family(AF_UNIX);
  cli.set_connection_timeout(kConnectTimeoutSeconds, 0);
  cli.set_read_timeout(static_cast<time_t>(read_timeout.count()), 0);
  cli.set_write_timeout(kWriteTimeoutSeconds, 0);
  cli.set_keep_alive(false);
  cli.set_bearer_token_auth(token);
  // The socket path is no host name; compression is pointless locally.
  httplib::Headers headers{{"Host", "localhost"}, {"Accept-Encoding", "identity"}};

  httplib::Result res =
      method == "GET" ? cli.Get(path, headers) : cli.Post(path, headers, body, "application/json");

  if (!res) {
    httplib::Error err = res.error();
    if (err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout) {
      // httplib does not keep errno; ask the socket directly.
      int e = ProbeConnect(socket_path);
      if (e == EACCES || e == EPERM) {
        return Status::PermissionDenied("cannot connect to the agent on " + socket_path +
                                        ": permission denied; hint: run as the agent's user or root");
      }
      if (e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK) return Status::Unavailable(NoAgentMessage(socket_path));
      return Status::Unavailable("cannot connect to the agent on " + socket_path + ": " +
                                 (e != 0 ? ErrnoText(e) : fmt::format("no connection within {}s", kConnectTimeoutSeconds)));
    }
    return Status::Unavailable("the agent on " + socket_path + " did not answer " + method + " " + path + ": " +
                               TransportFailure(err, read_timeout))
        .WithDetail(StatusDetail::kNoAnswer);
  }

  ApiResponse out{res->status, res->body};
  RETURN_IF_ERROR(StatusFromResponse(out));
  return out;
}

Status StatusFromResponse(const ApiResponse& out) {
  if (out.status >= 200 && out.status < 300) return Status::Ok();

  std::string message;
  auto parsed = nlohmann::json::parse(out.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    message = parsed["error"].get<std::string>();
  } else {
    message = Trim(out.body);
  }
  if (message.empty()) message = "the agent answered HTTP " + std::to_string(out.status);
  StatusCode code;
  switch (out.status) {
    case 400: code = StatusCode::kInvalidArgument; break;
    case 401:
    case 403: code = StatusCode::kPermissionDenied; break;
    case 404: code = StatusCode::kNotFound; break;
    case 409: code = StatusCode::kAlreadyExists; break;
    default: code = StatusCode::kInternal; break;
  }
  return Status(code, message);
}

// ---------------------------------------------------------------- token

Result<std::string> ReadToken(const std::string& path) {
  bool missing = false;
  return ReadTokenFile(path, &missing);
}

Result<std::string> LoadOrCreateToken(const std::string& path) {
  bool missing = false;
  auto existing = ReadTokenFile(path, &missing);
  if (!missing) {
    if (!existing.ok()) return existing.status();
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      log::Warn("API token file {} is readable by others; setting mode 0600", path);
      if (::chmod(path.c_str(), 0600) != 0) {
        return Status::PermissionDenied("API token file \"" + path + "\" is readable by others and chmod failed: " +
                                        ErrnoText(errno));
      }
    }
    return existing;
  }

  RETURN_IF_ERROR(MakeDirs(ParentDir(path)));
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return Status::Internal("cannot generate an API token: RAND_bytes failed");
  std::string token = HexEncode(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
  OPENSSL_cleanse(raw, sizeof(raw));

  // Written complete under a temporary name (O_EXCL, 0600), then link()-ed
  // into place: link never replaces, so concurrent creators agree on one
  // token and no reader ever sees a half-written file.
  unsigned char suffix[6];
  if (RAND_bytes(suffix, sizeof(suffix)) != 1) return Status::Internal("RAND_bytes failed");
  std::string tmp = path + ".tmp." + HexEncode(std::string_view(reinterpret_cast<const char*>(suffix), sizeof(suffix)));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int err = errno;
    return Status(err == EACCES || err == EPERM ? StatusCode::kPermissionDenied : StatusCode::kIoError,
                  "cannot create API token \"" + tmp + "\": " + ErrnoText(err));
  }
  Status s = Status::Ok();
  if (::fchmod(fd, 0600) != 0) s = Status::IoError("cannot chmod \"" + tmp + "\": " + ErrnoText(errno));
  if (s.ok()) s = WriteAll(fd, tmp, token + "\n");
  if (s.ok() && ::fsync(fd) != 0) s = Status::IoError("cannot fsync \"" + tmp + "\": " + ErrnoText(errno));
  ::close(fd);
  if (s.ok() && ::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) {
      ::unlink(tmp.c_str());
      return ReadToken(path);  // another process won the race
    }
    s = Status::IoError("cannot create API token \"" + path + "\": " + ErrnoText(errno));
  }
  ::unlink(tmp.c_str());
  RETURN_IF_ERROR(s);
  int dfd = ::open(ParentDir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  log::Info("created API token file {}", path);
  return token;
}

}  // namespace sb
