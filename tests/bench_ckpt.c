/* bench_ckpt: checkpoint I/O against plain POSIX I/O of the same bytes.
 *
 * A supernet whose checkpoint (weights + AdamW m + v) is about N MB is
 * written with sn_ckpt_save (the real atomic path: temporary file, fsync,
 * rename, directory fsync, `latest`) and read back with sn_ckpt_load into
 * a second model and optimizer (every checksum verified, as a resume
 * does), alternating R times with a plain write + fsync / read of the same
 * bytes from the same buffers to a file in the same directory.  The page
 * cache is dropped before every read.  Also times XXH3 alone over the
 * bytes, to show the checksum's share.
 *
 * usage: bench_ckpt [--dir DIR] [--size-mb N] [--reps R]
 *        bench_ckpt --default-model [--dir DIR] [--reps R] [--steps S]
 *   --default-model: the default space's model (what `supernest train`
 *   checkpoints by default): median time of R (default 5) sn_ckpt_save
 *   calls, and, with S > 0 (default 3), the time of S training steps at
 *   batch 128 with the default sandwich rule against S steps of the
 *   largest sub-network alone (bench_train's step), i.e. the sandwich
 *   factor.
 *
 * An MPI program: runs as a singleton or under mpirun (rank 0 owns every
 * tensor, as in training; every rank reads).  Prints human-readable lines
 * and one final JSON line.  Removes its files at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "io/ckpt.h"
#include "io/h5.h"
#include "io/runlog.h"
#include "src/arch.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/train.h"
#include "src/util.h"

#define PATH_LEN 4096

static int rank = 0, nranks = 1;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_ckpt: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double *c = malloc((size_t)n * sizeof *c);
    SN_CHECK(c != NULL);
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* Wall time of a collective phase: the slowest rank's. */
static double slowest(double dt)
{
    double mx;
    MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return mx;
}

/* ---- the page cache --------------------------------------------------- */

static bool drop_caches_ok = false;   /* /proc/sys/vm/drop_caches is writable */

static const char *drop_method(void)
{
    return drop_caches_ok ? "posix_fadvise(DONTNEED) + /proc/sys/vm/drop_caches"
                          : "posix_fadvise(DONTNEED) only";
}

/* Drops path's pages from the page cache (rank 0; every rank waits). */
static void drop_cache(const char *path)
{
    if (rank == 0) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
        if (drop_caches_ok) {
            sync();
            int pd = open("/proc/sys/vm/drop_caches", O_WRONLY);
            if (pd >= 0) {
                if (write(pd, "3\n", 2) != 2) drop_caches_ok = false;
                close(pd);
            }
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- plain POSIX baseline --------------------------------------------- */

static void write_all(int fd, const void *buf, size_t n, const char *path)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die(path, strerror(w < 0 ? errno : ENOSPC));
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *buf, size_t n, const char *path)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die(path, r < 0 ? strerror(errno) : "short read");
        p += r;
        n -= (size_t)r;
    }
}

/* Rank 0 writes the three buffers (as rank 0 owns every tensor of a
 * checkpoint), fsyncs and closes.  Returns the slowest rank's seconds. */
static double plain_write(const char *path, float *const bufs[3], size_t each)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = sn_now();
    if (rank == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die(path, strerror(errno));
        for (int i = 0; i < 3; i++) write_all(fd, bufs[i], each, path);
        if (fsync(fd) != 0) die(path, strerror(errno));
        if (close(fd) != 0) die(path, strerror(errno));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    return slowest(sn_now() - t0);
}

/* Every rank reads the file (as every rank reads a checkpoint). */
static double plain_read(const char *path, float *const bufs[3], size_t each)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = sn_now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path, strerror(errno));
    for (int i = 0; i < 3; i++) read_all(fd, bufs[i], each, path);
    close(fd);
    return slowest(sn_now() - t0);
}

/* ---- models ------------------------------------------------------------ */

/* Parameters of one block of width E, H heads of D, MLP F. */
static double block_params(double E, double HD, double F)
{
    return 4.0 + E * 3.0 * HD + 3.0 * HD + E * HD + E + 2.0 * E + F * E + F + E * F + E;
}

/* The default space enlarged to ViT-Base widths (embed up to 768, 12
 * heads of 64, MLP up to 3072) with as many blocks as make a checkpoint
 * of about mb MB (weights + m + v, float32). */
static void big_space(double mb, sn_space *s)
{
    sn_space_default(s);
    static const int embed[] = {192, 384, 576, 768};
    static const int heads[] = {3, 6, 9, 12};
    s->n_embed = 4;
    memcpy(s->embed, embed, sizeof embed);
    s->n_heads = 4;
    memcpy(s->heads, heads, sizeof heads);
    s->n_mlp = 8;
    for (int i = 0; i < s->n_mlp; i++) s->mlp[i] = 384 * (i + 1);
    s->head_dim = 64;
    double per_block = 12.0 * block_params(768, 768, 3072) / 1e6;   /* MB */
    int blocks = (int)(mb / per_block + 0.5);
    if (blocks < 1) blocks = 1;
    if (blocks > SN_MAX_BLOCKS) blocks = SN_MAX_BLOCKS;
    s->n_stages = blocks >= 2 ? 2 : 1;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = (blocks + 1) / 2;
    s->max_depth[1] = blocks / 2;
    if (s->n_stages == 1) s->max_depth[0] = blocks;
}

/* Fills every byte of the model's and optimizer's buffers (first touch,
 * and non-trivial moments: m ~ N(0, 1e-3), v ~ (1e-3 N)^2). */
static void fill_state(sn_model *m, sn_adamw *o, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 77);
    for (size_t i = 0; i < m->n_params; i++) {
        float g = 1e-3f * sn_rng_normal(&r);
        o->m[i] = g;
        o->v[i] = g * g + 1e-12f;
    }
    memset(m->grads, 0, m->n_params * sizeof(float));
    o->step = 1234;
}

static sn_model *make_model(const sn_space *s, uint64_t seed, sn_adamw *o)
{
    sn_model *m = sn_model_create(s, seed);
    if (!m) die("out of memory", NULL);
    sn_train_opts to;
    sn_train_opts_default(&to);
    to.adamw.total = 100000;
    to.adamw.warmup = 5000;
    if (sn_adamw_init(o, m, &to.adamw) != SN_OK) die("out of memory", NULL);
    return m;
}

static void file_info(sn_file_info *info)
{
    memset(info, 0, sizeof *info);
    info->patch = 4;
    info->image_rows = info->image_cols = 28;
    info->norm_mean = 0.2860f;
    info->norm_std = 0.3530f;
    info->seed = 1;
    info->val_size = 5000;
    snprintf(info->options, sizeof info->options, "bench = bench_ckpt\n");
}

/* Removes what sn_ckpt_save writes in dir (ckpt-*.h5[.tmp], latest[.tmp]),
 * then dir itself if that left it empty. */
static void remove_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *n = e->d_name;
            bool ours = strcmp(n, "latest") == 0 || strcmp(n, "latest.tmp") == 0 ||
                        (strncmp(n, "ckpt-", 5) == 0 && strstr(n, ".h5") != NULL);
            if (!ours) continue;
            char path[PATH_LEN + 256];
            snprintf(path, sizeof path, "%s/%s", dir, n);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The tensors of the table (not the alignment padding between them) of
 * the three buffers are equal. */
static bool same_tensors(const sn_model *m, float *const a[3], float *const b[3])
{
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < m->n_tensors; i++)
            if (memcmp(a[k] + m->info[i].offset, b[k] + m->info[i].offset,
                       m->info[i].count * sizeof(float)) != 0)
                return false;
    return true;
}

/* ---- the default model's checkpoint and step time --------------------- */

static int default_model_mode(const char *dir, int reps, int steps)
{
    char err[1024], cdir[PATH_LEN], path[PATH_LEN];
    snprintf(cdir, sizeof cdir, "%s/ckpt-default", dir);
    sn_space s;
    sn_space_default(&s);
    s.n_tokens = 49;
    s.token_dim = 16;
    s.n_classes = 10;
    if (sn_space_validate(&s, err, sizeof err) != SN_OK) die("default space", err);
    sn_adamw opt;
    sn_model *m = make_model(&s, 1, &opt);
    fill_state(m, &opt, 1);
    sn_file_info info;
    file_info(&info);
    double bytes = 3.0 * (double)m->n_params * sizeof(float);
    double *t = calloc((size_t)reps, sizeof *t);
    SN_CHECK(t != NULL);
    for (int r = 0; r < reps; r++) {
        sn_train_state ts = {.step = 500 * (int64_t)(r + 1), .epoch = 0, .cursor = 0};
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = sn_now();
        if (sn_ckpt_save(MPI_COMM_WORLD, cdir, m, &opt, &ts, &info, 3, NULL, path, sizeof path,
                         err, sizeof err) != SN_OK)
            die("sn_ckpt_save", err);
        t[r] = slowest(sn_now() - t0);
    }
    double ckpt_s = median(t, reps);
    struct stat st;
    double fbytes = stat(path, &st) == 0 ? (double)st.st_size : 0.0;
    if (rank == 0) {
        printf("default model: %zu parameters, %d tensors (%d datasets), checkpoint %.1f MB "
               "(file %.1f MB)\n",
               m->n_params, m->n_tensors, 3 * m->n_tensors, bytes / 1e6, fbytes / 1e6);
        printf("default model sn_ckpt_save: median %.3f s of %d (%.0f MB/s)\n", ckpt_s, reps,
               bytes / 1e6 / ckpt_s);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) remove_dir_files(cdir);

    double sandwich_ms = 0, largest_ms = 0;
    if (steps > 0) {
        if (sn_blas_init(getenv("SN_BLIS_ARCH"), err, sizeof err) != SN_OK) die("BLIS", err);
        const int64_t batch = 128, T = s.n_tokens, P = s.token_dim;
        float *tokens = sn_alloc((size_t)(batch * T * P) * sizeof(float));
        int32_t *labels = sn_alloc((size_t)batch * sizeof(int32_t));
        SN_CHECK(tokens && labels);
        sn_rng r;
        sn_rng_seed(&r, 7, 0);
        for (int64_t i = 0; i < batch * T * P; i++) tokens[i] = sn_rng_normal(&r);
        for (int64_t i = 0; i < batch; i++)
            labels[i] = (int32_t)sn_rng_below(&r, (uint64_t)s.n_classes);
        /* the two rules' steps alternate, so that drift in the machine's
         * load (other jobs) falls on both alike */
        sn_trainer tr[2];
        for (int mode = 0; mode < 2; mode++) {
            sn_train_opts o;
            sn_train_opts_default(&o);
            o.threads = sn_cpu_count();
            o.adamw.total = 1000;
            if (mode == 1) {
                o.schedule = SN_SCHEDULE_FIXED;
                sn_subnet_max(&s, &o.fixed);
            }
            if (sn_trainer_init(&tr[mode], m, batch, &o, err, sizeof err) != SN_OK)
                die("trainer", err);
        }
        double sum[2] = {0, 0};
        sn_step_stats ss;
        for (int i = 0; i <= steps; i++)
            for (int mode = 0; mode < 2; mode++) {
                double t0 = sn_now();
                if (sn_train_step(&tr[mode], tokens, labels, batch, &ss, err, sizeof err) != SN_OK)
                    die("train step", err);
                if (i > 0) sum[mode] += sn_now() - t0;   /* step 0 warms up */
            }
        sandwich_ms = sum[0] / steps * 1e3;
        largest_ms = sum[1] / steps * 1e3;
        sn_trainer_free(&tr[0]);
        sn_trainer_free(&tr[1]);
        sn_free(tokens);
        sn_free(labels);
        if (rank == 0)
            printf("train step, batch 128, %d threads: sandwich rule %.1f ms, largest only %.1f ms "
                   "(sandwich factor %.2f)\n",
                   sn_cpu_count(), sandwich_ms, largest_ms, sandwich_ms / largest_ms);
    }
    if (rank == 0) {
        printf("{\"default_ckpt_s\":%.4f,\"bytes\":%.0f", ckpt_s, bytes);
        if (steps > 0)
            printf(",\"sandwich_step_ms\":%.3f,\"largest_step_ms\":%.3f,\"sandwich_factor\":%.3f",
                   sandwich_ms, largest_ms, sandwich_ms / largest_ms);
        printf("}\n");
    }
    free(t);
    sn_adamw_free(&opt);
    sn_model_destroy(m);
    return 0;
}

/* ---- main benchmark ---------------------------------------------------- */

int main(int argc, char **argv)
{
    /* as supernest's own runtime (mpi/runtime.c): ROMIO unless chosen */
    setenv("OMPI_MCA_io", "romio321", 0);
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "bench_ckpt: MPI_Init failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    sn_h5_quiet();

    const char *dir = "runs/bench-ckpt";
    double size_mb = 400;
    int reps = -1, steps = 3;
    bool def = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (strcmp(argv[i], "--default-model") == 0) def = true;
        else if (strcmp(argv[i], "--dir") == 0 && has) dir = argv[++i];
        else if (strcmp(argv[i], "--size-mb") == 0 && has) size_mb = atof(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && has) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && has) steps = atoi(argv[++i]);
        else {
            if (rank == 0)
                fprintf(stderr, "usage: bench_ckpt [--dir DIR] [--size-mb N] [--reps R]\n"
                                "       bench_ckpt --default-model [--dir DIR] [--reps R] "
                                "[--steps S]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (reps < 0) reps = def ? 5 : 3;
    if (reps < 1 || size_mb <= 0 || steps < 0) {
        if (rank == 0) fprintf(stderr, "bench_ckpt: --reps and --size-mb must be positive\n");
        MPI_Finalize();
        return 2;
    }
    char err[1024];
    if (rank == 0 && sn_mkdirs(dir, err, sizeof err) != SN_OK) die("", err);
    MPI_Barrier(MPI_COMM_WORLD);
    drop_caches_ok = access("/proc/sys/vm/drop_caches", W_OK) == 0;

    if (def) {
        int rc = default_model_mode(dir, reps, steps);
        if (rank == 0) rmdir(dir);
        MPI_Finalize();
        return rc;
    }

    sn_space s;
    big_space(size_mb, &s);
    if (sn_space_validate(&s, err, sizeof err) != SN_OK) die("search space", err);
    char sdesc[512];
    sn_space_format(&s, sdesc, sizeof sdesc);

    sn_adamw o1, o2;
    sn_model *m1 = make_model(&s, 1, &o1);
    sn_model *m2 = make_model(&s, 2, &o2);
    const size_t each = m1->n_params * sizeof(float);
    const double bytes = 3.0 * (double)each;
    /* warm every buffer: first touch of fresh memory is slow here */
    fill_state(m1, &o1, 1);
    fill_state(m2, &o2, 2);
    float *const src[3] = {m1->params, o1.m, o1.v};
    float *const dst[3] = {m2->params, o2.m, o2.v};

    sn_file_info info;
    file_info(&info);
    sn_train_state ts = {.step = 500, .epoch = 3, .cursor = 1000};
    char cdir[PATH_LEN], plain[PATH_LEN], ckpt[PATH_LEN];
    snprintf(cdir, sizeof cdir, "%s/ckpt", dir);
    snprintf(plain, sizeof plain, "%s/plain.bin", dir);

    if (rank == 0) {
        printf("checkpoint I/O in %s, %d rank%s, MPI-IO component %s\n", dir, nranks,
               nranks > 1 ? "s" : "", getenv("OMPI_MCA_io") ? getenv("OMPI_MCA_io") : "default");
        printf("space: %s\n", sdesc);
        printf("model: %zu parameters, %d tensors -> %d datasets; weights + m + v = %.1f MB\n",
               m1->n_params, m1->n_tensors, 3 * m1->n_tensors, bytes / 1e6);
        printf("page cache dropped before reads with %s\n", drop_method());
        fflush(stdout);
    }

    /* XXH3 alone over the same bytes, tensor by tensor as the writer does */
    double *xt = calloc((size_t)reps, sizeof *xt);
    SN_CHECK(xt != NULL);
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = sn_now();
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < m1->n_tensors; i++)
                sink ^= XXH3_64bits(src[b] + m1->info[i].offset,
                                    m1->info[i].count * sizeof(float));
        xt[r] = sn_now() - t0;
    }
    (void)sink;
    double xxh3_s = median(xt, reps);

    /* one untimed round of each: the page cache's and HDF5's first use */
    plain_write(plain, src, each);
    if (sn_ckpt_save(MPI_COMM_WORLD, cdir, m1, &o1, &ts, &info, 1, NULL, ckpt, sizeof ckpt, err,
                     sizeof err) != SN_OK)
        die("sn_ckpt_save", err);

    double *pw = calloc((size_t)reps, sizeof *pw), *pr = calloc((size_t)reps, sizeof *pr);
    double *cw = calloc((size_t)reps, sizeof *cw), *cr = calloc((size_t)reps, sizeof *cr);
    SN_CHECK(pw && pr && cw && cr);
    for (int r = 0; r < reps; r++) {
        /* every timed write starts without the previous file: freeing its
         * blocks (and, with `discard` mounts, trimming them) at the next
         * journal commit would otherwise land in whichever fsync comes next */
        if (rank == 0) {
            unlink(plain);
            sync();
        }
        MPI_Barrier(MPI_COMM_WORLD);
        pw[r] = plain_write(plain, src, each);
        drop_cache(plain);
        pr[r] = plain_read(plain, dst, each);
        for (int b = 0; b < 3; b++)
            if (memcmp(src[b], dst[b], each) != 0) die("plain read", "data differ");
        for (int b = 0; b < 3; b++) memset(dst[b], 0, each);

        if (rank == 0) {
            remove_dir_files(cdir);
            sync();
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = sn_now();
        if (sn_ckpt_save(MPI_COMM_WORLD, cdir, m1, &o1, &ts, &info, 1, NULL, ckpt, sizeof ckpt,
                         err, sizeof err) != SN_OK)
            die("sn_ckpt_save", err);
        cw[r] = slowest(sn_now() - t0);
        drop_cache(ckpt);
        sn_train_state back;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = sn_now();
        if (sn_ckpt_load(MPI_COMM_WORLD, ckpt, m2, &o2, &back, err, sizeof err) != SN_OK)
            die("sn_ckpt_load", err);
        cr[r] = slowest(sn_now() - t0);
        if (!same_tensors(m1, src, dst)) die("sn_ckpt_load", "data differ");
        if (back.step != ts.step || o2.step != o1.step) die("sn_ckpt_load", "state differs");
        if (rank == 0) {
            printf("rep %d: plain write %.0f MB/s, checkpoint write %.0f MB/s; "
                   "plain read %.0f MB/s, checkpoint read %.0f MB/s\n",
                   r + 1, bytes / 1e6 / pw[r], bytes / 1e6 / cw[r], bytes / 1e6 / pr[r],
                   bytes / 1e6 / cr[r]);
            fflush(stdout);
        }
    }
    struct stat st;
    double fbytes = stat(ckpt, &st) == 0 ? (double)st.st_size : 0.0;

    double pwm = bytes / 1e6 / median(pw, reps), cwm = bytes / 1e6 / median(cw, reps);
    double prm = bytes / 1e6 / median(pr, reps), crm = bytes / 1e6 / median(cr, reps);
    double xxh3_gbs = bytes / 1e9 / xxh3_s;
    if (rank == 0) {
        printf("checkpoint file %.1f MB (%.2f%% over the tensor bytes)\n", fbytes / 1e6,
               100.0 * (fbytes - bytes) / bytes);
        printf("write (median of %d): plain %.0f MB/s, checkpoint %.0f MB/s, ratio %.2f\n", reps,
               pwm, cwm, cwm / pwm);
        printf("read  (median of %d): plain %.0f MB/s, checkpoint %.0f MB/s, ratio %.2f\n", reps,
               prm, crm, crm / prm);
        double *q = calloc((size_t)reps, sizeof *q);
        SN_CHECK(q != NULL);
        for (int r = 0; r < reps; r++) q[r] = pw[r] / cw[r];
        double pq_w = median(q, reps);
        for (int r = 0; r < reps; r++) q[r] = pr[r] / cr[r];
        double pq_r = median(q, reps);
        free(q);
        printf("median of the per-rep ratios (adjacent runs, less exposed to drift in the disk's "
               "speed): write %.2f, read %.2f\n", pq_w, pq_r);
        printf("XXH3 alone: %.2f GB/s = %.3f s over the bytes (%.1f%% of a checkpoint write, "
               "%.1f%% of a read)\n",
               xxh3_gbs, xxh3_s, 100.0 * xxh3_s / median(cw, reps),
               100.0 * xxh3_s / median(cr, reps));
        printf("{\"bytes\":%.0f,\"plain_write_mbs\":%.1f,\"ckpt_write_mbs\":%.1f,"
               "\"write_ratio\":%.3f,\"plain_read_mbs\":%.1f,\"ckpt_read_mbs\":%.1f,"
               "\"read_ratio\":%.3f,\"xxh3_gbs\":%.2f}\n",
               bytes, pwm, cwm, cwm / pwm, prm, crm, crm / prm, xxh3_gbs);
        fflush(stdout);
    }

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        unlink(plain);
        remove_dir_files(cdir);
        rmdir(dir);   /* only if now empty */
    }
    free(xt);
    free(pw);
    free(pr);
    free(cw);
    free(cr);
    sn_adamw_free(&o1);
    sn_adamw_free(&o2);
    sn_model_destroy(m1);
    sn_model_destroy(m2);
    MPI_Finalize();
    return 0;
}
