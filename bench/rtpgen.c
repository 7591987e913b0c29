/*
 * callvault RTP relay load generator and sink (UDP, single thread, epoll).
 *
 *   rtpgen --pairs N --rate PPS --duration D
 *          [--bind-a ADDR] [--bind-b ADDR] [--target-host ADDR]
 *
 * Binds 2N UDP sockets (side a of each port pair on --bind-a, side b on
 * --bind-b; both 127.0.0.1 unless given: the B2BUA bench puts its caller and
 * callee on addresses of their own) and prints "PORTS a0 b0 a1 b1 ...". Then
 * it reads one line from stdin, "TARGETS ta0 tb0 ta1 tb1 ...": the relay's
 * port on --target-host (127.0.0.1) each socket sends to. Every
 * socket sends one priming packet (so the relay latches), the generator drains
 * for 300 ms, prints "PHASE primed" and waits for a line on stdin. Then for D
 * seconds it sends PPS packets/s in total, spread over the 2N streams (both
 * directions of every pair), paced by an absolute 1 ms timerfd: 172-byte PCMU
 * packets with correct seq/timestamp/SSRC per stream, the send time
 * (CLOCK_MONOTONIC ns) in the first 8 payload bytes and a marker in the next
 * 4. Every packet the relay delivers is received (recvmmsg) and its one-way
 * latency put in a 1 us histogram; packets without the marker (a prompt or
 * tone the relay played itself) are counted as "other", not as received. It
 * prints "PHASE media_done", waits for a line, drains 2 s (a relay running
 * late is not loss), and prints "RESULT sent=... received=... other=...
 * p50_us=... p99_us=... late_ticks=...".
 *
 * Traffic goes to 127.0.0.1 only; every phase has a deadline.
 *
 * Build: gcc -O2 -Wall -o bench/bin/rtpgen bench/rtpgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RTP_HDR 12
#define RTP_PAYLOAD 160
#define PKT (RTP_HDR + RTP_PAYLOAD)
#define TICK_NS 1000000LL
#define HIST_US 2000000 /* latencies above 2 s land in the last bucket */
#define BATCH 32
#define PRIME_MAGIC 0x5052494dU /* "PRIM" */
#define MEDIA_MAGIC 0x4d454449U /* "MEDI" */

typedef struct {
    int fd;
    uint16_t seq;
    uint32_t ts, ssrc;
    struct sockaddr_in target;
} stream_t;

static stream_t *streams;
static int nstreams;
static uint64_t hist[HIST_US + 1];
static uint64_t received, primed_received, other_received, sent, send_errors;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int read_line(char *buf, size_t size, int timeout_ms) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) return -1;
    return fgets(buf, (int)size, stdin) ? 0 : -1;
}

static void send_one(stream_t *s, int prime) {
    unsigned char pkt[PKT];
    pkt[0] = 0x80;
    pkt[1] = 0; /* PCMU */
    uint16_t seq = htons(s->seq);
    uint32_t ts = htonl(s->ts), ssrc = htonl(s->ssrc);
    memcpy(pkt + 2, &seq, 2);
    memcpy(pkt + 4, &ts, 4);
    memcpy(pkt + 8, &ssrc, 4);
    memset(pkt + RTP_HDR, 0xff, RTP_PAYLOAD);
    int64_t t = now_ns();
    uint32_t magic = prime ? PRIME_MAGIC : MEDIA_MAGIC;
    memcpy(pkt + RTP_HDR, &t, 8);
    memcpy(pkt + RTP_HDR + 8, &magic, 4);
    s->seq++;
    s->ts += 160;
    if (sendto(s->fd, pkt, PKT, 0, (struct sockaddr *)&s->target, sizeof s->target) == PKT) {
        if (!prime) sent++;
    } else {
        send_errors++;
    }
}

static void drain(int fd) {
    static unsigned char bufs[BATCH][2048];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        int64_t t = now_ns();
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_len < RTP_HDR + 12) continue;
            int64_t sent_at;
            uint32_t magic;
            memcpy(&sent_at, bufs[i] + RTP_HDR, 8);
            memcpy(&magic, bufs[i] + RTP_HDR + 8, 4);
            if (magic == PRIME_MAGIC) {
                primed_received++;
                continue;
            }
            if (magic != MEDIA_MAGIC) { /* the relay's own audio: a prompt, a tone */
                other_received++;
                continue;
            }
            int64_t us = (t - sent_at) / 1000;
            if (us < 0) us = 0;
            if (us > HIST_US) us = HIST_US;
            hist[us]++;
            received++;
        }
    }
}

static void poll_for(int ep, int ms) {
    struct epoll_event ev[256];
    int64_t end = now_ns() + (int64_t)ms * 1000000LL;
    for (;;) {
        int64_t left = (end - now_ns()) / 1000000LL;
        if (left <= 0) return;
        int n = epoll_wait(ep, ev, 256, (int)left);
        for (int i = 0; i < n; i++)
            if (ev[i].data.u32 < (uint32_t)nstreams) drain(streams[ev[i].data.u32].fd);
    }
}

static int64_t percentile(double q) {
    uint64_t want = (uint64_t)(q * (double)received), acc = 0;
    for (int i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (acc > want) return i;
    }
    return HIST_US;
}

int main(int argc, char **argv) {
    int pairs = 200, rate = 50000, duration = 10;
    struct in_addr bind_a = {htonl(INADDR_LOOPBACK)}, bind_b = bind_a, target_host = bind_a;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pairs")) pairs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bind-a") || !strcmp(argv[i], "--bind-b") ||
                 !strcmp(argv[i], "--target-host")) {
            struct in_addr *to = argv[i][2] == 't' ? &target_host
                                 : argv[i][7] == 'a' ? &bind_a : &bind_b;
            if (inet_pton(AF_INET, argv[i + 1], to) != 1) {
                fprintf(stderr, "%s: not an IPv4 address: %s\n", argv[i], argv[i + 1]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--rate")) rate = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (pairs < 1 || rate < 1 || duration < 1) return 2;
    nstreams = 2 * pairs;
    streams = calloc((size_t)nstreams, sizeof *streams);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    printf("PORTS");
    for (int i = 0; i < nstreams; i++) {
        stream_t *s = &streams[i];
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s->fd < 0) die("socket");
        int buf = 1 << 20;
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = i % 2 ? bind_b : bind_a};
        if (bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
        socklen_t len = sizeof a;
        getsockname(s->fd, (struct sockaddr *)&a, &len);
        printf(" %d", ntohs(a.sin_port));
        s->ssrc = 0x10000000u + (uint32_t)i;
        s->seq = (uint16_t)(i * 7919);
        s->ts = (uint32_t)i * 104729u;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
    }
    printf("\n");
    fflush(stdout);

    static char line[1 << 16];
    /* the B2BUA bench sets its calls up first: up to minutes for thousands */
    if (read_line(line, sizeof line, 600000) < 0 || strncmp(line, "TARGETS", 7)) {
        fprintf(stderr, "no TARGETS line\n");
        return 2;
    }
    char *p = line + 7;
    for (int i = 0; i < nstreams; i++) {
        char *end;
        long port = strtol(p, &end, 10);
        if (end == p || port <= 0 || port > 65535) {
            fprintf(stderr, "TARGETS: %d ports expected\n", nstreams);
            return 2;
        }
        p = end;
        streams[i].target.sin_family = AF_INET;
        streams[i].target.sin_port = htons((uint16_t)port);
        streams[i].target.sin_addr = target_host;
    }
    for (int i = 0; i < nstreams; i++) send_one(&streams[i], 1);
    poll_for(ep, 300);
    printf("PHASE primed relayed=%" PRIu64 "/%d\n", primed_received, nstreams);
    fflush(stdout);
    if (read_line(line, sizeof line, 60000) < 0) return 2;

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    struct itimerspec its = {.it_interval = {0, TICK_NS}, .it_value = {0, TICK_NS}};
    timerfd_settime(tfd, 0, &its, NULL);
    int64_t start = now_ns();
    uint64_t target_total = (uint64_t)rate * (uint64_t)duration, late_ticks = 0;
    int next_stream = 0;
    struct epoll_event ev[256];
    while (sent + send_errors < target_total) {
        int n = epoll_wait(ep, ev, 256, 100);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u32 != UINT32_MAX) {
                drain(streams[ev[i].data.u32].fd);
                continue;
            }
            uint64_t expirations;
            if (read(tfd, &expirations, sizeof expirations) != sizeof expirations) continue;
            if (expirations > 1) late_ticks += expirations - 1;
            /* what should have gone out by now, whatever ticks were late */
            uint64_t due = (uint64_t)((double)(now_ns() - start) / 1e9 * rate);
            if (due > target_total) due = target_total;
            while (sent + send_errors < due) {
                send_one(&streams[next_stream], 0);
                next_stream = (next_stream + 1) % nstreams;
            }
        }
        if (now_ns() - start > (int64_t)(duration + 30) * 1000000000LL) break;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    epoll_ctl(ep, EPOLL_CTL_DEL, tfd, NULL);
    close(tfd);
    printf("PHASE media_done sent=%" PRIu64 " seconds=%.2f\n", sent, secs);
    fflush(stdout);
    if (read_line(line, sizeof line, 60000) < 0) return 2;
    poll_for(ep, 2000);
    printf("RESULT sent=%" PRIu64 " received=%" PRIu64 " other=%" PRIu64 " send_errors=%" PRIu64
           " p50_us=%" PRId64 " p99_us=%" PRId64 " late_ticks=%" PRIu64 " pps=%.0f\n",
           sent, received, other_received, send_errors, percentile(0.5), percentile(0.99), late_ticks,
           (double)sent / secs);
    return 0;
}
