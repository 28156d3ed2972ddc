/* bench_ring.c: how much of the ring's communication is hidden behind its
 * compute, and what it costs against one-rank attention.  An MPI program
 * (meson runs it on 2 ranks); arguments: [T [nt [reps]]], default
 * T = 2048 causal (zigzag), b = 1, h = 4, d = 64, nt = 1 thread per rank.
 *
 * For each variant, the fastest of reps forward + backward calls (slowest
 * rank; the two modes alternate so that both see the same load):
 *   ring:   the engine as used in training;
 *   local:  the same engine in local-only mode, which runs the identical
 *           sequence of kernels with every transfer replaced by a local
 *           copy (sn_ring_set_local_only);
 *   xfer:   the same messages (count and size, from the engine's
 *           counters) exchanged with no compute, MPI_Sendrecv to r+1 from
 *           r-1;
 * and hidden = 1 - wait / xfer, the fraction of the transfer time that
 * compute covers, where wait is the time the engine spent blocked in MPI
 * waits (its own counter).  (ring - local) / xfer would say the same but
 * sits inside the run-to-run noise when transfers are ~0.5% of compute.  Bytes sent per rank per call are the
 * engine's counters against ring.h's formula, in floats with
 * n = b*tl*h*d, m = b*h*tl, v = hops whose block the mask leaves visible:
 *   plain:  forward 2n(S-1), backward 4n(S-1)
 *   token:  forward n(S-1) + v(n+m), backward (2n+2m)(S-1) + v n
 * Last, one-rank sn_attention_forward/backward over the whole sequence on
 * rank 0 with S*nt threads (the cores the ring uses).
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/attn_block.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/seq.h"
#include "src/util.h"

static float *falloc(int64_t n)
{
    float *p = sn_alloc((size_t)n * sizeof *p);
    SN_CHECK(p != NULL);
    return p;
}

static void fill(float *p, int64_t n, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 9);
    for (int64_t i = 0; i < n; i++) p[i] = sn_rng_normal(&r);
}

/* One forward + backward: the slowest rank's seconds. */
static double once(sn_attn_engine *e, int nt, float *out, float *save, float *dqkv,
                   const float *dout, const float *qkv, int64_t b, int64_t tl, int64_t h, int64_t d)
{
    const int64_t w = 3 * h * d, hd = h * d;
    SN_CHECK(MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS);
    double t0 = sn_now();
    e->forward(e->ctx, nt, out, hd, save, qkv, w, b, tl, h, d, true);
    e->backward(e->ctx, nt, dqkv, w, dout, hd, save, out, hd, qkv, w, b, tl, h, d, true);
    double t = sn_now() - t0, worst = 0.0;
    SN_CHECK(MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS);
    return worst;
}

/* The fastest seconds (slowest rank) of exchanging msgs messages of bytes/msgs bytes around the
 * ring with no compute. */
static double time_xfer(int reps, uint64_t bytes, uint64_t msgs, int S, int R)
{
    if (msgs == 0) return 0.0;
    const size_t n = (size_t)(bytes / msgs);
    char *sb = calloc(n, 1), *rb = calloc(n, 1);
    SN_CHECK(sb != NULL && rb != NULL);
    double best = INFINITY;
    for (int i = 0; i <= reps; i++) {
        SN_CHECK(MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS);
        double t0 = sn_now();
        for (uint64_t k = 0; k < msgs; k++)
            SN_CHECK(MPI_Sendrecv(sb, (int)n, MPI_BYTE, (R + 1) % S, 5, rb, (int)n, MPI_BYTE,
                                  (R + S - 1) % S, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE) ==
                     MPI_SUCCESS);
        double t = sn_now() - t0, worst = 0.0;
        SN_CHECK(MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS);
        if (i > 0) best = fmin(best, worst);
    }
    free(sb);
    free(rb);
    return best;
}

int main(int argc, char **argv)
{
    sn_mpi_info info;
    if (sn_mpi_init(&argc, &argv, &info) != SN_OK) return 1;
    const int S = info.size, R = info.rank;
    const int64_t T = argc > 1 ? atoll(argv[1]) : 2048, b = 1, h = 4, d = 64;
    const int nt = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 5;
    if (T <= 0 || T % (2 * S) != 0 || nt < 1 || reps < 1) {
        if (R == 0) fprintf(stderr, "usage: bench_ring [T (a multiple of 2S) [nt [reps]]]\n");
        sn_mpi_finalize();
        return 2;
    }
    const int64_t tl = T / S, w = 3 * h * d, hd = h * d;
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    SN_CHECK(pos != NULL);
    for (int o = 0; o < S; o++) sn_seq_positions(SN_SEQ_ZIGZAG, T, S, o, pos + o * tl);

    /* Local rows: their values do not matter for timing. */
    float *qkv = falloc(b * tl * w), *dout = falloc(b * tl * hd), *out = falloc(b * tl * hd);
    float *dqkv = falloc(b * tl * w), *save = falloc(b * h * tl);
    fill(qkv, b * tl * w, 1 + (uint64_t)R);
    fill(dout, b * tl * hd, 100 + (uint64_t)R);
    memset(dqkv, 0, (size_t)(b * tl * w) * sizeof *dqkv);
    if (R == 0)
        printf("ring attention, S=%d ranks x %d thread(s), T=%lld causal zigzag, b=%lld h=%lld "
               "d=%lld, best of %d fwd+bwd\n",
               S, nt, (long long)T, (long long)b, (long long)h, (long long)d, reps);

    const sn_ring_variant variants[2] = { SN_RING_PLAIN, SN_RING_TOKEN };
    for (int vi = 0; vi < 2; vi++) {
        sn_attn_engine *e = sn_ring_create(MPI_COMM_WORLD, variants[vi], SN_SEQ_ZIGZAG);
        /* Alternate the two modes and keep the fastest of each, so both
         * see the same load from whatever else shares the machine. */
        double t_local = INFINITY, t_ring = INFINITY;
        sn_ring_counters c = { 0 };
        for (int i = 0; i <= reps; i++) {
            sn_ring_set_local_only(e, true);
            double tl0 = once(e, nt, out, save, dqkv, dout, qkv, b, tl, h, d);
            sn_ring_set_local_only(e, false);
            sn_ring_reset_stats(e);
            double tr = once(e, nt, out, save, dqkv, dout, qkv, b, tl, h, d);
            sn_ring_counters ci;
            sn_ring_stats(e, &ci);
            if (i > 0) { /* the first round warms up */
                t_local = fmin(t_local, tl0);
                t_ring = fmin(t_ring, tr);
                c.bytes_sent += ci.bytes_sent;
                c.messages += ci.messages;
                c.wait_seconds += ci.wait_seconds;
                c.compute_seconds += ci.compute_seconds;
            }
        }
        sn_ring_destroy(e);
        const uint64_t calls = (uint64_t)reps, fb = c.bytes_sent / calls,
                       msgs = c.messages / calls;
        double t_xfer = time_xfer(reps, fb, msgs, S, R);

        /* ring.h's formula for this rank (bytes of one forward + backward). */
        const double n = (double)(b * tl * h * d), m = (double)(b * h * tl);
        int vis = 0;
        for (int j = 1; j < S; j++)
            vis += sn_attn_block_visible(pos + ((R - j + S) % S) * tl, tl, pos + R * tl, tl, true);
        double want = variants[vi] == SN_RING_PLAIN
                          ? 4.0 * (2 * n * (S - 1) + 4 * n * (S - 1))
                          : 4.0 * (n * (S - 1) + vis * (n + m) + (2 * n + 2 * m) * (S - 1) + vis * n);
        double wait = c.wait_seconds / (double)calls, comp = c.compute_seconds / (double)calls;
        double hidden = t_xfer > 0 ? 1.0 - fmin(wait, t_xfer) / t_xfer : 1.0;
        if (R == 0)
            printf("%-5s ring %.4f s  local %.4f s  ring/local %.3f  xfer alone %.4f s  "
                   "hidden %.0f%%  (rank 0 per call: blocked in waits %.4f s, compute %.4f s)\n"
                   "      bytes/rank/fwd+bwd %.0f (formula %.0f), %.1f messages\n",
                   variants[vi] == SN_RING_PLAIN ? "plain" : "token", t_ring, t_local,
                   t_ring / t_local, t_xfer, 100.0 * hidden, wait, comp, (double)fb, want,
                   (double)msgs);
    }

    /* One-rank attention over the whole sequence, with all the cores. */
    double t_one = INFINITY;
    if (R == 0) {
        float *fq = falloc(b * T * w), *fo = falloc(b * T * hd), *fg = falloc(b * T * hd);
        float *fdq = falloc(b * T * w), *att = falloc(b * h * T * T);
        float *scr = falloc((int64_t)S * nt * T * T);
        fill(fq, b * T * w, 7);
        fill(fg, b * T * hd, 8);
        memset(fdq, 0, (size_t)(b * T * w) * sizeof *fdq);
        for (int i = 0; i <= reps; i++) {
            double t0 = sn_now();
            sn_attention_forward(S * nt, fo, hd, att, fq, w, b, T, h, d, true);
            sn_attention_backward(S * nt, fdq, w, fg, hd, att, fq, w, scr, b, T, h, d);
            if (i > 0) t_one = fmin(t_one, sn_now() - t0);
        }
        sn_free(fq);
        sn_free(fo);
        sn_free(fg);
        sn_free(fdq);
        sn_free(att);
        sn_free(scr);
        printf("one-rank attention, %d threads: %.4f s per fwd+bwd\n", S * nt, t_one);
    }
    SN_CHECK(MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS);
    free(pos);
    sn_free(qkv);
    sn_free(dout);
    sn_free(out);
    sn_free(dqkv);
    sn_free(save);
    sn_mpi_finalize();
    return 0;
}
