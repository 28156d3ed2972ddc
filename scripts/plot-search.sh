#!/bin/sh
# The front of a search, with gnuplot (no Python): every evaluated
# sub-network of SEARCH_DIR/archive.csv as a grey point (open circles:
# those that break a constraint), the Pareto front of SEARCH_DIR/pareto.csv
# as a red line.  Axes: the search's first two objectives, read from
# SEARCH_DIR/front.gp (first on x, as `supernest search` draws them; without
# front.gp, val_acc and latency_ms), or any two columns of archive.csv
# given with -x and -y (params, macs, val_acc, val_loss or val_bpb,
# latency_ms).
#   usage: scripts/plot-search.sh [-x COLUMN] [-y COLUMN] SEARCH_DIR [OUT]
#   (OUT: SEARCH_DIR/front.png)
set -eu
me="plot-search.sh"
die() {
    echo "$me: $*" >&2
    exit 1
}
usage() {
    echo "usage: $me [-x COLUMN] [-y COLUMN] SEARCH_DIR [OUT]" >&2
    exit 2
}
xcol="" ycol=""
while getopts :x:y: opt; do
    case $opt in
        x) xcol=$OPTARG ;;
        y) ycol=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
dir=$1
out=${2:-$dir/front.png}
[ -d "$dir" ] || die "$dir: no such search directory"
for f in archive.csv pareto.csv; do
    [ -f "$dir/$f" ] || die "$dir/$f: no such file (written by supernest search --out $dir at its end)"
done
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (Debian: apt-get install gnuplot-nox)"
if [ -f "$dir/front.gp" ]; then
    [ -n "$xcol" ] || xcol=$(sed -n "s/^set xlabel '\(.*\)'\$/\1/p" "$dir/front.gp")
    [ -n "$ycol" ] || ycol=$(sed -n "s/^set ylabel '\(.*\)'\$/\1/p" "$dir/front.gp")
fi
xcol=${xcol:-val_acc}
ycol=${ycol:-latency_ms}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CSV (a header naming the columns) -> "x y [class]" rows; rows whose x or
# y is not a number (nan: not measured) are left out.
table() { # FILE CLASSCOLUMN
    awk -F, -v xn="$xcol" -v yn="$ycol" -v cn="$2" -v file="$1" '
    NR == 1 {
        for (i = 1; i <= NF; i++) col[$i] = i
        names = $2
        for (i = 3; i <= NF; i++) names = names ", " $i
        for (k = 1; k <= 2; k++) {
            n = k == 1 ? xn : yn
            if (!(n in col)) {
                print file " has no column \047" n "\047 (columns: " names ")" > "/dev/stderr"
                exit 3
            }
        }
        x = col[xn]; y = col[yn]; c = cn in col ? col[cn] : 0
        next
    }
    $x ~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/ && $y ~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/ {
        print $x, $y, (c ? $c : 1)
    }' "$1"
}
table "$dir/archive.csv" feasible >"$tmp/all.dat" 2>"$tmp/err" || die "$(cat "$tmp/err")"
table "$dir/pareto.csv" "" >"$tmp/front.dat" 2>"$tmp/err" || die "$(cat "$tmp/err")"
n=$(($(wc -l <"$dir/archive.csv") - 1))
[ "$n" -gt 0 ] || die "$dir/archive.csv: no sub-networks"
[ -s "$tmp/all.dat" ] ||
    die "$dir/archive.csv: no sub-network has both $xcol and $ycol (choose others with -x, -y)"
awk '$3 == 1' "$tmp/all.dat" >"$tmp/feasible.dat"
awk '$3 != 1' "$tmp/all.dat" >"$tmp/infeasible.dat"
sort -g -k1,1 -k2,2 "$tmp/front.dat" >"$tmp/front-sorted.dat"
nf=$(wc -l <"$tmp/front-sorted.dat")

if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
    term="pngcairo noenhanced font ',10'"
else
    term="png noenhanced"
fi
plot=""
[ ! -s "$tmp/feasible.dat" ] ||
    plot="'feasible.dat' using 1:2 with points pt 7 ps 0.8 lc rgb '#9a9a9a' title 'evaluated'"
[ ! -s "$tmp/infeasible.dat" ] ||
    plot="$plot${plot:+, }'infeasible.dat' using 1:2 with points pt 6 ps 0.8 lc rgb '#9a9a9a' title 'breaks a constraint'"
[ "$nf" -eq 0 ] ||
    plot="$plot${plot:+, }'front-sorted.dat' using 1:2 with linespoints pt 7 lw 1.5 lc rgb '#c0392b' title 'Pareto front'"
cat >"$tmp/plot.gp" <<EOF
set terminal $term size 900,650
set output 'front.png'
set key outside bottom center horizontal
set grid
set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05
set xlabel '$xcol'
set ylabel '$ycol'
set title 'supernest search: $n sub-networks evaluated, $nf on the front'
plot $plot
EOF
(cd "$tmp" && gnuplot plot.gp) >"$tmp/gnuplot.err" 2>&1 ||
    die "gnuplot failed: $(grep -v '^ *$' "$tmp/gnuplot.err" | tail -1)"
cp "$tmp/front.png" "$out" 2>/dev/null || die "$out: cannot write the plot"
echo "wrote $out ($n sub-networks, $nf on the front; x $xcol, y $ycol)"
