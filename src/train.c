#include "src/train.h"

#include <math.h>
#include <string.h>

#include "src/ops.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

enum { STREAM_SAMPLER = 0x5a3d };

void sn_train_opts_default(sn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sampler = SN_SAMPLER_SANDWICH;
    o->n_random = 2;
    o->distill = true;
    o->label_smoothing = 0.1f;
    o->clip = 1.0f;
    o->adamw = (sn_adamw_opts){
        .lr = 1e-3f, .min_lr = 1e-5f, .beta1 = 0.9f, .beta2 = 0.999f,
        .eps = 1e-8f, .weight_decay = 0.05f, .warmup = 0, .total = 1,
    };
    o->seed = 1;
    o->threads = 1;
}

int sn_trainer_init(sn_trainer *t, sn_model *m, int64_t max_batch,
                    const sn_train_opts *o, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->model = m;
    t->o = *o;
    t->max_batch = max_batch;
    if (o->n_random < 0 || o->n_random > SN_MAX_RANDOM)
        return sn_errf(err, errlen, "--sandwich-random %d: must be 0..%d", o->n_random,
                       SN_MAX_RANDOM);
    if (max_batch == 0) { /* the caller brings its own workspaces */
        if (sn_adamw_init(&t->opt, m, &o->adamw) != SN_OK)
            return sn_errf(err, errlen, "out of memory allocating the optimizer's moments");
        return SN_OK;
    }
    const int64_t C = m->space.n_classes;
    t->acts = sn_acts_create(&m->space, max_batch);
    t->teacher = sn_alloc((size_t)(max_batch * C) * sizeof(float));
    t->dlogits = sn_alloc((size_t)(max_batch * C) * sizeof(float));
    if (!t->acts || !t->teacher || !t->dlogits || sn_adamw_init(&t->opt, m, &o->adamw) != SN_OK) {
        sn_trainer_free(t);
        return sn_errf(err, errlen, "out of memory allocating the training workspace "
                                    "(batch %lld)", (long long)max_batch);
    }
    return SN_OK;
}

void sn_trainer_free(sn_trainer *t)
{
    sn_acts_destroy(t->acts);
    sn_adamw_free(&t->opt);
    sn_free(t->teacher);
    sn_free(t->dlogits);
    t->acts = NULL;
    t->teacher = t->dlogits = NULL;
}

int sn_train_members(const sn_trainer *t, int64_t step, sn_subnet *nets, const char **roles)
{
    const sn_space *s = &t->model->space;
    if (t->o.sampler == SN_SAMPLER_FIXED) {
        nets[0] = t->o.fixed;
        roles[0] = "fixed";
        return 1;
    }
    sn_rng r;
    sn_rng_seed(&r, t->o.seed, STREAM_SAMPLER + (uint64_t)step * 16);
    int k = 0;
    sn_subnet_max(s, &nets[k]);
    roles[k++] = "max";
    sn_subnet_min(s, &nets[k]);
    roles[k++] = "min";
    for (int i = 0; i < t->o.n_random; i++) {
        sn_subnet_sample(s, &r, &nets[k]);
        roles[k++] = "rand";
    }
    return k;
}

float sn_member_loss(const sn_train_opts *o, int k, int n, float *dlogits, float *teacher,
                     const float *logits, const int32_t *labels, int64_t rows, int64_t C,
                     float scale)
{
    const bool distill = o->distill && n > 1;
    float loss = k > 0 && distill
                     ? sn_xent_soft(dlogits, logits, teacher, rows, C, scale)
                     : sn_xent_hard(dlogits, NULL, logits, labels, rows, C, o->label_smoothing,
                                    scale);
    /* The teacher's probabilities are a constant for the students (no
     * gradient flows into them). */
    if (k == 0 && distill) sn_softmax(teacher, logits, rows, C, 1.0f);
    return loss;
}

int sn_step_check(const sn_step_stats *st, int64_t step, char *err, size_t errlen)
{
    for (int k = 0; k < st->n_members; k++) {
        if (isfinite(st->loss[k])) continue;
        char name[SN_SUBNET_STRLEN];
        sn_subnet_format(&st->net[k], name, sizeof name);
        return sn_errf(err, errlen, "step %lld: loss of sub-network %s (%s) is %s",
                       (long long)step, name, st->role[k],
                       isnan(st->loss[k]) ? "NaN" : "infinite");
    }
    if (!isfinite(st->grad_norm))
        return sn_errf(err, errlen, "step %lld: gradient norm is not finite", (long long)step);
    return SN_OK;
}

void sn_step_apply(sn_trainer *t, sn_step_stats *st, int t_lo, int t_hi)
{
    float scale = 1.0f;
    if (t->o.clip > 0.0f && st->grad_norm > t->o.clip) scale = (float)(t->o.clip / st->grad_norm);
    st->lr = sn_lr_at(&t->o.adamw, t->step);
    sn_adamw_update_tensors(t->o.threads, &t->opt, t->model, st->lr, scale, t_lo, t_hi);
    t->step++;
}

int sn_train_step(sn_trainer *t, const float *tokens, const int32_t *labels, int64_t b,
                  sn_step_stats *st, char *err, size_t errlen)
{
    SN_CHECK(b > 0 && b <= t->max_batch);
    sn_model *m = t->model;
    const int nt = t->o.threads;
    const int64_t C = m->space.n_classes;
    uint64_t flops0 = sn_gemm_flops();

    memset(st, 0, sizeof *st);
    st->n_members = sn_train_members(t, t->step, st->net, st->role);
    sn_model_zero_grad(m);
    for (int k = 0; k < st->n_members; k++) {
        const float *logits = sn_model_forward(nt, m, t->acts, &st->net[k], tokens, b);
        st->loss[k] = sn_member_loss(&t->o, k, st->n_members, t->dlogits, t->teacher, logits,
                                     labels, b, C, 1.0f);
        if (!isfinite(st->loss[k])) break;
        sn_model_backward(nt, m, t->acts, t->dlogits);
    }
    st->grad_norm = sn_grad_norm(nt, m);
    if (sn_step_check(st, t->step + 1, err, errlen) != SN_OK) return SN_ERR;
    sn_step_apply(t, st, 0, m->n_tensors);
    st->flops = sn_gemm_flops() - flops0;
    return SN_OK;
}

const float *sn_eval_batch(int nt, const sn_model *m, sn_acts *a, const sn_attn_engine *attn,
                           const sn_subnet *n, const void *input, const int32_t *labels,
                           int64_t b, double *loss_sum, int64_t *correct)
{
    sn_shard sh;
    sn_shard_full(&m->space, &sh);
    sh.attn = attn;
    const float *logits = sn_model_forward_shard(nt, m, a, &sh, n, input, b);
    const int64_t rows = m->space.task == SN_TASK_LM ? b * m->space.n_tokens : b;
    int64_t ok = 0;
    float loss = sn_xent_hard(NULL, &ok, logits, labels, rows, m->space.n_classes, 0.0f, 1.0f);
    *loss_sum += (double)loss * (double)rows;
    *correct += ok;
    return logits;
}
