#include "mpi/runtime.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "mpi/check.h"
#include "src/tensor.h"
#include "src/util.h"

static void abort_job(int code)
{
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* Open MPI settings a workstation run needs, made before MPI_Init reads
 * its MCA parameters from the environment; a user's own setting wins.
 * - More ranks than cores (mpirun --oversubscribe): a rank waiting in MPI
 *   must yield its core, or the rank it waits for cannot run.
 * - A small /dev/shm (containers get 64 MiB): the shared-memory transport's
 *   backing files go to /tmp instead of failing at start-up. */
static void workstation_defaults(void)
{
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (ls && atoi(ls) > sn_cpu_count()) setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    struct statvfs vs;
    if (ls && atoi(ls) > 1 && statvfs("/dev/shm", &vs) == 0 &&
        (double)vs.f_bavail * (double)vs.f_frsize < 256.0 * 1024 * 1024)
        setenv("OMPI_MCA_btl_vader_backing_directory", "/tmp", 0);
}

int sn_mpi_init(int *argc, char ***argv, sn_mpi_info *info)
{
    workstation_defaults();
    /* Open MPI's default MPI-IO (OMPIO) can hang in collective writes where
     * some ranks write nothing (open-mpi/ompi#7414), which is how every
     * checkpoint is written, and prints multi-line errors on a full disk;
     * ROMIO has neither problem.  A user's own choice wins. */
    setenv("OMPI_MCA_io", "romio321", 0);
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "supernest: MPI_Init failed\n");
        return SN_ERR;
    }
    sn_set_abort_hook(abort_job);
    MPI_Comm_rank(MPI_COMM_WORLD, &info->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &info->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info->rank, MPI_INFO_NULL,
                            &local) != MPI_SUCCESS) {
        fprintf(stderr, "supernest: MPI_Comm_split_type failed\n");
        return SN_ERR;
    }
    MPI_Comm_rank(local, &info->local_rank);
    MPI_Comm_size(local, &info->local_size);
    MPI_Comm_free(&local);
    return SN_OK;
}

int sn_mpi_default_threads(const sn_mpi_info *info)
{
    int cores = sn_cpu_count();
    int t = cores / (info->local_size > 0 ? info->local_size : 1);
    return t < 1 ? 1 : t;
}

void sn_mpi_library_version(char *buf, size_t len)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) n = 0;
    v[n < (int)sizeof v ? n : (int)sizeof v - 1] = '\0';
    v[strcspn(v, ",\n")] = '\0'; /* "Open MPI v4.1.4" without the build details */
    snprintf(buf, len, "%s", v);
}

void sn_mpi_finalize(void)
{
    int down = 0;
    MPI_Finalized(&down);
    if (!down) MPI_Finalize();
}

MPI_Comm sn_mpi_world(void) { return MPI_COMM_WORLD; }

MPI_Comm sn_mpi_self(void) { return MPI_COMM_SELF; }

int sn_mpi_agree(int *code, char *err, size_t errlen)
{
    int rank, size;
    SN_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    SN_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int first = *code != 0 ? rank : size;
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == size) return SN_OK;
    SN_MPI(MPI_Bcast(code, 1, MPI_INT, first, MPI_COMM_WORLD));
    SN_CHECK(errlen > 0 && errlen <= INT32_MAX);
    err[errlen - 1] = '\0';
    SN_MPI(MPI_Bcast(err, (int)errlen, MPI_CHAR, first, MPI_COMM_WORLD));
    return SN_ERR;
}

void sn_mpi_max_int(int *v)
{
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
}

void sn_mpi_sum_doubles(double *v, int n)
{
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}
