#include "io/runlog.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/util.h"

int sn_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) return sn_errf(err, errlen, "run directory '%s': bad path", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return sn_errf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return sn_errf(err, errlen, "%s: exists and is not a directory", path);
        path[i] = c;
    }
    return SN_OK;
}

FILE *sn_run_open(const char *dir, const char *name, const char *mode, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        sn_errf(err, errlen, "%s/%s: path too long", dir, name);
        return NULL;
    }
    FILE *f = fopen(path, mode);
    if (!f) sn_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return f;
}

int sn_run_close(FILE *f, const char *name, char *err, size_t errlen)
{
    int bad = fflush(f) != 0;
    if (!bad && fsync(fileno(f)) != 0 && errno != EINVAL) bad = 1;
    int saved = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad) return sn_errf(err, errlen, "%s: write failed: %s", name, strerror(saved));
    return SN_OK;
}
