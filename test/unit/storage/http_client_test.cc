// Tests of the shared HTTP client (storage/http/): the one classification of
// statuses, the retry loop and its window on the injected clock, and the
// outage bound against a server that never answers (issue 11: a frozen
// endpoint must be noticed within the stated bound, not after 60 s).
#include "storage/http/http_client.h"

#include <gtest/gtest.h>

#include <chrono>

#include "support/loopback_http_server.h"

namespace sb::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::FrozenServer;
using test::ScriptedServer;

Endpoint LoopbackEndpoint(int port) {
  auto ep = ParseEndpoint("http://127.0.0.1:" + std::to_string(port) + "/acct", "test", "http://host");
  EXPECT_TRUE(ep.ok()) << ep.status().ToString();
  return *ep;
}

std::function<Request()> Get(const HttpClient& client) {
  return [&client] { return Request{.method = "GET", .url = client.endpoint().base + "/acct/x"}; };
}

TEST(HttpStatusClassTest, OnePlaceDecidesWhatIsRetried) {
  for (long s : {200L, 201L, 206L, 304L}) EXPECT_EQ(ClassifyHttpStatus(s), StatusClass::kSuccess) << s;
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) EXPECT_EQ(ClassifyHttpStatus(s), StatusClass::kRetryable) << s;
  for (long s : {401L, 403L}) EXPECT_EQ(ClassifyHttpStatus(s), StatusClass::kCredentials) << s;
  for (long s : {400L, 404L, 409L, 412L, 416L}) EXPECT_EQ(ClassifyHttpStatus(s), StatusClass::kClientError) << s;
}

TEST(HttpEndpointTest, ParsesHostsPortsAndRefusesOtherSchemes) {
  auto ep = ParseEndpoint("HTTPS://Acct.Blob.Example.net/", "azure", "https://x");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->scheme, "https");
  EXPECT_EQ(ep->host, "acct.blob.example.net");
  EXPECT_EQ(ep->host_port, "Acct.Blob.Example.net:443");
  EXPECT_EQ(ep->path, "");
  auto v6 = ParseEndpoint("http://[::1]:10000/devstoreaccount1", "azure", "https://x");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->path, "/devstoreaccount1");
  EXPECT_EQ(ParseEndpoint("ftp://h", "azure", "https://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseEndpoint("http://h/?sig=secret", "azure", "https://x").status().message().find("secret"),
            std::string::npos);
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("LOCALHOST"));
  EXPECT_FALSE(IsLoopbackHost("127.evil.example"));
}

TEST(HttpClientTest, RetriesRetryableStatusesWithBackoffOnTheClock) {
  ScriptedServer server({503, 429});
  ManualClock clock(std::chrono::system_clock::now());
  HttpClient client(LoopbackEndpoint(server.port()),
                    ClientOptions{.backoff = {.initial = milliseconds(100), .jitter = 0}, .clock = &clock});
  auto r = client.Execute(Get(client), "test get");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(clock.SteadyNow().time_since_epoch(), milliseconds(100 + 200));
}

TEST(HttpClientTest, CredentialFailuresAreNotRetried) {
  ScriptedServer server({403});
  ManualClock clock(std::chrono::system_clock::now());
  HttpClient client(LoopbackEndpoint(server.port()), ClientOptions{.clock = &clock});
  auto r = client.Execute(Get(client), "test get");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(server.requests(), 1);
}

// The window bounds the retries however many max_retries allows.
TEST(HttpClientTest, NoAttemptStartsAfterTheRetryWindow) {
  ScriptedServer server(std::vector<int>(100, 503));
  ManualClock clock(std::chrono::system_clock::now());
  HttpClient client(LoopbackEndpoint(server.port()),
                    ClientOptions{.retry_window = seconds(15),
                                  .max_retries = 100,
                                  .backoff = {.initial = seconds(1), .max = seconds(4), .jitter = 0},
                                  .clock = &clock});
  auto r = client.Execute(Get(client), "test get");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);
  // Sleeps 1 + 2 + 4 + 4 = 11 s; the next 4 s would end past 15 s.
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(clock.SteadyNow().time_since_epoch(), seconds(11));
}

TEST(HttpClientTest, RefusedConnectionIsUnavailableNamingTheEndpoint) {
  int port = 0;
  {
    FrozenServer gone;  // bound, then closed: connections are refused
    port = gone.port();
  }
  ManualClock clock(std::chrono::system_clock::now());
  HttpClient client(LoopbackEndpoint(port), ClientOptions{.max_retries = 1, .clock = &clock});
  auto r = client.Execute(Get(client), "test get");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  EXPECT_NE(r.status().message().find("test get"), std::string::npos);
}

TEST(HttpClientTest, DefaultOutageBoundIsTwentyFiveSeconds) {
  ClientOptions o;
  EXPECT_EQ(o.connect_timeout, seconds(5));
  EXPECT_EQ(o.stall_timeout, seconds(10));
  EXPECT_EQ(o.retry_window, seconds(15));
  EXPECT_EQ(OutageBound(o), seconds(25));
}

// A frozen endpoint (accepts, never answers) with short timeouts: the call
// fails with kUnavailable, after more than one attempt, within the bound the
// options state. Real time: curl's timeouts run on it.
TEST(HttpClientOutageTest, FrozenEndpointFailsWithinTheStatedBound) {
  FrozenServer frozen;
  ClientOptions o{.connect_timeout = seconds(1), .stall_timeout = seconds(1), .retry_window = seconds(2)};
  HttpClient client(LoopbackEndpoint(frozen.port()), o);
  const auto start = std::chrono::steady_clock::now();
  auto r = client.Execute(Get(client), "test get");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("gave up after"), std::string::npos) << r.status().ToString();
  // curl checks the low-speed limit once a second: allow that much on top.
  EXPECT_LT(elapsed, OutageBound(o) + seconds(2));
}

// The same with the production defaults: the figure README states.
TEST(HttpClientOutageTest, FrozenEndpointWithDefaultOptionsFailsWithinTwentyFiveSeconds) {
  FrozenServer frozen;
  HttpClient client(LoopbackEndpoint(frozen.port()), ClientOptions{});
  const auto start = std::chrono::steady_clock::now();
  auto r = client.Execute(Get(client), "test get");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_LT(elapsed, OutageBound(ClientOptions{}) + seconds(2));
  std::cout << "frozen endpoint noticed after "
            << std::chrono::duration_cast<milliseconds>(elapsed).count() << " ms\n";
}

}  // namespace
}  // namespace sb::http
