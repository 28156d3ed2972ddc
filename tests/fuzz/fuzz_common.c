#include "tests/fuzz/fuzz_common.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/util.h"

/* Read by the sanitizer runtimes at start-up; the environment
 * (ASAN_OPTIONS, LSAN_OPTIONS, UBSAN_OPTIONS) still overrides them. */
const char *__asan_default_options(void);
const char *__lsan_default_options(void);
const char *__lsan_default_suppressions(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
    return "detect_leaks=1:abort_on_error=1:symbolize=1";
}

/* Leaks are found per input by libFuzzer (an input that mallocs more than
 * it frees is run again under LeakSanitizer), not at exit, where Open MPI's
 * plugins' start-up allocations would be reported.  use_tls=0: LSan 14
 * crashes reading glibc 2.36's dynamic TLS of the MPI threads; nothing of
 * supernest's lives only in thread-local storage. */
const char *__lsan_default_options(void) { return "leak_check_at_exit=0:use_tls=0:print_suppressions=0"; }

const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

/* Open MPI and its runtime keep start-up allocations for the whole
 * process (freed, if ever, by MPI_Finalize, which a fuzzer never reaches);
 * a leak of supernest's own shows a supernest frame and is still caught. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libmpi.so\n"
           "leak:libopen-pal.so\n"
           "leak:libopen-rte.so\n"
           "leak:libpmix.so\n"
           "leak:libhwloc.so\n"
           "leak:libevent\n"
           "leak:mca_\n"
           "leak:libomp.so\n";
}

static void abort_hook(int code)
{
    (void)code;
    abort();
}

enum { N_PATHS = 8 };
static char paths[N_PATHS][PATH_MAX];
static int n_paths;

static void remove_paths(void)
{
    for (int i = 0; i < n_paths; i++) unlink(paths[i]);
}

void sn_fuzz_init(void)
{
    sn_set_abort_hook(abort_hook);
    atexit(remove_paths);
}

const char *sn_fuzz_path(const char *name)
{
    for (int i = 0; i < n_paths; i++) {
        const char *base = strrchr(paths[i], '-');
        if (base && strcmp(base + 1, name) == 0) return paths[i];
    }
    if (n_paths == N_PATHS) sn_fuzz_fail("too many scratch files");
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char *p = paths[n_paths++];
    snprintf(p, PATH_MAX, "%s/sn-fuzz-%ld-%s", dir, (long)getpid(), name);
    return p;
}

void sn_fuzz_write(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) sn_fuzz_fail("cannot create a scratch file");
    bool ok = n == 0 || fwrite(data, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) sn_fuzz_fail("cannot write a scratch file");
}

_Noreturn void sn_fuzz_fail(const char *msg)
{
    fprintf(stderr, "fuzz: %s\n", msg);
    fflush(stderr);
    abort();
}

void sn_fuzz_check_message(const char *err, size_t errlen)
{
    if (errlen == 0) return;
    if (memchr(err, '\0', errlen) == NULL) sn_fuzz_fail("error message not terminated");
    if (err[0] == '\0') sn_fuzz_fail("SN_ERR without a message");
    if (strchr(err, '\n')) {
        fprintf(stderr, "fuzz: message: %s\n", err);
        sn_fuzz_fail("error message of more than one line");
    }
}
