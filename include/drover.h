/*  drover.h - the libdrover SDK: client, worker and embeddable broker.

    drover is a network job queue: a broker takes tasks from clients and
    dispatches them over ZeroMQ to workers that offer the named function,
    and returns every result to the client that submitted it.

    Conventions, as in czmq: every object has _new and _destroy (T **self_p),
    the latter NULLs the caller's pointer. Functions return 0 on success and
    -1 on error unless said otherwise; after an error, drover_*_error ()
    gives a sentence that says what went wrong. A returned `char *` or
    `drover_result_t *` is the caller's to free; a `const char *` is
    borrowed and valid until the next call on the same object. Objects are
    not thread-safe: use each from one thread at a time.
*/

#ifndef DROVER_H_INCLUDED
#define DROVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DROVER_VERSION_MAJOR 0
#define DROVER_VERSION_MINOR 1
#define DROVER_VERSION_PATCH 0
#define DROVER_PROTOCOL_VERSION 1

//  Most bytes of partial output one progress report carries
//  (drover_task_progress); more is cut to this.
#define DROVER_PROGRESS_PARTIAL_MAX 65536

//  How a task ended. Numbers match the wire protocol's Outcome.
//  DROVER_OUTCOME_REFUSED never crosses the wire: the client gives it to
//  a task of a streaming map whose Submit the broker refused, and to a
//  task that a restarted broker refused when it was sent again.
typedef enum {
    DROVER_OUTCOME_OK = 1,         //  the handler succeeded
    DROVER_OUTCOME_ERROR = 2,      //  the handler failed; reason says why
    DROVER_OUTCOME_SIGNAL = 3,     //  the task process died of a signal
    DROVER_OUTCOME_TIMEOUT = 4,    //  the task ran over its timeout
    DROVER_OUTCOME_NO_HANDLER = 5, //  the worker does not offer the function
    DROVER_OUTCOME_LOST = 6,       //  the job lost its worker too often
    DROVER_OUTCOME_CANCELLED = 7,  //  a client cancelled the job
    DROVER_OUTCOME_REFUSED = 8     //  not queued: the broker refused it (reason)
} drover_outcome_t;

//  Where a job is. Numbers match the wire protocol's JobState.
typedef enum {
    DROVER_JOB_UNKNOWN = 0,
    DROVER_JOB_QUEUED = 1,
    DROVER_JOB_RUNNING = 2,
    DROVER_JOB_SUCCEEDED = 3,
    DROVER_JOB_FAILED = 4
} drover_state_t;

//  Why the broker refused a request. Numbers match the wire protocol's
//  ErrorCode.
typedef enum {
    DROVER_ERR_NONE = 0,
    DROVER_ERR_BAD_VERSION = 1,
    DROVER_ERR_MALFORMED = 2,
    DROVER_ERR_TOO_LARGE = 3,
    DROVER_ERR_INVALID = 4,
    DROVER_ERR_UNKNOWN_JOB = 5,
    DROVER_ERR_QUEUE_FULL = 6,
    DROVER_ERR_UNEXPECTED = 7,
    DROVER_ERR_UNAUTHORIZED = 8,
    DROVER_ERR_INTERNAL = 9
} drover_error_t;

//  The result of one job. The data buffer is followed by a NUL byte that
//  size does not count, so text results can be printed as they are.
typedef struct {
    uint64_t job_id;           //  the broker's id for the job
    drover_outcome_t outcome;  //  DROVER_OUTCOME_OK on success
    uint8_t *data;             //  output on success, owned by the result
    size_t size;               //  bytes in data
    char *reason;              //  failure reason, "" on success; owned
    uint32_t attempts;         //  how many times the job was dispatched
    bool chunk;                //  a map's chunk waited for by job id
                               //  (drover_client_wait): data is the
                               //  items' results, a ChunkResults message
                               //  (docs/protocol.md); outcome and reason
                               //  sum them up
} drover_result_t;

//  Options for submitted tasks. Zero-initialise, then set what you need;
//  NULL where an options pointer is taken means all defaults.
typedef struct {
    uint32_t timeout_ms;       //  kill the task after this long; 0: never
    uint32_t retries;          //  run a failed task again up to this many
                               //  times (0..1000), backing off exponentially
                               //  with jitter from 200 ms to 60 s
    int32_t priority;          //  higher is dispatched first; default 0;
                               //  first in, first out within a priority
    uint64_t delay_ms;         //  not dispatched before this many ms after
                               //  the broker takes it (at most 366 days)
    int64_t run_at_ms;         //  not dispatched before this wall-clock time,
                               //  ms since the Unix epoch; 0: none. With
                               //  delay_ms too, the later of the two
    const char *unique;        //  unique key (one task per call): while a
                               //  job of this function with this key is
                               //  queued or running, the task attaches to
                               //  it and gets its result, as in Gearman
    bool detach;               //  drover_client_submit only: the broker
                               //  keeps the result (for its --keep-results)
                               //  instead of sending it; collect it with
                               //  drover_client_wait, from any client
} drover_options_t;

//  The state of one job as the broker reports it.
typedef struct {
    uint64_t job_id;
    drover_state_t state;
    char function[256];        //  the function name
    char worker[256];          //  the worker running it, when RUNNING
    uint32_t attempts;         //  dispatches so far
    drover_outcome_t outcome;  //  how it ended, once SUCCEEDED or FAILED; else 0
    int32_t priority;          //  as submitted
    uint64_t run_in_ms;        //  QUEUED and waiting for its time: ms left
    bool has_progress;         //  RUNNING and its task reported progress:
    uint64_t progress_done;    //  its last report (drover_task_progress):
    uint64_t progress_total;   //  done of total (0: unknown),
    char progress_partial [1024];  //  the partial output's first 1023
                               //  bytes, NUL-terminated,
    size_t progress_size;      //  and its whole size at the broker
    bool chunk;                //  a map's chunk: one job for several inputs
} drover_status_t;

//  One function's queue at the broker: its settings and what it holds.
typedef struct {
    char function [256];       //  the function name
    uint32_t limit;            //  running at once at most, across all
                               //  workers; 0: no limit
    bool paused;               //  jobs are taken and queued, not dispatched
    uint64_t max_queue;        //  its own queue length; 0: the broker's
    uint64_t max_queue_in_force;  //  the queue length that applies
    uint64_t queued;           //  jobs waiting to be dispatched
    uint64_t delayed;          //  jobs waiting for their time (delay, retry)
    uint64_t running;          //  jobs running now
    uint32_t workers;          //  workers offering the function
} drover_queue_t;

//  Short, stable names for outcomes, states and errors ("ok", "queued",
//  "queue full"). The strings are static.
const char *drover_outcome_name (drover_outcome_t outcome);
const char *drover_state_name (drover_state_t state);
const char *drover_error_name (drover_error_t error);

//  Where libdrover writes its log lines ("broker: worker ready ..."):
//  stderr unless set; NULL for none.
void drover_set_logstream (FILE *stream);

//  Tune this process's malloc for large payloads: blocks up to 32 MiB
//  come from the heap instead of a fresh mmap each, and up to 64 MiB of
//  freed heap stays in the process instead of going back to the kernel.
//  Each first touch of a fresh page is a page fault, and on a small
//  virtual machine a 1 MiB payload through fresh pages costs several ms.
//  The drover daemons and command call it; a library should not decide
//  it for its program, so an SDK program that moves large payloads calls
//  it itself, first thing. Does nothing when MALLOC_MMAP_THRESHOLD_,
//  MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES set the same from outside.
void drover_tune_malloc (void);

//  Destroy a result and NULL the pointer.
void drover_result_destroy (drover_result_t **self_p);

//  Write a new CURVE key pair in czmq's zcert format: path, the public
//  certificate to hand to the other side, and path_secret (mode 0600),
//  to keep. Refuses to overwrite either file. -1 with the reason in err
//  (err_size bytes). See docs/security.md.
int drover_keygen (const char *path, char *err, size_t err_size);

//  ---------------------------------------------------------------------
//  Client: submit jobs and collect their results.

typedef struct _drover_client_t drover_client_t;

//  Told things a person should know that are not errors, e.g. that no
//  worker offers a function yet so its jobs wait. text is borrowed.
typedef void (drover_notice_fn) (const char *text, void *arg);

//  Told when an asynchronous job finishes. The result is borrowed for the
//  call; call from the thread that runs drover_client_poll/join.
typedef void (drover_callback_fn) (const drover_result_t *result, void *arg);

//  Told how far a running job has got (drover_task_progress, or an exec:
//  task's DROVER_PROGRESS_FD): done of total (0: unknown), and partial
//  output so far (borrowed for the call, followed by a NUL that size
//  does not count; at most DROVER_PROGRESS_PARTIAL_MAX bytes).
typedef void (drover_progress_fn) (uint64_t job_id, uint64_t done, uint64_t total,
                                   const uint8_t *partial, size_t size, void *arg);

//  Connect to a broker's client endpoint, e.g. "tcp://127.0.0.1:7700".
//  Returns NULL if the endpoint is not valid (connecting itself is
//  asynchronous: a broker that is not up yet is waited for).
drover_client_t *drover_client_new (const char *endpoint);

//  Disconnect and destroy; results not yet collected are discarded.
void drover_client_destroy (drover_client_t **self_p);

//  The last error, as a sentence; "" if none. Borrowed.
const char *drover_client_error (drover_client_t *self);

//  The protocol error code of the last refusal, DROVER_ERR_NONE if the
//  last error was not a refusal by the broker (e.g. a timeout).
drover_error_t drover_client_error_code (drover_client_t *self);

//  How long calls that talk to the broker wait for its acknowledgement
//  before failing, in ms; default 30000, -1 waits forever.
void drover_client_set_ack_timeout (drover_client_t *self, int timeout_ms);

//  Be told of notices; default prints nothing.
void drover_client_set_notice (drover_client_t *self, drover_notice_fn *fn, void *arg);

//  Be told of the progress of this client's running jobs: those it
//  submits after this call, and those it waits for with
//  drover_client_wait. fn runs inside the calls that receive from the
//  broker (wait, poll, join, map, imap, and a submit waiting for its
//  acknowledgement); it must not call this client. Reports are best
//  effort: a few a second per job at most, none kept or sent again,
//  the result supersedes the last; a job dispatched again starts over.
//  NULL stops them for later submits; a client without fn is never
//  sent any. With an unknown total, done may be all there is.
void drover_client_set_progress (drover_client_t *self, drover_progress_fn *fn, void *arg);

//  Talk CURVE: secret_file is this client's secret certificate (the
//  _secret file of drover_keygen), broker_key_file the broker's public
//  certificate. Call before anything that talks to the broker. -1 with
//  drover_client_error if a file cannot be read or is the wrong kind.
//  If the broker then refuses this client (key not listed, wrong broker
//  key, or CURVE on one side only), calls fail within a few seconds with
//  DROVER_ERR_UNAUTHORIZED, errno EACCES and an error that starts
//  "authentication failed: ", and keep failing.
int drover_client_set_curve (drover_client_t *self, const char *secret_file,
                             const char *broker_key_file);

//  Submit one task and return once the broker has acknowledged it, with
//  its job id in *job_id. Collect the result with drover_client_wait.
int drover_client_submit (drover_client_t *self, const char *function, const void *payload,
                          size_t size, const drover_options_t *options, uint64_t *job_id);

//  Submit count tasks for one function in one message; job_ids[i] gets
//  the id of payloads[i]. The broker acknowledges all or none.
int drover_client_submit_many (drover_client_t *self, const char *function, size_t count,
                               const void *const *payloads, const size_t *sizes,
                               const drover_options_t *options, uint64_t *job_ids);

//  Wait up to timeout_ms (-1: forever) for the result of a job. On
//  success *result_p is the caller's. On timeout returns -1 with errno
//  ETIMEDOUT and the job stays collectable. A job this client did not
//  submit (another client's or process's, a detached one, or one whose
//  result was taken already) is asked of the broker, which answers while
//  it keeps the result (--keep-results); -1 with DROVER_ERR_UNKNOWN_JOB
//  if it does not hold the job.
int drover_client_wait (drover_client_t *self, uint64_t job_id, int timeout_ms,
                        drover_result_t **result_p);

//  Submit one task and wait for its result (Pool.apply).
int drover_client_apply (drover_client_t *self, const char *function, const void *payload,
                         size_t size, const drover_options_t *options, int timeout_ms,
                         drover_result_t **result_p);

//  Submit one task whose result goes to callback on success or to
//  error_callback on failure (Pool.apply_async). Either may be NULL.
//  Callbacks run inside drover_client_poll and drover_client_join.
int drover_client_apply_async (drover_client_t *self, const char *function,
                               const void *payload, size_t size,
                               const drover_options_t *options, drover_callback_fn *callback,
                               drover_callback_fn *error_callback, void *arg,
                               uint64_t *job_id);

//  Receive for up to timeout_ms and run the callbacks of finished
//  asynchronous jobs. Returns how many callbacks ran, or -1 on error.
int drover_client_poll (drover_client_t *self, int timeout_ms);

//  Run callbacks until no asynchronous job is pending, or timeout_ms
//  passes (-1: forever; then -1 with errno ETIMEDOUT).
int drover_client_join (drover_client_t *self, int timeout_ms);

//  ---------------------------------------------------------------------
//  Futures (Pool's AsyncResult): the result of one job, or of a whole
//  map (drover_client_map_async), taken when asked for. The client is
//  borrowed and must outlive the future. A future's jobs are its own:
//  drover_client_wait refuses them and no callback sees them. Whatever
//  else arrives while a future waits is kept for its own waiter.

typedef struct _drover_future_t drover_future_t;

//  Submit one task and return a future for its result (apply_async
//  without callbacks), once the broker has acknowledged it; NULL on
//  error (drover_client_error). options->detach is refused.
drover_future_t *drover_client_apply_future (drover_client_t *self, const char *function,
                                             const void *payload, size_t size,
                                             const drover_options_t *options);

//  Destroy, and NULL the pointer. A result not yet in is dropped when
//  it comes; a map's tasks still running are left to finish unobserved.
//  Results taken with drover_future_get or _result go with the future.
void drover_future_destroy (drover_future_t **self_p);

//  Has every result come? Never waits: takes what has arrived on the
//  socket so far and answers. true also once the client failed (the
//  broker refused the submit, the connection was refused): then
//  drover_future_get says why.
bool drover_future_ready (drover_future_t *self);

//  true if the future is ready and every result is DROVER_OUTCOME_OK;
//  false otherwise, including before it is ready (call
//  drover_future_ready first to tell "failed" from "not yet").
bool drover_future_successful (drover_future_t *self);

//  Wait up to timeout_ms (-1: forever) for every result, then set
//  *result_p (may be NULL) to the first: the result of an apply future,
//  borrowed from the future and valid until it is destroyed (get may be
//  called again). -1 with errno ETIMEDOUT if not ready in time (the
//  future can be waited on again), or -1 with drover_client_error if
//  the client failed.
int drover_future_get (drover_future_t *self, int timeout_ms, const drover_result_t **result_p);

//  How many results the future has in all: 1, or a map's count.
size_t drover_future_count (drover_future_t *self);

//  Result index (0 to count - 1; for a map, the result of payloads
//  [index]) once in, else NULL. Borrowed from the future.
const drover_result_t *drover_future_result (drover_future_t *self, size_t index);

//  The job id of an apply future; 0 for a map's.
uint64_t drover_future_job_id (drover_future_t *self);

//  Cancel the future's jobs that have no result yet (one Cancel for
//  all), as drover_client_cancel does; the future then becomes ready
//  with DROVER_OUTCOME_CANCELLED results for them (or the results of
//  those that finished first). 0, or -1 if the broker could not be
//  asked.
int drover_future_cancel (drover_future_t *self);

//  Cancel a job, any client's: a queued one is removed, a running one is
//  killed (an exec: task's process group, an in-process handler's pool
//  process; in threads mode a handler runs on and its result is
//  dropped). Its waiting client gets a result with
//  DROVER_OUTCOME_CANCELLED. On return *status (may be NULL) is the job's
//  state after the cancel: FAILED if it was cancelled, or SUCCEEDED or
//  FAILED as it had finished before. -1 if the broker has no such job.
int drover_client_cancel (drover_client_t *self, uint64_t job_id, drover_status_t *status);

//  What to do with dead letters: jobs that failed for good (any outcome
//  but OK and cancelled, after their retries). Numbers match the wire
//  protocol's DeadOp.
typedef enum {
    DROVER_DEAD_LIST = 1,      //  describe them
    DROVER_DEAD_RETRY = 2,     //  queue them again, retries renewed
    DROVER_DEAD_PURGE = 3      //  forget them
} drover_dead_op_t;

//  One dead letter, as it was when listed.
typedef struct {
    uint64_t job_id;
    char function [256];       //  the function name
    uint32_t attempts;         //  dispatches it had
    drover_outcome_t outcome;  //  how its last attempt ended
    char *reason;              //  why, owned
    uint8_t *payload;          //  its input, owned; followed by a NUL
    size_t size;               //  bytes in payload
    bool chunk;                //  a map's chunk: payload is a Chunk message
                               //  of its inputs (docs/protocol.md)
} drover_dead_t;

//  Apply op to the dead letter job_id, or to every dead letter with 0.
//  On success *jobs (the caller's: drover_dead_destroy) describes the
//  jobs concerned, *count of them. -1 with DROVER_ERR_UNKNOWN_JOB when
//  there is no such dead letter (or none at all).
int drover_client_dead (drover_client_t *self, drover_dead_op_t op, uint64_t job_id,
                        drover_dead_t **jobs, size_t *count);

//  Free a list from drover_client_dead and NULL the pointer.
void drover_dead_destroy (drover_dead_t **jobs_p, size_t count);

//  Ask the broker for the state of a job, any client's.
int drover_client_status (drover_client_t *self, uint64_t job_id, drover_status_t *status);

//  Describe a function's queue at the broker into *queue (may be NULL
//  for the setters below, which describe it after the change). Settings
//  stay with the broker (on disk in durable mode) until changed.
int drover_client_queue (drover_client_t *self, const char *function, drover_queue_t *queue);

//  Run at most limit jobs of function at once across all workers (the
//  Semaphore); 0 lifts the limit.
int drover_client_set_limit (drover_client_t *self, const char *function, uint32_t limit,
                             drover_queue_t *queue);

//  Pause a function's queue (its jobs are taken and queued, not
//  dispatched; running ones run on), or resume it.
int drover_client_pause (drover_client_t *self, const char *function, bool paused,
                         drover_queue_t *queue);

//  Take at most max_queue waiting jobs of function (a submit past it is
//  refused with DROVER_ERR_QUEUE_FULL); 0: the broker's --max-queue.
int drover_client_set_max_queue (drover_client_t *self, const char *function,
                                 uint64_t max_queue, drover_queue_t *queue);

//  ---------------------------------------------------------------------
//  Admin views: what the broker holds, for people and monitoring
//  (drover jobs, workers, queues, stats). Each answer is bounded by its
//  limit and by the broker's --max-message; a broker older than these
//  calls refuses them, and they fail with DROVER_ERR_MALFORMED and an
//  error that says the broker is too old. See docs/protocol.md.

//  Which jobs drover_client_jobs lists. Numbers match the wire
//  protocol's JobFilter.
typedef enum {
    DROVER_JOBS_ANY = 0,       //  every job held
    DROVER_JOBS_QUEUED = 1,    //  queued and ready to be dispatched
    DROVER_JOBS_RUNNING = 2,   //  running on a worker
    DROVER_JOBS_SUCCEEDED = 3, //  finished OK, kept for --keep-results
    DROVER_JOBS_FAILED = 4,    //  finished otherwise, kept, or dead letters
    DROVER_JOBS_DELAYED = 5,   //  queued and waiting for their time
    DROVER_JOBS_FINISHED = 6   //  succeeded or failed
} drover_jobs_filter_t;

//  What drover_client_jobs asks for. Zero-initialised: the oldest 100
//  jobs of every function, in any state.
typedef struct {
    const char *function;      //  only this function's; NULL: all
    drover_jobs_filter_t state;  //  only these
    uint32_t limit;            //  at most this many (1..10000); 0: 100
    bool newest_first;         //  highest job id first; default oldest
} drover_jobs_query_t;

//  One job as drover_client_jobs lists it.
typedef struct {
    uint64_t job_id;
    char function [256];       //  the function name
    drover_state_t state;      //  a follower (unique key): its leader's
    bool delayed;              //  QUEUED and waiting for its time
    int32_t priority;          //  as submitted
    uint32_t attempts;         //  dispatches so far
    char worker [256];         //  the worker running it, when RUNNING
    uint64_t age_ms;           //  since the broker took it (or restored it)
    uint64_t run_in_ms;        //  delayed: ms until its time
    drover_outcome_t outcome;  //  finished: how; else 0
} drover_job_info_t;

//  List jobs the broker holds (queued, delayed, running, and finished
//  ones it keeps), by job id. On success *jobs_p (the caller's: free
//  with drover_jobs_destroy) holds *count of them, and *total (may be
//  NULL) says how many matched in all.
int drover_client_jobs (drover_client_t *self, const drover_jobs_query_t *query,
                        drover_job_info_t **jobs_p, size_t *count, uint64_t *total);

//  Free a list from drover_client_jobs and NULL the pointer.
void drover_jobs_destroy (drover_job_info_t **jobs_p);

//  One connected worker.
typedef struct {
    char name [256];           //  as it names itself (host:pid)
    char identity [520];       //  its routing id; hex if not printable
    char **functions;          //  the functions it offers, owned
    size_t nfunctions;         //  entries in functions
    uint32_t slots;            //  tasks it runs at once
    uint32_t running;          //  tasks in flight now
    uint64_t done;             //  tasks finished since it connected
    uint64_t connected_ms;     //  since it announced itself (Ready)
    uint64_t heard_ms;         //  since the broker last heard from it
} drover_worker_info_t;

//  List the connected workers, by name. On success *workers_p (the
//  caller's: drover_workers_destroy) holds *count; *total (may be NULL)
//  says how many are connected, listed or not.
int drover_client_workers (drover_client_t *self, drover_worker_info_t **workers_p,
                           size_t *count, size_t *total);

//  Free a list from drover_client_workers and NULL the pointer.
void drover_workers_destroy (drover_worker_info_t **workers_p, size_t count);

//  Describe every function's queue, by name. On success *queues_p (the
//  caller's: free with drover_queues_destroy) holds *count; *total (may
//  be NULL) says how many functions there are, listed or not.
int drover_client_queues (drover_client_t *self, drover_queue_t **queues_p, size_t *count,
                          size_t *total);

//  Free a list from drover_client_queues and NULL the pointer.
void drover_queues_destroy (drover_queue_t **queues_p);

//  Broker-wide counters (since it started) and gauges (now).
typedef struct {
    uint64_t uptime_ms;        //  since the broker started
    uint64_t submitted;        //  jobs taken (each task of a submit)
    uint64_t dispatched;       //  tasks sent to workers (each attempt)
    uint64_t succeeded;        //  jobs finished OK
    uint64_t failed;           //  jobs finished otherwise, but cancelled
    uint64_t cancelled;        //  jobs cancelled
    uint64_t retried;          //  failed attempts queued again (retries)
    uint64_t requeued;         //  running jobs queued again: worker left
    uint64_t redelivered;      //  results sent again for want of an Ack
    uint64_t rejected;         //  requests refused with an error
    uint64_t malformed;        //  of which: not a decodable message
    uint64_t too_large;        //  of which: over a size limit
    uint64_t cut;              //  connections cut by the memory guard
    uint32_t clients;          //  client connections now (tcp:// and ipc://)
    uint32_t workers;          //  workers connected now
    uint64_t jobs;             //  jobs held now, any state
    uint64_t bytes;            //  bytes of jobs held, as --max-bytes counts
    uint64_t heap;             //  heap in use by the broker, bytes
    uint32_t functions;        //  function queues
    uint64_t dead;             //  dead letters held
    bool durable;              //  the broker runs with --data
    uint64_t commits;          //  durable: commits to the job store
} drover_stats_t;

//  Ask the broker for its counters.
int drover_client_stats (drover_client_t *self, drover_stats_t *stats);

//  The broker's counters and queues in the Prometheus text format, as
//  its --metrics endpoint serves them (for a textfile collector). The
//  string is the caller's to free; NULL on error.
char *drover_client_metrics (drover_client_t *self);

//  Run function over count payloads (Pool.map): results[i] is the result
//  of payloads[i], each the caller's to destroy. Tasks are sent in
//  batches. Returns 0 once every result is in, whatever their outcomes;
//  -1 on error or timeout (timeout_ms for the whole map, -1: forever),
//  with no results left in the array.
int drover_client_map (drover_client_t *self, const char *function, size_t count,
                       const void *const *payloads, const size_t *sizes,
                       const drover_options_t *options, int timeout_ms,
                       drover_result_t **results);

//  The largest chunk size a map takes.
#define DROVER_CHUNK_SIZE_MAX 100000

//  drover_client_map with a chunk size (Pool.map's chunksize): every
//  chunk_size consecutive payloads (the last run may be shorter) go as
//  one job, run by one worker, which calls the handler once per payload
//  and sends their results back together. results[i] is still the
//  result of payloads[i], with its own outcome, data and reason (and
//  the chunk's job id and attempts). Fewer, larger jobs mean less
//  overhead per task when tasks are short. A chunk's job succeeds only if
//  every item does; options->retries run a failed chunk again, whole.
//  options->timeout_ms is per item. 0 or 1 is drover_client_map. Only
//  workers that say they run chunks are given chunked jobs, and the
//  broker must know chunks too (docs/protocol.md, "Chunked tasks").
//  A chunk travels as one payload: its items together must fit the
//  broker's --max-payload (else the submit is refused, too large).
//  Returns as drover_client_map; -1 if chunk_size is over
//  DROVER_CHUNK_SIZE_MAX.
int drover_client_map_chunked (drover_client_t *self, const char *function, size_t count,
                               const void *const *payloads, const size_t *sizes,
                               size_t chunk_size, const drover_options_t *options,
                               int timeout_ms, drover_result_t **results);

//  Start a map as drover_client_map_chunked does (chunk_size 0 or 1: a
//  job per payload) and return a future for its results (Pool.map_async)
//  once every task is sent; NULL on error. drover_future_result (f, i)
//  is the result of payloads[i].
drover_future_t *drover_client_map_async (drover_client_t *self, const char *function,
                                          size_t count, const void *const *payloads,
                                          const size_t *sizes, size_t chunk_size,
                                          const drover_options_t *options);

//  ---------------------------------------------------------------------
//  Ordered streaming map (Pool.imap): push payloads as they come, take
//  results in push order. Pushed tasks are sent in batches; a result is
//  taken with drover_imap_next, which also sends what is buffered.
//  A batch the broker refuses (queue full, payload too large) does not
//  end the map: each of its tasks has a result with outcome
//  DROVER_OUTCOME_REFUSED and the broker's reason, taken in its turn.
//  A batch refused as too large goes again task by task first, so that
//  only the tasks over the limit are refused.

typedef struct _drover_imap_t drover_imap_t;

//  Start a map of function over tasks pushed later. The client is
//  borrowed and must outlive the map.
drover_imap_t *drover_imap_new (drover_client_t *client, const char *function,
                                const drover_options_t *options);

//  Destroy; tasks still running are left to finish unobserved.
void drover_imap_destroy (drover_imap_t **self_p);

//  Queue one task; the payload is copied. -1 if the client failed (out
//  of memory, no broker answering, refused by CURVE); a refused batch is
//  no error here.
int drover_imap_push (drover_imap_t *self, const void *payload, size_t size);

//  Frees a block given to drover_imap_push_owned: data as given, and its
//  hint. It may run on one of ZeroMQ's own threads (the I/O thread that
//  wrote the last copy in flight), not only the caller's, so it must be
//  thread-safe and must not call into libdrover.
typedef void (drover_free_fn) (void *data, void *hint);

//  Queue one task whose payload the map takes over instead of copying:
//  a payload of 64 KiB or more is sent from data as it is, and kept
//  there for a resend after a reconnect or a broker restart, until the
//  task's result is in or the map or the client forgets the task. The
//  caller must not change or free data after the call. free_fn (data,
//  hint) is called exactly once when the bytes are no longer needed,
//  also when the push fails: in this call, for a smaller payload or in a
//  chunked map (those are copied, as drover_imap_push does), or later,
//  possibly on ZeroMQ's I/O thread and possibly after drover_imap_destroy
//  or drover_client_destroy returned (until the socket has dropped what
//  it still queued; at the latest when the process's ZeroMQ context
//  ends). -1 on error, as drover_imap_push (a flush this push set off
//  failed; the task may still be buffered); -1 (EINVAL) without free_fn.
int drover_imap_push_owned (drover_imap_t *self, void *data, size_t size,
                            drover_free_fn *free_fn, void *hint);

//  Send what is buffered now, without waiting.
int drover_imap_flush (drover_imap_t *self);

//  Take the next result in push order. Returns 0 with *result_p the
//  caller's, 1 when every pushed task's result has been taken, -1 on
//  error or timeout (errno ETIMEDOUT).
int drover_imap_next (drover_imap_t *self, int timeout_ms, drover_result_t **result_p);

//  Tasks pushed whose results have not been taken yet.
size_t drover_imap_pending (drover_imap_t *self);

//  Take results in the order they arrive instead of push order
//  (Pool.imap_unordered). Call before the first push; 0, or -1 if tasks
//  were pushed already.
int drover_imap_set_unordered (drover_imap_t *self, bool unordered);

//  Send every chunk_size consecutive pushes as one job (Pool.imap's
//  chunksize), as drover_client_map_chunked does; results still come
//  one per push. A chunk goes when it is full, or with what is buffered
//  at a flush (drover_imap_next flushes), so a chunk may be shorter.
//  Call before the first push; 0, or -1 if tasks were pushed already.
int drover_imap_set_chunk_size (drover_imap_t *self, size_t chunk_size);

//  drover_imap_next that also says which push the result is for: *index_p
//  is 0 for the first task pushed. In an unordered map this is how a
//  result is matched to its input.
int drover_imap_next_index (drover_imap_t *self, int timeout_ms, drover_result_t **result_p,
                            size_t *index_p);

//  ---------------------------------------------------------------------
//  Worker: offer functions to a broker and run its tasks.

typedef struct _drover_worker_t drover_worker_t;
typedef struct _drover_task_t drover_task_t;

//  An in-process handler. Read the input with drover_task_payload; set
//  the output with drover_task_reply and return 0, or call
//  drover_task_fail and return -1. Runs in one of the worker's `slots`
//  pool processes, forked from the worker when it starts (so it sees
//  the program's memory as it was then, and changes it makes stay in
//  that process); a handler that crashes fails only its own task, and
//  its process is replaced. With drover_worker_set_threads it runs on
//  one of `slots` threads of the worker process instead. A pool process
//  is a child of a process with threads: the memory allocator must be
//  one that survives fork (glibc's does; AddressSanitizer's in gcc 12
//  does not, and a handler that allocates may then hang for good).
typedef int (drover_handler_fn) (drover_task_t *task, void *arg);

//  An initializer, run once in each pool process (or thread) before its
//  first task; non-zero fails the process's tasks and it is started
//  again after a pause.
typedef int (drover_init_fn) (void *arg);

//  The task's input, borrowed for the handler call; a NUL byte that size
//  does not count follows it, so text can be parsed as it is.
const uint8_t *drover_task_payload (drover_task_t *task, size_t *size);

//  The function name and the job id of the task. An item of a chunked
//  task (a map with a chunk size) has an id of the worker's own instead,
//  with the top bit set.
const char *drover_task_function (drover_task_t *task);
uint64_t drover_task_job_id (drover_task_t *task);

//  Set the task's output; data is copied.
int drover_task_reply (drover_task_t *task, const void *data, size_t size);

//  Fail the task with a reason, printf-style; cut to 4,096 bytes.
void drover_task_fail (drover_task_t *task, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Say how far the task has got: done out of total (total 0: unknown;
//  else done <= total), with partial output so far (may be NULL, size
//  0; cut to DROVER_PROGRESS_PARTIAL_MAX bytes, and dropped by a broker
//  whose --max-payload is smaller). The clients waiting for the job
//  that asked for progress (drover_client_set_progress) are told, and
//  drover_client_status shows the last report. Best effort and cheap to
//  call per item: the worker sends each task's latest numbers at most
//  every 200 ms (the partial output of a report made within 50 ms of the
//  last one that carried its own is dropped, the earlier one's stays),
//  and the result supersedes any report not yet sent; none is stored or
//  sent again. 0, or -1 (errno EINVAL) if done > total. An item of a
//  chunked map reports nothing (0 all the same): its result comes with
//  its chunk's.
int drover_task_progress (drover_task_t *task, uint64_t done, uint64_t total,
                          const void *partial, size_t size);

//  Create a worker for the broker's worker endpoint, e.g.
//  "tcp://127.0.0.1:7701". Returns NULL if the endpoint is not valid.
drover_worker_t *drover_worker_new (const char *endpoint);

//  Stop (if running) and destroy.
void drover_worker_destroy (drover_worker_t **self_p);

//  The last error, as a sentence. Borrowed.
const char *drover_worker_error (drover_worker_t *self);

//  How many tasks to run at once; default 1. Set before running. This
//  is also the number of pool processes for in-process handlers.
int drover_worker_set_slots (drover_worker_t *self, unsigned slots);

//  Tasks to take from the broker beyond slots, so that short tasks never
//  wait a round trip for the next (the broker's credit is slots +
//  prefetch); default 0. Prefetched tasks wait here while another
//  worker might be idle, so keep it small for long tasks and large
//  (hundreds) for many short ones.
int drover_worker_set_prefetch (drover_worker_t *self, unsigned tasks);

//  Run in-process handlers on threads of the worker process instead of
//  pool processes (default false): handlers share the program's memory,
//  but a crash takes the worker down, timeouts and cancels cannot stop a
//  running handler, and task limits cannot apply.
void drover_worker_set_threads (drover_worker_t *self, bool threads);

//  Replace a pool process after it has run this many tasks (like
//  Pool's maxtasksperchild); 0, the default, never.
void drover_worker_set_max_tasks_per_child (drover_worker_t *self, unsigned tasks);

//  Run init (arg) once in each pool process before its first task
//  (Pool's initializer).
void drover_worker_set_initializer (drover_worker_t *self, drover_init_fn *init, void *arg);

//  The same with a function loaded from a plugin: "PATH.so:SYMBOL", the
//  symbol a drover_init_fn called with NULL.
int drover_worker_set_initializer_plugin (drover_worker_t *self, const char *spec);

//  Per-task limits, applied to exec: tasks and to pool processes (not in
//  threads mode); 0 lifts each. Memory: bytes of address space of an
//  exec: task, or that a pool process may add to its size at fork
//  (RLIMIT_AS). CPU: seconds of CPU time per task (RLIMIT_CPU).
//  Files: open descriptors (RLIMIT_NOFILE). Processes: processes and
//  threads of the user the task runs as, counted by the kernel across
//  all of that user's processes (RLIMIT_NPROC); root is exempt, so set a
//  user too when the worker runs as root. A task that hits a limit
//  fails with a reason that names it.
int drover_worker_set_max_memory (drover_worker_t *self, uint64_t bytes);
void drover_worker_set_max_cpu (drover_worker_t *self, unsigned seconds);
int drover_worker_set_max_files (drover_worker_t *self, unsigned files);
void drover_worker_set_max_procs (drover_worker_t *self, unsigned processes);

//  Run tasks as this user (name or uid; its primary and supplementary
//  groups too); needs a worker running as root. NULL or "" for none.
int drover_worker_set_user (drover_worker_t *self, const char *user);

//  Heartbeat the broker every interval_ms (default 1000); a broker not
//  heard from for liveness intervals (default 3) is taken as gone, and the
//  worker reconnects, backing off up to 30 s between tries. Set before
//  running; the broker's settings should match.
void drover_worker_set_heartbeat (drover_worker_t *self, unsigned interval_ms, unsigned liveness);

//  The name shown in logs and status views; default host:pid.
void drover_worker_set_name (drover_worker_t *self, const char *name);

//  Talk CURVE: secret_file is this worker's secret certificate,
//  broker_key_file the broker's public certificate. Set before running.
//  -1 with drover_worker_error if a file cannot be read or is the wrong
//  kind. A worker the broker refuses stops: drover_worker_run returns -1
//  (drover_worker_wait, when started) with an error that starts
//  "authentication failed: ".
int drover_worker_set_curve (drover_worker_t *self, const char *secret_file,
                             const char *broker_key_file);

//  Offer function `name`, served by an in-process handler.
int drover_worker_add_handler (drover_worker_t *self, const char *name,
                               drover_handler_fn *handler, void *arg);

//  Offer function `name`, served by running a program once per task with
//  the payload on its stdin; stdout is the result. spec is
//  "PROGRAM [ARG...]", split on spaces, run without a shell.
int drover_worker_add_exec (drover_worker_t *self, const char *name, const char *spec);

//  Offer a function given as "NAME=exec:PROGRAM [ARG...]" or
//  "NAME=plugin:PATH.so:SYMBOL" (SYMBOL a drover_handler_fn, called with
//  a NULL arg), the daemon's --function syntax.
int drover_worker_add_function (drover_worker_t *self, const char *definition);

//  Run in the calling thread until drover_worker_stop is called from
//  another thread, or SIGINT/SIGTERM arrives. Returns 0 on a clean stop.
int drover_worker_run (drover_worker_t *self);

//  Start running on a background thread; returns at once.
int drover_worker_start (drover_worker_t *self);

//  Wait up to timeout_ms for a started worker to stop by itself: 0 if it
//  is still running, -1 if it stopped (the broker refused it: the reason
//  is in drover_worker_error) or is not running.
int drover_worker_wait (drover_worker_t *self, int timeout_ms);

//  Ask a running worker to finish: it tells the broker it leaves, so its
//  running tasks are dispatched again elsewhere, and returns from run.
void drover_worker_stop (drover_worker_t *self);

//  0 if the worker started with drover_worker_start answers within
//  timeout_ms (its thread's loop turns), else -1: for a watchdog. Call
//  from the thread that started it.
int drover_worker_ping (drover_worker_t *self, int timeout_ms);

//  Tasks this worker has finished (for tests and views).
uint64_t drover_worker_completed (drover_worker_t *self);

//  ---------------------------------------------------------------------
//  Broker: embed a broker in a program (drover-broker is one).

typedef struct _drover_broker_t drover_broker_t;

//  A broker that will bind the given endpoints.
drover_broker_t *drover_broker_new (const char *clients_endpoint, const char *workers_endpoint);

//  Stop (if running) and destroy.
void drover_broker_destroy (drover_broker_t **self_p);

//  The last error, as a sentence. Borrowed.
const char *drover_broker_error (drover_broker_t *self);

//  Limits, set before starting: largest message and payload in bytes,
//  largest number of tasks in one submit, jobs queued per function, and
//  how long finished jobs stay queryable.
void drover_broker_set_max_message (drover_broker_t *self, size_t bytes);
void drover_broker_set_max_payload (drover_broker_t *self, size_t bytes);
void drover_broker_set_max_queue (drover_broker_t *self, size_t jobs);
void drover_broker_set_keep_results (drover_broker_t *self, unsigned ms);

//  More limits: bytes of jobs held in all (payloads, results and 512 per
//  job; default 1 GiB) and distinct functions (default 10,000). A submit
//  past either is refused as queue full, so a flood cannot grow the
//  broker without bound.
void drover_broker_set_max_bytes (drover_broker_t *self, size_t bytes);
void drover_broker_set_max_functions (drover_broker_t *self, size_t functions);

//  The heap the broker may use (default: max bytes + 1 GiB). Over it,
//  connections stuck in the middle of a message (an endless multipart
//  message, libzmq buffering it) are cut; see docs/limits.md.
void drover_broker_set_max_memory (drover_broker_t *self, size_t bytes);

//  Workers heartbeat every interval_ms (default 1000); one not heard
//  from for liveness intervals (default 3) is dropped and its running
//  jobs are dispatched again.
void drover_broker_set_heartbeat (drover_broker_t *self, unsigned interval_ms, unsigned liveness);

//  Durable mode: keep jobs in directory dir (created if missing). A submit
//  is acknowledged only once it is on disk, many sharing one fsync; after
//  a crash and restart on the same dir, every acknowledged job that had
//  not finished runs again and every result not yet acknowledged by its
//  client is delivered. Set before starting.
void drover_broker_set_data_dir (drover_broker_t *self, const char *dir);

//  Allow endpoints other than loopback and ipc (default off: without
//  authentication, the broker refuses to listen beyond this machine).
void drover_broker_set_insecure (drover_broker_t *self, bool insecure);

//  Require CURVE on both endpoints: secret_file is the broker's secret
//  certificate; only clients whose public certificates are in
//  clients_dir, and workers whose certificates are in workers_dir, get
//  in (separate lists: a client key cannot serve as a worker). Files
//  added to or removed from the directories count from the next
//  connection. With CURVE the broker may listen beyond loopback. NULL
//  secret_file turns CURVE off. Set before starting; -1 with
//  drover_broker_error if a file or directory cannot be read or is the
//  wrong kind. One CURVE broker per process (it owns the process's ZAP
//  handler). See docs/security.md.
int drover_broker_set_curve (drover_broker_t *self, const char *secret_file,
                             const char *clients_dir, const char *workers_dir);

//  The broker's public key (Z85 text) when CURVE is set, else NULL.
//  Borrowed.
const char *drover_broker_public_key (drover_broker_t *self);

//  Serve Prometheus metrics (the text format, GET /metrics over HTTP) at
//  endpoint: "HOST:PORT", tcp://HOST:PORT (port 0 or * binds a free one)
//  or ipc://PATH; NULL turns it off (the default). Like the other endpoints it is
//  loopback only unless drover_broker_set_insecure; CURVE does not cover
//  it. Set before starting.
int drover_broker_set_metrics (drover_broker_t *self, const char *endpoint);

//  Log every submit (default off).
void drover_broker_set_verbose (drover_broker_t *self, bool verbose);

//  Bind and start serving on a background thread. Returns -1 with a reason
//  if an endpoint cannot be bound.
int drover_broker_start (drover_broker_t *self);

//  The endpoints as bound, with the real port when the endpoint asked
//  for an ephemeral one ("tcp://127.0.0.1:*"). Borrowed; valid after start.
const char *drover_broker_clients_endpoint (drover_broker_t *self);
const char *drover_broker_workers_endpoint (drover_broker_t *self);

//  The metrics endpoint as bound (tcp://127.0.0.1:PORT), or NULL without
//  one. Borrowed; valid after start.
const char *drover_broker_metrics_endpoint (drover_broker_t *self);

//  Wait up to timeout_ms for the broker to stop by itself: 0 if it is
//  still serving, -1 if it stopped (its job store failed: the reason is
//  in drover_broker_error).
int drover_broker_wait (drover_broker_t *self, int timeout_ms);

//  0 if the running broker answers within timeout_ms (its loop turns),
//  else -1: for a watchdog. Call from the thread that started it; a stop
//  report that arrives meanwhile is kept for drover_broker_wait.
int drover_broker_ping (drover_broker_t *self, int timeout_ms);

//  Stop serving: unbinds, drops queued work, and joins the thread.
void drover_broker_stop (drover_broker_t *self);

#ifdef __cplusplus
}
#endif

#endif
