/* test_grid.c: the communicators of sn_grid on 8 ranks (mpirun -np 8).
 *
 * For several layouts, every communicator's size, this rank's index in it,
 * and the world ranks it holds (allgathered, in communicator order) are
 * compared with what src/layout.h's rank order says; also prev/next, a
 * layout that does not match the job, and a grid over a sub-communicator.
 * Failures are summed over all ranks, so every rank exits 1 if any failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mpi/grid.h"
#include "mpi/runtime.h"
#include "src/layout.h"
#include "src/util.h"

#define NP 8

static int failures;

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "test_grid: %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

/* Checks that comm holds exactly the ranks expect[0..n) of g->world in that
 * order, and that this rank is expect[index]. */
static void check_comm(const sn_grid *g, MPI_Comm comm, const char *name, const int *expect,
                       int n, int index)
{
    const sn_layout *l = &g->l;
    int size = -1, rank = -1;
    EXPECT(MPI_Comm_size(comm, &size) == MPI_SUCCESS, "MPI_Comm_size(%s)", name);
    EXPECT(MPI_Comm_rank(comm, &rank) == MPI_SUCCESS, "MPI_Comm_rank(%s)", name);
    EXPECT(size == n, "layout %dx%dx%d, world rank %d: %s has %d ranks, expected %d", l->dp,
           l->pp, l->sp, g->rank, name, size, n);
    EXPECT(rank == index, "layout %dx%dx%d, world rank %d: rank %d in %s, expected %d", l->dp,
           l->pp, l->sp, g->rank, rank, name, index);
    if (size != n) return;
    int members[NP];
    EXPECT(MPI_Allgather(&g->rank, 1, MPI_INT, members, 1, MPI_INT, comm) == MPI_SUCCESS,
           "MPI_Allgather(%s)", name);
    for (int i = 0; i < n; i++)
        EXPECT(members[i] == expect[i],
               "layout %dx%dx%d, world rank %d: %s[%d] is world rank %d, expected %d", l->dp,
               l->pp, l->sp, g->rank, name, i, members[i], expect[i]);
}

/* Builds the grid of l over world and checks all of it. */
static void check_layout(MPI_Comm world, sn_layout l)
{
    char err[256];
    sn_grid g;
    if (sn_grid_create(world, &l, &g, err, sizeof err) != SN_OK) {
        EXPECT(0, "layout %dx%dx%d: %s", l.dp, l.pp, l.sp, err);
        return;
    }
    int wr;
    MPI_Comm_rank(world, &wr);
    EXPECT(g.rank == wr, "rank %d, expected %d", g.rank, wr);
    EXPECT(g.size == l.dp * l.pp * l.sp, "size %d", g.size);
    EXPECT(g.world == world, "world is not the communicator given");
    int d, p, s;
    sn_layout_coords(&l, wr, &d, &p, &s);
    EXPECT(g.d == d && g.p == p && g.s == s, "coordinates (%d,%d,%d), expected (%d,%d,%d)", g.d,
           g.p, g.s, d, p, s);

    int expect[NP];
    for (int i = 0; i < l.pp; i++) expect[i] = sn_layout_rank(&l, d, i, s);
    check_comm(&g, g.pipe, "pipe", expect, l.pp, p);
    for (int i = 0; i < l.sp; i++) expect[i] = sn_layout_rank(&l, d, p, i);
    check_comm(&g, g.seq, "seq", expect, l.sp, s);
    for (int i = 0; i < l.dp; i++) expect[i] = sn_layout_rank(&l, i, p, s);
    check_comm(&g, g.data, "data", expect, l.dp, d);
    for (int i = 0; i < l.dp; i++)
        for (int j = 0; j < l.sp; j++) expect[i * l.sp + j] = sn_layout_rank(&l, i, p, j);
    check_comm(&g, g.replica, "replica", expect, l.dp * l.sp, d * l.sp + s);

    EXPECT(g.prev == (p > 0 ? p - 1 : MPI_PROC_NULL), "layout %dx%dx%d: prev %d at stage %d",
           l.dp, l.pp, l.sp, g.prev, p);
    EXPECT(g.next == (p < l.pp - 1 ? p + 1 : MPI_PROC_NULL),
           "layout %dx%dx%d: next %d at stage %d", l.dp, l.pp, l.sp, g.next, p);
    /* A message along the pipeline reaches the neighbouring stage. */
    int from_prev = -2;
    EXPECT(MPI_Sendrecv(&g.rank, 1, MPI_INT, g.next, 0, &from_prev, 1, MPI_INT, g.prev, 0, g.pipe,
                        MPI_STATUS_IGNORE) == MPI_SUCCESS,
           "MPI_Sendrecv along pipe");
    if (p > 0)
        EXPECT(from_prev == sn_layout_rank(&l, d, p - 1, s), "got %d from prev", from_prev);
    sn_grid_free(&g);
    EXPECT(g.pipe == MPI_COMM_NULL && g.seq == MPI_COMM_NULL && g.data == MPI_COMM_NULL &&
               g.replica == MPI_COMM_NULL,
           "sn_grid_free left a communicator");
}

int main(int argc, char **argv)
{
    sn_mpi_info info;
    if (sn_mpi_init(&argc, &argv, &info) != SN_OK) return 1;
    if (info.size != NP) {
        if (info.rank == 0) fprintf(stderr, "test_grid: run with %d ranks, not %d\n", NP, info.size);
        sn_mpi_finalize();
        return 1;
    }
    const sn_layout layouts[] = {{2, 2, 2}, {8, 1, 1}, {1, 2, 4}, {1, 8, 1},
                                 {1, 1, 8}, {4, 2, 1}, {2, 1, 4}, {1, 4, 2}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        check_layout(MPI_COMM_WORLD, layouts[i]);

    /* A grid over a sub-communicator: two halves of 4 ranks, each 1x2x2. */
    MPI_Comm half;
    EXPECT(MPI_Comm_split(MPI_COMM_WORLD, info.rank / 4, info.rank, &half) == MPI_SUCCESS,
           "MPI_Comm_split into halves");
    check_layout(half, (sn_layout){1, 2, 2});
    EXPECT(MPI_Comm_free(&half) == MPI_SUCCESS, "MPI_Comm_free(half)");

    /* A layout that does not cover the job is refused on every rank alike. */
    char err[256] = "";
    sn_grid g;
    EXPECT(sn_grid_create(MPI_COMM_WORLD, &(sn_layout){4, 1, 1}, &g, err, sizeof err) == SN_ERR,
           "layout 4x1x1 on 8 ranks accepted");
    EXPECT(strstr(err, "--dp 4 x --pp 1 x --sp 1") && strstr(err, "8 ranks"), "message: %s", err);
    sn_grid_free(&g);

    int total = 0;
    if (MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        total = 1;
    if (info.rank == 0)
        printf("test_grid: %s (%d failed checks over %d ranks)\n", total ? "FAILED" : "ok", total,
               NP);
    sn_mpi_finalize();
    return total ? 1 : 0;
}
