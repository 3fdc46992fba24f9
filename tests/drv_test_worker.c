/*  drover-test-worker - a worker daemon built on the libdrover worker
    SDK with in-process handlers, for tests that need many fast tasks
    (exec: starts a process per task). Offers "square" (decimal in,
    decimal out), "echo", "nap" (sleeps the payload's milliseconds,
    then answers with the payload), and "where" (naps like nap, and
    answers "$DROVER_TEST_HOST payload", to tell which host ran a task),
    "progress" ("N MS [PAUSE]": reports step i of N with partial output
    "step i", napping MS between, naps PAUSE ms more, then answers "done
    N") and "flood" ("N":
    reports N times as fast as it can, then answers "flooded N").
    Talks CURVE when DROVER_CURVE_SECRET and DROVER_BROKER_KEY are set,
    as drover does. Stops on SIGTERM/SIGINT like drover-worker.

    Usage: drover-test-worker ENDPOINT SLOTS [PREFETCH [threads]]
*/

#include <czmq.h>

#include "drover.h"

static int
s_square (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    long long n = strtoll (text, NULL, 10);
    char out [32];
    int length = snprintf (out, sizeof out, "%lld\n", n * n);
    return drover_task_reply (task, out, (size_t) length);
}

static int
s_echo (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    return drover_task_reply (task, payload, size);
}

static int
s_nap (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    zclock_sleep ((int) strtol (text, NULL, 10));
    char out [32];
    int length = snprintf (out, sizeof out, "%.*s\n", (int) size, text);
    return drover_task_reply (task, out, (size_t) length);
}

static int
s_progress (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    char *end;
    long steps = strtol (text, &end, 10);
    int ms = (int) strtol (end, &end, 10);
    int pause = (int) strtol (end, NULL, 10);
    for (long i = 1; i <= steps; i++) {
        char partial [32];
        int length = snprintf (partial, sizeof partial, "step %ld", i);
        if (drover_task_progress (task, (uint64_t) i, (uint64_t) steps, partial, (size_t) length))
            return -1;
        zclock_sleep (ms);
    }
    zclock_sleep (pause);
    char out [32];
    int length = snprintf (out, sizeof out, "done %ld\n", steps);
    return drover_task_reply (task, out, (size_t) length);
}

static int
s_flood (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    long reports = strtol (text, NULL, 10);
    for (long i = 1; i <= reports; i++)
        if (drover_task_progress (task, (uint64_t) i, (uint64_t) reports, "flooding", 8))
            return -1;
    char out [32];
    int length = snprintf (out, sizeof out, "flooded %ld\n", reports);
    return drover_task_reply (task, out, (size_t) length);
}

//  $DROVER_TEST_HOST, read before the pool forks.
static const char *s_host = "";

static int
s_where (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    zclock_sleep ((int) strtol (text, NULL, 10));
    char out [512];
    int length = snprintf (out, sizeof out, "%s %.*s\n", s_host, (int) size, text);
    return drover_task_reply (task, out, (size_t) length);
}

int
main (int argc, char *argv [])
{
    if (argc < 3 || argc > 5) {
        fprintf (stderr, "usage: drover-test-worker ENDPOINT SLOTS [PREFETCH [threads]]\n");
        return 2;
    }
    zsys_init ();
    zsys_set_logident ("drover-test-worker");
    drover_worker_t *worker = drover_worker_new (argv [1]);
    if (!worker || drover_worker_set_slots (worker, (unsigned) atoi (argv [2])) == -1
        || drover_worker_add_handler (worker, "square", s_square, NULL) == -1
        || drover_worker_add_handler (worker, "echo", s_echo, NULL) == -1
        || drover_worker_add_handler (worker, "nap", s_nap, NULL) == -1
        || drover_worker_add_handler (worker, "where", s_where, NULL) == -1
        || drover_worker_add_handler (worker, "progress", s_progress, NULL) == -1
        || drover_worker_add_handler (worker, "flood", s_flood, NULL) == -1
        || (argc > 3 && drover_worker_set_prefetch (worker, (unsigned) atoi (argv [3])) == -1))
        return 1;
    drover_worker_set_threads (worker, argc > 4 && streq (argv [4], "threads"));
    if (getenv ("DROVER_TEST_HOST"))
        s_host = getenv ("DROVER_TEST_HOST");
    const char *secret = getenv ("DROVER_CURVE_SECRET"), *key = getenv ("DROVER_BROKER_KEY");
    if (secret && key && drover_worker_set_curve (worker, secret, key) == -1) {
        fprintf (stderr, "drover-test-worker: %s\n", drover_worker_error (worker));
        drover_worker_destroy (&worker);
        return 2;
    }
    int rc = drover_worker_run (worker);
    if (rc == -1)
        fprintf (stderr, "drover-test-worker: %s\n", drover_worker_error (worker));
    drover_worker_destroy (&worker);
    return rc == 0 ? 0 : 1;
}
