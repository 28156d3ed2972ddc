/* coord.h: the search's coordinator and its evaluators.
 *
 * World rank 0 runs the search and hands candidates out; the other ranks
 * form evaluator groups of k = P x S consecutive ranks (the pipeline and
 * sequence layout of evaluation), whose first rank, the leader, talks to
 * the coordinator and passes each candidate on to its group.  Work goes
 * to whichever evaluator reports first, so a slow candidate never idles
 * the others; results are stored by candidate index, so the archive does
 * not depend on which evaluator did what.  With one rank the coordinator
 * evaluates by itself.
 *
 * Protocol (MPI_COMM_WORLD, tags SN_COORD_TAG_*):
 *   evaluator -> 0  RESULT  int32 index (-1: ready, after loading; -2: a
 *                           stop request, see below),
 *                           int32 status (0 ok, else failed),
 *                           int32 signal (a signal this rank caught, 0:
 *                           none), double values[n_values]
 *   evaluator -> 0  ERROR   char message[SN_COORD_MSG] (only after a
 *                           RESULT with a non-zero status)
 *   0 -> evaluator  WORK    int32 index, char subnet[SN_SUBNET_STRLEN]
 *                           (the canonical string, NUL-terminated)
 *   0 -> evaluator  STOP    int32 status (SN_COORD_END_DONE: the search
 *                           ended; _FAILED: it failed, the evaluator exits
 *                           non-zero; _STOPPED: stopped by a signal with
 *                           its state saved)
 *   leader -> group (MPI_Ibcast on the group): int32 command (1: a
 *                           candidate follows, 0: stop), int32 status (as
 *                           STOP's), char subnet[SN_SUBNET_STRLEN]
 * An evaluator that cannot load the checkpoint or evaluate a candidate
 * sends RESULT with a non-zero status and then ERROR; the coordinator
 * stops every evaluator and ends the job with that message.
 *
 * Stopping on a signal (src/stop.h; any rank may catch it).  Every rank
 * waits for messages by polling, asking stop_poll between polls.  An
 * evaluator rank reports the first signal it catches once: a leader that
 * is evaluating sets `signal` in that candidate's RESULT (it finishes the
 * candidate first); a leader waiting for WORK, or any other group rank
 * between candidates, sends a RESULT of index -2 (values unused) straight
 * to rank 0.  From the first signal it catches or is told of, rank 0
 * hands out no new candidates, keeps the results of those under way, and
 * sn_coord_evaluate returns SN_COORD_STOPPED; the caller saves its state
 * and sends STOP with SN_COORD_END_STOPPED.  Stop requests still in
 * flight then are received in sn_coord_free, so no message is left
 * unmatched.
 */
#ifndef SN_MPI_COORD_H
#define SN_MPI_COORD_H

#include <stdbool.h>
#include <stddef.h>

#include <mpi.h>

#include "src/arch.h"

#define SN_COORD_MAX_VALUES 8
#define SN_COORD_MSG 1024

/* How a search ended, as STOP tells the evaluators. */
typedef enum sn_coord_end {
    SN_COORD_END_DONE = 0,
    SN_COORD_END_FAILED = 1,
    SN_COORD_END_STOPPED = 2,
} sn_coord_end;

/* Returned (besides SN_OK and SN_ERR) when a signal stopped the search. */
enum { SN_COORD_STOPPED = 1 };

/* The signal this rank has caught (0: none); src/stop.h's sn_stop_signal. */
typedef int (*sn_stop_poll_fn)(void);

/* Evaluates net into values[0..n_values); SN_ERR with a message. */
typedef int (*sn_eval_fn)(void *ctx, const sn_subnet *net, double *values, char *err,
                          size_t errlen);

typedef struct sn_coord {
    const sn_space *space;      /* borrowed */
    int n_values;
    int size;                   /* world ranks */
    int group;                  /* k: ranks per evaluator group */
    MPI_Comm comm;              /* owned: this rank's group (rank 0: alone) */
    sn_eval_fn eval;            /* evaluates on the group (rank 0 alone when size == 1) */
    void *ctx;
    sn_stop_poll_fn stop_poll;  /* NULL: signals are not polled */
    bool stopped;               /* rank 0: STOP sent */
    int stop_sig, stop_rank;    /* rank 0: the first signal caught, and by which rank */
    bool reported;              /* evaluators: this rank's signal is reported */
    int requests;               /* stop requests (index -2) sent, or on rank 0 received */
} sn_coord;

/* Splits the world into rank 0 and groups of k (collective); the caller
 * has checked that size == 1 or (size - 1) % k == 0.  stop_poll may be
 * NULL (no stopping on signals). */
void sn_coord_init(sn_coord *c, const sn_space *s, int n_values, int k, sn_eval_fn eval,
                   void *ctx, sn_stop_poll_fn stop_poll);
/* Collective over the world (every rank, on every path once
 * sn_coord_init has run): receives the stop requests still in flight,
 * then frees the group. */
void sn_coord_free(sn_coord *c);
/* This rank's place in its group, and whether it leads it (place 0). */
int sn_coord_group_rank(const sn_coord *c);
bool sn_coord_leader(const sn_coord *c);

/* Every rank of the group gives its set-up status; SN_ERR on every rank
 * with the first failing rank's message if any failed. */
int sn_coord_group_agree(sn_coord *c, int rc, char *err, size_t errlen);
/* Leader: hands the group its next candidate (net) or the end (net NULL,
 * status an sn_coord_end). */
void sn_coord_group_send(sn_coord *c, const sn_subnet *net, int status);
/* Other group ranks: the next candidate (returns true, *net set) or the
 * end (false, *status an sn_coord_end).  While waiting, reports a signal
 * this rank caught to rank 0. */
bool sn_coord_group_recv(sn_coord *c, sn_subnet *net, int *status);

/* Evaluator ranks: reports `ready` (or the load error in err when
 * load_rc != SN_OK), then evaluates WORK until STOP, reporting a signal
 * this rank catches.  Returns SN_OK when the search ended normally,
 * SN_COORD_STOPPED when a signal stopped it, SN_ERR when it failed (err:
 * why). */
int sn_coord_serve(sn_coord *c, int load_rc, char *err, size_t errlen);

/* Rank 0: waits until every evaluator has loaded (SN_ERR with the first
 * evaluator's load error otherwise, after stopping them all). */
int sn_coord_wait_ready(sn_coord *c, char *err, size_t errlen);

/* Rank 0: evaluates the nets[i] of nets[0..n) that are not done[i] on
 * the evaluators (or alone) into row i of values (n, n_values), setting
 * done[i].  SN_OK when all are done; SN_COORD_STOPPED when a signal (see
 * sn_coord_stop_signal) stopped it first: done tells which rows hold
 * results, and no evaluator is busy.  SN_ERR (evaluators stopped) with
 * the failing evaluator's message. */
int sn_coord_evaluate(sn_coord *c, const sn_subnet *nets, int n, double *values, bool *done,
                      char *err, size_t errlen);

/* Rank 0, while no evaluator is busy: the signal that stops the search,
 * caught by rank 0 or reported by an evaluator (0: none yet); *rank (may
 * be NULL) gets the world rank that caught it. */
int sn_coord_stop_signal(sn_coord *c, int *rank);

/* Rank 0: tells every evaluator to stop (status: an sn_coord_end).
 * Idempotent. */
void sn_coord_stop(sn_coord *c, int status);

#endif
