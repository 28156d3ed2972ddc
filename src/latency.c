#include "src/latency.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/model.h"
#include "src/rng.h"
#include "src/util.h"

enum { STREAM_INPUT = 0x1a7e };

sn_latency_table *sn_latency_table_create(const sn_space *s)
{
    sn_latency_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->space = *s;
    t->scale = 1.0;
    t->embed_ms = calloc((size_t)s->n_embed, sizeof(float));
    t->head_ms = calloc((size_t)s->n_embed, sizeof(float));
    t->block_ms = calloc((size_t)(s->n_embed * s->n_heads * s->n_mlp), sizeof(float));
    if (!t->embed_ms || !t->head_ms || !t->block_ms) {
        sn_latency_table_destroy(t);
        return NULL;
    }
    return t;
}

void sn_latency_table_destroy(sn_latency_table *t)
{
    if (!t) return;
    free(t->embed_ms);
    free(t->block_ms);
    free(t->head_ms);
    free(t);
}

float *sn_latency_block(const sn_latency_table *t, int ie, int ih, int im)
{
    const sn_space *s = &t->space;
    SN_CHECK(ie >= 0 && ie < s->n_embed && ih >= 0 && ih < s->n_heads && im >= 0 &&
             im < s->n_mlp);
    return t->block_ms + ((size_t)ie * (size_t)s->n_heads + (size_t)ih) * (size_t)s->n_mlp +
           (size_t)im;
}

/* Index of value v in the ascending list c[0..n); the caller has checked
 * that it is there. */
static int choice_index(const int *c, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (c[i] == v) return i;
    sn_fatal(__FILE__, __LINE__, "value not among the space's choices");
}

/* The sum of the parts of n. */
static double parts_ms(const sn_latency_table *t, const sn_subnet *n)
{
    const sn_space *s = &t->space;
    const int ie = choice_index(s->embed, s->n_embed, n->embed);
    double ms = (double)t->embed_ms[ie] + (double)t->head_ms[ie];
    for (int i = 0; i < n->n_blocks; i++)
        ms += (double)*sn_latency_block(t, ie, choice_index(s->heads, s->n_heads, n->heads[i]),
                                        choice_index(s->mlp, s->n_mlp, n->mlp[i]));
    return ms;
}

double sn_latency_predict(const sn_latency_table *t, const sn_subnet *n)
{
    return t->offset_ms + t->scale * parts_ms(t, n);
}

enum { STREAM_CALIBRATE = 0xca1b };

int sn_latency_calibrate(sn_latency_table *t, const sn_attn_engine *attn, int k, uint64_t seed,
                         char *err, size_t errlen)
{
    SN_CHECK(k >= 2);
    sn_latency_bench *w = sn_latency_bench_create(&t->space, t->batch, attn, seed);
    sn_subnet *nets = malloc((size_t)k * sizeof *nets);
    double *meas = malloc((size_t)k * sizeof *meas);
    int rc = w && nets && meas ? SN_OK : sn_errf(err, errlen, "out of memory calibrating");
    sn_rng r;
    sn_rng_seed(&r, seed, STREAM_CALIBRATE);
    for (int i = 0; rc == SN_OK && i < k; i++) sn_subnet_sample(&t->space, &r, &nets[i]);
    if (rc == SN_OK)
        rc = sn_latency_measure_subnets(w, nets, k, t->threads, t->reps, t->warmup, meas, err,
                                        errlen);
    if (rc == SN_OK) {
        /* least squares of the relative error (weights 1/y^2), as MAPE
         * judges: small sub-networks count as much as large ones */
        double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = 0; i < k; i++) {
            const double x = parts_ms(t, &nets[i]), y = meas[i], wt = 1.0 / (y * y);
            sw += wt;
            sx += wt * x;
            sy += wt * y;
            sxx += wt * x * x;
            sxy += wt * x * y;
        }
        const double den = sw * sxx - sx * sx;
        /* identical predictions cannot fix a slope: keep the scale */
        t->scale = den > 1e-12 * sw * sxx ? (sw * sxy - sx * sy) / den : 1.0;
        t->offset_ms = (sy - t->scale * sx) / sw;
        /* a slope that is not positive (timings too noisy: few --reps, few
         * sub-networks) is no calibration, and no reader accepts it: keep
         * the plain sum */
        if (!(t->scale > 0.0) || !isfinite(t->offset_ms)) {
            t->scale = 1.0;
            t->offset_ms = 0.0;
        }
    }
    free(nets);
    free(meas);
    sn_latency_bench_destroy(w);
    return rc;
}

/* ---- timing ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n), n >= 1 (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Random model input of b sequences of space s into in: (b, T, P) floats
 * N(0, 1) for images (with a stem, the windows of random images, which
 * agree where they overlap as real images' do, so the stem computes what it
 * computes in training), (b, T) int32 byte ids for the language model. */
static void random_input(const sn_space *s, int64_t b, sn_rng *r, void *in)
{
    const int64_t T = s->n_tokens, side = sn_stem_image_side(s);
    if (s->task == SN_TASK_LM) {
        int32_t *ids = in;
        for (int64_t i = 0; i < b * T; i++) ids[i] = (int32_t)sn_rng_below(r, 256);
        return;
    }
    float *x = in, *image = side > 0 ? malloc((size_t)(side * side) * sizeof(float)) : NULL;
    if (!image) { /* independent windows: the stem computes them token by token */
        for (int64_t i = 0; i < b * T * s->token_dim; i++) x[i] = sn_rng_normal(r);
        return;
    }
    for (int64_t i = 0; i < b; i++) {
        for (int64_t j = 0; j < side * side; j++) image[j] = sn_rng_normal(r);
        sn_stem_windows(s, image, x + i * T * s->token_dim);
    }
    free(image);
}

static size_t input_bytes(const sn_space *s, int64_t b)
{
    const size_t per_token = s->task == SN_TASK_LM ? sizeof(int32_t)
                                                   : (size_t)s->token_dim * sizeof(float);
    return (size_t)(b * s->n_tokens) * per_token;
}

/* One part of the model to time: a shard, its workspace and input. */
typedef struct part {
    sn_shard sh;
    sn_acts *acts;
    const void *input;  /* borrowed: the tokens, or the workspace's input buffer */
} part;

/* A shard of space s holding supernet blocks [lo, hi), with or without
 * the embedding and the head, the whole sequence on one rank. */
static void part_shard(const sn_space *s, const sn_attn_engine *attn, int lo, int hi, bool first,
                       bool last, sn_shard *sh)
{
    sn_shard_full(s, sh);
    sh->block_lo = lo;
    sh->block_hi = hi;
    sh->first = first;
    sh->last = last;
    sh->attn = attn;
}

/* Makes p's workspace for b sequences; a part that is not the first stage
 * gets random activations (b*T, E) in its input buffer.  SN_ERR when out
 * of memory. */
static int part_init(part *p, const sn_space *s, int64_t b, const void *tokens, sn_rng *r)
{
    p->acts = sn_acts_create_shard(s, &p->sh, b);
    if (!p->acts) return SN_ERR;
    if (p->sh.first) {
        p->input = tokens;
        return SN_OK;
    }
    float *x = sn_acts_input(p->acts);
    const int64_t count = b * s->n_tokens * s->embed[s->n_embed - 1];
    for (int64_t i = 0; i < count; i++) x[i] = sn_rng_normal(r);
    p->input = x;
    return SN_OK;
}

/* Runs warmup untimed forward passes of n through part p, then count
 * timed ones whose times (ms) go to out[0..count).  When cycle > 0 (p is
 * a one-block part), pass k (counting the warm-up) runs supernet block
 * k % cycle. */
static void time_part(const sn_model *m, part *p, const sn_subnet *n, int64_t b, int nt,
                      int count, int warmup, int cycle, double *out)
{
    if (count == 0) return;
    for (int k = 0; k < warmup + count; k++) {
        if (cycle > 0) {
            p->sh.block_lo = k % cycle;
            p->sh.block_hi = p->sh.block_lo + 1;
        }
        double t0 = sn_now();
        sn_model_forward_shard(nt, m, p->acts, &p->sh, n, p->input, b);
        if (k >= warmup) out[k - warmup] = (sn_now() - t0) * 1e3;
    }
}

/* Timed passes of sweep r when reps are spread over SN_LATENCY_SWEEPS. */
static int sweep_reps(int reps, int r)
{
    return reps / SN_LATENCY_SWEEPS + (r < reps % SN_LATENCY_SWEEPS);
}

int sn_latency_measure_table(sn_latency_table *t, int64_t b, int nt, int reps, int warmup,
                             const sn_attn_engine *attn, uint64_t seed, char *err,
                             size_t errlen)
{
    SN_CHECK(b >= 1 && nt >= 1 && reps >= 1 && reps <= SN_LATENCY_MAX_REPS && warmup >= 0);
    const sn_space *s = &t->space;
    const int nb = sn_space_max_blocks(s), ne = s->n_embed;
    /* samples: embed ie at row ie, head ie at ne + ie, block entry j at 2*ne + j */
    const size_t rows = (size_t)ne * (size_t)(2 + s->n_heads * s->n_mlp);
    sn_rng r;
    sn_rng_seed(&r, seed, STREAM_INPUT);
    sn_model *m = sn_model_create(s, seed);
    void *tokens = malloc(input_bytes(s, b));
    double *samples = malloc(rows * (size_t)reps * sizeof *samples); /* (rows, reps) */
    part embed = {0}, block = {0}, head = {0};
    part_shard(s, attn, 0, 0, true, false, &embed.sh);
    part_shard(s, attn, 0, 1, false, false, &block.sh);
    part_shard(s, attn, nb, nb, false, true, &head.sh);
    int rc = SN_OK;
    if (!m || !tokens || !samples) {
        rc = sn_errf(err, errlen, "out of memory for the latency measurements");
    } else {
        random_input(s, b, &r, tokens);
        if (part_init(&embed, s, b, tokens, &r) != SN_OK ||
            part_init(&block, s, b, tokens, &r) != SN_OK ||
            part_init(&head, s, b, tokens, &r) != SN_OK)
            rc = sn_errf(err, errlen, "out of memory for the latency measurements' activations");
    }
    if (rc == SN_OK) {
        /* every supernet block kept, so that any one of them can be timed */
        sn_subnet net;
        sn_subnet_max(s, &net);
        int at = 0; /* samples taken of every entry so far */
        for (int sw = 0; sw < SN_LATENCY_SWEEPS; sw++) {
            const int count = sweep_reps(reps, sw);
            size_t row = 2 * (size_t)ne;
            for (int ie = 0; ie < ne; ie++) {
                net.embed = s->embed[ie];
                time_part(m, &embed, &net, b, nt, count, warmup, 0,
                          samples + (size_t)ie * (size_t)reps + (size_t)at);
                time_part(m, &head, &net, b, nt, count, warmup, 0,
                          samples + (size_t)(ne + ie) * (size_t)reps + (size_t)at);
                for (int ih = 0; ih < s->n_heads; ih++)
                    for (int im = 0; im < s->n_mlp; im++, row++) {
                        for (int i = 0; i < net.n_blocks; i++) {
                            net.heads[i] = s->heads[ih];
                            net.mlp[i] = s->mlp[im];
                        }
                        time_part(m, &block, &net, b, nt, count, warmup, nb,
                                  samples + row * (size_t)reps + (size_t)at);
                    }
            }
            at += count;
        }
        for (int ie = 0; ie < ne; ie++) {
            t->embed_ms[ie] = (float)median(samples + (size_t)ie * (size_t)reps, reps);
            t->head_ms[ie] = (float)median(samples + (size_t)(ne + ie) * (size_t)reps, reps);
        }
        /* block entries are stored in the same (ie, ih, im) order */
        for (size_t j = 0; j + 2 * (size_t)ne < rows; j++)
            t->block_ms[j] = (float)median(samples + (j + 2 * (size_t)ne) * (size_t)reps, reps);
        t->batch = b;
        t->threads = nt;
        t->reps = reps;
        t->warmup = warmup;
    }
    sn_acts_destroy(embed.acts);
    sn_acts_destroy(block.acts);
    sn_acts_destroy(head.acts);
    free(samples);
    free(tokens);
    sn_model_destroy(m);
    return rc;
}

/* ---- whole sub-networks ------------------------------------------------------- */

struct sn_latency_bench {
    sn_model *m;
    part whole;
    void *tokens;       /* (b, T, P) floats or (b, T) int32 */
    int64_t b;
};

sn_latency_bench *sn_latency_bench_create(const sn_space *s, int64_t b,
                                          const sn_attn_engine *attn, uint64_t seed)
{
    SN_CHECK(b >= 1);
    sn_latency_bench *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->b = b;
    sn_rng r;
    sn_rng_seed(&r, seed, STREAM_INPUT);
    w->m = sn_model_create(s, seed);
    w->tokens = malloc(input_bytes(s, b));
    part_shard(s, attn, 0, sn_space_max_blocks(s), true, true, &w->whole.sh);
    if (!w->m || !w->tokens || part_init(&w->whole, s, b, w->tokens, &r) != SN_OK) {
        sn_latency_bench_destroy(w);
        return NULL;
    }
    random_input(s, b, &r, w->tokens);
    return w;
}

void sn_latency_bench_destroy(sn_latency_bench *w)
{
    if (!w) return;
    sn_acts_destroy(w->whole.acts);
    sn_model_destroy(w->m);
    free(w->tokens);
    free(w);
}

int sn_latency_measure_subnets(sn_latency_bench *w, const sn_subnet *nets, int k, int nt,
                               int reps, int warmup, double *ms, char *err, size_t errlen)
{
    SN_CHECK(k >= 1 && nt >= 1 && reps >= 1 && reps <= SN_LATENCY_MAX_REPS && warmup >= 0);
    double *samples = malloc((size_t)k * (size_t)reps * sizeof *samples); /* (k, reps) */
    if (!samples) return sn_errf(err, errlen, "out of memory for %d sub-networks' timings", k);
    int at = 0;
    for (int sw = 0; sw < SN_LATENCY_SWEEPS; sw++) {
        const int count = sweep_reps(reps, sw);
        for (int i = 0; i < k; i++)
            time_part(w->m, &w->whole, &nets[i], w->b, nt, count, warmup, 0,
                      samples + (size_t)i * (size_t)reps + (size_t)at);
        at += count;
    }
    for (int i = 0; i < k; i++) ms[i] = median(samples + (size_t)i * (size_t)reps, reps);
    free(samples);
    return SN_OK;
}
