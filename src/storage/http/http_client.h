// HttpClient: the one HTTP transport of the object-store drivers (Azure
// today, S3 next). It owns a pool of keep-alive curl handles, sends requests
// with rewindable bodies, classifies every transport outcome in one place and
// retries the retryable ones with the project's backoff policy
// (common/backoff.h) on the injected Clock. Drivers keep only what is theirs:
// signing, REST operations, parsing of their responses.
//
// Which layer retries what: this client retries each HTTP request (a failed
// block of a 1000-block upload is re-sent alone; lease calls are retried
// too), so OpenStorage does not wrap HTTP drivers in RetryStorage — that
// would multiply the attempts and the outage bound below.
//
// Outage bound (issue 11): with the default ClientOptions a request to an
// endpoint that is down or frozen (SIGSTOPped, a black-holed network) fails
// with kUnavailable within 25 s of its start:
//   - connecting gives up after connect_timeout (5 s);
//   - an attempt on which no byte moves for stall_timeout (10 s) is aborted
//     (curl's low-speed limit of 1 byte/s, so a slow but live transfer of a
//     large block is never cut);
//   - no new attempt starts once retry_window (15 s) has passed since the
//     first one began, so the last attempt ends by 15 s + 10 s = 25 s.
// A refused connection fails within milliseconds (plus the backoff sleeps).
//
// Thread-safety: Execute may be called from many threads at once; each call
// takes its own handle from the pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/status.h"
#include "storage/http/endpoint.h"

namespace sb::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "HEAD", "PUT", "DELETE"
  std::string url;     // complete and already encoded
  HeaderList headers;
  std::string_view body;  // sent with PUT; must outlive Execute
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  // "" when absent; `lower_name` must be lower case.
  std::string Header(const std::string& lower_name) const;
};

// How a finished exchange is to be treated; the one classification of HTTP
// statuses every driver shares (the driver maps the rest to its own codes).
enum class StatusClass {
  kSuccess,      // 1xx-3xx, handed to the driver
  kRetryable,    // 408, 429, 5xx: kUnavailable, retried
  kCredentials,  // 401, 403: kPermissionDenied, never retried
  kClientError,  // other 4xx: the driver decides (not found, conflict, …)
};
StatusClass ClassifyHttpStatus(long status);

struct ClientOptions {
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds stall_timeout{10};  // no byte moved for this long: the attempt fails
  std::chrono::seconds retry_window{15};   // no new attempt starts after this
  int max_retries = 5;                     // retries after the first attempt
  BackoffPolicy backoff{};
  size_t max_idle_connections = 8;
  Clock* clock = Clock::Real();  // not owned; sleeps and the retry window
  std::string service = "http";  // names the store in messages ("azure")
};

// The bound stated above, from the options: how long a request to a frozen
// endpoint can take before it fails.
std::chrono::seconds OutageBound(const ClientOptions& options);

class HttpClient {
 public:
  HttpClient(Endpoint endpoint, ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const Endpoint& endpoint() const { return endpoint_; }
  const ClientOptions& options() const { return options_; }

  // Builds the request afresh for each attempt (a signature may cover the
  // date) and sends it, retrying transport failures and retryable statuses.
  // Returns the last response (any status; the driver translates it) or a
  // transport error: kUnavailable when retrying may help, kPermissionDenied
  // for an untrusted TLS certificate, kIoError otherwise. `what` ("azure get
  // \"k\" in azure://c") starts every message and log line.
  Result<Response> Execute(const std::function<Request()>& make, std::string_view what);

 private:
  class Pool;
  Result<Response> PerformOnce(const Request& request, std::string_view what);

  Endpoint endpoint_;
  ClientOptions options_;
  Backoff backoff_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace sb::http
