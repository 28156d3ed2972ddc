#include "mpi/coord.h"

#include <mpi.h>
#include <stdint.h>
#include <string.h>

#include "mpi/check.h"
#include "src/util.h"

enum { TAG_RESULT = 0x5e01, TAG_ERROR = 0x5e02, TAG_WORK = 0x5e03, TAG_STOP = 0x5e04 };

typedef struct result_msg {
    int32_t index, status;
    double values[SN_COORD_MAX_VALUES];
} result_msg;

typedef struct work_msg {
    int32_t index;
    char subnet[SN_SUBNET_STRLEN];
} work_msg;

void sn_coord_init(sn_coord *c, const sn_space *s, int n_values, int k, sn_eval_fn eval,
                   void *ctx)
{
    SN_CHECK(n_values >= 1 && n_values <= SN_COORD_MAX_VALUES && k >= 1);
    *c = (sn_coord){.space = s, .n_values = n_values, .group = k, .eval = eval, .ctx = ctx};
    int rank;
    SN_MPI(MPI_Comm_size(MPI_COMM_WORLD, &c->size));
    SN_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    SN_CHECK(c->size == 1 || (c->size - 1) % k == 0);
    const int color = rank == 0 ? 0 : 1 + (rank - 1) / k;
    SN_MPI(MPI_Comm_split(MPI_COMM_WORLD, color, rank, &c->comm));
}

void sn_coord_free(sn_coord *c)
{
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

void sn_coord_group_send(sn_coord *c, const sn_subnet *net, int status)
{
    group_msg g = {.command = net != NULL, .status = status};
    if (net) sn_subnet_format(net, g.subnet, sizeof g.subnet);
    SN_MPI(MPI_Bcast(&g, (int)sizeof g, MPI_BYTE, 0, c->comm));
}

bool sn_coord_group_recv(sn_coord *c, sn_subnet *net, int *status)
{
    group_msg g;
    SN_MPI(MPI_Bcast(&g, (int)sizeof g, MPI_BYTE, 0, c->comm));
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
    result_msg r = {.index = -1, .status = load_rc != SN_OK};
    send_result(&r);
    if (load_rc != SN_OK) send_error(err);
    for (;;) {
        MPI_Status st;
        SN_MPI(MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
        if (st.MPI_TAG == TAG_STOP) {
            int32_t status;
            SN_MPI(MPI_Recv(&status, 1, MPI_INT32_T, 0, TAG_STOP, MPI_COMM_WORLD,
                            MPI_STATUS_IGNORE));
            sn_coord_group_send(c, NULL, status);
            if (status == 0) return SN_OK;
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
        send_result(&r);
        if (rc != SN_OK) send_error(err);
    }
}

/* Receives one RESULT (and its ERROR) from any evaluator; *from gets its
 * rank.  SN_ERR with "evaluator rank R: ..." when it reports a failure. */
static int recv_result(result_msg *r, int *from, char *err, size_t errlen)
{
    MPI_Status st;
    SN_MPI(MPI_Recv(r, (int)sizeof *r, MPI_BYTE, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD,
                    &st));
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
        if (recv_result(&r, &from, e, sizeof e) != SN_OK && rc == SN_OK) {
            rc = SN_ERR;
            snprintf(err, errlen, "%s", e);
        }
    }
    if (rc != SN_OK) sn_coord_stop(c, 1);
    return rc;
}

static void send_work(int to, int index, const sn_subnet *net)
{
    work_msg w = {.index = index};
    sn_subnet_format(net, w.subnet, sizeof w.subnet);
    SN_MPI(MPI_Send(&w, (int)sizeof w, MPI_BYTE, to, TAG_WORK, MPI_COMM_WORLD));
}

int sn_coord_evaluate(sn_coord *c, const sn_subnet *nets, int n, double *values, char *err,
                      size_t errlen)
{
    const int nv = c->n_values;
    if (c->size == 1) {
        for (int i = 0; i < n; i++)
            if (c->eval(c->ctx, &nets[i], values + (size_t)i * nv, err, errlen) != SN_OK)
                return SN_ERR;
        return SN_OK;
    }
    int next = 0, busy = 0;
    for (int g = 0; g < n_leaders(c) && next < n; g++, busy++, next++)
        send_work(leader_rank(c, g), next, &nets[next]);
    while (busy > 0) {
        result_msg r;
        int from;
        if (recv_result(&r, &from, err, errlen) != SN_OK) {
            sn_coord_stop(c, 1);
            return SN_ERR;
        }
        busy--;
        SN_CHECK(r.index >= 0 && r.index < n);
        memcpy(values + (size_t)r.index * nv, r.values, (size_t)nv * sizeof(double));
        if (next < n) {
            send_work(from, next, &nets[next]);
            next++;
            busy++;
        }
    }
    return SN_OK;
}

void sn_coord_stop(sn_coord *c, int status)
{
    if (c->stopped) return;
    c->stopped = true;
    int32_t s = status;
    for (int g = 0; g < n_leaders(c); g++)
        SN_MPI(MPI_Send(&s, 1, MPI_INT32_T, leader_rank(c, g), TAG_STOP, MPI_COMM_WORLD));
}
