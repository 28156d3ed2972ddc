#!/bin/sh
# The quality bar: trains the supernet (sandwich rule) and, with the same
# number of epochs and seed, the largest and the smallest architectures
# alone (--fixed-subnet), then compares their test accuracy.
#   scripts/quality.sh [EPOCHS] [extra train options...]
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --tests >/dev/null
epochs=${1:-1}
[ $# -gt 0 ] && shift
out=runs/quality-e$epochs
for name in supernet max min; do
    case $name in
        supernet) extra="" ;;
        *) extra="--fixed-subnet $name" ;;
    esac
    echo "== $name ($epochs epochs)"
    start=$(date +%s)
    ./build/supernest train --epochs "$epochs" --run-dir "$out/$name" --quiet \
        --report-random 0 $extra "$@" | tail -n 4
    echo "wall time $(( $(date +%s) - start )) s"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def rows(name):
    return {r["role"]: r for r in map(json.loads, open(f"{out}/{name}/eval.jsonl"))}
sup = rows("supernet")
print(f"\n{'architecture':<12} {'supernet test acc':>18} {'alone test acc':>15} {'gap (points)':>13}")
for role in ("max", "min"):
    alone = rows(role)["fixed"]
    gap = 100 * (sup[role]["test_acc"] - alone["test_acc"])
    print(f"{role:<12} {sup[role]['test_acc']:>18.4f} {alone['test_acc']:>15.4f} {gap:>+13.2f}")
PY
