/* idx.h: reader for IDX files (the MNIST format), gzip'd or raw.
 *
 * An IDX file is a 4-byte magic (0, 0, type code, number of dimensions),
 * the dimensions as big-endian uint32, then the data.  supernest reads the
 * unsigned-byte type (0x08) only.  The reader validates the magic, the
 * number of dimensions, each dimension (> 0) and that the data length
 * equals the product of the dimensions exactly (neither truncated nor
 * trailing bytes) and at most 4 GiB; gzip input is detected by its magic
 * bytes and inflated with zlib, never past the size the header declares.
 * On error *out is zeroed, so sn_idx_free is always safe.
 */
#ifndef SN_IDX_H
#define SN_IDX_H

#include <stddef.h>
#include <stdint.h>

#define SN_IDX_MAX_DIMS 4

typedef struct sn_idx {
    int ndims;
    int64_t dims[SN_IDX_MAX_DIMS];
    int64_t count;      /* product of dims */
    uint8_t *data;      /* count bytes; owned, release with sn_idx_free */
} sn_idx;

/* Reads path into out.  SN_ERR with a message naming the file and the
 * problem ("...: bad magic 0x00000903, expected 0x0000080N",
 * "...: truncated: header says 47040000 bytes of data, file has 1000", ...). */
int sn_idx_read(const char *path, sn_idx *out, char *err, size_t errlen);
/* Same from a buffer already in memory (raw or gzip'd); used by tests and
 * fuzzing. name is used in messages. */
int sn_idx_parse(const uint8_t *buf, size_t len, const char *name, sn_idx *out,
                 char *err, size_t errlen);
void sn_idx_free(sn_idx *x);

#endif
