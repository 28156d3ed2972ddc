/* supernest: trains a weight-sharing transformer supernet and searches it
 * for the sub-networks that suit a machine.  This file only dispatches to
 * the commands. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/h5.h"
#include "mpi/runtime.h"
#include "src/commands.h"
#include "src/stop.h"
#include "src/tensor.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: supernest <command> [options]\n\n"
            "commands:\n"
            "  train     train the supernet (sandwich rule + in-place distillation)\n"
            "  eval      accuracy and loss of one sub-network, from a checkpoint or a model\n"
            "  export    write one sub-network as a standalone HDF5 model\n"
            "  inspect   describe, verify or compare supernest HDF5 files\n"
            "  search    find the sub-networks best for this machine (NSGA-II + predictors)\n"
            "  latency-table  time every block choice on this machine; predict sub-network latency\n\n"
            "Run 'supernest <command> --help' for the options of a command.\n"
            "  --version  print the version and exit\n");
}

/* The version, and the libraries' for bug reports. */
static void print_version(void)
{
    char mpi[256], h5[32], err[256];
    sn_mpi_library_version(mpi, sizeof mpi);
    sn_blas_init("auto", err, sizeof err); /* the kernels --blis-arch auto picks */
    sn_h5_version(h5, sizeof h5);
    printf("supernest %s\n%s, HDF5 %s, BLIS %s (kernels: %s)\n", SN_VERSION, mpi, h5,
           sn_blas_version(), sn_blas_arch_name());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SN_EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0) {
            print_version();
            return SN_EXIT_OK;
        }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return SN_EXIT_OK;
    }
    int (*cmd)(int, char **, const sn_mpi_info *) = NULL;
    if (strcmp(argv[1], "train") == 0) cmd = sn_cmd_train;
    if (strcmp(argv[1], "eval") == 0) cmd = sn_cmd_eval;
    if (strcmp(argv[1], "export") == 0) cmd = sn_cmd_export;
    if (strcmp(argv[1], "inspect") == 0) cmd = sn_cmd_inspect;
    if (strcmp(argv[1], "latency-table") == 0) cmd = sn_cmd_latency;
    if (strcmp(argv[1], "search") == 0) cmd = sn_cmd_search;
    if (!cmd) {
        fprintf(stderr, "supernest: unknown command '%s' (try: supernest --help)\n", argv[1]);
        return SN_EXIT_USAGE;
    }
    /* train and search stop cleanly on a signal (src/stop.h): catch it
     * from before MPI starts, which takes long enough for one to arrive */
    if (cmd == sn_cmd_train || cmd == sn_cmd_search) sn_stop_install();
    sn_mpi_info mpi;
    if (sn_mpi_init(&argc, &argv, &mpi) != 0) return SN_EXIT_FAILURE;
    sn_h5_quiet(); /* HDF5 failures come back as one-line messages */
    int rc = cmd(argc, argv, &mpi);
    if (sn_h5_unusable()) {
        /* see io/h5.h: finalising would crash inside HDF5 */
        fflush(NULL);
        _exit(rc);
    }
    sn_mpi_finalize();
    return rc;
}
