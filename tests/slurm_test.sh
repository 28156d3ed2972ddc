#!/bin/bash
# The SLURM batch files (scripts/slurm) on a real single-node SLURM that this
# test starts on localhost (munged, slurmctld, slurmd from Debian's munge and
# slurm-wlm, everything in a temporary directory, stopped at the end):
#
#  1. train.sbatch (2 ranks, srun --mpi=pmix): interrupted mid-run with the
#     warning signal a time limit sends (scancel --signal=USR1 --batch: to
#     the batch shell, as #SBATCH --signal=B:USR1@T does), supernest saves a
#     checkpoint and exits 75, the job is requeued, its next run resumes
#     from that step and finishes: weights, optimizer moments and losses are
#     those of the same command run uninterrupted outside SLURM.
#     A plain scancel (SIGTERM with no warning) saves too, but is not
#     requeued.
#  2. pipeline.sh (mpirun this time): the search job waits for training
#     (--dependency=afterok), starts once training has succeeded, is
#     interrupted the same way, requeued, continues its saved state and ends
#     with the archive of an uninterrupted search.
#
#   usage: slurm_test.sh SUPERNEST SOURCE_ROOT   (KEEP_TMP=1: keep the temporary directory)
# $small and $SEARCH_OPTS are option lists, split on purpose:
# shellcheck disable=SC2086
set -u
sn=$(realpath "$1")
root=$(realpath "$2")
t0=$SECONDS
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1

say() { echo "[$((SECONDS - t0))s] $*"; }

# ---- what the test needs ---------------------------------------------------
need() { # COMMAND PACKAGE
    command -v "$1" >/dev/null ||
        { echo "FAIL: $1 not found: install $2 (scripts/setup.sh --tests installs slurm-wlm and munge)"; exit 1; }
}
need munged munge
need mungekey munge
need slurmctld slurm-wlm
need slurmd slurm-wlm
for c in sbatch srun scontrol squeue sinfo scancel; do need "$c" slurm-wlm; done
need mpirun openmpi-bin
[ "$(id -u)" -eq 0 ] || { echo "FAIL: this test runs slurmd, which must run as root"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "FAIL: the test's jobs take 2 CPUs; this machine has $(nproc)"; exit 1; }

tmp=$(mktemp -d)
conf=$tmp/slurm.conf
pids=()   # the daemons, each the leader of its own process group

# Stops every job, then the daemons, then whatever is left that this test
# started (processes whose environment names this test's slurm.conf).
cleanup() {
    local p i
    if [ -n "${ctld_up:-}" ]; then
        # shellcheck disable=SC2046
        scancel --full $(squeue -h -o %i 2>/dev/null) 2>/dev/null
        for i in $(seq 60); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM -- "-${pids[i]}" 2>/dev/null; done
    for i in $(seq 20); do
        p=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && p=1; done
        [ $p = 0 ] && break
        sleep 0.25
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = $$ ] && continue
        if grep -qzxF "SLURM_CONF=$conf" "$p/environ" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

fail() { # MESSAGE [FILE...]: the message, the files named and the daemons' logs
    local f
    echo "FAIL: $1"
    shift
    for f in "$@" "$tmp/log/slurmctld.log" "$tmp/log/slurmd.log"; do
        [ -e "$f" ] && { echo "---- $f (end)"; tail -n 40 "$f"; }
    done
    exit 1
}

# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds (false after SECONDS).
wait_for() {
    local limit=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $limit ] || return 1
        sleep 0.2
    done
}

# ---- a single-node SLURM on localhost ---------------------------------------
free_port() { # a TCP port nothing listens on (connect is refused)
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 30000))
        [ "$p" != "${1:-}" ] || continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
ctld_port=$(free_port) || fail "no free TCP port"
slurmd_port=$(free_port "$ctld_port") || fail "no free TCP port"
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log"
chmod 0700 "$tmp/munge"
mungekey --create --keyfile="$tmp/munge/munge.key" || fail "mungekey"
chmod 0400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
ncpu=$(nproc)
# cred_expire: a requeued job may start again cred_expire+1 seconds after it
# was requeued (default 120); sched_interval: the scheduler's full pass
# (default 60 s) is what starts it then.
cat >"$conf" <<EOF
ClusterName=supernest-test
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobRequeue=1
ReturnToService=2
SchedulerParameters=sched_interval=2
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=10
MinJobAge=600
NodeName=localhost CPUs=$ncpu Sockets=1 CoresPerSocket=$ncpu ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf

setsid munged --foreground --force --socket="$sock" --key-file="$tmp/munge/munge.key" \
    --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/log/munged.log" \
    --seed-file="$tmp/munge/munged.seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
wait_for 10 test -S "$sock" || fail "munged did not start" "$tmp/log/munged.out" "$tmp/log/munged.log"
setsid slurmctld -D -i -f "$conf" >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
ctld_up=1
setsid slurmd -D -N localhost -f "$conf" >"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }
wait_for 30 node_idle ||
    fail "the node is not idle after 30 s: $(sinfo 2>&1)" "$tmp/log/slurmctld.out" "$tmp/log/slurmd.out"
say "SLURM up: slurmctld :$ctld_port, slurmd :$slurmd_port, $ncpu CPUs ($(srun --version))"

# ---- helpers ---------------------------------------------------------------
job_field() { # JOBID FIELD: a field of scontrol show job
    scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
job_done() { # JOBID: true once the job has ended (any state)
    case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;;
    *) return 1 ;;
    esac
}
lines_at_least() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }
has() { grep -q -e "$2" "$1" 2>/dev/null; }

# Waits until READY succeeds while job JOBID runs (OUT: its batch output).
wait_ready() { # JOBID OUT NAME READY...
    local jid=$1 out=$2 name=$3
    shift 3
    ready_or_end() { "$@" || job_done "$jid"; }
    wait_for 90 ready_or_end "$@" ||
        fail "$name: job $jid made no progress within 90 s: $(job_field "$jid" JobState) $(job_field "$jid" Reason)" "$out"
    ! job_done "$jid" || fail "$name: job $jid ended $(job_field "$jid" JobState) before it could be interrupted" "$out"
}

# The job JOBID, interrupted by the warning signal once READY succeeds, must
# stop with its state saved, be requeued, resume and complete.  OUT is its
# batch output.  Sets stopped_at: supernest's words, "at step N" (train) or
# "after N evaluations (iteration k)" (search).
interrupt_and_follow() { # JOBID OUT NAME READY...
    local jid=$1 out=$2 name=$3
    shift 3
    wait_ready "$jid" "$out" "$name" "$@"
    say "$name: job $jid running; sending the warning signal (scancel --signal=USR1 --batch)"
    scancel --signal=USR1 --batch "$jid" || fail "scancel --signal=USR1 --batch $jid"
    stop_or_end() { has "$out" "stopped by SIGUSR1" || has "$out" "\[supernest-slurm\] $name: FAILED" || job_done "$jid"; }
    wait_for 90 stop_or_end && has "$out" "stopped by SIGUSR1" ||
        fail "$name: no 'stopped by SIGUSR1' in the output (job $jid $(job_field "$jid" JobState))" "$out"
    stopped_at=$(grep -o 'stopped by SIGUSR1 [^;]*' "$out" | head -n 1 | sed 's/^stopped by SIGUSR1 //; s/ with a checkpoint.*//')
    wait_for 30 has "$out" "requeueing job $jid" ||
        fail "$name: the batch file did not requeue after the stop" "$out"
    say "$name: stopped ${stopped_at:-?} and requeued; waiting for the next run"
    wait_for 150 job_done "$jid" || fail "$name: job $jid has not ended within 150 s of the requeue" "$out"
    [ "$(job_field "$jid" JobState)" = COMPLETED ] ||
        fail "$name: job $jid ended $(job_field "$jid" JobState) (exit $(job_field "$jid" ExitCode))" "$out"
    [ "$(job_field "$jid" Restarts)" = 1 ] ||
        fail "$name: job $jid ran $(( $(job_field "$jid" Restarts) + 1 )) times, expected 2" "$out"
    has "$out" "\[supernest-slurm\] $name: job $jid, restart 1" || fail "$name: no second run in the output" "$out"
    has "$out" "\[supernest-slurm\] $name: finished (exit status 0)" || fail "$name: no 'finished' in the output" "$out"
}

small="--embed-choices 32,64 --heads-choices 1,2 --head-dim 16 --mlp-choices 64,128
       --depths 2,2 --min-depths 1,1 --batch-size 32 --train-subset 512 --val-size 500
       --log-every 1 --threads 1 --no-report --checkpoint-every 1000 --checkpoint-minutes 0"
steps=40
export SUPERNEST=$sn SUPERNEST_HOME=$root

# ---- 1. training: warning signal, checkpoint, requeue, resume ---------------
# the same command, uninterrupted, outside SLURM (in the background)
(timeout 300 mpirun -np 2 "$sn" train --steps $steps $small --run-dir "$tmp/ref" \
    >"$tmp/ref.out" 2>&1; echo $? >"$tmp/ref.rc") &

out=$tmp/train.out
jid=$(RUN_DIR=$tmp/run TRAIN_OPTS="--steps $steps $small" LAUNCHER=srun \
    sbatch --parsable --ntasks=2 --time=10 --signal=B:USR1@10 --output="$out" \
    "$root/scripts/slurm/train.sbatch") || fail "sbatch train.sbatch"
interrupt_and_follow "$jid" "$out" train lines_at_least "$tmp/run/metrics.jsonl" 3
k=${stopped_at#at step }
{ [ -n "$k" ] && [ "$k" -gt 0 ] && [ "$k" -lt $steps ]; } || fail "train: stopped at step '${k}', expected 1..$((steps - 1))" "$out"
has "$out" "resuming from .*$tmp/run.* at step $k\b" || fail "train: the requeued run did not resume at step $k" "$out"
has "$out" "launcher srun" || fail "train: not launched with srun" "$out"

wait_for 120 test -f "$tmp/ref.rc" || fail "the reference run did not end" "$tmp/ref.out"
[ "$(cat "$tmp/ref.rc")" = 0 ] || fail "the reference run failed ($(cat "$tmp/ref.rc"))" "$tmp/ref.out"
a=$tmp/ref/checkpoints/ckpt-$(printf %08d $steps).h5
b=$tmp/run/checkpoints/ckpt-$(printf %08d $steps).h5
[ -f "$b" ] || fail "train: no $b after the requeued run" "$out"
diff=$("$sn" inspect --diff --all --json "$a" "$b") || fail "inspect --diff: $diff"
case $diff in
*'"differ":0,'*'"only_in_a":[],"only_in_b":[],"shape_mismatch":[]'*) ;;
*) "$sn" inspect --diff --all "$a" "$b" | grep -v ' 0  -$'
   fail "train: interrupted + resumed differs from the uninterrupted run" ;;
esac
n=$(echo "$diff" | grep -o '"compared":[0-9]*' | grep -o '[0-9]*$')
metrics() { sed 's/,"images_per_s".*//' "$1"; }
[ "$(metrics "$tmp/ref/metrics.jsonl")" = "$(metrics "$tmp/run/metrics.jsonl")" ] ||
    fail "train: metrics.jsonl (steps, losses) differs from the uninterrupted run's" \
        <(diff <(metrics "$tmp/ref/metrics.jsonl") <(metrics "$tmp/run/metrics.jsonl") | head)
head -c 8 "$tmp/run/plots/loss.png" 2>/dev/null | od -An -c | grep -q 'P   N   G' ||
    fail "train: the finished job drew no $tmp/run/plots/loss.png" "$out"
say "ok   train: stopped at step $k by the warning signal, requeued, resumed at step $k, finished;" \
    "$n tensors (weights and AdamW moments) and every step's losses identical to an uninterrupted run"

# ---- 1b. plain scancel: SIGTERM with no warning first -----------------------
# supernest saves (SIGTERM reaches the ranks too) but the job stays cancelled.
# Two signals race to the ranks: slurmstepd's SIGTERM and the SIGUSR1 the
# batch file passes to srun when it is terminated; whichever comes first
# stops the run with a checkpoint.
out=$tmp/cancel.out
jid=$(RUN_DIR=$tmp/cancel TRAIN_OPTS="--steps $steps $small" LAUNCHER=srun \
    sbatch --parsable --ntasks=2 --time=10 --signal=B:USR1@10 --output="$out" \
    "$root/scripts/slurm/train.sbatch") || fail "sbatch train.sbatch"
wait_ready "$jid" "$out" train lines_at_least "$tmp/cancel/metrics.jsonl" 3
scancel "$jid" || fail "scancel $jid"
job_gone() { [ -z "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; }
wait_for 60 job_gone "$jid" || fail "cancel: job $jid still in the queue 60 s after scancel" "$out"
has "$out" "\[supernest-slurm\] train: .*not requeued" || fail "cancel: the batch file did not say 'not requeued'" "$out"
[ "$(job_field "$jid" JobState)" = CANCELLED ] && [ "$(job_field "$jid" Restarts)" = 0 ] ||
    fail "cancel: job $jid is $(job_field "$jid" JobState) after $(job_field "$jid" Restarts) restarts" "$out"
has "$out" "stopped by SIG\(TERM\|USR1\)" && [ -f "$tmp/cancel/checkpoints/latest" ] ||
    fail "cancel: no checkpoint saved on SIGTERM" "$out"
say "ok   cancel: a plain scancel (SIGTERM, no warning) saved a checkpoint and was not requeued"

# ---- 2. the pipeline: search after training, interrupted and continued -----
export RUN_DIR=$tmp/pipe LAUNCHER=mpirun
export TRAIN_OPTS="--steps 10 $small"
export SEARCH_OPTS="--objectives acc,params --eval-size 200 --init 8 --per-iter 4 --iterations 3
                    --population 16 --generations 5 --top 2 --threads 1"
export TRAIN_SBATCH="--ntasks=2 --time=10 --signal=B:USR1@10"
export SEARCH_SBATCH="--ntasks=2 --time=10 --signal=B:USR1@10"
"$root/scripts/slurm/pipeline.sh" >"$tmp/pipeline.out" 2>&1 || fail "pipeline.sh" "$tmp/pipeline.out"
tj=$(sed -n 's/^pipeline: training is job \([0-9]*\).*/\1/p' "$tmp/pipeline.out")
sj=$(sed -n 's/^pipeline: search is job \([0-9]*\).*/\1/p' "$tmp/pipeline.out")
[ -n "$tj" ] && [ -n "$sj" ] || fail "pipeline.sh printed no job ids" "$tmp/pipeline.out"
dep=$(job_field "$sj" Dependency)
case $dep in
afterok:"$tj"*) ;;
*) fail "the search job's dependency is '$dep', expected afterok:$tj" ;;
esac
say "pipeline: training job $tj, search job $sj ($dep)"
tout=$RUN_DIR/slurm-supernest-train-$tj.out
sout=$RUN_DIR/slurm-supernest-search-$sj.out
wait_for 120 job_done "$tj" || fail "pipeline: training job $tj has not ended" "$tout"
[ "$(job_field "$tj" JobState)" = COMPLETED ] || fail "pipeline: training job $tj ended $(job_field "$tj" JobState)" "$tout"

# the uninterrupted search of the same supernet, outside SLURM
# shellcheck disable=SC2086
(timeout 300 mpirun -np 2 "$sn" search --checkpoint "$RUN_DIR" --out "$tmp/search-ref" $SEARCH_OPTS \
    >"$tmp/search-ref.out" 2>&1; echo $? >"$tmp/search-ref.rc") &

interrupt_and_follow "$sj" "$sout" search lines_at_least "$RUN_DIR/search/search.jsonl" 1
has "$sout" "launcher mpirun" || fail "search: not launched with mpirun" "$sout"
has "$sout" "resuming" || fail "search: the requeued run did not continue the saved search" "$sout"
start=$(job_field "$sj" StartTime) end=$(job_field "$tj" EndTime)
[[ ! "$start" < "$end" ]] || fail "pipeline: the search started ($start) before training ended ($end)"
wait_for 120 test -f "$tmp/search-ref.rc" || fail "the reference search did not end" "$tmp/search-ref.out"
[ "$(cat "$tmp/search-ref.rc")" = 0 ] || fail "the reference search failed" "$tmp/search-ref.out"
cmp -s "$tmp/search-ref/archive.csv" "$RUN_DIR/search/archive.csv" ||
    fail "search: the interrupted search's archive differs from an uninterrupted one's" \
        <(diff "$tmp/search-ref/archive.csv" "$RUN_DIR/search/archive.csv" | head)
say "ok   pipeline: the search waited for training (afterok), was stopped by the warning signal" \
    "(${stopped_at:-?}), requeued, continued, and ended with the archive of an uninterrupted search"
say "PASS"
