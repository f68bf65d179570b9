/*
 * loadgen.c -- MQTT load generator for mqttmesh's bench/ (libc only, Linux).
 *
 * Theory of operation
 * -------------------
 * One thread, one epoll loop, non-blocking sockets.  The MQTT 3.1.1 / 5.0 client side
 * is spoken directly: every PUBLISH a publisher sends is a pre-encoded template that is
 * memcpy'd into the connection's output buffer and patched in place (packet id,
 * timestamp, sequence number), so the cost per message is a memcpy plus one share of a
 * batched write().  Subscribers parse the byte stream with a tiny framer, count
 * messages, check per-publisher sequence numbers, take latency samples and queue PUBACKs
 * that are flushed once per read batch.
 *
 * Payload layout (payload size >= 16):  u64 send time (CLOCK_MONOTONIC ns) | u32 publisher
 * index | u32 sequence number | padding.  Publisher and subscribers share the clock because
 * they are the same process, so end-to-end latency needs no clock sync.
 *
 * Flow control:
 *   QoS 1: each publisher keeps at most --window unacked PUBLISHes (a real client's
 *          inflight window).
 *   QoS 0: closed loop; the publishers of a topic may be at most --q0-window messages per
 *          publisher ahead of what the topic's subscribers have received.  This measures
 *          the rate the broker sustains without letting its queues grow without bound.
 *          If a topic makes no progress for 1 s the outstanding messages are written off
 *          as lost ("stalls" in the output) so a broker that drops QoS 0 cannot hang us.
 *   --rate R: fixed total rate (timerfd ticks), used for latency.
 *
 * Phases: connect (all CONNACK/SUBACK) -> warmup -> measure -> drain (stop publishing,
 * wait until every expected message arrived and every PUBLISH was acked, or --drain
 * seconds) -> print one JSON line -> DISCONNECT.
 *
 * --nodes H:P,H:P,... (cluster scaling, bench/scaling.py): spread the clients over several
 * brokers.  The publishers of topic t connect to node t % N and its subscribers to node
 * (t + 1) % N, so with N >= 2 every message crosses nodes exactly once; idle connection i
 * connects to node i % N.  The result line then also has "broker_cpu_s_each" (CPU seconds
 * of each --broker-pid over the measurement window).
 *
 * Mode "idle": open --conns connections, CONNECT, print {"event":"connected",...}, hold
 * them (PINGREQ at keepalive/2) until stdin reaches EOF or --hold seconds pass, print the
 * result line.  The runner measures the broker's RSS in between.
 *
 * Lost messages (received < expected at QoS >= 1), sequence gaps, refused CONNACK/SUBACK,
 * and broker-side disconnects are counted in "errors"; "ok" is false if any occurred.
 * Exit status: 0 ok, 1 errors detected, 2 usage / setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { ROLE_PUB, ROLE_SUB, ROLE_IDLE };
enum { ST_CONNECTING, ST_WAIT_CONNACK, ST_WAIT_SUBACK, ST_READY, ST_CLOSED };
enum { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

#define TAG_STDIN (-1)
#define TAG_TIMER (-2)

typedef struct conn {
    int fd, idx, role, state, topic;
    uint8_t *in, *out;
    size_t incap, inlen, outcap, outlen, outoff;
    int epout;                       /* EPOLLOUT currently registered */
    uint64_t last_tx_ns;
    /* publisher */
    uint16_t next_pid;
    int inflight;
    uint64_t sent, acked, due;
    uint32_t seq;
    /* subscriber */
    uint64_t received;
    uint32_t *next_seq;              /* per publisher */
} conn_t;

typedef struct topic_state {
    int fanout, pubs;
    uint64_t sent, delivered, written_off, last_progress_ns, last_delivered;
} topic_state_t;

/* ---------------------------------------------------------------- options */
static const char *o_host = "127.0.0.1";
static int o_sub_port = 0;
static const char *o_sub_host = NULL;
static int o_port = 1883, o_pubs = 1, o_subs = 1, o_topics = 1, o_qos = 0, o_sub_qos = -1;
static int o_size = 64, o_window = 32, o_q0_window = 500, o_mqtt = 4, o_keepalive = 60;
static int o_conns = 1000, o_concurrency = 200, o_idle = 0;
static double o_duration = 5, o_warmup = 1, o_rate = 0, o_drain = 5, o_hold = 600;
static double o_connect_timeout = 60;
static int o_coalesce_us = 0;
static double o_start_delay = 0;
static long long o_count = 0;
static char o_prefix[64] = "bench/t";
#define MAX_PIDS 64
static int broker_pids[MAX_PIDS], n_broker_pids = 0;
#define MAX_NODES 256
static struct sockaddr_in node_sa[MAX_NODES];
static int n_nodes = 0;
static const char *o_nodes = NULL;

/* ---------------------------------------------------------------- state */
static int ep = -1, tfd = -1;
static conn_t *conns;
static int nconns;
static topic_state_t *topics;
static uint8_t **pub_tmpl; static size_t *pub_tmpl_len, *pub_pid_off, *pub_pl_off;
static int phase = PH_CONNECT;
static volatile sig_atomic_t stop_flag = 0;
static int ready_count = 0, closed_count = 0;
static uint64_t t_first_send_ns, t_last_recv_ns;
static size_t rx_bytes;
static char client_prefix[32];

static struct {
    uint64_t connect_failed, connack_refused, suback_refused, disconnects, protocol;
    uint64_t puback_refused, seq_gaps, dups, stalls, connect_timeout, unacked, lost, misrouted;
} err;

/* latency histogram: log-linear over microseconds, 32 sub-buckets per power of two */
#define H_SUB 32
#define H_BUCKETS (64 * H_SUB)
static uint64_t hist[H_BUCKETS], hist_count, hist_max_ns;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int h_index(uint64_t v) {          /* v in ns, bucket on 10 ns units */
    v /= 10;
    if (v < H_SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 5;                  /* log2(H_SUB) = 5 */
    int idx = (shift + 1) * H_SUB + (int)((v >> shift) - H_SUB);
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static uint64_t h_value(int idx) {        /* upper-ish representative value in ns */
    if (idx < H_SUB) return (uint64_t)idx * 10;
    int shift = idx / H_SUB - 1;
    uint64_t m = (uint64_t)(idx % H_SUB + H_SUB);
    return ((m << shift) + ((1ull << shift) >> 1)) * 10;
}

static double h_pct(double p) {           /* microseconds */
    if (!hist_count) return -1;
    uint64_t want = (uint64_t)(p / 100.0 * (double)hist_count);
    if (want >= hist_count) want = hist_count - 1;
    uint64_t acc = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        acc += hist[i];
        if (acc > want) return (double)h_value(i) / 1000.0;
    }
    return (double)hist_max_ns / 1000.0;
}

/* ---------------------------------------------------------------- cpu accounting */
static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double machine_busy_s(void) {    /* all CPUs' non-idle time, from /proc/stat */
    char buf[512];
    int fd = open("/proc/stat", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    unsigned long long v[10] = {0};
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) < 8) return -1;
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double broker_cpu_s_each(double *each) { /* sum over --broker-pid, -1 if unreadable */
    if (!n_broker_pids) return -1;
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n_broker_pids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", broker_pids[i]);
        int fd = open(path, O_RDONLY);
        if (fd < 0) return -1;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) return -1;
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p) return -1;
        unsigned long long ut = 0, st = 0;
        /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            return -1;
        total += (double)(ut + st) / (double)hz;
        if (each) each[i] = (double)(ut + st) / (double)hz;
    }
    return total;
}

static double bcpu_each0[MAX_PIDS], bcpu_each1[MAX_PIDS];

/* ---------------------------------------------------------------- encoding */
static size_t put_varint(uint8_t *p, size_t v) {
    size_t n = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        if (v) b |= 0x80;
        p[n++] = b;
    } while (v);
    return n;
}

static size_t put_str(uint8_t *p, const char *s) {
    size_t l = strlen(s);
    p[0] = (uint8_t)(l >> 8); p[1] = (uint8_t)l;
    memcpy(p + 2, s, l);
    return l + 2;
}

/* assemble fixed header + body into dst; returns total length */
static size_t frame(uint8_t *dst, uint8_t h, const uint8_t *body, size_t blen) {
    size_t n = 0;
    dst[n++] = h;
    n += put_varint(dst + n, blen);
    memcpy(dst + n, body, blen);
    return n + blen;
}

static int out_reserve(conn_t *c, size_t need) {
    if (c->outoff && c->outlen + need > c->outcap) {      /* compact */
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff; c->outoff = 0;
    }
    return c->outlen + need <= c->outcap;
}

static void out_append(conn_t *c, const uint8_t *p, size_t n) {
    if (!out_reserve(c, n)) {                              /* grow (control packets only) */
        size_t nc = c->outcap * 2 + n;
        c->out = realloc(c->out, nc); c->outcap = nc;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

static void send_connect(conn_t *c) {
    uint8_t body[128], pkt[160];
    char cid[64];
    char r = c->role == ROLE_PUB ? 'p' : c->role == ROLE_SUB ? 's' : 'i';
    snprintf(cid, sizeof cid, "%s%c%d", client_prefix, r, c->idx);
    size_t n = put_str(body, "MQTT");
    body[n++] = (uint8_t)o_mqtt;
    body[n++] = 0x02;                                      /* clean session / clean start */
    body[n++] = (uint8_t)(o_keepalive >> 8); body[n++] = (uint8_t)o_keepalive;
    if (o_mqtt == 5) body[n++] = 0;                        /* no properties */
    n += put_str(body + n, cid);
    out_append(c, pkt, frame(pkt, 0x10, body, n));
}

static void send_subscribe(conn_t *c) {
    uint8_t body[160], pkt[192];
    char t[96];
    snprintf(t, sizeof t, "%s%d", o_prefix, c->topic);
    size_t n = 0;
    body[n++] = 0; body[n++] = 1;                          /* packet id 1 */
    if (o_mqtt == 5) body[n++] = 0;
    n += put_str(body + n, t);
    body[n++] = (uint8_t)o_sub_qos;
    out_append(c, pkt, frame(pkt, 0x82, body, n));
}

static void build_pub_template(int i) {
    char t[96];
    snprintf(t, sizeof t, "%s%d", o_prefix, conns[i].topic);
    size_t tl = strlen(t);
    size_t body = 2 + tl + (o_qos ? 2 : 0) + (o_mqtt == 5 ? 1 : 0) + (size_t)o_size;
    uint8_t *p = malloc(body + 8);
    size_t n = 0;
    p[n++] = (uint8_t)(0x30 | (o_qos << 1));
    n += put_varint(p + n, body);
    n += put_str(p + n, t);
    pub_pid_off[i] = n;
    if (o_qos) { p[n++] = 0; p[n++] = 0; }
    if (o_mqtt == 5) p[n++] = 0;
    pub_pl_off[i] = n;
    memset(p + n, 'x', (size_t)o_size);
    n += (size_t)o_size;
    pub_tmpl[i] = p; pub_tmpl_len[i] = n;
}

/* ---------------------------------------------------------------- connection I/O */
static void ep_mod(conn_t *c, int want_out) {
    if (c->epout == want_out || c->state == ST_CLOSED) return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)c->idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epout = want_out;
}

static void conn_close(conn_t *c, int count_as_disconnect) {
    if (c->state == ST_CLOSED) return;
    if (count_as_disconnect) {
        err.disconnects++;
        if (c->state != ST_READY) err.connect_failed++;
    }
    if (c->state == ST_READY) ready_count--;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = ST_CLOSED;
    closed_count++;
}

static void flush_out(conn_t *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w > 0) { c->outoff += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { ep_mod(c, 1); return; }
        conn_close(c, 1);
        return;
    }
    c->outoff = c->outlen = 0;
    c->last_tx_ns = now_ns();
    ep_mod(c, 0);
}

static void set_ready(conn_t *c) {
    c->state = ST_READY;
    ready_count++;
}

static void on_packet(conn_t *c, uint8_t h, const uint8_t *b, size_t rl, uint64_t tnow) {
    switch (h >> 4) {
    case 2: /* CONNACK */
        if (rl < 2 || c->state != ST_WAIT_CONNACK) { err.protocol++; conn_close(c, 1); return; }
        if (b[1] != 0) { err.connack_refused++; conn_close(c, 1); return; }
        if (c->role == ROLE_SUB) { send_subscribe(c); c->state = ST_WAIT_SUBACK; }
        else set_ready(c);
        return;
    case 9: { /* SUBACK */
        size_t off = 2;
        if (o_mqtt == 5 && rl > 2) {
            size_t pl = 0, mul = 1;
            while (off < rl) { pl += (b[off] & 127) * mul; mul *= 128; if (!(b[off++] & 128)) break; }
            off += pl;
        }
        if (off >= rl || b[off] >= 0x80) { err.suback_refused++; conn_close(c, 1); return; }
        if (c->state == ST_WAIT_SUBACK) set_ready(c);
        return;
    }
    case 3: { /* PUBLISH */
        int qos = (h >> 1) & 3;
        if (rl < 2) { err.protocol++; return; }
        size_t tl = ((size_t)b[0] << 8) | b[1], off = 2 + tl;
        uint16_t pid = 0;
        if (qos) { if (off + 2 > rl) { err.protocol++; return; } pid = (uint16_t)((b[off] << 8) | b[off + 1]); off += 2; }
        if (o_mqtt == 5) {
            size_t pl = 0, mul = 1;
            while (off < rl) { pl += (b[off] & 127) * mul; mul *= 128; if (!(b[off++] & 128)) break; }
            off += pl;
        }
        if (off > rl) { err.protocol++; return; }
        if (qos == 1) {
            uint8_t ack[4] = {0x40, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
            out_append(c, ack, 4);
        } else if (qos == 2) {
            uint8_t rec[4] = {0x50, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
            out_append(c, rec, 4);
        }
        c->received++;
        topics[c->topic].delivered++;
        t_last_recv_ns = tnow;
        if (rl - off >= 16) {
            uint64_t ts; uint32_t pi, seq;
            memcpy(&ts, b + off, 8); memcpy(&pi, b + off + 8, 4); memcpy(&seq, b + off + 12, 4);
            if (pi < (uint32_t)o_pubs && (int)(pi % (uint32_t)o_topics) != c->topic) err.misrouted++;
            if (pi < (uint32_t)o_pubs && c->next_seq) {
                if (seq > c->next_seq[pi]) err.seq_gaps += seq - c->next_seq[pi];
                if (seq < c->next_seq[pi]) err.dups++;
                else c->next_seq[pi] = seq + 1;
            }
            if (phase == PH_MEASURE && tnow >= ts) {
                uint64_t d = tnow - ts;
                hist[h_index(d)]++; hist_count++;
                if (d > hist_max_ns) hist_max_ns = d;
            }
        }
        return;
    }
    case 4: /* PUBACK */
        if (c->role != ROLE_PUB || c->inflight <= 0) { err.protocol++; return; }
        if (rl > 2 && b[2] >= 0x80) err.puback_refused++;
        c->inflight--; c->acked++;
        return;
    case 6: { /* PUBREL (only if the broker sent us QoS 2) */
        uint8_t comp[4] = {0x70, 2, rl >= 2 ? b[0] : 0, rl >= 2 ? b[1] : 0};
        out_append(c, comp, 4);
        return;
    }
    case 13: /* PINGRESP */
        return;
    case 14: /* DISCONNECT from the server (MQTT 5) */
        conn_close(c, 1);
        return;
    default:
        err.protocol++;
        conn_close(c, 1);
    }
}

static void on_readable(conn_t *c) {
    uint64_t tnow = 0;
    for (int rounds = 0; rounds < 4 && c->state != ST_CLOSED; rounds++) {
        if (c->inlen == c->incap) {                        /* packet bigger than buffer */
            size_t nc = c->incap * 2;
            c->in = realloc(c->in, nc); c->incap = nc;
        }
        ssize_t r = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
        if (r == 0) { conn_close(c, 1); return; }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_close(c, 1); return;
        }
        c->inlen += (size_t)r;
        rx_bytes += (size_t)r;
        tnow = now_ns();
        size_t off = 0;
        while (c->inlen - off >= 2 && c->state != ST_CLOSED) {
            size_t rl = 0, mul = 1, i = 1;
            int done = 0;
            while (i < 5 && off + i < c->inlen) {
                uint8_t d = c->in[off + i++];
                rl += (d & 127) * mul; mul *= 128;
                if (!(d & 128)) { done = 1; break; }
            }
            if (!done) {
                if (i >= 5) { err.protocol++; conn_close(c, 1); return; }
                break;
            }
            if (c->inlen - off < i + rl) break;
            on_packet(c, c->in[off], c->in + off + i, rl, tnow);
            off += i + rl;
        }
        if (c->state == ST_CLOSED) return;
        if (off) { memmove(c->in, c->in + off, c->inlen - off); c->inlen -= off; }
        if ((size_t)r < c->incap / 2) break;               /* socket probably drained */
    }
    if (c->outlen > c->outoff) flush_out(c);
}

static int nonblock_connect(conn_t *c, struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(fd, (struct sockaddr *)sa, sizeof *sa);
    if (r < 0 && errno != EINPROGRESS) { close(fd); return -1; }
    c->fd = fd;
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)c->idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    c->epout = 1;
    return 0;
}

static void on_event(conn_t *c, uint32_t events) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_CONNECTING) {
        int e = 0; socklen_t l = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
        if (e || (events & (EPOLLERR | EPOLLHUP))) { conn_close(c, 1); return; }
        if (!(events & EPOLLOUT)) return;
        c->state = ST_WAIT_CONNACK;
        send_connect(c);
        flush_out(c);
        return;
    }
    if (events & EPOLLIN) on_readable(c);
    if (c->state == ST_CLOSED) return;
    if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        /* drain whatever is left (e.g. a v5 DISCONNECT) before counting the close */
        on_readable(c);
        conn_close(c, 1);
        return;
    }
    if ((events & EPOLLOUT) && c->outlen > c->outoff) flush_out(c);
}

/* ---------------------------------------------------------------- publishing */
static uint64_t t_start_ns;      /* start of warmup (rate mode origin) */

static void pump_publisher(conn_t *c, uint64_t tnow) {
    if (c->state != ST_READY || c->outlen > c->outoff) return;   /* still blocked on socket */
    topic_state_t *t = &topics[c->topic];
    int pi = c->idx;
    size_t plen = pub_tmpl_len[pi];
    uint64_t budget = (uint64_t)-1;
    if (o_rate > 0) {
        double per = o_rate / o_pubs;
        uint64_t due = (uint64_t)((double)(tnow - t_start_ns) / 1e9 * per);
        budget = due > c->sent ? due - c->sent : 0;
    }
    if (o_count && c->sent + budget > (uint64_t)o_count)
        budget = (uint64_t)o_count > c->sent ? (uint64_t)o_count - c->sent : 0;
    if (o_qos) {
        uint64_t room = c->inflight < o_window ? (uint64_t)(o_window - c->inflight) : 0;
        if (budget > room) budget = room;
    } else if (t->fanout > 0) {
        uint64_t got = t->delivered / (uint64_t)t->fanout + t->written_off;
        uint64_t lim = (uint64_t)o_q0_window * (uint64_t)t->pubs;
        uint64_t out = t->sent > got ? t->sent - got : 0;
        uint64_t room = out < lim ? lim - out : 0;
        /* hysteresis: refill in chunks of >= 1/4 window so writes stay batched */
        if (o_rate <= 0 && room < (lim + 3) / 4) room = 0;
        if (budget > room) budget = room;
    }
    if (!budget) return;
    if (!out_reserve(c, plen)) return;
    size_t fit = (c->outcap - c->outlen) / plen;
    if (budget > fit) budget = fit;
    uint8_t *dst = c->out + c->outlen;
    const uint8_t *tp = pub_tmpl[pi];
    size_t pid_off = pub_pid_off[pi], pl_off = pub_pl_off[pi];
    uint64_t ts = now_ns();
    if (!t_first_send_ns) t_first_send_ns = ts;
    uint32_t idx32 = (uint32_t)pi;
    for (uint64_t k = 0; k < budget; k++) {
        memcpy(dst, tp, plen);
        if (o_qos) {
            if (++c->next_pid == 0) c->next_pid = 1;
            dst[pid_off] = (uint8_t)(c->next_pid >> 8); dst[pid_off + 1] = (uint8_t)c->next_pid;
            c->inflight++;
        }
        if (o_size >= 16) {
            memcpy(dst + pl_off, &ts, 8);
            memcpy(dst + pl_off + 8, &idx32, 4);
            memcpy(dst + pl_off + 12, &c->seq, 4);
        }
        c->seq++;
        dst += plen;
    }
    c->outlen += plen * budget;
    c->sent += budget;
    t->sent += budget;
    flush_out(c);
}

/* ---------------------------------------------------------------- output */
static void print_json_errors(FILE *f) {
    fprintf(f, "\"errors\":{\"connect_failed\":%llu,\"connack_refused\":%llu,\"suback_refused\":%llu,"
               "\"disconnects\":%llu,\"protocol\":%llu,\"puback_refused\":%llu,\"seq_gaps\":%llu,"
               "\"dups\":%llu,\"stalls\":%llu,\"connect_timeout\":%llu,\"unacked\":%llu,\"lost\":%llu,\"misrouted\":%llu}",
            (unsigned long long)err.connect_failed, (unsigned long long)err.connack_refused,
            (unsigned long long)err.suback_refused, (unsigned long long)err.disconnects,
            (unsigned long long)err.protocol, (unsigned long long)err.puback_refused,
            (unsigned long long)err.seq_gaps, (unsigned long long)err.dups,
            (unsigned long long)err.stalls, (unsigned long long)err.connect_timeout,
            (unsigned long long)err.unacked, (unsigned long long)err.lost,
            (unsigned long long)err.misrouted);
}

static int errors_fatal(void) {
    /* QoS 0 may legitimately lose messages under load; that is reported, not fatal */
    uint64_t e = err.connect_failed + err.connack_refused + err.suback_refused + err.disconnects +
                 err.protocol + err.puback_refused + err.connect_timeout + err.misrouted;
    if (o_qos >= 1 && o_sub_qos >= 1) e += err.lost + err.seq_gaps + err.unacked;
    return e != 0;
}

static void usage(void) {
    fprintf(stderr,
        "usage: loadgen [--mode pubsub|idle] [--host H] [--port P] [--mqtt 4|5]\n"
        "  pubsub: --pubs N --subs M --topics T --qos 0|1 [--sub-qos Q] --size BYTES\n"
        "          --duration S --warmup S [--count N per publisher] [--rate MSG/S total]\n"
        "          --window W (QoS 1 inflight) --q0-window W --drain S\n"
        "  idle:   --conns N [--concurrency C] [--hold S]\n"
        "  common: --keepalive S --connect-timeout S --broker-pid PID[,PID...] --topic-prefix P\n"
        "          --sub-host H --sub-port P (subscribers on another node: cluster scenario)\n"
        "          --coalesce-us U (throughput mode: sleep U us after a small batch, so reads\n"
        "          and writes carry more messages per syscall)\n"
        "          --start-delay S (wait S s after all SUBACKs before publishing, e.g. for\n"
        "          routes to reach other cluster nodes)\n"
        "          --nodes H:P,H:P,... (several cluster nodes: topic t's publishers on node t mod N,\n"
        "          its subscribers on node (t+1) mod N; idle connection i on node i mod N)\n");
    exit(2);
}

static void on_signal(int s) { (void)s; stop_flag = 1; }

int main(int argc, char **argv) {
    static struct option lo[] = {
        {"mode", 1, 0, 'm'}, {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"pubs", 1, 0, 'P'},
        {"subs", 1, 0, 'S'}, {"topics", 1, 0, 'T'}, {"qos", 1, 0, 'q'}, {"sub-qos", 1, 0, 'Q'},
        {"size", 1, 0, 's'}, {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}, {"count", 1, 0, 'n'},
        {"rate", 1, 0, 'r'}, {"window", 1, 0, 'W'}, {"q0-window", 1, 0, 'z'}, {"drain", 1, 0, 'D'},
        {"mqtt", 1, 0, 'v'}, {"keepalive", 1, 0, 'k'}, {"conns", 1, 0, 'c'},
        {"concurrency", 1, 0, 'C'}, {"hold", 1, 0, 'H'}, {"connect-timeout", 1, 0, 't'},
        {"broker-pid", 1, 0, 'b'}, {"topic-prefix", 1, 0, 'x'}, {"sub-port", 1, 0, 'o'}, {"coalesce-us", 1, 0, 'u'}, {"start-delay", 1, 0, 'y'}, {"sub-host", 1, 0, 'O'}, {"nodes", 1, 0, 'N'}, {"help", 0, 0, '?'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': if (!strcmp(optarg, "idle")) o_idle = 1; else if (strcmp(optarg, "pubsub")) usage(); break;
        case 'h': o_host = optarg; break;
        case 'p': o_port = atoi(optarg); break;
        case 'P': o_pubs = atoi(optarg); break;
        case 'S': o_subs = atoi(optarg); break;
        case 'T': o_topics = atoi(optarg); break;
        case 'q': o_qos = atoi(optarg); break;
        case 'Q': o_sub_qos = atoi(optarg); break;
        case 's': o_size = atoi(optarg); break;
        case 'd': o_duration = atof(optarg); break;
        case 'w': o_warmup = atof(optarg); break;
        case 'n': o_count = atoll(optarg); break;
        case 'r': o_rate = atof(optarg); break;
        case 'W': o_window = atoi(optarg); break;
        case 'z': o_q0_window = atoi(optarg); break;
        case 'D': o_drain = atof(optarg); break;
        case 'v': o_mqtt = atoi(optarg); if (o_mqtt == 3) o_mqtt = 4; break;
        case 'k': o_keepalive = atoi(optarg); break;
        case 'c': o_conns = atoi(optarg); break;
        case 'C': o_concurrency = atoi(optarg); break;
        case 'H': o_hold = atof(optarg); break;
        case 't': o_connect_timeout = atof(optarg); break;
        case 'b': {
            char *s = optarg, *tok;
            while ((tok = strsep(&s, ",")) && n_broker_pids < MAX_PIDS) if (*tok) broker_pids[n_broker_pids++] = atoi(tok);
            break;
        }
        case 'y': o_start_delay = atof(optarg); break;
        case 'u': o_coalesce_us = atoi(optarg); break;
        case 'o': o_sub_port = atoi(optarg); break;
        case 'O': o_sub_host = optarg; break;
        case 'N': o_nodes = optarg; break;
        case 'x': snprintf(o_prefix, sizeof o_prefix, "%s", optarg); break;
        default: usage();
        }
    }
    if (o_sub_qos < 0) o_sub_qos = o_qos;
    if (o_qos < 0 || o_qos > 1 || o_sub_qos < 0 || o_sub_qos > 1 || (o_mqtt != 4 && o_mqtt != 5) ||
        o_pubs < 0 || o_subs < 0 || o_topics < 1 || o_size < 0 || o_window < 1) usage();

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    snprintf(client_prefix, sizeof client_prefix, "lg%d", (int)getpid());

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o_port)};
    if (inet_pton(AF_INET, o_host, &sa.sin_addr) != 1) { fprintf(stderr, "bad --host\n"); return 2; }
    struct sockaddr_in sa_sub = sa;
    if (o_sub_port) sa_sub.sin_port = htons((uint16_t)o_sub_port);
    if (o_sub_host && inet_pton(AF_INET, o_sub_host, &sa_sub.sin_addr) != 1) { fprintf(stderr, "bad --sub-host\n"); return 2; }
    if (o_nodes) {
        char *copy = strdup(o_nodes), *s = copy, *tok;
        while ((tok = strsep(&s, ",")) && n_nodes < MAX_NODES) {
            if (!*tok) continue;
            char *colon = strrchr(tok, ':');
            if (!colon) { fprintf(stderr, "bad --nodes entry %s (want HOST:PORT)\n", tok); return 2; }
            *colon = 0;
            struct sockaddr_in *a = &node_sa[n_nodes];
            memset(a, 0, sizeof *a);
            a->sin_family = AF_INET; a->sin_port = htons((uint16_t)atoi(colon + 1));
            if (inet_pton(AF_INET, tok, &a->sin_addr) != 1) { fprintf(stderr, "bad --nodes host %s\n", tok); return 2; }
            n_nodes++;
        }
        free(copy);
        if (!n_nodes) { fprintf(stderr, "empty --nodes\n"); return 2; }
    }
    ep = epoll_create1(EPOLL_CLOEXEC);

    nconns = o_idle ? o_conns : o_pubs + o_subs;
    conns = calloc((size_t)nconns, sizeof *conns);
    topics = calloc((size_t)o_topics, sizeof *topics);
    pub_tmpl = calloc((size_t)o_pubs + 1, sizeof *pub_tmpl);
    pub_tmpl_len = calloc((size_t)o_pubs + 1, sizeof(size_t));
    pub_pid_off = calloc((size_t)o_pubs + 1, sizeof(size_t));
    pub_pl_off = calloc((size_t)o_pubs + 1, sizeof(size_t));
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->idx = i; c->fd = -1; c->state = ST_CLOSED;
        if (o_idle) { c->role = ROLE_IDLE; c->incap = 64; c->outcap = 128; }
        else if (i < o_pubs) { c->role = ROLE_PUB; c->topic = i % o_topics; c->incap = 16384; c->outcap = 65536; }
        else {
            c->role = ROLE_SUB; c->topic = (i - o_pubs) % o_topics; c->incap = 262144; c->outcap = 16384;
            c->next_seq = calloc((size_t)o_pubs + 1, sizeof(uint32_t));
        }
        c->in = malloc(c->incap); c->out = malloc(c->outcap);
        if (c->role == ROLE_PUB) { topics[c->topic].pubs++; build_pub_template(i); }
        if (c->role == ROLE_SUB) topics[c->topic].fanout++;
    }
    closed_count = nconns;   /* none opened yet */

    uint64_t t0 = now_ns();
    int opened = 0;
    int pending = 0;
    /* ---- connect phase */
    while (!stop_flag) {
        pending = 0;
        for (int i = 0; i < opened; i++) if (conns[i].state != ST_READY && conns[i].state != ST_CLOSED) pending++;
        while (opened < nconns && pending < o_concurrency) {
            closed_count--;
            conn_t *oc = &conns[opened];
            struct sockaddr_in *dst = oc->role == ROLE_SUB ? &sa_sub : &sa;
            if (n_nodes) dst = &node_sa[(oc->role == ROLE_IDLE ? oc->idx
                                         : oc->topic + (oc->role == ROLE_SUB)) % n_nodes];
            if (nonblock_connect(oc, dst) < 0) { closed_count++; err.connect_failed++; }
            else pending++;
            opened++;
        }
        if (opened == nconns && ready_count + closed_count >= nconns) break;
        if ((double)(now_ns() - t0) / 1e9 > o_connect_timeout) { err.connect_timeout++; break; }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++) on_event(&conns[evs[k].data.u32], evs[k].events);
    }
    double connect_s = (double)(now_ns() - t0) / 1e9;
    int connected = ready_count;

    if (o_idle) {
        printf("{\"event\":\"connected\",\"clients\":%d,\"requested\":%d,\"connect_s\":%.3f}\n",
               connected, nconns, connect_s);
        fflush(stdout);
        struct epoll_event sev = {.events = EPOLLIN, .data.u32 = (uint32_t)TAG_STDIN};
        int watch_stdin = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) == 0;
        uint64_t hold_end = now_ns() + (uint64_t)(o_hold * 1e9);
        uint64_t last_ping_scan = now_ns();
        while (!stop_flag && now_ns() < hold_end) {
            struct epoll_event evs[256];
            int n = epoll_wait(ep, evs, 256, 200);
            int eof = 0;
            for (int k = 0; k < n; k++) {
                if (evs[k].data.u32 == (uint32_t)TAG_STDIN) {
                    char buf[256];
                    ssize_t r = read(0, buf, sizeof buf);
                    if (r <= 0) eof = 1;
                    continue;
                }
                on_event(&conns[evs[k].data.u32], evs[k].events);
            }
            if (eof && watch_stdin) break;
            uint64_t tn = now_ns();
            if (o_keepalive > 0 && tn - last_ping_scan > 1000000000ull) {
                last_ping_scan = tn;
                for (int i = 0; i < nconns; i++) {
                    conn_t *c = &conns[i];
                    if (c->state == ST_READY && tn - c->last_tx_ns > (uint64_t)o_keepalive * 500000000ull) {
                        uint8_t ping[2] = {0xC0, 0};
                        out_append(c, ping, 2);
                        flush_out(c);
                    }
                }
            }
        }
        int still = ready_count;
        printf("{\"mode\":\"idle\",\"requested\":%d,\"connected\":%d,\"still_connected\":%d,"
               "\"connect_s\":%.3f,\"cpu_s\":%.3f,",
               nconns, connected, still, connect_s, self_cpu_s());
        print_json_errors(stdout);
        int ok = connected == nconns && still == nconns && !errors_fatal();
        printf(",\"ok\":%s}\n", ok ? "true" : "false");
        fflush(stdout);
        for (int i = 0; i < nconns; i++) if (conns[i].state == ST_READY) {
            uint8_t d[2] = {0xE0, 0};
            if (write(conns[i].fd, d, 2) < 0) {}
            conn_close(&conns[i], 0);
        }
        return ok ? 0 : 1;
    }

    /* ---- pubsub: warmup, measure, drain */
    if (o_start_delay > 0 && !err.connect_timeout) {      /* keep serving sockets meanwhile */
        uint64_t until = now_ns() + (uint64_t)(o_start_delay * 1e9);
        while (!stop_flag && now_ns() < until) {
            struct epoll_event evs[64];
            int n = epoll_wait(ep, evs, 64, 10);
            for (int k = 0; k < n; k++) on_event(&conns[evs[k].data.u32], evs[k].events);
        }
        connected = ready_count;
    }
    if (o_rate > 0) {
        double per = o_rate / (o_pubs ? o_pubs : 1);
        double period_s = 1.0 / per;
        if (period_s < 0.0001) period_s = 0.0001;            /* >= 100 us ticks */
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct itimerspec its = {0};
        its.it_interval.tv_sec = (time_t)period_s;
        its.it_interval.tv_nsec = (long)((period_s - (double)(time_t)period_s) * 1e9);
        its.it_value = its.it_interval;
        timerfd_settime(tfd, 0, &its, NULL);
        struct epoll_event tev = {.events = EPOLLIN, .data.u32 = (uint32_t)TAG_TIMER};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    }
    int all_ready = !err.connect_timeout && connected == nconns;
    t_start_ns = now_ns();
    uint64_t t_meas0 = 0, t_meas1 = 0, t_drain_end = 0;
    uint64_t sent0 = 0, recv0 = 0, sent1 = 0, recv1 = 0, acked0 = 0, acked1 = 0;
    double cpu0 = 0, cpu1 = 0, bcpu0 = -1, bcpu1 = -1, mcpu0 = -1, mcpu1 = -1;
    phase = all_ready ? PH_WARMUP : PH_DONE;
    if (phase == PH_WARMUP && o_warmup <= 0) { phase = PH_MEASURE; }
    uint64_t warm_end = t_start_ns + (uint64_t)(o_warmup * 1e9);
    uint64_t meas_end = warm_end + (uint64_t)(o_duration * 1e9);
    if (phase == PH_MEASURE) { t_meas0 = t_start_ns; cpu0 = self_cpu_s(); bcpu0 = broker_cpu_s_each(bcpu_each0); mcpu0 = machine_busy_s(); }

#define SUM(field, r) ({ uint64_t _s = 0; for (int _i = 0; _i < nconns; _i++) if (conns[_i].role == (r)) _s += conns[_i].field; _s; })
    uint64_t last_stall_scan = now_ns();
    while (phase != PH_DONE) {
        if (stop_flag) break;
        uint64_t tn = now_ns();
        if (phase == PH_WARMUP && tn >= warm_end) {
            phase = PH_MEASURE; t_meas0 = tn;
            sent0 = SUM(sent, ROLE_PUB); acked0 = SUM(acked, ROLE_PUB); recv0 = SUM(received, ROLE_SUB);
            cpu0 = self_cpu_s(); bcpu0 = broker_cpu_s_each(bcpu_each0); mcpu0 = machine_busy_s();
        }
        int count_done = 0;
        if (o_count) {
            count_done = 1;
            for (int i = 0; i < o_pubs; i++) if (conns[i].state == ST_READY && conns[i].sent < (uint64_t)o_count) count_done = 0;
        }
        if (phase == PH_MEASURE && (tn >= meas_end || count_done || ready_count < nconns)) {
            phase = PH_DRAIN; t_meas1 = tn;
            sent1 = SUM(sent, ROLE_PUB); acked1 = SUM(acked, ROLE_PUB); recv1 = SUM(received, ROLE_SUB);
            cpu1 = self_cpu_s(); bcpu1 = broker_cpu_s_each(bcpu_each1); mcpu1 = machine_busy_s();
            t_drain_end = tn + (uint64_t)(o_drain * 1e9);
        }
        if (phase == PH_DRAIN) {
            uint64_t expected = 0, delivered = 0;
            for (int t = 0; t < o_topics; t++) { expected += topics[t].sent * (uint64_t)topics[t].fanout; delivered += topics[t].delivered; }
            int acked_all = 1;
            for (int i = 0; i < o_pubs; i++) if (conns[i].state == ST_READY && conns[i].inflight) acked_all = 0;
            if ((delivered >= expected && acked_all) || tn >= t_drain_end || ready_count == 0) { phase = PH_DONE; break; }
        }
        if (phase == PH_WARMUP || phase == PH_MEASURE)
            for (int i = 0; i < o_pubs; i++) pump_publisher(&conns[i], tn);
        /* QoS 0 stall detection: no progress for 1 s on a topic whose publishers are blocked */
        if (!o_qos && tn - last_stall_scan > 100000000ull) {
            last_stall_scan = tn;
            for (int t = 0; t < o_topics; t++) {
                topic_state_t *ts = &topics[t];
                if (ts->delivered != ts->last_delivered) { ts->last_delivered = ts->delivered; ts->last_progress_ns = tn; continue; }
                if (!ts->fanout) continue;
                uint64_t got = ts->delivered / (uint64_t)ts->fanout + ts->written_off;
                if (ts->sent > got && ts->last_progress_ns && tn - ts->last_progress_ns > 1000000000ull &&
                    phase != PH_DRAIN) {
                    err.stalls++;
                    ts->written_off += ts->sent - got;
                    ts->last_progress_ns = tn;
                }
                if (!ts->last_progress_ns) ts->last_progress_ns = tn;
            }
        }
        int timeout = o_rate > 0 ? 5 : 1;
        /* publishers with budget and an empty buffer need no epoll wakeup: poll quickly */
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, (phase == PH_DRAIN) ? 5 : timeout);
        size_t rx0 = rx_bytes;
        for (int k = 0; k < n; k++) {
            uint32_t tag = evs[k].data.u32;
            if (tag == (uint32_t)TAG_TIMER) { uint64_t x; if (read(tfd, &x, 8) < 0) {} continue; }
            on_event(&conns[tag], evs[k].events);
        }
        /* interrupt coalescing for throughput runs: let data accumulate in the socket
           buffers so the next reads/writes carry more messages per syscall */
        if (o_coalesce_us > 0 && o_rate <= 0 && phase != PH_DRAIN && rx_bytes - rx0 < 32768) {
            struct timespec ts = {0, (long)o_coalesce_us * 1000};
            nanosleep(&ts, NULL);
        }
    }
    uint64_t t_end = now_ns();
    if (!t_meas1) {                                      /* interrupted or never measured */
        t_meas1 = t_end; if (!t_meas0) t_meas0 = t_end;
        sent1 = SUM(sent, ROLE_PUB); acked1 = SUM(acked, ROLE_PUB); recv1 = SUM(received, ROLE_SUB);
        cpu1 = self_cpu_s(); bcpu1 = broker_cpu_s_each(bcpu_each1); mcpu1 = machine_busy_s();
    }
    uint64_t sent = SUM(sent, ROLE_PUB), acked = SUM(acked, ROLE_PUB), received = SUM(received, ROLE_SUB);
    uint64_t expected = 0;
    for (int t = 0; t < o_topics; t++) expected += topics[t].sent * (uint64_t)topics[t].fanout;
    if (received < expected) err.lost = expected - received;
    if (o_qos && acked < sent) err.unacked = sent - acked;
    double secs = (double)(t_meas1 - t_meas0) / 1e9;
    if (secs <= 0) secs = 1e-9;
    double cpu_share = (cpu1 - cpu0) / secs;
    double bshare = (bcpu0 >= 0 && bcpu1 >= 0) ? (bcpu1 - bcpu0) / secs : -1;
    int ok = all_ready && !stop_flag && !errors_fatal();

    printf("{\"mode\":\"pubsub\",\"mqtt\":%d,\"pubs\":%d,\"subs\":%d,\"topics\":%d,\"qos\":%d,\"sub_qos\":%d,"
           "\"size\":%d,\"rate\":%.0f,\"window\":%d,\"q0_window\":%d,\"connect_s\":%.3f,\"measure_s\":%.3f,",
           o_mqtt, o_pubs, o_subs, o_topics, o_qos, o_sub_qos, o_size, o_rate, o_window, o_q0_window,
           connect_s, secs);
    printf("\"sent\":%llu,\"acked\":%llu,\"expected\":%llu,\"received\":%llu,"
           "\"sent_in_window\":%llu,\"received_in_window\":%llu,"
           "\"msgs_in_per_s\":%.1f,\"acked_per_s\":%.1f,\"msgs_out_per_s\":%.1f,",
           (unsigned long long)sent, (unsigned long long)acked, (unsigned long long)expected,
           (unsigned long long)received, (unsigned long long)(sent1 - sent0),
           (unsigned long long)(recv1 - recv0), (double)(sent1 - sent0) / secs,
           (double)(acked1 - acked0) / secs, (double)(recv1 - recv0) / secs);
    double span = t_last_recv_ns > t_first_send_ns ? (double)(t_last_recv_ns - t_first_send_ns) / 1e9 : 0;
    printf("\"span_s\":%.3f,\"sustained_out_per_s\":%.1f,", span, span > 0 ? (double)received / span : 0.0);
    printf("\"latency_us\":{\"count\":%llu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},",
           (unsigned long long)hist_count, h_pct(50), h_pct(90), h_pct(99), h_pct(99.9),
           hist_count ? (double)hist_max_ns / 1000.0 : -1.0);
    double mshare = (mcpu0 >= 0 && mcpu1 >= 0) ? (mcpu1 - mcpu0) / secs : -1;
    printf("\"loadgen_cpu_share\":%.3f,\"broker_cpu_share\":%.3f,\"machine_busy_cores\":%.3f,"
           "\"ncpu\":%ld,", cpu_share, bshare, mshare, sysconf(_SC_NPROCESSORS_ONLN));
    if (n_nodes) {
        printf("\"nodes\":%d,\"broker_cpu_s_each\":[", n_nodes);
        for (int i = 0; i < n_broker_pids; i++)
            printf("%s%.3f", i ? "," : "", (bcpu0 >= 0 && bcpu1 >= 0) ? bcpu_each1[i] - bcpu_each0[i] : -1.0);
        printf("],");
    }
    print_json_errors(stdout);
    printf(",\"interrupted\":%s,\"ok\":%s}\n", stop_flag ? "true" : "false", ok ? "true" : "false");
    fflush(stdout);

    for (int i = 0; i < nconns; i++) if (conns[i].state != ST_CLOSED) {
        uint8_t d[2] = {0xE0, 0};
        if (conns[i].state == ST_READY && write(conns[i].fd, d, 2) < 0) {}
        conn_close(&conns[i], 0);
    }
    return ok ? 0 : 1;
}
