#!/bin/bash
# Bad command lines and configurations: each must exit with the documented
# status and one line on stderr that names the problem.
# usage: cli_errors.sh SUPERNEST
set -u
sn=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

# expect STATUS KEYWORD ARGS...: supernest ARGS must exit with STATUS and
# one stderr line holding KEYWORD.  Cases run in the background, 4 at a
# time (most of a case is process start-up), each in $tmp/case-N, and are
# judged in order at the end.
expect() {
    local d=$tmp/case-$n
    n=$((n + 1))
    mkdir -p "$d"
    printf '%s\n' "$1" >"$d/want"
    printf '%s\n' "$2" >"$d/key"
    shift 2
    printf '%s ' "$@" >"$d/args"
    ( timeout 60 "$sn" "$@" >"$d/out" 2>"$d/err"; echo $? >"$d/rc" ) &
    while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n; done
}
judge() {
    local d=$1 want key got lines
    want=$(cat "$d/want") key=$(cat "$d/key") got=$(cat "$d/rc")
    lines=$(wc -l <"$d/err")
    if [ "$got" -ne "$want" ] || ! grep -q -- "$key" "$d/err" || [ "$lines" -ne 1 ]; then
        echo "FAIL: supernest $(cat "$d/args"): status $got (want $want), stderr ($lines lines):"
        cat "$d/err"
        fails=$((fails + 1))
    fi
}

printf 'not an idx file at all' >"$tmp/train-images-idx3-ubyte"
cp "$tmp/train-images-idx3-ubyte" "$tmp/train-labels-idx1-ubyte"

expect 2 "unknown command" frobnicate
expect 2 "unknown option '--bogus'" train --bogus
expect 2 "'abc': not an integer" train --steps abc
expect 2 "must be in" train --batch-size 0
expect 2 "missing value" train --seed
expect 2 "not a finite number" train --lr nan
expect 2 "either --steps or --epochs" train --steps 2 --epochs 1
expect 2 "expected image" train --task video
expect 2 "--seq-len is for --task lm" train --seq-len 64
expect 2 "expected plain" train --ring both
expect 1 "too few for any --seq-len" train --task lm --data "$tmp/train-images-idx3-ubyte" --seq-len 64
expect 2 "at most 6 pipeline stages" train --pp 9
expect 2 "start it with mpirun -np 2" train --sp 2
expect 2 "embed 100 is not one of" train --fixed-subnet e100-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768
expect 2 "heads" train --fixed-subnet e192-d3.3-h3.3.3.3.3-f768.768.768.768.768.768
expect 2 "strictly ascending" train --embed-choices 64,32
expect 2 "--min-depths" train --depths 3,3 --min-depths 1
expect 2 "comma-separated" train --mlp-choices 96,,192
expect 2 "does not divide" train --patch 5
expect 2 "validation split" train --val-size 60000
expect 2 "unknown BLIS configuration" train --blis-arch pentium
# the schedules' options (docs/BAD_INPUT.md, train)
expect 2 "--schedule 'foo': expected sandwich, sortednet, progressive or deps" train --schedule foo
expect 2 "--phases 0.5,0.6,0,0: the shares sum to 1.1, not 1" \
    train --schedule progressive --phases 0.5,0.6,0,0
expect 2 "--phases '0.5,0.5': expected 4 comma-separated shares" \
    train --schedule progressive --phases 0.5,0.5
expect 2 "share 1.5 is not in" train --schedule progressive --phases 1.5,-0.5,0,0
expect 2 "--phases is for --schedule progressive" train --phases 0.1,0.2,0.3,0.4
expect 2 "--subnets-per-step 0: must be in 1..10" train --schedule sortednet --subnets-per-step 0
expect 2 "--subnets-per-step is for --schedule sortednet" train --subnets-per-step 2
expect 2 "--deps-delay 1.5: must be in" train --schedule deps --deps-delay 1.5
expect 2 "--deps-ramp 2: must be in" train --schedule deps --deps-ramp 2
expect 2 "--deps-delay is for --schedule deps" train --schedule progressive --deps-delay 0.3
expect 2 "--sandwich-random is for --schedule sandwich, progressive or deps" \
    train --schedule sortednet --sandwich-random 3
expect 2 "--no-distill is for --schedule sandwich, progressive or deps" \
    train --schedule sortednet --no-distill
expect 2 "--distill-weight 0: must be in" train --distill-weight 0
expect 2 "--distill-ramp 1.5: must be in" train --distill-ramp 1.5
expect 2 "--distill-weight is for in-place distillation" train --no-distill --distill-weight 0.5
expect 2 "--distill-ramp is for in-place distillation" train --schedule sortednet --distill-ramp 0.5
expect 2 "--distill-weight is for in-place distillation" train --fixed-subnet max --distill-weight 0.5
expect 2 "--stem '32': expected none, or two or three channel counts C1,C2" train --stem 32
expect 2 "--stem '2000,8': expected none, or two or three channel counts" train --stem 2000,8
expect 2 "--stem '0,8': value out of range" train --stem 0,8
expect 2 "--stem '4,8,16,32': more than 3 values" train --stem 4,8,16,32
expect 2 "patch size 7 is not a multiple of 2, which a convolutional stem of 2 convolutions" train --stem 4,8 --patch 7
expect 2 "patch size 14 is not a multiple of 4, which a convolutional stem of 3 convolutions" train --stem 4,8,16 --patch 14
expect 2 "--stem is for the image task" train --stem 4,8 --task lm
expect 2 "--stem is for the image task" train --stem 4,8 --task lm --data "$tmp/no-such-text"
expect 2 "--patch: patch size 7 is not a multiple of 2" latency-table --stem 4,8 --patch 7 -o "$tmp/lat.h5"
expect 2 "--sample-by 'flops': expected uniform" train --sample-by flops
expect 2 "--macs-buckets is for --sample-by macs or log-macs" train --macs-buckets 4
expect 2 "--macs-buckets 0: must be in 1..1000" train --sample-by macs --macs-buckets 0
expect 2 "--sort-channels 'on': expected auto, off, or the steps after which to sort" \
    train --sort-channels on
expect 2 "--sort-channels '0': expected auto, off, or the steps" train --sort-channels 0
expect 2 "--sort-channels '5,x': expected auto, off, or the steps" train --sort-channels 5,x
expect 2 "--sort-channels '5,3': the steps must increase" train --sort-channels 5,3
expect 2 "--sort-channels '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17': at most 16 steps" \
    train --sort-channels 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
expect 2 "--sort-channels 5: sorting would change the sub-network --fixed-subnet trains" \
    train --fixed-subnet max --sort-channels 5
expect 2 "--sort-channels 3,10: step 10 is not before the run's end (10 steps)" \
    train --steps 10 --sort-channels 3,10
expect 2 "it does not combine with --schedule progressive" \
    train --fixed-subnet max --schedule progressive
expect 2 "--sample-by macs is for the schedules that draw sub-networks" \
    train --fixed-subnet max --sample-by macs
expect 2 "--sample-by log-macs is for the schedules that draw sub-networks" \
    train --fixed-subnet max --sample-by log-macs
# in a file, an option at another value than its default counts as given
printf '[train]\nschedule = sandwich\ndeps-delay = 0.3\n' >"$tmp/deps.ini"
expect 2 "--deps-delay is for --schedule deps" train --config "$tmp/deps.ini"
expect 1 "not found" train --data "$tmp/nowhere"
expect 1 "train-images-idx3-ubyte" train --data "$tmp"

# --config FILE: every problem names the file and its line
printf '[search]\nlrr = 1\n[train]\nsteps = 2\nlrr = 1\n' >"$tmp/unknown.ini"
expect 2 "unknown.ini:5: unknown option 'lrr' for supernest train" train --config "$tmp/unknown.ini"
printf 'steps = 2\n[train]\nlr = abc\n' >"$tmp/lr.ini"
expect 2 "lr.ini:3: --lr 'abc': not a finite number" train --lr 0.1 --config "$tmp/lr.ini"
printf 'seed = 1\nseed = 2\n' >"$tmp/twice.ini"
expect 2 "twice.ini:2: 'seed' given twice" search --config="$tmp/twice.ini"
printf '[latency-table]\nreps\n' >"$tmp/syntax.ini"
expect 2 "syntax.ini:2: not 'name = value'" latency-table --config "$tmp/syntax.ini"
expect 2 "cannot open: No such file or directory" eval --config "$tmp/nowhere.ini"
expect 2 "given twice" export --config "$tmp/lr.ini" --config "$tmp/lr.ini"
# values from the file are checked as the command line's
printf '[train]\nfixed-subnet = e100-d1.1-h1.1-f96.96\n' >"$tmp/subnet.ini"
expect 2 "embed 100 is not one of" train --config "$tmp/subnet.ini"

wait
for ((i = 0; i < n; i++)); do judge "$tmp/case-$i"; done
echo "$((n - fails)) of $n bad inputs refused correctly"
[ "$fails" -eq 0 ]
