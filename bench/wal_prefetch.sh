#!/usr/bin/env bash
# Recovery replay benchmark: the same restore replayed with wal-get's prefetch
# (restore --prefetch N, the default) and without (--prefetch 0: one serial
# wal-get per segment), from file:// and from Azurite.
#
# A throwaway PostgreSQL 15 cluster archives its WAL into both repositories
# (archive_command = two wal-pushes); a full backup goes to each; then pgbench
# writes the WAL to replay (pgbench -i at --scale, then -T --seconds). Each
# restore is --latest; the time measured is from pg_ctl start of the restored
# copy to its promotion (pg_is_in_recovery() = false), i.e. the replay. Also
# prints one wal-get's time with the bounded lookup (--wal-segment-size) and
# through the whole catalog (without it).
#
# Prints a table and machine-readable RESULT lines; removes everything on exit
# (unless --keep). Must run as root. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/wal_prefetch.sh [options]

  --scale N           pgbench -i scale factor (default 20: ~300 MiB of WAL; env SCALE)
  --seconds S         pgbench -T after the load (default 20; env SECONDS_RUN)
  --depth N           prefetch depth for the prefetch runs (default 8; env DEPTH)
  --skip-azurite      only file://
  --smartbackup PATH  smartbackup binary (default: build/smartbackup, then build*/smartbackup)
  --keep              keep the temporary directory (clusters are still stopped)
  --workdir DIR       parent of the temporary directory (default: $TMPDIR or /tmp)
  -h, --help          this text
EOF
}

BENCH_NAME=wal_prefetch.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCALE="${SCALE:-20}"
SECONDS_RUN="${SECONDS_RUN:-20}"
DEPTH="${DEPTH:-8}"
SMARTBACKUP="${SMARTBACKUP:-}"
SKIP_AZURITE=0
KEEP=0
WORKPARENT="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="${2:?--scale needs a value}"; shift 2 ;;
    --seconds) SECONDS_RUN="${2:?--seconds needs a value}"; shift 2 ;;
    --depth) DEPTH="${2:?--depth needs a value}"; shift 2 ;;
    --skip-azurite) SKIP_AZURITE=1; shift ;;
    --smartbackup) SMARTBACKUP="${2:?--smartbackup needs a path}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --workdir) WORKPARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option \"$1\"" ;;
  esac
done
for v in SCALE SECONDS_RUN DEPTH; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got \"${!v}\""
done
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the tools run as the postgres user via runuser)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
if [ "$SKIP_AZURITE" = 0 ]; then
  command -v azurite-blob >/dev/null || die "azurite-blob not found; hint: npm install -g azurite, or --skip-azurite"
fi
find_smartbackup
bench_setup walprefetch

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ACCT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZ_ENV="SMARTBACKUP_BENCH=1"  # replaced by the Azurite connection string below
REPOS=("file://$T/repo")
mkdir_pg "$T/repo"
if [ "$SKIP_AZURITE" = 0 ]; then
  AZ_PORT="$(free_port)"
  mkdir_pg "$T/azurite"
  setsid azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$T/azurite" --silent \
    --skipApiVersionCheck --disableTelemetry --loose >>"$T/azurite.log" 2>&1 </dev/null &
  BGPIDS+=($!)
  for i in $(seq 1 300); do port_accepts "$AZ_PORT" && break; sleep 0.1; done
  port_accepts "$AZ_PORT" || die "Azurite did not listen on $AZ_PORT"
  AZ_ENV="AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$AZ_PORT/$ACCT;"
  REPOS+=("azure://walprefetch")
fi
sb() { as_pg env "$AZ_ENV" "$SMARTBACKUP" "$@"; }

# ---- source cluster ------------------------------------------------------------
PORT="$(free_port)"
SRC="$T/src"
as_pg "$PGBIN/initdb" -D "$SRC" -A trust -U postgres >/dev/null
PUSH="$SMARTBACKUP wal-push %p --repo file://$T/repo --db main --log-max-wal 64MiB"
[ "$SKIP_AZURITE" = 1 ] || PUSH="$PUSH && env '$AZ_ENV' $SMARTBACKUP wal-push %p --repo azure://walprefetch --db main --log-max-wal 64MiB"
cat >>"$SRC/postgresql.conf" <<EOF
port = $PORT
unix_socket_directories = '$SOCK'
listen_addresses = '127.0.0.1'
archive_mode = on
archive_command = '${PUSH//\'/\'\'}'
max_wal_size = 1GB
EOF
as_pg "$PGBIN/pg_ctl" -D "$SRC" -l "$T/src.log" -w start >/dev/null
RUNNING+=("$SRC")
CONN="host=$SOCK port=$PORT user=postgres dbname=postgres"
psql_src() { as_pg "$PGBIN/psql" -XAtq -h "$SOCK" -p "$PORT" -U postgres -d postgres -c "$1"; }
for r in "${REPOS[@]}"; do sb backup --pg "$CONN" --repo "$r" --db main >/dev/null; done
START_LSN="$(psql_src "SELECT pg_current_wal_lsn()")"
log "writing WAL: pgbench -i -s $SCALE, then -T $SECONDS_RUN"
as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -n -c 4 -j 2 -T "$SECONDS_RUN" postgres >/dev/null 2>&1
END_LSN="$(psql_src "SELECT pg_current_wal_lsn()")"
WAL_MIB="$(psql_src "SELECT round(('$END_LSN'::pg_lsn - '$START_LSN'::pg_lsn) / 1048576.0)")"
LAST="$(psql_src "SELECT pg_walfile_name(pg_switch_wal())")"
for i in $(seq 1 1200); do
  [ "$(psql_src "SELECT coalesce(last_archived_wal, '') >= '$LAST' FROM pg_stat_archiver")" = t ] && break
  sleep 0.5
done
[ "$(psql_src "SELECT coalesce(last_archived_wal, '') >= '$LAST' FROM pg_stat_archiver")" = t ] ||
  die "WAL up to $LAST was not archived: $(psql_src "SELECT failed_count, last_failed_wal FROM pg_stat_archiver")"
COUNT_SRC="$(psql_src "SELECT count(*) FROM pgbench_history")"
stop_cluster "$SRC"
log "$WAL_MIB MiB of WAL to replay ($START_LSN..$END_LSN)"

# ---- restores -------------------------------------------------------------------
# replay REPO PREFETCH: prints the seconds from start to promotion.
replay() {
  local repo="$1" prefetch="$2" dir="$T/r" port
  rm -rf "$dir"
  sb restore --repo "$repo" --db main --target-dir "$dir" --latest --prefetch "$prefetch" >/dev/null
  port="$(free_port)"
  printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$SOCK" >>"$dir/postgresql.auto.conf"
  local t0 t1
  t0="$(date +%s.%N)"
  as_pg env "$AZ_ENV" "$PGBIN/pg_ctl" -D "$dir" -l "$T/r.log" start >/dev/null
  RUNNING+=("$dir")
  for i in $(seq 1 6000); do
    [ "$(as_pg "$PGBIN/psql" -XAtq -h "$SOCK" -p "$port" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
    [ -f "$dir/postmaster.pid" ] || die "the restored server stopped; log: $(tail -5 "$T/r.log")"
    sleep 0.05
  done
  t1="$(date +%s.%N)"
  local count
  count="$(as_pg "$PGBIN/psql" -XAtq -h "$SOCK" -p "$port" -U postgres -d postgres -c 'SELECT count(*) FROM pgbench_history')"
  [ "$count" = "$COUNT_SRC" ] || die "restored pgbench_history has $count rows, the source $COUNT_SRC"
  stop_cluster "$dir"
  # Let a prefetch worker see recovery is over before the next run (it exits when idle).
  sleep 1
  echo "$t1 - $t0" | bc -l
}

printf '\n%-10s %10s %14s %14s %9s\n' storage "WAL MiB" "serial s" "prefetch s" speedup
for repo in "${REPOS[@]}"; do
  kind="${repo%%:*}"
  serial="$(replay "$repo" 0)"
  pre="$(replay "$repo" "$DEPTH")"
  printf '%-10s %10s %14.1f %14.1f %8.2fx\n' "$kind" "$WAL_MIB" "$serial" "$pre" "$(echo "$serial / $pre" | bc -l)"
  echo "RESULT storage=$kind wal_mib=$WAL_MIB serial_s=$serial prefetch_s=$pre depth=$DEPTH load=$(cut -d' ' -f1-3 /proc/loadavg)"
done

# ---- one wal-get: bounded lookup vs whole catalog ----------------------------------
SYSID="$("$PGBIN/pg_controldata" "$SRC" | awk -F': *' '/Database system identifier/ {print $2}')"
SEGFILE="$LAST"
for repo in "${REPOS[@]}"; do
  kind="${repo%%:*}"
  for mode in bounded catalog; do
    extra=(--sysid "$SYSID")
    [ "$mode" = bounded ] && extra+=(--wal-segment-size 16777216)
    t0="$(date +%s.%N)"
    for i in 1 2 3 4 5; do sb wal-get "$SEGFILE" "$T/one" --repo "$repo" --db main "${extra[@]}" >/dev/null; done
    t1="$(date +%s.%N)"
    echo "RESULT storage=$kind wal_get=$mode seconds_per_call=$(echo "($t1 - $t0) / 5" | bc -l | cut -c1-6)"
  done
done
