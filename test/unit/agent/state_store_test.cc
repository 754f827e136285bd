// StateStore on a temporary SQLite file: what verbs change survives a
// reopen, the master switch defaults to on, known clusters upsert, jobs go
// running → finished/interrupted, health events are read back by time range.
#include "agent/state_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace sb {
namespace {

using namespace std::chrono_literals;

const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'767'571'200);

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("sb_state_store_test_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
    path_ = (dir_ / "sub" / "state.db").string();  // parent created by Open
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<StateStore> Open() {
    auto s = StateStore::Open(path_);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(StateStoreTest, OverridesAndDefaultsSurviveReopen) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    auto none = s->LoadClusterOverrides();
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
    auto no_defaults = s->LoadInstanceDefaults();
    ASSERT_TRUE(no_defaults.ok());
    EXPECT_FALSE(no_defaults->has_value());

    ASSERT_TRUE(s->SaveClusterOverrides("main", {{"enabled", "true"}, {"retention_days", "3"}}).ok());
    ASSERT_TRUE(s->SaveClusterOverrides("reports", {{"mode", "archive"}, {"storage_url", "azure://c/\"q\"\n"}}).ok());
    ASSERT_TRUE(s->SaveClusterOverrides("main", {{"enabled", "false"}, {"retention_days", "3"}}).ok());  // replaces
    ASSERT_TRUE(s->SaveClusterOverrides("empty", {}).ok());
    ASSERT_TRUE(s->SaveInstanceDefaults({{"enabled", "true"}, {"full_schedule", "weekly sun 01:00 2h"}}).ok());
  }
  auto s = Open();
  ASSERT_TRUE(s);
  auto o = s->LoadClusterOverrides();
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(*o, (std::map<std::string, PartialSettings>{
                    {"main", {{"enabled", "false"}, {"retention_days", "3"}}},
                    {"reports", {{"mode", "archive"}, {"storage_url", "azure://c/\"q\"\n"}}},
                    {"empty", {}}}));
  auto d = s->LoadInstanceDefaults();
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ(**d, (PartialSettings{{"enabled", "true"}, {"full_schedule", "weekly sun 01:00 2h"}}));
  // Saving empty defaults is distinct from never having saved any.
  ASSERT_TRUE(s->SaveInstanceDefaults({}).ok());
  d = s->LoadInstanceDefaults();
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->has_value());
  EXPECT_TRUE((*d)->empty());
}

TEST_F(StateStoreTest, MasterSwitchDefaultsOnAndPersists) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    auto on = s->MasterSwitch();
    ASSERT_TRUE(on.ok());
    EXPECT_TRUE(*on);
    ASSERT_TRUE(s->SetMasterSwitch(false).ok());
    EXPECT_FALSE(*s->MasterSwitch());
  }
  {
    auto s = Open();
    ASSERT_TRUE(s);
    EXPECT_FALSE(*s->MasterSwitch());
    ASSERT_TRUE(s->SetMasterSwitch(true).ok());
  }
  auto s = Open();
  ASSERT_TRUE(s);
  EXPECT_TRUE(*s->MasterSwitch());
}

TEST_F(StateStoreTest, KnownClustersUpsert) {
  auto s = Open();
  ASSERT_TRUE(s);
  KnownCluster main{.name = "main",
                    .system_identifier = 0xF123456789ABCDEFull,  // above INT64_MAX: kept exactly
                    .first_seen = kT0,
                    .defaults_applied = true,
                    .dropped = false,
                    .last_seen = kT0};
  ASSERT_TRUE(s->UpsertKnownCluster(main).ok());
  ASSERT_TRUE(s->UpsertKnownCluster({.name = "alpha", .system_identifier = 7, .first_seen = kT0 + 1s,
                                     .last_seen = kT0 + 1s})
                  .ok());
  main.first_seen = kT0 + 1h;  // a later sighting does not move first_seen
  main.last_seen = kT0 + 1h + 250ms;
  main.dropped = true;
  main.system_identifier = 42;
  ASSERT_TRUE(s->UpsertKnownCluster(main).ok());

  s.reset();
  s = Open();
  ASSERT_TRUE(s);
  auto k = s->KnownClusters();
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_EQ(k->size(), 2u);
  EXPECT_EQ((*k)[0].name, "alpha");
  EXPECT_EQ((*k)[0].system_identifier, 7u);
  EXPECT_FALSE((*k)[0].defaults_applied);
  EXPECT_EQ((*k)[1].name, "main");
  EXPECT_EQ((*k)[1].system_identifier, 42u);
  EXPECT_EQ((*k)[1].first_seen, kT0);
  EXPECT_EQ((*k)[1].last_seen, kT0 + 1h + 250ms);
  EXPECT_TRUE((*k)[1].defaults_applied);
  EXPECT_TRUE((*k)[1].dropped);

  ASSERT_TRUE(s->UpsertKnownCluster({.name = "big", .system_identifier = 0xF123456789ABCDEFull,
                                     .first_seen = kT0, .last_seen = kT0})
                  .ok());
  k = s->KnownClusters();
  ASSERT_TRUE(k.ok());
  EXPECT_EQ((*k)[1].name, "big");
  EXPECT_EQ((*k)[1].system_identifier, 0xF123456789ABCDEFull);
}

TEST_F(StateStoreTest, JobsStartFinishAndInterrupt) {
  int64_t full = 0, log = 0, other = 0;
  {
    auto s = Open();
    ASSERT_TRUE(s);
    auto a = s->StartJob({.cluster = "main", .kind = "full", .reason = "managed backup just enabled",
                          .started = kT0, .result = "running"});
    ASSERT_TRUE(a.ok()) << a.status().message();
    full = *a;
    auto b = s->StartJob({.cluster = "main", .kind = "log", .reason = "5MiB of WAL", .started = kT0 + 1s});
    ASSERT_TRUE(b.ok());
    log = *b;
    auto c = s->StartJob({.cluster = "reports", .kind = "full", .reason = "on demand", .started = kT0 + 2s});
    ASSERT_TRUE(c.ok());
    other = *c;
    EXPECT_LT(full, log);
    EXPECT_LT(log, other);
    ASSERT_TRUE(s->FinishJob(full, "ok", "20260105T000000Z-F-1a2b", kT0 + 90s).ok());
    Status missing = s->FinishJob(9999, "ok", "", kT0);
    EXPECT_TRUE(missing.IsNotFound()) << missing.message();

    auto jobs = s->RecentJobs("main", 10);
    ASSERT_TRUE(jobs.ok());
    ASSERT_EQ(jobs->size(), 2u);
    EXPECT_EQ((*jobs)[0].id, log);  // newest first
    EXPECT_EQ((*jobs)[0].result, "running");
    EXPECT_FALSE((*jobs)[0].finished.has_value());
    EXPECT_EQ((*jobs)[1].id, full);
    EXPECT_EQ((*jobs)[1].kind, "full");
    EXPECT_EQ((*jobs)[1].reason, "managed backup just enabled");
    EXPECT_EQ((*jobs)[1].result, "ok");
    EXPECT_EQ((*jobs)[1].detail, "20260105T000000Z-F-1a2b");
    EXPECT_EQ((*jobs)[1].started, kT0);
    EXPECT_EQ((*jobs)[1].finished, kT0 + 90s);
  }
  // A new agent process: what was left running is interrupted.
  auto s = Open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->MarkInterruptedJobs(kT0 + 1h).ok());
  auto all = s->RecentJobs("", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, other);
  EXPECT_EQ((*all)[0].result, "interrupted");
  EXPECT_EQ((*all)[0].finished, kT0 + 1h);
  EXPECT_FALSE((*all)[0].detail.empty());
  EXPECT_EQ((*all)[1].id, log);
  EXPECT_EQ((*all)[1].result, "interrupted");
  EXPECT_EQ((*all)[2].result, "ok");             // finished jobs untouched
  EXPECT_EQ((*all)[2].finished, kT0 + 90s);
  auto one = s->RecentJobs("", 1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, other);
  auto next = s->StartJob({.cluster = "main", .kind = "retention", .started = kT0 + 2h});
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, other);  // ids never reused
}

TEST_F(StateStoreTest, HealthEventsRange) {
  auto s = Open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->RecordHealthEvent({kT0 + 10s, "main", HealthCategory::kStorageError, "put failed"}).ok());
  ASSERT_TRUE(s->RecordHealthEvent({kT0, "", HealthCategory::kBackupLoop, "backup loop"}).ok());
  ASSERT_TRUE(s->RecordHealthEvent({kT0 + 20s, "main", HealthCategory::kChainBreak, "gap 0/3000000-0/4000000"}).ok());
  ASSERT_TRUE(s->RecordHealthEvent({kT0 + 30s, "reports", HealthCategory::kWarning, "standby not configured"}).ok());
  ASSERT_TRUE(s->RecordHealthEvent({kT0 + 30s + 1ms, "x", HealthCategory::kCorruptedBackup, "later"}).ok());

  auto all = s->HealthEvents(kT0 - 1h, kT0 + 1h);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].category, HealthCategory::kBackupLoop);  // ordered by time
  EXPECT_EQ((*all)[0].cluster, "");
  EXPECT_EQ((*all)[1].category, HealthCategory::kStorageError);
  EXPECT_EQ((*all)[1].message, "put failed");
  EXPECT_EQ((*all)[1].at, kT0 + 10s);

  auto mid = s->HealthEvents(kT0 + 10s, kT0 + 30s);  // both ends inclusive
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->size(), 3u);
  EXPECT_EQ((*mid)[0].category, HealthCategory::kStorageError);
  EXPECT_EQ((*mid)[1].category, HealthCategory::kChainBreak);
  EXPECT_EQ((*mid)[2].category, HealthCategory::kWarning);
  EXPECT_EQ((*mid)[2].cluster, "reports");

  auto none = s->HealthEvents(kT0 + 2h, kT0 + 3h);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StateStoreTest, EveryHealthCategoryRoundTrips) {
  auto s = Open();
  ASSERT_TRUE(s);
  const HealthCategory all[] = {
      HealthCategory::kStorageError,   HealthCategory::kPostgresError,  HealthCategory::kCredentialError,
      HealthCategory::kOtherError,     HealthCategory::kCorruptedBackup, HealthCategory::kDeletedBackup,
      HealthCategory::kBackupLoop,     HealthCategory::kRetentionLoop,  HealthCategory::kChainBreak,
      HealthCategory::kWarning};
  std::set<std::string> names;
  for (size_t i = 0; i < std::size(all); ++i) {
    names.insert(HealthCategoryName(all[i]));
    ASSERT_TRUE(s->RecordHealthEvent({kT0 + std::chrono::seconds(i), "c", all[i], "m"}).ok());
  }
  EXPECT_EQ(names.size(), std::size(all));
  auto back = s->HealthEvents(kT0, kT0 + 1h);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), std::size(all));
  for (size_t i = 0; i < std::size(all); ++i) EXPECT_EQ((*back)[i].category, all[i]) << i;
}

TEST_F(StateStoreTest, SchemaVersionAndWalMode) {
  {
    auto s = Open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->SetMasterSwitch(true).ok());
    EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));  // WAL journal mode
  }
  EXPECT_TRUE(std::filesystem::exists(path_));
  // Reopen of an existing database does not duplicate the version row or fail.
  { ASSERT_TRUE(Open()); }
  { ASSERT_TRUE(Open()); }
}

TEST_F(StateStoreTest, NotADatabase) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  {
    std::ofstream out(path_);
    out << std::string(8192, 'x');
  }
  auto s = StateStore::Open(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(path_), std::string::npos) << s.status().message();
}

TEST_F(StateStoreTest, ConcurrentUse) {
  auto s = Open();
  ASSERT_TRUE(s);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto id = s->StartJob({.cluster = "c" + std::to_string(t), .kind = "log", .started = kT0});
        ASSERT_TRUE(id.ok());
        ASSERT_TRUE(s->FinishJob(*id, "ok", "", kT0 + 1s).ok());
        ASSERT_TRUE(s->RecordHealthEvent({kT0, "c", HealthCategory::kBackupLoop, "loop"}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto jobs = s->RecentJobs("", 0);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 100u);
  auto ev = s->HealthEvents(kT0, kT0);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->size(), 100u);
}

}  // namespace
}  // namespace sb
