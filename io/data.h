/* data.h: image data sets as sequences of patch tokens.
 *
 * An sn_images holds n grayscale images (uint8) with labels.  Training
 * draws from the training file minus a held-out validation split chosen by
 * a seeded permutation; search and `eval --split val` use that split; the
 * test file is only for reporting.  Batches are produced as normalised
 * patch tokens: an image of rows x cols with patch p becomes
 * (rows/p)*(cols/p) tokens of p*p values, row-major over patches, each
 * patch's pixels row-major, pixel value (v/255 - mean) / std.
 */
#ifndef SN_DATA_H
#define SN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/rng.h"

typedef struct sn_images {
    int64_t n;
    int rows, cols;
    uint8_t *pixels;    /* (n, rows, cols); owned */
    int32_t *labels;    /* (n); owned */
    int n_classes;      /* 1 + largest label */
} sn_images;

/* Loads an images file and a labels file (IDX, gzip'd or raw); checks
 * that the image file is 3-D, the label file 1-D and the counts agree.
 * SN_ERR with the file named; *out is zeroed on error. */
int sn_images_load(const char *images_path, const char *labels_path,
                   sn_images *out, char *err, size_t errlen);
/* The Fashion-MNIST files from Debian's dataset-fashion-mnist inside dir
 * (default /usr/share/datasets/fashion-mnist): split "train" or "test".
 * Each file is looked for as NAME.gz, then NAME. */
int sn_images_load_dir(const char *dir, const char *split, sn_images *out,
                       char *err, size_t errlen);
void sn_images_free(sn_images *x);
/* SN_ERR naming the first label of x (the `split` images of directory dir)
 * that is not one of the n_classes classes of the model in file. */
int sn_images_check_labels(const sn_images *x, int n_classes, const char *dir,
                           const char *split, const char *file, char *err, size_t errlen);

/* Per-pixel normalisation constants computed over a set of images. */
typedef struct sn_norm {
    float mean, std;
} sn_norm;
/* Mean and standard deviation of all pixels (scaled to [0,1]) of the
 * images idx[0..n) (idx NULL: all images, n ignored); the set must not be
 * empty.  A set of constant images gets std 1, so scaling stays finite. */
sn_norm sn_images_norm(const sn_images *x, const int64_t *idx, int64_t n);

/* Splits [0, total) into a training part and a held-out validation part of
 * n_val indices, by a permutation seeded with seed; both outputs are
 * sorted ascending and owned by the caller (free with sn_free).
 * SN_ERR if n_val < 0 or n_val >= total. */
int sn_split_indices(int64_t total, int64_t n_val, uint64_t seed,
                     int64_t **train_idx, int64_t *n_train,
                     int64_t **val_idx, int64_t *n_val_out,
                     char *err, size_t errlen);

/* Tokens per image and values per token for patch size p: p*p, or with a
 * convolutional stem of stem_convs (2 or 3; 0: none) convolutions
 * (src/arch.h) the pixels of its window; SN_ERR unless p divides both rows
 * and cols (and, with the stem, is a multiple of 2^(stem_convs-1)). */
int sn_patch_dims(const sn_images *x, int p, int stem_convs, int *n_tokens, int *token_dim,
                  char *err, size_t errlen);
/* Writes the tokens of images idx[0..b) into out (b, n_tokens, token_dim)
 * contiguous and their labels into labels (b): each token the p x p pixels
 * of its patch, or with a stem its window (sn_stem_window(p, stem_convs)
 * pixels a side from sn_stem_before(stem_convs) before the patch; 0
 * outside the image), rows in order. */
void sn_images_batch(const sn_images *x, const int64_t *idx, int64_t b, int p, int stem_convs,
                     sn_norm norm, float *out, int32_t *labels);
/* How one training image is altered before it is cut into tokens
 * (augmentation): mirrored left-right if flip, then moved dy rows down
 * and dx columns right; the pixels moved in are black (byte 0), and what
 * moves out of the frame is lost.  {0, 0, false} leaves the image as is. */
typedef struct sn_augment {
    int dy, dx;
    bool flip;
} sn_augment;
/* The alterations of the images at positions 0..b of the batch of
 * optimizer step `step` (0-based): dy and dx uniform in [-max_shift,
 * max_shift], flip with probability 1/2 if flip.  A function of (seed,
 * step, position) alone, so every rank of a run draws the same for the
 * same image and a resumed run draws what the uninterrupted one would;
 * max_shift 0 without flip draws nothing and leaves out all zero. */
void sn_augment_draw(uint64_t seed, int64_t step, int64_t b, int max_shift, bool flip,
                     sn_augment *out);
/* As sn_images_batch, but only the tl tokens at positions pos[0..tl) of
 * each image (a rank of a sequence group; see src/seq.h): out (b, tl,
 * token_dim); with aug (not NULL) image i is first altered by aug[i]. */
void sn_images_batch_at(const sn_images *x, const int64_t *idx, int64_t b, int p,
                        int stem_convs, sn_norm norm, const int32_t *pos, int64_t tl,
                        const sn_augment *aug, float *out, int32_t *labels);

/* Deterministic epoch-wise shuffling of an index set.  Epoch k visits the
 * indices in a permutation derived from (seed, k) alone, so that a
 * position (epoch, cursor) identifies the loader's state exactly. */
typedef struct sn_loader {
    const int64_t *idx;  /* borrowed: the index set (e.g. train split) */
    int64_t n;
    uint64_t seed;
    int64_t epoch;
    int64_t cursor;      /* next position in this epoch's permutation */
    int64_t *perm;       /* (n) owned: this epoch's order */
} sn_loader;
int sn_loader_init(sn_loader *l, const int64_t *idx, int64_t n, uint64_t seed,
                   char *err, size_t errlen);
/* Positions the loader at (epoch, cursor), 0 <= cursor <= n, e.g. when
 * resuming; (k, n) and (k + 1, 0) are the same position. */
void sn_loader_seek(sn_loader *l, int64_t epoch, int64_t cursor);
/* Fills out[0..b) with the next b image indices; an epoch ending mid-batch
 * continues into the next epoch's permutation. */
void sn_loader_next(sn_loader *l, int64_t *out, int64_t b);
void sn_loader_free(sn_loader *l);

#endif
