#include "common/text.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <span>

namespace sb {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

namespace {

// Splits "12.5MiB" into 12.5 and "mib".
bool SplitNumberUnit(std::string_view text, double* number, std::string* unit) {
  std::string t = Trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    size_t used = 0;
    *number = std::stod(t.substr(0, i), &used);
    if (used != i) return false;
  } catch (...) {
    return false;
  }
  *unit = Lower(Trim(std::string_view(t).substr(i)));
  return *number >= 0 && std::isfinite(*number);
}

int DaysInMonth(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

struct Unit {
  const char* name;  // lower case; "" for a bare number
  double factor;     // to the base unit
};

struct Quantity {
  const char* kind;      // "byte size"
  const char* examples;  // for the hint
  const char* too_much;  // "too large"
  std::span<const Unit> units;
  double max;  // in the base unit
};

// "<number><unit>" in the quantity's base unit, refusing unknown units and
// values above q.max; max_text formats q.max for the hint.
template <typename MaxText>
Result<int64_t> ParseQuantity(std::string_view text, const Quantity& q, MaxText max_text) {
  double n = 0;
  std::string unit;
  if (!SplitNumberUnit(text, &n, &unit)) {
    return Status::InvalidArgument(fmt::format("invalid {} \"{}\"; hint: use e.g. {}", q.kind, text, q.examples));
  }
  for (const Unit& u : q.units) {
    if (unit != u.name) continue;
    // Compared as doubles before any conversion: llround of a value beyond
    // int64 is undefined.
    const double v = n * u.factor;
    if (!(v <= q.max)) {
      return Status::InvalidArgument(
          fmt::format("{} \"{}\" is {}; hint: at most {}", q.kind, text, q.too_much, max_text()));
    }
    return static_cast<int64_t>(std::llround(v));
  }
  return Status::InvalidArgument(fmt::format("invalid {} \"{}\": unknown unit \"{}\"", q.kind, text, unit));
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  static const Unit kUnits[] = {{"", 1},           {"b", 1},          {"k", 1024.0},         {"kib", 1024.0},
                                {"kb", 1000.0},    {"m", 1048576.0},  {"mib", 1048576.0},    {"mb", 1e6},
                                {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},     {"t", 1099511627776.0},
                                {"tib", 1099511627776.0}, {"tb", 1e12}};
  static const Quantity kByteSize{"byte size", "5MiB or 1GiB", "too large", kUnits,
                                  static_cast<double>(kMaxByteSize)};
  ASSIGN_OR_RETURN(int64_t bytes, ParseQuantity(text, kByteSize, [] { return FormatByteSize(kMaxByteSize); }));
  return static_cast<uint64_t>(bytes);
}

std::string FormatByteSize(uint64_t bytes) {
  static const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 4) {
    v /= 1024.0;
    ++i;
  }
  if (i == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, kNames[i]);
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  static const Unit kUnits[] = {{"ms", 1},          {"", 1000},          {"s", 1000},       {"sec", 1000},
                                {"m", 60000},       {"min", 60000},      {"h", 3600000},    {"hour", 3600000},
                                {"d", 86400000},    {"day", 86400000},   {"days", 86400000}, {"w", 604800000}};
  static const Quantity kDuration{"duration", "10s, 5m, 2h or 7d", "too long", kUnits,
                                  static_cast<double>(kMaxDuration.count())};
  ASSIGN_OR_RETURN(int64_t ms, ParseQuantity(text, kDuration, [] { return FormatDuration(kMaxDuration); }));
  return std::chrono::milliseconds(ms);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms % 86400000 == 0 && ms != 0) return fmt::format("{}d", ms / 86400000);
  if (ms % 3600000 == 0 && ms != 0) return fmt::format("{}h", ms / 3600000);
  if (ms % 60000 == 0 && ms != 0) return fmt::format("{}m", ms / 60000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string FormatRfc3339(SystemTime t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  if (secs > t) secs -= std::chrono::seconds(1);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  if (ms == 0) {
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string FormatCompactTime(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

Result<SystemTime> ParseRfc3339(std::string_view text) {
  std::string s = Trim(text);
  auto bad = [&] {
    return Status::InvalidArgument(
        fmt::format("invalid time \"{}\"; hint: use RFC 3339, e.g. 2026-11-25T02:33:28Z", text));
  };
  int y, mo, d, h = 0, mi = 0;
  double sec = 0;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10) return bad();
  size_t pos = 10;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    int c2 = 0;
    if (std::sscanf(s.c_str() + pos + 1, "%2d:%2d:%lf%n", &h, &mi, &sec, &c2) != 3) return bad();
    pos += 1 + c2;
  }
  int offset_min = 0;
  if (pos < s.size()) {
    std::string zone = s.substr(pos);
    if (zone == "Z" || zone == "z") {
    } else if ((zone[0] == '+' || zone[0] == '-') && zone.size() >= 3) {
      int oh = 0, om = 0;
      if (std::sscanf(zone.c_str() + 1, "%2d:%2d", &oh, &om) < 1) return bad();
      if (oh < 0 || oh > 23 || om < 0 || om > 59) return bad();
      offset_min = (oh * 60 + om) * (zone[0] == '-' ? -1 : 1);
    } else {
      return bad();
    }
  }
  // SystemTime counts int64 nanoseconds from 1970: years outside about
  // 1678-2262 would overflow in the conversion below (found by fuzz_manifest:
  // a manifest or container descriptor is storage-controlled text). "%2d"
  // also takes "-1", and "%lf" takes "nan": refuse both.
  if (y < 1678 || y > 2261) return bad();
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      !(sec >= 0 && sec < 61)) {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
  std::time_t tt = timegm(&tm);
  auto tp = std::chrono::system_clock::from_time_t(tt) +
            std::chrono::microseconds(std::llround(sec * 1e6)) - std::chrono::minutes(offset_min);
  return std::chrono::time_point_cast<SystemTime::duration>(tp);
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view x) {
  return s.size() >= x.size() && s.substr(s.size() - x.size()) == x;
}

std::string Printable(std::string_view text) {
  std::string out;
  for (char ch : text.substr(0, 200)) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  if (text.size() > 200) out += "…";
  return out;
}

bool HasControlCharacter(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace sb
