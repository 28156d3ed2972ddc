/* test_text.c: the byte-level text loader (files, directories, every
 * refusal), its 90/5/5 split, training windows and their determinism,
 * batches against direct indexing, evaluation windows; Debian's fortunes
 * when installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/text.h"
#include "src/seq.h"
#include "src/util.h"
#include "tests/tmpdir.h"

#define assert_contains(s, sub)                                              \
    do {                                                                     \
        if (!strstr((s), (sub))) fail_msg("'%s' does not contain '%s'", (s), (sub)); \
    } while (0)


static void path_of(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", tmpdir, name);
}

/* Byte i of the test text: printable ASCII with a newline every 61. */
static uint8_t text_byte(int64_t i)
{
    return i % 61 == 60 ? '\n' : (uint8_t)(' ' + (i * 7919 + i / 13) % 95);
}

static void write_bytes(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n > 0) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes n bytes of the test text starting at text byte `from`. */
static void write_text(const char *name, int64_t from, int64_t n)
{
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = text_byte(from + i);
    write_bytes(name, p, (size_t)n);
    free(p);
}

static void make_dir(const char *name)
{
    char path[512];
    path_of(path, sizeof path, name);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* Expects sn_text_load(name under tmpdir) to fail with a one-line message
 * that starts with the path of `named` under tmpdir (unless named is NULL)
 * and contains each of the NULL-terminated substrings. */
static void load_fails(const char *name, int64_t seq_len, const char *named, ...)
{
    char path[512], want[512], err[512] = "";
    path_of(path, sizeof path, name);
    if (named) path_of(want, sizeof want, named);
    sn_text t;
    assert_int_equal(sn_text_load(path, seq_len, &t, err, sizeof err), SN_ERR);
    assert_null(t.bytes);
    assert_int_equal(t.n, 0);
    assert_null(strchr(err, '\n'));
    if (named && strncmp(err, want, strlen(want)) != 0) fail_msg("'%s' does not name '%s'", err, want);
    va_list ap;
    va_start(ap, named);
    for (const char *sub; (sub = va_arg(ap, const char *));) assert_contains(err, sub);
    va_end(ap);
}

static int group_setup(void **state)
{
    (void)state;
    return tmpdir_create("sn_test_text");
}

static int group_teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

/* ---- loading ------------------------------------------------------------ */

static void test_load_file(void **state)
{
    (void)state;
    char err[512], path[512];
    const int64_t n = 12345;
    write_text("one.txt", 0, n);
    path_of(path, sizeof path, "one.txt");
    sn_text t;
    assert_int_equal(sn_text_load(path, 32, &t, err, sizeof err), SN_OK);
    assert_int_equal(t.n, n);
    for (int64_t i = 0; i < n; i++) assert_int_equal(t.bytes[i], text_byte(i));
    /* 90% / 5% / 5%, contiguous. */
    assert_int_equal(t.train_end, n * 90 / 100);
    assert_int_equal(t.val_end, n * 95 / 100);
    int64_t lo, hi, prev = 0;
    const sn_text_split splits[] = {SN_TEXT_TRAIN, SN_TEXT_VAL, SN_TEXT_TEST};
    for (int k = 0; k < 3; k++) {
        sn_text_region(&t, splits[k], &lo, &hi);
        assert_int_equal(lo, prev);
        assert_true(hi > lo);
        prev = hi;
    }
    assert_int_equal(prev, n);
    sn_text_free(&t);
    assert_null(t.bytes);
    sn_text_free(NULL);
}

static void test_load_dir(void **state)
{
    (void)state;
    char err[512], path[512], target[512];
    make_dir("dir");
    /* Read in name order: "a" then "b" (written in the other order). */
    write_text("dir/b", 700, 1300);
    write_text("dir/a", 0, 700);
    write_text("dir/empty", 0, 0);
    /* Not read: index and UTF-8 link of fortune files, symlinks, binary
     * .dat, subdirectories. */
    write_bytes("dir/a.dat", (const uint8_t[]){0, 0, 0, 1}, 4);
    path_of(path, sizeof path, "dir/a.u8");
    assert_int_equal(symlink("a", path), 0);
    path_of(path, sizeof path, "dir/link");
    path_of(target, sizeof target, "one.txt");
    write_text("one.txt", 0, 50);
    assert_int_equal(symlink(target, path), 0);
    make_dir("dir/sub");
    write_text("dir/sub/c", 0, 100);

    path_of(path, sizeof path, "dir");
    sn_text t;
    assert_int_equal(sn_text_load(path, 16, &t, err, sizeof err), SN_OK);
    assert_int_equal(t.n, 2000);
    for (int64_t i = 0; i < t.n; i++) assert_int_equal(t.bytes[i], text_byte(i));
    assert_int_equal(t.train_end, 1800);
    assert_int_equal(t.val_end, 1900);
    sn_text_free(&t);
}

static void test_load_errors(void **state)
{
    (void)state;
    char path[512], err[512];
    sn_text t;
    load_fails("missing", 8, "missing", "cannot open: No such file or directory", NULL);
    write_text("plain", 0, 1000);
    /* Unreadable: a path through a regular file (root reads any mode). */
    load_fails("plain/x", 8, "plain/x", "cannot open: Not a directory", NULL);
    if (geteuid() != 0) {
        write_text("locked", 0, 1000);
        path_of(path, sizeof path, "locked");
        assert_int_equal(chmod(path, 0), 0);
        load_fails("locked", 8, "locked", "cannot open: Permission denied", NULL);
    }
    path_of(path, sizeof path, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    load_fails("fifo", 8, "fifo", "not a regular file or directory", NULL);

    write_text("empty", 0, 0);
    load_fails("empty", 8, "empty", "empty file", NULL);

    make_dir("nodata");
    load_fails("nodata", 8, "nodata", "no text files", "other than *.dat and *.u8", NULL);
    write_bytes("nodata/x.dat", (const uint8_t[]){1, 2}, 2);
    path_of(path, sizeof path, "nodata/link");
    assert_int_equal(symlink("x.dat", path), 0);
    load_fails("nodata", 8, "nodata", "no text files", NULL);
    write_text("nodata/e1", 0, 0);
    write_text("nodata/e2", 0, 0);
    load_fails("nodata", 8, "nodata", "all 2 text files of this directory are empty", NULL);

    /* Not text: 2% control bytes; a directory names the file. */
    uint8_t bin[1000];
    for (int i = 0; i < 1000; i++) bin[i] = text_byte(i);
    for (int i = 0; i < 20; i++) bin[i * 50] = i % 2 ? 0 : 0x7f;
    write_bytes("binary", bin, sizeof bin);
    load_fails("binary", 8, "binary", "not text: 20 of its 1000 bytes (2.0%) are control bytes",
               "at most 1%", NULL);
    make_dir("mixed");
    write_text("mixed/a", 0, 1000);
    write_bytes("mixed/b", bin, sizeof bin);
    load_fails("mixed", 8, "mixed/b", "not text", NULL);
    /* Exactly 1%, and the allowed controls (\t \v \f \r ESC), pass. */
    for (int i = 0; i < 1000; i++) bin[i] = text_byte(i);
    for (int i = 0; i < 10; i++) bin[i * 100] = 0;
    const uint8_t ok_controls[] = {'\t', '\v', '\f', '\r', 0x1b};
    for (int i = 0; i < 100; i++) bin[i * 10 + 5] = ok_controls[i % 5];
    write_bytes("one_percent", bin, sizeof bin);
    path_of(path, sizeof path, "one_percent");
    assert_int_equal(sn_text_load(path, 8, &t, err, sizeof err), SN_OK);
    sn_text_free(&t);

    /* 1000 bytes: validation and test get 50 each, so --seq-len 49 works
     * and 50 does not. */
    path_of(path, sizeof path, "plain");
    assert_int_equal(sn_text_load(path, 49, &t, err, sizeof err), SN_OK);
    sn_text_free(&t);
    load_fails("plain", 50, "plain", "1000 bytes are too few for --seq-len 50",
               "get 50 and 50 bytes", "largest --seq-len it allows is 49", NULL);
    write_text("tiny", 0, 20);
    load_fails("tiny", 1, "tiny", "20 bytes are too few for any --seq-len", NULL);
    /* Too short as a whole directory: the directory is named. */
    make_dir("small");
    write_text("small/a", 0, 300);
    write_text("small/b", 300, 300);
    load_fails("small", 64, "small", "600 bytes", "largest --seq-len it allows is 29", NULL);
    load_fails("plain", 0, NULL, "--seq-len 0: must be at least 1", NULL);
}

/* ---- windows ------------------------------------------------------------ */

static sn_text load_plain(int64_t n)
{
    char err[512], path[512];
    write_text("windows", 0, n);
    path_of(path, sizeof path, "windows");
    sn_text t;
    assert_int_equal(sn_text_load(path, 16, &t, err, sizeof err), SN_OK);
    return t;
}

static void test_train_starts(void **state)
{
    (void)state;
    sn_text t = load_plain(4000);   /* training bytes [0, 3600) */
    enum { B = 4096, T = 16 };
    int64_t *a = malloc(B * sizeof *a), *b = malloc(B * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    sn_text_train_starts(&t, 7, 3, B, T, a);
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < B; i++) {
        assert_true(a[i] >= 0);
        assert_true(a[i] + T < t.train_end);
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
    }
    /* Uniform over [0, 3584): 4096 draws reach both ends. */
    assert_true(lo < 10);
    assert_true(hi > t.train_end - T - 10);
    /* (seed, step) alone decide: again the same; another step or seed not. */
    sn_text_train_starts(&t, 7, 3, B, T, b);
    assert_memory_equal(a, b, B * sizeof *a);
    sn_text_train_starts(&t, 7, 4, B, T, b);
    assert_memory_not_equal(a, b, B * sizeof *a);
    sn_text_train_starts(&t, 8, 3, B, T, b);
    assert_memory_not_equal(a, b, B * sizeof *a);
    /* A prefix of a larger draw: ranks drawing the global batch agree. */
    sn_text_train_starts(&t, 7, 3, 5, T, b);
    assert_memory_equal(a, b, 5 * sizeof *a);
    free(a);
    free(b);
    sn_text_free(&t);
}

static void test_batch(void **state)
{
    (void)state;
    sn_text t = load_plain(4000);
    enum { B = 3, T = 16, S = 4 };
    int64_t starts[B] = {0, 1234, t.train_end - T - 1};
    int32_t pos[T], ids[B * T], labels[B * T];
    /* All positions: the window itself and its next bytes. */
    sn_seq_positions(SN_SEQ_CONTIGUOUS, T, 1, 0, pos);
    sn_text_batch(&t, starts, B, T, pos, T, ids, labels);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < T; j++) {
            assert_int_equal(ids[i * T + j], text_byte(starts[i] + j));
            assert_int_equal(labels[i * T + j], text_byte(starts[i] + j + 1));
        }
    /* Zigzag over S ranks: each rank's columns against direct indexing,
     * and together the ranks cover every position once. */
    int seen[T] = {0};
    for (int r = 0; r < S; r++) {
        const int tl = T / S;
        sn_seq_positions(SN_SEQ_ZIGZAG, T, S, r, pos);
        sn_text_batch(&t, starts, B, T, pos, tl, ids, labels);
        for (int j = 0; j < tl; j++) seen[pos[j]]++;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < tl; j++) {
                assert_int_equal(ids[i * tl + j], t.bytes[starts[i] + pos[j]]);
                assert_int_equal(labels[i * tl + j], t.bytes[starts[i] + pos[j] + 1]);
            }
    }
    for (int j = 0; j < T; j++) assert_int_equal(seen[j], 1);
    sn_text_free(&t);
}

static void test_eval_windows(void **state)
{
    (void)state;
    sn_text t = load_plain(4321);   /* validation [3888, 4104), test [4104, 4321) */
    const sn_text_split splits[] = {SN_TEXT_VAL, SN_TEXT_TEST, SN_TEXT_TRAIN};
    const int64_t Ts[] = {1, 7, 16, 100};
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < 4; q++) {
            const int64_t T = Ts[q];
            int64_t lo, hi;
            sn_text_region(&t, splits[k], &lo, &hi);
            int64_t count = sn_text_eval_count(&t, splits[k], T);
            assert_int_equal(count, (hi - lo - 1) / T);
            for (int64_t w = 0; w < count; w++) {
                int64_t a = sn_text_eval_start(&t, splits[k], T, w);
                assert_int_equal(a, lo + w * T);   /* consecutive, non-overlapping */
                assert_true(a + T < hi);          /* labels inside the region */
            }
            /* No room for another window. */
            assert_true(lo + count * T + T >= hi);
        }
    assert_int_equal(sn_text_eval_count(&t, SN_TEXT_VAL, 216), 0);
    assert_int_equal(sn_text_eval_count(&t, SN_TEXT_VAL, 215), 1);
    sn_text_free(&t);
}

/* ---- Debian's fortunes, the default data -------------------------------- */

static void test_fortunes(void **state)
{
    (void)state;
    struct stat st;
    if (stat(SN_TEXT_DEFAULT_PATH, &st) != 0)
        fail_msg("%s not found: install Debian's fortunes (scripts/setup.sh)",
                 SN_TEXT_DEFAULT_PATH);
    char err[512];
    sn_text t;
    assert_int_equal(sn_text_load(SN_TEXT_DEFAULT_PATH, 256, &t, err, sizeof err), SN_OK);
    assert_true(t.n > 1000000);
    assert_true(sn_text_eval_count(&t, SN_TEXT_VAL, 256) > 100);
    sn_text_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_train_starts),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_eval_windows),
        cmocka_unit_test(test_fortunes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
