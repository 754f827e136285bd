// Managed-backup settings, declared once: one table of options (name, type,
// default, range, help) drives the TOML config file ([defaults] and
// [[cluster]] entries), the set-db-backup / set-instance-backup flags, the
// API's validation and `db-config` output, so they never disagree.
// Thread-safety: values; the option table is immutable.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sb {

// A custom full-backup schedule: a window in which the full is taken,
// daily or weekly (UTC). Unset: the thresholds alone decide.
struct FullSchedule {
  enum class Frequency { kDaily, kWeekly } frequency = Frequency::kDaily;
  int weekday = 0;                                        // 0 = Sunday (weekly only)
  std::chrono::minutes window_start{0};                   // minutes after midnight UTC
  std::chrono::minutes window_length{std::chrono::hours(1)};
};

// Effective settings of one cluster.
struct ClusterSettings {
  bool enabled = false;
  std::string storage_url = "file:///var/backups/smartbackup";
  int retention_days = 7;
  std::string mode = "stream";  // "stream" | "archive"
  std::string key_file;         // path; the key itself is never stored
  std::string public_key;       // path of an RSA public key/certificate (PEM): data keys sealed to it
  std::chrono::milliseconds full_max_age = std::chrono::hours(24 * 7);
  uint64_t full_max_wal = 1ull << 30;
  std::chrono::milliseconds log_max_age = std::chrono::hours(2);
  uint64_t log_max_wal = 5ull << 20;
  std::optional<FullSchedule> full_schedule;
  std::optional<std::chrono::milliseconds> log_frequency;  // custom: a log backup at least this often
  std::chrono::milliseconds flush_interval = std::chrono::seconds(5);
  // Test-only time unit for retention ("retention_unit = \"1s\"" makes retention_days seconds).
  std::chrono::milliseconds retention_unit = std::chrono::hours(24);
};

// A set of option values, each optional: [defaults], a [[cluster]] entry,
// or a change made through a verb. Keys are option names ("retention_days").
// Values are kept as the canonical text of the option ("7", "5MiB", "stream").
using PartialSettings = std::map<std::string, std::string>;

struct OptionDef {
  std::string name;
  enum class Type { kBool, kInt, kString, kDuration, kByteSize, kMode, kSchedule } type;
  std::string default_text;
  std::string help;
  // Added: kInt range (inclusive); a value outside it is rejected.
  int64_t min_value = 0;
  int64_t max_value = 0;
  bool allow_empty = false;  // "" means unset (key_file, full_schedule, log_frequency)
  bool test_only = false;    // documented as for tests (retention_unit)
  bool verb_flag = false;    // also a flag of set-db-backup / set-instance-backup (spec section 6)
};

// True when the process runs under tests (environment SMARTBACKUP_TESTING=1): only then are
// test_only options (retention_unit) accepted from the config file, the API or the verbs.
bool TestOnlyOptionsAllowed();

// The table of every managed option.
const std::vector<OptionDef>& ManagedOptions();
// The option named `name`, or nullptr. (Added.)
const OptionDef* FindOption(const std::string& name);

// Validates and canonicalises one value ("retention_days", "31" → error
// "retention_days must be between 1 and 30, got 31").
Result<std::string> ValidateOption(const std::string& name, const std::string& value);
Status ValidateSettings(const PartialSettings& settings);
// ValidateSettings, returning every value in its canonical text. (Added.)
Result<PartialSettings> CanonicalizeSettings(const PartialSettings& settings);

// defaults, then overrides on top: every key the overrides do not set comes from defaults.
// Built-in defaults (ClusterSettings{}) fill what neither sets. Precondition:
// both validated; a value that does not parse is ignored (the layer below wins).
ClusterSettings ResolveSettings(const PartialSettings& defaults, const PartialSettings& overrides);
// The settings as option-name → text (for db-config / instance-config output).
PartialSettings ToPartial(const ClusterSettings& settings);

// "daily 01:00 2h" or "weekly sun 01:00 2h".
Result<FullSchedule> ParseFullSchedule(const std::string& text);
std::string FormatFullSchedule(const FullSchedule& schedule);

}  // namespace sb
