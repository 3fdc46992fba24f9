/*  test_progress - progress reports from running tasks to the clients
    that wait for them, through real daemons on free loopback ports: an
    in-process handler in pool processes, on threads and from a plugin,
    an exec: task writing on DROVER_PROGRESS_FD, a handler that reports
    as fast as it can (coalesced), and hand-made workers and clients that
    show what the broker keeps (Status), whom it tells (submitter,
    attached and waiting clients; never a client that did not ask), and
    that it refuses reports from a worker that does not hold the job.
*/

#include <criterion/criterion.h>
#include <czmq.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_testutil.h"

static drv_test_cluster_t cluster;

static void
setup (void)
{
    drv_test_cluster_start (&cluster, NULL);
}

static void
teardown (void)
{
    drv_test_cluster_stop (&cluster);
    drv_test_reap_all ();
}

TestSuite (progress, .init = setup, .fini = teardown, .timeout = 200);

//  What a progress callback saw.
#define S_SEEN_MAX 1000
typedef struct {
    uint64_t job_id [S_SEEN_MAX];
    uint64_t done [S_SEEN_MAX];
    uint64_t total [S_SEEN_MAX];
    char partial [S_SEEN_MAX][16];   //  the first bytes
    size_t size [S_SEEN_MAX];
    size_t count;                    //  reports, also past S_SEEN_MAX
} s_seen_t;

static void
s_on_progress (uint64_t job_id, uint64_t done, uint64_t total, const uint8_t *partial,
               size_t size, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    cr_assert_eq (partial [size], 0, "partial output is followed by a NUL");
    if (seen->count < S_SEEN_MAX) {
        size_t i = seen->count;
        seen->job_id [i] = job_id;
        seen->done [i] = done;
        seen->total [i] = total;
        snprintf (seen->partial [i], sizeof seen->partial [i], "%.*s", (int) size, partial);
        seen->size [i] = size;
    }
    seen->count++;
}

//  Every report is for job_id, of steps steps, rising, with "step N".
static void
s_assert_rising (const s_seen_t *seen, uint64_t job_id, uint64_t steps, bool exact_partial)
{
    for (size_t i = 0; i < seen->count && i < S_SEEN_MAX; i++) {
        cr_assert_eq (seen->job_id [i], job_id);
        cr_assert_eq (seen->total [i], steps);
        cr_assert (seen->done [i] >= 1 && seen->done [i] <= steps);
        if (i)
            cr_assert_gt (seen->done [i], seen->done [i - 1], "reports come in order");
        if (exact_partial) {
            char expected [16];
            snprintf (expected, sizeof expected, "step %" PRIu64, seen->done [i]);
            cr_assert_str_eq (seen->partial [i], expected);
        }
        cr_assert_leq (seen->size [i], DROVER_PROGRESS_PARTIAL_MAX);
    }
}

//  Submit "progress" with "5 300" (five steps, 300 ms apart) and check
//  what the callback saw: rising reports for this job, then the result.
static void
s_run_five_steps (const char *function)
{
    drover_client_t *client = drover_client_new (cluster.clients);
    cr_assert (client);
    s_seen_t *seen = (s_seen_t *) calloc (1, sizeof *seen);
    drover_client_set_progress (client, s_on_progress, seen);
    uint64_t job_id = 0;
    cr_assert_eq (drover_client_submit (client, function, "5 300", 5, NULL, &job_id), 0, "%s",
                  drover_client_error (client));
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 120000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "%s", result->reason);
    cr_assert_str_eq ((char *) result->data, "done 5\n");
    //  The handler runs 1.5 s and its first report goes 200 ms after it
    //  is made: at least that one arrives before the result.
    cr_assert_geq (seen->count, 1, "no progress report before the result");
    s_assert_rising (seen, job_id, 5, true);
    size_t count = seen->count;
    cr_assert_eq (drover_client_poll (client, 200), 0);
    cr_assert_eq (seen->count, count, "no report after the result");
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    free (seen);
}

Test (progress, pool_handler_reports_rise_then_the_result_comes)
{
    const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "2", NULL};
    cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    s_run_five_steps ("progress");
}

Test (progress, threads_mode_handler_reports_too)
{
    const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "2", "0",
                           "threads", NULL};
    cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    s_run_five_steps ("progress");
}

Test (progress, plugin_handler_reports_too)
{
    const char *functions [] = {"progress=plugin:" DROVER_TEST_PLUGIN ":progress", NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    s_run_five_steps ("progress");
}

Test (progress, exec_task_reports_through_its_progress_fd)
{
    const char *functions [] = {"progress=exec:" DROVER_BIN_DIR "/drover-test-task progress",
                                NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    drover_client_t *client = drover_client_new (cluster.clients);
    s_seen_t *seen = (s_seen_t *) calloc (1, sizeof *seen);
    drover_client_set_progress (client, s_on_progress, seen);
    uint64_t job_id = 0;
    cr_assert_eq (drover_client_submit (client, "progress", "5 300", 5, NULL, &job_id), 0);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 120000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "%s", result->reason);
    cr_assert_str_eq ((char *) result->data, "done 5\n");
    cr_assert_geq (seen->count, 1, "no progress report before the result");
    //  Step 3 wrote 70,000 bytes of partial output: cut, not refused. The
    //  line that does not parse (before step 2) is not a report.
    s_assert_rising (seen, job_id, 5, false);
    for (size_t i = 0; i < seen->count; i++) {
        if (seen->done [i] == 3)
            cr_assert_eq (seen->size [i], DROVER_PROGRESS_PARTIAL_MAX);
        else {
            char expected [16];
            snprintf (expected, sizeof expected, "step %" PRIu64, seen->done [i]);
            cr_assert_str_eq (seen->partial [i], expected);
        }
    }
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    free (seen);
}

Test (progress, the_last_numbers_of_a_burst_get_out_while_the_task_runs_on)
{
    const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "1", NULL};
    cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    drover_client_t *client = drover_client_new (cluster.clients);
    s_seen_t *seen = (s_seen_t *) calloc (1, sizeof *seen);
    drover_client_set_progress (client, s_on_progress, seen);
    //  Fifty reports at once, then 1.5 s of silence before the result:
    //  the last numbers are not lost to the coalescing.
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "progress", "50 0 1500", 9, NULL, 120000, &result),
                  0, "%s", drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "done 50\n");
    cr_assert_geq (seen->count, 1);
    s_assert_rising (seen, result->job_id, 50, false);
    size_t last = (seen->count < S_SEEN_MAX ? seen->count : S_SEEN_MAX) - 1;
    cr_assert_eq (seen->done [last], 50, "the last report seen says %" PRIu64, seen->done [last]);
    //  Its partial output is that of the last report that carried its own.
    cr_assert_eq (strncmp (seen->partial [last], "step ", 5), 0, "%s", seen->partial [last]);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    free (seen);
}

Test (progress, a_task_reporting_without_pause_is_coalesced)
{
    const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "1", NULL};
    cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    drover_client_t *client = drover_client_new (cluster.clients);
    s_seen_t *seen = (s_seen_t *) calloc (1, sizeof *seen);
    drover_client_set_progress (client, s_on_progress, seen);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "flood", "200000", 6, NULL, 120000, &result), 0,
                  "%s", drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "flooded 200000\n");
    //  200,000 reports made; a worker sends one per task per 200 ms, so
    //  1,000 would take the handler 200 s, longer than this test may run.
    cr_assert_lt (seen->count, 1000, "%zu reports of 200000 came through", seen->count);
    for (size_t i = 1; i < seen->count && i < S_SEEN_MAX; i++)
        cr_assert_gt (seen->done [i], seen->done [i - 1]);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
    free (seen);
}

//  ---------------------------------------------------------------------
//  Hand-made peers: what the broker does with each report.

//  A DEALER on endpoint that waits at most 10 s for a reply.
static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    cr_assert (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, 10000);
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    return dealer;
}

static void
s_send (zsock_t *dealer, drv_msg_t *msg)
{
    static uint64_t seq = 0;
    msg->seq = ++seq;
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert (frame);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
}

//  The next message, skipping heartbeats; NULL after 10 s of nothing.
static drv_msg_t *
s_next (zsock_t *dealer)
{
    drv_limits_t limits = drv_limits_from_broker ();
    while (true) {
        zframe_t *frame = zframe_recv (dealer);
        if (!frame)
            return NULL;
        drv_msg_t *msg = NULL;
        drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits, &msg, NULL, NULL, 0);
        zframe_destroy (&frame);
        cr_assert (msg, "the broker sent what does not decode");
        if (msg->type != DRV_MSG_HEARTBEAT)
            return msg;
        drv_msg_destroy (&msg);
    }
}

//  A worker that offers function with one slot.
static zsock_t *
s_raw_worker (const char *function, const char *name)
{
    zsock_t *worker = s_dealer (cluster.workers);
    const char *functions [] = {function};
    drv_msg_t ready = {.type = DRV_MSG_READY, .functions = functions, .nfunctions = 1,
                       .slots = 1, .name = name};
    s_send (worker, &ready);
    return worker;
}

//  Send one progress report for job_id.
static void
s_report (zsock_t *worker, uint64_t job_id, uint64_t done, uint64_t total, const char *partial,
          size_t size)
{
    drv_progress_t report = {.job_id = job_id, .done = done, .total = total,
                             .partial = (const uint8_t *) partial, .size = size};
    drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .progress = &report, .nprogress = 1};
    s_send (worker, &msg);
}

//  Expect an Error with code from the broker.
static void
s_expect_error (zsock_t *dealer, drover_error_t code)
{
    drv_msg_t *msg = s_next (dealer);
    cr_assert (msg, "no answer from the broker");
    cr_assert_eq (msg->type, DRV_MSG_ERROR, "got message type %d", msg->type);
    cr_assert_eq (msg->code, code, "%s", msg->text);
    drv_msg_destroy (&msg);
}

//  Wait for the Dispatch of job_id to worker.
static void
s_expect_dispatch (zsock_t *worker, uint64_t job_id)
{
    drv_msg_t *msg = s_next (worker);
    cr_assert (msg, "no dispatch");
    cr_assert_eq (msg->type, DRV_MSG_DISPATCH);
    cr_assert_eq (msg->ntasks, 1);
    cr_assert_eq (msg->tasks [0].id, job_id);
    drv_msg_destroy (&msg);
}

Test (progress, status_shows_the_last_report_and_a_worker_without_the_job_is_refused)
{
    drover_client_t *client = drover_client_new (cluster.clients);
    uint64_t job_id = 0;
    cr_assert_eq (drover_client_submit (client, "held", "x", 1, NULL, &job_id), 0);
    zsock_t *holder = s_raw_worker ("held", "holder");
    s_expect_dispatch (holder, job_id);

    //  A worker that does not hold the job, a job that does not exist,
    //  partial output over the limit: refused, the broker stays up.
    zsock_t *liar = s_raw_worker ("other", "liar");
    s_report (liar, job_id, 1, 2, "lie", 3);
    s_expect_error (liar, DROVER_ERR_INVALID);
    s_report (holder, 999999, 1, 2, "none", 4);
    s_expect_error (holder, DROVER_ERR_INVALID);
    char *big = (char *) calloc (1, DROVER_PROGRESS_PARTIAL_MAX + 1);
    memset (big, 'b', DROVER_PROGRESS_PARTIAL_MAX + 1);
    s_report (holder, job_id, 1, 2, big, DROVER_PROGRESS_PARTIAL_MAX + 1);
    s_expect_error (holder, DROVER_ERR_TOO_LARGE);
    free (big);
    drover_status_t status;
    cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_RUNNING);
    cr_assert_not (status.has_progress, "a refused report is not kept");

    //  The holder's report is kept for Status; every client may ask.
    s_report (holder, job_id, 1, 2, "half way", 8);
    for (int i = 0; i < 200 && !status.has_progress; i++) {
        zclock_sleep (50);
        cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    }
    cr_assert (status.has_progress);
    cr_assert_eq (status.progress_done, 1);
    cr_assert_eq (status.progress_total, 2);
    cr_assert_str_eq (status.progress_partial, "half way");
    cr_assert_eq (status.progress_size, 8);
    char id [32];
    snprintf (id, sizeof id, "%" PRIu64, job_id);
    const char *args [] = {"status", id, NULL};
    drv_test_output_t out = drv_test_cli (&cluster, args, NULL, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "progress: 1/2 (50%)\n"), NULL, "%s", out.out);
    cr_assert_neq (strstr (out.out, "partial output: half way\n"), NULL, "%s", out.out);
    drv_test_output_free (&out);
    const char *json [] = {"status", id, "--json", NULL};
    out = drv_test_cli (&cluster, json, NULL, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "\"progress\":{\"done\":1,\"total\":2,\"partial\":\"half way\","
                                    "\"partial_size\":8}"),
                   NULL, "%s", out.out);
    drv_test_output_free (&out);

    //  The result supersedes it.
    drv_result_t done = {.job_id = job_id, .outcome = DROVER_OUTCOME_OK,
                         .data = (const uint8_t *) "ok", .size = 2, .reason = ""};
    drv_msg_t msg = {.type = DRV_MSG_DONE, .results = &done, .nresults = 1};
    s_send (holder, &msg);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 60000, &result), 0);
    cr_assert_str_eq ((char *) result->data, "ok");
    drover_result_destroy (&result);
    cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_SUCCEEDED);
    cr_assert_not (status.has_progress);
    zsock_destroy (&liar);
    zsock_destroy (&holder);
    drover_client_destroy (&client);
}

Test (progress, reports_reach_the_submitter_attached_and_waiting_clients_only)
{
    drover_options_t options = {.unique = "one-report-run"};
    s_seen_t *seen [3];
    drover_client_t *clients [3];
    uint64_t ids [3] = {0};
    for (int i = 0; i < 3; i++) {
        seen [i] = (s_seen_t *) calloc (1, sizeof (s_seen_t));
        clients [i] = drover_client_new (cluster.clients);
        drover_client_set_progress (clients [i], s_on_progress, seen [i]);
    }
    //  The submitter, then one attached by the unique key.
    cr_assert_eq (drover_client_submit (clients [0], "held", "x", 1, &options, &ids [0]), 0);
    cr_assert_eq (drover_client_submit (clients [1], "held", "x", 1, &options, &ids [1]), 0);
    cr_assert_eq (ids [1], ids [0], "attached to the same job");
    uint64_t job_id = ids [0];
    //  A client that waits for it by id: its Wait is in once its Status
    //  (sent after it) is answered.
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (clients [2], job_id, 1, &result), -1);
    drover_status_t status;
    cr_assert_eq (drover_client_status (clients [2], job_id, &status), 0);
    //  A client that did not ask (a v1 client knows no Progress body):
    //  attached too, by hand, without the flag.
    zsock_t *plain = s_dealer (cluster.clients);
    drv_task_t task = {.id = 1, .payload = (const uint8_t *) "x", .size = 1};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .function = "held", .unique = options.unique,
                        .tasks = &task, .ntasks = 1};
    s_send (plain, &submit);
    drv_msg_t *ack = s_next (plain);
    cr_assert (ack);
    cr_assert_eq (ack->type, DRV_MSG_SUBMIT_ACK);
    cr_assert_eq (ack->job_ids [0], job_id);
    drv_msg_destroy (&ack);

    zsock_t *holder = s_raw_worker ("held", "holder");
    s_expect_dispatch (holder, job_id);
    s_report (holder, job_id, 1, 3, "step 1", 6);
    s_report (holder, job_id, 2, 3, "step 2", 6);
    drv_result_t done = {.job_id = job_id, .outcome = DROVER_OUTCOME_OK,
                         .data = (const uint8_t *) "ok", .size = 2, .reason = ""};
    drv_msg_t msg = {.type = DRV_MSG_DONE, .results = &done, .nresults = 1};
    s_send (holder, &msg);

    //  Each asking client saw both reports (sent before the result on
    //  the same connection), then the result.
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (drover_client_wait (clients [i], job_id, 60000, &result), 0, "%s",
                      drover_client_error (clients [i]));
        cr_assert_str_eq ((char *) result->data, "ok");
        drover_result_destroy (&result);
        cr_assert_eq (seen [i]->count, 2, "client %d saw %zu reports", i, seen [i]->count);
        s_assert_rising (seen [i], job_id, 3, true);
    }
    //  The one that did not ask gets its result and nothing else.
    drv_msg_t *results = s_next (plain);
    cr_assert (results);
    cr_assert_eq (results->type, DRV_MSG_RESULTS, "a client that did not ask got type %d",
                  results->type);
    cr_assert_eq (results->results [0].tag, 1);
    drv_msg_destroy (&results);
    zsock_destroy (&plain);
    zsock_destroy (&holder);
    for (int i = 0; i < 3; i++) {
        drover_client_destroy (&clients [i]);
        free (seen [i]);
    }
}

Test (progress, a_worker_stops_reporting_to_a_broker_that_does_not_know_progress)
{
    //  An older broker: it answers Progress, a body it does not know,
    //  with ERR_MALFORMED, echoing the seq.
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", drv_test_free_port ());
    zsock_t *broker = zsock_new (ZMQ_ROUTER);
    cr_assert (broker);
    zsock_set_linger (broker, 0);
    zsock_set_rcvtimeo (broker, 10000);
    cr_assert_neq (zsock_bind (broker, "%s", endpoint), -1);
    const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", endpoint, "1", NULL};
    cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    drv_limits_t limits = drv_limits_from_broker ();
    size_t progress = 0;
    bool dispatched = false, finished = false;
    while (!finished) {
        zmsg_t *in = zmsg_recv (broker);
        cr_assert (in, "the worker went silent");
        zframe_t *identity = zmsg_pop (in);
        zframe_t *body = zmsg_pop (in);
        drv_msg_t *msg = NULL;
        drv_codec_decode (zframe_data (body), zframe_size (body), &limits, &msg, NULL, NULL, 0);
        cr_assert (msg);
        drv_msg_t reply = {.seq = msg->seq};
        drv_task_t task = {.id = 7, .function = "progress", .payload = (const uint8_t *) "10 300",
                           .size = 6, .attempt = 1};
        if (msg->type == DRV_MSG_READY && !dispatched) {
            reply = (drv_msg_t) {.type = DRV_MSG_DISPATCH, .tasks = &task, .ntasks = 1};
            dispatched = true;
        }
        else
        if (msg->type == DRV_MSG_HEARTBEAT)
            reply.type = DRV_MSG_HEARTBEAT;
        else
        if (msg->type == DRV_MSG_PROGRESS) {
            progress++;
            reply = (drv_msg_t) {.type = DRV_MSG_ERROR, .seq = msg->seq,
                                 .code = DROVER_ERR_MALFORMED,
                                 .text = "envelope has no body this broker knows (field 23)"};
        }
        else
        if (msg->type == DRV_MSG_DONE) {
            cr_assert_eq (msg->results [0].job_id, 7);
            cr_assert_eq (msg->results [0].outcome, DROVER_OUTCOME_OK);
            finished = true;
        }
        if (reply.type) {
            zmsg_t *out = zmsg_new ();
            zmsg_append (out, &identity);
            zframe_t *frame = drv_codec_encode (&reply);
            zmsg_append (out, &frame);
            cr_assert_eq (zmsg_send (&out, broker), 0);
        }
        drv_msg_destroy (&msg);
        zframe_destroy (&identity);
        zframe_destroy (&body);
        zmsg_destroy (&in);
    }
    //  Ten reports 300 ms apart: one refused, and perhaps one more that
    //  was on its way, then no more.
    cr_assert_geq (progress, 1);
    cr_assert_leq (progress, 2, "%zu Progress messages after a refusal", progress);
    zsock_destroy (&broker);
}
