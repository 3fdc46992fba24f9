/*  test_hostile - a real broker under hostile input, from raw DEALER
    sockets and a raw TCP peer that speaks just enough ZMTP: random,
    truncated, oversized and multipart frames, garbage envelopes, valid
    envelopes with the wrong body for the endpoint, an endless multipart
    message, and a submit flood from a client that never reads. After each
    attack the broker must be alive, answer on both endpoints, serve a
    `drover map` correctly, and its resident size (VmRSS, sampled during
    the attack) must have stayed under a generous bound.

    Random choices come from one seed, printed at the start; set
    DROVER_TEST_SEED to repeat a run. The figures printed (`hostile:
    ...`) are the ones docs/limits.md quotes.
*/

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_testutil.h"

#define S_SQUARE "square=exec:awk {print($1*$1)}"

//  The broker's limits in this suite: small, so that attacks reach them.
#define S_MAX_MESSAGE (1024 * 1024)
#define S_MAX_PAYLOAD (512 * 1024)
#define S_MAX_MEMORY (128 * 1024 * 1024)
#define S_MAX_QUEUE 20000
//  The resident size the broker must stay under, in KiB: generous (it
//  holds for the AddressSanitizer build too), and far below what the
//  attacks reach without the limits (several GiB).
#define S_RSS_BOUND_KB (768 * 1024)

static drv_test_cluster_t cluster;
static unsigned seed;

static void
setup (void)
{
    const char *env = getenv ("DROVER_TEST_SEED");
    seed = env ? (unsigned) strtoul (env, NULL, 10) : (unsigned) (time (NULL) ^ getpid ());
    fprintf (stderr, "hostile: seed=%u (DROVER_TEST_SEED=%u repeats this run)\n", seed, seed);
    srandom (seed);
    signal (SIGPIPE, SIG_IGN);
    const char *flags [] = {"--max-message", "1048576", "--max-payload", "524288",
                            "--max-memory", "134217728", "--max-queue", "20000",
                            "--max-bytes", "67108864", NULL};
    drv_test_cluster_start (&cluster, flags);
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    //  The broker listens once its clients endpoint answers.
    zsock_t *client = zsock_new (ZMQ_DEALER);
    zsock_set_rcvtimeo (client, 30000);
    zsock_connect (client, "%s", cluster.clients);
    zframe_t *frame = drv_codec_encode (&(drv_msg_t) {.type = DRV_MSG_HEARTBEAT});
    zframe_send (&frame, client, 0);
    frame = zframe_recv (client);
    cr_assert (frame, "the broker did not come up");
    zframe_destroy (&frame);
    zsock_destroy (&client);
}

static void
teardown (void)
{
    drv_test_cluster_stop (&cluster);
    drv_test_reap_all ();
}

TestSuite (hostile, .init = setup, .fini = teardown, .timeout = 240);

//  ---------------------------------------------------------------------
//  Helpers

//  The broker's resident size in KiB, or -1 once it is gone.
static long
s_rss_kb (void)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) cluster.broker);
    FILE *file = fopen (path, "r");
    long kb = -1;
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kb = atol (line + 6);
    if (file)
        fclose (file);
    return kb;
}

//  The highest resident size seen by s_sample.
static long peak_kb;

static void
s_sample (void)
{
    long kb = s_rss_kb ();
    cr_assert_neq (kb, -1, "the broker is gone");
    if (kb > peak_kb)
        peak_kb = kb;
}

static int
s_port (const char *endpoint)
{
    return atoi (strrchr (endpoint, ':') + 1);
}

//  A DEALER on endpoint that waits at most 5 s for a reply.
static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    cr_assert (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, 5000);
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    return dealer;
}

//  Send one encoded message.
static void
s_send (zsock_t *dealer, const drv_msg_t *msg)
{
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert (frame);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
}

//  Read replies until one of type (and, for an Error, code) arrives, or
//  5 s pass with nothing. Returns the reply or NULL.
static drv_msg_t *
s_expect (zsock_t *dealer, drv_msg_type_t type, drover_error_t code)
{
    drv_limits_t limits = drv_limits_from_broker ();
    for (int i = 0; i < 100000; i++) {
        zframe_t *frame = zframe_recv (dealer);
        if (!frame)
            return NULL;
        drv_msg_t *msg = NULL;
        drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits, &msg, NULL, NULL, 0);
        zframe_destroy (&frame);
        if (msg && msg->type == type && (type != DRV_MSG_ERROR || msg->code == code))
            return msg;
        drv_msg_destroy (&msg);
    }
    return NULL;
}

//  Both endpoints answer: a Heartbeat from a client gets a Heartbeat, one
//  from an unknown worker gets ERR_UNEXPECTED ("send Ready first").
static void
s_assert_answers (void)
{
    zsock_t *client = s_dealer (cluster.clients);
    zsock_t *worker = s_dealer (cluster.workers);
    drv_msg_t heartbeat = {.type = DRV_MSG_HEARTBEAT, .seq = 7};
    s_send (client, &heartbeat);
    s_send (worker, &heartbeat);
    drv_msg_t *reply = s_expect (client, DRV_MSG_HEARTBEAT, 0);
    cr_assert (reply, "the clients endpoint does not answer");
    cr_assert_eq (reply->seq, 7);
    drv_msg_destroy (&reply);
    reply = s_expect (worker, DRV_MSG_ERROR, DROVER_ERR_UNEXPECTED);
    cr_assert (reply, "the workers endpoint does not answer");
    drv_msg_destroy (&reply);
    zsock_destroy (&client);
    zsock_destroy (&worker);
}

//  `seq 1 50 | drover map square` prints the 50 squares in order.
static void
s_assert_map_works (void)
{
    char input [512] = "", expected [1024] = "";
    for (int i = 1; i <= 50; i++) {
        snprintf (input + strlen (input), sizeof input - strlen (input), "%d\n", i);
        snprintf (expected + strlen (expected), sizeof expected - strlen (expected), "%d\n",
                  i * i);
    }
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = drv_test_cli (&cluster, args, input, 120000);
    cr_assert_eq (out.status, 0, "map failed after the attack: %s", out.err);
    cr_assert_str_eq (out.out, expected);
    drv_test_output_free (&out);
}

//  After an attack: alive, answering, serving, and small enough.
static void
s_assert_unharmed (const char *attack)
{
    s_sample ();
    s_assert_answers ();
    s_assert_map_works ();
    s_sample ();
    fprintf (stderr, "hostile: %s: broker peak VmRSS %ld KiB, now %ld KiB\n", attack, peak_kb,
             s_rss_kb ());
    cr_assert_lt (peak_kb, S_RSS_BOUND_KB, "%s: the broker grew to %ld KiB", attack, peak_kb);
}

//  Does the broker's log say so?
static bool
s_log_has (const char *text)
{
    char path [128];
    snprintf (path, sizeof path, "%s/broker.log", cluster.dir);
    char *log = NULL;
    size_t size = 0;
    FILE *file = fopen (path, "r");
    bool found = false;
    if (file && getdelim (&log, &size, 0, file) > 0)
        found = strstr (log, text) != NULL;
    free (log);
    if (file)
        fclose (file);
    return found;
}

//  A raw TCP connection that has done a ZMTP 3.0 NULL handshake as a
//  DEALER: what follows is ours to write, frame by frame.
static int
s_zmtp_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    cr_assert_neq (fd, -1);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (connect (fd, (struct sockaddr *) &address, sizeof address), 0);
    struct timeval timeout = {.tv_sec = 5};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    //  A send blocked on a full window returns, so deadlines are kept.
    struct timeval send_timeout = {.tv_sec = 1};
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    uint8_t greeting [64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 0, 'N', 'U', 'L', 'L'};
    cr_assert_eq (send (fd, greeting, sizeof greeting, MSG_NOSIGNAL), 64);
    uint8_t theirs [64];
    for (size_t got = 0; got < sizeof theirs;) {
        ssize_t n = recv (fd, theirs + got, sizeof theirs - got, 0);
        cr_assert_gt (n, 0, "no ZMTP greeting from the broker");
        got += (size_t) n;
    }
    //  READY command: name, then the property Socket-Type = DEALER.
    uint8_t ready [] = {0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't',
                        '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6, 'D', 'E', 'A', 'L', 'E', 'R'};
    ready [1] = sizeof ready - 2;
    cr_assert_eq (send (fd, ready, sizeof ready, MSG_NOSIGNAL), (ssize_t) sizeof ready);
    return fd;
}

//  ---------------------------------------------------------------------
//  Attacks

//  An endless multipart message: empty frames, each with MORE set, never
//  a last one. libzmq keeps them all (about 64 bytes of memory for every
//  2 bytes sent) and delivers nothing; the broker's guard must cut the
//  connection once the heap passes --max-memory.
static void
s_endless_multipart (const char *endpoint)
{
    int fd = s_zmtp_connect (s_port (endpoint));
    static uint8_t frames [64 * 1024];
    for (size_t i = 0; i < sizeof frames; i += 2) {
        frames [i] = 0x01;          //  short frame, MORE
        frames [i + 1] = 0;         //  of 0 bytes
    }
    //  48 MiB on the wire would be 1.5 GiB in libzmq without the guard.
    size_t sent = 0, limit = 48 * 1024 * 1024;
    int64_t deadline = zclock_mono () + 60000;
    bool cut = false;
    while (sent < limit && zclock_mono () < deadline) {
        ssize_t n = send (fd, frames, sizeof frames, MSG_NOSIGNAL);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s_sample ();
            continue;               //  the broker is not reading yet
        }
        if (n <= 0) {
            cut = true;
            break;
        }
        sent += (size_t) n;
        if (sent % (1024 * 1024) < sizeof frames)
            s_sample ();
    }
    close (fd);
    fprintf (stderr, "hostile: endless multipart on %s: %zu bytes (%zu frames) sent before %s\n",
             endpoint, sent, sent / 2, cut ? "the broker cut the connection" : "giving up");
    cr_assert (cut, "the broker took %zu bytes of one unfinished message without cutting it",
               sent);
}

Test (hostile, endless_multipart_message_is_cut_at_the_memory_budget)
{
    s_sample ();
    s_endless_multipart (cluster.clients);
    s_endless_multipart (cluster.workers);
    cr_assert (s_log_has ("guard: heap over budget"));
    cr_assert (s_log_has ("broker: cut stuck connections=1"));
    s_assert_unharmed ("endless multipart");
}

Test (hostile, oversized_and_multipart_messages_are_refused_and_the_connection_works)
{
    s_sample ();
    zsock_t *client = s_dealer (cluster.clients);
    drv_msg_t heartbeat = {.type = DRV_MSG_HEARTBEAT, .seq = 1};
    drv_msg_t *reply;

    //  Over --max-message: answered with ERR_TOO_LARGE, connection kept.
    zframe_t *big = zframe_new (NULL, S_MAX_MESSAGE + 1);
    memset (zframe_data (big), 0x5A, zframe_size (big));
    cr_assert_eq (zframe_send (&big, client, 0), 0);
    reply = s_expect (client, DRV_MSG_ERROR, DROVER_ERR_TOO_LARGE);
    cr_assert (reply, "no ERR_TOO_LARGE for a frame over --max-message");
    drv_msg_destroy (&reply);
    s_send (client, &heartbeat);
    reply = s_expect (client, DRV_MSG_HEARTBEAT, 0);
    cr_assert (reply, "the connection stopped working after a refusal");
    drv_msg_destroy (&reply);

    //  Many frames in one message, that no task announced as payload
    //  frames: ERR_MALFORMED, connection kept.
    zmsg_t *many = zmsg_new ();
    zmsg_append (many, &(zframe_t *) {drv_codec_encode (&heartbeat)});
    for (int i = 1; i < 1000; i++)
        zmsg_addmem (many, "frame", 5);
    cr_assert_eq (zmsg_send (&many, client), 0);
    reply = s_expect (client, DRV_MSG_ERROR, DROVER_ERR_MALFORMED);
    cr_assert (reply, "no ERR_MALFORMED for a message of 1000 frames");
    cr_assert (strstr (reply->text, "999 payload frames follow the envelope, and 0 tasks"), "%s",
               reply->text);
    drv_msg_destroy (&reply);

    //  A payload over --max-payload in a message under --max-message.
    uint8_t *payload = (uint8_t *) calloc (1, S_MAX_PAYLOAD + 1);
    drv_task_t task = {.id = 1, .payload = payload, .size = S_MAX_PAYLOAD + 1};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .seq = 2, .function = "square", .tasks = &task,
                        .ntasks = 1};
    s_send (client, &submit);
    free (payload);
    reply = s_expect (client, DRV_MSG_ERROR, DROVER_ERR_TOO_LARGE);
    cr_assert (reply, "no ERR_TOO_LARGE for a payload over --max-payload");
    cr_assert (strstr (reply->text, "payload too large"), "%s", reply->text);
    cr_assert_eq (reply->seq, 2);
    drv_msg_destroy (&reply);

    //  A function name over 255 bytes: ERR_INVALID.
    char name [300];
    memset (name, 'f', sizeof name - 1);
    name [sizeof name - 1] = 0;
    drv_task_t small = {.id = 2, .payload = (const uint8_t *) "1", .size = 1};
    submit = (drv_msg_t) {.type = DRV_MSG_SUBMIT, .seq = 3, .function = name, .tasks = &small,
                          .ntasks = 1};
    s_send (client, &submit);
    reply = s_expect (client, DRV_MSG_ERROR, DROVER_ERR_INVALID);
    cr_assert (reply, "no ERR_INVALID for a 299-byte function name");
    drv_msg_destroy (&reply);

    //  Over twice --max-message: libzmq drops the connection (ZMQ_MAXMSGSIZE)
    //  without reading it all; the DEALER reconnects and is served again.
    big = zframe_new (NULL, 3 * S_MAX_MESSAGE);
    memset (zframe_data (big), 0x5A, zframe_size (big));
    cr_assert_eq (zframe_send (&big, client, 0), 0);
    reply = NULL;
    for (int i = 0; i < 20 && !reply; i++) {
        heartbeat.seq = 100 + (uint64_t) i;
        s_send (client, &heartbeat);
        zsock_set_rcvtimeo (client, 500);
        reply = s_expect (client, DRV_MSG_HEARTBEAT, 0);
    }
    cr_assert (reply, "no answer after an oversized frame dropped the connection");
    drv_msg_destroy (&reply);
    zsock_destroy (&client);
    cr_assert (s_log_has ("payload frames follow the envelope"));
    cr_assert (s_log_has ("payload too large"));
    s_assert_unharmed ("oversized and multipart");
}

//  A client that submits as fast as it can and never reads a reply.
//  Queued jobs stop at --max-queue; the rest are refused with queue
//  full, and the broker's replies pile up to the high-water mark only.
Test (hostile, submit_flood_without_reading_stays_bounded)
{
    s_sample ();
    long before_kb = s_rss_kb ();
    zsock_t *client = s_dealer (cluster.clients);
    zsock_set_sndtimeo (client, 5000);
    uint8_t payload [1024];
    memset (payload, 'p', sizeof payload);
    drv_task_t tasks [10];
    for (int i = 0; i < 10; i++)
        tasks [i] = (drv_task_t) {.payload = payload, .size = sizeof payload};
    size_t submits = 0;
    int64_t deadline = zclock_mono () + 60000;
    //  4,000 Submits of 10 tasks: twice what --max-queue takes.
    for (uint64_t seq = 1; seq <= 4000 && zclock_mono () < deadline; seq++) {
        for (int i = 0; i < 10; i++)
            tasks [i].id = seq * 10 + (uint64_t) i;
        drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .seq = seq, .function = "nobody",
                            .tasks = tasks, .ntasks = 10};
        zframe_t *frame = drv_codec_encode (&submit);
        if (zframe_send (&frame, client, 0) == -1) {
            zframe_destroy (&frame);
            break;
        }
        submits++;
        if (seq % 200 == 0)
            s_sample ();
    }
    //  The broker reads what is queued for it, then rests.
    for (int i = 0; i < 20; i++) {
        zclock_sleep (100);
        s_sample ();
    }
    fprintf (stderr,
             "hostile: submit flood: %zu submits of 10 x 1 KiB unread; VmRSS %ld -> %ld KiB "
             "(%ld bytes per queued job, %d jobs)\n",
             submits, before_kb, s_rss_kb (), (s_rss_kb () - before_kb) * 1024 / S_MAX_QUEUE,
             S_MAX_QUEUE);
    cr_assert_eq (submits, 4000);
    cr_assert (s_log_has ("queue full"));
    zsock_destroy (&client);
    s_assert_unharmed ("submit flood");
}

//  One random attack message for an endpoint (workers when to_workers).
static zmsg_t *
s_random_attack (bool to_workers, int *kind_p)
{
    //  Valid envelopes that are wrong for the endpoint, or mutated.
    uint64_t ids [3] = {1, 2, (uint64_t) random ()};
    drv_task_t task = {.id = 5, .function = "square", .payload = (const uint8_t *) "42", .size = 2};
    drv_result_t result = {.job_id = 3, .outcome = DROVER_OUTCOME_OK,
                           .data = (const uint8_t *) "9", .size = 1, .reason = ""};
    const char *offered [] = {"hostile-only"};
    drv_msg_t valid [] = {
        {.type = DRV_MSG_DISPATCH, .tasks = &task, .ntasks = 1},
        {.type = DRV_MSG_RESULTS, .results = &result, .nresults = 1},
        {.type = DRV_MSG_SUBMIT_ACK, .job_ids = ids, .njob_ids = 3},
        {.type = DRV_MSG_ERROR, .code = DROVER_ERR_INTERNAL, .text = "hostile"},
        {.type = DRV_MSG_STATUS, .job_ids = ids, .njob_ids = 3},
        {.type = DRV_MSG_CANCEL, .job_ids = ids, .njob_ids = 3},
        {.type = DRV_MSG_DONE, .results = &result, .nresults = 1},
        {.type = to_workers ? DRV_MSG_SUBMIT : DRV_MSG_READY, .function = "hostile-only",
         .tasks = &task, .ntasks = 1, .functions = offered, .nfunctions = 1, .slots = 1,
         .name = "hostile"},
    };
    size_t nvalid = sizeof valid / sizeof valid [0];
    zmsg_t *msg = zmsg_new ();
    int kind = (int) (random () % 6);
    *kind_p = kind;
    if (kind == 0) {
        //  Random bytes.
        size_t size = (size_t) random () % 2048;
        zframe_t *frame = zframe_new (NULL, size);
        for (size_t i = 0; i < size; i++)
            zframe_data (frame) [i] = (uint8_t) random ();
        zmsg_append (msg, &frame);
    }
    else
    if (kind <= 3) {
        //  A valid envelope: as it is (wrong for the endpoint), cut short,
        //  or with bytes changed.
        zframe_t *frame = drv_codec_encode (&valid [(size_t) random () % nvalid]);
        size_t size = zframe_size (frame);
        if (kind == 2 && size) {
            zframe_t *whole = frame;
            frame = zframe_new (zframe_data (whole), (size_t) random () % size);
            zframe_destroy (&whole);
        }
        if (kind == 3)
            for (int i = 0; i < 1 + (int) (random () % 4); i++)
                zframe_data (frame) [(size_t) random () % size] = (uint8_t) random ();
        zmsg_append (msg, &frame);
    }
    else
    if (kind == 4) {
        //  Several frames.
        int frames = 2 + (int) (random () % 50);
        for (int i = 0; i < frames; i++) {
            char text [32];
            snprintf (text, sizeof text, "%ld", random ());
            zmsg_addstr (msg, text);
        }
    }
    else {
        //  Over --max-message, under twice it: answered ERR_TOO_LARGE.
        zframe_t *frame = zframe_new (NULL, S_MAX_MESSAGE + 1 + (size_t) random () % 4096);
        memset (zframe_data (frame), (int) random (), zframe_size (frame));
        zmsg_append (msg, &frame);
    }
    return msg;
}

Test (hostile, random_frames_at_both_endpoints_leave_the_broker_serving)
{
    s_sample ();
    zsock_t *dealers [2] = {s_dealer (cluster.clients), s_dealer (cluster.workers)};
    for (int i = 0; i < 2; i++)
        zsock_set_rcvtimeo (dealers [i], 0);
    size_t sent [6] = {0}, replies = 0, total = 0;
    int64_t deadline = zclock_mono () + 60000;
    for (int i = 0; i < 3000 && zclock_mono () < deadline; i++) {
        bool to_workers = random () % 2;
        int kind;
        zmsg_t *msg = s_random_attack (to_workers, &kind);
        //  A leaked frame here is a leak in the test; frames that did not
        //  leave are destroyed by zmsg_send.
        cr_assert_eq (zmsg_send (&msg, dealers [to_workers]), 0);
        sent [kind]++;
        total++;
        //  Read what has come back; the kinds the broker answers must
        //  be answered, not dropped (counted below).
        for (int d = 0; d < 2; d++) {
            zframe_t *frame;
            while ((frame = zframe_recv (dealers [d]))) {
                replies++;
                zframe_destroy (&frame);
            }
        }
        if (i % 100 == 0)
            s_sample ();
    }
    //  Collect the rest of the replies.
    for (int d = 0; d < 2; d++) {
        zsock_set_rcvtimeo (dealers [d], 2000);
        zframe_t *frame;
        while ((frame = zframe_recv (dealers [d]))) {
            replies++;
            zframe_destroy (&frame);
        }
        zsock_destroy (&dealers [d]);
    }
    fprintf (stderr,
             "hostile: random: seed=%u sent=%zu (random %zu, valid-wrong %zu, truncated %zu, "
             "mutated %zu, multipart %zu, oversized %zu) replies=%zu\n",
             seed, total, sent [0], sent [1], sent [2], sent [3], sent [4], sent [5], replies);
    //  Every message is answered except Results, SubmitAck, Error,
    //  Dispatch, Ack and Bye (nobody to tell), so at least the multipart,
    //  oversized and random-bytes ones (garbage answers as malformed or
    //  bad version) come back.
    cr_assert_geq (replies, sent [0] + sent [4] + sent [5], "replies=%zu", replies);
    s_assert_unharmed ("random frames");
}
