#include "src/sort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"

/* The tensor "blocks.<block>.<name>" of m's table. */
static const sn_param_info *block_tensor(const sn_model *m, int block, const char *name)
{
    char full[48];
    snprintf(full, sizeof full, "blocks.%d.%s", block, name);
    for (int t = 0; t < m->n_tensors; t++)
        if (m->info[t].block == block && strcmp(m->info[t].name, full) == 0) return &m->info[t];
    return NULL;
}

/* Sum of |x| over rows [r0, r0 + nr) and columns [c0, c0 + nc) of the
 * (rows, cols) matrix at base + t->offset (a 1-D tensor is one column). */
static double l1(const float *base, const sn_param_info *t, int64_t r0, int64_t nr, int64_t c0,
                 int64_t nc)
{
    const int64_t cols = t->ndim == 2 ? t->shape[1] : 1;
    const float *a = base + t->offset;
    double s = 0.0;
    for (int64_t r = r0; r < r0 + nr; r++)
        for (int64_t c = c0; c < c0 + nc; c++) s += fabs((double)a[r * cols + c]);
    return s;
}

/* Units in order of decreasing score, ties in index order. */
typedef struct scored {
    double score;
    int index;
} scored;

static int by_score(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->index - b->index;
}

/* Fills perm[0..n) (new position i holds old unit perm[i]); returns how
 * many units moved. */
static int order(scored *s, int n, int *perm)
{
    qsort(s, (size_t)n, sizeof *s, by_score);
    int moved = 0;
    for (int i = 0; i < n; i++) {
        perm[i] = s[i].index;
        moved += perm[i] != i;
    }
    return moved;
}

/* Permutes tensor t of the buffer base: along its rows in groups of g
 * rows (unit i of n takes rows [i*g, (i+1)*g)), or, with cols, along its
 * columns in groups of g columns.  tmp holds t->count floats. */
static void permute(float *base, const sn_param_info *t, const int *perm, int n, int64_t g,
                    bool cols, float *tmp)
{
    float *a = base + t->offset;
    const int64_t width = t->ndim == 2 ? t->shape[1] : 1;
    memcpy(tmp, a, t->count * sizeof *a);
    if (!cols) {
        const int64_t unit = g * width;
        for (int i = 0; i < n; i++)
            memcpy(a + i * unit, tmp + perm[i] * unit, (size_t)unit * sizeof *a);
        return;
    }
    for (int64_t r = 0; r < t->shape[0]; r++)
        for (int i = 0; i < n; i++)
            memcpy(a + r * width + i * g, tmp + r * width + perm[i] * g, (size_t)g * sizeof *a);
}

/* One group of units sorted alike: the tensors that hold them, each by
 * rows or columns in groups of `g` (rows or columns per unit). */
typedef struct unit_tensors {
    const sn_param_info *t[4];
    int64_t g[4];
    bool cols[4];
    int n;               /* tensors */
} unit_tensors;

static void apply(sn_model *m, float *const *follow, int n_follow, const unit_tensors *u,
                  const int *perm, int n, float *tmp)
{
    for (int k = 0; k < u->n; k++) {
        permute(m->params, u->t[k], perm, n, u->g[k], u->cols[k], tmp);
        for (int f = 0; f < n_follow; f++)
            permute(follow[f], u->t[k], perm, n, u->g[k], u->cols[k], tmp);
    }
}

int sn_sort_channels(sn_model *m, float *const *follow, int n_follow, int block_lo,
                     int block_hi, sn_sort_stats *st)
{
    memset(st, 0, sizeof *st);
    const sn_space *s = &m->space;
    const int H = s->heads[s->n_heads - 1], F = s->mlp[s->n_mlp - 1];
    const int64_t D = s->head_dim;
    const int nmax = H > F ? H : F;
    size_t tmp_len = 0;
    for (int t = 0; t < m->n_tensors; t++)
        if (m->info[t].count > tmp_len) tmp_len = m->info[t].count;
    scored *sc = malloc((size_t)nmax * sizeof *sc);
    int *perm = malloc((size_t)nmax * sizeof *perm);
    float *tmp = malloc(tmp_len * sizeof *tmp);
    if (!sc || !perm || !tmp) {
        free(sc);
        free(perm);
        free(tmp);
        return SN_ERR;
    }
    for (int l = block_lo; l < block_hi; l++) {
        const sn_param_info *qkv_w = block_tensor(m, l, "attn.qkv.weight"),
                            *qkv_b = block_tensor(m, l, "attn.qkv.bias"),
                            *proj_w = block_tensor(m, l, "attn.proj.weight"),
                            *fc1_w = block_tensor(m, l, "mlp.fc1.weight"),
                            *fc1_b = block_tensor(m, l, "mlp.fc1.bias"),
                            *fc2_w = block_tensor(m, l, "mlp.fc2.weight");
        SN_CHECK(qkv_w && qkv_b && proj_w && fc1_w && fc1_b && fc2_w);
        const int64_t E = qkv_w->shape[1];

        /* heads: rows [j*3D, (j+1)*3D) of qkv (q, k, v of head j), columns
         * [j*D, (j+1)*D) of proj */
        for (int j = 0; j < H; j++)
            sc[j] = (scored){l1(m->params, qkv_w, j * 3 * D, 3 * D, 0, E) +
                                 l1(m->params, proj_w, 0, proj_w->shape[0], j * D, D),
                             j};
        int moved = order(sc, H, perm);
        if (moved > 0) {
            unit_tensors u = {{qkv_w, qkv_b, proj_w}, {3 * D, 3 * D, D}, {false, false, true}, 3};
            apply(m, follow, n_follow, &u, perm, H, tmp);
        }
        st->heads_moved += moved;

        /* MLP hidden units: row u of fc1 (and its bias), column u of fc2 */
        for (int u = 0; u < F; u++)
            sc[u] = (scored){l1(m->params, fc1_w, u, 1, 0, E) +
                                 l1(m->params, fc2_w, 0, fc2_w->shape[0], u, 1),
                             u};
        moved = order(sc, F, perm);
        if (moved > 0) {
            unit_tensors u = {{fc1_w, fc1_b, fc2_w}, {1, 1, 1}, {false, false, true}, 3};
            apply(m, follow, n_follow, &u, perm, F, tmp);
        }
        st->units_moved += moved;
        st->blocks++;
    }
    free(sc);
    free(perm);
    free(tmp);
    return SN_OK;
}
