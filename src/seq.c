#include "src/seq.h"

void sn_seq_positions(sn_seq_layout layout, int64_t T, int S, int r, int32_t *pos)
{
    const int64_t tl = T / S;
    if (layout == SN_SEQ_CONTIGUOUS || S == 1) {
        for (int64_t i = 0; i < tl; i++) pos[i] = (int32_t)(r * tl + i);
        return;
    }
    const int64_t c = tl / 2;
    for (int64_t i = 0; i < c; i++) {
        pos[i] = (int32_t)(r * c + i);
        pos[c + i] = (int32_t)((2 * (int64_t)S - 1 - r) * c + i);
    }
}
