#include "io/inspect.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "io/h5.h"
#include "src/util.h"

/* Statistics read float32 values in place from the bytes as stored. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "io/inspect.c reads little-endian float32 data in place");

/* Bytes read per block when streaming a dataset. */
enum { BLOCK_BYTES = 8 << 20 };

/* ---- small helpers -------------------------------------------------------- */

typedef struct h5_reason_ctx {
    char *out;
    size_t len;
} h5_reason_ctx;

static herr_t reason_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    h5_reason_ctx *c = data;
    if (e->desc && e->desc[0]) snprintf(c->out, c->len, "%s", e->desc);
    return 0;
}

/* The innermost message on HDF5's error stack ("" when empty): the most
 * specific reason, e.g. "addr overflow, addr = 4096, size = 512, eoa = 2048". */
static void h5_reason(char *out, size_t len)
{
    out[0] = '\0';
    h5_reason_ctx c = {out, len};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, reason_cb, &c);
}

/* True when every component of the absolute path exists as a link (H5Lexists
 * fails rather than answering false when a parent is missing). */
static bool path_exists(hid_t file, const char *path)
{
    char buf[SN_INSPECT_PATH_MAX];
    if (strlen(path) >= sizeof buf) return false;
    if (strcmp(path, "/") == 0) return true;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return false;
            if (c == '\0') return true;
            *p = c;
        }
    }
}

int sn_names_add(sn_names *l, const char *s)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return SN_ERR;
        l->v = v;
        l->cap = cap;
    }
    char *c = strdup(s);
    if (!c) return SN_ERR;
    l->v[l->n++] = c;
    return SN_OK;
}

void sn_names_free(sn_names *l)
{
    if (!l) return;
    for (int64_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int natural_cmp(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

void sn_inspect_shape_str(int ndim, const int64_t *dims, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (ndim == 1 && at < len) at += (size_t)snprintf(buf + at, len - at, ",");
    if (at < len) snprintf(buf + at, len - at, ")");
}

/* ---- a growable string, for rendering attributes -------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k)
{
    if (b->oom) return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + k + 1) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = true;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k);
    b->n += k;
    b->s[b->n] = '\0';
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at p, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int k;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) k = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 2;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 3;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i <= k; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return (size_t)k + 1;
}

static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            sb_put(b, esc, strlen(esc));
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
            p++;
        } else {
            size_t k = utf8_len(p);
            if (k == 0) {
                sb_put(b, "\\ufffd", 6);
                p++;
            } else {
                sb_put(b, (const char *)p, k);
                p += k;
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* The shortest %g form of x that reads back as the same float (single)
 * or double. */
static void shortest(double x, bool single, char *buf, size_t len)
{
    for (int p = single ? 6 : 15; p <= (single ? 9 : 17); p++) {
        snprintf(buf, len, "%.*g", p, x);
        if (single ? strtof(buf, NULL) == (float)x : strtod(buf, NULL) == x) return;
    }
}

static void sb_num(sbuf *b, double x, bool json, bool single)
{
    char tmp[40];
    if (isfinite(x)) {
        shortest(x, single, tmp, sizeof tmp);
        sb_put(b, tmp, strlen(tmp));
    } else if (json)
        sb_put(b, "null", 4);
    else
        sb_printf(b, "%g", x);
}

void sn_json_write_str(FILE *f, const char *s)
{
    sbuf b = {0};
    sb_json_str(&b, s);
    if (b.oom || !b.s) {
        fputs("\"\"", f);
    } else {
        fputs(b.s, f);
    }
    free(b.s);
}

void sn_json_write_f32(FILE *f, float x)
{
    char tmp[40];
    if (isfinite(x)) {
        shortest((double)x, true, tmp, sizeof tmp);
        fputs(tmp, f);
    } else {
        fputs("null", f);
    }
}

void sn_json_write_num(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, "%.17g", x);
    else
        fputs("null", f);
}

/* ---- the header and the configuration ------------------------------------- */

hid_t sn_inspect_open(MPI_Comm comm, const char *path, sn_file_info *info, char *err,
                      size_t errlen)
{
    memset(info, 0, sizeof *info);
    hid_t f = sn_h5_open(comm, path, err, errlen);
    if (f < 0) return H5I_INVALID_HID;
    if (sn_file_read_header(f, path, info, err, errlen) != SN_OK) {
        sn_inspect_close(f);
        return H5I_INVALID_HID;
    }
    return f;
}

void sn_inspect_close(hid_t file)
{
    if (file >= 0) H5Fclose(file);
}

int sn_inspect_config(hid_t file, const char *path, sn_file_info *info, char *err,
                      size_t errlen)
{
    return sn_file_read_config(file, path, info, err, errlen);
}

/* ---- listing -------------------------------------------------------------- */

typedef struct walk_ctx {
    sn_names *out, *broken;
    haddr_t *seen;              /* objects listed or entered, against hard-link cycles */
    int64_t n_seen, cap_seen;
    bool oom;
    char fail[SN_INSPECT_PATH_MAX + 64];
} walk_ctx;

/* True if addr was seen before; records it otherwise. */
static bool seen_before(walk_ctx *c, haddr_t addr)
{
    for (int64_t i = 0; i < c->n_seen; i++)
        if (c->seen[i] == addr) return true;
    if (c->n_seen == c->cap_seen) {
        int64_t cap = c->cap_seen ? 2 * c->cap_seen : 64;
        haddr_t *t = realloc(c->seen, (size_t)cap * sizeof *t);
        if (!t) {
            c->oom = true;
            return true;
        }
        c->seen = t;
        c->cap_seen = cap;
    }
    c->seen[c->n_seen++] = addr;
    return false;
}

static int walk_group(hid_t file, const char *group, walk_ctx *c);

typedef struct walk_frame {
    hid_t file;
    const char *group;
    walk_ctx *c;
} walk_frame;

static herr_t walk_cb(hid_t g, const char *name, const H5L_info_t *li, void *data)
{
    walk_frame *w = data;
    walk_ctx *c = w->c;
    if (li->type != H5L_TYPE_HARD) return 0; /* soft and external links point elsewhere */
    char full[SN_INSPECT_PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", strcmp(w->group, "/") == 0 ? "" : w->group, name);
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        if (!c->broken) {
            char why[200];
            h5_reason(why, sizeof why);
            snprintf(c->fail, sizeof c->fail, "object %s cannot be read (%s)", full,
                     why[0] ? why : "damaged metadata");
            return -1;
        }
        if (sn_names_add(c->broken, full) != SN_OK) c->oom = true;
        return c->oom ? -1 : 0;
    }
    if (seen_before(c, oi.addr)) return c->oom ? -1 : 0;
    if (oi.type == H5O_TYPE_DATASET) {
        if (sn_names_add(c->out, full) != SN_OK) c->oom = true;
    } else if (oi.type == H5O_TYPE_GROUP) {
        if (walk_group(w->file, full, c) != SN_OK) return -1;
    }
    return c->oom ? -1 : 0;
}

/* Lists the datasets below group (link by link, so that one unreadable
 * object header spoils only that object). */
static int walk_group(hid_t file, const char *group, walk_ctx *c)
{
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) {
        if (!c->broken) {
            snprintf(c->fail, sizeof c->fail, "group %s cannot be opened", group);
            return SN_ERR;
        }
        if (sn_names_add(c->broken, group) != SN_OK) c->oom = true;
        return c->oom ? SN_ERR : SN_OK;
    }
    walk_frame w = {file, group, c};
    herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, walk_cb, &w);
    char why[200];
    h5_reason(why, sizeof why); /* before the next call clears the stack */
    H5Gclose(g);
    if (r >= 0) return SN_OK;
    if (c->oom || c->fail[0]) return SN_ERR;
    if (!c->broken) {
        snprintf(c->fail, sizeof c->fail, "group %s cannot be listed (%s)", group,
                 why[0] ? why : "damaged metadata");
        return SN_ERR;
    }
    if (sn_names_add(c->broken, group) != SN_OK) c->oom = true;
    return c->oom ? SN_ERR : SN_OK;
}

int sn_inspect_datasets(hid_t file, const char *group, sn_names *out, sn_names *broken,
                        char *err, size_t errlen)
{
    if (!path_exists(file, group)) return SN_OK;
    int64_t first = out->n;
    walk_ctx c = {.out = out, .broken = broken};
    int rc = walk_group(file, group, &c);
    free(c.seen);
    if (c.oom) return sn_errf(err, errlen, "out of memory listing %s", group);
    if (rc != SN_OK) return sn_errf(err, errlen, "%s", c.fail);
    /* nothing listed: v may still be NULL, and NULL + 0 is undefined */
    if (out->n > first)
        qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, natural_cmp);
    return SN_OK;
}

static herr_t attr_name_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)loc;
    (void)info;
    return sn_names_add(data, name) == SN_OK ? 0 : -1;
}

int sn_inspect_attr_names(hid_t file, const char *obj_path, sn_names *out, char *err,
                          size_t errlen)
{
    hid_t o = H5Oopen(file, obj_path, H5P_DEFAULT);
    if (o < 0) return sn_errf(err, errlen, "%s cannot be opened", obj_path);
    int64_t first = out->n;
    herr_t r = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_name_cb, out);
    H5Oclose(o);
    if (r < 0) return sn_errf(err, errlen, "the attributes of %s cannot be listed", obj_path);
    /* nothing listed: v may still be NULL, and NULL + 0 is undefined */
    if (out->n > first)
        qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, natural_cmp);
    return SN_OK;
}

/* ---- attributes, generically ---------------------------------------------- */

static int render_values(hid_t a, hid_t ft, int64_t n, bool json, sbuf *b)
{
    H5T_class_t cls = H5Tget_class(ft);
    herr_t r = 0;
    if (cls == H5T_INTEGER) {
        bool uns = H5Tget_sign(ft) == H5T_SGN_NONE;
        long long *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        if (!v) return SN_ERR;
        r = H5Aread(a, uns ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG, v);
        for (int64_t i = 0; r >= 0 && i < n; i++) {
            if (i) sb_put(b, json ? "," : ", ", json ? 1 : 2);
            if (uns)
                sb_printf(b, "%llu", (unsigned long long)v[i]);
            else
                sb_printf(b, "%lld", v[i]);
        }
        free(v);
    } else if (cls == H5T_FLOAT) {
        bool single = H5Tget_size(ft) <= 4;
        double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        if (!v) return SN_ERR;
        r = H5Aread(a, H5T_NATIVE_DOUBLE, v);
        for (int64_t i = 0; r >= 0 && i < n; i++) {
            if (i) sb_put(b, json ? "," : ", ", json ? 1 : 2);
            sb_num(b, v[i], json, single);
        }
        free(v);
    } else if (cls == H5T_STRING) {
        bool vlen = H5Tis_variable_str(ft) > 0;
        size_t sz = vlen ? sizeof(char *) : H5Tget_size(ft) + 1;
        hid_t mt = H5Tcopy(H5T_C_S1);
        if (mt < 0) return SN_ERR;
        H5Tset_size(mt, vlen ? H5T_VARIABLE : sz);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *buf = calloc((size_t)(n ? n : 1), sz);
        if (!buf) {
            H5Tclose(mt);
            return SN_ERR;
        }
        r = H5Aread(a, mt, buf);
        for (int64_t i = 0; r >= 0 && i < n; i++) {
            const char *s = vlen ? ((char **)buf)[i] : buf + (size_t)i * sz;
            if (!s) s = "";
            if (i) sb_put(b, json ? "," : ", ", json ? 1 : 2);
            if (json || n > 1)
                sb_json_str(b, s);
            else
                sb_put(b, s, strlen(s));
        }
        if (vlen && r >= 0)
            for (int64_t i = 0; i < n; i++) H5free_memory(((char **)buf)[i]);
        free(buf);
        H5Tclose(mt);
    } else {
        char what[64];
        snprintf(what, sizeof what, "<%d values of HDF5 type class %d>", (int)n, (int)cls);
        if (json)
            sb_json_str(b, what);
        else
            sb_put(b, what, strlen(what));
    }
    return r < 0 ? SN_ERR : SN_OK;
}

char *sn_inspect_attr_text(hid_t file, const char *obj_path, const char *name, bool json,
                           char *err, size_t errlen)
{
    hid_t a = H5Aopen_by_name(file, obj_path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        sn_errf(err, errlen, "attribute '%s' of %s cannot be opened", name, obj_path);
        return NULL;
    }
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int ndims = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    sbuf b = {0};
    int rc = SN_ERR;
    if (ft >= 0 && ndims >= 0 && n >= 0) {
        bool list = ndims > 0;
        if (list) sb_put(&b, "[", 1);
        rc = render_values(a, ft, (int64_t)n, json, &b);
        if (list) sb_put(&b, "]", 1);
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    if (rc != SN_OK || b.oom || !b.s) {
        free(b.s);
        sn_errf(err, errlen, "attribute '%s' of %s cannot be read", name, obj_path);
        return NULL;
    }
    return b.s;
}

/* ---- datasets ------------------------------------------------------------- */

static void describe_type(hid_t t, sn_ds_scan *out)
{
    size_t sz = H5Tget_size(t);
    const char *be = H5Tget_order(t) == H5T_ORDER_BE ? "be" : "";
    switch (H5Tget_class(t)) {
    case H5T_FLOAT: snprintf(out->type, sizeof out->type, "float%zu%s", 8 * sz, be); break;
    case H5T_INTEGER:
        snprintf(out->type, sizeof out->type, "%sint%zu%s",
                 H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * sz, be);
        break;
    case H5T_STRING:
        snprintf(out->type, sizeof out->type, "%s",
                 H5Tis_variable_str(t) > 0 ? "string" : "fixed-string");
        break;
    case H5T_COMPOUND: snprintf(out->type, sizeof out->type, "compound"); break;
    case H5T_ENUM: snprintf(out->type, sizeof out->type, "enum"); break;
    case H5T_ARRAY: snprintf(out->type, sizeof out->type, "array"); break;
    case H5T_VLEN: snprintf(out->type, sizeof out->type, "vlen"); break;
    default: snprintf(out->type, sizeof out->type, "other"); break;
    }
    out->is_f32 = H5Tequal(t, H5T_IEEE_F32LE) > 0;
}

/* Fills shape and type from an open dataset. */
static int describe(hid_t ds, sn_ds_scan *out)
{
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds);
    int rc = SN_ERR;
    if (t >= 0 && s >= 0) {
        int nd = H5Sget_simple_extent_ndims(s);
        hssize_t np = H5Sget_simple_extent_npoints(s);
        hsize_t hd[SN_INSPECT_MAX_RANK];
        if (nd >= 0 && nd <= SN_INSPECT_MAX_RANK && np >= 0 &&
            H5Sget_simple_extent_dims(s, hd, NULL) >= 0) {
            out->ndim = nd;
            for (int i = 0; i < nd; i++) out->dims[i] = (int64_t)hd[i];
            out->count = (int64_t)np;
            describe_type(t, out);
            rc = SN_OK;
        }
    }
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    return rc;
}

int sn_inspect_shape(hid_t file, const char *file_path, const char *path, sn_ds_scan *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    out->min = out->max = out->mean = out->l2 = NAN;
    hid_t ds = path_exists(file, path) ? H5Dopen2(file, path, H5P_DEFAULT) : H5I_INVALID_HID;
    if (ds < 0) return sn_errf(err, errlen, "%s: dataset %s cannot be opened", file_path, path);
    int rc = describe(ds, out);
    H5Dclose(ds);
    if (rc != SN_OK)
        return sn_errf(err, errlen, "%s: dataset %s has an unreadable shape or type", file_path,
                       path);
    return SN_OK;
}

/* A walk over a dataset in row-major blocks of at most BLOCK_BYTES: whole
 * rows of the leading dimension where a row fits in a block, else pieces
 * of the innermost dimensions (a row of a dataset may itself be larger
 * than memory). */
typedef struct block_walk {
    int ndim;
    int split;                          /* the dimension a block cuts */
    int64_t inner;                      /* elements of the dimensions after split */
    int64_t step;                       /* indices of split per block */
    int64_t max_n;                      /* elements in the largest block */
    hsize_t dims[SN_INSPECT_MAX_RANK];
    hsize_t pos[SN_INSPECT_MAX_RANK];   /* the next block's first corner */
    hsize_t start[SN_INSPECT_MAX_RANK]; /* the current block's first corner */
    hsize_t count[SN_INSPECT_MAX_RANK]; /* the current block's extent */
    int64_t first;                      /* flat index of the block's first element */
    int64_t n;                          /* elements in the block */
    bool done;
} block_walk;

static void walk_init(block_walk *w, const sn_ds_scan *d, size_t esize)
{
    memset(w, 0, sizeof *w);
    w->ndim = d->ndim;
    for (int i = 0; i < d->ndim; i++) w->dims[i] = (hsize_t)d->dims[i];
    w->done = d->count <= 0;
    int64_t per_block = BLOCK_BYTES / (int64_t)(esize > 0 ? esize : 1);
    if (per_block < 1) per_block = 1;
    int k = d->ndim - 1;
    int64_t inner = 1;
    while (k > 0 && d->dims[k] <= per_block / inner) inner *= d->dims[k--];
    w->split = k < 0 ? 0 : k;
    w->inner = inner;
    w->step = per_block / inner;
    if (w->step < 1) w->step = 1;
    int64_t split_dim = d->ndim == 0 ? 1 : d->dims[w->split];
    w->max_n = (split_dim < w->step ? split_dim : w->step) * inner;
    if (w->max_n < 1) w->max_n = 1;
}

/* The next block into w->count (and w->first, w->n); false at the end. */
static bool walk_next(block_walk *w)
{
    if (w->done) return false;
    if (w->ndim == 0) {
        w->first = 0;
        w->n = 1;
        w->done = true;
        return true;
    }
    int s = w->split;
    int64_t first = 0;
    for (int j = 0; j < w->ndim; j++) {
        first = first * (int64_t)w->dims[j] + (int64_t)w->pos[j];
        w->start[j] = w->pos[j];
        w->count[j] = j < s ? 1 : w->dims[j];
    }
    hsize_t left = w->dims[s] - w->pos[s];
    w->count[s] = left < (hsize_t)w->step ? left : (hsize_t)w->step;
    w->first = first;
    w->n = (int64_t)w->count[s] * w->inner;
    w->pos[s] += w->count[s];
    for (int j = s; j > 0 && w->pos[j] >= w->dims[j]; j--) {
        w->pos[j] = 0;
        w->pos[j - 1]++;
    }
    if (w->pos[0] >= w->dims[0]) w->done = true;
    return true;
}

/* Reads the current block of walk w over dataset ds as mtype into buf; on
 * failure HDF5's reason goes to why (200 chars). */
static herr_t read_block(hid_t ds, const block_walk *w, hid_t mtype, void *buf, char *why)
{
    why[0] = '\0';
    if (w->ndim == 0) {
        herr_t r = H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (r < 0) h5_reason(why, 200);
        return r;
    }
    hid_t fs = H5Dget_space(ds);
    if (fs < 0) return -1;
    hsize_t mn = (hsize_t)w->n;
    hid_t ms = H5Screate_simple(1, &mn, NULL);
    herr_t r = -1;
    if (ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, w->start, NULL, w->count, NULL) >= 0)
        r = H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, buf);
    if (r < 0) h5_reason(why, 200);
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return r;
}

/* Deflate shrinks data at most about 1032 times; a dataset declaring more
 * than that (with 1 MiB of slack for unwritten fill-value datasets) over
 * the bytes the file holds for it is damage, and reading it would take
 * hours.  Returns false with problem set. */
static bool plausible_size(hid_t file, hid_t ds, const sn_ds_scan *d, size_t esize,
                           char *problem, size_t len)
{
    hsize_t stored = H5Dget_storage_size(ds), fsize = 0;
    if (H5Fget_filesize(file, &fsize) >= 0 && stored > fsize) stored = fsize;
    double declared = (double)d->count * (double)esize;
    double limit = 1100.0 * ((double)stored + (double)(1 << 20));
    if (declared <= limit) return true;
    snprintf(problem, len, "its shape declares %.3g bytes but the file holds %llu bytes of it",
             declared, (unsigned long long)stored);
    return false;
}

static bool fixed_size_data(hid_t t)
{
    return H5Tis_variable_str(t) <= 0 && H5Tdetect_class(t, H5T_VLEN) <= 0 &&
           H5Tdetect_class(t, H5T_REFERENCE) <= 0;
}

/* The pass over the data: checksum of the stored bytes, float32 stats. */
static void scan_data(hid_t ds, hid_t ft, sn_ds_scan *out)
{
    size_t es = H5Tget_size(ft);
    if (es == 0 || es > BLOCK_BYTES) {
        snprintf(out->problem, sizeof out->problem, "its elements are %zu bytes each", es);
        return;
    }
    block_walk w;
    walk_init(&w, out, es);
    void *buf = malloc((size_t)w.max_n * es);
    XXH3_state_t *st = XXH3_createState();
    if (!buf || !st || XXH3_64bits_reset(st) != XXH_OK) {
        snprintf(out->problem, sizeof out->problem, "out of memory reading it");
        free(buf);
        XXH3_freeState(st);
        return;
    }
    double mn = INFINITY, mx = -INFINITY, sum = 0.0, sumsq = 0.0;
    int64_t nf = 0;
    while (walk_next(&w)) {
        char why[200];
        if (read_block(ds, &w, ft, buf, why) < 0) {
            snprintf(out->problem, sizeof out->problem, "read error (%s)",
                     why[0] ? why : "file truncated or damaged");
            break;
        }
        XXH3_64bits_update(st, buf, (size_t)w.n * es);
        if (!out->is_f32) continue;
        const float *v = buf;
        for (int64_t i = 0; i < w.n; i++) {
            double x = (double)v[i];
            if (!isfinite(x)) {
                nf++;
                continue;
            }
            if (x < mn) mn = x;
            if (x > mx) mx = x;
            sum += x;
            sumsq += x * x;
        }
    }
    snprintf(out->computed, sizeof out->computed, "xxh3-64:%016llx",
             (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    free(buf);
    if (out->is_f32) {
        int64_t k = out->count - nf;
        out->nonfinite = nf;
        if (k > 0) {
            out->min = mn;
            out->max = mx;
            out->mean = sum / (double)k;
            out->l2 = sqrt(sumsq);
        } else {
            out->l2 = 0.0;
        }
    }
}

int sn_inspect_scan(hid_t file, const char *file_path, const char *path, bool verify,
                    sn_ds_scan *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    out->min = out->max = out->mean = out->l2 = NAN;
    hid_t ds = path_exists(file, path) ? H5Dopen2(file, path, H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t ft = ds < 0 ? H5I_INVALID_HID : H5Dget_type(ds);
    if (ds < 0 || ft < 0 || describe(ds, out) != SN_OK) {
        snprintf(out->problem, sizeof out->problem, "its header cannot be read");
        goto out;
    }
    bool readable = fixed_size_data(ft);
    if (verify) {
        char msg[256];
        if (!sn_h5_has(ds, "checksum"))
            snprintf(out->problem, sizeof out->problem, "no checksum attribute");
        else if (sn_h5_get_str(ds, "checksum", out->stored, sizeof out->stored, path, msg,
                               sizeof msg) != SN_OK)
            snprintf(out->problem, sizeof out->problem, "%s", msg);
        else if (!readable)
            snprintf(out->problem, sizeof out->problem,
                     "variable-length data cannot carry a byte checksum");
    }
    char too_big[256];
    if (readable && plausible_size(file, ds, out, H5Tget_size(ft), too_big, sizeof too_big))
        scan_data(ds, ft, out);
    else if (readable && !out->problem[0])
        snprintf(out->problem, sizeof out->problem, "%s", too_big);
    if (verify && !out->problem[0]) {
        out->checked = true;
        if (strncasecmp(out->stored, "xxh3-64:", 8) != 0 || strlen(out->stored) != 24)
            snprintf(out->problem, sizeof out->problem,
                     "checksum attribute '%.40s' is not xxh3-64:<16 hex digits>", out->stored);
        else if (strcasecmp(out->stored, out->computed) != 0)
            snprintf(out->problem, sizeof out->problem,
                     "checksum mismatch (stored %s, computed %s)", out->stored, out->computed);
    }
out:
    if (ft >= 0) H5Tclose(ft);
    if (ds >= 0) H5Dclose(ds);
    if (out->problem[0])
        return sn_errf(err, errlen, "%s: dataset %s is damaged: %s", file_path, path,
                       out->problem);
    return SN_OK;
}

int sn_inspect_diff(hid_t a, const char *a_path, hid_t b, const char *b_path, const char *path,
                    sn_ds_diff *out, char *err, size_t errlen)
{
    out->max_abs = 0.0;
    out->at = -1;
    out->a = out->b = 0.0;
    sn_ds_scan d;
    if (sn_inspect_shape(a, a_path, path, &d, err, errlen) != SN_OK) return SN_ERR;
    SN_CHECK(d.is_f32);
    hid_t da = H5Dopen2(a, path, H5P_DEFAULT), db = H5Dopen2(b, path, H5P_DEFAULT);
    block_walk w;
    walk_init(&w, &d, sizeof(float));
    size_t n = (size_t)w.max_n;
    float *va = malloc(n * sizeof *va), *vb = malloc(n * sizeof *vb);
    int rc = SN_OK;
    if (da < 0 || db < 0) {
        rc = sn_errf(err, errlen, "%s: dataset %s cannot be opened", da < 0 ? a_path : b_path,
                     path);
        goto out;
    }
    if (!va || !vb) {
        rc = sn_errf(err, errlen, "out of memory comparing %s", path);
        goto out;
    }
    char too_big[256];
    bool a_ok = plausible_size(a, da, &d, sizeof(float), too_big, sizeof too_big);
    if (!a_ok || !plausible_size(b, db, &d, sizeof(float), too_big, sizeof too_big)) {
        rc = sn_errf(err, errlen, "%s: dataset %s is damaged: %s", a_ok ? b_path : a_path, path,
                     too_big);
        goto out;
    }
    while (walk_next(&w)) {
        char why[200];
        bool bad_a = read_block(da, &w, H5T_NATIVE_FLOAT, va, why) < 0;
        bool bad_b = !bad_a && read_block(db, &w, H5T_NATIVE_FLOAT, vb, why) < 0;
        if (bad_a || bad_b) {
            rc = sn_errf(err, errlen, "%s: dataset %s cannot be read (%s)",
                         bad_a ? a_path : b_path, path, why[0] ? why : "truncated or damaged");
            goto out;
        }
        for (int64_t i = 0; i < w.n; i++) {
            double x = va[i], y = vb[i], dd;
            if (x == y || (isnan(x) && isnan(y)))
                dd = 0.0;
            else
                dd = fabs(x - y);
            if (isnan(dd)) dd = INFINITY;
            if (dd > out->max_abs) {
                out->max_abs = dd;
                out->at = w.first + i;
                out->a = x;
                out->b = y;
            }
        }
    }
out:
    free(va);
    free(vb);
    if (da >= 0) H5Dclose(da);
    if (db >= 0) H5Dclose(db);
    return rc;
}
