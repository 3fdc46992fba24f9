/*  squares_cubes - two functions run at once in two processes, their
    results handed to callbacks. In Python:

        p1 = Process(target=print_square, args=(10,))
        p2 = Process(target=print_cube, args=(10,))
        p1.start(); p2.start(); p1.join(); p2.join()

    Here: apply_async for each, and drover_client_join waits for both.
*/

#include "local.h"

static int
square (drover_task_t *task, void *arg)
{
    (void) arg;
    long n = local_number (task);
    return local_reply_number (task, (long long) n * n);
}

static int
cube (drover_task_t *task, void *arg)
{
    (void) arg;
    long n = local_number (task);
    return local_reply_number (task, (long long) n * n * n);
}

//  Results arrive in either order: keep each in its place.
static void
s_done (const drover_result_t *result, void *arg)
{
    char *slot = (char *) arg;
    snprintf (slot, 32, "%s", result->data);
}

static void
s_failed (const drover_result_t *result, void *arg)
{
    snprintf ((char *) arg, 32, "failed: %s", result->reason);
}

int
main (void)
{
    local_t local;
    if (local_new (&local, 2) == -1)
        return 1;
    drover_worker_add_handler (local.worker, "square", square, NULL);
    drover_worker_add_handler (local.worker, "cube", cube, NULL);
    if (local_start (&local) == -1)
        return 1;
    char squared [32] = "", cubed [32] = "";
    int rc = drover_client_apply_async (local.client, "square", "10", 2, NULL, s_done, s_failed,
                                        squared, NULL);
    if (rc == 0)
        rc = drover_client_apply_async (local.client, "cube", "10", 2, NULL, s_done, s_failed,
                                        cubed, NULL);
    if (rc == 0)
        rc = drover_client_join (local.client, 60000);
    if (rc == -1)
        fprintf (stderr, "squares_cubes: %s\n", drover_client_error (local.client));
    else
        printf ("Square: %s\nCube: %s\n", squared, cubed);
    local_stop (&local);
    return rc == -1 ? 1 : 0;
}
