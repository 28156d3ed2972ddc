/* optim.h: AdamW over the supernet's flat parameter buffer, the learning
 * rate schedule and gradient clipping.
 *
 * The moments m and v use the parameter table's layout, so the update is
 * one loop over each tensor; weight decay applies to the tensors the table
 * marks (matrices), not to biases, norms or positions.
 */
#ifndef SN_OPTIM_H
#define SN_OPTIM_H

#include <stdint.h>

#include "src/model.h"

typedef struct sn_adamw_opts {
    float lr;            /* peak learning rate */
    float min_lr;        /* floor of the cosine decay */
    float beta1, beta2, eps;
    float weight_decay;
    int64_t warmup;      /* linear warm-up steps */
    int64_t total;       /* steps of the whole run (cosine period) */
} sn_adamw_opts;

typedef struct sn_adamw {
    sn_adamw_opts o;
    int64_t step;        /* updates applied so far */
    size_t n;
    float *m, *v;        /* (n) owned, same layout as the parameters */
} sn_adamw;

/* Allocates zeroed moments for model m; SN_ERR when out of memory. */
int sn_adamw_init(sn_adamw *a, const sn_model *m, const sn_adamw_opts *o);
void sn_adamw_free(sn_adamw *a);

/* Learning rate at update number step (0-based): linear warm-up to lr over
 * `warmup` steps, then cosine decay to min_lr at `total`. */
float sn_lr_at(const sn_adamw_opts *o, int64_t step);

/* L2 norm of all gradients (double accumulation in a fixed order, so the
 * result does not depend on the thread count). */
double sn_grad_norm(int nt, const sn_model *m);
/* Sum of squares of the gradients at float offsets [lo, hi), in the same
 * fixed order (a pipeline stage's part of the squared norm). */
double sn_grad_sumsq(int nt, const sn_model *m, size_t lo, size_t hi);

/* Applies one AdamW update with learning rate lr to every parameter of m,
 * the gradients first multiplied by grad_scale (clipping and averaging). */
void sn_adamw_update(int nt, sn_adamw *a, sn_model *m, float lr, float grad_scale);
/* The same update applied to tensors [t_lo, t_hi) of the table only (a
 * pipeline stage's); the step count advances as for a full update. */
void sn_adamw_update_tensors(int nt, sn_adamw *a, sn_model *m, float lr, float grad_scale,
                             int t_lo, int t_hi);

#endif
