/*  floor_bench - floors under workloads B and E, and the ceiling over
    D: what the machine costs, and gives, with nothing of drover's in
    the way, measured in the same run.

    Usage:
      floor_bench tcp PORT WARMUP COUNT SIZE
      floor_bench zeromq PORT WARMUP COUNT SIZE
      floor_bench relay PORT COUNT SIZE WINDOW
      floor_bench parallel CHUNKS PER PROCESSES

    tcp     B's floor: one round trip of a small message between two
            processes, plain TCP on 127.0.0.1 with TCP_NODELAY on both
            ends: the parent connects, a forked child echoes
    zeromq  the same with a DEALER (the parent) and a ROUTER (a forked
            child, echoing) over tcp://127.0.0.1, libzmq without czmq:
            every message crosses the sender's and the receiver's I/O
            threads
    relay   E's floor: COUNT payloads of SIZE bytes (bench_payload) from
            a client process through a relay process to 2 worker
            processes, plain TCP on 127.0.0.1 (TCP_NODELAY everywhere),
            up to WINDOW in flight; each worker answers with the sum
            checksum (bench_checksum), as the drover, gearmand and
            beanstalkd sum workers do, so each payload crosses the relay
            once, as E's cross the broker

    parallel
            D's ceiling: the CHUNKS chunks of PER numbers of a D run
            (bench_chunk, bench_sumsq_text, as drover's sumsq handler
            and the serial run take them) on PROCESSES forked
            processes, each taking the next chunk from a counter they
            share (an atomic add in a shared mapping), until none is
            left: the dealing of a broker that costs nothing, on the
            machine's CPUs as they are at that moment

    A brokered task needs at least two round trips (client to broker to
    worker and back), so B's p50 is read against tcp and zeromq. In the
    echo modes the child echoes exactly WARMUP + COUNT messages of SIZE
    bytes and exits; the parent sends them one at a time, checks every
    echo, times the last COUNT round trips, reaps the child and prints
    "RESULT round_trips_per_s p50_us p99_us".

    In relay mode the parent is the client: it forks the relay and the
    two workers, connects to the relay on PORT, sends the payloads and
    checks every answer against the payload regenerated from its index,
    as the other bench clients do, then reaps all three and prints
    "RESULT payloads_per_s - -", timed from the first send to the last
    answer. The relay is one thread around poll(2): it reads each
    payload from the client straight into the send buffer of the worker
    with fewer payloads in flight (alternating on a tie), and forwards
    each worker's answer to the client, every byte once through user
    space, as a broker must at least. The framing, both ways, is a
    16-byte header (s_frame_t: the payload's index, then the byte count
    that follows, host order: all on one machine) and the bytes; a
    payload's count is SIZE, an answer's 8 (the checksum). The workers
    listen nowhere: the relay has a second listener on a port the kernel
    picks, made before the fork.

    In parallel mode the parent forks the processes, which wait on a
    pipe; it starts the clock, lets them all go at once, reaps them and
    stops it, then prints "TOTAL sum SECONDS s" as `drover_bench
    serial` and `drover_bench map` do, so bench/run checks the sum
    against the serial run's and reads the speedup as serial time over
    this time.

    PORT must be free (bench/run picks it). Every child dies with its
    parent (PR_SET_PDEATHSIG), on an alarm (60 s plus 1 ms a round trip,
    or plus 1 s a megabyte relayed) and after 10 s of silence; the
    parent reaps each, and in relay mode stops and reaps the ones left
    when it fails, so that nothing outlives a run.

    Not a model of drover's own path: no protobuf, no broker, no czmq
    frames; the smallest cost that ZeroMQ or TCP adds on this machine,
    and (parallel) the most that two of its CPUs give.
*/

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
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
//  after the given seconds (60 s plus 1 ms per round trip for the echo
//  modes, plus 1 s per megabyte for the relay).
static void
s_child_guard (pid_t parent, size_t seconds)
{
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (1);
    alarm ((unsigned) (seconds < 86400 ? seconds : 86400));
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
        s_child_guard (parent, 60 + (warmup + count) / 1000);
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
        s_child_guard (parent, 60 + (warmup + count) / 1000);
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

//  ---------------------------------------------------------------------
//  relay: E's floor. The client is the parent; the relay and the two
//  workers are its children.

//  The framing, both ways: this header, then size bytes.
typedef struct {
    uint64_t index;                  //  the payload's number, 0 .. COUNT-1
    uint64_t size;                   //  bytes that follow: SIZE, or 8 for an answer
} s_frame_t;

enum {
    FRAME = sizeof (s_frame_t),      //  header bytes
    ANSWER = sizeof (s_frame_t) + 8, //  an answer: header and checksum
    RELAY_WORKERS = 2,               //  as E's 2 workers
    MAX_RELAY_SIZE = 64 << 20        //  the largest SIZE taken
};

//  A byte ring, the relay's buffers. A read from a socket goes into the
//  longest free run and a write takes the longest held run, so that no
//  byte moves within the relay's memory.
typedef struct {
    uint8_t *data;                   //  cap bytes
    size_t cap;                      //  allocated
    size_t head;                     //  offset of the oldest byte held
    size_t count;                    //  bytes held
} s_ring_t;

static void
s_ring_init (s_ring_t *self, size_t cap)
{
    self->data = (uint8_t *) malloc (cap);
    if (!self->data)
        _exit (1);
    self->cap = cap;
    self->head = self->count = 0;
}

static size_t
s_ring_free (const s_ring_t *self)
{
    return self->cap - self->count;
}

//  The free run after the last byte held; its length in *size.
static uint8_t *
s_ring_space (s_ring_t *self, size_t *size)
{
    size_t tail = (self->head + self->count) % self->cap;
    size_t free = s_ring_free (self);
    *size = free < self->cap - tail ? free : self->cap - tail;
    return self->data + tail;
}

//  The run of held bytes from the oldest; its length in *size.
static uint8_t *
s_ring_held (s_ring_t *self, size_t *size)
{
    *size = self->count < self->cap - self->head ? self->count : self->cap - self->head;
    return self->data + self->head;
}

static void
s_ring_consume (s_ring_t *self, size_t size)
{
    self->head = (self->head + size) % self->cap;
    self->count -= size;
    if (!self->count)
        self->head = 0;              //  the next read gets the whole ring
}

//  Copy size bytes in (the caller checked s_ring_free): two runs at most.
static void
s_ring_put (s_ring_t *self, const uint8_t *bytes, size_t size)
{
    for (int run = 0; run < 2 && size; run++) {
        size_t length;
        uint8_t *space = s_ring_space (self, &length);
        length = length < size ? length : size;
        memcpy (space, bytes, length);
        self->count += length;
        bytes += length;
        size -= length;
    }
}

//  Copy the oldest size bytes out (the caller checked count): two runs
//  at most.
static void
s_ring_get (s_ring_t *self, uint8_t *bytes, size_t size)
{
    for (int run = 0; run < 2 && size; run++) {
        size_t length;
        uint8_t *held = s_ring_held (self, &length);
        length = length < size ? length : size;
        memcpy (bytes, held, length);
        s_ring_consume (self, length);
        bytes += length;
        size -= length;
    }
}

//  One read from fd into the ring, at most limit bytes: the bytes read,
//  0 if none were ready, -1 on an error or end of file.
static ssize_t
s_ring_read (s_ring_t *self, int fd, size_t limit)
{
    size_t size;
    uint8_t *space = s_ring_space (self, &size);
    ssize_t n = read (fd, space, size < limit ? size : limit);
    if (n > 0)
        self->count += (size_t) n;
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return -1;
    return n > 0 ? n : 0;
}

//  One write of the oldest held run to fd: 0, or -1 on an error.
static int
s_ring_write (s_ring_t *self, int fd)
{
    size_t size;
    uint8_t *held = s_ring_held (self, &size);
    ssize_t n = send (fd, held, size, MSG_NOSIGNAL);
    if (n > 0)
        s_ring_consume (self, (size_t) n);
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return -1;
    return 0;
}

//  A listening socket on 127.0.0.1:port (0: the kernel picks); returns
//  it, and the port in *bound.
static int
s_listen (int port, int backlog, int *bound)
{
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    int listener = socket (AF_INET, SOCK_STREAM, 0), one = 1;
    if (listener == -1
        || setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1
        || bind (listener, (struct sockaddr *) &address, sizeof address) == -1
        || listen (listener, backlog) == -1
        || getsockname (listener, (struct sockaddr *) &address, &length) == -1)
        bench_die ("floor_bench: listen on 127.0.0.1:%d: %s", port, strerror (errno));
    *bound = ntohs (address.sin_port);
    return listener;
}

static int
s_connect (int port)
{
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd == -1 || connect (fd, (struct sockaddr *) &address, sizeof address) == -1)
        bench_die ("floor_bench: connect to 127.0.0.1:%d: %s", port, strerror (errno));
    s_nodelay (fd);
    return fd;
}

//  Accept one connection within SILENCE_MS, non-blocking with
//  TCP_NODELAY; in a child, which exits on failure.
static int
s_relay_accept (int listener)
{
    struct pollfd ready = { listener, POLLIN, 0 };
    if (poll (&ready, 1, SILENCE_MS) != 1)
        _exit (1);
    int fd = accept (listener, NULL, NULL);
    if (fd == -1 || fcntl (fd, F_SETFL, O_NONBLOCK) == -1)
        _exit (1);
    s_nodelay (fd);
    return fd;
}

//  The relay's side of one worker.
typedef struct {
    int fd;                          //  the connection, non-blocking
    s_ring_t out;                    //  frames on their way to the worker
    s_ring_t in;                     //  answers from it, not yet whole
    size_t in_flight;                //  payloads sent, not yet answered
} s_relay_worker_t;

//  The relay process: accept the workers, then the client; forward
//  count payloads of size bytes and their answers; exit 0 once the last
//  answer is written, 1 on anything unexpected. Each pass of the loop
//  waits at most SILENCE_MS for a socket to be ready, or the relay exits,
//  and a ready socket moves bytes: the loop ends (the alarm is the
//  backstop).
static _Noreturn void
s_relay (int client_listener, int worker_listener, size_t count, size_t size)
{
    s_relay_worker_t workers [RELAY_WORKERS];
    for (int i = 0; i < RELAY_WORKERS; i++) {
        workers [i].fd = s_relay_accept (worker_listener);
        //  Room for two payloads (4 MiB at least): one the worker reads,
        //  the next coming in behind it.
        size_t room = 2 * (FRAME + size);
        s_ring_init (&workers [i].out, room > (4 << 20) ? room : (4 << 20));
        s_ring_init (&workers [i].in, 4096);
        workers [i].in_flight = 0;
    }
    int client = s_relay_accept (client_listener);
    close (client_listener);
    close (worker_listener);
    s_ring_t back;                   //  answers on their way to the client
    s_ring_init (&back, 65536);

    s_frame_t frame;                 //  the header of the payload coming in
    size_t frame_got = 0;            //  bytes of it read
    int target = -1;                 //  its worker, once the header is whole
    bool queued = false;             //  its header is in the target's ring
    size_t body_left = 0;            //  its bytes still to read
    size_t payloads = 0, answers = 0;
    int last = RELAY_WORKERS - 1;    //  the worker chosen last, for ties

    while (answers < count || back.count) {
        //  A whole header goes into its worker's ring once there is room.
        if (target >= 0 && !queued && s_ring_free (&workers [target].out) >= FRAME) {
            s_ring_put (&workers [target].out, (const uint8_t *) &frame, FRAME);
            queued = true;
        }
        //  Whole answers go on to the client as there is room.
        for (int i = 0; i < RELAY_WORKERS; i++) {
            s_relay_worker_t *worker = &workers [i];
            while (worker->in.count >= ANSWER && s_ring_free (&back) >= ANSWER) {
                uint8_t answer [ANSWER];
                s_ring_get (&worker->in, answer, ANSWER);
                s_frame_t head;
                memcpy (&head, answer, FRAME);
                if (head.size != 8 || !worker->in_flight)
                    _exit (1);
                worker->in_flight--;
                s_ring_put (&back, answer, ANSWER);
                answers++;
            }
        }
        struct pollfd fds [1 + RELAY_WORKERS];
        fds [0] = (struct pollfd) { client, POLLRDHUP, 0 };
        if ((target < 0 && payloads < count)
            || (target >= 0 && queued && s_ring_free (&workers [target].out)))
            fds [0].events |= POLLIN;
        if (back.count)
            fds [0].events |= POLLOUT;
        for (int i = 0; i < RELAY_WORKERS; i++) {
            fds [1 + i] = (struct pollfd) { workers [i].fd, POLLRDHUP, 0 };
            if (workers [i].out.count)
                fds [1 + i].events |= POLLOUT;
            if (s_ring_free (&workers [i].in))
                fds [1 + i].events |= POLLIN;
        }
        int ready = poll (fds, 1 + RELAY_WORKERS, SILENCE_MS);
        if (ready == -1 && errno == EINTR)
            continue;
        if (ready <= 0)
            _exit (1);
        //  No peer closes before the last answer: a hang-up is a failure.
        for (int i = 0; i < 1 + RELAY_WORKERS; i++) {
            if (fds [i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                _exit (1);
        }
        if ((fds [0].revents & POLLIN) && target < 0) {
            ssize_t n = read (client, (uint8_t *) &frame + frame_got, FRAME - frame_got);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                _exit (1);
            frame_got += n > 0 ? (size_t) n : 0;
            if (frame_got == FRAME) {
                if (frame.size != size || frame.index >= count)
                    _exit (1);
                //  The worker with fewer payloads in flight; on a tie, the
                //  other one than last time.
                target = workers [0].in_flight < workers [1].in_flight   ? 0
                         : workers [1].in_flight < workers [0].in_flight ? 1
                                                                         : 1 - last;
                last = target;
                workers [target].in_flight++;
                frame_got = 0;
                queued = false;
                body_left = size;
            }
        }
        else if (fds [0].revents & POLLIN) {
            //  The payload's bytes go straight into the worker's ring.
            ssize_t n = s_ring_read (&workers [target].out, client, body_left);
            if (n < 0)
                _exit (1);
            body_left -= (size_t) n;
            if (!body_left) {
                target = -1;
                payloads++;
            }
        }
        if ((fds [0].revents & POLLOUT) && s_ring_write (&back, client) == -1)
            _exit (1);
        for (int i = 0; i < RELAY_WORKERS; i++) {
            s_relay_worker_t *worker = &workers [i];
            if ((fds [1 + i].revents & POLLOUT) && s_ring_write (&worker->out, worker->fd) == -1)
                _exit (1);
            if ((fds [1 + i].revents & POLLIN)
                && s_ring_read (&worker->in, worker->fd, SIZE_MAX) < 0)
                _exit (1);
        }
    }
    close (client);
    for (int i = 0; i < RELAY_WORKERS; i++)
        close (workers [i].fd);
    _exit (0);
}

//  Read exactly size bytes, or none if the peer has closed: 1 if it had,
//  0 when read, -1 on an error, a timeout or an end of file midway.
static int
s_read_or_end (int fd, uint8_t *buffer, size_t size)
{
    ssize_t n;
    do
        n = read (fd, buffer, size);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 1;
    if (n < 0)
        return -1;
    return s_read_all (fd, buffer + n, size - (size_t) n);
}

//  A worker process: answer each payload with its checksum, as the sum
//  workers of drover, gearmand and beanstalkd do; exit 0 when the relay
//  closes after at most count payloads, 1 on anything else.
static _Noreturn void
s_relay_worker (int port, size_t count, size_t size)
{
    int fd = s_connect (port);
    struct timeval silence = { .tv_sec = SILENCE_MS / 1000 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &silence, sizeof silence);
    uint8_t *payload = (uint8_t *) malloc (size);
    if (!payload)
        _exit (1);
    for (size_t i = 0; i <= count; i++) {
        s_frame_t frame;
        int rc = s_read_or_end (fd, (uint8_t *) &frame, FRAME);
        if (rc == 1)
            break;
        if (rc == -1 || i == count || frame.size != size
            || s_read_all (fd, payload, size) == -1)
            _exit (1);
        uint8_t answer [ANSWER];
        uint64_t sum = bench_checksum (payload, size);
        frame.size = 8;
        memcpy (answer, &frame, FRAME);
        memcpy (answer + FRAME, &sum, 8);
        if (s_write_all (fd, answer, ANSWER) == -1)
            _exit (1);
    }
    close (fd);
    free (payload);
    _exit (0);
}

//  The relay's children, for the parent to reap; 0 once reaped.
static pid_t s_relay_parent;
static pid_t s_relay_children [1 + RELAY_WORKERS];

//  At the parent's exit (bench_die's too): stop the children not yet
//  reaped, by their PIDs, and reap them. Children exit with _exit, so
//  this runs only in the parent; the check is for a stray exit.
static void
s_relay_stop_children (void)
{
    if (getpid () != s_relay_parent)
        return;
    for (int i = 0; i < 1 + RELAY_WORKERS; i++) {
        if (s_relay_children [i] > 0) {
            kill (s_relay_children [i], SIGTERM);
            s_reap (s_relay_children [i]);
            s_relay_children [i] = 0;
        }
    }
}

//  The client, in the parent: send count payloads with up to window in
//  flight on one non-blocking connection, check every answer, return
//  the microseconds from the first send to the last answer. Each pass
//  of the loop waits at most SILENCE_MS for the socket to be ready, or
//  the client dies, and a ready socket moves bytes: the loop ends
//  (bench/run's time limit is the backstop).
static int64_t
s_relay_client (int port, size_t count, size_t size, size_t window)
{
    int fd = s_connect (port);
    if (fcntl (fd, F_SETFL, O_NONBLOCK) == -1)
        bench_die ("floor_bench: relay: O_NONBLOCK: %s", strerror (errno));
    //  One frame buffer; each answer is checked against
    //  bench_payload_checksum, as the other bench clients do.
    uint8_t *out = (uint8_t *) malloc (FRAME + size);
    bool *seen = (bool *) calloc (count, sizeof (bool));
    if (!out || !seen)
        bench_die ("floor_bench: out of memory");
    uint8_t in [4096];               //  answers read, not yet checked
    size_t held = 0;
    size_t sent = 0;                 //  payloads begun
    size_t written = FRAME + size;   //  bytes of the current one written
    size_t received = 0;             //  answers checked
    int64_t start = bench_now_us ();
    while (received < count) {
        if (written == FRAME + size && sent < count && sent - received < window) {
            s_frame_t head = { sent, size };
            memcpy (out, &head, FRAME);
            bench_payload (out + FRAME, size, sent);
            sent++;
            written = 0;
        }
        struct pollfd ready = { fd, POLLIN, 0 };
        if (written < FRAME + size)
            ready.events |= POLLOUT;
        int n = poll (&ready, 1, SILENCE_MS);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_die ("floor_bench: relay: nothing moved in %d s (%zu of %zu answers)",
                       SILENCE_MS / 1000, received, count);
        if (ready.revents & POLLOUT) {
            ssize_t done = send (fd, out + written, FRAME + size - written, MSG_NOSIGNAL);
            if (done > 0)
                written += (size_t) done;
            else if (done == 0 || (errno != EAGAIN && errno != EINTR))
                bench_die ("floor_bench: relay: send: %s", strerror (errno));
        }
        if (ready.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = read (fd, in + held, sizeof in - held);
            if (got == 0)
                bench_die ("floor_bench: relay closed after %zu of %zu answers", received, count);
            if (got < 0 && errno != EAGAIN && errno != EINTR)
                bench_die ("floor_bench: relay: read: %s", strerror (errno));
            held += got > 0 ? (size_t) got : 0;
            size_t used = 0;
            for (; held - used >= ANSWER; used += ANSWER) {
                s_frame_t head;
                uint64_t sum;
                memcpy (&head, in + used, FRAME);
                memcpy (&sum, in + used + FRAME, 8);
                if (head.size != 8 || head.index >= sent || seen [head.index])
                    bench_die ("floor_bench: relay: unexpected answer %" PRIu64, head.index);
                seen [head.index] = true;
                if (sum != bench_payload_checksum (size, head.index))
                    bench_die ("floor_bench: relay: payload %" PRIu64 ": wrong checksum",
                               head.index);
                received++;
            }
            memmove (in, in + used, held - used);
            held -= used;
        }
    }
    int64_t elapsed = bench_now_us () - start;
    close (fd);
    free (out);
    free (seen);
    return elapsed;
}

//  Fork the relay and its workers, run the client, reap all three;
//  returns the payloads per second.
static double
s_relay_run (int port, size_t count, size_t size, size_t window)
{
    s_relay_parent = getpid ();
    atexit (s_relay_stop_children);
    int worker_port;
    int client_listener = s_listen (port, 1, &port);
    int worker_listener = s_listen (0, RELAY_WORKERS, &worker_port);
    size_t seconds = 60 + count * size / 1000000;
    for (int i = 0; i < 1 + RELAY_WORKERS; i++) {
        pid_t child = fork ();
        if (child == -1)
            bench_die ("floor_bench: fork: %s", strerror (errno));
        if (child == 0) {
            s_child_guard (s_relay_parent, seconds);
            if (i == 0)
                s_relay (client_listener, worker_listener, count, size);
            close (client_listener);
            close (worker_listener);
            s_relay_worker (worker_port, count, size);
        }
        s_relay_children [i] = child;
    }
    close (client_listener);
    close (worker_listener);
    int64_t elapsed = s_relay_client (port, count, size, window);
    for (int i = 0; i < 1 + RELAY_WORKERS; i++) {
        int rc = s_reap (s_relay_children [i]);
        s_relay_children [i] = 0;
        if (rc == -1)
            bench_die ("floor_bench: the relay's %s failed", i == 0 ? "relay process" : "worker");
    }
    return (double) count * 1e6 / (double) (elapsed > 0 ? elapsed : 1);
}

//  ---------------------------------------------------------------------
//  parallel: D's ceiling. The parent forks the processes and times them.

//  What the processes share: the next chunk to take, and each chunk's sum.
typedef struct {
    atomic_uint_fast64_t next;
    uint64_t sums [];
} s_shared_t;

//  A process: wait for the go, then take chunks until none is left.
static void
s_parallel_child (s_shared_t *shared, int go, size_t chunks, uint64_t per)
{
    char byte;
    if (read (go, &byte, 1) != 1)
        _exit (1);
    uint64_t i;
    while ((i = atomic_fetch_add (&shared->next, 1)) < chunks) {
        char text [48], out [24];
        int size = bench_chunk (text, sizeof text, i, per);
        if (bench_sumsq_text ((const uint8_t *) text, (size_t) size, out) < 0)
            _exit (1);
        shared->sums [i] = strtoull (out, NULL, 10);
    }
    _exit (0);
}

static void
s_parallel_run (size_t chunks, uint64_t per, size_t processes)
{
    size_t bytes = sizeof (s_shared_t) + chunks * sizeof (uint64_t);
    s_shared_t *shared = (s_shared_t *) mmap (NULL, bytes, PROT_READ | PROT_WRITE,
                                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        bench_die ("floor_bench: mmap: %s", strerror (errno));
    atomic_init (&shared->next, 0);
    int go [2];
    if (pipe (go) == -1)
        bench_die ("floor_bench: pipe: %s", strerror (errno));
    pid_t parent = getpid ();
    pid_t *children = (pid_t *) calloc (processes, sizeof (pid_t));
    if (!children)
        bench_die ("floor_bench: out of memory");
    for (size_t i = 0; i < processes; i++) {
        children [i] = fork ();
        if (children [i] == -1)
            bench_die ("floor_bench: fork: %s", strerror (errno));
        if (children [i] == 0) {
            close (go [1]);
            s_child_guard (parent, 60 + chunks * per / 100000000);
            s_parallel_child (shared, go [0], chunks, per);
        }
    }
    close (go [0]);
    //  If every process died before its read, the write fails (EPIPE)
    //  instead of killing us, and their reaps say so.
    signal (SIGPIPE, SIG_IGN);
    int64_t start = bench_now_us ();
    //  One byte each: every process goes at once. A process that died
    //  before its read fails its reap below.
    char bytes_out [64] = {0};
    for (size_t left = processes; left;) {
        ssize_t n = write (go [1], bytes_out, left < sizeof bytes_out ? left : sizeof bytes_out);
        if (n <= 0)
            break;
        left -= (size_t) n;
    }
    int failed = 0;
    for (size_t i = 0; i < processes; i++)
        if (s_reap (children [i]) == -1)
            failed++;
    int64_t elapsed = bench_now_us () - start;
    close (go [1]);
    if (failed)
        bench_die ("floor_bench: %d of the parallel processes failed", failed);
    uint64_t total = 0;
    for (size_t i = 0; i < chunks; i++)
        total += shared->sums [i];
    printf ("TOTAL %" PRIu64 " SECONDS %.6f\n", total, (double) elapsed / 1e6);
    munmap (shared, bytes);
    free (children);
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
    bench_tune_malloc ();
    const char *mode = argc > 1 ? argv [1] : "";
    if (argc == 6 && strcmp (mode, "relay") == 0) {
        size_t port = s_num (argv [2]), count = s_num (argv [3]), size = s_num (argv [4]),
               window = s_num (argv [5]);
        if (port == 0 || port > 65535 || count == 0 || count > 10000000 || size == 0
            || size > MAX_RELAY_SIZE || window == 0)
            bench_die ("floor_bench: PORT 1-65535, COUNT 1-10000000, SIZE 1-%d, WINDOW 1 or more",
                       MAX_RELAY_SIZE);
        bench_report (s_relay_run ((int) port, count, size, window), -1, -1);
        return 0;
    }
    if (argc == 5 && strcmp (mode, "parallel") == 0) {
        size_t chunks = s_num (argv [2]), per = s_num (argv [3]), processes = s_num (argv [4]);
        if (chunks == 0 || chunks > 1000000 || per == 0 || per > 1000000000 || processes == 0
            || processes > 64)
            bench_die ("floor_bench: CHUNKS 1-1000000, PER 1-1000000000, PROCESSES 1-64");
        s_parallel_run (chunks, per, processes);
        return 0;
    }
    if (argc != 6 || (strcmp (mode, "tcp") != 0 && strcmp (mode, "zeromq") != 0)) {
        fprintf (stderr, "usage: floor_bench tcp|zeromq PORT WARMUP COUNT SIZE\n"
                         "       floor_bench relay PORT COUNT SIZE WINDOW\n"
                         "       floor_bench parallel CHUNKS PER PROCESSES\n");
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
