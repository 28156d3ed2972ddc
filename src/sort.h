/* sort.h: importance sorting of the elastic widths.
 *
 * A sub-network keeps the first h attention heads and the first f MLP
 * hidden units of each block it keeps (src/arch.h).  Sorting reorders,
 * block by block, the heads and the hidden units of the supernet so that
 * the most important come first, and so every sub-network holds the ones
 * that matter most.
 *
 * Importance is the L1 norm of a unit's weights:
 * - MLP hidden unit u: row u of fc1.weight (its inputs) plus column u of
 *   fc2.weight (its outputs);
 * - head j: its q, k and v rows of attn.qkv.weight plus its D columns of
 *   attn.proj.weight.
 * Units are ordered by decreasing importance; ties keep their order.
 *
 * Moving a hidden unit or a head together with all of its weights (rows,
 * bias entries and columns) permutes a sum, so the full network computes
 * the same function: its logits change only by float rounding (the sums
 * run in another order).  Every other buffer with the parameters' layout
 * that must follow (the AdamW moments m and v) is permuted the same way.
 * The embedding is not sorted: its channels run through every layer.
 */
#ifndef SN_SORT_H
#define SN_SORT_H

#include <stddef.h>

#include "src/model.h"

typedef struct sn_sort_stats {
    int blocks;         /* blocks sorted */
    int heads_moved;    /* heads whose position changed, over all blocks */
    int units_moved;    /* MLP hidden units whose position changed */
} sn_sort_stats;

/* Sorts the heads and MLP hidden units of supernet blocks [block_lo,
 * block_hi) of m by importance, permuting m's parameters and each of the
 * n_follow buffers in follow[] (same layout as m->params, e.g. the AdamW
 * moments) alike.  The gradients are not permuted (zero them before the
 * next backward).  Deterministic: the same weights give the same order
 * on every rank.  SN_ERR only when out of memory (nothing changed then). */
int sn_sort_channels(sn_model *m, float *const *follow, int n_follow, int block_lo,
                     int block_hi, sn_sort_stats *st);

#endif
