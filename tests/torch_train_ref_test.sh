#!/bin/bash
# scripts/torch_train_ref.py, the PyTorch stand-alone reference of the
# quality report: a short training of the smallest architecture learns
# (above 35% on validation and test, where chance is 10%; about 48% after
# these 150 steps, 58-63% with three convolutions) without the
# convolutional stem, with its two convolutions (8,16) and with its three
# (8,16,32: supernest's three-convolution stem, load_subnet_torch.Stem),
# its JSON line has the fields docs/QUALITY.md quotes; with augmentation
# (--shift 2 --hflip) it learns too, and its alterations are what the
# help says (each image or its mirror moved by at most 2 pixels, black
# moved in; every shift and both orientations drawn); and a bad
# sub-network string, --stem, --shift, or a patch the three-convolution
# stem cannot take (6: even, as two convolutions need, but not a multiple
# of 4) is refused with one line and exit 2.
# usage: torch_train_ref_test.sh PYTHON   (PYTHON: with torch and numpy)
set -u
py=$1
ref="$(dirname "$0")/../scripts/torch_train_ref.py"
"$py" -c 'import torch, numpy' 2>/dev/null ||
    { echo "FAIL: $py lacks torch/numpy (scripts/setup.sh --tests installs them)"; exit 1; }
for run in none 8,16 8,16,32 8,16,32:aug; do
stem=${run%:aug} aug=()
[ "$run" != "$stem" ] && aug=(--shift 2 --hflip)
out=$("$py" "$ref" --subnet e64-d1.1-h1.1-f96.96 --steps 150 --batch-size 32 \
    --train-subset 3000 --val-size 500 --test-limit 1000 --threads 1 --stem $stem "${aug[@]}") ||
    { echo "FAIL: the training (--stem $stem ${aug[*]}) did not run"; exit 1; }
echo "$out"
"$py" - "$out" $stem ${#aug[@]} <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
for k in ("subnet", "stem", "shift", "hflip", "steps", "epochs", "val_accuracy", "test_accuracy",
          "test_images", "train_seconds", "threads"):
    assert k in r, f"FAIL: no '{k}' in {r}"
assert r["steps"] == 150 and r["test_images"] == 1000 and r["stem"] == sys.argv[2], f"FAIL: {r}"
aug = sys.argv[3] != "0"
assert (r["shift"], r["hflip"]) == ((2, True) if aug else (0, False)), f"FAIL: {r}"
assert abs(r["epochs"] - 150 / 79) < 1e-9, f"FAIL: {r['epochs']} epochs, expected 150/79"
assert r["test_accuracy"] > 0.35 and r["val_accuracy"] > 0.35, \
    f"FAIL: 150 steps did not learn (val {r['val_accuracy']}, test {r['test_accuracy']})"
PY
done
"$py" - "$(dirname "$ref")" <<'PY' || exit 1
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from torch_train_ref import augment
rng = np.random.default_rng(3)
img = np.random.default_rng(4).integers(1, 256, (6, 5), dtype=np.uint8)  # no black pixel
images = np.repeat(img[None], 400, axis=0)
out = augment(images, 2, True, rng)
assert out.shape == images.shape and out.dtype == np.uint8
seen = set()
for o in out:
    found = None
    for flip, src in ((False, img), (True, img[:, ::-1])):
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                want = np.zeros_like(img)
                want[max(dy, 0):6 + min(dy, 0), max(dx, 0):5 + min(dx, 0)] = \
                    src[max(-dy, 0):6 + min(-dy, 0), max(-dx, 0):5 + min(-dx, 0)]
                if np.array_equal(o, want):
                    found = (flip, dy, dx)
    assert found, f"FAIL: augment made an image that is no mirror and shift of the input:\n{o}"
    seen.add(found)
assert len(seen) == 50, f"FAIL: {len(seen)} of the 50 alterations drawn in 400 images"
assert np.array_equal(augment(images, 0, False, rng), images), "FAIL: no alteration changed"
PY
err=$("$py" "$ref" --subnet e64-d1.1-h1.1-f96.96 --shift 28 --steps 1 2>&1)
rc=$?
if [ $rc -ne 2 ] || [ "$(echo "$err" | grep -c .)" -gt 3 ] || ! echo "$err" | grep -q "\-\-shift 28"; then
    echo "FAIL: --shift 28 gave exit $rc: $err"; exit 1
fi
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
