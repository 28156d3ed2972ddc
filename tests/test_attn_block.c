/* test_attn_block.c: the block kernels of src/attn_block.h against the
 * one-rank attention of src/ops.h.
 *
 * A full sequence's qkv is cut into query and key blocks of arbitrary rows
 * (random subsets in random order, or contiguous chunks as the layouts
 * make), each block gathered into a compact buffer with its rows' global
 * positions.  Forward over the key blocks merged in turn must give
 * sn_attention_forward's rows; backward over every (query block, key
 * block) pair, scattered back, must give sn_attention_backward, and
 * central finite differences of a forward built from blocks.
 *
 * Tolerances.  Outputs are convex combinations of O(1) values summed in
 * float in a different order (per block, then merged with exp weights):
 * each differs from the reference by a few ulp of O(1) per term, so
 * 2e-5 absolute + 1e-4 relative has ample margin while any wrong weight,
 * mask or merge is off by O(0.1).  Gradients sum O(t) O(1) terms, same
 * argument: 1e-4 absolute + 1e-3 relative.  Finite differences as in
 * test_ops.c: step 1e-2, 2e-3 absolute + 1e-2 relative.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/attn_block.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/util.h"

#define NT 2
#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-4
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-3
#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

/* ---------------------------------------------------------------- helpers */

static float *falloc(int64_t n)
{
    float *p = sn_alloc((size_t)n * sizeof *p);
    assert_non_null(p);
    return p;
}

static float *frandn(sn_rng *r, int64_t n, float amp)
{
    float *p = falloc(n);
    for (int64_t i = 0; i < n; i++) p[i] = amp * sn_rng_normal(r);
    return p;
}

static float *fzero(int64_t n)
{
    float *p = sn_calloc((size_t)n * sizeof *p);
    assert_non_null(p);
    return p;
}

/* dst (b*n, w) compact = rows idx[0..n) of each of the b sequences of
 * t rows of src (row stride ld). */
static void gather(float *dst, const float *src, int64_t ld, const int64_t *idx, int64_t n,
                   int64_t b, int64_t t, int64_t w)
{
    for (int64_t s = 0; s < b; s++)
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (s * n + i) * w, src + (s * t + idx[i]) * ld, (size_t)w * sizeof *dst);
}

/* The inverse of gather, adding. */
static void scatter_add(float *dst, int64_t ld, const float *src, const int64_t *idx, int64_t n,
                        int64_t b, int64_t t, int64_t w)
{
    for (int64_t s = 0; s < b; s++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < w; j++)
                dst[(s * t + idx[i]) * ld + j] += src[(s * n + i) * w + j];
}

/* A split of the t rows of a sequence into nb blocks: perm holds the row
 * order (identity, or a random permutation), block i being
 * perm[start[i] .. start[i+1]). */
typedef struct split {
    int64_t perm[256];
    int32_t pos[256];
    int64_t start[9];
    int nb;
} split;

static void split_make(split *sp, sn_rng *r, int64_t t, int nb, bool shuffle)
{
    assert_true(t <= 256 && nb <= 8 && nb <= t);
    for (int64_t i = 0; i < t; i++) sp->perm[i] = i;
    if (shuffle) sn_rng_shuffle(r, sp->perm, t);
    for (int64_t i = 0; i < t; i++) sp->pos[i] = (int32_t)sp->perm[i];
    sp->nb = nb;
    sp->start[0] = 0;
    for (int i = 1; i < nb; i++) {
        /* Random cut points, strictly increasing, no empty block. */
        int64_t lo = sp->start[i - 1] + 1, hi = t - (nb - i);
        sp->start[i] = lo + (int64_t)sn_rng_below(r, (uint64_t)(hi - lo + 1));
    }
    sp->start[nb] = t;
}

static int64_t blk_n(const split *sp, int i) { return sp->start[i + 1] - sp->start[i]; }
static const int64_t *blk_idx(const split *sp, int i) { return sp->perm + sp->start[i]; }
static const int32_t *blk_pos(const split *sp, int i) { return sp->pos + sp->start[i]; }

static void expect_close(const float *got, int64_t ldg, const float *want, int64_t ldw,
                         int64_t rows, int64_t cols, double atol, double rtol, const char *what)
{
    double worst = 0.0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double g = got[i * ldg + j], w = want[i * ldw + j];
            double err = fabs(g - w) / (atol + rtol * fabs(w));
            if (!(err <= 1.0)) {
                fprintf(stderr, "%s: row %lld col %lld got %.7g want %.7g\n", what,
                        (long long)i, (long long)j, g, w);
                fail();
            }
            worst = err > worst ? err : worst;
        }
    (void)worst;
}

/* Forward of the query block qc (b*tq, 3hd) compact against the key
 * blocks of ks, each gathered from qkv, merged in turn into (o, lse),
 * which start as "no key seen" (0, -inf). */
static void forward_blocks(float *o, float *lse, const float *qc, const int32_t *qpos, int64_t tq,
                           const float *qkv, int64_t ld, const split *ks,
                           int64_t b, int64_t t, int64_t h, int64_t d, bool causal)
{
    const int64_t w = 3 * h * d;
    float *kc = falloc(b * t * w), *po = falloc(b * tq * h * d), *pl = falloc(b * h * tq);
    float *scr = falloc(sn_attn_block_scratch_floats(NT, t));
    memset(o, 0, (size_t)(b * tq * h * d) * sizeof *o);
    for (int64_t i = 0; i < b * h * tq; i++) lse[i] = -INFINITY;
    for (int kb = 0; kb < ks->nb; kb++) {
        const int64_t tk = blk_n(ks, kb);
        gather(kc, qkv, ld, blk_idx(ks, kb), tk, b, t, w);
        sn_attn_block_forward(NT, (sn_heads_mut){ po, h * d, d }, pl, scr,
                              (sn_heads){ qc, w, 3 * d }, qpos, tq,
                              (sn_heads){ kc + d, w, 3 * d }, (sn_heads){ kc + 2 * d, w, 3 * d },
                              blk_pos(ks, kb), tk, b, h, d, causal);
        sn_attn_block_merge(NT, (sn_heads_mut){ o, h * d, d }, lse, (sn_heads){ po, h * d, d }, pl,
                            b, tq, h, d);
    }
    sn_free(kc);
    sn_free(po);
    sn_free(pl);
    sn_free(scr);
}

/* ------------------------------------------------------------------ tests */

static void check_forward(int64_t b, int64_t t, int64_t h, int64_t d, bool causal, bool shuffle,
                          int nqb, int nkb, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 1);
    const int64_t w = 3 * h * d, ld = w + 3, hd = h * d;
    float *qkv = frandn(&r, b * t * ld, 1.0f);
    float *ref = falloc(b * t * hd), *att = falloc(b * h * t * t);
    sn_attention_forward(NT, ref, hd, att, qkv, ld, b, t, h, d, causal);
    split qs, ks;
    split_make(&qs, &r, t, nqb, shuffle);
    split_make(&ks, &r, t, nkb, shuffle);
    float *qc = falloc(b * t * w), *o = falloc(b * t * hd), *lse = falloc(b * h * t);
    float *want = falloc(b * t * hd);
    for (int qb = 0; qb < qs.nb; qb++) {
        const int64_t tq = blk_n(&qs, qb);
        gather(qc, qkv, ld, blk_idx(&qs, qb), tq, b, t, w);
        forward_blocks(o, lse, qc, blk_pos(&qs, qb), tq, qkv, ld, &ks, b, t, h, d, causal);
        gather(want, ref, hd, blk_idx(&qs, qb), tq, b, t, hd);
        expect_close(o, hd, want, hd, b * tq, hd, FWD_ATOL, FWD_RTOL, "block forward");
        for (int64_t i = 0; i < b * h * tq; i++) assert_true(isfinite(lse[i]));
    }
    sn_free(qkv);
    sn_free(ref);
    sn_free(att);
    sn_free(qc);
    sn_free(o);
    sn_free(lse);
    sn_free(want);
}

static void test_forward_contiguous(void **state)
{
    (void)state;
    check_forward(2, 37, 3, 8, false, false, 2, 3, 11);
    check_forward(2, 37, 3, 8, true, false, 3, 4, 12);
    /* Tiles: more query rows than SN_ATTN_QTILE. */
    check_forward(1, 200, 2, 16, true, false, 1, 3, 13);
}

static void test_forward_shuffled(void **state)
{
    (void)state;
    check_forward(2, 41, 2, 8, false, true, 2, 3, 21);
    /* Random positions: many runs, so the segment cap is exercised. */
    check_forward(2, 41, 2, 8, true, true, 2, 3, 22);
    check_forward(1, 41, 3, 4, true, true, 1, 1, 23);
}

/* Queries before every key: all masked, LSE -inf, output 0, and merging
 * leaves the other side bit for bit (both ways), never NaN. */
static void test_masked_rows(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 31, 1);
    const int64_t b = 2, tq = 5, tk = 7, h = 2, d = 4, w = 3 * h * d, hd = h * d;
    float *q = frandn(&r, b * tq * w, 1.0f), *k = frandn(&r, b * tk * w, 1.0f);
    int32_t qpos[5], kpos[7];
    for (int i = 0; i < tq; i++) qpos[i] = i;
    for (int j = 0; j < tk; j++) kpos[j] = 10 + j;
    /* Key 2 sits at the queries' positions 3: row 3 and 4 see it. */
    kpos[2] = 3;
    float *scr = falloc(sn_attn_block_scratch_floats(NT, tk));
    float *po = frandn(&r, b * tq * hd, 1.0f), *pl = falloc(b * h * tq);
    sn_attn_block_forward(NT, (sn_heads_mut){ po, hd, d }, pl, scr, (sn_heads){ q, w, 3 * d },
                          qpos, tq, (sn_heads){ k + d, w, 3 * d }, (sn_heads){ k + 2 * d, w, 3 * d },
                          kpos, tk, b, h, d, true);
    for (int64_t p = 0; p < b * h; p++)
        for (int64_t i = 0; i < tq; i++) {
            float l = pl[p * tq + i];
            if (i < 3) {
                assert_true(l == -INFINITY);
                for (int64_t j = 0; j < d; j++)
                    assert_true(po[((p / h) * tq + i) * hd + (p % h) * d + j] == 0.0f);
            } else {
                assert_true(isfinite(l));
            }
        }
    /* Accumulator with random finite rows; merge the partial in. */
    float *o = frandn(&r, b * tq * hd, 1.0f), *lse = frandn(&r, b * h * tq, 1.0f);
    float *o0 = falloc(b * tq * hd), *lse0 = falloc(b * h * tq);
    memcpy(o0, o, (size_t)(b * tq * hd) * sizeof *o);
    memcpy(lse0, lse, (size_t)(b * h * tq) * sizeof *lse);
    sn_attn_block_merge(NT, (sn_heads_mut){ o, hd, d }, lse, (sn_heads){ po, hd, d }, pl, b, tq, h, d);
    for (int64_t p = 0; p < b * h; p++)
        for (int64_t i = 0; i < tq; i++) {
            const float *orow = o + ((p / h) * tq + i) * hd + (p % h) * d;
            const float *o0row = o0 + ((p / h) * tq + i) * hd + (p % h) * d;
            for (int64_t j = 0; j < d; j++) assert_true(isfinite(orow[j]));
            assert_true(isfinite(lse[p * tq + i]));
            if (i < 3) {
                assert_memory_equal(orow, o0row, (size_t)d * sizeof *orow);
                assert_true(lse[p * tq + i] == lse0[p * tq + i]);
            }
        }
    /* An empty accumulator (0, -inf) merged with the partial becomes the
     * partial exactly; -inf with -inf stays -inf and 0. */
    memset(o, 0, (size_t)(b * tq * hd) * sizeof *o);
    for (int64_t i = 0; i < b * h * tq; i++) lse[i] = -INFINITY;
    sn_attn_block_merge(NT, (sn_heads_mut){ o, hd, d }, lse, (sn_heads){ po, hd, d }, pl, b, tq, h, d);
    assert_memory_equal(o, po, (size_t)(b * tq * hd) * sizeof *o);
    assert_memory_equal(lse, pl, (size_t)(b * h * tq) * sizeof *lse);
    /* LSEs whose exp overflows float: the merge never forms exp(lse). */
    lse[0] = 100.0f;
    pl[0] = 100.0f;
    o[0] = 1.0f;
    po[0] = 3.0f;
    sn_attn_block_merge(1, (sn_heads_mut){ o, hd, d }, lse, (sn_heads){ po, hd, d }, pl, 1, 1, 1, 1);
    assert_true(isfinite(lse[0]) && fabsf(o[0] - 2.0f) < 1e-4f);
    sn_free(q);
    sn_free(k);
    sn_free(scr);
    sn_free(po);
    sn_free(pl);
    sn_free(o);
    sn_free(lse);
    sn_free(o0);
    sn_free(lse0);
}

/* Gradient of the full sequence from blocks: forward over all keys gives
 * each query block's (out, lse); backward over every block pair. */
static void blocks_backward(float *dqkv, int64_t ld, const float *qkv, const float *dout,
                            const split *qs, const split *ks,
                            int64_t b, int64_t t, int64_t h, int64_t d, bool causal)
{
    const int64_t w = 3 * h * d, hd = h * d;
    float *qc = falloc(b * t * w), *kc = falloc(b * t * w), *gc = falloc(b * t * hd);
    float *o = falloc(b * t * hd), *lse = falloc(b * h * t), *ds = falloc(b * h * t);
    float *dqc = falloc(b * t * w), *dkc = falloc(b * t * w);
    float *scr = falloc(sn_attn_block_scratch_floats(NT, t));
    for (int qb = 0; qb < qs->nb; qb++) {
        const int64_t tq = blk_n(qs, qb);
        gather(qc, qkv, ld, blk_idx(qs, qb), tq, b, t, w);
        gather(gc, dout, hd, blk_idx(qs, qb), tq, b, t, hd);
        forward_blocks(o, lse, qc, blk_pos(qs, qb), tq, qkv, ld, ks, b, t, h, d, causal);
        sn_attn_block_rowdot(NT, ds, (sn_heads){ gc, hd, d }, (sn_heads){ o, hd, d }, b, tq, h, d);
        memset(dqc, 0, (size_t)(b * tq * w) * sizeof *dqc);
        for (int kb = 0; kb < ks->nb; kb++) {
            const int64_t tk = blk_n(ks, kb);
            gather(kc, qkv, ld, blk_idx(ks, kb), tk, b, t, w);
            memset(dkc, 0, (size_t)(b * tk * w) * sizeof *dkc);
            sn_attn_block_backward(NT, (sn_heads_mut){ dqc, w, 3 * d },
                                   (sn_heads_mut){ dkc + d, w, 3 * d },
                                   (sn_heads_mut){ dkc + 2 * d, w, 3 * d }, scr,
                                   (sn_heads){ qc, w, 3 * d }, (sn_heads){ gc, hd, d }, lse, ds,
                                   blk_pos(qs, qb), tq,
                                   (sn_heads){ kc + d, w, 3 * d }, (sn_heads){ kc + 2 * d, w, 3 * d },
                                   blk_pos(ks, kb), tk, b, h, d, causal);
            scatter_add(dqkv, ld, dkc, blk_idx(ks, kb), tk, b, t, w);
        }
        scatter_add(dqkv, ld, dqc, blk_idx(qs, qb), tq, b, t, w);
    }
    sn_free(qc);
    sn_free(kc);
    sn_free(gc);
    sn_free(o);
    sn_free(lse);
    sn_free(ds);
    sn_free(dqc);
    sn_free(dkc);
    sn_free(scr);
}

static void check_backward(int64_t b, int64_t t, int64_t h, int64_t d, bool causal, bool shuffle,
                           int nqb, int nkb, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 2);
    const int64_t w = 3 * h * d, ld = w + 3, hd = h * d;
    float *qkv = frandn(&r, b * t * ld, 1.0f), *dout = frandn(&r, b * t * hd, 1.0f);
    float *out = falloc(b * t * hd), *att = falloc(b * h * t * t);
    float *scr = falloc(NT * t * t);
    float *want = fzero(b * t * ld), *got = fzero(b * t * ld);
    sn_attention_forward(NT, out, hd, att, qkv, ld, b, t, h, d, causal);
    sn_attention_backward(NT, want, ld, dout, hd, att, qkv, ld, scr, b, t, h, d);
    split qs, ks;
    split_make(&qs, &r, t, nqb, shuffle);
    split_make(&ks, &r, t, nkb, shuffle);
    blocks_backward(got, ld, qkv, dout, &qs, &ks, b, t, h, d, causal);
    expect_close(got, ld, want, ld, b * t, w, BWD_ATOL, BWD_RTOL, "block backward");
    sn_free(qkv);
    sn_free(dout);
    sn_free(out);
    sn_free(att);
    sn_free(scr);
    sn_free(want);
    sn_free(got);
}

static void test_backward_vs_ops(void **state)
{
    (void)state;
    check_backward(2, 37, 3, 8, false, false, 2, 3, 41);
    check_backward(2, 37, 3, 8, true, false, 3, 2, 42);
    check_backward(2, 33, 2, 8, true, true, 2, 3, 43);
    check_backward(1, 150, 2, 8, true, false, 1, 2, 44);
}

/* L = sum(out * R), out from block forwards; its gradient from block
 * backwards against central differences of L. */
static double loss_blocks(const float *qkv, int64_t ld, const float *rr, const split *ks,
                          int64_t b, int64_t t, int64_t h, int64_t d, bool causal)
{
    const int64_t w = 3 * h * d, hd = h * d;
    float *qc = falloc(b * t * w), *o = falloc(b * t * hd), *lse = falloc(b * h * t);
    int64_t idx[256];
    int32_t pos[256];
    for (int64_t i = 0; i < t; i++) idx[i] = i, pos[i] = (int32_t)i;
    gather(qc, qkv, ld, idx, t, b, t, w);
    forward_blocks(o, lse, qc, pos, t, qkv, ld, ks, b, t, h, d, causal);
    double l = 0.0;
    for (int64_t i = 0; i < b * t * hd; i++) l += (double)o[i] * rr[i];
    sn_free(qc);
    sn_free(o);
    sn_free(lse);
    return l;
}

static void check_fd(bool causal, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 3);
    const int64_t b = 2, t = 6, h = 2, d = 3, w = 3 * h * d, ld = w, hd = h * d;
    float *qkv = frandn(&r, b * t * ld, 1.0f), *rr = frandn(&r, b * t * hd, 1.0f);
    float *g = fzero(b * t * ld);
    split qs, ks;
    split_make(&qs, &r, t, 2, true);
    split_make(&ks, &r, t, 3, true);
    blocks_backward(g, ld, qkv, rr, &qs, &ks, b, t, h, d, causal);
    for (int64_t i = 0; i < b * t * w; i++) {
        float x = qkv[i];
        qkv[i] = x + FD_H;
        double lp = loss_blocks(qkv, ld, rr, &ks, b, t, h, d, causal);
        qkv[i] = x - FD_H;
        double lm = loss_blocks(qkv, ld, rr, &ks, b, t, h, d, causal);
        qkv[i] = x;
        double fd = (lp - lm) / (2.0 * FD_H);
        double tol = FD_ATOL + FD_RTOL * fmax(fabs(fd), fabs(g[i]));
        if (!(fabs(fd - g[i]) <= tol)) {
            fprintf(stderr, "fd: element %lld fd %.6g grad %.6g\n", (long long)i, fd, g[i]);
            fail();
        }
    }
    sn_free(qkv);
    sn_free(rr);
    sn_free(g);
}

static void test_backward_fd(void **state)
{
    (void)state;
    check_fd(false, 51);
    check_fd(true, 52);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_contiguous),
        cmocka_unit_test(test_forward_shuffled),
        cmocka_unit_test(test_masked_rows),
        cmocka_unit_test(test_backward_vs_ops),
        cmocka_unit_test(test_backward_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
