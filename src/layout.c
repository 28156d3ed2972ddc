#include "src/layout.h"

#include <stdio.h>

#include "src/util.h"

/* Writes the multiples of m nearest to v (v not a multiple of m, m >= 1)
 * into buf as "LO or HI", or "HI" when the lower one is 0. */
static void nearest_multiples(char *buf, size_t len, int64_t v, int64_t m)
{
    int64_t lo = v / m * m;
    if (lo > 0)
        snprintf(buf, len, "%lld or %lld", (long long)lo, (long long)(lo + m));
    else
        snprintf(buf, len, "%lld", (long long)(lo + m));
}

/* Writes the --sp values above 1 (at most 6, smallest first) for which
 * v / (per * sp) is whole, as "--sp 2, 4 or 8", or "" if there are none. */
static void sp_choices(char *buf, size_t len, int64_t v, int64_t per)
{
    int64_t found[6];
    int n = 0;
    for (int64_t sp = 2; sp * per <= v && n < 6; sp++)
        if (v % (sp * per) == 0) found[n++] = sp;
    buf[0] = '\0';
    size_t at = 0;
    for (int i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i == 0 ? "--sp " : i == n - 1 ? " or " : ", ",
                               (long long)found[i]);
}

int sn_layout_resolve(sn_layout *l, int world, int n_blocks, int64_t seq_len,
                      sn_seq_layout seq_layout, int64_t batch, int64_t micro,
                      const char *seq_what, char *err, size_t errlen)
{
    char near[64], sps[96];
    if (world < 1) return sn_errf(err, errlen, "a job of %d ranks: needs at least 1", world);
    if (n_blocks < 1)
        return sn_errf(err, errlen, "a supernet of %d blocks: needs at least 1", n_blocks);
    if (l->pp < 1) return sn_errf(err, errlen, "--pp %d: must be at least 1", l->pp);
    if (l->sp < 1) return sn_errf(err, errlen, "--sp %d: must be at least 1", l->sp);
    if (l->dp < 0)
        return sn_errf(err, errlen, "--dp %d: must be at least 1 (or 0 to use every rank)", l->dp);
    if (seq_len < 1)
        return sn_errf(err, errlen, "sequence length %lld (%s): must be at least 1",
                       (long long)seq_len, seq_what);
    if (batch < 1) return sn_errf(err, errlen, "--batch-size %lld: must be at least 1", (long long)batch);
    if (micro < 1)
        return sn_errf(err, errlen, "--micro-batches %lld: must be at least 1", (long long)micro);

    if (l->pp > n_blocks)
        return sn_errf(err, errlen,
                       "--pp %d pipeline stages for a supernet of %d blocks: at most %d "
                       "pipeline stages (every stage needs a block)",
                       l->pp, n_blocks, n_blocks);
    const int64_t group = (int64_t)l->pp * l->sp;   /* ranks of one data replica */
    if (world == 1 && group > 1)
        return sn_errf(err, errlen,
                       "--pp %d x --sp %d needs %lld ranks (or a multiple), but this is a "
                       "one-rank run: start it with mpirun -np %lld (or srun -n %lld)",
                       l->pp, l->sp, (long long)group, (long long)group, (long long)group);
    if (world % group != 0) {
        nearest_multiples(near, sizeof near, world, group);
        return sn_errf(err, errlen,
                       "%d ranks do not split into replicas of --pp %d x --sp %d = %lld ranks: "
                       "run a multiple of %lld ranks (%s), or choose --pp and --sp whose "
                       "product divides %d",
                       world, l->pp, l->sp, (long long)group, (long long)group, near, world);
    }
    const int dp = l->dp > 0 ? l->dp : (int)(world / group);
    if ((int64_t)dp * group != world)
        return sn_errf(err, errlen,
                       "--dp %d x --pp %d x --sp %d = %lld ranks, but the job has %d: use "
                       "--dp %lld (or leave --dp out), or run %lld ranks",
                       dp, l->pp, l->sp, (long long)(dp * group), world,
                       (long long)(world / group), (long long)(dp * group));

    /* With one rank the zigzag layout is the identity (src/seq.h). */
    if (seq_layout == SN_SEQ_ZIGZAG && l->sp > 1) {
        const int64_t m = 2 * (int64_t)l->sp;
        if (seq_len % m != 0) {
            nearest_multiples(near, sizeof near, seq_len, m);
            sp_choices(sps, sizeof sps, seq_len, 2);
            return sn_errf(err, errlen,
                           "sequence length %lld (%s) is not divisible by 2 x --sp %d = %lld "
                           "(causal attention splits it into 2 chunks per rank): %s%sa length "
                           "of %s would work",
                           (long long)seq_len, seq_what, l->sp, (long long)m, sps,
                           sps[0] ? " would, or " : "", near);
        }
    } else if (seq_len % l->sp != 0) {
        nearest_multiples(near, sizeof near, seq_len, l->sp);
        sp_choices(sps, sizeof sps, seq_len, 1);
        return sn_errf(err, errlen,
                       "sequence length %lld (%s) is not divisible by --sp %d: %s%sa length of "
                       "%s would work",
                       (long long)seq_len, seq_what, l->sp, sps, sps[0] ? " would, or " : "",
                       near);
    }

    const int64_t parts = (int64_t)dp * micro;
    if (batch % parts != 0) {
        nearest_multiples(near, sizeof near, batch, parts);
        return sn_errf(err, errlen,
                       "--batch-size %lld does not split over %d data ranks x --micro-batches "
                       "%lld (%lld equal micro-batches): use --batch-size %s",
                       (long long)batch, dp, (long long)micro, (long long)parts, near);
    }
    l->dp = dp;
    return SN_OK;
}

void sn_layout_coords(const sn_layout *l, int rank, int *d, int *p, int *s)
{
    *s = rank % l->sp;
    *p = rank / l->sp % l->pp;
    *d = rank / l->sp / l->pp;
}

int sn_layout_rank(const sn_layout *l, int d, int p, int s)
{
    return (d * l->pp + p) * l->sp + s;
}

void sn_layout_stage_blocks(int n_blocks, int pp, int p, int *lo, int *hi)
{
    const int base = n_blocks / pp, extra = n_blocks % pp;
    *lo = p * base + (p < extra ? p : extra);
    *hi = *lo + base + (p < extra ? 1 : 0);
}
