/* test_layout.c: every refusal of sn_layout_resolve and what its message
 * says, rank <-> coordinate round trips, and pipeline stage splits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/layout.h"
#include "src/util.h"

#define assert_contains(s, sub)                                              \
    do {                                                                     \
        if (!strstr((s), (sub))) fail_msg("'%s' does not contain '%s'", (s), (sub)); \
    } while (0)

/* Resolves {dp, pp, sp} for the arguments and expects SN_ERR with a message
 * containing each of the NULL-terminated substrings, and l untouched. */
static void refuses(sn_layout l, int world, int n_blocks, int64_t seq_len, sn_seq_layout sl,
                    int64_t batch, int64_t micro, const char *what, ...)
{
    char err[512] = "";
    sn_layout before = l;
    assert_int_equal(sn_layout_resolve(&l, world, n_blocks, seq_len, sl, batch, micro, what, err,
                                       sizeof err),
                     SN_ERR);
    assert_null(strchr(err, '\n'));
    assert_memory_equal(&l, &before, sizeof l);
    va_list ap;
    va_start(ap, what);
    for (const char *sub; (sub = va_arg(ap, const char *));) assert_contains(err, sub);
    va_end(ap);
}

static void test_resolve_ok(void **state)
{
    (void)state;
    char err[512];
    sn_layout l = {0, 2, 2};
    assert_int_equal(sn_layout_resolve(&l, 8, 6, 64, SN_SEQ_ZIGZAG, 32, 4, "--seq-len", err,
                                       sizeof err),
                     SN_OK);
    assert_int_equal(l.dp, 2);
    assert_int_equal(l.pp, 2);
    assert_int_equal(l.sp, 2);

    l = (sn_layout){4, 1, 1};
    assert_int_equal(sn_layout_resolve(&l, 4, 1, 49, SN_SEQ_CONTIGUOUS, 4, 1, "tokens", err,
                                       sizeof err),
                     SN_OK);
    assert_int_equal(l.dp, 4);

    /* One rank, no splits: anything of size >= 1 works. */
    l = (sn_layout){0, 1, 1};
    assert_int_equal(sn_layout_resolve(&l, 1, 1, 1, SN_SEQ_ZIGZAG, 1, 1, "--seq-len", err,
                                       sizeof err),
                     SN_OK);
    assert_int_equal(l.dp, 1);
}

static void test_resolve_sizes(void **state)
{
    (void)state;
    const sn_layout ok = {0, 1, 1};
    refuses(ok, 0, 4, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "0 ranks", NULL);
    refuses(ok, 4, 0, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "0 blocks", NULL);
    refuses((sn_layout){0, 0, 1}, 4, 4, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "--pp 0", "at least 1",
            NULL);
    refuses((sn_layout){0, 1, -2}, 4, 4, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "--sp -2", NULL);
    refuses((sn_layout){-1, 1, 1}, 4, 4, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "--dp -1",
            "0 to use every rank", NULL);
    refuses(ok, 4, 4, 0, SN_SEQ_CONTIGUOUS, 8, 1, "--seq-len", "sequence length 0 (--seq-len)",
            NULL);
    refuses(ok, 4, 4, 16, SN_SEQ_CONTIGUOUS, 0, 1, "x", "--batch-size 0", NULL);
    refuses(ok, 4, 4, 16, SN_SEQ_CONTIGUOUS, 8, 0, "x", "--micro-batches 0", "at least 1", NULL);
}

static void test_resolve_world(void **state)
{
    (void)state;
    /* 8 ranks cannot hold replicas of 3: 6 or 9 ranks would. */
    refuses((sn_layout){0, 3, 1}, 8, 6, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x", "8 ranks",
            "--pp 3 x --sp 1 = 3", "multiple of 3 ranks (6 or 9)", NULL);
    /* Fewer ranks than one replica: only the upper multiple. */
    refuses((sn_layout){0, 2, 2}, 2, 6, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x",
            "multiple of 4 ranks (4)", NULL);
    /* A one-rank run asked for a split: how to start it. */
    refuses((sn_layout){0, 1, 2}, 1, 6, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x",
            "--pp 1 x --sp 2 needs 2 ranks", "start it with mpirun -np 2", NULL);
    /* --dp given but not matching: which --dp works, or which rank count. */
    refuses((sn_layout){2, 2, 2}, 4, 6, 16, SN_SEQ_CONTIGUOUS, 8, 1, "x",
            "--dp 2 x --pp 2 x --sp 2 = 8 ranks, but the job has 4", "use --dp 1",
            "run 8 ranks", NULL);
}

static void test_resolve_blocks(void **state)
{
    (void)state;
    refuses((sn_layout){0, 4, 1}, 4, 3, 16, SN_SEQ_CONTIGUOUS, 4, 1, "x", "--pp 4",
            "3 blocks", "at most 3 pipeline stages", NULL);
}

static void test_resolve_seq(void **state)
{
    (void)state;
    /* Contiguous: 49 tokens over 2 ranks; 48 or 50 would do. */
    refuses((sn_layout){0, 1, 2}, 2, 4, 49, SN_SEQ_CONTIGUOUS, 8, 1,
            "tokens per image for patch 4", "sequence length 49 (tokens per image for patch 4)",
            "--sp 2", "--sp 7 or 49 would, or a length of 48 or 50", NULL);
    /* Zigzag needs 2*S: 100 over S=3 -> multiples of 6. */
    refuses((sn_layout){0, 1, 3}, 3, 4, 100, SN_SEQ_ZIGZAG, 3, 1, "--seq-len",
            "sequence length 100 (--seq-len)", "2 x --sp 3 = 6", "--sp 2, 5, 10, 25 or 50 would",
            "96 or 102", NULL);
    /* 6 is fine contiguous over 3 but not zigzag; below the first multiple
     * only the upper value is suggested. */
    char err[256];
    sn_layout l = {0, 1, 3};
    assert_int_equal(sn_layout_resolve(&l, 3, 4, 6, SN_SEQ_CONTIGUOUS, 3, 1, "--seq-len", err,
                                       sizeof err),
                     SN_OK);
    refuses((sn_layout){0, 1, 4}, 4, 4, 4, SN_SEQ_ZIGZAG, 4, 1, "--seq-len", "a length of 8 would",
            NULL);
    /* With one rank zigzag is the identity: an odd length is fine. */
    l = (sn_layout){0, 1, 1};
    assert_int_equal(sn_layout_resolve(&l, 1, 4, 7, SN_SEQ_ZIGZAG, 1, 1, "--seq-len", err,
                                       sizeof err),
                     SN_OK);
}

static void test_resolve_batch(void **state)
{
    (void)state;
    /* 2 data ranks x 4 micro-batches = 8 parts: 30 -> 24 or 32. */
    refuses((sn_layout){0, 2, 1}, 4, 4, 16, SN_SEQ_CONTIGUOUS, 30, 4, "x", "--batch-size 30",
            "2 data ranks x --micro-batches 4", "8 equal micro-batches", "--batch-size 24 or 32", NULL);
    refuses((sn_layout){4, 1, 1}, 4, 4, 16, SN_SEQ_CONTIGUOUS, 3, 1, "x", "--batch-size 4", NULL);
}

static void test_coords(void **state)
{
    (void)state;
    const sn_layout ls[] = {{2, 2, 2}, {8, 1, 1}, {1, 2, 4}, {3, 5, 2}, {1, 1, 1}};
    for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) {
        const sn_layout *l = &ls[k];
        int world = l->dp * l->pp * l->sp;
        for (int r = 0; r < world; r++) {
            int d, p, s;
            sn_layout_coords(l, r, &d, &p, &s);
            assert_in_range(d, 0, l->dp - 1);
            assert_in_range(p, 0, l->pp - 1);
            assert_in_range(s, 0, l->sp - 1);
            assert_int_equal(sn_layout_rank(l, d, p, s), r);
            /* S innermost: a sequence group is a run of adjacent ranks. */
            assert_int_equal(r, (d * l->pp + p) * l->sp + s);
        }
    }
}

static void test_stage_blocks(void **state)
{
    (void)state;
    for (int n = 1; n <= 20; n++)
        for (int pp = 1; pp <= n; pp++) {
            int next = 0;
            for (int p = 0; p < pp; p++) {
                int lo, hi;
                sn_layout_stage_blocks(n, pp, p, &lo, &hi);
                assert_int_equal(lo, next);
                int size = hi - lo;
                assert_true(size == n / pp || size == n / pp + 1);
                /* The extra blocks go to the earliest stages. */
                assert_int_equal(size, n / pp + (p < n % pp ? 1 : 0));
                next = hi;
            }
            assert_int_equal(next, n);
        }
    int lo, hi;
    sn_layout_stage_blocks(7, 3, 0, &lo, &hi);
    assert_int_equal(lo, 0), assert_int_equal(hi, 3);
    sn_layout_stage_blocks(7, 3, 2, &lo, &hi);
    assert_int_equal(lo, 5), assert_int_equal(hi, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_ok),
        cmocka_unit_test(test_resolve_sizes),
        cmocka_unit_test(test_resolve_world),
        cmocka_unit_test(test_resolve_blocks),
        cmocka_unit_test(test_resolve_seq),
        cmocka_unit_test(test_resolve_batch),
        cmocka_unit_test(test_coords),
        cmocka_unit_test(test_stage_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
