/* `supernest search`: multi-objective search of a trained supernet for the
 * sub-networks that suit this machine.
 *
 * World rank 0 coordinates (mpi/coord); the other ranks evaluate
 * candidates: accuracy and loss (bits per byte for the language model) on
 * the held-out validation split, and latency measured on this machine.
 * The search follows LINAS: an initial population is evaluated for real;
 * then every iteration fits ridge predictors of the measured objectives
 * to all evaluations so far (src/predictor), runs NSGA-II (src/search) for
 * many generations on predicted objectives, and sends only the most
 * promising new candidates for real evaluation.  Parameters and MACs are
 * exact.  The archive is saved after every iteration (io/search), so
 * --resume continues an interrupted search.  At the end: pareto.csv, a
 * plot (gnuplot), the front re-evaluated on the test split, and a summary.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/ckpt.h"
#include "io/data.h"
#include "io/latency.h"
#include "io/runlog.h"
#include "io/search.h"
#include "io/text.h"
#include "mpi/coord.h"
#include "mpi/grid.h"
#include "mpi/pipeline.h"
#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/arch.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/evaluate.h"
#include "src/latency.h"
#include "src/layout.h"
#include "src/predictor.h"
#include "src/rng.h"
#include "src/search.h"
#include "src/tensor.h"
#include "src/util.h"

enum { STREAM_SEARCH = 0x5ea7 };

/* What an evaluator measures of each candidate (io/search "values"). */
enum { V_ACC, V_LOSS, V_LATENCY, N_VALUES };
static const char *VALUE_NAMES = "val_acc,val_loss,latency_ms";

typedef enum obj_kind { OBJ_ACC, OBJ_LOSS, OBJ_LATENCY, OBJ_PARAMS, OBJ_MACS } obj_kind;
#define MAX_OBJ 4

typedef struct search_args {
    const char *checkpoint, *objectives, *out, *data, *blis_arch, *latency_table;
    int64_t iterations, init, per_iter, population, generations, eval_size, latency_batch;
    int64_t latency_reps, latency_threads, threads, seed, top, debug_fail_rank, pp, sp;
    double mutation, max_latency, max_params, max_macs;
    bool resume, quiet;
} search_args;

static const char *USAGE =
    "supernest search --checkpoint FILE|DIR [--objectives acc,latency] [--iterations N]\n"
    "                        [--max-latency-ms X] [--max-params N] [--max-macs N] [--out DIR]\n"
    "                        [--resume] [options]\n"
    "       mpirun -np N supernest search ...   (rank 0 coordinates, the others evaluate)";

typedef struct search_ctx {
    search_args *a;
    const sn_mpi_info *mpi;
    int nt;
    bool lm;
    sn_model *model;
    sn_file_info *info;
    char path[4096];
    int n_obj;
    obj_kind obj[MAX_OBJ];
    bool need_latency;              /* an objective or a constraint */
    /* evaluation (every rank that evaluates) */
    sn_images images;               /* image task: train file (val split), test file */
    sn_images test;
    int64_t *val_idx, n_val, *train_idx, n_train;
    sn_text text;
    sn_acts *acts;
    sn_attn_engine *attn;
    int64_t batch;
    float *tokens;
    int32_t *ids, *labels;
    sn_latency_bench *bench;        /* timing candidates directly */
    sn_latency_table *table;        /* or predicting them (--latency-table) */
    /* an evaluator group of P x S > 1 ranks */
    sn_coord *co;
    sn_layout layout;
    sn_grid grid;
    bool grid_up;
    sn_trainer tr;
    bool tr_up;
    sn_dist dist;
    bool dist_up;
    void *g_input;                  /* this rank's tokens of one group batch */
    int32_t *g_labels;
    int64_t *g_ids;
} search_ctx;

static void ctx_free(search_ctx *c)
{
    if (c->dist_up) sn_dist_free(&c->dist);
    if (c->tr_up) sn_trainer_free(&c->tr);
    if (c->grid_up) sn_grid_free(&c->grid);
    sn_free(c->g_input);
    sn_free(c->g_labels);
    sn_free(c->g_ids);
    sn_latency_bench_destroy(c->bench);
    sn_latency_table_destroy(c->table);
    sn_acts_destroy(c->acts);
    sn_ring_destroy(c->attn);
    sn_free(c->tokens);
    sn_free(c->ids);
    sn_free(c->labels);
    sn_free(c->val_idx);
    sn_free(c->train_idx);
    sn_images_free(&c->images);
    sn_images_free(&c->test);
    sn_text_free(&c->text);
    sn_model_destroy(c->model);
    free(c->info);
}

/* Parses --objectives (names: acc, loss, latency, params, macs). */
static int parse_objectives(search_ctx *c, char *err, size_t errlen)
{
    static const struct { const char *name; obj_kind k; } names[] = {
        {"acc", OBJ_ACC}, {"loss", OBJ_LOSS}, {"latency", OBJ_LATENCY},
        {"params", OBJ_PARAMS}, {"macs", OBJ_MACS},
    };
    char buf[256];
    snprintf(buf, sizeof buf, "%s", c->a->objectives);
    c->n_obj = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(names[i].name, t) != 0) i++;
        if (i == sizeof names / sizeof names[0])
            return sn_errf(err, errlen, "--objectives: unknown objective '%s' (acc, loss, "
                                        "latency, params, macs)", t);
        for (int j = 0; j < c->n_obj; j++)
            if (c->obj[j] == names[i].k)
                return sn_errf(err, errlen, "--objectives: '%s' is given twice", t);
        if (c->n_obj == MAX_OBJ)
            return sn_errf(err, errlen, "--objectives: at most %d objectives", MAX_OBJ);
        c->obj[c->n_obj++] = names[i].k;
    }
    if (c->n_obj < 2)
        return sn_errf(err, errlen, "--objectives '%s': give at least two (e.g. acc,latency)",
                       c->a->objectives);
    c->need_latency = c->a->max_latency > 0;
    for (int j = 0; j < c->n_obj; j++) c->need_latency |= c->obj[j] == OBJ_LATENCY;
    return SN_OK;
}

/* ---- evaluating one candidate ------------------------------------------- */

/* Loads the evaluation data and workspaces of this rank. */
static int setup_eval(search_ctx *c, char *err, size_t errlen)
{
    search_args *a = c->a;
    const sn_space *s = &c->model->space;
    c->batch = c->lm ? 8 : 256;
    c->acts = sn_eval_acts(s, c->batch, &c->attn);
    const int64_t T = s->n_tokens;
    c->tokens = sn_alloc((size_t)(c->batch * T * s->token_dim) * sizeof(float));
    c->ids = sn_alloc((size_t)(c->batch * T) * sizeof(int32_t));
    c->labels = sn_alloc((size_t)(c->batch * T) * sizeof(int32_t));
    if (!c->acts || !c->tokens || !c->ids || !c->labels)
        return sn_errf(err, errlen, "out of memory allocating the evaluation workspace");
    if (c->need_latency && a->latency_table) {
        sn_latency_info li;
        if (sn_latency_load(sn_mpi_self(), a->latency_table, &c->table, &li, err, errlen) != SN_OK)
            return SN_ERR;
        if (!sn_space_equal(&c->table->space, s))
            return sn_errf(err, errlen, "%s: a latency table of another search space than %s",
                           a->latency_table, c->path);
    } else if (c->need_latency) {
        c->bench = sn_latency_bench_create(s, a->latency_batch, c->attn, (uint64_t)a->seed);
        if (!c->bench) return sn_errf(err, errlen, "out of memory allocating the latency bench");
    }
    if (c->lm) {
        const char *data = a->data ? a->data : SN_TEXT_DEFAULT_PATH;
        return sn_text_load(data, T, &c->text, err, errlen);
    }
    const char *data = a->data ? a->data : "/usr/share/datasets/fashion-mnist";
    if (c->info->val_size <= 0)
        return sn_errf(err, errlen, "%s records no validation split; search evaluates on it "
                                    "and never on the test split", c->path);
    if (sn_images_load_dir(data, "train", &c->images, err, errlen) != SN_OK ||
        sn_images_load_dir(data, "test", &c->test, err, errlen) != SN_OK)
        return SN_ERR;
    if (c->images.rows != c->info->image_rows || c->images.cols != c->info->image_cols)
        return sn_errf(err, errlen, "%s: images are %dx%d, %s expects %dx%d", data,
                       c->images.rows, c->images.cols, c->path, c->info->image_rows,
                       c->info->image_cols);
    return sn_split_indices(c->images.n, c->info->val_size, c->info->seed, &c->train_idx,
                            &c->n_train, &c->val_idx, &c->n_val, err, errlen);
}

/* Accuracy and loss of net on the first --eval-size examples of the
 * validation split (test: the whole test split). */
static sn_eval_data eval_data(const search_ctx *c)
{
    return (sn_eval_data){.train = &c->images, .test = &c->test, .val_idx = c->val_idx,
                          .n_val = c->n_val, .patch = c->info->patch,
                          .norm = {c->info->norm_mean, c->info->norm_std},
                          .text = c->lm ? &c->text : NULL, .seq_len = c->model->space.n_tokens};
}

/* Validation examples an evaluation uses: the first --eval-size. */
static int64_t val_count(const search_ctx *c, const sn_eval_data *d)
{
    int64_t n = sn_eval_count(d, false);
    return c->a->eval_size > 0 && c->a->eval_size < n ? c->a->eval_size : n;
}

static sn_eval_result eval_split(search_ctx *c, const sn_subnet *net, bool test)
{
    const sn_eval_data d = eval_data(c);
    sn_eval_result r = sn_evaluate_split(c->nt, c->model, c->acts, c->attn, c->batch, net, &d,
                                         test, 0, test ? sn_eval_count(&d, true) : val_count(c, &d),
                                         c->tokens, c->ids, c->labels);
    if (c->lm) r.loss /= log(2.0); /* bits per byte */
    return r;
}

/* A group streams each batch of validation sequences through its stages
 * in 2 micro-batches per stage, of 16 images or 2 text windows each. */
enum { GROUP_MICRO_PER_STAGE = 2 };

static int64_t group_mb(const search_ctx *c) { return c->lm ? 2 : 16; }

/* Sets up this rank's part of its evaluator group: the P x S grid on the
 * group's communicator, the stage's shard and workspaces. */
static int setup_group(search_ctx *c, char *err, size_t errlen)
{
    const search_args *a = c->a;
    const sn_space *s = &c->model->space;
    const int64_t M = GROUP_MICRO_PER_STAGE * a->pp, B = M * group_mb(c);
    c->layout = (sn_layout){.dp = 1, .pp = (int)a->pp, .sp = (int)a->sp};
    if (sn_grid_create(c->co->comm, &c->layout, &c->grid, err, errlen) != SN_OK) return SN_ERR;
    c->grid_up = true;
    sn_train_opts to;
    sn_train_opts_default(&to);
    to.threads = c->nt;
    if (sn_trainer_init(&c->tr, c->model, 0, &to, err, errlen) != SN_OK) return SN_ERR;
    c->tr_up = true;
    sn_dist_opts dopt = {.micro = (int)M, .batch = B, .ring = SN_RING_PLAIN,
                         .bucket_bytes = 1 << 20};
    if (sn_dist_init(&c->dist, &c->grid, &c->tr, &dopt, err, errlen) != SN_OK) return SN_ERR;
    c->dist_up = true;
    const int64_t tl = c->dist.sh.tl;
    const size_t in = c->lm ? sizeof(int32_t) : (size_t)s->token_dim * sizeof(float);
    c->g_input = sn_alloc((size_t)(B * tl) * in);
    c->g_labels = sn_alloc((size_t)(B * tl) * sizeof(int32_t));
    c->g_ids = sn_alloc((size_t)B * sizeof(int64_t));
    if (!c->g_input || !c->g_labels || !c->g_ids) return sn_errf(err, errlen, "out of memory");
    return SN_OK;
}

/* eval_split's validation part on the whole group (collective over it):
 * every rank builds its tokens and labels of each batch itself. */
static sn_eval_result group_eval(search_ctx *c, const sn_subnet *net)
{
    const sn_space *s = &c->model->space;
    sn_dist *d = &c->dist;
    const int64_t B = d->b_local, tl = d->sh.tl, T = s->n_tokens;
    const sn_eval_data ed = eval_data(c);
    const int64_t n = val_count(c, &ed);
    double loss = 0.0;
    int64_t correct = 0, rows = 0;
    for (int64_t at = 0; at < n; at += B) {
        const int64_t b = n - at < B ? n - at : B;
        if (c->lm) {
            for (int64_t i = 0; i < b; i++)
                c->g_ids[i] = sn_text_eval_start(&c->text, SN_TEXT_VAL, T, at + i);
            sn_text_batch(&c->text, c->g_ids, b, T, d->pos, tl, c->g_input, c->g_labels);
        } else {
            sn_images_batch_at(&c->images, c->val_idx + at, b, ed.patch, ed.norm, d->pos, tl,
                               c->g_input, c->g_labels);
        }
        double l;
        int64_t ok, r;
        sn_dist_eval(d, net, c->g_input, c->g_labels, b, &l, &ok, &r);
        loss += l;
        correct += ok;
        rows += r;
    }
    sn_eval_result e = sn_eval_result_of(loss, (double)correct, rows);
    if (c->lm) e.loss /= log(2.0); /* bits per byte */
    return e;
}

/* sn_eval_fn: the values an evaluator reports for one candidate. */
static int eval_candidate(void *ctx, const sn_subnet *net, double *v, char *err, size_t errlen)
{
    search_ctx *c = ctx;
    if (c->a->debug_fail_rank == c->mpi->rank)
        return sn_errf(err, errlen, "injected failure (--debug-fail-rank %d)", c->mpi->rank);
    sn_eval_result r;
    if (c->dist_up) {
        sn_coord_group_send(c->co, net, 0);
        r = group_eval(c, net);
    } else {
        r = eval_split(c, net, false);
    }
    if (r.n <= 0) return sn_errf(err, errlen, "the validation split is empty");
    v[V_ACC] = r.accuracy;
    v[V_LOSS] = r.loss;
    v[V_LATENCY] = NAN;
    if (c->table) {
        v[V_LATENCY] = sn_latency_predict(c->table, net);
    } else if (c->need_latency &&
               sn_latency_measure_subnets(c->bench, net, 1, (int)c->a->latency_threads,
                                          (int)c->a->latency_reps, 2, &v[V_LATENCY], err,
                                          errlen) != SN_OK) {
        return SN_ERR;
    }
    return SN_OK;
}

/* ---- objectives ------------------------------------------------------------ */

/* Objective j of a sub-network (all minimised): from measured values, or
 * (v NULL) from the predictors. */
typedef struct predictors {
    bool up;
    sn_predictor acc, loss, lat;
} predictors;

static double objective(const search_ctx *c, int j, const sn_subnet *net, const double *v,
                        const predictors *p)
{
    const sn_space *s = &c->model->space;
    switch (c->obj[j]) {
    case OBJ_ACC: return -(v ? v[V_ACC] : sn_predictor_predict(&p->acc, net));
    case OBJ_LOSS: return v ? v[V_LOSS] : sn_predictor_predict(&p->loss, net);
    case OBJ_LATENCY: return v ? v[V_LATENCY] : sn_predictor_predict(&p->lat, net);
    case OBJ_PARAMS: return (double)sn_subnet_params(s, net);
    case OBJ_MACS: return (double)sn_subnet_macs(s, net);
    }
    return NAN;
}

/* How far net breaks the constraints (0: feasible), relative to each limit. */
static double violation(const search_ctx *c, const sn_subnet *net, const double *v,
                        const predictors *p)
{
    const search_args *a = c->a;
    const sn_space *s = &c->model->space;
    double over = 0.0;
    if (a->max_latency > 0) {
        double lat = v ? v[V_LATENCY] : sn_predictor_predict(&p->lat, net);
        if (lat > a->max_latency) over += (lat - a->max_latency) / a->max_latency;
    }
    if (a->max_params > 0) {
        double x = (double)sn_subnet_params(s, net);
        if (x > a->max_params) over += (x - a->max_params) / a->max_params;
    }
    if (a->max_macs > 0) {
        double x = (double)sn_subnet_macs(s, net);
        if (x > a->max_macs) over += (x - a->max_macs) / a->max_macs;
    }
    return over;
}

static const char *obj_name(obj_kind k, bool lm)
{
    switch (k) {
    case OBJ_ACC: return "val_acc";
    case OBJ_LOSS: return lm ? "val_bpb" : "val_loss";
    case OBJ_LATENCY: return "latency_ms";
    case OBJ_PARAMS: return "params";
    case OBJ_MACS: return "macs";
    }
    return "?";
}

/* ---- the archive ------------------------------------------------------------ */

typedef struct archive {
    sn_search_state st;
    sn_subnet *nets;            /* (st.n) parsed */
    int cap;
} archive;

static int archive_add(archive *ar, const sn_subnet *net, const double *v, int iteration,
                       char *err, size_t errlen)
{
    char name[SN_SUBNET_STRLEN];
    sn_subnet_format(net, name, sizeof name);
    if (ar->st.n + 1 > ar->cap) {
        int cap = ar->cap ? 2 * ar->cap : 64;
        sn_subnet *n = realloc(ar->nets, (size_t)cap * sizeof *n);
        if (!n) return sn_errf(err, errlen, "out of memory growing the archive");
        ar->nets = n;
        ar->cap = cap;
    }
    ar->nets[ar->st.n] = *net;
    return sn_search_add(&ar->st, name, v, iteration, err, errlen);
}

static bool archive_has(const archive *ar, const sn_subnet *net)
{
    for (int i = 0; i < ar->st.n; i++)
        if (sn_subnet_equal(&ar->nets[i], net)) return true;
    return false;
}

/* Real objectives (n, m) and violations (n) of the archive. */
static void archive_objectives(const search_ctx *c, const archive *ar, double *obj, double *viol)
{
    for (int i = 0; i < ar->st.n; i++) {
        const double *v = ar->st.values + (size_t)i * N_VALUES;
        for (int j = 0; j < c->n_obj; j++)
            obj[(size_t)i * c->n_obj + j] = objective(c, j, &ar->nets[i], v, NULL);
        viol[i] = violation(c, &ar->nets[i], v, NULL);
    }
}

/* ---- the search ------------------------------------------------------------ */

static int fit_one(const search_ctx *c, const archive *ar, int value, sn_predictor *p, char *err,
                   size_t errlen)
{
    const int n = ar->st.n;
    double *y = malloc((size_t)n * sizeof *y);
    if (!y) return sn_errf(err, errlen, "out of memory");
    for (int i = 0; i < n; i++) y[i] = ar->st.values[(size_t)i * N_VALUES + value];
    sn_predictor_free(p);
    int rc = sn_predictor_fit(p, &c->model->space, ar->nets, y, n, sn_ridge_lambda_grid,
                              SN_RIDGE_GRID_LEN, err, errlen);
    free(y);
    return rc;
}

static int fit_predictors(const search_ctx *c, const archive *ar, predictors *p, char *err,
                          size_t errlen)
{
    for (int j = 0; j < c->n_obj; j++) {
        int rc = SN_OK;
        if (c->obj[j] == OBJ_ACC) rc = fit_one(c, ar, V_ACC, &p->acc, err, errlen);
        if (c->obj[j] == OBJ_LOSS) rc = fit_one(c, ar, V_LOSS, &p->loss, err, errlen);
        if (rc != SN_OK) return SN_ERR;
    }
    if (c->need_latency && fit_one(c, ar, V_LATENCY, &p->lat, err, errlen) != SN_OK)
        return SN_ERR;
    p->up = true;
    return SN_OK;
}

static void predictors_free(predictors *p)
{
    sn_predictor_free(&p->acc);
    sn_predictor_free(&p->loss);
    sn_predictor_free(&p->lat);
}

/* A population of sub-networks with (real or predicted) objectives. */
typedef struct pop {
    int n, cap;
    sn_subnet *net;
    double *obj, *viol, *crowd;
    int *rank;
} pop;

static int pop_reserve(pop *p, int cap, int m)
{
    if (cap <= p->cap) return SN_OK;
    sn_subnet *net = realloc(p->net, (size_t)cap * sizeof *net);
    if (net) p->net = net;
    double *obj = realloc(p->obj, (size_t)cap * m * sizeof *obj);
    if (obj) p->obj = obj;
    double *viol = realloc(p->viol, (size_t)cap * sizeof *viol);
    if (viol) p->viol = viol;
    double *crowd = realloc(p->crowd, (size_t)cap * sizeof *crowd);
    if (crowd) p->crowd = crowd;
    int *rank = realloc(p->rank, (size_t)cap * sizeof *rank);
    if (rank) p->rank = rank;
    if (!net || !obj || !viol || !crowd || !rank) return SN_ERR;
    p->cap = cap;
    return SN_OK;
}

static void pop_free(pop *p)
{
    free(p->net);
    free(p->obj);
    free(p->viol);
    free(p->crowd);
    free(p->rank);
    memset(p, 0, sizeof *p);
}

/* Appends net with objectives from v (measured) or the predictors. */
static void pop_push(const search_ctx *c, pop *p, const sn_subnet *net, const double *v,
                     const predictors *pr)
{
    SN_CHECK(p->n < p->cap);
    p->net[p->n] = *net;
    for (int j = 0; j < c->n_obj; j++)
        p->obj[(size_t)p->n * c->n_obj + j] = objective(c, j, net, v, pr);
    p->viol[p->n] = violation(c, net, v, pr);
    p->n++;
}

/* Keeps the best `keep` of p by (rank, crowding), in that order. */
static int pop_select(const search_ctx *c, pop *p, int keep, char *err, size_t errlen)
{
    const int m = c->n_obj;
    if (sn_nsga2_rank_crowd(p->rank, p->crowd, p->obj, p->viol, p->n, m, err, errlen) != SN_OK)
        return SN_ERR;
    if (keep > p->n) keep = p->n;
    int *chosen = malloc((size_t)(keep > 0 ? keep : 1) * sizeof *chosen);
    pop q = {0};
    if (!chosen || pop_reserve(&q, p->cap, m) != SN_OK) {
        free(chosen);
        pop_free(&q);
        return sn_errf(err, errlen, "out of memory");
    }
    sn_nsga2_survivors(chosen, p->rank, p->crowd, p->n, keep);
    for (int i = 0; i < keep; i++) {
        const int k = chosen[i];
        q.net[i] = p->net[k];
        memcpy(q.obj + (size_t)i * m, p->obj + (size_t)k * m, (size_t)m * sizeof(double));
        q.viol[i] = p->viol[k];
        q.rank[i] = p->rank[k];
        q.crowd[i] = p->crowd[k];
    }
    q.n = keep;
    free(chosen);
    pop_free(p);
    *p = q;
    return SN_OK;
}

/* Proposes up to want new sub-networks for iteration it: NSGA-II for
 * --generations generations on predicted objectives (archive members keep
 * their measured ones), seeded from the archive's best.  Their predicted
 * objectives go to pred (want, m).  Returns how many (a small space can
 * run out), or -1 with err set. */
static int propose(const search_ctx *c, const archive *ar, const predictors *pr, int it,
                   sn_subnet *out, double *pred, int want, char *err, size_t errlen)
{
    const search_args *a = c->a;
    const sn_space *s = &c->model->space;
    const int m = c->n_obj, P = (int)a->population;
    sn_rng r;
    sn_rng_seed(&r, (uint64_t)a->seed, STREAM_SEARCH + (uint64_t)it);
    pop p = {0};
    sn_subnet *kids = malloc((size_t)P * sizeof *kids);
    sn_subnet *avoid = malloc((size_t)(ar->st.n + 2 * P) * sizeof *avoid);
    int got = -1;
    if (!kids || !avoid || pop_reserve(&p, ar->st.n + 2 * P, m) != SN_OK) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < ar->st.n; i++)
        pop_push(c, &p, &ar->nets[i], ar->st.values + (size_t)i * N_VALUES, pr);
    if (pop_select(c, &p, P, err, errlen) != SN_OK) goto out;
    for (int g = 0; g < a->generations; g++) {
        /* children differ from the archive and from the population */
        memcpy(avoid, ar->nets, (size_t)ar->st.n * sizeof *avoid);
        memcpy(avoid + ar->st.n, p.net, (size_t)p.n * sizeof *avoid);
        int k = sn_nsga2_offspring(s, &r, p.net, p.rank, p.crowd, p.n, P, a->mutation, avoid,
                                   ar->st.n + p.n, kids);
        if (pop_reserve(&p, p.n + k, m) != SN_OK) {
            sn_errf(err, errlen, "out of memory");
            goto out;
        }
        for (int i = 0; i < k; i++) pop_push(c, &p, &kids[i], NULL, pr);
        if (pop_select(c, &p, P, err, errlen) != SN_OK) goto out;
    }
    /* the population is in (rank, crowding) order: the first new ones win */
    got = 0;
    for (int i = 0; i < p.n && got < want; i++) {
        if (archive_has(ar, &p.net[i])) continue;
        out[got] = p.net[i];
        memcpy(pred + (size_t)got * m, p.obj + (size_t)i * m, (size_t)m * sizeof(double));
        got++;
    }
out:
    pop_free(&p);
    free(kids);
    free(avoid);
    return got;
}

/* The hypervolume of the archive's feasible points against ref; NAN
 * when there are more than 3 objectives. */
static double archive_hv(const search_ctx *c, const archive *ar, const double *ref)
{
    const int n = ar->st.n, m = c->n_obj;
    if (m > 3) return NAN;
    double *obj = malloc((size_t)n * m * sizeof *obj), *viol = malloc((size_t)n * sizeof *viol);
    double hv = NAN;
    if (obj && viol) {
        archive_objectives(c, ar, obj, viol);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (viol[i] == 0.0) memmove(obj + (size_t)k++ * m, obj + (size_t)i * m, (size_t)m * sizeof *obj);
        char e[256];
        if (sn_hypervolume(&hv, obj, k, m, ref, e, sizeof e) != SN_OK) hv = NAN;
    }
    free(obj);
    free(viol);
    return hv;
}

/* The reference point: the worst of each objective over the initial
 * population, 10% of its range further out. */
static void reference_point(const search_ctx *c, const archive *ar, double *ref)
{
    const int m = c->n_obj;
    double lo[MAX_OBJ], hi[MAX_OBJ];
    for (int j = 0; j < m; j++) lo[j] = INFINITY, hi[j] = -INFINITY;
    for (int i = 0; i < ar->st.n; i++) {
        if (ar->st.iter[i] != 0) continue;
        for (int j = 0; j < m; j++) {
            double o = objective(c, j, &ar->nets[i], ar->st.values + (size_t)i * N_VALUES, NULL);
            lo[j] = fmin(lo[j], o);
            hi[j] = fmax(hi[j], o);
        }
    }
    for (int j = 0; j < m; j++) ref[j] = hi[j] + 0.1 * (hi[j] - lo[j]) + 1e-12 * fabs(hi[j]);
}

/* ---- outputs ------------------------------------------------------------------ */

/* Natural units of objective j (accuracy as a fraction, not negated). */
static double natural(const search_ctx *c, int j, double o)
{
    return c->obj[j] == OBJ_ACC ? -o : o;
}

/* pareto.csv, front.gp (+ front.png when gnuplot is installed), and the
 * summary; the front re-evaluated on the test split (up to --top). */
static int write_outputs(search_ctx *c, const archive *ar, char *err, size_t errlen)
{
    const search_args *a = c->a;
    const int n = ar->st.n, m = c->n_obj;
    double *obj = malloc((size_t)n * m * sizeof *obj), *viol = malloc((size_t)n * sizeof *viol),
           *crowd = malloc((size_t)n * sizeof *crowd);
    int *rank = malloc((size_t)n * sizeof *rank);
    int rc = SN_ERR;
    FILE *csv = NULL, *all = NULL, *gp = NULL;
    if (!obj || !viol || !crowd || !rank) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    archive_objectives(c, ar, obj, viol);
    if (sn_nsga2_rank_crowd(rank, crowd, obj, viol, n, m, err, errlen) != SN_OK) goto out;
    if (!(csv = sn_run_open(a->out, "pareto.csv", "w", err, errlen)) ||
        !(all = sn_run_open(a->out, "archive.csv", "w", err, errlen)))
        goto out;
    const char *loss = c->lm ? "bpb" : "loss";
    fprintf(csv, "subnet,params,macs,val_acc,val_%s,latency_ms,test_acc,test_%s\n", loss, loss);
    fprintf(all, "subnet,iteration,feasible,front,params,macs,val_acc,val_%s,latency_ms\n", loss);
    printf("\nPareto front (%s; feasible and non-dominated, by %s; test split for the first "
           "%lld):\n", a->objectives, obj_name(c->obj[0], c->lm), (long long)a->top);
    printf("%9s %10s %8s %9s %10s %8s %9s  %s\n", "params", "MACs", "val_acc",
           c->lm ? "val_bpb" : "val_loss", "latency_ms", "test_acc", c->lm ? "test_bpb" : "test_loss",
           "sub-network");
    /* every row to archive.csv; the front best first by the first objective */
    int *order = malloc((size_t)n * sizeof *order);
    if (!order) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    int nf = 0;
    for (int i = 0; i < n; i++)
        if (rank[i] == 0 && viol[i] == 0.0) order[nf++] = i;
    for (int i = 1; i < nf; i++)
        for (int k = i; k > 0 && obj[(size_t)order[k] * m] < obj[(size_t)order[k - 1] * m]; k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        const double *v = ar->st.values + (size_t)i * N_VALUES;
        fprintf(all, "%s,%d,%d,%d,%lld,%lld,%.6f,%.6f,%.6g\n", ar->st.nets + (size_t)i * SN_SUBNET_STRLEN,
                ar->st.iter[i], viol[i] == 0.0, rank[i] == 0 && viol[i] == 0.0,
                (long long)sn_subnet_params(&c->model->space, &ar->nets[i]),
                (long long)sn_subnet_macs(&c->model->space, &ar->nets[i]), v[V_ACC], v[V_LOSS],
                v[V_LATENCY]);
    }
    for (int f = 0; f < nf; f++) {
        const int i = order[f];
        const sn_subnet *net = &ar->nets[i];
        const double *v = ar->st.values + (size_t)i * N_VALUES;
        const char *name = ar->st.nets + (size_t)i * SN_SUBNET_STRLEN;
        const long long params = (long long)sn_subnet_params(&c->model->space, net);
        const long long macs = (long long)sn_subnet_macs(&c->model->space, net);
        sn_eval_result t = {.accuracy = NAN, .loss = NAN};
        if (f < a->top) t = eval_split(c, net, true);
        fprintf(csv, "%s,%lld,%lld,%.6f,%.6f,%.6g,%.6f,%.6f\n", name, params, macs, v[V_ACC],
                v[V_LOSS], v[V_LATENCY], t.accuracy, t.loss);
        char lat[32] = "-", ta[32] = "-", tl[32] = "-";
        if (!isnan(v[V_LATENCY])) snprintf(lat, sizeof lat, "%.3f", v[V_LATENCY]);
        if (f < a->top) {
            snprintf(ta, sizeof ta, "%.4f", t.accuracy);
            snprintf(tl, sizeof tl, "%.4f", t.loss);
        }
        printf("%8.3fM %9.2fM %8.4f %9.4f %10s %8s %9s  %s\n", (double)params / 1e6,
               (double)macs / 1e6, v[V_ACC], v[V_LOSS], lat, ta, tl, name);
    }
    free(order);
    if (sn_run_close(csv, "pareto.csv", err, errlen) != SN_OK) { csv = NULL; goto out; }
    csv = NULL;
    if (sn_run_close(all, "archive.csv", err, errlen) != SN_OK) { all = NULL; goto out; }
    all = NULL;

    /* the plot: every evaluated point, the front as a line, first two objectives */
    if (!(gp = sn_run_open(a->out, "front.gp", "w", err, errlen))) goto out;
    int col[MAX_OBJ];
    for (int j = 0; j < m; j++) {
        static const int cols[] = {[OBJ_ACC] = 7, [OBJ_LOSS] = 8, [OBJ_LATENCY] = 9,
                                   [OBJ_PARAMS] = 5, [OBJ_MACS] = 6};
        col[j] = cols[c->obj[j]];
    }
    fprintf(gp, "# gnuplot front.gp (in this directory) draws front.png\n"
                "set datafile separator ','\nset terminal pngcairo size 900,650 noenhanced\n"
                "set output 'front.png'\nset key outside bottom center horizontal\n"
                "set grid\nset xlabel '%s'\nset ylabel '%s'\n"
                "set title 'supernest search: %d sub-networks evaluated'\n"
                "plot 'archive.csv' every ::1 using %d:%d with points pt 7 ps 0.6 lc rgb '#9a9a9a' "
                "title 'evaluated', \\\n"
                "     '< (head -1 archive.csv; tail -n +2 archive.csv | awk -F, \"\\$4==1\" | "
                "sort -t, -k%d -g)' every ::1 using %d:%d with linespoints pt 7 lc rgb '#c0392b' "
                "title 'Pareto front'\n",
            obj_name(c->obj[0], c->lm), obj_name(c->obj[1], c->lm), n, col[0], col[1], col[0],
            col[0], col[1]);
    if (sn_run_close(gp, "front.gp", err, errlen) != SN_OK) { gp = NULL; goto out; }
    gp = NULL;
    char cmd[4600];
    snprintf(cmd, sizeof cmd, "command -v gnuplot >/dev/null 2>&1 && cd '%s' && gnuplot front.gp",
             a->out);
    if (system(cmd) == 0)
        printf("\nwrote %s/pareto.csv, archive.csv and front.png\n", a->out);
    else
        printf("\nwrote %s/pareto.csv and archive.csv; front.png needs gnuplot (Debian: "
               "gnuplot-nox), then: cd %s && gnuplot front.gp\n", a->out, a->out);
    rc = SN_OK;
out:
    if (csv) fclose(csv);
    if (all) fclose(all);
    if (gp) fclose(gp);
    free(obj);
    free(viol);
    free(crowd);
    free(rank);
    return rc;
}

/* ---- the coordinator --------------------------------------------------------- */

static int save_state(const search_ctx *c, const archive *ar, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/search.h5", c->a->out);
    return sn_search_save(path, &ar->st, err, errlen);
}

/* Loads --out's state for --resume, or refuses to overwrite one. */
static int open_state(search_ctx *c, archive *ar, char *err, size_t errlen)
{
    const search_args *a = c->a;
    char path[4200];
    snprintf(path, sizeof path, "%s/search.h5", a->out);
    struct stat sb;
    const bool exists = stat(path, &sb) == 0;
    ar->st = (sn_search_state){.iteration = -1, .seed = (uint64_t)a->seed, .n_values = N_VALUES};
    snprintf(ar->st.objectives, sizeof ar->st.objectives, "%s", a->objectives);
    snprintf(ar->st.checkpoint, sizeof ar->st.checkpoint, "%s", c->path);
    snprintf(ar->st.value_names, sizeof ar->st.value_names, "%s", VALUE_NAMES);
    if (!a->resume) {
        if (exists)
            return sn_errf(err, errlen, "%s exists: continue that search with --resume, or give "
                                        "another --out", path);
        return SN_OK;
    }
    if (!exists) return sn_errf(err, errlen, "--resume: %s: no search state to continue", path);
    sn_search_state st;
    if (sn_search_load(path, &st, err, errlen) != SN_OK) return SN_ERR;
    int rc = SN_OK;
    if (strcmp(st.objectives, a->objectives) != 0 || st.seed != (uint64_t)a->seed)
        rc = sn_errf(err, errlen, "%s searched --objectives %s with --seed %llu; resume with the "
                                  "same", path, st.objectives, (unsigned long long)st.seed);
    else if (st.n_values != N_VALUES || strcmp(st.value_names, VALUE_NAMES) != 0)
        rc = sn_errf(err, errlen, "%s holds values %s, this version measures %s", path,
                     st.value_names, VALUE_NAMES);
    for (int i = 0; rc == SN_OK && i < st.n; i++) {
        sn_subnet net;
        if (sn_subnet_parse(&c->model->space, st.nets + (size_t)i * SN_SUBNET_STRLEN, &net, err,
                            errlen) != SN_OK)
            rc = SN_ERR;
        else
            rc = archive_add(ar, &net, st.values + (size_t)i * N_VALUES, st.iter[i], err, errlen);
    }
    ar->st.iteration = st.iteration;
    sn_search_free(&st);
    if (rc == SN_OK)
        printf("resuming %s: %d sub-networks evaluated, %d iterations done\n", path, ar->st.n,
               ar->st.iteration);
    return rc;
}

/* Evaluates nets (n) for real, adds them to the archive as iteration it,
 * and saves the state. */
static int evaluate_batch(search_ctx *c, sn_coord *co, archive *ar, const sn_subnet *nets, int n,
                          int it, double *values, char *err, size_t errlen)
{
    if (sn_coord_evaluate(co, nets, n, values, err, errlen) != SN_OK) return SN_ERR;
    for (int i = 0; i < n; i++)
        if (archive_add(ar, &nets[i], values + (size_t)i * N_VALUES, it, err, errlen) != SN_OK)
            return SN_ERR;
    ar->st.iteration = it;
    return save_state(c, ar, err, errlen);
}

/* The initial population: the largest, the smallest, then random ones. */
static int initial_population(const search_ctx *c, sn_subnet *nets, int want)
{
    const sn_space *s = &c->model->space;
    sn_rng r;
    sn_rng_seed(&r, (uint64_t)c->a->seed, STREAM_SEARCH);
    int n = 0;
    sn_subnet_max(s, &nets[n++]);
    if (want > 1) sn_subnet_min(s, &nets[n]);
    if (want > 1 && !sn_subnet_equal(&nets[0], &nets[1])) n++;
    for (int tries = 0; n < want && tries < 100 * want; tries++) {
        sn_subnet x;
        sn_subnet_sample(s, &r, &x);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++) dup = sn_subnet_equal(&nets[i], &x);
        if (!dup) nets[n++] = x;
    }
    return n;
}

static int coordinate(search_ctx *c, sn_coord *co, char *err, size_t errlen)
{
    search_args *a = c->a;
    const int m = c->n_obj;
    archive ar = {0};
    predictors pr = {0};
    const int batch = (int)(a->init > a->per_iter ? a->init : a->per_iter);
    sn_subnet *nets = malloc((size_t)batch * sizeof *nets);
    double *values = malloc((size_t)batch * N_VALUES * sizeof *values);
    double *pred = malloc((size_t)batch * m * sizeof *pred);
    FILE *log = NULL;
    int rc = SN_ERR;
    if (!nets || !values || !pred) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    if (sn_mkdirs(a->out, err, errlen) != SN_OK || open_state(c, &ar, err, errlen) != SN_OK)
        goto out;
    if (!(log = sn_run_open(a->out, "search.jsonl", a->resume ? "a" : "w", err, errlen))) goto out;
    const double t0 = sn_now();
    if (ar.st.iteration < 0) {
        int n = initial_population(c, nets, (int)a->init);
        printf("iteration 0: evaluating %d sub-networks (the largest, the smallest, random)\n", n);
        fflush(stdout);
        if (evaluate_batch(c, co, &ar, nets, n, 0, values, err, errlen) != SN_OK) goto out;
    }
    double ref[MAX_OBJ];
    reference_point(c, &ar, ref);
    if (!a->resume || ar.st.iteration == 0) {
        double hv = archive_hv(c, &ar, ref);
        printf("iteration 0: %d evaluated, hypervolume %.6g (%.1f s)\n", ar.st.n, hv, sn_now() - t0);
        fprintf(log, "{\"iteration\":0,\"evaluated\":%d,\"hypervolume\":%.9g}\n", ar.st.n, hv);
        fflush(log);
    }
    for (int it = ar.st.iteration + 1; it <= a->iterations; it++) {
        if (fit_predictors(c, &ar, &pr, err, errlen) != SN_OK) goto out;
        int n = propose(c, &ar, &pr, it, nets, pred, (int)a->per_iter, err, errlen);
        if (n < 0) goto out;
        if (n == 0) {
            printf("iteration %d: no new sub-networks left to propose; stopping\n", it);
            break;
        }
        if (evaluate_batch(c, co, &ar, nets, n, it, values, err, errlen) != SN_OK) goto out;
        /* predictor quality on evaluations it was not fit on */
        fprintf(log, "{\"iteration\":%d,\"evaluated\":%d", it, ar.st.n);
        printf("iteration %d: %d evaluated", it, ar.st.n);
        double *pj = malloc((size_t)n * sizeof *pj), *tj = malloc((size_t)n * sizeof *tj);
        for (int j = 0; pj && tj && j < m; j++) {
            if (c->obj[j] == OBJ_PARAMS || c->obj[j] == OBJ_MACS) continue;
            for (int i = 0; i < n; i++) {
                pj[i] = natural(c, j, pred[(size_t)i * m + j]);
                tj[i] = natural(c, j, objective(c, j, &nets[i], values + (size_t)i * N_VALUES, NULL));
            }
            double tau = n > 1 ? sn_kendall_tau(pj, tj, n) : NAN, mape = sn_mape(pj, tj, n);
            printf(", %s predictor tau %.2f MAPE %.1f%%", obj_name(c->obj[j], c->lm), tau,
                   100.0 * mape);
            fprintf(log, ",\"%s_tau\":%.6g,\"%s_mape\":%.6g", obj_name(c->obj[j], c->lm), tau,
                    obj_name(c->obj[j], c->lm), mape);
        }
        free(pj);
        free(tj);
        double hv = archive_hv(c, &ar, ref);
        printf(", hypervolume %.6g (%.1f s)\n", hv, sn_now() - t0);
        fprintf(log, ",\"hypervolume\":%.9g,\"elapsed_s\":%.3f}\n", hv, sn_now() - t0);
        fflush(log);
        fflush(stdout);
    }
    sn_coord_stop(co, 0);
    FILE *lf = log;
    log = NULL;
    if (sn_run_close(lf, "search.jsonl", err, errlen) != SN_OK) goto out;
    rc = write_outputs(c, &ar, err, errlen);
out:
    if (log) fclose(log);
    predictors_free(&pr);
    free(ar.nets);
    sn_search_free(&ar.st);
    free(nets);
    free(values);
    free(pred);
    return rc;
}

/* ---- the command ---------------------------------------------------------------- */

static int run(search_ctx *c, int *code, char *err, size_t errlen)
{
    search_args *a = c->a;
    *code = SN_EXIT_USAGE;
    if (!a->checkpoint) return sn_errf(err, errlen, "--checkpoint FILE|DIR is required");
    if (sn_blas_init(a->blis_arch, err, errlen) != SN_OK) return SN_ERR;
    c->nt = a->threads > 0 ? (int)a->threads : sn_mpi_default_threads(c->mpi);
    if (c->nt > SN_MAX_THREADS) c->nt = SN_MAX_THREADS;
    if (parse_objectives(c, err, errlen) != SN_OK) return SN_ERR;
    if (a->init < 2) return sn_errf(err, errlen, "--init %lld: at least 2", (long long)a->init);
    const int64_t k_ranks = a->pp * a->sp;
    if (c->mpi->size == 1 && k_ranks > 1)
        return sn_errf(err, errlen, "evaluator groups of --pp %lld x --sp %lld ranks need 1 + a "
                                    "multiple of %lld ranks (rank 0 coordinates): start with "
                                    "mpirun -np %lld", (long long)a->pp, (long long)a->sp,
                       (long long)k_ranks, (long long)(1 + k_ranks));
    if (c->mpi->size > 1 && (c->mpi->size - 1) % k_ranks != 0)
        return sn_errf(err, errlen, "%d ranks: rank 0 coordinates and the other %d do not split "
                                    "into evaluator groups of --pp %lld x --sp %lld = %lld ranks "
                                    "(run 1 + a multiple of %lld ranks)",
                       c->mpi->size, c->mpi->size - 1, (long long)a->pp, (long long)a->sp,
                       (long long)k_ranks, (long long)k_ranks);

    *code = SN_EXIT_FAILURE;
    c->info = calloc(1, sizeof *c->info);
    if (!c->info) return sn_errf(err, errlen, "out of memory");
    /* the checkpoint's description (every rank: collective) */
    if (sn_ckpt_resolve(a->checkpoint, c->path, sizeof c->path, err, errlen) != SN_OK ||
        sn_file_read_info(sn_mpi_world(), c->path, c->info, err, errlen) != SN_OK)
        return SN_ERR;
    if (c->info->is_model)
        return sn_errf(err, errlen, "%s: an exported model, not a supernet checkpoint", c->path);
    c->model = sn_model_create(&c->info->space, 0);
    if (!c->model) return sn_errf(err, errlen, "out of memory creating the supernet");
    c->lm = c->model->space.task == SN_TASK_LM;
    if (k_ranks > 1) { /* the group layout against this supernet */
        const sn_space *s = &c->model->space;
        sn_layout gl = {.dp = 1, .pp = (int)a->pp, .sp = (int)a->sp};
        const int64_t M = GROUP_MICRO_PER_STAGE * a->pp;
        const char *what = c->lm ? "the checkpoint's sequence length"
                                 : "the checkpoint's tokens per image";
        if (sn_layout_resolve(&gl, (int)k_ranks, sn_space_max_blocks(s), s->n_tokens,
                              c->lm ? SN_SEQ_ZIGZAG : SN_SEQ_CONTIGUOUS, M * group_mb(c), M, what,
                              err, errlen) != SN_OK) {
            *code = SN_EXIT_USAGE;
            return SN_ERR;
        }
    }
    const int k = (int)(a->pp * a->sp);
    sn_coord co;
    sn_coord_init(&co, &c->model->space, N_VALUES, k, eval_candidate, c);
    c->co = &co;
    /* the weights: a rank of a pipelined evaluator group reads only its
     * stage's tensors; the coordinator (which re-evaluates the front on
     * the test split) and one-rank groups read them all */
    int t_lo = 0, t_hi = c->model->n_tensors, rc;
    if (c->mpi->rank != 0 && a->pp > 1) {
        sn_layout gl = {.dp = 1, .pp = (int)a->pp, .sp = (int)a->sp};
        int d, p, q;
        size_t lo, hi;
        sn_layout_coords(&gl, sn_coord_group_rank(&co), &d, &p, &q);
        sn_stage_params(c->model, (int)a->pp, p, &t_lo, &t_hi, &lo, &hi);
    }
    int ld = sn_ckpt_load_weights(sn_mpi_world(), c->path, c->model, t_lo, t_hi, err, errlen) ==
                     SN_OK ? SN_EXIT_OK : SN_EXIT_FAILURE;
    if (sn_mpi_agree(&ld, err, errlen) != SN_OK) {
        sn_coord_free(&co);
        if (c->mpi->rank != 0) err[0] = '\0';
        return SN_ERR;
    }
    int load = setup_eval(c, err, errlen);
    if (c->mpi->rank != 0) {
        /* a group fails together; it sets up its grid only if all loaded */
        load = sn_coord_group_agree(&co, load, err, errlen);
        if (load == SN_OK && k > 1) load = sn_coord_group_agree(&co, setup_group(c, err, errlen),
                                                                 err, errlen);
        if (sn_coord_leader(&co)) {
            rc = sn_coord_serve(&co, load, err, errlen);
        } else {
            sn_subnet net;
            int status = 0;
            while (sn_coord_group_recv(&co, &net, &status)) group_eval(c, &net);
            rc = status == 0 ? SN_OK : SN_ERR;
        }
        /* the coordinator prints the reason of a failed search */
        if (rc != SN_OK) err[0] = '\0';
        else *code = SN_EXIT_OK;
        sn_coord_free(&co);
        return rc;
    }
    if (load != SN_OK) {
        sn_coord_stop(&co, 1);
        sn_coord_free(&co);
        return SN_ERR;
    }
    if (sn_coord_wait_ready(&co, err, errlen) != SN_OK) {
        sn_coord_free(&co);
        return SN_ERR;
    }
    const int groups = c->mpi->size > 1 ? (c->mpi->size - 1) / k : 1;
    printf("supernest search: %s, objectives %s, %d evaluator group%s of %d rank%s "
           "(pipeline %lld x sequence %lld)%s\n",
           c->path, a->objectives, groups, groups > 1 ? "s" : "", k, k > 1 ? "s" : "",
           (long long)a->pp, (long long)a->sp, c->mpi->size > 1 ? "" : ": this rank");
    fflush(stdout);
    rc = coordinate(c, &co, err, errlen);
    sn_coord_stop(&co, rc == SN_OK ? 0 : 1);
    sn_coord_free(&co);
    if (rc == SN_OK) *code = SN_EXIT_OK;
    return rc;
}

int sn_cmd_search(int argc, char **argv, const sn_mpi_info *mpi)
{
    search_args a = {
        .objectives = "acc,latency", .out = "search", .blis_arch = "auto", .iterations = 5,
        .init = 16, .per_iter = 8, .population = 40, .generations = 30, .eval_size = 2000,
        .latency_batch = 1, .latency_reps = 10, .latency_threads = 1, .seed = 1, .top = 5,
        .mutation = 0.2, .debug_fail_rank = -1, .pp = 1, .sp = 1,
    };
    sn_opt opts[] = {
        {"checkpoint", SN_OPT_STR, &a.checkpoint, "FILE|DIR", "the trained supernet (a checkpoint file, or a checkpoint or run directory)", 0, 0, 0},
        {"objectives", SN_OPT_STR, &a.objectives, "LIST", "two to four of: acc (maximised), loss (bits per byte for lm), latency, params, macs (minimised)", 0, 0, 0},
        {"max-latency-ms", SN_OPT_FLOAT, &a.max_latency, "X", "constraint: measured latency at most X ms (0: none)", 0, 1e9, 0},
        {"max-params", SN_OPT_FLOAT, &a.max_params, "N", "constraint: at most N parameters (0: none)", 0, 1e15, 0},
        {"max-macs", SN_OPT_FLOAT, &a.max_macs, "N", "constraint: at most N multiply-accumulates per sequence (0: none)", 0, 1e18, 0},
        {"iterations", SN_OPT_INT, &a.iterations, "N", "predictor-guided iterations after the initial population", 0, 1e6, 0},
        {"init", SN_OPT_INT, &a.init, "N", "sub-networks evaluated first (the largest, the smallest, random)", 2, 1e6, 0},
        {"per-iter", SN_OPT_INT, &a.per_iter, "N", "new sub-networks evaluated per iteration", 1, 1e6, 0},
        {"population", SN_OPT_INT, &a.population, "N", "NSGA-II population on predicted objectives", 2, 1e6, 0},
        {"generations", SN_OPT_INT, &a.generations, "N", "NSGA-II generations per iteration", 1, 1e6, 0},
        {"mutation", SN_OPT_FLOAT, &a.mutation, "P", "probability of redrawing each gene", 0, 1, 0},
        {"eval-size", SN_OPT_INT, &a.eval_size, "N", "validation examples (images, or lm windows) per evaluation (0: all)", 0, 1e12, 0},
        {"latency-table", SN_OPT_STR, &a.latency_table, "FILE", "predict latency from this table (supernest latency-table) instead of timing each candidate: deterministic", 0, 0, 0},
        {"latency-batch", SN_OPT_INT, &a.latency_batch, "B", "sequences per timed forward pass", 1, 4096, 0},
        {"latency-reps", SN_OPT_INT, &a.latency_reps, "N", "timed forward passes per candidate (median; 2 warm-up passes excluded)", 1, 1e6, 0},
        {"latency-threads", SN_OPT_INT, &a.latency_threads, "N", "threads of the timed forward passes", 1, SN_MAX_THREADS, 0},
        {"threads", SN_OPT_INT, &a.threads, "N", "threads for evaluating accuracy (0: the cores of this node divided among its ranks)", 0, SN_MAX_THREADS, 0},
        {"top", SN_OPT_INT, &a.top, "K", "front members re-evaluated on the test split for the report", 0, 1e6, 0},
        {"seed", SN_OPT_INT, &a.seed, "S", "seed of the initial population and of NSGA-II", 0, 9.2e18, 0},
        {"out", SN_OPT_STR, &a.out, "DIR", "search.h5 (state), search.jsonl, pareto.csv, archive.csv, front.png", 0, 0, 0},
        {"resume", SN_OPT_FLAG, &a.resume, NULL, "continue the search saved in --out", 0, 0, 0},
        {"data", SN_OPT_STR, &a.data, "DIR|FILE", "the data the supernet was trained on (default: Fashion-MNIST, or fortunes for lm)", 0, 0, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto, skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"pp", SN_OPT_INT, &a.pp, "P", "pipeline stages of each evaluator group", 1, SN_MAX_BLOCKS, 0},
        {"sp", SN_OPT_INT, &a.sp, "S", "sequence-parallel ranks of each evaluator group (ring attention)", 1, 1 << 16, 0},
        {"debug-fail-rank", SN_OPT_INT, &a.debug_fail_rank, "R", "for tests: rank R fails every evaluation (-1: none)", -1, 1 << 20, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    int p = sn_cli_parse("supernest search", USAGE, opts, argc, argv, 2, NULL, 0, NULL, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest search: %s\n", err);
        return SN_EXIT_USAGE;
    }
    search_ctx c = {.a = &a, .mpi = mpi};
    int code;
    if (run(&c, &code, err, sizeof err) != SN_OK && err[0] && mpi->rank == 0)
        fprintf(stderr, "supernest search: %s\n", err);
    ctx_free(&c);
    return code;
}
