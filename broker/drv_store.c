/*  drv_store - the broker's jobs and per-function queues, in memory.

    Jobs live in one table keyed by id. A QUEUED job also sits in its
    queue's FIFO list; a finished job sits in the done list, which is in
    finish order, so expiry only ever looks at its head (a deadline kept in
    data, no timer per job). job->handle is the job's place in whichever
    list holds it, so removal is O(1).

    Ownership: the jobs table owns every job (its destructor frees them);
    the queues table owns the queues; lists only point.
*/

#include "drv_store.h"
#include "drv_index.h"

#include "drv_heap.h"
#include "drv_persist.h"
#include "drv_util.h"

struct _drv_queue_t {
    char *name;                      //  function name
    zlistx_t *jobs;                  //  QUEUED jobs, oldest first
    size_t running;                  //  jobs of this function RUNNING
    size_t workers;                  //  workers offering it (drv_sched's)
};

struct _drv_store_t {
    drv_index_t *jobs;               //  by id; owns them
    zhashx_t *queues;                //  name -> drv_queue_t, owns them
    drv_index_t *tags;               //  by client and tag
    zlistx_t *done;                  //  finished jobs, oldest first
    zlistx_t *dead;                  //  dead letters, oldest first
    size_t bytes;                    //  payload bytes held
    size_t max_bytes;                //  payload bytes held at most
    size_t max_queues;               //  distinct functions at most
    size_t max_dead;                 //  dead letters kept at most
    drv_heap_t *due;                 //  retry times and lease ends
    drv_persist_t *persist;          //  durable mode, or NULL
    bool disk_failed;                //  a write to persist failed
    uint64_t next_id;                //  id of the next job
    uint32_t keep_ms;                //  how long finished jobs stay
    size_t max_queue;                //  jobs per queue at most
    uint64_t submitted;              //  jobs ever submitted
    uint64_t finished;               //  jobs ever finished
};

//  Write a job's counts through to disk (they change on failure and loss).
static void
s_persist_counts (drv_store_t *self, drv_job_t *job)
{
    if (self->persist
        && drv_persist_counts (self->persist, job->id, job->attempts, job->failures, job->lost)
               == -1)
        self->disk_failed = true;
}

static void
s_job_free (drv_job_t *job)
{
    free (job->payload);
    free (job->result);
    free (job->reason);
    free (job);
}

//  drv_index_hash_fn for the id index.
static uint64_t
s_id_hash (const void *item)
{
    return drv_index_mix (((const drv_job_t *) item)->id);
}

static bool
s_id_match (const void *item, const void *key)
{
    return ((const drv_job_t *) item)->id == *(const uint64_t *) key;
}

//  The tag index: a client's routing id and its tag name one job.
typedef struct {
    const uint8_t *client;
    size_t client_len;
    uint64_t tag;
} s_tag_t;

static uint64_t
s_tag_hash_of (const uint8_t *client, size_t client_len, uint64_t tag)
{
    //  FNV-1a over the routing id, mixed with the tag.
    uint64_t hash = 14695981039346656037ull;
    for (size_t i = 0; i < client_len; i++)
        hash = (hash ^ client [i]) * 1099511628211ull;
    return drv_index_mix (hash ^ tag);
}

static uint64_t
s_tag_hash (const void *item)
{
    const drv_job_t *job = (const drv_job_t *) item;
    return s_tag_hash_of (job->client, job->client_len, job->tag);
}

static bool
s_tag_match (const void *item, const void *key)
{
    const drv_job_t *job = (const drv_job_t *) item;
    const s_tag_t *tag = (const s_tag_t *) key;
    return job->tag == tag->tag && job->client_len == tag->client_len
           && memcmp (job->client, tag->client, tag->client_len) == 0;
}

static void
s_queue_destroy (void **item)
{
    drv_queue_t *queue = (drv_queue_t *) *item;
    if (queue) {
        zlistx_destroy (&queue->jobs);
        free (queue->name);
        free (queue);
        *item = NULL;
    }
}

drv_store_t *
drv_store_new (uint32_t keep_ms, size_t max_queue)
{
    drv_store_t *self = (drv_store_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->jobs = drv_index_new (s_id_hash);
    self->queues = zhashx_new ();
    self->tags = drv_index_new (s_tag_hash);
    self->done = zlistx_new ();
    self->dead = zlistx_new ();
    self->max_dead = 10000;
    self->max_bytes = (size_t) 1 << 30;
    self->max_queues = 10000;
    self->due = drv_heap_new ();
    if (!self->jobs || !self->queues || !self->tags || !self->done || !self->dead || !self->due) {
        drv_store_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->queues, s_queue_destroy);
    self->next_id = 1;
    self->keep_ms = keep_ms;
    self->max_queue = max_queue;
    return self;
}

void
drv_store_destroy (drv_store_t **self_p)
{
    assert (self_p);
    drv_store_t *self = *self_p;
    if (self) {
        //  Lists first: they point into the tables.
        zlistx_destroy (&self->done);
        zlistx_destroy (&self->dead);
        drv_heap_destroy (&self->due);
        drv_persist_destroy (&self->persist);
        drv_index_destroy (&self->tags);
        zhashx_destroy (&self->queues);
        if (self->jobs) {
            size_t cursor = 0;
            drv_job_t *job;
            while ((job = (drv_job_t *) drv_index_next (self->jobs, &cursor)))
                s_job_free (job);
        }
        drv_index_destroy (&self->jobs);
        free (self);
        *self_p = NULL;
    }
}

drv_job_t *
drv_store_find_tag (drv_store_t *self, const uint8_t *client, size_t client_len, uint64_t tag)
{
    if (client_len > DRV_PEER_ID_MAX)
        return NULL;
    s_tag_t key = {.client = client, .client_len = client_len, .tag = tag};
    return (drv_job_t *) drv_index_find (self->tags, s_tag_hash_of (client, client_len, tag),
                                         s_tag_match, &key);
}

drv_queue_t *
drv_store_find_queue (drv_store_t *self, const char *function)
{
    return (drv_queue_t *) zhashx_lookup (self->queues, function);
}

drv_queue_t *
drv_store_queue (drv_store_t *self, const char *function)
{
    drv_queue_t *queue = drv_store_find_queue (self, function);
    if (queue)
        return queue;
    queue = (drv_queue_t *) calloc (1, sizeof *queue);
    if (!queue)
        return NULL;
    queue->name = strdup (function);
    queue->jobs = zlistx_new ();
    if (!queue->name || !queue->jobs) {
        void *item = queue;
        s_queue_destroy (&item);
        return NULL;
    }
    zhashx_insert (self->queues, function, queue);
    return queue;
}

void
drv_store_set_limits (drv_store_t *self, size_t max_bytes, size_t max_queues)
{
    self->max_bytes = max_bytes;
    self->max_queues = max_queues;
}

size_t
drv_store_bytes (drv_store_t *self)
{
    return self->bytes;
}

bool
drv_store_can_hold (drv_store_t *self, const char *function, size_t bytes, char *err,
                    size_t err_size)
{
    if (bytes > self->max_bytes || self->bytes > self->max_bytes - bytes) {
        snprintf (err, err_size,
                  "queue full: the broker holds %zu bytes of payloads and takes at most %zu; "
                  "retry later or raise the broker's --max-bytes",
                  self->bytes, self->max_bytes);
        return false;
    }
    if (!drv_store_find_queue (self, function) && zhashx_size (self->queues) >= self->max_queues) {
        snprintf (err, err_size,
                  "queue full: the broker serves at most %zu functions; raise its "
                  "--max-functions",
                  self->max_queues);
        return false;
    }
    return true;
}

bool
drv_store_can_accept (drv_store_t *self, drv_queue_t *queue, size_t count, char *err,
                      size_t err_size)
{
    size_t queued = zlistx_size (queue->jobs);
    if (queued + count <= self->max_queue)
        return true;
    snprintf (err, err_size,
              "queue full: '%s' holds %zu jobs and takes at most %zu; retry later or raise "
              "the broker's --max-queue",
              queue->name, queued, self->max_queue);
    return false;
}

//  A new QUEUED job with this id at the tail of queue, in the tables.
static drv_job_t *
s_insert (drv_store_t *self, drv_queue_t *queue, uint64_t id, uint64_t tag,
          const uint8_t *client, size_t client_len, const void *payload, size_t size,
          uint32_t timeout_ms)
{
    assert (client_len <= DRV_PEER_ID_MAX);
    drv_job_t *job = (drv_job_t *) calloc (1, sizeof *job);
    if (!job)
        return NULL;
    job->payload = (uint8_t *) malloc (size ? size : 1);
    if (!job->payload) {
        free (job);
        return NULL;
    }
    if (size)
        memcpy (job->payload, payload, size);
    job->size = size;
    self->bytes += size;
    job->id = id;
    job->tag = tag;
    job->queue = queue;
    job->state = DROVER_JOB_QUEUED;
    job->timeout_ms = timeout_ms;
    job->client_len = (uint8_t) client_len;
    job->due_slot = DRV_HEAP_NONE;
    if (client_len)
        memcpy (job->client, client, client_len);
    job->handle = zlistx_add_end (queue->jobs, job);
    if (!job->handle || drv_index_insert (self->jobs, job) == -1) {
        if (job->handle)
            zlistx_delete (queue->jobs, job->handle);
        self->bytes -= size;
        s_job_free (job);
        return NULL;
    }
    if (drv_index_insert (self->tags, job) == -1) {
        drv_index_remove (self->jobs, job);
        zlistx_delete (queue->jobs, job->handle);
        self->bytes -= size;
        s_job_free (job);
        return NULL;
    }
    return job;
}

drv_job_t *
drv_store_submit (drv_store_t *self, drv_queue_t *queue, uint64_t tag, const uint8_t *client,
                  size_t client_len, const void *payload, size_t size, uint32_t timeout_ms,
                  uint32_t retries)
{
    drv_job_t *job = s_insert (self, queue, self->next_id, tag, client, client_len, payload,
                               size, timeout_ms);
    if (!job)
        return NULL;
    job->retries = retries;
    self->next_id++;
    self->submitted++;
    if (self->persist) {
        drv_record_t record = {
            .id = job->id, .tag = tag, .client = client, .client_len = client_len,
            .function = queue->name, .payload = job->payload, .size = size,
            .timeout_ms = timeout_ms, .retries = retries,
        };
        if (drv_persist_add (self->persist, &record) == -1)
            self->disk_failed = true;
    }
    return job;
}

void
drv_store_acked (drv_store_t *self, drv_job_t *job)
{
    if (job->acked || job->state < DROVER_JOB_SUCCEEDED)
        return;
    job->acked = true;
    job->delivered = true;
    if (self->persist && !job->dead && drv_persist_remove (self->persist, job->id) == -1)
        self->disk_failed = true;
}

int
drv_store_commit (drv_store_t *self, char *err, size_t err_size)
{
    if (!self->persist)
        return 0;
    if (self->disk_failed || drv_persist_commit (self->persist) == -1) {
        self->disk_failed = true;
        snprintf (err, err_size, "%s", drv_persist_error (self->persist));
        return -1;
    }
    return 0;
}

//  drv_persist_load_fn: one stored job back into memory.
typedef struct {
    drv_store_t *store;              //  the store being restored
    int64_t now_ms;                  //  restore time
    drv_store_restored_fn *restored; //  told of each job
    void *arg;                       //  its argument
} s_restore_t;

static int
s_restore_one (const drv_record_t *record, void *arg)
{
    s_restore_t *restore = (s_restore_t *) arg;
    drv_store_t *self = restore->store;
    drv_queue_t *queue = drv_store_queue (self, record->function);
    if (!queue || record->client_len > DRV_PEER_ID_MAX)
        return -1;
    drv_job_t *job = s_insert (self, queue, record->id, record->tag, record->client,
                               record->client_len, record->payload, record->size,
                               record->timeout_ms);
    if (!job)
        return -1;
    job->attempts = record->attempts;
    job->retries = record->retries;
    job->failures = record->failures;
    job->lost = record->lost;
    if (record->finished) {
        //  Finish in memory only: the record on disk has the result.
        drv_persist_t *persist = self->persist;
        self->persist = NULL;
        drv_store_finish (self, job, record->outcome, record->result, record->result_size,
                          record->reason, restore->now_ms);
        self->persist = persist;
    }
    if (restore->restored)
        restore->restored (job, restore->arg);
    return 0;
}

int
drv_store_attach (drv_store_t *self, const char *dir, int64_t now_ms,
                  drv_store_restored_fn *restored, void *arg, char *err, size_t err_size)
{
    assert (!self->persist);
    drv_persist_t *persist = drv_persist_open (dir, err, err_size);
    if (!persist)
        return -1;
    self->persist = persist;
    s_restore_t restore = {.store = self, .now_ms = now_ms, .restored = restored, .arg = arg};
    if (drv_persist_load (persist, s_restore_one, &restore) == -1) {
        snprintf (err, err_size, "cannot restore the jobs in %s: %s", dir,
                  drv_persist_error (persist));
        drv_persist_destroy (&self->persist);
        return -1;
    }
    self->next_id = drv_persist_max_id (persist) + 1;
    self->finished = 0;
    return 0;
}

drv_job_t *
drv_store_lookup (drv_store_t *self, uint64_t id)
{
    return (drv_job_t *) drv_index_find (self->jobs, drv_index_mix (id), s_id_match, &id);
}

drv_job_t *
drv_store_lease (drv_store_t *self, drv_queue_t *queue, void *worker)
{
    (void) self;
    drv_job_t *job = (drv_job_t *) zlistx_first (queue->jobs);
    if (!job)
        return NULL;
    zlistx_delete (queue->jobs, job->handle);
    job->handle = NULL;
    job->state = DROVER_JOB_RUNNING;
    job->worker = worker;
    job->attempts++;
    queue->running++;
    return job;
}

void
drv_store_requeue (drv_store_t *self, drv_job_t *job)
{
    (void) self;
    assert (job->state == DROVER_JOB_RUNNING);
    drv_heap_remove (self->due, &job->due_slot);
    job->queue->running--;
    job->state = DROVER_JOB_QUEUED;
    job->worker = NULL;
    job->handle = zlistx_add_start (job->queue->jobs, job);
    s_persist_counts (self, job);
}

int
drv_store_delay (drv_store_t *self, drv_job_t *job, int64_t due_ms)
{
    assert (job->state == DROVER_JOB_RUNNING);
    s_persist_counts (self, job);
    drv_heap_remove (self->due, &job->due_slot);
    if (drv_heap_push (self->due, job, due_ms, &job->due_slot) == -1)
        return -1;
    job->queue->running--;
    job->state = DROVER_JOB_QUEUED;
    job->worker = NULL;
    job->handle = NULL;             //  in no queue until due
    job->due_ms = due_ms;
    return 0;
}

int
drv_store_lease_until (drv_store_t *self, drv_job_t *job, int64_t due_ms)
{
    assert (job->state == DROVER_JOB_RUNNING);
    drv_heap_remove (self->due, &job->due_slot);
    job->due_ms = due_ms;
    return drv_heap_push (self->due, job, due_ms, &job->due_slot);
}

drv_job_t *
drv_store_pop_due (drv_store_t *self, int64_t now_ms)
{
    int64_t due;
    drv_job_t *job = (drv_job_t *) drv_heap_peek (self->due, &due);
    if (!job || due > now_ms)
        return NULL;
    drv_heap_pop (self->due);
    if (job->state == DROVER_JOB_QUEUED)
        job->handle = zlistx_add_end (job->queue->jobs, job);
    return job;
}

void
drv_store_finish (drv_store_t *self, drv_job_t *job, drover_outcome_t outcome,
                  const void *data, size_t size, const char *reason, int64_t now_ms)
{
    if (job->state == DROVER_JOB_RUNNING)
        job->queue->running--;
    else
    if (job->state == DROVER_JOB_QUEUED) {
        if (job->handle)            //  not when waiting for a retry
            zlistx_delete (job->queue->jobs, job->handle);
    }
    else
        return;                     //  finished already: first result wins
    drv_heap_remove (self->due, &job->due_slot);
    job->state = outcome == DROVER_OUTCOME_OK ? DROVER_JOB_SUCCEEDED : DROVER_JOB_FAILED;
    job->outcome = outcome;
    job->worker = NULL;
    job->dead = outcome != DROVER_OUTCOME_OK && outcome != DROVER_OUTCOME_CANCELLED;
    if (!job->dead) {
        self->bytes -= job->size;
        free (job->payload);
        job->payload = NULL;
        job->size = 0;
    }
    job->result = (uint8_t *) malloc (size ? size : 1);
    if (job->result && size)
        memcpy (job->result, data, size);
    job->result_size = job->result ? size : 0;
    job->reason = reason && *reason ? strdup (reason) : NULL;
    job->finished_ms = now_ms;
    if (self->persist
        && drv_persist_finish (self->persist, job->id, outcome, job->result, job->result_size,
                               job->reason ? job->reason : "") == -1)
        self->disk_failed = true;
    self->finished++;
    if (job->dead) {
        job->handle = zlistx_add_end (self->dead, job);
        if (zlistx_size (self->dead) > self->max_dead)
            drv_store_forget (self, (drv_job_t *) zlistx_first (self->dead));
    }
    else
        job->handle = zlistx_add_end (self->done, job);
}

void
drv_store_set_max_dead (drv_store_t *self, size_t max_dead)
{
    self->max_dead = max_dead;
}

size_t
drv_store_dead (drv_store_t *self, drv_job_t **jobs, size_t max)
{
    size_t count = 0;
    for (drv_job_t *job = (drv_job_t *) zlistx_first (self->dead); job && count < max;
         job = (drv_job_t *) zlistx_next (self->dead))
        jobs [count++] = job;
    return count;
}

void
drv_store_forget (drv_store_t *self, drv_job_t *job)
{
    if (job->state < DROVER_JOB_SUCCEEDED)
        return;
    zlistx_delete (job->dead ? self->dead : self->done, job->handle);
    if (job->payload)
        self->bytes -= job->size;
    if (self->persist && (!job->acked || job->dead)
        && drv_persist_remove (self->persist, job->id) == -1)
        self->disk_failed = true;
    drv_index_remove (self->tags, job);
    drv_index_remove (self->jobs, job);
    s_job_free (job);
}

int
drv_store_revive (drv_store_t *self, drv_job_t *job)
{
    if (!job->dead)
        return -1;
    if (self->persist) {
        //  On disk: the same job, unfinished, as at its submit.
        drv_record_t record = {
            .id = job->id, .tag = job->tag, .client = job->client,
            .client_len = job->client_len, .function = job->queue->name,
            .payload = job->payload, .size = job->size, .timeout_ms = job->timeout_ms,
            .attempts = job->attempts, .retries = job->retries,
        };
        if (drv_persist_remove (self->persist, job->id) == -1
            || drv_persist_add (self->persist, &record) == -1)
            self->disk_failed = true;
    }
    zlistx_delete (self->dead, job->handle);
    free (job->result);
    free (job->reason);
    job->result = NULL;
    job->reason = NULL;
    job->result_size = 0;
    job->dead = false;
    job->delivered = false;
    job->acked = false;
    job->failures = 0;
    job->lost = 0;
    job->outcome = 0;
    job->state = DROVER_JOB_QUEUED;
    job->handle = zlistx_add_end (job->queue->jobs, job);
    return 0;
}

size_t
drv_store_expire (drv_store_t *self, int64_t now_ms)
{
    size_t expired = 0;
    drv_job_t *job;
    while ((job = (drv_job_t *) zlistx_first (self->done))
           && job->finished_ms + self->keep_ms <= now_ms) {
        drv_store_forget (self, job);
        expired++;
    }
    return expired;
}

int64_t
drv_store_next_deadline (drv_store_t *self)
{
    drv_job_t *job = (drv_job_t *) zlistx_first (self->done);
    int64_t deadline = job ? job->finished_ms + self->keep_ms : -1;
    int64_t due;
    if (drv_heap_peek (self->due, &due) && (deadline < 0 || due < deadline))
        deadline = due;
    return deadline;
}

const char *
drv_queue_name (drv_queue_t *queue)
{
    return queue->name;
}

size_t
drv_queue_size (drv_queue_t *queue)
{
    return zlistx_size (queue->jobs);
}

size_t
drv_queue_running (drv_queue_t *queue)
{
    return queue->running;
}

size_t
drv_queue_workers (drv_queue_t *queue)
{
    return queue->workers;
}

void
drv_queue_set_workers (drv_queue_t *queue, size_t workers)
{
    queue->workers = workers;
}

size_t
drv_store_size (drv_store_t *self)
{
    return drv_index_size (self->jobs);
}

uint64_t
drv_store_submitted (drv_store_t *self)
{
    return self->submitted;
}

uint64_t
drv_store_finished (drv_store_t *self)
{
    return self->finished;
}
