/* test_data.c: the IDX reader against valid and corrupt files (raw and
 * gzip'd), patch tokenisation against a naive loop, the validation split
 * and the epoch-wise loader; Fashion-MNIST itself when it is installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io/data.h"
#include "io/idx.h"
#include "src/util.h"
#include "tests/tmpdir.h"


/* ---- helpers ---------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t len;
    size_t cap;     /* bytes allocated by append (0: unknown, reallocate) */
} bytes;

/* Grows the buffer geometrically: make_idx appends a byte at a time, and a
 * realloc per byte is quadratic under AddressSanitizer's quarantine (a
 * minute for test_idx_valid alone). */
static void append(bytes *b, const void *src, size_t n)
{
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        b->cap = need > 2 * b->cap ? need : 2 * b->cap;
        b->p = realloc(b->p, b->cap);
    }
    assert_non_null(b->p);
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* An IDX image: magic (0, 0, type, ndims), ndims big-endian dims, then
 * data_len bytes of a fixed pseudo-random pattern. */
static bytes make_idx(uint8_t m0, uint8_t type, int ndims, const uint32_t *dims, size_t data_len)
{
    bytes b = {0};
    uint8_t magic[4] = {m0, 0, type, (uint8_t)ndims};
    append(&b, magic, 4);
    for (int i = 0; i < ndims; i++) {
        uint8_t d[4] = {dims[i] >> 24, dims[i] >> 16, dims[i] >> 8, dims[i]};
        append(&b, d, 4);
    }
    for (size_t i = 0; i < data_len; i++) {
        uint8_t v = (uint8_t)((i * 2654435761u) >> 13);
        append(&b, &v, 1);
    }
    return b;
}

static void path_of(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", tmpdir, name);
}

static void write_raw(const char *path, bytes b)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.p, 1, b.len, f), b.len);
    assert_int_equal(fclose(f), 0);
}

/* Writes b gzip'd with zlib's gzip writer; mode "wb" or "ab" (the latter
 * appends a new gzip member). */
static void write_gz(const char *path, const char *mode, const uint8_t *p, size_t len)
{
    gzFile f = gzopen(path, mode);
    assert_non_null(f);
    if (len > 0) assert_int_equal(gzwrite(f, p, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

static bytes slurp(const char *path)
{
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) append(&b, chunk, r);
    fclose(f);
    return b;
}

static bytes gzip_bytes(const char *name, bytes b)
{
    char path[512];
    path_of(path, sizeof path, name);
    write_gz(path, "wb", b.p, b.len);
    return slurp(path);
}

static void assert_contains(const char *s, const char *needle)
{
    if (!strstr(s, needle)) fail_msg("message \"%s\" lacks \"%s\"", s, needle);
}

/* b must be rejected by sn_idx_parse under the name "NAME" and, written
 * as file name (raw) and name.gz, by sn_idx_read, each with a message
 * naming the source and containing keyword. */
static void expect_rejected(const char *name, bytes b, const char *keyword)
{
    char err[512], path[512];
    sn_idx x;

    assert_int_equal(sn_idx_parse(b.p, b.len, "BUFNAME", &x, err, sizeof err), SN_ERR);
    assert_contains(err, "BUFNAME: ");
    assert_contains(err, keyword);
    assert_null(x.data);

    path_of(path, sizeof path, name);
    write_raw(path, b);
    assert_int_equal(sn_idx_read(path, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_contains(err, keyword);
    assert_null(x.data);

    char gzname[256];
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    bytes gz = gzip_bytes(gzname, b);
    assert_int_equal(sn_idx_parse(gz.p, gz.len, "GZNAME", &x, err, sizeof err), SN_ERR);
    assert_contains(err, "GZNAME: ");
    assert_contains(err, keyword);
    path_of(path, sizeof path, gzname);
    assert_int_equal(sn_idx_read(path, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_contains(err, keyword);
    assert_null(x.data);
    free(gz.p);
    free(b.p);
}

static int group_setup(void **state)
{
    (void)state;
    return tmpdir_create("sn_test_data");
}

static int group_teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

/* ---- IDX ---------------------------------------------------------------- */

static void check_valid(const char *name, int ndims, const uint32_t *dims, size_t count)
{
    char err[512], path[512];
    bytes b = make_idx(0, 0x08, ndims, dims, count);
    const uint8_t *data = b.p + 4 + 4 * ndims;
    bytes gz = gzip_bytes("tmp.gz", b);
    const bytes *srcs[2] = {&b, &gz};
    for (int s = 0; s < 2; s++) {
        sn_idx x;
        int rc = sn_idx_parse(srcs[s]->p, srcs[s]->len, name, &x, err, sizeof err);
        if (rc != SN_OK) fail_msg("%s", err);
        assert_int_equal(x.ndims, ndims);
        for (int i = 0; i < ndims; i++) assert_int_equal(x.dims[i], dims[i]);
        assert_int_equal(x.count, count);
        assert_memory_equal(x.data, data, count);
        sn_idx_free(&x);
        assert_null(x.data);

        snprintf(path, sizeof path, "%s/%s%s", tmpdir, name, s ? ".gz" : "");
        write_raw(path, *srcs[s]);
        rc = sn_idx_read(path, &x, err, sizeof err);
        if (rc != SN_OK) fail_msg("%s", err);
        assert_int_equal(x.ndims, ndims);
        assert_int_equal(x.count, count);
        assert_memory_equal(x.data, data, count);
        sn_idx_free(&x);
    }
    free(b.p);
    free(gz.p);
}

static void test_idx_valid(void **state)
{
    (void)state;
    check_valid("valid3", 3, (uint32_t[]){5, 4, 6}, 120);
    check_valid("valid1", 1, (uint32_t[]){7}, 7);
    check_valid("valid4", 4, (uint32_t[]){2, 3, 1, 5}, 30);
    check_valid("big", 3, (uint32_t[]){300, 28, 28}, 300 * 28 * 28);
    sn_idx_free(NULL);
}

static void test_idx_bad_headers(void **state)
{
    (void)state;
    uint32_t d3[3] = {2, 3, 4};
    expect_rejected("badmagic", make_idx(0x01, 0x08, 3, d3, 24), "bad magic 0x01000803");
    expect_rejected("badtype", make_idx(0, 0x0D, 3, d3, 24), "unsupported data type 0x0d (float)");
    expect_rejected("dims0", make_idx(0, 0x08, 0, NULL, 24), "number of dimensions 0");
    expect_rejected("dims5", make_idx(0, 0x08, 5, (uint32_t[]){1, 1, 1, 1, 1}, 1),
                    "number of dimensions 5");
    expect_rejected("zerodim", make_idx(0, 0x08, 3, (uint32_t[]){3, 0, 2}, 0), "dimension 1 of 3 is 0");
    expect_rejected("huge", make_idx(0, 0x08, 3, (uint32_t[]){65536, 65536, 2}, 0), "4 GiB");
    expect_rejected("huge4", make_idx(0, 0x08, 4, (uint32_t[]){0xffffffffu, 0xffffffffu,
                                                               0xffffffffu, 0xffffffffu}, 0),
                    "4 GiB");

    bytes th = make_idx(0, 0x08, 3, d3, 0);
    th.len = 4 + 6;   /* magic and one and a half dimensions */
    expect_rejected("truncheader", th, "truncated header");
    bytes tm = make_idx(0, 0x08, 3, d3, 0);
    tm.len = 3;
    expect_rejected("truncmagic", tm, "truncated header");
    expect_rejected("empty", (bytes){calloc(1, 1), 0, 0}, "empty file");
}

static void test_idx_bad_lengths(void **state)
{
    (void)state;
    uint32_t d3[3] = {2, 3, 4};
    expect_rejected("truncdata", make_idx(0, 0x08, 3, d3, 20),
                    "truncated: header says 24 bytes of data, file has 20");
    expect_rejected("nodata", make_idx(0, 0x08, 3, d3, 0),
                    "truncated: header says 24 bytes of data, file has 0");
    expect_rejected("trailing", make_idx(0, 0x08, 3, d3, 26),
                    "trailing data: header says 24 bytes of data, file has 26");
    expect_rejected("trailing1d", make_idx(0, 0x08, 1, (uint32_t[]){5}, 6),
                    "header says 5 bytes of data, file has 6");
}

static void test_idx_gzip_corrupt(void **state)
{
    (void)state;
    char err[512], path[512];
    sn_idx x;
    bytes b = make_idx(0, 0x08, 3, (uint32_t[]){10, 8, 8}, 640);
    bytes gz = gzip_bytes("good.gz", b);
    assert_true(gz.len > 20);

    struct {
        const char *name;
        size_t flip;      /* byte to corrupt, or SIZE_MAX */
        size_t keep;      /* bytes kept (truncation) */
        const char *keyword;
    } cases[] = {
        {"crc.gz", gz.len - 8, gz.len, "corrupt gzip"},          /* CRC-32 of the data */
        {"isize.gz", gz.len - 1, gz.len, "corrupt gzip"},        /* length in the trailer */
        {"method.gz", 2, gz.len, "corrupt gzip"},                 /* compression method */
        {"half.gz", SIZE_MAX, gz.len / 2, "truncated gzip"},
        {"notrailer.gz", SIZE_MAX, gz.len - 8, "truncated gzip"},
        {"lastbyte.gz", SIZE_MAX, gz.len - 1, "truncated gzip"},
        {"magiconly.gz", SIZE_MAX, 2, "truncated gzip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes c = {0};
        append(&c, gz.p, cases[i].keep);
        if (cases[i].flip != SIZE_MAX) c.p[cases[i].flip] ^= 0x5a;
        assert_int_equal(sn_idx_parse(c.p, c.len, cases[i].name, &x, err, sizeof err), SN_ERR);
        assert_true(strncmp(err, cases[i].name, strlen(cases[i].name)) == 0);
        assert_contains(err, cases[i].keyword);
        path_of(path, sizeof path, cases[i].name);
        write_raw(path, c);
        assert_int_equal(sn_idx_read(path, &x, err, sizeof err), SN_ERR);
        assert_true(strncmp(err, path, strlen(path)) == 0);
        assert_contains(err, cases[i].keyword);
        assert_null(x.data);
        free(c.p);
    }

    /* Garbage after a complete gzip member. */
    bytes g = {0};
    append(&g, gz.p, gz.len);
    append(&g, "junk", 4);
    assert_int_equal(sn_idx_parse(g.p, g.len, "junk.gz", &x, err, sizeof err), SN_ERR);
    assert_contains(err, "junk.gz: ");
    assert_contains(err, "garbage");
    free(g.p);

    /* Two gzip members (as `cat a.gz b.gz` makes) are one file. */
    path_of(path, sizeof path, "members.gz");
    write_gz(path, "wb", b.p, 100);
    write_gz(path, "ab", b.p + 100, b.len - 100);
    int rc = sn_idx_read(path, &x, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    assert_int_equal(x.count, 640);
    assert_memory_equal(x.data, b.p + 16, 640);
    sn_idx_free(&x);

    free(b.p);
    free(gz.p);
}

/* A valid 1-byte file followed by 8 MiB of zeros compresses to a few KiB:
 * it must be rejected without inflating it all into memory. */
static void test_idx_gzip_bomb(void **state)
{
    (void)state;
    char err[512], path[512];
    size_t big = (size_t)8 << 20;
    bytes b = make_idx(0, 0x08, 1, (uint32_t[]){1}, 1);
    b.p = realloc(b.p, b.len + big);
    assert_non_null(b.p);
    memset(b.p + b.len, 0, big);
    b.len += big;
    path_of(path, sizeof path, "bomb.gz");
    write_gz(path, "wb", b.p, b.len);
    bytes gz = slurp(path);
    assert_true(gz.len < 64 * 1024);
    sn_idx x;
    assert_int_equal(sn_idx_read(path, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_contains(err, "trailing data: header says 1 bytes of data, file has at least");
    free(gz.p);
    free(b.p);
}

static void test_idx_unreadable(void **state)
{
    (void)state;
    char err[512], path[512];
    sn_idx x;
    path_of(path, sizeof path, "does-not-exist");
    assert_int_equal(sn_idx_read(path, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_contains(err, "cannot open: No such file or directory");
    assert_null(x.data);

    assert_int_equal(sn_idx_read(tmpdir, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, tmpdir, strlen(tmpdir)) == 0);
    assert_contains(err, "cannot open: Is a directory");
}

/* ---- images ------------------------------------------------------------- */

/* Writes an images file (n, rows, cols) and a labels file (n_labels) with
 * pixel (i, r, c) = (i*31 + r*7 + c*3) % 256 and label i % 3. */
static void write_set(const char *img_name, const char *lab_name, uint32_t n, uint32_t rows,
                      uint32_t cols, uint32_t n_labels, int gz)
{
    char path[512];
    bytes img = make_idx(0, 0x08, 3, (uint32_t[]){n, rows, cols}, 0);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < cols; c++) {
                uint8_t v = (uint8_t)((i * 31 + r * 7 + c * 3) % 256);
                append(&img, &v, 1);
            }
    bytes lab = make_idx(0, 0x08, 1, (uint32_t[]){n_labels}, 0);
    for (uint32_t i = 0; i < n_labels; i++) {
        uint8_t v = (uint8_t)(i % 3);
        append(&lab, &v, 1);
    }
    path_of(path, sizeof path, img_name);
    if (gz)
        write_gz(path, "wb", img.p, img.len);
    else
        write_raw(path, img);
    path_of(path, sizeof path, lab_name);
    write_raw(path, lab);
    free(img.p);
    free(lab.p);
}

static void test_images_load(void **state)
{
    (void)state;
    char err[512], ip[512], lp[512];
    sn_images x;
    write_set("im.gz", "lab", 5, 4, 6, 5, 1);
    path_of(ip, sizeof ip, "im.gz");
    path_of(lp, sizeof lp, "lab");
    int rc = sn_images_load(ip, lp, &x, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    assert_int_equal(x.n, 5);
    assert_int_equal(x.rows, 4);
    assert_int_equal(x.cols, 6);
    assert_int_equal(x.n_classes, 3);
    for (int i = 0; i < 5; i++) assert_int_equal(x.labels[i], i % 3);
    assert_int_equal(x.pixels[2 * 24 + 3 * 6 + 5], (2 * 31 + 3 * 7 + 5 * 3) % 256);
    sn_images_free(&x);
    assert_null(x.pixels);
    sn_images_free(NULL);

    /* Count mismatch. */
    write_set("im2", "lab2", 5, 4, 6, 4, 0);
    path_of(ip, sizeof ip, "im2");
    path_of(lp, sizeof lp, "lab2");
    assert_int_equal(sn_images_load(ip, lp, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, lp, strlen(lp)) == 0);
    assert_contains(err, ip);
    assert_contains(err, "mismatch");
    assert_null(x.pixels);

    /* Images and labels swapped: wrong ranks. */
    path_of(ip, sizeof ip, "im.gz");
    path_of(lp, sizeof lp, "lab");
    assert_int_equal(sn_images_load(lp, lp, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, lp, strlen(lp)) == 0);
    assert_contains(err, "expected 3");
    assert_int_equal(sn_images_load(ip, ip, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, ip, strlen(ip)) == 0);
    assert_contains(err, "expected 1");

    /* A bad labels file is reported under its own name. */
    path_of(lp, sizeof lp, "no-labels-here");
    assert_int_equal(sn_images_load(ip, lp, &x, err, sizeof err), SN_ERR);
    assert_true(strncmp(err, lp, strlen(lp)) == 0);
    assert_contains(err, "cannot open");
}

static void test_images_load_dir(void **state)
{
    (void)state;
    char err[1024], dir[512];
    sn_images x;
    path_of(dir, sizeof dir, "fmnist");
    assert_int_equal(mkdir(dir, 0700), 0);
    /* Images gz'd, labels raw: the loader falls back to the name without .gz. */
    write_set("fmnist/train-images-idx3-ubyte.gz", "fmnist/train-labels-idx1-ubyte", 6, 4, 4, 6, 1);
    int rc = sn_images_load_dir(dir, "train", &x, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    assert_int_equal(x.n, 6);
    assert_int_equal(x.rows, 4);
    sn_images_free(&x);

    assert_int_equal(sn_images_load_dir(dir, "test", &x, err, sizeof err), SN_ERR);
    assert_contains(err, "t10k-images-idx3-ubyte.gz");
    assert_contains(err, "dataset-fashion-mnist");
    assert_int_equal(sn_images_load_dir(dir, "validation", &x, err, sizeof err), SN_ERR);
    assert_contains(err, "validation");
}

/* A tiny set of 3 images of 4x6 pixels. */
static void tiny_set(sn_images *x, uint8_t *pixels, int32_t *labels)
{
    for (int i = 0; i < 3 * 24; i++) pixels[i] = (uint8_t)((i * 37 + 11) % 256);
    labels[0] = 4, labels[1] = 0, labels[2] = 9;
    *x = (sn_images){.n = 3, .rows = 4, .cols = 6, .pixels = pixels, .labels = labels,
                     .n_classes = 10};
}

static void test_images_norm(void **state)
{
    (void)state;
    uint8_t pixels[3 * 24];
    int32_t labels[3];
    sn_images x;
    tiny_set(&x, pixels, labels);
    int64_t subsets[2][3] = {{0, 1, 2}, {2, 0, -1}};
    int64_t sizes[2] = {3, 2};
    for (int s = 0; s < 2; s++) {
        double sum = 0, sumsq = 0;
        for (int64_t i = 0; i < sizes[s]; i++)
            for (int j = 0; j < 24; j++) {
                double v = pixels[subsets[s][i] * 24 + j] / 255.0;
                sum += v;
                sumsq += v * v;
            }
        double n = 24.0 * (double)sizes[s], mean = sum / n;
        double sd = sqrt(sumsq / n - mean * mean);
        sn_norm nm = sn_images_norm(&x, subsets[s], sizes[s]);
        assert_float_equal(nm.mean, mean, 1e-6);
        assert_float_equal(nm.std, sd, 1e-6);
        if (s == 0) {
            sn_norm all = sn_images_norm(&x, NULL, 0);
            assert_float_equal(all.mean, nm.mean, 1e-7);
            assert_float_equal(all.std, nm.std, 1e-7);
        }
    }
}

static void test_images_batch(void **state)
{
    (void)state;
    char err[256];
    uint8_t pixels[3 * 24];
    int32_t labels[3];
    sn_images x;
    tiny_set(&x, pixels, labels);
    int nt, td;
    assert_int_equal(sn_patch_dims(&x, 2, 0, &nt, &td, err, sizeof err), SN_OK);
    assert_int_equal(nt, 6);
    assert_int_equal(td, 4);
    assert_int_equal(sn_patch_dims(&x, 1, 0, &nt, &td, err, sizeof err), SN_OK);
    assert_int_equal(nt, 24);
    assert_int_equal(td, 1);
    assert_int_equal(sn_patch_dims(&x, 4, 0, &nt, &td, err, sizeof err), SN_ERR);
    assert_contains(err, "patch size 4");
    assert_int_equal(sn_patch_dims(&x, 3, 0, &nt, &td, err, sizeof err), SN_ERR);
    assert_int_equal(sn_patch_dims(&x, 0, 0, &nt, &td, err, sizeof err), SN_ERR);

    sn_norm norm = {.mean = 0.25f, .std = 0.5f};
    int64_t idx[4] = {2, 0, 2, 1};
    float out[4 * 6 * 4];     // (b, n_tokens, p*p)
    int32_t lab[4];
    memset(out, 0xff, sizeof out);
    sn_images_batch(&x, idx, 4, 2, 0, norm, out, lab);
    /* Naive: token t is patch (t / 3, t % 3); value k is pixel (k / 2, k % 2)
     * inside it. */
    for (int b = 0; b < 4; b++) {
        assert_int_equal(lab[b], labels[idx[b]]);
        for (int t = 0; t < 6; t++)
            for (int k = 0; k < 4; k++) {
                int r = (t / 3) * 2 + k / 2, c = (t % 3) * 2 + k % 2;
                float v = pixels[idx[b] * 24 + r * 6 + c];
                float want = (v / 255.0f - norm.mean) / norm.std;
                assert_float_equal(out[(b * 6 + t) * 4 + k], want, 1e-6);
            }
    }
    /* Patch 1 is the image itself, row-major. */
    sn_images_batch(&x, idx, 1, 1, 0, norm, out, lab);
    for (int j = 0; j < 24; j++)
        assert_float_equal(out[j], (pixels[2 * 24 + j] / 255.0f - 0.25f) / 0.5f, 1e-6);
}

/* With the convolutional stem a token is the (p+3)^2 window from 2 pixels
 * before its patch to 1 after, zeros outside the image; the patch must be
 * even. */
/* Every token of 2 of 3 rows x cols images is the window of a stem of
 * `convs` convolutions for patch p (sn_stem_window pixels a side from
 * `convs` before the patch, zeros outside), and one sequence rank's tokens
 * (positions tl-2 and 1) are the same windows. */
static void check_windows(int rows, int cols, int p, int convs, int want_w)
{
    char err[256];
    const int npix = rows * cols;
    uint8_t *pixels = malloc((size_t)(3 * npix));
    int32_t labels[3] = {4, 0, 9}, lab[2];
    assert_non_null(pixels);
    for (int i = 0; i < 3 * npix; i++) pixels[i] = (uint8_t)((i * 37 + 11) % 256);
    sn_images x = {.n = 3, .rows = rows, .cols = cols, .pixels = pixels, .labels = labels,
                   .n_classes = 10};
    int nt, td;
    if (sn_patch_dims(&x, p, convs, &nt, &td, err, sizeof err) != SN_OK) fail_msg("%s", err);
    const int pc = cols / p, w = want_w;
    assert_int_equal(nt, (rows / p) * pc);
    assert_int_equal(td, w * w);
    sn_norm norm = {.mean = 0.25f, .std = 0.5f};
    int64_t idx[2] = {1, 2};
    float *out = malloc((size_t)(2 * nt * td) * sizeof(float)),
          *part = malloc((size_t)(2 * 2 * td) * sizeof(float));
    assert_non_null(out);
    assert_non_null(part);
    memset(out, 0xff, (size_t)(2 * nt * td) * sizeof(float));
    sn_images_batch(&x, idx, 2, p, convs, norm, out, lab);
    int zeros = 0;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < nt; t++)
            for (int k = 0; k < td; k++) {
                int r = (t / pc) * p - convs + k / w, c = (t % pc) * p - convs + k % w;
                float want = 0.0f;
                if (r >= 0 && r < rows && c >= 0 && c < cols)
                    want = (pixels[idx[b] * npix + r * cols + c] / 255.0f - norm.mean) / norm.std;
                else
                    zeros++;
                assert_float_equal(out[(b * nt + t) * td + k], want, 1e-6);
            }
    assert_true(zeros > 0);
    assert_int_equal(lab[0], 0);
    assert_int_equal(lab[1], 9);
    const int32_t pos[2] = {nt - 2, 1};
    sn_images_batch_at(&x, idx, 2, p, convs, norm, pos, 2, NULL, part, lab);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 2; k++)
            assert_memory_equal(part + (b * 2 + k) * td, out + (b * nt + pos[k]) * td,
                                (size_t)td * sizeof(float));
    free(part);
    free(out);
    free(pixels);
}

static void test_images_batch_stem(void **state)
{
    (void)state;
    char err[256];
    uint8_t pixels[3 * 24];
    int32_t labels[3];
    sn_images x;
    tiny_set(&x, pixels, labels);   /* 4x6 images */
    int nt, td;
    assert_int_equal(sn_patch_dims(&x, 1, 2, &nt, &td, err, sizeof err), SN_ERR);
    assert_contains(err, "patch size 1 is not a multiple of 2");
    assert_int_equal(sn_patch_dims(&x, 2, 3, &nt, &td, err, sizeof err), SN_ERR);
    assert_contains(err, "patch size 2 is not a multiple of 4");
    check_windows(4, 6, 2, 2, 5);   /* two convolutions: p + 3, from 2 before */
    check_windows(8, 12, 4, 2, 7);
    check_windows(8, 12, 4, 3, 9);  /* three: p + 5, from 3 before */
    check_windows(16, 8, 8, 3, 13);
}

/* The draws of --shift and --hflip: a function of (seed, step) and the
 * position in the batch, in range, all values reached, none when off. */
static void test_augment_draw(void **state)
{
    (void)state;
    enum { B = 400 };
    static sn_augment a[B], b[B], c[B];
    sn_augment_draw(7, 12, B, 2, true, a);
    sn_augment_draw(7, 12, B, 2, true, b);
    assert_memory_equal(a, b, sizeof a);
    sn_augment_draw(7, 12, 10, 2, true, c);   /* a rank's prefix draws the same */
    assert_memory_equal(a, c, 10 * sizeof *a);
    sn_augment_draw(7, 13, B, 2, true, c);
    assert_memory_not_equal(a, c, sizeof a);
    sn_augment_draw(8, 12, B, 2, true, c);
    assert_memory_not_equal(a, c, sizeof a);
    int dy_seen[5] = {0}, dx_seen[5] = {0}, flips = 0;
    for (int i = 0; i < B; i++) {
        assert_in_range(a[i].dy + 2, 0, 4);
        assert_in_range(a[i].dx + 2, 0, 4);
        dy_seen[a[i].dy + 2]++;
        dx_seen[a[i].dx + 2]++;
        flips += a[i].flip;
    }
    for (int v = 0; v < 5; v++) {
        assert_true(dy_seen[v] > B / 10);
        assert_true(dx_seen[v] > B / 10);
    }
    assert_in_range(flips, B / 2 - B / 8, B / 2 + B / 8);
    /* shifts alone never mirror; mirroring alone never shifts; off is all zero */
    sn_augment_draw(7, 12, B, 3, false, b);
    for (int i = 0; i < B; i++) {
        assert_false(b[i].flip);
        assert_in_range(b[i].dx + 3, 0, 6);
    }
    sn_augment_draw(7, 12, B, 0, true, b);
    flips = 0;
    for (int i = 0; i < B; i++) {
        assert_int_equal(b[i].dy, 0);
        assert_int_equal(b[i].dx, 0);
        flips += b[i].flip;
    }
    assert_true(flips > 0 && flips < B);
    memset(b, 0xff, sizeof b);
    sn_augment_draw(7, 12, B, 0, false, b);
    memset(c, 0, sizeof c);
    assert_memory_equal(b, c, sizeof b);
}

/* Tokens of altered images (sn_images_batch_at with aug) are the tokens of
 * the images altered beforehand, pixel by pixel, with black moved in:
 * without a stem and with stems of 2 and 3 convolutions, whole images and
 * one sequence rank's positions. */
static void check_augmented(int p, int convs)
{
    enum { ROWS = 8, COLS = 12, NPIX = ROWS * COLS, NA = 6 };
    static const sn_augment augs[NA] = {{0, 0, false}, {0, 0, true}, {2, -1, false},
                                        {-3, 2, true}, {1, 11, false}, {-7, -5, true}};
    uint8_t pixels[2 * NPIX], moved[NA * NPIX];
    int32_t labels[2] = {3, 8}, moved_labels[NA], lab[NA];
    for (int i = 0; i < 2 * NPIX; i++) pixels[i] = (uint8_t)(1 + (i * 53 + 5) % 255);
    int64_t idx[NA];
    for (int k = 0; k < NA; k++) {
        idx[k] = k % 2;
        moved_labels[k] = labels[k % 2];
        const sn_augment *a = &augs[k];
        for (int r = 0; r < ROWS; r++)
            for (int c = 0; c < COLS; c++) {
                int sr = r - a->dy, sc = c - a->dx;
                bool in = sr >= 0 && sr < ROWS && sc >= 0 && sc < COLS;
                if (a->flip) sc = COLS - 1 - sc;
                moved[k * NPIX + r * COLS + c] = in ? pixels[idx[k] * NPIX + sr * COLS + sc] : 0;
            }
    }
    sn_images x = {.n = 2, .rows = ROWS, .cols = COLS, .pixels = pixels, .labels = labels,
                   .n_classes = 10};
    sn_images xm = {.n = NA, .rows = ROWS, .cols = COLS, .pixels = moved,
                    .labels = moved_labels, .n_classes = 10};
    char err[256];
    int nt, td;
    if (sn_patch_dims(&x, p, convs, &nt, &td, err, sizeof err) != SN_OK) fail_msg("%s", err);
    const size_t n = (size_t)(NA * nt * td);
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    assert_non_null(want);
    assert_non_null(got);
    const int64_t ident[NA] = {0, 1, 2, 3, 4, 5};
    const sn_norm norm = {.mean = 0.3f, .std = 0.4f};
    sn_images_batch(&xm, ident, NA, p, convs, norm, want, lab);
    sn_images_batch_at(&x, idx, NA, p, convs, norm, NULL, nt, augs, got, lab);
    assert_memory_equal(got, want, n * sizeof(float));
    for (int k = 0; k < NA; k++) assert_int_equal(lab[k], labels[k % 2]);
    /* the first alteration changes nothing: the same as no aug at all */
    sn_images_batch_at(&x, idx, 1, p, convs, norm, NULL, nt, NULL, got, lab);
    assert_memory_equal(got, want, (size_t)(nt * td) * sizeof(float));
    const int32_t pos[2] = {nt - 1, 1};
    sn_images_batch_at(&x, idx, NA, p, convs, norm, pos, 2, augs, got, lab);
    for (int k = 0; k < NA; k++)
        for (int j = 0; j < 2; j++)
            assert_memory_equal(got + (k * 2 + j) * td, want + (k * nt + pos[j]) * td,
                                (size_t)td * sizeof(float));
    free(want);
    free(got);
}

static void test_images_batch_augment(void **state)
{
    (void)state;
    check_augmented(2, 0);
    check_augmented(4, 0);
    check_augmented(2, 2);
    check_augmented(4, 3);
}

/* ---- split and loader --------------------------------------------------- */

static void check_split(int64_t total, int64_t n_val, uint64_t seed, int64_t **tr, int64_t **va)
{
    char err[256];
    int64_t nt, nv;
    int rc = sn_split_indices(total, n_val, seed, tr, &nt, va, &nv, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    assert_int_equal(nt, total - n_val);
    assert_int_equal(nv, n_val);
    char *seen = calloc((size_t)total, 1);
    for (int64_t i = 0; i < nt; i++) {
        assert_true((*tr)[i] >= 0 && (*tr)[i] < total);
        if (i > 0) assert_true((*tr)[i - 1] < (*tr)[i]);
        seen[(*tr)[i]]++;
    }
    for (int64_t i = 0; i < nv; i++) {
        assert_true((*va)[i] >= 0 && (*va)[i] < total);
        if (i > 0) assert_true((*va)[i - 1] < (*va)[i]);
        seen[(*va)[i]]++;
    }
    for (int64_t i = 0; i < total; i++) assert_int_equal(seen[i], 1);   /* disjoint, union all */
    free(seen);
}

static void test_split(void **state)
{
    (void)state;
    char err[256];
    int64_t *tr1, *va1, *tr2, *va2, *tr3, *va3;
    check_split(1000, 100, 42, &tr1, &va1);
    check_split(1000, 100, 42, &tr2, &va2);
    check_split(1000, 100, 43, &tr3, &va3);
    assert_memory_equal(va1, va2, 100 * sizeof *va1);
    assert_memory_equal(tr1, tr2, 900 * sizeof *tr1);
    assert_memory_not_equal(va1, va3, 100 * sizeof *va1);
    /* A split is not a prefix or any other fixed pattern. */
    assert_true(va1[99] - va1[0] > 500);
    sn_free(tr1), sn_free(va1), sn_free(tr2), sn_free(va2), sn_free(tr3), sn_free(va3);

    check_split(5, 0, 1, &tr1, &va1);
    sn_free(tr1), sn_free(va1);
    check_split(5, 4, 1, &tr1, &va1);
    sn_free(tr1), sn_free(va1);

    int64_t nt, nv;
    assert_int_equal(sn_split_indices(5, 5, 1, &tr1, &nt, &va1, &nv, err, sizeof err), SN_ERR);
    assert_contains(err, "5");
    assert_null(tr1);
    assert_int_equal(sn_split_indices(5, -1, 1, &tr1, &nt, &va1, &nv, err, sizeof err), SN_ERR);
    assert_int_equal(sn_split_indices(0, 0, 1, &tr1, &nt, &va1, &nv, err, sizeof err), SN_ERR);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum { LN = 7, DRAWS = 70 };
static const int64_t loader_set[LN] = {3, 14, 15, 92, 65, 35, 89};

static void test_loader(void **state)
{
    (void)state;
    char err[256];
    sn_loader a, b, c;
    assert_int_equal(sn_loader_init(&a, loader_set, LN, 7, err, sizeof err), SN_OK);
    assert_int_equal(sn_loader_init(&b, loader_set, LN, 7, err, sizeof err), SN_OK);
    assert_int_equal(sn_loader_init(&c, loader_set, LN, 8, err, sizeof err), SN_OK);
    assert_int_equal(a.epoch, 0);
    assert_int_equal(a.cursor, 0);

    /* Deterministic, one at a time; different seed, different order. */
    int64_t seq[DRAWS], seq_b[DRAWS], seq_c[DRAWS];
    for (int i = 0; i < DRAWS; i++) sn_loader_next(&a, &seq[i], 1);
    sn_loader_next(&b, seq_b, DRAWS);
    sn_loader_next(&c, seq_c, DRAWS);
    assert_memory_equal(seq, seq_b, sizeof seq);
    assert_memory_not_equal(seq, seq_c, sizeof seq);

    /* Each epoch is a permutation of the set; epochs differ. */
    int64_t sorted_set[LN];
    memcpy(sorted_set, loader_set, sizeof sorted_set);
    qsort(sorted_set, LN, sizeof *sorted_set, cmp_i64);
    int distinct = 0;
    for (int e = 0; e < DRAWS / LN; e++) {
        int64_t ep[LN];
        memcpy(ep, seq + e * LN, sizeof ep);
        if (e > 0 && memcmp(ep, seq + (e - 1) * LN, sizeof ep) != 0) distinct++;
        qsort(ep, LN, sizeof *ep, cmp_i64);
        assert_memory_equal(ep, sorted_set, sizeof ep);
    }
    assert_true(distinct >= DRAWS / LN - 2);

    /* Batches of 5 cross epoch boundaries mid-batch and see the same
     * sequence; the state after 10 draws is (1, 3). */
    sn_loader_seek(&b, 0, 0);
    int64_t batch[5];
    sn_loader_next(&b, batch, 5);
    assert_memory_equal(batch, seq, sizeof batch);
    sn_loader_next(&b, batch, 5);
    assert_memory_equal(batch, seq + 5, sizeof batch);
    assert_int_equal(b.epoch, 1);
    assert_int_equal(b.cursor, 3);

    /* Seeking to any (epoch, cursor) reproduces the rest of the sequence,
     * including from a fresh loader and from the end of an epoch. */
    for (int pos = 0; pos < DRAWS - 5; pos += 4) {
        sn_loader d;
        assert_int_equal(sn_loader_init(&d, loader_set, LN, 7, err, sizeof err), SN_OK);
        sn_loader_seek(&d, pos / LN, pos % LN);
        sn_loader_next(&d, batch, 5);
        assert_memory_equal(batch, seq + pos, sizeof batch);
        sn_loader_seek(&b, pos / LN, pos % LN);
        sn_loader_next(&b, batch, 5);
        assert_memory_equal(batch, seq + pos, sizeof batch);
        if (pos >= LN) {
            sn_loader_seek(&d, pos / LN - 1, LN);
            sn_loader_next(&d, batch, 1);
            assert_int_equal(batch[0], seq[(pos / LN) * LN]);
        }
        sn_loader_free(&d);
    }

    sn_loader_free(&a);
    sn_loader_free(&b);
    sn_loader_free(&c);
    assert_null(a.perm);
    sn_loader_free(NULL);

    assert_int_equal(sn_loader_init(&a, loader_set, 0, 7, err, sizeof err), SN_ERR);
    assert_contains(err, "empty");
    assert_null(a.perm);
}

/* ---- Fashion-MNIST ------------------------------------------------------ */

static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0)
        fail_msg("%s not found: install Debian's dataset-fashion-mnist (scripts/setup.sh)", dir);
    char err[1024];
    sn_images tr, te;
    int rc = sn_images_load_dir(NULL, "train", &tr, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    rc = sn_images_load_dir(dir, "test", &te, err, sizeof err);
    if (rc != SN_OK) fail_msg("%s", err);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(te.n, 10000);
    assert_int_equal(tr.rows, 28);
    assert_int_equal(tr.cols, 28);
    assert_int_equal(te.rows, 28);
    assert_int_equal(te.cols, 28);
    assert_int_equal(tr.n_classes, 10);
    assert_int_equal(te.n_classes, 10);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < tr.n; i++) per_class[tr.labels[i]]++;
    for (int k = 0; k < 10; k++) assert_int_equal(per_class[k], 6000);
    /* The published statistics of the training set. */
    sn_norm nm = sn_images_norm(&tr, NULL, 0);
    assert_float_equal(nm.mean, 0.2860f, 1e-3);
    assert_float_equal(nm.std, 0.3530f, 1e-3);
    sn_images_free(&tr);
    sn_images_free(&te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_valid),
        cmocka_unit_test(test_idx_bad_headers),
        cmocka_unit_test(test_idx_bad_lengths),
        cmocka_unit_test(test_idx_gzip_corrupt),
        cmocka_unit_test(test_idx_gzip_bomb),
        cmocka_unit_test(test_idx_unreadable),
        cmocka_unit_test(test_images_load),
        cmocka_unit_test(test_images_load_dir),
        cmocka_unit_test(test_images_norm),
        cmocka_unit_test(test_images_batch),
        cmocka_unit_test(test_images_batch_stem),
        cmocka_unit_test(test_augment_draw),
        cmocka_unit_test(test_images_batch_augment),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_loader),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
