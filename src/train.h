/* train.h: one training step of the supernet (the schedule of
 * sub-networks, in-place distillation, gradient accumulation, clipping,
 * AdamW) and evaluation of a batch.
 *
 * A schedule is a pure function of (options, seed, step, total steps):
 * the sub-networks of step k are drawn from an sn_rng seeded with
 * (seed, k) alone, and the phase of a schedule is computed from k and the
 * run's total steps, so any rank, and a resumed run, derives the same
 * sub-networks and loss weights without messages or saved sampler state.
 * (A continued run that changes --steps moves the phase boundaries, as it
 * moves the learning-rate schedule.)
 */
#ifndef SN_TRAIN_H
#define SN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/arch.h"
#include "src/model.h"
#include "src/optim.h"

#define SN_MAX_RANDOM 8
#define SN_MAX_MEMBERS (2 + SN_MAX_RANDOM)
#define SN_PHASES 4             /* progressive shrinking's phases */
#define SN_MACS_TRIES 64        /* draws per member of --sample-by macs */
#define SN_MACS_WALK 256        /* then moves of one choice towards the bucket */
#define SN_MAX_MACS_BUCKETS 1000
#define SN_MAX_SORT_STEPS 16     /* --sort-channels STEPS */

/* Which sub-networks each step trains.  "Largest" and "smallest" are
 * sn_subnet_max and sn_subnet_min_dims of the dimensions open at the step;
 * a random member is sn_subnet_sample_dims of them (or drawn by cost, see
 * sn_sample_by).  Members are listed in this order: largest, smallest,
 * random; the first is the teacher when the schedule distils. */
typedef enum sn_schedule {
    /* largest + smallest + n_random random; the others distil from the
     * largest unless distill is off */
    SN_SCHEDULE_SANDWICH,
    /* subnets_per_step random members, every one on the labels (no
     * teacher); their gradients are summed before the one AdamW step */
    SN_SCHEDULE_SORTEDNET,
    /* Once-for-All progressive shrinking: phase 0 trains the full network
     * alone; from phase 1 on a step is the sandwich over the dimensions
     * opened so far: phase 1 depth, phase 2 also heads and MLP widths,
     * phase 3 also the embedding (sn_schedule_phase) */
    SN_SCHEDULE_PROGRESSIVE,
    /* DεpS delayed shrinking: the full network alone for the first
     * deps_delay of the run, then the sandwich, every member but the
     * largest with a loss weight ramped from 0 to 1 (sn_schedule_weight) */
    SN_SCHEDULE_DEPS,
    SN_SCHEDULE_FIXED,  /* one fixed sub-network (the stand-alone baseline) */
} sn_schedule;

/* How a random member is drawn. */
typedef enum sn_sample_by {
    SN_SAMPLE_UNIFORM,  /* sn_subnet_sample_dims: uniform over architectures */
    /* uniform over cost: [lo, hi] = the MACs (sn_subnet_macs) of the
     * smallest and largest of the open dimensions is cut into
     * macs_buckets equal intervals, bucket i holding the MACs m with
     * min(B-1, floor((m - lo) * B / (hi - lo))) = i (all in bucket 0 when
     * hi = lo); a bucket is picked uniformly, then uniform sub-networks
     * are drawn until one falls into it, at most SN_MACS_TRIES; if none
     * does, the draw whose MACs were nearest to the bucket's interval
     * (the first of equals) walks towards it: at most SN_MACS_WALK times
     * one open dimension, picked at random among those that can move
     * that way, goes one choice up (or down) — a stage one block deeper
     * gets the smallest open (largest closed) choices — until the member
     * falls into the bucket; else the nearest member seen is kept.  The
     * largest sizes, which uniform draws hardly ever reach, are drawn as
     * often as the others this way */
    SN_SAMPLE_MACS,
    /* the same on ln MACs: the buckets are equal ratios of MACs, so the
     * small sizes, where a choice changes the cost by the largest
     * factor, get as many draws as the large */
    SN_SAMPLE_LOG_MACS,
} sn_sample_by;

typedef struct sn_train_opts {
    sn_schedule schedule;
    int n_random;           /* random members of the sandwich, 0..SN_MAX_RANDOM */
    int subnets_per_step;   /* sortednet: members per step, 1..SN_MAX_MEMBERS */
    double phases[SN_PHASES];   /* progressive: each phase's share of the run; >= 0, sum 1 */
    double deps_delay;      /* deps: share of the run on the full network alone, [0, 1) */
    double deps_ramp;       /* deps: share of the run over which weights ramp, [0, 1] */
    sn_sample_by sample_by;
    int macs_buckets;       /* SN_SAMPLE_(LOG_)MACS: 1..SN_MAX_MACS_BUCKETS */
    bool sort_channels;     /* sn_schedule_sorts_before may say true (--sort-channels auto) */
    int n_sort_at;          /* > 0: sort after exactly these steps (--sort-channels STEPS) */
    int64_t sort_at[SN_MAX_SORT_STEPS]; /* strictly increasing, >= 1 */
    bool distill;           /* the largest's soft predictions teach the others */
    float distill_weight;   /* the teacher's share of a student's target, (0, 1]; the
                             * rest is the labels (smoothed): --distill-weight */
    double distill_ramp;    /* share of the run over which that share ramps from 0, [0, 1] */
    float label_smoothing;  /* for hard-label losses */
    float clip;             /* max global gradient norm; 0 disables clipping */
    sn_subnet fixed;        /* the sub-network of SN_SCHEDULE_FIXED */
    sn_adamw_opts adamw;    /* adamw.total is the run's total steps T */
    uint64_t seed;
    int threads;            /* threads for compute (>= 1) */
} sn_train_opts;

/* Defaults: sandwich with 2 random members, distillation on (the
 * teacher's share 1, no ramp), uniform sampling (8 buckets for macs),
 * sortednet 4 members, progressive phases
 * 0.25 each, deps delay 0.5 and ramp 0.1, channel sorting on, smoothing
 * 0.1, clip 1.0, AdamW lr 1e-3 (min 1e-5), betas 0.9/0.999, eps 1e-8,
 * weight decay 0.05, warm-up 5% of total. */
void sn_train_opts_default(sn_train_opts *o);

/* SN_OK if the schedule's options are in range (all of them, whichever
 * schedule is chosen); else SN_ERR with a one-line message naming the
 * flag, e.g. "--phases 0.5,0.6,0,0: the shares sum to 1.1, not 1". */
int sn_train_opts_check(const sn_train_opts *o, char *err, size_t errlen);

/* "sandwich", "sortednet", "progressive", "deps", "fixed": the names of
 * --schedule and of a checkpoint's /train sampler attribute. */
const char *sn_schedule_name(sn_schedule s);
/* What random members are drawn by, for the log: "MACs", "log-MACs", or
 * NULL for uniform draws. */
const char *sn_sample_by_label(sn_sample_by by);
/* The schedule named name into *out; SN_ERR (no message) if none is. */
int sn_schedule_parse(const char *name, sn_schedule *out);

/* The phase step (0-based) of a run of T = o->adamw.total steps is in.
 *
 * progressive: the largest p in 0..3 with b_p <= step, where
 *     b_0 = 0 and b_p = floor(T * (a_0 + ... + a_{p-1}) + 1e-6)
 * for the shares a = o->phases (the 1e-6 absorbs binary fractions: 0.29 of
 * 100 steps is 29 steps, not 28).  With T = 100 and shares
 * 0.1,0.2,0.3,0.4: steps 0-9 phase 0, 10-29 phase 1, 30-59 phase 2,
 * 60-99 phase 3.  An empty phase (a share of 0) is skipped.
 * deps: 0 before D = floor(T * deps_delay + 1e-6) (the full network
 * alone), 1 for steps D .. D+R-2 (the ramp, weights below 1; R in
 * sn_schedule_weight), 2 after (every weight 1; with R = 1 there is no
 * phase 1).
 * Other schedules: always 0. */
int sn_schedule_phase(const sn_train_opts *o, int64_t step);

/* The elastic dimensions (SN_DIM_* bits) open at step: progressive phase
 * 0 none, 1 depth, 2 depth + heads + MLP, 3 all; every other schedule
 * all (deps' delay trains only the full network all the same). */
unsigned sn_schedule_open_dims(const sn_train_opts *o, int64_t step);

/* The loss weight at step of every member but the largest: 1 except in
 * the deps ramp, where it is min(1, (step - D + 1) / R) with D as in
 * sn_schedule_phase and R = max(1, floor(T * deps_ramp + 1e-6)): 1/R at
 * the first step after the delay, 1 from its R-th on.  All members share
 * one set of weights and one AdamW step, so a per-member learning-rate
 * ramp is this weight on the member's loss (and so on its gradient). */
float sn_schedule_weight(const sn_train_opts *o, int64_t step);

/* The teacher's share of a distilled member's target at step `step`: A =
 * o->distill_weight from step R = floor(T * distill_ramp + 1e-6) on, and
 * A * step / R before (R > 0): 0 at step 0.  A student's target is
 * share * the teacher's probabilities + (1 - share) * its smoothed label,
 * so its loss is share * the distillation loss + (1 - share) * the label
 * loss. */
float sn_distill_share(const sn_train_opts *o, int64_t step);
/* R above: the first step at the full share (0: no ramp). */
int64_t sn_distill_ramp_end(const sn_train_opts *o);
/* Whether the schedule's students learn from a teacher: distillation on,
 * and a schedule with one (not sortednet, not a fixed sub-network). */
bool sn_schedule_has_teacher(const sn_train_opts *o);

/* Whether the trainer sorts channels by importance before step (that
 * is, once step steps are done): with n_sort_at > 0 exactly before the
 * steps in sort_at, whatever the schedule (sorting on demand); otherwise
 * at the first step of progressive phase 2 (when the widths open: b_2
 * above), and at the first step after the deps delay (D above); never at
 * step 0 (nothing has been trained to sort by) and never with
 * sort_channels off. */
bool sn_schedule_sorts_before(const sn_train_opts *o, int64_t step);

/* One line for logs on the schedule at step, e.g. "progressive phase 2/3:
 * elastic depth, heads and MLP widths" or "deps ramp: loss weight 0.35 for
 * all but the largest"; returns buf. */
const char *sn_schedule_describe(const sn_train_opts *o, int64_t step, char *buf, size_t len);

/* The sub-networks step `step` trains in space s, in order (the first is
 * the teacher when distilling), their roles ("max", "min", "rand",
 * "fixed", or "full" for a step of the full network alone) and loss
 * weights (sn_schedule_weight for members after the first, else 1);
 * returns how many, 1..SN_MAX_MEMBERS. */
int sn_train_members(const sn_space *s, const sn_train_opts *o, int64_t step, sn_subnet *nets,
                     const char **roles, float *weights);

typedef struct sn_step_stats {
    int n_members;
    const char *role[SN_MAX_MEMBERS];     /* "max", "min", "rand", "fixed", "full" */
    sn_subnet net[SN_MAX_MEMBERS];
    float weight[SN_MAX_MEMBERS];         /* each member's loss weight (sn_train_members) */
    float loss[SN_MAX_MEMBERS];           /* each member's training loss, unweighted */
    float lr;
    double grad_norm;                     /* before clipping */
    uint64_t flops;                       /* GEMM FLOPs of the step */
    bool skipped;                         /* not applied: a loss was not finite */
} sn_step_stats;

typedef struct sn_trainer {
    sn_model *model;        /* borrowed */
    sn_acts *acts;          /* owned */
    sn_adamw opt;           /* owned moments */
    sn_train_opts o;
    int64_t step;           /* optimizer steps done */
    int64_t max_batch;
    float *teacher;         /* (max_batch, C) soft labels of the largest */
    float *dlogits;         /* (max_batch, C) */
} sn_trainer;

/* max_batch 0: no workspace for sn_train_step (mpi/pipeline has its own).
 * SN_ERR with sn_train_opts_check's message if o is out of range. */
int sn_trainer_init(sn_trainer *t, sn_model *m, int64_t max_batch,
                    const sn_train_opts *o, char *err, size_t errlen);
void sn_trainer_free(sn_trainer *t);

/* One optimizer step on a batch of b sequences: tokens (b, T, P), labels
 * (b).  SN_ERR (with a message naming the step and sub-network) if a loss
 * or the gradient norm is not finite; the weights are then left untouched. */
int sn_train_step(sn_trainer *t, const float *tokens, const int32_t *labels, int64_t b,
                  sn_step_stats *st, char *err, size_t errlen);

/* The pieces of a step that every layout shares (mpi/pipeline runs the
 * same step split over ranks):
 *
 * sn_member_loss: the loss of member k (of n) at step `step` over rows of
 * logits (rows, C) — against the teacher's targets when k > 0 and
 * distilling (the schedule has a teacher, distill is on and n > 1), else
 * against labels with label smoothing — returned as the mean over the
 * rows; dlogits receives scale * its gradient (callers fold the member's
 * loss weight into scale).  Member 0 writes the targets into teacher
 * (rows, C) when distilling: its probabilities, blended with the smoothed
 * labels when sn_distill_share(o, step) < 1. */
float sn_member_loss(const sn_train_opts *o, int64_t step, int k, int n, float *dlogits,
                     float *teacher, const float *logits, const int32_t *labels, int64_t rows,
                     int64_t C, float scale);
/* SN_OK if every member's loss and the gradient norm are finite; else
 * SN_ERR naming the step and the first non-finite member. */
int sn_step_check(const sn_step_stats *st, int64_t step, char *err, size_t errlen);
/* Clips by st->grad_norm, sets st->lr and applies AdamW to tensors
 * [t_lo, t_hi); advances t->step. */
void sn_step_apply(sn_trainer *t, sn_step_stats *st, int t_lo, int t_hi);

/* Adds the summed cross-entropy (no smoothing) and the number of correct
 * predictions of sub-network n on one batch of b sequences to *loss_sum
 * and *correct: one prediction per sequence (image task; input (b, T, P)
 * floats, labels (b)) or per token (language model; input (b, T) byte ids,
 * labels (b, T) next bytes).  Returns the batch's logits, owned by a,
 * valid until its next forward. */
/* attn: NULL for one-rank attention, else the engine a was created with. */
const float *sn_eval_batch(int nt, const sn_model *m, sn_acts *a, const sn_attn_engine *attn,
                           const sn_subnet *n, const void *input, const int32_t *labels,
                           int64_t b, double *loss_sum, int64_t *correct);

#endif
