#include "mpi/ring.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "src/attn_block.h"
#include "src/util.h"

/* One tag per kind of message.  The communicator is the engine's own
 * duplicate, and every call completes all its requests before returning,
 * so messages of one kind between two ranks match in order (MPI's
 * non-overtaking rule). */
enum { TAG_KV = 1, TAG_DKV, TAG_Q, TAG_PART, TAG_QBUNDLE, TAG_DQ };

typedef struct ring {
    sn_attn_engine engine; /* engine.ctx == this */
    MPI_Comm comm;         /* duplicate of the caller's, errors returned */
    int rank, size;
    sn_ring_variant variant;
    sn_seq_layout layout;
    bool local_only;
    sn_ring_counters stats;
    float *arena;          /* (arena_floats) every buffer of a call */
    size_t arena_floats;
    int32_t *pos;          /* (size, pos_tl) global positions of each rank's tokens */
    int64_t pos_tl;
} ring;

static _Noreturn void mpi_fail(const char *file, int line, int rc, const char *what)
{
    char es[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, es, &len) != MPI_SUCCESS) snprintf(es, sizeof es, "code %d", rc);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, es);
    sn_fatal(file, line, msg);
}

#define MPI_OK(call)                                                    \
    do {                                                                \
        int rc_ = (call);                                               \
        if (rc_ != MPI_SUCCESS) mpi_fail(__FILE__, __LINE__, rc_, #call); \
    } while (0)

/* ---------------------------------------------------------- bookkeeping */

static double tic(void) { return sn_now(); }

static void toc(ring *R, double t0) { R->stats.compute_seconds += sn_now() - t0; }

/* Carves a call's buffers out of the arena: a first pass with base NULL
 * counts, a second hands out 64-byte aligned pointers. */
typedef struct carver {
    float *base;
    size_t used;
} carver;

static float *take(carver *c, int64_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += ((size_t)n + 15) & ~(size_t)15;
    return p;
}

static void arena_reserve(ring *R, size_t n)
{
    if (n <= R->arena_floats) return;
    sn_free(R->arena);
    R->arena = sn_alloc(n * sizeof *R->arena);
    SN_CHECK(R->arena != NULL);
    R->arena_floats = n;
}

/* Positions of every rank's tl tokens, kept until tl changes. */
static void positions_for(ring *R, int64_t tl)
{
    SN_CHECK(tl >= 1);
    SN_CHECK(R->layout != SN_SEQ_ZIGZAG || R->size == 1 || tl % 2 == 0);
    SN_CHECK((int64_t)R->size * tl <= INT32_MAX);
    if (R->pos_tl == tl) return;
    sn_free(R->pos);
    R->pos = sn_alloc((size_t)R->size * (size_t)tl * sizeof *R->pos);
    SN_CHECK(R->pos != NULL);
    for (int o = 0; o < R->size; o++)
        sn_seq_positions(R->layout, (int64_t)R->size * tl, R->size, o, R->pos + o * tl);
    R->pos_tl = tl;
}

static const int32_t *pos_of(const ring *R, int o) { return R->pos + (int64_t)o * R->pos_tl; }

static int mod(int a, int s) { return ((a % s) + s) % s; }

/* ------------------------------------------------------------ transfers */

/* A paired exchange: n floats from sbuf to rank dst and n floats from rank
 * src into rbuf; a NULL buffer leaves out that half.  In local-only mode
 * the receive gets a copy of sbuf (zeros without one). */
typedef struct xfer {
    MPI_Request req[2];
} xfer;

static void xfer_start(ring *R, xfer *x, const float *sbuf, int dst, float *rbuf, int src,
                       int64_t n, int tag)
{
    x->req[0] = x->req[1] = MPI_REQUEST_NULL;
    if (R->local_only) {
        if (rbuf && sbuf)
            memcpy(rbuf, sbuf, (size_t)n * sizeof *rbuf);
        else if (rbuf)
            memset(rbuf, 0, (size_t)n * sizeof *rbuf);
        return;
    }
    SN_CHECK(n <= INT_MAX);
    if (rbuf) MPI_OK(MPI_Irecv(rbuf, (int)n, MPI_FLOAT, src, tag, R->comm, &x->req[0]));
    if (sbuf) {
        MPI_OK(MPI_Isend(sbuf, (int)n, MPI_FLOAT, dst, tag, R->comm, &x->req[1]));
        R->stats.bytes_sent += (uint64_t)n * sizeof(float);
        R->stats.messages++;
    }
}

static void xfer_wait(ring *R, xfer *x)
{
    double t0 = sn_now();
    MPI_OK(MPI_Waitall(2, x->req, MPI_STATUSES_IGNORE));
    R->stats.wait_seconds += sn_now() - t0;
}

/* The exchanges in flight while a block is computed.  Open MPI moves a
 * large (rendezvous) message only inside MPI calls, so the block is
 * computed in pieces and these are tested between pieces. */
typedef struct inflight {
    xfer *x[2];
    int n;
} inflight;

static inflight flying(xfer *a, xfer *b)
{
    inflight f = { { NULL, NULL }, 0 };
    if (a) f.x[f.n++] = a;
    if (b) f.x[f.n++] = b;
    return f;
}

static void poke(inflight f)
{
    for (int i = 0; i < f.n; i++) {
        int done = 0;
        MPI_OK(MPI_Testall(2, f.x[i]->req, &done, MPI_STATUSES_IGNORE));
    }
}

/* A view moved to sequence s (of t rows) and head h0. */
static sn_heads at_in(sn_heads v, int64_t s, int64_t h0, int64_t t)
{
    return (sn_heads){ v.p + s * t * v.ld + h0 * v.hs, v.ld, v.hs };
}

static sn_heads_mut at_mut(sn_heads_mut v, int64_t s, int64_t h0, int64_t t)
{
    return (sn_heads_mut){ v.p + s * t * v.ld + h0 * v.hs, v.ld, v.hs };
}

/* A block is computed in pieces, each one sequence and a group of nt
 * heads (so that every piece keeps nt threads busy), numbered sequence by
 * sequence; a span is the pieces [p0, p1). */
typedef struct span {
    int64_t p0, p1;
} span;

#define ALL_PIECES ((span){ 0, INT64_MAX })

static int64_t pieces(int64_t b, int64_t h, int nt) { return b * ((h + nt - 1) / nt); }

/* The own block is computed in two spans: the first while the first hop
 * travels, the second while the last returns (its work depends on
 * neither).  With one piece, all of it goes first. */
static span first_half(int64_t np) { return (span){ 0, (np + 1) / 2 }; }
static span second_half(int64_t np) { return (span){ (np + 1) / 2, np }; }

/* sn_attn_block_forward (arguments as there) over the pieces of sp,
 * testing the exchanges f after each piece; all pieces with nothing in
 * flight is a single call. */
static void block_forward(inflight f, span sp, int nt, sn_heads_mut o, float *lse, float *scratch,
                          sn_heads q, const int32_t *qpos, int64_t tq,
                          sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                          int64_t b, int64_t h, int64_t d, bool causal)
{
    const int64_t np = pieces(b, h, nt), groups = np / b, p1 = sp.p1 < np ? sp.p1 : np;
    if (f.n == 0 && sp.p0 == 0 && p1 == np) {
        sn_attn_block_forward(nt, o, lse, scratch, q, qpos, tq, k, v, kpos, tk, b, h, d, causal);
        return;
    }
    for (int64_t pi = sp.p0; pi < p1; pi++) {
        const int64_t s = pi / groups, h0 = (pi % groups) * nt, hn = h - h0 < nt ? h - h0 : nt;
        sn_attn_block_forward(nt, at_mut(o, s, h0, tq), lse + (s * h + h0) * tq, scratch,
                              at_in(q, s, h0, tq), qpos, tq,
                              at_in(k, s, h0, tk), at_in(v, s, h0, tk), kpos, tk,
                              1, hn, d, causal);
        poke(f);
    }
}

/* sn_attn_block_backward over the pieces of sp, as block_forward. */
static void block_backward(inflight f, span sp, int nt, sn_heads_mut dq, sn_heads_mut dk,
                           sn_heads_mut dv, float *scratch, sn_heads q, sn_heads g,
                           const float *lse, const float *dsum, const int32_t *qpos, int64_t tq,
                           sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                           int64_t b, int64_t h, int64_t d, bool causal)
{
    const int64_t np = pieces(b, h, nt), groups = np / b, p1 = sp.p1 < np ? sp.p1 : np;
    if (f.n == 0 && sp.p0 == 0 && p1 == np) {
        sn_attn_block_backward(nt, dq, dk, dv, scratch, q, g, lse, dsum, qpos, tq,
                               k, v, kpos, tk, b, h, d, causal);
        return;
    }
    for (int64_t pi = sp.p0; pi < p1; pi++) {
        const int64_t s = pi / groups, h0 = (pi % groups) * nt, hn = h - h0 < nt ? h - h0 : nt;
        const int64_t l0 = (s * h + h0) * tq;
        sn_attn_block_backward(nt, at_mut(dq, s, h0, tq), at_mut(dk, s, h0, tk),
                               at_mut(dv, s, h0, tk), scratch,
                               at_in(q, s, h0, tq), at_in(g, s, h0, tq), lse + l0, dsum + l0,
                               qpos, tq, at_in(k, s, h0, tk), at_in(v, s, h0, tk), kpos, tk,
                               1, hn, d, causal);
        poke(f);
    }
}

/* ----------------------------------------------------- views of buffers */

/* Views of a qkv-shaped buffer (row stride ld, head stride 3d). */
static sn_heads qkv_q(const float *qkv, int64_t ld, int64_t d) { return (sn_heads){ qkv, ld, 3 * d }; }
static sn_heads qkv_k(const float *qkv, int64_t ld, int64_t d) { return (sn_heads){ qkv + d, ld, 3 * d }; }
static sn_heads qkv_v(const float *qkv, int64_t ld, int64_t d) { return (sn_heads){ qkv + 2 * d, ld, 3 * d }; }
static sn_heads_mut mut_at(float *p, int64_t ld, int64_t hs) { return (sn_heads_mut){ p, ld, hs }; }
static sn_heads in_at(const float *p, int64_t ld, int64_t hs) { return (sn_heads){ p, ld, hs }; }

/* ------------------------------------------------------- plain: forward */

/* Buffers: kv[2] (b*tl, 2hd) head by head [k(d) v(d)], the block held and
 * the one arriving; po (b*tl, hd) and plse (b*h, tl), a block's partial;
 * scratch for the kernels. */
typedef struct plain_fwd_bufs {
    float *kv[2], *po, *plse, *scratch;
} plain_fwd_bufs;

static void plain_fwd_carve(carver *c, plain_fwd_bufs *B, int nt, int64_t b, int64_t tl,
                            int64_t h, int64_t d)
{
    B->kv[0] = take(c, b * tl * 2 * h * d);
    B->kv[1] = take(c, b * tl * 2 * h * d);
    B->po = take(c, b * tl * h * d);
    B->plse = take(c, b * h * tl);
    B->scratch = take(c, sn_attn_block_scratch_floats(nt, tl));
}

static void plain_forward(ring *R, int nt, float *out, int64_t ldo, float *lse,
                          const float *qkv, int64_t ldqkv,
                          int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    const int S = R->size, r = R->rank;
    const int64_t nkv = b * tl * 2 * h * d, hd = h * d;
    carver c = { NULL, 0 };
    plain_fwd_bufs B;
    plain_fwd_carve(&c, &B, nt, b, tl, h, d);
    arena_reserve(R, c.used);
    c = (carver){ R->arena, 0 };
    plain_fwd_carve(&c, &B, nt, b, tl, h, d);

    const int32_t *qpos = pos_of(R, r);
    const sn_heads q = qkv_q(qkv, ldqkv, d);
    const sn_heads_mut o = mut_at(out, ldo, d);
    double t0 = tic();
    if (S > 1) sn_heads_copy(nt, mut_at(B.kv[0], 2 * hd, 2 * d), qkv_k(qkv, ldqkv, d), b * tl, h, 2 * d);
    toc(R, t0);
    /* The own block first, straight from qkv into out: it starts the
     * running (out, lse), so it needs no merge. */
    xfer x;
    for (int j = 0; j < S; j++) {
        const int owner = mod(r - j, S);
        const float *cur = B.kv[j % 2];
        if (j + 1 < S) xfer_start(R, &x, cur, mod(r + 1, S), B.kv[(j + 1) % 2], mod(r - 1, S), nkv, TAG_KV);
        t0 = tic();
        if (j == 0) {
            block_forward(flying(j + 1 < S ? &x : NULL, NULL), ALL_PIECES, nt, o, lse, B.scratch,
                          q, qpos, tl, qkv_k(qkv, ldqkv, d), qkv_v(qkv, ldqkv, d), qpos, tl,
                          b, h, d, causal);
        } else if (sn_attn_block_visible(qpos, tl, pos_of(R, owner), tl, causal)) {
            block_forward(flying(j + 1 < S ? &x : NULL, NULL), ALL_PIECES, nt,
                          mut_at(B.po, hd, d), B.plse, B.scratch, q, qpos, tl, in_at(cur, 2 * hd, 2 * d),
                          in_at(cur + d, 2 * hd, 2 * d), pos_of(R, owner), tl, b, h, d,
                          causal);
            sn_attn_block_merge(nt, o, lse, in_at(B.po, hd, d), B.plse, b, tl, h, d);
        }
        toc(R, t0);
        if (j + 1 < S) xfer_wait(R, &x);
    }
}

/* ------------------------------------------------------ plain: backward */

/* Buffers: kv[2] as forward; acc[2] (b*tl, 2hd) [dk(d) dv(d)] per head,
 * the accumulator of the block held and the one arriving; contrib, this
 * rank's part of the held block's accumulator; dsum (b*h, tl). */
typedef struct plain_bwd_bufs {
    float *kv[2], *acc[2], *contrib, *dsum, *scratch;
} plain_bwd_bufs;

static void plain_bwd_carve(carver *c, plain_bwd_bufs *B, int nt, int64_t b, int64_t tl,
                            int64_t h, int64_t d)
{
    const int64_t nkv = b * tl * 2 * h * d;
    B->kv[0] = take(c, nkv);
    B->kv[1] = take(c, nkv);
    B->acc[0] = take(c, nkv);
    B->acc[1] = take(c, nkv);
    B->contrib = take(c, nkv);
    B->dsum = take(c, b * h * tl);
    B->scratch = take(c, sn_attn_block_scratch_floats(nt, tl));
}

/* Step j (0 <= j < S) computes the local queries against the block of
 * rank r - j.  The own block (j = 0) adds its dK/dV straight into dqkv;
 * its first half is computed at step 0, its second after the loop, while
 * the last hop of the accumulators travels.  The accumulator of the
 * block of rank o starts at rank o + 1 (step 1), picks up the
 * contribution of every rank that holds the block in turn, and after
 * S - 1 hops, each sent once its holder has added to it, comes home to o. */
static void plain_backward(ring *R, int nt, float *dqkv, int64_t lddqkv,
                           const float *dout, int64_t lddo, const float *lse,
                           const float *out, int64_t ldo, const float *qkv, int64_t ldqkv,
                           int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    const int S = R->size, r = R->rank, next = mod(r + 1, S), prev = mod(r - 1, S);
    const int64_t nkv = b * tl * 2 * h * d, hd = h * d, np = pieces(b, h, nt);
    carver c = { NULL, 0 };
    plain_bwd_bufs B;
    plain_bwd_carve(&c, &B, nt, b, tl, h, d);
    arena_reserve(R, c.used);
    c = (carver){ R->arena, 0 };
    plain_bwd_carve(&c, &B, nt, b, tl, h, d);

    const int32_t *qpos = pos_of(R, r);
    const sn_heads q = qkv_q(qkv, ldqkv, d), g = in_at(dout, lddo, d);
    const sn_heads k_own = qkv_k(qkv, ldqkv, d), v_own = qkv_v(qkv, ldqkv, d);
    const sn_heads_mut dq = mut_at(dqkv, lddqkv, 3 * d), dk_own = mut_at(dqkv + d, lddqkv, 3 * d),
                       dv_own = mut_at(dqkv + 2 * d, lddqkv, 3 * d);
    double t0 = tic();
    sn_attn_block_rowdot(nt, B.dsum, g, in_at(out, ldo, d), b, tl, h, d);
    if (S > 1) sn_heads_copy(nt, mut_at(B.kv[0], 2 * hd, 2 * d), k_own, b * tl, h, 2 * d);
    toc(R, t0);
    xfer xk, xa;
    for (int j = 0; j < S; j++) {
        const int owner = mod(r - j, S);
        const float *cur = B.kv[j % 2];
        if (j + 1 < S) xfer_start(R, &xk, cur, next, B.kv[(j + 1) % 2], prev, nkv, TAG_KV);
        t0 = tic();
        if (j == 0) {
            block_backward(flying(S > 1 ? &xk : NULL, NULL), S > 1 ? first_half(np) : ALL_PIECES,
                           nt, dq, dk_own, dv_own, B.scratch, q, g, lse, B.dsum, qpos, tl,
                           k_own, v_own, qpos, tl, b, h, d, causal);
            toc(R, t0);
        } else {
            const bool vis = sn_attn_block_visible(qpos, tl, pos_of(R, owner), tl, causal);
            /* At step 1 the accumulator starts here; later it arrives
             * from prev while this rank computes its part. */
            float *acc = B.acc[j % 2];
            float *dst = j == 1 ? acc : B.contrib;
            if (j == 1 || vis) memset(dst, 0, (size_t)nkv * sizeof *dst);
            if (vis)
                block_backward(flying(j + 1 < S ? &xk : NULL, j >= 2 ? &xa : NULL), ALL_PIECES,
                               nt, dq, mut_at(dst, 2 * hd, 2 * d), mut_at(dst + d, 2 * hd, 2 * d),
                               B.scratch, q, g, lse, B.dsum, qpos, tl,
                               in_at(cur, 2 * hd, 2 * d), in_at(cur + d, 2 * hd, 2 * d),
                               pos_of(R, owner), tl, b, h, d, causal);
            toc(R, t0);
            if (j >= 2) {
                xfer_wait(R, &xa);
                if (vis) {
                    t0 = tic();
                    sn_heads_add(nt, mut_at(acc, 2 * hd, 2 * d), in_at(B.contrib, 2 * hd, 2 * d),
                                 b * tl, 1, 2 * hd);
                    toc(R, t0);
                }
            }
            xfer_start(R, &xa, acc, next, B.acc[(j + 1) % 2], prev, nkv, TAG_DKV);
        }
        if (j + 1 < S) xfer_wait(R, &xk);
    }
    if (S > 1) {
        t0 = tic();
        block_backward(flying(&xa, NULL), second_half(np), nt, dq, dk_own, dv_own, B.scratch,
                       q, g, lse, B.dsum, qpos, tl, k_own, v_own, qpos, tl, b, h, d, causal);
        toc(R, t0);
        xfer_wait(R, &xa);
        t0 = tic();
        sn_heads_add(nt, dk_own, in_at(B.acc[S % 2], 2 * hd, 2 * d), b * tl, h, 2 * d);
        toc(R, t0);
    }
}

/* ------------------------------------------------------- token: forward */

/* Buffers: qb[2] (b*tl, hd), the query block held and the one arriving;
 * ps[2], pr[2]: partials sent and received, each (b*tl, hd) output then
 * (b*h, tl) LSE, double buffered as they are merged one step late; pl,
 * the same, the second half of the own block. */
typedef struct token_fwd_bufs {
    float *qb[2], *ps[2], *pr[2], *pl, *scratch;
} token_fwd_bufs;

static void token_fwd_carve(carver *c, token_fwd_bufs *B, int nt, int64_t b, int64_t tl,
                            int64_t h, int64_t d)
{
    const int64_t nq = b * tl * h * d, np = nq + b * h * tl;
    for (int i = 0; i < 2; i++) B->qb[i] = take(c, nq);
    for (int i = 0; i < 2; i++) B->ps[i] = take(c, np);
    for (int i = 0; i < 2; i++) B->pr[i] = take(c, np);
    B->pl = take(c, np);
    B->scratch = take(c, sn_attn_block_scratch_floats(nt, tl));
}

/* (o, lse) of the pieces of sp = no key seen: 0 and -inf. */
static void clear_pieces(sn_heads_mut o, float *lse, span sp, int nt,
                         int64_t b, int64_t t, int64_t h, int64_t d)
{
    const int64_t np = pieces(b, h, nt), groups = np / b;
    for (int64_t pi = sp.p0; pi < sp.p1 && pi < np; pi++) {
        const int64_t s = pi / groups, h0 = (pi % groups) * nt, hn = h - h0 < nt ? h - h0 : nt;
        for (int64_t i = 0; i < t; i++)
            memset(o.p + (s * t + i) * o.ld + h0 * o.hs, 0, (size_t)(hn * d) * sizeof *o.p);
        for (int64_t i = 0; i < hn * t; i++) lse[(s * h + h0) * t + i] = -INFINITY;
    }
}

/* Step j (1 <= j < S) computes the queries of rank r - j, which arrived
 * through the ring, against the local keys, and sends the partial to
 * r - j; meanwhile the partial of the local queries against the keys of
 * rank r + j comes back and is merged at the next step (after its
 * compute), or after the loop.  The own block's first half goes straight
 * into (out, lse) at step 0; its second half, computed after the loop
 * while the last partial returns, is merged like the others (its pairs
 * start as "no key seen"). */
static void token_forward(ring *R, int nt, float *out, int64_t ldo, float *lse,
                          const float *qkv, int64_t ldqkv,
                          int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    const int S = R->size, r = R->rank, next = mod(r + 1, S), prev = mod(r - 1, S);
    const int64_t hd = h * d, nq = b * tl * hd, m = b * h * tl, np = nq + m;
    const int64_t npc = pieces(b, h, nt);
    carver c = { NULL, 0 };
    token_fwd_bufs B;
    token_fwd_carve(&c, &B, nt, b, tl, h, d);
    arena_reserve(R, c.used);
    c = (carver){ R->arena, 0 };
    token_fwd_carve(&c, &B, nt, b, tl, h, d);

    const int32_t *kpos = pos_of(R, r);
    const sn_heads q_own = qkv_q(qkv, ldqkv, d), k = qkv_k(qkv, ldqkv, d), v = qkv_v(qkv, ldqkv, d);
    const sn_heads_mut o = mut_at(out, ldo, d);
    double t0 = tic();
    if (S > 1) {
        sn_heads_copy(nt, mut_at(B.qb[0], hd, d), q_own, b * tl, h, d);
        clear_pieces(o, lse, second_half(npc), nt, b, tl, h, d);
        for (int64_t i = 0; i < m; i++) B.pl[nq + i] = -INFINITY;
    }
    toc(R, t0);
    xfer xq, xp[2];
    bool recv_vis[2] = { false, false };
    for (int j = 0; j < S; j++) {
        const float *cur = B.qb[j % 2];
        if (j + 1 < S) xfer_start(R, &xq, cur, next, B.qb[(j + 1) % 2], prev, nq, TAG_Q);
        t0 = tic();
        if (j == 0) {
            block_forward(flying(S > 1 ? &xq : NULL, NULL), S > 1 ? first_half(npc) : ALL_PIECES,
                          nt, o, lse, B.scratch, q_own, kpos, tl, k, v, kpos, tl,
                          b, h, d, causal);
            toc(R, t0);
        } else {
            const int qowner = mod(r - j, S), kowner = mod(r + j, S);
            const bool send_vis = sn_attn_block_visible(pos_of(R, qowner), tl, kpos, tl, causal);
            recv_vis[j % 2] = sn_attn_block_visible(kpos, tl, pos_of(R, kowner), tl, causal);
            float *ps = B.ps[j % 2], *pr = B.pr[j % 2];
            if (send_vis)
                block_forward(flying(j + 1 < S ? &xq : NULL, j >= 2 ? &xp[(j - 1) % 2] : NULL),
                              ALL_PIECES, nt, mut_at(ps, hd, d), ps + nq, B.scratch,
                              in_at(cur, hd, d), pos_of(R, qowner), tl, k, v, kpos, tl,
                              b, h, d, causal);
            toc(R, t0);
            xfer_start(R, &xp[j % 2], send_vis ? ps : NULL, qowner,
                       recv_vis[j % 2] ? pr : NULL, kowner, np, TAG_PART);
            if (j >= 2) {
                const int i = (j - 1) % 2;
                xfer_wait(R, &xp[i]);
                t0 = tic();
                if (recv_vis[i])
                    sn_attn_block_merge(nt, o, lse, in_at(B.pr[i], hd, d), B.pr[i] + nq, b, tl, h, d);
                toc(R, t0);
            }
        }
        if (j + 1 < S) xfer_wait(R, &xq);
    }
    if (S > 1) {
        const int i = (S - 1) % 2;
        t0 = tic();
        block_forward(flying(&xp[i], NULL), second_half(npc), nt, mut_at(B.pl, hd, d), B.pl + nq,
                      B.scratch, q_own, kpos, tl, k, v, kpos, tl, b, h, d, causal);
        sn_attn_block_merge(nt, o, lse, in_at(B.pl, hd, d), B.pl + nq, b, tl, h, d);
        toc(R, t0);
        xfer_wait(R, &xp[i]);
        t0 = tic();
        if (recv_vis[i])
            sn_attn_block_merge(nt, o, lse, in_at(B.pr[i], hd, d), B.pr[i] + nq, b, tl, h, d);
        toc(R, t0);
    }
}

/* ------------------------------------------------------ token: backward */

/* Buffers: bb[2] bundles, the one held and the one arriving, each
 * (b*tl, 2hd) head by head [q(d) dout(d)], then lse (b*h, tl), then
 * dsum (b*h, tl); dqs[2], dqr[2] (b*tl, hd): dQ partials sent and
 * received; dsum (b*h, tl) of the own rows (bb[0] is reused from step 1
 * on, the own block's second half needs them after the loop). */
typedef struct token_bwd_bufs {
    float *bb[2], *dqs[2], *dqr[2], *dsum, *scratch;
} token_bwd_bufs;

static void token_bwd_carve(carver *c, token_bwd_bufs *B, int nt, int64_t b, int64_t tl,
                            int64_t h, int64_t d)
{
    const int64_t nq = b * tl * h * d, nb = 2 * nq + 2 * b * h * tl;
    for (int i = 0; i < 2; i++) B->bb[i] = take(c, nb);
    for (int i = 0; i < 2; i++) B->dqs[i] = take(c, nq);
    for (int i = 0; i < 2; i++) B->dqr[i] = take(c, nq);
    B->dsum = take(c, b * h * tl);
    B->scratch = take(c, sn_attn_block_scratch_floats(nt, tl));
}

/* Step j (1 <= j < S): the bundle of rank r - j against the local K/V;
 * dK/dV go straight into dqkv, the dQ partial back to r - j; the dQ
 * partial of the local queries against rank r + j's keys comes back and
 * is added one step late.  The own block's first half is computed at
 * step 0, its second after the loop, while the last dQ partial returns. */
static void token_backward(ring *R, int nt, float *dqkv, int64_t lddqkv,
                           const float *dout, int64_t lddo, const float *lse,
                           const float *out, int64_t ldo, const float *qkv, int64_t ldqkv,
                           int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    const int S = R->size, r = R->rank, next = mod(r + 1, S), prev = mod(r - 1, S);
    const int64_t hd = h * d, nq = b * tl * hd, m = b * h * tl, nb = 2 * nq + 2 * m;
    const int64_t npc = pieces(b, h, nt);
    carver c = { NULL, 0 };
    token_bwd_bufs B;
    token_bwd_carve(&c, &B, nt, b, tl, h, d);
    arena_reserve(R, c.used);
    c = (carver){ R->arena, 0 };
    token_bwd_carve(&c, &B, nt, b, tl, h, d);

    const int32_t *kpos = pos_of(R, r);
    const sn_heads q_own = qkv_q(qkv, ldqkv, d), g_own = in_at(dout, lddo, d);
    const sn_heads k = qkv_k(qkv, ldqkv, d), v = qkv_v(qkv, ldqkv, d);
    const sn_heads_mut dq = mut_at(dqkv, lddqkv, 3 * d), dk = mut_at(dqkv + d, lddqkv, 3 * d),
                       dv = mut_at(dqkv + 2 * d, lddqkv, 3 * d);
    double t0 = tic();
    const float *dsum_own = B.dsum;
    sn_attn_block_rowdot(nt, B.dsum, g_own, in_at(out, ldo, d), b, tl, h, d);
    if (S > 1) {
        float *own = B.bb[0];
        sn_heads_copy(nt, mut_at(own, 2 * hd, 2 * d), q_own, b * tl, h, d);
        sn_heads_copy(nt, mut_at(own + d, 2 * hd, 2 * d), g_own, b * tl, h, d);
        memcpy(own + 2 * nq, lse, (size_t)m * sizeof *lse);
        memcpy(own + 2 * nq + m, B.dsum, (size_t)m * sizeof *lse);
    }
    toc(R, t0);
    xfer xb, xd[2];
    bool recv_vis[2] = { false, false };
    for (int j = 0; j < S; j++) {
        const float *cur = B.bb[j % 2];
        if (j + 1 < S) xfer_start(R, &xb, cur, next, B.bb[(j + 1) % 2], prev, nb, TAG_QBUNDLE);
        t0 = tic();
        if (j == 0) {
            block_backward(flying(S > 1 ? &xb : NULL, NULL), S > 1 ? first_half(npc) : ALL_PIECES,
                           nt, dq, dk, dv, B.scratch, q_own, g_own, lse, dsum_own, kpos, tl,
                           k, v, kpos, tl, b, h, d, causal);
            toc(R, t0);
        } else {
            const int qowner = mod(r - j, S), kowner = mod(r + j, S);
            const bool send_vis = sn_attn_block_visible(pos_of(R, qowner), tl, kpos, tl, causal);
            recv_vis[j % 2] = sn_attn_block_visible(kpos, tl, pos_of(R, kowner), tl, causal);
            float *dqs = B.dqs[j % 2];
            if (send_vis) {
                memset(dqs, 0, (size_t)nq * sizeof *dqs);
                block_backward(flying(j + 1 < S ? &xb : NULL, j >= 2 ? &xd[(j - 1) % 2] : NULL),
                               ALL_PIECES, nt, mut_at(dqs, hd, d), dk, dv, B.scratch,
                               in_at(cur, 2 * hd, 2 * d), in_at(cur + d, 2 * hd, 2 * d),
                               cur + 2 * nq, cur + 2 * nq + m, pos_of(R, qowner), tl,
                               k, v, kpos, tl, b, h, d, causal);
            }
            toc(R, t0);
            xfer_start(R, &xd[j % 2], send_vis ? dqs : NULL, qowner,
                       recv_vis[j % 2] ? B.dqr[j % 2] : NULL, kowner, nq, TAG_DQ);
            if (j >= 2) {
                const int i = (j - 1) % 2;
                xfer_wait(R, &xd[i]);
                t0 = tic();
                if (recv_vis[i]) sn_heads_add(nt, dq, in_at(B.dqr[i], hd, d), b * tl, h, d);
                toc(R, t0);
            }
        }
        if (j + 1 < S) xfer_wait(R, &xb);
    }
    if (S > 1) {
        const int i = (S - 1) % 2;
        t0 = tic();
        block_backward(flying(&xd[i], NULL), second_half(npc), nt, dq, dk, dv, B.scratch,
                       q_own, g_own, lse, dsum_own, kpos, tl, k, v, kpos, tl, b, h, d, causal);
        toc(R, t0);
        xfer_wait(R, &xd[i]);
        t0 = tic();
        if (recv_vis[i]) sn_heads_add(nt, dq, in_at(B.dqr[i], hd, d), b * tl, h, d);
        toc(R, t0);
    }
}

/* ------------------------------------------------------- engine entries */

static void ring_forward(void *ctx, int nt, float *out, int64_t ldo, float *save,
                         const float *qkv, int64_t ldqkv,
                         int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    ring *R = ctx;
    positions_for(R, tl);
    R->stats.calls++;
    if (R->variant == SN_RING_PLAIN)
        plain_forward(R, nt, out, ldo, save, qkv, ldqkv, b, tl, h, d, causal);
    else
        token_forward(R, nt, out, ldo, save, qkv, ldqkv, b, tl, h, d, causal);
}

static void ring_backward(void *ctx, int nt, float *dqkv, int64_t lddqkv,
                          const float *dout, int64_t lddo, const float *save,
                          const float *out, int64_t ldo, const float *qkv, int64_t ldqkv,
                          int64_t b, int64_t tl, int64_t h, int64_t d, bool causal)
{
    ring *R = ctx;
    positions_for(R, tl);
    R->stats.calls++;
    if (R->variant == SN_RING_PLAIN)
        plain_backward(R, nt, dqkv, lddqkv, dout, lddo, save, out, ldo, qkv, ldqkv,
                       b, tl, h, d, causal);
    else
        token_backward(R, nt, dqkv, lddqkv, dout, lddo, save, out, ldo, qkv, ldqkv,
                       b, tl, h, d, causal);
}

sn_attn_engine *sn_ring_create(MPI_Comm seq, sn_ring_variant variant, sn_seq_layout layout)
{
    ring *R = sn_calloc(sizeof *R);
    SN_CHECK(R != NULL);
    MPI_OK(MPI_Comm_dup(seq, &R->comm));
    MPI_OK(MPI_Comm_set_errhandler(R->comm, MPI_ERRORS_RETURN));
    MPI_OK(MPI_Comm_rank(R->comm, &R->rank));
    MPI_OK(MPI_Comm_size(R->comm, &R->size));
    R->variant = variant;
    R->layout = layout;
    R->engine.ctx = R;
    R->engine.forward = ring_forward;
    R->engine.backward = ring_backward;
    return &R->engine;
}

sn_attn_engine *sn_ring_create_local(void)
{
    return sn_ring_create(MPI_COMM_SELF, SN_RING_PLAIN, SN_SEQ_CONTIGUOUS);
}

void sn_ring_destroy(sn_attn_engine *e)
{
    if (!e) return;
    ring *R = e->ctx;
    MPI_OK(MPI_Comm_free(&R->comm));
    sn_free(R->arena);
    sn_free(R->pos);
    sn_free(R);
}

void sn_ring_stats(const sn_attn_engine *e, sn_ring_counters *c)
{
    const ring *R = e->ctx;
    *c = R->stats;
}

void sn_ring_reset_stats(sn_attn_engine *e)
{
    ring *R = e->ctx;
    memset(&R->stats, 0, sizeof R->stats);
}

void sn_ring_set_local_only(sn_attn_engine *e, bool local_only)
{
    ring *R = e->ctx;
    R->local_only = local_only;
}
