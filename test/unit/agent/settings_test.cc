// The managed-option table: every validation message, canonical text,
// precedence of built-in defaults < [defaults] < per-cluster overrides, and
// full-schedule parsing/formatting round trips.
#include "agent/settings.h"
#include "support/option_samples.h"
#include "support/testing_env.h"

#include <gtest/gtest.h>

#include <set>

namespace sb {
namespace {

using namespace std::chrono_literals;

std::string Err(const std::string& name, const std::string& value) {
  auto r = ValidateOption(name, value);
  EXPECT_FALSE(r.ok()) << name << "=" << value << " was accepted as " << (r.ok() ? *r : "");
  return r.ok() ? "" : r.status().message();
}

std::string Ok(const std::string& name, const std::string& value) {
  auto r = ValidateOption(name, value);
  EXPECT_TRUE(r.ok()) << name << "=" << value << ": " << r.status().message();
  return r.ok() ? *r : "";
}

TEST(SettingsTest, TableHasEveryOptionOnceWithHelp) {
  const std::vector<std::string> expected = {"enabled",       "storage_url",  "retention_days", "mode",
                                             "key_file", "public_key",      "full_max_age", "full_max_wal",   "log_max_age",
                                             "log_max_wal",   "full_schedule", "log_frequency", "flush_interval",
                                             "retention_unit", "drill_enabled", "drill_interval", "drill_scratch_dir",
                                             "drill_free_space_reserve", "drill_target", "drill_check_sql"};
  std::set<std::string> seen;
  for (const auto& o : ManagedOptions()) {
    EXPECT_TRUE(seen.insert(o.name).second) << "duplicate option " << o.name;
    EXPECT_FALSE(o.help.empty()) << o.name;
    EXPECT_EQ(FindOption(o.name), &o);
  }
  EXPECT_EQ(seen, std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(FindOption("nope"), nullptr);
  EXPECT_TRUE(FindOption("retention_unit")->test_only);
  EXPECT_EQ(FindOption("retention_days")->min_value, 1);
  EXPECT_EQ(FindOption("retention_days")->max_value, 30);
}

TEST(SettingsTest, DefaultTextsAgreeWithBuiltInSettings) {
  const PartialSettings builtin = ToPartial(ClusterSettings{});
  for (const auto& o : ManagedOptions()) {
    ASSERT_TRUE(builtin.count(o.name)) << o.name;
    EXPECT_EQ(builtin.at(o.name), o.default_text) << o.name;
    // The default text is itself valid and canonical.
    EXPECT_EQ(Ok(o.name, o.default_text), o.default_text) << o.name;
  }
  EXPECT_EQ(builtin.size(), ManagedOptions().size());
}

// The struct's fields carry no defaults of their own: a blank ClusterSettings differs from the
// table's default in every option that has one (but a boolean's false and an enum's first value, which
// are values too), and the default constructor and an empty resolve both give exactly the table's.
TEST(SettingsTest, DefaultsComeOnlyFromTheTable) {
  const PartialSettings blank = ToPartial(ClusterSettings(ClusterSettings::Blank{}));
  for (const auto& o : ManagedOptions()) {
    const bool has_blank = o.type != OptionDef::Type::kBool && !std::holds_alternative<WalMode ClusterSettings::*>(o.field);
    if (!o.default_text.empty() && has_blank) {
      EXPECT_NE(blank.at(o.name), o.default_text) << o.name;
    }
    EXPECT_EQ(ToPartial(ResolveSettings({}, {})).at(o.name), o.default_text) << o.name;
    auto from = SettingsFrom({});
    ASSERT_TRUE(from.ok());
    EXPECT_EQ(ToPartial(*from).at(o.name), o.default_text) << o.name;
  }
}

// Each row's field suits its type: a value other than the default goes into the field and comes
// back as the same text, and touches no other option.
TEST(SettingsTest, EveryOptionReachesItsOwnField) {
  const PartialSettings defaults = ToPartial(ClusterSettings{});
  for (const auto& o : ManagedOptions()) {
    const std::string sample = test::SampleValue(o);
    ASSERT_NE(sample, o.default_text) << o.name;
    EXPECT_EQ(Ok(o.name, sample), sample) << o.name;
    auto s = SettingsFrom({{o.name, sample}});
    ASSERT_TRUE(s.ok()) << o.name << ": " << s.status().message();
    PartialSettings expected = defaults;
    expected[o.name] = sample;
    EXPECT_EQ(ToPartial(*s), expected) << o.name;
  }
}

// One message per bad value, naming the option; an integer's names its range and what it counts.
TEST(SettingsTest, EveryBadValueNamesTheOption) {
  for (const auto& o : ManagedOptions()) {
    for (const auto& bad : test::BadValues(o)) {
      const std::string m = Err(o.name, bad);
      EXPECT_NE(m.find(o.name), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      auto s = SettingsFrom({{o.name, bad}});
      ASSERT_FALSE(s.ok()) << o.name << "=" << bad;
      EXPECT_EQ(s.status().message(), m);
    }
    if (o.type == OptionDef::Type::kInt) {
      EXPECT_EQ(Err(o.name, std::to_string(o.max_value + 1)),
                o.name + " must be between " + std::to_string(o.min_value) + " and " + std::to_string(o.max_value) +
                    ", got " + std::to_string(o.max_value + 1));
      EXPECT_EQ(OptionValuesText(o),
                std::to_string(o.min_value) + "-" + std::to_string(o.max_value) + " " + o.unit);
    }
  }
}

// The flags spec section 6 fixes for set-db-backup / set-instance-backup, and the rules the CLI
// relies on: a flag for each option a verb takes, an off flag for a boolean, none for a
// test-only option (only --set reaches it, and only under tests).
TEST(SettingsTest, FlagsOfTheTable) {
  const std::map<std::string, std::string> fixed = {{"enabled", "--enable"},         {"storage_url", "--storage-url"},
                                                    {"retention_days", "--retention-days"}, {"mode", "--mode"},
                                                    {"key_file", "--key-file"}};
  for (const auto& [name, flag] : fixed) {
    ASSERT_NE(FindOption(name), nullptr) << name;
    EXPECT_EQ(FindOption(name)->flag, flag);
    EXPECT_TRUE(FindOption(name)->verbs & kSetBackupVerbs) << name;
  }
  EXPECT_EQ(FindOption("enabled")->off_flag, "--disable");
  EXPECT_TRUE(FindOption("retention_days")->verbs & kPurgeVerb);
  std::set<std::string> flags;
  for (const auto& o : ManagedOptions()) {
    EXPECT_EQ(o.verbs == 0, o.flag.empty()) << o.name;
    if (o.test_only) {
      EXPECT_EQ(o.verbs, 0u) << o.name;
    }
    if (!o.flag.empty()) {
      EXPECT_TRUE(flags.insert(o.flag).second) << "duplicate flag " << o.flag;
    }
    if (!o.off_flag.empty()) {
      EXPECT_TRUE(flags.insert(o.off_flag).second) << "duplicate flag " << o.off_flag;
    }
    if (o.type == OptionDef::Type::kBool && o.verbs != 0) {
      EXPECT_FALSE(o.off_flag.empty()) << o.name;
    }
  }
  EXPECT_EQ(OptionVerbNames(kSetBackupVerbs | kPurgeVerb),
            (std::vector<std::string>{"set-db-backup", "set-instance-backup", "purge"}));
}

TEST(SettingsTest, Bools) {
  EXPECT_EQ(Ok("enabled", "true"), "true");
  EXPECT_EQ(Ok("enabled", "ON"), "true");
  EXPECT_EQ(Ok("enabled", "yes"), "true");
  EXPECT_EQ(Ok("enabled", "1"), "true");
  EXPECT_EQ(Ok("enabled", " False "), "false");
  EXPECT_EQ(Ok("enabled", "off"), "false");
  EXPECT_EQ(Err("enabled", "maybe"), "enabled must be true or false, got \"maybe\"");
  EXPECT_EQ(Err("enabled", ""), "enabled must be true or false, got \"\"");
}

TEST(SettingsTest, RetentionDays) {
  EXPECT_EQ(Ok("retention_days", "1"), "1");
  EXPECT_EQ(Ok("retention_days", " 30 "), "30");
  EXPECT_EQ(Err("retention_days", "31"), "retention_days must be between 1 and 30, got 31");
  EXPECT_EQ(Err("retention_days", "0"), "retention_days must be between 1 and 30, got 0");
  EXPECT_EQ(Err("retention_days", "-3"), "retention_days must be between 1 and 30, got -3");
  EXPECT_EQ(Err("retention_days", "7d"), "retention_days must be an integer, got \"7d\"");
  EXPECT_EQ(Err("retention_days", ""), "retention_days must be an integer, got \"\"");
}

TEST(SettingsTest, StorageUrl) {
  EXPECT_EQ(Ok("storage_url", "file:///var/backups/x"), "file:///var/backups/x");
  EXPECT_EQ(Ok("storage_url", "azure://backups"), "azure://backups");
  EXPECT_EQ(Ok("storage_url", "azure://backups/pg/prod"), "azure://backups/pg/prod");
  EXPECT_EQ(Err("storage_url", "s3://bucket"),
            "storage_url \"s3://bucket\" is not supported; hint: use file:///absolute/path or "
            "azure://container[/prefix]");
  EXPECT_EQ(Err("storage_url", "file://relative"),
            "storage_url \"file://relative\" is not supported; hint: use file:///absolute/path or "
            "azure://container[/prefix]");
  EXPECT_EQ(Err("storage_url", "/var/backups"),
            "storage_url \"/var/backups\" is not supported; hint: use file:///absolute/path or "
            "azure://container[/prefix]");
  EXPECT_EQ(Err("storage_url", "azure://"),
            "storage_url \"azure://\" names no container; hint: use file:///absolute/path or "
            "azure://container[/prefix]");
  EXPECT_FALSE(ValidateOption("storage_url", "").ok());
}

TEST(SettingsTest, Mode) {
  EXPECT_EQ(Ok("mode", "stream"), "stream");
  EXPECT_EQ(Ok("mode", "Archive"), "archive");
  EXPECT_EQ(Err("mode", "push"), "mode must be stream or archive, got \"push\"");
}

TEST(SettingsTest, KeyFile) {
  EXPECT_EQ(Ok("key_file", "/etc/smartbackup/key"), "/etc/smartbackup/key");
  EXPECT_EQ(Ok("key_file", ""), "");
  EXPECT_EQ(Err("key_file", "keys/backup.key"),
            "key_file must be an absolute path, got \"keys/backup.key\"; hint: e.g. /etc/smartbackup/backup.key");
}

TEST(SettingsTest, DurationsAreKeptAsGivenButValidated) {
  EXPECT_EQ(Ok("full_max_age", "7d"), "7d");
  EXPECT_EQ(Ok("full_max_age", " 10s "), "10s");
  EXPECT_EQ(Ok("log_max_age", "500ms"), "500ms");
  EXPECT_EQ(Ok("flush_interval", "1s"), "1s");
  EXPECT_EQ(Ok("retention_unit", "1s"), "1s");
  EXPECT_EQ(Err("full_max_age", "0s"), "full_max_age must be greater than zero, got \"0s\"");
  EXPECT_EQ(Err("log_max_age", "0"), "log_max_age must be greater than zero, got \"0\"");
  EXPECT_EQ(Err("flush_interval", "soon"),
            "flush_interval: invalid duration \"soon\"; hint: use e.g. 10s, 5m, 2h or 7d");
  EXPECT_EQ(Err("retention_unit", "3 fortnights"),
            "retention_unit: invalid duration \"3 fortnights\": unknown unit \"fortnights\"");
  // log_frequency may be unset.
  EXPECT_EQ(Ok("log_frequency", ""), "");
  EXPECT_EQ(Ok("log_frequency", "none"), "");
  EXPECT_EQ(Ok("log_frequency", "15m"), "15m");
  EXPECT_EQ(Err("log_frequency", "0m"), "log_frequency must be greater than zero, got \"0m\"");
}

TEST(SettingsTest, ByteSizes) {
  EXPECT_EQ(Ok("full_max_wal", "1GiB"), "1GiB");
  EXPECT_EQ(Ok("log_max_wal", "1MiB"), "1MiB");
  EXPECT_EQ(Err("full_max_wal", "0"), "full_max_wal must be greater than zero, got \"0\"");
  EXPECT_EQ(Err("log_max_wal", "lots"), "log_max_wal: invalid byte size \"lots\"; hint: use e.g. 5MiB or 1GiB");
}

TEST(SettingsTest, FullSchedule) {
  EXPECT_EQ(Ok("full_schedule", "daily 01:00 2h"), "daily 01:00 2h");
  EXPECT_EQ(Ok("full_schedule", "Weekly  Sunday 1:30 90m"), "weekly sun 01:30 90m");
  EXPECT_EQ(Ok("full_schedule", ""), "");
  EXPECT_EQ(Ok("full_schedule", "none"), "");
  const std::string hint = "; hint: use e.g. daily 01:00 2h or weekly sun 01:00 2h";
  for (const std::string bad : {"x", "daily", "daily 25:00 2h", "daily 01:60 2h", "daily 1h 2h", "daily 01:00",
                                "daily 01:00 0h", "daily 01:00 25h", "daily 01:00 30s", "weekly 01:00 2h",
                                "weekly funday 01:00 2h", "weekly sun 01:00 8d", "monthly 1 01:00 2h",
                                "daily 01:00 2h extra", "daily 0100 2h", "daily :00 2h"}) {
    EXPECT_EQ(Err("full_schedule", bad), "invalid full_schedule \"" + bad + "\"" + hint);
  }
}

TEST(SettingsTest, ScheduleRoundTrip) {
  for (const std::string text : {"daily 00:00 1h", "daily 23:59 1m", "daily 01:00 2h", "daily 06:15 12h", "weekly thu 00:00 1d",
                                 "weekly sun 01:00 2h", "weekly mon 12:30 90m", "weekly sat 22:00 7d"}) {
    auto s = ParseFullSchedule(text);
    ASSERT_TRUE(s.ok()) << text << ": " << s.status().message();
    EXPECT_EQ(FormatFullSchedule(*s), text);
  }
  auto s = ParseFullSchedule("weekly wed 03:45 3h");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->frequency, FullSchedule::Frequency::kWeekly);
  EXPECT_EQ(s->weekday, 3);
  EXPECT_EQ(s->window_start, std::chrono::minutes(3 * 60 + 45));
  EXPECT_EQ(s->window_length, std::chrono::minutes(180));
  auto d = ParseFullSchedule("daily 01:00 2h");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->frequency, FullSchedule::Frequency::kDaily);
  EXPECT_EQ(d->window_start, std::chrono::minutes(60));
  EXPECT_EQ(d->window_length, std::chrono::minutes(120));
  EXPECT_FALSE(ParseFullSchedule("").ok());
}

TEST(SettingsTest, UnknownSetting) {
  auto r = ValidateOption("retention", "7");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "unknown setting \"retention\"; hint: one of enabled, storage_url, retention_days, mode, key_file, public_key, "
            "full_max_age, full_max_wal, log_max_age, log_max_wal, full_schedule, log_frequency, flush_interval, "
            "retention_unit, drill_enabled, drill_interval, drill_scratch_dir, drill_free_space_reserve, drill_target, "
            "drill_check_sql");
  Status s = ValidateSettings({{"retention_days", "7"}, {"retenton_days", "7"}});
  EXPECT_EQ(s.message().rfind("unknown setting \"retenton_days\"; hint: one of enabled, ", 0), 0u) << s.message();
}

TEST(SettingsTest, ValidateSettingsChecksEveryValue) {
  EXPECT_TRUE(ValidateSettings({}).ok());
  EXPECT_TRUE(ValidateSettings({{"enabled", "true"}, {"retention_days", "30"}, {"mode", "archive"}}).ok());
  EXPECT_EQ(ValidateSettings({{"enabled", "true"}, {"retention_days", "31"}}).message(),
            "retention_days must be between 1 and 30, got 31");
  auto c = CanonicalizeSettings({{"enabled", "ON"}, {"mode", "STREAM"}, {"full_schedule", "weekly Sunday 1:00 2h"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, (PartialSettings{{"enabled", "true"}, {"mode", "stream"}, {"full_schedule", "weekly sun 01:00 2h"}}));
}

TEST(SettingsTest, ResolveBuiltInDefaults) {
  ClusterSettings s = ResolveSettings({}, {});
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(s.storage_url, "file:///var/backups/smartbackup");
  EXPECT_EQ(s.retention_days, 7);
  EXPECT_EQ(s.mode, WalMode::kStream);
  EXPECT_EQ(s.key_file, "");
  EXPECT_EQ(s.full_max_age, std::chrono::hours(24 * 7));
  EXPECT_EQ(s.full_max_wal, 1ull << 30);
  EXPECT_EQ(s.log_max_age, 2h);
  EXPECT_EQ(s.log_max_wal, 5ull << 20);
  EXPECT_FALSE(s.full_schedule.has_value());
  EXPECT_FALSE(s.log_frequency.has_value());
  EXPECT_EQ(s.flush_interval, 5s);
  EXPECT_EQ(s.retention_unit, 24h);
}

TEST(SettingsTest, ResolvePrecedence) {
  const PartialSettings defaults = {{"enabled", "true"},          {"retention_days", "14"},
                                    {"storage_url", "azure://bk"}, {"full_max_age", "10s"},
                                    {"full_max_wal", "1MiB"},      {"full_schedule", "daily 01:00 2h"},
                                    {"retention_unit", "1s"}};
  const PartialSettings overrides = {{"retention_days", "3"},
                                     {"mode", "archive"},
                                     {"full_schedule", ""},
                                     {"log_frequency", "15m"},
                                     {"key_file", "/etc/sb.key"},
                                     {"log_max_wal", "2MiB"},
                                     {"log_max_age", "30s"},
                                     {"flush_interval", "500ms"}};
  ClusterSettings s = ResolveSettings(defaults, overrides);
  EXPECT_TRUE(s.enabled);                      // defaults
  EXPECT_EQ(s.retention_days, 3);              // override beats defaults
  EXPECT_EQ(s.storage_url, "azure://bk");      // defaults
  EXPECT_EQ(s.mode, WalMode::kArchive);                // override over built-in
  EXPECT_EQ(s.full_max_age, 10s);
  EXPECT_EQ(s.full_max_wal, 1ull << 20);
  EXPECT_FALSE(s.full_schedule.has_value());   // override unsets the default's schedule
  EXPECT_EQ(s.log_frequency, std::chrono::milliseconds(15min));
  EXPECT_EQ(s.key_file, "/etc/sb.key");
  EXPECT_EQ(s.log_max_wal, 2ull << 20);
  EXPECT_EQ(s.log_max_age, 30s);
  EXPECT_EQ(s.flush_interval, 500ms);
  EXPECT_EQ(s.retention_unit, 1s);

  ClusterSettings d = ResolveSettings(defaults, {});
  ASSERT_TRUE(d.full_schedule.has_value());
  EXPECT_EQ(FormatFullSchedule(*d.full_schedule), "daily 01:00 2h");
  EXPECT_EQ(d.retention_days, 14);
  EXPECT_EQ(d.mode, WalMode::kStream);  // built-in

  ClusterSettings o = ResolveSettings({}, {{"enabled", "false"}, {"retention_days", "30"}});
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.retention_days, 30);
  // An override disables what defaults enabled.
  EXPECT_FALSE(ResolveSettings({{"enabled", "true"}}, {{"enabled", "false"}}).enabled);
}

TEST(SettingsTest, ResolveIgnoresInvalidValues) {
  ClusterSettings s = ResolveSettings({{"retention_days", "12"}}, {{"retention_days", "99"}, {"mode", "push"}});
  EXPECT_EQ(s.retention_days, 12);
  EXPECT_EQ(s.mode, WalMode::kStream);
}

TEST(SettingsTest, ToPartialRoundTrips) {
  ClusterSettings s;
  s.enabled = true;
  s.storage_url = "azure://c/p";
  s.retention_days = 2;
  s.mode = WalMode::kArchive;
  s.key_file = "/k";
  s.full_max_age = 10s;
  s.full_max_wal = 3ull << 20;
  s.log_max_age = 1500ms;
  s.log_max_wal = 12345;
  s.full_schedule = ParseFullSchedule("weekly fri 23:00 4h").value();
  s.log_frequency = 5min;
  s.flush_interval = 1s;
  s.retention_unit = 1s;
  PartialSettings p = ToPartial(s);
  EXPECT_EQ(p.at("enabled"), "true");
  EXPECT_EQ(p.at("full_max_wal"), "3MiB");
  EXPECT_EQ(p.at("log_max_wal"), "12345");
  EXPECT_EQ(p.at("log_max_age"), "1500ms");
  EXPECT_EQ(p.at("full_schedule"), "weekly fri 23:00 4h");
  EXPECT_EQ(p.at("log_frequency"), "5m");
  EXPECT_TRUE(ValidateSettings(p).ok()) << ValidateSettings(p).message();
  ClusterSettings back = ResolveSettings({}, p);
  EXPECT_EQ(ToPartial(back), p);
}

// Outside tests (no SMARTBACKUP_TESTING=1) the test-only retention_unit is refused wherever a value
// is validated (config file, API, verbs all call ValidateOption), and a stored value does not apply:
// it would make "retention_days = 7" mean seven seconds in production.
class NotUnderTests : public ::testing::Test {
 protected:
  void SetUp() override { ::unsetenv("SMARTBACKUP_TESTING"); }
  void TearDown() override { ::setenv("SMARTBACKUP_TESTING", "1", 1); }
};

TEST_F(NotUnderTests, RetentionUnitIsRefused) {
  EXPECT_FALSE(TestOnlyOptionsAllowed());
  EXPECT_EQ(Err("retention_unit", "1s"),
            "setting \"retention_unit\" is for tests only and is refused outside them; hint: remove it (tests set "
            "SMARTBACKUP_TESTING=1)");
  EXPECT_FALSE(ValidateSettings({{"retention_unit", "1s"}}).ok());
  // The default may be fed back (db-config lists every option).
  EXPECT_EQ(Ok("retention_unit", "1d"), "1d");
  // A value saved earlier does not shorten retention.
  EXPECT_EQ(ResolveSettings({{"retention_unit", "1s"}}, {}).retention_unit, std::chrono::hours(24));
  ::setenv("SMARTBACKUP_TESTING", "0", 1);
  EXPECT_FALSE(ValidateOption("retention_unit", "1s").ok());
}

TEST(SettingsTest, RetentionUnitIsAcceptedUnderTests) {
  EXPECT_TRUE(TestOnlyOptionsAllowed());
  EXPECT_EQ(Ok("retention_unit", "1s"), "1s");
  EXPECT_EQ(ResolveSettings({{"retention_unit", "1s"}}, {}).retention_unit, std::chrono::seconds(1));
}

}  // namespace
}  // namespace sb
