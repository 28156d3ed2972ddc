/* evaluate.h: accuracy and loss of a sub-network over a set of images —
 * the one evaluation path used at the end of training and by
 * `supernest eval`.  Part of the command layer (it reads io/ data).
 */
#ifndef SN_EVALUATE_H
#define SN_EVALUATE_H

#include <stdint.h>

#include "io/ckpt.h"
#include "io/data.h"
#include "io/text.h"
#include "src/model.h"

typedef struct sn_eval_result {
    int64_t n;          /* images (or tokens) evaluated */
    double loss;        /* mean cross-entropy */
    double accuracy;    /* fraction correct */
} sn_eval_result;

/* The result of n examples (or tokens) whose cross-entropies sum to
 * loss_sum with `correct` right predictions (zeros when n is 0). */
sn_eval_result sn_eval_result_of(double loss_sum, double correct, int64_t n);

/* Evaluates sub-network n on images idx[first..first+count) (idx NULL: the
 * images first..first+count of x) in
 * batches of at most the workspace's max batch; tokens (batch, T, P) and
 * labels (batch) are caller-owned scratch of that size.  logits, when not
 * NULL, receives every image's logits (count, C). */
sn_eval_result sn_evaluate(int nt, const sn_model *m, sn_acts *a, int64_t batch,
                           const sn_subnet *n, const sn_images *x, const int64_t *idx,
                           int64_t first, int64_t count, int patch, sn_norm norm,
                           float *tokens, int32_t *labels, float *logits);

/* The language model on windows [first, first + count) of the text's
 * validation or test split (see io/text.h), in batches of at most the
 * workspace's max batch, attention through attn (the engine a was created
 * with; sn_eval_engine); ids and labels are caller-owned scratch of
 * (batch, T).  n counts tokens; loss is the mean cross-entropy in nats per
 * byte (bits per byte = loss / ln 2); accuracy the next-byte accuracy. */
sn_eval_result sn_evaluate_text(int nt, const sn_model *m, sn_acts *a,
                                const sn_attn_engine *attn, int64_t batch, const sn_subnet *n,
                                const sn_text *x, sn_text_split split, int64_t first,
                                int64_t count, int32_t *ids, int32_t *labels);

/* The held-out data of a training run, as evaluation sees it (borrowed):
 * images — the validation split, val_idx into the training file, and the
 * test file; or (text non-NULL) the language model's validation and test
 * windows of seq_len bytes. */
typedef struct sn_eval_data {
    const sn_images *train, *test;
    const int64_t *val_idx;
    int64_t n_val;
    int patch;
    sn_norm norm;
    const sn_text *text;
    int64_t seq_len;
} sn_eval_data;

/* Examples (images or windows) of the validation (test false) or test split. */
int64_t sn_eval_count(const sn_eval_data *d, bool test);

/* Examples [first, first + n) of a split, through sn_evaluate or
 * sn_evaluate_text (attn: the engine a was made with, for text); scratch
 * tokens (images) or ids (text) and labels of the workspace's batch.  The
 * language model's loss is in nats per byte. */
sn_eval_result sn_evaluate_split(int nt, const sn_model *m, sn_acts *a,
                                 const sn_attn_engine *attn, int64_t batch, const sn_subnet *net,
                                 const sn_eval_data *d, bool test, int64_t first, int64_t n,
                                 float *tokens, int32_t *ids, int32_t *labels);

/* A one-rank evaluation workspace for batches of `batch` sequences of
 * space s: for the language model with an attention engine of its own
 * (*attn, memory linear in the sequence length; destroy with
 * sn_ring_destroy), for images with one-rank attention (*attn NULL).
 * NULL when out of memory. */
sn_acts *sn_eval_acts(const sn_space *s, int64_t batch, sn_attn_engine **attn);

/* Resolves arg (a checkpoint file, a checkpoint or run directory), reads
 * its description into info and its weights into a new model *m (caller
 * destroys).  The resolved file name goes to path. */
int sn_open_checkpoint(const char *arg, sn_model **m, sn_file_info *info, char *path,
                       size_t pathlen, char *err, size_t errlen);

#endif
