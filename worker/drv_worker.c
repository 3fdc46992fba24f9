/*  drv_worker - the worker half of libdrover (drover_worker_* in drover.h).

    A worker is an actor holding one DEALER to the broker's worker
    endpoint and one zloop. It announces its functions and slots (Ready),
    runs what the broker dispatches, and sends results back (Done), each
    result returning one credit. exec: tasks run as child processes driven
    by the same loop (drv_exec); in-process handlers run in a prefork pool
    of processes (drv_pool; threads on request), fed in batches, so a slow
    or crashing handler never stalls the loop, the heartbeats or the other
    tasks. Results that finish in one loop pass go out in one Done.

    Progress reports of running tasks (drover_task_progress from the pool,
    lines on an exec: task's DROVER_PROGRESS_FD) are coalesced: the agent
    keeps each running task's latest, and one timer sends what changed at
    most every PROGRESS_EVERY_MS, in one Progress message; a task's result
    drops its report. Nothing is stored on disk or sent again.

    The worker heartbeats the broker every second; if the broker answers
    that it does not know this worker (it restarted), the worker announces
    itself again. A broker that refuses the worker's handshake (CURVE key
    not listed, wrong broker key, CURVE on one side only; drv_handshake
    tells) ends the agent instead: it reports "FAILED" on its pipe. No
    send blocks for ever (s_send_within): libzmq leaves a refused or
    broken connection without a pipe, and a DEALER without one takes
    nothing.
*/

#include <dlfcn.h>
#include <stdatomic.h>
#include <unistd.h>

#include "drv_auth.h"
#include "drv_codec.h"
#include "drv_exec.h"
#include "drv_pool.h"
#include "drv_sandbox.h"
#include "drv_handshake.h"
#include "drv_util.h"

#define DONE_BYTES_MAX (32 * 1024 * 1024)   //  result bytes in one Done before another
#define PROGRESS_EVERY_MS 200                //  a task's progress goes at most this often
#define PROGRESS_BYTES_MAX (1024 * 1024)     //  partial bytes in one Progress before another
#define PROGRESS_SEQS 16                     //  Progress seqs remembered, to match refusals

//  One offered function.
typedef struct {
    char *name;                      //  function name
    drover_handler_fn *handler;      //  in-process handler, or NULL
    void *arg;                       //  handler's argument
    char **argv;                     //  exec: program and arguments, or NULL
    void *plugin;                    //  dlopen handle of its plugin, or NULL
    size_t pool_index;               //  in-process: its index in the pool
} s_function_t;

struct _drover_worker_t {
    char *endpoint;                  //  broker's worker endpoint
    char *name;                      //  shown in logs and views
    unsigned slots;                  //  tasks at once
    unsigned prefetch;               //  tasks held beyond slots (credit = slots + prefetch)
    bool threads;                    //  in-process handlers on threads, not processes
    unsigned max_tasks;              //  tasks per pool process; 0: no limit
    drover_init_fn *init;            //  run once in each pool process, or NULL
    void *init_arg;                  //  its argument
    void *init_plugin;               //  dlopen handle of the initializer, or NULL
    drv_sandbox_t sandbox;           //  per-task limits and user
    uint32_t heartbeat_ms;           //  heartbeat interval
    uint32_t liveness;               //  silent intervals before the broker is gone
    size_t max_output;               //  largest result accepted
    zlistx_t *functions;             //  s_function_t, owned
    zcert_t *curve_cert;             //  CURVE: our key pair, or NULL
    zcert_t *broker_cert;            //  CURVE: the broker's public key
    zactor_t *actor;                 //  running agent, or NULL
    atomic_uint_fast64_t completed;  //  tasks finished
    atomic_bool in_run;              //  drover_worker_run owns the actor
    atomic_bool stop_asked;          //  drover_worker_stop called during run
    char error [512];                //  last error
};

//  One task being run.
typedef struct _s_running_t s_running_t;

struct _s_running_t {
    uint64_t job_id;                 //  the broker's id
    s_function_t *function;          //  borrowed
    drv_exec_t *exec;                //  the child once started, or NULL
    uint8_t *payload;                //  copy of the input until it starts
    size_t size;                     //  bytes in payload
    uint32_t timeout_ms;             //  task timeout
    void *handle;                    //  place in agent->running or backlog
    struct _s_agent_t *agent;        //  owner
};

//  A running task's latest progress report.
typedef struct {
    uint64_t job_id;                 //  the broker's id
    uint64_t done;                   //  as reported
    uint64_t total;                  //  as reported
    uint8_t *partial;                //  partial output, owned, or NULL
    size_t size;                     //  bytes in partial
    bool pending;                    //  changed since it was last sent
} s_report_t;

typedef struct _s_agent_t {
    drover_worker_t *worker;         //  configuration, borrowed
    zsock_t *pipe;                   //  to the owner
    zsock_t *dealer;                 //  to the broker
    drv_handshake_t *handshake;      //  watches the dealer's handshakes
    bool refused;                    //  the broker refused us: stop
    zloop_t *loop;                   //  the event loop
    drv_pool_t *pool;                //  in-process handlers, or NULL
    drv_pool_function_t *pool_functions;  //  the pool's function table, owned
    zlistx_t *running;               //  exec: s_running_t being run, owned
    zlistx_t *backlog;               //  exec: s_running_t waiting for a slot
    zlistx_t *done;                  //  drover_result_t to send, owned
    drv_result_t *borrowed;          //  pool results to send, borrowed for the pass
    size_t nborrowed;                //  entries in borrowed
    size_t borrowed_capacity;        //  entries borrowed holds
    drv_result_t *outgoing;          //  scratch array for one Done
    size_t outgoing_capacity;        //  entries outgoing holds
    uint64_t seq;                    //  last request sequence
    uint8_t instance [DRV_INSTANCE_MAX];  //  the broker's run id, as last seen
    size_t instance_size;            //  bytes in instance
    int64_t last_ready;              //  when Ready was last sent
    int64_t last_heard;              //  when the broker last sent anything
    int64_t reconnect_at;            //  next reconnect while it is silent, or 0
    int64_t backoff_ms;              //  wait before the reconnect after that
    zhashx_t *reports;               //  job id -> s_report_t of running tasks, owned
    int progress_timer;              //  sends the reports, or -1
    uint64_t progress_seqs [PROGRESS_SEQS];  //  seqs of the last Progress messages sent
    bool progress_off;               //  this broker does not take Progress
    zhashx_t *chunks;                //  job id -> s_chunk_t being run, owned
    zhashx_t *items;                 //  item id -> its s_chunk_t, borrowed
    uint64_t next_item;              //  the next chunk item's id
} s_agent_t;

//  ---------------------------------------------------------------------
//  Chunks. A chunked task (Task.chunk, from a map with a chunk size)
//  carries many items in one job. Each item runs through the ordinary
//  path (pool, threads or exec:, sandbox and timeout as any task) under
//  an item id of its own, with the top bit set so it never equals a
//  broker's job id. Item results are kept here; once every item has one
//  they go to the broker as one result of the job, its data an encoded
//  ChunkResults.

#define S_ITEM_BIT ((uint64_t) 1 << 63)

typedef struct {
    uint64_t job_id;                 //  the broker's id of the chunk
    uint64_t first;                  //  item i has id first + i
    size_t count;                    //  items
    size_t left;                     //  items without a result yet
    drover_result_t **results;       //  per item once in, owned
} s_chunk_t;

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

//  The broker refused us: report it once to the owner; the caller ends
//  the loop. 0 while there is no verdict, -1 once there is one.
static int
s_check_refusal (s_agent_t *self)
{
    if (self->refused)
        return -1;
    if (drv_handshake_read (self->handshake) == 0)
        return 0;
    const char *reason = drv_handshake_reason (self->handshake);
    zsys_error ("worker: %s; stopping", reason);
    zstr_sendx (self->pipe, "FAILED", reason, NULL);
    self->refused = true;
    return -1;
}

static int
s_on_stop (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

//  Send a message to the broker, waiting at most wait_ms for the socket
//  to take it; 0 sent, -1 not (the message is dropped).
//  A send must not block for ever: once the broker refuses the handshake
//  and the linger has passed, libzmq drops the connection's pipe, and a
//  DEALER without one takes nothing. So the wait watches for the
//  broker's verdict (and ends the loop on it) and for the owner's
//  command (which the loop then takes). A socket that takes nothing for
//  wait_ms has no usable connection: the message is dropped, and the
//  heartbeat connects again once the broker has been silent that long.
static int
s_send_within (s_agent_t *self, drv_msg_t *msg, int64_t wait_ms)
{
    msg->seq = ++self->seq;
    zframe_t *frame = drv_codec_encode (msg);
    if (!frame)
        return -1;
    int64_t deadline = 0;           //  taken only when the socket is full
    int rc = 0;
    while (rc == 0 && zframe_send (&frame, self->dealer, ZFRAME_DONTWAIT) == -1) {
        int error = zmq_errno ();
        if (!deadline)
            deadline = zclock_mono () + wait_ms;
        int64_t left = deadline - zclock_mono ();
        if (error != EAGAIN)
            rc = -1;
        else
        if (left <= 0) {
            zsys_warning ("worker: the connection to %s took no message for %" PRId64
                          " ms; one dropped",
                          self->worker->endpoint, wait_ms);
            rc = -1;
        }
        else {
            zmq_pollitem_t items [3] = {
                {.socket = zsock_resolve (self->dealer), .events = ZMQ_POLLOUT},
                {.socket = zsock_resolve (drv_handshake_sock (self->handshake)),
                 .events = ZMQ_POLLIN},
                {.socket = zsock_resolve (self->pipe), .events = ZMQ_POLLIN},
            };
            if (zmq_poll (items, 3, left) == -1 || (items [2].revents & ZMQ_POLLIN))
                rc = -1;
            else
            if ((items [1].revents & ZMQ_POLLIN) && s_check_refusal (self) == -1) {
                zloop_timer (self->loop, 0, 1, s_on_stop, NULL);
                rc = -1;
            }
        }
    }
    zframe_destroy (&frame);
    return rc;
}

static int
s_send (s_agent_t *self, drv_msg_t *msg)
{
    return s_send_within (self, msg,
                          (int64_t) self->worker->heartbeat_ms * self->worker->liveness);
}

//  ---------------------------------------------------------------------
//  Progress: the latest report per task, sent by one timer.

static void
s_report_destroy (void **item)
{
    s_report_t *report = (s_report_t *) *item;
    if (report) {
        free (report->partial);
        free (report);
        *item = NULL;
    }
}

//  Send every report that changed, in Progress messages of at most
//  PROGRESS_BYTES_MAX partial bytes (at least one report each).
static int
s_on_progress_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_agent_t *self = (s_agent_t *) arg;
    self->progress_timer = -1;
    size_t count = zhashx_size (self->reports);
    drv_progress_t *batch = count ? (drv_progress_t *) calloc (count, sizeof *batch) : NULL;
    size_t n = 0, bytes = 0;
    for (s_report_t *report = (s_report_t *) zhashx_first (self->reports); batch && report;
         report = (s_report_t *) zhashx_next (self->reports)) {
        if (!report->pending)
            continue;
        report->pending = false;
        if (n && bytes + report->size > PROGRESS_BYTES_MAX) {
            drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .progress = batch, .nprogress = n};
            s_send (self, &msg);
            self->progress_seqs [msg.seq % PROGRESS_SEQS] = msg.seq;
            n = bytes = 0;
        }
        batch [n++] = (drv_progress_t) {.job_id = report->job_id, .done = report->done,
                                        .total = report->total, .partial = report->partial,
                                        .size = report->size};
        bytes += report->size;
    }
    if (n) {
        drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .progress = batch, .nprogress = n};
        s_send (self, &msg);
        self->progress_seqs [msg.seq % PROGRESS_SEQS] = msg.seq;
    }
    free (batch);
    return 0;
}

//  Keep a task's latest report (partial NULL: only the numbers are new);
//  the timer sends it.
static void
s_keep_progress (s_agent_t *self, uint64_t job_id, uint64_t done, uint64_t total,
                 const uint8_t *partial, size_t size)
{
    //  An item of a chunk is no job the broker knows: a chunk's items
    //  report no progress (their results come together anyway).
    if (self->progress_off || !self->reports || !job_id || (job_id & S_ITEM_BIT))
        return;
    if (size > DRV_PROGRESS_PARTIAL_MAX)
        size = DRV_PROGRESS_PARTIAL_MAX;
    s_report_t *report = (s_report_t *) drv_util_u64_lookup (self->reports, job_id);
    if (!report) {
        report = (s_report_t *) calloc (1, sizeof *report);
        if (!report)
            return;
        report->job_id = job_id;
        zhashx_insert (self->reports, drv_util_u64_key (job_id), report);
    }
    if (partial) {
        uint8_t *copy = NULL;
        if (size && !(copy = (uint8_t *) malloc (size)))
            size = 0;               //  the numbers at least
        if (size)
            memcpy (copy, partial, size);
        free (report->partial);
        report->partial = copy;
        report->size = size;
    }
    report->done = done;
    report->total = total;
    report->pending = true;
    if (self->progress_timer == -1)
        self->progress_timer
            = zloop_timer (self->loop, PROGRESS_EVERY_MS, 1, s_on_progress_timer, self);
}

//  A task finished: its result supersedes a report not yet sent.
static void
s_drop_progress (s_agent_t *self, uint64_t job_id)
{
    if (self->reports && job_id && zhashx_size (self->reports))
        zhashx_delete (self->reports, drv_util_u64_key (job_id));
}

//  drv_pool_progress_fn
static void
s_on_pool_progress (void *arg, uint64_t job_id, uint64_t done, uint64_t total,
                    const uint8_t *partial, size_t size)
{
    s_keep_progress ((s_agent_t *) arg, job_id, done, total, partial, size);
}

//  drv_exec_progress_fn
static void
s_on_exec_progress (drv_exec_t *exec, void *arg, uint64_t done, uint64_t total,
                    const uint8_t *partial, size_t size)
{
    (void) exec;
    s_running_t *task = (s_running_t *) arg;
    s_keep_progress (task->agent, task->job_id, done, total, partial, size);
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
        .slots = worker->slots + worker->prefetch,
        .name = worker->name,
        .chunks = true,
        .payload_frames = true,
    };
    s_send (self, &msg);
    free (names);
}

//  Room for count results in an array of drv_result_t; 0 or -1.
static int
s_grow (drv_result_t **array, size_t *capacity, size_t count)
{
    if (count <= *capacity)
        return 0;
    size_t wanted = *capacity ? *capacity : 256;
    while (wanted < count)
        wanted *= 2;
    drv_result_t *grown = (drv_result_t *) realloc (*array, wanted * sizeof **array);
    if (!grown)
        return -1;
    *array = grown;
    *capacity = wanted;
    return 0;
}

//  Send every finished result: the pool's (borrowed for this pass) and
//  the others (owned), in as few Done messages as the size limit allows.
static void
s_flush_done (s_agent_t *self)
{
    size_t count = self->nborrowed + zlistx_size (self->done);
    if (!count)
        return;
    if (s_grow (&self->outgoing, &self->outgoing_capacity, count) == -1) {
        zsys_error ("worker: out of memory sending %zu results", count);
        return;                     //  the owned ones are retried later
    }
    size_t n = 0;
    for (size_t i = 0; i < self->nborrowed; i++)
        self->outgoing [n++] = self->borrowed [i];
    for (drover_result_t *r = (drover_result_t *) zlistx_first (self->done); r;
         r = (drover_result_t *) zlistx_next (self->done))
        self->outgoing [n++] = (drv_result_t) {
            .job_id = r->job_id,
            .outcome = r->outcome,
            .data = r->data,
            .size = r->size,
            .reason = r->reason,
        };
    size_t start = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += self->outgoing [i].size;
        if (i + 1 == n || bytes + self->outgoing [i + 1].size > DONE_BYTES_MAX) {
            drv_msg_t msg = {.type = DRV_MSG_DONE,
                             .results = self->outgoing + start,
                             .nresults = i + 1 - start};
            s_send (self, &msg);
            start = i + 1;
            bytes = 0;
        }
    }
    atomic_fetch_add (&self->worker->completed, self->nborrowed);
    self->nborrowed = 0;
    zlistx_purge (self->done);
}

static void
s_chunk_destroy (void **item)
{
    s_chunk_t *chunk = (s_chunk_t *) *item;
    if (chunk) {
        for (size_t i = 0; chunk->results && i < chunk->count; i++)
            drover_result_destroy (&chunk->results [i]);
        free (chunk->results);
        free (chunk);
        *item = NULL;
    }
}

//  Every item of the chunk has a result: queue the chunk's own. It is OK
//  only if every item is; otherwise it takes the first failed item's
//  outcome, and says how many failed.
static void
s_chunk_finish (s_agent_t *self, s_chunk_t *chunk)
{
    drv_result_t *items = (drv_result_t *) calloc (chunk->count, sizeof *items);
    size_t failed = 0, first_failed = 0;
    for (size_t i = 0; items && i < chunk->count; i++) {
        drover_result_t *r = chunk->results [i];
        items [i] = r ? (drv_result_t) {.outcome = r->outcome, .data = r->data,
                                        .size = r->size, .reason = r->reason}
                      : (drv_result_t) {.outcome = DROVER_OUTCOME_ERROR,
                                        .reason = "worker out of memory"};
        if (items [i].outcome != DROVER_OUTCOME_OK && failed++ == 0)
            first_failed = i;
    }
    size_t size = 0;
    uint8_t *packed = items ? drv_codec_chunk_results_pack (items, chunk->count, &size) : NULL;
    drover_outcome_t outcome = failed ? items [first_failed].outcome : DROVER_OUTCOME_OK;
    char reason [DRV_TEXT_MAX + 1] = "";
    if (failed)
        snprintf (reason, sizeof reason, "%zu of %zu items failed; item %zu: %s", failed,
                  chunk->count, first_failed + 1, items [first_failed].reason);
    drover_result_t *result = NULL;
    if (!packed)
        result = drv_util_result_new (chunk->job_id, DROVER_OUTCOME_ERROR, NULL, 0,
                                      "worker out of memory", 0);
    else
    if (size > self->worker->max_output) {
        snprintf (reason, sizeof reason,
                  "the chunk's results are %zu bytes, more than the limit of %zu: map with a "
                  "smaller chunk size",
                  size, self->worker->max_output);
        result = drv_util_result_new (chunk->job_id, DROVER_OUTCOME_ERROR, NULL, 0, reason, 0);
    }
    else
        result = drv_util_result_new (chunk->job_id, outcome, packed, size, reason, 0);
    if (result)
        zlistx_add_end (self->done, result);
    else
        zsys_error ("worker: out of memory for result job=%" PRIu64, chunk->job_id);
    free (packed);
    free (items);
    zhashx_delete (self->chunks, drv_util_u64_key (chunk->job_id));
}

//  A result for item_id: if it is a chunk item, keep it for its chunk
//  (or drop it, its chunk cancelled) and return true; false for a job.
static bool
s_chunk_collect (s_agent_t *self, uint64_t item_id, drover_outcome_t outcome,
                 const void *data, size_t size, const char *reason)
{
    if (!(item_id & S_ITEM_BIT))
        return false;
    s_chunk_t *chunk = (s_chunk_t *) drv_util_u64_lookup (self->items, item_id);
    if (!chunk)
        return true;
    zhashx_delete (self->items, drv_util_u64_key (item_id));
    size_t index = (size_t) (item_id - chunk->first);
    chunk->results [index]
        = drv_util_result_new (chunk->job_id, outcome, data, size, reason ? reason : "", 0);
    if (--chunk->left == 0)
        s_chunk_finish (self, chunk);
    return true;
}

//  drv_pool_result_fn: keep the result, borrowed, until the pass ends.
static void
s_on_pool_result (void *arg, uint64_t job_id, drover_outcome_t outcome, const uint8_t *data,
                  size_t size, const char *reason)
{
    s_agent_t *self = (s_agent_t *) arg;
    if (s_chunk_collect (self, job_id, outcome, data, size, reason)) {
        atomic_fetch_add (&self->worker->completed, 1);
        return;
    }
    if (s_grow (&self->borrowed, &self->borrowed_capacity, self->nborrowed + 1) == -1) {
        zsys_error ("worker: out of memory for result job=%" PRIu64, job_id);
        return;
    }
    s_drop_progress (self, job_id);
    if (outcome != DROVER_OUTCOME_OK)
        zsys_info ("worker: task failed job=%" PRIu64 " reason=%s", job_id, reason);
    //  The protocol carries reasons of up to DRV_TEXT_MAX bytes.
    if (strlen (reason) > DRV_TEXT_MAX)
        ((char *) reason) [DRV_TEXT_MAX] = 0;
    self->borrowed [self->nborrowed++] = (drv_result_t) {
        .job_id = job_id,
        .outcome = outcome,
        .data = data,
        .size = size,
        .reason = reason,
    };
}

//  drv_pool_pass_fn
static void
s_on_pool_pass (void *arg)
{
    s_flush_done ((s_agent_t *) arg);
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
    s_drop_progress (self, task->job_id);
    if (!s_chunk_collect (self, task->job_id, outcome, data, size, reason)) {
        drover_result_t *result
            = drv_util_result_new (task->job_id, outcome, data, size, reason, 0);
        if (result)
            zlistx_add_end (self->done, result);
        else
            zsys_error ("worker: out of memory for result job=%" PRIu64, task->job_id);
    }
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

static s_function_t *
s_find_function (s_agent_t *self, const char *name)
{
    for (s_function_t *f = (s_function_t *) zlistx_first (self->worker->functions); f;
         f = (s_function_t *) zlistx_next (self->worker->functions))
        if (streq (f->name, name))
            return f;
    return NULL;
}

//  Start waiting exec: tasks, oldest first, while fewer than slots run.
static void
s_run_backlog (s_agent_t *self)
{
    s_running_t *task;
    while (zlistx_size (self->running) < self->worker->slots
           && (task = (s_running_t *) zlistx_first (self->backlog))) {
        zlistx_detach (self->backlog, task->handle);
        task->handle = zlistx_add_end (self->running, task);
        char err [256] = "";
        drv_sandbox_t *sandbox = &self->worker->sandbox;
        task->exec = drv_exec_start (self->loop, task->function->argv, task->payload,
                                     task->size, task->timeout_ms, self->worker->max_output,
                                     drv_sandbox_active (sandbox) ? sandbox : NULL,
                                     s_on_exec_done, task, err, sizeof err);
        free (task->payload);
        task->payload = NULL;
        if (!task->exec)
            s_finish (self, task, DROVER_OUTCOME_ERROR, NULL, 0, err);
        else
            drv_exec_set_progress (task->exec, s_on_exec_progress, task);
    }
}

//  Fail a task at once with a result of our own.
static void
s_refuse (s_agent_t *self, uint64_t job_id, drover_outcome_t outcome, const char *reason)
{
    if (s_chunk_collect (self, job_id, outcome, NULL, 0, reason)) {
        atomic_fetch_add (&self->worker->completed, 1);
        return;
    }
    drover_result_t *result = drv_util_result_new (job_id, outcome, NULL, 0, reason, 0);
    if (result)
        zlistx_add_end (self->done, result);
    atomic_fetch_add (&self->worker->completed, 1);
}

static void
s_release_frame (void *owner)
{
    zframe_t *frame = (zframe_t *) owner;
    zframe_destroy (&frame);
}

//  Run one task of function: an in-process one goes to the pool's queue
//  (handed to its members in batches once the whole Dispatch is in); an
//  exec: one runs now if a slot is free, else waits in the backlog. msg
//  holds the task at index, or is NULL (an item of a chunk): then a
//  large payload is taken from it, frame or block, and the pool keeps it
//  rather than a copy until the task is answered.
static void
s_take_one (s_agent_t *self, const drv_task_t *spec, s_function_t *function, drv_msg_t *msg,
            size_t index)
{
    if (function->handler) {
        int rc;
        zframe_t *frame = msg && spec->size >= DRV_FRAME_MIN && spec->framed
                              ? drv_msg_take_frame (msg, index)
                              : NULL;
        uint8_t *block = msg && spec->size >= DRV_FRAME_MIN && !spec->framed
                             ? drv_msg_take_payload (msg, index)
                             : NULL;
        if (frame)
            rc = drv_pool_submit_kept (self->pool, spec->id, function->pool_index,
                                       zframe_data (frame), zframe_size (frame),
                                       spec->timeout_ms, s_release_frame, frame);
        else
        if (block)
            rc = drv_pool_submit_kept (self->pool, spec->id, function->pool_index, block,
                                       spec->size, spec->timeout_ms, free, block);
        else
            rc = drv_pool_submit (self->pool, spec->id, function->pool_index, spec->payload,
                                  spec->size, spec->timeout_ms);
        if (rc == -1)
            s_refuse (self, spec->id, DROVER_OUTCOME_ERROR, "worker out of memory");
        return;
    }
    s_running_t *task = (s_running_t *) calloc (1, sizeof *task);
    if (task)
        task->payload = (uint8_t *) malloc (spec->size ? spec->size : 1);
    if (!task || !task->payload) {
        free (task);
        s_refuse (self, spec->id, DROVER_OUTCOME_ERROR, "worker out of memory");
        return;
    }
    task->job_id = spec->id;
    task->agent = self;
    task->timeout_ms = spec->timeout_ms;
    task->function = function;
    memcpy (task->payload, spec->payload, spec->size);
    task->size = spec->size;
    task->handle = zlistx_add_end (self->backlog, task);
}

//  Run a chunked task: each item as a task of its own, with the chunk's
//  timeout each; the results are gathered by s_chunk_collect.
static void
s_take_chunk (s_agent_t *self, const drv_task_t *spec, s_function_t *function)
{
    if (drv_util_u64_lookup (self->chunks, spec->id))
        return;                     //  dispatched again while it runs here
    drv_chunk_t *items = drv_codec_chunk_unpack (spec->payload, spec->size);
    s_chunk_t *chunk = items ? (s_chunk_t *) calloc (1, sizeof *chunk) : NULL;
    if (chunk)
        chunk->results = (drover_result_t **) calloc (items->count, sizeof (drover_result_t *));
    if (!chunk || !chunk->results) {
        void *item = chunk;
        s_chunk_destroy (&item);
        s_refuse (self, spec->id, DROVER_OUTCOME_ERROR,
                  items ? "worker out of memory" : "a chunked task whose payload is no chunk");
        free (items);
        return;
    }
    if (self->next_item < S_ITEM_BIT || self->next_item + items->count < self->next_item)
        self->next_item = S_ITEM_BIT;
    chunk->job_id = spec->id;
    chunk->first = self->next_item;
    chunk->count = items->count;
    chunk->left = items->count;
    self->next_item += items->count;
    zhashx_insert (self->chunks, drv_util_u64_key (chunk->job_id), chunk);
    for (size_t i = 0; i < items->count; i++)
        zhashx_insert (self->items, drv_util_u64_key (chunk->first + i), chunk);
    uint64_t first = chunk->first;
    for (size_t i = 0; i < items->count; i++) {
        drv_task_t item = *spec;
        item.id = first + i;
        item.payload = items->items [i];
        item.size = items->sizes [i];
        item.chunk = false;
        //  The last item's result may finish the chunk and free it.
        s_take_one (self, &item, function, NULL, 0);
    }
    free (items);
}

//  Take dispatched task index of msg, a chunked one or not.
static void
s_take_task (s_agent_t *self, drv_msg_t *msg, size_t index)
{
    const drv_task_t *spec = &msg->tasks [index];
    s_function_t *function = s_find_function (self, spec->function);
    if (!function) {
        char reason [DRV_FUNCTION_MAX + 64];
        snprintf (reason, sizeof reason, "worker %s does not offer '%s'", self->worker->name,
                  spec->function);
        s_refuse (self, spec->id, DROVER_OUTCOME_NO_HANDLER, reason);
        return;
    }
    if (spec->chunk)
        s_take_chunk (self, spec, function);
    else
        s_take_one (self, spec, function, msg, index);
}

//  The broker cancelled a job: kill its task, or drop it if it waits.
//  In threads mode a running handler cannot be stopped; its result is
//  ignored.
static void s_cancel_task (s_agent_t *self, uint64_t job_id);

//  Cancel a chunk: forget it, then stop its items still pending (their
//  results, if any come, are dropped).
static void
s_cancel_chunk (s_agent_t *self, s_chunk_t *chunk)
{
    uint64_t first = chunk->first;
    size_t count = chunk->count;
    zhashx_delete (self->chunks, drv_util_u64_key (chunk->job_id));
    for (size_t i = 0; i < count; i++)
        if (drv_util_u64_lookup (self->items, first + i)) {
            zhashx_delete (self->items, drv_util_u64_key (first + i));
            s_cancel_task (self, first + i);
        }
}

static void
s_cancel_task (s_agent_t *self, uint64_t job_id)
{
    s_chunk_t *chunk = (s_chunk_t *) drv_util_u64_lookup (self->chunks, job_id);
    if (chunk) {
        zsys_info ("worker: cancelling chunk job=%" PRIu64 " items=%zu", job_id, chunk->count);
        s_cancel_chunk (self, chunk);
        return;
    }
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
    if (self->pool && drv_pool_cancel (self->pool, job_id))
        zsys_info ("worker: cancelling job=%" PRIu64, job_id);
}

static int
s_on_broker (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_agent_t *self = (s_agent_t *) arg;
    //  The envelope, then a Dispatch's payload frames (its framed tasks
    //  point into them until the message is destroyed).
    zmsg_t *parts = zmsg_recv (sock);
    zframe_t *frame = parts ? zmsg_pop (parts) : NULL;
    if (!frame) {
        zmsg_destroy (&parts);
        return 0;
    }
    drv_msg_t *msg = NULL;
    char err [256] = "";
    drv_limits_t limits = drv_limits_from_broker ();
    size_t nframes = zmsg_size (parts);
    zframe_t **frames = nframes ? (zframe_t **) malloc (nframes * sizeof (zframe_t *)) : NULL;
    for (size_t i = 0; frames && i < nframes; i++)
        frames [i] = zmsg_pop (parts);
    zmsg_destroy (&parts);
    drover_error_t rc = nframes && !frames
                            ? DROVER_ERR_INTERNAL
                            : drv_codec_decode_frames (zframe_data (frame), zframe_size (frame),
                                                       frames, nframes, &limits, &msg, NULL, err,
                                                       sizeof err);
    if (nframes && !frames)
        snprintf (err, sizeof err, "out of memory");
    free (frames);
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
            self->progress_off = false;
            zsys_info ("worker: broker restarted; announcing again");
            s_send_ready (self);
        }
    }
    if (msg->type == DRV_MSG_CANCEL) {
        for (size_t i = 0; i < msg->njob_ids; i++)
            s_cancel_task (self, msg->job_ids [i]);
        s_flush_done (self);
    }
    else
    if (msg->type == DRV_MSG_DISPATCH) {
        for (size_t i = 0; i < msg->ntasks; i++)
            s_take_task (self, msg, i);
        if (self->pool)
            drv_pool_flush (self->pool);
        s_run_backlog (self);
        s_flush_done (self);
    }
    else
    if (msg->type == DRV_MSG_ERROR) {
        if (msg->code == DROVER_ERR_MALFORMED && msg->seq
            && self->progress_seqs [msg->seq % PROGRESS_SEQS] == msg->seq && !self->progress_off) {
            //  A broker older than Progress: keep the reports to ourselves.
            zsys_info ("worker: broker does not take progress reports (%s); not sending them",
                       msg->text);
            self->progress_off = true;
            zhashx_purge (self->reports);
        }
        else
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

//  Connection events: the broker refusing us ends the agent.
static int
s_on_handshake (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    return s_check_refusal ((s_agent_t *) arg);
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
    self->reports = drv_util_u64_hash_new ();
    self->progress_timer = -1;
    self->loop = zloop_new ();
    self->dealer = zsock_new (ZMQ_DEALER);
    self->chunks = drv_util_u64_hash_new ();
    self->items = drv_util_u64_hash_new ();
    if (self->chunks)
        zhashx_set_destructor (self->chunks, s_chunk_destroy);
    if (!self->running || !self->backlog || !self->done || !self->reports || !self->loop
        || !self->dealer || !self->chunks || !self->items)
        snprintf (err, sizeof err, "out of memory");
    else {
        zlistx_set_destructor (self->running, s_running_destroy);
        zlistx_set_destructor (self->backlog, s_running_destroy);
        zlistx_set_destructor (self->done, s_result_destroy);
        zhashx_set_destructor (self->reports, s_report_destroy);
        zuuid_t *uuid = zuuid_new ();
        char identity [40];
        snprintf (identity, sizeof identity, "W%.24s", zuuid_str (uuid));
        zuuid_destroy (&uuid);
        zsock_set_identity (self->dealer, identity);
        zsock_set_linger (self->dealer, 1000);
        zsock_set_sndhwm (self->dealer, 100000);
        zsock_set_rcvhwm (self->dealer, 100000);
        if (worker->curve_cert)
            drv_auth_client_apply (self->dealer, worker->curve_cert, worker->broker_cert, err,
                                   sizeof err);
        //  Watch before connecting, so that no event is missed.
        if (!*err)
            self->handshake = drv_handshake_new (self->dealer, "worker",
                                                 worker->curve_cert != NULL, err, sizeof err);
        if (!*err && zsock_connect (self->dealer, "%s", worker->endpoint) == -1)
            snprintf (err, sizeof err, "cannot connect to %s: %s", worker->endpoint,
                      zmq_strerror (zmq_errno ()));
    }
    size_t in_process = 0;
    for (s_function_t *f = (s_function_t *) zlistx_first (worker->functions); f;
         f = (s_function_t *) zlistx_next (worker->functions))
        in_process += f->handler ? 1 : 0;
    if (!*err && in_process) {
        self->pool_functions
            = (drv_pool_function_t *) calloc (in_process, sizeof (drv_pool_function_t));
        size_t index = 0;
        for (s_function_t *f = (s_function_t *) zlistx_first (worker->functions);
             f && self->pool_functions; f = (s_function_t *) zlistx_next (worker->functions))
            if (f->handler) {
                f->pool_index = index;
                self->pool_functions [index++]
                    = (drv_pool_function_t) {.name = f->name, .handler = f->handler, .arg = f->arg};
            }
        drv_pool_config_t config = {
            .size = worker->slots,
            .threads = worker->threads,
            .max_tasks = worker->max_tasks,
            .init = worker->init,
            .init_arg = worker->init_arg,
            .functions = self->pool_functions,
            .nfunctions = in_process,
            .max_output = worker->max_output,
            .sandbox = drv_sandbox_active (&worker->sandbox) ? &worker->sandbox : NULL,
        };
        if (self->pool_functions) {
            self->pool = drv_pool_new (self->loop, &config, s_on_pool_result, s_on_pool_pass,
                                       self, err, sizeof err);
            if (self->pool)
                drv_pool_set_progress (self->pool, s_on_pool_progress);
        }
        else
            snprintf (err, sizeof err, "out of memory");
    }
    if (*err)
        zstr_sendx (pipe, "ERROR", err, NULL);
    else {
        zstr_sendx (pipe, "OK", NULL);
        zloop_set_nonstop (self->loop, true);
        zloop_reader (self->loop, pipe, drv_util_on_pipe, NULL);
        zloop_reader (self->loop, self->dealer, s_on_broker, self);
        zloop_reader (self->loop, drv_handshake_sock (self->handshake), s_on_handshake, self);
        zloop_timer (self->loop, worker->heartbeat_ms, 0, s_on_heartbeat, self);
        self->last_heard = zclock_mono ();
        s_send_ready (self);
        zsys_info ("worker: connecting broker=%s name=%s slots=%u prefetch=%u functions=%zu "
                   "pool=%s",
                   worker->endpoint, worker->name, worker->slots, worker->prefetch,
                   zlistx_size (worker->functions),
                   !self->pool ? "none" : worker->threads ? "threads" : "processes");
        zloop_start (self->loop);
        //  Leaving: the broker requeues whatever was still running here.
        if (!self->refused) {
            drv_msg_t bye = {.type = DRV_MSG_BYE};
            s_send_within (self, &bye, 1000);
        }
        zsys_info ("worker: stopping name=%s running=%zu", worker->name,
                   zlistx_size (self->running) + zlistx_size (self->backlog)
                       + (self->pool ? drv_pool_pending (self->pool) : 0));
    }
    drv_pool_destroy (&self->pool);  //  kills and reaps its processes
    free (self->pool_functions);
    free (self->borrowed);
    free (self->outgoing);
    zlistx_destroy (&self->running);  //  kills and reaps exec children
    zlistx_destroy (&self->backlog);
    zlistx_destroy (&self->done);
    zhashx_destroy (&self->reports);
    zhashx_destroy (&self->items);
    zhashx_destroy (&self->chunks);
    zloop_destroy (&self->loop);
    drv_handshake_destroy (&self->handshake);
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
        if (function->plugin)
            dlclose (function->plugin);
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
        if (self->init_plugin)
            dlclose (self->init_plugin);
        zcert_destroy (&self->curve_cert);
        zcert_destroy (&self->broker_cert);
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

int
drover_worker_set_prefetch (drover_worker_t *self, unsigned tasks)
{
    if (tasks > 100000 - self->slots) {
        snprintf (self->error, sizeof self->error,
                  "slots and prefetch together must be at most 100000, not %u + %u",
                  self->slots, tasks);
        return -1;
    }
    self->prefetch = tasks;
    return 0;
}

void
drover_worker_set_threads (drover_worker_t *self, bool threads)
{
    self->threads = threads;
}

void
drover_worker_set_max_tasks_per_child (drover_worker_t *self, unsigned tasks)
{
    self->max_tasks = tasks;
}

void
drover_worker_set_initializer (drover_worker_t *self, drover_init_fn *init, void *arg)
{
    self->init = init;
    self->init_arg = arg;
}

//  Load SYMBOL from PATH.so for "PATH.so:SYMBOL"; NULL with the error set.
static void *
s_load_symbol (drover_worker_t *self, const char *spec, void **handle_p)
{
    const char *colon = strrchr (spec, ':');
    if (!colon || colon == spec || !colon [1]) {
        snprintf (self->error, sizeof self->error,
                  "'%s' does not name a plugin: write PATH.so:SYMBOL", spec);
        return NULL;
    }
    char *path = strndup (spec, (size_t) (colon - spec));
    if (!path) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return NULL;
    }
    dlerror ();
    void *handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf (self->error, sizeof self->error, "cannot load plugin %s: %s", path,
                  dlerror ());
        free (path);
        return NULL;
    }
    void *symbol = dlsym (handle, colon + 1);
    if (!symbol) {
        snprintf (self->error, sizeof self->error, "plugin %s has no symbol '%s'", path,
                  colon + 1);
        dlclose (handle);
        free (path);
        return NULL;
    }
    free (path);
    *handle_p = handle;
    return symbol;
}

int
drover_worker_set_initializer_plugin (drover_worker_t *self, const char *spec)
{
    if (spec && strncmp (spec, "plugin:", 7) == 0)
        spec += 7;
    void *handle = NULL;
    void *symbol = s_load_symbol (self, spec ? spec : "", &handle);
    if (!symbol)
        return -1;
    if (self->init_plugin)
        dlclose (self->init_plugin);
    self->init_plugin = handle;
    drover_init_fn *init;
    *(void **) &init = symbol;
    drover_worker_set_initializer (self, init, NULL);
    return 0;
}

int
drover_worker_set_max_memory (drover_worker_t *self, uint64_t bytes)
{
    if (bytes && bytes < 1024 * 1024) {
        snprintf (self->error, sizeof self->error,
                  "a memory limit under 1 MiB leaves a task no room to start");
        return -1;
    }
    self->sandbox.max_memory = bytes;
    return 0;
}

void
drover_worker_set_max_cpu (drover_worker_t *self, unsigned seconds)
{
    self->sandbox.max_cpu = seconds;
}

int
drover_worker_set_max_files (drover_worker_t *self, unsigned files)
{
    if (files && files < 4) {
        snprintf (self->error, sizeof self->error,
                  "an open-files limit under 4 leaves a task not even its stdio and its "
                  "pool socket; use 4 or more");
        return -1;
    }
    self->sandbox.max_files = files;
    return 0;
}

void
drover_worker_set_max_procs (drover_worker_t *self, unsigned processes)
{
    self->sandbox.max_procs = processes;
}

int
drover_worker_set_user (drover_worker_t *self, const char *user)
{
    if (!user || !*user) {
        self->sandbox.has_user = false;
        return 0;
    }
    return drv_sandbox_set_user (&self->sandbox, user, self->error, sizeof self->error);
}

int
drover_worker_set_curve (drover_worker_t *self, const char *secret_file,
                         const char *broker_key_file)
{
    char err [400];
    zcert_t *cert = drv_auth_load_cert (secret_file, true, err, sizeof err);
    if (!cert) {
        snprintf (self->error, sizeof self->error, "--curve-secret: %s", err);
        return -1;
    }
    zcert_t *broker = drv_auth_load_cert (broker_key_file, false, err, sizeof err);
    if (!broker) {
        zcert_destroy (&cert);
        snprintf (self->error, sizeof self->error, "--broker-key: %s", err);
        return -1;
    }
    zcert_destroy (&self->curve_cert);
    zcert_destroy (&self->broker_cert);
    self->curve_cert = cert;
    self->broker_cert = broker;
    return 0;
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
                  "'%s' is not a function definition: write NAME=exec:PROGRAM [ARG...] "
                  "or NAME=plugin:PATH.so:SYMBOL",
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
    if (strncmp (handler, "plugin:", 7) == 0) {
        void *plugin = NULL;
        void *symbol = s_load_symbol (self, handler + 7, &plugin);
        if (!symbol)
            return -1;
        drover_handler_fn *fn;
        *(void **) &fn = symbol;
        if (drover_worker_add_handler (self, name, fn, NULL) == -1) {
            dlclose (plugin);
            return -1;
        }
        ((s_function_t *) zlistx_last (self->functions))->plugin = plugin;
        return 0;
    }
    snprintf (self->error, sizeof self->error,
              "function '%.64s': unknown handler '%.*s'; write NAME=exec:PROGRAM [ARG...] "
              "or NAME=plugin:PATH.so:SYMBOL",
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
    if (drv_sandbox_check (&self->sandbox, self->error, sizeof self->error) == -1)
        return -1;
    bool in_process = false;
    for (s_function_t *f = (s_function_t *) zlistx_first (self->functions); f;
         f = (s_function_t *) zlistx_next (self->functions))
        in_process = in_process || f->handler;
    if (self->threads && in_process && drv_sandbox_active (&self->sandbox)) {
        snprintf (self->error, sizeof self->error,
                  "task limits and --user need pool processes, not threads: an rlimit or a "
                  "user switch would bind the whole worker");
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
drover_worker_wait (drover_worker_t *self, int timeout_ms)
{
    if (!self->actor)
        return -1;
    zmsg_t *report = drv_util_wait_report (self->actor, timeout_ms);
    if (!report)
        return 0;
    //  The agent stopped by itself and said why.
    drv_util_report_reason (&report, "the worker stopped by itself", self->error,
                            sizeof self->error);
    zactor_destroy (&self->actor);
    return -1;
}

int
drover_worker_run (drover_worker_t *self)
{
    if (drover_worker_start (self) == -1)
        return -1;
    //  Wait for drover_worker_stop from another thread, a signal, or the
    //  agent stopping by itself. Only this thread touches the actor.
    atomic_store (&self->stop_asked, false);
    atomic_store (&self->in_run, true);
    int rc = 0;
    while (rc == 0 && !zsys_interrupted && !atomic_load (&self->stop_asked))
        rc = drover_worker_wait (self, 50);
    zactor_destroy (&self->actor);
    atomic_store (&self->in_run, false);
    return rc;
}

void
drover_worker_stop (drover_worker_t *self)
{
    if (atomic_load (&self->in_run))
        atomic_store (&self->stop_asked, true);
    else
        zactor_destroy (&self->actor);
}

int
drover_worker_ping (drover_worker_t *self, int timeout_ms)
{
    if (!self->actor || atomic_load (&self->in_run))
        return -1;
    zmsg_t *other = NULL;
    int rc = drv_util_ping (self->actor, timeout_ms, &other);
    if (other) {
        //  The agent stopped by itself: as drover_worker_wait would say.
        drv_util_report_reason (&other, "the worker stopped by itself", self->error,
                                sizeof self->error);
        zactor_destroy (&self->actor);
    }
    return rc;
}

uint64_t
drover_worker_completed (drover_worker_t *self)
{
    return atomic_load (&self->completed);
}
