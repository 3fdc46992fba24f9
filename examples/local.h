/*  local.h - what the C examples share: a broker, a worker and a client in
    one program, as examples/sdk_square.c sets them up, so that each
    example shows only its own idea. The broker listens on loopback ports
    of its own; the worker runs handlers in `slots` pool processes forked
    when it starts (so register handlers before local_start).

    In a real cluster the broker and workers are daemons elsewhere and
    the program keeps only the client: drover_client_new (endpoint).
*/

#ifndef LOCAL_H_INCLUDED
#define LOCAL_H_INCLUDED

#include <drover.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    drover_broker_t *broker;         //  the embedded broker
    drover_worker_t *worker;         //  one worker with slots pool processes
    drover_client_t *client;         //  what the example talks to
} local_t;

//  Start a broker and create a worker with slots; add handlers to
//  local->worker, then call local_start. 0, or -1 after saying why.
static inline int
local_new (local_t *local, unsigned slots)
{
    memset (local, 0, sizeof *local);
    drover_set_logstream (NULL);     //  the examples print results only
    local->broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    if (!local->broker || drover_broker_start (local->broker) == -1) {
        fprintf (stderr, "cannot start a broker: %s\n",
                 local->broker ? drover_broker_error (local->broker) : "out of memory");
        return -1;
    }
    local->worker = drover_worker_new (drover_broker_workers_endpoint (local->broker));
    if (!local->worker)
        return -1;
    drover_worker_set_slots (local->worker, slots);
    return 0;
}

//  Start the worker and connect a client. 0, or -1 after saying why.
static inline int
local_start (local_t *local)
{
    if (drover_worker_start (local->worker) == -1) {
        fprintf (stderr, "cannot start the worker: %s\n", drover_worker_error (local->worker));
        return -1;
    }
    local->client = drover_client_new (drover_broker_clients_endpoint (local->broker));
    return local->client ? 0 : -1;
}

//  Stop and destroy everything local_new and local_start made.
static inline void
local_stop (local_t *local)
{
    drover_client_destroy (&local->client);
    drover_worker_destroy (&local->worker);
    drover_broker_destroy (&local->broker);
}

//  A payload's text as a number (payloads are followed by a NUL byte).
static inline long
local_number (drover_task_t *task)
{
    size_t size;
    return strtol ((const char *) drover_task_payload (task, &size), NULL, 10);
}

//  Reply with a number as text.
static inline int
local_reply_number (drover_task_t *task, long long value)
{
    char text [32];
    int length = snprintf (text, sizeof text, "%lld", value);
    return drover_task_reply (task, text, (size_t) length);
}

#endif
