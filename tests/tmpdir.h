/* tmpdir.h: a temporary directory for a CMocka test group, created by the
 * group's setup and removed with everything in it by its teardown.  Tests
 * build their file names under `tmpdir`. */
#ifndef SN_TEST_TMPDIR_H
#define SN_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static int tmpdir_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Creates $TMPDIR/<name>_XXXXXX (or under /tmp); 0 on success. */
static int tmpdir_create(const char *name)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/%s_XXXXXX", base && *base ? base : "/tmp", name);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmpdir_remove(void) { return nftw(tmpdir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

#endif
