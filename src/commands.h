/* commands.h: the sub-commands of `supernest`.  Each takes the full argv
 * (argv[1] is the command name) and returns the process exit status. */
#ifndef SN_COMMANDS_H
#define SN_COMMANDS_H

#include "mpi/runtime.h"

/* Exit statuses (documented in README). */
enum {
    SN_EXIT_OK = 0,
    SN_EXIT_FAILURE = 1,   /* the run failed: bad data, NaN loss, I/O error */
    SN_EXIT_USAGE = 2,     /* bad command line or configuration */
    /* 3: internal error, from SN_CHECK (src/util.h) */
    SN_EXIT_STOPPED = 75,  /* stopped by a signal with its state saved: run the same
                              command again to continue (EX_TEMPFAIL) */
};

int sn_cmd_train(int argc, char **argv, const sn_mpi_info *mpi);
int sn_cmd_eval(int argc, char **argv, const sn_mpi_info *mpi);
int sn_cmd_export(int argc, char **argv, const sn_mpi_info *mpi);
int sn_cmd_inspect(int argc, char **argv, const sn_mpi_info *mpi);
int sn_cmd_latency(int argc, char **argv, const sn_mpi_info *mpi);
int sn_cmd_search(int argc, char **argv, const sn_mpi_info *mpi);

#endif
