/* ring.h: sequence-parallel attention over the S ranks of a sequence
 * group, as an sn_attn_engine (src/seq.h), forward and backward.
 *
 * Two variants, both exact up to fp32 summation order:
 *
 *   SN_RING_PLAIN (ring attention): each rank keeps its queries; the K/V
 *   blocks pass around the ring (to r+1, from r-1) for S-1 hops, each hop's
 *   transfer started before the current block is computed.  Backward sends
 *   K/V round again; the dK/dV accumulator of a block travels one hop
 *   behind it, each rank adding the contribution of the block it holds,
 *   and reaches the block's owner after the last hop.
 *
 *   SN_RING_TOKEN (TokenRing, bidirectional): K/V stay put; query blocks
 *   pass r -> r+1 and each partial (output, log-sum-exp) goes straight back
 *   to the query's owner, who merges it.  Backward: (Q, dO, LSE, D) pass
 *   r -> r+1, dK/dV accumulate where K/V live, and each dQ partial goes
 *   back to its owner.  Partials of blocks the causal mask hides entirely
 *   are neither computed nor sent.
 *
 * Per call and rank, in floats (bytes = 4x), with n = b*tl*h*d,
 * m = b*h*tl, and v the number of the S-1 hops whose block (the one this
 * rank computes) the mask leaves partly visible (v = S-1 when not causal,
 * and with the zigzag layout):
 *   plain forward  2n(S-1)            plain backward 4n(S-1)
 *   token forward  n(S-1) + v(n+m)    token backward (2n+2m)(S-1) + v n
 *
 * Forward keeps in save only the row log-sum-exp, (b*h, tl) floats (far
 * less than the b*h*tl*tl seq.h reserves); backward reads it and
 * recomputes the probabilities block by block.  Each block is computed
 * in pieces of nt heads with the exchanges in flight tested in between,
 * as Open MPI moves a large message only inside MPI calls.  The own
 * block is split in two: one half covers the first hop, the other the
 * last return (accumulators or partials), so that every transfer has
 * compute to hide behind (unless the mask empties the block).
 *
 * The engine duplicates the communicator it is given, so its traffic
 * never meets the caller's.  It owns its buffers, grown to the largest
 * call seen; an allocation or MPI failure is a fatal internal error
 * (SN_CHECK, which ends the job through the abort hook).
 */
#ifndef SN_MPI_RING_H
#define SN_MPI_RING_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "src/seq.h"

typedef enum sn_ring_variant {
    SN_RING_PLAIN,
    SN_RING_TOKEN,
} sn_ring_variant;

/* Since creation or the last sn_ring_reset_stats, on this rank. */
typedef struct sn_ring_counters {
    uint64_t bytes_sent;    /* payload of every send */
    uint64_t messages;      /* sends */
    uint64_t calls;         /* forward and backward calls */
    double wait_seconds;    /* blocked in MPI waits */
    double compute_seconds; /* in block kernels, merges and packing */
} sn_ring_counters;

/* An engine over the ranks of seq (collective over seq: every rank calls it
 * with the same variant and layout).  The layout is that of the tokens the
 * model gives forward (local order).  Destroy with sn_ring_destroy. */
sn_attn_engine *sn_ring_create(MPI_Comm seq, sn_ring_variant variant, sn_seq_layout layout);
/* Frees the engine and its communicator (collective); NULL is ignored. */
void sn_ring_destroy(sn_attn_engine *e);

/* An engine over this rank alone (MPI_COMM_SELF): block attention with the
 * causally masked blocks skipped and a log-sum-exp save, for evaluating a
 * long-sequence model on one rank.  Destroy with sn_ring_destroy. */
sn_attn_engine *sn_ring_create_local(void);

void sn_ring_stats(const sn_attn_engine *e, sn_ring_counters *c);
void sn_ring_reset_stats(sn_attn_engine *e);

/* For benchmarks: with local_only, every transfer is replaced by a local
 * copy of the send buffer into the receive buffer, so that forward and
 * backward run the identical sequence of kernels with no communication
 * (and give wrong results).  Off by default. */
void sn_ring_set_local_only(sn_attn_engine *e, bool local_only);

#endif
