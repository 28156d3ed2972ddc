# Shell helpers shared by the tests that watch a running `supernest train`
# (sourced by signal_e2e.sh and faults_e2e.sh).

# Waits until run directory $1 has logged $2 steps (at most 120 s).
wait_steps() {
    for _ in $(seq 1200); do
        [ -f "$1/metrics.jsonl" ] && [ "$(wc -l <"$1/metrics.jsonl")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# The supernest processes (not mpirun) whose command line holds $1.
rank_pids() {
    for p in $(pgrep -f -- "$1"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = supernest ] && echo "$p"
    done
}
