// The log chain on real PostgreSQL 15, through the CLI: WAL captured in
// archive mode (archive_command = smartbackup wal-push) and in stream mode
// (smartbackup stream through its own replication slot), point-in-time
// restore to a time, an LSN and the latest point, and what breaks or keeps the
// chain: kill -9 of the streamer under load, a dropped slot, a promotion.
//
// Every restore is started, recovers to its target and is promoted; what it
// holds is checked by SQL against rows whose commit order, commit time and
// WAL position the test recorded:
//   marks(seq, at): rows committed one per transaction with
//   synchronous_commit = on; after each commit the test reads
//   clock_timestamp() and pg_current_wal_flush_lsn(). That time and that LSN
//   lie after commit k and before anything of row k+1, so a recovery target
//   at either one must give exactly rows 1..k.
// No assertion depends on timing; waits are for conditions, with deadlines.
// Figures (recovery point age, wal-push rate) are printed, not asserted.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/text.h"
#include "support/background_process.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kSlot = "smartbackup_main";

uint64_t ParseLsn(const std::string& text) {
  unsigned long long hi = 0, lo = 0;
  if (std::sscanf(text.c_str(), "%llX/%llX", &hi, &lo) != 2) {
    ADD_FAILURE() << "not an LSN: \"" << text << "\"";
    return 0;
  }
  return (hi << 32) | lo;
}

std::string FormatLsn(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(v >> 32), static_cast<unsigned>(v & 0xffffffffu));
  return buf;
}

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// One committed row of marks and where it stands.
struct Mark {
  int seq = 0;
  std::string after_time;  // clock_timestamp() right after the commit, RFC 3339 UTC with µs
  std::string after_lsn;   // pg_current_wal_flush_lsn() right after the commit
};

// psql with one -c per statement: each runs in its own transaction, in one session.
CommandResult PsqlSession(PgCluster& c, const std::vector<std::string>& statements) {
  std::string cmd = PgBinDir() + "/psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " + std::to_string(c.port()) +
                    " -U postgres -d postgres";
  for (const auto& s : statements) cmd += " -c " + ShellQuote(s);
  return RunAsPostgres(cmd);
}

// Commits rows first..first+n-1 into marks, one transaction each.
std::vector<Mark> WriteMarks(PgCluster& c, int first, int n, int pause_ms = 0) {
  std::vector<std::string> sql{"SET synchronous_commit = on"};
  for (int k = first; k < first + n; ++k) {
    sql.push_back("INSERT INTO marks VALUES (" + std::to_string(k) + ", clock_timestamp())");
    sql.push_back("SELECT " + std::to_string(k) +
                  ", to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "pg_current_wal_flush_lsn()");
    if (pause_ms > 0) sql.push_back("SELECT pg_sleep(" + std::to_string(pause_ms / 1000.0) + ")");
  }
  CommandResult r = PsqlSession(c, sql);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<Mark> marks;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (std::count(line.begin(), line.end(), '|') != 2) continue;
    Mark m;
    auto a = line.find('|'), b = line.rfind('|');
    m.seq = std::stoi(line.substr(0, a));
    m.after_time = line.substr(a + 1, b - a - 1);
    m.after_lsn = line.substr(b + 1);
    marks.push_back(m);
  }
  EXPECT_EQ(marks.size(), static_cast<size_t>(n)) << r.out;
  return marks;
}

// "max|count" of marks; "0|0" when empty.
std::string MarksState(PgCluster& c) { return c.Psql("SELECT coalesce(max(seq), 0) || '|' || count(*) FROM marks"); }
std::string Expect(int k) { return std::to_string(k) + "|" + std::to_string(k); }

// The server log of a cluster Adopt()ed from `data_dir` (its socket dir is its temp root).
std::string AdoptedServerLog(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postgresql.auto.conf");
  std::string line, root;
  while (std::getline(in, line)) {
    const std::string key = "unix_socket_directories = '";
    if (line.rfind(key, 0) == 0) root = line.substr(key.size(), line.size() - key.size() - 1);
  }
  std::ifstream log(root + "/server.log");
  std::stringstream ss;
  ss << log.rdbuf();
  std::string s = ss.str();
  return s.size() > 6000 ? "..." + s.substr(s.size() - 6000) : s;
}

// Waits until a started cluster has finished recovery and been promoted.
void WaitPromoted(PgCluster& c, const std::string& data_dir, seconds limit = seconds(180)) {
  const auto deadline = SteadyClock::now() + limit;
  for (;;) {
    CommandResult r = c.TryPsql("SELECT pg_is_in_recovery()");
    if (r.exit_code == 0 && r.out.find('f') != std::string::npos) return;
    if (SteadyClock::now() >= deadline) {
      FAIL() << "still in recovery (or down) after " << limit.count() << "s: " << r.out << r.err << "\nserver log:\n"
             << AdoptedServerLog(data_dir);
    }
    // A server that stopped (recovery ended with FATAL) will not come back: say so now.
    if (r.exit_code != 0 && !fs::exists(data_dir + "/postmaster.pid")) {
      FAIL() << "the restored server stopped during recovery:\n" << AdoptedServerLog(data_dir);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

// The slot's restart_lsn (0 when absent or unreserved) and whether a walsender holds it.
struct SlotState {
  bool exists = false;
  bool active = false;
  uint64_t restart_lsn = 0;
};
SlotState ReadSlot(PgCluster& c) {
  CommandResult r = c.TryPsql(std::string("SELECT coalesce(restart_lsn::text, ''), active FROM pg_replication_slots "
                                          "WHERE slot_name = '") +
                              kSlot + "'");
  SlotState s;
  std::string out = r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (r.exit_code != 0 || out.empty()) return s;
  s.exists = true;
  auto bar = out.find('|');
  std::string lsn = out.substr(0, bar);
  s.active = out.substr(bar + 1) == "t";
  if (!lsn.empty()) s.restart_lsn = ParseLsn(lsn);
  return s;
}

enum class Mode { kStream, kArchive };

// A cluster, a repository, and (stream mode) a running `smartbackup stream`.
class LogChainBase : public ::testing::Test {
 protected:
  void SetUp() override { work_ = MakeTempDirForPostgres("logchain"); }
  void TearDown() override {
    stream_.reset();
    cluster_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return "file://" + work_ + "/repo"; }
  std::string RepoDir() const { return work_ + "/repo"; }

  std::vector<std::string> ArchiveConf() const {
    std::string push = std::string(SMARTBACKUP_BINARY) + " wal-push %p --repo " + Repo() + " --db main --log-max-wal 1MiB";
    if (!public_key_.empty()) push += " --public-key " + public_key_;
    return {"archive_mode = on", "archive_command = '" + push + "'"};
  }

  void CreateCluster(Mode mode, std::vector<std::string> extra = {}) {
    mode_ = mode;
    PgClusterOptions o;
    o.extra_conf = std::move(extra);
    if (mode == Mode::kArchive) {
      for (auto& line : ArchiveConf()) o.extra_conf.push_back(line);
    }
    cluster_ = PgCluster::Create(o);
    cluster_->Pgbench("-i -s 1 -q");
    cluster_->Psql("CREATE TABLE marks(seq int PRIMARY KEY, at timestamptz)");
  }

  std::unique_ptr<BackgroundProcess> LaunchStream(PgCluster& c) {
    const std::string log = work_ + "/stream-" + std::to_string(++stream_runs_) + ".log";
    std::vector<std::string> args{SMARTBACKUP_BINARY, "stream", "--pg", c.conninfo(), "--repo", Repo(), "--db", "main",
                                  "--flush-interval", "1s", "--log-max-wal", "1MiB", "-v"};
    if (!public_key_.empty()) {
      args.push_back("--public-key");
      args.push_back(public_key_);
    }
    return BackgroundProcess::StartAsPostgres(args, log);
  }

  // Starts the streamer and waits until it holds its slot.
  void StartStream(PgCluster& c) {
    stream_ = LaunchStream(c);
    ASSERT_TRUE(stream_);
    bool up = WaitFor(
        [&] {
          SlotState s = ReadSlot(c);
          return (s.exists && s.active && s.restart_lsn != 0) || !stream_->running();
        },
        seconds(60));
    ASSERT_TRUE(up && stream_->running()) << "stream did not take its slot:\n" << stream_->Log();
  }

  // After its server went away: the streamer stays up, waiting to reconnect.
  void WaitStreamRetrying() {
    ASSERT_TRUE(stream_);
    ASSERT_TRUE(WaitFor([&] { return stream_->Log().find("retrying in") != std::string::npos || !stream_->running(); },
                        seconds(60)))
        << stream_->Log();
    ASSERT_TRUE(stream_->running()) << "stream exited with its server:\n" << stream_->Log();
  }

  // SIGTERM: the streamer flushes and exits 0.
  void StopStream() {
    ASSERT_TRUE(stream_);
    stream_->Signal(SIGTERM);
    auto code = stream_->Wait(seconds(60));
    ASSERT_TRUE(code.has_value()) << "stream did not stop within 60s after SIGTERM:\n" << stream_->Log();
    EXPECT_EQ(*code, 0) << stream_->Log();
    stream_.reset();
  }

  json FullBackup(PgCluster& c) {
    CommandResult b = RunSmartbackup("backup --pg " + ShellQuote(c.conninfo()) + " --repo " + Repo() +
                                     " --db main --output json" +
                                     (public_key_.empty() ? "" : " --public-key " + public_key_));
    EXPECT_EQ(b.exit_code, 0) << b.err;
    return b.exit_code == 0 ? json::parse(b.out) : json();
  }

  // Makes the WAL up to `lsn` (flushed on the server) durable in the repository.
  void WaitDurable(PgCluster& c, const std::string& lsn, Mode mode) {
    const uint64_t want = ParseLsn(lsn);
    if (mode == Mode::kStream) {
      // The slot moves only to WAL that is durable in the repository.
      bool ok = WaitFor([&] { return ReadSlot(c).restart_lsn >= want; }, seconds(60));
      ASSERT_TRUE(ok) << "stream never made " << lsn << " durable (slot at " << FormatLsn(ReadSlot(c).restart_lsn)
                      << "):\n"
                      << (stream_ ? stream_->Log() : "");
    } else {
      const std::string segment = c.Psql("SELECT pg_walfile_name(pg_switch_wal())");
      bool ok = WaitFor(
          [&] {
            return c.Psql("SELECT coalesce(last_archived_wal, '') >= '" + segment + "' FROM pg_stat_archiver") == "t";
          },
          seconds(60));
      ASSERT_TRUE(ok) << "segment " << segment << " not archived: "
                      << c.Psql("SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver");
    }
  }

  CommandResult Restore(const std::string& target_args, const std::string& dir) {
    return RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + dir + " " + target_args);
  }

  // Restores to the target, starts the copy, waits for its promotion and
  // returns MarksState (plus, when md5s is given, the pgbench checks).
  std::string RestoreAndCount(const std::string& target_args, const std::string& name,
                              std::vector<std::string>* md5s = nullptr) {
    const std::string dir = work_ + "/r-" + name;
    CommandResult r = Restore(target_args, dir);
    EXPECT_EQ(r.exit_code, 0) << "restore " << target_args << ": " << r.err;
    if (r.exit_code != 0) return "restore failed";
    auto restored = PgCluster::Adopt(dir);
    WaitPromoted(*restored, dir);
    if (::testing::Test::HasFatalFailure()) return "not promoted";
    std::string state = MarksState(*restored);
    if (md5s) {
      md5s->push_back(TableMd5(*restored, "pgbench_accounts", "aid"));
      md5s->push_back(restored->Psql("SELECT count(*) FROM pgbench_history"));
    }
    restored.reset();
    RemoveTree(dir);
    return state;
  }

  json AvailableBackups() {
    CommandResult l = RunSmartbackup("available-backups --all --repo " + Repo() + " --db main --output json");
    EXPECT_EQ(l.exit_code, 0) << l.err;
    return l.exit_code == 0 ? json::parse(l.out)[0]["backups"] : json::array();
  }

  static std::vector<json> RowsOfType(const json& rows, const std::string& type) {
    std::vector<json> out;
    for (const auto& r : rows) {
      if (r["type"] == type) out.push_back(r);
    }
    return out;
  }

  Mode mode_ = Mode::kStream;
  std::string public_key_;  // writers seal their data keys to it (--public-key)
  std::string work_;
  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<BackgroundProcess> stream_;
  int stream_runs_ = 0;
};

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kStream ? "stream" : "archive";
}

// ---- 1. point-in-time restore, in both capture modes ------------------------

class LogChainPitr : public LogChainBase, public ::testing::WithParamInterface<Mode> {};

TEST_P(LogChainPitr, RestoresExactlyToTimeLsnAndLatest) {
  const Mode mode = GetParam();
  CreateCluster(mode);
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));  // before the full backup: its WAL is captured from the start
  }
  json full = FullBackup(*cluster_);
  ASSERT_FALSE(full.is_null());

  // Rows committed one by one while pgbench writes alongside.
  std::thread bench([&] { cluster_->Pgbench("-n -c 2 -j 2 -T 6"); });
  std::vector<Mark> marks = WriteMarks(*cluster_, 1, 10, 40);
  for (auto& m : WriteMarks(*cluster_, 11, 10, 40)) marks.push_back(m);
  for (auto& m : WriteMarks(*cluster_, 21, 10, 40)) marks.push_back(m);
  bench.join();
  ASSERT_EQ(marks.size(), 30u);

  // A quiesced point: pgbench is done; its tables' content is fixed here.
  const std::string quiet_lsn = cluster_->Psql("SELECT pg_current_wal_insert_lsn()");
  const std::string accounts_md5 = TableMd5(*cluster_, "pgbench_accounts", "aid");
  const std::string history_count = cluster_->Psql("SELECT count(*) FROM pgbench_history");
  ASSERT_NE(history_count, "0");

  // More WAL after every target (recovery must see past a target to stop at it).
  for (auto& m : WriteMarks(*cluster_, 31, 5)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, mode));
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StopStream());
  }

  // Time targets: exactly the rows committed before them.
  EXPECT_EQ(RestoreAndCount("--time " + marks[9].after_time, "time10"), Expect(10));
  EXPECT_EQ(RestoreAndCount("--time " + marks[22].after_time, "time23"), Expect(23));
  // LSN targets: one under load, one at the quiesced point (pgbench data too).
  EXPECT_EQ(RestoreAndCount("--lsn " + marks[14].after_lsn, "lsn15"), Expect(15));
  std::vector<std::string> md5s;
  EXPECT_EQ(RestoreAndCount("--lsn " + quiet_lsn, "lsnquiet", &md5s), Expect(30));
  ASSERT_EQ(md5s.size(), 2u);
  EXPECT_EQ(md5s[0], accounts_md5);
  EXPECT_EQ(md5s[1], history_count);
  // Latest: every row.
  EXPECT_EQ(RestoreAndCount("--latest", "latest"), Expect(35));

  json rows = AvailableBackups();
  EXPECT_TRUE(RowsOfType(rows, "broken_chain").empty()) << rows.dump(1);
  EXPECT_FALSE(RowsOfType(rows, "log").empty()) << "no log backup sealed at --log-max-wal 1MiB: " << rows.dump(1);
  auto verify = RunSmartbackup("verify --repo " + Repo() + " --db main");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // --backup-id of a log backup says what it is (it used to say "does not exist").
  if (!RowsOfType(rows, "log").empty()) {
    const std::string log_id = RowsOfType(rows, "log").front()["backup_id"];
    auto r = Restore("--backup-id " + log_id, work_ + "/by-log-id");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("is a log backup: a restore starts from a full or copy-only backup"), std::string::npos)
        << r.err;
  }
}

// ---- 2. a target outside every window ---------------------------------------

TEST_P(LogChainPitr, TargetBeforeTheFullBackupIsRefused) {
  const Mode mode = GetParam();
  CreateCluster(mode);
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  }
  const std::string before =
      cluster_->Psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  const std::string lsn_before = cluster_->Psql("SELECT pg_current_wal_insert_lsn()");
  json full = FullBackup(*cluster_);
  ASSERT_FALSE(full.is_null());
  // Written within milliseconds: a window's end (the newest WAL's durable
  // time) must be sub-second for the target below to lie inside it.
  auto marks = WriteMarks(*cluster_, 1, 3);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, mode));

  for (const std::string& target : {"--time " + before, "--lsn " + lsn_before}) {
    const std::string dir = work_ + "/refused";
    CommandResult r = Restore(target, dir);
    EXPECT_EQ(r.exit_code, 1) << target << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("outside every restorable window"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir)) << "a refused restore must not create its target";
  }
  // And a target inside the window is accepted.
  EXPECT_EQ(RestoreAndCount("--time " + marks[1].after_time, "inside"), Expect(2));
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StopStream());
  }
}

// ---- 2b. a time target after the last commit --------------------------------
// PostgreSQL ends such a recovery with FATAL "recovery ended before configured
// recovery target was reached": no commit past the target ever comes. The
// restore reads the window's last commit time from the WAL and replays the
// whole window instead (the same data).

TEST_P(LogChainPitr, TimeTargetAfterTheLastCommitRestoresEverything) {
  const Mode mode = GetParam();
  CreateCluster(mode);
  // No background commits (autovacuum/autoanalyze) after ours: the case under test is exact.
  cluster_->Psql("ALTER SYSTEM SET autovacuum = off");
  cluster_->Psql("SELECT pg_reload_conf()");
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  }
  json full = FullBackup(*cluster_);
  ASSERT_FALSE(full.is_null());
  auto marks = WriteMarks(*cluster_, 1, 5);
  ASSERT_EQ(marks.size(), 5u);
  // The target: the whole second after the last commit. A window ends at the
  // durable time of its newest WAL, so WAL without commits (a checkpoint) is
  // made durable once the clock has passed the target.
  const std::string target = cluster_->Psql(
      "SELECT to_char((date_trunc('second', '" + marks.back().after_time +
      "'::timestamptz) + interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  ASSERT_TRUE(WaitFor([&] { return cluster_->Psql("SELECT clock_timestamp() > '" + target + "'") == "t"; },
                      seconds(10)));
  cluster_->Psql("CHECKPOINT");
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, cluster_->Psql("SELECT pg_current_wal_insert_lsn()"), mode));

  const std::string dir = work_ + "/r-after-last-commit";
  CommandResult r = Restore("--time " + target + " -v", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("up to the target: recovery replays the whole window"), std::string::npos)
      << "the restore should have found the last commit (" << marks.back().after_time << ") in the WAL:\n"
      << r.err;
  auto restored = PgCluster::Adopt(dir);
  WaitPromoted(*restored, dir);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(MarksState(*restored), Expect(5));
  restored.reset();
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StopStream());
  }
}

// ---- 2c. public-key encryption ----------------------------------------------
// Writers hold only the public key: full backup, WAL (stream or wal-push) and
// log backups are written, but nothing restores without the private key; with
// it, point-in-time restore and verify work (wal-get opens the data keys).

TEST_P(LogChainPitr, PublicKeyWritersAndPrivateKeyRestore) {
  const Mode mode = GetParam();
  const std::string keys = work_ + "/keys";
  ASSERT_TRUE(MakeRsaKeyPair(keys, "private"));
  ASSERT_TRUE(MakeRsaKeyPair(keys, "other"));
  public_key_ = keys + "/private.pub.pem";
  CreateCluster(mode);
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  }
  json full = FullBackup(*cluster_);
  ASSERT_FALSE(full.is_null());
  auto marks = WriteMarks(*cluster_, 1, 6, 20);
  ASSERT_EQ(marks.size(), 6u);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, cluster_->Psql("SELECT pg_current_wal_insert_lsn()"), mode));
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StopStream());
  }
  EXPECT_TRUE(fs::exists(RepoDir() + "/keys")) << "no wrapped data key stored";
  // wal-push makes one single-use key per segment, each naming a stored part;
  // the streamer and the backup one key each, naming nothing.
  int single_use = 0, session = 0;
  for (const auto& e : fs::directory_iterator(RepoDir() + "/keys")) {
    std::ifstream in(e.path());
    std::string wrapped, only_for;
    std::getline(in, wrapped);
    std::getline(in, only_for);
    if (only_for.empty()) {
      ++session;
    } else {
      ++single_use;
      ASSERT_TRUE(only_for.starts_with("only-for db/main/wal/")) << only_for;
      EXPECT_TRUE(fs::exists(RepoDir() + "/" + only_for.substr(9))) << only_for;
    }
  }
  if (mode == Mode::kStream) {
    EXPECT_EQ(single_use, 0);
    EXPECT_EQ(session, 2);
  } else {
    EXPECT_GT(single_use, 0);
    EXPECT_EQ(session, 1);
  }

  const std::string target = "--time " + marks[2].after_time;
  CommandResult no_key = Restore(target, work_ + "/r-nokey");
  EXPECT_EQ(no_key.exit_code, 1) << no_key.out << no_key.err;
  EXPECT_NE(no_key.err.find("--private-key"), std::string::npos) << no_key.err;
  EXPECT_FALSE(fs::exists(work_ + "/r-nokey"));
  CommandResult wrong = Restore(target + " --private-key " + keys + "/other.pem", work_ + "/r-wrong");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out << wrong.err;
  EXPECT_NE(wrong.err.find("wrong private key"), std::string::npos) << wrong.err;

  EXPECT_EQ(RestoreAndCount(target + " --private-key " + keys + "/private.pem", "pk-time"), Expect(3));
  EXPECT_EQ(RestoreAndCount("--latest --private-key " + keys + "/private.pem", "pk-latest"), Expect(6));
  auto verify = RunSmartbackup("verify --repo " + Repo() + " --db main --private-key " + keys + "/private.pem");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

INSTANTIATE_TEST_SUITE_P(LogChain, LogChainPitr, ::testing::Values(Mode::kStream, Mode::kArchive), ModeName);

// ---- 3. kill -9 of the streamer under load ----------------------------------

class LogChainTest : public LogChainBase {};

TEST_F(LogChainTest, StreamKilledUnderLoadLosesNothing) {
  CreateCluster(Mode::kStream);
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());

  std::thread bench([&] { cluster_->Pgbench("-n -c 4 -j 2 -T 8"); });
  std::vector<Mark> marks = WriteMarks(*cluster_, 1, 20, 50);
  stream_->Signal(SIGKILL);
  auto code = stream_->Wait(seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 128 + SIGKILL);
  const SlotState at_kill = ReadSlot(*cluster_);
  const std::string insert_at_kill = cluster_->Psql("SELECT pg_current_wal_insert_lsn()");
  stream_.reset();
  ASSERT_TRUE(at_kill.exists);
  int confirmed = 0;
  for (const auto& m : marks) {
    if (ParseLsn(m.after_lsn) <= at_kill.restart_lsn) confirmed = m.seq;
  }
  std::cout << "[figures] kill -9 under pgbench -c 4: slot confirmed " << FormatLsn(at_kill.restart_lsn)
            << ", server at " << insert_at_kill << " ("
            << (ParseLsn(insert_at_kill) - std::min(ParseLsn(insert_at_kill), at_kill.restart_lsn)) / 1024
            << " KiB not yet confirmed); " << confirmed << " of " << marks.size()
            << " committed marks were confirmed durable\n";

  // Writes go on while the streamer is down; the slot keeps their WAL.
  for (auto& m : WriteMarks(*cluster_, 21, 10, 50)) marks.push_back(m);
  // The walsender of the killed streamer notices the closed socket and lets go of the slot.
  ASSERT_TRUE(WaitFor([&] { return !ReadSlot(*cluster_).active; }, seconds(60)));
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  for (auto& m : WriteMarks(*cluster_, 31, 10, 50)) marks.push_back(m);
  bench.join();
  for (auto& m : WriteMarks(*cluster_, 41, 5)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());

  json rows = AvailableBackups();
  EXPECT_TRUE(RowsOfType(rows, "broken_chain").empty()) << rows.dump(1);

  const std::string dir = work_ + "/r-latest";
  CommandResult r = Restore("--latest", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto restored = PgCluster::Adopt(dir);
  ASSERT_NO_FATAL_FAILURE(WaitPromoted(*restored, dir));
  // Every row confirmed before the kill is there — and, the chain being
  // whole, every row committed at all.
  const int present_confirmed =
      std::stoi(restored->Psql("SELECT count(*) FROM marks WHERE seq <= " + std::to_string(confirmed)));
  EXPECT_EQ(present_confirmed, confirmed);
  EXPECT_EQ(MarksState(*restored), Expect(45));
}

// ---- 3b. the server restarts under a running streamer -----------------------
// Like pg_receivewal, `stream` outlives its server: it stores what it had,
// retries with backoff and carries on from the slot, so the chain stays whole.

TEST_F(LogChainTest, StreamReconnectsAfterAServerRestart) {
  CreateCluster(Mode::kStream);
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  std::vector<Mark> marks = WriteMarks(*cluster_, 1, 5);
  cluster_->Stop("fast");
  ASSERT_NO_FATAL_FAILURE(WaitStreamRetrying());
  cluster_->Start();
  for (auto& m : WriteMarks(*cluster_, 6, 5)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());

  json rows = AvailableBackups();
  EXPECT_TRUE(RowsOfType(rows, "broken_chain").empty()) << rows.dump(1);
  EXPECT_EQ(RestoreAndCount("--latest", "after-restart"), Expect(10));
}

// ---- 3c. PostgreSQL archives a segment again --------------------------------
// After a crash PostgreSQL may run archive_command again for a segment that is
// already stored: the same bytes are accepted, different bytes refused. A
// public-key push that finds the segment stored leaves no key behind.

TEST_F(LogChainTest, RepeatedWalPushAcceptsTheSameSegmentOnly) {
  CreateCluster(Mode::kArchive);
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  const std::string segment = cluster_->Psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
  WriteMarks(*cluster_, 1, 3);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, cluster_->Psql("SELECT pg_current_wal_insert_lsn()"), Mode::kArchive));
  const std::string copy = work_ + "/" + segment, changed = work_ + "/changed/" + segment;
  CommandResult cp = RunAsPostgres("cp " + ShellQuote(cluster_->data_dir() + "/pg_wal/" + segment) + " " +
                                   ShellQuote(copy) + " && mkdir -p " + ShellQuote(work_ + "/changed") + " && cp " +
                                   ShellQuote(copy) + " " + ShellQuote(changed) +
                                   " && printf x | dd of=" + ShellQuote(changed) +
                                   " bs=1 seek=100000 conv=notrunc status=none");
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  const std::string push = " --repo " + Repo() + " --db main --output json";

  CommandResult same = RunSmartbackup("wal-push " + ShellQuote(copy) + push);
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(json::parse(same.out)["already_archived"], true) << same.out;
  EXPECT_NE(same.out.find("identical content"), std::string::npos) << same.out;

  CommandResult different = RunSmartbackup("wal-push " + ShellQuote(changed) + push);
  EXPECT_EQ(different.exit_code, 1) << different.out;
  EXPECT_NE(different.err.find("already archived with different content"), std::string::npos) << different.err;
  EXPECT_EQ(std::count(different.err.begin(), different.err.end(), '\n'), 1) << different.err;

  ASSERT_TRUE(MakeRsaKeyPair(work_ + "/keys", "k"));
  CommandResult sealed = RunSmartbackup("wal-push " + ShellQuote(copy) + push + " --public-key " + work_ + "/keys/k.pub.pem");
  ASSERT_EQ(sealed.exit_code, 0) << sealed.err;
  EXPECT_EQ(json::parse(sealed.out)["already_archived"], true) << sealed.out;
  EXPECT_TRUE(!fs::exists(RepoDir() + "/keys") || fs::is_empty(RepoDir() + "/keys"))
      << "the data key made for an already stored segment was left behind";
  // And the stored segment still restores: the chain is whole.
  EXPECT_EQ(RestoreAndCount("--latest", "after-repush"), Expect(3));
}

// ---- 3d. purge: retention without the agent -----------------------------------
// The agent's rule, run once from cron: the newest full that finished before
// the window and everything after it stay; the older full and its WAL go.

TEST_F(LogChainTest, PurgeKeepsEveryRestorePointOfTheWindow) {
  CreateCluster(Mode::kArchive);
  json first = FullBackup(*cluster_);
  ASSERT_FALSE(first.is_null());
  auto marks = WriteMarks(*cluster_, 1, 3);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kArchive));
  json second = FullBackup(*cluster_);
  ASSERT_FALSE(second.is_null());
  for (auto& m : WriteMarks(*cluster_, 4, 3)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kArchive));
  // A 3-second window that starts after the second full finished.
  auto second_done = ParseRfc3339(second["finish_time"].get<std::string>());
  ASSERT_TRUE(second_done.ok());
  ASSERT_TRUE(WaitFor([&] { return std::chrono::system_clock::now() > *second_done + seconds(4); }, seconds(30)));
  const std::string purge = "purge --repo " + Repo() + " --db main --retention 3s --output json";
  auto full_ids = [&] {
    std::set<std::string> ids;
    for (const auto& r : RowsOfType(AvailableBackups(), "full")) ids.insert(r["backup_id"].get<std::string>());
    return ids;
  };
  const std::string first_id = first["backup_id"], second_id = second["backup_id"];

  CommandResult dry = RunSmartbackup(purge + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  json planned = json::parse(dry.out);
  EXPECT_EQ(planned["anchor_backup_id"], second_id) << dry.out;
  EXPECT_NE(planned["manifests"].dump().find(first_id), std::string::npos) << dry.out;
  EXPECT_EQ(full_ids(), (std::set<std::string>{first_id, second_id})) << "a dry run deleted something";

  CommandResult done = RunSmartbackup(purge);
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_GT(json::parse(done.out)["objects"].get<int>(), 0) << done.out;
  EXPECT_EQ(full_ids(), std::set<std::string>{second_id});
  EXPECT_TRUE(RowsOfType(AvailableBackups(), "broken_chain").empty());
  EXPECT_EQ(RestoreAndCount("--latest", "after-purge"), Expect(6));
  CommandResult again = RunSmartbackup(purge);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(json::parse(again.out)["manifests"].empty()) << again.out;

  CommandResult both = RunSmartbackup("purge --repo " + Repo() + " --db main --retention 3s --retention-days 7");
  EXPECT_EQ(both.exit_code, 2) << both.out;  // a usage error
  EXPECT_NE(both.err.find("give one of --retention-days"), std::string::npos) << both.err;
}

// ---- 4. the slot is dropped while the streamer is stopped -------------------

TEST_F(LogChainTest, DroppedSlotShowsAsBrokenChainAndNewFullHeals) {
  CreateCluster(Mode::kStream, {"max_wal_size = 32MB", "min_wal_size = 32MB", "wal_keep_size = 0",
                                "checkpoint_timeout = 1h"});
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  std::vector<Mark> marks = WriteMarks(*cluster_, 1, 5);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());
  const uint64_t stored_end = ParseLsn(marks.back().after_lsn);

  const std::string in_gap =
      cluster_->Psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  cluster_->Psql(std::string("SELECT pg_drop_replication_slot('") + kSlot + "')");
  // WAL the repository never sees, then the server recycles it.
  const std::string old_segment = cluster_->Psql("SELECT pg_walfile_name('" + marks.back().after_lsn + "')");
  int next = 6;
  bool gone = WaitFor(
      [&] {
        for (auto& m : WriteMarks(*cluster_, next, 1)) marks.push_back(m);
        ++next;
        cluster_->Psql("SELECT pg_switch_wal()");
        cluster_->Psql("CHECKPOINT");
        return cluster_->Psql("SELECT count(*) FROM pg_ls_waldir() WHERE name = '" + old_segment + "'") == "0";
      },
      seconds(60));
  ASSERT_TRUE(gone) << "segment " << old_segment << " never left pg_wal";

  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  const int first_after = next;
  for (auto& m : WriteMarks(*cluster_, next, 5)) marks.push_back(m);
  next += 5;
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_TRUE(stream_->running()) << stream_->Log();

  json rows = AvailableBackups();
  auto breaks = RowsOfType(rows, "broken_chain");
  ASSERT_EQ(breaks.size(), 1u) << rows.dump(1) << "\nstream log:\n" << stream_->Log();
  const uint64_t gap_start = ParseLsn(breaks[0]["start_lsn"].get<std::string>());
  const uint64_t gap_end = ParseLsn(breaks[0]["end_lsn"].get<std::string>());
  EXPECT_GE(gap_start, stored_end);
  EXPECT_GT(gap_end, gap_start);
  EXPECT_LE(gap_end, ParseLsn(marks[first_after - 1].after_lsn));
  std::cout << "[figures] dropped slot: broken_chain " << breaks[0]["start_lsn"].get<std::string>() << " .. "
            << breaks[0]["end_lsn"].get<std::string>() << " (" << (gap_end - gap_start) / (1 << 20) << " MiB)\n";

  // A time inside the gap is outside every window.
  CommandResult refused = Restore("--time " + in_gap, work_ + "/r-gap");
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("outside every restorable window"), std::string::npos) << refused.err;

  // A new full backup starts a second window; the gap is still refused, now between two windows.
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  for (auto& m : WriteMarks(*cluster_, next, 5)) marks.push_back(m);
  next += 5;
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());
  refused = Restore("--time " + in_gap, work_ + "/r-gap");
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  size_t windows = 0;
  for (size_t pos = refused.err.find(") .. "); pos != std::string::npos; pos = refused.err.find(") .. ", pos + 1)) {
    ++windows;
  }
  EXPECT_EQ(windows, 2u) << refused.err;

  EXPECT_EQ(RestoreAndCount("--latest", "latest"), Expect(next - 1));
}

// ---- 5. promotion: the chain crosses into timeline 2 -------------------------

TEST_F(LogChainTest, PromotedStandbyContinuesTheChainOnTimeline2) {
  CreateCluster(Mode::kStream);
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());

  // A streaming standby.
  const std::string standby_root = MakeTempDirForPostgres("standby");
  const std::string standby_dir = standby_root + "/data";
  CommandResult bb = RunAsPostgres(PgBinDir() + "/pg_basebackup -R -X stream -c fast -D " + ShellQuote(standby_dir) +
                                   " -h 127.0.0.1 -p " + std::to_string(cluster_->port()) + " -U postgres");
  ASSERT_EQ(bb.exit_code, 0) << bb.err;
  auto standby = PgCluster::Adopt(standby_dir);
  EXPECT_TRUE(fs::exists(standby_dir + "/standby.signal"));
  EXPECT_EQ(standby->Psql("SELECT pg_is_in_recovery()"), "t");
  ASSERT_TRUE(WaitFor([&] { return standby->Psql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1"; },
                      seconds(60)));

  std::vector<Mark> marks = WriteMarks(*cluster_, 1, 10);
  const uint64_t last = ParseLsn(marks.back().after_lsn);
  ASSERT_TRUE(WaitFor([&] { return ParseLsn(standby->Psql("SELECT pg_last_wal_replay_lsn()")) >= last; }, seconds(60)));
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));

  // Switchover: the primary shuts down (its walsenders hand the last WAL —
  // the shutdown checkpoint — to the standby and to the streamer alike),
  // which ends the stream: it waits to reconnect until stopped; then the
  // standby is promoted.
  cluster_->Stop("fast");
  ASSERT_NO_FATAL_FAILURE(WaitStreamRetrying());
  ASSERT_NO_FATAL_FAILURE(StopStream());

  CommandResult promote = RunAsPostgres(PgBinDir() + "/pg_ctl promote -w -t 60 -D " + ShellQuote(standby_dir));
  ASSERT_EQ(promote.exit_code, 0) << promote.err << promote.out;
  ASSERT_NO_FATAL_FAILURE(WaitPromoted(*standby, standby_dir));
  // (pg_control_checkpoint() still says 1 until the first checkpoint after promotion.)
  EXPECT_EQ(standby->Psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), "00000002");

  ASSERT_NO_FATAL_FAILURE(StartStream(*standby));
  for (auto& m : WriteMarks(*standby, 11, 10)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*standby, marks.back().after_lsn, Mode::kStream));
  // Seal what timeline 2 holds so far into a log backup.
  CommandResult log_backup = RunSmartbackup("backup --type log --pg " + ShellQuote(standby->conninfo()) + " --repo " +
                                            Repo() + " --db main --output json");
  EXPECT_EQ(log_backup.exit_code, 0) << log_backup.err;
  ASSERT_NO_FATAL_FAILURE(StopStream());

  // Timeline 2's WAL and history are in the repository.
  const std::string sysid = standby->Psql("SELECT system_identifier FROM pg_control_system()");
  const std::string tl2 = RepoDir() + "/db/main/wal/" + sysid + "-00000002";
  EXPECT_TRUE(fs::exists(tl2 + "/history/00000002.history")) << tl2;
  size_t tl2_parts = 0;
  if (fs::exists(tl2 + "/00000002")) {
    for (const auto& e : fs::directory_iterator(tl2 + "/00000002")) tl2_parts += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_GT(tl2_parts, 0u);
  json rows = AvailableBackups();
  bool tl2_log = false;
  for (const auto& r : RowsOfType(rows, "log")) tl2_log = tl2_log || r["timeline"] == 2;
  EXPECT_TRUE(tl2_log) << rows.dump(1);
  EXPECT_TRUE(RowsOfType(rows, "broken_chain").empty()) << rows.dump(1);

  // Latest, from the timeline-1 full backup across the promotion.
  EXPECT_EQ(RestoreAndCount("--latest", "latest"), Expect(20));
  // And a point on timeline 2.
  EXPECT_EQ(RestoreAndCount("--lsn " + marks[14].after_lsn, "tl2lsn"), Expect(15));
  standby.reset();
  RemoveTree(standby_root);
}

// ---- figures: recovery point age and wal-push rate ---------------------------

TEST_P(LogChainPitr, FiguresRecoveryPointAge) {
  const Mode mode = GetParam();
  CreateCluster(mode);
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  }
  ASSERT_FALSE(FullBackup(*cluster_).is_null());

  // Under pgbench -c 4: the time from a commit returning to its WAL being durable in the repository.
  const int kLoadSeconds = 20;
  std::thread bench([&] { cluster_->Pgbench("-n -c 4 -j 2 -T " + std::to_string(kLoadSeconds)); });
  const auto load_start = SteadyClock::now();
  std::this_thread::sleep_for(seconds(2));  // let the load settle (not an assertion)
  std::vector<double> ages;
  std::string samples;
  int seq = 1;
  const int archived_before = std::stoi(cluster_->Psql("SELECT archived_count FROM pg_stat_archiver"));
  const double wal_before = std::stod(cluster_->Psql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"));
  while (SecondsSince(load_start) < kLoadSeconds - 2 && ages.size() < 6) {
    auto m = WriteMarks(*cluster_, seq++, 1);
    const auto committed = SteadyClock::now();
    const uint64_t lsn = ParseLsn(m.at(0).after_lsn);
    const std::string segment = cluster_->Psql("SELECT pg_walfile_name('" + m[0].after_lsn + "')");
    // Archive mode: a commit is durable once its segment is full and archived; allow for that past the load.
    bool covered = WaitFor(
        [&] {
          if (mode == Mode::kStream) return ReadSlot(*cluster_).restart_lsn >= lsn;
          return cluster_->Psql("SELECT coalesce(last_archived_wal, '') >= '" + segment + "' FROM pg_stat_archiver") ==
                 "t";
        },
        mode == Mode::kStream ? seconds(60)
                              : seconds(std::max(1, kLoadSeconds - static_cast<int>(SecondsSince(load_start))) + 10));
    if (!covered) {
      samples += " (a commit not yet durable when the load ended: archiver at " +
                 cluster_->Psql("SELECT last_archived_wal FROM pg_stat_archiver") + ", commit in " + segment + ")";
      break;
    }
    ages.push_back(SecondsSince(committed));
  }
  bench.join();
  const double load_secs = kLoadSeconds;  // pgbench -T; the WAL after it is negligible
  const double wal_mib = (std::stod(cluster_->Psql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")) - wal_before) / (1 << 20);
  const int archived = std::stoi(cluster_->Psql("SELECT archived_count FROM pg_stat_archiver")) - archived_before;
  std::ostringstream line;
  line << "[figures] recovery point age, " << (mode == Mode::kStream ? "stream (--flush-interval 1s)" : "archive")
       << " mode, pgbench -c 4: ";
  if (ages.empty()) {
    line << "no commit became durable during the load";
  } else {
    std::sort(ages.begin(), ages.end());
    line << ages.size() << " samples, min " << ages.front() << " s, median " << ages[ages.size() / 2] << " s, max "
         << ages.back() << " s";
  }
  line << samples << "; WAL written " << wal_mib << " MiB in the " << load_secs << " s load";
  if (mode == Mode::kArchive) {
    // A commit is durable once its segment is full and archived: on average
    // half a segment's fill time, at worst a whole one (no archive_timeout).
    line << " (" << wal_mib / load_secs << " MiB/s: a 16 MiB segment fills in ~" << 16 / (wal_mib / load_secs)
         << " s), segments archived meanwhile " << archived;
  }
  std::cout << line.str() << "\n";

  if (mode == Mode::kArchive) {
    // wal-push rate: 20 forced segment switches (mostly empty segments).
    ASSERT_TRUE(WaitFor(
        [&] {
          return cluster_->Psql("SELECT coalesce(last_archived_wal, '') >= pg_walfile_name(pg_switch_wal()) FROM "
                                "pg_stat_archiver") == "t";
        },
        seconds(60)));
    const int before = std::stoi(cluster_->Psql("SELECT archived_count FROM pg_stat_archiver"));
    std::vector<std::string> sql;
    for (int i = 0; i < 20; ++i) {
      sql.push_back("INSERT INTO marks VALUES (" + std::to_string(1000 + i) + ", now())");
      sql.push_back("SELECT pg_switch_wal()");
    }
    const auto t0 = SteadyClock::now();
    ASSERT_EQ(PsqlSession(*cluster_, sql).exit_code, 0);
    bool done = WaitFor(
        [&] { return std::stoi(cluster_->Psql("SELECT archived_count FROM pg_stat_archiver")) >= before + 20; },
        seconds(120));
    const double secs = SecondsSince(t0);
    ASSERT_TRUE(done);
    EXPECT_EQ(cluster_->Psql("SELECT failed_count FROM pg_stat_archiver"), "0");
    std::cout << "[figures] wal-push: 20 forced segments archived in " << secs << " s (" << 20 / secs
              << " segments/s, mostly-empty 16 MiB segments)\n";
  }
  if (mode == Mode::kStream) {
    ASSERT_NO_FATAL_FAILURE(StopStream());
  }
}

// ---- the WAL data path at scale (issue 12) -----------------------------------
//
// Stream mode writes a part per flush, never across a segment boundary;
// sealing merges a segment's parts into one object; purge removes the parts
// that were merged; restores through wal-get's bounded lookup, with and
// without prefetch, reach exactly their targets in compacted WAL and in the
// unsealed (uncompacted) tail.
TEST_F(LogChainTest, CompactedAndUncompactedWalRestoreExactlyWithAndWithoutPrefetch) {
  CreateCluster(Mode::kStream);
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  std::vector<Mark> marks;
  for (int round = 0; round < 4; ++round) {
    // Spread over a few flush intervals (1 s): several parts per segment.
    for (auto& m : WriteMarks(*cluster_, round * 5 + 1, 5, 300)) marks.push_back(m);
    cluster_->Pgbench("-n -c 2 -t 400");
  }
  // The streamer seals every 1 MiB (--log-max-wal), merging as it goes.
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  // The unsealed tail (below the threshold): stays as per-flush parts.
  for (auto& m : WriteMarks(*cluster_, 21, 5, 300)) marks.push_back(m);
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());
  const std::string source_md5 = TableMd5(*cluster_, "pgbench_accounts", "aid");
  const uint64_t seg = std::stoull(cluster_->Psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));

  struct Part {
    uint64_t start, end;
  };
  auto parts = [&] {
    std::vector<Part> out;
    for (const auto& e : fs::recursive_directory_iterator(RepoDir() + "/db/main/wal")) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.size() != 33 || name[16] != '-') continue;
      out.push_back({std::stoull(name.substr(0, 16), nullptr, 16), std::stoull(name.substr(17), nullptr, 16)});
    }
    return out;
  };
  auto contained = [](const std::vector<Part>& ps) {
    int n = 0;
    for (const auto& p : ps) {
      for (const auto& q : ps) n += (&p != &q && q.start <= p.start && p.end <= q.end) ? 1 : 0;
    }
    return n;
  };
  const auto before = parts();
  for (const auto& p : before) {
    EXPECT_EQ(p.start / seg, (p.end - 1) / seg) << "a part crosses a segment boundary: " << std::hex << p.start
                                                 << "-" << p.end;
  }
  const int merged_away = contained(before);
  EXPECT_GT(merged_away, 0) << "sealing merged no parts";
  CommandResult purge = RunSmartbackup("purge --repo " + Repo() + " --db main --retention 7d --output json");
  ASSERT_EQ(purge.exit_code, 0) << purge.err;
  const auto after = parts();
  EXPECT_EQ(contained(after), 0);
  EXPECT_EQ(after.size() + static_cast<size_t>(merged_away), before.size());
  CommandResult verify = RunSmartbackup("verify --repo " + Repo() + " --db main");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  std::cout << "[figures] parts before sealing's compaction was purged: " << before.size() << ", after: "
            << after.size() << "\n";

  EXPECT_EQ(RestoreAndCount("--lsn " + marks[7].after_lsn + " --prefetch 0", "compacted-lsn"), Expect(8));
  EXPECT_EQ(RestoreAndCount("--time " + marks[12].after_time, "compacted-time"), Expect(13));
  EXPECT_EQ(RestoreAndCount("--lsn " + marks[22].after_lsn, "tail-lsn"), Expect(23));
  std::vector<std::string> md5s;
  EXPECT_EQ(RestoreAndCount("--latest", "latest", &md5s), Expect(25));
  ASSERT_EQ(md5s.size(), 2u);
  EXPECT_EQ(md5s[0], source_md5);
}

// Two writers of one cluster's WAL at once: the streamer (a part per flush,
// sealed and merged per segment) and archive_command's wal-push (a part per
// segment) store overlapping WAL in the same container. Listing, sealing,
// compaction and retention must take either writer's copy; verify passes,
// and restores reach exactly their targets with and without prefetch.
TEST_F(LogChainTest, TwoWritersOfTheSameWalRestoreExactly) {
  CreateCluster(Mode::kArchive);
  ASSERT_NO_FATAL_FAILURE(StartStream(*cluster_));
  ASSERT_FALSE(FullBackup(*cluster_).is_null());
  std::vector<Mark> marks;
  for (int round = 0; round < 3; ++round) {
    for (auto& m : WriteMarks(*cluster_, round * 5 + 1, 5, 300)) marks.push_back(m);
    cluster_->Pgbench("-n -c 2 -t 300");
    ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kArchive));
  }
  ASSERT_NO_FATAL_FAILURE(WaitDurable(*cluster_, marks.back().after_lsn, Mode::kStream));
  ASSERT_NO_FATAL_FAILURE(StopStream());
  const std::string source_md5 = TableMd5(*cluster_, "pgbench_accounts", "aid");

  // Both writers really wrote: whole-segment parts from wal-push beside the streamer's.
  const uint64_t seg = std::stoull(cluster_->Psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));
  int whole = 0, partial = 0;
  for (const auto& e : fs::recursive_directory_iterator(RepoDir() + "/db/main/wal")) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.size() != 33 || name[16] != '-') continue;
    const uint64_t start = std::stoull(name.substr(0, 16), nullptr, 16), end = std::stoull(name.substr(17), nullptr, 16);
    (start % seg == 0 && end - start == seg ? whole : partial) += 1;
  }
  EXPECT_GT(whole, 0) << "wal-push stored no segment";
  EXPECT_GT(partial, 0) << "the streamer stored no part";

  CommandResult purge = RunSmartbackup("purge --repo " + Repo() + " --db main --retention 7d");
  ASSERT_EQ(purge.exit_code, 0) << purge.err;
  CommandResult verify = RunSmartbackup("verify --repo " + Repo() + " --db main");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  EXPECT_EQ(RestoreAndCount("--lsn " + marks[6].after_lsn + " --prefetch 0", "two-lsn"), Expect(7));
  EXPECT_EQ(RestoreAndCount("--time " + marks[11].after_time, "two-time"), Expect(12));
  std::vector<std::string> md5s;
  EXPECT_EQ(RestoreAndCount("--latest", "two-latest", &md5s), Expect(15));
  ASSERT_EQ(md5s.size(), 2u);
  EXPECT_EQ(md5s[0], source_md5);
}

}  // namespace
}  // namespace sb::test
