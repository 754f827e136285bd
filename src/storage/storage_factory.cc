// URL parsing and driver selection. Which layer retries what:
// - azure:// (and any HTTP driver): the HTTP client retries each request
//   (storage/http/http_client.h), within its outage bound; wrapping it in
//   RetryStorage too would multiply the attempts and stretch that bound, so
//   it is not wrapped.
// - file://: the driver does not retry; its kUnavailable errors (EINTR,
//   EAGAIN, ETIMEDOUT on network file systems, EMFILE/ENFILE/ENOMEM) may
//   pass, so it is wrapped in RetryStorage with a short budget (kLocalRetry).
//   Disk full, permissions and I/O errors are not retryable and return at once.
// - memory:// cannot fail transiently: not wrapped.
//
// For kMemory, StorageUrl::path holds the instance name ("memory://name").
#include "storage/storage_factory.h"

#include <cstdlib>
#include <memory>
#include <string_view>
#include <utility>

#include "storage/azure/azure_storage.h"
#include "storage/http/endpoint.h"
#include "storage/instrumented/instrumented_storage.h"
#include "storage/local/local_storage.h"
#include "storage/memory/memory_storage.h"
#include "storage/retry/retry_storage.h"
#include "storage/tagged/tagged_storage.h"

namespace sb {

namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::string_view kAzureScheme = "azure://";
constexpr std::string_view kMemoryScheme = "memory://";

// Local transient errors clear within moments or not at all: 3 tries, at most
// about 0.3 s of waiting.
const RetryOptions kLocalRetry{.max_attempts = 3, .backoff = {.initial = std::chrono::milliseconds(100),
                                                              .max = std::chrono::milliseconds(1000)}};

Status Unsupported(const std::string& url) {
  return Status::InvalidArgument("unsupported storage URL \"" + url +
                                 "\"; hint: use file:///path or azure://container[/prefix]");
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
    RETURN_IF_ERROR(CheckAzureContainerName(container).WithContext("storage URL \"" + url + "\""));
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
  auto ep = http::ParseEndpoint(endpoint, "azure", "https://ACCOUNT.blob.core.windows.net");
  if (!ep.ok()) return Status::Ok();  // the driver refuses it with its own message
  if (ep->scheme != "http" || allow_http || http::IsLoopbackHost(ep->host)) return Status::Ok();
  return Status::InvalidArgument("azure endpoint host \"" + ep->host +
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
      return std::unique_ptr<Storage>(std::make_unique<RetryStorage>(std::unique_ptr<Storage>(std::move(local).value()),
                                                                     kLocalRetry));
    }
    case StorageUrl::Scheme::kAzure: {
      // The HTTP client retries transient failures itself: no RetryStorage.
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
  // Counted per operation for the agent's /metrics (storage/instrumented/storage_stats.h).
  auto counted = std::make_unique<InstrumentedStorage>(std::move(driver).value());
  return std::unique_ptr<Storage>(std::make_unique<TaggedStorage>(std::move(counted)));
}

}  // namespace sb
