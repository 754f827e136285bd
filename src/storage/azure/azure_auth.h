// Azure Storage request signing: HMAC-SHA256, URL encoding, the
// SharedKey string-to-sign (Blob service, version 2015-02-21 and later) and
// account SAS generation. Pure functions over values, thread-safe. Used by the
// Azure driver and by tests that need a SAS token; nothing here does I/O.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace sb::azure {

// The REST API version sent as x-ms-version and signed into SAS tokens.
inline constexpr const char* kApiVersion = "2021-08-06";

// Raw 32-byte HMAC-SHA256 of message under key.
std::string HmacSha256(std::string_view key, std::string_view message);

// Percent-encodes everything but RFC 3986 unreserved characters (and '/'
// when keep_slash), so an encoded blob path is also its canonical form.
std::string UrlEncode(std::string_view text, bool keep_slash);
std::string UrlDecode(std::string_view text);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// What SharedKey signs. Header names may be any case; query names and
// values are given decoded. path is the encoded URL path ("/acct/c/b" on
// Azurite, "/c/b" on Azure), content_length the body size (0 → signed empty).
struct SignableRequest {
  std::string method;
  std::string path;
  HeaderList query;
  HeaderList headers;
  uint64_t content_length = 0;
};

std::string SharedKeyStringToSign(std::string_view account, const SignableRequest& request);
// "SharedKey account:signature"; key is the decoded account key.
std::string SharedKeyAuthorization(std::string_view account, std::string_view key, const SignableRequest& request);

// RFC 1123 date for x-ms-date: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string FormatHttpDate(SystemTime t);
// Parses the same form; fails with kInvalidArgument.
Result<SystemTime> ParseHttpDate(std::string_view text);

struct AccountSasOptions {
  std::string permissions = "rwdlac";  // in Azure's canonical order
  std::string services = "b";
  std::string resource_types = "sco";
  SystemTime start{};  // epoch = omitted
  SystemTime expiry;
  std::string protocol = "https,http";
  std::string version = kApiVersion;
};

// An account SAS query string without the leading '?'; key is decoded.
std::string MakeAccountSas(std::string_view account, std::string_view key, const AccountSasOptions& options);

}  // namespace sb::azure
