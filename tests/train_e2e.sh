#!/bin/sh
# A short `supernest train` on Fashion-MNIST with a small search space: the
# run directory holds config, metrics.jsonl (step, lr, loss by role,
# throughput) and eval.jsonl (test accuracy, params, MACs per sub-network).
# usage: train_e2e.sh SUPERNEST PYTHON
set -eu
sn=$1
py=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$sn" train --steps 6 --batch-size 32 --train-subset 512 --val-size 500 --log-every 2 \
    --embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128 \
    --depths 2,2 --min-depths 1,1 --report-random 2 --run-dir "$dir/run" >"$dir/out"
cat "$dir/out"
grep -q "^blis_kernels = " "$dir/run/config"
grep -q "^batch-size = 32$" "$dir/run/config"
"$py" - "$dir/run" <<'PY'
import json, sys
run = sys.argv[1]
metrics = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
assert [m["step"] for m in metrics] == [2, 4, 6], metrics
for m in metrics:
    for key in ("step", "epoch", "lr", "loss", "grad_norm", "images_per_s", "elapsed_s",
                "start_step"):
        assert key in m, (key, m)
    assert m["start_step"] == 0, m
    assert set(m["loss"]) == {"max", "min", "rand"} and len(m["loss"]["rand"]) == 2, m
rows = [json.loads(l) for l in open(f"{run}/eval.jsonl")]
assert [r["role"] for r in rows] == ["max", "min", "rand", "rand"], rows
for r in rows:
    assert 0.0 <= r["test_acc"] <= 1.0 and r["params"] > 0 and r["macs"] > 0, r
assert rows[0]["params"] > rows[1]["params"] and rows[0]["macs"] > rows[1]["macs"], rows
assert rows[0]["subnet"] == "e64-d2.2-h2.2.2.2-f128.128.128.128", rows[0]
print("run directory ok:", len(metrics), "metrics records,", len(rows), "evaluated sub-networks")
PY
grep -q "^step 6/6 " "$dir/run/log"
grep -q "^\[run\]$" "$dir/run/config"

# The resolved config is a --config file: it holds both steps and epochs
# (steps wins); from it, a new run directory trains the same run, and the
# original run directory is continued (already complete: no step trained).
grep -q "^steps = 6$" "$dir/run/config"
grep -q "^epochs = 1$" "$dir/run/config"
"$sn" train --config "$dir/run/config" --run-dir "$dir/again" --no-report >"$dir/out2"
cmp "$dir/run/checkpoints/ckpt-00000006.h5" "$dir/again/checkpoints/ckpt-00000006.h5" >/dev/null ||
    "$sn" inspect --diff "$dir/run/checkpoints/ckpt-00000006.h5" \
        "$dir/again/checkpoints/ckpt-00000006.h5" --all --json | grep -q '"differ":0,'
"$sn" train --config "$dir/run/config" --no-report >"$dir/out3"
grep -q "trained 0 steps" "$dir/out3"
# ... but not with an option that changes the training
if "$sn" train --config "$dir/run/config" --lr 0.01 >"$dir/out4" 2>"$dir/err4"; then
    echo "FAIL: continued a run with another --lr"; exit 1
fi
grep -q "lr was 0.001, now 0.01" "$dir/err4"
echo "config round trip ok"

# --dry-run checks and plans, and writes nothing: a plan that checks out
# exits 0; a sub-network outside the space exits 2 with one line; a run
# directory's own config is continued in plan only (its files unchanged),
# and an option the checkpoint disagrees with is refused as a real resume
# would refuse it
small="--steps 6 --batch-size 32 --train-subset 512 --val-size 500 --embed-choices 32,64 \
--heads-choices 1,2 --head-dim 16 --mlp-choices 64,128 --depths 2,2 --min-depths 1,1"
# shellcheck disable=SC2086
"$sn" train --dry-run $small --fixed-subnet e64-d1.1-h2.2-f128.128 --run-dir "$dir/dry" >"$dir/dry.out"
grep -q "^dry run: the options, data and rank layout check out" "$dir/dry.out"
grep -q "^fixed sub-network e64-d1.1-h2.2-f128.128 " "$dir/dry.out"
[ ! -e "$dir/dry" ] || { echo "FAIL: --dry-run wrote $dir/dry"; exit 1; }
# shellcheck disable=SC2086
if "$sn" train --dry-run $small --fixed-subnet e96-d1.1-h2.2-f128.128 >/dev/null 2>"$dir/dry.err"; then
    echo "FAIL: --dry-run accepted a sub-network outside the space"; exit 1
fi
[ "$(wc -l <"$dir/dry.err")" -eq 1 ] && grep -q "embed 96 is not one of 32,64" "$dir/dry.err"
before=$(cat "$dir/run/metrics.jsonl" "$dir/run/log" "$dir/run/checkpoints/latest" | cksum)
"$sn" train --dry-run --config "$dir/run/config" >"$dir/dry2.out"
grep -q "^dry run: " "$dir/dry2.out"
if "$sn" train --dry-run --config "$dir/run/config" --lr 0.01 >/dev/null 2>"$dir/dry.err"; then
    echo "FAIL: --dry-run accepted another --lr for a run it continues"; exit 1
fi
grep -q "lr was 0.001, now 0.01" "$dir/dry.err"
[ "$before" = "$(cat "$dir/run/metrics.jsonl" "$dir/run/log" "$dir/run/checkpoints/latest" | cksum)" ] ||
    { echo "FAIL: --dry-run changed the run directory"; exit 1; }
echo "dry run ok"

# ---- schedules ------------------------------------------------------------
# A phased schedule continued from a checkpoint in the middle of a phase
# trains what the uninterrupted run trains, bit for bit (weights and
# optimizer moments): progressive stopped in phase 2 (12 steps, phases at
# steps 3, 6, 9), deps stopped in its ramp (delay 3 steps, ramp 6).
small="--batch-size 16 --train-subset 256 --val-size 100 --patch 7 --threads 1 --no-report
       --embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1 --steps 12 --log-every 1"
same() { # two checkpoints: every tensor identical (inspect --diff --all)
    out=$("$sn" inspect --diff "$1" "$2" --json --all 2>&1)
    echo "$out" | grep -q '"differ":0,' || { echo "$out" | head -c 400; return 1; }
}
# deps sorts on demand (--sort-channels 3,7): at step 3, where it would by
# itself, and at step 7, where the stopped run is continued; it draws by
# log-MACs.  progressive's students learn from targets blended with the
# labels, the teacher's share ramped to 0.5 at step 9 (stopped inside the ramp)
prog="progressive --sample-by macs --distill-weight 0.5 --distill-ramp 0.75"
for sched in "$prog" \
    "deps --deps-delay 0.25 --deps-ramp 0.5 --sort-channels 3,7 --sample-by log-macs"; do
    name=${sched%% *}
    # shellcheck disable=SC2086
    "$sn" train $small --schedule $sched --run-dir "$dir/$name-ref" >"$dir/$name-ref.out"
    "$sn" train $small --schedule $sched --run-dir "$dir/$name" --stop-after 7 >"$dir/$name.out"
    grep -q "stopped after 7 steps" "$dir/$name.out"
    "$sn" train $small --schedule $sched --run-dir "$dir/$name" >"$dir/$name.resumed"
    grep -q "resuming from .* at step 7" "$dir/$name.resumed"
    same "$dir/$name-ref/checkpoints/ckpt-00000012.h5" "$dir/$name/checkpoints/ckpt-00000012.h5" ||
        { echo "FAIL: $name stopped at step 7 and continued differs from the uninterrupted run"; exit 1; }
    echo "$name: continued from step 7 = uninterrupted"
done
# the resumed run says where it stands; the reference run logs each phase
grep -q "^step 7: progressive phase 2/3: elastic depth, heads and MLP widths, drawn by MACs$" \
    "$dir/progressive.resumed"
for s in "step 0: progressive phase 0/3" "step 3: progressive phase 1/3" \
         "step 6: progressive phase 2/3" "step 9: progressive phase 3/3"; do
    grep -q "^$s: " "$dir/progressive-ref/log" || { echo "FAIL: no '$s' in the log"; exit 1; }
done
# channels are sorted where the widths open (progressive phase 2), once,
# and it changes what is trained; deps sorts at the steps it was given
grep -q "^step 6: heads and MLP units sorted by importance (.* in 4 blocks)$" "$dir/progressive-ref/log" ||
    { echo "FAIL: no channel sort at step 6 in the progressive log"; exit 1; }
[ "$(grep -c "^step [37]: heads and MLP units sorted by importance" "$dir/deps-ref/log")" -eq 2 ] ||
    { echo "FAIL: deps --sort-channels 3,7 did not sort after steps 3 and 7"; exit 1; }
grep -q "^step 7: heads and MLP units sorted by importance" "$dir/deps.resumed" ||
    { echo "FAIL: the deps run continued at step 7 did not sort there"; exit 1; }
[ "$(grep -c "sorted by importance" "$dir/progressive-ref/log")" -eq 1 ] ||
    { echo "FAIL: more than one channel sort in the progressive log"; exit 1; }
# shellcheck disable=SC2086
"$sn" train $small --schedule $prog --sort-channels off \
    --run-dir "$dir/progressive-nosort" >"$dir/progressive-nosort.out"
if grep -q "sorted by importance" "$dir/progressive-nosort/log" ||
    same "$dir/progressive-ref/checkpoints/ckpt-00000012.h5" \
        "$dir/progressive-nosort/checkpoints/ckpt-00000012.h5" >/dev/null; then
    echo "FAIL: --sort-channels off sorted, or trained what auto trains"; exit 1
fi
# the blend is said and trains other weights than the teacher alone
grep -q "schedule progressive (by MACs), teacher's share of the targets ramped from 0 to 0.5 at step 9," \
    "$dir/progressive-ref/log" || { echo "FAIL: train's header does not state the blend"; exit 1; }
# shellcheck disable=SC2086
"$sn" train $small --schedule progressive --sample-by macs --run-dir "$dir/progressive-teacher" \
    >"$dir/progressive-teacher.out"
if same "$dir/progressive-ref/checkpoints/ckpt-00000012.h5" \
        "$dir/progressive-teacher/checkpoints/ckpt-00000012.h5" >/dev/null; then
    echo "FAIL: --distill-weight 0.5 trained what the teacher alone trains"; exit 1
fi
grep -q "^step 7: deps ramp: loss weight 0.83 for all but the largest, drawn by log-MACs$" \
    "$dir/deps.resumed"
grep -q "^step 8: deps: sandwich at full loss weight, drawn by log-MACs$" "$dir/deps-ref/log"
"$py" - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
m = [json.loads(l) for l in open(f"{d}/progressive-ref/metrics.jsonl")]
# phase 0 trains the full network alone; from phase 1 on max, min, 2 random
assert [set(r["loss"]) for r in m[:3]] == [{"full"}] * 3, m[:3]
assert all(set(r["loss"]) == {"max", "min", "rand"} for r in m[3:]), m[3:]
m = [json.loads(l) for l in open(f"{d}/deps-ref/metrics.jsonl")]
assert [set(r["loss"]) for r in m[:3]] == [{"full"}] * 3, m[:3]
# the continued run appended its records, each saying where its process started
m = [json.loads(l) for l in open(f"{d}/deps/metrics.jsonl")]
assert [(r["step"], r["start_step"]) for r in m] == \
    [(s, 0) for s in range(1, 8)] + [(s, 7) for s in range(8, 13)], m
PY
# a run that stops logs its last step, between --log-every's steps too
# shellcheck disable=SC2086
"$sn" train $small --steps 6 --log-every 4 --stop-after 3 --run-dir "$dir/logstop" >"$dir/logstop.out"
# shellcheck disable=SC2086
"$sn" train $small --steps 6 --log-every 4 --run-dir "$dir/logstop" >>"$dir/logstop.out"
"$py" - "$dir/logstop/metrics.jsonl" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert [(r["step"], r["start_step"]) for r in m] == [(3, 0), (4, 3), (6, 3)], m
PY
# the checkpoint records the schedule
"$sn" inspect "$dir/deps/checkpoints/ckpt-00000012.h5" --json |
    "$py" -c 'import json, sys; t = json.load(sys.stdin)["train"]; assert t["sampler"] == "deps", t'
# mpi/pipeline puts the ramp's weights on the gradients: another ramp trains
# other weights (the members are the same)
# shellcheck disable=SC2086
"$sn" train $small --schedule deps --deps-delay 0.25 --deps-ramp 0.25 --sort-channels 3,7 \
    --run-dir "$dir/deps-r2" \
    >"$dir/deps-r2.out"
if same "$dir/deps-ref/checkpoints/ckpt-00000012.h5" "$dir/deps-r2/checkpoints/ckpt-00000012.h5" \
        >/dev/null; then
    echo "FAIL: --deps-ramp 0.25 and 0.5 trained the same weights"; exit 1
fi
# a continued run may not change the schedule
if "$sn" train $small --schedule sandwich --run-dir "$dir/progressive" >"$dir/other.out" \
        2>"$dir/other.err"; then
    echo "FAIL: continued a progressive run as a sandwich"; exit 1
fi
grep -q -- "--schedule was progressive, now sandwich" "$dir/other.err"
# sortednet: N random members a step, each on the labels
# shellcheck disable=SC2086
"$sn" train $small --steps 2 --schedule sortednet --subnets-per-step 3 --run-dir "$dir/sorted" \
    >"$dir/sorted.out"
"$py" - "$dir/sorted/metrics.jsonl" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert len(m) == 2 and all(list(r["loss"]) == ["rand"] and len(r["loss"]["rand"]) == 3 for r in m), m
PY
echo "schedules ok"
