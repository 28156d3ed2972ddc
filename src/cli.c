#include "src/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int sn_cli_parse(const char *cmd, const char *usage, sn_opt *opts, int argc, char **argv,
                 int first, const char **pos, int max_pos, int *n_pos,
                 char *err, size_t errlen)
{
    if (n_pos) *n_pos = 0;
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
                o->seen = true;
                continue;
            } else {
                if (i + 1 >= argc) return sn_errf(err, errlen, "--%s: missing value", name);
                v = argv[++i];
            }
            if (parse_value(o, v, err, errlen) != SN_OK) return SN_ERR;
        }
        o->seen = true;
    }
    return SN_OK;
}

static void print_value(FILE *f, const sn_opt *o)
{
    switch (o->kind) {
    case SN_OPT_FLAG: fprintf(f, "%s", *(bool *)o->dst ? "true" : "false"); break;
    case SN_OPT_INT: fprintf(f, "%lld", (long long)*(int64_t *)o->dst); break;
    case SN_OPT_FLOAT: fprintf(f, "%.9g", *(double *)o->dst); break;
    case SN_OPT_STR:
    case SN_OPT_OPTSTR: {
        const char *s = *(const char **)o->dst;
        fprintf(f, "%s", s ? s : "");
        break;
    }
    }
}

void sn_cli_help(FILE *f, const char *cmd, const char *usage, const sn_opt *opts)
{
    fprintf(f, "usage: %s\n\noptions:\n", usage);
    for (const sn_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s", o->name[1] ? "--" : "-", o->name,
                 o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-26s %s", left, o->help);
        if (o->kind != SN_OPT_FLAG) {
            bool is_str = o->kind == SN_OPT_STR || o->kind == SN_OPT_OPTSTR;
            bool has_default = !is_str || *(const char **)o->dst != NULL;
            if (has_default) {
                fprintf(f, " [");
                print_value(f, o);
                fprintf(f, "]");
            }
        }
        fprintf(f, "\n");
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help and exit");
    (void)cmd;
}

void sn_cli_write_config(FILE *f, const sn_opt *opts)
{
    for (const sn_opt *o = opts; o->name; o++) {
        fprintf(f, "%s = ", o->name);
        print_value(f, o);
        fprintf(f, "\n");
    }
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
                          .depths = text[3], .min_depths = text[4], .head_dim = s.head_dim};
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
    return SN_OK;
}
