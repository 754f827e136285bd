#!/usr/bin/env bash
# Scale benchmark (issue 12): what an operation costs as the repository's
# history grows from 1 to 30 days of a cluster writing steadily.
#
# For each storage (file://, Azurite) and each history size it:
#  1. makes a PostgreSQL 15 cluster, then builds its N-day history with
#     tools/scale_gen (stream-mode WAL parts, log backups, a full a day, all
#     through the library's writers) under the cluster's own system
#     identifier, and moves the cluster's WAL past that history (pg_resetwal
#     -l), so the cluster continues the same container;
#  2. archives real WAL into it: a full backup, then REPLAY_MIB of WAL from
#     pgbench plus a poorly compressible random-text table; archive_command
#     copies each segment aside and pushes it to pgBackRest; the copies are
#     stored as wal-push stores them (scale_gen --import-wal), the last one
#     by a timed real wal-push;
#  3. measures: wal-get of a sample of history segments (the CLI, as
#     restore_command runs it), available-backups, a retention pass (purge
#     --dry-run), the agent's idle loop (time, and on Azurite the storage
#     requests per loop, counted by tools/fault_proxy in pass-through mode),
#     peak RSS of each, then restore + replay of the real WAL with
#     smartbackup's restore_command and with pgBackRest's asynchronous
#     archive-get on a copy of the same restored directory.
# Prints a table and RESULT lines. Everything it starts is stopped, and its
# temporary directory removed, on any exit (unless KEEP=1).
#
# Must run as root (PostgreSQL and every tool run as "postgres"). See
# bench/README.md, section "Scale".
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/scale.sh [options]      (every option also reads an environment variable)

  --days "1 7 30"        history sizes in days (env SCALE_DAYS; default "1 7 30")
  --storage "file azure" storages (env SCALE_STORAGE; default "file azure")
  --replay-mib N         real WAL replayed by the restore (env REPLAY_MIB; default 512;
                         the issue's figure is 2048)
  --samples N            wal-get calls per size (env WALGET_SAMPLES; default 25); they pass
                         --sysid and --wal-segment-size as a restore's restore_command does
                         (env WALGET_FLAGS="" drops the size: the whole-catalog fallback)
  --agent-loops N        idle agent loops measured (env AGENT_LOOPS; default 3)
  --process-max N        pgBackRest archive-get process-max (env PGBR_PROCESS_MAX; default 4)
  --skip-pgbackrest      no pgBackRest side (env SKIP_PGBACKREST=1)
  --skip-replay          no restore + replay (env SKIP_REPLAY=1)
  --replay-serial        also replay with prefetch off (serial wal-get) and print the ratio
                         (env REPLAY_SERIAL=1)
  --smartbackup PATH     smartbackup binary (scale_gen and fault_proxy are taken from its directory)
  --keep                 keep the temporary directory (env KEEP=1)
  --workdir DIR          parent of the temporary directory (default $TMPDIR or /tmp)

  SB_RESTORE_ARGS        extra arguments for "smartbackup restore" (e.g. a prefetch switch once
                         it exists); SB_WALGET_ENV: NAME=VALUE pairs put in the environment of
                         every wal-get (the sampled ones and the restored cluster's)
  GEN_JOBS               parallel puts of scale_gen (default 16)
  AGENT_INTERVAL         the agent's loop_interval (default 5s)
EOF
}

BENCH_NAME=scale.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCALE_DAYS="${SCALE_DAYS:-1 7 30}"
SCALE_STORAGE="${SCALE_STORAGE:-file azure}"
REPLAY_MIB="${REPLAY_MIB:-512}"
WALGET_SAMPLES="${WALGET_SAMPLES:-25}"
AGENT_LOOPS="${AGENT_LOOPS:-3}"
AGENT_INTERVAL="${AGENT_INTERVAL:-5s}"
PGBR_PROCESS_MAX="${PGBR_PROCESS_MAX:-4}"
SKIP_PGBACKREST="${SKIP_PGBACKREST:-0}"
SKIP_REPLAY="${SKIP_REPLAY:-0}"
REPLAY_SERIAL="${REPLAY_SERIAL:-0}"
SB_RESTORE_ARGS="${SB_RESTORE_ARGS:-}"
SB_WALGET_ENV="${SB_WALGET_ENV:-}"
GEN_JOBS="${GEN_JOBS:-16}"
SMARTBACKUP="${SMARTBACKUP:-}"
KEEP="${KEEP:-0}"
WORKPARENT="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --days) SCALE_DAYS="${2:?--days needs a list}"; shift 2 ;;
    --storage) SCALE_STORAGE="${2:?--storage needs a list}"; shift 2 ;;
    --replay-mib) REPLAY_MIB="${2:?--replay-mib needs a value}"; shift 2 ;;
    --samples) WALGET_SAMPLES="${2:?--samples needs a value}"; shift 2 ;;
    --agent-loops) AGENT_LOOPS="${2:?--agent-loops needs a value}"; shift 2 ;;
    --process-max) PGBR_PROCESS_MAX="${2:?--process-max needs a value}"; shift 2 ;;
    --skip-pgbackrest) SKIP_PGBACKREST=1; shift ;;
    --skip-replay) SKIP_REPLAY=1; shift ;;
    --replay-serial) REPLAY_SERIAL=1; shift ;;
    --smartbackup) SMARTBACKUP="${2:?--smartbackup needs a path}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --workdir) WORKPARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option \"$1\"" ;;
  esac
done
# Whole days 1-30, or a fraction of a day for quick runs (e.g. 0.25 on Azurite, whose own
# per-request cost grows with its blob count).
for d in $SCALE_DAYS; do
  [[ "$d" =~ ^([1-9]|[12][0-9]|30|0\.[0-9]+)$ ]] || die "history sizes are days 1-30 or a fraction 0.x, got \"$d\""
done
for s in $SCALE_STORAGE; do
  [ "$s" = file ] || [ "$s" = azure ] || die "storages are \"file\" and \"azure\", got \"$s\""
done
for v in REPLAY_MIB WALGET_SAMPLES AGENT_LOOPS PGBR_PROCESS_MAX GEN_JOBS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got \"${!v}\""
done

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the tools run as the postgres user)"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
for b in initdb pg_ctl pgbench psql pg_resetwal pg_controldata; do
  [ -x "$PGBIN/$b" ] || die "\"$PGBIN/$b\" not found; hint: set PGBIN to the PostgreSQL 15 bin directory"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found; hint: apt-get install time"
if [ "$SKIP_PGBACKREST" = 0 ]; then
  command -v pgbackrest >/dev/null || die "pgbackrest not found; hint: install it or set SKIP_PGBACKREST=1"
  PGBACKREST="$(command -v pgbackrest)"
fi
[[ " $SCALE_STORAGE " != *" azure "* ]] || command -v azurite-blob >/dev/null ||
  die "azurite-blob not found; hint: npm install -g azurite, or --storage file"
find_smartbackup
BIN_DIR="$(dirname "$SMARTBACKUP")"
SCALE_GEN="$BIN_DIR/scale_gen"
FAULT_PROXY="$BIN_DIR/fault_proxy"
[ -x "$SCALE_GEN" ] || die "\"$SCALE_GEN\" not found; hint: build it (ninja -C $BIN_DIR scale_gen)"
[ -x "$FAULT_PROXY" ] || die "\"$FAULT_PROXY\" not found; hint: build it (ninja -C $BIN_DIR fault_proxy)"

bench_setup sbscale
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
DB=scale

# ---- helpers ------------------------------------------------------------------
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=""
pick_port() {  # pick_port VAR: a free port not handed out before
  local p
  for p in $(seq 55432 55999); do
    [[ " $USED_PORTS " == *" $p "* ]] && continue
    ss -Hltn "sport = :$p" | grep -q . && continue
    USED_PORTS="$USED_PORTS $p"
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free TCP port in 55432-55999"
}
# Background processes we start run in a session of their own; stop_bg kills
# that process group and checks it is gone.
stop_bg() {  # stop_bg PID NAME
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 1 100); do pgrep -g "$pid" >/dev/null 2>&1 || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  sleep 0.2
  pgrep -g "$pid" >/dev/null 2>&1 && log "warning: $2 (process group $pid) is still running"
  return 0
}
BG_GROUPS=()
scale_cleanup() {
  local g
  for g in "${BG_GROUPS[@]+"${BG_GROUPS[@]}"}"; do stop_bg "$g" background; done
}
# lib.sh's bench_cleanup reads the exit status from $?: hand it on (set +e: a
# failing status must not end the trap before the clusters are stopped).
pass_status() { return "$1"; }
scale_exit() {
  local rc=$?
  set +e
  scale_cleanup
  pass_status "$rc"
  bench_cleanup
}
trap scale_exit EXIT

# ---- storage --------------------------------------------------------------------
AZ_PID=""; PROXY_PID=""; AZ_PORT=""; PROXY_PORT=""
ACCT=devstoreaccount1
AZKEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
conn_string() { echo "DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$AZKEY;BlobEndpoint=http://127.0.0.1:$1/$ACCT;"; }
if [[ " $SCALE_STORAGE " == *" azure "* ]]; then
  mkdir -p "$T/azurite"
  pick_port AZ_PORT; pick_port PROXY_PORT
  # In memory: Azurite's on-disk metadata (one JSON document rewritten as it
  # grows) would make building a history of 100k+ blobs quadratic.
  setsid azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --silent \
    --skipApiVersionCheck --disableTelemetry --loose --inMemoryPersistence >>"$T/azurite.log" 2>&1 </dev/null &
  AZ_PID=$!; BG_GROUPS+=("$AZ_PID")
  for i in $(seq 1 300); do port_accepts "$AZ_PORT" && break; sleep 0.1; done
  port_accepts "$AZ_PORT" || die "Azurite did not listen on $AZ_PORT (log: $T/azurite.log)"
  echo pass >"$T/proxy.control"
  setsid "$FAULT_PROXY" --listen "$PROXY_PORT" --upstream "127.0.0.1:$AZ_PORT" --control "$T/proxy.control" \
    >>"$T/proxy.log" 2>&1 </dev/null &
  PROXY_PID=$!; BG_GROUPS+=("$PROXY_PID")
  for i in $(seq 1 100); do port_accepts "$PROXY_PORT" && break; sleep 0.1; done
  port_accepts "$PROXY_PORT" || die "fault_proxy did not listen (log: $T/proxy.log)"
fi
# The proxy's request counter, read by SIGUSR1 (it prints its counters to its log).
proxy_requests() {
  local before after
  before=$(grep -c 'requests=' "$T/proxy.log" || true)
  kill -USR1 "$PROXY_PID"
  for i in $(seq 1 50); do
    after=$(grep -c 'requests=' "$T/proxy.log" || true)
    [ "$after" -gt "$before" ] && break
    sleep 0.05
  done
  grep 'requests=' "$T/proxy.log" | tail -n 1 | sed 's/.*requests=\([0-9]*\).*/\1/'
}

# A smartbackup wrapper per case: sets the storage environment, so that
# PostgreSQL's archive_command and the agent see the same storage as the
# script. Its path contains "smartbackup" and the archive command "wal-push",
# which is how the agent recognises its own archive_command.
make_wrapper() {  # make_wrapper DIR ENV_ASSIGNMENTS...
  local dir="$1"; shift
  mkdir_pg "$dir"
  {
    echo '#!/bin/sh'
    local a
    for a in "$@"; do printf 'export %q\n' "$a"; done
    printf 'exec %q "$@"\n' "$SMARTBACKUP"
  } >"$dir/smartbackup"
  chmod 755 "$dir/smartbackup"
}

psql_at() { as_pg "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" -U postgres -d postgres "${@:2}"; }
start_pg() {  # start_pg DATADIR PORT LOG [ENV...] -- [extra -c settings]
  local d="$1" p="$2" logf="$3"; shift 3
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  as_pg env ${envs[@]+"${envs[@]}"} "$PGBIN/pg_ctl" -D "$d" -l "$logf" -w -t 3600 \
    -o "-p $p -c unix_socket_directories=$SOCK -c listen_addresses='' $*" start >/dev/null ||
    { tail -n 30 "$logf" >&2; die "could not start the cluster in \"$d\" (log: $logf)"; }
  RUNNING+=("$d")
}
seg_name() { printf '00000001%08X%08X' $(( $1 / 256 )) $(( $1 % 256 )); }
seg_number() { echo $(( 16#${1:8:8} * 256 + 16#${1:16:8} )); }
percentile() {  # percentile P FILE: nearest-rank percentile of the numbers in FILE
  sort -n "$2" | awk -v p="$1" '{ v[NR] = $1 } END { r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; print v[r] }'
}
# timed_pg OUT CMD...: runs CMD as postgres under /usr/bin/time; sets MS and RSS_MB.
# The time is taken inside the postgres user's shell, around the command
# alone, as PostgreSQL's restore_command runs it (sh -c): runuser, time(1)
# and date(1) are not counted.
timed_pg() {
  local out="$1"; shift
  : >"$out.time"
  chown postgres: "$out.time"
  # shellcheck disable=SC2016  # expanded by the inner shell
  if ! as_pg /usr/bin/time -a -f 'rusage %M' -o "$out.time" bash -c \
      't0=$EPOCHREALTIME; "${@:2}"; rc=$?; t1=$EPOCHREALTIME
       echo "elapsed_us $(( ${t1/./} - ${t0/./} ))" >>"$1"; exit $rc' _ "$out.time" "$@" >"$out" 2>"$out.err"; then
    cat "$out" "$out.err" >&2
    die "failed: $*"
  fi
  MS=$(awk '$1 == "elapsed_us" { printf "%.0f", $2 / 1000 }' "$out.time")
  RSS_MB=$(awk '$1 == "rusage" { printf "%.0f", $2 / 1024 }' "$out.time")
}
# Waits until the cluster on PORT has left recovery.
wait_promoted() {  # wait_promoted PORT LOG TIMEOUT_S
  local i
  for i in $(seq 1 $(( $3 * 20 ))); do
    [ "$(psql_at "$1" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
    sleep 0.05
  done
  tail -n 30 "$2" >&2
  die "the restored cluster did not finish recovery within $3 s (log: $2)"
}
CHECK_SQL="SELECT (SELECT count(*) FROM rnd) || '/' || (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)"

declare -A R   # results: R[case/metric]
CASES=()

# ---- one case -------------------------------------------------------------------
run_case() {  # run_case STORAGE DAYS
  local st="$1" days="$2" c="$1/$2d"
  local dir="$T/$st-$days" port url wrapper_env=() agent_env=()
  mkdir_pg "$dir"
  CASES+=("$c")
  log "== $c: history of $days day(s) on $st"
  if [ "$st" = file ]; then
    mkdir_pg "$dir/repo"
    url="file://$dir/repo"
  else
    url="azure://scale${days//./p}"
    wrapper_env=("AZURE_STORAGE_CONNECTION_STRING=$(conn_string "$AZ_PORT")")
    agent_env=("AZURE_STORAGE_CONNECTION_STRING=$(conn_string "$PROXY_PORT")")
  fi
  make_wrapper "$dir/bin" ${wrapper_env[@]+"${wrapper_env[@]}"}
  local SB="$dir/bin/smartbackup"
  # shellcheck disable=SC2206  # SB_WALGET_ENV is a list of NAME=VALUE words
  local walget_env=(${wrapper_env[@]+"${wrapper_env[@]}"} $SB_WALGET_ENV)

  # 1. The cluster, then its history, then its WAL moved past the history.
  local data="$dir/data"
  as_pg "$PGBIN/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
  local sysid
  sysid=$(as_pg "$PGBIN/pg_controldata" "$data" | awk -F: '/Database system identifier/ { gsub(/ /, "", $2); print $2 }')
  log "$c: scale_gen (system identifier $sysid)"
  local t0 t1
  t0=$(now_ms)
  as_pg env ${wrapper_env[@]+"${wrapper_env[@]}"} "$SCALE_GEN" --repo "$url" --db "$DB" --days "$days" \
    --sysid "$sysid" --jobs "$GEN_JOBS" >"$dir/gen.out" 2>"$dir/gen.err" ||
    { cat "$dir/gen.out" "$dir/gen.err" >&2; die "scale_gen failed"; }
  t1=$(now_ms)
  cat "$dir/gen.out" >&2
  local next_seg
  next_seg=$(sed -n 's/^NEXT_SEGMENT=//p' "$dir/gen.out")
  R[$c/gen_s]=$(secs $((t1 - t0)))
  R[$c/parts]=$(sed -n 's/^PARTS=\([0-9]*\).*/\1/p' "$dir/gen.out")
  R[$c/logs]=$(sed -n 's/.* LOGS=\([0-9]*\).*/\1/p' "$dir/gen.out")
  as_pg "$PGBIN/pg_resetwal" -l "$next_seg" "$data" >/dev/null

  # 2. Real WAL, archived by both tools.
  pick_port port
  # Segments are copied aside and stored after the run by scale_gen
  # --import-wal as wal-push stores them (see below), because today's
  # wal-push lists the whole container to seal: minutes per segment at 7 days.
  mkdir_pg "$dir/walcopy" "$dir/walnext"
  local archive_cmd="cp %p $dir/walcopy/%f"
  local pgbr_conf="$dir/pgbackrest.conf"
  if [ "$SKIP_PGBACKREST" = 0 ]; then
    mkdir_pg "$dir/pgbr/repo" "$dir/pgbr/log" "$dir/pgbr/lock" "$dir/pgbr/spool"
    archive_cmd="$archive_cmd && $PGBACKREST --config=$pgbr_conf --stanza=$DB archive-push %p"
  fi
  cat >>"$data/postgresql.conf" <<EOF
wal_level = replica
archive_mode = on
archive_command = '$archive_cmd'
max_wal_size = 4GB
checkpoint_timeout = 30min
shared_buffers = 256MB
EOF
  start_pg "$data" "$port" "$dir/pg.log"
  if [ "$SKIP_PGBACKREST" = 0 ]; then
    pgbr_config "$pgbr_conf" "$dir" "$data" "$port"
    as_pg "$PGBACKREST" --config="$pgbr_conf" --stanza=$DB stanza-create >"$dir/stanza.log" 2>&1 ||
      { cat "$dir/stanza.log" >&2; die "pgbackrest stanza-create failed"; }
  fi
  timed_pg "$dir/full.out" "$SB" backup --pg "host=$SOCK port=$port user=postgres dbname=postgres" \
    --repo "$url" --db "$DB" --type full
  R[$c/full_s]=$(secs "$MS")
  # Replay starts from this full: the agent may take a newer one (REPLAY_MIB past full_max_wal).
  R[$c/full_id]=$(sed -n 's/^backup \([0-9TZ]*-F-[0-9a-f]*\) complete.*/\1/p' "$dir/full.out")
  [ -n "${R[$c/full_id]}" ] || die "no backup id in $dir/full.out"
  make_wal "$c" "$port" "$dir"
  # The last segment goes to the archive; each 16 MiB wal-push seals itself (log backups per 5 MiB).
  psql_at "$port" -c 'SELECT pg_switch_wal()' >/dev/null
  wait_archived "$port"
  R[$c/check]=$(psql_at "$port" -c "$CHECK_SQL")
  # All but the last segment go in as wal-push would have stored them; the
  # last one through the real wal-push, timed: the cost of archiving one
  # segment at this history size.
  local lastseg
  lastseg=$(find "$dir/walcopy" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' | sort | tail -n 1)
  mv "$dir/walcopy/$lastseg" "$dir/walnext/"
  timed_pg "$dir/import.out" env ${wrapper_env[@]+"${wrapper_env[@]}"} "$SCALE_GEN" --repo "$url" --db "$DB" \
    --sysid "$sysid" --jobs "$GEN_JOBS" --import-wal "$dir/walcopy"
  cat "$dir/import.out" >&2
  timed_pg "$dir/walpush.out" "$SB" wal-push "$dir/walnext/$lastseg" --repo "$url" --db "$DB"
  R[$c/walpush_s]=$(secs "$MS"); R[$c/walpush_rss]=$RSS_MB
  log "$c: wal-push of one segment ($lastseg) ${R[$c/walpush_s]} s"
  # Kept for the local-copy replay (--replay-serial); removed with the case otherwise.
  [ "$REPLAY_SERIAL" = 1 ] || rm -rf "$dir/walcopy" "$dir/walnext"
  # The agent must find only its own archive_command.
  psql_at "$port" -c "ALTER SYSTEM SET archive_command = '$SB wal-push %p --repo $url --db $DB'" \
    -c 'SELECT pg_reload_conf()' >/dev/null

  # 3a. wal-get over a sample of the history's segments.
  local first=2 last n i seg
  last=$(( $(seg_number "$next_seg") - 1 ))
  : >"$dir/walget.ms"
  local rss_max=0
  for i in $(seq 0 $((WALGET_SAMPLES - 1))); do
    n=$(( first + (last - first) * i / (WALGET_SAMPLES > 1 ? WALGET_SAMPLES - 1 : 1) ))
    seg=$(seg_name "$n")
    rm -f "$dir/seg"
    timed_pg "$dir/walget.out" env ${walget_env[@]+"${walget_env[@]}"} "$SMARTBACKUP" wal-get "$seg" "$dir/seg" \
      --repo "$url" --db "$DB" --sysid "$sysid" ${WALGET_FLAGS---wal-segment-size 16777216}
    [ "$(stat -c %s "$dir/seg")" = 16777216 ] || die "wal-get $seg did not restore a 16 MiB segment"
    echo "$MS" >>"$dir/walget.ms"
    [ "$RSS_MB" -gt "$rss_max" ] && rss_max=$RSS_MB
  done
  R[$c/walget_p50]=$(percentile 50 "$dir/walget.ms")
  R[$c/walget_p99]=$(percentile 99 "$dir/walget.ms")
  R[$c/walget_rss]=$rss_max
  log "$c: wal-get p50 ${R[$c/walget_p50]} ms, p99 ${R[$c/walget_p99]} ms over $WALGET_SAMPLES segments"

  # 3b. available-backups and a retention pass.
  timed_pg "$dir/ab.out" "$SB" available-backups --repo "$url" --db "$DB"
  R[$c/ab_s]=$(secs "$MS"); R[$c/ab_rss]=$RSS_MB; R[$c/ab_rows]=$(($(wc -l <"$dir/ab.out") - 1))
  timed_pg "$dir/purge.out" "$SB" purge --repo "$url" --db "$DB" \
    --retention "$(awk -v d="$days" 'BEGIN { h = d * 24; printf "%dh", (h == int(h)) ? h : int(h) + 1 }')" --dry-run
  R[$c/purge_s]=$(secs "$MS"); R[$c/purge_rss]=$RSS_MB
  log "$c: available-backups ${R[$c/ab_s]} s (${R[$c/ab_rows]} rows); purge --dry-run ${R[$c/purge_s]} s: $(head -c 200 "$dir/purge.out")"

  # 3c. The agent at rest.
  measure_agent "$c" "$dir" "$port" "$url" ${agent_env[@]+"${agent_env[@]}"}

  # 3d. Restore + replay of the real WAL.
  local want="${R[$c/check]}"
  stop_cluster "$data"
  if [ "$SKIP_REPLAY" = 0 ]; then
    measure_replay "$c" "$dir" "$url" "$sysid" "$want" "$pgbr_conf"
  fi
  R[$c/load]="$(cut -d' ' -f1-3 /proc/loadavg)"
  print_case "$c"
  # The history is not needed any more: free the disk before the next size.
  rm -rf "$dir/repo" "$dir/data" "$dir/rs-sb" "$dir/rs-pgbr" "$dir/pgbr/repo" "$dir/pgbr/spool" "$dir/walcopy" "$dir/walnext"
}

pgbr_config() {  # pgbr_config FILE DIR PGDATA PORT
  cat >"$1" <<EOF
[global]
repo1-path=$2/pgbr/repo
compress-type=zst
compress-level=3
archive-async=y
process-max=$PGBR_PROCESS_MAX
log-path=$2/pgbr/log
lock-path=$2/pgbr/lock
spool-path=$2/pgbr/spool
log-level-console=warn
log-level-file=info

[$DB]
pg1-path=$3
pg1-port=$4
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
  chown postgres: "$1"
}

# REPLAY_MIB of WAL: pgbench writes plus a random-text table (md5 text compresses about 2:1).
make_wal() {  # make_wal CASE PORT DIR
  local c="$1" port="$2" dir="$3" start done_mib
  start=$(psql_at "$port" -c 'SELECT pg_current_wal_lsn()')
  psql_at "$port" -c 'CREATE TABLE rnd (id bigserial PRIMARY KEY, t text)' >/dev/null
  as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$port" -U postgres -i -s 5 -q postgres >"$dir/pgbench-init.log" 2>&1
  local t0 t1
  t0=$(now_ms)
  while :; do
    done_mib=$(psql_at "$port" -c "SELECT (pg_current_wal_lsn() - '$start'::pg_lsn) / 1048576")
    done_mib=${done_mib%.*}
    [ "$done_mib" -ge "$REPLAY_MIB" ] && break
    as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$port" -U postgres -n -c 2 -j 2 -t 500 postgres >>"$dir/pgbench.log" 2>&1
    psql_at "$port" -c "INSERT INTO rnd (t) SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 64) g, generate_series(1, 4000) r GROUP BY r" >/dev/null
  done
  t1=$(now_ms)
  R[$c/wal_mib]=$done_mib
  log "$c: $done_mib MiB of real WAL in $(secs $((t1 - t0))) s"
}

wait_archived() {  # wait_archived PORT: until no finished segment waits for the archiver
  local port="$1" i
  for i in $(seq 1 3600); do
    [ "$(psql_at "$port" -c "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")" = 0 ] && return 0
    sleep 0.5
  done
  die "the archiver did not catch up in 30 minutes (log: see the cluster's log)"
}

measure_agent() {  # measure_agent CASE DIR PORT URL [ENV...]
  local c="$1" dir="$2" port="$3" url="$4"; shift 4
  local envs=("$@") conf="$dir/agent.toml"
  mkdir_pg "$dir/state"
  cat >"$conf" <<EOF
[agent]
state_dir = "$dir/state"
socket = "$dir/state/agent.sock"
discover = false
loop_interval = "$AGENT_INTERVAL"

[defaults]
drill_enabled = false   # idle-loop figures without drills
full_max_wal = "1024GiB"   # nor a full for the REPLAY_MIB of WAL just archived
enabled = true
storage_url = "$url"
retention_days = 30
mode = "archive"

[[cluster]]
name = "$DB"
conninfo = "host=$SOCK port=$port user=postgres dbname=postgres"
EOF
  chown postgres: "$conf"
  local log_f="$dir/agent.log"
  setsid setpriv --reuid=postgres --regid=postgres --init-groups env ${envs[@]+"${envs[@]}"} \
    "$SMARTBACKUP" agent --config "$conf" -v >"$log_f" 2>&1 </dev/null &
  local apid=$!
  BG_GROUPS+=("$apid")
  local t0 i req0="" req1="" first_ms db="$dir/state/state.db"
  t0=$(now_ms)
  # Loop ends are the agent's own heartbeats (health events "backup_loop",
  # then "retention_loop", in its SQLite state); the first loop warms up.
  loops_done() {
    [ -f "$db" ] || { echo 0; return; }
    sqlite3 -readonly -cmd '.timeout 5000' "$db" \
      "SELECT count(*) FROM health_events WHERE category = 'retention_loop'" 2>/dev/null || echo 0
  }
  wait_loops() {  # wait_loops N TIMEOUT_S
    for i in $(seq 1 $(( $2 * 10 ))); do
      [ "$(loops_done)" -ge "$1" ] && return 0
      kill -0 "$apid" 2>/dev/null || { cat "$log_f" >&2; die "the agent exited"; }
      sleep 0.1
    done
    die "the agent did not finish $1 loop(s) in $2 s (log: $log_f)"
  }
  wait_loops 1 1800
  first_ms=$(( $(now_ms) - t0 ))
  [ -n "$PROXY_PID" ] && [ "${#envs[@]}" -gt 0 ] && req0=$(proxy_requests)
  wait_loops $((AGENT_LOOPS + 1)) 3600
  [ -n "$PROXY_PID" ] && [ "${#envs[@]}" -gt 0 ] && req1=$(proxy_requests)
  R[$c/agent_rss]=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$apid/status")
  stop_bg "$apid" agent
  # Per loop i: backup part = B(i+1) - R(i) - interval, retention part = R(i+1) - B(i+1).
  local interval_ms
  interval_ms=$(awk -v s="$AGENT_INTERVAL" 'BEGIN { v = s + 0; if (s ~ /ms$/) print v; else if (s ~ /m$/) print v * 60000; else print v * 1000 }')
  sqlite3 -readonly "$db" "SELECT category, at_ms FROM health_events WHERE category IN ('backup_loop', 'retention_loop') ORDER BY id" |
    awk -F'|' -v n="$AGENT_LOOPS" -v iv="$interval_ms" '
      $1 == "backup_loop" { b[++nb] = $2 } $1 == "retention_loop" { r[++nr] = $2 }
      END {
        if (nr < n + 1 || nb < n + 1) { print "? ?"; exit }
        for (i = 1; i <= n; ++i) { bl += b[i + 1] - r[i] - iv; rl += r[i + 1] - b[i + 1] }
        printf "%.2f %.2f\n", bl / n / 1000, rl / n / 1000 }' >"$dir/agent.loops"
  read -r R[$c/agent_loop_s] R[$c/agent_ret_s] <"$dir/agent.loops"
  R[$c/agent_first_s]=$(secs "$first_ms")
  if [ -n "$req1" ]; then
    R[$c/agent_req]=$(awk -v a="$req0" -v b="$req1" -v n="$AGENT_LOOPS" 'BEGIN { printf "%.0f", (b - a) / n }')
  else
    R[$c/agent_req]="-"
  fi
  # An idle loop does no work: count anything else the agent recorded (jobs, warnings, errors).
  R[$c/agent_events]=$(sqlite3 -readonly "$db" "SELECT (SELECT count(*) FROM health_events WHERE category NOT IN ('backup_loop', 'retention_loop')) + (SELECT count(*) FROM jobs)")
  log "$c: agent backup loop ${R[$c/agent_loop_s]} s + retention loop ${R[$c/agent_ret_s]} s (first loop done after ${R[$c/agent_first_s]} s), ${R[$c/agent_req]} requests/loop, RSS ${R[$c/agent_rss]} MB, other events+jobs ${R[$c/agent_events]}"
}

# replay_once DATA PORT WANT [ENV...] -- [SERVER ARGS...]: starts a restored copy, times it from
# start until recovery has ended (restore_command returned "absent") and it is promoted, compares
# its rows with WANT and stops it; sets REPLAY_S and REPLAY_OK (exact, or MISMATCH(got != want)).
replay_once() {
  local data="$1" port="$2" want="$3" t0 t1 got
  shift 3
  t0=$(now_ms)
  start_pg "$data" "$port" "$data.log" "$@"
  wait_promoted "$port" "$data.log" 7200
  t1=$(now_ms)
  REPLAY_S=$(secs $((t1 - t0)))
  got=$(psql_at "$port" -c "$CHECK_SQL")
  if [ "$got" = "$want" ]; then REPLAY_OK=exact; else REPLAY_OK="MISMATCH($got != $want)"; fi
  stop_cluster "$data"
}

measure_replay() {  # measure_replay CASE DIR URL SYSID WANT PGBR_CONF
  local c="$1" dir="$2" url="$3" sysid="$4" want="$5" pgbr_conf="$6" port
  local SB="$dir/bin/smartbackup"
  local walget_env=()
  [ "${url%%://*}" = azure ] && walget_env+=("AZURE_STORAGE_CONNECTION_STRING=$(conn_string "$AZ_PORT")")
  # shellcheck disable=SC2206  # a list of NAME=VALUE words
  walget_env+=($SB_WALGET_ENV)
  restore_from_full() {  # restore_from_full NAME [ARGS...]: restores the bench's own full into $dir/NAME
    local name="$1"
    shift
    # shellcheck disable=SC2086  # SB_RESTORE_ARGS is a list of words
    timed_pg "$dir/restore-$name.out" "$SB" restore --repo "$url" --db "$DB" --target-dir "$dir/$name" \
      --backup-id "${R[$c/full_id]}" $SB_RESTORE_ARGS "$@"
  }
  restore_from_full rs-sb
  R[$c/restore_s]=$(secs "$MS")
  if [ "$SKIP_PGBACKREST" = 0 ]; then cp -a "$dir/rs-sb" "$dir/rs-pgbr"; fi
  pick_port port
  replay_once "$dir/rs-sb" "$port" "$want" ${walget_env[@]+"${walget_env[@]}"} -- -c archive_mode=off
  R[$c/replay_sb_s]=$REPLAY_S
  R[$c/replay_sb_ok]=$REPLAY_OK
  log "$c: smartbackup restore ${R[$c/restore_s]} s, replay ${R[$c/replay_sb_s]} s (${R[$c/replay_sb_ok]})"
  if [ "$REPLAY_SERIAL" = 1 ]; then
    # The same restore with prefetch off: one wal-get after another, as recovery asks.
    restore_from_full rs-serial --prefetch 0
    replay_once "$dir/rs-serial" "$port" "$want" ${walget_env[@]+"${walget_env[@]}"} -- -c archive_mode=off
    [ "$REPLAY_OK" = exact ] || die "$c: serial replay: $REPLAY_OK"
    R[$c/replay_serial_s]=$REPLAY_S
    rm -rf "$dir/rs-serial"
    R[$c/serial_ratio]=$(awk -v a="${R[$c/replay_serial_s]}" -v b="${R[$c/replay_sb_s]}" 'BEGIN { printf "%.2f", a / b }')
    log "$c: serial wal-get replay ${R[$c/replay_serial_s]} s (exact): prefetch is ${R[$c/serial_ratio]}x faster"
    # The floor: the same WAL copied from local disk (restore_command = cp), PostgreSQL's own redo pace.
    restore_from_full rs-local --prefetch 0
    replay_once "$dir/rs-local" "$port" "$want" -- -c archive_mode=off \
      -c "restore_command='cp $dir/walcopy/%f \"%p\" 2>/dev/null || cp $dir/walnext/%f \"%p\"'"
    [ "$REPLAY_OK" = exact ] || die "$c: local-copy replay: $REPLAY_OK"
    R[$c/replay_local_s]=$REPLAY_S
    rm -rf "$dir/rs-local"
    log "$c: replay of the same WAL copied from local disk ${R[$c/replay_local_s]} s (exact)"
  fi
  if [ "$SKIP_PGBACKREST" = 0 ]; then
    pgbr_config "$pgbr_conf.get" "$dir" "$dir/rs-pgbr" "$port"
    replay_once "$dir/rs-pgbr" "$port" "$want" -- -c archive_mode=off \
      -c "restore_command='$PGBACKREST --config=$pgbr_conf.get --stanza=$DB archive-get %f \"%p\"'"
    R[$c/replay_pgbr_s]=$REPLAY_S
    R[$c/replay_pgbr_ok]=$REPLAY_OK
    R[$c/replay_ratio]=$(awk -v a="${R[$c/replay_sb_s]}" -v b="${R[$c/replay_pgbr_s]}" 'BEGIN { printf "%.2f", a / b }')
    log "$c: pgBackRest async archive-get replay ${R[$c/replay_pgbr_s]} s (${R[$c/replay_pgbr_ok]}); smartbackup/pgBackRest = ${R[$c/replay_ratio]}"
  fi
}

print_case() {
  local c="$1" k line="RESULT case=$1"
  for k in gen_s parts logs full_s wal_mib walpush_s walget_p50 walget_p99 walget_rss ab_s ab_rows ab_rss purge_s purge_rss \
    agent_loop_s agent_ret_s agent_first_s agent_req agent_rss agent_events restore_s replay_sb_s replay_sb_ok replay_pgbr_s \
    replay_pgbr_ok replay_ratio replay_serial_s serial_ratio replay_local_s; do
    line="$line $k=${R[$c/$k]:--}"
  done
  echo "$line load=\"${R[$c/load]}\""
}

# ---- run ------------------------------------------------------------------------------
log "scale bench: days [$SCALE_DAYS] on [$SCALE_STORAGE], replay $REPLAY_MIB MiB, $WALGET_SAMPLES wal-get samples, work dir $T, load $LOAD_START"
for st in $SCALE_STORAGE; do
  for d in $SCALE_DAYS; do run_case "$st" "$d"; done
done

# ---- report ---------------------------------------------------------------------------
echo
echo "Scale bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, smartbackup $SMARTBACKUP ($(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "History: 2 MiB/min of WAL, a part per 5 s flush (174762 B), a log backup per 5 MiB, a full per day (scale_gen)."
echo "Replay: ${REPLAY_MIB} MiB of real WAL; pgBackRest $( [ "$SKIP_PGBACKREST" = 0 ] && pgbackrest version | awk '{print $2}') archive-get archive-async=y process-max=$PGBR_PROCESS_MAX (its repository on local disk)."
printf '%-10s %7s %6s %7s %9s %9s %8s %8s %8s %8s %8s %9s %9s %9s %6s %7s %s\n' case parts logs push \
  "wget p50" "wget p99" "avail s" "purge s" "agent s" "agret s" "req/loop" "restore s" "replay s" "pgbr s" ratio "RSS MB" load
for c in "${CASES[@]}"; do
  rss=$(printf '%s\n' "${R[$c/walget_rss]:-0}" "${R[$c/ab_rss]:-0}" "${R[$c/purge_rss]:-0}" "${R[$c/agent_rss]:-0}" | sort -n | tail -1)
  printf '%-10s %7s %6s %7s %9s %9s %8s %8s %8s %8s %8s %9s %9s %9s %6s %7s %s\n' "$c" "${R[$c/parts]}" "${R[$c/logs]}" "${R[$c/walpush_s]:--}" \
    "${R[$c/walget_p50]}ms" "${R[$c/walget_p99]}ms" "${R[$c/ab_s]}" "${R[$c/purge_s]}" "${R[$c/agent_loop_s]}" "${R[$c/agent_ret_s]}" \
    "${R[$c/agent_req]}" "${R[$c/restore_s]:--}" "${R[$c/replay_sb_s]:--}" "${R[$c/replay_pgbr_s]:--}" \
    "${R[$c/replay_ratio]:--}" "$rss" "${R[$c/load]}"
done
echo
echo "Targets (issue 12): wal-get p50 <= 20 ms on file://, <= 60 ms on Azurite, and flat (30 days <= 1.5x the"
echo "smallest size); available-backups <= 1 s at 30 days; an idle agent loop makes a handful of requests at most;"
echo "replay of 2 GiB from Azurite >= 3x faster than serial wal-get and at least as fast as pgBackRest (ratio <= 1)."
for st in $SCALE_STORAGE; do
  small=""; big=""
  for d in $SCALE_DAYS; do
    c="$st/${d}d"
    [ -n "$small" ] || small="$c"
    big="$c"
  done
  target=20; [ "$st" = azure ] && target=60
  awk -v st="$st" -v t="$target" -v p50="${R[$big/walget_p50]}" -v s50="${R[$small/walget_p50]}" -v big="$big" -v small="$small" \
    -v ab="${R[$big/ab_s]}" 'BEGIN {
      printf "%s: wal-get p50 %s ms at %s (target <= %d ms: %s); growth %s -> %s: %.2fx (target <= 1.5x: %s); available-backups %s s at %s (target <= 1 s at 30 days: %s)\n",
        st, p50, big, t, (p50 <= t ? "met" : "NOT met"), small, big, p50 / (s50 > 0 ? s50 : 1), (p50 / (s50 > 0 ? s50 : 1) <= 1.5 ? "met" : "NOT met"),
        ab, big, (ab <= 1 ? "met" : "NOT met") }'
done
for c in "${CASES[@]}"; do
  [ -n "${R[$c/serial_ratio]:-}" ] || continue
  awk -v c="$c" -v mib="${R[$c/wal_mib]}" -v pf="${R[$c/replay_sb_s]}" -v se="${R[$c/replay_serial_s]}" -v r="${R[$c/serial_ratio]}" -v pg="${R[$c/replay_ratio]:--}" -v lo="${R[$c/replay_local_s]:-0}" 'BEGIN {
    printf "%s: replay of %s MiB: prefetch %s s, serial wal-get %s s: %.2fx (target >= 3x: %s); smartbackup/pgBackRest %s (target <= 1: %s); from local disk (cp) %s s: prefetch/local %.2f\n",
      c, mib, pf, se, r, (r >= 3 ? "met" : "NOT met"), pg, (pg != "-" && pg <= 1 ? "met" : "NOT met"), lo, (lo > 0 ? pf / lo : 0) }'
done
echo "load average: start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)"
