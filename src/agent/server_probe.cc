#include "agent/server_probe.h"

namespace sb {
namespace {

class PgSession final : public ServerSession {
 public:
  explicit PgSession(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}
  Result<ServerInfo> Info() override { return ReadServerInfo(*conn_); }
  Result<SlotView> Slot(const std::string& slot) override { return ReadSlotView(*conn_, slot); }

 private:
  std::unique_ptr<PgConnection> conn_;
};

class PgProbe final : public ServerProbe {
 public:
  Result<std::unique_ptr<ServerSession>> Open(const std::string& conninfo) override {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo, false));
    return std::unique_ptr<ServerSession>(std::make_unique<PgSession>(std::move(conn)));
  }

  Status DropSlot(const std::string& conninfo, const std::string& slot) override {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo, false));
    std::string literal = "'";
    for (char ch : slot) literal += ch == '\'' ? std::string("''") : std::string(1, ch);
    literal += "'";
    return conn->Query("SELECT pg_catalog.pg_drop_replication_slot(" + literal + ")").status();
  }
};

}  // namespace

ServerProbe* ServerProbe::Real() {
  static PgProbe probe;
  return &probe;
}

}  // namespace sb
