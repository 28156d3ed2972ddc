/* latency.h: a latency lookup table for the sub-networks of a space, on
 * the machine that measures it.  MPI-free, no files (io/latency stores it).
 *
 * One forward pass of a sub-network is its embedding, its kept blocks and
 * its head (final norm, pooling, classifier); a block's time depends only
 * on (embed, heads, mlp), not on which supernet block it is.  The table
 * holds the median time of each part for every choice, so that
 *     predict(n) = embed(e) + sum_i block(e, h_i, f_i) + head(e)
 * prices any of the space's sub-networks without running it.
 *
 * Measurements run the model's own forward (sn_model_forward_shard) on
 * random weights and inputs: latency does not depend on the values.  Each
 * part is timed as a shard of its own.  The timed passes of a block cycle
 * through the supernet's blocks so that, as in a whole forward, each pass
 * finds weights that the previous one did not touch (a table of one block
 * run over and over would time its weights hot in the core's cache and
 * predict too little).
 */
#ifndef SN_LATENCY_H
#define SN_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#include "src/arch.h"
#include "src/seq.h"

/* Timed passes per measurement at most. */
#define SN_LATENCY_MAX_REPS 100000
/* Sweeps over all the entries (or sub-networks) that a measurement's
 * timed passes are spread over: a burst of load from other processes then
 * inflates a few samples of many entries, which the median ignores, not
 * all samples of a few entries. */
#define SN_LATENCY_SWEEPS 5

typedef struct sn_latency_table {
    sn_space space;
    int64_t batch;      /* sequences per forward pass */
    int threads;        /* compute threads per pass */
    int reps, warmup;   /* timed passes (median taken) after untimed ones */
    float *embed_ms;    /* (n_embed) owned */
    float *block_ms;    /* (n_embed, n_heads, n_mlp) row-major, owned */
    float *head_ms;     /* (n_embed) owned */
    /* The prediction is offset + scale x (the sum of the parts): a whole
     * forward pass runs its parts back to back, with the previous part's
     * output still in cache, which timing each part alone does not see.
     * sn_latency_calibrate fits both; 0 and 1 until then. */
    double offset_ms, scale;
} sn_latency_table;

/* A table for space s (validated by the caller) with every time 0 and
 * batch, threads, reps and warmup 0; NULL when out of memory. */
sn_latency_table *sn_latency_table_create(const sn_space *s);
/* Frees t and its arrays; NULL is ignored. */
void sn_latency_table_destroy(sn_latency_table *t);

/* block_ms entry for embed choice ie, heads choice ih, MLP choice im. */
float *sn_latency_block(const sn_latency_table *t, int ie, int ih, int im);

/* Measures every entry of t (created for the space to time): the median
 * over reps timed passes of a forward of b sequences on nt threads
 * (reps <= SN_LATENCY_MAX_REPS), spread over SN_LATENCY_SWEEPS sweeps
 * through all entries, each entry's share of a sweep after warmup untimed
 * passes.  attn: the attention engine the model runs the
 * language model with (NULL: the model's one-rank attention; src/seq.h).
 * seed seeds the random weights and inputs.  Records b, nt, reps and
 * warmup in t.  SN_ERR with a message when out of memory. */
int sn_latency_measure_table(sn_latency_table *t, int64_t b, int nt, int reps, int warmup,
                             const sn_attn_engine *attn, uint64_t seed, char *err,
                             size_t errlen);

/* Predicted time (ms) of one forward pass of n (a sub-network of t's
 * space): embed(e) + sum over kept blocks of block(e, h_i, f_i) + head(e). */
double sn_latency_predict(const sn_latency_table *t, const sn_subnet *n);

/* Fits t's offset and scale by least squares of the relative error to k
 * random sub-networks of
 * its space (drawn from (seed, a stream of their own), so not the ones
 * `latency-table --check` reports on) timed whole as
 * sn_latency_measure_subnets does; k >= 2.  SN_ERR when out of memory. */
int sn_latency_calibrate(sn_latency_table *t, const sn_attn_engine *attn, int k, uint64_t seed,
                         char *err, size_t errlen);

/* A workspace for timing whole sub-networks of space s (random weights
 * from seed, random inputs) at batch b: one model and activation buffer
 * reused by every call of sn_latency_measure_subnets.  attn as above (kept
 * by pointer: it must outlive the workspace).  NULL when out of memory. */
typedef struct sn_latency_bench sn_latency_bench;
sn_latency_bench *sn_latency_bench_create(const sn_space *s, int64_t b,
                                          const sn_attn_engine *attn, uint64_t seed);
void sn_latency_bench_destroy(sn_latency_bench *w);

/* Times the whole sub-networks nets[0..k) on nt threads: ms[i] is the
 * median of reps forward passes of nets[i] (reps <= SN_LATENCY_MAX_REPS),
 * taken in sweeps as for the table (warmup untimed passes before each
 * sub-network's share of every sweep): the one-rank path of the image
 * task (sn_model_forward), the one-shard path with w's attention engine
 * for the language model.  SN_ERR with a message when out of memory. */
int sn_latency_measure_subnets(sn_latency_bench *w, const sn_subnet *nets, int k, int nt,
                               int reps, int warmup, double *ms, char *err, size_t errlen);

#endif
