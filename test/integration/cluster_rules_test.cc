// Multi-node coexistence rules (spec section 4, rules 1 and 2 with rule 2's tip on instance
// defaults; README "Coexistence with other tools"): in-process agents, one per node, each with its
// own state_dir and socket, against real PostgreSQL 15 primaries and streaming standbys made with
// pg_basebackup -R on 127.0.0.1.
//   Rule1_AvailabilityGroupOnlyThePrimaryBacksUp           primary + 2 standbys, 3 agents, one storage
//   Rule1_TwoAgentsBelievingThemselvesPrimaryWriteOneChain the storage leases: one full, one WAL writer
//   Rule1_HybridStorageTargetsAreRefused                    a standby's agent on another storage: refused
//   Rule2_MirroringFailoverStartsANewContainer              standby skipped; promotion → new container and
//                                                           full; restores before and after the failover
//   Rule2_UnmanagedStandbyIsWarnedBeforeFailover            the primary's agent warns while a standby has no agent
//   Rule2_InstanceDefaultsSuspendedWhileAStandbyIsSetUp     defaults disabled → the standby found meanwhile keeps
//                                                           them off; re-enabled after; configured explicitly
//   NameRule_SecondSystemIdentifierUnderOneNameIsRefused    two clusters (two initdb), one name, one storage: the
//                                                           second is refused (agent and backup verb), the first's
//                                                           backups all survive both agents' retention
//   NameRule_DiscoveredNamesApartPerSystemIdentifier        "15-main" on two hosts: the second becomes
//                                                           "15-main-<system identifier>" and backs up apart
//   NameRule_RecreatedClusterIsANewDatabaseNotARefusal      initdb again under the same name, same agent
//                                                           (restarted): a new container and full, no refusal
// No assertion depends on timing; waits are bounded polls for conditions.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/agent.h"
#include "common/text.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"
#include "support/backup_on_demand.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSkippedStandby = "skipped: standby: backups run on the primary only";

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool Begins(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

class ClusterRulesTest : public ::testing::Test {
 protected:
  void SetUp() override { work_ = MakeTempDirForPostgres("clusterrules"); }
  void TearDown() override {
    agents_.clear();  // each destructor flushes WAL capture and joins running jobs
    standbys_.clear();
    primary_.reset();
    for (const auto& r : roots_) RemoveTree(r);
    RemoveTree(work_);
    if (saved_pguser_) {
      if (saved_pguser_->empty()) {
        ::unsetenv("PGUSER");
      } else {
        ::setenv("PGUSER", saved_pguser_->c_str(), 1);
      }
    }
  }

  std::string Repo(const std::string& name = "repo") const { return "file://" + work_ + "/" + name; }

  void CreatePrimary() {
    primary_ = PgCluster::Create();
    primary_->Psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
  }

  // A streaming standby of the primary (pg_basebackup -R, as postgres), running and streaming.
  PgCluster* AddStandby() {
    const std::string root = MakeTempDirForPostgres("standby");
    roots_.push_back(root);
    const std::string dir = root + "/data";
    CommandResult bb = RunAsPostgres(PgBinDir() + "/pg_basebackup -R -X stream -c fast -D " + ShellQuote(dir) +
                                     " -h 127.0.0.1 -p " + std::to_string(primary_->port()) + " -U postgres");
    if (bb.exit_code != 0) {
      ADD_FAILURE() << "pg_basebackup: " << bb.err;
      return nullptr;
    }
    standbys_.push_back(PgCluster::Adopt(dir));
    PgCluster* s = standbys_.back().get();
    EXPECT_EQ(s->Psql("SELECT pg_is_in_recovery()"), "t");
    bool streaming = WaitFor(
        [&] { return s->TryPsql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").out == "1\n"; },
        60s);
    EXPECT_TRUE(streaming) << "the standby never streamed from the primary";
    return s;
  }

  // One agent per node: its own state_dir and socket, the same [defaults] storage as every other node.
  Agent* MakeAgent(const std::string& node, const std::string& conninfo, const std::string& cluster_extra,
                   const std::string& agent_extra = "discover = false", const std::string& cluster = "main") {
    const std::string dir = work_ + "/" + node;
    fs::create_directories(dir);
    {
      std::ofstream f(dir + "/agent.toml");
      f << "[agent]\nstate_dir = \"" << dir << "/state\"\nsocket = \"" << dir << "/state/agent.sock\"\n"
        << "loop_interval = \"1s\"\n"
        << agent_extra << "\n\n[defaults]\ndrill_enabled = false\nstorage_url = \"" << Repo() << "\"\nflush_interval = \"1s\"\n";
      if (!conninfo.empty()) {
        f << "\n[[cluster]]\nname = \"" << cluster << "\"\nconninfo = \"" << conninfo << "\"\n" << cluster_extra << "\n";
      }
    }
    auto config = LoadAgentConfig(dir + "/agent.toml");
    if (!config.ok()) {
      ADD_FAILURE() << config.status().message();
      return nullptr;
    }
    auto agent = Agent::Create(*config);
    if (!agent.ok()) {
      ADD_FAILURE() << agent.status().message();
      return nullptr;
    }
    Agent* a = agent->get();
    agents_[node] = std::move(agent).value();
    return a;
  }
  std::string StateDir(const std::string& node) const { return work_ + "/" + node + "/state"; }

  json Api(Agent* a, const std::string& method, const std::string& path, const json& body = nullptr) {
    const std::string text = body.is_null() ? "" : body.dump();
    // On-demand backups are jobs: waited for here as backup-on-demand waits.
    auto r = method == "POST" && EndsWith(path, "/backup") ? BackupOnDemandSync(*a, path, text)
                                                           : a->HandleApi({.method = method, .path = path, .body = text});
    last_status_ = r.status;
    return json::parse(r.body);
  }
  json StatusOf(Agent* a, const std::string& db = "main") {
    json s = Api(a, "GET", "/v1/status");
    for (const auto& c : s["clusters"]) {
      if (c["database"] == db) return c;
    }
    return json::object();
  }
  std::string State(Agent* a, const std::string& db = "main") { return StatusOf(a, db).value("state", ""); }
  // Health events of `category` whose message contains `text`.
  int Events(Agent* a, const std::string& category, const std::string& text) {
    int n = 0;
    const json health = Api(a, "GET", "/v1/health");
    for (const auto& e : health["events"]) {
      n += e["category"] == category && Has(e["message"].get<std::string>(), text);
    }
    return n;
  }
  std::string Health(Agent* a) { return Api(a, "GET", "/v1/health").dump(1); }

  // Runs one backup loop of each agent, in order, until `pred` holds.
  template <typename Pred>
  bool LoopUntil(const std::vector<Agent*>& agents, Pred pred, std::chrono::seconds limit) {
    return WaitFor(
        [&] {
          for (Agent* a : agents) a->BackupLoopOnce();
          return pred();
        },
        limit);
  }
  bool Idle(Agent* a, const std::string& db = "main") { return StatusOf(a, db)["running"].empty(); }

  // The backups of `type` in a repository (none when it does not exist).
  std::vector<BackupManifest> Backups(const std::string& url, BackupType type) {
    auto storage = OpenStorage(url);
    if (!storage.ok()) return {};
    auto repo = Repository::Open(std::move(storage).value(), /*create=*/false);
    if (!repo.ok()) return {};
    auto listing = (*repo)->ListBackups("main");
    std::vector<BackupManifest> out;
    if (!listing.ok()) return out;
    for (const auto& m : listing->backups) {
      if (m.type == type) out.push_back(m);
    }
    return out;
  }

  // True once the cluster's smartbackup slot has moved to `lsn`: the WAL before it is durable in storage.
  // (PgCluster runs with synchronous_commit = off: LSNs are taken with pg_current_wal_insert_lsn(),
  // which is past a commit once it returns; the WAL writer flushes it soon after.)
  static bool Durable(PgCluster& c, const std::string& lsn) {
    return c.TryPsql("SELECT restart_lsn >= '" + lsn +
                     "'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'smartbackup_main'")
               .out == "t\n";
  }

  // Restores `target` into a new directory as postgres, starts it and waits for its promotion.
  std::unique_ptr<PgCluster> RestoreAndStart(const std::string& target, const std::string& name) {
    const std::string dir = work_ + "/restore-" + name;
    CommandResult r = RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + dir + " " + target);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "restore " << target << ": " << r.err;
      return nullptr;
    }
    auto c = PgCluster::Adopt(dir);
    bool promoted = WaitFor([&] { return c->TryPsql("SELECT pg_is_in_recovery()").out == "f\n"; }, 120s);
    if (!promoted) {
      ADD_FAILURE() << "restored cluster " << name << " still in recovery";
      return nullptr;
    }
    return c;
  }

  // The server log of a cluster Adopt()ed from `data_dir` (its socket dir is its temp root).
  static std::string ServerLogOf(const std::string& data_dir) {
    std::ifstream in(data_dir + "/postgresql.auto.conf");
    std::string line, root;
    const std::string key = "unix_socket_directories = '";
    while (std::getline(in, line)) {
      if (Begins(line, key)) root = line.substr(key.size(), line.size() - key.size() - 1);
    }
    std::ifstream log(root + "/server.log");
    std::stringstream ss;
    ss << log.rdbuf();
    return ss.str();
  }

  // Makes `standby` discoverable the Debian way: <etc>/15/<name>/postgresql.conf with its port and socket.
  static void AddToDiscovery(const std::string& etc, const std::string& name, PgCluster& c) {
    std::string socket, line;
    std::ifstream auto_conf(c.data_dir() + "/postgresql.auto.conf");
    const std::string key = "unix_socket_directories = '";
    while (std::getline(auto_conf, line)) {
      if (Begins(line, key)) socket = line.substr(key.size(), line.size() - key.size() - 1);  // the last one wins
    }
    fs::create_directories(etc + "/15/" + name);
    std::ofstream(etc + "/15/" + name + "/postgresql.conf")
        << "port = " << c.port() << "\nunix_socket_directories = '" << socket << "'\n";
  }
  // Discovered conninfo names no user; the in-process agent runs as root, PostgreSQL knows postgres.
  void UsePgUserPostgres() {
    const char* old = std::getenv("PGUSER");
    saved_pguser_ = old ? old : "";
    ::setenv("PGUSER", "postgres", 1);
  }

  std::string work_;
  std::unique_ptr<PgCluster> primary_;
  std::vector<std::unique_ptr<PgCluster>> standbys_;
  std::vector<std::string> roots_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
  std::optional<std::string> saved_pguser_;
  int last_status_ = 0;
};

// Rule 1: an availability group whose nodes' agents all target one storage. Only the primary backs
// up; each standby's agent says it is skipped, and that the primary's agent writes to this storage.
TEST_F(ClusterRulesTest, Rule1_AvailabilityGroupOnlyThePrimaryBacksUp) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  PgCluster* s1 = AddStandby();
  ASSERT_NE(s1, nullptr);
  PgCluster* s2 = AddStandby();
  ASSERT_NE(s2, nullptr);
  Agent* a1 = MakeAgent("node1", s1->conninfo(), "enabled = true");
  Agent* a2 = MakeAgent("node2", s2->conninfo(), "enabled = true");
  Agent* ap = MakeAgent("node0", primary_->conninfo(), "enabled = true");
  ASSERT_TRUE(a1 && a2 && ap);

  // The standbys' agents first: they are skipped, and the primary sees them before its agent looks.
  a1->BackupLoopOnce();
  a2->BackupLoopOnce();
  ASSERT_TRUE(LoopUntil({ap, a1, a2}, [&] { return Backups(Repo(), BackupType::kFull).size() >= 1; }, 90s))
      << State(ap);
  ASSERT_TRUE(WaitFor([&] { return Idle(ap); }, 60s)) << StatusOf(ap).dump();
  primary_->Psql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g");
  ASSERT_TRUE(LoopUntil(
      {a1, a2, ap},
      [&] { return Has(State(a1), "same storage") && Has(State(a2), "same storage") && StatusOf(ap)["streaming"].get<bool>(); },
      60s))
      << State(a1) << "\n" << State(a2);

  for (Agent* a : {a1, a2}) {
    json st = StatusOf(a);
    EXPECT_EQ(st["role"], "standby");
    const std::string state = st["state"].get<std::string>();
    EXPECT_TRUE(Begins(state, kSkippedStandby)) << state;
    EXPECT_TRUE(Has(state, "the primary at 127.0.0.1:" + std::to_string(primary_->port()) +
                               " is backed up by its agent to this same storage"))
        << state;
    EXPECT_EQ(st["next_full"]["action"], "skip");
    EXPECT_EQ(st["next_log"]["action"], "skip");
    EXPECT_FALSE(st["streaming"].get<bool>());
    EXPECT_TRUE(st["running"].empty());
    EXPECT_GE(Events(a, "warning", kSkippedStandby), 1) << Health(a);
  }
  // Only the primary wrote: one full backup, of its lineage; no standby holds a slot of ours.
  auto fulls = Backups(Repo(), BackupType::kFull);
  ASSERT_EQ(fulls.size(), 1u);
  EXPECT_EQ(std::to_string(fulls[0].system_identifier),
            primary_->Psql("SELECT system_identifier FROM pg_control_system()"));
  EXPECT_EQ(fulls[0].timeline, 1u);
  for (PgCluster* s : {s1, s2}) EXPECT_EQ(s->Psql("SELECT count(*) FROM pg_replication_slots"), "0");
  // Every standby has an agent on this storage: the primary's agent does not warn.
  json ps = StatusOf(ap);
  EXPECT_EQ(ps["role"], "primary");
  EXPECT_TRUE(Begins(ps["state"].get<std::string>(), "ok")) << ps.dump();
  EXPECT_FALSE(Has(ps["state"].get<std::string>(), "warning:")) << ps.dump();
  EXPECT_EQ(Events(ap, "warning", "standby(s) replicate"), 0) << Health(ap);
  // What an operator sees on the primary: one connection per agent, naming its role and storage.
  EXPECT_EQ(primary_->Psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'smartbackup:standby:%'"),
            "2");
  EXPECT_EQ(primary_->Psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'smartbackup:primary:%'"),
            "1");
}

// Rule 1: two agents that both believe they may back up the primary (both pointed at it) never
// write the chain at once: the storage leases let one write and the other back off, saying so.
TEST_F(ClusterRulesTest, Rule1_TwoAgentsBelievingThemselvesPrimaryWriteOneChain) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  primary_->Pgbench("-i -s 2 -q");  // a full backup that takes a moment
  Agent* a = MakeAgent("nodeA", primary_->conninfo(), "enabled = true");
  Agent* b = MakeAgent("nodeB", primary_->conninfo(), "enabled = true");
  ASSERT_TRUE(a && b);

  // Both decide at the same moment that the first full backup is due.
  std::thread ta([&] { a->BackupLoopOnce(); });
  std::thread tb([&] { b->BackupLoopOnce(); });
  ta.join();
  tb.join();
  ASSERT_TRUE(WaitFor([&] { return Idle(a) && Idle(b); }, 90s)) << StatusOf(a).dump() << StatusOf(b).dump();
  // More loops on both: WAL capture settles with one writer; no second full appears.
  auto stream_backoff = [&](Agent* x) { return Has(State(x), "locks/stream"); };
  ASSERT_TRUE(LoopUntil({a, b}, [&] { return stream_backoff(a) != stream_backoff(b); }, 60s))
      << State(a) << "\n" << State(b);
  for (int i = 0; i < 3; ++i) {
    a->BackupLoopOnce();
    b->BackupLoopOnce();
  }
  ASSERT_TRUE(WaitFor([&] { return Idle(a) && Idle(b); }, 60s));

  auto fulls = Backups(Repo(), BackupType::kFull);
  EXPECT_EQ(fulls.size(), 1u) << "one full backup, not one per agent";
  // The full backup: the agent that lost the lease (or found the other's full done) backed off, saying so.
  EXPECT_GE(Events(a, "warning", "backs off") + Events(b, "warning", "backs off"), 1)
      << Health(a) << Health(b);
  // WAL capture: exactly one agent streams; the other says who holds the stream lease.
  Agent* loser = stream_backoff(a) ? a : b;
  Agent* winner = loser == a ? b : a;
  const std::string winner_dir = StateDir(loser == a ? "nodeB" : "nodeA");
  const std::string state = State(loser);
  EXPECT_TRUE(Begins(state, "backs off: another smartbackup agent is writing the backups of \"main\"")) << state;
  EXPECT_TRUE(Has(state, "lease on \"db/main/locks/stream\" is held by smartbackup agent (state_dir " + winner_dir + ")"))
      << state;
  EXPECT_EQ(Events(loser, "warning", "db/main/locks/stream"), 1) << "said once, not every loop: " << Health(loser);
  EXPECT_TRUE(StatusOf(winner)["streaming"].get<bool>());
  EXPECT_FALSE(Has(State(winner), "locks/stream")) << State(winner);
  EXPECT_EQ(primary_->Psql("SELECT count(*) FROM pg_replication_slots WHERE active"), "1");
  // Both agents agree on what exists: one chain, no gap.
  EXPECT_FALSE(StatusOf(a)["chain_broken"].get<bool>());
  EXPECT_FALSE(StatusOf(b)["chain_broken"].get<bool>());
}

// Rule 1: a node whose agent targets another storage for the same cluster (the "hybrid" case) is
// refused with the reason: in status, health and the log, and when enabling through the API.
TEST_F(ClusterRulesTest, Rule1_HybridStorageTargetsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  PgCluster* s = AddStandby();
  ASSERT_NE(s, nullptr);
  Agent* ap = MakeAgent("node0", primary_->conninfo(), "enabled = true");
  Agent* as = MakeAgent("node1", s->conninfo(), "enabled = true\nstorage_url = \"" + Repo("other") + "\"");
  ASSERT_TRUE(ap && as);
  ASSERT_TRUE(LoopUntil({ap}, [&] { return Backups(Repo(), BackupType::kFull).size() >= 1; }, 90s)) << State(ap);

  ASSERT_TRUE(LoopUntil({as}, [&] { return Begins(State(as), "refused: hybrid availability group"); }, 60s))
      << State(as);
  const std::string state = State(as);
  EXPECT_TRUE(Has(state, "the smartbackup agent of the primary at 127.0.0.1:" + std::to_string(primary_->port()) +
                             " backs up this cluster to another storage"))
      << state;
  EXPECT_TRUE(Has(state, Repo("other"))) << state;
  EXPECT_TRUE(Has(state, "hint: set storage_url here to the primary agent's storage")) << state;
  EXPECT_EQ(Events(as, "other_error", "refused: hybrid availability group"), 1) << Health(as);
  EXPECT_EQ(StatusOf(as)["next_full"]["action"], "skip");
  EXPECT_TRUE(Backups(Repo("other"), BackupType::kFull).empty());
  // The primary's agent: this standby has no agent on its storage, and one agent targets another.
  ASSERT_TRUE(LoopUntil({ap}, [&] { return Has(State(ap), "target another storage"); }, 60s)) << State(ap);
  EXPECT_TRUE(Has(State(ap), "warning: 1 standby(s) replicate from this primary")) << State(ap);

  // Enabling another storage through the API is refused with the same reason; the primary's storage is accepted.
  json refused = Api(as, "POST", "/v1/db/main/config", {{"enable", true}, {"settings", {{"storage_url", Repo("third")}}}});
  EXPECT_EQ(last_status_, 400) << refused.dump();
  EXPECT_TRUE(Begins(refused.value("error", ""), "refused: hybrid availability group")) << refused.dump();
  json ok = Api(as, "POST", "/v1/db/main/config", {{"enable", true}, {"settings", {{"storage_url", Repo()}}}});
  ASSERT_EQ(last_status_, 200) << ok.dump();
  ASSERT_TRUE(LoopUntil({as, ap}, [&] { return Begins(State(as), kSkippedStandby) && !Has(State(ap), "warning:"); },
                        60s))
      << State(as) << "\n" << State(ap);
}

// Rule 2: mirroring. The standby's agent skips it; after `pg_ctl promote` the promoted node backs up
// in a new container, starting with a full backup; restores before and after the failover both work.
TEST_F(ClusterRulesTest, Rule2_MirroringFailoverStartsANewContainer) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  PgCluster* s = AddStandby();
  ASSERT_NE(s, nullptr);
  Agent* as = MakeAgent("node1", s->conninfo(), "enabled = true");
  Agent* ap = MakeAgent("node0", primary_->conninfo(), "enabled = true");
  ASSERT_TRUE(as && ap);
  as->BackupLoopOnce();
  EXPECT_TRUE(Begins(State(as), kSkippedStandby)) << State(as);
  ASSERT_TRUE(LoopUntil({ap, as}, [&] { return Backups(Repo(), BackupType::kFull).size() >= 1; }, 90s)) << State(ap);
  ASSERT_TRUE(WaitFor([&] { return Idle(ap); }, 60s));

  // Before the failover: 100 rows, then more WAL past that point, all durable in the storage.
  primary_->Psql("INSERT INTO t SELECT g, 'before ' || g FROM generate_series(1, 100) g");
  const std::string before_lsn = primary_->Psql("SELECT pg_current_wal_insert_lsn()");
  const std::string before_md5 = TableMd5(*primary_, "t", "id");
  primary_->Psql("CREATE TABLE after_point (x int); INSERT INTO after_point VALUES (1)");
  const std::string past = primary_->Psql("SELECT pg_current_wal_insert_lsn()");
  ASSERT_TRUE(LoopUntil({ap, as}, [&] { return Durable(*primary_, past); }, 60s)) << State(ap);
  const std::string old_container = Backups(Repo(), BackupType::kFull).at(0).container;

  // Failover: the primary stops (its walsenders hand the last WAL to the standby), the standby is promoted.
  primary_->Stop("fast");
  agents_.erase("node0");  // the old primary's agent: its WAL capture ended with its server
  CommandResult promote = RunAsPostgres(PgBinDir() + "/pg_ctl promote -w -t 60 -D " + ShellQuote(s->data_dir()));
  ASSERT_EQ(promote.exit_code, 0) << promote.err << promote.out;
  ASSERT_TRUE(WaitFor([&] { return s->TryPsql("SELECT pg_is_in_recovery()").out == "f\n"; }, 60s));

  // Out of recovery: backups start on the promoted node, in a new container, with a full backup.
  auto new_full = [&]() -> std::optional<BackupManifest> {
    for (const auto& m : Backups(Repo(), BackupType::kFull)) {
      if (m.timeline == 2) return m;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(LoopUntil({as}, [&] { return new_full().has_value(); }, 90s)) << State(as) << Health(as);
  ASSERT_TRUE(WaitFor([&] { return Idle(as); }, 60s));
  EXPECT_NE(new_full()->container, old_container);
  EXPECT_TRUE(Has(new_full()->container, "-00000002")) << new_full()->container;
  EXPECT_EQ(Events(as, "warning", "promoted: the cluster left recovery on timeline 2: backups start on this node in a "
                                  "new container, beginning with a full backup"),
            1)
      << Health(as);
  json st = StatusOf(as);
  EXPECT_EQ(st["role"], "primary");
  EXPECT_EQ(st["timeline"], 2);
  EXPECT_TRUE(Begins(st["state"].get<std::string>(), "ok")) << st.dump();

  // After the failover: 100 more rows, durable, sealed into a log backup.
  s->Psql("INSERT INTO t SELECT g, 'after ' || g FROM generate_series(101, 200) g");
  s->Psql("INSERT INTO after_point VALUES (2)");
  const std::string after_lsn = s->Psql("SELECT pg_current_wal_insert_lsn()");
  const std::string after_md5 = TableMd5(*s, "t", "id");
  ASSERT_TRUE(LoopUntil({as}, [&] { return Durable(*s, after_lsn); }, 60s)) << State(as);
  ASSERT_TRUE(WaitFor(
      [&] {
        json r = Api(as, "POST", "/v1/db/main/backup", {{"type", "log"}});
        return last_status_ == 200 || Has(r.value("error", ""), "no new WAL");
      },
      60s));
  agents_.clear();  // the agents write as root; the CLI restores as postgres
  RunCommand("chown -R postgres " + ShellQuote(work_ + "/repo"));

  auto latest = RestoreAndStart("--latest", "latest");
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->Psql("SELECT count(*) FROM t"), "200");
  EXPECT_EQ(TableMd5(*latest, "t", "id"), after_md5);
  latest.reset();
  auto before = RestoreAndStart("--lsn " + before_lsn, "before");
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->Psql("SELECT count(*) FROM t"), "100") << ServerLogOf(before->data_dir());
  EXPECT_EQ(TableMd5(*before, "t", "id"), before_md5);
}

// Rule 2: a standby with no agent would get no backups after a failover; the primary's agent warns
// about that before any failover happens, once, and stops warning when the standby gets its agent.
TEST_F(ClusterRulesTest, Rule2_UnmanagedStandbyIsWarnedBeforeFailover) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  PgCluster* s = AddStandby();
  ASSERT_NE(s, nullptr);
  Agent* ap = MakeAgent("node0", primary_->conninfo(), "enabled = true");
  ASSERT_NE(ap, nullptr);
  const std::string warning = "warning: 1 standby(s) replicate from this primary";
  ASSERT_TRUE(LoopUntil({ap}, [&] { return Has(State(ap), warning); }, 60s)) << State(ap);
  const std::string state = State(ap);
  EXPECT_TRUE(Begins(state, "ok; warning:")) << state;
  EXPECT_TRUE(Has(state, "but none run a smartbackup agent managing this cluster as \"main\" on this storage: no "
                         "backups follow a failover to an unmanaged standby"))
      << state;
  EXPECT_TRUE(Has(state, "storage_url = " + Repo())) << state;
  for (int i = 0; i < 3; ++i) ap->BackupLoopOnce();
  EXPECT_EQ(Events(ap, "warning", warning), 1) << "recorded once, not every loop: " << Health(ap);

  // The standby gets its agent, on the same storage: skipped as a standby, and the warning goes.
  Agent* as = MakeAgent("node1", s->conninfo(), "enabled = true");
  ASSERT_NE(as, nullptr);
  ASSERT_TRUE(LoopUntil({as, ap}, [&] { return !Has(State(ap), "warning:"); }, 60s)) << State(ap);
  EXPECT_TRUE(Begins(State(as), kSkippedStandby)) << State(as);
}

// Rule 2's tip: instance defaults suspended while a standby is set up are not applied to it when it
// is discovered, and re-enabling them later does not either; the operator then configures the
// standby explicitly (same storage, same name), which the primary's agent sees.
TEST_F(ClusterRulesTest, Rule2_InstanceDefaultsSuspendedWhileAStandbyIsSetUp) {
  UsePgUserPostgres();
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  // Debian names both nodes' cluster "15-main"; the primary's agent manages it under that name.
  Agent* ap = MakeAgent("node0", primary_->conninfo(), "enabled = true", "discover = false", "15-main");
  const std::string etc = work_ + "/etc";
  Agent* as = MakeAgent("node1", "", "", "discover = true\ndiscover_root = \"" + etc + "\"");
  ASSERT_TRUE(ap && as);
  Api(as, "POST", "/v1/instance-config", {{"enable", true}, {"settings", {{"storage_url", Repo()}}}});
  ASSERT_EQ(last_status_, 200);

  // Suspended while the standby is set up: the settings are kept.
  json off = Api(as, "POST", "/v1/instance-config", {{"enable", false}});
  ASSERT_EQ(last_status_, 200) << off.dump();
  EXPECT_EQ(off["enabled"], "false");
  EXPECT_EQ(off["storage_url"], Repo());
  PgCluster* s = AddStandby();
  ASSERT_NE(s, nullptr);
  AddToDiscovery(etc, "main", *s);
  as->BackupLoopOnce();
  EXPECT_EQ(Api(as, "GET", "/v1/db/15-main/config")["enabled"], "false");
  json st = StatusOf(as, "15-main");
  EXPECT_EQ(st["role"], "standby") << st.dump();
  EXPECT_EQ(st["state"], "skipped: managed backup is disabled (found while instance defaults were disabled: they "
                         "were not applied)")
      << st.dump();
  EXPECT_EQ(Events(as, "warning", "new cluster \"15-main\" found while instance defaults are disabled"), 1)
      << Health(as);

  // Re-enabled afterwards: not applied to the standby found meanwhile.
  Api(as, "POST", "/v1/instance-config", {{"enable", true}});
  ASSERT_EQ(last_status_, 200);
  as->BackupLoopOnce();
  EXPECT_EQ(Api(as, "GET", "/v1/db/15-main/config")["enabled"], "false");
  // Meanwhile the primary's agent warns that its standby has no agent.
  ASSERT_TRUE(LoopUntil({ap}, [&] { return Has(State(ap, "15-main"), "warning: 1 standby(s)"); }, 60s))
      << State(ap, "15-main");

  // The operator configures the standby explicitly: skipped as a standby, and the primary stops warning.
  json on = Api(as, "POST", "/v1/db/15-main/config", {{"enable", true}});
  ASSERT_EQ(last_status_, 200) << on.dump();
  EXPECT_EQ(on["storage_url"], Repo());
  ASSERT_TRUE(LoopUntil(
      {as, ap},
      [&] { return Has(State(as, "15-main"), "same storage") && !Has(State(ap, "15-main"), "warning:"); }, 60s))
      << State(as, "15-main") << "\n" << State(ap, "15-main");
  EXPECT_TRUE(Begins(State(as, "15-main"), kSkippedStandby));
}

// One system identifier per name: a second cluster (its own initdb) configured under a name that a
// live cluster already uses on the same storage is refused, in status and health, with what to do;
// it writes nothing, and its short retention does not purge the first one's backups (before this
// rule it took its own full into the shared name, then its retention deleted every backup of the
// first cluster as older than its newest). The standalone backup verb is refused too.
TEST_F(ClusterRulesTest, NameRule_SecondSystemIdentifierUnderOneNameIsRefused) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  auto other = PgCluster::Create();
  const std::string sysid_a = primary_->Psql("SELECT system_identifier FROM pg_control_system()");
  const std::string sysid_b = other->Psql("SELECT system_identifier FROM pg_control_system()");
  ASSERT_NE(sysid_a, sysid_b);
  Agent* a = MakeAgent("hostA", primary_->conninfo(), "enabled = true");
  // The second host keeps one retention "day" = one second: anything it may purge, it purges.
  Agent* b = MakeAgent("hostB", other->conninfo(), "enabled = true\nretention_days = 1\nretention_unit = \"1s\"");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(LoopUntil({a}, [&] { return Backups(Repo(), BackupType::kFull).size() == 1 && Idle(a); }, 90s))
      << State(a);
  const auto before = Backups(Repo(), BackupType::kFull);

  const std::string refusal = "refused: database name \"main\" is used on this storage by another live cluster "
                              "(system identifier " + sysid_a + ", last seen ";
  ASSERT_TRUE(LoopUntil({a, b}, [&] { return Begins(State(b), refusal); }, 60s)) << State(b);
  EXPECT_TRUE(Has(State(b), "this cluster's system identifier is " + sysid_b)) << State(b);
  EXPECT_TRUE(Has(State(b), "hint: give this cluster another name")) << State(b);
  EXPECT_EQ(Events(b, "other_error", "database name \"main\" is used on this storage by another live cluster"), 1)
      << Health(b);
  // Both run retention for longer than the second one's retention period.
  const auto until = std::chrono::steady_clock::now() + 3s;
  ASSERT_TRUE(WaitFor(
      [&] {
        a->BackupLoopOnce();
        b->BackupLoopOnce();
        a->RetentionLoopOnce();
        b->RetentionLoopOnce();
        return std::chrono::steady_clock::now() >= until;
      },
      60s));
  ASSERT_TRUE(WaitFor([&] { return Idle(a) && Idle(b, "main"); }, 60s));
  EXPECT_TRUE(Begins(State(b), refusal)) << State(b);
  EXPECT_FALSE(Has(State(a), "refused")) << State(a);
  // The first cluster's backups are all there; the second wrote none and holds no slot.
  auto fulls = Backups(Repo(), BackupType::kFull);
  for (const auto& m : before) {
    EXPECT_TRUE(std::any_of(fulls.begin(), fulls.end(), [&](const BackupManifest& f) {
      return f.backup_id == m.backup_id;
    })) << "backup " << m.backup_id << " of the first cluster is gone";
  }
  for (BackupType t : {BackupType::kFull, BackupType::kLog}) {
    for (const auto& m : Backups(Repo(), t)) {
      EXPECT_EQ(std::to_string(m.system_identifier), sysid_a) << "backup " << m.backup_id << " of the second cluster";
    }
  }
  EXPECT_EQ(other->Psql("SELECT count(*) FROM pg_replication_slots"), "0");
  EXPECT_TRUE(StatusOf(a)["streaming"].get<bool>());

  // The standalone verb: refused with the same line, nothing written.
  RunCommand("chown -R postgres " + ShellQuote(work_ + "/repo"));
  CommandResult r = RunSmartbackup("backup --repo " + Repo() + " --db main --pg " + ShellQuote(other->conninfo()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Has(r.err, "database name \"main\" is used on this storage by another live cluster")) << r.err;
  EXPECT_EQ(Backups(Repo(), BackupType::kFull).size(), fulls.size());
  // Under another name it is welcome.
  r = RunSmartbackup("backup --repo " + Repo() + " --db main-b --pg " + ShellQuote(other->conninfo()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  agents_.clear();
}

// Discovery names every Debian host's cluster "15-main". Hosts sharing one storage keep clusters
// with different system identifiers apart: the second becomes "15-main-<system identifier>" and
// backs up under that name, beside the first cluster's untouched backups. (A standby of the same
// primary keeps "15-main": Rule2_InstanceDefaultsSuspendedWhileAStandbyIsSetUp.)
TEST_F(ClusterRulesTest, NameRule_DiscoveredNamesApartPerSystemIdentifier) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  auto other = PgCluster::Create();
  const std::string sysid_b = other->Psql("SELECT system_identifier FROM pg_control_system()");
  Agent* a = MakeAgent("hostA", primary_->conninfo(), "enabled = true", "discover = false", "15-main");
  ASSERT_TRUE(a);
  ASSERT_TRUE(LoopUntil({a}, [&] { return Idle(a, "15-main") && StatusOf(a, "15-main")["last_full"].is_string(); },
                        90s))
      << State(a, "15-main");

  UsePgUserPostgres();
  const std::string etc = work_ + "/etc-b";
  // A cluster made by initdb has its socket in its root (postgresql.conf), not in postgresql.auto.conf.
  fs::create_directories(etc + "/15/main");
  std::ofstream(etc + "/15/main/postgresql.conf")
      << "port = " << other->port() << "\nunix_socket_directories = '"
      << fs::path(other->data_dir()).parent_path().string() << "'\n";
  Agent* b = MakeAgent("hostB", "", "", "discover = true\ndiscover_root = \"" + etc + "\"");
  ASSERT_TRUE(b);
  b->BackupLoopOnce();
  const std::string apart = "15-main-" + sysid_b;
  json names = json::array();
  const json status = Api(b, "GET", "/v1/status");
  for (const auto& c : status["clusters"]) names.push_back(c["database"]);
  EXPECT_EQ(names, json::array({apart})) << names.dump();

  json on = Api(b, "POST", "/v1/db/" + apart + "/config", {{"enable", true}});
  ASSERT_EQ(last_status_, 200) << on.dump();
  ASSERT_TRUE(LoopUntil({a, b}, [&] { return Idle(b, apart) && StatusOf(b, apart)["last_full"].is_string(); }, 90s))
      << State(b, apart);
  EXPECT_FALSE(Has(State(b, apart), "refused")) << State(b, apart);
  EXPECT_FALSE(Has(State(a, "15-main"), "refused")) << State(a, "15-main");
  agents_.clear();  // stop WAL capture before `other` stops
}

// A cluster re-created (initdb again) under the same name on the same agent is a new database (a new
// container and full), not a second cluster: the agent remembers the system identifier it claimed
// the name for, across a restart, although the old claim is still live on the storage.
TEST_F(ClusterRulesTest, NameRule_RecreatedClusterIsANewDatabaseNotARefusal) {
  ASSERT_NO_FATAL_FAILURE(CreatePrimary());
  Agent* a = MakeAgent("hostA", primary_->conninfo(), "enabled = true");
  ASSERT_TRUE(a);
  ASSERT_TRUE(LoopUntil({a}, [&] { return Backups(Repo(), BackupType::kFull).size() == 1 && Idle(a); }, 90s))
      << State(a);
  agents_.clear();  // the agent stops; its host gets a new cluster under the same name
  auto again = PgCluster::Create();
  const std::string sysid_new = again->Psql("SELECT system_identifier FROM pg_control_system()");
  a = MakeAgent("hostA", again->conninfo(), "enabled = true");
  ASSERT_TRUE(a);
  ASSERT_TRUE(LoopUntil({a}, [&] {
    for (const auto& m : Backups(Repo(), BackupType::kFull)) {
      if (std::to_string(m.system_identifier) == sysid_new) return Idle(a);
    }
    return false;
  }, 90s)) << State(a);
  EXPECT_FALSE(Has(State(a), "refused")) << State(a);
  EXPECT_EQ(Backups(Repo(), BackupType::kFull).size(), 2u);
  // Rule 8: a new system identifier is a chain break recorded in health, after the restart too.
  EXPECT_EQ(Events(a, "chain_break", "new system identifier " + sysid_new), 1) << Health(a);
  agents_.clear();
}

}  // namespace
}  // namespace sb::test
