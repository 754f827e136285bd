// Opens a Storage from a URL: "file:///abs/path" or "azure://container[/prefix]".
// Azure credentials come from the environment as Azure's own tools take them:
// AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (AZURE_STORAGE_BLOB_ENDPOINT
// optionally overrides the endpoint; an http:// endpoint off loopback also
// needs AZURE_STORAGE_ALLOW_HTTP=1). file:// is wrapped in the retry
// decorator; azure:// retries in its HTTP client (see storage_factory.cc).
#pragma once

#include <memory>
#include <string>

#include "storage/storage.h"

namespace sb {

struct StorageUrl {
  enum class Scheme { kFile, kAzure, kMemory } scheme;
  std::string path;       // file: absolute directory
  std::string container;  // azure
  std::string prefix;     // azure: key prefix inside the container, no slashes at the ends
};

Result<StorageUrl> ParseStorageUrl(const std::string& url);
Result<std::unique_ptr<Storage>> OpenStorage(const std::string& url);

// An Azure endpoint over plain http:// sends the account's signatures or SAS
// token in clear: refused (kInvalidArgument) unless its host is loopback
// (Azurite: 127.0.0.0/8, ::1, localhost) or allow_http is set, which
// OpenStorage takes from AZURE_STORAGE_ALLOW_HTTP=1. https:// always passes.
Status CheckAzureEndpointTransport(const std::string& endpoint, bool allow_http);

}  // namespace sb
