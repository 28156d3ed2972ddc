/* fuzz_config: --config FILE (src/cli.c, Debian's libinih) on arbitrary
 * bytes written to a scratch file, read by sn_cli_parse for a table like
 * train's (every kind of option, the search-space lists).
 *
 * The command line is "supernest train --config FILE", or, for inputs of
 * odd length, "supernest train --lr 0.002 --config FILE" (a value the file
 * may not override).  Properties:
 * - an error is one line;
 * - after a successful parse every value lies in its option's range, and
 *   the search-space lists give a space or a one-line refusal;
 * - the resolved configuration that sn_cli_write_config writes reads back
 *   to the same values (unless a string holds a line break or white space
 *   at an end, which INI cannot carry) and sn_cli_config_diff finds no
 *   difference with it;
 * - sn_cli_config_diff on the input itself answers 0, 1 or a one-line
 *   error.
 */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/arch.h"
#include "src/cli.h"
#include "src/util.h"
#include "tests/fuzz/fuzz_common.h"

typedef struct train_like {
    bool quiet, no_distill;
    int64_t steps, batch, seed, warmup;
    double lr, weight_decay;
    const char *task, *run_dir, *resume, *subnet;
    sn_space_flags space;
} train_like;

/* 12 options of every kind and the 7 search-space ones; one more ends it */
enum { N_OPTS = 19 };

/* The options of a, with train's defaults, into opts[0..N_OPTS]. */
static void table(train_like *a, sn_opt opts[N_OPTS + 1])
{
    *a = (train_like){.batch = 128, .seed = 1, .warmup = -1, .lr = 1e-3, .weight_decay = 0.05,
                      .task = "image"};
    sn_space_flags_default(&a->space);
    const sn_opt t[] = {
        {"task", SN_OPT_STR, &a->task, "image|lm", "task", 0, 0, 0},
        {"steps", SN_OPT_INT, &a->steps, "N", "steps", 1, 1e12, 0},
        {"batch-size", SN_OPT_INT, &a->batch, "B", "batch", 1, 1 << 20, 0},
        {"seed", SN_OPT_INT, &a->seed, "S", "seed", 0, 9e15, 0},
        {"warmup", SN_OPT_INT, &a->warmup, "N", "warm-up", -1, 1e12, 0},
        {"lr", SN_OPT_FLOAT, &a->lr, "X", "learning rate", 0, 10, 0},
        {"weight-decay", SN_OPT_FLOAT, &a->weight_decay, "X", "weight decay", 0, 1, 0},
        {"run-dir", SN_OPT_STR, &a->run_dir, "DIR", "run directory", 0, 0, 0},
        {"resume", SN_OPT_OPTSTR, &a->resume, "DIR|FILE", "resume", 0, 0, 0},
        {"fixed-subnet", SN_OPT_STR, &a->subnet, "STRING", "sub-network", 0, 0, 0},
        {"quiet", SN_OPT_FLAG, &a->quiet, NULL, "quiet", 0, 0, 0},
        {"no-distill", SN_OPT_FLAG, &a->no_distill, NULL, "no distillation", 0, 0, 0},
        SN_SPACE_OPTIONS(a->space),
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    _Static_assert(sizeof t / sizeof t[0] == N_OPTS + 1, "N_OPTS");
    memcpy(opts, t, sizeof t);
}

static const char *USAGE = "supernest train [options]";

/* sn_cli_parse of "supernest train [--lr 0.002] --config path". */
static int parse(const char *path, bool with_lr, train_like *a, sn_opt opts[N_OPTS + 1],
                 char *err, size_t errlen)
{
    table(a, opts);
    char *argv_lr[] = {"supernest", "train", "--lr", "0.002", "--config", (char *)path, NULL};
    char *argv_plain[] = {"supernest", "train", "--config", (char *)path, NULL};
    return sn_cli_parse("supernest train", USAGE, opts, with_lr ? 6 : 4,
                        with_lr ? argv_lr : argv_plain, 2, NULL, 0, NULL, err, errlen);
}

/* INI cannot carry a line break, or white space at either end of a value. */
static bool writable(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0) return true;
    return !strpbrk(s, "\r\n") && !isspace((unsigned char)s[0]) &&
           !isspace((unsigned char)s[n - 1]);
}

static bool same(const sn_opt *x, const sn_opt *y)
{
    switch (x->kind) {
    case SN_OPT_FLAG: return *(const bool *)x->dst == *(const bool *)y->dst;
    case SN_OPT_INT: return *(const int64_t *)x->dst == *(const int64_t *)y->dst;
    case SN_OPT_FLOAT: return *(const double *)x->dst == *(const double *)y->dst;
    case SN_OPT_STR:
    case SN_OPT_OPTSTR: {
        const char *s = *(const char *const *)x->dst, *t = *(const char *const *)y->dst;
        return s == t || (s && t && strcmp(s, t) == 0);
    }
    }
    return false;
}

/* Values after a successful parse lie in their options' ranges. */
static void check_values(const sn_opt *opts)
{
    for (const sn_opt *o = opts; o->name; o++) {
        if (o->kind == SN_OPT_INT && o->seen) {
            double x = (double)*(const int64_t *)o->dst;
            if (x < o->min || x > o->max) sn_fuzz_fail("integer option out of its range");
        }
        if (o->kind == SN_OPT_FLOAT && o->seen) {
            double x = *(const double *)o->dst;
            if (!isfinite(x) || x < o->min || x > o->max) sn_fuzz_fail("float option out of range");
        }
        if ((o->kind == SN_OPT_STR || o->kind == SN_OPT_OPTSTR) && o->seen &&
            !*(const char *const *)o->dst)
            sn_fuzz_fail("string option seen but unset");
    }
}

/* Writes the resolved configuration and reads it back. */
static void round_trip(const sn_opt *opts, bool with_lr)
{
    for (const sn_opt *o = opts; o->name; o++)
        if ((o->kind == SN_OPT_STR || o->kind == SN_OPT_OPTSTR) &&
            !writable(*(const char *const *)o->dst))
            return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    sn_cli_write_config(f, opts);
    if (fclose(f) != 0) {
        free(text);
        return;
    }
    const char *path = sn_fuzz_path("written.ini");
    sn_fuzz_write(path, (const uint8_t *)text, len);

    train_like b;
    sn_opt back[N_OPTS + 1];
    char err[1024];
    if (parse(path, with_lr, &b, back, err, sizeof err) != SN_OK) {
        fprintf(stderr, "fuzz: written configuration:\n%s\nfuzz: read back: %s\n", text, err);
        sn_fuzz_fail("the written configuration does not read back");
    }
    for (int i = 0; i < N_OPTS; i++)
        if (!same(&opts[i], &back[i])) {
            fprintf(stderr, "fuzz: option --%s\n", opts[i].name);
            sn_fuzz_fail("the written configuration reads back to another value");
        }
    char what[1024];
    int d = sn_cli_config_diff(opts, text, NULL, what, sizeof what);
    if (d != 0) {
        fprintf(stderr, "fuzz: diff %d: %s\n", d, what);
        sn_fuzz_fail("sn_cli_config_diff finds a difference with the written configuration");
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sn_fuzz_path("input.ini");
    sn_fuzz_write(path, data, size);
    bool with_lr = size % 2 == 1;

    train_like a;
    sn_opt opts[N_OPTS + 1];
    char err[1024];
    int rc = parse(path, with_lr, &a, opts, err, sizeof err);
    if (rc != SN_OK) {
        if (rc != SN_ERR) sn_fuzz_fail("sn_cli_parse returned neither SN_OK nor SN_ERR");
        sn_fuzz_check_message(err, sizeof err);
    } else {
        check_values(opts);
        if (with_lr && a.lr != 0.002) sn_fuzz_fail("the file overrode the command line");
        sn_space s;
        if (sn_space_from_flags(&a.space, &s, err, sizeof err) == SN_OK) {
            if (sn_space_validate(&s, err, sizeof err) != SN_OK)
                sn_fuzz_check_message(err, sizeof err);
        } else {
            sn_fuzz_check_message(err, sizeof err);
        }
        round_trip(opts, with_lr);
    }

    /* the input as a stored configuration (NUL ends it) */
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        char what[1024];
        table(&a, opts);
        int d = sn_cli_config_diff(opts, text, NULL, what, sizeof what);
        if (d != 0 && d != 1 && d != SN_ERR) sn_fuzz_fail("sn_cli_config_diff: odd result");
        if (d != 0) sn_fuzz_check_message(what, sizeof what);
        free(text);
    }
    sn_cli_release();
    return 0;
}
