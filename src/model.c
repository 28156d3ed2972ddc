#include "src/model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "src/layout.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

/* ---- the parameter table ------------------------------------------------ */

static int max_choice(const int *v, int n) { return v[n - 1]; }

typedef struct dims {
    int64_t E, H, D, F, T, P, C, HD;
    int64_t PI;             /* values per token of the input (token_dim) */
    /* stem: convolutions, each one's positions per token side (the last's
     * G) and channels (0 without a stem) */
    int n_stem;
    int64_t side[SN_MAX_STEM_CONVS], ch[SN_MAX_STEM_CONVS];
} dims;

static dims space_dims(const sn_space *s)
{
    dims d;
    d.E = max_choice(s->embed, s->n_embed);
    d.H = max_choice(s->heads, s->n_heads);
    d.F = max_choice(s->mlp, s->n_mlp);
    d.D = s->head_dim;
    d.HD = d.H * d.D;
    d.T = s->n_tokens;
    d.P = sn_space_embed_in(s);
    d.PI = s->token_dim;
    d.C = s->n_classes;
    d.n_stem = sn_stem_sides(s, d.side);
    for (int k = 0; k < SN_MAX_STEM_CONVS; k++) d.ch[k] = k < d.n_stem ? s->stem[k] : 0;
    return d;
}

static void add_tensor(sn_param_info *info, int *n, size_t *off, const char *name,
                       int block, int64_t r, sn_axis ra, int64_t c, sn_axis ca, bool decay)
{
    sn_param_info *t = &info[(*n)++];
    memset(t, 0, sizeof *t);
    if (block >= 0)
        snprintf(t->name, sizeof t->name, "blocks.%d.%s", block, name);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = c > 0 ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c > 0 ? c : 0;
    t->axis[0] = ra;
    t->axis[1] = c > 0 ? ca : SN_AXIS_FIXED;
    t->count = (size_t)(r * (c > 0 ? c : 1));
    t->offset = *off;
    t->decay = decay;
    t->block = block;
    /* keep every tensor 64-byte aligned inside the buffer */
    *off += (t->count + 15) & ~(size_t)15;
}

int sn_param_table(const sn_space *s, sn_param_info *info, size_t *total)
{
    dims d = space_dims(s);
    int n = 0;
    size_t off = 0;
    const sn_axis X = SN_AXIS_FIXED, E = SN_AXIS_EMBED, Q = SN_AXIS_QKV, H = SN_AXIS_HEADS,
                  F = SN_AXIS_MLP;
    for (int k = 0; k < d.n_stem; k++) {
        char name[32];
        snprintf(name, sizeof name, "stem.conv%d.weight", k + 1);
        add_tensor(info, &n, &off, name, -1, d.ch[k], X, 9 * (k ? d.ch[k - 1] : 1), X, true);
        snprintf(name, sizeof name, "stem.conv%d.bias", k + 1);
        add_tensor(info, &n, &off, name, -1, d.ch[k], X, 0, X, false);
    }
    add_tensor(info, &n, &off, "patch_embed.weight", -1, d.E, E, d.P, X, true);
    add_tensor(info, &n, &off, "patch_embed.bias", -1, d.E, E, 0, X, false);
    add_tensor(info, &n, &off, "pos_embed", -1, d.T, X, d.E, E, false);
    int nb = sn_space_max_blocks(s);
    for (int l = 0; l < nb; l++) {
        add_tensor(info, &n, &off, "ln1.weight", l, d.E, E, 0, X, false);
        add_tensor(info, &n, &off, "ln1.bias", l, d.E, E, 0, X, false);
        add_tensor(info, &n, &off, "attn.qkv.weight", l, 3 * d.HD, Q, d.E, E, true);
        add_tensor(info, &n, &off, "attn.qkv.bias", l, 3 * d.HD, Q, 0, X, false);
        add_tensor(info, &n, &off, "attn.proj.weight", l, d.E, E, d.HD, H, true);
        add_tensor(info, &n, &off, "attn.proj.bias", l, d.E, E, 0, X, false);
        add_tensor(info, &n, &off, "ln2.weight", l, d.E, E, 0, X, false);
        add_tensor(info, &n, &off, "ln2.bias", l, d.E, E, 0, X, false);
        add_tensor(info, &n, &off, "mlp.fc1.weight", l, d.F, F, d.E, E, true);
        add_tensor(info, &n, &off, "mlp.fc1.bias", l, d.F, F, 0, X, false);
        add_tensor(info, &n, &off, "mlp.fc2.weight", l, d.E, E, d.F, F, true);
        add_tensor(info, &n, &off, "mlp.fc2.bias", l, d.E, E, 0, X, false);
    }
    add_tensor(info, &n, &off, "norm.weight", -1, d.E, E, 0, X, false);
    add_tensor(info, &n, &off, "norm.bias", -1, d.E, E, 0, X, false);
    add_tensor(info, &n, &off, "head.weight", -1, d.C, X, d.E, E, true);
    add_tensor(info, &n, &off, "head.bias", -1, d.C, X, 0, X, false);
    *total = off;
    return n;
}

/* The views follow the table's order exactly (12 tensors per block). */
void sn_params_bind(const sn_space *s, float *base, sn_params *p)
{
    sn_param_info info[SN_MAX_PARAM_TENSORS];
    size_t total;
    int n = sn_param_table(s, info, &total);
    int k = 0;
    memset(p, 0, sizeof *p);
    for (int c = 0; c < sn_stem_convs(s); c++) {
        p->stem_w[c] = base + info[k++].offset;
        p->stem_b[c] = base + info[k++].offset;
    }
    p->patch_w = base + info[k++].offset;
    p->patch_b = base + info[k++].offset;
    p->pos = base + info[k++].offset;
    int nb = sn_space_max_blocks(s);
    for (int l = 0; l < nb; l++) {
        sn_block_params *b = &p->block[l];
        b->ln1_g = base + info[k++].offset;
        b->ln1_b = base + info[k++].offset;
        b->qkv_w = base + info[k++].offset;
        b->qkv_b = base + info[k++].offset;
        b->proj_w = base + info[k++].offset;
        b->proj_b = base + info[k++].offset;
        b->ln2_g = base + info[k++].offset;
        b->ln2_b = base + info[k++].offset;
        b->fc1_w = base + info[k++].offset;
        b->fc1_b = base + info[k++].offset;
        b->fc2_w = base + info[k++].offset;
        b->fc2_b = base + info[k++].offset;
    }
    p->norm_g = base + info[k++].offset;
    p->norm_b = base + info[k++].offset;
    p->head_w = base + info[k++].offset;
    p->head_b = base + info[k++].offset;
    SN_CHECK(k == n);
}

bool sn_param_slice(const sn_space *s, const sn_param_info *t, const sn_subnet *n,
                    int64_t shape[2])
{
    int kept = -1;
    if (t->block >= 0) {
        for (int i = 0; i < n->n_blocks; i++)
            if (sn_subnet_block(s, n, i) == t->block) kept = i;
        if (kept < 0) return false;
    }
    for (int k = 0; k < 2; k++) {
        int64_t len = t->shape[k];
        switch (t->axis[k]) {
        case SN_AXIS_FIXED: break;
        case SN_AXIS_EMBED: len = n->embed; break;
        case SN_AXIS_QKV: len = 3 * (int64_t)n->heads[kept] * s->head_dim; break;
        case SN_AXIS_HEADS: len = (int64_t)n->heads[kept] * s->head_dim; break;
        case SN_AXIS_MLP: len = n->mlp[kept]; break;
        }
        shape[k] = len;
    }
    return true;
}

static bool is_layernorm_gain(const char *name)
{
    size_t len = strlen(name);
    static const char *const gains[] = {"ln1.weight", "ln2.weight", "norm.weight"};
    for (size_t i = 0; i < sizeof gains / sizeof gains[0]; i++) {
        size_t gl = strlen(gains[i]);
        if (len >= gl && strcmp(name + len - gl, gains[i]) == 0) return true;
    }
    return false;
}

sn_model *sn_model_create(const sn_space *s, uint64_t seed)
{
    sn_model *m = sn_calloc(sizeof *m);
    if (!m) return NULL;
    m->space = *s;
    m->n_tensors = sn_param_table(s, m->info, &m->n_params);
    m->params = sn_calloc(m->n_params * sizeof(float));
    m->grads = sn_calloc(m->n_params * sizeof(float));
    if (!m->params || !m->grads) {
        sn_model_destroy(m);
        return NULL;
    }
    sn_params_bind(s, m->params, &m->p);
    sn_params_bind(s, m->grads, &m->g);
    /* Each tensor draws from its own stream so that adding a tensor never
     * changes the initial values of the others. */
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *t = &m->info[i];
        float *w = m->params + t->offset;
        if (is_layernorm_gain(t->name)) {
            for (size_t j = 0; j < t->count; j++) w[j] = 1.0f;
        } else if (t->decay || strcmp(t->name, "pos_embed") == 0) {
            /* the stem's convolutions feed GELUs straight from the pixels:
             * He's N(0, 2/fan-in) keeps their outputs at the pixels' scale */
            const float sd = strncmp(t->name, "stem.", 5) == 0
                                 ? sqrtf(2.0f / (float)t->shape[1]) : 0.02f;
            sn_rng r;
            sn_rng_seed(&r, seed, 1000 + (uint64_t)i);
            for (size_t j = 0; j < t->count; j++) w[j] = sd * sn_rng_normal(&r);
        }
    }
    return m;
}

void sn_model_destroy(sn_model *m)
{
    if (!m) return;
    sn_free(m->params);
    sn_free(m->grads);
    sn_free(m);
}

void sn_model_zero_grad(sn_model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

/* ---- shards ----------------------------------------------------------------- */

void sn_shard_full(const sn_space *s, sn_shard *sh)
{
    memset(sh, 0, sizeof *sh);
    sh->block_lo = 0;
    sh->block_hi = sn_space_max_blocks(s);
    sh->first = sh->last = true;
    sh->tl = s->n_tokens;
    sh->seq_size = 1;
}

/* Index in the table of the first tensor of supernet block l (blocks.l.*):
 * the embedding's tensors (the stem's two per convolution, then three) come
 * first, 12 per block follow. */
enum { BLOCK_TENSORS = 12 };

static int embed_tensors(const sn_space *s) { return 2 * sn_stem_convs(s) + 3; }

static int block_tensor(const sn_space *s, int l)
{
    return embed_tensors(s) + BLOCK_TENSORS * l;
}

void sn_shard_params(const sn_model *m, const sn_shard *sh, int *t_lo, int *t_hi, size_t *lo,
                     size_t *hi)
{
    *t_lo = sh->first ? 0 : block_tensor(&m->space, sh->block_lo);
    *t_hi = sh->last ? m->n_tensors : block_tensor(&m->space, sh->block_hi);
    *lo = m->info[*t_lo].offset;
    *hi = *t_hi < m->n_tensors ? m->info[*t_hi].offset : m->n_params;
}

void sn_stage_params(const sn_model *m, int n_stages, int p, int *t_lo, int *t_hi, size_t *lo,
                     size_t *hi)
{
    sn_shard sh = {.first = p == 0, .last = p == n_stages - 1};
    sn_layout_stage_blocks(sn_space_max_blocks(&m->space), n_stages, p, &sh.block_lo,
                           &sh.block_hi);
    sn_shard_params(m, &sh, t_lo, t_hi, lo, hi);
}

/* ---- activations ---------------------------------------------------------- */

typedef struct block_acts {
    float *ln1;         /* (BT, e) */
    float *mean1, *rstd1; /* (BT) */
    float *qkv;         /* (BT, 3*h*D) */
    float *att;         /* (B, h, tl, tl) probabilities, or the engine's save (B, h, tl) */
    float *ao;          /* (BT, h*D) */
    float *xm;          /* (BT, e) residual after attention */
    float *ln2;         /* (BT, e) */
    float *mean2, *rstd2;
    float *h1;          /* (BT, f) before GELU */
    float *h2;          /* (BT, f) after GELU */
} block_acts;

/* The stem's workspace (first stage with a stem only).  Convolution k+1
 * runs at side[k]^2 positions per token (dims.side); conv1 runs token by
 * token in a thread's scratch and is recomputed in backward, so only the
 * later convolutions' input patches and outputs are kept, for each of them
 * (index k = 1 .. n-1; [0] unused) over all BT tokens' positions. */
typedef struct stem_acts {
    float *w1t;         /* (9, C1) conv1's weight transposed: channels innermost */
    float *scratch;     /* (SN_MAX_THREADS, 3, side0^2*C1) per-thread conv1 maps */
    float *partial;     /* (chunks, 10*C1) conv1's weight and bias gradient per chunk */
    float *col[SN_MAX_STEM_CONVS];  /* (BT*side^2, 9*C_in) input patches */
    float *z[SN_MAX_STEM_CONVS];    /* (BT*side^2, C) before GELU */
    float *act[SN_MAX_STEM_CONVS];  /* (BT*side^2, C) after; the last (BT, P): the features */
    float *dact[SN_MAX_STEM_CONVS]; /* backward: act's gradient, then z's (in place) */
    float *dcol[SN_MAX_STEM_CONVS]; /* backward: col's gradient */
    /* Passes sharing one stem computation (sn_acts_share_stem): share
     * forward/backward pairs over the same input; fwd and bwd count the
     * group's forwards and backwards so far (unused with share 1). */
    int share, fwd, bwd;
    const void *input;  /* the input of the shared pass */
    int64_t b;
    /* Whole images (stem_whole_tokens): ts tokens per image side and gs
     * conv2 positions per image side; ts 0: token by token. */
    int64_t ts, gs;
} stem_acts;

/* Tokens per chunk of conv1's weight-gradient sums: chunk partials are
 * added in chunk order, so the result does not depend on the threads. */
enum { STEM_CHUNK = 64 };

/* BT below is max_batch * tl: the local tokens. */
struct sn_acts {
    sn_space space;
    int64_t max_batch, tl;
    int n_slots;                 /* blocks of the shard */
    size_t bytes;
    float *arena;
    float *x[SN_MAX_BLOCKS + 1]; /* (BT, e) residual stream entering local block i */
    block_acts blk[SN_MAX_BLOCKS];
    float *lnf, *meanf, *rstdf;  /* (BT, e), (BT), (BT) */
    float *pooled;               /* (B, e) */
    float *logits;               /* (B, C), (BT, C) for the language model */
    /* backward scratch */
    float *dres;                 /* (BT, E) */
    float *dln;                  /* (BT, E) */
    float *dqkv;                 /* (BT, 3HD) */
    float *dmid;                 /* (BT, max(HD, F)): dao, or the MLP's hidden gradient */
    float *dpooled;              /* (B, E) */
    float *att_scratch;          /* (scratch_threads, T, T); one-rank attention only */
    stem_acts stem;              /* all NULL unless the shard is first and has a stem */
    int scratch_threads;
    /* the last forward */
    sn_subnet net;
    int n_local;                 /* kept blocks computed here */
    int local_block[SN_MAX_BLOCKS]; /* their supernet block numbers */
    int local_index[SN_MAX_BLOCKS]; /* their index among the sub-network's kept blocks */
    const void *input;
    int64_t b;
};

size_t sn_acts_bytes(const sn_acts *a) { return a->bytes; }

float *sn_acts_input(sn_acts *a) { return a->x[0]; }

sn_acts *sn_acts_create_shard(const sn_space *s, const sn_shard *sh, int64_t max_batch)
{
    sn_acts *a = sn_calloc(sizeof *a);
    if (!a) return NULL;
    a->space = *s;
    a->max_batch = max_batch;
    a->tl = sh->tl;
    dims d = space_dims(s);
    const int64_t tl = sh->tl, BT = max_batch * tl;
    const int64_t C = d.C, rows_out = s->task == SN_TASK_LM ? BT : max_batch;
    const int nb = sh->block_hi - sh->block_lo;
    a->n_slots = nb;
    int64_t mid = d.HD > d.F ? d.HD : d.F;
    a->scratch_threads = sh->attn ? 0 : SN_MAX_THREADS;
    /* sizes in floats, each rounded to 16 (64 bytes) */
#define R16(x) ((((size_t)(x)) + 15) & ~(size_t)15)
    /* an engine saves a log-sum-exp per row and head, not probabilities */
    const int64_t att = sh->attn ? max_batch * d.H * tl : max_batch * d.H * tl * tl;
    /* the stem's buffers in floats (0 without them): conv1's map of a token,
     * and each later convolution's input patches and outputs */
    const bool stem = sh->first && sn_space_has_stem(s);
    const int64_t map = stem ? d.side[0] * d.side[0] * d.ch[0] : 0;
    const int64_t chunks = stem ? (BT + STEM_CHUNK - 1) / STEM_CHUNK : 0;
    size_t stem_gemms = 0;
    for (int k = 1; stem && k < d.n_stem; k++) {
        const int64_t rows = BT * d.side[k] * d.side[k];
        stem_gemms += R16(rows * 9 * d.ch[k - 1]) * 2 + R16(rows * d.ch[k]) * 3;
    }
    size_t per_block = R16(BT * d.E) * 3 + R16(BT) * 4 + R16(BT * 3 * d.HD) + R16(att) +
                       R16(BT * d.HD) + R16(BT * d.F) * 2;
    size_t total = per_block * (size_t)nb + R16(BT * d.E) * (size_t)(nb + 1) +
                   R16(BT * d.E) + R16(BT) * 2 + R16(max_batch * d.E) + R16(rows_out * C) +
                   R16(BT * d.E) * 2 + R16(BT * 3 * d.HD) + R16(BT * mid) + R16(max_batch * d.E) +
                   R16((int64_t)a->scratch_threads * tl * tl) + R16(stem ? 9 * d.ch[0] : 0) +
                   R16((int64_t)SN_MAX_THREADS * 3 * map) + R16(chunks * 10 * d.ch[0]) +
                   stem_gemms;
    a->arena = sn_alloc(total * sizeof(float));
    if (!a->arena) {
        sn_free(a);
        return NULL;
    }
    a->bytes = total * sizeof(float);
    float *p = a->arena;
#define TAKE(ptr, n) do { (ptr) = p; p += R16(n); } while (0)
    for (int i = 0; i <= nb; i++) TAKE(a->x[i], BT * d.E);
    for (int i = 0; i < nb; i++) {
        block_acts *k = &a->blk[i];
        TAKE(k->ln1, BT * d.E);
        TAKE(k->mean1, BT);
        TAKE(k->rstd1, BT);
        TAKE(k->qkv, BT * 3 * d.HD);
        TAKE(k->att, att);
        TAKE(k->ao, BT * d.HD);
        TAKE(k->xm, BT * d.E);
        TAKE(k->ln2, BT * d.E);
        TAKE(k->mean2, BT);
        TAKE(k->rstd2, BT);
        TAKE(k->h1, BT * d.F);
        TAKE(k->h2, BT * d.F);
    }
    TAKE(a->lnf, BT * d.E);
    TAKE(a->meanf, BT);
    TAKE(a->rstdf, BT);
    TAKE(a->pooled, max_batch * d.E);
    TAKE(a->logits, rows_out * C);
    TAKE(a->dres, BT * d.E);
    TAKE(a->dln, BT * d.E);
    TAKE(a->dqkv, BT * 3 * d.HD);
    TAKE(a->dmid, BT * mid);
    TAKE(a->dpooled, max_batch * d.E);
    TAKE(a->att_scratch, (int64_t)a->scratch_threads * tl * tl);
    if (stem) {
        stem_acts *k = &a->stem;
        TAKE(k->w1t, 9 * d.ch[0]);
        TAKE(k->scratch, (int64_t)SN_MAX_THREADS * 3 * map);
        TAKE(k->partial, chunks * 10 * d.ch[0]);
        for (int c = 1; c < d.n_stem; c++) {
            const int64_t rows = BT * d.side[c] * d.side[c];
            TAKE(k->col[c], rows * 9 * d.ch[c - 1]);
            TAKE(k->z[c], rows * d.ch[c]);
            TAKE(k->act[c], rows * d.ch[c]);
            TAKE(k->dact[c], rows * d.ch[c]);
            TAKE(k->dcol[c], rows * 9 * d.ch[c - 1]);
        }
        k->share = 1;
    }
#undef TAKE
#undef R16
    SN_CHECK((size_t)(p - a->arena) == total);
    return a;
}

sn_acts *sn_acts_create(const sn_space *s, int64_t max_batch)
{
    sn_shard sh;
    sn_shard_full(s, &sh);
    return sn_acts_create_shard(s, &sh, max_batch);
}

void sn_acts_share_stem(sn_acts *a, int passes)
{
    SN_CHECK(passes >= 1);
    a->stem.share = passes;
    a->stem.fwd = a->stem.bwd = 0;
}

void sn_acts_destroy(sn_acts *a)
{
    if (!a) return;
    sn_free(a->arena);
    sn_free(a);
}

/* ---- forward and backward --------------------------------------------- */

static int64_t global_pos(const sn_shard *sh, int64_t i)
{
    return sh->pos ? sh->pos[i] : i;
}

/* ts if T tokens make a square of ts x ts, else 0. */
static int64_t square_side(int64_t T)
{
    int64_t ts = 1;
    while (ts * ts < T) ts++;
    return ts * ts == T ? ts : 0;
}

/* Whole images.  With three convolutions, neighbouring tokens' conv2
 * positions overlap: a token computes conv2 at (2g+1)^2 positions (9 for
 * g = 1), its image at (2g*ts + 1)^2 for ts x ts tokens (225 for 49 tokens,
 * 4.6 a token).  When the shard holds every token of its images in order
 * (positions 0 .. T-1: no sequence parallelism), the tokens form a square,
 * and the windows agree wherever they overlap (as the windows cut from one
 * image do; the check is exact), conv2 runs once at each of the image's positions, from
 * the window of the last token that holds it (its owner): the same values
 * as token by token, at about half the cost; only the order of conv2's
 * weight-gradient sums differs.  Returns ts, or 0 (token by token). */
static int64_t stem_whole_tokens(const dims *d, const sn_shard *sh, const float *win, int64_t b)
{
    if (d->n_stem != 3 || sh->tl != d->T) return 0;
    for (int64_t t = 0; sh->pos && t < d->T; t++)
        if (sh->pos[t] != t) return 0;
    const int64_t ts = square_side(d->T);
    if (ts == 0) return 0;
    /* the window's side and the token's stride in it: overlaps of W - p */
    const int64_t W = d->side[0] + 2, p = 4 * d->side[2], ov = W - p;
    for (int64_t r = 0; r < b * d->T; r++) {
        const int64_t t = r % d->T;
        const float *w = win + r * d->PI;
        if (t % ts + 1 < ts) /* the right neighbour: columns p.. against 0.. */
            for (int64_t y = 0; y < W; y++)
                if (memcmp(w + y * W + p, w + d->PI + y * W, (size_t)ov * sizeof(float)))
                    return 0;
        if (t / ts + 1 < ts && /* the one below: rows p.. against 0.. */
            memcmp(w + p * W, w + ts * d->PI, (size_t)(ov * W) * sizeof(float)))
            return 0;
    }
    return ts;
}

/* Whole images: the first of token r's conv2 positions among its image's
 * (as a row of conv2's (b*gs*gs) rows), g conv3 positions a token side. */
static int64_t stem_origin(const stem_acts *k, int64_t T, int64_t g, int64_t r)
{
    const int64_t img = r / T, t = r % T;
    return (img * k->gs + 2 * g * (t / k->ts)) * k->gs + 2 * g * (t % k->ts);
}

/* Whole images: the rows and columns of conv2 positions token r owns from
 * its origin on: 2g each, one more on the image's last row or column. */
static void stem_owned(const stem_acts *k, int64_t T, int64_t g, int64_t r, int64_t *rows,
                       int64_t *cols)
{
    const int64_t t = r % T;
    *rows = 2 * g + (t / k->ts == k->ts - 1);
    *cols = 2 * g + (t % k->ts == k->ts - 1);
}

int64_t sn_stem_image_side(const sn_space *s)
{
    const int convs = sn_stem_convs(s);
    if (convs == 0) return 0;
    const int64_t p = (int64_t)sn_stem_grid(s) << (convs - 1); /* the patch */
    return square_side(s->n_tokens) * p;
}

void sn_stem_windows(const sn_space *s, const float *image, float *out)
{
    const int64_t side = sn_stem_image_side(s), convs = sn_stem_convs(s);
    SN_CHECK(side > 0);
    const int64_t p = (int64_t)sn_stem_grid(s) << (convs - 1), ts = side / p,
                  W = sn_stem_window((int)p, (int)convs), before = sn_stem_before((int)convs);
    for (int64_t t = 0; t < ts * ts; t++) {
        const int64_t y0 = (t / ts) * p - before, x0 = (t % ts) * p - before;
        for (int64_t y = y0; y < y0 + W; y++)
            for (int64_t x = x0; x < x0 + W; x++)
                *out++ = y < 0 || y >= side || x < 0 || x >= side ? 0.0f : image[y * side + x];
    }
}

/* Rows of convolution c's GEMM over b images of BT tokens. */
static int64_t stem_rows(const dims *d, const stem_acts *k, int c, int64_t b, int64_t BT)
{
    return k->ts && c == 1 ? b * k->gs * k->gs : BT * d->side[c] * d->side[c];
}

/* The stem over b images' BT tokens' pixel windows win (BT, token_dim): their
 * features (BT, P) into the last a->stem.act.  conv1 (9 taps, too few for a
 * GEMM to pay) runs token by token in a thread's scratch and writes conv2's
 * input patches, tap-major then channel ((dy*3 + dx)*C1 + c, the order of
 * stem.conv2.weight's columns); each later convolution is one GEMM over all
 * tokens' positions (with whole images, conv2's over the images'
 * positions), whose outputs are gathered, token by token, into the
 * next one's patches. */
static void stem_forward(int nt, const sn_model *m, sn_acts *a, const sn_shard *sh,
                         const float *win, int64_t b)
{
    const dims d = space_dims(&m->space);
    const int64_t W1 = d.side[0], W = W1 + 2, C1 = d.ch[0], map = W1 * W1 * C1, BT = b * sh->tl;
    stem_acts *k = &a->stem;
    k->ts = stem_whole_tokens(&d, sh, win, b);
    k->gs = k->ts ? 2 * d.side[2] * k->ts + 1 : 0;
    for (int64_t c = 0; c < C1; c++)
        for (int64_t tap = 0; tap < 9; tap++)
            k->w1t[tap * C1 + c] = m->p.stem_w[0][c * 9 + tap];
    const int64_t G1 = d.side[1], per1 = G1 * G1 * 9 * C1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < BT; r++) {
        float *z = k->scratch + (int64_t)omp_get_thread_num() * 3 * map, *act = z + map;
        sn_stem_conv1(win + r * d.PI, W, C1, k->w1t, m->p.stem_b[0], z);
        sn_gelu_row(act, z, map);
        if (k->ts) {
            int64_t rows, cols;
            stem_owned(k, d.T, d.side[2], r, &rows, &cols);
            const int64_t at = stem_origin(k, d.T, d.side[2], r);
            sn_stem_gather(k->col[1] + at * 9 * C1, k->gs, act, W1, rows, cols, C1);
        } else {
            sn_stem_gather(k->col[1] + r * per1, G1, act, W1, G1, G1, C1);
        }
    }
    for (int c = 1; c < d.n_stem; c++) {
        const int64_t rows = stem_rows(&d, k, c, b, BT), in = 9 * d.ch[c - 1], out = d.ch[c];
        sn_linear_forward(nt, k->z[c], out, k->col[c], in, m->p.stem_w[c], in, m->p.stem_b[c],
                          rows, out, in);
        sn_gelu_forward(nt, k->act[c], out, k->z[c], out, rows, out);
        if (c + 1 == d.n_stem) break;
        const int64_t S = d.side[c + 1], here = d.side[c] * d.side[c] * out, next = S * S * 9 * out;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < BT; r++) {
            if (k->ts) { /* conv2's map of the image, from the token's first position */
                const int64_t at = stem_origin(k, d.T, S, r);
                sn_stem_gather(k->col[c + 1] + r * next, S, k->act[c] + at * out, k->gs, S, S,
                               out);
            } else {
                sn_stem_gather(k->col[c + 1] + r * next, S, k->act[c] + r * here, d.side[c], S, S,
                               out);
            }
        }
    }
}

/* Backward of stem_forward over the same windows, given the features'
 * gradient in the last a->stem.dact (consumed): each GEMM convolution's
 * gradients, last first, its input patches' gradient scattered token by
 * token onto the previous one's output (with whole images, image by
 * image onto conv2's map); then conv1 token by token (recomputed, its
 * output gradient scattered from conv2's patches': with whole images
 * those of the positions the token owns), its weight and bias gradients
 * summed per chunk of tokens and the chunks added in order. */
static void stem_backward(int nt, sn_model *m, sn_acts *a, const sn_shard *sh, const float *win,
                          int64_t b)
{
    const dims d = space_dims(&m->space);
    const int64_t W1 = d.side[0], W = W1 + 2, C1 = d.ch[0], map = W1 * W1 * C1, BT = b * sh->tl;
    const int64_t chunks = (BT + STEM_CHUNK - 1) / STEM_CHUNK;
    stem_acts *k = &a->stem;
    sn_params *g = &m->g;
    for (int c = d.n_stem - 1; c >= 1; c--) {
        const int64_t rows = stem_rows(&d, k, c, b, BT), in = 9 * d.ch[c - 1], out = d.ch[c];
        sn_gelu_backward_inplace(nt, k->dact[c], out, k->z[c], out, rows, out);
        sn_linear_backward_set(nt, k->dcol[c], in, g->stem_w[c], in, g->stem_b[c], k->dact[c],
                               out, k->col[c], in, m->p.stem_w[c], in, rows, out, in);
        if (c == 1) break;
        const int64_t S = d.side[c], Cp = d.ch[c - 1], here = S * S * in;
        if (k->ts) { /* image by image: neighbouring tokens add onto shared positions */
            const int64_t per = k->gs * k->gs * Cp;
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t img = 0; img < b; img++) {
                memset(k->dact[c - 1] + img * per, 0, (size_t)per * sizeof(float));
                for (int64_t r = img * d.T; r < (img + 1) * d.T; r++) {
                    const int64_t at = stem_origin(k, d.T, S, r);
                    sn_stem_scatter(k->dact[c - 1] + at * Cp, k->gs, k->dcol[c] + r * here, S, S,
                                    S, Cp);
                }
            }
        } else {
            const int64_t prev = d.side[c - 1] * d.side[c - 1] * Cp;
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t r = 0; r < BT; r++) {
                float *da = k->dact[c - 1] + r * prev;
                memset(da, 0, (size_t)prev * sizeof(float));
                sn_stem_scatter(da, d.side[c - 1], k->dcol[c] + r * here, S, S, S, Cp);
            }
        }
    }
    const int64_t G1 = d.side[1], per1 = G1 * G1 * 9 * C1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t ch = 0; ch < chunks; ch++) {
        float *z = k->scratch + (int64_t)omp_get_thread_num() * 3 * map, *da = z + map,
              *dz = da + map;
        float *acc = k->partial + ch * 10 * C1; /* (9, C1) weight, then (C1) bias */
        memset(acc, 0, (size_t)(10 * C1) * sizeof(float));
        const int64_t r_end = (ch + 1) * STEM_CHUNK < BT ? (ch + 1) * STEM_CHUNK : BT;
        for (int64_t r = ch * STEM_CHUNK; r < r_end; r++) {
            const float *w = win + r * d.PI;
            sn_stem_conv1(w, W, C1, k->w1t, m->p.stem_b[0], z);
            memset(da, 0, (size_t)(2 * map) * sizeof(float)); /* da and dz */
            if (k->ts) {
                int64_t rows, cols;
                stem_owned(k, d.T, d.side[2], r, &rows, &cols);
                const int64_t at = stem_origin(k, d.T, d.side[2], r);
                sn_stem_scatter(da, W1, k->dcol[1] + at * 9 * C1, k->gs, rows, cols, C1);
            } else {
                sn_stem_scatter(da, W1, k->dcol[1] + r * per1, G1, G1, G1, C1);
            }
            sn_gelu_backward_row(dz, da, z, map);
            sn_stem_conv1_grad(acc, w, dz, W, C1);
        }
    }
    for (int64_t ch = 0; ch < chunks; ch++) {
        const float *acc = k->partial + ch * 10 * C1;
        for (int64_t c = 0; c < C1; c++) {
            for (int64_t tap = 0; tap < 9; tap++)
                g->stem_w[0][c * 9 + tap] += acc[tap * C1 + c];
            g->stem_b[0][c] += acc[9 * C1 + c];
        }
    }
}

/* x0 (b*tl, e) = embedding of the input + positions. */
static void embed_forward(int nt, const sn_model *m, sn_acts *a, const sn_shard *sh, float *x0,
                          const void *input, int64_t b, int64_t e)
{
    const dims d = space_dims(&m->space);
    const int64_t tl = sh->tl, BT = b * tl;
    if (m->space.task == SN_TASK_LM) {
        /* byte v's embedding is column v of the (E, V) matrix */
        const int32_t *ids = input;
        const float *w = m->p.patch_w, *bias = m->p.patch_b;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < BT; r++) {
            float *xr = x0 + r * e;
            const float *col = w + ids[r];
            for (int64_t c = 0; c < e; c++) xr[c] = col[c * d.P] + bias[c];
        }
    } else {
        const float *feat = input;
        if (sn_space_has_stem(&m->space)) {
            stem_acts *k = &a->stem;
            if (k->share == 1 || k->fwd == 0) {
                stem_forward(nt, m, a, sh, input, b);
                k->input = input;
                k->b = b;
            } else {
                /* a later pass of the group: the first one's input */
                SN_CHECK(input == k->input && b == k->b && k->fwd < k->share);
            }
            if (k->share > 1) k->fwd++;
            feat = k->act[d.n_stem - 1];
        }
        sn_linear_forward(nt, x0, e, feat, d.P, m->p.patch_w, d.P, m->p.patch_b, BT, e, d.P);
    }
    const float *pos = m->p.pos;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < BT; r++) {
        const float *pr = pos + global_pos(sh, r % tl) * d.E;
        float *xr = x0 + r * e;
        for (int64_t c = 0; c < e; c++) xr[c] += pr[c];
    }
}

static void embed_backward(int nt, sn_model *m, sn_acts *a, const sn_shard *sh,
                           const float *dres, const void *input, int64_t b, int64_t e)
{
    const dims d = space_dims(&m->space);
    const int64_t tl = sh->tl, BT = b * tl;
    sn_params *g = &m->g;
    /* positions: sum over the batch, token by token */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < tl; t++) {
        float *gp = g->pos + global_pos(sh, t) * d.E;
        for (int64_t bi = 0; bi < b; bi++) {
            const float *dr = dres + (bi * tl + t) * e;
            for (int64_t c = 0; c < e; c++) gp[c] += dr[c];
        }
    }
    if (m->space.task == SN_TASK_LM) {
        /* one thread per embedding channel: no two threads touch a row */
        const int32_t *ids = input;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t c = 0; c < e; c++) {
            float *gw = g->patch_w + c * d.P;
            float gb = 0.0f;
            for (int64_t r = 0; r < BT; r++) {
                gw[ids[r]] += dres[r * e + c];
                gb += dres[r * e + c];
            }
            g->patch_b[c] += gb;
        }
    } else if (sn_space_has_stem(&m->space)) {
        /* the features' gradients of the passes sharing the stem add up;
         * the stem's backward runs once, after the last of them */
        stem_acts *k = &a->stem;
        SN_CHECK(k->share == 1 || k->bwd < k->fwd);
        float *dfeat = k->dact[d.n_stem - 1];
        if (k->share == 1 || k->bwd == 0)
            memset(dfeat, 0, (size_t)(BT * d.P) * sizeof(float));
        sn_linear_backward(nt, dfeat, d.P, g->patch_w, d.P, g->patch_b, dres, e,
                           k->act[d.n_stem - 1], d.P, m->p.patch_w, d.P, BT, e, d.P);
        if (k->share == 1) {
            stem_backward(nt, m, a, sh, input, b);
        } else if (++k->bwd == k->share) {
            stem_backward(nt, m, a, sh, input, b);
            sn_acts_share_stem(a, 1); /* the group is done: every pass computes it again */
        }
    } else {
        sn_linear_backward(nt, NULL, 0, g->patch_w, d.P, g->patch_b, dres, e, input, d.P,
                           m->p.patch_w, d.P, BT, e, d.P);
    }
}

const float *sn_model_forward_shard(int nt, const sn_model *m, sn_acts *a, const sn_shard *sh,
                                    const sn_subnet *n, const void *input, int64_t b)
{
    SN_CHECK(b > 0 && b <= a->max_batch && sh->tl == a->tl);
    SN_CHECK(sh->block_hi - sh->block_lo == a->n_slots);
    const sn_space *s = &m->space;
    SN_CHECK(sn_subnet_validate(s, n, NULL, 0) == SN_OK);
    SN_CHECK(sn_space_equal(&a->space, s));
    dims d = space_dims(s);
    const bool causal = s->task == SN_TASK_LM;
    const int64_t e = n->embed, tl = sh->tl, BT = b * tl;
    a->net = *n;
    a->input = input;
    a->b = b;
    a->n_local = 0;
    for (int i = 0; i < n->n_blocks; i++) {
        int l = sn_subnet_block(s, n, i);
        if (l < sh->block_lo || l >= sh->block_hi) continue;
        a->local_block[a->n_local] = l;
        a->local_index[a->n_local++] = i;
    }

    if (sh->first)
        embed_forward(nt, m, a, sh, a->x[0], input, b, e);
    else if (input != a->x[0])
        memcpy(a->x[0], input, (size_t)(BT * e) * sizeof(float));

    for (int j = 0; j < a->n_local; j++) {
        const int i = a->local_index[j];
        const sn_block_params *w = &m->p.block[a->local_block[j]];
        block_acts *k = &a->blk[j];
        const int64_t hd = (int64_t)n->heads[i] * d.D, f = n->mlp[i];
        sn_layernorm_forward(nt, k->ln1, e, k->mean1, k->rstd1, a->x[j], e,
                             w->ln1_g, w->ln1_b, BT, e);
        sn_linear_forward(nt, k->qkv, 3 * hd, k->ln1, e, w->qkv_w, d.E, w->qkv_b,
                          BT, 3 * hd, e);
        if (sh->attn)
            sh->attn->forward(sh->attn->ctx, nt, k->ao, hd, k->att, k->qkv, 3 * hd, b, tl,
                              n->heads[i], d.D, causal);
        else
            sn_attention_forward(nt, k->ao, hd, k->att, k->qkv, 3 * hd, b, tl, n->heads[i],
                                 d.D, causal);
        sn_linear_residual_forward(nt, k->xm, e, k->ao, hd, w->proj_w, d.HD, w->proj_b,
                                   a->x[j], e, BT, e, hd);
        sn_layernorm_forward(nt, k->ln2, e, k->mean2, k->rstd2, k->xm, e,
                             w->ln2_g, w->ln2_b, BT, e);
        sn_linear_gelu_forward(nt, k->h1, f, k->h2, f, k->ln2, e, w->fc1_w, d.E, w->fc1_b,
                               BT, f, e);
        sn_linear_residual_forward(nt, a->x[j + 1], e, k->h2, f, w->fc2_w, d.F, w->fc2_b,
                                   k->xm, e, BT, e, f);
    }
    const float *out = a->x[a->n_local];
    if (!sh->last) return out;

    sn_layernorm_forward(nt, a->lnf, e, a->meanf, a->rstdf, out, e, m->p.norm_g, m->p.norm_b,
                         BT, e);
    if (s->task == SN_TASK_LM) {
        sn_linear_forward(nt, a->logits, d.C, a->lnf, e, m->p.head_w, d.E, m->p.head_b, BT,
                          d.C, e);
        return a->logits;
    }
    /* the mean over all T tokens: local sums / T, summed over the group */
    sn_meanpool_forward(nt, a->pooled, e, a->lnf, e, b, tl, e);
    if (sh->seq_size > 1) {
        const float scale = (float)tl / (float)d.T;
        for (int64_t i = 0; i < b * e; i++) a->pooled[i] *= scale;
        sh->seq_sum(sh->ctx, a->pooled, b * e);
    }
    sn_linear_forward(nt, a->logits, d.C, a->pooled, e, m->p.head_w, d.E, m->p.head_b,
                      b, d.C, e);
    return a->logits;
}

static void grads_done(const sn_shard *sh, size_t offset)
{
    if (sh->grads_done) sh->grads_done(sh->ctx, offset);
}

const float *sn_model_backward_shard(int nt, sn_model *m, sn_acts *a, const sn_shard *sh,
                                     const float *dout)
{
    const sn_space *s = &m->space;
    const sn_subnet *n = &a->net;
    dims d = space_dims(s);
    const bool causal = s->task == SN_TASK_LM;
    const int64_t b = a->b, e = n->embed, tl = sh->tl, BT = b * tl;
    sn_params *g = &m->g;
    float *dres = a->dres;

    if (sh->last) {
        memset(a->dln, 0, (size_t)(BT * e) * sizeof(float));
        if (s->task == SN_TASK_LM) {
            sn_linear_backward(nt, a->dln, e, g->head_w, d.E, g->head_b, dout, d.C, a->lnf, e,
                               m->p.head_w, d.E, BT, d.C, e);
        } else {
            memset(a->dpooled, 0, (size_t)(b * e) * sizeof(float));
            const bool head_grads = sh->seq_rank == 0;
            sn_linear_backward(nt, a->dpooled, e, head_grads ? g->head_w : NULL, d.E,
                               head_grads ? g->head_b : NULL, dout, d.C, a->pooled, e,
                               m->p.head_w, d.E, b, d.C, e);
            if (sh->seq_size > 1) {
                const float scale = (float)tl / (float)d.T;
                for (int64_t i = 0; i < b * e; i++) a->dpooled[i] *= scale;
            }
            sn_meanpool_backward(nt, a->dln, e, a->dpooled, e, b, tl, e);
        }
        memset(dres, 0, (size_t)(BT * e) * sizeof(float));
        sn_layernorm_backward(nt, dres, e, g->norm_g, g->norm_b, a->dln, e,
                              a->x[a->n_local], e, a->meanf, a->rstdf, m->p.norm_g, BT, e);
        grads_done(sh, m->info[m->n_tensors - 4].offset);
    } else {
        memcpy(dres, dout, (size_t)(BT * e) * sizeof(float));
    }

    for (int j = a->n_local - 1; j >= 0; j--) {
        const int i = a->local_index[j], l = a->local_block[j];
        const sn_block_params *w = &m->p.block[l];
        sn_block_params *gw = &g->block[l];
        block_acts *k = &a->blk[j];
        const int64_t h = n->heads[i], hd = h * d.D, f = n->mlp[i];

        /* x[j+1] = xm + fc2(gelu(fc1(ln2(xm)))) */
        float *dh = a->dmid; /* of h2, then in place of h1 */
        sn_linear_backward_set(nt, dh, f, gw->fc2_w, d.F, gw->fc2_b, dres, e, k->h2, f,
                               w->fc2_w, d.F, BT, e, f);
        sn_gelu_backward_inplace(nt, dh, f, k->h1, f, BT, f);
        sn_linear_backward_set(nt, a->dln, e, gw->fc1_w, d.E, gw->fc1_b, dh, f, k->ln2, e,
                               w->fc1_w, d.E, BT, f, e);
        sn_layernorm_backward(nt, dres, e, gw->ln2_g, gw->ln2_b, a->dln, e, k->xm, e,
                              k->mean2, k->rstd2, w->ln2_g, BT, e);

        /* xm = x[j] + proj(attention(qkv(ln1(x[j])))) */
        float *dao = a->dmid, *dqkv = a->dqkv;
        sn_linear_backward_set(nt, dao, hd, gw->proj_w, d.HD, gw->proj_b, dres, e, k->ao, hd,
                               w->proj_w, d.HD, BT, e, hd);
        memset(dqkv, 0, (size_t)(BT * 3 * hd) * sizeof(float));
        if (sh->attn) {
            sh->attn->backward(sh->attn->ctx, nt, dqkv, 3 * hd, dao, hd, k->att, k->ao, hd,
                               k->qkv, 3 * hd, b, tl, h, d.D, causal);
        } else {
            int att_nt = nt < a->scratch_threads ? nt : a->scratch_threads;
            sn_attention_backward(att_nt, dqkv, 3 * hd, dao, hd, k->att, k->qkv, 3 * hd,
                                  a->att_scratch, b, tl, h, d.D);
        }
        sn_linear_backward_set(nt, a->dln, e, gw->qkv_w, d.E, gw->qkv_b, dqkv, 3 * hd, k->ln1,
                               e, w->qkv_w, d.E, BT, 3 * hd, e);
        sn_layernorm_backward(nt, dres, e, gw->ln1_g, gw->ln1_b, a->dln, e, a->x[j], e,
                              k->mean1, k->rstd1, w->ln1_g, BT, e);
        grads_done(sh, m->info[block_tensor(s, l)].offset);
    }

    if (!sh->first) return dres;
    embed_backward(nt, m, a, sh, dres, a->input, b, e);
    grads_done(sh, 0);
    return NULL;
}

const float *sn_model_forward(int nt, const sn_model *m, sn_acts *a,
                              const sn_subnet *n, const float *tokens, int64_t b)
{
    sn_shard sh;
    sn_shard_full(&m->space, &sh);
    return sn_model_forward_shard(nt, m, a, &sh, n, tokens, b);
}

void sn_model_backward(int nt, sn_model *m, sn_acts *a, const float *dlogits)
{
    sn_shard sh;
    sn_shard_full(&m->space, &sh);
    sn_model_backward_shard(nt, m, a, &sh, dlogits);
}
