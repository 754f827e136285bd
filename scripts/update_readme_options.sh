#!/usr/bin/env bash
# Rewrites README.md's table of managed options from the option table
# (src/agent/settings.cc): the lines between the two marker comments become
# the output of `smartbackup options --markdown`. The unit test
# OptionDocTest.ReadmeTableMatchesTheOptionTable fails until this is run after
# a change to the table. Usage: scripts/update_readme_options.sh [build dir]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-build}/smartbackup"
TABLE="$("$bin" options --markdown)" awk '
  /^<!-- options table: / { print; print ENVIRON["TABLE"]; skip = 1; next }
  /^<!-- end of options table -->/ { skip = 0 }
  !skip { print }' README.md > README.md.new
mv README.md.new README.md
