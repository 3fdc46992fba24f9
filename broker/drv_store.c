/*  drv_store - the broker's jobs and per-function queues, in memory.

    Jobs live in one table keyed by id. A QUEUED job also sits in its
    queue: one FIFO list per priority in use (a level), the levels in a
    heap by priority, so the next job is the first of the top level and
    submit, lease and removal cost O(1) plus O(log levels) when a level
    comes or goes. A finished job sits in the done list, which is in
    finish order, so expiry only ever looks at its head (a deadline kept in
    data, no timer per job). The lists are drv_jobs_t, linked through the
    jobs themselves (for a follower: its leader's followers), so adding
    and removal are O(1) and allocate nothing. A job waiting for its time is in no list, only in the due heap.

    Ownership: the jobs table owns every job (its destructor frees them);
    the queues table owns the queues, a queue its levels; lists only point.
*/

#include "drv_store.h"
#include "drv_index.h"

#include "drv_heap.h"
#include "drv_persist.h"
#include "drv_util.h"

//  The QUEUED jobs of one priority in one queue.
typedef struct {
    int32_t priority;                //  of every job here
    drv_jobs_t jobs;                 //  oldest first
    size_t slot;                     //  place in the queue's levels heap
} s_level_t;

struct _drv_queue_t {
    char *name;                      //  function name
    zhashx_t *levels;                //  priority -> s_level_t, owns (freed by hand); none empty
    drv_heap_t *order;               //  the levels, highest priority on top
    s_level_t *spare;                //  an empty level kept for reuse, owned
    size_t queued;                   //  jobs in the levels
    size_t delayed;                  //  QUEUED jobs waiting for their time
    size_t running;                  //  jobs of this function RUNNING
    size_t workers;                  //  workers offering it (drv_sched's)
    uint32_t limit;                  //  RUNNING at most; 0: no limit
    bool paused;                     //  not dispatched
    size_t max_queue;                //  waiting at most; 0: the store's
    zhashx_t *unique;                //  unique key -> its QUEUED or RUNNING job
};

//  A job's unique key, and the jobs that follow it (leader) or the job
//  it follows (follower).
struct _drv_unique_t {
    char *key;                       //  the key
    drv_job_t *leader;               //  follower: the job it waits on
    drv_jobs_t followers;            //  leader: jobs waiting on it
};

struct _drv_store_t {
    drv_index_t *jobs;               //  by id; owns them
    zhashx_t *queues;                //  name -> drv_queue_t, owns them
    drv_index_t *tags;               //  by client and tag
    zhashx_t *frames;                //  framed jobs' id -> the zframe_t holding the payload
    drv_jobs_t done;                 //  finished jobs, oldest first
    drv_jobs_t dead;                 //  dead letters, oldest first
    size_t bytes;                    //  what jobs hold: s_job_bytes of each
    size_t max_bytes;                //  bytes held at most
    size_t max_queues;               //  distinct functions at most
    size_t max_dead;                 //  dead letters kept at most
    drv_heap_t *due;                 //  retry times and lease ends
    drv_persist_t *persist;          //  durable mode, or NULL
    bool disk_failed;                //  a write to persist failed
    uint64_t next_id;                //  id of the next job
    uint64_t low_id;                 //  every job below this id was forgotten (ids are not reused)
    uint32_t keep_ms;                //  how long finished jobs stay
    size_t max_queue;                //  jobs per queue at most
    uint64_t submitted;              //  jobs ever submitted
    uint64_t finished;               //  jobs ever finished
    zlistx_t *followed;              //  followers finished with their leader
    uint64_t outcomes [8];           //  jobs finished, by drover_outcome_t
    uint64_t commits;                //  durable commits that wrote something
    int64_t wall_offset;             //  wall clock minus now_ms's clock
};

//  What a job holds, as --max-bytes counts it: its payload while kept,
//  its result and reason, and DRV_STORE_JOB_BYTES for itself.
static size_t
s_job_bytes (const drv_job_t *job)
{
    return DRV_STORE_JOB_BYTES + (job->payload ? job->size : 0) + job->result_size
           + (job->reason ? strlen (job->reason) : 0);
}

//  Write a job's counts through to disk (they change on failure and loss).
static void
s_persist_counts (drv_store_t *self, drv_job_t *job)
{
    if (self->persist
        && drv_persist_counts (self->persist, job->id, job->attempts, job->failures, job->lost)
               == -1)
        self->disk_failed = true;
}

void
drv_jobs_add_start (drv_jobs_t *list, drv_job_t *job)
{
    assert (!job->listed);
    job->prev = NULL;
    job->next = list->first;
    if (list->first)
        list->first->prev = job;
    else
        list->last = job;
    list->first = job;
    list->size++;
    job->listed = true;
}

void
drv_jobs_add_end (drv_jobs_t *list, drv_job_t *job)
{
    assert (!job->listed);
    job->next = NULL;
    job->prev = list->last;
    if (list->last)
        list->last->next = job;
    else
        list->first = job;
    list->last = job;
    list->size++;
    job->listed = true;
}

void
drv_jobs_remove (drv_jobs_t *list, drv_job_t *job)
{
    assert (job->listed && list->size > 0);
    if (job->prev)
        job->prev->next = job->next;
    else
        list->first = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        list->last = job->prev;
    job->prev = job->next = NULL;
    list->size--;
    job->listed = false;
}

static void
s_unique_destroy (drv_unique_t **unique_p)
{
    drv_unique_t *unique = *unique_p;
    if (unique) {
        free (unique->key);
        free (unique);
        *unique_p = NULL;
    }
}

//  Let a job's payload go: its block, or its frame.
static void
s_payload_free (drv_store_t *self, drv_job_t *job)
{
    if (job->framed && self->frames)
        zhashx_delete (self->frames, drv_util_u64_key (job->id));
    else
        free (job->payload);
    job->payload = NULL;
    job->framed = false;
}

static void
s_job_free (drv_store_t *self, drv_job_t *job)
{
    s_unique_destroy (&job->unique);
    s_payload_free (self, job);
    free (job->result);
    free (job->reason);
    free (job);
}

//  The id index's hash: ids come in order (the store counts them), and
//  are looked up nearly in order (a Done's, an Ack's), so eight that
//  follow each other have slots side by side, one cache line, while the
//  groups of eight are spread as any hash spreads keys.
static uint64_t
s_id_hash_of (uint64_t id)
{
    return drv_index_mix (id >> 3) << 3 | (id & 7);
}

//  drv_index_hash_fn for the id index.
static uint64_t
s_id_hash (const void *item)
{
    return s_id_hash_of (((const drv_job_t *) item)->id);
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

//  32 bits, as a job keeps it (drv_job_t.tag_hash): enough for any
//  table's home slot.
static uint64_t
s_tag_hash_of (const uint8_t *client, size_t client_len, uint64_t tag)
{
    //  FNV-1a over the routing id, mixed with the tag.
    uint64_t hash = 14695981039346656037ull;
    for (size_t i = 0; i < client_len; i++)
        hash = (hash ^ client [i]) * 1099511628211ull;
    return (uint32_t) drv_index_mix (hash ^ tag);
}

static uint64_t
s_tag_hash (const void *item)
{
    return ((const drv_job_t *) item)->tag_hash;
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
s_level_destroy (void **item)
{
    s_level_t *level = (s_level_t *) *item;
    if (level) {
        free (level);
        *item = NULL;
    }
}

static void
s_queue_destroy (void **item)
{
    drv_queue_t *queue = (drv_queue_t *) *item;
    if (queue) {
        drv_heap_destroy (&queue->order);
        for (void *level = queue->levels ? zhashx_first (queue->levels) : NULL; level;
             level = zhashx_next (queue->levels))
            s_level_destroy (&level);
        zhashx_destroy (&queue->levels);
        void *spare = queue->spare;
        s_level_destroy (&spare);
        zhashx_destroy (&queue->unique);
        free (queue->name);
        free (queue);
        *item = NULL;
    }
}

//  zhashx destructor for the frames table.
static void
s_frame_destroy (void **item)
{
    zframe_destroy ((zframe_t **) item);
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
    self->frames = drv_util_u64_hash_new ();
    self->max_dead = 10000;
    self->max_bytes = (size_t) 1 << 30;
    self->max_queues = 10000;
    self->due = drv_heap_new ();
    self->followed = zlistx_new ();
    if (!self->jobs || !self->queues || !self->tags || !self->frames || !self->due
        || !self->followed) {
        drv_store_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->queues, s_queue_destroy);
    zhashx_set_destructor (self->frames, s_frame_destroy);
    self->next_id = 1;
    self->low_id = 1;
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
        zlistx_destroy (&self->followed);
        drv_heap_destroy (&self->due);
        drv_persist_destroy (&self->persist);
        drv_index_destroy (&self->tags);
        zhashx_destroy (&self->queues);
        if (self->jobs) {
            size_t cursor = 0;
            drv_job_t *job;
            while ((job = (drv_job_t *) drv_index_next (self->jobs, &cursor)))
                s_job_free (self, job);
        }
        drv_index_destroy (&self->jobs);
        zhashx_destroy (&self->frames);
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
    queue->levels = drv_util_u64_hash_new ();
    queue->order = drv_heap_new ();
    if (!queue->name || !queue->levels || !queue->order) {
        void *item = queue;
        s_queue_destroy (&item);
        return NULL;
    }
    zhashx_insert (self->queues, function, queue);
    return queue;
}

//  The levels table key of a priority: never 0.
static uint64_t
s_level_key (int32_t priority)
{
    return (uint64_t) (uint32_t) priority + 1;
}

//  The level of a priority, or NULL. The top level is the usual answer
//  (most queues use one priority), and needs no table lookup.
static s_level_t *
s_level_find (drv_queue_t *queue, int32_t priority)
{
    s_level_t *top = (s_level_t *) drv_heap_peek (queue->order, NULL);
    if (top && top->priority == priority)
        return top;
    return (s_level_t *) drv_util_u64_lookup (queue->levels, s_level_key (priority));
}

//  An emptied level leaves the heap and the table; the queue keeps one
//  as its spare.
static void
s_level_drop (drv_queue_t *queue, s_level_t *level)
{
    drv_heap_remove (queue->order, &level->slot);
    zhashx_delete (queue->levels, drv_util_u64_key (s_level_key (level->priority)));
    if (queue->spare) {
        void *item = level;
        s_level_destroy (&item);
    }
    else
        queue->spare = level;
}

//  Put a QUEUED job into its queue: at the head of its priority (a job
//  given back) or the tail. 0, or -1 if out of memory.
static int
s_enqueue (drv_job_t *job, bool at_head)
{
    drv_queue_t *queue = job->queue;
    uint64_t key = s_level_key (job->priority);
    s_level_t *level = s_level_find (queue, job->priority);
    if (!level) {
        //  A queue that keeps running dry reuses its last level rather
        //  than allocating one per job.
        level = queue->spare;
        queue->spare = NULL;
        if (!level && !(level = (s_level_t *) calloc (1, sizeof *level)))
            return -1;
        level->priority = job->priority;
        level->slot = DRV_HEAP_NONE;
        //  A min-heap: the highest priority has the smallest key.
        if (drv_heap_push (queue->order, level, -(int64_t) job->priority, &level->slot) == -1) {
            void *item = level;
            s_level_destroy (&item);
            return -1;
        }
        zhashx_insert (queue->levels, drv_util_u64_key (key), level);
    }
    if (at_head)
        drv_jobs_add_start (&level->jobs, job);
    else
        drv_jobs_add_end (&level->jobs, job);
    queue->queued++;
    return 0;
}

//  Take a QUEUED job out of its queue's levels; an empty level goes.
static void
s_dequeue (drv_job_t *job)
{
    drv_queue_t *queue = job->queue;
    s_level_t *level = s_level_find (queue, job->priority);
    assert (level && job->listed);
    drv_jobs_remove (&level->jobs, job);
    queue->queued--;
    if (level->jobs.size == 0)
        s_level_drop (queue, level);
}

//  A QUEUED job waits for due_ms, out of its queue. 0 or -1.
static int
s_wait_until (drv_store_t *self, drv_job_t *job, int64_t due_ms)
{
    if (drv_heap_push (self->due, job, due_ms, &job->due_slot) == -1)
        return -1;
    assert (!job->listed);
    job->due_ms = due_ms;
    job->queue->delayed++;
    return 0;
}

//  Is the job QUEUED and waiting for its time?
static bool
s_is_waiting (drv_job_t *job)
{
    return job->state == DROVER_JOB_QUEUED && job->due_slot != DRV_HEAP_NONE;
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

//  Finished jobs looked at at most, per call, for room.
#define S_EVICT_SCAN 10000

//  Is there room for bytes more?
static bool
s_room_for (drv_store_t *self, size_t bytes)
{
    return bytes <= self->max_bytes && self->bytes <= self->max_bytes - bytes;
}

bool
drv_store_can_hold (drv_store_t *self, const char *function, size_t bytes, char *err,
                    size_t err_size)
{
    //  Finished jobs whose clients have acknowledged their results are
    //  kept only for `drover status`: when room is short they go first,
    //  oldest first, before their --keep-results is up.
    drv_job_t *job = self->done.first;
    for (size_t looked = 0; job && looked < S_EVICT_SCAN && !s_room_for (self, bytes); looked++) {
        drv_job_t *next = job->next;
        if (job->acked)
            drv_store_forget (self, job);
        job = next;
    }
    if (!s_room_for (self, bytes)) {
        snprintf (err, err_size,
                  "queue full: the broker holds %zu bytes of jobs (payloads, results and %d "
                  "per job) and takes at most %zu; retry later or raise the broker's "
                  "--max-bytes",
                  self->bytes, DRV_STORE_JOB_BYTES, self->max_bytes);
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
    size_t queued = queue->queued + queue->delayed;
    size_t max = drv_store_max_queue (self, queue);
    if (queued + count <= max)
        return true;
    if (queue->max_queue)
        snprintf (err, err_size,
                  "queue full: '%s' holds %zu jobs and takes at most %zu; retry later or raise "
                  "its limit with drover max-queue",
                  queue->name, queued, max);
    else
        snprintf (err, err_size,
                  "queue full: '%s' holds %zu jobs and takes at most %zu; retry later or raise "
                  "the broker's --max-queue",
                  queue->name, queued, max);
    return false;
}

//  A new QUEUED job with this id, in the tables but in no queue yet.
//  The payload is copied, or adopted when owned is set (then it is the
//  job's, or freed if there is no job).
static drv_job_t *
s_insert (drv_store_t *self, drv_queue_t *queue, uint64_t id, uint64_t tag,
          const uint8_t *client, size_t client_len, const void *payload, size_t size,
          uint8_t *owned, zframe_t *frame, uint32_t timeout_ms)
{
    assert (client_len <= DRV_PEER_ID_MAX);
    drv_job_t *job = (drv_job_t *) calloc (1, sizeof *job);
    if (!job) {
        free (owned);
        zframe_destroy (&frame);
        return NULL;
    }
    //  A frame is kept as it is, under the job's id; an empty one is not
    //  worth keeping (its data may be NULL). Else the payload is copied
    //  (out of the frame too, if it could not be kept), or adopted.
    if (frame && size && zframe_size (frame) == size
        && zhashx_insert (self->frames, drv_util_u64_key (id), frame) == 0) {
        job->payload = zframe_data (frame);
        job->framed = true;
        frame = NULL;
        free (owned);
    }
    else {
        job->payload = owned ? owned : (uint8_t *) malloc (size ? size : 1);
        if (job->payload && size && !owned)
            memcpy (job->payload, payload, size);
    }
    zframe_destroy (&frame);
    if (!job->payload) {
        free (job);
        return NULL;
    }
    job->size = size;
    job->id = id;
    job->tag = tag;
    job->queue = queue;
    job->state = DROVER_JOB_QUEUED;
    job->timeout_ms = timeout_ms;
    job->client_len = (uint8_t) client_len;
    job->due_slot = DRV_HEAP_NONE;
    if (client_len)
        memcpy (job->client, client, client_len);
    job->tag_hash = (uint32_t) s_tag_hash_of (client, client_len, tag);
    if (drv_index_insert (self->jobs, job) == -1) {
        s_job_free (self, job);
        return NULL;
    }
    if (drv_index_insert (self->tags, job) == -1) {
        drv_index_remove (self->jobs, job);
        s_job_free (self, job);
        return NULL;
    }
    self->bytes += s_job_bytes (job);
    return job;
}

//  Take a job out of the tables again (a submit that could not be
//  completed); it was in no queue.
static void
s_uninsert (drv_store_t *self, drv_job_t *job)
{
    self->bytes -= s_job_bytes (job);
    drv_index_remove (self->tags, job);
    drv_index_remove (self->jobs, job);
    s_job_free (self, job);
}

//  Give a new job its unique key: it holds the key, or follows the job
//  of its queue that does. 0 or -1.
static int
s_take_unique (drv_job_t *job, const char *key)
{
    drv_queue_t *queue = job->queue;
    drv_unique_t *unique = (drv_unique_t *) calloc (1, sizeof *unique);
    if (!unique || !(unique->key = strdup (key))) {
        free (unique);
        return -1;
    }
    job->unique = unique;
    if (!queue->unique && !(queue->unique = zhashx_new ()))
        return -1;
    drv_job_t *leader = (drv_job_t *) zhashx_lookup (queue->unique, key);
    if (!leader)
        return zhashx_insert (queue->unique, key, job);
    drv_jobs_add_end (&leader->unique->followers, job);
    unique->leader = leader;
    return 0;
}

//  A job that finished (or became a dead letter again) gives up its key.
static void
s_release_unique (drv_job_t *job)
{
    if (job->unique && !job->unique->leader && job->queue->unique
        && zhashx_lookup (job->queue->unique, job->unique->key) == job)
        zhashx_delete (job->queue->unique, job->unique->key);
}

//  Put a new QUEUED job where it goes: after its leader, at its run-at
//  time, or in its queue. 0 or -1.
static int
s_place_new (drv_store_t *self, drv_job_t *job, const char *unique, int64_t run_at_ms)
{
    if (unique && *unique) {
        if (s_take_unique (job, unique) == -1)
            return -1;
        if (job->unique->leader)
            return 0;
    }
    if (run_at_ms > 0)
        return s_wait_until (self, job, run_at_ms);
    return s_enqueue (job, false);
}

drv_job_t *
drv_store_submit (drv_store_t *self, drv_queue_t *queue, uint64_t tag, const uint8_t *client,
                  size_t client_len, const void *payload, size_t size, uint32_t timeout_ms,
                  uint32_t retries)
{
    drv_submit_opts_t opts = {.timeout_ms = timeout_ms, .retries = retries};
    return drv_store_submit_opts (self, queue, tag, client, client_len, payload, size, &opts);
}

drv_job_t *
drv_store_submit_opts (drv_store_t *self, drv_queue_t *queue, uint64_t tag,
                       const uint8_t *client, size_t client_len, const void *payload,
                       size_t size, const drv_submit_opts_t *opts)
{
    drv_job_t *job = s_insert (self, queue, self->next_id, tag, client, client_len, payload,
                               size, opts->owned_payload, opts->owned_frame, opts->timeout_ms);
    if (!job)
        return NULL;
    job->retries = opts->retries;
    job->priority = opts->priority;
    job->detached = opts->detached;
    job->since_s = opts->now_ms > 0 ? (uint32_t) (opts->now_ms / 1000) : 0;
    job->chunk = opts->chunk;
    if (s_place_new (self, job, opts->unique, opts->run_at_ms) == -1) {
        if (job->unique && job->unique->leader)
            drv_jobs_remove (&job->unique->leader->unique->followers, job);
        else
            s_release_unique (job);
        s_uninsert (self, job);
        return NULL;
    }
    self->next_id++;
    self->submitted++;
    if (self->persist) {
        drv_record_t record = {
            .id = job->id, .tag = tag, .client = client, .client_len = client_len,
            .function = queue->name, .payload = job->payload, .size = size,
            .timeout_ms = opts->timeout_ms, .retries = opts->retries,
            .priority = opts->priority,
            .run_at = opts->run_at_ms > 0 ? opts->run_at_ms + self->wall_offset : 0,
            .unique = job->unique ? job->unique->key : NULL,
            .follower = job->unique && job->unique->leader,
            .detached = opts->detached,
            .chunk = opts->chunk,
        };
        if (drv_persist_add (self->persist, &record) == -1)
            self->disk_failed = true;
    }
    return job;
}

drv_job_t *
drv_store_find_unique (drv_store_t *self, drv_queue_t *queue, const char *key)
{
    (void) self;
    return key && queue->unique ? (drv_job_t *) zhashx_lookup (queue->unique, key) : NULL;
}

zframe_t *
drv_store_frame (drv_store_t *self, const drv_job_t *job)
{
    return job->framed ? (zframe_t *) zhashx_lookup (self->frames, drv_util_u64_key (job->id))
                       : NULL;
}

drv_job_t *
drv_store_leader (drv_job_t *job)
{
    return job->unique ? job->unique->leader : NULL;
}

void
drv_store_each_follower (drv_job_t *job, void (*fn) (drv_job_t *follower, void *arg), void *arg)
{
    if (!job->unique)
        return;
    for (drv_job_t *follower = job->unique->followers.first; follower; follower = follower->next)
        fn (follower, arg);
}

const char *
drv_store_unique_key (drv_job_t *job)
{
    return job->unique ? job->unique->key : NULL;
}

drv_job_t *
drv_store_followed (drv_store_t *self)
{
    drv_job_t *job = (drv_job_t *) zlistx_first (self->followed);
    if (job)
        zlistx_delete (self->followed, zlistx_cursor (self->followed));
    return job;
}

void
drv_store_set_wall_offset (drv_store_t *self, int64_t offset_ms)
{
    self->wall_offset = offset_ms;
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
    bool staged = drv_persist_staged (self->persist) > 0;
    if (self->disk_failed || drv_persist_commit (self->persist) == -1) {
        self->disk_failed = true;
        snprintf (err, err_size, "%s", drv_persist_error (self->persist));
        return -1;
    }
    self->commits += staged;
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
                               record->client_len, record->payload, record->size, NULL,
                               NULL, record->timeout_ms);
    if (!job)
        return -1;
    job->attempts = record->attempts;
    job->retries = record->retries;
    job->failures = record->failures;
    job->lost = record->lost;
    job->priority = record->priority;
    job->detached = record->detached;
    job->chunk = record->chunk;
    job->follower_done = record->finished && record->follower;
    job->since_s = restore->now_ms > 0 ? (uint32_t) (restore->now_ms / 1000) : 0;
    int rc = 0;
    if (record->finished) {
        if (record->unique)
            rc = (job->unique = (drv_unique_t *) calloc (1, sizeof (drv_unique_t))) != NULL
                         && (job->unique->key = strdup (record->unique)) != NULL
                     ? 0
                     : -1;
    }
    else {
        //  A follower whose leader is gone runs by itself: it has its
        //  payload. One whose leader is back follows it again (the
        //  leader's id is lower, so it was restored first).
        int64_t run_at = record->run_at ? record->run_at - self->wall_offset : 0;
        rc = s_place_new (self, job, record->unique, run_at > restore->now_ms ? run_at : 0);
    }
    if (rc == -1)
        return -1;
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

//  drv_persist_queue_fn: one queue's settings back into memory.
static int
s_restore_queue (const char *function, uint32_t limit, bool paused, uint64_t max_queue,
                 void *arg)
{
    drv_store_t *self = (drv_store_t *) arg;
    drv_queue_t *queue = drv_store_queue (self, function);
    if (!queue)
        return -1;
    queue->limit = limit;
    queue->paused = paused;
    queue->max_queue = (size_t) max_queue;
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
    if (drv_persist_load_queues (persist, s_restore_queue, self) == -1
        || drv_persist_load (persist, s_restore_one, &restore) == -1) {
        snprintf (err, err_size, "cannot restore the jobs in %s: %s", dir,
                  drv_persist_error (persist));
        drv_persist_destroy (&self->persist);
        return -1;
    }
    self->next_id = drv_persist_max_id (persist) + 1;
    self->low_id = 1;               //  restored jobs may have any id
    self->finished = 0;
    memset (self->outcomes, 0, sizeof self->outcomes);
    return 0;
}

drv_job_t *
drv_store_lookup (drv_store_t *self, uint64_t id)
{
    return (drv_job_t *) drv_index_find (self->jobs, s_id_hash_of (id), s_id_match, &id);
}

drv_job_t *
drv_store_lease (drv_store_t *self, drv_queue_t *queue, void *worker)
{
    (void) self;
    s_level_t *level = (s_level_t *) drv_heap_peek (queue->order, NULL);
    drv_job_t *job = level ? level->jobs.first : NULL;
    if (!job)
        return NULL;
    s_dequeue (job);
    job->state = DROVER_JOB_RUNNING;
    job->worker = worker;
    job->attempts++;
    queue->running++;
    return job;
}

drv_job_t *
drv_store_peek (drv_queue_t *queue)
{
    s_level_t *level = (s_level_t *) drv_heap_peek (queue->order, NULL);
    return level ? level->jobs.first : NULL;
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
    if (s_enqueue (job, true) == -1) {
        //  Out of memory: it waits for a moment instead of being lost.
        job->due_ms = 0;
        if (drv_heap_push (self->due, job, 0, &job->due_slot) == 0)
            job->queue->delayed++;
    }
    s_persist_counts (self, job);
}

int
drv_store_delay (drv_store_t *self, drv_job_t *job, int64_t due_ms)
{
    assert (job->state == DROVER_JOB_RUNNING);
    s_persist_counts (self, job);
    drv_heap_remove (self->due, &job->due_slot);
    if (s_wait_until (self, job, due_ms) == -1)
        return -1;
    job->queue->running--;
    job->state = DROVER_JOB_QUEUED;
    job->worker = NULL;
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
    if (job->state == DROVER_JOB_QUEUED) {
        job->queue->delayed--;
        if (s_enqueue (job, false) == -1) {
            //  Out of memory: try again in a second rather than lose it.
            s_wait_until (self, job, now_ms + 1000);
        }
    }
    return job;
}

void
drv_store_finish (drv_store_t *self, drv_job_t *job, drover_outcome_t outcome,
                  const void *data, size_t size, const char *reason, int64_t now_ms)
{
    drv_job_t *leader = drv_store_leader (job);
    if (job->state == DROVER_JOB_RUNNING)
        job->queue->running--;
    else
    if (job->state == DROVER_JOB_QUEUED) {
        if (leader) {
            //  A follower cancelled alone: it leaves its leader.
            drv_jobs_remove (&leader->unique->followers, job);
            job->unique->leader = NULL;
        }
        else
        if (s_is_waiting (job))
            job->queue->delayed--;
        else
        if (job->listed)            //  not a follower whose leader finished
            s_dequeue (job);
    }
    else
        return;                     //  finished already: first result wins
    drv_heap_remove (self->due, &job->due_slot);
    s_release_unique (job);
    self->bytes -= s_job_bytes (job);
    job->state = outcome == DROVER_OUTCOME_OK ? DROVER_JOB_SUCCEEDED : DROVER_JOB_FAILED;
    job->outcome = outcome;
    job->worker = NULL;
    //  A follower that fails is not a dead letter: its leader is.
    job->dead = outcome != DROVER_OUTCOME_OK && outcome != DROVER_OUTCOME_CANCELLED
                && !job->follower_done;
    if (!job->dead) {
        s_payload_free (self, job);
        job->size = 0;
    }
    job->result = (uint8_t *) malloc (size ? size : 1);
    if (job->result && size)
        memcpy (job->result, data, size);
    job->result_size = job->result ? size : 0;
    job->reason = reason && *reason ? strdup (reason) : NULL;
    self->bytes += s_job_bytes (job);
    job->finished_ms = now_ms;
    if (self->persist
        && drv_persist_finish (self->persist, job->id, outcome, job->result, job->result_size,
                               job->reason ? job->reason : "") == -1)
        self->disk_failed = true;
    self->finished++;
    self->outcomes [outcome < 8 ? outcome : 0]++;
    if (job->dead) {
        drv_jobs_add_end (&self->dead, job);
        if (self->dead.size > self->max_dead)
            drv_store_forget (self, self->dead.first);
    }
    else
        drv_jobs_add_end (&self->done, job);
    //  Its followers finish with it, with the same result.
    drv_job_t *follower;
    while (job->unique && (follower = job->unique->followers.first)) {
        drv_jobs_remove (&job->unique->followers, follower);
        follower->unique->leader = NULL;
        follower->attempts = job->attempts;
        follower->follower_done = true;
        drv_store_finish (self, follower, outcome, data, size, reason, now_ms);
        zlistx_add_end (self->followed, follower);
    }
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
    for (drv_job_t *job = self->dead.first; job && count < max; job = job->next)
        jobs [count++] = job;
    return count;
}

void
drv_store_forget (drv_store_t *self, drv_job_t *job)
{
    if (job->state < DROVER_JOB_SUCCEEDED)
        return;
    drv_jobs_remove (job->dead ? &self->dead : &self->done, job);
    self->bytes -= s_job_bytes (job);
    if (self->persist && (!job->acked || job->dead)
        && drv_persist_remove (self->persist, job->id) == -1)
        self->disk_failed = true;
    drv_index_remove (self->tags, job);
    drv_index_remove (self->jobs, job);
    s_job_free (self, job);
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
    drv_jobs_remove (&self->dead, job);
    self->bytes -= s_job_bytes (job);
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
    //  It holds its unique key again if no other job took it meanwhile.
    if (job->unique && job->queue->unique)
        zhashx_insert (job->queue->unique, job->unique->key, job);
    if (s_enqueue (job, false) == -1) {
        job->due_ms = 0;
        if (drv_heap_push (self->due, job, 0, &job->due_slot) == 0)
            job->queue->delayed++;
    }
    self->bytes += s_job_bytes (job);
    return 0;
}

size_t
drv_store_expire (drv_store_t *self, int64_t now_ms)
{
    size_t expired = 0;
    drv_job_t *job;
    while ((job = self->done.first)
           && job->finished_ms + self->keep_ms <= now_ms) {
        drv_store_forget (self, job);
        expired++;
    }
    return expired;
}

int64_t
drv_store_next_deadline (drv_store_t *self)
{
    drv_job_t *job = self->done.first;
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
    return queue->queued;
}

size_t
drv_queue_delayed (drv_queue_t *queue)
{
    return queue->delayed;
}

void
drv_store_configure (drv_store_t *self, drv_queue_t *queue, uint32_t limit, bool paused,
                     size_t max_queue)
{
    queue->limit = limit;
    queue->paused = paused;
    queue->max_queue = max_queue;
    if (self->persist
        && drv_persist_queue (self->persist, queue->name, limit, paused, max_queue) == -1)
        self->disk_failed = true;
}

uint32_t
drv_queue_limit (drv_queue_t *queue)
{
    return queue->limit;
}

bool
drv_queue_paused (drv_queue_t *queue)
{
    return queue->paused;
}

size_t
drv_queue_max_queue (drv_queue_t *queue)
{
    return queue->max_queue;
}

size_t
drv_store_max_queue (drv_store_t *self, drv_queue_t *queue)
{
    return queue->max_queue ? queue->max_queue : self->max_queue;
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

uint64_t
drv_store_finished_as (drv_store_t *self, drover_outcome_t outcome)
{
    return outcome >= 0 && outcome < 8 ? self->outcomes [outcome] : 0;
}

drv_job_t *
drv_store_next_job (drv_store_t *self, size_t *cursor)
{
    return (drv_job_t *) drv_index_next (self->jobs, cursor);
}

//  Move the low mark past the ids of forgotten jobs: each id once, ever.
static void
s_raise_low_id (drv_store_t *self)
{
    while (self->low_id < self->next_id && !drv_store_lookup (self, self->low_id))
        self->low_id++;
}

drv_job_t *
drv_store_next_by_id (drv_store_t *self, uint64_t *id, bool newest_first)
{
    if (*id == 0)
        s_raise_low_id (self);
    uint64_t at = newest_first ? (*id ? *id - 1 : self->next_id - 1)
                               : (*id ? *id + 1 : self->low_id);
    //  low_id is at least 1, so a walk down stops before it wraps.
    while (at >= self->low_id && at < self->next_id) {
        drv_job_t *job = drv_store_lookup (self, at);
        if (job) {
            *id = at;
            return job;
        }
        at = newest_first ? at - 1 : at + 1;
    }
    return NULL;
}

uint64_t
drv_store_id_span (drv_store_t *self)
{
    s_raise_low_id (self);
    return self->next_id - self->low_id;
}

drv_queue_t *
drv_store_first_queue (drv_store_t *self)
{
    return (drv_queue_t *) zhashx_first (self->queues);
}

drv_queue_t *
drv_store_next_queue (drv_store_t *self)
{
    return (drv_queue_t *) zhashx_next (self->queues);
}

size_t
drv_store_queues (drv_store_t *self)
{
    return zhashx_size (self->queues);
}

size_t
drv_store_dead_count (drv_store_t *self)
{
    return self->dead.size;
}

bool
drv_store_is_delayed (drv_job_t *job)
{
    return s_is_waiting (job);
}

uint64_t
drv_store_commits (drv_store_t *self)
{
    return self->commits;
}
