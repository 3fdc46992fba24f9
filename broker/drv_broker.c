/*  drv_broker - the broker's transport: two ROUTER sockets and one zloop.

    Each reader takes one message, reads the clock once, decodes it with
    drv_codec, and acts through drv_store and drv_sched. Replies go back
    at once. Results go to a per-client outbox and are sent when the
    message that finished them is handled; a client that is not connected
    (ROUTER_MANDATORY says so) keeps its outbox until it is heard from
    again or the results expire. Nothing here blocks: sends use DONTWAIT.

    Peer input is never asserted on: a bad message is counted, logged with
    its peer, answered with an Error where the peer can be told, and the
    loop carries on.

    Progress reports from workers are checked (the job runs on that
    worker), kept in memory as the job's last report for Status, and
    passed on at once to the clients that asked for them: the job's
    submitter, those attached to it by its unique key, those waiting for
    it with Wait. Best effort: a client that is gone or not reading
    misses them; nothing is stored on disk or sent again, and a job's
    report goes when it finishes or is dispatched again.
*/

#include "drv_broker.h"

#include <dirent.h>
#include <errno.h>

#include "drv_auth.h"
#include "drv_heap.h"
#include "drv_guard.h"
#include "drv_metrics.h"
#include "drv_sched.h"
#include "drv_store.h"
#include "drv_util.h"

//  Job ids of results sent in one redelivery period.
typedef struct {
    uint64_t *ids;                   //  owned
    size_t count;                    //  entries used
    size_t capacity;                 //  entries allocated
} s_sent_t;

//  Results for one client: not yet sent, and sent but not acknowledged.
typedef struct {
    uint8_t identity [DRV_PEER_ID_MAX];  //  client routing id
    size_t identity_len;             //  bytes in identity
    zlistx_t *job_ids;               //  to send: uint64 ids cast to pointers
    void *busy_handle;               //  place in server->busy, or NULL
    s_sent_t recent;                 //  sent this redelivery period
    s_sent_t older;                  //  sent the period before
} s_outbox_t;

typedef struct {
    const drv_broker_config_t *config;   //  borrowed
    zsock_t *pipe;                   //  to the owning thread
    zsock_t *clients;                //  ROUTER for clients
    zsock_t *workers;                //  ROUTER for workers
    drv_auth_t *auth;                //  ZAP handler with CURVE, or NULL
    zloop_t *loop;                   //  the one event loop
    drv_store_t *store;              //  jobs and queues
    drv_sched_t *sched;              //  workers and credit
    zhashx_t *outboxes;              //  hex client id -> s_outbox_t, owns
    zhashx_t *waiters;               //  job id -> zlistx_t of s_waiter_t, owns
    size_t nwaiters;                 //  Waits held, all jobs
    zlistx_t *busy;                  //  outboxes with results to send
    zlistx_t *dead;                  //  workers found gone while dispatching
    int timer_id;                    //  the deadline timer, or -1
    int64_t timer_at;                //  when it fires
    int64_t next_liveness_ms;        //  next worker liveness check
    int64_t next_redeliver_ms;       //  next look for unacknowledged results
    uint64_t redelivered;            //  results sent again for want of an Ack
    int64_t now_ms;                  //  clock read for the current event
    uint8_t instance [16];           //  this run's id, on every message sent
    uint64_t rejected;               //  messages refused
    uint64_t malformed;              //  frames that did not decode
    uint64_t cut;                    //  connections cut by the guard
    drv_guard_t *guard;              //  cuts stuck connections over budget
    zlistx_t *acks;                  //  SubmitAcks waiting for the commit
    bool failed;                     //  the job store failed: stop
    bool dispatch_due;               //  a burst changed queues or credit
    bool flush_due;                  //  a burst queued results
    size_t restored;                 //  jobs restored from the job store
    size_t restored_results;         //  of which finished, to deliver
    zhashx_t *reports;               //  job id -> s_report_t, last progress of running jobs
    size_t report_bytes;             //  partial output bytes kept in reports
    int64_t started_ms;              //  when the loop started (uptime)
    uint64_t dispatched;             //  tasks sent to workers
    uint64_t retried;                //  failed attempts queued again
    uint64_t requeued;               //  running jobs queued again, worker gone
    uint64_t too_large;              //  messages refused as too large
    char *clients_bound;             //  the clients endpoint as bound (for the guard's count)
    zsock_t *metrics;                //  STREAM for --metrics (HTTP), or NULL
    zhashx_t *http;                  //  hex connection id -> s_http_t, owns
    char closed [64][2 * 8 + 1];     //  hex ids of HTTP connections the broker closed
    size_t next_closed;              //  where the next goes in closed
} s_server_t;

//  A running job's last progress report, for Status.
typedef struct {
    void *worker;                    //  the drv_peer_t that sent it (compared only)
    uint32_t attempt;                //  the job's attempt it was sent in
    uint64_t done;                   //  as reported
    uint64_t total;                  //  as reported
    uint8_t *partial;                //  partial output, owned, or NULL
    size_t size;                     //  bytes in partial
} s_report_t;

//  Partial output kept for Status in all, at most: past it, reports keep
//  their numbers only (clients are still sent the partial output).
#define S_REPORT_BYTES_MAX (64 * 1024 * 1024)
//  Partial output bytes in one Progress to a client before another.
#define S_PROGRESS_BYTES_PER_MESSAGE (1024 * 1024)

//  One HTTP connection to the --metrics endpoint: its request so far.
typedef struct {
    uint8_t id [DRV_PEER_ID_MAX];    //  the STREAM socket's id for it
    size_t id_len;                   //  bytes in id
    char request [4096];             //  what arrived, up to the blank line
    size_t length;                   //  bytes in request
    int64_t since_ms;                //  when it connected
} s_http_t;

//  HTTP connections open at most, how long one may take to send its
//  request, and how often the sweep looks.
#define S_HTTP_MAX 64
#define S_HTTP_TIMEOUT_MS 10000
#define S_HTTP_SWEEP_MS 1000

//  A SubmitAck to send once the jobs it acknowledges are on disk.
typedef struct {
    uint8_t identity [DRV_PEER_ID_MAX];  //  client routing id
    size_t identity_len;             //  bytes in identity
    uint64_t seq;                    //  the Submit's seq
    uint64_t *ids;                   //  job ids, owned
    size_t count;                    //  entries in ids
    uint32_t workers;                //  workers offering the function
} s_ack_t;

//  A client waiting for a job's result (Wait): the StatusReply goes to it
//  when the job finishes.
typedef struct {
    uint8_t identity [DRV_PEER_ID_MAX];  //  client routing id
    size_t identity_len;             //  bytes in identity
    uint64_t seq;                    //  the Wait's seq
    bool progress;                   //  send it the job's progress reports
} s_waiter_t;

//  Waits held at most, so that a flood of them cannot grow the broker.
#define S_MAX_WAITERS 100000

static void
s_waiters_destroy (void **item)
{
    zlistx_t *list = (zlistx_t *) *item;
    if (list) {
        void *waiter;
        while ((waiter = zlistx_first (list))) {
            zlistx_delete (list, zlistx_cursor (list));
            free (waiter);
        }
        zlistx_destroy (&list);
        *item = NULL;
    }
}

static void
s_ack_destroy (void **item)
{
    s_ack_t *ack = (s_ack_t *) *item;
    if (ack) {
        free (ack->ids);
        free (ack);
        *item = NULL;
    }
}

//  High-water marks per connection, in messages: what libzmq holds for
//  one peer at most each way (docs/limits.md). Replies to a client that
//  does not read stop at S_CLIENT_SNDHWM; a worker is sent no more than
//  its credit, so its mark only has to stay above that (slots <= 100,000).
#define S_CLIENT_SNDHWM 10000
#define S_WORKER_SNDHWM 100000
#define S_RCVHWM 1000

//  What one message to a client or worker carries at most: results, and
//  payload bytes (at least one item goes whatever its size), so that a
//  batch never grows past what the peer's decoder takes.
#define S_RESULTS_PER_MESSAGE 256
#define S_BYTES_PER_MESSAGE (16 * 1024 * 1024)

//  A running job with a timeout is leased to its worker until its timeout
//  plus this; a worker that has not answered by then is taken to have
//  lost the task.
#define S_LEASE_GRACE_MS 5000
//  Retries back off from this, doubling per failure, up to the cap.
#define S_RETRY_BASE_MS 200
#define S_RETRY_MAX_MS 60000
//  A result sent but not acknowledged within this many heartbeat
//  intervals (one to two of them) is sent again: ZeroMQ drops what it had
//  queued on a connection that breaks, and the client acknowledges every
//  result it gets, a second copy too.
#define S_REDELIVER_INTERVALS 5

static void
s_outbox_destroy (void **item)
{
    s_outbox_t *box = (s_outbox_t *) *item;
    if (box) {
        zlistx_destroy (&box->job_ids);
        free (box->recent.ids);
        free (box->older.ids);
        free (box);
        *item = NULL;
    }
}

//  Send [identity][frame][extra...] without blocking; destroys frame,
//  and sends the nextra payload frames in extra shared (they stay the
//  caller's). Returns -1 with errno EHOSTUNREACH (peer gone) or EAGAIN
//  (peer's queue full).
static int
s_send (zsock_t *sock, const uint8_t *identity, size_t identity_len, zframe_t **frame_p,
        zframe_t **extra, size_t nextra)
{
    zframe_t *frame = *frame_p;
    *frame_p = NULL;
    if (!frame)
        return -1;
    //  The frame's message goes to libzmq as it is, not copied again; the
    //  payload frames after it are shared with the store (ZFRAME_REUSE:
    //  libzmq counts references to their data). Once the first part is
    //  taken, libzmq takes the rest of the message.
    int rc = zmq_send (zsock_resolve (sock), identity, identity_len,
                       ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc != -1)
        rc = zframe_send (&frame, sock, ZFRAME_DONTWAIT | (nextra ? ZFRAME_MORE : 0));
    for (size_t i = 0; rc != -1 && i < nextra; i++)
        rc = zframe_send (&extra [i], sock,
                          ZFRAME_REUSE | ZFRAME_DONTWAIT | (i + 1 < nextra ? ZFRAME_MORE : 0));
    zframe_destroy (&frame);
    return rc == -1 ? -1 : 0;
}

//  Encode and send a message, stamped with this broker's instance id.
static int
s_send_msg_frames (s_server_t *self, zsock_t *sock, const uint8_t *identity,
                   size_t identity_len, const drv_msg_t *msg, zframe_t **extra, size_t nextra)
{
    drv_msg_t stamped = *msg;
    stamped.instance = self->instance;
    stamped.instance_size = sizeof self->instance;
    zframe_t *frame = drv_codec_encode (&stamped);
    if (!frame) {
        zsys_error ("broker: cannot encode message type=%d", msg->type);
        return -1;
    }
    return s_send (sock, identity, identity_len, &frame, extra, nextra);
}

static int
s_send_msg (s_server_t *self, zsock_t *sock, const uint8_t *identity, size_t identity_len,
            const drv_msg_t *msg)
{
    return s_send_msg_frames (self, sock, identity, identity_len, msg, NULL, 0);
}

//  Answer a peer's request with an Error and log why.
static void
s_refuse (s_server_t *self, zsock_t *sock, zframe_t *identity, uint64_t seq,
          drover_error_t code, const char *text)
{
    char who [2 * 256 + 1];
    drv_util_hex (zframe_data (identity), zframe_size (identity), who);
    zsys_warning ("broker: refused peer=%s code=%d (%s): %s", who, code, drover_error_name (code),
                  text);
    self->rejected++;
    drv_msg_t reply = {.type = DRV_MSG_ERROR, .seq = seq, .code = code, .text = text};
    s_send_msg (self, sock, zframe_data (identity), zframe_size (identity), &reply);
}

//  A finished job's result as the codec sends it; points into the job.
static drv_result_t
s_job_result (drv_job_t *job)
{
    return (drv_result_t) {
        .job_id = job->id,
        .tag = job->tag,
        .outcome = job->outcome,
        .data = job->result,
        .size = job->result_size,
        .reason = job->reason ? job->reason : "",
        .attempts = job->attempts,
    };
}

//  Send as many of a client's results as it will take now.
static void
s_outbox_flush (s_server_t *self, s_outbox_t *box)
{
    drv_result_t results [S_RESULTS_PER_MESSAGE];
    drv_job_t *jobs [S_RESULTS_PER_MESSAGE];
    while (zlistx_size (box->job_ids)) {
        //  Up to one message's worth from the front; expired and already
        //  delivered ids are consumed without sending.
        size_t count = 0, consumed = 0, bytes = 0;
        for (void *item = zlistx_first (box->job_ids);
             item && count < S_RESULTS_PER_MESSAGE && bytes < S_BYTES_PER_MESSAGE;
             item = zlistx_next (box->job_ids), consumed++) {
            drv_job_t *job = drv_store_lookup (self->store, (uint64_t) (uintptr_t) item);
            if (!job || job->delivered || job->state < DROVER_JOB_SUCCEEDED)
                continue;
            bytes += job->result_size;
            results [count] = s_job_result (job);
            jobs [count++] = job;
        }
        if (count) {
            drv_msg_t msg = {.type = DRV_MSG_RESULTS, .results = results, .nresults = count};
            if (s_send_msg (self, self->clients, box->identity, box->identity_len, &msg) == -1)
                break;              //  not connected or not reading: later
            s_sent_t *sent = &box->recent;
            if (sent->count + count > sent->capacity) {
                size_t capacity = (sent->capacity ? sent->capacity * 2 : 64) + count;
                uint64_t *ids = (uint64_t *) realloc (sent->ids, capacity * sizeof (uint64_t));
                if (ids) {
                    sent->ids = ids;
                    sent->capacity = capacity;
                }
            }
            for (size_t i = 0; i < count; i++) {
                jobs [i]->delivered = true;
                if (sent->count < sent->capacity)
                    sent->ids [sent->count++] = jobs [i]->id;
            }
        }
        while (consumed--) {
            void *id = zlistx_first (box->job_ids);
            drv_job_t *job = drv_store_lookup (self->store, (uint64_t) (uintptr_t) id);
            if (job)
                job->in_outbox = false;
            zlistx_delete (box->job_ids, zlistx_cursor (box->job_ids));
        }
    }
    if (!zlistx_size (box->job_ids) && box->busy_handle) {
        zlistx_delete (self->busy, box->busy_handle);
        box->busy_handle = NULL;
    }
    if (!zlistx_size (box->job_ids) && !box->recent.count && !box->older.count) {
        //  Nothing waits for this client: the outbox goes, so memory does
        //  not grow with every client session ever seen.
        char key [2 * DRV_PEER_ID_MAX + 1];
        zhashx_delete (self->outboxes, drv_util_hex (box->identity, box->identity_len, key));
    }
}

//  The outbox of a client, created on first use.
static s_outbox_t *
s_outbox (s_server_t *self, const uint8_t *identity, size_t identity_len)
{
    char key [2 * DRV_PEER_ID_MAX + 1];
    drv_util_hex (identity, identity_len, key);
    s_outbox_t *box = (s_outbox_t *) zhashx_lookup (self->outboxes, key);
    if (box)
        return box;
    box = (s_outbox_t *) calloc (1, sizeof *box);
    if (!box)
        return NULL;
    box->job_ids = zlistx_new ();
    if (!box->job_ids) {
        free (box);
        return NULL;
    }
    memcpy (box->identity, identity, identity_len);
    box->identity_len = identity_len;
    zhashx_insert (self->outboxes, key, box);
    return box;
}

//  A job's state as a JobInfo; points into the job.
static drv_jobinfo_t
s_job_info (s_server_t *self, drv_job_t *job)
{
    //  A follower is where its leader is.
    drv_job_t *leader = drv_store_leader (job);
    drv_job_t *where = leader ? leader : job;
    drv_jobinfo_t info = {
        .job_id = job->id,
        .state = where->state,
        .function = drv_queue_name (job->queue),
        .worker = "",
        .attempts = where->attempts,
        .priority = job->priority,
        .chunk = job->chunk,
    };
    if (where->state == DROVER_JOB_RUNNING) {
        info.worker = drv_peer_name ((drv_peer_t *) where->worker);
        s_report_t *report = (s_report_t *) drv_util_u64_lookup (self->reports, where->id);
        if (report && report->worker == where->worker && report->attempt == where->attempts) {
            info.has_progress = true;
            info.progress = (drv_progress_t) {.job_id = where->id, .done = report->done,
                                              .total = report->total,
                                              .partial = report->partial,
                                              .size = report->size};
        }
    }
    if (where->state == DROVER_JOB_QUEUED && where->due_slot != DRV_HEAP_NONE
        && where->due_ms > self->now_ms)
        info.run_in_ms = (uint64_t) (where->due_ms - self->now_ms);
    if (job->state >= DROVER_JOB_SUCCEEDED) {
        info.has_result = true;
        info.result = s_job_result (job);
    }
    return info;
}

//  Forget a job's last progress report (it finished, or runs again).
static void
s_report_forget (s_server_t *self, uint64_t job_id)
{
    //  Called for every dispatch and result: free while no task reports.
    if (zhashx_size (self->reports) == 0)
        return;
    s_report_t *report = (s_report_t *) drv_util_u64_lookup (self->reports, job_id);
    if (report) {
        self->report_bytes -= report->size;
        zhashx_delete (self->reports, drv_util_u64_key (job_id));
    }
}

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

//  Answer the clients that wait for this finished job (Wait).
static void
s_answer_waiters (s_server_t *self, drv_job_t *job)
{
    zlistx_t *list = (zlistx_t *) drv_util_u64_lookup (self->waiters, job->id);
    if (!list)
        return;
    drv_jobinfo_t info = s_job_info (self, job);
    s_waiter_t *waiter;
    for (waiter = (s_waiter_t *) zlistx_first (list); waiter;
         waiter = (s_waiter_t *) zlistx_next (list)) {
        drv_msg_t reply = {.type = DRV_MSG_STATUS_REPLY, .seq = waiter->seq, .jobs = &info,
                           .njobs = 1};
        //  A waiter that is gone is not waited for: it asks again.
        s_send_msg (self, self->clients, waiter->identity, waiter->identity_len, &reply);
        self->nwaiters--;
    }
    zhashx_delete (self->waiters, drv_util_u64_key (job->id));
}

//  A job finished: queue its result for its client (unless it detached),
//  answer those waiting for it, and do the same for the jobs that
//  followed it (same unique key).
static void
s_post_result (s_server_t *self, drv_job_t *job)
{
    s_report_forget (self, job->id);
    //  At most once in the outbox: a client resending its tags again and
    //  again must not make the list, and every flush, grow with each.
    if (!job->detached && !job->in_outbox) {
        s_outbox_t *box = s_outbox (self, job->client, job->client_len);
        if (box) {
            zlistx_add_end (box->job_ids, (void *) (uintptr_t) job->id);
            job->in_outbox = true;
            if (!box->busy_handle)
                box->busy_handle = zlistx_add_end (self->busy, box);
        }
        else
            zsys_error ("broker: out of memory queueing result job=%" PRIu64, job->id);
    }
    if (zhashx_size (self->waiters))
        s_answer_waiters (self, job);
    drv_job_t *follower;
    while ((follower = drv_store_followed (self->store)))
        s_post_result (self, follower);
}

//  Send every outbox with results.
static void
s_flush_outboxes (s_server_t *self)
{
    s_outbox_t *box = (s_outbox_t *) zlistx_first (self->busy);
    while (box) {
        s_outbox_t *next = (s_outbox_t *) zlistx_next (self->busy);
        s_outbox_flush (self, box);
        box = next;
    }
}

//  Once per redelivery period: results sent the period before and still
//  not acknowledged go to their clients again; the period's sends become
//  the older ones. Outboxes with nothing left go.
static void
s_redeliver (s_server_t *self)
{
    zlistx_t *empty = zlistx_new ();
    for (s_outbox_t *box = (s_outbox_t *) zhashx_first (self->outboxes); box;
         box = (s_outbox_t *) zhashx_next (self->outboxes)) {
        for (size_t i = 0; i < box->older.count; i++) {
            drv_job_t *job = drv_store_lookup (self->store, box->older.ids [i]);
            if (!job || job->acked || !job->delivered || job->state < DROVER_JOB_SUCCEEDED)
                continue;
            job->delivered = false;
            self->redelivered++;
            if (job->in_outbox)
                continue;
            zlistx_add_end (box->job_ids, (void *) (uintptr_t) job->id);
            job->in_outbox = true;
            if (!box->busy_handle)
                box->busy_handle = zlistx_add_end (self->busy, box);
        }
        //  The older array, emptied, takes this period's sends.
        s_sent_t spare = box->older;
        box->older = box->recent;
        box->recent = (s_sent_t) {.ids = spare.ids, .capacity = spare.capacity};
        if (!box->older.count && !zlistx_size (box->job_ids) && empty)
            zlistx_add_end (empty, box);
    }
    for (s_outbox_t *box = (s_outbox_t *) zlistx_first (empty); box;
         box = (s_outbox_t *) zlistx_next (empty)) {
        if (box->busy_handle)
            zlistx_delete (self->busy, box->busy_handle);
        char key [2 * DRV_PEER_ID_MAX + 1];
        zhashx_delete (self->outboxes, drv_util_hex (box->identity, box->identity_len, key));
    }
    zlistx_destroy (&empty);
}

//  An attempt of job ended with outcome: retry it later if it failed and
//  has retries left, else finish it and queue its result for its client.
static void
s_settle (s_server_t *self, drv_job_t *job, drover_outcome_t outcome, const void *data,
          size_t size, const char *reason)
{
    if (outcome != DROVER_OUTCOME_OK && job->failures < job->retries) {
        job->failures++;
        //  Exponential backoff with jitter: half the step, plus up to half.
        int shift = job->failures - 1 < 20 ? (int) job->failures - 1 : 20;
        int64_t step = (int64_t) S_RETRY_BASE_MS << shift;
        if (step > S_RETRY_MAX_MS)
            step = S_RETRY_MAX_MS;
        int64_t delay = step / 2 + (int64_t) (random () % (step / 2 + 1));
        if (drv_store_delay (self->store, job, self->now_ms + delay) == 0) {
            self->retried++;
            zsys_info ("broker: retry job=%" PRIu64 " failure=%u/%u in_ms=%" PRId64 " reason=%s",
                       job->id, job->failures, job->retries, delay, reason ? reason : "");
            return;
        }
    }
    drv_store_finish (self->store, job, outcome, data, size, reason, self->now_ms);
    s_post_result (self, job);
}

//  Post the results of jobs the scheduler gave up on (lost too often).
static void
s_post_given_up (s_server_t *self)
{
    drv_job_t *job;
    while ((job = drv_sched_given_up (self->sched))) {
        zsys_warning ("broker: job lost its worker too often job=%" PRIu64 " lost=%u", job->id,
                      job->lost);
        s_post_result (self, job);
    }
}

//  drv_sched_emit_fn: send one worker its new jobs.
static void
s_emit (drv_peer_t *peer, drv_job_t **jobs, size_t count, void *arg)
{
    s_server_t *self = (s_server_t *) arg;
    drv_task_t *tasks = (drv_task_t *) calloc (count, sizeof *tasks);
    //  Framed jobs' payloads go on as the frames they came in, to a
    //  worker that takes them.
    bool framing = drv_peer_frames (peer);
    zframe_t **frames = framing ? (zframe_t **) calloc (count, sizeof (zframe_t *)) : NULL;
    size_t length;
    const uint8_t *identity = drv_peer_identity (peer, &length);
    bool sent = tasks && (frames || !framing);
    //  One Dispatch per S_BYTES_PER_MESSAGE of payload.
    for (size_t first = 0; sent && first < count;) {
        size_t n = 0, bytes = 0, nframes = 0;
        while (first + n < count && (n == 0 || bytes + jobs [first + n]->size <= S_BYTES_PER_MESSAGE)) {
            drv_job_t *job = jobs [first + n];
            s_report_forget (self, job->id);   //  an earlier attempt's
            //  A chunk's timeout is per item and the broker does not know
            //  how many items it has: its worker times out each one, and
            //  heartbeats tell if the worker is gone.
            if (job->timeout_ms && !job->chunk)
                drv_store_lease_until (self->store, job,
                                       self->now_ms + job->timeout_ms + S_LEASE_GRACE_MS);
            zframe_t *frame = framing ? drv_store_frame (self->store, job) : NULL;
            if (frame)
                frames [nframes++] = frame;
            tasks [n++] = (drv_task_t) {
                .id = job->id,
                .function = drv_queue_name (job->queue),
                .payload = job->payload,
                .size = job->size,
                .timeout_ms = job->timeout_ms,
                .attempt = job->attempts,
                .chunk = job->chunk,
                .framed = frame != NULL,
            };
            bytes += job->size;
        }
        drv_msg_t msg = {.type = DRV_MSG_DISPATCH, .tasks = tasks, .ntasks = n};
        sent = s_send_msg_frames (self, self->workers, identity, length, &msg, frames, nframes)
               == 0;
        if (sent)
            self->dispatched += n;
        first += n;
    }
    if (!sent) {
        zsys_warning ("broker: cannot reach worker=%s (%s); its jobs go back to the queue",
                      drv_peer_name (peer),
                      tasks && (frames || !framing) ? zmq_strerror (zmq_errno ())
                                                    : "no memory");
        zlistx_add_end (self->dead, peer);
    }
    free (frames);
    free (tasks);
}

//  Deal queued jobs to workers, and drop workers found unreachable.
static void
s_dispatch (s_server_t *self)
{
    //  A worker found gone gives its jobs back: deal again until none is.
    size_t removed;
    do {
        drv_sched_dispatch (self->sched, s_emit, self);
        removed = 0;
        drv_peer_t *peer;
        while ((peer = (drv_peer_t *) zlistx_first (self->dead))) {
            zlistx_delete (self->dead, zlistx_cursor (self->dead));
            self->requeued += drv_sched_remove (self->sched, &peer, self->now_ms);
            removed++;
        }
    } while (removed);
    s_post_given_up (self);
}

static void s_arm_timer (s_server_t *self);
static int s_end_burst (s_server_t *self);

//  drv_sched_gone_fn: log a worker dropped for silence.
static void
s_on_silent (drv_peer_t *peer, size_t requeued, void *arg)
{
    s_server_t *self = (s_server_t *) arg;
    self->requeued += requeued;
    zsys_warning ("broker: worker silent, dropped worker=%s requeued=%zu", drv_peer_name (peer),
                  requeued);
}

//  The deadline timer: expire results, drop silent workers, retry
//  undelivered results.
static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_server_t *self = (s_server_t *) arg;
    self->timer_id = -1;
    self->now_ms = zclock_mono ();
    drv_store_expire (self->store, self->now_ms);
    //  Retries whose time came are back in their queues; leases that
    //  ended fail their attempt.
    drv_job_t *job;
    while ((job = drv_store_pop_due (self->store, self->now_ms))) {
        if (job->state != DROVER_JOB_RUNNING)
            continue;
        drv_peer_t *peer = (drv_peer_t *) job->worker;
        zsys_warning ("broker: lease ended job=%" PRIu64 " worker=%s", job->id,
                      drv_peer_name (peer));
        if (drv_sched_complete (self->sched, peer, job->id) == job) {
            char reason [160];
            snprintf (reason, sizeof reason,
                      "no result %d ms after its %u ms timeout: its worker's lease ended",
                      S_LEASE_GRACE_MS, job->timeout_ms);
            s_settle (self, job, DROVER_OUTCOME_TIMEOUT, NULL, 0, reason);
        }
    }
    if (self->now_ms >= self->next_liveness_ms) {
        int64_t limit = (int64_t) self->config->heartbeat_ms * self->config->liveness;
        drv_sched_expire (self->sched, self->now_ms - limit, self->now_ms, s_on_silent, self);
        self->next_liveness_ms = self->now_ms + self->config->heartbeat_ms;
    }
    if (self->now_ms >= self->next_redeliver_ms) {
        size_t before = self->redelivered;
        s_redeliver (self);
        if (self->redelivered > before)
            zsys_info ("broker: results sent again for want of an Ack count=%" PRIu64,
                       self->redelivered - before);
        self->next_redeliver_ms =
            self->now_ms + (int64_t) self->config->heartbeat_ms * S_REDELIVER_INTERVALS;
    }
    s_flush_outboxes (self);
    s_dispatch (self);
    return s_end_burst (self);
}

//  Arm the one timer to the soonest deadline in the data.
static void
s_arm_timer (s_server_t *self)
{
    int64_t at = self->next_liveness_ms;
    int64_t expiry = drv_store_next_deadline (self->store);
    if (expiry >= 0 && expiry < at)
        at = expiry;
    if (zlistx_size (self->busy) && self->now_ms + 50 < at)
        at = self->now_ms + 50;
    if (self->timer_id != -1 && at == self->timer_at)
        return;
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    int64_t delay = at - self->now_ms;
    self->timer_id = zloop_timer (self->loop, delay > 0 ? (size_t) delay : 1, 1, s_on_timer, self);
    self->timer_at = at;
}

//  Receive [identity][body]; anything else is counted and refused.
//  Returns the decoded message or NULL; *identity_p is the caller's.
static drv_msg_t *
s_receive (s_server_t *self, zsock_t *sock, const drv_limits_t *limits, zframe_t **identity_p)
{
    *identity_p = NULL;
    zmsg_t *msg = zmsg_recv (sock);
    if (!msg)
        return NULL;
    self->now_ms = zclock_mono ();
    zframe_t *identity = zmsg_pop (msg);
    if (!identity) {
        zmsg_destroy (&msg);
        return NULL;
    }
    drv_guard_seen (self->guard, identity);
    *identity_p = identity;
    zframe_t *body = zmsg_pop (msg);
    //  Payload frames may follow the envelope, one per framed task.
    size_t nframes = zmsg_size (msg);
    zframe_t **frames = nframes && nframes <= limits->max_batch
                            ? (zframe_t **) malloc (nframes * sizeof (zframe_t *))
                            : NULL;
    for (size_t i = 0; frames && i < nframes; i++)
        frames [i] = zmsg_pop (msg);
    zmsg_destroy (&msg);
    if (!body || (nframes && !frames)) {
        self->malformed++;
        s_refuse (self, sock, identity, 0, DROVER_ERR_MALFORMED,
                  nframes > limits->max_batch
                      ? "more payload frames than a batch may have tasks"
                      : "a drover message is an envelope frame and its payload frames");
        zframe_destroy (&body);
        return NULL;
    }
    drv_msg_t *decoded = NULL;
    uint64_t seq = 0;
    char err [256] = "";
    drover_error_t rc = drv_codec_decode_frames (zframe_data (body), zframe_size (body), frames,
                                                 nframes, limits, &decoded, &seq, err,
                                                 sizeof err);
    free (frames);
    zframe_destroy (&body);
    if (rc) {
        if (rc == DROVER_ERR_MALFORMED)
            self->malformed++;
        if (rc == DROVER_ERR_TOO_LARGE)
            self->too_large++;
        s_refuse (self, sock, identity, seq, rc, err);
        return NULL;
    }
    return decoded;
}

//  Submit: all tasks of the batch are queued, or none.
static void
s_client_submit (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    char err [256];
    if (zframe_size (identity) > DRV_PEER_ID_MAX) {
        snprintf (err, sizeof err, "client routing id is longer than %d bytes", DRV_PEER_ID_MAX);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INVALID, err);
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < msg->ntasks; i++)
        bytes += msg->tasks [i].size + DRV_STORE_JOB_BYTES;
    if (!drv_store_can_hold (self->store, msg->function, bytes, err, sizeof err)) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_QUEUE_FULL, err);
        return;
    }
    drv_queue_t *queue = drv_store_queue (self->store, msg->function);
    if (!queue) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    //  A task that attaches to a job holding its unique key takes no
    //  place in the queue.
    bool attaches = drv_store_find_unique (self->store, queue, msg->unique) != NULL;
    if (!attaches && !drv_store_can_accept (self->store, queue, msg->ntasks, err, sizeof err)) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_QUEUE_FULL, err);
        return;
    }
    drv_submit_opts_t opts = {
        .timeout_ms = msg->timeout_ms,
        .retries = msg->retries,
        .priority = msg->priority,
        .run_at_ms = msg->delay_ms ? self->now_ms + (int64_t) msg->delay_ms : 0,
        .unique = msg->unique,
        .detached = msg->detach,
        .now_ms = self->now_ms,
        .chunk = msg->chunk,
    };
    uint64_t *ids = (uint64_t *) malloc (msg->ntasks * sizeof (uint64_t));
    size_t created = 0, fresh = 0;
    for (; ids && created < msg->ntasks; created++) {
        drv_task_t *task = &msg->tasks [created];
        //  A tag this client sent before (it resends after a broker
        //  restart or a lost acknowledgement) names the same job.
        drv_job_t *job = drv_store_find_tag (self->store, zframe_data (identity),
                                             zframe_size (identity), task->id);
        if (job) {
            //  Finished but never acknowledged: the result may have been
            //  lost on the way (a dropped connection loses what ZeroMQ
            //  had queued), so it goes again.
            drv_job_t *leader = drv_store_leader (job);
            ids [created] = leader ? leader->id : job->id;
            job->progress = msg->want_progress;
            if (job->state >= DROVER_JOB_SUCCEEDED && !job->acked) {
                job->delivered = false;
                s_post_result (self, job);
            }
            continue;
        }
        //  The job keeps the decoded payload's block, or its frame: no copy.
        opts.owned_frame = drv_msg_take_frame (msg, created);
        opts.owned_payload = opts.owned_frame ? NULL : drv_msg_take_payload (msg, created);
        job = drv_store_submit_opts (self->store, queue, task->id, zframe_data (identity),
                                     zframe_size (identity), task->payload, task->size, &opts);
        if (!job)
            break;
        //  A job with the unique key of one queued or running attaches to
        //  it: the client is told that one's id, and gets its result.
        drv_job_t *leader = drv_store_leader (job);
        ids [created] = leader ? leader->id : job->id;
        job->progress = msg->want_progress;
        fresh++;
    }
    if (!ids || created < msg->ntasks) {
        //  Out of memory: take back what this submit queued, all or none.
        for (size_t i = 0; ids && i < created; i++) {
            drv_job_t *job = drv_store_lookup (self->store, ids [i]);
            if (job->state != DROVER_JOB_QUEUED || job->attempts)
                continue;           //  an earlier submit's job, found by tag
            drv_store_finish (self->store, job, DROVER_OUTCOME_LOST, NULL, 0, "", self->now_ms);
            job->delivered = true;
        }
        free (ids);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL,
                  "broker out of memory; retry later");
        return;
    }
    //  Acknowledged once on disk (s_commit), with whatever else came in
    //  the same burst.
    s_ack_t *ack = (s_ack_t *) calloc (1, sizeof *ack);
    if (ack) {
        memcpy (ack->identity, zframe_data (identity), zframe_size (identity));
        ack->identity_len = zframe_size (identity);
        ack->seq = msg->seq;
        ack->ids = ids;
        ack->count = msg->ntasks;
        ack->workers = (uint32_t) drv_queue_workers (queue);
        zlistx_add_end (self->acks, ack);
    }
    else
        free (ids);
    if (self->config->verbose)
        zsys_info ("broker: submit function=%s tasks=%zu new=%zu queued=%zu priority=%d "
                   "delay_ms=%" PRIu64 "%s%s%s",
                   msg->function, msg->ntasks, fresh, drv_queue_size (queue), msg->priority,
                   msg->delay_ms, msg->unique ? " unique=" : "", msg->unique ? msg->unique : "",
                   msg->detach ? " detached" : "");
    self->dispatch_due = true;
}

//  Status: one JobInfo per id asked, UNKNOWN for ids not held.
static void
s_client_status (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    drv_jobinfo_t *jobs = (drv_jobinfo_t *) calloc (msg->njob_ids, sizeof *jobs);
    if (!jobs) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < msg->njob_ids; i++) {
        drv_job_t *job = drv_store_lookup (self->store, msg->job_ids [i]);
        jobs [i].job_id = msg->job_ids [i];
        jobs [i].function = "";
        jobs [i].worker = "";
        if (job)
            jobs [i] = s_job_info (self, job);
    }
    drv_msg_t reply = {
        .type = DRV_MSG_STATUS_REPLY, .seq = msg->seq, .jobs = jobs, .njobs = msg->njob_ids};
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    free (jobs);
}

//  Cancel: queued jobs are finished as cancelled; running ones too, and
//  their worker is told to kill the task. The reply is their states.
static void
s_client_cancel (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->njob_ids; i++) {
        drv_job_t *job = drv_store_lookup (self->store, msg->job_ids [i]);
        if (!job || job->state >= DROVER_JOB_SUCCEEDED)
            continue;
        if (job->state == DROVER_JOB_RUNNING) {
            drv_peer_t *peer = (drv_peer_t *) job->worker;
            drv_sched_complete (self->sched, peer, job->id);
            size_t length;
            const uint8_t *worker = drv_peer_identity (peer, &length);
            drv_msg_t stop = {.type = DRV_MSG_CANCEL, .job_ids = &job->id, .njob_ids = 1};
            s_send_msg (self, self->workers, worker, length, &stop);
        }
        zsys_info ("broker: cancelled job=%" PRIu64 " was=%s", job->id,
                   drover_state_name (job->state));
        drv_store_finish (self->store, job, DROVER_OUTCOME_CANCELLED, NULL, 0,
                          "cancelled by a client", self->now_ms);
        s_post_result (self, job);
    }
    s_client_status (self, identity, msg);
    self->flush_due = true;
    self->dispatch_due = true;
}

//  Dead letters at most in one reply.
#define S_DEAD_PER_REPLY 10000

//  Dead: list, retry or purge dead letters (the ids given, or all); the
//  reply describes the jobs concerned as they were, payloads included.
static void
s_client_dead (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    size_t max = msg->njob_ids ? msg->njob_ids : S_DEAD_PER_REPLY;
    drv_job_t **jobs = (drv_job_t **) calloc (max, sizeof *jobs);
    drv_jobinfo_t *infos = (drv_jobinfo_t *) calloc (max, sizeof *infos);
    if (!jobs || !infos) {
        free (jobs);
        free (infos);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t count = 0;
    if (msg->njob_ids)
        for (size_t i = 0; i < msg->njob_ids; i++) {
            drv_job_t *job = drv_store_lookup (self->store, msg->job_ids [i]);
            if (job && job->dead)
                jobs [count++] = job;
        }
    else
        count = drv_store_dead (self->store, jobs, max);
    for (size_t i = 0; i < count; i++) {
        drv_job_t *job = jobs [i];
        infos [i] = (drv_jobinfo_t) {
            .job_id = job->id,
            .state = job->state,
            .function = drv_queue_name (job->queue),
            .worker = "",
            .attempts = job->attempts,
            .has_result = true,
            .result = s_job_result (job),
            .payload = job->payload,
            .size = job->size,
            .chunk = job->chunk,
        };
    }
    drv_msg_t reply = {.type = DRV_MSG_STATUS_REPLY, .seq = msg->seq, .jobs = infos,
                       .njobs = count};
    if (count == 0) {
        //  A StatusReply lists at least one job: say "none" with an Error.
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_UNKNOWN_JOB,
                  msg->njob_ids ? "no such dead letter" : "no dead letters");
    }
    else
        s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    //  Act after replying: the reply points into the jobs.
    for (size_t i = 0; i < count; i++) {
        if (msg->dead_op == DROVER_DEAD_RETRY) {
            zsys_info ("broker: dead letter retried job=%" PRIu64, jobs [i]->id);
            drv_store_revive (self->store, jobs [i]);
        }
        else
        if (msg->dead_op == DROVER_DEAD_PURGE)
            drv_store_forget (self->store, jobs [i]);
    }
    free (jobs);
    free (infos);
    self->dispatch_due = true;
}

//  Wait: the job's StatusReply now if it has finished, else once it
//  does; an Error if the broker does not hold it.
static void
s_client_wait (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    uint64_t id = msg->job_ids [0];
    drv_job_t *job = drv_store_lookup (self->store, id);
    char text [160];
    if (!job) {
        snprintf (text, sizeof text,
                  "the broker has no job %" PRIu64 " (never submitted, or its result expired)",
                  id);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_UNKNOWN_JOB, text);
        return;
    }
    if (job->state >= DROVER_JOB_SUCCEEDED) {
        drv_jobinfo_t info = s_job_info (self, job);
        drv_msg_t reply = {.type = DRV_MSG_STATUS_REPLY, .seq = msg->seq, .jobs = &info,
                           .njobs = 1};
        s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
        return;
    }
    if (zframe_size (identity) > DRV_PEER_ID_MAX || self->nwaiters >= S_MAX_WAITERS) {
        snprintf (text, sizeof text,
                  "the broker holds %d waits already; ask for the job's status instead",
                  S_MAX_WAITERS);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_QUEUE_FULL, text);
        return;
    }
    zlistx_t *list = (zlistx_t *) drv_util_u64_lookup (self->waiters, id);
    if (!list && (list = zlistx_new ()))
        zhashx_insert (self->waiters, drv_util_u64_key (id), list);
    //  The same client asking again (after a broker restart, say) is one
    //  waiter, answered under its latest seq.
    s_waiter_t *waiter;
    for (waiter = list ? (s_waiter_t *) zlistx_first (list) : NULL; waiter;
         waiter = (s_waiter_t *) zlistx_next (list))
        if (waiter->identity_len == zframe_size (identity)
            && memcmp (waiter->identity, zframe_data (identity), waiter->identity_len) == 0)
            break;
    if (!waiter && list && (waiter = (s_waiter_t *) calloc (1, sizeof *waiter))) {
        memcpy (waiter->identity, zframe_data (identity), zframe_size (identity));
        waiter->identity_len = zframe_size (identity);
        zlistx_add_end (list, waiter);
        self->nwaiters++;
    }
    if (!waiter) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    waiter->seq = msg->seq;
    waiter->progress = msg->want_progress;
}

//  QueueConfig: change what the set_ flags say, then describe the queue.
static void
s_client_queue (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    const drv_queue_info_t *in = &msg->queue;
    bool change = in->set_limit || in->set_paused || in->set_max_queue;
    drv_queue_t *queue = drv_store_find_queue (self->store, in->function);
    char err [256];
    if (change && !queue) {
        if (!drv_store_can_hold (self->store, in->function, 0, err, sizeof err)) {
            s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_QUEUE_FULL, err);
            return;
        }
        queue = drv_store_queue (self->store, in->function);
        if (!queue) {
            s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL,
                      "out of memory");
            return;
        }
    }
    if (change) {
        uint32_t limit = in->set_limit ? in->limit : drv_queue_limit (queue);
        bool paused = in->set_paused ? in->paused : drv_queue_paused (queue);
        size_t max_queue = in->set_max_queue ? (size_t) in->max_queue : drv_queue_max_queue (queue);
        drv_store_configure (self->store, queue, limit, paused, max_queue);
        zsys_info ("broker: queue function=%s limit=%u paused=%d max_queue=%zu", in->function,
                   limit, paused, max_queue);
    }
    drv_msg_t reply = {.type = DRV_MSG_QUEUE_INFO, .seq = msg->seq};
    reply.queue.function = in->function;
    reply.queue.max_queue_in_force = self->config->max_queue;
    if (queue) {
        reply.queue.limit = drv_queue_limit (queue);
        reply.queue.paused = drv_queue_paused (queue);
        reply.queue.max_queue = drv_queue_max_queue (queue);
        reply.queue.max_queue_in_force = drv_store_max_queue (self->store, queue);
        reply.queue.queued = drv_queue_size (queue);
        reply.queue.delayed = drv_queue_delayed (queue);
        reply.queue.running = drv_queue_running (queue);
        reply.queue.workers = (uint32_t) drv_queue_workers (queue);
    }
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    if (change)
        self->dispatch_due = true;
}

//  ---------------------------------------------------------------------
//  Admin views: jobs, workers, queues and counters. Each reply is
//  bounded by its count limit and by --max-message: rows are estimated
//  as they are added, and the list stops before it would not fit; the
//  reply's total says how many there were.

//  Room for rows in one reply: the message limit less the envelope.
static size_t
s_reply_budget (s_server_t *self)
{
    size_t max = self->config->limits.max_message;
    return max > 1024 ? max - 1024 : max / 2;
}

//  A queue's settings and counts, as QueueInfo sends them.
static drv_queue_info_t
s_queue_info (s_server_t *self, drv_queue_t *queue)
{
    return (drv_queue_info_t) {
        .function = drv_queue_name (queue),
        .limit = drv_queue_limit (queue),
        .paused = drv_queue_paused (queue),
        .max_queue = drv_queue_max_queue (queue),
        .max_queue_in_force = drv_store_max_queue (self->store, queue),
        .queued = drv_queue_size (queue),
        .delayed = drv_queue_delayed (queue),
        .running = drv_queue_running (queue),
        .workers = (uint32_t) drv_queue_workers (queue),
    };
}

//  Does job pass the query's filter?
static bool
s_job_matches (drv_job_t *job, const drv_jobs_query_t *query)
{
    if (query->function && strcmp (drv_queue_name (job->queue), query->function) != 0)
        return false;
    drv_job_t *leader = drv_store_leader (job);
    drv_job_t *where = leader ? leader : job;
    bool delayed = drv_store_is_delayed (where);
    switch (query->state) {
        case DROVER_JOBS_ANY: return true;
        case DROVER_JOBS_QUEUED: return where->state == DROVER_JOB_QUEUED && !delayed;
        case DROVER_JOBS_DELAYED: return where->state == DROVER_JOB_QUEUED && delayed;
        case DROVER_JOBS_RUNNING: return where->state == DROVER_JOB_RUNNING;
        case DROVER_JOBS_SUCCEEDED: return job->state == DROVER_JOB_SUCCEEDED;
        case DROVER_JOBS_FAILED: return job->state == DROVER_JOB_FAILED;
        case DROVER_JOBS_FINISHED: return job->state >= DROVER_JOB_SUCCEEDED;
    }
    return false;
}

static int
s_id_ascending (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_id_descending (const void *a, const void *b)
{
    return s_id_ascending (b, a);
}

//  JobsQuery. Without a filter every job matches: the answer is the
//  `limit` first in id order, found by walking the ids (O(limit) when
//  the ids are dense; the walk is taken only while the ids held span at
//  most twice the jobs plus the limit, so it never costs much more than
//  a pass), and
//  the total is the store's size. With a filter, one pass over the jobs
//  keeps the `limit` first by id in a buffer of twice that, sorted and
//  cut whenever it fills, so the work is O(jobs log limit) and the
//  memory O(limit).
static void
s_client_jobs (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    const drv_jobs_query_t *query = &msg->jobs_query;
    size_t limit = query->limit ? query->limit : DRV_JOBS_LIMIT_DEFAULT;
    int (*order) (const void *, const void *) =
        query->newest_first ? s_id_descending : s_id_ascending;
    uint64_t *ids = (uint64_t *) malloc (2 * limit * sizeof (uint64_t));
    drv_job_row_t *rows = (drv_job_row_t *) calloc (limit, sizeof *rows);
    if (!ids || !rows) {
        free (ids);
        free (rows);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t count = 0, cursor = 0;
    uint64_t total = 0, worst = 0;
    bool cut = false;
    drv_job_t *job;
    size_t held = drv_store_size (self->store);
    bool walk = !query->function && query->state == DROVER_JOBS_ANY
                && drv_store_id_span (self->store) <= 2 * (uint64_t) held + limit;
    if (walk) {
        uint64_t id = 0;
        while (count < limit && drv_store_next_by_id (self->store, &id, query->newest_first))
            ids [count++] = id;
        total = held;
    }
    while (!walk && (job = drv_store_next_job (self->store, &cursor))) {
        if (!s_job_matches (job, query))
            continue;
        total++;
        //  Once cut, only ids better than the worst kept can make it.
        if (cut && order (&job->id, &worst) > 0)
            continue;
        ids [count++] = job->id;
        if (count == 2 * limit) {
            qsort (ids, count, sizeof *ids, order);
            count = limit;
            worst = ids [limit - 1];
            cut = true;
        }
    }
    qsort (ids, count, sizeof *ids, order);
    if (count > limit)
        count = limit;
    size_t budget = s_reply_budget (self), used = 0, nrows = 0;
    for (size_t i = 0; i < count; i++) {
        job = drv_store_lookup (self->store, ids [i]);
        drv_jobinfo_t info = s_job_info (self, job);
        drv_job_t *leader = drv_store_leader (job);
        drv_job_t *where = leader ? leader : job;
        int64_t age = self->now_ms - (int64_t) job->since_s * 1000;
        drv_job_row_t row = {
            .job_id = job->id,
            .function = info.function,
            .state = info.state,
            .delayed = info.state == DROVER_JOB_QUEUED && drv_store_is_delayed (where),
            .priority = info.priority,
            .attempts = info.attempts,
            .worker = info.worker,
            .age_ms = age > 0 ? (uint64_t) age : 0,
            .run_in_ms = info.run_in_ms,
            .outcome = job->state >= DROVER_JOB_SUCCEEDED ? job->outcome : 0,
        };
        size_t size = 64 + strlen (row.function) + strlen (row.worker);
        if (used + size > budget)
            break;
        used += size;
        rows [nrows++] = row;
    }
    drv_msg_t reply = {.type = DRV_MSG_JOB_LIST, .seq = msg->seq, .rows = rows, .nrows = nrows,
                       .total = total};
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    free (ids);
    free (rows);
}

static int
s_worker_by_name (const void *a, const void *b)
{
    const drv_worker_row_t *x = (const drv_worker_row_t *) a, *y = (const drv_worker_row_t *) b;
    int rc = strcmp (x->name, y->name);
    if (rc == 0 && x->identity_size == y->identity_size)
        rc = memcmp (x->identity, y->identity, x->identity_size);
    return rc;
}

//  WorkersQuery: every connected worker, by name, as many as fit.
static void
s_client_workers (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    size_t total = drv_sched_size (self->sched);
    drv_worker_row_t *rows = (drv_worker_row_t *) calloc (total ? total : 1, sizeof *rows);
    size_t nfunctions = 0;
    for (drv_peer_t *peer = drv_sched_first (self->sched); peer;
         peer = drv_sched_next (self->sched))
        nfunctions += drv_peer_functions (peer);
    const char **names = (const char **) calloc (nfunctions ? nfunctions : 1, sizeof *names);
    if (!rows || !names) {
        free (rows);
        free (names);
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t count = 0, used_names = 0;
    for (drv_peer_t *peer = drv_sched_first (self->sched); peer && count < total;
         peer = drv_sched_next (self->sched)) {
        drv_worker_row_t *row = &rows [count++];
        row->name = drv_peer_name (peer);
        row->identity = drv_peer_identity (peer, &row->identity_size);
        row->functions = names + used_names;
        row->nfunctions = drv_peer_functions (peer);
        for (size_t i = 0; i < row->nfunctions; i++)
            names [used_names++] = drv_peer_function (peer, i);
        row->slots = drv_peer_slots (peer);
        row->running = drv_peer_inflight (peer);
        row->done = drv_peer_done (peer);
        int64_t since = self->now_ms - drv_peer_since (peer);
        int64_t heard = self->now_ms - drv_peer_last_seen (peer);
        row->connected_ms = since > 0 ? (uint64_t) since : 0;
        row->heard_ms = heard > 0 ? (uint64_t) heard : 0;
    }
    qsort (rows, count, sizeof *rows, s_worker_by_name);
    size_t budget = s_reply_budget (self), used = 0, nrows = 0;
    for (; nrows < count; nrows++) {
        size_t size = 64 + strlen (rows [nrows].name) + rows [nrows].identity_size;
        for (size_t i = 0; i < rows [nrows].nfunctions; i++)
            size += 4 + strlen (rows [nrows].functions [i]);
        if (used + size > budget)
            break;
        used += size;
    }
    drv_msg_t reply = {.type = DRV_MSG_WORKER_LIST, .seq = msg->seq, .worker_rows = rows,
                       .nworker_rows = nrows, .total = total};
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    free (rows);
    free (names);
}

static int
s_queue_by_name (const void *a, const void *b)
{
    return strcmp (((const drv_queue_info_t *) a)->function,
                   ((const drv_queue_info_t *) b)->function);
}

//  Every queue's settings and counts, by function name, into a new
//  array (the caller frees); *count of them. NULL if out of memory.
static drv_queue_info_t *
s_all_queues (s_server_t *self, size_t *count)
{
    size_t total = drv_store_queues (self->store);
    drv_queue_info_t *queues = (drv_queue_info_t *) calloc (total ? total : 1, sizeof *queues);
    *count = 0;
    if (!queues)
        return NULL;
    for (drv_queue_t *queue = drv_store_first_queue (self->store); queue && *count < total;
         queue = drv_store_next_queue (self->store))
        queues [(*count)++] = s_queue_info (self, queue);
    qsort (queues, *count, sizeof *queues, s_queue_by_name);
    return queues;
}

//  QueuesQuery: every function's queue, by name, as many as fit.
static void
s_client_queues (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    size_t count;
    drv_queue_info_t *queues = s_all_queues (self, &count);
    if (!queues) {
        s_refuse (self, self->clients, identity, msg->seq, DROVER_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t budget = s_reply_budget (self), used = 0, nqueues = 0;
    for (; nqueues < count; nqueues++) {
        size_t size = 96 + strlen (queues [nqueues].function);
        if (used + size > budget)
            break;
        used += size;
    }
    drv_msg_t reply = {.type = DRV_MSG_QUEUE_LIST, .seq = msg->seq, .queues = queues,
                       .nqueues = nqueues, .total = count};
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
    free (queues);
}

//  The broker's counters and gauges now.
static drover_stats_t
s_stats (s_server_t *self)
{
    drv_store_t *store = self->store;
    uint64_t finished = 0;
    for (int outcome = DROVER_OUTCOME_ERROR; outcome <= DROVER_OUTCOME_CANCELLED; outcome++)
        if (outcome != DROVER_OUTCOME_CANCELLED)
            finished += drv_store_finished_as (store, (drover_outcome_t) outcome);
    int64_t uptime = self->now_ms - self->started_ms;
    return (drover_stats_t) {
        .uptime_ms = uptime > 0 ? (uint64_t) uptime : 0,
        .submitted = drv_store_submitted (store),
        .dispatched = self->dispatched,
        .succeeded = drv_store_finished_as (store, DROVER_OUTCOME_OK),
        .failed = finished,
        .cancelled = drv_store_finished_as (store, DROVER_OUTCOME_CANCELLED),
        .retried = self->retried,
        .requeued = self->requeued,
        .redelivered = self->redelivered,
        .rejected = self->rejected,
        .malformed = self->malformed,
        .too_large = self->too_large,
        .cut = self->cut,
        .clients = self->clients_bound
                       ? (uint32_t) drv_guard_connections (self->guard, self->clients_bound)
                       : 0,
        .workers = (uint32_t) drv_sched_size (self->sched),
        .jobs = drv_store_size (store),
        .bytes = drv_store_bytes (store),
        .heap = drv_guard_heap (),
        .functions = (uint32_t) drv_store_queues (store),
        .dead = drv_store_dead_count (store),
        .durable = self->config->data_dir != NULL,
        .commits = drv_store_commits (store),
    };
}

//  StatsQuery: the counters.
static void
s_client_stats (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    drv_msg_t reply = {.type = DRV_MSG_STATS, .seq = msg->seq, .stats = s_stats (self)};
    s_send_msg (self, self->clients, zframe_data (identity), zframe_size (identity), &reply);
}

//  Ack: the client has these results. Only its own jobs count.
static void
s_client_ack (s_server_t *self, zframe_t *identity, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->njob_ids; i++) {
        drv_job_t *job = drv_store_lookup (self->store, msg->job_ids [i]);
        if (!job || job->state < DROVER_JOB_SUCCEEDED || job->client_len != zframe_size (identity)
            || memcmp (job->client, zframe_data (identity), job->client_len) != 0)
            continue;
        drv_store_acked (self->store, job);
    }
}

//  Handle one message from a client.
static void
s_client_message (s_server_t *self, zsock_t *sock)
{
    zframe_t *identity;
    drv_msg_t *msg = s_receive (self, sock, &self->config->limits, &identity);
    if (msg) {
        switch (msg->type) {
            case DRV_MSG_SUBMIT:
                s_client_submit (self, identity, msg);
                break;
            case DRV_MSG_STATUS:
                s_client_status (self, identity, msg);
                break;
            case DRV_MSG_HEARTBEAT: {
                drv_msg_t reply = {.type = DRV_MSG_HEARTBEAT, .seq = msg->seq};
                s_send_msg (self, sock, zframe_data (identity), zframe_size (identity), &reply);
                break;
            }
            case DRV_MSG_ACK:
                s_client_ack (self, identity, msg);
                break;
            case DRV_MSG_CANCEL:
                s_client_cancel (self, identity, msg);
                break;
            case DRV_MSG_DEAD:
                s_client_dead (self, identity, msg);
                break;
            case DRV_MSG_WAIT:
                s_client_wait (self, identity, msg);
                break;
            case DRV_MSG_QUEUE_CONFIG:
                s_client_queue (self, identity, msg);
                break;
            case DRV_MSG_JOBS_QUERY:
                s_client_jobs (self, identity, msg);
                break;
            case DRV_MSG_WORKERS_QUERY:
                s_client_workers (self, identity, msg);
                break;
            case DRV_MSG_QUEUES_QUERY:
                s_client_queues (self, identity, msg);
                break;
            case DRV_MSG_STATS_QUERY:
                s_client_stats (self, identity, msg);
                break;
            case DRV_MSG_BYE:
                break;
            default:
                s_refuse (self, sock, identity, msg->seq, DROVER_ERR_UNEXPECTED,
                          "clients may send Submit, Status, Wait, Cancel, Dead, QueueConfig, "
                          "JobsQuery, WorkersQuery, QueuesQuery, StatsQuery, Ack, Heartbeat "
                          "and Bye only");
        }
        drv_msg_destroy (&msg);
    }
    //  Whatever it sent, the client is there: hand it what waits for it.
    if (identity && zframe_size (identity) <= DRV_PEER_ID_MAX) {
        char key [2 * DRV_PEER_ID_MAX + 1];
        drv_util_hex (zframe_data (identity), zframe_size (identity), key);
        s_outbox_t *box = (s_outbox_t *) zhashx_lookup (self->outboxes, key);
        if (box && zlistx_size (box->job_ids))
            s_outbox_flush (self, box);
    }
    zframe_destroy (&identity);
}

//  Done: finish each job this worker was running; ignore the rest.
static void
s_worker_done (s_server_t *self, drv_peer_t *peer, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->nresults; i++) {
        drv_result_t *result = &msg->results [i];
        drv_job_t *job = drv_sched_complete (self->sched, peer, result->job_id);
        if (job)
            s_report_forget (self, job->id);
        if (!job) {
            zsys_info ("broker: late result ignored job=%" PRIu64 " worker=%s", result->job_id,
                       drv_peer_name (peer));
            continue;
        }
        drv_peer_add_done (peer, 1);
        if (result->size > self->config->limits.max_payload) {
            char reason [160];
            snprintf (reason, sizeof reason,
                      "result of %zu bytes is larger than the broker's limit of %zu "
                      "(--max-payload)",
                      result->size, self->config->limits.max_payload);
            s_settle (self, job, DROVER_OUTCOME_ERROR, NULL, 0, reason);
        }
        else
            s_settle (self, job, result->outcome, result->data, result->size, result->reason);
    }
    self->flush_due = true;
    self->dispatch_due = true;
}

//  Progress reports on their way to clients: one batch per client.
typedef struct {
    uint8_t identity [DRV_PEER_ID_MAX];  //  client routing id
    size_t identity_len;             //  bytes in identity
    drv_progress_t *reports;         //  borrowed from the worker's message, owned array
    size_t count;                    //  entries used
    size_t capacity;                 //  entries allocated
    size_t bytes;                    //  partial bytes in them
} s_batch_t;

typedef struct {
    s_server_t *server;              //  borrowed
    zhashx_t *batches;               //  hex identity -> s_batch_t
    const drv_progress_t *report;    //  the report being passed on
    uint64_t job_id;                 //  the id its clients know (the leader's)
} s_relay_t;

static void
s_batch_send (s_server_t *self, s_batch_t *batch)
{
    if (batch->count) {
        drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .progress = batch->reports,
                         .nprogress = batch->count};
        //  Best effort: a client gone or not reading misses it.
        s_send_msg (self, self->clients, batch->identity, batch->identity_len, &msg);
    }
    batch->count = batch->bytes = 0;
}

//  Add the report to the batch of one client.
static void
s_relay_to (s_relay_t *relay, const uint8_t *identity, size_t identity_len)
{
    char key [2 * DRV_PEER_ID_MAX + 1];
    drv_util_hex (identity, identity_len, key);
    s_batch_t *batch = (s_batch_t *) zhashx_lookup (relay->batches, key);
    if (!batch) {
        batch = (s_batch_t *) calloc (1, sizeof *batch);
        if (!batch)
            return;
        memcpy (batch->identity, identity, identity_len);
        batch->identity_len = identity_len;
        zhashx_insert (relay->batches, key, batch);
    }
    for (size_t i = 0; i < batch->count; i++)
        if (batch->reports [i].job_id == relay->job_id)
            return;                  //  one report per job and client is plenty
    if (batch->count && batch->bytes + relay->report->size > S_PROGRESS_BYTES_PER_MESSAGE)
        s_batch_send (relay->server, batch);
    if (batch->count == batch->capacity) {
        size_t capacity = batch->capacity ? batch->capacity * 2 : 16;
        drv_progress_t *grown = (drv_progress_t *) realloc (batch->reports,
                                                            capacity * sizeof *grown);
        if (!grown)
            return;
        batch->reports = grown;
        batch->capacity = capacity;
    }
    batch->reports [batch->count] = *relay->report;
    batch->reports [batch->count++].job_id = relay->job_id;
    batch->bytes += relay->report->size;
}

//  drv_store_each_follower: a client attached by unique key.
static void
s_relay_follower (drv_job_t *follower, void *arg)
{
    if (follower->progress && !follower->detached)
        s_relay_to ((s_relay_t *) arg, follower->client, follower->client_len);
}

static void
s_batch_destroy (void **item)
{
    s_batch_t *batch = (s_batch_t *) *item;
    if (batch) {
        free (batch->reports);
        free (batch);
        *item = NULL;
    }
}

//  Progress: keep each report of a job this worker runs as its last, and
//  pass it on to the clients that asked. A report for a job the worker
//  does not run (finished, cancelled, dispatched elsewhere, or never its)
//  is refused.
static void
s_worker_progress (s_server_t *self, drv_peer_t *peer, zframe_t *identity, drv_msg_t *msg)
{
    s_relay_t relay = {.server = self, .batches = zhashx_new ()};
    if (relay.batches)
        zhashx_set_destructor (relay.batches, s_batch_destroy);
    size_t refused = 0;
    char why [200] = "";
    for (size_t i = 0; i < msg->nprogress; i++) {
        const drv_progress_t *in = &msg->progress [i];
        drv_job_t *job = drv_store_lookup (self->store, in->job_id);
        if (!job || job->state != DROVER_JOB_RUNNING || job->worker != (void *) peer) {
            if (!refused++)
                snprintf (why, sizeof why,
                          "progress for job %" PRIu64 " refused: it does not run on this "
                          "worker (finished, cancelled, dispatched elsewhere, or unknown)",
                          in->job_id);
            continue;
        }
        if (in->size > self->config->limits.max_payload) {
            if (!refused++)
                snprintf (why, sizeof why,
                          "progress for job %" PRIu64 " refused: %zu bytes of partial output, "
                          "more than the broker's --max-payload of %zu",
                          in->job_id, in->size, self->config->limits.max_payload);
            continue;
        }
        //  The job's last report, for Status.
        s_report_t *report = (s_report_t *) drv_util_u64_lookup (self->reports, job->id);
        if (!report && (report = (s_report_t *) calloc (1, sizeof *report)))
            zhashx_insert (self->reports, drv_util_u64_key (job->id), report);
        if (report) {
            self->report_bytes -= report->size;
            free (report->partial);
            report->partial = NULL;
            report->size = 0;
            if (in->size && self->report_bytes + in->size <= S_REPORT_BYTES_MAX
                && (report->partial = (uint8_t *) malloc (in->size))) {
                memcpy (report->partial, in->partial, in->size);
                report->size = in->size;
                self->report_bytes += in->size;
            }
            report->worker = peer;
            report->attempt = job->attempts;
            report->done = in->done;
            report->total = in->total;
        }
        if (!relay.batches)
            continue;
        relay.report = in;
        relay.job_id = job->id;
        if (job->progress && !job->detached)
            s_relay_to (&relay, job->client, job->client_len);
        drv_store_each_follower (job, s_relay_follower, &relay);
        zlistx_t *waiters = (zlistx_t *) drv_util_u64_lookup (self->waiters, job->id);
        for (s_waiter_t *waiter = waiters ? (s_waiter_t *) zlistx_first (waiters) : NULL; waiter;
             waiter = (s_waiter_t *) zlistx_next (waiters))
            if (waiter->progress)
                s_relay_to (&relay, waiter->identity, waiter->identity_len);
    }
    for (s_batch_t *batch = relay.batches ? (s_batch_t *) zhashx_first (relay.batches) : NULL;
         batch; batch = (s_batch_t *) zhashx_next (relay.batches))
        s_batch_send (self, batch);
    zhashx_destroy (&relay.batches);
    if (refused) {
        if (refused > 1) {
            size_t length = strlen (why);
            snprintf (why + length, sizeof why - length, " (and %zu more)", refused - 1);
        }
        s_refuse (self, self->workers, identity, msg->seq, DROVER_ERR_INVALID, why);
    }
}

//  Handle one message from a worker.
static void
s_worker_message (s_server_t *self, zsock_t *sock)
{
    zframe_t *identity;
    //  A result over --max-payload fails its job (s_worker_done) rather
    //  than the whole Done, so workers' results are bounded by message size.
    drv_limits_t limits = self->config->limits;
    limits.max_payload = limits.max_message;
    drv_msg_t *msg = s_receive (self, sock, &limits, &identity);
    if (msg) {
        drv_peer_t *peer =
            drv_sched_find (self->sched, zframe_data (identity), zframe_size (identity));
        if (peer)
            drv_peer_set_last_seen (peer, self->now_ms);
        if (msg->type == DRV_MSG_READY) {
            peer = drv_sched_ready (self->sched, zframe_data (identity), zframe_size (identity),
                                    msg->name, msg->functions, msg->nfunctions, msg->slots,
                                    self->now_ms);
            if (peer) {
                drv_sched_set_chunks (peer, msg->chunks);
                drv_sched_set_frames (peer, msg->payload_frames);
                zsys_info ("broker: worker ready worker=%s slots=%u functions=%zu",
                           drv_peer_name (peer), msg->slots, msg->nfunctions);
                self->dispatch_due = true;
            }
            else
                s_refuse (self, sock, identity, msg->seq, DROVER_ERR_INTERNAL,
                          "cannot register worker");
        }
        else
        if (!peer)
            //  E.g. the broker restarted: the worker must announce itself.
            s_refuse (self, sock, identity, msg->seq, DROVER_ERR_UNEXPECTED,
                      "unknown worker: send Ready first");
        else
        if (msg->type == DRV_MSG_DONE)
            s_worker_done (self, peer, msg);
        else
        if (msg->type == DRV_MSG_PROGRESS)
            s_worker_progress (self, peer, identity, msg);
        else
        if (msg->type == DRV_MSG_HEARTBEAT) {
            drv_msg_t reply = {.type = DRV_MSG_HEARTBEAT, .seq = msg->seq};
            s_send_msg (self, sock, zframe_data (identity), zframe_size (identity), &reply);
        }
        else
        if (msg->type == DRV_MSG_BYE) {
            const char *name = drv_peer_name (peer);
            zsys_info ("broker: worker left worker=%s running=%u", name, drv_peer_inflight (peer));
            self->requeued += drv_sched_remove (self->sched, &peer, self->now_ms);
            self->dispatch_due = true;
        }
        else
            s_refuse (self, sock, identity, msg->seq, DROVER_ERR_UNEXPECTED,
                      "workers may send Ready, Done, Progress, Heartbeat and Bye only");
        drv_msg_destroy (&msg);
    }
    zframe_destroy (&identity);
}

//  Readers take up to this many messages in one go, so that one commit
//  (one fsync) covers them all.
#define S_BURST 256

//  After a burst of events: make it durable, then acknowledge. -1 (which
//  ends the loop) when the job store failed.
static int
s_end_burst (s_server_t *self)
{
    char err [512] = "";
    if (drv_store_commit (self->store, err, sizeof err) == -1) {
        zsys_error ("broker: cannot write the job store: %s; stopping, nothing more is "
                    "acknowledged",
                    err);
        self->failed = true;
        zstr_sendx (self->pipe, "FAILED", err, NULL);
        return -1;
    }
    //  Once per burst, not per message: workers get one Dispatch and
    //  clients one Results for everything the burst made ready.
    if (self->dispatch_due) {
        self->dispatch_due = false;
        s_dispatch (self);
        self->flush_due = true;
    }
    if (self->flush_due) {
        self->flush_due = false;
        s_flush_outboxes (self);
    }
    s_ack_t *ack;
    while ((ack = (s_ack_t *) zlistx_first (self->acks))) {
        drv_msg_t reply = {
            .type = DRV_MSG_SUBMIT_ACK,
            .seq = ack->seq,
            .job_ids = ack->ids,
            .njob_ids = ack->count,
            .workers = ack->workers,
        };
        s_send_msg (self, self->clients, ack->identity, ack->identity_len, &reply);
        zlistx_delete (self->acks, zlistx_cursor (self->acks));
    }
    s_arm_timer (self);
    return 0;
}

static int
s_on_client (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_server_t *self = (s_server_t *) arg;
    for (int i = 0; i < S_BURST && (i == 0 || (zsock_events (sock) & ZMQ_POLLIN)); i++)
        s_client_message (self, sock);
    return s_end_burst (self);
}

static int
s_on_worker (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_server_t *self = (s_server_t *) arg;
    for (int i = 0; i < S_BURST && (i == 0 || (zsock_events (sock) & ZMQ_POLLIN)); i++)
        s_worker_message (self, sock);
    return s_end_burst (self);
}

//  drv_store_restored_fn: a finished job's result goes to its client.
static void
s_on_restored (drv_job_t *job, void *arg)
{
    s_server_t *self = (s_server_t *) arg;
    self->restored++;
    if (job->state >= DROVER_JOB_SUCCEEDED) {
        self->restored_results++;
        s_post_result (self, job);
    }
}

//  The guard's timer: over the memory budget, cut stuck connections.
//  Its own timer, not the deadline timer: it watches libzmq, not the jobs.
static int
s_on_guard (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_server_t *self = (s_server_t *) arg;
    size_t cut = drv_guard_check (self->guard);
    if (cut) {
        self->cut += cut;
        zsys_warning ("broker: cut stuck connections=%zu cut_total=%" PRIu64, cut, self->cut);
    }
    return 0;
}

//  Is the endpoint on this machine only: ipc, inproc, or TCP on a
//  loopback address (127.0.0.0/8, ::1, localhost)?
static bool
s_is_local (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "[::1]:", 6) == 0
           || strncmp (host, "localhost:", 10) == 0;
}

//  Bind a ROUTER; NULL with a reason on failure. libzmq drops the
//  connection of a peer that sends a frame over max_frame bytes. With
//  CURVE it is a CURVE server in ZAP domain `domain`, and may listen
//  anywhere.
static zsock_t *
s_bind (const drv_broker_config_t *config, const char *endpoint, const char *domain,
        int64_t max_frame, int sndhwm, char *err,
        size_t err_size)
{
    if (!config->insecure && !config->curve_cert && !s_is_local (endpoint)) {
        snprintf (err, err_size,
                  "refusing to listen on %s: without authentication the broker listens on "
                  "loopback (tcp://127.0.0.1:PORT) or ipc:// only; give it CURVE keys "
                  "(--curve-secret, --allow-clients, --allow-workers), or give --insecure to "
                  "listen there anyway",
                  endpoint);
        return NULL;
    }
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock) {
        snprintf (err, err_size, "cannot create socket");
        return NULL;
    }
    if (strchr (endpoint, '['))
        zsock_set_ipv6 (sock, 1);     //  an IPv6 address, e.g. tcp://[::1]:7700
    zsock_set_router_mandatory (sock, 1);
    zsock_set_router_handover (sock, 1);
    //  Past the receive mark libzmq stops reading from the peer; past
    //  the send mark the broker's sends fail with EAGAIN.
    zsock_set_sndhwm (sock, sndhwm);
    zsock_set_rcvhwm (sock, S_RCVHWM);
    zsock_set_maxmsgsize (sock, (int) (max_frame > INT_MAX ? INT_MAX : max_frame));
    zsock_set_linger (sock, 0);
    //  Refuse to serve at all if any CURVE option did not take.
    if (config->curve_cert
        && drv_auth_server_apply (sock, config->curve_cert, domain, err, err_size) == -1) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        snprintf (err, err_size, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

//  With CURVE: start the ZAP handler with both allow lists. -1 with a
//  reason.
static int
s_start_auth (s_server_t *self, char *err, size_t err_size)
{
    const drv_broker_config_t *config = self->config;
    size_t clients = 0, workers = 0;
    self->auth = drv_auth_new (err, err_size);
    if (!self->auth
        || drv_auth_allow (self->auth, DRV_AUTH_CLIENTS, config->allow_clients, &clients, err,
                           err_size)
               == -1
        || drv_auth_allow (self->auth, DRV_AUTH_WORKERS, config->allow_workers, &workers, err,
                           err_size)
               == -1)
        return -1;
    zsys_info ("broker: CURVE on key=%s clients=%s (%zu keys) workers=%s (%zu keys)",
               zcert_public_txt (config->curve_cert), config->allow_clients, clients,
               config->allow_workers, workers);
    return 0;
}

//  ---------------------------------------------------------------------
//  --metrics: GET /metrics over HTTP/1.x on a ZMQ_STREAM socket. Each
//  connection sends one request (at most 4 KiB, within 10 s) and gets one
//  answer, then the broker closes it. No keep-alive, no chunking.

static void
s_http_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

//  Send raw bytes to a STREAM connection. An empty frame closes it; its
//  id is remembered, so that libzmq's "closed" notice (also an empty
//  frame) is not taken for a new connection.
static void
s_http_send (s_server_t *self, const uint8_t *id, size_t id_len, const void *data, size_t size)
{
    void *handle = zsock_resolve (self->metrics);
    if (zmq_send (handle, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) != -1)
        zmq_send (handle, data, size, ZMQ_DONTWAIT);
    if (size == 0 && id_len <= 8) {
        drv_util_hex (id, id_len, self->closed [self->next_closed]);
        self->next_closed = (self->next_closed + 1) % 64;
    }
}

//  Did the broker close this connection lately? Forgets it if so.
static bool
s_http_closed (s_server_t *self, const char *key)
{
    for (size_t i = 0; i < 64; i++)
        if (streq (self->closed [i], key)) {
            self->closed [i][0] = 0;
            return true;
        }
    return false;
}

//  Close a connection and forget it.
static void
s_http_close (s_server_t *self, s_http_t *conn)
{
    s_http_send (self, conn->id, conn->id_len, "", 0);
    char key [2 * DRV_PEER_ID_MAX + 1];
    zhashx_delete (self->http, drv_util_hex (conn->id, conn->id_len, key));
}

//  The metrics page, the caller's to free; NULL if out of memory.
static char *
s_metrics_page (s_server_t *self)
{
    size_t count = 0;
    drv_queue_info_t *infos = s_all_queues (self, &count);
    drover_queue_t *queues = (drover_queue_t *) calloc (count ? count : 1, sizeof *queues);
    char *text = NULL;
    if (infos && queues) {
        for (size_t i = 0; i < count; i++) {
            drv_util_strlcpy (queues [i].function, infos [i].function, sizeof queues [i].function);
            queues [i].limit = infos [i].limit;
            queues [i].paused = infos [i].paused;
            queues [i].max_queue = infos [i].max_queue;
            queues [i].max_queue_in_force = infos [i].max_queue_in_force;
            queues [i].queued = infos [i].queued;
            queues [i].delayed = infos [i].delayed;
            queues [i].running = infos [i].running;
            queues [i].workers = infos [i].workers;
        }
        drover_stats_t stats = s_stats (self);
        text = drv_metrics_text (&stats, queues, count, count);
    }
    free (infos);
    free (queues);
    return text;
}

//  Answer a complete request and close the connection.
static void
s_http_answer (s_server_t *self, s_http_t *conn)
{
    char method [16] = "", path [256] = "";
    //  "GET /metrics HTTP/1.1": the target may carry a query string.
    if (sscanf (conn->request, "%15s %255s HTTP/1.", method, path) != 2)
        method [0] = 0;
    char *query = strchr (path, '?');
    if (query)
        *query = 0;
    const char *status = "200 OK";
    char *body = NULL;
    bool head = streq (method, "HEAD");
    if (!*method)
        status = "400 Bad Request";
    else
    if (!streq (method, "GET") && !head)
        status = "405 Method Not Allowed";
    else
    if (!streq (path, "/metrics"))
        status = "404 Not Found";
    else
    if (!(body = s_metrics_page (self)))
        status = "500 Internal Server Error";
    char fallback [64];
    if (!body) {
        snprintf (fallback, sizeof fallback, "%s\n", status);
        body = strdup (fallback);
    }
    size_t length = body ? strlen (body) : 0;
    char header [256];
    int size = snprintf (header, sizeof header,
                         "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; "
                         "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         status, length);
    if (self->config->verbose)
        zsys_info ("broker: metrics %s %s -> %s", method, path, status);
    //  One message: header and body, sent as the connection drains.
    char *answer = (char *) malloc ((size_t) size + length);
    if (answer) {
        memcpy (answer, header, (size_t) size);
        if (!head && length)
            memcpy (answer + size, body, length);
        s_http_send (self, conn->id, conn->id_len, answer, (size_t) size + (head ? 0 : length));
    }
    free (answer);
    free (body);
    s_http_close (self, conn);
}

//  One message on the STREAM socket: [id][bytes]. Empty bytes are a
//  connection opened or closed.
static int
s_on_metrics (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_server_t *self = (s_server_t *) arg;
    zmsg_t *msg = zmsg_recv (sock);
    zframe_t *id = msg ? zmsg_first (msg) : NULL;
    zframe_t *data = msg ? zmsg_next (msg) : NULL;
    if (!id || !data || zframe_size (id) > DRV_PEER_ID_MAX) {
        zmsg_destroy (&msg);
        return 0;
    }
    char key [2 * DRV_PEER_ID_MAX + 1];
    drv_util_hex (zframe_data (id), zframe_size (id), key);
    s_http_t *conn = (s_http_t *) zhashx_lookup (self->http, key);
    if (zframe_size (data) == 0) {
        //  The peer closed it, or we did; else it is a new connection.
        if (conn)
            zhashx_delete (self->http, key);
        else
        if (s_http_closed (self, key)) {
        }
        else
        if (zhashx_size (self->http) >= S_HTTP_MAX) {
            zsys_warning ("broker: metrics: %d connections open already; closing a new one",
                          S_HTTP_MAX);
            s_http_send (self, zframe_data (id), zframe_size (id), "", 0);
        }
        else
        if ((conn = (s_http_t *) calloc (1, sizeof *conn))) {
            memcpy (conn->id, zframe_data (id), zframe_size (id));
            conn->id_len = zframe_size (id);
            conn->since_ms = zclock_mono ();
            zhashx_insert (self->http, key, conn);
        }
        zmsg_destroy (&msg);
        return 0;
    }
    if (!conn) {                    //  closed by us already, or never taken
        zmsg_destroy (&msg);
        return 0;
    }
    size_t room = sizeof conn->request - 1 - conn->length;
    size_t size = zframe_size (data);
    if (size > room) {
        static const char too_large [] =
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n";
        s_http_send (self, conn->id, conn->id_len, too_large, sizeof too_large - 1);
        s_http_close (self, conn);
        zmsg_destroy (&msg);
        return 0;
    }
    memcpy (conn->request + conn->length, zframe_data (data), size);
    conn->length += size;
    conn->request [conn->length] = 0;
    zmsg_destroy (&msg);
    if (strstr (conn->request, "\r\n\r\n") || strstr (conn->request, "\n\n")) {
        self->now_ms = zclock_mono ();
        s_http_answer (self, conn);
    }
    return 0;
}

//  Close connections that did not send a whole request in time.
static int
s_on_http_sweep (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_server_t *self = (s_server_t *) arg;
    int64_t now = zclock_mono ();
    zlistx_t *late = zlistx_new ();
    for (s_http_t *conn = (s_http_t *) zhashx_first (self->http); conn && late;
         conn = (s_http_t *) zhashx_next (self->http))
        if (now - conn->since_ms >= S_HTTP_TIMEOUT_MS)
            zlistx_add_end (late, conn);
    for (s_http_t *conn = late ? (s_http_t *) zlistx_first (late) : NULL; conn;
         conn = (s_http_t *) zlistx_next (late))
        s_http_close (self, conn);
    zlistx_destroy (&late);
    return 0;
}

//  Bind the STREAM socket for --metrics: loopback and ipc only, unless
//  --insecure (CURVE does not cover HTTP). -1 with a reason.
static int
s_start_metrics (s_server_t *self, char *err, size_t err_size)
{
    const char *endpoint = self->config->metrics_endpoint;
    if (strncmp (endpoint, "tcp://", 6) != 0 && strncmp (endpoint, "ipc://", 6) != 0) {
        snprintf (err, err_size,
                  "--metrics wants HOST:PORT, tcp://HOST:PORT or ipc://PATH, not %s", endpoint);
        return -1;
    }
    if (!self->config->insecure && !s_is_local (endpoint)) {
        snprintf (err, err_size,
                  "refusing to serve metrics on %s: the metrics endpoint has no authentication, "
                  "so it listens on loopback (127.0.0.1:PORT) only; give --insecure to serve "
                  "them there anyway",
                  endpoint);
        return -1;
    }
    self->metrics = zsock_new (ZMQ_STREAM);
    self->http = zhashx_new ();
    if (!self->metrics || !self->http) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    zhashx_set_destructor (self->http, s_http_destroy);
    if (strchr (endpoint, '['))
        zsock_set_ipv6 (self->metrics, 1);
    zsock_set_linger (self->metrics, 0);
    zsock_set_rcvhwm (self->metrics, S_RCVHWM);
    if (zsock_bind (self->metrics, "%s", endpoint) == -1) {
        snprintf (err, err_size, "cannot bind --metrics %s: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

void
drv_broker_actor (zsock_t *pipe, void *args)
{
    s_server_t server = {.config = (const drv_broker_config_t *) args, .pipe = pipe};
    s_server_t *self = &server;
    self->timer_id = -1;
    zuuid_t *instance = zuuid_new ();
    if (instance)
        memcpy (self->instance, zuuid_data (instance), sizeof self->instance);
    zuuid_destroy (&instance);
    //  Retry jitter needs no more than this.
    unsigned seed;
    memcpy (&seed, self->instance, sizeof seed);
    srandom (seed);
    //  zactor_new waits for this; the status report follows on the pipe.
    zsock_signal (pipe, 0);
    char err [512] = "";
    //  A frame over twice the message limit is dropped with its
    //  connection by libzmq; up to that, the codec answers ERR_TOO_LARGE.
    int64_t max_frame = 2 * (int64_t) self->config->limits.max_message;
    size_t max_memory = self->config->max_memory ? self->config->max_memory
                                                 : self->config->max_bytes + ((size_t) 1 << 30);
    self->guard = drv_guard_new (max_memory);
    if (!self->config->curve_cert || s_start_auth (self, err, sizeof err) == 0)
        self->clients = s_bind (self->config, self->config->clients_endpoint, DRV_AUTH_CLIENTS,
                                max_frame, S_CLIENT_SNDHWM, err, sizeof err);
    if (self->clients)
        self->workers = s_bind (self->config, self->config->workers_endpoint, DRV_AUTH_WORKERS,
                                max_frame, S_WORKER_SNDHWM, err, sizeof err);
    if (!*err && self->config->metrics_endpoint)
        s_start_metrics (self, err, sizeof err);
    self->store = drv_store_new (self->config->keep_results_ms, self->config->max_queue);
    if (self->store)
        drv_store_set_limits (self->store, self->config->max_bytes, self->config->max_functions);
    self->sched = self->store ? drv_sched_new (self->store) : NULL;
    self->outboxes = zhashx_new ();
    self->waiters = drv_util_u64_hash_new ();
    self->reports = drv_util_u64_hash_new ();
    self->busy = zlistx_new ();
    self->dead = zlistx_new ();
    self->acks = zlistx_new ();
    self->loop = zloop_new ();
    if (!*err && !(self->store && self->sched && self->outboxes && self->waiters && self->reports
                   && self->busy
                   && self->dead && self->acks && self->loop && self->guard))
        snprintf (err, sizeof err, "out of memory");
    if (!*err) {
        zhashx_set_destructor (self->outboxes, s_outbox_destroy);
        zhashx_set_destructor (self->waiters, s_waiters_destroy);
        zhashx_set_destructor (self->reports, s_report_destroy);
        zlistx_set_destructor (self->acks, s_ack_destroy);
    }
    if (!*err && self->config->data_dir) {
        self->now_ms = zclock_mono ();
        //  Run-at times go to disk on the wall clock, to survive a restart.
        drv_store_set_wall_offset (self->store, zclock_time () - self->now_ms);
        if (drv_store_attach (self->store, self->config->data_dir, self->now_ms, s_on_restored,
                              self, err, sizeof err)
            == 0)
            zsys_info ("broker: job store %s restored jobs=%zu of which results=%zu",
                       self->config->data_dir, self->restored, self->restored_results);
    }
    if (*err)
        zstr_sendx (pipe, "ERROR", err, NULL);
    else {
        char *clients = zsock_last_endpoint (self->clients);
        char *workers = zsock_last_endpoint (self->workers);
        char *metrics = self->metrics ? zsock_last_endpoint (self->metrics) : NULL;
        drv_guard_watch (self->guard, clients);
        drv_guard_watch (self->guard, workers);
        self->clients_bound = strdup (clients);
        zstr_sendx (pipe, "OK", clients, workers, metrics ? metrics : "", NULL);
        zsys_info ("broker: listening clients=%s workers=%s max_memory=%zu%s%s", clients,
                   workers, max_memory, metrics ? " metrics=" : "", metrics ? metrics : "");
        zstr_free (&clients);
        zstr_free (&workers);
        zstr_free (&metrics);

        //  The owner handles signals; the loop runs until $TERM.
        zloop_set_nonstop (self->loop, true);
        zloop_reader (self->loop, pipe, drv_util_on_pipe, NULL);
        zloop_reader (self->loop, self->clients, s_on_client, self);
        zloop_reader (self->loop, self->workers, s_on_worker, self);
        zloop_timer (self->loop, DRV_GUARD_INTERVAL_MS, 0, s_on_guard, self);
        if (self->metrics) {
            zloop_reader (self->loop, self->metrics, s_on_metrics, self);
            zloop_timer (self->loop, S_HTTP_SWEEP_MS, 0, s_on_http_sweep, self);
        }
        self->now_ms = zclock_mono ();
        self->started_ms = self->now_ms;
        self->next_liveness_ms = self->now_ms + self->config->heartbeat_ms;
        self->next_redeliver_ms =
            self->now_ms + (int64_t) self->config->heartbeat_ms * S_REDELIVER_INTERVALS;
        s_arm_timer (self);
        zloop_start (self->loop);
        zsys_info ("broker: stopping jobs=%zu workers=%zu submitted=%" PRIu64
                   " finished=%" PRIu64 " rejected=%" PRIu64 " malformed=%" PRIu64
                   " cut=%" PRIu64,
                   drv_store_size (self->store), drv_sched_size (self->sched),
                   drv_store_submitted (self->store), drv_store_finished (self->store),
                   self->rejected, self->malformed, self->cut);
    }
    zloop_destroy (&self->loop);
    zlistx_destroy (&self->acks);
    zlistx_destroy (&self->dead);
    zlistx_destroy (&self->busy);
    zhashx_destroy (&self->outboxes);
    zhashx_destroy (&self->waiters);
    zhashx_destroy (&self->reports);
    drv_sched_destroy (&self->sched);
    drv_store_destroy (&self->store);
    zhashx_destroy (&self->http);
    zsock_destroy (&self->metrics);
    zstr_free (&self->clients_bound);
    zsock_destroy (&self->workers);
    zsock_destroy (&self->clients);
    drv_guard_destroy (&self->guard);
    drv_auth_destroy (&self->auth);
}

//  ---------------------------------------------------------------------
//  The public embedding API.

struct _drover_broker_t {
    char *clients_endpoint;          //  as asked
    char *workers_endpoint;          //  as asked
    char *clients_bound;             //  as bound, after start
    char *workers_bound;             //  as bound, after start
    char *metrics_endpoint;          //  --metrics as asked, or NULL
    char *metrics_bound;             //  as bound, after start, or NULL
    char *data_dir;                  //  durable mode, or NULL
    zcert_t *curve_cert;             //  CURVE key pair, or NULL
    char *allow_clients;             //  CURVE: client certificates
    char *allow_workers;             //  CURVE: worker certificates
    drv_broker_config_t config;      //  handed to the actor
    zactor_t *actor;                 //  running broker, or NULL
    zmsg_t *report;                  //  the actor's stop report, taken by a ping
    char error [512];                //  last error
};

drover_broker_t *
drover_broker_new (const char *clients_endpoint, const char *workers_endpoint)
{
    if (!clients_endpoint || !workers_endpoint)
        return NULL;
    drv_util_log_init ();
    drover_broker_t *self = (drover_broker_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->clients_endpoint = strdup (clients_endpoint);
    self->workers_endpoint = strdup (workers_endpoint);
    if (!self->clients_endpoint || !self->workers_endpoint) {
        drover_broker_destroy (&self);
        return NULL;
    }
    self->config.limits = drv_limits_default ();
    self->config.max_queue = 10000000;
    self->config.max_bytes = (size_t) 1 << 30;
    self->config.max_functions = 10000;
    self->config.keep_results_ms = 600000;
    self->config.heartbeat_ms = 1000;
    self->config.liveness = 3;
    return self;
}

void
drover_broker_destroy (drover_broker_t **self_p)
{
    assert (self_p);
    drover_broker_t *self = *self_p;
    if (self) {
        drover_broker_stop (self);
        free (self->clients_endpoint);
        free (self->workers_endpoint);
        free (self->metrics_endpoint);
        free (self->data_dir);
        zcert_destroy (&self->curve_cert);
        free (self->allow_clients);
        free (self->allow_workers);
        free (self);
        *self_p = NULL;
    }
}

const char *
drover_broker_error (drover_broker_t *self)
{
    return self->error;
}

void
drover_broker_set_max_message (drover_broker_t *self, size_t bytes)
{
    self->config.limits.max_message = bytes;
}

void
drover_broker_set_max_payload (drover_broker_t *self, size_t bytes)
{
    self->config.limits.max_payload = bytes;
}

void
drover_broker_set_max_queue (drover_broker_t *self, size_t jobs)
{
    self->config.max_queue = jobs;
}

void
drover_broker_set_max_bytes (drover_broker_t *self, size_t bytes)
{
    self->config.max_bytes = bytes;
}

void
drover_broker_set_max_functions (drover_broker_t *self, size_t functions)
{
    self->config.max_functions = functions;
}

void
drover_broker_set_max_memory (drover_broker_t *self, size_t bytes)
{
    self->config.max_memory = bytes;
}

void
drover_broker_set_keep_results (drover_broker_t *self, unsigned ms)
{
    self->config.keep_results_ms = ms;
}

void
drover_broker_set_heartbeat (drover_broker_t *self, unsigned interval_ms, unsigned liveness)
{
    self->config.heartbeat_ms = interval_ms ? interval_ms : 1;
    self->config.liveness = liveness ? liveness : 1;
}

void
drover_broker_set_data_dir (drover_broker_t *self, const char *dir)
{
    free (self->data_dir);
    self->data_dir = dir && *dir ? strdup (dir) : NULL;
    self->config.data_dir = self->data_dir;
}

int
drover_broker_wait (drover_broker_t *self, int timeout_ms)
{
    if (!self->actor)
        return -1;
    //  A report that drover_broker_ping came across first counts.
    zmsg_t *report = self->report;
    self->report = NULL;
    if (!report)
        report = drv_util_wait_report (self->actor, timeout_ms);
    if (!report)
        return 0;
    drv_util_report_reason (&report, "the broker stopped by itself", self->error,
                            sizeof self->error);
    return -1;
}

int
drover_broker_ping (drover_broker_t *self, int timeout_ms)
{
    if (!self->actor || self->report)
        return -1;
    return drv_util_ping (self->actor, timeout_ms, &self->report);
}

void
drover_broker_set_insecure (drover_broker_t *self, bool insecure)
{
    self->config.insecure = insecure;
}

//  Can dir be listed? -1 with a reason.
static int
s_check_dir (drover_broker_t *self, const char *flag, const char *dir)
{
    DIR *handle = dir && *dir ? opendir (dir) : NULL;
    if (!handle) {
        snprintf (self->error, sizeof self->error, "%s: cannot read the directory %s: %s", flag,
                  dir && *dir ? dir : "(none given)", dir && *dir ? strerror (errno) : "give one");
        return -1;
    }
    closedir (handle);
    return 0;
}

int
drover_broker_set_curve (drover_broker_t *self, const char *secret_file, const char *clients_dir,
                         const char *workers_dir)
{
    zcert_destroy (&self->curve_cert);
    zstr_free (&self->allow_clients);
    zstr_free (&self->allow_workers);
    self->config.curve_cert = NULL;
    self->config.allow_clients = self->config.allow_workers = NULL;
    if (!secret_file)
        return 0;
    char err [400];
    zcert_t *cert = drv_auth_load_cert (secret_file, true, err, sizeof err);
    if (!cert) {
        snprintf (self->error, sizeof self->error, "--curve-secret: %s", err);
        return -1;
    }
    if (s_check_dir (self, "--allow-clients", clients_dir) == -1
        || s_check_dir (self, "--allow-workers", workers_dir) == -1) {
        zcert_destroy (&cert);
        return -1;
    }
    self->allow_clients = strdup (clients_dir);
    self->allow_workers = strdup (workers_dir);
    if (!self->allow_clients || !self->allow_workers) {
        zcert_destroy (&cert);
        zstr_free (&self->allow_clients);
        zstr_free (&self->allow_workers);
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    self->curve_cert = cert;
    self->config.curve_cert = cert;
    self->config.allow_clients = self->allow_clients;
    self->config.allow_workers = self->allow_workers;
    return 0;
}

const char *
drover_broker_public_key (drover_broker_t *self)
{
    return self->curve_cert ? zcert_public_txt (self->curve_cert) : NULL;
}

void
drover_broker_set_verbose (drover_broker_t *self, bool verbose)
{
    self->config.verbose = verbose;
}

int
drover_broker_start (drover_broker_t *self)
{
    if (self->actor) {
        snprintf (self->error, sizeof self->error, "broker is already running");
        return -1;
    }
    const drv_limits_t *limits = &self->config.limits;
    if (limits->max_message > DRV_LIMIT_CEILING || limits->max_message < 4096) {
        snprintf (self->error, sizeof self->error,
                  "the message limit must be 4096 to %zu bytes, not %zu", DRV_LIMIT_CEILING,
                  limits->max_message);
        return -1;
    }
    if (limits->max_payload + 1024 > limits->max_message) {
        snprintf (self->error, sizeof self->error,
                  "the payload limit (%zu) must be at least 1024 bytes below the message "
                  "limit (%zu)",
                  limits->max_payload, limits->max_message);
        return -1;
    }
    self->config.clients_endpoint = self->clients_endpoint;
    self->config.workers_endpoint = self->workers_endpoint;
    self->actor = zactor_new (drv_broker_actor, &self->config);
    if (!self->actor) {
        snprintf (self->error, sizeof self->error, "cannot start the broker thread");
        return -1;
    }
    char *status = NULL, *first = NULL, *second = NULL, *third = NULL;
    zstr_recvx (self->actor, &status, &first, &second, &third, NULL);
    int rc = 0;
    if (status && streq (status, "OK") && first && second) {
        self->clients_bound = first;
        self->workers_bound = second;
        first = second = NULL;
        if (third && *third) {
            self->metrics_bound = third;
            third = NULL;
        }
    }
    else {
        snprintf (self->error, sizeof self->error, "%s", first ? first : "broker failed to start");
        zactor_destroy (&self->actor);
        rc = -1;
    }
    zstr_free (&status);
    zstr_free (&first);
    zstr_free (&second);
    zstr_free (&third);
    return rc;
}

const char *
drover_broker_clients_endpoint (drover_broker_t *self)
{
    return self->clients_bound ? self->clients_bound : self->clients_endpoint;
}

int
drover_broker_set_metrics (drover_broker_t *self, const char *endpoint)
{
    free (self->metrics_endpoint);
    self->metrics_endpoint = NULL;
    self->config.metrics_endpoint = NULL;
    if (!endpoint || !*endpoint)
        return 0;
    //  HOST:PORT is short for tcp://HOST:PORT.
    if (strstr (endpoint, "://"))
        self->metrics_endpoint = strdup (endpoint);
    else
    if (asprintf (&self->metrics_endpoint, "tcp://%s", endpoint) == -1)
        self->metrics_endpoint = NULL;
    if (!self->metrics_endpoint) {
        snprintf (self->error, sizeof self->error, "out of memory");
        return -1;
    }
    self->config.metrics_endpoint = self->metrics_endpoint;
    return 0;
}

const char *
drover_broker_metrics_endpoint (drover_broker_t *self)
{
    return self->metrics_bound ? self->metrics_bound : self->metrics_endpoint;
}

const char *
drover_broker_workers_endpoint (drover_broker_t *self)
{
    return self->workers_bound ? self->workers_bound : self->workers_endpoint;
}

void
drover_broker_stop (drover_broker_t *self)
{
    zactor_destroy (&self->actor);
    zmsg_destroy (&self->report);
    zstr_free (&self->clients_bound);
    zstr_free (&self->workers_bound);
    zstr_free (&self->metrics_bound);
}
