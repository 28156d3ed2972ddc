#include "mpi/coord.h"

#include <mpi.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "mpi/check.h"
#include "src/util.h"

enum { TAG_RESULT = 0x5e01, TAG_ERROR = 0x5e02, TAG_WORK = 0x5e03, TAG_STOP = 0x5e04 };

/* RESULT indices that are not candidates */
enum { INDEX_READY = -1, INDEX_STOP_REQUEST = -2 };

/* recv_result without waiting: no RESULT pending */
enum { NONE_PENDING = 2 };

typedef struct result_msg {
    int32_t index, status, signal;
    double values[SN_COORD_MAX_VALUES];
} result_msg;

typedef struct work_msg {
    int32_t index;
    char subnet[SN_SUBNET_STRLEN];
} work_msg;

/* Waiting ranks poll: a message, then a signal, then a short sleep (far
 * shorter than an evaluation; it also leaves the core to busy ranks). */
static void nap(void)
{
    struct timespec t = {.tv_sec = 0, .tv_nsec = 1000000};
    nanosleep(&t, NULL);
}

/* Evaluator ranks: the signal caught here and not yet reported (0: none);
 * it counts as reported from now on. */
static int take_signal(sn_coord *c)
{
    if (c->reported || !c->stop_poll) return 0;
    const int sig = c->stop_poll();
    if (sig) c->reported = true;
    return sig;
}

/* Evaluator ranks between candidates: sends a stop request for a signal
 * caught and not yet reported. */
static void report_signal(sn_coord *c)
{
    const int sig = take_signal(c);
    if (!sig) return;
    result_msg r = {.index = INDEX_STOP_REQUEST, .signal = sig};
    SN_MPI(MPI_Send(&r, (int)sizeof r, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD));
    c->requests++;
}

void sn_coord_init(sn_coord *c, const sn_space *s, int n_values, int k, sn_eval_fn eval,
                   void *ctx, sn_stop_poll_fn stop_poll)
{
    SN_CHECK(n_values >= 1 && n_values <= SN_COORD_MAX_VALUES && k >= 1);
    *c = (sn_coord){.space = s, .n_values = n_values, .group = k, .eval = eval, .ctx = ctx,
                    .stop_poll = stop_poll, .stop_rank = -1};
    int rank;
    SN_MPI(MPI_Comm_size(MPI_COMM_WORLD, &c->size));
    SN_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    SN_CHECK(c->size == 1 || (c->size - 1) % k == 0);
    const int color = rank == 0 ? 0 : 1 + (rank - 1) / k;
    SN_MPI(MPI_Comm_split(MPI_COMM_WORLD, color, rank, &c->comm));
}

void sn_coord_free(sn_coord *c)
{
    int rank, sent = c->requests, total = 0;
    SN_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) sent = 0;
    SN_MPI(MPI_Reduce(&sent, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD));
    for (; rank == 0 && c->requests < total; c->requests++) {
        result_msg r;
        SN_MPI(MPI_Recv(&r, (int)sizeof r, MPI_BYTE, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD,
                        MPI_STATUS_IGNORE));
        SN_CHECK(r.index == INDEX_STOP_REQUEST);
    }
    if (c->comm != MPI_COMM_NULL) SN_MPI(MPI_Comm_free(&c->comm));
}

int sn_coord_group_rank(const sn_coord *c)
{
    int r;
    SN_MPI(MPI_Comm_rank(c->comm, &r));
    return r;
}

bool sn_coord_leader(const sn_coord *c) { return sn_coord_group_rank(c) == 0; }

/* Ranks of the world that lead an evaluator group: 1, 1 + k, ... */
static int n_leaders(const sn_coord *c) { return c->size == 1 ? 0 : (c->size - 1) / c->group; }
static int leader_rank(const sn_coord *c, int g) { return 1 + g * c->group; }

int sn_coord_group_agree(sn_coord *c, int rc, char *err, size_t errlen)
{
    int size, rank;
    SN_MPI(MPI_Comm_size(c->comm, &size));
    SN_MPI(MPI_Comm_rank(c->comm, &rank));
    int first = rc != SN_OK ? rank : size;
    SN_MPI(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, c->comm));
    if (first == size) return SN_OK;
    char msg[SN_COORD_MSG];
    snprintf(msg, sizeof msg, "%s", rank == first ? err : "");
    SN_MPI(MPI_Bcast(msg, SN_COORD_MSG, MPI_CHAR, first, c->comm));
    msg[SN_COORD_MSG - 1] = '\0';
    snprintf(err, errlen, "%s", msg);
    return SN_ERR;
}

typedef struct group_msg {
    int32_t command, status;
    char subnet[SN_SUBNET_STRLEN];
} group_msg;

/* The group's candidates go by a non-blocking broadcast (which matches
 * only non-blocking ones) so that the other ranks can poll for signals
 * while they wait. */
void sn_coord_group_send(sn_coord *c, const sn_subnet *net, int status)
{
    group_msg g = {.command = net != NULL, .status = status};
    if (net) sn_subnet_format(net, g.subnet, sizeof g.subnet);
    MPI_Request rq;
    SN_MPI(MPI_Ibcast(&g, (int)sizeof g, MPI_BYTE, 0, c->comm, &rq));
    SN_MPI(MPI_Wait(&rq, MPI_STATUS_IGNORE));
}

bool sn_coord_group_recv(sn_coord *c, sn_subnet *net, int *status)
{
    group_msg g;
    MPI_Request rq;
    SN_MPI(MPI_Ibcast(&g, (int)sizeof g, MPI_BYTE, 0, c->comm, &rq));
    for (int got = 0;;) {
        SN_MPI(MPI_Test(&rq, &got, MPI_STATUS_IGNORE));
        if (got) break;
        report_signal(c);
        nap();
    }
    g.subnet[sizeof g.subnet - 1] = '\0';
    *status = g.status;
    if (!g.command) return false;
    /* the leader formatted it from a valid sub-network */
    SN_CHECK(sn_subnet_parse(c->space, g.subnet, net, NULL, 0) == SN_OK);
    return true;
}

static void send_result(const result_msg *r)
{
    SN_MPI(MPI_Send(r, (int)sizeof *r, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD));
}

static void send_error(const char *msg)
{
    char buf[SN_COORD_MSG];
    snprintf(buf, sizeof buf, "%s", msg);
    SN_MPI(MPI_Send(buf, SN_COORD_MSG, MPI_CHAR, 0, TAG_ERROR, MPI_COMM_WORLD));
}

int sn_coord_serve(sn_coord *c, int load_rc, char *err, size_t errlen)
{
    result_msg r = {.index = INDEX_READY, .status = load_rc != SN_OK, .signal = take_signal(c)};
    send_result(&r);
    if (load_rc != SN_OK) send_error(err);
    for (;;) {
        MPI_Status st;
        for (int any = 0;;) {
            SN_MPI(MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &any, &st));
            if (any) break;
            report_signal(c);
            nap();
        }
        if (st.MPI_TAG == TAG_STOP) {
            int32_t status;
            SN_MPI(MPI_Recv(&status, 1, MPI_INT32_T, 0, TAG_STOP, MPI_COMM_WORLD,
                            MPI_STATUS_IGNORE));
            sn_coord_group_send(c, NULL, status);
            if (status == SN_COORD_END_DONE) return SN_OK;
            if (status == SN_COORD_END_STOPPED) return SN_COORD_STOPPED;
            /* the coordinator prints the reason; keep ours if we had one */
            if (load_rc == SN_OK) sn_errf(err, errlen, "stopped by the coordinator");
            return SN_ERR;
        }
        SN_CHECK(st.MPI_TAG == TAG_WORK);
        work_msg w;
        SN_MPI(MPI_Recv(&w, (int)sizeof w, MPI_BYTE, 0, TAG_WORK, MPI_COMM_WORLD,
                        MPI_STATUS_IGNORE));
        w.subnet[sizeof w.subnet - 1] = '\0';
        sn_subnet net;
        r = (result_msg){.index = w.index};
        int rc = sn_subnet_parse(c->space, w.subnet, &net, err, errlen);
        if (rc == SN_OK) rc = c->eval(c->ctx, &net, r.values, err, errlen);
        r.status = rc != SN_OK;
        r.signal = take_signal(c);
        send_result(&r);
        if (rc != SN_OK) send_error(err);
    }
}

/* Rank 0: notes the first signal, caught by world rank `rank`. */
static void note_signal(sn_coord *c, int sig, int rank)
{
    if (sig && !c->stop_sig) {
        c->stop_sig = sig;
        c->stop_rank = rank;
    }
}

/* Rank 0: notes a signal caught here. */
static void poll_own(sn_coord *c)
{
    if (!c->stop_sig && c->stop_poll) note_signal(c, c->stop_poll(), 0);
}

/* Receives one RESULT (and its ERROR) from any evaluator, noting the
 * signals of stop requests and results on the way (stop requests are
 * consumed; a RESULT of a candidate or of `ready` is returned).  With
 * wait false, returns NONE_PENDING at once if none is pending.  *from
 * gets the sender's rank.  SN_ERR with "evaluator rank R: ..." when it
 * reports a failure. */
static int recv_result(sn_coord *c, bool wait, result_msg *r, int *from, char *err,
                       size_t errlen)
{
    MPI_Status st;
    for (;;) {
        int any = 0;
        SN_MPI(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &any, &st));
        if (!any) {
            poll_own(c);
            if (!wait) return NONE_PENDING;
            nap();
            continue;
        }
        SN_MPI(MPI_Recv(r, (int)sizeof *r, MPI_BYTE, st.MPI_SOURCE, TAG_RESULT, MPI_COMM_WORLD,
                        MPI_STATUS_IGNORE));
        note_signal(c, r->signal, st.MPI_SOURCE);
        if (r->index != INDEX_STOP_REQUEST) break;
        c->requests++;
    }
    *from = st.MPI_SOURCE;
    if (r->status == 0) return SN_OK;
    char msg[SN_COORD_MSG];
    SN_MPI(MPI_Recv(msg, SN_COORD_MSG, MPI_CHAR, *from, TAG_ERROR, MPI_COMM_WORLD,
                    MPI_STATUS_IGNORE));
    msg[SN_COORD_MSG - 1] = '\0';
    return sn_errf(err, errlen, "evaluator rank %d: %s", *from, msg);
}

int sn_coord_wait_ready(sn_coord *c, char *err, size_t errlen)
{
    int rc = SN_OK;
    for (int i = 0; i < n_leaders(c); i++) {
        result_msg r;
        int from;
        char e[SN_COORD_MSG];
        if (recv_result(c, true, &r, &from, e, sizeof e) != SN_OK && rc == SN_OK) {
            rc = SN_ERR;
            snprintf(err, errlen, "%s", e);
        }
    }
    if (rc != SN_OK) sn_coord_stop(c, SN_COORD_END_FAILED);
    return rc;
}

static void send_work(int to, int index, const sn_subnet *net)
{
    work_msg w = {.index = index};
    sn_subnet_format(net, w.subnet, sizeof w.subnet);
    SN_MPI(MPI_Send(&w, (int)sizeof w, MPI_BYTE, to, TAG_WORK, MPI_COMM_WORLD));
}

int sn_coord_stop_signal(sn_coord *c, int *rank)
{
    if (c->size > 1) {
        /* with nobody busy only stop requests can be pending, and
         * recv_result consumes those */
        result_msg r;
        int from;
        char e[SN_COORD_MSG];
        const int rc = recv_result(c, false, &r, &from, e, sizeof e);
        SN_CHECK(rc == NONE_PENDING);
    }
    poll_own(c);
    if (rank) *rank = c->stop_rank;
    return c->stop_sig;
}

/* The first i >= from with !done[i] (n if none). */
static int next_todo(const bool *done, int n, int from)
{
    while (from < n && done[from]) from++;
    return from;
}

int sn_coord_evaluate(sn_coord *c, const sn_subnet *nets, int n, double *values, bool *done,
                      char *err, size_t errlen)
{
    const int nv = c->n_values;
    int next = next_todo(done, n, 0), busy = 0;
    if (c->size == 1) {
        for (; next < n; next = next_todo(done, n, next + 1)) {
            if (sn_coord_stop_signal(c, NULL)) return SN_COORD_STOPPED;
            if (c->eval(c->ctx, &nets[next], values + (size_t)next * nv, err, errlen) != SN_OK)
                return SN_ERR;
            done[next] = true;
        }
        return SN_OK;
    }
    sn_coord_stop_signal(c, NULL);
    for (int g = 0; g < n_leaders(c) && next < n && !c->stop_sig; g++, busy++) {
        send_work(leader_rank(c, g), next, &nets[next]);
        next = next_todo(done, n, next + 1);
    }
    while (busy > 0) {
        result_msg r;
        int from;
        if (recv_result(c, true, &r, &from, err, errlen) != SN_OK) {
            sn_coord_stop(c, SN_COORD_END_FAILED);
            return SN_ERR;
        }
        busy--;
        SN_CHECK(r.index >= 0 && r.index < n && !done[r.index]);
        memcpy(values + (size_t)r.index * nv, r.values, (size_t)nv * sizeof(double));
        done[r.index] = true;
        if (next < n && !c->stop_sig) {
            send_work(from, next, &nets[next]);
            next = next_todo(done, n, next + 1);
            busy++;
        }
    }
    return next_todo(done, n, 0) < n ? SN_COORD_STOPPED : SN_OK;
}

void sn_coord_stop(sn_coord *c, int status)
{
    if (c->stopped) return;
    c->stopped = true;
    int32_t s = status;
    for (int g = 0; g < n_leaders(c); g++)
        SN_MPI(MPI_Send(&s, 1, MPI_INT32_T, leader_rank(c, g), TAG_STOP, MPI_COMM_WORLD));
}
