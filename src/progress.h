/* progress.h: a status line redrawn in place on a terminal, and permanent
 * lines for terminals, batch output and log files alike.
 *
 * On a terminal (tty mode) the status line is rewritten in place ("\r",
 * the text cut to the terminal's width, "\033[K"), at most five times a
 * second unless forced; a permanent line clears it, is printed, and the
 * status line is drawn again under it.  Anywhere else (plain mode: a
 * file, a pipe, a batch job's output) status lines write nothing and
 * permanent lines are plain lines, so the output holds no escape codes.
 * Permanent lines also go to an optional log file, always plain.
 *
 * Mode: tty when `out` is a terminal and TERM is set and not "dumb"
 * (under Open MPI, whose ranks always write to a pseudo-terminal, only if
 * mpirun's own output is a terminal too);
 * SN_PROGRESS=plain or SN_PROGRESS=tty in the environment overrides.
 * Width: the terminal's columns (TIOCGWINSZ on `out`), else COLUMNS,
 * else 80; asked at every redraw, so a resized window is followed.
 *
 * Anything else written to `out` while a status line is shown lands in
 * the middle of it: print through sn_progress_line, or call
 * sn_progress_done first.  No MPI: the caller decides which rank prints.
 */
#ifndef SN_PROGRESS_H
#define SN_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#define SN_PROGRESS_STATUS_MAX 512

typedef struct sn_progress {
    FILE *out;          /* terminal or batch output, or NULL (nothing); not owned */
    FILE *log;          /* permanent lines only, plain; or NULL; not owned */
    bool tty;           /* redraw a status line in place on out */
    bool shown;         /* a status line is on the screen */
    double interval;    /* seconds between unforced redraws (0.2) */
    double last_draw;   /* sn_now() of the last redraw */
    char status[SN_PROGRESS_STATUS_MAX]; /* the newest status text, one line */
} sn_progress;

/* Sets p up for out and log (either may be NULL); nothing is written. */
void sn_progress_init(sn_progress *p, FILE *out, FILE *log);

/* The current status, printf-style, one line (cut at a newline).  tty
 * mode: drawn in place, unless the last redraw was less than
 * p->interval ago and force is false; the text is kept either way, and
 * the newest one is drawn again under the next permanent line.  Plain
 * mode: writes nothing.  force: draw now (e.g. the last step, or before
 * a long pause with nothing else on the screen). */
void sn_progress_status(sn_progress *p, bool force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A permanent line, printf-style (a trailing newline is added unless fmt
 * ends with one), to out and to log, both flushed.  tty mode: the status
 * line is cleared first and drawn again after the line. */
void sn_progress_line(sn_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the status line and forgets it, leaving the cursor at the start
 * of an empty line; then out may be written to directly.  A later
 * sn_progress_status starts a new status line.  Plain mode: flushes. */
void sn_progress_done(sn_progress *p);

#endif
