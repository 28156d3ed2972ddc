#!/bin/sh
# The main job on the default data: installs what is missing, builds, trains
# the supernet on Fashion-MNIST for one epoch (sandwich rule + in-place
# distillation), reports test accuracy, parameters and MACs of the largest,
# the smallest and three random sub-networks, and draws the training curves
# into runs/demo/plots.  Run again, it continues an interrupted run (or
# reports the finished one again).
# Extra arguments go to `supernest train` (e.g. --epochs 3).
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
./build/supernest train --epochs 1 --run-dir runs/demo --log-every 50 "$@"
scripts/plot-train.sh runs/demo
