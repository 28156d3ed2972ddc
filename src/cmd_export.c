/* `supernest export`: one sub-network of a supernet checkpoint as a
 * standalone HDF5 model (sliced weights, its string, its preprocessing). */
#include <stdio.h>
#include <stdlib.h>

#include "io/ckpt.h"
#include "mpi/runtime.h"
#include "src/cli.h"
#include "src/commands.h"
#include "src/evaluate.h"
#include "src/util.h"

static const char *USAGE = "supernest export --checkpoint FILE|DIR --subnet STRING -o OUT.h5";

int sn_cmd_export(int argc, char **argv, const sn_mpi_info *mpi)
{
    const char *checkpoint = NULL, *subnet = NULL, *out = NULL;
    sn_opt opts[] = {
        {"checkpoint", SN_OPT_STR, &checkpoint, "FILE|DIR", "the supernet checkpoint (or a directory whose latest to use)", 0, 0, 0},
        {"subnet", SN_OPT_STR, &subnet, "STRING", "the sub-network: max, min or a canonical string", 0, 0, 0},
        {"o", SN_OPT_STR, &out, "OUT.h5", "the model file to write (replaced atomically)", 0, 0, 0},
        {"output", SN_OPT_STR, &out, "OUT.h5", "same as -o", 0, 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0, 0},
    };
    char err[1024] = "";
    int p = sn_cli_parse("supernest export", USAGE, opts, argc, argv, 2, NULL, 0, NULL, err,
                         sizeof err);
    if (p == 1) return SN_EXIT_OK;
    if (p == SN_OK && (!checkpoint || !subnet || !out))
        p = sn_errf(err, sizeof err, "--checkpoint, --subnet and -o are all required");
    if (p != SN_OK) {
        if (mpi->rank == 0) fprintf(stderr, "supernest export: %s\n", err);
        return SN_EXIT_USAGE;
    }
    sn_model *m = NULL;
    sn_file_info *info = calloc(1, sizeof *info);
    char path[4096];
    sn_subnet net;
    int code = SN_EXIT_FAILURE;
    if (!info) {
        sn_errf(err, sizeof err, "out of memory");
    } else if (sn_open_checkpoint(checkpoint, &m, info, path, sizeof path, err, sizeof err) ==
               SN_OK) {
        if (sn_subnet_parse(&m->space, subnet, &net, err, sizeof err) != SN_OK) {
            code = SN_EXIT_USAGE;
        } else if (sn_model_export(sn_mpi_world(), out, m, &net, info, err, sizeof err) == SN_OK) {
            char name[SN_SUBNET_STRLEN];
            sn_subnet_format(&net, name, sizeof name);
            if (mpi->rank == 0)
                printf("%s: %s from %s (%.3fM params)\n", out, name, path,
                       (double)sn_subnet_params(&m->space, &net) / 1e6);
            code = SN_EXIT_OK;
        }
    }
    if (code != SN_EXIT_OK && mpi->rank == 0) fprintf(stderr, "supernest export: %s\n", err);
    sn_model_destroy(m);
    free(info);
    return code;
}
