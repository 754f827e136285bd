// Managed-backup settings, declared once. One table (ManagedOptions()) holds
// every option: name, type, default, range and unit, whether it is secret or
// for tests only, its flag and the verbs that take it, and a one-line help.
// Everything else is generated from it at runtime: the TOML parsing of
// [defaults] / [[cluster]] (agent_config.cc), validation of the API and of
// the CLI flags (ValidateOption), the struct's defaults and its conversion
// to and from text (each row names its ClusterSettings field), `--help` and
// the README's option table (option_doc.h). Adding an option is one table row
// in settings.cc and one field below.
// Thread-safety: values; the option table is immutable once built.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
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

// How WAL reaches the repository: streamed over smartbackup's own replication slot, or pushed by
// PostgreSQL's archive_command (smartbackup wal-push).
enum class WalMode { kStream, kArchive };
const char* WalModeName(WalMode mode);  // "stream" | "archive": the option's text

// Effective settings of one cluster. A default-constructed value holds the
// option table's defaults: the fields carry no default of their own.
struct ClusterSettings {
  ClusterSettings();
  // Every field zero/empty, not the table's defaults (used to build those).
  struct Blank {};
  explicit ClusterSettings(Blank) {}

  bool enabled = false;
  std::string storage_url;
  int retention_days = 0;
  WalMode mode = WalMode::kStream;
  std::string key_file;    // path; the key itself is never stored
  std::string public_key;  // path of an RSA public key/certificate (PEM): data keys sealed to it
  std::chrono::milliseconds full_max_age{0};
  uint64_t full_max_wal = 0;
  std::chrono::milliseconds log_max_age{0};
  uint64_t log_max_wal = 0;
  std::optional<FullSchedule> full_schedule;
  std::optional<std::chrono::milliseconds> log_frequency;  // custom: a log backup at least this often
  std::chrono::milliseconds flush_interval{0};
  // Test-only time unit for retention ("retention_unit = \"1s\"" makes retention_days seconds).
  std::chrono::milliseconds retention_unit{0};
  // Restore drills (engine/drill): after each new full backup, at most once per drill_interval.
  bool drill_enabled = false;
  std::chrono::milliseconds drill_interval{0};
  std::string drill_scratch_dir;        // "" = <state_dir>/drills
  uint64_t drill_free_space_reserve = 0;
  std::string drill_target;             // "latest" | "random"
  std::string drill_check_sql;          // "" = none
};

// A set of option values, each optional: [defaults], a [[cluster]] entry,
// or a change made through a verb. Keys are option names ("retention_days").
// Values are kept as the canonical text of the option ("7", "5MiB", "stream").
using PartialSettings = std::map<std::string, std::string>;

// The verbs whose command line takes an option as a flag (bits of OptionDef::verbs).
enum OptionVerb : unsigned {
  kSetBackupVerbs = 1u << 0,  // set-db-backup and set-instance-backup
  kPurgeVerb = 1u << 1,
  kStreamVerb = 1u << 2,
  kWalPushVerb = 1u << 3,
};
// "set-db-backup, set-instance-backup, purge", in bit order.
std::vector<std::string> OptionVerbNames(unsigned verbs);

struct OptionDef {
  enum class Type {
    kBool,          // true/false (also on/off, yes/no, 1/0)
    kInt,           // integer in [min_value, max_value], counted in `unit`
    kChoice,        // one of `choices` (case-insensitive)
    kStorageUrl,    // file:///abs/path or azure://container[/prefix]
    kAbsolutePath,  // a path starting with '/'
    kDuration,      // "10s", "2h", "7d"; greater than zero
    kByteSize,      // "5MiB", "1GiB"; greater than zero
    kSchedule,      // "daily 01:00 2h" or "weekly sun 01:00 2h"
    kText,          // free text of at most 1000 characters without control characters (drill_check_sql)
  };
  // The ClusterSettings field the option fills; its C++ type must suit `type`
  // (a unit test checks every default round-trips through it).
  using Field = std::variant<bool ClusterSettings::*, int ClusterSettings::*, std::string ClusterSettings::*,
                             WalMode ClusterSettings::*,
                             uint64_t ClusterSettings::*, std::chrono::milliseconds ClusterSettings::*,
                             std::optional<std::chrono::milliseconds> ClusterSettings::*,
                             std::optional<FullSchedule> ClusterSettings::*>;

  std::string name;  // TOML key, API/JSON key and db-config key: users script against it
  Type type;
  Field field;
  std::string default_text;  // canonical text; the only source of the default
  std::string help;          // one line, for --help and the README
  std::string unit;          // kInt: what one counts ("days")
  int64_t min_value = 0;     // kInt range, inclusive
  int64_t max_value = 0;
  std::vector<std::string> choices;  // kChoice
  std::string example;               // kAbsolutePath: shown in the error's hint
  bool allow_empty = false;  // "" (or "none") means unset (key_file, full_schedule, log_frequency)
  bool secret = false;       // its value is never printed by --help or the README (none is today)
  bool test_only = false;    // accepted only under tests (retention_unit); see TestOnlyOptionsAllowed
  unsigned verbs = 0;        // OptionVerb bits: the verbs that take `flag`
  std::string flag;          // "--retention-days"; for kBool the flag that sets true
  std::string off_flag;      // kBool: the flag that sets false ("--disable")
  std::string off_help;      // kBool: help of off_flag
};

// True when the process runs under tests (environment SMARTBACKUP_TESTING=1): only then are
// test_only options (retention_unit) accepted from the config file, the API or the verbs.
bool TestOnlyOptionsAllowed();

// The table of every managed option, in documentation order.
const std::vector<OptionDef>& ManagedOptions();
// The option named `name`, or nullptr.
const OptionDef* FindOption(const std::string& name);
// "enabled, storage_url, …": every option name, for hints.
std::string OptionNames();

// What the option accepts, for --help and the README: "1-30 days", "stream or archive",
// "duration > 0 (e.g. 2h)", with ", or empty" where empty unsets it.
std::string OptionValuesText(const OptionDef& def);

// Validates and canonicalises one value ("retention_days", "31" → error
// "retention_days must be between 1 and 30, got 31"). The config file, the API
// and the CLI flags all validate here, so they accept the same values and give
// the same one-line error, naming the option and what it allows.
Result<std::string> ValidateOption(const std::string& name, const std::string& value);
Status ValidateSettings(const PartialSettings& settings);
// ValidateSettings, returning every value in its canonical text.
Result<PartialSettings> CanonicalizeSettings(const PartialSettings& settings);

// defaults, then overrides on top: every key the overrides do not set comes from defaults.
// The table's defaults fill what neither sets. A value that does not validate
// (stored by an older version, or a test-only option outside tests) is ignored:
// the layer below wins.
ClusterSettings ResolveSettings(const PartialSettings& defaults, const PartialSettings& overrides);
// The table's defaults overlaid with `values`, which must all validate (flags of a verb).
Result<ClusterSettings> SettingsFrom(const PartialSettings& values);
// The settings as option-name → canonical text (for db-config / instance-config output),
// every option present.
PartialSettings ToPartial(const ClusterSettings& settings);

// "daily 01:00 2h" or "weekly sun 01:00 2h".
Result<FullSchedule> ParseFullSchedule(const std::string& text);
std::string FormatFullSchedule(const FullSchedule& schedule);

}  // namespace sb
