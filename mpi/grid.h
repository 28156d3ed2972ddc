/* grid.h: the communicators of a data x pipeline x sequence rank layout.
 *
 * A rank at coordinates (d, p, s) of an sn_layout (src/layout.h; world rank
 * (d*P + p)*S + s) belongs to four groups, each ranked by the coordinates
 * left free, so that a rank's index in a group is its coordinate there.
 */
#ifndef SN_MPI_GRID_H
#define SN_MPI_GRID_H

#include <stddef.h>

#include <mpi.h>

#include "src/layout.h"

typedef struct sn_grid {
    sn_layout l;
    int rank, size;   /* in world */
    int d, p, s;      /* this rank's coordinates */
    MPI_Comm world;   /* borrowed */
    MPI_Comm pipe;    /* owned; same (d, s): the P stages, ranked by p */
    MPI_Comm seq;     /* owned; same (d, p): the S ranks of a sequence group, ranked by s */
    MPI_Comm data;    /* owned; same (p, s): the D data ranks, ranked by d */
    MPI_Comm replica; /* owned; same p: the D*S ranks holding stage p's weights
                         (gradient sums), ranked by d*S + s */
    int prev, next;   /* ranks in pipe of stages p-1 and p+1, or MPI_PROC_NULL */
} sn_grid;

/* Collective over world: splits it by the resolved layout l, which must
 * have l->dp * l->pp * l->sp == the size of world (SN_ERR otherwise, on
 * every rank alike).  SN_ERR also when MPI fails to split; *g then holds
 * no communicators (safe to pass to sn_grid_free). */
int sn_grid_create(MPI_Comm world, const sn_layout *l, sn_grid *g, char *err, size_t errlen);
/* Collective over the grid: frees the owned communicators.  Accepts NULL
 * and any grid sn_grid_create filled, including one it refused. */
void sn_grid_free(sn_grid *g);

#endif
