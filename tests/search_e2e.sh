#!/bin/sh
# supernest search end to end, on a tiny trained supernet:
#  - the front in pareto.csv is feasible and non-dominated within
#    archive.csv, and every string on it exports and evaluates (eval
#    --model, validation split) to the accuracy the search recorded;
#  - the same seed gives the same archive with 1, 2 and 3 evaluators
#    (objectives acc,params: nothing timed, so the archive is exact), and
#    with evaluator groups of P2, S2 and P2xS2 ranks; bad group layouts
#    are refused with one line;
#  - an evaluator that fails ends the job with its message on every rank;
#  - a search killed (SIGKILL) after its first iteration, resumed with
#    --resume, ends with the archive of an uninterrupted search;
#  - the latency objective and a constraint run, and the constraint holds;
#  - with latency predicted from a table the archive is exact again.
#   usage: search_e2e.sh SUPERNEST PYTHON3
set -u
sn=$1 py=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
failed=0
fail() { echo "FAIL $*"; failed=1; }

space="--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1"
if ! "$sn" train --steps 30 --batch-size 32 --patch 7 --train-subset 2000 --val-size 500 \
        $space --threads 1 --quiet --no-report --run-dir "$tmp/run" >"$tmp/train.out" 2>&1; then
    cat "$tmp/train.out"
    echo "FAIL training the supernet"
    exit 1
fi
search="--checkpoint $tmp/run --eval-size 200 --init 8 --per-iter 4 --iterations 2
        --population 16 --generations 5 --top 2 --threads 1"

run() { # name ranks args...
    name=$1 np=$2
    shift 2
    timeout 300 mpirun --oversubscribe -np "$np" "$sn" search $search --out "$tmp/$name" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"
}

# 1. one rank, deterministic objectives
if run s1 1 --objectives acc,params; then
    "$py" - "$tmp/s1" <<'PY' || fail "the front is not the non-dominated feasible set"
import csv, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/archive.csv")))
front = {r["subnet"] for r in csv.DictReader(open(f"{d}/pareto.csv"))}
pts = {r["subnet"]: (-float(r["val_acc"]), int(r["params"])) for r in rows}
def dominated(p):
    return any(all(a <= b for a, b in zip(q, p)) and q != p for q in pts.values())
want = {s for s, p in pts.items() if not dominated(p)}
ok = front == want and len(front) >= 1
print(f"  {len(rows)} evaluated, front of {len(front)}")
sys.exit(0 if ok else 1)
PY
    n=0
    tail -n +2 "$tmp/s1/pareto.csv" | while IFS=, read -r sub params macs acc rest; do
        "$sn" export --checkpoint "$tmp/run" --subnet "$sub" --output "$tmp/m.h5" >/dev/null &&
        got=$("$sn" eval --model "$tmp/m.h5" --split val --limit 200 --json --threads 1) || {
            echo "FAIL export/eval of $sub"; exit 1; }
        "$py" -c "import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if abs(j['accuracy']-float(sys.argv[2]))<1e-6 else 1)" \
            "$got" "$acc" || { echo "FAIL $sub: eval --model gives $got, search recorded $acc"; exit 1; }
    done || failed=1
    echo "ok   one rank: front non-dominated, front members export and evaluate as recorded"
else
    fail "search on one rank: status $?"
    cat "$tmp/s1.err"
fi

# 2. the same archive with 1, 2 and 3 evaluators
for np in 2 3 4; do
    if run "s$np" "$np" --objectives acc,params &&
        cmp -s "$tmp/s1/archive.csv" "$tmp/s$np/archive.csv"; then
        echo "ok   $((np - 1)) evaluator(s): the archive of one rank"
    else
        fail "$((np - 1)) evaluator(s): archive differs or search failed"
        diff "$tmp/s1/archive.csv" "$tmp/s$np/archive.csv" | head -5
        tail -3 "$tmp/s$np.err"
    fi
done

# 2b. evaluator groups: pipeline and sequence layouts of evaluation give the
#     same archive (accuracy exact; losses to float rounding)
same_archive() {
    "$py" - "$1" "$2" <<'PY'
import csv, sys
a = list(csv.DictReader(open(sys.argv[1])))
b = list(csv.DictReader(open(sys.argv[2])))
ok = len(a) == len(b) and all(
    x["subnet"] == y["subnet"] and x["iteration"] == y["iteration"] and x["val_acc"] == y["val_acc"]
    and abs(float(x["val_loss"]) - float(y["val_loss"])) <= 1e-5 * abs(float(x["val_loss"]))
    for x, y in zip(a, b))
sys.exit(0 if ok else 1)
PY
}
for layout in "5 --pp 2" "5 --pp 2 --sp 2" "3 --sp 2"; do
    set -- $layout
    np=$1
    shift
    name="g$np$(echo "$*" | tr -d ' -')"
    if run "$name" "$np" --objectives acc,params "$@" &&
        same_archive "$tmp/s1/archive.csv" "$tmp/$name/archive.csv"; then
        echo "ok   evaluator groups $*: the archive of one rank"
    else
        fail "evaluator groups $*: archive differs or search failed"
        tail -3 "$tmp/$name.err"
    fi
done
for bad in "4 --pp 2 --sp 2|do not split into evaluator groups" "6 --pp 5|at most 4 pipeline stages" \
           "4 --sp 3|not divisible by --sp 3"; do
    args=${bad%%|*} want=${bad#*|}
    set -- $args
    np=$1
    shift
    timeout 60 mpirun --oversubscribe -np "$np" "$sn" search $search --out "$tmp/refused" "$@" \
        >/dev/null 2>"$tmp/refused.err"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c '^supernest search: ' "$tmp/refused.err")" -eq 1 ] &&
        grep -q -e "$want" "$tmp/refused.err"; then
        echo "ok   refused $args: $(grep '^supernest search: ' "$tmp/refused.err")"
    else
        fail "refused group layout $args: status $rc"
        cat "$tmp/refused.err"
    fi
done

# 3. an evaluator that fails ends the job with its message, on every rank
timeout 120 mpirun --oversubscribe -np 3 "$sn" search $search --objectives acc,params \
    --debug-fail-rank 2 --out "$tmp/inj" >"$tmp/inj.out" 2>"$tmp/inj.err"
rc=$?
lines=$(grep -c "^supernest search: " "$tmp/inj.err")
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$lines" -eq 1 ] &&
    grep -q "^supernest search: evaluator rank 2: injected failure" "$tmp/inj.err"; then
    echo "ok   a failing evaluator: $(grep '^supernest search: ' "$tmp/inj.err")"
else
    fail "a failing evaluator: status $rc, $lines message lines"
    cat "$tmp/inj.err"
fi
# ... and data missing everywhere ends it the same way
mkdir -p "$tmp/nodata"
timeout 120 mpirun --oversubscribe -np 3 "$sn" search $search --objectives acc,params \
    --data "$tmp/nodata" --out "$tmp/bad" >"$tmp/bad.out" 2>"$tmp/bad.err"
rc=$?
lines=$(grep -c "^supernest search: " "$tmp/bad.err")
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$lines" -eq 1 ] && grep -q "nodata" "$tmp/bad.err"; then
    echo "ok   no data: $(grep '^supernest search: ' "$tmp/bad.err")"
else
    fail "failing evaluators: status $rc, $lines message lines"
    cat "$tmp/bad.err"
fi

# 4. SIGKILL after the first iteration, then --resume: the archive of an
#    uninterrupted search of 8 iterations
run kref 1 --objectives acc,params --iterations 8 || fail "reference search: status $?"
mpirun --oversubscribe -np 2 "$sn" search $search --objectives acc,params --iterations 8 \
    --out "$tmp/k" >"$tmp/k.out" 2>&1 &
pid=$!
for _ in $(seq 3000); do
    grep -q '"iteration":1' "$tmp/k/search.jsonl" 2>/dev/null && break
    sleep 0.02
done
pkill -KILL -f "search.*$tmp/k" ; kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
grep -q '"iteration":8' "$tmp/k/search.jsonl" && fail "the search finished before the kill"
if run k 2 --objectives acc,params --iterations 8 --resume && grep -q "resuming" "$tmp/k.out" &&
    cmp -s "$tmp/kref/archive.csv" "$tmp/k/archive.csv"; then
    echo "ok   killed after iteration 1, resumed: the archive of an uninterrupted search"
else
    fail "resume after a kill"
    tail -3 "$tmp/k.out" "$tmp/k.err"
    diff "$tmp/kref/archive.csv" "$tmp/k/archive.csv" | head -5
fi
if run s1 1 --objectives acc,params; then
    fail "a second search into the same --out was not refused"
elif grep -q "use --resume\|with --resume" "$tmp/s1.err"; then
    echo "ok   refuses to overwrite a search without --resume"
else
    fail "overwrite refusal message"; cat "$tmp/s1.err"
fi

# 5. latency objective with a parameter constraint
if run lat 2 --objectives acc,latency --max-params 60000 --latency-reps 3; then
    "$py" - "$tmp/lat" <<'PY' || fail "latency search: the front breaks --max-params or has no latency"
import csv, sys
front = list(csv.DictReader(open(f"{sys.argv[1]}/pareto.csv")))
ok = front and all(int(r["params"]) <= 60000 and float(r["latency_ms"]) > 0 for r in front)
sys.exit(0 if ok else 1)
PY
    echo "ok   acc,latency with --max-params: $(grep -c . "$tmp/lat/pareto.csv") lines in pareto.csv"
else
    fail "latency search: status $?"
    cat "$tmp/lat.err"
fi
# 6. latency predicted from a table: deterministic, the same archive with 2 evaluators
if "$sn" latency-table --checkpoint "$tmp/run" --reps 3 --check 0 -o "$tmp/lat.h5" \
        >"$tmp/lt.out" 2>&1 &&
    run t1 1 --objectives acc,latency --latency-table "$tmp/lat.h5" &&
    run t3 3 --objectives acc,latency --latency-table "$tmp/lat.h5" &&
    cmp -s "$tmp/t1/archive.csv" "$tmp/t3/archive.csv"; then
    echo "ok   --latency-table: the same archive with 1 rank and 2 evaluators"
else
    fail "search with --latency-table"
    tail -3 "$tmp/lt.out" "$tmp/t1.err" "$tmp/t3.err"
fi
exit $failed
