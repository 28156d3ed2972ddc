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
 *   evaluator -> 0  RESULT  int32 index (-1: ready, after loading),
 *                           int32 status (0 ok, else failed),
 *                           double values[n_values]
 *   evaluator -> 0  ERROR   char message[SN_COORD_MSG] (only after a
 *                           RESULT with a non-zero status)
 *   0 -> evaluator  WORK    int32 index, char subnet[SN_SUBNET_STRLEN]
 *                           (the canonical string, NUL-terminated)
 *   0 -> evaluator  STOP    int32 status (0: the search ended; else it
 *                           failed, and the evaluator exits non-zero)
 *   leader -> group (MPI_Bcast on the group): int32 command (1: a
 *                           candidate follows, 0: stop), int32 status,
 *                           char subnet[SN_SUBNET_STRLEN]
 * An evaluator that cannot load the checkpoint or evaluate a candidate
 * sends RESULT with a non-zero status and then ERROR; the coordinator
 * stops every evaluator and ends the job with that message.
 */
#ifndef SN_MPI_COORD_H
#define SN_MPI_COORD_H

#include <stdbool.h>
#include <stddef.h>

#include <mpi.h>

#include "src/arch.h"

#define SN_COORD_MAX_VALUES 8
#define SN_COORD_MSG 1024

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
    bool stopped;
} sn_coord;

/* Splits the world into rank 0 and groups of k (collective); the caller
 * has checked that size == 1 or (size - 1) % k == 0. */
void sn_coord_init(sn_coord *c, const sn_space *s, int n_values, int k, sn_eval_fn eval,
                   void *ctx);
void sn_coord_free(sn_coord *c);
/* This rank's place in its group, and whether it leads it (place 0). */
int sn_coord_group_rank(const sn_coord *c);
bool sn_coord_leader(const sn_coord *c);

/* Every rank of the group gives its set-up status; SN_ERR on every rank
 * with the first failing rank's message if any failed. */
int sn_coord_group_agree(sn_coord *c, int rc, char *err, size_t errlen);
/* Leader: hands the group its next candidate (net) or the end (net NULL). */
void sn_coord_group_send(sn_coord *c, const sn_subnet *net, int status);
/* Other group ranks: the next candidate (returns true, *net set) or the
 * end (false, *status: 0 finished, else failed). */
bool sn_coord_group_recv(sn_coord *c, sn_subnet *net, int *status);

/* Evaluator ranks: reports `ready` (or the load error in err when
 * load_rc != SN_OK), then evaluates WORK until STOP.  Returns SN_OK when
 * the search ended normally; SN_ERR when it failed (err: why). */
int sn_coord_serve(sn_coord *c, int load_rc, char *err, size_t errlen);

/* Rank 0: waits until every evaluator has loaded (SN_ERR with the first
 * evaluator's load error otherwise, after stopping them all). */
int sn_coord_wait_ready(sn_coord *c, char *err, size_t errlen);

/* Rank 0: evaluates nets[0..n) on the evaluators (or alone) into
 * values (n, n_values).  SN_ERR (evaluators stopped) with the failing
 * evaluator's message. */
int sn_coord_evaluate(sn_coord *c, const sn_subnet *nets, int n, double *values, char *err,
                      size_t errlen);

/* Rank 0: tells every evaluator to stop (status 0: finished, else
 * failed).  Idempotent. */
void sn_coord_stop(sn_coord *c, int status);

#endif
