/* layout.h: how a training job's ranks split three ways, and which checks
 * a layout must pass before any rank starts.
 *
 * world = D (data) x P (pipeline stages) x S (sequence group).  World rank
 * order is rank = (d*P + p)*S + s: S innermost, so that the neighbours of a
 * sequence group's ring are adjacent ranks (usually the same node).
 * Pure: no MPI here; mpi/grid builds the communicators from an sn_layout.
 */
#ifndef SN_LAYOUT_H
#define SN_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "src/seq.h"

typedef struct sn_layout {
    int dp;   /* data-parallel ranks D (0 before sn_layout_resolve: derive it) */
    int pp;   /* pipeline stages P */
    int sp;   /* ranks of a sequence group S */
} sn_layout;

/* Completes and checks l for a job of `world` ranks.  A 0 l->dp becomes
 * world / (pp*sp).  Refuses with SN_ERR and one line saying why and what
 * would work when
 *   - any of world, n_blocks, pp, sp, seq_len, batch is < 1, dp < 0, or
 *     micro < 1;
 *   - pp*sp does not divide world (names the rank counts that would work
 *     for this --pp/--sp), or dp*pp*sp != world (names the --dp that would
 *     work, or the rank count this --dp needs);
 *   - pp > n_blocks, the supernet's largest depth ("at most N pipeline
 *     stages");
 *   - seq_len is not divisible by sp (SN_SEQ_CONTIGUOUS) or by 2*sp
 *     (SN_SEQ_ZIGZAG with sp > 1, the causal language model); the message
 *     names the length, what it comes from (seq_what, e.g. "tokens per
 *     image for patch 4" or "--seq-len") and the nearest lengths that
 *     would work;
 *   - batch (the global batch) is not divisible by dp*micro: each data
 *     rank's batch splits into `micro` equal micro-batches; the message
 *     names the nearest batch sizes that would work.
 * On SN_ERR *l is left as given. */
int sn_layout_resolve(sn_layout *l, int world, int n_blocks, int64_t seq_len,
                      sn_seq_layout seq_layout, int64_t batch, int64_t micro,
                      const char *seq_what, char *err, size_t errlen);

/* The coordinates (d, p, s) of world rank `rank` of a resolved layout. */
void sn_layout_coords(const sn_layout *l, int rank, int *d, int *p, int *s);
/* The world rank of coordinates (d, p, s); inverse of sn_layout_coords. */
int sn_layout_rank(const sn_layout *l, int d, int p, int s);

/* The supernet blocks [*lo, *hi) of pipeline stage p (0 <= p < pp <=
 * n_blocks): n_blocks split into pp consecutive runs as evenly as possible,
 * earlier stages taking the extra block. */
void sn_layout_stage_blocks(int n_blocks, int pp, int p, int *lo, int *hi);

#endif
