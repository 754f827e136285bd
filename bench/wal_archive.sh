#!/usr/bin/env bash
# WAL archiving benchmark: smartbackup wal-push vs pgBackRest archive-push, and the
# recovery point age of smartbackup in archive mode vs stream mode.
#
# Part A (per tool, each on a fresh throwaway PostgreSQL 15 cluster):
#   - archive throughput: N segments of WAL are generated while archiving is paused
#     (archive_mode=on, archive_command=''), then the tool's archive_command is set and
#     the time until pg_stat_archiver.archived_count has grown by N is measured.
#   - archiver lag: while pgbench -c C -T S runs with the archiver active, the distance
#     pg_current_wal_lsn() - end of the last archived segment is sampled every 0.5 s.
# Part B (smartbackup only): while pgbench -c C runs, a marker row is committed every
#   0.5 s and (time, pg_current_wal_flush_lsn()) recorded; the age of a marker is the time
#   until WAL up to its LSN was durable in the repository (archive mode: the segment shows up
#   in pg_stat_archiver; stream mode: a WAL part file with end >= LSN shows up in the repo).
#
# Prints a table and machine-readable RESULT lines. Everything it creates is removed on exit
# (unless --keep), also on failure or Ctrl-C. Must run as root (PostgreSQL and the archive
# commands run as the postgres user). See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/wal_archive.sh [options]

  --segments N        WAL segments to archive in the throughput test (default 64; env SEGMENTS)
  --clients C         pgbench clients for the lag and recovery point tests (default 4; env CLIENTS)
  --seconds S         pgbench duration for the lag test and marker period (default 30; env SECONDS_RUN)
  --scale N           pgbench scale factor (default 10; env SCALE)
  --smartbackup PATH  smartbackup binary (default: build/smartbackup, then build*/smartbackup)
  --skip-pgbackrest   only smartbackup
  --keep              keep the temporary directory (clusters are still stopped)
  --workdir DIR       parent of the temporary directory (default: $TMPDIR or /tmp)
  -h, --help          this text
EOF
}

BENCH_NAME=wal_archive.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- options ----------------------------------------------------------------
SEGMENTS="${SEGMENTS:-64}"
CLIENTS="${CLIENTS:-4}"
SECONDS_RUN="${SECONDS_RUN:-30}"
SCALE="${SCALE:-10}"
SMARTBACKUP="${SMARTBACKUP:-}"
SKIP_PGBACKREST=0
KEEP=0
WORKPARENT="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --segments) SEGMENTS="${2:?--segments needs a value}"; shift 2 ;;
    --clients) CLIENTS="${2:?--clients needs a value}"; shift 2 ;;
    --seconds) SECONDS_RUN="${2:?--seconds needs a value}"; shift 2 ;;
    --scale) SCALE="${2:?--scale needs a value}"; shift 2 ;;
    --smartbackup) SMARTBACKUP="${2:?--smartbackup needs a path}"; shift 2 ;;
    --skip-pgbackrest) SKIP_PGBACKREST=1; shift ;;
    --keep) KEEP=1; shift ;;
    --workdir) WORKPARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option \"$1\"" ;;
  esac
done
for v in SEGMENTS CLIENTS SECONDS_RUN SCALE; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got \"${!v}\""
done

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the tools are run as the postgres user via runuser)"
id postgres >/dev/null 2>&1 || die "no \"postgres\" user; hint: install the postgresql-15 package"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
for b in initdb pg_ctl pgbench psql; do
  [ -x "$PGBIN/$b" ] || die "\"$PGBIN/$b\" not found; hint: set PGBIN to the PostgreSQL 15 bin directory"
done
if [ "$SKIP_PGBACKREST" = 0 ]; then
  command -v pgbackrest >/dev/null || die "pgbackrest not found; hint: install it or pass --skip-pgbackrest"
  PGBACKREST="$(command -v pgbackrest)"
fi

find_smartbackup

# ---- work area and cleanup --------------------------------------------------
bench_setup sbwalbench
bg_forget() {  # bg_forget PID: drop PID from BGPIDS once it has been waited for
  local keep=() p
  for p in "${BGPIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BGPIDS=("${keep[@]+"${keep[@]}"}")
}
bg_stop() {  # bg_stop PID: TERM one of our background processes and reap it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  bg_forget "$1"
}

# ---- cluster helpers --------------------------------------------------------
PORT=""
PGDATA=""
# Clients (psql, pgbench) run as root over the private socket (trust auth); only the
# server and the archive/stream tools run as postgres. -A -t -F ' ' for parseable output.
psql_q() { "$PGBIN/psql" -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"; }

start_cluster() {  # start_cluster DATADIR LOGFILE
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$2" -w -t 600 start >/dev/null \
    || { tail -n 30 "$2" >&2; die "could not start the cluster in \"$1\" (log: $2)"; }
  RUNNING+=("$1")
}

MAX_WAL_MB=$(( SEGMENTS * 16 * 3 )); [ "$MAX_WAL_MB" -ge 4096 ] || MAX_WAL_MB=4096
new_cluster() {  # new_cluster NAME ARCHIVE_COMMAND: sets PGDATA and PORT, starts it
  local name="$1" cmd="$2"
  PGDATA="$T/$name/data"
  mkdir_pg "$T/$name"
  PORT=$(free_port)
  as_pg "$PGBIN/initdb" -k -A trust -U postgres -E UTF8 --locale=C -D "$PGDATA" >"$T/$name/initdb.log" 2>&1 \
    || { cat "$T/$name/initdb.log" >&2; die "initdb failed"; }
  cat >>"$PGDATA/postgresql.conf" <<EOF

# ---- bench/wal_archive.sh ----
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = '$cmd'
shared_buffers = 256MB
max_wal_size = ${MAX_WAL_MB}MB
checkpoint_timeout = 30min
fsync = on
synchronous_commit = on
EOF
  start_cluster "$PGDATA" "$T/$name/server.log"
  SEG_BYTES=$(psql_q -c "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")
}

set_archive_command() {  # set_archive_command CMD (may be empty: archiving paused)
  psql_q -c "ALTER SYSTEM SET archive_command = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
}
ready_count() { find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l; }
load1() { cut -d' ' -f1 /proc/loadavg; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# SQL for the end LSN (decimal byte position) of the last segment in pg_stat_archiver; 0 if none.
arch_end_sql() {
  echo "CASE WHEN length(coalesce(last_archived_wal, '')) = 24 THEN
    ('x' || substr(last_archived_wal, 9, 8))::bit(32)::bigint::numeric * 4294967296
    + (('x' || substr(last_archived_wal, 17, 8))::bit(32)::bigint + 1)::numeric * $SEG_BYTES
    ELSE 0 END"
}

wait_archived() {  # wait_archived COUNT TIMEOUT_S: until archived_count >= COUNT; polls every 0.2 s
  local want="$1" limit="$2" t0 c
  t0=$(date +%s)
  while :; do
    c=$(psql_q -c "SELECT archived_count FROM pg_stat_archiver")
    [ "$c" -ge "$want" ] && return 0
    [ $(( $(date +%s) - t0 )) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

drain_archive() {  # drain_archive: switch WAL and wait until nothing is left to archive
  psql_q -c "SELECT pg_switch_wal()" >/dev/null
  local i
  for i in $(seq 1 1200); do
    [ "$(ready_count)" = 0 ] && return 0
    sleep 0.5
  done
  die "the archiver did not catch up within 600 s (server log: $PGDATA/../server.log)"
}

# CPU seconds (user+system) of the archiver's waited-for children: the archive_command
# shells and the tool. /proc/PID/stat fields 16 and 17 (cutime, cstime) in clock ticks.
archiver_child_cpu() {
  local pid
  pid=$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")
  [ -n "$pid" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat"
}

run_pgbench() {  # run_pgbench OUTFILE SECONDS: pgbench -c CLIENTS in the foreground
  "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$2" -h "$SOCK" -p "$PORT" -U postgres postgres >"$1" 2>&1 \
    || { tail -n 20 "$1" >&2; die "pgbench failed"; }
}
tps_of() { awk '/^tps = / { v = $3 } END { printf "%.0f", v }' "$1"; }
lsn_now() { psql_q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"; }

# ---- Part A -----------------------------------------------------------------
declare -A A_SEGS A_SECS A_SEGPS A_MBPS A_STORED A_RATIO A_CPU A_LOAD A_GEN_SECS
declare -A L_MAX L_MEAN L_FAILED L_TPS L_WALMB L_LOAD A_FAILED
TOOLS=(smartbackup)
[ "$SKIP_PGBACKREST" = 1 ] || TOOLS+=(pgbackrest)

SB_DB=bench
SB_REPO="$T/sb-repo"
PGBR_REPO="$T/pgbackrest-repo"

part_a() {  # part_a TOOL
  local tool="$1" cmd repo_dir
  log "== Part A: $tool"
  case "$tool" in
    smartbackup)
      mkdir_pg "$SB_REPO"
      cmd="$SMARTBACKUP wal-push %p --repo file://$SB_REPO --db $SB_DB"
      repo_dir="$SB_REPO"
      ;;
    pgbackrest)
      mkdir_pg "$PGBR_REPO" "$T/pgbackrest-log" "$T/pgbackrest-lock" "$T/pgbackrest-spool"
      cmd="$PGBACKREST --config=$T/pgbackrest.conf --stanza=bench archive-push %p"
      repo_dir="$PGBR_REPO"
      ;;
  esac
  new_cluster "$tool" "$cmd"
  if [ "$tool" = pgbackrest ]; then
    cat >"$T/pgbackrest.conf" <<EOF
[global]
repo1-path=$PGBR_REPO
compress-type=zst
compress-level=3
archive-async=n
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
    chown postgres: "$T/pgbackrest.conf"
    as_pg "$PGBACKREST" --config="$T/pgbackrest.conf" --stanza=bench stanza-create >"$T/stanza.log" 2>&1 \
      || { cat "$T/stanza.log" >&2; die "pgbackrest stanza-create failed"; }
  fi

  log "$tool: pgbench -i -s $SCALE (archived as it goes, not timed)"
  "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$SOCK" -p "$PORT" -U postgres postgres >"$T/$tool/pgbench-init.log" 2>&1 \
    || { tail -n 20 "$T/$tool/pgbench-init.log" >&2; die "pgbench -i failed"; }
  psql_q -c "CREATE TABLE walgen (id bigint, payload text)"
  drain_archive

  # Pause archiving, then write SEGMENTS segments of WAL.
  set_archive_command ""
  sleep 1
  local base gen0 gen1 n
  base=$(psql_q -c "SELECT archived_count FROM pg_stat_archiver")
  psql_q -c "SELECT pg_switch_wal()" >/dev/null
  log "$tool: generating $SEGMENTS segments of WAL (random md5 text rows, ~2x compressible)"
  gen0=$(now)
  # Fill up to 2 MB short of SEGMENTS segments from the current (fresh) one, then switch:
  # exactly SEGMENTS segments, the last one ~7/8 full.
  psql_q -c "DO \$\$
DECLARE target pg_lsn := pg_current_wal_insert_lsn() + ($SEGMENTS::numeric * $SEG_BYTES - 2097152);
BEGIN
  WHILE pg_current_wal_insert_lsn() < target LOOP
    INSERT INTO walgen SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
      FROM generate_series(1, 2000) g;
  END LOOP;
END \$\$" -c "SELECT pg_switch_wal()" >/dev/null
  gen1=$(now)
  n=$(ready_count)
  A_GEN_SECS[$tool]=$(fsub "$gen1" "$gen0")
  log "$tool: $n segments ready after ${A_GEN_SECS[$tool]} s"
  [ "$n" -gt 0 ] || die "no WAL segment is ready for archiving"

  # Timed: from enabling the archive_command until all n are archived.
  local du0 du1 cpu0 cpu1 t0 t1 failed0
  sync
  du0=$(du -sb "$repo_dir" | cut -f1)
  cpu0=$(archiver_child_cpu)
  failed0=$(psql_q -c "SELECT failed_count FROM pg_stat_archiver")
  log "$tool: archiving $n segments ..."
  t0=$(now)
  set_archive_command "$cmd"
  wait_archived $(( base + n )) 900 || die "$tool: not all $n segments archived within 900 s (server log: $T/$tool/server.log)"
  t1=$(now)
  cpu1=$(archiver_child_cpu)
  du1=$(du -sb "$repo_dir" | cut -f1)
  A_SEGS[$tool]=$n
  A_SECS[$tool]=$(fsub "$t1" "$t0")
  A_SEGPS[$tool]=$(awk -v n="$n" -v s="${A_SECS[$tool]}" 'BEGIN { printf "%.2f", n / s }')
  A_MBPS[$tool]=$(awk -v n="$n" -v b="$SEG_BYTES" -v s="${A_SECS[$tool]}" 'BEGIN { printf "%.1f", n * b / 1e6 / s }')
  A_STORED[$tool]=$(awk -v d=$(( du1 - du0 )) 'BEGIN { printf "%.1f", d / 1e6 }')
  A_RATIO[$tool]=$(awk -v n="$n" -v b="$SEG_BYTES" -v d=$(( du1 - du0 )) 'BEGIN { if (d > 0) printf "%.2f", n * b / d; else print "-" }')
  A_CPU[$tool]=$(fsub "$cpu1" "$cpu0")
  A_LOAD[$tool]=$(load1)
  A_FAILED[$tool]=$(( $(psql_q -c "SELECT failed_count FROM pg_stat_archiver") - failed0 ))
  log "$tool: $n segments in ${A_SECS[$tool]} s = ${A_SEGPS[$tool]} seg/s, ${A_MBPS[$tool]} MB/s; stored ${A_STORED[$tool]} MB (ratio ${A_RATIO[$tool]}); archive_command CPU ${A_CPU[$tool]} s; failed ${A_FAILED[$tool]}; load ${A_LOAD[$tool]}"

  # Lag under pgbench.
  local lagf="$T/$tool/lag.txt" pb lsn0 lsn1 f0
  : >"$lagf"
  f0=$(psql_q -c "SELECT failed_count FROM pg_stat_archiver")
  lsn0=$(lsn_now)
  log "$tool: archiver lag under pgbench -c $CLIENTS -T $SECONDS_RUN ..."
  run_pgbench "$T/$tool/pgbench-lag.log" "$SECONDS_RUN" &
  pb=$!; BGPIDS+=("$pb")
  local sql
  sql="SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') - ($(arch_end_sql)) FROM pg_stat_archiver"
  while kill -0 "$pb" 2>/dev/null; do
    psql_q -c "$sql" >>"$lagf" || true
    sleep 0.5
  done
  wait "$pb" || die "pgbench failed (log: $T/$tool/pgbench-lag.log)"
  bg_forget "$pb"
  lsn1=$(lsn_now)
  L_MAX[$tool]=$(awk '{ if ($1 > m) m = $1 } END { printf "%.1f", m / 1e6 }' "$lagf")
  L_MEAN[$tool]=$(awk '{ s += $1; n++ } END { printf "%.1f", n ? s / n / 1e6 : 0 }' "$lagf")
  L_FAILED[$tool]=$(( $(psql_q -c "SELECT failed_count FROM pg_stat_archiver") - f0 ))
  L_TPS[$tool]=$(tps_of "$T/$tool/pgbench-lag.log")
  L_WALMB[$tool]=$(awk -v a="$lsn0" -v b="$lsn1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
  L_LOAD[$tool]=$(load1)
  log "$tool: lag max ${L_MAX[$tool]} MB, mean ${L_MEAN[$tool]} MB over $(wc -l <"$lagf") samples; failed ${L_FAILED[$tool]}; pgbench ${L_TPS[$tool]} tps, ${L_WALMB[$tool]} MB WAL; load ${L_LOAD[$tool]}"
  drain_archive
  stop_cluster "$PGDATA"
}

for tool in "${TOOLS[@]}"; do part_a "$tool"; done

# ---- Part B -----------------------------------------------------------------
# Pollers write "TIME END_LSN" lines (decimal byte positions): WAL up to END_LSN was durable
# in the repository at TIME (the poll that first saw it).
archiver_poller() {  # archiver_poller OUT: pg_stat_archiver every 0.2 s
  local sql
  sql="SELECT extract(epoch FROM clock_timestamp()), $(arch_end_sql) FROM pg_stat_archiver"
  while :; do
    psql_q -c "$sql" >>"$1" 2>/dev/null || true
    sleep 0.2
  done
}
repo_poller() {  # repo_poller WALDIR OUT: new WAL part files every 0.1 s (existing ones ignored)
  local dir="$1" out="$2" first=1 list f b t
  declare -A seen
  while :; do
    list=$(find "$dir" -type f 2>/dev/null || true)
    t=$(now)   # after the listing: the file was there by this time
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      [ -z "${seen[$f]:-}" ] || continue
      seen[$f]=1
      b=${f##*/}
      [[ $b =~ ^[0-9A-F]{16}-([0-9A-F]{16})$ ]] || continue   # skips .tmp.* and history files
      [ "$first" = 1 ] || echo "$t $((16#${BASH_REMATCH[1]}))" >>"$out"
    done <<<"$list"
    first=0
    sleep 0.1
  done
}

marker_loop() {  # marker_loop OUT SECONDS: a marker row every 0.5 s -> "TIME FLUSH_LSN"
  local out="$1" n=$(( $2 * 2 )) i start next
  start=$(now)
  for ((i = 0; i < n; i++)); do
    psql_q -c "INSERT INTO bench_marker DEFAULT VALUES" \
      -c "SELECT extract(epoch FROM clock_timestamp()), pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')" >>"$out"
    next=$(awk -v s="$start" -v i="$i" 'BEGIN { printf "%.3f", s + (i + 1) * 0.5 }')
    sleep "$(awk -v n="$next" -v t="$(now)" 'BEGIN { d = n - t; printf "%.3f", (d > 0 ? d : 0) }')"
  done
}

max_end() { awk '{ if ($2 > m) m = $2 } END { printf "%.0f", m }' "$1" 2>/dev/null || echo 0; }

# ages MARKERS EVENTS END_TIME: one line per marker, "age" or "pending lower_bound".
ages() {
  awk -v endt="$3" '
    BEGIN { ne = 0 }
    FILENAME == ARGV[1] { et[ne] = $1; ee[ne] = $2; ne++; next }
    { t = $1; l = $2; found = 0; cover = 0
      for (i = 0; i < ne; i++) {
        if (ee[i] > cover) cover = ee[i]
        if (cover >= l) { a = et[i] - t; if (a < 0) a = 0; printf "%.3f\n", a; found = 1; break }
      }
      if (!found) printf "pending %.3f\n", endt - t
    }' <(sort -n "$2") "$1"
}
# summary AGESFILE -> "n pending median p90 max" (max includes pending lower bounds)
summary() {
  local n pend med p90 mx
  n=$(wc -l <"$1")
  pend=$(grep -c pending "$1" || true)
  read -r med p90 mx < <(awk '{ print ($1 == "pending") ? $2 : $1 }' "$1" | sort -n | awk '
    { v[NR] = $1 } END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      k = int(0.9 * NR + 0.999); if (k < 1) k = 1
      printf "%.2f %.2f %.2f\n", m, v[k], v[NR] }')
  echo "$n $pend $med $p90 $mx"
}

declare -A B_N B_PEND B_MED B_P90 B_MAX B_TPS B_WALMB B_LOAD B_REPO_MED B_REPO_MAX
# part_b_run MODE WALDIR: markers under pgbench; then more pgbench in 5 s rounds until every
# marker's LSN is durable (at most 120 s), so that the last markers get a real age too.
part_b_run() {
  local mode="$1" waldir="$2" d="$T/B-$1" pb p1 p2 lsn0 lsn1 i
  mkdir -p "$d"
  : >"$d/markers"; : >"$d/events"; : >"$d/repo-events"
  if [ "$mode" = archive ]; then
    archiver_poller "$d/events" & p1=$!; BGPIDS+=("$p1")
    repo_poller "$waldir" "$d/repo-events" & p2=$!; BGPIDS+=("$p2")
  else
    repo_poller "$waldir" "$d/events" & p1=$!; BGPIDS+=("$p1")
    p2=""
  fi
  sleep 1
  lsn0=$(lsn_now)
  log "$mode mode: pgbench -c $CLIENTS -T $SECONDS_RUN with a marker every 0.5 s ..."
  run_pgbench "$d/pgbench.log" "$SECONDS_RUN" &
  pb=$!; BGPIDS+=("$pb")
  marker_loop "$d/markers" "$SECONDS_RUN"
  wait "$pb" || die "pgbench failed (log: $d/pgbench.log)"
  bg_forget "$pb"
  lsn1=$(lsn_now)
  local want
  want=$(max_end "$d/markers")
  for i in $(seq 1 24); do
    sleep 0.5
    awk -v a="$(max_end "$d/events")" -v b="$want" 'BEGIN { exit !(a >= b) }' && break
    log "$mode mode: last marker not durable yet; 5 more seconds of pgbench"
    run_pgbench "$d/pgbench-tail-$i.log" 5
  done
  sleep 1
  local endt
  endt=$(now)
  bg_stop "$p1"; [ -z "$p2" ] || bg_stop "$p2"
  ages "$d/markers" "$d/events" "$endt" >"$d/ages"
  read -r "B_N[$mode]" "B_PEND[$mode]" "B_MED[$mode]" "B_P90[$mode]" "B_MAX[$mode]" < <(summary "$d/ages")
  if [ "$mode" = archive ]; then
    ages "$d/markers" "$d/repo-events" "$endt" >"$d/repo-ages"
    local x
    read -r x x "B_REPO_MED[$mode]" x "B_REPO_MAX[$mode]" < <(summary "$d/repo-ages")
  else
    B_REPO_MED[$mode]="${B_MED[$mode]}"; B_REPO_MAX[$mode]="${B_MAX[$mode]}"
  fi
  B_TPS[$mode]=$(tps_of "$d/pgbench.log")
  B_WALMB[$mode]=$(awk -v a="$lsn0" -v b="$lsn1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
  B_LOAD[$mode]=$(load1)
  log "$mode mode: ${B_N[$mode]} markers (${B_PEND[$mode]} never durable), age median ${B_MED[$mode]} s, p90 ${B_P90[$mode]} s, max ${B_MAX[$mode]} s; pgbench ${B_TPS[$mode]} tps, ${B_WALMB[$mode]} MB WAL; load ${B_LOAD[$mode]}"
}

log "== Part B: recovery point age, smartbackup archive mode vs stream mode"
PGDATA="$T/smartbackup/data"
PORT=$(awk -F' = ' '$1 == "port" { p = $2 } END { print p }' "$PGDATA/postgresql.conf")
start_cluster "$PGDATA" "$T/smartbackup/server.log"
psql_q -c "CREATE TABLE bench_marker (id bigserial PRIMARY KEY, t timestamptz DEFAULT clock_timestamp())"
CONTAINER_DIR="$SB_REPO/db/$SB_DB/wal"
part_b_run archive "$CONTAINER_DIR"

# Stream mode: archiving off (restart), a fresh repository, smartbackup stream running.
psql_q -c "ALTER SYSTEM SET archive_mode = off" >/dev/null
stop_cluster "$PGDATA"
start_cluster "$PGDATA" "$T/smartbackup/server.log"
SB_STREAM_REPO="$T/sb-stream-repo"
mkdir_pg "$SB_STREAM_REPO"
as_pg "$SMARTBACKUP" stream --pg "host=$SOCK port=$PORT user=postgres dbname=postgres" \
  --repo "file://$SB_STREAM_REPO" --db "$SB_DB" --flush-interval 1s >"$T/stream.log" 2>&1 &
STREAM_PID=$!; BGPIDS+=("$STREAM_PID")
for i in $(seq 1 60); do
  [ "$(psql_q -c "SELECT count(*) FROM pg_stat_replication")" -ge 1 ] && break
  kill -0 "$STREAM_PID" 2>/dev/null || { cat "$T/stream.log" >&2; die "smartbackup stream exited"; }
  sleep 0.5
done
[ "$(psql_q -c "SELECT count(*) FROM pg_stat_replication")" -ge 1 ] || { cat "$T/stream.log" >&2; die "smartbackup stream did not connect within 30 s"; }
sleep 2
part_b_run stream "$SB_STREAM_REPO/db/$SB_DB/wal"
kill -0 "$STREAM_PID" 2>/dev/null || { cat "$T/stream.log" >&2; die "smartbackup stream died during the run"; }
bg_stop "$STREAM_PID"
stop_cluster "$PGDATA"

# ---- report -----------------------------------------------------------------
echo
echo "== WAL archive benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
echo "   segments $SEGMENTS x $((SEG_BYTES / 1048576)) MiB; pgbench scale $SCALE, -c $CLIENTS, -T $SECONDS_RUN;" \
     "smartbackup $SMARTBACKUP"
[ "$SKIP_PGBACKREST" = 1 ] || echo "   pgBackRest $(pgbackrest version 2>/dev/null | awk '{print $2}') archive-push, compress-type=zst level 3, archive-async=n"
echo
echo "Part A: archive throughput (backlog of N ready segments) and archiver lag under pgbench"
printf '%-12s %5s %8s %7s %7s %9s %6s %6s %6s %6s | %8s %8s %6s %7s %6s %6s\n' \
  tool segs seconds "seg/s" "MB/s" stored_MB ratio cpu_s failed load1 lagmax lagmean failed tps wal_MB load1
for tool in "${TOOLS[@]}"; do
  printf '%-12s %5s %8s %7s %7s %9s %6s %6s %6s %6s | %8s %8s %6s %7s %6s %6s\n' "$tool" \
    "${A_SEGS[$tool]}" "${A_SECS[$tool]}" "${A_SEGPS[$tool]}" "${A_MBPS[$tool]}" "${A_STORED[$tool]}" \
    "${A_RATIO[$tool]}" "${A_CPU[$tool]}" "${A_FAILED[$tool]}" "${A_LOAD[$tool]}" \
    "${L_MAX[$tool]}" "${L_MEAN[$tool]}" "${L_FAILED[$tool]}" "${L_TPS[$tool]}" "${L_WALMB[$tool]}" "${L_LOAD[$tool]}"
done
echo
echo "Part B: recovery point age (s) of markers committed every 0.5 s under pgbench, smartbackup"
printf '%-8s %8s %8s %8s %8s %8s %12s %12s %7s %7s %6s\n' mode markers pending median p90 max repo_median repo_max tps wal_MB load1
for mode in archive stream; do
  printf '%-8s %8s %8s %8s %8s %8s %12s %12s %7s %7s %6s\n' "$mode" "${B_N[$mode]}" "${B_PEND[$mode]}" \
    "${B_MED[$mode]}" "${B_P90[$mode]}" "${B_MAX[$mode]}" "${B_REPO_MED[$mode]}" "${B_REPO_MAX[$mode]}" \
    "${B_TPS[$mode]}" "${B_WALMB[$mode]}" "${B_LOAD[$mode]}"
done
echo
echo "MB = 10^6 bytes. Part A: seconds = from setting archive_command (N segments ready) until"
echo "archived_count grew by N (polled every 0.2 s); stored_MB / ratio = repository growth and"
echo "WAL bytes / growth; cpu_s = CPU of the archive_command processes (archiver's cutime+cstime);"
echo "lagmax/lagmean = pg_current_wal_lsn() - end of last archived segment (MB, sampled every 0.5 s,"
echo "includes the segment being filled). Part B: age = first poll that saw WAL up to the marker's"
echo "flush LSN durable - marker commit time; archive: pg_stat_archiver (0.2 s poll), repo_*: WAL part"
echo "files in the repository (0.1 s poll); pending = never durable (max then a lower bound)."
echo "load1 = 1-minute load average at the end of the measurement ($(nproc) cores; other work skews it)."
echo
for tool in "${TOOLS[@]}"; do
  echo "RESULT part=A tool=$tool segments=${A_SEGS[$tool]} seconds=${A_SECS[$tool]} segps=${A_SEGPS[$tool]} mbps=${A_MBPS[$tool]} stored_mb=${A_STORED[$tool]} ratio=${A_RATIO[$tool]} cpu_s=${A_CPU[$tool]} failed=${A_FAILED[$tool]} load1=${A_LOAD[$tool]}"
  echo "RESULT part=A-lag tool=$tool clients=$CLIENTS seconds=$SECONDS_RUN lag_max_mb=${L_MAX[$tool]} lag_mean_mb=${L_MEAN[$tool]} failed=${L_FAILED[$tool]} tps=${L_TPS[$tool]} wal_mb=${L_WALMB[$tool]} load1=${L_LOAD[$tool]}"
done
for mode in archive stream; do
  echo "RESULT part=B tool=smartbackup mode=$mode clients=$CLIENTS markers=${B_N[$mode]} pending=${B_PEND[$mode]} age_median_s=${B_MED[$mode]} age_p90_s=${B_P90[$mode]} age_max_s=${B_MAX[$mode]} repo_age_median_s=${B_REPO_MED[$mode]} repo_age_max_s=${B_REPO_MAX[$mode]} tps=${B_TPS[$mode]} wal_mb=${B_WALMB[$mode]} load1=${B_LOAD[$mode]}"
done
