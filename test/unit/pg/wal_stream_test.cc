// WalStream and the slot/timeline commands against real PostgreSQL 15
// clusters: slot lifecycle, byte-exact streaming, the slot following only
// ReportDurable(), cancellation, a slot held by another consumer, removed
// WAL, keepalives, and the end of a timeline at a standby's promotion.
#include "pg/wal_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "pg/connection.h"
#include "support/pg_cluster.h"

namespace sb {
namespace {

using namespace std::chrono_literals;
using test::PgCluster;
using test::RunAsPostgres;
using test::ShellQuote;
using Clock = std::chrono::steady_clock;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::unique_ptr<PgConnection> ReplConn(PgCluster& c) {
  auto conn = PgConnection::Connect(c.conninfo(), /*replication=*/true);
  EXPECT_TRUE(conn.ok()) << conn.status().message();
  return conn.ok() ? std::move(conn).value() : nullptr;
}

Lsn ParseLsn(const std::string& text) {
  auto l = Lsn::Parse(text);
  EXPECT_TRUE(l.ok()) << "not an LSN: \"" << text << "\"";
  return l.ok() ? *l : Lsn{};
}

uint64_t SegmentSize(PgCluster& c) {
  return std::strtoull(c.Psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'").c_str(), nullptr,
                       10);
}

std::string SlotRestart(PgCluster& c, const std::string& slot) {
  return c.Psql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '" + slot + "'");
}

// The walsender may still be exiting right after a stream is destroyed, and
// an active slot cannot be dropped: retry for a bounded time.
void DropSlotEventually(PgCluster& c, const std::string& slot) {
  auto conn = ReplConn(c);
  ASSERT_NE(conn, nullptr);
  Status st;
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
    st = DropSlot(*conn, slot);
    if (st.ok() || st.code() != StatusCode::kFailedPrecondition) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(st.ok()) << st.message();
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Collects a stream's bytes, checking they are contiguous from `start`.
struct Collector {
  explicit Collector(Lsn start) : start(start), end(start.value) {}
  // Reads until end >= target, a non-data event, or the deadline; returns
  // the last event (kTimeout when the deadline passed).
  Result<WalEvent> ReadUntil(WalStream& s, uint64_t target, std::chrono::seconds limit = 60s,
                             std::chrono::milliseconds poll = 1000ms) {
    auto deadline = Clock::now() + limit;
    WalEvent last;
    while (end < target && Clock::now() < deadline) {
      auto ev = s.Next(poll);
      if (!ev.ok()) return ev.status();
      last = *ev;
      if (ev->kind == WalEvent::Kind::kData) {
        Add(*ev);
        continue;
      }
      if (ev->kind != WalEvent::Kind::kTimeout) return last;
    }
    if (end < target) last.kind = WalEvent::Kind::kTimeout;
    return last;
  }
  void Add(const WalEvent& ev) {
    EXPECT_EQ(ev.start.value, end) << "gap or overlap: data at " << ev.start.ToString() << ", expected "
                                   << Lsn{end}.ToString();
    bytes.append(ev.data);
    end = ev.start.value + ev.data.size();
    ++messages;
  }
  Lsn start;
  uint64_t end;
  std::string bytes;
  int messages = 0;
};

// Tests share one primary (default wal_sender_timeout) and one with a 2 s
// wal_sender_timeout for the keepalive tests.
class WalStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = PgCluster::Create().release();
    fast_ = PgCluster::Create({.extra_conf = {"wal_sender_timeout = '2s'"}}).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    delete fast_;
    fast_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_NE(fast_, nullptr);
  }
  static PgCluster* cluster_;
  static PgCluster* fast_;
};
PgCluster* WalStreamTest::cluster_ = nullptr;
PgCluster* WalStreamTest::fast_ = nullptr;

TEST_F(WalStreamTest, SlotLifecycle) {
  auto conn = ReplConn(*cluster_);
  ASSERT_NE(conn, nullptr);
  auto missing = ReadReplicationSlot(*conn, "ws_lifecycle");
  ASSERT_TRUE(missing.ok()) << missing.status().message();
  EXPECT_FALSE(missing->exists);
  EXPECT_EQ(missing->name, "ws_lifecycle");

  auto created = CreatePhysicalSlot(*conn, "ws_lifecycle");
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_GT(created->value, 0u);
  EXPECT_EQ(SlotRestart(*cluster_, "ws_lifecycle"), created->ToString());

  auto info = ReadReplicationSlot(*conn, "ws_lifecycle");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_TRUE(info->exists);
  EXPECT_EQ(info->slot_type, "physical");
  ASSERT_TRUE(info->restart_lsn.has_value());
  EXPECT_EQ(*info->restart_lsn, *created);
  ASSERT_TRUE(info->restart_tli.has_value());
  EXPECT_EQ(*info->restart_tli, 1u);

  auto again = CreatePhysicalSlot(*conn, "ws_lifecycle");
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status().message();
  EXPECT_TRUE(Has(again.status().message(), "ws_lifecycle")) << again.status().message();

  EXPECT_TRUE(DropSlot(*conn, "ws_lifecycle").ok());
  auto gone = ReadReplicationSlot(*conn, "ws_lifecycle");
  ASSERT_TRUE(gone.ok()) << gone.status().message();
  EXPECT_FALSE(gone->exists);
  Status drop_missing = DropSlot(*conn, "ws_lifecycle");
  EXPECT_EQ(drop_missing.code(), StatusCode::kNotFound) << drop_missing.message();
  EXPECT_EQ(cluster_->Psql("SELECT count(*) FROM pg_replication_slots"), "0");
}

TEST_F(WalStreamTest, RejectsBadSlotNamesAndRegularConnections) {
  auto conn = ReplConn(*cluster_);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(CreatePhysicalSlot(*conn, "Bad-Name").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadReplicationSlot(*conn, "x\"; DROP").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DropSlot(*conn, std::string(64, 'a')).code(), StatusCode::kInvalidArgument);
  auto regular = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(regular.ok());
  EXPECT_EQ(ReadReplicationSlot(**regular, "ok_name").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FetchTimelineHistory(*conn, 1).status().code(), StatusCode::kInvalidArgument);
  auto s = WalStream::Start(cluster_->conninfo(), "No Good", Lsn{0x1000000}, 1);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(WalStreamTest, StreamsContiguousWalEqualToServerFilesAndSlotFollowsReportDurable) {
  const uint64_t seg = SegmentSize(*cluster_);
  ASSERT_GT(seg, 0u);
  auto conn = ReplConn(*cluster_);
  ASSERT_NE(conn, nullptr);
  auto restart = CreatePhysicalSlot(*conn, "ws_stream");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  const Lsn start{restart->value & ~(seg - 1)};

  auto stream = WalStream::Start(cluster_->conninfo(), "ws_stream", start, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().message();

  cluster_->Psql("CREATE TABLE ws_t (id int, pad text)");
  cluster_->Psql("INSERT INTO ws_t SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g");
  cluster_->Psql("SELECT pg_switch_wal()");
  const Lsn target = ParseLsn(cluster_->Psql("SELECT pg_current_wal_lsn()"));
  ASSERT_GE(target.value, start.value + seg) << "the switch should complete the first segment";

  Collector c(start);
  auto last = c.ReadUntil(**stream, target.value);
  ASSERT_TRUE(last.ok()) << last.status().message();
  ASSERT_GE(c.end, target.value) << "received up to " << Lsn{c.end}.ToString();
  EXPECT_GE(last->server_wal_end, target);
  EXPECT_GT(c.messages, 1);

  // The first whole segment, byte for byte as the server has it in pg_wal.
  const std::string name = WalSegmentName(1, start, seg);
  const std::string file = ReadWholeFile(cluster_->data_dir() + "/pg_wal/" + name);
  ASSERT_EQ(file.size(), seg) << name;
  ASSERT_GE(c.bytes.size(), seg);
  EXPECT_TRUE(c.bytes.compare(0, seg, file) == 0) << "streamed bytes differ from " << name;

  // Receiving alone does not move the slot.
  EXPECT_EQ(SlotRestart(*cluster_, "ws_stream"), restart->ToString());

  // Reporting does, to exactly the reported position.
  const Lsn durable{start.value + seg};
  ASSERT_TRUE((*stream)->ReportDurable(durable).ok());
  std::string now;
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
    now = SlotRestart(*cluster_, "ws_stream");
    if (now == durable.ToString()) break;
    auto ev = (*stream)->Next(100ms);  // keep serving the connection meanwhile
    ASSERT_TRUE(ev.ok()) << ev.status().message();
  }
  EXPECT_EQ(now, durable.ToString());
  // A lower report never moves the slot back.
  ASSERT_TRUE((*stream)->ReportDurable(start).ok());
  auto ev = (*stream)->Next(300ms);
  ASSERT_TRUE(ev.ok()) << ev.status().message();
  EXPECT_EQ(SlotRestart(*cluster_, "ws_stream"), durable.ToString());

  stream->reset();
  cluster_->Psql("DROP TABLE ws_t");
  DropSlotEventually(*cluster_, "ws_stream");
}

// The key safety property: status updates go out (answering keepalives),
// they report the received WAL as written, but the slot stays put.
TEST_F(WalStreamTest, SlotDoesNotAdvanceWithoutReportDurable) {
  const uint64_t seg = SegmentSize(*fast_);
  auto conn = ReplConn(*fast_);
  ASSERT_NE(conn, nullptr);
  auto restart = CreatePhysicalSlot(*conn, "ws_safe");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  const Lsn start{restart->value & ~(seg - 1)};
  auto stream = WalStream::Start(fast_->conninfo(), "ws_safe", start, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().message();

  // The workload runs beside the stream: with a 2 s wal_sender_timeout the
  // stream must keep being served.
  auto workload = std::async(std::launch::async, [] {
    fast_->Psql("CREATE TABLE ws_safe_t AS SELECT g FROM generate_series(1, 10000) g");
    fast_->Psql("SELECT pg_switch_wal()");
    return fast_->Psql("SELECT pg_current_wal_lsn()");
  });
  Collector c(start);
  uint64_t target = UINT64_MAX;
  auto began = Clock::now();
  while (Clock::now() - began < 60s) {
    if (target == UINT64_MAX && workload.wait_for(0s) == std::future_status::ready) {
      target = ParseLsn(workload.get()).value;
    }
    if (c.end >= target && Clock::now() - began > 3s) break;
    auto ev = (*stream)->Next(200ms);
    ASSERT_TRUE(ev.ok()) << ev.status().message();
    if (ev->kind == WalEvent::Kind::kData) c.Add(*ev);
  }
  ASSERT_NE(target, UINT64_MAX);
  ASSERT_GE(c.end, target);

  // Our replies reached the server: it shows the received position as
  // written, and nothing as flushed.
  std::string row;
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
    row = fast_->Psql("SELECT write_lsn >= '" + Lsn{target}.ToString() +
                      "'::pg_lsn, coalesce(flush_lsn, '0/0') FROM pg_stat_replication WHERE state = 'streaming'");
    if (Has(row, "t|")) break;
    auto ev = (*stream)->Next(200ms);
    ASSERT_TRUE(ev.ok()) << ev.status().message();
  }
  EXPECT_EQ(row, "t|0/0");
  EXPECT_EQ(SlotRestart(*fast_, "ws_safe"), restart->ToString());

  stream->reset();
  fast_->Psql("DROP TABLE ws_safe_t");
  DropSlotEventually(*fast_, "ws_safe");
}

// wal_sender_timeout = 2 s: only answered keepalives keep the stream alive
// through 5 s without WAL.
TEST_F(WalStreamTest, AnswersKeepalivesWhileIdle) {
  auto conn = ReplConn(*fast_);
  ASSERT_NE(conn, nullptr);
  auto restart = CreatePhysicalSlot(*conn, "ws_idle");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  auto stream = WalStream::Start(fast_->conninfo(), "ws_idle", *restart, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  Collector c(*restart);
  int timeouts = 0;
  for (auto end = Clock::now() + 5s; Clock::now() < end;) {
    auto ev = (*stream)->Next(500ms);
    ASSERT_TRUE(ev.ok()) << ev.status().message();
    ASSERT_TRUE(ev->kind == WalEvent::Kind::kTimeout || ev->kind == WalEvent::Kind::kData);
    if (ev->kind == WalEvent::Kind::kTimeout) ++timeouts;
    if (ev->kind == WalEvent::Kind::kData) c.Add(*ev);
  }
  EXPECT_GT(timeouts, 3);
  EXPECT_EQ(fast_->Psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"), "1");
  // And the stream still delivers.
  fast_->Psql("SELECT pg_switch_wal()");
  const Lsn target = ParseLsn(fast_->Psql("SELECT pg_current_wal_lsn()"));
  auto last = c.ReadUntil(**stream, target.value, 30s, 500ms);
  ASSERT_TRUE(last.ok()) << last.status().message();
  EXPECT_GE(c.end, target.value);
  stream->reset();
  DropSlotEventually(*fast_, "ws_idle");
}

TEST_F(WalStreamTest, CancelFromAnotherThread) {
  auto conn = ReplConn(*cluster_);
  ASSERT_NE(conn, nullptr);
  auto restart = CreatePhysicalSlot(*conn, "ws_cancel");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  auto stream = WalStream::Start(cluster_->conninfo(), "ws_cancel", *restart, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  WalStream* s = stream->get();
  // Drain what is there, so Next() really blocks.
  for (;;) {
    auto ev = s->Next(200ms);
    ASSERT_TRUE(ev.ok()) << ev.status().message();
    if (ev->kind == WalEvent::Kind::kTimeout) break;
  }
  auto began = Clock::now();
  std::thread canceller([s] {
    std::this_thread::sleep_for(300ms);
    s->Cancel();
  });
  // Background WAL (autovacuum, checkpoints) may arrive before the cancel:
  // data events are fine, the first other event must be the cancellation.
  auto ev = s->Next(60s);
  while (ev.ok() && ev->kind == WalEvent::Kind::kData) ev = s->Next(60s);
  auto took = Clock::now() - began;
  canceller.join();
  ASSERT_TRUE(ev.ok()) << ev.status().message();
  EXPECT_EQ(ev->kind, WalEvent::Kind::kCancelled);
  EXPECT_LT(took, 10s);
  // Sticky: the stream stays cancelled.
  auto again = s->Next(60s);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kind, WalEvent::Kind::kCancelled);
  stream->reset();
  DropSlotEventually(*cluster_, "ws_cancel");
}

TEST_F(WalStreamTest, SlotInUseAndMissingSlot) {
  auto conn = ReplConn(*cluster_);
  ASSERT_NE(conn, nullptr);
  auto restart = CreatePhysicalSlot(*conn, "ws_busy");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  auto first = WalStream::Start(cluster_->conninfo(), "ws_busy", *restart, 1);
  ASSERT_TRUE(first.ok()) << first.status().message();

  auto second = WalStream::Start(cluster_->conninfo(), "ws_busy", *restart, 1);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition) << second.status().message();
  EXPECT_TRUE(Has(second.status().message(), "replication slot \"ws_busy\" is in use by another process (pid "))
      << second.status().message();

  Status drop = DropSlot(*conn, "ws_busy");
  EXPECT_EQ(drop.code(), StatusCode::kFailedPrecondition) << drop.message();
  EXPECT_TRUE(Has(drop.message(), "\"ws_busy\" is in use")) << drop.message();
  EXPECT_TRUE(Has(drop.message(), "pid ")) << drop.message();

  // The first stream is unaffected.
  auto ev = (*first)->Next(200ms);
  EXPECT_TRUE(ev.ok()) << ev.status().message();
  first->reset();
  DropSlotEventually(*cluster_, "ws_busy");

  auto missing = WalStream::Start(cluster_->conninfo(), "ws_nonesuch", *restart, 1);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
  EXPECT_TRUE(Has(missing.status().message(), "replication slot \"ws_nonesuch\" does not exist"))
      << missing.status().message();
}

// WAL the server has recycled: a chain break callers must see as such.
TEST_F(WalStreamTest, RemovedWalIsAFailedPreconditionNamingTheLsn) {
  const uint64_t seg = SegmentSize(*cluster_);
  const Lsn first_segment{seg};  // 000000010000000000000001, initdb's
  const std::string name = WalSegmentName(1, first_segment, seg);
  for (int i = 0; i < 3; ++i) cluster_->Psql("SELECT pg_switch_wal(); CHECKPOINT");
  if (cluster_->Psql("SELECT count(*) FROM pg_ls_waldir() WHERE name = '" + name + "'") != "0") {
    GTEST_SKIP() << name << " is still in pg_wal";
  }
  // No slot: nothing holds the old segment.
  auto stream = WalStream::Start(cluster_->conninfo(), "", first_segment, 1);
  Status st = stream.status();
  if (stream.ok()) {
    for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
      auto ev = (*stream)->Next(1000ms);
      if (!ev.ok()) {
        st = ev.status();
        break;
      }
      ASSERT_NE(ev->kind, WalEvent::Kind::kData) << "streamed WAL that should be gone";
    }
  }
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.message();
  EXPECT_TRUE(Has(st.message(), first_segment.ToString())) << st.message();
  EXPECT_TRUE(Has(st.message(), "removed")) << st.message();
}

// A standby streamed through a slot of its own ends timeline 1 when it is
// promoted; the history file of timeline 2 records the switch point.
TEST_F(WalStreamTest, PromotionEndsTheTimeline) {
  const uint64_t seg = SegmentSize(*cluster_);
  struct TempDir {
    explicit TempDir(const std::string& tag) : path(test::MakeTempDirForPostgres(tag)) {}
    ~TempDir() { test::RemoveTree(path); }
    std::string path;
  } dir("ws-standby");
  test::CommandResult bb =
      RunAsPostgres(test::PgBinDir() + "/pg_basebackup -D " + ShellQuote(dir.path) + " -R -X stream -c fast -h " +
                    "127.0.0.1 -p " + std::to_string(cluster_->port()) + " -U postgres");
  ASSERT_EQ(bb.exit_code, 0) << bb.err;
  auto standby = PgCluster::Adopt(dir.path);
  ASSERT_NE(standby, nullptr);

  auto sconn = ReplConn(*standby);
  ASSERT_NE(sconn, nullptr);
  auto restart = CreatePhysicalSlot(*sconn, "ws_standby");
  ASSERT_TRUE(restart.ok()) << restart.status().message();
  const Lsn start{restart->value & ~(seg - 1)};
  auto stream = WalStream::Start(standby->conninfo(), "ws_standby", start, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().message();

  cluster_->Psql("CREATE TABLE ws_promote AS SELECT g FROM generate_series(1, 5000) g");
  const std::string primary_lsn = cluster_->Psql("SELECT pg_current_wal_lsn()");
  Collector c(start);
  std::string caught_up;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
    caught_up = standby->Psql("SELECT pg_last_wal_replay_lsn() >= '" + primary_lsn + "'::pg_lsn");
    if (caught_up == "t") break;
    auto ev = (*stream)->Next(100ms);
    ASSERT_TRUE(ev.ok()) << ev.status().message();
    if (ev->kind == WalEvent::Kind::kData) c.Add(*ev);
  }
  ASSERT_EQ(caught_up, "t");

  auto early = c.ReadUntil(**stream, ParseLsn(primary_lsn).value, 30s, 200ms);
  ASSERT_TRUE(early.ok()) << early.status().message();

  test::CommandResult promote =
      RunAsPostgres(test::PgBinDir() + "/pg_ctl promote -w -t 60 -D " + ShellQuote(dir.path));
  ASSERT_EQ(promote.exit_code, 0) << promote.err << promote.out;

  auto last = c.ReadUntil(**stream, UINT64_MAX, 60s, 500ms);
  ASSERT_TRUE(last.ok()) << last.status().message();
  ASSERT_EQ(last->kind, WalEvent::Kind::kTimelineEnd);
  EXPECT_EQ(last->next_timeline, 2u);
  EXPECT_GE(last->next_start.value, ParseLsn(primary_lsn).value);
  EXPECT_EQ(c.end, last->next_start.value) << "timeline 1 should be streamed up to the switch point";
  // The end repeats; there is nothing more to report on this stream.
  auto again = (*stream)->Next(10ms);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kind, WalEvent::Kind::kTimelineEnd);
  EXPECT_EQ((*stream)->ReportDurable(last->next_start).code(), StatusCode::kFailedPrecondition);

  auto conn2 = ReplConn(*standby);
  ASSERT_NE(conn2, nullptr);
  auto history = FetchTimelineHistory(*conn2, 2);
  ASSERT_TRUE(history.ok()) << history.status().message();
  EXPECT_EQ(history->filename, "00000002.history");
  EXPECT_TRUE(Has(history->content, "1\t" + last->next_start.ToString())) << history->content;

  // Asking for timeline 1 exactly at its end: the end straight away.
  auto at_end = WalStream::Start(standby->conninfo(), "", last->next_start, 1);
  ASSERT_TRUE(at_end.ok()) << at_end.status().message();
  auto end_ev = (*at_end)->Next(5s);
  ASSERT_TRUE(end_ev.ok()) << end_ev.status().message();
  EXPECT_EQ(end_ev->kind, WalEvent::Kind::kTimelineEnd);
  EXPECT_EQ(end_ev->next_timeline, 2u);
  EXPECT_EQ(end_ev->next_start, last->next_start);

  // And the stream continues on timeline 2 through the same slot.
  stream->reset();
  std::unique_ptr<WalStream> next;
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
    auto s2 = WalStream::Start(standby->conninfo(), "ws_standby", last->next_start, 2);
    if (s2.ok()) {
      next = std::move(s2).value();
      break;
    }
    ASSERT_EQ(s2.status().code(), StatusCode::kFailedPrecondition) << s2.status().message();  // old one exiting
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(next, nullptr);
  standby->Psql("CREATE TABLE after_promote (id int)");
  const Lsn tli2_target = ParseLsn(standby->Psql("SELECT pg_current_wal_lsn()"));
  Collector c2(last->next_start);
  auto tli2 = c2.ReadUntil(*next, tli2_target.value, 30s, 200ms);
  ASSERT_TRUE(tli2.ok()) << tli2.status().message();
  EXPECT_GE(c2.end, tli2_target.value);
  next.reset();
  standby.reset();
  cluster_->Psql("DROP TABLE ws_promote");
}

}  // namespace
}  // namespace sb
