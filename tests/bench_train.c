/* bench_train: training throughput of the largest sub-network at batch 128,
 * the GFLOP/s the step achieves against BLIS's own sgemm on the step's
 * GEMM shapes (measured in the same process), and peak memory against what
 * parameters, gradients, AdamW state and activations need.
 *
 * usage: bench_train [--threads N] [--steps N] [--batch B]
 * Prints human-readable lines and one final JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "src/arch.h"
#include "src/model.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/train.h"
#include "src/util.h"

typedef struct shape {
    bool ta, tb;
    int64_t m, n, k;
} shape;

/* sgemm GFLOP/s of one shape: warm once, then time reps calls. */
static double gemm_rate(int nt, shape s, float *a, float *b, float *c)
{
    int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
    sn_gemm(nt, s.ta, s.tb, s.m, s.n, s.k, 1.0f, a, lda, b, ldb, 0.0f, c, s.n);
    int reps = 10;
    double t0 = sn_now();
    for (int r = 0; r < reps; r++)
        sn_gemm(nt, s.ta, s.tb, s.m, s.n, s.k, 1.0f, a, lda, b, ldb, 1.0f, c, s.n);
    double dt = sn_now() - t0;
    return 2.0 * (double)s.m * (double)s.n * (double)s.k * reps / dt / 1e9;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    int nt = sn_cpu_count();
    int steps = 10;
    int64_t batch = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) nt = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0) steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0) batch = atoll(argv[i + 1]);
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nt < 1 || steps < 1 || batch < 1) {
        fprintf(stderr, "bench_train: --threads, --steps and --batch must be positive\n");
        return 2;
    }
    char err[512];
    if (sn_blas_init(getenv("SN_BLIS_ARCH"), err, sizeof err) != SN_OK) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 2;
    }
    sn_space s;
    sn_space_default(&s);
    sn_subnet big;
    sn_subnet_max(&s, &big);
    const int64_t T = s.n_tokens, P = s.token_dim, BT = batch * T;
    const int64_t E = big.embed, HD3 = 3 * (int64_t)big.heads[0] * s.head_dim,
                  HD = (int64_t)big.heads[0] * s.head_dim, F = big.mlp[0];

    /* BLIS's own rate on the step's large GEMMs (forward, dX and dW forms),
     * weighted by the FLOPs each shape contributes per block. */
    shape shapes[] = {
        {false, true, BT, HD3, E}, {false, true, BT, E, HD}, {false, true, BT, F, E},
        {false, true, BT, E, F},   {false, false, BT, E, HD3}, {false, false, BT, HD, E},
        {false, false, BT, E, F},  {false, false, BT, F, E},  {true, false, HD3, E, BT},
        {true, false, E, HD, BT},  {true, false, F, E, BT},   {true, false, E, F, BT},
    };
    size_t big_elems = (size_t)(BT * (F > HD3 ? F : HD3));
    float *ga = sn_alloc(big_elems * 4), *gb = sn_alloc(big_elems * 4), *gc = sn_alloc(big_elems * 4);
    SN_CHECK(ga && gb && gc);
    for (size_t i = 0; i < big_elems; i++) {
        ga[i] = 0.001f * (float)(i % 13);
        gb[i] = 0.002f * (float)(i % 7);
        gc[i] = 0.0f;
    }
    double flops = 0, secs = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double f = 2.0 * (double)shapes[i].m * (double)shapes[i].n * (double)shapes[i].k;
        double r = gemm_rate(nt, shapes[i], ga, gb, gc);
        flops += f;
        secs += f / (r * 1e9);
    }
    double blis_rate = flops / secs / 1e9;
    sn_free(ga);
    sn_free(gb);
    sn_free(gc);
    printf("BLIS sgemm on the step's shapes (%s kernels, %d threads): %.1f GFLOP/s\n",
           sn_blas_arch_name(), nt, blis_rate);

    sn_model *m = sn_model_create(&s, 1);
    SN_CHECK(m != NULL);
    sn_train_opts o;
    sn_train_opts_default(&o);
    o.schedule = SN_SCHEDULE_FIXED;
    o.fixed = big;
    o.threads = nt;
    o.adamw.total = 1000;
    sn_trainer tr;
    if (sn_trainer_init(&tr, m, batch, &o, err, sizeof err) != SN_OK) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    float *tokens = sn_alloc((size_t)(BT * P) * sizeof(float));
    int32_t *labels = sn_alloc((size_t)batch * sizeof(int32_t));
    SN_CHECK(tokens && labels);
    sn_rng r;
    sn_rng_seed(&r, 7, 0);
    for (int64_t i = 0; i < BT * P; i++) tokens[i] = sn_rng_normal(&r);
    for (int64_t i = 0; i < batch; i++) labels[i] = (int32_t)sn_rng_below(&r, (uint64_t)s.n_classes);

    sn_step_stats st;
    for (int i = 0; i < 3; i++)
        if (sn_train_step(&tr, tokens, labels, batch, &st, err, sizeof err) != SN_OK) {
            fprintf(stderr, "bench_train: %s\n", err);
            return 1;
        }
    uint64_t f0 = sn_gemm_flops();
    double t0 = sn_now();
    for (int i = 0; i < steps; i++)
        if (sn_train_step(&tr, tokens, labels, batch, &st, err, sizeof err) != SN_OK) {
            fprintf(stderr, "bench_train: %s\n", err);
            return 1;
        }
    double dt = (sn_now() - t0) / steps;
    double gemm_gf = (double)(sn_gemm_flops() - f0) / steps / dt / 1e9;
    double model_gf = 6.0 * (double)sn_subnet_macs(&s, &big) * (double)batch / dt / 1e9;
    double ips = (double)batch / dt;

    double need = (double)m->n_params * 4.0 * 4.0 + (double)sn_acts_bytes(tr.acts) +
                  (double)(BT * P) * 4.0;
    double rss = peak_rss_mib();
    printf("train step, largest sub-network, batch %lld: %.1f ms, %.1f images/s\n",
           (long long)batch, dt * 1e3, ips);
    printf("achieved: %.1f GFLOP/s in GEMMs (%.0f%% of BLIS's own), %.1f GFLOP/s model (6 x MACs)\n",
           gemm_gf, 100.0 * gemm_gf / blis_rate, model_gf);
    printf("memory: peak RSS %.0f MiB; parameters+gradients+AdamW %.1f MiB, activations %.1f MiB "
           "(RSS / needed = %.2f)\n",
           rss, (double)m->n_params * 16.0 / 1048576.0,
           (double)sn_acts_bytes(tr.acts) / 1048576.0, rss * 1048576.0 / need);
    printf("{\"threads\":%d,\"batch\":%lld,\"step_ms\":%.3f,\"images_per_s\":%.2f,"
           "\"gemm_gflops\":%.2f,\"model_gflops\":%.2f,\"blis_gflops\":%.2f,"
           "\"peak_rss_mib\":%.1f,\"needed_mib\":%.1f}\n",
           nt, (long long)batch, dt * 1e3, ips, gemm_gf, model_gf, blis_rate, rss,
           need / 1048576.0);
    sn_free(tokens);
    sn_free(labels);
    sn_trainer_free(&tr);
    sn_model_destroy(m);
    return 0;
}
