/* tensor.h: BLIS set-up and the one GEMM wrapper every matrix product uses.
 *
 * All matrices are row-major with an explicit leading dimension (row
 * stride, in elements), so a prefix slice of a larger weight matrix (the
 * first n rows and k columns) is multiplied in place, never copied.
 */
#ifndef SN_TENSOR_H
#define SN_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Chooses BLIS's kernels before BLIS is first used.  arch is NULL or
 * "auto" (the fastest the CPU supports: on x86-64 with AVX-512F/DQ/BW/VL,
 * BLIS's "skx" kernels, which Debian's BLIS does not select by itself), or
 * a BLIS configuration name ("skx", "haswell", "zen3", "generic", ...).
 * A BLIS_ARCH_TYPE already in the environment wins over "auto".
 * Returns SN_ERR with a message for an unknown name. */
int sn_blas_init(const char *arch, char *err, size_t errlen);

/* The name of the kernel set BLIS is using (valid after sn_blas_init). */
const char *sn_blas_arch_name(void);
/* BLIS's version string, e.g. "0.9.0". */
const char *sn_blas_version(void);

/* Number of CPU cores this process may use (sched_getaffinity). */
int sn_cpu_count(void);

/* C = alpha * op(A) * op(B) + beta * C, where op(X) is X or X^T.
 * C is (m, n) with row stride ldc; op(A) is (m, k), op(B) is (k, n); a and b
 * are row-major with row strides lda, ldb as stored (before transposing).
 * nthreads BLIS threads for this call (>= 1), through a local rntm_t. */
void sn_gemm(int nthreads, bool trans_a, bool trans_b,
             int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc);

/* FLOPs (2mnk) counted by sn_gemm since the process started, over all
 * threads; differences of it give a step's achieved GFLOP/s. */
uint64_t sn_gemm_flops(void);

#endif
