/*  test_local - local mode of the drover command: with no broker, submit
    and map run the job on a broker and worker inside the drover process,
    with exec: and plugin: functions, and leave nothing behind: no
    process and no temporary directory, also when stopped by a signal.
*/

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drv_testutil.h"

static char tmp [64];                //  TMPDIR for drover: its temp dir goes here
static char tmp_env [96];            //  "TMPDIR=..."

static void
setup (void)
{
    snprintf (tmp, sizeof tmp, "/tmp/drover-local-XXXXXX");
    cr_assert_not_null (mkdtemp (tmp));
    snprintf (tmp_env, sizeof tmp_env, "TMPDIR=%s", tmp);
}

//  Entries in tmp other than those named skip (may be NULL).
static int
s_entries (const char *skip)
{
    DIR *dir = opendir (tmp);
    cr_assert_not_null (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..")
            && !(skip && strcmp (entry->d_name, skip) == 0))
            count++;
    closedir (dir);
    return count;
}

static void
teardown (void)
{
    drv_test_reap_all ();
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", tmp);
    if (system (command) != 0)
        fprintf (stderr, "cannot remove %s\n", tmp);
}

//  Run drover without a broker, DROVER_BROKER unset, TMPDIR ours.
static drv_test_output_t
s_drover (const char *const args [], const char *input)
{
    const char *argv [16] = {DRV_CLI_BIN};
    size_t i = 0;
    while (args [i] && i < 14) {
        argv [i + 1] = args [i];
        i++;
    }
    argv [i + 1] = NULL;
    unsetenv ("DROVER_BROKER");
    const char *env [] = {tmp_env, NULL};
    return drv_test_run (argv, input, env, 60000);
}

TestSuite (local, .init = setup, .fini = teardown, .timeout = 120);

Test (local, map_runs_here_in_order_and_cleans_up)
{
    const char *args [] = {"map", "square", "-j", "2", "--function",
                           "square=exec:awk {print($1*$1)}", NULL};
    drv_test_output_t out = s_drover (args, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    cr_assert_eq (out.status, 0, "stderr: %s", out.err);
    cr_assert_str_eq (out.out, "1\n4\n9\n16\n25\n36\n49\n64\n81\n100\n");
    cr_assert_str_eq (out.err, "");
    drv_test_output_free (&out);
    cr_assert_eq (s_entries (NULL), 0, "the private directory is removed");
}

Test (local, submit_with_data_and_several_functions)
{
    const char *args [] = {"submit", "upper", "--data", "drover", "--function", "lower=exec:cat",
                           "-f", "upper=exec:tr a-z A-Z", NULL};
    drv_test_output_t out = s_drover (args, NULL);
    cr_assert_eq (out.status, 0, "stderr: %s", out.err);
    cr_assert_str_eq (out.out, "DROVER");
    drv_test_output_free (&out);
    //  The payload from stdin, and the default -j (one per CPU).
    const char *from_stdin [] = {"submit", "lower", "-f", "lower=exec:tr A-Z a-z", NULL};
    out = s_drover (from_stdin, "LOUD\n");
    cr_assert_eq (out.status, 0, "stderr: %s", out.err);
    cr_assert_str_eq (out.out, "loud\n");
    drv_test_output_free (&out);
    cr_assert_eq (s_entries (NULL), 0);
}

Test (local, plugin_handlers_and_failures)
{
    char echo [512], crash [512];
    snprintf (echo, sizeof echo, "echo=plugin:%s:echo", DROVER_TEST_PLUGIN);
    snprintf (crash, sizeof crash, "crash=plugin:%s:crash", DROVER_TEST_PLUGIN);
    const char *args [] = {"map", "echo", "-j", "2", "--function", echo, NULL};
    drv_test_output_t out = s_drover (args, "a\nb\nc\n");
    cr_assert_eq (out.status, 0, "stderr: %s", out.err);
    cr_assert_str_eq (out.out, "a\nb\nc\n");
    drv_test_output_free (&out);
    //  A crashing handler fails its tasks only, and drover says so.
    const char *crashing [] = {"map", "crash", "-j", "1", "--function", crash, NULL};
    out = s_drover (crashing, "1\n2\n");
    cr_assert_eq (out.status, 1, "stderr: %s", out.err);
    cr_assert_str_eq (out.out, "\n\n");
    cr_assert_neq (strstr (out.err, "SIGSEGV"), NULL, "%s", out.err);
    cr_assert_neq (strstr (out.err, "2 of 2 tasks failed"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    //  A failing exec: task, the other lines run.
    const char *failing [] = {"map", "f", "-j", "2", "--function",
                              "f=exec:" DRV_TEST_SCRIPTS "/fail-on-3", NULL};
    out = s_drover (failing, "1\n2\n3\n4\n");
    cr_assert_eq (out.status, 1, "stderr: %s", out.err);
    cr_assert_neq (strstr (out.err, "line 3 failed"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    cr_assert_eq (s_entries (NULL), 0);
}

Test (local, usage_errors)
{
    const char *no_function [] = {"map", "square", NULL};
    drv_test_output_t out = s_drover (no_function, "1\n");
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--function 'square=exec:PROGRAM'"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *not_offered [] = {"map", "square", "--function", "cube=exec:cat", NULL};
    out = s_drover (not_offered, "1\n");
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "no --function offers 'square'"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *bad [] = {"map", "square", "--function", "square=python:sq.py", NULL};
    out = s_drover (bad, "1\n");
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "exec:PROGRAM"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *bad_jobs [] = {"map", "square", "-j", "0", "--function", "square=exec:cat", NULL};
    out = s_drover (bad_jobs, "1\n");
    cr_assert_eq (out.status, 2);
    drv_test_output_free (&out);
    const char *detach [] = {"submit", "cat", "--detach", "--data", "x", "-f", "cat=exec:cat",
                             NULL};
    out = s_drover (detach, NULL);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--detach needs a broker"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    //  The other commands still need a broker; local flags need none.
    const char *status [] = {"status", "1", NULL};
    out = s_drover (status, NULL);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "DROVER_BROKER"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *both [] = {"--broker", "tcp://127.0.0.1:1", "map", "cat", "-j", "2", NULL};
    out = s_drover (both, "1\n");
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "local mode"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    cr_assert_eq (s_entries (NULL), 0);
}

//  SIGTERM or SIGINT while a task runs: drover stops, its task's process
//  is killed, and its directory is gone.
static void
s_stopped_by (int sig)
{
    char pid_path [128], function [256];
    snprintf (pid_path, sizeof pid_path, "%s/task.pid", tmp);
    snprintf (function, sizeof function, "sleeper=exec:%s/pid-sleep", DRV_TEST_SCRIPTS);
    unsetenv ("DROVER_BROKER");
    setenv ("TMPDIR", tmp, 1);
    const char *argv [] = {DRV_CLI_BIN, "submit", "sleeper", "--data", pid_path, "-j", "1",
                           "--function", function, NULL};
    pid_t drover = drv_test_spawn (argv, NULL);
    unsetenv ("TMPDIR");
    //  Wait (bounded) until the task runs and has written its pid.
    pid_t task = 0;
    for (int i = 0; i < 600 && task <= 0; i++) {
        FILE *file = fopen (pid_path, "r");
        if (file) {
            if (fscanf (file, "%d", &task) != 1)
                task = 0;
            fclose (file);
        }
        if (task <= 0)
            usleep (50000);
    }
    cr_assert_gt (task, 0, "the task started");
    int status = drv_test_stop (drover, sig, 20000);
    cr_assert (WIFEXITED (status), "drover exits by itself on signal %d", sig);
    cr_assert_eq (WEXITSTATUS (status), 3);
    //  The task was killed and reaped by drover before it exited.
    cr_assert_eq (kill (task, 0), -1, "task %d still runs", task);
    cr_assert_eq (errno, ESRCH);
    cr_assert_eq (s_entries ("task.pid"), 0, "the private directory is removed");
}

Test (local, sigterm_stops_everything)
{
    s_stopped_by (SIGTERM);
}

Test (local, sigint_stops_everything)
{
    s_stopped_by (SIGINT);
}
