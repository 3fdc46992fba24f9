/*  drv_sched - which worker runs which job: the broker's policy.

    Workers are kept in a table by routing identity. Those with a free
    credit are also in the hungry list; dispatch deals one job per hungry
    worker per round until no worker can take more, then emits each
    worker's batch. A RUNNING job is linked into its worker's running list
    (a drv_jobs_t), so a dead worker's jobs are found without a scan.
*/

#include "drv_sched.h"

#include "drv_util.h"

struct _drv_peer_t {
    uint8_t identity [256];          //  ROUTER routing id
    size_t identity_len;             //  bytes in identity
    char *key;                       //  identity as hex, the table's key
    char *name;                      //  host:pid or as the worker says
    drv_queue_t **queues;            //  queues of the functions offered
    size_t nqueues;                  //  entries in queues
    size_t next_queue;               //  round-robin start among queues
    uint32_t slots;                  //  credits in all
    drv_jobs_t running;              //  jobs in flight here
    void *hungry_handle;             //  place in hungry, NULL if full
    drv_job_t **batch;               //  jobs dealt in this dispatch
    size_t batch_size;               //  entries in batch
    int64_t last_seen;               //  last message, ms
    int64_t since;                   //  its Ready, ms
    uint64_t done;                   //  results it returned since (drv_broker counts)
    bool chunks;                     //  runs chunked jobs
    bool frames;                     //  takes payload frames (drv_broker's concern)
};

struct _drv_sched_t {
    drv_store_t *store;              //  borrowed
    zhashx_t *peers;                 //  hex identity -> drv_peer_t, owns
    zlistx_t *hungry;                //  peers with a free credit
    zlistx_t *given_up;              //  jobs failed for losing workers
    uint32_t max_lost;               //  worker losses a job survives
};

static void
s_peer_destroy (void **item)
{
    drv_peer_t *peer = (drv_peer_t *) *item;
    if (peer) {
        free (peer->batch);
        free (peer->queues);
        free (peer->name);
        free (peer->key);
        free (peer);
        *item = NULL;
    }
}

drv_sched_t *
drv_sched_new (drv_store_t *store)
{
    drv_sched_t *self = (drv_sched_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->store = store;
    self->peers = zhashx_new ();
    self->hungry = zlistx_new ();
    self->given_up = zlistx_new ();
    self->max_lost = 5;
    if (!self->peers || !self->hungry || !self->given_up) {
        drv_sched_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->peers, s_peer_destroy);
    return self;
}

void
drv_sched_destroy (drv_sched_t **self_p)
{
    assert (self_p);
    drv_sched_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->hungry);
        zlistx_destroy (&self->given_up);
        zhashx_destroy (&self->peers);
        free (self);
        *self_p = NULL;
    }
}

static uint32_t
s_inflight (drv_peer_t *peer)
{
    return (uint32_t) peer->running.size;
}

drv_peer_t *
drv_sched_find (drv_sched_t *self, const uint8_t *identity, size_t identity_len)
{
    if (identity_len > sizeof (((drv_peer_t *) 0)->identity))
        return NULL;
    char key [2 * 256 + 1];
    return (drv_peer_t *) zhashx_lookup (self->peers, drv_util_hex (identity, identity_len, key));
}

drv_peer_t *
drv_sched_ready (drv_sched_t *self, const uint8_t *identity, size_t identity_len,
                 const char *name, const char *const *functions, size_t nfunctions,
                 uint32_t slots, int64_t now_ms)
{
    if (identity_len == 0 || identity_len > sizeof (((drv_peer_t *) 0)->identity))
        return NULL;
    drv_peer_t *old = drv_sched_find (self, identity, identity_len);
    if (old)
        drv_sched_remove (self, &old, now_ms);

    drv_peer_t *peer = (drv_peer_t *) calloc (1, sizeof *peer);
    if (!peer)
        return NULL;
    memcpy (peer->identity, identity, identity_len);
    peer->identity_len = identity_len;
    peer->key = (char *) malloc (2 * identity_len + 1);
    if (peer->key)
        drv_util_hex (identity, identity_len, peer->key);
    peer->name = strdup (name && *name ? name : "worker");
    peer->queues = (drv_queue_t **) calloc (nfunctions, sizeof (drv_queue_t *));
    peer->batch = (drv_job_t **) calloc (slots, sizeof (drv_job_t *));
    peer->slots = slots;
    peer->last_seen = now_ms;
    peer->since = now_ms;
    void *item = peer;
    if (!peer->key || !peer->name || !peer->queues || !peer->batch) {
        s_peer_destroy (&item);
        return NULL;
    }
    for (size_t i = 0; i < nfunctions; i++) {
        drv_queue_t *queue = drv_store_queue (self->store, functions [i]);
        if (!queue) {
            for (size_t j = 0; j < peer->nqueues; j++)
                drv_queue_set_workers (peer->queues [j], drv_queue_workers (peer->queues [j]) - 1);
            s_peer_destroy (&item);
            return NULL;
        }
        bool duplicate = false;
        for (size_t j = 0; j < peer->nqueues; j++)
            duplicate = duplicate || peer->queues [j] == queue;
        if (duplicate)
            continue;
        peer->queues [peer->nqueues++] = queue;
        drv_queue_set_workers (queue, drv_queue_workers (queue) + 1);
    }
    zhashx_insert (self->peers, peer->key, peer);
    peer->hungry_handle = zlistx_add_end (self->hungry, peer);
    return peer;
}

size_t
drv_sched_remove (drv_sched_t *self, drv_peer_t **peer_p, int64_t now_ms)
{
    assert (peer_p);
    drv_peer_t *peer = *peer_p;
    if (!peer)
        return 0;
    size_t requeued = 0;
    //  Requeue from the newest so the oldest ends up at the head.
    drv_job_t *job;
    while ((job = peer->running.last)) {
        drv_jobs_remove (&peer->running, job);
        if (++job->lost > self->max_lost) {
            char reason [128];
            snprintf (reason, sizeof reason,
                      "lost its worker %u times while running; not dispatched again",
                      job->lost);
            drv_store_finish (self->store, job, DROVER_OUTCOME_LOST, NULL, 0, reason, now_ms);
            zlistx_add_end (self->given_up, job);
            continue;
        }
        drv_store_requeue (self->store, job);
        requeued++;
    }
    for (size_t i = 0; i < peer->nqueues; i++)
        drv_queue_set_workers (peer->queues [i], drv_queue_workers (peer->queues [i]) - 1);
    if (peer->hungry_handle)
        zlistx_delete (self->hungry, peer->hungry_handle);
    zhashx_delete (self->peers, peer->key);
    *peer_p = NULL;
    return requeued;
}

size_t
drv_sched_expire (drv_sched_t *self, int64_t deadline_ms, int64_t now_ms,
                  drv_sched_gone_fn *gone, void *arg)
{
    zlistx_t *silent = zlistx_new ();
    if (!silent)
        return 0;
    for (drv_peer_t *peer = (drv_peer_t *) zhashx_first (self->peers); peer;
         peer = (drv_peer_t *) zhashx_next (self->peers))
        if (peer->last_seen < deadline_ms)
            zlistx_add_end (silent, peer);
    size_t removed = zlistx_size (silent);
    drv_peer_t *peer;
    while ((peer = (drv_peer_t *) zlistx_first (silent))) {
        zlistx_delete (silent, zlistx_cursor (silent));
        size_t running = peer->running.size;
        if (gone)
            gone (peer, running, arg);
        drv_sched_remove (self, &peer, now_ms);
    }
    zlistx_destroy (&silent);
    return removed;
}

drv_job_t *
drv_sched_complete (drv_sched_t *self, drv_peer_t *peer, uint64_t job_id)
{
    drv_job_t *job = drv_store_lookup (self->store, job_id);
    if (!job || job->state != DROVER_JOB_RUNNING || job->worker != peer)
        return NULL;
    drv_jobs_remove (&peer->running, job);
    if (!peer->hungry_handle)
        peer->hungry_handle = zlistx_add_end (self->hungry, peer);
    return job;
}

//  May another job of queue start now: not paused, and under its limit
//  of running jobs, which counts every worker's (the Semaphore)?
static bool
s_may_start (drv_queue_t *queue)
{
    uint32_t limit = drv_queue_limit (queue);
    return !drv_queue_paused (queue) && (limit == 0 || drv_queue_running (queue) < limit);
}

//  Lease one job for peer from its queues, taking them in turn.
static drv_job_t *
s_take_one (drv_sched_t *self, drv_peer_t *peer)
{
    for (size_t tried = 0; tried < peer->nqueues; tried++) {
        drv_queue_t *queue = peer->queues [peer->next_queue];
        peer->next_queue = (peer->next_queue + 1) % peer->nqueues;
        if (!s_may_start (queue))
            continue;
        //  A chunk's packed payload must not run as one task on a worker
        //  that does not know chunks.
        drv_job_t *head = peer->chunks ? NULL : drv_store_peek (queue);
        if (head && head->chunk)
            continue;
        drv_job_t *job = drv_store_lease (self->store, queue, peer);
        if (job) {
            drv_jobs_add_end (&peer->running, job);
            return job;
        }
    }
    return NULL;
}

size_t
drv_sched_dispatch (drv_sched_t *self, drv_sched_emit_fn *emit, void *arg)
{
    //  Deal rounds: one job per hungry worker per round.
    size_t dispatched = 0;
    bool progress = true;
    while (progress) {
        progress = false;
        for (drv_peer_t *peer = (drv_peer_t *) zlistx_first (self->hungry); peer;
             peer = (drv_peer_t *) zlistx_next (self->hungry)) {
            if (s_inflight (peer) >= peer->slots)
                continue;
            drv_job_t *job = s_take_one (self, peer);
            if (job) {
                peer->batch [peer->batch_size++] = job;
                dispatched++;
                progress = true;
            }
        }
    }
    //  Send each worker its batch; the full ones leave the hungry list.
    drv_peer_t *peer = (drv_peer_t *) zlistx_first (self->hungry);
    while (peer) {
        drv_peer_t *next = (drv_peer_t *) zlistx_next (self->hungry);
        if (peer->batch_size) {
            emit (peer, peer->batch, peer->batch_size, arg);
            peer->batch_size = 0;
        }
        if (s_inflight (peer) >= peer->slots) {
            zlistx_delete (self->hungry, peer->hungry_handle);
            peer->hungry_handle = NULL;
        }
        peer = next;
    }
    return dispatched;
}

void
drv_sched_set_chunks (drv_peer_t *peer, bool chunks)
{
    peer->chunks = chunks;
}

void
drv_sched_set_frames (drv_peer_t *peer, bool frames)
{
    peer->frames = frames;
}

bool
drv_peer_frames (const drv_peer_t *peer)
{
    return peer->frames;
}

void
drv_sched_set_max_lost (drv_sched_t *self, uint32_t max_lost)
{
    self->max_lost = max_lost;
}

drv_job_t *
drv_sched_given_up (drv_sched_t *self)
{
    drv_job_t *job = (drv_job_t *) zlistx_first (self->given_up);
    if (job)
        zlistx_delete (self->given_up, zlistx_cursor (self->given_up));
    return job;
}

size_t
drv_sched_size (drv_sched_t *self)
{
    return zhashx_size (self->peers);
}

const uint8_t *
drv_peer_identity (drv_peer_t *peer, size_t *length)
{
    *length = peer->identity_len;
    return peer->identity;
}

const char *
drv_peer_name (drv_peer_t *peer)
{
    return peer->name;
}

uint32_t
drv_peer_slots (drv_peer_t *peer)
{
    return peer->slots;
}

uint32_t
drv_peer_inflight (drv_peer_t *peer)
{
    return s_inflight (peer);
}

int64_t
drv_peer_last_seen (drv_peer_t *peer)
{
    return peer->last_seen;
}

void
drv_peer_set_last_seen (drv_peer_t *peer, int64_t now_ms)
{
    peer->last_seen = now_ms;
}

int64_t
drv_peer_since (drv_peer_t *peer)
{
    return peer->since;
}

uint64_t
drv_peer_done (drv_peer_t *peer)
{
    return peer->done;
}

void
drv_peer_add_done (drv_peer_t *peer, uint64_t count)
{
    peer->done += count;
}

size_t
drv_peer_functions (drv_peer_t *peer)
{
    return peer->nqueues;
}

const char *
drv_peer_function (drv_peer_t *peer, size_t index)
{
    return index < peer->nqueues ? drv_queue_name (peer->queues [index]) : NULL;
}

drv_peer_t *
drv_sched_first (drv_sched_t *self)
{
    return (drv_peer_t *) zhashx_first (self->peers);
}

drv_peer_t *
drv_sched_next (drv_sched_t *self)
{
    return (drv_peer_t *) zhashx_next (self->peers);
}
