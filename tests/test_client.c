/*  test_client - the libdrover SDK end to end inside one process: an
    embedded broker (drover_broker_*), a worker with in-process handlers
    (drover_worker_*), and the client calls (drover_client_*, drover_imap_*).
    The suite doubles as the SDK's usage example.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#include "drover.h"
#include "drv_store.h"
#include "drv_testutil.h"

//  ---------------------------------------------------------------------
//  Handlers

static int
s_fail (drover_task_t *task, void *arg)
{
    (void) arg;
    drover_task_fail (task, "refused job %" PRIu64, drover_task_job_id (task));
    return -1;
}

static int
s_fail_long (drover_task_t *task, void *arg)
{
    (void) arg;
    drover_task_fail (task, "%10000d", 7);
    return -1;
}

static int
s_slow (drover_task_t *task, void *arg)
{
    (void) arg;
    zclock_sleep (300);
    return drover_task_reply (task, "slow", 4);
}

//  ---------------------------------------------------------------------
//  Fixture: a broker on free ports and one worker with two slots.

static drover_broker_t *broker;
static drover_worker_t *worker;
static drover_client_t *client;

//  Heartbeats here tolerate 10 s of silence, not 3: these tests move up
//  to 72 MiB through one process, and under AddressSanitizer on a busy
//  machine a worker decoding a 64 MiB Dispatch was taken for dead (and
//  the job failed as lost). Nothing in this file tests liveness.
#define S_HEARTBEAT_MS 1000
#define S_LIVENESS 10

static drover_worker_t *
s_worker_new (unsigned slots)
{
    drover_worker_t *w = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_not_null (w);
    cr_assert_eq (drover_worker_set_slots (w, slots), 0);
    drover_worker_set_heartbeat (w, S_HEARTBEAT_MS, S_LIVENESS);
    cr_assert_eq (drover_worker_add_handler (w, "square", drv_test_square, NULL), 0);
    cr_assert_eq (drover_worker_add_handler (w, "fail", s_fail, NULL), 0);
    cr_assert_eq (drover_worker_add_handler (w, "slow", s_slow, NULL), 0);
    cr_assert_eq (drover_worker_add_handler (w, "echo", drv_test_echo, NULL), 0);
    cr_assert_eq (drover_worker_add_handler (w, "fail_long", s_fail_long, NULL), 0);
    cr_assert_eq (drover_worker_start (w), 0, "%s", drover_worker_error (w));
    return w;
}

static void
s_start_broker (size_t max_queue, size_t max_payload)
{
    broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_not_null (broker);
    drover_broker_set_heartbeat (broker, S_HEARTBEAT_MS, S_LIVENESS);
    if (max_queue)
        drover_broker_set_max_queue (broker, max_queue);
    if (max_payload)
        drover_broker_set_max_payload (broker, max_payload);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_not_null (client);
    drover_client_set_ack_timeout (client, 10000);
}

static void
setup (void)
{
    zsys_init ();
    drover_set_logstream (NULL);
    s_start_broker (0, 0);
    worker = s_worker_new (2);
}

static void
teardown (void)
{
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}

TestSuite (client, .init = setup, .fini = teardown, .timeout = 60);

//  ---------------------------------------------------------------------

Test (client, broker_binds_ephemeral_ports)
{
    cr_assert_neq (strstr (drover_broker_clients_endpoint (broker), "tcp://127.0.0.1:"), NULL);
    cr_assert_eq (strchr (drover_broker_clients_endpoint (broker), '*'), NULL);
    drover_broker_t *second = drover_broker_new (drover_broker_clients_endpoint (broker),
                                                 "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_start (second), -1);
    cr_assert_neq (strstr (drover_broker_error (second), "cannot bind"), NULL, "%s",
                   drover_broker_error (second));
    drover_broker_destroy (&second);
    cr_assert_null (second);
}

Test (client, broker_listens_beyond_loopback_only_when_insecure)
{
    drover_broker_t *open = drover_broker_new ("tcp://0.0.0.0:*", "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_start (open), -1);
    cr_assert_neq (strstr (drover_broker_error (open), "refusing to listen on tcp://0.0.0.0:*"),
                   NULL, "%s", drover_broker_error (open));
    cr_assert_neq (strstr (drover_broker_error (open), "--insecure"), NULL);
    drover_broker_set_insecure (open, true);
    cr_assert_eq (drover_broker_start (open), 0, "%s", drover_broker_error (open));
    drover_broker_destroy (&open);
    //  Loopback in all its spellings, and ipc, are fine.
    char ipc [64];
    snprintf (ipc, sizeof ipc, "ipc:///tmp/drover-test-%d.ipc", (int) getpid ());
    drover_broker_t *local = drover_broker_new ("tcp://[::1]:*", ipc);
    cr_assert_eq (drover_broker_start (local), 0, "%s", drover_broker_error (local));
    drover_broker_destroy (&local);
    unlink (ipc + 6);
}

//  The clients a broker counts as connected (drover stats): each
//  connection on its clients endpoint, over TCP and over ipc:// (a file
//  or the abstract namespace), and one fewer once a client has gone.
static uint32_t
s_connected (drover_client_t *asker)
{
    drover_stats_t figures;
    cr_assert_eq (drover_client_stats (asker, &figures), 0, "%s", drover_client_error (asker));
    return figures.clients;
}

//  What asker is told once the count is want, or after 5 s.
static uint32_t
s_await_connected (drover_client_t *asker, uint32_t want)
{
    uint32_t connected = s_connected (asker);
    for (int tries = 0; tries < 100 && connected != want; tries++) {
        zclock_sleep (50);
        connected = s_connected (asker);
    }
    return connected;
}

static void
s_count_clients_on (const char *clients_endpoint)
{
    drover_broker_t *local = drover_broker_new (clients_endpoint, "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_start (local), 0, "%s", drover_broker_error (local));
    drover_client_t *first = drover_client_new (drover_broker_clients_endpoint (local));
    drover_client_t *second = drover_client_new (drover_broker_clients_endpoint (local));
    drover_client_t *third = drover_client_new (drover_broker_clients_endpoint (local));
    cr_assert (first && second && third);
    //  A client connects when it is made, before it says anything.
    cr_assert_eq (s_await_connected (first, 3), 3, "%s", clients_endpoint);
    drover_client_destroy (&second);
    drover_client_destroy (&third);
    cr_assert_eq (s_await_connected (first, 1), 1, "the clients gone are not counted (%s)",
                  clients_endpoint);
    drover_client_destroy (&first);
    drover_broker_destroy (&local);
}

Test (client, connected_clients_are_counted_on_tcp_and_ipc)
{
    cr_assert_eq (s_connected (client), 1, "the fixture's client, not its worker");
    s_count_clients_on ("tcp://127.0.0.1:*");
    char ipc [64];
    snprintf (ipc, sizeof ipc, "ipc:///tmp/drover-test-count-%d.ipc", (int) getpid ());
    s_count_clients_on (ipc);
    unlink (ipc + 6);
    snprintf (ipc, sizeof ipc, "ipc://@drover-test-count-%d", (int) getpid ());
    s_count_clients_on (ipc);
}

Test (client, submit_then_wait)
{
    uint64_t job_id = 0;
    cr_assert_eq (drover_client_submit (client, "square", "12", 2, NULL, &job_id), 0);
    cr_assert_gt (job_id, 0);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) result->data, "144");
    cr_assert_eq (result->job_id, job_id);
    cr_assert_eq (result->attempts, 1);
    drover_result_destroy (&result);
    cr_assert_null (result);
    //  Collected here already: a second wait asks the broker, which keeps
    //  the result for --keep-results.
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "144");
    cr_assert_eq (result->job_id, job_id);
    drover_result_destroy (&result);
    //  A job the broker never had is refused.
    cr_assert_eq (drover_client_wait (client, job_id + 1000, 10000, &result), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_UNKNOWN_JOB);
    cr_assert_null (result);
}

Test (client, apply_reports_handler_failure)
{
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "fail", "x", 1, NULL, 10000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_ERROR);
    cr_assert_neq (strstr (result->reason, "refused job"), NULL, "%s", result->reason);
    cr_assert_eq (result->size, 0);
    drover_result_destroy (&result);
}

Test (client, submit_many_gives_distinct_ids)
{
    const void *payloads [3] = {"1", "2", "3"};
    size_t sizes [3] = {1, 1, 1};
    uint64_t ids [3];
    cr_assert_eq (drover_client_submit_many (client, "square", 3, payloads, sizes, NULL, ids), 0);
    cr_assert (ids [0] && ids [1] && ids [2]);
    cr_assert (ids [0] != ids [1] && ids [1] != ids [2] && ids [0] != ids [2]);
    const char *expected [3] = {"1", "4", "9"};
    //  Collected in reverse order: results wait until taken.
    for (int i = 2; i >= 0; i--) {
        drover_result_t *result;
        cr_assert_eq (drover_client_wait (client, ids [i], 10000, &result), 0);
        cr_assert_str_eq ((char *) result->data, expected [i]);
        drover_result_destroy (&result);
    }
}

typedef struct {
    int ok;
    int failed;
    long sum;
} s_tally_t;

static void
s_on_ok (const drover_result_t *result, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    tally->ok++;
    tally->sum += strtol ((const char *) result->data, NULL, 10);
}

static void
s_on_error (const drover_result_t *result, void *arg)
{
    s_tally_t *tally = (s_tally_t *) arg;
    cr_assert_neq (result->outcome, DROVER_OUTCOME_OK);
    tally->failed++;
}

Test (client, apply_async_runs_callbacks_in_join)
{
    s_tally_t tally = {0};
    char text [8];
    for (int i = 1; i <= 5; i++) {
        int length = snprintf (text, sizeof text, "%d", i);
        cr_assert_eq (drover_client_apply_async (client, "square", text, (size_t) length, NULL,
                                                 s_on_ok, s_on_error, &tally, NULL),
                      0);
    }
    cr_assert_eq (drover_client_apply_async (client, "fail", "x", 1, NULL, s_on_ok, s_on_error,
                                             &tally, NULL),
                  0);
    cr_assert_eq (tally.ok + tally.failed, 0, "callbacks run only in poll/join");
    cr_assert_eq (drover_client_join (client, 10000), 6);
    cr_assert_eq (tally.ok, 5);
    cr_assert_eq (tally.failed, 1);
    cr_assert_eq (tally.sum, 1 + 4 + 9 + 16 + 25);
    cr_assert_eq (drover_client_join (client, 0), 0, "nothing left pending");
}

Test (client, map_returns_results_in_order)
{
    enum { COUNT = 2000 };
    char (*texts) [8] = malloc (COUNT * sizeof *texts);
    const void **payloads = malloc (COUNT * sizeof *payloads);
    size_t *sizes = malloc (COUNT * sizeof *sizes);
    drover_result_t **results = malloc (COUNT * sizeof *results);
    for (int i = 0; i < COUNT; i++) {
        sizes [i] = (size_t) snprintf (texts [i], 8, "%d", i + 1);
        payloads [i] = texts [i];
    }
    cr_assert_eq (drover_client_map (client, "square", COUNT, payloads, sizes, NULL, 60000,
                                     results),
                  0, "%s", drover_client_error (client));
    for (int i = 0; i < COUNT; i++) {
        cr_assert_eq (results [i]->outcome, DROVER_OUTCOME_OK);
        cr_assert_eq (strtol ((char *) results [i]->data, NULL, 10), (long) (i + 1) * (i + 1));
        drover_result_destroy (&results [i]);
    }
    free (texts);
    free (payloads);
    free (sizes);
    free (results);
}

Test (client, imap_streams_in_push_order)
{
    drover_imap_t *imap = drover_imap_new (client, "square", NULL);
    cr_assert_not_null (imap);
    char text [8];
    for (int i = 1; i <= 10; i++) {
        int length = snprintf (text, sizeof text, "%d", i);
        cr_assert_eq (drover_imap_push (imap, text, (size_t) length), 0);
    }
    cr_assert_eq (drover_imap_pending (imap), 10);
    drover_result_t *result;
    for (int i = 1; i <= 10; i++) {
        cr_assert_eq (drover_imap_next (imap, 10000, &result), 0);
        cr_assert_eq (strtol ((char *) result->data, NULL, 10), i * i);
        drover_result_destroy (&result);
    }
    cr_assert_eq (drover_imap_pending (imap), 0);
    cr_assert_eq (drover_imap_next (imap, 10000, &result), 1, "every result taken");
    drover_imap_destroy (&imap);
    cr_assert_null (imap);
}

//  imap_unordered: every result once, each with the push it belongs to;
//  the first task is slow, so it cannot come first.
Test (client, imap_unordered_takes_results_as_they_come)
{
    drover_imap_t *imap = drover_imap_new (client, "square", NULL);
    cr_assert_not_null (imap);
    cr_assert_eq (drover_imap_set_unordered (imap, true), 0);
    enum { COUNT = 300 };
    char text [8];
    for (int i = 0; i < COUNT; i++) {
        int length = snprintf (text, sizeof text, "%d", i);
        cr_assert_eq (drover_imap_push (imap, text, (size_t) length), 0);
    }
    cr_assert_eq (drover_imap_set_unordered (imap, false), -1, "too late to change");
    cr_assert_eq (drover_imap_pending (imap), COUNT);
    bool seen [COUNT] = {false};
    drover_result_t *result;
    size_t index;
    for (int taken = 0; taken < COUNT; taken++) {
        cr_assert_eq (drover_imap_next_index (imap, 10000, &result, &index), 0);
        cr_assert_lt (index, COUNT);
        cr_assert_not (seen [index], "index %zu twice", index);
        seen [index] = true;
        cr_assert_eq (strtol ((char *) result->data, NULL, 10), (long) (index * index));
        drover_result_destroy (&result);
    }
    cr_assert_eq (drover_imap_pending (imap), 0);
    cr_assert_eq (drover_imap_next (imap, 10000, &result), 1, "every result taken");
    drover_imap_destroy (&imap);

    //  Two unordered maps on one client keep their results apart.
    imap = drover_imap_new (client, "slow", NULL);
    cr_assert_eq (drover_imap_set_unordered (imap, true), 0);
    cr_assert_eq (drover_imap_push (imap, "x", 1), 0);
    drover_imap_t *fast = drover_imap_new (client, "square", NULL);
    cr_assert_eq (drover_imap_set_unordered (fast, true), 0);
    cr_assert_eq (drover_imap_push (fast, "3", 1), 0);
    cr_assert_eq (drover_imap_next_index (fast, 10000, &result, &index), 0);
    cr_assert_eq (index, 0);
    cr_assert_str_eq ((char *) result->data, "9");
    drover_result_destroy (&result);
    cr_assert_eq (drover_imap_next_index (imap, 10000, &result, &index), 0);
    cr_assert_str_eq ((char *) result->data, "slow");
    drover_result_destroy (&result);
    drover_imap_destroy (&fast);
    drover_imap_destroy (&imap);
}

Test (client, status_of_finished_and_unknown_jobs)
{
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "square", "3", 1, NULL, &job_id), 0);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0);
    drover_result_destroy (&result);
    drover_status_t status;
    cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_SUCCEEDED);
    cr_assert_str_eq (status.function, "square");
    cr_assert_eq (status.attempts, 1);
    cr_assert_eq (drover_client_status (client, 999999, &status), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_UNKNOWN_JOB);
}

static void
s_record_notice (const char *text, void *arg)
{
    snprintf ((char *) arg, 256, "%s", text);
}

Test (client, job_for_unoffered_function_waits_and_notices)
{
    char notice [256] = "";
    drover_client_set_notice (client, s_record_notice, notice);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "resize", "x", 1, NULL, &job_id), 0);
    cr_assert_str_eq (notice, "no worker offers 'resize' yet; waiting");
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 200, &result), -1);
    cr_assert_eq (errno, ETIMEDOUT);
    drover_status_t status;
    cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_QUEUED);
}

//  drv_test_broker_fn: this file's heartbeats, payloads of 8 bytes.
static void
s_small_payloads (drover_broker_t *self, void *arg)
{
    (void) arg;
    drover_broker_set_heartbeat (self, S_HEARTBEAT_MS, S_LIVENESS);
    drover_broker_set_max_payload (self, 8);
}

//  Put a broker of the test's own and a client of it in place of the
//  fixture's, on ports outside the range that "*" binds from (no broker
//  of a test running beside this one takes them while this one is
//  down, restarting); its endpoints go to clients and workers (64 bytes
//  each).
static void
s_own_broker (char *clients, char *workers)
{
    drover_client_destroy (&client);
    drover_broker_destroy (&broker);
    snprintf (clients, 64, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (workers, 64, "tcp://127.0.0.1:%d", drv_test_free_port ());
    broker = drover_broker_new (clients, workers);
    cr_assert_not_null (broker);
    drover_broker_set_heartbeat (broker, S_HEARTBEAT_MS, S_LIVENESS);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    client = drover_client_new (clients);
    cr_assert_not_null (client);
    drover_client_set_ack_timeout (client, 10000);
}

//  A task the client sends again after a broker restart, and the new
//  broker refuses (it takes smaller payloads), gets a refused result
//  under its job id instead of being waited on for ever.
Test (client, task_refused_when_sent_again_after_a_restart_gets_a_result)
{
    char clients [64], workers [64];
    s_own_broker (clients, workers);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "nobody", "0123456789abcdef", 16, NULL, &job_id),
                  0, "%s", drover_client_error (client));
    //  The new broker takes 8-byte payloads at most.
    drover_broker_destroy (&broker);
    char err [512];
    broker = drv_test_broker_rebind (clients, workers, s_small_payloads, NULL, err, sizeof err);
    cr_assert_not_null (broker, "%s", err);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, job_id, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_REFUSED);
    cr_assert_eq (result->job_id, job_id);
    cr_assert_neq (strstr (result->reason, "not queued: the broker refused it: payload too large"),
                   NULL, "%s", result->reason);
    drover_result_destroy (&result);
}

Test (client, a_job_with_a_new_id_after_a_restart_is_found_by_its_first)
{
    //  No worker: the job waits in the broker.
    char clients [64], workers [64];
    s_own_broker (clients, workers);
    uint64_t first_id;
    cr_assert_eq (drover_client_submit (client, "echo", "hello", 5, NULL, &first_id), 0, "%s",
                  drover_client_error (client));
    //  The new broker (nothing kept) counts ids from 1 again; another
    //  client's job takes the first, so ours, sent again, gets another.
    drover_broker_destroy (&broker);
    char err [512];
    broker = drv_test_broker_rebind (clients, workers, NULL, NULL, err, sizeof err);
    cr_assert_not_null (broker, "%s", err);
    drover_client_t *other = drover_client_new (clients);
    cr_assert_not_null (other);
    drover_client_set_ack_timeout (other, 10000);
    uint64_t other_id, next_id;
    cr_assert_eq (drover_client_submit (other, "nobody", "x", 1, NULL, &other_id), 0, "%s",
                  drover_client_error (other));
    cr_assert_eq (other_id, first_id);
    //  Our next submit meets the new broker: the job goes again. The
    //  broker acknowledges the Submits it read in a pass when the pass
    //  ends, so the acknowledgement comes before the answer to a second
    //  request after that (a first may be read in the same pass).
    cr_assert_eq (drover_client_submit (client, "nobody", "y", 1, NULL, &next_id), 0, "%s",
                  drover_client_error (client));
    drover_stats_t stats;
    for (int i = 0; i < 2; i++)
        cr_assert_eq (drover_client_stats (client, &stats), 0, "%s",
                      drover_client_error (client));
    cr_assert_eq (stats.jobs, 3);
    cr_assert_neq (next_id, first_id);
    drover_worker_t *echo = s_worker_new (1);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, first_id, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (result->job_id, first_id);
    cr_assert_eq (result->size, 5);
    cr_assert_arr_eq (result->data, "hello", 5);
    drover_result_destroy (&result);
    drover_worker_destroy (&echo);
    drover_client_destroy (&other);
}

Test (client, running_job_survives_worker_stop)
{
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "slow", "", 0, NULL, &job_id), 0);
    drover_status_t status;
    do {
        cr_assert_eq (drover_client_status (client, job_id, &status), 0);
    } while (status.state == DROVER_JOB_QUEUED);
    cr_assert_eq (status.state, DROVER_JOB_RUNNING);
    //  The worker leaves mid-task (Bye); another takes the job.
    drover_worker_destroy (&worker);
    worker = s_worker_new (1);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) result->data, "slow");
    cr_assert_eq (result->attempts, 2, "dispatched twice");
    drover_result_destroy (&result);
}

//  72 MiB through three processes: minutes under AddressSanitizer on a
//  loaded machine, so it has a longer bound than the suite's 60 s.
Test (client, big_batches_are_split_to_fit_a_message, .timeout = 240)
{
    //  Six 12 MiB payloads to six free slots: 72 MiB, more than one
    //  64 MiB message may carry, so the broker must split the Dispatch.
    drover_worker_destroy (&worker);
    worker = s_worker_new (6);
    enum { COUNT = 6, SIZE = 12 * 1024 * 1024 };
    uint8_t *data = malloc (SIZE);
    for (size_t i = 0; i < SIZE; i++)
        data [i] = (uint8_t) (i * 7);
    const void *payloads [COUNT];
    size_t sizes [COUNT];
    drover_result_t *results [COUNT];
    for (int i = 0; i < COUNT; i++) {
        payloads [i] = data;
        sizes [i] = SIZE;
    }
    cr_assert_eq (drover_client_map (client, "echo", COUNT, payloads, sizes, NULL, 200000,
                                     results),
                  0, "%s", drover_client_error (client));
    for (int i = 0; i < COUNT; i++) {
        cr_assert_eq (results [i]->outcome, DROVER_OUTCOME_OK);
        cr_assert_eq (results [i]->size, SIZE);
        cr_assert_eq (memcmp (results [i]->data, data, SIZE), 0);
        drover_result_destroy (&results [i]);
    }
    free (data);
}

Test (client, overlong_failure_reason_is_cut_to_the_protocol_limit)
{
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "fail_long", "", 0, NULL, 10000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_ERROR);
    cr_assert_eq (strlen (result->reason), 4096);
    drover_result_destroy (&result);
}

Test (client, cancel_removes_a_queued_job_and_tells_its_client)
{
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "nobody", "x", 1, NULL, &job_id), 0);
    drover_status_t status;
    cr_assert_eq (drover_client_cancel (client, job_id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_FAILED);
    cr_assert_eq (status.outcome, DROVER_OUTCOME_CANCELLED);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_CANCELLED);
    cr_assert_str_eq (result->reason, "cancelled by a client");
    drover_result_destroy (&result);
    //  Cancelling a finished job changes nothing.
    cr_assert_eq (drover_client_cancel (client, job_id, &status), 0);
    cr_assert_eq (status.outcome, DROVER_OUTCOME_CANCELLED);
    cr_assert_eq (drover_client_cancel (client, 987654, &status), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_UNKNOWN_JOB);
}

Test (client, invalid_function_name_is_refused_locally)
{
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "has space", "x", 1, NULL, &job_id), -1);
    cr_assert_eq (errno, EINVAL);
    cr_assert_neq (strstr (drover_client_error (client), "not valid"), NULL);
}

Test (client, no_broker_times_out_with_advice)
{
    drover_client_t *lonely = drover_client_new ("tcp://127.0.0.1:1");
    cr_assert_not_null (lonely);
    drover_client_set_ack_timeout (lonely, 200);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (lonely, "square", "1", 1, NULL, &job_id), -1);
    cr_assert_eq (errno, ETIMEDOUT);
    cr_assert_neq (strstr (drover_client_error (lonely), "is drover-broker running"), NULL, "%s",
                   drover_client_error (lonely));
    drover_client_destroy (&lonely);
}

Test (client, bad_endpoint_gives_null)
{
    cr_assert_null (drover_client_new ("not-an-endpoint"));
    cr_assert_null (drover_client_new (""));
    cr_assert_null (drover_worker_new (""));
}

//  Brokers with small limits.
static void
setup_limited (void)
{
    zsys_init ();
    drover_set_logstream (NULL);
    s_start_broker (2, 10);
}

static void
teardown_limited (void)
{
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}

TestSuite (limits, .init = setup_limited, .fini = teardown_limited, .timeout = 60);

Test (limits, queue_full_is_refused_whole)
{
    const void *payloads [3] = {"1", "2", "3"};
    size_t sizes [3] = {1, 1, 1};
    uint64_t ids [3];
    cr_assert_eq (drover_client_submit_many (client, "nobody", 3, payloads, sizes, NULL, ids), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_QUEUE_FULL);
    cr_assert_neq (strstr (drover_client_error (client), "queue full"), NULL, "%s",
                   drover_client_error (client));
    //  Two fit; the connection keeps working.
    cr_assert_eq (drover_client_submit_many (client, "nobody", 2, payloads, sizes, NULL, ids), 0);
}

Test (limits, payload_too_large_is_refused)
{
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "nobody", "01234567890", 11, NULL, &job_id), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_TOO_LARGE);
    cr_assert_neq (strstr (drover_client_error (client), "payload too large"), NULL, "%s",
                   drover_client_error (client));
    cr_assert_eq (drover_client_submit (client, "nobody", "0123456789", 10, NULL, &job_id), 0);
}

Test (limits, result_over_the_payload_limit_fails_only_its_job)
{
    worker = s_worker_new (1);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (client, "square", "123456", 6, NULL, 10000, &result), 0,
                  "%s", drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_ERROR, "15241383936 is 11 bytes");
    cr_assert_neq (strstr (result->reason, "larger than the broker's limit of 10"), NULL, "%s",
                   result->reason);
    drover_result_destroy (&result);
    //  The worker is still served: its credit came back.
    cr_assert_eq (drover_client_apply (client, "square", "12", 2, NULL, 10000, &result), 0);
    cr_assert_str_eq ((char *) result->data, "144");
    drover_result_destroy (&result);
}

Test (limits, payload_bytes_held_are_bounded)
{
    //  This suite's broker holds three jobs' own bytes and 15 payload
    //  bytes at most, in two functions.
    drover_client_destroy (&client);
    drover_broker_destroy (&broker);
    broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    drover_broker_set_max_bytes (broker, 3 * DRV_STORE_JOB_BYTES + 15);
    drover_broker_set_max_functions (broker, 2);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    client = drover_client_new (drover_broker_clients_endpoint (broker));
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "a", "0123456789", 10, NULL, &job_id), 0);
    cr_assert_eq (drover_client_submit (client, "b", "x", 1, NULL, &job_id), 0);
    cr_assert_eq (drover_client_submit (client, "c", "x", 1, NULL, &job_id), -1,
                  "a third function");
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_QUEUE_FULL);
    cr_assert_neq (strstr (drover_client_error (client), "--max-functions"), NULL, "%s",
                   drover_client_error (client));
    //  A third job fits, but not with 10 bytes of payload.
    cr_assert_eq (drover_client_submit (client, "a", "0123456789", 10, NULL, &job_id), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_QUEUE_FULL);
    cr_assert_neq (strstr (drover_client_error (client), "--max-bytes"), NULL, "%s",
                   drover_client_error (client));
    cr_assert_eq (drover_client_submit (client, "a", "x", 1, NULL, &job_id), 0);
}

//  A streaming map goes on past a Submit the broker refused: each of its
//  tasks has a result of its own, DROVER_OUTCOME_REFUSED with the
//  broker's reason, taken in its turn (Pool.imap raises for that item and
//  goes on), and the tasks around it run. A flush after every flush_every
//  pushes makes one Submit of them.
static void
s_map_past_a_refusal (bool unordered, size_t chunk_size, size_t flush_every, size_t count,
                      const char *const inputs [], const char *const expected [])
{
    drover_imap_t *imap = drover_imap_new (client, "square", NULL);
    cr_assert_not_null (imap);
    cr_assert_eq (drover_imap_set_unordered (imap, unordered), 0);
    cr_assert_eq (drover_imap_set_chunk_size (imap, chunk_size), 0);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq (drover_imap_push (imap, inputs [i], strlen (inputs [i])), 0, "%s",
                      drover_client_error (client));
        if ((i + 1) % flush_every == 0 || i + 1 == count)
            cr_assert_eq (drover_imap_flush (imap), 0, "%s", drover_client_error (client));
    }
    bool seen [8] = {false};
    drover_result_t *result = NULL;
    for (size_t n = 0; n < count; n++) {
        size_t index = count;
        cr_assert_eq (drover_imap_next_index (imap, 10000, &result, &index), 0, "%s",
                      drover_client_error (client));
        cr_assert_lt (index, count);
        cr_assert (unordered || index == n, "result %zu is for push %zu", n, index);
        cr_assert_not (seen [index], "push %zu has two results", index);
        seen [index] = true;
        if (expected [index]) {
            cr_assert_eq (result->outcome, DROVER_OUTCOME_OK, "push %zu: %s", index,
                          result->reason);
            cr_assert_eq (result->size, strlen (expected [index]));
            cr_assert_eq (memcmp (result->data, expected [index], result->size), 0);
        }
        else {
            cr_assert_eq (result->outcome, DROVER_OUTCOME_REFUSED, "push %zu", index);
            cr_assert_neq (strstr (result->reason,
                                   "not queued: the broker refused it: payload too large"),
                           NULL, "%s", result->reason);
        }
        drover_result_destroy (&result);
    }
    cr_assert_eq (drover_imap_pending (imap), 0);
    cr_assert_eq (drover_imap_next (imap, 1000, &result), 1, "every result taken");
    drover_imap_destroy (&imap);
}

Test (limits, a_streaming_map_goes_past_a_refused_submit)
{
    //  Payloads up to 24 bytes (a chunk of two small results fits); no
    //  bound on the queue, and a worker.
    drover_client_destroy (&client);
    drover_broker_destroy (&broker);
    s_start_broker (0, 24);
    worker = s_worker_new (2);
    const char *inputs [] = {"1", "2", "1234567890123456789012345", "3"};
    const char *squares [] = {"1", "4", NULL, "9"};
    s_map_past_a_refusal (false, 1, 1, 4, inputs, squares);
    s_map_past_a_refusal (true, 1, 1, 4, inputs, squares);
    //  All four in one Submit, refused as too large: they go again one
    //  by one, and only the large one fails.
    s_map_past_a_refusal (false, 1, 4, 4, inputs, squares);
    s_map_past_a_refusal (true, 1, 4, 4, inputs, squares);
    //  Chunks of two: the refused one takes both its items with it.
    const char *chunked [] = {"1", "2", "1234567890123456789012345", "3", "4"};
    const char *chunked_squares [] = {"1", "4", NULL, NULL, "16"};
    s_map_past_a_refusal (false, 2, 2, 5, chunked, chunked_squares);
    s_map_past_a_refusal (true, 2, 2, 5, chunked, chunked_squares);

    //  One call, one answer: drover_client_map fails as a whole.
    const void *payloads [2] = {"1", "1234567890123456789012345"};
    size_t sizes [2] = {1, 25};
    drover_result_t *results [2];
    cr_assert_eq (drover_client_map (client, "square", 2, payloads, sizes, NULL, 10000, results),
                  -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_TOO_LARGE);
    cr_assert_null (results [0]);
    cr_assert_null (drover_client_map_async (client, "square", 2, payloads, sizes, 1, NULL));
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_TOO_LARGE);
}

//  ---------------------------------------------------------------------
//  Steering queues through the SDK.

Test (client, detached_job_is_collected_by_another_client)
{
    drover_options_t options = {.detach = true};
    uint64_t job_id = 0;
    cr_assert_eq (drover_client_submit (client, "square", "12", 2, &options, &job_id), 0, "%s",
                  drover_client_error (client));
    drover_client_t *other = drover_client_new (drover_broker_clients_endpoint (broker));
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (other, job_id, 10000, &result), 0, "%s",
                  drover_client_error (other));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) result->data, "144");
    cr_assert_eq (result->job_id, job_id);
    drover_result_destroy (&result);
    drover_client_destroy (&other);
    //  The submitting client holds no record of it: it asks the broker too.
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "144");
    drover_result_destroy (&result);
}

Test (client, unique_key_attaches_a_second_client_to_the_first_job)
{
    drover_queue_t queue;
    cr_assert_eq (drover_client_pause (client, "square", true, &queue), 0, "%s",
                  drover_client_error (client));
    cr_assert (queue.paused);
    drover_options_t options = {.unique = "daily"};
    uint64_t first = 0, second = 0;
    cr_assert_eq (drover_client_submit (client, "square", "9", 1, &options, &first), 0);
    drover_client_t *other = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_eq (drover_client_submit (other, "square", "9", 1, &options, &second), 0, "%s",
                  drover_client_error (other));
    cr_assert_eq (first, second, "the second attaches to the first job");
    cr_assert_eq (drover_client_queue (client, "square", &queue), 0);
    cr_assert_eq (queue.queued, 1);
    cr_assert_eq (drover_client_pause (client, "square", false, NULL), 0);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (other, second, 10000, &result), 0, "%s",
                  drover_client_error (other));
    cr_assert_str_eq ((char *) result->data, "81");
    drover_result_destroy (&result);
    cr_assert_eq (drover_client_wait (client, first, 10000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "81");
    cr_assert_eq (result->attempts, 1, "it ran once");
    drover_result_destroy (&result);
    drover_client_destroy (&other);
    //  A key goes with one task.
    const void *payloads [] = {"1", "2"};
    size_t sizes [] = {1, 1};
    uint64_t ids [2];
    cr_assert_eq (drover_client_submit_many (client, "square", 2, payloads, sizes, &options, ids),
                  -1);
    cr_assert_eq (errno, EINVAL);
    cr_assert_null (drover_imap_new (client, "square", &options));
}

Test (client, queue_settings_are_set_and_read_back)
{
    drover_queue_t queue;
    cr_assert_eq (drover_client_queue (client, "resize", &queue), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq (queue.function, "resize");
    cr_assert_eq (queue.limit, 0);
    cr_assert_not (queue.paused);
    cr_assert_eq (queue.max_queue, 0);
    cr_assert_eq (queue.max_queue_in_force, 10000000, "the broker's --max-queue");
    cr_assert_eq (drover_client_set_limit (client, "resize", 3, &queue), 0);
    cr_assert_eq (queue.limit, 3);
    cr_assert_eq (drover_client_set_max_queue (client, "resize", 5, &queue), 0);
    cr_assert_eq (queue.max_queue, 5);
    cr_assert_eq (queue.max_queue_in_force, 5);
    cr_assert_eq (queue.limit, 3, "other settings stay");
    cr_assert_eq (drover_client_set_limit (client, "bad name", 3, &queue), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_INVALID);
    //  Detach goes with submit, not with callbacks.
    drover_options_t detach = {.detach = true};
    cr_assert_eq (drover_client_apply_async (client, "square", "2", 1, &detach, NULL, NULL, NULL,
                                             NULL),
                  -1);
    cr_assert_eq (errno, EINVAL);
}
