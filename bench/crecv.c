/*
 * crecv: the C reference receiver for the capture bench (issue 12).
 *
 *   crecv --sip-port P [--host 127.0.0.1] [--rtp-min 10000] [--rtp-max 32766]
 *         [--spool DIR] [--rcvbuf BYTES] [--batch N] [--flush-ms MS]
 *
 * It takes the load callvault's capture takes, the way a lean recorder would,
 * so that the bench can divide callvault's capture CPU per packet by this one's
 * in the same run:
 *   - a minimal SIP UAS on UDP: an INVITE gets two RTP sockets (one per m-line,
 *     ports from the same range callvault uses, 1 MB SO_RCVBUF as callvault asks)
 *     and a 200 OK whose SDP names them; a retransmitted INVITE gets the same
 *     200; a BYE reads what the call's sockets still hold, closes them and gets
 *     a 200 (packets sent before the BYE are not lost to its processing); ACK is
 *     absorbed, anything else gets a 200;
 *   - one thread, one epoll set; a readable RTP socket is read with recvmmsg in
 *     batches (default 64) until it is empty; one clock read per batch;
 *   - each packet's fixed header is checked (RFC 3550 5.1: version 2, at least
 *     12 bytes) and the packet is appended with its arrival time to the
 *     stream's buffer, which is written to the stream's spool file every 250 ms
 *     (as callvault's spool flush) when --spool is given, else discarded.
 * It parses no more SIP than the bench's generator sends (bench/loadgen.c).
 *
 * Every second it prints "STAT packets=... calls=...", and on SIGTERM/SIGINT
 * a last line "RESULT packets=... bytes=... malformed=... calls=... cpu_s=...".
 * Binds 127.0.0.1 unless --host names another loopback address.
 *
 * Build: gcc -O2 -Wall -o bench/bin/crecv bench/crecv.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIP 65536
#define MAX_BATCH 256
#define PKT_MAX 2048
#define ID_MAX 160
#define REPLY_MAX 2048
#define TAG_SIP 0
#define TAG_TIMER 1
#define TAG_STREAM 2 /* data.u64 = TAG_STREAM + stream index */

typedef struct {
    int fd;          /* -1: free */
    int port;
    uint8_t *buf;    /* records: u32 arrival ms, u16 length, the packet */
    size_t len, cap;
    int spool_fd;    /* -1: not opened yet */
    uint32_t index;  /* for the spool file name */
} stream_t;

typedef struct {
    int used;
    char call_id[ID_MAX];
    int stream[2];   /* stream indexes */
    char reply[REPLY_MAX];
    int reply_len;
} call_t;

static const char *opt_host = "127.0.0.1", *opt_spool = NULL;
static int opt_sip_port = 5060, opt_rtp_min = 10000, opt_rtp_max = 32766;
static int opt_rcvbuf = 1 << 20, opt_batch = 64, opt_flush_ms = 250;

static int ep_fd, sip_fd, timer_fd;
static struct in_addr host_addr;
static stream_t *streams;
static int nstreams_cap;
static call_t *calls;
static int ncalls_cap;
static uint8_t *port_used;
static int port_cursor;
static uint32_t stream_serial;
static volatile sig_atomic_t stopping;

static uint64_t packets, bytes, malformed, calls_total, calls_ended, port_exhausted;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crecv: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---------------------------------------------------------------- streams */
static void stream_flush(stream_t *s) {
    if (!s->len) return;
    if (opt_spool) {
        if (s->spool_fd < 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/stream-%u.rtp", opt_spool, s->index);
            s->spool_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        }
        if (s->spool_fd >= 0) {
            size_t off = 0;
            while (off < s->len) {
                ssize_t w = write(s->spool_fd, s->buf + off, s->len - off);
                if (w <= 0) break;
                off += (size_t)w;
            }
        }
    }
    s->len = 0;
}

static int stream_open(void) {
    int idx = -1;
    for (int i = 0; i < nstreams_cap; i++)
        if (streams[i].fd < 0) { idx = i; break; }
    if (idx < 0) {
        int old = nstreams_cap;
        nstreams_cap = nstreams_cap ? nstreams_cap * 2 : 1024;
        streams = realloc(streams, (size_t)nstreams_cap * sizeof *streams);
        if (!streams) die("out of memory");
        for (int i = old; i < nstreams_cap; i++) {
            memset(&streams[i], 0, sizeof streams[i]);
            streams[i].fd = -1;
            streams[i].spool_fd = -1;
        }
        idx = old;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt_rcvbuf, sizeof opt_rcvbuf);
    int span = opt_rtp_max - opt_rtp_min + 1;
    for (int tries = 0; tries < span; tries++) {
        int port = opt_rtp_min + (port_cursor++ % span);
        if (port_used[port - opt_rtp_min]) continue;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr = host_addr};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            port_used[port - opt_rtp_min] = 1;
            stream_t *s = &streams[idx];
            s->fd = fd;
            s->port = port;
            s->len = 0;
            s->spool_fd = -1;
            s->index = stream_serial++;
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_STREAM + (uint64_t)idx};
            epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev);
            return idx;
        }
    }
    close(fd);
    port_exhausted++;
    return -1;
}

static void stream_close(int idx) {
    stream_t *s = &streams[idx];
    if (s->fd < 0) return;
    stream_flush(s);
    if (s->spool_fd >= 0) close(s->spool_fd);
    close(s->fd); /* closing removes it from the epoll set */
    port_used[s->port - opt_rtp_min] = 0;
    s->fd = -1;
    s->spool_fd = -1;
}

static void stream_append(stream_t *s, uint32_t arrival, const uint8_t *p, uint16_t n) {
    size_t need = s->len + 6 + n;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < need) cap *= 2;
        s->buf = realloc(s->buf, cap);
        if (!s->buf) die("out of memory");
        s->cap = cap;
    }
    uint8_t *h = s->buf + s->len;
    memcpy(h, &arrival, 4);
    memcpy(h + 4, &n, 2);
    memcpy(h + 6, p, n);
    s->len = need;
}

static uint8_t rx[MAX_BATCH][PKT_MAX];

static void stream_read(int idx) {
    struct mmsghdr mm[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    int batch = opt_batch;
    stream_t *s = &streams[idx];
    for (;;) {
        for (int i = 0; i < batch; i++) {
            iov[i].iov_base = rx[i];
            iov[i].iov_len = PKT_MAX;
            memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(s->fd, mm, (unsigned)batch, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        uint32_t arrival = (uint32_t)now_ms();
        for (int i = 0; i < n; i++) {
            unsigned len = mm[i].msg_len;
            if (len < 12 || (rx[i][0] >> 6) != 2) { malformed++; continue; }
            stream_append(s, arrival, rx[i], (uint16_t)len);
            packets++;
            bytes += len;
        }
        if (n < batch) return;
    }
}

/* ---------------------------------------------------------------- SIP */
static const char *hdr(const char *msg, const char *end, const char *name, const char *compact,
                       int *vlen) {
    const char *p = strstr(msg, "\r\n");
    size_t nl = strlen(name);
    while (p && p + 2 < end) {
        p += 2;
        if (p[0] == '\r' && p[1] == '\n') return NULL;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = strstr(p, "\r\n");
        if (!colon || !eol) return NULL;
        size_t n = (size_t)(colon - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if ((n == nl && strncasecmp(p, name, nl) == 0) ||
            (compact && n == strlen(compact) && strncasecmp(p, compact, n) == 0)) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            *vlen = (int)(eol - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

static int header_lines(char *out, int cap, const char *msg, const char *end, const char *totag) {
    const char *names[] = {"Via", "From", "To", "Call-ID", "CSeq"};
    const char *compact[] = {"v", "f", "t", "i", NULL};
    int n = 0;
    for (int k = 0; k < 5; k++) {
        int vl;
        const char *v = hdr(msg, end, names[k], compact[k], &vl);
        if (!v || n + vl + 64 >= cap) continue;
        int tagged = k == 2 && totag && !memmem(v, (size_t)vl, ";tag=", 5);
        n += snprintf(out + n, (size_t)(cap - n), "%s: %.*s%s%s\r\n", names[k], vl, v,
                      tagged ? ";tag=" : "", tagged ? totag : "");
    }
    return n;
}

static void reply(const struct sockaddr_in *to, const char *text, int len) {
    sendto(sip_fd, text, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof *to);
}

static call_t *find_call(const char *id, int idlen) {
    for (int i = 0; i < ncalls_cap; i++)
        if (calls[i].used && (int)strlen(calls[i].call_id) == idlen &&
            memcmp(calls[i].call_id, id, (size_t)idlen) == 0)
            return &calls[i];
    return NULL;
}

static call_t *new_call(void) {
    for (int i = 0; i < ncalls_cap; i++)
        if (!calls[i].used) return &calls[i];
    int old = ncalls_cap;
    ncalls_cap = ncalls_cap ? ncalls_cap * 2 : 512;
    calls = realloc(calls, (size_t)ncalls_cap * sizeof *calls);
    if (!calls) die("out of memory");
    memset(calls + old, 0, (size_t)(ncalls_cap - old) * sizeof *calls);
    return &calls[old];
}

static void on_invite(const char *msg, const char *end, const struct sockaddr_in *from) {
    int idlen;
    const char *id = hdr(msg, end, "Call-ID", "i", &idlen);
    if (!id || idlen <= 0 || idlen >= ID_MAX) return;
    call_t *c = find_call(id, idlen);
    if (c) { reply(from, c->reply, c->reply_len); return; } /* a retransmission */
    c = new_call();
    memset(c, 0, sizeof *c);
    c->stream[0] = stream_open();
    c->stream[1] = c->stream[0] >= 0 ? stream_open() : -1;
    if (c->stream[1] < 0) {
        if (c->stream[0] >= 0) stream_close(c->stream[0]);
        char out[REPLY_MAX];
        int n = snprintf(out, sizeof out, "SIP/2.0 503 Service Unavailable\r\n");
        n += header_lines(out + n, (int)sizeof out - n, msg, end, "crecv");
        n += snprintf(out + n, sizeof out - (size_t)n, "Content-Length: 0\r\n\r\n");
        reply(from, out, n);
        return;
    }
    c->used = 1;
    memcpy(c->call_id, id, (size_t)idlen);
    c->call_id[idlen] = 0;
    calls_total++;
    char sdp[512];
    int sl = snprintf(sdp, sizeof sdp,
                      "v=0\r\no=crecv 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
                      "m=audio %d RTP/AVP 0 101\r\na=recvonly\r\n"
                      "m=audio %d RTP/AVP 0 101\r\na=recvonly\r\n",
                      opt_host, opt_host, streams[c->stream[0]].port, streams[c->stream[1]].port);
    char tag[32];
    snprintf(tag, sizeof tag, "cr%" PRIu64, calls_total);
    int n = snprintf(c->reply, sizeof c->reply, "SIP/2.0 200 OK\r\n");
    n += header_lines(c->reply + n, (int)sizeof c->reply - n - sl - 200, msg, end, tag);
    n += snprintf(c->reply + n, sizeof c->reply - (size_t)n,
                  "Contact: <sip:crecv@%s:%d>\r\nContent-Type: application/sdp\r\n"
                  "Content-Length: %d\r\n\r\n%s",
                  opt_host, opt_sip_port, sl, sdp);
    c->reply_len = n;
    reply(from, c->reply, n);
}

static void on_sip(char *msg, int len, const struct sockaddr_in *from) {
    if (len <= 0) return;
    msg[len] = 0;
    const char *end = msg + len;
    if (strncmp(msg, "SIP/2.0 ", 8) == 0) return; /* a response: nothing to do */
    if (strncmp(msg, "ACK ", 4) == 0) return;
    if (strncmp(msg, "INVITE ", 7) == 0) { on_invite(msg, end, from); return; }
    if (strncmp(msg, "BYE ", 4) == 0) {
        int idlen;
        const char *id = hdr(msg, end, "Call-ID", "i", &idlen);
        call_t *c = id ? find_call(id, idlen) : NULL;
        if (c) {
            stream_read(c->stream[0]); /* what was sent before the BYE is kept */
            stream_read(c->stream[1]);
            stream_close(c->stream[0]);
            stream_close(c->stream[1]);
            c->used = 0;
            calls_ended++;
        }
    }
    char out[REPLY_MAX];
    int n = snprintf(out, sizeof out, "SIP/2.0 200 OK\r\n");
    n += header_lines(out + n, (int)sizeof out - n - 32, msg, end, NULL);
    n += snprintf(out + n, sizeof out - (size_t)n, "Content-Length: 0\r\n\r\n");
    reply(from, out, n);
}

static char sipbuf[MAX_SIP + 1];

static void sip_read(void) {
    for (int i = 0; i < 256; i++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(sip_fd, sipbuf, MAX_SIP, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0) return;
        on_sip(sipbuf, (int)n, &from);
    }
}

/* ---------------------------------------------------------------- main */
static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: crecv --sip-port P [--host 127.0.0.1] [--rtp-min N] [--rtp-max N]\n"
            "             [--spool DIR] [--rcvbuf BYTES] [--batch N] [--flush-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
        if (ARG("--sip-port")) opt_sip_port = atoi(v);
        else if (ARG("--host")) opt_host = v;
        else if (ARG("--rtp-min")) opt_rtp_min = atoi(v);
        else if (ARG("--rtp-max")) opt_rtp_max = atoi(v);
        else if (ARG("--spool")) opt_spool = v;
        else if (ARG("--rcvbuf")) opt_rcvbuf = atoi(v);
        else if (ARG("--batch")) opt_batch = atoi(v);
        else if (ARG("--flush-ms")) opt_flush_ms = atoi(v);
        else usage();
#undef ARG
    }
    if (opt_sip_port <= 0 || opt_sip_port > 65535 || opt_rtp_min <= 0 || opt_rtp_max > 65535 ||
        opt_rtp_min > opt_rtp_max || opt_batch < 1 || opt_batch > MAX_BATCH || opt_flush_ms < 10)
        die("option out of range");
    if (inet_pton(AF_INET, opt_host, &host_addr) != 1) die("bad --host");
    if ((ntohl(host_addr.s_addr) >> 24) != 127) die("--host must be a loopback address");
    if (opt_spool && mkdir(opt_spool, 0700) < 0 && errno != EEXIST)
        die("spool %s: %s", opt_spool, strerror(errno));
    port_used = calloc((size_t)(opt_rtp_max - opt_rtp_min + 1), 1);
    if (!port_used) die("out of memory");

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ep_fd = epoll_create1(EPOLL_CLOEXEC);
    sip_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep_fd < 0 || sip_fd < 0) die("socket: %s", strerror(errno));
    int big = 16 << 20;
    if (setsockopt(sip_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        setsockopt(sip_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_sip_port),
                             .sin_addr = host_addr};
    if (bind(sip_fd, (struct sockaddr *)&la, sizeof la) < 0) die("bind: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_SIP};
    epoll_ctl(ep_fd, EPOLL_CTL_ADD, sip_fd, &ev);

    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{opt_flush_ms / 1000, (opt_flush_ms % 1000) * 1000000L},
                             {opt_flush_ms / 1000, (opt_flush_ms % 1000) * 1000000L}};
    timerfd_settime(timer_fd, 0, &its, NULL);
    ev.data.u64 = TAG_TIMER;
    epoll_ctl(ep_fd, EPOLL_CTL_ADD, timer_fd, &ev);

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("READY sip=%s:%d rtp=%d-%d batch=%d spool=%s\n", opt_host, opt_sip_port, opt_rtp_min,
           opt_rtp_max, opt_batch, opt_spool ? opt_spool : "-");
    int64_t next_stat = now_ms() + 1000;
    struct epoll_event evs[256];
    while (!stopping) {
        int n = epoll_wait(ep_fd, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_SIP) sip_read();
            else if (tag == TAG_TIMER) {
                uint64_t exp;
                if (read(timer_fd, &exp, sizeof exp) > 0)
                    for (int k = 0; k < nstreams_cap; k++)
                        if (streams[k].fd >= 0) stream_flush(&streams[k]);
            } else {
                int idx = (int)(tag - TAG_STREAM);
                if (idx < nstreams_cap && streams[idx].fd >= 0) stream_read(idx);
            }
        }
        int64_t t = now_ms();
        if (t >= next_stat) {
            printf("STAT packets=%" PRIu64 " calls=%" PRIu64 " ended=%" PRIu64 "\n", packets,
                   calls_total, calls_ended);
            next_stat = t + 1000;
        }
    }
    for (int k = 0; k < nstreams_cap; k++)
        if (streams[k].fd >= 0) stream_close(k);
    printf("RESULT packets=%" PRIu64 " bytes=%" PRIu64 " malformed=%" PRIu64 " calls=%" PRIu64
           " ended=%" PRIu64 " port_exhausted=%" PRIu64 " cpu_s=%.3f\n",
           packets, bytes, malformed, calls_total, calls_ended, port_exhausted, cpu_seconds());
    return 0;
}
