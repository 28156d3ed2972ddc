#!/bin/sh
# Training curves of a run directory, with gnuplot (no Python):
#   OUT_DIR/loss.png  the loss of each member (max, min, rand 1..k; or fixed)
#                     against the step; a step of the full network alone
#                     (progressive, deps) is drawn as max, and a member a
#                     step lacks as a gap
#   OUT_DIR/lr.png    learning rate, gradient norm and throughput
#                     (images or tokens per second) against the step
# It reads RUN_DIR/metrics.jsonl (README: The run directory); steps logged
# twice (a run resumed from an earlier checkpoint) are drawn once.
#   usage: scripts/plot-train.sh RUN_DIR [OUT_DIR]   (OUT_DIR: RUN_DIR/plots)
set -eu
me="plot-train.sh"
die() {
    echo "$me: $*" >&2
    exit 1
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $me RUN_DIR [OUT_DIR]" >&2
    exit 2
fi
run=$1
out=${2:-$run/plots}
metrics=$run/metrics.jsonl
[ -d "$run" ] || die "$run: no such run directory"
[ -f "$metrics" ] || die "$metrics: no such file (was the run started with --run-dir?)"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (Debian: apt-get install gnuplot-nox)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# metrics.jsonl -> $tmp/train.dat, one row per step, in columns
#   step epoch lr grad_norm per_s gflops elapsed_s <loss of each role>
# and $tmp/head: the rate's name, then the roles' names (every role of any
# record, in the order they first appear; a schedule's members change).
awk -v head="$tmp/head" '
function num(key,   re, n) {
    re = "\"" key "\":[^,}]+"
    if (!match($0, re)) return "NaN"
    n = length(key) + 3
    return substr($0, RSTART + n, RLENGTH - n)
}
/"step":/ && /"loss":\{/ {
    if (!match($0, /"loss":\{[^}]*\}/)) next # a line still being written
    loss = substr($0, RSTART + 8, RLENGTH - 9)
    delete v
    if (match(loss, /"rand":\[[-+.0-9eEnaifNI,]*\]/)) {
        k = split(substr(loss, RSTART + 8, RLENGTH - 9), r, ",")
        loss = substr(loss, 1, RSTART - 1) substr(loss, RSTART + RLENGTH)
    } else
        k = 0
    while (match(loss, /"[a-z_]+":[^,]+/)) {
        pair = substr(loss, RSTART, RLENGTH)
        loss = substr(loss, RSTART + RLENGTH)
        c = index(pair, ":")
        name = substr(pair, 2, c - 3)
        if (name == "full") name = "max" # the largest, trained alone
        keep(name, substr(pair, c + 1))
    }
    for (i = 1; i <= k; i++) keep("rand" i, r[i])
    if (!unit) unit = index($0, "\"tokens_per_s\":") ? "tokens" : "images"
    step = num("step")
    line = step " " num("epoch") " " num("lr") " " num("grad_norm") " " num(unit "_per_s") \
           " " num("gflops") " " num("elapsed_s")
    if (!(step in base)) steps[++nsteps] = step
    base[step] = line
    for (i = 1; i <= nroles; i++) loss_of[step, role[i]] = (role[i] in v) ? v[role[i]] : "NaN"
}
# A loss of this record; a role not seen before gets the next column.
function keep(name, x) {
    v[name] = x
    if (!(name in known)) {
        known[name] = 1
        role[++nroles] = name
    }
}
END {
    if (!nsteps) exit
    printf "%s", unit > head
    for (i = 1; i <= nroles; i++) printf " %s", role[i] > head
    printf "\n" > head
    close(head)
    for (j = 1; j <= nsteps; j++) {
        line = base[steps[j]]
        for (i = 1; i <= nroles; i++)
            line = line " " (((steps[j], role[i]) in loss_of) ? loss_of[steps[j], role[i]] : "NaN")
        print line
    }
}
' "$metrics" | sort -n -k1,1 >"$tmp/train.dat"
rows=$(wc -l <"$tmp/train.dat")
[ "$rows" -gt 0 ] || die "$metrics: no step records"
read -r unit roles <"$tmp/head"

if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
    term="pngcairo noenhanced font ',10'"
else
    term="png noenhanced"
fi
style=lines
[ "$rows" -gt 60 ] || style=linespoints
title=$(basename "$(cd "$run" && pwd)" | sed "s/'/''/g")

col=8
plot=""
for r in $roles; do
    case $r in
        rand*) name="rand ${r#rand}" ;;
        *) name=$r ;;
    esac
    plot="$plot${plot:+, }'train.dat' using 1:$col with $style lw 1.5 pt 7 ps 0.5 title '$name'"
    col=$((col + 1))
done

cat >"$tmp/plot.gp" <<EOF
set terminal $term size 900,600
set grid
set key top right
set xlabel 'step'
set output 'loss.png'
set title 'supernest train $title: loss of each sub-network'
set ylabel 'loss'
plot $plot
set terminal $term size 900,900
set output 'lr.png'
set multiplot layout 3,1 title 'supernest train $title'
unset title
set xlabel ''
set ylabel 'learning rate'
set format y '%.1e'
plot 'train.dat' using 1:3 with $style lw 1.5 pt 7 ps 0.5 notitle
set format y '%g'
set ylabel 'gradient norm'
plot 'train.dat' using 1:4 with $style lw 1.5 pt 7 ps 0.5 notitle
set xlabel 'step'
set ylabel '$unit / s'
plot 'train.dat' using 1:5 with $style lw 1.5 pt 7 ps 0.5 notitle
unset multiplot
EOF
(cd "$tmp" && gnuplot plot.gp) >"$tmp/gnuplot.err" 2>&1 ||
    die "gnuplot failed: $(grep -v '^ *$' "$tmp/gnuplot.err" | tail -1)"
mkdir -p "$out" 2>/dev/null || die "$out: cannot create the directory"
cp "$tmp/loss.png" "$tmp/lr.png" "$out/" 2>/dev/null || die "$out: cannot write the plots"
s=s
[ "$rows" -ne 1 ] || s=
echo "wrote $out/loss.png and $out/lr.png ($rows logged step$s): $roles"
