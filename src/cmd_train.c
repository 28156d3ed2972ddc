/* `supernest train`: trains the supernet — on Fashion-MNIST patch tokens
 * (image task) or a byte text (language model) — on a D x P x S rank grid
 * (mpi/grid, mpi/pipeline), and reports the largest, smallest and a few
 * random sub-networks on the validation and test splits. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "io/data.h"
#include "io/runlog.h"
#include "io/text.h"
#include "mpi/grid.h"
#include "mpi/pipeline.h"
#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/arch.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/evaluate.h"
#include "src/layout.h"
#include "src/model.h"
#include "src/progress.h"
#include "src/sort.h"
#include "src/stop.h"
#include "src/tensor.h"
#include "src/train.h"
#include "src/util.h"

enum { STREAM_REPORT = 0x7e70 };

typedef struct train_args {
    const char *task, *data, *run_dir, *fixed_subnet, *blis_arch;
    const char *checkpoint_dir, *resume, *ring;
    const char *schedule, *phases, *sample_by, *sort_channels;
    int64_t steps, epochs, batch, seed, val_size, train_subset, patch, shift, threads;
    int64_t seq_len, dp, pp, sp, micro, bucket_kb;
    int64_t sandwich_random, subnets_per_step, macs_buckets, warmup, log_every, report_random;
    sn_space_flags space;
    int64_t checkpoint_every, checkpoint_minutes, keep, stop_after;
    int64_t skip_nonfinite, debug_nan_step, debug_nan_rank;
    double debug_ckpt_pause;
    double lr, min_lr, weight_decay, clip, smoothing, deps_delay, deps_ramp;
    double distill_weight, distill_ramp;
    bool no_distill, hflip, quiet, no_report, dry_run;
} train_args;

static const char *USAGE =
    "supernest train [--task image|lm] [--data DIR|FILE] [--steps N | --epochs N]\n"
    "                       [--batch-size B] [--seed S] [--run-dir DIR] [--fixed-subnet STRING]\n"
    "                       [--dp D] [--pp P] [--sp S] [--micro-batches M] [options]\n"
    "       mpirun -np D*P*S supernest train ...";

/* The losses of a step's sandwich members, "max 1.9312 min 2.1004 rand ..."
 * (text) or the metrics record's "loss":{...} (json). */
static void print_losses(FILE *f, const sn_step_stats *st, bool json)
{
    if (json) {
        fprintf(f, "\"loss\":{");
        bool first = true, rand_open = false;
        for (int k = 0; k < st->n_members; k++) {
            bool is_rand = strcmp(st->role[k], "rand") == 0;
            if (is_rand && !rand_open) {
                fprintf(f, "%s\"rand\":[", first ? "" : ",");
                rand_open = true;
                first = true;
            }
            if (is_rand)
                fprintf(f, "%s%.9g", first ? "" : ",", st->loss[k]);
            else
                fprintf(f, "%s\"%s\":%.9g", first ? "" : ",", st->role[k], st->loss[k]);
            first = false;
        }
        fprintf(f, "%s}", rand_open ? "]" : "");
        return;
    }
    for (int k = 0; k < st->n_members; k++) fprintf(f, " %s %.4f", st->role[k], st->loss[k]);
}

/* print_losses' text form into buf. */
static void format_losses(char *buf, size_t len, const sn_step_stats *st)
{
    buf[0] = '\0';
    FILE *f = fmemopen(buf, len, "w");
    if (!f) return;
    print_losses(f, st, false);
    fclose(f);
}


static void format_eta(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

/* Rank 0's permanent output line: stdout (above the status line on a
 * terminal) and the run directory's log. */
#define say(c, ...)                                                                        \
    do {                                                                                   \
        if ((c)->root) sn_progress_line(&(c)->prog, __VA_ARGS__);                          \
    } while (0)

typedef struct report_row {
    const char *role;
    sn_subnet net;
} report_row;

/* Everything a training run holds; released by ctx_free. */
typedef struct train_ctx {
    train_args *a;
    const train_args *defaults;     /* the options' values before parsing */
    sn_opt *opts;
    const sn_mpi_info *mpi;
    bool lm;                        /* the language model (else images) */
    sn_train_opts sched;            /* the schedule's options (check_schedule) */
    bool root;                      /* world rank 0: prints and writes run files */
    int nt;
    sn_space space;
    sn_images train, test;          /* image task */
    int64_t *train_idx, *val_idx, n_train, n_val;
    sn_norm norm;
    sn_text text;                   /* language model */
    sn_layout layout;
    sn_grid grid;
    bool grid_up;
    sn_model *model;
    sn_trainer tr;
    bool trainer_up;
    sn_dist dist;
    bool dist_up;
    sn_loader loader;
    int64_t steps_per_epoch;
    void *input;                    /* this rank's tokens: (b_local, tl, P) or ids (b_local, tl) */
    int32_t *labels;                /* (b_local) or (b_local, tl) */
    int64_t *ids;                   /* (B) image indices or window starts of the step */
    sn_augment *aug;                /* (B) the step's image alterations (--shift, --hflip) */
    sn_acts *eval_acts;             /* one-rank workspace for evaluation */
    sn_attn_engine *eval_attn;      /* its attention engine (language model) */
    int64_t eval_batch;
    float *eval_tokens;
    int32_t *eval_ids, *eval_labels;
    FILE *metrics;
    FILE *log;                      /* RUN_DIR/log: rank 0's permanent lines */
    sn_progress prog;               /* rank 0's terminal and log output */
    const char *ckpt_dir;           /* NULL: no checkpoints */
    char ckpt_dir_buf[4096];
    sn_file_info info;              /* what checkpoints record besides tensors */
    char *options_text;             /* owned (open_memstream) */
    size_t options_len;
} train_ctx;

static void ctx_free(train_ctx *c)
{
    sn_progress_done(&c->prog);
    if (c->metrics) fclose(c->metrics);
    if (c->log) fclose(c->log);
    sn_free(c->input);
    sn_free(c->labels);
    sn_free(c->ids);
    sn_free(c->aug);
    sn_acts_destroy(c->eval_acts);
    sn_ring_destroy(c->eval_attn);
    sn_free(c->eval_tokens);
    sn_free(c->eval_ids);
    sn_free(c->eval_labels);
    sn_loader_free(&c->loader);
    if (c->dist_up) sn_dist_free(&c->dist);
    if (c->trainer_up) sn_trainer_free(&c->tr);
    if (c->grid_up) sn_grid_free(&c->grid);
    sn_text_free(&c->text);
    sn_model_destroy(c->model);
    sn_free(c->train_idx);
    sn_free(c->val_idx);
    sn_images_free(&c->train);
    sn_images_free(&c->test);
    free(c->options_text);
}

/* True if dir holds a `latest` checkpoint pointer. */
static bool ckpt_dir_has_latest(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/latest", dir);
    return access(path, F_OK) == 0;
}

/* Whether option name was given: on the command line, or in a --config
 * file with a value other than its default (a run's resolved config names
 * every option, most at their defaults). */
static bool given(const train_ctx *c, const char *name, bool at_default)
{
    const sn_opt *o = sn_cli_find(c->opts, name);
    return o->seen == SN_SEEN_ARGV || (o->seen == SN_SEEN_FILE && !at_default);
}

/* --phases "a,b,c,d" into out[SN_PHASES]. */
static int parse_phases(const char *text, double *out, char *err, size_t errlen)
{
    const char *p = text;
    for (int i = 0; i < SN_PHASES; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(p, &end);
        const char want = i < SN_PHASES - 1 ? ',' : '\0';
        if (end == p || *end != want || errno == ERANGE || !isfinite(out[i]))
            return sn_errf(err, errlen, "--phases '%s': expected %d comma-separated shares of "
                                        "the run (full network, depth, heads and MLP, "
                                        "embedding), e.g. 0.25,0.25,0.25,0.25",
                           text, SN_PHASES);
        p = end + 1;
    }
    return SN_OK;
}

/* --sort-channels: "auto", "off", or the steps after which to sort,
 * "S1,S2,..." (increasing, from 1), into o->sort_at. */
static int parse_sort_steps(const char *text, sn_train_opts *o, char *err, size_t errlen)
{
    o->n_sort_at = 0;
    if (strcmp(text, "auto") == 0 || strcmp(text, "off") == 0) return SN_OK;
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        const long long v = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : -1;
        if (v < 1 || errno == ERANGE || (*end != ',' && *end != '\0'))
            return sn_errf(err, errlen, "--sort-channels '%s': expected auto, off, or the steps "
                                        "after which to sort, e.g. 1000 or 500,1500",
                           text);
        if (o->n_sort_at == SN_MAX_SORT_STEPS)
            return sn_errf(err, errlen, "--sort-channels '%s': at most %d steps", text,
                           SN_MAX_SORT_STEPS);
        if (o->n_sort_at > 0 && v <= o->sort_at[o->n_sort_at - 1])
            return sn_errf(err, errlen, "--sort-channels '%s': the steps must increase", text);
        o->sort_at[o->n_sort_at++] = v;
        if (*end == '\0') return SN_OK;
        p = end + 1;
    }
}

/* Checks the schedule's options and fills c->sched with them: the names,
 * each schedule-specific option given only with its schedule, the
 * ranges. */
static int check_schedule(train_ctx *c, char *err, size_t errlen)
{
    const train_args *a = c->a, *d = c->defaults;
    sn_train_opts *o = &c->sched;
    sn_train_opts_default(o);
    if (sn_schedule_parse(a->schedule, &o->schedule) != SN_OK ||
        o->schedule == SN_SCHEDULE_FIXED)
        return sn_errf(err, errlen, "--schedule '%s': expected sandwich, sortednet, progressive "
                                    "or deps", a->schedule);
    if (strcmp(a->sample_by, "uniform") == 0)
        o->sample_by = SN_SAMPLE_UNIFORM;
    else if (strcmp(a->sample_by, "macs") == 0)
        o->sample_by = SN_SAMPLE_MACS;
    else if (strcmp(a->sample_by, "log-macs") == 0)
        o->sample_by = SN_SAMPLE_LOG_MACS;
    else
        return sn_errf(err, errlen, "--sample-by '%s': expected uniform (every sub-network "
                                    "alike), macs (every cost alike) or log-macs (every "
                                    "cost ratio alike)", a->sample_by);
    if (parse_sort_steps(a->sort_channels, o, err, errlen) != SN_OK) return SN_ERR;
    if (parse_phases(a->phases, o->phases, err, errlen) != SN_OK) return SN_ERR;
    const sn_schedule sc = o->schedule;
    const bool sorted = sc == SN_SCHEDULE_SORTEDNET, macs = o->sample_by != SN_SAMPLE_UNIFORM;
    const char *sandwiches = "--schedule sandwich, progressive or deps";
    const char *teachers = "in-place distillation (--schedule sandwich, progressive or deps, "
                           "without --no-distill or --fixed-subnet)";
    const bool distilled = !sorted && !a->no_distill && !a->fixed_subnet;
    const struct {
        const char *name;
        bool at_default, applies;
        const char *what;
    } rules[] = {
        {"phases", strcmp(a->phases, d->phases) == 0, sc == SN_SCHEDULE_PROGRESSIVE,
         "--schedule progressive"},
        {"deps-delay", a->deps_delay == d->deps_delay, sc == SN_SCHEDULE_DEPS, "--schedule deps"},
        {"deps-ramp", a->deps_ramp == d->deps_ramp, sc == SN_SCHEDULE_DEPS, "--schedule deps"},
        {"subnets-per-step", a->subnets_per_step == d->subnets_per_step, sorted,
         "--schedule sortednet"},
        {"sandwich-random", a->sandwich_random == d->sandwich_random, !sorted, sandwiches},
        {"no-distill", a->no_distill == d->no_distill, !sorted, sandwiches},
        {"distill-weight", a->distill_weight == d->distill_weight, distilled, teachers},
        {"distill-ramp", a->distill_ramp == d->distill_ramp, distilled, teachers},
        {"macs-buckets", a->macs_buckets == d->macs_buckets, macs, "--sample-by macs or log-macs"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!rules[i].applies && given(c, rules[i].name, rules[i].at_default))
            return sn_errf(err, errlen, "--%s is for %s", rules[i].name, rules[i].what);
    if (a->fixed_subnet && sc != SN_SCHEDULE_SANDWICH)
        return sn_errf(err, errlen, "--fixed-subnet trains one sub-network alone; it does not "
                                    "combine with --schedule %s", a->schedule);
    if (a->fixed_subnet && macs)
        return sn_errf(err, errlen, "--sample-by %s is for the schedules that draw "
                                    "sub-networks, not --fixed-subnet", a->sample_by);
    o->n_random = (int)a->sandwich_random;
    o->subnets_per_step = (int)a->subnets_per_step;
    o->deps_delay = a->deps_delay;
    o->deps_ramp = a->deps_ramp;
    o->macs_buckets = (int)a->macs_buckets;
    o->sort_channels = strcmp(a->sort_channels, "off") != 0;
    if (o->n_sort_at > 0 && a->fixed_subnet)
        return sn_errf(err, errlen, "--sort-channels %s: sorting would change the sub-network "
                                    "--fixed-subnet trains; it is for the schedules that "
                                    "share weights", a->sort_channels);
    o->distill = !a->no_distill;
    o->distill_weight = (float)a->distill_weight;
    o->distill_ramp = a->distill_ramp;
    return sn_train_opts_check(o, err, errlen);
}

/* Checks the options that need no data; SN_ERR with a message. */
static int check_options(train_ctx *c, char *err, size_t errlen)
{
    train_args *a = c->a;
    if (strcmp(a->task, "image") != 0 && strcmp(a->task, "lm") != 0)
        return sn_errf(err, errlen, "--task '%s': expected image (Fashion-MNIST-style IDX "
                                    "files) or lm (a byte text file)", a->task);
    c->lm = strcmp(a->task, "lm") == 0;
    if (!sn_cli_find(c->opts, "data")->seen)
        a->data = c->lm ? "/usr/share/games/fortunes" : "/usr/share/datasets/fashion-mnist";
    /* both on the command line is a mistake; a config file (a run's
     * resolved `config` holds both) yields to the command line, and in a
     * file --steps overrides --epochs as it does by default */
    const sn_opt *so = sn_cli_find(c->opts, "steps"), *eo = sn_cli_find(c->opts, "epochs");
    if (so->seen == SN_SEEN_ARGV && eo->seen == SN_SEEN_ARGV)
        return sn_errf(err, errlen, "give either --steps or --epochs, not both");
    if (so->seen == SN_SEEN_FILE && eo->seen == SN_SEEN_ARGV) a->steps = 0;
    const sn_opt *sl = sn_cli_find(c->opts, "seq-len");
    if (sl->seen == SN_SEEN_ARGV && !c->lm)
        return sn_errf(err, errlen, "--seq-len is for --task lm; the image task's sequence is "
                                    "its patches (--patch)");
    if (c->lm && (a->shift > 0 || a->hflip))
        return sn_errf(err, errlen, "--%s is for the image task (it alters images; a language "
                       "model's sequences are text)", a->shift > 0 ? "shift" : "hflip");
    if (strcmp(a->ring, "plain") != 0 && strcmp(a->ring, "token") != 0)
        return sn_errf(err, errlen, "--ring '%s': expected plain (key/value blocks travel the "
                                    "ring) or token (TokenRing: queries one way, outputs back)",
                       a->ring);
    if (check_schedule(c, err, errlen) != SN_OK) return SN_ERR;
    if (sn_space_from_flags(&a->space, &c->space, err, errlen) != SN_OK) return SN_ERR;
    if (c->lm && sn_space_has_stem(&c->space))
        return sn_errf(err, errlen, "--stem is for the image task (a language model's tokens "
                       "are bytes, not pixels)");
    if (a->checkpoint_dir) {
        c->ckpt_dir = a->checkpoint_dir;
    } else if (a->run_dir) {
        snprintf(c->ckpt_dir_buf, sizeof c->ckpt_dir_buf, "%s/checkpoints", a->run_dir);
        c->ckpt_dir = c->ckpt_dir_buf;
    }
    /* the same command again continues the run (a requeued batch job) */
    if (!a->resume && c->ckpt_dir && ckpt_dir_has_latest(c->ckpt_dir)) a->resume = "";
    if (a->resume && a->resume[0] == '\0' && !c->ckpt_dir)
        return sn_errf(err, errlen, "--resume without a file needs --run-dir or --checkpoint-dir");
    if (a->stop_after > 0 && !c->ckpt_dir)
        return sn_errf(err, errlen, "--stop-after needs --run-dir or --checkpoint-dir (the "
                                    "run is resumed from its checkpoint)");
    return SN_OK;
}

/* Options a continued run may change: where and how it runs, how it
 * logs and checkpoints, and its length (--steps/--epochs extend a run; the
 * learning-rate schedule follows the new length).  --seed and --val-size
 * are checked on their own (a continuation without them takes the
 * checkpoint's). */
static const char *const RESUME_MAY_CHANGE[] = {
    "resume", "run-dir", "checkpoint-dir", "stop-after", "steps", "epochs", "data", "threads",
    "blis-arch", "dp", "pp", "sp", "micro-batches", "ring", "bucket-kb", "log-every", "quiet",
    "no-report", "report-random", "checkpoint-every", "checkpoint-minutes", "keep",
    "skip-nonfinite", "debug-nan-step", "debug-nan-rank", "debug-checkpoint-pause", "seed",
    "val-size", "dry-run", NULL};

/* The checkpoint to resume from, and the seed it fixes: a resumed run
 * keeps its validation split and sampling, so --seed must agree, and so
 * must every option that shapes the training (the checkpoint's resolved
 * options); *code is SN_EXIT_USAGE for a mismatch. */
static int resolve_resume(train_ctx *c, char *path, size_t len, int *code, char *err,
                          size_t errlen)
{
    *code = SN_EXIT_FAILURE;
    train_args *a = c->a;
    const char *arg = a->resume[0] ? a->resume : c->ckpt_dir;
    if (sn_ckpt_resolve(arg, path, len, err, errlen) != SN_OK) return SN_ERR;
    sn_file_info *fi = calloc(1, sizeof *fi);
    if (!fi) return sn_errf(err, errlen, "out of memory");
    int rc = sn_file_read_info(sn_mpi_world(), path, fi, err, errlen);
    if (rc == SN_OK && fi->is_model)
        rc = sn_errf(err, errlen, "%s: an exported model cannot be resumed (it is not a "
                                  "supernet checkpoint)", path);
    if (rc == SN_OK && sn_cli_find(c->opts, "seed")->seen && (uint64_t)a->seed != fi->seed)
        rc = sn_errf(err, errlen, "%s was trained with --seed %llu, not %lld", path,
                     (unsigned long long)fi->seed, (long long)a->seed);
    if (rc == SN_OK && sn_cli_find(c->opts, "val-size")->seen && a->val_size != fi->val_size)
        rc = sn_errf(err, errlen, "%s was trained with --val-size %lld, not %lld", path,
                     (long long)fi->val_size, (long long)a->val_size);
    char what[512];
    if (rc == SN_OK && sn_cli_config_diff(c->opts, fi->options, RESUME_MAY_CHANGE, what,
                                          sizeof what) == 1) {
        *code = SN_EXIT_USAGE;
        rc = sn_errf(err, errlen, "%s: %s; continue with the options it was started with "
                     "(its run directory's config) or start a new run elsewhere", path, what);
    }
    if (rc == SN_OK) {
        a->seed = (int64_t)fi->seed;
        a->val_size = fi->val_size;
    }
    free(fi);
    return rc;
}

/* The language model's data: a byte text, windows of --seq-len bytes. */
static int setup_text(train_ctx *c, int *code, char *err, size_t errlen)
{
    train_args *a = c->a;
    *code = SN_EXIT_FAILURE;
    if (sn_text_load(a->data, a->seq_len, &c->text, err, errlen) != SN_OK) return SN_ERR;
    *code = SN_EXIT_USAGE;
    c->space.task = SN_TASK_LM;
    c->space.n_tokens = (int)a->seq_len;
    c->space.token_dim = 256;
    c->space.n_classes = 256;
    if (sn_space_validate(&c->space, err, errlen) != SN_OK) return SN_ERR;
    c->norm = (sn_norm){0.0f, 1.0f};
    c->n_train = c->text.train_end;
    c->steps_per_epoch = c->text.train_end / (a->batch * a->seq_len);
    if (c->steps_per_epoch < 1) c->steps_per_epoch = 1;
    return SN_OK;
}

/* Loads the data and derives the task dimensions of the space. */
static int setup_data(train_ctx *c, int *code, char *err, size_t errlen)
{
    train_args *a = c->a;
    if (c->lm) return setup_text(c, code, err, errlen);
    *code = SN_EXIT_FAILURE; /* unreadable data is a failed run */
    if (sn_images_load_dir(a->data, "train", &c->train, err, errlen) != SN_OK ||
        sn_images_load_dir(a->data, "test", &c->test, err, errlen) != SN_OK)
        return SN_ERR;
    if (c->test.rows != c->train.rows || c->test.cols != c->train.cols)
        return sn_errf(err, errlen, "%s: test images are %dx%d, training images %dx%d", a->data,
                       c->test.rows, c->test.cols, c->train.rows, c->train.cols);
    *code = SN_EXIT_USAGE; /* options that do not fit the data */
    if (sn_split_indices(c->train.n, a->val_size, (uint64_t)a->seed, &c->train_idx, &c->n_train,
                         &c->val_idx, &c->n_val, err, errlen) != SN_OK)
        return SN_ERR;
    if (a->train_subset > 0 && a->train_subset < c->n_train) c->n_train = a->train_subset;
    if (a->shift >= c->train.rows || a->shift >= c->train.cols)
        return sn_errf(err, errlen, "--shift %lld: the images are %dx%d, so a shift that large "
                       "can move all of an image out of the frame", (long long)a->shift,
                       c->train.rows, c->train.cols);
    int n_tokens, token_dim;
    if (sn_patch_dims(&c->train, (int)a->patch, sn_stem_convs(&c->space), &n_tokens, &token_dim, err, errlen) != SN_OK)
        return SN_ERR;
    c->space.n_tokens = n_tokens;
    c->space.token_dim = token_dim;
    c->space.n_classes =
        c->train.n_classes > c->test.n_classes ? c->train.n_classes : c->test.n_classes;
    if (sn_space_validate(&c->space, err, errlen) != SN_OK) return SN_ERR;
    c->norm = sn_images_norm(&c->train, c->train_idx, c->n_train);
    c->steps_per_epoch = (c->n_train + a->batch - 1) / a->batch;
    return SN_OK;
}

/* Checks the rank layout against the model and batch, then builds the
 * grid.  Every rank reaches the same verdict, so a refused layout ends
 * every rank with the same message and no rank waits for another. */
static int setup_layout(train_ctx *c, char *err, size_t errlen)
{
    train_args *a = c->a;
    c->layout = (sn_layout){.dp = (int)a->dp, .pp = (int)a->pp, .sp = (int)a->sp};
    char what[96];
    if (c->lm)
        snprintf(what, sizeof what, "--seq-len %lld", (long long)a->seq_len);
    else
        snprintf(what, sizeof what, "%d tokens per image with --patch %lld", c->space.n_tokens,
                 (long long)a->patch);
    if (sn_layout_resolve(&c->layout, c->mpi->size, sn_space_max_blocks(&c->space),
                          c->space.n_tokens, c->lm ? SN_SEQ_ZIGZAG : SN_SEQ_CONTIGUOUS,
                          a->batch, a->micro, what, err,
                          errlen) != SN_OK)
        return SN_ERR;
    if (sn_grid_create(sn_mpi_world(), &c->layout, &c->grid, err, errlen) != SN_OK)
        return SN_ERR;
    c->grid_up = true;
    return SN_OK;
}

static void fill_train_opts(train_ctx *c, sn_train_opts *to, const sn_subnet *fixed)
{
    train_args *a = c->a;
    *to = c->sched;
    if (fixed) {
        to->schedule = SN_SCHEDULE_FIXED;
        to->fixed = *fixed;
    }
    int64_t total = a->steps > 0 ? a->steps : a->epochs * c->steps_per_epoch;
    to->label_smoothing = (float)a->smoothing;
    to->clip = (float)a->clip;
    to->seed = (uint64_t)a->seed;
    to->threads = c->nt;
    to->adamw.lr = (float)a->lr;
    to->adamw.min_lr = (float)a->min_lr;
    to->adamw.weight_decay = (float)a->weight_decay;
    to->adamw.total = total;
    to->adamw.warmup = a->warmup >= 0 ? a->warmup : total / 20;
}

static int save_checkpoint(train_ctx *c, char *err, size_t errlen)
{
    sn_train_state ts = {.step = c->tr.step, .epoch = c->loader.epoch,
                         .cursor = c->loader.cursor, .schedule = c->tr.o.schedule};
    if (ts.schedule == SN_SCHEDULE_FIXED)
        sn_subnet_format(&c->tr.o.fixed, ts.fixed_subnet, sizeof ts.fixed_subnet);
    char path[4096];
    double t0 = sn_now();
    int owner[SN_MAX_PARAM_TENSORS];
    sn_dist_owners(&c->dist, owner);
    if (sn_ckpt_save(sn_mpi_world(), c->ckpt_dir, c->model, &c->tr.opt, &ts, &c->info,
                     (int)c->a->keep, owner, path, sizeof path, err, errlen) != SN_OK)
        return SN_ERR;
    if (!c->a->quiet) say(c, "checkpoint %s (step %lld, %.2f s)", path, (long long)ts.step,
                          sn_now() - t0);
    return SN_OK;
}

/* Writes the run directory's config; keeps the same text for checkpoints. */
static int write_run_config(train_ctx *c, char *err, size_t errlen)
{
    FILE *mem = open_memstream(&c->options_text, &c->options_len);
    if (!mem) return sn_errf(err, errlen, "out of memory");
    sn_cli_write_config(mem, c->opts);
    /* facts of this run, not options: a section that --config skips, so
     * the file as a whole is a valid --config */
    fprintf(mem, "\n[run]\nthreads = %d\nblis_kernels = %s\nranks = %d\ndp = %d\npp = %d\n"
                 "sp = %d\n",
            c->nt, sn_blas_arch_name(), c->mpi->size, c->layout.dp, c->layout.pp,
            c->layout.sp);
    if (!c->lm) fprintf(mem, "norm_mean = %.9g\nnorm_std = %.9g\n", c->norm.mean, c->norm.std);
    fclose(mem);
    snprintf(c->info.options, sizeof c->info.options, "%s", c->options_text);
    if (!c->a->run_dir || !c->root) return SN_OK;
    if (sn_mkdirs(c->a->run_dir, err, errlen) != SN_OK) return SN_ERR;
    FILE *cf = sn_run_open(c->a->run_dir, "config", "w", err, errlen);
    if (!cf) return SN_ERR;
    fprintf(cf, "# supernest %s train: resolved options (usable as --config)\n%s", SN_VERSION,
            c->options_text);
    return sn_run_close(cf, "config", err, errlen);
}

/* Sub-network n on the validation (val) or test split, the examples
 * spread over every rank of the job (each evaluates its share with the
 * whole model, whose weights sn_dist_sync_weights made current). */
static sn_eval_result eval_split(train_ctx *c, const sn_subnet *n, bool val)
{
    const int W = c->mpi->size, r = c->mpi->rank;
    const sn_eval_data d = {.train = &c->train, .test = &c->test, .val_idx = c->val_idx,
                            .n_val = c->n_val, .patch = (int)c->a->patch, .norm = c->norm,
                            .text = c->lm ? &c->text : NULL, .seq_len = c->space.n_tokens};
    const int64_t total = sn_eval_count(&d, !val);
    const int64_t lo = total * r / W, hi = total * (r + 1) / W;
    sn_eval_result e = sn_evaluate_split(c->nt, c->model, c->eval_acts, c->eval_attn,
                                         c->eval_batch, n, &d, !val, lo, hi - lo, c->eval_tokens,
                                         c->eval_ids, c->eval_labels);
    double sums[3] = {(double)e.n, e.loss * (double)e.n, e.accuracy * (double)e.n};
    sn_mpi_sum_doubles(sums, 3);
    return sn_eval_result_of(sums[1], sums[2], (int64_t)sums[0]);
}

/* Evaluates the largest, smallest and a few random sub-networks (or the
 * fixed one) on the validation and test splits; prints and records them.
 * Images: accuracy and cross-entropy; language model: next-byte accuracy
 * and bits per byte. */
static int final_report(train_ctx *c, char *err, size_t errlen)
{
    train_args *a = c->a;
    int n_rows = 0;
    report_row rows[2 + 64];
    if (c->tr.o.schedule == SN_SCHEDULE_FIXED) {
        rows[n_rows++] = (report_row){"fixed", c->tr.o.fixed};
    } else {
        rows[n_rows].role = "max";
        sn_subnet_max(&c->space, &rows[n_rows++].net);
        rows[n_rows].role = "min";
        sn_subnet_min(&c->space, &rows[n_rows++].net);
        sn_rng r;
        sn_rng_seed(&r, (uint64_t)a->seed, STREAM_REPORT);
        for (int i = 0; i < a->report_random; i++) {
            rows[n_rows].role = "rand";
            sn_subnet_sample(&c->space, &r, &rows[n_rows++].net);
        }
    }
    sn_dist_sync_weights(&c->dist);
    FILE *evalf = NULL;
    int code = SN_EXIT_OK;
    if (c->root && a->run_dir && !(evalf = sn_run_open(a->run_dir, "eval.jsonl", "w", err, errlen)))
        code = SN_EXIT_FAILURE;
    if (sn_mpi_agree(&code, err, errlen) != SN_OK) return SN_ERR;
    /* bits per byte: the mean cross-entropy in nats over ln 2 */
    const double to_metric = c->lm ? 1.0 / log(2.0) : 1.0;
    const char *metric = c->lm ? "bpb" : "loss";
    say(c, "\n%-5s %9s %9s %8s %8s %8s  %s", "role", "params", "MACs", "val_acc", "test_acc",
        c->lm ? "test_bpb" : "test_loss", "sub-network");
    for (int i = 0; i < n_rows; i++) {
        sn_eval_result v = eval_split(c, &rows[i].net, true);
        sn_eval_result t = eval_split(c, &rows[i].net, false);
        if (!c->root) continue;
        char name[SN_SUBNET_STRLEN];
        sn_subnet_format(&rows[i].net, name, sizeof name);
        int64_t params = sn_subnet_params(&c->space, &rows[i].net);
        int64_t macs = sn_subnet_macs(&c->space, &rows[i].net);
        say(c, "%-5s %8.3fM %8.2fM %8.4f %8.4f %8.4f  %s", rows[i].role, (double)params / 1e6,
            (double)macs / 1e6, v.accuracy, t.accuracy, t.loss * to_metric, name);
        if (evalf)
            fprintf(evalf, "{\"role\":\"%s\",\"subnet\":\"%s\",\"params\":%lld,\"macs\":%lld,"
                           "\"val_acc\":%.6f,\"val_%s\":%.6f,\"test_acc\":%.6f,"
                           "\"test_%s\":%.6f}\n",
                    rows[i].role, name, (long long)params, (long long)macs, v.accuracy, metric,
                    v.loss * to_metric, t.accuracy, metric, t.loss * to_metric);
    }
    return evalf ? sn_run_close(evalf, "eval.jsonl", err, errlen) : SN_OK;
}

static double epoch_of(const train_ctx *c)
{
    if (c->lm) return (double)c->tr.step / (double)c->steps_per_epoch;
    return (double)c->loader.epoch + (double)c->loader.cursor / (double)c->n_train;
}

/* The terminal's status line after every step (rank 0, not --quiet):
 * where the run is, this step's losses, throughput and time left. */
static void show_status(train_ctx *c, const sn_step_stats *st, double per_s, const char *eta,
                        bool force)
{
    if (!c->root || c->a->quiet || !c->prog.tty) return;
    char losses[256];
    size_t n = 0;
    losses[0] = '\0';
    for (int k = 0; k < st->n_members && n < sizeof losses; k++) {
        bool same = k > 0 && strcmp(st->role[k], st->role[k - 1]) == 0; /* rand 2.30 2.29 */
        n += (size_t)snprintf(losses + n, sizeof losses - n, " %s%s%.3f", same ? "" : st->role[k],
                              same ? "" : " ", st->loss[k]);
    }
    sn_progress_status(&c->prog, force, "step %lld/%lld epoch %.2f | eta %s | %.0f %s/s |%s",
                       (long long)c->tr.step, (long long)c->tr.o.adamw.total, epoch_of(c), eta,
                       per_s, c->lm ? "tok" : "img", losses);
}

/* One logged step: the log line, and the metrics record; elapsed counts
 * from the start of this process's training, which started (or continued
 * the run) at step first. */
static void log_step(train_ctx *c, const sn_step_stats *st, double ips, double gf,
                     double elapsed, int64_t first, const char *eta)
{
    if (!c->root) return;
    double ep = epoch_of(c);
    const char *unit = c->lm ? "tokens" : "images";
    if (!c->a->quiet) {
        char losses[256];
        format_losses(losses, sizeof losses, st);
        say(c, "step %lld/%lld epoch %.2f lr %.3g%s | %.0f %s/s %.0f GFLOP/s eta %s",
            (long long)c->tr.step, (long long)c->tr.o.adamw.total, ep, st->lr, losses, ips,
            c->lm ? "tok" : "img", gf, eta);
    }
    if (c->metrics) {
        fprintf(c->metrics, "{\"step\":%lld,\"epoch\":%.4f,\"lr\":%.6g,", (long long)c->tr.step,
                ep, st->lr);
        print_losses(c->metrics, st, true);
        fprintf(c->metrics, ",\"grad_norm\":%.9g,\"%s_per_s\":%.2f,\"gflops\":%.2f,"
                            "\"elapsed_s\":%.3f,\"start_step\":%lld}\n",
                st->grad_norm, unit, ips, gf, elapsed, (long long)first);
        fflush(c->metrics);
    }
}

/* Fills this rank's part of the next step's batch: the data rank's slice
 * of the B sequences every rank draws alike, at this rank's positions. */
static void next_batch(train_ctx *c)
{
    train_args *a = c->a;
    const sn_dist *d = &c->dist;
    const int64_t bl = d->b_local, tl = d->sh.tl;
    const int64_t *mine = c->ids + (int64_t)c->grid.d * bl;
    if (c->lm) {
        sn_text_train_starts(&c->text, (uint64_t)a->seed, c->tr.step, a->batch, a->seq_len,
                             c->ids);
        sn_text_batch(&c->text, mine, bl, a->seq_len, d->pos, tl, c->input, c->labels);
    } else {
        sn_loader_next(&c->loader, c->ids, a->batch);
        sn_augment_draw((uint64_t)a->seed, c->tr.step, a->batch, (int)a->shift, a->hflip, c->aug);
        sn_images_batch_at(&c->train, mine, bl, (int)a->patch, sn_stem_convs(&c->space),
                           c->norm, d->pos, tl, c->aug + (int64_t)c->grid.d * bl, c->input,
                           c->labels);
    }
}

/* Importance sorting (src/sort.h) where the schedule opens the widths:
 * each rank sorts the blocks of its own stage, weights and AdamW moments
 * alike (replicas hold the same weights, so they sort alike). */
static int sort_channels(train_ctx *c, char *err, size_t errlen)
{
    float *follow[2] = {c->tr.opt.m, c->tr.opt.v};
    sn_sort_stats ss;
    if (sn_sort_channels(c->model, follow, 2, c->dist.sh.block_lo, c->dist.sh.block_hi, &ss) !=
        SN_OK)
        return sn_errf(err, errlen, "out of memory sorting channels");
    say(c, "step %lld: heads and MLP units sorted by importance (%d heads and %d units moved "
           "in %d blocks%s)",
        (long long)c->tr.step, ss.heads_moved, ss.units_moved, ss.blocks,
        c->layout.pp > 1 ? " of the first stage" : "");
    return SN_OK;
}

/* Why train_loop returned before the schedule's end (STOP_NONE: it ended). */
enum { STOP_NONE = 0, STOP_AFTER, STOP_SIGNAL };

/* What every rank learns at a step boundary, in one int all-reduced with
 * MAX: bit 0, rank 0's clock says a checkpoint is due; above it, the
 * number of a signal some rank caught (0: none). */
enum { AGREE_CKPT_DUE = 1, AGREE_SIGNAL_SHIFT = 1 };

/* Trains until the schedule's end, --stop-after, or a signal on any rank
 * (all ranks agree at the step boundary and stop at the same step, with a
 * checkpoint when the run has a checkpoint directory); *stop tells which
 * and *sig which signal. */
static int train_loop(train_ctx *c, int *stop, int *sig, char *err, size_t errlen)
{
    train_args *a = c->a;
    const int64_t total = c->tr.o.adamw.total, first = c->tr.step;
    double t0 = sn_now(), tlog = t0, tckpt = t0;
    int64_t items_since = 0;
    uint64_t flops_since = 0;
    *stop = STOP_NONE;
    *sig = 0;
    const int64_t per_step = c->lm ? a->batch * a->seq_len : a->batch;
    const sn_schedule sc = c->tr.o.schedule;
    const bool phased = sc == SN_SCHEDULE_PROGRESSIVE || sc == SN_SCHEDULE_DEPS;
    while (c->tr.step < total) {
        /* where a phased schedule starts, and where its phase changes */
        if (phased && (c->tr.step == first || sn_schedule_phase(&c->tr.o, c->tr.step) !=
                                                  sn_schedule_phase(&c->tr.o, c->tr.step - 1))) {
            char what[160];
            say(c, "step %lld: %s", (long long)c->tr.step,
                sn_schedule_describe(&c->tr.o, c->tr.step, what, sizeof what));
        }
        if (sn_schedule_sorts_before(&c->tr.o, c->tr.step) &&
            sort_channels(c, err, errlen) != SN_OK)
            return SN_ERR;
        next_batch(c);
        sn_step_stats st;
        if (sn_dist_step(&c->dist, c->input, c->labels, &st, err, errlen) != SN_OK)
            return SN_ERR;
        if (st.skipped) say(c, "skipped (--skip-nonfinite): %s", err);
        items_since += per_step;
        flops_since += st.flops;
        const int64_t step = c->tr.step, done = step - first;
        bool last = step == total;
        double now = sn_now();
        char eta[32];
        format_eta(eta, sizeof eta, (now - t0) / (double)done * (double)(total - step));
        show_status(c, &st, (double)(done * per_step) / (now - t0), eta, last);
        /* rank 0's clock decides a timed checkpoint, so every rank
         * checkpoints at the same step; a signal on any rank stops all */
        int agree = sn_stop_signal() << AGREE_SIGNAL_SHIFT;
        if (c->root && c->ckpt_dir &&
            ((a->checkpoint_every > 0 && step % a->checkpoint_every == 0) ||
             (a->checkpoint_minutes > 0 && sn_now() - tckpt >= 60.0 * a->checkpoint_minutes)))
            agree |= AGREE_CKPT_DUE;
        sn_mpi_max_int(&agree);
        if ((agree >> AGREE_SIGNAL_SHIFT) && !last) {
            *stop = STOP_SIGNAL;
            *sig = agree >> AGREE_SIGNAL_SHIFT; /* maybe caught by another rank */
        } else if (a->stop_after > 0 && done >= a->stop_after && !last) {
            *stop = STOP_AFTER;
        }
        /* a run that stops logs its last step too: its metrics then hold
         * every step's time and work */
        if ((step % a->log_every == 0 || last || *stop) && !st.skipped) {
            double dt = now - tlog;
            log_step(c, &st, (double)items_since / dt, (double)flops_since / dt / 1e9, now - t0,
                     first, eta);
            tlog = now;
            items_since = 0;
            flops_since = 0;
        }
        if (c->ckpt_dir && ((agree & AGREE_CKPT_DUE) || last || *stop)) {
            if (save_checkpoint(c, err, errlen) != SN_OK) return SN_ERR;
            tckpt = sn_now();
        }
        if (*stop) break;
    }
    double secs = sn_now() - t0;
    sn_progress_done(&c->prog);
    if (c->mpi->size > 1) sn_dist_report(&c->dist, c->tr.step - first, stdout);
    say(c, "%s %lld steps in %.1f s (%.1f %s/s)", *stop ? "stopped after" : "trained",
        (long long)(c->tr.step - first), secs, (double)((c->tr.step - first) * per_step) / secs,
        c->lm ? "tokens" : "images");
    return SN_OK;
}

/* Returns SN_EXIT_OK, SN_EXIT_USAGE for a bad configuration (options,
 * search space, sub-network, checkpoint that does not match) or
 * SN_EXIT_FAILURE when the run itself fails (data, memory, non-finite
 * loss, I/O), with err set. */
/* The model, optimizer, this rank's pipeline part, the data loader and
 * the batch and evaluation buffers. */
static int setup_training(train_ctx *c, const sn_train_opts *to, char *err, size_t errlen)
{
    train_args *a = c->a;
    c->model = sn_model_create(&c->space, (uint64_t)a->seed);
    if (!c->model) return sn_errf(err, errlen, "out of memory creating the supernet");
    if (sn_trainer_init(&c->tr, c->model, 0, to, err, errlen) != SN_OK) return SN_ERR;
    c->trainer_up = true;
    sn_dist_opts dopt = {.micro = (int)a->micro, .batch = a->batch,
                         .ring = strcmp(a->ring, "token") == 0 ? SN_RING_TOKEN : SN_RING_PLAIN,
                         .bucket_bytes = (size_t)a->bucket_kb * 1024,
                         .skip_nonfinite = (int)a->skip_nonfinite,
                         .debug_nan_step = a->debug_nan_step,
                         .debug_nan_rank = (int)a->debug_nan_rank};
    if (sn_dist_init(&c->dist, &c->grid, &c->tr, &dopt, err, errlen) != SN_OK) return SN_ERR;
    c->dist_up = true;
    if (!c->lm &&
        sn_loader_init(&c->loader, c->train_idx, c->n_train, (uint64_t)a->seed, err, errlen))
        return SN_ERR;
    const int64_t bl = c->dist.b_local, tl = c->dist.sh.tl, T = c->space.n_tokens;
    const size_t in_bytes = c->lm ? sizeof(int32_t) : (size_t)c->space.token_dim * sizeof(float);
    c->input = sn_alloc((size_t)(bl * tl) * in_bytes);
    c->labels = sn_alloc((size_t)(bl * tl) * sizeof(int32_t));
    c->ids = sn_alloc((size_t)a->batch * sizeof(int64_t));
    c->aug = sn_alloc((size_t)a->batch * sizeof *c->aug);
    /* evaluation runs the whole model on each rank: long sequences in
     * smaller batches */
    c->eval_batch = c->lm ? (a->batch < 8 ? a->batch : 8) : a->batch;
    c->eval_acts = sn_eval_acts(&c->space, c->eval_batch, &c->eval_attn);
    c->eval_tokens = sn_alloc((size_t)(c->eval_batch * T * c->space.token_dim) * sizeof(float));
    c->eval_ids = sn_alloc((size_t)(c->eval_batch * T) * sizeof(int32_t));
    c->eval_labels = sn_alloc((size_t)(c->eval_batch * T) * sizeof(int32_t));
    if (!c->input || !c->labels || !c->ids || !c->aug || !c->eval_acts || !c->eval_tokens ||
        !c->eval_ids || !c->eval_labels)
        return sn_errf(err, errlen, "out of memory allocating batch buffers");
    return SN_OK;
}

static void print_header(train_ctx *c, const sn_train_opts *to)
{
    const train_args *a = c->a;
    char schedule_text[160], blend[96] = "";
    const char *by = sn_sample_by_label(to->sample_by);
    if (sn_schedule_has_teacher(to)) {
        const int64_t full = sn_distill_ramp_end(to);
        if (full > 0)
            snprintf(blend, sizeof blend, ", teacher's share of the targets ramped from 0 to %g "
                     "at step %lld", (double)to->distill_weight, (long long)full);
        else if (to->distill_weight < 1.0f)
            snprintf(blend, sizeof blend, ", teacher's share of the targets %g",
                     (double)to->distill_weight);
    }
    snprintf(schedule_text, sizeof schedule_text, "schedule %s%s%s%s%s", a->schedule,
             by ? " (by " : "", by ? by : "", by ? ")" : "", blend);
    char maxs[SN_SUBNET_STRLEN], mins[SN_SUBNET_STRLEN];
    sn_subnet big, small;
    sn_subnet_max(&c->space, &big);
    sn_subnet_min(&c->space, &small);
    sn_subnet_format(&big, maxs, sizeof maxs);
    sn_subnet_format(&small, mins, sizeof mins);
    if (c->lm)
        say(c, "supernest train: %lld training bytes of %s (%lld validation, %lld test), "
               "sequences of %d bytes",
               (long long)c->text.train_end, a->data,
               (long long)(c->text.val_end - c->text.train_end),
               (long long)(c->text.n - c->text.val_end), c->space.n_tokens);
    else if (sn_space_has_stem(&c->space)) {
        char stem[64];
        sn_stem_format(&c->space, stem, sizeof stem);
        say(c, "supernest train: %lld training images (%lld held out for validation), %d "
               "tokens of %d values (pixel windows through a %s convolutional stem)",
               (long long)c->n_train, (long long)c->n_val, c->space.n_tokens,
               c->space.token_dim, stem);
    } else
        say(c, "supernest train: %lld training images (%lld held out for validation), %d "
               "tokens of %d values",
               (long long)c->n_train, (long long)c->n_val, c->space.n_tokens,
               c->space.token_dim);
    if (a->shift > 0 || a->hflip) {
        char moved[64] = "";
        if (a->shift > 0)
            snprintf(moved, sizeof moved, "%smoved by up to %lld pixel%s each way",
                     a->hflip ? ", then " : "", (long long)a->shift, a->shift == 1 ? "" : "s");
        say(c, "augmentation: training images %s%s",
            a->hflip ? "mirrored left-right half the time" : "", moved);
    }
    say(c, "search space: %.3g sub-networks, largest %s (%.2fM params), smallest %s (%.2fM)",
           sn_space_count(&c->space), maxs, (double)sn_subnet_params(&c->space, &big) / 1e6, mins,
           (double)sn_subnet_params(&c->space, &small) / 1e6);
    say(c, "%lld steps of batch %lld, %s, %d ranks (data %d x pipeline %d x sequence %d%s%s), "
           "%lld micro-batches, %d threads per rank, BLIS kernels %s",
           (long long)to->adamw.total, (long long)a->batch,
           a->fixed_subnet ? "fixed sub-network" : schedule_text, c->mpi->size, c->layout.dp,
           c->layout.pp, c->layout.sp, c->layout.sp > 1 ? ", ring " : "",
           c->layout.sp > 1 ? a->ring : "", (long long)a->micro, c->nt, sn_blas_arch_name());
}

static int run(train_ctx *c, char *err, size_t errlen)
{
    train_args *a = c->a;
    int code = SN_EXIT_USAGE;
    char resume_path[4096] = "";
    c->root = c->mpi->rank == 0;
    if (check_options(c, err, errlen) != SN_OK) return code;
    if (a->resume &&
        resolve_resume(c, resume_path, sizeof resume_path, &code, err, errlen) != SN_OK)
        return code;
    if (sn_blas_init(a->blis_arch, err, errlen) != SN_OK) return code;
    c->nt = a->threads > 0 ? (int)a->threads : sn_mpi_default_threads(c->mpi);
    if (c->nt > SN_MAX_THREADS) c->nt = SN_MAX_THREADS;
    /* data can be missing on one node only: every rank learns of it */
    if (setup_data(c, &code, err, errlen) == SN_OK) code = SN_EXIT_OK;
    if (sn_mpi_agree(&code, err, errlen) != SN_OK) return code;
    code = SN_EXIT_USAGE;
    if (setup_layout(c, err, errlen) != SN_OK) return code;

    sn_subnet fixed;
    if (a->fixed_subnet && sn_subnet_parse(&c->space, a->fixed_subnet, &fixed, err, errlen))
        return SN_EXIT_USAGE;
    sn_train_opts to;
    fill_train_opts(c, &to, a->fixed_subnet ? &fixed : NULL);
    if (to.n_sort_at > 0 && to.sort_at[to.n_sort_at - 1] >= to.adamw.total) {
        sn_errf(err, errlen, "--sort-channels %s: step %lld is not before the run's end (%lld "
                             "steps)", a->sort_channels, (long long)to.sort_at[to.n_sort_at - 1],
                (long long)to.adamw.total);
        return code;
    }
    if (a->dry_run) {
        print_header(c, &to);
        if (a->fixed_subnet) {
            char fs[SN_SUBNET_STRLEN];
            sn_subnet_format(&fixed, fs, sizeof fs);
            say(c, "fixed sub-network %s (%.2fM params)", fs,
                (double)sn_subnet_params(&c->space, &fixed) / 1e6);
        }
        say(c, "dry run: the options, data and rank layout check out; nothing trained or "
               "written");
        return SN_EXIT_OK;
    }
    c->info = (sn_file_info){.patch = c->lm ? 0 : (int)a->patch, .image_rows = c->train.rows,
                             .image_cols = c->train.cols, .norm_mean = c->norm.mean,
                             .norm_std = c->norm.std, .seed = (uint64_t)a->seed,
                             .val_size = a->val_size};

    code = SN_EXIT_FAILURE;
    if (setup_training(c, &to, err, errlen) == SN_OK) code = SN_EXIT_OK;
    if (sn_mpi_agree(&code, err, errlen) != SN_OK) return code;
    code = SN_EXIT_FAILURE;

    if (resume_path[0]) {
        sn_train_state ts;
        if (sn_ckpt_load(sn_mpi_world(), resume_path, c->model, &c->tr.opt, &ts, err, errlen))
            return code;
        /* the options' comparison (resolve_resume) has refused another
         * schedule already, unless the file's options predate --schedule */
        const bool was_fixed = ts.schedule == SN_SCHEDULE_FIXED;
        if (was_fixed != (a->fixed_subnet != NULL)) {
            sn_errf(err, errlen, "%s was trained %s; give the same --fixed-subnet to resume",
                    resume_path, was_fixed ? "with --fixed-subnet" : "as a supernet");
            return SN_EXIT_USAGE;
        }
        if (ts.schedule != to.schedule) {
            sn_errf(err, errlen, "%s was trained with --schedule %s; give the same --schedule "
                    "to resume", resume_path, sn_schedule_name(ts.schedule));
            return SN_EXIT_USAGE;
        }
        if (!c->lm && ts.cursor > c->loader.n) {
            sn_errf(err, errlen, "%s: its data loader stands at image %lld of an epoch, but %s "
                    "has %lld training images: other data than the run's", resume_path,
                    (long long)ts.cursor, a->data, (long long)c->loader.n);
            return SN_EXIT_USAGE;
        }
        c->tr.step = ts.step;
        if (!c->lm) sn_loader_seek(&c->loader, ts.epoch, ts.cursor);
    }
    /* run files are rank 0's */
    code = SN_EXIT_OK;
    const char *mode = resume_path[0] ? "a" : "w";
    if (write_run_config(c, err, errlen) != SN_OK ||
        (c->root && a->run_dir &&
         (!(c->metrics = sn_run_open(a->run_dir, "metrics.jsonl", mode, err, errlen)) ||
          !(c->log = sn_run_open(a->run_dir, "log", mode, err, errlen)))))
        code = SN_EXIT_FAILURE;
    if (sn_mpi_agree(&code, err, errlen) != SN_OK) return code;
    code = SN_EXIT_FAILURE;
    c->prog.log = c->log;

    print_header(c, &to);
    if (resume_path[0]) say(c, "resuming from %s at step %lld", resume_path, (long long)c->tr.step);
    int stop, sig;
    if (train_loop(c, &stop, &sig, err, errlen) != SN_OK) return code;
    if (stop == STOP_AFTER) {
        say(c, "run the same command again to continue");
        return SN_EXIT_OK;
    }
    if (stop == STOP_SIGNAL) {
        /* with a checkpoint the job can be requeued (75); without one it
         * ends as a process killed by sig would */
        if (!c->ckpt_dir) {
            sn_errf(err, errlen, "stopped by %s at step %lld; nothing saved (no --run-dir)",
                    sn_stop_name(sig), (long long)c->tr.step);
            return 128 + sig;
        }
        sn_errf(err, errlen, "stopped by %s at step %lld with a checkpoint in %s; run the same "
                "command again to continue", sn_stop_name(sig), (long long)c->tr.step,
                c->ckpt_dir);
        return SN_EXIT_STOPPED;
    }
    code = SN_EXIT_OK;
    if (!a->no_report && final_report(c, err, errlen) != SN_OK) code = SN_EXIT_FAILURE;
    FILE *files[2] = {c->metrics, c->log};
    const char *names[2] = {"metrics.jsonl", "log"};
    c->metrics = c->log = c->prog.log = NULL;
    for (int i = 0; i < 2; i++)
        if (files[i] && sn_run_close(files[i], names[i], err, errlen) != SN_OK)
            code = SN_EXIT_FAILURE;
    sn_mpi_agree(&code, err, errlen);
    return code;
}

int sn_cmd_train(int argc, char **argv, const sn_mpi_info *mpi)
{
    train_args a = {
        .task = "image", .data = "/usr/share/datasets/fashion-mnist", .blis_arch = "auto",
        .ring = "plain", .seq_len = 256, .dp = 0, .pp = 1, .sp = 1, .micro = 1, .bucket_kb = 1024,
        .steps = 0, .epochs = 1, .batch = 128, .seed = 1, .val_size = 5000, .train_subset = 0,
        .patch = 4, .threads = 0, .sandwich_random = 2, .warmup = -1, .log_every = 50,
        .schedule = "sandwich", .subnets_per_step = 4, .phases = "0.25,0.25,0.25,0.25",
        .deps_delay = 0.5, .deps_ramp = 0.1, .distill_weight = 1.0, .distill_ramp = 0.0,
        .sample_by = "uniform", .macs_buckets = 8,
        .sort_channels = "auto",
        .report_random = 3, .lr = 1e-3, .min_lr = 1e-5, .weight_decay = 0.05, .clip = 1.0,
        .smoothing = 0.1, .checkpoint_every = 500, .checkpoint_minutes = 30, .keep = 3,
    };
    sn_space_flags_default(&a.space);
    sn_opt opts[] = {
        {"task", SN_OPT_STR, &a.task, "image|lm", "image: Fashion-MNIST-style IDX images; lm: a causal byte-level language model on a text", 0, 0, 0},
        {"data", SN_OPT_STR, &a.data, "DIR|FILE", "image: directory of {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; lm: a text file, or a directory of them (default /usr/share/games/fortunes)", 0, 0, 0},
        {"seq-len", SN_OPT_INT, &a.seq_len, "T", "lm: bytes per training sequence", 2, 1 << 20, 0},
        {"dp", SN_OPT_INT, &a.dp, "D", "data-parallel ranks (0: the ranks left over by --pp and --sp)", 0, 1 << 20, 0},
        {"pp", SN_OPT_INT, &a.pp, "P", "pipeline stages (consecutive blocks per stage)", 1, SN_MAX_BLOCKS, 0},
        {"sp", SN_OPT_INT, &a.sp, "S", "sequence-parallel ranks (ring attention over S chunks of every sequence)", 1, 1 << 16, 0},
        {"micro-batches", SN_OPT_INT, &a.micro, "M", "micro-batches per data rank per step (the 1F1B pipeline's depth)", 1, SN_PIPE_MAX_MICRO, 0},
        {"ring", SN_OPT_STR, &a.ring, "plain|token", "ring attention: plain (key/value blocks travel) or token (TokenRing: queries one way, outputs back)", 0, 0, 0},
        {"bucket-kb", SN_OPT_INT, &a.bucket_kb, "K", "smallest gradient all-reduce bucket, KiB", 1, 1 << 30, 0},
        {"steps", SN_OPT_INT, &a.steps, "N", "optimizer steps (overrides --epochs)", 1, 1e12, 0},
        {"epochs", SN_OPT_INT, &a.epochs, "N", "passes over the training split", 1, 1e6, 0},
        {"batch-size", SN_OPT_INT, &a.batch, "B", "images per optimizer step", 1, 4096, 0},
        {"seed", SN_OPT_INT, &a.seed, "S", "seed of init, split, shuffling and sampling", 0, 9.2e18, 0},
        {"run-dir", SN_OPT_STR, &a.run_dir, "DIR", "write config, metrics.jsonl and eval.jsonl here", 0, 0, 0},
        {"fixed-subnet", SN_OPT_STR, &a.fixed_subnet, "STRING", "train this one sub-network alone (max, min or a canonical string)", 0, 0, 0},
        {"sandwich-random", SN_OPT_INT, &a.sandwich_random, "N", "random sub-networks per step besides the largest and smallest", 0, SN_MAX_RANDOM, 0},
        {"no-distill", SN_OPT_FLAG, &a.no_distill, NULL, "train every sub-network on the labels (no in-place distillation)", 0, 0, 0},
        {"schedule", SN_OPT_STR, &a.schedule, "NAME", "which sub-networks each step trains: sandwich (largest, smallest, random; distilled), sortednet (random, on the labels), progressive (Once-for-All progressive shrinking) or deps (full network first, then the sandwich ramped in)", 0, 0, 0},
        {"subnets-per-step", SN_OPT_INT, &a.subnets_per_step, "N", "sortednet: random sub-networks per step, gradients summed", 1, SN_MAX_MEMBERS, 0},
        {"phases", SN_OPT_STR, &a.phases, "A,B,C,D", "progressive: shares of the run for the full network, +depth, +heads and MLP, +embedding (sum 1)", 0, 0, 0},
        {"deps-delay", SN_OPT_FLOAT, &a.deps_delay, "F", "deps: share of the run that trains the full network alone, in [0, 1)", -DBL_MAX, DBL_MAX, 0},
        {"deps-ramp", SN_OPT_FLOAT, &a.deps_ramp, "F", "deps: share of the run over which the other members' loss weight ramps from 0 to 1", 0, 1, 0},
        {"distill-weight", SN_OPT_FLOAT, &a.distill_weight, "A", "the teacher's share of a distilled sub-network's target, in (0, 1]; the rest is the labels (1: the teacher's predictions alone)", -DBL_MAX, DBL_MAX, 0},
        {"distill-ramp", SN_OPT_FLOAT, &a.distill_ramp, "F", "share of the run over which the teacher's share ramps up from 0 to --distill-weight, in [0, 1]", -DBL_MAX, DBL_MAX, 0},
        {"sample-by", SN_OPT_STR, &a.sample_by, "uniform|macs|log-macs", "random sub-networks uniform over architectures, over MACs (cost buckets), or over log MACs", 0, 0, 0},
        {"macs-buckets", SN_OPT_INT, &a.macs_buckets, "B", "--sample-by macs (log-macs): equal MAC (log MAC) intervals between the smallest and the largest", 1, SN_MAX_MACS_BUCKETS, 0},
        {"sort-channels", SN_OPT_STR, &a.sort_channels, "auto|off|STEPS", "auto: sort heads and MLP units by importance where progressive or deps opens the widths; off: never; STEPS (e.g. 1000 or 500,1500): after exactly these steps, any schedule", 0, 0, 0},
        {"lr", SN_OPT_FLOAT, &a.lr, "X", "peak learning rate (AdamW)", 1e-9, 10, 0},
        {"min-lr", SN_OPT_FLOAT, &a.min_lr, "X", "learning rate at the end of the cosine decay", 0, 10, 0},
        {"weight-decay", SN_OPT_FLOAT, &a.weight_decay, "X", "AdamW decoupled weight decay (matrices only)", 0, 10, 0},
        {"warmup", SN_OPT_INT, &a.warmup, "N", "linear warm-up steps (-1: 5% of the run)", -1, 1e12, 0},
        {"clip", SN_OPT_FLOAT, &a.clip, "X", "clip the global gradient norm to X (0: off)", 0, 1e6, 0},
        {"label-smoothing", SN_OPT_FLOAT, &a.smoothing, "X", "label smoothing of the hard-label loss", 0, 0.999, 0},
        {"val-size", SN_OPT_INT, &a.val_size, "N", "training images held out for validation", 0, 1e9, 0},
        {"train-subset", SN_OPT_INT, &a.train_subset, "N", "train on the first N images of the training split only (0: all)", 0, 1e12, 0},
        {"patch", SN_OPT_INT, &a.patch, "P", "patch size: tokens are PxP pixel patches", 1, 64, 0},
        {"shift", SN_OPT_INT, &a.shift, "N", "augmentation: move each training image by up to N pixels each way, drawn anew every time it is seen (0: off)", 0, 1 << 20, 0},
        {"hflip", SN_OPT_FLAG, &a.hflip, NULL, "augmentation: mirror each training image left-right with probability 1/2", 0, 0, 0},
        SN_SPACE_OPTIONS(a.space),
        {"threads", SN_OPT_INT, &a.threads, "N", "compute threads (0: the cores of this node divided among its ranks)", 0, SN_MAX_THREADS, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto (fastest this CPU supports), skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"log-every", SN_OPT_INT, &a.log_every, "N", "log a line and a metrics record every N steps", 1, 1e12, 0},
        {"report-random", SN_OPT_INT, &a.report_random, "N", "random sub-networks in the final report", 0, 64, 0},
        {"checkpoint-dir", SN_OPT_STR, &a.checkpoint_dir, "DIR", "write checkpoints here (default: RUN_DIR/checkpoints)", 0, 0, 0},
        {"checkpoint-every", SN_OPT_INT, &a.checkpoint_every, "N", "checkpoint every N steps (0: only by time and at the end)", 0, 1e12, 0},
        {"checkpoint-minutes", SN_OPT_INT, &a.checkpoint_minutes, "M", "also checkpoint when M minutes have passed since the last (0: off)", 0, 1e9, 0},
        {"keep", SN_OPT_INT, &a.keep, "K", "keep the newest K checkpoints", 1, 1e6, 0},
        {"resume", SN_OPT_OPTSTR, &a.resume, "[DIR|FILE]", "continue from a checkpoint file, a checkpoint directory, a run directory, or (no value) this run's checkpoints", 0, 0, 0},
        {"stop-after", SN_OPT_INT, &a.stop_after, "N", "stop after N steps of this invocation, with a checkpoint (for time-limited jobs; 0: off)", 0, 1e12, 0},
        {"skip-nonfinite", SN_OPT_INT, &a.skip_nonfinite, "N", "skip up to N steps whose loss is NaN or infinite (no update) before stopping (0: stop at the first)", 0, 1e9, 0},
        {"debug-nan-step", SN_OPT_INT, &a.debug_nan_step, "N", "tests: make the loss NaN at step N on rank --debug-nan-rank (0: never)", 0, 1e12, 0},
        {"debug-nan-rank", SN_OPT_INT, &a.debug_nan_rank, "R", "tests: the rank of --debug-nan-step", 0, 1 << 20, 0},
        {"debug-checkpoint-pause", SN_OPT_FLOAT, &a.debug_ckpt_pause, "S", "tests: wait S seconds between writing a checkpoint and renaming it into place", 0, 3600, 0},
        {"quiet", SN_OPT_FLAG, &a.quiet, NULL, "no per-step log lines on stdout", 0, 0, 0},
        {"no-report", SN_OPT_FLAG, &a.no_report, NULL, "skip the final evaluation of the largest, smallest and random sub-networks", 0, 0, 0},
        {"dry-run", SN_OPT_FLAG, &a.dry_run, NULL, "check the options, the data, the rank layout, --fixed-subnet and a --resume checkpoint's options, print the run's plan, and exit without training or writing anything", 0, 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    const train_args defaults = a;
    char err[1024] = "";
    int p = sn_cli_parse("supernest train", USAGE, opts, argc, argv, 2, NULL, 0, NULL, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest train: %s\n", err);
        return SN_EXIT_USAGE;
    }
    sn_ckpt_debug_pause(a.debug_ckpt_pause);
    train_ctx c = {.a = &a, .defaults = &defaults, .opts = opts, .mpi = mpi,
                   .root = mpi->rank == 0};
    sn_progress_init(&c.prog, stdout, NULL);
    int rc = run(&c, err, sizeof err);
    if (rc != SN_EXIT_OK && c.log) fprintf(c.log, "supernest train: %s\n", err);
    ctx_free(&c);
    if (rc != SN_EXIT_OK && mpi->rank == 0) fprintf(stderr, "supernest train: %s\n", err);
    return rc;
}
