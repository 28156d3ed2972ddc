/* arch.h: the search space, sub-network configurations and their canonical
 * string, parameter and MAC counts, and sampling.
 *
 * A supernet has n_stages stages of blocks (stages of the *search space*,
 * independent of the rank layout).  A sub-network keeps a prefix of every
 * elastic dimension: the first `embed` channels, the first depth[s] blocks
 * of stage s, and in each kept block the first heads[i] attention heads
 * (of head_dim channels each) and the first mlp[i] hidden units.
 *
 * Canonical string (round-trip exact):
 *     e<embed>-d<depth0>.<depth1>...-h<heads per kept block>-f<mlp per kept block>
 * e.g. e192-d3.3-h3.3.3.3.3.3-f768.768.768.768.768.768.  Kept blocks are
 * listed in order: stage 0's blocks, then stage 1's, ...
 */
#ifndef SN_ARCH_H
#define SN_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/rng.h"

#define SN_MAX_CHOICES 32
#define SN_MAX_STAGES 16
#define SN_MAX_BLOCKS 64
#define SN_SUBNET_STRLEN 1024
#define SN_MAX_STEM 1024 /* channels of a stem convolution */
#define SN_MAX_STEM_CONVS 3 /* convolutions of the stem (2 or 3) */
#define SN_MAX_EMBED_IN (1 << 24) /* values per token the stem may give the patch embedding */

/* What the tokens are and what the network predicts. */
typedef enum sn_task {
    SN_TASK_IMAGE = 0,  /* tokens: image patches (token_dim values each); mean pooling, one
                           class per sequence; bidirectional attention */
    SN_TASK_LM = 1,     /* tokens: byte ids (token_dim = vocabulary 256); causal attention,
                           the next byte predicted at every position */
} sn_task;

typedef struct sn_space {
    /* elastic choices, strictly ascending, each list non-empty */
    int n_embed;
    int embed[SN_MAX_CHOICES];
    int n_heads;
    int heads[SN_MAX_CHOICES];
    int n_mlp;
    int mlp[SN_MAX_CHOICES];
    int n_stages;
    int min_depth[SN_MAX_STAGES];   /* >= 1 */
    int max_depth[SN_MAX_STAGES];   /* >= min_depth; sum <= SN_MAX_BLOCKS */
    int head_dim;                   /* channels per head, fixed */
    /* fixed by the task */
    sn_task task;
    int n_tokens;                   /* sequence length t */
    int token_dim;                  /* input values per token: patch size^2, or with the
                                       stem the (patch+3)^2 pixels of its window */
    int n_classes;                  /* classifier outputs */
    int stem[SN_MAX_STEM_CONVS];    /* image task: channels of the convolutional stem's 2 or 3
                                       convolutions, 0 after the last; all 0: none (see
                                       sn_stem_*) */
} sn_space;

typedef struct sn_subnet {
    int embed;
    int n_stages;
    int depth[SN_MAX_STAGES];
    int n_blocks;                   /* sum of depth[] */
    int heads[SN_MAX_BLOCKS];       /* per kept block, in order */
    int mlp[SN_MAX_BLOCKS];
} sn_subnet;

/* The default image space: e {64,96,128,160,192}, heads {1,2,3} of 64,
 * MLP {96,192,...,768}, 2 stages of 1..3 blocks; tokens 49 of 16 values,
 * 10 classes.  About 1.04e9 sub-networks; the largest is the 6-layer ViT of
 * embed 192, 3 heads, MLP 768. */
void sn_space_default(sn_space *s);

/* The convolutional stem (image task, optional) of n = 2 or 3
 * convolutions, each 3x3 and followed by GELU:
 *     conv1: 1 -> stem[0] channels, zero padding n, stride 1
 *     conv2 .. conv n: stem[k-2] -> stem[k-1] channels, no padding, stride 2
 * over the whole image (28 x 28: two give 30 x 30 then 14 x 14; three give
 * 32 x 32, 15 x 15, then 7 x 7).  A token's patch of p x p pixels (p a
 * multiple of 2^(n-1)) is the g x g block, g = p / 2^(n-1), of the last
 * convolution's output at its patch (features position-major:
 * (i*g + j)*stem[n-1] + c), which the patch embedding then projects to e.
 * That block depends on the window of p + 2^(n-1) + 1 pixels a side from n
 * before the patch to the rest after (zeros outside the image): the window
 * is the token's input (token_dim its square), and the stem is computed
 * token by token over it without padding, which lets a sequence-parallel
 * rank compute its own tokens only. */
/* Convolutions of s's stem: 0 (none), 2 or 3 (valid spaces). */
static inline int sn_stem_convs(const sn_space *s)
{
    int n = 0;
    while (n < SN_MAX_STEM_CONVS && s->stem[n] > 0) n++;
    return n;
}
static inline bool sn_space_has_stem(const sn_space *s) { return s->stem[0] > 0; }
/* Side of a token's input for patch p with a stem of `convs` convolutions
 * (0: none, the patch itself): p + 2^(convs-1) + 1. */
static inline int sn_stem_window(int p, int convs)
{
    return convs > 0 ? p + (1 << (convs - 1)) + 1 : p;
}
/* Pixels of the window before the patch: the stem's conv1 padding. */
static inline int sn_stem_before(int convs) { return convs; }
/* Values per token of the image task for patch size p: p*p, or with a
 * stem of `convs` convolutions the pixels of its window. */
static inline int sn_image_token_dim(int p, int convs)
{
    const int w = sn_stem_window(p, convs);
    return w * w;
}
/* SN_ERR (the problem in err) unless patch p suits a stem of `convs`
 * convolutions: any p without one, a multiple of 2^(convs-1) with one. */
int sn_stem_patch_check(int p, int convs, char *err, size_t errlen);
/* The stem's channels as "C1,C2" or "C1,C2,C3" ("none" without one). */
void sn_stem_format(const sn_space *s, char *buf, size_t len);
/* Parameters of the stem's convolutions (0 without a stem). */
int64_t sn_stem_params(const sn_space *s);
/* g: the last convolution's outputs per token side (0 without a stem). */
int sn_stem_grid(const sn_space *s);
/* Positions per token side at which each convolution is computed, token
 * by token: side[n-1] = g, side[k-1] = 2*side[k] + 1 (conv1 over the
 * window's side - 2).  Returns n (0 without a stem). */
int sn_stem_sides(const sn_space *s, int64_t side[SN_MAX_STEM_CONVS]);
/* Values the patch embedding takes per token: token_dim without a stem,
 * g^2 * stem[n-1] with one (at most SN_MAX_EMBED_IN in a valid space). */
int sn_space_embed_in(const sn_space *s);

/* Checks that every list is non-empty, ascending and positive, depths
 * consistent, dimensions positive.  SN_ERR with the field named. */
int sn_space_validate(const sn_space *s, char *err, size_t errlen);

/* True if a and b describe the same space (the used entries of every list
 * and every dimension; unused array slots are ignored). */
bool sn_space_equal(const sn_space *a, const sn_space *b);

/* One-line description: "embed 64,96 heads 1,2 mlp 96,192 depths 1-3,1-3
 * head_dim 64 image tokens 49x16 classes 10", then " stem 32,64" with a
 * stem. */
void sn_space_format(const sn_space *s, char *buf, size_t len);

/* Total blocks of the supernet (sum of max_depth). */
int sn_space_max_blocks(const sn_space *s);
/* Index, in the supernet, of the first block of stage s. */
int sn_space_stage_offset(const sn_space *s, int stage);
/* Number of distinct sub-networks (as a double: it can exceed 2^63). */
double sn_space_count(const sn_space *s);

/* The elastic dimensions, as bits of a mask. */
enum {
    SN_DIM_DEPTH = 1 << 0,  /* blocks per stage */
    SN_DIM_HEADS = 1 << 1,  /* attention heads of each kept block */
    SN_DIM_MLP = 1 << 2,    /* MLP hidden width of each kept block */
    SN_DIM_EMBED = 1 << 3,  /* embedding width */
    SN_DIM_ALL = (1 << 4) - 1,
};

/* Largest / smallest sub-network. */
void sn_subnet_max(const sn_space *s, sn_subnet *out);
void sn_subnet_min(const sn_space *s, sn_subnet *out);
/* The smallest sub-network of the dimensions in `open` (SN_DIM_* bits),
 * the others at their largest choice: SN_DIM_ALL gives sn_subnet_min, 0
 * sn_subnet_max. */
void sn_subnet_min_dims(const sn_space *s, unsigned open, sn_subnet *out);
/* Uniform random sub-network: every dimension (embed, each stage's depth,
 * each kept block's heads and MLP width) drawn uniformly and independently
 * from its choices. */
void sn_subnet_sample(const sn_space *s, sn_rng *r, sn_subnet *out);
/* sn_subnet_sample over the dimensions in `open` only: the others take
 * their largest choice and draw nothing from r, so SN_DIM_ALL draws
 * exactly what sn_subnet_sample draws. */
void sn_subnet_sample_dims(const sn_space *s, unsigned open, sn_rng *r, sn_subnet *out);

/* Supernet block index of the i-th kept block of n. */
int sn_subnet_block(const sn_space *s, const sn_subnet *n, int i);

/* Parses a canonical string, or "max" / "min" (s must be valid; out is
 * written only on success; stages and blocks in messages count from 0).
 * On error returns SN_ERR and a message naming the field and the values
 * allowed, e.g.
 * "sub-network 'e100-...': embed 100 is not one of 64,96,128,160,192". */
int sn_subnet_parse(const sn_space *s, const char *str, sn_subnet *out,
                    char *err, size_t errlen);
/* Writes the canonical string; returns its length, or SN_ERR if buf is
 * too small. */
int sn_subnet_format(const sn_subnet *n, char *buf, size_t len);
/* Checks that n lies inside s (same checks as parse). */
int sn_subnet_validate(const sn_space *s, const sn_subnet *n, char *err, size_t errlen);

/* Trainable parameters a sub-network uses (stem, patch embedding,
 * positions, blocks, final norm, classifier). */
int64_t sn_subnet_params(const sn_space *s, const sn_subnet *n);
/* Multiply-accumulates of one forward pass of one input sequence
 * (linear layers, the stem's convolutions as computed token by token, and
 * the two attention products; norms and activations are not counted). */
int64_t sn_subnet_macs(const sn_space *s, const sn_subnet *n);

#endif
