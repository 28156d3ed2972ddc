/* ops.h: forward and backward of every layer of the transformer.
 *
 * Conventions (as in llm.c): outputs first, inputs const; matrices are
 * row-major with an explicit row stride (ld*, in elements) so that elastic
 * prefix slices of the supernet's weights are used in place; backward
 * functions ACCUMULATE (+=) into every gradient they are given (except
 * where a _set or _inplace form says otherwise, to spare the caller zeroing
 * a buffer), and a NULL gradient pointer means "not needed".  nt is the
 * number of threads the op may use (>= 1).  No op allocates except where
 * stated.
 */
#ifndef SN_OPS_H
#define SN_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* y = x w^T + b.  x (m, k) ldx; w (n, k) ldw; b (n) or NULL; y (m, n) ldy
 * (overwritten; must not overlap x or w). */
void sn_linear_forward(int nt, float *y, int64_t ldy,
                       const float *x, int64_t ldx,
                       const float *w, int64_t ldw, const float *b,
                       int64_t m, int64_t n, int64_t k);
/* y = x w^T + b + r, r (m, n) ldr (the residual, which y must not
 * overlap); b not NULL. */
void sn_linear_residual_forward(int nt, float *y, int64_t ldy,
                                const float *x, int64_t ldx,
                                const float *w, int64_t ldw, const float *b,
                                const float *r, int64_t ldr,
                                int64_t m, int64_t n, int64_t k);
/* h = x w^T + b (m, n) ldh, kept for backward, and y = gelu(h) (m, n) ldy,
 * in one pass after the GEMM; b not NULL, y must not overlap h. */
void sn_linear_gelu_forward(int nt, float *h, int64_t ldh, float *y, int64_t ldy,
                            const float *x, int64_t ldx,
                            const float *w, int64_t ldw, const float *b,
                            int64_t m, int64_t n, int64_t k);
/* dx += dy w; dw += dy^T x; db += column sums of dy.  Shapes as forward;
 * dx (m, k) lddx, dw (n, k) lddw, dy (m, n) lddy; no gradient may overlap
 * an input.  db is summed in an order independent of nt. */
void sn_linear_backward(int nt, float *dx, int64_t lddx,
                        float *dw, int64_t lddw, float *db,
                        const float *dy, int64_t lddy,
                        const float *x, int64_t ldx,
                        const float *w, int64_t ldw,
                        int64_t m, int64_t n, int64_t k);
/* The same, except that dx is overwritten (dx = dy w), so the caller need
 * not zero it first. */
void sn_linear_backward_set(int nt, float *dx, int64_t lddx,
                            float *dw, int64_t lddw, float *db,
                            const float *dy, int64_t lddy,
                            const float *x, int64_t ldx,
                            const float *w, int64_t ldw,
                            int64_t m, int64_t n, int64_t k);

/* Layer normalisation over the c features of each of m rows (eps 1e-5):
 * y = (x - mean) * rstd * gamma + beta.  mean, rstd (m) are saved for
 * backward.  x (m, c) ldx; y (m, c) ldy (may equal x only if ldy == ldx). */
void sn_layernorm_forward(int nt, float *y, int64_t ldy, float *mean, float *rstd,
                          const float *x, int64_t ldx,
                          const float *gamma, const float *beta,
                          int64_t m, int64_t c);
void sn_layernorm_backward(int nt, float *dx, int64_t lddx,
                           float *dgamma, float *dbeta,
                           const float *dy, int64_t lddy,
                           const float *x, int64_t ldx,
                           const float *mean, const float *rstd,
                           const float *gamma, int64_t m, int64_t c);

/* GELU, tanh approximation (PyTorch's approximate="tanh", to 1-2 ulp, not
 * bit for bit), elementwise on m rows of c values.  y may equal x when
 * ldy == ldx. */
void sn_gelu_forward(int nt, float *y, int64_t ldy, const float *x, int64_t ldx,
                     int64_t m, int64_t c);
/* The convolutional stem's per-token kernels (src/model.c), W the window
 * side, W1 = W - 2 conv1 positions and G = (W1 - 1) / 2 conv2 outputs per
 * side, C1 conv1's channels:
 *   sn_stem_conv1:  z (W1*W1, C1) = b1 + conv1 of the window win (W*W),
 *                   w1t conv1's weight as (9, C1);
 *   sn_stem_gather: a stride-2 convolution's input patches, tap-major
 *                   ((dy*3 + dx)*C + c), at rows x cols of its positions:
 *                   position (i, j)'s 9*C values at col + (i*ldcol + j)*9*C
 *                   from the previous map act of C channels, its position
 *                   (y, x) at act + (y*ldact + x)*C (conv2 of a token:
 *                   rows = cols = ldcol = G, ldact = W1, C = C1);
 *   sn_stem_scatter: dact += the patches' gradient dcol, the reverse;
 *   sn_stem_conv1_grad: acc (9*C1, then C1) += conv1's weight (as w1t) and
 *                   bias gradients, given its output gradient dz. */
void sn_stem_conv1(const float *win, int64_t W, int64_t C1, const float *w1t, const float *b1,
                   float *z);
void sn_stem_gather(float *col, int64_t ldcol, const float *act, int64_t ldact, int64_t rows,
                    int64_t cols, int64_t C);
void sn_stem_scatter(float *dact, int64_t ldact, const float *dcol, int64_t ldcol, int64_t rows,
                     int64_t cols, int64_t C);
void sn_stem_conv1_grad(float *acc, const float *win, const float *dz, int64_t W, int64_t C1);

/* One row of c values of each, for callers that divide the work among
 * threads themselves: y = gelu(x); dx += dy * gelu'(x). */
void sn_gelu_row(float *y, const float *x, int64_t c);
void sn_gelu_backward_row(float *dx, const float *dy, const float *x, int64_t c);
/* dx += dy * gelu'(x), x the forward input. */
void sn_gelu_backward(int nt, float *dx, int64_t lddx, const float *dy, int64_t lddy,
                      const float *x, int64_t ldx, int64_t m, int64_t c);
/* d *= gelu'(x) in place: the gradient of GELU's output (m, c) ldd becomes
 * that of its input x (m, c) ldx. */
void sn_gelu_backward_inplace(int nt, float *d, int64_t ldd, const float *x, int64_t ldx,
                              int64_t m, int64_t c);

/* Multi-head self-attention core for b sequences of t tokens, h heads of d
 * channels each.  qkv (b*t, 3*h*d) row stride ldqkv, each token's row laid
 * out head by head as [q(d) k(d) v(d)] (the supernet's head-major layout,
 * so the first h heads are a prefix).  out (b*t, h*d) row stride ldo:
 * softmax(q k^T / sqrt(d)) v per head, concatenated.  att (b, h, t, t)
 * receives the probabilities (saved for backward).  causal masks keys after
 * the query.  Score and value products are BLIS GEMMs per (sequence, head);
 * the (sequence, head) pairs are spread over nt threads. */
void sn_attention_forward(int nt, float *out, int64_t ldo, float *att,
                          const float *qkv, int64_t ldqkv,
                          int64_t b, int64_t t, int64_t h, int64_t d, bool causal);
/* dqkv += gradient w.r.t. qkv given dout (b*t, h*d) lddo and the saved att.
 * scratch: at least nt * t * t floats, private to this call (split by
 * OpenMP thread number). */
void sn_attention_backward(int nt, float *dqkv, int64_t lddqkv,
                           const float *dout, int64_t lddo,
                           const float *att, const float *qkv, int64_t ldqkv,
                           float *scratch,
                           int64_t b, int64_t t, int64_t h, int64_t d);

/* Mean over the t tokens of each of b sequences: x (b*t, c) ldx -> y (b, c)
 * ldy (overwritten). */
void sn_meanpool_forward(int nt, float *y, int64_t ldy, const float *x, int64_t ldx,
                         int64_t b, int64_t t, int64_t c);
/* dx += dy / t broadcast over the tokens. */
void sn_meanpool_backward(int nt, float *dx, int64_t lddx, const float *dy, int64_t lddy,
                          int64_t b, int64_t t, int64_t c);

/* Row softmax of logits / temperature: p (n, c) from x (n, c), contiguous. */
void sn_softmax(float *p, const float *x, int64_t n, int64_t c, float temperature);

/* Mean cross-entropy over n rows of c logits (contiguous) against integer
 * labels in [0, c), with label smoothing eps in [0, 1): the target is
 * (1 - eps) one-hot + eps / c.  If dlogits is non-NULL it receives
 * (overwrites) scale * d(loss)/d(logits).  If correct is non-NULL it
 * receives the number of rows whose argmax equals the label.  Returns the
 * loss (not scaled).  A label outside [0, c) is an internal error (SN_CHECK):
 * callers validate labels when they load data. */
float sn_xent_hard(float *dlogits, int64_t *correct, const float *logits,
                   const int32_t *labels, int64_t n, int64_t c,
                   float eps, float scale);

/* Mean cross-entropy against soft targets q (n, c) (rows sum to 1):
 * -sum q log softmax(logits).  dlogits (optional) receives (overwrites)
 * scale * (softmax(logits) - q) / n.  Returns the loss. */
float sn_xent_soft(float *dlogits, const float *logits, const float *q,
                   int64_t n, int64_t c, float scale);

#endif
