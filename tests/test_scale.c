/*  test_scale - one broker serving 1,000 connected clients and 200
    workers at once, correctly: every client gets its own results, every
    task is done, every worker is registered. No timing is asserted; the
    benchmark (bench/run) measures speed.

    The broker is a real drover-broker process. The 200 workers are SDK
    workers (in-process handler) in two child processes of 100; the 1,000
    clients are SDK clients in four child processes of 250, so no process
    needs more than a few hundred sockets. The test raises its open-file
    limit to the hard limit first, so the broker it starts can hold the
    1,200 connections. A barrier makes all 1,000 clients hold jobs in
    flight at the same moment.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "drover.h"
#include "drv_testutil.h"

#define S_WORKER_PROCS 2
#define S_WORKERS_EACH 100
#define S_WORKERS (S_WORKER_PROCS * S_WORKERS_EACH)
#define S_CLIENT_PROCS 4
#define S_CLIENTS_EACH 250
#define S_CLIENTS (S_CLIENT_PROCS * S_CLIENTS_EACH)
#define S_TASKS 3                    //  tasks per client per round
#define S_ROUNDS 2
#define S_TOTAL (S_CLIENTS * S_TASKS * S_ROUNDS)

//  The handler: the payload back, then "@" and the worker's number, so
//  the client can check the result is its own and see who ran it.
static int
s_who (drover_task_t *task, void *arg)
{
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    char out [128];
    if (size > 64) {
        drover_task_fail (task, "payload too long");
        return -1;
    }
    int length = snprintf (out, sizeof out, "%.*s@%d", (int) size, (const char *) payload,
                           (int) (intptr_t) arg);
    return drover_task_reply (task, out, (size_t) length);
}

//  Read one byte from fd within timeout_ms; -1 on timeout or EOF.
static int
s_read_byte (int fd, int timeout_ms)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    if (poll (&pfd, 1, timeout_ms) != 1)
        return -1;
    char byte;
    return read (fd, &byte, 1) == 1 ? byte : -1;
}

//  Child: run workers number first .. first+S_WORKERS_EACH-1 until the
//  parent writes to control; then write each one's completed count to
//  report and exit.
static void
s_worker_child (const char *endpoint, int first, int control, int report)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    zsys_set_max_sockets (4096);
    zsys_init ();
    drover_set_logstream (NULL);
    drover_worker_t *workers [S_WORKERS_EACH];
    for (int i = 0; i < S_WORKERS_EACH; i++) {
        char name [32];
        snprintf (name, sizeof name, "scale-w-%03d", first + i);
        workers [i] = drover_worker_new (endpoint);
        if (!workers [i])
            _exit (10);
        drover_worker_set_name (workers [i], name);
        if (drover_worker_add_handler (workers [i], "who", s_who, (void *) (intptr_t) (first + i))
                == -1
            || drover_worker_start (workers [i]) == -1) {
            fprintf (stderr, "worker %d: %s\n", first + i, drover_worker_error (workers [i]));
            _exit (11);
        }
    }
    if (write (report, "r", 1) != 1)
        _exit (12);
    s_read_byte (control, 300000);
    uint64_t completed [S_WORKERS_EACH];
    for (int i = 0; i < S_WORKERS_EACH; i++) {
        completed [i] = drover_worker_completed (workers [i]);
        drover_worker_destroy (&workers [i]);
    }
    ssize_t n = write (report, completed, sizeof completed);
    _exit (n == (ssize_t) sizeof completed ? 0 : 13);
}

//  Child: S_CLIENTS_EACH clients, each submitting S_TASKS tasks per round
//  and checking that every result is its own. After the first round's
//  submits, say 'r' on ready and wait for the parent's go, so that all
//  clients of all children are connected with jobs in flight at once.
static void
s_client_child (const char *endpoint, int proc, int go, int ready)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    zsys_set_max_sockets (4096);
    zsys_init ();
    drover_set_logstream (NULL);
    drover_client_t *clients [S_CLIENTS_EACH];
    uint64_t ids [S_CLIENTS_EACH][S_TASKS];
    for (int c = 0; c < S_CLIENTS_EACH; c++) {
        clients [c] = drover_client_new (endpoint);
        if (!clients [c])
            _exit (20);
        drover_client_set_ack_timeout (clients [c], 400000);
    }
    for (int round = 0; round < S_ROUNDS; round++) {
        for (int c = 0; c < S_CLIENTS_EACH; c++) {
            char texts [S_TASKS][48];
            const void *payloads [S_TASKS];
            size_t sizes [S_TASKS];
            for (int t = 0; t < S_TASKS; t++) {
                sizes [t] = (size_t) snprintf (texts [t], sizeof texts [t], "p%d-c%d-r%d-t%d",
                                               proc, c, round, t);
                payloads [t] = texts [t];
            }
            if (drover_client_submit_many (clients [c], "who", S_TASKS, payloads, sizes, NULL,
                                           ids [c])
                == -1) {
                fprintf (stderr, "client p%d-c%d: submit: %s\n", proc, c,
                         drover_client_error (clients [c]));
                _exit (21);
            }
        }
        if (round == 0) {
            if (write (ready, "r", 1) != 1 || s_read_byte (go, 300000) != 'g')
                _exit (22);
        }
        for (int c = 0; c < S_CLIENTS_EACH; c++)
            for (int t = 0; t < S_TASKS; t++) {
                drover_result_t *result;
                if (drover_client_wait (clients [c], ids [c][t], 400000, &result) == -1) {
                    fprintf (stderr, "client p%d-c%d: wait: %s\n", proc, c,
                             drover_client_error (clients [c]));
                    _exit (23);
                }
                char want [48];
                int length = snprintf (want, sizeof want, "p%d-c%d-r%d-t%d@", proc, c, round, t);
                if (result->outcome != DROVER_OUTCOME_OK || result->size <= (size_t) length
                    || memcmp (result->data, want, (size_t) length) != 0) {
                    fprintf (stderr, "client p%d-c%d: got '%s' (%s), wanted '%s...'\n", proc, c,
                             (const char *) result->data, result->reason, want);
                    _exit (24);
                }
                int worker = atoi ((const char *) result->data + length);
                if (worker < 0 || worker >= S_WORKERS)
                    _exit (25);
                drover_result_destroy (&result);
            }
    }
    for (int c = 0; c < S_CLIENTS_EACH; c++)
        drover_client_destroy (&clients [c]);
    _exit (0);
}

//  Wait up to timeout_ms for pid to exit; its exit code, or -1.
static int
s_wait_child (pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int status;
        pid_t rc = waitpid (pid, &status, WNOHANG);
        if (rc == pid)
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        usleep (50 * 1000);
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -1;
}

//  Distinct scale workers the broker's log says are ready (a worker may
//  announce itself more than once, e.g. after a missed heartbeat).
static int
s_workers_ready (drv_test_cluster_t *cluster)
{
    char path [128];
    snprintf (path, sizeof path, "%s/broker.log", cluster->dir);
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    bool seen [S_WORKERS] = { false };
    int count = 0;
    char line [512];
    while (fgets (line, sizeof line, file)) {
        const char *at = strstr (line, "worker ready worker=scale-w-");
        if (!at)
            continue;
        int index = atoi (at + strlen ("worker ready worker=scale-w-"));
        if (index >= 0 && index < S_WORKERS && !seen [index]) {
            seen [index] = true;
            count++;
        }
    }
    fclose (file);
    return count;
}

//  Bounds are generous: under AddressSanitizer on a loaded 2-core
//  machine a run has taken close to four minutes.
Test (scale, thousand_clients_two_hundred_workers, .timeout = 840)
{
    struct rlimit limit;
    cr_assert_eq (getrlimit (RLIMIT_NOFILE, &limit), 0);
    limit.rlim_cur = limit.rlim_max;
    cr_assert_eq (setrlimit (RLIMIT_NOFILE, &limit), 0);
    cr_assert_geq (limit.rlim_cur, 4096,
                   "the broker needs room for 1,200 connections; the hard open-file limit "
                   "is %lu",
                   (unsigned long) limit.rlim_max);

    drv_test_cluster_t cluster;
    drv_test_cluster_start (&cluster, NULL);

    //  200 workers in two processes.
    pid_t worker_pids [S_WORKER_PROCS];
    int control [S_WORKER_PROCS][2], report [S_WORKER_PROCS][2];
    for (int p = 0; p < S_WORKER_PROCS; p++) {
        cr_assert_eq (pipe (control [p]), 0);
        cr_assert_eq (pipe (report [p]), 0);
        worker_pids [p] = fork ();
        cr_assert_geq (worker_pids [p], 0);
        if (worker_pids [p] == 0)
            s_worker_child (cluster.workers, p * S_WORKERS_EACH, control [p][0], report [p][1]);
        close (control [p][0]);
        close (report [p][1]);
    }
    for (int p = 0; p < S_WORKER_PROCS; p++)
        cr_assert_eq (s_read_byte (report [p][0], 120000), 'r', "worker process %d did not start",
                      p);
    int ready = 0;
    for (int waited = 0; waited < 120000 && (ready = s_workers_ready (&cluster)) < S_WORKERS;
         waited += 100)
        usleep (100 * 1000);
    cr_assert_eq (ready, S_WORKERS, "the broker registered %d of %d workers", ready, S_WORKERS);

    //  1,000 clients in four processes, all connected with jobs in flight
    //  before any collects a result.
    pid_t client_pids [S_CLIENT_PROCS];
    int go [S_CLIENT_PROCS][2], readies [S_CLIENT_PROCS][2];
    for (int p = 0; p < S_CLIENT_PROCS; p++) {
        cr_assert_eq (pipe (go [p]), 0);
        cr_assert_eq (pipe (readies [p]), 0);
        client_pids [p] = fork ();
        cr_assert_geq (client_pids [p], 0);
        if (client_pids [p] == 0)
            s_client_child (cluster.clients, p, go [p][0], readies [p][1]);
        close (go [p][0]);
        close (readies [p][1]);
    }
    for (int p = 0; p < S_CLIENT_PROCS; p++)
        cr_assert_eq (s_read_byte (readies [p][0], 400000), 'r',
                      "client process %d did not submit its first round", p);
    for (int p = 0; p < S_CLIENT_PROCS; p++)
        cr_assert_eq (write (go [p][1], "g", 1), 1);
    for (int p = 0; p < S_CLIENT_PROCS; p++) {
        int code = s_wait_child (client_pids [p], 400000);
        cr_assert_eq (code, 0, "client process %d ended with %d (see stderr)", p, code);
    }

    //  Every task was run (at least once), and spread over the workers.
    uint64_t total = 0;
    int busy = 0;
    for (int p = 0; p < S_WORKER_PROCS; p++) {
        cr_assert_eq (write (control [p][1], "q", 1), 1);
        uint64_t completed [S_WORKERS_EACH];
        size_t got = 0;
        while (got < sizeof completed) {
            struct pollfd pfd = { report [p][0], POLLIN, 0 };
            cr_assert_eq (poll (&pfd, 1, 120000), 1, "worker process %d did not report", p);
            ssize_t n = read (report [p][0], (char *) completed + got, sizeof completed - got);
            cr_assert_gt (n, 0, "worker process %d did not report", p);
            got += (size_t) n;
        }
        for (int i = 0; i < S_WORKERS_EACH; i++) {
            total += completed [i];
            busy += completed [i] > 0;
        }
        cr_assert_eq (s_wait_child (worker_pids [p], 120000), 0);
    }
    cr_log_info ("scale: %d clients, %d workers, %d tasks; %" PRIu64
                 " completed, by %d distinct workers",
                 S_CLIENTS, S_WORKERS, S_TOTAL, total, busy);
    cr_assert_geq (total, (uint64_t) S_TOTAL);
    drv_test_cluster_stop (&cluster);
}
