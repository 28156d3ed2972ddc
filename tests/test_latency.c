/* The latency table: its prediction is exactly the sum of its parts; a
 * measurement on a tiny space (both tasks) gives positive finite times;
 * and its predictions of whole sub-networks agree with direct measurement
 * within a loose bound (50%: the machine is shared and timing is noisy;
 * the accuracy target is checked by `supernest latency-table --check`). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/latency.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

static int setup(void **state)
{
    (void)state;
    char err[512];
    return sn_blas_init(NULL, err, sizeof err) == SN_OK ? 0 : -1;
}

static void tiny_space(sn_space *s, sn_task task)
{
    sn_space_default(s);
    s->n_embed = 2, s->embed[0] = 32, s->embed[1] = 64;
    s->n_heads = 2, s->heads[0] = 1, s->heads[1] = 2;
    s->n_mlp = 3, s->mlp[0] = 32, s->mlp[1] = 64, s->mlp[2] = 128;
    s->n_stages = 2;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = s->max_depth[1] = 2;
    s->head_dim = 16;
    s->task = task;
    if (task == SN_TASK_LM)
        s->n_tokens = 32, s->token_dim = 256, s->n_classes = 256;
    else
        s->n_tokens = 49, s->token_dim = 16, s->n_classes = 10;
}

static void test_predict_is_sum(void **state)
{
    (void)state;
    sn_space s;
    tiny_space(&s, SN_TASK_IMAGE);
    sn_latency_table *t = sn_latency_table_create(&s);
    assert_non_null(t);
    /* distinct exactly representable values: every term is identifiable */
    for (int ie = 0; ie < s.n_embed; ie++) {
        t->embed_ms[ie] = 1000.0f * (float)(ie + 1);
        t->head_ms[ie] = 2000.0f * (float)(ie + 1);
        for (int ih = 0; ih < s.n_heads; ih++)
            for (int im = 0; im < s.n_mlp; im++)
                *sn_latency_block(t, ie, ih, im) = (float)(100 * ie + 10 * ih + im + 1);
    }
    sn_subnet n;
    char err[256];
    assert_int_equal(sn_subnet_parse(&s, "e64-d2.1-h1.2.2-f32.128.64", &n, err, sizeof err),
                     SN_OK);
    /* embed 2000 + head 4000 + blocks (1,0) 101, (2,2) 113, (2,1) 112 */
    assert_true(sn_latency_predict(t, &n) == 2000.0 + 4000.0 + 101.0 + 113.0 + 112.0);
    sn_subnet_min(&s, &n);
    assert_true(sn_latency_predict(t, &n) == 1000.0 + 2000.0 + 1.0 + 1.0);

    /* any sampled sub-network: the same sum computed here */
    sn_rng r;
    sn_rng_seed(&r, 7, 0);
    for (int k = 0; k < 20; k++) {
        sn_subnet_sample(&s, &r, &n);
        const int ie = n.embed == 32 ? 0 : 1;
        double want = (double)t->embed_ms[ie] + (double)t->head_ms[ie];
        for (int i = 0; i < n.n_blocks; i++) {
            const int ih = n.heads[i] == 1 ? 0 : 1;
            const int im = n.mlp[i] == 32 ? 0 : n.mlp[i] == 64 ? 1 : 2;
            want += (double)*sn_latency_block(t, ie, ih, im);
        }
        assert_true(sn_latency_predict(t, &n) == want);
    }
    sn_latency_table_destroy(t);
    sn_latency_table_destroy(NULL);
}

/* Measures a table of the tiny space of task, checks its entries, and
 * compares its prediction of a few random sub-networks with direct
 * measurement. */
static void measure_and_compare(sn_task task)
{
    sn_space s;
    tiny_space(&s, task);
    sn_latency_table *t = sn_latency_table_create(&s);
    assert_non_null(t);
    char err[256];
    const int reps = 15, warmup = 3;
    assert_int_equal(sn_latency_measure_table(t, 2, 1, reps, warmup, NULL, 1, err, sizeof err),
                     SN_OK);
    assert_int_equal(t->batch, 2);
    assert_int_equal(t->threads, 1);
    assert_int_equal(t->reps, reps);
    assert_int_equal(t->warmup, warmup);
    for (int ie = 0; ie < s.n_embed; ie++) {
        assert_true(isfinite(t->embed_ms[ie]) && t->embed_ms[ie] > 0.0f);
        assert_true(isfinite(t->head_ms[ie]) && t->head_ms[ie] > 0.0f);
        for (int ih = 0; ih < s.n_heads; ih++)
            for (int im = 0; im < s.n_mlp; im++) {
                const float v = *sn_latency_block(t, ie, ih, im);
                assert_true(isfinite(v) && v > 0.0f);
            }
    }
    /* calibration: a finite positive scale, and the prediction is
     * offset + scale x the plain sum */
    sn_subnet big;
    sn_subnet_max(&s, &big);
    const double plain = sn_latency_predict(t, &big);
    assert_int_equal(sn_latency_calibrate(t, NULL, 6, 5, err, sizeof err), SN_OK);
    assert_true(isfinite(t->scale) && t->scale > 0.0 && isfinite(t->offset_ms));
    assert_true(fabs(sn_latency_predict(t, &big) - (t->offset_ms + t->scale * plain)) <=
                1e-9 * plain);
    sn_latency_bench *w = sn_latency_bench_create(&s, 2, NULL, 1);
    assert_non_null(w);
    sn_rng r;
    sn_rng_seed(&r, 3, 0);
    enum { K = 4 };
    sn_subnet nets[K];
    double meas[K];
    for (int k = 0; k < K; k++) sn_subnet_sample(&s, &r, &nets[k]);
    assert_int_equal(sn_latency_measure_subnets(w, nets, K, 1, reps, warmup, meas, err,
                                                sizeof err), SN_OK);
    for (int k = 0; k < K; k++) {
        const double pred = sn_latency_predict(t, &nets[k]);
        assert_true(isfinite(meas[k]) && meas[k] > 0.0);
        const double rel = fabs(pred - meas[k]) / meas[k];
        if (rel > 0.5) fprintf(stderr, "predicted %.4f ms, measured %.4f ms\n", pred, meas[k]);
        assert_true(rel <= 0.5);
    }
    sn_latency_bench_destroy(w);
    sn_latency_bench_destroy(NULL);
    sn_latency_table_destroy(t);
}

static void test_measure_image(void **state)
{
    (void)state;
    measure_and_compare(SN_TASK_IMAGE);
}

static void test_measure_lm(void **state)
{
    (void)state;
    measure_and_compare(SN_TASK_LM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_is_sum),
        cmocka_unit_test(test_measure_image),
        cmocka_unit_test(test_measure_lm),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
