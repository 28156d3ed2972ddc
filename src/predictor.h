/* predictor.h: cheap predictors of a sub-network's objectives (accuracy or
 * loss, latency) fit on the sub-networks evaluated so far, and the measures
 * that report how well they rank unseen ones.
 *
 * A sub-network is encoded as a fixed-length feature vector (sn_features);
 * a ridge regression (sn_ridge) maps features to one objective.  The search
 * refits after every batch of evaluations, so a fit is cheap: a Cholesky
 * solve of size min(n, p) in double precision.
 */
#ifndef SN_PREDICTOR_H
#define SN_PREDICTOR_H

#include <stddef.h>

#include "src/arch.h"

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------
 * Layout of x, in order (all groups of a space have fixed positions):
 *   embed      n_embed entries: one-hot of the embed choice;
 *   depth      per stage st, max_depth[st] - min_depth[st] + 1 entries:
 *              one-hot of depth[st] - min_depth[st];
 *   blocks     per block slot (stage st, position j < max_depth[st]), in
 *              supernet order, n_heads entries then n_mlp entries: one-hot
 *              of the block's heads and MLP choices if the slot is kept
 *              (j < depth[st]), all zero if it is dropped;
 *   numeric    SN_FEATURES_NUMERIC entries in [0, 1]:
 *              params / params of the largest sub-network,
 *              MACs / MACs of the largest sub-network,
 *              log(params / min params) / log(max params / min params)
 *              (0 if the space has one size).
 * MACs make latency nearly linear and log-size makes accuracy nearly
 * linear; both are products of embed and block widths, which the one-hot
 * groups alone cannot express. */
#define SN_FEATURES_NUMERIC 3
/* Upper bound of sn_features_count over all valid spaces. */
#define SN_FEATURES_MAX \
    (SN_MAX_CHOICES + SN_MAX_BLOCKS + SN_MAX_BLOCKS * 2 * SN_MAX_CHOICES + SN_FEATURES_NUMERIC)

/* Length of the feature vector of space s (s valid). */
int sn_features_count(const sn_space *s);
/* Writes the features of n into x (sn_features_count(s) entries; the
 * output last, as sn_subnet_sample has it).  n must be valid in s
 * (sn_subnet_validate); a choice outside s is an internal error (SN_CHECK). */
void sn_features(const sn_space *s, const sn_subnet *n, double *x);

/* ------------------------------------------------------------------------
 * Ridge regression
 * ------------------------------------------------------------------------
 * Minimises ||z - (X - 1 m^T) w||^2 + lambda ||w||^2 where m holds the
 * column means of X and z = (y - mean y) / sd y: the intercept is not
 * penalised, targets are standardised (so one lambda grid suits every
 * objective), features are centred but not rescaled (the encoding already
 * keeps them in [0, 1]).  lambda is absolute, on the sum of squares.
 * Solved in double precision by Cholesky of X_c^T X_c + lambda I (p x p)
 * when n >= p, or of the kernel X_c X_c^T + lambda I (n x n) with
 * w = X_c^T alpha when n < p: the same w, from the smaller system. */
typedef struct sn_ridge {
    int p;            /* features */
    double *w;        /* (p) weights on centred features; owned */
    double *x_mean;   /* (p) feature means of the fit data; owned */
    double y_mean;    /* target mean */
    double y_scale;   /* target standard deviation (1 if the targets are constant) */
    double lambda;    /* the penalty used */
    double cv_rmse;   /* cross-validated RMSE of the chosen lambda (sn_ridge_fit_cv); NAN
                         after sn_ridge_fit */
} sn_ridge;

/* Decades 1e-4 .. 1e2: the grid sn_predictor_fit and callers of
 * sn_ridge_fit_cv use by default. */
#define SN_RIDGE_GRID_LEN 7
extern const double sn_ridge_lambda_grid[SN_RIDGE_GRID_LEN];
/* Folds of sn_predictor_fit's cross-validation (fewer if n is smaller). */
#define SN_RIDGE_FOLDS 5

/* Fits r to X (n, p) row-major and y (n).  r must be zero-initialised
 * (sn_ridge r = {0}) or hold an earlier fit, which is freed on success;
 * on error r is unchanged.  Needs n >= 2, p >= 1, lambda > 0 and finite X
 * and y; otherwise SN_ERR with a message naming the bad value. */
int sn_ridge_fit(sn_ridge *r, const double *X, const double *y, int n, int p, double lambda,
                 char *err, size_t errlen);
/* As sn_ridge_fit, choosing lambda among lambdas[0..n_lambdas) by k-fold
 * cross-validation (row i in fold i % k; RMSE of y over held-out rows; the
 * smallest wins, ties to the earlier lambda), then refitting on all rows.
 * Needs 2 <= k <= n and at least 2 training rows per fold. */
int sn_ridge_fit_cv(sn_ridge *r, const double *X, const double *y, int n, int p,
                    const double *lambdas, int n_lambdas, int k, char *err, size_t errlen);
/* Prediction for one feature vector x (r->p entries) of a fitted r. */
double sn_ridge_predict(const sn_ridge *r, const double *x);
/* Frees r's arrays and zeroes it (r may be NULL, or zero-initialised). */
void sn_ridge_free(sn_ridge *r);

/* ------------------------------------------------------------------------
 * Predictor over sub-networks
 * ------------------------------------------------------------------------ */
typedef struct sn_predictor {
    sn_space space;   /* the space the model was fit in (a copy) */
    int n_features;   /* sn_features_count(&space) */
    sn_ridge ridge;   /* owned */
} sn_predictor;

/* Fits p to objective values y (n) of sub-networks nets (n), each valid
 * in s.  One lambda fits with it; several are compared by
 * min(SN_RIDGE_FOLDS, n)-fold cross-validation (needs n >= 3).  p must be
 * zero-initialised or hold an earlier fit (freed on success; unchanged on
 * error).  SN_ERR with a message for an invalid sub-network (naming its
 * index) or any sn_ridge_fit error. */
int sn_predictor_fit(sn_predictor *p, const sn_space *s, const sn_subnet *nets,
                     const double *y, int n, const double *lambdas, int n_lambdas,
                     char *err, size_t errlen);
/* Predicted objective of net (valid in p->space).  Thread-safe. */
double sn_predictor_predict(const sn_predictor *p, const sn_subnet *net);
/* Frees p's model and zeroes it (p may be NULL). */
void sn_predictor_free(sn_predictor *p);

/* ------------------------------------------------------------------------
 * Quality on held-out evaluations
 * ------------------------------------------------------------------------ */
/* Kendall's tau-b of a and b (n each, finite): (concordant - discordant)
 * / sqrt((pairs - ties in a) (pairs - ties in b)), O(n^2).  NAN if n < 2
 * or either is constant. */
double sn_kendall_tau(const double *a, const double *b, int n);
/* Mean of |pred - truth| / |truth| as a fraction (0.05 is 5%) over the
 * entries whose truth is non-zero; zero truths are skipped.  NAN if none
 * is left. */
double sn_mape(const double *pred, const double *truth, int n);
/* sqrt(mean (pred - truth)^2); NAN if n < 1. */
double sn_rmse(const double *pred, const double *truth, int n);

#endif
