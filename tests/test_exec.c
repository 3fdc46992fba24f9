/*  test_exec.c - tests for worker/drv_exec.

    Each test runs tasks under a zloop until their done callbacks fire,
    with a safety limit so that no test can hang. Every test also checks
    at its end that it left no descriptor open, no child or zombie behind,
    and (under ASan) no leak.
*/

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drv_exec.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define RUN_LIMIT_MS 3000           //  Longest a test waits for its tasks
#define BIG_PAYLOAD  (4 * 1024 * 1024)

//  One task as a test sees it
typedef struct {
    drv_exec_t *exec;               //  The task, NULL once destroyed
    int calls;                      //  Times done was called
    bool destroy_in_done;           //  Copy results and destroy in done
    drover_outcome_t outcome;       //  Copied in done if destroy_in_done
    char *reason;                   //  Copied in done if destroy_in_done
    uint8_t *output;                //  Copied in done if destroy_in_done
    size_t output_size;             //  Bytes in output
} test_task_t;

//  Tasks the loop waits for
typedef struct {
    test_task_t *tasks;             //  Array of tasks
    size_t count;                   //  Tasks in the array
} test_wait_t;

static char s_tmpdir [64];          //  This test's scratch directory
static int s_fds_at_start;          //  Open descriptors when the test began


//  Count this process's open descriptors

static int
s_count_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    cr_assert_not_null (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name [0] != '.')
            count++;
    closedir (dir);
    return count - 1;               //  Not the one opendir holds
}


//  Remove the scratch directory and what is in it

static void
s_remove_tmpdir (void)
{
    DIR *dir = opendir (s_tmpdir);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, ".."))
            unlinkat (dirfd (dir), entry->d_name, 0);
    closedir (dir);
    rmdir (s_tmpdir);
}


static void
s_setup (void)
{
    strcpy (s_tmpdir, "/tmp/drv-exec-test-XXXXXX");
    cr_assert_not_null (mkdtemp (s_tmpdir));
    //  Orphaned grandchildren come back to us, so we can see them die
    //  (and reap them) whatever init does with orphans
    cr_assert_eq (prctl (PR_SET_CHILD_SUBREAPER, 1), 0);
    s_fds_at_start = s_count_fds ();
}


static void
s_teardown (void)
{
    s_remove_tmpdir ();
}

TestSuite (exec, .init = s_setup, .fini = s_teardown, .timeout = 20);


//  Check that the test left nothing behind: no open descriptor, no child
//  or zombie, no leak. Each test calls this last (a failed check in .fini
//  would not fail the test).

static void
s_assert_clean (void)
{
    cr_assert_eq (s_count_fds (), s_fds_at_start, "descriptors leaked");
    errno = 0;
    pid_t child = waitpid (-1, NULL, WNOHANG);
    cr_assert (child == -1 && errno == ECHILD,
               "a child or zombie was left behind (waitpid gave %d)", (int) child);
#ifdef __SANITIZE_ADDRESS__
    cr_assert_eq (__lsan_do_recoverable_leak_check (), 0, "memory leaked");
#endif
}


//  Write an executable /bin/sh script into the scratch directory; returns
//  its path, which the caller frees

static char *
s_script (const char *name, const char *body)
{
    char *path = zsys_sprintf ("%s/%s", s_tmpdir, name);
    cr_assert_not_null (path);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fprintf (file, "#!/bin/sh\n%s", body);
    cr_assert_eq (fclose (file), 0);
    cr_assert_eq (chmod (path, 0755), 0);
    return path;
}


static zloop_t *
s_loop_new (void)
{
    zloop_t *loop = zloop_new ();
    cr_assert_not_null (loop);
    zloop_set_nonstop (loop, true);
    return loop;
}


static void
s_on_done (drv_exec_t *exec, void *arg)
{
    test_task_t *task = (test_task_t *) arg;
    cr_assert_eq (exec, task->exec);
    task->calls++;
    if (task->destroy_in_done) {
        task->outcome = drv_exec_outcome (exec);
        task->reason = strdup (drv_exec_reason (exec));
        const uint8_t *output = drv_exec_output (exec, &task->output_size);
        task->output = (uint8_t *) malloc (task->output_size + 1);
        memcpy (task->output, output, task->output_size + 1);
        drv_exec_destroy (&exec);
        task->exec = NULL;
    }
}


static int
s_check_tasks (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    test_wait_t *wait = (test_wait_t *) arg;
    for (size_t index = 0; index < wait->count; index++)
        if (wait->tasks [index].calls == 0)
            return 0;
    return -1;
}


static int
s_set_flag (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    *(bool *) arg = true;
    return -1;
}


//  Run the loop until every task's done has been called

static void
s_run_tasks_within (zloop_t *loop, test_task_t *tasks, size_t count, int limit_ms)
{
    test_wait_t wait = { tasks, count };
    bool expired = false;
    int check = zloop_timer (loop, 2, 0, s_check_tasks, &wait);
    int limit = zloop_timer (loop, (size_t) limit_ms, 1, s_set_flag, &expired);
    zloop_start (loop);
    zloop_timer_end (loop, check);
    zloop_timer_end (loop, limit);
    cr_assert (!expired, "tasks did not finish within %d ms", limit_ms);
}


static void
s_run_tasks (zloop_t *loop, test_task_t *tasks, size_t count)
{
    s_run_tasks_within (loop, tasks, count, RUN_LIMIT_MS);
}


//  Run the loop for some milliseconds

static void
s_run_for (zloop_t *loop, int msecs)
{
    bool expired = false;
    zloop_timer (loop, (size_t) msecs, 1, s_set_flag, &expired);
    zloop_start (loop);
    cr_assert (expired);
}


//  Start a task that the test will wait for

static void
s_start (test_task_t *task, zloop_t *loop, char *const argv [],
         const void *payload, size_t size, uint32_t timeout_ms, size_t max_output)
{
    char err [256] = "";
    task->exec = drv_exec_start (loop, argv, payload, size, timeout_ms, max_output, NULL,
                                 s_on_done, task, err, sizeof err);
    cr_assert_not_null (task->exec, "cannot start %s: %s", argv [0], err);
    cr_assert_gt (drv_exec_pid (task->exec), 0);
}


//  Run one program to the end; the caller destroys task->exec

static void
s_run_one (test_task_t *task, char *const argv [], const void *payload, size_t size,
           uint32_t timeout_ms, size_t max_output)
{
    zloop_t *loop = s_loop_new ();
    s_start (task, loop, argv, payload, size, timeout_ms, max_output);
    s_run_tasks (loop, task, 1);
    zloop_destroy (&loop);
    cr_assert_eq (task->calls, 1);
    cr_assert_eq (drv_exec_pid (task->exec), 0, "child not reaped");
}


//  Wait up to a second for a process group to be empty, reaping any of
//  its members that came back to us as orphans

static bool
s_group_gone (pid_t pgid)
{
    int64_t deadline = zclock_mono () + 1000;
    while (zclock_mono () < deadline) {
        while (waitpid (-pgid, NULL, WNOHANG) > 0)
            ;
        if (kill (-pgid, 0) == -1 && errno == ESRCH)
            return true;
        usleep (1000);
    }
    return false;
}


static uint8_t *
s_pattern_new (size_t size)
{
    uint8_t *data = (uint8_t *) malloc (size);
    cr_assert_not_null (data);
    for (size_t index = 0; index < size; index++)
        data [index] = (uint8_t) ((index * 7) ^ (index >> 11));
    return data;
}


Test (exec, argv_splitting)
{
    char **argv = drv_exec_argv_new ("  a  b c ");
    cr_assert_not_null (argv);
    cr_assert_str_eq (argv [0], "a");
    cr_assert_str_eq (argv [1], "b");
    cr_assert_str_eq (argv [2], "c");
    cr_assert_null (argv [3]);
    drv_exec_argv_destroy (&argv);
    cr_assert_null (argv);
    drv_exec_argv_destroy (&argv);          //  NULL is fine

    argv = drv_exec_argv_new ("cat");
    cr_assert_not_null (argv);
    cr_assert_str_eq (argv [0], "cat");
    cr_assert_null (argv [1]);
    drv_exec_argv_destroy (&argv);

    cr_assert_null (drv_exec_argv_new (""));
    cr_assert_null (drv_exec_argv_new ("    "));
    cr_assert_null (drv_exec_argv_new (NULL));
    s_assert_clean ();
}


Test (exec, cat_echoes_payload)
{
    char **argv = drv_exec_argv_new ("cat");
    test_task_t task = { 0 };
    const char *payload = "hello, drover\n";
    s_run_one (&task, argv, payload, strlen (payload), 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK);
    cr_assert_str_eq (drv_exec_reason (task.exec), "");
    size_t size;
    const uint8_t *output = drv_exec_output (task.exec, &size);
    cr_assert_eq (size, strlen (payload));
    cr_assert_str_eq ((const char *) output, payload);
    drv_exec_kill (task.exec);              //  After done: does nothing
    drv_exec_destroy (&task.exec);
    cr_assert_null (task.exec);
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


Test (exec, empty_payload_and_output)
{
    char **argv = drv_exec_argv_new ("cat");
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK);
    size_t size = 99;
    const uint8_t *output = drv_exec_output (task.exec, &size);
    cr_assert_eq (size, 0);
    cr_assert_str_eq ((const char *) output, "");
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


Test (exec, cat_big_round_trip)
{
    uint8_t *payload = s_pattern_new (BIG_PAYLOAD);
    char **argv = drv_exec_argv_new ("cat");
    test_task_t task = { 0 };
    s_run_one (&task, argv, payload, BIG_PAYLOAD, 5000, BIG_PAYLOAD);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK,
                  "reason: %s", drv_exec_reason (task.exec));
    size_t size;
    const uint8_t *output = drv_exec_output (task.exec, &size);
    cr_assert_eq (size, BIG_PAYLOAD);
    cr_assert (memcmp (output, payload, BIG_PAYLOAD) == 0, "output differs from payload");
    cr_assert_eq (output [size], 0, "output is not NUL-terminated");
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    free (payload);
    s_assert_clean ();
}


Test (exec, output_at_limit_is_fine)
{
    uint8_t *payload = s_pattern_new (1000);
    char **argv = drv_exec_argv_new ("cat");
    test_task_t task = { 0 };
    s_run_one (&task, argv, payload, 1000, 0, 1000);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK);
    size_t size;
    drv_exec_output (task.exec, &size);
    cr_assert_eq (size, 1000);
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    free (payload);
    s_assert_clean ();
}


Test (exec, output_over_limit)
{
    //  yes never ends by itself: the group must be killed
    char **argv = drv_exec_argv_new ("yes");
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 65536);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (drv_exec_reason (task.exec), "output larger than 65536 bytes");
    size_t size;
    const uint8_t *output = drv_exec_output (task.exec, &size);
    cr_assert_eq (size, 65536);
    cr_assert_eq (output [0], 'y');
    cr_assert_eq (output [size], 0);
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


Test (exec, exit_status_with_stderr)
{
    char *path = s_script ("fail", "echo some output\necho boom >&2\nexit 3\n");
    char *argv [] = { path, NULL };
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (drv_exec_reason (task.exec), "exit status 3: boom");
    cr_assert_str_eq ((const char *) drv_exec_output (task.exec, NULL), "some output\n");
    drv_exec_destroy (&task.exec);
    free (path);

    path = s_script ("quiet", "exit 3\n");
    argv [0] = path;
    test_task_t quiet = { 0 };
    s_run_one (&quiet, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (quiet.exec), DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (drv_exec_reason (quiet.exec), "exit status 3");
    drv_exec_destroy (&quiet.exec);
    free (path);
    s_assert_clean ();
}


Test (exec, stdout_and_stderr_with_arguments)
{
    char *path = s_script ("args", "echo \"$1-$2\"\necho warning >&2\n");
    char *spec = zsys_sprintf ("%s   one two", path);
    char **argv = drv_exec_argv_new (spec);
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK);
    cr_assert_str_eq (drv_exec_reason (task.exec), "");
    cr_assert_str_eq ((const char *) drv_exec_output (task.exec, NULL), "one-two\n");
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    zstr_free (&spec);
    free (path);
    s_assert_clean ();
}


Test (exec, killed_by_signal)
{
    char *path = s_script ("segv", "ulimit -c 0\nkill -SEGV $$\n");
    char *argv [] = { path, NULL };
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_SIGNAL);
    cr_assert_str_eq (drv_exec_reason (task.exec), "killed by signal SIGSEGV");
    drv_exec_destroy (&task.exec);
    free (path);
    s_assert_clean ();
}


Test (exec, timeout_kills_the_group)
{
    char *path = s_script ("sleeper", "sleep 30 &\nsleep 30\n");
    char *argv [] = { path, NULL };
    zloop_t *loop = s_loop_new ();
    test_task_t task = { 0 };
    int64_t started = zclock_mono ();
    s_start (&task, loop, argv, NULL, 0, 300, 1024);
    pid_t pgid = drv_exec_pid (task.exec);
    s_run_tasks (loop, &task, 1);
    int64_t elapsed = zclock_mono () - started;
    zloop_destroy (&loop);

    cr_assert_eq (task.calls, 1);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_TIMEOUT);
    cr_assert_str_eq (drv_exec_reason (task.exec), "timed out after 300 ms");
    cr_assert (elapsed >= 295 && elapsed < 2000, "took %d ms", (int) elapsed);
    cr_assert_eq (drv_exec_pid (task.exec), 0);
    cr_assert (s_group_gone (pgid), "the task's process group is still alive");
    drv_exec_destroy (&task.exec);
    free (path);
    s_assert_clean ();
}


Test (exec, background_child_holding_stdout)
{
    //  The script ends at once, but its background child keeps stdout
    //  open: the task must still end now, and the child must be killed
    char *path = s_script ("leaver", "sleep 30 &\necho done\n");
    char *argv [] = { path, NULL };
    zloop_t *loop = s_loop_new ();
    test_task_t task = { 0 };
    int64_t started = zclock_mono ();
    s_start (&task, loop, argv, NULL, 0, 0, 1024);
    pid_t pgid = drv_exec_pid (task.exec);
    s_run_tasks (loop, &task, 1);
    int64_t elapsed = zclock_mono () - started;
    zloop_destroy (&loop);

    cr_assert (elapsed < 2000, "took %d ms", (int) elapsed);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK,
                  "reason: %s", drv_exec_reason (task.exec));
    cr_assert_str_eq ((const char *) drv_exec_output (task.exec, NULL), "done\n");
    cr_assert (s_group_gone (pgid), "the background child is still alive");
    drv_exec_destroy (&task.exec);
    free (path);
    s_assert_clean ();
}


Test (exec, program_not_found)
{
    char *argv [] = { "drover-no-such-program", "arg", NULL };
    test_task_t task = { 0 };
    s_run_one (&task, argv, "input", 5, 1000, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (drv_exec_reason (task.exec),
                      "cannot run 'drover-no-such-program': No such file or directory");
    drv_exec_destroy (&task.exec);
    s_assert_clean ();
}


Test (exec, program_not_executable)
{
    char *path = zsys_sprintf ("%s/plain", s_tmpdir);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fclose (file);
    char *argv [] = { path, NULL };
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_ERROR);
    char *expected = zsys_sprintf ("cannot run '%s': Permission denied", path);
    cr_assert_str_eq (drv_exec_reason (task.exec), expected);
    zstr_free (&expected);
    drv_exec_destroy (&task.exec);
    zstr_free (&path);
    s_assert_clean ();
}


Test (exec, program_ignoring_stdin)
{
    //  With SIGPIPE at its default, a write to the closed pipe would kill
    //  us (the test runner may have it ignored)
    struct sigaction deflt = { .sa_handler = SIG_DFL }, old_action;
    sigemptyset (&deflt.sa_mask);
    cr_assert_eq (sigaction (SIGPIPE, &deflt, &old_action), 0);
    uint8_t *payload = s_pattern_new (BIG_PAYLOAD);
    char **argv = drv_exec_argv_new ("true");
    test_task_t task = { 0 };
    s_run_one (&task, argv, payload, BIG_PAYLOAD, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK,
                  "reason: %s", drv_exec_reason (task.exec));
    cr_assert_str_eq (drv_exec_reason (task.exec), "");
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);

    //  This one closes stdin and lives on, so our writes surely hit EPIPE
    char *path = s_script ("closer", "exec 0<&-\nsleep 0.1\necho bye\n");
    char *closer [] = { path, NULL };
    test_task_t closing = { 0 };
    s_run_one (&closing, closer, payload, BIG_PAYLOAD, 0, 1024);
    sigaction (SIGPIPE, &old_action, NULL);
    cr_assert_eq (drv_exec_outcome (closing.exec), DROVER_OUTCOME_OK,
                  "reason: %s", drv_exec_reason (closing.exec));
    cr_assert_str_eq ((const char *) drv_exec_output (closing.exec, NULL), "bye\n");
    drv_exec_destroy (&closing.exec);
    free (path);
    free (payload);
    s_assert_clean ();
}


Test (exec, stderr_tail_keeps_the_end)
{
    char *path = s_script ("noisy", "seq 1 10000 >&2\nexit 1\n");
    char *argv [] = { path, NULL };
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_ERROR);
    const char *reason = drv_exec_reason (task.exec);
    const char *prefix = "exit status 1: ";
    cr_assert (strncmp (reason, prefix, strlen (prefix)) == 0, "reason: %.80s", reason);
    const char *tail = reason + strlen (prefix);
    cr_assert_leq (strlen (tail), 2048);
    cr_assert_geq (strlen (tail), 2000);

    //  Whole lines only, in order, ending with the last one
    char *copy = strdup (tail);
    int lines = 0;
    long previous = 0;
    char *saveptr = NULL;
    for (char *line = strtok_r (copy, "\n", &saveptr); line;
         line = strtok_r (NULL, "\n", &saveptr)) {
        char *end;
        long number = strtol (line, &end, 10);
        cr_assert_eq (*end, 0, "not a whole line: '%s'", line);
        if (lines > 0)
            cr_assert_eq (number, previous + 1, "line %ld after %ld", number, previous);
        previous = number;
        lines++;
    }
    cr_assert_eq (previous, 10000);
    cr_assert_gt (lines, 300);
    free (copy);
    drv_exec_destroy (&task.exec);
    free (path);
    s_assert_clean ();
}


Test (exec, child_gets_clean_fds_and_signals)
{
    //  A descriptor the parent leaks (not close-on-exec) must not reach
    //  the child; 3 is its progress pipe (DROVER_PROGRESS_FD), and ls
    //  itself holds 4 while it reads the directory
    int stray = open ("/dev/null", O_RDONLY);
    cr_assert_geq (stray, 0);
    char **argv = drv_exec_argv_new ("ls -1 /proc/self/fd");
    test_task_t task = { 0 };
    s_run_one (&task, argv, NULL, 0, 0, 1024);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK);
    cr_assert_str_eq ((const char *) drv_exec_output (task.exec, NULL), "0\n1\n2\n3\n4\n");
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    close (stray);

    //  Ignored and blocked signals in the parent are defaults in the child
    struct sigaction ignore = { .sa_handler = SIG_IGN }, old_action;
    sigemptyset (&ignore.sa_mask);
    cr_assert_eq (sigaction (SIGTERM, &ignore, &old_action), 0);
    sigset_t usr1, old_mask;
    sigemptyset (&usr1);
    sigaddset (&usr1, SIGUSR1);
    cr_assert_eq (sigprocmask (SIG_BLOCK, &usr1, &old_mask), 0);
    argv = drv_exec_argv_new ("grep -E ^Sig(Blk|Ign): /proc/self/status");
    test_task_t signals = { 0 };
    s_run_one (&signals, argv, NULL, 0, 0, 1024);
    sigprocmask (SIG_SETMASK, &old_mask, NULL);
    sigaction (SIGTERM, &old_action, NULL);
    cr_assert_eq (drv_exec_outcome (signals.exec), DROVER_OUTCOME_OK);
    cr_assert_str_eq ((const char *) drv_exec_output (signals.exec, NULL),
                      "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    drv_exec_destroy (&signals.exec);
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


static int
s_kill_task (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    drv_exec_kill (((test_task_t *) arg)->exec);
    return 0;
}


Test (exec, kill_running_task)
{
    char **argv = drv_exec_argv_new ("sleep 30");
    zloop_t *loop = s_loop_new ();
    test_task_t task = { 0 };
    s_start (&task, loop, argv, NULL, 0, 5000, 1024);
    zloop_timer (loop, 50, 1, s_kill_task, &task);
    int64_t started = zclock_mono ();
    s_run_tasks (loop, &task, 1);
    int64_t elapsed = zclock_mono () - started;
    zloop_destroy (&loop);

    cr_assert_eq (task.calls, 1);
    cr_assert (elapsed < 2000, "took %d ms", (int) elapsed);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_SIGNAL);
    cr_assert (strncmp (drv_exec_reason (task.exec), "killed by signal SIGKILL", 24) == 0,
               "reason: %s", drv_exec_reason (task.exec));
    drv_exec_destroy (&task.exec);
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


static int
s_destroy_task (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    test_task_t *task = (test_task_t *) arg;
    drv_exec_destroy (&task->exec);
    return 0;
}


Test (exec, destroy_running_task)
{
    char **argv = drv_exec_argv_new ("sleep 30");
    zloop_t *loop = s_loop_new ();

    //  Destroyed between runs of the loop
    test_task_t task = { 0 };
    s_start (&task, loop, argv, NULL, 0, 100, 1024);
    s_run_for (loop, 30);
    pid_t pid = drv_exec_pid (task.exec);
    cr_assert_gt (pid, 0);
    drv_exec_destroy (&task.exec);
    cr_assert_null (task.exec);
    errno = 0;
    cr_assert (waitpid (pid, NULL, WNOHANG) == -1 && errno == ECHILD, "not reaped");

    //  Destroyed from a timer inside the loop, its own timer due at the
    //  same moment; then the loop runs on past where its timer would be
    test_task_t inside = { 0 };
    zloop_timer (loop, 20, 1, s_destroy_task, &inside);
    s_start (&inside, loop, argv, NULL, 0, 20, 1024);
    pid = drv_exec_pid (inside.exec);
    s_run_for (loop, 150);
    cr_assert_null (inside.exec);
    errno = 0;
    cr_assert (waitpid (pid, NULL, WNOHANG) == -1 && errno == ECHILD, "not reaped");

    //  Destroyed before the loop ever ran
    test_task_t never = { 0 };
    s_start (&never, loop, argv, NULL, 0, 1000, 1024);
    drv_exec_destroy (&never.exec);
    zloop_destroy (&loop);

    cr_assert_eq (task.calls + inside.calls + never.calls, 0, "done was called");
    drv_exec_argv_destroy (&argv);
    s_assert_clean ();
}


Test (exec, many_tasks_destroyed_in_done)
{
    char **cat = drv_exec_argv_new ("cat");
    char **fail = drv_exec_argv_new ("false");
    char *path = s_script ("slow", "sleep 0.05\necho slow\n");
    char *slow [] = { path, NULL };
    zloop_t *loop = s_loop_new ();
    test_task_t tasks [4] = { { 0 } };
    for (size_t index = 0; index < 4; index++)
        tasks [index].destroy_in_done = true;
    uint8_t *payload = s_pattern_new (300000);
    s_start (&tasks [0], loop, cat, "one", 3, 0, 1024);
    s_start (&tasks [1], loop, cat, payload, 300000, 0, 300000);
    s_start (&tasks [2], loop, fail, NULL, 0, 0, 1024);
    s_start (&tasks [3], loop, slow, NULL, 0, 0, 1024);
    s_run_tasks (loop, tasks, 4);
    zloop_destroy (&loop);

    for (size_t index = 0; index < 4; index++) {
        cr_assert_eq (tasks [index].calls, 1);
        cr_assert_null (tasks [index].exec);
    }
    cr_assert_eq (tasks [0].outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) tasks [0].output, "one");
    cr_assert_eq (tasks [1].outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (tasks [1].output_size, 300000);
    cr_assert (memcmp (tasks [1].output, payload, 300000) == 0);
    cr_assert_eq (tasks [2].outcome, DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (tasks [2].reason, "exit status 1");
    cr_assert_eq (tasks [3].outcome, DROVER_OUTCOME_OK);
    cr_assert_str_eq ((char *) tasks [3].output, "slow\n");
    for (size_t index = 0; index < 4; index++) {
        free (tasks [index].reason);
        free (tasks [index].output);
    }
    free (payload);
    free (path);
    drv_exec_argv_destroy (&cat);
    drv_exec_argv_destroy (&fail);
    s_assert_clean ();
}


static void
s_count_done (drv_exec_t *exec, void *arg)
{
    (void) exec;
    (*(int *) arg)++;
}


Test (exec, start_refuses_empty_argv)
{
    zloop_t *loop = s_loop_new ();
    char err [64] = "";
    int calls = 0;
    char *argv [] = { NULL };
    cr_assert_null (drv_exec_start (loop, argv, NULL, 0, 0, 0, NULL, s_count_done, &calls,
                                    err, sizeof err));
    cr_assert_str_eq (err, "no program to run");
    cr_assert_null (drv_exec_start (loop, NULL, NULL, 0, 0, 0, NULL, s_count_done, &calls,
                                    NULL, 0));
    zloop_destroy (&loop);
    cr_assert_eq (calls, 0);
    s_assert_clean ();
}


//  Limits from a drv_sandbox reach the program, and a task that runs
//  into one says so

Test (exec, sandbox_limits_reach_the_program)
{
    drv_sandbox_t sandbox = { .max_files = 20, .max_cpu = 7, .max_memory = 300 << 20 };
    char *argv [] = { "/bin/sh", "-c", "ulimit -n; ulimit -t; ulimit -v", NULL };
    zloop_t *loop = s_loop_new ();
    test_task_t task = { 0 };
    char err [256] = "";
    task.exec = drv_exec_start (loop, argv, NULL, 0, 0, 1024, &sandbox, s_on_done, &task,
                                err, sizeof err);
    cr_assert_not_null (task.exec, "%s", err);
    s_run_tasks (loop, &task, 1);
    zloop_destroy (&loop);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_OK,
                  "%s", drv_exec_reason (task.exec));
    size_t size;
    const char *output = (const char *) drv_exec_output (task.exec, &size);
    cr_assert_str_eq (output, "20\n7\n307200\n");
    drv_exec_destroy (&task.exec);
    s_assert_clean ();
}


Test (exec, sandbox_cpu_limit_names_itself)
{
    drv_sandbox_t sandbox = { .max_cpu = 1 };
    char *argv [] = { "/bin/sh", "-c", "ulimit -c 0; while :; do :; done", NULL };
    zloop_t *loop = s_loop_new ();
    test_task_t task = { 0 };
    char err [256] = "";
    task.exec = drv_exec_start (loop, argv, NULL, 0, 0, 1024, &sandbox, s_on_done, &task,
                                err, sizeof err);
    cr_assert_not_null (task.exec, "%s", err);
    //  A second of CPU takes longer on a busy machine
    s_run_tasks_within (loop, &task, 1, 15000);
    zloop_destroy (&loop);
    cr_assert_eq (drv_exec_outcome (task.exec), DROVER_OUTCOME_SIGNAL);
    cr_assert_str_eq (drv_exec_reason (task.exec), "CPU time limit of 1 s exceeded");
    drv_exec_destroy (&task.exec);
    s_assert_clean ();
}
