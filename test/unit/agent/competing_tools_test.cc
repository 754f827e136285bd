// Naming the other tools that take a cluster's WAL (coexistence rules 4 and 8): archive_command
// owners as their documentation writes them, and slot consumers by application_name.
#include "agent/competing_tools.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(RecogniseArchiverTest, NamesTheToolsFromTheirDocumentedCommands) {
  EXPECT_EQ(RecogniseArchiver("pgbackrest --stanza=main archive-push %p"), "pgBackRest");
  EXPECT_EQ(RecogniseArchiver("/usr/bin/pgbackrest --stanza=demo --config=/etc/pgbackrest.conf archive-push %p"),
            "pgBackRest");
  EXPECT_EQ(RecogniseArchiver("barman-wal-archive backup pg %p"), "Barman");
  EXPECT_EQ(RecogniseArchiver("barman-cloud-wal-archive s3://bucket/barman pg %p"), "Barman");
  EXPECT_EQ(RecogniseArchiver("rsync -a %p barman@backup:/var/lib/barman/pg/incoming/%f"), "Barman");
  EXPECT_EQ(RecogniseArchiver("wal-g wal-push %p"), "WAL-G");
  EXPECT_EQ(RecogniseArchiver("envdir /etc/wal-g.d/env /usr/local/bin/wal-g wal-push %p"), "WAL-G");
  EXPECT_EQ(RecogniseArchiver("/usr/local/bin/wal-g-pg wal-push \"%p\" --config /etc/walg.json"), "WAL-G");
  EXPECT_EQ(RecogniseArchiver("envdir /etc/wal-e.d/env wal-e wal-push %p"), "WAL-E");
  EXPECT_EQ(RecogniseArchiver("pg_probackup-15 archive-push -B /backup --instance main --wal-file-name=%f"),
            "pg_probackup");
  EXPECT_EQ(RecogniseArchiver("test ! -f /arch/%f && PGBACKREST_STANZA=x pgbackrest archive-push %p"), "pgBackRest");
  EXPECT_EQ(RecogniseArchiver("'/opt/pgBackRest/bin/pgbackrest' archive-push %p"), "pgBackRest");
}

TEST(RecogniseArchiverTest, NamesNothingElse) {
  EXPECT_EQ(RecogniseArchiver(""), std::nullopt);
  EXPECT_EQ(RecogniseArchiver("(disabled)"), std::nullopt);
  EXPECT_EQ(RecogniseArchiver("cp %p /mnt/server/archivedir/%f"), std::nullopt);
  EXPECT_EQ(RecogniseArchiver("test ! -f /mnt/server/archivedir/%f && cp %p /mnt/server/archivedir/%f"),
            std::nullopt);
  EXPECT_EQ(RecogniseArchiver("rsync -a %p standby:/var/lib/postgresql/archive/%f"), std::nullopt);
  EXPECT_EQ(RecogniseArchiver("/usr/bin/smartbackup wal-push %p --repo file:///backups"), std::nullopt);
  // Directory names and look-alikes are not the programs.
  EXPECT_EQ(RecogniseArchiver("cp %p /etc/wal-g.d/archive/%f"), std::nullopt);
  EXPECT_EQ(RecogniseArchiver("/usr/local/bin/pgbackrestless %p"), std::nullopt);
}

TEST(RecogniseWalConsumerTest, NamesSlotConsumersByApplicationName) {
  EXPECT_EQ(RecogniseWalConsumer("pg_receivewal"), "pg_receivewal");  // its default application_name
  EXPECT_EQ(RecogniseWalConsumer("pg_receivexlog"), "pg_receivewal");
  EXPECT_EQ(RecogniseWalConsumer("barman_receive_wal"), "Barman");
  EXPECT_EQ(RecogniseWalConsumer("pg_basebackup"), "pg_basebackup");
  EXPECT_EQ(RecogniseWalConsumer("walreceiver"), "a standby's WAL receiver");
  EXPECT_EQ(RecogniseWalConsumer("WAL-G"), "WAL-G");
  EXPECT_EQ(RecogniseWalConsumer("pg_probackup"), "pg_probackup");
  EXPECT_EQ(RecogniseWalConsumer(""), std::nullopt);
  EXPECT_EQ(RecogniseWalConsumer("smartbackup"), std::nullopt);
  EXPECT_EQ(RecogniseWalConsumer("smartbackup:primary:0123456789abcdef:main"), std::nullopt);
  EXPECT_EQ(RecogniseWalConsumer("psql"), std::nullopt);
  EXPECT_EQ(RecogniseWalConsumer("standby1"), std::nullopt);
}

TEST(CompetingToolsTest, Messages) {
  EXPECT_EQ(DescribeForeignArchiveCommand("pgbackrest --stanza=x archive-push %p"),
            "archive_command belongs to pgBackRest: 'pgbackrest --stanza=x archive-push %p'");
  EXPECT_EQ(DescribeForeignArchiveCommand("cp %p /a/%f"), "archive_command is 'cp %p /a/%f'");
  EXPECT_EQ(NameArchiveCommand("wal-g wal-push %p"), "WAL-G (archive_command 'wal-g wal-push %p')");
  EXPECT_EQ(NameArchiveCommand("cp %p /a/%f"), "archive_command 'cp %p /a/%f'");
  EXPECT_EQ(DescribeWalConsumer({.pid = 42, .application_name = "pg_receivewal"}), "pg_receivewal (pid 42)");
  EXPECT_EQ(DescribeWalConsumer({.pid = 42, .application_name = "pg_receivewal", .client_addr = "10.0.0.5"}),
            "pg_receivewal (pid 42, from 10.0.0.5)");
  EXPECT_EQ(DescribeWalConsumer({.pid = 7, .application_name = "barman_receive_wal"}),
            "Barman (application_name 'barman_receive_wal', pid 7)");
  EXPECT_EQ(DescribeWalConsumer({.pid = 7, .application_name = "mytool"}),
            "a client with application_name 'mytool' (pid 7)");
  EXPECT_EQ(DescribeWalConsumer({.pid = 7}), "a replication client without application_name (pid 7)");
}

}  // namespace
}  // namespace sb
