#include "src/predictor.h"

#include <math.h>
#include <string.h>

#include "src/util.h"

const double sn_ridge_lambda_grid[SN_RIDGE_GRID_LEN] = {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0};

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

int sn_features_count(const sn_space *s)
{
    int count = s->n_embed;
    for (int st = 0; st < s->n_stages; st++)
        count += s->max_depth[st] - s->min_depth[st] + 1 +
                 s->max_depth[st] * (s->n_heads + s->n_mlp);
    return count + SN_FEATURES_NUMERIC;
}

/* Index of v in choices[0..n); v must be there. */
static int choice_index(const int *choices, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (choices[i] == v) return i;
    sn_fatal(__FILE__, __LINE__, "sub-network choice not in the space (validate it first)");
}

void sn_features(const sn_space *s, const sn_subnet *n, double *x)
{
    SN_CHECK(n->n_stages == s->n_stages);
    memset(x, 0, (size_t)sn_features_count(s) * sizeof *x);
    double *at = x;
    at[choice_index(s->embed, s->n_embed, n->embed)] = 1.0;
    at += s->n_embed;
    for (int st = 0; st < s->n_stages; st++) {
        const int span = s->max_depth[st] - s->min_depth[st] + 1;
        const int d = n->depth[st] - s->min_depth[st];
        SN_CHECK(d >= 0 && d < span);
        at[d] = 1.0;
        at += span;
    }
    int kept = 0;   /* index of the next kept block of n */
    for (int st = 0; st < s->n_stages; st++) {
        for (int j = 0; j < s->max_depth[st]; j++) {
            if (j < n->depth[st]) {
                at[choice_index(s->heads, s->n_heads, n->heads[kept])] = 1.0;
                at[s->n_heads + choice_index(s->mlp, s->n_mlp, n->mlp[kept])] = 1.0;
                kept++;
            }
            at += s->n_heads + s->n_mlp;
        }
    }
    SN_CHECK(kept == n->n_blocks);

    sn_subnet big, small;
    sn_subnet_max(s, &big);
    sn_subnet_min(s, &small);
    const double params = (double)sn_subnet_params(s, n);
    const double max_params = (double)sn_subnet_params(s, &big);
    const double min_params = (double)sn_subnet_params(s, &small);
    at[0] = params / max_params;
    at[1] = (double)sn_subnet_macs(s, n) / (double)sn_subnet_macs(s, &big);
    at[2] = max_params > min_params ? log(params / min_params) / log(max_params / min_params)
                                    : 0.0;
}

/* ------------------------------------------------------------------------
 * Ridge regression
 * ------------------------------------------------------------------------ */

/* Checks the sizes and that X (n, p) and y (n) are finite. */
static int check_data(const double *X, const double *y, int n, int p, char *err, size_t errlen)
{
    if (n < 2) return sn_errf(err, errlen, "ridge fit: need at least 2 samples (got %d)", n);
    if (p < 1) return sn_errf(err, errlen, "ridge fit: need at least 1 feature (got %d)", p);
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            return sn_errf(err, errlen, "ridge fit: target y[%d] is %g (need finite)", i, y[i]);
        for (int j = 0; j < p; j++)
            if (!isfinite(X[(size_t)i * p + j]))
                return sn_errf(err, errlen, "ridge fit: feature X[%d][%d] is %g (need finite)",
                               i, j, X[(size_t)i * p + j]);
    }
    return SN_OK;
}

static int check_lambda(double lambda, char *err, size_t errlen)
{
    if (!(lambda > 0.0) || !isfinite(lambda))
        return sn_errf(err, errlen, "ridge fit: lambda must be positive and finite (got %g)",
                       lambda);
    return SN_OK;
}

/* Everything of a fit that does not depend on lambda: centred features,
 * standardised targets and the Gram matrix of the smaller system. */
typedef struct fit_data {
    int n, p, m;       /* m = min(n, p): the size of the system */
    double *xc;        /* (n, p) centred features */
    double *x_mean;    /* (p) */
    double y_mean, y_scale;
    double *gram;      /* (m, m): X_c^T X_c if n >= p, else X_c X_c^T */
    double *rhs;       /* (m): X_c^T z if n >= p, else z */
    double *chol;      /* (m, m) work: the factor of gram + lambda I */
    double *sol;       /* (m) work */
} fit_data;

static void fit_data_free(fit_data *d)
{
    sn_free(d->xc);
    sn_free(d->x_mean);
    sn_free(d->gram);
    sn_free(d->rhs);
    sn_free(d->chol);
    sn_free(d->sol);
    memset(d, 0, sizeof *d);
}

/* X, y already checked.  SN_ERR only when out of memory. */
static int fit_data_init(fit_data *d, const double *X, const double *y, int n, int p, char *err,
                         size_t errlen)
{
    memset(d, 0, sizeof *d);
    const int m = n < p ? n : p;
    d->n = n;
    d->p = p;
    d->m = m;
    d->xc = sn_alloc((size_t)n * p * sizeof(double));
    d->x_mean = sn_calloc((size_t)p * sizeof(double));
    d->gram = sn_alloc((size_t)m * m * sizeof(double));
    d->rhs = sn_calloc((size_t)m * sizeof(double));
    d->chol = sn_alloc((size_t)m * m * sizeof(double));
    d->sol = sn_alloc((size_t)m * sizeof(double));
    double *z = sn_alloc((size_t)n * sizeof(double));   /* (n) standardised targets */
    if (!d->xc || !d->x_mean || !d->gram || !d->rhs || !d->chol || !d->sol || !z) {
        sn_free(z);
        fit_data_free(d);
        return sn_errf(err, errlen, "ridge fit: out of memory for %d samples of %d features",
                       n, p);
    }

    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) d->x_mean[j] += X[(size_t)i * p + j];
    for (int j = 0; j < p; j++) d->x_mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++)
            d->xc[(size_t)i * p + j] = X[(size_t)i * p + j] - d->x_mean[j];

    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += y[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (y[i] - mean) * (y[i] - mean);
    const double sd = sqrt(var / n);
    d->y_mean = mean;
    d->y_scale = sd > 0.0 ? sd : 1.0;
    for (int i = 0; i < n; i++) z[i] = (y[i] - mean) / d->y_scale;

    const double *xc = d->xc;
    if (n >= p) {
        for (int a = 0; a < p; a++)
            for (int b = 0; b <= a; b++) {
                double sum = 0.0;
                for (int i = 0; i < n; i++) sum += xc[(size_t)i * p + a] * xc[(size_t)i * p + b];
                d->gram[(size_t)a * m + b] = d->gram[(size_t)b * m + a] = sum;
            }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++) d->rhs[j] += xc[(size_t)i * p + j] * z[i];
    } else {
        for (int a = 0; a < n; a++)
            for (int b = 0; b <= a; b++) {
                double sum = 0.0;
                for (int j = 0; j < p; j++) sum += xc[(size_t)a * p + j] * xc[(size_t)b * p + j];
                d->gram[(size_t)a * m + b] = d->gram[(size_t)b * m + a] = sum;
            }
        memcpy(d->rhs, z, (size_t)n * sizeof(double));
    }
    sn_free(z);
    return SN_OK;
}

/* In place: the lower triangle of a (m, m) becomes L with L L^T = a.
 * SN_ERR if a pivot is not positive. */
static int cholesky(double *a, int m)
{
    for (int j = 0; j < m; j++) {
        double diag = a[(size_t)j * m + j];
        for (int k = 0; k < j; k++) diag -= a[(size_t)j * m + k] * a[(size_t)j * m + k];
        if (!(diag > 0.0)) return SN_ERR;
        const double ljj = sqrt(diag);
        a[(size_t)j * m + j] = ljj;
        for (int i = j + 1; i < m; i++) {
            double v = a[(size_t)i * m + j];
            for (int k = 0; k < j; k++) v -= a[(size_t)i * m + k] * a[(size_t)j * m + k];
            a[(size_t)i * m + j] = v / ljj;
        }
    }
    return SN_OK;
}

/* Solves L L^T x = x in place, L the lower triangle of l (m, m). */
static void cholesky_solve(double *x, const double *l, int m)
{
    for (int i = 0; i < m; i++) {
        double v = x[i];
        for (int k = 0; k < i; k++) v -= l[(size_t)i * m + k] * x[k];
        x[i] = v / l[(size_t)i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) {
        double v = x[i];
        for (int k = i + 1; k < m; k++) v -= l[(size_t)k * m + i] * x[k];
        x[i] = v / l[(size_t)i * m + i];
    }
}

/* Weights w (p) for one lambda > 0. */
static int fit_data_solve(fit_data *d, double lambda, double *w, char *err, size_t errlen)
{
    const int m = d->m, p = d->p;
    memcpy(d->chol, d->gram, (size_t)m * m * sizeof(double));
    for (int i = 0; i < m; i++) d->chol[(size_t)i * m + i] += lambda;
    if (cholesky(d->chol, m) != SN_OK)
        return sn_errf(err, errlen,
                       "ridge fit: Cholesky failed (lambda %g too small for %d samples of %d "
                       "features); use a larger lambda",
                       lambda, d->n, p);
    memcpy(d->sol, d->rhs, (size_t)m * sizeof(double));
    cholesky_solve(d->sol, d->chol, m);
    if (d->n >= p) {
        memcpy(w, d->sol, (size_t)p * sizeof(double));
    } else {
        memset(w, 0, (size_t)p * sizeof(double));
        for (int i = 0; i < d->n; i++)
            for (int j = 0; j < p; j++) w[j] += d->xc[(size_t)i * p + j] * d->sol[i];
    }
    return SN_OK;
}

static double predict_raw(const double *w, const double *x_mean, int p, double y_mean,
                          double y_scale, const double *x)
{
    double dot = 0.0;
    for (int j = 0; j < p; j++) dot += w[j] * (x[j] - x_mean[j]);
    return y_mean + y_scale * dot;
}

int sn_ridge_fit(sn_ridge *r, const double *X, const double *y, int n, int p, double lambda,
                 char *err, size_t errlen)
{
    if (check_data(X, y, n, p, err, errlen) != SN_OK) return SN_ERR;
    if (check_lambda(lambda, err, errlen) != SN_OK) return SN_ERR;
    fit_data d;
    if (fit_data_init(&d, X, y, n, p, err, errlen) != SN_OK) return SN_ERR;
    sn_ridge out = {.p = p, .y_mean = d.y_mean, .y_scale = d.y_scale, .lambda = lambda,
                    .cv_rmse = NAN};
    out.w = sn_alloc((size_t)p * sizeof(double));
    out.x_mean = sn_alloc((size_t)p * sizeof(double));
    int rc = SN_ERR;
    if (!out.w || !out.x_mean) {
        sn_errf(err, errlen, "ridge fit: out of memory for %d features", p);
        goto done;
    }
    if (fit_data_solve(&d, lambda, out.w, err, errlen) != SN_OK) goto done;
    memcpy(out.x_mean, d.x_mean, (size_t)p * sizeof(double));
    sn_ridge_free(r);
    *r = out;
    rc = SN_OK;
done:
    if (rc != SN_OK) sn_ridge_free(&out);
    fit_data_free(&d);
    return rc;
}

int sn_ridge_fit_cv(sn_ridge *r, const double *X, const double *y, int n, int p,
                    const double *lambdas, int n_lambdas, int k, char *err, size_t errlen)
{
    if (check_data(X, y, n, p, err, errlen) != SN_OK) return SN_ERR;
    if (n_lambdas < 1)
        return sn_errf(err, errlen, "ridge cross-validation: no lambda to choose from");
    for (int l = 0; l < n_lambdas; l++)
        if (check_lambda(lambdas[l], err, errlen) != SN_OK) return SN_ERR;
    if (k < 2 || k > n)
        return sn_errf(err, errlen, "ridge cross-validation: %d folds for %d samples (need 2..%d)",
                       k, n, n);
    const int largest_fold = (n + k - 1) / k;
    if (n - largest_fold < 2)
        return sn_errf(err, errlen,
                       "ridge cross-validation: %d folds of %d samples leave %d to fit on "
                       "(need 2)",
                       k, n, n - largest_fold);

    int rc = SN_ERR;
    double *xtr = sn_alloc((size_t)n * p * sizeof(double));   /* (n, p) training rows */
    double *ytr = sn_alloc((size_t)n * sizeof(double));
    double *w = sn_alloc((size_t)p * sizeof(double));
    double *sse = sn_calloc((size_t)n_lambdas * sizeof(double));   /* per lambda */
    if (!xtr || !ytr || !w || !sse) {
        sn_errf(err, errlen, "ridge cross-validation: out of memory for %d samples of %d features",
                n, p);
        goto done;
    }
    for (int f = 0; f < k; f++) {
        int ntr = 0;
        for (int i = 0; i < n; i++) {
            if (i % k == f) continue;
            memcpy(xtr + (size_t)ntr * p, X + (size_t)i * p, (size_t)p * sizeof(double));
            ytr[ntr++] = y[i];
        }
        fit_data d;
        if (fit_data_init(&d, xtr, ytr, ntr, p, err, errlen) != SN_OK) goto done;
        for (int l = 0; l < n_lambdas; l++) {
            if (fit_data_solve(&d, lambdas[l], w, err, errlen) != SN_OK) {
                fit_data_free(&d);
                goto done;
            }
            for (int i = f; i < n; i += k) {
                const double e =
                    predict_raw(w, d.x_mean, p, d.y_mean, d.y_scale, X + (size_t)i * p) - y[i];
                sse[l] += e * e;
            }
        }
        fit_data_free(&d);
    }
    int best = 0;
    for (int l = 1; l < n_lambdas; l++)
        if (sse[l] < sse[best]) best = l;
    if (sn_ridge_fit(r, X, y, n, p, lambdas[best], err, errlen) != SN_OK) goto done;
    r->cv_rmse = sqrt(sse[best] / n);
    rc = SN_OK;
done:
    sn_free(xtr);
    sn_free(ytr);
    sn_free(w);
    sn_free(sse);
    return rc;
}

double sn_ridge_predict(const sn_ridge *r, const double *x)
{
    SN_CHECK(r->w != NULL);
    return predict_raw(r->w, r->x_mean, r->p, r->y_mean, r->y_scale, x);
}

void sn_ridge_free(sn_ridge *r)
{
    if (!r) return;
    sn_free(r->w);
    sn_free(r->x_mean);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------
 * Predictor over sub-networks
 * ------------------------------------------------------------------------ */

int sn_predictor_fit(sn_predictor *p, const sn_space *s, const sn_subnet *nets,
                     const double *y, int n, const double *lambdas, int n_lambdas,
                     char *err, size_t errlen)
{
    char why[256];
    if (sn_space_validate(s, why, sizeof why) != SN_OK)
        return sn_errf(err, errlen, "predictor fit: %s", why);
    if (n < 2)
        return sn_errf(err, errlen, "predictor fit: need at least 2 sub-networks (got %d)", n);
    if (n_lambdas < 1) return sn_errf(err, errlen, "predictor fit: no lambda given");
    for (int i = 0; i < n; i++)
        if (sn_subnet_validate(s, &nets[i], why, sizeof why) != SN_OK)
            return sn_errf(err, errlen, "predictor fit: sub-network %d: %s", i, why);

    const int nf = sn_features_count(s);
    double *X = sn_alloc((size_t)n * nf * sizeof(double));   /* (n, nf) */
    if (!X)
        return sn_errf(err, errlen, "predictor fit: out of memory for %d sub-networks of %d "
                       "features", n, nf);
    for (int i = 0; i < n; i++) sn_features(s, &nets[i], X + (size_t)i * nf);
    sn_ridge fresh = {0};
    const int folds = n < SN_RIDGE_FOLDS ? n : SN_RIDGE_FOLDS;
    const int rc = n_lambdas == 1
                       ? sn_ridge_fit(&fresh, X, y, n, nf, lambdas[0], err, errlen)
                       : sn_ridge_fit_cv(&fresh, X, y, n, nf, lambdas, n_lambdas, folds, err,
                                         errlen);
    sn_free(X);
    if (rc != SN_OK) return SN_ERR;
    sn_ridge_free(&p->ridge);
    p->space = *s;
    p->n_features = nf;
    p->ridge = fresh;
    return SN_OK;
}

double sn_predictor_predict(const sn_predictor *p, const sn_subnet *net)
{
    double x[SN_FEATURES_MAX];
    SN_CHECK(p->n_features <= SN_FEATURES_MAX);
    sn_features(&p->space, net, x);
    return sn_ridge_predict(&p->ridge, x);
}

void sn_predictor_free(sn_predictor *p)
{
    if (!p) return;
    sn_ridge_free(&p->ridge);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------------
 * Quality measures
 * ------------------------------------------------------------------------ */

static int sign(double v) { return (v > 0.0) - (v < 0.0); }

double sn_kendall_tau(const double *a, const double *b, int n)
{
    if (n < 2) return NAN;
    int64_t score = 0, ties_a = 0, ties_b = 0;   /* concordant - discordant; tied pairs */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const int da = sign(a[i] - a[j]), db = sign(b[i] - b[j]);
            score += da * db;
            ties_a += da == 0;
            ties_b += db == 0;
        }
    const int64_t pairs = (int64_t)n * (n - 1) / 2;
    const double denom = sqrt((double)(pairs - ties_a) * (double)(pairs - ties_b));
    return denom > 0.0 ? (double)score / denom : NAN;
}

double sn_mape(const double *pred, const double *truth, int n)
{
    double sum = 0.0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (truth[i] == 0.0) continue;
        sum += fabs(pred[i] - truth[i]) / fabs(truth[i]);
        used++;
    }
    return used ? sum / used : NAN;
}

double sn_rmse(const double *pred, const double *truth, int n)
{
    if (n < 1) return NAN;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (pred[i] - truth[i]) * (pred[i] - truth[i]);
    return sqrt(sum / n);
}
