/* pipeline.h: one training step of the supernet split over a D x P x S
 * rank grid — data parallel, pipeline parallel with the 1F1B schedule,
 * and sequence parallel with ring attention — computing the same step as
 * one rank (up to the order of floating-point sums).
 *
 * Each step trains the members the schedule gives (sn_train_members in
 * src/train.h), derived by every rank from the shared seed and the step:
 * no messages say which sub-networks run or with which loss weights.
 * Each member runs the 1F1B schedule over M micro-batches of each data
 * rank's B/D sequences: stage p does min(P-p-1, M) forwards, then
 * alternates one forward and one backward, then finishes the backwards.
 * Activations go to the next stage and their gradients back with
 * MPI_Isend; receives block only for data the stage needs next, and every
 * send is nonblocking, so neighbours cannot wait on each other in a cycle.
 * Message sizes follow the member's embedding width (mb * tl * e floats);
 * a stage that keeps none of its blocks passes activations through.
 *
 * Losses are means over the whole step's rows (B for images, B*T tokens
 * for the language model): each rank scales its gradient by its share of
 * the rows times the member's loss weight, and gradient sums over the
 * D x S replicas (mpi/reduce) make the total.  The step's losses (each
 * member's, unweighted), FLOPs and the squared gradient norm are
 * summed over the world in one all-reduce, so every rank sees the same
 * non-finite loss and stops at the same step with the same message.
 */
#ifndef SN_MPI_PIPELINE_H
#define SN_MPI_PIPELINE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "mpi/grid.h"
#include "mpi/reduce.h"
#include "mpi/ring.h"
#include "src/model.h"
#include "src/train.h"

#define SN_PIPE_MAX_SLOTS 64
#define SN_PIPE_MAX_MICRO 16384 /* tags 2*micro + kind stay below MPI_TAG_UB's minimum 32767 */

typedef struct sn_dist_opts {
    int micro;                  /* M: micro-batches per data rank per member */
    int64_t batch;              /* B: sequences per step over all data ranks */
    sn_ring_variant ring;       /* the ring attention variant (S > 1) */
    size_t bucket_bytes;        /* smallest gradient all-reduce bucket */
    int skip_nonfinite;         /* steps with a non-finite loss to skip before failing */
    int64_t debug_nan_step;     /* tests: at this step (1-based; 0: never) ... */
    int debug_nan_rank;         /* ... this world rank's loss becomes NaN */
} sn_dist_opts;

/* Time and traffic of the steps so far (this rank). */
typedef struct sn_dist_counters {
    uint64_t p2p_bytes;         /* activations and gradients sent */
    double p2p_wait_s;          /* blocked receiving from neighbour stages */
    double step_s;              /* inside sn_dist_step */
    double reduce_wait_s;       /* waiting for the gradient sums */
    uint64_t reduce_bytes;      /* gradient payload all-reduced */
} sn_dist_counters;

typedef struct sn_dist {
    const sn_grid *g;           /* borrowed */
    sn_trainer *t;              /* borrowed: model, options, optimizer, step */
    sn_shard sh;
    int32_t *pos;               /* (tl) owned: global positions of local tokens */
    int64_t b_local, mb;        /* sequences per data rank, per micro-batch */
    int64_t rows_mb;            /* loss rows per micro-batch: mb, or mb*tl */
    int64_t rows_global;        /* loss rows per step: B, or B*T */
    int micro;
    int n_slots;                /* workspaces: micro-batches in flight on this stage, or all
                                 * of them on the first of several stages of a model with a
                                 * stem (sn_dist_init) */
    sn_acts *acts[SN_PIPE_MAX_SLOTS];
    MPI_Request send_req[SN_PIPE_MAX_SLOTS][2];
    float *grad_in;             /* (mb*tl, E): gradient from the next stage */
    float *teacher;             /* (b_local rows, C): the largest's probabilities */
    float *dlogits;             /* (rows_mb, C) */
    int t_lo, t_hi;             /* tensors this stage owns */
    size_t p_lo, p_hi;          /* their float offsets */
    sn_reducer red;
    sn_attn_engine *ring;       /* owned; NULL for images on one sequence rank */
    sn_dist_counters c;
    int skips_left;             /* of skip_nonfinite */
    int64_t debug_nan_step;
    int debug_nan_rank;
} sn_dist;

/* Sets up this rank's part of the step for trainer t (created with
 * max_batch 0: the workspaces are the pipeline's).  SN_ERR with a message
 * when out of memory. */
int sn_dist_init(sn_dist *d, const sn_grid *g, sn_trainer *t, const sn_dist_opts *o,
                 char *err, size_t errlen);
void sn_dist_free(sn_dist *d);

/* One optimizer step.  input: on the first stage the data rank's tokens
 * at this rank's positions, (b_local, tl, P) floats or (b_local, tl)
 * int32 byte ids; labels: on the last stage (b_local) classes or
 * (b_local, tl) next bytes.  Other ranks may pass NULL.  st is filled
 * identically on every rank.  SN_ERR (same message on every rank) if a
 * loss or the gradient norm is not finite; the weights are then
 * untouched.  While skip_nonfinite allows, such a step is skipped instead:
 * SN_OK with st->skipped set, the message in err, no update, the step
 * counted (the next step samples and reads on as usual). */
int sn_dist_step(sn_dist *d, const void *input, const int32_t *labels, sn_step_stats *st,
                 char *err, size_t errlen);

/* Forward-only evaluation of net on this rank's part of b sequences
 * (b <= b_local; input and labels as for sn_dist_step), in micro-batches
 * of at most mb sequences streamed through the stages.  Collective over
 * the grid's world: every rank returns the summed cross-entropy (nats,
 * over every loss row: sequences, or tokens for the language model), the
 * correct predictions and the rows counted. */
void sn_dist_eval(sn_dist *d, const sn_subnet *net, const void *input, const int32_t *labels,
                  int64_t b, double *loss_sum, int64_t *correct, int64_t *rows);

/* owner[t]: the world rank that holds tensor t current (data rank 0,
 * sequence rank 0 of the stage that owns it) — who writes it to a
 * checkpoint. */
void sn_dist_owners(const sn_dist *d, int *owner);
/* Brings every rank's copy of all weights up to date (each stage
 * broadcasts its tensors over its pipeline group), for evaluation. */
void sn_dist_sync_weights(sn_dist *d);

/* Collective: gathers every rank's counters over the last `steps` steps
 * and, on world rank 0, prints a table to out: per rank its step time, the
 * pipeline bubble (time blocked on neighbouring stages / step time, next
 * to the 1F1B ideal (P-1)/(M+P-1)), bytes sent per step to neighbouring
 * stages and around the ring, and the gradient all-reduce payload and
 * wait. */
void sn_dist_report(sn_dist *d, int64_t steps, FILE *out);

#endif
