/* rng.h: a small, seedable, serialisable random generator (xoshiro256**).
 *
 * Every random choice in supernest (weight init, sub-network sampling,
 * data shuffling, the validation split) draws from an sn_rng derived from
 * the run seed and a stream id, so that the same seed reproduces a run bit
 * for bit on any layout.  The state is four plain uint64 words: a
 * checkpoint stores it as is.
 */
#ifndef SN_RNG_H
#define SN_RNG_H

#include <stdint.h>

typedef struct sn_rng {
    uint64_t s[4];
} sn_rng;

/* Seeds the generator from (seed, stream) through splitmix64; different
 * streams of one seed are independent. */
void sn_rng_seed(sn_rng *r, uint64_t seed, uint64_t stream);
uint64_t sn_rng_u64(sn_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t sn_rng_below(sn_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float sn_rng_normal(sn_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void sn_rng_shuffle(sn_rng *r, int64_t *idx, int64_t n);

#endif
