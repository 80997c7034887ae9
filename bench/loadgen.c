/*
 * loadgen.c — closed-loop TCP echo load generator for the ringline benchmarks.
 *
 * Independent of the runtime under test: plain C, epoll, non-blocking
 * sockets, one thread. Every byte that comes back is compared with what was
 * sent, so a server that drops, duplicates, reorders or corrupts data shows
 * up as errors instead of as a suspiciously good number.
 *
 * Build:  gcc -O2 -Wall -o bench/bin/loadgen bench/loadgen.c -lm
 *         (bench/run.mjs does this automatically)
 *         TLS build (bench/tls.mjs does this), against the system OpenSSL:
 *         gcc -O2 -Wall -DLOADGEN_TLS -o bench/bin/tls-loadgen bench/loadgen.c -lssl -lcrypto -lm
 * Run:    loadgen --port 9000 [--host 127.0.0.1] [--conns 50] [--size 64]
 *                 [--depth 1] [--warmup 1] [--duration 5] [--mode rr|bulk]
 *                 [--idle 0] [--label name]
 *         tls-loadgen --tls [--servername localhost] [--ca cert.pem]
 *                 [--mode rr|bulk|handshake] ... (same options otherwise)
 *
 * TLS (--tls, TLS build only): every connection is a TLS client (the
 * system's OpenSSL, non-blocking SSL over the same epoll loop), the echoed
 * plaintext is checked like plain bytes. Without --ca the server's
 * certificate is not verified (the client's verify cost is not what is
 * measured); with it, chain and host name (--servername, also the SNI) are.
 *
 * Modes
 *   rr    request/response: each connection keeps --depth requests of --size
 *         bytes in flight (pipelined). A request completes when its --size
 *         bytes have been echoed back; only then is the next one issued.
 *   bulk  streaming: each connection keeps up to --depth * --size bytes
 *         un-echoed and tops the window up at byte granularity as soon as
 *         echoed bytes arrive, writing in chunks of at most --size bytes.
 *         "requests" are then --size-byte chunks, which is what rps and the
 *         latency percentiles refer to.
 *   handshake (TLS only) full handshakes: each of --conns connections
 *         connects, completes a TLS handshake with a fresh SSL object (no
 *         session is offered, so never a resumption), sends close_notify,
 *         closes and starts over. "requests" are completed handshakes and
 *         the latency runs from connect() to the handshake's end.
 *   --idle N opens N extra connections first, proves each one with a 1-byte
 *         echo, then leaves them idle for the rest of the run (used to
 *         measure server memory per connection).
 *
 * Output
 *   stdout: exactly one JSON line with the results (nothing else).
 *   stderr: phase markers for the orchestrator, each on its own line —
 *           "#idle-ready N", "#warmup-start", "#measure-start",
 *           "#measure-end" — followed by a human-readable summary.
 *   Exit status: 0 when the run completed (check "errors"), 1 on a setup
 *   failure (bad options, could not connect). The JSON line is printed in
 *   both cases once options were parsed.
 *
 * Latency is recorded in nanoseconds in a log-linear histogram (128
 * sub-buckets per power of two, <0.8% relative error) and reported in µs.
 *
 * Where a tail comes from (rr and bulk modes):
 *   gaps       always: stretches of the measured window in which no request
 *              completed on any connection for >= 500 µs ("gaps_500us", of
 *              them >= 1 ms "gaps_1ms", their total "gap_ms", the longest
 *              "gap_max_us"). A server-wide pause (a GC, a preempted server)
 *              shows as gaps; every connection's requests wait through it.
 *   --per-conn one histogram per connection: the spread of the connections'
 *              p99 and request counts ("conn_p99_us" and "conn_requests":
 *              [min, median, max]) and the slowest connections on stderr. A
 *              scheduler that serves some connections later than others shows
 *              as a wide spread; a tail from pauses hits them all alike.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef LOADGEN_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#else
typedef struct ssl_st SSL;   /* never allocated: --tls is refused in the plain build */
#endif

/* ---------- expected-data pattern ----------------------------------------
 * Byte k of connection c's stream is pattern[(c_off + k) % PAT_PERIOD]. The
 * period is prime so request boundaries never line up with it, and about
 * 1 MiB so that a misplaced block of data (stale or early bytes, up to
 * ±512 KiB away) is identified unambiguously by explain_mismatch. The
 * buffer carries MAX_IO extra bytes so any read/write of up to MAX_IO bytes
 * is one contiguous slice (no wrap-around handling in the hot path). */
#define PAT_PERIOD 1048573u
#define MAX_IO (256u * 1024u)
static unsigned char pattern[PAT_PERIOD + MAX_IO];

static void pattern_init(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (unsigned i = 0; i < PAT_PERIOD; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;   /* xorshift64 */
        pattern[i] = (unsigned char)(x >> 24);
    }
    memcpy(pattern + PAT_PERIOD, pattern, MAX_IO);
}

static inline const unsigned char *pat_at(uint32_t off, uint64_t k)
{
    return pattern + (uint32_t)((off + k) % PAT_PERIOD);
}

/* ---------- latency histogram (ns) --------------------------------------- */
#define SUB_BITS 7
#define SUB (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
static uint64_t hist[NBUCKETS];
static uint64_t hist_total, hist_max;
static double hist_sum;

static inline unsigned bucket_of(uint64_t v)
{
    if (v < SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (unsigned)(v >> shift) - SUB;
}

static double bucket_mid(unsigned b)
{
    if (b < 2 * SUB) return (double)b;
    unsigned shift = b / SUB - 1;
    uint64_t mant = b % SUB + SUB;
    double lo = (double)(mant << shift), hi = (double)(((mant + 1) << shift) - 1);
    return (lo + hi) / 2;
}

static inline void hist_add(uint64_t ns)
{
    hist[bucket_of(ns)]++;
    hist_total++;
    hist_sum += (double)ns;
    if (ns > hist_max) hist_max = ns;
}

/* The p-quantile of a histogram of `total` values whose largest is `max`. */
#define PCT_US(h, total, max, p) __extension__({                               \
    double pct_ = (double)(max) / 1000.0;                                       \
    if (!(total)) pct_ = 0;                                                     \
    else {                                                                      \
        uint64_t rank_ = (uint64_t)ceil((p) * (double)(total)), cum_ = 0;       \
        if (rank_ < 1) rank_ = 1;                                               \
        for (unsigned b_ = 0; b_ < NBUCKETS; b_++) {                            \
            cum_ += (h)[b_];                                                    \
            if (cum_ >= rank_) {                                                \
                double v_ = bucket_mid(b_);                                     \
                pct_ = (v_ > (double)(max) ? (double)(max) : v_) / 1000.0;      \
                break;                                                          \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    pct_; })

static double hist_pct_us(double p) { return PCT_US(hist, hist_total, hist_max, p); }

/* Gaps: no request completed anywhere for >= GAP_NS (measured window only). */
#define GAP_NS 500000ull
static uint64_t last_done, gaps, gaps_1ms, gap_ns_total, gap_max;

static void note_done(uint64_t t)
{
    if (last_done && t - last_done >= GAP_NS) {
        uint64_t g = t - last_done;
        gaps++;
        if (g >= 1000000ull) gaps_1ms++;
        gap_ns_total += g;
        if (g > gap_max) gap_max = g;
    }
    last_done = t;
}

/* ---------- options ------------------------------------------------------ */
static const char *opt_host = "127.0.0.1";
static const char *opt_port = NULL;
static const char *opt_label = "";
static const char *opt_mode = "rr";
static const char *opt_servername = "localhost", *opt_ca = NULL;
static int opt_conns = 50, opt_depth = 1, opt_idle = 0, opt_tls, opt_per_conn;
static long opt_size = 64;
static double opt_warmup = 1.0, opt_duration = 5.0;
static int mode_bulk, mode_hs;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: loadgen --port P [--host H] [--conns N] [--size S] [--depth D]\n"
        "               [--warmup SECS] [--duration SECS] [--mode rr|bulk]\n"
        "               [--idle N] [--label NAME] [--per-conn]\n"
        "       (TLS build) --tls [--servername NAME] [--ca FILE] [--mode rr|bulk|handshake]\n");
}

/* ---------- connections --------------------------------------------------- */
struct conn {
    int fd;
    SSL *ssl;              /* --tls: the connection's client; NULL on plain TCP */
    int alive;
    int want_out;          /* EPOLLOUT currently registered */
    int idle;
    uint32_t pat_off;      /* where this connection's stream starts in pattern */
    uint64_t target;       /* bytes we want to have written so far */
    uint64_t sent;         /* bytes written */
    uint64_t recvd;        /* bytes read back (and verified) */
    uint64_t *ts;          /* issue time of chunk j at ts[j % ring] */
    uint64_t last_rx;      /* time of the last read that returned data */
    uint64_t hs_t0;        /* handshake mode: when this attempt's connect() started */
    uint32_t *hist;        /* --per-conn: this connection's latency histogram */
    uint64_t n_done, max_ns;
    int reported;          /* --per-conn: already listed among the slowest */
};

static struct conn *conns;
static int nconns_total;
static unsigned ts_ring;
static int epfd;

/* Counters; the measured ones are only bumped during the measure phase. */
static uint64_t m_requests, m_bytes;
static uint64_t err_corrupt, err_conn, err_stalled;
static int measuring, running = 1;
static volatile sig_atomic_t interrupted;

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void on_signal(int sig) { (void)sig; interrupted = 1; }

static struct addrinfo *resolve(void)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt_host, opt_port, &hints, &res);
    if (rc) {
        fprintf(stderr, "loadgen: cannot resolve %s:%s: %s\n", opt_host, opt_port, gai_strerror(rc));
        return NULL;
    }
    return res;
}

/* Blocking connect; connections are opened one after another before the
 * load starts, so the server's accept backlog never overflows (an overflow
 * would cost a 1 s SYN retransmit and skew the idle-memory case). */
static int connect_one(struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) { close(fd); return -1; }
    /* Small pipelined requests must not sit in Nagle's buffer. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---------- byte I/O: plain socket or TLS --------------------------------
 * io_read/io_write return the byte count, 0 on EOF (read), or one of these.
 * A TLS call may need the other direction first (OpenSSL's WANT_READ /
 * WANT_WRITE); it is then retried with the same (or a longer, moved) buffer,
 * which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows. */
#define IO_ERR (-1)
#define IO_WANT_READ (-2)
#define IO_WANT_WRITE (-3)

#ifdef LOADGEN_TLS
static SSL_CTX *tls_ctx;

static int tls_setup(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) return -1;
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read-ahead: one read() fetches a whole record (or several) instead of
     * one for its 5-byte header and one for its body (see io_read). */
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    if (opt_ca) {
        if (SSL_CTX_load_verify_locations(tls_ctx, opt_ca, NULL) != 1) return -1;
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

static SSL *tls_new(int fd)
{
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl) return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, opt_servername);
    if (opt_ca) SSL_set1_host(ssl, opt_servername);
    return ssl;
}

/* Maps an OpenSSL result (ret <= 0) to IO_*; EOF (close_notify, or a FIN
 * without one) is 0. */
static int tls_result(SSL *ssl, int ret)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ: return IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && errno == 0) return 0;
        /* fall through */
    default: {
        static int reported;
        unsigned long e = ERR_get_error();
        if (reported++ < 5 && e) fprintf(stderr, "loadgen: tls: %s\n", ERR_error_string(e, NULL));
        ERR_clear_error();
        return IO_ERR;
    }
    }
}

static void tls_free(SSL *ssl) { SSL_free(ssl); }
#else
static int tls_setup(void) { return -1; }
static void tls_free(SSL *ssl) { (void)ssl; }
#endif

static long io_write(struct conn *c, const void *buf, size_t n)
{
#ifdef LOADGEN_TLS
    if (c->ssl) {
        size_t w = 0;
        errno = 0;
        int ret = SSL_write_ex(c->ssl, buf, n, &w);
        return ret == 1 ? (long)w : tls_result(c->ssl, ret);
    }
#endif
    for (;;) {
        ssize_t w = write(c->fd, buf, n);
        if (w >= 0) return (long)w;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_WRITE : IO_ERR;
    }
}

/* TLS: SSL_read returns at most one record, so keep reading until the buffer
 * is full or OpenSSL needs more ciphertext; the caller then sees one large
 * read as on plain TCP (and tops up its window once, not per record).
 * Once `enough` bytes (all that is outstanding) are in and OpenSSL holds
 * nothing more, the read stops without the call that would only hit EAGAIN:
 * epoll is level-triggered, so whatever arrives later is announced again.
 * With read-ahead (tls_setup) a 64 B echo then costs one read() instead of
 * three (header, body, EAGAIN): the client's syscalls per request are what
 * bounded the small-message TLS cases (bench/TLS.md, "The load generator"). */
static long io_read(struct conn *c, void *buf, size_t cap, size_t enough)
{
#ifdef LOADGEN_TLS
    if (c->ssl) {
        size_t total = 0;
        while (total < cap) {
            size_t r = 0;
            errno = 0;
            int ret = SSL_read_ex(c->ssl, (char *)buf + total, cap - total, &r);
            if (ret == 1) {
                total += r;
                if (total >= enough && !SSL_has_pending(c->ssl)) break;
                continue;
            }
            int e = tls_result(c->ssl, ret);
            return total ? (long)total : e;
        }
        return (long)total;
    }
#endif
    (void)enough;
    for (;;) {
        ssize_t r = read(c->fd, buf, cap);
        if (r >= 0) return (long)r;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? IO_WANT_READ : IO_ERR;
    }
}

static void conn_kill(struct conn *c)
{
    if (!c->alive) return;
    c->alive = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) { tls_free(c->ssl); c->ssl = NULL; }
    close(c->fd);
}

/* One-byte echo on a fresh connection: proves the server accepted it and
 * set up its read path, which is what we want counted in its RSS. */
static int ping_one(struct conn *c, uint32_t off)
{
    unsigned char b;
    if (io_write(c, pat_at(off, 0), 1) != 1) return -1;
    if (io_read(c, &b, 1, 1) != 1) return -1;
    return b == *pat_at(off, 0) ? 0 : -2;
}

/* --tls, before the load: the handshake on the still-blocking socket (its
 * SO_RCVTIMEO bounds it), so a server that cannot complete one fails setup. */
static int tls_connect_blocking(struct conn *c)
{
#ifdef LOADGEN_TLS
    c->ssl = tls_new(c->fd);
    if (!c->ssl) return -1;
    int ret = SSL_connect(c->ssl);
    if (ret == 1) return 0;
    tls_result(c->ssl, ret);
#endif
    return -1;
}

static void set_out(struct conn *c, int on)
{
    if (c->want_out == on) return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Raise the send target and stamp the issue time of every chunk whose first
 * byte becomes eligible for sending. A chunk's latency runs from here until
 * its last byte has been echoed, so client-side queueing (socket buffer
 * full) is included, as it would be for a real client. */
static void raise_target(struct conn *c, uint64_t new_target, uint64_t t)
{
    uint64_t S = (uint64_t)opt_size;
    uint64_t j = (c->target + S - 1) / S;  /* first chunk starting at >= old target */
    for (; j * S < new_target; j++) c->ts[j % ts_ring] = t;
    c->target = new_target;
}

static void pump_out(struct conn *c)
{
    while (c->sent < c->target) {
        uint64_t want = c->target - c->sent;
        if (want > MAX_IO) want = MAX_IO;
        if (mode_bulk && want > (uint64_t)opt_size) want = (uint64_t)opt_size;
        long n = io_write(c, pat_at(c->pat_off, c->sent), want);
        if (n > 0) { c->sent += (uint64_t)n; continue; }
        if (n == IO_WANT_WRITE) { set_out(c, 1); return; }
        /* TLS wants a read first: EPOLLIN is always registered, and
         * on_readable calls pump_out again. */
        if (n == IO_WANT_READ) { set_out(c, 0); return; }
        err_conn++;
        conn_kill(c);
        return;
    }
    set_out(c, 0);
}

static unsigned char rbuf[MAX_IO];

/* Describe the first few bad reads on stderr. Besides the offset, look the
 * wrong bytes up in the pattern: if they are this stream's bytes from
 * another offset, the distance says whether data came back stale (a reused
 * buffer), duplicated or skipped, which points at the server bug. */
static void explain_mismatch(struct conn *c, uint64_t from, size_t n)
{
    static int reported;
    if (reported >= 5) return;
    reported++;
    size_t i = 0, limit = from >= c->sent ? 0 : (size_t)(c->sent - from);
    const unsigned char *want = pat_at(c->pat_off, from);
    if (limit > n) limit = n;
    while (i < limit && rbuf[i] == want[i]) i++;
    uint64_t at = from + i;
    fprintf(stderr, "loadgen: conn %d: bad echo at stream offset %llu (read of %zu bytes at %llu, sent %llu)",
            (int)(c - conns), (unsigned long long)at, n, (unsigned long long)from,
            (unsigned long long)c->sent);
    if (i == limit) { fprintf(stderr, ": more bytes came back than were sent\n"); return; }
    size_t probe = n - i < 16 ? n - i : 16;
    fprintf(stderr, ": expected %02x got %02x", want[i], rbuf[i]);
    if (probe >= 8) {
        for (uint32_t k = 0; k < PAT_PERIOD; k++) {
            if (memcmp(pattern + k, rbuf + i, probe) == 0) {
                long long d = (long long)k - (long long)((c->pat_off + at) % PAT_PERIOD);
                if (d > (long long)PAT_PERIOD / 2) d -= PAT_PERIOD;
                if (d < -(long long)PAT_PERIOD / 2) d += PAT_PERIOD;
                fprintf(stderr, "; they are the bytes %+lld from there in the stream"
                        " (or another connection's)", d);
                break;
            }
        }
    }
    fputc('\n', stderr);
}

static void on_readable(struct conn *c, uint64_t t)
{
    /* Everything outstanding (at least 1: a read that hits EOF still ends). */
    uint64_t outstanding = c->sent > c->recvd ? c->sent - c->recvd : 1;
    long n = io_read(c, rbuf, sizeof rbuf, outstanding < sizeof rbuf ? (size_t)outstanding : sizeof rbuf);
    if (n == IO_WANT_READ) return;
    if (n == IO_WANT_WRITE) { set_out(c, 1); return; }
    if (n < 0) {
        if (running) err_conn++;
        conn_kill(c);
        return;
    }
    if (n == 0) {                          /* server closed on us */
        if (running) err_conn++;
        conn_kill(c);
        return;
    }
    if (c->idle) {                         /* idle connections never get data */
        err_corrupt++;
        return;
    }
    /* More bytes back than we ever sent, or different bytes: the echo is
     * wrong. Count one error per read so a desynchronised stream doesn't
     * produce millions of errors, and keep going. */
    uint64_t from = c->recvd, to = c->recvd + (uint64_t)n;
    if (to > c->sent || memcmp(rbuf, pat_at(c->pat_off, from), (size_t)n) != 0) {
        err_corrupt++;
        explain_mismatch(c, from, (size_t)n);
    }
    c->recvd = to;
    c->last_rx = t;

    uint64_t S = (uint64_t)opt_size;
    int done = 0;
    for (uint64_t j = from / S; (j + 1) * S <= to; j++) {   /* completed chunks */
        if (measuring) {
            uint64_t ns = t - c->ts[j % ts_ring];
            hist_add(ns);
            m_requests++;
            done = 1;
            if (c->hist) {
                c->hist[bucket_of(ns)]++;
                c->n_done++;
                if (ns > c->max_ns) c->max_ns = ns;
            }
        }
    }
    if (done) note_done(t);
    if (measuring) m_bytes += (uint64_t)n;
    if (!running) return;

    uint64_t window = (uint64_t)opt_depth * S;
    uint64_t base = mode_bulk ? to : (to / S) * S;   /* rr: whole requests only */
    if (base + window > c->target) {
        raise_target(c, base + window, t);
        pump_out(c);
    } else if (c->ssl && c->sent < c->target) {
        pump_out(c);                       /* the TLS write waited for this read */
    }
    /* A full buffer: OpenSSL may hold more decrypted records that no
     * EPOLLIN will announce. */
    if (c->ssl && (size_t)n == sizeof rbuf && c->alive) on_readable(c, t);
}

/* ---------- handshake mode ------------------------------------------------ */
#ifdef LOADGEN_TLS
static struct addrinfo *hs_addr;

static void hs_events(struct conn *c, int want, int op)
{
    struct epoll_event ev = { .events = want == IO_WANT_WRITE ? EPOLLOUT : EPOLLIN, .data.ptr = c };
    epoll_ctl(epfd, op, c->fd, &ev);
}

/* A new attempt: non-blocking connect, then the handshake is driven by
 * hs_step from the first EPOLLOUT (the connect's completion) on. */
static void hs_start(struct conn *c, uint64_t t)
{
    c->hs_t0 = t;
    c->fd = socket(hs_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { err_conn++; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if ((connect(c->fd, hs_addr->ai_addr, hs_addr->ai_addrlen) < 0 && errno != EINPROGRESS) ||
        !(c->ssl = tls_new(c->fd))) {
        err_conn++;
        close(c->fd);
        return;
    }
    c->alive = 1;
    hs_events(c, IO_WANT_WRITE, EPOLL_CTL_ADD);
}

static void hs_step(struct conn *c, uint64_t t)
{
    errno = 0;
    int ret = SSL_do_handshake(c->ssl);
    if (ret != 1) {
        int want = tls_result(c->ssl, ret);
        if (want == IO_WANT_READ || want == IO_WANT_WRITE) { hs_events(c, want, EPOLL_CTL_MOD); return; }
        if (running) err_conn++;
        conn_kill(c);                      /* a refusing server: this slot stops */
        return;
    }
    if (measuring) {
        hist_add(t - c->hs_t0);
        m_requests++;
    }
    SSL_shutdown(c->ssl);                  /* close_notify; the server's is not awaited */
    conn_kill(c);
    if (running) hs_start(c, t);
}
#endif

/* ---------- main ------------------------------------------------------- */
static double now_s(void) { return (double)now_ns() / 1e9; }

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* --per-conn: [min, median, max] of the active connections' p99 (µs) and request counts. */
static double conn_p99[3];
static uint64_t conn_req[3];
static int conn_stats(void)
{
    int n = 0;
    double *p99 = calloc((size_t)nconns_total + 1, sizeof *p99);
    uint64_t *req = calloc((size_t)nconns_total + 1, sizeof *req);
    for (int i = 0; i < nconns_total; i++) {
        struct conn *c = &conns[i];
        if (!c->hist) continue;
        p99[n] = PCT_US(c->hist, c->n_done, c->max_ns, 0.99);
        req[n++] = c->n_done;
    }
    if (n > 0) {
        qsort(p99, (size_t)n, sizeof *p99, cmp_dbl);
        qsort(req, (size_t)n, sizeof *req, cmp_u64);
        conn_p99[0] = p99[0]; conn_p99[1] = p99[n / 2]; conn_p99[2] = p99[n - 1];
        conn_req[0] = req[0]; conn_req[1] = req[n / 2]; conn_req[2] = req[n - 1];
    }
    free(p99);
    free(req);
    return n;
}

static void report(double elapsed, int setup_failed)
{
    double rps = elapsed > 0 ? (double)m_requests / elapsed : 0;
    double mbps = elapsed > 0 ? (double)m_bytes / elapsed / 1e6 : 0;
    uint64_t errors = err_corrupt + err_conn + err_stalled + (setup_failed ? 1 : 0);
    double mean = hist_total ? hist_sum / (double)hist_total / 1000.0 : 0;

    printf("{\"label\":");
    json_str(stdout, opt_label);
    printf(",\"mode\":\"%s\",\"tls\":%s,\"host\":", opt_mode, opt_tls ? "true" : "false");
    json_str(stdout, opt_host);
    printf(",\"port\":%s,\"conns\":%d,\"idle\":%d,\"size\":%ld,\"depth\":%d"
           ",\"warmup_s\":%g,\"duration_s\":%g,\"elapsed_s\":%.4f"
           ",\"requests\":%llu,\"bytes\":%llu,\"rps\":%.1f,\"mbps\":%.3f"
           ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f"
           ",\"max_us\":%.1f,\"mean_us\":%.1f"
           ",\"gaps_500us\":%llu,\"gaps_1ms\":%llu,\"gap_ms\":%.3f,\"gap_max_us\":%.1f"
           ",\"errors\":%llu,\"corrupt\":%llu,\"conn_errors\":%llu,\"stalled\":%llu",
           opt_port, opt_conns, opt_idle, opt_size, opt_depth,
           opt_warmup, opt_duration, elapsed,
           (unsigned long long)m_requests, (unsigned long long)m_bytes, rps, mbps,
           hist_pct_us(0.50), hist_pct_us(0.90), hist_pct_us(0.99), hist_pct_us(0.999),
           (double)hist_max / 1000.0, mean,
           (unsigned long long)gaps, (unsigned long long)gaps_1ms, (double)gap_ns_total / 1e6,
           (double)gap_max / 1000.0,
           (unsigned long long)errors, (unsigned long long)err_corrupt,
           (unsigned long long)err_conn, (unsigned long long)err_stalled);
    int per = opt_per_conn && !setup_failed ? conn_stats() : 0;
    if (per > 0)
        printf(",\"conn_p99_us\":[%.1f,%.1f,%.1f],\"conn_requests\":[%llu,%llu,%llu]",
               conn_p99[0], conn_p99[1], conn_p99[2], (unsigned long long)conn_req[0],
               (unsigned long long)conn_req[1], (unsigned long long)conn_req[2]);
    printf("}\n");
    fflush(stdout);

    fprintf(stderr,
        "loadgen %s: %s conns=%d idle=%d size=%ld depth=%d  %.0f req/s  %.2f MB/s  "
        "p50=%.1fus p99=%.1fus p999=%.1fus  errors=%llu (corrupt=%llu conn=%llu stalled=%llu)\n",
        opt_label, opt_mode, opt_conns, opt_idle, opt_size, opt_depth,
        rps, mbps, hist_pct_us(0.50), hist_pct_us(0.99), hist_pct_us(0.999),
        (unsigned long long)errors, (unsigned long long)err_corrupt,
        (unsigned long long)err_conn, (unsigned long long)err_stalled);
    fprintf(stderr, "loadgen %s: gaps (no request completed for >= 500 us): %llu, of them >= 1 ms %llu, "
            "%.2f ms in all, longest %.1f us\n", opt_label, (unsigned long long)gaps,
            (unsigned long long)gaps_1ms, (double)gap_ns_total / 1e6, (double)gap_max / 1000.0);
    if (per > 0) {
        fprintf(stderr, "loadgen %s: per connection (%d): p99 %.1f / %.1f / %.1f us (min / median / max), "
                "requests %llu / %llu / %llu\n", opt_label, per, conn_p99[0], conn_p99[1], conn_p99[2],
                (unsigned long long)conn_req[0], (unsigned long long)conn_req[1], (unsigned long long)conn_req[2]);
        /* The three connections with the highest p99. */
        for (int k = 0; k < 3; k++) {
            int worst = -1;
            double wp = -1;
            for (int i = 0; i < nconns_total; i++) {
                struct conn *c = &conns[i];
                if (!c->hist || c->reported) continue;
                double p = PCT_US(c->hist, c->n_done, c->max_ns, 0.99);
                if (p > wp) { wp = p; worst = i; }
            }
            if (worst < 0) break;
            struct conn *c = &conns[worst];
            fprintf(stderr, "loadgen %s:   conn %d: p99 %.1f us, max %.1f us, %llu requests\n", opt_label,
                    worst, wp, (double)c->max_ns / 1000.0, (unsigned long long)c->n_done);
            c->reported = 1;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},   {"port", required_argument, 0, 'p'},
        {"conns", required_argument, 0, 'c'},  {"size", required_argument, 0, 's'},
        {"depth", required_argument, 0, 'd'},  {"warmup", required_argument, 0, 'w'},
        {"duration", required_argument, 0, 't'}, {"mode", required_argument, 0, 'm'},
        {"idle", required_argument, 0, 'i'},   {"label", required_argument, 0, 'l'},
        {"tls", no_argument, 0, 'T'},          {"servername", required_argument, 0, 'n'},
        {"ca", required_argument, 0, 'a'},     {"per-conn", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'H'},         {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = optarg; break;
        case 'c': opt_conns = atoi(optarg); break;
        case 's': opt_size = atol(optarg); break;
        case 'd': opt_depth = atoi(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 't': opt_duration = atof(optarg); break;
        case 'm': opt_mode = optarg; break;
        case 'i': opt_idle = atoi(optarg); break;
        case 'l': opt_label = optarg; break;
        case 'T': opt_tls = 1; break;
        case 'n': opt_servername = optarg; break;
        case 'a': opt_ca = optarg; break;
        case 'P': opt_per_conn = 1; break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!opt_port || opt_conns < 0 || opt_size < 1 || opt_depth < 1 || opt_idle < 0 ||
        opt_duration <= 0 || opt_warmup < 0 || (opt_conns == 0 && opt_idle == 0) ||
        (strcmp(opt_mode, "rr") && strcmp(opt_mode, "bulk") && strcmp(opt_mode, "handshake"))) {
        usage(stderr);
        return 1;
    }
    mode_bulk = !strcmp(opt_mode, "bulk");
    mode_hs = !strcmp(opt_mode, "handshake");
    if ((mode_hs && (!opt_tls || opt_idle)) || (opt_tls && tls_setup() != 0)) {
        fprintf(stderr, "loadgen: %s\n", mode_hs && !opt_tls ? "--mode handshake needs --tls"
                : mode_hs && opt_idle ? "--mode handshake takes no --idle"
#ifdef LOADGEN_TLS
                : "cannot set up the TLS client (--ca unreadable?)");
#else
                : "--tls needs the TLS build (gcc -DLOADGEN_TLS ... -lssl -lcrypto)");
#endif
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pattern_init();

    struct addrinfo *ai = resolve();
    if (!ai) { report(0, 1); return 1; }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    nconns_total = opt_idle + opt_conns;
    conns = calloc((size_t)nconns_total, sizeof *conns);
    ts_ring = (unsigned)opt_depth + 2;   /* at most depth+1 chunks are ever open */

    /* Idle connections first, so the orchestrator can read the server's RSS
     * with exactly N idle connections and no traffic. (Handshake mode opens
     * its connections in the load loop.) */
    for (int i = 0; i < (mode_hs ? 0 : nconns_total); i++) {
        struct conn *c = &conns[i];
        c->idle = i < opt_idle;
        /* Spread connections ~100 KiB apart in the pattern. */
        c->pat_off = (uint32_t)(((uint64_t)i * 104729u) % PAT_PERIOD);
        c->fd = connect_one(ai);
        if (c->fd < 0 || (opt_tls && tls_connect_blocking(c) != 0) ||
            (c->idle && ping_one(c, c->pat_off) != 0)) {
            fprintf(stderr, "loadgen: connection %d to %s:%s failed: %s\n", i, opt_host,
                    opt_port, strerror(errno));
            if (c->ssl) tls_free(c->ssl);
            if (c->fd >= 0) close(c->fd);
            report(0, 1);
            return 1;
        }
        set_nonblock(c->fd);
        c->alive = 1;
        if (!c->idle) c->ts = calloc(ts_ring, sizeof *c->ts);
        if (!c->idle && opt_per_conn) c->hist = calloc(NBUCKETS, sizeof *c->hist);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        if (i + 1 == opt_idle) fprintf(stderr, "#idle-ready %d\n", opt_idle);
    }

    /* Start the load: every active connection fills its window. */
    fprintf(stderr, "#warmup-start\n");
    uint64_t t0 = now_ns();
    for (int i = opt_idle; i < nconns_total; i++) {
#ifdef LOADGEN_TLS
        if (mode_hs) { hs_addr = ai; hs_start(&conns[i], t0); continue; }
#endif
        raise_target(&conns[i], (uint64_t)opt_depth * (uint64_t)opt_size, t0);
        pump_out(&conns[i]);
    }

    double t_measure = now_s() + opt_warmup, t_end = t_measure + opt_duration;
    double m_start = 0, m_end = 0;
    if (opt_warmup == 0) { measuring = 1; m_start = now_s(); fprintf(stderr, "#measure-start\n"); }

    struct epoll_event evs[512];
    while (running && !interrupted) {
        double now = now_s();
        if (!measuring && now >= t_measure) {
            measuring = 1;
            m_start = now;
            fprintf(stderr, "#measure-start\n");
        }
        if (measuring && now >= t_end) break;
        double deadline = measuring ? t_end : t_measure;
        int timeout = (int)((deadline - now) * 1000.0) + 1;
        int n = epoll_wait(epfd, evs, 512, timeout);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); break; }
        uint64_t t = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c->alive) continue;
#ifdef LOADGEN_TLS
            if (mode_hs) { hs_step(c, t); continue; }
#endif
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, t);
            if (c->alive && (evs[i].events & EPOLLOUT)) pump_out(c);
        }
    }
    m_end = now_s();
    running = 0;
    if (measuring) fprintf(stderr, "#measure-end\n");
    /* An interrupted run reports what it measured so far. */
    double elapsed = measuring ? m_end - m_start : 0;

    /* A server that silently swallows bytes leaves a connection waiting
     * forever without ever producing a wrong byte; catch that as a stall:
     * data outstanding and nothing received for a whole second. */
    uint64_t t_stop = now_ns();
    for (int i = opt_idle; i < nconns_total; i++) {
        struct conn *c = &conns[i];
        uint64_t since = c->last_rx ? c->last_rx : t0;
        if (c->alive && c->recvd < c->sent && t_stop - since > 1000000000ull) {
            err_stalled++;
            fprintf(stderr, "loadgen: conn %d stalled: %llu bytes un-echoed, nothing received for %.2f s\n",
                    i, (unsigned long long)(c->sent - c->recvd), (double)(t_stop - since) / 1e9);
        }
    }
    int alive = 0;
    for (int i = 0; i < nconns_total; i++) alive += conns[i].alive;
    if (alive < nconns_total)
        fprintf(stderr, "loadgen: %d of %d connections were lost\n", nconns_total - alive, nconns_total);
    for (int i = 0; i < nconns_total; i++) conn_kill(&conns[i]);
    freeaddrinfo(ai);
    report(elapsed, 0);
    return 0;
}
