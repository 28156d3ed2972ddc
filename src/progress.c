#include "src/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "src/util.h"

/* Open MPI hands every rank a pseudo-terminal as its stdout, even when
 * mpirun's own output goes to a file or a pipe.  Under Open MPI a terminal
 * therefore counts only if the parent process (mpirun on a single node,
 * else the node's daemon) writes to a terminal as well. */
static bool launcher_writes_to_tty(FILE *out)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE") || fileno(out) != STDOUT_FILENO) return true;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return false;
    target[n] = '\0';
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

void sn_progress_init(sn_progress *p, FILE *out, FILE *log)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->log = log;
    p->interval = 0.2;
    p->last_draw = -1e300;
    if (!out) return;
    const char *mode = getenv("SN_PROGRESS"), *term = getenv("TERM");
    if (mode && strcmp(mode, "plain") == 0)
        p->tty = false;
    else if (mode && strcmp(mode, "tty") == 0)
        p->tty = true;
    else
        p->tty = isatty(fileno(out)) && term && *term && strcmp(term, "dumb") != 0 &&
                 launcher_writes_to_tty(out);
}

static int term_width(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    char *end;
    long w = cols ? strtol(cols, &end, 10) : 0;
    if (cols && *cols && *end == '\0' && w > 0 && w < 100000) return (int)w;
    return 80;
}

/* Bytes of s that fill at most `cols` columns: one column per UTF-8 code
 * point, never splitting one. */
static size_t cut_to(const char *s, int cols)
{
    size_t i = 0;
    for (int c = 0; s[i]; c++) {
        if (c == cols) return i;
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

/* Rewrites the status line in place.  It stays one column short of the
 * width: a full line leaves some terminals wrapping at the next write. */
static void draw(sn_progress *p)
{
    int w = term_width(p->out);
    size_t n = cut_to(p->status, w > 1 ? w - 1 : 1);
    fputc('\r', p->out);
    fwrite(p->status, 1, n, p->out);
    fputs("\033[K", p->out);
    fflush(p->out);
    p->shown = true;
    p->last_draw = sn_now();
}

static void clear(sn_progress *p)
{
    if (!p->shown) return;
    fputs("\r\033[K", p->out);
    p->shown = false;
}

void sn_progress_status(sn_progress *p, bool force, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->status, sizeof p->status, fmt, ap);
    va_end(ap);
    p->status[strcspn(p->status, "\r\n")] = '\0';
    if (!p->tty) return;
    if (!force && sn_now() - p->last_draw < p->interval) return;
    draw(p);
}

static void put_line(FILE *f, bool newline, const char *fmt, va_list ap)
{
    vfprintf(f, fmt, ap);
    if (newline) fputc('\n', f);
    fflush(f);
}

void sn_progress_line(sn_progress *p, const char *fmt, ...)
{
    size_t n = strlen(fmt);
    bool newline = n == 0 || fmt[n - 1] != '\n';
    va_list ap;
    if (p->out) {
        bool redraw = p->tty && p->shown;
        if (p->tty) clear(p);
        va_start(ap, fmt);
        put_line(p->out, newline, fmt, ap);
        va_end(ap);
        if (redraw) draw(p);
    }
    if (p->log && p->log != p->out) {
        va_start(ap, fmt);
        put_line(p->log, newline, fmt, ap);
        va_end(ap);
    }
}

void sn_progress_done(sn_progress *p)
{
    p->status[0] = '\0';
    if (!p->out) return;
    if (p->tty) clear(p);
    fflush(p->out);
}
