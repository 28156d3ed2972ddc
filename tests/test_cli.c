/* test_cli.c: options from --config files (values, sections, precedence
 * over the command line, every refusal with its exact message), the
 * resolved configuration written and read back to identical values, and
 * sn_cli_config_diff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli.h"
#include "src/util.h"
#include "tests/tmpdir.h"

/* The destinations of the test table: one option of every kind. */
typedef struct args {
    bool quiet, no_distill;
    int64_t steps, batch, seed;
    double lr, min_lr, smoothing;
    const char *data, *run_dir, *resume;
} args;

enum { N_OPTS = 11 };

/* Fills opts (N_OPTS + 1 entries) with a table over a, at its defaults. */
static void make_table(args *a, sn_opt *opts)
{
    *a = (args){.steps = 0, .batch = 128, .seed = 1, .lr = 1e-3, .min_lr = 1e-5,
                .smoothing = 0.1, .data = "/usr/share/datasets/fashion-mnist"};
    const sn_opt t[N_OPTS + 1] = {
        {"quiet", SN_OPT_FLAG, &a->quiet, NULL, "quiet", 0, 0, 0},
        {"no-distill", SN_OPT_FLAG, &a->no_distill, NULL, "labels only", 0, 0, 0},
        {"steps", SN_OPT_INT, &a->steps, "N", "steps (0: not given)", 1, 1e12, 0},
        {"batch-size", SN_OPT_INT, &a->batch, "B", "batch", 1, 4096, 0},
        {"seed", SN_OPT_INT, &a->seed, "S", "seed", 0, 9.2e18, 0},
        {"lr", SN_OPT_FLOAT, &a->lr, "X", "learning rate", 1e-9, 10, 0},
        {"min-lr", SN_OPT_FLOAT, &a->min_lr, "X", "final learning rate", 0, 10, 0},
        {"label-smoothing", SN_OPT_FLOAT, &a->smoothing, "X", "smoothing", 0, 0.999, 0},
        {"data", SN_OPT_STR, &a->data, "DIR", "data", 0, 0, 0},
        {"run-dir", SN_OPT_STR, &a->run_dir, "DIR", "run directory", 0, 0, 0},
        {"resume", SN_OPT_OPTSTR, &a->resume, "[DIR]", "resume", 0, 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    memcpy(opts, t, sizeof t);
}

static char err[2048];

/* Parses "supernest <word> ARGS..." (NULL-terminated) into opts. */
static int parse_v(const char *cmd, sn_opt *opts, va_list ap)
{
    char *argv[32] = {"supernest", "train"};
    int argc = 2;
    for (const char *s; (s = va_arg(ap, const char *));) {
        assert_true(argc < 32);
        argv[argc++] = (char *)s;
    }
    err[0] = '\0';
    return sn_cli_parse(cmd, "test", opts, argc, argv, 2, NULL, 0, NULL, err, sizeof err);
}

static int parse(sn_opt *opts, ...)
{
    va_list ap;
    va_start(ap, opts);
    int rc = parse_v("supernest train", opts, ap);
    va_end(ap);
    return rc;
}

static int parse_cmd(const char *cmd, sn_opt *opts, ...)
{
    va_list ap;
    va_start(ap, opts);
    int rc = parse_v(cmd, opts, ap);
    va_end(ap);
    return rc;
}

/* Writes text to tmpdir/name; the path in a static buffer of 4 (so a
 * test can hold a few at once). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* The message sn_cli_parse must give for a file's line. */
static const char *at(const char *path, int line, const char *msg)
{
    static char want[1024];
    snprintf(want, sizeof want, "%s:%d: %s", path, line, msg);
    return want;
}

static bool seen(sn_opt *opts, const char *name) { return sn_cli_find(opts, name)->seen; }

static int group_setup(void **state)
{
    (void)state;
    return tmpdir_create("test_cli");
}

static int group_teardown(void **state)
{
    (void)state;
    sn_cli_release();
    return tmpdir_remove();
}

/* ---- values from the file ------------------------------------------------- */

static void test_file_values(void **state)
{
    (void)state;
    const char *p = write_file("values.ini", "# a comment\n"
                                             "; another\n"
                                             "steps = 40\n"
                                             "\n"
                                             "[train]\n"
                                             "lr = 0.002\n"
                                             "  data =  /srv/data dir ; not a comment  \n"
                                             "quiet = yes\n");
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
    assert_int_equal(a.steps, 40);
    assert_true(a.lr == 0.002);
    assert_string_equal(a.data, "/srv/data dir ; not a comment");
    assert_true(a.quiet);
    assert_true(seen(opts, "steps") && seen(opts, "lr") && seen(opts, "data") &&
                seen(opts, "quiet"));
    /* the rest untouched and not given */
    assert_int_equal(a.batch, 128);
    assert_true(a.min_lr == 1e-5);
    assert_null(a.run_dir);
    assert_false(a.no_distill);
    assert_false(seen(opts, "batch-size") || seen(opts, "min-lr") || seen(opts, "run-dir") ||
                 seen(opts, "no-distill") || seen(opts, "resume"));
}

/* String values stay valid after the parse, the file gone. */
static void test_strings_outlive_file(void **state)
{
    (void)state;
    const char *p = write_file("strings.ini", "run-dir = runs/kept\ndata = /d\n");
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
    assert_int_equal(remove(p), 0);
    /* the file's text (1 MiB, so mmap'd) is unmapped by now: a pointer
     * into it would crash here */
    assert_string_equal(a.run_dir, "runs/kept");
    assert_string_equal(a.data, "/d");
}

static void test_underscores(void **state)
{
    (void)state;
    const char *p = write_file("underscores.ini", "batch_size = 7\nmin_lr = 0\nno_distill = on\n"
                                                  "label_smoothing = 0.25\n");
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
    assert_int_equal(a.batch, 7);
    assert_true(a.min_lr == 0.0);
    assert_true(a.no_distill);
    assert_true(a.smoothing == 0.25);
    assert_true(seen(opts, "batch-size") && seen(opts, "min-lr"));
}

/* ---- the command line wins ------------------------------------------------- */

static void test_command_line_wins(void **state)
{
    (void)state;
    const char *p = write_file("wins.ini", "lr = 0.5\nsteps = 9\ndata = /from/file\n"
                                           "resume = runs/file\n");
    char eq[600];
    snprintf(eq, sizeof eq, "--config=%s", p);
    for (int order = 0; order < 3; order++) {
        args a;
        sn_opt opts[N_OPTS + 1];
        make_table(&a, opts);
        int rc = order == 0   ? parse(opts, "--config", p, "--lr", "0.25", "--data", "/cli", NULL)
                 : order == 1 ? parse(opts, "--lr", "0.25", "--data", "/cli", "--config", p, NULL)
                              : parse(opts, "--lr", "0.25", eq, "--data", "/cli", NULL);
        assert_int_equal(rc, SN_OK);
        assert_true(a.lr == 0.25);
        assert_string_equal(a.data, "/cli");
        assert_int_equal(a.steps, 9); /* the file fills the rest */
        assert_string_equal(a.resume, "runs/file");
    }
    /* an option given without a value on the command line wins as well */
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", p, "--resume", NULL), SN_OK);
    assert_string_equal(a.resume, "");
}

/* ---- sections ---------------------------------------------------------------- */

static void test_sections(void **state)
{
    (void)state;
    const char *p = write_file("sections.ini", "seed = 5\n"
                                               "[train]\n"
                                               "lr = 0.1\n"
                                               "[search]\n"
                                               "lr = 0.2\n"
                                               "steps = 11\n"
                                               "[latency-table]\n"
                                               "batch-size = 3\n"
                                               "[run]\n"
                                               "threads = 2\n"
                                               "blis_kernels = skx\n"
                                               "lr = not even a number\n");
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse_cmd("supernest train", opts, "--config", p, NULL), SN_OK);
    assert_true(a.lr == 0.1);
    assert_int_equal(a.seed, 5);
    assert_int_equal(a.steps, 0);
    assert_int_equal(a.batch, 128);

    make_table(&a, opts);
    assert_int_equal(parse_cmd("supernest search", opts, "--config", p, NULL), SN_OK);
    assert_true(a.lr == 0.2);
    assert_int_equal(a.seed, 5);
    assert_int_equal(a.steps, 11);

    make_table(&a, opts);
    assert_int_equal(parse_cmd("supernest latency-table", opts, "--config", p, NULL), SN_OK);
    assert_true(a.lr == 1e-3);
    assert_int_equal(a.seed, 5);
    assert_int_equal(a.batch, 3);
}

/* ---- flags and options whose value may be omitted ---------------------------- */

static void test_flags(void **state)
{
    (void)state;
    const char *words[][2] = {{"true", "false"}, {"yes", "no"}, {"on", "off"},
                              {"1", "0"},        {"TRUE", "No"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "quiet = %s\nno-distill = %s\n", words[i][0], words[i][1]);
        const char *p = write_file("flags.ini", text);
        args a;
        sn_opt opts[N_OPTS + 1];
        make_table(&a, opts);
        a.no_distill = true; /* a default of true set false by the file */
        assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
        assert_true(a.quiet);
        assert_false(a.no_distill);
        assert_true(seen(opts, "quiet") && seen(opts, "no-distill"));
    }
    /* the command line turns a flag on that the file turned off */
    const char *p = write_file("flags.ini", "quiet = false\n");
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--quiet", "--config", p, NULL), SN_OK);
    assert_true(a.quiet);
}

static void test_optstr(void **state)
{
    (void)state;
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    const char *p = write_file("optstr.ini", "resume =\n");
    assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
    assert_non_null(a.resume);
    assert_string_equal(a.resume, "");
    assert_true(seen(opts, "resume"));

    make_table(&a, opts);
    p = write_file("optstr.ini", "resume = runs/a\n");
    assert_int_equal(parse(opts, "--config", p, NULL), SN_OK);
    assert_string_equal(a.resume, "runs/a");
}

/* ---- refusals, each one line naming the file and line ---------------------- */

static void expect_file_error(const char *text, const char *cmd_line_opt, const char *val,
                              int line, const char *msg)
{
    const char *p = write_file("bad.ini", text);
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    int rc = cmd_line_opt ? parse(opts, cmd_line_opt, val, "--config", p, NULL)
                          : parse(opts, "--config", p, NULL);
    assert_int_equal(rc, SN_ERR);
    assert_string_equal(err, at(p, line, msg));
}

static void test_errors(void **state)
{
    (void)state;
    expect_file_error("lr = 0.1\n\nlrr = 2\n", NULL, NULL, 3,
                      "unknown option 'lrr' for supernest train");
    expect_file_error("[train]\nsteps = 1\n\n\n\n\nlr = abc\n", NULL, NULL, 7,
                      "--lr 'abc': not a finite number");
    expect_file_error("steps = 1\n[train]\nbatch-size = 0\n", NULL, NULL, 3,
                      "--batch-size 0: must be in 1..4096");
    expect_file_error("seed = 2\n[train]\nlr = 0.1\nlr = 0.2\n", NULL, NULL, 4,
                      "'lr' given twice");
    expect_file_error("batch_size = 2\nbatch-size = 3\n", NULL, NULL, 2,
                      "'batch-size' given twice");
    expect_file_error("steps = 1\n\n\n\nthis line has no equals sign\n", NULL, NULL, 5,
                      "not 'name = value'");
    expect_file_error("[train\nsteps = 1\n", NULL, NULL, 1, "not 'name = value'");
    expect_file_error("steps =\n", NULL, NULL, 1, "--steps: empty value");
    expect_file_error("lr =\n", NULL, NULL, 1, "--lr: empty value");
    expect_file_error("data =\n", NULL, NULL, 1, "--data: empty value");
    expect_file_error("quiet =\n", NULL, NULL, 1, "--quiet: empty value");
    expect_file_error("quiet = maybe\n", NULL, NULL, 1,
                      "--quiet 'maybe': expected true or false (or yes/no, on/off, 1/0)");
    expect_file_error("help = true\n", NULL, NULL, 1, "'help' cannot be set in a config file");
    expect_file_error("steps = 1\nconfig = other.ini\n", NULL, NULL, 2,
                      "'config' cannot be set in a config file");
    /* a value the command line overrides is still checked */
    expect_file_error("lr = abc\n", "--lr", "0.1", 1, "--lr 'abc': not a finite number");
    /* the first problem is reported, whichever kind it is */
    expect_file_error("steps = 1\nno equals here\nlrr = 1\n", NULL, NULL, 2,
                      "not 'name = value'");
    expect_file_error("lrr = 1\nno equals here\n", NULL, NULL, 1,
                      "unknown option 'lrr' for supernest train");

    /* a line too long to be a config line */
    size_t n = 20000;
    char *text = malloc(n + 32);
    assert_non_null(text);
    strcpy(text, "steps = 1\ndata = ");
    size_t at_ = strlen(text);
    memset(text + at_, 'd', n);
    strcpy(text + at_ + n, "\n");
    expect_file_error(text, NULL, NULL, 2, "line longer than 16000 characters");
    free(text);

    args a;
    sn_opt opts[N_OPTS + 1];
    char want[1024];

    /* a file that is not there */
    make_table(&a, opts);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.ini", tmpdir);
    assert_int_equal(parse(opts, "--config", missing, NULL), SN_ERR);
    snprintf(want, sizeof want, "--config %s: cannot open: No such file or directory", missing);
    assert_string_equal(err, want);

    /* a directory, and binary data */
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", tmpdir, NULL), SN_ERR);
    snprintf(want, sizeof want, "--config %s: cannot read: Is a directory", tmpdir);
    assert_string_equal(err, want);
    const char *bin = write_file("binary.ini", "steps = 1\n");
    FILE *f = fopen(bin, "ab");
    assert_non_null(f);
    fputc('\0', f);
    assert_int_equal(fclose(f), 0);
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", bin, NULL), SN_ERR);
    snprintf(want, sizeof want, "--config %s: not a text file", bin);
    assert_string_equal(err, want);

    /* --config on the command line */
    const char *good = write_file("good.ini", "steps = 1\n");
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", good, "--config", good, NULL), SN_ERR);
    assert_string_equal(err, "--config given twice (one file at most)");
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", NULL), SN_ERR);
    assert_string_equal(err, "--config: missing value");
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config=", NULL), SN_ERR);
    assert_string_equal(err, "--config: empty value");

    /* --help answers without reading the file */
    make_table(&a, opts);
    assert_int_equal(parse(opts, "--config", missing, "--help", NULL), 1);
}

/* ---- the resolved configuration read back ----------------------------------- */

/* Writes opts' configuration to tmpdir/name; the text in *text (owned). */
static const char *write_config(const char *name, const sn_opt *opts, char **text)
{
    size_t len;
    FILE *mem = open_memstream(text, &len);
    assert_non_null(mem);
    sn_cli_write_config(mem, opts);
    assert_int_equal(fclose(mem), 0);
    return write_file(name, *text);
}

static bool same_double(double x, double y) { return memcmp(&x, &y, sizeof x) == 0; }

static void test_round_trip(void **state)
{
    (void)state;
    static const double lrs[] = {0.1, 1e-5, 1.0 / 3.0, 0.002, 1e-9, 9.999999999999998,
                                 0.30000000000000004, 2.5e-7};
    for (size_t k = 0; k < sizeof lrs / sizeof lrs[0]; k++) {
        args a;
        sn_opt opts[N_OPTS + 1];
        make_table(&a, opts);
        a.quiet = true;
        a.no_distill = false;
        a.steps = 1000000000000;
        a.seed = 9000000000000000000;
        a.lr = lrs[k];
        a.min_lr = lrs[(k + 3) % 8] / 7.0;
        a.smoothing = 0.0;
        a.data = "/data/with spaces; and = signs # and hashes";
        a.run_dir = NULL;
        a.resume = k % 2 ? "" : "runs/x";
        char *text;
        const char *p = write_config("round.ini", opts, &text);
        assert_non_null(strstr(text, "# run-dir =\n"));
        assert_non_null(strstr(text, k % 2 ? "\nresume =\n" : "\nresume = runs/x\n"));
        assert_non_null(strstr(text, "quiet = true\nno-distill = false\n"));

        args b;
        sn_opt back[N_OPTS + 1];
        make_table(&b, back);
        b.quiet = false;
        b.no_distill = true;
        assert_int_equal(parse(back, "--config", p, NULL), SN_OK);
        assert_true(b.quiet == a.quiet && b.no_distill == a.no_distill);
        assert_int_equal(b.steps, a.steps);
        assert_int_equal(b.batch, a.batch);
        assert_int_equal(b.seed, a.seed);
        if (!same_double(b.lr, a.lr) || !same_double(b.min_lr, a.min_lr) ||
            !same_double(b.smoothing, a.smoothing))
            fail_msg("lr %.17g min_lr %.17g read back as %.17g %.17g from:\n%s", a.lr, a.min_lr,
                     b.lr, b.min_lr, text);
        assert_string_equal(b.data, a.data);
        assert_null(b.run_dir);
        assert_false(seen(back, "run-dir"));
        assert_string_equal(b.resume, a.resume);
        for (int i = 0; i < N_OPTS; i++)
            if (strcmp(back[i].name, "run-dir") != 0) assert_true(back[i].seen);

        /* and the text is what it was: nothing drifts */
        char *again;
        write_config("round2.ini", back, &again);
        assert_string_equal(again, text);
        assert_int_equal(sn_cli_config_diff(back, text, NULL, err, sizeof err), 0);
        free(again);
        free(text);
    }

    /* the defaults: short numbers stay short; a "not given" mark outside
     * the option's range is a comment, and reads back as not given */
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    char *text;
    const char *p = write_config("short.ini", opts, &text);
    assert_non_null(strstr(text, "lr = 0.001\nmin-lr = 1e-05\nlabel-smoothing = 0.1\n"));
    assert_non_null(strstr(text, "\n# steps = 0\n"));
    args b;
    sn_opt back[N_OPTS + 1];
    make_table(&b, back);
    assert_int_equal(parse(back, "--config", p, NULL), SN_OK);
    assert_int_equal(b.steps, 0);
    assert_false(seen(back, "steps"));
    assert_true(seen(back, "batch-size"));
    assert_int_equal(sn_cli_config_diff(back, text, NULL, err, sizeof err), 0);
    free(text);
}

/* ---- comparing with a stored configuration ----------------------------------- */

static void test_config_diff(void **state)
{
    (void)state;
    args a;
    sn_opt opts[N_OPTS + 1];
    make_table(&a, opts);
    a.run_dir = "runs/a";
    char *stored;
    size_t len;
    FILE *mem = open_memstream(&stored, &len);
    assert_non_null(mem);
    fprintf(mem, "# supernest train: resolved options\n");
    sn_cli_write_config(mem, opts);
    fprintf(mem, "\n[run]\nthreads = 2\nlr = 5\nblis_kernels = skx\n");
    assert_int_equal(fclose(mem), 0);

    char what[256] = "";
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 0);

    a.lr = 0.002;
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--lr was 0.001, now 0.002");
    const char *const ignore_lr[] = {"steps", "lr", NULL};
    assert_int_equal(sn_cli_config_diff(opts, stored, ignore_lr, what, sizeof what), 0);

    /* the first difference in the stored order */
    a.seed = 7;
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--seed was 1, now 7");
    a.seed = 1;
    a.lr = 1e-3;

    a.quiet = true;
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--quiet was false, now true");
    a.quiet = false;

    a.run_dir = NULL;
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--run-dir was runs/a, now unset");
    a.run_dir = "runs/a";
    a.steps = 0; /* stored given, not given now (its "not given" mark) */
    const char *steps = "steps = 50\n";
    assert_int_equal(sn_cli_config_diff(opts, steps, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--steps was 50, now unset");

    /* an option stored unset (a comment) is no difference when set now */
    a.resume = "";
    assert_int_equal(sn_cli_config_diff(opts, stored, NULL, what, sizeof what), 0);
    a.resume = NULL;

    /* absent options, unknown names, underscores, other spellings of a value */
    const char *hand = "lr = 1e-3\nbatch_size = 128\nno-distill = no\nthreads = 4\n"
                       "[train]\nlr = 0.5\n";
    assert_int_equal(sn_cli_config_diff(opts, hand, NULL, what, sizeof what), 0);
    a.batch = 64;
    assert_int_equal(sn_cli_config_diff(opts, hand, NULL, what, sizeof what), 1);
    assert_string_equal(what, "--batch-size was 128, now 64");
    a.batch = 128;

    assert_int_equal(sn_cli_config_diff(opts, "lr = 0.001\nbroken line\n", NULL, what,
                                        sizeof what),
                     SN_ERR);
    assert_string_equal(what, "stored configuration, line 2: not 'name = value'");
    free(stored);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_strings_outlive_file),
        cmocka_unit_test(test_underscores),
        cmocka_unit_test(test_command_line_wins),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_optstr),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_config_diff),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
