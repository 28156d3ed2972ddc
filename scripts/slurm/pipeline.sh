#!/bin/bash
# The whole pipeline on SLURM: submits training (train.sbatch), then the
# search of the trained supernet (search.sbatch) as a job that starts only
# once training has ended successfully (--dependency=afterok).  Both jobs
# requeue themselves across time limits and preemption (docs/SLURM.md); a
# requeued training keeps its job id, so the search keeps waiting for it.
#
#   scripts/slurm/pipeline.sh                              # from the checkout
#   RUN_DIR=runs/b TRAIN_OPTS="--epochs 5" scripts/slurm/pipeline.sh
#
# Prints the two job ids.  The batch output of both jobs goes to
# RUN_DIR/slurm-<job name>-<job id>.out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---- options (each may also be set in the environment) --------------------
# The supernest checkout (build/supernest, scripts/slurm/common.sh).
export SUPERNEST_HOME=${SUPERNEST_HOME:-$(cd "$here/../.." && pwd)}
# The run directory: training's checkpoints; the search reads its latest
# checkpoint and writes to SEARCH_OUT (default RUN_DIR/search).
export RUN_DIR=${RUN_DIR:-runs/slurm}
export SEARCH_OUT=${SEARCH_OUT:-$RUN_DIR/search}
# supernest options of each job; unset: the batch files' defaults.
[ -n "${TRAIN_OPTS:-}" ] && export TRAIN_OPTS
[ -n "${SEARCH_OPTS:-}" ] && export SEARCH_OPTS
# Extra sbatch options of each job (override the #SBATCH lines), e.g.
# TRAIN_SBATCH="--ntasks=8 --time=12:00:00 --partition=compute".
TRAIN_SBATCH=${TRAIN_SBATCH:-}
SEARCH_SBATCH=${SEARCH_SBATCH:-}
# The batch files.
TRAIN_BATCH=${TRAIN_BATCH:-$here/train.sbatch}
SEARCH_BATCH=${SEARCH_BATCH:-$here/search.sbatch}

# ---- submission -----------------------------------------------------------
mkdir -p "$RUN_DIR"
# shellcheck disable=SC2086
train=$(sbatch --parsable --output="$RUN_DIR/slurm-%x-%j.out" $TRAIN_SBATCH "$TRAIN_BATCH")
train=${train%%;*}   # "id;cluster" on multi-cluster setups
echo "pipeline: training is job $train"
# afterok: starts when job $train has ended with exit status 0 (a requeued
# training is not ended); kill-on-invalid-dep: if training fails instead,
# the search is cancelled rather than left pending forever.
# shellcheck disable=SC2086
search=$(sbatch --parsable --output="$RUN_DIR/slurm-%x-%j.out" --dependency="afterok:$train" \
    --kill-on-invalid-dep=yes $SEARCH_SBATCH "$SEARCH_BATCH")
search=${search%%;*}
echo "pipeline: search is job $search (after job $train succeeds)"
echo "pipeline: squeue -j $train,$search   # batch output in $RUN_DIR/slurm-*.out"
