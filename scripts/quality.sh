#!/bin/bash
# The quality report: is every sub-network cut from the supernet about as
# good as the same architecture trained alone?
#
#   scripts/quality.sh [--epochs E] [--out DIR] [--schedules "S1 S2 ..."]
#                      [--ranks N] [--test-limit N] [--supernest FILE]
#                      [--archs "A1 A2 ..."] [-- extra train options]
#
# On Fashion-MNIST (the default data), for the same budget of E epochs
# (default 1) each:
#   1. trains the supernet once per schedule (default: sandwich sortednet
#      progressive deps, and sandwich with --sample-by macs as "sandwich-macs"),
#      in DIR/<schedule>.  A schedule may carry train options after a colon:
#      "deps:deps-delay=0.25,deps-ramp=0.2", "sandwich:no-distill" or
#      "progressive:phases=0.4+0.2+0.2+0.2" (+ for a comma in a value); its
#      directory is then DIR/deps_deps-delay-0.25_deps-ramp-0.2 and so on;
#   2. trains each of five architectures of the default space, from the
#      smallest to the largest, alone (--fixed-subnet), in DIR/alone-<i>;
#      --archs names others (sub-network strings, smallest first), for a
#      space set by the train options (--embed-choices and the like);
#   3. evaluates every architecture cut from every supernet, and each
#      stand-alone twin, on the test split (10,000 images, or the first N
#      with --test-limit N);
#   4. writes DIR/quality.md (the table, the compute each way, the commands),
#      DIR/quality.tsv and DIR/quality.png (test accuracy against MACs).
# DIR defaults to runs/quality.  Run again, it continues: finished runs are
# not trained again (each run directory resumes), and an evaluation is
# redone only when its run's latest checkpoint changed (each run keeps its
# results in RUN/quality-evals.tsv).
# With --ranks N > 1 every training runs under `mpirun -np N` (data
# parallel); the default is one process using every core.  --supernest
# names the binary (default build/supernest).
set -euo pipefail
cd "$(dirname "$0")/.."
me=quality.sh
die() { echo "$me: $*" >&2; exit 1; }
usage() {
    echo "usage: scripts/$me [--epochs E] [--out DIR] [--schedules \"S1 S2 ...\"] [--ranks N]" \
         "[--test-limit N] [--supernest FILE] [--archs \"A1 A2 ...\"] [-- train options]" >&2
    exit 2
}
epochs=1 out=runs/quality ranks=1 limit=0 sn=build/supernest archs_opt=
# Five architectures of the default space, spread from the smallest to the
# largest (every elastic dimension at its 1st, 2nd, 3rd, 4th and last choice).
archs=(e64-d1.1-h1.1-f96.96
       e96-d2.1-h1.1.1-f192.192.192
       e128-d2.2-h2.2.2.2-f384.384.384.384
       e160-d3.2-h2.2.2.2.2-f576.576.576.576.576
       e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768)
schedules="sandwich sortednet progressive deps sandwich-macs"
while [ $# -gt 0 ]; do
    case $1 in
        --epochs) [ $# -ge 2 ] || usage; epochs=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --schedules) [ $# -ge 2 ] || usage; schedules=$2; shift 2 ;;
        --ranks) [ $# -ge 2 ] || usage; ranks=$2; shift 2 ;;
        --test-limit) [ $# -ge 2 ] || usage; limit=$2; shift 2 ;;
        --supernest) [ $# -ge 2 ] || usage; sn=$2; shift 2 ;;
        --archs) [ $# -ge 2 ] || usage; read -ra archs <<<"$2"; archs_opt=" --archs \"${archs[*]}\""; shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
extra=("$@")
[[ $epochs =~ ^[1-9][0-9]*$ ]] || die "--epochs '$epochs': expected a positive whole number"
[[ $ranks =~ ^[1-9][0-9]*$ ]] || die "--ranks '$ranks': expected a positive whole number"
[[ $limit =~ ^(0|[1-9][0-9]*)$ ]] || die "--test-limit '$limit': expected a whole number (0: all test images)"
[ ${#archs[@]} -gt 0 ] || die "--archs: expected one or more sub-network strings"
for a in "${archs[@]}"; do   # their form; supernest checks them against the space below
    [[ $a =~ ^e[0-9]+-d[0-9.]+-h[0-9.]+-f[0-9.]+$ ]] ||
        die "--archs: '$a' is not a sub-network string (e.g. e64-d1.1-h1.1-f96.96)"
done
# run_of ENTRY: its run directory's name (deps:deps-delay=0.25 -> deps_deps-delay-0.25)
run_of() {
    local d=${1//:/_}
    d=${d//=/-}
    echo "${d//,/_}"
}
seen=" "
for s in $schedules; do
    [[ $s =~ ^[a-z-]+(:[a-z-]+(=[A-Za-z0-9.+-]+)?(,[a-z-]+(=[A-Za-z0-9.+-]+)?)*)?$ ]] ||
        die "--schedules: '$s' is not NAME or NAME:OPTION[=VALUE],... with + for a comma in a VALUE (e.g. deps:deps-delay=0.25)"
    run=$(run_of "$s")
    [[ $seen != *" $run "* ]] || die "--schedules: '$s' would share its run directory $run with another entry"
    seen+="$run "
done
[ "$limit" != 0 ] || limit=   # empty: all test images
[ -x "$sn" ] || die "$sn not built (run scripts/setup.sh)"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (Debian: apt-get install gnuplot-nox)"
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

launch() {
    if [ "$ranks" -gt 1 ]; then
        mpirun -q --oversubscribe -np "$ranks" "$sn" "$@"
    else
        "$sn" "$@"
    fi
}
# train NAME OPTIONS...: trains into $out/NAME (continuing a run there),
# output in $out/NAME.out
train() {
    local name=$1
    shift
    echo "$me: training $name ($*)"
    if ! launch train --epochs "$epochs" --run-dir "$out/$name" --no-report --log-every 100 \
        "$@" "${extra[@]}" >"$out/$name.out" 2>&1; then
        die "training $name failed: $(tail -1 "$out/$name.out") (see $out/$name.out)"
    fi
}
# field JSON KEY: a number of a one-line JSON object
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }
# eval_of RUN SUBNET: sets res to "accuracy macs params images" on the
# test split.  Kept in RUN/quality-evals.tsv under the sub-network, the
# test limit and the latest checkpoint's name, size and modification time:
# a result is reused (counted in reused; every call in evals) while that
# checkpoint is the same; with no checkpoint found there, nothing is kept.
evals=0 reused=0
eval_of() {
    local j ck key= cache=$out/$1/quality-evals.tsv
    evals=$((evals + 1))
    ck=$out/$1/checkpoints/$(cat "$out/$1/checkpoints/latest" 2>/dev/null) && [ -f "$ck" ] &&
        key="$2 ${limit:-all} $(stat -c '%n %s %Y' "$ck")" || key=
    if [ -n "$key" ] && [ -f "$cache" ]; then
        res=$(awk -F'\t' -v k="$key" '$1 == k { r = $2 } END { print r }' "$cache")
        if [ -n "$res" ]; then reused=$((reused + 1)); return; fi
    fi
    j=$("$sn" eval --checkpoint "$out/$1" --subnet "$2" --split test ${limit:+--limit "$limit"} --json \
        2>"$out/eval.err") ||
        die "eval of $2 in $out/$1 failed: $(cat "$out/eval.err")"
    res="$(field "$j" accuracy) $(field "$j" macs) $(field "$j" params) $(field "$j" images)"
    [ -z "$key" ] || printf '%s\t%s\n' "$key" "$res" >>"$cache"
}
# compute RUN: "seconds GFLOP" of the training in $out/RUN (from its
# metrics: elapsed time, and GEMM GFLOP/s integrated over each interval).
# A continued run (stopped and run again) appends the records of another
# process, whose elapsed time starts again: each process's part counts.  A
# process is known by start_step and by its clock going back (two processes
# may continue from the same checkpoint).
compute_of() {
    awk '{
        el = $0; sub(/.*"elapsed_s":/, "", el); el += 0
        g = $0; sub(/.*"gflops":/, "", g); g += 0
        from = $0; if (!sub(/.*"start_step":/, "", from)) from = 0; from += 0
        if (NR > 1 && (from != prev || el < last)) { done += last; last = 0 }
        tot += g * (el - last); last = el; prev = from
    } END { printf "%.0f %.0f\n", done + last, tot }' "$out/$1/metrics.jsonl"
}

# schedule_opts ENTRY: train's options for an entry of --schedules:
# NAME[:OPT[=VALUE],...], e.g. deps:deps-delay=0.25 -> --schedule deps --deps-delay 0.25;
# "+" in a VALUE stands for a comma (progressive:phases=0.4+0.2+0.2+0.2)
schedule_opts() {
    local opts o v kv
    case ${1%%:*} in
        sandwich-macs) opts="--schedule sandwich --sample-by macs" ;;
        *) opts="--schedule ${1%%:*}" ;;
    esac
    if [[ $1 == *:* ]]; then
        IFS=, read -ra kv <<<"${1#*:}"
        for o in "${kv[@]}"; do
            opts+=" --${o%%=*}"
            if [[ $o == *=* ]]; then v=${o#*=} opts+=" ${v//+/,}"; fi
        done
    fi
    echo "$opts"
}

# check NAME OPTIONS...: the options of training NAME, checked by supernest
# itself (train --dry-run: options, data, rank layout, --fixed-subnet)
# before the first training starts, so that a wrong option or an
# architecture outside the space stops the script at once, not after the
# trainings before it (hours at the issue's budget)
check() {
    local name=$1 msg
    shift
    msg=$(launch train --dry-run --epochs "$epochs" "$@" "${extra[@]}" 2>&1) ||
        die "$name: $(grep -m1 '^supernest' <<<"$msg" || tail -1 <<<"$msg")"
}
for s in $schedules; do
    # shellcheck disable=SC2046
    check "--schedules $s" $(schedule_opts "$s")
done
for a in "${archs[@]}"; do check "--archs $a" --fixed-subnet "$a"; done

start=$SECONDS
for s in $schedules; do
    # shellcheck disable=SC2046
    train "$(run_of "$s")" $(schedule_opts "$s")
done
for i in "${!archs[@]}"; do
    train "alone-$((i + 1))" --fixed-subnet "${archs[$i]}"
done

echo "$me: evaluating"
tsv=$out/quality.tsv
{
    printf 'arch\tsubnet\tmacs\tparams\talone'
    for s in $schedules; do printf '\t%s' "$s"; done
    printf '\n'
    for i in "${!archs[@]}"; do
        a=${archs[$i]}
        eval_of "alone-$((i + 1))" "$a"
        read -r acc macs params images <<<"$res"
        printf '%d\t%s\t%s\t%s\t%s' "$((i + 1))" "$a" "$macs" "$params" "$acc"
        for s in $schedules; do
            eval_of "$(run_of "$s")" "$a"
            read -r acc _ <<<"$res"
            printf '\t%s' "$acc"
        done
        printf '\n'
    done
} >"$tsv"
echo "$me: $evals evaluations, $reused of them kept from an earlier run"

# the report
md=$out/quality.md
words=(zero one two three four five six seven eight nine ten)
n_archs=${words[${#archs[@]}]:-${#archs[@]}}
cols=$(( 5 + $(wc -w <<<"$schedules") ))
{
    echo "# Quality report"
    echo
    echo "Fashion-MNIST, $epochs epoch(s) for every training, test accuracy ($(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$images") images) in %."
    echo "*alone*: the architecture trained by itself (\`--fixed-subnet\`); each other column: cut"
    echo "from the supernet trained with that schedule; in brackets the difference to *alone*."
    echo
    printf '| # | sub-network | MMACs | params | alone |'
    for s in $schedules; do printf ' %s |' "$s"; done
    printf '\n|'
    for ((k = 0; k < cols; k++)); do printf -- '---|'; done
    printf '\n'
    awk -F'\t' -v names="$schedules" '
    BEGIN { n = split(names, name, " ") }
    NR > 1 {
        printf "| %s | `%s` | %.1f | %.2fM | %.2f |", $1, $2, $3 / 1e6, $4 / 1e6, $5 * 100
        for (k = 6; k < 6 + n; k++) {
            d = ($k - $5) * 100
            printf " %.2f (%+.2f) |", $k * 100, d
            if (NR == 2 || d < worst[k]) { worst[k] = d; at[k] = $1 }
        }
        printf "\n"
    }
    END {   # the target: every architecture within 0.5 points of its twin
        printf "| | worst difference to *alone* | | | |"
        for (k = 6; k < 6 + n; k++) printf " %+.2f (#%s) |", worst[k], at[k]
        printf "\n\nEvery architecture within 0.5 points of its twin:"
        for (k = 6; k < 6 + n; k++)
            if (sprintf("%.2f", worst[k]) + 0 >= -0.5) printf "%s `%s`", met++ ? "," : "", name[k - 5]
        print met ? "." : " none of the schedules."
    }' "$tsv"
    echo
    echo "## Compute"
    echo
    echo "| training | wall time | GEMM TFLOP |"
    echo "|---|---|---|"
    tot_s=0 tot_g=0
    for s in $schedules; do
        read -r sec g < <(compute_of "$(run_of "$s")")
        printf '| supernet, %s | %d min %02d s | %.1f |\n' "$s" $((sec / 60)) $((sec % 60)) "$(awk -v g="$g" 'BEGIN { print g / 1000 }')"
    done
    for i in "${!archs[@]}"; do
        read -r sec g < <(compute_of "alone-$((i + 1))")
        tot_s=$((tot_s + sec)) tot_g=$((tot_g + g))
        printf '| alone, #%d | %d min %02d s | %.1f |\n' $((i + 1)) $((sec / 60)) $((sec % 60)) "$(awk -v g="$g" 'BEGIN { print g / 1000 }')"
    done
    printf '| **the %s alone** | **%d min %02d s** | **%.1f** |\n' "$n_archs" $((tot_s / 60)) $((tot_s % 60)) "$(awk -v g="$tot_g" 'BEGIN { print g / 1000 }')"
    echo
    echo "One supernet training replaces the $n_archs stand-alone trainings above (and any other of"
    echo "the space's sub-networks one would train alone)."
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "scripts/quality.sh --epochs $epochs --out $out --ranks $ranks --schedules \"$schedules\"${limit:+ --test-limit $limit}$archs_opt${extra[*]:+ -- ${extra[*]}}"
    for s in $schedules; do
        echo "supernest train --epochs $epochs --run-dir $out/$(run_of "$s") --no-report --log-every 100 $(schedule_opts "$s")${extra[*]:+ ${extra[*]}}"
    done
    for i in "${!archs[@]}"; do
        echo "supernest train --epochs $epochs --run-dir $out/alone-$((i + 1)) --no-report --log-every 100 --fixed-subnet ${archs[$i]}${extra[*]:+ ${extra[*]}}"
    done
    echo "supernest eval --checkpoint $out/RUN --subnet SUBNET --split test${limit:+ --limit $limit} --json"
    echo '```'
} >"$md"

# the plot: accuracy against MACs, one line per supernet, points alone
gp=$out/quality.gp
{
    echo "set terminal pngcairo size 900,600"
    echo "set output '$out/quality.png'"
    echo "set logscale x"
    echo "set xlabel 'MACs per image'"
    echo "set ylabel 'test accuracy (%)'"
    echo "set key bottom right"
    echo "set grid"
    printf "plot '%s' using 3:(\$5*100) with points pt 7 ps 1.6 lc rgb 'black' title 'alone'" "$tsv"
    k=6
    for s in $schedules; do
        printf ", '' using 3:(\$%d*100) with linespoints title '%s'" "$k" "$s"
        k=$((k + 1))
    done
    echo
} >"$gp"
gnuplot "$gp" 2>"$out/gnuplot.err" || die "gnuplot failed: $(head -3 "$out/gnuplot.err")"
echo "$me: $md, $tsv, $out/quality.png ($((SECONDS - start)) s)"
