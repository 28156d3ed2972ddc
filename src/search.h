/* search.h: multi-objective evolutionary search primitives (NSGA-II, Deb,
 * Pratap, Agarwal and Meyarivan 2002) over the sub-networks of a space.
 *
 * n points with m objectives are stored row-major, obj (n, m), and every
 * objective is MINIMISED: callers negate what they maximise (accuracy).
 * Objective values must be finite (SN_CHECK); a sub-network whose
 * evaluation failed is given a positive violation, not a NaN.
 *
 * Constraints: violation (n) holds 0 for a feasible point and the amount
 * by which an infeasible one misses its constraints (> 0).  Deb's
 * constrained domination: p dominates q if p is feasible and q is not; or
 * both are infeasible and p's violation is smaller (equal violations: no
 * domination either way, objectives aside); or both are feasible and p is
 * no worse in every objective and better in one.  violation may be NULL
 * everywhere: all points feasible.
 *
 * All arrays are owned by the caller; nothing here keeps a pointer.
 * Everything is deterministic: ties are broken by point index, and random
 * choices come only from the sn_rng passed in.
 */
#ifndef SN_SEARCH_H
#define SN_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "src/arch.h"
#include "src/rng.h"

/* ------------------------------------------------------------------------
 * Ranking and selection
 * ------------------------------------------------------------------------ */

/* Fast non-dominated sort under constrained domination: rank (n) gets 0
 * for the first front (points nobody dominates), 1 for the front that only
 * front 0 dominates, ...  obj (n, m); violation (n) or NULL; n >= 0,
 * m >= 1.  O(m n^2) time; allocates nothing (rank doubles as the
 * domination counter while it runs). */
void sn_nondominated_sort(int *rank, const double *obj, const double *violation, int n, int m);

/* Crowding distance of the k points of one front: dist[i] is that of point
 * members[i] (members index rows of obj (., m); k >= 0).  For each
 * objective whose range over the front is non-zero, the members are
 * ordered by (value, index); the first and last get INFINITY, every other
 * one adds (next value - previous value) / range.  An objective with zero
 * range adds nothing, so a one-point front, or a front of duplicates, gets
 * 0.  O(m k log k); allocates k entries: SN_ERR on out of memory. */
int sn_crowding_distance(double *dist, const double *obj, int m, const int *members, int k,
                         char *err, size_t errlen);

/* Both of the above for a whole population: rank (n) as
 * sn_nondominated_sort, crowd (n) the crowding distance of each point
 * within its own front.  Allocates O(n): SN_ERR on out of memory. */
int sn_nsga2_rank_crowd(int *rank, double *crowd, const double *obj, const double *violation,
                        int n, int m, char *err, size_t errlen);

/* Environmental selection: chosen (keep) gets the indices of the best keep
 * of n points in the crowded-comparison order, best first: lower rank,
 * then larger crowding distance, then lower index.  0 <= keep <= n.
 * rank, crowd (n) as from sn_nsga2_rank_crowd.  O(n keep); allocates
 * nothing. */
void sn_nsga2_survivors(int *chosen, const int *rank, const double *crowd, int n, int keep);

/* Binary tournament: draws two distinct points of n (one if n == 1) and
 * returns the index of the better by (lower rank, larger crowding); on a
 * tie, the first drawn.  rank, crowd (n); n >= 1.  Exactly two rng draws
 * when n >= 2. */
int sn_tournament(sn_rng *r, const int *rank, const double *crowd, int n);

/* Hypervolume of the region dominated by the points and bounded by ref
 * (m), for minimisation: the measure of the union over points p of the
 * boxes [p, ref).  Points not strictly below ref in every objective add
 * nothing.  obj (n, m), n >= 0; m must be 2 (sort and sweep, O(n log n))
 * or 3 (slices along the third objective, O(n^2)); other m fail SN_CHECK.
 * *hv gets the volume; allocates O(n): SN_ERR on out of memory. */
int sn_hypervolume(double *hv, const double *obj, int n, int m, const double *ref, char *err,
                   size_t errlen);

/* ------------------------------------------------------------------------
 * Variation: every output lies inside the space whenever the inputs do
 * (inputs outside it fail SN_CHECK).
 * ------------------------------------------------------------------------ */

/* True if a and b keep the same embed, depths and per-block heads and MLP
 * widths (unused array slots are ignored). */
bool sn_subnet_equal(const sn_subnet *a, const sn_subnet *b);

/* Uniform crossover of parents a and b into out (may not alias a or b):
 * embed from a coin flip, each stage's depth from a coin flip, and each of
 * the child's blocks, at (stage st, position j), takes heads and MLP width
 * together from the parent a coin flip picks for it if that parent has
 * block (st, j), else from the other parent (which has it, since the
 * child's depth of st is one of the parents').  Draw order: embed, the
 * depths stage by stage, then one coin per kept block in order. */
void sn_subnet_crossover(const sn_space *s, sn_rng *r, const sn_subnet *a, const sn_subnet *b,
                         sn_subnet *out);

/* Mutates n in place: every gene is redrawn uniformly from its choices
 * (possibly the same value) with probability prob in [0, 1], in this
 * order: embed; then stage by stage the depth (a stage that grows gets new
 * last blocks with uniform random heads and MLP width; one that shrinks
 * drops its last blocks); then, for each kept block in order, its heads
 * and its MLP width. */
void sn_subnet_mutate(const sn_space *s, sn_rng *r, double prob, sn_subnet *n);

/* Attempts made per child before sn_nsga2_offspring gives up. */
#define SN_OFFSPRING_TRIES 200

/* Writes up to n_children offspring of the parents (n_parents >= 1, each
 * inside s) into out (n_children): for each child, two binary tournaments
 * by rank, crowd (n_parents) pick the parents, then crossover and mutation
 * with per-gene probability p_mut.  A child equal to an earlier child or
 * to any of avoid (n_avoid; the archive of sub-networks already evaluated,
 * may be NULL when n_avoid is 0) is discarded and drawn again; after
 * SN_OFFSPRING_TRIES discarded draws for one child the function stops.
 * Returns the number of children written (< n_children only when the
 * space, as reachable from these parents, ran out of new sub-networks).
 * O(n_children * SN_OFFSPRING_TRIES * (n_avoid + n_children)) worst case. */
int sn_nsga2_offspring(const sn_space *s, sn_rng *r, const sn_subnet *parents, const int *rank,
                       const double *crowd, int n_parents, int n_children, double p_mut,
                       const sn_subnet *avoid, int n_avoid, sn_subnet *out);

#endif
