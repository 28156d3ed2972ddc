#include "src/stop.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t n_int;

static void on_signal(int sig)
{
    if (sig == SIGINT && ++n_int > 1) _exit(130); /* Ctrl-C twice: now */
    if (!stop_sig) stop_sig = sig;
}

void sn_stop_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* a signal must not fail an I/O call */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int sn_stop_signal(void) { return (int)stop_sig; }

void sn_stop_raise(int sig)
{
    if (!stop_sig) stop_sig = sig;
}

const char *sn_stop_name(int sig)
{
    static char buf[24];
    switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: snprintf(buf, sizeof buf, "signal %d", sig); return buf;
    }
}
