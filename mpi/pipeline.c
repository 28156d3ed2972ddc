#include "mpi/pipeline.h"

#include <math.h>
#include <string.h>

#include "mpi/check.h"
#include "src/ops.h"
#include "src/seq.h"
#include "src/tensor.h"
#include "src/util.h"

enum { TAG_ACT = 0, TAG_GRAD = 1 };

static int tag_of(int kind, int micro) { return 2 * micro + kind; }

/* sn_shard.seq_sum: the pooled sums of a sequence group */
static void seq_sum(void *ctx, float *buf, int64_t n)
{
    const sn_dist *d = ctx;
    SN_CHECK(n <= INT32_MAX);
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, d->g->seq));
}

static void grads_done(void *ctx, size_t offset)
{
    sn_dist *d = ctx;
    sn_reduce_grads_done(&d->red, offset);
}

int sn_dist_init(sn_dist *d, const sn_grid *g, sn_trainer *t, const sn_dist_opts *o,
                 char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->g = g;
    d->t = t;
    d->skips_left = o->skip_nonfinite;
    d->debug_nan_step = o->debug_nan_step;
    d->debug_nan_rank = o->debug_nan_rank;
    const sn_model *m = t->model;
    const sn_space *s = &m->space;
    const bool lm = s->task == SN_TASK_LM;
    const int P = g->l.pp, S = g->l.sp;
    const int64_t T = s->n_tokens, tl = T / S;
    SN_CHECK(o->batch % ((int64_t)g->l.dp * o->micro) == 0 && T % S == 0);

    sn_shard *sh = &d->sh;
    sn_layout_stage_blocks(sn_space_max_blocks(s), P, g->p, &sh->block_lo, &sh->block_hi);
    sh->first = g->p == 0;
    sh->last = g->p == P - 1;
    sh->tl = tl;
    sh->seq_rank = g->s;
    sh->seq_size = S;
    sh->seq_sum = seq_sum;
    sh->grads_done = grads_done;
    sh->ctx = d;
    d->pos = sn_alloc((size_t)tl * sizeof(int32_t));
    if (!d->pos) return sn_errf(err, errlen, "out of memory");
    const sn_seq_layout layout = lm ? SN_SEQ_ZIGZAG : SN_SEQ_CONTIGUOUS;
    sn_seq_positions(layout, T, S, g->s, d->pos);
    sh->pos = d->pos;
    /* The language model always uses the engine, even alone: its block
     * kernels skip the causally masked half and keep O(T) memory. */
    if (S > 1 || lm) {
        d->ring = sn_ring_create(g->seq, o->ring, layout);
        sh->attn = d->ring;
    }

    d->micro = o->micro;
    d->b_local = o->batch / g->l.dp;
    d->mb = d->b_local / o->micro;
    d->rows_mb = lm ? d->mb * tl : d->mb;
    d->rows_global = lm ? o->batch * T : o->batch;
    /* 1F1B keeps at most P - p micro-batches in flight on stage p.  The
     * first of several stages of a model with a stem keeps every
     * micro-batch's workspace for the whole step instead, so that a step's
     * members share one pass of the stem over each micro-batch
     * (sn_acts_share_stem); a schedule of one member a step has nothing to
     * share, and on one stage micro-batches are there to save memory. */
    const bool keep_all = sh->first && P > 1 && sn_space_has_stem(s) &&
                          o->micro <= SN_PIPE_MAX_SLOTS && t->o.schedule != SN_SCHEDULE_FIXED;
    d->n_slots = keep_all || o->micro < P - g->p ? o->micro : P - g->p;
    SN_CHECK(d->n_slots <= SN_PIPE_MAX_SLOTS);
    const int64_t E = s->embed[s->n_embed - 1], C = s->n_classes;
    bool ok = true;
    for (int i = 0; i < d->n_slots; i++) {
        d->acts[i] = sn_acts_create_shard(s, sh, d->mb);
        ok = ok && d->acts[i];
        d->send_req[i][0] = d->send_req[i][1] = MPI_REQUEST_NULL;
    }
    d->grad_in = sn_alloc((size_t)(d->mb * tl * E) * sizeof(float));
    d->teacher = sn_alloc((size_t)(d->rows_mb * o->micro * C) * sizeof(float));
    d->dlogits = sn_alloc((size_t)(d->rows_mb * C) * sizeof(float));
    if (!ok || !d->grad_in || !d->teacher || !d->dlogits) {
        sn_dist_free(d);
        return sn_errf(err, errlen, "out of memory allocating the pipeline's workspaces "
                                    "(%d micro-batches of %lld sequences in flight)",
                       d->n_slots, (long long)d->mb);
    }
    sn_shard_params(m, sh, &d->t_lo, &d->t_hi, &d->p_lo, &d->p_hi);
    sn_reduce_init(&d->red, g->replica, m->grads, d->p_lo, d->p_hi, o->bucket_bytes);
    return SN_OK;
}

void sn_dist_free(sn_dist *d)
{
    for (int i = 0; i < d->n_slots; i++) sn_acts_destroy(d->acts[i]);
    sn_ring_destroy(d->ring);
    sn_free(d->pos);
    sn_free(d->grad_in);
    sn_free(d->teacher);
    sn_free(d->dlogits);
    memset(d, 0, sizeof *d);
}

/* One member's pass over the micro-batches; adds its weighted loss on the
 * last stage to *loss_sum. */
typedef struct member_run {
    sn_dist *d;
    const sn_subnet *net;
    int k, n;                   /* member k of n */
    float weight;               /* its loss weight (sn_train_members) */
    const void *input;
    const int32_t *labels;
    double loss_sum;
} member_run;

static void wait_slot(sn_dist *d, int slot)
{
    double t0 = MPI_Wtime();
    SN_MPI(MPI_Waitall(2, d->send_req[slot], MPI_STATUSES_IGNORE));
    d->c.p2p_wait_s += MPI_Wtime() - t0;
}

static void recv_from(sn_dist *d, float *buf, int64_t n, int peer, int tag)
{
    SN_CHECK(n <= INT32_MAX);
    double t0 = MPI_Wtime();
    SN_MPI(MPI_Recv(buf, (int)n, MPI_FLOAT, peer, tag, d->g->pipe, MPI_STATUS_IGNORE));
    d->c.p2p_wait_s += MPI_Wtime() - t0;
}

static void send_to(sn_dist *d, const float *buf, int64_t n, int peer, int tag, MPI_Request *r)
{
    SN_CHECK(n <= INT32_MAX);
    SN_MPI(MPI_Isend(buf, (int)n, MPI_FLOAT, peer, tag, d->g->pipe, r));
    d->c.p2p_bytes += (uint64_t)n * sizeof(float);
}

static void forward(member_run *r, int j)
{
    sn_dist *d = r->d;
    sn_trainer *t = d->t;
    const sn_space *s = &t->model->space;
    const bool lm = s->task == SN_TASK_LM;
    const int64_t C = s->n_classes, tl = d->sh.tl, act = d->mb * tl * r->net->embed;
    const int slot = j % d->n_slots;
    wait_slot(d, slot);
    sn_acts *a = d->acts[slot];
    const void *in;
    if (d->sh.first) {
        in = lm ? (const void *)((const int32_t *)r->input + j * d->mb * tl)
                : (const void *)((const float *)r->input + j * d->mb * tl * s->token_dim);
    } else {
        recv_from(d, sn_acts_input(a), act, d->g->prev, tag_of(TAG_ACT, j));
        in = sn_acts_input(a);
    }
    const float *out = sn_model_forward_shard(t->o.threads, t->model, a, &d->sh, r->net, in,
                                              d->mb);
    if (!d->sh.last) {
        send_to(d, out, act, d->g->next, tag_of(TAG_ACT, j), &d->send_req[slot][0]);
        return;
    }
    const float scale = r->weight * ((float)d->rows_mb / (float)d->rows_global);
    const float loss = sn_member_loss(&t->o, t->step, r->k, r->n, d->dlogits,
                                      d->teacher + j * d->rows_mb * C, out,
                                      r->labels + j * d->rows_mb, d->rows_mb, C, scale);
    /* on the image task every rank of a sequence group has the same loss */
    if (lm || d->g->s == 0) r->loss_sum += (double)loss * (double)d->rows_mb;
}

static void backward(member_run *r, int j)
{
    sn_dist *d = r->d;
    sn_trainer *t = d->t;
    const int64_t act = d->mb * d->sh.tl * r->net->embed;
    const int slot = j % d->n_slots;
    const float *dout = d->dlogits;
    if (!d->sh.last) {
        recv_from(d, d->grad_in, act, d->g->next, tag_of(TAG_GRAD, j));
        dout = d->grad_in;
    }
    if (r->k == r->n - 1 && j == d->micro - 1) sn_reduce_arm(&d->red);
    const float *dx = sn_model_backward_shard(t->o.threads, t->model, d->acts[slot], &d->sh,
                                              dout);
    if (!d->sh.first)
        send_to(d, dx, act, d->g->prev, tag_of(TAG_GRAD, j), &d->send_req[slot][1]);
}

/* The 1F1B schedule of one member on this stage. */
static void run_member(member_run *r)
{
    sn_dist *d = r->d;
    const int P = d->g->l.pp, M = d->micro;
    int warm = P - d->g->p - 1;
    if (warm > M) warm = M;
    int f = 0, b = 0;
    while (f < warm) forward(r, f++);
    while (f < M) {
        forward(r, f++);
        backward(r, b++);
    }
    while (b < M) backward(r, b++);
    for (int i = 0; i < d->n_slots; i++) wait_slot(d, i);
}

int sn_dist_step(sn_dist *d, const void *input, const int32_t *labels, sn_step_stats *st,
                 char *err, size_t errlen)
{
    sn_trainer *t = d->t;
    sn_model *m = t->model;
    const double t0 = MPI_Wtime();
    const uint64_t flops0 = sn_gemm_flops();
    memset(st, 0, sizeof *st);
    st->n_members = sn_train_members(&m->space, &t->o, t->step, st->net, st->role, st->weight);
    memset(m->grads + d->p_lo, 0, (d->p_hi - d->p_lo) * sizeof(float));

    /* [losses of the members..., GEMM FLOPs, squared gradient norm] */
    double sums[SN_MAX_MEMBERS + 2] = {0};
    /* the members share the stem's pass when each workspace keeps its
     * micro-batch for the whole step */
    for (int i = 0; i < d->n_slots; i++)
        sn_acts_share_stem(d->acts[i], d->n_slots == d->micro ? st->n_members : 1);
    for (int k = 0; k < st->n_members; k++) {
        member_run r = {.d = d, .net = &st->net[k], .k = k, .n = st->n_members,
                        .weight = st->weight[k], .input = input, .labels = labels};
        run_member(&r);
        sums[k] = r.loss_sum;
    }
    const double tr = MPI_Wtime();
    sn_reduce_finish(&d->red);
    d->c.reduce_wait_s += MPI_Wtime() - tr;
    const int n = st->n_members;
    sums[n] = (double)(sn_gemm_flops() - flops0);
    if (t->step + 1 == d->debug_nan_step && d->g->rank == d->debug_nan_rank) sums[0] = NAN;
    /* each stage's norm counted once: by its data rank 0, sequence rank 0 */
    if (d->g->d == 0 && d->g->s == 0) sums[n + 1] = sn_grad_sumsq(t->o.threads, m, d->p_lo, d->p_hi);
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, n + 2, MPI_DOUBLE, MPI_SUM, d->g->world));
    for (int k = 0; k < n; k++) st->loss[k] = (float)(sums[k] / (double)d->rows_global);
    st->flops = (uint64_t)sums[n];
    st->grad_norm = sqrt(sums[n + 1]);
    if (sn_step_check(st, t->step + 1, err, errlen) != SN_OK) {
        if (d->skips_left == 0) return SN_ERR;
        d->skips_left--;
        st->skipped = true;
        st->lr = sn_lr_at(&t->o.adamw, t->step);
        t->step++;
        d->c.step_s += MPI_Wtime() - t0;
        return SN_OK;
    }
    sn_step_apply(t, st, d->t_lo, d->t_hi);
    d->c.reduce_bytes = d->red.bytes;
    d->c.step_s += MPI_Wtime() - t0;
    return SN_OK;
}

void sn_dist_eval(sn_dist *d, const sn_subnet *net, const void *input, const int32_t *labels,
                  int64_t b, double *loss_sum, int64_t *correct, int64_t *rows)
{
    const sn_model *m = d->t->model;
    const sn_space *s = &m->space;
    const bool lm = s->task == SN_TASK_LM;
    const int64_t C = s->n_classes, tl = d->sh.tl;
    SN_CHECK(b >= 1 && b <= d->b_local);
    /* [loss sum, correct, rows] of this rank's last-stage rows */
    double sums[3] = {0};
    for (int i = 0; i < d->n_slots; i++) sn_acts_share_stem(d->acts[i], 1);
    for (int64_t at = 0, j = 0; at < b; at += d->mb, j++) {
        const int64_t mb = b - at < d->mb ? b - at : d->mb, act = mb * tl * net->embed;
        const int slot = (int)(j % d->n_slots);
        wait_slot(d, slot);
        sn_acts *a = d->acts[slot];
        const void *in;
        if (d->sh.first) {
            in = lm ? (const void *)((const int32_t *)input + at * tl)
                    : (const void *)((const float *)input + at * tl * s->token_dim);
        } else {
            recv_from(d, sn_acts_input(a), act, d->g->prev, tag_of(TAG_ACT, (int)(j % SN_PIPE_MAX_MICRO)));
            in = sn_acts_input(a);
        }
        const float *out = sn_model_forward_shard(d->t->o.threads, m, a, &d->sh, net, in, mb);
        if (!d->sh.last) {
            send_to(d, out, act, d->g->next, tag_of(TAG_ACT, (int)(j % SN_PIPE_MAX_MICRO)),
                    &d->send_req[slot][0]);
            continue;
        }
        const int64_t r = lm ? mb * tl : mb;
        int64_t ok = 0;
        const float loss = sn_xent_hard(NULL, &ok, out, labels + (lm ? at * tl : at), r, C, 0.0f,
                                        1.0f);
        if (lm || d->g->s == 0) {
            sums[0] += (double)loss * (double)r;
            sums[1] += (double)ok;
            sums[2] += (double)r;
        }
    }
    for (int i = 0; i < d->n_slots; i++) wait_slot(d, i);
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, d->g->world));
    *loss_sum = sums[0];
    *correct = (int64_t)sums[1];
    *rows = (int64_t)sums[2];
}

void sn_dist_owners(const sn_dist *d, int *owner)
{
    for (int p = 0; p < d->g->l.pp; p++) {
        int t_lo, t_hi;
        size_t lo, hi;
        sn_stage_params(d->t->model, d->g->l.pp, p, &t_lo, &t_hi, &lo, &hi);
        for (int i = t_lo; i < t_hi; i++) owner[i] = sn_layout_rank(&d->g->l, 0, p, 0);
    }
}

void sn_dist_sync_weights(sn_dist *d)
{
    float *w = d->t->model->params;
    for (int p = 0; p < d->g->l.pp; p++) {
        int t_lo, t_hi;
        size_t lo, hi;
        sn_stage_params(d->t->model, d->g->l.pp, p, &t_lo, &t_hi, &lo, &hi);
        SN_CHECK(hi - lo <= INT32_MAX);
        SN_MPI(MPI_Bcast(w + lo, (int)(hi - lo), MPI_FLOAT, p, d->g->pipe));
    }
}

void sn_dist_report(sn_dist *d, int64_t steps, FILE *out)
{
    enum { N = 8 };
    sn_ring_counters rc = {0};
    if (d->ring) sn_ring_stats(d->ring, &rc);
    const double per = steps > 0 ? 1.0 / (double)steps : 0.0;
    double mine[N] = {d->c.step_s * per, d->c.p2p_wait_s * per, (double)d->c.p2p_bytes * per,
                      (double)rc.bytes_sent * per, rc.wait_seconds * per,
                      (double)d->c.reduce_bytes * per, d->c.reduce_wait_s * per, 0.0};
    const int size = d->g->size;
    double *all = d->g->rank == 0 ? sn_alloc((size_t)size * N * sizeof(double)) : NULL;
    SN_CHECK(d->g->rank != 0 || all != NULL);
    SN_MPI(MPI_Gather(mine, N, MPI_DOUBLE, all, N, MPI_DOUBLE, 0, d->g->world));
    if (d->g->rank != 0) return;
    const int P = d->g->l.pp, M = d->micro;
    fprintf(out, "\nper rank, per step (%lld steps): pipeline bubble ideal (P-1)/(M+P-1) = %.1f%%\n",
            (long long)steps, 100.0 * (P - 1) / (double)(M + P - 1));
    fprintf(out, "%4s %2s %2s %2s %9s %7s %11s %11s %9s %13s %10s\n", "rank", "d", "p", "s",
            "step_s", "bubble", "p2p_MB", "ring_MB", "ring_wait", "allreduce_MB", "sum_wait");
    for (int r = 0; r < size; r++) {
        const double *v = all + (size_t)r * N;
        int dd, pp, ss;
        sn_layout_coords(&d->g->l, r, &dd, &pp, &ss);
        fprintf(out, "%4d %2d %2d %2d %9.4f %6.1f%% %11.3f %11.3f %9.4f %13.3f %10.4f\n", r, dd,
                pp, ss, v[0], v[0] > 0 ? 100.0 * v[1] / v[0] : 0.0, v[2] / 1e6, v[3] / 1e6, v[4],
                v[5] / 1e6, v[6]);
    }
    fflush(out);
    sn_free(all);
}
