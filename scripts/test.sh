#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
meson test -C build --print-errorlogs --num-processes 1 "$@"
