# shellcheck shell=bash
# scripts/slurm/common.sh: the machinery shared by train.sbatch and
# search.sbatch (sourced, not run).  docs/SLURM.md explains the signal path.
#
#   sn_slurm_run NAME COMMAND...
#
# launches COMMAND (a supernest command line) on the job's ranks, with srun
# or mpirun (LAUNCHER), in the background so that this shell can catch
# SLURM's signals while it runs:
#
#   SIGUSR1  the warning before the time limit (`#SBATCH --signal=B:USR1@T`)
#            or `scancel --signal=USR1 --batch JOBID`
#   SIGTERM  the time limit itself, preemption, `scancel JOBID`
#
# Either is passed on to the launcher as SIGUSR1 (srun and Open MPI's mpirun
# both pass SIGUSR1 on to every rank; mpirun answers SIGTERM by killing the
# ranks a second later, which would lose the checkpoint).  supernest then
# saves its state at its next safe point and exits with status 75.  The
# launcher's exit status decides what happens to the job:
#
#   0      done: the job ends COMPLETED
#   75     stopped with its state saved: `scontrol requeue` puts the job back
#          in the queue (same job id, same output file with --open-mode=
#          append); the next run continues from the saved state on its own
#   other  a real failure: the job ends FAILED with that status, no requeue;
#          except at the time limit after the warning, where the ranks may
#          have been killed mid-save (mpirun reports 1 then even when they
#          saved): requeued, to continue from the latest checkpoint
#
# SIGTERM with no SIGUSR1 before it is taken for `scancel`: the job is not
# requeued, whatever the exit status (the saved state stays for a new job).
#
# Variables (set by the sbatch file, each overridable from the environment
# at submission):
#   LAUNCHER      auto | srun | mpirun   (auto: srun --mpi=$SRUN_MPI when
#                 SLURM has that plugin and Open MPI can use it, else mpirun)
#   SRUN_MPI      srun's --mpi plugin for Open MPI [pmix]
#   SRUN_OPTS     extra srun options;  MPIRUN_OPTS  extra mpirun options
#   MAX_REQUEUES  give up requeueing after this many restarts [20]

sn_log() { printf '%s [supernest-slurm] %s\n' "$(date '+%F %T')" "$*"; }

# Prints the launcher to use: srun or mpirun.
sn_pick_launcher() {
    case ${LAUNCHER:-auto} in
    srun | mpirun) echo "$LAUNCHER"; return ;;
    auto) ;;
    *) sn_log "LAUNCHER=$LAUNCHER: expected auto, srun or mpirun" >&2; return 1 ;;
    esac
    # srun starts Open MPI's ranks itself only through PMIx: SLURM must have
    # the plugin (srun --mpi=list) and Open MPI a PMIx client (ompi_info).
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null &&
        srun --mpi=list 2>&1 | grep -qw -- "${SRUN_MPI:-pmix}"; then
        if ! command -v ompi_info >/dev/null ||
            ompi_info --parsable 2>/dev/null | grep -q '^mca:pmix:\(ext[0-9]*x\|pmix[0-9]*x\):'; then
            echo srun
            return
        fi
    fi
    echo mpirun
}

sn_signal=""     # the last signal this shell caught
sn_signals=0     # how many
sn_got_term=0    # 1 once SIGTERM came
sn_got_usr1=0    # 1 once SIGUSR1 came
sn_pid=""        # the launcher's pid while it runs
sn_requeued=0    # 1 once scontrol requeue succeeded
sn_on_signal() { # SIG
    sn_signal=$1
    sn_signals=$((sn_signals + 1))
    if [ "$1" = TERM ]; then sn_got_term=1; else sn_got_usr1=1; fi
    if [ -n "$sn_pid" ] && kill -0 "$sn_pid" 2>/dev/null; then
        sn_log "caught SIG$1: passing SIGUSR1 to $sn_launcher (pid $sn_pid); supernest saves its state at its next safe point"
        kill -USR1 "$sn_pid" 2>/dev/null
    elif [ "$sn_requeued" = 1 ]; then
        sn_log "caught SIG$1: this run ends here (requeued)"
    else
        sn_log "caught SIG$1 (no supernest running)"
    fi
}

# Puts the job back in the queue and ends this run; where that cannot be
# done, ends with STATUS and says how to continue.
sn_requeue() { # NAME STATUS WHY...
    local name=$1 status=$2
    shift 2
    sn_log "$name: $*"
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        sn_log "$name: not a SLURM job: run the same command again to continue"
        exit "$status"
    fi
    if [ "${SLURM_RESTART_COUNT:-0}" -ge "$MAX_REQUEUES" ]; then
        sn_log "$name: NOT requeueing: already restarted ${SLURM_RESTART_COUNT:-0} times" \
            "(MAX_REQUEUES=$MAX_REQUEUES); submit the same batch file again to continue"
        exit "$status"
    fi
    sn_log "$name: requeueing job $SLURM_JOB_ID; its next run continues from the saved state"
    if scontrol requeue "$SLURM_JOB_ID"; then
        sn_requeued=1
        # SLURM ends this run of the job now (SIGTERM, then SIGKILL).
        sleep 300 &
        wait
        exit "$status"
    fi
    sn_log "$name: NOT requeued: scontrol requeue $SLURM_JOB_ID failed (cancelled job, or" \
        "requeueing disabled: #SBATCH --requeue, JobRequeue); submit the same batch file again to continue"
    exit "$status"
}

sn_slurm_run() { # NAME COMMAND...
    local name=$1 rc r seen
    shift
    MAX_REQUEUES=${MAX_REQUEUES:-20}
    sn_launcher=$(sn_pick_launcher) || exit 2
    trap 'sn_on_signal USR1' USR1
    trap 'sn_on_signal TERM' TERM

    local launch
    if [ "$sn_launcher" = srun ]; then
        # srun does not take --cpus-per-task from sbatch's environment (22.05+)
        launch=(srun --mpi="${SRUN_MPI:-pmix}")
        [ -n "${SLURM_CPUS_PER_TASK:-}" ] && launch+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
        # shellcheck disable=SC2206
        launch+=(${SRUN_OPTS:-})
    else
        # shellcheck disable=SC2206
        launch=(mpirun ${MPIRUN_OPTS:-})
        # At the time limit SLURM sends SIGTERM to every process of the job,
        # mpirun included, and SIGKILL KillWait seconds later.  mpirun answers
        # SIGTERM with SIGCONT, SIGTERM and SIGKILL to the ranks, each after
        # odls_base_sigkill_timeout seconds (default 1): a third of KillWait
        # lets the ranks save and still leaves this script time to requeue.
        if [ -z "${OMPI_MCA_odls_base_sigkill_timeout:-}" ]; then
            local kw
            kw=$(scontrol show config 2>/dev/null | sed -n 's/^KillWait *= *\([0-9]*\).*/\1/p')
            [ -n "$kw" ] && [ "$kw" -ge 6 ] && export OMPI_MCA_odls_base_sigkill_timeout=$((kw / 3))
        fi
    fi

    sn_log "$name: job ${SLURM_JOB_ID:-(none)}, restart ${SLURM_RESTART_COUNT:-0}," \
        "${SLURM_NTASKS:-?} tasks on ${SLURM_JOB_NODELIST:-?}, launcher $sn_launcher"
    sn_log "$name: ${launch[*]} $*"
    if [ -n "$sn_signal" ]; then
        # the warning came before anything started: nothing to save
        rc=75
    else
        "${launch[@]}" "$@" &
        sn_pid=$!
        # wait returns early (status > 128) whenever a trapped signal arrives;
        # wait again until the launcher itself has ended.
        rc=""
        while :; do
            seen=$sn_signals
            wait "$sn_pid"
            r=$?
            [ "$r" -eq 127 ] && [ -n "$rc" ] && break   # reaped by the wait before
            rc=$r
            # a trapped signal ended this wait, not the launcher: wait again
            [ "$r" -gt 128 ] && [ "$sn_signals" -ne "$seen" ] && continue
            break
        done
        sn_pid=""
    fi

    if [ "$rc" -eq 0 ]; then
        sn_log "$name: finished (exit status 0)"
        # the batch file's own last step (train: the plots), if it has one
        if declare -F sn_on_finish >/dev/null; then sn_on_finish; fi
        exit 0
    fi
    if [ "$sn_got_term" = 1 ] && [ "$sn_got_usr1" = 0 ]; then
        # SIGTERM with no warning first: scancel (or a time limit or
        # preemption with no --signal warning).  A cancelled job stays so.
        sn_log "$name: ended with exit status $rc after SIGTERM with no SIGUSR1 warning first" \
            "(scancel?): not requeued; submit the same batch file again to continue from the latest saved state"
        exit "$rc"
    fi
    if [ "$rc" -eq 75 ]; then
        sn_requeue "$name" 75 "stopped with its state saved (exit status 75)"
    fi
    if [ "$sn_got_term" = 1 ]; then
        # the time limit came before the ranks had saved after the warning;
        # mpirun reports 1 here even where they did
        sn_requeue "$name" "$rc" "ended with exit status $rc at the time limit, after the warning:" \
            "the warning (--signal=B:USR1@T) is too short for a step and a checkpoint; the next run" \
            "continues from the latest checkpoint"
    fi
    sn_log "$name: FAILED with exit status $rc (not requeued)"
    exit "$rc"
}
