# Sourced by the scripts: where the build goes. PostgreSQL runs as "postgres" and
# executes smartbackup (restore_command, archive_command, tests), so the binary
# must be reachable by that user; a clone under a private home (e.g. /root) is
# not, and then the build goes to /var/tmp instead.
if [ -z "${BUILD_DIR:-}" ]; then
  if [ "$(id -u)" -ne 0 ] || ! id postgres >/dev/null 2>&1 || runuser -u postgres -- test -x "$(pwd)"; then
    BUILD_DIR="$(pwd)/build"
  else
    BUILD_DIR="/var/tmp/smartbackup-build-$(pwd | md5sum | cut -c1-8)"
    echo "note: $(pwd) is not reachable by the postgres user; building in $BUILD_DIR" >&2
  fi
fi
export BUILD_DIR
