/* text.h: bytes of text for the causal language-model task (--task lm).
 *
 * The vocabulary is the 256 byte values.  A training window of T tokens
 * starting at byte a has input ids bytes[a .. a+T) and labels, the next
 * byte of each, bytes[a+1 .. a+T+1).  The text (one file, or a directory's
 * files concatenated) is split into three contiguous regions: training the
 * first 90% of the bytes, validation the next 5%, test the last 5%; a
 * window and its labels stay inside one region.
 *
 * Default data: Debian's package fortunes, /usr/share/games/fortunes.
 */
#ifndef SN_TEXT_H
#define SN_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define SN_TEXT_DEFAULT_PATH "/usr/share/games/fortunes"

typedef enum sn_text_split {
    SN_TEXT_TRAIN,
    SN_TEXT_VAL,
    SN_TEXT_TEST,
} sn_text_split;

typedef struct sn_text {
    uint8_t *bytes;      /* (n) owned */
    int64_t n;
    int64_t train_end;   /* training [0, train_end) = first 90% (n*90/100) */
    int64_t val_end;     /* validation [train_end, val_end), val_end = n*95/100;
                            test [val_end, n) */
} sn_text;

/* Loads path, a regular file or a directory whose regular files (not
 * symbolic links, not *.dat or *.u8: the index and UTF-8 links of fortune
 * files) are read in byte-wise name order and concatenated; empty files in
 * a directory are skipped.  SN_ERR with one line naming the file when it
 * is missing or unreadable, an empty file, a directory without non-empty
 * text files, not text (more than 1% of its bytes are control bytes:
 * 0x00-0x1f or 0x7f other than \t \n \v \f \r and ESC; each file of a
 * directory is checked on its own), or too short for seq_len >= 1 (each of
 * the three regions needs seq_len + 1 bytes; the message gives the byte
 * count and the largest --seq-len the text allows).  On SN_ERR *text is
 * left empty (safe to pass to sn_text_free). */
int sn_text_load(const char *path, int64_t seq_len, sn_text *text, char *err, size_t errlen);
void sn_text_free(sn_text *text);

/* The byte range [*lo, *hi) of a region. */
void sn_text_region(const sn_text *text, sn_text_split split, int64_t *lo, int64_t *hi);

/* The start offsets starts (B) of step `step`'s B training windows of T
 * tokens, uniform over a in [0, train_end - T) (so a + T < train_end: the
 * last label is a training byte), drawn from sn_rng stream (seed, step)
 * alone: no loader state, so a resumed run and every rank draw the same
 * windows (each data rank then takes its own rows).  T is at most the
 * seq_len the text was loaded with. */
void sn_text_train_starts(const sn_text *text, uint64_t seed, int64_t step, int64_t B, int64_t T,
                          int64_t *starts);

/* For the b windows starts (b) of T tokens, writes the tl positions pos
 * (tl) of each (a rank of a sequence group holds only its positions:
 * sn_seq_positions in src/seq.h; pos NULL: positions 0..tl-1):
 *   ids (b, tl)    ids[i][j]    = bytes[starts[i] + pos[j]]
 *   labels (b, tl) labels[i][j] = bytes[starts[i] + pos[j] + 1]
 * Every window must lie in the text, 0 <= pos[j] < T. */
void sn_text_batch(const sn_text *text, const int64_t *starts, int64_t b, int64_t T,
                   const int32_t *pos, int64_t tl, int32_t *ids, int32_t *labels);

/* Evaluation windows of a region [lo, hi): the (hi - lo - 1) / T
 * consecutive, non-overlapping windows of T inputs, window k starting at
 * lo + k*T with its T + 1 bytes inside the region; together they predict
 * each byte lo+1 .. lo + count*T once (the tail of fewer than T bytes is
 * left out).  0 when the region is shorter than T + 1 bytes. */
int64_t sn_text_eval_count(const sn_text *text, sn_text_split split, int64_t T);
/* Start offset of evaluation window k, 0 <= k < sn_text_eval_count. */
int64_t sn_text_eval_start(const sn_text *text, sn_text_split split, int64_t T, int64_t k);

#endif
