#include "io/text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/rng.h"
#include "src/util.h"

/* sn_rng stream of training step k: TEXT_STREAM + k of the run seed
 * ("TEXT" << 32, apart from io/data.c's streams). */
#define TEXT_STREAM 0x5445585400000000ULL

/* True for a byte that counts against "text": C0 controls and DEL other than
 * \t \n \v \f \r and ESC. */
static bool is_control(uint8_t c)
{
    if (c == 0x7f) return true;
    if (c >= 0x20) return false;
    return !(c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0x1b);
}

/* Appends the bytes of the regular file `path` to (*buf, *n) and checks
 * that they are text; *added gets their count. */
static int append_file(const char *path, int flags, uint8_t **buf, int64_t *n, int64_t *added,
                       char *err, size_t errlen)
{
    *added = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0) return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    int rc = SN_ERR;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sn_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        sn_errf(err, errlen, "%s: not a regular file or directory", path);
        goto done;
    }
    const int64_t size = st.st_size;
    if (size == 0) {
        rc = SN_OK;
        goto done;
    }
    uint8_t *p = realloc(*buf, (size_t)(*n + size));
    if (!p) {
        sn_errf(err, errlen, "%s: out of memory for %lld bytes of text", path,
                (long long)(*n + size));
        goto done;
    }
    *buf = p;
    p += *n;
    for (int64_t got = 0; got < size;) {
        size_t want = (size_t)(size - got) < ((size_t)1 << 30) ? (size_t)(size - got)
                                                                : ((size_t)1 << 30);
        ssize_t k = read(fd, p + got, want);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            sn_errf(err, errlen, "%s: read error: %s", path, strerror(errno));
            goto done;
        }
        if (k == 0) {
            sn_errf(err, errlen, "%s: ended after %lld of its %lld bytes (changed while read?)",
                    path, (long long)got, (long long)size);
            goto done;
        }
        got += k;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < size; i++) bad += is_control(p[i]);
    if (bad * 100 > size) {
        sn_errf(err, errlen,
                "%s: not text: %lld of its %lld bytes (%.1f%%) are control bytes, at most 1%% "
                "may be (\\t \\n \\v \\f \\r and ESC do not count); --data expects a text file",
                path, (long long)bad, (long long)size, 100.0 * (double)bad / (double)size);
        goto done;
    }
    *n += size;
    *added = size;
    rc = SN_OK;
done:
    close(fd);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Reads the text files of directory dir (see sn_text_load) into (*buf, *n). */
static int append_dir(const char *dir, uint8_t **buf, int64_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) return sn_errf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = SN_ERR;
    char path[PATH_MAX];
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0) {
                sn_errf(err, errlen, "%s: cannot list directory: %s", dir, strerror(errno));
                goto done;
            }
            break;
        }
        if (ends_with(e->d_name, ".dat") || ends_with(e->d_name, ".u8")) continue;
        int k = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (k < 0 || (size_t)k >= sizeof path) {
            sn_errf(err, errlen, "%s/%s: path too long", dir, e->d_name);
            goto done;
        }
        struct stat st;
        if (lstat(path, &st) != 0) {
            sn_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
            goto done;
        }
        if (!S_ISREG(st.st_mode)) continue;
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            char **p = realloc(names, ncap * sizeof *names);
            if (!p) {
                sn_errf(err, errlen, "%s: out of memory listing the directory", dir);
                goto done;
            }
            names = p;
            cap = ncap;
        }
        names[count] = strdup(e->d_name);
        if (!names[count]) {
            sn_errf(err, errlen, "%s: out of memory listing the directory", dir);
            goto done;
        }
        count++;
    }
    if (count == 0) {
        sn_errf(err, errlen,
                "%s: no text files in this directory (regular files other than *.dat and *.u8)",
                dir);
        goto done;
    }
    qsort(names, count, sizeof *names, cmp_names);
    for (size_t i = 0; i < count; i++) {
        int64_t added;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (append_file(path, O_NOFOLLOW, buf, n, &added, err, errlen) != SN_OK) goto done;
    }
    if (*n == 0) {
        sn_errf(err, errlen, "%s: all %zu text files of this directory are empty", dir, count);
        goto done;
    }
    rc = SN_OK;
done:
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* The region boundaries of n bytes; see sn_text in text.h. */
static void boundaries(int64_t n, int64_t *train_end, int64_t *val_end)
{
    *train_end = n / 100 * 90 + n % 100 * 90 / 100;
    *val_end = n / 100 * 95 + n % 100 * 95 / 100;
}

int sn_text_load(const char *path, int64_t seq_len, sn_text *text, char *err, size_t errlen)
{
    memset(text, 0, sizeof *text);
    if (seq_len < 1)
        return sn_errf(err, errlen, "--seq-len %lld: must be at least 1", (long long)seq_len);
    struct stat st;
    if (stat(path, &st) != 0)
        return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return sn_errf(err, errlen, "%s: not a regular file or directory", path);
    uint8_t *buf = NULL;
    int64_t n = 0;
    if (S_ISDIR(st.st_mode)) {
        if (append_dir(path, &buf, &n, err, errlen) != SN_OK) goto fail;
    } else {
        int64_t added;
        if (append_file(path, 0, &buf, &n, &added, err, errlen) != SN_OK) goto fail;
        if (n == 0) {
            sn_errf(err, errlen, "%s: empty file; --data expects text", path);
            goto fail;
        }
    }
    int64_t train_end, val_end;
    boundaries(n, &train_end, &val_end);
    int64_t shortest = train_end;
    if (val_end - train_end < shortest) shortest = val_end - train_end;
    if (n - val_end < shortest) shortest = n - val_end;
    if (shortest < seq_len + 1) {
        if (shortest >= 2)
            sn_errf(err, errlen,
                    "%s: %lld bytes are too few for --seq-len %lld: its validation and test "
                    "regions (5%% each) get %lld and %lld bytes and need seq_len + 1 each; the "
                    "largest --seq-len it allows is %lld",
                    path, (long long)n, (long long)seq_len, (long long)(val_end - train_end),
                    (long long)(n - val_end), (long long)(shortest - 1));
        else
            sn_errf(err, errlen,
                    "%s: %lld bytes are too few for any --seq-len: its validation and test "
                    "regions (5%% each) get %lld and %lld bytes and need at least 2 each",
                    path, (long long)n, (long long)(val_end - train_end),
                    (long long)(n - val_end));
        goto fail;
    }
    *text = (sn_text){.bytes = buf, .n = n, .train_end = train_end, .val_end = val_end};
    return SN_OK;
fail:
    free(buf);
    return SN_ERR;
}

void sn_text_free(sn_text *text)
{
    if (!text) return;
    free(text->bytes);
    memset(text, 0, sizeof *text);
}

void sn_text_region(const sn_text *text, sn_text_split split, int64_t *lo, int64_t *hi)
{
    switch (split) {
    case SN_TEXT_TRAIN: *lo = 0, *hi = text->train_end; return;
    case SN_TEXT_VAL: *lo = text->train_end, *hi = text->val_end; return;
    case SN_TEXT_TEST: *lo = text->val_end, *hi = text->n; return;
    }
    SN_CHECK(!"unknown text split");
}

void sn_text_train_starts(const sn_text *text, uint64_t seed, int64_t step, int64_t B, int64_t T,
                          int64_t *starts)
{
    SN_CHECK(T >= 1 && T < text->train_end);
    sn_rng r;
    sn_rng_seed(&r, seed, TEXT_STREAM + (uint64_t)step);
    const uint64_t choices = (uint64_t)(text->train_end - T);
    for (int64_t i = 0; i < B; i++) starts[i] = (int64_t)sn_rng_below(&r, choices);
}

void sn_text_batch(const sn_text *text, const int64_t *starts, int64_t b, int64_t T,
                   const int32_t *pos, int64_t tl, int32_t *ids, int32_t *labels)
{
    for (int64_t j = 0; j < tl; j++) SN_CHECK(pos ? pos[j] >= 0 && pos[j] < T : tl <= T);
    for (int64_t i = 0; i < b; i++) {
        SN_CHECK(starts[i] >= 0 && starts[i] + T < text->n);
        const uint8_t *w = text->bytes + starts[i];
        for (int64_t j = 0; j < tl; j++) {
            const int64_t at = pos ? pos[j] : j;
            ids[i * tl + j] = w[at];
            labels[i * tl + j] = w[at + 1];
        }
    }
}

int64_t sn_text_eval_count(const sn_text *text, sn_text_split split, int64_t T)
{
    int64_t lo, hi;
    sn_text_region(text, split, &lo, &hi);
    return hi - lo > T ? (hi - lo - 1) / T : 0;
}

int64_t sn_text_eval_start(const sn_text *text, sn_text_split split, int64_t T, int64_t k)
{
    int64_t lo, hi;
    sn_text_region(text, split, &lo, &hi);
    SN_CHECK(k >= 0 && k < sn_text_eval_count(text, split, T));
    return lo + k * T;
}
