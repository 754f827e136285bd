// Every scheduling and coexistence rule the agent applies, one test each,
// through ClusterController::Step: a scripted PostgreSQL server, recording
// actions, a manual clock, a state store in a temp dir and a repository in a
// local directory whose catalog the test writes (fulls, log backups, WAL
// parts). Each test asserts what the controller did (or did not) and what
// status says (condition, state line, faults, health events, StatusJson).
// The integration tests (cluster_rules, coexistence, agent) stay: they check
// the same rules against a real PostgreSQL.
// The repository is a file:// one (storage_url does not accept memory:// URLs),
// in a temp dir on tmpfs when there is one: on a disk the fsyncs of the
// repository and the state store cost seconds over the file.
// The rules of PeerMonitor (availability groups) are not covered here (it talks
// to the primary itself); the controller's part of the hybrid refusal is.
#include "agent/cluster_controller.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "agent/status_view.h"
#include "common/text.h"
#include "repo/name_claim.h"
#include "support/cluster_fakes.h"

namespace sb {

// Names in assertion messages instead of bytes.
void PrintTo(Condition condition, std::ostream* os) { *os << ConditionName(condition); }
void PrintTo(Refusal refusal, std::ostream* os) {
  static const char* kNames[] = {"none", "hybrid", "name_claimed", "foreign_archiver"};
  *os << kNames[static_cast<int>(refusal)];
}

namespace {

using namespace std::chrono_literals;
using Action = Decision::Action;
using nlohmann::json;
using test::RecordingActions;
using test::ScriptedServer;

// 2027-01-15T08:00:00Z, a Friday.
const SystemTime kStart = std::chrono::system_clock::from_time_t(1'800'000'000);
constexpr uint64_t kSysid = 7000000000000000001ull;  // ScriptedServer's
constexpr uint64_t kOtherSysid = 7000000000000000999ull;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kFullStart = 0x2000028, kFullEnd = 0x2000100;
constexpr uint64_t kNow = 0x3000000;  // the server's current LSN unless a test moves it
constexpr const char* kSlot = "smartbackup_main";
constexpr const char* kDropSql = "SELECT pg_drop_replication_slot('smartbackup_main')";

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
bool Begins(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

class ClusterControllerTest : public ::testing::Test {
 protected:
  ClusterControllerTest() : clock_(kStart), c_("main") {}

  void SetUp() override {
    // On tmpfs when there is one (see the top of the file).
    const bool shm = std::getenv("TEST_TMPDIR") == nullptr && ::access("/dev/shm", W_OK) == 0;
    std::string tmpl = (shm ? std::string("/dev/shm/") : ::testing::TempDir()) + "ctl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    url_ = "file://" + dir_ + "/repo";
    ctx_.clock = &clock_;
    ctx_.config.state_dir = dir_;
    ctx_.config.defaults = {{"enabled", "true"}, {"storage_url", url_}, {"mode", "stream"}};
    auto store = StateStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ctx_.store = std::move(store).value();
    c_.conninfo = "host=scripted dbname=postgres";
    c_.in_config = true;
    controller_ = std::make_unique<ClusterController>(ctx_, server_, actions_, nullptr);
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Set(const std::string& option, const std::string& value) { ctx_.config.defaults[option] = value; }
  void Step(bool master_on = true) { controller_->Step(c_, master_on); }
  json StatusOf() { return StatusJson(c_, clock_); }
  static Condition CondOf(Cluster& c) {
    std::lock_guard lock(c.mu);
    return Headline(c).condition;
  }
  static std::string LineOf(Cluster& c) {
    std::lock_guard lock(c.mu);
    return Headline(c).text;
  }
  std::string State() { return StatusOf()["state"].get<std::string>(); }

  // ---- the repository's catalog ----
  std::unique_ptr<Repository> Repo() {
    auto repo = ctx_.OpenRepo(url_);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }
  // The newest container of the lineage (a new one with force_new).
  ContainerInfo Container(uint64_t sysid, uint32_t tli, bool force_new = false) {
    auto c = Repo()->EnsureContainer("main", sysid, tli, "test", force_new);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : ContainerInfo{};
  }
  BackupManifest Manifest(BackupType type, SystemTime finish, uint64_t start, uint64_t end, uint32_t tli,
                          uint64_t sysid) {
    BackupManifest m;
    m.database = "main";
    m.system_identifier = sysid;
    m.container = Container(sysid, tli).name;
    m.type = type;
    m.timeline = tli;
    m.start_lsn = Lsn{start}.ToString();
    m.end_lsn = Lsn{end}.ToString();
    m.start_time = finish - (type == BackupType::kLog ? 1s : 1min);
    m.finish_time = finish;
    m.backup_id = Repository::NewBackupId(m.start_time, type);
    m.server_version_num = 150004;
    m.wal_segment_size = 16 * kMiB;
    EXPECT_TRUE(Repo()->WriteManifest(m, nullptr).ok());
    return m;
  }
  BackupManifest PutFull(SystemTime finish, uint64_t start = kFullStart, uint64_t end = kFullEnd, uint32_t tli = 1,
                         uint64_t sysid = kSysid) {
    return Manifest(BackupType::kFull, finish, start, end, tli, sysid);
  }
  BackupManifest PutLog(SystemTime finish, uint64_t start, uint64_t end) {
    return Manifest(BackupType::kLog, finish, start, end, 1, kSysid);
  }
  void PutPart(uint64_t start, uint64_t end) {
    const std::string key = Repository::WalPartKey("main", Container(kSysid, 1).name, 1, Lsn{start}, Lsn{end});
    ASSERT_TRUE(Repo()->storage().Put(key, "wal").ok());
  }
  // A healthy chain: a full an hour ago and a log backup ten minutes ago, 1 MiB of WAL behind the
  // server: nothing is due.
  void HealthyChain() {
    PutFull(kStart - 1h);
    PutLog(kStart - 10min, kFullStart, kNow - kMiB);
  }
  std::string LatestFullContainer() {
    auto listing = Repo()->ListBackups("main");
    EXPECT_TRUE(listing.ok());
    std::string container;
    for (const auto& b : listing->backups) {
      if (b.type == BackupType::kFull) container = b.container;
    }
    return container;
  }
  // What the real full backup leaves behind (BackupRunner::RunFull): a manifest in the lineage's
  // newest container (a new one when asked) and the chain's repaired state.
  void FullsComplete() {
    actions_.on_full = [this](Cluster& c, const ClusterSettings&, const Decision&, bool new_container) {
      const uint32_t tli = server_.primary().timeline;
      const uint64_t sysid = server_.primary().system_identifier;
      if (new_container) Container(sysid, tli, /*force_new=*/true);
      const uint64_t at = server_.primary().current_lsn.value;
      Manifest(BackupType::kFull, clock_.Now(), at, at + 0x100, tli, sysid);
      std::lock_guard lock(c.mu);
      c.pending_break.reset();
      c.minimal_seen = false;
      if (c.slot_consumer.empty()) c.wal_taker.clear();
    };
    actions_.on_prepare = [this](Cluster&, const ClusterSettings&, const std::string&) {
      Container(server_.primary().system_identifier, server_.primary().timeline, /*force_new=*/true);
      return true;
    };
  }

  // Health events of `category` whose message has `part`.
  int Events(HealthCategory category, const std::string& part = "") {
    auto events = ctx_.store->HealthEvents(kStart - 24h, clock_.Now() + 24h);
    EXPECT_TRUE(events.ok());
    int n = 0;
    for (const auto& e : *events) n += e.category == category && Has(e.message, part);
    return n;
  }

  ManualClock clock_;
  std::string dir_, url_;
  AgentContext ctx_;
  ScriptedServer server_;
  RecordingActions actions_;
  std::unique_ptr<ClusterController> controller_;
  Cluster c_;
};

// ---------------------------------------------------------------------------
// Scheduling (spec section 3)
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, NoFullYetStartsTheFirstFullAndCapture) {
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "managed backup just enabled: first full backup");
  EXPECT_FALSE(actions_.fulls[0].new_container);
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kOk);
  EXPECT_EQ(LineOf(c_), "ok");
  json st = StatusOf();
  EXPECT_EQ(st["condition"], "ok");
  EXPECT_EQ(st["role"], "primary");
  EXPECT_EQ(st["streaming"], true);
  EXPECT_EQ(st["system_identifier"], std::to_string(kSysid));
  EXPECT_EQ(st["next_full"]["action"], "full");
  EXPECT_EQ(st["next_log"]["action"], "none");
  EXPECT_EQ(st["next_log"]["reason"], "waiting for the first full backup");
  EXPECT_TRUE(st["last_full"].is_null());
  EXPECT_TRUE(st["faults"].empty());
  EXPECT_FALSE(st.contains("failing_part"));
}

TEST_F(ClusterControllerTest, HealthyChainStartsNothing) {
  HealthyChain();
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kOk);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "ok");
  EXPECT_EQ(st["last_full"], FormatRfc3339(kStart - 1h));
  EXPECT_EQ(st["last_log"], FormatRfc3339(kStart - 10min));
  EXPECT_TRUE(Begins(st["next_full"]["reason"].get<std::string>(), "no full backup due")) << st.dump();
  EXPECT_EQ(st["next_full"]["due"], FormatRfc3339(kStart - 1h + std::chrono::days(7)));
  EXPECT_TRUE(Begins(st["next_log"]["reason"].get<std::string>(), "no log backup due")) << st.dump();
}

TEST_F(ClusterControllerTest, FullOlderThanFullMaxAgeStartsAFull) {
  PutFull(kStart - std::chrono::days(7) + 1min);
  PutLog(kStart - 10min, kFullStart, kNow - kMiB);
  Step();
  EXPECT_TRUE(actions_.fulls.empty()) << "one minute before full_max_age";
  clock_.Advance(1min);
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "≥ 7d since the last full backup");
  EXPECT_TRUE(actions_.logs.empty()) << "a full and a log are not started in one pass";
  EXPECT_EQ(StatusOf()["next_full"]["action"], "full");

  // full_max_age from the settings.
  actions_.Clear();
  Set("full_max_age", "1d");
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "≥ 1d since the last full backup");
}

TEST_F(ClusterControllerTest, WalSinceTheFullAtFullMaxWalStartsAFull) {
  HealthyChain();
  Set("log_max_wal", "2GiB");  // only the full rule is under test
  server_.primary().current_lsn = Lsn{kFullStart + kGiB - 1};
  Step();
  EXPECT_TRUE(actions_.fulls.empty()) << StatusOf().dump();
  server_.primary().current_lsn = Lsn{kFullStart + kGiB};
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "≥ " + FormatByteSize(kGiB) + " of WAL since the last full backup");
}

// Status shows every restore window (a target time in an older one is restorable too) and the
// newest full and log backups even when no log backup followed the newest full.
TEST_F(ClusterControllerTest, StatusShowsEveryWindowAndTheNewestBackups) {
  PutFull(kStart - 2h, 0x1000028, 0x1000100);
  PutPart(0x1000000, 0x1800000);
  PutLog(kStart - 90min, 0x1000000, 0x1800000);
  PutFull(kStart - 1h);
  Step();
  const json st = StatusOf();
  EXPECT_EQ(st["restore_windows"].size(), 2u) << st.dump();
  EXPECT_EQ(st["last_full"], FormatRfc3339(kStart - 1h)) << st.dump();
  EXPECT_EQ(st["last_log"], FormatRfc3339(kStart - 90min)) << st.dump();
  EXPECT_EQ(st["restore_window"]["start_lsn"], st["restore_windows"][1]["start_lsn"]) << "the newest";
}

TEST_F(ClusterControllerTest, LogBackupAfterTheFirstFull) {
  PutFull(kStart - 1h);
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  ASSERT_EQ(actions_.logs.size(), 1u);
  EXPECT_EQ(actions_.logs[0].reason, "no log backup since the full backup");
}

TEST_F(ClusterControllerTest, LogBackupWhenTheLogIsBehindTheLatestFull) {
  PutFull(kStart - 1h);
  PutLog(kStart - 30min, 0x1000000, kFullStart - 0x28);  // finished after the full, ends before its start
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  ASSERT_EQ(actions_.logs.size(), 1u);
  EXPECT_EQ(actions_.logs[0].reason, "log backups are behind the latest full backup");
}

TEST_F(ClusterControllerTest, LogBackupWhenLogMaxAgeElapsed) {
  HealthyChain();
  clock_.Advance(2h - 10min - 1s);
  Step();
  EXPECT_TRUE(actions_.logs.empty()) << StatusOf().dump();
  clock_.Advance(1s);
  Step();
  ASSERT_EQ(actions_.logs.size(), 1u);
  EXPECT_EQ(actions_.logs[0].reason, "≥ 2h since the last log backup");
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(StatusOf()["next_log"]["action"], "log");
}

TEST_F(ClusterControllerTest, LogBackupWhenLogMaxWalReached) {
  HealthyChain();
  const uint64_t last_log_end = kNow - kMiB;
  server_.primary().current_lsn = Lsn{last_log_end + 5 * kMiB - 1};
  Step();
  EXPECT_TRUE(actions_.logs.empty()) << StatusOf().dump();
  server_.primary().current_lsn = Lsn{last_log_end + 5 * kMiB};
  Step();
  ASSERT_EQ(actions_.logs.size(), 1u);
  EXPECT_EQ(actions_.logs[0].reason, "≥ " + FormatByteSize(5 * kMiB) + " of WAL since the last log backup");
}

TEST_F(ClusterControllerTest, CustomLogFrequency) {
  HealthyChain();
  Set("log_frequency", "15m");
  clock_.Advance(5min - 1s);
  Step();
  EXPECT_TRUE(actions_.logs.empty());
  clock_.Advance(1s);
  Step();
  ASSERT_EQ(actions_.logs.size(), 1u);
  EXPECT_EQ(actions_.logs[0].reason, "log frequency 15m elapsed since the last log backup");
}

TEST_F(ClusterControllerTest, CustomScheduleTakesTheFullInsideItsWindow) {
  HealthyChain();  // the last full at 07:00, before today's window
  Set("full_schedule", "daily 09:00 1h");
  Step();  // 08:00
  EXPECT_TRUE(actions_.fulls.empty());
  json st = StatusOf();
  EXPECT_EQ(st["next_full"]["reason"],
            "outside the full backup window (daily 09:00 window); next window at 2027-01-15T09:00:00Z");
  EXPECT_EQ(st["next_full"]["due"], "2027-01-15T09:00:00Z");

  clock_.Advance(1h);  // 09:00
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "scheduled full backup (daily 09:00 window)");
}

TEST_F(ClusterControllerTest, CustomScheduleHoldsAnOverdueFullForTheWindow) {
  PutFull(kStart - std::chrono::days(8));
  PutLog(kStart - 10min, kFullStart, kNow - kMiB);
  Set("full_schedule", "daily 09:00 1h");
  Step();  // 08:00: overdue, but outside the window
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(StatusOf()["next_full"]["reason"],
            "≥ 7d since the last full backup: waiting for the daily 09:00 window; next window at 2027-01-15T09:00:00Z");
  clock_.Advance(1h + 59min);  // 09:59, still inside
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
}

TEST_F(ClusterControllerTest, MaxParallelFullsReachedQueuesTheFull) {
  ctx_.config.max_parallel_fulls = 2;
  actions_.fulls_running = 2;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 1) << "capture does not wait for the full";
  EXPECT_EQ(CondOf(c_), Condition::kQueued);
  EXPECT_EQ(LineOf(c_), "queued: managed backup just enabled: first full backup (max_parallel_fulls reached)");
  EXPECT_EQ(StatusOf()["condition"], "queued");

  actions_.fulls_running = 1;  // one finished: the next pass starts it
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(CondOf(c_), Condition::kOk);
}

// A queued full does not hold the log backups up: they may overlap a full (spec section 3), and
// only fulls are limited across clusters.
TEST_F(ClusterControllerTest, LogBackupsGoOnWhileTheFullIsQueued) {
  PutFull(kStart - std::chrono::days(8));
  PutLog(kStart - 3h, kFullStart, kNow - kMiB);
  ctx_.config.max_parallel_fulls = 1;
  actions_.fulls_running = 1;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(CondOf(c_), Condition::kQueued);
  ASSERT_EQ(actions_.logs.size(), 1u) << "the log backup due waits for no full";
  EXPECT_EQ(actions_.logs[0].reason, "≥ 2h since the last log backup");
}

TEST_F(ClusterControllerTest, OneFullAndOneLogAtATimePerCluster) {
  PutFull(kStart - std::chrono::days(8));
  PutLog(kStart - 3h, kFullStart, kNow - kMiB);
  c_.running_full = "full backup (≥ 7d since the last full backup)";
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(StatusOf()["next_full"]["reason"], "a full backup is already running");
  ASSERT_EQ(actions_.logs.size(), 1u) << "a log backup may overlap the full";

  actions_.Clear();
  c_.running_log = "log backup (≥ 2h since the last log backup)";
  Step();
  EXPECT_TRUE(actions_.logs.empty());
  json st = StatusOf();
  EXPECT_EQ(st["next_log"]["reason"], "a log backup is already running");
  EXPECT_EQ(st["running"].size(), 2u);
}

// ---------------------------------------------------------------------------
// Skips: master switch, disabled, standby, wal_level = minimal
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, MasterSwitchOffSkipsAndStopsCapture) {
  c_.stream_running = true;
  Step(/*master_on=*/false);
  EXPECT_TRUE(actions_.fulls.empty()) << "no full although none exists";
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kSkipped);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "skipped: master switch is off");
  EXPECT_EQ(st["condition"], "skipped");
  EXPECT_EQ(st["streaming"], false);
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_EQ(st["next_log"]["action"], "skip");

  Step(/*master_on=*/true);
  EXPECT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.ensure_capture, 1);
}

TEST_F(ClusterControllerTest, DisabledClusterIsSkipped) {
  Set("enabled", "false");
  c_.stream_running = true;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kSkipped);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "skipped: managed backup is disabled");
  EXPECT_EQ(st["enabled"], false);
  EXPECT_EQ(st["role"], "primary");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/repo")) << "a disabled cluster's repository is not touched";
}

// A disabled cluster runs no backups: a job's failure from before is over, not "failing" for ever.
TEST_F(ClusterControllerTest, DisablingEndsTheFaultsOfBackupJobs) {
  NoteFault(c_, Activity::kFullBackup, FailingPart::kServer, "full backup failed: connection lost", kStart - 1h);
  NoteFault(c_, Activity::kLogBackup, FailingPart::kStorage, "log backup failed: disk full", kStart - 1h);
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kFailing) << "enabled: the last full failed and none ran since";
  Set("enabled", "false");
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kSkipped) << LineOf(c_);
  EXPECT_EQ(StatusOf()["state"], "skipped: managed backup is disabled");
  EXPECT_TRUE(StatusOf()["faults"].empty());
}

TEST_F(ClusterControllerTest, StandbyIsSkippedWithoutCapture) {
  server_.primary().in_recovery = true;
  c_.stream_running = true;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kSkipped);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "skipped: standby: backups run on the primary only");
  EXPECT_EQ(st["role"], "standby");
  EXPECT_EQ(server_.slot_reads, 0) << "smartbackup's slot lives on the primary";
  EXPECT_EQ(st["streaming"], false);
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_TRUE(st["faults"].empty());
}

TEST_F(ClusterControllerTest, WalLevelMinimalStopsScheduling) {
  HealthyChain();
  server_.primary().wal_level = "minimal";
  c_.stream_running = true;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kSkipped);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "skipped: wal_level is minimal (SIMPLE recovery model): scheduling stopped");
  EXPECT_EQ(st["wal_level"], "minimal");
  EXPECT_EQ(st["next_log"]["action"], "skip");
}

// ---------------------------------------------------------------------------
// New containers: back from minimal, a new system identifier, failover
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, BackFromMinimalMakesANewContainerBeforeTheFull) {
  HealthyChain();
  FullsComplete();
  const std::string first = LatestFullContainer();
  server_.primary().wal_level = "minimal";
  Step();
  EXPECT_TRUE(actions_.fulls.empty());

  server_.primary().wal_level = "replica";
  Step();
  ASSERT_EQ(actions_.prepared.size(), 1u);
  EXPECT_EQ(actions_.prepared[0], "new container (wal_level is back to replica): full backup");
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "new container (wal_level is back to replica): full backup");
  EXPECT_FALSE(actions_.fulls[0].new_container) << "made before the full: the full must not make another";
  EXPECT_EQ(actions_.stop_capture, 0) << "capture was stopped under minimal";
  EXPECT_EQ(actions_.ensure_capture, 1) << "and starts after the container is made";
  const std::string second = LatestFullContainer();
  EXPECT_NE(second, first);

  // The full repaired it: no more new containers.
  actions_.Clear();
  Step();
  EXPECT_TRUE(actions_.prepared.empty());
  EXPECT_TRUE(actions_.fulls.empty()) << actions_.fulls[0].decision.reason;
  EXPECT_EQ(LatestFullContainer(), second);
}

TEST_F(ClusterControllerTest, BackFromMinimalLeavesTheContainerToTheFullWhenItCannotBeMade) {
  HealthyChain();
  server_.primary().wal_level = "minimal";
  Step();
  server_.primary().wal_level = "replica";
  actions_.prepare_result = false;
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_TRUE(actions_.fulls[0].new_container);
}

TEST_F(ClusterControllerTest, BackFromMinimalWhileFullsAreQueuedMakesNoContainerYet) {
  HealthyChain();
  server_.primary().wal_level = "minimal";
  Step();
  server_.primary().wal_level = "replica";
  ctx_.config.max_parallel_fulls = 1;
  actions_.fulls_running = 1;
  Step();
  EXPECT_TRUE(actions_.prepared.empty());
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(CondOf(c_), Condition::kQueued);
  EXPECT_EQ(actions_.ensure_capture, 1) << "capture runs while the full waits";
  actions_.Clear();
  actions_.fulls_running = 0;
  Step();
  EXPECT_EQ(actions_.prepared.size(), 1u);
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_FALSE(actions_.fulls[0].new_container);
  // Capture restarts so that it writes into the new container too.
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(actions_.ensure_capture, 1);
}

TEST_F(ClusterControllerTest, NewSystemIdentifierStartsANewContainer) {
  HealthyChain();
  FullsComplete();
  const std::string first = LatestFullContainer();
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  server_.primary().system_identifier = kOtherSysid;  // initdb again under the same name
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "new container (new system identifier): full backup");
  EXPECT_EQ(c_.earlier_sysids.count(kSysid), 1u);
  EXPECT_EQ(CondOf(c_), Condition::kOk) << LineOf(c_) << ": the name is this agent's own earlier cluster's";
  EXPECT_EQ(StatusOf()["system_identifier"], std::to_string(kOtherSysid));
  EXPECT_EQ(Events(HealthCategory::kOtherError), 0);
  // Coexistence rule 8: a new system identifier is a chain break, recorded in health.
  EXPECT_EQ(Events(HealthCategory::kChainBreak, "new system identifier " + std::to_string(kOtherSysid)), 1);
  EXPECT_TRUE(Begins(LatestFullContainer(), std::to_string(kOtherSysid) + "-")) << LatestFullContainer();
  EXPECT_NE(LatestFullContainer(), first);
  actions_.Clear();
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(Events(HealthCategory::kChainBreak), 1) << "once";
}

// The agent restarted meanwhile: what it knows of the cluster is the system identifier it claimed
// the name for (state store). The old claim is still live on the storage, yet this is no refusal.
TEST_F(ClusterControllerTest, ClusterRecreatedWhileTheAgentWasDownIsANewDatabase) {
  HealthyChain();
  Step();
  server_.primary().system_identifier = kOtherSysid;
  Cluster restarted("main");
  restarted.conninfo = c_.conninfo;
  ClusterController controller(ctx_, server_, actions_, nullptr);
  controller.Step(restarted, true);
  EXPECT_EQ(CondOf(restarted), Condition::kOk) << LineOf(restarted);
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "managed backup just enabled: first full backup");
  EXPECT_EQ(Events(HealthCategory::kChainBreak, "new system identifier " + std::to_string(kOtherSysid) + " (was " +
                                                    std::to_string(kSysid) + ")"),
            1);
}

TEST_F(ClusterControllerTest, NewSystemIdentifierIsRecordedWhenTheFullIsQueued) {
  HealthyChain();
  Step();
  server_.primary().system_identifier = kOtherSysid;
  ctx_.config.max_parallel_fulls = 1;
  actions_.fulls_running = 1;
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kQueued);
  EXPECT_EQ(Events(HealthCategory::kChainBreak, "new system identifier"), 1);
  actions_.fulls_running = 0;
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "managed backup just enabled: first full backup")
      << "the new lineage has no full";
  EXPECT_EQ(Events(HealthCategory::kChainBreak), 1);
}

TEST_F(ClusterControllerTest, FailoverToANewTimelineStartsANewContainerAndAFull) {
  HealthyChain();
  FullsComplete();
  server_.primary().timeline = 2;
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "new container (failover to timeline 2): full backup");
  EXPECT_TRUE(actions_.logs.empty());
  json st = StatusOf();
  EXPECT_EQ(st["timeline"], 2);
  // Status names the newest full the repository holds (issue 14: not null while backups exist),
  // here the old timeline's; the scheduler still wants one on the new timeline (above).
  EXPECT_FALSE(st["last_full"].is_null());
  EXPECT_EQ(LatestFullContainer(), std::to_string(kSysid) + "-00000002");

  actions_.Clear();
  Step();
  EXPECT_TRUE(actions_.fulls.empty()) << "the new timeline has its full";
  EXPECT_EQ(StatusOf()["last_full"], FormatRfc3339(kStart));
}

// ---------------------------------------------------------------------------
// Chain breaks
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, PendingChainBreakStartsAFullAtOnce) {
  HealthyChain();
  FullsComplete();
  c_.pending_break = ChainBreak{.kind = ChainBreakKind::kSlotLost, .cause = "replication slot lost"};
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "log chain broken (replication slot lost): full backup at once");
  EXPECT_EQ(Events(HealthCategory::kChainBreak, "log chain broken (replication slot lost)"), 1);

  actions_.Clear();
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_FALSE(StatusOf()["chain_broken"].get<bool>());
  EXPECT_EQ(Events(HealthCategory::kChainBreak), 1);
}

TEST_F(ClusterControllerTest, GapAfterTheFullIsAChainBreak) {
  PutFull(kStart - 1h);
  PutPart(0x2000000, 0x2400000);
  PutPart(0x2800000, 0x3000000);  // 0/2400000..0/2800000 is missing
  PutLog(kStart - 10min, kFullStart, kNow - kMiB);
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason, "log chain broken (WAL 0/2400000..0/2800000 missing): full backup at once");
  EXPECT_TRUE(StatusOf()["chain_broken"].get<bool>());
  EXPECT_EQ(Events(HealthCategory::kChainBreak, "WAL 0/2400000..0/2800000 missing"), 1);
}

TEST_F(ClusterControllerTest, QueuedChainBreakFullIsRecordedWhenItStarts) {
  HealthyChain();
  c_.pending_break = ChainBreak{.kind = ChainBreakKind::kWalRemoved, .cause = "WAL removed"};
  ctx_.config.max_parallel_fulls = 1;
  actions_.fulls_running = 1;
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kQueued);
  EXPECT_EQ(Events(HealthCategory::kChainBreak), 0);
  actions_.fulls_running = 0;
  Step();
  EXPECT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(Events(HealthCategory::kChainBreak), 1);
}

// ---------------------------------------------------------------------------
// Coexistence: archivers, other agents, the name, WAL consumers, the slot
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, ArchiveModeWithAForeignArchiveCommandIsRefused) {
  Set("mode", "archive");
  server_.primary().archive_mode = "on";
  server_.primary().archive_command = "cp %p /mnt/shipped/%f";
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  json st = StatusOf();
  const std::string refusal =
      "archive mode refused: archive_command is 'cp %p /mnt/shipped/%f', not smartbackup wal-push (log shipping or "
      "another tool owns the WAL)";
  EXPECT_EQ(st["state"], "skipped: " + refusal);
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_EQ(st["next_full"]["reason"], refusal);
  EXPECT_EQ(st["next_log"]["action"], "skip");

  // A recognisable tool is named.
  server_.primary().archive_command = "pgbackrest --stanza=main archive-push %p";
  Step();
  EXPECT_TRUE(Has(State(), "archive_command belongs to pgBackRest: 'pgbackrest --stanza=main archive-push %p'"))
      << State();
  EXPECT_TRUE(actions_.fulls.empty());
}

TEST_F(ClusterControllerTest, ArchiveModeWithSmartbackupWalPushRunsWithoutCapture) {
  Set("mode", "archive");
  server_.primary().archive_mode = "on";
  server_.primary().archive_command = "/usr/bin/smartbackup wal-push --db main %p";
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.ensure_capture, 0) << "archive mode: wal-push ships the WAL";
  EXPECT_EQ(CondOf(c_), Condition::kOk);
}

// Issue 11: in archive mode the agent writes no WAL itself; a failing archive_command (the
// repository full or unwritable under wal-push) shows as failing capture until PostgreSQL archives
// again, and backups go on being decided.
TEST_F(ClusterControllerTest, ArchiveModeWithAFailingArchiveCommandIsFailingCapture) {
  Set("mode", "archive");
  server_.primary().archive_mode = "on";
  server_.primary().archive_command = "/usr/bin/smartbackup wal-push --db main %p";
  server_.primary().archiving_failing = true;
  server_.primary().last_failed_wal = "000000010000000000000003";
  Step();
  json st = StatusOf();
  EXPECT_EQ(st["condition"], "failing") << st.dump();
  EXPECT_EQ(st["failing_part"], "capture") << st.dump();
  ASSERT_EQ(st["faults"].size(), 1u) << st.dump();
  EXPECT_EQ(st["faults"][0]["activity"], "archive");
  EXPECT_TRUE(Has(st["state"].get<std::string>(), "000000010000000000000003")) << st.dump();
  EXPECT_EQ(actions_.fulls.size(), 1u);

  server_.primary().archiving_failing = false;  // PostgreSQL archived a segment since
  Step();
  EXPECT_EQ(StatusOf()["condition"], "ok") << StatusOf().dump();
}

// Archive mode with smartbackup's archive_command but archive_mode = off: PostgreSQL archives
// nothing, so no WAL would ever reach the repository and log backups would find none, silently.
TEST_F(ClusterControllerTest, ArchiveModeWithArchiveModeOffIsRefused) {
  Set("mode", "archive");
  server_.primary().archive_mode = "off";
  server_.primary().archive_command = "/usr/bin/smartbackup wal-push --db main %p";
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  const std::string state = State();
  EXPECT_TRUE(Begins(state, "skipped: archive mode refused: archive_mode is off")) << state;
  EXPECT_TRUE(Has(state, "hint: set archive_mode = on")) << state;
  EXPECT_EQ(StatusOf()["next_log"]["action"], "skip");

  server_.primary().archive_mode = "on";  // set, and PostgreSQL restarted
  Step();
  EXPECT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(CondOf(c_), Condition::kOk) << LineOf(c_);
}

TEST_F(ClusterControllerTest, StreamModeCoexistsWithAForeignArchiver) {
  server_.primary().archive_mode = "on";
  server_.primary().archive_command = "cp %p /mnt/shipped/%f";
  Step();
  EXPECT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.ensure_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kOk);
  EXPECT_EQ(State(), std::string("ok; stream mode: coexists with archive_command 'cp %p /mnt/shipped/%f' through its "
                                 "own replication slot ") + kSlot);
}

TEST_F(ClusterControllerTest, StreamLeaseHeldByAnotherAgentStartsNoLogBackup) {
  HealthyChain();
  server_.primary().current_lsn = Lsn{kNow + 8 * kMiB};  // a log backup is due by WAL
  c_.stream_backoff = true;
  c_.stream_note = "backs off: another smartbackup agent is writing the backups of \"main\" (lease held)";
  Step();
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(CondOf(c_), Condition::kBackingOff);
  json st = StatusOf();
  EXPECT_EQ(st["state"], c_.stream_note);
  EXPECT_EQ(st["next_log"]["action"], "none");
  EXPECT_EQ(st["next_log"]["reason"], "another smartbackup agent captures this cluster's WAL");

  c_.stream_backoff = false;
  c_.stream_note.clear();
  Step();
  EXPECT_EQ(actions_.logs.size(), 1u);
}

// PeerMonitor finds the "hybrid" availability group; the controller refuses while the storage is
// the one it was found on (sticky), and lets go when storage_url changes.
TEST_F(ClusterControllerTest, HybridAvailabilityGroupIsRefusedUntilTheStorageChanges) {
  const std::string hybrid = "hybrid availability group: the smartbackup agent of the primary writes to another storage";
  c_.hybrid = hybrid;
  c_.hybrid_url = url_;
  c_.stream_running = true;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(CondOf(c_), Condition::kRefused);
  EXPECT_EQ(c_.refusal, Refusal::kHybrid);
  EXPECT_EQ(State(), "refused: " + hybrid);
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kRefused) << "sticky";

  Set("storage_url", url_ + "-other");
  Step();
  EXPECT_EQ(c_.refusal, Refusal::kNone);
  EXPECT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.ensure_capture, 1);
}

TEST_F(ClusterControllerTest, NameClaimedByAnotherLiveSystemIsRefused) {
  {
    auto repo = Repo();
    auto claim = ClaimDatabaseName(repo->storage(), "main", kOtherSysid);
    ASSERT_TRUE(claim.ok() && claim->granted);
  }
  c_.stream_running = true;
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kRefused);
  EXPECT_EQ(c_.refusal, Refusal::kNameClaimed);
  json st = StatusOf();
  const std::string state = st["state"];
  EXPECT_TRUE(Begins(state, "refused: database name \"main\" is used on this storage by another live cluster "
                            "(system identifier " + std::to_string(kOtherSysid)))
      << state;
  EXPECT_TRUE(Has(state, "this cluster's system identifier is " + std::to_string(kSysid))) << state;
  EXPECT_TRUE(Has(state, "hint: give this cluster another name")) << state;
  EXPECT_EQ(st["condition"], "refused");
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_EQ(st["next_log"]["action"], "skip");
  EXPECT_EQ(NameGuard::Refusal(c_).code(), StatusCode::kFailedPrecondition);

  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(Events(HealthCategory::kOtherError, "refused: database name \"main\""), 1) << "once per holder";
}

TEST_F(ClusterControllerTest, ForeignConsumerOnTheSlotIsWarnedOnceAndNamedInTheChainBreak) {
  HealthyChain();
  FullsComplete();
  SlotView view;
  view.slot_exists = view.slot_active = true;
  view.foreign_consumer = SlotConsumer{.pid = 4242, .application_name = "pg_receivewal", .client_addr = "10.0.0.5"};
  server_.slot = view;
  Step();
  Step();
  const std::string consumer = std::string("pg_receivewal (pid 4242, from 10.0.0.5) on replication slot ") + kSlot;
  EXPECT_EQ(c_.slot_consumer, consumer);
  EXPECT_EQ(c_.wal_taker, consumer);
  const std::string warning = std::string("warning: replication slot ") + kSlot +
                              " is consumed by pg_receivewal (pid 4242, from 10.0.0.5), not smartbackup";
  EXPECT_EQ(State().find("ok; " + warning), 0u) << State();
  EXPECT_EQ(Events(HealthCategory::kWarning, warning.substr(9)), 1) << "once per consumer";
  json st = StatusOf();
  EXPECT_EQ(st["slot"]["name"], kSlot);
  EXPECT_EQ(st["slot"]["active"], true);

  // The WAL it took is lost to the chain: the break names it.
  c_.pending_break = ChainBreak{.kind = ChainBreakKind::kWalRemoved, .cause = "WAL removed"};
  Step();
  ASSERT_EQ(actions_.fulls.size(), 1u);
  EXPECT_EQ(actions_.fulls[0].decision.reason,
            "log chain broken (WAL removed, taken by " + consumer + "): full backup at once");

  // Gone: the warning goes; a new one would be recorded again.
  server_.slot->foreign_consumer.reset();
  Step();
  EXPECT_EQ(c_.slot_consumer, "");
  EXPECT_EQ(State(), "ok");
}

TEST_F(ClusterControllerTest, WalLevelMinimalPendingARestartStopsCaptureAndGivesTheDropSql) {
  HealthyChain();
  c_.stream_running = true;
  SlotView view;
  view.slot_exists = true;
  view.wal_level_change_pending = true;
  view.pending_wal_level = "minimal";
  server_.slot = view;
  Step();
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(actions_.ensure_capture, 0);
  EXPECT_TRUE(c_.minimal_pending);
  const std::string state = State();
  EXPECT_TRUE(Has(state, "wal_level = minimal is pending a restart: WAL capture stopped; ")) << state;
  EXPECT_TRUE(Has(state, kDropSql)) << state;
  EXPECT_FALSE(StatusOf()["streaming"].get<bool>());
  Step();
  EXPECT_EQ(actions_.ensure_capture, 0) << "not restarted while minimal is pending";
  EXPECT_EQ(Events(HealthCategory::kWarning, kDropSql), 1) << "once";

  // The operator dropped the slot: ready for the restart; still no capture (it would make the slot again).
  server_.slot->slot_exists = false;
  Step();
  EXPECT_TRUE(Has(State(), "replication slot smartbackup_main is dropped: ready for the restart")) << State();
  EXPECT_EQ(actions_.ensure_capture, 0);
}

TEST_F(ClusterControllerTest, IdleSlotWhileTheMasterSwitchIsOffIsWarnedWithTheDropSql) {
  SlotView view;
  view.slot_exists = true;
  view.slot_active = false;
  view.retained_bytes = 64 * kMiB;
  server_.slot = view;
  Step(/*master_on=*/false);
  Step(/*master_on=*/false);
  EXPECT_TRUE(server_.dropped_slots.empty()) << "capture may resume: not dropped";
  json st = StatusOf();
  const std::string state = st["state"];
  EXPECT_TRUE(Begins(state, "skipped: master switch is off; warning: replication slot smartbackup_main is not read "
                            "while the master switch is off and retains " +
                                FormatByteSize(64 * kMiB) + " (67108864 bytes) of WAL on the primary"))
      << state;
  EXPECT_TRUE(Has(state, std::string(kDropSql) + ";")) << state;
  EXPECT_EQ(st["slot"]["idle"], true);
  EXPECT_EQ(st["slot"]["retained_bytes"], 64 * kMiB);
  EXPECT_EQ(st["slot"]["drop_sql"], std::string(kDropSql) + ";");
  EXPECT_EQ(Events(HealthCategory::kWarning, "is not read while the master switch is off"), 1) << "once";

  // Capture resumes: the warning goes.
  Step(/*master_on=*/true);
  EXPECT_FALSE(StatusOf()["slot"]["idle"].get<bool>());
}

TEST_F(ClusterControllerTest, DisablingDropsTheIdleSlotThisAgentStreamedThrough) {
  Set("enabled", "false");
  SlotView view;
  view.slot_exists = true;
  view.retained_bytes = 16 * kMiB;
  server_.slot = view;
  c_.streamed_here = true;
  Step();
  EXPECT_EQ(server_.dropped_slots, std::vector<std::string>{kSlot});
  EXPECT_EQ(Events(HealthCategory::kWarning, std::string("dropped replication slot ") + kSlot +
                                                 ": smartbackup no longer reads it (managed backup is disabled)"),
            1);
  EXPECT_EQ(State(), "skipped: managed backup is disabled");
  EXPECT_FALSE(StatusOf().contains("slot"));
}

TEST_F(ClusterControllerTest, DisablingKeepsASlotThisAgentDidNotStreamThroughAndSaysHowToDropIt) {
  Set("enabled", "false");
  SlotView view;
  view.slot_exists = true;
  view.retained_bytes = 16 * kMiB;
  server_.slot = view;
  Step();
  EXPECT_TRUE(server_.dropped_slots.empty());
  json st = StatusOf();
  EXPECT_TRUE(Has(st["state"].get<std::string>(), "not dropped: this agent has not streamed through it")) << st.dump();
  EXPECT_EQ(st["slot"]["drop_sql"], std::string(kDropSql) + ";");
}

TEST_F(ClusterControllerTest, DroppedClusterStopsCaptureAndIsNotObserved) {
  c_.dropped = true;
  c_.stream_running = true;
  Step();
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(server_.opens, 0);
  EXPECT_EQ(CondOf(c_), Condition::kDropped);
  json st = StatusOf();
  EXPECT_EQ(st["condition"], "dropped");
  EXPECT_EQ(st["dropped"], true);
  EXPECT_EQ(st["streaming"], false);
  EXPECT_EQ(st["state"], "dropped: no more backups; backups kept until retention has elapsed");
}

// ---------------------------------------------------------------------------
// Failures: the server, the credentials, the storage
// ---------------------------------------------------------------------------

TEST_F(ClusterControllerTest, UnreachableServerIsFailingAndRecordedEachPass) {
  HealthyChain();
  c_.stream_running = true;
  server_.open_error = Status::Unavailable("connection to server at \"10.0.0.9\", port 5432 failed: Connection refused");
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_EQ(actions_.stop_capture, 1);
  EXPECT_EQ(CondOf(c_), Condition::kFailing);
  json st = StatusOf();
  EXPECT_EQ(st["state"], "error: connection to server at \"10.0.0.9\", port 5432 failed: Connection refused");
  EXPECT_EQ(st["role"], "unreachable");
  EXPECT_EQ(st["failing_part"], "server");
  ASSERT_EQ(st["faults"].size(), 1u);
  EXPECT_EQ(st["faults"][0]["activity"], "observe");
  EXPECT_EQ(st["faults"][0]["since"], FormatRfc3339(kStart));
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_TRUE(Begins(st["next_full"]["reason"].get<std::string>(), "cluster unreachable: connection to server")) << st.dump();
  EXPECT_FALSE(st["dropped"].get<bool>());

  clock_.Advance(1min);
  Step();
  st = StatusOf();
  EXPECT_EQ(st["faults"][0]["since"], FormatRfc3339(kStart)) << "the first failure of the run";
  EXPECT_EQ(st["faults"][0]["last"], FormatRfc3339(kStart + 1min));
  EXPECT_EQ(Events(HealthCategory::kPostgresError, "cluster unreachable: connection to server"), 2);
  EXPECT_EQ(Events(HealthCategory::kCredentialError), 0);

  // Back: the fault is over.
  server_.open_error = Status::Ok();
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kOk);
  EXPECT_TRUE(StatusOf()["faults"].empty());
  EXPECT_EQ(actions_.ensure_capture, 1);
}

TEST_F(ClusterControllerTest, UnreachableWhileTheMasterSwitchIsOffIsNoEvent) {
  server_.open_error = Status::Unavailable("connection refused");
  Step(/*master_on=*/false);
  EXPECT_EQ(Events(HealthCategory::kPostgresError), 0);
  EXPECT_EQ(StatusOf()["role"], "unreachable");
}

TEST_F(ClusterControllerTest, AuthenticationFailureNamesTheCredentials) {
  server_.open_error = Status::PermissionDenied("password authentication failed for user \"backup\"");
  Step();
  EXPECT_EQ(CondOf(c_), Condition::kFailing);
  json st = StatusOf();
  EXPECT_EQ(st["failing_part"], "credentials");
  EXPECT_EQ(st["role"], "unreachable");
  EXPECT_EQ(st["state"], "error: password authentication failed for user \"backup\"");
  EXPECT_EQ(Events(HealthCategory::kCredentialError, "password authentication failed"), 1);
  EXPECT_EQ(Events(HealthCategory::kPostgresError), 0);
}

TEST_F(ClusterControllerTest, InfoFailureAfterConnectingIsAServerFault) {
  server_.info = Status::Unavailable("server closed the connection unexpectedly");
  Step();
  json st = StatusOf();
  EXPECT_EQ(st["failing_part"], "server");
  EXPECT_EQ(st["role"], "unreachable");
  EXPECT_EQ(Events(HealthCategory::kPostgresError, "server closed the connection"), 1);
}

TEST_F(ClusterControllerTest, UnusableRepositoryWhilePostgresIsUpIsAStorageFault) {
  // The storage root is a regular file: the repository cannot be opened.
  const std::string file = dir_ + "/not-a-directory";
  std::ofstream(file) << "x";
  Set("storage_url", "file://" + file);
  Step();
  EXPECT_TRUE(actions_.fulls.empty());
  EXPECT_TRUE(actions_.logs.empty());
  EXPECT_EQ(actions_.ensure_capture, 1) << "capture keeps trying: it stops on its own error and says so";
  EXPECT_EQ(CondOf(c_), Condition::kFailing);
  json st = StatusOf();
  EXPECT_EQ(st["role"], "primary") << "PostgreSQL is up";
  EXPECT_EQ(st["failing_part"], "storage");
  ASSERT_EQ(st["faults"].size(), 1u);
  EXPECT_EQ(st["faults"][0]["activity"], "observe");
  EXPECT_EQ(st["faults"][0]["part"], "storage");
  EXPECT_TRUE(Begins(st["state"].get<std::string>(), "error: storage failing since " + FormatRfc3339(kStart) + ": ")) << st.dump();
  EXPECT_TRUE(Has(st["state"].get<std::string>(), "not a directory")) << st.dump();
  EXPECT_EQ(st["next_full"]["action"], "skip");
  EXPECT_TRUE(Begins(st["next_full"]["reason"].get<std::string>(), "storage unusable: ")) << st.dump();
  EXPECT_EQ(Events(HealthCategory::kStorageError), 1);
  EXPECT_EQ(Events(HealthCategory::kPostgresError), 0);

  // Usable again: the fault is over and the first full starts.
  Set("storage_url", url_);
  Step();
  EXPECT_TRUE(StatusOf()["faults"].empty());
  EXPECT_EQ(actions_.fulls.size(), 1u);
}

}  // namespace
}  // namespace sb
