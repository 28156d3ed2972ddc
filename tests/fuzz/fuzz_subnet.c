/* fuzz_subnet: sn_subnet_parse (src/arch.c) on arbitrary bytes.
 *
 * The input, cut at its first NUL, is parsed against three spaces: the
 * default one, the small one of the end-to-end tests, and one of 16 stages
 * with 7-digit choices (long strings, many fields).  Properties:
 * - an error is one line, and a short message buffer is never overrun;
 * - a parsed sub-network validates, formats back to the input exactly
 *   (the string is canonical) unless the input was "max"/"min", and the
 *   formatted string parses to the same sub-network;
 * - its parameter and MAC counts are positive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/arch.h"
#include "src/util.h"
#include "tests/fuzz/fuzz_common.h"

enum { N_SPACES = 3 };
static sn_space spaces[N_SPACES];

static void small_space(sn_space *s)
{
    static const int embed[] = {32, 64}, heads[] = {1, 2}, mlp[] = {64, 128};
    sn_space_default(s);
    s->n_embed = 2;
    memcpy(s->embed, embed, sizeof embed);
    s->n_heads = 2;
    memcpy(s->heads, heads, sizeof heads);
    s->n_mlp = 2;
    memcpy(s->mlp, mlp, sizeof mlp);
    s->n_stages = 2;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = s->max_depth[1] = 2;
    s->head_dim = 16;
}

/* 16 stages of 1..4 blocks (64 in all), values up to the 1000000 the
 * command line allows: the longest strings a space can have. */
static void wide_space(sn_space *s)
{
    sn_space_default(s);
    s->n_embed = 3;
    s->embed[0] = 1, s->embed[1] = 1000, s->embed[2] = 1000000;
    s->n_heads = 2;
    s->heads[0] = 7, s->heads[1] = 999999;
    s->n_mlp = 2;
    s->mlp[0] = 96, s->mlp[1] = 1000000;
    s->n_stages = SN_MAX_STAGES;
    for (int st = 0; st < s->n_stages; st++) {
        s->min_depth[st] = 1;
        s->max_depth[st] = 4;
    }
    s->head_dim = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sn_fuzz_init();
    sn_space_default(&spaces[0]);
    small_space(&spaces[1]);
    wide_space(&spaces[2]);
    char err[256];
    for (int i = 0; i < N_SPACES; i++)
        if (sn_space_validate(&spaces[i], err, sizeof err) != SN_OK) sn_fuzz_fail(err);
    return 0;
}

static void check_one(const sn_space *s, const char *str, size_t tiny)
{
    char err[512];
    sn_subnet n;
    int rc = sn_subnet_parse(s, str, &n, err, sizeof err);

    /* the same call with a message buffer of `tiny` bytes, exactly
     * allocated so that an overrun is caught */
    char *small = tiny ? malloc(tiny) : NULL;
    sn_subnet n2;
    if (sn_subnet_parse(s, str, &n2, small, tiny) != rc) sn_fuzz_fail("result depends on errlen");
    if (rc == SN_ERR && small && memchr(small, '\0', tiny) == NULL)
        sn_fuzz_fail("short message not terminated");
    free(small);

    if (rc != SN_OK) {
        if (rc != SN_ERR) sn_fuzz_fail("parse returned neither SN_OK nor SN_ERR");
        sn_fuzz_check_message(err, sizeof err);
        return;
    }
    if (sn_subnet_validate(s, &n, err, sizeof err) != SN_OK) sn_fuzz_fail(err);
    char text[4 * SN_SUBNET_STRLEN];
    if (sn_subnet_format(&n, text, sizeof text) < 0) sn_fuzz_fail("a parsed sub-network does not format");
    if (strcmp(str, "max") != 0 && strcmp(str, "min") != 0 && strcmp(text, str) != 0)
        sn_fuzz_fail("formatted string differs from the parsed one");
    sn_subnet back;
    if (sn_subnet_parse(s, text, &back, err, sizeof err) != SN_OK) sn_fuzz_fail(err);
    if (memcmp(&back, &n, sizeof n) != 0) sn_fuzz_fail("round trip changed the sub-network");
    if (sn_subnet_params(s, &n) <= 0 || sn_subnet_macs(s, &n) <= 0)
        sn_fuzz_fail("non-positive parameter or MAC count");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *str = malloc(size + 1);
    if (!str) return 0;
    memcpy(str, data, size);
    str[size] = '\0';
    size_t tiny = size > 0 ? data[0] % 24 : 0;
    for (int i = 0; i < N_SPACES; i++) check_one(&spaces[i], str, tiny);
    free(str);
    return 0;
}
