#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/ from real objects:
#   manifest, object, agent_config, api: fuzz_make_seeds (smartbackup's own writers)
#   tar:        GNU tar (gnu and pax formats) of a small PGDATA-like directory
#   wal_reader: 8 KiB pages of a real PostgreSQL 15 segment holding commits and
#               an abort (a throwaway cluster: initdb/pg_ctl as user postgres)
# Usage: fuzz/make_seeds.sh [BUILD_DIR]   (default build-fuzz; builds fuzz_make_seeds)
# The corpora are committed; rerun this after a format change, then check each
# corpus stays under 1 MB (du -sh fuzz/corpus/*).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$(pwd)"
BUILD="${1:-$SRC/build-fuzz}"
CORPUS="$SRC/fuzz/corpus"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"

die() { echo "make_seeds: error: $*" >&2; exit 1; }
[ -f "$BUILD/build.ninja" ] || die "no fuzz build in $BUILD; hint: run bash bench/fuzz.sh --seconds 0 first"
cmake --build "$BUILD" --target fuzz_make_seeds >/dev/null
"$BUILD/fuzz/fuzz_make_seeds" "$CORPUS"

T="$(mktemp -d /tmp/sb-fuzz-seeds-XXXXXX)"
PGDATA_STARTED=""
cleanup() {
  if [ -n "$PGDATA_STARTED" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_STARTED" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT

# --- tar: what BASE_BACKUP sends, in both header styles the extractor reads.
D="$T/pgdata"
mkdir -p "$D/base/1" "$D/global" "$D/pg_wal/archive_status" "$D/pg_tblspc" \
  "$D/base/16384/a_directory_name_long_enough_that_with_its_parents_the_path_passes_the_ustar_100_byte_limit"
echo 15 >"$D/PG_VERSION"
head -c 8192 /dev/zero | tr '\0' 'h' >"$D/base/1/1259"
printf 'pg_control bytes' >"$D/global/pg_control"
printf 'x' >"$D/base/16384/a_directory_name_long_enough_that_with_its_parents_the_path_passes_the_ustar_100_byte_limit/2619_fsm"
ln -s /srv/pg/ts1 "$D/pg_tblspc/16384"
chmod 0600 "$D/PG_VERSION"
mkdir -p "$CORPUS/tar"
for fmt in gnu posix; do
  tar --format=$fmt --owner=0 --group=0 --numeric-owner --mtime=@1790000000 --sort=name \
    -C "$D" -cf "$CORPUS/tar/base-$fmt.tar" .
done
tar --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@1790000000 -C "$D" -cf "$CORPUS/tar/small.tar" PG_VERSION global

# --- wal_reader: pages of a real segment with commit and abort records.
id postgres >/dev/null 2>&1 || die "no postgres user; hint: the WAL seeds need PostgreSQL 15 run as postgres"
chmod 0755 "$T"
mkdir "$T/pg"
chown postgres: "$T/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$T/pg/data" -A trust -U postgres >/dev/null
PORT=$(( 56000 + RANDOM % 900 ))
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -w -l "$T/pg/log" \
  -o "-c listen_addresses='' -c unix_socket_directories='$T/pg' -p $PORT -c max_prepared_transactions=2" start >/dev/null
PGDATA_STARTED="$T/pg/data"
psql_pg() { runuser -u postgres -- "$PGBIN/psql" -h "$T/pg" -p "$PORT" -U postgres -d postgres -qAtX "$@"; }
psql_pg -c "CREATE TABLE t (id int, v text)" -c "CHECKPOINT"
START=$(psql_pg -c "SELECT pg_current_wal_insert_lsn()")
for i in 1 2 3 4 5; do psql_pg -c "INSERT INTO t VALUES ($i, 'row $i')"; done
psql_pg -c "BEGIN" -c "INSERT INTO t VALUES (6, 'rolled back')" -c "ROLLBACK"
psql_pg -c "BEGIN" -c "INSERT INTO t VALUES (7, 'prepared')" -c "PREPARE TRANSACTION 'p1'" -c "COMMIT PREPARED 'p1'"
for i in $(seq 8 40); do psql_pg -c "INSERT INTO t VALUES ($i, repeat('x', 200))"; done
SEG=$(psql_pg -c "SELECT pg_walfile_name('$START')")
OFF=$(psql_pg -c "SELECT file_offset FROM pg_walfile_name_offset('$START')")
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -m fast -w stop >/dev/null
PGDATA_STARTED=""
F="$T/pg/data/pg_wal/$SEG"
PAGE=$(( OFF / 8192 ))
mkdir -p "$CORPUS/wal_reader"
dd if="$F" of="$CORPUS/wal_reader/commits-3pages" bs=8192 skip="$PAGE" count=3 status=none
dd if="$F" of="$CORPUS/wal_reader/commits-1page" bs=8192 skip="$((PAGE + 1))" count=1 status=none
dd if="$F" of="$CORPUS/wal_reader/segment-start-2pages" bs=8192 count=2 status=none

du -sh "$CORPUS"/*
