# Shared by the benchmark scripts (sourced, not run). Each script sets
# BENCH_NAME before sourcing, and PGBIN, KEEP, SMARTBACKUP (may be empty)
# before calling bench_setup.
#
# bench_setup PREFIX: finds smartbackup, makes the work directory $T (owned
# by postgres) with the socket directory $SOCK, and installs a trap that
# stops every cluster in RUNNING and every process in BGPIDS and removes $T
# (unless KEEP=1) on any exit, Ctrl-C included.

die() { echo "$BENCH_NAME: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }
mkdir_pg() { mkdir -p "$@"; chown postgres: "$@"; }

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# A binary counts as "working" when it is a real build: its backup verb knows --pg.
sb_works() { [ -x "$1" ] && "$1" backup --help 2>/dev/null | grep -q -- '--pg'; }

# Sets SMARTBACKUP: the given one, else the first working build*/ binary, else builds one.
find_smartbackup() {
  if [ -n "$SMARTBACKUP" ]; then
    SMARTBACKUP="$(readlink -f "$SMARTBACKUP")"
    sb_works "$SMARTBACKUP" || die "\"$SMARTBACKUP\" is not a working smartbackup binary (its \"backup --help\" does not list --pg)"
  else
    local c
    for c in "$SRC_DIR/build/smartbackup" "$SRC_DIR/build-bench/smartbackup" "$SRC_DIR"/build*/smartbackup; do
      if sb_works "$c"; then SMARTBACKUP="$c"; break; fi
    done
    if [ -z "$SMARTBACKUP" ]; then
      log "no working smartbackup binary found; building with scripts/build.sh"
      "$SRC_DIR/scripts/build.sh" >&2 || die "scripts/build.sh failed; hint: pass --smartbackup PATH"
      sb_works "$SRC_DIR/build/smartbackup" || die "build/smartbackup still does not work after scripts/build.sh"
      SMARTBACKUP="$SRC_DIR/build/smartbackup"
    fi
  fi
  as_pg test -x "$SMARTBACKUP" ||
    die "user postgres cannot execute \"$SMARTBACKUP\"; hint: copy it somewhere world-readable and pass --smartbackup"
}

free_port() {
  local p
  for p in $(seq 55432 55999); do
    if ! ss -Hltn "sport = :$p" | grep -q .; then echo "$p"; return; fi
  done
  die "no free TCP port in 55432-55999"
}

RUNNING=()   # data dirs of clusters we started
BGPIDS=()    # background processes we started

bench_cleanup() {
  local rc=$?
  set +e
  local p d
  for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${BGPIDS[@]}"; do wait "$p" 2>/dev/null; done
  for d in "${RUNNING[@]}"; do
    as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  if [ "$KEEP" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
  [ "$rc" = 0 ] || echo "$BENCH_NAME: failed (exit $rc); see the messages above" >&2
  exit "$rc"
}

bench_setup() {  # bench_setup PREFIX
  mkdir -p "$WORKPARENT"
  T="$(mktemp -d "$WORKPARENT/$1.XXXXXX")"
  chmod 755 "$T"
  chown postgres: "$T"
  SOCK="$T/sock"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir_pg "$SOCK"
}

stop_cluster() {  # stop_cluster DATADIR: fast stop, and forget it
  as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null
  local keep=() d
  for d in "${RUNNING[@]}"; do [ "$d" = "$1" ] || keep+=("$d"); done
  RUNNING=("${keep[@]+"${keep[@]}"}")
}
