/* test_model.c: the supernet's forward and backward against its PyTorch twin
 * (scripts/supernet_torch.py, driven by scripts/torch_ref.py).
 *
 * Usage: test_model PYTHON TORCH_REF_PY (meson registers it only when
 * Debian's python3 is there; scripts/setup.sh --tests installs it).
 *
 * For several sub-networks of a small space, and for the largest of the
 * default space, each without and with a convolutional stem, the test
 * runs forward, a loss (hard labels with smoothing
 * 0.1, or the soft targets of in-place distillation: the softmax of the
 * largest sub-network's logits) and backward, and compares the loss, the
 * logits and every gradient tensor with PyTorch's.  It also checks that
 * the C gradient is exactly zero outside the slices the sub-network uses
 * (and in the alignment padding of the buffer), where the reference is
 * zero by construction.
 *
 * Exchange: the test writes the parameter table (text), the parameter
 * buffer, tokens and labels (raw little-endian float32 / int32) and the
 * cases into a mkdtemp directory; torch_ref.py writes back, per case,
 * float64 loss, logits and gradient buffer in the C layout.
 *
 * Tolerance.  The reference runs in float64 (error ~1e-15), so the
 * difference measures the C model's float32 rounding alone.  A float32
 * dot product of length K carries a relative error of about
 * sqrt(K) * 6e-8, K <= 768 here (a few 1e-6), and the error of each layer
 * propagates through at most 6 blocks, LayerNorm and softmax, none of
 * which amplifies relative errors by more than a small factor with these
 * O(1) weights.  Each tensor is judged by its error normalised by its own
 * scale, max |c - ref| / max |ref| <= TOL_REL (1e-4: about 90x the worst
 * error observed, 1.1e-6 in a LayerNorm gain of the default space), because single entries can be near zero
 * (cancellation in sums over tokens) and an element-wise relative test
 * would be meaningless there; a genuine bug (a wrong slice, a missing
 * term, a transposed layout) shows up as an O(1e-2 - 1) error.  The loss
 * is compared with relative tolerance TOL_REL as well.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/arch.h"
#include "src/model.h"
#include "src/ops.h"
#include "src/rng.h"
#include "src/tensor.h"
#include "src/util.h"

#define TOL_REL 1e-4
#define SMOOTHING 0.1f
#define THREADS 2

static const char *g_python;    /* argv[1] */
static const char *g_script;    /* argv[2] */

/* One forward/loss/backward to check. */
typedef struct ref_case {
    sn_subnet net;
    bool soft;          /* soft targets: the softmax of case `teacher`'s logits */
    int teacher;        /* an earlier case */
} ref_case;

/* The worst tensor of all cases of one space, for the report. */
typedef struct worst {
    double err;
    char what[128];
} worst;

/* ---------------------------------------------------------------- files */

static void path_join(char *out, size_t len, const char *dir, const char *name)
{
    int k = snprintf(out, len, "%s/%s", dir, name);
    assert_true(k > 0 && (size_t)k < len);
}

static void write_raw(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[512];
    path_join(path, sizeof path, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, bytes, f), bytes);
    assert_int_equal(fclose(f), 0);
}

static FILE *open_text(const char *dir, const char *name)
{
    char path[512];
    path_join(path, sizeof path, dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    return f;
}

/* Reads exactly n float64 values of DIR/name (the whole file). */
static double *read_f64(const char *dir, const char *name, size_t n)
{
    char path[512];
    path_join(path, sizeof path, dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s (did torch_ref.py run?)", path, strerror(errno));
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    size_t got = fread(v, sizeof *v, n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF)
        fail_msg("%s: expected exactly %zu float64 values", path, n);
    return v;
}

/* Deletes the files of dir (no subdirectories) and dir itself. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    char path[512];
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        path_join(path, sizeof path, dir, ent->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Writes everything torch_ref.py reads (see its docstring). */
static void write_inputs(const char *dir, const sn_model *m, const float *tokens,
                         const int32_t *labels, int64_t b, const ref_case *cases, int n_cases)
{
    const sn_space *s = &m->space;
    FILE *f = open_text(dir, "space.txt");
    fprintf(f, "head_dim %d\nmax_depth", s->head_dim);
    for (int st = 0; st < s->n_stages; st++) fprintf(f, " %d", s->max_depth[st]);
    fprintf(f, "\nbatch %lld\ntokens %d\ntoken_dim %d\nclasses %d\nn_params %zu\n",
            (long long)b, s->n_tokens, s->token_dim, s->n_classes, m->n_params);
    assert_int_equal(fclose(f), 0);

    f = open_text(dir, "table.txt");
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *t = &m->info[i];
        fprintf(f, "%s %zu %d", t->name, t->offset, t->ndim);
        for (int k = 0; k < t->ndim; k++) fprintf(f, " %lld", (long long)t->shape[k]);
        fprintf(f, "\n");
    }
    assert_int_equal(fclose(f), 0);

    f = open_text(dir, "cases.txt");
    for (int k = 0; k < n_cases; k++) {
        char str[SN_SUBNET_STRLEN];
        assert_true(sn_subnet_format(&cases[k].net, str, sizeof str) > 0);
        if (cases[k].soft) fprintf(f, "soft %d %s\n", cases[k].teacher, str);
        else fprintf(f, "hard %.9g %s\n", (double)SMOOTHING, str);
    }
    assert_int_equal(fclose(f), 0);

    /* float32 and int32 are written in the host's order: x86-64 and
     * aarch64 are little-endian, as torch_ref.py expects. */
    write_raw(dir, "params.f32", m->params, m->n_params * sizeof(float));
    write_raw(dir, "tokens.f32", tokens,
              (size_t)(b * s->n_tokens * s->token_dim) * sizeof(float));
    write_raw(dir, "labels.i32", labels, (size_t)b * sizeof(int32_t));
}

/* Runs PYTHON TORCH_REF_PY DIR and fails unless it exits with status 0. */
static void run_reference(const char *dir)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(g_python, g_python, g_script, dir, (char *)NULL);
        fprintf(stderr, "test_model: cannot run %s: %s\n", g_python, strerror(errno));
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s %s %s failed (%s %d)", g_python, g_script, dir,
                 WIFEXITED(status) ? "exit status" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* ---------------------------------------------------------- comparison */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The slice of tensor t that sub-network n uses: rows [0, *rows) and columns
 * [0, *cols) (a 1-D tensor is one column); 0 x 0 for an unused block. */
static void used_slice(const sn_space *s, const sn_subnet *n, const sn_param_info *t,
                       int64_t *rows, int64_t *cols)
{
    const int64_t e = n->embed, D = s->head_dim;
    int64_t hd = 0, f = 0;
    *rows = *cols = 0;
    if (t->block >= 0) {
        int i = 0;
        while (i < n->n_blocks && sn_subnet_block(s, n, i) != t->block) i++;
        if (i == n->n_blocks) return;
        hd = (int64_t)n->heads[i] * D;
        f = n->mlp[i];
    }
    const char *nm = t->name;
    if (strncmp(nm, "stem.", 5) == 0) /* shared whole by every sub-network */
        *rows = t->shape[0], *cols = t->ndim == 2 ? t->shape[1] : 1;
    else if (strcmp(nm, "patch_embed.weight") == 0) *rows = e, *cols = sn_space_embed_in(s);
    else if (strcmp(nm, "pos_embed") == 0) *rows = s->n_tokens, *cols = e;
    else if (strcmp(nm, "head.weight") == 0) *rows = s->n_classes, *cols = e;
    else if (strcmp(nm, "head.bias") == 0) *rows = s->n_classes, *cols = 1;
    else if (ends_with(nm, "attn.qkv.weight")) *rows = 3 * hd, *cols = e;
    else if (ends_with(nm, "attn.qkv.bias")) *rows = 3 * hd, *cols = 1;
    else if (ends_with(nm, "attn.proj.weight")) *rows = e, *cols = hd;
    else if (ends_with(nm, "mlp.fc1.weight")) *rows = f, *cols = e;
    else if (ends_with(nm, "mlp.fc1.bias")) *rows = f, *cols = 1;
    else if (ends_with(nm, "mlp.fc2.weight")) *rows = e, *cols = f;
    else if (ends_with(nm, "patch_embed.bias") || ends_with(nm, ".weight") ||
             ends_with(nm, ".bias"))
        *rows = e, *cols = 1;   /* LayerNorms, proj.bias, fc2.bias */
    else
        fail_msg("test_model: no slice rule for tensor '%s'", nm);
}

/* max |got - want| / max |want| over n values; want all zero -> the plain
 * max |got|. */
static double norm_err(const float *got, const double *want, int64_t n)
{
    double diff = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

static void note_worst(worst *w, double err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_worst(worst *w, double err, const char *fmt, ...)
{
    if (err < w->err) return;
    w->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof w->what, fmt, ap);
    va_end(ap);
}

/* Gradients of case k: got (the C buffer) against want (the reference
 * buffer), tensor by tensor over the used slice; everything else must be
 * exactly zero in both. */
static void check_grads(const sn_model *m, const sn_subnet *n, const char *who,
                        const float *got, const double *want, worst *w)
{
    const sn_space *s = &m->space;
    char *covered = calloc(m->n_params, 1);
    assert_non_null(covered);
    float *slice = malloc(m->n_params * sizeof *slice);
    double *slice_ref = malloc(m->n_params * sizeof *slice_ref);
    assert_non_null(slice);
    assert_non_null(slice_ref);
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const sn_param_info *t = &m->info[ti];
        int64_t rows, cols, R = t->shape[0], Cn = t->ndim == 2 ? t->shape[1] : 1;
        used_slice(s, n, t, &rows, &cols);
        assert_true(rows <= R && cols <= Cn);
        int64_t k = 0;
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < Cn; c++) {
                size_t at = t->offset + (size_t)(r * Cn + c);
                covered[at] = 1;
                if (r < rows && c < cols) {
                    slice[k] = got[at];
                    slice_ref[k++] = want[at];
                } else if (got[at] != 0.0f || want[at] != 0.0) {
                    fail_msg("%s: %s[%lld, %lld] is outside the slice (%lld, %lld) but its "
                             "gradient is %.8g (reference %.8g); it must be exactly 0",
                             who, t->name, (long long)r, (long long)c, (long long)rows,
                             (long long)cols, (double)got[at], want[at]);
                }
            }
        if (k == 0) continue;
        double err = norm_err(slice, slice_ref, k);
        note_worst(w, err, "%s: grad %s", who, t->name);
        if (!(err <= TOL_REL))
            fail_msg("%s: gradient of %s: max|c - ref| / max|ref| = %.3g > %.1g", who,
                     t->name, err, TOL_REL);
    }
    for (size_t i = 0; i < m->n_params; i++)
        if (!covered[i] && got[i] != 0.0f)
            fail_msg("%s: gradient padding at float %zu is %.8g, expected 0", who, i,
                     (double)got[i]);
    free(covered);
    free(slice);
    free(slice_ref);
}

/* ---------------------------------------------------------------- driver */

/* Runs every case in C and compares it with the reference; cases[0] must
 * be hard (a teacher for the soft ones). */
static void check_space(const char *label, sn_model *m, int64_t b, const ref_case *cases,
                        int n_cases)
{
    const sn_space *s = &m->space;
    const int64_t T = s->n_tokens, P = s->token_dim, C = s->n_classes;
    sn_rng r;
    sn_rng_seed(&r, 7, 1);
    float *tokens = malloc((size_t)(b * T * P) * sizeof *tokens);
    int32_t *labels = malloc((size_t)b * sizeof *labels);
    float *logits_of = malloc((size_t)(n_cases * b * C) * sizeof *logits_of);
    float *dlogits = malloc((size_t)(b * C) * sizeof *dlogits);
    float *q = malloc((size_t)(b * C) * sizeof *q);
    assert_non_null(tokens);
    assert_non_null(labels);
    assert_non_null(logits_of);
    assert_non_null(dlogits);
    assert_non_null(q);
    for (int64_t i = 0; i < b * T * P; i++) tokens[i] = sn_rng_normal(&r);
    for (int64_t i = 0; i < b; i++) labels[i] = (int32_t)sn_rng_below(&r, (uint64_t)C);

    char dir[] = "/tmp/sn_test_model_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* removed on success; a failure leaves it for inspection */
    printf("%s: exchange directory %s\n", label, dir);
    write_inputs(dir, m, tokens, labels, b, cases, n_cases);
    run_reference(dir);

    sn_acts *a = sn_acts_create(s, b);
    assert_non_null(a);
    worst w = {0.0, ""};
    const size_t n_ref = 1 + (size_t)(b * C) + m->n_params;
    for (int k = 0; k < n_cases; k++) {
        const ref_case *c = &cases[k];
        char who[SN_SUBNET_STRLEN + 64], name[32];
        int len = snprintf(who, sizeof who, "%s case %d (%s) ", label, k,
                           c->soft ? "soft" : "hard");
        assert_true(sn_subnet_format(&c->net, who + len, sizeof who - (size_t)len) > 0);
        snprintf(name, sizeof name, "case%d.f64", k);
        double *ref = read_f64(dir, name, n_ref);

        sn_model_zero_grad(m);
        const float *logits = sn_model_forward(THREADS, m, a, &c->net, tokens, b);
        float *lg = logits_of + (size_t)(k * b * C);
        memcpy(lg, logits, (size_t)(b * C) * sizeof *lg);
        float loss;
        if (c->soft) {
            assert_true(c->teacher >= 0 && c->teacher < k);
            sn_softmax(q, logits_of + (size_t)(c->teacher * b * C), b, C, 1.0f);
            loss = sn_xent_soft(dlogits, lg, q, b, C, 1.0f);
        } else {
            loss = sn_xent_hard(dlogits, NULL, lg, labels, b, C, SMOOTHING, 1.0f);
        }
        sn_model_backward(THREADS, m, a, dlogits);

        double loss_err = fabs((double)loss - ref[0]) / fabs(ref[0]);
        double logit_err = norm_err(lg, ref + 1, b * C);
        note_worst(&w, loss_err, "%s: loss", who);
        note_worst(&w, logit_err, "%s: logits", who);
        printf("%s: loss %.7f (ref %.7f), logits err %.2g\n", who, (double)loss, ref[0],
               logit_err);
        if (!(loss_err <= TOL_REL))
            fail_msg("%s: loss %.8g, reference %.8g", who, (double)loss, ref[0]);
        if (!(logit_err <= TOL_REL))
            fail_msg("%s: logits: max|c - ref| / max|ref| = %.3g > %.1g", who, logit_err,
                     TOL_REL);
        check_grads(m, &c->net, who, m->grads, ref + 1 + b * C, &w);
        free(ref);
    }
    printf("%s: worst normalised error %.3g (%s), tolerance %.1g\n", label, w.err, w.what,
           TOL_REL);

    sn_acts_destroy(a);
    remove_dir(dir);
    free(tokens);
    free(labels);
    free(logits_of);
    free(dlogits);
    free(q);
}

static void parse_or_fail(const sn_space *s, const char *str, sn_subnet *n)
{
    char err[256];
    if (sn_subnet_parse(s, str, n, err, sizeof err) != SN_OK) fail_msg("%s", err);
}

/* A small space whose sub-networks still differ in every elastic
 * dimension: embed, per-stage depth, heads and MLP width per block. */
static void small_space(sn_space *s)
{
    static const int embed[] = {32, 48, 64}, heads[] = {1, 2}, mlp[] = {32, 64, 96};
    memset(s, 0, sizeof *s);
    s->n_embed = 3;
    memcpy(s->embed, embed, sizeof embed);
    s->n_heads = 2;
    memcpy(s->heads, heads, sizeof heads);
    s->n_mlp = 3;
    memcpy(s->mlp, mlp, sizeof mlp);
    s->n_stages = 2;
    s->min_depth[0] = s->min_depth[1] = 1;
    s->max_depth[0] = s->max_depth[1] = 2;
    s->head_dim = 16;
    s->n_tokens = 9;
    s->token_dim = 4;
    s->n_classes = 5;
}

/* Redraws every parameter at O(1) scale: matrices N(0, 1/fan_in) so that
 * activations are O(1) and attention is far from uniform, positions N(0, 1),
 * biases N(0, 0.25), LayerNorm gains 1 + N(0, 0.25).  With the training
 * init (biases 0, gains 1, weights 0.02) a bias or gain used with a wrong
 * slice or not at all, or a missing 1/sqrt(d), would change little. */
static void redraw_params(sn_model *m, uint64_t seed)
{
    sn_rng r;
    sn_rng_seed(&r, seed, 2);
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *t = &m->info[i];
        float *w = m->params + t->offset;
        bool gain = ends_with(t->name, "ln1.weight") || ends_with(t->name, "ln2.weight") ||
                    strcmp(t->name, "norm.weight") == 0;
        float sd = t->ndim == 2 ? 1.0f / sqrtf((float)t->shape[1]) : 0.5f;
        if (strcmp(t->name, "pos_embed") == 0) sd = 1.0f;
        for (size_t j = 0; j < t->count; j++) w[j] = (gain ? 1.0f : 0.0f) + sd * sn_rng_normal(&r);
    }
}

/* A space's task dimensions with the convolutional stem of c1, c2 (and,
 * if c3 > 0, c3) channels over 4x4 patches: each token a 7x7 window, the
 * stem's 2x2 outputs of c2 channels the patch embedding's input; with
 * three convolutions a 9x9 window and one output of c3 channels.  The
 * reference computes the stem with PyTorch's conv2d on each window. */
static void add_stem(sn_space *s, int c1, int c2, int c3)
{
    char err[256];
    s->token_dim = c3 > 0 ? 81 : 49;
    s->stem[0] = c1;
    s->stem[1] = c2;
    s->stem[2] = c3;
    if (sn_space_validate(s, err, sizeof err) != SN_OK) fail_msg("%s", err);
    assert_int_equal(sn_space_embed_in(s), c3 > 0 ? c3 : 4 * c2);
}

/* The small space, without a stem, with one of 4 and 6 channels, and with
 * one of 4, 6 and 5. */
static void test_small_space(void **state)
{
    (void)state;
    static const char *what[] = {"small space", "small space with a stem",
                                 "small space with a stem of three convolutions"};
    for (int stem = 0; stem < 3; stem++) {
        sn_space s;
        char err[256];
        small_space(&s);
        if (stem) add_stem(&s, 4, 6, stem == 2 ? 5 : 0);
        assert_int_equal(sn_space_validate(&s, err, sizeof err), SN_OK);
        sn_model *m = sn_model_create(&s, 42);
        assert_non_null(m);
        /* the stem's tensors come first, two per convolution, with the embedding */
        assert_string_equal(m->info[stem ? 2 * (stem + 1) : 0].name, "patch_embed.weight");
        redraw_params(m, 42);
        ref_case cases[4];
        memset(cases, 0, sizeof cases);
        parse_or_fail(&s, "max", &cases[0].net);
        /* depth 1 in stage 0: kept blocks are supernet blocks 0, 2, 3 */
        parse_or_fail(&s, "e48-d1.2-h1.2.1-f64.32.96", &cases[1].net);
        parse_or_fail(&s, "min", &cases[2].net);
        parse_or_fail(&s, "e48-d2.1-h2.1.2-f32.96.64", &cases[3].net);
        cases[3].soft = true;
        cases[3].teacher = 0;
        check_space(what[stem], m, 4, cases, 4);
        sn_model_destroy(m);
    }
}

/* The real space at its training init (He's for the stem's convolutions),
 * without a stem, with one of 32 and 64 channels and with one of 32, 64
 * and 128: the largest
 * sub-network, and one random sub-network distilled from it. */
static void test_default_space(void **state)
{
    (void)state;
    static const char *what[] = {"default space", "default space with a stem",
                                 "default space with a stem of three convolutions"};
    for (int stem = 0; stem < 3; stem++) {
        sn_space s;
        sn_space_default(&s);
        if (stem) add_stem(&s, 32, 64, stem == 2 ? 128 : 0);
        sn_model *m = sn_model_create(&s, 1);
        assert_non_null(m);
        ref_case cases[2];
        memset(cases, 0, sizeof cases);
        sn_subnet_max(&s, &cases[0].net);
        sn_rng r;
        sn_rng_seed(&r, 3, 0);
        sn_subnet_sample(&s, &r, &cases[1].net);
        cases[1].soft = true;
        cases[1].teacher = 0;
        check_space(what[stem], m, 3, cases, 2);
        sn_model_destroy(m);
    }
}

/* The members of a training step share the stem's pass
 * (sn_acts_share_stem): the same logits, bit for bit, and the same
 * gradients, up to the order of the sums, as a stem computed by every
 * member; after the group, forwards compute the stem again. */
static void check_shared_stem(int c3)
{
    enum { B = 4, N = 3 };
    sn_space s;
    small_space(&s);
    add_stem(&s, 4, 6, c3);
    sn_model *m = sn_model_create(&s, 7);
    assert_non_null(m);
    redraw_params(m, 7);
    sn_acts *a = sn_acts_create(&s, B);
    assert_non_null(a);
    sn_subnet nets[N];
    parse_or_fail(&s, "max", &nets[0]);
    parse_or_fail(&s, "min", &nets[1]);
    parse_or_fail(&s, "e48-d2.1-h2.1.2-f32.96.64", &nets[2]);
    const int64_t C = s.n_classes, nt = B * s.n_tokens * s.token_dim;
    float *tokens = malloc((size_t)nt * sizeof(float)), dlogits[N][B * 5], logits[2][N][B * 5];
    assert_non_null(tokens);
    sn_rng r;
    sn_rng_seed(&r, 11, 0);
    for (int64_t i = 0; i < nt; i++) tokens[i] = sn_rng_normal(&r);
    for (int k = 0; k < N; k++)
        for (int64_t i = 0; i < B * C; i++) dlogits[k][i] = sn_rng_normal(&r);
    float *grads[2];
    for (int shared = 0; shared < 2; shared++) {
        sn_model_zero_grad(m);
        sn_acts_share_stem(a, shared ? N : 1);
        for (int k = 0; k < N; k++) {
            const float *y = sn_model_forward(2, m, a, &nets[k], tokens, B);
            memcpy(logits[shared][k], y, (size_t)(B * C) * sizeof(float));
            sn_model_backward(2, m, a, dlogits[k]);
        }
        grads[shared] = malloc(m->n_params * sizeof(float));
        assert_non_null(grads[shared]);
        memcpy(grads[shared], m->grads, m->n_params * sizeof(float));
    }
    assert_memory_equal(logits[0], logits[1], sizeof logits[0]);
    /* the group is over: new images in the same buffer get their own stem
     * (an evaluation after a step), as in a fresh workspace */
    for (int64_t i = 0; i < nt; i++) tokens[i] = sn_rng_normal(&r);
    sn_acts *fresh = sn_acts_create(&s, B);
    assert_non_null(fresh);
    for (int k = 0; k < N; k++) {
        const float *y = sn_model_forward(2, m, a, &nets[k], tokens, B);
        memcpy(logits[0][k], y, (size_t)(B * C) * sizeof(float));
        y = sn_model_forward(2, m, fresh, &nets[k], tokens, B);
        assert_memory_equal(logits[0][k], y, (size_t)(B * C) * sizeof(float));
    }
    sn_acts_destroy(fresh);
    for (int i = 0; i < m->n_tensors; i++) {
        const sn_param_info *t = &m->info[i];
        const float *g0 = grads[0] + t->offset, *g1 = grads[1] + t->offset;
        double scale = 0.0, diff = 0.0;
        for (size_t j = 0; j < t->count; j++) {
            scale = fmax(scale, fabs(g0[j]));
            diff = fmax(diff, fabs((double)g1[j] - g0[j]));
        }
        /* every tensor has a gradient here; the stem's the sum of N passes */
        if (!(scale > 0.0) || diff > 1e-5 * scale)
            fail_msg("%s: gradient differs by %.3g (largest %.3g) with the stem (%d) shared",
                     t->name, diff, scale, c3);
    }
    free(tokens);
    free(grads[0]);
    free(grads[1]);
    sn_acts_destroy(a);
    sn_model_destroy(m);
}

static void test_shared_stem(void **state)
{
    (void)state;
    check_shared_stem(0);
    check_shared_stem(5); /* three convolutions */
}

/* Largest relative difference of two gradient buffers over m's tensors
 * (each judged by its own scale), and the same for logits. */
static double max_rel_diff(const float *x, const float *y, size_t n)
{
    double scale = 0.0, diff = 0.0;
    for (size_t j = 0; j < n; j++) {
        scale = fmax(scale, fabs(x[j]));
        diff = fmax(diff, fabs((double)y[j] - x[j]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

/* Three convolutions over the windows of real images (sn_stem_windows):
 * with every token of an image at hand, in order, the stem computes conv2
 * once per position of the image, with the logits and gradients of the
 * token by token computation (which the same tokens in reverse order, a
 * shard naming their positions, get) and exactly the conv2 GEMM work it
 * saves; windows that disagree on one overlapping pixel are computed
 * token by token. */
static void check_whole_images(sn_space *s, const char *what)
{
    enum { B = 3 };
    sn_model *m = sn_model_create(s, 5);
    assert_non_null(m);
    redraw_params(m, 5);
    const int64_t T = s->n_tokens, P = s->token_dim, side = sn_stem_image_side(s);
    const int64_t C = s->n_classes;
    assert_true(side > 0);
    float *tokens = malloc((size_t)(B * T * P) * sizeof(float));
    float *reversed = malloc((size_t)(B * T * P) * sizeof(float));
    float *image = malloc((size_t)(side * side) * sizeof(float));
    float *grads = malloc(m->n_params * sizeof(float)), logits[B * 16], dlogits[B * 16];
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    assert_true(tokens && reversed && image && grads && pos && C <= 16);
    sn_rng r;
    sn_rng_seed(&r, 13, 0);
    for (int64_t i = 0; i < B; i++) {
        for (int64_t j = 0; j < side * side; j++) image[j] = sn_rng_normal(&r);
        sn_stem_windows(s, image, tokens + i * T * P);
    }
    for (int64_t i = 0; i < B * C; i++) dlogits[i] = sn_rng_normal(&r);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(T - 1 - t);
    sn_shard whole, tokenwise;
    sn_shard_full(s, &whole);
    tokenwise = whole;
    tokenwise.pos = pos;
    sn_acts *aw = sn_acts_create_shard(s, &whole, B), *at = sn_acts_create_shard(s, &tokenwise, B);
    assert_true(aw && at);
    sn_subnet net;
    parse_or_fail(s, "max", &net);
    /* conv2's GEMM rows: 9 positions a token, or (2*ts + 1)^2 an image */
    const int64_t ts = side / 4, saved_rows = B * (T * 9 - (2 * ts + 1) * (2 * ts + 1));
    const double saved = 2.0 * (double)saved_rows * 9 * s->stem[0] * s->stem[1];
    for (int changed = 0; changed < 2; changed++) {
        if (changed) /* token 0's last window column, which token 1's first column repeats */
            tokens[(4 + 1) * 9 + 8] += 1.0f;
        for (int64_t i = 0; i < B * T; i++)
            memcpy(reversed + i * P, tokens + ((i / T) * T + pos[i % T]) * P,
                   (size_t)P * sizeof(float));
        sn_model_zero_grad(m);
        uint64_t f0 = sn_gemm_flops();
        const float *y = sn_model_forward_shard(THREADS, m, at, &tokenwise, &net, reversed, B);
        memcpy(logits, y, (size_t)(B * C) * sizeof(float));
        sn_model_backward_shard(THREADS, m, at, &tokenwise, dlogits);
        const double tokenwise_flops = (double)(sn_gemm_flops() - f0);
        memcpy(grads, m->grads, m->n_params * sizeof(float));
        sn_model_zero_grad(m);
        f0 = sn_gemm_flops();
        y = sn_model_forward_shard(THREADS, m, aw, &whole, &net, tokens, B);
        const double dl = max_rel_diff(logits, y, (size_t)(B * C));
        sn_model_backward_shard(THREADS, m, aw, &whole, dlogits);
        const double whole_flops = (double)(sn_gemm_flops() - f0);
        if (dl > 1e-5) fail_msg("%s: logits differ by %.3g with whole images", what, dl);
        for (int i = 0; i < m->n_tensors; i++) {
            const sn_param_info *t = &m->info[i];
            const double dg = max_rel_diff(grads + t->offset, m->grads + t->offset, t->count);
            if (dg > 1e-5) fail_msg("%s: %s's gradient differs by %.3g", what, t->name, dg);
        }
        /* forward once, backward twice (the input's and the weight's gradients) */
        const double expect = changed ? 0.0 : 3.0 * saved;
        if (fabs(tokenwise_flops - whole_flops - expect) > 0.5)
            fail_msg("%s%s: whole images saved %.0f GEMM FLOPs, expected %.0f", what,
                     changed ? " (one window changed)" : "", tokenwise_flops - whole_flops,
                     expect);
    }
    sn_acts_destroy(aw);
    sn_acts_destroy(at);
    free(tokens);
    free(reversed);
    free(image);
    free(grads);
    free(pos);
    sn_model_destroy(m);
}

static void test_whole_images(void **state)
{
    (void)state;
    sn_space s;
    small_space(&s);
    add_stem(&s, 4, 6, 5);
    check_whole_images(&s, "small space, 3 x 3 tokens");
    sn_space_default(&s);
    add_stem(&s, 32, 64, 128);
    check_whole_images(&s, "default space, 7 x 7 tokens");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        printf("test_model: usage: test_model PYTHON TORCH_REF_PY\n");
        return 1;
    }
    g_python = argv[1];
    g_script = argv[2];
    char err[256];
    if (sn_blas_init(NULL, err, sizeof err) != SN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_space),
        cmocka_unit_test(test_default_space),
        cmocka_unit_test(test_shared_stem),
        cmocka_unit_test(test_whole_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
