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
        float loss;
        if (k > 0 && t->o.distill)
            loss = sn_xent_soft(t->dlogits, logits, t->teacher, b, C, 1.0f);
        else
            loss = sn_xent_hard(t->dlogits, NULL, logits, labels, b, C,
                                t->o.label_smoothing, 1.0f);
        st->loss[k] = loss;
        if (!isfinite(loss)) {
            char name[SN_SUBNET_STRLEN];
            sn_subnet_format(&st->net[k], name, sizeof name);
            return sn_errf(err, errlen, "step %lld: loss of sub-network %s (%s) is %s",
                           (long long)t->step, name, st->role[k],
                           isnan(loss) ? "NaN" : "infinite");
        }
        /* The teacher's probabilities are taken before its backward; they
         * are a constant for the students (no gradient flows into them). */
        if (k == 0 && t->o.distill && st->n_members > 1)
            sn_softmax(t->teacher, logits, b, C, 1.0f);
        sn_model_backward(nt, m, t->acts, t->dlogits);
    }

    st->grad_norm = sn_grad_norm(nt, m);
    if (!isfinite(st->grad_norm))
        return sn_errf(err, errlen, "step %lld: gradient norm is not finite",
                       (long long)t->step);
    float scale = 1.0f;
    if (t->o.clip > 0.0f && st->grad_norm > t->o.clip) scale = (float)(t->o.clip / st->grad_norm);
    st->lr = sn_lr_at(&t->o.adamw, t->step);
    sn_adamw_update(nt, &t->opt, m, st->lr, scale);
    t->step++;
    st->flops = sn_gemm_flops() - flops0;
    return SN_OK;
}

const float *sn_eval_batch(int nt, const sn_model *m, sn_acts *a, const sn_subnet *n,
                   const float *tokens, const int32_t *labels, int64_t b,
                   double *loss_sum, int64_t *correct)
{
    const float *logits = sn_model_forward(nt, m, a, n, tokens, b);
    int64_t ok = 0;
    float loss = sn_xent_hard(NULL, &ok, logits, labels, b, m->space.n_classes, 0.0f, 1.0f);
    *loss_sum += (double)loss * (double)b;
    *correct += ok;
    return logits;
}
