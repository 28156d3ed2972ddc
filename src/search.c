#include "src/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"

/* ------------------------------------------------------------------------
 * Ranking and selection
 * ------------------------------------------------------------------------ */

/* Deb's constrained domination of point q by point p (see search.h). */
static bool dominates(const double *obj, const double *violation, int m, int p, int q)
{
    if (violation) {
        double vp = violation[p], vq = violation[q];
        if (vp > 0.0 || vq > 0.0) {
            if (vp == 0.0) return true;
            if (vq == 0.0) return false;
            return vp < vq;
        }
    }
    const double *a = obj + (size_t)p * (size_t)m, *b = obj + (size_t)q * (size_t)m;
    bool better = false;
    for (int o = 0; o < m; o++) {
        if (a[o] > b[o]) return false;
        if (a[o] < b[o]) better = true;
    }
    return better;
}

/* Objectives finite, violations finite and non-negative (search.h). */
static void check_points(const double *obj, const double *violation, int n, int m)
{
    SN_CHECK(n >= 0 && m >= 1);
    for (size_t i = 0; i < (size_t)n * (size_t)m; i++) SN_CHECK(isfinite(obj[i]));
    if (violation)
        for (int i = 0; i < n; i++) SN_CHECK(isfinite(violation[i]) && violation[i] >= 0.0);
}

/* Deb's fast sort without the dominated-set lists: while unassigned, rank[q]
 * holds -1 - (number of unprocessed points dominating q); each front is
 * found by scanning for its rank, and each of its points releases the
 * unassigned points it dominates.  Every point is processed once against
 * all others, so the peeling costs O(m n^2) like the counting. */
void sn_nondominated_sort(int *rank, const double *obj, const double *violation, int n, int m)
{
    check_points(obj, violation, n, m);
    for (int i = 0; i < n; i++) rank[i] = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (dominates(obj, violation, m, i, j)) rank[j]++;
            else if (dominates(obj, violation, m, j, i)) rank[i]++;
        }
    int assigned = 0;
    for (int i = 0; i < n; i++) {
        if (rank[i] == 0) assigned++;
        else rank[i] = -1 - rank[i];
    }
    for (int f = 0; assigned < n; f++) {
        /* domination is acyclic, so every front releases the next one */
        SN_CHECK(f < n);
        for (int p = 0; p < n; p++) {
            if (rank[p] != f) continue;
            for (int q = 0; q < n; q++) {
                if (rank[q] >= 0 || !dominates(obj, violation, m, p, q)) continue;
                if (rank[q] == -2) {
                    rank[q] = f + 1;
                    assigned++;
                } else {
                    rank[q]++;
                }
            }
        }
    }
}

typedef struct keyed {
    double v;
    int idx; /* point index: the tie-break */
    int pos; /* position in the caller's list */
} keyed;

static int keyed_cmp(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

int sn_crowding_distance(double *dist, const double *obj, int m, const int *members, int k,
                         char *err, size_t errlen)
{
    SN_CHECK(m >= 1 && k >= 0);
    for (int i = 0; i < k; i++) dist[i] = 0.0;
    if (k == 0) return SN_OK;
    keyed *order = malloc((size_t)k * sizeof *order);
    if (!order)
        return sn_errf(err, errlen, "crowding distance: out of memory for a front of %d points",
                       k);
    for (int o = 0; o < m; o++) {
        for (int i = 0; i < k; i++) {
            double v = obj[(size_t)members[i] * (size_t)m + (size_t)o];
            SN_CHECK(isfinite(v));
            order[i] = (keyed){.v = v, .idx = members[i], .pos = i};
        }
        qsort(order, (size_t)k, sizeof *order, keyed_cmp);
        double range = order[k - 1].v - order[0].v;
        if (range == 0.0) continue;
        dist[order[0].pos] = INFINITY;
        dist[order[k - 1].pos] = INFINITY;
        for (int t = 1; t < k - 1; t++)
            dist[order[t].pos] += (order[t + 1].v - order[t - 1].v) / range;
    }
    free(order);
    return SN_OK;
}

int sn_nsga2_rank_crowd(int *rank, double *crowd, const double *obj, const double *violation,
                        int n, int m, char *err, size_t errlen)
{
    sn_nondominated_sort(rank, obj, violation, n, m);
    if (n == 0) return SN_OK;
    int *members = malloc((size_t)n * sizeof *members);
    double *dist = malloc((size_t)n * sizeof *dist);
    int rc = SN_OK;
    if (!members || !dist) {
        rc = sn_errf(err, errlen, "NSGA-II ranking: out of memory for %d points", n);
        goto done;
    }
    int placed = 0;
    for (int f = 0; placed < n; f++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (rank[i] == f) members[k++] = i;
        SN_CHECK(k > 0); /* fronts are numbered without gaps */
        rc = sn_crowding_distance(dist, obj, m, members, k, err, errlen);
        if (rc != SN_OK) goto done;
        for (int i = 0; i < k; i++) crowd[members[i]] = dist[i];
        placed += k;
    }
done:
    free(members);
    free(dist);
    return rc;
}

/* Crowded comparison: p before q. */
static bool crowded_before(const int *rank, const double *crowd, int p, int q)
{
    if (rank[p] != rank[q]) return rank[p] < rank[q];
    if (crowd[p] != crowd[q]) return crowd[p] > crowd[q];
    return p < q;
}

/* Insertion into the sorted list of the best so far; points come in index
 * order, so an equal key never passes one already placed. */
void sn_nsga2_survivors(int *chosen, const int *rank, const double *crowd, int n, int keep)
{
    SN_CHECK(keep >= 0 && keep <= n);
    int len = 0;
    for (int i = 0; i < n && keep > 0; i++) {
        if (len == keep && !crowded_before(rank, crowd, i, chosen[keep - 1])) continue;
        int at = len < keep ? len++ : keep - 1;
        while (at > 0 && crowded_before(rank, crowd, i, chosen[at - 1])) {
            chosen[at] = chosen[at - 1];
            at--;
        }
        chosen[at] = i;
    }
}

int sn_tournament(sn_rng *r, const int *rank, const double *crowd, int n)
{
    SN_CHECK(n >= 1);
    int i = (int)sn_rng_below(r, (uint64_t)n);
    if (n == 1) return i;
    int j = (int)sn_rng_below(r, (uint64_t)(n - 1));
    if (j >= i) j++;
    if (rank[j] < rank[i] || (rank[j] == rank[i] && crowd[j] > crowd[i])) return j;
    return i;
}

/* ------------------------------------------------------------------------
 * Hypervolume
 * ------------------------------------------------------------------------ */

typedef struct point3 {
    double x, y, z;
} point3;

static int point3_cmp_xy(const void *pa, const void *pb)
{
    const point3 *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    return (a->y > b->y) - (a->y < b->y);
}

static int double_cmp(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* Area dominated by the points of p (k, sorted by x then y) whose z is at
 * most zmax, up to (rx, ry): sweeping x upwards, each point that lowers
 * the staircase adds the strip [x, rx) x [y, lowest y so far). */
static double area_2d(const point3 *p, int k, double zmax, double rx, double ry)
{
    double area = 0.0, low = ry;
    for (int i = 0; i < k; i++) {
        if (p[i].z > zmax || p[i].y >= low) continue;
        area += (rx - p[i].x) * (low - p[i].y);
        low = p[i].y;
    }
    return area;
}

int sn_hypervolume(double *hv, const double *obj, int n, int m, const double *ref, char *err,
                   size_t errlen)
{
    SN_CHECK(m == 2 || m == 3);
    check_points(obj, NULL, n, m);
    for (int o = 0; o < m; o++) SN_CHECK(isfinite(ref[o]));
    *hv = 0.0;
    if (n == 0) return SN_OK;
    point3 *p = malloc((size_t)n * sizeof *p);
    double *zs = malloc((size_t)n * sizeof *zs);
    if (!p || !zs) {
        free(p);
        free(zs);
        return sn_errf(err, errlen, "hypervolume: out of memory for %d points", n);
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        const double *q = obj + (size_t)i * (size_t)m;
        bool inside = true;
        for (int o = 0; o < m; o++) inside = inside && q[o] < ref[o];
        if (!inside) continue;
        p[k] = (point3){.x = q[0], .y = q[1], .z = m == 3 ? q[2] : 0.0};
        zs[k] = p[k].z;
        k++;
    }
    qsort(p, (size_t)k, sizeof *p, point3_cmp_xy);
    if (m == 2) {
        *hv = area_2d(p, k, INFINITY, ref[0], ref[1]);
    } else {
        /* between consecutive distinct z values the cross-section is the
         * 2-D front of the points at or below the lower one */
        qsort(zs, (size_t)k, sizeof *zs, double_cmp);
        for (int i = 0; i < k; i++) {
            if (i + 1 < k && zs[i + 1] == zs[i]) continue;
            double top = i + 1 < k ? zs[i + 1] : ref[2];
            *hv += area_2d(p, k, zs[i], ref[0], ref[1]) * (top - zs[i]);
        }
    }
    free(p);
    free(zs);
    return SN_OK;
}

/* ------------------------------------------------------------------------
 * Variation
 * ------------------------------------------------------------------------ */

bool sn_subnet_equal(const sn_subnet *a, const sn_subnet *b)
{
    if (a->embed != b->embed || a->n_stages != b->n_stages || a->n_blocks != b->n_blocks)
        return false;
    for (int st = 0; st < a->n_stages; st++)
        if (a->depth[st] != b->depth[st]) return false;
    for (int i = 0; i < a->n_blocks; i++)
        if (a->heads[i] != b->heads[i] || a->mlp[i] != b->mlp[i]) return false;
    return true;
}

static int pick(sn_rng *r, int n, const int *v) { return v[sn_rng_below(r, (uint64_t)n)]; }

static bool coin(sn_rng *r) { return sn_rng_below(r, 2) == 1; }

/* True with probability prob: a uniform double in [0, 1) below prob. */
static bool chance(sn_rng *r, double prob)
{
    return (double)(sn_rng_u64(r) >> 11) * 0x1.0p-53 < prob;
}

static void check_inside(const sn_space *s, const sn_subnet *n)
{
    SN_CHECK(sn_subnet_validate(s, n, NULL, 0) == SN_OK);
}

void sn_subnet_crossover(const sn_space *s, sn_rng *r, const sn_subnet *a, const sn_subnet *b,
                         sn_subnet *out)
{
    check_inside(s, a);
    check_inside(s, b);
    SN_CHECK(out != a && out != b);
    memset(out, 0, sizeof *out);
    out->embed = coin(r) ? a->embed : b->embed;
    out->n_stages = s->n_stages;
    for (int st = 0; st < s->n_stages; st++) {
        out->depth[st] = coin(r) ? a->depth[st] : b->depth[st];
        out->n_blocks += out->depth[st];
    }
    /* off[0], off[1]: index of stage st's first block in a, in b */
    int off[2] = {0, 0}, i = 0;
    const sn_subnet *par[2] = {a, b};
    for (int st = 0; st < s->n_stages; st++) {
        for (int j = 0; j < out->depth[st]; j++, i++) {
            int w = coin(r) ? 0 : 1;
            if (j >= par[w]->depth[st]) w = 1 - w;
            SN_CHECK(j < par[w]->depth[st]);
            out->heads[i] = par[w]->heads[off[w] + j];
            out->mlp[i] = par[w]->mlp[off[w] + j];
        }
        off[0] += a->depth[st];
        off[1] += b->depth[st];
    }
}

void sn_subnet_mutate(const sn_space *s, sn_rng *r, double prob, sn_subnet *n)
{
    SN_CHECK(prob >= 0.0 && prob <= 1.0);
    check_inside(s, n);
    const sn_subnet old = *n;
    if (chance(r, prob)) n->embed = pick(r, s->n_embed, s->embed);
    int at_old = 0, at_new = 0;
    for (int st = 0; st < s->n_stages; st++) {
        int d = old.depth[st];
        if (chance(r, prob)) {
            int span = s->max_depth[st] - s->min_depth[st] + 1;
            d = s->min_depth[st] + (int)sn_rng_below(r, (uint64_t)span);
        }
        for (int j = 0; j < d; j++) {
            if (j < old.depth[st]) {
                n->heads[at_new + j] = old.heads[at_old + j];
                n->mlp[at_new + j] = old.mlp[at_old + j];
            } else {
                n->heads[at_new + j] = pick(r, s->n_heads, s->heads);
                n->mlp[at_new + j] = pick(r, s->n_mlp, s->mlp);
            }
        }
        n->depth[st] = d;
        at_old += old.depth[st];
        at_new += d;
    }
    n->n_blocks = at_new;
    for (int i = at_new; i < SN_MAX_BLOCKS; i++) n->heads[i] = n->mlp[i] = 0;
    for (int i = 0; i < n->n_blocks; i++) {
        if (chance(r, prob)) n->heads[i] = pick(r, s->n_heads, s->heads);
        if (chance(r, prob)) n->mlp[i] = pick(r, s->n_mlp, s->mlp);
    }
}

static bool seen(const sn_subnet *c, const sn_subnet *list, int n)
{
    for (int i = 0; i < n; i++)
        if (sn_subnet_equal(c, &list[i])) return true;
    return false;
}

int sn_nsga2_offspring(const sn_space *s, sn_rng *r, const sn_subnet *parents, const int *rank,
                       const double *crowd, int n_parents, int n_children, double p_mut,
                       const sn_subnet *avoid, int n_avoid, sn_subnet *out)
{
    SN_CHECK(n_parents >= 1 && n_children >= 0 && n_avoid >= 0);
    SN_CHECK(avoid || n_avoid == 0);
    int made = 0;
    while (made < n_children) {
        int tries = 0;
        for (; tries < SN_OFFSPRING_TRIES; tries++) {
            int pa = sn_tournament(r, rank, crowd, n_parents);
            int pb = sn_tournament(r, rank, crowd, n_parents);
            sn_subnet child;
            sn_subnet_crossover(s, r, &parents[pa], &parents[pb], &child);
            sn_subnet_mutate(s, r, p_mut, &child);
            if (seen(&child, out, made) || seen(&child, avoid, n_avoid)) continue;
            out[made++] = child;
            break;
        }
        if (tries == SN_OFFSPRING_TRIES) break;
    }
    return made;
}
