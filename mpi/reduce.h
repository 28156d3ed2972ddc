/* reduce.h: sums a pipeline stage's gradients over the D x S ranks that
 * hold the same weights (data ranks and the ranks of a sequence group), in
 * buckets whose nonblocking all-reduce starts while backward is still
 * running.
 *
 * The stage's gradients are one contiguous range [lo, hi) of the flat
 * gradient buffer, and backward completes them from the top down: the
 * model reports (sn_shard.grads_done) that every gradient at offsets
 * >= offset is final.  Once the pending top part is at least the bucket
 * size, its MPI_Iallreduce starts in place.  Every rank of the replica
 * communicator sees the same reports in the same order (they compute the
 * same sub-network on the same stage), so the collectives match.
 */
#ifndef SN_MPI_REDUCE_H
#define SN_MPI_REDUCE_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SN_REDUCE_MAX_BUCKETS 256

typedef struct sn_reducer {
    MPI_Comm comm;          /* borrowed: the replica group */
    int size;
    float *buf;             /* borrowed: the gradient buffer */
    size_t lo, hi;          /* the stage's range, in floats */
    size_t bucket;          /* floats per bucket, at least */
    bool armed;             /* this backward is the step's last: reports count */
    size_t pending_hi;      /* [watermark, pending_hi) is final but not started */
    int n_req;
    MPI_Request req[SN_REDUCE_MAX_BUCKETS];
    double wait_s;          /* time spent in sn_reduce_finish's wait */
    uint64_t bytes;         /* bytes all-reduced (payload, not wire traffic) */
} sn_reducer;

/* bucket_bytes: the smallest bucket (the last may be smaller). */
void sn_reduce_init(sn_reducer *r, MPI_Comm replica, float *grads, size_t lo, size_t hi,
                    size_t bucket_bytes);
/* Arms the reducer for the step's last backward on this stage. */
void sn_reduce_arm(sn_reducer *r);
/* The sn_shard.grads_done hook (ctx: the reducer). */
void sn_reduce_grads_done(void *ctx, size_t offset);
/* Starts what is left and waits for every bucket; afterwards every rank of
 * the replica group holds the summed gradients of [lo, hi). */
void sn_reduce_finish(sn_reducer *r);

#endif
