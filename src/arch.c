#include "src/arch.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "src/util.h"

#define SUBNET_FORMAT "e<embed>-d<depths>-h<heads>-f<mlp>"

/* ------------------------------------------------------------------------
 * The search space
 * ------------------------------------------------------------------------ */

void sn_space_default(sn_space *s)
{
    static const int embed[] = {64, 96, 128, 160, 192};
    static const int heads[] = {1, 2, 3};

    memset(s, 0, sizeof *s);
    s->n_embed = (int)(sizeof embed / sizeof embed[0]);
    memcpy(s->embed, embed, sizeof embed);
    s->n_heads = (int)(sizeof heads / sizeof heads[0]);
    memcpy(s->heads, heads, sizeof heads);
    s->n_mlp = 8;
    for (int i = 0; i < s->n_mlp; i++) s->mlp[i] = 96 * (i + 1);
    s->n_stages = 2;
    for (int st = 0; st < s->n_stages; st++) {
        s->min_depth[st] = 1;
        s->max_depth[st] = 3;
    }
    s->head_dim = 64;
    s->n_tokens = 49;
    s->token_dim = 16;
    s->n_classes = 10;
}

static int check_choices(const char *name, int n, const int *v, char *err, size_t errlen)
{
    if (n < 1 || n > SN_MAX_CHOICES)
        return sn_errf(err, errlen, "search space: %s has %d choices, expected 1..%d",
                       name, n, SN_MAX_CHOICES);
    for (int i = 0; i < n; i++) {
        if (v[i] <= 0)
            return sn_errf(err, errlen, "search space: %s choice %d is %d, must be positive",
                           name, i, v[i]);
        if (i > 0 && v[i] <= v[i - 1])
            return sn_errf(err, errlen,
                           "search space: %s choices must be strictly ascending, got %d after %d",
                           name, v[i], v[i - 1]);
    }
    return SN_OK;
}

static int check_positive(const char *name, int v, char *err, size_t errlen)
{
    if (v <= 0) return sn_errf(err, errlen, "search space: %s is %d, must be positive", name, v);
    return SN_OK;
}

int sn_space_validate(const sn_space *s, char *err, size_t errlen)
{
    if (check_choices("embed", s->n_embed, s->embed, err, errlen) ||
        check_choices("heads", s->n_heads, s->heads, err, errlen) ||
        check_choices("mlp", s->n_mlp, s->mlp, err, errlen))
        return SN_ERR;
    if (s->n_stages < 1 || s->n_stages > SN_MAX_STAGES)
        return sn_errf(err, errlen, "search space: n_stages %d is out of range 1..%d",
                       s->n_stages, SN_MAX_STAGES);
    int total = 0;
    for (int st = 0; st < s->n_stages; st++) {
        if (s->min_depth[st] < 1)
            return sn_errf(err, errlen, "search space: stage %d min_depth %d must be >= 1",
                           st, s->min_depth[st]);
        if (s->max_depth[st] < s->min_depth[st])
            return sn_errf(err, errlen,
                           "search space: stage %d max_depth %d is below min_depth %d",
                           st, s->max_depth[st], s->min_depth[st]);
        if (s->max_depth[st] > SN_MAX_BLOCKS - total)
            return sn_errf(err, errlen,
                           "search space: more than %d blocks in total (sum of max_depth)",
                           SN_MAX_BLOCKS);
        total += s->max_depth[st];
    }
    if (check_positive("head_dim", s->head_dim, err, errlen) ||
        check_positive("n_tokens", s->n_tokens, err, errlen) ||
        check_positive("token_dim", s->token_dim, err, errlen) ||
        check_positive("n_classes", s->n_classes, err, errlen))
        return SN_ERR;
    const int n = sn_stem_convs(s);
    bool zeros = true;
    for (int k = 0; k < SN_MAX_STEM_CONVS; k++) zeros = zeros && s->stem[k] == 0;
    if (zeros) return SN_OK;
    bool ok = n >= 2 && s->stem[0] <= SN_MAX_STEM && s->stem[1] <= SN_MAX_STEM;
    for (int k = 2; k < SN_MAX_STEM_CONVS; k++)
        ok = ok && (k < n ? s->stem[k] <= SN_MAX_STEM : s->stem[k] == 0);
    if (!ok)
        return sn_errf(err, errlen, "search space: stem channels %d,%d,%d: expected two or three "
                       "channel counts in 1..%d, zeros after the last (or all 0: no stem)",
                       s->stem[0], s->stem[1], s->stem[2], SN_MAX_STEM);
    if (s->task != SN_TASK_IMAGE)
        return sn_errf(err, errlen, "search space: a convolutional stem needs the image task");
    const int64_t g = sn_stem_grid(s), c = s->stem[n - 1];
    if (g < 1)
        return sn_errf(err, errlen, "search space: token_dim %d is not the (p+%d)^2 window of a "
                       "patch size p that is a multiple of %d, which a stem of %d convolutions "
                       "takes", s->token_dim, (1 << (n - 1)) + 1, 1 << (n - 1), n);
    if (g * g * c > SN_MAX_EMBED_IN)
        return sn_errf(err, errlen, "search space: the stem gives %lld values per token (%lld x "
                       "%lld outputs of %lld channels), more than %d",
                       (long long)(g * g * c), (long long)g, (long long)g, (long long)c,
                       SN_MAX_EMBED_IN);
    return SN_OK;
}

int sn_stem_patch_check(int p, int convs, char *err, size_t errlen)
{
    const int step = convs > 0 ? 1 << (convs - 1) : 1;
    if (p % step != 0)
        return sn_errf(err, errlen, "patch size %d is not a multiple of %d, which a convolutional "
                       "stem of %d convolutions (the later ones of stride 2) needs", p, step,
                       convs);
    return SN_OK;
}

void sn_stem_format(const sn_space *s, char *buf, size_t len)
{
    size_t at = 0;
    snprintf(buf, len, "none");
    for (int k = 0; k < sn_stem_convs(s) && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", k ? "," : "", s->stem[k]);
}

int64_t sn_stem_params(const sn_space *s)
{
    int64_t total = 0;
    for (int k = 0, in = 1; k < sn_stem_convs(s); in = s->stem[k++])
        total += (int64_t)s->stem[k] * 9 * in + s->stem[k];
    return total;
}

int sn_stem_grid(const sn_space *s)
{
    const int n = sn_stem_convs(s);
    if (n == 0) return 0;
    const int64_t step = (int64_t)1 << (n - 1);
    int64_t w = 0;
    while ((w + 1) * (w + 1) <= s->token_dim) w++;
    const int64_t p = w - step - 1;
    if (w * w != s->token_dim || p < step || p % step) return 0;
    return (int)(p / step);
}

int sn_stem_sides(const sn_space *s, int64_t side[SN_MAX_STEM_CONVS])
{
    const int n = sn_stem_convs(s);
    if (n == 0) return 0;
    side[n - 1] = sn_stem_grid(s);
    for (int k = n - 1; k > 0; k--) side[k - 1] = 2 * side[k] + 1;
    return n;
}

int sn_space_embed_in(const sn_space *s)
{
    if (!sn_space_has_stem(s)) return s->token_dim;
    const int g = sn_stem_grid(s);
    return g * g * s->stem[sn_stem_convs(s) - 1];
}

int sn_space_max_blocks(const sn_space *s)
{
    int total = 0;
    for (int st = 0; st < s->n_stages; st++) total += s->max_depth[st];
    return total;
}

int sn_space_stage_offset(const sn_space *s, int stage)
{
    SN_CHECK(stage >= 0 && stage < s->n_stages);
    int off = 0;
    for (int st = 0; st < stage; st++) off += s->max_depth[st];
    return off;
}

/* n_embed * prod over stages of sum_{d=min..max} B^d, B = n_heads * n_mlp
 * choices per kept block. */
double sn_space_count(const sn_space *s)
{
    double per_block = (double)s->n_heads * (double)s->n_mlp;
    double total = (double)s->n_embed;
    for (int st = 0; st < s->n_stages; st++) {
        double stage = 0.0, pow_d = 1.0;
        for (int d = 1; d <= s->max_depth[st]; d++) {
            pow_d *= per_block;
            if (d >= s->min_depth[st]) stage += pow_d;
        }
        total *= stage;
    }
    return total;
}

/* ------------------------------------------------------------------------
 * Sub-networks
 * ------------------------------------------------------------------------ */

/* The smallest choice of the dimensions in `small` (SN_DIM_* bits), the
 * largest of the others. */
static void subnet_fill(const sn_space *s, unsigned small, sn_subnet *out)
{
    memset(out, 0, sizeof *out);
    out->embed = small & SN_DIM_EMBED ? s->embed[0] : s->embed[s->n_embed - 1];
    out->n_stages = s->n_stages;
    for (int st = 0; st < s->n_stages; st++) {
        out->depth[st] = small & SN_DIM_DEPTH ? s->min_depth[st] : s->max_depth[st];
        out->n_blocks += out->depth[st];
    }
    for (int i = 0; i < out->n_blocks; i++) {
        out->heads[i] = small & SN_DIM_HEADS ? s->heads[0] : s->heads[s->n_heads - 1];
        out->mlp[i] = small & SN_DIM_MLP ? s->mlp[0] : s->mlp[s->n_mlp - 1];
    }
}

void sn_subnet_max(const sn_space *s, sn_subnet *out) { subnet_fill(s, 0, out); }

void sn_subnet_min(const sn_space *s, sn_subnet *out) { subnet_fill(s, SN_DIM_ALL, out); }

void sn_subnet_min_dims(const sn_space *s, unsigned open, sn_subnet *out)
{
    subnet_fill(s, open & SN_DIM_ALL, out);
}

static int pick(sn_rng *r, int n, const int *v) { return v[sn_rng_below(r, (uint64_t)n)]; }

/* Draw order, fixed so that a seed names the same sub-network forever:
 * the embed width; then each stage's depth, stage 0 first; then, for each
 * kept block in order, its heads and then its MLP width.  One
 * sn_rng_below call per draw of an open dimension; a closed one draws
 * nothing. */
void sn_subnet_sample_dims(const sn_space *s, unsigned open, sn_rng *r, sn_subnet *out)
{
    memset(out, 0, sizeof *out);
    out->embed = open & SN_DIM_EMBED ? pick(r, s->n_embed, s->embed) : s->embed[s->n_embed - 1];
    out->n_stages = s->n_stages;
    for (int st = 0; st < s->n_stages; st++) {
        int span = s->max_depth[st] - s->min_depth[st] + 1;
        out->depth[st] = open & SN_DIM_DEPTH
                             ? s->min_depth[st] + (int)sn_rng_below(r, (uint64_t)span)
                             : s->max_depth[st];
        out->n_blocks += out->depth[st];
    }
    for (int i = 0; i < out->n_blocks; i++) {
        out->heads[i] = open & SN_DIM_HEADS ? pick(r, s->n_heads, s->heads)
                                            : s->heads[s->n_heads - 1];
        out->mlp[i] = open & SN_DIM_MLP ? pick(r, s->n_mlp, s->mlp) : s->mlp[s->n_mlp - 1];
    }
}

void sn_subnet_sample(const sn_space *s, sn_rng *r, sn_subnet *out)
{
    sn_subnet_sample_dims(s, SN_DIM_ALL, r, out);
}

/* The first depth[st] blocks of every stage are kept, so the i-th kept
 * block is at stage offset + its position inside the stage.  n must be
 * valid in s. */
int sn_subnet_block(const sn_space *s, const sn_subnet *n, int i)
{
    SN_CHECK(i >= 0 && i < n->n_blocks);
    int off = 0;
    for (int st = 0; st < n->n_stages; st++) {
        if (i < n->depth[st]) return off + i;
        i -= n->depth[st];
        off += s->max_depth[st];
    }
    sn_fatal(__FILE__, __LINE__, "check failed: sub-network n_blocks exceeds its depths");
}

/* ------------------------------------------------------------------------
 * Canonical string
 * ------------------------------------------------------------------------ */

/* Appends prefix and v to buf[*pos..len); false once the text no longer
 * fits. */
static bool append(char *buf, size_t len, size_t *pos, const char *prefix, int v)
{
    int k = snprintf(buf + *pos, len - *pos, "%s%d", prefix, v);
    if (k < 0 || (size_t)k >= len - *pos) return false;
    *pos += (size_t)k;
    return true;
}

static bool append_list(char *buf, size_t len, size_t *pos, char letter, const int *v, int n)
{
    const char prefix[3] = {'-', letter, '\0'};
    for (int i = 0; i < n; i++)
        if (!append(buf, len, pos, i == 0 ? prefix : ".", v[i])) return false;
    return true;
}

/* Any values are written as they are; only the counts must fit the arrays
 * (an impossible state otherwise). */
int sn_subnet_format(const sn_subnet *n, char *buf, size_t len)
{
    SN_CHECK(n->n_stages >= 1 && n->n_stages <= SN_MAX_STAGES);
    SN_CHECK(n->n_blocks >= 1 && n->n_blocks <= SN_MAX_BLOCKS);
    if (len == 0) return SN_ERR;
    size_t pos = 0;
    bool ok = append(buf, len, &pos, "e", n->embed) &&
              append_list(buf, len, &pos, 'd', n->depth, n->n_stages) &&
              append_list(buf, len, &pos, 'h', n->heads, n->n_blocks) &&
              append_list(buf, len, &pos, 'f', n->mlp, n->n_blocks);
    if (!ok || pos > INT_MAX) {
        buf[0] = '\0';
        return SN_ERR;
    }
    return (int)pos;
}

/* "sub-network 'STR'" with STR cut to 64 characters and anything
 * unprintable shown as '?', so that the message stays one line. */
static void subnet_who(char *who, size_t len, const char *str)
{
    enum { SHOWN = 64 };
    char text[SHOWN + 4];
    size_t n = strlen(str), k = n > SHOWN ? SHOWN - 3 : n;
    for (size_t i = 0; i < k; i++) text[i] = isprint((unsigned char)str[i]) ? str[i] : '?';
    text[k] = '\0';
    snprintf(who, len, "sub-network '%s%s'", text, n > k ? "..." : "");
}

/* "'x'", or "end of string", or "byte 0x0a" for what the parser found. */
static const char *found(char c, char *buf, size_t len)
{
    if (c == '\0') snprintf(buf, len, "end of string");
    else if (isprint((unsigned char)c)) snprintf(buf, len, "'%c'", c);
    else snprintf(buf, len, "byte 0x%02x", (unsigned char)c);
    return buf;
}

static void join_ints(char *buf, size_t len, const int *v, int n)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        if (!append(buf, len, &pos, i == 0 ? "" : ",", v[i])) return;
}

static bool in_list(int x, const int *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x) return true;
    return false;
}

static int check_embed(const sn_space *s, int embed, const char *who, char *err, size_t errlen)
{
    if (in_list(embed, s->embed, s->n_embed)) return SN_OK;
    char allowed[SN_MAX_CHOICES * 12];
    join_ints(allowed, sizeof allowed, s->embed, s->n_embed);
    return sn_errf(err, errlen, "%s: embed %d is not one of %s", who, embed, allowed);
}

/* depth[] holds s->n_stages entries. */
static int check_depths(const sn_space *s, const int *depth, const char *who, char *err,
                        size_t errlen)
{
    for (int st = 0; st < s->n_stages; st++)
        if (depth[st] < s->min_depth[st] || depth[st] > s->max_depth[st])
            return sn_errf(err, errlen, "%s: stage %d depth %d is out of range %d..%d", who, st,
                           depth[st], s->min_depth[st], s->max_depth[st]);
    return SN_OK;
}

static int check_blocks(const sn_space *s, const int *heads, const int *mlp, int n_blocks,
                        const char *who, char *err, size_t errlen)
{
    char allowed[SN_MAX_CHOICES * 12];
    for (int i = 0; i < n_blocks; i++) {
        if (!in_list(heads[i], s->heads, s->n_heads)) {
            join_ints(allowed, sizeof allowed, s->heads, s->n_heads);
            return sn_errf(err, errlen, "%s: block %d heads %d is not one of %s", who, i,
                           heads[i], allowed);
        }
        if (!in_list(mlp[i], s->mlp, s->n_mlp)) {
            join_ints(allowed, sizeof allowed, s->mlp, s->n_mlp);
            return sn_errf(err, errlen, "%s: block %d mlp %d is not one of %s", who, i, mlp[i],
                           allowed);
        }
    }
    return SN_OK;
}

static int depth_sum(const int *depth, int n_stages)
{
    int sum = 0;
    for (int st = 0; st < n_stages; st++) sum += depth[st];
    return sum;
}

int sn_subnet_validate(const sn_space *s, const sn_subnet *n, char *err, size_t errlen)
{
    char who[96] = "sub-network";
    if (n->n_stages != s->n_stages)
        return sn_errf(err, errlen, "%s: %d stage depths, expected %d (one per stage)", who,
                       n->n_stages, s->n_stages);
    if (n->n_blocks < 1 || n->n_blocks > SN_MAX_BLOCKS)
        return sn_errf(err, errlen, "%s: n_blocks %d is out of range 1..%d", who, n->n_blocks,
                       SN_MAX_BLOCKS);
    /* the string only names the sub-network in messages: skip it when the
     * caller wants none (the model checks every forward pass this way) */
    char str[SN_SUBNET_STRLEN];
    if (err && errlen && sn_subnet_format(n, str, sizeof str) >= 0)
        subnet_who(who, sizeof who, str);
    if (check_embed(s, n->embed, who, err, errlen) ||
        check_depths(s, n->depth, who, err, errlen))
        return SN_ERR;
    int sum = depth_sum(n->depth, n->n_stages);
    if (n->n_blocks != sum)
        return sn_errf(err, errlen, "%s: n_blocks %d is not the sum of the depths, %d", who,
                       n->n_blocks, sum);
    return check_blocks(s, n->heads, n->mlp, n->n_blocks, who, err, errlen);
}

/* The values of one field as written; parsing stops past SN_MAX_BLOCKS
 * values, more than any field can validly hold. */
typedef struct field_values {
    int n;
    int v[SN_MAX_BLOCKS];
} field_values;

static const struct {
    char letter;
    const char *name;
} FIELDS[4] = {{'e', "embed"}, {'d', "depth"}, {'h', "heads"}, {'f', "mlp"}};

/* A decimal number in 0..INT_MAX without sign or leading zero; *pp moves
 * past its digits. */
static int parse_number(const char *str, const char **pp, const char *field, int *out,
                        const char *who, char *err, size_t errlen)
{
    const char *p = *pp;
    char what[24];
    if (!isdigit((unsigned char)*p))
        return sn_errf(err, errlen, "%s: %s field: expected a number at offset %td, found %s",
                       who, field, p - str, found(*p, what, sizeof what));
    const char *start = p;
    int64_t v = 0;
    for (; isdigit((unsigned char)*p); p++)
        if (v <= INT_MAX) v = 10 * v + (*p - '0');
    int digits = (int)(p - start);
    if (digits > 1 && *start == '0')
        return sn_errf(err, errlen, "%s: %s field: number '%.*s' has a leading zero", who, field,
                       digits > 24 ? 24 : digits, start);
    if (v > INT_MAX)
        return sn_errf(err, errlen, "%s: %s field: number '%.*s%s' is too large (max %d)", who,
                       field, digits > 24 ? 24 : digits, start, digits > 24 ? "..." : "",
                       INT_MAX);
    *out = (int)v;
    *pp = p;
    return SN_OK;
}

/* The values of field k after its letter, '.'-separated, up to the next
 * '-' or the end; the embed field takes exactly one. */
static int parse_values(const char *str, const char **pp, int k, field_values *out,
                        const char *who, char *err, size_t errlen)
{
    const char *field = FIELDS[k].name;
    const char *p = *pp;
    char what[24];
    out->n = 0;
    for (;;) {
        if (out->n == SN_MAX_BLOCKS)
            return sn_errf(err, errlen, "%s: %s field has more than %d values", who, field,
                           SN_MAX_BLOCKS);
        if (parse_number(str, &p, field, &out->v[out->n], who, err, errlen)) return SN_ERR;
        out->n++;
        if (*p != '.' || k == 0) break;
        p++;
    }
    if (*p != '-' && *p != '\0')
        return sn_errf(err, errlen, "%s: %s field: unexpected %s at offset %td, expected %s",
                       who, field, found(*p, what, sizeof what), p - str,
                       k == 0 ? "a digit or '-'" : "a digit, '.' or '-'");
    *pp = p;
    return SN_OK;
}

/* Reads the four fields in order.  Only syntax is checked here; the
 * values are checked against the space by the caller. */
static int parse_fields(const char *str, field_values vals[4], const char *who, char *err,
                        size_t errlen)
{
    const char *p = str;
    char what[24];
    for (int k = 0; k < 4; k++) {
        if (k > 0) {
            if (*p == '\0')
                return sn_errf(err, errlen, "%s: missing the %s field, expected " SUBNET_FORMAT,
                               who, FIELDS[k].name);
            p++; /* the '-' that ended field k-1 */
        }
        if (*p == '\0' || *p == '-') {
            if (k == 0 && *p == '\0')
                return sn_errf(err, errlen, "%s: empty, expected " SUBNET_FORMAT ", max or min",
                               who);
            return sn_errf(err, errlen,
                           "%s: empty field at offset %td, expected the %s field; fields go "
                           SUBNET_FORMAT,
                           who, p - str, FIELDS[k].name);
        }
        if (*p != FIELDS[k].letter) {
            for (int j = 0; j < 4; j++)
                if (*p == FIELDS[j].letter)
                    return sn_errf(err, errlen,
                                   "%s: field '%c' (%s) is out of order, expected '%c' (%s) "
                                   "at offset %td; fields go " SUBNET_FORMAT,
                                   who, *p, FIELDS[j].name, FIELDS[k].letter, FIELDS[k].name,
                                   p - str);
            return sn_errf(err, errlen, "%s: field %s unknown, expected " SUBNET_FORMAT, who,
                           found(*p, what, sizeof what));
        }
        p++;
        if (parse_values(str, &p, k, &vals[k], who, err, errlen)) return SN_ERR;
    }
    if (*p != '\0')
        return sn_errf(err, errlen, "%s: %s at offset %td after the mlp field, which is the last",
                       who, p[1] == '\0' ? "trailing '-'" : "unexpected text", p - str);
    return SN_OK;
}

/* s must be valid (sn_space_validate).  Syntax is checked first, then
 * the values, in field order; out is written only on success.  Stages and
 * blocks in messages are counted from 0. */
int sn_subnet_parse(const sn_space *s, const char *str, sn_subnet *out, char *err,
                    size_t errlen)
{
    if (strcmp(str, "max") == 0) {
        sn_subnet_max(s, out);
        return SN_OK;
    }
    if (strcmp(str, "min") == 0) {
        sn_subnet_min(s, out);
        return SN_OK;
    }
    char who[96];
    subnet_who(who, sizeof who, str);
    field_values vals[4];
    if (parse_fields(str, vals, who, err, errlen)) return SN_ERR;

    const field_values *d = &vals[1], *h = &vals[2], *f = &vals[3];
    if (check_embed(s, vals[0].v[0], who, err, errlen)) return SN_ERR;
    if (d->n != s->n_stages)
        return sn_errf(err, errlen, "%s: expected %d depths (one per stage), got %d", who,
                       s->n_stages, d->n);
    if (check_depths(s, d->v, who, err, errlen)) return SN_ERR;
    int sum = depth_sum(d->v, d->n);
    if (h->n != sum)
        return sn_errf(err, errlen, "%s: expected %d heads values (one per kept block), got %d",
                       who, sum, h->n);
    if (f->n != sum)
        return sn_errf(err, errlen, "%s: expected %d mlp values (one per kept block), got %d",
                       who, sum, f->n);
    if (check_blocks(s, h->v, f->v, sum, who, err, errlen)) return SN_ERR;

    memset(out, 0, sizeof *out);
    out->embed = vals[0].v[0];
    out->n_stages = d->n;
    memcpy(out->depth, d->v, (size_t)d->n * sizeof d->v[0]);
    out->n_blocks = sum;
    memcpy(out->heads, h->v, (size_t)sum * sizeof h->v[0]);
    memcpy(out->mlp, f->v, (size_t)sum * sizeof f->v[0]);
    return SN_OK;
}

/* ------------------------------------------------------------------------
 * Parameter and MAC counts
 * ------------------------------------------------------------------------ */

int64_t sn_subnet_params(const sn_space *s, const sn_subnet *n)
{
    const int64_t e = n->embed, t = s->n_tokens, p = sn_space_embed_in(s), c = s->n_classes;
    int64_t total = p * e + e   /* patch embedding, weight (P, E) and bias */
                  + t * e       /* positions (T, E) */
                  + 2 * e       /* final norm */
                  + c * e + c   /* classifier */
                  + sn_stem_params(s);
    for (int i = 0; i < n->n_blocks; i++) {
        const int64_t inner = (int64_t)n->heads[i] * s->head_dim, f = n->mlp[i];
        total += 2 * e                       /* ln1 */
               + 3 * inner * e + 3 * inner   /* qkv */
               + inner * e + e               /* attention output projection */
               + 2 * e                       /* ln2 */
               + f * e + f                   /* mlp in */
               + e * f + e;                  /* mlp out */
    }
    return total;
}

int64_t sn_subnet_macs(const sn_space *s, const sn_subnet *n)
{
    const int64_t e = n->embed, t = s->n_tokens, p = sn_space_embed_in(s), c = s->n_classes;
    int64_t total = s->task == SN_TASK_LM
                        ? t * e * c          /* embedding lookup; a prediction per token */
                        : t * p * e + e * c; /* patch embedding; one prediction per sequence */
    /* per token: each convolution at the positions the next one reads (the
     * last at g x g) */
    int64_t side[SN_MAX_STEM_CONVS];
    for (int k = 0, n_convs = sn_stem_sides(s, side), in = 1; k < n_convs; in = s->stem[k++])
        total += t * side[k] * side[k] * 9 * in * s->stem[k];
    for (int i = 0; i < n->n_blocks; i++) {
        const int64_t inner = (int64_t)n->heads[i] * s->head_dim, f = n->mlp[i];
        total += t * e * 3 * inner   /* qkv */
               + t * t * inner       /* scores q k^T */
               + t * t * inner       /* attention weights times v */
               + t * inner * e       /* output projection */
               + 2 * t * e * f;      /* mlp in and out */
    }
    return total;
}

static bool same_ints(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

bool sn_space_equal(const sn_space *a, const sn_space *b)
{
    return a->n_embed == b->n_embed && same_ints(a->embed, b->embed, a->n_embed) &&
           a->n_heads == b->n_heads && same_ints(a->heads, b->heads, a->n_heads) &&
           a->n_mlp == b->n_mlp && same_ints(a->mlp, b->mlp, a->n_mlp) &&
           a->n_stages == b->n_stages && same_ints(a->min_depth, b->min_depth, a->n_stages) &&
           same_ints(a->max_depth, b->max_depth, a->n_stages) && a->head_dim == b->head_dim &&
           a->task == b->task && a->n_tokens == b->n_tokens && a->token_dim == b->token_dim &&
           a->n_classes == b->n_classes && same_ints(a->stem, b->stem, SN_MAX_STEM_CONVS);
}

static size_t put_list(char *buf, size_t len, size_t at, const char *label, const int *v, int n)
{
    if (at < len) at += (size_t)snprintf(buf + at, len - at, "%s ", label);
    for (int i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "", v[i]);
    if (at < len) at += (size_t)snprintf(buf + at, len - at, " ");
    return at;
}

void sn_space_format(const sn_space *s, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    at = put_list(buf, len, at, "embed", s->embed, s->n_embed);
    at = put_list(buf, len, at, "heads", s->heads, s->n_heads);
    at = put_list(buf, len, at, "mlp", s->mlp, s->n_mlp);
    if (at < len) at += (size_t)snprintf(buf + at, len - at, "depths");
    for (int i = 0; i < s->n_stages && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d-%d", i ? "," : " ", s->min_depth[i],
                               s->max_depth[i]);
    if (at < len)
        at += (size_t)snprintf(buf + at, len - at, " head_dim %d %s tokens %dx%d classes %d",
                               s->head_dim, s->task == SN_TASK_LM ? "lm" : "image", s->n_tokens,
                               s->token_dim, s->n_classes);
    if (sn_space_has_stem(s) && at < len) {
        char stem[64];
        sn_stem_format(s, stem, sizeof stem);
        snprintf(buf + at, len - at, " stem %s", stem);
    }
}
