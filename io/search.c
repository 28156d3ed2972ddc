#include "io/search.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "io/h5.h"
#include "src/util.h"

int sn_search_add(sn_search_state *st, const char *net, const double *values, int iteration,
                  char *err, size_t errlen)
{
    const size_t n = (size_t)st->n + 1;
    char *nets = realloc(st->nets, n * SN_SUBNET_STRLEN);
    if (nets) st->nets = nets;
    double *v = realloc(st->values, n * (size_t)st->n_values * sizeof(double));
    if (v) st->values = v;
    int32_t *it = realloc(st->iter, n * sizeof(int32_t));
    if (it) st->iter = it;
    if (!nets || !v || !it) return sn_errf(err, errlen, "out of memory growing the search archive");
    snprintf(st->nets + (n - 1) * SN_SUBNET_STRLEN, SN_SUBNET_STRLEN, "%s", net);
    memcpy(st->values + (n - 1) * (size_t)st->n_values, values,
           (size_t)st->n_values * sizeof(double));
    st->iter[n - 1] = iteration;
    st->n = (int)n;
    return SN_OK;
}

void sn_search_free(sn_search_state *st)
{
    free(st->nets);
    free(st->values);
    free(st->iter);
    st->nets = NULL;
    st->values = NULL;
    st->iter = NULL;
    st->n = 0;
}

/* One 1-D or 2-D dataset of a native type, written whole. */
static int write_array(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims,
                       const void *data, char *err, size_t errlen)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT,
                                        H5P_DEFAULT);
    herr_t w = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return w < 0 ? sn_errf(err, errlen, "cannot write dataset %s", name) : SN_OK;
}

static int write_state(hid_t f, const sn_search_state *st, char *err, size_t errlen)
{
    hid_t g = sn_h5_group(f, "search", err, errlen);
    if (g < 0) return SN_ERR;
    int rc = sn_h5_attr_str(f, "format", "supernest-search", err, errlen);
    char ver[16];
    snprintf(ver, sizeof ver, "%d.%d", SN_FORMAT_MAJOR, SN_FORMAT_MINOR);
    if (rc == SN_OK) rc = sn_h5_attr_str(f, "format_version", ver, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_str(f, "program_version", SN_VERSION, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_i64(g, "iteration", st->iteration, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_i64(g, "seed", (int64_t)st->seed, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_str(g, "objectives", st->objectives, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_str(g, "checkpoint", st->checkpoint, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_str(g, "value_names", st->value_names, err, errlen);
    if (rc == SN_OK) rc = sn_h5_attr_str(g, "options", st->options, err, errlen);
    hsize_t n = (hsize_t)st->n, nv[2] = {(hsize_t)st->n, (hsize_t)st->n_values};
    hid_t str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, SN_SUBNET_STRLEN) < 0) rc = sn_errf(err, errlen, "HDF5 string type");
    if (rc == SN_OK && st->n > 0) {
        rc = write_array(g, "subnets", str, 1, &n, st->nets, err, errlen);
        if (rc == SN_OK) rc = write_array(g, "values", H5T_NATIVE_DOUBLE, 2, nv, st->values, err, errlen);
        if (rc == SN_OK) rc = write_array(g, "iteration_of", H5T_NATIVE_INT32, 1, &n, st->iter, err, errlen);
    }
    if (str >= 0) H5Tclose(str);
    H5Gclose(g);
    return rc;
}

int sn_search_save(const char *path, const sn_search_state *st, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = sn_h5_create(MPI_COMM_SELF, tmp, err, errlen);
    if (f < 0) return SN_ERR;
    int rc = write_state(f, st, err, errlen);
    char cerr[512];
    if (sn_h5_close(f, tmp, cerr, sizeof cerr) != SN_OK && rc == SN_OK) {
        snprintf(err, errlen, "%s", cerr);
        rc = SN_ERR;
    }
    if (rc == SN_OK) rc = sn_file_commit(tmp, path, err, errlen);
    if (rc != SN_OK) unlink(tmp);
    return rc;
}

static int read_array(hid_t g, const char *name, hid_t type, int ndim, const hsize_t *want,
                      void *out, const char *what, char *err, size_t errlen)
{
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0) return sn_errf(err, errlen, "%s: dataset %s is missing", what, name);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
    int rc = SN_OK;
    if (nd != ndim || dims[0] != want[0] || (ndim == 2 && dims[1] != want[1]))
        rc = sn_errf(err, errlen, "%s: dataset %s has the wrong shape", what, name);
    else if (H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = sn_errf(err, errlen, "%s: dataset %s cannot be read", what, name);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

int sn_search_load(const char *path, sn_search_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    hid_t f = sn_h5_open(MPI_COMM_SELF, path, err, errlen);
    if (f < 0) return SN_ERR;
    char what[4200], fmt[64] = "";
    snprintf(what, sizeof what, "%s: /search", path);
    int rc = SN_OK;
    if (sn_h5_get_str(f, "format", fmt, sizeof fmt, path, err, errlen) != SN_OK) rc = SN_ERR;
    else if (strcmp(fmt, "supernest-search") != 0)
        rc = sn_errf(err, errlen, "%s: a %s file, not a supernest search file", path, fmt);
    int major, minor;
    if (rc == SN_OK && sn_h5_read_version(f, path, &major, &minor, err, errlen) != SN_OK)
        rc = SN_ERR;
    hid_t g = rc == SN_OK ? H5Gopen2(f, "search", H5P_DEFAULT) : -1;
    if (rc == SN_OK && g < 0) rc = sn_errf(err, errlen, "%s: group /search is missing", path);
    int64_t it = 0, seed = 0;
    if (rc == SN_OK &&
        (sn_h5_get_i64(g, "iteration", &it, what, err, errlen) ||
         sn_h5_get_i64(g, "seed", &seed, what, err, errlen) ||
         sn_h5_get_str(g, "objectives", st->objectives, sizeof st->objectives, what, err, errlen) ||
         sn_h5_get_str(g, "checkpoint", st->checkpoint, sizeof st->checkpoint, what, err, errlen) ||
         sn_h5_get_str(g, "value_names", st->value_names, sizeof st->value_names, what, err,
                       errlen) ||
         (sn_h5_has(g, "options") &&
          sn_h5_get_str(g, "options", st->options, sizeof st->options, what, err, errlen))))
        rc = SN_ERR;
    st->iteration = (int)it;
    st->seed = (uint64_t)seed;
    st->n_values = 1;
    for (const char *c = st->value_names; *c; c++) st->n_values += *c == ',';
    if (rc == SN_OK && st->n_values > SN_SEARCH_MAX_VALUES)
        rc = sn_errf(err, errlen, "%s: %d values per sub-network, at most %d", what, st->n_values,
                     SN_SEARCH_MAX_VALUES);
    hsize_t n = 0;
    if (rc == SN_OK && H5Lexists(g, "subnets", H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(g, "subnets", H5P_DEFAULT);
        hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
        if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 ||
            H5Sget_simple_extent_dims(sp, &n, NULL) < 0 || n > (hsize_t)INT32_MAX)
            rc = sn_errf(err, errlen, "%s: dataset subnets is not a list of strings", what);
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
    }
    if (rc == SN_OK && n > 0) {
        st->nets = calloc(n, SN_SUBNET_STRLEN);
        st->values = calloc(n * (hsize_t)st->n_values, sizeof(double));
        st->iter = calloc(n, sizeof(int32_t));
        if (!st->nets || !st->values || !st->iter) rc = sn_errf(err, errlen, "out of memory");
    }
    if (rc == SN_OK && n > 0) {
        hid_t str = H5Tcopy(H5T_C_S1);
        H5Tset_size(str, SN_SUBNET_STRLEN);
        hsize_t nv[2] = {n, (hsize_t)st->n_values};
        rc = read_array(g, "subnets", str, 1, &n, st->nets, what, err, errlen);
        if (rc == SN_OK)
            rc = read_array(g, "values", H5T_NATIVE_DOUBLE, 2, nv, st->values, what, err, errlen);
        if (rc == SN_OK)
            rc = read_array(g, "iteration_of", H5T_NATIVE_INT32, 1, &n, st->iter, what, err,
                            errlen);
        H5Tclose(str);
        st->n = (int)n;
        for (hsize_t i = 0; i < n; i++) st->nets[(i + 1) * SN_SUBNET_STRLEN - 1] = '\0';
    }
    if (g >= 0) H5Gclose(g);
    char cerr[512];
    sn_h5_close(f, path, cerr, sizeof cerr);
    if (rc != SN_OK) sn_search_free(st);
    return rc;
}
