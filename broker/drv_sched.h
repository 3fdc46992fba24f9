/*  drv_sched - which worker runs which job: the broker's policy.

    Workers announce the functions they offer and how many slots they
    have; each slot is one credit. A job is dispatched only to a worker
    that offers its function and has a free credit, so a worker never has
    more jobs in flight than its slots. Free jobs are dealt one at a time
    round the hungry workers, so a batch spreads over the cluster; each
    worker takes its functions' queues in turn.

    Pure policy over drv_store: no sockets, no clock. Every change of a
    RUNNING job goes through here, because a RUNNING job's handle is its
    place in its worker's list.
*/

#ifndef DRV_SCHED_H_INCLUDED
#define DRV_SCHED_H_INCLUDED

#include "drv_store.h"

typedef struct _drv_sched_t drv_sched_t;
typedef struct _drv_peer_t drv_peer_t;

//  Told of one worker's new jobs; the jobs array is borrowed for the call.
typedef void (drv_sched_emit_fn) (drv_peer_t *peer, drv_job_t **jobs, size_t count, void *arg);

//  A scheduler over store (borrowed; must outlive it).
drv_sched_t *drv_sched_new (drv_store_t *store);

//  How many times a job may lose its worker and be dispatched again
//  (default 5); past that it fails with DROVER_OUTCOME_LOST, so a job
//  that kills its workers cannot loop for ever.
void drv_sched_set_max_lost (drv_sched_t *self, uint32_t max_lost);

//  The next job that failed because it lost its worker too often, or
//  NULL. The store holds it, finished; its result is for its client.
drv_job_t *drv_sched_given_up (drv_sched_t *self);

//  Destroy every worker record (their jobs stay in the store) and NULL
//  the pointer.
void drv_sched_destroy (drv_sched_t **self_p);

//  A worker announced itself. A worker already known by this identity
//  is first removed (its running jobs requeued). NULL if out of memory.
drv_peer_t *drv_sched_ready (drv_sched_t *self, const uint8_t *identity, size_t identity_len,
                             const char *name, const char *const *functions, size_t nfunctions,
                             uint32_t slots, int64_t now_ms);

//  The worker runs chunked jobs (drv_job_t.chunk; it said so in its
//  Ready). A worker that does not is never given one: it takes nothing
//  from a queue while a chunked job is at its head.
void drv_sched_set_chunks (drv_peer_t *peer, bool chunks);

//  The worker takes payloads in frames of their own (it said so in its
//  Ready); drv_peer_frames tells. The scheduler does not look at it.
void drv_sched_set_frames (drv_peer_t *peer, bool frames);
bool drv_peer_frames (const drv_peer_t *peer);

//  The worker with this routing identity, or NULL.
drv_peer_t *drv_sched_find (drv_sched_t *self, const uint8_t *identity, size_t identity_len);

//  The worker is gone at now_ms: its running jobs go back to the head of
//  their queues (or fail, past the loss limit: drv_sched_given_up) and the
//  record is destroyed. Returns how many jobs were requeued.
size_t drv_sched_remove (drv_sched_t *self, drv_peer_t **peer_p, int64_t now_ms);

//  Told of a worker about to be dropped for silence, with the number of
//  its jobs that went back to their queues.
typedef void (drv_sched_gone_fn) (drv_peer_t *peer, size_t requeued, void *arg);

//  Remove every worker last seen before deadline_ms, at now_ms, as
//  drv_sched_remove does; gone (may be NULL) is told of each first.
//  Returns how many went.
size_t drv_sched_expire (drv_sched_t *self, int64_t deadline_ms, int64_t now_ms,
                         drv_sched_gone_fn *gone, void *arg);

//  The worker finished job_id: returns the job, still RUNNING, with its
//  credit returned, for the caller to finish in the store. NULL when the
//  job is not running on this worker (a late or stray result).
drv_job_t *drv_sched_complete (drv_sched_t *self, drv_peer_t *peer, uint64_t job_id);

//  Deal queued jobs to workers with free credit; emit is called once per
//  worker that got any. Returns how many jobs were dispatched.
size_t drv_sched_dispatch (drv_sched_t *self, drv_sched_emit_fn *emit, void *arg);

//  Number of workers registered.
size_t drv_sched_size (drv_sched_t *self);

//  A worker's routing identity (borrowed) and its length.
const uint8_t *drv_peer_identity (drv_peer_t *peer, size_t *length);

//  A worker's name, slots, and jobs in flight.
const char *drv_peer_name (drv_peer_t *peer);
uint32_t drv_peer_slots (drv_peer_t *peer);
uint32_t drv_peer_inflight (drv_peer_t *peer);

//  When the worker announced itself (its Ready), on now_ms's clock.
int64_t drv_peer_since (drv_peer_t *peer);

//  Tasks the worker finished since its Ready; the broker counts them.
uint64_t drv_peer_done (drv_peer_t *peer);
void drv_peer_add_done (drv_peer_t *peer, uint64_t count);

//  The functions a worker offers: how many, and the name of one
//  (borrowed; NULL past the end).
size_t drv_peer_functions (drv_peer_t *peer);
const char *drv_peer_function (drv_peer_t *peer, size_t index);

//  Walk the workers, in no order: the first, then the next, or NULL at
//  the end. The scheduler must not change meanwhile.
drv_peer_t *drv_sched_first (drv_sched_t *self);
drv_peer_t *drv_sched_next (drv_sched_t *self);

//  When the worker was last heard from; the broker sets it.
int64_t drv_peer_last_seen (drv_peer_t *peer);
void drv_peer_set_last_seen (drv_peer_t *peer, int64_t now_ms);

#endif
