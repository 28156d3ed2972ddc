/* test_arch: the search space, the canonical sub-network string, parameter
 * and MAC counts, sampling. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/rng.h"
#include "src/util.h"

#define MAX_STR "e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768"
#define MIN_STR "e64-d1.1-h1.1-f96.96"

/* Fails the test unless a and b describe the same sub-network, field by
 * field, and agree on every unused array slot too (all are zero-filled). */
static void assert_subnet_equal(const sn_subnet *a, const sn_subnet *b)
{
    assert_int_equal(a->embed, b->embed);
    assert_int_equal(a->n_stages, b->n_stages);
    for (int st = 0; st < a->n_stages; st++) assert_int_equal(a->depth[st], b->depth[st]);
    assert_int_equal(a->n_blocks, b->n_blocks);
    for (int i = 0; i < a->n_blocks; i++) {
        assert_int_equal(a->heads[i], b->heads[i]);
        assert_int_equal(a->mlp[i], b->mlp[i]);
    }
    assert_memory_equal(a, b, sizeof *a);
}

/* format -> parse -> equal struct -> format gives the same string. */
static void assert_round_trip(const sn_space *s, const sn_subnet *n)
{
    char str[SN_SUBNET_STRLEN], again[SN_SUBNET_STRLEN], err[256] = "";
    int len = sn_subnet_format(n, str, sizeof str);
    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(str));
    sn_subnet back;
    if (sn_subnet_parse(s, str, &back, err, sizeof err) != SN_OK) fail_msg("%s", err);
    assert_subnet_equal(n, &back);
    assert_int_equal(sn_subnet_format(&back, again, sizeof again), len);
    assert_string_equal(str, again);
    assert_int_equal(sn_subnet_validate(s, n, err, sizeof err), SN_OK);
}

/* Params and MACs written out from the formulas, independently of arch.c. */
static int64_t params_by_formula(int64_t e, int n_blocks, const int *heads, const int *mlp,
                                 int64_t head_dim, int64_t t, int64_t p, int64_t c)
{
    int64_t total = (p * e + e) + t * e + 2 * e + (c * e + c);
    for (int i = 0; i < n_blocks; i++) {
        int64_t inner = heads[i] * head_dim, f = mlp[i];
        total += 2 * e + (3 * inner * e + 3 * inner) + (inner * e + e) + 2 * e + (f * e + f) +
                 (e * f + e);
    }
    return total;
}

static int64_t macs_by_formula(int64_t e, int n_blocks, const int *heads, const int *mlp,
                               int64_t head_dim, int64_t t, int64_t p, int64_t c)
{
    int64_t total = t * p * e + e * c;
    for (int i = 0; i < n_blocks; i++) {
        int64_t inner = heads[i] * head_dim, f = mlp[i];
        total += t * e * 3 * inner + t * t * inner + t * t * inner + t * inner * e + t * e * f * 2;
    }
    return total;
}

static void test_default_space(void **state)
{
    (void)state;
    sn_space s;
    char err[256] = "";
    sn_space_default(&s);
    if (sn_space_validate(&s, err, sizeof err) != SN_OK) fail_msg("%s", err);
    assert_int_equal(sn_space_max_blocks(&s), 6);
    assert_int_equal(sn_space_stage_offset(&s, 0), 0);
    assert_int_equal(sn_space_stage_offset(&s, 1), 3);

    double expect = 5.0 * (24.0 + 576.0 + 13824.0) * (24.0 + 576.0 + 13824.0);
    double count = sn_space_count(&s);
    assert_true(fabs(count - expect) <= 1e-9 * expect);
    assert_true(count >= 1e9);
}

static void test_count_small_spaces(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    /* 3 embeds x one stage of exactly one block of 1 x 2 choices */
    s.n_embed = 3;
    s.n_heads = 1;
    s.n_mlp = 2;
    s.n_stages = 1;
    s.min_depth[0] = s.max_depth[0] = 1;
    assert_true(sn_space_count(&s) == 6.0);
    /* depth 2..3 of 2 choices per block: 2^2 + 2^3 */
    s.n_embed = 1;
    s.min_depth[0] = 2;
    s.max_depth[0] = 3;
    assert_true(sn_space_count(&s) == 12.0);
    /* two such stages multiply */
    s.n_stages = 2;
    s.min_depth[1] = 2;
    s.max_depth[1] = 3;
    assert_true(sn_space_count(&s) == 144.0);
}

static void test_max_min(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n, p;
    char str[SN_SUBNET_STRLEN], err[256] = "";
    sn_space_default(&s);

    sn_subnet_max(&s, &n);
    assert_int_equal(sn_subnet_format(&n, str, sizeof str), (int)strlen(MAX_STR));
    assert_string_equal(str, MAX_STR);
    assert_int_equal(sn_subnet_parse(&s, "max", &p, err, sizeof err), SN_OK);
    assert_subnet_equal(&n, &p);

    sn_subnet_min(&s, &n);
    assert_int_equal(sn_subnet_format(&n, str, sizeof str), (int)strlen(MIN_STR));
    assert_string_equal(str, MIN_STR);
    assert_int_equal(sn_subnet_parse(&s, "min", &p, err, sizeof err), SN_OK);
    assert_subnet_equal(&n, &p);
}

static void test_max_params_and_macs(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    sn_space_default(&s);
    sn_subnet_max(&s, &n);

    const int heads[6] = {3, 3, 3, 3, 3, 3}, mlp[6] = {768, 768, 768, 768, 768, 768};
    int64_t params = params_by_formula(192, 6, heads, mlp, 64, 49, 16, 10);
    /* by hand: 3264 embed + 9408 pos + 6 * 444864 blocks + 384 norm + 1930 head */
    assert_int_equal(params, 2684170);
    assert_int_equal(sn_subnet_params(&s, &n), params);
    assert_int_equal(sn_subnet_macs(&s, &n),
                     macs_by_formula(192, 6, heads, mlp, 64, 49, 16, 10));
}

static void test_params_macs_mixed(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    char err[256] = "";
    sn_space_default(&s);
    if (sn_subnet_parse(&s, "e96-d2.1-h1.2.3-f96.192.768", &n, err, sizeof err) != SN_OK)
        fail_msg("%s", err);
    const int heads[3] = {1, 2, 3}, mlp[3] = {96, 192, 768};
    assert_int_equal(sn_subnet_params(&s, &n),
                     params_by_formula(96, 3, heads, mlp, 64, 49, 16, 10));
    assert_int_equal(sn_subnet_macs(&s, &n), macs_by_formula(96, 3, heads, mlp, 64, 49, 16, 10));

    /* kept blocks 0,1 of stage 0 and block 0 of stage 1 (offset 3) */
    assert_int_equal(sn_subnet_block(&s, &n, 0), 0);
    assert_int_equal(sn_subnet_block(&s, &n, 1), 1);
    assert_int_equal(sn_subnet_block(&s, &n, 2), 3);

    sn_subnet_max(&s, &n);
    for (int i = 0; i < 6; i++) assert_int_equal(sn_subnet_block(&s, &n, i), i);
    sn_subnet_min(&s, &n);
    assert_int_equal(sn_subnet_block(&s, &n, 0), 0);
    assert_int_equal(sn_subnet_block(&s, &n, 1), 3);
}

static void test_round_trip(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    sn_rng r;
    sn_space_default(&s);
    sn_subnet_max(&s, &n);
    assert_round_trip(&s, &n);
    sn_subnet_min(&s, &n);
    assert_round_trip(&s, &n);
    sn_rng_seed(&r, 1234, 7);
    for (int k = 0; k < 10000; k++) {
        sn_subnet_sample(&s, &r, &n);
        assert_round_trip(&s, &n);
    }
}

static void test_format_small_buffer(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    char buf[SN_SUBNET_STRLEN];
    sn_space_default(&s);
    sn_subnet_max(&s, &n);
    size_t need = strlen(MAX_STR);
    assert_int_equal(sn_subnet_format(&n, buf, need), SN_ERR);
    assert_int_equal(sn_subnet_format(&n, buf, 1), SN_ERR);
    assert_int_equal(sn_subnet_format(&n, buf, 0), SN_ERR);
    assert_int_equal(sn_subnet_format(&n, buf, need + 1), (int)need);
    assert_string_equal(buf, MAX_STR);
}

#define H6 "h3.3.3.3.3.3"
#define F6 "f768.768.768.768.768.768"

typedef struct bad_case {
    const char *str;
    const char *want1; /* substrings the message must contain */
    const char *want2;
} bad_case;

static const bad_case BAD[] = {
    {"", "empty", "e<embed>-d<depths>-h<heads>-f<mlp>"},
    {"e", "embed", "expected a number"},
    {"e192", "missing", "depth"},
    {"e100-d3.3-" H6 "-" F6, "embed 100 is not one of 64,96,128,160,192", "sub-network 'e100-d3.3"},
    {"e192-d4.3-h3.3.3.3.3.3.3-f768.768.768.768.768.768.768", "stage 0 depth 4",
     "out of range 1..3"},
    {"e192-d3.0-h3.3.3-f768.768.768", "stage 1 depth 0", "out of range 1..3"},
    {"e192-d3.3-h3.3.3.3.3-" F6, "expected 6 heads", "got 5"},
    {"e192-d3.3-h3.3.3.3.3.3.3-" F6, "expected 6 heads", "got 7"},
    {"e192-d3.3-" H6 "-f768.768.768.768.768", "expected 6 mlp", "got 5"},
    {"e192-d3.3-" H6 "-f768.768.768.768.768.768.768", "expected 6 mlp", "got 7"},
    {"e192-d3.3-h3.3.5.3.3.3-" F6, "block 2 heads 5", "not one of 1,2,3"},
    {"e192-d3.3-" H6 "-f768.100.768.768.768.768", "block 1 mlp 100",
     "not one of 96,192,288,384,480,576,672,768"},
    {"e0192-d3.3-" H6 "-" F6, "embed", "leading zero"},
    {"e192-d03.3-" H6 "-" F6, "depth", "leading zero"},
    {"e192-d3.3-" H6 "-f0768.768.768.768.768.768", "mlp", "leading zero"},
    {"e-192-d3.3-" H6 "-" F6, "embed", "expected a number"},
    {"e+192-d3.3-" H6 "-" F6, "embed", "found '+'"},
    {"e192-d3.-3-" H6 "-" F6, "depth", "expected a number"},
    {"e19x2-d3.3-" H6 "-" F6, "embed", "unexpected 'x'"},
    {"e192-d3.3-h3.a.3.3.3.3-" F6, "heads", "expected a number"},
    {"e192-d3.3-h3.3b.3.3.3.3-" F6, "heads", "unexpected 'b'"},
    {"e192-d3..3-" H6 "-" F6, "depth", "expected a number"},
    {"e192-d3.3-" H6 "-" F6 "-", "trailing '-'", "mlp"},
    {"e192-d3.3-" H6 "-" F6 "-h3", "unexpected text", "mlp"},
    {"e192-d3.3-" H6 "-" F6 ".", "mlp", "expected a number"},
    {"e192-d3.3-" H6 "-" F6 "x", "mlp", "unexpected 'x'"},
    {"e99999999999999999999-d3.3-" H6 "-" F6, "embed", "too large"},
    {"e18446744073709551808-d3.3-" H6 "-" F6, "embed", "too large"}, /* 2^64 + 192 */
    {"e4294967488-d3.3-" H6 "-" F6, "embed", "too large"},          /* 2^32 + 192 */
    {"e2147483648-d3.3-" H6 "-" F6, "embed", "too large"},
    {"e2147483647-d3.3-" H6 "-" F6, "embed 2147483647", "not one of"},
    {"e192-d3.3-" H6 "-f768.768.768.768.768.4294967296", "mlp", "too large"},
    {"e192-d3.3", "missing", "heads"},
    {"e192-d3.3-" H6, "missing", "mlp"},
    {"e192-d3.3-" H6 "-", "empty field", "mlp"},
    {"e192--d3.3-" H6 "-" F6, "empty field", "depth"},
    {"e192-" H6 "-d3.3-" F6, "out of order", "depth"},
    {"d3.3-e192-" H6 "-" F6, "out of order", "embed"},
    {"e192-d3.3-" F6 "-" H6, "out of order", "heads"},
    {"x192-d3.3-" H6 "-" F6, "field 'x' unknown", "e<embed>-d<depths>-h<heads>-f<mlp>"},
    {"e192-d3.3-q3-" H6 "-" F6, "field 'q' unknown", "e<embed>"},
    {" e192-d3.3-" H6 "-" F6, "field ' ' unknown", "e<embed>"},
    {"e192 -d3.3-" H6 "-" F6, "embed", "unexpected ' '"},
    {"e192.64-d3.3-" H6 "-" F6, "embed", "unexpected '.'"},
    {"e192-d3-h3.3.3-f768.768.768", "expected 2 depths", "got 1"},
    {"e192-d3.3.3-h3.3.3.3.3.3.3.3.3-f768.768.768.768.768.768.768.768.768", "expected 2 depths",
     "got 3"},
    {"e192-d3.3-h-" F6, "heads", "expected a number"},
    {"MAX", "field 'M' unknown", "e<embed>"},
    {"max ", "field 'm' unknown", "e<embed>"},
    {"e192-d3.3-h3.3.3.3.3.3\n-" F6, "heads", "byte 0x0a"},
};

static void test_bad_strings(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    size_t n_bad = sizeof BAD / sizeof BAD[0];
    assert_true(n_bad >= 25);
    for (size_t k = 0; k < n_bad; k++) {
        char err[512] = "";
        sn_subnet out, sentinel;
        memset(&sentinel, 0x5a, sizeof sentinel);
        out = sentinel;
        int rc = sn_subnet_parse(&s, BAD[k].str, &out, err, sizeof err);
        if (rc != SN_ERR) fail_msg("case %zu '%s' was accepted", k, BAD[k].str);
        if (!strstr(err, BAD[k].want1) || !strstr(err, BAD[k].want2))
            fail_msg("case %zu '%s': message \"%s\" lacks \"%s\" or \"%s\"", k, BAD[k].str, err,
                     BAD[k].want1, BAD[k].want2);
        if (strncmp(err, "sub-network '", 13) != 0 || strchr(err, '\n'))
            fail_msg("case %zu: message \"%s\" is not one line naming the sub-network", k, err);
        assert_memory_equal(&out, &sentinel, sizeof out); /* untouched on error */
    }
}

static void test_bad_string_long(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet out;
    char str[4096], err[512] = "";
    sn_space_default(&s);
    /* a heads field of 1000 values: rejected with a short message */
    size_t pos = (size_t)snprintf(str, sizeof str, "e192-d3.3-h3");
    for (int i = 1; i < 1000; i++) pos += (size_t)snprintf(str + pos, sizeof str - pos, ".3");
    snprintf(str + pos, sizeof str - pos, "-" F6);
    assert_int_equal(sn_subnet_parse(&s, str, &out, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "heads"));
    assert_non_null(strstr(err, "more than 64"));
    assert_true(strlen(err) < 200);
}

static void test_subnet_validate(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    char err[512] = "";
    sn_space_default(&s);

    sn_subnet_max(&s, &n);
    n.heads[4] = 4;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "block 4 heads 4"));

    sn_subnet_max(&s, &n);
    n.embed = 100;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "embed 100"));

    sn_subnet_max(&s, &n);
    n.n_blocks = 5;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "n_blocks 5"));

    sn_subnet_max(&s, &n);
    n.depth[1] = 4;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "stage 1 depth 4"));

    sn_subnet_max(&s, &n);
    n.n_stages = 3;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "stage"));

    sn_subnet_max(&s, &n);
    n.mlp[5] = 769;
    assert_int_equal(sn_subnet_validate(&s, &n, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "block 5 mlp 769"));
}

static void expect_space_error(const sn_space *s, const char *want)
{
    char err[512] = "";
    assert_int_equal(sn_space_validate(s, err, sizeof err), SN_ERR);
    if (!strstr(err, want)) fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void test_space_validate(void **state)
{
    (void)state;
    sn_space s;

    sn_space_default(&s);
    s.embed[1] = 200; /* 64,200,128,... */
    expect_space_error(&s, "embed");

    sn_space_default(&s);
    s.mlp[3] = s.mlp[2]; /* duplicate: not strictly ascending */
    expect_space_error(&s, "mlp");

    sn_space_default(&s);
    s.n_heads = 0;
    expect_space_error(&s, "heads");

    sn_space_default(&s);
    s.n_embed = SN_MAX_CHOICES + 1;
    expect_space_error(&s, "embed");

    sn_space_default(&s);
    s.heads[0] = -1;
    expect_space_error(&s, "positive");

    sn_space_default(&s);
    s.min_depth[1] = 0;
    expect_space_error(&s, "stage 1 min_depth 0");

    sn_space_default(&s);
    s.min_depth[0] = 3;
    s.max_depth[0] = 2;
    expect_space_error(&s, "stage 0 max_depth 2");

    sn_space_default(&s);
    s.n_stages = SN_MAX_STAGES;
    for (int st = 0; st < SN_MAX_STAGES; st++) {
        s.min_depth[st] = 1;
        s.max_depth[st] = 5; /* 80 blocks */
    }
    expect_space_error(&s, "blocks");

    sn_space_default(&s);
    s.n_stages = 0;
    expect_space_error(&s, "n_stages");

    sn_space_default(&s);
    s.head_dim = 0;
    expect_space_error(&s, "head_dim");

    sn_space_default(&s);
    s.n_classes = -3;
    expect_space_error(&s, "n_classes");

    /* the stem: two or three channel counts or none, the image task, a
     * window token_dim, a patch-embedding input that fits (and no overflow
     * on the way for a token_dim near INT_MAX) */
    sn_space_default(&s);
    s.stem[0] = 0;
    s.stem[1] = 8;
    expect_space_error(&s, "stem channels 0,8,0: expected two or three channel counts in "
                           "1..1024");
    s.stem[0] = 8;
    s.stem[1] = 0;
    expect_space_error(&s, "stem channels 8,0,0: expected two or three");
    s.stem[1] = 16;
    s.stem[2] = 2000;
    expect_space_error(&s, "stem channels 8,16,2000: expected two or three");
    s.stem[1] = 0;
    s.stem[2] = 16;
    expect_space_error(&s, "stem channels 8,0,16: expected two or three");
    sn_space_default(&s);
    s.stem[0] = 32;
    s.stem[1] = 64;
    s.stem[2] = 128;
    s.token_dim = 49; /* the window of patch 4 with two convolutions, not three */
    expect_space_error(&s, "token_dim 49 is not the (p+5)^2 window of a patch size p that is a "
                           "multiple of 4");
    sn_space_default(&s);
    s.stem[0] = 32;
    s.stem[1] = 64;
    expect_space_error(&s, "token_dim 16 is not the (p+3)^2 window");
    s.token_dim = 2147483647;
    expect_space_error(&s, "token_dim 2147483647 is not");
    s.token_dim = 49;
    s.task = SN_TASK_LM;
    expect_space_error(&s, "needs the image task");
    sn_space_default(&s);
    s.stem[0] = s.stem[1] = 1024;
    s.token_dim = 403 * 403; /* patch 400: 200 x 200 outputs of 1024 channels */
    expect_space_error(&s, "the stem gives 40960000 values per token");
}

/* The largest of the default space with the stem of 32 and 64 channels:
 * the patch embedding takes 2 x 2 x 64 values, and the stem adds its
 * weights and, per token, conv1 at 5 x 5 positions and conv2 at 2 x 2. */
static void test_params_macs_stem(void **state)
{
    (void)state;
    sn_space s;
    sn_subnet n;
    char err[256] = "";
    sn_space_default(&s);
    s.token_dim = 49;
    s.stem[0] = 32;
    s.stem[1] = 64;
    if (sn_space_validate(&s, err, sizeof err) != SN_OK) fail_msg("%s", err);
    assert_int_equal(sn_stem_grid(&s), 2);
    assert_int_equal(sn_space_embed_in(&s), 256);
    sn_subnet_max(&s, &n);
    const int heads[6] = {3, 3, 3, 3, 3, 3}, mlp[6] = {768, 768, 768, 768, 768, 768};
    const int64_t stem_params = 32 * 9 + 32 + 64 * 9 * 32 + 64;
    const int64_t stem_macs = 49 * (25 * 9 * 32 + 4 * 9 * 32 * 64);
    assert_int_equal(sn_subnet_params(&s, &n),
                     params_by_formula(192, 6, heads, mlp, 64, 49, 256, 10) + stem_params);
    assert_int_equal(sn_subnet_macs(&s, &n),
                     macs_by_formula(192, 6, heads, mlp, 64, 49, 256, 10) + stem_macs);
    assert_int_equal(sn_subnet_params(&s, &n), 2749066);

    /* three convolutions, 32, 64 and 128 channels: a 9 x 9 window, conv1 at
     * 7 x 7 positions, conv2 at 3 x 3, conv3 at one: 128 values a token */
    s.token_dim = 81;
    s.stem[2] = 128;
    if (sn_space_validate(&s, err, sizeof err) != SN_OK) fail_msg("%s", err);
    assert_int_equal(sn_stem_convs(&s), 3);
    assert_int_equal(sn_stem_grid(&s), 1);
    assert_int_equal(sn_space_embed_in(&s), 128);
    int64_t side[SN_MAX_STEM_CONVS];
    assert_int_equal(sn_stem_sides(&s, side), 3);
    assert_int_equal(side[0], 7);
    assert_int_equal(side[1], 3);
    assert_int_equal(side[2], 1);
    sn_subnet_max(&s, &n);
    const int64_t stem3_params = stem_params + 128 * 9 * 64 + 128;
    const int64_t stem3_macs = 49 * (49 * 9 * 32 + 9 * 9 * 32 * 64 + 9 * 64 * 128);
    assert_int_equal(sn_subnet_params(&s, &n),
                     params_by_formula(192, 6, heads, mlp, 64, 49, 128, 10) + stem3_params);
    assert_int_equal(sn_subnet_macs(&s, &n),
                     macs_by_formula(192, 6, heads, mlp, 64, 49, 128, 10) + stem3_macs);
    char buf[256];
    sn_space_format(&s, buf, sizeof buf);
    assert_non_null(strstr(buf, " stem 32,64,128"));
    /* the patch sizes a stem takes */
    assert_int_equal(sn_stem_patch_check(6, 2, err, sizeof err), SN_OK);
    assert_int_equal(sn_stem_patch_check(6, 3, err, sizeof err), SN_ERR);
    assert_non_null(strstr(err, "patch size 6 is not a multiple of 4"));
    assert_int_equal(sn_stem_patch_check(7, 0, err, sizeof err), SN_OK);
}

static void test_sample(void **state)
{
    (void)state;
    sn_space s;
    sn_rng a, b;
    sn_subnet x, y;
    char err[256] = "";
    sn_space_default(&s);

    /* same seed, same sequence; another stream differs somewhere */
    sn_rng_seed(&a, 42, 3);
    sn_rng_seed(&b, 42, 3);
    for (int k = 0; k < 200; k++) {
        sn_subnet_sample(&s, &a, &x);
        sn_subnet_sample(&s, &b, &y);
        assert_memory_equal(&x, &y, sizeof x);
    }
    sn_rng_seed(&a, 42, 3);
    sn_rng_seed(&b, 42, 4);
    int differ = 0;
    for (int k = 0; k < 50; k++) {
        sn_subnet_sample(&s, &a, &x);
        sn_subnet_sample(&s, &b, &y);
        differ += memcmp(&x, &y, sizeof x) != 0;
    }
    assert_true(differ > 0);

    /* the documented draw order: embed, depths, then heads and mlp per block */
    sn_rng_seed(&a, 9, 0);
    sn_rng_seed(&b, 9, 0);
    for (int k = 0; k < 100; k++) {
        sn_subnet_sample(&s, &a, &x);
        assert_int_equal(x.embed, s.embed[sn_rng_below(&b, (uint64_t)s.n_embed)]);
        int blocks = 0;
        for (int st = 0; st < s.n_stages; st++) {
            int span = s.max_depth[st] - s.min_depth[st] + 1;
            assert_int_equal(x.depth[st], s.min_depth[st] + (int)sn_rng_below(&b, (uint64_t)span));
            blocks += x.depth[st];
        }
        assert_int_equal(x.n_blocks, blocks);
        for (int i = 0; i < blocks; i++) {
            assert_int_equal(x.heads[i], s.heads[sn_rng_below(&b, (uint64_t)s.n_heads)]);
            assert_int_equal(x.mlp[i], s.mlp[sn_rng_below(&b, (uint64_t)s.n_mlp)]);
        }
    }

    /* coverage: every embed, every depth of every stage, every heads and
     * mlp choice; every sample valid */
    int seen_embed[SN_MAX_CHOICES] = {0}, seen_heads[SN_MAX_CHOICES] = {0};
    int seen_mlp[SN_MAX_CHOICES] = {0}, seen_depth[SN_MAX_STAGES][4] = {{0}};
    sn_rng_seed(&a, 2024, 1);
    for (int k = 0; k < 5000; k++) {
        sn_subnet_sample(&s, &a, &x);
        if (sn_subnet_validate(&s, &x, err, sizeof err) != SN_OK) fail_msg("%s", err);
        for (int j = 0; j < s.n_embed; j++) seen_embed[j] += x.embed == s.embed[j];
        for (int st = 0; st < s.n_stages; st++) seen_depth[st][x.depth[st]]++;
        for (int i = 0; i < x.n_blocks; i++) {
            for (int j = 0; j < s.n_heads; j++) seen_heads[j] += x.heads[i] == s.heads[j];
            for (int j = 0; j < s.n_mlp; j++) seen_mlp[j] += x.mlp[i] == s.mlp[j];
        }
    }
    for (int j = 0; j < s.n_embed; j++) assert_true(seen_embed[j] > 0);
    for (int j = 0; j < s.n_heads; j++) assert_true(seen_heads[j] > 0);
    for (int j = 0; j < s.n_mlp; j++) assert_true(seen_mlp[j] > 0);
    for (int st = 0; st < s.n_stages; st++)
        for (int d = 1; d <= 3; d++) assert_true(seen_depth[st][d] > 0);
    /* roughly uniform: each embed about 1000 of 5000 */
    for (int j = 0; j < s.n_embed; j++) assert_in_range(seen_embed[j], 850, 1150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_space),
        cmocka_unit_test(test_count_small_spaces),
        cmocka_unit_test(test_max_min),
        cmocka_unit_test(test_max_params_and_macs),
        cmocka_unit_test(test_params_macs_mixed),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_format_small_buffer),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_bad_string_long),
        cmocka_unit_test(test_subnet_validate),
        cmocka_unit_test(test_space_validate),
        cmocka_unit_test(test_params_macs_stem),
        cmocka_unit_test(test_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
