/*  drv_test_plugin - a handler plugin for drover-worker's
    --function 'NAME=plugin:PATH.so:SYMBOL' and --initializer, for tests.
    Symbols: echo, crash (SIGSEGV), nap (sleeps the payload's ms),
    spin (burns CPU for ever), hog (allocates until it cannot), whoami
    (uid and pid), init_value (what init set), progress ("N MS": reports
    step i of N, napping MS between, then answers "done N"), and init.
*/

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drover.h"

static int s_initialized;           //  set by init in each pool process

int
init (void *arg)
{
    (void) arg;
    s_initialized = (int) getpid ();
    return 0;
}

int
echo (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    return drover_task_reply (task, payload, size);
}

int
crash (drover_task_t *task, void *arg)
{
    (void) task;
    (void) arg;
    signal (SIGSEGV, SIG_DFL);
    raise (SIGSEGV);
    return 0;
}

int
nap (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    long ms = strtol (text, NULL, 10);
    struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep (&wait, NULL);
    return drover_task_reply (task, text, size);
}

int
spin (drover_task_t *task, void *arg)
{
    (void) task;
    (void) arg;
    for (volatile unsigned long i = 0;; i++)
        ;
    return 0;
}

int
hog (drover_task_t *task, void *arg)
{
    (void) arg;
    for (size_t total = 0;; total += 1 << 20) {
        char *block = (char *) malloc (1 << 20);
        if (!block) {
            drover_task_fail (task, "cannot allocate more than %zu MiB", total >> 20);
            return -1;
        }
        memset (block, 1, 1 << 20);
    }
}

int
whoami (drover_task_t *task, void *arg)
{
    (void) arg;
    char out [64];
    int length = snprintf (out, sizeof out, "uid=%d pid=%d", (int) getuid (), (int) getpid ());
    return drover_task_reply (task, out, (size_t) length);
}

int
init_value (drover_task_t *task, void *arg)
{
    (void) arg;
    char out [64];
    int length = snprintf (out, sizeof out, "%s",
                           s_initialized == (int) getpid () ? "initialized" : "not initialized");
    return drover_task_reply (task, out, (size_t) length);
}

int
progress (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    char *end;
    long steps = strtol (text, &end, 10);
    long ms = strtol (end, NULL, 10);
    for (long i = 1; i <= steps; i++) {
        char partial [32];
        int length = snprintf (partial, sizeof partial, "step %ld", i);
        if (drover_task_progress (task, (uint64_t) i, (uint64_t) steps, partial, (size_t) length))
            return -1;
        struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep (&wait, NULL);
    }
    char out [32];
    int length = snprintf (out, sizeof out, "done %ld\n", steps);
    return drover_task_reply (task, out, (size_t) length);
}
