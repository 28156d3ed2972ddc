#!/bin/bash
# Faults during training, each ending with nothing lost:
#  1. SIGKILL of one of two ranks in the middle of a step: the job ends (no
#     hang), the last checkpoint verifies, and the same command continues
#     to the uninterrupted run's weights.
#  2. SIGKILL while a checkpoint is being written: the previous checkpoint
#     and `latest` are intact; continuing ends as the uninterrupted run and
#     the killed writer's temporary file is cleaned up.
#  3. A NaN loss on one rank (--debug-nan-step): every rank stops at that
#     step with one message, the last good checkpoint stays the latest;
#     with --skip-nonfinite the step is skipped and training goes on.
# (A full disk and flipped bytes are in ckpt_e2e; a dying evaluator in
# search_e2e.)
# usage: faults_e2e.sh SUPERNEST MPIEXEC
set -u
sn=$1
mpiexec=$2
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

small=(--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1 --batch-size 32 --train-subset 200 --val-size 500
       --report-random 0 --log-every 1 --quiet --no-report --threads 1)
steps=40
one=("$sn" train --steps $steps "${small[@]}" --checkpoint-every 10)
two=("$mpiexec" --oversubscribe -q -np 2 "$sn" train --dp 2 --steps $steps "${small[@]}"
     --checkpoint-every 10)

# wait_steps, rank_pids
. "$(dirname "$0")/run_helpers.sh"
# Waits at most $2 seconds for process $1 to end; its status in $rc.
wait_for() {
    for _ in $(seq $(($2 * 10))); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        rc=hang
        kill -9 "$1"
    fi
    wait "$1"
    local s=$?
    [ "$rc" = hang ] || rc=$s
}
final() { echo "$1/checkpoints/ckpt-$(printf %08d $steps).h5"; }
same() { # two checkpoints: identical weights and moments (inspect --diff --all)
    out=$("$sn" inspect --diff "$1" "$2" --json --all 2>&1)
    echo "$out" | grep -q '"differ":0,' || { echo "$out" | head -c 300; return 1; }
}

"${two[@]}" --run-dir "$dir/ref2" >/dev/null 2>&1 || fail "two-rank reference run"
"${one[@]}" --run-dir "$dir/ref1" >/dev/null 2>&1 || fail "one-rank reference run"

# 1. SIGKILL one of two ranks mid-step.
"${two[@]}" --run-dir "$dir/k" >"$dir/k.out" 2>&1 &
pid=$!
wait_steps "$dir/k" 15 || fail "kill: no progress"
pids=($(rank_pids "$dir/k"))
kill -9 "${pids[1]}"
rc=
wait_for $pid 60
[ "$rc" != hang ] || fail "kill: the job hung after a rank died"
[ "$rc" != 0 ] || fail "kill: the job reported success"
"$sn" inspect --verify "$dir/k/checkpoints" >/dev/null 2>&1 || fail "kill: the last checkpoint does not verify"
grep -q "ckpt-00000010.h5" "$dir/k/checkpoints/latest" || fail "kill: latest is $(cat "$dir/k/checkpoints/latest")"
"${two[@]}" --run-dir "$dir/k" >"$dir/k2.out" 2>&1 || { fail "kill: continuing failed"; cat "$dir/k2.out"; }
grep -q "resuming from .*ckpt-00000010.h5" "$dir/k2.out" || fail "kill: did not resume from step 10"
same "$(final "$dir/ref2")" "$(final "$dir/k")" || fail "kill: continued run differs from the uninterrupted one"

# 2. SIGKILL while the step-20 checkpoint is between written and renamed.
"${one[@]}" --run-dir "$dir/w" --debug-checkpoint-pause 0.001 --stop-after 10 >/dev/null 2>&1 ||
    fail "write: first 10 steps"
"${one[@]}" --run-dir "$dir/w" --debug-checkpoint-pause 60 >"$dir/w.out" 2>&1 &
pid=$!
for _ in $(seq 600); do
    [ -e "$dir/w/checkpoints/ckpt-00000020.h5.tmp" ] && break
    sleep 0.1
done
[ -e "$dir/w/checkpoints/ckpt-00000020.h5.tmp" ] || fail "write: never saw the temporary file"
sleep 0.5
kill -9 $pid
wait $pid 2>/dev/null
[ "$(cat "$dir/w/checkpoints/latest")" = ckpt-00000010.h5 ] || fail "write: latest moved"
[ ! -e "$dir/w/checkpoints/ckpt-00000020.h5" ] || fail "write: a half-written checkpoint under its real name"
"$sn" inspect --verify "$dir/w/checkpoints/ckpt-00000010.h5" >/dev/null 2>&1 ||
    fail "write: the previous checkpoint does not verify"
"${one[@]}" --run-dir "$dir/w" >"$dir/w2.out" 2>&1 || { fail "write: continuing failed"; cat "$dir/w2.out"; }
same "$(final "$dir/ref1")" "$(final "$dir/w")" || fail "write: continued run differs from the uninterrupted one"
ls "$dir/w/checkpoints" | grep -q '\.tmp$' && fail "write: the temporary file was not cleaned up"

# 3. NaN on rank 1 at step 25: both ranks stop there with one message.
timeout 120 "${two[@]}" --run-dir "$dir/n" --debug-nan-step 25 --debug-nan-rank 1 >/dev/null 2>"$dir/n.err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$dir/n.err")" -eq 1 ] &&
    grep -q "step 25: loss of sub-network .* is NaN" "$dir/n.err" ||
    { fail "nan: status $rc"; cat "$dir/n.err"; }
[ "$(cat "$dir/n/checkpoints/latest")" = ckpt-00000020.h5 ] || fail "nan: latest is not the last good checkpoint"
"$sn" inspect --verify "$dir/n/checkpoints" >/dev/null 2>&1 || fail "nan: last good checkpoint does not verify"
grep -q "is NaN" "$dir/n/log" || fail "nan: the run's log does not say why it stopped"
timeout 120 "${two[@]}" --run-dir "$dir/n" --debug-nan-step 25 --debug-nan-rank 1 --skip-nonfinite 1 \
    >"$dir/n2.out" 2>&1 || { fail "nan: --skip-nonfinite did not go on"; cat "$dir/n2.out"; }
grep -q "skipped (--skip-nonfinite): step 25" "$dir/n/log" || fail "nan: the skipped step is not logged"
[ -e "$(final "$dir/n")" ] || fail "nan: --skip-nonfinite did not finish"

[ $fails -eq 0 ] && echo "faults_e2e: all passed"
exit $((fails > 0))
