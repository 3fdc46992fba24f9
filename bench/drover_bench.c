/*  drover_bench - drover's side of the benchmark: a worker with
    in-process handlers (the worker SDK) and the clients of workloads A to
    E (the client SDK). bench/run starts the broker, these workers and
    these clients; see bench_common.h for the work itself. A worker runs
    its handlers in pool processes (the SDK's default) or on threads, and
    takes PREFETCH tasks beyond SLOTS from the broker.

    Usage:
      drover_bench worker ENDPOINT SLOTS PREFETCH pool|threads
      drover_bench tput ENDPOINT FUNCTION COUNT SIZE WINDOW [CHUNK]
      drover_bench lat ENDPOINT FUNCTION WARMUP COUNT SIZE
      drover_bench map ENDPOINT CHUNKS PER_CHUNK
      drover_bench serial CHUNKS PER_CHUNK
      drover_bench fill ENDPOINT COUNT SIZE

    tput keeps up to WINDOW tasks in flight through drover_imap (pushed in
    batches, results taken in order) and checks every result; a payload of
    64 KiB or more (E) is made in a block of its own that the map takes
    over (drover_imap_push_owned), as a program that makes large payloads
    would, so the client copies none of it; with CHUNK,
    CHUNK tasks go as one job (drover_imap_set_chunk_size); lat runs one
    drover_client_apply at a time. Each prints "RESULT tasks/s p50 p99".
    map and serial print "TOTAL sum SECONDS s"; fill queues COUNT tasks
    for a function no worker offers and returns once all are acknowledged.
*/

#include <czmq.h>

#include "bench_common.h"
#include "drover.h"

static int
s_echo (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    return drover_task_reply (task, payload, size);
}

static int
s_sum (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    uint64_t sum = bench_checksum (payload, size);
    return drover_task_reply (task, &sum, sizeof sum);
}

static int
s_sumsq (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    char out [24];
    int length = bench_sumsq_text (payload, size, out);
    if (length < 0) {
        drover_task_fail (task, "sumsq wants 'LO HI'");
        return -1;
    }
    return drover_task_reply (task, out, (size_t) length);
}

//  Check one result of function for payload number index (payload:
//  that payload, needed only for an echo).
static void
s_check (const char *function, const drover_result_t *result, const uint8_t *payload,
         size_t size, uint64_t index)
{
    if (result->outcome != DROVER_OUTCOME_OK)
        bench_die ("drover_bench: task %" PRIu64 " failed: %s", index, result->reason);
    if (streq (function, "sum")) {
        uint64_t expected = bench_payload_checksum (size, index), got;
        if (result->size != 8 || (memcpy (&got, result->data, 8), got != expected))
            bench_die ("drover_bench: task %" PRIu64 ": wrong checksum", index);
    }
    else if (result->size != size || memcmp (result->data, payload, size) != 0)
        bench_die ("drover_bench: task %" PRIu64 ": result is not its payload", index);
}

static drover_client_t *
s_client (const char *endpoint)
{
    drover_client_t *client = drover_client_new (endpoint);
    if (!client)
        bench_die ("drover_bench: cannot connect to %s", endpoint);
    drover_client_set_ack_timeout (client, 60000);
    return client;
}

//  Frees a block given to drover_imap_push_owned.
static void
s_free (void *data, void *hint)
{
    (void) hint;
    free (data);
}

static int
s_tput (const char *endpoint, const char *function, size_t count, size_t size, size_t window,
        size_t chunk)
{
    drover_client_t *client = s_client (endpoint);
    //  Payload i is regenerated for an echo's check (a sum's is
    //  bench_payload_checksum). Small ones: two buffers,
    //  no per-task allocation on the client's own side. Large ones: a
    //  block per push, which the map sends as it is and frees.
    bool owned = size >= 64 * 1024 && chunk <= 1;
    uint8_t *out = (uint8_t *) malloc (size), *in = (uint8_t *) malloc (size);
    drover_imap_t *imap = drover_imap_new (client, function, NULL);
    if (!imap || !out || !in || drover_imap_set_chunk_size (imap, chunk) == -1)
        bench_die ("drover_bench: %s", drover_client_error (client));
    size_t pushed = 0, taken = 0;
    int64_t start = bench_now_us ();
    while (taken < count) {
        if (pushed < count && pushed - taken < window) {
            int rc;
            if (owned) {
                uint8_t *block = (uint8_t *) malloc (size);
                if (!block)
                    bench_die ("drover_bench: out of memory");
                bench_payload (block, size, pushed);
                rc = drover_imap_push_owned (imap, block, size, s_free, NULL);
            }
            else {
                bench_payload (out, size, pushed);
                rc = drover_imap_push (imap, out, size);
            }
            if (rc == -1)
                bench_die ("drover_bench: push: %s", drover_client_error (client));
            pushed++;
            continue;
        }
        drover_result_t *result;
        if (drover_imap_next (imap, 120000, &result) != 0)
            bench_die ("drover_bench: result %zu: %s", taken, drover_client_error (client));
        if (!streq (function, "sum"))
            bench_payload (in, size, taken);
        s_check (function, result, in, size, taken);
        drover_result_destroy (&result);
        taken++;
    }
    int64_t elapsed = bench_now_us () - start;
    drover_imap_destroy (&imap);
    drover_client_destroy (&client);
    free (out);
    free (in);
    bench_report ((double) count * 1e6 / (double) elapsed, -1, -1);
    return 0;
}

static int
s_lat (const char *endpoint, const char *function, size_t warmup, size_t count, size_t size)
{
    drover_client_t *client = s_client (endpoint);
    uint8_t *payload = (uint8_t *) malloc (size);
    int64_t *samples = (int64_t *) calloc (count, sizeof (int64_t));
    if (!payload || !samples)
        bench_die ("drover_bench: out of memory");
    int64_t start = 0;
    for (size_t i = 0; i < warmup + count; i++) {
        if (i == warmup)
            start = bench_now_us ();
        bench_payload (payload, size, i);
        drover_result_t *result;
        int64_t before = bench_now_us ();
        if (drover_client_apply (client, function, payload, size, NULL, 60000, &result) == -1)
            bench_die ("drover_bench: apply %zu: %s", i, drover_client_error (client));
        int64_t after = bench_now_us ();
        s_check (function, result, payload, size, i);
        drover_result_destroy (&result);
        if (i >= warmup)
            samples [i - warmup] = after - before;
    }
    int64_t elapsed = bench_now_us () - start;
    drover_client_destroy (&client);
    int64_t p50 = bench_percentile (samples, count, 50);
    int64_t p99 = bench_percentile (samples, count, 99);
    bench_report ((double) count * 1e6 / (double) elapsed, p50, p99);
    free (samples);
    free (payload);
    return 0;
}

static int
s_map (const char *endpoint, size_t chunks, uint64_t per)
{
    drover_client_t *client = s_client (endpoint);
    char (*texts) [48] = calloc (chunks, sizeof *texts);
    const void **payloads = (const void **) calloc (chunks, sizeof (void *));
    size_t *sizes = (size_t *) calloc (chunks, sizeof (size_t));
    drover_result_t **results = (drover_result_t **) calloc (chunks, sizeof (void *));
    if (!texts || !payloads || !sizes || !results)
        bench_die ("drover_bench: out of memory");
    for (size_t i = 0; i < chunks; i++) {
        sizes [i] = (size_t) bench_chunk (texts [i], sizeof texts [i], i, per);
        payloads [i] = texts [i];
    }
    int64_t start = bench_now_us ();
    if (drover_client_map (client, "sumsq", chunks, payloads, sizes, NULL, 600000, results)
        == -1)
        bench_die ("drover_bench: map: %s", drover_client_error (client));
    int64_t elapsed = bench_now_us () - start;
    uint64_t total = 0;
    for (size_t i = 0; i < chunks; i++) {
        if (results [i]->outcome != DROVER_OUTCOME_OK)
            bench_die ("drover_bench: chunk %zu failed: %s", i, results [i]->reason);
        total += strtoull ((const char *) results [i]->data, NULL, 10);
        drover_result_destroy (&results [i]);
    }
    printf ("TOTAL %" PRIu64 " SECONDS %.6f\n", total, (double) elapsed / 1e6);
    drover_client_destroy (&client);
    free (results);
    free (sizes);
    free (payloads);
    free (texts);
    return 0;
}

static int
s_serial (size_t chunks, uint64_t per)
{
    int64_t start = bench_now_us ();
    uint64_t total = 0;
    for (size_t i = 0; i < chunks; i++) {
        char text [48], out [24];
        int size = bench_chunk (text, sizeof text, i, per);
        if (bench_sumsq_text ((const uint8_t *) text, (size_t) size, out) < 0)
            bench_die ("drover_bench: bad chunk");
        total += strtoull (out, NULL, 10);
    }
    int64_t elapsed = bench_now_us () - start;
    printf ("TOTAL %" PRIu64 " SECONDS %.6f\n", total, (double) elapsed / 1e6);
    return 0;
}

static int
s_fill (const char *endpoint, size_t count, size_t size)
{
    drover_client_t *client = s_client (endpoint);
    enum { BATCH = 1000 };
    uint8_t (*buffers) [64] = calloc (BATCH, sizeof *buffers);
    const void *payloads [BATCH];
    size_t sizes [BATCH];
    uint64_t ids [BATCH];
    if (!buffers || size > sizeof buffers [0])
        bench_die ("drover_bench: fill takes payloads of 16 to 64 bytes");
    for (size_t done = 0; done < count;) {
        size_t n = count - done < BATCH ? count - done : BATCH;
        for (size_t i = 0; i < n; i++) {
            bench_payload (buffers [i], size, done + i);
            payloads [i] = buffers [i];
            sizes [i] = size;
        }
        if (drover_client_submit_many (client, "parked", n, payloads, sizes, NULL, ids) == -1)
            bench_die ("drover_bench: fill after %zu: %s", done, drover_client_error (client));
        done += n;
    }
    printf ("FILLED %zu\n", count);
    drover_client_destroy (&client);
    free (buffers);
    return 0;
}

static int
s_worker (const char *endpoint, unsigned slots, unsigned prefetch, const char *mode)
{
    if (!streq (mode, "pool") && !streq (mode, "threads"))
        bench_die ("drover_bench: worker mode is pool or threads, not '%s'", mode);
    zsys_init ();
    zsys_set_logident ("drover_bench");
    drover_set_logstream (NULL);
    drover_worker_t *worker = drover_worker_new (endpoint);
    if (worker)
        drover_worker_set_threads (worker, streq (mode, "threads"));
    if (!worker || drover_worker_set_slots (worker, slots) == -1
        || drover_worker_set_prefetch (worker, prefetch) == -1
        || drover_worker_add_handler (worker, "echo", s_echo, NULL) == -1
        || drover_worker_add_handler (worker, "sum", s_sum, NULL) == -1
        || drover_worker_add_handler (worker, "sumsq", s_sumsq, NULL) == -1)
        bench_die ("drover_bench: worker: %s", worker ? drover_worker_error (worker) : endpoint);
    int rc = drover_worker_run (worker);
    drover_worker_destroy (&worker);
    return rc == 0 ? 0 : 1;
}

static size_t
s_num (const char *text)
{
    char *end;
    unsigned long long value = strtoull (text, &end, 10);
    if (!*text || *end)
        bench_die ("drover_bench: '%s' is not a number", text);
    return (size_t) value;
}

int
main (int argc, char *argv [])
{
    bench_tune_malloc ();
    const char *mode = argc > 1 ? argv [1] : "";
    if (streq (mode, "worker") && argc == 6)
        return s_worker (argv [2], (unsigned) s_num (argv [3]), (unsigned) s_num (argv [4]),
                         argv [5]);
    drover_set_logstream (NULL);
    if (streq (mode, "tput") && (argc == 7 || argc == 8))
        return s_tput (argv [2], argv [3], s_num (argv [4]), s_num (argv [5]), s_num (argv [6]),
                       argc == 8 ? s_num (argv [7]) : 1);
    if (streq (mode, "lat") && argc == 7)
        return s_lat (argv [2], argv [3], s_num (argv [4]), s_num (argv [5]), s_num (argv [6]));
    if (streq (mode, "map") && argc == 5)
        return s_map (argv [2], s_num (argv [3]), s_num (argv [4]));
    if (streq (mode, "serial") && argc == 4)
        return s_serial (s_num (argv [2]), s_num (argv [3]));
    if (streq (mode, "fill") && argc == 5)
        return s_fill (argv [2], s_num (argv [3]), s_num (argv [4]));
    fprintf (stderr, "usage: drover_bench worker|tput|lat|map|serial|fill ... (see the source)\n");
    return 2;
}
