/* test_ring.c: the ring attention engines (mpi/ring.h) against the
 * one-rank attention on the gathered sequence.  An MPI program: run it on
 * any number of ranks S (meson runs 1, 2, 3 and 4).
 *
 * Every rank builds the same random full-sequence qkv and dout from one
 * seed, takes its own rows by sn_seq_positions, runs the engine forward
 * and backward on strided copies (padding must survive), and compares its
 * rows with sn_attention_forward/backward of the full sequence.  Cases:
 * both variants x causal or not x contiguous or zigzag layout; a second
 * size whose blocks span several query tiles; and the engine used by two
 * layers in a row (two forwards, then the backwards in reverse order, as
 * a model does).  The bytes each rank sends are checked against the
 * formulas of ring.h.
 *
 * Tolerances.  The engine and the reference sum the same fp32 terms in a
 * different order (per block, merged with exp weights; dK/dV and dQ
 * summed over blocks): outputs are convex combinations of O(1) values, so
 * they agree to a few ulp per term; gradients sum O(T) O(1) terms.
 * |got - want| <= atol + rtol |want| with (2e-5, 1e-4) for outputs and
 * (1e-4, 1e-3) for gradients leaves a wide margin at T <= 300, while a
 * missing block, wrong mask or mis-routed partial is off by O(0.1).
 *
 * Each rank counts its failures; an MPI_Allreduce gives every rank the
 * total, so all exit non-zero together (none hangs waiting for another).
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/attn_block.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/seq.h"
#include "src/util.h"

#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-4
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-3
#define SENTINEL 777.0f
#define PAD 2

static int S, R;

static float *falloc(int64_t n)
{
    float *p = sn_alloc((size_t)n * sizeof *p);
    SN_CHECK(p != NULL);
    return p;
}

/* The largest |got - want| and (|got - want|) / (atol + rtol |want|) over
 * a strided block. */
typedef struct err {
    double abs, rel;
} err;

static void err_add(err *e, const float *got, int64_t ldg, const float *want, int64_t ldw,
                    int64_t rows, int64_t cols, double atol, double rtol)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double g = got[i * ldg + j], w = want[i * ldw + j], a = fabs(g - w);
            double rel = a / (atol + rtol * fabs(w));
            if (!(a <= e->abs)) e->abs = isnan(a) ? INFINITY : a;
            if (!(rel <= e->rel)) e->rel = isnan(rel) ? INFINITY : rel;
        }
}

/* Padding columns [cols, ld) of every row still hold SENTINEL. */
static bool pad_ok(const float *a, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = cols; j < ld; j++)
            if (a[i * ld + j] != SENTINEL) return false;
    return true;
}

/* One layer's data: the full sequence and reference, and this rank's rows. */
typedef struct layer {
    float *qkv, *dout, *out_ref, *dqkv_ref; /* full: (b*T, 3hd) (b*T, hd) (b*T, hd) (b*T, 3hd) */
    float *qkv_l, *dout_l, *out_l, *dqkv_l; /* local, strided: row widths + PAD */
    float *save;                            /* (b*h*tl*tl) */
} layer;

static void layer_make(layer *L, uint64_t seed, const int32_t *pos, int64_t b, int64_t T,
                       int64_t tl, int64_t h, int64_t d, bool causal)
{
    const int64_t w = 3 * h * d, hd = h * d;
    sn_rng r;
    sn_rng_seed(&r, seed, 7);
    L->qkv = falloc(b * T * w);
    L->dout = falloc(b * T * hd);
    for (int64_t i = 0; i < b * T * w; i++) L->qkv[i] = sn_rng_normal(&r);
    for (int64_t i = 0; i < b * T * hd; i++) L->dout[i] = sn_rng_normal(&r);
    L->out_ref = falloc(b * T * hd);
    L->dqkv_ref = calloc((size_t)(b * T * w), sizeof(float));
    SN_CHECK(L->dqkv_ref != NULL);
    float *att = falloc(b * h * T * T), *scr = falloc(T * T);
    sn_attention_forward(1, L->out_ref, hd, att, L->qkv, w, b, T, h, d, causal);
    sn_attention_backward(1, L->dqkv_ref, w, L->dout, hd, att, L->qkv, w, scr, b, T, h, d);
    sn_free(att);
    sn_free(scr);

    L->qkv_l = falloc(b * tl * (w + PAD));
    L->dout_l = falloc(b * tl * (hd + PAD));
    L->out_l = falloc(b * tl * (hd + PAD));
    L->dqkv_l = falloc(b * tl * (w + PAD));
    L->save = falloc(b * h * tl * tl);
    for (int64_t s = 0; s < b; s++)
        for (int64_t i = 0; i < tl; i++) {
            const int64_t g = s * T + pos[i], l = s * tl + i;
            for (int64_t j = 0; j < w + PAD; j++) {
                L->qkv_l[l * (w + PAD) + j] = j < w ? L->qkv[g * w + j] : SENTINEL;
                /* dqkv starts at 0.5: backward must add to it. */
                L->dqkv_l[l * (w + PAD) + j] = j < w ? 0.5f : SENTINEL;
            }
            for (int64_t j = 0; j < hd + PAD; j++) {
                L->dout_l[l * (hd + PAD) + j] = j < hd ? L->dout[g * hd + j] : SENTINEL;
                L->out_l[l * (hd + PAD) + j] = SENTINEL;
            }
        }
}

static void layer_free(layer *L)
{
    sn_free(L->qkv);
    sn_free(L->dout);
    sn_free(L->out_ref);
    free(L->dqkv_ref);
    sn_free(L->qkv_l);
    sn_free(L->dout_l);
    sn_free(L->out_l);
    sn_free(L->dqkv_l);
    sn_free(L->save);
}

/* Compares a layer's local rows with its reference; returns failures. */
static int layer_check(const layer *L, const int32_t *pos, int64_t b, int64_t T, int64_t tl,
                       int64_t h, int64_t d, err *ef, err *eb)
{
    const int64_t w = 3 * h * d, hd = h * d;
    int bad = 0;
    float *dq = falloc(w);
    for (int64_t s = 0; s < b; s++)
        for (int64_t i = 0; i < tl; i++) {
            const int64_t g = s * T + pos[i], l = s * tl + i;
            err_add(ef, L->out_l + l * (hd + PAD), hd, L->out_ref + g * hd, hd, 1, hd,
                    FWD_ATOL, FWD_RTOL);
            for (int64_t j = 0; j < w; j++) dq[j] = L->dqkv_l[l * (w + PAD) + j] - 0.5f;
            err_add(eb, dq, w, L->dqkv_ref + g * w, w, 1, w, BWD_ATOL, BWD_RTOL);
        }
    sn_free(dq);
    if (!pad_ok(L->out_l, b * tl, hd, hd + PAD) || !pad_ok(L->dqkv_l, b * tl, w, w + PAD) ||
        !pad_ok(L->qkv_l, b * tl, w, w + PAD) || !pad_ok(L->dout_l, b * tl, hd, hd + PAD))
        bad++;
    return bad;
}

/* One case: nl layers forward in order, then backward in reverse order.
 * Returns the failures on this rank (after printing the group's worst
 * errors on rank 0). */
static int run_case(sn_ring_variant variant, sn_seq_layout layout, bool causal, int nl,
                    int64_t b, int64_t tl, int64_t h, int64_t d)
{
    const int64_t T = (int64_t)S * tl, w = 3 * h * d, hd = h * d;
    const int nt = S <= 2 ? 2 : 1;
    int32_t *pos = malloc((size_t)tl * sizeof *pos);
    SN_CHECK(pos != NULL);
    sn_seq_positions(layout, T, S, R, pos);
    layer L[2];
    for (int l = 0; l < nl; l++) layer_make(&L[l], 1000 + (uint64_t)l, pos, b, T, tl, h, d, causal);

    sn_attn_engine *e = sn_ring_create(MPI_COMM_WORLD, variant, layout);
    for (int l = 0; l < nl; l++)
        e->forward(e->ctx, nt, L[l].out_l, hd + PAD, L[l].save, L[l].qkv_l, w + PAD,
                   b, tl, h, d, causal);
    sn_ring_counters c;
    sn_ring_stats(e, &c);
    const uint64_t fwd_bytes = c.bytes_sent;
    for (int l = nl - 1; l >= 0; l--)
        e->backward(e->ctx, nt, L[l].dqkv_l, w + PAD, L[l].dout_l, hd + PAD, L[l].save,
                    L[l].out_l, hd + PAD, L[l].qkv_l, w + PAD, b, tl, h, d, causal);
    sn_ring_stats(e, &c);
    const uint64_t bwd_bytes = c.bytes_sent - fwd_bytes;
    sn_ring_destroy(e);

    int bad = 0;
    err ef = { 0, 0 }, eb = { 0, 0 };
    for (int l = 0; l < nl; l++) bad += layer_check(&L[l], pos, b, T, tl, h, d, &ef, &eb);
    /* ring.h's byte counts, n = b tl h d, m = b h tl, v = visible hops. */
    const uint64_t n = (uint64_t)(b * tl * h * d), m = (uint64_t)(b * h * tl), s1 = (uint64_t)(S - 1);
    uint64_t vis = 0, want_f, want_b;
    int32_t *all = malloc((size_t)T * sizeof *all);
    SN_CHECK(all != NULL);
    for (int o = 0; o < S; o++) sn_seq_positions(layout, T, S, o, all + o * tl);
    for (int j = 1; j < S; j++)
        vis += sn_attn_block_visible(all + ((R - j + S) % S) * tl, tl, all + R * tl, tl, causal);
    free(all);
    if (variant == SN_RING_PLAIN) {
        want_f = 2 * n * s1;
        want_b = 4 * n * s1;
    } else {
        want_f = n * s1 + vis * (n + m);
        want_b = (2 * n + 2 * m) * s1 + vis * n;
    }
    if (fwd_bytes != (uint64_t)nl * want_f * sizeof(float) ||
        bwd_bytes != (uint64_t)nl * want_b * sizeof(float) || c.calls != 2 * (uint64_t)nl) {
        fprintf(stderr, "rank %d: sent %llu + %llu bytes in %llu calls, want %llu + %llu in %d\n", R,
                (unsigned long long)fwd_bytes, (unsigned long long)bwd_bytes,
                (unsigned long long)c.calls, (unsigned long long)(nl * want_f * sizeof(float)),
                (unsigned long long)(nl * want_b * sizeof(float)), 2 * nl);
        bad++;
    }
    if (ef.rel > 1.0 || eb.rel > 1.0) bad++;
    double loc[4] = { ef.abs, ef.rel, eb.abs, eb.rel }, glob[4];
    SN_CHECK(MPI_Allreduce(loc, glob, 4, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS);
    int gbad = 0;
    SN_CHECK(MPI_Allreduce(&bad, &gbad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS);
    if (R == 0)
        printf("%s S=%d %-10s %-6s layers=%d b=%lld tl=%lld h=%lld d=%lld: "
               "out max abs %.2e (rel/tol %.2f), dqkv max abs %.2e (rel/tol %.2f)  %s\n",
               variant == SN_RING_PLAIN ? "plain" : "token", S,
               layout == SN_SEQ_ZIGZAG ? "zigzag" : "contiguous", causal ? "causal" : "full",
               nl, (long long)b, (long long)tl, (long long)h, (long long)d,
               glob[0], glob[1], glob[2], glob[3], gbad ? "FAIL" : "ok");
    for (int l = 0; l < nl; l++) layer_free(&L[l]);
    free(pos);
    return bad;
}

int main(int argc, char **argv)
{
    sn_mpi_info info;
    if (sn_mpi_init(&argc, &argv, &info) != SN_OK) return 1;
    S = info.size;
    R = info.rank;
    int bad = 0;
    const sn_ring_variant variants[2] = { SN_RING_PLAIN, SN_RING_TOKEN };
    for (int v = 0; v < 2; v++)
        for (int lay = 0; lay < 2; lay++)
            for (int causal = 0; causal < 2; causal++)
                bad += run_case(variants[v], lay ? SN_SEQ_ZIGZAG : SN_SEQ_CONTIGUOUS, causal,
                                1, 2, 12, 3, 8);
    for (int v = 0; v < 2; v++) {
        /* Two layers through one engine, the model's order of calls. */
        bad += run_case(variants[v], SN_SEQ_ZIGZAG, true, 2, 2, 10, 2, 8);
        bad += run_case(variants[v], SN_SEQ_CONTIGUOUS, false, 2, 1, 10, 2, 8);
        /* One token per zigzag chunk. */
        bad += run_case(variants[v], SN_SEQ_ZIGZAG, true, 1, 1, 2, 1, 4);
        bad += run_case(variants[v], SN_SEQ_CONTIGUOUS, true, 1, 3, 1, 2, 4);
        /* Blocks of several query tiles (SN_ATTN_QTILE rows each). */
        bad += run_case(variants[v], SN_SEQ_ZIGZAG, true, 1, 1, (300 / S + 1) / 2 * 2, 2, 16);
    }
    int gbad = 0;
    SN_CHECK(MPI_Allreduce(&bad, &gbad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS);
    if (R == 0) printf("%s: %d failure(s) over %d rank(s)\n", gbad ? "FAIL" : "PASS", gbad, S);
    sn_mpi_finalize();
    return gbad ? 1 : 0;
}
