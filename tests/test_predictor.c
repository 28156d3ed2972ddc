/* test_predictor: the sub-network encoding, ridge regression against a
 * naive solve, recovery of linear and noisy targets on held-out
 * sub-networks, Kendall tau, MAPE and RMSE, and refused inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/predictor.h"
#include "src/rng.h"
#include "src/util.h"

/* cmocka's assert_float_equal compares in float: this one in double. */
#define assert_near(a, b, tol)                                                   \
    do {                                                                         \
        const double a_ = (a), b_ = (b), tol_ = (tol);                           \
        if (!(fabs(a_ - b_) <= tol_)) fail_msg("%.17g != %.17g (tolerance %.3g)", a_, b_, tol_); \
    } while (0)

#define N_TRAIN 400
#define N_TEST 200

static double uniform(sn_rng *r) { return (double)(sn_rng_u64(r) >> 11) * 0x1.0p-53; }

static void sample_nets(const sn_space *s, sn_rng *r, sn_subnet *nets, int n)
{
    for (int i = 0; i < n; i++) sn_subnet_sample(s, r, &nets[i]);
}

/* Decodes the one-hot part of x back into a sub-network, failing the test
 * unless every group holds exactly one 1 (kept slots) or only zeros
 * (dropped slots) and nothing but 0 and 1. */
static void decode(const sn_space *s, const double *x, sn_subnet *out)
{
    memset(out, 0, sizeof *out);
    const double *at = x;
    int hot = -1;
    for (int i = 0; i < s->n_embed; i++) {
        assert_true(at[i] == 0.0 || at[i] == 1.0);
        if (at[i] == 1.0) {
            assert_int_equal(hot, -1);
            hot = i;
        }
    }
    assert_true(hot >= 0);
    out->embed = s->embed[hot];
    at += s->n_embed;
    out->n_stages = s->n_stages;
    for (int st = 0; st < s->n_stages; st++) {
        const int span = s->max_depth[st] - s->min_depth[st] + 1;
        double sum = 0.0;
        for (int d = 0; d < span; d++) {
            assert_true(at[d] == 0.0 || at[d] == 1.0);
            sum += at[d];
            if (at[d] == 1.0) out->depth[st] = s->min_depth[st] + d;
        }
        assert_true(sum == 1.0);
        out->n_blocks += out->depth[st];
        at += span;
    }
    int kept = 0;
    for (int st = 0; st < s->n_stages; st++) {
        for (int j = 0; j < s->max_depth[st]; j++) {
            double hsum = 0.0, fsum = 0.0;
            int h = -1, f = -1;
            for (int c = 0; c < s->n_heads; c++) {
                assert_true(at[c] == 0.0 || at[c] == 1.0);
                hsum += at[c];
                if (at[c] == 1.0) h = c;
            }
            for (int c = 0; c < s->n_mlp; c++) {
                const double v = at[s->n_heads + c];
                assert_true(v == 0.0 || v == 1.0);
                fsum += v;
                if (v == 1.0) f = c;
            }
            if (j < out->depth[st]) {
                assert_true(hsum == 1.0 && fsum == 1.0);
                out->heads[kept] = s->heads[h];
                out->mlp[kept] = s->mlp[f];
                kept++;
            } else {
                assert_true(hsum == 0.0 && fsum == 0.0);
            }
            at += s->n_heads + s->n_mlp;
        }
    }
    assert_int_equal(at - x, sn_features_count(s) - SN_FEATURES_NUMERIC);
}

static void test_features_one_hot(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    const int p = sn_features_count(&s);
    assert_int_equal(p, 5 + 3 + 3 + 6 * (3 + 8) + SN_FEATURES_NUMERIC);
    assert_true(p <= SN_FEATURES_MAX);
    double x[SN_FEATURES_MAX];
    sn_rng r;
    sn_rng_seed(&r, 1, 0);
    for (int t = 0; t < 300; t++) {
        sn_subnet n, back;
        sn_subnet_sample(&s, &r, &n);
        sn_features(&s, &n, x);
        decode(&s, x, &back);
        assert_memory_equal(&n, &back, sizeof n);
        for (int k = p - SN_FEATURES_NUMERIC; k < p; k++) assert_true(x[k] >= 0.0 && x[k] <= 1.0);
    }
    sn_subnet big, small;
    sn_subnet_max(&s, &big);
    sn_subnet_min(&s, &small);
    sn_features(&s, &big, x);
    for (int k = p - SN_FEATURES_NUMERIC; k < p; k++) assert_near(x[k], 1.0, 1e-15);
    sn_features(&s, &small, x);
    assert_true(x[p - 3] > 0.0 && x[p - 3] < 0.2);
    assert_true(x[p - 2] > 0.0 && x[p - 2] < 0.2);
    assert_near(x[p - 1], 0.0, 1e-15);
}

/* Different sub-networks get different features, equal ones equal. */
static void test_features_differ(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    s.n_embed = 2;   /* a small space, so that equal pairs happen too */
    s.n_mlp = 2;
    s.n_heads = 1;
    s.max_depth[0] = s.max_depth[1] = 2;
    const int p = sn_features_count(&s);
    double xa[SN_FEATURES_MAX], xb[SN_FEATURES_MAX];
    sn_rng r;
    sn_rng_seed(&r, 2, 0);
    int same = 0, differ = 0;
    for (int t = 0; t < 500; t++) {
        sn_subnet a, b;
        char sa[SN_SUBNET_STRLEN], sb[SN_SUBNET_STRLEN];
        sn_subnet_sample(&s, &r, &a);
        sn_subnet_sample(&s, &r, &b);
        assert_true(sn_subnet_format(&a, sa, sizeof sa) > 0);
        assert_true(sn_subnet_format(&b, sb, sizeof sb) > 0);
        sn_features(&s, &a, xa);
        sn_features(&s, &b, xb);
        const int eq_str = strcmp(sa, sb) == 0;
        const int eq_x = memcmp(xa, xb, (size_t)p * sizeof(double)) == 0;
        assert_int_equal(eq_str, eq_x);
        same += eq_str;
        differ += !eq_str;
    }
    assert_true(same > 0 && differ > 0);
}

/* Naive reference: the primal normal equations of centred X and
 * standardised y, solved by Gaussian elimination with partial pivoting. */
static void ridge_reference(double *w, const double *X, const double *y, int n, int p,
                            double lambda)
{
    double *mean = calloc((size_t)p, sizeof *mean);
    double *a = calloc((size_t)p * (p + 1), sizeof *a);   /* (p, p + 1) augmented */
    assert_non_null(mean);
    assert_non_null(a);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) mean[j] += X[i * p + j] / n;
    double ym = 0.0, yv = 0.0;
    for (int i = 0; i < n; i++) ym += y[i] / n;
    for (int i = 0; i < n; i++) yv += (y[i] - ym) * (y[i] - ym) / n;
    const double ys = sqrt(yv);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) {
            for (int k = 0; k < p; k++)
                a[j * (p + 1) + k] += (X[i * p + j] - mean[j]) * (X[i * p + k] - mean[k]);
            a[j * (p + 1) + p] += (X[i * p + j] - mean[j]) * (y[i] - ym) / ys;
        }
    for (int j = 0; j < p; j++) a[j * (p + 1) + j] += lambda;
    for (int c = 0; c < p; c++) {
        int piv = c;
        for (int i = c + 1; i < p; i++)
            if (fabs(a[i * (p + 1) + c]) > fabs(a[piv * (p + 1) + c])) piv = i;
        for (int k = 0; k <= p; k++) {
            const double t = a[c * (p + 1) + k];
            a[c * (p + 1) + k] = a[piv * (p + 1) + k];
            a[piv * (p + 1) + k] = t;
        }
        for (int i = c + 1; i < p; i++) {
            const double f = a[i * (p + 1) + c] / a[c * (p + 1) + c];
            for (int k = c; k <= p; k++) a[i * (p + 1) + k] -= f * a[c * (p + 1) + k];
        }
    }
    for (int i = p - 1; i >= 0; i--) {
        double v = a[i * (p + 1) + p];
        for (int k = i + 1; k < p; k++) v -= a[i * (p + 1) + k] * w[k];
        w[i] = v / a[i * (p + 1) + i];
    }
    free(mean);
    free(a);
}

/* Both systems (n >= p primal, n < p kernel) against the naive solve. */
static void test_ridge_reference(void **state)
{
    (void)state;
    const int shapes[][2] = {{40, 10}, {10, 40}, {12, 12}};
    sn_rng r;
    sn_rng_seed(&r, 3, 0);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int n = shapes[t][0], p = shapes[t][1];
        double *X = malloc((size_t)n * p * sizeof *X), *y = malloc((size_t)n * sizeof *y);
        double *w = malloc((size_t)p * sizeof *w);
        assert_non_null(X);
        assert_non_null(y);
        assert_non_null(w);
        for (int i = 0; i < n * p; i++) X[i] = uniform(&r);
        for (int i = 0; i < n; i++) y[i] = 5.0 + 2.0 * sn_rng_normal(&r);
        sn_ridge rg = {0};
        char err[256] = "";
        if (sn_ridge_fit(&rg, X, y, n, p, 0.3, err, sizeof err) != SN_OK) fail_msg("%s", err);
        ridge_reference(w, X, y, n, p, 0.3);
        assert_int_equal(rg.p, p);
        assert_true(isnan(rg.cv_rmse));
        for (int j = 0; j < p; j++) assert_near(rg.w[j], w[j], 1e-10 * (1.0 + fabs(w[j])));
        sn_ridge_free(&rg);
        assert_null(rg.w);
        free(X);
        free(y);
        free(w);
    }
}

/* A fixed weight per one-hot feature (numeric features weigh 0), plus 3. */
static void linear_weights(double *w, int p, sn_rng *r)
{
    for (int j = 0; j < p; j++) w[j] = j < p - SN_FEATURES_NUMERIC ? sn_rng_normal(r) : 0.0;
}

static double dot_features(const sn_space *s, const sn_subnet *n, const double *w)
{
    double x[SN_FEATURES_MAX], sum = 3.0;
    sn_features(s, n, x);
    for (int j = 0; j < sn_features_count(s); j++) sum += w[j] * x[j];
    return sum;
}

static double std_dev(const double *v, int n)
{
    double m = 0.0, s = 0.0;
    for (int i = 0; i < n; i++) m += v[i] / n;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m) / n;
    return sqrt(s);
}

/* y = w.x + b: tiny lambda recovers held-out predictions to ~1e-6. */
static void test_linear_recovery(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    static sn_subnet train[N_TRAIN], test[N_TEST];
    static double y[N_TRAIN], truth[N_TEST], pred[N_TEST];
    double w[SN_FEATURES_MAX];
    sn_rng r;
    sn_rng_seed(&r, 4, 0);
    linear_weights(w, sn_features_count(&s), &r);
    sample_nets(&s, &r, train, N_TRAIN);
    sample_nets(&s, &r, test, N_TEST);
    for (int i = 0; i < N_TRAIN; i++) y[i] = dot_features(&s, &train[i], w);
    for (int i = 0; i < N_TEST; i++) truth[i] = dot_features(&s, &test[i], w);

    sn_predictor pr = {0};
    char err[256] = "";
    const double lambda = 1e-9;
    if (sn_predictor_fit(&pr, &s, train, y, N_TRAIN, &lambda, 1, err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    for (int i = 0; i < N_TEST; i++) pred[i] = sn_predictor_predict(&pr, &test[i]);
    const double scale = std_dev(truth, N_TEST);
    double worst = 0.0;
    for (int i = 0; i < N_TEST; i++) worst = fmax(worst, fabs(pred[i] - truth[i]) / scale);
    print_message("linear target: max held-out error %.2e of sd, tau %.6f\n", worst,
                  sn_kendall_tau(pred, truth, N_TEST));
    assert_true(worst < 1e-6);
    assert_true(sn_kendall_tau(pred, truth, N_TEST) > 0.9999);
    assert_true(sn_rmse(pred, truth, N_TEST) < 1e-6 * scale);

    /* a refit of the same predictor replaces the model */
    for (int i = 0; i < N_TRAIN; i++) y[i] = -y[i];
    if (sn_predictor_fit(&pr, &s, train, y, N_TRAIN, &lambda, 1, err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    assert_near(sn_predictor_predict(&pr, &test[0]), -truth[0], 1e-6 * scale);
    sn_predictor_free(&pr);
    sn_predictor_free(NULL);
}

/* n < p: the kernel system interpolates the training targets. */
static void test_fewer_samples_than_features(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    enum { N = 30 };
    sn_subnet nets[N];
    double y[N], w[SN_FEATURES_MAX];
    sn_rng r;
    sn_rng_seed(&r, 5, 0);
    assert_true(N < sn_features_count(&s));
    linear_weights(w, sn_features_count(&s), &r);
    sample_nets(&s, &r, nets, N);
    for (int i = 0; i < N; i++) y[i] = dot_features(&s, &nets[i], w);
    sn_predictor pr = {0};
    char err[256] = "";
    const double lambda = 1e-9;
    if (sn_predictor_fit(&pr, &s, nets, y, N, &lambda, 1, err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    const double scale = std_dev(y, N);
    for (int i = 0; i < N; i++)
        assert_near(sn_predictor_predict(&pr, &nets[i]), y[i], 1e-6 * scale);
    sn_predictor_free(&pr);
}

/* Noisy targets with lambda chosen by cross-validation still rank
 * held-out sub-networks: the linear target with 5% noise, and a
 * latency-like target proportional to MACs with 2% noise. */
static void test_noisy_targets(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    static sn_subnet train[N_TRAIN], test[N_TEST];
    static double y[N_TRAIN], truth[N_TEST], pred[N_TEST];
    double w[SN_FEATURES_MAX];
    sn_rng r;
    sn_rng_seed(&r, 6, 0);
    linear_weights(w, sn_features_count(&s), &r);
    sample_nets(&s, &r, train, N_TRAIN);
    sample_nets(&s, &r, test, N_TEST);
    for (int i = 0; i < N_TRAIN; i++) y[i] = dot_features(&s, &train[i], w);
    const double noise = 0.05 * std_dev(y, N_TRAIN);
    for (int i = 0; i < N_TRAIN; i++) y[i] += noise * sn_rng_normal(&r);
    for (int i = 0; i < N_TEST; i++)
        truth[i] = dot_features(&s, &test[i], w) + noise * sn_rng_normal(&r);

    sn_predictor pr = {0};
    char err[256] = "";
    if (sn_predictor_fit(&pr, &s, train, y, N_TRAIN, sn_ridge_lambda_grid, SN_RIDGE_GRID_LEN,
                         err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    for (int i = 0; i < N_TEST; i++) pred[i] = sn_predictor_predict(&pr, &test[i]);
    double tau = sn_kendall_tau(pred, truth, N_TEST);
    print_message("noisy linear: lambda %g, cv rmse %.3f (noise %.3f), tau %.4f\n",
                  pr.ridge.lambda, pr.ridge.cv_rmse, noise, tau);
    assert_true(tau > 0.9);
    assert_true(pr.ridge.cv_rmse > 0.5 * noise && pr.ridge.cv_rmse < 2.0 * noise);

    for (int i = 0; i < N_TRAIN; i++)
        y[i] = 1e-6 * (double)sn_subnet_macs(&s, &train[i]) * (1.0 + 0.02 * sn_rng_normal(&r));
    for (int i = 0; i < N_TEST; i++)
        truth[i] = 1e-6 * (double)sn_subnet_macs(&s, &test[i]) * (1.0 + 0.02 * sn_rng_normal(&r));
    if (sn_predictor_fit(&pr, &s, train, y, N_TRAIN, sn_ridge_lambda_grid, SN_RIDGE_GRID_LEN,
                         err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    for (int i = 0; i < N_TEST; i++) pred[i] = sn_predictor_predict(&pr, &test[i]);
    tau = sn_kendall_tau(pred, truth, N_TEST);
    const double mape = sn_mape(pred, truth, N_TEST);
    print_message("latency-like: lambda %g, tau %.4f, MAPE %.4f\n", pr.ridge.lambda, tau, mape);
    assert_true(tau > 0.95);
    assert_true(mape < 0.05);
    sn_predictor_free(&pr);
}

/* tau-b written from its definition with tie groups: n1 = sum t(t-1)/2
 * over groups of equal a, n2 likewise for b, C and D counted pair by
 * pair with explicit branches. */
static double kendall_brute(const double *a, const double *b, int n)
{
    double c = 0, d = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            if (a[i] == a[j] || b[i] == b[j]) continue;
            if ((a[i] < a[j]) == (b[i] < b[j])) c++;
            else d++;
        }
    for (int i = 0; i < n; i++) {
        int first_a = 1, first_b = 1, ta = 0, tb = 0;
        for (int j = 0; j < n; j++) {
            if (a[j] == a[i]) {
                ta++;
                if (j < i) first_a = 0;
            }
            if (b[j] == b[i]) {
                tb++;
                if (j < i) first_b = 0;
            }
        }
        if (first_a) n1 += ta * (ta - 1) / 2.0;
        if (first_b) n2 += tb * (tb - 1) / 2.0;
    }
    const double n0 = n * (n - 1) / 2.0;
    return (c - d) / sqrt((n0 - n1) * (n0 - n2));
}

static void test_kendall_tau(void **state)
{
    (void)state;
    const double a3[] = {1, 2, 3}, b3[] = {1, 3, 2}, r3[] = {3, 2, 1};
    assert_near(sn_kendall_tau(a3, b3, 3), 1.0 / 3.0, 1e-15);
    assert_near(sn_kendall_tau(a3, a3, 3), 1.0, 1e-15);
    assert_near(sn_kendall_tau(a3, r3, 3), -1.0, 1e-15);
    const double a4[] = {1, 2, 2, 3}, b4[] = {1, 2, 3, 3};   /* scipy.stats.kendalltau: 0.8 */
    assert_near(sn_kendall_tau(a4, b4, 4), 0.8, 1e-15);
    const double flat[] = {2, 2, 2};
    assert_true(isnan(sn_kendall_tau(a3, flat, 3)));
    assert_true(isnan(sn_kendall_tau(a3, b3, 1)));

    sn_rng r;
    sn_rng_seed(&r, 7, 0);
    enum { N = 60 };
    double a[N], b[N];
    for (int t = 0; t < 20; t++) {
        for (int i = 0; i < N; i++) {
            a[i] = (double)sn_rng_below(&r, 1 + (uint64_t)t % 7);   /* many ties */
            b[i] = a[i] + (double)sn_rng_below(&r, 4);
        }
        if (t % 7 == 0) continue;   /* a constant: tau undefined */
        assert_near(sn_kendall_tau(a, b, N), kendall_brute(a, b, N), 1e-12);
    }
}

static void test_mape_rmse(void **state)
{
    (void)state;
    const double pred[] = {110, 90, 5, 7}, truth[] = {100, 100, 0, 10};
    /* (0.1 + 0.1 + 0.3) / 3, the zero truth skipped */
    assert_near(sn_mape(pred, truth, 4), 0.5 / 3.0, 1e-15);
    const double zeros[] = {0, 0};
    assert_true(isnan(sn_mape(pred, zeros, 2)));
    const double neg_p[] = {-90}, neg_t[] = {-100};
    assert_near(sn_mape(neg_p, neg_t, 1), 0.1, 1e-15);
    /* sqrt((100 + 100 + 25 + 9) / 4) */
    assert_near(sn_rmse(pred, truth, 4), sqrt(234.0 / 4.0), 1e-12);
    assert_true(isnan(sn_rmse(pred, truth, 0)));
}

#define EXPECT_ERR(call, word)                                                  \
    do {                                                                        \
        err[0] = '\0';                                                          \
        assert_int_equal((call), SN_ERR);                                       \
        if (!strstr(err, (word))) fail_msg("message '%s' lacks '%s'", err, (word)); \
        assert_null(strchr(err, '\n'));                                         \
    } while (0)

static void test_bad_inputs(void **state)
{
    (void)state;
    char err[256];
    double X[4 * 2] = {0, 1, 1, 0, 1, 1, 0, 0}, y[4] = {1, 2, 3, 4};
    sn_ridge rg = {0};
    if (sn_ridge_fit(&rg, X, y, 4, 2, 0.1, err, sizeof err) != SN_OK) fail_msg("%s", err);
    const double before = sn_ridge_predict(&rg, X);
    const double *w_before = rg.w;

    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 1, 2, 0.1, err, sizeof err), "at least 2 samples");
    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 4, 0, 0.1, err, sizeof err), "at least 1 feature");
    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 4, 2, 0.0, err, sizeof err), "lambda");
    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 4, 2, NAN, err, sizeof err), "lambda");
    y[2] = NAN;
    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 4, 2, 0.1, err, sizeof err), "y[2] is nan");
    y[2] = 3;
    X[5] = INFINITY;
    EXPECT_ERR(sn_ridge_fit(&rg, X, y, 4, 2, 0.1, err, sizeof err), "X[2][1] is inf");
    X[5] = 1;
    const double grid[] = {0.1, 1.0}, bad_grid[] = {0.1, -1.0};
    EXPECT_ERR(sn_ridge_fit_cv(&rg, X, y, 4, 2, grid, 2, 5, err, sizeof err), "5 folds");
    EXPECT_ERR(sn_ridge_fit_cv(&rg, X, y, 3, 2, grid, 2, 2, err, sizeof err), "leave 1");
    EXPECT_ERR(sn_ridge_fit_cv(&rg, X, y, 4, 2, bad_grid, 2, 2, err, sizeof err), "lambda");
    EXPECT_ERR(sn_ridge_fit_cv(&rg, X, y, 4, 2, grid, 0, 2, err, sizeof err), "no lambda");
    /* refused fits leave the model as it was */
    assert_ptr_equal(rg.w, w_before);
    assert_near(sn_ridge_predict(&rg, X), before, 0.0);
    sn_ridge_free(&rg);
    sn_ridge_free(&rg);
    sn_ridge_free(NULL);

    sn_space s;
    sn_space_default(&s);
    sn_subnet nets[3];
    sn_rng r;
    sn_rng_seed(&r, 8, 0);
    sample_nets(&s, &r, nets, 3);
    sn_predictor pr = {0};
    const double lambda = 0.1;
    EXPECT_ERR(sn_predictor_fit(&pr, &s, nets, y, 1, &lambda, 1, err, sizeof err),
               "at least 2 sub-networks");
    EXPECT_ERR(sn_predictor_fit(&pr, &s, nets, y, 3, &lambda, 0, err, sizeof err), "no lambda");
    y[1] = NAN;
    EXPECT_ERR(sn_predictor_fit(&pr, &s, nets, y, 3, &lambda, 1, err, sizeof err), "y[1] is nan");
    y[1] = 2;
    nets[2].embed = 100;
    EXPECT_ERR(sn_predictor_fit(&pr, &s, nets, y, 3, &lambda, 1, err, sizeof err),
               "sub-network 2");
    EXPECT_ERR(sn_predictor_fit(&pr, &s, nets, y, 2, grid, 2, err, sizeof err), "leave 1");
    assert_null(pr.ridge.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_one_hot),
        cmocka_unit_test(test_features_differ),
        cmocka_unit_test(test_ridge_reference),
        cmocka_unit_test(test_linear_recovery),
        cmocka_unit_test(test_fewer_samples_than_features),
        cmocka_unit_test(test_noisy_targets),
        cmocka_unit_test(test_kendall_tau),
        cmocka_unit_test(test_mape_rmse),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
