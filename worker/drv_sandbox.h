/*  drv_sandbox.h - per-task limits and the user a task runs as.

    Limits on address space (RLIMIT_AS), CPU seconds (RLIMIT_CPU), open
    files (RLIMIT_NOFILE) and processes (RLIMIT_NPROC), and an optional
    user to switch to, applied in a freshly forked child: an exec: task
    before it calls exec, a pool member before its initializer. Then, when
    a task fails, the reason it would otherwise get is turned into one that
    names the limit it ran into.

    Not a container: no namespaces, no cgroups. RLIMIT_NPROC counts every
    process (thread) of the real user id and does not bind root, so a
    process limit needs a user to run as (or a worker that is not root).
*/

#ifndef DRV_SANDBOX_H_INCLUDED
#define DRV_SANDBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRV_SANDBOX_GROUPS 64        //  supplementary groups kept for the user

typedef struct {
    uint64_t max_memory;             //  bytes of address space per task; 0: none
    uint32_t max_cpu;                //  CPU seconds per task; 0: none
    uint32_t max_files;              //  open files per task; 0: none
    uint32_t max_procs;              //  processes of the task's user; 0: none
    bool has_user;                   //  switch to uid/gid below
    uid_t uid;                       //  the user to run as
    gid_t gid;                       //  its primary group
    gid_t groups [DRV_SANDBOX_GROUPS];   //  its supplementary groups
    int ngroups;                     //  entries in groups
    char user [64];                  //  its name, for messages
} drv_sandbox_t;

//  Whether any limit or a user is set.
bool
    drv_sandbox_active (const drv_sandbox_t *self);

//  Look the user up (name or number) and keep its ids. Needs root. 0 or -1 with err.
int
    drv_sandbox_set_user (drv_sandbox_t *self, const char *name, char *err, size_t err_size);

//  Check the settings make sense for this process (e.g. a process limit
//  binds nothing for root without a user). 0 or -1 with err.
int
    drv_sandbox_check (const drv_sandbox_t *self, char *err, size_t err_size);

//  In a forked child, first thing: its own process group, default
//  dispositions for every signal and an empty signal mask, as a freshly
//  started program has, whatever the worker had. Async-signal-safe.
void
    drv_sandbox_reset_child (void);

//  In a forked child: apply the limits, then switch user. base_vm is
//  added to the memory limit (a pool member's own size); only
//  async-signal-safe calls. 0, or -1 with errno set.
int
    drv_sandbox_enter (const drv_sandbox_t *self, uint64_t base_vm);

//  In a pool member before each task: a fresh CPU budget (soft limit =
//  CPU used so far + max_cpu). Two system calls; none without a CPU limit.
void
    drv_sandbox_renew_cpu (const drv_sandbox_t *self);

//  Bytes of address space this process maps now (from /proc/self/statm), or 0.
uint64_t
    drv_sandbox_vm_size (void);

//  Processes in process group pgid now (scans /proc), for a failed task.
unsigned
    drv_sandbox_group_size (pid_t pgid);

//  Turn a failed task's reason into one that names the limit it hit,
//  in place. signal is the signal that ended it (0 if none); usage its
//  resources (NULL if unknown); base_rss the bytes resident before the
//  task began; group the processes left in its group (0 if unknown).
//  Returns true if a limit was named.
bool
    drv_sandbox_explain (const drv_sandbox_t *self, int signal, const struct rusage *usage,
                         uint64_t base_rss, unsigned group, char *reason, size_t size);

#ifdef __cplusplus
}
#endif

#endif
