#!/bin/sh
# Parallel training on this machine, in one go: data-parallel throughput
# against one rank, the 1F1B pipeline bubble against (P-1)/(M+P-1), ring
# attention's hidden communication, bytes sent per rank per step against
# the analytic formulas, and the step-time model of docs/SCALING.md
# checked against the measured D2, P2 and S2 step times.
#   scripts/bench-parallel.sh [OUTDIR]     (raw outputs kept in OUTDIR)
# About 5 minutes on 2 cores.  Timing needs an idle machine: before each
# run the script waits (up to 30 s) for other processes to go quiet and
# logs the load it saw.
set -eu
cd "$(dirname "$0")/.."
[ -x build/supernest ] && [ -x build/tests/bench_ring ] || scripts/setup.sh --tests >/dev/null
ninja -C build >/dev/null
out=${1:-$(mktemp -d /tmp/bench-parallel.XXXXXX)}
mkdir -p "$out"
py=/usr/bin/python3

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# More ranks than cores (P3) need oversubscription; blocked ranks yield.
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
sn=build/supernest
common="--no-report --checkpoint-every 0 --log-every 1"
mpirun="mpirun --bind-to none"

# Waits until no other process uses more than 20% of a core (or 30 s have
# passed), then logs the load average and the busiest processes.
quiet() {
    i=0
    while [ $i -lt 6 ]; do
        busy=$(top -bn1 -o %CPU | awk 'NR > 7 && $9 + 0 > 20 && $12 != "top" {print $12 "(" $9 "%)"}' | head -3)
        [ -z "$busy" ] && break
        sleep 5
        i=$((i + 1))
    done
    echo "$1: load $(cut -d' ' -f1-3 /proc/loadavg) ${busy:+busy: $busy}" >>"$out/load.txt"
}

run() { # name, command...
    name=$1
    shift
    quiet "$name"
    echo "== $name: $*" | tee "$out/$name.txt"
    "$@" >>"$out/$name.txt" 2>&1
}

: >"$out/load.txt"
echo "raw outputs in $out"
t_start=$(date +%s)

# a. data-parallel throughput (default space, sandwich rule, batch 128)
run a_1r2t $sn train --steps 15 $common --threads 2
run a_d2 $mpirun -np 2 $sn train --dp 2 --steps 15 $common --threads 1
run a_1r1t $sn train --steps 15 $common --threads 1

# t1: one rank's step of the largest sub-network, the model's input
run t1_1t $sn train --steps 8 $common --threads 1 --fixed-subnet max
run t1_2t $sn train --steps 8 $common --threads 2 --fixed-subnet max
run d2_max $mpirun -np 2 $sn train --dp 2 --steps 8 $common --threads 1 --fixed-subnet max

# b. pipeline bubble (P3 runs 3 ranks on 2 cores: oversubscribed)
for m in 1 2 4 8; do
    run "p2_m$m" $mpirun -np 2 $sn train --pp 2 --micro-batches $m --steps 8 $common \
        --threads 1 --fixed-subnet max
done
for m in 1 2 4 8; do
    run "p3_m$m" $mpirun -np 3 $sn train --pp 3 --micro-batches $m --steps 6 $common \
        --threads 1 --fixed-subnet max
done

# c. ring attention: the meson benchmark as configured (T 2048, 1 thread,
# best of 5), and T 4096 for the shared-memory bandwidth of its transfers
run ring_bench $mpirun -np 2 build/tests/bench_ring
run ring_bw $mpirun -np 2 build/tests/bench_ring 4096 1 3
lm="--task lm --seq-len 1024 --batch-size 4 --fixed-subnet max --steps 6 $common"
run lm_1r2t $sn train $lm --threads 2
run lm_1r1t $sn train $lm --threads 1
for v in plain token; do
    run "lm_s2_$v" $mpirun -np 2 $sn train $lm --sp 2 --ring $v --threads 1
done

echo "benchmark wall time $(($(date +%s) - t_start)) s" | tee "$out/wall.txt"
echo
$py scripts/bench_parallel.py "$out"
