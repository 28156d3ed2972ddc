#include "src/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sn_abort_fn abort_hook;

void sn_set_abort_hook(sn_abort_fn fn) { abort_hook = fn; }

_Noreturn void sn_fatal(const char *file, int line, const char *msg)
{
    fprintf(stderr, "supernest: internal error at %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    if (abort_hook) abort_hook(3);
    exit(3);
}

int sn_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SN_ERR;
}

void *sn_alloc(size_t n)
{
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    return p;
}

void *sn_calloc(size_t n)
{
    void *p = sn_alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void sn_free(void *p) { free(p); }

double sn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
