// Fakes for unit tests of the agent's ClusterController: a PostgreSQL server
// whose answers the test scripts (ServerProbe) and ClusterActions that record
// what the controller asked for instead of running jobs or WAL capture.
// Thread-safety: none; one test thread drives them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/cluster_actions.h"
#include "agent/server_probe.h"

namespace sb::test {

// A server whose next answers are the public fields. Open fails with `open_error` when it is not
// OK (a refused connection, a failed password); otherwise each session answers Info() and Slot()
// with `info` and `slot` as they are at the time of the call.
class ScriptedServer final : public ServerProbe {
 public:
  ScriptedServer() {
    ServerInfo i;
    i.system_identifier = 7000000000000000001ull;
    i.server_version_num = 150004;
    i.timeline = 1;
    i.in_recovery = false;
    i.wal_level = "replica";
    i.archive_mode = "off";
    i.current_lsn = Lsn{0x3000000};
    info = i;
  }

  // The running primary's answer, to change field by field (precondition: `info` holds a value).
  ServerInfo& primary() { return *info; }

  Status open_error = Status::Ok();
  Result<ServerInfo> info{ServerInfo{}};
  Result<SlotView> slot{SlotView{}};
  Status drop_result = Status::Ok();

  int opens = 0;
  int slot_reads = 0;
  std::vector<std::string> dropped_slots;  // DropSlot calls that succeeded

  Result<std::unique_ptr<ServerSession>> Open(const std::string& conninfo) override {
    (void)conninfo;
    ++opens;
    if (!open_error.ok()) return open_error;
    return std::unique_ptr<ServerSession>(std::make_unique<Session>(*this));
  }

  Status DropSlot(const std::string& conninfo, const std::string& name) override {
    (void)conninfo;
    if (!drop_result.ok()) return drop_result;
    dropped_slots.push_back(name);
    if (slot.ok()) slot->slot_exists = false;
    return Status::Ok();
  }

 private:
  class Session final : public ServerSession {
   public:
    explicit Session(ScriptedServer& server) : server_(server) {}
    Result<ServerInfo> Info() override { return server_.info; }
    Result<SlotView> Slot(const std::string& name) override {
      (void)name;
      ++server_.slot_reads;
      return server_.slot;
    }

   private:
    ScriptedServer& server_;
  };
};

// ClusterActions that record each call. Capture "runs" as the cluster's stream_running flag (what
// status shows as "streaming"); fulls_running is what the test sets. A test that needs the backup
// to exist afterwards sets on_full / on_log to write it (e.g. a manifest in the repository).
class RecordingActions final : public ClusterActions {
 public:
  struct FullCall {
    Decision decision;
    bool new_container = false;
  };

  std::vector<FullCall> fulls;
  std::vector<Decision> logs;
  std::vector<std::string> prepared;  // PrepareNewContainer's reasons
  int ensure_capture = 0, stop_capture = 0;
  int fulls_running = 0;
  bool prepare_result = true;
  std::function<void(Cluster&, const ClusterSettings&, const Decision&, bool)> on_full;
  std::function<void(Cluster&, const ClusterSettings&, const Decision&)> on_log;
  std::function<bool(Cluster&, const ClusterSettings&, const std::string&)> on_prepare;

  void StartFull(Cluster& c, const ClusterSettings& s, const Decision& d, bool new_container) override {
    fulls.push_back({d, new_container});
    if (on_full) on_full(c, s, d, new_container);
  }
  void StartLog(Cluster& c, const ClusterSettings& s, const Decision& d) override {
    logs.push_back(d);
    if (on_log) on_log(c, s, d);
  }
  void EnsureCapture(Cluster& c, const ClusterSettings& s) override {
    (void)s;
    ++ensure_capture;
    c.stream_running = true;
  }
  void StopCapture(Cluster& c) override {
    ++stop_capture;
    c.stream_running = false;
  }
  bool CaptureRunning(const Cluster& c) const override { return c.stream_running; }
  bool PrepareNewContainer(Cluster& c, const ClusterSettings& s, const std::string& reason) override {
    prepared.push_back(reason);
    if (on_prepare) return on_prepare(c, s, reason);
    return prepare_result;
  }
  int FullsRunning() const override { return fulls_running; }
  std::vector<Decision> drills;  // StartDrill's decisions
  int drills_running = 0;
  void StartDrill(Cluster& c, const ClusterSettings& s, const Decision& d) override {
    (void)c;
    (void)s;
    drills.push_back(d);
  }
  int DrillsRunning() const override { return drills_running; }

  // Forgets the calls (not the capture state), between steps of one test.
  void Clear() {
    fulls.clear();
    logs.clear();
    drills.clear();
    prepared.clear();
    ensure_capture = stop_capture = 0;
  }
};

}  // namespace sb::test
