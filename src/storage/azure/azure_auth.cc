#include "storage/azure/azure_auth.h"

#include <fmt/core.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>

#include "common/encoding.h"
#include "common/text.h"

namespace sb::azure {
namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Trims and collapses runs of linear whitespace to one space, as the
// SharedKey canonicalization asks for header values.
std::string CanonicalHeaderValue(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string FindHeader(const HeaderList& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers) {
    if (Lower(name) == lower_name) return value;
  }
  return "";
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string FormatSasTime(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace

std::string HmacSha256(std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest, &len);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string UrlEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UrlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::string SharedKeyStringToSign(std::string_view account, const SignableRequest& request) {
  std::string s = request.method + "\n";
  for (const char* name : {"content-encoding", "content-language"}) s += FindHeader(request.headers, name) + "\n";
  // Since version 2015-02-21 a zero Content-Length is signed as empty.
  s += (request.content_length == 0 ? std::string() : std::to_string(request.content_length)) + "\n";
  for (const char* name : {"content-md5", "content-type", "date", "if-modified-since", "if-match", "if-none-match",
                           "if-unmodified-since", "range"}) {
    s += FindHeader(request.headers, name) + "\n";
  }

  std::map<std::string, std::string> ms_headers;
  for (const auto& [name, value] : request.headers) {
    std::string lower = Lower(CanonicalHeaderValue(name));  // names are trimmed too
    if (lower.rfind("x-ms-", 0) == 0) ms_headers[lower] = CanonicalHeaderValue(value);
  }
  for (const auto& [name, value] : ms_headers) s += name + ":" + value + "\n";

  s += "/";
  s += account;
  s += request.path.empty() ? "/" : request.path;
  std::map<std::string, std::vector<std::string>> query;
  for (const auto& [name, value] : request.query) query[Lower(name)].push_back(value);
  for (auto& [name, values] : query) {
    std::sort(values.begin(), values.end());
    s += "\n" + name + ":";
    for (size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + values[i];
  }
  return s;
}

std::string SharedKeyAuthorization(std::string_view account, std::string_view key, const SignableRequest& request) {
  std::string signature = Base64Encode(HmacSha256(key, SharedKeyStringToSign(account, request)));
  return fmt::format("SharedKey {}:{}", account, signature);
}

std::string FormatHttpDate(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

Result<SystemTime> ParseHttpDate(std::string_view text) {
  // "Wed, 09 Sep 2009 09:20:02 GMT"
  auto bad = [&] { return Status::InvalidArgument(fmt::format("invalid http date \"{}\"", text)); };
  size_t comma = text.find(", ");
  if (comma == std::string_view::npos) return bad();
  std::string rest(text.substr(comma + 2));
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  char month[4] = {};
  char zone[4] = {};
  if (std::sscanf(rest.c_str(), "%d %3s %d %d:%d:%d %3s", &day, month, &year, &hour, &minute, &second, zone) != 7) {
    return bad();
  }
  int mon = -1;
  for (int i = 0; i < 12; ++i) {
    if (std::strcmp(month, kMonths[i]) == 0) mon = i;
  }
  if (mon < 0 || std::strcmp(zone, "GMT") != 0) return bad();
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string MakeAccountSas(std::string_view account, std::string_view key, const AccountSasOptions& options) {
  std::string start = options.start == SystemTime{} ? "" : FormatSasTime(options.start);
  std::string expiry = FormatSasTime(options.expiry);
  // Version 2020-12-06 and later also sign the encryption scope (empty here).
  std::string to_sign = fmt::format("{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n\n", account, options.permissions,
                                    options.services, options.resource_types, start, expiry, options.protocol,
                                    options.version);
  std::string sig = Base64Encode(HmacSha256(key, to_sign));
  std::string out = fmt::format("sv={}&ss={}&srt={}&sp={}", UrlEncode(options.version, false),
                                UrlEncode(options.services, false), UrlEncode(options.resource_types, false),
                                UrlEncode(options.permissions, false));
  if (!start.empty()) out += "&st=" + UrlEncode(start, false);
  out += "&se=" + UrlEncode(expiry, false);
  out += "&spr=" + UrlEncode(options.protocol, false);
  out += "&sig=" + UrlEncode(sig, false);
  return out;
}

}  // namespace sb::azure
