/*  test_sdk - the Pool parity calls of libdrover: futures
    (drover_future_*, Pool's AsyncResult and map_async) and maps with a
    chunk size (drover_client_map_chunked, drover_imap_set_chunk_size,
    drover map --chunk-size).

    The "sdk" suite runs an embedded broker and an in-process worker on
    free loopback ports; the "chunks" suite runs the daemons (exec: and
    plugin handlers, a worker killed in the middle of a chunked map, a
    durable broker restarted under one); "chunk_parts" checks the codec
    and the scheduler rule that keeps chunks from workers that do not
    know them. No timings are asserted: paused queues hold jobs where a
    test needs them to wait.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_sched.h"
#include "drv_store.h"
#include "drv_testutil.h"

//  ---------------------------------------------------------------------
//  Handlers

//  Squares even numbers, fails odd ones.
static int
s_odd_fails (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    long n = strtol ((const char *) payload, NULL, 10);
    if (n % 2) {
        drover_task_fail (task, "odd %ld", n);
        return -1;
    }
    char out [32];
    int length = snprintf (out, sizeof out, "%ld", n * n);
    return drover_task_reply (task, out, (size_t) length);
}

static int
s_fail (drover_task_t *task, void *arg)
{
    (void) arg;
    drover_task_fail (task, "refused");
    return -1;
}

//  ---------------------------------------------------------------------
//  Fixture: an embedded broker and a worker with two pool processes.

static drover_broker_t *broker;
static drover_worker_t *worker;
static drover_client_t *client;

static drover_worker_t *
s_worker_new (unsigned slots, bool threads)
{
    drover_worker_t *w = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_not_null (w);
    cr_assert_eq (drover_worker_set_slots (w, slots), 0);
    drover_worker_set_threads (w, threads);
    cr_assert_eq (drover_worker_add_handler (w, threads ? "tsquare" : "square", drv_test_square,
                                             NULL),
                  0);
    if (!threads) {
        cr_assert_eq (drover_worker_add_handler (w, "odd_fails", s_odd_fails, NULL), 0);
        cr_assert_eq (drover_worker_add_handler (w, "fail", s_fail, NULL), 0);
    }
    cr_assert_eq (drover_worker_start (w), 0, "%s", drover_worker_error (w));
    return w;
}

static void
setup (void)
{
    zsys_init ();
    drover_set_logstream (NULL);
    broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_not_null (broker);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (client);
    drover_client_set_ack_timeout (client, 10000);
    worker = s_worker_new (2, false);
}

static void
teardown (void)
{
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}

TestSuite (sdk, .init = setup, .fini = teardown, .timeout = 90);

//  Payloads "0" .. "count-1", in a buffer the caller frees.
static char *
s_numbers (size_t count, const void **payloads, size_t *sizes)
{
    char *text = (char *) calloc (count, 12);
    cr_assert_not_null (text);
    for (size_t i = 0; i < count; i++) {
        char *slot = text + i * 12;
        sizes [i] = (size_t) snprintf (slot, 12, "%zu", i);
        payloads [i] = slot;
    }
    return text;
}

//  ---------------------------------------------------------------------
//  Futures

Test (sdk, future_is_ready_once_its_result_is_in)
{
    //  Paused: the job is queued and cannot finish until resumed.
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future = drover_client_apply_future (client, "square", "12", 2, NULL);
    cr_assert_not_null (future, "%s", drover_client_error (client));
    cr_assert_gt (drover_future_job_id (future), 0);
    cr_assert_eq (drover_future_count (future), 1);
    cr_assert_not (drover_future_ready (future));
    cr_assert_not (drover_future_successful (future), "false before it is ready");
    cr_assert_null (drover_future_result (future, 0));
    cr_assert_eq (drover_client_pause (client, "square", false, NULL), 0);
    const drover_result_t *result = NULL;
    cr_assert_eq (drover_future_get (future, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) result->data, "144");
    cr_assert_eq (result->job_id, drover_future_job_id (future));
    cr_assert (drover_future_ready (future));
    cr_assert (drover_future_successful (future));
    //  get again: the same result, at once.
    const drover_result_t *again = NULL;
    cr_assert_eq (drover_future_get (future, 0, &again), 0);
    cr_assert_eq (again, result);
    drover_future_destroy (&future);
    cr_assert_null (future);
}

Test (sdk, future_ready_polls_without_waiting)
{
    drover_future_t *future = drover_client_apply_future (client, "square", "5", 1, NULL);
    cr_assert_not_null (future);
    //  Only drover_future_ready is called: it must take the result off
    //  the socket by itself.
    int64_t deadline = zclock_mono () + 30000;
    while (!drover_future_ready (future) && zclock_mono () < deadline)
        zclock_sleep (10);
    cr_assert (drover_future_ready (future));
    cr_assert (drover_future_successful (future));
    cr_assert_str_eq ((char *) drover_future_result (future, 0)->data, "25");
    drover_future_destroy (&future);
}

Test (sdk, future_of_a_failed_task_is_not_successful)
{
    drover_future_t *future = drover_client_apply_future (client, "fail", "x", 1, NULL);
    cr_assert_not_null (future);
    const drover_result_t *result = NULL;
    cr_assert_eq (drover_future_get (future, 30000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (result->reason, "refused");
    cr_assert (drover_future_ready (future));
    cr_assert_not (drover_future_successful (future));
    drover_future_destroy (&future);
}

Test (sdk, future_get_times_out_and_stays_waitable)
{
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future = drover_client_apply_future (client, "square", "3", 1, NULL);
    cr_assert_not_null (future);
    const drover_result_t *result = (const drover_result_t *) 1;
    cr_assert_eq (drover_future_get (future, 300, &result), -1);
    cr_assert_eq (errno, ETIMEDOUT);
    cr_assert_null (result);
    cr_assert_eq (drover_future_get (future, 0, &result), -1);
    cr_assert_eq (errno, ETIMEDOUT);
    cr_assert_not (drover_future_ready (future));
    cr_assert_eq (drover_client_pause (client, "square", false, NULL), 0);
    cr_assert_eq (drover_future_get (future, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "9");
    drover_future_destroy (&future);
}

Test (sdk, future_cancel_gives_a_cancelled_result)
{
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future = drover_client_apply_future (client, "square", "3", 1, NULL);
    cr_assert_not_null (future);
    cr_assert_eq (drover_future_cancel (future), 0, "%s", drover_client_error (client));
    const drover_result_t *result = NULL;
    cr_assert_eq (drover_future_get (future, 30000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_CANCELLED);
    cr_assert_not (drover_future_successful (future));
    //  Cancelling a ready future changes nothing.
    cr_assert_eq (drover_future_cancel (future), 0);
    drover_future_destroy (&future);
}

static int s_callbacks;

static void
s_count (const drover_result_t *result, void *arg)
{
    (void) arg;
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    s_callbacks++;
}

Test (sdk, futures_interleave_with_wait_and_callbacks)
{
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future = drover_client_apply_future (client, "square", "3", 1, NULL);
    cr_assert_not_null (future);
    //  The future's job is its own.
    drover_result_t *taken = NULL;
    cr_assert_eq (drover_client_wait (client, drover_future_job_id (future), 0, &taken), -1);
    cr_assert_eq (errno, EINVAL);
    //  Other jobs finish while the future waits: their results are kept.
    uint64_t other = 0, async = 0;
    cr_assert_eq (drover_client_submit (client, "odd_fails", "4", 1, NULL, &other), 0);
    s_callbacks = 0;
    cr_assert_eq (drover_client_apply_async (client, "odd_fails", "6", 1, NULL, s_count, NULL,
                                             NULL, &async),
                  0);
    cr_assert_eq (drover_future_get (future, 500, NULL), -1);
    cr_assert_eq (errno, ETIMEDOUT);
    //  A wait on the other job, with the future's result coming meanwhile.
    cr_assert_eq (drover_client_pause (client, "square", false, NULL), 0);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, other, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "16");
    drover_result_destroy (&result);
    cr_assert_eq (drover_future_get (future, 30000, NULL), 0);
    cr_assert_str_eq ((char *) drover_future_result (future, 0)->data, "9");
    //  The callback ran nowhere else: join runs it, once.
    cr_assert_eq (s_callbacks, 0);
    cr_assert_eq (drover_client_join (client, 30000), 1);
    cr_assert_eq (s_callbacks, 1);
    drover_future_destroy (&future);
}

Test (sdk, destroyed_future_drops_its_late_result)
{
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future = drover_client_apply_future (client, "square", "3", 1, NULL);
    uint64_t job_id = drover_future_job_id (future);
    drover_future_destroy (&future);
    cr_assert_eq (drover_client_pause (client, "square", false, NULL), 0);
    //  The client holds no record of it: a wait asks the broker.
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "9");
    drover_result_destroy (&result);
}

Test (sdk, map_async_collects_every_result_in_order)
{
    const void *payloads [23];
    size_t sizes [23];
    char *text = s_numbers (23, payloads, sizes);
    for (size_t chunk = 1; chunk <= 5; chunk += 4) {
        drover_future_t *future
            = drover_client_map_async (client, "odd_fails", 23, payloads, sizes, chunk, NULL);
        cr_assert_not_null (future, "%s", drover_client_error (client));
        cr_assert_eq (drover_future_count (future), 23);
        cr_assert_eq (drover_future_job_id (future), 0);
        cr_assert_eq (drover_future_get (future, 30000, NULL), 0, "%s",
                      drover_client_error (client));
        cr_assert_not (drover_future_successful (future), "odd ones failed");
        for (size_t i = 0; i < 23; i++) {
            const drover_result_t *r = drover_future_result (future, i);
            cr_assert_not_null (r);
            if (i % 2) {
                char reason [32];
                snprintf (reason, sizeof reason, "odd %zu", i);
                cr_assert_eq (r->outcome, DROVER_OUTCOME_ERROR);
                cr_assert_str_eq (r->reason, reason);
            }
            else {
                char square [32];
                snprintf (square, sizeof square, "%zu", i * i);
                cr_assert_eq (r->outcome, DROVER_OUTCOME_OK);
                cr_assert_str_eq ((char *) r->data, square);
            }
        }
        drover_future_destroy (&future);
    }
    drover_future_t *future
        = drover_client_map_async (client, "square", 23, payloads, sizes, 4, NULL);
    cr_assert_eq (drover_future_get (future, 30000, NULL), 0);
    cr_assert (drover_future_successful (future));
    drover_future_destroy (&future);
    free (text);
}

Test (sdk, map_async_cancel)
{
    const void *payloads [10];
    size_t sizes [10];
    char *text = s_numbers (10, payloads, sizes);
    cr_assert_eq (drover_client_pause (client, "square", true, NULL), 0);
    drover_future_t *future
        = drover_client_map_async (client, "square", 10, payloads, sizes, 3, NULL);
    cr_assert_not_null (future);
    cr_assert_not (drover_future_ready (future));
    cr_assert_eq (drover_future_cancel (future), 0, "%s", drover_client_error (client));
    cr_assert_eq (drover_future_get (future, 30000, NULL), 0);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq (drover_future_result (future, i)->outcome, DROVER_OUTCOME_CANCELLED);
    cr_assert_not (drover_future_successful (future));
    drover_future_destroy (&future);
    free (text);
}

//  ---------------------------------------------------------------------
//  Chunked maps, in-process handlers

//  Map count payloads in chunks of chunk; check every result and that
//  the jobs were ceil (count / chunk).
static void
s_check_chunked_map (const char *function, size_t count, size_t chunk)
{
    const void **payloads = (const void **) calloc (count, sizeof (void *));
    size_t *sizes = (size_t *) calloc (count, sizeof (size_t));
    drover_result_t **results = (drover_result_t **) calloc (count, sizeof (drover_result_t *));
    char *text = s_numbers (count, payloads, sizes);
    cr_assert_eq (drover_client_map_chunked (client, function, count, payloads, sizes, chunk,
                                             NULL, 60000, results),
                  0, "%s", drover_client_error (client));
    size_t jobs = 0;
    for (size_t i = 0; i < count; i++) {
        char square [32];
        snprintf (square, sizeof square, "%zu", i * i);
        cr_assert_not_null (results [i]);
        cr_assert_eq (results [i]->outcome, DROVER_OUTCOME_OK, "%zu: %s", i,
                      results [i]->reason);
        cr_assert_str_eq ((char *) results [i]->data, square);
        cr_assert_eq (results [i]->size, strlen (square));
        cr_assert_eq (results [i]->attempts, 1);
        //  Items of one chunk share its job; a new job starts every chunk.
        if (i % (chunk ? chunk : 1) == 0) {
            jobs++;
            cr_assert (i == 0 || results [i]->job_id != results [i - 1]->job_id);
        }
        else
            cr_assert_eq (results [i]->job_id, results [i - 1]->job_id);
    }
    size_t per = chunk ? chunk : 1;
    cr_assert_eq (jobs, (count + per - 1) / per);
    for (size_t i = 0; i < count; i++)
        drover_result_destroy (&results [i]);
    free (results);
    free (sizes);
    free (payloads);
    free (text);
}

Test (sdk, chunked_map_counts)
{
    s_check_chunked_map ("square", 10, 3);      //  not a multiple
    s_check_chunked_map ("square", 12, 4);      //  a multiple
    s_check_chunked_map ("square", 7, 1);       //  one per job
    s_check_chunked_map ("square", 7, 0);       //  0 is 1
    s_check_chunked_map ("square", 5, 20);      //  larger than the count
    s_check_chunked_map ("square", 1, 1);
    s_check_chunked_map ("square", 2500, 7);    //  over several batches
    s_check_chunked_map ("square", 3000, 2000); //  a chunk larger than a batch
}

Test (sdk, chunked_map_in_threads_mode)
{
    drover_worker_t *threads = s_worker_new (2, true);
    s_check_chunked_map ("tsquare", 50, 6);
    drover_worker_destroy (&threads);
}

Test (sdk, chunked_map_failing_item_among_successes)
{
    const void *payloads [7];
    size_t sizes [7];
    char *text = s_numbers (7, payloads, sizes);
    payloads [0] = "2";                          //  chunks: [2 1 2] [3 4 5] [6]
    payloads [2] = "2";
    drover_result_t *results [7];
    drover_options_t options = {.retries = 1};
    cr_assert_eq (drover_client_map_chunked (client, "odd_fails", 7, payloads, sizes, 3,
                                             &options, 60000, results),
                  0);
    const char *expected [7] = {"4", NULL, "4", NULL, "16", NULL, "36"};
    for (size_t i = 0; i < 7; i++) {
        if (expected [i]) {
            cr_assert_eq (results [i]->outcome, DROVER_OUTCOME_OK, "%zu", i);
            cr_assert_str_eq ((char *) results [i]->data, expected [i]);
            cr_assert_str_eq (results [i]->reason, "");
        }
        else {
            char reason [32];
            snprintf (reason, sizeof reason, "odd %zu", i);
            cr_assert_eq (results [i]->outcome, DROVER_OUTCOME_ERROR, "%zu", i);
            cr_assert_str_eq (results [i]->reason, reason);
        }
    }
    //  A chunk with a failed item failed as a whole and ran again whole;
    //  the one without ran once.
    cr_assert_eq (results [0]->attempts, 2);
    cr_assert_eq (results [3]->attempts, 2);
    cr_assert_eq (results [4]->attempts, 2);
    cr_assert_eq (results [6]->attempts, 1);
    for (size_t i = 0; i < 7; i++)
        drover_result_destroy (&results [i]);
    free (text);
}

Test (sdk, chunked_imap_ordered_and_unordered)
{
    for (int unordered = 0; unordered < 2; unordered++) {
        drover_imap_t *imap = drover_imap_new (client, "square", NULL);
        cr_assert_not_null (imap);
        cr_assert_eq (drover_imap_set_unordered (imap, unordered), 0);
        cr_assert_eq (drover_imap_set_chunk_size (imap, 4), 0);
        for (size_t i = 0; i < 10; i++) {
            char text [12];
            int length = snprintf (text, sizeof text, "%zu", i);
            cr_assert_eq (drover_imap_push (imap, text, (size_t) length), 0);
        }
        //  Too late to change it now.
        cr_assert_eq (drover_imap_set_chunk_size (imap, 2), -1);
        cr_assert_eq (drover_imap_pending (imap), 10);
        bool seen [10] = {false};
        drover_result_t *result;
        size_t index;
        for (size_t n = 0; n < 10; n++) {
            cr_assert_eq (drover_imap_next_index (imap, 30000, &result, &index), 0, "%s",
                          drover_client_error (client));
            cr_assert_lt (index, 10);
            cr_assert_not (seen [index]);
            seen [index] = true;
            if (!unordered)
                cr_assert_eq (index, n);
            char square [32];
            snprintf (square, sizeof square, "%zu", index * index);
            cr_assert_str_eq ((char *) result->data, square);
            drover_result_destroy (&result);
        }
        cr_assert_eq (drover_imap_next (imap, 0, &result), 1);
        cr_assert_eq (drover_imap_pending (imap), 0);
        drover_imap_destroy (&imap);
    }
}

Test (sdk, chunk_size_is_checked)
{
    drover_imap_t *imap = drover_imap_new (client, "square", NULL);
    cr_assert_eq (drover_imap_set_chunk_size (imap, DROVER_CHUNK_SIZE_MAX + 1), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_INVALID);
    cr_assert_eq (drover_imap_set_chunk_size (imap, DROVER_CHUNK_SIZE_MAX), 0);
    drover_imap_destroy (&imap);
}

//  ---------------------------------------------------------------------
//  The codec's chunk messages and the scheduler's rule

Test (chunk_parts, flags_cross_the_wire)
{
    const char *functions [] = {"f"};
    drv_msg_t ready = {.type = DRV_MSG_READY, .functions = functions, .nfunctions = 1,
                       .slots = 2, .name = "w", .chunks = true};
    drv_task_t task = {.id = 9, .function = "f", .payload = (const uint8_t *) "p", .size = 1,
                       .chunk = true};
    drv_msg_t dispatch = {.type = DRV_MSG_DISPATCH, .tasks = &task, .ntasks = 1};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .function = "f", .tasks = &task, .ntasks = 1,
                        .chunk = true};
    drv_msg_t *messages [] = {&ready, &dispatch, &submit};
    for (size_t i = 0; i < 3; i++) {
        zframe_t *frame = drv_codec_encode (messages [i]);
        cr_assert_not_null (frame);
        drv_msg_t *back = NULL;
        char err [256];
        cr_assert_eq (drv_codec_decode (zframe_data (frame), zframe_size (frame), NULL, &back,
                                        NULL, err, sizeof err),
                      DROVER_ERR_NONE, "%s", err);
        if (i == 0)
            cr_assert (back->chunks);
        else
        if (i == 1)
            cr_assert (back->tasks [0].chunk);
        else
            cr_assert (back->chunk);
        drv_msg_destroy (&back);
        zframe_destroy (&frame);
    }
    //  Unset, they read as false: what an older peer sends.
    ready.chunks = false;
    zframe_t *frame = drv_codec_encode (&ready);
    drv_msg_t *back = NULL;
    cr_assert_eq (drv_codec_decode (zframe_data (frame), zframe_size (frame), NULL, &back, NULL,
                                    NULL, 0),
                  DROVER_ERR_NONE);
    cr_assert_not (back->chunks);
    drv_msg_destroy (&back);
    zframe_destroy (&frame);
}

//  drv_sched_emit_fn: count what is dispatched.
static void
s_emit_count (drv_peer_t *peer, drv_job_t **jobs, size_t n, void *arg)
{
    (void) peer;
    (void) jobs;
    *(size_t *) arg += n;
}

Test (chunk_parts, codec_round_trip)
{
    const void *items [3] = {"a", "", "ccc"};
    size_t sizes [3] = {1, 0, 3};
    size_t size = 0;
    uint8_t *packed = drv_codec_chunk_pack (3, items, sizes, &size);
    cr_assert_not_null (packed);
    drv_chunk_t *chunk = drv_codec_chunk_unpack (packed, size);
    cr_assert_not_null (chunk);
    cr_assert_eq (chunk->count, 3);
    cr_assert_eq (chunk->sizes [1], 0);
    cr_assert_str_eq ((char *) chunk->items [2], "ccc");
    free (chunk);
    free (packed);
    //  Not a chunk: garbage, and no items at all.
    cr_assert_null (drv_codec_chunk_unpack ("\xff\xff\xff", 3));
    cr_assert_null (drv_codec_chunk_unpack ("", 0));

    drv_result_t results [2] = {
        {.outcome = DROVER_OUTCOME_OK, .data = (const uint8_t *) "out", .size = 3, .reason = ""},
        {.outcome = DROVER_OUTCOME_TIMEOUT, .reason = "timed out"},
    };
    packed = drv_codec_chunk_results_pack (results, 2, &size);
    cr_assert_not_null (packed);
    size_t count = 2;
    drv_result_t *back = drv_codec_chunk_results_unpack (packed, size, &count);
    cr_assert_not_null (back);
    cr_assert_eq (back [0].outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) back [0].data, "out");
    cr_assert_eq (back [1].outcome, DROVER_OUTCOME_TIMEOUT);
    cr_assert_str_eq (back [1].reason, "timed out");
    free (back);
    //  The count must match the chunk's; 0 takes any, and says it.
    count = 3;
    cr_assert_null (drv_codec_chunk_results_unpack (packed, size, &count));
    count = 0;
    back = drv_codec_chunk_results_unpack (packed, size, &count);
    cr_assert_not_null (back);
    cr_assert_eq (count, 2);
    free (back);
    free (packed);
}

Test (chunk_parts, workers_without_chunks_get_none)
{
    drv_store_t *store = drv_store_new (60000, 0);
    drv_sched_t *sched = drv_sched_new (store);
    drv_queue_t *queue = drv_store_queue (store, "f");
    const char *functions [] = {"f"};
    drv_peer_t *old = drv_sched_ready (sched, (const uint8_t *) "old", 3, "old", functions, 1,
                                       4, 0);
    cr_assert_not_null (old);
    drv_submit_opts_t chunked = {.chunk = true};
    drv_job_t *job = drv_store_submit_opts (store, queue, 1, (const uint8_t *) "c", 1, "x", 1,
                                            &chunked);
    cr_assert_not_null (job);
    cr_assert_eq (drv_store_peek (queue), job);
    size_t count = 0;
    cr_assert_eq (drv_sched_dispatch (sched, s_emit_count, &count), 0,
                  "a chunk went to a worker that does not run chunks");
    cr_assert_eq (job->state, DROVER_JOB_QUEUED);
    //  A worker that says it runs chunks takes it.
    drv_peer_t *new = drv_sched_ready (sched, (const uint8_t *) "new", 3, "new", functions, 1,
                                       4, 0);
    drv_sched_set_chunks (new, true);
    cr_assert_eq (drv_sched_dispatch (sched, s_emit_count, &count), 1);
    cr_assert_eq (job->worker, new);
    cr_assert_eq (count, 1);
    drv_sched_destroy (&sched);
    drv_store_destroy (&store);
}

//  ---------------------------------------------------------------------
//  The daemons: exec: and plugin handlers, a killed worker, durable mode

static drv_test_cluster_t cluster;

static void
s_cluster_init (void)
{
    drv_test_cluster_start (&cluster, NULL);
}

static void
s_cluster_fini (void)
{
    drv_test_cluster_stop (&cluster);
}

TestSuite (chunks, .init = s_cluster_init, .fini = s_cluster_fini, .timeout = 180);

Test (chunks, cli_map_with_exec_and_plugin_handlers)
{
    char plugin [512];
    snprintf (plugin, sizeof plugin, "echo=plugin:%s:echo", DROVER_TEST_PLUGIN);
    const char *functions [] = {"sq=exec:awk {if($1==\"x\")exit(3);print($1*$1)}", plugin, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    const char *args [] = {"map", "sq", "--chunk-size", "4", "--json", NULL};
    drv_test_output_t out = drv_test_cli (&cluster, args, "1\n2\n3\nx\n5\n6\n7\n8\n9\n", 60000);
    cr_assert_eq (out.status, 1, "%s", out.err);
    cr_assert_neq (strstr (out.err, "1 of 9 tasks failed"), NULL, "%s", out.err);
    //  Nine lines out, one per input line; three jobs of up to four.
    const char *lines [9] = {
        "{\"line\":1,\"job_id\":1,\"outcome\":\"ok\",\"data\":\"1\\n\"",
        "{\"line\":2,\"job_id\":1,", "{\"line\":3,\"job_id\":1,",
        "{\"line\":4,\"job_id\":1,\"outcome\":\"error\",\"data\":\"\",\"reason\":\"exit status 3",
        "{\"line\":5,\"job_id\":2,\"outcome\":\"ok\",\"data\":\"25\\n\"",
        "{\"line\":6,\"job_id\":2,", "{\"line\":7,\"job_id\":2,", "{\"line\":8,\"job_id\":2,",
        "{\"line\":9,\"job_id\":3,\"outcome\":\"ok\",\"data\":\"81\\n\""};
    char *line = out.out;
    for (size_t i = 0; i < 9; i++) {
        cr_assert_not_null (line);
        cr_assert_eq (strncmp (line, lines [i], strlen (lines [i])), 0, "line %zu: %s", i + 1,
                      line);
        line = strchr (line, '\n');
        line = line ? line + 1 : NULL;
    }
    drv_test_output_free (&out);

    //  The plugin, unordered, plain output.
    const char *echo [] = {"map", "echo", "--chunk-size", "3", "--unordered", NULL};
    out = drv_test_cli (&cluster, echo, "a\nb\nc\nd\n", 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_eq (strlen (out.out), 8, "%s", out.out);
    for (const char *c = "abcd"; *c; c++) {
        char want [3] = {*c, '\n', 0};
        cr_assert_neq (strstr (out.out, want), NULL, "%s", out.out);
    }
    drv_test_output_free (&out);

    //  --chunk-size goes with map, and wants a count.
    const char *bad [] = {"submit", "sq", "--data", "1", "--chunk-size", "2", NULL};
    out = drv_test_cli (&cluster, bad, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--chunk-size goes with map only"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *zero [] = {"map", "sq", "--chunk-size", "0", NULL};
    out = drv_test_cli (&cluster, zero, "1\n", 10000);
    cr_assert_eq (out.status, 2);
    drv_test_output_free (&out);
}

//  A chunk seen by its job id, as another client or an operator sees it:
//  wait prints one line per item as map does, status says it is a
//  chunk, and dead show lists its inputs one per line.
Test (chunks, a_chunk_by_job_id_shows_its_items)
{
    const char *functions [] = {"sq=exec:awk {if($1==\"x\")exit(3);print($1*$1)}", NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    const char *map [] = {"map", "sq", "--chunk-size", "3", NULL};
    drv_test_output_t out = drv_test_cli (&cluster, map, "1\nx\n3\n4\n5\n", 60000);
    cr_assert_eq (out.status, 1, "%s", out.err);
    cr_assert_str_eq (out.out, "1\n\n9\n16\n25\n");
    drv_test_output_free (&out);

    //  Job 2 is 4 and 5; job 1 is 1, x and 3, failed on x.
    const char *ok [] = {"wait", "2", NULL};
    out = drv_test_cli (&cluster, ok, NULL, 30000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "16\n25\n");
    drv_test_output_free (&out);
    const char *failed [] = {"wait", "1", NULL};
    out = drv_test_cli (&cluster, failed, NULL, 30000);
    cr_assert_eq (out.status, 1, "%s", out.err);
    cr_assert_str_eq (out.out, "1\n\n9\n");
    cr_assert_neq (strstr (out.err, "line 2 failed (error): exit status 3"), NULL, "%s",
                   out.err);
    cr_assert_neq (strstr (out.err, "1 of the 3 items of job 1 failed"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *json [] = {"wait", "1", "--json", NULL};
    out = drv_test_cli (&cluster, json, NULL, 30000);
    cr_assert_eq (out.status, 1, "%s", out.err);
    const char *first = "{\"line\":1,\"job_id\":1,\"outcome\":\"ok\",\"data\":\"1\\n\"";
    cr_assert_eq (strncmp (out.out, first, strlen (first)), 0, "%s", out.out);
    cr_assert_neq (strstr (out.out, "{\"line\":2,\"job_id\":1,\"outcome\":\"error\""), NULL,
                   "%s", out.out);
    cr_assert_neq (strstr (out.out, "{\"line\":3,\"job_id\":1,\"outcome\":\"ok\",\"data\":\"9\\n\""),
                   NULL, "%s", out.out);
    drv_test_output_free (&out);

    const char *status [] = {"status", "1", NULL};
    out = drv_test_cli (&cluster, status, NULL, 30000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "chunk: a map's chunk"), NULL, "%s", out.out);
    drv_test_output_free (&out);
    const char *show [] = {"dead", "show", "1", NULL};
    out = drv_test_cli (&cluster, show, NULL, 30000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "input (a map's chunk of 3 items, one per line):\n1\nx\n3\n"),
                   NULL, "%s", out.out);
    drv_test_output_free (&out);
}

Test (chunks, local_mode_map_with_chunk_size)
{
    const char *argv [] = {DRV_CLI_BIN, "map", "sq", "-j", "2", "--chunk-size", "2", "--function",
                           "sq=exec:awk {print($1*$1)}", NULL};
    drv_test_output_t out = drv_test_run (argv, "1\n2\n3\n4\n5\n", NULL, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "1\n4\n9\n16\n25\n");
    drv_test_output_free (&out);
}

Test (chunks, progress_line_counts_lines_not_chunks)
{
    //  script(1) gives drover a terminal for stderr, so it draws progress.
    if (access ("/usr/bin/script", X_OK) != 0)
        cr_skip_test ("no /usr/bin/script to give drover a terminal");
    char command [512];
    snprintf (command, sizeof command,
              "seq 10 | %s map sq -j 2 --chunk-size 4 --function 'sq=exec:awk {print($1*$1)}' "
              ">/dev/null",
              DRV_CLI_BIN);
    const char *argv [] = {"/usr/bin/script", "-qec", command, "/dev/null", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 60000);
    cr_assert_eq (out.status, 0, "%s%s", out.out, out.err);
    cr_assert_neq (strstr (out.out, "drover: 10/10 done, 0 failed,"), NULL, "%s", out.out);
    drv_test_output_free (&out);
}

Test (chunks, killed_worker_mid_map_loses_and_doubles_nothing)
{
    char plugin [512];
    snprintf (plugin, sizeof plugin, "nap=plugin:%s:nap", DROVER_TEST_PLUGIN);
    const char *functions [] = {plugin, NULL};
    const char *flags [] = {"--heartbeat", "200", NULL};
    pid_t victim = drv_test_cluster_worker_flags (&cluster, 2, functions, flags);
    drv_test_cluster_worker_flags (&cluster, 2, functions, flags);
    drover_client_t *sdk = drover_client_new (cluster.clients);
    cr_assert_not_null (sdk);
    //  40 items of 100 ms in chunks of 4: ten jobs, five rounds at least.
    enum { COUNT = 40 };
    char text [COUNT][16];
    const void *payloads [COUNT];
    size_t sizes [COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        sizes [i] = (size_t) snprintf (text [i], sizeof text [i], "100 %zu", i);
        payloads [i] = text [i];
    }
    drover_future_t *future = drover_client_map_async (sdk, "nap", COUNT, payloads, sizes, 4, NULL);
    cr_assert_not_null (future, "%s", drover_client_error (sdk));
    //  Kill one worker once some results are in and others still run.
    int64_t deadline = zclock_mono () + 60000;
    size_t in = 0;
    while (in == 0 && zclock_mono () < deadline) {
        drover_future_ready (future);
        in = 0;
        for (size_t i = 0; i < COUNT; i++)
            in += drover_future_result (future, i) != NULL;
        zclock_sleep (20);
    }
    cr_assert_gt (in, 0);
    cr_assert_lt (in, COUNT);
    drv_test_stop (victim, SIGKILL, 5000);
    cr_assert_eq (drover_future_get (future, 120000, NULL), 0, "%s", drover_client_error (sdk));
    cr_assert (drover_future_successful (future));
    for (size_t i = 0; i < COUNT; i++) {
        char want [20];
        snprintf (want, sizeof want, "100 %zu", i);
        cr_assert_str_eq ((char *) drover_future_result (future, i)->data, want);
    }
    drover_future_destroy (&future);
    drover_client_destroy (&sdk);
}

Test (chunks, durable_broker_keeps_chunks_across_a_restart)
{
    //  A durable broker of our own, on the cluster's endpoints.
    drv_test_stop (cluster.broker, SIGTERM, 5000);
    char data [96];
    snprintf (data, sizeof data, "%s/data", cluster.dir);
    const char *durable [] = {"--data", data, NULL};
    drv_test_cluster_restart_broker (&cluster, durable);
    const char *functions [] = {"sq=exec:awk {print($1*$1)}", NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    drover_client_t *sdk = drover_client_new (cluster.clients);
    drover_client_set_ack_timeout (sdk, 20000);
    //  Paused (a setting kept on disk too): the chunks wait in the store.
    cr_assert_eq (drover_client_pause (sdk, "sq", true, NULL), 0, "%s", drover_client_error (sdk));
    const void *payloads [9];
    size_t sizes [9];
    char *text = s_numbers (9, payloads, sizes);
    drover_future_t *future = drover_client_map_async (sdk, "sq", 9, payloads, sizes, 4, NULL);
    cr_assert_not_null (future, "%s", drover_client_error (sdk));
    drv_test_stop (cluster.broker, SIGKILL, 5000);
    drv_test_cluster_restart_broker (&cluster, durable);
    //  The client finds the new run (and resends what it has no result
    //  for; the broker knows those tags); the restored jobs are chunks.
    drover_client_t *admin = drover_client_new (cluster.clients);
    drover_client_set_ack_timeout (admin, 20000);
    cr_assert_eq (drover_client_pause (admin, "sq", false, NULL), 0, "%s",
                  drover_client_error (admin));
    cr_assert_eq (drover_future_get (future, 60000, NULL), 0, "%s", drover_client_error (sdk));
    for (size_t i = 0; i < 9; i++) {
        char square [16];
        snprintf (square, sizeof square, "%zu\n", i * i);
        const drover_result_t *r = drover_future_result (future, i);
        cr_assert_eq (r->outcome, DROVER_OUTCOME_OK, "%zu: %s", i, r->reason);
        cr_assert_str_eq ((char *) r->data, square);
    }
    drover_future_destroy (&future);
    drover_client_destroy (&admin);
    drover_client_destroy (&sdk);
    free (text);
}
