/* fuzz_idx: the IDX reader (io/idx.c) and the image loader (io/data.c) on
 * arbitrary bytes, raw or gzip'd (the reader tells them apart by gzip's
 * magic bytes; the seeds hold both).
 *
 * Each input goes through sn_idx_parse (memory) and sn_idx_read (the same
 * bytes as a file), which must agree exactly: result, shape, data, and
 * message.  An input that parses as a 3-D image file is then loaded by
 * sn_images_load with a labels file made to match (one label per image,
 * values from the input), and turned into a batch of patch tokens.
 * Errors must be one line; nothing may crash, leak or read out of bounds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/data.h"
#include "io/idx.h"
#include "src/util.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sn_fuzz_init();
    return 0;
}

/* The input as images with a labels file of n labels beside it. */
static void load_images(const char *images, const uint8_t *data, size_t size, int64_t n)
{
    const char *labels = sn_fuzz_path("labels.idx");
    size_t len = 8 + (size_t)n;
    uint8_t *buf = malloc(len);
    if (!buf) return;
    const uint8_t head[8] = {0, 0, 8, 1, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                             (uint8_t)n};
    memcpy(buf, head, sizeof head);
    for (int64_t i = 0; i < n; i++) buf[8 + i] = data[(size_t)i % size];
    sn_fuzz_write(labels, buf, len);
    free(buf);

    sn_images x;
    char err[1024];
    if (sn_images_load(images, labels, &x, err, sizeof err) != SN_OK) {
        sn_fuzz_check_message(err, sizeof err);
        return;
    }
    if (x.n != n || x.n_classes < 1 || x.n_classes > 256) sn_fuzz_fail("bad image set");
    for (int64_t i = 0; i < x.n; i++)
        if (x.labels[i] < 0 || x.labels[i] >= x.n_classes) sn_fuzz_fail("label out of range");
    /* the largest patch size below 8 that divides both sides */
    int p = 1;
    for (int q = 7; q > 1; q--)
        if (x.rows % q == 0 && x.cols % q == 0) {
            p = q;
            break;
        }
    int n_tokens, token_dim;
    if (sn_patch_dims(&x, p, 0, &n_tokens, &token_dim, err, sizeof err) != SN_OK)
        sn_fuzz_fail(err);
    if ((int64_t)n_tokens * token_dim != (int64_t)x.rows * x.cols) sn_fuzz_fail("patch dims");
    sn_norm norm = sn_images_norm(&x, NULL, 0);
    int64_t idx[2] = {0, x.n - 1};
    int64_t b = x.n > 1 ? 2 : 1;
    float *tokens = malloc((size_t)(b * n_tokens * token_dim) * sizeof(float));
    int32_t labels_out[2];
    if (tokens) sn_images_batch(&x, idx, b, p, 0, norm, tokens, labels_out);
    free(tokens);
    /* the windows of a stem of two and of three convolutions (a patch
     * their strides divide): every value read inside the image */
    for (int convs = 2; convs <= 3; convs++) {
        if (sn_patch_dims(&x, p, convs, &n_tokens, &token_dim, NULL, 0) != SN_OK) continue;
        tokens = malloc((size_t)(b * n_tokens * token_dim) * sizeof(float));
        if (tokens) sn_images_batch(&x, idx, b, p, convs, norm, tokens, labels_out);
        free(tokens);
    }
    sn_images_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sn_fuzz_path("input.idx");
    sn_fuzz_write(path, data, size);

    sn_idx mem, file;
    char err_mem[1024], err_file[1024];
    int rc_mem = sn_idx_parse(data, size, path, &mem, err_mem, sizeof err_mem);
    int rc_file = sn_idx_read(path, &file, err_file, sizeof err_file);
    if (rc_mem != rc_file) sn_fuzz_fail("sn_idx_parse and sn_idx_read disagree");
    if (rc_mem != SN_OK) {
        sn_fuzz_check_message(err_mem, sizeof err_mem);
        if (strcmp(err_mem, err_file) != 0) sn_fuzz_fail("the two readers' messages differ");
        if (mem.data || file.data || mem.count || file.count) sn_fuzz_fail("*out not left empty");
        return 0;
    }
    int64_t count = 1;
    for (int i = 0; i < mem.ndims; i++) count *= mem.dims[i];
    if (mem.ndims < 1 || mem.ndims > SN_IDX_MAX_DIMS || mem.count != count || count < 1)
        sn_fuzz_fail("inconsistent shape");
    if (mem.ndims != file.ndims || mem.count != file.count ||
        memcmp(mem.dims, file.dims, sizeof mem.dims) != 0 ||
        memcmp(mem.data, file.data, (size_t)mem.count) != 0)
        sn_fuzz_fail("sn_idx_parse and sn_idx_read read different data");
    bool images = mem.ndims == 3 && mem.dims[0] <= 4096;
    int64_t n = mem.dims[0];
    sn_idx_free(&mem);
    sn_idx_free(&file);
    if (images) load_images(path, data, size, n);
    return 0;
}
