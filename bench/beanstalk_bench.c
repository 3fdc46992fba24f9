/*  beanstalk_bench - beanstalkd's side of the benchmark: a small
    pipelined client for its text protocol (Debian ships no C client
    library worth trusting), a worker offering echo and sum
    (bench_common.h), and the clients of workloads A, B, C and E.

    Usage:
      beanstalk_bench worker HOST PORT FUNCTION DEPTH
      beanstalk_bench tput HOST PORT FUNCTION COUNT SIZE WINDOW
      beanstalk_bench lat HOST PORT FUNCTION WARMUP COUNT SIZE
      beanstalk_bench fill HOST PORT COUNT SIZE

    Tasks go to tube FUNCTION, results come back through tube
    FUNCTION-r: the worker reserves a task, puts its result and deletes
    the task in one write with the next reserve. DEPTH reserves are kept
    outstanding; use 1: beanstalkd answers a connection's commands in
    order, so a put queued behind a reserve that no task will satisfy
    waits for good, and a deeper worker stalls at the end of a run. The client keeps up to WINDOW tasks
    in flight on one connection and, on a second, up to 64 reserves
    outstanding but never more than results still to come (so no reserve
    ever blocks for good), deleting each result it has checked. Every write carries as
    many commands as are ready; responses are matched to commands in
    order, as the protocol defines.
*/

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

//  A connection with a read and a write buffer.
typedef struct {
    int fd;                          //  the socket
    char *in;                        //  bytes read, not parsed yet
    size_t in_size;                  //  bytes in in
    size_t in_cap;                   //  allocated
    size_t in_pos;                   //  parsed up to here
    char *out;                       //  bytes to write
    size_t out_size;                 //  bytes in out
    size_t out_cap;                  //  allocated
    char *kinds;                     //  ring of the commands awaiting a response
    size_t kinds_cap;                //  ring size
    size_t kinds_head;               //  oldest
    size_t kinds_count;              //  awaiting
} s_conn_t;

enum { K_RESERVE = 'r', K_DELETE = 'd', K_PUT = 'p', K_OTHER = 'o' };

static void
s_grow (char **buffer, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t cap2 = *cap ? *cap : 65536;
    while (cap2 < need)
        cap2 *= 2;
    *buffer = (char *) realloc (*buffer, cap2);
    if (!*buffer)
        bench_die ("beanstalk_bench: out of memory");
    *cap = cap2;
}

static void
s_conn_open (s_conn_t *conn, const char *host, const char *port)
{
    memset (conn, 0, sizeof *conn);
    conn->fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) atoi (port)) };
    if (conn->fd < 0 || inet_pton (AF_INET, host, &addr.sin_addr) != 1
        || connect (conn->fd, (struct sockaddr *) &addr, sizeof addr) == -1)
        bench_die ("beanstalk_bench: cannot connect to %s:%s: %s", host, port, strerror (errno));
    int one = 1;
    setsockopt (conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->kinds_cap = 1024;
    conn->kinds = (char *) malloc (conn->kinds_cap);
}

//  Queue a command (its text) expecting a response of kind.
static void
s_conn_cmd (s_conn_t *conn, char kind, const void *data, size_t size)
{
    s_grow (&conn->out, &conn->out_cap, conn->out_size + size);
    memcpy (conn->out + conn->out_size, data, size);
    conn->out_size += size;
    if (!kind)
        return;
    if (conn->kinds_count == conn->kinds_cap) {
        //  Unroll the ring into a larger one.
        char *kinds = (char *) malloc (conn->kinds_cap * 2);
        for (size_t i = 0; i < conn->kinds_count; i++)
            kinds [i] = conn->kinds [(conn->kinds_head + i) % conn->kinds_cap];
        free (conn->kinds);
        conn->kinds = kinds;
        conn->kinds_head = 0;
        conn->kinds_cap *= 2;
    }
    conn->kinds [(conn->kinds_head + conn->kinds_count++) % conn->kinds_cap] = kind;
}

static void
s_conn_put (s_conn_t *conn, const void *data, size_t size)
{
    char head [64];
    int length = snprintf (head, sizeof head, "put 0 0 60 %zu\r\n", size);
    s_conn_cmd (conn, K_PUT, head, (size_t) length);
    s_conn_cmd (conn, 0, data, size);
    s_conn_cmd (conn, 0, "\r\n", 2);
}

static void
s_conn_flush (s_conn_t *conn)
{
    size_t done = 0;
    while (done < conn->out_size) {
        ssize_t n = write (conn->fd, conn->out + done, conn->out_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_die ("beanstalk_bench: write: %s", strerror (errno));
        done += (size_t) n;
    }
    conn->out_size = 0;
}

//  Read what is there (blocks until something is).
static void
s_conn_fill (s_conn_t *conn)
{
    if (conn->in_pos > 0 && conn->in_pos == conn->in_size)
        conn->in_pos = conn->in_size = 0;
    else if (conn->in_pos > conn->in_cap / 2) {
        memmove (conn->in, conn->in + conn->in_pos, conn->in_size - conn->in_pos);
        conn->in_size -= conn->in_pos;
        conn->in_pos = 0;
    }
    s_grow (&conn->in, &conn->in_cap, conn->in_size + 65536);
    ssize_t n;
    do
        n = read (conn->fd, conn->in + conn->in_size, conn->in_cap - conn->in_size);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        bench_die ("beanstalk_bench: read: %s", n == 0 ? "server closed" : strerror (errno));
    conn->in_size += (size_t) n;
}

//  One parsed response: its kind, and for RESERVED the job.
typedef struct {
    char kind;
    uint64_t id;
    const uint8_t *data;
    size_t size;
} s_reply_t;

//  Parse the next whole response from what was read: 1 if one was, 0 if
//  more bytes are needed.
static int
s_conn_next (s_conn_t *conn, s_reply_t *reply)
{
    if (!conn->kinds_count)
        return 0;
    char *start = conn->in + conn->in_pos;
    size_t avail = conn->in_size - conn->in_pos;
    char *eol = (char *) memmem (start, avail, "\r\n", 2);
    if (!eol)
        return 0;
    size_t line = (size_t) (eol - start) + 2;
    char kind = conn->kinds [conn->kinds_head];
    reply->kind = kind;
    if (kind == K_RESERVE) {
        unsigned long long id;
        size_t size;
        if (sscanf (start, "RESERVED %llu %zu", &id, &size) != 2)
            bench_die ("beanstalk_bench: reserve answered %.*s", (int) (eol - start), start);
        if (avail < line + size + 2)
            return 0;
        reply->id = id;
        reply->data = (const uint8_t *) start + line;
        reply->size = size;
        line += size + 2;
    }
    else {
        const char *want = kind == K_DELETE ? "DELETED" : kind == K_PUT ? "INSERTED" : "";
        if (strncmp (start, want, strlen (want)) != 0)
            bench_die ("beanstalk_bench: expected %s, got %.*s", want, (int) (eol - start), start);
    }
    conn->in_pos += line;
    conn->kinds_head = (conn->kinds_head + 1) % conn->kinds_cap;
    conn->kinds_count--;
    return 1;
}

//  Send a setup command and wait for its one-line answer.
static void
s_conn_setup (s_conn_t *conn, const char *command)
{
    s_conn_cmd (conn, K_OTHER, command, strlen (command));
    s_conn_flush (conn);
    s_reply_t reply;
    while (!s_conn_next (conn, &reply))
        s_conn_fill (conn);
}

//  The index a payload or sum result carries.
static uint64_t
s_index (const uint8_t *head)
{
    char text [17];
    memcpy (text, head, 16);
    text [16] = 0;
    return strtoull (text, NULL, 16);
}

//  Run count tasks with up to window in flight; if samples, record each
//  timed task's round trip (the first warmup untimed). Returns the
//  elapsed microseconds of the timed part.
static int64_t
s_run (const char *host, const char *port, const char *function, size_t warmup, size_t count,
       size_t size, size_t window, int64_t *samples)
{
    s_conn_t puts, results;
    s_conn_open (&puts, host, port);
    s_conn_open (&results, host, port);
    char command [300];
    snprintf (command, sizeof command, "use %s\r\n", function);
    s_conn_setup (&puts, command);
    snprintf (command, sizeof command, "watch %s-r\r\n", function);
    s_conn_setup (&results, command);
    s_conn_setup (&results, "ignore default\r\n");
    bool sum = strcmp (function, "sum") == 0;
    size_t total = warmup + count;
    uint8_t *payload = (uint8_t *) malloc (size), *expected = (uint8_t *) malloc (size);
    int64_t *sent_at = (int64_t *) calloc (total, sizeof (int64_t));
    bool *seen = (bool *) calloc (total, sizeof (bool));
    if (!payload || !expected || !sent_at || !seen)
        bench_die ("beanstalk_bench: out of memory");
    size_t sent = 0, received = 0, reserving = 0;
    int64_t start = bench_now_us ();
    while (received < total) {
        //  Timing starts when the warm-up is over and nothing is in flight.
        if (sent == warmup && received == warmup)
            start = bench_now_us ();
        size_t limit = sent < warmup ? warmup : total;
        size_t batch = 0;
        while (sent < limit && sent - received < window && batch < 256) {
            bench_payload (payload, size, sent);
            s_conn_put (&puts, payload, size);
            sent_at [sent++] = bench_now_us ();
            batch++;
        }
        if (puts.out_size)
            s_conn_flush (&puts);
        while (reserving < sent - received && reserving < 64) {
            s_conn_cmd (&results, K_RESERVE, "reserve\r\n", 9);
            reserving++;
        }
        if (results.out_size)
            s_conn_flush (&results);
        struct pollfd fds [2] = { { puts.fd, POLLIN, 0 }, { results.fd, POLLIN, 0 } };
        if (poll (fds, 2, 120000) <= 0)
            bench_die ("beanstalk_bench: no answer in 120 s (%zu of %zu results)", received,
                       total);
        if (fds [0].revents) {
            s_conn_fill (&puts);
            s_reply_t reply;
            while (s_conn_next (&puts, &reply))
                ;
        }
        if (fds [1].revents) {
            s_conn_fill (&results);
            s_reply_t reply;
            while (s_conn_next (&results, &reply)) {
                if (reply.kind != K_RESERVE)
                    continue;
                int64_t now = bench_now_us ();
                reserving--;
                if (reply.size < 16)
                    bench_die ("beanstalk_bench: short result");
                uint64_t index = s_index (reply.data + (sum ? 8 : 0));
                if (index >= total || seen [index])
                    bench_die ("beanstalk_bench: unexpected result %" PRIu64, index);
                seen [index] = true;
                if (sum) {
                    uint64_t got;
                    memcpy (&got, reply.data, 8);
                    if (reply.size != 24 || got != bench_payload_checksum (size, index))
                        bench_die ("beanstalk_bench: wrong checksum");
                }
                else {
                    bench_payload (expected, size, index);
                    if (reply.size != size || memcmp (reply.data, expected, size) != 0)
                        bench_die ("beanstalk_bench: result is not its payload");
                }
                if (samples && index >= warmup)
                    samples [index - warmup] = now - sent_at [index];
                received++;
                int length = snprintf (command, sizeof command, "delete %" PRIu64 "\r\n",
                                       reply.id);
                s_conn_cmd (&results, K_DELETE, command, (size_t) length);
            }
        }
    }
    int64_t elapsed = bench_now_us () - start;
    //  Collect the last deletes' answers before leaving.
    s_conn_flush (&results);
    s_reply_t reply;
    while (results.kinds_count) {
        while (s_conn_next (&results, &reply))
            ;
        if (results.kinds_count)
            s_conn_fill (&results);
    }
    close (puts.fd);
    close (results.fd);
    free (payload);
    free (expected);
    free (sent_at);
    free (seen);
    return elapsed;
}

static _Noreturn void
s_worker (const char *host, const char *port, const char *function, size_t depth)
{
    s_conn_t conn;
    s_conn_open (&conn, host, port);
    char command [300];
    snprintf (command, sizeof command, "watch %s\r\n", function);
    s_conn_setup (&conn, command);
    s_conn_setup (&conn, "ignore default\r\n");
    snprintf (command, sizeof command, "use %s-r\r\n", function);
    s_conn_setup (&conn, command);
    bool sum = strcmp (function, "sum") == 0;
    for (size_t i = 0; i < depth; i++)
        s_conn_cmd (&conn, K_RESERVE, "reserve\r\n", 9);
    while (true) {
        s_conn_flush (&conn);
        s_conn_fill (&conn);
        s_reply_t reply;
        while (s_conn_next (&conn, &reply)) {
            if (reply.kind != K_RESERVE)
                continue;
            if (sum) {
                uint8_t result [24];
                uint64_t value = bench_checksum (reply.data, reply.size);
                memcpy (result, &value, 8);
                memcpy (result + 8, reply.data, reply.size < 16 ? reply.size : 16);
                s_conn_put (&conn, result, 24);
            }
            else
                s_conn_put (&conn, reply.data, reply.size);
            int length = snprintf (command, sizeof command, "delete %" PRIu64 "\r\n", reply.id);
            s_conn_cmd (&conn, K_DELETE, command, (size_t) length);
            s_conn_cmd (&conn, K_RESERVE, "reserve\r\n", 9);
        }
    }
}

static int
s_fill (const char *host, const char *port, size_t count, size_t size)
{
    s_conn_t conn;
    s_conn_open (&conn, host, port);
    s_conn_setup (&conn, "use parked\r\n");
    uint8_t payload [64];
    if (size > sizeof payload)
        bench_die ("beanstalk_bench: fill takes payloads of 16 to 64 bytes");
    for (size_t done = 0; done < count;) {
        size_t n = count - done < 1000 ? count - done : 1000;
        for (size_t i = 0; i < n; i++) {
            bench_payload (payload, size, done + i);
            s_conn_put (&conn, payload, size);
        }
        s_conn_flush (&conn);
        s_reply_t reply;
        while (conn.kinds_count) {
            while (s_conn_next (&conn, &reply))
                ;
            if (conn.kinds_count)
                s_conn_fill (&conn);
        }
        done += n;
    }
    printf ("FILLED %zu\n", count);
    close (conn.fd);
    return 0;
}

static size_t
s_num (const char *text)
{
    char *end;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end)
        bench_die ("beanstalk_bench: '%s' is not a number", text);
    return (size_t) value;
}

int
main (int argc, char *argv [])
{
    bench_tune_malloc ();
    const char *mode = argc > 1 ? argv [1] : "";
    if (strcmp (mode, "worker") == 0 && argc == 6)
        s_worker (argv [2], argv [3], argv [4], s_num (argv [5]));
    if (strcmp (mode, "tput") == 0 && argc == 8) {
        size_t count = s_num (argv [5]);
        int64_t elapsed = s_run (argv [2], argv [3], argv [4], 0, count, s_num (argv [6]),
                                 s_num (argv [7]), NULL);
        bench_report ((double) count * 1e6 / (double) elapsed, -1, -1);
        return 0;
    }
    if (strcmp (mode, "lat") == 0 && argc == 8) {
        size_t warmup = s_num (argv [5]), count = s_num (argv [6]);
        int64_t *samples = (int64_t *) calloc (count ? count : 1, sizeof (int64_t));
        int64_t elapsed = s_run (argv [2], argv [3], argv [4], warmup, count, s_num (argv [7]),
                                 1, samples);
        int64_t p50 = bench_percentile (samples, count, 50);
        int64_t p99 = bench_percentile (samples, count, 99);
        bench_report ((double) count * 1e6 / (double) elapsed, p50, p99);
        free (samples);
        return 0;
    }
    if (strcmp (mode, "fill") == 0 && argc == 6)
        return s_fill (argv [2], argv [3], s_num (argv [4]), s_num (argv [5]));
    fprintf (stderr, "usage: beanstalk_bench worker|tput|lat|fill ... (see the source)\n");
    return 2;
}
