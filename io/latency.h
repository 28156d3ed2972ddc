/* latency.h: latency tables (src/latency.h) as HDF5 files of format
 * `supernest-latency` (schema: io/FORMAT.md, "Latency tables").
 *
 * Collective over the communicator given, like every supernest file; the
 * table is one rank's measurement, written by rank 0.
 */
#ifndef SN_IO_LATENCY_H
#define SN_IO_LATENCY_H

#include <mpi.h>
#include <stddef.h>

#include "src/latency.h"

/* Where and when a table was measured. */
typedef struct sn_latency_info {
    char blis_kernels[32];      /* BLIS kernel set (sn_blas_arch_name) */
    char cpu_model[256];        /* /proc/cpuinfo "model name", or "unknown" */
    char created[40];           /* UTC, ISO 8601 (root attribute) */
    char program_version[32];
} sn_latency_info;

/* The CPU model string of this machine (/proc/cpuinfo's first "model
 * name"), or "unknown" where the file has none. */
void sn_cpu_model(char *out, size_t len);

/* Writes t to path atomically (a temporary name, fsynced and renamed), with
 * the BLIS kernel set and CPU model of info (its other fields are ignored:
 * created and the version are now's and this build's). */
int sn_latency_save(MPI_Comm comm, const char *path, const sn_latency_table *t,
                    const sn_latency_info *info, char *err, size_t errlen);

/* Reads a table file: *out is a new table (caller destroys), info what the
 * file says about its measurement.  Refuses, with one line naming the file
 * and the field, a missing or non-HDF5 file, another format or major
 * version, an invalid space, missing attributes, datasets missing, of a
 * shape other than the space's, damaged (checksum), or holding times that
 * are not finite and positive. */
int sn_latency_load(MPI_Comm comm, const char *path, sn_latency_table **out,
                    sn_latency_info *info, char *err, size_t errlen);

#endif
