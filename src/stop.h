/* stop.h: stopping a run cleanly on a signal (SLURM's warning before a
 * time limit or preemption, `scancel --signal`, Ctrl-C).
 *
 * sn_stop_install catches SIGUSR1, SIGTERM and SIGINT; the handler only
 * records the signal.  Long-running commands poll sn_stop_signal() at their
 * safe points (train: every step boundary, after all ranks agree; search:
 * between evaluations), save their state and exit with SN_EXIT_STOPPED so
 * that a batch script can requeue the job.  A second SIGINT (Ctrl-C twice)
 * ends the process at once.
 */
#ifndef SN_STOP_H
#define SN_STOP_H

/* Installs the handlers (idempotent). */
void sn_stop_install(void);
/* The first signal received since sn_stop_install (0: none). */
int sn_stop_signal(void);
/* Records sig as if it had been received (tests, and ranks told by others). */
void sn_stop_raise(int sig);
/* "SIGUSR1", "SIGTERM", "SIGINT" or "signal N". */
const char *sn_stop_name(int sig);

#endif
