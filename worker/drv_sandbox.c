/*  drv_sandbox.c - per-task limits and the user a task runs as.

    The limits are plain rlimits set in the child between fork and the
    task; the user switch comes after them, so that root can still set
    what it likes. A failed task's reason is then checked against the
    limits: a SIGXCPU (or a SIGKILL after the CPU budget) is the CPU
    limit; a peak resident size close to the memory limit is the memory
    limit; a process group about as large as the process limit is the
    process limit. These are inferences from what the kernel reports, so
    the reason keeps what the task said as well.
*/

#include "drv_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The CPU hard limit a pool member may not raise past; set by enter.
static rlim_t s_cpu_hard = RLIM_INFINITY;

void
drv_sandbox_reset_child (void)
{
    setpgid (0, 0);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset (&action.sa_mask);
    for (int signum = 1; signum < NSIG; signum++)
        if (signum != SIGKILL && signum != SIGSTOP)
            sigaction (signum, &action, NULL);  //  fails harmlessly on
                                                //  libc-reserved signals
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
}

bool
drv_sandbox_active (const drv_sandbox_t *self)
{
    return self
           && (self->max_memory || self->max_cpu || self->max_files || self->max_procs
               || self->has_user);
}

int
drv_sandbox_set_user (drv_sandbox_t *self, const char *name, char *err, size_t err_size)
{
    if (geteuid () != 0) {
        snprintf (err, err_size, "running tasks as user '%s' needs the worker to run as root",
                  name);
        return -1;
    }
    char buffer [16384];
    struct passwd entry, *found = NULL;
    char *end;
    unsigned long number = strtoul (name, &end, 10);
    if (*name && !*end)
        getpwuid_r ((uid_t) number, &entry, buffer, sizeof buffer, &found);
    else
        getpwnam_r (name, &entry, buffer, sizeof buffer, &found);
    if (!found) {
        snprintf (err, err_size, "no user '%s' on this machine", name);
        return -1;
    }
    if (found->pw_uid == 0) {
        snprintf (err, err_size, "user '%s' is root: name an unprivileged user", name);
        return -1;
    }
    self->uid = found->pw_uid;
    self->gid = found->pw_gid;
    self->ngroups = DRV_SANDBOX_GROUPS;
    if (getgrouplist (found->pw_name, found->pw_gid, self->groups, &self->ngroups) == -1) {
        self->groups [0] = found->pw_gid;
        self->ngroups = 1;
    }
    snprintf (self->user, sizeof self->user, "%s", found->pw_name);
    self->has_user = true;
    return 0;
}

int
drv_sandbox_check (const drv_sandbox_t *self, char *err, size_t err_size)
{
    if (self->max_procs && !self->has_user && geteuid () == 0) {
        snprintf (err, err_size,
                  "a process limit does not bind root; add a user to run tasks as "
                  "(--user NAME), ideally one used for nothing else");
        return -1;
    }
    return 0;
}

static int
s_set (int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit limit = {.rlim_cur = soft, .rlim_max = hard};
    return setrlimit (resource, &limit);
}

int
drv_sandbox_enter (const drv_sandbox_t *self, uint64_t base_vm)
{
    if (!self)
        return 0;
    struct rlimit current;
    if (self->max_files && s_set (RLIMIT_NOFILE, self->max_files, self->max_files) == -1)
        return -1;
    if (self->max_memory) {
        rlim_t bytes = (rlim_t) (base_vm + self->max_memory);
        if (s_set (RLIMIT_AS, bytes, bytes) == -1)
            return -1;
    }
    if (self->max_cpu) {
        //  exec: tasks get SIGXCPU at the limit and SIGKILL a second
        //  later; pool members keep their hard limit so that the budget
        //  can be renewed before each task.
        getrlimit (RLIMIT_CPU, &current);
        s_cpu_hard = base_vm ? current.rlim_max : self->max_cpu + 1;
        if (s_set (RLIMIT_CPU, self->max_cpu, s_cpu_hard) == -1)
            return -1;
    }
    if (self->max_procs && s_set (RLIMIT_NPROC, self->max_procs, self->max_procs) == -1)
        return -1;
    if (self->has_user) {
        if (setgroups ((size_t) self->ngroups, self->groups) == -1 || setgid (self->gid) == -1
            || setuid (self->uid) == -1)
            return -1;
    }
    return 0;
}

void
drv_sandbox_renew_cpu (const drv_sandbox_t *self)
{
    if (!self || !self->max_cpu)
        return;
    struct rusage usage;
    if (getrusage (RUSAGE_SELF, &usage) == -1)
        return;
    rlim_t used = (rlim_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1;
    rlim_t soft = used + self->max_cpu;
    if (s_cpu_hard != RLIM_INFINITY && soft > s_cpu_hard)
        soft = s_cpu_hard;
    s_set (RLIMIT_CPU, soft, s_cpu_hard);
}

uint64_t
drv_sandbox_vm_size (void)
{
    int fd = open ("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    char text [128];
    ssize_t size = read (fd, text, sizeof text - 1);
    close (fd);
    if (size <= 0)
        return 0;
    uint64_t pages = 0;
    for (ssize_t i = 0; i < size && text [i] >= '0' && text [i] <= '9'; i++)
        pages = pages * 10 + (uint64_t) (text [i] - '0');
    return pages * (uint64_t) sysconf (_SC_PAGESIZE);
}

unsigned
drv_sandbox_group_size (pid_t pgid)
{
    DIR *dir = opendir ("/proc");
    if (!dir)
        return 0;
    unsigned count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] < '1' || entry->d_name [0] > '9')
            continue;
        char path [300], text [512];
        snprintf (path, sizeof path, "/proc/%s/stat", entry->d_name);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            continue;
        ssize_t size = read (fd, text, sizeof text - 1);
        close (fd);
        if (size <= 0)
            continue;
        text [size] = 0;
        //  pid (comm) state ppid pgrp ...; comm may hold spaces and ')'
        char *close_paren = strrchr (text, ')');
        int ppid, group;
        char state;
        if (close_paren && sscanf (close_paren + 1, " %c %d %d", &state, &ppid, &group) == 3
            && group == pgid && state != 'Z')
            count++;
    }
    closedir (dir);
    return count;
}

//  "64 MiB", "1 GiB", or bytes.
static void
s_format_bytes (uint64_t bytes, char *out, size_t size)
{
    if (bytes && bytes % (1024 * 1024 * 1024ULL) == 0)
        snprintf (out, size, "%" PRIu64 " GiB", bytes >> 30);
    else
    if (bytes && bytes % (1024 * 1024) == 0)
        snprintf (out, size, "%" PRIu64 " MiB", bytes >> 20);
    else
        snprintf (out, size, "%" PRIu64 " bytes", bytes);
}

//  Put prefix before the reason, in place.
static void
s_prefix (char *reason, size_t size, const char *prefix)
{
    char *old = strdup (reason);
    if (!old)
        return;
    snprintf (reason, size, "%s%s%s", prefix, *old ? ": " : "", old);
    free (old);
}

bool
drv_sandbox_explain (const drv_sandbox_t *self, int signal, const struct rusage *usage,
                     uint64_t base_rss, unsigned group, char *reason, size_t size)
{
    if (!self)
        return false;
    char text [128];
    if (self->max_cpu) {
        double cpu = usage ? (double) usage->ru_utime.tv_sec + usage->ru_stime.tv_sec
                                 + (usage->ru_utime.tv_usec + usage->ru_stime.tv_usec) / 1e6
                           : 0;
        if (signal == SIGXCPU || (signal == SIGKILL && cpu >= self->max_cpu)) {
            snprintf (reason, size, "CPU time limit of %" PRIu32 " s exceeded", self->max_cpu);
            return true;
        }
    }
    if (self->max_memory && usage) {
        uint64_t peak = (uint64_t) usage->ru_maxrss * 1024;
        uint64_t grown = peak > base_rss ? peak - base_rss : 0;
        if (grown >= self->max_memory / 4 * 3) {
            char limit [32];
            s_format_bytes (self->max_memory, limit, sizeof limit);
            snprintf (text, sizeof text, "memory limit of %s exceeded (peak %" PRIu64 " MiB)",
                      limit, grown >> 20);
            s_prefix (reason, size, text);
            return true;
        }
    }
    if (self->max_procs && group >= 2 && group >= self->max_procs / 2) {
        snprintf (text, sizeof text, "process limit of %" PRIu32 " reached (%u processes)",
                  self->max_procs, group);
        s_prefix (reason, size, text);
        return true;
    }
    return false;
}
