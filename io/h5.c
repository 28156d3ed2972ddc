#include "io/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "src/util.h"

static bool h5_unusable;

void sn_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void sn_h5_version(char *buf, size_t len)
{
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, len, "%u.%u.%u", maj, min, rel);
}

bool sn_h5_unusable(void) { return h5_unusable; }

static hid_t mpio_fapl(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return H5I_INVALID_HID;
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "romio_cb_write", "disable");
    MPI_Info_set(info, "romio_cb_read", "disable");
    MPI_Info_set(info, "romio_ds_write", "disable");
    MPI_Info_set(info, "romio_ds_read", "disable");
    herr_t r = H5Pset_fapl_mpio(fapl, comm, info);
    MPI_Info_free(&info);
    if (r < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

/* Creates (truncating) or opens read-only the HDF5 file at path through
 * MPI-IO; collective over comm.  ROMIO (the MPI-IO mpi/runtime.c selects,
 * and MPICH's) reads "NAME:" at the start of a path as a file-system
 * prefix, so a path with a colon in it ("runs/deps:x/...") fails, or names
 * another file ("nfs:x" is x), unless it carries a prefix: with "ufs:"
 * (plain POSIX) ROMIO takes the rest as the path.  OMPIO, when a user
 * chooses it (OMPI_MCA_io=ompio or ^romio...), takes paths as they are and
 * refuses prefixes. */
static hid_t mpio_file(MPI_Comm comm, const char *path, bool create)
{
    hid_t fapl = mpio_fapl(comm);
    if (fapl < 0) return H5I_INVALID_HID;
    /* a list of components, or with ^ the ones excluded */
    const char *io = getenv("OMPI_MCA_io");
    const bool romio = io == NULL || (io[0] == '^') != (strstr(io, "romio") != NULL);
    char *prefixed = NULL;
    if (romio && strchr(path, ':')) {
        const size_t len = strlen(path) + sizeof "ufs:";
        prefixed = malloc(len);
        if (prefixed) snprintf(prefixed, len, "ufs:%s", path);
    }
    const char *name = prefixed ? prefixed : path;
    hid_t f = create ? H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                     : H5Fopen(name, H5F_ACC_RDONLY, fapl);
    free(prefixed);
    H5Pclose(fapl);
    return f;
}

/* Rank 0 tries to create the file with plain POSIX calls so that a
 * failure gets the system's reason; every rank learns the errno. */
static int probe_create(MPI_Comm comm, const char *path)
{
    int rank, e = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) e = errno;
        else close(fd);
    }
    MPI_Bcast(&e, 1, MPI_INT, 0, comm);
    return e;
}

hid_t sn_h5_create(MPI_Comm comm, const char *path, char *err, size_t errlen)
{
    int e = probe_create(comm, path);
    if (e != 0) {
        sn_errf(err, errlen, "%s: cannot create: %s", path, strerror(e));
        return H5I_INVALID_HID;
    }
    hid_t f = mpio_file(comm, path, true);
    if (f < 0) sn_errf(err, errlen, "%s: cannot create an HDF5 file there", path);
    return f;
}

hid_t sn_h5_open(MPI_Comm comm, const char *path, char *err, size_t errlen)
{
    if (access(path, R_OK) != 0) {
        sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return H5I_INVALID_HID;
    }
    /* Ask the kernel to read the whole file ahead: HDF5 reads a header,
     * then a dataset, then the next header, and on a cold cache each of
     * those small scattered reads would wait for the disk. */
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        close(fd);
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        sn_errf(err, errlen, "%s: is a directory, not an HDF5 file", path);
        return H5I_INVALID_HID;
    }
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        sn_errf(err, errlen, "%s: not an HDF5 file", path);
        return H5I_INVALID_HID;
    }
    hid_t f = mpio_file(comm, path, false);
    if (f < 0) sn_errf(err, errlen, "%s: cannot be opened as HDF5 (truncated or damaged)", path);
    return f;
}

int sn_h5_close(hid_t file, const char *path, char *err, size_t errlen)
{
    if (file < 0) return SN_OK;
    /* H5Fclose flushes everything; the caller fsyncs the closed file. */
    herr_t b = H5Fclose(file);
    /* A close that failed (a full disk during its final flush) leaves
     * HDF5's file state half torn down; HDF5 would crash finishing it at
     * MPI_Finalize, so the process must end without finalising. */
    if (b < 0) {
        h5_unusable = true;
        return sn_errf(err, errlen, "%s: writing failed (disk full or I/O error)", path);
    }
    return SN_OK;
}

hid_t sn_h5_group(hid_t loc, const char *name, char *err, size_t errlen)
{
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) sn_errf(err, errlen, "cannot create group %s", name);
    return g;
}

/* ---- attributes ----------------------------------------------------------- */

static int write_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                      const void *buf, char *err, size_t errlen)
{
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = a < 0 ? -1 : H5Awrite(a, mtype, buf);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    if (w < 0) return sn_errf(err, errlen, "cannot write attribute %s", name);
    return SN_OK;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int sn_h5_attr_str(hid_t loc, const char *name, const char *value, char *err, size_t errlen)
{
    hid_t t = vlen_str_type();
    int rc = write_attr(loc, name, t, t, H5Screate(H5S_SCALAR), &value, err, errlen);
    H5Tclose(t);
    return rc;
}

int sn_h5_attr_i32v(hid_t loc, const char *name, const int *v, int n, char *err, size_t errlen)
{
    hsize_t d = (hsize_t)n;
    return write_attr(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, H5Screate_simple(1, &d, NULL), v,
                      err, errlen);
}

int sn_h5_attr_i64(hid_t loc, const char *name, int64_t v, char *err, size_t errlen)
{
    return write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, H5Screate(H5S_SCALAR), &v, err,
                      errlen);
}

int sn_h5_attr_f32(hid_t loc, const char *name, float v, char *err, size_t errlen)
{
    return write_attr(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, H5Screate(H5S_SCALAR), &v, err,
                      errlen);
}

int sn_h5_attr_f64(hid_t loc, const char *name, double v, char *err, size_t errlen)
{
    return write_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &v,
                      err, errlen);
}

bool sn_h5_has(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

/* Opens attribute name of loc and checks its type class and element count
 * (count < 0: any). */
static hid_t open_attr(hid_t loc, const char *name, H5T_class_t cls, hssize_t count,
                       hssize_t *got, const char *what, char *err, size_t errlen)
{
    if (H5Aexists(loc, name) <= 0) {
        sn_errf(err, errlen, "%s: attribute '%s' is missing", what, name);
        return H5I_INVALID_HID;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t s = a < 0 ? -1 : H5Aget_space(a);
    hssize_t n = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
    bool ok = a >= 0 && t >= 0 && H5Tget_class(t) == cls && n >= 0 && (count < 0 || n == count);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok) {
        if (a >= 0) H5Aclose(a);
        sn_errf(err, errlen, "%s: attribute '%s' has the wrong type or size", what, name);
        return H5I_INVALID_HID;
    }
    if (got) *got = n;
    return a;
}

int sn_h5_get_str(hid_t loc, const char *name, char *out, size_t len, const char *what,
                  char *err, size_t errlen)
{
    hid_t a = open_attr(loc, name, H5T_STRING, 1, NULL, what, err, errlen);
    if (a < 0) return SN_ERR;
    hid_t ft = H5Aget_type(a);
    int rc = SN_OK;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = vlen_str_type();
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || s == NULL) {
            rc = sn_errf(err, errlen, "%s: attribute '%s' cannot be read", what, name);
        } else {
            snprintf(out, len, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ft);
        char *buf = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        if (!buf || H5Aread(a, mt, buf) < 0)
            rc = sn_errf(err, errlen, "%s: attribute '%s' cannot be read", what, name);
        else
            snprintf(out, len, "%s", buf);
        H5Tclose(mt);
        free(buf);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int sn_h5_get_i32v(hid_t loc, const char *name, int *out, int max, int *n, const char *what,
                   char *err, size_t errlen)
{
    hssize_t got;
    hid_t a = open_attr(loc, name, H5T_INTEGER, -1, &got, what, err, errlen);
    if (a < 0) return SN_ERR;
    if (got < 1 || got > max) {
        H5Aclose(a);
        return sn_errf(err, errlen, "%s: attribute '%s' has %lld values (1..%d allowed)", what,
                       name, (long long)got, max);
    }
    herr_t r = H5Aread(a, H5T_NATIVE_INT, out);
    H5Aclose(a);
    if (r < 0) return sn_errf(err, errlen, "%s: attribute '%s' cannot be read", what, name);
    *n = (int)got;
    return SN_OK;
}

/* One scalar attribute of type class cls read as memory type mtype. */
static int get_scalar(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, void *out,
                      const char *what, char *err, size_t errlen)
{
    hid_t a = open_attr(loc, name, cls, 1, NULL, what, err, errlen);
    if (a < 0) return SN_ERR;
    herr_t r = H5Aread(a, mtype, out);
    H5Aclose(a);
    if (r < 0) return sn_errf(err, errlen, "%s: attribute '%s' cannot be read", what, name);
    return SN_OK;
}

int sn_h5_get_i64(hid_t loc, const char *name, int64_t *out, const char *what,
                  char *err, size_t errlen)
{
    return get_scalar(loc, name, H5T_INTEGER, H5T_NATIVE_INT64, out, what, err, errlen);
}

int sn_h5_get_f32(hid_t loc, const char *name, float *out, const char *what,
                  char *err, size_t errlen)
{
    return get_scalar(loc, name, H5T_FLOAT, H5T_NATIVE_FLOAT, out, what, err, errlen);
}

int sn_h5_get_f64(hid_t loc, const char *name, double *out, const char *what,
                  char *err, size_t errlen)
{
    return get_scalar(loc, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, out, what, err, errlen);
}

/* ---- tensors -------------------------------------------------------------- */

void sn_h5_checksum_str(const void *data, size_t n, char *out)
{
    snprintf(out, 25, "xxh3-64:%016llx", (unsigned long long)XXH3_64bits(data, n));
}

/* XXH3-64 of a (rows, cols) matrix stored with row stride ld. */
static void checksum_rows(const float *data, int64_t rows, int64_t cols, int64_t ld, char *out)
{
    if (ld == cols) {
        sn_h5_checksum_str(data, (size_t)(rows * cols) * sizeof(float), out);
        return;
    }
    XXH3_state_t *st = XXH3_createState();
    SN_CHECK(st != NULL);
    XXH3_64bits_reset(st);
    for (int64_t r = 0; r < rows; r++)
        XXH3_64bits_update(st, data + r * ld, (size_t)cols * sizeof(float));
    snprintf(out, 25, "xxh3-64:%016llx", (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
}

/* The tensor as (rows, cols): all leading dimensions folded into rows. */
static void as_matrix(int ndim, const int64_t *dims, int64_t *rows, int64_t *cols)
{
    *cols = dims[ndim - 1];
    *rows = 1;
    for (int i = 0; i < ndim - 1; i++) *rows *= dims[i];
}

/* Memory space of (rows, ld) floats with the (rows, cols) prefix selected. */
static hid_t memory_space(int64_t rows, int64_t cols, int64_t ld)
{
    hsize_t md[2] = {(hsize_t)rows, (hsize_t)ld};
    hid_t ms = H5Screate_simple(2, md, NULL);
    hsize_t start[2] = {0, 0}, count[2] = {(hsize_t)rows, (hsize_t)cols};
    H5Sselect_hyperslab(ms, H5S_SELECT_SET, start, NULL, count, NULL);
    return ms;
}

int sn_h5_write_tensor(MPI_Comm comm, hid_t loc, const char *name, int ndim,
                       const int64_t *dims, const float *data, int64_t ld, int owner,
                       char *err, size_t errlen)
{
    SN_CHECK(ndim >= 1 && ndim <= 4);
    int rank;
    MPI_Comm_rank(comm, &rank);
    bool mine = rank == owner;
    int64_t rows, cols;
    as_matrix(ndim, dims, &rows, &cols);

    hsize_t hd[4];
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    hid_t fs = H5Screate_simple(ndim, hd, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    int rc = SN_OK;
    if (ds < 0) {
        rc = sn_errf(err, errlen, "cannot create dataset %s", name);
        goto out;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    hid_t ms;
    float dummy = 0.0f;
    if (mine) {
        ms = memory_space(rows, cols, ld);
    } else {
        hsize_t one = 1;
        ms = H5Screate_simple(1, &one, NULL);
        H5Sselect_none(ms);
        H5Sselect_none(fs);
    }
    herr_t w = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, dxpl, mine ? (const void *)data : &dummy);
    H5Sclose(ms);
    H5Pclose(dxpl);
    char sum[32] = "";
    if (mine) checksum_rows(data, rows, cols, ld, sum);
    MPI_Bcast(sum, sizeof sum, MPI_CHAR, owner, comm);
    if (w < 0)
        rc = sn_errf(err, errlen, "writing dataset %s failed (disk full or I/O error)", name);
    else
        rc = sn_h5_attr_str(ds, "checksum", sum, err, errlen);
    H5Dclose(ds);
out:
    H5Sclose(fs);
    return rc;
}

int sn_h5_shape(hid_t loc, const char *name, int *ndim, int64_t *dims, const char *what,
                char *err, size_t errlen)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return sn_errf(err, errlen, "%s: dataset %s is missing", what, name);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return sn_errf(err, errlen, "%s: %s is not a readable dataset", what, name);
    hid_t s = H5Dget_space(ds);
    int n = H5Sget_simple_extent_ndims(s);
    hsize_t hd[H5S_MAX_RANK];
    int rc = SN_OK;
    if (n < 1 || n > 4) {
        rc = sn_errf(err, errlen, "%s: dataset %s has %d dimensions", what, name, n);
    } else {
        H5Sget_simple_extent_dims(s, hd, NULL);
        *ndim = n;
        for (int i = 0; i < n; i++) dims[i] = (int64_t)hd[i];
    }
    H5Sclose(s);
    H5Dclose(ds);
    return rc;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *dims)
{
    size_t at = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, ")");
}

int sn_h5_read_tensor(hid_t loc, const char *name, int ndim, const int64_t *dims, float *out,
                      int64_t ld, const char *what, char *err, size_t errlen)
{
    int fnd;
    int64_t fdims[4];
    if (sn_h5_shape(loc, name, &fnd, fdims, what, err, errlen) != SN_OK) return SN_ERR;
    bool same = fnd == ndim;
    for (int i = 0; same && i < ndim; i++) same = fdims[i] == dims[i];
    if (!same) {
        char want[96], got[96];
        shape_str(want, sizeof want, ndim, dims);
        shape_str(got, sizeof got, fnd, fdims);
        return sn_errf(err, errlen, "%s: dataset %s has shape %s, the configuration needs %s",
                       what, name, got, want);
    }
    int64_t rows, cols;
    as_matrix(ndim, dims, &rows, &cols);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    /* the checksum is of float32 bytes: another type would only show as a
     * checksum mismatch */
    hid_t type = H5Dget_type(ds);
    const bool f32 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
    const size_t tsize = H5Tget_size(type);
    H5Tclose(type);
    if (!f32) {
        H5Dclose(ds);
        return sn_errf(err, errlen, "%s: dataset %s is not float32 (%zu-byte elements of another "
                                    "type); supernest files hold float32 tensors", what, name,
                       tsize);
    }
    char stored[64];
    if (sn_h5_get_str(ds, "checksum", stored, sizeof stored, what, err, errlen) != SN_OK) {
        H5Dclose(ds);
        return sn_errf(err, errlen, "%s: dataset %s has no checksum attribute", what, name);
    }
    hid_t ms = memory_space(rows, cols, ld);
    herr_t r = H5Dread(ds, H5T_NATIVE_FLOAT, ms, H5S_ALL, H5P_DEFAULT, out);
    H5Sclose(ms);
    H5Dclose(ds);
    if (r < 0)
        return sn_errf(err, errlen, "%s: dataset %s cannot be read (file truncated or damaged)",
                       what, name);
    char sum[32];
    checksum_rows(out, rows, cols, ld, sum);
    if (strcmp(sum, stored) != 0)
        return sn_errf(err, errlen, "%s: dataset %s is damaged: checksum mismatch (stored %s, "
                                    "computed %s)", what, name, stored, sum);
    /* no writer of supernest stores NaN or infinity: a file that holds one
     * (checksum and all) would only give NaN losses later */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            if (!isfinite(out[r * ld + c]))
                return sn_errf(err, errlen, "%s: dataset %s holds a non-finite value (%g at "
                                            "element %lld)", what, name, (double)out[r * ld + c],
                               (long long)(r * cols + c));
    return SN_OK;
}
