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
    for key in ("step", "epoch", "lr", "loss", "grad_norm", "images_per_s", "elapsed_s"):
        assert key in m, (key, m)
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
