#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite, one test
# at a time: the tests that train use every core (BLIS threads), and two at
# once fight for them (tried: slower).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
meson test -C build --print-errorlogs --num-processes 1 "$@"
