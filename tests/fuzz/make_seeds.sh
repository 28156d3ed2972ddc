#!/bin/bash
# Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/
# (committed; run again only to change them).
#   tests/fuzz/make_seeds.sh [TARGET...]    (default: all; SUPERNEST=build/supernest)
# subnet: canonical strings of the spaces fuzz_subnet uses, and near misses.
# idx:    tiny IDX files, raw and gzip'd, of 1 to 4 dimensions.
# h5:     a checkpoint and exported models of a tiny space (image and
#         language-model task) made by supernest itself.
# config: INI files for fuzz_config's train-like table, and the resolved
#         configuration of a real run (options it does not know).
set -euo pipefail
cd "$(dirname "$0")"
sn=$(realpath "${SUPERNEST:-../../build/supernest}")
[ -x "$sn" ] || { echo "make_seeds.sh: $sn: not built (ninja -C build)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(subnet idx h5 config)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

seeds_subnet() {
wide_h=$(printf '7.%.0s' $(seq 63))7
wide_f=$(printf '1000000.%.0s' $(seq 63))96
i=0
while IFS= read -r s; do
    printf '%s' "$s" >"corpus/subnet/s$((i++))"
done <<LIST
max
min
e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768
e64-d1.1-h1.1-f96.96
e128-d2.3-h1.2.3.1.2-f96.192.288.384.480
e32-d1.2-h1.2.1-f64.128.64
e64-d2.2-h2.2.2.2-f128.128.128.128
e1000000-d4.4.4.4.4.4.4.4.4.4.4.4.4.4.4.4-h$wide_h-f$wide_f
e100-d1.1-h1.1-f96.96
e064-d1.1-h1.1-f96.96
e64-d1.1-h1.1-f96.96-
e64-h1-d1-f96
e99999999999-d1.1-h1.1-f96.96
e64-d1..1-h1.1-f96.96
LIST
}

seeds_idx() {
python3 - <<'PY'
import gzip, struct
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b''.join(struct.pack('>I', d) for d in dims) + bytes(data)
def put(name, b):
    open('corpus/idx/' + name, 'wb').write(b)
images = idx([3, 4, 4], [(i * 37) % 256 for i in range(48)])
images7 = idx([2, 7, 7], [(i * 11) % 256 for i in range(98)])
labels = idx([3], [0, 9, 4])
put('images-3x4x4', images)
put('images-2x7x7', images7)
put('labels-3', labels)
put('matrix-2x3', idx([2, 3], range(6)))
put('tensor-1x2x2x2', idx([1, 2, 2, 2], range(8)))
put('images-3x4x4.gz', gzip.compress(images, mtime=0))
put('labels-3.gz', gzip.compress(labels, mtime=0))
put('images-2x7x7.gz', gzip.compress(images7, mtime=0))
# two gzip members, as `cat a.gz b.gz` makes
put('images-split.gz', gzip.compress(images[:20], mtime=0) + gzip.compress(images[20:], mtime=0))
put('truncated', images[:30])
put('trailing', images + b'\x00')
put('int-type', bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 0, 7]))
PY
}

seeds_h5() {
tiny=(--embed-choices 8,16 --heads-choices 1,2 --head-dim 4 --mlp-choices 8,16 --depths 1
      --min-depths 1 --batch-size 8 --report-random 0 --threads 1 --quiet --no-report
      --val-size 100)
"$sn" train --steps 2 "${tiny[@]}" --patch 7 --train-subset 64 --run-dir "$tmp/img" >/dev/null
"$sn" export --checkpoint "$tmp/img" --subnet min -o "$tmp/model-min.h5" >/dev/null
"$sn" train --task lm --seq-len 8 --steps 1 --embed-choices 8 --heads-choices 1 --head-dim 4 \
    --mlp-choices 8 --depths 1 --min-depths 1 --batch-size 4 --report-random 0 --threads 1 \
    --quiet --no-report --val-size 100 --run-dir "$tmp/lm" >/dev/null
"$sn" export --checkpoint "$tmp/lm" --subnet max -o "$tmp/lm-model.h5" >/dev/null
cp "$tmp"/img/checkpoints/ckpt-*.h5 corpus/h5/checkpoint.h5
cp "$tmp/model-min.h5" corpus/h5/model.h5
cp "$tmp/lm-model.h5" corpus/h5/lm-model.h5
}

seeds_config() {
cat >corpus/config/train.ini <<'INI'
# a train configuration
task = image
steps = 200
batch_size = 64
lr = 0.0005
weight-decay = 0.1
quiet = yes
no-distill = off
run-dir = runs/a b;c
embed-choices = 32,64
heads-choices = 1,2
mlp-choices = 64,128
depths = 2,2
min-depths = 1,1
head-dim = 16

[search]
steps = 1
INI
cat >corpus/config/sections.ini <<'INI'
seed = 7
[train]
fixed-subnet = e32-d1.1-h1.1-f64.64
resume =
warmup = -1
[run]
whatever = 1
INI
printf 'lr = 1e-3\r\nquiet = TRUE\r\n' >corpus/config/crlf.ini
printf '; comment\n\n  steps=  12  \nseed = 9007199254740993\n' >corpus/config/spaces.ini
printf 'steps = 1\nsteps = 2\n' >corpus/config/twice.ini
printf 'stepz = 1\n' >corpus/config/unknown.ini
printf 'no equals sign\n' >corpus/config/no-value.ini
printf 'lr = 1e400\nbatch-size = 0x10\n' >corpus/config/numbers.ini
printf '[train\nquiet = maybe\n' >corpus/config/broken.ini
"$sn" train --steps 1 --embed-choices 8 --heads-choices 1 --head-dim 4 --mlp-choices 8 \
    --depths 1 --min-depths 1 --batch-size 4 --train-subset 8 --val-size 100 --threads 1 \
    --quiet --no-report --report-random 0 --run-dir "$tmp/cfg" >/dev/null
cp "$tmp/cfg/config" corpus/config/resolved.ini
}

for t in "${targets[@]}"; do
    rm -rf "corpus/$t"
    mkdir -p "corpus/$t"
    "seeds_$t"
done
du -sh corpus/*
