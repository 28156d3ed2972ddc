/* h5.h: the HDF5 layer every supernest file goes through: parallel
 * (MPI-IO) create/open, checksummed float32 tensor datasets, typed
 * attributes, and one-line error messages instead of HDF5's error stack.
 *
 * All functions are collective over the communicator the file was opened
 * with, unless noted.  A tensor dataset is written by one owner rank (the
 * others pass data NULL and select nothing) and carries the attribute
 * `checksum` = "xxh3-64:<16 hex digits>" of its bytes (see io/FORMAT.md).
 */
#ifndef SN_H5_H
#define SN_H5_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SN_FORMAT_MAJOR 1
#define SN_FORMAT_MINOR 2

/* Silences HDF5's automatic error printing (errors come back as our own
 * messages).  Call once before any other function here. */
void sn_h5_quiet(void);
/* The HDF5 library's version, "1.10.8" (into buf). */
void sn_h5_version(char *buf, size_t len);

/* True after a file failed to close (full disk during the final flush):
 * HDF5's state is then damaged and the process must exit without
 * MPI_Finalize (which would run HDF5's clean-up and crash). */
bool sn_h5_unusable(void);

/* Creates (truncating) path for parallel writing; H5I_INVALID_HID with a
 * message on failure. */
hid_t sn_h5_create(MPI_Comm comm, const char *path, char *err, size_t errlen);
/* Opens path read-only (parallel); checks it is an HDF5 file first so the
 * message can say "not an HDF5 file". */
hid_t sn_h5_open(MPI_Comm comm, const char *path, char *err, size_t errlen);
/* Closes the file (HDF5 flushes it; the caller fsyncs the closed file);
 * SN_ERR if HDF5 reports a failure (e.g. the disk filled up on the final
 * flush). */
int sn_h5_close(hid_t file, const char *path, char *err, size_t errlen);

/* Creates group path (parents must exist); returns it (close with H5Gclose). */
hid_t sn_h5_group(hid_t loc, const char *name, char *err, size_t errlen);

/* Attributes on loc (file, group or dataset). */
int sn_h5_attr_str(hid_t loc, const char *name, const char *value, char *err, size_t errlen);
int sn_h5_attr_i32v(hid_t loc, const char *name, const int *v, int n, char *err, size_t errlen);
int sn_h5_attr_i64(hid_t loc, const char *name, int64_t v, char *err, size_t errlen);
int sn_h5_attr_f32(hid_t loc, const char *name, float v, char *err, size_t errlen);
int sn_h5_attr_f64(hid_t loc, const char *name, double v, char *err, size_t errlen);

/* Readers: SN_ERR naming `what` (e.g. "ckpt.h5: /config") and the
 * attribute when it is missing or of the wrong type/size. */
int sn_h5_get_str(hid_t loc, const char *name, char *out, size_t len, const char *what,
                  char *err, size_t errlen);
/* Reads an int array of at most max values; its length goes to *n. */
int sn_h5_get_i32v(hid_t loc, const char *name, int *out, int max, int *n, const char *what,
                   char *err, size_t errlen);
int sn_h5_get_i64(hid_t loc, const char *name, int64_t *out, const char *what,
                  char *err, size_t errlen);
int sn_h5_get_f64(hid_t loc, const char *name, double *out, const char *what,
                  char *err, size_t errlen);
int sn_h5_get_f32(hid_t loc, const char *name, float *out, const char *what,
                  char *err, size_t errlen);
bool sn_h5_has(hid_t loc, const char *name);

/* Writes a float32 tensor dataset loc/name of shape (dims[0..ndim)) from
 * data (row-major, rows of `cols` values taken with row stride ld, so a
 * prefix slice of a larger matrix is written without a copy by the
 * caller; ld == cols for a contiguous tensor).  comm: the communicator the
 * file was created with; owner: its rank that holds the data (others pass
 * NULL).  The checksum attribute is computed by the owner and agreed by
 * all ranks. */
int sn_h5_write_tensor(MPI_Comm comm, hid_t loc, const char *name, int ndim,
                       const int64_t *dims, const float *data, int64_t ld, int owner,
                       char *err, size_t errlen);

/* Reads dataset loc/name into out (rows of dims[ndim-1] values stored
 * with row stride ld) after checking that its shape is exactly dims, and
 * verifies its checksum.  `what` names the file in messages.  All ranks
 * read (the same data). */
int sn_h5_read_tensor(hid_t loc, const char *name, int ndim, const int64_t *dims, float *out,
                      int64_t ld, const char *what, char *err, size_t errlen);

/* Shape of dataset loc/name (ndim <= 4); SN_ERR if missing. */
int sn_h5_shape(hid_t loc, const char *name, int *ndim, int64_t *dims, const char *what,
                char *err, size_t errlen);

/* XXH3-64 of n bytes as "xxh3-64:%016llx" into out (>= 25 chars). */
void sn_h5_checksum_str(const void *data, size_t n, char *out);

#endif
