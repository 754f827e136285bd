// Tests of the Azure Blob driver: signing and configuration parsing without a
// server, then every operation against a throwaway Azurite (one per process,
// a fresh container per test), and the generic conformance suite on Azurite.
#include "storage/azure/azure_storage.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/text.h"
#include "storage/azure/azure_auth.h"
#include "support/azurite.h"
#include "support/loopback_http_server.h"
#include "support/storage_conformance.h"

namespace sb {
namespace {

using test::AzuriteServer;
using test::ListenOnLoopback;
using test::ScriptedServer;

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

#define AZ_ASSERT_OK(expr)                                                    \
  do {                                                                        \
    auto&& az_s_ = (expr);                                                    \
    ASSERT_TRUE(az_s_.ok()) << #expr << ": " << StatusOf(az_s_).ToString(); \
  } while (0)

#define AZ_EXPECT_CODE(expr, code_)                                                              \
  do {                                                                                           \
    auto&& az_r_ = (expr);                                                                       \
    EXPECT_EQ(StatusOf(az_r_).code(), (code_)) << #expr << ": " << StatusOf(az_r_).ToString(); \
  } while (0)

std::string RandomData(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A container name no other test in this process (or a concurrent one) uses.
std::string FreshContainer(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd() % 100000);
}

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  ScopedEnv() {
    for (const char* name : {"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
                             "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_BLOB_ENDPOINT"}) {
      const char* v = std::getenv(name);
      saved_[name] = v == nullptr ? std::nullopt : std::optional<std::string>(v);
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  void Set(const char* name, const std::string& value) { setenv(name, value.c_str(), 1); }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

int ClosedLoopbackPort() {
  int port = 0;
  close(test::BindLoopback(&port));  // bound but never listened on, now closed: connections are refused
  return port;
}

// ---------------------------------------------------------------------------
// Signing helpers (no server)

TEST(AzureAuthTest, Base64RoundTripsAndRejectsGarbage) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto back = Base64Decode(Base64Encode(s));
    AZ_ASSERT_OK(back);
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm9v!mFy").ok());
  EXPECT_FALSE(Base64Decode("Zm8=x").ok());
  EXPECT_FALSE(Base64Decode("Z").ok());
}

TEST(AzureAuthTest, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(HexEncode(azure::HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(AzureAuthTest, UrlEncodingKeepsUnreservedAndOptionallySlashes) {
  EXPECT_EQ(azure::UrlEncode("a b/c+d=é~", true), "a%20b/c%2Bd%3D%C3%A9~");
  EXPECT_EQ(azure::UrlEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(azure::UrlDecode("a%20b%2Fc%zz"), "a b/c%zz");
}

TEST(AzureAuthTest, SharedKeyStringToSignFollowsTheSpec) {
  azure::SignableRequest r{.method = "GET",
                           .path = "/devstoreaccount1/c1",
                           .query = {{"restype", "container"}, {"comp", "list"}, {"Prefix", "a b"}},
                           .headers = {{"x-ms-version", "2021-08-06"},
                                       {"X-MS-Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                       {"x-ms-meta-owner", "  two   words "},
                                       {"If-None-Match", "*"}},
                           .content_length = 0};
  EXPECT_EQ(azure::SharedKeyStringToSign("devstoreaccount1", r),
            "GET\n\n\n\n\n\n\n\n\n*\n\n\n"
            "x-ms-date:Sun, 06 Nov 1994 08:49:37 GMT\n"
            "x-ms-meta-owner:two words\n"
            "x-ms-version:2021-08-06\n"
            "/devstoreaccount1/devstoreaccount1/c1\ncomp:list\nprefix:a b\nrestype:container");
  r.method = "PUT";
  r.content_length = 5;
  EXPECT_TRUE(StartsWith(azure::SharedKeyStringToSign("devstoreaccount1", r), "PUT\n\n\n5\n"));
}

TEST(AzureAuthTest, HttpDatesRoundTrip) {
  SystemTime t = std::chrono::system_clock::from_time_t(784111777);  // 1994-11-06 08:49:37 UTC
  EXPECT_EQ(azure::FormatHttpDate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
  auto back = azure::ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT");
  AZ_ASSERT_OK(back);
  EXPECT_EQ(*back, t);
  EXPECT_FALSE(azure::ParseHttpDate("yesterday").ok());
}

// ---------------------------------------------------------------------------
// Configuration (no server)

TEST(AzureConfigTest, ConnectionStringWithAccountKeyBuildsTheEndpoint) {
  auto o = AzureOptionsFromConnectionString(
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5PT0=;EndpointSuffix=core.chinacloudapi.cn", "c1",
      "p");
  AZ_ASSERT_OK(o);
  EXPECT_EQ(o->account, "acct");
  EXPECT_EQ(o->shared_key_base64, "a2V5PT0=");
  EXPECT_EQ(o->endpoint, "https://acct.blob.core.chinacloudapi.cn");
  EXPECT_EQ(o->container, "c1");
  EXPECT_EQ(o->prefix, "p");

  auto d = AzureOptionsFromConnectionString("AccountName=acct;AccountKey=a2V5", "c1", "");
  AZ_ASSERT_OK(d);
  EXPECT_EQ(d->endpoint, "https://acct.blob.core.windows.net");
}

TEST(AzureConfigTest, BlobEndpointAndSasAreTakenAsGiven) {
  auto o = AzureOptionsFromConnectionString(
      " BlobEndpoint=https://acct.blob.core.windows.net/ ; SharedAccessSignature=sv=2021-08-06&ss=b&sig=a%2Bb%3D ;", "c1",
      "");
  AZ_ASSERT_OK(o);
  EXPECT_EQ(o->endpoint, "https://acct.blob.core.windows.net");
  EXPECT_EQ(o->sas_token, "sv=2021-08-06&ss=b&sig=a%2Bb%3D");
  EXPECT_EQ(o->account, "acct");
  EXPECT_TRUE(o->shared_key_base64.empty());
}

TEST(AzureConfigTest, DevelopmentStorageShortcut) {
  auto o = AzureOptionsFromConnectionString("UseDevelopmentStorage=true", "c1", "");
  AZ_ASSERT_OK(o);
  EXPECT_EQ(o->account, "devstoreaccount1");
  EXPECT_EQ(o->shared_key_base64, AzuriteServer::kAccountKey);
  EXPECT_EQ(o->endpoint, "http://127.0.0.1:10000/devstoreaccount1");
}

TEST(AzureConfigTest, MalformedConnectionStringsNeverEchoSecrets) {
  const std::string secret = "c2VjcmV0c2VjcmV0";
  for (const std::string& cs : std::vector<std::string>{"AccountName=acct;" + secret, "AccountName=acct", "AccountKey=" + secret}) {
    auto o = AzureOptionsFromConnectionString(cs, "c1", "");
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << cs;
    EXPECT_EQ(o.status().message().find(secret), std::string::npos) << o.status().ToString();
    EXPECT_NE(o.status().message().find("AZURE_STORAGE_CONNECTION_STRING"), std::string::npos)
        << o.status().ToString();
  }
}

TEST(AzureConfigTest, EnvironmentVariables) {
  ScopedEnv env;
  auto none = AzureOptionsFromEnvironment("c1", "");
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("AZURE_STORAGE_CONNECTION_STRING"), std::string::npos);
  EXPECT_NE(none.status().message().find("AZURE_STORAGE_KEY"), std::string::npos);
  EXPECT_EQ(none.status().message().find('\n'), std::string::npos);

  env.Set("AZURE_STORAGE_ACCOUNT", "acct");
  auto no_key = AzureOptionsFromEnvironment("c1", "");
  EXPECT_EQ(no_key.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_key.status().message().find("AZURE_STORAGE_SAS_TOKEN"), std::string::npos);

  env.Set("AZURE_STORAGE_KEY", "a2V5");
  auto key = AzureOptionsFromEnvironment("c1", "pre");
  AZ_ASSERT_OK(key);
  EXPECT_EQ(key->account, "acct");
  EXPECT_EQ(key->shared_key_base64, "a2V5");
  EXPECT_EQ(key->endpoint, "https://acct.blob.core.windows.net");
  EXPECT_EQ(key->prefix, "pre");

  env.Set("AZURE_STORAGE_BLOB_ENDPOINT", "http://127.0.0.1:10000/acct/");
  auto over = AzureOptionsFromEnvironment("c1", "");
  AZ_ASSERT_OK(over);
  EXPECT_EQ(over->endpoint, "http://127.0.0.1:10000/acct");

  env.Set("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true");
  auto cs = AzureOptionsFromEnvironment("c1", "");
  AZ_ASSERT_OK(cs);
  EXPECT_EQ(cs->account, "devstoreaccount1");
  EXPECT_EQ(cs->endpoint, "http://127.0.0.1:10000/acct") << "AZURE_STORAGE_BLOB_ENDPOINT overrides";
}

TEST(AzureConfigTest, OpenValidatesOptionsWithoutNetwork) {
  AzureStorageOptions o{.endpoint = "http://127.0.0.1:1/devstoreaccount1", .account = "devstoreaccount1",
                        .shared_key_base64 = AzuriteServer::kAccountKey, .container = "good-name"};
  AZ_ASSERT_OK(OpenAzureStorage(o));

  auto bad_container = o;
  bad_container.container = "Bad_Name";
  AZ_EXPECT_CODE(OpenAzureStorage(bad_container), StatusCode::kInvalidArgument);

  auto bad_key = o;
  bad_key.shared_key_base64 = "not base64!!";
  auto r = OpenAzureStorage(bad_key);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().find("not base64!!"), std::string::npos);

  auto no_creds = o;
  no_creds.shared_key_base64.clear();
  AZ_EXPECT_CODE(OpenAzureStorage(no_creds), StatusCode::kInvalidArgument);

  auto bad_endpoint = o;
  bad_endpoint.endpoint = "127.0.0.1:10000";
  AZ_EXPECT_CODE(OpenAzureStorage(bad_endpoint), StatusCode::kInvalidArgument);

  auto prefixed = o;
  prefixed.prefix = "/backups/pg1/";
  auto s = OpenAzureStorage(prefixed);
  AZ_ASSERT_OK(s);
  EXPECT_EQ((*s)->Describe(), "azure://good-name/backups/pg1");
}

TEST(AzureConfigTest, UnreachableEndpointIsUnavailableQuickly) {
  int port = ClosedLoopbackPort();
  ManualClock clock(std::chrono::system_clock::now());
  AzureStorageOptions o{.endpoint = "http://127.0.0.1:" + std::to_string(port) + "/devstoreaccount1",
                        .account = "devstoreaccount1",
                        .shared_key_base64 = AzuriteServer::kAccountKey,
                        .container = "unreachable",
                        .max_retries = 1,
                        .clock = &clock};
  auto storage = OpenAzureStorage(o);
  AZ_ASSERT_OK(storage);
  auto start = std::chrono::steady_clock::now();
  auto got = (*storage)->Get("k");
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
  EXPECT_NE(got.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << got.status().ToString();
  EXPECT_NE(got.status().message().find("unreachable"), std::string::npos) << got.status().ToString();
  EXPECT_EQ(got.status().message().find(AzuriteServer::kAccountKey), std::string::npos);
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  // The one retry slept on the injected clock, not the real one.
  EXPECT_GE(clock.SteadyNow().time_since_epoch(), std::chrono::milliseconds(100));

  AZ_EXPECT_CODE((*storage)->Put("k", "v"), StatusCode::kUnavailable);
  AZ_EXPECT_CODE((*storage)->List("", ""), StatusCode::kUnavailable);
}

AzureStorageOptions OptionsFor(int port, Clock* clock, int max_retries) {
  return AzureStorageOptions{.endpoint = "http://127.0.0.1:" + std::to_string(port) + "/devstoreaccount1",
                             .account = "devstoreaccount1",
                             .shared_key_base64 = AzuriteServer::kAccountKey,
                             .container = "scripted",
                             .max_retries = max_retries,
                             .clock = clock};
}

// A keep-alive server whose second request arrives on the reused connection
// and is read in full, then that connection is dropped without an answer (a
// restarted endpoint, a proxy closing an idle connection). libcurl retries on
// a fresh connection and must rewind the upload body to do so; each request
// that is answered gets 201.
class DroppingServer {
 public:
  DroppingServer() {
    fd_ = ListenOnLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~DroppingServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int answered() const { return answered_.load(); }
  std::vector<std::string> bodies() const {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  // Reads one request (headers and Content-Length body) from c; false at EOF.
  bool ReadRequest(int c, std::string& pending, std::string* body) {
    char buf[4096];
    size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) return false;
      pending.append(buf, static_cast<size_t>(n));
    }
    size_t length = 0;
    std::string lower = pending.substr(0, end);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (size_t at = lower.find("content-length:"); at != std::string::npos) {
      length = std::strtoull(lower.c_str() + at + 15, nullptr, 10);
    }
    while (pending.size() < end + 4 + length) {
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) return false;
      pending.append(buf, static_cast<size_t>(n));
    }
    *body = pending.substr(end + 4, length);
    pending.erase(0, end + 4 + length);
    return true;
  }
  void Serve() {
    int requests = 0;
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string pending, body;
      while (ReadRequest(c, pending, &body)) {
        if (++requests == 2) break;  // read in full, never answered: the connection dies
        {
          std::lock_guard lock(mu_);
          bodies_.push_back(body);
        }
        const std::string resp =
            "HTTP/1.1 201 Created\r\nETag: \"0x1\"\r\nLast-Modified: Mon, 30 Nov 2026 08:00:00 GMT\r\n"
            "Content-Length: 0\r\n\r\n";
        ++answered_;  // before the answer: the client may check the count as soon as it has it
        (void)!write(c, resp.data(), resp.size());
      }
      close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> answered_{0};
  mutable std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

// Issue 11: "Send failed since rewinding of the data stream failed" — an
// upload retried by libcurl on a fresh connection needs a seekable body.
TEST(AzureRetryTest, UploadOnADroppedPooledConnectionIsResentWhole) {
  DroppingServer server;
  ManualClock clock(std::chrono::system_clock::now());
  auto storage = OpenAzureStorage(OptionsFor(server.port(), &clock, /*max_retries=*/0));
  AZ_ASSERT_OK(storage);
  ASSERT_TRUE((*storage)->Put("a", "first").ok());
  Status second = (*storage)->Put("b", "second body");
  EXPECT_TRUE(second.ok()) << second.ToString();
  EXPECT_EQ(server.answered(), 2);
  EXPECT_EQ(server.bodies(), (std::vector<std::string>{"first", "second body"}));
}

TEST(AzureRetryTest, TransientHttpErrorsAreRetriedWithBackoffOnTheClock) {
  ScriptedServer server({503, 500, 429});
  ManualClock clock(std::chrono::system_clock::now());
  auto storage = OpenAzureStorage(OptionsFor(server.port(), &clock, 5));
  AZ_ASSERT_OK(storage);
  auto got = (*storage)->Get("k");
  AZ_ASSERT_OK(got);
  EXPECT_EQ(*got, "ok");
  EXPECT_EQ(server.requests(), 4);
  // Three exponential sleeps: at least 100 + 200 + 400 ms.
  EXPECT_GE(clock.SteadyNow().time_since_epoch(), std::chrono::milliseconds(700));
}

TEST(AzureRetryTest, PersistentServerErrorsBecomeUnavailableAfterMaxRetries) {
  ScriptedServer server({503, 503, 503, 503, 503});
  ManualClock clock(std::chrono::system_clock::now());
  auto storage = OpenAzureStorage(OptionsFor(server.port(), &clock, 2));
  AZ_ASSERT_OK(storage);
  Status s = (*storage)->Put("k", "v");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("503"), std::string::npos) << s.ToString();
  EXPECT_EQ(server.requests(), 3);
}

// ---------------------------------------------------------------------------
// Against Azurite

class AzureStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SB_REQUIRE_AZURITE(server);
    server_ = server;
    container_ = FreshContainer("t");
    storage_ = Open();
    ASSERT_NE(storage_, nullptr);
  }

  AzureStorageOptions Options(const std::string& prefix = "pre/fix") const {
    return AzureStorageOptions{.endpoint = server_->endpoint(),
                               .account = AzuriteServer::kAccount,
                               .shared_key_base64 = AzuriteServer::kAccountKey,
                               .container = container_,
                               .prefix = prefix,
                               .max_retries = 2};
  }

  std::unique_ptr<Storage> Open(const AzureStorageOptions& o) {
    auto s = OpenAzureStorage(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::unique_ptr<Storage> Open() { return Open(Options()); }

  // Everything a test provoked, to check no secret leaked into a message.
  void Remember(const Status& s) { messages_.push_back(s.message()); }

  AzuriteServer* server_ = nullptr;
  std::string container_;
  std::unique_ptr<Storage> storage_;
  std::vector<std::string> messages_;
};

TEST_F(AzureStorageTest, RoundTripsAndDescribes) {
  EXPECT_EQ(storage_->Describe(), "azure://" + container_ + "/pre/fix");
  const std::string binary = RandomData(70000, 1) + std::string(10, '\0');
  AZ_ASSERT_OK(storage_->Put("a/b.bin", binary));  // also creates the container
  AZ_ASSERT_OK(storage_->Put("empty", ""));
  AZ_ASSERT_OK(storage_->Put("odd name/with space+plus&amp;%25é", "x"));
  auto got = storage_->Get("a/b.bin");
  AZ_ASSERT_OK(got);
  EXPECT_TRUE(*got == binary);
  auto empty = storage_->Get("empty");
  AZ_ASSERT_OK(empty);
  EXPECT_EQ(*empty, "");
  auto odd = storage_->Get("odd name/with space+plus&amp;%25é");
  AZ_ASSERT_OK(odd);
  EXPECT_EQ(*odd, "x");
  AZ_ASSERT_OK(storage_->Put("a/b.bin", "v2"));
  got = storage_->Get("a/b.bin");
  AZ_ASSERT_OK(got);
  EXPECT_EQ(*got, "v2");

  // The prefix is a real blob-name prefix: an unprefixed handle sees it.
  auto root = Open(Options(""));
  auto raw = root->Get("pre/fix/a/b.bin");
  AZ_ASSERT_OK(raw);
  EXPECT_EQ(*raw, "v2");
  EXPECT_EQ(root->Describe(), "azure://" + container_);
}

TEST_F(AzureStorageTest, MissingObjectsAndContainerAreNotFound) {
  // The container does not exist yet.
  AZ_EXPECT_CODE(storage_->Get("nope"), StatusCode::kNotFound);
  AZ_EXPECT_CODE(storage_->Stat("nope"), StatusCode::kNotFound);
  AZ_EXPECT_CODE(storage_->GetRange("nope", 0, 10), StatusCode::kNotFound);
  auto page = storage_->List("", "");
  AZ_ASSERT_OK(page);
  EXPECT_TRUE(page->objects.empty());
  EXPECT_TRUE(page->next_token.empty());
  AZ_ASSERT_OK(storage_->Delete("nope"));

  AZ_ASSERT_OK(storage_->Put("there", "1"));
  auto missing = storage_->Get("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("\"nope\""), std::string::npos) << missing.status().ToString();
  AZ_EXPECT_CODE(storage_->GetRange("nope", 0, 10), StatusCode::kNotFound);
}

TEST_F(AzureStorageTest, LargeObjectGoesThroughBlocks) {
  auto o = Options();
  o.block_size = 4 << 20;
  o.single_put_max = 4 << 20;
  o.parallelism = 3;
  auto s = Open(o);
  const std::string big = RandomData((20 << 20) + 123, 7);
  AZ_ASSERT_OK(s->Put("big", big));
  auto got = s->Get("big");
  AZ_ASSERT_OK(got);
  ASSERT_EQ(got->size(), big.size());
  EXPECT_TRUE(*got == big);
  auto info = s->Stat("big");
  AZ_ASSERT_OK(info);
  EXPECT_EQ(info->size, big.size());
  // A range across the boundary of blocks 1 and 2.
  auto range = s->GetRange("big", (8 << 20) - 100, 200);
  AZ_ASSERT_OK(range);
  EXPECT_EQ(*range, big.substr((8 << 20) - 100, 200));

  // Block uploads honour if_absent too, and replace atomically otherwise.
  AZ_EXPECT_CODE(s->Put("big", big, PutOptions{.if_absent = true}), StatusCode::kAlreadyExists);
  const std::string big2 = RandomData((9 << 20) + 5, 8);
  AZ_ASSERT_OK(s->Put("big", big2));
  got = s->Get("big");
  AZ_ASSERT_OK(got);
  EXPECT_TRUE(*got == big2);
  AZ_ASSERT_OK(s->Put("big-new", big2, PutOptions{.if_absent = true}));
}

TEST_F(AzureStorageTest, RangedReads) {
  AZ_ASSERT_OK(storage_->Put("r", "0123456789"));
  AZ_ASSERT_OK(storage_->Put("empty", ""));
  auto expect_range = [&](const std::string& key, uint64_t off, uint64_t len, const std::string& want) {
    auto got = storage_->GetRange(key, off, len);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, want) << key << " " << off << "+" << len;
  };
  expect_range("r", 0, 3, "012");
  expect_range("r", 7, 3, "789");
  expect_range("r", 7, 100, "789");
  expect_range("r", 9, 1, "9");
  expect_range("r", 10, 5, "");
  expect_range("r", 50, 5, "");
  expect_range("r", 3, 0, "");
  expect_range("r", 2, UINT64_MAX, "23456789");
  expect_range("empty", 0, 10, "");
  expect_range("empty", 5, 10, "");
}

TEST_F(AzureStorageTest, ListPaginatesAndFiltersByPrefix) {
  for (const char* k : {"d/e", "d/a", "d/c", "d/b", "d/d", "other/x", "dz"}) AZ_ASSERT_OK(storage_->Put(k, k));
  // A sibling prefix in the same container stays invisible.
  AZ_ASSERT_OK(Open(Options("pre/fixed"))->Put("d/zz", "hidden"));

  std::vector<std::string> keys;
  std::string token;
  int pages = 0;
  do {
    auto page = storage_->List("d/", token, 2);
    AZ_ASSERT_OK(page);
    EXPECT_LE(page->objects.size(), 2u);
    for (const auto& o : page->objects) {
      keys.push_back(o.key);
      EXPECT_EQ(o.size, 3u);
      EXPECT_GT(o.mtime, std::chrono::system_clock::from_time_t(1600000000));
    }
    token = page->next_token;
    ++pages;
    ASSERT_LT(pages, 10);
  } while (!token.empty());
  EXPECT_EQ(keys, (std::vector<std::string>{"d/a", "d/b", "d/c", "d/d", "d/e"}));
  EXPECT_GE(pages, 3);

  auto all = ListAll(*storage_, "");
  AZ_ASSERT_OK(all);
  std::vector<std::string> names;
  for (const auto& o : *all) names.push_back(o.key);
  EXPECT_EQ(names, (std::vector<std::string>{"d/a", "d/b", "d/c", "d/d", "d/e", "dz", "other/x"}));

  auto plain = ListAll(*storage_, "d");  // a plain string prefix
  AZ_ASSERT_OK(plain);
  EXPECT_EQ(plain->size(), 6u);
}

TEST_F(AzureStorageTest, ListDecodesXmlEntitiesInNames) {
  const std::vector<std::string> keys = {"x/a&b", "x/c<d>e", "x/q\"uote's", "x/\xc3\xbc-unicode", "x/tab\there"};
  for (const auto& k : keys) AZ_ASSERT_OK(storage_->Put(k, "v"));
  auto all = ListAll(*storage_, "x/");
  AZ_ASSERT_OK(all);
  std::vector<std::string> names;
  for (const auto& o : *all) names.push_back(o.key);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(names, sorted);
}

TEST_F(AzureStorageTest, IfAbsentAndDeleteIdempotence) {
  AZ_ASSERT_OK(storage_->Put("once", "1", PutOptions{.if_absent = true}));
  Status again = storage_->Put("once", "2", PutOptions{.if_absent = true});
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_NE(again.message().find("\"once\""), std::string::npos) << again.ToString();
  auto got = storage_->Get("once");
  AZ_ASSERT_OK(got);
  EXPECT_EQ(*got, "1");

  AZ_ASSERT_OK(storage_->Delete("once"));
  AZ_ASSERT_OK(storage_->Delete("once"));
  AZ_EXPECT_CODE(storage_->Get("once"), StatusCode::kNotFound);
  AZ_ASSERT_OK(storage_->Put("once", "3", PutOptions{.if_absent = true}));
}

TEST_F(AzureStorageTest, StatReportsSizeAndMtime) {
  const auto before = std::chrono::system_clock::now();
  AZ_ASSERT_OK(storage_->Put("s", std::string(1234, 'x')));
  auto info = storage_->Stat("s");
  AZ_ASSERT_OK(info);
  EXPECT_EQ(info->key, "s");
  EXPECT_EQ(info->size, 1234u);
  // Azure's Last-Modified has whole seconds; allow for that and clock skew.
  EXPECT_GE(info->mtime, before - std::chrono::seconds(5));
  EXPECT_LE(info->mtime, before + std::chrono::seconds(60));
}

TEST_F(AzureStorageTest, LeasesAreExclusiveAndNameTheHolder) {
  auto other = Open();
  auto alice = storage_->AcquireLease("lock", LeaseOptions{.ttl = std::chrono::seconds(30), .owner = "alice"});
  AZ_ASSERT_OK(alice);
  auto bob = other->AcquireLease("lock", LeaseOptions{.owner = "bob"});
  EXPECT_EQ(bob.status().code(), StatusCode::kAlreadyExists) << bob.status().ToString();
  EXPECT_NE(bob.status().message().find("lease on \"lock\" is held by another agent"), std::string::npos)
      << bob.status().ToString();
  EXPECT_NE(bob.status().message().find("alice"), std::string::npos) << bob.status().ToString();
  AZ_ASSERT_OK((*alice)->Renew());
  AZ_ASSERT_OK((*alice)->Release());
  AZ_ASSERT_OK((*alice)->Release());  // idempotent
  AZ_EXPECT_CODE((*alice)->Renew(), StatusCode::kFailedPrecondition);

  auto bob2 = other->AcquireLease("lock", LeaseOptions{.ttl = std::chrono::seconds(5), .owner = "bob"});
  AZ_ASSERT_OK(bob2);
  AZ_EXPECT_CODE(storage_->AcquireLease("lock", LeaseOptions{.owner = "carol"}), StatusCode::kAlreadyExists);
  bob2 = Status::Cancelled("dropped");  // the destructor releases
  auto carol = storage_->AcquireLease("lock", LeaseOptions{.owner = "carol"});
  AZ_ASSERT_OK(carol);

  // A lease survives its storage and still releases.
  storage_.reset();
  AZ_ASSERT_OK((*carol)->Renew());
  AZ_ASSERT_OK((*carol)->Release());
  AZ_ASSERT_OK(other->AcquireLease("lock", LeaseOptions{.owner = "dave"}));
}

TEST_F(AzureStorageTest, LeasedObjectsRefuseOtherWriters) {
  AZ_ASSERT_OK(storage_->Put("locked", "data"));
  auto lease = storage_->AcquireLease("locked", LeaseOptions{.owner = "me"});
  AZ_ASSERT_OK(lease);
  auto got = storage_->Get("locked");  // reading is fine
  AZ_ASSERT_OK(got);
  EXPECT_EQ(*got, "data");
  AZ_EXPECT_CODE(storage_->Delete("locked"), StatusCode::kFailedPrecondition);
  AZ_ASSERT_OK((*lease)->Release());
  AZ_ASSERT_OK(storage_->Delete("locked"));
}

TEST_F(AzureStorageTest, SasTokenAuthWorksAndAWrongKeyIsPermissionDenied) {
  auto key = Base64Decode(AzuriteServer::kAccountKey);
  AZ_ASSERT_OK(key);
  azure::AccountSasOptions sas_options{.expiry = std::chrono::system_clock::now() + std::chrono::hours(1)};
  std::string sas = azure::MakeAccountSas(AzuriteServer::kAccount, *key, sas_options);

  auto o = Options();
  o.shared_key_base64.clear();
  o.sas_token = "?" + sas;
  auto s = Open(o);
  AZ_ASSERT_OK(s->Put("via-sas", "hello"));  // creates the container too
  auto got = s->Get("via-sas");
  AZ_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");
  AZ_ASSERT_OK(s->Put("via-sas-big", RandomData(300000, 3)));
  auto page = s->List("", "");
  AZ_ASSERT_OK(page);
  EXPECT_EQ(page->objects.size(), 2u);
  auto lease = s->AcquireLease("via-sas", LeaseOptions{.owner = "sas"});
  AZ_ASSERT_OK(lease);
  AZ_ASSERT_OK((*lease)->Release());
  AZ_ASSERT_OK(s->Delete("via-sas"));

  // A SAS signed with another key.
  std::string wrong_key = RandomData(64, 99);
  std::string bad_sas = azure::MakeAccountSas(AzuriteServer::kAccount, wrong_key, sas_options);
  auto bo = o;
  bo.sas_token = bad_sas;
  auto bad = Open(bo);
  auto denied = bad->Get("via-sas-big");
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied) << denied.status().ToString();
  EXPECT_NE(denied.status().message().find("hint"), std::string::npos);
  Remember(denied.status());
  Remember(bad->Put("x", "y"));
  for (const auto& m : messages_) {
    EXPECT_EQ(m.find(bad_sas), std::string::npos) << m;
    EXPECT_EQ(m.find("sig="), std::string::npos) << m;
  }
  EXPECT_EQ(bad->Describe().find("sig"), std::string::npos);
}

TEST_F(AzureStorageTest, WrongSharedKeyIsPermissionDeniedWithoutLeakingIt) {
  AZ_ASSERT_OK(storage_->Put("k", "v"));
  const std::string wrong = Base64Encode(RandomData(64, 5));
  auto o = Options();
  o.shared_key_base64 = wrong;
  auto s = Open(o);
  auto got = s->Get("k");
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied) << got.status().ToString();
  EXPECT_NE(got.status().message().find("AZURE_STORAGE_KEY"), std::string::npos) << got.status().ToString();
  Remember(got.status());
  Remember(s->Put("k", "w"));
  Remember(s->Stat("k").status());
  Remember(s->List("", "").status());
  Remember(s->Delete("k"));
  Remember(s->AcquireLease("k", {}).status());
  // And errors from the right key, for good measure.
  Remember(storage_->Get("missing").status());
  Remember(storage_->Put("k", "v", PutOptions{.if_absent = true}));
  for (const auto& m : messages_) {
    EXPECT_FALSE(m.empty());
    EXPECT_EQ(m.find(wrong), std::string::npos) << m;
    EXPECT_EQ(m.find(AzuriteServer::kAccountKey), std::string::npos) << m;
  }
  for (size_t i = 0; i < 6; ++i) EXPECT_NE(messages_[i].find("azure rejected the credentials"), std::string::npos) << messages_[i];
  EXPECT_EQ(s->Describe().find(wrong), std::string::npos);
}

TEST_F(AzureStorageTest, OptionsFromConnectionStringTalkToAzurite) {
  auto o = AzureOptionsFromConnectionString(server_->connection_string(), container_, "cs");
  AZ_ASSERT_OK(o);
  auto s = Open(*o);
  AZ_ASSERT_OK(s->Put("k", "from connection string"));
  auto got = storage_->Get("../cs/k");  // not a way in: keys are names, not paths
  EXPECT_FALSE(got.ok() && *got == "from connection string");
  auto direct = Open(Options("cs"))->Get("k");
  AZ_ASSERT_OK(direct);
  EXPECT_EQ(*direct, "from connection string");
}

TEST_F(AzureStorageTest, ConcurrentUseOfOneHandle) {
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string k = "c/" + std::to_string(t) + "/" + std::to_string(i);
        if (!storage_->Put(k, k).ok()) ++errors;
        auto got = storage_->Get(k);
        if (!got.ok() || *got != k) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  auto all = ListAll(*storage_, "c/");
  AZ_ASSERT_OK(all);
  EXPECT_EQ(all->size(), 60u);
}

// ---------------------------------------------------------------------------
// The generic conformance suite on Azurite: every handle made during one test
// shares that test's container.

std::unique_ptr<Storage> MakeAzuriteStorageForCurrentTest() {
  AzuriteServer* server = AzuriteServer::Shared();
  if (server == nullptr) {
    ADD_FAILURE() << AzuriteServer::StartError();
    return nullptr;
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info == nullptr ? "none" : std::string(info->test_suite_name()) + "." + info->name();
  uint64_t h = 1469598103934665603ull;  // FNV-1a: a stable, valid container name per test
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  static const std::string run = std::to_string(::getpid());
  AzureStorageOptions o{.endpoint = server->endpoint(),
                        .account = AzuriteServer::kAccount,
                        .shared_key_base64 = AzuriteServer::kAccountKey,
                        .container = "conf-" + run + "-" + HexEncode(std::string(reinterpret_cast<char*>(&h), 8)),
                        .block_size = 1 << 20,
                        .single_put_max = 1 << 20};  // so LargeObjectRoundTrips uses blocks
  auto s = OpenAzureStorage(o);
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    return nullptr;
  }
  return std::move(s).value();
}

// No Azurite installed and SMARTBACKUP_SKIP_AZURE=1: no conformance tests
// for Azure rather than failing ones (a factory cannot skip a test).
std::vector<test::NamedStorageFactory> AzureConformanceFactories() {
  if (AzuriteServer::SkipRequested() && AzuriteServer::FindBinary().empty()) return {};
  return {test::NamedStorageFactory{"azurite", [] { return MakeAzuriteStorageForCurrentTest(); }}};
}

}  // namespace
}  // namespace sb

namespace sb::test {

INSTANTIATE_TEST_SUITE_P(Azure, StorageConformanceTest, ::testing::ValuesIn(::sb::AzureConformanceFactories()),
                         StorageConformanceName());

}  // namespace sb::test
