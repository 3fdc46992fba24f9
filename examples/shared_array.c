/*  shared_array - a shared array of squares. In Python, processes write
    into shared memory:

        def f(a, i):
            a[i] = i * i
        arr = Array('i', 10)
        for i in range(10): Process(target=f, args=(arr, i)).start() ...
        print(arr[:])

    drover's tasks may run on other machines, so they share no memory:
    each returns its element, and the client gathers the results into
    the array, in place, as they come back (drover_client_map keeps
    input order, so results[i] is element i).
*/

#include "local.h"

#define S_SIZE 10

static int
f (drover_task_t *task, void *arg)
{
    (void) arg;
    long i = local_number (task);
    return local_reply_number (task, (long long) i * i);
}

int
main (void)
{
    local_t local;
    if (local_new (&local, 4) == -1)
        return 1;
    drover_worker_add_handler (local.worker, "f", f, NULL);
    if (local_start (&local) == -1)
        return 1;
    char texts [S_SIZE][8];
    const void *inputs [S_SIZE];
    size_t sizes [S_SIZE];
    for (int i = 0; i < S_SIZE; i++) {
        sizes [i] = (size_t) snprintf (texts [i], sizeof texts [i], "%d", i);
        inputs [i] = texts [i];
    }
    drover_result_t *results [S_SIZE];
    int arr [S_SIZE] = {0};
    int rc = drover_client_map (local.client, "f", S_SIZE, inputs, sizes, NULL, 60000, results);
    if (rc == -1)
        fprintf (stderr, "shared_array: %s\n", drover_client_error (local.client));
    bool failed = false;
    for (int i = 0; rc == 0 && i < S_SIZE; i++) {
        if (results [i]->outcome == DROVER_OUTCOME_OK)
            arr [i] = atoi ((const char *) results [i]->data);
        else {
            fprintf (stderr, "shared_array: element %d: %s\n", i, results [i]->reason);
            failed = true;
        }
        drover_result_destroy (&results [i]);
    }
    if (rc == 0 && !failed) {
        printf ("[");
        for (int i = 0; i < S_SIZE; i++)
            printf ("%s%d", i ? ", " : "", arr [i]);
        printf ("]\n");
    }
    local_stop (&local);
    return rc == -1 || failed ? 1 : 0;
}
