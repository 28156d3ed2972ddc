#include "io/latency.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "io/h5.h"
#include "src/util.h"

#define FORMAT "supernest-latency"
#define PATH_LEN 4096

void sn_cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        colon[strcspn(colon, "\r\n")] = '\0';
        if (*colon) snprintf(out, len, "%s", colon);
        break;
    }
    fclose(f);
}

/* ---- writing -------------------------------------------------------------- */

static int write_table(MPI_Comm comm, hid_t f, const sn_latency_table *t,
                       const sn_latency_info *info, char *err, size_t errlen)
{
    const sn_space *s = &t->space;
    if (sn_h5_write_root(f, FORMAT, err, errlen) != SN_OK) return SN_ERR;
    hid_t cfg = sn_h5_group(f, "config", err, errlen);
    if (cfg < 0) return SN_ERR;
    int rc = sn_h5_write_space(cfg, s, err, errlen);
    H5Gclose(cfg);
    if (rc != SN_OK) return SN_ERR;
    hid_t g = sn_h5_group(f, "latency", err, errlen);
    if (g < 0) return SN_ERR;
    const int64_t ne[1] = {s->n_embed};
    const int64_t nb[3] = {s->n_embed, s->n_heads, s->n_mlp};
    if (sn_h5_attr_i64(g, "batch", t->batch, err, errlen) ||
        sn_h5_attr_i64(g, "threads", t->threads, err, errlen) ||
        sn_h5_attr_i64(g, "reps", t->reps, err, errlen) ||
        sn_h5_attr_i64(g, "warmup", t->warmup, err, errlen) ||
        sn_h5_attr_str(g, "blis_kernels", info->blis_kernels, err, errlen) ||
        sn_h5_attr_str(g, "cpu_model", info->cpu_model, err, errlen) ||
        sn_h5_attr_f64(g, "offset_ms", t->offset_ms, err, errlen) ||
        sn_h5_attr_f64(g, "scale", t->scale, err, errlen) ||
        sn_h5_write_tensor(comm, g, "embed_ms", 1, ne, t->embed_ms, ne[0], 0, err, errlen) ||
        sn_h5_write_tensor(comm, g, "block_ms", 3, nb, t->block_ms, nb[2], 0, err, errlen) ||
        sn_h5_write_tensor(comm, g, "head_ms", 1, ne, t->head_ms, ne[0], 0, err, errlen))
        rc = SN_ERR;
    H5Gclose(g);
    return rc;
}

int sn_latency_save(MPI_Comm comm, const char *path, const sn_latency_table *t,
                    const sn_latency_info *info, char *err, size_t errlen)
{
    char tmp[PATH_LEN];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return sn_errf(err, errlen, "%s: path too long", path);
    hid_t f = sn_h5_create(comm, tmp, err, errlen);
    if (f < 0) return SN_ERR;
    char msg[1024] = "";
    int rc = write_table(comm, f, t, info, msg, sizeof msg);
    char cerr[512];
    if (sn_h5_close(f, tmp, cerr, sizeof cerr) != SN_OK && rc == SN_OK) {
        snprintf(msg, sizeof msg, "%s", cerr);
        rc = SN_ERR;
    }
    if (rc != SN_OK) {
        sn_errf(err, errlen, "%s: %s", path, msg);
    } else {
        int rank;
        MPI_Comm_rank(comm, &rank);
        if (rank == 0) rc = sn_file_commit(tmp, path, err, errlen);
        MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
        /* rank 0 has the reason */
        if (rc != SN_OK && rank != 0) sn_errf(err, errlen, "%s: could not be put in place", path);
    }
    if (rc != SN_OK) unlink(tmp);
    return rc;
}

/* ---- reading -------------------------------------------------------------- */

static int check_times(const float *v, int64_t n, const char *what, const char *name, char *err,
                       size_t errlen)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || v[i] <= 0.0f)
            return sn_errf(err, errlen, "%s: %s[%lld] = %g is not a positive time", what, name,
                           (long long)i, (double)v[i]);
    return SN_OK;
}

static int read_measurement(hid_t g, const char *what, sn_latency_table *t,
                            sn_latency_info *info, char *err, size_t errlen)
{
    const sn_space *s = &t->space;
    int64_t threads, reps, warmup;
    if (sn_h5_get_i64(g, "batch", &t->batch, what, err, errlen) ||
        sn_h5_get_i64(g, "threads", &threads, what, err, errlen) ||
        sn_h5_get_i64(g, "reps", &reps, what, err, errlen) ||
        sn_h5_get_i64(g, "warmup", &warmup, what, err, errlen) ||
        sn_h5_get_str(g, "blis_kernels", info->blis_kernels, sizeof info->blis_kernels, what, err,
                      errlen) ||
        sn_h5_get_str(g, "cpu_model", info->cpu_model, sizeof info->cpu_model, what, err, errlen))
        return SN_ERR;
    /* tables written before calibration predict the plain sum */
    t->offset_ms = 0.0;
    t->scale = 1.0;
    if ((sn_h5_has(g, "offset_ms") &&
         sn_h5_get_f64(g, "offset_ms", &t->offset_ms, what, err, errlen) != SN_OK) ||
        (sn_h5_has(g, "scale") && sn_h5_get_f64(g, "scale", &t->scale, what, err, errlen) != SN_OK))
        return SN_ERR;
    if (!isfinite(t->offset_ms) || !isfinite(t->scale) || t->scale <= 0.0)
        return sn_errf(err, errlen, "%s: calibration offset %g ms, scale %g: not finite and "
                                    "positive", what, t->offset_ms, t->scale);
    if (t->batch < 1 || threads < 1 || threads > 1 << 20 || reps < 1 ||
        reps > SN_LATENCY_MAX_REPS || warmup < 0 || warmup > 1 << 30)
        return sn_errf(err, errlen, "%s: batch %lld, threads %lld, reps %lld, warmup %lld are "
                                    "not a measurement's", what, (long long)t->batch,
                       (long long)threads, (long long)reps, (long long)warmup);
    t->threads = (int)threads;
    t->reps = (int)reps;
    t->warmup = (int)warmup;
    const int64_t ne[1] = {s->n_embed};
    const int64_t nb[3] = {s->n_embed, s->n_heads, s->n_mlp};
    if (sn_h5_read_tensor(g, "embed_ms", 1, ne, t->embed_ms, ne[0], what, err, errlen) ||
        sn_h5_read_tensor(g, "block_ms", 3, nb, t->block_ms, nb[2], what, err, errlen) ||
        sn_h5_read_tensor(g, "head_ms", 1, ne, t->head_ms, ne[0], what, err, errlen))
        return SN_ERR;
    if (check_times(t->embed_ms, ne[0], what, "embed_ms", err, errlen) ||
        check_times(t->block_ms, nb[0] * nb[1] * nb[2], what, "block_ms", err, errlen) ||
        check_times(t->head_ms, ne[0], what, "head_ms", err, errlen))
        return SN_ERR;
    return SN_OK;
}

/* Opens group name of f, or SN_ERR naming it. */
static hid_t open_group(hid_t f, const char *path, const char *name, char *err, size_t errlen)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        sn_errf(err, errlen, "%s: the /%s group is missing", path, name);
        return H5I_INVALID_HID;
    }
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0) sn_errf(err, errlen, "%s: /%s is not a readable group", path, name);
    return g;
}

static int read_file(hid_t f, const char *path, sn_latency_table **out, sn_latency_info *info,
                     char *err, size_t errlen)
{
    char fmt[128], what[PATH_LEN + 16];
    int major, minor;
    if (!sn_h5_has(f, "format"))
        return sn_errf(err, errlen, "%s: not a supernest file (no root attribute 'format')", path);
    if (sn_h5_get_str(f, "format", fmt, sizeof fmt, path, err, errlen) != SN_OK) return SN_ERR;
    if (strcmp(fmt, FORMAT) != 0)
        return sn_errf(err, errlen, "%s: format '%s' is not a latency table (expected %s)", path,
                       fmt, FORMAT);
    if (sn_h5_read_version(f, path, &major, &minor, err, errlen) ||
        sn_h5_get_str(f, "program_version", info->program_version,
                      sizeof info->program_version, path, err, errlen) ||
        sn_h5_get_str(f, "created", info->created, sizeof info->created, path, err, errlen))
        return SN_ERR;

    sn_space s;
    memset(&s, 0, sizeof s);
    hid_t g = open_group(f, path, "config", err, errlen);
    if (g < 0) return SN_ERR;
    snprintf(what, sizeof what, "%s: /config", path);
    int rc = sn_h5_read_space(g, what, &s, err, errlen);
    H5Gclose(g);
    if (rc != SN_OK) return SN_ERR;

    sn_latency_table *t = sn_latency_table_create(&s);
    if (!t) return sn_errf(err, errlen, "out of memory reading %s", path);
    g = open_group(f, path, "latency", err, errlen);
    snprintf(what, sizeof what, "%s: /latency", path);
    rc = g < 0 ? SN_ERR : read_measurement(g, what, t, info, err, errlen);
    if (g >= 0) H5Gclose(g);
    if (rc != SN_OK) {
        sn_latency_table_destroy(t);
        return SN_ERR;
    }
    *out = t;
    return SN_OK;
}

int sn_latency_load(MPI_Comm comm, const char *path, sn_latency_table **out,
                    sn_latency_info *info, char *err, size_t errlen)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    hid_t f = sn_h5_open(comm, path, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = read_file(f, path, out, info, err, errlen);
    H5Fclose(f);
    return rc;
}
