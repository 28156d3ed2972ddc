/* inspect.h: reading any supernest HDF5 file generically, for
 * `supernest inspect`: the header and configuration, the list of datasets,
 * per-dataset statistics and checksum verification, element-wise
 * differences between two files, and attributes rendered as text or JSON.
 *
 * Datasets are streamed in blocks of leading-dimension rows, so a tensor
 * need not fit in memory twice.  Statistics are computed in double.
 * Nothing here prints; `src/cmd_inspect.c` does.  Functions taking a file
 * are independent (not collective) reads, except sn_inspect_open and
 * sn_inspect_close, which are collective over the communicator given.
 */
#ifndef SN_INSPECT_H
#define SN_INSPECT_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/ckpt.h"

#define SN_INSPECT_PATH_MAX 512
#define SN_INSPECT_MAX_RANK 32   /* = H5S_MAX_RANK */

/* Opens path read-only and checks the root attributes: `format` must be
 * supernest-checkpoint or supernest-model and the major of
 * `format_version` SN_FORMAT_MAJOR.  Fills info's is_model, major, minor,
 * program_version and created.  On failure returns H5I_INVALID_HID with a
 * one-line message naming path (the file is closed). */
hid_t sn_inspect_open(MPI_Comm comm, const char *path, sn_file_info *info,
                      char *err, size_t errlen);
/* Closes a file opened read-only (accepts H5I_INVALID_HID). */
void sn_inspect_close(hid_t file);

/* Reads /config (space, task dimensions, preprocessing, options or
 * subnet) and, for checkpoints, /train step into info, and validates the
 * space: sn_file_read_config of io/ckpt.h, the one reader of it. */
int sn_inspect_config(hid_t file, const char *path, sn_file_info *info, char *err,
                      size_t errlen);

/* A growable list of strings (owned by the list). */
typedef struct sn_names {
    int64_t n, cap;
    char **v;
} sn_names;
/* Appends a copy of s; SN_ERR when out of memory. */
int sn_names_add(sn_names *l, const char *s);
void sn_names_free(sn_names *l);

/* Appends the absolute paths ("/weights/pos_embed") of every dataset
 * below group (recursively through hard links, "/" for the whole file), in
 * natural order (blocks.2 before blocks.10).  A missing group adds nothing
 * and is not an error.  Objects whose metadata cannot be read are appended
 * to broken when it is non-NULL, else they are an error. */
int sn_inspect_datasets(hid_t file, const char *group, sn_names *out, sn_names *broken,
                        char *err, size_t errlen);

/* Names of the attributes of the object at obj_path, in name order. */
int sn_inspect_attr_names(hid_t file, const char *obj_path, sn_names *out, char *err,
                          size_t errlen);

/* Attribute name of the object at obj_path rendered as JSON (json) or as
 * plain text: a number, a string, or a list of them.  Returns a string
 * from malloc (the caller frees it), or NULL with err set. */
char *sn_inspect_attr_text(hid_t file, const char *obj_path, const char *name, bool json,
                           char *err, size_t errlen);

/* What one pass over a dataset found. */
typedef struct sn_ds_scan {
    char path[SN_INSPECT_PATH_MAX];
    int ndim;
    int64_t dims[SN_INSPECT_MAX_RANK];
    char type[32];          /* "float32", "int64", "string", ... */
    bool is_f32;            /* little-endian IEEE float32: stats below are valid */
    int64_t count;          /* elements */
    int64_t nonfinite;      /* NaN or infinite elements (excluded from the stats) */
    double min, max;        /* of the finite elements; NAN when there are none */
    double mean, l2;        /* mean and Euclidean norm of the finite elements */
    bool checked;           /* the checksum was compared */
    char stored[72];        /* the `checksum` attribute, "" when missing */
    char computed[32];      /* XXH3-64 of the bytes as stored */
    char problem[256];      /* "" when healthy, else what is wrong with it */
} sn_ds_scan;

/* Shape and type of the dataset at path (no data is read); file_path
 * names the file in messages. */
int sn_inspect_shape(hid_t file, const char *file_path, const char *path, sn_ds_scan *out,
                     char *err, size_t errlen);

/* Reads the dataset at path once, computing its statistics (float32
 * only) and, with verify, its checksum compared with the `checksum`
 * attribute.  A dataset that cannot be read, or (verify) whose checksum
 * is missing or differs, gets out->problem set and SN_ERR is returned;
 * err then holds "<path>: dataset <name> is damaged: <problem>". */
int sn_inspect_scan(hid_t file, const char *file_path, const char *path, bool verify,
                    sn_ds_scan *out, char *err, size_t errlen);

/* The largest absolute element-wise difference of two float32 datasets
 * of the same shape (NaN against NaN counts as equal, NaN against a
 * number as infinitely different). */
typedef struct sn_ds_diff {
    double max_abs;         /* 0 when identical */
    int64_t at;             /* flat row-major index of the first maximum, -1 if identical */
    double a, b;            /* the two values there */
} sn_ds_diff;

/* Compares dataset path of files a and b; both must be float32 and of the
 * same shape (check with sn_inspect_shape first).  SN_ERR on read errors,
 * naming the file. */
int sn_inspect_diff(hid_t a, const char *a_path, hid_t b, const char *b_path, const char *path,
                    sn_ds_diff *out, char *err, size_t errlen);

/* "(16, 4)" into buf. */
void sn_inspect_shape_str(int ndim, const int64_t *dims, char *buf, size_t len);

/* Writes s as a JSON string literal (quoted, escaped; invalid UTF-8 bytes
 * become U+FFFD). */
void sn_json_write_str(FILE *f, const char *s);
/* Writes x as a JSON number (17 significant digits), or null when it is
 * not finite. */
void sn_json_write_num(FILE *f, double x);
/* Writes a float32 value in the fewest digits that read back as it. */
void sn_json_write_f32(FILE *f, float x);

#endif
