/*  drv_persist - the broker's durable record of jobs, for --data DIR.

    One SQLite database, DIR/jobs.db, in WAL mode with synchronous=FULL.
    The broker stages changes as events come (add, finish, attempts,
    remove) and calls drv_persist_commit once per burst of events: every
    staged change goes to disk in one transaction with one fsync (group
    commit), and a submit is acknowledged only after commit returns 0.
    At startup drv_persist_load hands back every stored job.

    It is not the job store: it holds no queues and makes no decisions,
    knows nothing of sockets, workers, the scheduler or the clock. It is
    not thread-safe: one broker thread uses it. While open, it holds the
    database locked, so a second broker on the same DIR is refused.
*/

#ifndef DRV_PERSIST_H_INCLUDED
#define DRV_PERSIST_H_INCLUDED

#include <czmq.h>

#include "drover.h"

typedef struct _drv_persist_t drv_persist_t;

//  One job as stored. Pointers are borrowed (for add/finish) or valid
//  only during a load callback; on load they are never NULL.
typedef struct {
    uint64_t id;                 //  the broker's job id
    uint64_t tag;                //  the client's tag
    const uint8_t *client;       //  submitting client's routing id
    size_t client_len;           //  bytes in client (<= 255)
    const char *function;        //  function name
    const uint8_t *payload;      //  input
    size_t size;                 //  bytes in payload
    uint32_t timeout_ms;         //  task timeout
    uint32_t attempts;           //  dispatches so far (as of last write)
    uint32_t retries;            //  failed attempts it may be retried after
    uint32_t failures;           //  failed attempts so far (as of last write)
    uint32_t lost;               //  times it lost its worker (as of last write)
    bool finished;               //  the job has a result
    drover_outcome_t outcome;    //  when finished
    const uint8_t *result;       //  output when finished
    size_t result_size;          //  bytes in result
    const char *reason;          //  failure reason when finished ("" if none)
    int32_t priority;            //  higher is dispatched first
    int64_t run_at;              //  not dispatched before this, wall-clock ms; 0: at once
    const char *unique;          //  unique key, or NULL
    bool follower;               //  it followed another job with its key at submit
    bool detached;               //  its client does not take the result
    bool chunk;                  //  its payload is an encoded Chunk (map chunk size)
} drv_record_t;

//  Open (creating if needed) the store in directory dir (created if missing, mode 0700).
//  A store of schema version 1 is migrated to version 2 (job priority, run-at time,
//  unique key, flags; queue settings) in one transaction.
//  NULL with a reason in err on failure; on corruption the reason says what to do, e.g.
//  "drover: the job store in DIR is corrupt (...): move DIR aside to start empty, or
//  restore it from a backup". Refused too: a store another process has open, an unknown
//  schema version, another program's database.
drv_persist_t *drv_persist_open (const char *dir, char *err, size_t err_size);

//  Close and NULL the pointer; staged changes not committed are lost (as in a crash).
void drv_persist_destroy (drv_persist_t **self_p);

//  Stage a new job (finished=false). 0 or -1. Every field is stored as given; the id must
//  be new and 1..INT64_MAX.
//
//  The staging calls (add, finish, attempts, remove) return -1 for two reasons. A caller's
//  error (duplicate or unknown id, invalid record) changes nothing: what was staged before
//  stays staged. A disk error (full, I/O) fails the store as a failed commit does.
int drv_persist_add (drv_persist_t *self, const drv_record_t *job);

//  Stage a job's result (it stays until removed). The payload is dropped
//  unless the job failed (not OK, not cancelled): a dead letter keeps it
//  so that it can be retried. 0 or -1. The payload is dropped, as
//  drv_store frees it at finish: a finished job loads with an empty payload.
int drv_persist_finish (drv_persist_t *self, uint64_t id, drover_outcome_t outcome,
                        const void *result, size_t size, const char *reason);

//  Stage a new attempt count for a job (cheap; used before dispatch). 0 or -1.
int drv_persist_attempts (drv_persist_t *self, uint64_t id, uint32_t attempts);

//  Stage a job's counts: attempts, failed attempts, lost workers. 0 or -1.
int drv_persist_counts (drv_persist_t *self, uint64_t id, uint32_t attempts, uint32_t failures,
                        uint32_t lost);

//  Stage forgetting a job (its result was delivered, or it expired). 0 or -1.
int drv_persist_remove (drv_persist_t *self, uint64_t id);

//  Stage one function's queue settings (all zero: the defaults, and the
//  row goes). 0 or -1.
int drv_persist_queue (drv_persist_t *self, const char *function, uint32_t limit, bool paused,
                       uint64_t max_queue);

//  Call fn for every function's stored queue settings (fn returns 0 to
//  go on, -1 to stop: then load returns -1). For startup.
typedef int (drv_persist_queue_fn) (const char *function, uint32_t limit, bool paused,
                                    uint64_t max_queue, void *arg);
int drv_persist_load_queues (drv_persist_t *self, drv_persist_queue_fn *fn, void *arg);

//  Make every staged change durable: one transaction, one fsync. 0 when on disk; -1 on any
//  error (disk full, I/O error, fsync failure): the caller must stop acknowledging and exit;
//  the reason is in drv_persist_error. A commit with nothing staged returns 0 at once
//  without touching the disk. After a disk error every later call returns -1 too: an fsync
//  that failed once cannot be trusted again; the next start recovers from the log.
int drv_persist_commit (drv_persist_t *self);

//  Staged changes not yet committed.
size_t drv_persist_staged (drv_persist_t *self);

//  Call fn for every stored job in id order (fn returns 0 to go on, -1 to stop: then load
//  returns -1). For startup; fn must not call back into the store.
typedef int (drv_persist_load_fn) (const drv_record_t *job, void *arg);
int drv_persist_load (drv_persist_t *self, drv_persist_load_fn *fn, void *arg);

//  The largest job id ever stored (also across removals: kept in a meta table so ids are
//  not reused after restart), 0 if none. Staged adds count.
uint64_t drv_persist_max_id (drv_persist_t *self);

//  Last error, a sentence. Borrowed.
const char *drv_persist_error (drv_persist_t *self);

#endif
