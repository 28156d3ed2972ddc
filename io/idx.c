#include "io/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "src/util.h"

/* Largest data section accepted: 4 GiB, far above any image data set that
 * fits a training node, and small enough that a corrupt header cannot
 * request an absurd allocation. */
#define IDX_MAX_DATA ((int64_t)1 << 32)
/* A file may exceed the data limit by its header and gzip framing (deflate
 * expands incompressible data by 5 bytes per 64 KiB stored block). */
#define IDX_MAX_FILE (IDX_MAX_DATA + ((int64_t)1 << 20))
/* Trailing bytes after the data of a gzip'd file are counted up to this
 * many, so that a gzip bomb appended to valid data costs bounded time. */
#define IDX_MAX_TRAILING_COUNT ((int64_t)1 << 20)
#define IDX_TYPE_UBYTE 0x08
/* Deflate turns one compressed byte into at most 1032 bytes (258-byte
 * matches of 2 bits each), so a gzip file of L bytes holds at most 1032 L
 * bytes; a header declaring more cannot be satisfied and is refused before
 * its data section is allocated. */
#define GZIP_MAX_RATIO 1032

static const char *type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown type";
    }
}

/* Validates the 4-byte magic; on success *ndims is the number of
 * dimensions (1..SN_IDX_MAX_DIMS). */
static int parse_magic(const uint8_t m[4], const char *name, int *ndims, char *err,
                       size_t errlen)
{
    uint32_t magic = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    if (m[0] != 0 || m[1] != 0)
        return sn_errf(err, errlen, "%s: bad magic 0x%08x, expected 0x0000080N (IDX unsigned byte, "
                       "N dimensions)", name, (unsigned)magic);
    if (m[2] != IDX_TYPE_UBYTE)
        return sn_errf(err, errlen, "%s: unsupported data type 0x%02x (%s), only 0x08 (unsigned byte) "
                       "is supported", name, m[2], type_name(m[2]));
    if (m[3] < 1 || m[3] > SN_IDX_MAX_DIMS)
        return sn_errf(err, errlen, "%s: bad number of dimensions %d, expected 1 to %d", name, m[3],
                       SN_IDX_MAX_DIMS);
    *ndims = m[3];
    return SN_OK;
}

/* Reads out->ndims big-endian dimensions from d and sets out->dims and
 * out->count, rejecting zero dimensions and products above IDX_MAX_DATA. */
static int parse_dims(const uint8_t *d, const char *name, sn_idx *out, char *err, size_t errlen)
{
    int64_t count = 1;
    for (int i = 0; i < out->ndims; i++) {
        const uint8_t *p = d + 4 * i;
        int64_t dim = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        if (dim == 0) return sn_errf(err, errlen, "%s: dimension %d of %d is 0", name, i, out->ndims);
        if (count > IDX_MAX_DATA / dim)
            return sn_errf(err, errlen, "%s: dimensions describe more than the %lld-byte (4 GiB) limit "
                           "of data", name, (long long)IDX_MAX_DATA);
        count *= dim;
        out->dims[i] = dim;
    }
    out->count = count;
    return SN_OK;
}

static int parse_raw(const uint8_t *buf, size_t len, const char *name, sn_idx *out, char *err,
                     size_t errlen)
{
    if (len == 0) return sn_errf(err, errlen, "%s: empty file", name);
    if (len < 4)
        return sn_errf(err, errlen, "%s: truncated header: file has %zu bytes, the magic needs 4",
                       name, len);
    if (parse_magic(buf, name, &out->ndims, err, errlen) != SN_OK) return SN_ERR;
    size_t header = 4 + 4 * (size_t)out->ndims;
    if (len < header)
        return sn_errf(err, errlen, "%s: truncated header: file has %zu bytes, a %d-dimensional header "
                       "needs %zu", name, len, out->ndims, header);
    if (parse_dims(buf + 4, name, out, err, errlen) != SN_OK) return SN_ERR;
    size_t have = len - header;
    if ((uint64_t)have < (uint64_t)out->count)
        return sn_errf(err, errlen, "%s: truncated: header says %lld bytes of data, file has %zu", name,
                       (long long)out->count, have);
    if ((uint64_t)have > (uint64_t)out->count)
        return sn_errf(err, errlen, "%s: trailing data: header says %lld bytes of data, file has %zu",
                       name, (long long)out->count, have);
    out->data = sn_alloc((size_t)out->count);
    if (!out->data)
        return sn_errf(err, errlen, "%s: out of memory for %lld bytes of data", name,
                       (long long)out->count);
    memcpy(out->data, buf + header, (size_t)out->count);
    return SN_OK;
}

/* A gzip stream over an in-memory buffer; concatenated gzip members are
 * read as one stream, as gzip(1) does. */
typedef struct gz_src {
    z_stream s;
    const uint8_t *buf;
    size_t len;
    int finished;   /* the last member ended exactly at the end of buf */
} gz_src;

/* Inflates up to want bytes into dst; *got is how many arrived.  *got <
 * want with SN_OK means the stream ended cleanly.  SN_ERR for a corrupt or
 * truncated stream. */
static int gz_fill(gz_src *g, uint8_t *dst, size_t want, size_t *got, const char *name, char *err,
                   size_t errlen)
{
    *got = 0;
    while (*got < want && !g->finished) {
        size_t consumed = (size_t)(g->s.next_in - g->buf);
        if (g->s.avail_in == 0) {
            size_t rest = g->len - consumed;
            g->s.avail_in = (uInt)(rest < UINT_MAX ? rest : UINT_MAX);
        }
        size_t room = want - *got < UINT_MAX ? want - *got : UINT_MAX;
        g->s.next_out = dst + *got;
        g->s.avail_out = (uInt)room;
        int rc = inflate(&g->s, Z_NO_FLUSH);
        *got += room - g->s.avail_out;
        consumed = (size_t)(g->s.next_in - g->buf);
        if (rc == Z_STREAM_END) {
            size_t rest = g->len - consumed;
            if (rest == 0) {
                g->finished = 1;
            } else if (rest >= 2 && g->buf[consumed] == 0x1f && g->buf[consumed + 1] == 0x8b) {
                if (inflateReset(&g->s) != Z_OK)
                    return sn_errf(err, errlen, "%s: cannot restart the gzip decoder", name);
            } else {
                return sn_errf(err, errlen, "%s: corrupt gzip file: %zu bytes of garbage after the "
                               "gzip stream", name, rest);
            }
        } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
            return sn_errf(err, errlen, "%s: corrupt gzip stream at compressed byte %zu: %s", name,
                           consumed, g->s.msg ? g->s.msg : "invalid data");
        } else if (rc == Z_MEM_ERROR) {
            return sn_errf(err, errlen, "%s: out of memory while inflating gzip data", name);
        } else if (rc == Z_BUF_ERROR || (rc == Z_OK && consumed == g->len && g->s.avail_out > 0)) {
            /* All input consumed, output space left, and no end of stream. */
            return sn_errf(err, errlen, "%s: truncated gzip stream: compressed data ends after %zu "
                           "bytes without the end-of-stream marker", name, g->len);
        } else if (rc != Z_OK) {
            return sn_errf(err, errlen, "%s: gzip decoder failed (zlib error %d)", name, rc);
        }
    }
    return SN_OK;
}

static int parse_gzip(const uint8_t *buf, size_t len, const char *name, sn_idx *out, char *err,
                      size_t errlen)
{
    gz_src g = {.buf = buf, .len = len};
    g.s.next_in = (Bytef *)buf;
    if (inflateInit2(&g.s, 16 + MAX_WBITS) != Z_OK)
        return sn_errf(err, errlen, "%s: cannot initialise the gzip decoder", name);

    int rc = SN_ERR;
    uint8_t header[4 + 4 * SN_IDX_MAX_DIMS];
    size_t got;
    if (gz_fill(&g, header, 4, &got, name, err, errlen) != SN_OK) goto done;
    if (got == 0) {
        sn_errf(err, errlen, "%s: empty file (after gunzip)", name);
        goto done;
    }
    if (got < 4) {
        sn_errf(err, errlen, "%s: truncated header: file has %zu bytes (after gunzip), the magic "
                "needs 4", name, got);
        goto done;
    }
    if (parse_magic(header, name, &out->ndims, err, errlen) != SN_OK) goto done;
    size_t dims_len = 4 * (size_t)out->ndims;
    if (gz_fill(&g, header + 4, dims_len, &got, name, err, errlen) != SN_OK) goto done;
    if (got < dims_len) {
        sn_errf(err, errlen, "%s: truncated header: file has %zu bytes (after gunzip), a "
                "%d-dimensional header needs %zu", name, 4 + got, out->ndims, 4 + dims_len);
        goto done;
    }
    if (parse_dims(header + 4, name, out, err, errlen) != SN_OK) goto done;
    if (out->count > (int64_t)len * GZIP_MAX_RATIO) {
        sn_errf(err, errlen, "%s: truncated: header says %lld bytes of data, more than a %zu-byte "
                "gzip file can hold", name, (long long)out->count, len);
        goto done;
    }

    /* The header fixes the size: allocate exactly that and no more. */
    out->data = sn_alloc((size_t)out->count);
    if (!out->data) {
        sn_errf(err, errlen, "%s: out of memory for %lld bytes of data", name, (long long)out->count);
        goto done;
    }
    if (gz_fill(&g, out->data, (size_t)out->count, &got, name, err, errlen) != SN_OK) goto done;
    if (got < (size_t)out->count) {
        sn_errf(err, errlen, "%s: truncated: header says %lld bytes of data, file has %zu (after "
                "gunzip)", name, (long long)out->count, got);
        goto done;
    }
    /* Anything further is trailing data: count a bounded amount of it into
     * a scratch buffer so the message can say how much. */
    uint8_t scratch[4096];
    int64_t extra = 0;
    do {
        if (gz_fill(&g, scratch, sizeof scratch, &got, name, err, errlen) != SN_OK) goto done;
        extra += (int64_t)got;
    } while (got == sizeof scratch && extra < IDX_MAX_TRAILING_COUNT);
    if (extra > 0) {
        sn_errf(err, errlen, "%s: trailing data: header says %lld bytes of data, file has %s%lld "
                "(after gunzip)", name, (long long)out->count,
                got == sizeof scratch ? "at least " : "", (long long)(out->count + extra));
        goto done;
    }
    rc = SN_OK;
done:
    inflateEnd(&g.s);
    return rc;
}

/* On SN_ERR *out is left empty (safe to pass to sn_idx_free). */
int sn_idx_parse(const uint8_t *buf, size_t len, const char *name, sn_idx *out, char *err,
                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b
                 ? parse_gzip(buf, len, name, out, err, errlen)
                 : parse_raw(buf, len, name, out, err, errlen);
    if (rc != SN_OK) sn_idx_free(out);
    return rc;
}

/* Reads the whole of fd into a malloc'd buffer; pipes and special files
 * work as well as regular files.  File sizes above IDX_MAX_FILE are
 * rejected before they are read. */
static int read_all(int fd, const char *path, uint8_t **bufp, size_t *lenp, char *err,
                    size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
    if (S_ISREG(st.st_mode) && st.st_size > IDX_MAX_FILE)
        return sn_errf(err, errlen, "%s: file is %lld bytes, above the 4 GiB limit", path,
                       (long long)st.st_size);
    /* One byte more than the size, so that a regular file is read in one
     * pass and EOF is seen without growing. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : (size_t)1 << 16;
    size_t len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return sn_errf(err, errlen, "%s: out of memory reading %zu bytes", path, cap);
    for (;;) {
        if (len == cap) {
            if ((int64_t)cap > IDX_MAX_FILE) {
                free(buf);
                return sn_errf(err, errlen, "%s: file is above the 4 GiB limit", path);
            }
            uint8_t *grown = realloc(buf, 2 * cap);
            if (!grown) {
                free(buf);
                return sn_errf(err, errlen, "%s: out of memory reading %zu bytes", path, 2 * cap);
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    *bufp = buf;
    *lenp = len;
    return SN_OK;
}

int sn_idx_read(const char *path, sn_idx *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_all(fd, path, &buf, &len, err, errlen);
    close(fd);
    if (rc != SN_OK) return rc;
    rc = sn_idx_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

void sn_idx_free(sn_idx *x)
{
    if (!x) return;
    sn_free(x->data);
    memset(x, 0, sizeof *x);
}
