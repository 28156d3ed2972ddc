#!/bin/bash
# Hostile and mistaken input, one case per row of docs/BAD_INPUT.md that no
# other test covers: flags of every command, --config files, sub-network
# strings, rank layouts, IDX files, text files, checkpoints, exported
# models, latency tables, search states and search options.  Every case
# runs under `timeout` (a hang fails it) and must end with the documented
# exit status and exactly one line on stderr holding the expected words;
# the MPI cases run 2-4 ranks under `mpirun -q`, which returns only when
# every rank has exited, and stderr must again be that one line.
# The fixtures are tiny: 120 + 40 random 28x28 images, a 2-step supernet of
# a small space, a 20 kB text.
#   usage: bad_input.sh SUPERNEST PYTHON3 [MPIEXEC]   (KEEP_TMP=1 keeps the files)
set -u
sn=$(readlink -f "$1") py=$2 mpiexec=${3:-mpirun}
if ! "$py" -c 'import h5py, numpy, xxhash' 2>/dev/null; then
    echo "FAIL: $py cannot import h5py, numpy and xxhash (Debian: python3-h5py python3-numpy" \
         "python3-xxhash; scripts/setup.sh --tests installs them)"
    exit 1
fi
tmp=$(mktemp -d)
[ "${KEEP_TMP:-0}" = 1 ] && echo "files in $tmp" || trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
cd "$tmp" || exit 1
fails=0 n=0
t_start=$(date +%s)

# Cases run in the background, up to $par at a time (most of a case's time
# is MPI starting up, not work); each leaves its files in res/NNN-CASE and
# is judged, in order, at the end.
par=4
# start CASE STATUS KEY TIMEOUT COMMAND...
start() {
    local d
    d=res/$(printf %03d "$n")-$1
    n=$((n + 1))
    mkdir -p "$d"
    printf '%s\n' "$2" >"$d/want"
    printf '%s\n' "$3" >"$d/key"
    local t=$4
    shift 4
    ( timeout "$t" "$@" >"$d/out" 2>"$d/err"; echo $? >"$d/rc" ) &
    while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n; done
}
# expect CASE STATUS KEY ARGS...: supernest ARGS on one process
expect() {
    local id=$1 want=$2 key=$3
    shift 3
    start "$id" "$want" "$key" 30 "$sn" "$@"
}
# mexpect CASE NP STATUS KEY ARGS...: supernest ARGS on NP ranks; mpirun
# returns when every rank has exited
mexpect() {
    local id=$1 np=$2 want=$3 key=$4
    shift 4
    start "$id" "$want" "$key" 60 "$mpiexec" -q --oversubscribe -np "$np" "$sn" "$@"
}
# judge DIR: the documented status, one line on stderr, the key in it
judge() {
    local d=$1 id=${1#res/???-} want key got lines
    want=$(cat "$d/want") key=$(cat "$d/key") got=$(cat "$d/rc" 2>/dev/null || echo 255)
    lines=$(wc -l <"$d/err")
    if [ "$got" -eq 124 ]; then
        echo "FAIL $id: no exit within the timeout (a hang)"
    elif [ "$got" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$key" "$d/err"; then
        echo "FAIL $id: status $got (want $want), $lines stderr lines (want 1 with '$key'):"
        sed 's/^/     /' "$d/err" | head -8
    else
        echo "ok   $id: $(cat "$d/err")"
        return
    fi
    fails=$((fails + 1))
}

# ---- fixtures ------------------------------------------------------------------
space=(--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1)
img=(--data d --patch 7 --val-size 20 --batch-size 16 --threads 1 --quiet --no-report)
"$py" - <<'PY' || { echo "FAIL: writing the IDX fixtures"; exit 1; }
import gzip, os, struct, numpy as np
def header(shape, kind=8, m0=0):
    return bytes([m0, 0, kind, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
def idx(path, a, **kw):
    a = np.asarray(a, np.uint8)
    open(path, "wb").write(header(a.shape, **kw) + a.tobytes())
rng = np.random.default_rng(0)
TI, TL = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
EI, EL = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
good = {TI: rng.integers(0, 256, (120, 28, 28)), TL: np.arange(120) % 10,
        EI: rng.integers(0, 256, (40, 28, 28)), EL: np.arange(40) % 10}
def case(name, **over):   # a data directory: the good files, some replaced
    os.makedirs(name, exist_ok=True)
    for f, a in good.items():
        v = over.get(f, a)
        if v is None: continue
        if isinstance(v, bytes): open(f"{name}/{f}", "wb").write(v)
        elif callable(v): v(f"{name}/{f}")
        else: idx(f"{name}/{f}", v)
raw = header((120, 28, 28)) + np.asarray(good[TI], np.uint8).tobytes()
gz = gzip.compress(raw)
case("d")
case("i-empty", **{TI: b""})
case("i-truncated", **{TI: raw[: len(raw) // 2]})
case("i-magic", **{TI: bytes([1, 0, 8, 3]) + raw[4:]})
case("i-float", **{TI: bytes([0, 0, 0x0D, 3]) + raw[4:]})
case("i-2d", **{TI: header((120, 784)) + raw[16:]})
case("i-count", **{TL: np.arange(119) % 10})
case("i-swapped", **{TI: good[TL], TL: good[TI]})
case("i-nolabels", **{TL: None})
case("i-notest", **{EI: None, EL: None})
case("i-testsize", **{EI: rng.integers(0, 256, (40, 14, 14))})
case("i-trailing", **{TI: raw + b"xx"})
case("i-huge", **{TI: header((65536, 65536, 2))})
case("i-isdir", **{TI: lambda p: os.makedirs(p)})
flip = bytearray(gz); flip[len(flip) // 2] ^= 0x55
case("i-gzcrc", **{TI: lambda p: open(p + ".gz", "wb").write(bytes(flip))})
case("i-gzcut", **{TI: lambda p: open(p + ".gz", "wb").write(gz[: len(gz) // 2])})
case("i-gznot", **{TI: lambda p: open(p + ".gz", "wb").write(b"\x1f\x8bnot deflate data at all")})
lab = np.arange(40) % 10; lab[5] = 200
case("i-label", **{EL: lab})
# text for --task lm
os.makedirs("txt/nofiles"); os.makedirs("txt/datonly"); os.makedirs("txt/emptyfiles")
words = b"the quick brown fox jumps over the lazy dog; " * 500
open("txt/ok.txt", "wb").write(words[:20000])
open("txt/empty", "wb").write(b"")
open("txt/binary", "wb").write(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
open("txt/short", "wb").write(words[:100])
open("txt/datonly/fortunes.dat", "wb").write(b"\0\0\0\2")
open("txt/emptyfiles/a", "wb").write(b""); open("txt/emptyfiles/b", "wb").write(b"")
# config files
open("nul.ini", "wb").write(b"steps = 1\0\n")
open("big.ini", "wb").write(b"#" * (1 << 20) + b"\n")
open("bom.ini", "wb").write(b"\xff\xfe[train]\nsteps = 1\n")
open("obj.ini", "w").write("[search]\nobjectives = acc\n")
os.makedirs("emptydir")
open("plainfile", "w").write("not a directory\n")
PY

# a 2-step supernet, one of its sub-networks, a latency table (timed with
# one rep: it must read back however noisy its calibration), a search
# state; a language model
if ! timeout 120 "$sn" train --steps 2 "${space[@]}" "${img[@]}" --run-dir run >fixture.out 2>&1 ||
    ! timeout 60 "$sn" export --checkpoint run --subnet min -o model.h5 >>fixture.out 2>&1 ||
    ! timeout 60 "$sn" latency-table --checkpoint run --reps 1 --warmup 0 --calibrate 3 --check 0 \
        -o lat.h5 >>fixture.out 2>&1 ||
    ! timeout 60 "$sn" latency-table "${space[@]}" --embed-choices 32 --patch 7 --reps 1 --warmup 0 \
        --calibrate 3 --check 0 -o lat-other.h5 >>fixture.out 2>&1 ||
    ! timeout 60 "$sn" latency-table --table lat.h5 --check 1 >>fixture.out 2>&1 ||
    ! timeout 60 "$sn" search --checkpoint run --data d --objectives acc,params --init 2 \
        --iterations 0 --eval-size 10 --top 0 --threads 1 --out srch >>fixture.out 2>&1 ||
    ! timeout 120 "$sn" train --task lm --data txt/ok.txt --seq-len 32 --batch-size 4 --steps 1 \
        "${space[@]}" --threads 1 --quiet --no-report --run-dir lm >>fixture.out 2>&1; then
    cat fixture.out
    echo "FAIL: making the fixtures"
    exit 1
fi
ck=run/checkpoints/ckpt-00000002.h5
sopts=(--checkpoint run --data d --objectives acc,params --init 2 --iterations 0 --eval-size 10
       --top 0 --threads 1)
"$py" - "$ck" model.h5 lat.h5 srch/search.h5 <<'PY' || { echo "FAIL: writing the HDF5 fixtures"; exit 1; }
import os, shutil, sys, h5py, numpy as np, xxhash
ck, model, lat, state = sys.argv[1:5]
os.makedirs("h5")
def copy(src, name):
    p = f"h5/{name}.h5"
    shutil.copy(src, p)
    return p
def put(f, path, x):   # replaces a dataset, with a correct checksum
    del f[path]
    f[path] = x
    f[path].attrs["checksum"] = "xxh3-64:" + xxhash.xxh3_64_hexdigest(np.ascontiguousarray(x).tobytes())
def edit(src, name, fn):
    with h5py.File(copy(src, name), "r+") as f:
        fn(f)
def setattr_(path, key, v):
    return lambda f: f[path].attrs.__setitem__(key, v)
edit(ck, "format", setattr_("/", "format", "something-else"))
edit(ck, "noformat", lambda f: f.attrs.__delitem__("format"))
edit(ck, "version-text", setattr_("/", "format_version", "one"))
edit(ck, "version-old", setattr_("/", "format_version", "0.9"))
edit(ck, "noconfig", lambda f: f.__delitem__("config"))
edit(ck, "noheaddim", lambda f: f["config"].attrs.__delitem__("head_dim"))
edit(ck, "notrain", lambda f: f.__delitem__("train"))
edit(ck, "noweights", lambda f: f.__delitem__("weights"))
edit(ck, "noopt", lambda f: f.__delitem__("optimizer"))
edit(ck, "classes", setattr_("config", "n_classes", np.array([-3], np.int32)))
edit(ck, "patch", setattr_("config", "patch", np.array([5], np.int32)))
edit(ck, "std", setattr_("config", "norm_std", np.float32(0)))
edit(ck, "stem-zero", setattr_("config", "stem_channels", np.array([0, 8], np.int32)))
edit(ck, "stem-three", setattr_("config", "stem_channels", np.array([4, 8, 16], np.int32)))
edit(ck, "stem-four", setattr_("config", "stem_channels", np.array([4, 8, 16, 32], np.int32)))
edit(ck, "embed-text", setattr_("config", "embed_choices", "32,64"))
edit(ck, "task", setattr_("config", "task", "video"))
edit(ck, "step", setattr_("train", "step", np.int64(-5)))
edit(ck, "sampler", setattr_("train", "sampler", "bogus"))
def no_schedule(f):   # a checkpoint written before --schedule existed
    opts = f["config"].attrs["options"]
    opts = opts.decode() if isinstance(opts, bytes) else opts
    f["config"].attrs["options"] = "".join(l for l in opts.splitlines(True)
                                           if not l.startswith("schedule ="))
edit(ck, "noschedule", no_schedule)
edit(ck, "cursor", setattr_("train", "cursor", np.int64(10**9)))
edit(ck, "valsize", setattr_("config", "val_size", np.int64(10**9)))
edit(ck, "float64", lambda f: put(f, "weights/norm.weight", f["weights/norm.weight"][()].astype(np.float64)))
edit(ck, "rank3", lambda f: put(f, "weights/norm.weight", f["weights/norm.weight"][()].reshape(1, 1, -1)))
edit(ck, "nosum", lambda f: f["weights/norm.weight"].attrs.__delitem__("checksum"))
edit(ck, "othersum", setattr_("weights/norm.weight", "checksum", "md5:1234"))
def nan(f):
    x = f["weights/norm.weight"][()]
    x[3] = np.nan
    put(f, "weights/norm.weight", x)
edit(ck, "nan", nan)
def weights_dataset(f):
    del f["weights"]
    f["weights"] = np.zeros(3, np.float32)
edit(ck, "weights-dataset", weights_dataset)
edit(model, "m-subnet", setattr_("config", "subnet", "e64-d2.2-h2.2.2.2-f128.128.128.128"))
edit(model, "m-subnet-text", setattr_("config", "subnet", "garbage"))
edit(model, "m-missing", lambda f: f.__delitem__("weights/head.weight"))
edit(model, "m-version", setattr_("/", "format_version", "2.1"))
p = copy(model, "m-flip")
with h5py.File(p, "r") as f:
    off = f["weights/head.weight"].id.get_offset()
b = bytearray(open(p, "rb").read()); b[off + 3] ^= 0x20; open(p, "wb").write(bytes(b))
m = open(model, "rb").read(); open("h5/m-cut.h5", "wb").write(m[: len(m) // 2])
c = open(ck, "rb").read(); open("h5/header.h5", "wb").write(c[:600])
open("h5/empty.h5", "wb").write(b"")
with h5py.File("h5/plain.h5", "w") as f:
    f["x"] = np.zeros(3)
def neg(f):
    x = f["latency/block_ms"][()]
    x[0, 0, 0] = -1
    put(f, "latency/block_ms", x)
edit(lat, "l-negative", neg)
edit(lat, "l-version", setattr_("/", "format_version", "2.0"))
edit(state, "s-version", setattr_("/", "format_version", "3.0"))
edit(state, "s-noattr", lambda f: f["search"].attrs.__delitem__("objectives"))
def s_shape(f):
    v = f["search/values"][()]
    del f["search/values"]
    f["search/values"] = v[:, :2]
edit(state, "s-shape", s_shape)
def s_subnet(f):
    s = f["search/subnets"][()]
    s[0] = b"e999-d1.1-h1.1-f64.64"
    del f["search/subnets"]
    f["search/subnets"] = s
edit(state, "s-subnet", s_subnet)
def s_iter(f):
    s = f["search/iteration_of"][()]
    s[0] = 50
    del f["search/iteration_of"]
    f["search/iteration_of"] = s
edit(state, "s-iteration", s_iter)
PY
# a run directory whose `latest` names nothing usable
mkdir -p latest-bad/checkpoints latest-gone
echo "../x.h5" >latest-bad/checkpoints/latest
echo "ckpt-00000009.h5" >latest-gone/latest
echo "fixtures ready after $(($(date +%s) - t_start)) s"

# ---- command-line flags ---------------------------------------------------------
expect flag-train-flag-value 2 "--quiet takes no value" train --quiet=1
expect flag-train-float-overflow 2 "--lr '1e400': not a finite number" train --lr 1e400
expect flag-train-int-overflow 2 "not an integer" train --steps 99999999999999999999
expect flag-train-batch 2 "--batch-size 5000: must be in 1..4096" train --batch-size 5000
expect flag-train-threads 2 "--threads -1: must be in 0.." train --threads -1
expect flag-train-positional 2 "unexpected argument 'foo'" train foo
expect flag-train-long-name 2 "unknown option '--aaaa" train "--$(printf 'a%.0s' $(seq 100))"
expect flag-train-resume-alone 2 "--resume without a file needs --run-dir" train --resume
expect flag-train-stop-after 2 "--stop-after needs --run-dir" train --stop-after 3
expect flag-train-min-depths 2 "max_depth 3 is below min_depth 4" train --min-depths 4,4
expect flag-train-depths-many 2 "more than 16 values" train --depths "$(seq -s, 17 | sed 's/[0-9]*/1/g')"
expect flag-train-fixed-empty 2 "--fixed-subnet: empty value" train --fixed-subnet ""
expect flag-train-dp-one-rank 2 "= 3 ranks, but the job has 1" train --dp 3
expect flag-train-run-dir-file 1 "plainfile: exists and is not a directory" \
    train --steps 1 "${space[@]}" "${img[@]}" --run-dir plainfile
expect flag-train-resume-lr 2 "--lr was 0.001, now 0.002" \
    train --steps 3 "${space[@]}" "${img[@]}" --resume run --run-dir r1 --lr 0.002
expect flag-train-resume-schedule 2 "--schedule was sandwich, now progressive" \
    train --steps 3 "${space[@]}" "${img[@]}" --resume run --run-dir rs1 --schedule progressive
expect flag-train-resume-seed 1 "was trained with --seed 1, not 5" \
    train --steps 3 "${space[@]}" "${img[@]}" --resume run --run-dir r2 --seed 5
expect flag-train-resume-shift 2 "--shift was 0, now 2" \
    train --steps 3 "${space[@]}" "${img[@]}" --resume run --run-dir r11 --shift 2
expect flag-train-resume-hflip 2 "--hflip was false, now true" \
    train --steps 3 "${space[@]}" "${img[@]}" --resume run --run-dir r12 --hflip
expect flag-train-shift-range 2 "--shift -1: must be in 0.." train --shift -1
expect flag-train-shift-large 2 "--shift 28: the images are 28x28, so a shift that large" \
    train --steps 1 "${space[@]}" "${img[@]}" --shift 28
expect flag-eval-none 2 "give exactly one of --checkpoint and --model" eval
expect flag-eval-both 2 "give exactly one of --checkpoint and --model" eval --checkpoint run --model model.h5
expect flag-eval-split 2 "--split 'train': expected val or test" eval --checkpoint run --split train
expect flag-eval-limit 2 "--limit -1: must be in 0.." eval --checkpoint run --limit -1
expect flag-eval-model-subnet 2 "model.h5 holds only e32-d1.1-h1.1-f64.64" \
    eval --model model.h5 --subnet e64-d2.2-h2.2.2.2-f128.128.128.128 --data d
expect flag-eval-logits-dir 1 "nowhere/x.bin: cannot create" \
    eval --checkpoint run --data d --threads 1 --logits nowhere/x.bin
expect flag-eval-logits-lm 1 "--logits is for image models" \
    eval --checkpoint lm --data txt/ok.txt --threads 1 --logits x.bin
expect flag-eval-blis 2 "--blis-arch 'pentium': unknown BLIS configuration" \
    eval --checkpoint run --blis-arch pentium
expect flag-export-missing 2 "--checkpoint, --subnet and -o are all required" export --checkpoint run --subnet min
expect flag-export-out-nodir 1 "nowhere/m.h5.tmp: cannot create: No such file or directory" \
    export --checkpoint run --subnet min -o nowhere/m.h5
expect flag-export-out-dir 1 "cannot rename to emptydir: Is a directory" \
    export --checkpoint run --subnet min -o emptydir
expect flag-search-no-ckpt 2 "--checkpoint FILE|DIR is required" search
expect flag-search-init 2 "--init 1: must be in 2.." search "${sopts[@]}" --init 1
expect flag-search-init-iter 2 "--init 2: the predictors of --iterations 1 need at least 3" \
    search "${sopts[@]}" --iterations 1 --out s-init
expect flag-search-mutation 2 "--mutation 2: must be in [0, 1]" search "${sopts[@]}" --mutation 2
expect flag-search-resume-none 2 "--resume: s-none/search.h5: no search state to continue" \
    search "${sopts[@]}" --resume --out s-none
expect flag-search-out-file 1 "plainfile: exists and is not a directory" search "${sopts[@]}" --out plainfile
expect flag-latency-task 2 "--task 'video': expected image or lm" latency-table --task video -o x.h5
expect flag-latency-seq-len 2 "--seq-len is for --task lm" latency-table --seq-len 64 -o x.h5
expect flag-latency-calibrate 2 "--calibrate 1: must be in 2.." latency-table --calibrate 1 -o x.h5
expect flag-latency-table-ckpt 2 "--checkpoint does not go with it" latency-table --table lat.h5 --checkpoint run
expect flag-latency-out-nodir 1 "nowhere/x.h5.tmp: cannot create" \
    latency-table --checkpoint run --reps 1 --calibrate 2 --check 0 -o nowhere/x.h5
expect flag-latency-out-dir 1 "cannot rename to emptydir: Is a directory" \
    latency-table --checkpoint run --reps 1 --calibrate 2 --check 0 -o emptydir

# ---- search options ---------------------------------------------------------------
expect search-obj-one 2 "--objectives 'acc': give at least two" search "${sopts[@]}" --objectives acc
expect search-obj-unknown 2 "unknown objective 'speed'" search "${sopts[@]}" --objectives acc,speed
expect search-obj-twice 2 "'acc' is given twice" search "${sopts[@]}" --objectives acc,acc
expect search-obj-five 2 "at most 4 objectives" search "${sopts[@]}" --objectives acc,loss,latency,params,macs
expect search-obj-empty-name 2 "an empty name" search "${sopts[@]}" --objectives ,acc,,params
expect search-max-params 2 "--max-params 100: no sub-network meets it, the smallest" \
    search "${sopts[@]}" --max-params 100 --out s-params
expect search-max-macs 2 "--max-macs 1000: no sub-network meets it, the smallest" \
    search "${sopts[@]}" --max-macs 1000 --out s-macs
expect search-max-latency 1 "none of the 2 sub-networks evaluated meets the constraints (--max-latency-ms 1e-06" \
    search "${sopts[@]}" --objectives acc,latency --latency-reps 1 --max-latency-ms 0.000001 --out s-lat
expect search-pp-one-rank 2 "need 1 + a multiple of 2 ranks (rank 0 coordinates): start with mpirun -np 3" \
    search "${sopts[@]}" --pp 2
expect search-latency-table-missing 1 "nowhere.h5: cannot open: No such file or directory" \
    search "${sopts[@]}" --objectives acc,latency --latency-table nowhere.h5 --out s-l1
expect search-latency-table-space 1 "lat-other.h5: a latency table of another search space" \
    search "${sopts[@]}" --objectives acc,latency --latency-table lat-other.h5 --out s-l2

# ---- --config files ---------------------------------------------------------------
expect config-nul 2 "--config nul.ini: not a text file" train --config nul.ini
expect config-big 2 "--config big.ini: larger than 1 MiB" train --config big.ini
expect config-dir 2 "--config emptydir: cannot read: Is a directory" train --config emptydir
expect config-no-value 2 "--config: missing value" train --config
expect config-empty-value 2 "--config: empty value" train --config=
expect config-bom 2 "bom.ini:1: not 'name = value'" train --config bom.ini
expect config-bad-value 2 "--objectives 'acc': give at least two" search --config obj.ini --checkpoint run

# ---- sub-network strings (on the command line; tests/test_arch.c has the parser's) ----
expect subnet-eval-unknown 2 "sub-network 'bogus': field 'b' unknown" eval --checkpoint run --subnet bogus
expect subnet-eval-depths 2 "expected 2 depths (one per stage), got 3" \
    eval --checkpoint run --subnet e64-d1.1.1-h1.1.1-f64.64.64
expect subnet-eval-space 2 "embed 192 is not one of 32,64" eval --checkpoint run --subnet e192-d1.1-h1.1-f64.64
expect subnet-export-space 2 "block 0 heads 3 is not one of 1,2" \
    export --checkpoint run --subnet e32-d1.1-h3.1-f64.64 -o x.h5
expect subnet-train-fixed 2 "block 1 mlp 96 is not one of 64,128" \
    train --steps 1 "${space[@]}" "${img[@]}" --fixed-subnet e32-d1.1-h1.1-f64.96

# ---- IDX image and label files (train, eval) -----------------------------------------
T=(train --steps 1 "${space[@]}" --patch 7 --val-size 20 --batch-size 16 --threads 1 --quiet --no-report)
expect idx-empty 1 "train-images-idx3-ubyte: empty file" "${T[@]}" --data i-empty
expect idx-truncated 1 "truncated: header says 94080 bytes of data, file has 47032" "${T[@]}" --data i-truncated
expect idx-magic 1 "bad magic 0x01000803" "${T[@]}" --data i-magic
expect idx-type 1 "unsupported data type 0x0d (float)" "${T[@]}" --data i-float
expect idx-2d-images 1 "images file has 2 dimensions, expected 3" "${T[@]}" --data i-2d
expect idx-count 1 "119 labels, but" "${T[@]}" --data i-count
expect idx-swapped 1 "images file has 1 dimensions, expected 3" "${T[@]}" --data i-swapped
expect idx-no-labels 1 "train-labels-idx1-ubyte.gz: not found" "${T[@]}" --data i-nolabels
expect idx-no-test 1 "t10k-images-idx3-ubyte.gz: not found" "${T[@]}" --data i-notest
expect idx-test-size 1 "test images are 14x14, training images 28x28" "${T[@]}" --data i-testsize
expect idx-trailing 1 "trailing data: header says 94080 bytes of data, file has 94082" "${T[@]}" --data i-trailing
expect idx-huge-dims 1 "dimensions describe more than the 4294967296-byte (4 GiB) limit" "${T[@]}" --data i-huge
expect idx-directory 1 "train-images-idx3-ubyte: cannot open: Is a directory" "${T[@]}" --data i-isdir
expect idx-gzip-crc 1 "corrupt gzip stream" "${T[@]}" --data i-gzcrc
expect idx-gzip-cut 1 "truncated gzip stream" "${T[@]}" --data i-gzcut
expect idx-gzip-not-deflate 1 "corrupt gzip stream at compressed byte" "${T[@]}" --data i-gznot
expect idx-eval-label 1 "test label 200 (image 5) is not one of the 10 classes (0..9)" \
    eval --checkpoint run --data i-label --threads 1
expect idx-search-label 1 "test label 200 (image 5) is not one of the 10 classes" \
    search "${sopts[@]}" --data i-label --out s-label
expect idx-eval-size 1 "i-testsize: images are 14x14" eval --checkpoint run --data i-testsize --threads 1
expect idx-eval-no-dir 1 "nowhere/t10k-images-idx3-ubyte.gz: not found" eval --checkpoint run --data nowhere
expect idx-text-file 1 "txt/ok.txt: not a directory (images are read from a directory of IDX files" \
    eval --checkpoint run --data txt/ok.txt

# ---- text for --task lm ------------------------------------------------------------------
L=(train --task lm --steps 1 "${space[@]}" --seq-len 32 --batch-size 4 --threads 1 --quiet --no-report)
expect text-shift 2 "--shift is for the image task" "${L[@]}" --data txt/ok.txt --shift 2
expect text-hflip 2 "--hflip is for the image task" "${L[@]}" --data txt/ok.txt --hflip
expect text-missing 1 "txt/missing: cannot open: No such file or directory" "${L[@]}" --data txt/missing
expect text-empty 1 "txt/empty: empty file" "${L[@]}" --data txt/empty
expect text-binary 1 "txt/binary: not text:" "${L[@]}" --data txt/binary
expect text-short 1 "100 bytes are too few for --seq-len 32" "${L[@]}" --data txt/short
expect text-seq-len 1 "the largest --seq-len it allows is 999" "${L[@]}" --data txt/ok.txt --seq-len 2000
expect text-dir-none 1 "txt/nofiles: no text files in this directory" "${L[@]}" --data txt/nofiles
expect text-dir-dat 1 "txt/datonly: no text files in this directory" "${L[@]}" --data txt/datonly
expect text-dir-empty 1 "all 2 text files of this directory are empty" "${L[@]}" --data txt/emptyfiles
expect text-idx-dir 1 "d/t10k-images-idx3-ubyte: not text" "${L[@]}" --data d
expect text-eval-short 1 "txt/short: 100 bytes are too few for --seq-len 32" \
    eval --checkpoint lm --data txt/short --threads 1

# ---- checkpoints ---------------------------------------------------------------------------
E=(eval --data d --threads 1 --checkpoint)
expect ckpt-format 1 "format 'something-else' is not a supernest file" "${E[@]}" h5/format.h5
expect ckpt-no-format 1 "not a supernest file (no root attribute 'format')" "${E[@]}" h5/noformat.h5
expect ckpt-plain-hdf5 1 "plain.h5: not a supernest file" "${E[@]}" h5/plain.h5
expect ckpt-version-text 1 "format_version 'one' is not MAJOR.MINOR" "${E[@]}" h5/version-text.h5
expect ckpt-version-old 1 "format version 0.9 is older than this supernest reads (1.x)" "${E[@]}" h5/version-old.h5
expect ckpt-empty 1 "empty.h5: not an HDF5 file" "${E[@]}" h5/empty.h5
expect ckpt-header-only 1 "header.h5: cannot be opened as HDF5 (truncated or damaged)" "${E[@]}" h5/header.h5
expect ckpt-no-config 1 "the /config group is missing" "${E[@]}" h5/noconfig.h5
expect ckpt-no-attr 1 "/config: attribute 'head_dim' is missing" "${E[@]}" h5/noheaddim.h5
expect ckpt-attr-type 1 "attribute 'embed_choices' has the wrong type or size" "${E[@]}" h5/embed-text.h5
expect ckpt-classes 1 "n_classes is -3, must be positive" "${E[@]}" h5/classes.h5
expect ckpt-task 1 "task 'video' is not one this version knows" "${E[@]}" h5/task.h5
expect ckpt-patch 1 "patch 5 of 28x28 images does not give the space's 16 tokens of 49 values" \
    "${E[@]}" h5/patch.h5
expect ckpt-norm 1 "normalisation mean" "${E[@]}" h5/std.h5
expect ckpt-stem-zero 1 "stem channels 0,8,0: expected two or three channel counts in 1..1024" \
    "${E[@]}" h5/stem-zero.h5
expect ckpt-stem-three 1 "token_dim 49 is not the (p+5)^2 window of a patch size p" "${E[@]}" \
    h5/stem-three.h5
expect ckpt-stem-four 1 "attribute 'stem_channels' has 4 values (1..3 allowed)" "${E[@]}" \
    h5/stem-four.h5
expect ckpt-no-train 1 "the /train group is missing" "${E[@]}" h5/notrain.h5
expect ckpt-no-weights 1 "group /weights is missing" "${E[@]}" h5/noweights.h5
expect ckpt-weights-dataset 1 "dataset patch_embed.weight is missing" "${E[@]}" h5/weights-dataset.h5
expect ckpt-float64 1 "dataset norm.weight is not float32" "${E[@]}" h5/float64.h5
expect ckpt-rank 1 "norm.weight has shape (1, 1, 64), the configuration needs (64)" "${E[@]}" h5/rank3.h5
expect ckpt-no-checksum 1 "norm.weight has no checksum attribute" "${E[@]}" h5/nosum.h5
expect ckpt-other-checksum 1 "norm.weight is damaged: checksum mismatch (stored md5:1234" "${E[@]}" h5/othersum.h5
expect ckpt-nan 1 "norm.weight holds a non-finite value (nan at element 3)" "${E[@]}" h5/nan.h5
expect ckpt-val-size 1 "valsize.h5 holds out 1000000000 validation images, but d has 120 training images" \
    eval --data d --threads 1 --split val --checkpoint h5/valsize.h5
expect ckpt-val-size-search 1 "valsize.h5 holds out 1000000000 validation images, but d has 120" \
    search "${sopts[@]}" --checkpoint h5/valsize.h5 --out s-vs
expect ckpt-empty-dir 1 "emptydir: no checkpoint here" "${E[@]}" emptydir
expect ckpt-latest-bad 1 "latest-bad/checkpoints/latest: does not name a checkpoint file" "${E[@]}" latest-bad
expect ckpt-latest-gone 1 "latest-gone/ckpt-00000009.h5: cannot open: No such file" "${E[@]}" latest-gone
R=(train --steps 4 "${space[@]}" "${img[@]}")
expect ckpt-resume-step 1 "step -5, epoch 0" "${R[@]}" --run-dir r3 --resume h5/step.h5
expect ckpt-resume-cursor 2 "stands at image 1000000000 of an epoch, but d has 100 training images" \
    "${R[@]}" --run-dir r4 --resume h5/cursor.h5
expect ckpt-resume-no-optimizer 1 "group /optimizer is missing" "${R[@]}" --run-dir r5 --resume h5/noopt.h5
expect ckpt-resume-nan 1 "holds a non-finite value" "${R[@]}" --run-dir r6 --resume h5/nan.h5
expect ckpt-resume-space 2 "--embed-choices was 32,64, now 32" \
    train --steps 4 "${space[@]}" --embed-choices 32 "${img[@]}" --run-dir r7 --resume run
expect ckpt-resume-sampler 1 "/train: sampler 'bogus' is not one of sandwich, sortednet" \
    "${R[@]}" --run-dir rs2 --resume h5/sampler.h5
expect ckpt-resume-old-schedule 2 "noschedule.h5 was trained with --schedule sandwich; give the same" \
    "${R[@]}" --schedule progressive --run-dir rs3 --resume h5/noschedule.h5

# ---- exported models, and each kind of file given where another is expected ----------
expect model-subnet 1 "/config subnet does not fit the model's own space" eval --data d --model h5/m-subnet.h5
expect model-subnet-text 1 "sub-network 'garbage': field 'g' unknown" eval --data d --model h5/m-subnet-text.h5
expect model-missing 1 "dataset head.weight is missing" eval --data d --model h5/m-missing.h5
expect model-version 1 "format version 2.1 is newer than this supernest reads (1.x)" eval --data d --model h5/m-version.h5
expect model-flipped 1 "dataset head.weight is damaged: checksum mismatch" eval --data d --model h5/m-flip.h5
expect model-truncated 1 "m-cut.h5: cannot be opened as HDF5 (truncated or damaged)" eval --data d --model h5/m-cut.h5
expect wrong-model-as-ckpt 1 "model.h5: an exported model, not a supernet checkpoint (use --model)" \
    eval --data d --checkpoint model.h5
expect wrong-ckpt-as-model 1 "a supernet checkpoint, not an exported model (use --checkpoint)" \
    eval --data d --model "$ck"
expect wrong-dir-as-model 1 "run: is a directory, not an HDF5 file" eval --data d --model run
expect wrong-latency-as-ckpt 1 "lat.h5: a latency table, not a checkpoint or model" eval --data d --checkpoint lat.h5
expect wrong-latency-as-model 1 "lat.h5: a latency table, not a checkpoint or model" eval --data d --model lat.h5
expect wrong-state-as-ckpt 1 "srch/search.h5: a search state, not a checkpoint or model" \
    eval --data d --checkpoint srch/search.h5
expect wrong-model-export 1 "model.h5: an exported model, not a supernet checkpoint" \
    export --checkpoint model.h5 --subnet min -o x.h5
expect wrong-latency-export 1 "lat.h5: a latency table, not a checkpoint or model" \
    export --checkpoint lat.h5 --subnet min -o x.h5
expect wrong-model-resume 1 "model.h5: an exported model cannot be resumed" "${R[@]}" --run-dir r8 --resume model.h5
expect wrong-latency-resume 1 "lat.h5: a latency table, not a checkpoint or model" "${R[@]}" --run-dir r9 --resume lat.h5
expect wrong-state-resume 1 "a search state, not a checkpoint or model" "${R[@]}" --run-dir r10 --resume srch/search.h5
expect wrong-model-search 1 "model.h5: an exported model, not a supernet checkpoint" \
    search --checkpoint model.h5 --data d --out s-m
expect wrong-latency-search 1 "lat.h5: a latency table, not a checkpoint or model" \
    search --checkpoint lat.h5 --data d --out s-m
expect wrong-state-search 1 "a search state, not a checkpoint or model" \
    search --checkpoint srch/search.h5 --data d --out s-m
expect wrong-ckpt-latency-table 1 "format 'supernest-checkpoint' is not a latency table" \
    search "${sopts[@]}" --objectives acc,latency --latency-table "$ck" --out s-l3
expect wrong-model-table 1 "format 'supernest-model' is not a latency table" latency-table --table model.h5
expect wrong-state-table 1 "format 'supernest-search' is not a latency table" latency-table --table srch/search.h5
expect wrong-dir-table 1 "emptydir: is a directory, not an HDF5 file" latency-table --table emptydir
expect wrong-state-latency-ckpt 1 "a search state, not a checkpoint or model" \
    latency-table --checkpoint srch/search.h5 -o x.h5
expect wrong-latency-inspect 1 "a latency table, not a checkpoint or model (check it with: supernest latency-table" \
    inspect lat.h5
expect wrong-state-inspect 1 "a search state, not a checkpoint or model" inspect srch/search.h5

# ---- latency tables --------------------------------------------------------------------------
expect latency-version 1 "format version 2.0 is newer than this supernest reads (1.x)" \
    latency-table --table h5/l-version.h5
expect latency-negative 1 "block_ms" latency-table --table h5/l-negative.h5
expect latency-table-no-check 2 "--table needs --check K >= 1" latency-table --table lat.h5 --check 0

# ---- search states in --out ------------------------------------------------------------------
state() { # NAME FILE: a copy of FILE as NAME/search.h5
    mkdir -p "$1" && cp "$2" "$1/search.h5"
}
state so-version h5/s-version.h5
expect state-version 1 "search.h5: format version 3.0 is newer than this supernest reads (1.x)" \
    search "${sopts[@]}" --out so-version
state so-noattr h5/s-noattr.h5
expect state-no-attr 1 "/search: attribute 'objectives' is missing" search "${sopts[@]}" --out so-noattr
state so-shape h5/s-shape.h5
expect state-shape 1 "/search: dataset values has the wrong shape" search "${sopts[@]}" --out so-shape
state so-subnet h5/s-subnet.h5
expect state-subnet 1 "so-subnet/search.h5: sub-network 0 is not of" search "${sopts[@]}" --out so-subnet
state so-iteration h5/s-iteration.h5
expect state-iteration 1 "sub-network 0 is of iteration 50, but only 0 iterations are done" \
    search "${sopts[@]}" --out so-iteration
state so-model model.h5
expect state-model 1 "so-model/search.h5: a supernest-model file, not a supernest search file" \
    search "${sopts[@]}" --out so-model
mkdir -p so-text && echo garbage >so-text/search.h5
expect state-text 1 "so-text/search.h5: not an HDF5 file" search "${sopts[@]}" --out so-text
expect state-objectives 2 "holds a search with --objectives acc,params (this command: --objectives acc,macs)" \
    search "${sopts[@]}" --objectives acc,macs --out srch

# ---- rank layouts and bad files on several ranks -------------------------------------------
wait
par=2
mexpect mpi-train-layout-product 2 2 "--dp 2 x --pp 1 x --sp 2 = 4 ranks, but the job has 2" \
    train --steps 1 "${space[@]}" "${img[@]}" --dp 2 --sp 2
mexpect mpi-train-micro 2 2 "does not split" \
    train --steps 1 "${space[@]}" "${img[@]}" --pp 2 --micro-batches 3
mexpect mpi-train-idx 2 1 "truncated: header says 94080 bytes of data" \
    train --steps 1 "${space[@]}" "${img[@]}" --data i-truncated
mexpect mpi-train-text 2 1 "txt/binary: not text" \
    train --task lm --data txt/binary "${space[@]}" --seq-len 32 --batch-size 4 --steps 1 --sp 2 --quiet
mexpect mpi-train-resume-damaged 2 1 "norm.weight has shape (1, 1, 64)" \
    train --steps 4 "${space[@]}" "${img[@]}" --run-dir r11 --resume h5/rank3.h5
mexpect mpi-train-resume-cursor 2 2 "stands at image 1000000000 of an epoch" \
    train --steps 4 "${space[@]}" "${img[@]}" --run-dir r12 --resume h5/cursor.h5
mexpect mpi-eval-label 2 1 "test label 200 (image 5) is not one of the 10 classes" \
    eval --checkpoint run --data i-label --threads 1
mexpect mpi-export-out 2 1 "nowhere/x.h5.tmp: cannot create" export --checkpoint run --subnet min -o nowhere/x.h5
mexpect mpi-latency-ranks 2 2 "measures one process on its own: run it without mpirun" latency-table --table lat.h5
mexpect mpi-search-groups 2 2 "1 do not split into evaluator groups of --pp 2 x --sp 1" \
    search "${sopts[@]}" --pp 2 --out s-g
mexpect mpi-search-idx 3 1 "truncated: header says 94080 bytes of data" \
    search "${sopts[@]}" --data i-truncated --out s-i
mexpect mpi-search-group-label 3 1 "test label 200 (image 5) is not one of the 10 classes" \
    search "${sopts[@]}" --sp 2 --data i-label --out s-gl
mexpect mpi-search-group-damaged 3 1 "norm.weight holds a non-finite value" \
    search "${sopts[@]}" --pp 2 --checkpoint h5/nan.h5 --out s-gd
mexpect mpi-search-max-params 3 2 "--max-params 100: no sub-network meets it" \
    search "${sopts[@]}" --max-params 100 --out s-mp
mexpect mpi-search-latency-space 3 1 "a latency table of another search space" \
    search "${sopts[@]}" --objectives acc,latency --latency-table lat-other.h5 --out s-ls

wait
for d in res/*; do judge "$d"; done
echo "$((n - fails)) of $n bad inputs refused as documented ($(($(date +%s) - t_start)) s)"
[ "$fails" -eq 0 ]
