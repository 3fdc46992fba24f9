/*  floor_bench - the floor under workload B: one round trip of a small
    message between two processes on loopback, with nothing else in the
    way. A brokered task needs at least two of these (client to broker
    to worker and back), so B's p50 is read against them.

    Usage:
      floor_bench tcp PORT WARMUP COUNT SIZE
      floor_bench zeromq PORT WARMUP COUNT SIZE

    tcp     plain TCP on 127.0.0.1 with TCP_NODELAY on both ends: the
            parent connects, a forked child echoes
    zeromq  a DEALER (the parent) and a ROUTER (a forked child, echoing)
            over tcp://127.0.0.1, libzmq without czmq: every message
            crosses the sender's and the receiver's I/O threads

    The child echoes exactly WARMUP + COUNT messages of SIZE bytes and
    exits; the parent sends them one at a time, checks every echo, times
    the last COUNT round trips, reaps the child and prints
    "RESULT round_trips_per_s p50_us p99_us". PORT must be free (bench/run
    picks it). The child also dies with its parent (PR_SET_PDEATHSIG), on
    an alarm (60 s plus 1 ms a round trip) and after 10 s of silence, so
    that nothing outlives a run.

    Not a model of drover's own path: no protobuf, no broker, no czmq
    frames; the smallest cost that ZeroMQ or TCP adds on this machine.
*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_common.h"

enum { MAX_SIZE = 4096, SILENCE_MS = 10000 };

//  In the child, before any work: die with the parent, and in any case
//  after 60 s plus 1 ms per round trip.
static void
s_child_guard (pid_t parent, size_t round_trips)
{
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (1);
    alarm ((unsigned) (60 + round_trips / 1000));
}

//  Wait for the child; 0 if it exited with 0.
static int
s_reap (pid_t child)
{
    int status;
    while (waitpid (child, &status, 0) == -1) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED (status) && WEXITSTATUS (status) == 0 ? 0 : -1;
}

//  Read exactly size bytes; 0, or -1 on an error, a timeout or EOF.
//  Each read moves at least one byte, so the loop runs at most size
//  times (and once more per signal).
static int
s_read_all (int fd, uint8_t *buffer, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = read (fd, buffer + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t) n;
    }
    return 0;
}

//  Write exactly size bytes, without SIGPIPE if the peer is gone; 0 or -1.
static int
s_write_all (int fd, const uint8_t *buffer, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = send (fd, buffer + done, size - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t) n;
    }
    return 0;
}

static void
s_nodelay (int fd)
{
    int one = 1;
    if (setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        bench_die ("floor_bench: TCP_NODELAY: %s", strerror (errno));
}

//  The parent's side of either transport: send, receive, check, time.
typedef int (floor_round_trip_fn) (void *self, const uint8_t *out, uint8_t *in, size_t size);

static void
s_time_round_trips (floor_round_trip_fn *round_trip, void *self, size_t warmup, size_t count,
                    size_t size, int64_t *samples, int64_t *elapsed)
{
    uint8_t out [MAX_SIZE], in [MAX_SIZE];
    int64_t start = 0;
    for (size_t i = 0; i < warmup + count; i++) {
        if (i == warmup)
            start = bench_now_us ();
        bench_payload (out, size, i);
        int64_t before = bench_now_us ();
        if (round_trip (self, out, in, size) == -1)
            bench_die ("floor_bench: round trip %zu: %s", i, strerror (errno));
        int64_t after = bench_now_us ();
        if (memcmp (in, out, size) != 0)
            bench_die ("floor_bench: round trip %zu: the echo is not the message", i);
        if (i >= warmup)
            samples [i - warmup] = after - before;
    }
    *elapsed = bench_now_us () - start;
}

static int
s_tcp_round_trip (void *self, const uint8_t *out, uint8_t *in, size_t size)
{
    int fd = *(int *) self;
    if (s_write_all (fd, out, size) == -1)
        return -1;
    return s_read_all (fd, in, size);
}

static void
s_tcp (int port, size_t warmup, size_t count, size_t size, int64_t *samples, int64_t *elapsed)
{
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int listener = socket (AF_INET, SOCK_STREAM, 0), one = 1;
    if (listener == -1
        || setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1
        || bind (listener, (struct sockaddr *) &address, sizeof address) == -1
        || listen (listener, 1) == -1)
        bench_die ("floor_bench: listen on 127.0.0.1:%d: %s", port, strerror (errno));

    pid_t parent = getpid ();
    pid_t child = fork ();
    if (child == -1)
        bench_die ("floor_bench: fork: %s", strerror (errno));
    if (child == 0) {
        s_child_guard (parent, warmup + count);
        int fd = accept (listener, NULL, NULL);
        if (fd == -1)
            _exit (1);
        close (listener);
        s_nodelay (fd);
        struct timeval silence = { .tv_sec = SILENCE_MS / 1000 };
        setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &silence, sizeof silence);
        uint8_t buffer [MAX_SIZE];
        for (size_t i = 0; i < warmup + count; i++) {
            if (s_read_all (fd, buffer, size) == -1 || s_write_all (fd, buffer, size) == -1)
                _exit (1);
        }
        close (fd);
        _exit (0);
    }
    close (listener);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd == -1 || connect (fd, (struct sockaddr *) &address, sizeof address) == -1)
        bench_die ("floor_bench: connect to 127.0.0.1:%d: %s", port, strerror (errno));
    s_nodelay (fd);
    s_time_round_trips (s_tcp_round_trip, &fd, warmup, count, size, samples, elapsed);
    close (fd);
    if (s_reap (child) == -1)
        bench_die ("floor_bench: the TCP echo process failed");
}

static int
s_zmq_round_trip (void *self, const uint8_t *out, uint8_t *in, size_t size)
{
    if (zmq_send (self, out, size, 0) != (int) size)
        return -1;
    int n = zmq_recv (self, in, size, 0);
    return n == (int) size ? 0 : -1;
}

//  Set an int option or die.
static void
s_zmq_set (void *socket, int option, int value)
{
    if (zmq_setsockopt (socket, option, &value, sizeof value) == -1)
        bench_die ("floor_bench: zmq_setsockopt %d: %s", option, zmq_strerror (errno));
}

static void
s_zeromq (int port, size_t warmup, size_t count, size_t size, int64_t *samples,
          int64_t *elapsed)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    //  Fork before either side makes a ZeroMQ context: a context does not
    //  survive a fork.
    pid_t parent = getpid ();
    pid_t child = fork ();
    if (child == -1)
        bench_die ("floor_bench: fork: %s", strerror (errno));
    if (child == 0) {
        s_child_guard (parent, warmup + count);
        void *context = zmq_ctx_new ();
        void *router = context ? zmq_socket (context, ZMQ_ROUTER) : NULL;
        if (!router)
            _exit (1);
        s_zmq_set (router, ZMQ_LINGER, 1000);
        s_zmq_set (router, ZMQ_RCVTIMEO, SILENCE_MS);
        if (zmq_bind (router, endpoint) == -1)
            _exit (1);
        uint8_t identity [256], buffer [MAX_SIZE];
        for (size_t i = 0; i < warmup + count; i++) {
            int id_size = zmq_recv (router, identity, sizeof identity, 0);
            int more = 0;
            size_t more_size = sizeof more;
            zmq_getsockopt (router, ZMQ_RCVMORE, &more, &more_size);
            if (id_size <= 0 || id_size > (int) sizeof identity || !more)
                _exit (1);
            int n = zmq_recv (router, buffer, sizeof buffer, 0);
            if (n != (int) size || zmq_send (router, identity, (size_t) id_size, ZMQ_SNDMORE) == -1
                || zmq_send (router, buffer, size, 0) == -1)
                _exit (1);
        }
        zmq_close (router);
        zmq_ctx_term (context);
        _exit (0);
    }
    void *context = zmq_ctx_new ();
    void *dealer = context ? zmq_socket (context, ZMQ_DEALER) : NULL;
    if (!dealer)
        bench_die ("floor_bench: zmq_socket: %s", zmq_strerror (errno));
    s_zmq_set (dealer, ZMQ_LINGER, 0);
    s_zmq_set (dealer, ZMQ_RCVTIMEO, SILENCE_MS);
    s_zmq_set (dealer, ZMQ_SNDTIMEO, SILENCE_MS);
    //  The child may bind after this connect: ZeroMQ retries the
    //  connection, and the untimed round trips absorb the wait.
    if (zmq_connect (dealer, endpoint) == -1)
        bench_die ("floor_bench: connect to %s: %s", endpoint, zmq_strerror (errno));
    s_time_round_trips (s_zmq_round_trip, dealer, warmup, count, size, samples, elapsed);
    zmq_close (dealer);
    zmq_ctx_term (context);
    if (s_reap (child) == -1)
        bench_die ("floor_bench: the ZeroMQ echo process failed");
}

static size_t
s_num (const char *text)
{
    char *end;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end)
        bench_die ("floor_bench: '%s' is not a number", text);
    return (size_t) value;
}

int
main (int argc, char *argv [])
{
    if (argc != 6 || (strcmp (argv [1], "tcp") != 0 && strcmp (argv [1], "zeromq") != 0)) {
        fprintf (stderr, "usage: floor_bench tcp|zeromq PORT WARMUP COUNT SIZE\n");
        return 2;
    }
    size_t port = s_num (argv [2]), warmup = s_num (argv [3]), count = s_num (argv [4]),
           size = s_num (argv [5]);
    if (port == 0 || port > 65535 || count == 0 || count > 10000000 || warmup > 10000000
        || size == 0 || size > MAX_SIZE)
        bench_die ("floor_bench: PORT 1-65535, COUNT 1-10000000, SIZE 1-%d", MAX_SIZE);
    int64_t *samples = (int64_t *) calloc (count, sizeof (int64_t));
    if (!samples)
        bench_die ("floor_bench: out of memory");
    int64_t elapsed = 0;
    if (strcmp (argv [1], "tcp") == 0)
        s_tcp ((int) port, warmup, count, size, samples, &elapsed);
    else
        s_zeromq ((int) port, warmup, count, size, samples, &elapsed);
    int64_t p50 = bench_percentile (samples, count, 50);
    int64_t p99 = bench_percentile (samples, count, 99);
    bench_report ((double) count * 1e6 / (double) (elapsed > 0 ? elapsed : 1), p50, p99);
    free (samples);
    return 0;
}
