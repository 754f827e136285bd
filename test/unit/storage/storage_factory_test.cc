#include "storage/storage_factory.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace sb {
namespace {

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ParseStorageUrlTest, FileUrls) {
  auto u = ParseStorageUrl("file:///var/backups/repo");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, StorageUrl::Scheme::kFile);
  EXPECT_EQ(u->path, "/var/backups/repo");

  auto trailing = ParseStorageUrl("file:///var/backups/repo//");
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ(trailing->path, "/var/backups/repo");

  auto root = ParseStorageUrl("file:///");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->path, "/");
}

TEST(ParseStorageUrlTest, RelativeFileUrlIsRejectedWithAnExample) {
  for (const std::string url : {"file://relative/dir", "file://", "file://./x"}) {
    auto u = ParseStorageUrl(url);
    ASSERT_FALSE(u.ok()) << url;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(u.status().message(), "\"" + url + "\"")) << u.status().ToString();
    EXPECT_TRUE(Contains(u.status().message(), "absolute")) << u.status().ToString();
    EXPECT_TRUE(Contains(u.status().message(), "hint: ")) << u.status().ToString();
    EXPECT_TRUE(Contains(u.status().message(), "file:///")) << u.status().ToString();
  }
}

TEST(ParseStorageUrlTest, AzureUrls) {
  auto bare = ParseStorageUrl("azure://backups");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ(bare->scheme, StorageUrl::Scheme::kAzure);
  EXPECT_EQ(bare->container, "backups");
  EXPECT_EQ(bare->prefix, "");

  auto prefixed = ParseStorageUrl("azure://backups/prod/db-1/");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ(prefixed->container, "backups");
  EXPECT_EQ(prefixed->prefix, "prod/db-1");

  auto slash_only = ParseStorageUrl("azure://abc/");
  ASSERT_TRUE(slash_only.ok());
  EXPECT_EQ(slash_only->prefix, "");

  EXPECT_TRUE(ParseStorageUrl("azure://a1-b2-c3").ok());
  EXPECT_TRUE(ParseStorageUrl("azure://" + std::string(63, 'a')).ok());
  EXPECT_TRUE(ParseStorageUrl("azure://123").ok());
}

TEST(ParseStorageUrlTest, AzureContainerNamesFollowAzureRules) {
  for (const std::string name : {"ab", "Backups", "back_ups", "-abc", "abc-", "a--b", "back.ups", "caf\xc3\xa9"}) {
    auto u = ParseStorageUrl("azure://" + name + "/p");
    ASSERT_FALSE(u.ok()) << name;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(u.status().message(), "container name \"" + name + "\"")) << u.status().ToString();
    EXPECT_TRUE(Contains(u.status().message(), "hint: ")) << u.status().ToString();
  }
  EXPECT_FALSE(ParseStorageUrl("azure://" + std::string(64, 'a')).ok());
  auto empty = ParseStorageUrl("azure://");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(Contains(empty.status().message(), "no Azure container")) << empty.status().ToString();
  EXPECT_FALSE(ParseStorageUrl("azure:///prefix").ok());
  EXPECT_FALSE(ParseStorageUrl("azure://backups/a//b").ok());
}

TEST(ParseStorageUrlTest, AzureQueryStringIsRefusedWithoutEchoingIt) {
  auto u = ParseStorageUrl("azure://backups/p?sv=2020&sig=SECRETSIGNATURE");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Contains(u.status().message(), "SECRETSIGNATURE")) << u.status().ToString();
  EXPECT_TRUE(Contains(u.status().message(), "AZURE_STORAGE_SAS_TOKEN"));
}

TEST(ParseStorageUrlTest, MemoryUrls) {
  auto u = ParseStorageUrl("memory://unit");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, StorageUrl::Scheme::kMemory);
  EXPECT_EQ(u->path, "unit");
}

TEST(ParseStorageUrlTest, UnsupportedUrls) {
  for (const std::string url : {"s3://bucket/x", "/var/backups", "", "FILE:///x", "gs://b", "azure:/x", "file:/x"}) {
    auto u = ParseStorageUrl(url);
    ASSERT_FALSE(u.ok()) << url;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(u.status().message(), "unsupported storage URL \"" + url +
                                         "\"; hint: use file:///path or azure://container[/prefix]");
  }
}

class OpenStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb-factory-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(OpenStorageTest, FileUrlCreatesTheRootDirectory) {
  auto s = OpenStorage("file://" + dir_ + "/repo/nested");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/repo/nested"));
  EXPECT_EQ((*s)->Describe(), "file://" + dir_ + "/repo/nested");
  ASSERT_TRUE((*s)->Put("a/b", "v").ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/repo/nested/a/b"));
}

TEST_F(OpenStorageTest, FileUrlFailsWhenTheRootCannotBeCreated) {
  std::ofstream(dir_ + "/plain-file") << "x";
  auto s = OpenStorage("file://" + dir_ + "/plain-file/repo");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.status().message(), dir_ + "/plain-file")) << s.status().ToString();
  auto not_dir = OpenStorage("file://" + dir_ + "/plain-file");
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.status().code(), StatusCode::kFailedPrecondition) << not_dir.status().ToString();
}

TEST_F(OpenStorageTest, FileUrlErrorsPropagateFromParsing) {
  auto s = OpenStorage("file://relative");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStorage("ftp://x").status().code(), StatusCode::kInvalidArgument);
}

TEST(OpenMemoryStorageTest, NamedInstancesShareDataAcrossOpens) {
  auto a = OpenStorage("memory://factory-shared");
  auto b = OpenStorage("memory://factory-shared");
  auto other = OpenStorage("memory://factory-other");
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  ASSERT_TRUE((*a)->Put("k", "v").ok());
  auto got = (*b)->Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "v");
  EXPECT_TRUE((*other)->Get("k").status().IsNotFound());
  EXPECT_EQ((*a)->Describe(), "memory://factory-shared");
  // Leases are shared too.
  auto lease = (*a)->AcquireLease("lock", LeaseOptions{.owner = "a"});
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE((*b)->AcquireLease("lock", LeaseOptions{.owner = "b"}).status().IsAlreadyExists());
  // A handle stays usable after others are gone.
  a = Status::Cancelled("closed");
  EXPECT_TRUE((*b)->Get("k").ok());
}

// Clears the Azure credential variables for one test and restores them after,
// so Azure tests in the same binary still find theirs.
class ScopedNoAzureEnv {
 public:
  ScopedNoAzureEnv() {
    for (const char* var : kVars) {
      if (const char* v = ::getenv(var)) saved_.emplace_back(var, v);
      ::unsetenv(var);
    }
  }
  ~ScopedNoAzureEnv() {
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  static constexpr const char* kVars[] = {"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT",
                                          "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
                                          "AZURE_STORAGE_BLOB_ENDPOINT"};
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(OpenAzureStorageTest, MissingCredentialsNameTheVariables) {
  ScopedNoAzureEnv no_env;
  auto s = OpenStorage("azure://backups/prod");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << s.status().ToString();
  EXPECT_TRUE(Contains(s.status().message(), "AZURE_STORAGE_")) << s.status().ToString();
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

// Plain http:// sends the Shared Key signatures or the SAS token in clear:
// refused off loopback unless the operator allows it.
TEST(AzureEndpointTransportTest, HttpOffLoopbackIsRefusedUnlessAllowed) {
  for (const char* ep : {"http://backup.example.com/acct", "http://10.0.0.5:10000/devstoreaccount1",
                         "http://127.evil.example:10000/x", "HTTP://storage.example.net"}) {
    Status s = CheckAzureEndpointTransport(ep, /*allow_http=*/false);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << ep;
    EXPECT_NE(s.message().find("AZURE_STORAGE_ALLOW_HTTP=1"), std::string::npos) << s.message();
    EXPECT_TRUE(CheckAzureEndpointTransport(ep, /*allow_http=*/true).ok()) << ep;
  }
}

TEST(AzureEndpointTransportTest, HttpsAndLoopbackPass) {
  for (const char* ep : {"https://acct.blob.core.windows.net", "http://127.0.0.1:10000/devstoreaccount1",
                         "http://127.1.2.3:10000/x", "http://localhost:10000/devstoreaccount1",
                         "http://[::1]:10000/devstoreaccount1"}) {
    EXPECT_TRUE(CheckAzureEndpointTransport(ep, /*allow_http=*/false).ok()) << ep;
  }
}

TEST(AzureEndpointTransportTest, OpenStorageRefusesAClearTextEndpointFromTheEnvironment) {
  ScopedNoAzureEnv no_env;  // restores the shared Azurite's variables afterwards
  ::setenv("AZURE_STORAGE_CONNECTION_STRING",
           "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://203.0.113.9/acct;", 1);
  ::unsetenv("AZURE_STORAGE_ALLOW_HTTP");
  auto refused = OpenStorage("azure://backups");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message().find("a2V5"), std::string::npos) << "the key must not be echoed";
  ::setenv("AZURE_STORAGE_ALLOW_HTTP", "1", 1);
  auto allowed = OpenStorage("azure://backups");
  EXPECT_TRUE(allowed.ok()) << allowed.status().ToString();
  ::unsetenv("AZURE_STORAGE_ALLOW_HTTP");
}

}  // namespace
}  // namespace sb
