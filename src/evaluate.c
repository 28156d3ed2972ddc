#include "src/evaluate.h"

#include "src/train.h"
#include "src/util.h"

sn_eval_result sn_evaluate(int nt, const sn_model *m, sn_acts *a, int64_t batch,
                           const sn_subnet *n, const sn_images *x, const int64_t *idx,
                           int64_t count, int patch, sn_norm norm,
                           float *tokens, int32_t *labels)
{
    sn_eval_result r = {0};
    int64_t ids[4096];
    SN_CHECK(batch > 0 && batch <= (int64_t)(sizeof ids / sizeof ids[0]));
    double loss_sum = 0.0;
    int64_t correct = 0;
    for (int64_t at = 0; at < count; at += batch) {
        int64_t b = count - at < batch ? count - at : batch;
        for (int64_t i = 0; i < b; i++) ids[i] = idx ? idx[at + i] : at + i;
        sn_images_batch(x, ids, b, patch, norm, tokens, labels);
        sn_eval_batch(nt, m, a, n, tokens, labels, b, &loss_sum, &correct);
    }
    r.n = count;
    if (count > 0) {
        r.loss = loss_sum / (double)count;
        r.accuracy = (double)correct / (double)count;
    }
    return r;
}
