// AzureStorage: the Storage driver for Azure Blob Storage (and Azurite),
// speaking the Blob REST API over libcurl with SharedKey or SAS auth.
//
// Mapping: key "k" is the block blob "<prefix>/k" (just "k" with no prefix)
// in one container, created on first write if missing. Small objects are one
// Put Blob; larger ones are staged blocks committed by Put Block List, so a
// reader never sees a torn object. Leases are Azure blob leases on the key's
// blob (an empty blob is created if the key does not exist); while a lease is
// held, Put/Delete of that key by anyone fail with kFailedPrecondition.
// Azure leases last 15..60 s, so LeaseOptions::ttl is clamped to that range:
// holders asking for more than 60 s must still renew within 60 s.
//
// Transport: storage/http/HttpClient (pooled keep-alive connections, the
// classification of failures, retries with the common backoff on
// options.clock up to max_retries times, and the outage bound stated there:
// a frozen endpoint fails a call with kUnavailable within 25 s). This file
// keeps what is Azure's: signing, the REST operations, Azure error codes and
// the XML of listings. Messages and Describe() never contain the key or SAS.
//
// Leases: with LeaseOptions::holder_id set, the proposed lease id is derived
// from (holder_id, key), so a holder that crashed without releasing takes its
// own lease back at once (Azure accepts Acquire with the active lease's id),
// while another holder still gets kAlreadyExists naming the owner.
// Thread-safety: all methods may be called concurrently. Leases stay valid
// after the Storage is destroyed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "storage/storage.h"

namespace sb {

struct AzureStorageOptions {
  // "http://127.0.0.1:10000/devstoreaccount1" or "https://ACCOUNT.blob.core.windows.net".
  std::string endpoint;
  std::string account;
  std::string shared_key_base64;  // secret; either this or sas_token
  std::string sas_token;          // secret; with or without the leading '?'
  std::string container;
  std::string prefix;  // no slashes at the ends
  uint64_t block_size = 8ull << 20;
  uint64_t single_put_max = 8ull << 20;  // larger objects are uploaded in blocks
  int parallelism = 4;                   // concurrent block uploads per Put
  int max_retries = 5;                   // retries after the first attempt, within the HTTP client's 15 s window
  Clock* clock = Clock::Real();          // not owned; must outlive the storage
};

// OK for a valid container name (3-63 lowercase letters, digits and single
// hyphens, starting and ending with a letter or digit); else kInvalidArgument
// naming it, why, and a hint. The one check used by URL parsing and Open.
Status CheckAzureContainerName(std::string_view name);

// Checks the options (endpoint scheme, container name, key encoding) without
// any network I/O; the container is created lazily.
Result<std::unique_ptr<Storage>> OpenAzureStorage(const AzureStorageOptions& options);

// Parses an Azure connection string ("AccountName=…;AccountKey=…;…", or
// "UseDevelopmentStorage=true"). Errors never quote secret values.
Result<AzureStorageOptions> AzureOptionsFromConnectionString(std::string_view connection_string,
                                                            const std::string& container, const std::string& prefix);

// From AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN; AZURE_STORAGE_BLOB_ENDPOINT
// overrides the endpoint. Missing credentials → kInvalidArgument naming the
// variables to set.
Result<AzureStorageOptions> AzureOptionsFromEnvironment(const std::string& container, const std::string& prefix);

}  // namespace sb
