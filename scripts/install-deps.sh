#!/usr/bin/env bash
# Installs what smartbackup needs to build, test and demo on Debian 12:
# Debian packages (compiler, -dev libraries, PostgreSQL 15, pgBackRest) and
# Azurite from npm. Installs only what is missing; safe to run repeatedly.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libpq-dev libcurl4-openssl-dev libssl-dev libzstd-dev liblz4-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus-cpp-dev        # /metrics in Prometheus text format
  prometheus chromium       # tests: a real Prometheus scrapes the agent; headless Chromium renders its page
  clang libclang-rt-14-dev  # bench/fuzz.sh: clang with libFuzzer and the sanitizer runtimes
  strace                    # CliSafetyTest: generate-key creates its file 0600 from the first syscall
  postgresql-15 postgresql-client-15 postgresql-contrib pgbackrest
  nodejs npm ca-certificates tar zstd procps util-linux python3 openssl
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# nodejs/npm may come from elsewhere (e.g. NodeSource); accept any working npm.
if command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The Debian package creates and starts a default cluster; we never use it.
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v azurite-blob >/dev/null 2>&1; then
  echo "== installing Azurite (npm)"
  $SUDO npm install -g --no-fund --no-audit azurite@3 >/dev/null
fi

# PostgreSQL refuses to run as root: tests and the demo run it as "postgres",
# which the Debian package creates.
id postgres >/dev/null 2>&1 || { echo "install-deps: user postgres missing after install" >&2; exit 1; }
