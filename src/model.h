/* model.h: the supernet's parameters, and forward/backward of any of its
 * sub-networks.
 *
 * A pre-LN transformer encoder over token sequences: patch embedding
 * (linear) + learned positions, blocks of [LN, multi-head attention,
 * residual, LN, MLP with GELU, residual], a final LN, mean pooling over
 * tokens and a linear classifier.
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
    float *patch_w;         /* (E, P) */
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

#define SN_MAX_PARAM_TENSORS (8 + 12 * SN_MAX_BLOCKS)

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
 * and initialises parameters from seed: weights N(0, 0.02), biases 0,
 * LayerNorm gains 1.  Returns NULL when out of memory. */
sn_model *sn_model_create(const sn_space *s, uint64_t seed);
void sn_model_destroy(sn_model *m);
void sn_model_zero_grad(sn_model *m);

/* Activations saved by forward for backward, for batches of up to
 * max_batch sequences of any sub-network of the space. */
typedef struct sn_acts sn_acts;
sn_acts *sn_acts_create(const sn_space *s, int64_t max_batch);
void sn_acts_destroy(sn_acts *a);
/* Bytes held by the workspace (for the memory report). */
size_t sn_acts_bytes(const sn_acts *a);

/* Forward pass of sub-network n (inside m's space; a created for that
 * space) over b sequences (b <= max_batch) of tokens (b, T, P) contiguous.
 * Returns the logits (b, C), owned by the workspace and valid until its
 * next forward.  tokens is borrowed: it must stay unchanged until the
 * backward of this forward.  nt threads. */
const float *sn_model_forward(int nt, const sn_model *m, sn_acts *a,
                              const sn_subnet *n, const float *tokens, int64_t b);
/* Backward of the last forward through a: accumulates the gradients of
 * all parameters the sub-network used into m->grads, given dlogits (b, C). */
void sn_model_backward(int nt, sn_model *m, sn_acts *a, const float *dlogits);

#endif
