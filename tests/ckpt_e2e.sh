#!/bin/bash
# Checkpoints end to end: bit-for-bit resume, export + eval of a
# sub-network, h5py as an outside reader, and every kind of bad checkpoint
# refused with one line naming the problem, nothing overwritten.
# usage: ckpt_e2e.sh SUPERNEST PYTHON
set -u
sn=$1
py=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

small=(--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1 --batch-size 32 --train-subset 200 --val-size 500
       --report-random 0 --log-every 1 --threads 2 --quiet --shift 2 --hflip)

# 1. 8 steps in one go == 3 steps, stop, resume, 5 more: same losses, weights, moments
# (and the same augmentation draws).
# Run b's directory has a colon, which MPI-IO (ROMIO) would read as a file
# system prefix ("nfs:"): its checkpoints are written and resumed all the same.
"$sn" train --steps 8 "${small[@]}" --run-dir "$dir/a" >/dev/null || fail "run a"
"$sn" train --steps 8 "${small[@]}" --run-dir "$dir/nfs:b" --stop-after 3 >/dev/null || fail "run b1"
[ "$(cat "$dir/nfs:b/checkpoints/latest")" = "ckpt-00000003.h5" ] || fail "latest after stop"
"$sn" train --steps 8 "${small[@]}" --run-dir "$dir/nfs:b" --resume >/dev/null || fail "run b2"
"$py" - "$dir" <<'PY' || fail "resume is not bit for bit / h5py reading"
import json, sys, h5py, numpy as np, xxhash
d = sys.argv[1]
a = h5py.File(f"{d}/a/checkpoints/ckpt-00000008.h5", "r")
b = h5py.File(f"{d}/nfs:b/checkpoints/ckpt-00000008.h5", "r")
assert a.attrs["format"] == "supernest-checkpoint" and a.attrs["format_version"] == "1.2"
for group in ("weights", "optimizer/m", "optimizer/v"):
    assert sorted(a[group]) == sorted(b[group]) and len(a[group]) > 0
    for name in a[group]:
        x, y = a[group][name], b[group][name]
        assert x.dtype == np.float32 and x.shape == y.shape, name
        assert np.array_equal(x[()], y[()]), f"{group}/{name} differs"
        # an outside reader can verify the checksum (io/FORMAT.md)
        assert x.attrs["checksum"] == "xxh3-64:" + xxhash.xxh3_64_hexdigest(x[()].tobytes()), name
assert a["weights/blocks.0.attn.qkv.weight"].shape == (2 * 3 * 16, 64)
la = [json.loads(l) for l in open(f"{d}/a/metrics.jsonl")]
lb = [json.loads(l) for l in open(f"{d}/nfs:b/metrics.jsonl")]
assert [m["step"] for m in lb] == list(range(1, 9)), lb
assert [m["loss"] for m in la] == [m["loss"] for m in lb]
assert a["train"].attrs["step"] == 8 and a["optimizer"].attrs["step"] == 8
print("resume: 8 steps == 3 + 5, losses and all", len(a["weights"]), "tensors bit-identical")
PY

# 2. export a sub-network; eval --model equals eval inside the supernet.
sub=e32-d2.1-h1.2.1-f128.64.128
"$sn" export --checkpoint "$dir/a" --subnet $sub -o "$dir/sub.h5" >/dev/null || fail "export"
for split in test val; do
    x=$("$sn" eval --checkpoint "$dir/a" --subnet $sub --split $split --json | sed 's/"file":"[^"]*",//')
    y=$("$sn" eval --model "$dir/sub.h5" --split $split --json | sed 's/"file":"[^"]*",//')
    [ -n "$x" ] && [ "$x" = "$y" ] || fail "eval --model differs on $split: $x vs $y"
done

# 3. bad checkpoints: one line on stderr naming the problem, exit 1.
good="$dir/a/checkpoints/ckpt-00000008.h5"
"$py" - "$good" "$dir" <<'PY' || fail "making damaged copies"
import shutil, sys, h5py, numpy as np, xxhash
good, d = sys.argv[1], sys.argv[2]
def copy(name):
    shutil.copy(good, f"{d}/{name}.h5")
    return f"{d}/{name}.h5"
with h5py.File(copy("version"), "r+") as f:
    f.attrs["format_version"] = "2.0"
with h5py.File(copy("missing"), "r+") as f:
    del f["weights/blocks.1.mlp.fc1.weight"]
with h5py.File(copy("shape"), "r+") as f:
    del f["weights/norm.weight"]
    x = np.ones(63, np.float32)
    f["weights/norm.weight"] = x
    f["weights/norm.weight"].attrs["checksum"] = "xxh3-64:" + xxhash.xxh3_64_hexdigest(x.tobytes())
path = copy("flipped")
with h5py.File(path, "r") as f:
    off = f["weights/blocks.0.mlp.fc2.weight"].id.get_offset()
with open(path, "r+b") as f:
    f.seek(off + 100)
    byte = f.read(1)
    f.seek(off + 100)
    f.write(bytes([byte[0] ^ 0x40]))
data = open(good, "rb").read()
open(f"{d}/truncated.h5", "wb").write(data[: len(data) // 2])
open(f"{d}/text.h5", "w").write("this is not HDF5\n")
PY
expect_error() { # KEYWORD ARGS...
    key=$1
    shift
    timeout 60 "$sn" "$@" >/dev/null 2>"$dir/err"
    rc=$?
    if [ $rc -eq 0 ] || ! grep -q -- "$key" "$dir/err" || [ "$(wc -l <"$dir/err")" -ne 1 ]; then
        fail "supernest $*: status $rc, expected one line with '$key':"
        cat "$dir/err"
    fi
}
expect_error "No such file" eval --checkpoint "$dir/nowhere.h5"
expect_error "not an HDF5 file" eval --checkpoint "$dir/text.h5"
expect_error "truncated or damaged" eval --checkpoint "$dir/truncated.h5"
expect_error "format version 2.0" eval --checkpoint "$dir/version.h5"
expect_error "blocks.1.mlp.fc1.weight is missing" eval --checkpoint "$dir/missing.h5"
expect_error "norm.weight has shape (63)" eval --checkpoint "$dir/shape.h5"
expect_error "blocks.0.mlp.fc2.weight is damaged" eval --checkpoint "$dir/flipped.h5"
expect_error "blocks.0.mlp.fc2.weight is damaged" train --steps 9 "${small[@]}" --resume "$dir/flipped.h5"
expect_error "embed 48 is not one of 32,64" export --checkpoint "$good" --subnet e48-d1.1-h1.1-f64.64 -o "$dir/x.h5"
[ ! -e "$dir/x.h5" ] || fail "export of a bad sub-network left a file"
touch "$dir/plainfile"
expect_error "is not a directory" train --steps 2 "${small[@]}" --checkpoint-dir "$dir/plainfile/ckpt"

# 4. disk full while writing a checkpoint (a 3 MiB tmpfs holds one
# checkpoint of this size, not two): a clear error, the previous checkpoint
# intact and still the latest, no temporary file left.
mkdir -p "$dir/small"
if mount -t tmpfs -o size=3m tmpfs "$dir/small" 2>/dev/null; then
    trap 'umount "$dir/small" 2>/dev/null; rm -rf "$dir"' EXIT
    "$sn" train --steps 3 "${small[@]}" --run-dir "$dir/small/c" --keep 1 >/dev/null || fail "run c"
    "$sn" train --steps 5 "${small[@]}" --run-dir "$dir/small/c" --keep 1 --resume >/dev/null 2>"$dir/err"
    rc=$?
    { [ $rc -eq 1 ] && grep -q "disk full" "$dir/err" && [ "$(wc -l <"$dir/err")" -eq 1 ]; } ||
        { fail "disk full: status $rc"; cat "$dir/err"; }
    [ "$(cat "$dir/small/c/checkpoints/latest")" = "ckpt-00000003.h5" ] || fail "latest moved after a failed write"
    ls "$dir/small/c/checkpoints" | grep -q tmp && fail "a temporary file was left behind"
    "$sn" eval --checkpoint "$dir/small/c" >/dev/null 2>&1 || fail "previous checkpoint no longer readable"
else
    fail "cannot mount a tmpfs for the disk-full case (the test needs root)"
fi

[ $fails -eq 0 ] && echo "checkpoint tests passed"
[ $fails -eq 0 ]
