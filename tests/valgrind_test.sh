#!/bin/bash
# A short training run under valgrind's memcheck, then eval and
# inspect --verify of its checkpoint: no memcheck error, no definite leak.
# One rank (a singleton), one thread, a tiny space, two steps.
# usage: valgrind_test.sh SUPERNEST SOURCE_ROOT
# Suppressions: Open MPI's own file (if installed) and tests/valgrind.supp
# (HDF5, Open MPI, BLIS and OpenMP noise; library frames only).
set -u
sn=$1
root=$2
command -v valgrind >/dev/null || { echo "FAIL: valgrind missing (scripts/setup.sh --tests)"; exit 1; }
dir=$(mktemp -d)
[ -n "${VALGRIND_KEEP:-}" ] && dir=$VALGRIND_KEEP && mkdir -p "$dir" || trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

supp=(--suppressions="$root/tests/valgrind.supp")
[ -f /usr/share/openmpi/openmpi-valgrind.supp ] &&
    supp+=(--suppressions=/usr/share/openmpi/openmpi-valgrind.supp)
vg=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --num-callers=40 --gen-suppressions=all "${supp[@]}")

tiny=(--embed-choices 32 --heads-choices 1,2 --head-dim 16 --mlp-choices 64
      --depths 1,1 --min-depths 1,1 --batch-size 4 --train-subset 32 --val-size 16
      --no-report --log-every 1 --threads 1 --quiet)

# valgrind CMD...: runs it, prints memcheck's summary, fails on status != 0
run() {
    local name=$1; shift
    local log=$dir/$name.vg
    "${vg[@]}" --log-file="$log" "$@" >"$dir/$name.out" 2>&1
    local rc=$?
    local def ind err
    def=$(grep -oP 'definitely lost: \K[0-9,]+ bytes in [0-9,]+ blocks' "$log" | tail -1)
    ind=$(grep -oP 'indirectly lost: \K[0-9,]+ bytes in [0-9,]+ blocks' "$log" | tail -1)
    err=$(grep -oP 'ERROR SUMMARY: \K[0-9,]+ errors' "$log" | tail -1)
    echo "$name: status $rc; definitely lost: ${def:-0 bytes}; indirectly lost: ${ind:-0 bytes}; ${err:-? errors}"
    if [ "$rc" -ne 0 ]; then
        fail "$name: status $rc"
        cat "$dir/$name.out"
        grep -q 'ERROR SUMMARY' "$log" || tail -20 "$log"
        # the first errors and leaks, whole
        grep -v -E '^==[0-9]+== *$' "$log" | sed -n '/Invalid\|uninitialised\|Conditional\|definitely lost in\|Mismatched\|overlap\|Syscall param/,+30p' | head -200
    fi
}

export OMPI_MCA_btl_vader_single_copy_mechanism=none   # no CMA syscalls to check
# keep the stacks of Open MPI components' blocks named (no dlclose at finalize)
export OMPI_MCA_mca_base_component_disable_dlclose=1
run train "$sn" train --steps 2 "${tiny[@]}" --run-dir "$dir/run"
ckpt=$dir/run/checkpoints/ckpt-00000002.h5
[ -f "$ckpt" ] || fail "no checkpoint written: $(ls "$dir/run/checkpoints" 2>&1)"
run eval "$sn" eval --checkpoint "$ckpt" --split val --limit 16 --batch-size 16 --threads 1
run inspect "$sn" inspect --verify "$ckpt"
exit $((fails > 0))
