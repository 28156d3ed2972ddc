#include "src/cli.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/util.h"

sn_opt *sn_cli_find(sn_opt *opts, const char *name)
{
    for (sn_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

static int parse_value(sn_opt *o, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case SN_OPT_INT: {
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno == ERANGE)
            return sn_errf(err, errlen, "--%s '%s': not an integer", o->name, v);
        if ((double)x < o->min || (double)x > o->max)
            return sn_errf(err, errlen, "--%s %lld: must be in %.0f..%.0f", o->name, x, o->min,
                           o->max);
        *(int64_t *)o->dst = x;
        break;
    }
    case SN_OPT_FLOAT: {
        double x = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno == ERANGE || !isfinite(x))
            return sn_errf(err, errlen, "--%s '%s': not a finite number", o->name, v);
        if (x < o->min || x > o->max)
            return sn_errf(err, errlen, "--%s %g: must be in [%g, %g]", o->name, x, o->min,
                           o->max);
        *(double *)o->dst = x;
        break;
    }
    case SN_OPT_STR:
    case SN_OPT_OPTSTR:
        if (*v == '\0') return sn_errf(err, errlen, "--%s: empty value", o->name);
        *(const char **)o->dst = v;
        break;
    case SN_OPT_FLAG:
        break;
    }
    return SN_OK;
}

/* true/false, yes/no, on/off, 1/0 (any case) into *b; false if none. */
static bool parse_bool(const char *v, bool *b)
{
    static const char *const words[][2] = {{"true", "false"}, {"yes", "no"}, {"on", "off"},
                                           {"1", "0"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        for (int k = 0; k < 2; k++)
            if (strcasecmp(v, words[i][k]) == 0) {
                *b = k == 0;
                return true;
            }
    return false;
}

/* The shortest of %.15g..%.17g that strtod reads back to x exactly. */
static void format_double(double x, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The value of o as sn_cli_write_config writes it: in buf (len >= 32) for
 * flags and numbers, o's own string for a string option; NULL when a
 * string option is unset. */
static const char *value_text(const sn_opt *o, char *buf, size_t len)
{
    switch (o->kind) {
    case SN_OPT_FLAG: return *(const bool *)o->dst ? "true" : "false";
    case SN_OPT_INT: snprintf(buf, len, "%lld", (long long)*(const int64_t *)o->dst); return buf;
    case SN_OPT_FLOAT: format_double(*(const double *)o->dst, buf, len); return buf;
    case SN_OPT_STR:
    case SN_OPT_OPTSTR: return *(const char *const *)o->dst;
    }
    return NULL;
}

/* ---- values read from --config files ------------------------------------- */

/* Copies of the file's string values, which options point to after the
 * parse; freed by sn_cli_release. */
static struct {
    char **v;
    size_t n, cap;
} kept;

static const char *keep_string(const char *s)
{
    if (kept.n == kept.cap) {
        size_t cap = kept.cap ? 2 * kept.cap : 16;
        char **v = realloc(kept.v, cap * sizeof *v);
        if (!v) return NULL;
        kept.v = v;
        kept.cap = cap;
    }
    char *copy = strdup(s);
    if (copy) kept.v[kept.n++] = copy;
    return copy;
}

void sn_cli_release(void)
{
    for (size_t i = 0; i < kept.n; i++) free(kept.v[i]);
    free(kept.v);
    kept.v = NULL;
    kept.n = kept.cap = 0;
}

/* Longest line of a config file, without its line break (a path is at
 * most 4095 bytes). */
enum { LINE_LIMIT = 16000 };

/* inih's line source: the lines of a text in memory, counted, so that a
 * key's handler knows its line (Debian's inih passes none). */
typedef struct text_reader {
    const char *p, *end;
    int line;       /* the line last handed to inih, from 1 */
    bool too_long;  /* that line is longer than LINE_LIMIT: parsing stopped */
} text_reader;

static char *read_line(char *str, int num, void *stream)
{
    text_reader *r = stream;
    if (r->p >= r->end) return NULL;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    size_t len = nl ? (size_t)(nl - r->p) + 1 : (size_t)(r->end - r->p);
    r->line++;
    if (len - (nl != NULL) > LINE_LIMIT || len + 1 > (size_t)num) {
        r->too_long = true;
        return NULL;
    }
    memcpy(str, r->p, len);
    str[len] = '\0';
    r->p += len;
    return str;
}

/* Runs inih over text with this file's rules; returns what
 * ini_parse_stream does (0, the first line in error, or -2). */
static int parse_ini(const char *text, ini_handler handler, void *user, text_reader *r)
{
    /* inih's switches (variables in Debian's build) are process-wide; only
     * this file uses inih. */
    ini_allow_multiline = false;       /* an indented line is a line of its own */
    ini_allow_inline_comments = false; /* a value may hold " ;" (a path) */
    ini_allow_no_value = false;        /* a line without '=' is an error */
    ini_stop_on_first_error = true;
    ini_use_stack = true;
    ini_max_line = LINE_LIMIT + 8;     /* room for "\r\n" and the terminator */
    *r = (text_reader){.p = text, .end = text + strlen(text)};
    return ini_parse_stream(read_line, r, handler, user);
}

/* The option name a key stands for ('_' for '-') into name; false if the
 * key is too long to be one. */
static bool key_to_name(const char *key, char *name, size_t len)
{
    size_t n = strlen(key);
    if (n >= len) return false;
    for (size_t i = 0; i <= n; i++) name[i] = key[i] == '_' ? '-' : key[i];
    return true;
}

/* Reads a whole file as text into *text (owned by the caller). */
static int read_text_file(const char *path, char **text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sn_errf(err, errlen, "--config %s: cannot open: %s", path, strerror(errno));
    const size_t max = (size_t)1 << 20;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return sn_errf(err, errlen, "out of memory");
    }
    size_t n = fread(buf, 1, max + 1, f);
    int read_errno = errno;
    bool failed = ferror(f);
    fclose(f);
    int rc = SN_OK;
    if (failed)
        rc = sn_errf(err, errlen, "--config %s: cannot read: %s", path, strerror(read_errno));
    else if (n > max)
        rc = sn_errf(err, errlen, "--config %s: larger than 1 MiB, not a config file", path);
    else if (memchr(buf, '\0', n))
        rc = sn_errf(err, errlen, "--config %s: not a text file", path);
    if (rc != SN_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *text = buf;
    return SN_OK;
}

typedef struct config_ctx {
    sn_opt *opts;
    bool *given;             /* (number of opts) set by a key of this file */
    const char *path, *cmd, *section;
    const text_reader *r;
    int failed_line;         /* the line a key was refused at (0: none) */
    char *err;
    size_t errlen;
} config_ctx;

/* Writes "PATH:LINE: message" into c->err; returns 0 (inih's "stop"). */
__attribute__((format(printf, 2, 3))) static int config_fail(config_ctx *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->failed_line) {
        c->failed_line = c->r->line;
        sn_errf(c->err, c->errlen, "%s:%d: %s", c->path, c->r->line, msg);
    }
    return 0;
}

/* inih's handler for --config: one key of the file.  An option the
 * command line gave keeps that value; the file's is still checked. */
static int config_key(void *user, const char *section, const char *key, const char *value)
{
    config_ctx *c = user;
    if (section[0] != '\0' && strcmp(section, c->section) != 0) return 1;
    char name[64];
    if (!key_to_name(key, name, sizeof name))
        return config_fail(c, "unknown option '%.40s...' for %s", key, c->cmd);
    if (strcmp(name, "help") == 0 || strcmp(name, "config") == 0)
        return config_fail(c, "'%s' cannot be set in a config file", key);
    sn_opt *o = sn_cli_find(c->opts, name);
    if (!o) return config_fail(c, "unknown option '%s' for %s", key, c->cmd);
    size_t i = (size_t)(o - c->opts);
    if (c->given[i]) return config_fail(c, "'%s' given twice", key);
    c->given[i] = true;

    union {
        bool b;
        int64_t i;
        double d;
        const char *s;
    } scratch;
    sn_opt check = *o;
    check.dst = &scratch;
    sn_opt *to = o->seen ? &check : o;
    char msg[1024];
    if (*value == '\0') {
        if (o->kind != SN_OPT_OPTSTR) return config_fail(c, "--%s: empty value", o->name);
        *(const char **)to->dst = "";
    } else if (o->kind == SN_OPT_FLAG) {
        if (!parse_bool(value, (bool *)to->dst))
            return config_fail(c, "--%s '%s': expected true or false (or yes/no, on/off, 1/0)",
                               o->name, value);
    } else {
        const char *v = value;
        if ((o->kind == SN_OPT_STR || o->kind == SN_OPT_OPTSTR) && to == o &&
            !(v = keep_string(value)))
            return config_fail(c, "out of memory");
        if (parse_value(to, v, msg, sizeof msg) != SN_OK) return config_fail(c, "%s", msg);
    }
    if (!o->seen) o->seen = SN_SEEN_FILE;
    return 1;
}

/* Applies the options of the config file at path to the options the
 * command line left alone. */
static int apply_config(const char *cmd, sn_opt *opts, const char *path, char *err,
                        size_t errlen)
{
    char *text = NULL;
    if (read_text_file(path, &text, err, errlen) != SN_OK) return SN_ERR;
    size_t n = 0;
    while (opts[n].name) n++;
    bool *given = calloc(n + 1, sizeof *given);
    if (!given) {
        free(text);
        return sn_errf(err, errlen, "out of memory");
    }
    const char *space = strrchr(cmd, ' ');
    text_reader r;
    config_ctx c = {.opts = opts, .given = given, .path = path, .cmd = cmd,
                    .section = space ? space + 1 : cmd, .r = &r, .err = err,
                    .errlen = errlen};
    int line = parse_ini(text, config_key, &c, &r);
    int rc = SN_OK;
    if (line > 0 && line != c.failed_line)
        rc = sn_errf(err, errlen, "%s:%d: not 'name = value'", path, line);
    else if (line > 0)
        rc = SN_ERR;
    else if (r.too_long)
        rc = sn_errf(err, errlen, "%s:%d: line longer than %d characters", path, r.line,
                     LINE_LIMIT);
    else if (line < 0)
        rc = sn_errf(err, errlen, "%s: out of memory", path);
    free(given);
    free(text);
    return rc;
}

/* ---- the command line ---------------------------------------------------- */

int sn_cli_parse(const char *cmd, const char *usage, sn_opt *opts, int argc, char **argv,
                 int first, const char **pos, int max_pos, int *n_pos,
                 char *err, size_t errlen)
{
    if (n_pos) *n_pos = 0;
    const char *config = NULL;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            sn_cli_help(stdout, cmd, usage, opts);
            return 1;
        }
        /* a one-letter option may also be written with one dash: -o */
        char dashed[4];
        if (a[0] == '-' && a[1] != '-' && a[1] != '\0' && a[2] == '\0') {
            char one[2] = {a[1], '\0'};
            if (sn_cli_find(opts, one)) {
                snprintf(dashed, sizeof dashed, "--%c", a[1]);
                a = dashed;
            }
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!pos || !n_pos || *n_pos >= max_pos)
                return sn_errf(err, errlen, "unexpected argument '%s' (see %s --help)", a,
                               cmd);
            pos[(*n_pos)++] = a;
            continue;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name)
            return sn_errf(err, errlen, "unknown option '%.40s...' (see %s --help)", a, cmd);
        memcpy(name, a + 2, len);
        name[len] = '\0';
        if (strcmp(name, "config") == 0) {
            if (!eq && i + 1 >= argc) return sn_errf(err, errlen, "--config: missing value");
            const char *v = eq ? eq + 1 : argv[++i];
            if (config) return sn_errf(err, errlen, "--config given twice (one file at most)");
            if (*v == '\0') return sn_errf(err, errlen, "--config: empty value");
            config = v;
            continue;
        }
        sn_opt *o = sn_cli_find(opts, name);
        if (!o) return sn_errf(err, errlen, "unknown option '--%s' (see %s --help)", name, cmd);
        if (o->kind == SN_OPT_FLAG) {
            if (eq) return sn_errf(err, errlen, "--%s takes no value", name);
            *(bool *)o->dst = true;
        } else {
            const char *v;
            if (eq) {
                v = eq + 1;
            } else if (o->kind == SN_OPT_OPTSTR &&
                       (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                *(const char **)o->dst = "";
                o->seen = SN_SEEN_ARGV;
                continue;
            } else {
                if (i + 1 >= argc) return sn_errf(err, errlen, "--%s: missing value", name);
                v = argv[++i];
            }
            if (parse_value(o, v, err, errlen) != SN_OK) return SN_ERR;
        }
        o->seen = SN_SEEN_ARGV;
    }
    /* the file fills what the command line left: the command line wins
     * wherever --config stands on it */
    return config ? apply_config(cmd, opts, config, err, errlen) : SN_OK;
}

void sn_cli_help(FILE *f, const char *cmd, const char *usage, const sn_opt *opts)
{
    fprintf(f, "usage: %s\n\noptions:\n", usage);
    for (const sn_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s", o->name[1] ? "--" : "-", o->name,
                 o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-26s %s", left, o->help);
        char buf[64];
        const char *v = value_text(o, buf, sizeof buf);
        if (o->kind != SN_OPT_FLAG && v) fprintf(f, " [%s]", v);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-26s %s\n", "--config FILE",
            "read options from an INI file (the command line wins)");
    fprintf(f, "  %-26s %s\n", "--help", "show this help and exit");
    (void)cmd;
}

/* Whether o holds a default no value of o could give: an unset string, or
 * a number outside o's range (a "not given" mark such as --steps 0). */
static bool unsettable(const sn_opt *o)
{
    switch (o->kind) {
    case SN_OPT_FLAG: return false;
    case SN_OPT_INT: {
        double x = (double)*(const int64_t *)o->dst;
        return x < o->min || x > o->max;
    }
    case SN_OPT_FLOAT: {
        double x = *(const double *)o->dst;
        return x < o->min || x > o->max;
    }
    case SN_OPT_STR:
    case SN_OPT_OPTSTR: return *(const char *const *)o->dst == NULL;
    }
    return false;
}

void sn_cli_write_config(FILE *f, const sn_opt *opts)
{
    for (const sn_opt *o = opts; o->name; o++) {
        char buf[64];
        const char *v = value_text(o, buf, sizeof buf);
        if (unsettable(o))
            fprintf(f, "# %s =%s%s\n", o->name, v ? " " : "", v ? v : "");
        else if (*v == '\0')
            fprintf(f, "%s =\n", o->name);
        else
            fprintf(f, "%s = %s\n", o->name, v);
    }
}

/* ---- comparing with a stored configuration ------------------------------- */

typedef struct diff_ctx {
    const sn_opt *opts;
    const char *const *ignore;
    char *what;
    size_t whatlen;
    int differs_line;   /* the line of the first difference (0: none) */
    const text_reader *r;
} diff_ctx;

/* Whether the stored text of o's value means its value now (text that
 * was written differently, "1e-3" for 0.001, still counts as the same). */
static bool same_value(const sn_opt *o, const char *now, const char *stored)
{
    if (strcmp(now, stored) == 0) return true;
    char *end;
    errno = 0;
    switch (o->kind) {
    case SN_OPT_FLAG: {
        bool b;
        return parse_bool(stored, &b) && b == *(const bool *)o->dst;
    }
    case SN_OPT_INT: {
        long long x = strtoll(stored, &end, 10);
        return *stored && !*end && errno == 0 && x == *(const int64_t *)o->dst;
    }
    case SN_OPT_FLOAT: {
        double x = strtod(stored, &end);
        return *stored && !*end && x == *(const double *)o->dst;
    }
    case SN_OPT_STR:
    case SN_OPT_OPTSTR: return false;
    }
    return false;
}

static int diff_key(void *user, const char *section, const char *key, const char *value)
{
    diff_ctx *c = user;
    char name[64];
    if (section[0] != '\0' || !key_to_name(key, name, sizeof name)) return 1;
    const sn_opt *o = c->opts;
    while (o->name && strcmp(o->name, name) != 0) o++;
    if (!o->name) return 1;
    for (const char *const *ig = c->ignore; ig && *ig; ig++)
        if (strcmp(*ig, name) == 0) return 1;
    char buf[64];
    const char *now = unsettable(o) ? NULL : value_text(o, buf, sizeof buf);
    if (now && same_value(o, now, value)) return 1;
    snprintf(c->what, c->whatlen, "--%s was %s, now %s", name, *value ? value : "(no value)",
             !now ? "unset" : *now ? now : "(no value)");
    c->differs_line = c->r->line;
    return 0;
}

int sn_cli_config_diff(const sn_opt *opts, const char *stored, const char *const *ignore,
                       char *what, size_t whatlen)
{
    text_reader r;
    diff_ctx c = {.opts = opts, .ignore = ignore, .what = what, .whatlen = whatlen, .r = &r};
    int line = parse_ini(stored, diff_key, &c, &r);
    if (line > 0 && line == c.differs_line) return 1;
    if (line > 0)
        return sn_errf(what, whatlen, "stored configuration, line %d: not 'name = value'", line);
    if (r.too_long)
        return sn_errf(what, whatlen, "stored configuration, line %d: longer than %d characters",
                       r.line, LINE_LIMIT);
    if (line < 0) return sn_errf(what, whatlen, "out of memory");
    return 0;
}

int sn_parse_int_list(const char *what, const char *s, int *out, int max,
                      char *err, size_t errlen)
{
    int n = 0;
    const char *p = s;
    if (*p == '\0') return sn_errf(err, errlen, "%s: empty list", what);
    for (;;) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9')
            return sn_errf(err, errlen, "%s '%s': expected comma-separated positive integers",
                           what, s);
        long x = strtol(p, &end, 10);
        if (errno == ERANGE || x <= 0 || x > 1000000)
            return sn_errf(err, errlen, "%s '%s': value out of range 1..1000000", what, s);
        if (n >= max) return sn_errf(err, errlen, "%s '%s': more than %d values", what, s, max);
        out[n++] = (int)x;
        if (*end == '\0') break;
        if (*end != ',')
            return sn_errf(err, errlen, "%s '%s': expected comma-separated positive integers",
                           what, s);
        p = end + 1;
    }
    return n;
}

void sn_space_flags_default(sn_space_flags *f)
{
    static char text[5][256];
    sn_space s;
    sn_space_default(&s);
    const int *lists[5] = {s.embed, s.heads, s.mlp, s.max_depth, s.min_depth};
    const int counts[5] = {s.n_embed, s.n_heads, s.n_mlp, s.n_stages, s.n_stages};
    for (int k = 0; k < 5; k++) {
        size_t at = 0;
        text[k][0] = '\0';
        for (int i = 0; i < counts[k] && at < sizeof text[k]; i++)
            at += (size_t)snprintf(text[k] + at, sizeof text[k] - at, "%s%d", i ? "," : "",
                                   lists[k][i]);
    }
    *f = (sn_space_flags){.embed = text[0], .heads = text[1], .mlp = text[2],
                          .depths = text[3], .min_depths = text[4], .head_dim = s.head_dim,
                          .stem = "none"};
}

int sn_space_from_flags(const sn_space_flags *f, sn_space *s, char *err, size_t errlen)
{
    sn_space_default(s);
    struct {
        const char *what, *text;
        int *dst, *count, max;
    } lists[] = {
        {"--embed-choices", f->embed, s->embed, &s->n_embed, SN_MAX_CHOICES},
        {"--heads-choices", f->heads, s->heads, &s->n_heads, SN_MAX_CHOICES},
        {"--mlp-choices", f->mlp, s->mlp, &s->n_mlp, SN_MAX_CHOICES},
        {"--depths", f->depths, s->max_depth, &s->n_stages, SN_MAX_STAGES},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        int n = sn_parse_int_list(lists[i].what, lists[i].text, lists[i].dst, lists[i].max, err,
                                  errlen);
        if (n < 0) return SN_ERR;
        *lists[i].count = n;
    }
    int m = sn_parse_int_list("--min-depths", f->min_depths, s->min_depth, SN_MAX_STAGES, err,
                              errlen);
    if (m < 0) return SN_ERR;
    if (m != s->n_stages)
        return sn_errf(err, errlen, "--min-depths '%s': %d values given for %d stages (--depths)",
                       f->min_depths, m, s->n_stages);
    s->head_dim = (int)f->head_dim;
    if (strcmp(f->stem, "none") == 0) return SN_OK;
    int k = sn_parse_int_list("--stem", f->stem, s->stem, SN_MAX_STEM_CONVS, err, errlen);
    if (k < 0) return SN_ERR;
    bool ok = k >= 2;
    for (int i = 0; i < k; i++) ok = ok && s->stem[i] <= SN_MAX_STEM;
    if (!ok)
        return sn_errf(err, errlen, "--stem '%s': expected none, or two or three channel counts "
                       "C1,C2[,C3] in 1..%d", f->stem, SN_MAX_STEM);
    return SN_OK;
}
