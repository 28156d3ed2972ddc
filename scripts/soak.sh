#!/bin/bash
# Soak test: trains for a long time on several ranks and watches for leaks
# and damaged checkpoints.
#
#   scripts/soak.sh [SECONDS] [RANKS] [OUT_DIR] [-- extra train options]
#   scripts/soak.sh 3600 4 runs/soak              # the default: an hour, 4 ranks
#
# Samples every rank's resident memory (VmRSS) every 10 s into
# OUT_DIR/rss.tsv, keeps every periodic checkpoint (--checkpoint-every 100,
# --keep 100000), stops the run with SIGUSR1 after SECONDS (the SLURM
# warning path: a checkpoint, exit status 75), verifies every checkpoint
# written (supernest inspect --verify), draws OUT_DIR/rss.png (gnuplot) and
# reports per rank the RSS after warm-up (the first tenth of the run) and at
# the end.  Exits 1 if a checkpoint does not verify, the run fails, or a
# rank's RSS grew by more than 5% after warm-up.
set -u
cd "$(dirname "$0")/.." || exit 1
secs=${1:-3600}
ranks=${2:-4}
out=${3:-runs/soak}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = -- ] && shift
sn=build/supernest
[ -x "$sn" ] || { echo "soak: $sn not built (run scripts/setup.sh)" >&2; exit 1; }
case $secs$ranks in *[!0-9]*) echo "soak: SECONDS and RANKS must be whole numbers" >&2; exit 2 ;; esac
rm -rf "$out"
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# enough steps never to finish before SECONDS; a warm-up of 100 steps
# (5% of 10^9 steps would keep the learning rate near 0 for the whole soak)
mpirun -q --oversubscribe -np "$ranks" "$sn" train --steps 1000000000 --warmup 100 --run-dir "$out/run" \
    --checkpoint-every 100 --checkpoint-minutes 0 --keep 100000 --log-every 100 --no-report \
    "$@" >"$out/train.out" 2>&1 &
pid=$!

# the rank processes: supernest children of this mpirun
ranks_of() {
    for p in $(pgrep -f -- "--run-dir $out/run"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = supernest ] && echo "$p"
    done
}
pids=()
for _ in $(seq 600); do
    mapfile -t pids < <(ranks_of)
    [ ${#pids[@]} -eq "$ranks" ] && break
    sleep 0.1
done
[ ${#pids[@]} -eq "$ranks" ] || { echo "soak: found ${#pids[@]} of $ranks ranks" >&2; kill $pid; exit 1; }

printf 'seconds' >"$out/rss.tsv"
for r in $(seq 0 $((ranks - 1))); do printf '\trank%d_MiB' "$r" >>"$out/rss.tsv"; done
printf '\tstep\n' >>"$out/rss.tsv"
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$secs" ] && kill -0 $pid 2>/dev/null; do
    line=$((SECONDS - t0))
    for p in "${pids[@]}"; do
        kb=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/"$p"/status 2>/dev/null)
        line="$line	$(( ${kb:-0} / 1024 ))"
    done
    step=$(tail -n 1 "$out/run/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\).*/\1/p')
    echo "$line	${step:-0}" >>"$out/rss.tsv"
    sleep 10
done
kill -USR1 $pid 2>/dev/null
wait $pid
rc=$?
fails=0
[ $rc -eq 75 ] || { echo "soak: the run ended with status $rc, not 75 (stopped with a checkpoint)"; fails=1; }

n=0
bad=0
for f in "$out"/run/checkpoints/ckpt-*.h5; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    "$sn" inspect --verify "$f" >/dev/null 2>"$out/verify.err" || { bad=$((bad + 1)); cat "$out/verify.err"; }
done
echo "soak: $n checkpoints written, $bad failed verification"
[ $n -gt 0 ] && [ $bad -eq 0 ] || fails=1

# RSS after warm-up (first sample past a tenth of the run) and at the end
awk -v warm=$((secs / 10)) -v ranks="$ranks" 'NR > 1 {
        last = $0
        if (!w && $1 >= warm) { w = 1; for (r = 2; r <= ranks + 1; r++) base[r] = $r; t_w = $1 }
    }
    END {
        n = split(last, f, "\t")
        worst = 0
        for (r = 2; r <= ranks + 1; r++) {
            g = base[r] > 0 ? 100.0 * (f[r] - base[r]) / base[r] : 0
            printf "rank %d: %d MiB at %d s (after warm-up), %d MiB at %d s: %+.1f%%\n",
                   r - 2, base[r], t_w, f[r], f[1], g
            if (g > worst) worst = g
        }
        printf "largest growth after warm-up: %+.1f%% (steps done: %d)\n", worst, f[n]
        exit worst > 5.0
    }' "$out/rss.tsv" | tee "$out/rss-summary.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fails=1

if command -v gnuplot >/dev/null; then
    cols=""
    for r in $(seq 0 $((ranks - 1))); do
        cols="$cols${cols:+, }'$out/rss.tsv' using 1:$((r + 2)) with lines title 'rank $r'"
    done
    gnuplot -e "set terminal png size 900,500; set output '$out/rss.png'; set xlabel 'seconds';
                set ylabel 'resident MiB'; set key bottom right; plot $cols" &&
        echo "soak: $out/rss.png"
fi
exit $fails
