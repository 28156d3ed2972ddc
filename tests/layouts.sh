#!/bin/sh
# Every rank layout trains what one rank trains.
#
# For the image task and the language model, K steps of the sandwich rule
# with in-place distillation run on one rank (one micro-batch), then on
# D2, P2, S2, P2xS2, D2xP2, D2xS2, D2xP2xS2 and P4 (2, 4 and 8 ranks under
# mpirun --oversubscribe, some with 2 micro-batches, the sequence layouts
# with both ring variants; with P4 each stage holds one block, so stages
# whose block a sub-network drops pass activations through).  Each run's per-step losses (metrics.jsonl) and
# final weights (its checkpoint, read with h5py) must equal the one-rank
# run's within the tolerance layouts_compare.py states.  Then: --schedule
# deps (loss weights below 1) on D2 and P2xS2 against one rank; the
# convolutional stem (each sequence rank computing its own tokens' stem
# from their pixel windows) on D2 and P2xS2 against one rank, and with
# three convolutions on D2 and P2; a P2xS2
# checkpoint resumes on 1 rank and on D2 and continues the same training;
# and every refused layout ends every rank with one line and a non-zero
# exit status (no hang).
#
# Under the sanitizers (meson test --setup asan sets SN_TEST_SANITIZED)
# the one-rank comparison runs three of those layouts, which between them
# take every path of the others (data parallel, pipeline stages with
# micro-batches and with pass-through stages, both rings): the release
# run checks every layout's numbers, the sanitized run each path's memory;
# the rest of the script runs in full.
#   usage: layouts.sh SUPERNEST PYTHON3 [image|lm]
set -u
sn=$1 py=$2 only=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
"$py" -c 'import h5py, numpy' 2>/dev/null ||
    { echo "FAIL: $py lacks h5py/numpy (scripts/setup.sh --tests installs them)"; exit 1; }

space="--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1"
common="--steps 4 --log-every 1 --report-random 0 --threads 1 --checkpoint-every 0 --quiet $space"
image="--task image --patch 7 --batch-size 16 --train-subset 512 --val-size 200"
lm="--task lm --seq-len 64 --batch-size 8"

layouts="2 --dp 2|2 --pp 2 --micro-batches 2|2 --sp 2|2 --sp 2 --ring token|4 --pp 2 --sp 2|\
4 --pp 2 --sp 2 --ring token --micro-batches 2|4 --dp 2 --pp 2|4 --dp 2 --sp 2 --ring token|\
4 --pp 4 --micro-batches 4|8 --dp 2 --pp 2 --sp 2 --micro-batches 2|8 --dp 2 --pp 2 --sp 2 --ring token"
if [ -n "${SN_TEST_SANITIZED:-}" ]; then
    layouts="4 --pp 2 --sp 2 --ring token --micro-batches 2|4 --pp 4 --micro-batches 4|\
8 --dp 2 --pp 2 --sp 2 --micro-batches 2"
    echo "sanitized build: the one-rank comparison on 3 of the 11 layouts"
fi

failed=0
run() { # name ranks args...
    name=$1 np=$2
    shift 2
    timeout 120 mpirun --oversubscribe -np "$np" "$sn" train $common --run-dir "$tmp/$name" \
        "$@" >"$tmp/$name.out" 2>&1
    st=$?
    if [ $st -ne 0 ]; then
        echo "FAIL $name: exit status $st (124: timed out)"
        tail -5 "$tmp/$name.out"
        failed=1
        return 1
    fi
}

for task in image lm; do
    [ -n "$only" ] && [ "$only" != "$task" ] && continue
    eval targs=\$$task
    run "$task-1" 1 $targs || continue
    ifs=$IFS
    IFS='|'
    for layout in $layouts; do
        IFS=$ifs
        set -- $layout
        np=$1
        shift
        name="$task-$np$(echo "$*" | tr -d ' -')"
        run "$name" "$np" $targs "$@" || continue
        if "$py" "$here/layouts_compare.py" "$tmp/$task-1" "$tmp/$name"; then
            echo "ok   $task $np ranks $*"
        else
            echo "FAIL $task $np ranks $*: differs from one rank"
            failed=1
        fi
    done
done
# eval of a language-model checkpoint gives the bits per byte train reported
if [ -z "$only" ] || [ "$only" = lm ]; then
    if "$sn" eval --checkpoint "$tmp/lm-1" --split val --json >"$tmp/lm-eval.json" 2>&1 &&
        "$py" - "$tmp/lm-eval.json" "$tmp/lm-1/eval.jsonl" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
t = [json.loads(l) for l in open(sys.argv[2])]
want = next(r["val_bpb"] for r in t if r["role"] == "max")
sys.exit(0 if abs(e["bits_per_byte"] - want) <= 1e-5 * want else 1)
PY
    then
        echo "ok   eval --checkpoint of the language model: val bits per byte as train reported"
    else
        echo "FAIL eval of the language model checkpoint:"
        cat "$tmp/lm-eval.json"
        failed=1
    fi
fi

# the comparison can fail: a learning rate 1% off is caught
if [ -z "$only" ] || [ "$only" = image ]; then
    if run image-lr 1 $image --lr 0.00101 &&
        "$py" "$here/layouts_compare.py" "$tmp/image-1" "$tmp/image-lr" >/dev/null; then
        echo "FAIL the comparison did not notice --lr 0.00101"
        failed=1
    fi

    # against_one NAME WHAT OPTIONS...: OPTIONS train on D2 and on P2xS2
    # with 2 micro-batches what they train on one rank
    against_one() {
        base=$1 what=$2
        shift 2
        opts="$*"
        run "$base-1" 1 $image $opts || return 0
        for layout in "2 --dp 2" "4 --pp 2 --sp 2 --micro-batches 2"; do
            set -- $layout
            np=$1
            shift
            name="$base-$np$(echo "$*" | tr -d ' -')"
            if run "$name" "$np" $image $opts "$@" &&
                "$py" "$here/layouts_compare.py" "$tmp/$base-1" "$tmp/$name"; then
                echo "ok   image $np ranks $* $what"
            else
                echo "FAIL image $np ranks $* $what: differs from one rank"
                failed=1
            fi
        done
    }
    # the member loss weights of --schedule deps (a full-network step, then
    # a ramp of 1/3, 2/3, 1) and the students' targets blended with the
    # labels (the teacher's share ramped in) are the same on every layout
    against_one image-deps "--schedule deps" --schedule deps --deps-delay 0.25 \
        --deps-ramp 0.75 --distill-weight 0.5 --distill-ramp 0.5
    # the convolutional stem: a sequence rank's tokens carry their own pixel
    # windows, and the stem's gradients (summed over the sequence group like
    # the patch embedding's) are the same on every layout
    against_one image-stem "--stem 4,8" --patch 14 --stem 4,8
    # augmentation: every rank draws the same shift and mirror for an
    # image (a sequence rank cuts its tokens from the same altered image),
    # and the draws change the run (the comparison notices them)
    against_one image-augment "--shift 3 --hflip" --patch 14 --stem 4,8 --shift 3 --hflip
    if [ -d "$tmp/image-augment-1" ] &&
        "$py" "$here/layouts_compare.py" "$tmp/image-stem-1" "$tmp/image-augment-1" >/dev/null; then
        echo "FAIL --shift 3 --hflip trained what the run without them trained"
        failed=1
    fi
    # three convolutions: each token's 9 x 9 window, conv2 at 3 x 3
    # positions of it (4 x 4 patches: 49 tokens, which no --sp splits; a
    # sequence rank's windows are test_data's), on D2 and on P2 with the
    # members sharing the stem's pass on each of 2 micro-batches
    if run image-stem3-1 1 $image --patch 4 --stem 4,8,16; then
        for layout in "2 --dp 2" "2 --pp 2 --micro-batches 2"; do
            set -- $layout
            np=$1
            shift
            name="image-stem3-$np$(echo "$*" | tr -d ' -')"
            if run "$name" "$np" $image --patch 4 --stem 4,8,16 "$@" &&
                "$py" "$here/layouts_compare.py" "$tmp/image-stem3-1" "$tmp/$name"; then
                echo "ok   image $np ranks $* --stem 4,8,16"
            else
                echo "FAIL image $np ranks $* --stem 4,8,16: differs from one rank"
                failed=1
            fi
        done
    fi
    # more micro-batches than stages: the first stage keeps a workspace per
    # micro-batch, so that the members share the stem's pass on each
    if run image-stem-2pp2mb4 2 $image --patch 14 --stem 4,8 --pp 2 --micro-batches 4 &&
        "$py" "$here/layouts_compare.py" "$tmp/image-stem-1" "$tmp/image-stem-2pp2mb4"; then
        echo "ok   image 2 ranks --pp 2 --micro-batches 4 --stem 4,8"
    else
        echo "FAIL image 2 ranks --pp 2 --micro-batches 4 --stem 4,8: differs from one rank"
        failed=1
    fi

    # reshard on load: P2xS2 stops after 2 steps; 1 rank and D2 resume
    if run image-ps 4 $image --pp 2 --sp 2 --stop-after 2; then
        cp -r "$tmp/image-ps" "$tmp/image-ps-d2"
        for r in "image-ps 1" "image-ps-d2 2 --dp 2"; do
            set -- $r
            name=$1 np=$2
            shift 2
            if timeout 120 mpirun --oversubscribe -np "$np" "$sn" train $common $image \
                    --run-dir "$tmp/$name" --resume "$@" >"$tmp/$name.resume" 2>&1 &&
                "$py" "$here/layouts_compare.py" "$tmp/image-1" "$tmp/$name"; then
                echo "ok   P2xS2 checkpoint resumed on $np rank(s) $*"
            else
                echo "FAIL P2xS2 checkpoint resumed on $np rank(s) $*"
                tail -3 "$tmp/$name.resume"
                failed=1
            fi
        done
    fi
fi

# refused layouts: one line naming the problem, non-zero exit, no hang
refuse() { # ranks expected-text args...
    np=$1 want=$2
    shift 2
    timeout 60 mpirun --oversubscribe -np "$np" "$sn" train $common $image "$@" \
        >"$tmp/refused.out" 2>"$tmp/refused.err"
    rc=$?
    lines=$(grep -c "^supernest train: " "$tmp/refused.err")
    if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ "$lines" -ne 1 ] ||
        ! grep -q -e "$want" "$tmp/refused.err"; then
        echo "FAIL refused layout $np ranks $*: status $rc, $lines message lines:"
        cat "$tmp/refused.err"
        failed=1
    else
        echo "ok   refused $np ranks $*: $(grep '^supernest train: ' "$tmp/refused.err")"
    fi
}
if [ -z "$only" ] || [ "$only" = image ]; then
    refuse 3 "replicas of --pp 2" --pp 2
    refuse 2 "at most 4 pipeline stages" --pp 5
    refuse 4 "--dp 3" --dp 3
    refuse 3 "not divisible by --sp 3" --sp 3
    refuse 2 "does not split over 2 data ranks" --dp 2 --micro-batches 3
    refuse 2 "not divisible by 2 x --sp 2" --sp 2 --task lm --seq-len 66 --batch-size 8
fi
exit $failed
