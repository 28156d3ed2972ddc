#include "src/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/ops.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

enum { STREAM_SAMPLER = 0x5a3d };

void sn_train_opts_default(sn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->schedule = SN_SCHEDULE_SANDWICH;
    o->n_random = 2;
    o->subnets_per_step = 4;
    for (int p = 0; p < SN_PHASES; p++) o->phases[p] = 1.0 / SN_PHASES;
    o->deps_delay = 0.5;
    o->deps_ramp = 0.1;
    o->sample_by = SN_SAMPLE_UNIFORM;
    o->macs_buckets = 8;
    o->sort_channels = true;
    o->distill = true;
    o->distill_weight = 1.0f;
    o->distill_ramp = 0.0;
    o->label_smoothing = 0.1f;
    o->clip = 1.0f;
    o->adamw = (sn_adamw_opts){
        .lr = 1e-3f, .min_lr = 1e-5f, .beta1 = 0.9f, .beta2 = 0.999f,
        .eps = 1e-8f, .weight_decay = 0.05f, .warmup = 0, .total = 1,
    };
    o->seed = 1;
    o->threads = 1;
}

int sn_train_opts_check(const sn_train_opts *o, char *err, size_t errlen)
{
    if (o->n_random < 0 || o->n_random > SN_MAX_RANDOM)
        return sn_errf(err, errlen, "--sandwich-random %d: must be 0..%d", o->n_random,
                       SN_MAX_RANDOM);
    if (o->subnets_per_step < 1 || o->subnets_per_step > SN_MAX_MEMBERS)
        return sn_errf(err, errlen, "--subnets-per-step %d: must be in 1..%d",
                       o->subnets_per_step, SN_MAX_MEMBERS);
    const double *a = o->phases;
    char shares[128];
    snprintf(shares, sizeof shares, "%g,%g,%g,%g", a[0], a[1], a[2], a[3]);
    double sum = 0;
    for (int p = 0; p < SN_PHASES; p++) {
        if (!(a[p] >= 0.0 && a[p] <= 1.0))
            return sn_errf(err, errlen, "--phases %s: share %g is not in [0, 1]", shares, a[p]);
        sum += a[p];
    }
    if (fabs(sum - 1.0) > 1e-6)
        return sn_errf(err, errlen, "--phases %s: the shares sum to %g, not 1", shares, sum);
    if (!(o->deps_delay >= 0.0 && o->deps_delay < 1.0))
        return sn_errf(err, errlen, "--deps-delay %g: must be in [0, 1)", o->deps_delay);
    if (!(o->deps_ramp >= 0.0 && o->deps_ramp <= 1.0))
        return sn_errf(err, errlen, "--deps-ramp %g: must be in [0, 1]", o->deps_ramp);
    if (!(o->distill_weight > 0.0f && o->distill_weight <= 1.0f))
        return sn_errf(err, errlen, "--distill-weight %g: must be in (0, 1]",
                       (double)o->distill_weight);
    if (!(o->distill_ramp >= 0.0 && o->distill_ramp <= 1.0))
        return sn_errf(err, errlen, "--distill-ramp %g: must be in [0, 1]", o->distill_ramp);
    if (o->macs_buckets < 1 || o->macs_buckets > SN_MAX_MACS_BUCKETS)
        return sn_errf(err, errlen, "--macs-buckets %d: must be in 1..%d", o->macs_buckets,
                       SN_MAX_MACS_BUCKETS);
    if (o->n_sort_at < 0 || o->n_sort_at > SN_MAX_SORT_STEPS)
        return sn_errf(err, errlen, "--sort-channels: at most %d steps", SN_MAX_SORT_STEPS);
    for (int i = 0; i < o->n_sort_at; i++)
        if (o->sort_at[i] < 1 || (i > 0 && o->sort_at[i] <= o->sort_at[i - 1]))
            return sn_errf(err, errlen, "--sort-channels: the steps must be increasing whole "
                                        "numbers from 1");
    return SN_OK;
}

int sn_trainer_init(sn_trainer *t, sn_model *m, int64_t max_batch,
                    const sn_train_opts *o, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->model = m;
    t->o = *o;
    t->max_batch = max_batch;
    if (sn_train_opts_check(o, err, errlen) != SN_OK) return SN_ERR;
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

static const char *const SCHEDULE_NAMES[] = {
    [SN_SCHEDULE_SANDWICH] = "sandwich", [SN_SCHEDULE_SORTEDNET] = "sortednet",
    [SN_SCHEDULE_PROGRESSIVE] = "progressive", [SN_SCHEDULE_DEPS] = "deps",
    [SN_SCHEDULE_FIXED] = "fixed",
};
enum { N_SCHEDULES = sizeof SCHEDULE_NAMES / sizeof SCHEDULE_NAMES[0] };

const char *sn_schedule_name(sn_schedule s)
{
    SN_CHECK((int)s >= 0 && (int)s < N_SCHEDULES);
    return SCHEDULE_NAMES[s];
}

int sn_schedule_parse(const char *name, sn_schedule *out)
{
    for (int i = 0; i < N_SCHEDULES; i++)
        if (strcmp(name, SCHEDULE_NAMES[i]) == 0) {
            *out = (sn_schedule)i;
            return SN_OK;
        }
    return SN_ERR;
}

/* floor(T * share + 1e-6): the step a share of the run ends at. */
static int64_t steps_of(const sn_train_opts *o, double share)
{
    return (int64_t)floor((double)o->adamw.total * share + 1e-6);
}

/* progressive: b_p, the first step of phase p (sn_schedule_phase) */
static int64_t phase_start(const sn_train_opts *o, int p)
{
    double share = 0;
    for (int i = 0; i < p; i++) share += o->phases[i];
    return steps_of(o, share);
}

/* deps: D, the first step after the delay, and R, the ramp's steps */
static int64_t deps_start(const sn_train_opts *o) { return steps_of(o, o->deps_delay); }

static int64_t deps_ramp_steps(const sn_train_opts *o)
{
    const int64_t r = steps_of(o, o->deps_ramp);
    return r > 1 ? r : 1;
}

int sn_schedule_phase(const sn_train_opts *o, int64_t step)
{
    switch (o->schedule) {
    case SN_SCHEDULE_PROGRESSIVE: {
        int p = 0;
        for (int q = 1; q < SN_PHASES; q++)
            if (phase_start(o, q) <= step) p = q;
        return p;
    }
    case SN_SCHEDULE_DEPS: {
        const int64_t d = deps_start(o);
        /* the ramp's last step already weighs 1 */
        return step < d ? 0 : step < d + deps_ramp_steps(o) - 1 ? 1 : 2;
    }
    default: return 0;
    }
}

unsigned sn_schedule_open_dims(const sn_train_opts *o, int64_t step)
{
    if (o->schedule != SN_SCHEDULE_PROGRESSIVE) return SN_DIM_ALL;
    static const unsigned open[SN_PHASES] = {
        0, SN_DIM_DEPTH, SN_DIM_DEPTH | SN_DIM_HEADS | SN_DIM_MLP, SN_DIM_ALL};
    return open[sn_schedule_phase(o, step)];
}

float sn_schedule_weight(const sn_train_opts *o, int64_t step)
{
    if (o->schedule != SN_SCHEDULE_DEPS) return 1.0f;
    const int64_t d = deps_start(o), r = deps_ramp_steps(o);
    if (step < d || step - d + 1 >= r) return 1.0f;
    return (float)((double)(step - d + 1) / (double)r);
}

int64_t sn_distill_ramp_end(const sn_train_opts *o) { return steps_of(o, o->distill_ramp); }

float sn_distill_share(const sn_train_opts *o, int64_t step)
{
    const int64_t r = sn_distill_ramp_end(o);
    if (step >= r) return o->distill_weight;
    return (float)((double)o->distill_weight * (double)step / (double)r);
}

bool sn_schedule_sorts_before(const sn_train_opts *o, int64_t step)
{
    if (o->n_sort_at > 0) {
        for (int i = 0; i < o->n_sort_at; i++)
            if (o->sort_at[i] == step) return step > 0;
        return false;
    }
    if (!o->sort_channels || step <= 0) return false;
    if (o->schedule == SN_SCHEDULE_PROGRESSIVE) return step == phase_start(o, 2);
    if (o->schedule == SN_SCHEDULE_DEPS) return step == deps_start(o);
    return false;
}

const char *sn_sample_by_label(sn_sample_by by)
{
    return by == SN_SAMPLE_MACS ? "MACs" : by == SN_SAMPLE_LOG_MACS ? "log-MACs" : NULL;
}

const char *sn_schedule_describe(const sn_train_opts *o, int64_t step, char *buf, size_t len)
{
    static const char *const opened[SN_PHASES] = {
        "full network only", "elastic depth", "elastic depth, heads and MLP widths",
        "every dimension elastic (depth, heads, MLP and embedding widths)"};
    const char *label = sn_sample_by_label(o->sample_by);
    char by[32] = "";
    if (label) snprintf(by, sizeof by, ", drawn by %s", label);
    const int phase = sn_schedule_phase(o, step);
    switch (o->schedule) {
    case SN_SCHEDULE_SANDWICH:
        snprintf(buf, len, "sandwich: largest, smallest and %d random%s", o->n_random, by);
        break;
    case SN_SCHEDULE_SORTEDNET:
        snprintf(buf, len, "sortednet: %d random on the labels%s", o->subnets_per_step, by);
        break;
    case SN_SCHEDULE_PROGRESSIVE:
        snprintf(buf, len, "progressive phase %d/%d: %s%s", phase, SN_PHASES - 1, opened[phase],
                 phase > 0 ? by : "");
        break;
    case SN_SCHEDULE_DEPS:
        if (phase == 0)
            snprintf(buf, len, "deps delay: full network only");
        else if (phase == 1)
            snprintf(buf, len, "deps ramp: loss weight %.2g for all but the largest%s",
                     (double)sn_schedule_weight(o, step), by);
        else
            snprintf(buf, len, "deps: sandwich at full loss weight%s", by);
        break;
    case SN_SCHEDULE_FIXED: snprintf(buf, len, "fixed sub-network"); break;
    }
    return buf;
}

/* Where MACs m lies on the axis the buckets cut into equal intervals:
 * m itself for --sample-by macs, ln m for log-macs (sn_sample_by). */
static double macs_axis(const sn_train_opts *o, int64_t m)
{
    return o->sample_by == SN_SAMPLE_LOG_MACS ? log((double)(m > 0 ? m : 1)) : (double)m;
}

/* The bucket (of B) that x falls into on [lo, hi] (sn_sample_by). */
static int macs_bucket(double x, double lo, double hi, int B)
{
    if (hi <= lo) return 0;
    const double b = floor((x - lo) * B / (hi - lo));
    return b < 0 ? 0 : b >= B - 1 ? B - 1 : (int)b;
}

/* How far x lies outside [lo, hi] (0 inside). */
static double outside(double x, double lo, double hi)
{
    return x < lo ? lo - x : x > hi ? x - hi : 0.0;
}

/* Index of choice v in c[0..n). */
static int choice_index(const int *c, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (c[i] == v) return i;
    return n - 1;
}

/* Moves one open dimension of n, picked at random among those that can,
 * one choice up (dir > 0: more MACs) or down: the embedding, a block's
 * heads or MLP width, or a stage's depth (a block added at the stage's
 * end, at the smallest open or the largest closed choices; or its last
 * block removed).  False when no open dimension can move that way. */
static bool nudge(const sn_space *s, unsigned open, int dir, sn_rng *r, sn_subnet *n)
{
    /* the moves possible, in a fixed order: the embedding, each stage's
     * depth, then each block's heads and MLP width */
    enum { EMBED, DEPTH, HEADS, MLP };
    typedef struct move { int kind, at; } move;
    move moves[1 + SN_MAX_STAGES + 2 * SN_MAX_BLOCKS];
    int nm = 0;
    const int ei = choice_index(s->embed, s->n_embed, n->embed);
    if ((open & SN_DIM_EMBED) && (dir > 0 ? ei + 1 < s->n_embed : ei > 0))
        moves[nm++] = (move){EMBED, 0};
    for (int st = 0; st < n->n_stages && (open & SN_DIM_DEPTH); st++)
        if (dir > 0 ? n->depth[st] < s->max_depth[st] && n->n_blocks < SN_MAX_BLOCKS
                    : n->depth[st] > s->min_depth[st])
            moves[nm++] = (move){DEPTH, st};
    for (int i = 0; i < n->n_blocks; i++) {
        const int hi = choice_index(s->heads, s->n_heads, n->heads[i]);
        const int fi = choice_index(s->mlp, s->n_mlp, n->mlp[i]);
        if ((open & SN_DIM_HEADS) && (dir > 0 ? hi + 1 < s->n_heads : hi > 0))
            moves[nm++] = (move){HEADS, i};
        if ((open & SN_DIM_MLP) && (dir > 0 ? fi + 1 < s->n_mlp : fi > 0))
            moves[nm++] = (move){MLP, i};
    }
    if (nm == 0) return false;
    const int k = (int)sn_rng_below(r, (uint64_t)nm), at = moves[k].at;
    switch (moves[k].kind) {
    case EMBED: n->embed = s->embed[ei + dir]; break;
    case HEADS:
        n->heads[at] = s->heads[choice_index(s->heads, s->n_heads, n->heads[at]) + dir];
        break;
    case MLP: n->mlp[at] = s->mlp[choice_index(s->mlp, s->n_mlp, n->mlp[at]) + dir]; break;
    case DEPTH: {
        int end = 0; /* one past the stage's last kept block */
        for (int st = 0; st <= at; st++) end += n->depth[st];
        const size_t tail = sizeof(int) * (size_t)(n->n_blocks - end);
        if (dir > 0) { /* a block after the stage's last */
            memmove(n->heads + end + 1, n->heads + end, tail);
            memmove(n->mlp + end + 1, n->mlp + end, tail);
            n->heads[end] = open & SN_DIM_HEADS ? s->heads[0] : s->heads[s->n_heads - 1];
            n->mlp[end] = open & SN_DIM_MLP ? s->mlp[0] : s->mlp[s->n_mlp - 1];
        } else { /* the stage's last block removed */
            memmove(n->heads + end - 1, n->heads + end, tail);
            memmove(n->mlp + end - 1, n->mlp + end, tail);
        }
        n->depth[at] += dir;
        n->n_blocks += dir;
        break;
    }
    }
    return true;
}

/* One random member of the open dimensions, drawn by o->sample_by. */
static void draw_member(const sn_space *s, const sn_train_opts *o, unsigned open, sn_rng *r,
                        sn_subnet *out)
{
    if (o->sample_by == SN_SAMPLE_UNIFORM) {
        sn_subnet_sample_dims(s, open, r, out);
        return;
    }
    sn_subnet small, big;
    sn_subnet_min_dims(s, open, &small);
    sn_subnet_min_dims(s, 0, &big);
    const double lo = macs_axis(o, sn_subnet_macs(s, &small));
    const double hi = macs_axis(o, sn_subnet_macs(s, &big));
    const int B = o->macs_buckets;
    const int want = (int)sn_rng_below(r, (uint64_t)B);
    /* the bucket's interval, for the distance of a draw that misses it */
    const double b_lo = lo + (hi - lo) * want / B, b_hi = lo + (hi - lo) * (want + 1) / B;
    double best = INFINITY;
    for (int i = 0; i < SN_MACS_TRIES; i++) {
        sn_subnet n;
        sn_subnet_sample_dims(s, open, r, &n);
        const double x = macs_axis(o, sn_subnet_macs(s, &n));
        if (macs_bucket(x, lo, hi, B) == want) {
            *out = n;
            return;
        }
        const double dist = outside(x, b_lo, b_hi);
        if (dist < best) {
            best = dist;
            *out = n;
        }
    }
    /* a bucket uniform draws hardly reach (the largest sizes; with
     * log-macs also the smallest): walk from the nearest draw towards it,
     * one choice at a time */
    sn_subnet n = *out;
    for (int i = 0; i < SN_MACS_WALK; i++) {
        const double x = macs_axis(o, sn_subnet_macs(s, &n));
        const int b = macs_bucket(x, lo, hi, B);
        const double dist = outside(x, b_lo, b_hi);
        if (b == want || dist < best) {
            best = dist;
            *out = n;
        }
        if (b == want || !nudge(s, open, b < want ? 1 : -1, r, &n)) return;
    }
}

int sn_train_members(const sn_space *s, const sn_train_opts *o, int64_t step, sn_subnet *nets,
                     const char **roles, float *weights)
{
    if (o->schedule == SN_SCHEDULE_FIXED) {
        nets[0] = o->fixed;
        roles[0] = "fixed";
        weights[0] = 1.0f;
        return 1;
    }
    sn_rng r;
    sn_rng_seed(&r, o->seed, STREAM_SAMPLER + (uint64_t)step * 16);
    const unsigned open = sn_schedule_open_dims(o, step);
    int k = 0;
    if (o->schedule == SN_SCHEDULE_SORTEDNET) {
        for (; k < o->subnets_per_step; k++) {
            draw_member(s, o, open, &r, &nets[k]);
            roles[k] = "rand";
            weights[k] = 1.0f;
        }
        return k;
    }
    sn_subnet_max(s, &nets[k]);
    weights[k] = 1.0f;
    if (open == 0 || (o->schedule == SN_SCHEDULE_DEPS && sn_schedule_phase(o, step) == 0)) {
        roles[k++] = "full";
        return k;
    }
    roles[k++] = "max";
    const float w = sn_schedule_weight(o, step);
    sn_subnet_min_dims(s, open, &nets[k]);
    weights[k] = w;
    roles[k++] = "min";
    for (int i = 0; i < o->n_random; i++) {
        draw_member(s, o, open, &r, &nets[k]);
        weights[k] = w;
        roles[k++] = "rand";
    }
    return k;
}

/* Whether the members after the first learn from its predictions. */
bool sn_schedule_has_teacher(const sn_train_opts *o)
{
    return o->distill && o->schedule != SN_SCHEDULE_SORTEDNET &&
           o->schedule != SN_SCHEDULE_FIXED;
}

static bool distilling(const sn_train_opts *o, int n)
{
    return n > 1 && sn_schedule_has_teacher(o);
}

/* The students' targets in place of the teacher's probabilities p (rows,
 * C): share * p + (1 - share) * the smoothed one-hot label. */
static void blend_labels(float *p, const int32_t *labels, int64_t rows, int64_t C, float share,
                         float eps)
{
    const double off = (double)eps / (double)C;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < C; j++) {
            const double label = off + (j == labels[i] ? 1.0 - eps : 0.0);
            p[i * C + j] = (float)(share * (double)p[i * C + j] + (1.0 - share) * label);
        }
}

float sn_member_loss(const sn_train_opts *o, int64_t step, int k, int n, float *dlogits,
                     float *teacher, const float *logits, const int32_t *labels, int64_t rows,
                     int64_t C, float scale)
{
    const bool distill = distilling(o, n);
    float loss = k > 0 && distill
                     ? sn_xent_soft(dlogits, logits, teacher, rows, C, scale)
                     : sn_xent_hard(dlogits, NULL, logits, labels, rows, C, o->label_smoothing,
                                    scale);
    /* The teacher's targets are a constant for the students (no gradient
     * flows into them). */
    if (k == 0 && distill) {
        sn_softmax(teacher, logits, rows, C, 1.0f);
        const float share = sn_distill_share(o, step);
        if (share < 1.0f) blend_labels(teacher, labels, rows, C, share, o->label_smoothing);
    }
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
    st->n_members = sn_train_members(&m->space, &t->o, t->step, st->net, st->role, st->weight);
    sn_model_zero_grad(m);
    sn_acts_share_stem(t->acts, st->n_members);
    for (int k = 0; k < st->n_members; k++) {
        const float *logits = sn_model_forward(nt, m, t->acts, &st->net[k], tokens, b);
        st->loss[k] = sn_member_loss(&t->o, t->step, k, st->n_members, t->dlogits, t->teacher,
                                     logits, labels, b, C, st->weight[k]);
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
