/* test_search: NSGA-II ranking, crowding, selection and hypervolume against
 * brute force and hand-computed values; crossover, mutation and offspring
 * never leave the space and are reproducible. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/rng.h"
#include "src/search.h"
#include "src/util.h"

#define MAXN 64

static void assert_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g, expected %.17g (tolerance %g)", what, got, want, tol);
}

static double uniform(sn_rng *r) { return (double)(sn_rng_u64(r) >> 11) * 0x1.0p-53; }

/* n points of m objectives on a grid of `levels` values per objective, so
 * that ties and exact duplicates are frequent. */
static void grid_points(sn_rng *r, double *obj, int n, int m, int levels)
{
    for (int i = 0; i < n * m; i++) obj[i] = (double)sn_rng_below(r, (uint64_t)levels) * 0.25;
}

/* ------------------------------------------------------------------------
 * Brute-force references, written from the definitions
 * ------------------------------------------------------------------------ */

/* p constrained-dominates q (Deb 2002, definition 1). */
static int ref_dominates(const double *obj, const double *viol, int m, int p, int q)
{
    double vp = viol ? viol[p] : 0.0, vq = viol ? viol[q] : 0.0;
    int fp = vp == 0.0, fq = vq == 0.0;
    if (fp && !fq) return 1;
    if (!fp && fq) return 0;
    if (!fp && !fq) return vp < vq;
    int no_worse = 1, better = 0;
    for (int o = 0; o < m; o++) {
        no_worse &= obj[p * m + o] <= obj[q * m + o];
        better |= obj[p * m + o] < obj[q * m + o];
    }
    return no_worse && better;
}

/* Peels fronts: front f is every remaining point no remaining point
 * dominates. */
static void ref_sort(int *rank, const double *obj, const double *viol, int n, int m)
{
    int left = n;
    for (int i = 0; i < n; i++) rank[i] = -1;
    for (int f = 0; left > 0; f++) {
        int front[MAXN], k = 0;
        for (int q = 0; q < n; q++) {
            if (rank[q] >= 0) continue;
            int dominated = 0;
            for (int p = 0; p < n && !dominated; p++)
                dominated = rank[p] < 0 && ref_dominates(obj, viol, m, p, q);
            if (!dominated) front[k++] = q;
        }
        assert_true(k > 0);
        for (int i = 0; i < k; i++) rank[front[i]] = f;
        left -= k;
    }
}

/* Crowding distance by scanning for each member's neighbours in (value,
 * index) order, objective by objective. */
static void ref_crowding(double *dist, const double *obj, int m, const int *mem, int k)
{
    for (int i = 0; i < k; i++) dist[i] = 0.0;
    for (int o = 0; o < m; o++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < k; i++) {
            lo = fmin(lo, obj[mem[i] * m + o]);
            hi = fmax(hi, obj[mem[i] * m + o]);
        }
        if (k == 0 || hi == lo) continue;
        for (int i = 0; i < k; i++) {
            double v = obj[mem[i] * m + o];
            int prev = -1, next = -1;
            for (int j = 0; j < k; j++) {
                double w = obj[mem[j] * m + o];
                int below = w < v || (w == v && mem[j] < mem[i]);
                int above = w > v || (w == v && mem[j] > mem[i]);
                double pw = prev < 0 ? 0 : obj[mem[prev] * m + o];
                double nw = next < 0 ? 0 : obj[mem[next] * m + o];
                if (below && (prev < 0 || w > pw || (w == pw && mem[j] > mem[prev]))) prev = j;
                if (above && (next < 0 || w < nw || (w == nw && mem[j] < mem[next]))) next = j;
            }
            if (prev < 0 || next < 0) dist[i] = INFINITY;
            else dist[i] += (obj[mem[next] * m + o] - obj[mem[prev] * m + o]) / (hi - lo);
        }
    }
}

/* Hypervolume by inclusion-exclusion over every subset of the points that
 * are strictly inside ref: the union's measure from the boxes' meets. */
static double ref_hypervolume(const double *obj, int n, int m, const double *ref)
{
    int in[MAXN], k = 0;
    for (int i = 0; i < n; i++) {
        int inside = 1;
        for (int o = 0; o < m; o++) inside &= obj[i * m + o] < ref[o];
        if (inside) in[k++] = i;
    }
    double total = 0.0;
    for (uint32_t set = 1; set < (1u << k); set++) {
        double vol = 1.0;
        for (int o = 0; o < m; o++) {
            double lo = -INFINITY;
            for (int i = 0; i < k; i++)
                if (set & (1u << i)) lo = fmax(lo, obj[in[i] * m + o]);
            vol *= ref[o] - lo;
        }
        total += (__builtin_popcount(set) & 1) ? vol : -vol;
    }
    return total;
}

/* ------------------------------------------------------------------------
 * Ranking and crowding
 * ------------------------------------------------------------------------ */

static void test_sort_brute_force(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 11, 0);
    double obj[MAXN * 4], viol[MAXN];
    int rank[MAXN], want[MAXN];
    for (int trial = 0; trial < 600; trial++) {
        int m = 2 + trial % 3, n = (int)sn_rng_below(&r, MAXN + 1);
        grid_points(&r, obj, n, m, 2 + trial % 5);
        int constrained = trial % 2;
        for (int i = 0; i < n; i++)
            viol[i] = sn_rng_below(&r, 2) ? 0.0 : 0.5 * (double)(1 + sn_rng_below(&r, 3));
        const double *v = constrained ? viol : NULL;
        sn_nondominated_sort(rank, obj, v, n, m);
        ref_sort(want, obj, v, n, m);
        for (int i = 0; i < n; i++)
            if (rank[i] != want[i])
                fail_msg("trial %d (n %d, m %d): point %d rank %d, brute force %d", trial, n, m,
                         i, rank[i], want[i]);
    }
}

/* Deb's constrained domination on hand-made points. */
static void test_constrained_domination(void **state)
{
    (void)state;
    /* A dominant but infeasible; B, C feasible; D, E equally infeasible, so
     * neither dominates the other whatever their objectives */
    const double obj[] = {0, 0, /* A */ 1, 1, /* B */ 2, 2, /* C */ 0, 0, /* D */ 5, 5 /* E */};
    const double viol[] = {1.0, 0.0, 0.0, 0.5, 0.5};
    int rank[5];
    sn_nondominated_sort(rank, obj, viol, 5, 2);
    const int want[] = {3, 0, 1, 2, 2};
    for (int i = 0; i < 5; i++) assert_int_equal(rank[i], want[i]);

    /* without constraints A and D tie in front 0 */
    sn_nondominated_sort(rank, obj, NULL, 5, 2);
    const int plain[] = {0, 1, 2, 0, 3};
    for (int i = 0; i < 5; i++) assert_int_equal(rank[i], plain[i]);

    /* all-zero violations are the same as NULL */
    const double zero[5] = {0};
    sn_nondominated_sort(rank, obj, zero, 5, 2);
    for (int i = 0; i < 5; i++) assert_int_equal(rank[i], plain[i]);

    /* a feasible point beats a better infeasible one in a tournament */
    double crowd[5];
    char err[128];
    assert_int_equal(sn_nsga2_rank_crowd(rank, crowd, obj, viol, 5, 2, err, sizeof err), SN_OK);
    sn_rng r;
    sn_rng_seed(&r, 3, 0);
    const int pair_rank[2] = {rank[0], rank[2]};
    const double pair_crowd[2] = {crowd[0], crowd[2]};
    for (int t = 0; t < 20; t++) assert_int_equal(sn_tournament(&r, pair_rank, pair_crowd, 2), 1);
}

static void test_crowding_hand(void **state)
{
    (void)state;
    /* one 2-D front: x 0,1,3,4 ; y 4,3,1,0: ranges 4 and 4 */
    const double obj[] = {0, 4, 1, 3, 3, 1, 4, 0};
    const int mem[] = {0, 1, 2, 3};
    double d[4];
    char err[128];
    assert_int_equal(sn_crowding_distance(d, obj, 2, mem, 4, err, sizeof err), SN_OK);
    assert_true(isinf(d[0]) && isinf(d[3]));
    assert_close(d[1], 3.0 / 4 + 3.0 / 4, 1e-15, "d[1]");
    assert_close(d[2], 3.0 / 4 + 3.0 / 4, 1e-15, "d[2]");

    /* a subset in another order: dist follows members */
    const int sub[] = {2, 0, 1};
    assert_int_equal(sn_crowding_distance(d, obj, 2, sub, 3, err, sizeof err), SN_OK);
    assert_true(isinf(d[0]) && isinf(d[1]));
    assert_close(d[2], 3.0 / 3 + 3.0 / 3, 1e-15, "d[2] of subset");

    /* one point, and duplicates: no range, no distance */
    assert_int_equal(sn_crowding_distance(d, obj, 2, mem, 1, err, sizeof err), SN_OK);
    assert_true(d[0] == 0.0);
    const double dup[] = {1, 2, 1, 2, 1, 2};
    assert_int_equal(sn_crowding_distance(d, dup, 2, mem, 3, err, sizeof err), SN_OK);
    for (int i = 0; i < 3; i++) assert_true(d[i] == 0.0);
    /* two distinct points are both boundaries */
    assert_int_equal(sn_crowding_distance(d, obj, 2, mem, 2, err, sizeof err), SN_OK);
    assert_true(isinf(d[0]) && isinf(d[1]));
    assert_int_equal(sn_crowding_distance(d, obj, 2, mem, 0, err, sizeof err), SN_OK);
}

static void test_crowding_brute_force(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 12, 0);
    double obj[MAXN * 4], d[MAXN], want[MAXN];
    int mem[MAXN];
    char err[128];
    for (int trial = 0; trial < 600; trial++) {
        int m = 2 + trial % 3, n = 1 + (int)sn_rng_below(&r, MAXN);
        grid_points(&r, obj, n, m, 2 + trial % 6);
        /* a random subset in random order, as a caller's front list */
        int64_t perm[MAXN];
        for (int i = 0; i < n; i++) perm[i] = i;
        sn_rng_shuffle(&r, perm, n);
        int k = (int)sn_rng_below(&r, (uint64_t)n + 1);
        for (int i = 0; i < k; i++) mem[i] = (int)perm[i];
        assert_int_equal(sn_crowding_distance(d, obj, m, mem, k, err, sizeof err), SN_OK);
        ref_crowding(want, obj, m, mem, k);
        for (int i = 0; i < k; i++) {
            if (isinf(want[i]) || isinf(d[i])) {
                if (!(isinf(want[i]) && isinf(d[i])))
                    fail_msg("trial %d: member %d distance %g, brute force %g", trial, i, d[i],
                             want[i]);
                continue;
            }
            assert_close(d[i], want[i], 1e-12, "crowding distance");
        }
    }
}

/* rank_crowd is the sort plus crowding front by front. */
static void test_rank_crowd(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 13, 0);
    double obj[MAXN * 3], viol[MAXN], crowd[MAXN], d[MAXN];
    int rank[MAXN], want[MAXN], mem[MAXN];
    char err[128];
    for (int trial = 0; trial < 200; trial++) {
        int m = 2 + trial % 2, n = (int)sn_rng_below(&r, MAXN + 1);
        grid_points(&r, obj, n, m, 5);
        for (int i = 0; i < n; i++) viol[i] = sn_rng_below(&r, 4) ? 0.0 : 1.0;
        assert_int_equal(sn_nsga2_rank_crowd(rank, crowd, obj, viol, n, m, err, sizeof err),
                         SN_OK);
        ref_sort(want, obj, viol, n, m);
        for (int f = 0; f < n; f++) {
            int k = 0;
            for (int i = 0; i < n; i++) {
                assert_int_equal(rank[i], want[i]);
                if (rank[i] == f) mem[k++] = i;
            }
            ref_crowding(d, obj, m, mem, k);
            for (int i = 0; i < k; i++)
                assert_true(crowd[mem[i]] == d[i] || fabs(crowd[mem[i]] - d[i]) < 1e-12);
        }
    }
}

/* ------------------------------------------------------------------------
 * Selection
 * ------------------------------------------------------------------------ */

static void test_survivors_order(void **state)
{
    (void)state;
    const int rank[] = {1, 0, 0, 2, 1, 0};
    const double crowd[] = {INFINITY, 0.5, INFINITY, 1.0, 2.0, 0.5};
    const int order[] = {2, 1, 5, 0, 4, 3};
    int chosen[6];
    for (int keep = 0; keep <= 6; keep++) {
        for (int i = 0; i < 6; i++) chosen[i] = -7;
        sn_nsga2_survivors(chosen, rank, crowd, 6, keep);
        for (int i = 0; i < keep; i++) assert_int_equal(chosen[i], order[i]);
        for (int i = keep; i < 6; i++) assert_int_equal(chosen[i], -7);
    }
}

/* Against a full ordering of random ranks and crowding values with many
 * ties; and on real points whole fronts go before any of the next. */
static void test_survivors_brute_force(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 14, 0);
    int rank[MAXN], chosen[MAXN], order[MAXN];
    double crowd[MAXN], obj[MAXN * 2];
    char err[128];
    for (int trial = 0; trial < 300; trial++) {
        int n = (int)sn_rng_below(&r, MAXN + 1);
        for (int i = 0; i < n; i++) {
            rank[i] = (int)sn_rng_below(&r, 4);
            uint64_t c = sn_rng_below(&r, 4);
            crowd[i] = c == 3 ? INFINITY : (double)c;
        }
        /* selection sort by the crowded comparison */
        int used[MAXN] = {0};
        for (int t = 0; t < n; t++) {
            int best = -1;
            for (int i = 0; i < n; i++) {
                if (used[i]) continue;
                if (best < 0 || rank[i] < rank[best] ||
                    (rank[i] == rank[best] && crowd[i] > crowd[best]))
                    best = i;
            }
            used[best] = 1;
            order[t] = best;
        }
        int keep = (int)sn_rng_below(&r, (uint64_t)n + 1);
        sn_nsga2_survivors(chosen, rank, crowd, n, keep);
        for (int i = 0; i < keep; i++) assert_int_equal(chosen[i], order[i]);

        grid_points(&r, obj, n, 2, 8);
        assert_int_equal(sn_nsga2_rank_crowd(rank, crowd, obj, NULL, n, 2, err, sizeof err),
                         SN_OK);
        sn_nsga2_survivors(chosen, rank, crowd, n, keep);
        if (keep == 0) continue;
        int last = rank[chosen[keep - 1]], in_last = 0, all_last = 0;
        for (int i = 0; i < keep; i++) in_last += rank[chosen[i]] == last;
        for (int i = 0; i < n; i++) {
            all_last += rank[i] == last;
            if (rank[i] < last) {
                int found = 0;
                for (int j = 0; j < keep; j++) found |= chosen[j] == i;
                assert_true(found);
            }
        }
        assert_true(in_last <= all_last);
    }
}

static void test_tournament(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 15, 0);
    int rank[8];
    double crowd[8];
    for (int i = 0; i < 8; i++) {
        rank[i] = i / 2;
        crowd[i] = (double)(i % 2); /* the odd member of each front is less crowded */
    }
    int wins[8] = {0};
    assert_int_equal(sn_tournament(&r, rank, crowd, 1), 0);
    for (int t = 0; t < 8000; t++) wins[sn_tournament(&r, rank, crowd, 8)]++;
    /* the worst never wins: two distinct candidates are always drawn */
    assert_int_equal(wins[6], 0);
    /* i wins against the 7 - k points below it in the order
     * 1,0,3,2,5,4,7,6, with probability 2 (7 - k) / 56 */
    const int place[8] = {1, 0, 3, 2, 5, 4, 7, 6};
    for (int i = 0; i < 8; i++) {
        double p = 2.0 * (7 - place[i]) / 56.0;
        assert_close(wins[i] / 8000.0, p, 0.02, "tournament win rate");
    }
}

/* ------------------------------------------------------------------------
 * Hypervolume
 * ------------------------------------------------------------------------ */

static double hv(const double *obj, int n, int m, const double *ref)
{
    double v = -1.0;
    char err[128];
    if (sn_hypervolume(&v, obj, n, m, ref, err, sizeof err) != SN_OK) fail_msg("%s", err);
    return v;
}

static void test_hypervolume_hand(void **state)
{
    (void)state;
    const double ref2[] = {4, 4};
    /* staircase 1x3, 2x2, 3x1 under (4, 4): strips 3 + 2 + 1 */
    const double front[] = {1, 3, 2, 2, 3, 1};
    assert_close(hv(front, 3, 2, ref2), 6.0, 0, "2-D staircase");
    /* plus a dominated point, a duplicate, a point beyond ref and one on it */
    const double more[] = {3, 3, 1, 3, 2, 2, 3, 1, 5, 0, 4, 0, 2, 2, 0, 4};
    assert_close(hv(more, 8, 2, ref2), 6.0, 0, "2-D with dominated, outside, on-ref points");
    assert_close(hv(front, 0, 2, ref2), 0.0, 0, "no points");
    const double ref_low[] = {1, 1};
    assert_close(hv(front, 3, 2, ref_low), 0.0, 0, "nothing below ref");

    const double ref3[] = {1, 2, 3};
    const double origin[] = {0, 0, 0};
    assert_close(hv(origin, 1, 3, ref3), 6.0, 0, "one 3-D box");
    /* boxes 2x2x1 and 1x1x2 meeting in a unit cube */
    const double two[] = {0, 0, 1, 1, 1, 0};
    const double ref222[] = {2, 2, 2};
    assert_close(hv(two, 2, 3, ref222), 5.0, 0, "two 3-D boxes");
    /* three boxes 1x2x2: 3*4 - 3*2 + 1 */
    const double three[] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_close(hv(three, 3, 3, ref222), 7.0, 0, "three 3-D boxes");
    /* all in one z plane: the 2-D value times the depth */
    const double flat[] = {1, 3, 0, 2, 2, 0, 3, 1, 0};
    const double ref443[] = {4, 4, 3};
    assert_close(hv(flat, 3, 3, ref443), 18.0, 0, "flat 3-D front");
}

static void test_hypervolume_brute_force(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 16, 0);
    double obj[12 * 3];
    const double ref[3] = {1.0, 1.25, 1.0};
    for (int trial = 0; trial < 400; trial++) {
        int m = 2 + trial % 2, n = (int)sn_rng_below(&r, 13);
        grid_points(&r, obj, n, m, 6); /* values 0..1.25: some on or beyond ref */
        double want = ref_hypervolume(obj, n, m, ref);
        assert_close(hv(obj, n, m, ref), want, 1e-12, "hypervolume vs inclusion-exclusion");
    }
}

/* Monte-Carlo: the fraction of uniform samples of [0, ref) that some point
 * weakly dominates. */
static void test_hypervolume_monte_carlo(void **state)
{
    (void)state;
    sn_rng r;
    sn_rng_seed(&r, 17, 0);
    enum { N = 30, SAMPLES = 200000 };
    double obj[N * 3];
    const double ref[3] = {1, 1, 1};
    for (int m = 2; m <= 3; m++) {
        /* points near the sphere |x| = 1: a curved, mutually non-dominated front */
        for (int i = 0; i < N; i++) {
            double norm = 0.0;
            for (int o = 0; o < m; o++) {
                obj[i * m + o] = 0.05 + uniform(&r);
                norm += obj[i * m + o] * obj[i * m + o];
            }
            for (int o = 0; o < m; o++) obj[i * m + o] /= sqrt(norm) * 1.2;
        }
        int hit = 0;
        for (int s = 0; s < SAMPLES; s++) {
            double y[3];
            for (int o = 0; o < m; o++) y[o] = uniform(&r) * ref[o];
            for (int i = 0; i < N; i++) {
                int dom = 1;
                for (int o = 0; o < m; o++) dom &= obj[i * m + o] <= y[o];
                if (dom) {
                    hit++;
                    break;
                }
            }
        }
        /* the estimate's standard error is below 0.0012 */
        assert_close(hv(obj, N, m, ref), (double)hit / SAMPLES, 0.006, "Monte-Carlo");
    }
}

/* ------------------------------------------------------------------------
 * Variation
 * ------------------------------------------------------------------------ */

/* Three stages of different depth ranges, a single MLP width. */
static void space_three_stages(sn_space *s)
{
    sn_space_default(s);
    s->n_embed = 2;
    s->embed[0] = 32;
    s->embed[1] = 48;
    s->n_heads = 2;
    s->heads[0] = 2;
    s->heads[1] = 4;
    s->n_mlp = 1;
    s->mlp[0] = 64;
    s->n_stages = 3;
    const int lo[] = {1, 2, 1}, hi[] = {1, 5, 3};
    for (int st = 0; st < 3; st++) {
        s->min_depth[st] = lo[st];
        s->max_depth[st] = hi[st];
    }
    assert_int_equal(sn_space_validate(s, NULL, 0), SN_OK);
}

static void assert_inside(const sn_space *s, const sn_subnet *n)
{
    char err[256];
    if (sn_subnet_validate(s, n, err, sizeof err) != SN_OK) fail_msg("%s", err);
    for (int i = n->n_blocks; i < SN_MAX_BLOCKS; i++)
        assert_true(n->heads[i] == 0 && n->mlp[i] == 0);
}

/* Index of block (st, j) of n. */
static int block_at(const sn_subnet *n, int st, int j)
{
    int off = 0;
    for (int t = 0; t < st; t++) off += n->depth[t];
    return off + j;
}

static void test_subnet_equal(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    sn_rng r;
    sn_rng_seed(&r, 18, 0);
    sn_subnet a, b;
    sn_subnet_sample(&s, &r, &a);
    b = a;
    assert_true(sn_subnet_equal(&a, &b));
    b.heads[b.n_blocks] = 99; /* unused slot */
    assert_true(sn_subnet_equal(&a, &b));
    b.mlp[b.n_blocks - 1] ^= 1;
    assert_false(sn_subnet_equal(&a, &b));
    char err[128];
    /* the same blocks split differently between the stages */
    assert_int_equal(sn_subnet_parse(&s, "e64-d1.2-h1.1.1-f96.96.96", &a, err, sizeof err), SN_OK);
    assert_int_equal(sn_subnet_parse(&s, "e64-d2.1-h1.1.1-f96.96.96", &b, err, sizeof err), SN_OK);
    assert_false(sn_subnet_equal(&a, &b));
}

static void check_crossover(const sn_space *s, sn_rng *r, int draws)
{
    for (int t = 0; t < draws; t++) {
        sn_subnet a, b, c;
        sn_subnet_sample(s, r, &a);
        sn_subnet_sample(s, r, &b);
        sn_subnet_crossover(s, r, &a, &b, &c);
        assert_inside(s, &c);
        assert_true(c.embed == a.embed || c.embed == b.embed);
        for (int st = 0; st < s->n_stages; st++) {
            assert_true(c.depth[st] == a.depth[st] || c.depth[st] == b.depth[st]);
            for (int j = 0; j < c.depth[st]; j++) {
                int i = block_at(&c, st, j), ia = block_at(&a, st, j), ib = block_at(&b, st, j);
                int from_a = j < a.depth[st] && a.heads[ia] == c.heads[i] && a.mlp[ia] == c.mlp[i];
                int from_b = j < b.depth[st] && b.heads[ib] == c.heads[i] && b.mlp[ib] == c.mlp[i];
                assert_true(from_a || from_b);
            }
        }
        sn_subnet_crossover(s, r, &a, &a, &c);
        assert_true(sn_subnet_equal(&a, &c));
    }
}

static void check_mutation(const sn_space *s, sn_rng *r, int draws)
{
    const double probs[] = {0.0, 0.05, 0.3, 1.0};
    for (int t = 0; t < draws; t++) {
        sn_subnet a, c;
        sn_subnet_sample(s, r, &a);
        double p = probs[t % 4];
        c = a;
        sn_subnet_mutate(s, r, p, &c);
        assert_inside(s, &c);
        if (p == 0.0) assert_true(sn_subnet_equal(&a, &c));
    }
}

static void test_variation_stays_inside(void **state)
{
    (void)state;
    sn_space def, three;
    sn_space_default(&def);
    space_three_stages(&three);
    sn_rng r;
    sn_rng_seed(&r, 19, 0);
    check_crossover(&def, &r, 4000);
    check_crossover(&three, &r, 4000);
    check_mutation(&def, &r, 4000);
    check_mutation(&three, &r, 4000);
}

/* With prob 1 every gene is redrawn: every embed and depth is reached. */
static void test_mutation_coverage(void **state)
{
    (void)state;
    sn_space s;
    space_three_stages(&s);
    sn_rng r;
    sn_rng_seed(&r, 20, 0);
    int seen_embed[2] = {0}, seen_depth[3][6] = {{0}};
    sn_subnet n;
    sn_subnet_min(&s, &n);
    for (int t = 0; t < 500; t++) {
        sn_subnet_mutate(&s, &r, 1.0, &n);
        seen_embed[n.embed == 48]++;
        for (int st = 0; st < 3; st++) seen_depth[st][n.depth[st]]++;
    }
    assert_true(seen_embed[0] > 0 && seen_embed[1] > 0);
    for (int st = 0; st < 3; st++)
        for (int d = s.min_depth[st]; d <= s.max_depth[st]; d++) assert_true(seen_depth[st][d] > 0);
}

/* A stage that changes depth keeps its first blocks: a kept block is
 * unchanged unless its own genes were redrawn to new values, which happens
 * with probability 1 - (1 - p 2/3)(1 - p 7/8) on the default space. */
static void test_mutation_keeps_prefix(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    sn_rng r;
    sn_rng_seed(&r, 21, 0);
    const double p = 0.3;
    long kept = 0, same = 0;
    for (int t = 0; t < 20000; t++) {
        sn_subnet a, c;
        sn_subnet_sample(&s, &r, &a);
        c = a;
        sn_subnet_mutate(&s, &r, p, &c);
        for (int st = 0; st < s.n_stages; st++) {
            if (c.depth[st] == a.depth[st]) continue;
            int k = c.depth[st] < a.depth[st] ? c.depth[st] : a.depth[st];
            for (int j = 0; j < k; j++) {
                int i = block_at(&c, st, j), ia = block_at(&a, st, j);
                kept++;
                same += c.heads[i] == a.heads[ia] && c.mlp[i] == a.mlp[ia];
            }
        }
    }
    assert_true(kept > 1000);
    assert_close((double)same / (double)kept, (1 - p * 2 / 3) * (1 - p * 7 / 8), 0.03,
                 "kept blocks unchanged");
}

/* ------------------------------------------------------------------------
 * Offspring
 * ------------------------------------------------------------------------ */

enum { POP = 20, ARCHIVE = 70, KIDS = 30 };

/* Parents, their ranks and crowding from random objectives, and an
 * archive holding the parents and 50 more. */
static void population(const sn_space *s, sn_rng *r, sn_subnet *par, int *rank, double *crowd,
                       sn_subnet *archive)
{
    double obj[POP * 2];
    char err[128];
    for (int i = 0; i < POP; i++) {
        sn_subnet_sample(s, r, &par[i]);
        obj[2 * i] = (double)sn_subnet_macs(s, &par[i]);
        obj[2 * i + 1] = uniform(r);
        archive[i] = par[i];
    }
    for (int i = POP; i < ARCHIVE; i++) sn_subnet_sample(s, r, &archive[i]);
    assert_int_equal(sn_nsga2_rank_crowd(rank, crowd, obj, NULL, POP, 2, err, sizeof err), SN_OK);
}

static void test_offspring_distinct(void **state)
{
    (void)state;
    sn_space spaces[2];
    sn_space_default(&spaces[0]);
    space_three_stages(&spaces[1]);
    for (int sp = 0; sp < 2; sp++) {
        const sn_space *s = &spaces[sp];
        sn_rng r;
        sn_rng_seed(&r, 22, (uint64_t)sp);
        sn_subnet par[POP], archive[ARCHIVE], kids[KIDS];
        int rank[POP];
        double crowd[POP];
        population(s, &r, par, rank, crowd, archive);
        int made = sn_nsga2_offspring(s, &r, par, rank, crowd, POP, KIDS, 0.1, archive, ARCHIVE,
                                      kids);
        assert_int_equal(made, KIDS);
        for (int i = 0; i < made; i++) {
            assert_inside(s, &kids[i]);
            for (int j = 0; j < i; j++) assert_false(sn_subnet_equal(&kids[i], &kids[j]));
            for (int j = 0; j < ARCHIVE; j++) assert_false(sn_subnet_equal(&kids[i], &archive[j]));
        }
    }
}

/* A space of three sub-networks runs out. */
static void test_offspring_tiny_space(void **state)
{
    (void)state;
    sn_space s;
    sn_space_default(&s);
    s.n_embed = 1;
    s.n_heads = 1;
    s.n_mlp = 1;
    s.n_stages = 1;
    s.min_depth[0] = 1;
    s.max_depth[0] = 3;
    assert_true(sn_space_count(&s) == 3.0);
    sn_subnet all[3], kids[5];
    for (int d = 0; d < 3; d++) {
        sn_subnet_min(&s, &all[d]);
        while (all[d].depth[0] < d + 1) {
            all[d].heads[all[d].n_blocks] = s.heads[0];
            all[d].mlp[all[d].n_blocks] = s.mlp[0];
            all[d].depth[0]++;
            all[d].n_blocks++;
        }
        assert_inside(&s, &all[d]);
    }
    const int rank[3] = {0, 0, 0};
    const double crowd[3] = {INFINITY, 1.0, INFINITY};
    sn_rng r;
    sn_rng_seed(&r, 23, 0);
    /* two of three already evaluated: one new child, then none */
    assert_int_equal(sn_nsga2_offspring(&s, &r, all, rank, crowd, 3, 5, 0.5, all, 2, kids), 1);
    assert_true(sn_subnet_equal(&kids[0], &all[2]));
    assert_int_equal(sn_nsga2_offspring(&s, &r, all, rank, crowd, 3, 5, 0.5, all, 3, kids), 0);
    /* without an archive all three are made, and no more */
    assert_int_equal(sn_nsga2_offspring(&s, &r, all, rank, crowd, 3, 5, 0.5, NULL, 0, kids), 3);
    /* one parent, no mutation: crossover can only copy it */
    assert_int_equal(sn_nsga2_offspring(&s, &r, all, rank, crowd, 1, 2, 0.0, all, 1, kids), 0);
}

static void test_determinism(void **state)
{
    (void)state;
    sn_space s;
    space_three_stages(&s);
    sn_subnet par[POP], archive[ARCHIVE], kids[2][KIDS];
    int rank[POP];
    double crowd[POP];
    sn_rng r, again;
    sn_rng_seed(&r, 24, 0);
    population(&s, &r, par, rank, crowd, archive);
    again = r;
    assert_int_equal(
        sn_nsga2_offspring(&s, &r, par, rank, crowd, POP, KIDS, 0.2, archive, ARCHIVE, kids[0]),
        KIDS);
    assert_int_equal(
        sn_nsga2_offspring(&s, &again, par, rank, crowd, POP, KIDS, 0.2, archive, ARCHIVE,
                           kids[1]),
        KIDS);
    assert_memory_equal(kids[0], kids[1], sizeof kids[0]);
    assert_memory_equal(&r, &again, sizeof r);
    /* another stream gives other children */
    sn_rng_seed(&again, 24, 1);
    assert_int_equal(
        sn_nsga2_offspring(&s, &again, par, rank, crowd, POP, KIDS, 0.2, archive, ARCHIVE,
                           kids[1]),
        KIDS);
    assert_true(memcmp(kids[0], kids[1], sizeof kids[0]) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_brute_force),
        cmocka_unit_test(test_constrained_domination),
        cmocka_unit_test(test_crowding_hand),
        cmocka_unit_test(test_crowding_brute_force),
        cmocka_unit_test(test_rank_crowd),
        cmocka_unit_test(test_survivors_order),
        cmocka_unit_test(test_survivors_brute_force),
        cmocka_unit_test(test_tournament),
        cmocka_unit_test(test_hypervolume_hand),
        cmocka_unit_test(test_hypervolume_brute_force),
        cmocka_unit_test(test_hypervolume_monte_carlo),
        cmocka_unit_test(test_subnet_equal),
        cmocka_unit_test(test_variation_stays_inside),
        cmocka_unit_test(test_mutation_coverage),
        cmocka_unit_test(test_mutation_keeps_prefix),
        cmocka_unit_test(test_offspring_distinct),
        cmocka_unit_test(test_offspring_tiny_space),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
