#!/bin/bash
# Stopping on a signal and continuing: SIGUSR1 (SLURM's warning before a
# time limit), SIGTERM and Ctrl-C stop training at the next step boundary
# on every rank, with a checkpoint and exit status 75; running the same
# command again resumes from it automatically and ends with the weights of
# an uninterrupted run.  One rank, and two ranks with the signal sent to one
# of them only.
# usage: signal_e2e.sh SUPERNEST PYTHON MPIEXEC
set -u
sn=$1
py=$2
mpiexec=$3
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

small=(--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1 --batch-size 32 --train-subset 200 --val-size 500
       --report-random 0 --log-every 1 --checkpoint-every 100000 --quiet --no-report)
steps=60

# wait_steps, rank_pids
. "$(dirname "$0")/run_helpers.sh"


# Checkpoints $1 and $2 hold identical weights and moments.
same_ckpt() {
    "$py" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
assert a["train"].attrs["step"] == b["train"].attrs["step"]
for group in ("weights", "optimizer/m", "optimizer/v"):
    assert sorted(a[group]) == sorted(b[group]) and len(a[group]) > 0
    for name in a[group]:
        assert np.array_equal(a[group][name][()], b[group][name][()]), f"{group}/{name} differs"
PY
}

# One rank: the uninterrupted reference, then SIGUSR1 after 5 steps.
"$sn" train --steps $steps "${small[@]}" --threads 1 --run-dir "$dir/ref" >/dev/null ||
    fail "reference run"
ref="$dir/ref/checkpoints/ckpt-000000$steps.h5"

"$sn" train --steps $steps "${small[@]}" --threads 1 --run-dir "$dir/a" >"$dir/a.out" 2>"$dir/a.err" &
pid=$!
wait_steps "$dir/a" 5 || fail "one rank: no progress"
kill -USR1 $pid
wait $pid
rc=$?
[ $rc -eq 75 ] || fail "one rank, SIGUSR1: status $rc, expected 75"
grep -q "stopped by SIGUSR1 at step [0-9]* with a checkpoint" "$dir/a.err" &&
    [ "$(wc -l <"$dir/a.err")" -eq 1 ] || { fail "one rank: stop message"; cat "$dir/a.err"; }
k=$(sed -n 's/.*at step \([0-9]*\).*/\1/p' "$dir/a.err")
[ -n "$k" ] && [ "$k" -gt 0 ] && [ "$k" -lt $steps ] || fail "one rank: stopped at step '$k'"
[ "$(cat "$dir/a/checkpoints/latest")" = "$(printf 'ckpt-%08d.h5' "$k")" ] ||
    fail "one rank: latest is not step $k's checkpoint"
# the same command again (no --resume) continues
"$sn" train --steps $steps "${small[@]}" --threads 1 --run-dir "$dir/a" >"$dir/a2.out" 2>&1 ||
    { fail "one rank: the resumed run failed"; cat "$dir/a2.out"; }
grep -q "resuming from .*ckpt-0*$k.h5 at step $k" "$dir/a2.out" || fail "one rank: did not resume at $k"
same_ckpt "$ref" "$dir/a/checkpoints/ckpt-000000$steps.h5" ||
    fail "one rank: stopped + resumed differs from the uninterrupted run"

# SIGTERM (SLURM at the time limit) without a run directory: stops, says
# nothing was saved, exits as a process ended by SIGTERM would (143).
"$sn" train --steps 100000 "${small[@]}" --threads 1 --log-every 1000 >/dev/null 2>"$dir/t.err" &
pid=$!
sleep 3
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 143 ] && grep -q "stopped by SIGTERM at step [0-9]*; nothing saved" "$dir/t.err" ||
    { fail "SIGTERM without a run directory: status $rc"; cat "$dir/t.err"; }

# Two data-parallel ranks, SIGUSR1 to one of them only: both stop at the
# same step with one checkpoint; the same command on two ranks continues.
mpi=("$mpiexec" --oversubscribe -q -np 2 "$sn" train --dp 2 --steps $steps "${small[@]}" --threads 1)
"${mpi[@]}" --run-dir "$dir/ref2" >/dev/null || fail "two ranks: reference run"
"${mpi[@]}" --run-dir "$dir/b" >"$dir/b.out" 2>"$dir/b.err" &
pid=$!
wait_steps "$dir/b" 5 || fail "two ranks: no progress"
pids=($(rank_pids "$dir/b"))
[ ${#pids[@]} -eq 2 ] || fail "two ranks: found ${#pids[@]} rank processes"
kill -USR1 "${pids[1]}"
wait $pid
rc=$?
[ $rc -eq 75 ] || { fail "two ranks, SIGUSR1 to one: status $rc, expected 75"; cat "$dir/b.err"; }
[ "$(grep -c "stopped by SIGUSR1" "$dir/b.err")" -eq 1 ] || { fail "two ranks: stop message"; cat "$dir/b.err"; }
"${mpi[@]}" --run-dir "$dir/b" >"$dir/b2.out" 2>&1 || { fail "two ranks: resumed run failed"; cat "$dir/b2.out"; }
grep -q "resuming from" "$dir/b2.out" || fail "two ranks: did not resume"
# mpirun's output in a file: plain lines, no status line redrawn in place
# (Open MPI gives the ranks a pseudo-terminal even then)
if grep -q $'\r' "$dir/b2.out"; then fail "mpirun's output to a file holds status-line redraws"; fi
same_ckpt "$dir/ref2/checkpoints/ckpt-000000$steps.h5" "$dir/b/checkpoints/ckpt-000000$steps.h5" ||
    fail "two ranks: stopped + resumed differs from the uninterrupted two-rank run"

# A finished run again: resumes at its last step and trains nothing more.
"$sn" train --steps $steps "${small[@]}" --threads 1 --run-dir "$dir/a" >"$dir/a3.out" 2>&1 ||
    fail "finished run again"
grep -q "trained 0 steps" "$dir/a3.out" || { fail "finished run trained again"; cat "$dir/a3.out"; }

[ $fails -eq 0 ] && echo "signal_e2e: all passed"
exit $((fails > 0))
