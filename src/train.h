/* train.h: one training step of the supernet (sampling rule, in-place
 * distillation, gradient accumulation, clipping, AdamW) and evaluation of a
 * batch.
 *
 * Sub-networks of step k are drawn from an sn_rng seeded with (seed, k)
 * alone, so any rank, and a resumed run, derives the same sub-networks
 * without messages or saved sampler state.
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

typedef enum sn_sampler {
    SN_SAMPLER_SANDWICH,  /* largest + smallest + n_random random, per step */
    SN_SAMPLER_FIXED,     /* one fixed sub-network (the stand-alone baseline) */
} sn_sampler;

typedef struct sn_train_opts {
    sn_sampler sampler;
    int n_random;           /* random members of the sandwich, 0..SN_MAX_RANDOM */
    bool distill;           /* the largest's soft predictions teach the others */
    float label_smoothing;  /* for hard-label losses */
    float clip;             /* max global gradient norm; 0 disables clipping */
    sn_subnet fixed;        /* the sub-network of SN_SAMPLER_FIXED */
    sn_adamw_opts adamw;
    uint64_t seed;
    int threads;            /* threads for compute (>= 1) */
} sn_train_opts;

/* Defaults: sandwich with 2 random members, distillation on, smoothing
 * 0.1, clip 1.0, AdamW lr 1e-3 (min 1e-5), betas 0.9/0.999, eps 1e-8,
 * weight decay 0.05, warm-up 5% of total. */
void sn_train_opts_default(sn_train_opts *o);

typedef struct sn_step_stats {
    int n_members;
    const char *role[SN_MAX_MEMBERS];     /* "max", "min", "rand", "fixed" */
    sn_subnet net[SN_MAX_MEMBERS];
    float loss[SN_MAX_MEMBERS];           /* each member's training loss */
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

/* max_batch 0: no workspace for sn_train_step (mpi/pipeline has its own). */
int sn_trainer_init(sn_trainer *t, sn_model *m, int64_t max_batch,
                    const sn_train_opts *o, char *err, size_t errlen);
void sn_trainer_free(sn_trainer *t);

/* The sub-networks step `step` trains, in order (the first is the
 * teacher when distilling); returns how many. */
int sn_train_members(const sn_trainer *t, int64_t step, sn_subnet *nets, const char **roles);

/* One optimizer step on a batch of b sequences: tokens (b, T, P), labels
 * (b).  SN_ERR (with a message naming the step and sub-network) if a loss
 * or the gradient norm is not finite; the weights are then left untouched. */
int sn_train_step(sn_trainer *t, const float *tokens, const int32_t *labels, int64_t b,
                  sn_step_stats *st, char *err, size_t errlen);

/* The pieces of a step that every layout shares (mpi/pipeline runs the
 * same step split over ranks):
 *
 * sn_member_loss: the loss of member k (of n) over rows of logits (rows, C)
 * — against the teacher's probabilities when k > 0 and distilling, else
 * against labels with label smoothing — returned as the mean over the
 * rows; dlogits receives scale * its gradient.  Member 0 writes its
 * probabilities into teacher (rows, C) when distilling. */
float sn_member_loss(const sn_train_opts *o, int k, int n, float *dlogits, float *teacher,
                     const float *logits, const int32_t *labels, int64_t rows, int64_t C,
                     float scale);
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
