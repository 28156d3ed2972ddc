#!/bin/sh
# `supernest latency-table` end to end on a tiny space (train's space
# flags): writes a table, which h5py reads with the shapes io/FORMAT.md
# documents (checksums recomputed); --table checks it; damaged, truncated,
# foreign and mismatched files and bad command lines are refused with one
# line (exit 1 for files, 2 for usage).
# usage: latency_e2e.sh SUPERNEST PYTHON   (PYTHON must see h5py, numpy, xxhash)
set -u
sn=$1
py=${2:-/usr/bin/python3}
if ! "$py" -c 'import h5py, numpy, xxhash' 2>/dev/null; then
    echo "FAIL: $py cannot import h5py, numpy and xxhash (scripts/setup.sh --tests installs them)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

space="--embed-choices 32,64 --heads-choices 1,2 --mlp-choices 32,64,128 --depths 2,1
       --min-depths 1,1 --head-dim 16"

# expect STATUS KEYWORD ARGS...: exit status STATUS, exactly one stderr line containing KEYWORD.
expect() {
    want=$1 key=$2
    shift 2
    timeout 120 "$sn" latency-table "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$got" -ne "$want" ] || ! grep -q -- "$key" "$tmp/err" || [ "$lines" -ne 1 ]; then
        fail "supernest latency-table $*: status $got (want $want), stderr ($lines lines, want 1 with '$key'):"
        cat "$tmp/err"
    fi
}

# a table of each task
# shellcheck disable=SC2086
if ! timeout 120 "$sn" latency-table $space --reps 5 --warmup 1 --check 3 -o "$tmp/t.h5" >"$tmp/out" 2>"$tmp/err"; then
    fail "writing the image table:"; cat "$tmp/err"
fi
grep -q "mean absolute percentage error" "$tmp/out" || fail "no MAPE line in the report"
[ "$(grep -c '%  e' "$tmp/out")" -eq 3 ] || fail "the check did not list 3 sub-networks"
# shellcheck disable=SC2086
if ! timeout 120 "$sn" latency-table --task lm --seq-len 32 $space --reps 5 --warmup 1 --check 2 -o "$tmp/lm.h5" >"$tmp/out" 2>"$tmp/err"; then
    fail "writing the language-model table:"; cat "$tmp/err"
fi

# an outside reader: h5py, the documented schema, the checksums
"$py" - "$tmp/t.h5" "$tmp/lm.h5" <<'PY' || fail "h5py could not read the tables as documented"
import sys, h5py, numpy as np, xxhash
for path, task, tokens in ((sys.argv[1], "image", 49), (sys.argv[2], "lm", 32)):
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "supernest-latency", f.attrs["format"]
        assert f.attrs["format_version"] == "1.2"
        for a in ("program_version", "created"):
            assert a in f.attrs, a
        c = f["config"].attrs
        assert c["task"] == task and int(c["n_tokens"][0]) == tokens
        assert list(c["embed_choices"]) == [32, 64] and list(c["heads_choices"]) == [1, 2]
        assert list(c["mlp_choices"]) == [32, 64, 128]
        g = f["latency"]
        assert int(g.attrs["batch"]) == 1 and int(g.attrs["threads"]) == 1
        assert int(g.attrs["reps"]) == 5 and int(g.attrs["warmup"]) == 1
        assert g.attrs["blis_kernels"] and g.attrs["cpu_model"]
        shapes = {"embed_ms": (2,), "block_ms": (2, 2, 3), "head_ms": (2,)}
        for name, shape in shapes.items():
            d = g[name]
            assert d.shape == shape and d.dtype == np.float32, (name, d.shape, d.dtype)
            v = d[()]
            assert np.all(np.isfinite(v)) and np.all(v > 0), (name, v)
            want = d.attrs["checksum"]
            assert want == "xxh3-64:" + xxhash.xxh3_64_hexdigest(v.tobytes()), name
        # no ordering of the times is asserted: at these sizes a block's cost
        # differs by less than the noise of a loaded (or sanitized) machine
PY

# --table: checks an existing table
timeout 120 "$sn" latency-table --table "$tmp/t.h5" --check 2 >"$tmp/out" 2>"$tmp/err" ||
    { fail "--table on a good file:"; cat "$tmp/err"; }
grep -q "mean absolute percentage error" "$tmp/out" || fail "--table: no MAPE line"

# damaged files
cp "$tmp/t.h5" "$tmp/flip.h5"
"$py" - "$tmp/flip.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f["latency/block_ms"].id.get_offset()
with open(sys.argv[1], "r+b") as f:
    f.seek(off + 5)
    b = f.read(1)
    f.seek(off + 5)
    f.write(bytes([b[0] ^ 0x40]))
PY
expect 1 "block_ms is damaged" --table "$tmp/flip.h5"
head -c 3000 "$tmp/t.h5" >"$tmp/trunc.h5"
expect 1 "trunc.h5" --table "$tmp/trunc.h5"
cp "$tmp/t.h5" "$tmp/shape.h5"
"$py" - "$tmp/shape.h5" <<'PY'
import sys, h5py, numpy as np, xxhash
with h5py.File(sys.argv[1], "r+") as f:
    g = f["latency"]
    del g["block_ms"]
    v = np.ones((2, 2, 2), np.float32)
    g["block_ms"] = v
    g["block_ms"].attrs["checksum"] = "xxh3-64:" + xxhash.xxh3_64_hexdigest(v.tobytes())
PY
expect 1 "has shape (2, 2, 2)" --table "$tmp/shape.h5"
cp "$tmp/t.h5" "$tmp/nohead.h5"
"$py" -c 'import sys, h5py; f = h5py.File(sys.argv[1], "r+"); del f["latency/head_ms"]' "$tmp/nohead.h5"
expect 1 "head_ms is missing" --table "$tmp/nohead.h5"
"$py" -c 'import sys, h5py; f = h5py.File(sys.argv[1], "w"); f.attrs["format"] = "supernest-checkpoint"' "$tmp/ckpt.h5"
expect 1 "not a latency table" --table "$tmp/ckpt.h5"
expect 1 "not an HDF5 file" --table /etc/hostname
expect 1 "cannot open" --table "$tmp/none.h5"

# bad command lines
expect 2 "unknown option" --bogus
expect 2 "--reps" --reps x -o "$tmp/x.h5"
expect 2 "--batch-size" --batch-size 0 -o "$tmp/x.h5"
expect 2 "-o FILE" --reps 3
expect 2 "ascending" --embed-choices 64,32 -o "$tmp/x.h5"
expect 2 "--patch 5" --patch 5 -o "$tmp/x.h5"
expect 2 "own search space" --table "$tmp/t.h5" --depths 1,1
expect 2 "own search space" --checkpoint "$tmp/t.h5" --task lm -o "$tmp/x.h5"
expect 1 "cannot open" --checkpoint "$tmp/none" -o "$tmp/x.h5"
expect 1 "a latency table, not a checkpoint or model" --checkpoint "$tmp/t.h5" -o "$tmp/x.h5"
[ -e "$tmp/x.h5" ] && fail "a refused run wrote its output"
"$sn" latency-table --help >"$tmp/out" 2>&1 && grep -q -- "--check" "$tmp/out" || fail "--help"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "latency_e2e: all checks passed"
