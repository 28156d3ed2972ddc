#include "io/data.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/idx.h"
#include "src/arch.h"
#include "src/util.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* sn_rng stream ids of the data pipeline ("SPLIT", "LOAD" << 32): the
 * validation split draws from stream SPLIT_STREAM of the run seed, epoch k
 * of a loader from stream LOADER_STREAM + k of the loader's seed. */
#define SPLIT_STREAM 0x53504c4954ULL
#define LOADER_STREAM 0x4c4f414400000000ULL
/* ("AUG" << 40): step s's augmentation draws from stream AUGMENT_STREAM + s */
#define AUGMENT_STREAM 0x4155470000000000ULL

/* On SN_ERR *out is left empty (safe to pass to sn_images_free). */
int sn_images_load(const char *images_path, const char *labels_path, sn_images *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    sn_idx img, lab;
    if (sn_idx_read(images_path, &img, err, errlen) != SN_OK) return SN_ERR;
    if (sn_idx_read(labels_path, &lab, err, errlen) != SN_OK) {
        sn_idx_free(&img);
        return SN_ERR;
    }
    int rc = SN_ERR;
    if (img.ndims != 3) {
        sn_errf(err, errlen, "%s: images file has %d dimensions, expected 3 (images, rows, cols)",
                images_path, img.ndims);
        goto done;
    }
    if (img.dims[1] > INT_MAX || img.dims[2] > INT_MAX) {
        sn_errf(err, errlen, "%s: images of %lldx%lld pixels are too large", images_path,
                (long long)img.dims[1], (long long)img.dims[2]);
        goto done;
    }
    if (lab.ndims != 1) {
        sn_errf(err, errlen, "%s: labels file has %d dimensions, expected 1 (labels)", labels_path,
                lab.ndims);
        goto done;
    }
    if (lab.dims[0] != img.dims[0]) {
        sn_errf(err, errlen, "%s: %lld labels, but %s has %lld images (count mismatch)", labels_path,
                (long long)lab.dims[0], images_path, (long long)img.dims[0]);
        goto done;
    }
    int64_t n = img.dims[0];
    out->labels = sn_alloc((size_t)n * sizeof *out->labels);
    if (!out->labels) {
        sn_errf(err, errlen, "%s: out of memory for %lld labels", labels_path, (long long)n);
        goto done;
    }
    /* Labels are uint8, hence below 256 by construction. */
    int max_label = 0;
    for (int64_t i = 0; i < n; i++) {
        out->labels[i] = lab.data[i];
        if (lab.data[i] > max_label) max_label = lab.data[i];
    }
    out->n = n;
    out->rows = (int)img.dims[1];
    out->cols = (int)img.dims[2];
    out->n_classes = max_label + 1;
    out->pixels = img.data;   /* ownership moves to out */
    img.data = NULL;
    rc = SN_OK;
done:
    sn_idx_free(&img);
    sn_idx_free(&lab);
    return rc;
}

/* Writes dir/base.gz into path if it exists, else dir/base if that exists;
 * otherwise SN_ERR naming the missing file. */
static int find_file(const char *dir, const char *base, char *path, size_t pathlen, char *err,
                     size_t errlen)
{
    struct stat st;
    int k = snprintf(path, pathlen, "%s/%s.gz", dir, base);
    if (k < 0 || (size_t)k >= pathlen)
        return sn_errf(err, errlen, "%s: directory name too long", dir);
    if (stat(path, &st) == 0) return SN_OK;
    snprintf(path, pathlen, "%s/%s", dir, base);
    if (stat(path, &st) == 0) return SN_OK;
    return sn_errf(err, errlen, "%s/%s.gz: not found (nor %s/%s); Debian's package "
                   "dataset-fashion-mnist provides it", dir, base, dir, base);
}

int sn_images_load_dir(const char *dir, const char *split, sn_images *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!dir) dir = FASHION_MNIST_DIR;
    const char *prefix;
    if (strcmp(split, "train") == 0)
        prefix = "train";
    else if (strcmp(split, "test") == 0)
        prefix = "t10k";
    else
        return sn_errf(err, errlen, "unknown data split '%s', expected 'train' or 'test'", split);

    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return sn_errf(err, errlen, "%s: not a directory (images are read from a directory of IDX "
                                    "files; a text file is data for --task lm)", dir);
    char base[64], images_path[PATH_MAX], labels_path[PATH_MAX];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    if (find_file(dir, base, images_path, sizeof images_path, err, errlen) != SN_OK) return SN_ERR;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    if (find_file(dir, base, labels_path, sizeof labels_path, err, errlen) != SN_OK) return SN_ERR;
    return sn_images_load(images_path, labels_path, out, err, errlen);
}

void sn_images_free(sn_images *x)
{
    if (!x) return;
    sn_free(x->pixels);
    sn_free(x->labels);
    memset(x, 0, sizeof *x);
}

int sn_images_check_labels(const sn_images *x, int n_classes, const char *dir,
                           const char *split, const char *file, char *err, size_t errlen)
{
    for (int64_t i = 0; i < x->n; i++)
        if (x->labels[i] >= n_classes)
            return sn_errf(err, errlen, "%s: %s label %d (image %lld) is not one of the %d classes "
                           "(0..%d) of %s", dir ? dir : FASHION_MNIST_DIR, split, x->labels[i],
                           (long long)i, n_classes, n_classes - 1, file);
    return SN_OK;
}

/* idx NULL means all x->n images (n is then ignored).  The sums are
 * accumulated in integers, exact for any data set under the 4 GiB IDX
 * limit; the set must not be empty. */
sn_norm sn_images_norm(const sn_images *x, const int64_t *idx, int64_t n)
{
    if (!idx) n = x->n;
    SN_CHECK(n > 0);
    size_t npix = (size_t)x->rows * (size_t)x->cols;
    uint64_t sum = 0, sumsq = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        SN_CHECK(k >= 0 && k < x->n);
        const uint8_t *p = x->pixels + (size_t)k * npix;
        for (size_t j = 0; j < npix; j++) {
            sum += p[j];
            sumsq += (uint64_t)p[j] * p[j];
        }
    }
    double count = (double)n * (double)npix;
    double mean = (double)sum / count / 255.0;
    double var = (double)sumsq / count / (255.0 * 255.0) - mean * mean;
    /* Constant images have no spread: keep the scale finite. */
    double sd = sqrt(var > 0.0 ? var : 0.0);
    return (sn_norm){.mean = (float)mean, .std = (float)(sd > 1e-6 ? sd : 1.0)};
}

int sn_split_indices(int64_t total, int64_t n_val, uint64_t seed, int64_t **train_idx,
                     int64_t *n_train, int64_t **val_idx, int64_t *n_val_out, char *err,
                     size_t errlen)
{
    *train_idx = *val_idx = NULL;
    *n_train = *n_val_out = 0;
    if (n_val < 0 || n_val >= total)
        return sn_errf(err, errlen, "validation split of %lld images impossible: need 0 <= n_val < "
                       "%lld (the training set size)", (long long)n_val, (long long)total);
    if ((uint64_t)total > SIZE_MAX / sizeof(int64_t))
        return sn_errf(err, errlen, "cannot split %lld indices: too many", (long long)total);

    int64_t *perm = sn_alloc((size_t)total * sizeof *perm);
    uint8_t *in_val = sn_calloc((size_t)total);
    int64_t *train = sn_alloc((size_t)(total - n_val) * sizeof *train);
    int64_t *val = sn_alloc((size_t)n_val * sizeof *val);
    if (!perm || !in_val || !train || !val) {
        sn_free(perm);
        sn_free(in_val);
        sn_free(train);
        sn_free(val);
        return sn_errf(err, errlen, "out of memory splitting %lld indices", (long long)total);
    }
    for (int64_t i = 0; i < total; i++) perm[i] = i;
    sn_rng r;
    sn_rng_seed(&r, seed, SPLIT_STREAM);
    sn_rng_shuffle(&r, perm, total);
    for (int64_t i = 0; i < n_val; i++) in_val[perm[i]] = 1;
    /* Walking [0, total) in order yields both parts already sorted. */
    int64_t nt = 0, nv = 0;
    for (int64_t i = 0; i < total; i++) {
        if (in_val[i])
            val[nv++] = i;
        else
            train[nt++] = i;
    }
    sn_free(perm);
    sn_free(in_val);
    *train_idx = train;
    *n_train = nt;
    *val_idx = val;
    *n_val_out = nv;
    return SN_OK;
}

int sn_patch_dims(const sn_images *x, int p, int stem_convs, int *n_tokens, int *token_dim,
                  char *err, size_t errlen)
{
    if (p <= 0 || x->rows % p != 0 || x->cols % p != 0)
        return sn_errf(err, errlen, "patch size %d does not divide the %dx%d images", p, x->rows,
                       x->cols);
    if (sn_stem_patch_check(p, stem_convs, err, errlen) != SN_OK) return SN_ERR;
    *n_tokens = (x->rows / p) * (x->cols / p);
    *token_dim = sn_image_token_dim(p, stem_convs);
    return SN_OK;
}

/* p must satisfy sn_patch_dims and every idx[i] must be in [0, x->n). */
void sn_images_batch(const sn_images *x, const int64_t *idx, int64_t b, int p, int stem_convs,
                     sn_norm norm, float *out, int32_t *labels)
{
    SN_CHECK(p > 0 && x->rows % p == 0 && x->cols % p == 0);
    sn_images_batch_at(x, idx, b, p, stem_convs, norm, NULL, (x->rows / p) * (x->cols / p), NULL,
                       out, labels);
}

void sn_augment_draw(uint64_t seed, int64_t step, int64_t b, int max_shift, bool flip,
                     sn_augment *out)
{
    SN_CHECK(step >= 0 && b >= 0 && max_shift >= 0);
    if (max_shift == 0 && !flip) {
        memset(out, 0, (size_t)b * sizeof *out);
        return;
    }
    sn_rng r;
    sn_rng_seed(&r, seed, AUGMENT_STREAM + (uint64_t)step);
    const uint64_t span = 2 * (uint64_t)max_shift + 1;
    for (int64_t i = 0; i < b; i++) {
        out[i].dy = (int)sn_rng_below(&r, span) - max_shift;
        out[i].dx = (int)sn_rng_below(&r, span) - max_shift;
        out[i].flip = flip && sn_rng_below(&r, 2) == 1;
    }
}

void sn_images_batch_at(const sn_images *x, const int64_t *idx, int64_t b, int p,
                        int stem_convs, sn_norm norm, const int32_t *pos, int64_t tl,
                        const sn_augment *aug, float *out, int32_t *labels)
{
    SN_CHECK(p > 0 && x->rows % p == 0 && x->cols % p == 0 &&
             sn_stem_patch_check(p, stem_convs, NULL, 0) == SN_OK);
    /* One table entry per byte value, computed exactly as the documented
     * formula so that tokens match it bit for bit. */
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - norm.mean) / norm.std;
    const int rows = x->rows, cols = x->cols;
    const int pc_n = cols / p, n_tokens = (rows / p) * pc_n;
    /* the token's window: w x w pixels from `before` ahead of its patch */
    const int w = sn_stem_window(p, stem_convs), before = sn_stem_before(stem_convs);
    const size_t npix = (size_t)rows * (size_t)cols;
    for (int64_t i = 0; i < b; i++) {
        SN_CHECK(idx[i] >= 0 && idx[i] < x->n);
        const uint8_t *img = x->pixels + (size_t)idx[i] * npix;      // (rows, cols)
        float *tok = out + (size_t)i * (size_t)tl * (size_t)(w * w); // (tl, w*w)
        const sn_augment a = aug ? aug[i] : (sn_augment){0, 0, false};
        for (int64_t k = 0; k < tl; k++) {
            const int t = pos ? pos[k] : (int)k;
            SN_CHECK(t >= 0 && t < n_tokens);
            const int r0 = (t / pc_n) * p - before, c0 = (t % pc_n) * p - before;
            for (int y = r0; y < r0 + w; y++) {
                const int sy = y - a.dy;  // the source row of the altered image's row y
                for (int xx = c0; xx < c0 + w; xx++) {
                    int sx = xx - a.dx;
                    if (a.flip) sx = cols - 1 - sx;
                    /* outside the frame: the stem's zero padding; inside
                     * it but moved in from outside the image: black */
                    *tok++ = y < 0 || y >= rows || xx < 0 || xx >= cols ? 0.0f
                             : sy < 0 || sy >= rows || sx < 0 || sx >= cols
                                 ? lut[0]
                                 : lut[img[(size_t)sy * (size_t)cols + (size_t)sx]];
                }
            }
        }
        labels[i] = x->labels[idx[i]];
    }
}

/* Sets l->perm to epoch l->epoch's order of l->idx. */
static void loader_permute(sn_loader *l)
{
    memcpy(l->perm, l->idx, (size_t)l->n * sizeof *l->perm);
    sn_rng r;
    sn_rng_seed(&r, l->seed, LOADER_STREAM + (uint64_t)l->epoch);
    sn_rng_shuffle(&r, l->perm, l->n);
}

/* On SN_ERR *l is left empty (safe to pass to sn_loader_free). */
int sn_loader_init(sn_loader *l, const int64_t *idx, int64_t n, uint64_t seed, char *err,
                   size_t errlen)
{
    memset(l, 0, sizeof *l);
    if (n <= 0) return sn_errf(err, errlen, "data loader: empty index set (%lld indices)", (long long)n);
    if ((uint64_t)n > SIZE_MAX / sizeof(int64_t))
        return sn_errf(err, errlen, "data loader: %lld indices are too many", (long long)n);
    l->perm = sn_alloc((size_t)n * sizeof *l->perm);
    if (!l->perm)
        return sn_errf(err, errlen, "data loader: out of memory for %lld indices", (long long)n);
    l->idx = idx;
    l->n = n;
    l->seed = seed;
    loader_permute(l);
    return SN_OK;
}

/* 0 <= cursor <= n; (k, n) and (k+1, 0) are the same position. */
void sn_loader_seek(sn_loader *l, int64_t epoch, int64_t cursor)
{
    SN_CHECK(epoch >= 0 && cursor >= 0 && cursor <= l->n);
    if (epoch != l->epoch) {
        l->epoch = epoch;
        loader_permute(l);
    }
    l->cursor = cursor;
}

void sn_loader_next(sn_loader *l, int64_t *out, int64_t b)
{
    for (int64_t i = 0; i < b; i++) {
        if (l->cursor == l->n) {
            l->epoch++;
            l->cursor = 0;
            loader_permute(l);
        }
        out[i] = l->perm[l->cursor++];
    }
}

void sn_loader_free(sn_loader *l)
{
    if (!l) return;
    sn_free(l->perm);
    memset(l, 0, sizeof *l);
}
