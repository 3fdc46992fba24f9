/*  test_e2e - real daemons on free loopback ports, driven through the
    drover command line as a user or a script would: the programs of the
    multiprocessing documents, failures, the CLI contract, and workers
    that leave or die mid-task. Every process started is reaped, also
    when a test fails (drv_test_reap_all in .fini).
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drover.h"
#include "drv_testutil.h"

#define S_SQUARE "square=exec:awk {print($1*$1)}"
#define S_PID "pid=exec:" DRV_TEST_SCRIPTS "/echo-pid"
#define S_FAIL "fail=exec:" DRV_TEST_SCRIPTS "/fail-on-3"
#define S_SEGV "segv=exec:" DRV_TEST_SCRIPTS "/segv"
#define S_SLOW "slow=exec:" DRV_TEST_SCRIPTS "/slow"
#define S_FLAKY "flaky=exec:" DRV_TEST_SCRIPTS "/flaky"

static drv_test_cluster_t cluster;

//  Run the CLI and return its output; the caller frees.
static drv_test_output_t
s_cli (const char *const args [], const char *input)
{
    return drv_test_cli (&cluster, args, input, 120000);
}

//  Block until a worker serves `function` (a first task goes through).
static void
s_await_workers (const char *function, const char *payload)
{
    const char *args [] = {"submit", function, "--data", payload, NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 0, "warm-up task failed: %s", out.err);
    drv_test_output_free (&out);
}

//  Block until the job has left its queue; *status is its state then.
static void
s_await_dispatch (drover_client_t *client, uint64_t job_id, drover_status_t *status)
{
    do {
        cr_assert_eq (drover_client_status (client, job_id, status), 0, "%s",
                      drover_client_error (client));
    } while (status->state == DROVER_JOB_QUEUED);
}

//  Two drover-worker daemons with two slots and every test function.
static void
setup (void)
{
    drv_test_cluster_start (&cluster, NULL);
    const char *functions [] = {S_SQUARE, S_PID, S_FAIL, S_SEGV, S_SLOW, S_FLAKY, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    drv_test_cluster_worker (&cluster, 2, functions);
    s_await_workers ("square", "1");
}

static void
teardown (void)
{
    drv_test_cluster_stop (&cluster);
    drv_test_reap_all ();
}

TestSuite (e2e, .init = setup, .fini = teardown, .timeout = 300);

Test (e2e, map_squares_in_order)
{
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n4\n5\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "1\n4\n9\n16\n25\n");
    cr_assert_str_eq (out.err, "");
    drv_test_output_free (&out);
}

//  --unordered prints each result as it comes: every result once, and a
//  failure names its own input line (fail-on-3 fails the input "3").
Test (e2e, map_unordered_prints_every_result_once)
{
    const char *args [] = {"map", "square", "--unordered", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n4\n5\n6\n7\n8\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    int seen [65] = {0}, lines = 0;
    for (char *line = strtok (out.out, "\n"); line; line = strtok (NULL, "\n"), lines++) {
        int n = atoi (line);
        cr_assert (n >= 1 && n <= 64, "unexpected line '%s'", line);
        seen [n]++;
    }
    cr_assert_eq (lines, 8);
    for (int i = 1; i <= 8; i++)
        cr_assert_eq (seen [i * i], 1, "the square of %d came %d times", i, seen [i * i]);
    cr_assert_str_eq (out.err, "", "no progress line when stderr is not a terminal");
    drv_test_output_free (&out);

    const char *failing [] = {"map", "fail", "--unordered", NULL};
    out = s_cli (failing, "1\n2\n3\n4\n");
    cr_assert_eq (out.status, 1);
    cr_assert (strstr (out.err, "line 3 failed"), "%s", out.err);
    drv_test_output_free (&out);
}

//  --json: one object per line, in input order, failures included.
Test (e2e, map_and_submit_print_json_lines)
{
    const char *args [] = {"map", "fail", "--json", NULL};
    drv_test_output_t out = s_cli (args, "2\n3\n");
    cr_assert_eq (out.status, 1, "%s", out.err);
    char *second = strchr (out.out, '\n');
    cr_assert_not_null (second);
    *second++ = 0;
    cr_assert (strncmp (out.out, "{\"line\":1,\"job_id\":", 19) == 0, "%s", out.out);
    cr_assert (strstr (out.out, "\"outcome\":\"ok\",\"data\":\"4\\n\""), "%s", out.out);
    cr_assert (strncmp (second, "{\"line\":2,", 10) == 0, "%s", second);
    cr_assert (strstr (second, "\"outcome\":\"error\""), "%s", second);
    drv_test_output_free (&out);

    const char *submit [] = {"submit", "square", "--data", "7", "--json", NULL};
    out = s_cli (submit, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert (strstr (out.out, "\"data\":\"49\\n\",\"reason\":\"\""), "%s", out.out);
    drv_test_output_free (&out);
}

Test (e2e, four_tasks_run_in_four_processes)
{
    const char *args [] = {"map", "pid", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n4\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    long pids [4];
    char *line = out.out;
    for (int i = 0; i < 4; i++) {
        int number;
        cr_assert_eq (sscanf (line, "%d %ld", &number, &pids [i]), 2, "line %d: %s", i, line);
        cr_assert_eq (number, i + 1, "results come in input order");
        for (size_t w = 0; w < cluster.nworkers; w++)
            cr_assert_neq (pids [i], (long) cluster.worker [w], "task ran in its own process");
        for (int j = 0; j < i; j++)
            cr_assert_neq (pids [i], pids [j], "tasks %d and %d shared a process", j + 1, i + 1);
        line = strchr (line, '\n') + 1;
    }
    drv_test_output_free (&out);
}

Test (e2e, failing_task_reports_reason_others_succeed)
{
    const char *args [] = {"map", "fail", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n3\n4\n5\n");
    cr_assert_eq (out.status, 1, "a failed task makes the exit code 1");
    cr_assert_str_eq (out.out, "1\n4\n\n16\n25\n", "the failed line stays an empty line");
    cr_assert_neq (strstr (out.err, "line 3 failed"), NULL, "%s", out.err);
    cr_assert_neq (strstr (out.err, "exit status 3: cannot handle 3"), NULL, "%s", out.err);
    cr_assert_neq (strstr (out.err, "1 of 5 tasks failed"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

//  A line the broker refuses (over its --max-payload) fails as refused,
//  and the map goes on past it; the exit status is 3, the broker's.
Test (e2e, map_goes_past_a_line_the_broker_refuses)
{
    drv_test_cluster_stop (&cluster);
    const char *flags [] = {"--max-payload", "16", NULL};
    drv_test_cluster_start (&cluster, flags);
    const char *functions [] = {S_SQUARE, NULL};
    drv_test_cluster_worker (&cluster, 2, functions);
    s_await_workers ("square", "1");
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = s_cli (args, "1\n2\n123456789012345678\n4\n");
    cr_assert_eq (out.status, 3, "%s", out.err);
    //  Lines 2 and 4 may have gone in the refused line's Submit; then
    //  they went again one by one.
    cr_assert_str_eq (out.out, "1\n4\n\n16\n");
    cr_assert_neq (strstr (out.err, "line 3 failed (refused): not queued: the broker refused it: "
                                    "payload too large"),
                   NULL, "%s", out.err);
    cr_assert_neq (strstr (out.err, "1 of 4 tasks failed, 1 of them not queued"), NULL, "%s",
                   out.err);
    drv_test_output_free (&out);
}

Test (e2e, map_of_ten_thousand_returns_every_result_in_order)
{
    //  Two more workers on the SDK with in-process handlers: exec starts
    //  a process per task, which is slow for 10,000 on this machine.
    for (int i = 0; i < 2; i++) {
        const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "4", NULL};
        cr_assert_gt (drv_test_spawn (argv, NULL), 0);
    }
    size_t size = 10000 * 7;
    char *input = malloc (size), *expected = malloc (10000 * 12);
    size_t in_length = 0, out_length = 0;
    for (long i = 1; i <= 10000; i++) {
        in_length += (size_t) sprintf (input + in_length, "%ld\n", i);
        out_length += (size_t) sprintf (expected + out_length, "%ld\n", i * i);
    }
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = s_cli (args, input);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_eq (out.out_size, out_length);
    cr_assert_eq (memcmp (out.out, expected, out_length), 0, "results in input order");
    drv_test_output_free (&out);
    free (input);
    free (expected);
}

Test (e2e, map_of_five_hundred_through_exec)
{
    char *input = malloc (500 * 5), *expected = malloc (500 * 8);
    size_t in_length = 0, out_length = 0;
    for (long i = 1; i <= 500; i++) {
        in_length += (size_t) sprintf (input + in_length, "%ld\n", i);
        out_length += (size_t) sprintf (expected + out_length, "%ld\n", i * i);
    }
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = s_cli (args, input);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, expected);
    drv_test_output_free (&out);
    free (input);
    free (expected);
}

Test (e2e, submit_takes_data_or_stdin)
{
    const char *with_data [] = {"submit", "square", "--data", "7", NULL};
    drv_test_output_t out = s_cli (with_data, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "49\n");
    drv_test_output_free (&out);
    const char *from_stdin [] = {"submit", "square", NULL};
    out = s_cli (from_stdin, "8\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "64\n");
    drv_test_output_free (&out);
}

Test (e2e, failed_submit_exits_nonzero_with_reason)
{
    const char *args [] = {"submit", "fail", "--data", "3", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 1);
    cr_assert_str_eq (out.out, "");
    cr_assert_neq (strstr (out.err, "exit status 3: cannot handle 3"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

Test (e2e, crashed_task_names_the_signal_and_worker_carries_on)
{
    const char *args [] = {"submit", "segv", "--data", "", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "killed by signal SIGSEGV: about to crash"), NULL, "%s",
                   out.err);
    drv_test_output_free (&out);
    s_await_workers ("square", "2");
    for (size_t i = 0; i < cluster.nworkers; i++)
        cr_assert_eq (kill (cluster.worker [i], 0), 0, "worker %zu still alive", i);
}

Test (e2e, task_timeout_kills_the_task)
{
    const char *args [] = {"submit", "slow", "--data", "30", "--timeout", "300", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "timed out after 300 ms"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

Test (e2e, status_reports_a_finished_job)
{
    //  The warm-up task of setup was the broker's first job.
    const char *args [] = {"status", "1", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "job 1: succeeded"), NULL, "%s", out.out);
    cr_assert_neq (strstr (out.out, "function: square"), NULL, "%s", out.out);
    drv_test_output_free (&out);
    const char *unknown [] = {"status", "424242", NULL};
    out = s_cli (unknown, NULL);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "no job 424242"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

Test (e2e, unoffered_function_waits_and_says_so)
{
    const char *argv [] = {DRV_CLI_BIN, "--broker", cluster.clients, "submit", "resize",
                           "--data", "x", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 1500);
    cr_assert_eq (out.status, 137, "still waiting when stopped");
    cr_assert_str_eq (out.err, "drover: no worker offers 'resize' yet; waiting\n");
    drv_test_output_free (&out);
}

Test (e2e, broker_from_environment)
{
    char variable [96];
    snprintf (variable, sizeof variable, "DROVER_BROKER=%s", cluster.clients);
    const char *env [] = {variable, NULL};
    const char *argv [] = {DRV_CLI_BIN, "submit", "square", "--data", "9", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, env, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "81\n");
    drv_test_output_free (&out);
}

Test (e2e, running_task_moves_when_its_worker_is_stopped)
{
    //  One slot each: the slow task runs on one worker; stop that one.
    drover_client_t *client = drover_client_new (cluster.clients);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "slow", "2", 1, NULL, &job_id), 0);
    drover_status_t status;
    s_await_dispatch (client, job_id, &status);
    //  Find the worker by its name (host:pid) and stop it.
    long pid = strtol (strrchr (status.worker, ':') + 1, NULL, 10);
    int stopped = drv_test_stop ((pid_t) pid, SIGTERM, 5000);
    cr_assert (WIFEXITED (stopped) && WEXITSTATUS (stopped) == 0, "worker exits 0 on SIGTERM");
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) result->data, "slept 2\n");
    cr_assert_eq (result->attempts, 2);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
}

Test (e2e, killed_worker_is_declared_dead_and_its_task_moves)
{
    drover_client_t *client = drover_client_new (cluster.clients);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "slow", "2", 1, NULL, &job_id), 0);
    drover_status_t status;
    s_await_dispatch (client, job_id, &status);
    long pid = strtol (strrchr (status.worker, ':') + 1, NULL, 10);
    drv_test_stop ((pid_t) pid, SIGKILL, 5000);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 30000, &result), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (result->outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (result->attempts, 2);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
}

//  Read a whole file; the caller frees.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "r");
    cr_assert_not_null (file, "%s", path);
    char *text = calloc (1, 1 << 20);
    size_t got = fread (text, 1, (1 << 20) - 1, file);
    text [got] = 0;
    fclose (file);
    return text;
}

//  Run `drover map nap` over count lines "MS id-N" on two SDK workers with
//  four slots each, kill -9 the broker `kills` times at random moments
//  (restarting it on the same endpoints, with broker_flags) or, with
//  kill_worker, one of the workers once, and check the output line by
//  line: every job ok, none lost, duplicated or unexpected.
static void
s_map_through_kills (int count, int nap_ms, int kills, bool kill_worker,
                     const char *const broker_flags [])
{
    if (broker_flags) {
        drv_test_cluster_stop (&cluster);
        drv_test_cluster_start (&cluster, broker_flags);
    }
    pid_t workers [2];
    for (int i = 0; i < 2; i++) {
        const char *argv [] = {DROVER_BIN_DIR "/drover-test-worker", cluster.workers, "4", NULL};
        workers [i] = drv_test_spawn (argv, NULL);
        cr_assert_gt (workers [i], 0);
    }
    char input [256], output [256], errors [256];
    snprintf (input, sizeof input, "%s/input", cluster.dir);
    snprintf (output, sizeof output, "%s/output", cluster.dir);
    snprintf (errors, sizeof errors, "%s/errors", cluster.dir);
    FILE *file = fopen (input, "w");
    for (int i = 1; i <= count; i++)
        fprintf (file, "%d id-%d\n", nap_ms, i);
    fclose (file);
    const char *args [] = {"map", "nap", NULL};
    pid_t map = drv_test_cli_spawn (&cluster, args, input, output, errors);
    unsigned seed = (unsigned) time (NULL);
    srand (seed);
    //  The whole map takes about count * nap_ms / 8 ms: kill within it.
    int span = count * nap_ms / 8;
    for (int k = 0; k < kills; k++) {
        int delay = span / (kills + 1) / 2 + rand () % (span / (kills + 1) + 1);
        zclock_sleep (delay);
        if (kill_worker) {
            drv_test_stop (workers [0], SIGKILL, 1000);
            cr_log_info ("seed %u: worker kill after %d ms", seed, delay);
            continue;
        }
        drv_test_stop (cluster.broker, SIGKILL, 1000);
        cr_log_info ("seed %u: broker kill %d after %d ms", seed, k + 1, delay);
        drv_test_cluster_restart_broker (&cluster, broker_flags);
    }
    int status = drv_test_stop (map, 0, 60000);
    char *out = s_slurp (output), *err = s_slurp (errors);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        //  Say where it stuck: the broker's log and the first missing job.
        char log [256];
        snprintf (log, sizeof log, "%s/broker.log", cluster.dir);
        char *text = s_slurp (log);
        cr_log_error ("seed %u: broker log:\n%s", seed, text);
        free (text);
        size_t lines = 0;
        for (char *c = out; *c; c++)
            lines += *c == '\n';
        drover_client_t *client = drover_client_new (cluster.clients);
        drover_status_t job;
        for (uint64_t id = 1; id <= (uint64_t) count + 50; id++)
            if (drover_client_status (client, id, &job) == 0 && job.state < DROVER_JOB_SUCCEEDED)
                cr_log_error ("job %" PRIu64 " is %s (attempts %u) after %zu lines", id,
                              drover_state_name (job.state), job.attempts, lines);
        drover_client_destroy (&client);
    }
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "seed %u: map: %d, stderr: %s",
               seed, status, err);
    //  The verifier: line i must be job i's result, exactly once.
    int ok = 0, lost = 0, duplicated = 0, unexpected = 0, line = 0;
    char *cursor = out;
    char *seen = calloc ((size_t) count + 1, 1);
    while (*cursor) {
        char *end = strchr (cursor, '\n');
        if (end)
            *end = 0;
        line++;
        int ms, id;
        if (sscanf (cursor, "%d id-%d", &ms, &id) != 2 || id < 1 || id > count)
            unexpected++;
        else
        if (seen [id])
            duplicated++;
        else {
            seen [id] = 1;
            if (id == line)
                ok++;
            else
                unexpected++;
        }
        if (!end)
            break;
        cursor = end + 1;
    }
    for (int id = 1; id <= count; id++)
        lost += !seen [id];
    cr_log_info ("seed %u: ok=%d lost=%d duplicated=%d unexpected=%d", seed, ok, lost,
                 duplicated, unexpected);
    cr_assert_eq (lost, 0, "seed %u: lost %d", seed, lost);
    cr_assert_eq (duplicated, 0, "seed %u: duplicated %d", seed, duplicated);
    cr_assert_eq (unexpected, 0, "seed %u: unexpected %d", seed, unexpected);
    cr_assert_eq (ok, count);
    free (seen);
    free (out);
    free (err);
}

Test (e2e, map_survives_a_broker_kill_and_restart)
{
    //  In memory: the new broker has nothing; the client sends it all.
    s_map_through_kills (300, 20, 1, false, NULL);
}

Test (e2e, map_survives_a_worker_kill)
{
    //  1,000 tasks of 5 ms; one of the two workers is killed -9 mid-map:
    //  its running tasks go to the other once it is found silent.
    s_map_through_kills (1000, 5, 1, true, NULL);
}

Test (e2e, durable_map_survives_a_broker_kill_and_restart)
{
    char data [300], flag [64];
    snprintf (flag, sizeof flag, "--data");
    snprintf (data, sizeof data, "/tmp/drover-e2e-data-%d", (int) getpid ());
    const char *flags [] = {flag, data, NULL};
    s_map_through_kills (300, 20, 1, false, flags);
    char command [400];
    snprintf (command, sizeof command, "rm -rf '%s'", data);
    cr_assert_eq (system (command), 0);
}

Test (e2e, durable_map_survives_random_broker_kills)
{
    char data [300];
    snprintf (data, sizeof data, "/tmp/drover-e2e-chaos-%d", (int) getpid ());
    const char *flags [] = {"--data", data, NULL};
    s_map_through_kills (3000, 2, 3, false, flags);
    char command [400];
    snprintf (command, sizeof command, "rm -rf '%s'", data);
    cr_assert_eq (system (command), 0);
}

Test (e2e, worker_reconnects_when_the_broker_is_silent)
{
    const char *functions [] = {S_SQUARE, NULL};
    const char *fast [] = {"--heartbeat", "100", "--liveness", "3", NULL};
    size_t index = cluster.nworkers;
    drv_test_cluster_worker_flags (&cluster, 1, functions, fast);
    s_await_workers ("square", "3");
    //  Frozen, the broker answers nothing: the worker takes it as gone.
    kill (cluster.broker, SIGSTOP);
    zclock_sleep (1000);
    kill (cluster.broker, SIGCONT);
    s_await_workers ("square", "4");
    char path [256];
    drv_test_cluster_worker_log (&cluster, index, path, sizeof path);
    char *log = s_slurp (path);
    cr_assert_neq (strstr (log, "silent for"), NULL, "%s", log);
    cr_assert_neq (strstr (log, "is back"), NULL, "%s", log);
    free (log);
    const char *args [] = {"map", "square", NULL};
    drv_test_output_t out = s_cli (args, "5\n6\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "25\n36\n");
    drv_test_output_free (&out);
}

Test (e2e, failed_task_is_retried_until_it_succeeds)
{
    char counter [256];
    snprintf (counter, sizeof counter, "%s/counter", cluster.dir);
    const char *args [] = {"submit", "flaky", "--data", counter, "--retries", "3", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "ok after 3\n", "two failures, then success");
    drv_test_output_free (&out);
}

Test (e2e, task_out_of_retries_fails_with_the_last_reason)
{
    char counter [256];
    snprintf (counter, sizeof counter, "%s/counter", cluster.dir);
    const char *args [] = {"submit", "flaky", "--data", counter, "--retries", "1", NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "exit status 1: flake 2"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

Test (e2e, lease_ends_when_a_frozen_worker_never_answers)
{
    //  Liveness so long that only the lease can notice: the worker is
    //  frozen (SIGSTOP) with the task, whose timeout is 200 ms.
    drv_test_cluster_stop (&cluster);
    const char *slow_liveness [] = {"--heartbeat", "1000", "--liveness", "60", NULL};
    drv_test_cluster_start (&cluster, slow_liveness);
    const char *functions [] = {S_SLOW, NULL};
    pid_t worker = drv_test_cluster_worker_flags (&cluster, 1, functions, slow_liveness);
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_options_t options = {.timeout_ms = 200};
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "slow", "30", 2, &options, &job_id), 0);
    drover_status_t status;
    s_await_dispatch (client, job_id, &status);
    kill (worker, SIGSTOP);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 20000, &result), 0, "%s",
                  drover_client_error (client));
    kill (worker, SIGCONT);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_TIMEOUT);
    cr_assert_neq (strstr (result->reason, "lease ended"), NULL, "%s", result->reason);
    drover_result_destroy (&result);
    drover_client_destroy (&client);
}

Test (e2e, cancel_kills_a_running_task)
{
    drover_client_t *client = drover_client_new (cluster.clients);
    uint64_t job_id;
    cr_assert_eq (drover_client_submit (client, "slow", "30", 2, NULL, &job_id), 0);
    drover_status_t status;
    s_await_dispatch (client, job_id, &status);
    char id [32];
    snprintf (id, sizeof id, "%" PRIu64, job_id);
    const char *args [] = {"cancel", id, NULL};
    drv_test_output_t out = s_cli (args, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "failed (cancelled)"), NULL, "%s", out.out);
    drv_test_output_free (&out);
    drover_result_t *result;
    cr_assert_eq (drover_client_wait (client, job_id, 10000, &result), 0);
    cr_assert_eq (result->outcome, DROVER_OUTCOME_CANCELLED);
    drover_result_destroy (&result);
    //  The worker killed the task: its slot serves the next one at once.
    const char *next [] = {"submit", "slow", "--data", "0", NULL};
    out = s_cli (next, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    drv_test_output_free (&out);
    drover_client_destroy (&client);
}

Test (e2e, dead_letters_can_be_listed_shown_retried_and_purged)
{
    char counter [256];
    snprintf (counter, sizeof counter, "%s/counter", cluster.dir);
    //  Fails on its first run: a dead letter.
    const char *submit [] = {"submit", "flaky", "--data", counter, NULL};
    drv_test_output_t out = s_cli (submit, NULL);
    cr_assert_eq (out.status, 1);
    drv_test_output_free (&out);
    const char *list [] = {"dead", NULL};
    out = s_cli (list, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, "\tflaky\t1\terror\texit status 1: flake 1"), NULL, "%s",
                   out.out);
    long id = strtol (out.out, NULL, 10);
    drv_test_output_free (&out);
    char text [32];
    snprintf (text, sizeof text, "%ld", id);
    const char *show [] = {"dead", "show", text, NULL};
    out = s_cli (show, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_neq (strstr (out.out, counter), NULL, "the input is shown: %s", out.out);
    drv_test_output_free (&out);
    //  Retried twice: fails once more, then succeeds (third run).
    const char *retry [] = {"dead", "retry", text, NULL};
    drover_client_t *client = drover_client_new (cluster.clients);
    for (int round = 0; round < 2; round++) {
        out = s_cli (retry, NULL);
        cr_assert_eq (out.status, 0, "%s", out.err);
        cr_assert_str_eq (out.out, "queued again: 1 job\n");
        drv_test_output_free (&out);
        drover_status_t status;
        do {
            cr_assert_eq (drover_client_status (client, (uint64_t) id, &status), 0);
        } while (status.state < DROVER_JOB_SUCCEEDED);
        cr_assert_eq (status.state, round == 0 ? DROVER_JOB_FAILED : DROVER_JOB_SUCCEEDED);
    }
    drover_client_destroy (&client);
    out = s_cli (list, NULL);
    cr_assert_str_eq (out.out, "no dead letters\n");
    drv_test_output_free (&out);
    //  Purge: a failing map leaves dead letters; purge all forgets them.
    const char *map [] = {"map", "fail", NULL};
    out = s_cli (map, "3\n3\n");
    drv_test_output_free (&out);
    const char *purge [] = {"dead", "purge", "all", NULL};
    out = s_cli (purge, NULL);
    cr_assert_str_eq (out.out, "purged: 2 jobs\n", "%s", out.err);
    drv_test_output_free (&out);
    out = s_cli (list, NULL);
    cr_assert_str_eq (out.out, "no dead letters\n");
    drv_test_output_free (&out);
}

static void s_full_disk_run (const char *data, const char *log, char *line, size_t line_size,
                             int *status_p, ssize_t *acknowledged_p);

Test (e2e, durable_broker_stops_when_its_disk_fails)
{
    //  A broker whose files may not grow past 2 MiB (ulimit -f): the job
    //  store's commit fails, and the broker must stop acknowledging and
    //  exit 1 saying why, not carry on or crash.
    char data [300], log [300], line [1200];
    snprintf (data, sizeof data, "%s/data", cluster.dir);
    snprintf (log, sizeof log, "%s/full.log", cluster.dir);
    //  A free port may be taken by another connection before the broker
    //  binds it (the suite's other sockets, a busy machine): then it says
    //  so and exits, and the test picks other ports.
    int status = 0;
    ssize_t acknowledged = 0;
    char *text = NULL;
    for (int attempt = 0; attempt < 5; attempt++) {
        free (text);
        unlink (log);
        s_full_disk_run (data, log, line, sizeof line, &status, &acknowledged);
        text = s_slurp (log);
        if (!strstr (text, "cannot bind"))
            break;
    }
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 1, "broker exit: %d", status);
    cr_assert (acknowledged > 0 && acknowledged < 40, "acknowledged %zd", acknowledged);
    cr_assert_neq (strstr (text, "cannot write the job store"), NULL, "%s", text);
    free (text);
}

//  One run of the full-disk test: a broker whose files may not grow past
//  2 MiB, and a client submitting 256 KiB jobs at it.
static void
s_full_disk_run (const char *data, const char *log, char *line, size_t line_size, int *status_p,
                 ssize_t *acknowledged_p)
{
    int port = drv_test_free_port ();
    snprintf (line, line_size,
              "ulimit -f 2048 && exec " DRV_BROKER_BIN " --clients tcp://127.0.0.1:%d "
              "--workers tcp://127.0.0.1:%d --data '%s'",
              port, drv_test_free_port (), data);
    const char *argv [] = {"/bin/sh", "-c", line, NULL};
    pid_t broker = drv_test_spawn (argv, log);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    //  A client in a child process submits 256 KiB jobs and reports each
    //  acknowledgement on a pipe. The submit the disk cannot hold is never
    //  acknowledged (the client waits for a broker to come back).
    int pipe_fds [2];
    cr_assert_eq (pipe (pipe_fds), 0);
    pid_t submitter = fork ();
    if (submitter == 0) {
        close (pipe_fds [0]);
        drover_client_t *client = drover_client_new (endpoint);
        size_t size = 256 * 1024;
        char *payload = malloc (size);
        memset (payload, 'x', size);
        for (int i = 0; i < 40; i++) {
            uint64_t job_id;
            if (drover_client_submit (client, "nobody", payload, size, NULL, &job_id) == 0
                && write (pipe_fds [1], "a", 1) != 1)
                break;
        }
        _exit (0);
    }
    close (pipe_fds [1]);
    *status_p = drv_test_stop (broker, 0, 30000);
    kill (submitter, SIGKILL);
    waitpid (submitter, NULL, 0);
    char acks [64];
    *acknowledged_p = read (pipe_fds [0], acks, sizeof acks);
    close (pipe_fds [0]);
}

Test (e2e, daemons_stop_cleanly_on_sigterm)
{
    for (size_t i = 0; i < cluster.nworkers; i++) {
        int status = drv_test_stop (cluster.worker [i], SIGTERM, 5000);
        cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "worker %zu: %d", i, status);
    }
    int status = drv_test_stop (cluster.broker, SIGINT, 5000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "broker: %d", status);
    cluster.nworkers = 0;
    cluster.broker = 0;
}

//  Programs without a cluster.
Test (cli, every_program_has_help, .timeout = 30)
{
    const char *programs [] = {DRV_BROKER_BIN, DRV_WORKER_BIN, DRV_CLI_BIN};
    for (int i = 0; i < 3; i++) {
        const char *argv [] = {programs [i], "--help", NULL};
        drv_test_output_t out = drv_test_run (argv, NULL, NULL, 10000);
        cr_assert_eq (out.status, 0, "%s --help", programs [i]);
        cr_assert_neq (strstr (out.out, "Usage:"), NULL, "%s", out.out);
        drv_test_output_free (&out);
    }
    drv_test_reap_all ();
}

Test (cli, usage_errors_say_what_to_do, .timeout = 30)
{
    const char *no_broker [] = {DRV_CLI_BIN, "map", "square", NULL};
    drv_test_output_t out = drv_test_run (no_broker, NULL, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "DROVER_BROKER"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *bad_function [] = {DRV_WORKER_BIN, "--broker", "tcp://127.0.0.1:1", "--function",
                                   "square=python:sq.py", NULL};
    out = drv_test_run (bad_function, NULL, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "exec:PROGRAM"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *everywhere [] = {DRV_BROKER_BIN, "--clients", "tcp://0.0.0.0:0", "--workers",
                                 "tcp://127.0.0.1:0", NULL};
    out = drv_test_run (everywhere, NULL, NULL, 10000);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "give --insecure to listen there anyway"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *no_workers [] = {DRV_BROKER_BIN, "--clients", "tcp://127.0.0.1:1", NULL};
    out = drv_test_run (no_workers, NULL, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--workers"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    drv_test_reap_all ();
}
