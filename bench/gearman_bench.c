/*  gearman_bench - gearmand's side of the benchmark, on libgearman from
    Debian: a worker offering echo, sum and sumsq (bench_common.h), and
    the clients of workloads A, B, D and E.

    Usage:
      gearman_bench worker HOST PORT
      gearman_bench tput HOST PORT FUNCTION COUNT SIZE BATCH
      gearman_bench lat HOST PORT FUNCTION WARMUP COUNT SIZE
      gearman_bench fill HOST PORT COUNT SIZE

    tput adds BATCH tasks at a time and runs them together
    (gearman_client_run_tasks): libgearman's client slows down with very
    many tasks in flight, so batches of a few hundred are its best. Every
    result is checked in the complete callback. lat runs one
    gearman_client_do at a time. fill queues COUNT background jobs for a
    function no worker offers.
*/

#include <libgearman/gearman.h>

#include "bench_common.h"

typedef struct {
    const char *function;            //  echo or sum
    size_t size;                     //  payload bytes
    uint8_t *expected;               //  scratch for the expected payload
    size_t completed;                //  results checked
} s_run_t;

static gearman_return_t
s_on_complete (gearman_task_st *task)
{
    s_run_t *run = (s_run_t *) gearman_task_context (task);
    //  The task's context is the run; its index travels in the payload.
    const uint8_t *data = (const uint8_t *) gearman_task_data (task);
    size_t size = gearman_task_data_size (task);
    if (strcmp (run->function, "sum") == 0) {
        //  The sum result is checksum (8 bytes) then the 16-byte index.
        if (size != 24)
            bench_die ("gearman_bench: short sum result");
        char head [17];
        memcpy (head, data + 8, 16);
        head [16] = 0;
        uint64_t got;
        memcpy (&got, data, 8);
        if (got != bench_payload_checksum (run->size, strtoull (head, NULL, 16)))
            bench_die ("gearman_bench: wrong checksum");
    }
    else {
        if (size != run->size || size < 16)
            bench_die ("gearman_bench: result of %zu bytes, not %zu", size, run->size);
        char head [17];
        memcpy (head, data, 16);
        head [16] = 0;
        bench_payload (run->expected, run->size, strtoull (head, NULL, 16));
        if (memcmp (data, run->expected, size) != 0)
            bench_die ("gearman_bench: result is not its payload");
    }
    run->completed++;
    return GEARMAN_SUCCESS;
}

static gearman_return_t
s_on_fail (gearman_task_st *task)
{
    (void) task;
    bench_die ("gearman_bench: a task failed");
}

static gearman_client_st *
s_client (const char *host, const char *port)
{
    gearman_client_st *client = gearman_client_create (NULL);
    if (!client || gearman_client_add_server (client, host, (in_port_t) atoi (port))
                       != GEARMAN_SUCCESS)
        bench_die ("gearman_bench: cannot set up a client for %s:%s", host, port);
    gearman_client_set_timeout (client, 120000);
    return client;
}

static int
s_tput (const char *host, const char *port, const char *function, size_t count, size_t size,
        size_t batch)
{
    gearman_client_st *client = s_client (host, port);
    gearman_client_add_options (client, GEARMAN_CLIENT_FREE_TASKS);
    gearman_client_set_complete_fn (client, s_on_complete);
    gearman_client_set_fail_fn (client, s_on_fail);
    s_run_t run = { function, size, (uint8_t *) malloc (size), 0 };
    uint8_t *payload = (uint8_t *) malloc (size);
    if (!run.expected || !payload)
        bench_die ("gearman_bench: out of memory");
    int64_t start = bench_now_us ();
    for (size_t done = 0; done < count;) {
        size_t n = count - done < batch ? count - done : batch;
        for (size_t i = 0; i < n; i++) {
            bench_payload (payload, size, done + i);
            gearman_return_t rc;
            //  The workload is copied into the task's packet here.
            if (!gearman_client_add_task (client, NULL, &run, function, NULL, payload, size,
                                          &rc)
                || rc != GEARMAN_SUCCESS)
                bench_die ("gearman_bench: add_task: %s", gearman_client_error (client));
        }
        gearman_return_t rc = gearman_client_run_tasks (client);
        if (rc != GEARMAN_SUCCESS)
            bench_die ("gearman_bench: run_tasks: %s", gearman_client_error (client));
        done += n;
    }
    int64_t elapsed = bench_now_us () - start;
    if (run.completed != count)
        bench_die ("gearman_bench: %zu results for %zu tasks", run.completed, count);
    bench_report ((double) count * 1e6 / (double) elapsed, -1, -1);
    gearman_client_free (client);
    free (payload);
    free (run.expected);
    return 0;
}

static int
s_lat (const char *host, const char *port, const char *function, size_t warmup, size_t count,
       size_t size)
{
    gearman_client_st *client = s_client (host, port);
    uint8_t *payload = (uint8_t *) malloc (size);
    int64_t *samples = (int64_t *) calloc (count, sizeof (int64_t));
    if (!payload || !samples)
        bench_die ("gearman_bench: out of memory");
    int64_t start = 0;
    for (size_t i = 0; i < warmup + count; i++) {
        if (i == warmup)
            start = bench_now_us ();
        bench_payload (payload, size, i);
        size_t result_size;
        gearman_return_t rc;
        int64_t before = bench_now_us ();
        void *result = gearman_client_do (client, function, NULL, payload, size, &result_size,
                                          &rc);
        int64_t after = bench_now_us ();
        if (rc != GEARMAN_SUCCESS || !result || result_size != size
            || memcmp (result, payload, size) != 0)
            bench_die ("gearman_bench: task %zu: wrong or no result", i);
        free (result);
        if (i >= warmup)
            samples [i - warmup] = after - before;
    }
    int64_t elapsed = bench_now_us () - start;
    int64_t p50 = bench_percentile (samples, count, 50);
    int64_t p99 = bench_percentile (samples, count, 99);
    bench_report ((double) count * 1e6 / (double) elapsed, p50, p99);
    gearman_client_free (client);
    free (samples);
    free (payload);
    return 0;
}

static int
s_fill (const char *host, const char *port, size_t count, size_t size)
{
    gearman_client_st *client = s_client (host, port);
    gearman_client_add_options (client, GEARMAN_CLIENT_FREE_TASKS);
    uint8_t payload [64];
    if (size > sizeof payload)
        bench_die ("gearman_bench: fill takes payloads of 16 to 64 bytes");
    for (size_t done = 0; done < count;) {
        size_t n = count - done < 1000 ? count - done : 1000;
        for (size_t i = 0; i < n; i++) {
            bench_payload (payload, size, done + i);
            gearman_return_t rc;
            if (!gearman_client_add_task_background (client, NULL, NULL, "parked", NULL,
                                                     payload, size, &rc)
                || rc != GEARMAN_SUCCESS)
                bench_die ("gearman_bench: add_task_background: %s",
                           gearman_client_error (client));
        }
        if (gearman_client_run_tasks (client) != GEARMAN_SUCCESS)
            bench_die ("gearman_bench: run_tasks: %s", gearman_client_error (client));
        done += n;
    }
    printf ("FILLED %zu\n", count);
    gearman_client_free (client);
    return 0;
}

//  gearman_worker_fn: results are malloc'ed; libgearman frees them.
static void *
s_echo (gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret_ptr)
{
    (void) context;
    size_t size = gearman_job_workload_size (job);
    void *result = malloc (size ? size : 1);
    if (size)
        memcpy (result, gearman_job_workload (job), size);
    *result_size = size;
    *ret_ptr = GEARMAN_SUCCESS;
    return result;
}

static void *
s_sum (gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret_ptr)
{
    (void) context;
    const uint8_t *data = (const uint8_t *) gearman_job_workload (job);
    size_t size = gearman_job_workload_size (job);
    uint8_t *result = (uint8_t *) malloc (24);
    uint64_t sum = bench_checksum (data, size);
    memcpy (result, &sum, 8);
    //  gearman results carry no task context the client can trust for
    //  ordering, so the index comes back with the checksum.
    memcpy (result + 8, data, size < 16 ? size : 16);
    *result_size = 24;
    *ret_ptr = GEARMAN_SUCCESS;
    return result;
}

static void *
s_sumsq (gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret_ptr)
{
    (void) context;
    char *out = (char *) malloc (24);
    int length = bench_sumsq_text ((const uint8_t *) gearman_job_workload (job),
                                   gearman_job_workload_size (job), out);
    *ret_ptr = length < 0 ? GEARMAN_WORK_FAIL : GEARMAN_SUCCESS;
    *result_size = length < 0 ? 0 : (size_t) length;
    return out;
}

static int
s_worker (const char *host, const char *port)
{
    gearman_worker_st *worker = gearman_worker_create (NULL);
    if (!worker || gearman_worker_add_server (worker, host, (in_port_t) atoi (port))
                       != GEARMAN_SUCCESS
        || gearman_worker_add_function (worker, "echo", 0, s_echo, NULL) != GEARMAN_SUCCESS
        || gearman_worker_add_function (worker, "sum", 0, s_sum, NULL) != GEARMAN_SUCCESS
        || gearman_worker_add_function (worker, "sumsq", 0, s_sumsq, NULL) != GEARMAN_SUCCESS)
        bench_die ("gearman_bench: cannot set up a worker for %s:%s", host, port);
    while (true) {
        gearman_return_t rc = gearman_worker_work (worker);
        if (rc != GEARMAN_SUCCESS)
            bench_die ("gearman_bench: worker: %s", gearman_worker_error (worker));
    }
}

static size_t
s_num (const char *text)
{
    char *end;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end)
        bench_die ("gearman_bench: '%s' is not a number", text);
    return (size_t) value;
}

int
main (int argc, char *argv [])
{
    bench_tune_malloc ();
    const char *mode = argc > 1 ? argv [1] : "";
    if (strcmp (mode, "worker") == 0 && argc == 4)
        return s_worker (argv [2], argv [3]);
    if (strcmp (mode, "tput") == 0 && argc == 8)
        return s_tput (argv [2], argv [3], argv [4], s_num (argv [5]), s_num (argv [6]),
                       s_num (argv [7]));
    if (strcmp (mode, "lat") == 0 && argc == 8)
        return s_lat (argv [2], argv [3], argv [4], s_num (argv [5]), s_num (argv [6]),
                      s_num (argv [7]));
    if (strcmp (mode, "fill") == 0 && argc == 6)
        return s_fill (argv [2], argv [3], s_num (argv [4]), s_num (argv [5]));
    fprintf (stderr, "usage: gearman_bench worker|tput|lat|fill ... (see the source)\n");
    return 2;
}
