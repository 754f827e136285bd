// The CLI flags generated from the option table: each verb takes exactly the
// options whose row names it, a flag accepts what the config file and the
// API accept (canonical text), and a bad value is a usage error whose message
// is ValidateOption's own, after the flag's name.
#include "cli/option_flags.h"
#include "support/option_samples.h"
#include "support/testing_env.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb {
namespace {

struct Parsed {
  PartialSettings values;
  std::string error;  // empty when the command line parsed
};

Parsed Parse(OptionVerb verb, const std::vector<std::string>& args) {
  CLI::App app{"test"};
  Parsed out;
  AddOptionFlags(&app, verb, &out.values);
  if (verb == kSetBackupVerbs) AddSetFlag(&app, &out.values);
  std::vector<const char*> argv = {"test"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    out.error = e.what();
  }
  return out;
}

constexpr OptionVerb kVerbs[] = {kSetBackupVerbs, kPurgeVerb, kStreamVerb, kWalPushVerb};

TEST(OptionFlagsTest, EveryVerbTakesItsOptionsWithTheTablesChecks) {
  for (OptionVerb verb : kVerbs) {
    for (const auto& o : ManagedOptions()) {
      if (o.flag.empty()) continue;
      const bool takes = (o.verbs & verb) != 0;
      if (o.type == OptionDef::Type::kBool) {
        Parsed on = Parse(verb, {o.flag});
        Parsed off = Parse(verb, {o.off_flag});
        if (!takes) {
          EXPECT_FALSE(on.error.empty()) << o.flag << " on verb " << verb;
          continue;
        }
        EXPECT_EQ(on.values, (PartialSettings{{o.name, "true"}})) << on.error;
        EXPECT_EQ(off.values, (PartialSettings{{o.name, "false"}})) << off.error;
        EXPECT_FALSE(Parse(verb, {o.flag, o.off_flag}).error.empty()) << o.flag << " and " << o.off_flag;
        continue;
      }
      const std::string sample = test::SampleValue(o);
      Parsed p = Parse(verb, {o.flag, sample});
      if (!takes) {
        EXPECT_FALSE(p.error.empty()) << o.flag << " on verb " << verb;
        continue;
      }
      EXPECT_EQ(p.error, "");
      EXPECT_EQ(p.values, (PartialSettings{{o.name, sample}})) << o.flag;
      auto s = SettingsFrom(p.values);
      ASSERT_TRUE(s.ok()) << s.status().message();
      EXPECT_EQ(ToPartial(*s).at(o.name), sample);
      for (const auto& bad : test::BadValues(o)) {
        Parsed b = Parse(verb, {o.flag, bad});
        EXPECT_EQ(b.error, o.flag + ": " + ValidateOption(o.name, bad).status().message());
        EXPECT_TRUE(b.values.empty());
      }
    }
  }
}

// Canonical text: "Archive" is sent as "archive", " 7" as "7", as the agent would store them.
TEST(OptionFlagsTest, ValuesAreCanonical) {
  EXPECT_EQ(Parse(kSetBackupVerbs, {"--mode", "Archive", "--retention-days", " 7"}).values,
            (PartialSettings{{"mode", "archive"}, {"retention_days", "7"}}));
  // Not given: not sent, so the agent keeps what it has; a verb's own use takes the table's default.
  Parsed none = Parse(kStreamVerb, {});
  EXPECT_TRUE(none.values.empty());
  EXPECT_EQ(SettingsFrom(none.values)->flush_interval, ClusterSettings{}.flush_interval);
}

TEST(OptionFlagsTest, SetTakesEveryOptionWithTheSameChecks) {
  for (const auto& o : ManagedOptions()) {
    const std::string sample = test::SampleValue(o);
    Parsed p = Parse(kSetBackupVerbs, {"--set", o.name + "=" + sample});
    EXPECT_EQ(p.error, "") << o.name;
    EXPECT_EQ(p.values, (PartialSettings{{o.name, sample}}));
    for (const auto& bad : test::BadValues(o)) {
      EXPECT_EQ(Parse(kSetBackupVerbs, {"--set", o.name + "=" + bad}).error,
                "--set: " + ValidateOption(o.name, bad).status().message());
    }
  }
  EXPECT_EQ(Parse(kSetBackupVerbs, {"--set", "retention_days"}).error,
            "--set: --set takes KEY=VALUE, got \"retention_days\"");
  EXPECT_EQ(Parse(kSetBackupVerbs, {"--set", "retention=7"}).error,
            "--set: " + ValidateOption("retention", "7").status().message());
  EXPECT_EQ(Parse(kSetBackupVerbs, {"--set", "mode=archive", "--set", "log_frequency=none"}).values,
            (PartialSettings{{"mode", "archive"}, {"log_frequency", ""}}));
}

// The fixed surface of spec section 6 stays: these exact flags on the set verbs.
TEST(OptionFlagsTest, SpecFlagsOfTheSetVerbs) {
  Parsed p = Parse(kSetBackupVerbs, {"--enable", "--storage-url", "file:///srv/b", "--retention-days", "30", "--mode",
                                     "archive", "--key-file", "/etc/k"});
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.values, (PartialSettings{{"enabled", "true"},
                                       {"storage_url", "file:///srv/b"},
                                       {"retention_days", "30"},
                                       {"mode", "archive"},
                                       {"key_file", "/etc/k"}}));
  EXPECT_EQ(Parse(kPurgeVerb, {"--retention-days", "31"}).error,
            "--retention-days: retention_days must be between 1 and 30, got 31");
}

}  // namespace
}  // namespace sb
