/*  test_steer - queues users can steer, end to end: real daemons driven
    through the drover command line. Priorities, delays, detached jobs
    and drover wait, the cluster-wide limit per function, pause and
    resume, the queue length per function, unique jobs, and all of it
    across a restart of a durable broker. Every process started is
    reaped, also when a test fails.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drover.h"
#include "drv_testutil.h"

#define S_SQUARE "square=exec:awk {print($1*$1)}"
#define S_FAIL "fail=exec:" DRV_TEST_SCRIPTS "/fail-on-3"
#define S_SLOW "slow=exec:" DRV_TEST_SCRIPTS "/slow"

static drv_test_cluster_t cluster;

static drv_test_output_t
s_cli (const char *const args [], const char *input)
{
    return drv_test_cli (&cluster, args, input, 120000);
}

//  Run the CLI, expect exit status `status`, and return its stdout (the
//  caller frees).
static char *
s_cli_expect (const char *const args [], int status)
{
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, status, "drover %s %s: exit %d, stderr: %s", args [0],
                  args [1] ? args [1] : "", out.status, out.err);
    char *text = out.out;
    out.out = NULL;
    drv_test_output_free (&out);
    return text;
}

//  Submit detached and return the job id printed.
static uint64_t
s_detach (const char *function, const char *data, const char *const extra [])
{
    const char *args [16] = {"submit", function, "--data", data, "--detach"};
    size_t n = 5;
    for (size_t i = 0; extra && extra [i]; i++)
        args [n++] = extra [i];
    args [n] = NULL;
    char *text = s_cli_expect (args, 0);
    char *end;
    uint64_t id = strtoull (text, &end, 10);
    cr_assert (id > 0 && *end == '\n' && end [1] == 0, "submit --detach printed '%s'", text);
    free (text);
    return id;
}

//  `drover wait ID`: its output, the caller's.
static drv_test_output_t
s_wait (uint64_t id)
{
    char text [32];
    snprintf (text, sizeof text, "%" PRIu64, id);
    const char *args [] = {"wait", text, NULL};
    return s_cli (args, NULL);
}

//  `drover wait ID` must print expect and exit 0.
static void
s_wait_for (uint64_t id, const char *expect)
{
    drv_test_output_t out = s_wait (id);
    cr_assert_eq (out.status, 0, "wait %" PRIu64 ": %s", id, out.err);
    cr_assert_str_eq (out.out, expect, "wait %" PRIu64, id);
    drv_test_output_free (&out);
}

//  `drover queue|pause|resume|limit|max-queue FUNCTION [N]`: its stdout.
static char *
s_queue (const char *command, const char *function, const char *number)
{
    const char *args [] = {command, function, number, NULL};
    return s_cli_expect (args, 0);
}

//  A job's status through the SDK.
static drover_status_t
s_status (uint64_t id)
{
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_status_t status;
    cr_assert_eq (drover_client_status (client, id, &status), 0, "%s",
                  drover_client_error (client));
    drover_client_destroy (&client);
    return status;
}

//  Read a whole file; the caller frees.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "cannot open %s", path);
    char *text = (char *) calloc (1, 65536);
    size_t length = fread (text, 1, 65535, file);
    text [length] = 0;
    fclose (file);
    return text;
}

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

TestSuite (steer, .init = setup, .fini = teardown, .timeout = 240);

Test (steer, higher_priority_runs_first_fifo_within_a_priority)
{
    //  One worker with one slot runs them one by one, in dispatch order.
    char log [128], record [256];
    snprintf (log, sizeof log, "%s/order", cluster.dir);
    snprintf (record, sizeof record, "record=exec:" DRV_TEST_SCRIPTS "/record %s", log);
    const char *functions [] = {record, NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    free (s_queue ("pause", "record", NULL));
    const char *low [] = {"--priority", "-5", NULL};
    const char *high [] = {"--priority", "10", NULL};
    const char *names [] = {"n1", "l1", "h1", "n2", "h2", "l2"};
    const char *const *priorities [] = {NULL, low, high, NULL, high, low};
    uint64_t ids [6];
    for (int i = 0; i < 6; i++)
        ids [i] = s_detach ("record", names [i], priorities [i]);
    cr_assert_eq (s_status (ids [2]).priority, 10);
    free (s_queue ("resume", "record", NULL));
    for (int i = 0; i < 6; i++) {
        char expect [8];
        snprintf (expect, sizeof expect, "%s\n", names [i]);
        s_wait_for (ids [i], expect);
    }
    char *order = s_slurp (log);
    cr_assert_str_eq (order, "h1\nh2\nn1\nn2\nl1\nl2\n");
    free (order);
}

Test (steer, map_takes_a_priority_and_a_delay)
{
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    const char *args [] = {"map", "square", "--priority", "3", "--delay", "300", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "1\n4\n9\n");
    drv_test_output_free (&out);
    //  What goes with submit only is refused with map.
    const char *detach [] = {"map", "square", "--detach", NULL};
    out = s_cli (detach, "1\n");
    cr_assert_eq (out.status, 2);
    cr_assert (strstr (out.err, "submit only"), "%s", out.err);
    drv_test_output_free (&out);
}

Test (steer, delayed_job_waits_for_its_time)
{
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    const char *delay [] = {"--delay", "4000", NULL};
    uint64_t id = s_detach ("square", "6", delay);
    //  Not dispatched before its time though a worker is free.
    drover_status_t status = s_status (id);
    cr_assert_eq (status.state, DROVER_JOB_QUEUED);
    cr_assert_eq (status.attempts, 0);
    cr_assert_gt (status.run_in_ms, 0);
    cr_assert_leq (status.run_in_ms, 4000);
    char *text = s_queue ("queue", "square", NULL);
    cr_assert (strstr (text, "queued 0, delayed 1, running 0"), "%s", text);
    free (text);
    s_wait_for (id, "36\n");
    cr_assert_eq (s_status (id).attempts, 1);
}

Test (steer, delayed_job_via_the_sdk_run_at_time)
{
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_options_t options = {.run_at_ms = zclock_time () + 3000};
    uint64_t id;
    cr_assert_eq (drover_client_submit (client, "square", "5", 1, &options, &id), 0, "%s",
                  drover_client_error (client));
    drover_status_t status;
    cr_assert_eq (drover_client_status (client, id, &status), 0);
    cr_assert_eq (status.state, DROVER_JOB_QUEUED);
    cr_assert_gt (status.run_in_ms, 0);
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_wait (client, id, 60000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "25\n");
    drover_result_destroy (&result);
    drover_client_destroy (&client);
}

Test (steer, detached_job_is_fetched_later_by_another_process)
{
    drv_test_cluster_stop (&cluster);
    const char *keep [] = {"--keep-results", "5000", NULL};
    drv_test_cluster_start (&cluster, keep);
    const char *functions [] = {S_SQUARE, S_FAIL, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    uint64_t ok = s_detach ("square", "7", NULL);
    uint64_t failed = s_detach ("fail", "3", NULL);
    //  Each wait is a new process and a new connection.
    s_wait_for (ok, "49\n");
    s_wait_for (ok, "49\n");
    drv_test_output_t out = s_wait (failed);
    cr_assert_eq (out.status, 1, "a failed job exits 1 as submit does");
    cr_assert (strstr (out.err, "exit status 3: cannot handle 3"), "%s", out.err);
    drv_test_output_free (&out);
    //  Kept for --keep-results after it finished, then gone.
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_status_t status;
    int rounds = 0;
    while (drover_client_status (client, ok, &status) == 0 && rounds++ < 600)
        zclock_sleep (100);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_UNKNOWN_JOB,
                  "the result expires: %s", drover_client_error (client));
    drover_client_destroy (&client);
    out = s_wait (ok);
    cr_assert_eq (out.status, 1);
    cr_assert (strstr (out.err, "has no job"), "%s", out.err);
    drv_test_output_free (&out);
    //  A job never submitted, and a bad id.
    out = s_wait (ok + 1000);
    cr_assert_eq (out.status, 1);
    drv_test_output_free (&out);
    const char *bad [] = {"wait", "x", NULL};
    free (s_cli_expect (bad, 2));
}

Test (steer, wait_started_before_the_job_finishes_gets_its_result)
{
    const char *functions [] = {S_SLOW, NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    uint64_t id = s_detach ("slow", "1", NULL);
    s_wait_for (id, "slept 1\n");
}

Test (steer, limit_holds_across_workers)
{
    char dir [128], spec [256];
    snprintf (dir, sizeof dir, "%s/conc", cluster.dir);
    cr_assert_eq (mkdir (dir, 0700), 0);
    snprintf (spec, sizeof spec, "conc=exec:" DRV_TEST_SCRIPTS "/concurrent %s", dir);
    const char *functions [] = {spec, NULL};
    for (int i = 0; i < 3; i++)
        drv_test_cluster_worker (&cluster, 2, functions);
    char *text = s_queue ("limit", "conc", "2");
    cr_assert (strstr (text, "limit 2"), "%s", text);
    free (text);
    const char *args [] = {"map", "conc", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    drv_test_output_free (&out);
    char seen_path [160];
    snprintf (seen_path, sizeof seen_path, "%s/seen", dir);
    char *seen = s_slurp (seen_path);
    int most = 0, runs = 0;
    for (char *line = strtok (seen, "\n"); line; line = strtok (NULL, "\n"), runs++)
        most = atoi (line) > most ? atoi (line) : most;
    free (seen);
    cr_assert_eq (runs, 12);
    cr_assert_leq (most, 2, "never more than 2 at once across 3 workers of 2 slots");
    cr_assert_geq (most, 1);
    //  0 lifts it.
    text = s_queue ("limit", "conc", "0");
    cr_assert (strstr (text, "limit none"), "%s", text);
    free (text);
}

Test (steer, paused_queue_takes_jobs_and_runs_them_on_resume)
{
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    char *text = s_queue ("pause", "square", NULL);
    cr_assert (strstr (text, "square: paused"), "%s", text);
    free (text);
    uint64_t a = s_detach ("square", "3", NULL);
    uint64_t b = s_detach ("square", "4", NULL);
    //  The worker may still be registering: wait (bounded) until the
    //  broker counts it, then the paused jobs must still be queued.
    text = s_queue ("queue", "square", NULL);
    for (int tries = 0; tries < 100 && !strstr (text, "workers 1"); tries++) {
        free (text);
        zclock_sleep (100);
        text = s_queue ("queue", "square", NULL);
    }
    cr_assert (strstr (text, "queued 2, delayed 0, running 0, workers 1"), "%s", text);
    free (text);
    cr_assert_eq (s_status (a).state, DROVER_JOB_QUEUED);
    text = s_queue ("resume", "square", NULL);
    cr_assert (strstr (text, "square: running"), "%s", text);
    free (text);
    s_wait_for (a, "9\n");
    s_wait_for (b, "16\n");
}

Test (steer, max_queue_per_function_refuses_more_as_queue_full)
{
    free (s_queue ("pause", "echo", NULL));
    char *text = s_queue ("max-queue", "echo", "2");
    cr_assert (strstr (text, "max queue 2"), "%s", text);
    free (text);
    const char *key [] = {"--unique", "u", NULL};
    uint64_t keyed = s_detach ("echo", "a", key);
    s_detach ("echo", "b", NULL);
    const char *third [] = {"submit", "echo", "--data", "c", "--detach", NULL};
    drv_test_output_t out = s_cli (third, NULL);
    cr_assert_eq (out.status, 3);
    cr_assert (strstr (out.err, "queue full"), "%s", out.err);
    cr_assert (strstr (out.err, "max-queue"), "%s", out.err);
    drv_test_output_free (&out);
    //  A task that attaches to a queued job by its key takes no place.
    cr_assert_eq (s_detach ("echo", "a", key), keyed);
    //  Other functions are not bound by it.
    s_detach ("other", "a", NULL);
    s_detach ("other", "b", NULL);
    s_detach ("other", "c", NULL);
    //  0 gives the broker's limit back.
    text = s_queue ("max-queue", "echo", "0");
    cr_assert (strstr (text, "(the broker's)"), "%s", text);
    free (text);
    s_detach ("echo", "c", NULL);
}

//  How many times the broker's log has this text.
static int
s_log_count (const char *text)
{
    char path [160];
    snprintf (path, sizeof path, "%s/broker.log", cluster.dir);
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    char line [1024];
    int count = 0;
    while (fgets (line, sizeof line, file))
        count += strstr (line, text) != NULL;
    fclose (file);
    return count;
}

Test (steer, unique_jobs_attach_and_every_client_gets_the_result)
{
    //  A verbose broker logs each submit, so the test sees them arrive.
    drv_test_cluster_stop (&cluster);
    const char *verbose [] = {"--verbose", NULL};
    drv_test_cluster_start (&cluster, verbose);
    const char *functions [] = {S_SLOW, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    free (s_queue ("pause", "slow", NULL));
    //  Three clients, three processes, one key: one job.
    pid_t pids [3];
    char outputs [3][160], errors [3][160];
    const char *args [] = {"submit", "slow", "--data", "1", "--unique", "nightly", NULL};
    for (int i = 0; i < 3; i++) {
        snprintf (outputs [i], sizeof outputs [i], "%s/unique-%d.out", cluster.dir, i);
        snprintf (errors [i], sizeof errors [i], "%s/unique-%d.err", cluster.dir, i);
        pids [i] = drv_test_cli_spawn (&cluster, args, "/dev/null", outputs [i], errors [i]);
    }
    //  Detached ones with the same key name the same job.
    const char *key [] = {"--unique", "nightly", NULL};
    uint64_t first = s_detach ("slow", "1", key);
    uint64_t second = s_detach ("slow", "1", key);
    cr_assert_eq (first, second);
    //  Wait until the broker has had all five submits.
    for (int rounds = 0; s_log_count ("unique=nightly") < 5 && rounds < 600; rounds++)
        zclock_sleep (50);
    cr_assert_eq (s_log_count ("unique=nightly"), 5);
    char *text = s_queue ("queue", "slow", NULL);
    cr_assert (strstr (text, "queued 1, delayed 0, running 0"), "one job for five: %s", text);
    free (text);
    free (s_queue ("resume", "slow", NULL));
    for (int i = 0; i < 3; i++) {
        int status = drv_test_stop (pids [i], 0, 60000);
        cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "client %d: %d", i, status);
        char *out = s_slurp (outputs [i]);
        cr_assert_str_eq (out, "slept 1\n", "client %d", i);
        free (out);
    }
    s_wait_for (first, "slept 1\n");
    cr_assert_eq (s_status (first).attempts, 1, "it ran once");
    //  Finished: the key is free, a new submit makes a new job.
    uint64_t third = s_detach ("slow", "0", key);
    cr_assert_neq (third, first);
    s_wait_for (third, "slept 0\n");
}

Test (steer, durable_broker_keeps_steering_across_a_kill)
{
    char data [160];
    snprintf (data, sizeof data, "/tmp/drover-steer-data-%d", (int) getpid ());
    const char *flags [] = {"--data", data, NULL};
    drv_test_cluster_stop (&cluster);
    drv_test_cluster_start (&cluster, flags);
    free (s_queue ("pause", "square", NULL));
    free (s_queue ("limit", "square", "1"));
    free (s_queue ("max-queue", "square", "50"));
    const char *high [] = {"--priority", "7", NULL};
    const char *later [] = {"--delay", "3000", NULL};
    const char *key [] = {"--unique", "k", NULL};
    uint64_t a = s_detach ("square", "2", high);
    uint64_t b = s_detach ("square", "3", later);
    uint64_t c = s_detach ("square", "4", key);
    cr_assert_eq (s_detach ("square", "4", key), c);

    drv_test_stop (cluster.broker, SIGKILL, 1000);
    drv_test_cluster_restart_broker (&cluster, flags);
    char *text = s_queue ("queue", "square", NULL);
    cr_assert (strstr (text, "square: paused, limit 1, max queue 50\n"), "%s", text);
    unsigned long long queued = 0, delayed = 0;
    cr_assert_eq (sscanf (strchr (text, '\n') + 1, "queued %llu, delayed %llu", &queued,
                          &delayed),
                  2, "%s", text);
    cr_assert_eq (queued + delayed, 3, "a, b and c, not c's follower: %s", text);
    free (text);
    cr_assert_eq (s_status (a).priority, 7);
    cr_assert_eq (s_status (b).state, DROVER_JOB_QUEUED);
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    free (s_queue ("resume", "square", NULL));
    s_wait_for (a, "4\n");
    s_wait_for (b, "9\n");
    s_wait_for (c, "16\n");
    //  A detached result survives a restart too.
    drv_test_stop (cluster.broker, SIGKILL, 1000);
    drv_test_cluster_restart_broker (&cluster, flags);
    s_wait_for (a, "4\n");
    drv_test_cluster_stop (&cluster);
    char command [200];
    snprintf (command, sizeof command, "rm -rf '%s'", data);
    cr_assert_eq (system (command), 0);
    drv_test_cluster_start (&cluster, NULL);
}
