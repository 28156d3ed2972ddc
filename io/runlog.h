/* runlog.h: the run directory (--run-dir): its creation and its files
 * (`config`, `metrics.jsonl`, `eval.jsonl`, checkpoints/ later).
 */
#ifndef SN_RUNLOG_H
#define SN_RUNLOG_H

#include <stddef.h>
#include <stdio.h>

/* Creates dir and its parents (like mkdir -p); SN_ERR naming the path. */
int sn_mkdirs(const char *dir, char *err, size_t errlen);
/* Opens dir/name with fopen mode; SN_ERR (NULL) with the path named. */
FILE *sn_run_open(const char *dir, const char *name, const char *mode, char *err, size_t errlen);
/* fflush + fsync + fclose; SN_ERR naming name if any of them failed
 * (a full disk shows here). */
int sn_run_close(FILE *f, const char *name, char *err, size_t errlen);

#endif
