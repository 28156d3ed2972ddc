#include "src/evaluate.h"

#include <string.h>

#include "mpi/ring.h"
#include "mpi/runtime.h"
#include "src/train.h"
#include "src/util.h"

sn_eval_result sn_eval_result_of(double loss_sum, double correct, int64_t n)
{
    sn_eval_result r = {.n = n};
    if (n > 0) {
        r.loss = loss_sum / (double)n;
        r.accuracy = correct / (double)n;
    }
    return r;
}

sn_eval_result sn_evaluate(int nt, const sn_model *m, sn_acts *a, int64_t batch,
                           const sn_subnet *n, const sn_images *x, const int64_t *idx,
                           int64_t first, int64_t count, int patch, sn_norm norm,
                           float *tokens, int32_t *labels, float *logits)
{
    int64_t ids[4096];
    SN_CHECK(batch > 0 && batch <= (int64_t)(sizeof ids / sizeof ids[0]));
    double loss_sum = 0.0;
    int64_t correct = 0;
    for (int64_t at = 0; at < count; at += batch) {
        int64_t b = count - at < batch ? count - at : batch;
        for (int64_t i = 0; i < b; i++) ids[i] = idx ? idx[first + at + i] : first + at + i;
        sn_images_batch(x, ids, b, patch, sn_stem_convs(&m->space), norm, tokens, labels);
        const float *out = sn_eval_batch(nt, m, a, NULL, n, tokens, labels, b, &loss_sum,
                                         &correct);
        if (logits) {
            const int64_t C = m->space.n_classes;
            memcpy(logits + at * C, out, (size_t)(b * C) * sizeof(float));
        }
    }
    return sn_eval_result_of(loss_sum, (double)correct, count);
}

sn_eval_result sn_evaluate_text(int nt, const sn_model *m, sn_acts *a,
                                const sn_attn_engine *attn, int64_t batch, const sn_subnet *n,
                                const sn_text *x, sn_text_split split, int64_t first,
                                int64_t count, int32_t *ids, int32_t *labels)
{
    const int64_t T = m->space.n_tokens;
    int64_t starts[64];
    SN_CHECK(batch > 0 && batch <= (int64_t)(sizeof starts / sizeof starts[0]));
    double loss_sum = 0.0;
    int64_t correct = 0;
    for (int64_t at = 0; at < count; at += batch) {
        int64_t b = count - at < batch ? count - at : batch;
        for (int64_t i = 0; i < b; i++) starts[i] = sn_text_eval_start(x, split, T, first + at + i);
        sn_text_batch(x, starts, b, T, NULL, T, ids, labels);
        sn_eval_batch(nt, m, a, attn, n, ids, labels, b, &loss_sum, &correct);
    }
    return sn_eval_result_of(loss_sum, (double)correct, count * T);
}

int64_t sn_eval_count(const sn_eval_data *d, bool test)
{
    if (d->text) return sn_text_eval_count(d->text, test ? SN_TEXT_TEST : SN_TEXT_VAL, d->seq_len);
    return test ? d->test->n : d->n_val;
}

sn_eval_result sn_evaluate_split(int nt, const sn_model *m, sn_acts *a,
                                 const sn_attn_engine *attn, int64_t batch, const sn_subnet *net,
                                 const sn_eval_data *d, bool test, int64_t first, int64_t n,
                                 float *tokens, int32_t *ids, int32_t *labels)
{
    if (d->text)
        return sn_evaluate_text(nt, m, a, attn, batch, net, d->text,
                                test ? SN_TEXT_TEST : SN_TEXT_VAL, first, n, ids, labels);
    return sn_evaluate(nt, m, a, batch, net, test ? d->test : d->train, test ? NULL : d->val_idx,
                       first, n, d->patch, d->norm, tokens, labels, NULL);
}

sn_acts *sn_eval_acts(const sn_space *s, int64_t batch, sn_attn_engine **attn)
{
    sn_shard sh;
    sn_shard_full(s, &sh);
    *attn = s->task == SN_TASK_LM ? sn_ring_create_local() : NULL;
    sh.attn = *attn;
    return sn_acts_create_shard(s, &sh, batch);
}

int sn_open_checkpoint(const char *arg, sn_model **m, sn_file_info *info, char *path,
                       size_t pathlen, char *err, size_t errlen)
{
    *m = NULL;
    if (sn_ckpt_resolve(arg, path, pathlen, err, errlen) != SN_OK ||
        sn_file_read_info(sn_mpi_world(), path, info, err, errlen) != SN_OK)
        return SN_ERR;
    if (info->is_model)
        return sn_errf(err, errlen, "%s: an exported model, not a supernet checkpoint (use "
                                    "--model)", path);
    *m = sn_model_create(&info->space, 0);
    if (!*m) return sn_errf(err, errlen, "out of memory loading %s", path);
    if (sn_ckpt_load(sn_mpi_world(), path, *m, NULL, NULL, err, errlen) != SN_OK) {
        sn_model_destroy(*m);
        *m = NULL;
        return SN_ERR;
    }
    return SN_OK;
}
