#include "src/tensor.h"

#include <blis.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"

static _Atomic uint64_t gemm_flops;

static bool cpu_has_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

/* BLIS reads BLIS_ARCH_TYPE (the numeric arch_t) once, at its first
 * initialisation, so the choice is made by setting it before bli_init(). */
int sn_blas_init(const char *arch, char *err, size_t errlen)
{
    const char *env = getenv("BLIS_ARCH_TYPE");
    if (arch == NULL || strcmp(arch, "auto") == 0) {
        if (env == NULL && cpu_has_avx512()) {
            char id[16];
            snprintf(id, sizeof id, "%d", (int)BLIS_ARCH_SKX);
            setenv("BLIS_ARCH_TYPE", id, 1);
        }
    } else {
        int found = -1;
        for (int i = 0; i < (int)BLIS_NUM_ARCHS; i++)
            if (strcmp(bli_arch_string((arch_t)i), arch) == 0) found = i;
        if (found < 0)
            return sn_errf(err, errlen,
                           "--blis-arch '%s': unknown BLIS configuration "
                           "(try auto, skx, zen3, zen2, zen, haswell, generic)", arch);
        if (strcmp(arch, "skx") == 0 && !cpu_has_avx512())
            return sn_errf(err, errlen, "--blis-arch skx: this CPU lacks AVX-512");
        char id[16];
        snprintf(id, sizeof id, "%d", found);
        setenv("BLIS_ARCH_TYPE", id, 1);
    }
    bli_init();
    return SN_OK;
}

const char *sn_blas_arch_name(void) { return bli_arch_string(bli_arch_query_id()); }

const char *sn_blas_version(void) { return bli_info_get_version_str(); }

int sn_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

void sn_gemm(int nthreads, bool trans_a, bool trans_b,
             int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(nthreads < 1 ? 1 : nthreads, &rntm);
    /* Row-major X with row stride ld: rs = ld, cs = 1.  BLIS applies the
     * transposition itself, so strides describe the matrix as stored. */
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, (inc_t)lda, 1, (float *)b, (inc_t)ldb, 1,
                 &beta, c, (inc_t)ldc, 1, NULL, &rntm);
    atomic_fetch_add_explicit(&gemm_flops, (uint64_t)(2 * m * n * k), memory_order_relaxed);
}

uint64_t sn_gemm_flops(void) { return atomic_load(&gemm_flops); }
