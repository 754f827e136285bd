#include "storage/http/endpoint.h"

#include <arpa/inet.h>
#include <fmt/core.h>

#include "common/text.h"

namespace sb::http {

Result<Endpoint> ParseEndpoint(std::string_view url, std::string_view service, std::string_view example) {
  std::string endpoint(url);
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  size_t scheme_end = endpoint.find("://");
  std::string scheme = scheme_end == std::string::npos ? "" : Lower(endpoint.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    return Status::InvalidArgument(fmt::format("{} endpoint \"{}\" must start with http:// or https://; hint: e.g. {}",
                                               service, endpoint.substr(0, endpoint.find('?')), example));
  }
  if (endpoint.find_first_of("?#") != std::string::npos) {
    return Status::InvalidArgument(fmt::format(
        "{} endpoint must not contain a query string; hint: pass a SAS token separately", service));
  }
  Endpoint ep;
  ep.scheme = scheme;
  const size_t host_begin = scheme_end + 3;
  const size_t slash = endpoint.find('/', host_begin);
  ep.base = endpoint.substr(0, slash);
  ep.path = slash == std::string::npos ? "" : endpoint.substr(slash);
  std::string authority = endpoint.substr(host_begin, slash == std::string::npos ? std::string::npos : slash - host_begin);
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  if (authority.empty()) return Status::InvalidArgument(fmt::format("{} endpoint has no host", service));
  bool has_port;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    ep.host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    has_port = close != std::string::npos && authority.find(':', close) != std::string::npos;
  } else {
    ep.host = authority.substr(0, authority.find(':'));
    has_port = authority.find(':') != std::string::npos;
  }
  ep.host = Lower(ep.host);
  if (ep.host.empty()) return Status::InvalidArgument(fmt::format("{} endpoint has no host", service));
  ep.host_port = has_port ? authority : authority + (scheme == "https" ? ":443" : ":80");
  return ep;
}

bool IsLoopbackHost(std::string_view host) {
  std::string h = Lower(host);
  if (h == "localhost" || h == "::1") return true;
  if (!h.starts_with("127.")) return false;
  in_addr addr{};
  return ::inet_pton(AF_INET, h.c_str(), &addr) == 1;
}

}  // namespace sb::http
