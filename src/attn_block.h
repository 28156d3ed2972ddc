/* attn_block.h: flash-attention-style block kernels, the compute of
 * sequence-parallel (ring) attention.  MPI-free.
 *
 * A block pairs tq query rows with tk key/value rows of the same b
 * sequences and h heads of d channels.  Every row carries its int32 global
 * position in the sequence; with causal, key j is masked for query i when
 * kpos[j] > qpos[i].  Forward gives the block's softmax-normalised partial
 * output and the log-sum-exp (LSE) of each query row's scaled scores
 * (scale 1/sqrt(d)); sn_attn_block_merge folds partials together so that
 * forward over any split of the keys followed by merges equals attention
 * over all keys.  Backward takes the row LSE and D = rowsum(dO * O) of the
 * FULL attention (over all keys), so blocks are independent.
 *
 * Queries are taken in tiles of SN_ATTN_QTILE rows; positions are cut
 * into segments (strictly increasing runs of about a tile's length).  A
 * segment pair whose keys all come after its queries is skipped; one
 * whose keys all come at or before them needs no mask; only the rest
 * ("diagonal") is masked elementwise.  With the zigzag layout a local
 * block is two chunks, so a chunk pair that is wholly masked costs
 * nothing and a diagonal one about half of a full one.
 *
 * Matrices are views with a row stride and a head stride (sn_heads), so
 * the kernels read and write the model's qkv/out/dqkv rows in place (head
 * hh of qkv row i: q at i*ldqkv + hh*3d, k at + d, v at + 2d) as well as
 * compact buffers of blocks in flight.  Backward ACCUMULATES into its
 * gradients.  Kernels spread the b*h (sequence, head) pairs over nt OpenMP
 * threads; each pair's products are single-threaded sn_gemm calls.
 * Nothing here allocates: scratch is the caller's.
 */
#ifndef SN_ATTN_BLOCK_H
#define SN_ATTN_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* b*t rows of h heads; head hh of row i starts at p + i*ld + hh*hs.  The
 * view does not own p.  sn_heads is read, sn_heads_mut written. */
typedef struct sn_heads {
    const float *p;
    int64_t ld, hs;
} sn_heads;

typedef struct sn_heads_mut {
    float *p;
    int64_t ld, hs;
} sn_heads_mut;

/* Query rows per tile: scratch holds a tile's scores against a whole key
 * block, so it is bounded by the tile, not by tq. */
#define SN_ATTN_QTILE 128

/* Floats of scratch the forward and backward kernels need for nt threads
 * and a key block of tk rows. */
int64_t sn_attn_block_scratch_floats(int nt, int64_t tk);

/* True when some key of the block is visible to some query (always when
 * not causal): a false block contributes nothing, in forward or backward,
 * so a ring may skip it, sender and receiver deciding alike. */
bool sn_attn_block_visible(const int32_t *qpos, int64_t tq,
                           const int32_t *kpos, int64_t tk, bool causal);

/* Partial attention of the queries q (b*tq rows, positions qpos (tq), the
 * same for every sequence) over the keys k and values v (b*tk rows,
 * positions kpos (tk)).  Writes (overwrites) o (b*tq rows, h heads of d):
 * softmax over the block's visible keys times v, and lse (b*h, tq)
 * compact, pair s*h + hh: log sum_j exp(scale q_i . k_j) over the visible
 * keys.  A query row with no visible key gets o = 0 and lse = -inf.
 * scratch: sn_attn_block_scratch_floats(nt, tk) floats.  o must not
 * overlap q, k, v. */
void sn_attn_block_forward(int nt, sn_heads_mut o, float *lse, float *scratch,
                           sn_heads q, const int32_t *qpos, int64_t tq,
                           sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                           int64_t b, int64_t h, int64_t d, bool causal);

/* Folds a partial (po, plse) of b*t query rows into the running (o, lse)
 * (same shapes as sn_attn_block_forward's outputs):
 *   lse' = max + log1p(exp(min - max)) of (lse, plse),
 *   o'   = exp(lse - lse') o + exp(plse - lse') po.
 * A side with LSE = -inf (no visible key) leaves the other side exactly as
 * it is (copied, if it is the partial); both -inf stays -inf, o unchanged.
 * Never produces NaN or overflows for finite inputs. */
void sn_attn_block_merge(int nt, sn_heads_mut o, float *lse,
                         sn_heads po, const float *plse,
                         int64_t b, int64_t t, int64_t h, int64_t d);

/* dsum (b*h, t) compact = rowsum(dout * out) per pair and row: the D of
 * the backward pass. */
void sn_attn_block_rowdot(int nt, float *dsum, sn_heads dout, sn_heads out,
                          int64_t b, int64_t t, int64_t h, int64_t d);

/* Gradient of one block pair, given the full attention's row lse and dsum
 * ((b*h, tq) compact each) and dout (b*tq rows, h heads of d):
 *   P = exp(scale q k^T - lse) (0 where masked), dP = dout v^T,
 *   dS = P * (dP - dsum);
 *   dq += scale dS k;  dk += scale dS^T q;  dv += P^T dout.
 * dq has b*tq rows, dk and dv b*tk rows; none may overlap an input or each
 * other.  scratch as for forward. */
void sn_attn_block_backward(int nt, sn_heads_mut dq, sn_heads_mut dk, sn_heads_mut dv,
                            float *scratch,
                            sn_heads q, sn_heads dout, const float *lse, const float *dsum,
                            const int32_t *qpos, int64_t tq,
                            sn_heads k, sn_heads v, const int32_t *kpos, int64_t tk,
                            int64_t b, int64_t h, int64_t d, bool causal);

/* dst = src (or dst += src) for rows rows of h heads of w floats. */
void sn_heads_copy(int nt, sn_heads_mut dst, sn_heads src, int64_t rows, int64_t h, int64_t w);
void sn_heads_add(int nt, sn_heads_mut dst, sn_heads src, int64_t rows, int64_t h, int64_t w);

#endif
