#!/bin/bash
# scripts/torch_train_ref.py, the PyTorch stand-alone reference of the
# quality report: a short training of the smallest architecture learns
# (above 35% on validation and test, where chance is 10%; about 48% after
# these 150 steps, 58-63% with three convolutions) without the
# convolutional stem, with its two convolutions (8,16) and with its three
# (8,16,32: supernest's three-convolution stem, load_subnet_torch.Stem),
# its JSON line has the fields docs/QUALITY.md quotes, and a bad
# sub-network string, --stem, or a patch the three-convolution stem cannot
# take (6: even, as two convolutions need, but not a multiple of 4) is
# refused with one line and exit 2.
# usage: torch_train_ref_test.sh PYTHON   (PYTHON: with torch and numpy)
set -u
py=$1
ref="$(dirname "$0")/../scripts/torch_train_ref.py"
"$py" -c 'import torch, numpy' 2>/dev/null ||
    { echo "FAIL: $py lacks torch/numpy (scripts/setup.sh --tests installs them)"; exit 1; }
for stem in none 8,16 8,16,32; do
out=$("$py" "$ref" --subnet e64-d1.1-h1.1-f96.96 --steps 150 --batch-size 32 \
    --train-subset 3000 --val-size 500 --test-limit 1000 --threads 1 --stem $stem) ||
    { echo "FAIL: the training (--stem $stem) did not run"; exit 1; }
echo "$out"
"$py" - "$out" $stem <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
for k in ("subnet", "stem", "steps", "epochs", "val_accuracy", "test_accuracy", "test_images",
          "train_seconds", "threads"):
    assert k in r, f"FAIL: no '{k}' in {r}"
assert r["steps"] == 150 and r["test_images"] == 1000 and r["stem"] == sys.argv[2], f"FAIL: {r}"
assert abs(r["epochs"] - 150 / 79) < 1e-9, f"FAIL: {r['epochs']} epochs, expected 150/79"
assert r["test_accuracy"] > 0.35 and r["val_accuracy"] > 0.35, \
    f"FAIL: 150 steps did not learn (val {r['val_accuracy']}, test {r['test_accuracy']})"
PY
done
err=$("$py" "$ref" --subnet e64-d1 --steps 1 2>&1)
rc=$?
if [ $rc -ne 2 ] || [ "$(echo "$err" | grep -c .)" -gt 3 ] || ! echo "$err" | grep -q "e64-d1"; then
    echo "FAIL: a bad --subnet gave exit $rc: $err"; exit 1
fi
err=$("$py" "$ref" --subnet e64-d1.1-h1.1-f96.96 --stem 8 --steps 1 2>&1)
rc=$?
if [ $rc -ne 2 ] || [ "$(echo "$err" | grep -c .)" -gt 3 ] || ! echo "$err" | grep -q "\-\-stem '8'"; then
    echo "FAIL: a bad --stem gave exit $rc: $err"; exit 1
fi
err=$("$py" "$ref" --subnet e64-d1.1-h1.1-f96.96 --stem 8,16,32 --patch 6 --steps 1 2>&1)
rc=$?
if [ $rc -ne 2 ] || [ "$(echo "$err" | grep -c .)" -gt 3 ] || ! echo "$err" | grep -q "multiple of 4"; then
    echo "FAIL: --patch 6 with a three-convolution stem gave exit $rc: $err"; exit 1
fi
echo "ok"
