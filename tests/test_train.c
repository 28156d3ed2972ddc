/* Training on a small slice of Fashion-MNIST: the loss goes down, the same
 * seed gives bit-identical losses and weights, and a fixed sub-network
 * trains only its own slice of the weights. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "io/data.h"
#include "src/arch.h"
#include "src/model.h"
#include "src/tensor.h"
#include "src/train.h"
#include "src/util.h"

enum { N_IMAGES = 512, BATCH = 32, STEPS = 60 };

static sn_images train;

static int setup(void **state)
{
    (void)state;
    char err[512];
    if (sn_blas_init(NULL, err, sizeof err) != SN_OK) return -1;
    if (sn_images_load_dir(NULL, "train", &train, err, sizeof err) != SN_OK) {
        fprintf(stderr, "test_train needs Fashion-MNIST (apt-get install "
                        "dataset-fashion-mnist): %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sn_images_free(&train);
    return 0;
}

static void small_space(sn_space *s)
{
    sn_space_default(s);
    s->n_embed = 2, s->embed[0] = 32, s->embed[1] = 64;
    s->n_heads = 2, s->heads[0] = 1, s->heads[1] = 2;
    s->n_mlp = 2, s->mlp[0] = 64, s->mlp[1] = 128;
    s->n_stages = 2;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = s->max_depth[1] = 2;
    s->head_dim = 16;
    s->n_tokens = 49, s->token_dim = 16, s->n_classes = 10;
}

typedef struct run_out {
    float loss[STEPS][SN_MAX_MEMBERS];
    int members;
    float *params;      /* owned copy of the final weights */
    size_t n_params;
    double eval_before, eval_after;
} run_out;

/* Mean loss of the largest sub-network over the whole slice. */
static double slice_loss(sn_model *m, sn_acts *a, sn_norm norm, float *tok, int32_t *lab)
{
    sn_subnet big;
    sn_subnet_max(&m->space, &big);
    double sum = 0;
    int64_t correct = 0, ids[BATCH];
    for (int64_t at = 0; at < N_IMAGES; at += BATCH) {
        for (int64_t i = 0; i < BATCH; i++) ids[i] = at + i;
        sn_images_batch(&train, ids, BATCH, 4, norm, tok, lab);
        sn_eval_batch(2, m, a, NULL, &big, tok, lab, BATCH, &sum, &correct);
    }
    return sum / N_IMAGES;
}

static void train_run(const sn_train_opts *o, uint64_t seed, run_out *out)
{
    char err[512];
    memset(out, 0, sizeof *out);
    sn_space s;
    small_space(&s);
    assert_int_equal(sn_space_validate(&s, err, sizeof err), SN_OK);
    sn_model *m = sn_model_create(&s, seed);
    assert_non_null(m);
    sn_trainer tr;
    assert_int_equal(sn_trainer_init(&tr, m, BATCH, o, err, sizeof err), SN_OK);
    int64_t idx[N_IMAGES];
    for (int64_t i = 0; i < N_IMAGES; i++) idx[i] = i;
    sn_loader l;
    assert_int_equal(sn_loader_init(&l, idx, N_IMAGES, seed, err, sizeof err), SN_OK);
    sn_norm norm = sn_images_norm(&train, idx, N_IMAGES);
    float *tok = sn_alloc(BATCH * 49 * 16 * sizeof(float));
    int32_t lab[BATCH];
    int64_t ids[BATCH];
    out->eval_before = slice_loss(m, tr.acts, norm, tok, lab);
    for (int step = 0; step < STEPS; step++) {
        sn_loader_next(&l, ids, BATCH);
        sn_images_batch(&train, ids, BATCH, 4, norm, tok, lab);
        sn_step_stats st;
        int rc = sn_train_step(&tr, tok, lab, BATCH, &st, err, sizeof err);
        if (rc != SN_OK) fail_msg("train step %d: %s", step, err);
        out->members = st.n_members;
        for (int k = 0; k < st.n_members; k++) out->loss[step][k] = st.loss[k];
    }
    out->eval_after = slice_loss(m, tr.acts, norm, tok, lab);
    out->n_params = m->n_params;
    out->params = sn_alloc(m->n_params * sizeof(float));
    memcpy(out->params, m->params, m->n_params * sizeof(float));
    sn_free(tok);
    sn_loader_free(&l);
    sn_trainer_free(&tr);
    sn_model_destroy(m);
}

static sn_train_opts opts(void)
{
    sn_train_opts o;
    sn_train_opts_default(&o);
    o.threads = 2;
    o.adamw.lr = 3e-3f;
    o.adamw.total = STEPS;
    o.adamw.warmup = 4;
    o.seed = 11;
    return o;
}

static void test_sandwich_loss_goes_down(void **state)
{
    (void)state;
    sn_train_opts o = opts();
    run_out r;
    train_run(&o, 11, &r);
    assert_int_equal(r.members, 4); /* max, min, 2 random */
    double first = 0, last = 0;
    for (int i = 0; i < 5; i++) {
        first += r.loss[i][0];
        last += r.loss[STEPS - 1 - i][0];
    }
    printf("largest sub-network: training loss %.4f -> %.4f, slice loss %.4f -> %.4f\n",
           first / 5, last / 5, r.eval_before, r.eval_after);
    assert_true(last < 0.9 * first);
    assert_true(r.eval_after < 0.9 * r.eval_before);
    sn_free(r.params);
}

static void test_same_seed_same_run(void **state)
{
    (void)state;
    sn_train_opts o = opts();
    run_out a, b;
    train_run(&o, 11, &a);
    train_run(&o, 11, &b);
    assert_memory_equal(a.loss, b.loss, sizeof a.loss);
    assert_int_equal(a.n_params, b.n_params);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    /* a different seed is a different run */
    o.seed = 12;
    run_out c;
    train_run(&o, 12, &c);
    assert_true(memcmp(a.loss, c.loss, sizeof a.loss) != 0);
    sn_free(a.params);
    sn_free(b.params);
    sn_free(c.params);
}

/* A fixed small sub-network updates only its slice: with weight decay off
 * (decay moves every matrix), the weights it never uses keep their initial
 * values bit for bit. */
static void test_fixed_subnet_trains_only_its_slice(void **state)
{
    (void)state;
    char err[512];
    sn_space s;
    small_space(&s);
    sn_train_opts o = opts();
    o.schedule = SN_SCHEDULE_FIXED;
    o.adamw.weight_decay = 0.0f;
    assert_int_equal(sn_subnet_parse(&s, "e32-d1.1-h1.1-f64.64", &o.fixed, err, sizeof err),
                     SN_OK);
    sn_model *init = sn_model_create(&s, 11);
    run_out r;
    train_run(&o, 11, &r);
    assert_int_equal(r.members, 1);
    /* block 1 (stage 0's second block) is never used: bit-identical */
    sn_model *m = init;
    for (int t = 0; t < m->n_tensors; t++) {
        const sn_param_info *pi = &m->info[t];
        bool unused = pi->block == 1 || pi->block == 3;
        int same = memcmp(m->params + pi->offset, r.params + pi->offset,
                          pi->count * sizeof(float)) == 0;
        if (unused && !same) fail_msg("%s changed although the sub-network never uses it", pi->name);
        if (strcmp(pi->name, "blocks.0.mlp.fc1.weight") == 0) {
            /* rows >= 64 of fc1 (mlp 64 of 128) are unused; row 0 is used */
            int64_t cols = pi->shape[1];
            assert_memory_equal(m->params + pi->offset + 64 * cols, r.params + pi->offset + 64 * cols,
                                (size_t)(64 * cols) * sizeof(float));
            assert_true(memcmp(m->params + pi->offset, r.params + pi->offset,
                               (size_t)cols * sizeof(float)) != 0);
        }
    }
    sn_model_destroy(init);
    sn_free(r.params);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandwich_loss_goes_down),
        cmocka_unit_test(test_same_seed_same_run),
        cmocka_unit_test(test_fixed_subnet_trains_only_its_slice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
