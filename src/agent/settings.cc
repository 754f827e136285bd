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

const char kStorageUrlForms[] = "file:///absolute/path or azure://container[/prefix]";

Status CheckStorageUrl(const std::string& name, const std::string& url) {
  const std::string hint = fmt::format("hint: use {}", kStorageUrlForms);
  if (StartsWith(url, "file:///")) return Status::Ok();
  if (StartsWith(url, "azure://")) {
    if (url.size() > 8 && url[8] != '/') return Status::Ok();
    return Status::InvalidArgument(fmt::format("{} \"{}\" names no container; {}", name, url, hint));
  }
  return Status::InvalidArgument(fmt::format("{} \"{}\" is not supported; {}", name, url, hint));
}

// "a or b", "a, b or c".
std::string OrList(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += words[i];
  }
  return out;
}

// The checks of one option's type on a value; returns its canonical text.
Result<std::string> Validate(const OptionDef& def, const std::string& value) {
  const std::string& name = def.name;
  if (def.test_only && !TestOnlyOptionsAllowed() && Trim(value) != def.default_text) {
    // A test-only knob in production shortens retention by orders of magnitude: refused at every
    // entry (config file, API, verbs), since all of them validate here. Its default stays accepted:
    // db-config output lists every option and may be fed back.
    return Status::InvalidArgument(fmt::format(
        "setting \"{}\" is for tests only and is refused outside them; hint: remove it (tests set "
        "SMARTBACKUP_TESTING=1)",
        name));
  }
  const std::string v = Trim(value);
  if (def.allow_empty && (v.empty() || Lower(v) == "none")) return std::string();
  switch (def.type) {
    case Type::kBool: {
      ASSIGN_OR_RETURN(bool b, ParseBool(name, value));
      return std::string(b ? "true" : "false");
    }
    case Type::kInt: {
      ASSIGN_OR_RETURN(int64_t n, ParseInt(def, value));
      return std::to_string(n);
    }
    case Type::kChoice: {
      const std::string c = Lower(v);
      for (const auto& choice : def.choices) {
        if (c == choice) return c;
      }
      return Status::InvalidArgument(fmt::format("{} must be {}, got \"{}\"", name, OrList(def.choices), value));
    }
    case Type::kStorageUrl:
      RETURN_IF_ERROR(CheckStorageUrl(name, v));
      return v;
    case Type::kAbsolutePath:
      if (v.empty() || v[0] != '/') {
        return Status::InvalidArgument(
            fmt::format("{} must be an absolute path, got \"{}\"; hint: e.g. {}", name, value, def.example));
      }
      return v;
    case Type::kDuration:
      RETURN_IF_ERROR(ParsePositiveDuration(name, v).status());
      return v;
    case Type::kByteSize:
      RETURN_IF_ERROR(ParsePositiveSize(name, v).status());
      return v;
    case Type::kSchedule: {
      ASSIGN_OR_RETURN(FullSchedule s, ParseFullSchedule(v));
      return FormatFullSchedule(s);
    }
    case Type::kText:
      if (v.size() > 1000 || std::any_of(v.begin(), v.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
          })) {
        return Status::InvalidArgument(
            fmt::format("{} must be one line of at most 1000 characters without control characters", name));
      }
      return v;
  }
  return Status::Internal(fmt::format("option {} has no type", name));
}

// Stores a canonical value (one Validate accepted) in the option's field.
// The conversions cannot fail on canonical text; if one did, the field keeps
// its value (the layer below wins).
}  // namespace

const char* WalModeName(WalMode mode) { return mode == WalMode::kArchive ? "archive" : "stream"; }

namespace {

void Store(ClusterSettings* s, const OptionDef& def, const std::string& canonical) {
  using ms = std::chrono::milliseconds;
  struct Visitor {
    ClusterSettings* s;
    const std::string& text;
    void operator()(bool ClusterSettings::*f) const { s->*f = text == "true"; }
    void operator()(int ClusterSettings::*f) const {
      int n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec == std::errc() && end == text.data() + text.size()) s->*f = n;
    }
    void operator()(std::string ClusterSettings::*f) const { s->*f = text; }
    void operator()(WalMode ClusterSettings::*f) const { s->*f = text == "archive" ? WalMode::kArchive : WalMode::kStream; }
    void operator()(uint64_t ClusterSettings::*f) const {
      if (auto n = ParseByteSize(text); n.ok()) s->*f = *n;
    }
    void operator()(ms ClusterSettings::*f) const {
      if (auto d = ParseDuration(text); d.ok()) s->*f = *d;
    }
    void operator()(std::optional<ms> ClusterSettings::*f) const {
      if (text.empty()) {
        (s->*f).reset();
      } else if (auto d = ParseDuration(text); d.ok()) {
        s->*f = *d;
      }
    }
    void operator()(std::optional<FullSchedule> ClusterSettings::*f) const {
      if (text.empty()) {
        (s->*f).reset();
      } else if (auto fs = ParseFullSchedule(text); fs.ok()) {
        s->*f = *fs;
      }
    }
  };
  std::visit(Visitor{s, canonical}, def.field);
}

// The canonical text of the option's field.
std::string Load(const ClusterSettings& s, const OptionDef& def) {
  using ms = std::chrono::milliseconds;
  struct Visitor {
    const ClusterSettings& s;
    std::string operator()(bool ClusterSettings::*f) const { return s.*f ? "true" : "false"; }
    std::string operator()(int ClusterSettings::*f) const { return std::to_string(s.*f); }
    std::string operator()(std::string ClusterSettings::*f) const { return s.*f; }
    std::string operator()(WalMode ClusterSettings::*f) const { return WalModeName(s.*f); }
    std::string operator()(uint64_t ClusterSettings::*f) const { return FormatByteSizeExact(s.*f); }
    std::string operator()(ms ClusterSettings::*f) const { return FormatDuration(s.*f); }
    std::string operator()(std::optional<ms> ClusterSettings::*f) const {
      return (s.*f) ? FormatDuration(*(s.*f)) : "";
    }
    std::string operator()(std::optional<FullSchedule> ClusterSettings::*f) const {
      return (s.*f) ? FormatFullSchedule(*(s.*f)) : "";
    }
  };
  return std::visit(Visitor{s}, def.field);
}

std::vector<OptionDef> BuildTable() {
  using CS = ClusterSettings;
  std::vector<OptionDef> v;
  // Each row: name, type, field, default, one-line help; then what the type needs.
  auto add = [&v](std::string name, Type type, OptionDef::Field field, std::string def,
                  std::string help) -> OptionDef& {
    OptionDef o{.name = std::move(name), .type = type, .field = field, .default_text = std::move(def),
                .help = std::move(help)};
    // Every option but a test-only one is a flag of the set verbs, named after it.
    o.verbs = kSetBackupVerbs;
    o.flag = "--" + o.name;
    std::replace(o.flag.begin(), o.flag.end(), '_', '-');
    v.push_back(std::move(o));
    return v.back();
  };
  {
    auto& o = add("enabled", Type::kBool, &CS::enabled, "false",
                  "managed backup on for the cluster (or, as a default, for clusters found later)");
    o.flag = "--enable";
    o.off_flag = "--disable";
    o.off_help = "managed backup off (the settings are kept)";
  }
  add("storage_url", Type::kStorageUrl, &CS::storage_url, "file:///var/backups/smartbackup", "where backups go");
  {
    auto& o = add("retention_days", Type::kInt, &CS::retention_days, "7",
                  "keep what restores to any point in the last N days");
    o.unit = "days";
    o.min_value = 1;
    o.max_value = 30;  // spec section 2, as SQL Server 2014's managed backup
    o.verbs |= kPurgeVerb;
  }
  add("mode", Type::kChoice, &CS::mode, "stream",
      "log capture: stream (own replication slot) or archive (archive_command runs smartbackup wal-push)")
      .choices = {"stream", "archive"};
  {
    auto& o = add("key_file", Type::kAbsolutePath, &CS::key_file, "",
                  "the AES-256 key file that encrypts backups; empty = not encrypted");
    o.example = "/etc/smartbackup/backup.key";
    o.allow_empty = true;
  }
  {
    auto& o = add("public_key", Type::kAbsolutePath, &CS::public_key, "",
                  "an RSA public key or certificate (PEM): backups are encrypted with data keys sealed to it, so "
                  "this host cannot read them (restore needs the private key); excludes key_file");
    o.example = "/etc/smartbackup/backup-pub.pem";
    o.allow_empty = true;
  }
  add("full_max_age", Type::kDuration, &CS::full_max_age, "7d", "a full backup when the last one is this old");
  add("full_max_wal", Type::kByteSize, &CS::full_max_wal, "1GiB",
      "a full backup after this much WAL since the last one");
  add("log_max_age", Type::kDuration, &CS::log_max_age, "2h", "a log backup when the last one is this old")
      .verbs |= kStreamVerb | kWalPushVerb;
  add("log_max_wal", Type::kByteSize, &CS::log_max_wal, "5MiB",
      "a log backup after this much WAL since the last one")
      .verbs |= kStreamVerb | kWalPushVerb;
  add("full_schedule", Type::kSchedule, &CS::full_schedule, "",
      "custom full-backup window (UTC), e.g. daily 01:00 2h or weekly sun 01:00 2h; empty = the thresholds "
      "alone decide")
      .allow_empty = true;
  add("log_frequency", Type::kDuration, &CS::log_frequency, "",
      "custom schedule: a log backup at least this often; empty = none")
      .allow_empty = true;
  add("flush_interval", Type::kDuration, &CS::flush_interval, "5s",
      "stream mode: how often received WAL is made durable in storage")
      .verbs |= kStreamVerb;
  {
    auto& o = add("retention_unit", Type::kDuration, &CS::retention_unit, "1d",
                  "for tests only: the length of one retention \"day\" (e.g. 1s so retention runs in seconds)");
    o.test_only = true;
    o.verbs = 0;  // only through --set, and only under tests
    o.flag.clear();
  }
  {
    auto& o = add("drill_enabled", Type::kBool, &CS::drill_enabled, "true",
                  "restore drills: after each new full backup the agent restores it into drill_scratch_dir, starts "
                  "it, checks it (pg_amcheck) and records what it proved");
    o.flag = "--enable-drills";
    o.off_flag = "--disable-drills";
    o.off_help = "no restore drills for the cluster";
  }
  add("drill_interval", Type::kDuration, &CS::drill_interval, "1d", "at most one drill per cluster this often");
  {
    auto& o = add("drill_scratch_dir", Type::kAbsolutePath, &CS::drill_scratch_dir, "",
                  "where drills restore (removed after each drill); empty = <state_dir>/drills");
    o.example = "/var/lib/smartbackup/drills";
    o.allow_empty = true;
  }
  add("drill_free_space_reserve", Type::kByteSize, &CS::drill_free_space_reserve, "1GiB",
      "a drill is skipped (with the reason) unless the backup fits in drill_scratch_dir with this much to spare");
  add("drill_target", Type::kChoice, &CS::drill_target, "latest",
      "what a drill proves: the newest point, or a random point of the newest full's window")
      .choices = {"latest", "random"};
  add("drill_check_sql", Type::kText, &CS::drill_check_sql, "",
      "a query run on the drill's restored copy that must return true; empty = pg_amcheck only")
      .allow_empty = true;
  return v;
}

const ClusterSettings& TableDefaults() {
  static const ClusterSettings kDefaults = [] {
    ClusterSettings s{ClusterSettings::Blank{}};
    for (const auto& def : ManagedOptions()) Store(&s, def, def.default_text);
    return s;
  }();
  return kDefaults;
}

}  // namespace

ClusterSettings::ClusterSettings() : ClusterSettings(TableDefaults()) {}

std::vector<std::string> OptionVerbNames(unsigned verbs) {
  std::vector<std::string> out;
  if (verbs & kSetBackupVerbs) {
    out.push_back("set-db-backup");
    out.push_back("set-instance-backup");
  }
  if (verbs & kPurgeVerb) out.push_back("purge");
  if (verbs & kStreamVerb) out.push_back("stream");
  if (verbs & kWalPushVerb) out.push_back("wal-push");
  return out;
}

const std::vector<OptionDef>& ManagedOptions() {
  static const std::vector<OptionDef> kOptions = BuildTable();
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

std::string OptionNames() {
  std::string out;
  for (const auto& o : ManagedOptions()) {
    if (!out.empty()) out += ", ";
    out += o.name;
  }
  return out;
}

std::string OptionValuesText(const OptionDef& def) {
  std::string text;
  switch (def.type) {
    case Type::kBool: text = "true or false"; break;
    case Type::kInt: text = fmt::format("{}-{} {}", def.min_value, def.max_value, def.unit); break;
    case Type::kChoice: text = OrList(def.choices); break;
    case Type::kStorageUrl: text = kStorageUrlForms; break;
    case Type::kAbsolutePath: text = "absolute path"; break;
    case Type::kText: text = "one line of SQL"; break;
    case Type::kDuration:
      text = fmt::format("duration > 0 up to {}: 30s, 15m, 2h, 7d", FormatDuration(kMaxDuration));
      break;
    case Type::kByteSize:
      text = fmt::format("size > 0 up to {}: 512KiB, 5MiB, 1GiB", FormatByteSizeExact(kMaxByteSize));
      break;
    case Type::kSchedule: text = "daily HH:MM LENGTH or weekly DAY HH:MM LENGTH"; break;
  }
  if (def.allow_empty) text += ", or empty";
  return text;
}

Result<std::string> ValidateOption(const std::string& name, const std::string& value) {
  const OptionDef* def = FindOption(name);
  if (def == nullptr) {
    return Status::InvalidArgument(fmt::format("unknown setting \"{}\"; hint: one of {}", name, OptionNames()));
  }
  return Validate(*def, value);
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
  for (const auto* layer : {&defaults, &overrides}) {
    for (const auto& def : ManagedOptions()) {
      auto it = layer->find(def.name);
      if (it == layer->end()) continue;
      if (auto canonical = Validate(def, it->second); canonical.ok()) Store(&s, def, *canonical);
    }
  }
  return s;
}

Result<ClusterSettings> SettingsFrom(const PartialSettings& values) {
  ASSIGN_OR_RETURN(PartialSettings canonical, CanonicalizeSettings(values));
  return ResolveSettings({}, canonical);
}

PartialSettings ToPartial(const ClusterSettings& s) {
  PartialSettings p;
  for (const auto& def : ManagedOptions()) p[def.name] = Load(s, def);
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
