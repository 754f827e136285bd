// Endpoint: the parsed base URL of an HTTP object store ("https://host[:port]
// [/path]"), shared by the HTTP client (request URLs, messages naming the
// host) and the storage URL checks (is this host loopback?). Pure functions,
// thread-safe; no I/O, no name resolution.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace sb::http {

struct Endpoint {
  std::string scheme;     // "http" or "https", lower case
  std::string base;       // "http://127.0.0.1:10000" (scheme and authority)
  std::string path;       // "/devstoreaccount1", or "" (no trailing slash)
  std::string host;       // "127.0.0.1", "::1" (no brackets), lower case
  std::string host_port;  // "127.0.0.1:10000", with the scheme's default port filled in
};

// `service` names the store in messages ("azure endpoint …"), `example` is
// a URL to show in the hint. Refuses other schemes, a query string and an
// empty host with kInvalidArgument; messages never quote a query string.
Result<Endpoint> ParseEndpoint(std::string_view url, std::string_view service, std::string_view example);

// localhost, ::1 and 127.0.0.0/8 in dotted-quad form ("127.evil.example" is
// a name, not loopback).
bool IsLoopbackHost(std::string_view host);

}  // namespace sb::http
