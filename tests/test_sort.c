/* Importance sorting (src/sort.c): the full network's logits are the same
 * before and after, every buffer that follows the parameters is permuted
 * alike, importance is non-increasing afterwards, and a second sort moves
 * nothing.
 *
 * Tolerance: sorting permutes the terms of the sums over heads and hidden
 * units, so logits may differ by float32 rounding of sums of at most 3
 * heads and 48 units in 3 blocks (relative ~1e-6 here); the test allows
 * 1e-5 of the logits' scale.  A head or unit moved without all of its
 * weights changes logits at the 1e-2 scale of these weights. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/model.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/sort.h"
#include "src/tensor.h"
#include "src/util.h"

enum { B = 4 };

static void space_of(sn_space *s, sn_task task)
{
    sn_space_default(s);
    s->n_embed = 2, s->embed[0] = 16, s->embed[1] = 24;
    s->n_heads = 3, s->heads[0] = 1, s->heads[1] = 2, s->heads[2] = 3;
    s->n_mlp = 3, s->mlp[0] = 16, s->mlp[1] = 32, s->mlp[2] = 48;
    s->n_stages = 2;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = 2, s->max_depth[1] = 1;
    s->head_dim = 8;
    s->task = task;
    if (task == SN_TASK_LM) {
        s->n_tokens = 12, s->token_dim = 256, s->n_classes = 256;
    } else {
        s->n_tokens = 9, s->token_dim = 12, s->n_classes = 5;
    }
}

/* Every parameter (biases and norms included) random, so that a bias
 * left behind shows. */
static sn_model *random_model(const sn_space *s, uint64_t seed)
{
    sn_model *m = sn_model_create(s, seed);
    assert_non_null(m);
    sn_rng r;
    sn_rng_seed(&r, seed, 99);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 0.3f * sn_rng_normal(&r);
    return m;
}

/* Logits of sub-network n on fixed inputs, copied out. */
static float *logits_of(const sn_model *m, const sn_subnet *n, const void *input)
{
    sn_acts *a = sn_acts_create(&m->space, B);
    assert_non_null(a);
    sn_shard sh;
    sn_shard_full(&m->space, &sh);
    const float *out = sn_model_forward_shard(1, m, a, &sh, n, input, B);
    const int64_t rows = m->space.task == SN_TASK_LM ? B * m->space.n_tokens : B;
    const size_t k = (size_t)(rows * m->space.n_classes);
    float *copy = malloc(k * sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, out, k * sizeof *copy);
    sn_acts_destroy(a);
    return copy;
}

static void *inputs_of(const sn_space *s)
{
    sn_rng r;
    sn_rng_seed(&r, 5, 6);
    if (s->task == SN_TASK_LM) {
        int32_t *ids = malloc(sizeof *ids * B * (size_t)s->n_tokens);
        assert_non_null(ids);
        for (int i = 0; i < B * s->n_tokens; i++) ids[i] = (int32_t)sn_rng_below(&r, 256);
        return ids;
    }
    float *x = malloc(sizeof *x * B * (size_t)s->n_tokens * (size_t)s->token_dim);
    assert_non_null(x);
    for (int i = 0; i < B * s->n_tokens * s->token_dim; i++) x[i] = sn_rng_normal(&r);
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double d = 0.0, sc = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        sc = fmax(sc, fabs((double)a[i]));
    }
    *scale = sc;
    return d;
}

static double unit_l1(const sn_model *m, const char *name, int block, int64_t r0, int64_t nr,
                      int64_t c0, int64_t nc)
{
    char full[48];
    snprintf(full, sizeof full, "blocks.%d.%s", block, name);
    for (int t = 0; t < m->n_tensors; t++) {
        const sn_param_info *p = &m->info[t];
        if (strcmp(p->name, full) != 0) continue;
        double s = 0.0;
        for (int64_t r = r0; r < r0 + nr; r++)
            for (int64_t c = c0; c < c0 + nc; c++)
                s += fabs((double)m->params[p->offset + (size_t)(r * p->shape[1] + c)]);
        return s;
    }
    fail_msg("no tensor %s", full);
    return 0.0;
}

static void check_task(sn_task task)
{
    sn_space s;
    space_of(&s, task);
    char err[256];
    assert_int_equal(sn_space_validate(&s, err, sizeof err), SN_OK);
    sn_model *m = random_model(&s, 3);
    void *in = inputs_of(&s);
    sn_subnet big, small;
    sn_subnet_max(&s, &big);
    sn_subnet_min(&s, &small);
    const int64_t rows = task == SN_TASK_LM ? B * s.n_tokens : B;
    const size_t nl = (size_t)(rows * s.n_classes);
    float *before = logits_of(m, &big, in), *small_before = logits_of(m, &small, in);

    /* two followers: copies of the parameters must stay copies */
    float *f0 = malloc(m->n_params * sizeof *f0), *f1 = malloc(m->n_params * sizeof *f1);
    assert_non_null(f0);
    assert_non_null(f1);
    memcpy(f0, m->params, m->n_params * sizeof *f0);
    for (size_t i = 0; i < m->n_params; i++) f1[i] = 2.0f * m->params[i];
    float *follow[2] = {f0, f1};
    sn_sort_stats st;
    const int L = sn_space_max_blocks(&s);
    assert_int_equal(sn_sort_channels(m, follow, 2, 0, L, &st), SN_OK);
    assert_int_equal(st.blocks, L);
    assert_true(st.heads_moved > 0);
    assert_true(st.units_moved > 0);
    for (size_t i = 0; i < m->n_params; i++) {
        assert_true(f0[i] == m->params[i]);
        assert_true(f1[i] == 2.0f * m->params[i]);
    }

    /* the full network computes the same function */
    float *after = logits_of(m, &big, in);
    double scale, d = max_abs_diff(before, after, nl, &scale);
    print_message("%s: full network, max |logit change| %.3g of scale %.3g after moving %d heads "
                  "and %d units\n", task == SN_TASK_LM ? "lm" : "image", d, scale, st.heads_moved,
                  st.units_moved);
    assert_true(scale > 0.1);
    assert_true(d <= 1e-5 * scale);
    /* the smallest sub-network now keeps other (the most important) units */
    float *small_after = logits_of(m, &small, in);
    assert_true(max_abs_diff(small_before, small_after, nl, &scale) > 1e-3 * scale);

    /* importance non-increasing along every block's heads and units */
    const int H = s.heads[s.n_heads - 1], F = s.mlp[s.n_mlp - 1];
    const int64_t D = s.head_dim, E = s.embed[s.n_embed - 1];
    for (int l = 0; l < L; l++) {
        double prev = INFINITY;
        for (int j = 0; j < H; j++) {
            double v = unit_l1(m, "attn.qkv.weight", l, j * 3 * D, 3 * D, 0, E) +
                       unit_l1(m, "attn.proj.weight", l, 0, E, j * D, D);
            assert_true(v <= prev);
            prev = v;
        }
        prev = INFINITY;
        for (int u = 0; u < F; u++) {
            double v = unit_l1(m, "mlp.fc1.weight", l, u, 1, 0, E) +
                       unit_l1(m, "mlp.fc2.weight", l, 0, E, u, 1);
            assert_true(v <= prev);
            prev = v;
        }
    }

    /* sorted is a fixed point */
    assert_int_equal(sn_sort_channels(m, NULL, 0, 0, L, &st), SN_OK);
    assert_int_equal(st.heads_moved + st.units_moved, 0);

    free(before);
    free(after);
    free(small_before);
    free(small_after);
    free(f0);
    free(f1);
    free(in);
    sn_model_destroy(m);
}

static void test_image(void **state)
{
    (void)state;
    check_task(SN_TASK_IMAGE);
}

static void test_lm(void **state)
{
    (void)state;
    check_task(SN_TASK_LM);
}

/* A pipeline stage sorts its own blocks only. */
static void test_block_range(void **state)
{
    (void)state;
    sn_space s;
    space_of(&s, SN_TASK_IMAGE);
    sn_model *m = random_model(&s, 4);
    float *orig = malloc(m->n_params * sizeof *orig);
    assert_non_null(orig);
    memcpy(orig, m->params, m->n_params * sizeof *orig);
    sn_sort_stats st;
    assert_int_equal(sn_sort_channels(m, NULL, 0, 1, 2, &st), SN_OK);
    assert_int_equal(st.blocks, 1);
    bool changed = false;
    for (int t = 0; t < m->n_tensors; t++) {
        const sn_param_info *p = &m->info[t];
        bool same = memcmp(orig + p->offset, m->params + p->offset,
                           p->count * sizeof(float)) == 0;
        if (p->block != 1) assert_true(same);
        changed |= !same;
    }
    assert_true(changed);
    free(orig);
    sn_model_destroy(m);
}

int main(void)
{
    char err[256];
    if (sn_blas_init(NULL, err, sizeof err) != SN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image),
        cmocka_unit_test(test_lm),
        cmocka_unit_test(test_block_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
