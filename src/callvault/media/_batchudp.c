/* Batched UDP for the media relay: recvmmsg/sendmmsg (Linux), IPv4 and IPv6.
 *
 * Issue 10 (SPEC section 2, mode 2): the B2BUA's relay (media/relay.py)
 * forwards RTP between a call's two legs. Python's socket module has one
 * system call per datagram and no recvmmsg; this module reads a leg's socket
 * with one recvmmsg and forwards the packets from the latched source with one
 * sendmmsg straight from the receive buffers, so the hot path enters Python
 * once per batch and allocates only the bytes the recording's tap keeps.
 *
 *   relay(fd, latched, out_fd, dest, copy_all)
 *       -> (fast, sent, errors, packets, rest)
 *   relay_record(fd, latched, out_fd, dest, spool, arrival_ms, te_map)
 *       -> (fast, sent, errors, last, events, counts, rest)
 *   recv_batch(fd, max_packets=64) -> [(bytes, address), ...]
 *   Pump(*, uring=True): every relay socket in one epoll set (below); a run's
 *       sends through connected sockets go in one io_uring submission
 *   send_batch(fd, [(bytes-like, address), ...]) -> sent
 *
 * Addresses are Python's socket module tuples: (host, port) for IPv4,
 * (host, port, flowinfo, scope_id) for IPv6, hosts numeric. Receiving never
 * blocks (MSG_DONTWAIT); EAGAIN is "nothing there", not an error. The GIL is
 * released around each system call. The receive buffers are per thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* io_uring (the pump's sends of one run in one submission) where the headers
 * have it (IORING_OP_SEND: Linux 5.6; IORING_FEAT_FAST_POLL came with it);
 * elsewhere, and where io_uring_setup fails, the pump sends with sendmmsg. */
#if defined(__has_include) && !defined(CALLVAULT_NO_IO_URING)
#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#if defined(IORING_FEAT_FAST_POLL) && defined(__NR_io_uring_setup) && defined(__NR_io_uring_enter)
#define HAVE_IO_URING 1
#endif
#endif
#endif

#define MAX_BATCH 64
#define SLOT 65536 /* any UDP datagram fits: nothing relayed is ever cut */
/* room for a packet's receive timestamp (SCM_TIMESTAMPNS or SCM_TIMESTAMP) */
#define CONTROL 64

typedef struct {
    struct mmsghdr in[MAX_BATCH];
    struct iovec in_iov[MAX_BATCH];
    struct sockaddr_storage from[MAX_BATCH];
    struct mmsghdr out[MAX_BATCH];
    struct iovec out_iov[MAX_BATCH];
    struct sockaddr_storage to[MAX_BATCH];
    union {
        struct cmsghdr align;
        unsigned char bytes[CONTROL];
    } control[MAX_BATCH];
    uint32_t stamp[MAX_BATCH]; /* each spooled packet's arrival (stamped pumps) */
    unsigned char *slots; /* MAX_BATCH * SLOT; pages are touched only as used */
} Batch;

static pthread_key_t batch_key;

static void
batch_free(void *p)
{
    Batch *b = p;
    if (b != NULL) {
        free(b->slots);
        free(b);
    }
}

static Batch *
get_batch(void)
{
    Batch *b = pthread_getspecific(batch_key);
    if (b != NULL) {
        return b;
    }
    b = calloc(1, sizeof(Batch));
    if (b == NULL || (b->slots = malloc((size_t)MAX_BATCH * SLOT)) == NULL) {
        free(b);
        PyErr_NoMemory();
        return NULL;
    }
    for (int i = 0; i < MAX_BATCH; i++) {
        b->in_iov[i].iov_base = b->slots + (size_t)i * SLOT;
        b->in[i].msg_hdr.msg_iov = &b->in_iov[i];
        b->in[i].msg_hdr.msg_iovlen = 1;
        b->in[i].msg_hdr.msg_name = &b->from[i];
        b->out[i].msg_hdr.msg_iov = &b->out_iov[i];
        b->out[i].msg_hdr.msg_iovlen = 1;
    }
    if (pthread_setspecific(batch_key, b) != 0) {
        batch_free(b);
        PyErr_SetString(PyExc_RuntimeError, "pthread_setspecific failed");
        return NULL;
    }
    return b;
}

/* -- addresses ---------------------------------------------------------------- */

/* A Python address tuple to a sockaddr; ValueError unless its host is numeric. */
static int
parse_address(PyObject *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) {
        PyErr_SetString(PyExc_TypeError, "address must be a (host, port, ...) tuple");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    if (host == NULL) {
        return -1;
    }
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':') == NULL) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not a numeric IPv4 address: %s", host);
            return -1;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "not a numeric IPv6 address: %s", host);
        return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (PyTuple_GET_SIZE(addr) >= 4) {
        unsigned long flow = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
        unsigned long scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
        if (PyErr_Occurred()) {
            return -1;
        }
        sin6->sin6_flowinfo = htonl((uint32_t)flow);
        sin6->sin6_scope_id = (uint32_t)scope;
    }
    *len = sizeof(*sin6);
    return 0;
}

/* Whether a received source is the latched one (flowinfo is not the source's). */
static int
same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* Whether fd is connected to exactly `dest` (what the kernel says, not what
 * Python believes): only then is it sent to with no address. */
static int
connected_to(int fd, const struct sockaddr_storage *dest)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
        return 0; /* ENOTCONN: not connected */
    }
    return same_source(&peer, dest);
}

/* A received source as Python's socket module writes it. */
static PyObject *
make_address(const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(sin->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siII)", host, ntohs(sin6->sin6_port),
                             ntohl(sin6->sin6_flowinfo), sin6->sin6_scope_id);
    }
    Py_RETURN_NONE; /* an unnamed source: compares unequal to every latch */
}

/* -- system calls ---------------------------------------------------------------- */

/* recvmmsg without blocking: the number received (0: nothing there), -1 with
 * OSError set. `stamps`: each message gets a control buffer for its kernel
 * receive timestamp (packet_mono_ns), on a socket with SO_TIMESTAMPNS set. */
static int
receive(int fd, Batch *b, int max_packets, int stamps)
{
    for (int i = 0; i < max_packets; i++) {
        b->in_iov[i].iov_len = SLOT;
        b->in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        b->in[i].msg_hdr.msg_flags = 0;
        b->in[i].msg_hdr.msg_control = stamps ? b->control[i].bytes : NULL;
        b->in[i].msg_hdr.msg_controllen = stamps ? CONTROL : 0;
    }
    int n, err;
    Py_BEGIN_ALLOW_THREADS
    do {
        n = recvmmsg(fd, b->in, (unsigned int)max_packets, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    err = errno;
    Py_END_ALLOW_THREADS
    if (n >= 0) {
        return n;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
        return 0;
    }
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* CLOCK_MONOTONIC minus CLOCK_REALTIME, in ns, read now: the kernel stamps a
 * packet on CLOCK_REALTIME; the event loop's clock (libuv's uv_now, Python's
 * time.monotonic) is CLOCK_MONOTONIC. Taken fresh per run (the realtime clock
 * may be stepped). */
static long long
timespec_ns(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* Read as REALTIME, MONOTONIC, REALTIME, the monotonic reading against the
 * realtime midpoint, keeping the tightest of three tries: a thread preempted
 * between two reads would otherwise shift every stamp of the run by as long. */
static long long
realtime_to_monotonic_ns(void)
{
    long long best = 0, best_gap = -1;
    for (int k = 0; k < 3; k++) {
        struct timespec r1, mono, r2;
        clock_gettime(CLOCK_REALTIME, &r1);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        clock_gettime(CLOCK_REALTIME, &r2);
        long long gap = timespec_ns(&r2) - timespec_ns(&r1);
        if (best_gap < 0 || gap < best_gap) {
            best_gap = gap;
            best = timespec_ns(&mono) - (timespec_ns(&r1) + gap / 2);
        }
    }
    return best;
}

/* The kernel's receive time of in[i] on CLOCK_MONOTONIC, in ms (`to_mono`:
 * realtime_to_monotonic_ns); -1 when the message carries no timestamp. */
static long long
packet_mono_ms(Batch *b, int i, long long to_mono)
{
    struct msghdr *h = &b->in[i].msg_hdr;
    if (h->msg_control == NULL) {
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != SOL_SOCKET) {
            continue;
        }
        long long ns;
        if (c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        } else if (c->cmsg_type == SCM_TIMESTAMP) {
            struct timeval tv;
            memcpy(&tv, CMSG_DATA(c), sizeof(tv));
            ns = (long long)tv.tv_sec * 1000000000LL + (long long)tv.tv_usec * 1000;
        } else {
            continue;
        }
        ns += to_mono;
        return ns < 0 ? 0 : ns / 1000000;
    }
    return -1;
}

/* sendmmsg of out[0..count): returns how many the kernel took; a message it
 * refuses (full buffer, unreachable) is dropped and counted in *errors. */
static int
transmit(int fd, Batch *b, int count, int *errors)
{
    int sent = 0, failed = 0, i = 0;
    Py_BEGIN_ALLOW_THREADS
    while (i < count) {
        int r = sendmmsg(fd, b->out + i, (unsigned int)(count - i), MSG_DONTWAIT);
        if (r > 0) {
            sent += r;
            i += r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            failed++; /* the message at i: RTP is not retried, the next one is due */
            i++;
        }
    }
    Py_END_ALLOW_THREADS
    *errors += failed;
    return sent;
}

static int
fd_argument(PyObject *arg, int *fd)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "file descriptor out of range");
        return -1;
    }
    *fd = (int)v;
    return 0;
}

/* -- the module's functions ------------------------------------------------------ */

/* Sets the bytearray's size to `size`, its allocation growing by doubling
 * (at least SPOOL_MIN_ALLOC): bytearray's own resize allocates exactly when
 * it grows by more than an eighth, which, from the empty buffer a flush
 * leaves, is almost every packet. -1 with an exception set. */
#define SPOOL_MIN_ALLOC 8192
static int
grow_spool(PyObject *spool, Py_ssize_t size)
{
    PyByteArrayObject *array = (PyByteArrayObject *)spool;
    Py_ssize_t offset = array->ob_start - array->ob_bytes; /* after a del of its head */
    if (offset + size + 1 > array->ob_alloc) {
        Py_ssize_t want = array->ob_alloc * 2;
        if (want < size) {
            want = size;
        }
        if (want < SPOOL_MIN_ALLOC) {
            want = SPOOL_MIN_ALLOC;
        }
        /* allocates want + 1 (a major upsize is exact), or BufferError */
        if (PyByteArray_Resize(spool, want) < 0) {
            return -1;
        }
    } else if (array->ob_exports > 0) {
        PyErr_SetString(PyExc_BufferError, "Existing exports of data: object cannot be re-sized");
        return -1;
    }
    /* a shrink within the allocation, as bytearray's own "minor downsize" */
    Py_SET_SIZE(spool, size);
    PyByteArray_AS_STRING(spool)[size] = '\0';
    return 0;
}

/* A stamped pump's run (Pump(stamps=True), recorded streams): each spooled
 * packet is stamped with its kernel receive time on the loop's clock,
 * clamped to at most the run's now_ms (a packet stamped after the loop's
 * cached time) and to at least the slot's previous stamp (a stream's records
 * never go back in time), plus the slot's offset to the recording's clock;
 * one without a timestamp gets now_ms. `events_ms`: the stamp of each RFC
 * 4733 packet in `events`, made with it. */
typedef struct {
    long long to_mono; /* realtime_to_monotonic_ns() at the run's start */
    long long now_ms;
    long long offset_ms;
    long long *floor_ms; /* the slot's last stamp, on the recording's clock */
    PyObject *events_ms;
} Stamper;

static uint32_t
stamp_of(Batch *b, int i, Stamper *st)
{
    long long at = packet_mono_ms(b, i, st->to_mono);
    if (at < 0 || at > st->now_ms) {
        at = st->now_ms;
    }
    at += st->offset_ms;
    if (at < *st->floor_ms) {
        at = *st->floor_ms;
    }
    if (at < 0) {
        at = 0;
    }
    *st->floor_ms = at;
    return (uint32_t)at;
}

/* Appends the RECORD_HEADER-framed records (recording/spool.py: <u32 arrival_ms>
 * <u16 length><packet>, little endian) of the RTP packets in[0..count) to the
 * spool's bytearray, as RtpReceiver.datagram_received would: a packet shorter
 * than the fixed header or not version 2 is malformed, RTCP (RFC 5761) is
 * skipped, neither is spooled. The RFC 4733 packets (te_map[pt] != 0) are
 * also appended to *events (made when the first comes) for the DTMF tracker. counts[]:
 * spooled packets, their bytes, malformed, RTCP. Each record is stamped
 * arrival_ms, or stamp_of() with a stamper (their stamps then in
 * st->events_ms, made with *events). -1 with an exception set. */
static int
spool_records(Batch *b, int count, PyObject *spool, uint32_t arrival_ms, Stamper *st,
              const unsigned char *te_map, PyObject **events, long counts[4])
{
    Py_ssize_t need = 0;
    for (int i = 0; i < count; i++) {
        const unsigned char *p = b->in_iov[i].iov_base;
        unsigned int len = b->in[i].msg_len;
        if (len < 12 || (p[0] & 0xC0) != 0x80) {
            counts[2]++;
        } else if (p[1] >= 200 && p[1] <= 204) {
            counts[3]++;
        } else {
            need += 6 + (Py_ssize_t)len;
        }
    }
    if (need == 0) {
        return 0;
    }
    Py_ssize_t at = PyByteArray_GET_SIZE(spool);
    if (grow_spool(spool, at + need) < 0) {
        return -1; /* BufferError while someone holds a view of it */
    }
    unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(spool) + at;
    for (int i = 0; i < count; i++) {
        const unsigned char *p = b->in_iov[i].iov_base;
        unsigned int len = b->in[i].msg_len;
        if (len < 12 || (p[0] & 0xC0) != 0x80 || (p[1] >= 200 && p[1] <= 204)) {
            continue;
        }
        if (st != NULL) {
            arrival_ms = stamp_of(b, i, st);
        }
        out[0] = (unsigned char)arrival_ms;
        out[1] = (unsigned char)(arrival_ms >> 8);
        out[2] = (unsigned char)(arrival_ms >> 16);
        out[3] = (unsigned char)(arrival_ms >> 24);
        out[4] = (unsigned char)len;
        out[5] = (unsigned char)(len >> 8);
        memcpy(out + 6, p, len);
        out += 6 + len;
        counts[0]++;
        counts[1] += len;
        if (te_map[p[1] & 0x7F]) {
            if (*events == NULL && (*events = PyList_New(0)) == NULL) {
                return -1;
            }
            if (st != NULL && st->events_ms == NULL && (st->events_ms = PyList_New(0)) == NULL) {
                return -1;
            }
            PyObject *data = PyBytes_FromStringAndSize((const char *)p, len);
            if (data == NULL || PyList_Append(*events, data) < 0) {
                Py_XDECREF(data);
                return -1;
            }
            Py_DECREF(data);
            if (st != NULL) {
                PyObject *at = PyLong_FromUnsignedLong(arrival_ms);
                if (at == NULL || PyList_Append(st->events_ms, at) < 0) {
                    Py_XDECREF(at);
                    return -1;
                }
                Py_DECREF(at);
            }
        }
    }
    return 0;
}

/* What to do with one socket's batch: the latched source's packets are
 * forwarded to dest through out_fd (forward), and spooled (spool != NULL). */
typedef struct {
    struct sockaddr_storage latched;
    struct sockaddr_storage dest;
    socklen_t dest_len;
    int out_fd;
    int forward;
    int connected; /* out_fd is connected to dest: sent with no address */
    PyObject *spool; /* borrowed bytearray, or NULL: not recorded here */
    uint32_t arrival_ms;
    const unsigned char *te_map;
    struct Pump *queue; /* a pump with a ring: connected sends are queued there */
    Stamper *stamper; /* a stamped pump's run: kernel receive times */
} Route;

static void pump_queue(struct Pump *self, int fd, int out_fd, Batch *b, int count);

/* One recvmmsg on fd, the leading packets from the latched source (*fast)
 * forwarded with one sendmmsg and spooled (RFC 4733 ones also appended to
 * events). Returns the number received (packets fast.. are from elsewhere,
 * untouched), -1 with an exception set. */
static int
serve(int fd, Batch *b, const Route *r, PyObject **events, int *fast, int *sent, int *errors,
      long counts[4])
{
    int n = receive(fd, b, MAX_BATCH, r->stamper != NULL);
    if (n < 0) {
        return -1;
    }
    int f = 0;
    while (f < n && same_source(&b->from[f], &r->latched)) {
        f++;
    }
    *fast = f;
    if (r->forward && f > 0 && r->queue != NULL && r->connected) {
        pump_queue(r->queue, fd, r->out_fd, b, f); /* sent and counted at the run's end */
    } else if (r->forward && f > 0) {
        for (int i = 0; i < f; i++) {
            b->out_iov[i].iov_base = b->in_iov[i].iov_base;
            b->out_iov[i].iov_len = b->in[i].msg_len;
            /* Linux routes a send with an address per packet; a connected
             * socket's sends use its cached route */
            b->out[i].msg_hdr.msg_name = r->connected ? NULL : (void *)&r->dest;
            b->out[i].msg_hdr.msg_namelen = r->connected ? 0 : r->dest_len;
        }
        *sent += transmit(r->out_fd, b, f, errors);
    }
    if (r->spool != NULL &&
        spool_records(b, f, r->spool, r->arrival_ms, r->stamper, r->te_map, events, counts) < 0) {
        return -1;
    }
    return n;
}

/* The packets in[from..n) as [(bytes, address), ...]; NULL with an exception set. */
static PyObject *
rest_list(Batch *b, int from, int n)
{
    PyObject *rest = PyList_New(0);
    for (int i = from; rest != NULL && i < n; i++) {
        PyObject *item = Py_BuildValue("(y#N)", (const char *)b->in_iov[i].iov_base,
                                       (Py_ssize_t)b->in[i].msg_len, make_address(&b->from[i]));
        if (item == NULL || PyList_Append(rest, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(rest);
        }
        Py_XDECREF(item);
    }
    return rest;
}

/* The route's latched source and destination from Python addresses: -1 with
 * an exception set (ValueError when not numeric). */
static int
route_addresses(Route *r, PyObject *latched, int out_fd, PyObject *dest)
{
    socklen_t latched_len;
    if (parse_address(latched, &r->latched, &latched_len) < 0) {
        return -1;
    }
    r->out_fd = out_fd;
    r->forward = out_fd >= 0 && dest != Py_None;
    r->dest_len = 0;
    r->connected = 0;
    if (r->forward && parse_address(dest, &r->dest, &r->dest_len) < 0) {
        return -1;
    }
    if (r->forward) {
        r->connected = connected_to(out_fd, &r->dest);
    }
    return 0;
}

static int
te_map_argument(PyObject *arg, const unsigned char **te_map)
{
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) != 128) {
        PyErr_SetString(PyExc_TypeError, "te_map must be 128 bytes");
        return -1;
    }
    *te_map = (const unsigned char *)PyBytes_AS_STRING(arg);
    return 0;
}

PyDoc_STRVAR(relay_doc,
"relay(fd, latched, out_fd, dest, copy_all) -> (fast, sent, errors, packets, rest)\n\n"
"One recvmmsg on fd. The leading packets from the source `latched` (fast of\n"
"them) are sent to `dest` through `out_fd` with sendmmsg (not when out_fd < 0\n"
"or dest is None: sent is then 0). `packets` holds those packets as bytes:\n"
"all of them when copy_all, else only the last. `rest`: the packets from the\n"
"first one from elsewhere on, as (bytes, address), untouched and not sent.\n"
"ValueError (before anything is received) when an address is not numeric.");

static PyObject *
batchudp_relay(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "relay() takes 5 arguments");
        return NULL;
    }
    int fd, out_fd, copy_all;
    Route r = {0};
    if (fd_argument(args[0], &fd) < 0 || fd_argument(args[2], &out_fd) < 0 ||
        (copy_all = PyObject_IsTrue(args[4])) < 0 ||
        route_addresses(&r, args[1], out_fd, args[3]) < 0) {
        return NULL;
    }
    Batch *b = get_batch();
    if (b == NULL) {
        return NULL;
    }
    int fast = 0, sent = 0, errors = 0;
    long counts[4] = {0, 0, 0, 0};
    int n = serve(fd, b, &r, NULL, &fast, &sent, &errors, counts); /* no spool: no events */
    if (n < 0) {
        return NULL;
    }
    PyObject *packets = PyList_New(0), *rest = NULL;
    for (int i = copy_all ? 0 : fast - 1; packets != NULL && i >= 0 && i < fast; i++) {
        PyObject *data = PyBytes_FromStringAndSize(b->in_iov[i].iov_base, b->in[i].msg_len);
        if (data == NULL || PyList_Append(packets, data) < 0) {
            Py_CLEAR(packets);
        }
        Py_XDECREF(data);
    }
    if (packets == NULL || (rest = rest_list(b, fast, n)) == NULL) {
        Py_XDECREF(packets);
        return NULL;
    }
    return Py_BuildValue("(iiiNN)", fast, sent, errors, packets, rest);
}

PyDoc_STRVAR(relay_record_doc,
"relay_record(fd, latched, out_fd, dest, spool, arrival_ms, te_map)\n"
"    -> (fast, sent, errors, last, events, counts, rest)\n\n"
"relay() with the recording's common tap done here: the leading packets from\n"
"`latched` (fast of them) are forwarded as relay() does, and their records\n"
"appended to the bytearray `spool` as RtpReceiver would (RECORD_HEADER\n"
"<u32 arrival_ms><u16 length> + packet; malformed and RTCP packets are\n"
"forwarded but not spooled). `te_map`: 128 bytes, non-zero at the\n"
"telephone-event payload types; `events` holds those packets (spooled too)\n"
"as bytes. `last`: the last fast packet (None when fast is 0). counts:\n"
"(spooled, spooled_bytes, malformed, rtcp). `rest` as relay(): not spooled.");

static PyObject *
batchudp_relay_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "relay_record() takes 7 arguments");
        return NULL;
    }
    int fd, out_fd;
    Route r = {0};
    if (fd_argument(args[0], &fd) < 0 || fd_argument(args[2], &out_fd) < 0 ||
        route_addresses(&r, args[1], out_fd, args[3]) < 0) {
        return NULL;
    }
    r.spool = args[4];
    if (!PyByteArray_Check(r.spool)) {
        PyErr_SetString(PyExc_TypeError, "spool must be a bytearray");
        return NULL;
    }
    unsigned long long arrival = PyLong_AsUnsignedLongLongMask(args[5]);
    if ((arrival == (unsigned long long)-1 && PyErr_Occurred()) ||
        te_map_argument(args[6], &r.te_map) < 0) {
        return NULL;
    }
    r.arrival_ms = (uint32_t)arrival;
    Batch *b = get_batch();
    if (b == NULL) {
        return NULL;
    }
    int fast = 0, sent = 0, errors = 0;
    long counts[4] = {0, 0, 0, 0};
    PyObject *events = NULL, *rest = NULL, *last = NULL;
    int n = serve(fd, b, &r, &events, &fast, &sent, &errors, counts);
    if (n < 0 || (events == NULL && (events = PyList_New(0)) == NULL)) {
        goto fail;
    }
    if (fast > 0) {
        last = PyBytes_FromStringAndSize(b->in_iov[fast - 1].iov_base, b->in[fast - 1].msg_len);
    } else {
        last = Py_NewRef(Py_None);
    }
    if (last == NULL || (rest = rest_list(b, fast, n)) == NULL) {
        goto fail;
    }
    return Py_BuildValue("(iiiNN(llll)N)", fast, sent, errors, last, events, counts[0],
                         counts[1], counts[2], counts[3], rest);
fail:
    Py_XDECREF(events);
    Py_XDECREF(last);
    return NULL;
}

PyDoc_STRVAR(recv_batch_doc,
"recv_batch(fd, max_packets=64, stamps=False) -> list[tuple[bytes, address]]\n\n"
"One recvmmsg on fd without blocking: up to max_packets datagrams (at most 64)\n"
"with their sources; an empty list when none is queued. stamps: each item is\n"
"(bytes, address, received_ms), the kernel's receive time (SO_TIMESTAMPNS set\n"
"on fd) on CLOCK_MONOTONIC in ms, the event loop's clock; -1 without one.");

static PyObject *
batchudp_recv_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "recv_batch() takes 1 to 3 arguments");
        return NULL;
    }
    int fd, max_packets = MAX_BATCH, stamps = 0;
    if (fd_argument(args[0], &fd) < 0) {
        return NULL;
    }
    if (nargs == 3 && (stamps = PyObject_IsTrue(args[2])) < 0) {
        return NULL;
    }
    if (nargs >= 2) {
        long m = PyLong_AsLong(args[1]);
        if (m == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (m < 1) {
            PyErr_SetString(PyExc_ValueError, "max_packets must be at least 1");
            return NULL;
        }
        max_packets = m < MAX_BATCH ? (int)m : MAX_BATCH;
    }
    Batch *b = get_batch();
    if (b == NULL) {
        return NULL;
    }
    int n = receive(fd, b, max_packets, stamps);
    if (n < 0) {
        return NULL;
    }
    long long to_mono = stamps ? realtime_to_monotonic_ns() : 0;
    PyObject *result = PyList_New(n);
    if (result == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        PyObject *item =
            stamps ? Py_BuildValue("(y#NL)", (const char *)b->in_iov[i].iov_base,
                                   (Py_ssize_t)b->in[i].msg_len, make_address(&b->from[i]),
                                   packet_mono_ms(b, i, to_mono))
                   : Py_BuildValue("(y#N)", (const char *)b->in_iov[i].iov_base,
                                   (Py_ssize_t)b->in[i].msg_len, make_address(&b->from[i]));
        if (item == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, item);
    }
    return result;
}

PyDoc_STRVAR(send_batch_doc,
"send_batch(fd, packets) -> int\n\n"
"sendmmsg of [(bytes-like, address), ...] (numeric hosts), 64 at a time;\n"
"returns how many the kernel took (a refused one is skipped, not retried).");

static PyObject *
batchudp_send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send_batch() takes 2 arguments");
        return NULL;
    }
    int fd;
    if (fd_argument(args[0], &fd) < 0) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "packets must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Batch *b = get_batch();
    if (b == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t total = PySequence_Fast_GET_SIZE(seq);
    Py_buffer views[MAX_BATCH];
    long sent = 0;
    for (Py_ssize_t start = 0; start < total; start += MAX_BATCH) {
        int count = (int)(total - start < MAX_BATCH ? total - start : MAX_BATCH), held = 0;
        for (; held < count; held++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, start + held);
            socklen_t len;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "packets must be (data, address) tuples");
                break;
            }
            if (parse_address(PyTuple_GET_ITEM(item, 1), &b->to[held], &len) < 0 ||
                PyObject_GetBuffer(PyTuple_GET_ITEM(item, 0), &views[held], PyBUF_SIMPLE) < 0) {
                break;
            }
            b->out_iov[held].iov_base = views[held].buf;
            b->out_iov[held].iov_len = (size_t)views[held].len;
            b->out[held].msg_hdr.msg_name = &b->to[held];
            b->out[held].msg_hdr.msg_namelen = len;
        }
        int errors = 0;
        if (held == count) {
            sent += transmit(fd, b, count, &errors);
        }
        for (int i = 0; i < held; i++) {
            PyBuffer_Release(&views[i]);
        }
        if (held != count) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    return PyLong_FromLong(sent);
}

PyDoc_STRVAR(set_peer_doc,
"set_peer(fd, address) -> None\n\n"
"connect() the UDP socket fd to `address` (a numeric host): the kernel then\n"
"queues only that source's datagrams on it (others are dropped before any\n"
"read) and sends to it on the socket's cached route, which relay(),\n"
"relay_record() and the pump use when it is the destination. None:\n"
"connect(AF_UNSPEC), any source and destination again (packets already\n"
"queued stay queued either way).");

static PyObject *
batchudp_set_peer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_peer() takes 2 arguments");
        return NULL;
    }
    int fd;
    if (fd_argument(args[0], &fd) < 0) {
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (args[1] == Py_None) {
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_UNSPEC;
        len = sizeof(ss);
    } else if (parse_address(args[1], &ss, &len) < 0) {
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* -- the pump: every relay socket of a process in one epoll set ------------------ */

/* One socket's state in the pump. A configured slot (mode > 0) is served
 * here: its latched source's packets forwarded (and spooled, mode 2); what
 * it did is summed until Python collects it. An unconfigured slot (mode 0)
 * is handed to Python, which reads the socket itself. */
typedef struct {
    int fd;
    int mode; /* 0: Python reads it; 1: forward; 2: forward and spool */
    PyObject *leg; /* what run() hands back to Python */
    Route route;
    PyObject *spool; /* owned reference while mode 2 */
    long long offset_ms; /* the recording's clock minus run()'s now_ms */
    long long floor_ms; /* a stamped pump's last stamp spooled (recording's clock) */
    unsigned char te_map[128];
    /* summed since the last collect */
    int dirty;
    long fast, sent, errors, held, counts[4];
    unsigned char *last; /* the last packet from the latched source */
    size_t last_len, last_cap;
} Slot;

/* The pump's io_uring: the packets a run forwards through connected sockets
 * are copied to `arena` and queued as IORING_OP_SEND entries; one
 * io_uring_enter at the run's end submits them all (and any time the arena
 * or the queue is full). A socket with ~1 packet per run then costs one
 * system call per run instead of one sendmmsg each. Sends are MSG_DONTWAIT:
 * a nonblocking socket's send completes in the submission, and one the
 * kernel refuses (full buffer, ECONNREFUSED) completes with its error, which
 * is counted as transmit() counts it. fd < 0: no ring (sendmmsg). */
#define RING_ENTRIES 256
#define ARENA_SIZE (4 * SLOT)

typedef struct {
    int fd;
    int broken; /* submissions failed: sendmmsg from now on, arena kept */
    void *sq_ring, *cq_ring;
    size_t sq_size, cq_size, sqes_size;
    struct io_uring_sqe *sqes;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned entries;
    unsigned queued;   /* written since the last flush, not yet published */
    unsigned inflight; /* submitted, completion not yet reaped */
    unsigned char *arena;
    size_t used;
} Ring;

typedef struct Pump {
    PyObject_HEAD
    int epfd;
    Slot **slots; /* by file descriptor */
    int nslots;
    int count; /* sockets in the set */
    struct epoll_event *events; /* room for every socket: one epoll_wait serves all */
    int events_cap;
    int stamps; /* kernel receive timestamps (recorded streams) */
    int running;
    Ring ring;
} Pump;

#ifdef HAVE_IO_URING
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif

static void
ring_close(Ring *q)
{
    if (q->sqes != NULL) {
        munmap(q->sqes, q->sqes_size);
    }
    if (q->cq_ring != NULL && q->cq_ring != q->sq_ring) {
        munmap(q->cq_ring, q->cq_size);
    }
    if (q->sq_ring != NULL) {
        munmap(q->sq_ring, q->sq_size);
    }
    if (q->fd >= 0) {
        close(q->fd);
    }
    if (!q->broken) {
        free(q->arena); /* a broken ring's sends may still read it */
    }
    memset(q, 0, sizeof(*q));
    q->fd = -1;
}

static void *
ring_map(int fd, size_t size, off_t offset)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}

/* 0, or -1 (errno set, q->fd -1): io_uring_setup refused (ENOSYS, EPERM,
 * io_uring_disabled) or no memory. */
static int
ring_open(Ring *q)
{
    memset(q, 0, sizeof(*q));
    q->fd = -1;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    int fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0 && errno == EINVAL) { /* before Linux 5.19 */
        memset(&p, 0, sizeof(p));
        fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    }
    if (fd < 0) {
        return -1;
    }
    q->fd = fd;
    q->sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    q->cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && q->cq_size > q->sq_size) {
        q->sq_size = q->cq_size;
    }
    q->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    if ((q->sq_ring = ring_map(fd, q->sq_size, IORING_OFF_SQ_RING)) == NULL ||
        (q->cq_ring = single ? q->sq_ring : ring_map(fd, q->cq_size, IORING_OFF_CQ_RING)) == NULL ||
        (q->sqes = ring_map(fd, q->sqes_size, IORING_OFF_SQES)) == NULL ||
        (q->arena = malloc(ARENA_SIZE)) == NULL) {
        int err = errno;
        ring_close(q);
        errno = err;
        return -1;
    }
    char *sq = q->sq_ring, *cq = q->cq_ring;
    q->sq_head = (unsigned *)(sq + p.sq_off.head);
    q->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    q->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    q->sq_array = (unsigned *)(sq + p.sq_off.array);
    q->cq_head = (unsigned *)(cq + p.cq_off.head);
    q->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    q->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    q->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    q->entries = p.sq_entries < RING_ENTRIES ? p.sq_entries : RING_ENTRIES;
    return 0;
}

/* Counts one finished send on the slot of the socket it relayed from (gone:
 * removed meanwhile by another thread, not counted). */
static void
ring_count(Pump *self, int fd, int failed)
{
    Slot *slot = fd >= 0 && fd < self->nslots ? self->slots[fd] : NULL;
    if (slot != NULL) {
        slot->dirty = 1;
        if (failed) {
            slot->errors++;
        } else {
            slot->sent++;
        }
    }
}

static void
ring_reap(Pump *self)
{
    Ring *q = &self->ring;
    unsigned head = *q->cq_head;
    unsigned tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &q->cqes[head & *q->cq_mask];
        ring_count(self, (int)cqe->user_data, cqe->res < 0);
        q->inflight--;
    }
    __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
}

/* Submits what is queued and reaps every completion (with the GIL). The
 * GIL is released around io_uring_enter only: the slots are touched with it. */
static void
ring_flush(Pump *self)
{
    Ring *q = &self->ring;
    if (q->broken || (q->queued == 0 && q->inflight == 0)) {
        return;
    }
    unsigned tail = *q->sq_tail + q->queued;
    __atomic_store_n(q->sq_tail, tail, __ATOMIC_RELEASE);
    q->queued = 0;
    int failures = 0;
    for (;;) {
        unsigned head = __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
        ring_reap(self);
        unsigned pending = tail - head;
        if (pending == 0 && q->inflight == 0) {
            break;
        }
        int r, err;
        Py_BEGIN_ALLOW_THREADS
        r = (int)syscall(__NR_io_uring_enter, q->fd, pending, q->inflight + pending,
                         IORING_ENTER_GETEVENTS, NULL, 0);
        err = errno;
        Py_END_ALLOW_THREADS
        unsigned consumed = __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE) - head;
        q->inflight += consumed;
        if (r >= 0 || err == EINTR || consumed > 0) {
            failures = 0;
            continue;
        }
        if (++failures < 3) {
            continue;
        }
        /* the kernel takes nothing more: what it did not take is a refused
         * send, withdrawn (the kernel reads the queue only in io_uring_enter);
         * what it took and did not finish is left to it, and the pump sends
         * with sendmmsg from now on, its arena kept for those */
        head = __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
        for (unsigned i = head; i != tail; i++) {
            ring_count(self, (int)q->sqes[q->sq_array[i & *q->sq_mask]].user_data, 1);
        }
        __atomic_store_n(q->sq_tail, head, __ATOMIC_RELEASE);
        q->broken = 1;
        break;
    }
    q->used = 0;
}

static void
pump_queue(Pump *self, int fd, int out_fd, Batch *b, int count)
{
    Ring *q = &self->ring;
    for (int i = 0; i < count; i++) {
        size_t len = b->in[i].msg_len;
        if (q->queued + q->inflight >= q->entries || q->used + len > ARENA_SIZE) {
            ring_flush(self);
        }
        if (q->broken) { /* the rest with sendmmsg, as without a ring */
            for (int k = i; k < count; k++) {
                b->out_iov[k - i].iov_base = b->in_iov[k].iov_base;
                b->out_iov[k - i].iov_len = b->in[k].msg_len;
                b->out[k - i].msg_hdr.msg_name = NULL; /* connected */
                b->out[k - i].msg_hdr.msg_namelen = 0;
            }
            int errors = 0, sent = transmit(out_fd, b, count - i, &errors);
            for (int k = 0; k < sent + errors; k++) {
                ring_count(self, fd, k >= sent);
            }
            return;
        }
        unsigned char *copy = q->arena + q->used;
        memcpy(copy, b->in_iov[i].iov_base, len);
        q->used += len;
        unsigned idx = (*q->sq_tail + q->queued) & *q->sq_mask;
        struct io_uring_sqe *sqe = &q->sqes[idx];
        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_SEND;
        sqe->fd = out_fd;
        sqe->addr = (uint64_t)(uintptr_t)copy;
        sqe->len = (uint32_t)len;
        sqe->msg_flags = MSG_DONTWAIT;
        sqe->user_data = (uint64_t)(unsigned)fd;
        q->sq_array[idx] = idx;
        q->queued++;
    }
}
#else
static int
ring_open(Ring *q)
{
    memset(q, 0, sizeof(*q));
    q->fd = -1;
    errno = ENOSYS;
    return -1;
}

static void
ring_close(Ring *q)
{
}

static void
ring_flush(Pump *self)
{
}

static void
pump_queue(Pump *self, int fd, int out_fd, Batch *b, int count)
{
}
#endif

#define PUMP_EVENTS 256 /* the least room for ready sockets; it grows with the set */

static void
slot_unconfigure(Slot *slot)
{
    slot->mode = 0;
    Py_CLEAR(slot->spool);
    slot->route.spool = NULL;
}

static void
slot_free(Slot *slot)
{
    slot_unconfigure(slot);
    Py_CLEAR(slot->leg);
    free(slot->last);
    free(slot);
}

static Slot *
pump_slot(Pump *self, PyObject *arg)
{
    int fd;
    if (fd_argument(arg, &fd) < 0) {
        return NULL;
    }
    if (fd < 0 || fd >= self->nslots || self->slots[fd] == NULL) {
        PyErr_Format(PyExc_KeyError, "fd %d is not in the pump", fd);
        return NULL;
    }
    return self->slots[fd];
}

static PyObject *
pump_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"uring", "stamps", NULL};
    int uring = 1, stamps = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$pp:Pump", kwlist, &uring, &stamps)) {
        return NULL;
    }
    Pump *self = (Pump *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->stamps = stamps;
    self->ring.fd = -1;
    self->epfd = -1;
    self->events = malloc(sizeof(struct epoll_event) * PUMP_EVENTS);
    if (self->events == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->events_cap = PUMP_EVENTS;
    if (uring && ring_open(&self->ring) < 0) {
        self->ring.fd = -1; /* no io_uring here: sendmmsg */
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
pump_dealloc(Pump *self)
{
    for (int i = 0; i < self->nslots; i++) {
        if (self->slots[i] != NULL) {
            slot_free(self->slots[i]);
        }
    }
    free(self->slots);
    free(self->events);
    ring_close(&self->ring);
    if (self->epfd >= 0) {
        close(self->epfd);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
pump_fileno(Pump *self, PyObject *unused)
{
    return PyLong_FromLong(self->epfd);
}

static PyObject *
pump_uring(Pump *self, PyObject *unused)
{
    return PyBool_FromLong(self->ring.fd >= 0 && !self->ring.broken);
}

static PyObject *
pump_add(Pump *self, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "add() takes 2 arguments");
        return NULL;
    }
    if (fd_argument(args[0], &fd) < 0) {
        return NULL;
    }
    if (fd < 0 || (fd < self->nslots && self->slots[fd] != NULL)) {
        PyErr_Format(PyExc_ValueError, "fd %d is negative or already in the pump", fd);
        return NULL;
    }
    if (fd >= self->nslots) {
        int n = fd + 64;
        Slot **grown = realloc(self->slots, sizeof(Slot *) * (size_t)n);
        if (grown == NULL) {
            return PyErr_NoMemory();
        }
        memset(grown + self->nslots, 0, sizeof(Slot *) * (size_t)(n - self->nslots));
        self->slots = grown;
        self->nslots = n;
    }
    if (self->count >= self->events_cap) {
        int cap = self->events_cap * 2;
        struct epoll_event *grown = realloc(self->events, sizeof(struct epoll_event) * (size_t)cap);
        if (grown == NULL) {
            return PyErr_NoMemory();
        }
        self->events = grown;
        self->events_cap = cap;
    }
    Slot *slot = calloc(1, sizeof(Slot));
    if (slot == NULL) {
        return PyErr_NoMemory();
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = fd;
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(slot);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    slot->fd = fd;
    slot->leg = Py_NewRef(args[1]);
    self->slots[fd] = slot;
    self->count++;
    Py_RETURN_NONE;
}

/* The slot's sums as (fast, sent, errors, held, (spooled, bytes, malformed,
 * rtcp), last), zeroed; None when nothing happened since the last. */
static PyObject *
slot_collect(Slot *slot)
{
    if (!slot->dirty) {
        Py_RETURN_NONE;
    }
    PyObject *last = slot->last_len ? PyBytes_FromStringAndSize((const char *)slot->last,
                                                                (Py_ssize_t)slot->last_len)
                                    : Py_NewRef(Py_None);
    if (last == NULL) {
        return NULL;
    }
    PyObject *result = Py_BuildValue("(llll(llll)N)", slot->fast, slot->sent, slot->errors,
                                     slot->held, slot->counts[0], slot->counts[1],
                                     slot->counts[2], slot->counts[3], last);
    if (result != NULL) {
        slot->dirty = 0;
        slot->fast = slot->sent = slot->errors = slot->held = 0;
        memset(slot->counts, 0, sizeof(slot->counts));
        slot->last_len = 0;
    }
    return result;
}

static PyObject *
pump_remove(Pump *self, PyObject *arg)
{
    Slot *slot = pump_slot(self, arg);
    if (slot == NULL) {
        return NULL;
    }
    PyObject *sums = slot_collect(slot);
    if (sums == NULL) {
        return NULL;
    }
    /* the socket may be closed already (EBADF): it left the set then */
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, slot->fd, NULL);
    self->slots[slot->fd] = NULL;
    self->count--;
    slot_free(slot);
    return sums;
}

static PyObject *
pump_collect(Pump *self, PyObject *arg)
{
    Slot *slot = pump_slot(self, arg);
    return slot == NULL ? NULL : slot_collect(slot);
}

static PyObject *
pump_collect_all(Pump *self, PyObject *unused)
{
    PyObject *result = PyList_New(0);
    for (int i = 0; result != NULL && i < self->nslots; i++) {
        Slot *slot = self->slots[i];
        if (slot == NULL || !slot->dirty) {
            continue;
        }
        PyObject *sums = slot_collect(slot);
        PyObject *item = sums == NULL ? NULL : PyTuple_Pack(2, slot->leg, sums);
        Py_XDECREF(sums);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(item);
    }
    return result;
}

static PyObject *
pump_configure(Pump *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "configure() takes 7 or 8 arguments");
        return NULL;
    }
    long long floor_ms = 0;
    if (nargs == 8 && (floor_ms = PyLong_AsLongLong(args[7])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Slot *slot = pump_slot(self, args[0]);
    int out_fd;
    if (slot == NULL || fd_argument(args[2], &out_fd) < 0) {
        return NULL;
    }
    Route r = {0};
    if (route_addresses(&r, args[1], out_fd, args[3]) < 0) {
        return NULL;
    }
    PyObject *spool = args[4];
    long long offset = 0;
    const unsigned char *te_map = NULL;
    if (spool != Py_None) {
        if (!PyByteArray_Check(spool)) {
            PyErr_SetString(PyExc_TypeError, "spool must be a bytearray or None");
            return NULL;
        }
        offset = PyLong_AsLongLong(args[5]);
        if ((offset == -1 && PyErr_Occurred()) || te_map_argument(args[6], &te_map) < 0) {
            return NULL;
        }
    }
    slot_unconfigure(slot);
    r.queue = self->ring.fd >= 0 ? self : NULL;
    slot->route = r;
    if (spool != Py_None) {
        slot->spool = Py_NewRef(spool);
        slot->route.spool = spool;
        slot->offset_ms = offset;
        slot->floor_ms = floor_ms;
        memcpy(slot->te_map, te_map, 128);
        slot->route.te_map = slot->te_map;
        slot->mode = 2;
    } else {
        slot->mode = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *
pump_unconfigure(Pump *self, PyObject *arg)
{
    Slot *slot = pump_slot(self, arg);
    if (slot == NULL) {
        return NULL;
    }
    slot_unconfigure(slot);
    return PyLong_FromLongLong(slot->floor_ms);
}

/* Keeps a copy of in[i] as the slot's last packet; -1 when out of memory. */
static int
slot_keep_last(Slot *slot, Batch *b, int i)
{
    size_t len = b->in[i].msg_len;
    if (len > slot->last_cap) {
        unsigned char *grown = realloc(slot->last, len);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        slot->last = grown;
        slot->last_cap = len;
    }
    memcpy(slot->last, b->in_iov[i].iov_base, len);
    slot->last_len = len;
    return 0;
}

/* Serves one ready slot; appends (leg, rest, events, arrival_ms) to `handoff`
 * when Python has a part in it. Returns the packets received, -1 on error. */
static int
pump_serve(Slot *slot, Batch *b, long long now_ms, Stamper *st, PyObject *handoff)
{
    Route *r = &slot->route;
    long long arrival = now_ms + slot->offset_ms;
    r->arrival_ms = (uint32_t)(arrival < 0 ? 0 : arrival);
    if (st != NULL) {
        st->offset_ms = slot->offset_ms;
        st->floor_ms = &slot->floor_ms;
        st->events_ms = NULL;
    }
    r->stamper = st;
    PyObject *events = NULL, *rest = NULL;
    int fast = 0, sent = 0, errors = 0;
    long counts[4] = {0, 0, 0, 0};
    int n = serve(slot->fd, b, r, &events, &fast, &sent, &errors, counts);
    r->stamper = NULL;
    PyObject *events_ms = st != NULL ? st->events_ms : NULL;
    if (n < 0) {
        Py_XDECREF(events);
        Py_XDECREF(events_ms);
        return -1;
    }
    if (fast > 0) {
        slot->dirty = 1;
        slot->fast += fast;
        slot->sent += sent;
        slot->errors += errors;
        if (!r->forward) {
            slot->held += fast;
        }
        for (int k = 0; k < 4; k++) {
            slot->counts[k] += counts[k];
        }
        if (slot_keep_last(slot, b, fast - 1) < 0) {
            Py_XDECREF(events);
            Py_XDECREF(events_ms);
            return -1;
        }
    }
    if (n > fast && (rest = rest_list(b, fast, n)) == NULL) {
        Py_XDECREF(events);
        Py_XDECREF(events_ms);
        return -1;
    }
    if (rest != NULL || events != NULL) {
        PyObject *item = Py_BuildValue("(ONNLN)", slot->leg, rest ? rest : Py_NewRef(Py_None),
                                       events ? events : Py_NewRef(Py_None),
                                       (long long)r->arrival_ms,
                                       events_ms ? events_ms : Py_NewRef(Py_None));
        if (item == NULL || PyList_Append(handoff, item) < 0) {
            Py_XDECREF(item);
            return -1;
        }
        Py_DECREF(item);
    } else {
        Py_XDECREF(events_ms);
    }
    return n;
}

PyDoc_STRVAR(pump_run_doc,
"run(now_ms) -> (ready, handoff)\n\n"
"Serves every socket that is ready (epoll_wait without blocking): a\n"
"configured slot's packets are relayed (and spooled) here, an unconfigured\n"
"slot's leg is handed to Python as (leg, None, None, 0, None) to read itself;\n"
"a configured slot's packets from another source and its RFC 4733 packets\n"
"come as (leg, rest or None, events or None, arrival_ms, events_ms or None):\n"
"events_ms, a stamped pump's, holds each event's own arrival stamp. Every\n"
"ready socket is served once. `ready`: how many sockets were ready.");

static PyObject *
pump_run(Pump *self, PyObject *arg)
{
    long long now_ms = PyLong_AsLongLong(arg);
    if (now_ms == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Batch *b = get_batch();
    if (b == NULL) {
        return NULL;
    }
    if (self->running) { /* its ring is one run's */
        PyErr_SetString(PyExc_RuntimeError, "run() is running in another thread");
        return NULL;
    }
    struct epoll_event *events = self->events;
    int ready;
    do { /* room for every socket in the set: all that are ready come at once */
        ready = epoll_wait(self->epfd, events, self->events_cap, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *handoff = PyList_New(0);
    if (handoff == NULL) {
        return NULL;
    }
    self->running = 1;
    Stamper stamper = {0}, *st = NULL;
    if (self->stamps) {
        stamper.to_mono = realtime_to_monotonic_ns();
        stamper.now_ms = now_ms;
        st = &stamper;
    }
    for (int i = 0; i < ready; i++) {
        int fd = events[i].data.fd;
        Slot *slot = fd < self->nslots ? self->slots[fd] : NULL;
        if (slot == NULL) {
            continue;
        }
        if (slot->mode == 0) {
            PyObject *item = Py_BuildValue("(OOOiO)", slot->leg, Py_None, Py_None, 0, Py_None);
            if (item == NULL || PyList_Append(handoff, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
            Py_DECREF(item);
            continue;
        }
        if (pump_serve(slot, b, now_ms, st, handoff) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_OSError)) {
                goto fail;
            }
            /* a socket error (ICMP unreachable came back): Python reads it next */
            PyErr_Clear();
            slot_unconfigure(slot);
        }
    }
    ring_flush(self); /* the run's sends, in one submission */
    self->running = 0;
    return Py_BuildValue("(iN)", ready, handoff);
fail:
    ring_flush(self);
    self->running = 0;
    Py_DECREF(handoff);
    return NULL;
}

static PyMethodDef pump_methods[] = {
    {"fileno", (PyCFunction)pump_fileno, METH_NOARGS, "The epoll set's descriptor."},
    {"uring", (PyCFunction)pump_uring, METH_NOARGS,
     "uring() -> whether a run's sends go in one io_uring submission (else sendmmsg)."},
    {"add", (PyCFunction)(void (*)(void))pump_add, METH_FASTCALL,
     "add(fd, leg): watch fd; `leg` is handed back when Python has a part."},
    {"remove", (PyCFunction)pump_remove, METH_O,
     "remove(fd) -> sums or None: stop watching fd (before it is closed)."},
    {"configure", (PyCFunction)(void (*)(void))pump_configure, METH_FASTCALL,
     "configure(fd, latched, out_fd, dest, spool, offset_ms, te_map, floor_ms=0):\n"
     "serve fd here: packets from `latched` go to `dest` through `out_fd` (out_fd < 0\n"
     "or dest None: held), and into the bytearray `spool` stamped now_ms + offset_ms\n"
     "(a stamped pump: the kernel's receive time + offset_ms, at least floor_ms and\n"
     "the stamps before; spool None: not recorded here)."},
    {"unconfigure", (PyCFunction)pump_unconfigure, METH_O,
     "unconfigure(fd) -> the last stamp spooled (a stamped pump's; else the\n"
     "configured floor): hand fd's readiness to Python again."},
    {"collect", (PyCFunction)pump_collect, METH_O,
     "collect(fd) -> (fast, sent, errors, held, counts, last) or None, zeroed."},
    {"collect_all", (PyCFunction)pump_collect_all, METH_NOARGS,
     "collect_all() -> [(leg, sums), ...] for every slot with something to report."},
    {"run", (PyCFunction)pump_run, METH_O, pump_run_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "callvault.media._batchudp.Pump",
    .tp_doc = "Every relay socket of the process in one epoll set, served in C.",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = pump_new,
    .tp_dealloc = (destructor)pump_dealloc,
    .tp_methods = pump_methods,
};

static PyMethodDef batchudp_methods[] = {
    {"relay", (PyCFunction)(void (*)(void))batchudp_relay, METH_FASTCALL, relay_doc},
    {"relay_record", (PyCFunction)(void (*)(void))batchudp_relay_record, METH_FASTCALL,
     relay_record_doc},
    {"recv_batch", (PyCFunction)(void (*)(void))batchudp_recv_batch, METH_FASTCALL,
     recv_batch_doc},
    {"send_batch", (PyCFunction)(void (*)(void))batchudp_send_batch, METH_FASTCALL,
     send_batch_doc},
    {"set_peer", (PyCFunction)(void (*)(void))batchudp_set_peer, METH_FASTCALL, set_peer_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef batchudp_module = {
    PyModuleDef_HEAD_INIT,
    "callvault.media._batchudp",
    "Batched UDP (recvmmsg/sendmmsg) for the media relay.",
    -1,
    batchudp_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__batchudp(void)
{
    static int key_made = 0;
    if (!key_made) {
        if (pthread_key_create(&batch_key, batch_free) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_key_create failed");
            return NULL;
        }
        key_made = 1;
    }
    if (PyType_Ready(&PumpType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&batchudp_module);
    if (m != NULL && (PyModule_AddIntConstant(m, "MAX_BATCH", MAX_BATCH) < 0 ||
                      PyModule_AddObjectRef(m, "Pump", (PyObject *)&PumpType) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
