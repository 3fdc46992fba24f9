/*  producer_consumer - a producer and a consumer joined by a queue. In
    Python:

        def producer(q):
            for item in range(10): q.put(item)
        def consumer(q):
            while (item := q.get()) is not None: print('consumed', item)

    Here the producer pushes items into an ordered stream of tasks
    (drover_imap_push, Pool.imap) as it makes them, the workers consume
    them, and the results are taken as they are ready, in push order,
    while the producer goes on: it never waits for the whole batch.
*/

#include "local.h"

#define S_ITEMS 10

static int
consume (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *item = (const char *) drover_task_payload (task, &size);
    char text [64];
    int length = snprintf (text, sizeof text, "consumed %.*s", (int) size, item);
    return drover_task_reply (task, text, (size_t) length);
}

//  Print one result; -1 if it failed.
static int
s_print (drover_result_t **result_p)
{
    drover_result_t *result = *result_p;
    int rc = result->outcome == DROVER_OUTCOME_OK ? 0 : -1;
    if (rc == 0)
        printf ("%s\n", result->data);
    else
        fprintf (stderr, "producer_consumer: %s\n", result->reason);
    drover_result_destroy (result_p);
    return rc;
}

int
main (void)
{
    local_t local;
    if (local_new (&local, 2) == -1)
        return 1;
    drover_worker_add_handler (local.worker, "consume", consume, NULL);
    if (local_start (&local) == -1)
        return 1;
    drover_imap_t *queue = drover_imap_new (local.client, "consume", NULL);
    int rc = queue ? 0 : -1;
    drover_result_t *result;
    for (int item = 0; rc == 0 && item < S_ITEMS; item++) {
        char text [16];
        int length = snprintf (text, sizeof text, "item %d", item);
        rc = drover_imap_push (queue, text, (size_t) length);
        if (rc == 0)
            rc = drover_imap_flush (queue);
        //  Take what is done already, without waiting.
        while (rc == 0 && drover_imap_next (queue, 0, &result) == 0)
            rc = s_print (&result);
    }
    //  The producer is done (Python's None): wait for the rest.
    int next;
    while (rc == 0 && (next = drover_imap_next (queue, 60000, &result)) == 0)
        rc = s_print (&result);
    if (rc == 0 && next == -1)
        rc = -1;
    if (rc == -1 && queue)
        fprintf (stderr, "producer_consumer: %s\n", drover_client_error (local.client));
    drover_imap_destroy (&queue);
    local_stop (&local);
    return rc == -1 ? 1 : 0;
}
