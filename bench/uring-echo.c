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
 * With --threads N it is also the no-JavaScript control of the workers case
 * (bench/README.md, "Placement"): N threads, each with everything of its own
 * (ring, buffer ring and pool, connections, and an SO_REUSEPORT listener on
 * the shared port), nothing shared and no cross-thread traffic, the layout of
 * ringline's RinglineWorkers in reusePort mode. --pin holds thread i on the
 * i-th allowed CPU (modulo their count), as RinglineWorkers' pin does.
 *
 * Build:  gcc -O2 -Wall -pthread -o bench/bin/uring-echo bench/uring-echo.c -luring
 *         (bench/run.mjs does this automatically)
 * Run:    uring-echo <port> [--threads N] [--pin]   (binds 127.0.0.1:<port>)
 * Ready:  prints "c-uring: N workers (reusePort), thread ids a,b" and then
 *         "listening on 127.0.0.1:<port>" on stdout once every thread listens.
 * Stop:   SIGINT or SIGTERM; exits 0. Each thread then prints on stderr what
 *         it did, in the shape of ringline's shutdown summary so the bench
 *         reads both alike: "c-uring worker <i>: cqes=.. submitted=..
 *         wakeups=.. bytesIn=.." (wakeups: the thread's voluntary context
 *         switches, i.e. how often it slept waiting for completions).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
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

struct worker;

struct conn {
    struct worker *w;
    int fd;
    int recv_armed;       /* multishot recv outstanding */
    int send_inflight;    /* one send SQE outstanding */
    int eof;              /* peer finished sending: close once drained */
    int dead;             /* error: stop echoing, close once ops complete */
    int need_rearm;       /* recv ended with -ENOBUFS; waiting for buffers */
    int q_head, q_tail;   /* queue of buffer ids waiting to be sent, -1 = empty */
    struct conn *rearm_next;
};

/* One thread's server: it shares nothing with the other threads. */
struct worker {
    /* Per-buffer state. A buffer is either in the kernel's ring or owned by
     * exactly one connection's send queue, so the queue links live here and
     * a connection costs only its small struct. */
    int buf_next[NBUFS];
    unsigned buf_len[NBUFS], buf_off[NBUFS];

    struct io_uring ring;
    struct io_uring_buf_ring *br;
    unsigned char *bufs;
    int returned_pending;         /* buffers added but not yet published */
    /* Connections waiting for buffers, FIFO so that under buffer exhaustion
     * the longest-starved connection is re-armed first. */
    struct conn *rearm_head, **rearm_tail;
    int listen_fd;
    int id, cpu;                  /* cpu < 0: not pinned */
    long tid;                     /* kernel thread id, printed for the bench */
    pthread_t thread;
    /* Counters for the summary line. */
    unsigned long long cqes, submitted, bytes_in;
};

/* Set by the main thread on SIGINT/SIGTERM; it then interrupts every worker's
 * wait with SIGUSR1 (no SA_RESTART, so io_uring_enter returns -EINTR). */
static volatile sig_atomic_t stop;
static int port;

static void on_wake(int sig) { (void)sig; }

static struct io_uring_sqe *get_sqe(struct worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) {                           /* SQ full: flush and retry */
        int n = io_uring_submit(&w->ring);
        if (n > 0) w->submitted += (unsigned)n;
        sqe = io_uring_get_sqe(&w->ring);
    }
    if (!sqe) { fprintf(stderr, "uring-echo: no SQE available\n"); exit(1); }
    return sqe;
}

static void arm_accept(struct worker *w)
{
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
    c->recv_armed = 1;
}

static void submit_send(struct conn *c)
{
    struct worker *w = c->w;
    int bid = c->q_head;
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_send(sqe, c->fd, w->bufs + (size_t)bid * BUF_SIZE + w->buf_off[bid],
                       w->buf_len[bid] - w->buf_off[bid], MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
    c->send_inflight = 1;
}

/* Hand a buffer back to the kernel. Publishing (advancing the ring tail) is
 * batched once per loop iteration. */
static void buf_return(struct worker *w, int bid)
{
    io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), w->returned_pending);
    w->returned_pending++;
}

static void conn_maybe_free(struct conn *c)
{
    if (c->recv_armed || c->send_inflight || c->need_rearm) return;
    if (!(c->dead || (c->eof && c->q_head < 0))) return;
    for (int bid = c->q_head; bid >= 0; bid = c->w->buf_next[bid]) buf_return(c->w, bid);
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
        struct worker *w = c->w;
        struct conn **pp = &w->rearm_head;
        while (*pp && *pp != c) pp = &(*pp)->rearm_next;
        if (*pp) *pp = c->rearm_next;
        if (w->rearm_tail == &c->rearm_next) w->rearm_tail = pp;
        c->need_rearm = 0;
    }
    conn_maybe_free(c);
}

static void on_accept(struct worker *w, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE) && !stop) arm_accept(w);
    if (cqe->res < 0) {
        if (cqe->res != -EAGAIN && cqe->res != -ECONNABORTED && cqe->res != -EINTR)
            fprintf(stderr, "uring-echo: accept: %s\n", strerror(-cqe->res));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) { close(cqe->res); return; }
    c->w = w;
    c->fd = cqe->res;
    c->q_head = c->q_tail = -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    arm_recv(c);
}

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    struct worker *w = c->w;
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) c->recv_armed = 0;

    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->dead) {                        /* data after a failure: drop it */
            buf_return(w, bid);
            if (!more) conn_maybe_free(c);
            return;
        }
        w->bytes_in += (unsigned)cqe->res;
        w->buf_len[bid] = (unsigned)cqe->res;
        w->buf_off[bid] = 0;
        w->buf_next[bid] = -1;
        if (c->q_tail >= 0) w->buf_next[c->q_tail] = bid; else c->q_head = bid;
        c->q_tail = bid;
        if (!c->send_inflight) submit_send(c);
        if (!more) arm_recv(c);               /* kernel ended the multishot */
        return;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER)     /* defensive: never leak a buffer */
        buf_return(w, (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));

    if (cqe->res == -ENOBUFS) {
        /* Every buffer is queued behind some send. Re-arming now would just
         * fail again; wait until sends complete and return buffers. */
        if (!c->dead && !c->need_rearm) {
            c->need_rearm = 1;
            c->rearm_next = NULL;
            *w->rearm_tail = c;
            w->rearm_tail = &c->rearm_next;
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
    struct worker *w = c->w;
    c->send_inflight = 0;
    if (c->dead) { conn_maybe_free(c); return; }
    if (cqe->res < 0) { conn_fail(c); return; }
    int bid = c->q_head;
    w->buf_off[bid] += (unsigned)cqe->res;
    if (w->buf_off[bid] < w->buf_len[bid]) {  /* short send: push the rest */
        submit_send(c);
        return;
    }
    c->q_head = w->buf_next[bid];
    if (c->q_head < 0) c->q_tail = -1;
    buf_return(w, bid);
    if (c->q_head >= 0) submit_send(c);
    else conn_maybe_free(c);
}

static int setup_buffers(struct worker *w)
{
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    w->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (w->br == MAP_FAILED) { perror("mmap buf ring"); return -1; }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)w->br, .ring_entries = NBUFS, .bgid = BGID };
    int rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (rc) { fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-rc)); return -1; }
    io_uring_buf_ring_init(w->br);
    /* Buffer memory is only touched when used, so RSS grows with the load,
     * not with NBUFS. */
    w->bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (w->bufs == MAP_FAILED) { perror("mmap buffers"); return -1; }
    for (int i = 0; i < NBUFS; i++) buf_return(w, i);
    io_uring_buf_ring_advance(w->br, w->returned_pending);
    w->returned_pending = 0;
    return 0;
}

/* Ring, buffers and listener of one worker, made on its own thread: the ring
 * is SINGLE_ISSUER, so the thread that submits must be the one that made it
 * (or the first to submit), and pinning first keeps its memory local. */
static int worker_setup(struct worker *w)
{
    w->tid = syscall(SYS_gettid);
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (rc) { fprintf(stderr, "uring-echo: pin to CPU %d: %s\n", w->cpu, strerror(rc)); return -1; }
    }
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
    if (rc == -EINVAL) {                  /* pre-6.1 kernel */
        fprintf(stderr, "uring-echo: DEFER_TASKRUN unsupported, using a plain ring\n");
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
    }
    if (rc) { fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc)); return -1; }
    w->rearm_tail = &w->rearm_head;
    if (setup_buffers(w)) return -1;

    /* One listener per thread on the same port: the kernel spreads incoming
     * connections over them (SO_REUSEPORT hashing), as with ringline's
     * reusePort workers. */
    w->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(w->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(w->listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(w->listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(w->listen_fd, 4096) < 0) {
        perror("uring-echo: bind/listen");
        return -1;
    }
    arm_accept(w);
    int n = io_uring_submit(&w->ring);
    if (n > 0) w->submitted += (unsigned)n;
    return 0;
}

static void worker_loop(struct worker *w)
{
    while (!stop) {
        int rc = io_uring_submit_and_wait(&w->ring, 1);
        if (rc > 0) w->submitted += (unsigned)rc;
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "uring-echo: io_uring_submit_and_wait: %s\n", strerror(-rc));
            break;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            struct conn *c = (struct conn *)(uintptr_t)(ud & ~OP_MASK);
            switch (ud & OP_MASK) {
            case OP_ACCEPT: on_accept(w, cqe); break;
            case OP_RECV: on_recv(c, cqe); break;
            case OP_SEND: on_send(c, cqe); break;
            }
        }
        io_uring_cq_advance(&w->ring, seen);
        w->cqes += seen;

        if (w->returned_pending) {
            io_uring_buf_ring_advance(w->br, w->returned_pending);
            w->returned_pending = 0;
            /* Buffers are back: resume connections that ran dry. */
            while (w->rearm_head) {
                struct conn *c = w->rearm_head;
                w->rearm_head = c->rearm_next;
                if (!w->rearm_head) w->rearm_tail = &w->rearm_head;
                c->need_rearm = 0;
                if (c->eof || c->dead) conn_maybe_free(c);
                else arm_recv(c);
            }
        }
    }
}

/* Startup handshake: the main thread prints "listening on" once every worker
 * has its listener, or exits 1 if one failed. */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static int ready_count, ready_failed;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int failed = worker_setup(w) != 0;
    pthread_mutex_lock(&ready_mu);
    ready_count++;
    ready_failed |= failed;
    pthread_cond_signal(&ready_cv);
    pthread_mutex_unlock(&ready_mu);
    if (failed) return NULL;
    worker_loop(w);
    /* Voluntary context switches of this thread: its sleeps in io_uring_enter
     * (the analogue of ringline's eventfd wake-ups). */
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    fprintf(stderr, "c-uring worker %d: cpu=%d cqes=%llu submitted=%llu wakeups=%ld involuntary=%ld bytesIn=%llu\n",
            w->id, w->cpu, w->cqes, w->submitted, ru.ru_nvcsw, ru.ru_nivcsw, w->bytes_in);
    close(w->listen_fd);
    io_uring_queue_exit(&w->ring);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: uring-echo <port> [--threads N] [--pin]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) usage();
    port = atoi(argv[1]);
    int nthreads = 1, pin = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--pin")) pin = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = atoi(argv[++i]);
            if (nthreads < 1 || nthreads > 256) { fprintf(stderr, "uring-echo: --threads must be 1..256\n"); return 1; }
        } else usage();
    }
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM are taken by the main thread with sigwait; the workers
     * inherit the mask, so only SIGUSR1 (the main thread's wake-up) reaches
     * them, and interrupts their wait. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    struct sigaction sa = { .sa_handler = on_wake };   /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);

    /* Thread i is pinned to the i-th CPU this process may run on. */
    cpu_set_t allowed;
    int cpus[CPU_SETSIZE], ncpus = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++) if (CPU_ISSET(c, &allowed)) cpus[ncpus++] = c;
    if (pin && ncpus == 0) { fprintf(stderr, "uring-echo: sched_getaffinity: %s\n", strerror(errno)); return 1; }

    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!ws) { perror("calloc"); return 1; }
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].cpu = pin ? cpus[i % ncpus] : -1;
        int rc = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
        if (rc) { fprintf(stderr, "uring-echo: pthread_create: %s\n", strerror(rc)); return 1; }
    }
    pthread_mutex_lock(&ready_mu);
    while (ready_count < nthreads) pthread_cond_wait(&ready_cv, &ready_mu);
    int failed = ready_failed;
    pthread_mutex_unlock(&ready_mu);
    if (failed) return 1;
    /* The same line as ringline's demo, so the bench tells worker threads
     * from the idle main thread alike for both. */
    printf("c-uring: %d workers (reusePort%s), thread ids ", nthreads, pin ? ", pinned" : "");
    for (int i = 0; i < nthreads; i++) printf(i ? ",%ld" : "%ld", ws[i].tid);
    printf("\nlistening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    int sig;
    sigwait(&stop_sigs, &sig);
    stop = 1;
    /* A worker between its check of `stop` and its wait would miss a single
     * wake-up: repeat it until each has exited. */
    for (int i = 0; i < nthreads; i++) {
        for (;;) {
            pthread_kill(ws[i].thread, SIGUSR1);
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_nsec += 20 * 1000 * 1000;
            if (t.tv_nsec >= 1000000000) { t.tv_sec++; t.tv_nsec -= 1000000000; }
            if (pthread_timedjoin_np(ws[i].thread, NULL, &t) == 0) break;
        }
    }
    fprintf(stderr, "uring-echo: stopped\n");
    return 0;
}
