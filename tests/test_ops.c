/* test_ops.c: every op of src/ops.h against a naive loop (forward) and
 * central finite differences (backward); accumulation, NULL gradients, and
 * thread-count reproducibility.
 *
 * Inputs and outputs are strided slices of larger buffers (ld > width), as
 * the model calls the ops on elastic prefixes; padding is filled with a
 * sentinel that must survive every call.
 *
 * Finite-difference tolerance.  The ops run in float: an output carries a
 * relative rounding error of a few 1e-7, so the scalar loss L = sum y r
 * (accumulated in double over at most a few hundred O(1) terms) is exact to
 * ~1e-5 absolute, and the central difference with step H = 1e-2 has a
 * rounding error ~1e-5 / (2 H) = 5e-4 in the worst case, plus a truncation
 * error H^2 |f'''| / 6 ~ 1e-4 for these smooth ops with O(1) inputs.  The
 * check |fd - g| <= FD_ATOL + FD_RTOL max(|fd|, |g|) with FD_ATOL 2e-3 and
 * FD_RTOL 1e-2 therefore has several-fold margin, while a wrong term (sign,
 * index, scale, missing mask) is off by O(0.1-1).
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

#include "src/ops.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2
#define FWD_RTOL 1e-5
#define FWD_ATOL 1e-6
#define SENTINEL 12345.0f

/* ---------------------------------------------------------------- helpers */

/* A (rows, ld) buffer whose first cols columns are N(0, 1) (times amp) and
 * whose padding holds SENTINEL. */
static float *mat_new(sn_rng *r, int64_t rows, int64_t cols, int64_t ld, float amp)
{
    float *a = sn_alloc((size_t)(rows * ld) * sizeof *a);
    assert_non_null(a);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++)
            a[i * ld + j] = j < cols ? amp * sn_rng_normal(r) : SENTINEL;
    return a;
}

/* As mat_new, with zero in the first cols columns. */
static float *mat_zero(int64_t rows, int64_t cols, int64_t ld)
{
    float *a = sn_alloc((size_t)(rows * ld) * sizeof *a);
    assert_non_null(a);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++) a[i * ld + j] = j < cols ? 0.0f : SENTINEL;
    return a;
}

static float *mat_copy(const float *a, int64_t n)
{
    float *c = sn_alloc((size_t)n * sizeof *c);
    assert_non_null(c);
    memcpy(c, a, (size_t)n * sizeof *c);
    return c;
}

static void check_padding(const char *what, const float *a, int64_t rows, int64_t cols,
                          int64_t ld)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = cols; j < ld; j++)
            if (a[i * ld + j] != SENTINEL)
                fail_msg("%s: padding overwritten at (%lld, %lld)", what, (long long)i,
                         (long long)j);
}

static bool close_enough(double got, double want, double rtol, double atol)
{
    double tol = atol + rtol * fmax(fabs(got), fabs(want));
    return fabs(got - want) <= tol;
}

/* got (rows, cols) ldg against want (rows, cols) ldw. */
static void check_close(const char *what, const float *got, int64_t ldg, const double *want,
                        int64_t ldw, int64_t rows, int64_t cols, double rtol, double atol)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double g = got[i * ldg + j], w = want[i * ldw + j];
            if (!close_enough(g, w, rtol, atol))
                fail_msg("%s: (%lld, %lld) got %.8g want %.8g", what, (long long)i,
                         (long long)j, g, w);
        }
}

static void check_close_f(const char *what, const float *got, const float *want, int64_t n,
                          double rtol, double atol)
{
    for (int64_t i = 0; i < n; i++)
        if (!close_enough(got[i], want[i], rtol, atol))
            fail_msg("%s: [%lld] got %.8g want %.8g", what, (long long)i, (double)got[i],
                     (double)want[i]);
}

static double *dbl_new(int64_t n)
{
    double *a = calloc((size_t)n, sizeof *a);
    assert_non_null(a);
    return a;
}

/* sum over (rows, cols) of y r, both with their strides, in double. */
static double dot_loss(const float *y, int64_t ldy, const float *r, int64_t ldr, int64_t rows,
                       int64_t cols)
{
    double s = 0.0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) s += (double)y[i * ldy + j] * (double)r[i * ldr + j];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to every element of p (rows, cols)
 * ldp, compared with the analytic gradient g (rows, cols) ldg. */
static void check_fd(const char *what, loss_fn f, void *ctx, float *p, int64_t rows,
                     int64_t cols, int64_t ldp, const float *g, int64_t ldg)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float *e = p + i * ldp + j;
            float keep = *e;
            float hi = keep + FD_H, lo = keep - FD_H;
            *e = hi;
            double lp = f(ctx);
            *e = lo;
            double lm = f(ctx);
            *e = keep;
            double fd = (lp - lm) / ((double)hi - (double)lo);
            double an = g[i * ldg + j];
            if (!close_enough(an, fd, FD_RTOL, FD_ATOL))
                fail_msg("%s: d/d(%lld, %lld) analytic %.6g finite-difference %.6g", what,
                         (long long)i, (long long)j, an, fd);
        }
}

/* Gradients (rows, cols) ld were computed once into g1 and, from the same
 * zero start, twice into g2: g2 must be 2 g1. */
static void check_doubled(const char *what, const float *g1, const float *g2, int64_t rows,
                          int64_t cols, int64_t ld)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double a = g1[i * ld + j], b = g2[i * ld + j];
            if (!close_enough(b, 2.0 * a, 1e-6, 1e-7))
                fail_msg("%s: (%lld, %lld) twice %.8g, once %.8g", what, (long long)i,
                         (long long)j, b, a);
        }
}

static void check_same_bits(const char *what, const float *a, const float *b, int64_t n)
{
    if (memcmp(a, b, (size_t)n * sizeof *a) != 0)
        fail_msg("%s: two runs with the same thread count differ", what);
}

/* ----------------------------------------------------------------- linear */

typedef struct {
    int64_t m, n, k, ldx, ldw, ldy;
    float *x, *w, *b, *y, *r;
} linear_case;

static double linear_loss(void *ctx)
{
    linear_case *c = ctx;
    sn_linear_forward(1, c->y, c->ldy, c->x, c->ldx, c->w, c->ldw, c->b, c->m, c->n, c->k);
    return dot_loss(c->y, c->ldy, c->r, c->n, c->m, c->n);
}

static void linear_case_init(linear_case *c, sn_rng *rng, int64_t m, int64_t n, int64_t k,
                             int64_t pad)
{
    c->m = m, c->n = n, c->k = k;
    c->ldx = k + pad, c->ldw = k + 2 * pad, c->ldy = n + pad;
    c->x = mat_new(rng, m, k, c->ldx, 1.0f);
    c->w = mat_new(rng, n, k, c->ldw, 1.0f);
    c->b = mat_new(rng, 1, n, n, 1.0f);
    c->y = mat_zero(m, n, c->ldy);
    c->r = mat_new(rng, m, n, n, 1.0f);
}

static void linear_case_free(linear_case *c)
{
    sn_free(c->x), sn_free(c->w), sn_free(c->b), sn_free(c->y), sn_free(c->r);
}

static void test_linear_forward(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 1, 0);
    linear_case c;
    linear_case_init(&c, &rng, 37, 19, 23, 5);
    double *want = dbl_new(c.m * c.n);
    for (int64_t i = 0; i < c.m; i++)
        for (int64_t o = 0; o < c.n; o++) {
            double s = c.b[o];
            for (int64_t j = 0; j < c.k; j++)
                s += (double)c.x[i * c.ldx + j] * (double)c.w[o * c.ldw + j];
            want[i * c.n + o] = s;
        }
    for (int nt = 1; nt <= 2; nt++) {
        sn_linear_forward(nt, c.y, c.ldy, c.x, c.ldx, c.w, c.ldw, c.b, c.m, c.n, c.k);
        check_close("linear y", c.y, c.ldy, want, c.n, c.m, c.n, FWD_RTOL, 1e-5);
        check_padding("linear y", c.y, c.m, c.n, c.ldy);
    }
    /* Without bias. */
    sn_linear_forward(2, c.y, c.ldy, c.x, c.ldx, c.w, c.ldw, NULL, c.m, c.n, c.k);
    for (int64_t i = 0; i < c.m; i++)
        for (int64_t o = 0; o < c.n; o++) want[i * c.n + o] -= c.b[o];
    check_close("linear y (no bias)", c.y, c.ldy, want, c.n, c.m, c.n, FWD_RTOL, 1e-5);
    free(want);
    linear_case_free(&c);
}

static void test_linear_backward(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 2, 0);
    linear_case c;
    linear_case_init(&c, &rng, 6, 37, 7, 3); /* n > 32: two column blocks */
    int64_t lddx = c.k + 4, lddw = c.k + 1;
    float *dx = mat_zero(c.m, c.k, lddx);
    float *dw = mat_zero(c.n, c.k, lddw);
    float *db = mat_zero(1, c.n, c.n);
    /* dL/dy = r. */
    sn_linear_backward(1, dx, lddx, dw, lddw, db, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m, c.n,
                       c.k);
    check_padding("linear dx", dx, c.m, c.k, lddx);
    check_padding("linear dw", dw, c.n, c.k, lddw);
    check_fd("linear dx", linear_loss, &c, c.x, c.m, c.k, c.ldx, dx, lddx);
    check_fd("linear dw", linear_loss, &c, c.w, c.n, c.k, c.ldw, dw, lddw);
    check_fd("linear db", linear_loss, &c, c.b, 1, c.n, c.n, db, c.n);

    /* Accumulation: a second call doubles every gradient. */
    float *dx1 = mat_copy(dx, c.m * lddx), *dw1 = mat_copy(dw, c.n * lddw),
          *db1 = mat_copy(db, c.n);
    sn_linear_backward(2, dx, lddx, dw, lddw, db, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m, c.n,
                       c.k);
    check_doubled("linear dx", dx1, dx, c.m, c.k, lddx);
    check_doubled("linear dw", dw1, dw, c.n, c.k, lddw);
    check_doubled("linear db", db1, db, 1, c.n, c.n);

    /* NULL gradients are skipped; the others are unaffected. */
    memcpy(dx, dx1, (size_t)(c.m * lddx) * sizeof *dx);
    sn_linear_backward(1, dx, lddx, NULL, 0, NULL, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m, c.n,
                       c.k);
    check_doubled("linear dx (dw, db NULL)", dx1, dx, c.m, c.k, lddx);
    memcpy(db, db1, (size_t)c.n * sizeof *db);
    sn_linear_backward(1, NULL, 0, NULL, 0, db, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m, c.n,
                       c.k);
    check_doubled("linear db (dx, dw NULL)", db1, db, 1, c.n, c.n);

    sn_free(dx), sn_free(dw), sn_free(db), sn_free(dx1), sn_free(dw1), sn_free(db1);
    linear_case_free(&c);
}

/* -------------------------------------------------------------- layernorm */

/* The fused and overwriting forms give bit for bit what the plain ops give
 * (the same float operations in the same order): y = linear(x) + r,
 * (h, y) = (linear(x), gelu(linear(x))), dx = dy w into a dirty buffer, and
 * d = d gelu'(x) in place. */
static void test_linear_fused_forms(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 3, 0);
    linear_case c;
    linear_case_init(&c, &rng, 37, 19, 23, 5);
    const int64_t ld = c.ldy, size = c.m * ld;
    float *r = mat_new(&rng, c.m, c.n, ld, 1.0f);
    float *want = mat_zero(c.m, c.n, ld), *got = mat_zero(c.m, c.n, ld);
    float *h = mat_zero(c.m, c.n, ld);
    for (int nt = 1; nt <= 2; nt++) {
        sn_linear_forward(nt, c.y, ld, c.x, c.ldx, c.w, c.ldw, c.b, c.m, c.n, c.k);
        for (int64_t i = 0; i < c.m; i++)
            for (int64_t j = 0; j < c.n; j++) want[i * ld + j] = c.y[i * ld + j] + r[i * ld + j];
        sn_linear_residual_forward(nt, got, ld, c.x, c.ldx, c.w, c.ldw, c.b, r, ld, c.m, c.n,
                                   c.k);
        check_same_bits("linear + residual", got, want, size);

        sn_gelu_forward(nt, want, ld, c.y, ld, c.m, c.n);
        sn_linear_gelu_forward(nt, h, ld, got, ld, c.x, c.ldx, c.w, c.ldw, c.b, c.m, c.n, c.k);
        check_same_bits("linear then gelu: h", h, c.y, size);
        check_same_bits("linear then gelu: y", got, want, size);
    }

    /* dx overwritten (a dirty buffer), dw and db still accumulated. */
    const int64_t lddx = c.k + 4, lddw = c.k + 1;
    float *dx0 = mat_zero(c.m, c.k, lddx), *dw0 = mat_zero(c.n, c.k, lddw);
    float *db0 = mat_zero(1, c.n, c.n);
    float *dx1 = mat_new(&rng, c.m, c.k, lddx, 3.0f), *dw1 = mat_zero(c.n, c.k, lddw);
    float *db1 = mat_zero(1, c.n, c.n);
    sn_linear_backward(2, dx0, lddx, dw0, lddw, db0, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m, c.n,
                       c.k);
    sn_linear_backward_set(2, dx1, lddx, dw1, lddw, db1, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m,
                           c.n, c.k);
    check_same_bits("linear backward, dx set", dx1, dx0, c.m * lddx);
    check_same_bits("linear backward, dw", dw1, dw0, c.n * lddw);
    check_same_bits("linear backward, db", db1, db0, c.n);
    sn_linear_backward_set(1, dx1, lddx, dw1, lddw, db1, c.r, c.n, c.x, c.ldx, c.w, c.ldw, c.m,
                           c.n, c.k);
    check_same_bits("linear backward, dx set again", dx1, dx0, c.m * lddx);
    check_doubled("linear backward_set dw", dw0, dw1, c.n, c.k, lddw);
    check_doubled("linear backward_set db", db0, db1, 1, c.n, c.n);

    /* GELU's backward in place: d (the output gradient r) times gelu'(x). */
    float *gx = mat_zero(c.m, c.n, ld), *d = mat_copy(r, size);
    sn_gelu_backward(1, gx, ld, r, ld, h, ld, c.m, c.n);
    sn_gelu_backward_inplace(2, d, ld, h, ld, c.m, c.n);
    check_same_bits("gelu backward in place", d, gx, size);

    sn_free(r), sn_free(want), sn_free(got), sn_free(h), sn_free(gx), sn_free(d);
    sn_free(dx0), sn_free(dw0), sn_free(db0), sn_free(dx1), sn_free(dw1), sn_free(db1);
    linear_case_free(&c);
}

typedef struct {
    int64_t m, c, ldx, ldy;
    float *x, *y, *gamma, *beta, *mean, *rstd, *r;
} ln_case;

static double ln_loss(void *ctx)
{
    ln_case *c = ctx;
    sn_layernorm_forward(1, c->y, c->ldy, c->mean, c->rstd, c->x, c->ldx, c->gamma, c->beta,
                         c->m, c->c);
    return dot_loss(c->y, c->ldy, c->r, c->c, c->m, c->c);
}

static void ln_case_init(ln_case *c, sn_rng *rng, int64_t m, int64_t ch, int64_t pad)
{
    c->m = m, c->c = ch, c->ldx = ch + pad, c->ldy = ch + 2 * pad;
    c->x = mat_new(rng, m, ch, c->ldx, 1.0f);
    /* An offset per row, so that the mean matters. */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ch; j++) c->x[i * c->ldx + j] += (float)i - 2.0f;
    c->y = mat_zero(m, ch, c->ldy);
    c->gamma = mat_new(rng, 1, ch, ch, 1.0f);
    c->beta = mat_new(rng, 1, ch, ch, 1.0f);
    c->mean = mat_zero(1, m, m);
    c->rstd = mat_zero(1, m, m);
    c->r = mat_new(rng, m, ch, ch, 1.0f);
}

static void ln_case_free(ln_case *c)
{
    sn_free(c->x), sn_free(c->y), sn_free(c->gamma), sn_free(c->beta);
    sn_free(c->mean), sn_free(c->rstd), sn_free(c->r);
}

static void test_layernorm_forward(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 3, 0);
    ln_case c;
    ln_case_init(&c, &rng, 33, 48, 7);
    double *want = dbl_new(c.m * c.c);
    double *wmean = dbl_new(c.m), *wrstd = dbl_new(c.m);
    for (int64_t i = 0; i < c.m; i++) {
        const float *xr = c.x + i * c.ldx;
        double mu = 0.0, var = 0.0;
        for (int64_t j = 0; j < c.c; j++) mu += xr[j];
        mu /= (double)c.c;
        for (int64_t j = 0; j < c.c; j++) var += (xr[j] - mu) * (xr[j] - mu);
        var /= (double)c.c;
        double rs = 1.0 / sqrt(var + 1e-5);
        wmean[i] = mu, wrstd[i] = rs;
        for (int64_t j = 0; j < c.c; j++)
            want[i * c.c + j] = (xr[j] - mu) * rs * c.gamma[j] + c.beta[j];
    }
    for (int nt = 1; nt <= 2; nt++) {
        sn_layernorm_forward(nt, c.y, c.ldy, c.mean, c.rstd, c.x, c.ldx, c.gamma, c.beta, c.m,
                             c.c);
        check_close("layernorm y", c.y, c.ldy, want, c.c, c.m, c.c, FWD_RTOL, 1e-5);
        check_close("layernorm mean", c.mean, 1, wmean, 1, c.m, 1, FWD_RTOL, FWD_ATOL);
        check_close("layernorm rstd", c.rstd, 1, wrstd, 1, c.m, 1, FWD_RTOL, FWD_ATOL);
        check_padding("layernorm y", c.y, c.m, c.c, c.ldy);
    }
    /* In place (y == x, same stride). */
    sn_layernorm_forward(2, c.x, c.ldx, c.mean, c.rstd, c.x, c.ldx, c.gamma, c.beta, c.m, c.c);
    check_close("layernorm in place", c.x, c.ldx, want, c.c, c.m, c.c, FWD_RTOL, 1e-5);
    free(want), free(wmean), free(wrstd);
    ln_case_free(&c);
}

static void test_layernorm_backward(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 4, 0);
    ln_case c;
    ln_case_init(&c, &rng, 5, 40, 3); /* c > 32: two column blocks */
    int64_t lddx = c.c + 2;
    float *dx = mat_zero(c.m, c.c, lddx);
    float *dg = mat_zero(1, c.c, c.c), *dbt = mat_zero(1, c.c, c.c);
    ln_loss(&c); /* mean, rstd */
    sn_layernorm_backward(2, dx, lddx, dg, dbt, c.r, c.c, c.x, c.ldx, c.mean, c.rstd, c.gamma,
                          c.m, c.c);
    check_padding("layernorm dx", dx, c.m, c.c, lddx);
    check_fd("layernorm dx", ln_loss, &c, c.x, c.m, c.c, c.ldx, dx, lddx);
    check_fd("layernorm dgamma", ln_loss, &c, c.gamma, 1, c.c, c.c, dg, c.c);
    check_fd("layernorm dbeta", ln_loss, &c, c.beta, 1, c.c, c.c, dbt, c.c);

    float *dx1 = mat_copy(dx, c.m * lddx), *dg1 = mat_copy(dg, c.c), *db1 = mat_copy(dbt, c.c);
    sn_layernorm_backward(1, dx, lddx, dg, dbt, c.r, c.c, c.x, c.ldx, c.mean, c.rstd, c.gamma,
                          c.m, c.c);
    check_doubled("layernorm dx", dx1, dx, c.m, c.c, lddx);
    check_doubled("layernorm dgamma", dg1, dg, 1, c.c, c.c);
    check_doubled("layernorm dbeta", db1, dbt, 1, c.c, c.c);

    memcpy(dx, dx1, (size_t)(c.m * lddx) * sizeof *dx);
    sn_layernorm_backward(2, dx, lddx, NULL, NULL, c.r, c.c, c.x, c.ldx, c.mean, c.rstd,
                          c.gamma, c.m, c.c);
    check_doubled("layernorm dx (params NULL)", dx1, dx, c.m, c.c, lddx);
    memcpy(dg, dg1, (size_t)c.c * sizeof *dg);
    sn_layernorm_backward(2, NULL, 0, dg, NULL, c.r, c.c, c.x, c.ldx, c.mean, c.rstd, c.gamma,
                          c.m, c.c);
    check_doubled("layernorm dgamma (dx, dbeta NULL)", dg1, dg, 1, c.c, c.c);

    sn_free(dx), sn_free(dg), sn_free(dbt), sn_free(dx1), sn_free(dg1), sn_free(db1);
    ln_case_free(&c);
}

/* ------------------------------------------------------------------- gelu */

static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

typedef struct {
    int64_t m, c, ldx, ldy;
    float *x, *y, *r;
} gelu_case;

static double gelu_loss(void *ctx)
{
    gelu_case *g = ctx;
    sn_gelu_forward(1, g->y, g->ldy, g->x, g->ldx, g->m, g->c);
    return dot_loss(g->y, g->ldy, g->r, g->c, g->m, g->c);
}

static void test_gelu(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 5, 0);
    gelu_case g = {.m = 9, .c = 21, .ldx = 25, .ldy = 30};
    g.x = mat_new(&rng, g.m, g.c, g.ldx, 2.0f);
    g.y = mat_zero(g.m, g.c, g.ldy);
    g.r = mat_new(&rng, g.m, g.c, g.c, 1.0f);
    /* Tails: where e^{2u} leaves float range and where x^3 dominates. */
    const float tails[] = {9.5f, -9.5f, 12.0f, -12.0f, 1e4f, -1e4f};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) g.x[i] = tails[i];
    double *want = dbl_new(g.m * g.c);
    for (int64_t i = 0; i < g.m; i++)
        for (int64_t j = 0; j < g.c; j++) want[i * g.c + j] = gelu_ref(g.x[i * g.ldx + j]);
    sn_gelu_forward(2, g.y, g.ldy, g.x, g.ldx, g.m, g.c);
    check_close("gelu y", g.y, g.ldy, want, g.c, g.m, g.c, FWD_RTOL, FWD_ATOL);
    check_padding("gelu y", g.y, g.m, g.c, g.ldy);

    int64_t lddx = g.c + 1;
    float *dx = mat_zero(g.m, g.c, lddx);
    sn_gelu_backward(2, dx, lddx, g.r, g.c, g.x, g.ldx, g.m, g.c);
    check_padding("gelu dx", dx, g.m, g.c, lddx);
    check_fd("gelu dx", gelu_loss, &g, g.x, g.m, g.c, g.ldx, dx, lddx);
    float *dx1 = mat_copy(dx, g.m * lddx);
    sn_gelu_backward(1, dx, lddx, g.r, g.c, g.x, g.ldx, g.m, g.c);
    check_doubled("gelu dx", dx1, dx, g.m, g.c, lddx);

    /* In place forward (y == x). */
    sn_gelu_forward(1, g.x, g.ldx, g.x, g.ldx, g.m, g.c);
    check_close("gelu in place", g.x, g.ldx, want, g.c, g.m, g.c, FWD_RTOL, FWD_ATOL);
    free(want);
    sn_free(g.x), sn_free(g.y), sn_free(g.r), sn_free(dx), sn_free(dx1);
}

/* -------------------------------------------------------------- attention */

/* The model's layout: qkv rows hold hmax heads of [q k v]; the op uses the
 * first h (an elastic prefix), so ldqkv > 3 h d. */
typedef struct {
    int64_t b, t, h, d, ldqkv, ldo;
    bool causal;
    float *qkv, *out, *att, *r;
} attn_case;

static double attn_loss(void *ctx)
{
    attn_case *a = ctx;
    sn_attention_forward(1, a->out, a->ldo, a->att, a->qkv, a->ldqkv, a->b, a->t, a->h, a->d,
                         a->causal);
    return dot_loss(a->out, a->ldo, a->r, a->h * a->d, a->b * a->t, a->h * a->d);
}

static void attn_case_init(attn_case *a, sn_rng *rng, int64_t b, int64_t t, int64_t h,
                           int64_t hmax, int64_t d, bool causal)
{
    a->b = b, a->t = t, a->h = h, a->d = d, a->causal = causal;
    a->ldqkv = 3 * hmax * d;
    a->ldo = hmax * d + 1;
    /* The prefix of h heads is the live part; the other heads' columns are
     * padding that must be neither read into the result nor written. */
    a->qkv = mat_new(rng, b * t, 3 * h * d, a->ldqkv, 1.0f);
    a->out = mat_zero(b * t, h * d, a->ldo);
    a->att = mat_zero(1, b * h * t * t, b * h * t * t);
    a->r = mat_new(rng, b * t, h * d, h * d, 1.0f);
}

static void attn_case_free(attn_case *a)
{
    sn_free(a->qkv), sn_free(a->out), sn_free(a->att), sn_free(a->r);
}

/* Naive attention in double: out (b t, h d) and att (b, h, t, t). */
static void attn_ref(const attn_case *a, double *out, double *att)
{
    int64_t t = a->t, d = a->d;
    double scale = 1.0 / sqrt((double)d);
    for (int64_t s = 0; s < a->b; s++)
        for (int64_t hh = 0; hh < a->h; hh++) {
            double *p = att + (s * a->h + hh) * t * t;
            for (int64_t i = 0; i < t; i++) {
                const float *q = a->qkv + (s * t + i) * a->ldqkv + hh * 3 * d;
                double mx = -INFINITY;
                for (int64_t j = 0; j < t; j++) {
                    const float *k = a->qkv + (s * t + j) * a->ldqkv + hh * 3 * d + d;
                    double sc = 0.0;
                    for (int64_t e = 0; e < d; e++) sc += (double)q[e] * k[e];
                    p[i * t + j] = sc * scale;
                    if (!(a->causal && j > i)) mx = fmax(mx, sc * scale);
                }
                double sum = 0.0;
                for (int64_t j = 0; j < t; j++) {
                    double e = (a->causal && j > i) ? 0.0 : exp(p[i * t + j] - mx);
                    p[i * t + j] = e;
                    sum += e;
                }
                for (int64_t j = 0; j < t; j++) p[i * t + j] /= sum;
                for (int64_t e = 0; e < d; e++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < t; j++)
                        o += p[i * t + j] * a->qkv[(s * t + j) * a->ldqkv + hh * 3 * d + 2 * d + e];
                    out[(s * t + i) * a->h * d + hh * d + e] = o;
                }
            }
        }
}

static void attention_forward_case(bool causal)
{
    sn_rng rng;
    sn_rng_seed(&rng, 6, causal);
    attn_case a;
    attn_case_init(&a, &rng, 3, 7, 2, 4, 8, causal);
    int64_t hd = a.h * a.d, natt = a.b * a.h * a.t * a.t;
    double *out = dbl_new(a.b * a.t * hd), *att = dbl_new(natt);
    attn_ref(&a, out, att);
    for (int nt = 1; nt <= 2; nt++) {
        sn_attention_forward(nt, a.out, a.ldo, a.att, a.qkv, a.ldqkv, a.b, a.t, a.h, a.d,
                             causal);
        check_close("attention out", a.out, a.ldo, out, hd, a.b * a.t, hd, FWD_RTOL, 1e-5);
        check_close("attention att", a.att, 1, att, 1, natt, 1, FWD_RTOL, FWD_ATOL);
        check_padding("attention out", a.out, a.b * a.t, hd, a.ldo);
    }
    if (causal)
        for (int64_t p = 0; p < a.b * a.h; p++)
            for (int64_t i = 0; i < a.t; i++)
                for (int64_t j = i + 1; j < a.t; j++)
                    assert_true(a.att[(p * a.t + i) * a.t + j] == 0.0f);
    free(out), free(att);
    attn_case_free(&a);
}

static void test_attention_forward(void **state)
{
    (void)state;
    attention_forward_case(false);
    attention_forward_case(true);
}

static void attention_backward_case(bool causal)
{
    sn_rng rng;
    sn_rng_seed(&rng, 7, causal);
    attn_case a;
    attn_case_init(&a, &rng, 2, 5, 2, 3, 4, causal);
    int64_t rows = a.b * a.t, w = 3 * a.h * a.d, lddqkv = a.ldqkv + 2;
    float *dqkv = mat_zero(rows, w, lddqkv);
    float *scratch = sn_alloc((size_t)(2 * a.t * a.t) * sizeof *scratch);
    assert_non_null(scratch);
    attn_loss(&a); /* att */
    sn_attention_backward(2, dqkv, lddqkv, a.r, a.h * a.d, a.att, a.qkv, a.ldqkv, scratch, a.b,
                          a.t, a.h, a.d);
    check_padding("attention dqkv", dqkv, rows, w, lddqkv);
    check_fd(causal ? "attention dqkv (causal)" : "attention dqkv", attn_loss, &a, a.qkv, rows,
             w, a.ldqkv, dqkv, lddqkv);

    float *d1 = mat_copy(dqkv, rows * lddqkv);
    sn_attention_backward(1, dqkv, lddqkv, a.r, a.h * a.d, a.att, a.qkv, a.ldqkv, scratch, a.b,
                          a.t, a.h, a.d);
    check_doubled("attention dqkv", d1, dqkv, rows, w, lddqkv);
    sn_free(dqkv), sn_free(d1), sn_free(scratch);
    attn_case_free(&a);
}

static void test_attention_backward(void **state)
{
    (void)state;
    attention_backward_case(false);
    attention_backward_case(true);
}

/* --------------------------------------------------------------- meanpool */

typedef struct {
    int64_t b, t, c, ldx, ldy;
    float *x, *y, *r;
} pool_case;

static double pool_loss(void *ctx)
{
    pool_case *p = ctx;
    sn_meanpool_forward(1, p->y, p->ldy, p->x, p->ldx, p->b, p->t, p->c);
    return dot_loss(p->y, p->ldy, p->r, p->c, p->b, p->c);
}

static void test_meanpool(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 8, 0);
    pool_case p = {.b = 3, .t = 5, .c = 6, .ldx = 9, .ldy = 8};
    p.x = mat_new(&rng, p.b * p.t, p.c, p.ldx, 1.0f);
    p.y = mat_zero(p.b, p.c, p.ldy);
    p.r = mat_new(&rng, p.b, p.c, p.c, 1.0f);
    double *want = dbl_new(p.b * p.c);
    for (int64_t s = 0; s < p.b; s++)
        for (int64_t j = 0; j < p.c; j++) {
            double sum = 0.0;
            for (int64_t i = 0; i < p.t; i++) sum += p.x[(s * p.t + i) * p.ldx + j];
            want[s * p.c + j] = sum / (double)p.t;
        }
    sn_meanpool_forward(2, p.y, p.ldy, p.x, p.ldx, p.b, p.t, p.c);
    check_close("meanpool y", p.y, p.ldy, want, p.c, p.b, p.c, FWD_RTOL, FWD_ATOL);
    check_padding("meanpool y", p.y, p.b, p.c, p.ldy);

    int64_t lddx = p.c + 3;
    float *dx = mat_zero(p.b * p.t, p.c, lddx);
    sn_meanpool_backward(2, dx, lddx, p.r, p.c, p.b, p.t, p.c);
    check_padding("meanpool dx", dx, p.b * p.t, p.c, lddx);
    check_fd("meanpool dx", pool_loss, &p, p.x, p.b * p.t, p.c, p.ldx, dx, lddx);
    float *dx1 = mat_copy(dx, p.b * p.t * lddx);
    sn_meanpool_backward(1, dx, lddx, p.r, p.c, p.b, p.t, p.c);
    check_doubled("meanpool dx", dx1, dx, p.b * p.t, p.c, lddx);
    free(want);
    sn_free(p.x), sn_free(p.y), sn_free(p.r), sn_free(dx), sn_free(dx1);
}

/* ----------------------------------------------------- softmax and losses */

static void test_softmax(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 9, 0);
    int64_t n = 4, c = 11;
    float temp = 2.5f;
    float *x = mat_new(&rng, n, c, c, 5.0f), *p = mat_zero(n, c, c);
    x[3] = 200.0f; /* large logit: needs the max shift */
    double *want = dbl_new(n * c);
    for (int64_t i = 0; i < n; i++) {
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < c; j++) mx = fmax(mx, x[i * c + j] / (double)temp);
        for (int64_t j = 0; j < c; j++) sum += exp(x[i * c + j] / (double)temp - mx);
        for (int64_t j = 0; j < c; j++)
            want[i * c + j] = exp(x[i * c + j] / (double)temp - mx) / sum;
    }
    sn_softmax(p, x, n, c, temp);
    check_close("softmax", p, c, want, c, n, c, FWD_RTOL, FWD_ATOL);
    free(want);
    sn_free(x), sn_free(p);
}

/* Reference loss of one row in double: -sum_j target_j log softmax(x)_j. */
static double xent_row_ref(const float *x, const double *target, int64_t c)
{
    double mx = -INFINITY, sum = 0.0, loss = 0.0;
    for (int64_t j = 0; j < c; j++) mx = fmax(mx, x[j]);
    for (int64_t j = 0; j < c; j++) sum += exp(x[j] - mx);
    for (int64_t j = 0; j < c; j++) loss -= target[j] * (x[j] - mx - log(sum));
    return loss;
}

typedef struct {
    int64_t n, c;
    float eps;
    float *x, *q;
    int32_t *labels;
} xent_case;

static double xent_hard_loss(void *ctx)
{
    xent_case *e = ctx;
    return sn_xent_hard(NULL, NULL, e->x, e->labels, e->n, e->c, e->eps, 1.0f);
}

static double xent_soft_loss(void *ctx)
{
    xent_case *e = ctx;
    return sn_xent_soft(NULL, e->x, e->q, e->n, e->c, 1.0f);
}

static void test_xent_hard(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 10, 0);
    xent_case e = {.n = 6, .c = 7, .eps = 0.1f};
    e.x = mat_new(&rng, e.n, e.c, e.c, 2.0f);
    e.labels = malloc((size_t)e.n * sizeof *e.labels);
    assert_non_null(e.labels);
    int64_t want_correct = 0;
    double want_loss = 0.0;
    double *target = dbl_new(e.c);
    for (int64_t i = 0; i < e.n; i++) {
        e.labels[i] = (int32_t)sn_rng_below(&rng, (uint64_t)e.c);
        int64_t arg = 0;
        for (int64_t j = 1; j < e.c; j++)
            if (e.x[i * e.c + j] > e.x[i * e.c + arg]) arg = j;
        /* Make half the rows correct. */
        if (i % 2 == 0) e.labels[i] = (int32_t)arg;
        want_correct += arg == e.labels[i];
        for (int64_t j = 0; j < e.c; j++)
            target[j] = e.eps / (double)e.c + (j == e.labels[i] ? 1.0 - e.eps : 0.0);
        want_loss += xent_row_ref(e.x + i * e.c, target, e.c);
    }
    want_loss /= (double)e.n;

    float *dl = mat_zero(e.n, e.c, e.c);
    int64_t correct = -1;
    float loss = sn_xent_hard(dl, &correct, e.x, e.labels, e.n, e.c, e.eps, 1.0f);
    assert_true(close_enough(loss, want_loss, FWD_RTOL, FWD_ATOL));
    assert_int_equal(correct, want_correct);
    check_fd("xent_hard dlogits", xent_hard_loss, &e, e.x, e.n, e.c, e.c, dl, e.c);

    /* scale multiplies the gradient, not the loss; dlogits is overwritten. */
    float *ds = mat_zero(e.n, e.c, e.c);
    ds[0] = 99.0f;
    float loss3 = sn_xent_hard(ds, NULL, e.x, e.labels, e.n, e.c, e.eps, 3.0f);
    assert_true(loss3 == loss);
    for (int64_t i = 0; i < e.n * e.c; i++)
        assert_true(close_enough(ds[i], 3.0 * dl[i], 1e-6, 1e-8));
    free(target), free(e.labels);
    sn_free(e.x), sn_free(dl), sn_free(ds);
}

static void test_xent_soft(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 11, 0);
    xent_case e = {.n = 5, .c = 6};
    e.x = mat_new(&rng, e.n, e.c, e.c, 2.0f);
    float *t = mat_new(&rng, e.n, e.c, e.c, 1.0f);
    e.q = mat_zero(e.n, e.c, e.c);
    sn_softmax(e.q, t, e.n, e.c, 1.0f);
    double want_loss = 0.0;
    double *target = dbl_new(e.c);
    for (int64_t i = 0; i < e.n; i++) {
        for (int64_t j = 0; j < e.c; j++) target[j] = e.q[i * e.c + j];
        want_loss += xent_row_ref(e.x + i * e.c, target, e.c);
    }
    want_loss /= (double)e.n;
    float *dl = mat_zero(e.n, e.c, e.c);
    float loss = sn_xent_soft(dl, e.x, e.q, e.n, e.c, 1.0f);
    assert_true(close_enough(loss, want_loss, FWD_RTOL, FWD_ATOL));
    check_fd("xent_soft dlogits", xent_soft_loss, &e, e.x, e.n, e.c, e.c, dl, e.c);
    float *ds = mat_zero(e.n, e.c, e.c);
    assert_true(sn_xent_soft(ds, e.x, e.q, e.n, e.c, 0.5f) == loss);
    for (int64_t i = 0; i < e.n * e.c; i++)
        assert_true(close_enough(ds[i], 0.5 * dl[i], 1e-6, 1e-8));
    free(target);
    sn_free(e.x), sn_free(t), sn_free(e.q), sn_free(dl), sn_free(ds);
}

/* ------------------------------------------------- thread reproducibility */

/* One forward and backward of every threaded op at model-like sizes with
 * nt threads; all outputs and gradients concatenated into res. */
enum { RB = 4, RT = 49, RH = 3, RHMAX = 4, RD = 16, RC = RH * RD, RF = 4 * RC };
enum { RM = RB * RT, RLDQKV = 3 * RHMAX * RD };

typedef struct {
    float *x, *w1, *b1, *g, *be, *qkv, *dy, *dyq, *dyf, *dyp;
    float *scratch;
} repro_in;

static int64_t run_all(int nt, const repro_in *in, float *res)
{
    float *p = res;
    /* linear: y (RM, RF) = x (RM, RC) w1^T + b1; backward dx, dw, db. */
    sn_linear_forward(nt, p, RF, in->x, RC, in->w1, RC, in->b1, RM, RF, RC);
    p += RM * RF;
    memset(p, 0, (size_t)(RM * RC + RF * RC + RF) * sizeof *p);
    sn_linear_backward(nt, p, RC, p + RM * RC, RC, p + RM * RC + RF * RC, in->dyf, RF, in->x,
                       RC, in->w1, RC, RM, RF, RC);
    p += RM * RC + RF * RC + RF;
    /* layernorm. */
    float *mean = p + RM * RC, *rstd = mean + RM;
    sn_layernorm_forward(nt, p, RC, mean, rstd, in->x, RC, in->g, in->be, RM, RC);
    p += RM * RC + 2 * RM;
    memset(p, 0, (size_t)(RM * RC + 2 * RC) * sizeof *p);
    sn_layernorm_backward(nt, p, RC, p + RM * RC, p + RM * RC + RC, in->dy, RC, in->x, RC, mean,
                          rstd, in->g, RM, RC);
    p += RM * RC + 2 * RC;
    /* gelu. */
    sn_gelu_forward(nt, p, RC, in->x, RC, RM, RC);
    p += RM * RC;
    memset(p, 0, (size_t)(RM * RC) * sizeof *p);
    sn_gelu_backward(nt, p, RC, in->dy, RC, in->x, RC, RM, RC);
    p += RM * RC;
    /* attention, causal and not. */
    for (int causal = 0; causal <= 1; causal++) {
        float *att = p + RM * RC;
        sn_attention_forward(nt, p, RC, att, in->qkv, RLDQKV, RB, RT, RH, RD, causal);
        p += RM * RC + RB * RH * RT * RT;
        memset(p, 0, (size_t)(RM * 3 * RC) * sizeof *p);
        sn_attention_backward(nt, p, 3 * RC, in->dy, RC, att, in->qkv, RLDQKV, in->scratch, RB,
                              RT, RH, RD);
        p += RM * 3 * RC;
    }
    /* meanpool. */
    sn_meanpool_forward(nt, p, RC, in->x, RC, RB, RT, RC);
    p += RB * RC;
    memset(p, 0, (size_t)(RM * RC) * sizeof *p);
    sn_meanpool_backward(nt, p, RC, in->dyp, RC, RB, RT, RC);
    p += RM * RC;
    return p - res;
}

static void test_threads(void **state)
{
    (void)state;
    sn_rng rng;
    sn_rng_seed(&rng, 12, 0);
    repro_in in = {
        .x = mat_new(&rng, RM, RC, RC, 1.0f),
        .w1 = mat_new(&rng, RF, RC, RC, 0.2f),
        .b1 = mat_new(&rng, 1, RF, RF, 1.0f),
        .g = mat_new(&rng, 1, RC, RC, 1.0f),
        .be = mat_new(&rng, 1, RC, RC, 1.0f),
        .qkv = mat_new(&rng, RM, 3 * RC, RLDQKV, 1.0f),
        .dy = mat_new(&rng, RM, RC, RC, 1.0f),
        .dyf = mat_new(&rng, RM, RF, RF, 1.0f),
        .dyp = mat_new(&rng, RB, RC, RC, 1.0f),
    };
    in.scratch = sn_alloc((size_t)(2 * RT * RT) * sizeof *in.scratch);
    assert_non_null(in.scratch);
    int64_t cap = 16 * RM * RF;
    float *r1 = sn_alloc((size_t)cap * sizeof *r1), *r2 = sn_alloc((size_t)cap * sizeof *r2);
    float *r1b = sn_alloc((size_t)cap * sizeof *r1b);
    assert_non_null(r1), assert_non_null(r2), assert_non_null(r1b);
    int64_t n = run_all(1, &in, r1);
    assert_true(n <= cap);
    assert_int_equal(run_all(1, &in, r1b), n);
    check_same_bits("nt=1", r1, r1b, n);
    assert_int_equal(run_all(2, &in, r2), n);
    assert_int_equal(run_all(2, &in, r1b), n);
    check_same_bits("nt=2", r2, r1b, n);
    /* Between thread counts only BLIS's partitioning may change, hence
     * the order of a few float additions. */
    check_close_f("nt=1 vs nt=2", r2, r1, n, 1e-6, 1e-6);
    sn_free(in.x), sn_free(in.w1), sn_free(in.b1), sn_free(in.g), sn_free(in.be);
    sn_free(in.qkv), sn_free(in.dy), sn_free(in.dyf), sn_free(in.dyp), sn_free(in.scratch);
    sn_free(r1), sn_free(r2), sn_free(r1b);
}

int main(void)
{
    char err[256];
    if (sn_blas_init(NULL, err, sizeof err) != SN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_forward),    cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_linear_fused_forms),
        cmocka_unit_test(test_layernorm_forward), cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_gelu),              cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_attention_backward), cmocka_unit_test(test_meanpool),
        cmocka_unit_test(test_softmax),           cmocka_unit_test(test_xent_hard),
        cmocka_unit_test(test_xent_soft),         cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
