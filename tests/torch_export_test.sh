#!/bin/bash
# Deployment end to end: a sub-network exported by supernest, loaded into
# plain PyTorch by scripts/load_subnet_torch.py, gives supernest eval's
# logits (within float32 rounding) and accuracy, without a convolutional
# stem and with one of two and of three convolutions (which PyTorch
# computes over whole images, supernest token by token over pixel
# windows); a model file of another
# format MAJOR, a damaged file and wrong logits are refused.
# usage: torch_export_test.sh SUPERNEST PYTHON   (PYTHON: with torch, h5py, numpy, xxhash)
set -u
sn=$1
py=$2
loader="$(dirname "$0")/../scripts/load_subnet_torch.py"
"$py" -c 'import torch, h5py, numpy, xxhash' 2>/dev/null ||
    { echo "FAIL: $py lacks torch/h5py/numpy/xxhash (scripts/setup.sh --tests installs them)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
n=512
# supernest eval scores the whole split before writing --limit logits: give
# it (and the loader, as raw IDX) the first n test images only, to keep fast.
mkdir "$dir/data"
"$py" - /usr/share/datasets/fashion-mnist "$dir/data" $n <<'PY' || { echo "FAIL: test subset"; exit 1; }
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for kind, shape in (("images-idx3", (28, 28)), ("labels-idx1", ())):
    data = gzip.open(f"{src}/t10k-{kind}-ubyte.gz").read()
    ndim = data[3]
    size = 1
    for v in shape:
        size *= v
    head = data[:4] + struct.pack(">I", n) + data[8:4 + 4 * ndim]
    open(f"{dst}/t10k-{kind}-ubyte", "wb").write(head + data[4 + 4 * ndim:4 + 4 * ndim + n * size])
PY
labels="$dir/data/t10k-labels-idx1-ubyte"

t0=$SECONDS
for run in run run-stem run-stem3; do
    case $run in run) stem=none;; run-stem) stem=4,8;; run-stem3) stem=4,8,16;; esac
    "$sn" train --steps 4 --embed-choices 32,64 --heads-choices 1,2 --head-dim 16 \
        --mlp-choices 64,128 --depths 2,2 --min-depths 1,1 --batch-size 32 --train-subset 200 \
        --val-size 500 --report-random 0 --threads 2 --quiet --stem $stem --run-dir "$dir/$run" \
        >/dev/null || { echo "FAIL: train $run"; exit 1; }
done

echo "train: $((SECONDS - t0)) s"
# 1. each exported sub-network: PyTorch logits == supernest's, same accuracy.
# After 4 steps the weights are near their initialisation, where a GELU
# variant or the LayerNorm eps barely shows; "stressed" copies (matrices
# scaled, LayerNorm gains and biases randomised, checksums rewritten) drive
# every nonlinearity hard, and --rtol 1e-5 (observed: < 1e-6) tells even
# erf-GELU from tanh-GELU apart.
rtol=1e-5
mix=e32-d2.1-h1.2.1-f128.64.128
for sub in max $mix; do
    "$sn" export --checkpoint "$dir/run" --subnet $sub -o "$dir/$sub.h5" >/dev/null || fail "export $sub"
    "$sn" export --checkpoint "$dir/run-stem" --subnet $sub -o "$dir/stem-$sub.h5" >/dev/null ||
        fail "export $sub with a stem"
    "$sn" export --checkpoint "$dir/run-stem3" --subnet $sub -o "$dir/stem3-$sub.h5" \
        >/dev/null || fail "export $sub with a stem of three convolutions"
done
"$py" - "$dir" max $mix stem-max stem-$mix stem3-max stem3-$mix <<'PY' || fail "making stressed model files"
import shutil, sys, h5py, numpy as np, xxhash
d = sys.argv[1]
rng = np.random.default_rng(7)
for sub in sys.argv[2:]:
    shutil.copy(f"{d}/{sub}.h5", f"{d}/stressed-{sub}.h5")
    with h5py.File(f"{d}/stressed-{sub}.h5", "r+") as f:
        for name, ds in f["weights"].items():
            a = ds[()]
            if name.endswith(("ln1.weight", "ln2.weight")) or name == "norm.weight":
                a = 1 + 0.5 * rng.standard_normal(a.shape)
            elif a.ndim == 2 and name != "pos_embed":
                a = a * 6
            else:
                a = a + 0.5 * rng.standard_normal(a.shape)
            a = np.ascontiguousarray(a, dtype="<f4")
            ds[...] = a
            ds.attrs["checksum"] = "xxh3-64:" + xxhash.xxh3_64_hexdigest(a.tobytes())
PY
for sub in max $mix stem-max stem-$mix stem3-max stem3-$mix stressed-max stressed-$mix \
    stressed-stem-max stressed-stem-$mix stressed-stem3-max stressed-stem3-$mix; do
    m="$dir/$sub.h5"
    [ -f "$m" ] || continue
    "$sn" eval --model "$m" --data "$dir/data" --logits "$dir/$sub.f32" --limit $n --threads 2 \
        --json >/dev/null || { fail "eval $sub"; continue; }
    # unstressed: the default images (Debian's gzip'd test set); stressed: the raw subset
    data=()
    case $sub in stressed-*) data=(--images "$dir/data/t10k-images-idx3-ubyte" --labels "$labels");; esac
    out=$("$py" "$loader" "$m" "${data[@]}" --limit $n --rtol $rtol --compare "$dir/$sub.f32" \
          --logits-out "$dir/$sub.npy")
    rc=$?
    echo "$sub: $out" | sed '2,$s/^/    /'
    [ $rc -eq 0 ] || { fail "$sub: load_subnet_torch.py --compare exited $rc"; continue; }
    # the accuracy it prints == the accuracy supernest's logits imply (an
    # argmax may differ only where supernest's top two logits tie within rounding)
    "$py" - "$dir/$sub.f32" "$dir/$sub.npy" "$labels" $n "$out" $rtol <<'PY' || fail "$sub: accuracy differs from the logits'"
import re, sys, numpy as np
raw, npy, labels, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rtol = float(sys.argv[6])
y = np.frombuffer(open(labels, "rb").read(), np.uint8, offset=8)[:n]
ref = np.fromfile(raw, "<f4").reshape(n, -1)
mine = np.load(npy)
m = re.search(r"^accuracy ([0-9.]+) \((\d+)/(\d+) images\)$", out, re.M)
assert m, f"no accuracy line in: {out!r}"
printed, total = int(m.group(2)), int(m.group(3))
expect = int((ref.argmax(1) == y).sum())
assert total == n, (total, n)
assert printed == int((mine.argmax(1) == y).sum()), "printed accuracy is not its logits'"
if printed != expect:
    top2 = np.sort(ref, axis=1)[:, -2:]
    for i in np.nonzero(ref.argmax(1) != mine.argmax(1))[0]:
        gap = top2[i, 1] - top2[i, 0]
        assert gap <= rtol * max(1.0, float(np.abs(ref).max())), \
            f"image {i}: argmax differs though supernest's top-2 gap is {gap}"
    print(f"note: accuracy {printed} vs {expect}/{n}: argmax ties within rounding")
assert abs(float(m.group(1)) - expect / n) < 2 / n, (m.group(1), expect / n)
PY
done

mix="$dir/$mix"
# 2. the test can fail: one logit moved by 1e-3 is caught by --compare (default rtol).
"$py" - "$mix.f32" "$dir/bad.f32" <<'PY' || fail "making corrupted logits"
import sys, numpy as np
x = np.fromfile(sys.argv[1], "<f4")
x[1234] += np.float32(1e-3)
x.tofile(sys.argv[2])
PY
if "$py" "$loader" "$mix.h5" --limit $n --compare "$dir/bad.f32" >"$dir/out" 2>"$dir/err"; then
    fail "corrupted logits accepted: $(cat "$dir/out")"
elif ! grep -q "logits differ" "$dir/err"; then
    fail "corrupted logits: unclear message: $(cat "$dir/err")"
fi

# 3. format_version 2.0 and a damaged dataset: refused, exit 1, a clear message.
"$py" - "$mix.h5" "$dir" <<'PY' || fail "making bad model files"
import shutil, sys, h5py
good, d = sys.argv[1], sys.argv[2]
shutil.copy(good, f"{d}/v2.h5")
with h5py.File(f"{d}/v2.h5", "r+") as f:
    f.attrs["format_version"] = "2.0"
shutil.copy(good, f"{d}/flipped.h5")
with h5py.File(f"{d}/flipped.h5", "r") as f:
    off = f["weights/blocks.1.mlp.fc2.weight"].id.get_offset()
with open(f"{d}/flipped.h5", "r+b") as f:
    f.seek(off + 40)
    b = f.read(1)[0]
    f.seek(off + 40)
    f.write(bytes([b ^ 0x40]))
PY
check_refused() {  # FILE PATTERN WHAT
    "$py" "$loader" "$1" --limit 8 >"$dir/out" 2>"$dir/err"
    local rc=$?
    [ $rc -eq 1 ] || fail "$3: exit $rc, expected 1"
    grep -q "$2" "$dir/err" || fail "$3: message lacks '$2': $(cat "$dir/err")"
    echo "$3: $(head -1 "$dir/err")"
}
check_refused "$dir/v2.h5" "format_version 2.0 is not supported" "format 2.0"
check_refused "$dir/flipped.h5" "blocks.1.mlp.fc2.weight: checksum mismatch" "damaged dataset"

if [ $fails -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "torch export: OK"
