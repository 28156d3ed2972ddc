/* check.h: every MPI call's return code is checked.  MPI failing inside a
 * training step is not something a rank can recover from alone: the
 * message names the call, file and line and the job ends through the
 * SN_CHECK abort hook (MPI_Abort), so no rank is left waiting. */
#ifndef SN_MPI_CHECK_H
#define SN_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>

#include "src/util.h"

#define SN_MPI(call)                                                               \
    do {                                                                           \
        int sn_mpi_rc_ = (call);                                                   \
        if (sn_mpi_rc_ != MPI_SUCCESS) {                                           \
            char sn_mpi_msg_[MPI_MAX_ERROR_STRING];                                \
            int sn_mpi_len_ = 0;                                                   \
            MPI_Error_string(sn_mpi_rc_, sn_mpi_msg_, &sn_mpi_len_);               \
            char sn_mpi_what_[MPI_MAX_ERROR_STRING + 160];                         \
            snprintf(sn_mpi_what_, sizeof sn_mpi_what_, "%.120s failed: %.*s", #call, \
                     sn_mpi_len_, sn_mpi_msg_);                                    \
            sn_fatal(__FILE__, __LINE__, sn_mpi_what_);                            \
        }                                                                          \
    } while (0)

#endif
