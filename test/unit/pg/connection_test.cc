// Real-cluster tests for PgConnection: error translation, ReadServerInfo and
// IDENTIFY_SYSTEM against a throwaway PostgreSQL 15.
#include "pg/connection.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "support/pg_cluster.h"

namespace sb {
namespace {

using test::PgCluster;

class PgConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = PgCluster::Create().release();
    cluster_->Psql("CREATE ROLE nrep LOGIN");
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  static std::string ConninfoAs(const std::string& user) {
    return "host=127.0.0.1 port=" + std::to_string(cluster_->port()) + " user=" + user + " dbname=postgres";
  }
  static PgCluster* cluster_;
};
PgCluster* PgConnectionTest::cluster_ = nullptr;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_F(PgConnectionTest, QueryReturnsRowsAndNulls) {
  auto conn = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto rows = (*conn)->Query("SELECT 1, NULL::text, 'x' UNION ALL SELECT 2, 'b', 'y' ORDER BY 1");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0][0], "1");
  EXPECT_EQ((*rows)[0][1], std::nullopt);
  EXPECT_EQ((*rows)[1][1], "b");
  EXPECT_TRUE((*conn)->Exec("CREATE TEMP TABLE t (x int)").ok());
  // Defaults we add when the connection string does not say otherwise.
  auto app = (*conn)->Query("SHOW application_name");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ((*app)[0][0], "smartbackup");
  EXPECT_EQ((*conn)->Describe(), "127.0.0.1:" + std::to_string(cluster_->port()) + " as user \"postgres\"");
}

TEST_F(PgConnectionTest, ApplicationNameFromConninfoWins) {
  auto conn = PgConnection::Connect(cluster_->conninfo() + " application_name=mine", false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto app = (*conn)->Query("SHOW application_name");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ((*app)[0][0], "mine");
}

TEST_F(PgConnectionTest, SqlErrorsAreTranslated) {
  auto conn = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto missing = (*conn)->Query("SELECT * FROM no_such_table");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
  EXPECT_TRUE(Has(missing.status().message(), "no_such_table")) << missing.status().message();
  auto syntax = (*conn)->Query("SELEC 1");
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument) << syntax.status().message();
  // The connection stays usable after an error.
  EXPECT_TRUE((*conn)->Exec("SELECT 1").ok());
}

TEST_F(PgConnectionTest, UnreachableServerIsUnavailable) {
  int port = test::FindFreePort();  // nothing listens there
  std::string ci = "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres password=sekrit dbname=postgres";
  auto conn = PgConnection::Connect(ci, false);
  ASSERT_FALSE(conn.ok());
  const std::string& m = conn.status().message();
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << m;
  EXPECT_TRUE(Has(m, "cannot connect to PostgreSQL at 127.0.0.1:" + std::to_string(port) + ": connection refused"))
      << m;
  EXPECT_TRUE(Has(m, "hint: check that the server runs and --pg is right")) << m;
  EXPECT_FALSE(Has(m, "sekrit")) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST_F(PgConnectionTest, UnknownRoleIsPermissionDenied) {
  auto conn = PgConnection::Connect(ConninfoAs("ghost"), false);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kPermissionDenied) << conn.status().message();
  EXPECT_TRUE(Has(conn.status().message(), "ghost")) << conn.status().message();
}

TEST_F(PgConnectionTest, MissingReplicationPrivilegeIsPermissionDenied) {
  auto regular = PgConnection::Connect(ConninfoAs("nrep"), false);
  ASSERT_TRUE(regular.ok()) << regular.status().message();
  auto repl = PgConnection::Connect(ConninfoAs("nrep"), true);
  ASSERT_FALSE(repl.ok());
  const std::string& m = repl.status().message();
  EXPECT_EQ(repl.status().code(), StatusCode::kPermissionDenied) << m;
  EXPECT_TRUE(Has(m, "ALTER ROLE nrep REPLICATION")) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST_F(PgConnectionTest, BadConninfoIsInvalidArgument) {
  auto conn = PgConnection::Connect("host=127.0.0.1 bogus_option=1", false);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kInvalidArgument) << conn.status().message();
  EXPECT_TRUE(Has(conn.status().message(), "bogus_option")) << conn.status().message();
}

TEST_F(PgConnectionTest, ReadServerInfoOnPrimary) {
  auto conn = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto info = ReadServerInfo(**conn);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(std::to_string(info->system_identifier),
            cluster_->Psql("SELECT system_identifier FROM pg_control_system()"));
  EXPECT_GE(info->server_version_num, 150000);
  EXPECT_LT(info->server_version_num, 160000);
  EXPECT_EQ(info->timeline, 1u);
  EXPECT_FALSE(info->in_recovery);
  EXPECT_EQ(info->wal_level, "replica");
  EXPECT_EQ(info->wal_segment_size, 16u * 1024 * 1024);
  EXPECT_EQ(info->archive_mode, "off");
  EXPECT_EQ(info->archive_command, "");
  EXPECT_GT(info->current_lsn.value, 0u);
}

TEST_F(PgConnectionTest, ReadServerInfoShowsArchiveCommandEvenWhenArchivingIsOff) {
  cluster_->Psql("ALTER SYSTEM SET archive_command = 'test ! -f /x/%f'");
  cluster_->Psql("SELECT pg_reload_conf()");
  auto conn = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  std::string seen;
  for (int i = 0; i < 50 && seen.empty(); ++i) {  // the reload is asynchronous
    auto info = ReadServerInfo(**conn);
    ASSERT_TRUE(info.ok()) << info.status().message();
    seen = info->archive_command;
    if (seen.empty()) usleep(100 * 1000);
  }
  EXPECT_EQ(seen, "test ! -f /x/%f");
  cluster_->Psql("ALTER SYSTEM RESET archive_command");
  cluster_->Psql("SELECT pg_reload_conf()");
}

TEST_F(PgConnectionTest, ReadServerInfoWithoutPrivilegesStillWorks) {
  auto conn = PgConnection::Connect(ConninfoAs("nrep"), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto info = ReadServerInfo(**conn);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_NE(info->system_identifier, 0u);
  EXPECT_EQ(info->archive_command, "");
}

TEST_F(PgConnectionTest, IdentifySystemMatchesServerInfo) {
  auto repl = PgConnection::Connect(cluster_->conninfo(), true);
  ASSERT_TRUE(repl.ok()) << repl.status().message();
  auto id = IdentifySystem(**repl);
  ASSERT_TRUE(id.ok()) << id.status().message();
  auto conn = PgConnection::Connect(cluster_->conninfo(), false);
  ASSERT_TRUE(conn.ok());
  auto info = ReadServerInfo(**conn);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(id->system_identifier, info->system_identifier);
  EXPECT_EQ(id->timeline, info->timeline);
  EXPECT_GT(id->xlogpos.value, 0u);
  // IDENTIFY_SYSTEM needs the walsender protocol.
  EXPECT_EQ(IdentifySystem(**conn).status().code(), StatusCode::kInvalidArgument);
}

TEST(PgConnectionLimitsTest, TooManyWalSendersIsUnavailable) {
  auto cluster = PgCluster::Create({.wal_level = "replica", .extra_conf = {"max_wal_senders = 0"}});
  ASSERT_NE(cluster, nullptr);
  auto repl = PgConnection::Connect(cluster->conninfo(), true);
  ASSERT_FALSE(repl.ok());
  EXPECT_EQ(repl.status().code(), StatusCode::kUnavailable) << repl.status().message();
  EXPECT_TRUE(Has(repl.status().message(), "max_wal_senders")) << repl.status().message();
}

}  // namespace
}  // namespace sb
