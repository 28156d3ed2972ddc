#include "io/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "io/h5.h"
#include "io/runlog.h"
#include "src/util.h"

#define PATH_LEN 4096

/* ---- durable file system steps (rank 0 only) --------------------------- */

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

static void dir_of(const char *path, char *dir, size_t len)
{
    snprintf(dir, len, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
}

int sn_file_commit(const char *tmp, const char *final, char *err, size_t errlen)
{
    char dir[PATH_LEN];
    dir_of(final, dir, sizeof dir);
    if (fsync_path(tmp, false) != 0)
        return sn_errf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rename(tmp, final) != 0)
        return sn_errf(err, errlen, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    if (fsync_path(dir, true) != 0)
        return sn_errf(err, errlen, "%s: fsync of the directory failed: %s", dir, strerror(errno));
    return SN_OK;
}

/* Replaces dir/latest with a file holding `name` and a newline. */
static int write_latest(const char *dir, const char *name, char *err, size_t errlen)
{
    char tmp[PATH_LEN], final[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s/latest.tmp", dir);
    snprintf(final, sizeof final, "%s/latest", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) return sn_errf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = fprintf(f, "%s\n", name) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return sn_errf(err, errlen, "%s: write failed (disk full?)", tmp);
    }
    /* sn_file_commit fsyncs it before the rename */
    if (sn_file_commit(tmp, final, err, errlen) != SN_OK) {
        unlink(tmp);
        return SN_ERR;
    }
    return SN_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes all but the newest `keep` dir/ckpt-*.h5 (names sort by step),
 * and the ckpt-*.h5.tmp a killed writer left behind (called after a
 * successful save, when no other write is under way). */
static void prune(const char *dir, int keep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && len > 7 &&
            strcmp(e->d_name + len - 7, ".h5.tmp") == 0) {
            char path[PATH_LEN];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
            continue;
        }
        if (strncmp(e->d_name, "ckpt-", 5) != 0 || len < 8 || strcmp(e->d_name + len - 3, ".h5") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n > 0) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Every rank learns whether any rank failed; the message of the lowest
 * failing rank is shared so that all of them report the same line. */
static int agree(MPI_Comm comm, int rc, char *err, size_t errlen)
{
    int rank, bad = rc != SN_OK, first;
    MPI_Comm_rank(comm, &rank);
    int mine = bad ? rank : 1 << 30;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == 1 << 30) return SN_OK;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", err ? err : "");
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, first, comm);
    if (err && errlen) snprintf(err, errlen, "%s", buf);
    return SN_ERR;
}

/* ---- writing --------------------------------------------------------- */

/* One tensor to write: name, shape and where its data is. */
typedef struct out_tensor {
    char name[96];
    int ndim;
    int64_t dims[2];
    const float *data;
    int64_t ld;
    int owner;
} out_tensor;

int sn_h5_write_space(hid_t cfg, const sn_space *s, char *err, size_t errlen)
{
    if (sn_h5_attr_str(cfg, "task", s->task == SN_TASK_LM ? "lm" : "image", err, errlen) ||
        sn_h5_attr_i32v(cfg, "embed_choices", s->embed, s->n_embed, err, errlen) ||
        sn_h5_attr_i32v(cfg, "heads_choices", s->heads, s->n_heads, err, errlen) ||
        sn_h5_attr_i32v(cfg, "mlp_choices", s->mlp, s->n_mlp, err, errlen) ||
        sn_h5_attr_i32v(cfg, "min_depth", s->min_depth, s->n_stages, err, errlen) ||
        sn_h5_attr_i32v(cfg, "max_depth", s->max_depth, s->n_stages, err, errlen) ||
        sn_h5_attr_i32v(cfg, "head_dim", &s->head_dim, 1, err, errlen) ||
        sn_h5_attr_i32v(cfg, "n_tokens", &s->n_tokens, 1, err, errlen) ||
        sn_h5_attr_i32v(cfg, "token_dim", &s->token_dim, 1, err, errlen) ||
        sn_h5_attr_i32v(cfg, "n_classes", &s->n_classes, 1, err, errlen) ||
        (sn_space_has_stem(s) &&
         sn_h5_attr_i32v(cfg, "stem_channels", s->stem, sn_stem_convs(s), err, errlen)))
        return SN_ERR;
    return SN_OK;
}

static int write_config(hid_t file, const sn_space *s, const sn_file_info *info,
                        const char *subnet, char *err, size_t errlen)
{
    hid_t cfg = sn_h5_group(file, "config", err, errlen);
    if (cfg < 0) return SN_ERR;
    int rc = sn_h5_write_space(cfg, s, err, errlen);
    if (rc == SN_OK &&
        (sn_h5_attr_i32v(cfg, "patch", &info->patch, 1, err, errlen) ||
         sn_h5_attr_i32v(cfg, "image_rows", &info->image_rows, 1, err, errlen) ||
         sn_h5_attr_i32v(cfg, "image_cols", &info->image_cols, 1, err, errlen) ||
         sn_h5_attr_f32(cfg, "norm_mean", info->norm_mean, err, errlen) ||
         sn_h5_attr_f32(cfg, "norm_std", info->norm_std, err, errlen) ||
         sn_h5_attr_i64(cfg, "seed", (int64_t)info->seed, err, errlen) ||
         sn_h5_attr_i64(cfg, "val_size", info->val_size, err, errlen)))
        rc = SN_ERR;
    if (rc == SN_OK && subnet) rc = sn_h5_attr_str(cfg, "subnet", subnet, err, errlen);
    if (rc == SN_OK && !subnet) rc = sn_h5_attr_str(cfg, "options", info->options, err, errlen);
    H5Gclose(cfg);
    return rc;
}

int sn_h5_write_root(hid_t file, const char *format, char *err, size_t errlen)
{
    char created[40], version[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(version, sizeof version, "%d.%d", SN_FORMAT_MAJOR, SN_FORMAT_MINOR);
    if (sn_h5_attr_str(file, "format", format, err, errlen) ||
        sn_h5_attr_str(file, "format_version", version, err, errlen) ||
        sn_h5_attr_str(file, "program_version", SN_VERSION, err, errlen) ||
        sn_h5_attr_str(file, "created", created, err, errlen))
        return SN_ERR;
    return SN_OK;
}

static int write_tensors(MPI_Comm comm, hid_t file, const char *group, const out_tensor *t,
                         int n, char *err, size_t errlen)
{
    hid_t g = sn_h5_group(file, group, err, errlen);
    if (g < 0) return SN_ERR;
    int rc = SN_OK;
    for (int i = 0; i < n && rc == SN_OK; i++)
        rc = sn_h5_write_tensor(comm, g, t[i].name, t[i].ndim, t[i].dims, t[i].data, t[i].ld,
                                t[i].owner, err, errlen);
    H5Gclose(g);
    return rc;
}

/* The table of m with data in buffer base (weights, m or v). */
static void table_tensors(const sn_model *m, const float *base, const int *owner, out_tensor *t)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *p = &m->info[i];
        snprintf(t[i].name, sizeof t[i].name, "%s", p->name);
        t[i].ndim = p->ndim;
        t[i].dims[0] = p->shape[0];
        t[i].dims[1] = p->shape[1];
        t[i].data = base + p->offset;
        t[i].ld = p->ndim == 2 ? p->shape[1] : p->shape[0];
        t[i].owner = owner ? owner[i] : 0;
    }
}

static int write_optimizer(MPI_Comm comm, hid_t file, const sn_model *m, const sn_adamw *opt,
                           const int *owner, out_tensor *t, char *err, size_t errlen)
{
    hid_t g = sn_h5_group(file, "optimizer", err, errlen);
    if (g < 0) return SN_ERR;
    const sn_adamw_opts *o = &opt->o;
    int rc = SN_OK;
    if (sn_h5_attr_i64(g, "step", opt->step, err, errlen) ||
        sn_h5_attr_f32(g, "lr", o->lr, err, errlen) ||
        sn_h5_attr_f32(g, "min_lr", o->min_lr, err, errlen) ||
        sn_h5_attr_f32(g, "beta1", o->beta1, err, errlen) ||
        sn_h5_attr_f32(g, "beta2", o->beta2, err, errlen) ||
        sn_h5_attr_f32(g, "eps", o->eps, err, errlen) ||
        sn_h5_attr_f32(g, "weight_decay", o->weight_decay, err, errlen) ||
        sn_h5_attr_i64(g, "warmup", o->warmup, err, errlen) ||
        sn_h5_attr_i64(g, "total", o->total, err, errlen))
        rc = SN_ERR;
    if (rc == SN_OK) {
        table_tensors(m, opt->m, owner, t);
        rc = write_tensors(comm, g, "m", t, m->n_tensors, err, errlen);
    }
    if (rc == SN_OK) {
        table_tensors(m, opt->v, owner, t);
        rc = write_tensors(comm, g, "v", t, m->n_tensors, err, errlen);
    }
    H5Gclose(g);
    return rc;
}

static int write_train(hid_t file, const sn_train_state *ts, char *err, size_t errlen)
{
    hid_t g = sn_h5_group(file, "train", err, errlen);
    if (g < 0) return SN_ERR;
    const bool fixed = ts->schedule == SN_SCHEDULE_FIXED;
    int rc = SN_OK;
    if (sn_h5_attr_i64(g, "step", ts->step, err, errlen) ||
        sn_h5_attr_i64(g, "epoch", ts->epoch, err, errlen) ||
        sn_h5_attr_i64(g, "cursor", ts->cursor, err, errlen) ||
        sn_h5_attr_str(g, "sampler", sn_schedule_name(ts->schedule), err, errlen) ||
        sn_h5_attr_str(g, "fixed_subnet", fixed ? ts->fixed_subnet : "", err, errlen))
        rc = SN_ERR;
    H5Gclose(g);
    return rc;
}

/* Writes a whole checkpoint (opt/ts non-NULL) or model (subnet non-NULL)
 * file at path.  Collective; the file is closed on return. */
static int write_file(MPI_Comm comm, const char *path, const sn_space *s, const out_tensor *w,
                      int nw, const sn_model *m, const sn_adamw *opt, const sn_train_state *ts,
                      const int *owner, const sn_file_info *info, const char *subnet,
                      char *err, size_t errlen)
{
    hid_t f = sn_h5_create(comm, path, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = sn_h5_write_root(f, subnet ? "supernest-model" : "supernest-checkpoint", err,
                              errlen);
    if (rc == SN_OK) rc = write_config(f, s, info, subnet, err, errlen);
    if (rc == SN_OK) rc = write_tensors(comm, f, "weights", w, nw, err, errlen);
    out_tensor *scratch = NULL;
    if (rc == SN_OK && opt) {
        scratch = calloc((size_t)m->n_tensors, sizeof *scratch);
        rc = scratch ? write_optimizer(comm, f, m, opt, owner, scratch, err, errlen)
                     : sn_errf(err, errlen, "out of memory");
    }
    free(scratch);
    if (rc == SN_OK && ts) rc = write_train(f, ts, err, errlen);
    if (rc == SN_OK) {
        hid_t g = sn_h5_group(f, "search", err, errlen);
        if (g < 0) rc = SN_ERR;
        else H5Gclose(g);
    }
    char cerr[512];
    if (sn_h5_close(f, path, cerr, sizeof cerr) != SN_OK && rc == SN_OK) {
        snprintf(err, errlen, "%s", cerr);
        rc = SN_ERR;
    }
    if (rc != SN_OK && err) {
        /* prefix the file to messages from the tensor writers */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        if (strncmp(msg, path, strlen(path)) != 0) snprintf(err, errlen, "%s: %s", path, msg);
    }
    return rc;
}

/* Refuses to start a file of about `need` bytes on a file system without
 * room for it: a write that fails half-way leaves HDF5 unusable for the
 * rest of the process, a clear refusal up front does not. */
static int check_space(const char *dir, double need, char *err, size_t errlen)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0) return SN_OK; /* unknown: let the write tell */
    double avail = (double)st.f_bavail * (double)st.f_frsize;
    if (avail < need)
        return sn_errf(err, errlen, "%s: not enough free space for a checkpoint (disk full: "
                                    "need %.1f MB, %.1f MB free)", dir, need / 1e6, avail / 1e6);
    return SN_OK;
}

static double debug_pause_s;

void sn_ckpt_debug_pause(double seconds) { debug_pause_s = seconds; }

int sn_ckpt_save(MPI_Comm comm, const char *dir, const sn_model *m, const sn_adamw *opt,
                 const sn_train_state *ts, const sn_file_info *info, int keep,
                 const int *owner, char *path, size_t pathlen, char *err, size_t errlen)
{
    SN_CHECK(keep >= 1);
    int rank;
    MPI_Comm_rank(comm, &rank);
    int rc = rank == 0 ? sn_mkdirs(dir, err, errlen) : SN_OK;
    /* weights, two moments, and HDF5's metadata (a few KiB per dataset) */
    double need = 3.0 * (double)m->n_params * sizeof(float) + 4096.0 * 3 * m->n_tensors + 262144;
    if (rc == SN_OK && rank == 0) rc = check_space(dir, need, err, errlen);
    if (agree(comm, rc, err, errlen) != SN_OK) return SN_ERR;

    char name[64], tmp[PATH_LEN], final[PATH_LEN];
    snprintf(name, sizeof name, "ckpt-%08lld.h5", (long long)ts->step);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    out_tensor *w = calloc((size_t)m->n_tensors, sizeof *w);
    if (!w) return sn_errf(err, errlen, "out of memory");
    table_tensors(m, m->params, owner, w);
    rc = write_file(comm, tmp, &m->space, w, m->n_tensors, m, opt, ts, owner, info, NULL, err,
                    errlen);
    free(w);
    rc = agree(comm, rc, err, errlen);
    if (rc == SN_OK && debug_pause_s > 0) {
        struct timespec ts_pause = {(time_t)debug_pause_s,
                                    (long)((debug_pause_s - (double)(time_t)debug_pause_s) * 1e9)};
        nanosleep(&ts_pause, NULL);
    }
    if (rank == 0) {
        if (rc == SN_OK) rc = sn_file_commit(tmp, final, err, errlen);
        if (rc == SN_OK) rc = write_latest(dir, name, err, errlen);
        if (rc == SN_OK) prune(dir, keep);
        else unlink(tmp);
    }
    rc = agree(comm, rc, err, errlen);
    if (rc == SN_OK && path) snprintf(path, pathlen, "%s", final);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

int sn_ckpt_resolve(const char *arg, char *path, size_t len, char *err, size_t errlen)
{
    struct stat st;
    if (stat(arg, &st) != 0)
        return sn_errf(err, errlen, "%s: cannot open: %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        snprintf(path, len, "%s", arg);
        return SN_OK;
    }
    char latest[PATH_LEN + 16];
    snprintf(latest, sizeof latest, "%s/latest", arg);
    const char *dir = arg;
    char sub[PATH_LEN];
    if (access(latest, R_OK) != 0) {
        snprintf(sub, sizeof sub, "%s/checkpoints", arg);
        snprintf(latest, sizeof latest, "%s/latest", sub);
        dir = sub;
        if (access(latest, R_OK) != 0)
            return sn_errf(err, errlen, "%s: no checkpoint here (no 'latest' in it or in its "
                                        "checkpoints/)", arg);
    }
    FILE *f = fopen(latest, "r");
    char name[256] = "";
    if (!f) return sn_errf(err, errlen, "%s: cannot open: %s", latest, strerror(errno));
    bool ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    if (!ok || name[0] == '\0' || strchr(name, '/'))
        return sn_errf(err, errlen, "%s: does not name a checkpoint file", latest);
    if ((size_t)snprintf(path, len, "%s/%s", dir, name) >= len)
        return sn_errf(err, errlen, "%s: path too long", dir);
    return SN_OK;
}

/* True if the object at path (absolute) exists, checking each link. */
static bool path_exists(hid_t file, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            char c = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return false;
            *p = c;
        }
        if (end) return true;
    }
}

int sn_h5_read_version(hid_t f, const char *path, int *major, int *minor, char *err,
                       size_t errlen)
{
    char ver[64];
    if (sn_h5_get_str(f, "format_version", ver, sizeof ver, path, err, errlen) != SN_OK)
        return SN_ERR;
    char tail;
    if (sscanf(ver, "%d.%d%c", major, minor, &tail) != 2 || *major < 0 || *minor < 0 ||
        ver[0] < '0' || ver[0] > '9')
        return sn_errf(err, errlen, "%s: format_version '%s' is not MAJOR.MINOR", path, ver);
    if (*major != SN_FORMAT_MAJOR)
        return sn_errf(err, errlen, "%s: format version %s is %s than this supernest reads (%d.x)",
                       path, ver, *major > SN_FORMAT_MAJOR ? "newer" : "older", SN_FORMAT_MAJOR);
    return SN_OK;
}

int sn_file_read_header(hid_t f, const char *path, sn_file_info *info, char *err, size_t errlen)
{
    char fmt[128];
    if (!sn_h5_has(f, "format"))
        return sn_errf(err, errlen, "%s: not a supernest file (no root attribute 'format')", path);
    if (sn_h5_get_str(f, "format", fmt, sizeof fmt, path, err, errlen) != SN_OK) return SN_ERR;
    if (strcmp(fmt, "supernest-checkpoint") == 0)
        info->is_model = false;
    else if (strcmp(fmt, "supernest-model") == 0)
        info->is_model = true;
    else if (strcmp(fmt, "supernest-latency") == 0)
        return sn_errf(err, errlen, "%s: a latency table, not a checkpoint or model (check it "
                                    "with: supernest latency-table --table %s)", path, path);
    else if (strcmp(fmt, "supernest-search") == 0)
        return sn_errf(err, errlen, "%s: a search state, not a checkpoint or model (its front "
                                    "is pareto.csv beside it; the search that wrote it, run again, "
                                    "continues it)",
                       path);
    else
        return sn_errf(err, errlen, "%s: format '%s' is not a supernest file (expected "
                                    "supernest-checkpoint or supernest-model)", path, fmt);
    if (sn_h5_read_version(f, path, &info->major, &info->minor, err, errlen) != SN_OK)
        return SN_ERR;
    if (sn_h5_get_str(f, "program_version", info->program_version, sizeof info->program_version,
                      path, err, errlen) != SN_OK ||
        sn_h5_get_str(f, "created", info->created, sizeof info->created, path, err, errlen) !=
            SN_OK)
        return SN_ERR;
    return SN_OK;
}

int sn_h5_read_space(hid_t g, const char *what, sn_space *s, char *err, size_t errlen)
{
    int n_min = 0, one = 0;
    struct {
        const char *name;
        int *dst, *count, max;
    } lists[] = {
        {"embed_choices", s->embed, &s->n_embed, SN_MAX_CHOICES},
        {"heads_choices", s->heads, &s->n_heads, SN_MAX_CHOICES},
        {"mlp_choices", s->mlp, &s->n_mlp, SN_MAX_CHOICES},
        {"min_depth", s->min_depth, &n_min, SN_MAX_STAGES},
        {"max_depth", s->max_depth, &s->n_stages, SN_MAX_STAGES},
        {"head_dim", &s->head_dim, &one, 1},
        {"n_tokens", &s->n_tokens, &one, 1},
        {"token_dim", &s->token_dim, &one, 1},
        {"n_classes", &s->n_classes, &one, 1},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (sn_h5_get_i32v(g, lists[i].name, lists[i].dst, lists[i].max, lists[i].count, what,
                           err, errlen) != SN_OK)
            return SN_ERR;
    if (n_min != s->n_stages)
        return sn_errf(err, errlen, "%s: min_depth has %d stages, max_depth %d", what, n_min,
                       s->n_stages);
    /* files without a stem (all before format 1.1) have no stem_channels;
     * two values before format 1.2, two or three since */
    memset(s->stem, 0, sizeof s->stem);
    int n_stem = 0;
    if (sn_h5_has(g, "stem_channels") &&
        sn_h5_get_i32v(g, "stem_channels", s->stem, SN_MAX_STEM_CONVS, &n_stem, what, err,
                       errlen) != SN_OK)
        return SN_ERR;
    if (sn_h5_has(g, "stem_channels") && n_stem < 2)
        return sn_errf(err, errlen, "%s: stem_channels has %d values, expected 2 or 3", what,
                       n_stem);
    /* files written before the language model have no task: images */
    s->task = SN_TASK_IMAGE;
    if (sn_h5_has(g, "task")) {
        char task[16];
        if (sn_h5_get_str(g, "task", task, sizeof task, what, err, errlen) != SN_OK) return SN_ERR;
        if (strcmp(task, "lm") == 0)
            s->task = SN_TASK_LM;
        else if (strcmp(task, "image") != 0)
            return sn_errf(err, errlen, "%s: task '%s' is not one this version knows (image, lm)",
                           what, task);
    }
    char msg[512];
    if (sn_space_validate(s, msg, sizeof msg) != SN_OK)
        return sn_errf(err, errlen, "%s: %s", what, msg);
    return SN_OK;
}

static int read_config(hid_t g, const char *what, sn_file_info *info, char *err, size_t errlen)
{
    if (sn_h5_read_space(g, what, &info->space, err, errlen) != SN_OK) return SN_ERR;
    int one = 0;
    struct {
        const char *name;
        int *dst;
    } ints[] = {
        {"patch", &info->patch},
        {"image_rows", &info->image_rows},
        {"image_cols", &info->image_cols},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (sn_h5_get_i32v(g, ints[i].name, ints[i].dst, 1, &one, what, err, errlen) != SN_OK)
            return SN_ERR;
    if (sn_h5_get_f32(g, "norm_mean", &info->norm_mean, what, err, errlen) != SN_OK ||
        sn_h5_get_f32(g, "norm_std", &info->norm_std, what, err, errlen) != SN_OK)
        return SN_ERR;
    /* the preprocessing must produce the space's tokens (readers cut images
     * into patches by these numbers) */
    const sn_space *s = &info->space;
    const int p = info->patch, r = info->image_rows, c = info->image_cols;
    if (s->task == SN_TASK_IMAGE &&
        (p <= 0 || r <= 0 || c <= 0 || r % p != 0 || c % p != 0 ||
         (r / p) * (c / p) != s->n_tokens ||
         sn_image_token_dim(p, sn_stem_convs(s)) != s->token_dim))
        return sn_errf(err, errlen, "%s: patch %d of %dx%d images does not give the space's %d "
                                    "tokens of %d values", what, p, r, c, s->n_tokens,
                       s->token_dim);
    if (!isfinite(info->norm_mean) || !isfinite(info->norm_std) || info->norm_std <= 0.0f)
        return sn_errf(err, errlen, "%s: normalisation mean %g, std %g: not finite with a "
                                    "positive std", what, (double)info->norm_mean,
                       (double)info->norm_std);
    /* seed, val_size and options describe the run; a file without them
     * can still be described and evaluated on the test split */
    int64_t seed = 0;
    if ((sn_h5_has(g, "seed") && sn_h5_get_i64(g, "seed", &seed, what, err, errlen) != SN_OK) ||
        (sn_h5_has(g, "val_size") &&
         sn_h5_get_i64(g, "val_size", &info->val_size, what, err, errlen) != SN_OK) ||
        (sn_h5_has(g, "options") &&
         sn_h5_get_str(g, "options", info->options, sizeof info->options, what, err, errlen) !=
             SN_OK))
        return SN_ERR;
    info->seed = (uint64_t)seed;
    if (info->is_model &&
        sn_h5_get_str(g, "subnet", info->subnet, sizeof info->subnet, what, err, errlen) != SN_OK)
        return SN_ERR;
    return SN_OK;
}

/* Refuses a file whose weights need more bytes than the whole file has:
 * a few bytes of /config must not make a loader allocate terabytes, or
 * overflow the parameter table's 64-bit sizes.  The weights are those of
 * sub-network n of s (every tensor of sn_param_table at its full size when
 * n is NULL: a checkpoint).  Counted in double, which cannot overflow for
 * int dimensions; the table's alignment padding is left out, so the count
 * is never above the true need. */
static int check_weights_fit(hid_t f, const char *path, const sn_space *s, const sn_subnet *n,
                             char *err, size_t errlen)
{
    const double E = n ? n->embed : s->embed[s->n_embed - 1], D = s->head_dim,
                 T = s->n_tokens, P = sn_space_embed_in(s), C = s->n_classes;
    const int blocks = n ? n->n_blocks : sn_space_max_blocks(s);
    double floats = E * P + E + T * E + 2 * E + C * E + C + (double)sn_stem_params(s);
    for (int i = 0; i < blocks; i++) {
        const double HD = D * (n ? n->heads[i] : s->heads[s->n_heads - 1]),
                     F = n ? n->mlp[i] : s->mlp[s->n_mlp - 1];
        floats += 2 * E + 3 * HD * E + 3 * HD + E * HD + E + 2 * E + F * E + F + E * F + E;
    }
    hsize_t size = 0;
    if (H5Fget_filesize(f, &size) < 0)
        return sn_errf(err, errlen, "%s: cannot tell the file's size", path);
    if (4.0 * floats > (double)size)
        return sn_errf(err, errlen, "%s: /config describes %.4g parameters (%.4g MB of weights), "
                                    "more than the whole file (%llu bytes) holds",
                       path, floats, 4.0 * floats / 1e6, (unsigned long long)size);
    return SN_OK;
}

int sn_file_read_config(hid_t f, const char *path, sn_file_info *info, char *err, size_t errlen)
{
    char what[4096 + 16];
    snprintf(what, sizeof what, "%s: /config", path);
    if (!path_exists(f, "/config"))
        return sn_errf(err, errlen, "%s: the /config group is missing", path);
    hid_t g = H5Gopen2(f, "/config", H5P_DEFAULT);
    if (g < 0) return sn_errf(err, errlen, "%s: /config is not a readable group", path);
    int rc = read_config(g, what, info, err, errlen);
    H5Gclose(g);
    /* a model's weights are its sub-network's: checked once it is parsed */
    if (rc == SN_OK && !info->is_model)
        rc = check_weights_fit(f, path, &info->space, NULL, err, errlen);
    if (rc != SN_OK || info->is_model) return rc;

    snprintf(what, sizeof what, "%s: /train", path);
    if (!path_exists(f, "/train"))
        return sn_errf(err, errlen, "%s: the /train group is missing", path);
    g = H5Gopen2(f, "/train", H5P_DEFAULT);
    if (g < 0) return sn_errf(err, errlen, "%s: /train is not a readable group", path);
    rc = sn_h5_get_i64(g, "step", &info->step, what, err, errlen);
    H5Gclose(g);
    return rc;
}

static int read_info(hid_t f, const char *path, sn_file_info *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    if (sn_file_read_header(f, path, info, err, errlen) != SN_OK) return SN_ERR;
    return sn_file_read_config(f, path, info, err, errlen);
}

int sn_file_read_info(MPI_Comm comm, const char *path, sn_file_info *info,
                      char *err, size_t errlen)
{
    hid_t f = sn_h5_open(comm, path, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = read_info(f, path, info, err, errlen);
    H5Fclose(f);
    return rc;
}

/* Reads tensors [t_lo, t_hi) of m's table from group into base. */
static int read_table(hid_t f, const char *group, const sn_model *m, int t_lo, int t_hi,
                      float *base, const char *what, char *err, size_t errlen)
{
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0)
        return sn_errf(err, errlen, "%s: group /%s is missing", what, group);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    int rc = SN_OK;
    char label[PATH_LEN + 64];
    snprintf(label, sizeof label, "%s: /%s", what, group);
    for (int i = t_lo; i < t_hi && rc == SN_OK; i++) {
        const sn_param_info *p = &m->info[i];
        int64_t ld = p->ndim == 2 ? p->shape[1] : p->shape[0];
        rc = sn_h5_read_tensor(g, p->name, p->ndim, p->shape, base + p->offset, ld, label, err,
                               errlen);
    }
    H5Gclose(g);
    return rc;
}

/* Opens path and checks that it is a checkpoint of m's space. */
static hid_t open_checkpoint_of(MPI_Comm comm, const char *path, const sn_model *m, char *err,
                                size_t errlen)
{
    hid_t f = sn_h5_open(comm, path, err, errlen);
    if (f < 0) return f;
    sn_file_info *info = calloc(1, sizeof *info);
    int rc = info ? read_info(f, path, info, err, errlen) : sn_errf(err, errlen, "out of memory");
    if (rc == SN_OK && info->is_model)
        rc = sn_errf(err, errlen, "%s: an exported model, not a supernet checkpoint", path);
    if (rc == SN_OK && !sn_space_equal(&info->space, &m->space)) {
        char want[512], got[512];
        sn_space_format(&m->space, want, sizeof want);
        sn_space_format(&info->space, got, sizeof got);
        rc = sn_errf(err, errlen, "%s: search space (%s) differs from the one configured (%s)",
                     path, got, want);
    }
    free(info);
    if (rc == SN_OK) return f;
    H5Fclose(f);
    return H5I_INVALID_HID;
}

int sn_ckpt_load_weights(MPI_Comm comm, const char *path, sn_model *m, int t_lo, int t_hi,
                         char *err, size_t errlen)
{
    SN_CHECK(0 <= t_lo && t_lo <= t_hi && t_hi <= m->n_tensors);
    hid_t f = open_checkpoint_of(comm, path, m, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = read_table(f, "weights", m, t_lo, t_hi, m->params, path, err, errlen);
    H5Fclose(f);
    return rc;
}

int sn_ckpt_load(MPI_Comm comm, const char *path, sn_model *m, sn_adamw *opt,
                 sn_train_state *ts, char *err, size_t errlen)
{
    hid_t f = open_checkpoint_of(comm, path, m, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = SN_OK;
    if (rc == SN_OK) rc = read_table(f, "weights", m, 0, m->n_tensors, m->params, path, err, errlen);
    if (rc == SN_OK && opt) {
        char what[PATH_LEN + 16];
        snprintf(what, sizeof what, "%s: /optimizer", path);
        hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        if (g < 0) rc = sn_errf(err, errlen, "%s: group /optimizer is missing", path);
        else {
            rc = sn_h5_get_i64(g, "step", &opt->step, what, err, errlen);
            H5Gclose(g);
        }
        if (rc == SN_OK)
            rc = read_table(f, "optimizer/m", m, 0, m->n_tensors, opt->m, path, err, errlen);
        if (rc == SN_OK)
            rc = read_table(f, "optimizer/v", m, 0, m->n_tensors, opt->v, path, err, errlen);
    }
    if (rc == SN_OK && ts) {
        char what[PATH_LEN + 16], sampler[32];
        snprintf(what, sizeof what, "%s: /train", path);
        hid_t g = H5Gopen2(f, "train", H5P_DEFAULT);
        memset(ts, 0, sizeof *ts);
        if (g < 0 || sn_h5_get_i64(g, "step", &ts->step, what, err, errlen) ||
            sn_h5_get_i64(g, "epoch", &ts->epoch, what, err, errlen) ||
            sn_h5_get_i64(g, "cursor", &ts->cursor, what, err, errlen) ||
            sn_h5_get_str(g, "sampler", sampler, sizeof sampler, what, err, errlen) ||
            sn_h5_get_str(g, "fixed_subnet", ts->fixed_subnet, sizeof ts->fixed_subnet, what, err,
                          errlen))
            rc = SN_ERR;
        if (g >= 0) H5Gclose(g);
        if (rc == SN_OK && sn_schedule_parse(sampler, &ts->schedule) != SN_OK)
            rc = sn_errf(err, errlen, "%s: sampler '%s' is not one of sandwich, sortednet, "
                                      "progressive, deps, fixed (a damaged file, or one of a "
                                      "newer supernest)", what, sampler);
        if (rc == SN_OK && (ts->step < 0 || ts->epoch < 0 || ts->cursor < 0 ||
                            (opt && opt->step < 0)))
            rc = sn_errf(err, errlen, "%s: step %lld, epoch %lld, cursor %lld, optimizer step "
                                      "%lld: not a position a run can continue from (a damaged "
                                      "file)", what, (long long)ts->step, (long long)ts->epoch,
                         (long long)ts->cursor, (long long)(opt ? opt->step : ts->step));
    }
    H5Fclose(f);
    return rc;
}

/* ---- exported models -------------------------------------------------- */

void sn_subnet_space(const sn_space *s, const sn_subnet *n, sn_space *out)
{
    *out = *s;
    out->n_embed = 1;
    out->embed[0] = n->embed;
    /* the sets of heads and MLP widths n uses, ascending */
    out->n_heads = out->n_mlp = 0;
    for (int k = 0; k < s->n_heads; k++)
        for (int i = 0; i < n->n_blocks; i++)
            if (n->heads[i] == s->heads[k]) {
                out->heads[out->n_heads++] = s->heads[k];
                break;
            }
    for (int k = 0; k < s->n_mlp; k++)
        for (int i = 0; i < n->n_blocks; i++)
            if (n->mlp[i] == s->mlp[k]) {
                out->mlp[out->n_mlp++] = s->mlp[k];
                break;
            }
    for (int st = 0; st < s->n_stages; st++) out->min_depth[st] = out->max_depth[st] = n->depth[st];
}

int sn_model_export(MPI_Comm comm, const char *path, const sn_model *m, const sn_subnet *n,
                    const sn_file_info *info, char *err, size_t errlen)
{
    sn_space own;
    sn_subnet_space(&m->space, n, &own);
    char str[SN_SUBNET_STRLEN];
    if (sn_subnet_format(n, str, sizeof str) < 0)
        return sn_errf(err, errlen, "sub-network string too long");
    out_tensor *w = calloc((size_t)m->n_tensors, sizeof *w);
    if (!w) return sn_errf(err, errlen, "out of memory");
    int nw = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *p = &m->info[i];
        int64_t shape[2];
        if (!sn_param_slice(&m->space, p, n, shape)) continue;
        out_tensor *t = &w[nw++];
        const char *base = p->name;
        if (p->block >= 0) {
            /* renumber: the kept block's position in n */
            int kept = 0;
            while (sn_subnet_block(&m->space, n, kept) != p->block) kept++;
            base = strchr(strchr(p->name, '.') + 1, '.') + 1;
            snprintf(t->name, sizeof t->name, "blocks.%d.%s", kept, base);
        } else {
            snprintf(t->name, sizeof t->name, "%s", p->name);
        }
        t->ndim = p->ndim;
        t->dims[0] = shape[0];
        t->dims[1] = shape[1];
        t->data = m->params + p->offset;
        t->ld = p->ndim == 2 ? p->shape[1] : p->shape[0];
        t->owner = 0;
    }
    char tmp[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = write_file(comm, tmp, &own, w, nw, NULL, NULL, NULL, NULL, info, str, err, errlen);
    free(w);
    rc = agree(comm, rc, err, errlen);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        if (rc == SN_OK) rc = sn_file_commit(tmp, path, err, errlen);
        if (rc != SN_OK) unlink(tmp);
    }
    return agree(comm, rc, err, errlen);
}

int sn_model_import(MPI_Comm comm, const char *path, sn_model **out, sn_subnet *n,
                    sn_file_info *info, char *err, size_t errlen)
{
    *out = NULL;
    hid_t f = sn_h5_open(comm, path, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = read_info(f, path, info, err, errlen);
    if (rc == SN_OK && !info->is_model)
        rc = sn_errf(err, errlen, "%s: a supernet checkpoint, not an exported model (use "
                                  "--checkpoint)", path);
    sn_model *m = NULL;
    char msg[512];
    if (rc == SN_OK && sn_subnet_parse(&info->space, info->subnet, n, msg, sizeof msg) != SN_OK)
        rc = sn_errf(err, errlen, "%s: /config subnet does not fit the model's own space: %s",
                     path, msg);
    /* the model is allocated at its space's largest: that space must be the
     * sub-network's own (as sn_model_export writes it), whose weights the
     * file must hold */
    sn_space own;
    if (rc == SN_OK) sn_subnet_space(&info->space, n, &own);
    if (rc == SN_OK && !sn_space_equal(&own, &info->space))
        rc = sn_errf(err, errlen, "%s: /config space is not the one of its subnet %s", path,
                     info->subnet);
    if (rc == SN_OK) rc = check_weights_fit(f, path, &info->space, n, err, errlen);
    if (rc == SN_OK) {
        m = sn_model_create(&info->space, 0);
        if (!m) rc = sn_errf(err, errlen, "out of memory loading %s", path);
    }
    if (rc == SN_OK) {
        memset(m->params, 0, m->n_params * sizeof(float));
        hid_t g = H5Lexists(f, "weights", H5P_DEFAULT) > 0 ? H5Gopen2(f, "weights", H5P_DEFAULT)
                                                           : H5I_INVALID_HID;
        if (g < 0) rc = sn_errf(err, errlen, "%s: group /weights is missing", path);
        char label[PATH_LEN + 16];
        snprintf(label, sizeof label, "%s: /weights", path);
        for (int i = 0; rc == SN_OK && i < m->n_tensors; i++) {
            const sn_param_info *p = &m->info[i];
            int64_t shape[2];
            SN_CHECK(sn_param_slice(&m->space, p, n, shape));
            int64_t ld = p->ndim == 2 ? p->shape[1] : p->shape[0];
            rc = sn_h5_read_tensor(g, p->name, p->ndim, shape, m->params + p->offset, ld, label,
                                   err, errlen);
        }
        if (g >= 0) H5Gclose(g);
    }
    H5Fclose(f);
    if (rc != SN_OK) {
        sn_model_destroy(m);
        return SN_ERR;
    }
    *out = m;
    return SN_OK;
}
