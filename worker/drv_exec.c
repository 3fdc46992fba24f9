/*  drv_exec.c - run one task program, driven by a zloop.

    Starts the program for one task in its own process group, feeds the
    payload to its stdin, keeps its stdout as the result and the tail of its
    stderr for the failure reason, and reports once, from the loop, how it
    ended. Everything but the short wait between fork and exec (reading
    the exec status pipe) is non-blocking; exit is seen through a pidfd.

    It is not a shell (no quoting, no redirection) and uses no threads;
    its limits are rlimits and a user switch (drv_sandbox), not a
    container. Processes
    that leave the task's process group (setsid) escape its kills.
*/

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "drv_exec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STDERR_TAIL_MAX  2048           //  Bytes of stderr kept for the reason
#define OUTPUT_CHUNK     65536          //  First size of the stdout buffer
#define READS_PER_EVENT  16             //  Reads per readable event (fairness)
#define WRITES_PER_EVENT 16             //  Writes per writable event
#define READS_TO_DRAIN   1024           //  Most reads when draining at exit
#define PROGRESS_FD      3              //  The child's progress pipe
#define PROGRESS_LINE_MAX (DROVER_PROGRESS_PARTIAL_MAX + 64)   //  Bytes of one line kept

//  Why we killed the task's process group; the first cause wins
typedef enum {
    KILL_NONE,                          //  We have not killed it
    KILL_TIMEOUT,                       //  Our timer ran out
    KILL_OUTPUT,                        //  Its stdout went over max_output
    KILL_NOMEM,                         //  We could not hold its stdout
    KILL_CANCEL                         //  drv_exec_kill or destroy
} kill_cause_t;

struct _drv_exec_t {
    drv_exec_t *next;                   //  Next live exec in the registry
    uintptr_t serial;                   //  Unique id; the arg zloop hands back
    zloop_t *loop;                      //  Loop we run under, not owned
    pid_t pid;                          //  Child's pid, 0 once reaped
    pid_t pgid;                         //  Child's process group (= its pid)
    int pidfd;                          //  Readable once the child exits, or -1
    int stdin_fd;                       //  Write end of child's stdin, or -1
    int stdout_fd;                      //  Read end of child's stdout, or -1
    int stderr_fd;                      //  Read end of child's stderr, or -1
    int progress_fd;                    //  Read end of child's progress pipe, or -1
    char *line;                         //  Progress line being read, owned
    size_t line_size;                   //  Bytes in line
    bool line_cut;                      //  Line was longer than we keep
    char *latest;                       //  Last whole valid line, owned
    uint64_t latest_done;               //  Its numbers
    uint64_t latest_total;
    size_t latest_at;                   //  Where its partial output starts
    size_t latest_size;                 //  Bytes of partial output
    bool latest_new;                    //  Not yet reported
    bool progress_warned;               //  A bad line was logged
    drv_exec_progress_fn *progress;     //  Told of progress, or NULL
    void *progress_arg;                 //  Its argument
    int timer_id;                       //  Our timeout timer, or -1
    uint32_t timeout_ms;                //  Timeout asked for, 0 for none
    uint8_t *payload;                   //  Payload still to write, owned
    size_t payload_size;                //  Bytes in payload
    size_t payload_sent;                //  Bytes of payload written so far
    uint8_t *output;                    //  Stdout so far plus a NUL, owned
    size_t output_size;                 //  Bytes in output, NUL not counted
    size_t output_capacity;             //  Bytes output holds before the NUL
    size_t max_output;                  //  Largest stdout we accept
    char tail [STDERR_TAIL_MAX];        //  Last bytes of stderr
    size_t tail_size;                   //  Bytes in tail
    bool tail_cut;                      //  True if stderr was longer than tail
    bool exec_failed;                   //  True if exec failed; reason is set
    kill_cause_t kill_cause;            //  Why we killed the group
    bool finished;                      //  True once done is due
    drover_outcome_t outcome;           //  How it ended, valid after done
    char reason [STDERR_TAIL_MAX + 256];    //  Why it failed, "" if it did not
    const drv_sandbox_t *sandbox;       //  Limits, borrowed, or NULL
    unsigned group;                     //  Processes in its group when last counted
    bool has_usage;                     //  usage is set
    struct rusage usage;                //  Its resources, once reaped
    drv_exec_done_fn *done;             //  Called once when finished
    void *done_arg;                     //  Argument for done
};

//  Live execs, so that handlers can tell a stale event from a live one:
//  zloop hands our handlers a serial number, never a pointer that might
//  have been freed in the same loop iteration.
static pthread_mutex_t s_registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static drv_exec_t *s_registry = NULL;   //  Live execs, linked by next
static uintptr_t s_last_serial = 0;     //  Last serial handed out


//  Add an exec to the registry and give it a serial number

static void
s_register_exec (drv_exec_t *self)
{
    pthread_mutex_lock (&s_registry_mutex);
    self->serial = ++s_last_serial;
    if (self->serial == 0)              //  Wrapped around, skip 0
        self->serial = ++s_last_serial;
    self->next = s_registry;
    s_registry = self;
    pthread_mutex_unlock (&s_registry_mutex);
}


//  Remove an exec from the registry

static void
s_unregister_exec (drv_exec_t *self)
{
    pthread_mutex_lock (&s_registry_mutex);
    drv_exec_t **link_p = &s_registry;
    while (*link_p && *link_p != self)
        link_p = &(*link_p)->next;
    if (*link_p)
        *link_p = self->next;
    pthread_mutex_unlock (&s_registry_mutex);
}


//  Find the live exec a zloop arg stands for, or NULL if it is gone

static drv_exec_t *
s_find_exec (void *arg)
{
    uintptr_t serial = (uintptr_t) arg;
    pthread_mutex_lock (&s_registry_mutex);
    drv_exec_t *exec = s_registry;
    while (exec && exec->serial != serial)
        exec = exec->next;
    pthread_mutex_unlock (&s_registry_mutex);
    return exec;
}


//  Format an error into the caller's buffer, if there is one

static void
s_set_error (char *err, size_t err_size, const char *format, ...)
{
    if (!err || err_size == 0)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (err, err_size, format, args);
    va_end (args);
}


//  Move a descriptor off 0, 1 and 2, so that dup2 in the child cannot
//  clobber it; returns the descriptor to use, -1 on error (fd is closed)

static int
s_move_fd (int fd)
{
    if (fd < 0 || fd > STDERR_FILENO)
        return fd;
    int moved = fcntl (fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    int saved_errno = errno;
    close (fd);
    errno = saved_errno;
    return moved;
}


//  Create a close-on-exec pipe with both ends above stdio; 0 or -1

static int
s_open_pipe (int fds [2])
{
    if (pipe2 (fds, O_CLOEXEC) == -1)
        return -1;
    fds [0] = s_move_fd (fds [0]);
    fds [1] = s_move_fd (fds [1]);
    if (fds [0] == -1 || fds [1] == -1) {
        int saved_errno = errno;
        if (fds [0] != -1)
            close (fds [0]);
        if (fds [1] != -1)
            close (fds [1]);
        fds [0] = fds [1] = -1;
        errno = saved_errno;
        return -1;
    }
    return 0;
}


//  Close a descriptor if it is open and mark it closed

static void
s_close_fd (int *fd_p)
{
    if (*fd_p != -1) {
        close (*fd_p);
        *fd_p = -1;
    }
}


//  Make a descriptor non-blocking

static void
s_set_nonblocking (int fd)
{
    int flags = fcntl (fd, F_GETFL);
    if (flags != -1)
        fcntl (fd, F_SETFL, flags | O_NONBLOCK);
}


//  In the child: report errno on the status pipe and exit

static void
s_report_failure (int status_fd)
{
    int code = errno;
    while (write (status_fd, &code, sizeof code) == -1 && errno == EINTR)
        ;
    _exit (127);
}


//  In the child: set up stdio, signals and the process group, and exec.
//  Only async-signal-safe calls here: the parent may have threads.

static void
s_exec_child (char *const argv [], int stdin_fd, int stdout_fd, int stderr_fd,
              int status_fd, int progress_fd, char **envp, const drv_sandbox_t *sandbox)
{
    drv_sandbox_reset_child ();

    //  All pipe ends are above stdio and distinct, so order is safe
    if (dup2 (stdin_fd, STDIN_FILENO) == -1
    ||  dup2 (stdout_fd, STDOUT_FILENO) == -1
    ||  dup2 (stderr_fd, STDERR_FILENO) == -1)
        s_report_failure (status_fd);
    //  The progress pipe goes to PROGRESS_FD, the status pipe above it
    if (status_fd == PROGRESS_FD) {
        status_fd = fcntl (status_fd, F_DUPFD_CLOEXEC, PROGRESS_FD + 1);
        if (status_fd == -1)
            _exit (127);
    }
    if (progress_fd == PROGRESS_FD) {
        if (fcntl (PROGRESS_FD, F_SETFD, 0) == -1)
            s_report_failure (status_fd);
    }
    else
    if (dup2 (progress_fd, PROGRESS_FD) == -1)
        s_report_failure (status_fd);

    //  Close every other descriptor; the status pipe closes on exec
    int rc = 0;
    if (status_fd > PROGRESS_FD + 1)
        rc = close_range (PROGRESS_FD + 1, (unsigned) status_fd - 1, 0);
    if (rc == 0)
        rc = close_range ((unsigned) status_fd + 1, ~0U, 0);
    if (rc == -1) {
        struct rlimit limit;
        int max_fd = 65536;
        if (getrlimit (RLIMIT_NOFILE, &limit) == 0
        &&  limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < 65536)
            max_fd = (int) limit.rlim_cur;
        for (int fd = PROGRESS_FD + 1; fd < max_fd; fd++)
            if (fd != status_fd)
                close (fd);
    }
    if (drv_sandbox_enter (sandbox, 0) == -1)
        s_report_failure (status_fd);
    if (envp)
        environ = envp;
    execvp (argv [0], argv);
    s_report_failure (status_fd);
}


//  Read the child's exec status: 0 if exec succeeded, else its errno

static int
s_read_exec_status (int status_fd)
{
    int code = 0;
    ssize_t rc;
    do
        rc = read (status_fd, &code, sizeof code);
    while (rc == -1 && errno == EINTR);
    if (rc == (ssize_t) sizeof code)
        return code ? code : EIO;
    return rc == 0 ? 0 : EIO;           //  EOF: exec closed the pipe
}


//  Write without dying of SIGPIPE if the reader has gone: block SIGPIPE in
//  this thread and swallow the one our write raised. EPIPE is returned.

static ssize_t
s_write_quietly (int fd, const void *data, size_t size)
{
    sigset_t sigpipe, pending, old_mask;
    sigemptyset (&sigpipe);
    sigaddset (&sigpipe, SIGPIPE);
    sigpending (&pending);
    bool was_pending = sigismember (&pending, SIGPIPE) == 1;
    pthread_sigmask (SIG_BLOCK, &sigpipe, &old_mask);

    ssize_t rc = write (fd, data, size);
    int saved_errno = errno;
    if (rc == -1 && saved_errno == EPIPE && !was_pending) {
        struct timespec no_wait = { 0, 0 };
        while (sigtimedwait (&sigpipe, NULL, &no_wait) == -1 && errno == EINTR)
            ;
    }
    pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
    errno = saved_errno;
    return rc;
}


//  Kill the whole process group, while the leader is not yet reaped (so
//  its pid, which is the group id, cannot have been reused)

static void
s_kill_group (drv_exec_t *self)
{
    if (self->pid > 1) {
        if (self->pgid > 1)
            kill (-self->pgid, SIGKILL);
        kill (self->pid, SIGKILL);      //  In case it is not in its group
    }
}


//  With a process limit, note how many processes its group holds (before
//  a kill), to say later whether it ran into the limit

static void
s_count_group (drv_exec_t *self)
{
    if (self->sandbox && self->sandbox->max_procs && self->pgid > 1) {
        unsigned group = drv_sandbox_group_size (self->pgid);
        if (group > self->group)
            self->group = group;
    }
}


//  Kill the task for a cause; the first cause is the one we report

static void
s_stop_task (drv_exec_t *self, kill_cause_t cause)
{
    if (self->kill_cause == KILL_NONE)
        self->kill_cause = cause;
    s_count_group (self);
    s_kill_group (self);
}


//  Stop polling a descriptor of ours and close it

static void
s_end_fd (drv_exec_t *self, int *fd_p)
{
    if (*fd_p != -1) {
        zmq_pollitem_t item = { NULL, *fd_p, 0, 0 };
        zloop_poller_end (self->loop, &item);
        s_close_fd (fd_p);
    }
}


//  Stop writing stdin: the child sees EOF; the payload is freed

static void
s_end_stdin (drv_exec_t *self)
{
    s_end_fd (self, &self->stdin_fd);
    free (self->payload);
    self->payload = NULL;
    self->payload_size = self->payload_sent = 0;
}


//  Take every descriptor and the timer off the loop and close them

static void
s_detach (drv_exec_t *self)
{
    s_end_stdin (self);
    s_end_fd (self, &self->stdout_fd);
    s_end_fd (self, &self->stderr_fd);
    s_end_fd (self, &self->progress_fd);
    s_end_fd (self, &self->pidfd);
    if (self->timer_id != -1) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
}


//  Write as much payload as the pipe takes, up to max_writes writes

static void
s_write_stdin (drv_exec_t *self, size_t max_writes)
{
    size_t writes = 0;
    while (self->stdin_fd != -1 && writes++ < max_writes) {
        if (self->payload_sent == self->payload_size) {
            s_end_stdin (self);
            break;
        }
        ssize_t rc = s_write_quietly (self->stdin_fd,
                                      self->payload + self->payload_sent,
                                      self->payload_size - self->payload_sent);
        if (rc > 0)
            self->payload_sent += (size_t) rc;
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
        if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else                            //  EPIPE: it wants no more input
            s_end_stdin (self);
    }
    if (self->stdin_fd != -1 && self->payload_sent == self->payload_size)
        s_end_stdin (self);
}


//  Grow the stdout buffer, at most to max_output + 1 bytes (one more than
//  we accept, to see when it is over); 0 or -1

static int
s_grow_output (drv_exec_t *self)
{
    size_t limit = self->max_output < SIZE_MAX - 1? self->max_output + 1: SIZE_MAX - 1;
    size_t capacity = self->output_capacity < OUTPUT_CHUNK? OUTPUT_CHUNK:
                      self->output_capacity < SIZE_MAX / 4? self->output_capacity * 2: limit;
    if (capacity > limit)
        capacity = limit;
    if (capacity <= self->output_capacity)
        return -1;
    uint8_t *output = (uint8_t *) realloc (self->output, capacity + 1);
    if (!output)
        return -1;
    self->output = output;
    self->output_capacity = capacity;
    self->output [self->output_size] = 0;
    return 0;
}


//  Read what stdout has, up to max_reads reads; kill the task if it is
//  over max_output

static void
s_read_stdout (drv_exec_t *self, size_t max_reads)
{
    size_t reads = 0;
    while (self->stdout_fd != -1 && reads++ < max_reads) {
        if (self->output_size == self->output_capacity
        &&  s_grow_output (self) == -1) {
            s_stop_task (self, KILL_NOMEM);
            s_end_fd (self, &self->stdout_fd);
            break;
        }
        ssize_t rc = read (self->stdout_fd, self->output + self->output_size,
                           self->output_capacity - self->output_size);
        if (rc > 0) {
            self->output_size += (size_t) rc;
            self->output [self->output_size] = 0;
            if (self->output_size > self->max_output) {
                s_stop_task (self, KILL_OUTPUT);
                s_end_fd (self, &self->stdout_fd);
            }
        }
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
        if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else                            //  EOF or error: no more stdout
            s_end_fd (self, &self->stdout_fd);
    }
}


//  Keep the last STDERR_TAIL_MAX bytes of stderr

static void
s_keep_tail (drv_exec_t *self, const char *data, size_t size)
{
    if (size >= STDERR_TAIL_MAX) {
        if (self->tail_size > 0 || size > STDERR_TAIL_MAX)
            self->tail_cut = true;
        memcpy (self->tail, data + size - STDERR_TAIL_MAX, STDERR_TAIL_MAX);
        self->tail_size = STDERR_TAIL_MAX;
        return;
    }
    if (self->tail_size + size > STDERR_TAIL_MAX) {
        size_t excess = self->tail_size + size - STDERR_TAIL_MAX;
        memmove (self->tail, self->tail + excess, self->tail_size - excess);
        self->tail_size -= excess;
        self->tail_cut = true;
    }
    memcpy (self->tail + self->tail_size, data, size);
    self->tail_size += size;
}


//  Read what stderr has, up to max_reads reads

static void
s_read_stderr (drv_exec_t *self, size_t max_reads)
{
    char buffer [16384];
    size_t reads = 0;
    while (self->stderr_fd != -1 && reads++ < max_reads) {
        ssize_t rc = read (self->stderr_fd, buffer, sizeof buffer);
        if (rc > 0)
            s_keep_tail (self, buffer, (size_t) rc);
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
        if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else                            //  EOF or error: no more stderr
            s_end_fd (self, &self->stderr_fd);
    }
}


//  A whole progress line is in self->line: keep it as the latest if it
//  reads "DONE TOTAL [PARTIAL]"

static void
s_take_line (drv_exec_t *self)
{
    char *line = self->line;
    size_t size = self->line_size;
    line [size] = 0;
    char *end = NULL;
    bool ok = isdigit ((unsigned char) line [0]);
    errno = 0;
    uint64_t done = ok? strtoull (line, &end, 10): 0;
    ok = ok && errno == 0 && *end == ' ' && isdigit ((unsigned char) end [1]);
    uint64_t total = ok? strtoull (end + 1, &end, 10): 0;
    ok = ok && errno == 0 && (*end == 0 || *end == ' ') && (total == 0 || done <= total);
    if (!ok) {
        if (!self->progress_warned)
            zsys_warning ("exec: progress line not understood (write DONE TOTAL [TEXT]): "
                          "%.80s", line);
        self->progress_warned = true;
        return;
    }
    size_t at = *end == ' '? (size_t) (end + 1 - line): size;
    size_t partial = size - at;
    if (partial > DROVER_PROGRESS_PARTIAL_MAX)
        partial = DROVER_PROGRESS_PARTIAL_MAX;
    //  Swap the buffers: the line becomes the latest, no copy
    self->line = self->latest;
    self->latest = line;
    self->latest_done = done;
    self->latest_total = total;
    self->latest_at = at;
    self->latest_size = partial;
    self->latest_new = true;
}


//  Read what the progress pipe has, up to max_reads reads, and report the
//  last whole line

static void
s_read_progress (drv_exec_t *self, size_t max_reads)
{
    char buffer [16384];
    size_t reads = 0;
    while (self->progress_fd != -1 && reads++ < max_reads) {
        ssize_t rc = read (self->progress_fd, buffer, sizeof buffer);
        if (rc > 0) {
            for (size_t at = 0; at < (size_t) rc;) {
                char *newline = (char *) memchr (buffer + at, '\n', (size_t) rc - at);
                size_t length = newline? (size_t) (newline - buffer) - at: (size_t) rc - at;
                size_t room = PROGRESS_LINE_MAX - self->line_size;
                if (length > room)
                    self->line_cut = true;
                memcpy (self->line + self->line_size, buffer + at, length < room? length: room);
                self->line_size += length < room? length: room;
                at += length + (newline? 1: 0);
                if (newline) {
                    s_take_line (self);
                    self->line_size = 0;
                    self->line_cut = false;
                }
            }
        }
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
        if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else                            //  EOF or error: no more progress
            s_end_fd (self, &self->progress_fd);
    }
    if (self->latest_new && self->progress) {
        self->latest_new = false;
        self->progress (self, self->progress_arg, self->latest_done, self->latest_total,
                        (const uint8_t *) self->latest + self->latest_at, self->latest_size);
    }
}


//  Set the reason to the prefix, plus ": " and the stderr tail if there
//  is any: trailing whitespace trimmed, and if stderr was cut, starting
//  after the first line break so there is no half line

static void
s_set_reason (drv_exec_t *self, const char *prefix)
{
    size_t start = 0;
    size_t end = self->tail_size;
    while (end > start && isspace ((unsigned char) self->tail [end - 1]))
        end--;
    if (self->tail_cut) {
        char *newline = (char *) memchr (self->tail, '\n', end);
        if (newline)
            start = (size_t) (newline - self->tail) + 1;
    }
    int length = snprintf (self->reason, sizeof self->reason, "%s%s",
                           prefix, end > start? ": ": "");
    size_t used = length < 0? 0: (size_t) length;
    if (used >= sizeof self->reason)
        return;
    //  Copy the tail; a NUL byte would end the reason early, so mark it
    for (size_t index = start; index < end && used < sizeof self->reason - 1; index++)
        self->reason [used++] = self->tail [index]? self->tail [index]: '?';
    self->reason [used] = 0;
}


//  Work out outcome and reason, call done. Touch nothing after done: it
//  may have destroyed us.

static void
s_finish (drv_exec_t *self, bool reaped, int status, int wait_errno)
{
    self->finished = true;
    s_detach (self);
    if (self->output && self->output_size > self->max_output) {
        self->output_size = self->max_output;
        self->output [self->output_size] = 0;
    }
    char prefix [128];
    if (self->exec_failed)
        self->outcome = DROVER_OUTCOME_ERROR;   //  Reason set at start
    else
    if (self->kill_cause == KILL_OUTPUT) {
        self->outcome = DROVER_OUTCOME_ERROR;
        snprintf (self->reason, sizeof self->reason,
                  "output larger than %zu bytes", self->max_output);
    }
    else
    if (self->kill_cause == KILL_NOMEM) {
        self->outcome = DROVER_OUTCOME_ERROR;
        snprintf (self->reason, sizeof self->reason,
                  "out of memory after %zu bytes of output", self->output_size);
    }
    else
    if (!reaped) {
        self->outcome = DROVER_OUTCOME_ERROR;
        snprintf (self->reason, sizeof self->reason,
                  "cannot get exit status: %s", strerror (wait_errno));
    }
    else
    if (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL
    &&  self->kill_cause == KILL_TIMEOUT) {
        self->outcome = DROVER_OUTCOME_TIMEOUT;
        snprintf (self->reason, sizeof self->reason,
                  "timed out after %" PRIu32 " ms", self->timeout_ms);
    }
    else
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0) {
        self->outcome = DROVER_OUTCOME_OK;
        self->reason [0] = 0;
    }
    else
    if (WIFEXITED (status)) {
        self->outcome = DROVER_OUTCOME_ERROR;
        snprintf (prefix, sizeof prefix, "exit status %d", WEXITSTATUS (status));
        s_set_reason (self, prefix);
    }
    else
    if (WIFSIGNALED (status)) {
        self->outcome = DROVER_OUTCOME_SIGNAL;
        const char *name = sigabbrev_np (WTERMSIG (status));
        if (name)
            snprintf (prefix, sizeof prefix, "killed by signal SIG%s", name);
        else
            snprintf (prefix, sizeof prefix, "killed by signal %d", WTERMSIG (status));
        s_set_reason (self, prefix);
    }
    else {
        self->outcome = DROVER_OUTCOME_ERROR;
        snprintf (self->reason, sizeof self->reason,
                  "ended with wait status %d", status);
    }
    if (self->outcome != DROVER_OUTCOME_OK && self->kill_cause != KILL_CANCEL
    &&  !self->exec_failed && reaped)
        drv_sandbox_explain (self->sandbox, WIFSIGNALED (status)? WTERMSIG (status): 0,
                             self->has_usage? &self->usage: NULL, 0, self->group,
                             self->reason, sizeof self->reason);
    if (self->done)
        (self->done) (self, self->done_arg);
}


//  The child's stdin can take more

static int
s_handle_stdin (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (self && !self->finished && item->fd == self->stdin_fd)
        s_write_stdin (self, WRITES_PER_EVENT);
    return 0;
}


//  The child's stdout has data or is closed

static int
s_handle_stdout (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (self && !self->finished && item->fd == self->stdout_fd)
        s_read_stdout (self, READS_PER_EVENT);
    return 0;
}


//  The child's stderr has data or is closed

static int
s_handle_stderr (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (self && !self->finished && item->fd == self->stderr_fd)
        s_read_stderr (self, READS_PER_EVENT);
    return 0;
}


//  The child's progress pipe has data or is closed

static int
s_handle_progress (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (self && !self->finished && item->fd == self->progress_fd)
        s_read_progress (self, READS_PER_EVENT);
    return 0;
}


//  The pidfd is readable: the child has exited. Kill what is left of its
//  group while the leader's pid still pins the group id, reap it, drain
//  the pipes and report.

static int
s_handle_exit (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (!self || self->finished || item->fd != self->pidfd || self->pid <= 0)
        return 0;

    //  Check that it has exited without reaping it yet
    siginfo_t info;
    memset (&info, 0, sizeof info);
    int rc = waitid (P_PID, (id_t) self->pid, &info, WEXITED | WNOHANG | WNOWAIT);
    if (rc == 0 && info.si_pid == 0)
        return 0;                       //  Not yet; a spurious wakeup
    if (rc == -1 && errno == EINTR)
        return 0;                       //  The pidfd is still readable
    if (rc == 0) {                      //  Not if someone else reaped it
        s_count_group (self);
        s_kill_group (self);
    }
    int status = 0;
    pid_t reaped;
    do
        reaped = wait4 (self->pid, &status, 0, &self->usage);
    while (reaped == -1 && errno == EINTR);
    self->has_usage = reaped > 0;
    int wait_errno = reaped == -1? errno: 0;
    self->pid = 0;

    //  Whatever the group wrote before it died is still in the pipes
    s_read_stdout (self, READS_TO_DRAIN);
    s_read_stderr (self, READS_TO_DRAIN);
    s_finish (self, reaped > 0, status, wait_errno);
    return 0;
}


//  Our timeout has run out: kill the group; the pidfd then reports it

static int
s_handle_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    drv_exec_t *self = s_find_exec (arg);
    if (self && !self->finished && self->timer_id == timer_id) {
        self->timer_id = -1;            //  zloop drops a once-timer itself
        s_stop_task (self, KILL_TIMEOUT);
    }
    return 0;
}


//  Poll one of our descriptors, tolerant of errors (a pipe whose other end
//  is closed polls as an error, which we handle ourselves); 0 or -1

static int
s_add_poller (drv_exec_t *self, int fd, short events, zloop_fn *handler)
{
    if (fd == -1)
        return 0;
    zmq_pollitem_t item = { NULL, fd, events, 0 };
    if (zloop_poller (self->loop, &item, handler, (void *) self->serial) == -1)
        return -1;
    zloop_poller_set_tolerant (self->loop, &item);
    return 0;
}


//  The environment for a task: ours, with DROVER_PROGRESS_FD naming its
//  progress pipe. Built before fork, as the child may only make
//  async-signal-safe calls. The array is the caller's; the strings are
//  borrowed from environ. NULL if out of memory.

static char **
s_progress_environ (void)
{
    static char progress [] = "DROVER_PROGRESS_FD=3";
    size_t count = 0;
    while (environ && environ [count])
        count++;
    char **envp = (char **) calloc (count + 2, sizeof (char *));
    if (!envp)
        return NULL;
    size_t used = 0;
    for (size_t index = 0; index < count; index++)
        if (strncmp (environ [index], "DROVER_PROGRESS_FD=", 19) != 0)
            envp [used++] = environ [index];
    envp [used] = progress;
    return envp;
}


//  --------------------------------------------------------------------------
//  Split "PROGRAM ARG..." on spaces into a NULL-terminated argv; NULL if no word.

char **
drv_exec_argv_new (const char *spec)
{
    if (!spec)
        return NULL;
    size_t words = 0;
    for (const char *scan = spec; *scan; scan++)
        if (*scan != ' ' && (scan == spec || scan [-1] == ' '))
            words++;
    if (words == 0)
        return NULL;

    char **argv = (char **) calloc (words + 1, sizeof (char *));
    if (!argv)
        return NULL;
    size_t word = 0;
    const char *scan = spec;
    while (*scan) {
        while (*scan == ' ')
            scan++;
        if (!*scan)
            break;
        const char *start = scan;
        while (*scan && *scan != ' ')
            scan++;
        argv [word] = strndup (start, (size_t) (scan - start));
        if (!argv [word]) {
            drv_exec_argv_destroy (&argv);
            return NULL;
        }
        word++;
    }
    return argv;
}


//  --------------------------------------------------------------------------
//  Free an argv from drv_exec_argv_new and NULL the pointer.

void
drv_exec_argv_destroy (char ***argv_p)
{
    assert (argv_p);
    char **argv = *argv_p;
    if (argv) {
        for (char **word = argv; *word; word++)
            free (*word);
        free (argv);
        *argv_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Start argv[0] with payload on its stdin; NULL with err set on failure.

drv_exec_t *
drv_exec_start (zloop_t *loop, char *const argv[], const void *payload, size_t size,
                uint32_t timeout_ms, size_t max_output, const drv_sandbox_t *sandbox,
                drv_exec_done_fn *done, void *arg, char *err, size_t err_size)
{
    if (!loop || !argv || !argv [0] || !*argv [0]) {
        s_set_error (err, err_size, "no program to run");
        return NULL;
    }
    if (!payload)
        size = 0;

    drv_exec_t *self = (drv_exec_t *) calloc (1, sizeof (drv_exec_t));
    if (!self) {
        s_set_error (err, err_size, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->pidfd = self->stdin_fd = self->stdout_fd = self->stderr_fd = -1;
    self->progress_fd = -1;
    self->timer_id = -1;
    self->timeout_ms = timeout_ms;
    self->max_output = max_output;
    self->outcome = DROVER_OUTCOME_ERROR;
    snprintf (self->reason, sizeof self->reason, "task is still running");
    self->sandbox = sandbox;
    self->done = done;
    self->done_arg = arg;
    s_register_exec (self);

    int stdin_pipe [2] = { -1, -1 };
    int stdout_pipe [2] = { -1, -1 };
    int stderr_pipe [2] = { -1, -1 };
    int status_pipe [2] = { -1, -1 };
    int progress_pipe [2] = { -1, -1 };
    self->line = (char *) malloc (PROGRESS_LINE_MAX + 1);
    self->latest = (char *) malloc (PROGRESS_LINE_MAX + 1);
    char **envp = s_progress_environ ();
    if (!self->line || !self->latest || !envp) {
        free (envp);
        s_set_error (err, err_size, "out of memory");
        drv_exec_destroy (&self);
        return NULL;
    }
    if (s_open_pipe (stdin_pipe) == -1
    ||  s_open_pipe (stdout_pipe) == -1
    ||  s_open_pipe (stderr_pipe) == -1
    ||  s_open_pipe (status_pipe) == -1
    ||  s_open_pipe (progress_pipe) == -1) {
        s_set_error (err, err_size, "cannot create pipes: %s", strerror (errno));
        for (int end = 0; end < 2; end++) {
            s_close_fd (&stdin_pipe [end]);
            s_close_fd (&stdout_pipe [end]);
            s_close_fd (&stderr_pipe [end]);
            s_close_fd (&status_pipe [end]);
            s_close_fd (&progress_pipe [end]);
        }
        free (envp);
        drv_exec_destroy (&self);
        return NULL;
    }
    self->stdin_fd = stdin_pipe [1];
    self->stdout_fd = stdout_pipe [0];
    self->stderr_fd = stderr_pipe [0];
    self->progress_fd = progress_pipe [0];

    //  Block all signals across fork so no handler of ours runs in the
    //  child before it resets them
    sigset_t all_signals, old_mask;
    sigfillset (&all_signals);
    pthread_sigmask (SIG_SETMASK, &all_signals, &old_mask);
    pid_t pid = fork ();
    if (pid == 0)
        s_exec_child (argv, stdin_pipe [0], stdout_pipe [1], stderr_pipe [1],
                      status_pipe [1], progress_pipe [1], envp, sandbox);
    int fork_errno = errno;
    pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
    free (envp);
    s_close_fd (&stdin_pipe [0]);
    s_close_fd (&stdout_pipe [1]);
    s_close_fd (&stderr_pipe [1]);
    s_close_fd (&status_pipe [1]);
    s_close_fd (&progress_pipe [1]);
    if (pid == -1) {
        s_close_fd (&status_pipe [0]);
        s_set_error (err, err_size, "cannot fork: %s", strerror (fork_errno));
        drv_exec_destroy (&self);
        return NULL;
    }
    //  Also here, so the group exists before anyone may kill it
    setpgid (pid, pid);
    self->pid = self->pgid = pid;

    self->pidfd = s_move_fd ((int) syscall (SYS_pidfd_open, pid, 0));
    int pidfd_errno = errno;
    int exec_errno = s_read_exec_status (status_pipe [0]);
    s_close_fd (&status_pipe [0]);
    if (self->pidfd == -1) {
        s_set_error (err, err_size, "cannot watch process: %s", strerror (pidfd_errno));
        drv_exec_destroy (&self);       //  Kills and reaps it
        return NULL;
    }
    s_set_nonblocking (self->stdin_fd);
    s_set_nonblocking (self->stdout_fd);
    s_set_nonblocking (self->stderr_fd);
    s_set_nonblocking (self->progress_fd);

    if (exec_errno) {
        //  The child exits with 127; we report it when the pidfd says so
        self->exec_failed = true;
        snprintf (self->reason, sizeof self->reason, "cannot run '%s': %s",
                  argv [0], strerror (exec_errno));
        s_close_fd (&self->stdin_fd);
    }
    else {
        //  Write what the pipe takes now; keep a copy of the rest only
        size_t sent = 0;
        while (sent < size) {
            ssize_t rc = s_write_quietly (self->stdin_fd,
                                          (const uint8_t *) payload + sent, size - sent);
            if (rc > 0)
                sent += (size_t) rc;
            else
            if (rc == -1 && errno == EINTR)
                continue;
            else {
                if (rc == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                    size = sent;        //  EPIPE: it wants no more input
                break;
            }
        }
        if (sent == size)
            s_close_fd (&self->stdin_fd);
        else {
            self->payload = (uint8_t *) malloc (size - sent);
            if (!self->payload) {
                s_set_error (err, err_size, "out of memory");
                drv_exec_destroy (&self);
                return NULL;
            }
            memcpy (self->payload, (const uint8_t *) payload + sent, size - sent);
            self->payload_size = size - sent;
        }
    }

    if (s_add_poller (self, self->pidfd, ZMQ_POLLIN, s_handle_exit)
    ||  s_add_poller (self, self->stdout_fd, ZMQ_POLLIN, s_handle_stdout)
    ||  s_add_poller (self, self->stderr_fd, ZMQ_POLLIN, s_handle_stderr)
    ||  s_add_poller (self, self->progress_fd, ZMQ_POLLIN, s_handle_progress)
    ||  s_add_poller (self, self->stdin_fd, ZMQ_POLLOUT, s_handle_stdin)) {
        s_set_error (err, err_size, "cannot poll the task's descriptors");
        drv_exec_destroy (&self);
        return NULL;
    }
    if (timeout_ms > 0) {
        self->timer_id = zloop_timer (loop, timeout_ms, 1, s_handle_timeout,
                                      (void *) self->serial);
        if (self->timer_id == -1) {
            s_set_error (err, err_size, "cannot set the task's timer");
            drv_exec_destroy (&self);
            return NULL;
        }
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Be told of the task's progress lines.

void
drv_exec_set_progress (drv_exec_t *self, drv_exec_progress_fn *progress, void *arg)
{
    assert (self);
    self->progress = progress;
    self->progress_arg = arg;
}


//  --------------------------------------------------------------------------
//  After done: how the task ended.

drover_outcome_t
drv_exec_outcome (drv_exec_t *self)
{
    assert (self);
    return self->outcome;
}


//  --------------------------------------------------------------------------
//  After done: stdout bytes, NUL-terminated, borrowed until destroy.

const uint8_t *
drv_exec_output (drv_exec_t *self, size_t *size)
{
    assert (self);
    if (size)
        *size = self->output? self->output_size: 0;
    return self->output? self->output: (const uint8_t *) "";
}


//  --------------------------------------------------------------------------
//  After done: "" on success, else why the task failed (borrowed).

const char *
drv_exec_reason (drv_exec_t *self)
{
    assert (self);
    return self->reason;
}


//  --------------------------------------------------------------------------
//  The child's pid (0 once reaped).

pid_t
drv_exec_pid (drv_exec_t *self)
{
    assert (self);
    return self->pid;
}


//  --------------------------------------------------------------------------
//  Kill the task's process group now; done still follows, once.

void
drv_exec_kill (drv_exec_t *self)
{
    assert (self);
    if (!self->finished)
        s_stop_task (self, KILL_CANCEL);
}


//  --------------------------------------------------------------------------
//  Destroy and NULL the pointer; a running task is killed and reaped, no done.

void
drv_exec_destroy (drv_exec_t **self_p)
{
    assert (self_p);
    drv_exec_t *self = *self_p;
    if (!self)
        return;
    s_unregister_exec (self);
    if (!self->finished) {
        self->finished = true;
        s_stop_task (self, KILL_CANCEL);
        s_detach (self);
    }
    if (self->pid > 0) {
        while (waitpid (self->pid, NULL, 0) == -1 && errno == EINTR)
            ;
        self->pid = 0;
    }
    free (self->payload);
    free (self->output);
    free (self->line);
    free (self->latest);
    free (self);
    *self_p = NULL;
}
