/* model.h: the supernet's parameters, and forward/backward of any of its
 * sub-networks.
 *
 * A pre-LN transformer over token sequences: an optional convolutional
 * stem (src/arch.h), patch embedding (linear;
 * for the language model a byte-embedding lookup into the same (E, 256)
 * matrix) + learned positions, blocks of [LN, multi-head attention,
 * residual, LN, MLP with GELU, residual], a final LN, and a linear
 * classifier: over the mean of the tokens (image task), or at every token
 * with causal attention (language model).
 *
 * Every parameter of the supernet lives in ONE contiguous float buffer;
 * sn_params holds named views into it at the supernet's full shapes.
 * Gradients and the optimizer's moments use the same layout (bind the same
 * table to another buffer).  A sub-network uses prefix slices of those
 * views through strided GEMMs: rows/columns [0, e) of a (E, *) matrix etc.
 * Nothing is copied.
 *
 * Layout of the attention input projection: qkv_w is (H, 3, D, E) stored
 * as (H*3*D, E): head by head, q then k then v, so that the first h heads
 * are the first h*3*D rows.
 */
#ifndef SN_MODEL_H
#define SN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/arch.h"
#include "src/seq.h"

typedef struct sn_block_params {
    float *ln1_g, *ln1_b;   /* (E) */
    float *qkv_w;           /* (H*3*D, E) */
    float *qkv_b;           /* (H*3*D) */
    float *proj_w;          /* (E, H*D) */
    float *proj_b;          /* (E) */
    float *ln2_g, *ln2_b;   /* (E) */
    float *fc1_w;           /* (F, E) */
    float *fc1_b;           /* (F) */
    float *fc2_w;           /* (E, F) */
    float *fc2_b;           /* (E) */
} sn_block_params;

typedef struct sn_params {
    /* the convolutional stem (NULL without one; src/arch.h): */
    float *stem_w[SN_MAX_STEM_CONVS]; /* conv k+1 as (out, 3x3, in): (C1, 9), (C2, 9*C1),
                                         (C3, 9*C2) */
    float *stem_b[SN_MAX_STEM_CONVS]; /* (C1), (C2), (C3) */
    float *patch_w;         /* (E, P), P = sn_space_embed_in */
    float *patch_b;         /* (E) */
    float *pos;             /* (T, E) */
    sn_block_params block[SN_MAX_BLOCKS];
    float *norm_g, *norm_b; /* (E) */
    float *head_w;          /* (C, E) */
    float *head_b;          /* (C) */
} sn_params;

/* What each dimension of a tensor is, so that a sub-network's slice of it
 * can be derived generically: a sub-network keeps the prefix of length
 * e (EMBED), 3*h*D (QKV), h*D (HEADS), f (MLP) of the dimension, and all
 * of a FIXED one. */
typedef enum sn_axis {
    SN_AXIS_FIXED,
    SN_AXIS_EMBED,
    SN_AXIS_QKV,
    SN_AXIS_HEADS,
    SN_AXIS_MLP,
} sn_axis;

/* One named tensor of the parameter table (one HDF5 dataset). */
typedef struct sn_param_info {
    char name[48];          /* e.g. "blocks.3.mlp.fc1.weight" */
    int ndim;
    int64_t shape[2];
    sn_axis axis[2];        /* what each dimension is */
    size_t offset;          /* in floats, from the start of the buffer */
    size_t count;
    bool decay;             /* AdamW weight decay applies (matrices only) */
    int block;              /* supernet block index, or -1 */
} sn_param_info;

/* Threads an op may use at most (the attention scratch is sized for it). */
#define SN_MAX_THREADS 64

/* the stem's two per convolution, the embedding's three, twelve per block, the
 * final norm's and the head's two each */
#define SN_MAX_PARAM_TENSORS (2 * SN_MAX_STEM_CONVS + 7 + 12 * SN_MAX_BLOCKS)

/* The parameter table of space s: fills info[0..n) in buffer order and
 * returns n; the total size in floats goes to *total. */
int sn_param_table(const sn_space *s, sn_param_info *info, size_t *total);
/* Points every view of p into base (at least *total floats). */
void sn_params_bind(const sn_space *s, float *base, sn_params *p);

/* The shape of the slice of tensor t that sub-network n uses (a prefix
 * of each dimension); false if n does not use t at all (a block it
 * drops).  The slice starts at the tensor's start and keeps its row
 * stride t->shape[1]. */
bool sn_param_slice(const sn_space *s, const sn_param_info *t, const sn_subnet *n,
                    int64_t shape[2]);

typedef struct sn_model {
    sn_space space;
    int n_tensors;
    sn_param_info info[SN_MAX_PARAM_TENSORS];
    size_t n_params;        /* floats in each buffer */
    float *params;          /* (n_params) owned */
    float *grads;           /* (n_params) owned */
    sn_params p, g;         /* views into params, grads */
} sn_model;

/* Allocates parameters and gradients for space s (validated by the caller)
 * and initialises parameters from seed: weights N(0, 0.02) (the stem's
 * convolutions N(0, 2/fan-in), He's), biases 0, LayerNorm gains 1.
 * Returns NULL when out of memory. */
sn_model *sn_model_create(const sn_space *s, uint64_t seed);
void sn_model_destroy(sn_model *m);
void sn_model_zero_grad(sn_model *m);

/* The part of the computation one rank does.  Pipeline stages hold
 * consecutive supernet blocks [block_lo, block_hi) (the first stage also the
 * embedding, the last the final norm, pooling and head); the ranks of a
 * sequence group each hold tl of the T tokens of every sequence, at the
 * global positions pos (see src/seq.h), and reach the rest of the sequence
 * only through the attention engine and seq_sum.  sn_shard_full describes
 * the whole model on one rank. */
typedef struct sn_shard {
    int block_lo, block_hi;          /* supernet blocks computed here */
    bool first, last;                /* embedding here / norm, pooling, head here */
    int64_t tl;                      /* tokens of each sequence held here */
    const int32_t *pos;              /* (tl) their global positions; NULL: 0..tl-1 */
    const sn_attn_engine *attn;      /* NULL: one-rank attention (tl == T) */
    int seq_rank, seq_size;          /* place in the sequence group */
    /* Sums n floats in place over the sequence group (image task with
     * seq_size > 1: the pooled token sums). */
    void (*seq_sum)(void *ctx, float *buf, int64_t n);
    /* Called by backward, if set, each time every gradient at float offsets
     * >= offset that this backward touches is complete (after each block,
     * and with offset 0 at the end), so gradient sums can start early. */
    void (*grads_done)(void *ctx, size_t offset);
    void *ctx;
} sn_shard;

void sn_shard_full(const sn_space *s, sn_shard *sh);

/* Activations saved by forward for backward, for batches of up to
 * max_batch sequences of any sub-network of the space, computing shard
 * sh (its blocks and tokens; the pointers in sh are not kept). */
typedef struct sn_acts sn_acts;
sn_acts *sn_acts_create_shard(const sn_space *s, const sn_shard *sh, int64_t max_batch);
sn_acts *sn_acts_create(const sn_space *s, int64_t max_batch);
void sn_acts_destroy(sn_acts *a);
/* Bytes held by the workspace (for the memory report). */
size_t sn_acts_bytes(const sn_acts *a);
/* The input activation buffer (max_batch*tl, E) of a stage that is not the
 * first: receive the previous stage's output here and pass it to forward. */
float *sn_acts_input(sn_acts *a);
/* The next `passes` forward/backward pairs through a (the members of a
 * training step) take the same input: the stem (if a holds one) is computed
 * by the first forward only, and its backward runs once, in the last
 * backward, over the sum of the passes' gradients.  Each pair's forward
 * must come before its backward.  After the group's last backward every
 * pass computes the stem again (as with passes 1, the default); a group left
 * unfinished (a forward without its backward) is ended by calling this
 * again, with 1 before a forward-only pass such as evaluation. */
void sn_acts_share_stem(sn_acts *a, int passes);

/* Forward pass of sub-network n over b sequences (b <= max_batch) of shard
 * sh (which must describe the shard a was created for).  input is, on the
 * first stage, the tokens: (b, tl, token_dim) floats for the image task (the
 * stem's pixel windows with a stem) or (b, tl)
 * int32 byte ids for the language model; on later stages the previous
 * stage's output (b*tl, e) floats.  Returns, on the last stage, the logits
 * (b, C) (image) or (b*tl, C) (language model), else this stage's output
 * (b*tl, e); owned by a, valid until its next forward.  input is borrowed
 * until the backward of this forward.  nt threads. */
const float *sn_model_forward_shard(int nt, const sn_model *m, sn_acts *a, const sn_shard *sh,
                                    const sn_subnet *n, const void *input, int64_t b);
/* Backward of the last forward through a: accumulates the gradients of
 * the parameters this shard used into m->grads, given dout: the logits'
 * gradient on the last stage, else the gradient of this stage's output
 * (b*tl, e).  Returns the gradient of the stage's input (b*tl, e), owned
 * by a, or NULL on the first stage.  With seq_size > 1 on the image task
 * only sequence rank 0 accumulates the head's gradient (every rank of the
 * group computes the same one; gradient sums over the group count it
 * once). */
const float *sn_model_backward_shard(int nt, sn_model *m, sn_acts *a, const sn_shard *sh,
                                     const float *dout);

/* Images for a stem's token windows: the side of the square images whose
 * tokens space s takes (a square of tokens, each p x p pixels), or 0
 * without a stem or a square of tokens. */
int64_t sn_stem_image_side(const sn_space *s);
/* Cuts one image (side, side), side = sn_stem_image_side(s) > 0, into its
 * tokens' windows out (T, token_dim) as the data loader does (io/data.h):
 * token t's window starts sn_stem_before pixels ahead of its patch, zeros
 * outside the image.  Windows cut so agree where they overlap, which lets
 * the stem compute each position of the image once. */
void sn_stem_windows(const sn_space *s, const float *image, float *out);

/* The whole model on one rank, image task: tokens (b, T, token_dim). */
const float *sn_model_forward(int nt, const sn_model *m, sn_acts *a,
                              const sn_subnet *n, const float *tokens, int64_t b);
void sn_model_backward(int nt, sn_model *m, sn_acts *a, const float *dlogits);

/* The parameters shard sh owns (its blocks, plus the embedding on the
 * first stage and norm and head on the last): tensors [t_lo, t_hi) of the
 * table, which are one contiguous range [lo, hi) of float offsets. */
void sn_shard_params(const sn_model *m, const sn_shard *sh, int *t_lo, int *t_hi, size_t *lo,
                     size_t *hi);
/* The same for stage p of a pipeline of n_stages (src/layout.h's split). */
void sn_stage_params(const sn_model *m, int n_stages, int p, int *t_lo, int *t_hi, size_t *lo,
                     size_t *hi);

#endif
