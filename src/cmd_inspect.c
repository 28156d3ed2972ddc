/* `supernest inspect`: describes a supernest HDF5 file (header,
 * configuration, search space, per-tensor statistics, search results),
 * verifies every dataset's checksum, or compares the tensors of two
 * files.  Every rank reads (the files are small next to a training run);
 * rank 0 prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt.h"
#include "io/h5.h"
#include "io/inspect.h"
#include "src/arch.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/util.h"

typedef struct inspect_args {
    bool verify, json, all, diff;
} inspect_args;

static const char *USAGE =
    "supernest inspect FILE [--verify] [--json] [--all]\n"
    "       supernest inspect --diff A B [--json] [--all]";

/* The groups whose tensors are tabulated or compared. */
static int table_groups(bool all, const char **groups)
{
    int n = 0;
    groups[n++] = "/weights";
    if (all) {
        groups[n++] = "/optimizer/m";
        groups[n++] = "/optimizer/v";
    }
    return n;
}

/* What one file holds, gathered on every rank before rank 0 prints it. */
typedef struct inspection {
    const char *path;
    hid_t file;
    sn_file_info info;
    int n_groups;
    const char *groups[3];
    sn_names table;             /* dataset paths of the groups, in order */
    sn_ds_scan *stats;          /* (table.n) */
    sn_names all;               /* --verify: every dataset of the file */
    sn_names broken;            /* --verify: objects whose metadata cannot be read */
    sn_ds_scan *verified;       /* (all.n) */
    int64_t n_damaged;
    bool has_search;
    sn_names search_attrs, search_sets;
} inspection;

static void inspection_free(inspection *x)
{
    sn_inspect_close(x->file);
    sn_names_free(&x->table);
    sn_names_free(&x->all);
    sn_names_free(&x->broken);
    sn_names_free(&x->search_attrs);
    sn_names_free(&x->search_sets);
    free(x->stats);
    free(x->verified);
}

static const char *group_of(const inspection *x, const char *path, const char **name)
{
    for (int g = 0; g < x->n_groups; g++) {
        size_t k = strlen(x->groups[g]);
        if (strncmp(path, x->groups[g], k) == 0 && path[k] == '/') {
            *name = path + k + 1;
            return x->groups[g];
        }
    }
    *name = path;
    return "";
}

/* Position of a tensor name in io/FORMAT.md's table (patch embedding,
 * positions, the blocks in order, each layer by layer, final norm, head),
 * as (part, block, layer); names the format does not list come last. */
static void tensor_key(const char *name, long key[3])
{
    static const char *top[] = {"patch_embed.weight", "patch_embed.bias", "pos_embed", "",
                                "norm.weight",        "norm.bias",        "head.weight",
                                "head.bias"};
    static const char *layer[] = {"ln1.weight",       "ln1.bias",       "attn.qkv.weight",
                                  "attn.qkv.bias",    "attn.proj.weight", "attn.proj.bias",
                                  "ln2.weight",       "ln2.bias",       "mlp.fc1.weight",
                                  "mlp.fc1.bias",     "mlp.fc2.weight", "mlp.fc2.bias"};
    const int n_top = (int)(sizeof top / sizeof top[0]);
    const int n_layer = (int)(sizeof layer / sizeof layer[0]);
    key[0] = n_top;
    key[1] = key[2] = 0;
    long blk;
    int at = 0;
    if (sscanf(name, "blocks.%ld.%n", &blk, &at) == 1 && at > 0) {
        key[0] = 3;
        key[1] = blk;
        key[2] = n_layer;
        for (int i = 0; i < n_layer; i++)
            if (strcmp(name + at, layer[i]) == 0) key[2] = i;
        return;
    }
    for (int i = 0; i < n_top; i++)
        if (top[i][0] && strcmp(name, top[i]) == 0) key[0] = i;
}

/* Table order: group, then the format's tensor order, then natural order. */
static int table_cmp(const void *pa, const void *pb)
{
    static const char *prefix[] = {"/weights/", "/optimizer/m/", "/optimizer/v/"};
    const char *a = *(char *const *)pa, *b = *(char *const *)pb;
    long ka[4] = {3, 0, 0, 0}, kb[4] = {3, 0, 0, 0};
    const char *na = a, *nb = b;
    for (int g = 0; g < 3; g++) {
        size_t k = strlen(prefix[g]);
        if (strncmp(a, prefix[g], k) == 0) ka[0] = g, na = a + k;
        if (strncmp(b, prefix[g], k) == 0) kb[0] = g, nb = b + k;
    }
    tensor_key(na, ka + 1);
    tensor_key(nb, kb + 1);
    for (int i = 0; i < 4; i++)
        if (ka[i] != kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return strverscmp(a, b);
}

/* Reads everything the report needs.  SN_ERR (err set) when the file
 * cannot be described; damaged datasets under --verify are not errors. */
static int gather(inspection *x, const inspect_args *a, char *err, size_t errlen)
{
    x->file = sn_inspect_open(sn_mpi_world(), x->path, &x->info, err, errlen);
    if (x->file < 0) return SN_ERR;
    if (sn_inspect_config(x->file, x->path, &x->info, err, errlen) != SN_OK) return SN_ERR;
    x->n_groups = table_groups(a->all, x->groups);
    char msg[512];
    if (a->verify) {
        /* One pass over every dataset: checksums, and the table's stats. */
        if (sn_inspect_datasets(x->file, "/", &x->all, &x->broken, msg, sizeof msg) != SN_OK)
            return sn_errf(err, errlen, "%s: %s", x->path, msg);
        x->verified = calloc((size_t)x->all.n + 1, sizeof *x->verified);
        if (!x->verified) return sn_errf(err, errlen, "out of memory");
        x->n_damaged = x->broken.n;
        for (int64_t i = 0; i < x->all.n; i++) {
            if (sn_inspect_scan(x->file, x->path, x->all.v[i], true, &x->verified[i], msg,
                                sizeof msg) != SN_OK)
                x->n_damaged++;
            const char *name;
            if (group_of(x, x->all.v[i], &name)[0] && sn_names_add(&x->table, x->all.v[i]) != SN_OK)
                return sn_errf(err, errlen, "out of memory");
        }
    } else {
        for (int g = 0; g < x->n_groups; g++)
            if (sn_inspect_datasets(x->file, x->groups[g], &x->table, NULL, msg, sizeof msg) !=
                SN_OK)
                return sn_errf(err, errlen, "%s: %s", x->path, msg);
    }
    /* qsort of an empty list may not take its NULL pointer (UBSan) */
    if (x->table.n > 1) qsort(x->table.v, (size_t)x->table.n, sizeof *x->table.v, table_cmp);
    if ((x->table.n == 0 || strncmp(x->table.v[0], "/weights/", 9) != 0) && x->n_damaged == 0)
        return sn_errf(err, errlen, "%s: no tensors under /weights", x->path);
    x->stats = calloc((size_t)x->table.n + 1, sizeof *x->stats);
    if (!x->stats) return sn_errf(err, errlen, "out of memory");
    for (int64_t i = 0; i < x->table.n; i++) {
        const sn_ds_scan *done = NULL;
        for (int64_t j = 0; x->verified && j < x->all.n && !done; j++)
            if (strcmp(x->all.v[j], x->table.v[i]) == 0) done = &x->verified[j];
        if (done) {
            x->stats[i] = *done;
        } else if (sn_inspect_scan(x->file, x->path, x->table.v[i], false, &x->stats[i], err,
                                   errlen) != SN_OK) {
            return SN_ERR;
        }
    }

    if (H5Lexists(x->file, "search", H5P_DEFAULT) > 0) {
        if (sn_inspect_attr_names(x->file, "/search", &x->search_attrs, msg, sizeof msg) !=
                SN_OK ||
            sn_inspect_datasets(x->file, "/search", &x->search_sets, NULL, msg, sizeof msg) !=
                SN_OK) {
            if (!a->verify) return sn_errf(err, errlen, "%s: %s", x->path, msg);
        }
        x->has_search = x->search_attrs.n > 0 || x->search_sets.n > 0;
    }
    return SN_OK;
}

/* /config attributes shown in their own fields; others (e.g. seed,
 * val_size, or what a newer minor version adds) are listed generically. */
static bool known_config(const char *name)
{
    static const char *known[] = {"embed_choices", "heads_choices", "mlp_choices", "min_depth",
                                  "max_depth", "head_dim", "n_tokens", "token_dim", "n_classes",
                                  "patch", "image_rows", "image_cols", "norm_mean", "norm_std",
                                  "options", "subnet", "stem_channels"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]) == 0) return true;
    return false;
}

/* Writes the attributes of obj (all, or with only_unknown those that
 * known_config does not name) as "name value, ..." (text) or
 * "name":value,... (json, each preceded by a comma when lead). */
static void print_attrs(hid_t f, const char *obj, bool only_unknown, bool json, bool lead)
{
    sn_names names = {0};
    char msg[256];
    if (sn_inspect_attr_names(f, obj, &names, msg, sizeof msg) != SN_OK) {
        sn_names_free(&names);
        return;
    }
    bool first = !lead;
    for (int64_t i = 0; i < names.n; i++) {
        if (only_unknown && known_config(names.v[i])) continue;
        char *v = sn_inspect_attr_text(f, obj, names.v[i], json, msg, sizeof msg);
        if (json) {
            printf("%s", first ? "" : ",");
            sn_json_write_str(stdout, names.v[i]);
            printf(":%s", v ? v : "null");
        } else {
            bool quote = v && v[0] == '\0';
            printf("%s%s %s", first ? "" : ", ", names.v[i],
                   v ? (quote ? "\"\"" : v) : "<unreadable>");
        }
        first = false;
        free(v);
    }
    sn_names_free(&names);
}

/* ---- text ----------------------------------------------------------------- */

static void print_ints(const int *v, int n)
{
    printf("{");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", v[i]);
    printf("}");
}

/* "label   name value, name value" for the attributes of obj. */
static void print_attrs_line(hid_t f, const char *label, const char *obj, bool only_unknown)
{
    sn_names names = {0};
    char msg[256];
    int64_t n = 0;
    if (sn_inspect_attr_names(f, obj, &names, msg, sizeof msg) == SN_OK)
        for (int64_t i = 0; i < names.n; i++) n += !only_unknown || !known_config(names.v[i]);
    sn_names_free(&names);
    if (n == 0) return;
    printf("%-14s ", label);
    print_attrs(f, obj, only_unknown, false, false);
    printf("\n");
}

static void print_stat(double v)
{
    if (isnan(v))
        printf(" %12s", "-");
    else
        printf(" %12.5g", v);
}

static void print_table(const inspection *x, int g)
{
    const char *grp = x->groups[g];
    int width = 4;
    int64_t n = 0, values = 0;
    for (int64_t i = 0; i < x->table.n; i++) {
        const char *name;
        if (strcmp(group_of(x, x->table.v[i], &name), grp) != 0) continue;
        int w = (int)strlen(name);
        if (w > width) width = w;
        n++;
        values += x->stats[i].count;
    }
    if (n == 0) return;
    printf("\n%s: %lld tensors, %lld values\n", grp, (long long)n, (long long)values);
    printf("  %-*s %-14s %12s %12s %12s %12s\n", width, "name", "shape", "min", "max", "mean",
           "l2");
    for (int64_t i = 0; i < x->table.n; i++) {
        const char *name;
        if (strcmp(group_of(x, x->table.v[i], &name), grp) != 0) continue;
        const sn_ds_scan *s = &x->stats[i];
        char shape[128];
        sn_inspect_shape_str(s->ndim, s->dims, shape, sizeof shape);
        printf("  %-*s %-14s", width, name, shape);
        if (s->is_f32) {
            print_stat(s->min);
            print_stat(s->max);
            print_stat(s->mean);
            print_stat(s->l2);
        } else {
            printf(" (%s: no statistics)", s->type);
        }
        if (s->nonfinite) printf("  (%lld non-finite)", (long long)s->nonfinite);
        if (s->problem[0]) printf("  DAMAGED");
        printf("\n");
    }
}

static void print_text(const inspection *x)
{
    const sn_file_info *in = &x->info;
    const sn_space *s = &in->space;
    printf("%s: supernest %s, format %d.%d, written by supernest %s at %s\n", x->path,
           in->is_model ? "model" : "checkpoint", in->major, in->minor, in->program_version,
           in->created);
    if (!in->is_model) printf("%-14s %lld\n", "step", (long long)in->step);
    printf("%-14s embed ", "search space");
    print_ints(s->embed, s->n_embed);
    printf(", heads ");
    print_ints(s->heads, s->n_heads);
    printf(" of %d channels, MLP ", s->head_dim);
    print_ints(s->mlp, s->n_mlp);
    printf(", depths {");
    for (int st = 0; st < s->n_stages; st++) {
        if (s->min_depth[st] == s->max_depth[st])
            printf("%s%d", st ? ", " : "", s->max_depth[st]);
        else
            printf("%s%d..%d", st ? ", " : "", s->min_depth[st], s->max_depth[st]);
    }
    printf("} (%d stage%s)\n", s->n_stages, s->n_stages == 1 ? "" : "s");
    printf("%-14s %.6g sub-networks\n", "", sn_space_count(s));
    if (s->task == SN_TASK_LM) {
        printf("%-14s lm: causal byte-level language model, sequences of %d bytes, "
               "vocabulary %d\n", "task", s->n_tokens, s->token_dim);
        printf("%-14s none: byte v is token v\n", "preprocessing");
    } else {
        printf("%-14s image: %d tokens of %d values, %d classes\n", "task", s->n_tokens,
               s->token_dim, s->n_classes);
        printf("%-14s %dx%d images in %dx%d patches, pixel v -> (v/255 - %.6g) / %.6g\n",
               "preprocessing", in->image_rows, in->image_cols, in->patch, in->patch,
               (double)in->norm_mean, (double)in->norm_std);
        if (sn_space_has_stem(s)) {
            char stem[64];
            const int w = sn_stem_window(in->patch, sn_stem_convs(s));
            sn_stem_format(s, stem, sizeof stem);
            printf("%-14s 3x3 convolutions of %s channels (all but the first of stride 2), "
                   "each token the %dx%d pixel window its %dx%d patch's outputs see\n", "stem",
                   stem, w, w, in->patch, in->patch);
        }
    }
    if (in->is_model) {
        sn_subnet big;
        sn_subnet_max(s, &big);
        printf("%-14s %s (%lld params, %lld MACs)\n", "sub-network", in->subnet,
               (long long)sn_subnet_params(s, &big), (long long)sn_subnet_macs(s, &big));
    }
    print_attrs_line(x->file, "run", "/config", true);
    if (in->options[0]) {
        const char *p = in->options;
        bool first = true;
        while (*p) {
            const char *e = strchr(p, '\n');
            int k = e ? (int)(e - p) : (int)strlen(p);
            printf("%-14s %.*s\n", first ? "options" : "", k, p);
            first = false;
            p += k + (e ? 1 : 0);
        }
    }
    if (!in->is_model) {
        print_attrs_line(x->file, "train", "/train", false);
        if (H5Lexists(x->file, "optimizer", H5P_DEFAULT) > 0)
            print_attrs_line(x->file, "optimizer", "/optimizer", false);
    }
    for (int g = 0; g < x->n_groups; g++) print_table(x, g);
    if (x->has_search) {
        printf("\n/search:\n");
        for (int64_t i = 0; i < x->search_attrs.n; i++) {
            char msg[256];
            char *v = sn_inspect_attr_text(x->file, "/search", x->search_attrs.v[i], false, msg,
                                           sizeof msg);
            printf("  @%s = %s\n", x->search_attrs.v[i], v ? v : "<unreadable>");
            free(v);
        }
        for (int64_t i = 0; i < x->search_sets.n; i++) {
            sn_ds_scan d;
            char msg[256], shape[128];
            if (sn_inspect_shape(x->file, x->path, x->search_sets.v[i], &d, msg, sizeof msg) !=
                SN_OK) {
                printf("  %s  <unreadable>\n", x->search_sets.v[i]);
                continue;
            }
            sn_inspect_shape_str(d.ndim, d.dims, shape, sizeof shape);
            printf("  %s  %s %s\n", x->search_sets.v[i], d.type, shape);
        }
    }
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_ints(const char *key, const int *v, int n)
{
    printf("\"%s\":[", key);
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", v[i]);
    printf("]");
}

static void json_shape(const int64_t *dims, int ndim)
{
    printf("[");
    for (int i = 0; i < ndim; i++) printf("%s%lld", i ? "," : "", (long long)dims[i]);
    printf("]");
}

/* {"name": value, ...} of every attribute of obj. */
static void json_attrs(hid_t f, const char *obj)
{
    printf("{");
    print_attrs(f, obj, false, true, false);
    printf("}");
}

static void json_count(double c)
{
    if (c < 9007199254740992.0)
        printf("%.0f", c);
    else
        printf("%.17g", c);
}

static void json_scan_stats(const sn_ds_scan *s)
{
    printf("\"shape\":");
    json_shape(s->dims, s->ndim);
    printf(",\"type\":");
    sn_json_write_str(stdout, s->type);
    printf(",\"count\":%lld,\"min\":", (long long)s->count);
    sn_json_write_num(stdout, s->min);
    printf(",\"max\":");
    sn_json_write_num(stdout, s->max);
    printf(",\"mean\":");
    sn_json_write_num(stdout, s->mean);
    printf(",\"l2\":");
    sn_json_write_num(stdout, s->l2);
    printf(",\"nonfinite\":%lld", (long long)s->nonfinite);
}

static void print_json(const inspection *x, const inspect_args *a)
{
    const sn_file_info *in = &x->info;
    const sn_space *s = &in->space;
    printf("{\"file\":");
    sn_json_write_str(stdout, x->path);
    printf(",\"kind\":\"%s\",\"format\":\"%s\",\"format_version\":\"%d.%d\","
           "\"program_version\":",
           in->is_model ? "model" : "checkpoint",
           in->is_model ? "supernest-model" : "supernest-checkpoint", in->major, in->minor);
    sn_json_write_str(stdout, in->program_version);
    printf(",\"created\":");
    sn_json_write_str(stdout, in->created);
    printf(",\"step\":");
    if (in->is_model)
        printf("null");
    else
        printf("%lld", (long long)in->step);
    printf(",\"config\":{");
    json_ints("embed_choices", s->embed, s->n_embed);
    printf(",");
    json_ints("heads_choices", s->heads, s->n_heads);
    printf(",");
    json_ints("mlp_choices", s->mlp, s->n_mlp);
    printf(",");
    json_ints("min_depth", s->min_depth, s->n_stages);
    printf(",");
    json_ints("max_depth", s->max_depth, s->n_stages);
    printf(",\"task\":\"%s\"", s->task == SN_TASK_LM ? "lm" : "image");
    printf(",\"head_dim\":%d,\"n_tokens\":%d,\"token_dim\":%d,\"n_classes\":%d,\"patch\":%d,"
           "\"image_rows\":%d,\"image_cols\":%d,\"norm_mean\":",
           s->head_dim, s->n_tokens, s->token_dim, s->n_classes, in->patch, in->image_rows,
           in->image_cols);
    sn_json_write_f32(stdout, in->norm_mean);
    printf(",\"norm_std\":");
    sn_json_write_f32(stdout, in->norm_std);
    if (in->is_model) {
        printf(",\"subnet\":");
        sn_json_write_str(stdout, in->subnet);
    } else if (in->options[0]) {
        printf(",\"options\":");
        sn_json_write_str(stdout, in->options);
    }
    print_attrs(x->file, "/config", true, true, true);
    printf("},\"space_size\":");
    json_count(sn_space_count(s));
    if (in->is_model) {
        sn_subnet big;
        sn_subnet_max(s, &big);
        printf(",\"model\":{\"subnet\":");
        sn_json_write_str(stdout, in->subnet);
        printf(",\"params\":%lld,\"macs\":%lld}", (long long)sn_subnet_params(s, &big),
               (long long)sn_subnet_macs(s, &big));
    } else {
        printf(",\"train\":");
        json_attrs(x->file, "/train");
        if (H5Lexists(x->file, "optimizer", H5P_DEFAULT) > 0) {
            printf(",\"optimizer\":");
            json_attrs(x->file, "/optimizer");
        }
    }
    printf(",\"tensors\":[");
    for (int64_t i = 0; i < x->table.n; i++) {
        const char *name, *grp = group_of(x, x->table.v[i], &name);
        printf("%s{\"name\":", i ? "," : "");
        sn_json_write_str(stdout, name);
        printf(",\"group\":");
        sn_json_write_str(stdout, grp);
        printf(",");
        json_scan_stats(&x->stats[i]);
        printf("}");
    }
    printf("]");
    if (x->has_search) {
        printf(",\"search\":{\"attrs\":");
        json_attrs(x->file, "/search");
        printf(",\"datasets\":[");
        for (int64_t i = 0; i < x->search_sets.n; i++) {
            sn_ds_scan d;
            char msg[256];
            printf("%s{\"name\":", i ? "," : "");
            sn_json_write_str(stdout, x->search_sets.v[i]);
            if (sn_inspect_shape(x->file, x->path, x->search_sets.v[i], &d, msg, sizeof msg) ==
                SN_OK) {
                printf(",\"shape\":");
                json_shape(d.dims, d.ndim);
                printf(",\"type\":");
                sn_json_write_str(stdout, d.type);
            }
            printf("}");
        }
        printf("]}");
    }
    if (a->verify) {
        printf(",\"verify\":{\"datasets\":%lld,\"damaged\":[", (long long)x->all.n);
        bool first = true;
        for (int64_t i = 0; i < x->all.n; i++) {
            const sn_ds_scan *v = &x->verified[i];
            if (!v->problem[0]) continue;
            printf("%s{\"name\":", first ? "" : ",");
            sn_json_write_str(stdout, v->path);
            printf(",\"problem\":");
            sn_json_write_str(stdout, v->problem);
            printf(",\"stored\":");
            sn_json_write_str(stdout, v->stored);
            printf(",\"computed\":");
            sn_json_write_str(stdout, v->computed);
            printf("}");
            first = false;
        }
        for (int64_t i = 0; i < x->broken.n; i++) {
            printf("%s{\"name\":", first ? "" : ",");
            sn_json_write_str(stdout, x->broken.v[i]);
            printf(",\"problem\":\"its metadata cannot be read\"}");
            first = false;
        }
        printf("],\"ok\":%s}", x->n_damaged == 0 ? "true" : "false");
    }
    printf("}\n");
}

static int run_inspect(const char *path, const inspect_args *a, const sn_mpi_info *mpi,
                       char *err, size_t errlen)
{
    inspection x = {.path = path, .file = H5I_INVALID_HID};
    int rc = SN_EXIT_FAILURE;
    if (gather(&x, a, err, errlen) != SN_OK) goto out;
    if (mpi->rank == 0) {
        if (a->json)
            print_json(&x, a);
        else
            print_text(&x);
        fflush(stdout);
        if (a->verify) {
            for (int64_t i = 0; i < x.broken.n; i++)
                fprintf(stderr, "supernest inspect: %s: object %s is damaged: its metadata "
                                "cannot be read\n", path, x.broken.v[i]);
            for (int64_t i = 0; i < x.all.n; i++)
                if (x.verified[i].problem[0])
                    fprintf(stderr, "supernest inspect: %s: dataset %s is damaged: %s\n", path,
                            x.verified[i].path, x.verified[i].problem);
            if (x.n_damaged)
                fprintf(stderr, "supernest inspect: %s: %lld of %lld objects damaged\n", path,
                        (long long)x.n_damaged, (long long)(x.all.n + x.broken.n));
            else if (!a->json)
                printf("%s: %lld datasets verified\n", path, (long long)x.all.n);
        }
    }
    rc = x.n_damaged ? SN_EXIT_FAILURE : SN_EXIT_OK;
    err[0] = '\0';
out:
    inspection_free(&x);
    return rc;
}

/* ---- --diff --------------------------------------------------------------- */

static int64_t find_name(const sn_names *l, const char *s)
{
    for (int64_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return i;
    return -1;
}

static void print_position(int64_t at, const sn_ds_scan *d, bool json)
{
    int64_t idx[SN_INSPECT_MAX_RANK];
    for (int i = d->ndim - 1; i >= 0; i--) {
        idx[i] = d->dims[i] > 0 ? at % d->dims[i] : 0;
        at = d->dims[i] > 0 ? at / d->dims[i] : 0;
    }
    printf("[");
    for (int i = 0; i < d->ndim; i++) printf("%s%lld", i ? (json ? "," : ", ") : "",
                                             (long long)idx[i]);
    printf("]");
}

typedef struct diff_row {
    const char *name;
    sn_ds_scan da, db;
    int kind;                   /* 0 compared, 1 only in A, 2 only in B, 3 shapes differ */
    sn_ds_diff d;
} diff_row;

static int run_diff(const char *pa, const char *pb, const inspect_args *a,
                    const sn_mpi_info *mpi, char *err, size_t errlen)
{
    sn_file_info ia, ib;
    sn_names la = {0}, lb = {0};
    diff_row *rows = NULL;
    int64_t n_rows = 0;
    int rc = SN_EXIT_FAILURE;
    hid_t fa = sn_inspect_open(sn_mpi_world(), pa, &ia, err, errlen);
    hid_t fb = fa < 0 ? H5I_INVALID_HID : sn_inspect_open(sn_mpi_world(), pb, &ib, err, errlen);
    if (fb < 0) goto out;
    const char *groups[3];
    int ng = table_groups(a->all, groups);
    char msg[512];
    for (int g = 0; g < ng; g++) {
        if (sn_inspect_datasets(fa, groups[g], &la, NULL, msg, sizeof msg) != SN_OK) {
            sn_errf(err, errlen, "%s: %s", pa, msg);
            goto out;
        }
        if (sn_inspect_datasets(fb, groups[g], &lb, NULL, msg, sizeof msg) != SN_OK) {
            sn_errf(err, errlen, "%s: %s", pb, msg);
            goto out;
        }
    }
    if (la.n > 1) qsort(la.v, (size_t)la.n, sizeof *la.v, table_cmp);
    if (lb.n > 1) qsort(lb.v, (size_t)lb.n, sizeof *lb.v, table_cmp);
    rows = calloc((size_t)(la.n + lb.n) + 1, sizeof *rows);
    if (!rows) {
        sn_errf(err, errlen, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < la.n; i++) {
        diff_row *r = &rows[n_rows++];
        r->name = la.v[i];
        if (sn_inspect_shape(fa, pa, r->name, &r->da, err, errlen) != SN_OK) goto out;
        if (find_name(&lb, r->name) < 0) {
            r->kind = 1;
            continue;
        }
        if (sn_inspect_shape(fb, pb, r->name, &r->db, err, errlen) != SN_OK) goto out;
        bool same = r->da.ndim == r->db.ndim && r->da.is_f32 && r->db.is_f32;
        for (int k = 0; same && k < r->da.ndim; k++) same = r->da.dims[k] == r->db.dims[k];
        if (!same) {
            r->kind = 3;
            continue;
        }
        if (sn_inspect_diff(fa, pa, fb, pb, r->name, &r->d, err, errlen) != SN_OK) goto out;
    }
    for (int64_t i = 0; i < lb.n; i++) {
        if (find_name(&la, lb.v[i]) >= 0) continue;
        diff_row *r = &rows[n_rows++];
        r->name = lb.v[i];
        r->kind = 2;
        if (sn_inspect_shape(fb, pb, r->name, &r->db, err, errlen) != SN_OK) goto out;
    }
    rc = SN_EXIT_OK;
    if (mpi->rank != 0) goto out;

    int64_t both = 0, differ = 0;
    int width = 6;
    for (int64_t i = 0; i < n_rows; i++) {
        if (rows[i].kind != 0) continue;
        both++;
        differ += rows[i].d.at >= 0;
        if ((int)strlen(rows[i].name) > width) width = (int)strlen(rows[i].name);
    }
    if (a->json) {
        printf("{\"a\":");
        sn_json_write_str(stdout, pa);
        printf(",\"b\":");
        sn_json_write_str(stdout, pb);
        printf(",\"compared\":%lld,\"differ\":%lld", (long long)both, (long long)differ);
        const char *keys[4] = {"tensors", "only_in_a", "only_in_b", "shape_mismatch"};
        for (int kind = 0; kind < 4; kind++) {
            printf(",\"%s\":[", keys[kind]);
            bool first = true;
            for (int64_t i = 0; i < n_rows; i++) {
                const diff_row *r = &rows[i];
                if (r->kind != kind) continue;
                printf("%s{\"name\":", first ? "" : ",");
                first = false;
                sn_json_write_str(stdout, r->name);
                if (kind == 0) {
                    printf(",\"shape\":");
                    json_shape(r->da.dims, r->da.ndim);
                    printf(",\"max_abs_diff\":");
                    if (isinf(r->d.max_abs))
                        printf("\"inf\"");
                    else
                        sn_json_write_num(stdout, r->d.max_abs);
                    printf(",\"position\":");
                    if (r->d.at >= 0) {
                        print_position(r->d.at, &r->da, true);
                        printf(",\"a\":");
                        sn_json_write_num(stdout, r->d.a);
                        printf(",\"b\":");
                        sn_json_write_num(stdout, r->d.b);
                    } else {
                        printf("null");
                    }
                } else {
                    if (kind != 2) {
                        printf(",\"shape_a\":");
                        json_shape(r->da.dims, r->da.ndim);
                        printf(",\"type_a\":\"%s\"", r->da.type);
                    }
                    if (kind != 1) {
                        printf(",\"shape_b\":");
                        json_shape(r->db.dims, r->db.ndim);
                        printf(",\"type_b\":\"%s\"", r->db.type);
                    }
                }
                printf("}");
            }
            printf("]");
        }
        printf("}\n");
        goto out;
    }
    printf("%s vs %s: %lld tensors in both, %lld identical, %lld differ\n", pa, pb,
           (long long)both, (long long)(both - differ), (long long)differ);
    if (both)
        printf("  %-*s %-14s %12s  %-14s %12s %12s\n", width, "tensor", "shape", "max |a-b|",
               "at", "a", "b");
    for (int64_t i = 0; i < n_rows; i++) {
        const diff_row *r = &rows[i];
        if (r->kind != 0) continue;
        char shape[128];
        sn_inspect_shape_str(r->da.ndim, r->da.dims, shape, sizeof shape);
        printf("  %-*s %-14s %12.5g  ", width, r->name, shape, r->d.max_abs);
        if (r->d.at < 0) {
            printf("-\n");
            continue;
        }
        print_position(r->d.at, &r->da, false);
        printf("  %12.7g %12.7g\n", r->d.a, r->d.b);
    }
    for (int64_t i = 0; i < n_rows; i++) {
        const diff_row *r = &rows[i];
        char sa[128], sb[128];
        sn_inspect_shape_str(r->da.ndim, r->da.dims, sa, sizeof sa);
        sn_inspect_shape_str(r->db.ndim, r->db.dims, sb, sizeof sb);
        if (r->kind == 1) printf("only in %s: %s %s\n", pa, r->name, sa);
        if (r->kind == 2) printf("only in %s: %s %s\n", pb, r->name, sb);
        if (r->kind == 3)
            printf("different shapes: %s is %s %s in %s, %s %s in %s\n", r->name, r->da.type, sa,
                   pa, r->db.type, sb, pb);
    }
out:
    fflush(stdout);
    sn_inspect_close(fa);
    sn_inspect_close(fb);
    sn_names_free(&la);
    sn_names_free(&lb);
    free(rows);
    return rc;
}

int sn_cmd_inspect(int argc, char **argv, const sn_mpi_info *mpi)
{
    inspect_args a = {0};
    sn_opt opts[] = {
        {"verify", SN_OPT_FLAG, &a.verify, NULL, "read every dataset and check its checksum (exit 1 if any is damaged)", 0, 0, 0},
        {"json", SN_OPT_FLAG, &a.json, NULL, "print one JSON object instead of text", 0, 0, 0},
        {"all", SN_OPT_FLAG, &a.all, NULL, "also tabulate (or compare) the optimizer moments /optimizer/m and /optimizer/v", 0, 0, 0},
        {"diff", SN_OPT_FLAG, &a.diff, NULL, "compare the tensors of two files A and B", 0, 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    const char *pos[2];
    int n_pos = 0;
    int p = sn_cli_parse("supernest inspect", USAGE, opts, argc, argv, 2, pos, 2, &n_pos, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p == SN_OK) {
        if (a.diff && a.verify)
            p = sn_errf(err, sizeof err, "--verify and --diff cannot be combined");
        else if (a.diff && n_pos != 2)
            p = sn_errf(err, sizeof err, "--diff needs two files A and B (got %d)", n_pos);
        else if (!a.diff && n_pos != 1)
            p = sn_errf(err, sizeof err, n_pos == 0 ? "missing FILE (usage: %s)"
                                                    : "give one FILE, or --diff A B (usage: %s)",
                        "supernest inspect FILE [--verify] [--json] [--all]");
    }
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest inspect: %s\n", err);
        return SN_EXIT_USAGE;
    }
    /* a run or checkpoint directory stands for its latest checkpoint */
    char resolved[2][4096];
    for (int i = 0; i < n_pos; i++) {
        if (sn_ckpt_resolve(pos[i], resolved[i], sizeof resolved[i], err, sizeof err) != SN_OK) {
            if (mpi->rank == 0) fprintf(stderr, "supernest inspect: %s\n", err);
            return SN_EXIT_FAILURE;
        }
        pos[i] = resolved[i];
    }
    int rc = a.diff ? run_diff(pos[0], pos[1], &a, mpi, err, sizeof err)
                    : run_inspect(pos[0], &a, mpi, err, sizeof err);
    if (rc != SN_EXIT_OK && err[0] && mpi->rank == 0)
        fprintf(stderr, "supernest inspect: %s\n", err);
    return rc;
}
