/*  pool_map - Pool.map of squares. In Python:

        def f(x):
            return x*x
        with Pool(5) as p:
            print(p.map(f, [1, 2, 3]))

    Here the pool is a worker with 5 processes behind a broker, and
    drover_client_map returns the results in input order.
*/

#include "local.h"

static int
f (drover_task_t *task, void *arg)
{
    (void) arg;
    long x = local_number (task);
    return local_reply_number (task, (long long) x * x);
}

int
main (void)
{
    local_t local;
    if (local_new (&local, 5) == -1)
        return 1;
    drover_worker_add_handler (local.worker, "f", f, NULL);
    if (local_start (&local) == -1)
        return 1;
    const void *inputs [] = {"1", "2", "3"};
    size_t sizes [] = {1, 1, 1};
    drover_result_t *results [3];
    int rc = drover_client_map (local.client, "f", 3, inputs, sizes, NULL, 60000, results);
    if (rc == -1)
        fprintf (stderr, "pool_map: %s\n", drover_client_error (local.client));
    else {
        printf ("[");
        for (int i = 0; i < 3; i++) {
            printf ("%s%s", i ? ", " : "", results [i]->data);
            drover_result_destroy (&results [i]);
        }
        printf ("]\n");
    }
    local_stop (&local);
    return rc == -1 ? 1 : 0;
}
