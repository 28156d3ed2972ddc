#!/bin/sh
# The main job on the default data: installs what is missing, builds, trains
# the supernet on Fashion-MNIST for one epoch (sandwich rule + in-place
# distillation) and reports test accuracy, parameters and MACs of the
# largest, the smallest and three random sub-networks.
# Extra arguments go to `supernest train` (e.g. --epochs 3).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
exec ./build/supernest train --epochs 1 --run-dir runs/demo --log-every 50 "$@"
