#!/bin/sh
# Training throughput of the largest sub-network at batch 128: supernest
# against PyTorch (Debian's python3-torch, which calls BLIS) on the same
# model, each at its best on this machine with the same number of threads;
# plus the step's GFLOP/s against BLIS's own sgemm and peak memory.
#   scripts/bench-train.sh [THREADS]      (default: all cores)
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --tests >/dev/null
nt=${1:-$(nproc)}
steps=${BENCH_STEPS:-10}
py=/usr/bin/python3

echo "== supernest (C), $nt threads"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
./build/tests/bench_train --threads "$nt" --steps "$steps" >"$out"
cat "$out"
c_json=$(tail -n 1 "$out")

# PyTorch's speed depends on BLIS's kernels: try Debian's default choice and
# the AVX-512 kernels, keep the better one.
best=""
best_ips=0
for arch in default skx; do
    if [ "$arch" = skx ]; then
        kernels="BLIS_ARCH_TYPE=0"   # BLIS's AVX-512 kernels
    else
        kernels="-u BLIS_ARCH_TYPE"  # what BLIS picks by itself
    fi
    echo "== PyTorch, $nt threads, BLIS kernels: $arch"
    # shellcheck disable=SC2086 # $kernels is one or two words on purpose
    j=$(env $kernels BLIS_NUM_THREADS="$nt" OMP_NUM_THREADS="$nt" \
        $py scripts/bench_torch.py --threads "$nt" --steps "$steps" | tail -n 1)
    echo "$j"
    ips=$(echo "$j" | $py -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
    if $py -c "import sys; sys.exit(0 if $ips > $best_ips else 1)"; then
        best_ips=$ips
        best=$arch
    fi
done

$py - "$c_json" "$best_ips" "$best" <<'PY'
import json, sys
c = json.loads(sys.argv[1]); t = float(sys.argv[2])
print(f"\nsupernest {c['images_per_s']:.1f} images/s vs PyTorch {t:.1f} images/s "
      f"(BLIS kernels {sys.argv[3]}): ratio {c['images_per_s'] / t:.2f}x")
print(f"step GEMM rate {c['gemm_gflops']:.1f} GFLOP/s = {c['gemm_gflops'] / c['blis_gflops']:.0%} "
      f"of BLIS's own sgemm ({c['blis_gflops']:.1f} GFLOP/s) on the same shapes")
print(f"peak RSS {c['peak_rss_mib']:.0f} MiB vs {c['needed_mib']:.0f} MiB needed "
      f"(parameters, gradients, AdamW state, activations): {c['peak_rss_mib'] / c['needed_mib']:.2f}x")
PY
