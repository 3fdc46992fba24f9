/*  drv_pool.c - a prefork pool that runs in-process handlers.

    Framing. Each member has one SOCK_STREAM socketpair to the agent.
    Requests and replies are records that start with a 24-byte header
    holding their own size (padded to 8 bytes), so a reader takes as many
    as one read() returns and a writer sends a whole batch in one write():

      request  [size u32][function u32][job id u64][timeout ms u32][payload size u32][payload]
      kept     [size u32][function | KIND_KEPT u32][job id u64][timeout ms u32][payload size u32]
               [payload address u64][release u64][owner u64]
      reply    [size u32][outcome u32][job id u64][data size u32][reason size u32][data][reason]
      progress [size u32][KIND_PROGRESS u32][job id u64][24 u32][partial size u32]
               [done u64][total u64][report number u64][partial]

    A progress record (drover_task_progress) is written while its task
    runs, after the replies buffered before it, so it always names the
    task at the head of the member's journal; it answers nothing. A task
    writes one at most every PROGRESS_EVERY_MS. Every report, also one
    made sooner, puts its numbers in the member's shared page (a seqlock:
    report number odd while it is written), which the agent reads every
    PROGRESS_POLL_MS while the task runs: so the latest numbers always
    get out, and only the partial output of a report made too soon is
    dropped. The report number orders the two paths.

    A kept request leaves its payload where the agent received it (a
    ZeroMQ frame, drv_pool_submit_kept) and names its address in the
    agent: the member copies it from there itself, with one
    process_vm_readv(2) (a thread member with memcpy), into a buffer of
    its own that adds the NUL. That is one copy of a large payload where
    an inline request makes three (into the journal, into the socket,
    out of it). The agent keeps the payload until the task is answered
    or dropped, then calls release (owner). Only a member whose hello
    said it can read the agent's memory gets kept requests: one that
    runs as another user (the sandbox) cannot, and is given the payload
    inline, as is a member whose hello has not come yet.

    A member answers in the order it was asked; its first reply (job id 0)
    is its hello, sent once its initializer has run, with its resident
    size and whether it reads kept payloads as data (or the initializer's
    failure as reason). A member
    buffers its replies until no whole request is left in what it has
    read, or the oldest waits 2 ms, then writes them at once.

    Which task a member is running is in a shared page (started count,
    start time), written by the member and read by the agent without any
    system call: that is how a crash fails exactly its own task, and how
    the timer enforces timeouts. Tasks a dead member had not answered,
    other than the one it died in, go back to the head of the queue, so a
    task that finished in the 2 ms before its member crashed may run
    again (delivery is at-least-once anyway).

      agent                               member (process or thread)
      drv_pool_submit -> queue            hello
        (64 KiB or more: journal, write, when a member has room;
         kept: by address, the member reads it from the agent)
      drv_pool_flush  -> journal, write   read batch, run each, reply batch
      epoll pass      <- replies          ...
      pidfd readable  -> reap, fail the running task, requeue the rest, fork again

    Members are forked from the agent's thread. A member closes the
    worker's close-on-exec descriptors, resets its signals, gets
    its own process group (killed whole when it dies) and SIGKILL when the
    agent's thread dies, applies the sandbox, runs the initializer, and
    never calls into ZeroMQ or czmq again; it ends with _exit.

    A member's own code does not allocate: the buffers it reads requests
    into, writes replies from and keeps a handler's output in are made by
    the agent before the fork (s_kit_t), and a failure reason has a fixed
    buffer. The agent's process has other threads (ZeroMQ's, other
    agents'), and a lock one of them holds at the fork stays held in the
    child for good; glibc's malloc resets its own locks in the child, but
    other allocators do not (AddressSanitizer's in gcc 12 does not), and
    a member that blocked in malloc before its hello swallowed the tasks
    given to it. Only a request, a kept payload or an output over 64 KiB
    makes a member grow a buffer; what a handler allocates is the
    handler's affair.
*/

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "drv_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HEADER_SIZE 24               //  bytes in a request or reply header
#define BATCH_MAX 256                //  most tasks a member holds at once
#define FLUSH_AFTER_MS 2             //  a member's oldest reply waits at most this
#define FLUSH_BYTES (1 << 20)        //  or until this many bytes wait
#define READ_CHUNK 65536             //  least room made for one read
#define DIRECT_MIN 65536             //  a task this large skips the queue when it can
#define TIMEOUT_POLL_MS 20           //  recheck when a member's task is not yet known
#define EVENTS_MAX 64                //  epoll events taken per pass
#define KIND_PROGRESS 0x50524f47     //  reply kind of a progress record ("PROG")
#define KIND_KEPT 0x80000000u        //  request kind flag: the payload is kept by the agent
#define HELLO_READS_KEPT 1           //  hello flag: the member reads kept payloads
#define PROGRESS_EVERY_MS 50         //  a task writes a progress record at most this often
#define PROGRESS_POLL_MS 200         //  the agent reads reporting members' numbers this often

//  A request or reply header; the buffers keep every record 8-aligned.
typedef struct {
    uint32_t size;                   //  whole record, padded to 8
    uint32_t kind;                   //  request: function index; reply: outcome
    uint64_t job_id;                 //  the task; 0 for the hello
    uint32_t first;                  //  request: timeout ms; reply: data bytes
    uint32_t second;                 //  request: payload bytes; reply: reason bytes
} s_header_t;

//  A growable byte buffer; [head, tail) holds data.
typedef struct {
    uint8_t *data;                   //  the bytes, owned
    size_t head;                     //  first byte in use
    size_t tail;                     //  one past the last
    size_t capacity;                 //  bytes allocated
} s_buf_t;

//  The body of a kept request: where the payload is in the agent, and
//  how the agent lets go of it (read by the agent only).
typedef struct {
    uint64_t address;                //  the payload's first byte, in the agent
    uint64_t release;                //  drv_pool_release_fn *
    uint64_t owner;                  //  its argument
} s_kept_t;

#define KEPT_SIZE ((HEADER_SIZE + sizeof (s_kept_t) + 7) & ~(size_t) 7)

//  Written by a member, read by the agent.
typedef struct {
    _Atomic uint64_t started;        //  tasks begun
    _Atomic int64_t since_ms;        //  when the running one began; 0: none running
    _Atomic uint64_t report;         //  progress reports made; odd while one is written
    _Atomic uint64_t report_job;     //  the job of the last one
    _Atomic uint64_t report_done;    //  its numbers
    _Atomic uint64_t report_total;
    char pad [16];                   //  one cache line each
} s_shared_t;

//  Why the agent killed a member.
typedef enum { KILL_NONE, KILL_TIMEOUT, KILL_CANCEL, KILL_BROKEN } s_kill_t;

typedef struct {
    size_t index;                    //  place in the pool
    int fd;                          //  agent's end of the socket, or -1
    pid_t pid;                       //  process, 0 if none (or threads mode)
    int pidfd;                       //  readable when it exits, or -1
    pthread_t thread;                //  threads mode: the thread
    bool has_thread;                 //  thread is running
    bool alive;                      //  started and not yet reaped
    bool ready;                      //  hello received
    bool reads_kept;                 //  its hello said it reads kept payloads
    bool retiring;                   //  got its max_tasks: no more tasks
    bool writing;                    //  EPOLLOUT armed
    s_buf_t journal;                 //  requests not yet answered, in order
    size_t sent;                     //  journal offset written so far
    s_buf_t input;                   //  replies read, not yet parsed
    size_t inflight;                 //  requests in the journal
    unsigned timeouts;               //  of those, with a timeout
    uint64_t given;                  //  tasks given since it started
    uint64_t replied;                //  replies taken since it started
    uint64_t base_rss;               //  resident bytes after its initializer
    s_kill_t kill;                   //  why we killed it
    uint64_t kill_job;               //  the task that was for
    int64_t respawn_at;              //  when to start it again (0: now)
    unsigned failures;               //  starts that failed in a row
    char hello [512];                //  why it failed to start, from its hello
    char reason [512];               //  failure reason handed out; kept until its next death
    uint64_t progress_job;           //  the running task reported progress: its job, or 0
    uint64_t progress_report;        //  the report number handed on last
    uint64_t progress_done;          //  and its numbers
    uint64_t progress_total;
} s_member_t;

struct _drv_pool_t {
    zloop_t *loop;                   //  borrowed
    drv_pool_config_t config;        //  copy; pointers in it borrowed
    drv_pool_result_fn *result;      //  result callback
    drv_pool_pass_fn *pass;          //  end-of-pass callback
    drv_pool_progress_fn *progress;  //  progress callback, or NULL
    void *arg;                       //  their argument
    int epfd;                        //  all member sockets and pidfds
    s_member_t *members;             //  config.size of them
    s_shared_t *shared;              //  one per member, MAP_SHARED
    s_buf_t queue;                   //  requests not yet given to a member
    size_t queued;                   //  requests in queue
    size_t next;                     //  member to try first
    int timer_id;                    //  the one timer, or -1
    int64_t timer_at;                //  when it fires
    bool gave;                       //  results given in this pass
    bool stopping;                   //  destroy: do not start members
    int64_t progress_polled;         //  when members' numbers were last read
    uint64_t spawned;                //  members started
    pid_t agent_pid;                 //  our pid, for members to check
};

//  What a member works in, made by the agent before it forks or starts
//  the member (see the file's opening comment). A process member never
//  frees it (it ends with _exit); a thread member frees it as it ends.
typedef struct {
    s_buf_t in;                      //  requests read, not yet run
    s_buf_t out;                     //  replies not yet written; first the hello
    uint8_t *reply;                  //  a handler's output
    size_t reply_capacity;           //  bytes reply holds
    uint8_t *kept;                   //  the kept payload being run, and a NUL
    size_t kept_capacity;            //  bytes kept holds
} s_kit_t;

static void s_member_main (drv_pool_t *self, s_member_t *member, int fd, s_kit_t *kit)
    __attribute__ ((noreturn));
static void *s_thread_main (void *arg);
static void s_arm_timer (drv_pool_t *self);

//  ---------------------------------------------------------------------
//  Buffers and the clock.

static size_t
s_align (size_t size)
{
    return (size + 7) & ~(size_t) 7;
}

static size_t
s_used (const s_buf_t *buf)
{
    return buf->tail - buf->head;
}

//  Make room for size more bytes at the tail; moves data to the front
//  first, adjusting *mark (an offset into the buffer) if given. 0 or -1.
static int
s_reserve (s_buf_t *buf, size_t size, size_t *mark)
{
    if (buf->capacity - buf->tail >= size)
        return 0;
    if (buf->head) {
        memmove (buf->data, buf->data + buf->head, s_used (buf));
        if (mark)
            *mark -= buf->head;
        buf->tail -= buf->head;
        buf->head = 0;
        if (buf->capacity - buf->tail >= size)
            return 0;
    }
    size_t capacity = buf->capacity ? buf->capacity : READ_CHUNK;
    while (capacity - buf->tail < size)
        capacity *= 2;
    uint8_t *data = (uint8_t *) realloc (buf->data, capacity);
    if (!data)
        return -1;
    buf->data = data;
    buf->capacity = capacity;
    return 0;
}

static void
s_buf_free (s_buf_t *buf)
{
    free (buf->data);
    *buf = (s_buf_t) {0};
}

//  A member's buffers: room for a batch of requests and of replies, and
//  for one handler's output. 0, or -1 with nothing allocated.
static int
s_kit_new (s_kit_t *kit)
{
    *kit = (s_kit_t) {0};
    if (s_reserve (&kit->in, 2 * READ_CHUNK, NULL) == -1
        || s_reserve (&kit->out, 2 * READ_CHUNK, NULL) == -1
        || !(kit->reply = (uint8_t *) malloc (READ_CHUNK))) {
        s_buf_free (&kit->in);
        s_buf_free (&kit->out);
        return -1;
    }
    kit->reply_capacity = READ_CHUNK;
    return 0;
}

static void
s_kit_free (s_kit_t *kit)
{
    s_buf_free (&kit->in);
    s_buf_free (&kit->out);
    free (kit->reply);
    kit->reply = NULL;
    free (kit->kept);
    kit->kept = NULL;
}

static s_header_t *
s_header_at (const s_buf_t *buf, size_t offset)
{
    return (s_header_t *) (buf->data + offset);
}

//  Append one record: a request (one is the payload; second its size)
//  or a reply (one the data, two the reason; second the reason's size).
//  0 or -1.
static int
s_append (s_buf_t *buf, size_t *mark, bool kind_is_request, uint32_t kind, uint64_t job_id,
          uint32_t first, const void *one, size_t one_size, const void *two, size_t two_size)
{
    //  One byte more than the contents, so that a NUL always follows
    //  them: payloads reach handlers NUL-terminated, reasons the agent.
    size_t size = s_align (HEADER_SIZE + one_size + two_size + 1);
    if (size > UINT32_MAX || s_reserve (buf, size, mark) == -1)
        return -1;
    uint8_t *at = buf->data + buf->tail;
    *(s_header_t *) at = (s_header_t) {
        .size = (uint32_t) size,
        .kind = kind,
        .job_id = job_id,
        .first = first,
        .second = (uint32_t) (kind_is_request ? one_size : two_size),
    };
    if (one_size)
        memcpy (at + HEADER_SIZE, one, one_size);
    if (two_size)
        memcpy (at + HEADER_SIZE + one_size, two, two_size);
    at [HEADER_SIZE + one_size + two_size] = 0;
    buf->tail += size;
    return 0;
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  ---------------------------------------------------------------------
//  Task accessors for handlers (drover.h).

const uint8_t *
drover_task_payload (drover_task_t *task, size_t *size)
{
    if (size)
        *size = task->size;
    return task->payload;
}

const char *
drover_task_function (drover_task_t *task)
{
    return task->function;
}

uint64_t
drover_task_job_id (drover_task_t *task)
{
    return task->job_id;
}

int
drover_task_reply (drover_task_t *task, const void *data, size_t size)
{
    if (size > task->reply_capacity) {
        uint8_t *reply = (uint8_t *) realloc (task->reply, size);
        if (!reply)
            return -1;
        task->reply = reply;
        task->reply_capacity = size;
    }
    if (size)
        memcpy (task->reply, data, size);
    task->reply_size = size;
    return 0;
}

void
drover_task_fail (drover_task_t *task, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int length = vsnprintf (task->reason, sizeof task->reason, format, args);
    va_end (args);
    if (length < 0)
        snprintf (task->reason, sizeof task->reason, "handler failed");
    task->failed = true;
}

static bool s_write_all (int fd, s_buf_t *buf);

int
drover_task_progress (drover_task_t *task, uint64_t done, uint64_t total, const void *partial,
                      size_t size)
{
    if (!task || (total && done > total) || (size && !partial)) {
        errno = EINVAL;
        return -1;
    }
    if (!task->out)
        return 0;                    //  not running in a pool member
    //  The numbers go to the shared page every time (a seqlock write).
    s_shared_t *shared = (s_shared_t *) task->shared;
    uint64_t report = atomic_load_explicit (&shared->report, memory_order_relaxed) + 2;
    atomic_store_explicit (&shared->report, report - 1, memory_order_relaxed);
    atomic_thread_fence (memory_order_release);
    atomic_store_explicit (&shared->report_job, task->job_id, memory_order_relaxed);
    atomic_store_explicit (&shared->report_done, done, memory_order_relaxed);
    atomic_store_explicit (&shared->report_total, total, memory_order_relaxed);
    atomic_store_explicit (&shared->report, report, memory_order_release);
    int64_t now = s_now_ms ();
    if (task->progress_ms && now - task->progress_ms < PROGRESS_EVERY_MS)
        return 0;                    //  its partial output is superseded by the next
    if (size > DROVER_PROGRESS_PARTIAL_MAX)
        size = DROVER_PROGRESS_PARTIAL_MAX;
    uint64_t numbers [3] = {done, total, report};
    s_buf_t *out = (s_buf_t *) task->out;
    //  Write what waits rather than grow the buffer (which would allocate).
    size_t need = s_align (HEADER_SIZE + sizeof numbers + size + 1);
    if (s_used (out) && out->capacity - s_used (out) < need && !s_write_all (task->fd, out)) {
        errno = EPIPE;
        return -1;
    }
    //  After the replies buffered before it, so that the agent reads it
    //  as the running task's.
    if (s_append (out, NULL, false, KIND_PROGRESS, task->job_id, sizeof numbers, numbers,
                  sizeof numbers, partial, size)
        == -1) {
        errno = ENOMEM;
        return -1;
    }
    task->progress_ms = now;
    if (!s_write_all (task->fd, out)) {
        errno = EPIPE;
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  The member side: runs in a forked process or a thread.

//  Write the whole buffer, blocking; false if the agent has gone.
static bool
s_write_all (int fd, s_buf_t *buf)
{
    while (s_used (buf)) {
        ssize_t rc = send (fd, buf->data + buf->head, s_used (buf), MSG_NOSIGNAL);
        if (rc > 0)
            buf->head += (size_t) rc;
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
            return false;
    }
    buf->head = buf->tail = 0;
    return true;
}

//  Resident bytes now, from /proc/self/statm (second field).
static uint64_t
s_resident (void)
{
    int fd = open ("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    char text [128];
    ssize_t size = read (fd, text, sizeof text - 1);
    close (fd);
    if (size <= 0)
        return 0;
    text [size] = 0;
    char *space = strchr (text, ' ');
    return space ? strtoull (space + 1, NULL, 10) * (uint64_t) sysconf (_SC_PAGESIZE) : 0;
}

//  Copy a kept request's payload from the agent into the kit, with a
//  NUL after it, and point *payload_p at it; false with failure set if
//  it cannot be read.
static bool
s_read_kept (drv_pool_t *self, s_kit_t *kit, const s_header_t *request,
             const uint8_t **payload_p, char *failure, size_t failure_size)
{
    s_kept_t kept;
    memcpy (&kept, (const uint8_t *) request + HEADER_SIZE, sizeof kept);
    size_t size = request->second;
    if (size + 1 > kit->kept_capacity) {
        size_t capacity = kit->kept_capacity ? 2 * kit->kept_capacity : READ_CHUNK;
        if (capacity < size + 1)
            capacity = size + 1;
        uint8_t *grown = (uint8_t *) realloc (kit->kept, capacity);
        if (!grown) {
            snprintf (failure, failure_size, "pool member out of memory for the payload");
            return false;
        }
        kit->kept = grown;
        kit->kept_capacity = capacity;
    }
    if (self->config.threads)
        memcpy (kit->kept, (const void *) (uintptr_t) kept.address, size);
    else
        for (size_t done = 0; done < size;) {
            struct iovec local = {kit->kept + done, size - done};
            struct iovec remote = {(void *) (uintptr_t) (kept.address + done), size - done};
            ssize_t rc = process_vm_readv (self->agent_pid, &local, 1, &remote, 1, 0);
            if (rc > 0)
                done += (size_t) rc;
            else
            if (rc == -1 && errno == EINTR)
                continue;
            else {
                snprintf (failure, failure_size, "cannot read the payload from the worker: %s",
                          rc == 0 ? "nothing read" : strerror (errno));
                return false;
            }
        }
    kit->kept [size] = 0;
    *payload_p = kit->kept;
    return true;
}

//  Can this member process read the agent's memory (process_vm_readv
//  needs the right to ptrace it: the same user, and the agent dumpable)?
//  Reads a variable the agent set before the fork, at the same address.
static bool
s_reads_agent (drv_pool_t *self)
{
    pid_t seen = 0;
    struct iovec local = {&seen, sizeof seen};
    struct iovec remote = {&self->agent_pid, sizeof seen};
    return process_vm_readv (self->agent_pid, &local, 1, &remote, 1, 0) == (ssize_t) sizeof seen
           && seen == self->agent_pid;
}

//  Run one request, whose payload is at payload (failure: it could not
//  be had, and the task fails with this reason instead); append its
//  reply to out. Returns false if the member should end after answering:
//  it ran out of memory, and what the handler leaked would fail the
//  tasks after it.
static bool
s_run (drv_pool_t *self, s_shared_t *shared, drover_task_t *task, const s_header_t *request,
       const uint8_t *payload, const char *failure, int fd, s_buf_t *out, uint64_t base_rss)
{
    const drv_pool_config_t *config = &self->config;
    atomic_store_explicit (&shared->since_ms, s_now_ms (), memory_order_relaxed);
    atomic_fetch_add_explicit (&shared->started, 1, memory_order_release);
    if (!config->threads)
        drv_sandbox_renew_cpu (config->sandbox);
    const drv_pool_function_t *function = NULL;
    uint32_t index = request->kind & ~KIND_KEPT;
    if (index < config->nfunctions)
        function = &config->functions [index];
    task->job_id = request->job_id;
    task->function = function ? function->name : "";
    task->payload = payload;
    task->size = request->second;
    task->reply_size = 0;
    task->failed = false;
    task->reason [0] = 0;
    task->progress_ms = 0;
    int rc = function && !failure ? function->handler (task, function->arg) : -1;
    atomic_store_explicit (&shared->since_ms, 0, memory_order_release);
    drover_outcome_t outcome = DROVER_OUTCOME_OK;
    char reason [4096 + 256] = "";
    if (failure)
        snprintf (reason, sizeof reason, "%s", failure);
    else
    if (!function)
        snprintf (reason, sizeof reason, "no handler for function %u", index);
    else
    if (rc != 0 || task->failed)
        snprintf (reason, sizeof reason, "%s",
                  task->failed ? task->reason : "handler returned an error");
    else
    if (task->reply_size > config->max_output)
        snprintf (reason, sizeof reason, "output larger than %zu bytes", config->max_output);
    bool carry_on = true;
    if (*reason) {
        outcome = DROVER_OUTCOME_ERROR;
        if (!failure && !config->threads && config->sandbox && config->sandbox->max_memory) {
            struct rusage usage;
            if (getrusage (RUSAGE_SELF, &usage) == 0
                && drv_sandbox_explain (config->sandbox, 0, &usage, base_rss, 0, reason,
                                        sizeof reason))
                carry_on = false;
        }
    }
    bool ok = outcome == DROVER_OUTCOME_OK;
    //  Write what waits rather than grow the buffer (which would allocate).
    size_t need = s_align (HEADER_SIZE + (ok ? task->reply_size : strlen (reason)) + 1);
    if (s_used (out) && out->capacity - s_used (out) < need)
        s_write_all (fd, out);
    if (s_append (out, NULL, false, (uint32_t) outcome, request->job_id,
                  ok ? (uint32_t) task->reply_size : 0, ok ? task->reply : NULL,
                  ok ? task->reply_size : 0, reason, ok ? 0 : strlen (reason))
        == -1) {
        const char *nomem = "member out of memory for the reply";
        s_append (out, NULL, false, DROVER_OUTCOME_ERROR, request->job_id, 0, NULL, 0, nomem,
                  strlen (nomem));
    }
    return carry_on;
}

//  Read requests, run them, answer in batches, until the agent closes.
static void
s_member_loop (drv_pool_t *self, s_member_t *member, int fd, uint64_t base_rss, s_kit_t *kit)
{
    s_shared_t *shared = &self->shared [member->index];
    s_buf_t in = kit->in, out = kit->out;
    in.head = in.tail = out.head = out.tail = 0;
    drover_task_t task = {.reply = kit->reply,
                          .reply_capacity = kit->reply_capacity,
                          .fd = fd,
                          .out = &out,
                          .shared = shared};
    int64_t out_since = 0;
    while (true) {
        while (s_used (&in) >= HEADER_SIZE) {
            const s_header_t *request = s_header_at (&in, in.head);
            bool kept = (request->kind & KIND_KEPT) != 0;
            if (request->size < HEADER_SIZE || request->size % 8
                || (kept ? request->size < KEPT_SIZE
                         : HEADER_SIZE + (size_t) request->second > request->size))
                goto done;           //  not our agent talking
            if (s_used (&in) < request->size) {
                if (s_reserve (&in, request->size - s_used (&in), NULL) == -1)
                    goto done;
                break;
            }
            if (!s_used (&out))
                out_since = s_now_ms ();
            const uint8_t *payload = (const uint8_t *) request + HEADER_SIZE;
            char failure [256] = "";
            if (kept)
                s_read_kept (self, kit, request, &payload, failure, sizeof failure);
            bool carry_on = s_run (self, shared, &task, request, payload,
                                   *failure ? failure : NULL, fd, &out, base_rss);
            in.head += request->size;
            if (!carry_on) {
                s_write_all (fd, &out);
                goto done;           //  replaced; the tasks after it go elsewhere
            }
            if (s_used (&out) >= FLUSH_BYTES || s_now_ms () - out_since >= FLUSH_AFTER_MS)
                if (!s_write_all (fd, &out))
                    goto done;
        }
        if (!s_write_all (fd, &out))
            break;
        if (s_reserve (&in, READ_CHUNK, NULL) == -1)
            break;
        ssize_t rc = read (fd, in.data + in.tail, in.capacity - in.tail);
        if (rc > 0)
            in.tail += (size_t) rc;
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
            break;                   //  EOF: retired or stopped
    }
done:
    //  Buffers may have grown: the kit holds what is to be freed.
    kit->in = in;
    kit->out = out;
    kit->reply = task.reply;
    kit->reply_capacity = task.reply_capacity;
}

//  Send the hello from the kit's empty out buffer: OK with our resident
//  size and flags (HELLO_READS_KEPT), or a failure.
static bool
s_hello (int fd, s_kit_t *kit, const char *failure, uint64_t rss, uint64_t flags)
{
    s_buf_t *out = &kit->out;
    bool ok;
    uint64_t data [2] = {rss, flags};
    if (failure)
        ok = s_append (out, NULL, false, DROVER_OUTCOME_ERROR, 0, 0, NULL, 0, failure,
                       strlen (failure))
             == 0;
    else
        ok = s_append (out, NULL, false, DROVER_OUTCOME_OK, 0, sizeof data, data, sizeof data,
                       NULL, 0)
             == 0;
    return ok && s_write_all (fd, out);
}

//  In a new member: close every descriptor marked close-on-exec but its
//  own socket. Those belong to the worker (ZeroMQ's sockets, the other
//  members' sockets, the pipes of running exec: tasks, which would never
//  see EOF while a member held them); descriptors a program opened to be
//  inherited stay open for its handlers. Only system calls here.
static void
s_close_private_fds (int keep)
{
    int dir = open ("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir == -1)
        return;
    int found [1024];
    size_t nfound = 0;
    char buffer [4096];
    long size;
    while ((size = syscall (SYS_getdents64, dir, buffer, sizeof buffer)) > 0) {
        for (long offset = 0; offset < size;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name [];
            } *entry = (void *) (buffer + offset);
            int fd = 0;
            const char *digit = entry->name;
            for (; *digit >= '0' && *digit <= '9'; digit++)
                fd = fd * 10 + (*digit - '0');
            if (!*digit && digit != entry->name && fd > STDERR_FILENO && fd != keep
                && fd != dir && nfound < sizeof found / sizeof found [0]) {
                int flags = fcntl (fd, F_GETFD);
                if (flags != -1 && (flags & FD_CLOEXEC))
                    found [nfound++] = fd;
            }
            offset += entry->reclen;
        }
    }
    close (dir);
    for (size_t i = 0; i < nfound; i++)
        close (found [i]);
}

static void
s_member_main (drv_pool_t *self, s_member_t *member, int fd, s_kit_t *kit)
{
    drv_sandbox_reset_child ();
    s_close_private_fds (fd);
    const drv_sandbox_t *sandbox = self->config.sandbox;
    if (drv_sandbox_enter (sandbox, drv_sandbox_vm_size ()) == -1) {
        char failure [256];
        snprintf (failure, sizeof failure, "cannot apply the task limits: %s",
                  strerror (errno));
        s_hello (fd, kit, failure, 0, 0);
        _exit (1);
    }
    //  Set after the user switch, which clears it.
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != self->agent_pid)
        _exit (1);
    if (self->config.init && self->config.init (self->config.init_arg) != 0) {
        s_hello (fd, kit, "the initializer failed", 0, 0);
        _exit (1);
    }
    if (s_hello (fd, kit, NULL, s_resident (), s_reads_agent (self) ? HELLO_READS_KEPT : 0))
        s_member_loop (self, member, fd, s_resident (), kit);
    _exit (0);
}

typedef struct {
    drv_pool_t *pool;                //  borrowed
    s_member_t *member;              //  borrowed
    int fd;                          //  the thread's end, owned
    s_kit_t kit;                     //  owned
} s_thread_args_t;

static void *
s_thread_main (void *arg)
{
    s_thread_args_t args = *(s_thread_args_t *) arg;
    free (arg);
    drv_pool_t *self = args.pool;
    if (self->config.init && self->config.init (self->config.init_arg) != 0)
        s_hello (args.fd, &args.kit, "the initializer failed", 0, 0);
    else
    if (s_hello (args.fd, &args.kit, NULL, 0, HELLO_READS_KEPT))
        s_member_loop (self, args.member, args.fd, 0, &args.kit);
    s_kit_free (&args.kit);
    close (args.fd);
    return NULL;
}

//  ---------------------------------------------------------------------
//  The agent side.

static uint64_t
s_key (size_t index, bool pidfd)
{
    return (uint64_t) index << 1 | (pidfd ? 1 : 0);
}

//  Start member i; false if it could not be.
static bool
s_spawn (drv_pool_t *self, s_member_t *member)
{
    int pair [2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == -1) {
        zsys_error ("pool: cannot create a socketpair: %s", strerror (errno));
        return false;
    }
    s_shared_t *shared = &self->shared [member->index];
    atomic_store (&shared->started, 0);
    atomic_store (&shared->since_ms, 0);
    member->given = member->replied = 0;
    member->ready = member->reads_kept = member->retiring = member->writing = false;
    member->kill = KILL_NONE;
    member->journal.head = member->journal.tail = member->sent = 0;
    member->input.head = member->input.tail = 0;
    member->inflight = member->timeouts = 0;
    member->hello [0] = 0;
    member->progress_job = 0;
    //  Made here, before the fork: the member must not allocate.
    s_kit_t kit;
    if (s_kit_new (&kit) == -1) {
        close (pair [0]);
        close (pair [1]);
        zsys_error ("pool: out of memory starting a member");
        return false;
    }
    if (self->config.threads) {
        s_thread_args_t *args = (s_thread_args_t *) malloc (sizeof *args);
        if (!args) {
            s_kit_free (&kit);
            close (pair [0]);
            close (pair [1]);
            return false;
        }
        *args = (s_thread_args_t) {.pool = self, .member = member, .fd = pair [1], .kit = kit};
        if (pthread_create (&member->thread, NULL, s_thread_main, args) != 0) {
            s_kit_free (&kit);
            free (args);
            close (pair [0]);
            close (pair [1]);
            zsys_error ("pool: cannot start a thread");
            return false;
        }
        member->has_thread = true;
    }
    else {
        sigset_t all, old;
        sigfillset (&all);
        pthread_sigmask (SIG_SETMASK, &all, &old);
        pid_t pid = fork ();
        if (pid == 0) {
            close (pair [0]);
            s_member_main (self, member, pair [1], &kit);
        }
        int fork_errno = errno;
        //  The child has its own copy.
        s_kit_free (&kit);
        pthread_sigmask (SIG_SETMASK, &old, NULL);
        close (pair [1]);
        if (pid == -1) {
            close (pair [0]);
            zsys_error ("pool: cannot fork: %s", strerror (fork_errno));
            return false;
        }
        setpgid (pid, pid);
        member->pid = pid;
        member->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
        if (member->pidfd == -1) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            member->pid = 0;
            close (pair [0]);
            zsys_error ("pool: cannot watch a member: %s", strerror (errno));
            return false;
        }
        fcntl (member->pidfd, F_SETFD, FD_CLOEXEC);
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = s_key (member->index, true)};
        epoll_ctl (self->epfd, EPOLL_CTL_ADD, member->pidfd, &event);
    }
    member->fd = pair [0];
    fcntl (member->fd, F_SETFL, fcntl (member->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = s_key (member->index, false)};
    epoll_ctl (self->epfd, EPOLL_CTL_ADD, member->fd, &event);
    member->alive = true;
    member->respawn_at = 0;
    self->spawned++;
    return true;
}

static void
s_close_socket (drv_pool_t *self, s_member_t *member)
{
    if (member->fd != -1) {
        epoll_ctl (self->epfd, EPOLL_CTL_DEL, member->fd, NULL);
        close (member->fd);
        member->fd = -1;
    }
}

//  Kill a member process and its group (not threads).
static void
s_kill (s_member_t *member, s_kill_t cause, uint64_t job_id)
{
    if (!member->pid)
        return;
    if (member->kill == KILL_NONE) {
        member->kill = cause;
        member->kill_job = job_id;
    }
    kill (-member->pid, SIGKILL);
    kill (member->pid, SIGKILL);
}

//  Write what the member's journal has not sent yet, without blocking.
static void
s_write (drv_pool_t *self, s_member_t *member)
{
    s_buf_t *journal = &member->journal;
    while (member->fd != -1 && member->sent < journal->tail) {
        ssize_t rc = send (member->fd, journal->data + member->sent,
                           journal->tail - member->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (rc > 0)
            member->sent += (size_t) rc;
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else
            break;                   //  EAGAIN, or dead: its pidfd tells
    }
    bool want = member->fd != -1 && member->sent < journal->tail;
    if (want != member->writing && member->fd != -1) {
        struct epoll_event event = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                                    .data.u64 = s_key (member->index, false)};
        epoll_ctl (self->epfd, EPOLL_CTL_MOD, member->fd, &event);
        member->writing = want;
    }
}

static void
s_give_result (drv_pool_t *self, uint64_t job_id, drover_outcome_t outcome, const uint8_t *data,
               size_t size, const char *reason)
{
    self->gave = true;
    self->result (self->arg, job_id, outcome, data, size, reason);
}

//  The journal entry `skip` records after the head.
static s_header_t *
s_journal_entry (s_member_t *member, uint64_t skip)
{
    size_t offset = member->journal.head;
    while (skip-- && offset < member->journal.tail)
        offset += s_header_at (&member->journal, offset)->size;
    return offset < member->journal.tail ? s_header_at (&member->journal, offset) : NULL;
}

//  Let go of a request's payload if the agent keeps it.
static void
s_release (const s_header_t *record)
{
    if (!(record->kind & KIND_KEPT))
        return;
    s_kept_t kept;
    memcpy (&kept, (const uint8_t *) record + HEADER_SIZE, sizeof kept);
    drv_pool_release_fn *release = (drv_pool_release_fn *) (uintptr_t) kept.release;
    if (release)
        release ((void *) (uintptr_t) kept.owner);
}

//  Let go of the kept payloads of every request in [offset, end) of buf.
static void
s_release_all (const s_buf_t *buf, size_t offset, size_t end)
{
    for (; offset < end; offset += s_header_at (buf, offset)->size)
        s_release (s_header_at (buf, offset));
}

//  Give the member one request: copied to its journal as it is, or, if
//  it is kept and the member cannot read it in the agent (no hello yet,
//  or another user), with its payload inline, letting go of the kept
//  one. Not yet written. 0, or -1 with nothing changed.
static int
s_journal_add (drv_pool_t *self, s_member_t *member, const s_header_t *entry)
{
    if ((entry->kind & KIND_KEPT) && !(member->ready && member->reads_kept)) {
        s_kept_t kept;
        memcpy (&kept, (const uint8_t *) entry + HEADER_SIZE, sizeof kept);
        if (s_append (&member->journal, &member->sent, true, entry->kind & ~KIND_KEPT,
                      entry->job_id, entry->first, (const void *) (uintptr_t) kept.address,
                      entry->second, NULL, 0)
            == -1)
            return -1;
        s_release (entry);
    }
    else {
        if (s_reserve (&member->journal, entry->size, &member->sent) == -1)
            return -1;
        memcpy (member->journal.data + member->journal.tail, entry, entry->size);
        member->journal.tail += entry->size;
    }
    if (entry->first)
        member->timeouts++;
    member->inflight++;
    member->given++;
    if (self->config.max_tasks && member->given >= self->config.max_tasks)
        member->retiring = true;
    return 0;
}

//  Take a reply for the journal's head task.
static void
s_pop_journal (s_member_t *member)
{
    s_header_t *head = s_header_at (&member->journal, member->journal.head);
    s_release (head);
    if (head->first)
        member->timeouts--;
    member->journal.head += head->size;
    member->inflight--;
    member->replied++;
    if (member->journal.head == member->journal.tail) {
        member->sent -= member->journal.head;
        member->journal.head = member->journal.tail = 0;
    }
}

//  Hand on a report of the member's running task: numbers newer than
//  those handed on last (by report number) with the partial output, or
//  the partial output alone with the newer numbers (partial NULL: the
//  numbers alone).
static void
s_take_progress (drv_pool_t *self, s_member_t *member, uint64_t job_id, uint64_t done,
                 uint64_t total, uint64_t report, const uint8_t *partial, size_t size)
{
    if (member->progress_job != job_id) {
        member->progress_job = job_id;
        member->progress_report = 0;
    }
    if (report > member->progress_report) {
        member->progress_report = report;
        member->progress_done = done;
        member->progress_total = total;
    }
    else
    if (!partial)
        return;                      //  nothing new
    if (self->progress)
        self->progress (self->arg, job_id, member->progress_done, member->progress_total,
                        partial, size);
}

//  Read the numbers of members whose running task reports progress, so
//  that the latest get out, also those of reports made too soon after
//  the last record.
static void
s_poll_progress (drv_pool_t *self)
{
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (!member->progress_job)
            continue;
        if (member->fd == -1 || !member->inflight
            || s_header_at (&member->journal, member->journal.head)->job_id
                   != member->progress_job) {
            member->progress_job = 0;  //  answered, or its member is gone
            continue;
        }
        s_shared_t *shared = &self->shared [i];
        uint64_t report = atomic_load_explicit (&shared->report, memory_order_acquire);
        uint64_t job_id = atomic_load_explicit (&shared->report_job, memory_order_relaxed);
        uint64_t done = atomic_load_explicit (&shared->report_done, memory_order_relaxed);
        uint64_t total = atomic_load_explicit (&shared->report_total, memory_order_relaxed);
        atomic_thread_fence (memory_order_acquire);
        if ((report & 1) || report != atomic_load_explicit (&shared->report, memory_order_relaxed)
            || job_id != member->progress_job)
            continue;                //  being written: the next poll
        s_take_progress (self, member, job_id, done, total, report, NULL, 0);
    }
}

//  Parse the replies in the member's input; false if it spoke nonsense.
static bool
s_parse (drv_pool_t *self, s_member_t *member)
{
    s_buf_t *input = &member->input;
    while (s_used (input) >= HEADER_SIZE) {
        s_header_t *reply = s_header_at (input, input->head);
        if (reply->size < HEADER_SIZE || reply->size % 8
            || HEADER_SIZE + (size_t) reply->first + reply->second > reply->size)
            return false;
        if (s_used (input) < reply->size)
            break;
        uint32_t record = reply->size, kind = reply->kind;
        uint64_t job_id = reply->job_id;
        size_t size = reply->first, reason_size = reply->second;
        uint8_t *data = (uint8_t *) reply + HEADER_SIZE;
        if (job_id == 0 && !member->ready) {
            if (kind == DROVER_OUTCOME_OK) {
                member->ready = true;
                member->failures = 0;
                uint64_t hello [2] = {0, 0};
                memcpy (hello, data, size < sizeof hello ? size : sizeof hello);
                member->base_rss = hello [0];
                member->reads_kept = (hello [1] & HELLO_READS_KEPT) != 0;
            }
            else
                snprintf (member->hello, sizeof member->hello, "%.*s", (int) reason_size,
                          (char *) data + size);
            input->head += record;
            continue;
        }
        if (!member->inflight
            || s_header_at (&member->journal, member->journal.head)->job_id != job_id
            || ((kind < DROVER_OUTCOME_OK || kind > DROVER_OUTCOME_CANCELLED)
                && kind != KIND_PROGRESS))
            return false;
        //  The record always holds a byte past its contents.
        if (HEADER_SIZE + size + reason_size >= record)
            return false;
        if (kind == KIND_PROGRESS) {
            uint64_t numbers [3];
            if (size != sizeof numbers || reason_size > DROVER_PROGRESS_PARTIAL_MAX)
                return false;
            memcpy (numbers, data, sizeof numbers);
            input->head += record;
            s_take_progress (self, member, job_id, numbers [0], numbers [1], numbers [2],
                             data + size, reason_size);
            continue;
        }
        char *reason = (char *) data + size;
        reason [reason_size] = 0;
        input->head += record;
        if (job_id == member->progress_job)
            member->progress_job = 0;
        s_pop_journal (member);
        s_give_result (self, job_id, (drover_outcome_t) kind, data, size, reason);
    }
    return true;
}

//  Read what the member sent, then parse it. Data handed out stays
//  valid until the next read, in a later pass.
static void
s_read (drv_pool_t *self, s_member_t *member)
{
    s_buf_t *input = &member->input;
    if (input->head == input->tail)
        input->head = input->tail = 0;
    bool eof = false;
    while (member->fd != -1) {
        if (s_reserve (input, READ_CHUNK, NULL) == -1)
            break;
        ssize_t rc = read (member->fd, input->data + input->tail, input->capacity - input->tail);
        if (rc > 0) {
            input->tail += (size_t) rc;
            if (s_used (input) >= 4 * FLUSH_BYTES)
                break;
        }
        else
        if (rc == -1 && errno == EINTR)
            continue;
        else {
            eof = rc == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            break;
        }
    }
    if (!s_parse (self, member)) {
        zsys_error ("pool: member %zu sent a malformed reply; replacing it", member->index);
        snprintf (member->reason, sizeof member->reason, "pool member sent a malformed reply");
        if (member->pid)
            s_kill (member, KILL_BROKEN, 0);
        s_close_socket (self, member);
        return;
    }
    if (eof)
        s_close_socket (self, member);  //  a process: its pidfd follows
}

//  Put the member's unanswered tasks, but not skip_job, back at the
//  head of the queue, in order.
static void
s_requeue (drv_pool_t *self, s_member_t *member, uint64_t skip_job)
{
    s_buf_t *journal = &member->journal;
    size_t bytes = s_used (journal);
    if (!bytes)
        return;
    s_buf_t merged = {0};
    if (s_reserve (&merged, bytes + s_used (&self->queue), NULL) == -1) {
        //  Cannot keep them: fail them rather than lose them.
        while (member->inflight) {
            uint64_t job_id = s_header_at (journal, journal->head)->job_id;
            s_pop_journal (member);
            s_give_result (self, job_id, DROVER_OUTCOME_ERROR, NULL, 0,
                           "worker out of memory requeueing the task");
        }
        return;
    }
    size_t count = 0;
    for (size_t offset = journal->head; offset < journal->tail;) {
        s_header_t *entry = s_header_at (journal, offset);
        if (entry->job_id != skip_job) {
            memcpy (merged.data + merged.tail, entry, entry->size);
            merged.tail += entry->size;
            count++;
        }
        else
            s_release (entry);       //  its result follows; it does not run again
        offset += entry->size;
    }
    //  (The queue may never have held anything: large tasks skip it.)
    if (s_used (&self->queue))
        memcpy (merged.data + merged.tail, self->queue.data + self->queue.head,
                s_used (&self->queue));
    merged.tail += s_used (&self->queue);
    s_buf_free (&self->queue);
    self->queue = merged;
    self->queued += count;
    journal->head = journal->tail = member->sent = 0;
    member->inflight = member->timeouts = 0;
}

//  Fail every unanswered task of the member with its reason.
static void
s_fail_all (drv_pool_t *self, s_member_t *member, drover_outcome_t outcome)
{
    while (member->inflight) {
        uint64_t job_id = s_header_at (&member->journal, member->journal.head)->job_id;
        s_pop_journal (member);
        s_give_result (self, job_id, outcome, NULL, 0, member->reason);
    }
}

//  A member process exited: reap it, settle its tasks, start another.
static void
s_reap (drv_pool_t *self, s_member_t *member)
{
    siginfo_t info = {0};
    if (waitid (P_PID, (id_t) member->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0
        && info.si_pid == 0)
        return;                      //  not yet
    //  Whatever it answered before it died counts.
    if (member->fd != -1)
        s_read (self, member);
    const drv_sandbox_t *sandbox = self->config.sandbox;
    unsigned group = sandbox && sandbox->max_procs ? drv_sandbox_group_size (member->pid) : 0;
    kill (-member->pid, SIGKILL);    //  its leftovers, while its pid pins the group
    int status = 0;
    struct rusage usage;
    pid_t reaped;
    do
        reaped = wait4 (member->pid, &status, 0, &usage);
    while (reaped == -1 && errno == EINTR);
    epoll_ctl (self->epfd, EPOLL_CTL_DEL, member->pidfd, NULL);
    close (member->pidfd);
    member->pidfd = -1;
    member->pid = 0;
    member->alive = false;
    s_close_socket (self, member);

    s_shared_t *shared = &self->shared [member->index];
    uint64_t started = atomic_load_explicit (&shared->started, memory_order_acquire);
    bool busy = atomic_load_explicit (&shared->since_ms, memory_order_relaxed) != 0;
    int signal = reaped > 0 && WIFSIGNALED (status) ? WTERMSIG (status) : 0;
    char how [128];
    if (reaped <= 0)
        snprintf (how, sizeof how, "cannot get its exit status");
    else
    if (signal) {
        const char *name = sigabbrev_np (signal);
        if (name)
            snprintf (how, sizeof how, "killed by signal SIG%s", name);
        else
            snprintf (how, sizeof how, "killed by signal %d", signal);
    }
    else
        snprintf (how, sizeof how, "exited with status %d", WEXITSTATUS (status));

    if (!member->ready) {
        //  It died starting: its tasks fail with why, and the next start waits.
        if (*member->hello)
            snprintf (member->reason, sizeof member->reason, "%s", member->hello);
        else
            snprintf (member->reason, sizeof member->reason, "pool member %s while starting",
                      how);
        if (!self->stopping)
            zsys_error ("pool: member %zu failed to start: %s", member->index, member->reason);
        s_fail_all (self, member, DROVER_OUTCOME_ERROR);
        member->failures++;
        int64_t backoff = 100LL << (member->failures < 6 ? member->failures - 1 : 5);
        member->respawn_at = s_now_ms () + (backoff > 5000 ? 5000 : backoff);
        return;
    }
    //  The task it was running, if any, is the one that fails.
    s_header_t *current = NULL;
    if (member->kill == KILL_TIMEOUT || member->kill == KILL_CANCEL) {
        for (uint64_t i = 0; i < member->inflight && !current; i++) {
            s_header_t *entry = s_journal_entry (member, i);
            if (entry && entry->job_id == member->kill_job)
                current = entry;
        }
    }
    else
    if (busy && started > member->replied)
        current = s_journal_entry (member, started - 1 - member->replied);
    if (current) {
        uint64_t job_id = current->job_id;
        drover_outcome_t outcome;
        if (member->kill == KILL_TIMEOUT) {
            outcome = DROVER_OUTCOME_TIMEOUT;
            snprintf (member->reason, sizeof member->reason, "timed out after %u ms",
                      current->first);
        }
        else
        if (member->kill == KILL_CANCEL) {
            outcome = DROVER_OUTCOME_CANCELLED;
            snprintf (member->reason, sizeof member->reason, "cancelled");
        }
        else
        if (member->kill == KILL_BROKEN) {
            outcome = DROVER_OUTCOME_ERROR;
        }
        else
        if (signal) {
            outcome = DROVER_OUTCOME_SIGNAL;
            snprintf (member->reason, sizeof member->reason,
                      "handler crashed: %s (its pool process was replaced)", how);
        }
        else {
            outcome = DROVER_OUTCOME_ERROR;
            snprintf (member->reason, sizeof member->reason,
                      "handler ended its process: %s (the pool process was replaced)", how);
        }
        if (member->kill != KILL_CANCEL)
            drv_sandbox_explain (sandbox, signal, reaped > 0 ? &usage : NULL, member->base_rss,
                                 group, member->reason, sizeof member->reason);
        zsys_info ("pool: member %zu %s; job=%" PRIu64 " failed: %s", member->index, how,
                   job_id, member->reason);
        s_requeue (self, member, job_id);
        s_give_result (self, job_id, outcome, NULL, 0, member->reason);
    }
    else {
        if (!self->stopping && member->inflight)
            zsys_info ("pool: member %zu %s between tasks; requeueing %zu", member->index, how,
                       member->inflight);
        s_requeue (self, member, 0);
    }
}

//  Threads mode: a member's socket closed; join it.
static void
s_join (drv_pool_t *self, s_member_t *member)
{
    s_close_socket (self, member);
    if (member->has_thread) {
        pthread_join (member->thread, NULL);
        member->has_thread = false;
    }
    member->alive = false;
    if (!member->ready) {
        snprintf (member->reason, sizeof member->reason, "%s",
                  *member->hello ? member->hello : "pool thread failed to start");
        s_fail_all (self, member, DROVER_OUTCOME_ERROR);
        member->failures++;
        member->respawn_at = s_now_ms () + 1000;
    }
    else
        s_requeue (self, member, 0);
}

//  Start members that are down and due.
static void
s_respawn (drv_pool_t *self, int64_t now)
{
    if (self->stopping)
        return;
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (!member->alive && member->respawn_at <= now && !s_spawn (self, member))
            member->respawn_at = now + 1000;
    }
}

//  Retire members that have had their max_tasks and answered them all.
static void
s_retire (drv_pool_t *self)
{
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (member->retiring && member->fd != -1 && member->inflight == 0) {
            if (self->config.threads)
                s_join (self, member);   //  it is idle: EOF ends it at once
            else
                s_close_socket (self, member);  //  it exits; its pidfd follows
        }
    }
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    drv_pool_t *self = (drv_pool_t *) arg;
    self->timer_id = -1;
    int64_t now = s_now_ms ();
    if (now - self->progress_polled >= PROGRESS_POLL_MS) {
        self->progress_polled = now;
        s_poll_progress (self);
    }
    s_respawn (self, now);
    drv_pool_flush (self);
    return 0;
}

//  The soonest of: a member due to start again, a running task's
//  deadline (past ones are killed here), a recheck while a member holds
//  tasks with timeouts whose start it cannot see yet.
static void
s_arm_timer (drv_pool_t *self)
{
    int64_t now = s_now_ms ();
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (member->progress_job && self->progress_polled + PROGRESS_POLL_MS < next)
            next = self->progress_polled + PROGRESS_POLL_MS;
        if (!member->alive) {
            if (!self->stopping && member->respawn_at < next)
                next = member->respawn_at;
            continue;
        }
        if (!member->pid || !member->timeouts || member->kill != KILL_NONE)
            continue;
        s_shared_t *shared = &self->shared [i];
        int64_t since = atomic_load_explicit (&shared->since_ms, memory_order_acquire);
        uint64_t started = atomic_load_explicit (&shared->started, memory_order_relaxed);
        s_header_t *entry = since && started > member->replied
                            ? s_journal_entry (member, started - 1 - member->replied)
                            : NULL;
        if (entry && entry->first) {
            int64_t deadline = since + entry->first;
            if (deadline <= now)
                s_kill (member, KILL_TIMEOUT, entry->job_id);
            else
            if (deadline < next)
                next = deadline;
        }
        else
        if (now + TIMEOUT_POLL_MS < next)
            next = now + TIMEOUT_POLL_MS;
    }
    if (next == INT64_MAX) {
        if (self->timer_id != -1) {
            zloop_timer_end (self->loop, self->timer_id);
            self->timer_id = -1;
        }
        return;
    }
    if (self->timer_id != -1 && self->timer_at == next)
        return;
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    size_t delay = next > now ? (size_t) (next - now) : 1;
    self->timer_id = zloop_timer (self->loop, delay, 1, s_on_timer, self);
    self->timer_at = next;
}

//  One pass: every member that has something, then one flush.
static int
s_on_events (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    drv_pool_t *self = (drv_pool_t *) arg;
    struct epoll_event events [EVENTS_MAX];
    int count = epoll_wait (self->epfd, events, EVENTS_MAX, 0);
    //  Sockets first, so that a dead member's last answers count.
    for (int i = 0; i < count; i++) {
        uint64_t key = events [i].data.u64;
        if (key & 1)
            continue;
        s_member_t *member = &self->members [key >> 1];
        if (member->fd == -1)
            continue;
        if (events [i].events & EPOLLOUT)
            s_write (self, member);
        if (events [i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            s_read (self, member);
            if (self->config.threads && member->fd == -1)
                s_join (self, member);
        }
    }
    for (int i = 0; i < count; i++) {
        uint64_t key = events [i].data.u64;
        s_member_t *member = &self->members [key >> 1];
        if ((key & 1) && member->pid)
            s_reap (self, member);
    }
    s_respawn (self, s_now_ms ());
    drv_pool_flush (self);
    if (self->gave) {
        self->gave = false;
        if (self->pass)
            self->pass (self->arg);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Public API.

drv_pool_t *
drv_pool_new (zloop_t *loop, const drv_pool_config_t *config, drv_pool_result_fn *result,
              drv_pool_pass_fn *pass, void *arg, char *err, size_t err_size)
{
    if (!loop || !config || !config->size || !result) {
        snprintf (err, err_size, "pool needs a loop, a size and a result callback");
        return NULL;
    }
    drv_pool_t *self = (drv_pool_t *) calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->config = *config;
    self->result = result;
    self->pass = pass;
    self->arg = arg;
    self->timer_id = -1;
    self->agent_pid = getpid ();
    self->epfd = epoll_create1 (EPOLL_CLOEXEC);
    self->members = (s_member_t *) calloc (config->size, sizeof (s_member_t));
    size_t shared_size = config->size * sizeof (s_shared_t);
    self->shared = (s_shared_t *) mmap (NULL, shared_size, PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (self->shared == MAP_FAILED)
        self->shared = NULL;
    if (self->epfd == -1 || !self->members || !self->shared) {
        snprintf (err, err_size, "cannot set up the pool: %s", strerror (errno));
        drv_pool_destroy (&self);
        return NULL;
    }
    for (size_t i = 0; i < config->size; i++)
        self->members [i] = (s_member_t) {.index = i, .fd = -1, .pidfd = -1};
    for (size_t i = 0; i < config->size; i++)
        if (!s_spawn (self, &self->members [i])) {
            snprintf (err, err_size, "cannot start %s %zu of %u",
                      config->threads ? "pool thread" : "pool process", i + 1, config->size);
            drv_pool_destroy (&self);
            return NULL;
        }
    zmq_pollitem_t item = {NULL, self->epfd, ZMQ_POLLIN, 0};
    if (zloop_poller (loop, &item, s_on_events, self) == -1) {
        snprintf (err, err_size, "cannot poll the pool");
        drv_pool_destroy (&self);
        return NULL;
    }
    return self;
}

void
drv_pool_destroy (drv_pool_t **self_p)
{
    assert (self_p);
    drv_pool_t *self = *self_p;
    if (!self)
        return;
    self->stopping = true;
    if (self->epfd != -1) {
        zmq_pollitem_t item = {NULL, self->epfd, 0, 0};
        zloop_poller_end (self->loop, &item);
    }
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    for (size_t i = 0; self->members && i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (member->pid) {
            kill (-member->pid, SIGKILL);
            kill (member->pid, SIGKILL);
            while (waitpid (member->pid, NULL, 0) == -1 && errno == EINTR)
                ;
            member->pid = 0;
        }
        if (member->pidfd != -1)
            close (member->pidfd);
        if (member->fd != -1)
            close (member->fd);  //  threads see EOF once their handler returns
        if (member->has_thread)
            pthread_join (member->thread, NULL);
        s_release_all (&member->journal, member->journal.head, member->journal.tail);
        s_buf_free (&member->journal);
        s_buf_free (&member->input);
    }
    free (self->members);
    if (self->shared)
        munmap (self->shared, self->config.size * sizeof (s_shared_t));
    if (self->epfd != -1)
        close (self->epfd);
    s_release_all (&self->queue, self->queue.head, self->queue.tail);
    s_buf_free (&self->queue);
    free (self);
    *self_p = NULL;
}

//  Is the member one a flush may give tasks to?
static bool
s_takes_tasks (const s_member_t *member)
{
    return member->fd != -1 && !member->retiring && member->kill == KILL_NONE;
}

//  The member a task would go to if the queue held only it, as
//  drv_pool_flush deals: one under its even share, from self->next on.
//  NULL if none has room, or tasks wait in the queue (they go first).
static s_member_t *
s_direct_member (drv_pool_t *self)
{
    if (self->queued)
        return NULL;
    size_t live = 0, inflight = 0;
    for (size_t i = 0; i < self->config.size; i++)
        if (s_takes_tasks (&self->members [i])) {
            live++;
            inflight += self->members [i].inflight;
        }
    if (!live)
        return NULL;
    size_t target = (1 + inflight + live - 1) / live;
    if (target > BATCH_MAX)
        target = BATCH_MAX;
    for (size_t n = 0; n < self->config.size; n++) {
        s_member_t *member = &self->members [(self->next + n) % self->config.size];
        if (s_takes_tasks (member) && member->inflight < target
            && (!self->config.max_tasks || member->given < self->config.max_tasks)) {
            self->next = (self->next + 1) % self->config.size;
            return member;
        }
    }
    return NULL;
}

int
drv_pool_submit_kept (drv_pool_t *self, uint64_t job_id, size_t fn, const void *payload,
                      size_t size, uint32_t timeout_ms, drv_pool_release_fn *release, void *owner)
{
    assert (release);
    if (size > UINT32_MAX - 64 || fn >= self->config.nfunctions) {
        release (owner);
        return -1;
    }
    union {
        s_header_t header;
        uint8_t bytes [KEPT_SIZE];
    } record = {.header = {.size = KEPT_SIZE,
                           .kind = (uint32_t) fn | KIND_KEPT,
                           .job_id = job_id,
                           .first = timeout_ms,
                           .second = (uint32_t) size}};
    s_kept_t kept = {.address = (uint64_t) (uintptr_t) payload,
                     .release = (uint64_t) (uintptr_t) release,
                     .owner = (uint64_t) (uintptr_t) owner};
    memcpy (record.bytes + HEADER_SIZE, &kept, sizeof kept);
    //  Straight to a member when one has room and nothing waits, as a
    //  large task is in drv_pool_submit.
    s_member_t *member = s_direct_member (self);
    if (member) {
        if (s_journal_add (self, member, &record.header) == -1) {
            release (owner);
            return -1;
        }
        s_write (self, member);
        return 0;
    }
    if (s_reserve (&self->queue, KEPT_SIZE, NULL) == -1) {
        release (owner);
        return -1;
    }
    memcpy (self->queue.data + self->queue.tail, record.bytes, KEPT_SIZE);
    self->queue.tail += KEPT_SIZE;
    self->queued++;
    return 0;
}

int
drv_pool_submit (drv_pool_t *self, uint64_t job_id, size_t fn, const void *payload, size_t size,
                 uint32_t timeout_ms)
{
    if (size > UINT32_MAX - 64 || fn >= self->config.nfunctions)
        return -1;
    //  A large task goes straight into a member's journal when one has
    //  room and nothing waits: copied once (not into the queue, then at
    //  the flush into the journal), and written at once; batching small
    //  tasks is what the queue is for.
    s_member_t *member = size >= DIRECT_MIN ? s_direct_member (self) : NULL;
    if (member) {
        if (s_append (&member->journal, &member->sent, true, (uint32_t) fn, job_id, timeout_ms,
                      payload, size, NULL, 0)
            == -1)
            return -1;
        if (timeout_ms)
            member->timeouts++;
        member->inflight++;
        member->given++;
        if (self->config.max_tasks && member->given >= self->config.max_tasks)
            member->retiring = true;
        s_write (self, member);
        return 0;
    }
    if (s_append (&self->queue, NULL, true, (uint32_t) fn, job_id, timeout_ms, payload, size, NULL, 0)
        == -1)
        return -1;
    self->queued++;
    return 0;
}

void
drv_pool_flush (drv_pool_t *self)
{
    s_retire (self);
    size_t live = 0, inflight = 0;
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        if (s_takes_tasks (member)) {
            live++;
            inflight += member->inflight;
        }
    }
    if (self->queued && live) {
        //  An even share each, so that slow tasks do not pile up on one
        //  member while another is idle; at most BATCH_MAX held at once.
        size_t target = (self->queued + inflight + live - 1) / live;
        if (target > BATCH_MAX)
            target = BATCH_MAX;
        for (size_t n = 0; n < self->config.size && self->queued; n++) {
            s_member_t *member = &self->members [(self->next + n) % self->config.size];
            if (!s_takes_tasks (member) || member->inflight >= target)
                continue;
            size_t room = target - member->inflight;
            if (self->config.max_tasks && room > self->config.max_tasks - member->given)
                room = self->config.max_tasks - member->given;
            //  Move the first `room` queued records to its journal, then
            //  write them at once.
            size_t taken = 0;
            while (taken < room && self->queue.head < self->queue.tail) {
                s_header_t *entry = s_header_at (&self->queue, self->queue.head);
                uint32_t size = entry->size;
                if (s_journal_add (self, member, entry) == -1)
                    break;           //  out of memory: they wait
                self->queue.head += size;
                taken++;
            }
            self->queued -= taken;
            if (taken)
                s_write (self, member);
        }
        self->next = (self->next + 1) % self->config.size;
        if (!self->queued)
            self->queue.head = self->queue.tail = 0;
    }
    s_arm_timer (self);
}

bool
drv_pool_cancel (drv_pool_t *self, uint64_t job_id)
{
    for (size_t offset = self->queue.head; offset < self->queue.tail;) {
        s_header_t *entry = s_header_at (&self->queue, offset);
        if (entry->job_id == job_id) {
            uint32_t size = entry->size;
            s_release (entry);
            memmove (self->queue.data + offset, self->queue.data + offset + size,
                     self->queue.tail - offset - size);
            self->queue.tail -= size;
            self->queued--;
            s_give_result (self, job_id, DROVER_OUTCOME_CANCELLED, NULL, 0, "cancelled");
            self->gave = false;      //  the caller flushes
            return true;
        }
        offset += entry->size;
    }
    for (size_t i = 0; i < self->config.size; i++) {
        s_member_t *member = &self->members [i];
        for (uint64_t n = 0; n < member->inflight; n++) {
            s_header_t *entry = s_journal_entry (member, n);
            if (entry && entry->job_id == job_id) {
                s_kill (member, KILL_CANCEL, job_id);
                return true;
            }
        }
    }
    return false;
}

void
drv_pool_set_progress (drv_pool_t *self, drv_pool_progress_fn *progress)
{
    self->progress = progress;
}

size_t
drv_pool_pending (drv_pool_t *self)
{
    size_t count = self->queued;
    for (size_t i = 0; i < self->config.size; i++)
        count += self->members [i].inflight;
    return count;
}

uint64_t
drv_pool_spawned (drv_pool_t *self)
{
    return self->spawned;
}
