/* util.h: error codes, the always-on assertion, aligned allocation.
 *
 * Recoverable failures return SN_ERR and write a one-line message a user can
 * act on into a caller-owned buffer (char *err, size_t errlen).  Impossible
 * states are caught by SN_CHECK, which reports file and line and calls the
 * abort hook: exit(3) by default, MPI_Abort once mpi/runtime installs its
 * hook, so that one failing rank never leaves the others hanging.
 */
#ifndef SN_UTIL_H
#define SN_UTIL_H

#include <stddef.h>
#include <stdint.h>

enum { SN_OK = 0, SN_ERR = -1 };

typedef void (*sn_abort_fn)(int code);

/* Installs the function that ends the job after a failed SN_CHECK. NULL
 * restores the default (exit). */
void sn_set_abort_hook(sn_abort_fn fn);

/* Prints "supernest: internal error at FILE:LINE: MSG" and ends the job. */
_Noreturn void sn_fatal(const char *file, int line, const char *msg);

#define SN_CHECK(cond)                                              \
    do {                                                            \
        if (!(cond)) sn_fatal(__FILE__, __LINE__, "check failed: " #cond); \
    } while (0)

/* printf-style formatting into err (truncated to errlen); returns SN_ERR so
 * that callers can write `return sn_errf(err, errlen, "...", ...);`. */
int sn_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 64-byte aligned allocation of n bytes (n may be 0); NULL on failure.
 * Free with sn_free (accepts NULL). */
void *sn_alloc(size_t n);
/* As sn_alloc, zero-filled. */
void *sn_calloc(size_t n);
void sn_free(void *p);

/* Wall-clock seconds from a monotonic clock. */
double sn_now(void);

#endif
