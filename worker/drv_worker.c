/*  drv_worker - the worker half of libdrover (drover_worker_* in drover.h).

    A worker is an actor holding one DEALER to the broker's worker
    endpoint and one zloop. It announces its functions and slots (Ready),
    runs what the broker dispatches, and sends results back (Done), each
    result returning one credit. exec: tasks run as child processes driven
    by the same loop (drv_exec); in-process handlers run on slot threads,
    one task per thread at a time, so a slow handler never stalls the loop
    or the heartbeats.

    The worker heartbeats the broker every second; if the broker answers
    that it does not know this worker (it restarted), the worker announces
    itself again.
*/

#include <stdatomic.h>
#include <unistd.h>

#include "drv_codec.h"
#include "drv_exec.h"
#include "drv_util.h"

//  One offered function.
typedef struct {
    char *name;                      //  function name
    drover_handler_fn *handler;      //  in-process handler, or NULL
    void *arg;                       //  handler's argument
    char **argv;                     //  exec: program and arguments, or NULL
} s_function_t;

struct _drover_task_t {
    uint64_t job_id;                 //  the broker's id
    const char *function;            //  borrowed
    const uint8_t *payload;          //  borrowed
    size_t size;                     //  bytes in payload
    uint8_t *reply;                  //  output, owned
    size_t reply_size;               //  bytes in reply
    char *reason;                    //  failure reason, owned, or NULL
};

struct _drover_worker_t {
    char *endpoint;                  //  broker's worker endpoint
    char *name;                      //  shown in logs and views
    unsigned slots;                  //  tasks at once
    uint32_t heartbeat_ms;           //  heartbeat interval
    uint32_t liveness;               //  silent intervals before the broker is gone
    size_t max_output;               //  largest result accepted
    zlistx_t *functions;             //  s_function_t, owned
    zactor_t *actor;                 //  running agent, or NULL
    atomic_uint_fast64_t completed;  //  tasks finished
    atomic_bool in_run;              //  drover_worker_run owns the actor
    atomic_bool stop_asked;          //  drover_worker_stop called during run
    char error [512];                //  last error
};

//  One task being run.
typedef struct _s_running_t s_running_t;

//  A slot thread for in-process handlers.
typedef struct {
    struct _s_agent_t *agent;        //  owner
    zactor_t *actor;                 //  the thread
    s_running_t *task;               //  what it runs, or NULL if free
} s_slot_t;

struct _s_running_t {
    uint64_t job_id;                 //  the broker's id
    s_function_t *function;          //  borrowed
    drv_exec_t *exec;                //  exec: the child, or NULL
    s_slot_t *slot;                  //  in-process: the thread, or NULL
    uint8_t *payload;                //  copy of the input (for slots)
    size_t size;                     //  bytes in payload
    uint32_t timeout_ms;             //  task timeout
    void *handle;                    //  place in agent->running or backlog
    struct _s_agent_t *agent;        //  owner
};

typedef struct _s_agent_t {
    drover_worker_t *worker;         //  configuration, borrowed
    zsock_t *pipe;                   //  to the owner
    zsock_t *dealer;                 //  to the broker
    zloop_t *loop;                   //  the event loop
    s_slot_t *slots;                 //  slot threads (in-process handlers)
    size_t nslots;                   //  entries in slots
    zlistx_t *running;               //  s_running_t being run, owned
    zlistx_t *backlog;               //  s_running_t waiting for a slot thread
    zlistx_t *done;                  //  drover_result_t to send, owned
    uint64_t seq;                    //  last request sequence
    uint8_t instance [DRV_INSTANCE_MAX];  //  the broker's run id, as last seen
    size_t instance_size;            //  bytes in instance
    int64_t last_ready;              //  when Ready was last sent
    int64_t last_heard;              //  when the broker last sent anything
    int64_t reconnect_at;            //  next reconnect while it is silent, or 0
    int64_t backoff_ms;              //  wait before the reconnect after that
} s_agent_t;

//  ---------------------------------------------------------------------
//  Task accessors for in-process handlers.

const uint8_t *
drover_task_payload (drover_task_t *task, size_t *size)
{
    if (size)
        *size = task->size;
    return task->payload;
}

const char *
drover_task_function (drover_task_t *task)
{
    return task->function;
}

uint64_t
drover_task_job_id (drover_task_t *task)
{
    return task->job_id;
}

int
drover_task_reply (drover_task_t *task, const void *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    if (!copy)
        return -1;
    if (size)
        memcpy (copy, data, size);
    free (task->reply);
    task->reply = copy;
    task->reply_size = size;
    return 0;
}

void
drover_task_fail (drover_task_t *task, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = NULL;
    if (vasprintf (&reason, format, args) == -1)
        reason = NULL;
    va_end (args);
    free (task->reason);
    task->reason = reason ? reason : strdup ("handler failed");
}

//  ---------------------------------------------------------------------
//  Slot threads: run one in-process handler call at a time.
//  In:  "TASK" [job id] [function pointer] [payload]
//  Out: [job id] [outcome] [data] [reason]

static void
s_slot_actor (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal (pipe, 0);
    while (true) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        char *command = zmsg_popstr (msg);
        if (!command || !streq (command, "TASK")) {
            zstr_free (&command);
            zmsg_destroy (&msg);
            break;
        }
        zstr_free (&command);
        zframe_t *id = zmsg_pop (msg);
        zframe_t *fn = zmsg_pop (msg);
        zframe_t *payload = zmsg_pop (msg);
        s_function_t *function = NULL;
        memcpy (&function, zframe_data (fn), sizeof function);
        drover_task_t task = {
            .function = function->name,
            .payload = zframe_data (payload),
            .size = zframe_size (payload),
        };
        memcpy (&task.job_id, zframe_data (id), sizeof task.job_id);
        int rc = function->handler (&task, function->arg);
        int outcome = DROVER_OUTCOME_OK;
        if (rc != 0 || task.reason) {
            outcome = DROVER_OUTCOME_ERROR;
            if (!task.reason)
                task.reason = strdup ("handler returned an error");
        }
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &id);
        zmsg_addmem (reply, &outcome, sizeof outcome);
        zmsg_addmem (reply, outcome == DROVER_OUTCOME_OK ? task.reply : NULL,
                     outcome == DROVER_OUTCOME_OK ? task.reply_size : 0);
        zmsg_addstr (reply, task.reason ? task.reason : "");
        zmsg_send (&reply, pipe);
        free (task.reply);
        free (task.reason);
        zframe_destroy (&fn);
        zframe_destroy (&payload);
        zmsg_destroy (&msg);
    }
}

//  ---------------------------------------------------------------------
//  The agent.

static void
s_running_destroy (void **item)
{
    s_running_t *task = (s_running_t *) *item;
    if (task) {
        drv_exec_destroy (&task->exec);
        free (task->payload);
        free (task);
        *item = NULL;
    }
}

static void
s_result_destroy (void **item)
{
    drover_result_destroy ((drover_result_t **) item);
}

static int
s_send (s_agent_t *self, drv_msg_t *msg)
{
    msg->seq = ++self->seq;
    zframe_t *frame = drv_codec_encode (msg);
    if (!frame)
        return -1;
    return zframe_send (&frame, self->dealer, 0);
}

static void
s_send_ready (s_agent_t *self)
{
    drover_worker_t *worker = self->worker;
    size_t count = zlistx_size (worker->functions);
    const char **names = (const char **) calloc (count, sizeof (char *));
    if (!names)
        return;
    size_t i = 0;
    for (s_function_t *f = (s_function_t *) zlistx_first (worker->functions); f;
         f = (s_function_t *) zlistx_next (worker->functions))
        names [i++] = f->name;
    self->last_ready = zclock_mono ();
    drv_msg_t msg = {
        .type = DRV_MSG_READY,
        .functions = names,
        .nfunctions = count,
        .slots = worker->slots,
        .name = worker->name,
    };
    s_send (self, &msg);
    free (names);
}

//  Send every finished result in one Done.
static void
s_flush_done (s_agent_t *self)
{
    size_t count = zlistx_size (self->done);
    if (!count)
        return;
    drv_result_t *results = (drv_result_t *) calloc (count, sizeof *results);
    if (!results)
        return;                     //  retried on the next completion
    size_t i = 0;
    for (drover_result_t *r = (drover_result_t *) zlistx_first (self->done); r;
         r = (drover_result_t *) zlistx_next (self->done), i++)
        results [i] = (drv_result_t) {
            .job_id = r->job_id,
            .outcome = r->outcome,
            .data = r->data,
            .size = r->size,
            .reason = r->reason,
        };
    drv_msg_t msg = {.type = DRV_MSG_DONE, .results = results, .nresults = count};
    s_send (self, &msg);
    free (results);
    zlistx_purge (self->done);
}

//  A task finished: queue its result; the running record goes.
static void
s_finish (s_agent_t *self, s_running_t *task, drover_outcome_t outcome, const void *data,
          size_t size, const char *reason)
{
    //  The protocol carries reasons of up to DRV_TEXT_MAX bytes.
    char shortened [DRV_TEXT_MAX + 1];
    if (reason && strlen (reason) > DRV_TEXT_MAX) {
        drv_util_strlcpy (shortened, reason, sizeof shortened);
        reason = shortened;
    }
    drover_result_t *result = drv_util_result_new (task->job_id, outcome, data, size, reason, 0);
    if (result)
        zlistx_add_end (self->done, result);
    else
        zsys_error ("worker: out of memory for result job=%" PRIu64, task->job_id);
    atomic_fetch_add (&self->worker->completed, 1);
    zlistx_delete (self->running, task->handle);
}

static void s_run_backlog (s_agent_t *self);

//  drv_exec_done_fn
static void
s_on_exec_done (drv_exec_t *exec, void *arg)
{
    s_running_t *task = (s_running_t *) arg;
    s_agent_t *self = task->agent;
    size_t size;
    const uint8_t *output = drv_exec_output (exec, &size);
    drover_outcome_t outcome = drv_exec_outcome (exec);
    if (outcome != DROVER_OUTCOME_OK)
        zsys_info ("worker: task failed job=%" PRIu64 " function=%s reason=%s", task->job_id,
                   task->function->name, drv_exec_reason (exec));
    s_finish (self, task, outcome, output, size, drv_exec_reason (exec));
    s_run_backlog (self);
    s_flush_done (self);
}

//  Hand a task to a free slot thread; false if none is free.
static bool
s_give_to_slot (s_agent_t *self, s_running_t *task)
{
    for (size_t i = 0; i < self->nslots; i++) {
        s_slot_t *slot = &self->slots [i];
        if (slot->task)
            continue;
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, "TASK");
        zmsg_addmem (msg, &task->job_id, sizeof task->job_id);
        zmsg_addmem (msg, &task->function, sizeof task->function);
        zmsg_addmem (msg, task->payload, task->size);
        if (zmsg_send (&msg, slot->actor) == -1) {
            zmsg_destroy (&msg);
            return false;
        }
        free (task->payload);
        task->payload = NULL;
        slot->task = task;
        task->slot = slot;
        return true;
    }
    return false;
}

static int
s_on_slot (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    s_slot_t *slot = (s_slot_t *) arg;
    s_agent_t *self = slot->agent;
    zmsg_t *msg = zmsg_recv (slot->actor);
    if (!msg)
        return 0;
    zframe_t *id = zmsg_pop (msg);
    zframe_t *outcome = zmsg_pop (msg);
    zframe_t *data = zmsg_pop (msg);
    char *reason = zmsg_popstr (msg);
    s_running_t *task = slot->task;
    slot->task = NULL;
    if (task && id && outcome && data) {
        int value;
        memcpy (&value, zframe_data (outcome), sizeof value);
        task->slot = NULL;
        s_finish (self, task, (drover_outcome_t) value, zframe_data (data), zframe_size (data),
                  reason);
    }
    zframe_destroy (&id);
    zframe_destroy (&outcome);
    zframe_destroy (&data);
    zstr_free (&reason);
    zmsg_destroy (&msg);
    s_run_backlog (self);
    s_flush_done (self);
    return 0;
}

static s_function_t *
s_find_function (s_agent_t *self, const char *name)
{
    for (s_function_t *f = (s_function_t *) zlistx_first (self->worker->functions); f;
         f = (s_function_t *) zlistx_next (self->worker->functions))
        if (streq (f->name, name))
            return f;
    return NULL;
}

//  Start waiting tasks, oldest first, while fewer than slots run. Slot
//  threads number slots too, so an in-process task always finds one.
static void
s_run_backlog (s_agent_t *self)
{
    s_running_t *task;
    while (zlistx_size (self->running) < self->worker->slots
           && (task = (s_running_t *) zlistx_first (self->backlog))) {
        zlistx_detach (self->backlog, task->handle);
        task->handle = zlistx_add_end (self->running, task);
        if (task->function->argv) {
            char err [256] = "";
            task->exec = drv_exec_start (self->loop, task->function->argv, task->payload,
                                         task->size, task->timeout_ms, self->worker->max_output,
                                         s_on_exec_done, task, err, sizeof err);
            free (task->payload);
            task->payload = NULL;
            if (!task->exec)
                s_finish (self, task, DROVER_OUTCOME_ERROR, NULL, 0, err);
        }
        else
        if (!s_give_to_slot (self, task))
            s_finish (self, task, DROVER_OUTCOME_ERROR, NULL, 0, "no slot thread free");
    }
}

//  Take one dispatched task: run it now if a slot is free, else keep it
//  waiting. The broker's credit keeps this rare; it happens when the
//  broker forgot us and we announced ourselves again.
static void
s_take_task (s_agent_t *self, const drv_task_t *spec)
{
    s_running_t *task = (s_running_t *) calloc (1, sizeof *task);
    if (task)
        task->payload = (uint8_t *) malloc (spec->size ? spec->size : 1);
    if (!task || !task->payload) {
        free (task);
        drover_result_t *result = drv_util_result_new (spec->id, DROVER_OUTCOME_ERROR, NULL, 0,
                                                       "worker out of memory", 0);
        if (result)
            zlistx_add_end (self->done, result);
        return;
    }
    task->job_id = spec->id;
    task->agent = self;
    task->timeout_ms = spec->timeout_ms;
    task->function = s_find_function (self, spec->function);
    memcpy (task->payload, spec->payload, spec->size);
    task->size = spec->size;
    if (!task->function) {
        task->handle = zlistx_add_end (self->running, task);
        char reason [DRV_FUNCTION_MAX + 64];
        snprintf (reason, sizeof reason, "worker %s does not offer '%s'", self->worker->name,
                  spec->function);
        s_finish (self, task, DROVER_OUTCOME_NO_HANDLER, NULL, 0, reason);
        return;
    }
    task->handle = zlistx_add_end (self->backlog, task);
}

//  The broker cancelled a job: kill its task, or drop it if it waits. An
//  in-process handler cannot be stopped; its result will be ignored.
static void
s_cancel_task (s_agent_t *self, uint64_t job_id)
{
    for (s_running_t *task = (s_running_t *) zlistx_first (self->backlog); task;
         task = (s_running_t *) zlistx_next (self->backlog))
        if (task->job_id == job_id) {
            zlistx_delete (self->backlog, task->handle);
            return;
        }
    for (s_running_t *task = (s_running_t *) zlistx_first (self->running); task;
         task = (s_running_t *) zlistx_next (self->running))
        if (task->job_id == job_id) {
            zsys_info ("worker: cancelling job=%" PRIu64, job_id);
            if (task->exec)
                drv_exec_kill (task->exec);
            return;
        }
}

static int
s_on_broker (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_agent_t *self = (s_agent_t *) arg;
    zframe_t *frame = zframe_recv (sock);
    if (!frame)
        return 0;
    drv_msg_t *msg = NULL;
    char err [256] = "";
    drv_limits_t limits = drv_limits_from_broker ();
    drover_error_t rc = drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits,
                                          &msg, NULL, err, sizeof err);
    zframe_destroy (&frame);
    if (rc) {
        zsys_warning ("worker: bad message from broker: %s", err);
        return 0;
    }
    if (self->reconnect_at) {
        zsys_info ("worker: broker %s is back", self->worker->endpoint);
        self->reconnect_at = 0;
    }
    self->last_heard = zclock_mono ();
    if (msg->instance_size) {
        bool restarted = self->instance_size
                         && (msg->instance_size != self->instance_size
                             || memcmp (msg->instance, self->instance, msg->instance_size));
        memcpy (self->instance, msg->instance, msg->instance_size);
        self->instance_size = msg->instance_size;
        if (restarted) {
            zsys_info ("worker: broker restarted; announcing again");
            s_send_ready (self);
        }
    }
    if (msg->type == DRV_MSG_CANCEL) {
        for (size_t i = 0; i < msg->njob_ids; i++)
            s_cancel_task (self, msg->job_ids [i]);
    }
    else
    if (msg->type == DRV_MSG_DISPATCH) {
        for (size_t i = 0; i < msg->ntasks; i++)
            s_take_task (self, &msg->tasks [i]);
        s_run_backlog (self);
        s_flush_done (self);
    }
    else
    if (msg->type == DRV_MSG_ERROR) {
        if (msg->code == DROVER_ERR_UNEXPECTED) {
            //  It dropped us (silence) or lost us (restart). Every message
            //  in flight gets this answer: announce once per interval.
            if (zclock_mono () - self->last_ready >= self->worker->heartbeat_ms) {
                zsys_info ("worker: broker does not know us (%s); announcing again", msg->text);
                s_send_ready (self);
            }
        }
        else
            zsys_warning ("worker: broker refused a message: %s (%s)", msg->text,
                          drover_error_name (msg->code));
    }
    drv_msg_destroy (&msg);
    return 0;
}

static int
s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_agent_t *self = (s_agent_t *) arg;
    drover_worker_t *worker = self->worker;
    int64_t now = zclock_mono ();
    int64_t silent = now - self->last_heard;
    if (silent >= (int64_t) worker->heartbeat_ms * worker->liveness) {
        if (!self->reconnect_at) {
            zsys_warning ("worker: broker %s silent for %" PRId64 " ms; reconnecting",
                          worker->endpoint, silent);
            self->reconnect_at = now;
            self->backoff_ms = worker->heartbeat_ms;
        }
        if (now >= self->reconnect_at) {
            //  A fresh connection, in case the old one is dead without
            //  TCP knowing; tries back off up to 30 s.
            zsock_disconnect (self->dealer, "%s", worker->endpoint);
            zsock_connect (self->dealer, "%s", worker->endpoint);
            self->reconnect_at = now + self->backoff_ms;
            self->backoff_ms = self->backoff_ms * 2 > 30000 ? 30000 : self->backoff_ms * 2;
            s_send_ready (self);
        }
    }
    drv_msg_t msg = {.type = DRV_MSG_HEARTBEAT};
    s_send (self, &msg);
    return 0;
}

static void
s_agent_actor (zsock_t *pipe, void *args)
{
    drover_worker_t *worker = (drover_worker_t *) args;
    s_agent_t agent = {.worker = worker, .pipe = pipe};
    s_agent_t *self = &agent;
    char err [512] = "";
    //  zactor_new waits for this; the status report follows on the pipe.
    zsock_signal (pipe, 0);
    self->running = zlistx_new ();
    self->backlog = zlistx_new ();
    self->done = zlistx_new ();
    self->loop = zloop_new ();
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->running || !self->backlog || !self->done || !self->loop || !self->dealer)
        snprintf (err, sizeof err, "out of memory");
    else {
        zlistx_set_destructor (self->running, s_running_destroy);
        zlistx_set_destructor (self->backlog, s_running_destroy);
        zlistx_set_destructor (self->done, s_result_destroy);
        zuuid_t *uuid = zuuid_new ();
        char identity [40];
        snprintf (identity, sizeof identity, "W%.24s", zuuid_str (uuid));
        zuuid_destroy (&uuid);
        zsock_set_identity (self->dealer, identity);
        zsock_set_linger (self->dealer, 1000);
        zsock_set_sndhwm (self->dealer, 100000);
        zsock_set_rcvhwm (self->dealer, 100000);
        if (zsock_connect (self->dealer, "%s", worker->endpoint) == -1)
            snprintf (err, sizeof err, "cannot connect to %s: %s", worker->endpoint,
                      zmq_strerror (zmq_errno ()));
    }
    bool in_process = false;
    for (s_function_t *f = (s_function_t *) zlistx_first (worker->functions); f;
         f = (s_function_t *) zlistx_next (worker->functions))
        in_process = in_process || f->handler;
    if (!*err && in_process) {
        self->slots = (s_slot_t *) calloc (worker->slots, sizeof (s_slot_t));
        for (size_t i = 0; self->slots && i < worker->slots; i++) {
            self->slots [i].agent = self;
            self->slots [i].actor = zactor_new (s_slot_actor, NULL);
            if (!self->slots [i].actor)
                break;
            self->nslots++;
        }
        if (self->nslots < worker->slots)
            snprintf (err, sizeof err, "cannot start %u slot threads", worker->slots);
    }
    if (*err)
        zstr_sendx (pipe, "ERROR", err, NULL);
    else {
        zstr_sendx (pipe, "OK", NULL);
        zloop_set_nonstop (self->loop, true);
        zloop_reader (self->loop, pipe, drv_util_on_term, NULL);
        zloop_reader (self->loop, self->dealer, s_on_broker, self);
        for (size_t i = 0; i < self->nslots; i++)
            zloop_reader (self->loop, zactor_sock (self->slots [i].actor), s_on_slot,
                          &self->slots [i]);
        zloop_timer (self->loop, worker->heartbeat_ms, 0, s_on_heartbeat, self);
        self->last_heard = zclock_mono ();
        s_send_ready (self);
        zsys_info ("worker: connecting broker=%s name=%s slots=%u functions=%zu",
                   worker->endpoint, worker->name, worker->slots,
                   zlistx_size (worker->functions));
        zloop_start (self->loop);
        //  Leaving: the broker requeues whatever was still running here.
        drv_msg_t bye = {.type = DRV_MSG_BYE};
        s_send (self, &bye);
        zsys_info ("worker: stopping name=%s running=%zu", worker->name,
                   zlistx_size (self->running) + zlistx_size (self->backlog));
    }
    for (size_t i = 0; i < self->nslots; i++)
        zactor_destroy (&self->slots [i].actor);
    free (self->slots);
    zlistx_destroy (&self->running);  //  kills and reaps exec children
    zlistx_destroy (&self->backlog);
    zlistx_destroy (&self->done);
    zloop_destroy (&self->loop);
    zsock_destroy (&self->dealer);
}

//  ---------------------------------------------------------------------
//  Public API.

static void
s_function_destroy (void **item)
{
    s_function_t *function = (s_function_t *) *item;
    if (function) {
        free (function->name);
        drv_exec_argv_destroy (&function->argv);
        free (function);
        *item = NULL;
    }
}

drover_worker_t *
drover_worker_new (const char *endpoint)
{
    if (!endpoint || !*endpoint)
        return NULL;
    drv_util_log_init ();
    drover_worker_t *self = (drover_worker_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    char host [256] = "localhost";
    gethostname (host, sizeof host - 1);
    self->endpoint = strdup (endpoint);
    self->name = zsys_sprintf ("%s:%d", host, (int) getpid ());
    self->functions = zlistx_new ();
    if (!self->endpoint || !self->name || !self->functions) {
        drover_worker_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->functions, s_function_destroy);
    self->slots = 1;
    self->heartbeat_ms = 1000;
    self->liveness = 3;
    self->max_output = drv_limits_default ().max_payload;
    return self;
}

void
drover_worker_destroy (drover_worker_t **self_p)
{
    assert (self_p);
    drover_worker_t *self = *self_p;
    if (self) {
        drover_worker_stop (self);
        zlistx_destroy (&self->functions);
        free (self->endpoint);
        zstr_free (&self->name);
        free (self);
        *self_p = NULL;
    }
}

const char *
drover_worker_error (drover_worker_t *self)
{
    return self->error;
}

int
drover_worker_set_slots (drover_worker_t *self, unsigned slots)
{
    if (slots == 0 || slots > 100000) {
        snprintf (self->error, sizeof self->error, "slots must be 1 to 100000, not %u", slots);
        return -1;
    }
    self->slots = slots;
    return 0;
}

void
drover_worker_set_heartbeat (drover_worker_t *self, unsigned interval_ms, unsigned liveness)
{
    self->heartbeat_ms = interval_ms ? interval_ms : 1;
    self->liveness = liveness ? liveness : 1;
}

void
drover_worker_set_name (drover_worker_t *self, const char *name)
{
    //  The protocol carries names of up to DRV_NAME_MAX bytes.
    if (name && *name) {
        zstr_free (&self->name);
        self->name = strndup (name, DRV_NAME_MAX);
    }
}

//  Add a function record; takes ownership of argv.
static int
s_add (drover_worker_t *self, const char *name, drover_handler_fn *handler, void *arg,
       char **argv)
{
    if (!drv_codec_valid_function (name)) {
        snprintf (self->error, sizeof self->error,
                  "function name '%s' is not valid: use 1 to %d characters of "
                  "A-Z a-z 0-9 _ . : / -",
                  name ? name : "", DRV_FUNCTION_MAX);
        drv_exec_argv_destroy (&argv);
        return -1;
    }
    for (s_function_t *f = (s_function_t *) zlistx_first (self->functions); f;
         f = (s_function_t *) zlistx_next (self->functions))
        if (streq (f->name, name)) {
            snprintf (self->error, sizeof self->error, "function '%s' is offered twice", name);
            drv_exec_argv_destroy (&argv);
            return -1;
        }
    s_function_t *function = (s_function_t *) calloc (1, sizeof *function);
    if (!function || !(function->name = strdup (name))) {
        free (function);
        drv_exec_argv_destroy (&argv);
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    function->handler = handler;
    function->arg = arg;
    function->argv = argv;
    zlistx_add_end (self->functions, function);
    return 0;
}

int
drover_worker_add_handler (drover_worker_t *self, const char *name, drover_handler_fn *handler,
                           void *arg)
{
    if (!handler) {
        snprintf (self->error, sizeof self->error, "handler for '%s' is NULL", name);
        return -1;
    }
    return s_add (self, name, handler, arg, NULL);
}

int
drover_worker_add_exec (drover_worker_t *self, const char *name, const char *spec)
{
    char **argv = drv_exec_argv_new (spec ? spec : "");
    if (!argv) {
        snprintf (self->error, sizeof self->error, "function '%s' names no program to run",
                  name);
        return -1;
    }
    return s_add (self, name, NULL, NULL, argv);
}

int
drover_worker_add_function (drover_worker_t *self, const char *definition)
{
    const char *equals = definition ? strchr (definition, '=') : NULL;
    if (!equals || equals == definition) {
        snprintf (self->error, sizeof self->error,
                  "'%s' is not a function definition: write NAME=exec:PROGRAM [ARG...]",
                  definition ? definition : "");
        return -1;
    }
    char name [DRV_FUNCTION_MAX + 2];
    size_t length = (size_t) (equals - definition);
    if (length > DRV_FUNCTION_MAX) {
        snprintf (self->error, sizeof self->error, "function name is longer than %d bytes",
                  DRV_FUNCTION_MAX);
        return -1;
    }
    memcpy (name, definition, length);
    name [length] = 0;
    const char *handler = equals + 1;
    if (strncmp (handler, "exec:", 5) == 0)
        return drover_worker_add_exec (self, name, handler + 5);
    snprintf (self->error, sizeof self->error,
              "function '%.64s': unknown handler '%.*s'; write NAME=exec:PROGRAM [ARG...]",
              name, (int) (strcspn (handler, ":") > 64 ? 64 : strcspn (handler, ":")), handler);
    return -1;
}

int
drover_worker_start (drover_worker_t *self)
{
    if (self->actor) {
        snprintf (self->error, sizeof self->error, "worker is already running");
        return -1;
    }
    if (zlistx_size (self->functions) == 0) {
        snprintf (self->error, sizeof self->error, "worker offers no function");
        return -1;
    }
    self->actor = zactor_new (s_agent_actor, self);
    if (!self->actor) {
        snprintf (self->error, sizeof self->error, "cannot start the worker thread");
        return -1;
    }
    char *status = NULL, *reason = NULL;
    zstr_recvx (self->actor, &status, &reason, NULL);
    int rc = 0;
    if (!status || !streq (status, "OK")) {
        snprintf (self->error, sizeof self->error, "%s", reason ? reason : "worker failed");
        zactor_destroy (&self->actor);
        rc = -1;
    }
    zstr_free (&status);
    zstr_free (&reason);
    return rc;
}

int
drover_worker_run (drover_worker_t *self)
{
    if (drover_worker_start (self) == -1)
        return -1;
    //  Wait for drover_worker_stop from another thread, or a signal. Only
    //  this thread touches the actor.
    atomic_store (&self->stop_asked, false);
    atomic_store (&self->in_run, true);
    while (!zsys_interrupted && !atomic_load (&self->stop_asked))
        zclock_sleep (50);
    zactor_destroy (&self->actor);
    atomic_store (&self->in_run, false);
    return 0;
}

void
drover_worker_stop (drover_worker_t *self)
{
    if (atomic_load (&self->in_run))
        atomic_store (&self->stop_asked, true);
    else
        zactor_destroy (&self->actor);
}

uint64_t
drover_worker_completed (drover_worker_t *self)
{
    return atomic_load (&self->completed);
}
