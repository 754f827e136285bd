#!/usr/bin/env bash
# Full backup / restore benchmark: smartbackup vs pg_basebackup vs pgBackRest.
#
# Creates a throwaway PostgreSQL 15 cluster in a temporary directory, loads
# pgbench data at a given scale plus a table of poorly compressible random
# text, then takes a full backup with each tool to local disk (zstd level 3,
# the same parallelism for every tool) and restores it into a fresh directory.
# Prints a table and machine-readable RESULT lines. Everything it creates is
# removed on exit (unless --keep), also on failure or Ctrl-C.
#
# Must run as root (it drops to the "postgres" user for every PostgreSQL
# process and every backup tool). See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/full_backup.sh [options]

  --scale N           pgbench scale factor (default 100, ~1.5 GB; env SCALE)
  --random-mb N       size of the random-text table in MB (default 10 * scale; env RANDOM_MB)
  --parallel P        workers for every tool (default: nproc; env PARALLEL)
  --smartbackup PATH  smartbackup binary (default: build-bench/, build/ or any build*/ in the
                      source tree that works; builds with scripts/build.sh if none does)
  --rounds N          run every backup and restore N times, the tools taking turns, and
                      report the fastest (default 1; env ROUNDS). On a machine where other
                      work comes and goes, the best of 3-5 is the figure least skewed by it
  --skip-pgbackrest   do not run pgBackRest (and do not archive WAL)
  --no-start-check    only check restored dirs for PG_VERSION and global/pg_control,
                      do not start them to compare row counts
  --skip-smartbackup  do not run smartbackup (to try the other tools while it does not build)
  --keep              keep the temporary directory (clusters are still stopped)
  --workdir DIR       parent of the temporary directory (default: $TMPDIR or /tmp)
  -h, --help          this text
EOF
}

BENCH_NAME=full_backup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- options ----------------------------------------------------------------
SCALE="${SCALE:-100}"
RANDOM_MB="${RANDOM_MB:-}"
PARALLEL="${PARALLEL:-$(nproc)}"
SMARTBACKUP="${SMARTBACKUP:-}"
ROUNDS="${ROUNDS:-1}"
SKIP_PGBACKREST=0
SKIP_SMARTBACKUP=0
START_CHECK=1
KEEP=0
WORKPARENT="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="${2:?--scale needs a value}"; shift 2 ;;
    --random-mb) RANDOM_MB="${2:?--random-mb needs a value}"; shift 2 ;;
    --parallel) PARALLEL="${2:?--parallel needs a value}"; shift 2 ;;
    --smartbackup) SMARTBACKUP="${2:?--smartbackup needs a path}"; shift 2 ;;
    --rounds) ROUNDS="${2:?--rounds needs a value}"; shift 2 ;;
    --skip-pgbackrest) SKIP_PGBACKREST=1; shift ;;
    --skip-smartbackup) SKIP_SMARTBACKUP=1; shift ;;
    --no-start-check) START_CHECK=0; shift ;;
    --keep) KEEP=1; shift ;;
    --workdir) WORKPARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option \"$1\"" ;;
  esac
done
[ -n "$RANDOM_MB" ] || RANDOM_MB=$((10 * SCALE))
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || die "--scale must be a positive integer, got \"$SCALE\""
[[ "$RANDOM_MB" =~ ^[0-9]+$ ]] || die "--random-mb must be a non-negative integer, got \"$RANDOM_MB\""
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "--parallel must be a positive integer, got \"$PARALLEL\""
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got \"$ROUNDS\""

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the tools are run as the postgres user via runuser)"
id postgres >/dev/null 2>&1 || die "no \"postgres\" user; hint: install the postgresql-15 package"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
for b in initdb pg_ctl pgbench pg_basebackup psql pg_isready; do
  [ -x "$PGBIN/$b" ] || die "\"$PGBIN/$b\" not found; hint: set PGBIN to the PostgreSQL 15 bin directory"
done
command -v zstd >/dev/null || die "zstd not found; hint: apt-get install zstd"
command -v jq >/dev/null || die "jq not found; hint: apt-get install jq"
[ -x /usr/bin/time ] || die "/usr/bin/time not found; hint: apt-get install time"
if [ "$SKIP_PGBACKREST" = 0 ]; then
  command -v pgbackrest >/dev/null || die "pgbackrest not found; hint: install it or pass --skip-pgbackrest"
  PGBACKREST="$(command -v pgbackrest)"
fi

if [ "$SKIP_SMARTBACKUP" = 0 ]; then
  find_smartbackup
else
  SMARTBACKUP="(skipped)"
fi

# ---- work area and cleanup --------------------------------------------------
bench_setup sbbench
PGDATA="$T/data"
PORT=""

# ---- helpers ----------------------------------------------------------------
psql_src() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"; }

start_cluster() {  # start_cluster DATADIR PORT LOGFILE [extra -c settings...]
  local d="$1" p="$2" logf="$3"; shift 3
  as_pg "$PGBIN/pg_ctl" -D "$d" -l "$logf" -w -t 600 -o "-p $p -c unix_socket_directories=$SOCK -c listen_addresses=127.0.0.1 $*" start >/dev/null \
    || { tail -n 30 "$logf" >&2; die "could not start the cluster in \"$d\" (log above: $logf)"; }
  RUNNING+=("$d")
}

bytes_of() { du -sb "$1" | cut -f1; }
# Data directory size without pg_wal: pg_wal holds recycled segments that no tool copies.
data_bytes() { echo $(( $(bytes_of "$1") - $(bytes_of "$1/pg_wal") )); }
fmt_mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

declare -A SECS RSS CPU LOAD STORED SAMPLES
ORDER=()

# timed TOOL OP OUTDIR CMD...: runs CMD as postgres under /usr/bin/time, then sync(1)s,
# and records wall seconds (command + sync), the peak RSS of the largest process and the
# user+system CPU seconds of the whole process tree (server-side walsenders not included).
# Over several rounds the fastest run is kept (with its RSS, CPU and load) and every
# run's seconds are listed in SAMPLES.
timed() {
  local tool="$1" op="$2" outdir="$3"; shift 3
  local key="$tool/$op" tf="$T/time.$tool.$op" t0 t1 t2
  sync
  log "$tool $op ..."
  t0=$(date +%s.%N)
  if ! as_pg /usr/bin/time -f 'rusage %M %U %S' -o "$tf" "$@" >"$T/out.$tool.$op" 2>"$T/err.$tool.$op"; then
    cat "$T/out.$tool.$op" "$T/err.$tool.$op" >&2
    die "$tool $op failed (command: $*)"
  fi
  t1=$(date +%s.%N)
  sync
  t2=$(date +%s.%N)
  local secs rss cpu load
  secs=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
  rss=$(awk '$1 == "rusage" { v = $2 } END { printf "%.0f", v / 1024 }' "$tf")
  cpu=$(awk '$1 == "rusage" { v = $3 + $4 } END { printf "%.1f", v }' "$tf")
  # The 1-minute load average at the end: other work on the machine skews the figures.
  load=$(cut -d' ' -f1 /proc/loadavg)
  log "$tool $op: $secs s (of which sync $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }') s), peak RSS $rss MB, CPU $cpu s, load $load"
  # The tool itself adds about P+1 to it, and the 1-minute average lags, so warn only well above.
  if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > 2 * n) }'; then
    log "warning: load average $load on $(nproc) cores: something else is running, the figures are skewed"
  fi
  if [ -z "${SECS[$key]:-}" ]; then
    ORDER+=("$key")
    SAMPLES[$key]=$secs
  else
    SAMPLES[$key]="${SAMPLES[$key]},$secs"
  fi
  if [ -z "${SECS[$key]:-}" ] || awk -v a="$secs" -v b="${SECS[$key]}" 'BEGIN { exit !(a < b) }'; then
    SECS[$key]=$secs; RSS[$key]=$rss; CPU[$key]=$cpu; LOAD[$key]=$load
  fi
}

check_restored() {  # check_restored TOOL DIR
  local f
  for f in PG_VERSION global/pg_control; do
    [ -s "$2/$f" ] || die "$1 restore: \"$2/$f\" is missing"
  done
  [ "$(cat "$2/PG_VERSION")" = 15 ] || die "$1 restore: \"$2/PG_VERSION\" is not 15"
}

declare -A VERIFIED
count_rows() {  # count_rows SOCKDIR PORT -> "accounts random"
  as_pg "$PGBIN/psql" -X -A -t -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d postgres \
    -c "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM bench_random)"
}
start_check() {  # start_check TOOL DIR: start the restored cluster and compare row counts
  local tool="$1" d="$2" p got
  VERIFIED[$tool]="files"
  [ "$START_CHECK" = 1 ] || return 0
  p=$(free_port)
  chmod 700 "$d"
  log "$tool: starting the restored cluster to compare row counts"
  start_cluster "$d" "$p" "$T/restored-$tool.log" "-c archive_mode=off"
  # pgBackRest restores request archive recovery; wait until it has promoted.
  local i
  for i in $(seq 1 600); do
    [ "$(as_pg "$PGBIN/psql" -X -A -t -h "$SOCK" -p "$p" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
    sleep 1
  done
  got=$(count_rows "$SOCK" "$p") || die "$tool: cannot query the restored cluster (log: $T/restored-$tool.log)"
  stop_cluster "$d"
  [ "$got" = "$EXPECTED_COUNTS" ] || die "$tool: restored cluster has row counts \"$got\", expected \"$EXPECTED_COUNTS\""
  VERIFIED[$tool]="started, counts match"
}

# ---- the source cluster -----------------------------------------------------
PORT=$(free_port)
log "work dir $T; smartbackup $SMARTBACKUP; scale $SCALE, random table ${RANDOM_MB} MB, parallel $PARALLEL, port $PORT"
as_pg "$PGBIN/initdb" -k -A trust -U postgres -E UTF8 --locale=C -D "$PGDATA" >"$T/initdb.log" 2>&1 \
  || { cat "$T/initdb.log" >&2; die "initdb failed"; }

PGBR_CONF="$T/pgbackrest.conf"
if [ "$SKIP_PGBACKREST" = 0 ]; then
  mkdir_pg "$T/pgbackrest-repo" "$T/pgbackrest-log" "$T/pgbackrest-lock" "$T/pgbackrest-spool"
  cat >"$PGBR_CONF" <<EOF
[global]
repo1-path=$T/pgbackrest-repo
repo1-retention-full=1
compress-type=zst
compress-level=3
process-max=$PARALLEL
start-fast=y
log-path=$T/pgbackrest-log
lock-path=$T/pgbackrest-lock
spool-path=$T/pgbackrest-spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$PGDATA
pg1-port=$PORT
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
  chown postgres: "$PGBR_CONF"
  ARCHIVE_MODE=on
  ARCHIVE_COMMAND="$PGBACKREST --config=$PGBR_CONF --stanza=bench archive-push %p"
else
  ARCHIVE_MODE=off
  ARCHIVE_COMMAND=""
fi

cat >>"$PGDATA/postgresql.conf" <<EOF

# ---- bench/full_backup.sh ----
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 10
archive_mode = $ARCHIVE_MODE
archive_command = '$ARCHIVE_COMMAND'
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
fsync = on
EOF
start_cluster "$PGDATA" "$PORT" "$T/source.log"

if [ "$SKIP_PGBACKREST" = 0 ]; then
  # Created before loading so that archive-push succeeds from the start.
  as_pg "$PGBACKREST" --config="$PGBR_CONF" --stanza=bench stanza-create >"$T/stanza.log" 2>&1 \
    || { cat "$T/stanza.log" >&2; die "pgbackrest stanza-create failed"; }
fi

# pg_basebackup in PG15 can compress with several zstd threads (workers=N) when libzstd
# supports it; probe on the still empty cluster and use it so all tools get P workers.
PGBB_COMPRESS="client-zstd:level=3"
if [ "$PARALLEL" -gt 1 ]; then
  if as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$T/pgbb-probe" -Ft -X fetch -c fast \
       --no-manifest --compress="client-zstd:level=3,workers=$PARALLEL" >"$T/pgbb-probe.log" 2>&1; then
    PGBB_COMPRESS="client-zstd:level=3,workers=$PARALLEL"
  else
    log "pg_basebackup: zstd workers not supported here ($(tail -n1 "$T/pgbb-probe.log")); using one compression thread"
  fi
  rm -rf "$T/pgbb-probe"
fi

log "loading pgbench scale $SCALE"
LOAD_T0=$(date +%s)
as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$SOCK" -p "$PORT" -U postgres postgres >"$T/pgbench.log" 2>&1 \
  || { tail -n 20 "$T/pgbench.log" >&2; die "pgbench -i failed"; }

log "loading ${RANDOM_MB} MB of random text (base64 of random bytes, ~1.33x compressible)"
psql_src -c "CREATE EXTENSION IF NOT EXISTS pgcrypto" \
         -c "CREATE TABLE bench_random (id bigint, payload text) WITH (fillfactor = 100)" \
         -c "ALTER TABLE bench_random ALTER COLUMN payload SET STORAGE EXTERNAL"
# One row ~1.4 kB (base64 of 1 KiB) stays inline; 5 rows fill an 8 kB page.
ROWS=$(( RANDOM_MB * 1000000 / 1420 ))
if [ "$ROWS" -gt 0 ]; then
  PIDS=()
  per=$(( (ROWS + PARALLEL - 1) / PARALLEL ))
  for ((w = 0; w < PARALLEL; w++)); do
    lo=$(( w * per + 1 )); hi=$(( (w + 1) * per )); [ "$hi" -le "$ROWS" ] || hi=$ROWS
    [ "$lo" -le "$hi" ] || continue
    psql_src -c "INSERT INTO bench_random SELECT g, encode(gen_random_bytes(1024), 'base64') FROM generate_series($lo, $hi) g" &
    PIDS+=($!)
  done
  for pid in "${PIDS[@]}"; do wait "$pid" || die "loading bench_random failed"; done
fi
psql_src -c "VACUUM ANALYZE bench_random" -c "CHECKPOINT"
EXPECTED_COUNTS=$(count_rows "$SOCK" "$PORT")
log "loaded in $(( $(date +%s) - LOAD_T0 )) s; rows (pgbench_accounts, bench_random): $EXPECTED_COUNTS"
if [ "$SKIP_PGBACKREST" = 0 ]; then
  # Let archive-push catch up with the load so it does not compete with the timed runs.
  psql_src -c "SELECT pg_switch_wal()" >/dev/null
  for i in $(seq 1 600); do
    ready=$(find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l)
    [ "$ready" = 0 ] && break
    sleep 1
  done
fi

DATA_BYTES=$(data_bytes "$PGDATA")
DB_BYTES=$(psql_src -A -t -c "SELECT pg_database_size('postgres')")
log "data directory: $(fmt_mb "$DATA_BYTES") MB without pg_wal ($(fmt_mb "$(bytes_of "$PGDATA")") MB with it); database: $(fmt_mb "$DB_BYTES") MB"

for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || log "round $round of $ROUNDS"
  # ---- 1. smartbackup ---------------------------------------------------------
  SB_REPO="$T/sb-repo"; SB_RESTORE="$T/sb-restore"
  SB_JSON_SIZE="-"; SB_JSON_STORED="-"; SB_JSON_SECS="-"
  if [ "$SKIP_SMARTBACKUP" = 0 ]; then
    rm -rf "$SB_REPO" "$SB_RESTORE"
    mkdir_pg "$SB_REPO"
    timed smartbackup backup "$SB_REPO" "$SMARTBACKUP" backup \
      --pg "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
      --repo "file://$SB_REPO" --db bench --parallel "$PARALLEL" --compress-level 3 --output json
    SB_JSON_SIZE=$(jq -r '.size_bytes' "$T/out.smartbackup.backup" 2>/dev/null || echo "?")
    SB_JSON_STORED=$(jq -r '.stored_bytes' "$T/out.smartbackup.backup" 2>/dev/null || echo "?")
    SB_JSON_SECS=$(jq -r '.seconds' "$T/out.smartbackup.backup" 2>/dev/null || echo "?")
    STORED[smartbackup]=$(bytes_of "$SB_REPO")
    timed smartbackup restore "$SB_RESTORE" "$SMARTBACKUP" restore \
      --repo "file://$SB_REPO" --db bench --target-dir "$SB_RESTORE" --parallel "$PARALLEL" --output json
    check_restored smartbackup "$SB_RESTORE"
  fi

  # ---- 2. pg_basebackup -------------------------------------------------------
  PGBB_DIR="$T/pgbb"; PGBB_RESTORE="$T/pgbb-restore"
  rm -rf "$PGBB_DIR" "$PGBB_RESTORE"
  timed pg_basebackup backup "$PGBB_DIR" "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres \
    -D "$PGBB_DIR" -Ft -X fetch -c fast --compress="$PGBB_COMPRESS"
  STORED[pg_basebackup]=$(bytes_of "$PGBB_DIR")
  [ -s "$PGBB_DIR/base.tar.zst" ] || die "pg_basebackup did not write \"$PGBB_DIR/base.tar.zst\""
  mkdir_pg "$PGBB_RESTORE"
  timed pg_basebackup restore "$PGBB_RESTORE" tar --use-compress-program=zstd -xf "$PGBB_DIR/base.tar.zst" -C "$PGBB_RESTORE"
  check_restored pg_basebackup "$PGBB_RESTORE"

  # ---- 3. pgBackRest ----------------------------------------------------------
  if [ "$SKIP_PGBACKREST" = 0 ]; then
    PGBR_RESTORE="$T/pgbackrest-restore"
    timed pgbackrest backup "$T/pgbackrest-repo" "$PGBACKREST" --config="$PGBR_CONF" --stanza=bench backup --type=full
    # The backup set only: the archive also holds all the WAL written while loading.
    # Later rounds add sets to the same repository, so the size is taken once.
    [ "$round" -gt 1 ] || STORED[pgbackrest]=$(bytes_of "$T/pgbackrest-repo/backup/bench")
    rm -rf "$PGBR_RESTORE"
    mkdir_pg "$PGBR_RESTORE"
    timed pgbackrest restore "$PGBR_RESTORE" "$PGBACKREST" --config="$PGBR_CONF" --stanza=bench restore \
      --pg1-path="$PGBR_RESTORE" --process-max="$PARALLEL"
    check_restored pgbackrest "$PGBR_RESTORE"
  fi
done

# ---- verification by starting the restored clusters ----------------------------
stop_cluster "$PGDATA"   # frees memory and avoids any interference with the checks
[ "$SKIP_SMARTBACKUP" = 1 ] || start_check smartbackup "$SB_RESTORE"
start_check pg_basebackup "$PGBB_RESTORE"
[ "$SKIP_PGBACKREST" = 1 ] || start_check pgbackrest "$PGBR_RESTORE"

# ---- report -----------------------------------------------------------------
mbps() { awk -v b="$DATA_BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
echo
echo "== full backup benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
echo "   pgbench scale $SCALE + ${RANDOM_MB} MB random text; data dir $(fmt_mb "$DATA_BYTES") MB (without pg_wal);" \
     "zstd level 3; parallel $PARALLEL"
echo "   pg_basebackup --compress=$PGBB_COMPRESS; pgBackRest $(pgbackrest version 2>/dev/null | awk '{print $2}') process-max=$PARALLEL"
echo "   smartbackup JSON: size_bytes=$SB_JSON_SIZE stored_bytes=$SB_JSON_STORED seconds=$SB_JSON_SECS"
echo
printf '%-14s %-8s %9s %9s %10s %7s %7s %7s %6s %7s  %s\n' tool op seconds "MB/s" stored_MB ratio rss_MB cpu_s load1 "vs_sb" verified
for key in "${ORDER[@]}"; do
  tool=${key%/*}; op=${key#*/}
  s=${SECS[$key]}; m=$(mbps "$s")
  rel="-"
  if [ -n "${SECS[smartbackup/$op]:-}" ]; then
    rel=$(awk -v a="$m" -v b="$(mbps "${SECS[smartbackup/$op]}")" 'BEGIN { printf "%.2fx", a / b }')
  fi
  if [ "$op" = backup ]; then
    st=$(fmt_mb "${STORED[$tool]}")
    ratio=$(awk -v d="$DATA_BYTES" -v s="${STORED[$tool]}" 'BEGIN { printf "%.2f", d / s }')
  else
    st="-"; ratio="-"
  fi
  printf '%-14s %-8s %9s %9s %10s %7s %7s %7s %6s %7s  %s\n' "$tool" "$op" "$s" "$m" "$st" "$ratio" "${RSS[$key]}" "${CPU[$key]}" "${LOAD[$key]}" "$rel" "${VERIFIED[$tool]:-}"
done
echo
echo "MB = 10^6 bytes; MB/s = data dir bytes (without pg_wal) / seconds; seconds include a final sync"
echo "     (best of $ROUNDS round(s); every run's seconds are in the RESULT lines);"
echo "ratio = data dir / stored; vs_sb = throughput relative to smartbackup for the same operation;"
echo "rss_MB = peak RSS of the largest single process (pgBackRest worker processes are separate);"
echo "cpu_s = user+system CPU seconds of the tool's processes (not the server's walsender);"
echo "load1 = 1-minute load average when the run ended (the run itself adds ~P+1; far above that:"
echo "        something else was running and the figures are skewed)"
if [ "$SKIP_PGBACKREST" = 0 ] && [ "$SKIP_SMARTBACKUP" = 0 ]; then
  for op in backup restore; do
    awk -v a="${SECS[pgbackrest/$op]}" -v b="${SECS[smartbackup/$op]}" -v op="$op" \
      'BEGIN { printf "smartbackup %s is %.2fx the speed of pgBackRest (%.2f s vs %.2f s)\n", op, a / b, b, a }'
  done
fi
echo
for key in "${ORDER[@]}"; do
  tool=${key%/*}; op=${key#*/}
  if [ "$op" = backup ]; then st=$(fmt_mb "${STORED[$tool]}"); else st="-"; fi
  echo "RESULT tool=$tool op=$op seconds=${SECS[$key]} mbps=$(mbps "${SECS[$key]}") stored_mb=$st rss_mb=${RSS[$key]} cpu_s=${CPU[$key]} load1=${LOAD[$key]} samples=${SAMPLES[$key]} data_mb=$(fmt_mb "$DATA_BYTES") scale=$SCALE random_mb=$RANDOM_MB parallel=$PARALLEL"
done
