/*  drv_pool.h - a prefork pool that runs in-process handlers.

    The pool forks `size` member processes up front (or, in threads mode,
    starts threads) and hands them tasks in batches over a socketpair
    each, in a compact binary framing; members answer in batches too.
    A large payload can stay where the caller has it (drv_pool_submit_kept):
    a member then reads it from the agent's memory itself. A
    member that crashes fails only the task it was running, with a reason
    that names the signal; the pool reaps it and forks a replacement.
    Members never touch ZeroMQ: the agent's loop talks to them through one
    epoll descriptor on its zloop.

    What the pool does not do: it keeps no results (each goes to the done
    callback and is borrowed for the rest of the loop pass), knows nothing
    of the protocol, and trusts its members no more than their handlers.
    Use a pool from the thread that runs its loop only.
*/

#ifndef DRV_POOL_H_INCLUDED
#define DRV_POOL_H_INCLUDED

#include <czmq.h>
#include "drover.h"
#include "drv_sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _drv_pool_t drv_pool_t;

//  Bytes of a handler's failure reason kept, with its NUL: as much as a
//  result's reason carries (4,096), in a fixed buffer because a member
//  process may not allocate (drv_pool.c).
#define DRV_POOL_REASON_MAX 4097

//  The task as a handler sees it (drover_task_t in drover.h).
struct _drover_task_t {
    uint64_t job_id;                 //  the broker's id
    const char *function;            //  borrowed
    const uint8_t *payload;          //  borrowed
    size_t size;                     //  bytes in payload
    uint8_t *reply;                  //  output, owned
    size_t reply_size;               //  bytes in reply
    size_t reply_capacity;           //  bytes reply holds (reused across tasks)
    bool failed;                     //  drover_task_fail was called
    char reason [DRV_POOL_REASON_MAX];  //  its reason, cut to fit
    int fd;                          //  the member's socket, for progress records
    void *out;                       //  the member's unsent replies, written first
    void *shared;                    //  the member's shared page: latest progress numbers
    int64_t progress_ms;             //  when its last progress record went, or 0
};

//  One function a pool can run, by index.
typedef struct {
    const char *name;                //  function name, borrowed
    drover_handler_fn *handler;      //  the handler
    void *arg;                       //  its argument
} drv_pool_function_t;

//  How the pool runs. Strings and arrays are borrowed for the pool's life.
typedef struct {
    unsigned size;                   //  members (tasks at once)
    bool threads;                    //  threads instead of processes
    unsigned max_tasks;              //  tasks per member before it is replaced; 0: no limit
    drover_init_fn *init;            //  run once in each member first, or NULL
    void *init_arg;                  //  its argument
    const drv_pool_function_t *functions;  //  what members can run
    size_t nfunctions;               //  entries in functions
    size_t max_output;               //  largest reply accepted
    const drv_sandbox_t *sandbox;    //  limits for member processes, or NULL
} drv_pool_config_t;

//  One finished task; data and reason are borrowed until the pass ends.
typedef void (drv_pool_result_fn) (void *arg, uint64_t job_id, drover_outcome_t outcome,
                                   const uint8_t *data, size_t size, const char *reason);

//  A running task's progress report; partial is borrowed for the call,
//  NULL when only the numbers are new (keep the partial output as it was).
typedef void (drv_pool_progress_fn) (void *arg, uint64_t job_id, uint64_t done, uint64_t total,
                                     const uint8_t *partial, size_t size);

//  The end of a loop pass in which results were given: flush them now.
typedef void (drv_pool_pass_fn) (void *arg);

//  Start the members on loop; NULL with err set on failure.
drv_pool_t *
    drv_pool_new (zloop_t *loop, const drv_pool_config_t *config, drv_pool_result_fn *result,
                  drv_pool_pass_fn *pass, void *arg, char *err, size_t err_size);

//  Be told of the progress reports handlers make (drover_task_progress);
//  without this they are dropped.
void
    drv_pool_set_progress (drv_pool_t *self, drv_pool_progress_fn *progress);

//  Stop the members (killed and reaped; threads joined) and NULL the pointer.
void
    drv_pool_destroy (drv_pool_t **self_p);

//  Queue a task for function index fn; the payload is copied. A task of
//  64 KiB or more goes to a member at once instead, when nothing is
//  queued and a member has room under its even share. 0 or -1.
int
    drv_pool_submit (drv_pool_t *self, uint64_t job_id, size_t fn, const void *payload,
                     size_t size, uint32_t timeout_ms);

//  Lets go of a payload the pool kept (drv_pool_submit_kept).
typedef void (drv_pool_release_fn) (void *owner);

//  Queue a task whose payload the pool keeps where it is instead of
//  copying it: a member that can copies it from there itself (one copy,
//  with process_vm_readv in a process), others get it inline. The pool
//  calls release (owner) once, when the task is answered or dropped, or
//  at once if this fails; payload must stay valid until then. Like
//  drv_pool_submit, the task goes to a member at once when nothing is
//  queued and one has room. 0 or -1.
int
    drv_pool_submit_kept (drv_pool_t *self, uint64_t job_id, size_t fn, const void *payload,
                          size_t size, uint32_t timeout_ms, drv_pool_release_fn *release,
                          void *owner);

//  Hand queued tasks to members, in batches. Call after a run of submits.
void
    drv_pool_flush (drv_pool_t *self);

//  Stop a task: dropped if queued; its member is killed if it holds it
//  (not in threads mode). A result still follows, once. true if found.
bool
    drv_pool_cancel (drv_pool_t *self, uint64_t job_id);

//  Tasks queued or held by members.
size_t
    drv_pool_pending (drv_pool_t *self);

//  Members forked (or threads started) so far, replacements included.
uint64_t
    drv_pool_spawned (drv_pool_t *self);

#ifdef __cplusplus
}
#endif

#endif
