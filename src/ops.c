#include "src/ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "src/tensor.h"
#include "src/util.h"

#define SN_LN_EPS 1e-5f
#define SN_GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define SN_GELU_C 0.044715f
/* Columns per thread task in the deterministic column sums: small enough
 * to balance widths of 64..768 over a few threads. */
#define SN_COL_BLOCK 32

/* Hot element-wise loops are compiled for AVX-512, AVX2+FMA and the
 * baseline, and the loader picks the best the CPU has (GCC ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SN_VECTOR_CLONES \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SN_VECTOR_CLONES
#endif

/* ------------------------------------------------------------------ linear */

/* y = x w^T through one GEMM, then b added to every row. */
void sn_linear_forward(int nt, float *y, int64_t ldy,
                       const float *x, int64_t ldx,
                       const float *w, int64_t ldw, const float *b,
                       int64_t m, int64_t n, int64_t k)
{
    sn_gemm(nt, false, true, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, ldy);
    if (b == NULL) return;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        float *restrict yr = y + i * ldy;
        for (int64_t j = 0; j < n; j++) yr[j] += b[j];
    }
}

/* acc (w <= SN_COL_BLOCK) += the column sums of dy's m rows (row stride
 * lddy), rows in order.  A full block has a constant trip count, which the
 * compiler vectorises. */
SN_VECTOR_CLONES
static void colsum_block(double *restrict acc, const float *restrict dy, int64_t lddy,
                         int64_t m, int64_t w)
{
    if (w == SN_COL_BLOCK) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < SN_COL_BLOCK; j++) acc[j] += dy[i * lddy + j];
    } else {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < w; j++) acc[j] += dy[i * lddy + j];
    }
}

/* y = x w^T + b + r, r (m, n) ldr: the output projections' bias and
 * residual added in one pass, in sn_linear_forward's then the residual's
 * order of additions. */
void sn_linear_residual_forward(int nt, float *y, int64_t ldy,
                                const float *x, int64_t ldx,
                                const float *w, int64_t ldw, const float *b,
                                const float *r, int64_t ldr,
                                int64_t m, int64_t n, int64_t k)
{
    sn_gemm(nt, false, true, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, ldy);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        float *restrict yr = y + i * ldy;
        const float *restrict rr = r + i * ldr;
        for (int64_t j = 0; j < n; j++) yr[j] = (yr[j] + b[j]) + rr[j];
    }
}

/* Column sums of dy (m, n) lddy added to db (n).  Threads own disjoint
 * column blocks and sum the rows in order, so the result does not depend
 * on nt. */
static void colsum_accumulate(int nt, float *db, const float *dy, int64_t lddy,
                              int64_t m, int64_t n)
{
    int64_t nblocks = (n + SN_COL_BLOCK - 1) / SN_COL_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t j0 = blk * SN_COL_BLOCK;
        int64_t w = n - j0 < SN_COL_BLOCK ? n - j0 : SN_COL_BLOCK;
        double acc[SN_COL_BLOCK] = {0};
        colsum_block(acc, dy + j0, lddy, m, w);
        for (int64_t j = 0; j < w; j++) db[j0 + j] += (float)acc[j];
    }
}

/* The two public forms of the linear backward: dx gets dy w times 1 plus
 * dx_beta times its old value. */
static void linear_backward(int nt, float dx_beta, float *dx, int64_t lddx,
                            float *dw, int64_t lddw, float *db,
                            const float *dy, int64_t lddy,
                            const float *x, int64_t ldx,
                            const float *w, int64_t ldw,
                            int64_t m, int64_t n, int64_t k)
{
    if (dx) sn_gemm(nt, false, false, m, k, n, 1.0f, dy, lddy, w, ldw, dx_beta, dx, lddx);
    if (dw) sn_gemm(nt, true, false, n, k, m, 1.0f, dy, lddy, x, ldx, 1.0f, dw, lddw);
    if (db) colsum_accumulate(nt, db, dy, lddy, m, n);
}

void sn_linear_backward(int nt, float *dx, int64_t lddx,
                        float *dw, int64_t lddw, float *db,
                        const float *dy, int64_t lddy,
                        const float *x, int64_t ldx,
                        const float *w, int64_t ldw,
                        int64_t m, int64_t n, int64_t k)
{
    linear_backward(nt, 1.0f, dx, lddx, dw, lddw, db, dy, lddy, x, ldx, w, ldw, m, n, k);
}

void sn_linear_backward_set(int nt, float *dx, int64_t lddx,
                            float *dw, int64_t lddw, float *db,
                            const float *dy, int64_t lddy,
                            const float *x, int64_t ldx,
                            const float *w, int64_t ldw,
                            int64_t m, int64_t n, int64_t k)
{
    linear_backward(nt, 0.0f, dx, lddx, dw, lddw, db, dy, lddy, x, ldx, w, ldw, m, n, k);
}

/* --------------------------------------------------------------- layernorm */

/* Two passes per row (mean, then centred variance) with double
 * accumulators: no cancellation, and the biased variance as PyTorch. */
void sn_layernorm_forward(int nt, float *y, int64_t ldy, float *mean, float *rstd,
                          const float *x, int64_t ldx,
                          const float *gamma, const float *beta,
                          int64_t m, int64_t c)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = x + i * ldx;
        float *yr = y + i * ldy;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < c; j++) s += xr[j];
        float mu = (float)(s / (double)c);
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < c; j++) {
            float dv = xr[j] - mu;
            v += (double)(dv * dv);
        }
        float rs = (float)(1.0 / sqrt(v / (double)c + (double)SN_LN_EPS));
        /* y may alias x (same stride): each element is read before its
         * own write, so the loop stays correct. */
        for (int64_t j = 0; j < c; j++) yr[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
        mean[i] = mu;
        rstd[i] = rs;
    }
}

/* ag, ab (w <= SN_COL_BLOCK) += the column sums of dy * xhat and of dy over
 * m rows, xhat = (x - mean) * rstd, rows in order, in one pass over dy;
 * vectorised as colsum_block. */
SN_VECTOR_CLONES
static void ln_param_block(double *restrict ag, double *restrict ab, const float *restrict dy,
                           int64_t lddy, const float *restrict x, int64_t ldx,
                           const float *restrict mean, const float *restrict rstd, int64_t m,
                           int64_t w)
{
    for (int64_t i = 0; i < m; i++) {
        const float *restrict xr = x + i * ldx;
        const float *restrict dyr = dy + i * lddy;
        float mu = mean[i], rs = rstd[i];
        if (w == SN_COL_BLOCK) {
            for (int64_t j = 0; j < SN_COL_BLOCK; j++) {
                ag[j] += (double)(dyr[j] * ((xr[j] - mu) * rs));
                ab[j] += (double)dyr[j];
            }
        } else {
            for (int64_t j = 0; j < w; j++) {
                ag[j] += (double)(dyr[j] * ((xr[j] - mu) * rs));
                ab[j] += (double)dyr[j];
            }
        }
    }
}

/* dx += rstd * (g dy - mean(g dy) - xhat mean(g dy xhat)), rows in
 * parallel;  dgamma += sum over rows of dy xhat and dbeta += sum of dy, in a
 * second pass where threads own disjoint column blocks and sum the rows in
 * order (xhat recomputed from mean and rstd): no allocation, and parameter
 * gradients that do not depend on nt. */
void sn_layernorm_backward(int nt, float *dx, int64_t lddx,
                           float *dgamma, float *dbeta,
                           const float *dy, int64_t lddy,
                           const float *x, int64_t ldx,
                           const float *mean, const float *rstd,
                           const float *gamma, int64_t m, int64_t c)
{
    if (dx) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < m; i++) {
            const float *restrict xr = x + i * ldx;
            const float *restrict dyr = dy + i * lddy;
            float *restrict dxr = dx + i * lddx;
            float mu = mean[i], rs = rstd[i];
            double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t j = 0; j < c; j++) {
                float gd = gamma[j] * dyr[j];
                s1 += gd;
                s2 += (double)(gd * ((xr[j] - mu) * rs));
            }
            float m1 = (float)(s1 / (double)c), m2 = (float)(s2 / (double)c);
            for (int64_t j = 0; j < c; j++) {
                float xh = (xr[j] - mu) * rs;
                dxr[j] += rs * (gamma[j] * dyr[j] - m1 - xh * m2);
            }
        }
    }
    if (dgamma == NULL && dbeta == NULL) return;
    int64_t nblocks = (c + SN_COL_BLOCK - 1) / SN_COL_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t j0 = blk * SN_COL_BLOCK;
        int64_t w = c - j0 < SN_COL_BLOCK ? c - j0 : SN_COL_BLOCK;
        double ag[SN_COL_BLOCK] = {0}, ab[SN_COL_BLOCK] = {0};
        ln_param_block(ag, ab, dy + j0, lddy, x + j0, ldx, mean, rstd, m, w);
        for (int64_t j = 0; j < w; j++) {
            if (dgamma) dgamma[j0 + j] += (float)ag[j];
            if (dbeta) dbeta[j0 + j] += (float)ab[j];
        }
    }
}

/* -------------------------------------------------------------------- gelu */

/* e^z to 1.5 ulp for |z| <= 88; |z| beyond saturates to e^{+-88} (0 below),
 * NaN stays NaN.  Written in plain arithmetic and integer selects so that
 * loops calling it vectorise (glibc's expf and tanhf are not vectorised
 * without -ffast-math, and a float clamp makes GCC branch because of
 * -ftrapping-math).  Cody-Waite reduction z = n ln2 + r, |r| <= ln2 / 2,
 * Cephes' expf polynomial, 2^n built in the exponent bits. */
static inline float fast_expf(float z)
{
    uint32_t zb;
    memcpy(&zb, &z, sizeof zb);
    uint32_t mag = zb & 0x7fffffffu;
    mag = mag > 0x42b00000u && mag <= 0x7f800000u ? 0x42b00000u : mag; /* 88.0f */
    zb = (zb & 0x80000000u) | mag;
    memcpy(&z, &zb, sizeof z);
    /* Round to nearest by adding 1.5 * 2^23: n sits in t's low mantissa bits. */
    float t = z * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = z - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4b400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* GELU through the identity 0.5 (1 + tanh u) = sigmoid(2 u), which has no
 * cancellation for negative u:  gelu(x) = x s,  s = 1 / (1 + e^{-2u}),
 * u = k (x + c x^3). */
/* One row each; cloned for AVX-512 and AVX2 so that the element-wise math
 * runs at the CPU's vector width whatever the build's -march. */
static inline float gelu(float v)
{
    float u = SN_GELU_K * (v + SN_GELU_C * v * v * v);
    return v / (1.0f + fast_expf(-2.0f * u));
}

SN_VECTOR_CLONES
static void gelu_row(float *restrict yr, const float *restrict xr, int64_t c)
{
    for (int64_t j = 0; j < c; j++) yr[j] = gelu(xr[j]);
}

SN_VECTOR_CLONES
static void gelu_row_inplace(float *restrict r, int64_t c)
{
    for (int64_t j = 0; j < c; j++) r[j] = gelu(r[j]);
}

void sn_gelu_forward(int nt, float *y, int64_t ldy, const float *x, int64_t ldx,
                     int64_t m, int64_t c)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) {
        if (y + i * ldy == x + i * ldx)
            gelu_row_inplace(y + i * ldy, c);
        else
            gelu_row(y + i * ldy, x + i * ldx, c);
    }
}

/* gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx
 *          = s + 2 x s (1 - s) du/dx,  du/dx = k (1 + 3 c x^2).
 * Because fast_expf saturates at e^88, s >= 6e-39, and the negative tail's
 * gradient (exactly 0) is below 1e-12 only for x > -1e9 or so. */
static inline float gelu_grad(float v)
{
    float v2 = v * v;
    float u = SN_GELU_K * (v + SN_GELU_C * v2 * v);
    float s = 1.0f / (1.0f + fast_expf(-2.0f * u));
    float du = SN_GELU_K * (1.0f + 3.0f * SN_GELU_C * v2);
    return s + 2.0f * v * s * (1.0f - s) * du;
}

SN_VECTOR_CLONES
static void gelu_backward_row(float *restrict dxr, const float *restrict dyr,
                              const float *restrict xr, int64_t c)
{
    for (int64_t j = 0; j < c; j++) dxr[j] += dyr[j] * gelu_grad(xr[j]);
}

SN_VECTOR_CLONES
static void gelu_backward_row_inplace(float *restrict dr, const float *restrict xr, int64_t c)
{
    for (int64_t j = 0; j < c; j++) dr[j] *= gelu_grad(xr[j]);
}

void sn_gelu_row(float *y, const float *x, int64_t c) { gelu_row(y, x, c); }

/* ------------------------------------------------------------------- stem */

SN_VECTOR_CLONES
static void stem_conv1(const float *restrict win, int64_t W, int64_t C1,
                       const float *restrict w1t, const float *restrict b1, float *restrict z)
{
    const int64_t W1 = W - 2;
    for (int64_t u = 0; u < W1; u++)
        for (int64_t v = 0; v < W1; v++) {
            float *restrict zr = z + (u * W1 + v) * C1;
            for (int64_t c = 0; c < C1; c++) zr[c] = b1[c];
            for (int64_t tap = 0; tap < 9; tap++) {
                const float x = win[(u + tap / 3) * W + v + tap % 3];
                const float *restrict wr = w1t + tap * C1;
                for (int64_t c = 0; c < C1; c++) zr[c] += x * wr[c];
            }
        }
}

void sn_stem_conv1(const float *win, int64_t W, int64_t C1, const float *w1t, const float *b1,
                   float *z)
{
    stem_conv1(win, W, C1, w1t, b1, z);
}

void sn_stem_gather(float *col, int64_t ldcol, const float *act, int64_t ldact, int64_t rows,
                    int64_t cols, int64_t C)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float *out = col + (i * ldcol + j) * 9 * C;
            for (int64_t tap = 0; tap < 9; tap++)
                memcpy(out + tap * C, act + ((2 * i + tap / 3) * ldact + 2 * j + tap % 3) * C,
                       (size_t)C * sizeof(float));
        }
}

SN_VECTOR_CLONES
static void stem_scatter(float *restrict dact, int64_t ldact, const float *restrict dcol,
                         int64_t ldcol, int64_t rows, int64_t cols, int64_t C)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            const float *in = dcol + (i * ldcol + j) * 9 * C;
            for (int64_t tap = 0; tap < 9; tap++) {
                float *restrict d = dact + ((2 * i + tap / 3) * ldact + 2 * j + tap % 3) * C;
                const float *restrict s = in + tap * C;
                for (int64_t c = 0; c < C; c++) d[c] += s[c];
            }
        }
}

void sn_stem_scatter(float *dact, int64_t ldact, const float *dcol, int64_t ldcol, int64_t rows,
                     int64_t cols, int64_t C)
{
    stem_scatter(dact, ldact, dcol, ldcol, rows, cols, C);
}

SN_VECTOR_CLONES
static void stem_conv1_grad(float *restrict acc, const float *restrict win,
                            const float *restrict dz, int64_t W, int64_t C1)
{
    const int64_t W1 = W - 2;
    for (int64_t u = 0; u < W1; u++)
        for (int64_t v = 0; v < W1; v++) {
            const float *restrict dzr = dz + (u * W1 + v) * C1;
            float *restrict bias = acc + 9 * C1;
            for (int64_t c = 0; c < C1; c++) bias[c] += dzr[c];
            for (int64_t tap = 0; tap < 9; tap++) {
                const float x = win[(u + tap / 3) * W + v + tap % 3];
                float *restrict ar = acc + tap * C1;
                for (int64_t c = 0; c < C1; c++) ar[c] += x * dzr[c];
            }
        }
}

void sn_stem_conv1_grad(float *acc, const float *win, const float *dz, int64_t W, int64_t C1)
{
    stem_conv1_grad(acc, win, dz, W, C1);
}

SN_VECTOR_CLONES
static void bias_gelu_row(float *restrict hr, float *restrict yr, const float *restrict b,
                          int64_t c)
{
    for (int64_t j = 0; j < c; j++) {
        hr[j] += b[j];
        yr[j] = gelu(hr[j]);
    }
}

void sn_linear_gelu_forward(int nt, float *h, int64_t ldh, float *y, int64_t ldy,
                            const float *x, int64_t ldx,
                            const float *w, int64_t ldw, const float *b,
                            int64_t m, int64_t n, int64_t k)
{
    sn_gemm(nt, false, true, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, h, ldh);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) bias_gelu_row(h + i * ldh, y + i * ldy, b, n);
}

void sn_gelu_backward_row(float *dx, const float *dy, const float *x, int64_t c)
{
    gelu_backward_row(dx, dy, x, c);
}

void sn_gelu_backward(int nt, float *dx, int64_t lddx, const float *dy, int64_t lddy,
                      const float *x, int64_t ldx, int64_t m, int64_t c)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++)
        gelu_backward_row(dx + i * lddx, dy + i * lddy, x + i * ldx, c);
}

void sn_gelu_backward_inplace(int nt, float *d, int64_t ldd, const float *x, int64_t ldx,
                              int64_t m, int64_t c)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < m; i++) gelu_backward_row_inplace(d + i * ldd, x + i * ldx, c);
}

/* --------------------------------------------------------------- attention */

/* In-place softmax of each row of s (t, t); with causal, row i keeps keys
 * 0..i and the rest become exactly 0. */
static void softmax_rows(float *s, int64_t t, bool causal)
{
    for (int64_t i = 0; i < t; i++) {
        float *restrict r = s + i * t;
        int64_t n = causal ? i + 1 : t;
        float mx = r[0];
        for (int64_t j = 1; j < n; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; j++) {
            r[j] = fast_expf(r[j] - mx);
            sum += r[j];
        }
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; j++) r[j] *= inv;
        for (int64_t j = n; j < t; j++) r[j] = 0.0f;
    }
}

/* Offsets of pair p = s h + hh (sequence s, head hh): its q columns in a
 * qkv-shaped buffer (row stride ld), and its columns in an out-shaped one. */
static inline int64_t pair_qkv(int64_t p, int64_t h, int64_t t, int64_t ld, int64_t d)
{
    return (p / h) * t * ld + (p % h) * 3 * d;
}

static inline int64_t pair_out(int64_t p, int64_t h, int64_t t, int64_t ld, int64_t d)
{
    return (p / h) * t * ld + (p % h) * d;
}

/* Per (sequence s, head hh) pair p = s h + hh:
 *   q, k, v (t, d) are views of qkv rows s t .. s t + t - 1 at columns
 *   hh 3d, hh 3d + d, hh 3d + 2d (row stride ldqkv);
 *   att[p] (t, t) = softmax(q k^T / sqrt(d));  out[s, :, hh d ..] = att[p] v.
 * Pairs write disjoint blocks of att and out, so they run in parallel. */
void sn_attention_forward(int nt, float *out, int64_t ldo, float *att,
                          const float *qkv, int64_t ldqkv,
                          int64_t b, int64_t t, int64_t h, int64_t d, bool causal)
{
    float scale = 1.0f / sqrtf((float)d);
    int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        const float *q = qkv + pair_qkv(p, h, t, ldqkv, d);
        const float *k = q + d;
        const float *v = q + 2 * d;
        float *a = att + p * t * t;
        float *o = out + pair_out(p, h, t, ldo, d);
        sn_gemm(1, false, true, t, t, d, scale, q, ldqkv, k, ldqkv, 0.0f, a, t);
        softmax_rows(a, t, causal);
        sn_gemm(1, false, false, t, d, t, 1.0f, a, t, v, ldqkv, 0.0f, o, ldo);
    }
}

/* Per pair, with P = att[p] and dO its block of dout:
 *   dP = dO v^T;  dS = P * (dP - rowsum(dP * P)) / sqrt(d)  (in scratch);
 *   dq += dS k;  dk += dS^T q;  dv += P^T dO.
 * Masked (causal) entries have P = 0, hence dS = 0: no mask is needed.
 * Each thread uses its own t*t block of scratch. */
void sn_attention_backward(int nt, float *dqkv, int64_t lddqkv,
                           const float *dout, int64_t lddo,
                           const float *att, const float *qkv, int64_t ldqkv,
                           float *scratch,
                           int64_t b, int64_t t, int64_t h, int64_t d)
{
    float scale = 1.0f / sqrtf((float)d);
    int64_t pairs = b * h;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        const float *q = qkv + pair_qkv(p, h, t, ldqkv, d);
        const float *k = q + d;
        const float *v = q + 2 * d;
        float *dq = dqkv + pair_qkv(p, h, t, lddqkv, d);
        float *dk = dq + d;
        float *dv = dq + 2 * d;
        const float *pm = att + p * t * t;
        const float *dob = dout + pair_out(p, h, t, lddo, d);
        float *ds = scratch + (int64_t)omp_get_thread_num() * t * t;
        sn_gemm(1, false, true, t, t, d, 1.0f, dob, lddo, v, ldqkv, 0.0f, ds, t);
        for (int64_t i = 0; i < t; i++) {
            const float *restrict pr = pm + i * t;
            float *restrict dr = ds + i * t;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < t; j++) dot += pr[j] * dr[j];
            for (int64_t j = 0; j < t; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
        }
        sn_gemm(1, false, false, t, d, t, 1.0f, ds, t, k, ldqkv, 1.0f, dq, lddqkv);
        sn_gemm(1, true, false, t, d, t, 1.0f, ds, t, q, ldqkv, 1.0f, dk, lddqkv);
        sn_gemm(1, true, false, t, d, t, 1.0f, pm, t, dob, lddo, 1.0f, dv, lddqkv);
    }
}

/* ---------------------------------------------------------------- meanpool */

void sn_meanpool_forward(int nt, float *y, int64_t ldy, const float *x, int64_t ldx,
                         int64_t b, int64_t t, int64_t c)
{
    float inv = 1.0f / (float)t;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t s = 0; s < b; s++) {
        float *restrict yr = y + s * ldy;
        for (int64_t j = 0; j < c; j++) yr[j] = 0.0f;
        for (int64_t i = 0; i < t; i++) {
            const float *restrict xr = x + (s * t + i) * ldx;
            for (int64_t j = 0; j < c; j++) yr[j] += xr[j];
        }
        for (int64_t j = 0; j < c; j++) yr[j] *= inv;
    }
}

void sn_meanpool_backward(int nt, float *dx, int64_t lddx, const float *dy, int64_t lddy,
                          int64_t b, int64_t t, int64_t c)
{
    float inv = 1.0f / (float)t;
    int64_t rows = b * t;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict dyr = dy + (r / t) * lddy;
        float *restrict dxr = dx + r * lddx;
        for (int64_t j = 0; j < c; j++) dxr[j] += dyr[j] * inv;
    }
}

/* ------------------------------------------------------ softmax and losses */

void sn_softmax(float *p, const float *x, int64_t n, int64_t c, float temperature)
{
    float invt = 1.0f / temperature;
    for (int64_t i = 0; i < n; i++) {
        const float *restrict xr = x + i * c;
        float *restrict pr = p + i * c;
        float mx = xr[0];
        for (int64_t j = 1; j < c; j++) mx = xr[j] > mx ? xr[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < c; j++) {
            pr[j] = expf((xr[j] - mx) * invt);
            sum += pr[j];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < c; j++) pr[j] *= inv;
    }
}

/* log sum_j exp x_j of one row x (c), shifted by its maximum. */
static double row_lse(const float *x, int64_t c)
{
    float mx = x[0];
    for (int64_t j = 1; j < c; j++) mx = x[j] > mx ? x[j] : mx;
    double sum = 0.0;
    for (int64_t j = 0; j < c; j++) sum += exp((double)(x[j] - mx));
    return (double)mx + log(sum);
}

/* Per row, with log p = x - lse:  loss = -(1 - eps) log p[label]
 * - (eps / c) sum_j log p_j;  dlogits = scale (p - target) / n. */
float sn_xent_hard(float *dlogits, int64_t *correct, const float *logits,
                   const int32_t *labels, int64_t n, int64_t c,
                   float eps, float scale)
{
    double loss = 0.0;
    int64_t right = 0;
    double off = (double)eps / (double)c;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = logits + i * c;
        int32_t y = labels[i];
        SN_CHECK(y >= 0 && y < c);
        double lse = row_lse(xr, c);
        double sumx = 0.0;
        int64_t arg = 0;
        for (int64_t j = 0; j < c; j++) {
            sumx += xr[j];
            if (xr[j] > xr[arg]) arg = j;
        }
        loss -= (1.0 - eps) * ((double)xr[y] - lse) + off * (sumx - (double)c * lse);
        right += arg == y;
        if (dlogits) {
            float *dr = dlogits + i * c;
            double f = (double)scale / (double)n;
            for (int64_t j = 0; j < c; j++) {
                double tgt = off + (j == y ? 1.0 - eps : 0.0);
                dr[j] = (float)(f * (exp((double)xr[j] - lse) - tgt));
            }
        }
    }
    if (correct) *correct = right;
    return n > 0 ? (float)(loss / (double)n) : 0.0f;
}

float sn_xent_soft(float *dlogits, const float *logits, const float *q,
                   int64_t n, int64_t c, float scale)
{
    double loss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = logits + i * c;
        const float *qr = q + i * c;
        double lse = row_lse(xr, c);
        for (int64_t j = 0; j < c; j++) loss -= (double)qr[j] * ((double)xr[j] - lse);
        if (dlogits) {
            float *dr = dlogits + i * c;
            double f = (double)scale / (double)n;
            for (int64_t j = 0; j < c; j++)
                dr[j] = (float)(f * (exp((double)xr[j] - lse) - (double)qr[j]));
        }
    }
    return n > 0 ? (float)(loss / (double)n) : 0.0f;
}
