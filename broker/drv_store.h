/*  drv_store - the broker's jobs and per-function queues, in memory.

    The store owns every job from submit until it expires after finishing,
    and one queue per function name: higher priorities first, FIFO within
    a priority. A job may wait for its time (a delay, a retry) before it
    joins its queue, and a job with a unique key may follow another that
    holds the key, finishing with its result. Each queue has settings
    (a limit on running jobs, paused, a queue length) that drv_sched obeys. It knows nothing of workers,
    sockets or time sources: callers pass now_ms. Policy (who runs what)
    lives in drv_sched; the network in drv_broker.

    Durable mode (drv_store_attach) writes through to drv_persist: every
    submit, result, acknowledgement and expiry is staged there, and
    drv_store_commit makes the staged changes durable at once (group
    commit). Callers acknowledge submits only after it returns 0.
*/

#ifndef DRV_STORE_H_INCLUDED
#define DRV_STORE_H_INCLUDED

#include <czmq.h>

#include "drover.h"

//  Longest client routing id the broker keeps with a job, in bytes.
#define DRV_PEER_ID_MAX 32

typedef struct _drv_store_t drv_store_t;
typedef struct _drv_queue_t drv_queue_t;
typedef struct _drv_unique_t drv_unique_t;

typedef struct _drv_job_t drv_job_t;

//  One job. A plain record: the store owns it, other modules read its
//  fields and change its state only through drv_store_* calls.
struct _drv_job_t {
    //  Ordered by size, to pack: a million queued jobs is the design
    //  load, and every byte here is a megabyte there.
    uint64_t id;                     //  unique while this broker runs
    uint64_t tag;                    //  the submitting client's tag
    drv_queue_t *queue;              //  its function's queue
    uint8_t *payload;                //  input; freed once the job finishes
    size_t size;                     //  bytes in payload
    int64_t due_ms;                  //  retry time (QUEUED) or lease end (RUNNING)
    size_t due_slot;                 //  its place in the store's deadlines
    void *worker;                    //  drv_sched's worker while RUNNING
    drv_job_t *prev;                 //  its neighbours in the one drv_jobs_t list
    drv_job_t *next;                 //  that holds it (see below), or NULL
    uint8_t *result;                 //  output once finished (OK)
    size_t result_size;              //  bytes in result
    char *reason;                    //  failure reason once finished, or NULL
    int64_t finished_ms;             //  when it finished
    drv_unique_t *unique;            //  its unique key and followers, or NULL
    uint32_t timeout_ms;             //  task timeout; 0: none
    uint32_t attempts;               //  times dispatched
    int32_t priority;                //  higher is dispatched first
    uint32_t since_s;                //  now_ms / 1000 when submitted or restored (views)
    uint16_t retries;                //  failed attempts it may be retried after (<= 1000)
    uint16_t failures;               //  attempts that failed so far
    uint16_t lost;                   //  times its worker was lost while running it
    uint8_t state;                   //  drover_state_t: QUEUED, RUNNING, SUCCEEDED, FAILED
    uint8_t outcome;                 //  drover_outcome_t, once finished
    bool delivered : 1;              //  result sent to its client
    bool acked : 1;                  //  the client said it has the result
    bool dead : 1;                   //  failed for good: in the dead-letter list
    bool detached : 1;               //  its client does not take the result
    bool follower_done : 1;          //  finished with its leader's result
    bool in_outbox : 1;              //  its id waits in its client's outbox (drv_broker)
    bool progress : 1;               //  its client asked for its progress reports (drv_broker)
    bool chunk : 1;                  //  payload is an encoded Chunk: for workers that run them
    bool framed : 1;                 //  payload is the data of a frame the store keeps as it
                                     //  came (drv_store_frame), not a malloc'd block
    bool listed : 1;                 //  in a drv_jobs_t list
    uint8_t client_len;              //  bytes in client
    uint8_t client [DRV_PEER_ID_MAX]; //  submitting client's routing id
    uint32_t tag_hash;               //  hash of (client, tag) in the tag index,
                                     //  kept: its tables grow without
                                     //  hashing every routing id again
};

//  A list of jobs linked through the jobs' own prev and next: adding and
//  removing one allocates nothing, where a list node would cost a job 48
//  bytes and a malloc. A job is in at most one at a time, by its state:
//  QUEUED in its queue (or its leader's followers), RUNNING in its
//  worker's (drv_sched), finished in the done or the dead list. A list
//  starts zeroed.
typedef struct {
    drv_job_t *first;
    drv_job_t *last;
    size_t size;
} drv_jobs_t;

//  Add a job that is in no list, at the start or the end.
void drv_jobs_add_start (drv_jobs_t *list, drv_job_t *job);
void drv_jobs_add_end (drv_jobs_t *list, drv_job_t *job);

//  Take a job out of the list that holds it.
void drv_jobs_remove (drv_jobs_t *list, drv_job_t *job);

//  A store whose finished jobs stay queryable for keep_ms, and whose
//  queues take at most max_queue jobs each.
drv_store_t *drv_store_new (uint32_t keep_ms, size_t max_queue);

//  Destroy the store, every job and queue, and NULL the pointer.
void drv_store_destroy (drv_store_t **self_p);

//  Told of each job restored from disk by drv_store_attach.
typedef void (drv_store_restored_fn) (drv_job_t *job, void *arg);

//  Make the store durable in directory dir and restore the queue
//  settings and jobs kept there: unfinished ones are QUEUED again (in id
//  order; a delayed one waits for its time still), finished ones wait
//  for delivery; restored (may be NULL) is told of each. New ids
//  continue after every id the directory has seen. -1 with a reason in
//  err if dir cannot be used (it says what to do).
int drv_store_attach (drv_store_t *self, const char *dir, int64_t now_ms,
                      drv_store_restored_fn *restored, void *arg, char *err, size_t err_size);

//  Make every change since the last commit durable (one fsync). 0 when
//  done or when the store is not durable; -1 if the disk failed, with a
//  reason in err: the caller must not acknowledge anything more.
int drv_store_commit (drv_store_t *self, char *err, size_t err_size);

//  The client has the job's result: forget it on disk (unless it is a
//  dead letter, which stays until purged).
void drv_store_acked (drv_store_t *self, drv_job_t *job);

//  Dead letters are jobs that failed for good (any outcome but OK and
//  CANCELLED): they keep their payload and do not expire; the oldest go
//  when there are more than max_dead (default 10,000).
void drv_store_set_max_dead (drv_store_t *self, size_t max_dead);

//  Up to max dead letters, oldest first, into jobs; returns how many.
size_t drv_store_dead (drv_store_t *self, drv_job_t **jobs, size_t max);

//  Queue a dead letter again, at the tail of its queue, with its retries
//  renewed. 0, or -1 if it is not a dead letter or out of memory.
int drv_store_revive (drv_store_t *self, drv_job_t *job);

//  Forget a finished job now (purging a dead letter).
void drv_store_forget (drv_store_t *self, drv_job_t *job);

//  The queue for function, created if it does not exist.
drv_queue_t *drv_store_queue (drv_store_t *self, const char *function);

//  The queue for function, or NULL.
drv_queue_t *drv_store_find_queue (drv_store_t *self, const char *function);

//  Bounds on what the store holds: bytes of all jobs (payloads while
//  kept, results, reasons, and DRV_STORE_JOB_BYTES each), and distinct
//  functions. Defaults: 1 GiB and 10,000.
void drv_store_set_limits (drv_store_t *self, size_t max_bytes, size_t max_queues);

//  What the store counts against max_bytes for each job beyond its
//  payload, result and reason: the job's own memory (its record and
//  index entries take about 230 bytes; bench/run's memory check and
//  test_hostile measure).
#define DRV_STORE_JOB_BYTES 512

//  Can `bytes` more be held (payloads plus DRV_STORE_JOB_BYTES per job),
//  and, if function has no queue yet, one more queue be made? Finished
//  jobs whose results were acknowledged are forgotten early to make room.
//  On no, why in err.
bool drv_store_can_hold (drv_store_t *self, const char *function, size_t bytes, char *err,
                         size_t err_size);

//  Bytes held now: payloads, results and reasons, and DRV_STORE_JOB_BYTES
//  per job.
size_t drv_store_bytes (drv_store_t *self);

//  Can `count` more jobs join this queue (waiting ones, queued or
//  delayed, count)? On no, why in err.
bool drv_store_can_accept (drv_store_t *self, drv_queue_t *queue, size_t count, char *err,
                           size_t err_size);

//  A new QUEUED job at the tail of queue, which may be retried `retries`
//  times; the payload is copied. NULL if out of memory.
drv_job_t *drv_store_submit (drv_store_t *self, drv_queue_t *queue, uint64_t tag,
                             const uint8_t *client, size_t client_len, const void *payload,
                             size_t size, uint32_t timeout_ms, uint32_t retries);

//  How a job is to be run, beyond its payload; zero is the default.
typedef struct {
    uint32_t timeout_ms;             //  task timeout; 0: none
    uint32_t retries;                //  failed attempts it may be retried after
    int32_t priority;                //  higher is dispatched first
    int64_t run_at_ms;               //  not queued before this (now_ms's clock); 0: at once
    const char *unique;              //  unique key, or NULL
    bool detached;                   //  its client does not take the result
    uint8_t *owned_payload;          //  malloc'd block holding the payload, taken
                                     //  instead of a copy (freed if no job); or NULL
    zframe_t *owned_frame;           //  or a frame holding it (a payload frame as it
                                     //  came), taken likewise; the job is then framed
    int64_t now_ms;                  //  now, for the job's age in views
    bool chunk;                      //  the payload is an encoded Chunk
} drv_submit_opts_t;

//  A new QUEUED job, as drv_store_submit, with opts. It joins its queue
//  at its priority's tail, or at run_at_ms (drv_store_pop_due). With a
//  unique key that a QUEUED or RUNNING job of this queue holds, the new
//  job follows that one instead: it runs nowhere and finishes with its
//  leader's result (drv_store_followed). NULL if out of memory.
drv_job_t *drv_store_submit_opts (drv_store_t *self, drv_queue_t *queue, uint64_t tag,
                                  const uint8_t *client, size_t client_len, const void *payload,
                                  size_t size, const drv_submit_opts_t *opts);

//  The frame that holds a framed job's payload (borrowed: the store
//  destroys it when the job lets its payload go), or NULL if the job is
//  not framed. Send it with ZFRAME_REUSE: libzmq then shares its data.
zframe_t *drv_store_frame (drv_store_t *self, const drv_job_t *job);

//  The QUEUED or RUNNING job of queue that holds this unique key, or NULL.
drv_job_t *drv_store_find_unique (drv_store_t *self, drv_queue_t *queue, const char *key);

//  The job this one follows (same unique key), or NULL.
drv_job_t *drv_store_leader (drv_job_t *job);

//  Call fn (follower, arg) for each job that follows job (same unique
//  key) while it is QUEUED or RUNNING.
void drv_store_each_follower (drv_job_t *job, void (*fn) (drv_job_t *follower, void *arg),
                              void *arg);

//  The job's unique key, or NULL. Borrowed.
const char *drv_store_unique_key (drv_job_t *job);

//  The next follower that finished because its leader did, or NULL; its
//  result is for its client, as any finished job's.
drv_job_t *drv_store_followed (drv_store_t *self);

//  Wall clock minus the clock of now_ms, in ms, so that durable mode
//  keeps run-at times across a restart; set before drv_store_attach.
void drv_store_set_wall_offset (drv_store_t *self, int64_t offset_ms);

//  The job with this id, or NULL (never existed, or expired).
drv_job_t *drv_store_lookup (drv_store_t *self, uint64_t id);

//  The job this client submitted with this tag, while the store holds
//  it; NULL if none.
drv_job_t *drv_store_find_tag (drv_store_t *self, const uint8_t *client, size_t client_len,
                               uint64_t tag);

//  Take the job at the head of queue (its highest priority's oldest), or
//  NULL if empty: it becomes RUNNING on worker, with one more attempt.
//  Settings are drv_sched's to obey; lease does not look at them.
drv_job_t *drv_store_lease (drv_store_t *self, drv_queue_t *queue, void *worker);

//  The job at the head of queue, that drv_store_lease would take next,
//  or NULL if empty.
drv_job_t *drv_store_peek (drv_queue_t *queue);

//  Put a RUNNING job back at the head of its queue, ahead of its
//  priority (its worker left).
void drv_store_requeue (drv_store_t *self, drv_job_t *job);

//  A RUNNING job failed and waits to be retried: QUEUED, but joins the
//  tail of its queue only at due_ms (drv_store_pop_due). 0 or -1.
int drv_store_delay (drv_store_t *self, drv_job_t *job, int64_t due_ms);

//  A RUNNING job's lease ends at due_ms: drv_store_pop_due returns it then
//  if it is still running. 0 or -1.
int drv_store_lease_until (drv_store_t *self, drv_job_t *job, int64_t due_ms);

//  The next job whose run-at time, retry time or lease end is at or
//  before now_ms, or NULL. A QUEUED one is back at the tail of its
//  queue; a RUNNING one's lease has ended, and it is the caller's to deal
//  with.
drv_job_t *drv_store_pop_due (drv_store_t *self, int64_t now_ms);

//  Finish a RUNNING or QUEUED job: SUCCEEDED if outcome is OK, else
//  FAILED; data and reason are copied. Its payload is freed.
void drv_store_finish (drv_store_t *self, drv_job_t *job, drover_outcome_t outcome,
                       const void *data, size_t size, const char *reason, int64_t now_ms);

//  Forget finished jobs older than keep_ms. Returns how many went.
size_t drv_store_expire (drv_store_t *self, int64_t now_ms);

//  The soonest deadline in the store (a finished job's expiry, a retry,
//  a lease end), or -1 if there is none.
int64_t drv_store_next_deadline (drv_store_t *self);

//  The queue's function name (borrowed).
const char *drv_queue_name (drv_queue_t *queue);

//  Jobs waiting in the queue.
size_t drv_queue_size (drv_queue_t *queue);

//  Jobs of this queue waiting for their time (a delay or a retry).
size_t drv_queue_delayed (drv_queue_t *queue);

//  Change a queue's settings, on disk too in durable mode: at most limit
//  jobs RUNNING at once (0: no limit), paused (queued, not dispatched),
//  at most max_queue waiting (0: the store's).
void drv_store_configure (drv_store_t *self, drv_queue_t *queue, uint32_t limit, bool paused,
                          size_t max_queue);

//  A queue's settings, as drv_store_configure set them.
uint32_t drv_queue_limit (drv_queue_t *queue);
bool drv_queue_paused (drv_queue_t *queue);
size_t drv_queue_max_queue (drv_queue_t *queue);

//  The queue length in force for queue: its own, or the store's.
size_t drv_store_max_queue (drv_store_t *self, drv_queue_t *queue);

//  Jobs of this queue now RUNNING.
size_t drv_queue_running (drv_queue_t *queue);

//  Per-queue slot for drv_sched: the workers offering this function.
size_t drv_queue_workers (drv_queue_t *queue);
void drv_queue_set_workers (drv_queue_t *queue, size_t workers);

//  Jobs the store holds, in any state.
size_t drv_store_size (drv_store_t *self);

//  Jobs ever submitted and ever finished.
uint64_t drv_store_submitted (drv_store_t *self);
uint64_t drv_store_finished (drv_store_t *self);

//  Jobs finished with this outcome since the store was made (restored
//  ones do not count).
uint64_t drv_store_finished_as (drv_store_t *self, drover_outcome_t outcome);

//  Walk the jobs, in no order: start with *cursor = 0; each call returns
//  the next job, or NULL at the end. The store must not change meanwhile.
drv_job_t *drv_store_next_job (drv_store_t *self, size_t *cursor);

//  Walk the jobs in id order, oldest first or newest first, without a
//  scan: start with *id = 0; each call returns the next job and sets *id
//  to its id, or returns NULL at the end. Ids are never reused, so a
//  walk passes over each forgotten job's id with one lookup; below the
//  oldest job's id the store keeps a mark (moved up as jobs are
//  forgotten), so a walk never passes over those. The store may change
//  between calls; a job submitted meanwhile is met only oldest first.
drv_job_t *drv_store_next_by_id (drv_store_t *self, uint64_t *id, bool newest_first);

//  How many ids a walk in id order passes over at most: from the oldest
//  job's to the newest id given out (0 without jobs).
uint64_t drv_store_id_span (drv_store_t *self);

//  Walk the queues, in no order: the first, then the next, or NULL at the
//  end. The store must not change meanwhile.
drv_queue_t *drv_store_first_queue (drv_store_t *self);
drv_queue_t *drv_store_next_queue (drv_store_t *self);

//  Function queues, and dead letters, held now.
size_t drv_store_queues (drv_store_t *self);
size_t drv_store_dead_count (drv_store_t *self);

//  Is the job waiting for its time (a delay, a retry backoff)?
bool drv_store_is_delayed (drv_job_t *job);

//  Durable mode: commits that wrote something (each one fsync).
uint64_t drv_store_commits (drv_store_t *self);

#endif
