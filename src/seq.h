/* seq.h: a sequence split across the S ranks of a sequence group, and the
 * interface through which the model calls attention over the whole
 * sequence while it holds only its own tokens.
 *
 * Layouts of a sequence of T tokens over S ranks (rank r in [0, S)):
 *   contiguous: rank r holds tokens [r*T/S, (r+1)*T/S) (needs S | T);
 *   zigzag (for causal attention, balancing the work): T is cut into 2S
 *     chunks of c = T/(2S) tokens; rank r holds chunk r followed by chunk
 *     2S-1-r, so its local token i < c is global token r*c + i and local
 *     token c + i is global token (2S-1-r)*c + i (needs 2S | T).
 * With S == 1 both layouts are the identity.
 */
#ifndef SN_SEQ_H
#define SN_SEQ_H

#include <stdbool.h>
#include <stdint.h>

typedef enum sn_seq_layout {
    SN_SEQ_CONTIGUOUS,
    SN_SEQ_ZIGZAG,
} sn_seq_layout;

/* Writes the global positions of rank r's T/S local tokens, in local
 * order, to pos (T/S).  The caller has checked divisibility. */
void sn_seq_positions(sn_seq_layout layout, int64_t T, int S, int r, int32_t *pos);

/* Attention over a sequence whose tokens are spread over a sequence group
 * (implemented by mpi/ring for S > 1; the model's own one-rank attention
 * when the model is given no engine).
 *
 * Each rank holds tl tokens of each of b sequences, in its layout's local
 * order.  qkv (b*tl, 3*h*d) row stride ldqkv, each token's row head by head
 * [q(d) k(d) v(d)]; out (b*tl, h*d) row stride ldo: softmax(q k^T /
 * sqrt(d)) v over ALL T = S*tl tokens of the sequence (keys after the
 * query's global position masked when causal), as sn_attention_forward on
 * the gathered sequence would give for this rank's rows.
 *
 * save: b*h*tl floats that forward fills with what its backward needs
 * (the log-sum-exp of every query row and head); it is kept per layer and
 * micro-batch by the caller.  Memory is therefore linear in the sequence
 * length, where one-rank attention keeps the (tl, tl) probabilities.
 *
 * backward ACCUMULATES into dqkv (b*tl, 3*h*d) lddqkv the gradient given
 * dout (b*tl, h*d) lddo, the forward's save, out and qkv.
 * Every rank of the group calls forward and backward for the same layers
 * in the same order (they are collective over the group). */
typedef struct sn_attn_engine {
    void *ctx;
    void (*forward)(void *ctx, int nt, float *out, int64_t ldo, float *save,
                    const float *qkv, int64_t ldqkv,
                    int64_t b, int64_t tl, int64_t h, int64_t d, bool causal);
    void (*backward)(void *ctx, int nt, float *dqkv, int64_t lddqkv,
                     const float *dout, int64_t lddo, const float *save,
                     const float *out, int64_t ldo, const float *qkv, int64_t ldqkv,
                     int64_t b, int64_t tl, int64_t h, int64_t d, bool causal);
} sn_attn_engine;

#endif
