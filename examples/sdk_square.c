/*  sdk_square - libdrover in one program: an embedded broker, a worker
    with an in-process handler, and a client that maps squares over 1..10.

    Build against an installed drover:
        cc sdk_square.c $(pkg-config --cflags --libs drover) -o sdk_square
*/

#include <drover.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The function the worker offers: decimal in, its square out.
static int
square (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    long n = strtol (text, NULL, 10);
    char out [32];
    int length = snprintf (out, sizeof out, "%ld", n * n);
    return drover_task_reply (task, out, (size_t) length);
}

int
main (void)
{
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    if (drover_broker_start (broker) == -1) {
        fprintf (stderr, "sdk_square: %s\n", drover_broker_error (broker));
        return 1;
    }
    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    drover_worker_set_slots (worker, 2);
    drover_worker_add_handler (worker, "square", square, NULL);
    if (drover_worker_start (worker) == -1) {
        fprintf (stderr, "sdk_square: %s\n", drover_worker_error (worker));
        return 1;
    }
    drover_client_t *client = drover_client_new (drover_broker_clients_endpoint (broker));

    char texts [10][4];
    const void *payloads [10];
    size_t sizes [10];
    for (int i = 0; i < 10; i++) {
        sizes [i] = (size_t) snprintf (texts [i], sizeof texts [i], "%d", i + 1);
        payloads [i] = texts [i];
    }
    drover_result_t *results [10];
    int rc = drover_client_map (client, "square", 10, payloads, sizes, NULL, 30000, results);
    if (rc == -1)
        fprintf (stderr, "sdk_square: %s\n", drover_client_error (client));
    for (int i = 0; rc == 0 && i < 10; i++) {
        printf ("%s%s", results [i]->data, i < 9 ? " " : "\n");
        drover_result_destroy (&results [i]);
    }
    drover_client_destroy (&client);
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
    return rc == 0 ? 0 : 1;
}
