/*  test_pool.c - tests for worker/drv_pool, the prefork pool for
    in-process handlers, and its use of drv_sandbox.

    Each test runs a pool under a zloop until the results it waits for
    have come, with a time limit so that no test can hang, and checks at
    the end that no member process is left (the test process is their
    parent; waitpid says ECHILD once all are reaped).
*/

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drv_guard.h"
#include "drv_pool.h"
#include "drv_testutil.h"

#define RUN_LIMIT_MS 20000           //  longest a test waits for its results
#define MAX_RESULTS 4096

//  What a test collects.
typedef struct {
    size_t count;                    //  results so far
    size_t passes;                   //  end-of-pass calls
    uint64_t job_id [MAX_RESULTS];   //  in arrival order
    drover_outcome_t outcome [MAX_RESULTS];
    char data [MAX_RESULTS][32];     //  first bytes of each output
    char reason [MAX_RESULTS][256];  //  each reason
    size_t wanted;                   //  stop the loop at this many
} s_seen_t;

static s_seen_t seen;
static int s_init_value;             //  set by s_init in each member
static int64_t s_heap_at_fork;       //  in a member: heap in use as it was forked
static int s_private_fd = -1;        //  a close-on-exec descriptor of the test
static int s_inherited_fd = -1;      //  one meant to be inherited

static void
s_on_result (void *arg, uint64_t job_id, drover_outcome_t outcome, const uint8_t *data,
             size_t size, const char *reason)
{
    (void) arg;
    cr_assert_lt (seen.count, MAX_RESULTS);
    size_t i = seen.count++;
    seen.job_id [i] = job_id;
    seen.outcome [i] = outcome;
    snprintf (seen.data [i], sizeof seen.data [i], "%.*s", (int) (size < 31 ? size : 31),
              (const char *) data);
    snprintf (seen.reason [i], sizeof seen.reason [i], "%s", reason);
}

static void
s_on_pass (void *arg)
{
    (void) arg;
    seen.passes++;
}

static int
s_check_done (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return seen.count >= seen.wanted ? -1 : 0;
}

static int
s_give_up (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

//  Run the loop until `wanted` results have come or the limit passes.
static void
s_run_until (zloop_t *loop, size_t wanted)
{
    seen.wanted = wanted;
    int check = zloop_timer (loop, 5, 0, s_check_done, NULL);
    int limit = zloop_timer (loop, RUN_LIMIT_MS, 1, s_give_up, NULL);
    zloop_start (loop);
    zloop_timer_end (loop, check);
    zloop_timer_end (loop, limit);
    cr_assert_geq (seen.count, wanted, "only %zu of %zu results came", seen.count, wanted);
}

//  The result for a job, or -1.
static ssize_t
s_find (uint64_t job_id)
{
    for (size_t i = 0; i < seen.count; i++)
        if (seen.job_id [i] == job_id)
            return (ssize_t) i;
    return -1;
}

//  Bytes of heap in use, from the allocator that serves malloc (the
//  broker's memory guard reads it the same way).
static int64_t
s_heap_in_use (void)
{
    return (int64_t) drv_guard_heap ();
}

//  pthread_atfork child handler: note the heap as the member starts.
static void
s_note_heap (void)
{
    s_heap_at_fork = s_heap_in_use ();
}

//  ---------------------------------------------------------------------
//  Handlers.

//  A 64-bit FNV-1a hash of every byte, in hex: what "sum:" answers.
static void
s_hash (const void *data, size_t size, char *out, size_t out_size)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ ((const uint8_t *) data) [i]) * 0x100000001b3ull;
    snprintf (out, out_size, "%016" PRIx64, hash);
}

//  Echo the payload, or act on it: "crash", "exit", "sleep", "fail",
//  "pid", "init", "spin", "hog", "heap" (a progress report, then bytes
//  allocated in this member since its fork), "fail-heap" (that, as a
//  failure reason), "wide" (30 KB of output), "sum:..." (s_hash of the
//  whole payload, which must be followed by its NUL).
static int
s_handler (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    if (size == 5 && memcmp (text, "crash", 5) == 0) {
        signal (SIGSEGV, SIG_DFL);
        raise (SIGSEGV);
    }
    if (size > 6 && memcmp (text, "crash:", 6) == 0) {
        signal (SIGSEGV, SIG_DFL);
        raise (SIGSEGV);
    }
    if (size == 4 && memcmp (text, "exit", 4) == 0)
        _exit (3);
    if (size > 4 && memcmp (text, "sum:", 4) == 0) {
        if (text [size] != 0) {
            drover_task_fail (task, "the payload is not followed by a NUL");
            return -1;
        }
        char hash [32];
        s_hash (text, size, hash, sizeof hash);
        return drover_task_reply (task, hash, strlen (hash));
    }
    if (size == 5 && memcmp (text, "sleep", 5) == 0)
        sleep (60);
    if (size == 4 && memcmp (text, "fail", 4) == 0) {
        drover_task_fail (task, "asked to fail");
        return -1;
    }
    char out [32];
    if (size == 4 && memcmp (text, "heap", 4) == 0) {
        drover_task_progress (task, 1, 2, "half", 4);
        int length = snprintf (out, sizeof out, "%" PRId64, s_heap_in_use () - s_heap_at_fork);
        return drover_task_reply (task, out, (size_t) length);
    }
    if (size == 9 && memcmp (text, "fail-heap", 9) == 0) {
        drover_task_fail (task, "%" PRId64, s_heap_in_use () - s_heap_at_fork);
        return -1;
    }
    if (size == 4 && memcmp (text, "wide", 4) == 0) {
        static char wide [30000];
        memset (wide, 'w', sizeof wide);
        return drover_task_reply (task, wide, sizeof wide);
    }
    if (size == 3 && memcmp (text, "pid", 3) == 0) {
        int length = snprintf (out, sizeof out, "%d", (int) getpid ());
        return drover_task_reply (task, out, (size_t) length);
    }
    if (size == 4 && memcmp (text, "init", 4) == 0) {
        int length = snprintf (out, sizeof out, "%d", s_init_value);
        return drover_task_reply (task, out, (size_t) length);
    }
    if (size == 3 && memcmp (text, "fds", 3) == 0) {
        int length = snprintf (out, sizeof out, "private=%d inherited=%d",
                               fcntl (s_private_fd, F_GETFD) != -1,
                               fcntl (s_inherited_fd, F_GETFD) != -1);
        return drover_task_reply (task, out, (size_t) length);
    }
    if (size == 4 && memcmp (text, "spin", 4) == 0)
        for (volatile unsigned long i = 0;; i++)
            ;
    if (size == 3 && memcmp (text, "hog", 3) == 0) {
        //  Touch memory a MiB at a time until allocation fails, then fail.
        for (size_t total = 0;; total += 1 << 20) {
            char *block = (char *) malloc (1 << 20);
            if (!block) {
                drover_task_fail (task, "cannot allocate more than %zu MiB", total >> 20);
                return -1;
            }
            memset (block, 1, 1 << 20);
        }
    }
    return drover_task_reply (task, text, size);
}

static int
s_init (void *arg)
{
    s_init_value = *(int *) arg;
    return s_init_value == 0 ? -1 : 0;
}

static drv_pool_function_t s_functions [] = {{.name = "test", .handler = s_handler}};

//  A pool of `size` members with these options.
static drv_pool_t *
s_pool (zloop_t *loop, unsigned size, bool threads, unsigned max_tasks, drover_init_fn *init,
        void *init_arg, const drv_sandbox_t *sandbox)
{
    drv_pool_config_t config = {
        .size = size,
        .threads = threads,
        .max_tasks = max_tasks,
        .init = init,
        .init_arg = init_arg,
        .functions = s_functions,
        .nfunctions = 1,
        .max_output = 1 << 20,
        .sandbox = sandbox,
    };
    char err [256] = "";
    drv_pool_t *pool = drv_pool_new (loop, &config, s_on_result, s_on_pass, NULL, err, sizeof err);
    cr_assert_not_null (pool, "%s", err);
    return pool;
}

static void
s_submit (drv_pool_t *pool, uint64_t job_id, const char *text, uint32_t timeout_ms)
{
    cr_assert_eq (drv_pool_submit (pool, job_id, 0, text, strlen (text), timeout_ms), 0);
}

static void
s_setup (void)
{
    memset (&seen, 0, sizeof seen);
    s_init_value = 0;
}

//  No member process left behind.
static void
s_assert_reaped (void)
{
    errno = 0;
    pid_t child = waitpid (-1, NULL, WNOHANG);
    cr_assert (child == -1 && errno == ECHILD, "a member was left behind (waitpid gave %d)",
               (int) child);
}

TestSuite (pool, .init = s_setup, .timeout = 60);

//  ---------------------------------------------------------------------

Test (pool, many_tasks_in_batches)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 2, false, 0, NULL, NULL, NULL);
    char text [32];
    for (uint64_t id = 1; id <= 2000; id++) {
        snprintf (text, sizeof text, "task-%" PRIu64, id);
        s_submit (pool, id, text, 0);
    }
    drv_pool_flush (pool);
    cr_assert_eq (drv_pool_pending (pool), 2000);
    s_run_until (loop, 2000);
    for (uint64_t id = 1; id <= 2000; id++) {
        ssize_t i = s_find (id);
        cr_assert_geq (i, 0, "no result for %" PRIu64, id);
        snprintf (text, sizeof text, "task-%" PRIu64, id);
        cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK);
        cr_assert_str_eq (seen.data [i], text);
    }
    //  Results come many to a pass, not one by one.
    cr_assert_lt (seen.passes, 1000, "%zu passes for 2000 results", seen.passes);
    cr_assert_eq (drv_pool_pending (pool), 0);
    cr_assert_eq (drv_pool_spawned (pool), 2);
    drv_pool_destroy (&pool);
    cr_assert_null (pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, crash_fails_only_its_own_task)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    for (uint64_t id = 1; id <= 20; id++)
        s_submit (pool, id, id == 7 ? "crash" : "fine", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 20);
    for (uint64_t id = 1; id <= 20; id++) {
        ssize_t i = s_find (id);
        cr_assert_geq (i, 0);
        if (id == 7) {
            cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_SIGNAL);
            cr_assert (strstr (seen.reason [i], "killed by signal SIGSEGV"), "reason: %s",
                       seen.reason [i]);
        }
        else {
            cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK, "job %" PRIu64 ": %s", id,
                          seen.reason [i]);
            cr_assert_str_eq (seen.data [i], "fine");
        }
    }
    //  Every job answered once, and the crashed member was replaced.
    cr_assert_eq (seen.count, 20);
    cr_assert_eq (drv_pool_spawned (pool), 2);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, members_keep_inherited_descriptors_only)
{
    //  A close-on-exec pipe stands for the worker's own descriptors (the
    //  pipes of a running exec: task, ZeroMQ's); a plain one for a file
    //  the program opened for its handlers.
    int private_pipe [2], inherited_pipe [2];
    cr_assert_eq (pipe2 (private_pipe, O_CLOEXEC), 0);
    cr_assert_eq (pipe (inherited_pipe), 0);
    s_private_fd = private_pipe [1];
    s_inherited_fd = inherited_pipe [1];
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "fds", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    cr_assert_str_eq (seen.data [0], "private=0 inherited=1");
    //  The member holds no write end of the private pipe: closing ours
    //  gives the reader EOF at once.
    close (private_pipe [1]);
    char byte;
    cr_assert_eq (read (private_pipe [0], &byte, 1), 0);
    close (private_pipe [0]);
    close (inherited_pipe [0]);
    close (inherited_pipe [1]);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

//  A member is a child of a process with other threads; a lock one of
//  them held at the fork stays held in the child, and not every
//  allocator resets its own (AddressSanitizer's in gcc 12 does not:
//  test_scale's members hung in malloc before their hello). So the
//  member's own code allocates nothing: each handler here sees the heap
//  as it was at the fork, around replies, progress reports, failures and
//  batches alike (the wide replies of one batch are more than the
//  member's reply buffer holds).
Test (pool, members_allocate_nothing_of_their_own)
{
    static bool registered;
    if (!registered)
        cr_assert_eq (pthread_atfork (NULL, NULL, s_note_heap), 0);
    registered = true;
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "heap", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    for (uint64_t id = 2; id <= 200; id++)
        s_submit (pool, id, id % 3 == 0 ? "fail-heap" : id % 3 == 1 ? "heap" : "wide", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 200);
    for (uint64_t id = 1; id <= 200; id++) {
        ssize_t i = s_find (id);
        cr_assert_geq (i, 0);
        cr_assert_eq (seen.outcome [i], id % 3 ? DROVER_OUTCOME_OK : DROVER_OUTCOME_ERROR);
        if (id % 3 == 1)
            cr_assert_str_eq (seen.data [i], "0", "task %" PRIu64 ": the member had allocated %s "
                              "bytes since its fork", id, seen.data [i]);
        else
        if (id % 3 == 0)
            cr_assert_str_eq (seen.reason [i], "0", "task %" PRIu64 ": the member had "
                              "allocated %s bytes since its fork", id, seen.reason [i]);
    }
    cr_assert_eq (drv_pool_spawned (pool), 1);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, handler_that_exits_fails_with_its_status)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 2, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "exit", 0);
    s_submit (pool, 2, "fail", 0);
    s_submit (pool, 3, "after", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 3);
    ssize_t i = s_find (1);
    cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_ERROR);
    cr_assert (strstr (seen.reason [i], "exited with status 3"), "reason: %s", seen.reason [i]);
    i = s_find (2);
    cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (seen.reason [i], "asked to fail");
    i = s_find (3);
    cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, timeout_kills_the_member)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "before", 0);
    s_submit (pool, 2, "sleep", 300);
    s_submit (pool, 3, "after", 300);
    drv_pool_flush (pool);
    s_run_until (loop, 3);
    ssize_t i = s_find (2);
    cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_TIMEOUT);
    cr_assert_str_eq (seen.reason [i], "timed out after 300 ms");
    cr_assert_eq (seen.outcome [s_find (1)], DROVER_OUTCOME_OK);
    cr_assert_eq (seen.outcome [s_find (3)], DROVER_OUTCOME_OK);
    cr_assert_eq (drv_pool_spawned (pool), 2);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, cancel_running_and_queued)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "sleep", 0);
    drv_pool_flush (pool);
    s_submit (pool, 2, "queued", 0);  //  still in the pool's queue? maybe
    //  Let the member start the sleep, then cancel both.
    zclock_sleep (200);
    cr_assert (drv_pool_cancel (pool, 1));
    cr_assert (drv_pool_cancel (pool, 2));
    cr_assert_not (drv_pool_cancel (pool, 99));
    s_run_until (loop, 2);
    cr_assert_eq (seen.outcome [s_find (1)], DROVER_OUTCOME_CANCELLED);
    cr_assert_eq (seen.outcome [s_find (2)], DROVER_OUTCOME_CANCELLED);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, max_tasks_per_child_replaces_members)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 2, false, 5, NULL, NULL, NULL);
    for (uint64_t id = 1; id <= 40; id++)
        s_submit (pool, id, "pid", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 40);
    //  No process ran more than 5 tasks; so at least 8 ran them.
    size_t distinct = 0;
    for (size_t i = 0; i < seen.count; i++) {
        cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK);
        size_t same = 0;
        bool first = true;
        for (size_t j = 0; j < seen.count; j++)
            if (streq (seen.data [i], seen.data [j])) {
                same++;
                if (j < i)
                    first = false;
            }
        cr_assert_leq (same, 5, "pid %s ran %zu tasks", seen.data [i], same);
        distinct += first ? 1 : 0;
    }
    cr_assert_geq (distinct, 8);
    cr_assert_geq (drv_pool_spawned (pool), 8);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, initializer_runs_in_each_member)
{
    zloop_t *loop = zloop_new ();
    int value = 42;
    drv_pool_t *pool = s_pool (loop, 2, false, 0, s_init, &value, NULL);
    for (uint64_t id = 1; id <= 10; id++)
        s_submit (pool, id, "init", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 10);
    for (size_t i = 0; i < seen.count; i++)
        cr_assert_str_eq (seen.data [i], "42");
    //  It ran in the members, not here.
    cr_assert_eq (s_init_value, 0);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, failing_initializer_fails_tasks_with_why)
{
    zloop_t *loop = zloop_new ();
    int value = 0;                   //  s_init fails on 0
    drv_pool_t *pool = s_pool (loop, 1, false, 0, s_init, &value, NULL);
    s_submit (pool, 1, "init", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    cr_assert_eq (seen.outcome [0], DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (seen.reason [0], "the initializer failed");
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, threads_mode)
{
    zloop_t *loop = zloop_new ();
    int value = 7;
    drv_pool_t *pool = s_pool (loop, 2, true, 3, s_init, &value, NULL);
    for (uint64_t id = 1; id <= 30; id++)
        s_submit (pool, id, id % 2 ? "pid" : "init", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 30);
    char self [32];
    snprintf (self, sizeof self, "%d", (int) getpid ());
    for (uint64_t id = 1; id <= 30; id++) {
        ssize_t i = s_find (id);
        cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK);
        //  Threads of this process, sharing its memory.
        cr_assert_str_eq (seen.data [i], id % 2 ? self : "7");
    }
    cr_assert_eq (s_init_value, 7);
    //  Three tasks per thread: thirty tasks took at least ten threads.
    cr_assert_geq (drv_pool_spawned (pool), 10);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
}

Test (pool, big_payloads)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 2, false, 0, NULL, NULL, NULL);
    size_t size = 900 * 1024;
    char *big = (char *) malloc (size + 1);
    for (size_t i = 0; i < size; i++)
        big [i] = (char) ('a' + i % 26);
    big [size] = 0;
    for (uint64_t id = 1; id <= 20; id++)
        cr_assert_eq (drv_pool_submit (pool, id, 0, big, size, 0), 0);
    drv_pool_flush (pool);
    s_run_until (loop, 20);
    for (size_t i = 0; i < seen.count; i++) {
        cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK, "%s", seen.reason [i]);
        cr_assert_eq (memcmp (seen.data [i], big, strlen (seen.data [i])), 0);
    }
    free (big);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

//  A large task is in a member's hands as soon as it is submitted; a
//  small one waits in the queue for the flush. Cancelling tells which:
//  a queued task is cancelled on the spot, one a member holds only once
//  the member is stopped.
Test (pool, a_large_task_goes_to_a_member_at_once)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    //  A first task, so that the member is up (killing a member that has
    //  not started yet fails its tasks as such, not as cancelled).
    s_submit (pool, 10, "fine", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    s_submit (pool, 1, "small", 0);
    cr_assert (drv_pool_cancel (pool, 1));
    cr_assert_eq (seen.count, 2, "a queued task is cancelled at once");
    cr_assert_eq (seen.outcome [s_find (1)], DROVER_OUTCOME_CANCELLED);
    size_t size = 100 * 1024;
    char *big = (char *) calloc (1, size);
    memset (big, 'b', size);
    cr_assert_eq (drv_pool_submit (pool, 2, 0, big, size, 0), 0);
    cr_assert (drv_pool_cancel (pool, 2));
    cr_assert_eq (seen.count, 2, "the large task was still in the queue");
    s_run_until (loop, 3);
    ssize_t i = s_find (2);
    cr_assert_geq (i, 0, "no result for the large task");
    cr_assert (seen.outcome [i] == DROVER_OUTCOME_CANCELLED || seen.outcome [i] == DROVER_OUTCOME_OK,
               "outcome %d: %s", (int) seen.outcome [i], seen.reason [i]);
    free (big);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

//  Large tasks go straight to a member (no queue) when it has room: a
//  crash there still fails only its own task, and the member's others
//  run again in the member that replaces it.
Test (pool, large_tasks_sent_at_once_survive_a_crash)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    size_t size = 70 * 1024;
    char *big [6];
    for (uint64_t id = 1; id <= 6; id++) {
        big [id - 1] = (char *) malloc (size + 1);
        for (size_t i = 0; i < size; i++)
            big [id - 1][i] = (char) ('a' + (i + id) % 26);
        big [id - 1][size] = 0;
        if (id == 3)
            memcpy (big [id - 1], "crash:", 6);
        cr_assert_eq (drv_pool_submit (pool, id, 0, big [id - 1], size, 0), 0);
    }
    //  No drv_pool_flush: they went to the member already, or their
    //  results would never come.
    s_run_until (loop, 6);
    for (uint64_t id = 1; id <= 6; id++) {
        ssize_t i = s_find (id);
        cr_assert_geq (i, 0, "no result for %" PRIu64, id);
        if (id == 3)
            cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_SIGNAL, "%s", seen.reason [i]);
        else {
            cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_OK, "%s", seen.reason [i]);
            //  (seen keeps the first 31 bytes of each result)
            cr_assert_eq (memcmp (seen.data [i], big [id - 1], 31), 0, "task %" PRIu64, id);
        }
    }
    cr_assert_eq (drv_pool_spawned (pool), 2, "the crash replaced the member once");
    for (size_t i = 0; i < 6; i++)
        free (big [i]);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

//  ---------------------------------------------------------------------
//  Kept payloads (drv_pool_submit_kept): the pool holds the caller's
//  bytes, not a copy, and lets go of each exactly once.

#define KEPT_COUNT 8

typedef struct {
    char *bytes;                     //  the payload
    size_t size;                     //  its bytes
    int released;                    //  times the pool let go of it
    size_t results_then;             //  results given before it was
} s_kept_t;

static s_kept_t s_kept [KEPT_COUNT];

static void
s_release_kept (void *owner)
{
    s_kept_t *kept = (s_kept_t *) owner;
    kept->released++;
    kept->results_then = seen.count;
}

//  Payload i: "sum:", or "crash:" for crash_at, then a pattern of its
//  own; sizes around 300 KiB, none alike.
static void
s_kept_make (size_t crash_at)
{
    for (size_t i = 0; i < KEPT_COUNT; i++) {
        s_kept_t *kept = &s_kept [i];
        *kept = (s_kept_t) {.size = 300 * 1024 + i * 4099};
        kept->bytes = (char *) malloc (kept->size);
        cr_assert_not_null (kept->bytes);
        for (size_t b = 0; b < kept->size; b++)
            kept->bytes [b] = (char) ('a' + (b * 7 + i) % 26);
        memcpy (kept->bytes, i == crash_at ? "crash:" : "sum:", i == crash_at ? 6 : 4);
    }
}

static void
s_kept_submit (drv_pool_t *pool, size_t i, uint32_t timeout_ms)
{
    cr_assert_eq (drv_pool_submit_kept (pool, 100 + i, 0, s_kept [i].bytes, s_kept [i].size,
                                        timeout_ms, s_release_kept, &s_kept [i]),
                  0);
}

//  Task i's result is the hash of its whole payload.
static void
s_kept_assert_ok (size_t i)
{
    ssize_t at = s_find (100 + i);
    cr_assert_geq (at, 0, "no result for kept task %zu", i);
    cr_assert_eq (seen.outcome [at], DROVER_OUTCOME_OK, "kept task %zu: %s", i, seen.reason [at]);
    char hash [32];
    s_hash (s_kept [i].bytes, s_kept [i].size, hash, sizeof hash);
    cr_assert_str_eq (seen.data [at], hash, "kept task %zu arrived changed", i);
}

static void
s_kept_free (void)
{
    for (size_t i = 0; i < KEPT_COUNT; i++) {
        free (s_kept [i].bytes);
        s_kept [i].bytes = NULL;
    }
}

//  Two members, up (their hellos in): each kept payload is read where
//  it is, so the pool lets go of it only once its result has come.
static void
s_kept_run (bool threads)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 2, threads, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "up", 0);
    s_submit (pool, 2, "up", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 2);
    s_kept_make (KEPT_COUNT);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        s_kept_submit (pool, i, 0);
    drv_pool_flush (pool);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        cr_assert_eq (s_kept [i].released, 0, "kept payload %zu was copied", i);
    s_run_until (loop, 2 + KEPT_COUNT);
    for (size_t i = 0; i < KEPT_COUNT; i++) {
        s_kept_assert_ok (i);
        cr_assert_eq (s_kept [i].released, 1, "kept payload %zu let go of %d times", i,
                      s_kept [i].released);
        cr_assert_eq (s_kept [i].results_then, (size_t) s_find (100 + i),
                      "kept payload %zu let go of before its result", i);
    }
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_kept_free ();
}

Test (pool, kept_payloads_are_read_where_they_are)
{
    s_kept_run (false);
    s_assert_reaped ();
}

Test (pool, kept_payloads_in_threads_mode)
{
    s_kept_run (true);
}

//  A member that dies holding kept tasks: its own task fails, the
//  others run again elsewhere from the same bytes, each let go of once.
Test (pool, kept_payloads_survive_a_crash)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "up", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    s_kept_make (2);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        s_kept_submit (pool, i, 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1 + KEPT_COUNT);
    for (size_t i = 0; i < KEPT_COUNT; i++) {
        if (i == 2)
            cr_assert_eq (seen.outcome [s_find (100 + i)], DROVER_OUTCOME_SIGNAL);
        else
            s_kept_assert_ok (i);
        cr_assert_eq (s_kept [i].released, 1, "kept payload %zu let go of %d times", i,
                      s_kept [i].released);
    }
    cr_assert_eq (drv_pool_spawned (pool), 2, "the crash replaced the member once");
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_kept_free ();
    s_assert_reaped ();
}

//  Cancelled in the queue, or still held when the pool is destroyed:
//  let go of once all the same.
Test (pool, kept_payloads_dropped_are_let_go_of)
{
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, NULL);
    s_submit (pool, 1, "sleep", 0);
    drv_pool_flush (pool);
    s_kept_make (KEPT_COUNT);
    //  A small task waits in the queue, unflushed: the kept ones after it.
    s_submit (pool, 2, "queued", 0);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        s_kept_submit (pool, i, 0);
    cr_assert (drv_pool_cancel (pool, 100));
    cr_assert_geq (s_find (100), 0, "a queued task is cancelled at once");
    cr_assert_eq (seen.outcome [s_find (100)], DROVER_OUTCOME_CANCELLED);
    cr_assert_eq (s_kept [0].released, 1);
    for (size_t i = 1; i < KEPT_COUNT; i++)
        cr_assert_eq (s_kept [i].released, 0);
    //  Into the member's journal, behind the sleep; then all dropped.
    drv_pool_flush (pool);
    drv_pool_destroy (&pool);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        cr_assert_eq (s_kept [i].released, 1, "kept payload %zu let go of %d times", i,
                      s_kept [i].released);
    zloop_destroy (&loop);
    s_kept_free ();
    s_assert_reaped ();
}

//  A member that runs as another user cannot read the worker's memory
//  (its hello says so): it gets kept payloads inline, and the pool lets
//  go of each as it copies it, before its result.
Test (pool, a_member_of_another_user_gets_kept_payloads_inline)
{
    if (geteuid () != 0)
        cr_skip_test ("needs root to run members as another user");
    drv_sandbox_t sandbox = {0};
    char err [256] = "";
    cr_assert_eq (drv_sandbox_set_user (&sandbox, "nobody", err, sizeof err), 0, "%s", err);
    zloop_t *loop = zloop_new ();
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, &sandbox);
    s_submit (pool, 1, "up", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 1);
    cr_assert_eq (seen.outcome [0], DROVER_OUTCOME_OK, "%s", seen.reason [0]);
    s_kept_make (KEPT_COUNT);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        s_kept_submit (pool, i, 0);
    drv_pool_flush (pool);
    for (size_t i = 0; i < KEPT_COUNT; i++)
        cr_assert_eq (s_kept [i].released, 1, "kept payload %zu was not copied", i);
    s_run_until (loop, 1 + KEPT_COUNT);
    for (size_t i = 0; i < KEPT_COUNT; i++) {
        s_kept_assert_ok (i);
        cr_assert_eq (s_kept [i].released, 1);
    }
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_kept_free ();
    s_assert_reaped ();
}

//  ---------------------------------------------------------------------
//  Limits on pool members (drv_sandbox).

Test (pool, cpu_limit_ends_a_spin)
{
    zloop_t *loop = zloop_new ();
    drv_sandbox_t sandbox = {.max_cpu = 1};
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, &sandbox);
    s_submit (pool, 1, "spin", 0);
    s_submit (pool, 2, "after", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 2);
    ssize_t i = s_find (1);
    cr_assert_eq (seen.outcome [i], DROVER_OUTCOME_SIGNAL);
    cr_assert_str_eq (seen.reason [i], "CPU time limit of 1 s exceeded");
    cr_assert_eq (seen.outcome [s_find (2)], DROVER_OUTCOME_OK);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

Test (pool, memory_limit_ends_a_hog)
{
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test ("ASan's allocator reserves address space of its own");
#endif
    zloop_t *loop = zloop_new ();
    drv_sandbox_t sandbox = {.max_memory = 64 << 20};
    drv_pool_t *pool = s_pool (loop, 1, false, 0, NULL, NULL, &sandbox);
    s_submit (pool, 1, "hog", 0);
    s_submit (pool, 2, "after", 0);
    drv_pool_flush (pool);
    s_run_until (loop, 2);
    ssize_t i = s_find (1);
    cr_assert_neq (seen.outcome [i], DROVER_OUTCOME_OK);
    cr_assert (strstr (seen.reason [i], "memory limit of 64 MiB exceeded"), "reason: %s",
               seen.reason [i]);
    cr_assert_eq (seen.outcome [s_find (2)], DROVER_OUTCOME_OK);
    drv_pool_destroy (&pool);
    zloop_destroy (&loop);
    s_assert_reaped ();
}

//  ---------------------------------------------------------------------
//  drover-worker with plugin handlers, end to end.

#define PLUGIN(name) #name "=plugin:" DROVER_TEST_PLUGIN ":" #name

static drv_test_cluster_t cluster;

static void
s_cluster_setup (void)
{
    memset (&cluster, 0, sizeof cluster);
    drv_test_cluster_start (&cluster, NULL);
}

static void
s_cluster_teardown (void)
{
    drv_test_cluster_stop (&cluster);
}

TestSuite (worker, .init = s_cluster_setup, .fini = s_cluster_teardown, .timeout = 120);

static drv_test_output_t
s_submit_cli (const char *function, const char *data, const char *timeout)
{
    const char *args [] = {"submit", function, "--data", data, timeout ? "--timeout" : NULL,
                           timeout, NULL};
    return drv_test_cli (&cluster, args, NULL, 60000);
}

Test (worker, plugin_crash_fails_one_task_and_the_worker_serves_on)
{
    const char *functions [] = {PLUGIN (echo), PLUGIN (crash), PLUGIN (init_value), NULL};
    const char *flags [] = {"--initializer", DROVER_TEST_PLUGIN ":init",
                            "--max-tasks-per-child", "3", NULL};
    drv_test_cluster_worker_flags (&cluster, 2, functions, flags);
    drv_test_output_t out = s_submit_cli ("echo", "hello", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "hello");
    drv_test_output_free (&out);

    out = s_submit_cli ("crash", "x", NULL);
    cr_assert_eq (out.status, 1);
    cr_assert (strstr (out.err, "killed by signal SIGSEGV"), "stderr: %s", out.err);
    drv_test_output_free (&out);

    //  Many tasks after it, across replaced processes, each initialized.
    char input [2048] = "";
    for (int i = 0; i < 100; i++)
        strcat (input, "x\n");
    const char *args [] = {"map", "init_value", NULL};
    out = drv_test_cli (&cluster, args, input, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    char *line = out.out;
    int lines = 0;
    while (line && *line) {
        cr_assert_eq (strncmp (line, "initialized\n", 12), 0, "line %d: %.40s", lines, line);
        line = strchr (line, '\n');
        line = line ? line + 1 : NULL;
        lines++;
    }
    cr_assert_eq (lines, 100);
    drv_test_output_free (&out);
}

Test (worker, plugin_timeout_is_enforced)
{
    const char *functions [] = {PLUGIN (nap), PLUGIN (echo), NULL};
    drv_test_cluster_worker (&cluster, 1, functions);
    drv_test_output_t out = s_submit_cli ("nap", "60000", "300");
    cr_assert_eq (out.status, 1);
    cr_assert (strstr (out.err, "timed out after 300 ms"), "stderr: %s", out.err);
    drv_test_output_free (&out);
    out = s_submit_cli ("echo", "still here", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "still here");
    drv_test_output_free (&out);
}

Test (worker, threads_mode_runs_plugins_in_the_worker)
{
    const char *functions [] = {PLUGIN (whoami), NULL};
    const char *flags [] = {"--threads", NULL};
    pid_t worker = drv_test_cluster_worker_flags (&cluster, 2, functions, flags);
    drv_test_output_t out = s_submit_cli ("whoami", "", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    char expected [64];
    snprintf (expected, sizeof expected, "uid=%d pid=%d", (int) getuid (), (int) worker);
    cr_assert_str_eq (out.out, expected);
    drv_test_output_free (&out);
}

Test (worker, bad_plugin_is_refused_at_start)
{
    const char *argv [] = {DRV_WORKER_BIN, "--broker", cluster.workers, "--function",
                           "f=plugin:/nonexistent/lib.so:f", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert (strstr (out.err, "cannot load plugin /nonexistent/lib.so"), "%s", out.err);
    drv_test_output_free (&out);
    const char *argv2 [] = {DRV_WORKER_BIN, "--broker", cluster.workers, "--function",
                            "f=plugin:" DROVER_TEST_PLUGIN ":no_such_symbol", NULL};
    out = drv_test_run (argv2, NULL, NULL, 10000);
    cr_assert_eq (out.status, 2);
    cr_assert (strstr (out.err, "has no symbol 'no_such_symbol'"), "%s", out.err);
    drv_test_output_free (&out);
}

//  ---------------------------------------------------------------------
//  Per-task limits with real processes: drover-worker flags, exec: tasks
//  and plugin handlers. Each test's worker must serve the next task.

#define TASK(name, mode) name "=exec:" DROVER_BIN_DIR "/drover-test-task " mode

static void s_bomb_teardown (void);

TestSuite (sandbox, .init = s_cluster_setup, .fini = s_bomb_teardown, .timeout = 120);

//  Submit and expect failure with `reason` in stderr.
static void
s_expect_failure (const char *function, const char *timeout, const char *reason)
{
    drv_test_output_t out = s_submit_cli (function, "x", timeout);
    cr_assert_eq (out.status, 1, "%s should fail; stdout %s", function, out.out);
    cr_assert (strstr (out.err, reason), "%s: stderr is: %s", function, out.err);
    drv_test_output_free (&out);
}

//  The worker still serves.
static void
s_expect_echo (void)
{
    drv_test_output_t out = s_submit_cli ("echo", "alive", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "alive");
    drv_test_output_free (&out);
}

Test (sandbox, exec_limits_reach_the_program)
{
    const char *functions [] = {TASK ("limits", "limits"), NULL};
    const char *flags [] = {"--max-files", "32", "--max-cpu", "5", "--max-memory", "256M", NULL};
    drv_test_cluster_worker_flags (&cluster, 1, functions, flags);
    drv_test_output_t out = s_submit_cli ("limits", "", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert (strstr (out.out, "files=32 cpu=5 memory=268435456 "), "%s", out.out);
    drv_test_output_free (&out);
}

Test (sandbox, exec_cpu_spin_ends_with_the_cpu_limit)
{
    const char *functions [] = {TASK ("spin", "spin"), "echo=exec:cat", NULL};
    const char *flags [] = {"--max-cpu", "1", NULL};
    drv_test_cluster_worker_flags (&cluster, 1, functions, flags);
    s_expect_failure ("spin", "60000", "CPU time limit of 1 s exceeded");
    s_expect_echo ();
}

Test (sandbox, exec_memory_hog_ends_with_the_memory_limit)
{
    const char *functions [] = {TASK ("hog", "hog"), "echo=exec:cat", NULL};
    const char *flags [] = {"--max-memory", "64M", NULL};
    drv_test_cluster_worker_flags (&cluster, 1, functions, flags);
    s_expect_failure ("hog", "60000", "memory limit of 64 MiB exceeded");
    s_expect_echo ();
}

Test (sandbox, plugin_spin_and_hog_end_with_their_limits)
{
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test ("the pool processes of an ASan worker reserve address space of their own");
#endif
    const char *functions [] = {PLUGIN (spin), PLUGIN (hog), PLUGIN (echo), NULL};
    const char *flags [] = {"--max-cpu", "1", "--max-memory", "64M", NULL};
    drv_test_cluster_worker_flags (&cluster, 1, functions, flags);
    s_expect_failure ("spin", "60000", "CPU time limit of 1 s exceeded");
    s_expect_echo ();
    s_expect_failure ("hog", "60000", "memory limit of 64 MiB exceeded");
    s_expect_echo ();
}

Test (sandbox, process_limit_needs_a_user_as_root)
{
    if (geteuid () != 0)
        cr_skip_test ("needs root");
    const char *argv [] = {DRV_WORKER_BIN, "--broker", cluster.workers, "--function",
                           "echo=exec:cat", "--max-procs", "10", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 10000);
    cr_assert_neq (out.status, 0);
    cr_assert (strstr (out.err, "a process limit does not bind root"), "%s", out.err);
    drv_test_output_free (&out);
}

//  The fork bomb runs as a user of its own, made for this test, whose
//  processes the kernel caps (RLIMIT_NPROC counts per user): it cannot
//  take more than 20 processes whatever it does, even if it left its
//  process group. Afterwards every process of that user is killed and
//  the user removed, also when the test fails.

static char s_bomb_user [32];        //  the user, or "" if none was made
static uid_t s_bomb_uid;             //  its uid

//  Kill every process of the bomb user: a child becomes that user and
//  kills all it may (kill -1), until none is left.
static void
s_kill_bomb_user (void)
{
    for (int round = 0; round < 200; round++) {
        pid_t pid = fork ();
        if (pid == 0) {
            if (setgid (s_bomb_uid) == -1 || setuid (s_bomb_uid) == -1)
                _exit (2);
            if (kill (-1, SIGKILL) == -1 && errno == ESRCH)
                _exit (0);           //  none left
            _exit (1);
        }
        int status = 0;
        waitpid (pid, &status, 0);
        if (WIFEXITED (status) && WEXITSTATUS (status) != 1)
            return;
        zclock_sleep (20);
    }
}

static void
s_bomb_teardown (void)
{
    s_cluster_teardown ();
    if (*s_bomb_user) {
        s_kill_bomb_user ();
        char command [128];
        snprintf (command, sizeof command, "userdel %s 2>/dev/null", s_bomb_user);
        if (system (command) != 0)
            fprintf (stderr, "test_pool: could not remove user %s\n", s_bomb_user);
        *s_bomb_user = 0;
    }
}

Test (sandbox, fork_bomb_ends_with_the_process_limit)
{
    if (geteuid () != 0)
        cr_skip_test ("needs root to make a user");
    snprintf (s_bomb_user, sizeof s_bomb_user, "drvbomb%d", (int) getpid () % 100000);
    char command [160];
    snprintf (command, sizeof command,
              "useradd --system --no-create-home --shell /usr/sbin/nologin %s", s_bomb_user);
    cr_assert_eq (system (command), 0, "cannot make user %s", s_bomb_user);
    struct passwd *entry = getpwnam (s_bomb_user);
    cr_assert_not_null (entry);
    s_bomb_uid = entry->pw_uid;
    cr_assert_neq (s_bomb_uid, 0);
    //  Its own gid equals its uid with --system and a user group; use
    //  the uid for both in the cleanup either way: only setuid matters.

    const char *functions [] = {TASK ("bomb", "bomb"), TASK ("limits", "limits"),
                                "echo=exec:cat", NULL};
    const char *flags [] = {"--user", s_bomb_user, "--max-procs", "20", NULL};
    drv_test_cluster_worker_flags (&cluster, 1, functions, flags);
    s_expect_failure ("bomb", "2000", "process limit of 20 reached");
    s_expect_echo ();
    drv_test_output_t out = s_submit_cli ("limits", "", NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    char expected [64];
    snprintf (expected, sizeof expected, "procs=20 uid=%d", (int) s_bomb_uid);
    cr_assert (strstr (out.out, expected), "%s", out.out);
    drv_test_output_free (&out);
}
