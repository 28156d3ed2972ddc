/* runtime.h: MPI start-up and shutdown for the command layer.
 *
 * sn_mpi_init starts MPI (a plain `supernest` run is a one-rank MPI
 * singleton), installs MPI_Abort as the hook of SN_CHECK so that one failed
 * rank ends the whole job, and records the world and node-local layout.
 */
#ifndef SN_MPI_RUNTIME_H
#define SN_MPI_RUNTIME_H

#include <mpi.h>
#include <stddef.h>

typedef struct sn_mpi_info {
    int rank, size;          /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks sharing this node */
} sn_mpi_info;

/* Returns SN_OK, or SN_ERR after printing why MPI could not start. */
int sn_mpi_init(int *argc, char ***argv, sn_mpi_info *info);
/* Threads per rank that keep ranks x threads within the node's cores. */
int sn_mpi_default_threads(const sn_mpi_info *info);
void sn_mpi_finalize(void);
/* The MPI library's version line (callable before sn_mpi_init). */
void sn_mpi_library_version(char *buf, size_t len);

/* The communicator of the whole job, for io/ functions that take one (the
 * command layer passes it on without calling MPI itself). */
MPI_Comm sn_mpi_world(void);
/* This rank alone, for files one rank reads or writes by itself. */
MPI_Comm sn_mpi_self(void);
/* Every rank passes its exit code so far (0: fine) and message.  Returns
 * SN_OK when all are 0; otherwise SN_ERR, with *code and err set on every
 * rank to those of the lowest failing rank, so that all ranks stop
 * together and rank 0 can print the one message. */
int sn_mpi_agree(int *code, char *err, size_t errlen);
/* The largest of every rank's *v, on every rank (one small all-reduce:
 * "does any rank want to stop / checkpoint now?"). */
void sn_mpi_max_int(int *v);
/* Sums n doubles over the world, in place. */
void sn_mpi_sum_doubles(double *v, int n);

#endif
