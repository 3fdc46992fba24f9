/*  drv_exec.h - run one task program under a zloop.

    Runs a program per task without threads, blocking only until the
    child has called exec: the payload goes
    to the child's stdin, its stdout becomes the result, the tail of its
    stderr becomes the failure reason, and lines it writes on descriptor 3
    (DROVER_PROGRESS_FD) are its progress. The child runs in its own process
    group, which is killed as a whole on timeout, on cancel, and when the
    child ends. Limits and a user to run as (drv_sandbox) are applied
    between fork and exec. Use an exec object from the thread that runs its loop, and
    destroy a running exec before its loop.
*/

#ifndef DRV_EXEC_H_INCLUDED
#define DRV_EXEC_H_INCLUDED

#include <czmq.h>
#include <sys/types.h>
#include "drover.h"
#include "drv_sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _drv_exec_t drv_exec_t;

//  Called once from the loop when the task has finished; may destroy exec.
typedef void (drv_exec_done_fn) (drv_exec_t *exec, void *arg);

//  Called from the loop with the latest progress line the task wrote on
//  the descriptor named by DROVER_PROGRESS_FD; partial is borrowed.
typedef void (drv_exec_progress_fn) (drv_exec_t *exec, void *arg, uint64_t done,
                                     uint64_t total, const uint8_t *partial, size_t size);

//  Split "PROGRAM ARG..." on spaces into a NULL-terminated argv; NULL if no word.
char **
    drv_exec_argv_new (const char *spec);

//  Free an argv from drv_exec_argv_new and NULL the pointer.
void
    drv_exec_argv_destroy (char ***argv_p);

//  Start argv[0] with payload on its stdin, under sandbox (borrowed for
//  the exec's life; NULL: no limits); NULL with err set on failure.
drv_exec_t *
    drv_exec_start (zloop_t *loop, char *const argv[], const void *payload, size_t size,
                    uint32_t timeout_ms, size_t max_output, const drv_sandbox_t *sandbox,
                    drv_exec_done_fn *done, void *arg, char *err, size_t err_size);

//  Be told of the task's progress lines: "DONE TOTAL [PARTIAL]" on the
//  pipe the program finds at descriptor DROVER_PROGRESS_FD (3) of its
//  environment. Lines that do not parse (or say more done than total)
//  are ignored; PARTIAL is cut to DROVER_PROGRESS_PARTIAL_MAX bytes;
//  when several lines are read at once only the last counts.
void
    drv_exec_set_progress (drv_exec_t *self, drv_exec_progress_fn *progress, void *arg);

//  After done: how the task ended.
drover_outcome_t
    drv_exec_outcome (drv_exec_t *self);

//  After done: stdout bytes, NUL-terminated, borrowed until destroy.
const uint8_t *
    drv_exec_output (drv_exec_t *self, size_t *size);

//  After done: "" on success, else why the task failed (borrowed).
const char *
    drv_exec_reason (drv_exec_t *self);

//  The child's pid (0 once reaped).
pid_t
    drv_exec_pid (drv_exec_t *self);

//  Kill the task's process group now; done still follows, once.
void
    drv_exec_kill (drv_exec_t *self);

//  Destroy and NULL the pointer; a running task is killed and reaped, no done.
void
    drv_exec_destroy (drv_exec_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
