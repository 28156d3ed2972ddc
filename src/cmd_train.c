/* `supernest train`: trains the supernet on Fashion-MNIST patch tokens and
 * reports the largest, smallest and a few random sub-networks on the test
 * split. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/data.h"
#include "io/runlog.h"
#include "src/arch.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/evaluate.h"
#include "src/model.h"
#include "src/tensor.h"
#include "src/train.h"
#include "src/util.h"

enum { STREAM_REPORT = 0x7e70 };

typedef struct train_args {
    const char *task, *data, *run_dir, *fixed_subnet, *blis_arch;
    const char *embed_choices, *heads_choices, *mlp_choices, *depths, *min_depths;
    int64_t steps, epochs, batch, seed, val_size, train_subset, patch, threads;
    int64_t sandwich_random, warmup, log_every, report_random, head_dim;
    double lr, min_lr, weight_decay, clip, smoothing;
    bool no_distill, quiet;
} train_args;

static const char *USAGE =
    "supernest train [--task image] [--data DIR] [--steps N | --epochs N] [--batch-size B]\n"
    "                       [--seed S] [--run-dir DIR] [--fixed-subnet STRING] [options]";

static void space_defaults_text(char *embed, char *heads, char *mlp, char *depths, char *mins,
                                size_t len)
{
    sn_space s;
    sn_space_default(&s);
    char *outs[5] = {embed, heads, mlp, depths, mins};
    const int *lists[5] = {s.embed, s.heads, s.mlp, s.max_depth, s.min_depth};
    int counts[5] = {s.n_embed, s.n_heads, s.n_mlp, s.n_stages, s.n_stages};
    for (int k = 0; k < 5; k++) {
        size_t at = 0;
        outs[k][0] = '\0';
        for (int i = 0; i < counts[k]; i++)
            at += (size_t)snprintf(outs[k] + at, len - at, "%s%d", i ? "," : "", lists[k][i]);
    }
}

/* The search space from the defaults and the --*-choices / --depths flags. */
static int build_space(const train_args *a, sn_space *s, char *err, size_t errlen)
{
    sn_space_default(s);
    int n;
    if ((n = sn_parse_int_list("--embed-choices", a->embed_choices, s->embed, SN_MAX_CHOICES,
                               err, errlen)) < 0)
        return SN_ERR;
    s->n_embed = n;
    if ((n = sn_parse_int_list("--heads-choices", a->heads_choices, s->heads, SN_MAX_CHOICES,
                               err, errlen)) < 0)
        return SN_ERR;
    s->n_heads = n;
    if ((n = sn_parse_int_list("--mlp-choices", a->mlp_choices, s->mlp, SN_MAX_CHOICES, err,
                               errlen)) < 0)
        return SN_ERR;
    s->n_mlp = n;
    if ((n = sn_parse_int_list("--depths", a->depths, s->max_depth, SN_MAX_STAGES, err,
                               errlen)) < 0)
        return SN_ERR;
    s->n_stages = n;
    int m = sn_parse_int_list("--min-depths", a->min_depths, s->min_depth, SN_MAX_STAGES, err,
                              errlen);
    if (m < 0) return SN_ERR;
    if (m != n)
        return sn_errf(err, errlen, "--min-depths '%s': %d values given for %d stages (--depths)",
                       a->min_depths, m, n);
    s->head_dim = (int)a->head_dim;
    return SN_OK;
}

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
                fprintf(f, "%s%.6g", first ? "" : ",", st->loss[k]);
            else
                fprintf(f, "%s\"%s\":%.6g", first ? "" : ",", st->role[k], st->loss[k]);
            first = false;
        }
        fprintf(f, "%s}", rand_open ? "]" : "");
        return;
    }
    for (int k = 0; k < st->n_members; k++) fprintf(f, " %s %.4f", st->role[k], st->loss[k]);
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

typedef struct report_row {
    const char *role;
    sn_subnet net;
} report_row;

/* Returns SN_EXIT_OK, SN_EXIT_USAGE for a bad configuration (options,
 * search space, sub-network, layout) or SN_EXIT_FAILURE when the run
 * itself fails (data, memory, non-finite loss, I/O), with err set. */
static int run(train_args *a, sn_opt *opts, const sn_mpi_info *mpi, char *err, size_t errlen)
{
    int rc = SN_EXIT_USAGE;
    sn_images train = {0}, test = {0};
    int64_t *train_idx = NULL, *val_idx = NULL;
    sn_model *model = NULL;
    sn_trainer tr = {0};
    sn_loader loader = {0};
    float *tokens = NULL;
    int32_t *labels = NULL;
    int64_t *ids = NULL;
    FILE *metrics = NULL, *evalf = NULL;
    bool trainer_up = false;

    if (strcmp(a->task, "image") != 0) {
        sn_errf(err, errlen, "--task '%s': this version trains the image task only "
                             "(use --task image)", a->task);
        return rc;
    }
    if (sn_cli_find(opts, "steps")->seen && sn_cli_find(opts, "epochs")->seen) {
        sn_errf(err, errlen, "give either --steps or --epochs, not both");
        return rc;
    }
    if (mpi->size > 1) {
        sn_errf(err, errlen, "this version trains on one rank; run without mpirun (got %d ranks)",
                mpi->size);
        return rc;
    }

    sn_space space;
    if (build_space(a, &space, err, errlen) != SN_OK) return rc;
    if (sn_blas_init(a->blis_arch, err, errlen) != SN_OK) return rc;
    int nt = a->threads > 0 ? (int)a->threads : sn_mpi_default_threads(mpi);
    if (nt > SN_MAX_THREADS) nt = SN_MAX_THREADS;

    rc = SN_EXIT_FAILURE; /* unreadable data is a failed run */
    if (sn_images_load_dir(a->data, "train", &train, err, errlen) != SN_OK) goto out;
    if (sn_images_load_dir(a->data, "test", &test, err, errlen) != SN_OK) goto out;
    if (test.rows != train.rows || test.cols != train.cols) {
        sn_errf(err, errlen, "%s: test images are %dx%d, training images %dx%d", a->data,
                test.rows, test.cols, train.rows, train.cols);
        goto out;
    }
    rc = SN_EXIT_USAGE; /* options that do not fit the data */
    int64_t n_train, n_val;
    if (sn_split_indices(train.n, a->val_size, (uint64_t)a->seed, &train_idx, &n_train, &val_idx,
                         &n_val, err, errlen) != SN_OK)
        goto out;
    if (a->train_subset > 0 && a->train_subset < n_train) n_train = a->train_subset;
    int n_tokens, token_dim;
    if (sn_patch_dims(&train, (int)a->patch, &n_tokens, &token_dim, err, errlen) != SN_OK) goto out;
    space.n_tokens = n_tokens;
    space.token_dim = token_dim;
    space.n_classes = train.n_classes > test.n_classes ? train.n_classes : test.n_classes;
    if (sn_space_validate(&space, err, errlen) != SN_OK) goto out;
    sn_norm norm = sn_images_norm(&train, train_idx, n_train);

    sn_train_opts to;
    sn_train_opts_default(&to);
    if (a->fixed_subnet) {
        to.sampler = SN_SAMPLER_FIXED;
        if (sn_subnet_parse(&space, a->fixed_subnet, &to.fixed, err, errlen) != SN_OK) goto out;
    }
    int64_t steps_per_epoch = (n_train + a->batch - 1) / a->batch;
    int64_t total = a->steps > 0 ? a->steps : a->epochs * steps_per_epoch;
    to.n_random = (int)a->sandwich_random;
    to.distill = !a->no_distill;
    to.label_smoothing = (float)a->smoothing;
    to.clip = (float)a->clip;
    to.seed = (uint64_t)a->seed;
    to.threads = nt;
    to.adamw.lr = (float)a->lr;
    to.adamw.min_lr = (float)a->min_lr;
    to.adamw.weight_decay = (float)a->weight_decay;
    to.adamw.total = total;
    to.adamw.warmup = a->warmup >= 0 ? a->warmup : total / 20;

    rc = SN_EXIT_FAILURE;
    model = sn_model_create(&space, (uint64_t)a->seed);
    if (!model) {
        sn_errf(err, errlen, "out of memory creating the supernet");
        goto out;
    }
    if (sn_trainer_init(&tr, model, a->batch, &to, err, errlen) != SN_OK) goto out;
    trainer_up = true;
    if (sn_loader_init(&loader, train_idx, n_train, (uint64_t)a->seed, err, errlen) != SN_OK)
        goto out;
    tokens = sn_alloc((size_t)(a->batch * n_tokens * token_dim) * sizeof(float));
    labels = sn_alloc((size_t)a->batch * sizeof(int32_t));
    ids = sn_alloc((size_t)a->batch * sizeof(int64_t));
    if (!tokens || !labels || !ids) {
        sn_errf(err, errlen, "out of memory allocating batch buffers");
        goto out;
    }

    if (a->run_dir) {
        if (sn_mkdirs(a->run_dir, err, errlen) != SN_OK) goto out;
        FILE *cf = sn_run_open(a->run_dir, "config", "w", err, errlen);
        if (!cf) goto out;
        fprintf(cf, "# supernest %s train: resolved options\n", SN_VERSION);
        sn_cli_write_config(cf, opts);
        fprintf(cf, "threads = %d\nblis_kernels = %s\nnorm_mean = %.9g\nnorm_std = %.9g\n", nt,
                sn_blas_arch_name(), norm.mean, norm.std);
        if (sn_run_close(cf, "config", err, errlen) != SN_OK) goto out;
        if (!(metrics = sn_run_open(a->run_dir, "metrics.jsonl", "w", err, errlen))) goto out;
    }

    char maxs[SN_SUBNET_STRLEN], mins[SN_SUBNET_STRLEN];
    sn_subnet big, small;
    sn_subnet_max(&space, &big);
    sn_subnet_min(&space, &small);
    sn_subnet_format(&big, maxs, sizeof maxs);
    sn_subnet_format(&small, mins, sizeof mins);
    printf("supernest train: %lld training images (%lld held out for validation), %d tokens of "
           "%d values\n",
           (long long)n_train, (long long)n_val, n_tokens, token_dim);
    printf("search space: %.3g sub-networks, largest %s (%.2fM params), smallest %s (%.2fM)\n",
           sn_space_count(&space), maxs, (double)sn_subnet_params(&space, &big) / 1e6, mins,
           (double)sn_subnet_params(&space, &small) / 1e6);
    printf("%lld steps of batch %lld, %s, %d threads, BLIS kernels %s\n", (long long)total,
           (long long)a->batch, a->fixed_subnet ? "fixed sub-network" : "sandwich rule", nt,
           sn_blas_arch_name());
    fflush(stdout);

    double t0 = sn_now(), tlog = t0;
    int64_t images_since = 0;
    uint64_t flops_since = 0;
    for (int64_t step = 0; step < total; step++) {
        int64_t epoch = loader.epoch;
        sn_loader_next(&loader, ids, a->batch);
        sn_images_batch(&train, ids, a->batch, (int)a->patch, norm, tokens, labels);
        sn_step_stats st;
        if (sn_train_step(&tr, tokens, labels, a->batch, &st, err, errlen) != SN_OK) goto out;
        images_since += a->batch;
        flops_since += st.flops;
        bool last = step + 1 == total;
        if ((step + 1) % a->log_every == 0 || last) {
            double now = sn_now(), dt = now - tlog;
            double ips = (double)images_since / dt, gf = (double)flops_since / dt / 1e9;
            double ep = (double)epoch + (double)loader.cursor / (double)n_train;
            char eta[32];
            format_eta(eta, sizeof eta, (now - t0) / (double)(step + 1) * (double)(total - step - 1));
            if (!a->quiet) {
                printf("step %lld/%lld epoch %.2f lr %.3g", (long long)(step + 1), (long long)total,
                       ep, st.lr);
                print_losses(stdout, &st, false);
                printf(" | %.0f img/s %.0f GFLOP/s eta %s\n", ips, gf, eta);
                fflush(stdout);
            }
            if (metrics) {
                fprintf(metrics, "{\"step\":%lld,\"epoch\":%.4f,\"lr\":%.6g,", (long long)(step + 1),
                        ep, st.lr);
                print_losses(metrics, &st, true);
                fprintf(metrics, ",\"grad_norm\":%.6g,\"images_per_s\":%.2f,\"gflops\":%.2f,"
                                 "\"elapsed_s\":%.3f}\n",
                        st.grad_norm, ips, gf, now - t0);
                fflush(metrics);
            }
            tlog = now;
            images_since = 0;
            flops_since = 0;
        }
    }
    double train_s = sn_now() - t0;
    printf("trained %lld steps in %.1f s (%.1f images/s)\n", (long long)total, train_s,
           (double)(total * a->batch) / train_s);

    /* The report: largest, smallest and a few random sub-networks. */
    int n_rows = 0;
    report_row rows[2 + 64];
    if (a->fixed_subnet) {
        rows[n_rows++] = (report_row){"fixed", to.fixed};
    } else {
        rows[n_rows++] = (report_row){"max", big};
        rows[n_rows++] = (report_row){"min", small};
        sn_rng r;
        sn_rng_seed(&r, (uint64_t)a->seed, STREAM_REPORT);
        for (int i = 0; i < a->report_random; i++) {
            rows[n_rows].role = "rand";
            sn_subnet_sample(&space, &r, &rows[n_rows].net);
            n_rows++;
        }
    }
    if (a->run_dir && !(evalf = sn_run_open(a->run_dir, "eval.jsonl", "w", err, errlen))) goto out;
    printf("\n%-5s %9s %9s %8s %8s %8s  %s\n", "role", "params", "MACs", "val_acc", "test_acc",
           "test_loss", "sub-network");
    for (int i = 0; i < n_rows; i++) {
        sn_eval_result v = sn_evaluate(nt, model, tr.acts, a->batch, &rows[i].net, &train, val_idx,
                                       n_val, (int)a->patch, norm, tokens, labels);
        sn_eval_result t = sn_evaluate(nt, model, tr.acts, a->batch, &rows[i].net, &test, NULL,
                                       test.n, (int)a->patch, norm, tokens, labels);
        char name[SN_SUBNET_STRLEN];
        sn_subnet_format(&rows[i].net, name, sizeof name);
        int64_t params = sn_subnet_params(&space, &rows[i].net);
        int64_t macs = sn_subnet_macs(&space, &rows[i].net);
        printf("%-5s %8.3fM %8.2fM %8.4f %8.4f %8.4f  %s\n", rows[i].role, (double)params / 1e6,
               (double)macs / 1e6, v.accuracy, t.accuracy, t.loss, name);
        if (evalf)
            fprintf(evalf, "{\"role\":\"%s\",\"subnet\":\"%s\",\"params\":%lld,\"macs\":%lld,"
                           "\"val_acc\":%.6f,\"val_loss\":%.6f,\"test_acc\":%.6f,"
                           "\"test_loss\":%.6f}\n",
                    rows[i].role, name, (long long)params, (long long)macs, v.accuracy, v.loss,
                    t.accuracy, t.loss);
    }
    fflush(stdout);
    if (evalf) {
        FILE *f = evalf;
        evalf = NULL;
        if (sn_run_close(f, "eval.jsonl", err, errlen) != SN_OK) goto out;
    }
    if (metrics) {
        FILE *f = metrics;
        metrics = NULL;
        if (sn_run_close(f, "metrics.jsonl", err, errlen) != SN_OK) goto out;
    }
    rc = SN_EXIT_OK;
out:
    if (metrics) fclose(metrics);
    if (evalf) fclose(evalf);
    sn_free(tokens);
    sn_free(labels);
    sn_free(ids);
    sn_loader_free(&loader);
    if (trainer_up) sn_trainer_free(&tr);
    sn_model_destroy(model);
    sn_free(train_idx);
    sn_free(val_idx);
    sn_images_free(&train);
    sn_images_free(&test);
    return rc;
}

int sn_cmd_train(int argc, char **argv, const sn_mpi_info *mpi)
{
    static char d_embed[256], d_heads[256], d_mlp[256], d_depths[256], d_mins[256];
    space_defaults_text(d_embed, d_heads, d_mlp, d_depths, d_mins, sizeof d_embed);
    sn_space ds;
    sn_space_default(&ds);
    train_args a = {
        .task = "image", .data = "/usr/share/datasets/fashion-mnist", .blis_arch = "auto",
        .embed_choices = d_embed, .heads_choices = d_heads, .mlp_choices = d_mlp,
        .depths = d_depths, .min_depths = d_mins, .head_dim = ds.head_dim,
        .steps = 0, .epochs = 1, .batch = 128, .seed = 1, .val_size = 5000, .train_subset = 0,
        .patch = 4, .threads = 0, .sandwich_random = 2, .warmup = -1, .log_every = 50,
        .report_random = 3, .lr = 1e-3, .min_lr = 1e-5, .weight_decay = 0.05, .clip = 1.0,
        .smoothing = 0.1,
    };
    sn_opt opts[] = {
        {"task", SN_OPT_STR, &a.task, "image", "task to train (image: Fashion-MNIST-style IDX)", 0, 0, 0},
        {"data", SN_OPT_STR, &a.data, "DIR", "directory of {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]", 0, 0, 0},
        {"steps", SN_OPT_INT, &a.steps, "N", "optimizer steps (overrides --epochs)", 1, 1e12, 0},
        {"epochs", SN_OPT_INT, &a.epochs, "N", "passes over the training split", 1, 1e6, 0},
        {"batch-size", SN_OPT_INT, &a.batch, "B", "images per optimizer step", 1, 4096, 0},
        {"seed", SN_OPT_INT, &a.seed, "S", "seed of init, split, shuffling and sampling", 0, 9.2e18, 0},
        {"run-dir", SN_OPT_STR, &a.run_dir, "DIR", "write config, metrics.jsonl and eval.jsonl here", 0, 0, 0},
        {"fixed-subnet", SN_OPT_STR, &a.fixed_subnet, "STRING", "train this one sub-network alone (max, min or a canonical string)", 0, 0, 0},
        {"sandwich-random", SN_OPT_INT, &a.sandwich_random, "N", "random sub-networks per step besides the largest and smallest", 0, SN_MAX_RANDOM, 0},
        {"no-distill", SN_OPT_FLAG, &a.no_distill, NULL, "train every sub-network on the labels (no in-place distillation)", 0, 0, 0},
        {"lr", SN_OPT_FLOAT, &a.lr, "X", "peak learning rate (AdamW)", 1e-9, 10, 0},
        {"min-lr", SN_OPT_FLOAT, &a.min_lr, "X", "learning rate at the end of the cosine decay", 0, 10, 0},
        {"weight-decay", SN_OPT_FLOAT, &a.weight_decay, "X", "AdamW decoupled weight decay (matrices only)", 0, 10, 0},
        {"warmup", SN_OPT_INT, &a.warmup, "N", "linear warm-up steps (-1: 5% of the run)", -1, 1e12, 0},
        {"clip", SN_OPT_FLOAT, &a.clip, "X", "clip the global gradient norm to X (0: off)", 0, 1e6, 0},
        {"label-smoothing", SN_OPT_FLOAT, &a.smoothing, "X", "label smoothing of the hard-label loss", 0, 0.999, 0},
        {"val-size", SN_OPT_INT, &a.val_size, "N", "training images held out for validation", 0, 1e9, 0},
        {"train-subset", SN_OPT_INT, &a.train_subset, "N", "train on the first N images of the training split only (0: all)", 0, 1e12, 0},
        {"patch", SN_OPT_INT, &a.patch, "P", "patch size: tokens are PxP pixel patches", 1, 64, 0},
        {"embed-choices", SN_OPT_STR, &a.embed_choices, "LIST", "search space: embedding widths", 0, 0, 0},
        {"heads-choices", SN_OPT_STR, &a.heads_choices, "LIST", "search space: attention heads per block", 0, 0, 0},
        {"mlp-choices", SN_OPT_STR, &a.mlp_choices, "LIST", "search space: MLP hidden widths", 0, 0, 0},
        {"depths", SN_OPT_STR, &a.depths, "LIST", "search space: largest depth of each stage", 0, 0, 0},
        {"min-depths", SN_OPT_STR, &a.min_depths, "LIST", "search space: smallest depth of each stage", 0, 0, 0},
        {"head-dim", SN_OPT_INT, &a.head_dim, "D", "search space: channels per attention head", 1, 4096, 0},
        {"threads", SN_OPT_INT, &a.threads, "N", "compute threads (0: the cores of this node divided among its ranks)", 0, SN_MAX_THREADS, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto (fastest this CPU supports), skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"log-every", SN_OPT_INT, &a.log_every, "N", "log a line and a metrics record every N steps", 1, 1e12, 0},
        {"report-random", SN_OPT_INT, &a.report_random, "N", "random sub-networks in the final report", 0, 64, 0},
        {"quiet", SN_OPT_FLAG, &a.quiet, NULL, "no per-step log lines on stdout", 0, 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    int p = sn_cli_parse("supernest train", USAGE, opts, argc, argv, 2, NULL, 0, NULL, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest train: %s\n", err);
        return SN_EXIT_USAGE;
    }
    int rc = run(&a, opts, mpi, err, sizeof err);
    if (rc != SN_EXIT_OK && mpi->rank == 0) fprintf(stderr, "supernest train: %s\n", err);
    return rc;
}
