/*
 * uring-echo.c — minimal liburing TCP echo server: the performance ceiling
 * for the ringline benchmarks (what a hand-written C io_uring loop gets on
 * this machine, with no JavaScript in the way).
 *
 * Design, kept deliberately close to what ringline's native layer does:
 *   - one ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
 *     (falls back to a plain ring on kernels that reject them);
 *   - one multishot accept on the listening socket;
 *   - one multishot recv per connection, drawing from a provided-buffer ring
 *     that is mmap'ed and registered by hand (liburing 2.3 has no
 *     io_uring_setup_buf_ring);
 *   - the echo is sent straight out of the provided buffer, and the buffer
 *     goes back to the ring only when its send has completed (no copy);
 *   - sends are ordered per connection: one send in flight, the rest queued
 *     in arrival order; short sends resubmit the remainder;
 *   - a recv that ends (-ENOBUFS, or a CQE without IORING_CQE_F_MORE) is
 *     re-armed; after -ENOBUFS only once buffers have been returned.
 *
 * Build:  gcc -O2 -Wall -o bench/bin/uring-echo bench/uring-echo.c -luring
 *         (bench/run.mjs does this automatically)
 * Run:    uring-echo <port>          (binds 127.0.0.1:<port>)
 * Ready:  prints "listening on 127.0.0.1:<port>" on stdout.
 * Stop:   SIGINT or SIGTERM; exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_ENTRIES 4096
#define CQ_ENTRIES (RING_ENTRIES * 4)   /* multishot ops post many CQEs per SQE */
#define BGID 0
/* Overridable so tests can build a tiny pool and force -ENOBUFS. */
#ifndef NBUFS
#define NBUFS 1024                      /* power of two: buffer ring requirement */
#endif
#ifndef BUF_SIZE
#define BUF_SIZE (16 * 1024)            /* 16 MiB pool, shared by all connections */
#endif

/* user_data = pointer | op; struct conn is 8-byte aligned so the low bits
 * are free. The accept has no connection and uses a NULL pointer. */
enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2 };
#define OP_MASK 3ull

struct conn {
    int fd;
    int recv_armed;       /* multishot recv outstanding */
    int send_inflight;    /* one send SQE outstanding */
    int eof;              /* peer finished sending: close once drained */
    int dead;             /* error: stop echoing, close once ops complete */
    int need_rearm;       /* recv ended with -ENOBUFS; waiting for buffers */
    int q_head, q_tail;   /* queue of buffer ids waiting to be sent, -1 = empty */
    struct conn *rearm_next;
};

/* Per-buffer state. A buffer is either in the kernel's ring or owned by
 * exactly one connection's send queue, so the queue links live here and a
 * connection costs only its small struct. */
static int buf_next[NBUFS];
static unsigned buf_len[NBUFS], buf_off[NBUFS];

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static unsigned char *bufs;
static int returned_pending;      /* buffers added but not yet published */
/* Connections waiting for buffers, FIFO so that under buffer exhaustion
 * the longest-starved connection is re-armed first. */
static struct conn *rearm_head, **rearm_tail = &rearm_head;
static volatile sig_atomic_t stop;
static int listen_fd;

static void on_signal(int sig) { (void)sig; stop = 1; }

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {                           /* SQ full: flush and retry */
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    if (!sqe) { fprintf(stderr, "uring-echo: no SQE available\n"); exit(1); }
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
    c->recv_armed = 1;
}

static void submit_send(struct conn *c)
{
    int bid = c->q_head;
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, c->fd, bufs + (size_t)bid * BUF_SIZE + buf_off[bid],
                       buf_len[bid] - buf_off[bid], MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
    c->send_inflight = 1;
}

/* Hand a buffer back to the kernel. Publishing (advancing the ring tail) is
 * batched once per loop iteration. */
static void buf_return(int bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), returned_pending);
    returned_pending++;
}

static void conn_maybe_free(struct conn *c)
{
    if (c->recv_armed || c->send_inflight || c->need_rearm) return;
    if (!(c->dead || (c->eof && c->q_head < 0))) return;
    for (int bid = c->q_head; bid >= 0; bid = buf_next[bid]) buf_return(bid);
    close(c->fd);
    free(c);
}

/* Abort a connection. shutdown() makes an armed multishot recv complete, so
 * every outstanding op comes back before the struct is freed. */
static void conn_fail(struct conn *c)
{
    if (!c->dead) {
        c->dead = 1;
        shutdown(c->fd, SHUT_RDWR);
    }
    if (c->need_rearm) {                  /* drop it from the re-arm queue */
        struct conn **pp = &rearm_head;
        while (*pp && *pp != c) pp = &(*pp)->rearm_next;
        if (*pp) *pp = c->rearm_next;
        if (rearm_tail == &c->rearm_next) rearm_tail = pp;
        c->need_rearm = 0;
    }
    conn_maybe_free(c);
}

static void on_accept(struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE) && !stop) arm_accept();
    if (cqe->res < 0) {
        if (cqe->res != -EAGAIN && cqe->res != -ECONNABORTED && cqe->res != -EINTR)
            fprintf(stderr, "uring-echo: accept: %s\n", strerror(-cqe->res));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) { close(cqe->res); return; }
    c->fd = cqe->res;
    c->q_head = c->q_tail = -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    arm_recv(c);
}

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) c->recv_armed = 0;

    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->dead) {                        /* data after a failure: drop it */
            buf_return(bid);
            if (!more) conn_maybe_free(c);
            return;
        }
        buf_len[bid] = (unsigned)cqe->res;
        buf_off[bid] = 0;
        buf_next[bid] = -1;
        if (c->q_tail >= 0) buf_next[c->q_tail] = bid; else c->q_head = bid;
        c->q_tail = bid;
        if (!c->send_inflight) submit_send(c);
        if (!more) arm_recv(c);               /* kernel ended the multishot */
        return;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER)     /* defensive: never leak a buffer */
        buf_return((int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));

    if (cqe->res == -ENOBUFS) {
        /* Every buffer is queued behind some send. Re-arming now would just
         * fail again; wait until sends complete and return buffers. */
        if (!c->dead && !c->need_rearm) {
            c->need_rearm = 1;
            c->rearm_next = NULL;
            *rearm_tail = c;
            rearm_tail = &c->rearm_next;
        }
        conn_maybe_free(c);
        return;
    }
    if (cqe->res == 0) {                      /* EOF: finish echoing, then close */
        c->eof = 1;
        conn_maybe_free(c);
        return;
    }
    if (cqe->res < 0 && !more) {              /* reset, shutdown after failure, ... */
        conn_fail(c);
        return;
    }
}

static void on_send(struct conn *c, struct io_uring_cqe *cqe)
{
    c->send_inflight = 0;
    if (c->dead) { conn_maybe_free(c); return; }
    if (cqe->res < 0) { conn_fail(c); return; }
    int bid = c->q_head;
    buf_off[bid] += (unsigned)cqe->res;
    if (buf_off[bid] < buf_len[bid]) {        /* short send: push the rest */
        submit_send(c);
        return;
    }
    c->q_head = buf_next[bid];
    if (c->q_head < 0) c->q_tail = -1;
    buf_return(bid);
    if (c->q_head >= 0) submit_send(c);
    else conn_maybe_free(c);
}

static int setup_buffers(void)
{
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) { perror("mmap buf ring"); return -1; }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = BGID };
    int rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc) { fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-rc)); return -1; }
    io_uring_buf_ring_init(br);
    /* Buffer memory is only touched when used, so RSS grows with the load,
     * not with NBUFS. */
    bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (bufs == MAP_FAILED) { perror("mmap buffers"); return -1; }
    for (int i = 0; i < NBUFS; i++) buf_return(i);
    io_uring_buf_ring_advance(br, returned_pending);
    returned_pending = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: uring-echo <port>\n");
        return 1;
    }
    int port = atoi(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    /* No SA_RESTART: the blocking io_uring_enter must return -EINTR. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (rc == -EINVAL) {                  /* pre-6.1 kernel */
        fprintf(stderr, "uring-echo: DEFER_TASKRUN unsupported, using a plain ring\n");
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    }
    if (rc) { fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc)); return 1; }
    if (setup_buffers()) return 1;

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 4096) < 0) {
        perror("uring-echo: bind/listen");
        return 1;
    }
    arm_accept();
    io_uring_submit(&ring);
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!stop) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "uring-echo: io_uring_submit_and_wait: %s\n", strerror(-rc));
            break;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            struct conn *c = (struct conn *)(uintptr_t)(ud & ~OP_MASK);
            switch (ud & OP_MASK) {
            case OP_ACCEPT: on_accept(cqe); break;
            case OP_RECV: on_recv(c, cqe); break;
            case OP_SEND: on_send(c, cqe); break;
            }
        }
        io_uring_cq_advance(&ring, seen);

        if (returned_pending) {
            io_uring_buf_ring_advance(br, returned_pending);
            returned_pending = 0;
            /* Buffers are back: resume connections that ran dry. */
            while (rearm_head) {
                struct conn *c = rearm_head;
                rearm_head = c->rearm_next;
                if (!rearm_head) rearm_tail = &rearm_head;
                c->need_rearm = 0;
                if (c->eof || c->dead) conn_maybe_free(c);
                else arm_recv(c);
            }
        }
    }
    close(listen_fd);
    io_uring_queue_exit(&ring);
    fprintf(stderr, "uring-echo: stopped\n");
    return 0;
}
