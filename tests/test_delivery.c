/*  test_delivery - messages ZeroMQ may drop on a broken connection are
    sent again: a result the client never acknowledged (the broker sends
    it again), and a Submit the broker never answered (the client sends
    it again); and a worker whose connection libzmq gave up on connects
    again. Both sides are real code; the peer under test is played
    by a raw socket speaking the protocol through drv_codec.
*/

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_testutil.h"

//  Send one message on a DEALER or (with identity) a ROUTER.
static void
s_send (zsock_t *sock, zframe_t *identity, const drv_msg_t *msg)
{
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert_not_null (frame);
    if (identity) {
        zframe_t *copy = zframe_dup (identity);
        cr_assert_eq (zframe_send (&copy, sock, ZFRAME_MORE), 0);
    }
    cr_assert_eq (zframe_send (&frame, sock, 0), 0);
}

//  Receive one message within timeout_ms, or NULL. With identity_p, the
//  socket is a ROUTER and the sender's routing id goes there.
static drv_msg_t *
s_recv (zsock_t *sock, int timeout_ms, zframe_t **identity_p)
{
    zsock_set_rcvtimeo (sock, timeout_ms);
    zmsg_t *raw = zmsg_recv (sock);
    if (!raw)
        return NULL;
    if (identity_p) {
        zframe_destroy (identity_p);
        *identity_p = zmsg_pop (raw);
    }
    zframe_t *body = zmsg_pop (raw);
    zmsg_destroy (&raw);
    cr_assert_not_null (body);
    drv_limits_t limits = drv_limits_default ();
    drv_msg_t *msg = NULL;
    char err [256];
    cr_assert_eq (drv_codec_decode (zframe_data (body), zframe_size (body), &limits, &msg, NULL,
                                    err, sizeof err),
                  0, "%s", err);
    zframe_destroy (&body);
    return msg;
}

//  A client that takes a result and does not acknowledge it gets it
//  again after a few heartbeat intervals, and no more once it has.
Test (delivery, unacknowledged_result_is_sent_again, .timeout = 60)
{
    zsys_init ();
    drover_set_logstream (NULL);
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_not_null (broker);
    drover_broker_set_heartbeat (broker, 100, 3);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_not_null (worker);
    drover_worker_set_heartbeat (worker, 100, 3);
    cr_assert_eq (drover_worker_add_handler (worker, "echo", drv_test_echo, NULL), 0);
    cr_assert_eq (drover_worker_start (worker), 0);

    zsock_t *dealer = zsock_new_dealer (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (dealer);
    drv_task_t task = {.id = 42, .payload = (const uint8_t *) "hello", .size = 5};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .seq = 1, .function = "echo", .tasks = &task,
                        .ntasks = 1};
    s_send (dealer, NULL, &submit);

    //  The acknowledgement, then the result; then, not acknowledged, the
    //  same result again.
    uint64_t job_id = 0;
    size_t copies = 0;
    int64_t deadline = zclock_mono () + 30000;
    while (copies < 2 && zclock_mono () < deadline) {
        drv_msg_t *msg = s_recv (dealer, 1000, NULL);
        if (!msg)
            continue;
        if (msg->type == DRV_MSG_SUBMIT_ACK) {
            cr_assert_eq (msg->njob_ids, 1);
            job_id = msg->job_ids [0];
        }
        else
        if (msg->type == DRV_MSG_RESULTS) {
            cr_assert_eq (msg->nresults, 1);
            cr_assert_eq (msg->results [0].tag, 42);
            cr_assert_eq (msg->results [0].job_id, job_id);
            cr_assert_eq (msg->results [0].size, 5);
            cr_assert_eq (memcmp (msg->results [0].data, "hello", 5), 0);
            copies++;
        }
        drv_msg_destroy (&msg);
    }
    cr_assert_eq (copies, 2, "the unacknowledged result came %zu times", copies);

    //  Acknowledged, it stops: nothing in the next three periods
    //  (a period is five heartbeat intervals here: 500 ms).
    drv_msg_t ack = {.type = DRV_MSG_ACK, .seq = 2, .job_ids = &job_id, .njob_ids = 1};
    s_send (dealer, NULL, &ack);
    deadline = zclock_mono () + 1500;
    while (zclock_mono () < deadline) {
        drv_msg_t *msg = s_recv (dealer, 200, NULL);
        if (msg)
            cr_assert_neq (msg->type, DRV_MSG_RESULTS, "an acknowledged result came again");
        drv_msg_destroy (&msg);
    }
    zsock_destroy (&dealer);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}

//  One drover_client_apply made from another thread.
typedef struct {
    drover_client_t *client;         //  borrowed
    int rc;                          //  what apply returned
    char data [16];                  //  the result's data
} s_call_t;

//  zactor_fn: apply one task through the client, report on the pipe.
static void
s_call (zsock_t *pipe, void *arg)
{
    s_call_t *call = (s_call_t *) arg;
    zsock_signal (pipe, 0);
    drover_result_t *result = NULL;
    call->rc = drover_client_apply (call->client, "echo", "ok", 2, NULL, 30000, &result);
    if (result && result->size < sizeof call->data)
        memcpy (call->data, result->data, result->size);
    drover_result_destroy (&result);
    zstr_send (pipe, "DONE");
    //  Wait for $TERM from zactor_destroy.
    char *term = zstr_recv (pipe);
    zstr_free (&term);
}

//  A fake broker: a raw ROUTER on a free port, and a client of it whose
//  drover_client_apply runs in another thread.
typedef struct {
    zsock_t *router;                 //  plays the broker
    drover_client_t *client;         //  the code under test
    s_call_t call;                   //  its apply, in caller
    zactor_t *caller;                //  the thread it runs in
} s_fake_t;

static void
s_fake_start (s_fake_t *self)
{
    zsys_init ();
    drover_set_logstream (NULL);
    self->router = zsock_new (ZMQ_ROUTER);
    cr_assert_not_null (self->router);
    zsock_set_router_handover (self->router, 1);
    int port = zsock_bind (self->router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    self->client = drover_client_new (endpoint);
    cr_assert_not_null (self->client);
    drover_client_set_ack_timeout (self->client, 30000);
    self->call = (s_call_t) {.client = self->client, .rc = -2};
    self->caller = zactor_new (s_call, &self->call);
    cr_assert_not_null (self->caller);
}

//  The apply must have got "ok"; then everything goes.
static void
s_fake_finish (s_fake_t *self)
{
    char *done = zstr_recv (self->caller);
    cr_assert_str_eq (done, "DONE");
    zstr_free (&done);
    cr_assert_eq (self->call.rc, 0);
    cr_assert_str_eq (self->call.data, "ok");
    zactor_destroy (&self->caller);
    drover_client_destroy (&self->client);
    zsock_destroy (&self->router);
}

//  Acknowledge a one-task Submit as job 7, and, with a result, send "ok".
static void
s_fake_answer (s_fake_t *self, zframe_t *identity, const drv_msg_t *submit, bool result)
{
    static uint8_t instance [16] = "test-instance-01";
    uint64_t id = 7;
    drv_msg_t ack = {.type = DRV_MSG_SUBMIT_ACK, .seq = submit->seq, .job_ids = &id,
                     .njob_ids = 1, .workers = 1, .instance = instance,
                     .instance_size = sizeof instance};
    s_send (self->router, identity, &ack);
    if (!result)
        return;
    drv_result_t done = {.job_id = id, .tag = submit->tasks [0].id,
                         .outcome = DROVER_OUTCOME_OK, .data = (const uint8_t *) "ok",
                         .size = 2, .reason = "", .attempts = 1};
    drv_msg_t results = {.type = DRV_MSG_RESULTS, .results = &done, .nresults = 1,
                         .instance = instance, .instance_size = sizeof instance};
    s_send (self->router, identity, &results);
}

//  A Submit the broker never answers while it answers everything else is
//  sent again, with the same seq and tags, and the client gets its
//  result. The broker here is a raw ROUTER that drops the first Submit.
Test (delivery, unanswered_submit_is_sent_again, .timeout = 60)
{
    s_fake_t fake;
    s_fake_start (&fake);
    uint8_t instance [16] = "test-instance-01";
    uint64_t first_seq = 0, first_tag = 0;
    size_t submits = 0;
    int64_t deadline = zclock_mono () + 30000;
    zframe_t *identity = NULL;
    while (submits < 2 && zclock_mono () < deadline) {
        drv_msg_t *msg = s_recv (fake.router, 500, &identity);
        if (!msg)
            continue;
        if (msg->type == DRV_MSG_HEARTBEAT) {
            drv_msg_t reply = {.type = DRV_MSG_HEARTBEAT, .seq = msg->seq, .instance = instance,
                               .instance_size = sizeof instance};
            s_send (fake.router, identity, &reply);
        }
        else
        if (msg->type == DRV_MSG_SUBMIT) {
            cr_assert_eq (msg->ntasks, 1);
            if (++submits == 1) {
                first_seq = msg->seq;
                first_tag = msg->tasks [0].id;
            }
            else {
                cr_assert_eq (msg->seq, first_seq);
                cr_assert_eq (msg->tasks [0].id, first_tag);
                cr_assert_eq (msg->tasks [0].size, 2);
                s_fake_answer (&fake, identity, msg, true);
            }
        }
        drv_msg_destroy (&msg);
    }
    cr_assert_eq (submits, 2, "the client sent its Submit %zu times", submits);
    zframe_destroy (&identity);
    s_fake_finish (&fake);
}

//  A broker that answered and then fell silent while the client waits
//  gets a new connection after S_RECONNECT_MS (10 s), and the client
//  sends its unfinished task again on it; answered there, it completes.
Test (delivery, silent_broker_gets_a_new_connection, .timeout = 90)
{
    s_fake_t fake;
    s_fake_start (&fake);
    //  Acknowledge the first Submit, then answer nothing (pings neither)
    //  until the same tag comes again.
    uint64_t tag = 0;
    int64_t first_at = 0, again_at = 0;
    int64_t deadline = zclock_mono () + 60000;
    zframe_t *identity = NULL;
    while (!again_at && zclock_mono () < deadline) {
        drv_msg_t *msg = s_recv (fake.router, 500, &identity);
        if (!msg)
            continue;
        if (msg->type == DRV_MSG_SUBMIT && !first_at) {
            tag = msg->tasks [0].id;
            first_at = zclock_mono ();
            s_fake_answer (&fake, identity, msg, false);
        }
        else
        if (msg->type == DRV_MSG_SUBMIT && msg->ntasks == 1 && msg->tasks [0].id == tag) {
            again_at = zclock_mono ();
            s_fake_answer (&fake, identity, msg, true);
        }
        drv_msg_destroy (&msg);
    }
    cr_assert (first_at && again_at, "the task was not sent again");
    cr_log_info ("sent again after %" PRId64 " ms of silence", again_at - first_at);
    zframe_destroy (&identity);
    s_fake_finish (&fake);
}

//  A client whose program does not read for a while (busy elsewhere) has
//  not been ignored by the broker: when it waits again it takes what was
//  queued for it, without a new connection (which would drop that).
Test (delivery, a_client_that_did_not_read_keeps_its_connection, .timeout = 60)
{
    zsys_init ();
    char *log = NULL;
    size_t log_size = 0;
    FILE *stream = open_memstream (&log, &log_size);
    drover_set_logstream (stream);
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_eq (drover_worker_add_handler (worker, "echo", drv_test_echo, NULL), 0);
    cr_assert_eq (drover_worker_start (worker), 0);
    drover_client_t *client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (client);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "echo", "later", 5, NULL, &job_id), 0);
    //  Longer than the client's 10 s silence bound, not reading at all.
    zclock_sleep (11000);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 5000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->size, 5);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
    drover_set_logstream (NULL);
    fclose (stream);
    cr_assert_null (strstr (log, "connecting again"), "made a new connection:\n%s", log);
    free (log);
}

//  A peer that breaks ZMTP in the handshake ends the connection for
//  good: libzmq makes no new one, and once the socket's linger has
//  passed its DEALER takes no message. The worker must neither block
//  in a send (its heartbeat) nor stay away: it connects again, and
//  serves the broker that comes up on the same port later.
Test (delivery, a_worker_outlives_a_peer_that_broke_the_protocol, .timeout = 90)
{
    zsys_init ();
    drover_set_logstream (NULL);
    int port = drv_test_free_port ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    drover_worker_t *worker = drover_worker_new (endpoint);
    cr_assert_not_null (worker);
    cr_assert_eq (drover_worker_add_handler (worker, "echo", drv_test_echo, NULL), 0);
    cr_assert_eq (drover_worker_start (worker), 0, "%s", drover_worker_error (worker));
    //  Listening only now, so that the pool's members, forked by the
    //  start, do not hold the port; libzmq tries again every 100 ms.
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    cr_assert_geq (listener, 0);
    int on = 1;
    setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (listener, (struct sockaddr *) &address, sizeof address), 0);
    cr_assert_eq (listen (listener, 4), 0);

    //  The peer: a ZMTP 3.0 greeting (NULL mechanism, as server), then a
    //  command NULL does not know, which libzmq takes as a protocol error.
    struct pollfd item = {.fd = listener, .events = POLLIN};
    cr_assert_eq (poll (&item, 1, 10000), 1, "the worker did not connect");
    int peer = accept (listener, NULL, NULL);
    cr_assert_geq (peer, 0);
    uint8_t greeting [64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0, 'N', 'U', 'L', 'L'};
    greeting [32] = 1;
    uint8_t bogus [] = {0x04, 6, 5, 'B', 'O', 'G', 'U', 'S'};
    cr_assert_eq (write (peer, greeting, sizeof greeting), (ssize_t) sizeof greeting);
    cr_assert_eq (write (peer, bogus, sizeof bogus), (ssize_t) sizeof bogus);
    close (listener);
    //  Past the linger (1 s) and two heartbeats (1 s each): a worker that
    //  sends blocking is stuck in its send by now, for good.
    zclock_sleep (2500);
    close (peer);

    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", endpoint);
    cr_assert_not_null (broker);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    drover_client_t *client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (client);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "echo", "back", 4, NULL, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->size, 4);
    cr_assert_eq (memcmp (result->data, "back", 4), 0);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}
