#!/bin/sh
# scripts/plot-train.sh and scripts/plot-search.sh on the files supernest
# writes: a tiny supernet run (roles max, min, rand 1..2), a fixed-subnet
# run (role fixed), a progressive run (roles that change) and a tiny search (a --max-params constraint, so some
# sub-networks break it) each give PNG files; bad inputs (missing or empty
# files, unknown columns, no gnuplot) end with status 1 and one line on
# stderr, a bad command line with status 2.
#   usage: plots_test.sh SUPERNEST SCRIPTS_DIR
set -u
sn=$1
scripts=$2
pt=$scripts/plot-train.sh
ps=$scripts/plot-search.sh
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "FAIL: gnuplot not found (scripts/setup.sh installs gnuplot-nox)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# is_png FILE: FILE starts with the PNG signature.
is_png() {
    [ -f "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}

# expect STATUS KEYWORD COMMAND...: status STATUS and exactly one line on
# stderr, containing KEYWORD.
expect() {
    want=$1 key=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$got" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -q -- "$key" "$tmp/err"; then
        fail "$*: status $got (want $want), stderr ($lines lines, want 1 with '$key'):"
        cat "$tmp/err"
    else
        echo "ok   status $got: $(cat "$tmp/err")"
    fi
}

space="--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1"
train() { # RUN_DIR STEPS extra...
    dir=$1 steps=$2
    shift 2
    # shellcheck disable=SC2086 # $space is a list of options
    "$sn" train --steps "$steps" --log-every 2 --train-subset 256 --batch-size 32 --val-size 500 \
        $space --threads 1 --quiet --no-report --run-dir "$dir" "$@" >"$tmp/train.out" 2>&1 || {
        cat "$tmp/train.out"
        echo "FAIL: training $dir"
        exit 1
    }
}

# ---- plot-train.sh -----------------------------------------------------------
train "$tmp/run" 6
train "$tmp/fixed" 4 --fixed-subnet min
if "$pt" "$tmp/run" >"$tmp/out" 2>"$tmp/err" &&
    is_png "$tmp/run/plots/loss.png" && is_png "$tmp/run/plots/lr.png" &&
    grep -q '(3 logged steps)' "$tmp/out" && [ ! -s "$tmp/err" ]; then
    echo "ok   plot-train.sh on a supernet run: $(cat "$tmp/out")"
else
    fail "plot-train.sh on a supernet run"
    cat "$tmp/out" "$tmp/err"
fi
if "$pt" "$tmp/fixed" "$tmp/fixed-plots" >"$tmp/out" 2>"$tmp/err" &&
    is_png "$tmp/fixed-plots/loss.png" && is_png "$tmp/fixed-plots/lr.png" &&
    grep -q '(2 logged steps)' "$tmp/out"; then
    echo "ok   plot-train.sh on a fixed-subnet run, to another directory"
else
    fail "plot-train.sh on a fixed-subnet run"
    cat "$tmp/out" "$tmp/err"
fi
# a schedule whose members change: the full network alone (drawn as max),
# then max, min and 2 random; every role gets its curve
train "$tmp/prog" 4 --schedule progressive --log-every 1
if "$pt" "$tmp/prog" >"$tmp/out" 2>"$tmp/err" && is_png "$tmp/prog/plots/loss.png" &&
    grep -q '(4 logged steps): max min rand1 rand2$' "$tmp/out"; then
    echo "ok   plot-train.sh on a progressive run: $(cat "$tmp/out")"
else
    fail "plot-train.sh on a progressive run"
    cat "$tmp/out" "$tmp/err"
fi
# a run resumed from an earlier checkpoint logs steps again: drawn once
mkdir "$tmp/twice"
cat "$tmp/run/metrics.jsonl" "$tmp/run/metrics.jsonl" >"$tmp/twice/metrics.jsonl"
if "$pt" "$tmp/twice" >"$tmp/out" 2>&1 && grep -q '(3 logged steps)' "$tmp/out"; then
    echo "ok   plot-train.sh: steps logged twice are drawn once"
else
    fail "plot-train.sh on steps logged twice: $(cat "$tmp/out")"
fi

mkdir "$tmp/empty"
expect 1 "no such run directory" "$pt" "$tmp/nothing"
expect 1 "metrics.jsonl: no such file" "$pt" "$tmp/empty"
: >"$tmp/empty/metrics.jsonl"
expect 1 "no step records" "$pt" "$tmp/empty"
echo "not json" >"$tmp/empty/metrics.jsonl"
expect 1 "no step records" "$pt" "$tmp/empty"
expect 1 "gnuplot not found" env PATH=/nonexistent "$pt" "$tmp/run"
expect 2 "usage" "$pt"
expect 2 "usage" "$pt" a b c

# ---- plot-search.sh ----------------------------------------------------------
"$sn" search --checkpoint "$tmp/run" --eval-size 100 --init 6 --per-iter 2 --iterations 1 \
    --population 8 --generations 2 --top 1 --threads 1 --latency-reps 3 --max-params 60000 \
    --out "$tmp/search" >"$tmp/search.out" 2>&1 || {
    cat "$tmp/search.out"
    echo "FAIL: the search"
    exit 1
}
if ! awk -F, 'NR > 1 && $3 == 0 { n++ } END { exit !n }' "$tmp/search/archive.csv"; then
    fail "the search has no sub-network breaking --max-params: the test covers less than it says"
fi
rm -f "$tmp/search/front.png"
if "$ps" "$tmp/search" >"$tmp/out" 2>"$tmp/err" &&
    is_png "$tmp/search/front.png" && grep -q 'x val_acc, y latency_ms' "$tmp/out" &&
    [ ! -s "$tmp/err" ]; then
    echo "ok   plot-search.sh on a search: $(cat "$tmp/out")"
else
    fail "plot-search.sh on a search"
    cat "$tmp/out" "$tmp/err"
fi
if "$ps" -x params -y val_acc "$tmp/search" "$tmp/params.png" >"$tmp/out" 2>&1 &&
    is_png "$tmp/params.png" && grep -q 'x params, y val_acc' "$tmp/out"; then
    echo "ok   plot-search.sh -x params -y val_acc"
else
    fail "plot-search.sh -x params -y val_acc: $(cat "$tmp/out")"
fi
# without front.gp: val_acc and latency_ms
mkdir "$tmp/csv-only"
cp "$tmp/search/archive.csv" "$tmp/search/pareto.csv" "$tmp/csv-only/"
if "$ps" "$tmp/csv-only" >"$tmp/out" 2>&1 && is_png "$tmp/csv-only/front.png"; then
    echo "ok   plot-search.sh without front.gp"
else
    fail "plot-search.sh without front.gp: $(cat "$tmp/out")"
fi

expect 1 "no such search directory" "$ps" "$tmp/nothing"
expect 1 "archive.csv: no such file" "$ps" "$tmp/empty"
expect 1 "has no column 'speed'" "$ps" -x speed "$tmp/search" "$tmp/x.png"
sed '2,$s/,[^,]*$/,nan/' "$tmp/search/archive.csv" >"$tmp/csv-only/archive.csv"
expect 1 "no sub-network has both" "$ps" "$tmp/csv-only" "$tmp/x.png"
head -1 "$tmp/search/archive.csv" >"$tmp/csv-only/archive.csv"
expect 1 "no sub-networks" "$ps" "$tmp/csv-only" "$tmp/x.png"
expect 1 "gnuplot not found" env PATH=/nonexistent "$ps" "$tmp/search"
expect 2 "usage" "$ps" -q "$tmp/search"
expect 2 "usage" "$ps"

if [ "$fails" -gt 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "plots: all checks passed"
