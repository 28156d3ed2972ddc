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
 * exact.  The archive is saved after every iteration (io/search), and
 * running the same command again continues an interrupted search.
 * SIGUSR1, SIGTERM or SIGINT on any rank (src/stop.h; main installs the
 * handlers before MPI starts) stops the search once the evaluations under
 * way are in: the results so far are saved, those of the unfinished
 * iteration included, and every rank exits with SN_EXIT_STOPPED.  At the
 * end: pareto.csv, a plot (gnuplot), the front re-evaluated on the test
 * split, and a summary.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
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
#include "src/stop.h"
#include "src/tensor.h"
#include "src/util.h"

enum { STREAM_SEARCH = 0x5ea7 };

/* The images evaluated when --data is not given. */
#define DEFAULT_IMAGES "/usr/share/datasets/fashion-mnist"

/* What an evaluator measures of each candidate (io/search "values"). */
enum { V_ACC, V_LOSS, V_LATENCY, N_VALUES };
static const char *VALUE_NAMES = "val_acc,val_loss,latency_ms";

typedef enum obj_kind { OBJ_ACC, OBJ_LOSS, OBJ_LATENCY, OBJ_PARAMS, OBJ_MACS } obj_kind;
#define MAX_OBJ 4

typedef struct search_args {
    const char *checkpoint, *objectives, *out, *data, *blis_arch, *latency_table;
    int64_t iterations, init, per_iter, population, generations, eval_size, latency_batch;
    int64_t latency_reps, latency_threads, threads, seed, top, debug_fail_rank, pp, sp;
    int64_t debug_stop_after;
    double mutation, max_latency, max_params, max_macs;
    bool resume, quiet;
} search_args;

static const char *USAGE =
    "supernest search --checkpoint FILE|DIR [--objectives acc,latency] [--iterations N]\n"
    "                        [--max-latency-ms X] [--max-params N] [--max-macs N] [--out DIR]\n"
    "                        [options]   (run again: continues the search in --out)\n"
    "       mpirun -np N supernest search ...   (rank 0 coordinates, the others evaluate)";

/* The evaluated sub-networks: st as saved (io/search), nets parsed. */
typedef struct archive {
    sn_search_state st;
    sn_subnet *nets;            /* (st.n) parsed */
    int cap;
} archive;

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
    int evaluated;                  /* candidates this rank has evaluated */
    /* the coordinator's state (rank 0) */
    archive ar;                     /* the finished iterations */
    archive part;                   /* a stopped iteration's finished evaluations */
    bool resumed;                   /* ar and part come from --out's search.h5 */
} search_ctx;

static void archive_free(archive *ar)
{
    free(ar->nets);
    sn_search_free(&ar->st);
    memset(ar, 0, sizeof *ar);
}

static void ctx_free(search_ctx *c)
{
    archive_free(&c->ar);
    archive_free(&c->part);
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
    const size_t len = strlen(buf);
    if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
        return sn_errf(err, errlen, "--objectives '%s': an empty name (give names separated by "
                                    "single commas, e.g. acc,latency)", c->a->objectives);
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
    const char *data = a->data ? a->data : DEFAULT_IMAGES;
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
    if (sn_images_check_labels(&c->images, s->n_classes, data, "training", c->path, err,
                               errlen) != SN_OK ||
        sn_images_check_labels(&c->test, s->n_classes, data, "test", c->path, err, errlen) !=
            SN_OK)
        return SN_ERR;
    if (c->info->val_size >= c->images.n)
        return sn_errf(err, errlen, "%s holds out %lld validation images, but %s has %lld "
                                    "training images: not the data it was trained on", c->path,
                       (long long)c->info->val_size, data, (long long)c->images.n);
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
            sn_images_batch_at(&c->images, c->val_idx + at, b, ed.patch,
                               sn_stem_convs(&c->model->space), ed.norm, d->pos, tl, NULL,
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
    if (++c->evaluated == c->a->debug_stop_after) sn_stop_raise(SIGUSR1);
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
    /* --out in single quotes for the shell (a ' in it as '\''); gnuplot's
     * warnings (an empty front) are not supernest's errors */
    char cmd[4 * 4096 + 128], *q = cmd + snprintf(cmd, 64, "cd '");
    for (const char *p = a->out; *p && q < cmd + sizeof cmd - 96; p++)
        q += *p == '\'' ? snprintf(q, 5, "'\\''") : snprintf(q, 2, "%c", *p);
    snprintf(q, 96, "' && gnuplot front.gp 2>/dev/null");
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        printf("\nwrote %s/pareto.csv and archive.csv; front.png needs gnuplot (Debian: "
               "gnuplot-nox), then: cd %s && gnuplot front.gp\n", a->out, a->out);
    else if (system(cmd) == 0)
        printf("\nwrote %s/pareto.csv, archive.csv and front.png\n", a->out);
    else
        printf("\nwrote %s/pareto.csv and archive.csv; gnuplot did not draw front.png (cd %s && "
               "gnuplot front.gp says why)\n", a->out, a->out);
    rc = SN_OK;
    if (nf == 0) {
        /* only --max-latency-ms can leave it empty: the smallest sub-network,
         * always evaluated, meets the others (checked at the start) */
        double fastest = INFINITY;
        for (int i = 0; i < n; i++)
            if (ar->st.values[(size_t)i * N_VALUES + V_LATENCY] < fastest)
                fastest = ar->st.values[(size_t)i * N_VALUES + V_LATENCY];
        rc = sn_errf(err, errlen, "none of the %d sub-networks evaluated meets the constraints "
                                  "(--max-latency-ms %g: the fastest took %.4g ms); %s/pareto.csv "
                                  "is empty", n, a->max_latency, fastest, a->out);
    }
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

static void state_path(const search_ctx *c, char *path, size_t len)
{
    snprintf(path, len, "%s/search.h5", c->a->out);
}

static int save_state(const search_ctx *c, const archive *ar, char *err, size_t errlen)
{
    char path[4200];
    state_path(c, path, sizeof path);
    return sn_search_save(path, &ar->st, err, errlen);
}

/* One option that shapes a search's results, formatted ("": not in use).
 * A search continues only with the same (io/search "options").  Not among
 * them: --iterations (a finished search continues with more), --top, and
 * what only changes who computes (--threads, --pp, --sp, --blis-arch). */
typedef struct shaping_option {
    const char *name;
    char value[1024];
} shaping_option;

enum { N_SHAPING = 14 };

static void shaping(shaping_option *o, const char *name, bool used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void shaping(shaping_option *o, const char *name, bool used, const char *fmt, ...)
{
    o->name = name;
    o->value[0] = '\0';
    if (!used) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->value, sizeof o->value, fmt, ap);
    va_end(ap);
}

/* This command's shaping options, always in this order. */
static void shaping_options(const search_ctx *c, shaping_option o[N_SHAPING])
{
    const search_args *a = c->a;
    const bool timed = c->need_latency && !a->latency_table;
    int n = 0;
    shaping(&o[n++], "init", true, "%lld", (long long)a->init);
    shaping(&o[n++], "per-iter", true, "%lld", (long long)a->per_iter);
    shaping(&o[n++], "population", true, "%lld", (long long)a->population);
    shaping(&o[n++], "generations", true, "%lld", (long long)a->generations);
    shaping(&o[n++], "mutation", true, "%.15g", a->mutation);
    shaping(&o[n++], "eval-size", true, "%lld", (long long)a->eval_size);
    shaping(&o[n++], "max-latency-ms", true, "%.15g", a->max_latency);
    shaping(&o[n++], "max-params", true, "%.15g", a->max_params);
    shaping(&o[n++], "max-macs", true, "%.15g", a->max_macs);
    shaping(&o[n++], "data", true, "%s",
            a->data ? a->data : c->lm ? SN_TEXT_DEFAULT_PATH : DEFAULT_IMAGES);
    shaping(&o[n++], "latency-table", c->need_latency && a->latency_table, "%s",
            a->latency_table ? a->latency_table : "");
    shaping(&o[n++], "latency-batch", timed, "%lld", (long long)a->latency_batch);
    shaping(&o[n++], "latency-reps", timed, "%lld", (long long)a->latency_reps);
    shaping(&o[n++], "latency-threads", timed, "%lld", (long long)a->latency_threads);
    SN_CHECK(n == N_SHAPING);
}

/* The shaping options as saved: one `name = value` per line, those not in
 * use left out. */
static void search_options(const search_ctx *c, char *out, size_t len)
{
    shaping_option o[N_SHAPING];
    shaping_options(c, o);
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < N_SHAPING && at < len; i++)
        if (o[i].value[0])
            at += (size_t)snprintf(out + at, len - at, "%s = %s\n", o[i].name, o[i].value);
}

/* The value of option name in a list of search_options ("": absent). */
static void option_in(const char *list, const char *name, char *v, size_t len)
{
    const size_t k = strlen(name);
    v[0] = '\0';
    for (const char *l = list; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, name, k) != 0 || strncmp(l + k, " = ", 3) != 0) continue;
        const char *s = l + k + 3, *e = strchr(s, '\n');
        snprintf(v, len, "%.*s", (int)(e ? e - s : (ptrdiff_t)strlen(s)), s);
        return;
    }
}

/* "--name value", or "no --name" for an option not used. */
static void option_words(const char *name, const char *v, char *out, size_t len)
{
    if (v[0]) snprintf(out, len, "--%s %s", name, v);
    else snprintf(out, len, "no --%s", name);
}

/* Describes in what the first shaping option where the saved search's
 * list differs from this command: "--per-iter 4 (this command: --per-iter
 * 8)".  False if none does. */
static bool options_differ(const search_ctx *c, const char *saved, char *what, size_t len)
{
    shaping_option o[N_SHAPING];
    shaping_options(c, o);
    for (int i = 0; i < N_SHAPING; i++) {
        char was[1024], w1[1100], w2[1100];
        option_in(saved, o[i].name, was, sizeof was);
        if (strcmp(was, o[i].value) == 0) continue;
        option_words(o[i].name, was, w1, sizeof w1);
        option_words(o[i].name, o[i].value, w2, sizeof w2);
        snprintf(what, len, "%.540s (this command: %.540s)", w1, w2);
        return true;
    }
    return false;
}

/* Paths of the same file (as given when either cannot be resolved). */
static bool same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) && realpath(b, rb)) return strcmp(ra, rb) == 0;
    return strcmp(a, b) == 0;
}

/* Rank 0: reads --out's search state, if there is one, into c->ar (the
 * finished iterations) and c->part (the evaluations a signal left of the
 * next one); otherwise sets up an empty state.  A state of another
 * search (checkpoint, objectives, seed or the options of search_options)
 * is refused.  Returns the exit status (SN_EXIT_OK: go on). */
static int open_state(search_ctx *c, char *err, size_t errlen)
{
    const search_args *a = c->a;
    char path[4200];
    state_path(c, path, sizeof path);
    struct stat sb;
    const bool exists = stat(path, &sb) == 0;
    archive *ar = &c->ar, *part = &c->part;
    ar->st = (sn_search_state){.iteration = -1, .seed = (uint64_t)a->seed, .n_values = N_VALUES};
    snprintf(ar->st.objectives, sizeof ar->st.objectives, "%s", a->objectives);
    snprintf(ar->st.checkpoint, sizeof ar->st.checkpoint, "%s", c->path);
    snprintf(ar->st.value_names, sizeof ar->st.value_names, "%s", VALUE_NAMES);
    search_options(c, ar->st.options, sizeof ar->st.options);
    part->st = ar->st;
    if (!exists) {
        if (!a->resume) return SN_EXIT_OK;
        sn_errf(err, errlen, "--resume: %s: no search state to continue", path);
        return SN_EXIT_USAGE;
    }
    sn_search_state st;
    if (sn_search_load(path, &st, err, errlen) != SN_OK) return SN_EXIT_FAILURE;
    char what[1200] = "";
    if (!same_file(st.checkpoint, c->path))
        snprintf(what, sizeof what, "--checkpoint %.540s (this command: %.540s)", st.checkpoint,
                 c->path);
    else if (strcmp(st.objectives, a->objectives) != 0)
        snprintf(what, sizeof what, "--objectives %s (this command: --objectives %s)",
                 st.objectives, a->objectives);
    else if (st.seed != (uint64_t)a->seed)
        snprintf(what, sizeof what, "--seed %llu (this command: --seed %lld)",
                 (unsigned long long)st.seed, (long long)a->seed);
    else if (st.options[0]) /* files older than the options record none */
        options_differ(c, st.options, what, sizeof what);
    int code = SN_EXIT_OK;
    if (what[0]) {
        sn_errf(err, errlen, "%s holds a search with %s: give another --out for a new search, "
                             "or the same options to continue that one", path, what);
        code = SN_EXIT_USAGE;
    } else if (st.n_values != N_VALUES || strcmp(st.value_names, VALUE_NAMES) != 0) {
        sn_errf(err, errlen, "%s holds values %s, this version measures %s", path,
                st.value_names, VALUE_NAMES);
        code = SN_EXIT_USAGE;
    }
    for (int i = 0; code == SN_EXIT_OK && i < st.n; i++) {
        const int it = st.iter[i];
        sn_subnet net;
        if (it > st.iteration + 1) {
            sn_errf(err, errlen, "%s: sub-network %d is of iteration %d, but only %d iterations "
                                 "are done (a damaged file)", path, i, it, st.iteration);
            code = SN_EXIT_FAILURE;
        } else if (sn_subnet_parse(&c->model->space, st.nets + (size_t)i * SN_SUBNET_STRLEN,
                                   &net, what, sizeof what) != SN_OK) {
            sn_errf(err, errlen, "%s: sub-network %d is not of %s's space: %s", path, i, c->path,
                    what);
            code = SN_EXIT_FAILURE;
        } else if (archive_add(it <= st.iteration ? ar : part, &net,
                               st.values + (size_t)i * N_VALUES, it, err, errlen) != SN_OK) {
            code = SN_EXIT_FAILURE;
        }
    }
    ar->st.iteration = part->st.iteration = st.iteration;
    sn_search_free(&st);
    c->resumed = code == SN_EXIT_OK;
    return code;
}

/* Evaluates nets (n) for real as iteration it, taking the results of the
 * ones a stopped run evaluated already from c->part; adds them to the
 * archive in candidate order (then any of c->part's that are not among
 * nets: no evaluation is dropped) and saves the state.  SN_COORD_STOPPED
 * when a signal stopped it first: what was evaluated is saved as part of
 * iteration it, the state still counting it - 1 iterations done. */
static int evaluate_batch(search_ctx *c, sn_coord *co, const sn_subnet *nets, int n, int it,
                          double *values, bool *done, char *err, size_t errlen)
{
    archive *ar = &c->ar, *part = &c->part;
    bool *used = calloc((size_t)part->st.n + 1, sizeof *used);
    if (!used) return sn_errf(err, errlen, "out of memory");
    for (int i = 0; i < n; i++) {
        done[i] = false;
        for (int j = 0; j < part->st.n && !done[i]; j++) {
            if (used[j] || !sn_subnet_equal(&part->nets[j], &nets[i])) continue;
            memcpy(values + (size_t)i * N_VALUES, part->st.values + (size_t)j * N_VALUES,
                   N_VALUES * sizeof(double));
            done[i] = used[j] = true;
        }
    }
    int rc = sn_coord_evaluate(co, nets, n, values, done, err, errlen);
    for (int i = 0; rc != SN_ERR && i < n; i++)
        if (done[i] && archive_add(ar, &nets[i], values + (size_t)i * N_VALUES, it, err,
                                   errlen) != SN_OK)
            rc = SN_ERR;
    for (int j = 0; rc != SN_ERR && j < part->st.n; j++)
        if (!used[j] && archive_add(ar, &part->nets[j], part->st.values + (size_t)j * N_VALUES,
                                    it, err, errlen) != SN_OK)
            rc = SN_ERR;
    free(used);
    free(part->nets);
    part->nets = NULL;
    part->cap = 0;
    sn_search_free(&part->st);
    if (rc == SN_ERR) return SN_ERR;
    ar->st.iteration = rc == SN_OK ? it : it - 1;
    if (save_state(c, ar, err, errlen) != SN_OK) return SN_ERR;
    return rc;
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

/* The line of a search a signal stopped during iteration it (its state
 * saved); returns SN_COORD_STOPPED. */
static int report_stop(const search_ctx *c, sn_coord *co, int it)
{
    int rank;
    const int sig = sn_coord_stop_signal(co, &rank);
    char on[32] = "";
    if (rank > 0) snprintf(on, sizeof on, " on rank %d", rank);
    fflush(stdout);
    fprintf(stderr, "supernest search: stopped by %s%s after %d evaluations (iteration %d); "
                    "state saved in %s/search.h5; run the same command to continue\n",
            sn_stop_name(sig), on, c->ar.st.n, it, c->a->out);
    return SN_COORD_STOPPED;
}

/* Rank 0: the search.  SN_OK, SN_ERR, or SN_COORD_STOPPED (reported). */
static int coordinate(search_ctx *c, sn_coord *co, char *err, size_t errlen)
{
    search_args *a = c->a;
    archive *ar = &c->ar;
    const int m = c->n_obj;
    predictors pr = {0};
    const int batch = (int)(a->init > a->per_iter ? a->init : a->per_iter);
    sn_subnet *nets = malloc((size_t)batch * sizeof *nets);
    double *values = malloc((size_t)batch * N_VALUES * sizeof *values);
    double *pred = malloc((size_t)batch * m * sizeof *pred);
    bool *done = malloc((size_t)batch * sizeof *done);
    FILE *log = NULL;
    int rc = SN_ERR;
    if (!nets || !values || !pred || !done) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    if (sn_mkdirs(a->out, err, errlen) != SN_OK) goto out;
    if (!(log = sn_run_open(a->out, "search.jsonl", c->resumed ? "a" : "w", err, errlen)))
        goto out;
    if (c->resumed && ar->st.iteration >= a->iterations && c->part.st.n == 0)
        printf("search in %s/search.h5 is complete (%d iteration%s, %d evaluated): writing its "
               "outputs again\n", a->out, ar->st.iteration, ar->st.iteration == 1 ? "" : "s",
               ar->st.n);
    else if (c->resumed)
        printf("resuming search from %s/search.h5 at iteration %d (%d evaluated)\n", a->out,
               ar->st.iteration + 1, ar->st.n + c->part.st.n);
    fflush(stdout);
    const double t0 = sn_now();
    const bool first = ar->st.iteration < 0;
    if (first) {
        int n = initial_population(c, nets, (int)a->init);
        printf("iteration 0: evaluating %d sub-networks (the largest, the smallest, random)\n", n);
        fflush(stdout);
        int r = evaluate_batch(c, co, nets, n, 0, values, done, err, errlen);
        if (r == SN_COORD_STOPPED) rc = report_stop(c, co, 0);
        if (r != SN_OK) goto out;
    }
    double ref[MAX_OBJ];
    reference_point(c, ar, ref);
    if (first) {
        double hv = archive_hv(c, ar, ref);
        printf("iteration 0: %d evaluated, hypervolume %.6g (%.1f s)\n", ar->st.n, hv, sn_now() - t0);
        fprintf(log, "{\"iteration\":0,\"evaluated\":%d,\"hypervolume\":%.9g}\n", ar->st.n, hv);
        fflush(log);
    }
    for (int it = ar->st.iteration + 1; it <= a->iterations; it++) {
        if (sn_coord_stop_signal(co, NULL)) {
            rc = report_stop(c, co, it);
            goto out;
        }
        if (fit_predictors(c, ar, &pr, err, errlen) != SN_OK) goto out;
        int n = propose(c, ar, &pr, it, nets, pred, (int)a->per_iter, err, errlen);
        if (n < 0) goto out;
        if (n == 0 && c->part.st.n == 0) {
            printf("iteration %d: no new sub-networks left to propose; stopping\n", it);
            break;
        }
        int r = evaluate_batch(c, co, nets, n, it, values, done, err, errlen);
        if (r == SN_COORD_STOPPED) rc = report_stop(c, co, it);
        if (r != SN_OK) goto out;
        /* predictor quality on evaluations it was not fit on */
        fprintf(log, "{\"iteration\":%d,\"evaluated\":%d", it, ar->st.n);
        printf("iteration %d: %d evaluated", it, ar->st.n);
        double *pj = malloc((size_t)n * sizeof *pj), *tj = malloc((size_t)n * sizeof *tj);
        for (int j = 0; n > 0 && pj && tj && j < m; j++) {
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
        double hv = archive_hv(c, ar, ref);
        printf(", hypervolume %.6g (%.1f s)\n", hv, sn_now() - t0);
        fprintf(log, ",\"hypervolume\":%.9g,\"elapsed_s\":%.3f}\n", hv, sn_now() - t0);
        fflush(log);
        fflush(stdout);
    }
    /* the search is done: a signal from here on no longer stops it */
    sn_coord_stop(co, SN_COORD_END_DONE);
    FILE *lf = log;
    log = NULL;
    if (sn_run_close(lf, "search.jsonl", err, errlen) != SN_OK) goto out;
    rc = write_outputs(c, ar, err, errlen);
out:
    if (log) fclose(log);
    predictors_free(&pr);
    free(nets);
    free(values);
    free(pred);
    free(done);
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
    if (a->init < 3 && a->iterations > 0)
        return sn_errf(err, errlen, "--init %lld: the predictors of --iterations %lld need at "
                                    "least 3 evaluated sub-networks to fit (give --init 3 or more, "
                                    "or --iterations 0)", (long long)a->init,
                       (long long)a->iterations);
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
    /* params and MACs grow with every choice: the smallest sub-network has
     * the fewest, and a constraint below it leaves nothing to search */
    sn_subnet small;
    sn_subnet_min(&c->model->space, &small);
    const double p0 = (double)sn_subnet_params(&c->model->space, &small);
    const double m0 = (double)sn_subnet_macs(&c->model->space, &small);
    if ((a->max_params > 0 && a->max_params < p0) || (a->max_macs > 0 && a->max_macs < m0)) {
        const bool params = a->max_params > 0 && a->max_params < p0;
        *code = SN_EXIT_USAGE;
        return sn_errf(err, errlen, "--max-%s %.17g: no sub-network meets it, the smallest of %s "
                                    "has %.0f %s", params ? "params" : "macs",
                       params ? a->max_params : a->max_macs, c->path, params ? p0 : m0,
                       params ? "parameters" : "MACs");
    }
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
    /* a search state in --out: continued, unless it is another search's */
    int st = c->mpi->rank == 0 ? open_state(c, err, errlen) : SN_EXIT_OK;
    if (sn_mpi_agree(&st, err, errlen) != SN_OK) {
        *code = st;
        return SN_ERR;
    }
    const int k = (int)(a->pp * a->sp);
    sn_coord co;
    sn_coord_init(&co, &c->model->space, N_VALUES, k, eval_candidate, c, sn_stop_signal);
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
            rc = status == SN_COORD_END_DONE      ? SN_OK
                 : status == SN_COORD_END_STOPPED ? SN_COORD_STOPPED
                                                  : SN_ERR;
        }
        /* the coordinator prints the reason of a failed or stopped search */
        if (rc != SN_OK) err[0] = '\0';
        if (rc == SN_OK) *code = SN_EXIT_OK;
        if (rc == SN_COORD_STOPPED) *code = SN_EXIT_STOPPED;
        sn_coord_free(&co);
        return rc;
    }
    if (load != SN_OK) {
        sn_coord_stop(&co, SN_COORD_END_FAILED);
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
    sn_coord_stop(&co, rc == SN_OK              ? SN_COORD_END_DONE
                       : rc == SN_COORD_STOPPED ? SN_COORD_END_STOPPED
                                                : SN_COORD_END_FAILED);
    sn_coord_free(&co);
    if (rc == SN_OK) *code = SN_EXIT_OK;
    if (rc == SN_COORD_STOPPED) *code = SN_EXIT_STOPPED;
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
        {"out", SN_OPT_STR, &a.out, "DIR", "search.h5 (state), search.jsonl, pareto.csv, archive.csv, front.png; a search already there is continued", 0, 0, 0},
        {"resume", SN_OPT_FLAG, &a.resume, NULL, "insist on continuing the search saved in --out (it is continued anyway)", 0, 0, 0},
        {"data", SN_OPT_STR, &a.data, "DIR|FILE", "the data the supernet was trained on (default: Fashion-MNIST, or fortunes for lm)", 0, 0, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto, skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"pp", SN_OPT_INT, &a.pp, "P", "pipeline stages of each evaluator group", 1, SN_MAX_BLOCKS, 0},
        {"sp", SN_OPT_INT, &a.sp, "S", "sequence-parallel ranks of each evaluator group (ring attention)", 1, 1 << 16, 0},
        {"debug-fail-rank", SN_OPT_INT, &a.debug_fail_rank, "R", "for tests: rank R fails every evaluation (-1: none)", -1, 1 << 20, 0},
        {"debug-stop-after", SN_OPT_INT, &a.debug_stop_after, "N", "for tests: a rank that evaluates acts as if it caught SIGUSR1 during its N-th evaluation (0: never)", 0, 1e9, 0},
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
