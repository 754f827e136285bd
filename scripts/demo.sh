#!/usr/bin/env bash
# The main job, end to end on a throwaway cluster: installs what is missing,
# builds smartbackup, creates a PostgreSQL 15 cluster loaded with pgbench, takes
# a full backup into a local repository, verifies it, restores it, starts the
# restored cluster and compares its data with the source by SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SCALE="${DEMO_SCALE:-10}"

bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
SB="$ROOT/${BUILD_DIR:-build}/smartbackup"
chmod o+rx "$ROOT" "$(dirname "$SB")" 2>/dev/null || true

PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/smartbackup-demo.XXXXXX)
chown postgres "$WORK"
chmod 700 "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/source" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
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

step "loading pgbench (scale $SCALE) and a table of known content"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres 2>&1 | tail -1
"${PSQL[@]}" -c "CREATE TABLE known AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 100000) g"
CHECK_SQL="SELECT (SELECT md5(string_agg(a::text, '|' ORDER BY aid)) FROM pgbench_accounts a) || ' ' || (SELECT md5(string_agg(k::text, '|' ORDER BY id)) FROM known k)"
SOURCE_SUM=$("${PSQL[@]}" -c "$CHECK_SQL")
echo "source checksum: $SOURCE_SUM"

CONN="host=127.0.0.1 port=$PORT user=postgres"
REPO="file://$WORK/repo"
step "smartbackup backup --db demo --repo $REPO"
as_pg "$SB" backup --pg "$CONN" --repo "$REPO" --db demo

step "a write after the backup (must not be in the restore)"
"${PSQL[@]}" -c "INSERT INTO known VALUES (0, 'written after the backup')"

step "smartbackup available-backups"
as_pg "$SB" available-backups --repo "$REPO"

step "smartbackup verify"
as_pg "$SB" verify --repo "$REPO"

step "smartbackup restore --latest into $WORK/restored"
as_pg "$SB" restore --repo "$REPO" --db demo --latest --target-dir "$WORK/restored"

RPORT=$(free_port)
step "starting the restored cluster on port $RPORT"
echo "port = $RPORT" >>"$WORK/restored/postgresql.auto.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w start >/dev/null
RESTORED_SUM=$(as_pg "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$RPORT" -U postgres -d postgres -c "$CHECK_SQL")
echo "restored checksum: $RESTORED_SUM"
if [ "$SOURCE_SUM" = "$RESTORED_SUM" ]; then
  step "OK: the restored cluster holds exactly the data of the backup"
else
  step "FAILED: restored data differs from the source"
  exit 1
fi
