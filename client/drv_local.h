/*  drv_local - local mode of the drover command: a private broker and a
    worker inside the drover process, for a job run on this machine alone
    (Pool on one machine). The broker listens on ipc:// sockets in a
    private temporary directory (loopback TCP if its path is too long for
    ipc://); the worker offers the --function definitions with -j slots.
    Both run through the same drover_broker_* and drover_worker_* code as
    the daemons. Not a daemon: everything stops, and the directory goes,
    when it is destroyed.
*/

#ifndef DRV_LOCAL_H_INCLUDED
#define DRV_LOCAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _drv_local_t drv_local_t;

//  A local broker and worker, not started; slots is tasks at once.
drv_local_t *drv_local_new (unsigned slots);

//  Stop the worker (killing its running tasks) and the broker, remove
//  the temporary directory, destroy, and NULL the pointer.
void drv_local_destroy (drv_local_t **self_p);

//  Offer a function, "NAME=exec:PROGRAM [ARG...]" or
//  "NAME=plugin:PATH.so:SYMBOL" (drover_worker_add_function). -1 with a
//  reason in drv_local_error if it is not valid.
int drv_local_add_function (drv_local_t *self, const char *definition);

//  Whether function was offered with drv_local_add_function.
bool drv_local_offers (drv_local_t *self, const char *function);

//  Start the broker and the worker; -1 with a reason on error.
int drv_local_start (drv_local_t *self);

//  The broker's client endpoint; borrowed, valid after start.
const char *drv_local_endpoint (drv_local_t *self);

//  The last error, as a sentence. Borrowed.
const char *drv_local_error (drv_local_t *self);

#endif
