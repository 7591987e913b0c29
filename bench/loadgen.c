/*
 * callvault SIPREC load generator (UDP, single thread, epoll, non-blocking).
 *
 *   loadgen media --server 127.0.0.1:5060 --calls N [--rate R] [--duration D] [--sync]
 *       Sets up N SIPREC calls (R new calls/s), then sends two G.711 (PCMU) RTP
 *       streams per call, 160-byte payload every 20 ms, to the answered ports for
 *       D seconds (one timerfd tick every 20 ms, sendmmsg batches), then BYEs all
 *       calls (R/s) and waits for the final responses.  Reports its own achieved
 *       send rate against the target N*2*50 pps and its late ticks.
 *
 *   loadgen steady --server 127.0.0.1:5060 --load E [--hold-mean H] [--duration D]
 *                  [--then E2:D2 ...] [--seed S] [--rate R] [--stats-interval I] [--sync]
 *       Steady state (issue 12): first sets up E calls (R/s), each with an
 *       exponential hold of mean H seconds from the start of the window (the
 *       stationary state of the process below: holds are memoryless), then for D
 *       seconds starts new calls as a Poisson process of rate E/H per second,
 *       each holding an exponential time of mean H, so that E calls are up on
 *       average (E Erlang).  Every answered call sends two PCMU streams, as in
 *       media mode, until its hold ends, then BYEs.  At the end of the window
 *       new calls stop and every call still up is BYEd (R/s).  A line
 *       "STAT t=... up=... sent=..." every I seconds (default 1) lets a driver
 *       follow the window; the same --seed gives the same arrivals and holds.
 *       --bye-gap-ms G stops a call's media G ms before its BYE (default 0:
 *       the BYE goes with the last packet, so a receiver that closes its
 *       sockets on BYE without reading them loses what is still queued).
 *       --then E2:D2 (up to 7 times) adds load phases after the first: for D2
 *       seconds arrivals come at rate E2/H.  A phase that raises the load
 *       first starts E2 - E calls at R/s with exponential holds (by
 *       superposition the stationary state of the higher load, as the first
 *       phase's prefill is of E); one that lowers it only slows the arrivals
 *       (E2 = 0: no new calls; calls up hold until their holds end).  Each
 *       phase begins with a line "PHASE load k=... load=... t=... sent=...";
 *       the window ends after the last phase.
 *
 *   loadgen setup --server 127.0.0.1:5060 [--window W] [--duration D] [--max-calls M]
 *       Keeps W calls in flight, each INVITE -> 200 -> ACK -> BYE -> 200 without
 *       media, for D seconds or M calls.  Reports completed calls/s, failures and
 *       p50/p99 set-up latency (INVITE sent -> 200 received).
 *
 * With --sync (media mode) the generator prints "PHASE established ..." after
 * set-up and "PHASE media_done ..." after media, and waits for a line on stdin
 * before going on (at most --sync-timeout seconds), so a driver can take
 * measurements between phases.  The last stdout line is "RESULT key=value ...".
 *
 * In-dialog requests follow RFC 3261 section 12: when the 2xx to the INVITE carries
 * Record-Route (a proxy such as Kamailio in front of the recorder), ACK and BYE go
 * to the answer's Contact as Request-URI with the reversed Record-Route as Route,
 * still sent to --server (the first, loose-routing hop).  Without Record-Route they
 * go to --server with the INVITE's Request-URI, as before.  RTP always goes to the
 * c=/m= addresses of the SDP answer, never through the proxy.
 *
 * Traffic goes to 127.x only (the --server host and the answer's media addresses).
 * Every loop is bounded: set-up, media, BYE and drain phases all have deadlines.
 *
 * Build: gcc -O2 -Wall -o bench/bin/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIP 65536
#define RECV_BATCH 64
#define RTP_HDR 12
#define RTP_PAYLOAD 160
#define TICK_NS 20000000LL
#define T1_MS 500
#define T2_MS 4000
#define MAX_TAG 64
#define MAX_TARGET 128
#define MAX_ROUTE 256
#define MAX_RR 8

enum { S_IDLE = 0, S_INVITING, S_UP, S_BYEING, S_DONE, S_FAILED };

typedef struct {
    uint8_t state;
    uint8_t provisional; /* 1xx seen: stop INVITE retransmission */
    uint8_t nstreams;
    uint32_t gen;        /* slot reuse generation (setup mode) */
    int64_t t_start;     /* INVITE first sent */
    int64_t t_next_tx;   /* next retransmission */
    int64_t t_deadline;  /* transaction timeout */
    int32_t rto_ms;
    char totag[MAX_TAG];
    struct sockaddr_in dst[2];
    uint16_t seq[2];
    uint32_t ts[2];
    uint32_t ssrc[2];
    int64_t hold_ns;     /* steady mode: how long the call holds once answered */
    int64_t t_hangup;    /* steady mode: when it BYEs (0: not yet answered) */
    uint8_t muted;       /* steady mode, --bye-gap-ms: media stopped, BYE at t_hangup */
    uint8_t sent_any;    /* media mode: at least one RTP packet went to it */
    char target[MAX_TARGET]; /* remote target (2xx Contact), set only with a route set */
    char route[MAX_ROUTE];   /* Route header value: the 2xx's Record-Route reversed */
} call_t;

/* ---------------------------------------------------------------- options */
static const char *mode = NULL;
static struct sockaddr_in server;
static char server_host[64] = "127.0.0.1";
static int server_port = 5060;
static int opt_calls = 100, opt_window = 50, opt_sync = 0, opt_batch = 64;
static double opt_rate = 200, opt_duration = 10, opt_timeout = 10, opt_sync_timeout = 900;
static long opt_max_calls = 1000000;
static int opt_local_port = 0;
static const char *opt_aor = "agent@bench.example";
static double opt_load = 0, opt_hold_mean = 180, opt_stats = 1.0;
static unsigned long long opt_seed = 0;
static int opt_slots = 0, opt_bye_gap_ms = 0;
#define MAX_PHASES 8
static int nphases = 1; /* steady mode: phase 0 is --load for --duration, then --then E:D */
static double phase_load[MAX_PHASES], phase_s[MAX_PHASES];

/* ---------------------------------------------------------------- state */
static int sip_fd = -1, rtp_fd = -1, ep_fd = -1, tick_fd = -1;
static int local_port = 0;
static uint32_t run_id;
static call_t *calls;
static int ncalls;
static int npending;   /* calls with an open client transaction */
static uint8_t payload[RTP_PAYLOAD];

/* counters */
static long c_started, c_answered, c_failed, c_timeouts, c_byes_ok, c_bye_failed, c_completed;
static long c_server_bye, c_retrans, c_sip_eagain, c_stray, c_non2xx;
static long fail_codes[700];
static uint64_t rtp_sent, rtp_eagain, rtp_errors;
static long ticks, late_ticks, missed_ticks;
static int64_t max_late_ns, max_burst_ns, sum_burst_ns;

/* latency samples (ns), setup latency */
static int64_t *lat;
static size_t nlat, caplat;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void lat_add(int64_t v) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        if (caplat > (size_t)8 << 20) { caplat = (size_t)8 << 20; if (nlat == caplat) return; }
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat) die("out of memory");
    }
    lat[nlat++] = v;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!nlat) return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)nlat);
    if (i > 0) i--;
    if (i >= nlat) i = nlat - 1;
    return lat[i] / 1e6;
}

/* G.711 mu-law encoder, for a 400 Hz tone (20 samples/period, 8 per packet). */
static uint8_t ulaw(int16_t s) {
    const int BIAS = 0x84, CLIP = 32635;
    int sign = (s >> 8) & 0x80, v = s;
    if (sign) v = -v;
    if (v > CLIP) v = CLIP;
    v += BIAS;
    int exp = 7;
    for (int mask = 0x4000; !(v & mask) && exp > 0; mask >>= 1) exp--;
    int mant = (v >> (exp + 3)) & 0x0F;
    return (uint8_t)~(sign | (exp << 4) | mant);
}

/* ---------------------------------------------------------------- SIP text */
static void call_id(char *out, size_t n, int slot, uint32_t gen) {
    snprintf(out, n, "cv%08x-%d-%u@127.0.0.1", run_id, slot, gen);
}

static void sip_send(const char *buf, int len) {
    ssize_t r = sendto(sip_fd, buf, (size_t)len, MSG_DONTWAIT, (struct sockaddr *)&server,
                       sizeof server);
    if (r < 0) c_sip_eagain++;
}

static void send_invite(int slot) {
    call_t *c = &calls[slot];
    char cid[96], body[4096], msg[6144];
    unsigned i = (unsigned)slot * 1000003u + c->gen; /* unique per call in this run */
    call_id(cid, sizeof cid, slot, c->gen);
    int blen = snprintf(body, sizeof body,
        "--BNDRY\r\n"
        "Content-Type: application/sdp\r\n"
        "\r\n"
        "v=0\r\n"
        "o=src 1 1 IN IP4 127.0.0.1\r\n"
        "s=SIPREC\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=label:1\r\n"
        "a=sendonly\r\n"
        "m=audio 40002 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=label:2\r\n"
        "a=sendonly\r\n"
        "\r\n"
        "--BNDRY\r\n"
        "Content-Type: application/rs-metadata+xml\r\n"
        "\r\n"
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
        "<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><datamode>complete</datamode>"
        "<session session_id=\"S%x%u\"/>"
        "<participant participant_id=\"P1%x%u\"><nameID aor=\"sip:%s\"><name>Agent</name></nameID></participant>"
        "<participant participant_id=\"P2%x%u\"><nameID aor=\"sip:+31612345678@pstn.example\"/></participant>"
        "<stream stream_id=\"A%x%u\" session_id=\"S%x%u\"><label>1</label></stream>"
        "<stream stream_id=\"B%x%u\" session_id=\"S%x%u\"><label>2</label></stream>"
        "<participantstreamassoc participant_id=\"P1%x%u\"><send>A%x%u</send></participantstreamassoc>"
        "<participantstreamassoc participant_id=\"P2%x%u\"><send>B%x%u</send></participantstreamassoc>"
        "</recording>\r\n"
        "--BNDRY--\r\n",
        run_id, i, run_id, i, opt_aor, run_id, i, run_id, i, run_id, i, run_id, i, run_id, i,
        run_id, i, run_id, i, run_id, i, run_id, i);
    int len = snprintf(msg, sizeof msg,
        "INVITE sip:srs@%s:%d SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%08x-%d-%u-i;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:src@127.0.0.1>;tag=f%08x-%d-%u\r\n"
        "To: <sip:srs@%s>\r\n"
        "Call-ID: %s\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:src@127.0.0.1:%d>;+sip.src\r\n"
        "Require: siprec\r\n"
        "Content-Type: multipart/mixed;boundary=BNDRY\r\n"
        "Content-Length: %d\r\n"
        "\r\n%s",
        server_host, server_port, local_port, run_id, slot, c->gen, run_id, slot, c->gen,
        server_host, cid, local_port, blen, body);
    sip_send(msg, len);
}

/* The Request-URI and Route line of an in-dialog request: RFC 3261 12.2.1.1 with a
 * loose-routing first hop when the dialog has a route set, else the INVITE's. */
static void dialog_uri(char *ruri, size_t n, char *route_line, size_t rn, const char *target,
                       const char *route) {
    if (route && route[0] && target && target[0]) {
        snprintf(ruri, n, "%s", target);
        snprintf(route_line, rn, "Route: %s\r\n", route);
    } else {
        snprintf(ruri, n, "sip:srs@%s:%d", server_host, server_port);
        route_line[0] = 0;
    }
}

/* ACK: for a 2xx a new transaction (new branch) along the dialog's route; for a
 * non-2xx the INVITE's branch, hop by hop (no route set). */
static void send_ack(int slot, uint32_t gen, const char *totag, int for_2xx, const char *target,
                     const char *route) {
    char cid[96], msg[1536], ruri[MAX_TARGET + 32], rline[MAX_ROUTE + 16];
    call_id(cid, sizeof cid, slot, gen);
    dialog_uri(ruri, sizeof ruri, rline, sizeof rline, for_2xx ? target : NULL, route);
    int len = snprintf(msg, sizeof msg,
        "ACK %s SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%08x-%d-%u-%s;rport\r\n"
        "%s"
        "Max-Forwards: 70\r\n"
        "From: <sip:src@127.0.0.1>;tag=f%08x-%d-%u\r\n"
        "To: <sip:srs@%s>%s%s\r\n"
        "Call-ID: %s\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n",
        ruri, local_port, run_id, slot, gen, for_2xx ? "a" : "i", rline,
        run_id, slot, gen, server_host, totag[0] ? ";tag=" : "", totag, cid);
    sip_send(msg, len);
}

/* CSeq 2: the call's BYE; CSeq 3: a one-shot BYE for a 2xx that came after its INVITE
 * timed out here (the server has the call up: it must not stay up) */
static void send_bye_dialog(int slot, uint32_t gen, const char *totag, const char *target,
                            const char *route, int cseq) {
    char cid[96], msg[1536], ruri[MAX_TARGET + 32], rline[MAX_ROUTE + 16];
    call_id(cid, sizeof cid, slot, gen);
    dialog_uri(ruri, sizeof ruri, rline, sizeof rline, target, route);
    int len = snprintf(msg, sizeof msg,
        "BYE %s SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%08x-%d-%u-b%d;rport\r\n"
        "%s"
        "Max-Forwards: 70\r\n"
        "From: <sip:src@127.0.0.1>;tag=f%08x-%d-%u\r\n"
        "To: <sip:srs@%s>;tag=%s\r\n"
        "Call-ID: %s\r\n"
        "CSeq: %d BYE\r\n"
        "Content-Length: 0\r\n\r\n",
        ruri, local_port, run_id, slot, gen, cseq, rline, run_id, slot, gen,
        server_host, totag, cid, cseq);
    sip_send(msg, len);
}

static void send_bye(int slot) {
    call_t *c = &calls[slot];
    send_bye_dialog(slot, c->gen, c->totag, c->target, c->route, 2);
}

/* ---------------------------------------------------------------- transactions */
static void start_invite(int slot, int64_t now) {
    call_t *c = &calls[slot];
    uint32_t gen = c->gen;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->state = S_INVITING;
    c->t_start = now;
    c->rto_ms = T1_MS;
    c->t_next_tx = now + (int64_t)T1_MS * 1000000;
    c->t_deadline = now + (int64_t)(opt_timeout * 1e9);
    npending++;
    c_started++;
    send_invite(slot);
}

static int media_mode;
static long c_late_ended;     /* calls answered after their INVITE timed out here, BYEd: 200 */
static int64_t t_late_answer; /* when the last such 2xx came */
static long c_no_media; /* answered calls BYEd before any packet was sent to them */

static void start_bye(int slot, int64_t now) {
    call_t *c = &calls[slot];
    if (media_mode && c->state == S_UP && !c->sent_any) c_no_media++;
    c->state = S_BYEING;
    c->rto_ms = T1_MS;
    c->t_next_tx = now + (int64_t)T1_MS * 1000000;
    c->t_deadline = now + (int64_t)(opt_timeout * 1e9);
    npending++;
    send_bye(slot);
}

static void call_finished(int slot, int state) {
    call_t *c = &calls[slot];
    if (c->state == S_INVITING || c->state == S_BYEING) npending--;
    c->state = (uint8_t)state;
}

static void check_timers(int64_t now) {
    if (!npending) return;
    for (int i = 0; i < ncalls; i++) {
        call_t *c = &calls[i];
        if (c->state != S_INVITING && c->state != S_BYEING) continue;
        if (now >= c->t_deadline) {
            c_timeouts++;
            if (c->state == S_INVITING) c_failed++; else c_bye_failed++;
            call_finished(i, S_FAILED);
            continue;
        }
        if (now >= c->t_next_tx && !(c->state == S_INVITING && c->provisional)) {
            c_retrans++;
            if (c->state == S_INVITING) {
                send_invite(i);
                c->rto_ms *= 2; /* INVITE: Timer A doubles without cap */
            } else {
                send_bye(i);
                c->rto_ms = c->rto_ms * 2 > T2_MS ? T2_MS : c->rto_ms * 2; /* Timer E */
            }
            c->t_next_tx = now + (int64_t)c->rto_ms * 1000000;
        }
    }
}

/* ---------------------------------------------------------------- SIP parsing */
/* Find a header value (full or compact name) after ``p``, which points at the CRLF
 * that ends the start line or a previous header; returns the value and its length
 * (to CRLF).  A value's end is where the search for the next one starts. */
static const char *hdr_at(const char *p, const char *end, const char *name, const char *compact,
                          int *vlen) {
    size_t nl = strlen(name);
    while (p && p + 2 < end) {
        p += 2;
        if (p[0] == '\r' && p[1] == '\n') return NULL; /* end of headers */
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

static const char *hdr(const char *msg, const char *end, const char *name, const char *compact,
                       int *vlen) {
    return hdr_at(strstr(msg, "\r\n"), end, name, compact, vlen);
}

/* The dialog's route set and remote target from a 2xx to the INVITE (RFC 3261
 * 12.1.2): every Record-Route entry, in reverse order, joined as one Route value,
 * and the Contact URI.  Both stay empty when there is no Record-Route, or when
 * they do not fit (the in-dialog requests then go as without a proxy). */
static void dialog_route(const char *msg, const char *end, char *route, size_t rn, char *target,
                         size_t tn) {
    const char *entry[MAX_RR];
    int elen[MAX_RR], ne = 0, vl;
    route[0] = target[0] = 0;
    for (const char *v = hdr(msg, end, "Record-Route", NULL, &vl); v;
         v = hdr_at(v + vl, end, "Record-Route", NULL, &vl)) {
        int i = 0, depth = 0, quoted = 0, start = 0;
        for (; i <= vl; i++) { /* split at the commas outside <> and quotes */
            char ch = i < vl ? v[i] : ',';
            if (ch == '"') quoted = !quoted;
            else if (!quoted && ch == '<') depth++;
            else if (!quoted && ch == '>') depth--;
            else if (!quoted && depth == 0 && ch == ',') {
                int a = start, b = i;
                while (a < b && isspace((unsigned char)v[a])) a++;
                while (b > a && isspace((unsigned char)v[b - 1])) b--;
                if (b > a) {
                    if (ne == MAX_RR) return;
                    entry[ne] = v + a;
                    elen[ne++] = b - a;
                }
                start = i + 1;
            }
        }
    }
    if (!ne) return;
    const char *m = hdr(msg, end, "Contact", "m", &vl);
    if (!m) return;
    const char *lt = memchr(m, '<', (size_t)vl);
    const char *u = lt ? lt + 1 : m;
    int ul = 0;
    while (u + ul < m + vl && u[ul] != '>' && (lt || (u[ul] != ';' && !isspace((unsigned char)u[ul]))))
        ul++;
    if (ul == 0 || (size_t)ul >= tn) return;
    size_t used = 0;
    for (int k = ne - 1; k >= 0; k--) {
        int w = snprintf(route + used, rn - used, "%s%.*s", used ? ", " : "", elen[k], entry[k]);
        if (w < 0 || used + (size_t)w >= rn) { route[0] = 0; return; }
        used += (size_t)w;
    }
    memcpy(target, u, (size_t)ul);
    target[ul] = 0;
}

static void reply_to_request(const char *msg, const char *end) {
    /* Answer a request from the server (BYE, OPTIONS, UPDATE...) with 200 OK.  Every
     * Via goes back (RFC 3261 8.2.6.2): through a proxy there are two or more. */
    char out[4096];
    int n = snprintf(out, sizeof out, "SIP/2.0 200 OK\r\n");
    const char *names[] = {"Via", "From", "To", "Call-ID", "CSeq"};
    const char *compact[] = {"v", "f", "t", "i", NULL};
    for (int k = 0; k < 5; k++) {
        int vl;
        for (const char *v = hdr(msg, end, names[k], compact[k], &vl); v;
             v = k == 0 ? hdr_at(v + vl, end, names[k], compact[k], &vl) : NULL) {
            if (n + vl + 32 < (int)sizeof out)
                n += snprintf(out + n, sizeof out - (size_t)n, "%s: %.*s\r\n", names[k], vl, v);
        }
    }
    n += snprintf(out + n, sizeof out - (size_t)n, "Content-Length: 0\r\n\r\n");
    sip_send(out, n);
}

static int parse_call_id(const char *v, int vl, int *slot, uint32_t *gen) {
    char tmp[128];
    if (vl <= 0 || vl >= (int)sizeof tmp) return -1;
    memcpy(tmp, v, (size_t)vl);
    tmp[vl] = 0;
    unsigned rid, g;
    int s;
    if (sscanf(tmp, "cv%8x-%d-%u@", &rid, &s, &g) != 3) return -1;
    if (rid != run_id || s < 0 || s >= ncalls) return -1;
    *slot = s;
    *gen = g;
    return 0;
}

/* Parse the SDP answer: media ports and addresses, in m-line order. */
static int parse_answer(call_t *c, const char *body, const char *end) {
    struct in_addr sess, media;
    inet_pton(AF_INET, server_host, &sess);
    int nm = 0;
    const char *p = body;
    while (p < end && nm <= 2) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if (p[0] == 'c' && p[1] == '=') {
            char a[64] = {0};
            if (sscanf(p, "c=IN IP4 %63[0-9.]", a) == 1) {
                struct in_addr x;
                if (inet_pton(AF_INET, a, &x) == 1) {
                    if (nm == 0) sess = x;
                    else c->dst[nm - 1].sin_addr = x;
                }
            }
        } else if (p[0] == 'm' && p[1] == '=') {
            int port = 0;
            if (nm < 2 && sscanf(p, "m=audio %d", &port) == 1) {
                media = sess;
                c->dst[nm].sin_family = AF_INET;
                c->dst[nm].sin_port = htons((uint16_t)port);
                c->dst[nm].sin_addr = media;
            }
            nm++;
        }
        p = eol + 1;
    }
    int ok = 0;
    for (int k = 0; k < 2 && k < nm; k++) {
        /* local traffic only */
        if ((ntohl(c->dst[k].sin_addr.s_addr) >> 24) != 127) c->dst[k].sin_port = 0;
        if (c->dst[k].sin_port) ok++;
    }
    c->nstreams = (uint8_t)(nm > 2 ? 2 : nm);
    return ok;
}

static int64_t t_now;

static void on_datagram(char *msg, int len) {
    if (len <= 0) return;
    msg[len] = 0;
    const char *end = msg + len;
    if (strncmp(msg, "SIP/2.0 ", 8) != 0) {
        /* a request from the server */
        if (strncmp(msg, "ACK ", 4) == 0) return;
        int vl, slot;
        uint32_t gen;
        const char *v = hdr(msg, end, "Call-ID", "i", &vl);
        if (strncmp(msg, "BYE ", 4) == 0 && v && parse_call_id(v, vl, &slot, &gen) == 0 &&
            calls[slot].gen == gen && calls[slot].state != S_DONE &&
            calls[slot].state != S_FAILED) {
            c_server_bye++;
            call_finished(slot, S_FAILED);
        }
        reply_to_request(msg, end);
        return;
    }
    int code = atoi(msg + 8);
    int vl, slot;
    uint32_t gen;
    const char *v = hdr(msg, end, "Call-ID", "i", &vl);
    if (!v || parse_call_id(v, vl, &slot, &gen) != 0) { c_stray++; return; }
    call_t *c = &calls[slot];
    const char *cs = hdr(msg, end, "CSeq", NULL, &vl);
    if (!cs) { c_stray++; return; }
    int is_invite = memmem(cs, (size_t)vl, "INVITE", 6) != NULL;
    int is_bye = memmem(cs, (size_t)vl, "BYE", 3) != NULL;
    int is_late_bye = memmem(cs, (size_t)vl, "3 BYE", 5) != NULL; /* see send_bye_dialog */
    char totag[MAX_TAG] = {0};
    const char *to = hdr(msg, end, "To", "t", &vl);
    if (to) {
        const char *t = memmem(to, (size_t)vl, ";tag=", 5);
        if (t) {
            t += 5;
            int n = 0;
            while (t + n < to + vl && t[n] != ';' && t[n] != '>' && !isspace((unsigned char)t[n]) &&
                   n < MAX_TAG - 1)
                n++;
            memcpy(totag, t, (size_t)n);
        }
    }
    if (is_late_bye) { /* a late answer's one-shot BYE */
        if (code >= 200 && code < 300) c_late_ended++; /* else 481: it was a retransmission */
        return;
    }
    if (gen != c->gen || (is_invite && code >= 200 && code < 300 && c->state == S_FAILED)) {
        /* a 2xx for an earlier call in this slot, or for this one after its INVITE timed
         * out: ACK it and BYE it once (a retransmitted 2xx of a call BYEd already gets 481) */
        if (is_invite && code >= 200 && code < 300) {
            char route[MAX_ROUTE], target[MAX_TARGET];
            dialog_route(msg, end, route, sizeof route, target, sizeof target);
            send_ack(slot, gen, totag, 1, target, route);
            send_bye_dialog(slot, gen, totag, target, route, 3);
            t_late_answer = t_now;
        }
        c_stray++;
        return;
    }
    if (is_invite) {
        if (code < 200) { c->provisional = 1; return; }
        if (code >= 300) {
            send_ack(slot, gen, totag, 0, NULL, NULL);
            if (c->state == S_INVITING) {
                c_failed++;
                c_non2xx++;
                if (code < 700) fail_codes[code]++;
                call_finished(slot, S_FAILED);
            }
            return;
        }
        if (c->state == S_INVITING)
            dialog_route(msg, end, c->route, sizeof c->route, c->target, sizeof c->target);
        send_ack(slot, gen, totag, 1, c->target, c->route); /* also for retransmitted 200s */
        if (c->state != S_INVITING) return;
        snprintf(c->totag, sizeof c->totag, "%s", totag);
        int64_t setup = t_now - c->t_start;
        lat_add(setup);
        npending--;
        c->state = S_UP;
        c_answered++;
        if (c->hold_ns) c->t_hangup = t_now + c->hold_ns; /* steady mode */
        if (media_mode) {
            const char *body = strstr(msg, "\r\n\r\n");
            int ok = body ? parse_answer(c, body + 4, end) : 0;
            for (int k = 0; k < 2; k++) {
                c->ssrc[k] = (uint32_t)rand() ^ ((uint32_t)slot << 1) ^ (uint32_t)k;
                c->seq[k] = (uint16_t)rand();
                c->ts[k] = (uint32_t)rand();
            }
            if (ok < 2) fail_codes[699]++; /* answered with fewer than two usable ports */
        } else {
            start_bye(slot, t_now); /* set-up benchmark: hang up at once */
        }
        return;
    }
    if (is_bye) {
        if (c->state != S_BYEING) return;
        call_finished(slot, code >= 200 && code < 300 ? S_DONE : S_FAILED);
        if (code >= 200 && code < 300) { c_byes_ok++; c_completed++; }
        else if (code >= 200) c_bye_failed++;
        return;
    }
    c_stray++;
}

static char rbufs[RECV_BATCH][MAX_SIP + 1];

static void drain_sip(void) {
    struct mmsghdr mm[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    for (int rounds = 0; rounds < 64; rounds++) { /* bounded per wake-up */
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = rbufs[i];
            iov[i].iov_len = MAX_SIP;
            memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(sip_fd, mm, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        t_now = now_ns();
        for (int i = 0; i < n; i++) on_datagram(rbufs[i], (int)mm[i].msg_len);
        if (n < RECV_BATCH) return;
    }
}

/* ---------------------------------------------------------------- RTP */
static int64_t media_pkts_expected;

static void send_rtp_round(void) {
    enum { MAXB = 1024 };
    static struct mmsghdr mm[MAXB];
    static struct iovec iov[MAXB][2];
    static uint8_t hdrs[MAXB][RTP_HDR];
    int batch = opt_batch > MAXB ? MAXB : opt_batch, nb = 0;
    for (int i = 0; i <= ncalls; i++) {
        if (i < ncalls) {
            call_t *c = &calls[i];
            if (c->state != S_UP || c->muted) continue;
            for (int k = 0; k < c->nstreams; k++) {
                if (!c->dst[k].sin_port) continue;
                uint8_t *h = hdrs[nb];
                h[0] = 0x80;
                h[1] = 0; /* PT 0 PCMU, no marker */
                h[2] = (uint8_t)(c->seq[k] >> 8); h[3] = (uint8_t)c->seq[k];
                h[4] = (uint8_t)(c->ts[k] >> 24); h[5] = (uint8_t)(c->ts[k] >> 16);
                h[6] = (uint8_t)(c->ts[k] >> 8); h[7] = (uint8_t)c->ts[k];
                h[8] = (uint8_t)(c->ssrc[k] >> 24); h[9] = (uint8_t)(c->ssrc[k] >> 16);
                h[10] = (uint8_t)(c->ssrc[k] >> 8); h[11] = (uint8_t)c->ssrc[k];
                c->seq[k]++;
                c->ts[k] += RTP_PAYLOAD;
                c->sent_any = 1;
                iov[nb][0].iov_base = h; iov[nb][0].iov_len = RTP_HDR;
                iov[nb][1].iov_base = payload; iov[nb][1].iov_len = RTP_PAYLOAD;
                memset(&mm[nb].msg_hdr, 0, sizeof mm[nb].msg_hdr);
                mm[nb].msg_hdr.msg_name = &c->dst[k];
                mm[nb].msg_hdr.msg_namelen = sizeof c->dst[k];
                mm[nb].msg_hdr.msg_iov = iov[nb];
                mm[nb].msg_hdr.msg_iovlen = 2;
                nb++;
                media_pkts_expected++;
            }
        }
        if (nb == batch || (i == ncalls && nb > 0)) {
            int off = 0;
            for (int tries = 0; off < nb && tries < 100; tries++) {
                int r = sendmmsg(rtp_fd, mm + off, (unsigned)(nb - off), MSG_DONTWAIT);
                if (r > 0) { off += r; rtp_sent += (uint64_t)r; continue; }
                if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
                    rtp_eagain++;
                    struct pollfd pf = {rtp_fd, POLLOUT, 0};
                    poll(&pf, 1, 2);
                    continue;
                }
                rtp_errors++;
                off++; /* skip the packet that failed (e.g. ECONNREFUSED) */
            }
            nb = 0;
        }
    }
}

/* ---------------------------------------------------------------- main loop */
static int stdin_line_ready;

static void poll_once(int timeout_ms) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep_fd, ev, 8, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == sip_fd) drain_sip();
        else if (ev[i].data.fd == 0) {
            char b[256];
            ssize_t r = read(0, b, sizeof b);
            if (r <= 0) stdin_line_ready = 2; /* EOF: go on */
            else if (memchr(b, '\n', (size_t)r)) stdin_line_ready = 1;
        }
    }
    t_now = now_ns();
    check_timers(t_now);
}

static void wait_sync(const char *phase) {
    if (!opt_sync) return;
    int64_t deadline = now_ns() + (int64_t)(opt_sync_timeout * 1e9);
    stdin_line_ready = 0;
    while (!stdin_line_ready && now_ns() < deadline) poll_once(10);
    if (!stdin_line_ready) fprintf(stderr, "loadgen: no go after %s, going on\n", phase);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int count_state(int s) {
    int n = 0;
    for (int i = 0; i < ncalls; i++) n += calls[i].state == s;
    return n;
}

static void print_codes(void) {
    for (int i = 0; i < 700; i++)
        if (fail_codes[i]) printf("  responses %d: %ld%s\n", i, fail_codes[i],
                                  i == 699 ? " (answers with < 2 usable ports)" : "");
}

static int run_media(void) {
    media_mode = 1;
    ncalls = opt_calls;
    calls = calloc((size_t)ncalls, sizeof *calls);
    if (!calls) die("out of memory");
    /* --- set-up phase, rate limited --- */
    int64_t t0 = now_ns();
    int64_t setup_deadline = t0 + (int64_t)((ncalls / opt_rate + opt_timeout + 5) * 1e9);
    int next = 0;
    while (now_ns() < setup_deadline) {
        int64_t now = now_ns();
        long due = (long)((now - t0) / 1e9 * opt_rate) + 1;
        for (int k = 0; next < ncalls && next < due && k < 1000; k++) start_invite(next++, now);
        if (next == ncalls && npending == 0) break;
        poll_once(2);
    }
    double setup_s = (now_ns() - t0) / 1e9;
    int up = count_state(S_UP);
    printf("setup: %d/%d calls up in %.2f s (%ld failed, %ld timeouts, %ld retransmissions)\n",
           up, ncalls, setup_s, c_failed, c_timeouts, c_retrans);
    print_codes();
    int streams = 0;
    for (int i = 0; i < ncalls; i++)
        if (calls[i].state == S_UP)
            for (int k = 0; k < calls[i].nstreams; k++) streams += calls[i].dst[k].sin_port != 0;
    printf("PHASE established calls=%d streams=%d\n", up, streams);
    fflush(stdout);
    wait_sync("established");

    /* --- media phase: one round every 20 ms on an absolute timerfd --- */
    tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct timespec start_ts;
    clock_gettime(CLOCK_MONOTONIC, &start_ts);
    int64_t m0 = (int64_t)start_ts.tv_sec * 1000000000LL + start_ts.tv_nsec + TICK_NS;
    struct itimerspec its = {{0, TICK_NS}, {m0 / 1000000000LL, m0 % 1000000000LL}};
    timerfd_settime(tick_fd, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tick_fd};
    epoll_ctl(ep_fd, EPOLL_CTL_ADD, tick_fd, &ev);
    long nticks = (long)(opt_duration * 1e9 / TICK_NS);
    double cpu0 = cpu_seconds();
    int64_t media_start = m0;
    uint64_t sent0 = rtp_sent;
    int64_t media_deadline = m0 + (int64_t)(opt_duration * 1e9) + 5000000000LL;
    while (ticks < nticks && now_ns() < media_deadline) {
        struct epoll_event evs[8];
        int n = epoll_wait(ep_fd, evs, 8, 50);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == sip_fd) { drain_sip(); continue; }
            if (evs[i].data.fd != tick_fd) continue;
            uint64_t exp = 0;
            if (read(tick_fd, &exp, sizeof exp) != sizeof exp || exp == 0) continue;
            if (exp > 1) missed_ticks += (long)exp - 1;
            for (uint64_t e = 0; e < exp && ticks < nticks; e++) {
                int64_t sched = media_start + ticks * TICK_NS;
                int64_t b0 = now_ns();
                int64_t late = b0 - sched;
                if (late > max_late_ns) max_late_ns = late;
                if (late > 5000000) late_ticks++; /* started > 5 ms after its slot */
                send_rtp_round();
                int64_t burst = now_ns() - b0;
                sum_burst_ns += burst;
                if (burst > max_burst_ns) max_burst_ns = burst;
                ticks++;
            }
        }
        t_now = now_ns();
        check_timers(t_now);
    }
    int64_t media_end = now_ns();
    /* the last tick's packets cover the 20 ms after it */
    double media_s = ticks ? (media_end - media_start + TICK_NS) / 1e9 : 0;
    double gen_cpu = cpu_seconds() - cpu0;
    uint64_t sent = rtp_sent - sent0;
    double target_pps = streams * 50.0;
    double achieved = media_s > 0 ? sent / media_s : 0;
    printf("media: %" PRIu64 " packets in %.2f s = %.0f pps (target %.0f pps = %d streams x 50), "
           "%ld/%ld ticks late >5 ms (max %.2f ms), %ld missed, burst avg %.2f ms max %.2f ms, "
           "generator CPU %.0f%%\n",
           sent, media_s, achieved, target_pps, streams, late_ticks, ticks, max_late_ns / 1e6,
           missed_ticks, ticks ? sum_burst_ns / 1e6 / ticks : 0.0, max_burst_ns / 1e6,
           media_s > 0 ? 100 * gen_cpu / media_s : 0.0);
    printf("PHASE media_done sent=%" PRIu64 "\n", sent);
    fflush(stdout);
    wait_sync("media_done");

    /* --- tear-down: BYE every call that is up, rate limited --- */
    int64_t b0 = now_ns();
    int64_t bye_deadline = b0 + (int64_t)((ncalls / opt_rate + opt_timeout + 5) * 1e9);
    int nextb = 0;
    long byes_started = 0;
    while (now_ns() < bye_deadline) {
        int64_t now = now_ns();
        long due = (long)((now - b0) / 1e9 * opt_rate) + 1;
        for (; nextb < ncalls && byes_started < due; nextb++) {
            if (calls[nextb].state == S_UP) { start_bye(nextb, now); byes_started++; }
        }
        if (nextb >= ncalls && npending == 0) break;
        poll_once(2);
    }
    printf("teardown: %ld BYEs answered 2xx, %ld failed, in %.2f s\n", c_byes_ok, c_bye_failed,
           (now_ns() - b0) / 1e9);
    qsort(lat, nlat, sizeof *lat, cmp64);
    printf("RESULT mode=media calls=%d up=%d streams=%d setup_failed=%ld server_bye=%ld "
           "sent=%" PRIu64 " target_pps=%.0f achieved_pps=%.1f duration_s=%.3f ticks=%ld "
           "late_ticks=%ld missed_ticks=%ld max_late_ms=%.3f max_burst_ms=%.3f "
           "avg_burst_ms=%.3f gen_cpu_pct=%.1f send_eagain=%" PRIu64 " send_errors=%" PRIu64
           " byes_ok=%ld bye_failed=%ld setup_p50_ms=%.3f setup_p99_ms=%.3f retrans=%ld\n",
           ncalls, up, streams, c_failed, c_server_bye, sent, target_pps, achieved, media_s,
           ticks, late_ticks, missed_ticks, max_late_ns / 1e6, max_burst_ns / 1e6,
           ticks ? sum_burst_ns / 1e6 / ticks : 0.0, media_s > 0 ? 100 * gen_cpu / media_s : 0.0,
           rtp_eagain, rtp_errors, c_byes_ok, c_bye_failed, pct(50), pct(99), c_retrans);
    return 0;
}

static int run_setup(void) {
    media_mode = 0;
    ncalls = opt_window;
    calls = calloc((size_t)ncalls, sizeof *calls);
    if (!calls) die("out of memory");
    int64_t t0 = now_ns();
    int64_t stop_new = t0 + (int64_t)(opt_duration * 1e9);
    int64_t hard = stop_new + (int64_t)((opt_timeout + 5) * 1e9);
    double cpu0 = cpu_seconds();
    int64_t t_last_start = t0;
    while (now_ns() < hard) {
        int64_t now = now_ns();
        if (now < stop_new && c_started < opt_max_calls) {
            for (int i = 0; i < ncalls && c_started < opt_max_calls; i++) {
                if (calls[i].state == S_IDLE || calls[i].state == S_DONE ||
                    calls[i].state == S_FAILED) {
                    if (calls[i].state != S_IDLE) calls[i].gen++;
                    start_invite(i, now);
                    t_last_start = now;
                }
            }
        } else if (npending == 0) {
            break;
        }
        poll_once(1);
    }
    (void)t_last_start;
    double el = (now_ns() - t0) / 1e9;
    double gen_cpu = cpu_seconds() - cpu0;
    qsort(lat, nlat, sizeof *lat, cmp64);
    double cps = el > 0 ? c_completed / el : 0;
    printf("setup: %ld calls started, %ld completed (INVITE/200/ACK/BYE/200) in %.2f s = %.1f "
           "calls/s, %ld set-up failures, %ld BYE failures, %ld timeouts, %ld retransmissions\n",
           c_started, c_completed, el, cps, c_failed, c_bye_failed, c_timeouts, c_retrans);
    printf("set-up latency (INVITE -> 200): p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
           "generator CPU %.0f%%\n", pct(50), pct(99), nlat ? lat[nlat - 1] / 1e6 : 0.0,
           100 * gen_cpu / el);
    print_codes();
    printf("RESULT mode=setup window=%d started=%ld completed=%ld failed=%ld bye_failed=%ld "
           "timeouts=%ld server_bye=%ld elapsed_s=%.3f calls_per_s=%.1f setup_p50_ms=%.3f "
           "setup_p99_ms=%.3f setup_max_ms=%.3f retrans=%ld gen_cpu_pct=%.1f\n",
           opt_window, c_started, c_completed, c_failed, c_bye_failed, c_timeouts, c_server_bye,
           el, cps, pct(50), pct(99), nlat ? lat[nlat - 1] / 1e6 : 0.0, c_retrans,
           100 * gen_cpu / el);
    return 0;
}

/* ---------------------------------------------------------------- steady state */
static uint64_t rng_state;
static long c_blocked; /* arrivals with no free call slot */
static long c_held;    /* calls BYEd when their hold ended */

static double rnd_unit(void) { /* xorshift64*, in (0, 1): reproducible with --seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 2685821657736338717ULL;
    return ((double)(x >> 11) + 0.5) / 9007199254740992.0;
}

static double rnd_exp(double mean) { return -log(rnd_unit()) * mean; }

static int free_slot(void) {
    static int cursor;
    for (int k = 0; k < ncalls; k++) {
        int i = (cursor + k) % ncalls;
        uint8_t s = calls[i].state;
        if (s == S_IDLE || s == S_DONE || s == S_FAILED) {
            cursor = i + 1;
            if (s != S_IDLE) calls[i].gen++; /* late answers to the old call are told apart */
            return i;
        }
    }
    return -1;
}

static void start_call(int64_t now, double hold_s) {
    int slot = free_slot();
    if (slot < 0) { c_blocked++; return; }
    start_invite(slot, now);
    calls[slot].hold_ns = hold_s * 1e9 < 1 ? 1 : (int64_t)(hold_s * 1e9);
}

static void hang_up_due(int64_t now) {
    for (int i = 0; i < ncalls; i++) {
        call_t *c = &calls[i];
        if (c->state == S_UP && c->t_hangup && now >= c->t_hangup) {
            if (opt_bye_gap_ms && !c->muted) { /* the last packet now, the BYE a gap later */
                c->muted = 1;
                c->t_hangup = now + (int64_t)opt_bye_gap_ms * 1000000;
                continue;
            }
            c_held++; /* held its whole time */
            start_bye(i, now);
        }
    }
}

static int phase; /* the load phase now running */

static void print_stat(int64_t now, int64_t start) {
    printf("STAT t=%.2f phase=%d up=%d inviting=%d byeing=%d started=%ld answered=%ld ended=%ld "
           "failed=%ld bye_failed=%ld blocked=%ld sent=%" PRIu64 "\n",
           (now - start) / 1e9, phase, count_state(S_UP), count_state(S_INVITING),
           count_state(S_BYEING), c_started, c_answered, c_byes_ok, c_failed, c_bye_failed,
           c_blocked, rtp_sent);
    fflush(stdout);
}

static int run_steady(void) {
    media_mode = 1;
    if (opt_load <= 0 || opt_hold_mean <= 0) die("steady needs --load > 0 and --hold-mean > 0");
    int prefill = (int)lround(opt_load);
    phase_load[0] = opt_load;
    phase_s[0] = opt_duration;
    double peak = 0, total_s = 0;
    for (int k = 0; k < nphases; k++) {
        if (phase_load[k] > peak) peak = phase_load[k];
        total_s += phase_s[k];
    }
    ncalls = opt_slots ? opt_slots : (int)(peak * 3) + 200;
    calls = calloc((size_t)ncalls, sizeof *calls);
    if (!calls) die("out of memory");
    uint64_t seed = opt_seed ? opt_seed : run_id;
    rng_state = (seed ^ 0x9E3779B97F4A7C15ULL) | 1;
    /* --- the stationary start: E calls up, their holds memoryless --- */
    int64_t t0 = now_ns();
    int64_t setup_deadline = t0 + (int64_t)((prefill / opt_rate + opt_timeout + 5) * 1e9);
    int started = 0;
    while (now_ns() < setup_deadline) {
        int64_t now = now_ns();
        long due = (long)((now - t0) / 1e9 * opt_rate) + 1;
        for (; started < prefill && started < due; started++) start_call(now, rnd_exp(opt_hold_mean));
        if (started == prefill && npending == 0) break;
        poll_once(2);
    }
    int up = count_state(S_UP);
    printf("setup: %d/%d calls up in %.2f s (%ld failed, %ld timeouts, %ld retransmissions)\n",
           up, prefill, (now_ns() - t0) / 1e9, c_failed, c_timeouts, c_retrans);
    print_codes();
    printf("PHASE established calls=%d streams=%d\n", up, 2 * up);
    fflush(stdout);
    wait_sync("established");

    /* --- the window: Poisson arrivals, exponential holds, media every 20 ms --- */
    tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int64_t m0 = now_ns() + TICK_NS;
    struct itimerspec its = {{0, TICK_NS}, {m0 / 1000000000LL, m0 % 1000000000LL}};
    timerfd_settime(tick_fd, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tick_fd};
    epoll_ctl(ep_fd, EPOLL_CTL_ADD, tick_fd, &ev);
    for (int i = 0; i < ncalls; i++)
        if (calls[i].state == S_UP) calls[i].t_hangup = m0 + calls[i].hold_ns;
    double per_s = opt_load / opt_hold_mean; /* arrivals per second */
    int64_t next_arrival = m0 + (int64_t)(rnd_exp(1.0 / per_s) * 1e9);
    long nticks = (long)(total_s * 1e9 / TICK_NS);
    long phase_end = (long)(phase_s[0] * 1e9 / TICK_NS); /* tick at which the next begins */
    long jump = 0; /* calls still to start for a raised load, at most rate/50 a tick */
    long jump_per_tick = (long)ceil(opt_rate * TICK_NS / 1e9);
    int64_t deadline = m0 + (int64_t)(total_s * 1e9) + 5000000000LL;
    int64_t stat_every = (int64_t)(opt_stats * 1e9), next_stat = m0 + stat_every;
    double cpu0 = cpu_seconds();
    uint64_t sent0 = rtp_sent;
    long max_up = 0;
    print_stat(m0, m0);
    while (ticks < nticks && now_ns() < deadline) {
        struct epoll_event evs[8];
        int n = epoll_wait(ep_fd, evs, 8, 50);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == sip_fd) { drain_sip(); continue; }
            if (evs[i].data.fd != tick_fd) continue;
            uint64_t exp = 0;
            if (read(tick_fd, &exp, sizeof exp) != sizeof exp || exp == 0) continue;
            if (exp > 1) missed_ticks += (long)exp - 1;
            for (uint64_t e = 0; e < exp && ticks < nticks; e++) {
                int64_t sched = m0 + ticks * TICK_NS;
                int64_t b0 = now_ns();
                int64_t late = b0 - sched;
                if (late > max_late_ns) max_late_ns = late;
                if (late > 5000000) late_ticks++;
                while (phase + 1 < nphases && ticks >= phase_end) { /* the next load phase */
                    phase++;
                    phase_end += (long)(phase_s[phase] * 1e9 / TICK_NS);
                    double delta = phase_load[phase] - phase_load[phase - 1];
                    if (delta > 0) jump += lround(delta);
                    per_s = phase_load[phase] / opt_hold_mean;
                    next_arrival = per_s > 0 ? sched + (int64_t)(rnd_exp(1.0 / per_s) * 1e9)
                                             : INT64_MAX; /* memoryless: a fresh draw */
                    printf("PHASE load k=%d load=%.1f t=%.2f sent=%" PRIu64 "\n", phase,
                           phase_load[phase], (sched - m0) / 1e9, rtp_sent - sent0);
                    fflush(stdout);
                }
                for (long j = 0; j < jump_per_tick && jump > 0; j++, jump--)
                    start_call(b0, rnd_exp(opt_hold_mean));
                while (next_arrival <= sched) {
                    start_call(b0, rnd_exp(opt_hold_mean));
                    next_arrival += (int64_t)(rnd_exp(1.0 / per_s) * 1e9);
                }
                hang_up_due(sched);
                send_rtp_round();
                int64_t burst = now_ns() - b0;
                sum_burst_ns += burst;
                if (burst > max_burst_ns) max_burst_ns = burst;
                ticks++;
            }
        }
        t_now = now_ns();
        check_timers(t_now);
        if (t_now >= next_stat) {
            long u = count_state(S_UP);
            if (u > max_up) max_up = u;
            print_stat(t_now, m0);
            next_stat += stat_every;
        }
    }
    int64_t media_end = now_ns();
    double media_s = ticks ? (media_end - m0 + TICK_NS) / 1e9 : 0;
    double gen_cpu = cpu_seconds() - cpu0;
    uint64_t sent = rtp_sent - sent0;
    print_stat(media_end, m0);
    printf("PHASE window_done sent=%" PRIu64 "\n", sent);
    fflush(stdout);

    /* --- new calls stop; every call still up is BYEd, rate limited --- */
    for (int64_t until = now_ns() + (int64_t)opt_bye_gap_ms * 1000000; now_ns() < until;)
        poll_once(1);
    int64_t b0 = now_ns();
    int64_t bye_deadline = b0 + (int64_t)((ncalls / opt_rate + opt_timeout + 5) * 1e9);
    int nextb = 0;
    long byes_started = 0, cut = 0;
    while (now_ns() < bye_deadline) {
        int64_t now = now_ns();
        long due = (long)((now - b0) / 1e9 * opt_rate) + 1;
        for (; nextb < ncalls && byes_started < due; nextb++) {
            if (calls[nextb].state == S_UP) { start_bye(nextb, now); byes_started++; cut++; }
        }
        if (nextb >= ncalls && count_state(S_UP) > 0) nextb = 0; /* answered since passed */
        if (nextb >= ncalls && npending == 0 && now - t_late_answer > 2000000000LL &&
            now - b0 > 2000000000LL)
            break; /* and 2 s without a late answer to BYE */
        poll_once(2);
    }
    printf("teardown: %ld calls cut at the end of the window; %ld BYEs answered 2xx in all, "
           "%ld failed\n", cut, c_byes_ok, c_bye_failed);
    qsort(lat, nlat, sizeof *lat, cmp64);
    printf("RESULT mode=steady load=%.1f hold_mean_s=%.1f started=%ld answered=%ld "
           "setup_failed=%ld timeouts=%ld blocked=%ld held_to_end=%ld cut_at_end=%ld "
           "byes_ok=%ld bye_failed=%ld server_bye=%ld max_up=%ld sent=%" PRIu64
           " call_s=%.1f duration_s=%.3f ticks=%ld late_ticks=%ld missed_ticks=%ld "
           "max_late_ms=%.3f max_burst_ms=%.3f avg_burst_ms=%.3f gen_cpu_pct=%.1f "
           "send_eagain=%" PRIu64 " send_errors=%" PRIu64 " setup_p50_ms=%.3f "
           "setup_p99_ms=%.3f retrans=%ld no_media=%ld late_ended=%ld phases=%d\n",
           opt_load, opt_hold_mean, c_started, c_answered, c_failed, c_timeouts, c_blocked,
           c_held, cut, c_byes_ok, c_bye_failed, c_server_bye, max_up, sent,
           sent / 100.0, media_s, ticks, late_ticks, missed_ticks, max_late_ns / 1e6,
           max_burst_ns / 1e6, ticks ? sum_burst_ns / 1e6 / ticks : 0.0,
           media_s > 0 ? 100 * gen_cpu / media_s : 0.0, rtp_eagain, rtp_errors, pct(50),
           pct(99), c_retrans, c_no_media, c_late_ended, nphases);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
        "usage: loadgen media --server HOST:PORT --calls N [--rate R] [--duration S] [--sync]\n"
        "       loadgen setup --server HOST:PORT [--window W] [--duration S] [--max-calls M]\n"
        "       loadgen steady --server HOST:PORT --load E [--hold-mean S] [--duration S]\n"
        "                      [--seed N] [--rate R] [--stats-interval S] [--slots N] [--sync]\n"
        "                      [--bye-gap-ms G] [--then LOAD:SECONDS ...]\n"
        "common: [--timeout S] [--local-port P] [--aor user@domain] [--batch B]\n"
        "        [--sync-timeout S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && ++i)
        if (ARG("--server")) {
            if (sscanf(v, "%63[^:]:%d", server_host, &server_port) != 2) usage();
        } else if (ARG("--calls")) opt_calls = atoi(v);
        else if (ARG("--window")) opt_window = atoi(v);
        else if (ARG("--rate")) opt_rate = atof(v);
        else if (ARG("--duration")) opt_duration = atof(v);
        else if (ARG("--timeout")) opt_timeout = atof(v);
        else if (ARG("--max-calls")) opt_max_calls = atol(v);
        else if (ARG("--local-port")) opt_local_port = atoi(v);
        else if (ARG("--aor")) opt_aor = v;
        else if (ARG("--batch")) opt_batch = atoi(v);
        else if (ARG("--sync-timeout")) opt_sync_timeout = atof(v);
        else if (ARG("--load")) opt_load = atof(v);
        else if (ARG("--hold-mean")) opt_hold_mean = atof(v);
        else if (ARG("--seed")) opt_seed = strtoull(v, NULL, 10);
        else if (ARG("--stats-interval")) opt_stats = atof(v);
        else if (ARG("--slots")) opt_slots = atoi(v);
        else if (ARG("--bye-gap-ms")) opt_bye_gap_ms = atoi(v);
        else if (ARG("--then")) {
            if (nphases >= MAX_PHASES ||
                sscanf(v, "%lf:%lf", &phase_load[nphases], &phase_s[nphases]) != 2 ||
                phase_load[nphases] < 0 || phase_load[nphases] > 200000 ||
                phase_s[nphases] < 0 || phase_s[nphases] > 7200)
                die("--then wants LOAD:SECONDS, at most %d phases", MAX_PHASES - 1);
            nphases++;
        }
        else if (strcmp(a, "--sync") == 0) opt_sync = 1;
        else usage();
#undef ARG
    }
    if (opt_calls < 1 || opt_window < 1 || opt_rate <= 0 || opt_duration < 0 || opt_batch < 1 ||
        opt_calls > 1000000 || opt_window > 1000000 || opt_duration > 7200 || opt_timeout > 120 ||
        opt_load < 0 || opt_load > 200000 || opt_slots < 0 || opt_slots > 1000000 ||
        opt_bye_gap_ms < 0 || opt_bye_gap_ms > 10000 ||
        opt_stats < 0.1 || opt_hold_mean > 86400)
        die("option out of range");
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)server_port);
    if (inet_pton(AF_INET, server_host, &server.sin_addr) != 1) die("bad server address");
    if ((ntohl(server.sin_addr.s_addr) >> 24) != 127) die("server must be a loopback address");

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    run_id = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 16) ^ (uint32_t)getpid());
    srand(run_id);
    for (int i = 0; i < RTP_PAYLOAD; i++)
        payload[i] = ulaw((int16_t)(8000 * sin(2 * M_PI * 400 * i / 8000.0)));

    sip_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    rtp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (sip_fd < 0 || rtp_fd < 0) die("socket: %s", strerror(errno));
    int big = 16 << 20;
    if (setsockopt(sip_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        setsockopt(sip_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (setsockopt(sip_fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
        setsockopt(sip_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (setsockopt(rtp_fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
        setsockopt(rtp_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_local_port)};
    inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
    if (bind(sip_fd, (struct sockaddr *)&la, sizeof la) < 0) die("bind: %s", strerror(errno));
    la.sin_port = 0;
    if (bind(rtp_fd, (struct sockaddr *)&la, sizeof la) < 0) die("bind: %s", strerror(errno));
    socklen_t sl = sizeof la;
    getsockname(sip_fd, (struct sockaddr *)&la, &sl);
    local_port = ntohs(la.sin_port);

    ep_fd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sip_fd};
    epoll_ctl(ep_fd, EPOLL_CTL_ADD, sip_fd, &ev);
    if (opt_sync) {
        struct epoll_event e0 = {.events = EPOLLIN, .data.fd = 0};
        if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, 0, &e0) < 0) die("--sync needs stdin to be a pipe");
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "media") == 0) return run_media();
    if (strcmp(mode, "setup") == 0) return run_setup();
    if (strcmp(mode, "steady") == 0) return run_steady();
    usage();
    return 2;
}
