#include "src/attn_block.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "src/tensor.h"

/* At most this many segments per side of a block.  Runs of positions are
 * cut into segments of at most SN_ATTN_QTILE rows (more for long blocks,
 * so that they take at most MAXSEG / 2 segments), so that a diagonal
 * query tile skips the key segments wholly after it.  Positions from the
 * layouts make one or two runs; arbitrary positions make more, and the
 * last segment then takes all the rest (still correct, as segments are
 * classified by their min and max: only less work is skipped). */
#define MAXSEG 64

/* Rows [i0, i1) of a block and the min and max of their positions. */
typedef struct seg {
    int64_t i0, i1;
    int32_t lo, hi;
} seg;

enum { SEG_MASKED, SEG_DIAG, SEG_FULL };

/* Cuts pos (n >= 1) into strictly increasing runs of bounded length (at
 * most MAXSEG segments) and returns how many. */
static int segments(seg *sg, const int32_t *pos, int64_t n)
{
    const int64_t per = (n + MAXSEG / 2 - 1) / (MAXSEG / 2);
    const int64_t maxlen = per > SN_ATTN_QTILE ? per : SN_ATTN_QTILE;
    int ns = 0;
    int64_t i = 0;
    while (i < n) {
        int64_t e = i + 1;
        if (ns == MAXSEG - 1)
            e = n;
        else
            while (e < n && e - i < maxlen && pos[e] > pos[e - 1]) e++;
        int32_t lo = pos[i], hi = pos[i];
        for (int64_t j = i + 1; j < e; j++) {
            lo = pos[j] < lo ? pos[j] : lo;
            hi = pos[j] > hi ? pos[j] : hi;
        }
        sg[ns++] = (seg){ i, e, lo, hi };
        i = e;
    }
    return ns;
}

/* Key segment k against query segment q: no key visible, all visible, or
 * a mask is needed. */
static int seg_kind(const seg *q, const seg *k, bool causal)
{
    if (!causal) return SEG_FULL;
    if (k->lo > q->hi) return SEG_MASKED;
    if (k->hi <= q->lo) return SEG_FULL;
    return SEG_DIAG;
}

int64_t sn_attn_block_scratch_floats(int nt, int64_t tk)
{
    return (int64_t)nt * 2 * SN_ATTN_QTILE * tk;
}

bool sn_attn_block_visible(const int32_t *qpos, int64_t tq,
                           const int32_t *kpos, int64_t tk, bool causal)
{
    if (tq == 0 || tk == 0) return false;
    if (!causal) return true;
    int32_t qhi = qpos[0], klo = kpos[0];
    for (int64_t i = 1; i < tq; i++) qhi = qpos[i] > qhi ? qpos[i] : qhi;
    for (int64_t j = 1; j < tk; j++) klo = kpos[j] < klo ? kpos[j] : klo;
    return klo <= qhi;
}

/* Base of pair p = s h + hh in a view of b sequences of t rows. */
static inline const float *pair_in(sn_heads v, int64_t p, int64_t h, int64_t t)
{
    return v.p + (p / h) * t * v.ld + (p % h) * v.hs;
}

static inline float *pair_out(sn_heads_mut v, int64_t p, int64_t h, int64_t t)
{
    return v.p + (p / h) * t * v.ld + (p % h) * v.hs;
}

/* One (sequence, head) pair of sn_attn_block_forward.  s: (SN_ATTN_QTILE,
 * tk) scores, then probabilities, of one query segment of a tile. */
static void forward_pair(float *o, int64_t ldo, float *lse, float *s,
                         const float *q, int64_t ldq, const int32_t *qpos, int64_t tq,
                         const float *k, int64_t ldk, const float *v, int64_t ldv,
                         const seg *ks, int nks, const int32_t *kpos, int64_t tk,
                         int64_t d, float scale, bool causal)
{
    for (int64_t t0 = 0; t0 < tq; t0 += SN_ATTN_QTILE) {
        int64_t tn = tq - t0 < SN_ATTN_QTILE ? tq - t0 : SN_ATTN_QTILE;
        seg qs[MAXSEG];
        int nqs = segments(qs, qpos + t0, tn);
        for (int a = 0; a < nqs; a++) {
            const int64_t i0 = t0 + qs[a].i0, m = qs[a].i1 - qs[a].i0;
            int kind[MAXSEG];
            bool any = false;
            for (int c = 0; c < nks; c++) {
                kind[c] = seg_kind(&qs[a], &ks[c], causal);
                if (kind[c] == SEG_MASKED) continue;
                any = true;
                const int64_t j0 = ks[c].i0, n = ks[c].i1 - ks[c].i0;
                sn_gemm(1, false, true, m, n, d, scale, q + i0 * ldq, ldq, k + j0 * ldk, ldk,
                        0.0f, s + j0, tk);
                if (kind[c] == SEG_DIAG)
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = j0; j < j0 + n; j++)
                            if (kpos[j] > qpos[i0 + i]) s[i * tk + j] = -INFINITY;
            }
            if (!any) {
                for (int64_t i = 0; i < m; i++) {
                    memset(o + (i0 + i) * ldo, 0, (size_t)d * sizeof *o);
                    lse[i0 + i] = -INFINITY;
                }
                continue;
            }
            for (int64_t i = 0; i < m; i++) {
                float *restrict r = s + i * tk;
                float mx = -INFINITY;
                for (int c = 0; c < nks; c++) {
                    if (kind[c] == SEG_MASKED) continue;
                    for (int64_t j = ks[c].i0; j < ks[c].i1; j++) mx = r[j] > mx ? r[j] : mx;
                }
                if (mx == -INFINITY) {
                    /* Every visible segment is masked for this row: its
                     * probabilities are all 0, so P v gives o = 0. */
                    lse[i0 + i] = -INFINITY;
                    for (int c = 0; c < nks; c++)
                        if (kind[c] != SEG_MASKED)
                            for (int64_t j = ks[c].i0; j < ks[c].i1; j++) r[j] = 0.0f;
                    continue;
                }
                float sum = 0.0f;
                for (int c = 0; c < nks; c++) {
                    if (kind[c] == SEG_MASKED) continue;
#pragma omp simd reduction(+ : sum)
                    for (int64_t j = ks[c].i0; j < ks[c].i1; j++) {
                        r[j] = expf(r[j] - mx);
                        sum += r[j];
                    }
                }
                lse[i0 + i] = mx + logf(sum);
                float inv = 1.0f / sum;
                for (int c = 0; c < nks; c++) {
                    if (kind[c] == SEG_MASKED) continue;
                    for (int64_t j = ks[c].i0; j < ks[c].i1; j++) r[j] *= inv;
                }
            }
            float beta = 0.0f;
            for (int c = 0; c < nks; c++) {
                if (kind[c] == SEG_MASKED) continue;
                const int64_t j0 = ks[c].i0, n = ks[c].i1 - ks[c].i0;
                sn_gemm(1, false, false, m, d, n, 1.0f, s + j0, tk, v + j0 * ldv, ldv,
                        beta, o + i0 * ldo, ldo);
                beta = 1.0f;
            }
        }
    }
}

void sn_attn_block_forward(int nt, sn_heads_mut o, float *lse, float *scratch,
                           sn_heads q, const int32_t *qpos, int64_t tq,
                           sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                           int64_t b, int64_t h, int64_t d, bool causal)
{
    const float scale = 1.0f / sqrtf((float)d);
    seg ks[MAXSEG];
    const int nks = segments(ks, kpos, tk);
    const int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        float *s = scratch + (int64_t)omp_get_thread_num() * 2 * SN_ATTN_QTILE * tk;
        forward_pair(pair_out(o, p, h, tq), o.ld, lse + p * tq, s,
                     pair_in(q, p, h, tq), q.ld, qpos, tq,
                     pair_in(k, p, h, tk), k.ld, pair_in(v, p, h, tk), v.ld,
                     ks, nks, kpos, tk, d, scale, causal);
    }
}

void sn_attn_block_merge(int nt, sn_heads_mut o, float *lse,
                         sn_heads po, const float *plse,
                         int64_t b, int64_t t, int64_t h, int64_t d)
{
    const int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        float *ob = pair_out(o, p, h, t);
        const float *pb = pair_in(po, p, h, t);
        for (int64_t i = 0; i < t; i++) {
            const float la = lse[p * t + i], lb = plse[p * t + i];
            float *restrict orow = ob + i * o.ld;
            const float *restrict prow = pb + i * po.ld;
            if (lb == -INFINITY) continue;
            if (la == -INFINITY) {
                memcpy(orow, prow, (size_t)d * sizeof *orow);
                lse[p * t + i] = lb;
                continue;
            }
            const float mx = la > lb ? la : lb, mn = la > lb ? lb : la;
            const float l = mx + log1pf(expf(mn - mx));
            const float wa = expf(la - l), wb = expf(lb - l);
            for (int64_t j = 0; j < d; j++) orow[j] = wa * orow[j] + wb * prow[j];
            lse[p * t + i] = l;
        }
    }
}

void sn_attn_block_rowdot(int nt, float *dsum, sn_heads dout, sn_heads out,
                          int64_t b, int64_t t, int64_t h, int64_t d)
{
    const int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        const float *gb = pair_in(dout, p, h, t), *ob = pair_in(out, p, h, t);
        for (int64_t i = 0; i < t; i++) {
            const float *restrict g = gb + i * dout.ld, *restrict y = ob + i * out.ld;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < d; j++) acc += g[j] * y[j];
            dsum[p * t + i] = acc;
        }
    }
}

/* One pair of sn_attn_block_backward.  s, dp: (SN_ATTN_QTILE, tk) each. */
static void backward_pair(float *dq, int64_t lddq, float *dk, int64_t lddk,
                          float *dv, int64_t lddv, float *s, float *dp,
                          const float *q, int64_t ldq, const float *g, int64_t ldg,
                          const float *lse, const float *dsum,
                          const int32_t *qpos, int64_t tq,
                          const float *k, int64_t ldk, const float *v, int64_t ldv,
                          const seg *ks, int nks, const int32_t *kpos, int64_t tk,
                          int64_t d, float scale, bool causal)
{
    for (int64_t t0 = 0; t0 < tq; t0 += SN_ATTN_QTILE) {
        int64_t tn = tq - t0 < SN_ATTN_QTILE ? tq - t0 : SN_ATTN_QTILE;
        seg qs[MAXSEG];
        int nqs = segments(qs, qpos + t0, tn);
        for (int a = 0; a < nqs; a++) {
            const int64_t i0 = t0 + qs[a].i0, m = qs[a].i1 - qs[a].i0;
            int kind[MAXSEG];
            for (int c = 0; c < nks; c++) {
                kind[c] = seg_kind(&qs[a], &ks[c], causal);
                if (kind[c] == SEG_MASKED) continue;
                const int64_t j0 = ks[c].i0, n = ks[c].i1 - ks[c].i0;
                sn_gemm(1, false, true, m, n, d, scale, q + i0 * ldq, ldq, k + j0 * ldk, ldk,
                        0.0f, s + j0, tk);
                sn_gemm(1, false, true, m, n, d, 1.0f, g + i0 * ldg, ldg, v + j0 * ldv, ldv,
                        0.0f, dp + j0, tk);
                for (int64_t i = 0; i < m; i++) {
                    const float l = lse[i0 + i], dd = dsum[i0 + i];
                    const int32_t qp = qpos[i0 + i];
                    float *restrict sr = s + i * tk;
                    float *restrict dr = dp + i * tk;
                    if (l == -INFINITY) {
                        for (int64_t j = j0; j < j0 + n; j++) sr[j] = dr[j] = 0.0f;
                        continue;
                    }
                    for (int64_t j = j0; j < j0 + n; j++) {
                        float pr = expf(sr[j] - l);
                        if (kind[c] == SEG_DIAG && kpos[j] > qp) pr = 0.0f;
                        sr[j] = pr;
                        dr[j] = pr * (dr[j] - dd);
                    }
                }
            }
            for (int c = 0; c < nks; c++) {
                if (kind[c] == SEG_MASKED) continue;
                const int64_t j0 = ks[c].i0, n = ks[c].i1 - ks[c].i0;
                sn_gemm(1, false, false, m, d, n, scale, dp + j0, tk, k + j0 * ldk, ldk,
                        1.0f, dq + i0 * lddq, lddq);
                sn_gemm(1, true, false, n, d, m, scale, dp + j0, tk, q + i0 * ldq, ldq,
                        1.0f, dk + j0 * lddk, lddk);
                sn_gemm(1, true, false, n, d, m, 1.0f, s + j0, tk, g + i0 * ldg, ldg,
                        1.0f, dv + j0 * lddv, lddv);
            }
        }
    }
}

void sn_attn_block_backward(int nt, sn_heads_mut dq, sn_heads_mut dk, sn_heads_mut dv,
                            float *scratch,
                            sn_heads q, sn_heads dout, const float *lse, const float *dsum,
                            const int32_t *qpos, int64_t tq,
                            sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                            int64_t b, int64_t h, int64_t d, bool causal)
{
    const float scale = 1.0f / sqrtf((float)d);
    seg ks[MAXSEG];
    const int nks = segments(ks, kpos, tk);
    const int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        float *s = scratch + (int64_t)omp_get_thread_num() * 2 * SN_ATTN_QTILE * tk;
        backward_pair(pair_out(dq, p, h, tq), dq.ld, pair_out(dk, p, h, tk), dk.ld,
                      pair_out(dv, p, h, tk), dv.ld, s, s + SN_ATTN_QTILE * tk,
                      pair_in(q, p, h, tq), q.ld, pair_in(dout, p, h, tq), dout.ld,
                      lse + p * tq, dsum + p * tq, qpos, tq,
                      pair_in(k, p, h, tk), k.ld, pair_in(v, p, h, tk), v.ld,
                      ks, nks, kpos, tk, d, scale, causal);
    }
}

void sn_heads_copy(int nt, sn_heads_mut dst, sn_heads src, int64_t rows, int64_t h, int64_t w)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t hh = 0; hh < h; hh++)
            memcpy(dst.p + i * dst.ld + hh * dst.hs, src.p + i * src.ld + hh * src.hs,
                   (size_t)w * sizeof *dst.p);
}

void sn_heads_add(int nt, sn_heads_mut dst, sn_heads src, int64_t rows, int64_t h, int64_t w)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t hh = 0; hh < h; hh++) {
            float *restrict y = dst.p + i * dst.ld + hh * dst.hs;
            const float *restrict x = src.p + i * src.ld + hh * src.hs;
            for (int64_t j = 0; j < w; j++) y[j] += x[j];
        }
}
