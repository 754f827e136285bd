// The recovery settings a restore writes, read back the way the restored
// server reads them: PostgreSQL's own config parser (`postgres -C`, run as
// the postgres user) and then /bin/sh running the parsed restore_command
// against a stub binary that records its arguments. Values full of quoting
// traps must arrive verbatim with no injected command run; values that cannot
// be quoted (control characters) and repository text that would add a
// setting are refused or left out.
#include "engine/restore/recovery_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/pg_cluster.h"

namespace sb {
namespace {

namespace fs = std::filesystem;
using test::CommandResult;
using test::RunAsPostgres;
using test::RunCommand;
using test::ShellQuote;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

class RecoveryConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeTempDirForPostgres("recovery-conf");
    pgdata_ = dir_ + "/pgdata";
    fs::create_directory(pgdata_);
    std::ofstream(pgdata_ + "/postgresql.conf") << "# empty\n";
    // The stub's own name needs quoting too.
    stub_ = dir_ + "/bin dir/smart'backup";
    fs::create_directory(dir_ + "/bin dir");
    std::ofstream(stub_) << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$(dirname \"$0\")/argv\"\n";
    fs::permissions(stub_, fs::perms(0755));
  }
  void TearDown() override { test::RemoveTree(dir_); }

  // What `postgres -C NAME` reads from pgdata_, as the server would.
  std::string PgSetting(const std::string& name) {
    RunCommand("chown -R postgres " + ShellQuote(dir_));
    CommandResult r =
        RunAsPostgres(test::PgBinDir() + "/postgres -D " + ShellQuote(pgdata_) + " -C " + name + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return Trimmed(r.out);
  }

  std::vector<std::string> RunParsedRestoreCommand(const RestoreOptions& o, uint64_t sysid);

  RestoreOptions Options() {
    RestoreOptions o;
    o.smartbackup_path = stub_;
    o.database = "main";
    o.target.kind = RecoveryTarget::Kind::kLatest;
    return o;
  }

  std::string dir_, pgdata_, stub_;
};

// Writes the settings for `o`, reads restore_command back through PostgreSQL
// and runs it through /bin/sh; returns the arguments the stub received.
std::vector<std::string> RecoveryConfigTest::RunParsedRestoreCommand(const RestoreOptions& o, uint64_t sysid) {
  fs::remove(pgdata_ + "/postgresql.auto.conf");
  fs::remove(dir_ + "/bin dir/argv");
  EXPECT_TRUE(WriteRecoveryConfig(pgdata_, sysid, "20261130T065000Z-F", o).ok());
  EXPECT_TRUE(fs::exists(pgdata_ + "/recovery.signal"));
  // PostgreSQL's parser yields the command as composed.
  const std::string command = PgSetting("restore_command");
  EXPECT_EQ(command, RestoreCommand(o, sysid));
  // The shell hands every argument over unchanged, as PostgreSQL would run it.
  // PostgreSQL's substitution (BuildRestoreCommand): %f, %p, %r and %%
  // anywhere in the string; any other %x is kept as it is.
  std::string run;
  for (size_t i = 0; i < command.size(); ++i) {
    const char next = i + 1 < command.size() ? command[i + 1] : '\0';
    if (command[i] != '%' || (next != 'f' && next != 'p' && next != 'r' && next != '%')) {
      run.push_back(command[i]);
      continue;
    }
    run += next == 'f' ? "000000010000000000000002" : next == 'p' ? "pg_wal/RECOVERYXLOG" : next == 'r' ? "0" : "%";
    ++i;
  }
  CommandResult r = RunCommand("cd " + ShellQuote(dir_) + " && /bin/sh -c " + ShellQuote(run));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> argv;
  std::string all = ReadFile(dir_ + "/bin dir/argv");
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\0', at);
    argv.push_back(all.substr(at, end - at));
    at = end + 1;
  }
  return argv;
}

// A restore names the segment size (wal-get's bounded lookup) and the prefetch depth.
TEST_F(RecoveryConfigTest, SegmentSizeAndPrefetchReachWalGet) {
  const uint64_t sysid = 7300000000000000002ull;
  RestoreOptions o = Options();
  o.repo_url = "file:///srv/repo";
  o.wal_segment_size = 16ull << 20;
  EXPECT_EQ(RunParsedRestoreCommand(o, sysid),
            (std::vector<std::string>{"wal-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG", "--repo",
                                      o.repo_url, "--db", "main", "--sysid", std::to_string(sysid),
                                      "--wal-segment-size", "16777216", "--prefetch", "8"}));
  o.prefetch_depth = 0;
  EXPECT_EQ(RunParsedRestoreCommand(o, sysid),
            (std::vector<std::string>{"wal-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG", "--repo",
                                      o.repo_url, "--db", "main", "--sysid", std::to_string(sysid),
                                      "--wal-segment-size", "16777216"}));
}

TEST_F(RecoveryConfigTest, QuotingTrapsReachWalGetVerbatimAndRunNothing) {
  const std::string pwned = dir_ + "/pwned";
  const uint64_t sysid = 7300000000000000001ull;
  {
    // The plain exploit: the shell's \$ was read by the config lexer as an
    // escape, leaving a bare $( inside double quotes.
    RestoreOptions o = Options();
    o.repo_url = "file:///srv/repo$(touch " + pwned + "0)";
    EXPECT_EQ(RunParsedRestoreCommand(o, sysid),
              (std::vector<std::string>{"wal-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG", "--repo",
                                        o.repo_url, "--db", "main", "--sysid", std::to_string(sysid)}));
  }
  {
    // A literal % (URL-encoded paths): PostgreSQL would substitute %p, %f or
    // %r inside it, quotes or not, unless it is written %%.
    RestoreOptions o = Options();
    o.repo_url = "file:///srv/100%p%20full%f/%r%%";
    o.key_file = "/etc/keys/%";
    EXPECT_EQ(RunParsedRestoreCommand(o, sysid),
              (std::vector<std::string>{"wal-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG", "--repo",
                                        o.repo_url, "--db", "main", "--sysid", std::to_string(sysid), "--key-file",
                                        o.key_file}));
  }
  RestoreOptions o = Options();
  o.repo_url = "file:///srv/it's a \\repo\\ $(touch " + pwned + "1) `touch " + pwned + "2` \"$HOME\" ;touch " +
               pwned + "3 \\'";
  o.key_file = "/etc/keys/o'key\\\\n $(touch " + pwned + "4)";
  o.private_key_file = "/etc/keys/priv\\' `touch " + pwned + "5` '' \\";
  EXPECT_EQ(RunParsedRestoreCommand(o, sysid),
            (std::vector<std::string>{"wal-get", "000000010000000000000002", "pg_wal/RECOVERYXLOG", "--repo",
                                      o.repo_url, "--db", "main", "--sysid", std::to_string(sysid), "--key-file",
                                      o.key_file, "--private-key", o.private_key_file}));
  EXPECT_EQ(PgSetting("archive_mode"), "off");
  for (int i = 0; i <= 5; ++i) EXPECT_FALSE(fs::exists(pwned + std::to_string(i))) << "injected command " << i << " ran";
}

TEST_F(RecoveryConfigTest, ControlCharactersAreRefusedBeforeAnythingIsWritten) {
  for (auto set : std::vector<std::function<void(RestoreOptions&)>>{
           [](RestoreOptions& o) { o.key_file = "/k\nrestore_command = 'touch /tmp/x'"; },
           [](RestoreOptions& o) { o.repo_url = "file:///r\r"; },
           [](RestoreOptions& o) { o.private_key_file = std::string("/k\x01"); },
           [](RestoreOptions& o) { o.smartbackup_path = "/usr/bin/smart\tbackup"; },
           [](RestoreOptions& o) { o.database = "main\n"; }}) {
    RestoreOptions o = Options();
    o.repo_url = "file:///repo";
    set(o);
    Status s = WriteRecoveryConfig(pgdata_, 1, "b", o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
    EXPECT_NE(s.message().find("control character"), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one line: " << s.message();
    EXPECT_FALSE(fs::exists(pgdata_ + "/postgresql.auto.conf"));
    EXPECT_FALSE(fs::exists(pgdata_ + "/recovery.signal"));
  }
}

TEST_F(RecoveryConfigTest, ABackupIdFromTheRepositoryAddsNoSetting) {
  RestoreOptions o = Options();
  o.repo_url = "file:///repo";
  const std::string id = "x\nrestore_command = 'touch " + dir_ + "/pwned'\nrecovery_target_timeline = 'current";
  ASSERT_TRUE(WriteRecoveryConfig(pgdata_, 42, id, o).ok());
  EXPECT_EQ(PgSetting("restore_command"), RestoreCommand(o, 42));
  EXPECT_EQ(PgSetting("recovery_target_timeline"), "latest");
  EXPECT_EQ(ReadFile(pgdata_ + "/postgresql.auto.conf").find("pwned"), std::string::npos);
}

TEST_F(RecoveryConfigTest, SymlinkedConfigFilesAreNotFollowed) {
  RestoreOptions o = Options();
  o.repo_url = "file:///repo";
  const std::string victim = dir_ + "/victim.conf";
  std::ofstream(victim) << "untouched\n";
  fs::create_symlink(victim, pgdata_ + "/postgresql.auto.conf");
  EXPECT_FALSE(WriteRecoveryConfig(pgdata_, 42, "b", o).ok());
  EXPECT_EQ(ReadFile(victim), "untouched\n");

  fs::remove(pgdata_ + "/postgresql.auto.conf");
  fs::create_symlink(victim, pgdata_ + "/recovery.signal");
  EXPECT_FALSE(WriteRecoveryConfig(pgdata_, 42, "b", o).ok());
  EXPECT_EQ(ReadFile(victim), "untouched\n");
}

}  // namespace
}  // namespace sb
