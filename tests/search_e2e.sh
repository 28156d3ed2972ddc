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
#  - one evaluator rank SIGKILLed mid-search: the job ends, the same command
#    continues to the uninterrupted archive;
#  - a search killed (SIGKILL) after its first iteration, resumed with
#    --resume, ends with the archive of an uninterrupted search;
#  - a finished search run again rewrites its outputs; one with other
#    options into the same --out is refused with one line (status 2);
#  - a search stopped by SIGUSR1 (to mpirun, which forwards it to every
#    rank; to one evaluator; to a non-leader rank of an evaluator group;
#    raised during a chosen evaluation, mid iteration 0 or 1) exits 75 on
#    every rank within seconds with its state saved, and the same command
#    run again continues it to the archive of an uninterrupted search;
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
# 4c. one evaluator rank dies (SIGKILL) mid-search: the job ends within
#     seconds (no rank waits forever), and the same command continues to
#     the archive of an uninterrupted search
mpirun --oversubscribe -np 3 "$sn" search $search --objectives acc,params --iterations 8 \
    --out "$tmp/e" >"$tmp/e.out" 2>&1 &
pid=$!
for _ in $(seq 3000); do
    grep -q '"iteration":1' "$tmp/e/search.jsonl" 2>/dev/null && break
    sleep 0.02
done
victim=""
for p in $(pgrep -f -- "search.*$tmp/e"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=2 && victim=$p
done
[ -n "$victim" ] || fail "evaluator death: no rank 2 found"
kill -KILL $victim 2>/dev/null
ended=""
for _ in $(seq 600); do
    kill -0 $pid 2>/dev/null || { ended=1; break; }
    sleep 0.1
done
[ -n "$ended" ] || { fail "evaluator death: the job still runs 60 s after rank 2 died"; kill -KILL $pid; }
wait $pid 2>/dev/null
rc=$?
grep -q '"iteration":8' "$tmp/e/search.jsonl" && fail "evaluator death: the search finished before the kill"
if [ $rc -ne 0 ] && run e 3 --objectives acc,params --iterations 8 && grep -q "resuming" "$tmp/e.out" &&
    cmp -s "$tmp/kref/archive.csv" "$tmp/e/archive.csv"; then
    echo "ok   an evaluator SIGKILLed: the job ended (status $rc), the same command continued to the uninterrupted archive"
else
    fail "evaluator death and continuing (status $rc)"
    tail -3 "$tmp/e.out" "$tmp/e.err"
fi
# 4b. a finished search run again: its outputs rewritten, nothing evaluated
if run s1 1 --objectives acc,params && grep -q "is complete" "$tmp/s1.out" &&
    cmp -s "$tmp/s2/archive.csv" "$tmp/s1/archive.csv"; then
    echo "ok   a finished search run again: $(grep 'is complete' "$tmp/s1.out" | sed "s|$tmp/||")"
else
    fail "a finished search run again"; tail -3 "$tmp/s1.out" "$tmp/s1.err"
fi
# ... and one with other options is refused, naming the difference
for other in "--seed 2|--seed 1 (this command: --seed 2)" \
             "--per-iter 5|--per-iter 4 (this command: --per-iter 5)"; do
    args=${other%%|*} want=${other#*|}
    run s1 2 --objectives acc,params $args
    rc=$?
    if [ $rc -eq 2 ] && [ "$(grep -c '^supernest search: ' "$tmp/s1.err")" -eq 1 ] &&
        grep -qF "holds a search with $want: give another --out" "$tmp/s1.err"; then
        echo "ok   refused $args into a finished search's --out: status 2"
    else
        fail "another search ($args) into the same --out: status $rc"; cat "$tmp/s1.err"
    fi
done

# 4c. stopping on a signal, and continuing
sig="--objectives acc,params --iterations 40 --per-iter 2"
run sref 1 $sig || fail "reference search for the signal tests: status $?"
# start NAME NP ARGS...: the search $sig into $tmp/NAME in the background,
# ended after 120 s; $job is the pid of timeout, whose child is mpirun
start() {
    name=$1 np=$2
    shift 2
    timeout 120 mpirun --oversubscribe -np "$np" "$sn" search $search $sig --out "$tmp/$name" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    job=$!
}
# start_ranks NAME NP ARGS...: the same, each rank appending "RANK STATUS"
# to $tmp/NAME.rc (the wrapping shell ignores SIGTERM from mpirun)
start_ranks() {
    name=$1 np=$2
    shift 2
    rm -f "$tmp/$name.rc"
    timeout 120 mpirun --oversubscribe -np "$np" sh -c "trap '' TERM; \"\$0\" \"\$@\";
        echo \"\$OMPI_COMM_WORLD_RANK \$?\" >>'$tmp/$name.rc'" "$sn" search $search $sig \
        --out "$tmp/$name" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    job=$!
}
# after_iteration NAME K: waits (up to 60 s) until NAME has logged iteration K
after_iteration() {
    for _ in $(seq 3000); do
        grep -q "\"iteration\":$2," "$tmp/$1/search.jsonl" 2>/dev/null && return 0
        sleep 0.02
    done
    return 1
}
# rank_pid NAME R: the pid of world rank R of the search into $tmp/NAME
rank_pid() {
    exe=$(readlink -f "$sn")
    for p in $(pgrep -f -- "--out $tmp/$1( |\$)"); do
        [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] &&
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" &&
            echo "$p"
    done
}
# finish: waits for $job; rc gets its status (124: it hung); fails if the
# search finished before the signal
finish() {
    wait "$job"
    rc=$?
    if grep -q "no new sub-networks left\|^wrote " "$tmp/$name.out"; then
        fail "$name: the search finished before the signal"
    fi
}
# continued NAME WHAT NP ARGS...: the stop line and the state are there; the
# same command run again continues to the archive of an uninterrupted search
continued() {
    name=$1 what=$2 np=$3
    shift 3
    if [ -f "$tmp/$name/search.h5" ] && grep -q "^supernest search: stopped by SIGUSR1.* after [0-9]* evaluations (iteration [0-9]*); state saved in $tmp/$name/search.h5; run the same command to continue\$" \
            "$tmp/$name.err"; then
        echo "ok   $what: $(grep '^supernest search: stopped' "$tmp/$name.err" | cut -d';' -f1)"
    else
        fail "$what: no stop line or no state"; cat "$tmp/$name.err"
    fi
    if run "$name" "$np" $sig "$@" &&
        grep -q "^resuming search from $tmp/$name/search.h5 at iteration" "$tmp/$name.out" &&
        same_archive "$tmp/sref/archive.csv" "$tmp/$name/archive.csv"; then
        echo "ok   $what, run again: $(grep '^resuming' "$tmp/$name.out" | sed "s|$tmp/||");" \
             "the archive of an uninterrupted search"
    else
        fail "$what: continuing"; tail -3 "$tmp/$name.out" "$tmp/$name.err"
        diff "$tmp/sref/archive.csv" "$tmp/$name/archive.csv" | head -5
    fi
}
# (a) SIGUSR1 to mpirun, which forwards it to every rank
start sa 3
after_iteration sa 1 || fail "sa: no iteration 1"
t0=$(date +%s)
kill -USR1 "$(pgrep -P "$job")"
finish
if [ $rc -eq 75 ] && [ $(($(date +%s) - t0)) -le 20 ] && ! grep -q "exited on signal\|[Kk]illed" "$tmp/sa.err"; then
    echo "ok   SIGUSR1 to mpirun: status 75 after $(($(date +%s) - t0)) s"
else
    fail "SIGUSR1 to mpirun: status $rc"; cat "$tmp/sa.err"
fi
continued sa "SIGUSR1 to mpirun" 3
# (b) SIGUSR1 to one evaluator only; and to the second rank of an evaluator
#     group (--sp 2: ranks 1 and 2), which waits on its leader, not on rank 0
for case in "sb|one evaluator (rank 2)|" "sg|a non-leader group rank (rank 2 of --sp 2)|--sp 2"; do
    name=${case%%|*} layout=${case##*|} what=${case#*|}
    what=${what%|*}
    start_ranks "$name" 3 $layout
    after_iteration "$name" 1 || fail "$name: no iteration 1"
    pid=$(rank_pid "$name" 2)
    t0=$(date +%s)
    [ -n "$pid" ] && kill -USR1 $pid
    finish
    codes=$(sort "$tmp/$name.rc" 2>/dev/null | tr '\n' ' ')
    if [ -n "$pid" ] && [ $rc -ne 124 ] && [ "$codes" = "0 75 1 75 2 75 " ] &&
        [ $(($(date +%s) - t0)) -le 20 ] && grep -q "stopped by SIGUSR1 on rank 2 " "$tmp/$name.err"; then
        echo "ok   SIGUSR1 to $what: every rank exits 75 after $(($(date +%s) - t0)) s"
    else
        fail "SIGUSR1 to $what (pid $pid): status $rc, ranks: $codes"; cat "$tmp/$name.err"
    fi
    continued "$name" "SIGUSR1 to $what" 3 $layout
done
# (c) a signal raised during a chosen evaluation (--debug-stop-after):
#     mid iteration 1 (the 10th of 8 + 4, on the one evaluator), and mid
#     iteration 0 (the 3rd of 8, one rank)
for case in "2 10 1" "1 3 0"; do
    set -- $case
    run "sd$1" "$1" --objectives acc,params --debug-stop-after "$2"
    rc=$?
    if [ $rc -eq 75 ] && grep -q "after $2 evaluations (iteration $3); state saved" "$tmp/sd$1.err" &&
        run "sd$1" "$1" --objectives acc,params &&
        grep -q "^resuming search from $tmp/sd$1/search.h5 at iteration $3 ($2 evaluated)" \
            "$tmp/sd$1.out" && cmp -s "$tmp/s2/archive.csv" "$tmp/sd$1/archive.csv"; then
        echo "ok   stopped during evaluation $2 (iteration $3) on $1 rank(s), run again: the" \
             "archive of an uninterrupted search"
    else
        fail "stopped during evaluation $2 on $1 rank(s): status $rc"
        tail -3 "$tmp/sd$1.out" "$tmp/sd$1.err"
    fi
done

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
