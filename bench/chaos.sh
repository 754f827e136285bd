#!/usr/bin/env bash
# Chaos run: randomized faults against the smartbackup agent while a workload
# commits rows, then proof that nothing was lost.
#
# Per campaign (one storage x one mode) it starts a throwaway PostgreSQL 15
# primary and a streaming standby, a workload that inserts a row every 0.2 s
# and keeps on disk which ids were attempted and which were confirmed
# committed, Azurite behind a fault-injecting proxy (tools/fault_proxy.cc)
# when the storage is Azure, a tmpfs mounted for the file:// repository, and
# the agent with short intervals. It injects N seeded random faults, measures
# after each the time until `status` shows the cluster healthy again (state
# "ok", primary, and a recovery point newer than the end of the fault), then
# checks the repository: `verify` clean, the newest fulls restorable and
# pg_amcheck-clean, a --latest restore holding every committed row, and random
# time targets exact (rows restored == rows whose commit timestamp is at or
# before the target, compared by SQL). Several campaigns run concurrently.
#
# Prints one summary line and a table per fault kind; exits non-zero on any
# lost row, wrong result or unrecovered fault. Must run as root (PostgreSQL
# and the agent run as "postgres"). See bench/README.md.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: bench/chaos.sh [options]

  --faults N           faults in total, split over the campaigns (default 20; env CHAOS_FAULTS)
  --seed S             random seed (default: from the clock; printed; env CHAOS_SEED)
  --storage K          file, azure or both (default both)
  --mode M             stream, archive or both (default both)
  --restore-fulls N    restore (and amcheck) the newest N full backups of each campaign (default 2)
  --time-targets N     point-in-time restores per campaign (default 5)
  --kinds K1,K2,...    only these fault kinds (default: every kind that applies; see bench/README.md)
  --recover-timeout S  seconds a fault may take to recover before it counts as unrecovered (default 120)
  --smartbackup PATH   smartbackup binary (default: build/ or any build*/ of the source tree)
  --fault-proxy PATH   the fault_proxy tool (default: beside the smartbackup binary)
  --keep               keep the work directory (processes are still stopped)
  --workdir DIR        parent of the work directory (default: $TMPDIR or /tmp)
  -h, --help           this text
EOF
}

BENCH_NAME=chaos.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"

FAULTS="${CHAOS_FAULTS:-20}"
SEED="${CHAOS_SEED:-}"
STORAGE=both
MODE=both
RESTORE_FULLS=2
TIME_TARGETS=5
RECOVER_TIMEOUT=120
ONLY_KINDS=""
SMARTBACKUP="${SMARTBACKUP:-}"
FAULT_PROXY="${FAULT_PROXY:-}"
KEEP=0
WORKPARENT="${TMPDIR:-/tmp}"
CAMPAIGN=""   # internal: "INDEX STORAGE MODE OUTFILE" when this process runs one campaign
while [ $# -gt 0 ]; do
  case "$1" in
    --faults) FAULTS="${2:?--faults needs a value}"; shift 2 ;;
    --seed) SEED="${2:?--seed needs a value}"; shift 2 ;;
    --storage) STORAGE="${2:?--storage needs a value}"; shift 2 ;;
    --mode) MODE="${2:?--mode needs a value}"; shift 2 ;;
    --restore-fulls) RESTORE_FULLS="${2:?}"; shift 2 ;;
    --time-targets) TIME_TARGETS="${2:?}"; shift 2 ;;
    --recover-timeout) RECOVER_TIMEOUT="${2:?}"; shift 2 ;;
    --kinds) ONLY_KINDS="${2:?--kinds needs a list}"; shift 2 ;;
    --smartbackup) SMARTBACKUP="${2:?--smartbackup needs a path}"; shift 2 ;;
    --fault-proxy) FAULT_PROXY="${2:?--fault-proxy needs a path}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --workdir) WORKPARENT="${2:?--workdir needs a directory}"; shift 2 ;;
    --campaign) CAMPAIGN="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option \"$1\"" ;;
  esac
done
[[ "$FAULTS" =~ ^[0-9]+$ ]] || die "--faults must be a non-negative integer, got \"$FAULTS\""
[ -n "$SEED" ] || SEED=$(( $(date +%s) % 100000 ))
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got \"$SEED\""
case "$STORAGE" in file|azure|both) ;; *) die "--storage must be file, azure or both, got \"$STORAGE\"" ;; esac
case "$MODE" in stream|archive|both) ;; *) die "--mode must be stream, archive or both, got \"$MODE\"" ;; esac
for v in RESTORE_FULLS TIME_TARGETS RECOVER_TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "${v,,} must be a non-negative integer"
done

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL and the agent run as the postgres user via runuser; tmpfs is mounted)"
id postgres >/dev/null 2>&1 || die "no \"postgres\" user; hint: install the postgresql-15 package"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
for b in initdb pg_ctl psql pg_basebackup pg_amcheck; do
  [ -x "$PGBIN/$b" ] || die "\"$PGBIN/$b\" not found; hint: set PGBIN to the PostgreSQL 15 bin directory"
done
command -v jq >/dev/null || die "jq not found; hint: apt-get install jq"
find_smartbackup
[ -n "$FAULT_PROXY" ] || FAULT_PROXY="$(dirname "$SMARTBACKUP")/fault_proxy"
SB="$SMARTBACKUP"

now() { echo "$EPOCHREALTIME"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

# ============================================================================
# The parent: splits the faults over the campaigns, runs them concurrently,
# aggregates their result files.
# ============================================================================
if [ -z "$CAMPAIGN" ]; then
  storages=(); modes=()
  case "$STORAGE" in both) storages=(file azure) ;; *) storages=("$STORAGE") ;; esac
  case "$MODE" in both) modes=(stream archive) ;; *) modes=("$MODE") ;; esac
  if [[ " ${storages[*]} " == *" azure "* ]]; then
    command -v azurite-blob >/dev/null || die "azurite-blob not found; hint: npm install -g azurite, or --storage file"
    [ -x "$FAULT_PROXY" ] || die "\"$FAULT_PROXY\" not found; hint: build it (scripts/build.sh builds tools/fault_proxy.cc) or pass --fault-proxy"
  fi
  combos=()
  for s in "${storages[@]}"; do for m in "${modes[@]}"; do combos+=("$s $m"); done; done
  n=${#combos[@]}
  mkdir -p "$WORKPARENT"
  RUNDIR="$(mktemp -d "$WORKPARENT/sbchaos.XXXXXX")"
  chmod 755 "$RUNDIR"
  CPIDS=()
  parent_cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${CPIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
    for p in "${CPIDS[@]}"; do wait "$p" 2>/dev/null; done
    [ "$KEEP" = 1 ] && log "kept $RUNDIR" || rm -rf "$RUNDIR"
    exit "$rc"
  }
  trap parent_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "chaos: seed=$SEED faults=$FAULTS campaigns: ${combos[*]/%/;} smartbackup $SB"
  echo "chaos: seed=$SEED"
  keep_flag=(); [ "$KEEP" = 1 ] && keep_flag=(--keep)
  # The campaigns run a copy: bash reads a script as it goes, so editing it during a run would break them.
  cp "$SELF" "$RUNDIR/chaos.sh"; cp "$(dirname "$SELF")/lib.sh" "$RUNDIR/lib.sh"
  for i in "${!combos[@]}"; do
    share=$(( FAULTS / n + (i < FAULTS % n ? 1 : 0) ))
    # A session of its own each: stopping one reaches everything it started.
    setsid bash "$RUNDIR/chaos.sh" --campaign "$i ${combos[$i]} $RUNDIR/result.$i" --faults "$share" --seed "$((SEED * 10 + i))" \
      --kinds "${ONLY_KINDS:-all}" --restore-fulls "$RESTORE_FULLS" --time-targets "$TIME_TARGETS" --recover-timeout "$RECOVER_TIMEOUT" \
      --smartbackup "$SB" --fault-proxy "$FAULT_PROXY" --workdir "$RUNDIR" "${keep_flag[@]}" \
      > >(sed -u "s/^/[c$i ${combos[$i]/ /-}] /" >&2) 2>&1 &
    CPIDS+=($!)
  done
  failed=0
  for p in "${CPIDS[@]}"; do wait "$p" || failed=1; done
  CPIDS=()
  # Aggregate: FAULT lines (kind secs|timeout state-during) and CHECK lines.
  cat "$RUNDIR"/result.* 2>/dev/null >"$RUNDIR/all" || true
  awk -v seed="$SEED" -v failed="$failed" '
    function median(arr, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
      if (n == 0) return 0
      return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    function sortkeys(src, dst,   k, n, i, j, t) {  # the keys of src, sorted, into dst[1..n]
      n = 0; for (k in src) dst[++n] = k
      for (i = 2; i <= n; i++) { t = dst[i]; for (j = i - 1; j >= 1 && dst[j] > t; j--) dst[j + 1] = dst[j]; dst[j + 1] = t }
      return n
    }
    $1 == "FAULT" {
      faults++; kind = $2; kf[kind]++
      if ($3 == "timeout") { unrec++; ku[kind]++ }
      else { rec++; all[rec] = $3; kn[kind]++; kv[kind, kn[kind]] = $3; if ($3 > kmax[kind]) kmax[kind] = $3; if ($3 > mx) mx = $3 }
      if ($4 == "ok") kok[kind]++
      ck = kind " " $6; cf[ck]++
      if ($3 != "timeout") { cn[ck]++; cv[ck, cn[ck]] = $3; if ($3 > cmax[ck]) cmax[ck] = $3 }
      if ($7 != "" && $7 != "-") { an[ck]++; av[ck, an[ck]] = $7 }
    }
    $1 == "CHECK" { restores += $2; lost += $3; wrong += $4; refused += $5; if ($6 != "0") bad++ }
    $1 == "CAMPAIGN_DONE" { done++ }
    $1 == "STOP" { ns++; stops[ns] = $2; if ($2 > smax) smax = $2 }
    $1 == "NOTE" { sub(/^NOTE /, ""); notes[$0]++ }
    END {
      printf "chaos: faults=%d recovered=%d median_recover=%.1fs max_recover=%.1fs restores=%d rows_lost=%d wrong=%d seed=%s\n",
        faults, rec, median(all, rec), mx, restores, lost, wrong, seed
      printf "%-22s %6s %9s %12s %9s %14s\n", "kind", "faults", "recovered", "median_s", "max_s", "said_ok_during"
      nk = sortkeys(kf, keys)
      for (ki = 1; ki <= nk; ki++) {
        k = keys[ki]; n = kn[k]; delete tmp; for (i = 1; i <= n; i++) tmp[i] = kv[k, i]
        printf "%-22s %6d %9d %12.1f %9.1f %14d\n", k, kf[k], n + 0, median(tmp, n), kmax[k], kok[k]
      }
      printf "\n%-22s %-14s %6s %9s %9s %9s %16s\n", "kind", "campaign", "faults", "recovered", "median_s", "max_s", "archived_again_s"
      nk = sortkeys(cf, keys2)
      for (ki = 1; ki <= nk; ki++) {
        k = keys2[ki]; split(k, kk, " "); n = cn[k] + 0; delete tmp; for (i = 1; i <= n; i++) tmp[i] = cv[k, i]
        m = an[k] + 0; delete tmp2; for (i = 1; i <= m; i++) tmp2[i] = av[k, i]
        printf "%-22s %-14s %6d %9d %9.1f %9.1f %16s\n", kk[1], kk[2], cf[k], n, median(tmp, n), cmax[k], m ? sprintf("%.1f", median(tmp2, m)) : "-"
      }
      if (ns > 0) printf "agent SIGTERM to exit: median %.1fs max %.1fs (%d stops)\n", median(stops, ns), smax, ns
      for (n in notes) printf "note (%dx): %s\n", notes[n], n
      if (refused > 0) printf "note: %d time target(s) refused as outside every restore window (see the campaign logs)\n", refused
      if (failed || unrec > 0 || lost > 0 || wrong > 0 || bad > 0) exit 1
    }' "$RUNDIR/all"
  rc=$?
  [ "$failed" = 0 ] || echo "chaos: a campaign failed (see its log lines above)" >&2
  exit "$rc"
fi

# ============================================================================
# One campaign.
# ============================================================================
read -r CIDX CSTORAGE CMODE OUTFILE <<<"$CAMPAIGN"
RANDOM=$SEED
R=0
rand() { R=$(( $1 + RANDOM % ($2 - $1 + 1) )); }          # rand LO HI -> R (never in a subshell)
randf() { rand 0 999; R=$(awk -v lo="$1" -v hi="$2" -v r="$R" 'BEGIN { printf "%.2f", lo + (hi - lo) * r / 999 }'); }

bench_setup "c$CIDX"
exec 3>>"$OUTFILE"
DB=chaos
# Below the kernel's ephemeral range (32768-60999 here): a port in it may be the local end of any
# outgoing connection at the moment a server (re)starts, and its bind then fails.
PORTS_BASE=$(( 23000 + CIDX * 40 ))
USED_PORTS=""
pick_port() {  # pick_port VAR: a free port of this campaign's range, never handed out twice
  local p
  for p in $(seq "$PORTS_BASE" $(( PORTS_BASE + 39 ))); do
    [[ " $USED_PORTS " == *" $p "* ]] && continue
    if ! ss -Htan "sport = :$p" | grep -q .; then USED_PORTS="$USED_PORTS $p"; printf -v "$1" %s "$p"; return; fi
  done
  die "no free TCP port in $PORTS_BASE-$((PORTS_BASE + 39))"
}

# Processes started in sessions of their own (setsid): stopped by session.
SESSIONS=()
MOUNTED=""
campaign_cleanup() {
  local rc=$?
  set +e
  [ -n "${AGENT_PID:-}" ] && kill -KILL -- "-$AGENT_PID" 2>/dev/null
  [ -n "${AZ_PID:-}" ] && kill -CONT -- "-$AZ_PID" 2>/dev/null
  local s d
  for s in "${SESSIONS[@]}" ${AGENT_PID:-} ${AZ_PID:-} ${PROXY_PID:-} ${LOAD_PID:-}; do kill -KILL -- "-$s" 2>/dev/null; done
  for d in "$T"/node0 "$T"/node1 "$T"/restore-*; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
  done
  wait 2>/dev/null
  [ -n "$MOUNTED" ] && { chmod -R u+w "$MOUNTED" 2>/dev/null; umount "$MOUNTED" || umount -l "$MOUNTED"; }
  # Nothing of ours may be left: every session gone, no server on our directories.
  for s in "${SESSIONS[@]}" ${AGENT_PID:-} ${AZ_PID:-} ${PROXY_PID:-} ${LOAD_PID:-}; do
    for _ in $(seq 1 50); do pgrep -s "$s" >/dev/null 2>&1 || break; sleep 0.1; done
  done
  for s in "${SESSIONS[@]}" ${AGENT_PID:-} ${AZ_PID:-} ${PROXY_PID:-} ${LOAD_PID:-}; do
    pgrep -s "$s" >/dev/null 2>&1 && echo "chaos: warning: processes of session $s still run" >&2
  done
  if pgrep -f -- "$T/" >/dev/null 2>&1; then echo "chaos: warning: processes naming $T still run" >&2; fi
  if [ "$KEEP" = 1 ]; then log "kept $T"; else rm -rf "$T" 2>/dev/null || { sleep 1; rm -rf "$T"; }; fi
  [ "$rc" = 0 ] || echo "chaos: campaign $CIDX ($CSTORAGE $CMODE) failed (exit $rc)" >&2
  exit "$rc"
}
trap campaign_cleanup EXIT

log "campaign $CSTORAGE/$CMODE: faults=$FAULTS seed=$SEED work dir $T"

# ---- storage -----------------------------------------------------------------
AZ_PID=""; PROXY_PID=""; AZ_PORT=""; PROXY_PORT=""
PROXY_CONTROL="$T/proxy.control"
port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_azurite() {
  setsid azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$T/azurite" --silent \
    --skipApiVersionCheck --disableTelemetry --loose >>"$T/azurite.log" 2>&1 </dev/null &
  AZ_PID=$!
  disown "$AZ_PID"
  local i
  for i in $(seq 1 300); do port_accepts "$AZ_PORT" && return 0; sleep 0.1; done
  die "Azurite did not listen on $AZ_PORT within 30 s (log: $T/azurite.log)"
}
if [ "$CSTORAGE" = file ]; then
  REPO_DIR="$T/repo"
  mkdir -p "$REPO_DIR"
  # A tmpfs of its own: "disk full" is a remount to the size in use, "unwritable" a chmod.
  mount -t tmpfs -o size=2g,mode=0750 tmpfs "$REPO_DIR" || die "cannot mount a tmpfs on $REPO_DIR"
  MOUNTED="$REPO_DIR"
  chown postgres: "$REPO_DIR"
  REPO_URL="file://$REPO_DIR"
  AGENT_ENV=()
  CHECK_ENV=()
else
  mkdir -p "$T/azurite"
  pick_port AZ_PORT; pick_port PROXY_PORT
  start_azurite
  echo pass >"$PROXY_CONTROL"
  setsid "$FAULT_PROXY" --listen "$PROXY_PORT" --upstream "127.0.0.1:$AZ_PORT" --control "$PROXY_CONTROL" \
    --seed "$SEED" >>"$T/proxy.log" 2>&1 </dev/null &
  PROXY_PID=$!
  disown "$PROXY_PID"
  for i in $(seq 1 100); do port_accepts "$PROXY_PORT" && break; sleep 0.1; done
  port_accepts "$PROXY_PORT" || die "fault_proxy did not listen (log: $T/proxy.log)"
  ACCT=devstoreaccount1
  KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
  conn_string() { echo "DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$1/$ACCT;"; }
  REPO_URL="azure://chaos$CIDX"
  AGENT_ENV=("AZURE_STORAGE_CONNECTION_STRING=$(conn_string "$PROXY_PORT")")   # through the proxy
  CHECK_ENV=("AZURE_STORAGE_CONNECTION_STRING=$(conn_string "$AZ_PORT")")      # the checks go direct
fi

# ---- PostgreSQL: node0 primary, node1 streaming standby -------------------------
pick_port P0; pick_port P1
NODE_DIR=("$T/node0" "$T/node1"); NODE_PORT=("$P0" "$P1")
PRI=0   # index of the primary
CONN="host=127.0.0.1,127.0.0.1 port=$P0,$P1 user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=3"

start_node() {  # start_node IDX (archive_command's wal-push takes the storage credentials from its environment)
  as_pg env ${AGENT_ENV[@]+"${AGENT_ENV[@]}"} "$PGBIN/pg_ctl" -D "${NODE_DIR[$1]}" -l "$T/node$1.log" -w -t 120 \
    -o "-p ${NODE_PORT[$1]} -c unix_socket_directories=$SOCK" start >/dev/null \
    || { tail -n 20 "$T/node$1.log" >&2; die "could not start node$1"; }
}
psql_node() { local i="$1"; shift; "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${NODE_PORT[$i]}" -U postgres -d postgres "$@"; }

as_pg "$PGBIN/initdb" -k -A trust -U postgres -E UTF8 --locale=C -D "${NODE_DIR[0]}" >"$T/initdb.log" 2>&1 \
  || { cat "$T/initdb.log" >&2; die "initdb failed"; }
ARCHIVE_SETTINGS="archive_mode = off"
[ "$CMODE" = archive ] && ARCHIVE_SETTINGS="archive_mode = on
archive_command = '$SB wal-push %p --repo $REPO_URL --db $DB'
archive_timeout = 3s"
cat >>"${NODE_DIR[0]}/postgresql.conf" <<EOF

# ---- bench/chaos.sh ----
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 512MB
hot_standby = on
track_commit_timestamp = on
fsync = off
shared_buffers = 32MB
max_wal_size = 256MB
$ARCHIVE_SETTINGS
EOF
start_node 0
psql_node 0 -c "CREATE TABLE chaos_rows (id bigint PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(), payload text)" \
  || die "cannot create the workload table"

build_standby() {  # build_standby IDX: (re)makes node IDX a streaming standby of the primary
  local i="$1"
  rm -rf "${NODE_DIR[$i]}"
  as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "${NODE_PORT[$PRI]}" -U postgres -D "${NODE_DIR[$i]}" -R -X stream -c fast \
    >>"$T/basebackup.log" 2>&1 || { tail -n 5 "$T/basebackup.log" >&2; return 1; }
  start_node "$i"
}
build_standby 1 || die "cannot build the standby"

# ---- the workload ---------------------------------------------------------------
# One INSERT per psql run, so that each id is known as attempted (before) and
# committed (psql printed the RETURNING row, which comes after the commit).
cat >"$T/workload.sh" <<EOF
#!/usr/bin/env bash
i=0
while [ ! -e "$T/workload.stop" ]; do
  i=\$((i + 1))
  echo "\$i" >>"$T/attempted"
  if out=\$(PGCONNECT_TIMEOUT=3 "$PGBIN/psql" "$CONN" -XAtq -v ON_ERROR_STOP=1 \
      -c "INSERT INTO chaos_rows (id, payload) VALUES (\$i, md5('\$i')) RETURNING id" 2>>"$T/workload.err"); then
    [ "\$out" = "\$i" ] && echo "\$i \$EPOCHREALTIME" >>"$T/committed"
  fi
  sleep 0.2
done
EOF
setsid bash "$T/workload.sh" </dev/null >/dev/null 2>&1 &
LOAD_PID=$!
disown "$LOAD_PID"

# ---- the agent ----------------------------------------------------------------
mkdir_pg "$T/state"
cat >"$T/agent.toml" <<EOF
[agent]
state_dir = "$T/state"
socket = "$T/state/agent.sock"
discover = false
loop_interval = "2s"

[defaults]
drill_enabled = false   # chaos measures backup recovery; drills are tested on their own
enabled = true
storage_url = "$REPO_URL"
retention_days = 7
mode = "$CMODE"
flush_interval = "2s"
full_max_age = "120s"
full_max_wal = "256MiB"
log_max_age = "20s"
log_max_wal = "4MiB"

[[cluster]]
name = "$DB"
conninfo = "$CONN"
EOF
chown postgres: "$T/agent.toml"
AGENT_PID=""
AGENT_STARTS=0
start_agent() {
  AGENT_STARTS=$((AGENT_STARTS + 1))
  echo "---- agent start $AGENT_STARTS at $(date -u +%H:%M:%S.%N)" >>"$T/agent.log"
  # setpriv execs (runuser would stay as the parent and, on SIGTERM, SIGKILL the agent 2 s later),
  # so the session leader is the agent itself and a SIGTERM reaches only it.
  setsid setpriv --reuid=postgres --regid=postgres --init-groups env ${AGENT_ENV[@]+"${AGENT_ENV[@]}"} \
    "$SB" agent --config "$T/agent.toml" -v >>"$T/agent.log" 2>&1 </dev/null &
  AGENT_PID=$!
  disown "$AGENT_PID"
}
agent_gone() { ! pgrep -s "$AGENT_PID" >/dev/null 2>&1; }
wait_agent_gone() {  # wait_agent_gone SECONDS: 0 when it is gone
  local i
  for i in $(seq 1 $(( $1 * 10 ))); do agent_gone && return 0; sleep 0.1; done
  return 1
}
sbv() { as_pg env ${AGENT_ENV[@]+"${AGENT_ENV[@]}"} "$SB" "$@"; }         # a verb as the agent sees storage
sbc() { as_pg env ${CHECK_ENV[@]+"${CHECK_ENV[@]}"} "$SB" "$@"; }         # a verb straight to storage
start_agent

# Status facts: sets ST_STATE, ST_ROLE, ST_AGE, ST_RUNNING ("" when status fails).
read_status() {
  local j
  ST_STATE=""; ST_ROLE=""; ST_AGE=""; ST_RUNNING=""; ST_STREAMING=""
  j=$(timeout 10 runuser -u postgres -- "$SB" status --config "$T/agent.toml" --output json 2>/dev/null) || return 1
  # '|' separated, the state last: empty fields survive and the state may hold anything.
  IFS='|' read -r ST_ROLE ST_AGE ST_RUNNING ST_STREAMING ST_STATE < <(jq -r --arg db "$DB" \
    '.clusters[] | select(.database == $db) | "\(.role)|\(.recovery_point_age_seconds // "")|\(.running | length)|\(.streaming)|\(.state)"' <<<"$j")
  [ -n "$ST_STATE" ]
}
# Healthy: state "ok" (possibly with notes), primary, in stream mode WAL streaming (a full backup
# also moves the recovery point, so without it a dead stream looks healed whenever a full ends),
# and a recovery point after SINCE (an
# $EPOCHREALTIME). status gives the age in whole seconds (truncated), so the recovery point is taken
# as now - age - 1 s: never later than the real one, and a recovery is measured at most 1 s late.
healthy_since() {
  read_status || return 1
  [[ "$ST_STATE" == ok || "$ST_STATE" == "ok;"* ]] || return 1
  [ "$ST_ROLE" = primary ] || return 1
  [ "$CMODE" != stream ] || [ "$ST_STREAMING" = true ] || return 1
  [[ "$ST_AGE" =~ ^[0-9]+$ ]] || return 1
  local now_us=${EPOCHREALTIME/./} since_us=${1/./}
  [ $(( now_us - (ST_AGE + 1) * 1000000 )) -ge "$since_us" ]
}

log "waiting for the first full backup and capture"
T0=$(now)
until healthy_since "$T0" && sbc available-backups --repo "$REPO_URL" --db "$DB" --output json 2>/dev/null | jq -e 'any(.[].backups[]; .type == "full")' >/dev/null; do
  [ "$(fsub "$(now)" "$T0" | cut -d. -f1)" -lt 180 ] || { tail -n 30 "$T/agent.log" >&2; die "no full backup and healthy capture within 180 s (state: $ST_STATE)"; }
  agent_gone && { tail -n 30 "$T/agent.log" >&2; die "the agent exited at start"; }
  sleep 0.5
done
log "first full backup taken after $(fsub "$(now)" "$T0") s"

# ---- faults -------------------------------------------------------------------
KINDS=(agent_kill9 agent_kill9_full agent_sigterm pg_restart_fast pg_restart_immediate pg_promote_mid_backup)
if [ "$CSTORAGE" = file ]; then
  KINDS+=(repo_disk_full repo_unwritable)
else
  KINDS+=(azurite_kill azurite_freeze proxy_5xx proxy_429 proxy_reset)
fi
if [ -n "$ONLY_KINDS" ] && [ "$ONLY_KINDS" != all ]; then
  wanted=(); for k in "${KINDS[@]}"; do [[ ",$ONLY_KINDS," == *",$k,"* ]] && wanted+=("$k"); done
  [ ${#wanted[@]} -gt 0 ] || die "none of --kinds $ONLY_KINDS applies to $CSTORAGE (kinds here: ${KINDS[*]})"
  KINDS=("${wanted[@]}")
fi

restart_pg() {  # restart_pg fast|immediate
  as_pg "$PGBIN/pg_ctl" -D "${NODE_DIR[$PRI]}" -m "$1" -w -t 120 stop >/dev/null 2>&1
  start_node "$PRI"
}
FULL_REQ_PID=""
request_full() {  # backup-on-demand in the background (its result is not ours to judge here)
  ( timeout 120 runuser -u postgres -- "$SB" backup-on-demand "$DB" --type full --config "$T/agent.toml" \
      >>"$T/on-demand.log" 2>&1 ) &
  FULL_REQ_PID=$!
}
reap_full_request() { [ -z "$FULL_REQ_PID" ] || { wait "$FULL_REQ_PID" 2>/dev/null; FULL_REQ_PID=""; }; }
wait_full_running() {  # up to $1 s until status lists a running full
  local i
  for i in $(seq 1 $(( $1 * 4 ))); do read_status && [ "${ST_RUNNING:-0}" -gt 0 ] && return 0; sleep 0.25; done
  return 1
}
DURING=""   # the state status gave while the fault lasted
sample_during() { if read_status; then DURING="${ST_STATE%%;*}"; DURING="${DURING%%:*}"; DURING="${DURING// /_}"; else DURING="no_status"; fi; }

REBUILD_PID=""
inject() {  # inject KIND: returns when the fault has been cleared (sets T_CLEAR)
  local kind="$1"
  DURING="-"
  case "$kind" in
    agent_kill9)
      kill -KILL -- "-$AGENT_PID"; wait_agent_gone 30; start_agent ;;
    agent_kill9_full)
      request_full; wait_full_running 20; randf 0.2 3; sleep "$R"
      kill -KILL -- "-$AGENT_PID"; wait_agent_gone 30; reap_full_request; start_agent ;;
    agent_sigterm)
      local t=$(now)
      kill -TERM -- "-$AGENT_PID"
      if ! wait_agent_gone 60; then
        echo "NOTE agent_sigterm: agent did not exit within 60 s of SIGTERM; killed" >&3
        kill -KILL -- "-$AGENT_PID"; wait_agent_gone 10
      fi
      echo "STOP $(fsub "$(now)" "$t")" >&3
      start_agent ;;
    pg_restart_fast) restart_pg fast ;;
    pg_restart_immediate) restart_pg immediate ;;
    pg_promote_mid_backup)
      if [ -n "$REBUILD_PID" ]; then
        wait "$REBUILD_PID" || build_standby $((1 - PRI)) >>"$T/rebuild.log" 2>&1 || die "cannot rebuild the standby (log: $T/rebuild.log)"
        REBUILD_PID=""
      fi
      request_full; wait_full_running 20; randf 0.2 2; sleep "$R"
      local old=$PRI new=$((1 - PRI))
      # A switchover: the old primary stops (fast: its WAL reaches the standby), the standby is promoted.
      as_pg "$PGBIN/pg_ctl" -D "${NODE_DIR[$old]}" -m fast -w -t 120 stop >/dev/null 2>&1
      as_pg "$PGBIN/pg_ctl" -D "${NODE_DIR[$new]}" -w -t 120 promote >/dev/null 2>&1 || die "promotion of node$new failed"
      PRI=$new
      reap_full_request
      # The old primary comes back as a standby of the new one while recovery is measured.
      ( build_standby "$old" ) >>"$T/rebuild.log" 2>&1 &
      REBUILD_PID=$! ;;
    repo_disk_full)
      local used
      for _ in 1 2 3 4 5; do
        used=$(df -B1 --output=used "$REPO_DIR" | tail -1)
        mount -o remount,size=$(( used + 65536 )) "$REPO_DIR" 2>/dev/null && break
      done
      randf 3 12; sleep "$R"; sample_during
      mount -o remount,size=2g "$REPO_DIR" ;;
    repo_unwritable)
      chmod -R a-w "$REPO_DIR"
      randf 3 12; sleep "$R"; sample_during
      chmod -R u+w "$REPO_DIR" ;;
    azurite_kill)
      kill -KILL -- "-$AZ_PID"
      for _ in $(seq 1 50); do pgrep -s "$AZ_PID" >/dev/null || break; sleep 0.1; done
      randf 1 8; sleep "$R"; sample_during
      start_azurite ;;
    azurite_freeze)
      kill -STOP -- "-$AZ_PID"
      randf 3 20; sleep "$R"; sample_during
      kill -CONT -- "-$AZ_PID" ;;
    proxy_5xx|proxy_429|proxy_reset)
      local code=${kind#proxy_}
      if [ "$code" = 5xx ]; then rand 0 1; code=$([ "$R" = 0 ] && echo 500 || echo 503); fi
      randf 0.3 1; echo "$code $R" >"$PROXY_CONTROL"
      randf 3 15; sleep "$R"; sample_during
      echo pass >"$PROXY_CONTROL" ;;
    *) die "unknown fault kind $kind" ;;
  esac
  T_CLEAR=$(now)
}

UNRECOVERED=0
IN_A_ROW=0   # unrecovered faults in a row: at 3 the agent is stuck, and more faults would measure nothing
for k in $(seq 1 "$FAULTS"); do
  if [ "$IN_A_ROW" -ge 3 ]; then
    log "3 faults in a row did not recover: the agent is stuck (state: ${ST_STATE:0:200}); $((FAULTS - k + 1)) faults not injected"
    echo "NOTE stuck: $CSTORAGE-$CMODE stopped injecting after 3 unrecovered faults in a row, $((FAULTS - k + 1)) not injected" >&3
    break
  fi
  randf 1 5; sleep "$R"
  rand 0 $(( ${#KINDS[@]} - 1 )); kind=${KINDS[$R]}
  T_FAULT=$(now)
  inject "$kind"
  secs=timeout
  arch=-   # archive mode: until PostgreSQL archived a segment again (capture itself, whatever status says)
  while :; do
    if [ "$CMODE" = archive ] && [ "$arch" = - ]; then
      la=$(psql_node "$PRI" -c "SELECT coalesce(extract(epoch from last_archived_time), 0) FROM pg_stat_archiver" 2>/dev/null)
      [ -n "$la" ] && awk -v a="$la" -v b="$T_CLEAR" 'BEGIN { exit !(a > b) }' && arch=$(fsub "$(now)" "$T_CLEAR")
    fi
    if healthy_since "$T_CLEAR"; then secs=$(fsub "$(now)" "$T_CLEAR"); break; fi
    if agent_gone; then
      echo "NOTE $kind: the agent exited on its own; restarted" >&3
      log "fault $k $kind: the agent exited on its own (see $T/agent.log); restarting it"
      start_agent
    fi
    [ "$(fsub "$(now)" "$T_CLEAR" | cut -d. -f1)" -lt "$RECOVER_TIMEOUT" ] || break
    sleep 0.3
  done
  if [ "$secs" = timeout ]; then UNRECOVERED=$((UNRECOVERED + 1)); IN_A_ROW=$((IN_A_ROW + 1)); else IN_A_ROW=0; fi
  echo "FAULT $kind $secs ${DURING:--} $(fsub "$T_CLEAR" "$T_FAULT") $CSTORAGE-$CMODE $arch" >&3
  log "fault $k/$FAULTS $kind: held $(fsub "$T_CLEAR" "$T_FAULT") s, status during: ${DURING:--}, recovered: $secs$([ "$secs" = timeout ] || echo " s")$([ "$arch" = - ] || echo ", archiving again after $arch s") (state now: ${ST_STATE:0:120})"
done
[ -z "$REBUILD_PID" ] || { wait "$REBUILD_PID"; REBUILD_PID=""; }

# ---- settle ---------------------------------------------------------------------
touch "$T/workload.stop"
for _ in $(seq 1 100); do pgrep -s "$LOAD_PID" >/dev/null || break; sleep 0.1; done
kill -KILL -- "-$LOAD_PID" 2>/dev/null
LOAD_PID=""
[ -s "$T/committed" ] || die "the workload committed nothing (see $T/workload.err)"
T_END=$(now)
log "workload stopped: $(wc -l <"$T/committed") rows committed of $(wc -l <"$T/attempted") attempted"
if [ "$CMODE" = archive ]; then
  psql_node "$PRI" -c "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 1 600); do
    [ -z "$(ls "${NODE_DIR[$PRI]}/pg_wal/archive_status" | grep '\.ready$')" ] && break; sleep 0.2
  done
fi
# Capture must reach past the last commit, then the agent stops (SIGTERM: it flushes).
caught_up=0
for _ in $(seq 1 600); do healthy_since "$T_END" && { caught_up=1; break; }; sleep 0.2; done
[ "$caught_up" = 1 ] || log "warning: capture did not reach the end of the workload (state: $ST_STATE)"
kill -TERM -- "-$AGENT_PID"; wait_agent_gone 60 || { kill -KILL -- "-$AGENT_PID"; wait_agent_gone 10; }
if [ "$CSTORAGE" = azure ]; then kill -TERM -- "-$PROXY_PID"; sleep 0.2; grep 'injected' "$T/proxy.log" | tail -n1 >&2; kill -KILL -- "-$PROXY_PID" 2>/dev/null; PROXY_PID=""; fi

# The truth, from the final primary: every row and its commit timestamp.
psql_node "$PRI" -F ' ' -c "SELECT id, extract(epoch from pg_xact_commit_timestamp(xmin)) FROM chaos_rows ORDER BY id" \
  >"$T/truth" || die "cannot read the rows from the primary"
cut -d' ' -f1 "$T/committed" | sort -n >"$T/committed.ids"
cut -d' ' -f1 "$T/truth" | sort -n >"$T/truth.ids"
MISSING_ON_PRIMARY=$(comm -23 "$T/committed.ids" "$T/truth.ids" | wc -l)
[ "$MISSING_ON_PRIMARY" = 0 ] || log "error: $MISSING_ON_PRIMARY confirmed rows are missing on the primary itself"
TRUTH_ROWS=$(wc -l <"$T/truth")
for i in 0 1; do as_pg "$PGBIN/pg_ctl" -D "${NODE_DIR[$i]}" -m fast -w -t 60 stop >/dev/null 2>&1; done

# ---- checks ---------------------------------------------------------------------
RESTORES=0; LOST=0; WRONG=0; REFUSED=0; BAD=$MISSING_ON_PRIMARY
bad() { BAD=$((BAD + 1)); log "CHECK FAILED: $*"; echo "NOTE check: $*" >&3; }

log "verify"
if ! sbc verify --repo "$REPO_URL" --db "$DB" >"$T/verify.out" 2>&1; then
  tail -n 20 "$T/verify.out" >&2; bad "verify reported problems"
fi
sbc available-backups --repo "$REPO_URL" --db "$DB" --output json >"$T/backups.json" 2>"$T/backups.err" \
  || bad "available-backups failed: $(tail -n1 "$T/backups.err")"
NFULL=$(jq '[.[].backups[] | select(.type == "full")] | length' "$T/backups.json")
NBREAK=$(jq '[.[].backups[] | select(.type == "broken_chain")] | length' "$T/backups.json")
log "$NFULL full backups listed, $NBREAK broken_chain rows"
[ "$NBREAK" = 0 ] || jq -c '.[].backups[] | select(.type == "broken_chain")' "$T/backups.json" | sed 's/^/  broken_chain: /' >&2

# restore_into NAME ARGS...: restores, starts on a free port (no archiving), waits for promotion.
pick_port RPORT
restore_into() {
  local name="$1"; shift
  local d="$T/restore-$name"
  rm -rf "$d"
  if ! sbc restore --repo "$REPO_URL" --db "$DB" --target-dir "$d" "$@" >"$T/restore-$name.out" 2>&1; then
    RESTORE_MSG=$(tail -n1 "$T/restore-$name.out"); return 2
  fi
  chmod 700 "$d"
  if ! as_pg env ${CHECK_ENV[@]+"${CHECK_ENV[@]}"} "$PGBIN/pg_ctl" -D "$d" -l "$T/restore-$name.log" -w -t 300 \
      -o "-p $RPORT -c unix_socket_directories=$SOCK -c archive_mode=off" start >"$T/restore-$name.start" 2>&1; then
    RESTORE_MSG="the restored cluster did not start on port $RPORT: $(grep -E 'FATAL|PANIC|ERROR' "$T/restore-$name.log" | tail -n 2 | tr '\n' ' ') $(tail -n 2 "$T/restore-$name.start" | tr '\n' ' ')"
    cp "$T/restore-$name.log" "$WORKPARENT/failed-restore-$CIDX-$name-$RESTORES.log" 2>/dev/null
    return 1
  fi
  local i
  for i in $(seq 1 600); do
    [ "$("$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$RPORT" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
    sleep 0.2
  done
  RESTORE_MSG="the restored cluster did not finish recovery (log: $T/restore-$name.log)"; return 1
}
stop_restored() { as_pg "$PGBIN/pg_ctl" -D "$T/restore-$1" -m fast -w -t 60 stop >/dev/null 2>&1; rm -rf "$T/restore-$1"; }
restored_ids() { "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$RPORT" -U postgres -d postgres -c "SELECT id FROM chaos_rows ORDER BY id"; }

# 1. The newest fulls, each to its own end: restorable and amcheck-clean.
jq -r '[.[].backups[] | select(.type == "full")] | sort_by(.finish_time) | reverse | .[:'"$RESTORE_FULLS"'][] | "\(.backup_id) \(.end_lsn)"' \
  "$T/backups.json" | while read -r id lsn; do echo "$id $lsn"; done >"$T/fulls.pick"
while read -r id lsn; do
  RESTORES=$((RESTORES + 1))
  if restore_into "full" --backup-id "$id" --lsn "$lsn"; then
    "$PGBIN/pg_amcheck" -h 127.0.0.1 -p "$RPORT" -U postgres --install-missing --all --heapallindexed \
      >"$T/amcheck.$id.out" 2>&1 || bad "pg_amcheck of full $id: $(head -n3 "$T/amcheck.$id.out" | tr '\n' ' ')"
    log "full $id (to $lsn): restored, amcheck clean"
  else
    bad "full $id does not restore: $RESTORE_MSG"
  fi
  stop_restored full
done <"$T/fulls.pick"

# 2. --latest: every committed row, and nothing the workload did not attempt.
RESTORES=$((RESTORES + 1))
if restore_into latest --latest; then
  restored_ids >"$T/latest.ids"
  n_lost=$(comm -23 "$T/committed.ids" "$T/latest.ids" | wc -l)   # confirmed to the client
  n_extra=$(comm -13 "$T/truth.ids" "$T/latest.ids" | wc -l)
  n_short=$(comm -23 "$T/truth.ids" "$T/latest.ids" | wc -l)
  LOST=$((LOST + n_short))   # every row the primary holds counts, confirmed or not
  [ "$n_extra" = 0 ] || { WRONG=$((WRONG + 1)); log "latest: $n_extra rows that the primary does not have"; }
  [ "$n_short" = 0 ] || log "latest: $n_short rows of the primary missing ($n_lost of them confirmed committed)"
  log "latest: $(wc -l <"$T/latest.ids") rows restored, primary has $TRUTH_ROWS; lost (confirmed) $n_lost"
else
  bad "--latest does not restore: $RESTORE_MSG"
fi
stop_restored latest

# 3. Random time targets between the end of the first full and the last commit.
FIRST_FULL_END=$(jq -r '[.[].backups[] | select(.type == "full")] | sort_by(.finish_time) | .[0].finish_time' "$T/backups.json")
LO=$(date -d "$FIRST_FULL_END" +%s.%N); HI=$(tail -n1 "$T/truth" | cut -d' ' -f2)
for t in $(seq 1 "$TIME_TARGETS"); do
  rand 1 999; f=$R; rand 0 999
  TS=$(awk -v lo="$LO" -v hi="$HI" -v a="$f" -v b="$R" 'BEGIN { printf "%.6f", lo + 1 + (hi - lo - 1) * (a * 1000 + b) / 999999 }')
  TARGET=$(date -u -d "@$TS" +%Y-%m-%dT%H:%M:%S.%6NZ)
  awk -v ts="$TS" '$2 <= ts { print $1 }' "$T/truth" | sort -n >"$T/expected.ids"
  RESTORES=$((RESTORES + 1))
  restore_into time --time "$TARGET"; rc=$?
  if [ "$rc" = 0 ]; then
    restored_ids >"$T/time.ids"
    if cmp -s "$T/expected.ids" "$T/time.ids"; then
      log "time $TARGET: exact ($(wc -l <"$T/time.ids") rows)"
    else
      WRONG=$((WRONG + 1))
      log "time $TARGET: WRONG: restored $(wc -l <"$T/time.ids") rows, expected $(wc -l <"$T/expected.ids")" \
          "(missing $(comm -23 "$T/expected.ids" "$T/time.ids" | wc -l), extra $(comm -13 "$T/expected.ids" "$T/time.ids" | wc -l))"
    fi
  elif [ "$rc" = 2 ]; then
    REFUSED=$((REFUSED + 1)); RESTORES=$((RESTORES - 1))
    log "time $TARGET: refused: $RESTORE_MSG"
    echo "NOTE refused $TARGET: $RESTORE_MSG" >&3
  else
    bad "time $TARGET: $RESTORE_MSG"
  fi
  stop_restored time
done

echo "CHECK $RESTORES $LOST $WRONG $REFUSED $BAD" >&3
echo "CAMPAIGN_DONE $CIDX $CSTORAGE $CMODE" >&3
log "campaign $CSTORAGE/$CMODE done: faults=$FAULTS unrecovered=$UNRECOVERED restores=$RESTORES lost=$LOST wrong=$WRONG refused=$REFUSED failed_checks=$BAD"
[ "$UNRECOVERED" = 0 ] && [ "$LOST" = 0 ] && [ "$WRONG" = 0 ] && [ "$BAD" = 0 ]
