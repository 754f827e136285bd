// URL parsing and driver selection. Retry policy per driver: Azure retries
// kUnavailable itself (with its own backoff on the injected clock), Local never
// returns a transient error worth retrying and Memory cannot fail, so no driver
// here currently needs the RetryStorage decorator (storage/retry/); a future
// driver that does not retry by itself should be wrapped in OpenStorage.
//
// For kMemory, StorageUrl::path holds the instance name ("memory://name").
#include "storage/storage_factory.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <utility>

#include "storage/azure/azure_storage.h"
#include "storage/local/local_storage.h"
#include "storage/memory/memory_storage.h"
#include "storage/tagged/tagged_storage.h"

namespace sb {

namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::string_view kAzureScheme = "azure://";
constexpr std::string_view kMemoryScheme = "memory://";

Status Unsupported(const std::string& url) {
  return Status::InvalidArgument("unsupported storage URL \"" + url +
                                 "\"; hint: use file:///path or azure://container[/prefix]");
}

// Azure: 3-63 characters, lowercase letters, digits and hyphens, starting and
// ending with a letter or digit, no two hyphens in a row.
Status ValidateContainerName(const std::string& name, const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("invalid Azure container name \"" + name + "\" in storage URL \"" + url + "\": " +
                                   why + "; hint: use 3-63 lowercase letters, digits and single hyphens, e.g. " +
                                   "azure://backups/prod");
  };
  if (name.size() < 3 || name.size() > 63) return bad("it must be 3 to 63 characters long");
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return bad("only lowercase letters, digits and hyphens are allowed");
    }
  }
  if (name.front() == '-' || name.back() == '-') return bad("it must start and end with a letter or digit");
  if (name.find("--") != std::string::npos) return bad("hyphens must not follow each other");
  return Status::Ok();
}

// A Storage handle that forwards to a shared instance (named memory storages).
class SharedStorage final : public Storage {
 public:
  explicit SharedStorage(std::shared_ptr<Storage> target) : target_(std::move(target)) {}
  Status Put(std::string_view key, std::string_view data, const PutOptions& options) override {
    return target_->Put(key, data, options);
  }
  Result<std::string> Get(std::string_view key) override { return target_->Get(key); }
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override {
    return target_->GetRange(key, offset, length);
  }
  Result<ObjectInfo> Stat(std::string_view key) override { return target_->Stat(key); }
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results) override {
    return target_->List(prefix, page_token, max_results);
  }
  Status Delete(std::string_view key) override { return target_->Delete(key); }
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override {
    return target_->AcquireLease(key, options);
  }
  std::string Describe() const override { return target_->Describe(); }

 private:
  std::shared_ptr<Storage> target_;
};

}  // namespace

Result<StorageUrl> ParseStorageUrl(const std::string& url) {
  StorageUrl out{};
  std::string_view u = url;
  if (u.starts_with(kFileScheme)) {
    std::string path(u.substr(kFileScheme.size()));
    if (path.empty() || path.front() != '/') {
      return Status::InvalidArgument("storage URL \"" + url +
                                     "\" must name an absolute directory; hint: use three slashes, e.g. "
                                     "file:///var/lib/smartbackup/repo");
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    out.scheme = StorageUrl::Scheme::kFile;
    out.path = std::move(path);
    return out;
  }
  if (u.starts_with(kAzureScheme)) {
    std::string_view rest = u.substr(kAzureScheme.size());
    if (rest.find_first_of("?#") != std::string_view::npos) {
      // Do not echo the URL: a query string is where a SAS token would be.
      return Status::InvalidArgument(
          "azure storage URL must not carry a query string or fragment; hint: pass credentials in "
          "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or "
          "AZURE_STORAGE_SAS_TOKEN");
    }
    size_t slash = rest.find('/');
    std::string container(rest.substr(0, slash));
    std::string_view prefix = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (container.empty()) {
      return Status::InvalidArgument("storage URL \"" + url +
                                     "\" names no Azure container; hint: use azure://container[/prefix], e.g. "
                                     "azure://backups/prod");
    }
    RETURN_IF_ERROR(ValidateContainerName(container, url));
    if (prefix.find("//") != std::string_view::npos) {
      return Status::InvalidArgument("storage URL \"" + url + "\" has an empty path component in its prefix");
    }
    out.scheme = StorageUrl::Scheme::kAzure;
    out.container = std::move(container);
    out.prefix = std::string(prefix);
    return out;
  }
  if (u.starts_with(kMemoryScheme)) {
    out.scheme = StorageUrl::Scheme::kMemory;
    out.path = std::string(u.substr(kMemoryScheme.size()));
    return out;
  }
  return Unsupported(url);
}

Status CheckAzureEndpointTransport(const std::string& endpoint, bool allow_http) {
  size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos) return Status::Ok();  // the driver refuses it with its own message
  std::string scheme = endpoint.substr(0, scheme_end);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" || allow_http) return Status::Ok();
  const size_t host_begin = scheme_end + 3;
  std::string authority = endpoint.substr(host_begin, endpoint.find_first_of("/?#", host_begin) - host_begin);
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  std::string host;
  if (!authority.empty() && authority.front() == '[') {
    host = authority.substr(1, authority.find(']') == std::string::npos ? std::string::npos : authority.find(']') - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool loopback = host == "localhost" || host == "::1";
  if (!loopback && host.starts_with("127.")) {
    // 127.0.0.0/8 in dotted-quad form only: "127.evil.example" is a name, not loopback.
    in_addr addr{};
    loopback = ::inet_pton(AF_INET, host.c_str(), &addr) == 1;
  }
  if (loopback) return Status::Ok();
  return Status::InvalidArgument("azure endpoint host \"" + host +
                                 "\" is reached over http://, which would send the storage credentials in clear; "
                                 "hint: use https://, or set AZURE_STORAGE_ALLOW_HTTP=1 to accept it on a trusted "
                                 "network");
}

namespace {

Result<std::unique_ptr<Storage>> OpenDriver(const std::string& url, const StorageUrl& parsed) {
  switch (parsed.scheme) {
    case StorageUrl::Scheme::kFile: {
      auto local = LocalStorage::Open(parsed.path);
      if (!local.ok()) return local.status().WithContext("cannot open storage \"" + url + "\"");
      return std::unique_ptr<Storage>(std::move(local).value());
    }
    case StorageUrl::Scheme::kAzure: {
      // The Azure driver retries transient failures itself: no RetryStorage.
      ASSIGN_OR_RETURN(AzureStorageOptions options, AzureOptionsFromEnvironment(parsed.container, parsed.prefix));
      const char* allow = std::getenv("AZURE_STORAGE_ALLOW_HTTP");
      RETURN_IF_ERROR(CheckAzureEndpointTransport(options.endpoint, allow != nullptr && std::string_view(allow) == "1"));
      return OpenAzureStorage(options);
    }
    case StorageUrl::Scheme::kMemory:
      return std::unique_ptr<Storage>(std::make_unique<SharedStorage>(MemoryStorage::Named(parsed.path)));
  }
  return Unsupported(url);
}

}  // namespace

Result<std::unique_ptr<Storage>> OpenStorage(const std::string& url) {
  ASSIGN_OR_RETURN(StorageUrl parsed, ParseStorageUrl(url));
  auto driver = OpenDriver(url, parsed);
  if (!driver.ok()) {
    // A storage that cannot be reached or opened is a storage failure; a bad setting is not.
    const bool config = driver.status().code() == StatusCode::kInvalidArgument;
    return config ? driver.status() : driver.status().WithSource(ErrorSource::kStorage);
  }
  return std::unique_ptr<Storage>(std::make_unique<TaggedStorage>(std::move(driver).value()));
}

}  // namespace sb
