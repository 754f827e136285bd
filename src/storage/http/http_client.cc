#include "storage/http/http_client.h"

#include <curl/curl.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "common/logging.h"
#include "common/text.h"
#include "storage/instrumented/storage_stats.h"

namespace sb::http {
namespace {

struct UploadState {
  std::string_view body;
  size_t offset = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* state = static_cast<UploadState*>(userdata);
  size_t n = std::min(size * nitems, state->body.size() - state->offset);
  std::copy_n(state->body.data() + state->offset, n, buffer);
  state->offset += n;
  return n;
}

// libcurl rewinds the body to send it again when a pooled connection turns
// out to be dead after the request went out (the server restarted, a proxy
// dropped it): without a seek callback that retry fails with "Send failed
// since rewinding of the data stream failed" and the upload is lost.
int SeekBody(void* userdata, curl_off_t offset, int origin) {
  auto* state = static_cast<UploadState*>(userdata);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > state->body.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  state->offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t WriteBody(char* ptr, size_t size, size_t nmemb, void* userdata) {
  static_cast<Response*>(userdata)->body.append(ptr, size * nmemb);
  return size * nmemb;
}

size_t WriteHeader(char* ptr, size_t size, size_t nitems, void* userdata) {
  auto* resp = static_cast<Response*>(userdata);
  std::string_view line(ptr, size * nitems);
  if (line.substr(0, 5) == "HTTP/") {
    resp->headers.clear();  // a new response (after 100 Continue or a redirect)
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    resp->headers[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  }
  return size * nitems;
}

// The one place curl's failures become Status codes.
Status TransportError(CURLcode rc, std::string_view what, const Endpoint& ep, const ClientOptions& o) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      return Status::Unavailable(fmt::format(
          "{}: {} endpoint {} is unreachable (connection refused); hint: check the endpoint and that the service is "
          "running",
          what, o.service, ep.host_port));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Status::Unavailable(fmt::format("{}: cannot resolve the host of {} endpoint {}", what, o.service,
                                             ep.host_port));
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Unavailable(fmt::format(
          "{}: timed out talking to {} (no connection within {} s or no data for {} s); hint: check that the "
          "service is running and answering",
          what, ep.host_port, o.connect_timeout.count(), o.stall_timeout.count()));
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_FAIL_REWIND:
      return Status::Unavailable(
          fmt::format("{}: connection to {} was reset ({})", what, ep.host_port, curl_easy_strerror(rc)));
    case CURLE_PEER_FAILED_VERIFICATION:
      return Status::PermissionDenied(
          fmt::format("{}: tls certificate of {} was not trusted ({})", what, ep.host_port, curl_easy_strerror(rc)));
    default:
      return Status::IoError(fmt::format("{}: {} ({})", what, curl_easy_strerror(rc), ep.host_port));
  }
}

}  // namespace

std::string Response::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

StatusClass ClassifyHttpStatus(long status) {
  if (status == 401 || status == 403) return StatusClass::kCredentials;
  if (status == 408 || status == 429 || status >= 500) return StatusClass::kRetryable;
  if (status >= 400) return StatusClass::kClientError;
  return StatusClass::kSuccess;
}

std::chrono::seconds OutageBound(const ClientOptions& o) {
  return o.retry_window + std::max(o.connect_timeout, o.stall_timeout);
}

class HttpClient::Pool {
 public:
  explicit Pool(size_t max_idle) : max_idle_(max_idle) {}
  ~Pool() {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }
  CURL* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void Give(CURL* h) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(h);
    } else {
      curl_easy_cleanup(h);
    }
  }

 private:
  std::mutex mu_;
  std::vector<CURL*> idle_;
  size_t max_idle_;
};

HttpClient::HttpClient(Endpoint endpoint, ClientOptions options)
    : endpoint_(std::move(endpoint)), options_(std::move(options)), backoff_(options_.backoff) {
  static std::once_flag curl_once;
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (options_.clock == nullptr) options_.clock = Clock::Real();
  options_.max_retries = std::max(options_.max_retries, 0);
  pool_ = std::make_unique<Pool>(std::max<size_t>(options_.max_idle_connections, 1));
}

HttpClient::~HttpClient() = default;

Result<Response> HttpClient::Execute(const std::function<Request()>& make, std::string_view what) {
  Clock& clock = *options_.clock;
  const SteadyTime start = clock.SteadyNow();
  for (int attempt = 1;; ++attempt) {
    Result<Response> r = PerformOnce(make(), what);
    const bool retryable =
        r.ok() ? ClassifyHttpStatus(r->status) == StatusClass::kRetryable : r.status().IsRetryable();
    if (!retryable || attempt > options_.max_retries) return r;
    const std::chrono::milliseconds delay = backoff_.Delay(attempt);
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(clock.SteadyNow() - start);
    if (spent + delay >= options_.retry_window) {
      // Past the window a frozen endpoint would hold the caller beyond the
      // stated bound: report the outage now.
      if (r.ok()) return r;
      return r.status().WithContext(
          fmt::format("gave up after {} attempts in {} s", attempt, std::max<int64_t>(1, spent.count() / 1000)));
    }
    log::Debug("{}: {}; retry {} of {} in {} ms", what,
               r.ok() ? fmt::format("HTTP {}", r->status) : r.status().message(), attempt, options_.max_retries,
               delay.count());
    NoteCurrentRetry();  // counted under the instrumented storage operation, for /metrics
    clock.SleepFor(delay);
  }
}

Result<Response> HttpClient::PerformOnce(const Request& req, std::string_view what) {
  curl_slist* list = nullptr;
  for (const auto& [name, value] : req.headers) list = curl_slist_append(list, (name + ": " + value).c_str());
  list = curl_slist_append(list, "Expect:");
  list = curl_slist_append(list, "Content-Type:");  // never let curl add one the driver did not sign

  CURL* h = pool_->Take();
  if (h == nullptr) {
    curl_slist_free_all(list);
    return Status::Internal("curl_easy_init failed");
  }
  curl_easy_reset(h);
  Response resp;
  UploadState upload{req.body, 0};
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout.count()));
  // Low-speed limit rather than a total timeout: a large block on a slow
  // link may take minutes, but a stalled one moves nothing.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_timeout.count()));
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, &upload);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, SeekBody);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &upload);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  pool_->Give(h);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) return TransportError(rc, what, endpoint_, options_);
  return resp;
}

}  // namespace sb::http
