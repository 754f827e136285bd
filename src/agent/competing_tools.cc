#include "agent/competing_tools.h"

#include <fmt/core.h>

#include <array>
#include <cctype>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/text.h"
#include "pg/connection.h"

namespace sb {
namespace {

// Shell words, roughly: split on blanks and the operators that end a word; quotes dropped.
std::vector<std::string> Words(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  for (char c : command) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' ||
        c == '<' || c == '>' || c == '`') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else if (c != '\'' && c != '"') {
      word.push_back(c);
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::string Basename(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// An executable's name, exactly or with a version suffix ("pg_probackup-15").
bool IsProgram(const std::string& name, std::string_view program) {
  if (name.compare(0, program.size(), program) != 0) return false;
  return name.size() == program.size() || name[program.size()] == '-';
}

}  // namespace

std::optional<std::string> RecogniseArchiver(std::string_view archive_command) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kPrograms = {{
      {"pgbackrest", "pgBackRest"},
      {"barman-wal-archive", "Barman"},
      {"barman-cloud-wal-archive", "Barman"},
      {"barman", "Barman"},
      {"wal-g", "WAL-G"},
      {"wal-e", "WAL-E"},
      {"pg_probackup", "pg_probackup"},
  }};
  const std::vector<std::string> words = Words(archive_command);
  for (const auto& w : words) {
    const std::string name = Lower(Basename(w));
    for (const auto& [program, tool] : kPrograms) {
      if (IsProgram(name, program)) return std::string(tool);
    }
  }
  // Barman's rsync method ships to its incoming directory: "... barman@backup:/var/lib/barman/<server>/incoming/%f".
  for (const auto& w : words) {
    const std::string lower = Lower(w);
    if (lower.find("barman") != std::string::npos && lower.find("incoming") != std::string::npos) return "Barman";
  }
  return std::nullopt;
}

std::optional<std::string> RecogniseWalConsumer(std::string_view application_name) {
  const std::string name = Lower(application_name);
  if (name.empty() || name.rfind("smartbackup", 0) == 0) return std::nullopt;
  if (name == "pg_receivewal" || name == "pg_receivexlog") return "pg_receivewal";
  if (name.rfind("barman", 0) == 0) return "Barman";
  if (name == "pg_basebackup") return "pg_basebackup";
  if (name == "walreceiver") return "a standby's WAL receiver";
  if (IsProgram(name, "wal-g") || IsProgram(name, "walg")) return "WAL-G";
  if (IsProgram(name, "pg_probackup")) return "pg_probackup";
  if (IsProgram(name, "pgbackrest")) return "pgBackRest";
  return std::nullopt;
}

std::string DescribeForeignArchiveCommand(const std::string& archive_command) {
  if (auto tool = RecogniseArchiver(archive_command)) {
    return fmt::format("archive_command belongs to {}: '{}'", *tool, archive_command);
  }
  return fmt::format("archive_command is '{}'", archive_command);
}

std::string NameArchiveCommand(const std::string& archive_command) {
  if (auto tool = RecogniseArchiver(archive_command)) {
    return fmt::format("{} (archive_command '{}')", *tool, archive_command);
  }
  return fmt::format("archive_command '{}'", archive_command);
}

std::string DescribeWalConsumer(const SlotConsumer& consumer) {
  const std::string from = consumer.client_addr.empty() ? "" : ", from " + consumer.client_addr;
  if (auto tool = RecogniseWalConsumer(consumer.application_name)) {
    if (*tool == consumer.application_name) return fmt::format("{} (pid {}{})", *tool, consumer.pid, from);
    return fmt::format("{} (application_name '{}', pid {}{})", *tool, consumer.application_name, consumer.pid, from);
  }
  if (consumer.application_name.empty()) {
    return fmt::format("a replication client without application_name (pid {}{})", consumer.pid, from);
  }
  return fmt::format("a client with application_name '{}' (pid {}{})", consumer.application_name, consumer.pid, from);
}

Result<SlotView> ReadSlotView(PgConnection& conn, const std::string& slot) {
  std::string literal = "'";
  for (char c : slot) literal += c == '\'' ? std::string("''") : std::string(1, c);
  literal += "'";
  // pg_stat_activity shows every session's application_name to any role; client_addr needs
  // pg_read_all_stats (NULL otherwise).
  ASSIGN_OR_RETURN(
      auto rows,
      conn.Query("SELECT current_setting('application_name'), "
                 "(SELECT pending_restart FROM pg_catalog.pg_settings WHERE name = 'wal_level'), "
                 "s.slot_name IS NOT NULL, s.active, s.active_pid, a.application_name, host(a.client_addr), "
                 "CASE WHEN s.restart_lsn IS NULL OR pg_catalog.pg_is_in_recovery() THEN NULL "
                 "ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint END "
                 "FROM (SELECT 1) AS one "
                 "LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = " +
                 literal +
                 " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.active_pid"));
  if (rows.size() != 1 || rows[0].size() != 8) {
    return Status::Internal(fmt::format("unexpected answer about replication slot \"{}\" from PostgreSQL at {}", slot,
                                        conn.HostPort()));
  }
  const PgRow& r = rows[0];
  SlotView view;
  const std::string mine = r[0].value_or("");
  view.wal_level_change_pending = r[1].value_or("f") == "t";
  view.slot_exists = r[2].value_or("f") == "t";
  view.slot_active = r[3].value_or("f") == "t";
  if (r[7]) {
    const long long bytes = std::atoll(r[7]->c_str());
    view.retained_bytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
  }
  if (view.slot_active && r[4]) {
    SlotConsumer consumer{.pid = std::atoi(r[4]->c_str()),
                          .application_name = r[5].value_or(""),
                          .client_addr = r[6].value_or("")};
    const bool ours = (!mine.empty() && consumer.application_name == mine) ||
                      Lower(consumer.application_name).rfind("smartbackup", 0) == 0;
    if (!ours) view.foreign_consumer = consumer;
  }
  if (view.wal_level_change_pending) {
    // The last line in file order wins (postgresql.auto.conf is read last). Superusers only.
    auto pending = conn.Query(
        "SELECT setting FROM pg_catalog.pg_file_settings WHERE name = 'wal_level' ORDER BY seqno DESC LIMIT 1");
    if (pending.ok() && pending->size() == 1 && !(*pending)[0].empty() && (*pending)[0][0]) {
      view.pending_wal_level = Lower(*(*pending)[0][0]);
    }
  }
  return view;
}

}  // namespace sb
