#include "agent/api.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

// Echoes the request, or answers a chosen status for /v1/status/NNN.
ApiResponse EchoHandler(const ApiRequest& req) {
  const std::string prefix = "/v1/status/";
  if (req.path.rfind(prefix, 0) == 0) {
    int code = std::stoi(req.path.substr(prefix.size()));
    if (req.query == "raw") return {code, "plain text failure\n"};
    if (req.query == "empty") return {code, ""};
    return {code, json{{"error", "failure " + std::to_string(code)}}.dump()};
  }
  if (req.path == "/v1/throw") throw std::runtime_error("handler blew up");
  return {200, json{{"method", req.method}, {"path", req.path}, {"query", req.query}, {"body", req.body}}.dump()};
}

// Sends a raw HTTP request over the socket; returns the whole answer.
std::string RawRequest(const std::string& socket_path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  (void)!::write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// A socket file with nobody listening: what an agent killed by SIGKILL leaves.
void MakeAbandonedSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  ::close(fd);
}

mode_t ModeOf(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short on purpose: sun_path holds 107 bytes.
    char templ[] = "/tmp/sbapiXXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    socket_ = dir_ + "/run/agent.sock";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ApiServer> StartServer(ApiHandler handler = EchoHandler) {
    auto server = ApiServer::Start(socket_, kToken, std::move(handler));
    EXPECT_TRUE(server.ok()) << server.status().message();
    return server.ok() ? std::move(server).value() : nullptr;
  }

  std::string dir_;
  std::string socket_;
};

TEST_F(ApiTest, GetAndPostRoundTrip) {
  auto server = StartServer();
  ASSERT_TRUE(server);

  auto got = CallAgent(socket_, kToken, "GET", "/v1/health?since=2026-01-01T00:00:00Z");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->status, 200);
  json j = json::parse(got->body);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/v1/health");
  EXPECT_EQ(j["query"], "since=2026-01-01T00:00:00Z");
  EXPECT_EQ(j["body"], "");

  const std::string body = R"({"type":"full"})";
  auto posted = CallAgent(socket_, kToken, "POST", "/v1/db/main/backup", body);
  ASSERT_TRUE(posted.ok()) << posted.status().message();
  j = json::parse(posted->body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/v1/db/main/backup");
  EXPECT_EQ(j["query"], "");
  EXPECT_EQ(j["body"], body);

  // A large body goes through intact.
  std::string big(300 * 1024, 'x');
  auto large = CallAgent(socket_, kToken, "POST", "/v1/instance-config", big);
  ASSERT_TRUE(large.ok()) << large.status().message();
  EXPECT_EQ(json::parse(large->body)["body"], big);
}

TEST_F(ApiTest, SocketIsPrivate) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  struct stat st{};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ModeOf(dir_ + "/run"), 0700u) << "the missing parent directory is created private";
  // No temporary bind directory is left behind.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir_ + "/run")) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"agent.sock"});
}

TEST_F(ApiTest, WrongOrMissingTokenIsRejected) {
  std::atomic<int> calls{0};
  auto server = StartServer([&](const ApiRequest& r) {
    ++calls;
    return EchoHandler(r);
  });
  ASSERT_TRUE(server);

  auto wrong = CallAgent(socket_, "not-the-token", "GET", "/v1/status");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(wrong.status().message(), "missing or wrong API token");

  auto prefix = CallAgent(socket_, std::string(kToken).substr(0, 10), "GET", "/v1/status");
  EXPECT_EQ(prefix.status().code(), StatusCode::kPermissionDenied);

  std::string raw = RawRequest(socket_, "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 401", 0), 0u) << raw;
  EXPECT_NE(raw.find(R"({"error":"missing or wrong API token"})"), std::string::npos) << raw;

  raw = RawRequest(socket_, std::string("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ") + kToken +
                                "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 401", 0), 0u) << raw;

  raw = RawRequest(socket_, std::string("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ") + kToken +
                                "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 200", 0), 0u) << raw;
  EXPECT_NE(raw.find("Content-Type: application/json"), std::string::npos) << raw;
  EXPECT_EQ(calls.load(), 1) << "only the authorised request reaches the handler";
}

TEST_F(ApiTest, HandlerStatusesMapToStatusCodes) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  const std::vector<std::pair<int, StatusCode>> cases = {
      {400, StatusCode::kInvalidArgument}, {401, StatusCode::kPermissionDenied}, {404, StatusCode::kNotFound},
      {409, StatusCode::kAlreadyExists},   {500, StatusCode::kInternal},         {503, StatusCode::kInternal},
  };
  for (const auto& [http, code] : cases) {
    auto r = CallAgent(socket_, kToken, "POST", "/v1/status/" + std::to_string(http), "{}");
    ASSERT_FALSE(r.ok()) << http;
    EXPECT_EQ(r.status().code(), code) << http;
    EXPECT_EQ(r.status().message(), "failure " + std::to_string(http));
  }
  auto created = CallAgent(socket_, kToken, "POST", "/v1/status/201");
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_EQ(created->status, 201);

  auto raw = CallAgent(socket_, kToken, "GET", "/v1/status/409?raw");
  EXPECT_EQ(raw.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(raw.status().message(), "plain text failure");

  auto empty = CallAgent(socket_, kToken, "GET", "/v1/status/418?empty");
  EXPECT_EQ(empty.status().code(), StatusCode::kInternal);
  EXPECT_NE(empty.status().message().find("418"), std::string::npos) << empty.status().message();
}

TEST_F(ApiTest, HandlerExceptionBecomes500) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  auto r = CallAgent(socket_, kToken, "GET", "/v1/throw");
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "handler blew up");
  // The server keeps serving.
  EXPECT_TRUE(CallAgent(socket_, kToken, "GET", "/v1/status").ok());
}

TEST_F(ApiTest, UnknownRouteIsNotFound) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  auto r = CallAgent(socket_, kToken, "GET", "/v2/status");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no such endpoint: GET /v2/status");
}

TEST_F(ApiTest, NoAgentIsUnavailableWithHint) {
  const std::string hint = "no agent is running on " + socket_ + "; hint: start it with smartbackup agent --config FILE";
  auto r = CallAgent(socket_, kToken, "GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), hint);

  // A socket file nobody listens on reads the same.
  fs::create_directories(dir_ + "/run");
  MakeAbandonedSocket(socket_);
  r = CallAgent(socket_, kToken, "GET", "/v1/status");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), hint);
}

// A request the agent does not answer within the client's per-request deadline: kUnavailable
// marked kNoAnswer (its effect is unknown), said in words, never the HTTP library's error name.
TEST_F(ApiTest, AnUnansweredRequestIsANoAnswerSaidInWords) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  auto server = StartServer([&](const ApiRequest&) -> ApiResponse {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
    return {};
  });
  ASSERT_TRUE(server);
  auto r = CallAgent(socket_, kToken, "GET", "/v1/jobs/7", "", std::chrono::seconds(1));
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().detail(), StatusDetail::kNoAnswer);
  EXPECT_EQ(r.status().message(), "the agent on " + socket_ +
                                      " did not answer GET /v1/jobs/7: no answer within 1s, or the connection closed "
                                      "before the answer");
}

TEST_F(ApiTest, SecondServerOnSameSocketIsRefused) {
  auto first = StartServer();
  ASSERT_TRUE(first);
  auto second = ApiServer::Start(socket_, kToken, EchoHandler);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(second.status().message(), "another agent is already running on " + socket_);
  // The first one is untouched.
  EXPECT_TRUE(CallAgent(socket_, kToken, "GET", "/v1/status").ok());
}

TEST_F(ApiTest, StaleSocketFileIsReplaced) {
  fs::create_directories(dir_ + "/run");
  MakeAbandonedSocket(socket_);
  ASSERT_TRUE(fs::is_socket(socket_));
  auto server = StartServer();
  ASSERT_TRUE(server);
  EXPECT_EQ(ModeOf(socket_), 0600u);
  EXPECT_TRUE(CallAgent(socket_, kToken, "GET", "/v1/status").ok());
}

TEST_F(ApiTest, RefusesToReplaceANonSocket) {
  fs::create_directories(dir_ + "/run");
  { std::ofstream(socket_) << "precious"; }
  auto server = ApiServer::Start(socket_, kToken, EchoHandler);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kFailedPrecondition);
  std::ifstream in(socket_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(ApiTest, RejectsTooLongSocketPath) {
  auto server = ApiServer::Start(dir_ + "/" + std::string(120, 'a'), kToken, EchoHandler);
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ApiTest, StopRemovesTheSocket) {
  auto server = StartServer();
  ASSERT_TRUE(server);
  ASSERT_TRUE(fs::exists(socket_));
  server->Stop();
  EXPECT_FALSE(fs::exists(fs::symlink_status(socket_)));
  server->Stop();  // idempotent
  EXPECT_EQ(CallAgent(socket_, kToken, "GET", "/v1/status").status().code(), StatusCode::kUnavailable);

  // The destructor stops too, and a new agent can take the path again.
  {
    auto again = StartServer();
    ASSERT_TRUE(again);
    EXPECT_TRUE(CallAgent(socket_, kToken, "GET", "/v1/status").ok());
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(socket_)));
}

TEST_F(ApiTest, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    auto server = StartServer();
    ASSERT_TRUE(server);
    server->Stop();
  }
}

TEST_F(ApiTest, ConcurrentRequests) {
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  auto server = StartServer([&](const ApiRequest& r) {
    int now = ++in_flight;
    int prev = max_in_flight.load();
    while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    --in_flight;
    return EchoHandler(r);
  });
  ASSERT_TRUE(server);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string body = std::to_string(t) + "-" + std::to_string(i);
        auto r = CallAgent(socket_, kToken, "POST", "/v1/db/db" + std::to_string(t) + "/config", body);
        if (r.ok() && json::parse(r->body)["body"] == body &&
            json::parse(r->body)["path"] == "/v1/db/db" + std::to_string(t) + "/config") {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_GT(max_in_flight.load(), 1) << "requests are served in parallel";
}

// ---------------------------------------------------------------- token

TEST_F(ApiTest, TokenIsCreatedOnceAndPrivate) {
  const std::string path = dir_ + "/state/api.token";
  auto created = LoadOrCreateToken(path);
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_EQ(created->size(), 64u);
  EXPECT_EQ(created->find_first_not_of("0123456789abcdef"), std::string::npos) << *created;
  EXPECT_EQ(ModeOf(path), 0600u);

  auto again = LoadOrCreateToken(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *created);
  auto read = ReadToken(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, *created);

  // Another file gets another token; no temporary files are left behind.
  auto other = LoadOrCreateToken(dir_ + "/state/other.token");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *created);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/state")) ++files;
  EXPECT_EQ(files, 2);
}

TEST_F(ApiTest, ExistingTokenIsTrimmed) {
  const std::string path = dir_ + "/api.token";
  { std::ofstream(path) << "  secret-token \n\n"; }
  ::chmod(path.c_str(), 0644);
  auto read = ReadToken(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "secret-token");
  auto loaded = LoadOrCreateToken(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, "secret-token");
  EXPECT_EQ(ModeOf(path), 0600u) << "a token readable by others is tightened";
}

TEST_F(ApiTest, MissingTokenIsAnErrorWithHint) {
  auto read = ReadToken(dir_ + "/api.token");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(read.status().message().find("hint: is the agent running with the same --config?"), std::string::npos)
      << read.status().message();
  EXPECT_FALSE(fs::exists(dir_ + "/api.token")) << "ReadToken never creates";

  { std::ofstream(dir_ + "/empty.token") << "\n"; }
  EXPECT_FALSE(ReadToken(dir_ + "/empty.token").ok());
}

TEST_F(ApiTest, ConcurrentTokenCreationAgrees) {
  const std::string path = dir_ + "/api.token";
  std::vector<std::string> tokens(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto t = LoadOrCreateToken(path);
      tokens[i] = t.ok() ? *t : "error: " + t.status().message();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(std::set<std::string>(tokens.begin(), tokens.end()).size(), 1u) << tokens[0] << " / " << tokens[1];
  EXPECT_EQ(tokens[0].size(), 64u) << tokens[0];
}

TEST_F(ApiTest, TokenFromFileWorksEndToEnd) {
  auto token = LoadOrCreateToken(dir_ + "/api.token");
  ASSERT_TRUE(token.ok());
  auto server = ApiServer::Start(socket_, *token, EchoHandler);
  ASSERT_TRUE(server.ok()) << server.status().message();
  auto client_token = ReadToken(dir_ + "/api.token");
  ASSERT_TRUE(client_token.ok());
  EXPECT_TRUE(CallAgent(socket_, *client_token, "GET", "/v1/status").ok());
}

}  // namespace
}  // namespace sb
