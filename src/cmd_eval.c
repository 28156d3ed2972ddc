/* `supernest eval`: accuracy and loss of one sub-network of a supernet
 * checkpoint, or of an exported model, on the validation or test split
 * (images), or its bits per byte and next-byte accuracy (language model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt.h"
#include "io/data.h"
#include "io/text.h"
#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/evaluate.h"
#include "src/model.h"
#include "src/tensor.h"
#include "src/util.h"

static const char *USAGE =
    "supernest eval (--checkpoint FILE|DIR | --model FILE) [--subnet STRING] [--split val|test]\n"
    "                      [--json] [--data DIR] [options]";

typedef struct eval_args {
    const char *checkpoint, *model, *subnet, *split, *data, *blis_arch, *logits;
    int64_t batch, threads, limit;
    bool json, data_seen;
} eval_args;

/* Writes logits (n, C) as raw little-endian float32 to path. */
static int write_logits(const char *path, const float *logits, int64_t n, int64_t c,
                        char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    if (!f) return sn_errf(err, errlen, "%s: cannot create", path);
    bool ok = fwrite(logits, sizeof(float), (size_t)(n * c), f) == (size_t)(n * c);
    ok = fclose(f) == 0 && ok;
    return ok ? SN_OK : sn_errf(err, errlen, "%s: write failed", path);
}

/* The language model on the text's validation or test windows. */
static int eval_text(const eval_args *a, const sn_mpi_info *mpi, int nt, const sn_model *m,
                     const sn_subnet *net, const char *name, const char *path, char *err,
                     size_t errlen)
{
    const int64_t T = m->space.n_tokens, batch = a->batch < 64 ? a->batch : 64;
    sn_text text = {0};
    if (sn_text_load(a->data_seen ? a->data : SN_TEXT_DEFAULT_PATH, T, &text, err, errlen))
        return SN_ERR;
    const sn_text_split split = strcmp(a->split, "val") == 0 ? SN_TEXT_VAL : SN_TEXT_TEST;
    int64_t n = sn_text_eval_count(&text, split, T);
    if (a->limit > 0 && a->limit < n) n = a->limit;
    sn_attn_engine *attn = NULL;
    sn_acts *acts = sn_eval_acts(&m->space, batch, &attn);
    int32_t *ids = sn_alloc((size_t)(batch * T) * sizeof(int32_t));
    int32_t *labels = sn_alloc((size_t)(batch * T) * sizeof(int32_t));
    int rc = SN_ERR;
    if (!acts || !ids || !labels) {
        sn_errf(err, errlen, "out of memory");
    } else if (a->logits) {
        sn_errf(err, errlen, "--logits is for image models (a language model has T x 256 "
                             "logits per window)");
    } else {
        sn_eval_result r = sn_evaluate_text(nt, m, acts, attn, batch, net, &text, split, 0, n,
                                            ids, labels);
        const double bpb = r.loss / 0.69314718055994530942;
        int64_t params = sn_subnet_params(&m->space, net), macs = sn_subnet_macs(&m->space, net);
        if (mpi->rank == 0) {
            if (a->json)
                printf("{\"file\":\"%s\",\"subnet\":\"%s\",\"split\":\"%s\",\"tokens\":%lld,"
                       "\"accuracy\":%.6f,\"bits_per_byte\":%.6f,\"params\":%lld,\"macs\":%lld}\n",
                       path, name, a->split, (long long)r.n, r.accuracy, bpb, (long long)params,
                       (long long)macs);
            else
                printf("%s on %lld %s bytes: %.4f bits per byte, next-byte accuracy %.4f "
                       "(%.3fM params, %.2fM MACs)\n",
                       name, (long long)r.n, a->split, bpb, r.accuracy, (double)params / 1e6,
                       (double)macs / 1e6);
        }
        rc = SN_OK;
    }
    sn_acts_destroy(acts);
    sn_ring_destroy(attn);
    sn_free(ids);
    sn_free(labels);
    sn_text_free(&text);
    return rc;
}

static int run(eval_args *a, const sn_mpi_info *mpi, int *code, char *err, size_t errlen)
{
    *code = SN_EXIT_USAGE;
    if (!a->checkpoint == !a->model)
        return sn_errf(err, errlen, "give exactly one of --checkpoint and --model");
    if (strcmp(a->split, "val") != 0 && strcmp(a->split, "test") != 0)
        return sn_errf(err, errlen, "--split '%s': expected val or test", a->split);
    if (a->batch > 4096) return sn_errf(err, errlen, "--batch-size %lld: at most 4096",
                                        (long long)a->batch);
    if (sn_blas_init(a->blis_arch, err, errlen) != SN_OK) return SN_ERR;
    int nt = a->threads > 0 ? (int)a->threads : sn_mpi_default_threads(mpi);
    if (nt > SN_MAX_THREADS) nt = SN_MAX_THREADS;

    *code = SN_EXIT_FAILURE;
    sn_model *m = NULL;
    sn_file_info *info = calloc(1, sizeof *info);
    sn_images x = {0};
    int64_t *train_idx = NULL, *val_idx = NULL;
    sn_acts *acts = NULL;
    float *tokens = NULL, *logits = NULL;
    int32_t *labels = NULL;
    char path[4096];
    sn_subnet net;
    int rc = SN_ERR;
    if (!info) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    if (a->checkpoint) {
        if (sn_open_checkpoint(a->checkpoint, &m, info, path, sizeof path, err, errlen)) goto out;
        if (sn_subnet_parse(&m->space, a->subnet, &net, err, errlen) != SN_OK) {
            *code = SN_EXIT_USAGE;
            goto out;
        }
    } else {
        snprintf(path, sizeof path, "%s", a->model);
        if (sn_model_import(sn_mpi_world(), a->model, &m, &net, info, err, errlen)) goto out;
        if (strcmp(a->subnet, "max") != 0 && strcmp(a->subnet, info->subnet) != 0) {
            sn_errf(err, errlen, "--subnet %s: %s holds only %s", a->subnet, a->model, info->subnet);
            *code = SN_EXIT_USAGE;
            goto out;
        }
    }

    if (m->space.task == SN_TASK_LM) {
        char name[SN_SUBNET_STRLEN];
        if (a->model) snprintf(name, sizeof name, "%s", info->subnet);
        else sn_subnet_format(&net, name, sizeof name);
        if (eval_text(a, mpi, nt, m, &net, name, path, err, errlen) != SN_OK) goto out;
        rc = SN_OK;
        *code = SN_EXIT_OK;
        goto out;
    }
    bool val = strcmp(a->split, "val") == 0;
    if (sn_images_load_dir(a->data, val ? "train" : "test", &x, err, errlen) != SN_OK) goto out;
    int n_tokens, token_dim;
    if (x.rows != info->image_rows || x.cols != info->image_cols ||
        sn_patch_dims(&x, info->patch, sn_stem_convs(&m->space), &n_tokens, &token_dim, err, errlen) != SN_OK ||
        n_tokens != m->space.n_tokens || token_dim != m->space.token_dim) {
        sn_errf(err, errlen, "%s: images are %dx%d, %s expects %dx%d", a->data, x.rows, x.cols,
                path, info->image_rows, info->image_cols);
        goto out;
    }
    if (sn_images_check_labels(&x, m->space.n_classes, a->data, val ? "training" : "test", path,
                               err, errlen) != SN_OK)
        goto out;
    int64_t n = x.n, n_train = 0, n_val = 0;
    const int64_t *idx = NULL;
    if (val) {
        if (info->val_size <= 0) {
            sn_errf(err, errlen, "%s records no validation split (seed, val_size); use --split "
                                 "test", path);
            goto out;
        }
        if (info->val_size >= x.n) {
            sn_errf(err, errlen, "%s holds out %lld validation images, but %s has %lld training "
                                 "images: not the data it was trained on", path,
                    (long long)info->val_size, a->data, (long long)x.n);
            goto out;
        }
        if (sn_split_indices(x.n, info->val_size, info->seed, &train_idx, &n_train, &val_idx,
                             &n_val, err, errlen) != SN_OK)
            goto out;
        idx = val_idx;
        n = n_val;
    }
    if (a->limit > 0 && a->limit < n) n = a->limit;
    acts = sn_acts_create(&m->space, a->batch);
    tokens = sn_alloc((size_t)(a->batch * n_tokens * token_dim) * sizeof(float));
    labels = sn_alloc((size_t)a->batch * sizeof(int32_t));
    if (!acts || !tokens || !labels) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    sn_norm norm = {.mean = info->norm_mean, .std = info->norm_std};
    if (a->logits) {
        logits = sn_alloc((size_t)(n * m->space.n_classes) * sizeof(float));
        if (!logits) {
            sn_errf(err, errlen, "out of memory");
            goto out;
        }
    }
    sn_eval_result r = sn_evaluate(nt, m, acts, a->batch, &net, &x, idx, 0, n, info->patch, norm,
                                   tokens, labels, logits);
    if (logits && write_logits(a->logits, logits, n, m->space.n_classes, err, errlen) != SN_OK)
        goto out;
    char name[SN_SUBNET_STRLEN];
    if (a->model) snprintf(name, sizeof name, "%s", info->subnet);
    else sn_subnet_format(&net, name, sizeof name);
    int64_t params = sn_subnet_params(&m->space, &net), macs = sn_subnet_macs(&m->space, &net);
    if (mpi->rank == 0) {
        if (a->json)
            printf("{\"file\":\"%s\",\"subnet\":\"%s\",\"split\":\"%s\",\"images\":%lld,"
                   "\"accuracy\":%.6f,\"loss\":%.6f,\"params\":%lld,\"macs\":%lld}\n",
                   path, name, a->split, (long long)r.n, r.accuracy, r.loss, (long long)params,
                   (long long)macs);
        else
            printf("%s on %lld %s images: accuracy %.4f, loss %.4f (%.3fM params, %.2fM MACs)\n",
                   name, (long long)r.n, a->split, r.accuracy, r.loss, (double)params / 1e6,
                   (double)macs / 1e6);
    }
    rc = SN_OK;
    *code = SN_EXIT_OK;
out:
    sn_acts_destroy(acts);
    sn_free(tokens);
    sn_free(logits);
    sn_free(labels);
    sn_free(train_idx);
    sn_free(val_idx);
    sn_images_free(&x);
    sn_model_destroy(m);
    free(info);
    return rc;
}

int sn_cmd_eval(int argc, char **argv, const sn_mpi_info *mpi)
{
    eval_args a = {.subnet = "max", .split = "test", .data = "/usr/share/datasets/fashion-mnist",
                   .blis_arch = "auto", .batch = 256};
    sn_opt opts[] = {
        {"checkpoint", SN_OPT_STR, &a.checkpoint, "FILE|DIR", "a supernet checkpoint, or a directory whose latest (or checkpoints/latest) to use", 0, 0, 0},
        {"model", SN_OPT_STR, &a.model, "FILE", "an exported sub-network (supernest export)", 0, 0, 0},
        {"subnet", SN_OPT_STR, &a.subnet, "STRING", "sub-network of the checkpoint: max, min or a canonical string", 0, 0, 0},
        {"split", SN_OPT_STR, &a.split, "val|test", "held-out validation split of the training file, or the test file", 0, 0, 0},
        {"json", SN_OPT_FLAG, &a.json, NULL, "print one JSON object instead of a line of text", 0, 0, 0},
        {"data", SN_OPT_STR, &a.data, "DIR|FILE", "directory of the IDX files; for a language model its text (default /usr/share/games/fortunes)", 0, 0, 0},
        {"batch-size", SN_OPT_INT, &a.batch, "B", "images per forward pass", 1, 4096, 0},
        {"threads", SN_OPT_INT, &a.threads, "N", "compute threads (0: the cores of this node divided among its ranks)", 0, SN_MAX_THREADS, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto, skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"logits", SN_OPT_STR, &a.logits, "FILE", "also write the logits as raw float32 (images, classes)", 0, 0, 0},
        {"limit", SN_OPT_INT, &a.limit, "N", "evaluate (and write the logits of) the first N images of the split only (0: all)", 0, 1e12, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    int p = sn_cli_parse("supernest eval", USAGE, opts, argc, argv, 2, NULL, 0, NULL, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest eval: %s\n", err);
        return SN_EXIT_USAGE;
    }
    a.data_seen = sn_cli_find(opts, "data")->seen;
    int code;
    if (run(&a, mpi, &code, err, sizeof err) != SN_OK && mpi->rank == 0)
        fprintf(stderr, "supernest eval: %s\n", err);
    return code;
}
