/* `supernest latency-table`: measures, on this machine, the latency of
 * every part of the sub-networks of a search space (src/latency.h), writes
 * the table (io/latency.h), and checks its predictions against direct
 * measurements of random sub-networks (mean absolute percentage error). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt.h"
#include "io/latency.h"
#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/arch.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/latency.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

enum { STREAM_CHECK = 0x1a7c };

/* The image task's geometry without data: Fashion-MNIST's. */
enum { IMAGE_SIDE = 28, IMAGE_CLASSES = 10 };

static const char *USAGE =
    "supernest latency-table (--checkpoint FILE|DIR | [--task image|lm] [space options])\n"
    "                               [--batch-size B] [--threads N] [--reps R] [--warmup W]\n"
    "                               [--check K] -o FILE\n"
    "       supernest latency-table --table FILE [--check K]   (check an existing table)";

typedef struct lat_args {
    const char *checkpoint, *table, *output, *task, *blis_arch;
    sn_space_flags space;
    int64_t patch, seq_len, batch, threads, reps, warmup, check, calibrate, seed;
} lat_args;

/* Space options of `supernest train` that describe the space. */
static const char *SPACE_OPTS[] = {"task", "embed-choices", "heads-choices", "mlp-choices",
                                   "depths", "min-depths", "head-dim", "stem", "patch",
                                   "seq-len"};

/* The space from the default and the space options (as `supernest train`
 * reads them; the image task's tokens are the patches of a 28x28 image). */
static int build_space(const lat_args *a, sn_space *s, char *err, size_t errlen)
{
    if (sn_space_from_flags(&a->space, s, err, errlen) != SN_OK) return SN_ERR;
    if (strcmp(a->task, "lm") == 0) {
        s->task = SN_TASK_LM;
        s->n_tokens = (int)a->seq_len;
        s->token_dim = s->n_classes = 256;
    } else if (strcmp(a->task, "image") == 0) {
        if (IMAGE_SIDE % a->patch != 0)
            return sn_errf(err, errlen, "--patch %lld does not divide the %d-pixel image side",
                           (long long)a->patch, IMAGE_SIDE);
        char msg[256];
        if (sn_stem_patch_check((int)a->patch, sn_stem_convs(s), msg, sizeof msg) != SN_OK)
            return sn_errf(err, errlen, "--patch: %s", msg);
        const int side = IMAGE_SIDE / (int)a->patch;
        s->task = SN_TASK_IMAGE;
        s->n_tokens = side * side;
        s->token_dim = sn_image_token_dim((int)a->patch, sn_stem_convs(s));
        s->n_classes = IMAGE_CLASSES;
    } else {
        return sn_errf(err, errlen, "--task '%s': expected image or lm", a->task);
    }
    return sn_space_validate(s, err, errlen);
}

/* Checks that the options given fit together; SN_ERR with a message. */
static int check_options(const lat_args *a, sn_opt *opts, char *err, size_t errlen)
{
    bool space_flag = false;
    const char *which = "";
    for (size_t i = 0; i < sizeof SPACE_OPTS / sizeof SPACE_OPTS[0]; i++)
        if (sn_cli_find(opts, SPACE_OPTS[i])->seen) {
            space_flag = true;
            which = SPACE_OPTS[i];
        }
    if (a->table) {
        static const char *table_fixes[] = {"checkpoint", "output", "batch-size", "threads",
                                            "reps", "warmup"};
        for (size_t i = 0; i < sizeof table_fixes / sizeof table_fixes[0]; i++)
            if (sn_cli_find(opts, table_fixes[i])->seen)
                return sn_errf(err, errlen, "--table checks an existing table with its own "
                                            "measurement settings: --%s does not go with it",
                               table_fixes[i]);
        if (space_flag)
            return sn_errf(err, errlen, "--table brings its own search space: --%s does not go "
                                        "with it", which);
        if (a->check < 1) return sn_errf(err, errlen, "--table needs --check K >= 1");
        return SN_OK;
    }
    if (a->checkpoint && space_flag)
        return sn_errf(err, errlen, "--checkpoint brings its own search space: --%s does not "
                                    "go with it", which);
    if (sn_cli_find(opts, "seq-len")->seen == SN_SEEN_ARGV && strcmp(a->task, "lm") != 0)
        return sn_errf(err, errlen, "--seq-len is for --task lm");
    if (!a->output) return sn_errf(err, errlen, "-o FILE (where to write the table) is required");
    return SN_OK;
}

static void print_table(const sn_latency_table *t, const sn_latency_info *info)
{
    const sn_space *s = &t->space;
    char desc[512];
    sn_space_format(s, desc, sizeof desc);
    printf("space: %s%s\n", desc, s->task == SN_TASK_LM ? " (language model)" : "");
    printf("machine: %s, BLIS %s; batch %lld, %d thread%s, median of %d in %d sweeps, %d warm-up each\n",
           info->cpu_model, info->blis_kernels, (long long)t->batch, t->threads,
           t->threads == 1 ? "" : "s", t->reps, SN_LATENCY_SWEEPS, t->warmup);
    printf("%6s %10s %10s %18s %18s\n", "embed", "embed ms", "head ms", "block ms (min h,f)",
           "block ms (max h,f)");
    for (int ie = 0; ie < s->n_embed; ie++)
        printf("%6d %10.4f %10.4f %18.4f %18.4f\n", s->embed[ie], (double)t->embed_ms[ie],
               (double)t->head_ms[ie], (double)*sn_latency_block(t, ie, 0, 0),
               (double)*sn_latency_block(t, ie, s->n_heads - 1, s->n_mlp - 1));
    printf("prediction: %.4f ms + %.4f x the sum of the parts (calibrated on whole passes)\n",
           t->offset_ms, t->scale);
}

/* Measures k random sub-networks directly and prints each one's predicted
 * and measured latency, then the mean absolute percentage error. */
static int check_table(const sn_latency_table *t, const sn_attn_engine *attn, int64_t k,
                       uint64_t seed, char *err, size_t errlen)
{
    const sn_space *s = &t->space;
    sn_latency_bench *w = sn_latency_bench_create(s, t->batch, attn, seed);
    if (!w) return sn_errf(err, errlen, "out of memory for the check's model");
    sn_subnet *nets = malloc((size_t)k * sizeof *nets);
    double *meas = malloc((size_t)k * sizeof *meas);
    int rc = nets && meas ? SN_OK : sn_errf(err, errlen, "out of memory for %lld sub-networks",
                                            (long long)k);
    sn_rng r;
    sn_rng_seed(&r, seed, STREAM_CHECK);
    for (int64_t i = 0; rc == SN_OK && i < k; i++) sn_subnet_sample(s, &r, &nets[i]);
    if (rc == SN_OK)
        rc = sn_latency_measure_subnets(w, nets, (int)k, t->threads, t->reps, t->warmup, meas,
                                        err, errlen);
    double sum = 0.0, worst = -1.0;
    char worst_name[SN_SUBNET_STRLEN] = "";
    if (rc == SN_OK)
        printf("\n%4s %12s %12s %8s  %s\n", "#", "predicted ms", "measured ms", "error",
               "sub-network");
    for (int64_t i = 0; rc == SN_OK && i < k; i++) {
        const double pred = sn_latency_predict(t, &nets[i]);
        const double ape = fabs(pred - meas[i]) / meas[i] * 100.0;
        char name[SN_SUBNET_STRLEN];
        sn_subnet_format(&nets[i], name, sizeof name);
        printf("%4lld %12.4f %12.4f %7.2f%%  %s\n", (long long)i + 1, pred, meas[i], ape, name);
        sum += ape;
        if (ape > worst) {
            worst = ape;
            snprintf(worst_name, sizeof worst_name, "%s", name);
        }
    }
    free(nets);
    free(meas);
    sn_latency_bench_destroy(w);
    if (rc == SN_OK)
        printf("mean absolute percentage error %.2f%% over %lld sub-networks; worst %.2f%% "
               "(%s)\n", sum / (double)k, (long long)k, worst, worst_name);
    return rc;
}

/* Resolves the space, measures or loads the table, writes it, checks it. */
static int run(const lat_args *a, char *err, size_t errlen)
{
    sn_latency_table *t = NULL;
    sn_latency_info info;
    memset(&info, 0, sizeof info);
    int code = SN_EXIT_FAILURE;
    sn_space s;
    if (a->table) {
        if (sn_latency_load(sn_mpi_world(), a->table, &t, &info, err, errlen) != SN_OK)
            return SN_EXIT_FAILURE;
        printf("%s: measured %s by supernest %s\n", a->table, info.created, info.program_version);
        s = t->space;
    } else if (a->checkpoint) {
        char path[4096];
        sn_file_info *fi = calloc(1, sizeof *fi);
        int rc = fi ? sn_ckpt_resolve(a->checkpoint, path, sizeof path, err, errlen)
                    : sn_errf(err, errlen, "out of memory");
        if (rc == SN_OK) rc = sn_file_read_info(sn_mpi_world(), path, fi, err, errlen);
        if (rc == SN_OK) s = fi->space;
        free(fi);
        if (rc != SN_OK) return SN_EXIT_FAILURE;
    } else if (build_space(a, &s, err, errlen) != SN_OK) {
        return SN_EXIT_USAGE;
    }
    sn_attn_engine *attn = s.task == SN_TASK_LM ? sn_ring_create_local() : NULL;
    if (s.task == SN_TASK_LM && !attn) {
        sn_errf(err, errlen, "out of memory for the attention engine");
    } else if (!t) {
        t = sn_latency_table_create(&s);
        snprintf(info.blis_kernels, sizeof info.blis_kernels, "%s", sn_blas_arch_name());
        sn_cpu_model(info.cpu_model, sizeof info.cpu_model);
        double t0 = sn_now();
        if (!t) {
            sn_errf(err, errlen, "out of memory");
        } else if (sn_latency_measure_table(t, a->batch, (int)a->threads, (int)a->reps,
                                            (int)a->warmup, attn, (uint64_t)a->seed, err,
                                            errlen) == SN_OK &&
                   sn_latency_calibrate(t, attn, (int)a->calibrate, (uint64_t)a->seed, err,
                                        errlen) == SN_OK &&
                   sn_latency_save(sn_mpi_world(), a->output, t, &info, err, errlen) == SN_OK) {
            print_table(t, &info);
            printf("wrote %s (%d entries measured in %.1f s)\n", a->output,
                   s.n_embed * (2 + s.n_heads * s.n_mlp), sn_now() - t0);
            code = SN_EXIT_OK;
        }
    } else {
        print_table(t, &info);
        code = SN_EXIT_OK;
    }
    if (code == SN_EXIT_OK && a->check > 0 &&
        check_table(t, attn, a->check, (uint64_t)a->seed, err, errlen) != SN_OK)
        code = SN_EXIT_FAILURE;
    sn_ring_destroy(attn);
    sn_latency_table_destroy(t);
    return code;
}

int sn_cmd_latency(int argc, char **argv, const sn_mpi_info *mpi)
{
    lat_args a = {
        .task = "image", .blis_arch = "auto", .patch = 4, .seq_len = 256, .batch = 1,
        .threads = 1, .reps = 50, .warmup = 2, .check = 20, .calibrate = 12, .seed = 1,
    };
    sn_space_flags_default(&a.space);
    sn_opt opts[] = {
        {"checkpoint", SN_OPT_STR, &a.checkpoint, "FILE|DIR", "time the search space of this supernet checkpoint (or a directory whose latest)", 0, 0, 0},
        {"table", SN_OPT_STR, &a.table, "FILE", "measure nothing new: check this existing table on this machine", 0, 0, 0},
        {"o", SN_OPT_STR, &a.output, "FILE", "the latency table to write (replaced atomically)", 0, 0, 0},
        {"output", SN_OPT_STR, &a.output, "FILE", "same as -o", 0, 0, 0},
        {"batch-size", SN_OPT_INT, &a.batch, "B", "sequences per forward pass", 1, 4096, 0},
        {"threads", SN_OPT_INT, &a.threads, "N", "compute threads per forward pass", 1, SN_MAX_THREADS, 0},
        {"reps", SN_OPT_INT, &a.reps, "R", "timed passes per entry, spread over 5 sweeps through all entries (the median is kept)", 1, SN_LATENCY_MAX_REPS, 0},
        {"warmup", SN_OPT_INT, &a.warmup, "W", "untimed passes before each entry's share of a sweep", 0, 1e6, 0},
        {"calibrate", SN_OPT_INT, &a.calibrate, "K", "fit the prediction's offset and scale to K random sub-networks timed whole (others than --check's)", 2, 1e6, 0},
        {"check", SN_OPT_INT, &a.check, "K", "then time K random sub-networks whole against the table's prediction (0: no check)", 0, 1e6, 0},
        {"seed", SN_OPT_INT, &a.seed, "S", "seed of the random weights, inputs and checked sub-networks", 0, 9.2e18, 0},
        {"blis-arch", SN_OPT_STR, &a.blis_arch, "NAME", "BLIS kernels: auto (fastest this CPU supports), skx, haswell, zen3, generic, ...", 0, 0, 0},
        {"task", SN_OPT_STR, &a.task, "image|lm", "image: 28x28 images in PxP patches, 10 classes; lm: byte sequences, causal attention", 0, 0, 0},
        SN_SPACE_OPTIONS(a.space),
        {"patch", SN_OPT_INT, &a.patch, "P", "image: patch size (tokens are PxP pixel patches)", 1, 28, 0},
        {"seq-len", SN_OPT_INT, &a.seq_len, "T", "lm: bytes per sequence", 2, 1 << 20, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    int p = sn_cli_parse("supernest latency-table", USAGE, opts, argc, argv, 2, NULL, 0, NULL,
                         err, sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p == SN_OK) p = check_options(&a, opts, err, sizeof err);
    if (p == SN_OK && mpi->size > 1)
        p = sn_errf(err, sizeof err, "measures one process on its own: run it without mpirun "
                                     "(%d ranks given)", mpi->size);
    if (p == SN_OK) p = sn_blas_init(a.blis_arch, err, sizeof err);
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest latency-table: %s\n", err);
        return SN_EXIT_USAGE;
    }
    int rc = run(&a, err, sizeof err);
    if (rc != SN_EXIT_OK) fprintf(stderr, "supernest latency-table: %s\n", err);
    return rc;
}
