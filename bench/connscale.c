/*
 * connscale.c -- connection-scale client for mqttmesh's bench/connscale.py (libc, Linux).
 *
 * Theory of operation
 * -------------------
 * MQTT 3.1.1 CONNECT spoken directly over non-blocking sockets, one epoll loop per worker
 * process.  One process may not hold more sockets than its RLIMIT_NOFILE hard limit (and
 * without CAP_SYS_RESOURCE that limit cannot be raised), so the connections are split over
 * --procs worker processes (default: as many as the hard limit requires).  The parent holds
 * no connection: it forks the workers, samples progress, relays commands and prints the
 * JSON lines.  Workers share one MAP_SHARED block: a global connected counter (atomic),
 * the time the --first'th CONNACK arrived, per-worker statistics and the handshake
 * durations.
 *
 * Ramp: open the worker's share of --conns connections as fast as possible with at most
 * its share of --concurrency handshakes in flight (a handshake = connect() until CONNACK).
 * Connection i binds to the source address 127.0.0.(1 + i % --sources) with
 * IP_BIND_ADDRESS_NO_PORT, so the kernel picks the source port per 4-tuple at connect()
 * time and one address's ephemeral range (~28k ports) does not cap the run.  A worker ends
 * its ramp when every connection got CONNACK or failed, after --connect-timeout seconds, or
 * when no CONNACK arrived for --stall seconds while handshakes were in flight (a broker out
 * of file descriptors leaves connections in its accept queue forever).
 *
 * Then the parent prints {"event":"connected",...} and the workers hold the connections
 * (nothing is sent: keepalive 300 s).  Commands on stdin, one per line:
 *   ping   every worker sends PINGREQ on each of its connections and waits until each
 *          answered PINGRESP (or --ping-timeout s); the parent prints {"event":"pinged",...}
 *   EOF / quit   workers close every socket with RST (SO_LINGER 0: no TIME_WAIT pile-up
 *          between runs) and exit; the parent prints {"event":"done",...}.
 * A connection the broker closes while held is counted in "disconnects".
 * Exit status: 0 all connected and answered, 1 otherwise, 2 usage / setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_IDLE, ST_CONNECTING, ST_WAIT_CONNACK, ST_READY, ST_CLOSED };
#define TAG_CMD 0xFFFFFFFFu
#define MAXW 64

typedef struct conn {
    int fd;
    uint8_t state, inlen, ping_out;
    uint8_t in[6];
    uint64_t t_start;
} conn_t;

/* why a connection did not get (or keep) its CONNACK */
typedef struct errs {
    uint64_t socket_failed, connect_refused, connect_reset, addr_not_avail, connect_other;
    uint64_t closed_before_connack, connack_refused, protocol, timeout, stalled, disconnects;
    int last_errno;
} errs_t;

typedef struct wstat {              /* one worker's figures, in shared memory */
    uint64_t t_last_ready, ping_done_ns;
    int lo, hi, connected, n_lat, ping_sent, ping_answered, still, exited;
    double cpu_s;
    errs_t err;
} wstat_t;

typedef struct shared {
    int ready_total;                /* atomic: connected over all workers */
    uint64_t t0, t_first;
    wstat_t w[MAXW];
} shared_t;

static const char *o_host = "127.0.0.1";
static int o_port = 1883, o_conns = 50000, o_concurrency = 500, o_sources = 16, o_procs = 0;
static int o_keepalive = 300, o_first = 10000;
static double o_connect_timeout = 300, o_ping_timeout = 60, o_stall = 20;

static shared_t *sh;
static uint32_t *lat_all;           /* shared: handshake us, worker w writes from w.lo */
static volatile sig_atomic_t stop_flag;
static char cid_prefix[32];

/* worker state */
static wstat_t *me;
static int ep = -1;
static conn_t *conns;               /* this worker's slice, conns[0] = global index me->lo */
static int nmine, inflight, ready, opened;
static uint64_t last_connack;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void count_errno(int e) {
    me->err.last_errno = e;
    if (e == ECONNREFUSED) me->err.connect_refused++;
    else if (e == ECONNRESET || e == EPIPE) me->err.connect_reset++;
    else if (e == EADDRNOTAVAIL) me->err.addr_not_avail++;
    else if (e == ETIMEDOUT) me->err.timeout++;
    else me->err.connect_other++;
}

static void conn_close(conn_t *c) {
    if (c->state == ST_CLOSED || c->fd < 0) { c->state = ST_CLOSED; return; }
    if (c->state == ST_CONNECTING || c->state == ST_WAIT_CONNACK) inflight--;
    if (c->state == ST_READY) { ready--; __atomic_sub_fetch(&sh->ready_total, 1, __ATOMIC_RELAXED); }
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);                    /* also removes it from the epoll set */
    c->fd = -1;
    c->state = ST_CLOSED;
}

static void ep_set(conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, op, c->fd, &ev);
}

static void send_connect(conn_t *c) {
    uint8_t pkt[96];
    char cid[48];
    int l = snprintf(cid, sizeof cid, "%s%d", cid_prefix, me->lo + (int)(c - conns));
    size_t n = 0;
    pkt[n++] = 0x10;
    pkt[n++] = (uint8_t)(10 + 2 + l);                    /* remaining length < 128 */
    pkt[n++] = 0; pkt[n++] = 4; memcpy(pkt + n, "MQTT", 4); n += 4;
    pkt[n++] = 4;                                          /* MQTT 3.1.1 */
    pkt[n++] = 0x02;                                       /* clean session */
    pkt[n++] = (uint8_t)(o_keepalive >> 8); pkt[n++] = (uint8_t)o_keepalive;
    pkt[n++] = (uint8_t)(l >> 8); pkt[n++] = (uint8_t)l;
    memcpy(pkt + n, cid, (size_t)l); n += (size_t)l;
    ssize_t w = write(c->fd, pkt, n);
    if (w != (ssize_t)n) {                                 /* ~30 bytes always fit a fresh socket */
        count_errno(w < 0 ? errno : EPIPE);
        conn_close(c);
        return;
    }
    c->state = ST_WAIT_CONNACK;
    ep_set(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

static void open_one(int k) {
    conn_t *c = &conns[k];
    int gi = me->lo + k;
    c->t_start = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { me->err.socket_failed++; me->err.last_errno = errno; c->state = ST_CLOSED; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(gi % o_sources))};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o_port)};
    inet_pton(AF_INET, o_host, &dst.sin_addr);
    c->state = ST_CONNECTING;
    inflight++;
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) { count_errno(errno); conn_close(c); return; }
    int r = connect(c->fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) { count_errno(errno); conn_close(c); return; }
    ep_set(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    if (r == 0) send_connect(c);
}

static void on_event(conn_t *c, uint32_t ev) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_CONNECTING) {
        int e = 0; socklen_t el = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e) { count_errno(e); conn_close(c); return; }
        if (ev & EPOLLOUT) send_connect(c);
        return;
    }
    for (;;) {
        ssize_t r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            if (c->state == ST_WAIT_CONNACK) {
                if (r < 0) count_errno(errno); else me->err.closed_before_connack++;
            } else me->err.disconnects++;
            conn_close(c);
            return;
        }
        c->inlen += (uint8_t)r;
        /* only fixed 2-byte-header packets are expected: CONNACK (4 B), PINGRESP (2 B) */
        while (c->inlen >= 2) {
            size_t plen = 2 + (size_t)c->in[1];
            if (c->in[1] & 0x80 || plen > sizeof c->in) { me->err.protocol++; conn_close(c); return; }
            if (c->inlen < plen) break;
            if (c->state == ST_WAIT_CONNACK && c->in[0] == 0x20 && plen == 4) {
                if (c->in[3] != 0) { me->err.connack_refused++; conn_close(c); return; }
                uint64_t t = now_ns();
                c->state = ST_READY;
                inflight--;
                ready++;
                lat_all[me->lo + me->n_lat++] = (uint32_t)((t - c->t_start) / 1000);
                me->t_last_ready = last_connack = t;
                if (__atomic_add_fetch(&sh->ready_total, 1, __ATOMIC_RELAXED) == o_first)
                    sh->t_first = t;
            } else if (c->state == ST_READY && c->in[0] == 0xD0 && plen == 2 && c->ping_out) {
                c->ping_out = 0;
            } else { me->err.protocol++; conn_close(c); return; }
            memmove(c->in, c->in + plen, c->inlen - plen);
            c->inlen -= (uint8_t)plen;
        }
    }
}

/* returns 1 if the parent sent a command */
static int pump(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms), cmd = 0;
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u32 == TAG_CMD) { cmd = 1; continue; }
        on_event(&conns[evs[k].data.u32], evs[k].events);
    }
    return cmd;
}

static void report_done(int done_fd) {       /* tell the parent: worker index as one byte */
    char b = (char)(me - sh->w);
    if (write(done_fd, &b, 1) < 0) {}
}

static void worker(int cmd_fd, int done_fd, int concurrency) {
    nmine = me->hi - me->lo;
    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nmine + 1, sizeof *conns);
    for (int i = 0; i < nmine; i++) conns[i].fd = -1;
    uint64_t deadline = sh->t0 + (uint64_t)(o_connect_timeout * 1e9);
    last_connack = now_ns();
    while (!stop_flag) {
        while (opened < nmine && inflight < concurrency) open_one(opened++);
        if (opened == nmine && inflight == 0) break;
        uint64_t t = now_ns();
        if (t > deadline) break;
        if (inflight > 0 && t - last_connack > (uint64_t)(o_stall * 1e9)) break;
        pump(50);
    }
    for (int i = 0; i < nmine; i++)            /* still in flight at the deadline / stall */
        if (conns[i].state == ST_CONNECTING || conns[i].state == ST_WAIT_CONNACK) {
            me->err.timeout++;
            conn_close(&conns[i]);
        }
    me->err.stalled = (uint64_t)(nmine - opened);   /* never attempted */
    me->connected = ready;
    me->cpu_s = cpu_s(RUSAGE_SELF);
    report_done(done_fd);

    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = TAG_CMD};
    epoll_ctl(ep, EPOLL_CTL_ADD, cmd_fd, &cev);
    while (!stop_flag) {
        if (!pump(200)) continue;
        char cmd = 'q';
        if (read(cmd_fd, &cmd, 1) != 1 || cmd == 'q') break;
        static const uint8_t ping[2] = {0xC0, 0};
        int sent = 0, answered = 0;
        for (int i = 0; i < nmine; i++) {
            conn_t *c = &conns[i];
            if (c->state != ST_READY) continue;
            if (write(c->fd, ping, 2) == 2) { c->ping_out = 1; sent++; }
            else { me->err.disconnects++; conn_close(c); }
        }
        uint64_t pdl = now_ns() + (uint64_t)(o_ping_timeout * 1e9);
        int outstanding = sent;
        while (!stop_flag && outstanding > 0 && now_ns() < pdl) {
            pump(20);
            outstanding = 0;
            for (int i = 0; i < nmine; i++)
                if (conns[i].state == ST_READY && conns[i].ping_out) outstanding++;
        }
        for (int i = 0; i < nmine; i++)         /* closed during the round = not answered */
            if (conns[i].state == ST_READY && !conns[i].ping_out) answered++;
        me->ping_sent = sent;
        me->ping_answered = answered;
        me->ping_done_ns = now_ns();
        report_done(done_fd);
    }
    me->still = ready;
    for (int i = 0; i < nmine; i++) conn_close(&conns[i]);
    me->cpu_s = cpu_s(RUSAGE_SELF);
    report_done(done_fd);
    _exit(0);
}

/* ---------------------------------------------------------------- parent */
static int nw;
static pid_t pids[MAXW];
static int cmd_w[MAXW];

static void sum_errs(errs_t *t) {
    memset(t, 0, sizeof *t);
    for (int w = 0; w < nw; w++) {
        errs_t *e = &sh->w[w].err;
        t->socket_failed += e->socket_failed; t->connect_refused += e->connect_refused;
        t->connect_reset += e->connect_reset; t->addr_not_avail += e->addr_not_avail;
        t->connect_other += e->connect_other; t->closed_before_connack += e->closed_before_connack;
        t->connack_refused += e->connack_refused; t->protocol += e->protocol;
        t->timeout += e->timeout; t->stalled += e->stalled; t->disconnects += e->disconnects;
        if (e->last_errno) t->last_errno = e->last_errno;
    }
}

static void print_errors(void) {
    errs_t t;
    sum_errs(&t);
    printf("\"errors\":{\"socket_failed\":%llu,\"connect_refused\":%llu,\"connect_reset\":%llu,"
           "\"addr_not_avail\":%llu,\"connect_other\":%llu,\"closed_before_connack\":%llu,"
           "\"connack_refused\":%llu,\"protocol\":%llu,\"timeout\":%llu,\"not_attempted\":%llu,"
           "\"disconnects\":%llu},\"last_errno\":\"%s\"",
           (unsigned long long)t.socket_failed, (unsigned long long)t.connect_refused,
           (unsigned long long)t.connect_reset, (unsigned long long)t.addr_not_avail,
           (unsigned long long)t.connect_other, (unsigned long long)t.closed_before_connack,
           (unsigned long long)t.connack_refused, (unsigned long long)t.protocol,
           (unsigned long long)t.timeout, (unsigned long long)t.stalled,
           (unsigned long long)t.disconnects, t.last_errno ? strerror(t.last_errno) : "");
}

/* wait until every live worker reported (its index, one byte on done_r) or the timeout;
 * sample the global connected count every 0.5 s into progress */
static void wait_workers(int done_r, double timeout_s, char *progress, size_t cap, size_t *plen) {
    int answered[MAXW] = {0};
    uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9), next = sh->t0 + 500000000ull;
    while (now_ns() < end && !stop_flag) {
        int missing = 0;
        for (int w = 0; w < nw; w++) missing += !answered[w] && !sh->w[w].exited;
        if (!missing) break;
        struct pollfd pf = {.fd = done_r, .events = POLLIN};
        if (poll(&pf, 1, 100) > 0) {
            unsigned char buf[MAXW];
            ssize_t r = read(done_r, buf, sizeof buf);
            for (ssize_t k = 0; k < r; k++) if (buf[k] < MAXW) answered[buf[k]] = 1;
        }
        for (int w = 0; w < nw; w++)             /* a worker that died does not answer */
            if (!answered[w] && !sh->w[w].exited && waitpid(pids[w], NULL, WNOHANG) == pids[w])
                sh->w[w].exited = 1;
        uint64_t t = now_ns();
        if (progress && t >= next) {
            if (*plen < cap - 64)
                *plen += (size_t)snprintf(progress + *plen, cap - *plen, "%s[%.1f,%d]",
                                          *plen ? "," : "", (double)(t - sh->t0) / 1e9,
                                          __atomic_load_n(&sh->ready_total, __ATOMIC_RELAXED));
            next += 500000000ull;
        }
    }
}

static void tell_workers(char c) {
    for (int w = 0; w < nw; w++)
        if (!sh->w[w].exited && write(cmd_w[w], &c, 1) < 0) {}
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int read_command(void) {            /* one stdin line: 'p' = ping, 'q' = quit/EOF */
    char buf[64];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t r = read(0, buf + n, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 'q';
        if (buf[n] == '\n') break;
        n++;
    }
    buf[n] = 0;
    return !strcmp(buf, "ping") ? 'p' : !strcmp(buf, "quit") ? 'q' : '?';
}

static void usage(void) {
    fprintf(stderr,
        "usage: connscale [--host H] [--port P] [--conns N] [--concurrency C] [--sources K]\n"
        "                 [--procs W] [--keepalive S] [--first M] [--connect-timeout S]\n"
        "                 [--stall S] [--ping-timeout S]\n"
        "Then reads 'ping' / 'quit' lines on stdin (see the comment at the top of connscale.c).\n");
    exit(2);
}

static void on_signal(int s) { (void)s; stop_flag = 1; }

int main(int argc, char **argv) {
    static struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'}, {"concurrency", 1, 0, 'C'},
        {"sources", 1, 0, 's'}, {"procs", 1, 0, 'w'}, {"keepalive", 1, 0, 'k'}, {"first", 1, 0, 'f'},
        {"connect-timeout", 1, 0, 't'}, {"stall", 1, 0, 'S'}, {"ping-timeout", 1, 0, 'T'},
        {"help", 0, 0, '?'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': o_host = optarg; break;
        case 'p': o_port = atoi(optarg); break;
        case 'c': o_conns = atoi(optarg); break;
        case 'C': o_concurrency = atoi(optarg); break;
        case 's': o_sources = atoi(optarg); break;
        case 'w': o_procs = atoi(optarg); break;
        case 'k': o_keepalive = atoi(optarg); break;
        case 'f': o_first = atoi(optarg); break;
        case 't': o_connect_timeout = atof(optarg); break;
        case 'S': o_stall = atof(optarg); break;
        case 'T': o_ping_timeout = atof(optarg); break;
        default: usage();
        }
    }
    if (o_conns < 1 || o_concurrency < 1 || o_sources < 1 || o_sources > 250 || o_keepalive < 0 ||
        o_keepalive > 65535 || o_procs < 0 || o_procs > MAXW)
        usage();
    if (o_first > o_conns) o_first = o_conns;
    struct in_addr probe;
    if (inet_pton(AF_INET, o_host, &probe) != 1) { fprintf(stderr, "bad --host\n"); return 2; }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    long per = (long)rl.rlim_max - 100;         /* sockets one worker may hold */
    if (per < 100) { fprintf(stderr, "RLIMIT_NOFILE too small\n"); return 2; }
    nw = o_procs ? o_procs : (int)((o_conns + per - 1) / per);
    if (nw > MAXW || (long)o_conns > per * nw) {
        fprintf(stderr, "%d connections need more than %d workers of %ld sockets\n", o_conns, nw, per);
        return 2;
    }
    if (nw > o_concurrency) nw = o_concurrency;
    snprintf(cid_prefix, sizeof cid_prefix, "cs%d-", (int)getpid());

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    lat_all = mmap(NULL, sizeof(uint32_t) * (size_t)o_conns, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || lat_all == MAP_FAILED) { perror("mmap"); return 2; }
    int done_p[2];
    if (pipe2(done_p, O_CLOEXEC) < 0) { perror("pipe"); return 2; }
    sh->t0 = now_ns();
    for (int w = 0; w < nw; w++) {
        sh->w[w].lo = (int)((long)o_conns * w / nw);
        sh->w[w].hi = (int)((long)o_conns * (w + 1) / nw);
        int cp[2];
        if (pipe2(cp, O_CLOEXEC) < 0) { perror("pipe"); return 2; }
        int share = o_concurrency / nw + (w < o_concurrency % nw);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            close(cp[1]); close(done_p[0]);
            for (int k = 0; k < w; k++) close(cmd_w[k]);
            me = &sh->w[w];
            worker(cp[0], done_p[1], share);
        }
        close(cp[0]);
        pids[w] = pid;
        cmd_w[w] = cp[1];
    }
    close(done_p[1]);

    /* ---- ramp */
    static char progress[32768];
    size_t plen = 0;
    wait_workers(done_p[0], o_connect_timeout + o_stall + 30, progress, sizeof progress, &plen);
    int connected = 0, n_lat = 0;
    uint64_t t_last = 0;
    double wcpu = 0;
    for (int w = 0; w < nw; w++) {
        wstat_t *s = &sh->w[w];
        connected += s->connected;
        if (s->t_last_ready > t_last) t_last = s->t_last_ready;
        memmove(lat_all + n_lat, lat_all + s->lo, sizeof(uint32_t) * (size_t)s->n_lat);
        n_lat += s->n_lat;
        wcpu += s->cpu_s;
    }
    qsort(lat_all, (size_t)n_lat, sizeof *lat_all, cmp_u32);
#define PCT(p) (n_lat ? lat_all[(size_t)((p) / 100.0 * (n_lat - 1) + 0.5)] : 0)
    double ramp_s = t_last ? (double)(t_last - sh->t0) / 1e9 : -1.0;
    double first_s = sh->t_first ? (double)(sh->t_first - sh->t0) / 1e9 : -1.0;
    printf("{\"event\":\"connected\",\"requested\":%d,\"connected\":%d,\"concurrency\":%d,"
           "\"sources\":%d,\"procs\":%d,\"ramp_s\":%.3f,\"conn_per_s\":%.1f,\"first\":%d,"
           "\"first_s\":%.3f,\"first_conn_per_s\":%.1f,\"handshake_us\":{\"p50\":%u,\"p90\":%u,"
           "\"p99\":%u,\"p999\":%u,\"max\":%u},\"cpu_s\":%.3f,\"progress\":[%s],",
           o_conns, connected, o_concurrency, o_sources, nw, ramp_s,
           ramp_s > 0 ? connected / ramp_s : 0.0, o_first, first_s,
           first_s > 0 ? o_first / first_s : 0.0, PCT(50), PCT(90), PCT(99), PCT(99.9),
           n_lat ? lat_all[n_lat - 1] : 0, wcpu, progress);
    print_errors();
    printf("}\n");
    fflush(stdout);

    /* ---- hold; relay commands */
    int all_answered = 0;
    while (!stop_flag) {
        int cmd = read_command();
        if (cmd == 'q') break;
        if (cmd != 'p') continue;
        int held = 0, sent = 0, answered = 0;
        uint64_t done = 0;
        for (int w = 0; w < nw; w++) held += sh->w[w].exited ? 0 : sh->w[w].connected;
        uint64_t ts = now_ns();
        tell_workers('p');
        wait_workers(done_p[0], o_ping_timeout + 30, NULL, 0, NULL);
        for (int w = 0; w < nw; w++) {
            sent += sh->w[w].ping_sent;
            answered += sh->w[w].ping_answered;
            if (sh->w[w].ping_done_ns > done) done = sh->w[w].ping_done_ns;
        }
        all_answered = answered == o_conns;
        printf("{\"event\":\"pinged\",\"held\":%d,\"sent\":%d,\"answered\":%d,\"ping_s\":%.3f,",
               held, sent, answered, done > ts ? (double)(done - ts) / 1e9 : -1.0);
        print_errors();
        printf("}\n");
        fflush(stdout);
    }
    tell_workers('q');
    wait_workers(done_p[0], 60, NULL, 0, NULL);
    int still = 0;
    double tcpu = 0;
    for (int w = 0; w < nw; w++) {
        still += sh->w[w].still;
        tcpu += sh->w[w].cpu_s;
        if (!sh->w[w].exited) waitpid(pids[w], NULL, 0);
    }
    printf("{\"event\":\"done\",\"still_connected\":%d,\"cpu_s\":%.3f,", still, tcpu);
    print_errors();
    printf("}\n");
    fflush(stdout);
    return all_answered && still == o_conns ? 0 : 1;
}
