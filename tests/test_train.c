/* The schedules: which sub-networks and loss weights each step gets, as
 * src/train.h documents them (no data needed).  Training on a small slice
 * of Fashion-MNIST: the loss goes down, the same seed gives bit-identical
 * losses and weights, and a fixed sub-network trains only its own slice of
 * the weights. */
#include <math.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "io/data.h"
#include "src/arch.h"
#include "src/model.h"
#include "src/ops.h"
#include "src/rng.h"
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

static int setup_blas(void **state)
{
    (void)state;
    char err[512];
    return sn_blas_init(NULL, err, sizeof err) == SN_OK ? 0 : -1;
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
        sn_images_batch(&train, ids, BATCH, 4, 0, norm, tok, lab);
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
        sn_images_batch(&train, ids, BATCH, 4, 0, norm, tok, lab);
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

/* ---- schedules ---------------------------------------------------------- */

static sn_train_opts sched_opts(sn_schedule sc, int64_t total)
{
    sn_train_opts o;
    sn_train_opts_default(&o);
    o.schedule = sc;
    o.seed = 11;
    o.adamw.total = total;
    return o;
}

typedef struct members {
    int n;
    sn_subnet net[SN_MAX_MEMBERS];
    const char *role[SN_MAX_MEMBERS];
    float weight[SN_MAX_MEMBERS];
} members;

static members members_at(const sn_space *s, const sn_train_opts *o, int64_t step)
{
    members m;
    memset(&m, 0, sizeof m);
    m.n = sn_train_members(s, o, step, m.net, m.role, m.weight);
    assert_true(m.n >= 1 && m.n <= SN_MAX_MEMBERS);
    char err[512];
    for (int k = 0; k < m.n; k++)
        if (sn_subnet_validate(s, &m.net[k], err, sizeof err) != SN_OK)
            fail_msg("step %lld member %d: %s", (long long)step, k, err);
    return m;
}

static bool same_net(const sn_subnet *a, const sn_subnet *b)
{
    char x[SN_SUBNET_STRLEN], y[SN_SUBNET_STRLEN];
    sn_subnet_format(a, x, sizeof x);
    sn_subnet_format(b, y, sizeof y);
    return strcmp(x, y) == 0;
}

static void assert_net(const sn_subnet *n, const char *want)
{
    char got[SN_SUBNET_STRLEN];
    sn_subnet_format(n, got, sizeof got);
    assert_string_equal(got, want);
}

/* The sandwich sampler as it was before the schedules, arch.c's
 * sn_subnet_sample included, kept here to pin the sandwich down. */
static int old_pick(sn_rng *r, int n, const int *v) { return v[sn_rng_below(r, (uint64_t)n)]; }

static void old_sample(const sn_space *s, sn_rng *r, sn_subnet *out)
{
    memset(out, 0, sizeof *out);
    out->embed = old_pick(r, s->n_embed, s->embed);
    out->n_stages = s->n_stages;
    for (int st = 0; st < s->n_stages; st++) {
        int span = s->max_depth[st] - s->min_depth[st] + 1;
        out->depth[st] = s->min_depth[st] + (int)sn_rng_below(r, (uint64_t)span);
        out->n_blocks += out->depth[st];
    }
    for (int i = 0; i < out->n_blocks; i++) {
        out->heads[i] = old_pick(r, s->n_heads, s->heads);
        out->mlp[i] = old_pick(r, s->n_mlp, s->mlp);
    }
}

static int old_members(const sn_space *s, uint64_t seed, int n_random, int64_t step,
                       sn_subnet *nets, const char **roles)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 0x5a3d + (uint64_t)step * 16);
    int k = 0;
    sn_subnet_max(s, &nets[k]);
    roles[k++] = "max";
    sn_subnet_min(s, &nets[k]);
    roles[k++] = "min";
    for (int i = 0; i < n_random; i++) {
        old_sample(s, &r, &nets[k]);
        roles[k++] = "rand";
    }
    return k;
}

/* The default sandwich draws what it drew before --schedule existed: the
 * sub-networks recorded then, and the old code over many steps. */
static void test_sandwich_unchanged(void **state)
{
    (void)state;
    sn_space s;
    small_space(&s);
    sn_train_opts o = sched_opts(SN_SCHEDULE_SANDWICH, 100);
    o.n_random = 3;
    static const struct {
        int64_t step;
        const char *net[3];
    } recorded[] = {
        {0, {"e64-d1.1-h1.1-f64.64", "e64-d2.1-h1.1.1-f128.128.128",
             "e32-d1.2-h2.2.1-f128.128.64"}},
        {1, {"e32-d2.1-h1.1.2-f64.128.64", "e32-d1.1-h1.2-f64.128", "e64-d2.1-h1.2.1-f128.64.64"}},
        {7, {"e64-d1.1-h1.1-f64.64", "e64-d1.2-h2.1.2-f128.128.128",
             "e32-d2.1-h2.1.1-f128.128.64"}},
        {1000, {"e64-d1.1-h1.1-f128.64", "e64-d2.1-h1.2.1-f64.64.64", "e64-d1.1-h2.2-f64.128"}},
        {123456789, {"e64-d2.1-h1.2.2-f128.128.128", "e64-d2.2-h2.1.2.1-f128.64.64.128",
                     "e32-d2.1-h1.2.2-f64.128.128"}},
    };
    for (size_t i = 0; i < sizeof recorded / sizeof recorded[0]; i++) {
        members m = members_at(&s, &o, recorded[i].step);
        assert_int_equal(m.n, 5);
        assert_string_equal(m.role[0], "max");
        assert_net(&m.net[0], "e64-d2.2-h2.2.2.2-f128.128.128.128");
        assert_string_equal(m.role[1], "min");
        assert_net(&m.net[1], "e32-d1.1-h1.1-f64.64");
        for (int k = 0; k < 3; k++) {
            assert_string_equal(m.role[2 + k], "rand");
            assert_net(&m.net[2 + k], recorded[i].net[k]);
        }
    }
    /* the default space, every sandwich size, against the old code */
    sn_space d;
    sn_space_default(&d);
    for (int nr = 0; nr <= SN_MAX_RANDOM; nr++) {
        o.n_random = nr;
        for (int64_t step = 0; step < 300; step += 7) {
            members m = members_at(&d, &o, step);
            sn_subnet want[SN_MAX_MEMBERS];
            const char *roles[SN_MAX_MEMBERS];
            int n = old_members(&d, o.seed, nr, step, want, roles);
            assert_int_equal(m.n, n);
            for (int k = 0; k < n; k++) {
                assert_true(same_net(&m.net[k], &want[k]));
                assert_string_equal(m.role[k], roles[k]);
                assert_true(m.weight[k] == 1.0f);
            }
        }
    }
}

/* sortednet: N random members every step, weights 1, hard labels. */
static void test_sortednet(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    for (int n = 1; n <= SN_MAX_MEMBERS; n++) {
        sn_train_opts o = sched_opts(SN_SCHEDULE_SORTEDNET, 100);
        o.subnets_per_step = n;
        int same_as_next = 0, has_max = 0;
        for (int64_t step = 0; step < 100; step++) {
            members m = members_at(&s, &o, step), again = members_at(&s, &o, step);
            members next = members_at(&s, &o, step + 1);
            assert_int_equal(m.n, n);
            assert_int_equal(again.n, n);
            for (int k = 0; k < n; k++) {
                assert_string_equal(m.role[k], "rand");
                assert_true(m.weight[k] == 1.0f);
                assert_true(same_net(&m.net[k], &again.net[k]));
            }
            same_as_next += same_net(&m.net[0], &next.net[0]);
            sn_subnet big;
            sn_subnet_max(&s, &big);
            has_max += same_net(&m.net[0], &big);
        }
        /* random: neither the same every step nor the largest first */
        assert_true(same_as_next < 5);
        assert_true(has_max < 5);
    }
    /* every member, the second included, learns from the labels */
    sn_train_opts o = sched_opts(SN_SCHEDULE_SORTEDNET, 100), hard = o;
    hard.schedule = SN_SCHEDULE_SANDWICH;
    hard.distill = false;
    enum { R = 3, C = 4 };
    const float logits[R * C] = {1, 2, 0, -1, 0.5f, 0.5f, 3, 0, -2, 1, 1, 0};
    const int32_t labels[R] = {1, 2, 0};
    float teacher[R * C] = {0.25f, 0.25f, 0.25f, 0.25f, 0.7f, 0.1f, 0.1f, 0.1f, 0, 0, 0, 1};
    float dl[R * C], dl_hard[R * C], teacher2[R * C];
    memcpy(teacher2, teacher, sizeof teacher);
    float a = sn_member_loss(&o, 5, 1, 4, dl, teacher, logits, labels, R, C, 1.0f);
    float b = sn_member_loss(&hard, 5, 1, 4, dl_hard, teacher2, logits, labels, R, C, 1.0f);
    assert_true(a == b);
    assert_memory_equal(dl, dl_hard, sizeof dl);
    /* and member 0 writes no teacher */
    sn_member_loss(&o, 5, 0, 4, dl, teacher, logits, labels, R, C, 1.0f);
    assert_memory_equal(teacher, teacher2, sizeof teacher);
    /* out of range */
    char err[256];
    o.subnets_per_step = 0;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--subnets-per-step 0: must be in 1..10");
    o.subnets_per_step = SN_MAX_MEMBERS + 1;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
}


/* --distill-weight A, --distill-ramp F: the teacher's share ramps from 0
 * at step 0 to A at step floor(T F), then stays; a student's loss and
 * gradient are share * those against the teacher's probabilities + (1 -
 * share) * those against its smoothed label. */
static void test_distill_share(void **state)
{
    (void)state;
    sn_train_opts o = sched_opts(SN_SCHEDULE_SANDWICH, 100);
    char err[256];
    assert_true(sn_distill_share(&o, 0) == 1.0f); /* the default: the teacher alone */
    o.distill_weight = 0.5f;
    o.distill_ramp = 0.4;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_OK);
    assert_true(sn_distill_share(&o, 0) == 0.0f);
    assert_float_equal(sn_distill_share(&o, 10), 0.125, 1e-7);
    assert_float_equal(sn_distill_share(&o, 39), 0.5 * 39 / 40, 1e-7);
    assert_true(sn_distill_share(&o, 40) == 0.5f);
    assert_true(sn_distill_share(&o, 99) == 0.5f);
    o.distill_ramp = 0.0;
    assert_true(sn_distill_share(&o, 0) == 0.5f);

    enum { R = 3, C = 4 };
    const float logits_t[R * C] = {2, 0, 1, -1, 0, 3, 0.5f, 0, 1, 1, -1, 2};
    const float logits_s[R * C] = {1, 2, 0, -1, 0.5f, 0.5f, 3, 0, -2, 1, 1, 0};
    const int32_t labels[R] = {0, 1, 3};
    const float eps = o.label_smoothing;
    o.distill_ramp = 0.4;
    const float share = sn_distill_share(&o, 10); /* 0.125 */
    float teacher[R * C], probs[R * C], dl[R * C], dl_soft[R * C], dl_hard[R * C];
    sn_member_loss(&o, 10, 0, 4, dl, teacher, logits_t, labels, R, C, 1.0f);
    sn_softmax(probs, logits_t, R, C, 1.0f);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            const double label = eps / C + (j == labels[i] ? 1.0 - eps : 0.0);
            assert_float_equal(teacher[i * C + j], share * probs[i * C + j] + (1 - share) * label,
                               1e-6);
        }
    const float blended = sn_member_loss(&o, 10, 1, 4, dl, teacher, logits_s, labels, R, C, 2.0f);
    const float soft = sn_xent_soft(dl_soft, logits_s, probs, R, C, 2.0f);
    const float hard = sn_xent_hard(dl_hard, NULL, logits_s, labels, R, C, eps, 2.0f);
    assert_float_equal(blended, share * soft + (1 - share) * hard, 1e-5);
    for (int i = 0; i < R * C; i++)
        assert_float_equal(dl[i], share * dl_soft[i] + (1 - share) * dl_hard[i], 1e-6);
    /* at share 1 the teacher's targets are its probabilities, bit for bit */
    sn_member_loss(&o, 40, 0, 4, dl, teacher, logits_t, labels, R, C, 1.0f);
    assert_memory_not_equal(teacher, probs, sizeof probs); /* share 0.5 */
    o.distill_weight = 1.0f;
    sn_member_loss(&o, 40, 0, 4, dl, teacher, logits_t, labels, R, C, 1.0f);
    assert_memory_equal(teacher, probs, sizeof probs);
    /* out of range */
    o.distill_weight = 0.0f;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--distill-weight 0: must be in (0, 1]");
    o.distill_weight = 1.0f;
    o.distill_ramp = 1.5;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--distill-ramp 1.5: must be in [0, 1]");
}

/* Per elastic dimension, whether any of nets differs from the largest. */
typedef struct varied {
    bool depth, heads, mlp, embed;
} varied;

static void note_variation(const sn_space *s, const sn_subnet *n, varied *v)
{
    sn_subnet big;
    sn_subnet_max(s, &big);
    v->embed |= n->embed != big.embed;
    for (int st = 0; st < n->n_stages; st++) v->depth |= n->depth[st] != big.depth[st];
    for (int i = 0; i < n->n_blocks; i++) {
        v->heads |= n->heads[i] != big.heads[0];
        v->mlp |= n->mlp[i] != big.mlp[0];
    }
}

static void test_progressive(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    sn_train_opts o = sched_opts(SN_SCHEDULE_PROGRESSIVE, 100);
    const double shares[4] = {0.1, 0.2, 0.3, 0.4};
    memcpy(o.phases, shares, sizeof shares);
    char err[256];
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_OK);
    /* boundaries: floor(100 * 0.1) = 10, floor(100 * 0.3) = 30, 60 */
    const int64_t steps[] = {0, 9, 10, 29, 30, 59, 60, 99};
    const int phase[] = {0, 0, 1, 1, 2, 2, 3, 3};
    for (int i = 0; i < 8; i++) assert_int_equal(sn_schedule_phase(&o, steps[i]), phase[i]);
    const unsigned open[4] = {0, SN_DIM_DEPTH, SN_DIM_DEPTH | SN_DIM_HEADS | SN_DIM_MLP,
                              SN_DIM_ALL};
    varied seen[4] = {{0}};
    sn_subnet big;
    sn_subnet_max(&s, &big);
    for (int64_t step = 0; step < 100; step++) {
        const int p = sn_schedule_phase(&o, step);
        assert_int_equal(sn_schedule_open_dims(&o, step), open[p]);
        members m = members_at(&s, &o, step);
        assert_true(same_net(&m.net[0], &big));
        for (int k = 0; k < m.n; k++) assert_true(m.weight[k] == 1.0f);
        if (p == 0) {
            assert_int_equal(m.n, 1);
            assert_string_equal(m.role[0], "full");
            continue;
        }
        assert_int_equal(m.n, 2 + o.n_random);
        assert_string_equal(m.role[0], "max");
        assert_string_equal(m.role[1], "min");
        sn_subnet small;
        sn_subnet_min_dims(&s, open[p], &small);
        assert_true(same_net(&m.net[1], &small));
        for (int k = 2; k < m.n; k++) assert_string_equal(m.role[k], "rand");
        for (int k = 1; k < m.n; k++) note_variation(&s, &m.net[k], &seen[p]);
    }
    /* each dimension varies exactly from the phase that opens it */
    assert_true(seen[1].depth && !seen[1].heads && !seen[1].mlp && !seen[1].embed);
    assert_true(seen[2].depth && seen[2].heads && seen[2].mlp && !seen[2].embed);
    assert_true(seen[3].depth && seen[3].heads && seen[3].mlp && seen[3].embed);
    /* and the random members vary, not only the smallest: in phase 3, over
     * the random members alone */
    varied rand3 = {0};
    for (int64_t step = 60; step < 100; step++) {
        members m = members_at(&s, &o, step);
        for (int k = 2; k < m.n; k++) note_variation(&s, &m.net[k], &rand3);
    }
    assert_true(rand3.depth && rand3.heads && rand3.mlp && rand3.embed);

    /* the + 1e-6: 0.29 of 100 steps is 29 */
    const double s2[4] = {0.29, 0.21, 0.25, 0.25};
    memcpy(o.phases, s2, sizeof s2);
    assert_int_equal(sn_schedule_phase(&o, 28), 0);
    assert_int_equal(sn_schedule_phase(&o, 29), 1);
    /* default shares on 7 steps: boundaries 1, 3, 5 */
    o = sched_opts(SN_SCHEDULE_PROGRESSIVE, 7);
    const int p7[7] = {0, 1, 1, 2, 2, 3, 3};
    for (int64_t step = 0; step < 7; step++)
        assert_int_equal(sn_schedule_phase(&o, step), p7[step]);
    /* an empty phase is skipped: 0.5,0,0.5,0 of 10 steps */
    const double s3[4] = {0.5, 0, 0.5, 0};
    memcpy(o.phases, s3, sizeof s3);
    o.adamw.total = 10;
    for (int64_t step = 0; step < 10; step++)
        assert_int_equal(sn_schedule_phase(&o, step), step < 5 ? 0 : 2);
    /* the shares must sum to 1 */
    const double bad[4] = {0.5, 0.6, 0, 0};
    memcpy(o.phases, bad, sizeof bad);
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--phases 0.5,0.6,0,0: the shares sum to 1.1, not 1");
    const double neg[4] = {1.1, -0.1, 0, 0};
    memcpy(o.phases, neg, sizeof neg);
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--phases 1.1,-0.1,0,0: share 1.1 is not in [0, 1]");
    const double close[4] = {0.25, 0.25, 0.25, 0.2500005};
    memcpy(o.phases, close, sizeof close);
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_OK);
}

static void test_deps(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    sn_train_opts o = sched_opts(SN_SCHEDULE_DEPS, 100); /* delay 0.5, ramp 0.1 */
    sn_train_opts sw = sched_opts(SN_SCHEDULE_SANDWICH, 100);
    sn_subnet big;
    sn_subnet_max(&s, &big);
    for (int64_t step = 0; step < 100; step++) {
        members m = members_at(&s, &o, step);
        assert_true(same_net(&m.net[0], &big));
        assert_true(m.weight[0] == 1.0f);
        if (step < 50) {
            assert_int_equal(sn_schedule_phase(&o, step), 0);
            assert_int_equal(m.n, 1);
            assert_string_equal(m.role[0], "full");
            continue;
        }
        /* the sandwich's members, the others' weights (step - 50 + 1) / 10 */
        assert_int_equal(sn_schedule_phase(&o, step), step < 59 ? 1 : 2);
        members w = members_at(&s, &sw, step);
        assert_int_equal(m.n, w.n);
        const float want = step < 60 ? (float)((double)(step - 49) / 10.0) : 1.0f;
        for (int k = 0; k < m.n; k++) {
            assert_true(same_net(&m.net[k], &w.net[k]));
            assert_string_equal(m.role[k], w.role[k]);
            if (k > 0 && m.weight[k] != want)
                fail_msg("step %lld member %d: weight %g, want %g", (long long)step, k,
                         (double)m.weight[k], (double)want);
        }
    }
    members m = members_at(&s, &o, 50);
    assert_true(m.weight[1] == 0.1f && m.weight[2] == 0.1f);
    m = members_at(&s, &o, 54);
    assert_true(m.weight[1] == 0.5f);
    m = members_at(&s, &o, 59);
    assert_true(m.weight[1] == 1.0f);
    /* a ramp of 0 (or shorter than a step) weighs 1 at once */
    o.deps_ramp = 0.0;
    m = members_at(&s, &o, 50);
    assert_true(m.weight[1] == 1.0f);
    assert_int_equal(sn_schedule_phase(&o, 50), 2);
    /* the delay must leave steps to shrink */
    char err[256];
    o.deps_delay = 1.0;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--deps-delay 1: must be in [0, 1)");
    o.deps_delay = 0.5;
    o.deps_ramp = 1.5;
    assert_int_equal(sn_train_opts_check(&o, err, sizeof err), SN_ERR);
    assert_string_equal(err, "--deps-ramp 1.5: must be in [0, 1]");
}

/* The bucket of m among B equal intervals of [lo, hi] (sn_sample_by). */
static int bucket_of(int64_t m, int64_t lo, int64_t hi, int B)
{
    int b = (int)((double)(m - lo) * B / (double)(hi - lo));
    return b >= B ? B - 1 : b;
}

/* --sample-by macs: 4000 random members spread evenly over 4 MAC buckets,
 * where uniform sampling piles them into the lower ones. */
static void test_sample_by_macs(void **state)
{
    (void)state;
    sn_space s;
    small_space(&s);
    enum { B = 4, DRAWS = 4000, PER_STEP = 8 };
    sn_subnet lo_net, hi_net;
    sn_subnet_min(&s, &lo_net);
    sn_subnet_max(&s, &hi_net);
    const int64_t lo = sn_subnet_macs(&s, &lo_net), hi = sn_subnet_macs(&s, &hi_net);
    int hist[2][B] = {{0}};
    for (int by = 0; by < 2; by++) {
        sn_train_opts o = sched_opts(SN_SCHEDULE_SORTEDNET, 1000);
        o.subnets_per_step = PER_STEP;
        o.sample_by = by ? SN_SAMPLE_MACS : SN_SAMPLE_UNIFORM;
        o.macs_buckets = B;
        for (int64_t step = 0; step < DRAWS / PER_STEP; step++) {
            members m = members_at(&s, &o, step), again = members_at(&s, &o, step);
            for (int k = 0; k < m.n; k++) {
                assert_true(same_net(&m.net[k], &again.net[k]));
                hist[by][bucket_of(sn_subnet_macs(&s, &m.net[k]), lo, hi, B)]++;
            }
        }
    }
    printf("MAC buckets, uniform: %d %d %d %d; by MACs: %d %d %d %d\n", hist[0][0], hist[0][1],
           hist[0][2], hist[0][3], hist[1][0], hist[1][1], hist[1][2], hist[1][3]);
    int uniform_off = 0;
    for (int b = 0; b < B; b++) {
        /* each within 15% of DRAWS / B (the binomial's sd is 27) */
        assert_true(hist[1][b] > 850 && hist[1][b] < 1150);
        int off = abs(hist[0][b] - DRAWS / B);
        uniform_off = off > uniform_off ? off : uniform_off;
    }
    assert_true(uniform_off > 400);
    assert_true(hist[0][B - 1] * 3 < hist[1][B - 1]);

    /* the default space with 8 buckets: uniform draws almost never reach
     * the largest sizes; the walk towards the bucket fills them too */
    sn_space d;
    sn_space_default(&d);
    enum { DB = 8, DDRAWS = 4000 };
    sn_subnet_min(&d, &lo_net);
    sn_subnet_max(&d, &hi_net);
    const int64_t dlo = sn_subnet_macs(&d, &lo_net), dhi = sn_subnet_macs(&d, &hi_net);
    int dh[DB] = {0};
    sn_train_opts od = sched_opts(SN_SCHEDULE_SORTEDNET, 1000);
    od.subnets_per_step = PER_STEP;
    od.sample_by = SN_SAMPLE_MACS;
    od.macs_buckets = DB;
    for (int64_t step = 0; step < DDRAWS / PER_STEP; step++) {
        members m = members_at(&d, &od, step);
        for (int k = 0; k < m.n; k++) {
            char why[256];
            assert_int_equal(sn_subnet_validate(&d, &m.net[k], why, sizeof why), SN_OK);
            dh[bucket_of(sn_subnet_macs(&d, &m.net[k]), dlo, dhi, DB)]++;
        }
    }
    printf("default space, 8 MAC buckets by MACs:");
    for (int b = 0; b < DB; b++) printf(" %d", dh[b]);
    printf("\n");
    for (int b = 0; b < DB; b++) /* within 20% of 500 (the binomial's sd is 21) */
        assert_true(dh[b] > 400 && dh[b] < 600);

    /* log-macs: the same evenness on ln MACs; uniform and by MACs, the
     * first bucket of ln MACs (the smallest eighth of the cost ratios)
     * gets far fewer */
    int lh[3][DB] = {{0}};
    const double llo = log((double)dlo), lhi = log((double)dhi);
    const sn_sample_by bys[3] = {SN_SAMPLE_UNIFORM, SN_SAMPLE_MACS, SN_SAMPLE_LOG_MACS};
    for (int by = 0; by < 3; by++) {
        sn_train_opts ol = od;
        ol.sample_by = bys[by];
        for (int64_t step = 0; step < DDRAWS / PER_STEP; step++) {
            members m = members_at(&d, &ol, step), again = members_at(&d, &ol, step);
            for (int k = 0; k < m.n; k++) {
                char why[256];
                assert_true(same_net(&m.net[k], &again.net[k]));
                assert_int_equal(sn_subnet_validate(&d, &m.net[k], why, sizeof why), SN_OK);
                const double x = log((double)sn_subnet_macs(&d, &m.net[k]));
                const int b = (int)((x - llo) * DB / (lhi - llo));
                lh[by][b >= DB ? DB - 1 : b]++;
            }
        }
    }
    for (int by = 0; by < 3; by++) {
        printf("%s", by == 0   ? "default space, 8 log-MAC buckets: uniform"
                     : by == 1 ? "; by MACs"
                               : "; by log-MACs");
        for (int b = 0; b < DB; b++) printf(" %d", lh[by][b]);
    }
    printf("\n");
    assert_true(lh[0][0] * 4 < lh[2][0] && lh[1][0] * 4 < lh[2][0]);
    for (int b = 0; b < DB; b++)
        assert_true(lh[2][b] > 400 && lh[2][b] < 600);

    /* in progressive phase 1 only depth is open: the buckets span the
     * depths at full width, and a MACs draw changes nothing else */
    sn_train_opts o = sched_opts(SN_SCHEDULE_PROGRESSIVE, 100);
    o.sample_by = SN_SAMPLE_MACS;
    varied v = {0};
    for (int64_t step = 25; step < 50; step++) {
        members m = members_at(&s, &o, step);
        for (int k = 1; k < m.n; k++) note_variation(&s, &m.net[k], &v);
    }
    assert_true(v.depth && !v.heads && !v.mlp && !v.embed);
}

/* Same (seed, step), same members; another seed, other random members. */
static void test_schedules_deterministic(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    const sn_schedule all[] = {SN_SCHEDULE_SANDWICH, SN_SCHEDULE_SORTEDNET,
                               SN_SCHEDULE_PROGRESSIVE, SN_SCHEDULE_DEPS};
    for (int by = 0; by < 2; by++)
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            sn_train_opts o = sched_opts(all[i], 200), other = o;
            o.sample_by = other.sample_by = by ? SN_SAMPLE_MACS : SN_SAMPLE_UNIFORM;
            other.seed = 12;
            int differ = 0;
            for (int64_t step = 150; step < 200; step++) {
                members a = members_at(&s, &o, step), b = members_at(&s, &o, step);
                members c = members_at(&s, &other, step);
                assert_int_equal(a.n, b.n);
                assert_memory_equal(a.weight, b.weight, sizeof a.weight);
                for (int k = 0; k < a.n; k++) {
                    assert_true(same_net(&a.net[k], &b.net[k]));
                    assert_string_equal(a.role[k], b.role[k]);
                }
                differ += !same_net(&a.net[a.n - 1], &c.net[c.n - 1]);
            }
            assert_true(differ > 40);
        }
}

static void test_sorts_before(void **state)
{
    (void)state;
    sn_train_opts p = sched_opts(SN_SCHEDULE_PROGRESSIVE, 100);
    const double shares[4] = {0.1, 0.2, 0.3, 0.4};
    memcpy(p.phases, shares, sizeof shares);
    sn_train_opts d = sched_opts(SN_SCHEDULE_DEPS, 100);
    sn_train_opts others[3] = {sched_opts(SN_SCHEDULE_SANDWICH, 100),
                               sched_opts(SN_SCHEDULE_SORTEDNET, 100),
                               sched_opts(SN_SCHEDULE_FIXED, 100)};
    for (int64_t step = 0; step < 100; step++) {
        assert_int_equal(sn_schedule_sorts_before(&p, step), step == 30);
        assert_int_equal(sn_schedule_sorts_before(&d, step), step == 50);
        for (int i = 0; i < 3; i++) assert_false(sn_schedule_sorts_before(&others[i], step));
    }
    /* off: never; at step 0: never */
    p.sort_channels = d.sort_channels = false;
    assert_false(sn_schedule_sorts_before(&p, 30));
    assert_false(sn_schedule_sorts_before(&d, 50));
    d.sort_channels = true;
    d.deps_delay = 0.0;
    for (int64_t step = 0; step < 100; step++) assert_false(sn_schedule_sorts_before(&d, step));
    /* on demand (--sort-channels 7,40): exactly there, whatever the
     * schedule, instead of where the widths open */
    sn_train_opts all[5] = {p, d, others[0], others[1], others[2]};
    for (int i = 0; i < 5; i++) {
        all[i].sort_channels = true;
        all[i].n_sort_at = 2;
        all[i].sort_at[0] = 7;
        all[i].sort_at[1] = 40;
        assert_int_equal(sn_train_opts_check(&all[i], NULL, 0), SN_OK);
        for (int64_t step = 0; step < 100; step++)
            assert_int_equal(sn_schedule_sorts_before(&all[i], step), step == 7 || step == 40);
    }
    /* the steps must increase from 1 */
    char err[160];
    all[0].sort_at[1] = 7;
    assert_int_equal(sn_train_opts_check(&all[0], err, sizeof err), SN_ERR);
    assert_string_equal(err, "--sort-channels: the steps must be increasing whole numbers from 1");
    all[0].sort_at[0] = 0;
    all[0].n_sort_at = 1;
    assert_int_equal(sn_train_opts_check(&all[0], err, sizeof err), SN_ERR);
}

static void test_schedule_describe(void **state)
{
    (void)state;
    char buf[160];
    sn_train_opts o = sched_opts(SN_SCHEDULE_PROGRESSIVE, 100);
    assert_string_equal(sn_schedule_describe(&o, 0, buf, sizeof buf),
                        "progressive phase 0/3: full network only");
    assert_string_equal(sn_schedule_describe(&o, 60, buf, sizeof buf),
                        "progressive phase 2/3: elastic depth, heads and MLP widths");
    o = sched_opts(SN_SCHEDULE_DEPS, 100);
    assert_string_equal(sn_schedule_describe(&o, 10, buf, sizeof buf),
                        "deps delay: full network only");
    o.deps_ramp = 0.2;
    assert_string_equal(sn_schedule_describe(&o, 56, buf, sizeof buf),
                        "deps ramp: loss weight 0.35 for all but the largest");
    o = sched_opts(SN_SCHEDULE_SANDWICH, 100);
    assert_string_equal(sn_schedule_describe(&o, 3, buf, sizeof buf),
                        "sandwich: largest, smallest and 2 random");
    /* names round-trip; an unknown one is refused */
    for (int i = SN_SCHEDULE_SANDWICH; i <= SN_SCHEDULE_FIXED; i++) {
        sn_schedule sc;
        assert_int_equal(sn_schedule_parse(sn_schedule_name((sn_schedule)i), &sc), SN_OK);
        assert_int_equal(sc, i);
    }
    sn_schedule sc;
    assert_int_equal(sn_schedule_parse("sandwhich", &sc), SN_ERR);
}

/* sn_train_step puts each member's weight on its gradient: at a deps
 * ramp step, the gradient is g_max + w * g_others, so it is linear in w
 * (three ramps, three weights, the same members and batch). */
static void test_train_step_weights_gradients(void **state)
{
    (void)state;
    char err[512];
    sn_space s;
    small_space(&s);
    enum { B = 4 };
    float tok[B * 49 * 16];
    int32_t lab[B];
    sn_rng r;
    sn_rng_seed(&r, 3, 0);
    for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++) tok[i] = sn_rng_normal(&r);
    for (int i = 0; i < B; i++) lab[i] = (int32_t)sn_rng_below(&r, 10);
    /* step 50 of 100 after a delay of 0.5: weight 1 / floor(100 * ramp) */
    const double ramps[3] = {0.1, 0.02, 0.01};
    const float want_w[3] = {0.1f, 0.5f, 1.0f};
    float *g[3];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        sn_train_opts o = sched_opts(SN_SCHEDULE_DEPS, 100);
        o.deps_ramp = ramps[i];
        o.threads = 1;
        sn_model *m = sn_model_create(&s, 5);
        assert_non_null(m);
        sn_trainer t;
        assert_int_equal(sn_trainer_init(&t, m, B, &o, err, sizeof err), SN_OK);
        t.step = 50;
        sn_step_stats st;
        assert_int_equal(sn_train_step(&t, tok, lab, B, &st, err, sizeof err), SN_OK);
        assert_int_equal(st.n_members, 4);
        assert_true(st.weight[0] == 1.0f && st.weight[1] == want_w[i] && st.weight[3] == want_w[i]);
        n = m->n_params;
        g[i] = sn_alloc(n * sizeof(float));
        memcpy(g[i], m->grads, n * sizeof(float));
        sn_trainer_free(&t);
        sn_model_destroy(m);
    }
    /* (g(0.5) - g(0.1)) / 0.4 = (g(1) - g(0.1)) / 0.9 = g_others */
    double worst = 0, scale = 0, moved = 0;
    for (size_t j = 0; j < n; j++) {
        const double a = ((double)g[1][j] - g[0][j]) / 0.4, b = ((double)g[2][j] - g[0][j]) / 0.9;
        worst = fmax(worst, fabs(a - b));
        scale = fmax(scale, fabs(b));
        moved = fmax(moved, fabs((double)g[2][j] - g[0][j]));
    }
    printf("gradient linear in the member weight: worst %.3g of %.3g\n", worst, scale);
    assert_true(moved > 1e-3);
    assert_true(worst <= 1e-4 * scale);
    for (int i = 0; i < 3; i++) sn_free(g[i]);
}

int main(void)
{
    const struct CMUnitTest schedules[] = {
        cmocka_unit_test(test_sandwich_unchanged),
        cmocka_unit_test(test_sortednet),
        cmocka_unit_test(test_distill_share),
        cmocka_unit_test(test_progressive),
        cmocka_unit_test(test_deps),
        cmocka_unit_test(test_sample_by_macs),
        cmocka_unit_test(test_schedules_deterministic),
        cmocka_unit_test(test_sorts_before),
        cmocka_unit_test(test_schedule_describe),
        cmocka_unit_test(test_train_step_weights_gradients),
    };
    const struct CMUnitTest training[] = {
        cmocka_unit_test(test_sandwich_loss_goes_down),
        cmocka_unit_test(test_same_seed_same_run),
        cmocka_unit_test(test_fixed_subnet_trains_only_its_slice),
    };
    int failed = cmocka_run_group_tests_name("schedules", schedules, setup_blas, NULL);
    return failed + cmocka_run_group_tests_name("training", training, setup, teardown);
}
