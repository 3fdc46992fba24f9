/*  drv_testutil - what the end-to-end tests share. */

#include "drv_testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_CHILDREN 64
static pid_t s_children [S_MAX_CHILDREN];

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Bind a TCP socket on 127.0.0.1 to port (0: any) and close it; the
//  port it had, or -1.
static int
s_try_port (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (fd == -1 || bind (fd, (struct sockaddr *) &addr, sizeof addr) == -1
        || getsockname (fd, (struct sockaddr *) &addr, &length) == -1) {
        if (fd != -1)
            close (fd);
        return -1;
    }
    close (fd);
    return ntohs (addr.sin_port);
}

//  A port free now, picked at random below the kernel's ephemeral range
//  (32768 and up by default): a port bind(0) hands out comes from that
//  range, which every outgoing connection on the machine draws its own
//  port from too, so between this check and the daemon's bind another
//  test's connection could take it. Below the range only another test
//  picking the same port at the same moment can. A port handed out
//  before in this process is never handed out again: it is free until
//  its daemon binds it, so a second pick (a cluster's client and worker
//  endpoints, one after the other) could otherwise draw it again, about
//  once in 22,000, and the broker fails to bind its second endpoint.
int
drv_test_free_port (void)
{
    static unsigned seed;
    static int given [256];
    static size_t ngiven;
    if (!seed)
        seed = (unsigned) getpid () * 2654435761u ^ (unsigned) s_now_ms ();
    for (int tries = 0; tries < 200; tries++) {
        int port = 10000 + (int) (rand_r (&seed) % 22000);
        bool seen = false;
        for (size_t i = 0; i < ngiven && i < 256 && !seen; i++)
            seen = given [i] == port;
        if (!seen && s_try_port (port) == port) {
            given [ngiven++ % 256] = port;
            return port;
        }
    }
    return s_try_port (0);
}

static void
s_record (pid_t pid)
{
    for (int i = 0; i < S_MAX_CHILDREN; i++)
        if (s_children [i] == 0) {
            s_children [i] = pid;
            return;
        }
}

static bool
s_forget (pid_t pid)
{
    for (int i = 0; i < S_MAX_CHILDREN; i++)
        if (s_children [i] == pid) {
            s_children [i] = 0;
            return true;
        }
    return false;
}

//  In a new child: die with the parent, default signals.
static void
s_child_setup (pid_t parent)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent)
        _exit (127);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    signal (SIGPIPE, SIG_DFL);
}

pid_t
drv_test_spawn (const char *const argv [], const char *log_path)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        s_child_setup (parent);
        if (log_path) {
            int fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd != -1) {
                dup2 (fd, 2);
                close (fd);
            }
        }
        int null = open ("/dev/null", O_RDONLY);
        if (null != -1) {
            dup2 (null, 0);
            close (null);
        }
        execv (argv [0], (char *const *) argv);
        fprintf (stderr, "cannot run %s: %s\n", argv [0], strerror (errno));
        _exit (127);
    }
    if (pid > 0)
        s_record (pid);
    return pid;
}

int
drv_test_stop (pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0 || !s_forget (pid))
        return -1;
    kill (pid, sig);
    int status = 0;
    int64_t deadline = s_now_ms () + timeout_ms;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (s_now_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            break;
        }
        usleep (10000);
    }
    return status;
}

void
drv_test_reap_all (void)
{
    for (int i = 0; i < S_MAX_CHILDREN; i++)
        if (s_children [i])
            drv_test_stop (s_children [i], SIGTERM, 5000);
}

//  Append what fd has to *buffer.
static void
s_drain (int fd, char **buffer, size_t *size, size_t *capacity, bool *open)
{
    char chunk [65536];
    ssize_t got = read (fd, chunk, sizeof chunk);
    if (got <= 0) {
        if (got == 0 || (errno != EAGAIN && errno != EINTR))
            *open = false;
        return;
    }
    if (*size + (size_t) got + 1 > *capacity) {
        while (*size + (size_t) got + 1 > *capacity)
            *capacity = *capacity ? *capacity * 2 : 65536;
        *buffer = (char *) realloc (*buffer, *capacity);
    }
    memcpy (*buffer + *size, chunk, (size_t) got);
    *size += (size_t) got;
    (*buffer) [*size] = 0;
}

drv_test_output_t
drv_test_run (const char *const argv [], const char *input, const char *const env [],
              int timeout_ms)
{
    drv_test_output_t output = {0};
    int in [2], out [2], err [2];
    if (pipe2 (in, O_CLOEXEC) || pipe2 (out, O_CLOEXEC) || pipe2 (err, O_CLOEXEC)) {
        output.status = -1;
        return output;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        s_child_setup (parent);
        dup2 (in [0], 0);
        dup2 (out [1], 1);
        dup2 (err [1], 2);
        for (int i = 0; env && env [i]; i++)
            putenv ((char *) env [i]);
        execv (argv [0], (char *const *) argv);
        fprintf (stderr, "cannot run %s: %s\n", argv [0], strerror (errno));
        _exit (127);
    }
    s_record (pid);
    close (in [0]);
    close (out [1]);
    close (err [1]);
    fcntl (in [1], F_SETFL, O_NONBLOCK);
    size_t input_size = input ? strlen (input) : 0, written = 0;
    if (input_size == 0) {
        close (in [1]);
        in [1] = -1;
    }
    size_t out_cap = 0, err_cap = 0, err_size = 0;
    bool out_open = true, err_open = true;
    int64_t deadline = s_now_ms () + timeout_ms;
    signal (SIGPIPE, SIG_IGN);
    while (out_open || err_open) {
        struct pollfd fds [3] = {
            {.fd = out_open ? out [0] : -1, .events = POLLIN},
            {.fd = err_open ? err [0] : -1, .events = POLLIN},
            {.fd = in [1], .events = POLLOUT},
        };
        int left = (int) (deadline - s_now_ms ());
        if (left <= 0)
            break;
        if (poll (fds, 3, left) <= 0)
            continue;
        if (fds [0].revents)
            s_drain (out [0], &output.out, &output.out_size, &out_cap, &out_open);
        if (fds [1].revents)
            s_drain (err [0], &output.err, &err_size, &err_cap, &err_open);
        if (in [1] != -1 && fds [2].revents) {
            ssize_t sent = write (in [1], input + written, input_size - written);
            if (sent > 0)
                written += (size_t) sent;
            if (sent < 0 && errno != EAGAIN)
                written = input_size;
            if (written == input_size) {
                close (in [1]);
                in [1] = -1;
            }
        }
    }
    if (in [1] != -1)
        close (in [1]);
    close (out [0]);
    close (err [0]);
    int status = drv_test_stop (pid, SIGKILL, 0);
    if (out_open || err_open)
        status = -1;                //  timed out
    if (!output.out)
        output.out = strdup ("");
    if (!output.err)
        output.err = strdup ("");
    output.status = status == -1           ? 137
                    : WIFEXITED (status)   ? WEXITSTATUS (status)
                    : WIFSIGNALED (status) ? 128 + WTERMSIG (status)
                                           : -1;
    return output;
}

void
drv_test_output_free (drv_test_output_t *output)
{
    free (output->out);
    free (output->err);
    output->out = output->err = NULL;
}

void
drv_test_cluster_start (drv_test_cluster_t *cluster, const char *const broker_flags [])
{
    memset (cluster, 0, sizeof *cluster);
    snprintf (cluster->dir, sizeof cluster->dir, "/tmp/drover-test-XXXXXX");
    if (!mkdtemp (cluster->dir))
        cluster->dir [0] = 0;
    snprintf (cluster->clients, sizeof cluster->clients, "tcp://127.0.0.1:%d",
              drv_test_free_port ());
    snprintf (cluster->workers, sizeof cluster->workers, "tcp://127.0.0.1:%d",
              drv_test_free_port ());
    drv_test_cluster_restart_broker (cluster, broker_flags);
}

void
drv_test_cluster_restart_broker (drv_test_cluster_t *cluster, const char *const broker_flags [])
{
    const char *argv [32] = {DRV_BROKER_BIN, "--clients", cluster->clients, "--workers",
                             cluster->workers};
    int argc = 5;
    for (int i = 0; broker_flags && broker_flags [i] && argc < 31; i++)
        argv [argc++] = broker_flags [i];
    char log [128];
    snprintf (log, sizeof log, "%s/broker.log", cluster->dir);
    cluster->broker = drv_test_spawn (argv, log);
}

pid_t
drv_test_cluster_worker (drv_test_cluster_t *cluster, int slots, const char *const functions [])
{
    return drv_test_cluster_worker_flags (cluster, slots, functions, NULL);
}

void
drv_test_cluster_worker_log (drv_test_cluster_t *cluster, size_t index, char *path, size_t size)
{
    snprintf (path, size, "%s/worker-%zu.log", cluster->dir, index);
}

pid_t
drv_test_cluster_worker_flags (drv_test_cluster_t *cluster, int slots,
                               const char *const functions [], const char *const flags [])
{
    char slot_text [16];
    snprintf (slot_text, sizeof slot_text, "%d", slots);
    const char *argv [40] = {DRV_WORKER_BIN, "--broker", cluster->workers, "--slots", slot_text};
    int argc = 5;
    for (int i = 0; functions [i] && argc < 30; i++) {
        argv [argc++] = "--function";
        argv [argc++] = functions [i];
    }
    for (int i = 0; flags && flags [i] && argc < 38; i++)
        argv [argc++] = flags [i];
    char log [128];
    drv_test_cluster_worker_log (cluster, cluster->nworkers, log, sizeof log);
    pid_t pid = drv_test_spawn (argv, log);
    if (cluster->nworkers < 8)
        cluster->worker [cluster->nworkers++] = pid;
    return pid;
}

void
drv_test_cluster_stop (drv_test_cluster_t *cluster)
{
    for (size_t i = 0; i < cluster->nworkers; i++)
        drv_test_stop (cluster->worker [i], SIGTERM, 5000);
    drv_test_stop (cluster->broker, SIGTERM, 5000);
    if (cluster->dir [0]) {
        char command [128];
        snprintf (command, sizeof command, "rm -rf '%s'", cluster->dir);
        if (system (command) != 0)
            fprintf (stderr, "cannot remove %s\n", cluster->dir);
    }
}

pid_t
drv_test_spawn_io (const char *const argv [], const char *input_path, const char *output_path,
                   const char *error_path)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        s_child_setup (parent);
        int in = open (input_path, O_RDONLY);
        int out = open (output_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open (error_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in == -1 || out == -1 || err == -1)
            _exit (127);
        dup2 (in, 0);
        dup2 (out, 1);
        dup2 (err, 2);
        execv (argv [0], (char *const *) argv);
        _exit (127);
    }
    if (pid > 0)
        s_record (pid);
    return pid;
}

pid_t
drv_test_cli_spawn (drv_test_cluster_t *cluster, const char *const args [],
                    const char *input_path, const char *output_path, const char *error_path)
{
    const char *argv [32] = {DRV_CLI_BIN, "--broker", cluster->clients};
    int argc = 3;
    for (int i = 0; args [i] && argc < 31; i++)
        argv [argc++] = args [i];
    return drv_test_spawn_io (argv, input_path, output_path, error_path);
}

drv_test_output_t
drv_test_cli (drv_test_cluster_t *cluster, const char *const args [], const char *input,
              int timeout_ms)
{
    const char *argv [32] = {DRV_CLI_BIN, "--broker", cluster->clients};
    int argc = 3;
    for (int i = 0; args [i] && argc < 31; i++)
        argv [argc++] = args [i];
    return drv_test_run (argv, input, NULL, timeout_ms);
}

int
drv_test_square (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    long n = strtol ((const char *) payload, NULL, 10);
    char out [32];
    int length = snprintf (out, sizeof out, "%ld", n * n);
    return drover_task_reply (task, out, (size_t) length);
}

int
drv_test_echo (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *payload = drover_task_payload (task, &size);
    return drover_task_reply (task, payload, size);
}

drover_broker_t *
drv_test_broker_rebind (const char *clients, const char *workers, drv_test_broker_fn *configure,
                        void *arg, char *err, size_t err_size)
{
    int64_t deadline = s_now_ms () + 10000;
    snprintf (err, err_size, "out of memory");
    while (true) {
        drover_broker_t *broker = drover_broker_new (clients, workers);
        if (!broker)
            return NULL;
        if (configure)
            configure (broker, arg);
        if (drover_broker_start (broker) == 0)
            return broker;
        snprintf (err, err_size, "%s", drover_broker_error (broker));
        drover_broker_destroy (&broker);
        if (s_now_ms () >= deadline)
            return NULL;
        usleep (50 * 1000);
    }
}
