#!/bin/sh
# `supernest inspect` against files written by h5py following io/FORMAT.md:
# the description, --json (statistics compared with numpy), --verify on a
# good file and on one with a flipped byte or a missing checksum, --diff,
# and bad inputs (each one line on stderr and exit status 1; 2 for usage).
# usage: inspect_test.sh SUPERNEST PYTHON   (PYTHON must see h5py, numpy, xxhash)
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
n=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run ARGS...: runs supernest inspect, leaving status in $got, output in $tmp/out, $tmp/err.
run() {
    n=$((n + 1))
    timeout 120 "$sn" inspect "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
}

# expect STATUS KEYWORD ARGS...: exit status STATUS, exactly one stderr line containing KEYWORD.
expect() {
    want=$1 key=$2
    shift 2
    run "$@"
    lines=$(wc -l <"$tmp/err")
    if [ "$got" -ne "$want" ] || ! grep -q -- "$key" "$tmp/err" || [ "$lines" -ne 1 ]; then
        fail "supernest inspect $*: status $got (want $want), stderr ($lines lines, want 1 with '$key'):"
        cat "$tmp/err"
    fi
}

# ---- fixtures ---------------------------------------------------------------
"$py" - "$tmp" <<'EOF' || { echo "FAIL: cannot write the fixtures"; exit 1; }
import sys
import h5py
import numpy as np
import xxhash

d = sys.argv[1]
rng = np.random.default_rng(7)
E, H, D, F, T, P, C = 16, 2, 4, 16, 4, 4, 3
OPTIONS = 'embed-choices = 8,16\nnote = "quoted" \\ back\tslash \u00e9\n'

def vstr(x):
    return x  # h5py stores str as variable-length UTF-8

def tensors(e, heads, mlps):
    t = {'patch_embed.weight': (e, P), 'patch_embed.bias': (e,), 'pos_embed': (T, e)}
    for l, (h, f) in enumerate(zip(heads, mlps)):
        b = 'blocks.%d.' % l
        t.update({b + 'ln1.weight': (e,), b + 'ln1.bias': (e,),
                  b + 'attn.qkv.weight': (h * 3 * D, e), b + 'attn.qkv.bias': (h * 3 * D,),
                  b + 'attn.proj.weight': (e, h * D), b + 'attn.proj.bias': (e,),
                  b + 'ln2.weight': (e,), b + 'ln2.bias': (e,),
                  b + 'mlp.fc1.weight': (f, e), b + 'mlp.fc1.bias': (f,),
                  b + 'mlp.fc2.weight': (e, f), b + 'mlp.fc2.bias': (e,)})
    t.update({'norm.weight': (e,), 'norm.bias': (e,), 'head.weight': (C, e), 'head.bias': (C,)})
    return t

def put(g, name, arr):
    # Header and checksum first, data last: the data of the last dataset
    # written ends the file (the truncation case below relies on it).
    arr = np.ascontiguousarray(arr, dtype='<f4')
    ds = g.create_dataset(name, shape=arr.shape, dtype='<f4')
    ds.attrs['checksum'] = vstr('xxh3-64:' + format(xxhash.xxh3_64_intdigest(arr.tobytes()), '016x'))
    ds[...] = arr

def i32(v):
    return np.array(v, dtype='<i4')

def common(f, kind, version, embed, heads, mlp, mind, maxd):
    f.attrs['format'] = vstr(kind)
    f.attrs['format_version'] = vstr(version)
    f.attrs['program_version'] = vstr('0.1.0-test')
    f.attrs['created'] = vstr('2025-01-02T03:04:05Z')
    c = f.create_group('config')
    c.attrs['embed_choices'] = i32(embed)
    c.attrs['heads_choices'] = i32(heads)
    c.attrs['mlp_choices'] = i32(mlp)
    c.attrs['min_depth'] = i32(mind)
    c.attrs['max_depth'] = i32(maxd)
    for k, v in dict(head_dim=D, n_tokens=T, token_dim=P, n_classes=C, patch=2, image_rows=4,
                     image_cols=4).items():
        c.attrs[k] = np.int32(v)
    c.attrs['norm_mean'] = np.float32(0.2860)
    c.attrs['norm_std'] = np.float32(0.3530)
    c.attrs['seed'] = np.int64(1)
    c.attrs['val_size'] = np.int64(100)
    return c

def checkpoint(path, version='1.0'):
    with h5py.File(path, 'w') as f:
        c = common(f, 'supernest-checkpoint', version, [8, 16], [1, 2], [8, 16], [1], [2])
        c.attrs['options'] = vstr(OPTIONS)
        t = f.create_group('train')
        for k, v in dict(step=2, epoch=0, cursor=32).items():
            t.attrs[k] = np.int64(v)
        t.attrs['sampler'] = vstr('sandwich')
        t.attrs['fixed_subnet'] = vstr('')
        f.create_group('search')
        w = f.create_group('weights')
        shapes = tensors(E, [H, H], [F, F])
        for name, shape in shapes.items():
            put(w, name, rng.standard_normal(shape).astype('<f4') * 0.1 + 0.01)
        o = f.create_group('optimizer')
        o.attrs['step'] = np.int64(2)
        for k, v in dict(lr=1e-3, min_lr=1e-5, beta1=0.9, beta2=0.999, eps=1e-8,
                         weight_decay=0.05).items():
            o.attrs[k] = np.float32(v)
        o.attrs['warmup'] = np.int64(0)
        o.attrs['total'] = np.int64(2)
        for m in ('m', 'v'):
            g = o.create_group(m)
            for name, shape in shapes.items():
                a = rng.standard_normal(shape).astype('<f4') * 1e-3
                put(g, name, a * a if m == 'v' else a)

def model(path):
    with h5py.File(path, 'w') as f:
        c = common(f, 'supernest-model', '1.1', [16], [1, 2], [8, 16], [2], [2])
        c.attrs['subnet'] = vstr('e16-d2-h1.2-f16.8')
        w = f.create_group('weights')
        for name, shape in tensors(E, [1, 2], [16, 8]).items():
            put(w, name, rng.standard_normal(shape).astype('<f4'))
        s = f.create_group('search')
        s.attrs['generations'] = np.int64(3)
        put(s, 'archive', rng.standard_normal((5, 3)).astype('<f4'))

checkpoint(d + '/ckpt.h5')
model(d + '/model.h5')
checkpoint(d + '/v2.h5', version='2.0')
with h5py.File(d + '/other.h5', 'w') as f:
    f.attrs['format'] = 'something-else'
    f.attrs['format_version'] = '1.0'
with h5py.File(d + '/plain.h5', 'w') as f:
    f.create_dataset('x', data=np.zeros(3))
EOF

cp "$tmp/ckpt.h5" "$tmp/flip.h5"
cp "$tmp/ckpt.h5" "$tmp/nosum.h5"
cp "$tmp/ckpt.h5" "$tmp/noattr.h5"
cp "$tmp/ckpt.h5" "$tmp/changed.h5"
"$py" - "$tmp" <<'EOF' || { echo "FAIL: cannot damage the fixtures"; exit 1; }
import struct
import sys
import h5py
d = sys.argv[1]
with h5py.File(d + '/flip.h5', 'r') as f:
    ds = f['/weights/blocks.1.mlp.fc1.weight']
    off = ds.id.get_offset() + 4 * 37 + 2
with open(d + '/flip.h5', 'r+b') as fh:
    fh.seek(off)
    b = fh.read(1)
    fh.seek(off)
    fh.write(bytes([b[0] ^ 0x10]))
# A file cut short whose superblock was made to agree (so HDF5 opens it):
# metadata and data past the cut must be reported, not crash the reader.
with h5py.File(d + '/model.h5', 'r') as f:
    cut = f['/search/archive'].id.get_offset() + 10
with open(d + '/model.h5', 'rb') as fh:
    b = bytearray(fh.read(cut))
assert b[8] == 0, 'superblock version 0 expected'
b[40:48] = struct.pack('<Q', cut)  # end-of-file address of a version 0 superblock
with open(d + '/cut.h5', 'wb') as fh:
    fh.write(b)
with h5py.File(d + '/nosum.h5', 'r+') as f:
    del f['/optimizer/v/pos_embed'].attrs['checksum']
with h5py.File(d + '/noattr.h5', 'r+') as f:
    del f['/config'].attrs['head_dim']
with h5py.File(d + '/changed.h5', 'r+') as f:
    ds = f['/weights/pos_embed']
    a = ds[...]
    a[2, 3] += 0.5
    ds[...] = a  # the checksum is now stale, which --diff does not mind
EOF
size=$(wc -c <"$tmp/ckpt.h5")
head -c $((size / 2)) "$tmp/ckpt.h5" >"$tmp/truncated.h5"
printf 'this is not HDF5\n' >"$tmp/text.h5"

# ---- a good checkpoint ------------------------------------------------------
run "$tmp/ckpt.h5"
if [ "$got" -ne 0 ] || ! grep -q "supernest checkpoint" "$tmp/out" || ! grep -q "^step  *2$" "$tmp/out" ||
    ! grep -q "blocks.1.mlp.fc2.weight  *(16, 16)" "$tmp/out" || ! grep -q "40 sub-networks" "$tmp/out" ||
    ! grep -q "^/weights: 31 tensors" "$tmp/out" || [ -s "$tmp/err" ]; then
    fail "inspect ckpt.h5: status $got"
    cat "$tmp/out" "$tmp/err"
fi

for all in "" "--all"; do
    run "$tmp/ckpt.h5" --json $all
    if [ "$got" -ne 0 ]; then fail "inspect --json $all: status $got"; cat "$tmp/err"; fi
    "$py" - "$tmp" "$all" <<'EOF' || fail "inspect --json $all: wrong content"
import json, sys
import h5py
import numpy as np
d, all_ = sys.argv[1], sys.argv[2] == '--all'
j = json.load(open(d + '/out'))
ok = True
def check(cond, what):
    global ok
    if not cond:
        print('  json:', what)
        ok = False
check(j['kind'] == 'checkpoint' and j['format_version'] == '1.0', 'kind/version')
check(j['program_version'] == '0.1.0-test' and j['created'] == '2025-01-02T03:04:05Z', 'header')
check(j['step'] == 2 and j['space_size'] == 40, 'step %r space %r' % (j['step'], j['space_size']))
c = j['config']
check(c['embed_choices'] == [8, 16] and c['heads_choices'] == [1, 2] and c['mlp_choices'] == [8, 16]
      and c['min_depth'] == [1] and c['max_depth'] == [2] and c['head_dim'] == 4
      and c['n_tokens'] == 4 and c['token_dim'] == 4 and c['n_classes'] == 3 and c['patch'] == 2
      and c['image_rows'] == 4 and c['image_cols'] == 4, 'config %r' % c)
check(abs(c['norm_mean'] - 0.286) < 1e-6 and abs(c['norm_std'] - 0.353) < 1e-6, 'norm')
check(c['seed'] == 1 and c['val_size'] == 100, 'seed/val_size %r' % c)
check(c['options'] == 'embed-choices = 8,16\nnote = "quoted" \\ back\tslash \u00e9\n', 'options %r' % c.get('options'))
check(j['train']['sampler'] == 'sandwich' and j['train']['cursor'] == 32, 'train %r' % j['train'])
check(abs(j['optimizer']['beta2'] - 0.999) < 1e-6, 'optimizer %r' % j['optimizer'])
check(len(j['tensors']) == (93 if all_ else 31), '%d tensors' % len(j['tensors']))
check('search' not in j, '/search is empty: no search key')
with h5py.File(d + '/ckpt.h5', 'r') as f:
    for t in j['tensors']:
        a = f[t['group'] + '/' + t['name']][...].astype(np.float64)
        want = dict(min=a.min(), max=a.max(), mean=a.mean(), l2=np.sqrt((a * a).sum()))
        check(t['shape'] == list(a.shape), '%s shape' % t['name'])
        for k, v in want.items():
            if abs(t[k] - v) > 1e-9 * max(1.0, abs(v)):
                check(False, '%s %s: %r, numpy %r' % (t['name'], k, t[k], v))
sys.exit(0 if ok else 1)
EOF
done

run "$tmp/ckpt.h5" --verify
if [ "$got" -ne 0 ] || ! grep -q "ckpt.h5: 93 datasets verified" "$tmp/out" || [ -s "$tmp/err" ]; then
    fail "inspect --verify ckpt.h5: status $got"
    cat "$tmp/out" "$tmp/err"
fi

# ---- an exported model (format 1.1: a newer minor is read) with /search ---
run "$tmp/model.h5" --json
"$py" - "$tmp" <<'EOF' || fail "inspect --json model.h5: status $got"
import json, sys
j = json.load(open(sys.argv[1] + '/out'))
ok = (j['kind'] == 'model' and j['step'] is None and j['config']['subnet'] == 'e16-d2-h1.2-f16.8'
      and j['space_size'] == 16 and j['model']['params'] > 0 and j['model']['macs'] > 0
      and len(j['tensors']) == 31 and j['search']['attrs'] == {'generations': 3}
      and j['search']['datasets'] == [{'name': '/search/archive', 'shape': [5, 3], 'type': 'float32'}])
if not ok:
    print(json.dumps(j)[:2000])
sys.exit(0 if ok else 1)
EOF
run "$tmp/model.h5" --verify
if [ "$got" -ne 0 ] || ! grep -q "supernest model" "$tmp/out" || ! grep -q "/search/archive" "$tmp/out" ||
    ! grep -q "e16-d2-h1.2-f16.8" "$tmp/out" || ! grep -q "32 datasets verified" "$tmp/out"; then
    fail "inspect --verify model.h5: status $got"
    cat "$tmp/out" "$tmp/err"
fi

# ---- damage -----------------------------------------------------------------
run "$tmp/flip.h5" --verify
if [ "$got" -ne 1 ] || [ "$(wc -l <"$tmp/err")" -ne 2 ] ||
    ! grep -q "^supernest inspect: .*flip.h5: dataset /weights/blocks.1.mlp.fc1.weight is damaged: checksum mismatch (stored xxh3-64:[0-9a-f]\{16\}, computed xxh3-64:[0-9a-f]\{16\})$" "$tmp/err" ||
    ! grep -q "1 of 93 objects damaged" "$tmp/err"; then
    fail "inspect --verify flip.h5: status $got (want 1)"
    cat "$tmp/err"
fi
run "$tmp/flip.h5" --verify --json
"$py" - "$tmp" <<'EOF' || fail "inspect --verify --json flip.h5: status $got"
import json, sys
j = json.load(open(sys.argv[1] + '/out'))
v = j['verify']
ok = (v['ok'] is False and v['datasets'] == 93 and len(v['damaged']) == 1
      and v['damaged'][0]['name'] == '/weights/blocks.1.mlp.fc1.weight')
sys.exit(0 if ok else 1)
EOF
[ "$got" -eq 1 ] || fail "inspect --verify --json flip.h5: status $got (want 1)"
run "$tmp/nosum.h5" --verify
if [ "$got" -ne 1 ] || ! grep -q "dataset /optimizer/v/pos_embed is damaged: no checksum attribute" "$tmp/err"; then
    fail "inspect --verify nosum.h5: status $got (want 1)"
    cat "$tmp/err"
fi
run "$tmp/cut.h5" --verify
if [ "$got" -ne 1 ] || ! grep -q "cut.h5: .* is damaged: " "$tmp/err" ||
    ! grep -q "cut.h5: [0-9]* of [0-9]* objects damaged" "$tmp/err"; then
    fail "inspect --verify cut.h5: status $got (want 1)"
    cat "$tmp/err"
fi
expect 1 "cut.h5: .*addr overflow" "$tmp/cut.h5"
run "$tmp/flip.h5"
[ "$got" -eq 0 ] || fail "inspect flip.h5 (no --verify): status $got (want 0)"

# ---- --diff -----------------------------------------------------------------
run --diff "$tmp/ckpt.h5" "$tmp/changed.h5"
if [ "$got" -ne 0 ] || ! grep -q "31 tensors in both, 30 identical, 1 differ" "$tmp/out" ||
    ! grep -q "/weights/pos_embed  *(4, 16)  *0.5  *\[2, 3\]" "$tmp/out"; then
    fail "inspect --diff ckpt.h5 changed.h5: status $got"
    cat "$tmp/out" "$tmp/err"
fi
run --diff "$tmp/ckpt.h5" "$tmp/changed.h5" --json --all
"$py" - "$tmp" <<'EOF' || fail "inspect --diff --json --all: status $got"
import json, sys
j = json.load(open(sys.argv[1] + '/out'))
t = [x for x in j['tensors'] if x['position'] is not None]
ok = (j['compared'] == 93 and j['differ'] == 1 and len(t) == 1
      and t[0]['name'] == '/weights/pos_embed' and t[0]['position'] == [2, 3]
      and abs(t[0]['max_abs_diff'] - 0.5) < 1e-6 and abs(t[0]['b'] - t[0]['a'] - 0.5) < 1e-6
      and not j['only_in_a'] and not j['only_in_b'] and not j['shape_mismatch'])
if not ok:
    print(json.dumps(j)[:2000])
sys.exit(0 if ok else 1)
EOF
run --diff "$tmp/ckpt.h5" "$tmp/model.h5" --json
"$py" - "$tmp" <<'EOF' || fail "inspect --diff ckpt.h5 model.h5: status $got"
import json, sys
j = json.load(open(sys.argv[1] + '/out'))
mism = {x['name']: x for x in j['shape_mismatch']}
ok = ('/weights/blocks.0.attn.qkv.weight' in mism
      and mism['/weights/blocks.0.attn.qkv.weight']['shape_a'] == [24, 16]
      and mism['/weights/blocks.0.attn.qkv.weight']['shape_b'] == [12, 16]
      and '/weights/patch_embed.weight' in [x['name'] for x in j['tensors']]
      and not j['only_in_a'] and not j['only_in_b'])
sys.exit(0 if ok else 1)
EOF

# ---- bad input ----------------------------------------------------------------
expect 1 "truncated" "$tmp/truncated.h5"
expect 1 "truncated" "$tmp/truncated.h5" --verify
expect 1 "text.h5: not an HDF5 file" "$tmp/text.h5"
expect 1 "nowhere.h5: cannot open: No such file or directory" "$tmp/nowhere.h5"
expect 1 "v2.h5: format version 2.0 is newer than this supernest reads (1.x)" "$tmp/v2.h5"
expect 1 "other.h5: format 'something-else' is not a supernest file" "$tmp/other.h5"
expect 1 "plain.h5: not a supernest file" "$tmp/plain.h5"
expect 1 "noattr.h5: /config: attribute 'head_dim' is missing" "$tmp/noattr.h5"
expect 1 "v2.h5: format version 2.0" --diff "$tmp/ckpt.h5" "$tmp/v2.h5"
expect 1 "nowhere.h5" --diff "$tmp/nowhere.h5" "$tmp/ckpt.h5"
expect 2 "missing FILE" --json
expect 2 "--diff needs two files" --diff "$tmp/ckpt.h5"
expect 2 "unexpected argument" "$tmp/ckpt.h5" "$tmp/model.h5" "$tmp/v2.h5"
expect 2 "unknown option '--bogus'" "$tmp/ckpt.h5" --bogus
expect 2 "cannot be combined" --diff --verify "$tmp/ckpt.h5" "$tmp/model.h5"

# ---- a real checkpoint and model written by train ---------------------------
data=/usr/share/datasets/fashion-mnist
timeout 300 "$sn" train --data "$data" --steps 2 --batch-size 16 --train-subset 64 --val-size 100 \
    --report-random 0 --embed-choices 16,32 --heads-choices 1,2 --mlp-choices 32 --depths 2 \
    --min-depths 1 --head-dim 8 --quiet --run-dir "$tmp/run" >"$tmp/train.out" 2>&1
ck=$(ls "$tmp"/run/checkpoints/ckpt-*.h5 2>/dev/null | tail -n 1)
if [ -z "$ck" ]; then
    fail "train wrote no checkpoint for the real-file case"
    cat "$tmp/train.out"
else
    run "$ck" --verify --all --json
    [ "$got" -eq 0 ] || { fail "inspect --verify real checkpoint: status $got"; cat "$tmp/err"; }
    "$py" - "$tmp" "$ck" <<'EOF' || fail "inspect --json real checkpoint: wrong content"
import json, sys
import h5py, numpy as np
j = json.load(open(sys.argv[1] + '/out'))
ok = j['kind'] == 'checkpoint' and j['step'] == 2 and j['verify']['ok'] and j['space_size'] == 2 * (2 + 4)
with h5py.File(sys.argv[2], 'r') as f:
    n = []
    f.visititems(lambda k, o: n.append(k) if isinstance(o, h5py.Dataset) else None)
    ok = ok and j['verify']['datasets'] == len(n) and len(j['tensors']) == 3 * len(f['weights'])
    for t in j['tensors']:
        a = f[t['group'] + '/' + t['name']][...].astype(np.float64)
        ok = ok and abs(t['l2'] - np.sqrt((a * a).sum())) <= 1e-9 * max(1, t['l2'])
        ok = ok and t['min'] == a.min() and t['max'] == a.max()
if not ok:
    print(json.dumps(j)[:1500])
sys.exit(0 if ok else 1)
EOF
    if ! "$sn" export --checkpoint "$ck" --subnet min -o "$tmp/min.h5" >/dev/null 2>&1; then
        fail "export of the real checkpoint"
    else
        run "$tmp/min.h5" --verify
        if [ "$got" -ne 0 ] || ! grep -q "supernest model" "$tmp/out" ||
            ! grep -q "sub-network  *e16-d1-h1-f32 " "$tmp/out"; then
            fail "inspect --verify exported model: status $got"
            cat "$tmp/out" "$tmp/err"
        fi
        run --diff "$ck" "$tmp/min.h5"
        if [ "$got" -ne 0 ] || ! grep -q "different shapes: /weights/pos_embed" "$tmp/out" ||
            ! grep -q "only in .*ckpt-.*: /weights/blocks.1.ln1.weight" "$tmp/out"; then
            fail "inspect --diff checkpoint model: status $got"
            cat "$tmp/out" "$tmp/err"
        fi
    fi
fi

# ---- datasets larger than a block, and shapes the file cannot hold -----------
# A row of 12 MiB is read in pieces (blocks are 8 MiB): its statistics,
# checksum and --diff position must still be those of the whole.  A shape
# of 2^42 values with no data behind it is damage, reported at once instead
# of allocating or reading 16 TiB.
cp "$tmp/ckpt.h5" "$tmp/bigrow.h5"
cp "$tmp/ckpt.h5" "$tmp/bigrow2.h5"
cp "$tmp/ckpt.h5" "$tmp/huge.h5"
"$py" - "$tmp" <<'EOF' || { echo "FAIL: cannot write the large fixtures"; exit 1; }
import sys
import h5py
import numpy as np
import xxhash
d = sys.argv[1]
a = np.random.default_rng(3).standard_normal((3, 2, 1536 * 1024)).astype('<f4')
for name, bump in (('bigrow', 0.0), ('bigrow2', 0.75)):
    b = a.copy()
    b[2, 1, 1234567] += bump
    with h5py.File(d + '/' + name + '.h5', 'r+') as f:
        ds = f['weights'].create_dataset('big', data=b)
        ds.attrs['checksum'] = 'xxh3-64:' + xxhash.xxh3_64_hexdigest(b.tobytes())
with h5py.File(d + '/huge.h5', 'r+') as f:
    f['weights'].create_dataset('huge', shape=(1, 2 ** 42), dtype='<f4', chunks=(1, 1024))
x = a.astype(np.float64)
open(d + '/bigrow.want', 'w').write('%r %r %r\n' % (x.min(), x.max(), np.sqrt((x * x).sum())))
EOF
run "$tmp/bigrow.h5" --verify --json
if [ "$got" -ne 0 ] || ! "$py" - "$tmp/out" "$tmp/bigrow.want" <<'EOF'; then
import json
import sys
j = json.load(open(sys.argv[1]))
mn, mx, l2 = (float(v) for v in open(sys.argv[2]).read().split())
t = [t for t in j['tensors'] if t['name'] == 'big' and t['group'] == '/weights'][0]
sys.exit(0 if t['min'] == mn and t['max'] == mx and abs(t['l2'] - l2) <= 1e-9 * l2 else 1)
EOF
    fail "inspect --verify --json of a dataset with 12 MiB rows: status $got"
    head -c 600 "$tmp/out"
    cat "$tmp/err"
fi
run --diff "$tmp/bigrow.h5" "$tmp/bigrow2.h5"
if [ "$got" -ne 0 ] || ! grep -q "/weights/big .*\[2, 1, 1234567\]" "$tmp/out"; then
    fail "inspect --diff of a dataset with 12 MiB rows: status $got"
    cat "$tmp/out" "$tmp/err"
fi
expect 1 "dataset /weights/huge is damaged: its shape declares 1.76e+13 bytes but the file holds 0" \
    "$tmp/huge.h5"
expect 1 "dataset /weights/huge is damaged: its shape declares 1.76e+13 bytes" \
    --diff "$tmp/huge.h5" "$tmp/huge.h5"

echo "$((n - fails)) of $n inspect checks passed"
[ "$fails" -eq 0 ]
