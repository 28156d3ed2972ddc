#!/bin/bash
# scripts/quality.sh end to end, at a tiny budget (3 steps of 64 images
# for every training, 200 test images):
#  - two schedule entries (one with options) and the five architectures
#    alone are trained; quality.tsv has a row per architecture, MACs
#    increasing, accuracies what `supernest eval` gives for that run
#    and sub-network; quality.md has the table with the differences and
#    each column's worst one,
#    the compute of every training and the commands; quality.png is a PNG;
#  - run again, nothing is trained again, only the evaluation whose
#    checkpoint changed is redone, and the table is the same;
#  - bad arguments are refused with one line and a non-zero exit, and
#    a training that fails ends the report with its one-line error;
#  - --archs trains and tabulates other architectures (here two, of a
#    smaller space set by the train options).
#   usage: quality_test.sh SUPERNEST
set -u
sn=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
q=$here/../scripts/quality.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL $*"; failed=1; }

out=$tmp/q
args=(--supernest "$sn" --epochs 1 --out "$out" --test-limit 200
      --schedules "sortednet deps:deps-delay=0.5,deps-ramp=0.5"
      -- --train-subset 192 --batch-size 64 --val-size 100 --threads 1)
if ! "$q" "${args[@]}" >"$tmp/first.out" 2>&1; then
    cat "$tmp/first.out"
    echo "FAIL the report did not run"
    exit 1
fi

# the table: header, five architectures, MACs increasing, accuracies in [0, 1]
tsv=$out/quality.tsv
if [ "$(head -1 "$tsv")" != "$(printf 'arch\tsubnet\tmacs\tparams\talone\tsortednet\tdeps:deps-delay=0.5,deps-ramp=0.5')" ]; then
    fail "quality.tsv header: $(head -1 "$tsv")"
fi
awk -F'\t' 'NR > 1 {
    if (NF != 7 || $1 != NR - 1 || $3 <= prev) exit 1
    for (k = 5; k <= 7; k++) if ($k !~ /^[0-9.]+$/ || $k > 1) exit 1
    prev = $3; n++
} END { exit n == 5 ? 0 : 1 }' "$tsv" || { fail "quality.tsv rows:"; cat "$tsv"; }

# a cell of each column is what supernest eval gives on the first 200 test
# images for that run and sub-network: #1 alone, #3 sortednet, #5 deps
check_cell() { # row column run
    local subnet acc j want
    subnet=$(awk -F'\t' -v r="$1" 'NR == r + 1 { print $2 }' "$tsv")
    acc=$(awk -F'\t' -v r="$1" -v c="$2" 'NR == r + 1 { print $c }' "$tsv")
    j=$("$sn" eval --checkpoint "$out/$3" --subnet "$subnet" --split test --limit 200 --json 2>&1)
    want=$(sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p' <<<"$j")
    [ -n "$want" ] && [ "$want" = "$acc" ] || fail "$3 $subnet: table $acc, eval $want ($j)"
    grep -q '"images":200,' <<<"$j" || fail "$3 $subnet: eval of other than 200 images: $j"
}
check_cell 1 5 alone-1
check_cell 3 6 sortednet
check_cell 5 7 deps_deps-delay-0.5_deps-ramp-0.5

md=$out/quality.md
grep -q "test accuracy (200 images)" "$md" || fail "quality.md does not say 200 test images"
[ "$(grep -c '^| [1-5] | `e' "$md")" -eq 5 ] || fail "quality.md: not five table rows"
grep -q '^| 5 | `e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768` | 135.7 | 2.68M | [0-9.]* | [0-9.]* ([-+][0-9.]*) | [0-9.]* ([-+][0-9.]*) |$' "$md" ||
    fail "quality.md: the largest's row: $(grep '^| 5 |' "$md")"
# the summary row: per column the worst difference to alone and where,
# and the line naming the columns with every architecture within 0.5 points
want=$(awk -F'\t' 'NR > 1 { for (k = 6; k <= 7; k++) { d = ($k - $5) * 100
           if (NR == 2 || d < w[k]) { w[k] = d; a[k] = $1 } } }
       END { printf "| | worst difference to *alone* | | | | %+.2f (#%s) | %+.2f (#%s) |\n", w[6], a[6], w[7], a[7]
             name[6] = "`sortednet`"; name[7] = "`deps:deps-delay=0.5,deps-ramp=0.5`"
             for (k = 6; k <= 7; k++) if (sprintf("%.2f", w[k]) + 0 >= -0.5) m = m (m ? ", " : " ") name[k]
             printf "Every architecture within 0.5 points of its twin:%s", m ? m "." : " none of the schedules." }' "$tsv")
while read -r l; do
    grep -qxF -- "$l" "$md" || fail "quality.md: no line '$l' (has: $(grep -e 'worst difference' -e '^Every architecture' "$md"))"
done <<<"$want"
for t in "supernet, sortednet" "supernet, deps:deps-delay=0.5,deps-ramp=0.5" "alone, #1" "alone, #5" \
         "\*\*the five alone\*\*"; do
    b='\(\*\*\)\?'   # the total's row is bold
    grep -q "^| $t | $b[0-9]* min [0-9][0-9] s$b | $b[0-9.]*$b |" "$md" || fail "quality.md: no compute row '$t'"
done
grep -qF -- "supernest train --epochs 1 --run-dir $out/deps_deps-delay-0.5_deps-ramp-0.5 --no-report --log-every 100 --schedule deps --deps-delay 0.5 --deps-ramp 0.5 --train-subset 192" "$md" ||
    fail "quality.md: the deps entry's command"
grep -qF -- "--test-limit 200 -- --train-subset 192" "$md" || fail "quality.md: the report's own command"
[ "$(head -c 4 "$out/quality.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "quality.png is not a PNG"
for r in sortednet deps_deps-delay-0.5_deps-ramp-0.5 alone-1 alone-5; do
    grep -q '"step":3,' "$out/$r/metrics.jsonl" || fail "$r did not train 3 steps"
done

grep -q "^quality.sh: 15 evaluations, 0 of them kept from an earlier run$" "$tmp/first.out" ||
    fail "first run: $(grep evaluations "$tmp/first.out")"

# run again: continues (nothing trained again), the same table; only the
# evaluation whose checkpoint changed (alone-1's, touched) is redone
cp "$tsv" "$tmp/first.tsv"
cp "$out/alone-5/metrics.jsonl" "$tmp/metrics5"
touch -d '2001-01-01' "$out/alone-1/checkpoints/$(cat "$out/alone-1/checkpoints/latest")"
if ! "$q" "${args[@]}" >"$tmp/second.out" 2>&1; then
    fail "the report run again:"; cat "$tmp/second.out"
fi
cmp -s "$tmp/first.tsv" "$tsv" || fail "the table changed when run again"
grep -q "^quality.sh: 15 evaluations, 14 of them kept from an earlier run$" "$tmp/second.out" ||
    fail "run again: $(grep evaluations "$tmp/second.out")"
[ "$(wc -l <"$out/alone-1/quality-evals.tsv")" -eq 2 ] && [ "$(wc -l <"$out/sortednet/quality-evals.tsv")" -eq 5 ] ||
    fail "evaluations kept: alone-1 $(wc -l <"$out/alone-1/quality-evals.tsv") lines (want 2), sortednet $(wc -l <"$out/sortednet/quality-evals.tsv") (want 5)"
cmp -s "$tmp/metrics5" "$out/alone-5/metrics.jsonl" || fail "alone-5 trained again"
grep -q "^trained 0 steps" "$out/alone-5.out" || fail "alone-5's second run: $(tail -2 "$out/alone-5.out")"

# bad arguments: one line on stderr, non-zero exit
refuse() { # expected-text args...
    local want=$1
    shift
    "$q" --supernest "$sn" --out "$tmp/bad" "$@" >/dev/null 2>"$tmp/bad.err"
    local rc=$?
    if [ "$rc" -eq 0 ] || [ "$(wc -l <"$tmp/bad.err")" -ne 1 ] || ! grep -qF -- "$want" "$tmp/bad.err"; then
        fail "quality.sh $*: status $rc, error output:"
        cat "$tmp/bad.err"
    fi
}
refuse "--epochs '0'" --epochs 0
refuse "--test-limit 'x'" --test-limit x
refuse "--ranks '-1'" --ranks -1
refuse "'deps:' is not NAME" --schedules "deps:"
refuse "would share its run directory" --schedules "deps deps"
refuse "not built" --supernest "$tmp/none"
refuse "usage:" --frobnicate
refuse "--schedules nosuch: supernest train: --schedule 'nosuch'" --schedules nosuch -- --train-subset 64 --batch-size 64 --val-size 100
refuse "--archs: expected one or more" --archs " "
refuse "--archs: 'e64-max' is not a sub-network string" --archs "e64-d1.1-h1.1-f96.96 e64-max"
# an architecture outside the space, refused before the schedule's training
refuse "--archs e192-d1.1-h1.1-f96.96: supernest train: sub-network 'e192-d1.1-h1.1-f96.96': embed 192 is not one of 64" \
    --schedules sortednet --archs "e64-d1.1-h1.1-f96.96 e192-d1.1-h1.1-f96.96" \
    -- --train-subset 64 --batch-size 64 --val-size 100 --embed-choices 64
refuse "--schedules deps:deps-delay=2: supernest train: --deps-delay" --schedules "sandwich deps:deps-delay=2" \
    -- --train-subset 64 --batch-size 64 --val-size 100
[ -z "$(ls "$tmp/bad" 2>/dev/null)" ] || fail "a refused run left $(ls "$tmp/bad")"

# --archs: other architectures, of a space set by the train options
out2=$tmp/q2
small=(--embed-choices 64,96 --heads-choices 1 --mlp-choices 96,192 --depths 1,1)
if "$q" --supernest "$sn" --epochs 1 --out "$out2" --test-limit 100 --schedules "sandwich:no-distill" \
        --archs "e64-d1.1-h1.1-f96.96 e96-d1.1-h1.1-f192.192" \
        -- --train-subset 128 --batch-size 64 --val-size 100 --threads 1 "${small[@]}" >"$tmp/archs.out" 2>&1; then
    awk -F'\t' 'NR > 1 { n++ } END { exit n == 2 ? 0 : 1 }' "$out2/quality.tsv" ||
        { fail "--archs: quality.tsv rows:"; cat "$out2/quality.tsv"; }
    grep -q '^| 2 | `e96-d1.1-h1.1-f192.192` |' "$out2/quality.md" || fail "--archs: no row for the second architecture"
    grep -q '^| \*\*the two alone\*\* |' "$out2/quality.md" || fail "--archs: no compute row for the two alone"
    grep -qF -- '--archs "e64-d1.1-h1.1-f96.96 e96-d1.1-h1.1-f192.192" -- --train-subset 128' "$out2/quality.md" ||
        fail "--archs: the report's own command"
    [ ! -e "$out2/alone-3" ] || fail "--archs: a third architecture was trained"
else
    fail "the report with --archs did not run:"; cat "$tmp/archs.out"
fi

[ "$failed" -eq 0 ] && echo "ok   quality.sh: the table, the compute, the commands, a continued run (one evaluation redone), other architectures (--archs) and 12 refusals"
exit $failed
