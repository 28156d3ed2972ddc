#include "src/optim.h"

#include <math.h>
#include <string.h>

#include "src/util.h"

int sn_adamw_init(sn_adamw *a, const sn_model *m, const sn_adamw_opts *o)
{
    memset(a, 0, sizeof *a);
    a->o = *o;
    a->n = m->n_params;
    a->m = sn_calloc(a->n * sizeof(float));
    a->v = sn_calloc(a->n * sizeof(float));
    if (!a->m || !a->v) {
        sn_adamw_free(a);
        return SN_ERR;
    }
    return SN_OK;
}

void sn_adamw_free(sn_adamw *a)
{
    sn_free(a->m);
    sn_free(a->v);
    a->m = a->v = NULL;
}

float sn_lr_at(const sn_adamw_opts *o, int64_t step)
{
    if (o->warmup > 0 && step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    int64_t span = o->total - o->warmup;
    if (span <= 0) return o->lr;
    double frac = (double)(step - o->warmup) / (double)span;
    if (frac > 1.0) frac = 1.0;
    double c = 0.5 * (1.0 + cos(3.14159265358979323846 * frac));
    return (float)(o->min_lr + (o->lr - o->min_lr) * c);
}

/* Sums of squares over fixed-size chunks, added in chunk order: the same
 * result for any thread count. */
double sn_grad_norm(int nt, const sn_model *m) { return sqrt(sn_grad_sumsq(nt, m, 0, m->n_params)); }

double sn_grad_sumsq(int nt, const sn_model *m, size_t lo, size_t hi)
{
    enum { CHUNK = 1 << 14 };
    SN_CHECK(lo <= hi && hi <= m->n_params);
    const int64_t n = (int64_t)(hi - lo);
    const int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = sn_alloc((size_t)nchunks * sizeof(double));
    SN_CHECK(part != NULL);
    const float *g = m->grads + lo;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) s += (double)g[i] * (double)g[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; c++) total += part[c];
    sn_free(part);
    return total;
}

void sn_adamw_update(int nt, sn_adamw *a, sn_model *m, float lr, float grad_scale)
{
    sn_adamw_update_tensors(nt, a, m, lr, grad_scale, 0, m->n_tensors);
}

void sn_adamw_update_tensors(int nt, sn_adamw *a, sn_model *m, float lr, float grad_scale,
                             int t_lo, int t_hi)
{
    SN_CHECK(0 <= t_lo && t_lo <= t_hi && t_hi <= m->n_tensors);
    a->step++;
    const float b1 = a->o.beta1, b2 = a->o.beta2, eps = a->o.eps;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)a->step));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)a->step));
    for (int t = t_lo; t < t_hi; t++) {
        const sn_param_info *info = &m->info[t];
        float *restrict p = m->params + info->offset;
        const float *restrict g = m->grads + info->offset;
        float *restrict mm = a->m + info->offset;
        float *restrict vv = a->v + info->offset;
        const float wd = info->decay ? a->o.weight_decay : 0.0f;
        const int64_t cnt = (int64_t)info->count;
#pragma omp parallel for num_threads(nt) schedule(static) if (cnt > 4096)
        for (int64_t i = 0; i < cnt; i++) {
            float gi = g[i] * grad_scale;
            mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
            vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
            float mhat = mm[i] * c1, vhat = vv[i] * c2;
            p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
        }
    }
}
