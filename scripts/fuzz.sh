#!/bin/bash
# Builds the libFuzzer targets (build-fuzz: clang, ASan + UBSan) and runs
# each for SECONDS (default 600), starting from its committed seeds.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: subnet idx h5 config (default: all built)
#   scripts/fuzz.sh 45                         the CI mode: each target 45 s
# Environment:
#   FUZZ_OUT=DIR      scratch directory (default build-fuzz/fuzz-out): the
#                     corpus each run grows (DIR/TARGET/corpus), crash inputs
#                     (DIR/TARGET/artifacts), logs (DIR/TARGET/log)
#   FUZZ_MERGE=1      also merge the new inputs that add coverage into
#                     tests/fuzz/corpus/TARGET (minimised; commit them by hand)
#   FUZZ_STRICT=1     fail on crashes inside the HDF5 library, and on crash inputs
#                     that do not crash again when run alone, too
#   FUZZ_JOBS=N       targets fuzzed at a time (default: the cores; each is one
#                     process on one core)
#   FUZZ_SEED=N       libFuzzer's random seed (default: a new one each run).  CI
#                     sets it, so that every CI run explores the same way (the
#                     number of executions in the time given still varies) and
#                     a run here with the same seed shows what CI will find
# Prints the executions and crashes of each target; every crash input is
# re-run alone and classified: a crash in supernest's code (exit status 1),
# or one inside HDF5 itself on a damaged file (HDF5 1.10's own bugs, listed
# in docs/FUZZING.md; reported, not fatal unless FUZZ_STRICT=1).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
out=${FUZZ_OUT:-build-fuzz/fuzz-out}
timeout_s=10        # one input running longer is a hang (a valid seed takes < 0.1 s)

command -v clang >/dev/null || { echo "fuzz.sh: clang missing (scripts/setup.sh --tests)" >&2; exit 1; }
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz --buildtype=debugoptimized -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
else
    meson setup --reconfigure build-fuzz >/dev/null   # picks up new regress/ directories
fi
ninja -C build-fuzz >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for t in subnet idx h5 config; do
        [ -x "build-fuzz/tests/fuzz/fuzz_$t" ] && targets+=("$t")
    done
fi

# The first frame of a sanitizer report that is neither the sanitizer,
# libFuzzer nor libc: where the crash (or the hang) is.
culprit() {
    grep -E '^ +#[0-9]+ 0x' "$1" |
        grep -v -E '__sanitizer|fuzzer::|__asan|__lsan|__ubsan|__interceptor|sanitizer_common|libc\.so|in (malloc|calloc|realloc|free|abort|raise|memcpy|memmove|strdup) |/compiler-rt/|asan_|_start|in main ' |
        head -1 || true
}

total_start=$SECONDS
bad=0
hdf5=0
unrepro=0
for t in "${targets[@]}"; do
    [ -x "build-fuzz/tests/fuzz/fuzz_$t" ] || { echo "fuzz.sh: no target '$t' (built: $(ls build-fuzz/tests/fuzz | grep -E '^fuzz_[a-z0-9]+$' | tr '\n' ' '))" >&2; exit 2; }
done

# run_target T: fuzzes target T for $seconds into $out/T (its log, its
# exit status in $out/T/rc, its wall time in $out/T/took)
run_target() {
    local t=$1 exe=build-fuzz/tests/fuzz/fuzz_$1 dir=$out/$1
    mkdir -p "$dir/corpus" "$dir/artifacts"
    rm -f "$dir"/artifacts/*
    local opts=(-max_total_time="$seconds" -timeout=$timeout_s -rss_limit_mb=2048
                -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
    [ -n "${FUZZ_SEED:-}" ] && opts+=(-seed="$FUZZ_SEED")
    if [ "$t" = h5 ]; then
        # HDF5 1.10 itself crashes or hangs on many damaged files; fork mode
        # keeps fuzzing past those (each is saved and classified below).
        opts+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    local start=$SECONDS rc=0
    "$exe" "${opts[@]}" "$dir/corpus" "tests/fuzz/corpus/$t" >"$dir/log" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
    echo $((SECONDS - start)) >"$dir/took"
}

# Each fuzzer is one process on one core: FUZZ_JOBS of them (default: the
# cores) run at a time, so a CI run of the four takes as long as two.
jobs_max=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
    rm -f "$out/$t/rc"
    run_target "$t" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
done
wait

for t in "${targets[@]}"; do
    exe=build-fuzz/tests/fuzz/fuzz_$t
    dir=$out/$t
    log=$dir/log
    rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
    took=$(cat "$dir/took" 2>/dev/null || echo "?")
    execs=$(grep -oP 'stat::number_of_executed_units: *\K[0-9]+' "$log" | tail -1 || true)
    [ -n "$execs" ] || execs=$(grep -oP '^#\K[0-9]+(?=: cov:)' "$log" | tail -1 || true)
    [ -n "$execs" ] || execs=$(grep -oP '^#\K[0-9]+(?=\s)' "$log" | tail -1 || true)

    shopt -s nullglob
    found=("$dir"/artifacts/{crash,leak,timeout,oom}-*)
    shopt -u nullglob
    echo "$t: ${execs:-?} executions in ${took} s, ${#found[@]} crash input(s)"
    if [ "$rc" -ne 0 ] && [ ${#found[@]} -eq 0 ]; then
        echo "  the fuzzer stopped with status $rc and no crash input: see $log"
        bad=$((bad + 1))
    fi
    for f in "${found[@]}"; do
        report=$f.txt
        # (a subshell that waits, so that its "Aborted" goes to the report too)
        ("$exe" -timeout=$timeout_s -rss_limit_mb=2048 -error_exitcode=1 "$f"; exit $?) \
            >"$report" 2>&1 || true
        what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [^(]*|runtime error: .*|fuzz: .*' "$report" || true)
        where=$(culprit "$report")
        kind=supernest
        # a leak's frame is where the lost block was allocated: HDF5 losing
        # its own cache entries on a damaged file is HDF5's; a block HDF5
        # hands to supernest (a string read) that supernest never frees would
        # leak on the valid seeds too, which the fuzz tests run
        if [[ $where == *libhdf5* ]]; then
            kind=HDF5
            hdf5=$((hdf5 + 1))
        elif [ -z "$what" ] && [ -z "$where" ]; then
            # fork mode runs many inputs in one process: a crash that needs
            # the state earlier inputs left (in HDF5's caches) does not
            # reproduce alone; the fuzzer's own line about it is in the log
            kind=unreproduced
            unrepro=$((unrepro + 1))
        else
            bad=$((bad + 1))
        fi
        echo "  [$kind] $f: ${what:-crash}"
        [ -n "$where" ] && echo "      at $(sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ (in )?//; s/ \(BuildId.*//' <<<"$where")"
    done
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$exe" -merge=1 -timeout=$timeout_s "tests/fuzz/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1 || true
        echo "  merged into tests/fuzz/corpus/$t: $(grep -oP 'MERGE-OUTER: \K[0-9]+ new files' "$dir/merge.log" || echo '? new files')"
    fi
done
echo "fuzz.sh: ${#targets[@]} target(s), $((SECONDS - total_start)) s; crashes in supernest: $bad," \
    "inside HDF5: $hdf5, not reproducible alone: $unrepro"
[ "${FUZZ_STRICT:-0}" = 1 ] && bad=$((bad + hdf5 + unrepro))
[ "$bad" -eq 0 ]
