// The agent's TOML config file: the example of spec section 6, inheritance
// of [defaults] by [[cluster]] entries, and one clear error line (file and
// line) for every kind of mistake.
#include "agent/agent_config.h"
#include "support/option_samples.h"
#include "support/testing_env.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace sb {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSpecExample = R"toml(
[agent]
state_dir = "/var/lib/smartbackup"        # SQLite state, spool
socket    = "/run/smartbackup/agent.sock" # local API
discover  = true                          # pick up the host's clusters (/etc/postgresql/*/*)

[defaults]                                # instance defaults, applied to clusters found later
enabled        = false
storage_url    = "file:///var/backups/smartbackup"
retention_days = 7
mode           = "stream"                 # or "archive"
full_max_age   = "7d"                     # thresholds, spec section 3; small values ("10s",
full_max_wal   = "1GiB"                   # "1MiB") are allowed so tests run in seconds
log_max_age    = "2h"
log_max_wal    = "5MiB"

[[cluster]]
name     = "main"
conninfo = "host=/var/run/postgresql port=5432 user=smartbackup"
# any [defaults] key may be overridden here
)toml";

std::string ParseError(const std::string& text) {
  auto r = ParseAgentConfig(text, "/etc/smartbackup/agent.toml");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "not one line: " << r.status().message();
  return r.status().message();
}

TEST(AgentConfigTest, SpecExampleParses) {
  auto r = ParseAgentConfig(kSpecExample, "agent.toml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const AgentConfig& c = *r;
  EXPECT_EQ(c.path, "agent.toml");
  EXPECT_EQ(c.state_dir, "/var/lib/smartbackup");
  EXPECT_EQ(c.socket, "/run/smartbackup/agent.sock");
  EXPECT_TRUE(c.discover);
  EXPECT_EQ(c.discover_root, "/etc/postgresql");
  EXPECT_EQ(c.max_parallel_fulls, 10);
  EXPECT_EQ(c.loop_interval, 10s);
  EXPECT_EQ(c.defaults, (PartialSettings{{"enabled", "false"},
                                         {"storage_url", "file:///var/backups/smartbackup"},
                                         {"retention_days", "7"},
                                         {"mode", "stream"},
                                         {"full_max_age", "7d"},
                                         {"full_max_wal", "1GiB"},
                                         {"log_max_age", "2h"},
                                         {"log_max_wal", "5MiB"}}));
  ASSERT_EQ(c.clusters.size(), 1u);
  EXPECT_EQ(c.clusters[0].name, "main");
  EXPECT_EQ(c.clusters[0].conninfo, "host=/var/run/postgresql port=5432 user=smartbackup");
  EXPECT_TRUE(c.clusters[0].overrides.empty());
}

TEST(AgentConfigTest, EmptyFileGivesBuiltInDefaults) {
  auto r = ParseAgentConfig("", "empty.toml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->state_dir, "/var/lib/smartbackup");
  EXPECT_TRUE(r->defaults.empty());
  EXPECT_TRUE(r->clusters.empty());
}

TEST(AgentConfigTest, AllAgentKeysAndClusterOverridesInheritDefaults) {
  auto r = ParseAgentConfig(R"toml(
[agent]
state_dir = "/tmp/sb"
socket = "/tmp/sb/agent.sock"
discover = false
discover_root = "/srv/pg"
max_parallel_fulls = 2
loop_interval = "1s"

[defaults]
enabled = true
retention_days = 3
full_max_age = "10s"
full_max_wal = "1MiB"
full_schedule = "weekly sun 01:00 2h"
retention_unit = "1s"
flush_interval = 1

[[cluster]]
name = "main"
conninfo = "port=5432"
retention_days = 5
mode = "archive"
full_schedule = ""

[[cluster]]
name = "reports_2"
conninfo = "port=5433"
enabled = false
key_file = "/etc/smartbackup/reports.key"
log_frequency = "15m"
)toml",
                            "t.toml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->state_dir, "/tmp/sb");
  EXPECT_EQ(r->socket, "/tmp/sb/agent.sock");
  EXPECT_FALSE(r->discover);
  EXPECT_EQ(r->discover_root, "/srv/pg");
  EXPECT_EQ(r->max_parallel_fulls, 2);
  EXPECT_EQ(r->loop_interval, 1s);
  EXPECT_EQ(r->defaults.at("enabled"), "true");
  EXPECT_EQ(r->defaults.at("retention_days"), "3");
  EXPECT_EQ(r->defaults.at("flush_interval"), "1");
  ASSERT_EQ(r->clusters.size(), 2u);

  const ClusterEntry& main = r->clusters[0];
  EXPECT_EQ(main.overrides,
            (PartialSettings{{"retention_days", "5"}, {"mode", "archive"}, {"full_schedule", ""}}));
  ClusterSettings m = ResolveSettings(r->defaults, main.overrides);
  EXPECT_TRUE(m.enabled);                    // inherited
  EXPECT_EQ(m.retention_days, 5);            // own
  EXPECT_EQ(m.mode, WalMode::kArchive);              // own
  EXPECT_EQ(m.full_max_age, 10s);            // inherited
  EXPECT_EQ(m.full_max_wal, 1ull << 20);     // inherited
  EXPECT_FALSE(m.full_schedule.has_value()); // own "" unsets the inherited schedule
  EXPECT_EQ(m.retention_unit, 1s);           // inherited
  EXPECT_EQ(m.flush_interval, 1s);           // inherited (bare number = seconds)
  EXPECT_EQ(m.log_max_age, 2h);              // built-in

  ClusterSettings rep = ResolveSettings(r->defaults, r->clusters[1].overrides);
  EXPECT_FALSE(rep.enabled);
  EXPECT_EQ(rep.retention_days, 3);
  EXPECT_EQ(rep.key_file, "/etc/smartbackup/reports.key");
  EXPECT_EQ(rep.log_frequency, std::chrono::milliseconds(15min));
  ASSERT_TRUE(rep.full_schedule.has_value());
  EXPECT_EQ(FormatFullSchedule(*rep.full_schedule), "weekly sun 01:00 2h");
}

TEST(AgentConfigTest, UnknownKeys) {
  EXPECT_EQ(ParseError("[agent]\nstate_dir = \"/x\"\nsockett = \"/y\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 3: unknown key \"sockett\" in [agent]; hint: one of "
            "state_dir, socket, discover, discover_root, max_parallel_fulls, loop_interval, http_listen");
  std::string m = ParseError("[defaults]\nenabled = true\nretention = 7\n");
  EXPECT_EQ(m.rfind("config file \"/etc/smartbackup/agent.toml\" line 3: unknown key \"retention\" in [defaults]; "
                    "hint: one of enabled, storage_url, retention_days",
                    0),
            0u)
      << m;
  m = ParseError("[[cluster]]\nname = \"main\"\nconninfo = \"port=5432\"\nretention_dayz = 3\n");
  EXPECT_EQ(m.rfind("config file \"/etc/smartbackup/agent.toml\" line 4: unknown key \"retention_dayz\" in "
                    "[[cluster]] \"main\"; hint: one of conninfo, name, enabled, ",
                    0),
            0u)
      << m;
  m = ParseError("[agents]\nstate_dir = \"/x\"\n");
  EXPECT_EQ(m, "config file \"/etc/smartbackup/agent.toml\" line 1: unknown table or key \"agents\" at the top "
               "level; hint: one of [agent], [defaults], [[cluster]]");
  m = ParseError("enabled = true\n");
  EXPECT_NE(m.find("line 1: unknown table or key \"enabled\" at the top level"), std::string::npos) << m;
}

// toml++ 3.3.0 reaches __builtin_unreachable (undefined behaviour) for some
// non-ASCII code points where it looks for whitespace; the parser refuses
// those bytes outside strings before toml++ reads them, and keeps them in
// strings and comments (a password with an accent is fine).
TEST(AgentConfigTest, NonAsciiOutsideAStringIsRefusedInOneLine) {
  std::string m = ParseError("[agent]\n\xc2\xa1state_dir = \"/x\"\n");
  EXPECT_EQ(m.rfind("config file \"/etc/smartbackup/agent.toml\" line 2: non-ASCII character outside a string", 0),
            0u)
      << m;
  EXPECT_NE(ParseError("[agent]\nstate_dir = \"\"\"a\\\n\xc2\xa1 b\"\"\"\n").find("line 3: non-ASCII"),
            std::string::npos);
  // A quote inside a bare value does not open a string (toml++ scans the
  // value for a terminator there, found by fuzz_agent_config).
  EXPECT_NE(ParseError("t5=4ot\"\xc9\x90t\"53").find("line 1: non-ASCII"), std::string::npos);
  EXPECT_NE(ParseError(std::string("t5=4\x01$\x13='''r\x01\xef\xb2\xbf" "7", 16)).find("line 1: non-ASCII"),
            std::string::npos);
  auto ok = ParseAgentConfig("# caf\xc3\xa9 \xc2\xa1\n[[cluster]]\nname = \"main\"\nconninfo = \"password=caf\xc3\xa9\"\n",
                             "/etc/smartbackup/agent.toml");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->clusters.at(0).conninfo, "password=caf\xc3\xa9");
}

// Messages quote names and values from the file; a TOML escape may put a
// newline in one (found by fuzz_agent_config): the error stays one line.
TEST(AgentConfigTest, AQuotedNameWithANewlineGivesAOneLineError) {
  std::string m = ParseError("[[cluster]]\nname = \"m\\nt\"\nconninfo = \"port=5432\"\n");
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_NE(m.find("invalid [[cluster]] name \"m\\nt\""), std::string::npos) << m;
  m = ParseError("[agent]\n\"state\\ndir\" = \"/x\"\n");
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(AgentConfigTest, BadRetention) {
  EXPECT_EQ(ParseError("[defaults]\nretention_days = 0\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults]: retention_days must be between 1 and "
            "30, got 0");
  EXPECT_EQ(ParseError("[[cluster]]\nname = \"main\"\nconninfo = \"\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 3: [[cluster]] \"main\" conninfo must not be empty");
  EXPECT_EQ(ParseError("\n[[cluster]]\nname = \"main\"\nconninfo = \"port=1\"\nretention_days = 31\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 5: [[cluster]] \"main\": retention_days must be between "
            "1 and 30, got 31");
  EXPECT_EQ(ParseError("[defaults]\nretention_days = true\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults] retention_days must be an integer, got a "
            "boolean");
}

TEST(AgentConfigTest, BadValues) {
  EXPECT_EQ(ParseError("[defaults]\nmode = \"push\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults]: mode must be stream or archive, got "
            "\"push\"");
  EXPECT_EQ(ParseError("[defaults]\nfull_schedule = \"monthly 01:00\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults]: invalid full_schedule \"monthly 01:00\"; "
            "hint: use e.g. daily 01:00 2h or weekly sun 01:00 2h");
  EXPECT_EQ(ParseError("[defaults]\nenabled = \"maybe\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults]: enabled must be true or false, got "
            "\"maybe\"");
  EXPECT_EQ(ParseError("[defaults]\nstorage_url = \"s3://b\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults]: storage_url \"s3://b\" is not "
            "supported; hint: use file:///absolute/path or azure://container[/prefix]");
  EXPECT_EQ(ParseError("[defaults]\nfull_max_wal = 1.5\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults] full_max_wal must be a string such as "
            "\"5MiB\", got a float");
  EXPECT_EQ(ParseError("[defaults]\nmode = 3\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [defaults] mode must be a string, got an integer");
  EXPECT_EQ(ParseError("[agent]\nmax_parallel_fulls = 0\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [agent] max_parallel_fulls must be between 1 and "
            "100, got 0");
  EXPECT_EQ(ParseError("[agent]\nmax_parallel_fulls = 101\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [agent] max_parallel_fulls must be between 1 and "
            "100, got 101");
  EXPECT_EQ(ParseError("[agent]\nloop_interval = \"often\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [agent] loop_interval: invalid duration \"often\"; "
            "hint: use e.g. 10s, 5m, 2h or 7d");
  EXPECT_EQ(ParseError("[agent]\ndiscover = \"yes\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: [agent] discover must be true or false, got a string");
  EXPECT_EQ(ParseError("agent = 3\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 1: \"agent\" must be a table: [agent]");
  EXPECT_EQ(ParseError("[cluster]\nname = \"x\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 1: \"cluster\" must be an array of tables: [[cluster]]");
}

TEST(AgentConfigTest, Clusters) {
  EXPECT_EQ(ParseError("[[cluster]]\nname = \"main\"\nconninfo = \"port=1\"\n\n[[cluster]]\nname = \"main\"\n"
                       "conninfo = \"port=2\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 5: duplicate [[cluster]] name \"main\"; hint: each "
            "cluster needs its own name");
  EXPECT_EQ(ParseError("[[cluster]]\nname = \"main\"\nmode = \"stream\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 1: [[cluster]] \"main\" has no conninfo; hint: add "
            "e.g. conninfo = \"host=/var/run/postgresql port=5432 user=smartbackup\"");
  EXPECT_EQ(ParseError("[[cluster]]\nconninfo = \"port=1\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 1: [[cluster]] has no name; hint: add name = \"main\"");
  EXPECT_EQ(ParseError("[[cluster]]\nname = \"bad/name\"\nconninfo = \"port=1\"\n"),
            "config file \"/etc/smartbackup/agent.toml\" line 2: invalid [[cluster]] name \"bad/name\"; hint: use "
            "1-63 letters, digits, '_', '-' or '.'");
  EXPECT_NE(ParseError("[[cluster]]\nname = \"" + std::string(64, 'a') + "\"\nconninfo = \"port=1\"\n")
                .find("invalid [[cluster]] name"),
            std::string::npos);
  EXPECT_NE(ParseError("[[cluster]]\nname = \"\"\nconninfo = \"port=1\"\n").find("invalid [[cluster]] name \"\""),
            std::string::npos);
  auto ok = ParseAgentConfig("[[cluster]]\nname = \"a.b-C_9\"\nconninfo = \"port=1\"\n", "x");
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

TEST(AgentConfigTest, SyntaxErrorIsOneLineWithLineNumber) {
  std::string m = ParseError("[agent]\nstate_dir = \"/x\"\nsocket = \n");
  EXPECT_EQ(m.rfind("config file \"/etc/smartbackup/agent.toml\" line 3: ", 0), 0u) << m;
  m = ParseError("[agent]\n[agent]\n");
  EXPECT_EQ(m.rfind("config file \"/etc/smartbackup/agent.toml\" line 2: ", 0), 0u) << m;
  m = ParseError("[defaults]\nenabled = tru\n");
  EXPECT_EQ(m, "config file \"/etc/smartbackup/agent.toml\" line 2: error while parsing boolean: expected 'true', "
               "saw 'tru\\n'");
}

TEST(AgentConfigTest, LoadFromFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("sb_agent_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "agent.toml").string();
  {
    std::ofstream out(path);
    out << kSpecExample;
  }
  auto r = LoadAgentConfig(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->path, path);
  EXPECT_EQ(r->clusters.size(), 1u);

  const std::string missing = (dir / "missing.toml").string();
  auto m = LoadAgentConfig(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(), "config file \"" + missing +
                                      "\" does not exist; hint: create it (see README for an example) or pass "
                                      "--config FILE");
  auto d = LoadAgentConfig(dir.string());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("is a directory"), std::string::npos);
  {
    std::ofstream out(path);
    out << "[defaults]\nretention_days = 31\n";
  }
  auto bad = LoadAgentConfig(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "config file \"" + path +
                                        "\" line 2: [defaults]: retention_days must be between 1 and 30, got 31");
  std::filesystem::remove_all(dir);
}

// Every row of the option table is a key of [defaults] and [[cluster]]: a value is read with the
// same canonical text as ValidateOption gives it, and a bad one is refused with ValidateOption's
// own message after the file, line and table.
TEST(AgentConfigTest, EveryOptionParsesWithTheTablesChecks) {
  const std::string file = "/etc/smartbackup/agent.toml";
  for (const auto& o : ManagedOptions()) {
    const std::string sample = test::SampleValue(o);
    auto d = ParseAgentConfig("[defaults]\n" + o.name + " = \"" + sample + "\"\n", file);
    ASSERT_TRUE(d.ok()) << o.name << ": " << d.status().message();
    EXPECT_EQ(d->defaults, (PartialSettings{{o.name, sample}}));
    auto c = ParseAgentConfig("[[cluster]]\nname = \"main\"\nconninfo = \"port=1\"\n" + o.name + " = \"" + sample +
                                  "\"\n",
                              file);
    ASSERT_TRUE(c.ok()) << o.name << ": " << c.status().message();
    EXPECT_EQ(c->clusters.at(0).overrides, (PartialSettings{{o.name, sample}}));
    EXPECT_EQ(ToPartial(ResolveSettings({}, c->clusters.at(0).overrides)).at(o.name), sample);
    for (const auto& bad : test::BadValues(o)) {
      const std::string expected = ValidateOption(o.name, bad).status().message();
      ASSERT_FALSE(expected.empty()) << o.name << "=" << bad;
      EXPECT_EQ(ParseError("[defaults]\n" + o.name + " = \"" + bad + "\"\n"),
                "config file \"" + file + "\" line 2: [defaults]: " + expected);
      EXPECT_EQ(ParseError("[[cluster]]\nname = \"main\"\nconninfo = \"port=1\"\n" + o.name + " = \"" + bad + "\"\n"),
                "config file \"" + file + "\" line 4: [[cluster]] \"main\": " + expected);
    }
  }
  // Integers as TOML integers too, with the same range.
  const OptionDef* days = FindOption("retention_days");
  EXPECT_EQ(ParseError("[defaults]\nretention_days = " + std::to_string(days->max_value + 1) + "\n"),
            "config file \"" + file + "\" line 2: [defaults]: " +
                ValidateOption("retention_days", std::to_string(days->max_value + 1)).status().message());
}

TEST(AgentConfigTest, TestOnlyRetentionUnitRefusedOutsideTests) {
  ::unsetenv("SMARTBACKUP_TESTING");
  auto r = ParseAgentConfig("[defaults]\nretention_unit = \"1s\"\n", "t.toml");
  auto c = ParseAgentConfig("[[cluster]]\nname = \"main\"\nconninfo = \"port=5432\"\nretention_unit = \"1s\"\n",
                            "t.toml");
  ::setenv("SMARTBACKUP_TESTING", "1", 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"retention_unit\" is for tests only"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(ParseAgentConfig("[defaults]\nretention_unit = \"1s\"\n", "t.toml").ok());
}

}  // namespace
}  // namespace sb
