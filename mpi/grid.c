#include "mpi/grid.h"

#include "src/util.h"

/* Splits world into *out by (color, key); SN_ERR naming the group. */
static int split(MPI_Comm world, int color, int key, MPI_Comm *out, const char *what, char *err,
                 size_t errlen)
{
    int rc = MPI_Comm_split(world, color, key, out);
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        *out = MPI_COMM_NULL;
        return sn_errf(err, errlen, "cannot create the %s communicator: MPI_Comm_split: %s", what,
                       msg);
    }
    return SN_OK;
}

int sn_grid_create(MPI_Comm world, const sn_layout *l, sn_grid *g, char *err, size_t errlen)
{
    *g = (sn_grid){.l = *l, .world = world, .pipe = MPI_COMM_NULL, .seq = MPI_COMM_NULL,
                   .data = MPI_COMM_NULL, .replica = MPI_COMM_NULL, .prev = MPI_PROC_NULL,
                   .next = MPI_PROC_NULL};
    if (MPI_Comm_rank(world, &g->rank) != MPI_SUCCESS ||
        MPI_Comm_size(world, &g->size) != MPI_SUCCESS)
        return sn_errf(err, errlen, "cannot query the job's communicator (MPI_Comm_rank/size)");
    if (l->dp < 1 || l->pp < 1 || l->sp < 1 || (int64_t)l->dp * l->pp * l->sp != g->size)
        return sn_errf(err, errlen,
                       "layout --dp %d x --pp %d x --sp %d does not match the job's %d ranks",
                       l->dp, l->pp, l->sp, g->size);
    sn_layout_coords(l, g->rank, &g->d, &g->p, &g->s);
    const int P = l->pp, S = l->sp;
    if (split(world, g->d * S + g->s, g->p, &g->pipe, "pipeline", err, errlen) != SN_OK ||
        split(world, g->d * P + g->p, g->s, &g->seq, "sequence-group", err, errlen) != SN_OK ||
        split(world, g->p * S + g->s, g->d, &g->data, "data-parallel", err, errlen) != SN_OK ||
        split(world, g->p, g->d * S + g->s, &g->replica, "stage-replica", err, errlen) != SN_OK) {
        sn_grid_free(g);
        return SN_ERR;
    }
    g->prev = g->p > 0 ? g->p - 1 : MPI_PROC_NULL;
    g->next = g->p < P - 1 ? g->p + 1 : MPI_PROC_NULL;
    return SN_OK;
}

void sn_grid_free(sn_grid *g)
{
    if (!g) return;
    MPI_Comm *comms[] = {&g->pipe, &g->seq, &g->data, &g->replica};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL) {
            int rc = MPI_Comm_free(comms[i]);
            SN_CHECK(rc == MPI_SUCCESS);
        }
}
