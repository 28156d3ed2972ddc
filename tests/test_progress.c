/* test_progress.c: the status line and permanent lines (src/progress):
 * plain mode writes only lines, tty mode redraws in place cut to the
 * width, a permanent line clears and redraws the status, the log gets
 * only plain lines, redraws are rate-limited, and the mode follows
 * isatty, TERM and SN_PROGRESS (on a pseudo-terminal, whose width is
 * read back through TIOCGWINSZ). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "src/progress.h"

/* Everything written to f so far (a tmpfile), as a string. */
static const char *contents(FILE *f)
{
    static char buf[4096];
    assert_int_equal(fflush(f), 0);
    long pos = ftell(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    assert_int_equal(fseek(f, pos, SEEK_SET), 0);
    return buf;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Each test starts with no SN_PROGRESS, a 20-column COLUMNS and a TERM. */
static int env_reset(void **state)
{
    (void)state;
    unsetenv("SN_PROGRESS");
    setenv("COLUMNS", "20", 1);
    setenv("TERM", "xterm", 1);
    return 0;
}

static void plain_mode_writes_only_lines(void **state)
{
    (void)state;
    FILE *out = tmpfile(), *log = tmpfile();
    assert_non_null(out);
    assert_non_null(log);
    sn_progress p;
    sn_progress_init(&p, out, log); /* a file: plain without being told */
    assert_false(p.tty);
    sn_progress_status(&p, true, "step %d", 1);
    sn_progress_status(&p, false, "step %d", 2);
    sn_progress_line(&p, "step %d loss %.2f", 2, 1.5);
    sn_progress_status(&p, true, "step %d", 3);
    sn_progress_line(&p, "done\n"); /* a trailing newline is not doubled */
    sn_progress_done(&p);
    assert_string_equal(contents(out), "step 2 loss 1.50\ndone\n");
    assert_string_equal(contents(log), "step 2 loss 1.50\ndone\n");

    setenv("SN_PROGRESS", "plain", 1); /* and when told */
    FILE *out2 = tmpfile();
    assert_non_null(out2);
    sn_progress_init(&p, out2, NULL);
    assert_false(p.tty);
    sn_progress_status(&p, true, "status");
    sn_progress_line(&p, "line");
    sn_progress_done(&p);
    assert_string_equal(contents(out2), "line\n");
    fclose(out);
    fclose(log);
    fclose(out2);
}

static void tty_mode_redraws_in_place_cut_to_width(void **state)
{
    (void)state;
    setenv("SN_PROGRESS", "tty", 1);
    FILE *out = tmpfile();
    assert_non_null(out);
    sn_progress p;
    sn_progress_init(&p, out, NULL);
    assert_true(p.tty);
    /* COLUMNS=20: 19 columns, one short of the width */
    sn_progress_status(&p, true, "%s", "0123456789abcdefghijklmnopqrstuvwxyz");
    assert_string_equal(contents(out), "\r0123456789abcdefghi\033[K");
    sn_progress_status(&p, true, "two\nlines");
    assert_string_equal(contents(out), "\r0123456789abcdefghi\033[K\rtwo\033[K");
    sn_progress_done(&p);
    assert_string_equal(contents(out), "\r0123456789abcdefghi\033[K\rtwo\033[K\r\033[K");
    sn_progress_done(&p); /* twice: nothing more */
    assert_string_equal(contents(out), "\r0123456789abcdefghi\033[K\rtwo\033[K\r\033[K");
    fclose(out);
}

static void utf8_is_cut_between_code_points(void **state)
{
    (void)state;
    setenv("SN_PROGRESS", "tty", 1);
    setenv("COLUMNS", "4", 1);
    FILE *out = tmpfile();
    assert_non_null(out);
    sn_progress p;
    sn_progress_init(&p, out, NULL);
    sn_progress_status(&p, true, "\xc3\xa9t\xc3\xa9s"); /* "étés": 3 of 4 columns */
    assert_string_equal(contents(out), "\r\xc3\xa9t\xc3\xa9\033[K");
    fclose(out);
}

static void line_clears_and_redraws_status(void **state)
{
    (void)state;
    setenv("SN_PROGRESS", "tty", 1);
    FILE *out = tmpfile(), *log = tmpfile();
    assert_non_null(out);
    assert_non_null(log);
    sn_progress p;
    sn_progress_init(&p, out, log);
    sn_progress_line(&p, "first"); /* no status yet: nothing to clear */
    sn_progress_status(&p, true, "S1");
    sn_progress_line(&p, "L%d", 1);
    assert_string_equal(contents(out), "first\n\rS1\033[K\r\033[KL1\n\rS1\033[K");
    sn_progress_done(&p);
    sn_progress_line(&p, "after"); /* the status is gone: not redrawn */
    assert_string_equal(contents(out),
                        "first\n\rS1\033[K\r\033[KL1\n\rS1\033[K\r\033[Kafter\n");
    assert_string_equal(contents(log), "first\nL1\nafter\n");
    fclose(out);
    fclose(log);
}

static void redraws_are_rate_limited(void **state)
{
    (void)state;
    setenv("SN_PROGRESS", "tty", 1);
    FILE *out = tmpfile();
    assert_non_null(out);
    sn_progress p;
    sn_progress_init(&p, out, NULL);
    sn_progress_status(&p, false, "a"); /* the first is drawn */
    sn_progress_status(&p, false, "b"); /* within 0.2 s: kept, not drawn */
    assert_string_equal(contents(out), "\ra\033[K");
    sn_progress_line(&p, "L"); /* redraws the newest status */
    assert_string_equal(contents(out), "\ra\033[K\r\033[KL\n\rb\033[K");
    sn_progress_status(&p, true, "c"); /* forced: drawn at once */
    assert_string_equal(contents(out), "\ra\033[K\r\033[KL\n\rb\033[K\rc\033[K");
    sleep_ms(250);
    sn_progress_status(&p, false, "d"); /* after the interval: drawn */
    assert_string_equal(contents(out), "\ra\033[K\r\033[KL\n\rb\033[K\rc\033[K\rd\033[K");
    fclose(out);
}

static void no_out_still_logs(void **state)
{
    (void)state;
    setenv("SN_PROGRESS", "tty", 1);
    FILE *log = tmpfile();
    assert_non_null(log);
    sn_progress p;
    sn_progress_init(&p, NULL, log); /* e.g. --quiet */
    assert_false(p.tty);
    sn_progress_status(&p, true, "status");
    sn_progress_line(&p, "line");
    sn_progress_done(&p);
    assert_string_equal(contents(log), "line\n");
    fclose(log);
}

/* A pseudo-terminal pair: *master to read, a raw slave as a stream. */
static FILE *open_pty(int *master, int cols)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(*master >= 0);
    assert_int_equal(grantpt(*master), 0);
    assert_int_equal(unlockpt(*master), 0);
    int slave = open(ptsname(*master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    struct termios t;
    assert_int_equal(tcgetattr(slave, &t), 0);
    cfmakeraw(&t);
    assert_int_equal(tcsetattr(slave, TCSANOW, &t), 0);
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    assert_int_equal(ioctl(slave, TIOCSWINSZ, &ws), 0);
    FILE *f = fdopen(slave, "w");
    assert_non_null(f);
    return f;
}

/* What the terminal received: waits for want bytes (up to 2 s). */
static const char *read_pty(int master, size_t want)
{
    static char buf[1024];
    size_t n = 0;
    struct pollfd pfd = {.fd = master, .events = POLLIN};
    while (n < want && n < sizeof buf - 1 && poll(&pfd, 1, 2000) > 0) {
        ssize_t r = read(master, buf + n, sizeof buf - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

static void terminal_detection_and_width(void **state)
{
    (void)state;
    int master;
    FILE *term = open_pty(&master, 12);
    sn_progress p;
    sn_progress_init(&p, term, NULL);
    assert_true(p.tty);
    /* the window's width (12), not COLUMNS (20) */
    sn_progress_status(&p, true, "abcdefghijklmnopqrstuvwxyz");
    assert_string_equal(read_pty(master, 15), "\rabcdefghijk\033[K");

    setenv("TERM", "dumb", 1);
    sn_progress_init(&p, term, NULL);
    assert_false(p.tty);
    unsetenv("TERM");
    sn_progress_init(&p, term, NULL);
    assert_false(p.tty);
    setenv("TERM", "xterm", 1);
    setenv("SN_PROGRESS", "plain", 1);
    sn_progress_init(&p, term, NULL);
    assert_false(p.tty);
    setenv("SN_PROGRESS", "auto", 1); /* anything else: detected */
    sn_progress_init(&p, term, NULL);
    assert_true(p.tty);
    fclose(term);
    close(master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(plain_mode_writes_only_lines, env_reset),
        cmocka_unit_test_setup(tty_mode_redraws_in_place_cut_to_width, env_reset),
        cmocka_unit_test_setup(utf8_is_cut_between_code_points, env_reset),
        cmocka_unit_test_setup(line_clears_and_redraws_status, env_reset),
        cmocka_unit_test_setup(redraws_are_rate_limited, env_reset),
        cmocka_unit_test_setup(no_out_still_logs, env_reset),
        cmocka_unit_test_setup(terminal_detection_and_width, env_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
