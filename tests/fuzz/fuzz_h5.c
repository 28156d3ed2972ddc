/* fuzz_h5: the checkpoint and model readers (io/ckpt.c, io/h5.c,
 * io/inspect.c) on arbitrary bytes written to a scratch file.
 *
 * Each input is opened the ways supernest opens a file it is given:
 * - `eval --checkpoint`: sn_open_checkpoint (header, config, a model of the
 *   file's space, every weight verified), then the largest and smallest
 *   sub-networks parsed against its space;
 * - `train --resume`: sn_ckpt_load with the optimizer moments and the
 *   training state; a pipeline stage's sn_ckpt_load_weights of half the
 *   tensors;
 * - `eval --model`: sn_model_import;
 * - `inspect --verify`: sn_inspect_open and _config, every dataset listed
 *   and scanned with its checksum, the attributes of the groups rendered
 *   as text and JSON.
 * Errors must be one line, and every HDF5 object opened must be closed
 * again (a leaked id keeps the file open).  One MPI process (singleton),
 * initialised once, as supernest does.
 */
#include <hdf5.h>
#include <mpi.h>
#include <sanitizer/lsan_interface.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ckpt.h"
#include "io/h5.h"
#include "io/inspect.h"
#include "mpi/runtime.h"
#include "src/evaluate.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/util.h"
#include "tests/fuzz/fuzz_common.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Open MPI's own handlers of SIGABRT and SIGSEGV would end the process
     * before libFuzzer saves the input that crashed it */
    setenv("OMPI_MCA_opal_signal", "", 0);
    sn_mpi_info mpi;
    __lsan_disable(); /* what MPI_Init allocates lives as long as the process */
    int rc = sn_mpi_init(argc, argv, &mpi);
    __lsan_enable();
    if (rc != SN_OK) sn_fuzz_fail("MPI_Init failed");
    sn_fuzz_init(); /* after sn_mpi_init, which installs its own abort hook */
    sn_h5_quiet();
    devnull = fopen("/dev/null", "w");
    if (!devnull) sn_fuzz_fail("cannot open /dev/null");
    return 0;
}

/* Every object of every file is closed again. */
static void check_closed(const char *after)
{
    ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open != 0) {
        fprintf(stderr, "fuzz: %zd HDF5 objects still open after %s\n", open, after);
        sn_fuzz_fail("leaked HDF5 ids");
    }
}

static void check_error(int rc, const char *err, size_t errlen)
{
    if (rc != SN_OK && rc != SN_ERR) sn_fuzz_fail("returned neither SN_OK nor SN_ERR");
    if (rc == SN_ERR) sn_fuzz_check_message(err, errlen);
}

/* eval --checkpoint, train --resume, a pipeline stage */
static void open_checkpoint(const char *path)
{
    sn_model *m = NULL;
    sn_file_info *info = calloc(1, sizeof *info);
    char resolved[4096], err[1024];
    if (!info) return;
    int rc = sn_open_checkpoint(path, &m, info, resolved, sizeof resolved, err, sizeof err);
    check_error(rc, err, sizeof err);
    check_closed("sn_open_checkpoint");
    if (rc == SN_OK) {
        sn_subnet n;
        if (sn_subnet_parse(&m->space, "max", &n, err, sizeof err) != SN_OK ||
            sn_subnet_parse(&m->space, "min", &n, err, sizeof err) != SN_OK)
            sn_fuzz_fail(err);
        sn_adamw opt;
        sn_adamw_opts o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
        sn_train_state ts;
        if (sn_adamw_init(&opt, m, &o) == SN_OK) {
            rc = sn_ckpt_load(sn_mpi_world(), path, m, &opt, &ts, err, sizeof err);
            check_error(rc, err, sizeof err);
            check_closed("sn_ckpt_load");
            sn_adamw_free(&opt);
        }
        rc = sn_ckpt_load_weights(sn_mpi_world(), path, m, m->n_tensors / 2, m->n_tensors, err,
                                  sizeof err);
        check_error(rc, err, sizeof err);
        check_closed("sn_ckpt_load_weights");
    }
    sn_model_destroy(m);
    free(info);
}

/* eval --model */
static void import_model(const char *path)
{
    sn_model *m = NULL;
    sn_subnet n;
    sn_file_info *info = calloc(1, sizeof *info);
    char err[1024];
    if (!info) return;
    int rc = sn_model_import(sn_mpi_world(), path, &m, &n, info, err, sizeof err);
    check_error(rc, err, sizeof err);
    check_closed("sn_model_import");
    if (rc == SN_OK) {
        char msg[512];
        if (sn_subnet_validate(&m->space, &n, msg, sizeof msg) != SN_OK) sn_fuzz_fail(msg);
    } else if (m) {
        sn_fuzz_fail("sn_model_import failed but returned a model");
    }
    sn_model_destroy(m);
    free(info);
}

static void render_attrs(hid_t f, const char *obj)
{
    sn_names names = {0};
    char msg[256];
    if (sn_inspect_attr_names(f, obj, &names, msg, sizeof msg) == SN_OK) {
        for (int64_t i = 0; i < names.n; i++)
            for (int json = 0; json < 2; json++) {
                char *v = sn_inspect_attr_text(f, obj, names.v[i], json, msg, sizeof msg);
                if (v) sn_json_write_str(devnull, v);
                else sn_fuzz_check_message(msg, sizeof msg);
                free(v);
            }
    } else {
        sn_fuzz_check_message(msg, sizeof msg);
    }
    sn_names_free(&names);
}

/* inspect --verify */
static void inspect(const char *path)
{
    sn_file_info *info = calloc(1, sizeof *info);
    char err[1024];
    if (!info) return;
    hid_t f = sn_inspect_open(sn_mpi_world(), path, info, err, sizeof err);
    if (f < 0) {
        sn_fuzz_check_message(err, sizeof err);
        free(info);
        check_closed("sn_inspect_open");
        return;
    }
    int rc = sn_inspect_config(f, path, info, err, sizeof err);
    check_error(rc, err, sizeof err);
    if (rc == SN_OK) {
        sn_names all = {0}, broken = {0};
        rc = sn_inspect_datasets(f, "/", &all, &broken, err, sizeof err);
        check_error(rc, err, sizeof err);
        sn_ds_scan *scan = malloc(sizeof *scan);
        for (int64_t i = 0; rc == SN_OK && scan && i < all.n; i++) {
            if (sn_inspect_shape(f, path, all.v[i], scan, err, sizeof err) != SN_OK)
                sn_fuzz_check_message(err, sizeof err);
            if (sn_inspect_scan(f, path, all.v[i], true, scan, err, sizeof err) != SN_OK)
                sn_fuzz_check_message(err, sizeof err);
            char shape[256];
            sn_inspect_shape_str(scan->ndim, scan->dims, shape, sizeof shape);
        }
        free(scan);
        sn_names_free(&all);
        sn_names_free(&broken);
        static const char *groups[] = {"/", "/config", "/train", "/search", "/optimizer"};
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            if (strcmp(groups[g], "/") == 0 || H5Lexists(f, groups[g] + 1, H5P_DEFAULT) > 0)
                render_attrs(f, groups[g]);
    }
    sn_inspect_close(f);
    free(info);
    check_closed("inspect");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sn_fuzz_path("input.h5");
    sn_fuzz_write(path, data, size);
    open_checkpoint(path);
    import_model(path);
    inspect(path);
    return 0;
}
