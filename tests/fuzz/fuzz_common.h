/* fuzz_common.h: what every libFuzzer target of tests/fuzz shares.
 *
 * The sanitizer defaults (leaks checked per input, Open MPI's own
 * start-up allocations not reported), SN_CHECK failures turned into an
 * abort libFuzzer reports with a stack, and scratch files for the readers
 * that take a path (in /dev/shm when it is writable, else /tmp; removed at
 * exit).
 */
#ifndef SN_FUZZ_COMMON_H
#define SN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Installs the SN_CHECK hook (abort).  Call from LLVMFuzzerInitialize. */
void sn_fuzz_init(void);

/* The path of this process's scratch file named `name` ("in.h5"); the
 * string is owned here and stays valid until exit. */
const char *sn_fuzz_path(const char *name);

/* Writes n bytes to path (truncating); aborts if that fails, since the
 * target could not test anything then. */
void sn_fuzz_write(const char *path, const uint8_t *data, size_t n);

/* Aborts with "fuzz: MSG" on stderr: a property of the code under test
 * that does not hold (libFuzzer saves the input as a crash). */
_Noreturn void sn_fuzz_fail(const char *msg);

/* Aborts unless err is one line: non-empty, NUL-terminated inside errlen,
 * no newline.  Every SN_ERR message must be. */
void sn_fuzz_check_message(const char *err, size_t errlen);

#endif
