/*  drv_local - local mode of the drover command: a private broker and a
    worker in the drover process itself. See drv_local.h.

    It is not another scheduler: the job goes from the drover_client_* SDK
    over ipc:// to a drover_broker_t and on to a drover_worker_t, exactly
    as with the daemons, only all three live in one process for its run.
*/

#include <czmq.h>
#include <errno.h>

#include "drover.h"
#include "drv_local.h"

//  The longest ipc:// path zmq takes (sun_path), less room for the names.
#define S_IPC_DIR_MAX 90

struct _drv_local_t {
    char dir [128];                  //  private temporary directory
    char clients [160];              //  client endpoint, ipc://DIR/clients
    char workers [160];              //  worker endpoint, ipc://DIR/workers
    drover_broker_t *broker;         //  the in-process broker
    drover_worker_t *worker;         //  the in-process worker
    zlistx_t *functions;             //  names offered, char * owned
    char error [512];                //  last error
};

drv_local_t *
drv_local_new (unsigned slots)
{
    drv_local_t *self = (drv_local_t *) zmalloc (sizeof (drv_local_t));
    const char *tmp = getenv ("TMPDIR");
    if (!tmp || !*tmp || strlen (tmp) > S_IPC_DIR_MAX - 16)
        tmp = "/tmp";
    snprintf (self->dir, sizeof self->dir, "%s/drover-XXXXXX", tmp);
    if (!mkdtemp (self->dir)) {
        free (self);
        return NULL;
    }
    snprintf (self->clients, sizeof self->clients, "ipc://%s/clients", self->dir);
    snprintf (self->workers, sizeof self->workers, "ipc://%s/workers", self->dir);
    self->broker = drover_broker_new (self->clients, self->workers);
    self->worker = drover_worker_new (self->workers);
    self->functions = zlistx_new ();
    if (!self->broker || !self->worker || !self->functions) {
        drv_local_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->functions, (zlistx_destructor_fn *) zstr_free);
    drover_worker_set_slots (self->worker, slots);
    //  A task waiting beside each slot: the broker is a local socket
    //  away, so this is enough to keep short tasks flowing.
    drover_worker_set_prefetch (self->worker, slots);
    drover_worker_set_name (self->worker, "local");
    return self;
}

void
drv_local_destroy (drv_local_t **self_p)
{
    assert (self_p);
    drv_local_t *self = *self_p;
    if (!self)
        return;
    //  The worker first: it kills and reaps its running tasks and pool
    //  processes; then the broker, which unbinds its sockets.
    drover_worker_destroy (&self->worker);
    drover_broker_destroy (&self->broker);
    zlistx_destroy (&self->functions);
    //  zmq removes an ipc:// socket file when it unbinds; a broker that
    //  never bound leaves none, and anything else here is ours too.
    zdir_t *dir = zdir_new (self->dir, NULL);
    if (dir) {
        zdir_remove (dir, true);
        zdir_destroy (&dir);
    }
    rmdir (self->dir);
    free (self);
    *self_p = NULL;
}

int
drv_local_add_function (drv_local_t *self, const char *definition)
{
    if (drover_worker_add_function (self->worker, definition) == -1) {
        snprintf (self->error, sizeof self->error, "%s", drover_worker_error (self->worker));
        return -1;
    }
    const char *equals = strchr (definition, '=');
    size_t length = equals ? (size_t) (equals - definition) : strlen (definition);
    char *name = strndup (definition, length);
    if (name)
        zlistx_add_end (self->functions, name);
    return 0;
}

bool
drv_local_offers (drv_local_t *self, const char *function)
{
    for (const char *name = (const char *) zlistx_first (self->functions); name;
         name = (const char *) zlistx_next (self->functions))
        if (streq (name, function))
            return true;
    return false;
}

int
drv_local_start (drv_local_t *self)
{
    if (drover_broker_start (self->broker) == -1) {
        snprintf (self->error, sizeof self->error, "cannot start the local broker: %s",
                  drover_broker_error (self->broker));
        return -1;
    }
    if (drover_worker_start (self->worker) == -1) {
        snprintf (self->error, sizeof self->error, "cannot start the local worker: %s",
                  drover_worker_error (self->worker));
        return -1;
    }
    return 0;
}

const char *
drv_local_endpoint (drv_local_t *self)
{
    return drover_broker_clients_endpoint (self->broker);
}

const char *
drv_local_error (drv_local_t *self)
{
    return self->error;
}
