/*  test_frames - payloads in frames of their own, end to end.

    A client sends each payload of DRV_FRAME_MIN bytes or more as a frame
    after the Submit's envelope; the broker keeps that frame and hands it
    on, shared, to a worker whose Ready says it takes frames, and inside
    the envelope to one that does not (an older worker). These tests run
    an embedded broker, SDK workers and raw DEALER workers that look at
    what arrives, and a durable broker that restores a framed job.
    drover_imap_push_owned sends a large payload from the caller's own
    block: the owned_* tests count its free function's calls.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_testutil.h"

static drover_broker_t *broker;
static drover_client_t *client;

//  A payload of size bytes that differs with seed at every position.
static uint8_t *
s_payload (size_t size, unsigned seed)
{
    uint8_t *payload = (uint8_t *) malloc (size ? size : 1);
    cr_assert_not_null (payload);
    for (size_t i = 0; i < size; i++)
        payload [i] = (uint8_t) ((i * 31 + seed * 7 + (i >> 8)) & 0xff);
    return payload;
}

static void
s_broker_up (const char *data_dir)
{
    broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_not_null (broker);
    if (data_dir)
        drover_broker_set_data_dir (broker, data_dir);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (client);
    drover_client_set_ack_timeout (client, 10000);
}

//  drv_test_broker_fn: the data directory, when there is one.
static void
s_set_data_dir (drover_broker_t *self, void *arg)
{
    if (arg)
        drover_broker_set_data_dir (self, (const char *) arg);
}

//  Destroy the broker and start another on these endpoints (and data
//  directory, or none).
static void
s_broker_restart (const char *clients, const char *workers, const char *data_dir)
{
    drover_broker_destroy (&broker);
    char err [512];
    broker = drv_test_broker_rebind (clients, workers, s_set_data_dir, (void *) data_dir, err,
                                     sizeof err);
    cr_assert_not_null (broker, "%s", err);
}

static void
setup (void)
{
    zsys_init ();
    drover_set_logstream (NULL);
    s_broker_up (NULL);
}

//  A durable broker's directory (mkdtemp), removed by teardown also
//  when its test fails; "" if none.
static char s_data_dir [64];

static void
teardown (void)
{
    drover_client_destroy (&client);
    drover_broker_destroy (&broker);
    if (*s_data_dir) {
        char command [128];
        snprintf (command, sizeof command, "rm -rf '%s'", s_data_dir);
        if (system (command) != 0)
            fprintf (stderr, "test_frames: cannot remove %s\n", s_data_dir);
        *s_data_dir = 0;
    }
}

TestSuite (frames, .init = setup, .fini = teardown, .timeout = 120);

static drover_worker_t *
s_echo_worker (bool threads)
{
    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_not_null (worker);
    drover_worker_set_threads (worker, threads);
    cr_assert_eq (drover_worker_add_handler (worker, "echo", drv_test_echo, NULL), 0);
    cr_assert_eq (drover_worker_start (worker), 0, "%s", drover_worker_error (worker));
    return worker;
}

//  Take count results from imap and check each is its payload, in push
//  order.
static void
s_expect_echoes (drover_imap_t *imap, uint8_t *const *payloads, const size_t *sizes, size_t count,
                 size_t chunk)
{
    for (size_t i = 0; i < count; i++) {
        drover_result_t *result = NULL;
        cr_assert_eq (drover_imap_next (imap, 60000, &result), 0, "%s",
                      drover_client_error (client));
        cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "%s", result->reason);
        cr_assert_eq (result->size, sizes [i], "result %zu", i);
        cr_assert (sizes [i] == 0 || memcmp (result->data, payloads [i], sizes [i]) == 0,
                   "result %zu of %zu bytes changed (chunk size %zu)", i, sizes [i], chunk);
        drover_result_destroy (&result);
    }
}

Test (frames, large_and_small_payloads_come_back_whole_in_pool_and_thread_workers)
{
    //  Sizes around the threshold, and well over it.
    const size_t sizes [] = {0, 10, DRV_FRAME_MIN - 1, DRV_FRAME_MIN, DRV_FRAME_MIN + 1,
                             300 * 1024, 3 * 1024 * 1024};
    const size_t count = sizeof sizes / sizeof sizes [0];
    for (int threads = 0; threads < 2; threads++) {
        drover_worker_t *worker = s_echo_worker (threads);
        for (size_t i = 0; i < count; i++) {
            uint8_t *payload = s_payload (sizes [i], (unsigned) i);
            drover_result_t *result = NULL;
            cr_assert_eq (drover_client_apply (client, "echo", payload, sizes [i], NULL, 60000,
                                               &result),
                          0, "%s", drover_client_error (client));
            cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "%s", result->reason);
            cr_assert_eq (result->size, sizes [i], "size %zu came back as %zu", sizes [i],
                          result->size);
            cr_assert (sizes [i] == 0 || memcmp (result->data, payload, sizes [i]) == 0,
                       "payload of %zu bytes came back changed", sizes [i]);
            drover_result_destroy (&result);
            free (payload);
        }
        drover_worker_destroy (&worker);
    }
}

Test (frames, a_streamed_map_mixes_framed_and_inside_payloads_in_order)
{
    drover_worker_t *worker = s_echo_worker (false);
    enum { COUNT = 40 };
    uint8_t *payloads [COUNT];
    size_t sizes [COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        sizes [i] = i % 3 == 0 ? 200 * 1024 + i : i % 3 == 1 ? 17 : DRV_FRAME_MIN;
        payloads [i] = s_payload (sizes [i], (unsigned) i + 100);
    }
    //  One task a job, then two to a job (a chunk of two large items is
    //  one framed payload).
    for (size_t chunk = 1; chunk <= 2; chunk++) {
        drover_imap_t *imap = drover_imap_new (client, "echo", NULL);
        cr_assert_not_null (imap);
        cr_assert_eq (drover_imap_set_chunk_size (imap, chunk), 0);
        for (size_t i = 0; i < COUNT; i++)
            cr_assert_eq (drover_imap_push (imap, payloads [i], sizes [i]), 0);
        s_expect_echoes (imap, payloads, sizes, COUNT, chunk);
        drover_imap_destroy (&imap);
    }
    for (size_t i = 0; i < COUNT; i++)
        free (payloads [i]);
    drover_worker_destroy (&worker);
}

//  A raw worker: a DEALER that says Ready for function, taking payload
//  frames or not.
static zsock_t *
s_raw_worker (const char *function, bool frames)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    cr_assert_not_null (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, 10000);
    cr_assert_eq (zsock_connect (dealer, "%s", drover_broker_workers_endpoint (broker)), 0);
    const char *functions [] = {function};
    drv_msg_t ready = {.type = DRV_MSG_READY, .seq = 1, .functions = functions,
                       .nfunctions = 1, .slots = 1, .name = "raw", .payload_frames = frames};
    zframe_t *frame = drv_codec_encode (&ready);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
    return dealer;
}

//  Receive the next Dispatch at a raw worker (skipping heartbeats): the
//  whole ZeroMQ message, and the decoded message.
static drv_msg_t *
s_raw_dispatch (zsock_t *dealer, size_t *parts_p)
{
    for (int i = 0; i < 100; i++) {
        zmsg_t *parts = zmsg_recv (dealer);
        cr_assert_not_null (parts, "no Dispatch came");
        *parts_p = zmsg_size (parts);
        zframe_t *envelope = zmsg_pop (parts);
        size_t nframes = zmsg_size (parts);
        zframe_t *frames [8] = {NULL};
        cr_assert_leq (nframes, 8);
        for (size_t f = 0; f < nframes; f++)
            frames [f] = zmsg_pop (parts);
        zmsg_destroy (&parts);
        drv_msg_t *msg = NULL;
        char err [256] = "";
        drv_limits_t limits = drv_limits_from_broker ();
        cr_assert_eq (drv_codec_decode_frames (zframe_data (envelope), zframe_size (envelope),
                                               frames, nframes, &limits, &msg, NULL, err,
                                               sizeof err),
                      DROVER_ERR_NONE, "%s", err);
        zframe_destroy (&envelope);
        if (msg->type == DRV_MSG_DISPATCH)
            return msg;
        drv_msg_destroy (&msg);
    }
    return NULL;
}

//  Answer a task with its payload's size, in decimal.
static void
s_raw_done (zsock_t *dealer, const drv_task_t *task)
{
    char out [32];
    int length = snprintf (out, sizeof out, "%zu", task->size);
    drv_result_t result = {.job_id = task->id, .outcome = DROVER_OUTCOME_OK,
                           .data = (const uint8_t *) out, .size = (size_t) length,
                           .reason = ""};
    drv_msg_t done = {.type = DRV_MSG_DONE, .seq = 2, .results = &result, .nresults = 1};
    zframe_t *frame = drv_codec_encode (&done);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
}

Test (frames, a_worker_gets_frames_only_if_its_ready_takes_them)
{
    const size_t size = 256 * 1024;
    uint8_t *payload = s_payload (size, 5);
    for (int frames = 0; frames < 2; frames++) {
        const char *function = frames ? "newer" : "older";
        zsock_t *worker = s_raw_worker (function, frames);
        drover_future_t *future = drover_client_apply_future (client, function, payload, size,
                                                              NULL);
        cr_assert_not_null (future, "%s", drover_client_error (client));
        size_t parts = 0;
        drv_msg_t *dispatch = s_raw_dispatch (worker, &parts);
        cr_assert_not_null (dispatch);
        cr_assert_eq (dispatch->ntasks, 1);
        const drv_task_t *task = &dispatch->tasks [0];
        cr_assert_eq (parts, frames ? 2 : 1, "%s worker got %zu parts", function, parts);
        cr_assert_eq (task->framed, frames);
        cr_assert_eq (task->size, size);
        cr_assert (memcmp (task->payload, payload, size) == 0, "%s worker: payload changed",
                   function);
        s_raw_done (worker, task);
        drv_msg_destroy (&dispatch);
        const drover_result_t *result = NULL;
        cr_assert_eq (drover_future_get (future, 10000, &result), 0, "%s",
                      drover_client_error (client));
        cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
        cr_assert_eq (strtoul ((const char *) result->data, NULL, 10), size);
        drover_future_destroy (&future);
        zsock_destroy (&worker);
    }
    free (payload);
}

Test (frames, a_durable_broker_keeps_a_framed_payload_across_a_restart)
{
    //  The fixture's broker is replaced by a durable one.
    teardown ();
    snprintf (s_data_dir, sizeof s_data_dir, "/tmp/drover-test-frames-XXXXXX");  //  mkdtemp's template
    cr_assert_not_null (mkdtemp (s_data_dir));
    const char *dir = s_data_dir;
    s_broker_up (dir);
    const char *clients = drover_broker_clients_endpoint (broker);
    char *endpoint = strdup (clients);
    const size_t size = 512 * 1024;
    uint8_t *payload = s_payload (size, 9);
    //  Detached: queued for a function no worker offers yet, its id kept.
    drover_options_t options = {.detach = true};
    uint64_t id = 0;
    cr_assert_eq (drover_client_submit (client, "echo", payload, size, &options, &id), 0, "%s",
                  drover_client_error (client));
    drover_client_destroy (&client);
    drover_broker_destroy (&broker);

    //  The same endpoints and data: the job is restored from disk.
    s_broker_restart (endpoint, "tcp://127.0.0.1:*", dir);
    client = drover_client_new (endpoint);
    drover_worker_t *worker = s_echo_worker (false);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, id, 60000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "%s", result->reason);
    cr_assert_eq (result->size, size);
    cr_assert (memcmp (result->data, payload, size) == 0, "the restored payload changed");
    drover_result_destroy (&result);
    drover_worker_destroy (&worker);
    free (payload);
    free (endpoint);
}

//  ---------------------------------------------------------------------
//  Owned pushes. The free function counts its calls (it may run on
//  ZeroMQ's I/O thread, hence the atomic) and spoils the bytes before it
//  frees them, so a block let go while a resend may still need it shows
//  as a changed result, and under AddressSanitizer as a use after free.
//  The hint is the block's size.

static atomic_int s_freed;

static void
s_spoil_free (void *data, void *hint)
{
    memset (data, 0xEE, (size_t) (uintptr_t) hint);
    free (data);
    atomic_fetch_add (&s_freed, 1);
}

//  A block for an owned push: a copy of payload.
static uint8_t *
s_owned (const uint8_t *payload, size_t size)
{
    uint8_t *block = (uint8_t *) malloc (size ? size : 1);
    cr_assert_not_null (block);
    memcpy (block, payload, size);
    return block;
}

static int
s_push_owned (drover_imap_t *imap, const uint8_t *payload, size_t size)
{
    return drover_imap_push_owned (imap, s_owned (payload, size), size, s_spoil_free,
                                   (void *) (uintptr_t) size);
}

//  The free count once it reached want, or after 10 s; then a moment
//  more, so that a call too many would show.
static int
s_freed_settles (int want)
{
    for (int i = 0; i < 1000 && atomic_load (&s_freed) < want; i++)
        zclock_sleep (10);
    zclock_sleep (100);
    return atomic_load (&s_freed);
}

Test (frames, owned_pushes_around_the_threshold_come_back_whole_and_are_freed_once)
{
    drover_worker_t *worker = s_echo_worker (false);
    const size_t sizes [] = {0, 10, DRV_FRAME_MIN - 1, DRV_FRAME_MIN, DRV_FRAME_MIN + 1,
                             300 * 1024, 3 * 1024 * 1024};
    enum { COUNT = sizeof sizes / sizeof sizes [0] };
    uint8_t *payloads [COUNT];
    for (size_t i = 0; i < COUNT; i++)
        payloads [i] = s_payload (sizes [i], (unsigned) i + 500);
    //  One task a job (large ones framed from the caller's block), then
    //  two to a job (packed: every block copied and freed at once).
    for (size_t chunk = 1; chunk <= 2; chunk++) {
        atomic_store (&s_freed, 0);
        drover_imap_t *imap = drover_imap_new (client, "echo", NULL);
        cr_assert_not_null (imap);
        cr_assert_eq (drover_imap_set_chunk_size (imap, chunk), 0);
        int copied = 0;
        for (size_t i = 0; i < COUNT; i++) {
            bool copy = chunk > 1 || sizes [i] < DRV_FRAME_MIN;
            copied += copy;
            cr_assert_eq (s_push_owned (imap, payloads [i], sizes [i]), 0, "%s",
                          drover_client_error (client));
            //  A copied block goes in the push itself.
            cr_assert_eq (atomic_load (&s_freed), copied, "push %zu (%zu bytes, chunk %zu)", i,
                          sizes [i], chunk);
        }
        s_expect_echoes (imap, payloads, sizes, COUNT, chunk);
        drover_imap_destroy (&imap);
        cr_assert_eq (s_freed_settles (COUNT), COUNT, "chunk size %zu", chunk);
    }
    for (size_t i = 0; i < COUNT; i++)
        free (payloads [i]);
    drover_worker_destroy (&worker);
}

Test (frames, owned_pushes_still_pending_are_freed_once_when_the_map_goes)
{
    //  No worker offers the function: the tasks stay queued.
    atomic_store (&s_freed, 0);
    enum { COUNT = 6 };
    const size_t size = 200 * 1024;
    uint8_t *payload = s_payload (size, 7);
    drover_imap_t *imap = drover_imap_new (client, "nobody", NULL);
    cr_assert_not_null (imap);
    for (size_t i = 0; i < COUNT; i++)
        cr_assert_eq (s_push_owned (imap, payload, size), 0, "%s", drover_client_error (client));
    cr_assert_eq (drover_imap_flush (imap), 0, "%s", drover_client_error (client));
    drover_result_t *result = NULL;
    cr_assert_eq (drover_imap_next (imap, 500, &result), -1);
    cr_assert_eq (atomic_load (&s_freed), 0, "a block went while its task was pending");
    drover_imap_destroy (&imap);
    cr_assert_eq (s_freed_settles (COUNT), COUNT);
    //  Without a free function there is nothing to take over.
    imap = drover_imap_new (client, "nobody", NULL);
    cr_assert_eq (drover_imap_push_owned (imap, payload, size, NULL, NULL), -1);
    cr_assert_eq (errno, EINVAL);
    drover_imap_destroy (&imap);
    free (payload);
}

Test (frames, owned_pushes_to_no_broker_fail_and_each_block_is_freed_once)
{
    //  Nothing listens there: ZeroMQ queues what is sent, no Submit is
    //  acknowledged, and a push that has to wait for the window fails.
    atomic_store (&s_freed, 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", drv_test_free_port ());
    drover_client_t *lonely = drover_client_new (endpoint);
    cr_assert_not_null (lonely);
    drover_client_set_ack_timeout (lonely, 200);
    drover_imap_t *imap = drover_imap_new (lonely, "echo", NULL);
    cr_assert_not_null (imap);
    const size_t size = DRV_FRAME_MIN;
    uint8_t *payload = s_payload (size, 11);
    //  16 Submits fill the window; the 64th push after them fills a batch
    //  (4 MiB), whose flush waits for the oldest in vain.
    int pushed = 0, rc = 0;
    for (int i = 0; i < 16; i++) {
        cr_assert_eq (s_push_owned (imap, payload, size), 0, "%s", drover_client_error (lonely));
        cr_assert_eq (drover_imap_flush (imap), 0, "%s", drover_client_error (lonely));
        pushed++;
    }
    while (rc == 0 && pushed < 16 + 64) {
        rc = s_push_owned (imap, payload, size);
        pushed++;
    }
    cr_assert_eq (rc, -1, "no push failed");
    cr_assert_eq (pushed, 16 + 64);
    cr_assert_eq (errno, ETIMEDOUT, "%s", drover_client_error (lonely));
    drover_imap_destroy (&imap);
    //  Copies still queued on the socket go with it, maybe on ZeroMQ's
    //  I/O thread after drover_client_destroy returned.
    drover_client_destroy (&lonely);
    cr_assert_eq (s_freed_settles (pushed), pushed);
    free (payload);
}

//  Large payloads queued with no worker, then the broker restarts (in
//  memory: it forgets them), so the client sends them again from what
//  it kept: its copies, or with owned pushes the caller's blocks, none
//  of which may be freed before its result is in.
static void
s_restart_round (bool owned, unsigned seed)
{
    atomic_store (&s_freed, 0);
    char *clients = strdup (drover_broker_clients_endpoint (broker));
    char *workers = strdup (drover_broker_workers_endpoint (broker));
    enum { COUNT = 12 };
    uint8_t *payloads [COUNT];
    size_t sizes [COUNT];
    drover_imap_t *imap = drover_imap_new (client, "echo", NULL);
    cr_assert_not_null (imap);
    for (size_t i = 0; i < COUNT; i++) {
        sizes [i] = 150 * 1024;
        payloads [i] = s_payload (sizes [i], (unsigned) i + seed);
        cr_assert_eq (owned ? s_push_owned (imap, payloads [i], sizes [i])
                            : drover_imap_push (imap, payloads [i], sizes [i]),
                      0);
    }
    cr_assert_eq (drover_imap_flush (imap), 0);
    s_broker_restart (clients, workers, NULL);
    cr_assert_eq (atomic_load (&s_freed), 0);
    drover_worker_t *worker = s_echo_worker (false);
    s_expect_echoes (imap, payloads, sizes, COUNT, 1);
    for (size_t i = 0; i < COUNT; i++)
        free (payloads [i]);
    drover_imap_destroy (&imap);
    cr_assert_eq (s_freed_settles (owned ? COUNT : 0), owned ? COUNT : 0);
    drover_worker_destroy (&worker);
    free (clients);
    free (workers);
}

Test (frames, a_streamed_map_of_large_payloads_survives_a_broker_restart)
{
    s_restart_round (false, 300);
}

Test (frames, owned_pushes_survive_a_broker_restart)
{
    s_restart_round (true, 700);
}
