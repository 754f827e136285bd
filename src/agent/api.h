// The agent's local HTTP API: JSON over a unix socket (mode 0600) with a
// bearer token on top (state_dir/api.token, mode 0600), so only the agent's
// own user — or root — can manage it. The server knows nothing of backups: it
// hands each request to a handler. Routes (all JSON bodies):
//   GET  /v1/status                      per-cluster state
//   GET  /v1/health[?since=RFC3339]      counters like fn_get_health_status
//   GET  /v1/instance-config             instance defaults
//   POST /v1/instance-config             {"enable":bool|null,"settings":{option:text}}
//   GET  /v1/db/NAME/config
//   POST /v1/db/NAME/config              {"enable":bool|null,"settings":{option:text}}
//   POST /v1/master-switch               {"on":bool}
//   POST /v1/db/NAME/backup              {"type":"full"|"log"} → 202 and a job (job_routes.h)
//   GET  /v1/jobs/ID, GET /v1/jobs?database=NAME, POST /v1/jobs/ID/cancel
// Errors: a JSON body {"error":"one line"} with 400 (bad input), 404 (unknown
// database), 409 (a backup of that type is running), 401 (token), 500.
// Thread-safety: the handler is called from server threads concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace sb {

struct ApiRequest {
  std::string method;  // "GET" | "POST"
  std::string path;    // "/v1/db/main/config"
  std::string query;   // raw query string without '?'
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string body = "{}";
};

using ApiHandler = std::function<ApiResponse(const ApiRequest&)>;

class ApiServer {
 public:
  // Listens on the unix socket (replacing a stale socket file, refusing when
  // another agent answers on it) and serves on a background thread.
  static Result<std::unique_ptr<ApiServer>> Start(const std::string& socket_path, const std::string& token,
                                                  ApiHandler handler);
  ~ApiServer();  // stops and removes the socket file
  void Stop();

  struct Impl;  // opaque: the server, its thread and the socket's identity

 private:
  ApiServer() = default;
  std::unique_ptr<Impl> impl_;
};

// One request to the agent. Connection failures → kUnavailable "no agent is
// running on SOCKET; hint: start it with smartbackup agent --config FILE";
// a request sent but not answered within read_timeout (or the connection
// closed) → kUnavailable with StatusDetail::kNoAnswer; non-2xx → the error line
// from the body with a matching code (StatusFromResponse).
inline constexpr std::chrono::seconds kDefaultAgentReadTimeout{600};
Result<ApiResponse> CallAgent(const std::string& socket_path, const std::string& token, const std::string& method,
                              const std::string& path, const std::string& body = "",
                              std::chrono::seconds read_timeout = kDefaultAgentReadTimeout);

// A response as a Status: ok for 2xx, else the body's {"error"} line with the
// code matching the HTTP status (400 → kInvalidArgument, 401/403 →
// kPermissionDenied, 404 → kNotFound, 409 → kAlreadyExists, others
// kInternal: kUnavailable stays the transport's, "the agent did not answer").
Status StatusFromResponse(const ApiResponse& response);

// Reads or creates (0600, random) the token file.
Result<std::string> LoadOrCreateToken(const std::string& path);
Result<std::string> ReadToken(const std::string& path);

}  // namespace sb
