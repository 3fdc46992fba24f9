/*  test_admin - the admin views, end to end: drover jobs, workers,
    queues and stats against a real broker holding known jobs and a real
    worker, as tables and as JSON lines; their filters and limits; the
    bound that --max-message puts on a reply; what a broker too old for
    the views makes of them; and the Prometheus metrics, fetched from the
    broker's --metrics endpoint with a plain TCP client and printed by
    drover stats --prometheus. Every process started is reaped, also when
    a test fails. No timing is asserted.
*/

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <czmq.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_metrics.h"
#include "drv_testutil.h"

#define S_SQUARE "square=exec:awk {print($1*$1)}"
#define S_SLOW "slow=exec:" DRV_TEST_SCRIPTS "/slow"

static drv_test_cluster_t cluster;
static int metrics_port;

static drv_test_output_t
s_cli (const char *const args [])
{
    return drv_test_cli (&cluster, args, NULL, 120000);
}

//  Run the CLI, expect exit 0, and return its stdout (the caller frees).
static char *
s_cli_ok (const char *const args [])
{
    drv_test_output_t out = s_cli (args);
    cr_assert_eq (out.status, 0, "drover %s: exit %d, stderr: %s", args [0], out.status,
                  out.err);
    char *text = out.out;
    out.out = NULL;
    drv_test_output_free (&out);
    return text;
}

//  Lines in text, and lines that contain needle.
static size_t
s_lines (const char *text, const char *needle)
{
    size_t count = 0;
    const char *line = text;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        size_t length = end ? (size_t) (end - line) : strlen (line);
        char *copy = strndup (line, length);
        if (!needle || strstr (copy, needle))
            count++;
        free (copy);
        line = end ? end + 1 : NULL;
    }
    return count;
}

//  Wait (bounded) until a worker offers function.
static void
s_wait_worker (drover_client_t *client, const char *function)
{
    drover_queue_t queue = {0};
    for (int i = 0; i < 3000; i++) {
        if (drover_client_queue (client, function, &queue) == 0 && queue.workers > 0)
            return;
        zclock_sleep (10);
    }
    cr_assert (false, "no worker registered for %s", function);
}

//  Wait (bounded) until job id runs.
static void
s_wait_running (drover_client_t *client, uint64_t id)
{
    drover_status_t status = {0};
    for (int i = 0; i < 3000; i++) {
        if (drover_client_status (client, id, &status) == 0 && status.state == DROVER_JOB_RUNNING)
            return;
        zclock_sleep (10);
    }
    cr_assert (false, "job %" PRIu64 " never ran", id);
}

//  The broker with --metrics on a free port, one worker with one slot
//  offering square and slow, and six jobs: three squares done, a slow
//  one running, a slow one queued behind it, and a square delayed by a
//  minute.
static uint64_t ids [6];

static void
setup_jobs (void)
{
    metrics_port = drv_test_free_port ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "127.0.0.1:%d", metrics_port);
    const char *flags [] = {"--metrics", endpoint, NULL};
    drv_test_cluster_start (&cluster, flags);
    const char *functions [] = {S_SQUARE, S_SLOW, NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    drover_client_t *client = drover_client_new (cluster.clients);
    s_wait_worker (client, "slow");
    for (int i = 0; i < 3; i++) {
        char data [8];
        snprintf (data, sizeof data, "%d", i + 1);
        drover_result_t *result = NULL;
        cr_assert_eq (drover_client_apply (client, "square", data, strlen (data), NULL, 60000,
                                           &result),
                      0, "%s", drover_client_error (client));
        ids [i] = result->job_id;
        drover_result_destroy (&result);
    }
    drover_options_t detach = {.detach = true};
    cr_assert_eq (drover_client_submit (client, "slow", "60", 2, &detach, &ids [3]), 0);
    s_wait_running (client, ids [3]);
    cr_assert_eq (drover_client_submit (client, "slow", "60", 2, &detach, &ids [4]), 0);
    drover_options_t later = {.detach = true, .delay_ms = 60000};
    cr_assert_eq (drover_client_submit (client, "square", "7", 1, &later, &ids [5]), 0);
    drover_client_destroy (&client);
}

static void
teardown (void)
{
    drv_test_cluster_stop (&cluster);
}

TestSuite (admin, .timeout = 300);

Test (admin, jobs_table_and_json, .init = setup_jobs, .fini = teardown)
{
    const char *table [] = {"jobs", NULL};
    char *text = s_cli_ok (table);
    //  A header and one aligned row per job, oldest first.
    cr_assert_eq (s_lines (text, NULL), 7, "drover jobs:\n%s", text);
    cr_assert (strncmp (text, "ID  FUNCTION  STATE", 19) == 0, "header: %s", text);
    cr_assert_eq (s_lines (text, "succeeded"), 3, "%s", text);
    cr_assert_eq (s_lines (text, " running "), 1, "%s", text);
    cr_assert_eq (s_lines (text, " queued "), 1, "%s", text);
    cr_assert_eq (s_lines (text, " delayed "), 1, "%s", text);
    char first [32];
    snprintf (first, sizeof first, "%" PRIu64 "  square", ids [0]);
    cr_assert (strstr (strchr (text, '\n') + 1, first) != NULL, "oldest first: %s", text);
    //  The columns line up: the last one is right-aligned, so every row
    //  is as wide as the header.
    size_t width = (size_t) (strchr (text, '\n') - text);
    for (const char *line = strchr (text, '\n') + 1; *line; line = strchr (line, '\n') + 1)
        cr_assert_eq ((size_t) (strchr (line, '\n') - line), width, "ragged row in:\n%s", text);
    free (text);

    const char *json [] = {"jobs", "--json", NULL};
    text = s_cli_ok (json);
    cr_assert_eq (s_lines (text, NULL), 6, "%s", text);
    cr_assert_eq (s_lines (text, "{\"job_id\":"), 6, "%s", text);
    cr_assert_eq (s_lines (text, "\"state\":\"succeeded\""), 3, "%s", text);
    cr_assert_eq (s_lines (text, "\"state\":\"delayed\""), 1, "%s", text);
    cr_assert_eq (s_lines (text, "\"state\":\"queued\""), 1, "%s", text);
    cr_assert_eq (s_lines (text, "\"outcome\":\"ok\""), 3, "%s", text);
    cr_assert_eq (s_lines (text, "\"age_ms\":"), 6, "%s", text);
    char running [128];
    snprintf (running, sizeof running,
              "{\"job_id\":%" PRIu64 ",\"function\":\"slow\",\"state\":\"running\",\"priority\":0,"
              "\"attempts\":1,\"worker\":\"",
              ids [3]);
    cr_assert (strstr (text, running), "running job in:\n%s", text);
    free (text);
}

Test (admin, jobs_filters_and_limits, .init = setup_jobs, .fini = teardown)
{
    const char *running [] = {"jobs", "--json", "--state", "running", NULL};
    char *text = s_cli_ok (running);
    cr_assert_eq (s_lines (text, NULL), 1, "%s", text);
    cr_assert (strstr (text, "\"function\":\"slow\""), "%s", text);
    free (text);

    const char *slow [] = {"jobs", "--json", "--function", "slow", NULL};
    text = s_cli_ok (slow);
    cr_assert_eq (s_lines (text, "\"function\":\"slow\""), 2, "%s", text);
    cr_assert_eq (s_lines (text, NULL), 2, "%s", text);
    free (text);

    const char *finished [] = {"jobs", "--json", "--state", "finished", "--function", "square",
                               NULL};
    text = s_cli_ok (finished);
    cr_assert_eq (s_lines (text, NULL), 3, "%s", text);
    free (text);

    //  --limit keeps the oldest, --newest the newest; stderr says so.
    const char *oldest [] = {"jobs", "--json", "--limit", "2", NULL};
    drv_test_output_t out = s_cli (oldest);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_eq (s_lines (out.out, NULL), 2, "%s", out.out);
    char id [48];
    snprintf (id, sizeof id, "{\"job_id\":%" PRIu64 ",", ids [0]);
    cr_assert (strncmp (out.out, id, strlen (id)) == 0, "%s", out.out);
    cr_assert (strstr (out.err, "showing 2 of 6 jobs"), "stderr: %s", out.err);
    drv_test_output_free (&out);

    const char *newest [] = {"jobs", "--json", "--limit", "1", "--newest", NULL};
    text = s_cli_ok (newest);
    snprintf (id, sizeof id, "{\"job_id\":%" PRIu64 ",", ids [5]);
    cr_assert (strncmp (text, id, strlen (id)) == 0, "%s", text);
    free (text);

    //  Bad filters are usage errors, before any broker is asked.
    const char *bad_state [] = {"jobs", "--state", "sleeping", NULL};
    out = s_cli (bad_state);
    cr_assert_eq (out.status, 2, "%s", out.err);
    drv_test_output_free (&out);
    const char *bad_limit [] = {"jobs", "--limit", "0", NULL};
    out = s_cli (bad_limit);
    cr_assert_eq (out.status, 2, "%s", out.err);
    drv_test_output_free (&out);
    const char *stray [] = {"queues", "--state", "queued", NULL};
    out = s_cli (stray);
    cr_assert_eq (out.status, 2, "%s", out.err);
    drv_test_output_free (&out);

    //  The SDK: the same view, with the total.
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_jobs_query_t query = {.state = DROVER_JOBS_DELAYED};
    drover_job_info_t *jobs = NULL;
    size_t count = 0;
    uint64_t total = 0;
    cr_assert_eq (drover_client_jobs (client, &query, &jobs, &count, &total), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (count, 1);
    cr_assert_eq (total, 1);
    cr_assert_eq (jobs [0].job_id, ids [5]);
    cr_assert_eq (jobs [0].state, DROVER_JOB_QUEUED);
    cr_assert (jobs [0].delayed);
    cr_assert (jobs [0].run_in_ms > 0);
    drover_jobs_destroy (&jobs);
    cr_assert_null (jobs);
    query = (drover_jobs_query_t) {.limit = 10001};
    cr_assert_eq (drover_client_jobs (client, &query, &jobs, &count, &total), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_INVALID);
    drover_client_destroy (&client);
}

Test (admin, workers_queues_stats, .init = setup_jobs, .fini = teardown)
{
    const char *workers [] = {"workers", "--json", NULL};
    char *text = s_cli_ok (workers);
    cr_assert_eq (s_lines (text, NULL), 1, "%s", text);
    cr_assert (strstr (text, "\"functions\":[\"square\",\"slow\"]"), "%s", text);
    cr_assert (strstr (text, "\"slots\":1,\"running\":1,\"done\":3,"), "%s", text);
    cr_assert (strstr (text, "\"identity\":\"W"), "%s", text);
    free (text);
    const char *workers_table [] = {"workers", NULL};
    text = s_cli_ok (workers_table);
    cr_assert_eq (s_lines (text, NULL), 2, "%s", text);
    cr_assert (strncmp (text, "NAME", 4) == 0, "%s", text);
    cr_assert (strstr (text, "square,slow"), "%s", text);
    free (text);

    const char *queues [] = {"queues", "--json", NULL};
    text = s_cli_ok (queues);
    cr_assert_eq (s_lines (text, NULL), 2, "%s", text);
    //  By name: slow before square.
    cr_assert (strncmp (text, "{\"function\":\"slow\",\"paused\":false,\"limit\":0,", 44) == 0,
               "%s", text);
    cr_assert (strstr (text, "\"queued\":1,\"delayed\":0,\"running\":1,\"workers\":1}"), "%s", text);
    cr_assert (strstr (text, "\"queued\":0,\"delayed\":1,\"running\":0,\"workers\":1}"), "%s", text);
    free (text);
    const char *pause [] = {"pause", "square", NULL};
    free (s_cli_ok (pause));
    const char *queues_table [] = {"queues", NULL};
    text = s_cli_ok (queues_table);
    cr_assert_eq (s_lines (text, NULL), 3, "%s", text);
    cr_assert_eq (s_lines (text, " yes "), 1, "%s", text);
    free (text);

    const char *stats [] = {"stats", "--json", NULL};
    text = s_cli_ok (stats);
    cr_assert (strstr (text, "\"submitted\":6,\"dispatched\":4,\"succeeded\":3,\"failed\":0,"),
               "%s", text);
    cr_assert (strstr (text, "\"workers\":1,\"jobs\":6,"), "%s", text);
    cr_assert (strstr (text, "\"durable\":false}"), "%s", text);
    free (text);
    const char *stats_text [] = {"stats", NULL};
    text = s_cli_ok (stats_text);
    cr_assert (strstr (text, "jobs submitted       6\n"), "%s", text);
    cr_assert (strstr (text, "workers connected    1\n"), "%s", text);
    free (text);

    //  The SDK sees the same.
    drover_client_t *client = drover_client_new (cluster.clients);
    drover_worker_info_t *list = NULL;
    size_t count = 0, total = 0;
    cr_assert_eq (drover_client_workers (client, &list, &count, &total), 0);
    cr_assert_eq (count, 1);
    cr_assert_eq (total, 1);
    cr_assert_eq (list [0].nfunctions, 2);
    cr_assert_str_eq (list [0].functions [1], "slow");
    drover_workers_destroy (&list, count);
    drover_stats_t figures;
    cr_assert_eq (drover_client_stats (client, &figures), 0);
    cr_assert_eq (figures.submitted, 6);
    cr_assert (figures.clients >= 1, "this client is connected");
    drover_client_destroy (&client);
}

//  Fetch path from the broker's --metrics endpoint with a plain TCP
//  client: connect, send the request, read until the broker closes.
static char *
s_http_get (const char *path)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons (metrics_port)};
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    int fd = -1;
    //  The broker may still be starting: try for a while.
    for (int i = 0; i < 500 && fd == -1; i++) {
        fd = socket (AF_INET, SOCK_STREAM, 0);
        cr_assert (fd >= 0);
        if (connect (fd, (struct sockaddr *) &address, sizeof address) == -1) {
            close (fd);
            fd = -1;
            zclock_sleep (20);
        }
    }
    cr_assert (fd >= 0, "cannot connect to the metrics endpoint");
    struct timeval timeout = {.tv_sec = 60};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char request [256];
    int length = snprintf (request, sizeof request,
                           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n", path);
    cr_assert_eq (write (fd, request, (size_t) length), length);
    size_t size = 0, capacity = 65536;
    char *text = (char *) malloc (capacity);
    ssize_t got;
    while ((got = read (fd, text + size, capacity - size - 1)) > 0) {
        size += (size_t) got;
        if (size + 1 == capacity)
            text = (char *) realloc (text, capacity *= 2);
    }
    close (fd);
    text [size] = 0;
    return text;
}

Test (admin, metrics_endpoint, .init = setup_jobs, .fini = teardown)
{
    char *page = s_http_get ("/metrics");
    cr_assert (strncmp (page, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", page);
    cr_assert (strstr (page, "Content-Type: text/plain; version=0.0.4"), "%s", page);
    char *body = strstr (page, "\r\n\r\n");
    cr_assert_not_null (body);
    body += 4;
    char *header = strstr (page, "Content-Length: ");
    cr_assert_not_null (header);
    cr_assert_eq (strtoul (header + 16, NULL, 10), strlen (body), "the whole body came");
    cr_assert (strstr (body, "# HELP drover_jobs_submitted_total "), "%s", body);
    cr_assert (strstr (body, "# TYPE drover_jobs_submitted_total counter\n"
                             "drover_jobs_submitted_total 6\n"),
               "%s", body);
    cr_assert (strstr (body, "drover_jobs_succeeded_total 3\n"), "%s", body);
    cr_assert (strstr (body, "# TYPE drover_workers_connected gauge\ndrover_workers_connected 1\n"),
               "%s", body);
    cr_assert (strstr (body, "drover_queue_queued{function=\"slow\"} 1\n"), "%s", body);
    cr_assert (strstr (body, "drover_queue_running{function=\"slow\"} 1\n"), "%s", body);
    cr_assert (strstr (body, "drover_queue_delayed{function=\"square\"} 1\n"), "%s", body);
    cr_assert (strstr (body, "drover_queue_workers{function=\"square\"} 1\n"), "%s", body);
    //  Every sample line belongs to the family its TYPE line announced.
    const char *family = NULL;
    for (char *line = strtok (body, "\n"); line; line = strtok (NULL, "\n")) {
        if (strncmp (line, "# TYPE ", 7) == 0)
            family = line + 7;
        else
        if (line [0] != '#') {
            cr_assert_not_null (family, "sample before any TYPE: %s", line);
            size_t name = strcspn (family, " ");
            cr_assert (strncmp (line, family, name) == 0 && strchr (" {", line [name]),
                       "sample %s outside its family %s", line, family);
        }
    }
    free (page);

    page = s_http_get ("/other");
    cr_assert (strncmp (page, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", page);
    free (page);
    //  The endpoint keeps serving after that.
    page = s_http_get ("/metrics?name=x");
    cr_assert (strncmp (page, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", page);
    free (page);

    //  drover stats --prometheus prints the same families.
    const char *prometheus [] = {"stats", "--prometheus", NULL};
    char *text = s_cli_ok (prometheus);
    cr_assert (strncmp (text, "# HELP drover_uptime_seconds ", 29) == 0, "%s", text);
    cr_assert (strstr (text, "drover_jobs_submitted_total 6\n"), "%s", text);
    cr_assert (strstr (text, "drover_queue_queued{function=\"slow\"} 1\n"), "%s", text);
    free (text);
}

Test (admin, metrics_loopback_only, .timeout = 60)
{
    char endpoint [64], clients [64], workers [64];
    snprintf (endpoint, sizeof endpoint, "0.0.0.0:%d", drv_test_free_port ());
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", drv_test_free_port ());
    const char *argv [] = {DRV_BROKER_BIN, "--clients", clients, "--workers", workers,
                           "--metrics", endpoint, NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 30000);
    cr_assert_eq (out.status, 1, "exit %d: %s", out.status, out.err);
    cr_assert (strstr (out.err, "refusing to serve metrics on tcp://0.0.0.0:"), "%s", out.err);
    drv_test_output_free (&out);
}

//  A reply never outgrows --max-message: with 4 KiB messages and long
//  function names, a job list stops short and says how many there were.
Test (admin, reply_bounded_by_max_message, .timeout = 120)
{
    const char *flags [] = {"--max-message", "4096", "--max-payload", "1024", NULL};
    drv_test_cluster_start (&cluster, flags);
    char function [201];
    memset (function, 'f', 200);
    function [200] = 0;
    drover_client_t *client = drover_client_new (cluster.clients);
    const void *payloads [100];
    size_t sizes [100];
    uint64_t job_ids [100];
    for (size_t i = 0; i < 100; i++) {
        payloads [i] = "x";
        sizes [i] = 1;
    }
    cr_assert_eq (drover_client_submit_many (client, function, 100, payloads, sizes, NULL,
                                             job_ids),
                  0, "%s", drover_client_error (client));
    drover_jobs_query_t query = {.limit = 10000};
    drover_job_info_t *jobs = NULL;
    size_t count = 0;
    uint64_t total = 0;
    cr_assert_eq (drover_client_jobs (client, &query, &jobs, &count, &total), 0, "%s",
                  drover_client_error (client));
    cr_assert_eq (total, 100);
    cr_assert (count > 0 && count < 100, "%zu jobs in one 4 KiB reply", count);
    cr_assert_eq (jobs [0].job_id, job_ids [0]);
    drover_jobs_destroy (&jobs);
    drover_queue_t *queues = NULL;
    size_t total_queues = 0;
    cr_assert_eq (drover_client_queues (client, &queues, &count, &total_queues), 0);
    cr_assert_eq (count, 1);
    cr_assert_eq (queues [0].queued, 100);
    drover_queues_destroy (&queues);
    drover_client_destroy (&client);

    const char *cli [] = {"jobs", "--limit", "10000", NULL};
    drv_test_output_t out = s_cli (cli);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert (strstr (out.err, "of 100 jobs"), "stderr: %s", out.err);
    drv_test_output_free (&out);
    drv_test_cluster_stop (&cluster);
}

//  The current broker answers a body it does not know (one of the
//  numbers reserved for later views) with ERR_MALFORMED, echoing the
//  seq: the rule a v1 broker follows for the views themselves.
Test (admin, unknown_body_refused, .timeout = 60)
{
    drv_test_cluster_start (&cluster, NULL);
    zsock_t *dealer = zsock_new_dealer (cluster.clients);
    cr_assert_not_null (dealer);
    //  version 1, seq 7, field 59 (empty message).
    const uint8_t envelope [] = {0x08, 0x01, 0x10, 0x07, 0xDA, 0x03, 0x00};
    zframe_t *frame = zframe_new (envelope, sizeof envelope);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
    zsock_set_rcvtimeo (dealer, 60000);
    frame = zframe_recv (dealer);
    cr_assert_not_null (frame, "no answer");
    drv_msg_t *msg = NULL;
    char err [256];
    drv_limits_t limits = drv_limits_from_broker ();
    cr_assert_eq (drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits, &msg, NULL,
                                    err, sizeof err),
                  DROVER_ERR_NONE, "%s", err);
    cr_assert_eq (msg->type, DRV_MSG_ERROR);
    cr_assert_eq (msg->seq, 7);
    cr_assert_eq (msg->code, DROVER_ERR_MALFORMED);
    drv_msg_destroy (&msg);
    zframe_destroy (&frame);
    zsock_destroy (&dealer);
    drv_test_cluster_stop (&cluster);
}

//  A broker older than the views: it answers every request it does not
//  know with ERR_MALFORMED, as a v1 broker does.
static void
s_old_broker (zsock_t *pipe, void *args)
{
    zsock_t *router = (zsock_t *) args;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;
        zmsg_t *msg = zmsg_recv (router);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *body = zmsg_pop (msg);
        drv_msg_t *decoded = NULL;
        uint64_t seq = 0;
        char err [256];
        drv_codec_decode (zframe_data (body), zframe_size (body), NULL, &decoded, &seq, err,
                          sizeof err);
        bool heartbeat = decoded && decoded->type == DRV_MSG_HEARTBEAT;
        drv_msg_destroy (&decoded);
        if (!heartbeat) {
            zframe_t *reply = drv_codec_error (seq, DROVER_ERR_MALFORMED,
                                               "envelope has no body this broker knows "
                                               "(field 0)");
            zframe_send (&identity, router, ZFRAME_MORE);
            zframe_send (&reply, router, 0);
        }
        zframe_destroy (&identity);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
}

Test (admin, old_broker_said_plainly, .timeout = 120)
{
    zsock_t *router = zsock_new_router ("tcp://127.0.0.1:*");
    cr_assert_not_null (router);
    char *endpoint = zsock_last_endpoint (router);
    zactor_t *old = zactor_new (s_old_broker, router);
    drover_client_t *client = drover_client_new (endpoint);
    drover_stats_t stats;
    cr_assert_eq (drover_client_stats (client, &stats), -1);
    cr_assert_eq (drover_client_error_code (client), DROVER_ERR_MALFORMED);
    cr_assert (strstr (drover_client_error (client), "too old for its counters (drover stats)"),
               "%s", drover_client_error (client));
    drover_client_destroy (&client);

    const char *argv [] = {DRV_CLI_BIN, "--broker", endpoint, "workers", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 60000);
    cr_assert_eq (out.status, 3, "exit %d: %s", out.status, out.err);
    cr_assert (strstr (out.err, "is too old for the worker list (drover workers)"), "%s",
               out.err);
    drv_test_output_free (&out);
    zactor_destroy (&old);
    zsock_destroy (&router);
    zstr_free (&endpoint);
}

//  The metrics text escapes label values as the format says, even where
//  function names cannot hold such characters today, and marks a list
//  the broker had to cut.
Test (admin, metrics_text_escapes_labels)
{
    drover_stats_t stats = {.uptime_ms = 1500, .submitted = 3, .durable = true, .commits = 2};
    drover_queue_t queues [2] = {{.function = "a\"b\\c\nd", .queued = 4}, {.function = "ok"}};
    char *text = drv_metrics_text (&stats, queues, 2, 5);
    cr_assert_not_null (text);
    cr_assert (strstr (text, "drover_uptime_seconds 1.500\n"), "%s", text);
    cr_assert (strstr (text, "drover_queue_queued{function=\"a\\\"b\\\\c\\nd\"} 4\n"), "%s", text);
    cr_assert (strstr (text, "drover_queue_queued{function=\"ok\"} 0\n"), "%s", text);
    cr_assert (strstr (text, "drover_store_commits_total 2\n"), "%s", text);
    cr_assert (strstr (text, "# drover: 2 of 5 functions shown"), "%s", text);
    free (text);
    stats.durable = false;
    text = drv_metrics_text (&stats, NULL, 0, 0);
    cr_assert_null (strstr (text, "drover_store_commits_total"), "%s", text);
    cr_assert (strstr (text, "# TYPE drover_queue_queued gauge\n"), "%s", text);
    free (text);
}
