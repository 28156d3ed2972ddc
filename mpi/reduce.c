#include "mpi/reduce.h"

#include "mpi/check.h"
#include "src/util.h"

void sn_reduce_init(sn_reducer *r, MPI_Comm replica, float *grads, size_t lo, size_t hi,
                    size_t bucket_bytes)
{
    *r = (sn_reducer){.comm = replica, .buf = grads, .lo = lo, .hi = hi};
    SN_MPI(MPI_Comm_size(replica, &r->size));
    r->bucket = bucket_bytes / sizeof(float);
    /* never more buckets than requests to hold them */
    size_t min_bucket = (hi - lo) / (SN_REDUCE_MAX_BUCKETS - 1) + 1;
    if (r->bucket < min_bucket) r->bucket = min_bucket;
}

static void start(sn_reducer *r, size_t from, size_t to)
{
    if (to <= from) return;
    SN_CHECK(r->n_req < SN_REDUCE_MAX_BUCKETS);
    size_t n = to - from;
    SN_CHECK(n <= (size_t)INT32_MAX);
    SN_MPI(MPI_Iallreduce(MPI_IN_PLACE, r->buf + from, (int)n, MPI_FLOAT, MPI_SUM, r->comm,
                          &r->req[r->n_req++]));
    r->bytes += n * sizeof(float);
    r->pending_hi = from;
}

void sn_reduce_arm(sn_reducer *r)
{
    r->armed = r->size > 1;
    r->pending_hi = r->hi;
    r->n_req = 0;
}

void sn_reduce_grads_done(void *ctx, size_t offset)
{
    sn_reducer *r = ctx;
    if (!r->armed) return;
    if (offset < r->lo) offset = r->lo;
    if (offset >= r->pending_hi) return;
    if (r->pending_hi - offset >= r->bucket) start(r, offset, r->pending_hi);
    /* lets Open MPI progress the buckets already started */
    if (r->n_req > 0) {
        int done;
        SN_MPI(MPI_Testall(r->n_req, r->req, &done, MPI_STATUSES_IGNORE));
    }
}

void sn_reduce_finish(sn_reducer *r)
{
    if (r->size <= 1) return;
    if (!r->armed) sn_reduce_arm(r);
    start(r, r->lo, r->pending_hi);
    double t0 = MPI_Wtime();
    SN_MPI(MPI_Waitall(r->n_req, r->req, MPI_STATUSES_IGNORE));
    r->wait_s += MPI_Wtime() - t0;
    r->n_req = 0;
    r->armed = false;
}
