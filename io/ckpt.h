/* ckpt.h: supernet checkpoints and exported models (schema: io/FORMAT.md).
 *
 * Collective over the communicator given.  A checkpoint never replaces a
 * good one half-written: it is written to a temporary name, closed,
 * fsynced, renamed into place, the directory fsynced, and only then is the
 * `latest` pointer replaced the same way.
 */
#ifndef SN_CKPT_H
#define SN_CKPT_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/arch.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/train.h"

#define SN_OPTIONS_MAX 8192

/* What a file says about itself and the data it expects. */
typedef struct sn_file_info {
    bool is_model;                  /* exported model, not a checkpoint */
    int major, minor;               /* format_version */
    char program_version[32];
    char created[40];
    sn_space space;                 /* of the file (a model's own space) */
    int patch, image_rows, image_cols;
    float norm_mean, norm_std;
    char subnet[SN_SUBNET_STRLEN];  /* models: canonical string in the supernet space */
    int64_t step;                   /* checkpoints: optimizer steps done */
    uint64_t seed;                  /* the run seed (validation split, init, sampling) */
    int64_t val_size;               /* images held out of the training file */
    char options[SN_OPTIONS_MAX];   /* checkpoints: resolved train options */
} sn_file_info;

/* Where training stands, besides weights and optimizer. */
typedef struct sn_train_state {
    int64_t step;                   /* optimizer steps done */
    int64_t epoch, cursor;          /* data loader position */
    sn_schedule schedule;           /* /train sampler: the schedule's name */
    char fixed_subnet[SN_SUBNET_STRLEN];    /* SN_SCHEDULE_FIXED's sub-network */
} sn_train_state;

/* Writes dir/ckpt-<step>.h5 atomically and points dir/latest at it, then
 * removes all but the newest `keep` checkpoints (keep >= 1).  info gives
 * the preprocessing, seed, val_size and options (its space and step are
 * ignored: m's space and ts's step are written).
 * owner: rank of comm that holds each tensor of m's table (NULL: rank 0).
 * The written path goes to path (may be NULL).  On failure nothing that
 * existed before is touched and the temporary file is removed. */
int sn_ckpt_save(MPI_Comm comm, const char *dir, const sn_model *m, const sn_adamw *opt,
                 const sn_train_state *ts, const sn_file_info *info, int keep,
                 const int *owner, char *path, size_t pathlen, char *err, size_t errlen);

/* Tests: sn_ckpt_save waits this long between writing the temporary file
 * and renaming it (the window a crash must not harm); 0: off. */
void sn_ckpt_debug_pause(double seconds);

/* Resolves what a user passed as a checkpoint: a file; a directory with a
 * `latest` pointer; or a run directory whose checkpoints/ has one. */
int sn_ckpt_resolve(const char *arg, char *path, size_t len, char *err, size_t errlen);

/* Of an open file: the root attributes (format, version, program,
 * created; refuses other formats and other major versions), and the /config
 * (and, for checkpoints, /train step) attributes.  seed, val_size and
 * options are optional (0 / empty when absent). */
int sn_file_read_header(hid_t f, const char *path, sn_file_info *info, char *err,
                        size_t errlen);
int sn_file_read_config(hid_t f, const char *path, sn_file_info *info, char *err,
                        size_t errlen);

/* Makes the closed file tmp durable under the name final (rank 0 only):
 * fsyncs tmp, renames it to final, fsyncs final's directory. */
int sn_file_commit(const char *tmp, const char *final, char *err, size_t errlen);

/* The root attributes of a new file (io/FORMAT.md, Versioning): format,
 * format_version (this build's), program_version, created (now, UTC). */
int sn_h5_write_root(hid_t file, const char *format, char *err, size_t errlen);
/* Reads format_version from the root of f: SN_ERR if it is missing, not
 * MAJOR.MINOR, or of another major version than this build reads. */
int sn_h5_read_version(hid_t f, const char *path, int *major, int *minor, char *err,
                       size_t errlen);

/* The search space as attributes of group cfg (the space attributes of
 * /config in io/FORMAT.md: task, the choices, depths, head_dim, n_tokens,
 * token_dim, n_classes), for every file that records a space. */
int sn_h5_write_space(hid_t cfg, const sn_space *s, char *err, size_t errlen);
/* Reads them back into s and validates the space; SN_ERR naming `what`
 * (e.g. "table.h5: /config") and the attribute. */
int sn_h5_read_space(hid_t cfg, const char *what, sn_space *s, char *err, size_t errlen);

/* Opens path and reads both of the above; refuses other formats and other
 * major versions. */
int sn_file_read_info(MPI_Comm comm, const char *path, sn_file_info *info,
                      char *err, size_t errlen);

/* Loads a checkpoint's weights into m (created from the file's space),
 * and, when non-NULL, the optimizer state into opt (initialised for m) and
 * the training state into ts.  Every shape and checksum is verified. */
/* Reads only the weights of tensors [t_lo, t_hi) of m's table from the
 * checkpoint path (a pipeline stage's part), with the same checks as
 * sn_ckpt_load.  Collective over comm (each rank may give its own range). */
int sn_ckpt_load_weights(MPI_Comm comm, const char *path, sn_model *m, int t_lo, int t_hi,
                         char *err, size_t errlen);
int sn_ckpt_load(MPI_Comm comm, const char *path, sn_model *m, sn_adamw *opt,
                 sn_train_state *ts, char *err, size_t errlen);

/* Writes sub-network n of m as a standalone model file (atomically, like a
 * checkpoint, but no pointer).  info gives the preprocessing. */
int sn_model_export(MPI_Comm comm, const char *path, const sn_model *m, const sn_subnet *n,
                    const sn_file_info *info, char *err, size_t errlen);

/* Loads an exported model: *out is a new model of the file's own space
 * holding its weights, *n the sub-network to run it as (its largest). */
int sn_model_import(MPI_Comm comm, const char *path, sn_model **out, sn_subnet *n,
                    sn_file_info *info, char *err, size_t errlen);

/* The space of sub-network n of s as a model of its own: embed {e}, heads
 * and MLP choices the sets n uses, depths fixed at n's.  Also rewrites n
 * (same string) for that space. */
void sn_subnet_space(const sn_space *s, const sn_subnet *n, sn_space *out);

#endif
