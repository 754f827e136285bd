#include "agent/settings.h"

#include <cstdlib>

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/text.h"

namespace sb {
namespace {

using Type = OptionDef::Type;

// Exact, re-parseable byte size: "1GiB", "5MiB", "1536KiB", "1000".
std::string FormatByteSizeExact(uint64_t bytes) {
  static const struct {
    const char* name;
    uint64_t factor;
  } kUnits[] = {{"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
  if (bytes != 0) {
    for (const auto& u : kUnits) {
      if (bytes % u.factor == 0) return fmt::format("{}{}", bytes / u.factor, u.name);
    }
  }
  return std::to_string(bytes);
}

const char* const kWeekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
const char* const kWeekdayNames[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string OptionNames() {
  std::string out;
  for (const auto& o : ManagedOptions()) {
    if (!out.empty()) out += ", ";
    out += o.name;
  }
  return out;
}

Result<bool> ParseBool(const std::string& name, const std::string& value) {
  const std::string v = Lower(Trim(value));
  if (v == "true" || v == "on" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "off" || v == "no" || v == "0") return false;
  return Status::InvalidArgument(fmt::format("{} must be true or false, got \"{}\"", name, value));
}

Result<int64_t> ParseInt(const OptionDef& def, const std::string& value) {
  const std::string v = Trim(value);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
    return Status::InvalidArgument(fmt::format("{} must be an integer, got \"{}\"", def.name, value));
  }
  if (n < def.min_value || n > def.max_value) {
    return Status::InvalidArgument(
        fmt::format("{} must be between {} and {}, got {}", def.name, def.min_value, def.max_value, n));
  }
  return n;
}

Result<std::chrono::milliseconds> ParsePositiveDuration(const std::string& name, const std::string& value) {
  auto d = ParseDuration(Trim(value));
  if (!d.ok()) return Status::InvalidArgument(fmt::format("{}: {}", name, d.status().message()));
  if (d->count() <= 0) {
    return Status::InvalidArgument(fmt::format("{} must be greater than zero, got \"{}\"", name, value));
  }
  return *d;
}

Result<uint64_t> ParsePositiveSize(const std::string& name, const std::string& value) {
  auto n = ParseByteSize(Trim(value));
  if (!n.ok()) return Status::InvalidArgument(fmt::format("{}: {}", name, n.status().message()));
  if (*n == 0) return Status::InvalidArgument(fmt::format("{} must be greater than zero, got \"{}\"", name, value));
  return *n;
}

Status CheckStorageUrl(const std::string& url) {
  const std::string hint = "hint: use file:///absolute/path or azure://container[/prefix]";
  if (StartsWith(url, "file:///")) return Status::Ok();
  if (StartsWith(url, "azure://")) {
    if (url.size() > 8 && url[8] != '/') return Status::Ok();
    return Status::InvalidArgument(fmt::format("storage_url \"{}\" names no container; {}", url, hint));
  }
  return Status::InvalidArgument(fmt::format("storage_url \"{}\" is not supported; {}", url, hint));
}

// Applies one canonical value to `s`. Values that fail to parse are ignored.
void Apply(ClusterSettings* s, const OptionDef& def, const std::string& value) {
  const std::string& n = def.name;
  if (n == "enabled") {
    if (auto b = ParseBool(n, value); b.ok()) s->enabled = *b;
  } else if (n == "storage_url") {
    if (CheckStorageUrl(Trim(value)).ok()) s->storage_url = Trim(value);
  } else if (n == "retention_days") {
    if (auto i = ParseInt(def, value); i.ok()) s->retention_days = static_cast<int>(*i);
  } else if (n == "mode") {
    const std::string m = Lower(Trim(value));
    if (m == "stream" || m == "archive") s->mode = m;
  } else if (n == "key_file") {
    const std::string k = Trim(value);
    if (k.empty() || k[0] == '/') s->key_file = k;
  } else if (n == "public_key") {
    const std::string k = Trim(value);
    if (k.empty() || k[0] == '/') s->public_key = k;
  } else if (n == "full_max_age") {
    if (auto d = ParsePositiveDuration(n, value); d.ok()) s->full_max_age = *d;
  } else if (n == "full_max_wal") {
    if (auto b = ParsePositiveSize(n, value); b.ok()) s->full_max_wal = *b;
  } else if (n == "log_max_age") {
    if (auto d = ParsePositiveDuration(n, value); d.ok()) s->log_max_age = *d;
  } else if (n == "log_max_wal") {
    if (auto b = ParsePositiveSize(n, value); b.ok()) s->log_max_wal = *b;
  } else if (n == "full_schedule") {
    const std::string t = Trim(value);
    if (t.empty() || Lower(t) == "none") {
      s->full_schedule.reset();
    } else if (auto fs = ParseFullSchedule(t); fs.ok()) {
      s->full_schedule = *fs;
    }
  } else if (n == "log_frequency") {
    const std::string t = Trim(value);
    if (t.empty() || Lower(t) == "none") {
      s->log_frequency.reset();
    } else if (auto d = ParsePositiveDuration(n, t); d.ok()) {
      s->log_frequency = *d;
    }
  } else if (n == "flush_interval") {
    if (auto d = ParsePositiveDuration(n, value); d.ok()) s->flush_interval = *d;
  } else if (n == "retention_unit") {
    // Also checked here: a value saved by an earlier (test) run must not apply in production.
    if (!TestOnlyOptionsAllowed()) return;
    if (auto d = ParsePositiveDuration(n, value); d.ok()) s->retention_unit = *d;
  }
}

}  // namespace

const std::vector<OptionDef>& ManagedOptions() {
  static const std::vector<OptionDef> kOptions = [] {
    std::vector<OptionDef> v;
    auto add = [&v](std::string name, Type type, std::string def, std::string help) -> OptionDef& {
      v.push_back(OptionDef{std::move(name), type, std::move(def), std::move(help)});
      return v.back();
    };
    add("enabled", Type::kBool, "false", "managed backup on for the cluster (or, as a default, for clusters found later)")
        .verb_flag = true;
    add("storage_url", Type::kString, "file:///var/backups/smartbackup",
        "where backups go: file:///absolute/path or azure://container[/prefix]")
        .verb_flag = true;
    {
      auto& o = add("retention_days", Type::kInt, "7", "keep what restores to any point in the last N days (1-30)");
      o.min_value = 1;
      o.max_value = 30;
      o.verb_flag = true;
    }
    add("mode", Type::kMode, "stream",
        "log capture: stream (own replication slot) or archive (archive_command runs smartbackup wal-push)")
        .verb_flag = true;
    {
      auto& o = add("key_file", Type::kString, "",
                    "absolute path of the AES-256 key file that encrypts backups; empty = not encrypted");
      o.allow_empty = true;
      o.verb_flag = true;
    }
    {
      auto& o = add("public_key", Type::kString, "",
                    "absolute path of an RSA public key or certificate (PEM): backups are encrypted with data keys "
                    "sealed to it, so this host cannot read them (restore needs the private key); excludes key_file");
      o.allow_empty = true;
      o.verb_flag = true;
    }
    add("full_max_age", Type::kDuration, "7d", "a full backup when the last one is this old");
    add("full_max_wal", Type::kByteSize, "1GiB", "a full backup after this much WAL since the last one");
    add("log_max_age", Type::kDuration, "2h", "a log backup when the last one is this old");
    add("log_max_wal", Type::kByteSize, "5MiB", "a log backup after this much WAL since the last one");
    add("full_schedule", Type::kSchedule, "",
        "custom full-backup window (UTC): \"daily 01:00 2h\" or \"weekly sun 01:00 2h\"; empty = thresholds "
        "alone decide")
        .allow_empty = true;
    add("log_frequency", Type::kDuration, "", "custom schedule: a log backup at least this often; empty = none")
        .allow_empty = true;
    add("flush_interval", Type::kDuration, "5s", "stream mode: how often received WAL is made durable in storage");
    add("retention_unit", Type::kDuration, "1d",
        "for tests only: the length of one retention \"day\" (e.g. \"1s\" so retention runs in seconds)")
        .test_only = true;
    return v;
  }();
  return kOptions;
}

bool TestOnlyOptionsAllowed() {
  // Read at each use (not cached) so that a test can check both sides in one process.
  const char* v = std::getenv("SMARTBACKUP_TESTING");
  return v != nullptr && std::string(v) == "1";
}

const OptionDef* FindOption(const std::string& name) {
  for (const auto& o : ManagedOptions()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

Result<std::string> ValidateOption(const std::string& name, const std::string& value) {
  const OptionDef* def = FindOption(name);
  if (def == nullptr) {
    return Status::InvalidArgument(fmt::format("unknown setting \"{}\"; hint: one of {}", name, OptionNames()));
  }
  if (def->test_only && !TestOnlyOptionsAllowed() && Trim(value) != def->default_text) {
    // A test-only knob in production shortens retention by orders of magnitude: refused at every
    // entry (config file, API, verbs), since all of them validate here. Its default stays accepted:
    // db-config output lists every option and may be fed back.
    return Status::InvalidArgument(fmt::format(
        "setting \"{}\" is for tests only and is refused outside them; hint: remove it (tests set "
        "SMARTBACKUP_TESTING=1)",
        name));
  }
  const std::string v = Trim(value);
  if (def->allow_empty && (v.empty() || Lower(v) == "none")) return std::string();
  switch (def->type) {
    case Type::kBool: {
      ASSIGN_OR_RETURN(bool b, ParseBool(name, value));
      return std::string(b ? "true" : "false");
    }
    case Type::kInt: {
      ASSIGN_OR_RETURN(int64_t n, ParseInt(*def, value));
      return std::to_string(n);
    }
    case Type::kMode: {
      const std::string m = Lower(v);
      if (m != "stream" && m != "archive") {
        return Status::InvalidArgument(fmt::format("{} must be stream or archive, got \"{}\"", name, value));
      }
      return m;
    }
    case Type::kDuration: {
      RETURN_IF_ERROR(ParsePositiveDuration(name, v).status());
      return v;
    }
    case Type::kByteSize: {
      RETURN_IF_ERROR(ParsePositiveSize(name, v).status());
      return v;
    }
    case Type::kSchedule: {
      ASSIGN_OR_RETURN(FullSchedule s, ParseFullSchedule(v));
      return FormatFullSchedule(s);
    }
    case Type::kString:
      break;
  }
  if (name == "storage_url") {
    RETURN_IF_ERROR(CheckStorageUrl(v));
  } else if (name == "key_file") {
    if (v[0] != '/') {
      return Status::InvalidArgument(
          fmt::format("key_file must be an absolute path, got \"{}\"; hint: e.g. /etc/smartbackup/backup.key", value));
    }
  } else if (name == "public_key") {
    if (v[0] != '/') {
      return Status::InvalidArgument(
          fmt::format("public_key must be an absolute path, got \"{}\"; hint: e.g. /etc/smartbackup/backup-pub.pem",
                      value));
    }
  }
  return v;
}

Result<PartialSettings> CanonicalizeSettings(const PartialSettings& settings) {
  PartialSettings out;
  for (const auto& [k, v] : settings) {
    ASSIGN_OR_RETURN(out[k], ValidateOption(k, v));
  }
  return out;
}

Status ValidateSettings(const PartialSettings& settings) { return CanonicalizeSettings(settings).status(); }

ClusterSettings ResolveSettings(const PartialSettings& defaults, const PartialSettings& overrides) {
  ClusterSettings s;
  for (const auto& layer : {&defaults, &overrides}) {
    for (const auto& def : ManagedOptions()) {
      auto it = layer->find(def.name);
      if (it != layer->end()) Apply(&s, def, it->second);
    }
  }
  return s;
}

PartialSettings ToPartial(const ClusterSettings& s) {
  PartialSettings p;
  p["enabled"] = s.enabled ? "true" : "false";
  p["storage_url"] = s.storage_url;
  p["retention_days"] = std::to_string(s.retention_days);
  p["mode"] = s.mode;
  p["key_file"] = s.key_file;
  p["public_key"] = s.public_key;
  p["full_max_age"] = FormatDuration(s.full_max_age);
  p["full_max_wal"] = FormatByteSizeExact(s.full_max_wal);
  p["log_max_age"] = FormatDuration(s.log_max_age);
  p["log_max_wal"] = FormatByteSizeExact(s.log_max_wal);
  p["full_schedule"] = s.full_schedule ? FormatFullSchedule(*s.full_schedule) : "";
  p["log_frequency"] = s.log_frequency ? FormatDuration(*s.log_frequency) : "";
  p["flush_interval"] = FormatDuration(s.flush_interval);
  p["retention_unit"] = FormatDuration(s.retention_unit);
  return p;
}

Result<FullSchedule> ParseFullSchedule(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument(
        fmt::format("invalid full_schedule \"{}\"; hint: use e.g. daily 01:00 2h or weekly sun 01:00 2h", text));
  };
  std::vector<std::string> w = SplitWords(Lower(text));
  if (w.empty()) return bad();
  FullSchedule s;
  size_t i = 1;
  if (w[0] == "daily") {
    s.frequency = FullSchedule::Frequency::kDaily;
    if (w.size() != 3) return bad();
  } else if (w[0] == "weekly") {
    s.frequency = FullSchedule::Frequency::kWeekly;
    if (w.size() != 4) return bad();
    int day = -1;
    for (int d = 0; d < 7; ++d) {
      if (w[1] == kWeekdays[d] || w[1] == kWeekdayNames[d]) day = d;
    }
    if (day < 0) return bad();
    s.weekday = day;
    i = 2;
  } else {
    return bad();
  }
  // HH:MM
  const std::string& hm = w[i];
  const size_t colon = hm.find(':');
  if (colon == std::string::npos || colon == 0 || colon > 2 || hm.size() - colon - 1 != 2) return bad();
  int hh = 0, mm = 0;
  for (size_t k = 0; k < hm.size(); ++k) {
    if (k != colon && !std::isdigit(static_cast<unsigned char>(hm[k]))) return bad();
  }
  hh = std::stoi(hm.substr(0, colon));
  mm = std::stoi(hm.substr(colon + 1));
  if (hh > 23 || mm > 59) return bad();
  s.window_start = std::chrono::minutes(hh * 60 + mm);
  // window length: whole minutes, at most one period
  auto len = ParseDuration(w[i + 1]);
  if (!len.ok() || len->count() <= 0 || len->count() % 60000 != 0) return bad();
  const auto period = s.frequency == FullSchedule::Frequency::kDaily ? std::chrono::milliseconds(std::chrono::hours(24))
                                                                      : std::chrono::milliseconds(std::chrono::hours(24 * 7));
  if (*len > period) return bad();
  s.window_length = std::chrono::duration_cast<std::chrono::minutes>(*len);
  return s;
}

std::string FormatFullSchedule(const FullSchedule& s) {
  const int start = static_cast<int>(s.window_start.count());
  const std::string hm = fmt::format("{:02}:{:02}", start / 60, start % 60);
  const std::string len = FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(s.window_length));
  if (s.frequency == FullSchedule::Frequency::kWeekly) {
    const int d = ((s.weekday % 7) + 7) % 7;
    return fmt::format("weekly {} {} {}", kWeekdays[d], hm, len);
  }
  return fmt::format("daily {} {}", hm, len);
}

}  // namespace sb
