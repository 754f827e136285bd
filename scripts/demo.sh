#!/usr/bin/env bash
# The main job, end to end on a throwaway cluster: installs what is missing,
# builds smartbackup, creates a PostgreSQL 15 cluster loaded with pgbench,
# enables managed backup through the agent (local repository, short
# thresholds so the demo takes a minute), runs a pgbench load while the agent
# decides full and log backups on its own, prints status and the available
# backups, then restores to a point in time and checks the data by SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SCALE="${DEMO_SCALE:-5}"
LOAD_SECONDS="${DEMO_SECONDS:-60}"

bash scripts/install-deps.sh
source scripts/common.sh
bash scripts/build.sh >/dev/null
SB="$BUILD_DIR/smartbackup"
chmod o+rx "$ROOT" "$(dirname "$SB")" 2>/dev/null || true

PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/smartbackup-demo.XXXXXX)
chown postgres "$WORK"
chmod 700 "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AGENT_PID=""
AGENT_STUCK=0
# The agent is started through `setsid setpriv`, which execs: $AGENT_PID is the
# agent process itself (runuser would stay as its parent, and a signal to the
# wrapper would not reach the agent). Stopping signals that process, waits for
# it (it flushes WAL capture first) and checks it is gone; one that is not is
# killed and the demo fails.
stop_agent() {
  [ -n "$AGENT_PID" ] || return 0
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$AGENT_PID" 2>/dev/null || pgrep -s "$AGENT_PID" >/dev/null; then
    echo "demo: error: the agent (pid $AGENT_PID) did not stop within 60 s of SIGTERM; killing it" >&2
    kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
    AGENT_STUCK=1
  fi
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}
cleanup() {
  stop_agent
  as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -m immediate -w stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/source" -m immediate -w stop >/dev/null 2>&1 || true
  # A server that is still exiting may create a file while we delete: try again.
  rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK" 2>/dev/null; } || true
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

PORT=$(free_port)
step "creating a throwaway PostgreSQL 15 cluster in $WORK/source (port $PORT)"
as_pg "$PGBIN/initdb" -D "$WORK/source" -U postgres -A trust -k >/dev/null
cat >>"$WORK/source/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK'
wal_level = replica
max_wal_senders = 5
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/source" -l "$WORK/source.log" -w start >/dev/null
PSQL=(as_pg "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)

step "loading pgbench (scale $SCALE) and a table of marks"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres 2>&1 | tail -1
"${PSQL[@]}" -c "CREATE TABLE marks(seq int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"

CONN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
REPO="file://$WORK/repo"
cat >"$WORK/agent.toml" <<TOML
[agent]
state_dir = "$WORK/state"
socket = "$WORK/state/agent.sock"
discover = false
loop_interval = "2s"

[defaults]
storage_url = "$REPO"
retention_days = 7
mode = "stream"
flush_interval = "2s"
full_max_age = "40s"      # demo thresholds; the defaults are 7d / 1GiB / 2h / 5MiB
full_max_wal = "64MiB"
log_max_age = "10s"
log_max_wal = "4MiB"

[[cluster]]
name = "demo"
conninfo = "$CONN"
TOML
chown postgres "$WORK/agent.toml"

step "starting the agent (smartbackup agent --config $WORK/agent.toml)"
if [ "$(id -u)" -eq 0 ]; then
  setsid setpriv --reuid=postgres --regid=postgres --init-groups "$SB" agent --config "$WORK/agent.toml" -v \
    2>"$WORK/agent.log" </dev/null &
else
  setsid "$SB" agent --config "$WORK/agent.toml" -v 2>"$WORK/agent.log" &
fi
AGENT_PID=$!
for _ in $(seq 1 50); do [ -S "$WORK/state/agent.sock" ] && break; sleep 0.2; done

step "smartbackup set-db-backup demo --enable (the agent decides everything from here)"
as_pg "$SB" set-db-backup demo --enable --config "$WORK/agent.toml"

step "pgbench load for ${LOAD_SECONDS}s, writing a mark every second"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -T "$LOAD_SECONDS" -n postgres >/dev/null 2>&1 &
LOAD_PID=$!
TARGET_TIME=""
for i in $(seq 1 "$LOAD_SECONDS"); do
  "${PSQL[@]}" -c "INSERT INTO marks(seq) VALUES ($i)"
  if [ "$i" -eq $((LOAD_SECONDS * 2 / 3)) ]; then
    TARGET_TIME=$("${PSQL[@]}" -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    TARGET_SEQ=$i
    echo "restore target: $TARGET_TIME (after mark $TARGET_SEQ)"
  fi
  sleep 1
done
wait "$LOAD_PID" || true

step "smartbackup status"
sleep 4  # one more flush interval so the newest WAL is durable
as_pg "$SB" status --config "$WORK/agent.toml"

step "smartbackup health"
as_pg "$SB" health --config "$WORK/agent.toml" | head -14

step "smartbackup check demo --config (capture proven end to end: a marker WAL record reaches the repository)"
as_pg "$SB" check demo --config "$WORK/agent.toml" || echo "demo: check reported a problem (exit $?)" >&2

step "smartbackup available-backups demo --config (storage URL and keys from the agent's settings)"
as_pg "$SB" available-backups demo --config "$WORK/agent.toml"

step "stopping the agent (it flushes WAL capture)"
stop_agent
if [ "$AGENT_STUCK" -ne 0 ] || pgrep -f -- "agent --config $WORK/agent.toml" >/dev/null; then
  echo "demo: error: the agent is still running after it was stopped" >&2
  exit 1
fi
echo "the agent has stopped (no process of it is left)"
grep -E "info \[demo\]" "$WORK/agent.log" | head -12 || true

step "smartbackup restore demo --config … --time $TARGET_TIME"
as_pg "$SB" restore demo --config "$WORK/agent.toml" --time "$TARGET_TIME" --target-dir "$WORK/restored"
RPORT=$(free_port)
echo "port = $RPORT" >>"$WORK/restored/postgresql.auto.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w start >/dev/null
for _ in $(seq 1 100); do
  [ "$(as_pg "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$RPORT" -U postgres -c 'SELECT pg_is_in_recovery()')" = f ] && break
  sleep 0.3
done
GOT=$(as_pg "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$RPORT" -U postgres -c "SELECT max(seq) FROM marks")
echo "marks in the restored cluster: up to $GOT (expected $TARGET_SEQ)"
if [ "$GOT" = "$TARGET_SEQ" ]; then
  step "OK: the point-in-time restore holds exactly the marks written up to the target"
else
  step "FAILED: expected marks up to $TARGET_SEQ, got $GOT"
  exit 1
fi
