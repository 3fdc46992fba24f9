/*  test_cluster - a small cluster in network namespaces: a broker host
    and two worker hosts on a private subnet (10.77.0.0/24, a bridge in
    the broker's namespace and a veth pair to each worker host) that the
    test creates and always removes. A map spreads across both worker
    hosts; one host's link is cut mid-map (ip link set down, not a kill);
    the map must complete with every result exactly once; the host comes
    back and must get work again. Once with --insecure, once with CURVE.

    Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for ip netns): without,
    each test says so and is skipped. Names carry this process's pid
    (drvcl<pid>...); namespaces left by a test process that is gone are
    removed first.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drover.h"
#include "drv_testutil.h"

#define S_IP "/usr/sbin/ip"
#define S_PREFIX "drvcl"
#define S_BROKER_IP "10.77.0.1"
#define S_TASKS 3000
#define S_NAP_MS 8

static char ns_broker [32], ns_worker [2][32], dir [64];
static bool made;

//  Run a shell command built printf-style; its exit status.
static int
s_sh (const char *format, ...)
{
    char command [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (command, sizeof command, format, args);
    va_end (args);
    int rc = system (command);
    return rc == -1 ? -1 : WIFEXITED (rc) ? WEXITSTATUS (rc) : 128;
}

//  Remove namespaces of our naming whose test process is gone.
static void
s_remove_stale (void)
{
    FILE *list = popen (S_IP " netns list 2>/dev/null", "r");
    char line [256];
    while (list && fgets (line, sizeof line, list)) {
        int pid = 0;
        char name [64];
        if (sscanf (line, "%63s", name) != 1 || strncmp (name, S_PREFIX, strlen (S_PREFIX)) != 0)
            continue;
        pid = atoi (name + strlen (S_PREFIX));
        if (pid > 0 && (kill (pid, 0) == 0 || errno != ESRCH))
            continue;
        s_sh (S_IP " netns del %s 2>/dev/null", name);
    }
    if (list)
        pclose (list);
}

static void
teardown (void)
{
    drv_test_reap_all ();
    if (made) {
        s_sh (S_IP " netns del %s 2>/dev/null", ns_worker [0]);
        s_sh (S_IP " netns del %s 2>/dev/null", ns_worker [1]);
        s_sh (S_IP " netns del %s 2>/dev/null", ns_broker);
        made = false;
    }
    if (dir [0])
        s_sh ("rm -rf '%s'", dir);
}

//  Build the three hosts, or skip the test saying why.
static void
setup (void)
{
    int pid = (int) getpid ();
    snprintf (ns_broker, sizeof ns_broker, S_PREFIX "%db", pid);
    snprintf (ns_worker [0], sizeof ns_worker [0], S_PREFIX "%dw1", pid);
    snprintf (ns_worker [1], sizeof ns_worker [1], S_PREFIX "%dw2", pid);
    snprintf (dir, sizeof dir, "/tmp/drover-cluster-XXXXXX");
    cr_assert_not_null (mkdtemp (dir));
    if (access (S_IP, X_OK) != 0)
        cr_skip_test ("skipped: no %s (iproute2) to build network namespaces", S_IP);
    s_remove_stale ();
    if (s_sh (S_IP " netns add %s 2>/dev/null", ns_broker) != 0)
        cr_skip_test ("skipped: cannot create network namespaces (needs root, or CAP_NET_ADMIN "
                      "and CAP_SYS_ADMIN); the multi-host test did not run");
    made = true;
    cr_assert_eq (s_sh (S_IP " netns add %s", ns_worker [0]), 0);
    cr_assert_eq (s_sh (S_IP " netns add %s", ns_worker [1]), 0);
    cr_assert_eq (s_sh (S_IP " -n %s link set lo up && " S_IP " -n %s link add br0 type bridge "
                        "&& " S_IP " -n %s link set br0 up && " S_IP
                        " -n %s addr add " S_BROKER_IP "/24 dev br0",
                        ns_broker, ns_broker, ns_broker, ns_broker),
                  0);
    for (int i = 0; i < 2; i++) {
        //  One veth pair per worker host: "eth0" there, "vN" on the bridge.
        cr_assert_eq (s_sh (S_IP " link add v%d netns %s type veth peer name eth0 netns %s && "
                            S_IP " -n %s link set v%d master br0 up && " S_IP
                            " -n %s link set lo up && " S_IP
                            " -n %s addr add 10.77.0.%d/24 dev eth0 && " S_IP
                            " -n %s link set eth0 up",
                            i + 1, ns_broker, ns_worker [i], ns_broker, i + 1, ns_worker [i],
                            ns_worker [i], 11 + i, ns_worker [i]),
                      0, "cannot wire worker host %d", i + 1);
    }
}

TestSuite (cluster, .init = setup, .fini = teardown, .timeout = 400);

//  Start argv (NULL-terminated, after "ip netns exec NS") in namespace ns
//  with stderr to log.
static pid_t
s_spawn_in (const char *ns, const char *log, const char *const argv [])
{
    const char *full [40] = {S_IP, "netns", "exec", ns};
    int argc = 4;
    for (int i = 0; argv [i] && argc < 39; i++)
        full [argc++] = argv [i];
    pid_t pid = drv_test_spawn (full, log);
    cr_assert_gt (pid, 0);
    return pid;
}

//  Lines in a file; 0 if unreadable.
static size_t
s_lines (const char *path)
{
    FILE *file = fopen (path, "r");
    size_t lines = 0;
    int c;
    while (file && (c = fgetc (file)) != EOF)
        lines += c == '\n';
    if (file)
        fclose (file);
    return lines;
}

static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file, "cannot read %s", path);
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *text = (char *) calloc (1, (size_t) size + 1);
    cr_assert_eq (fread (text, 1, (size_t) size, file), (size_t) size);
    fclose (file);
    return text;
}

//  Wait up to timeout_ms for text to show in the file; true if it did.
static bool
s_await_text (const char *path, const char *text, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        FILE *file = fopen (path, "rb");
        if (file) {
            fclose (file);
            char *content = s_slurp (path);
            bool found = strstr (content, text) != NULL;
            free (content);
            if (found)
                return true;
        }
        zclock_sleep (100);
    }
    return false;
}

static void
s_run_cluster (bool curve)
{
    char broker_log [128], secret [96], broker_key [96], clients [96], workers [96];
    snprintf (broker_log, sizeof broker_log, "%s/broker.log", dir);
    const char *flags [12] = {DRV_BROKER_BIN, "--clients", "tcp://" S_BROKER_IP ":7700",
                              "--workers", "tcp://" S_BROKER_IP ":7701"};
    int nflags = 5;
    char env_secret [3][160], env_key [160];
    if (curve) {
        //  Keys: the broker's, one client's, one per worker host.
        snprintf (clients, sizeof clients, "%s/clients", dir);
        snprintf (workers, sizeof workers, "%s/workers", dir);
        cr_assert_eq (s_sh ("mkdir -p %s %s", clients, workers), 0);
        const char *names [] = {"broker", "client", "w1", "w2"};
        char err [256];
        for (int i = 0; i < 4; i++) {
            char path [128];
            snprintf (path, sizeof path, "%s/%s", dir, names [i]);
            cr_assert_eq (drover_keygen (path, err, sizeof err), 0, "%s", err);
        }
        cr_assert_eq (s_sh ("cp %s/client %s/ && cp %s/w1 %s/w2 %s/", dir, clients, dir, dir,
                            workers),
                      0);
        snprintf (secret, sizeof secret, "%s/broker_secret", dir);
        snprintf (broker_key, sizeof broker_key, "%s/broker", dir);
        flags [nflags++] = "--curve-secret";
        flags [nflags++] = secret;
        flags [nflags++] = "--allow-clients";
        flags [nflags++] = clients;
        flags [nflags++] = "--allow-workers";
        flags [nflags++] = workers;
        snprintf (env_secret [0], sizeof env_secret [0], "DROVER_CURVE_SECRET=%s/client_secret",
                  dir);
        snprintf (env_secret [1], sizeof env_secret [1], "DROVER_CURVE_SECRET=%s/w1_secret", dir);
        snprintf (env_secret [2], sizeof env_secret [2], "DROVER_CURVE_SECRET=%s/w2_secret", dir);
        snprintf (env_key, sizeof env_key, "DROVER_BROKER_KEY=%s", broker_key);
    }
    else
        flags [nflags++] = "--insecure";
    flags [nflags] = NULL;
    s_spawn_in (ns_broker, broker_log, flags);
    cr_assert (s_await_text (broker_log, "broker: listening", 20000), "the broker did not start");

    //  A worker on each host, four slots, named by the host it is on.
    pid_t worker [2];
    char worker_log [2][128], host [2][48];
    for (int i = 0; i < 2; i++) {
        snprintf (worker_log [i], sizeof worker_log [i], "%s/worker-%d.log", dir, i + 1);
        snprintf (host [i], sizeof host [i], "DROVER_TEST_HOST=w%d", i + 1);
        const char *argv [] = {"/usr/bin/env", host [i], curve ? env_secret [i + 1] : host [i],
                               curve ? env_key : host [i], DROVER_BIN_DIR "/drover-test-worker",
                               "tcp://" S_BROKER_IP ":7701", "4", NULL};
        worker [i] = s_spawn_in (ns_worker [i], worker_log [i], argv);
    }

    //  The map, from the broker host: line i is "NAP id-i".
    char input [128], output [128], errors [128];
    snprintf (input, sizeof input, "%s/input", dir);
    snprintf (output, sizeof output, "%s/output", dir);
    snprintf (errors, sizeof errors, "%s/errors", dir);
    FILE *file = fopen (input, "w");
    cr_assert_not_null (file);
    for (int i = 1; i <= S_TASKS; i++)
        fprintf (file, "%d id-%d\n", S_NAP_MS, i);
    fclose (file);
    const char *cli [] = {S_IP, "netns", "exec", ns_broker, "/usr/bin/env",
                          curve ? env_secret [0] : "DROVER_X=1", curve ? env_key : "DROVER_X=1",
                          DRV_CLI_BIN, "--broker", "tcp://" S_BROKER_IP ":7700", "map", "where",
                          NULL};
    pid_t map = drv_test_spawn_io (cli, input, output, errors);
    cr_assert_gt (map, 0);

    //  Cut worker host 1's link once a fifth of the results are in.
    int64_t deadline = zclock_mono () + 120000;
    while (s_lines (output) < S_TASKS / 5 && zclock_mono () < deadline
           && waitpid (map, NULL, WNOHANG) == 0)
        zclock_sleep (50);
    size_t at_cut = s_lines (output);
    cr_assert_lt (at_cut, (size_t) S_TASKS, "the map ended before the cut");
    cr_assert_eq (s_sh (S_IP " -n %s link set eth0 down", ns_worker [0]), 0);
    cr_log_info ("link of w1 down after %zu of %d results", at_cut, S_TASKS);
    //  The broker drops the silent host and hands its tasks on; then the
    //  link comes back.
    cr_assert (s_await_text (broker_log, "worker silent, dropped", 60000),
               "the broker did not notice worker host 1 was gone");
    cr_assert_eq (s_sh (S_IP " -n %s link set eth0 up", ns_worker [0]), 0);

    //  The map completes: every line is its own task's result, once.
    int status = drv_test_stop (map, 0, 180000);
    char *out = s_slurp (output), *err = s_slurp (errors);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0,
               "map status %d after the link cut; %zu lines; stderr: %s", status, s_lines (output),
               err);
    int line = 0, ran [2] = {0, 0};
    char *cursor = out;
    while (*cursor) {
        char *end = strchr (cursor, '\n');
        cr_assert_not_null (end);
        *end = 0;
        line++;
        char expected [32];
        snprintf (expected, sizeof expected, " %d id-%d", S_NAP_MS, line);
        size_t length = strlen (cursor), tail = strlen (expected);
        cr_assert (length > tail && streq (cursor + length - tail, expected),
                   "line %d is '%s'", line, cursor);
        if (strncmp (cursor, "w1 ", 3) == 0)
            ran [0]++;
        else
        if (strncmp (cursor, "w2 ", 3) == 0)
            ran [1]++;
        cursor = end + 1;
    }
    cr_assert_eq (line, S_TASKS, "%d results for %d tasks", line, S_TASKS);
    cr_assert_gt (ran [0], 0, "worker host 1 ran nothing");
    cr_assert_gt (ran [1], 0, "worker host 2 ran nothing");
    cr_log_info ("w1 ran %d, w2 ran %d", ran [0], ran [1]);
    free (out);
    free (err);

    //  Host 1 rejoins and gets work again: small maps until it shows.
    bool back = false;
    deadline = zclock_mono () + 90000;
    while (!back && zclock_mono () < deadline) {
        const char *small [] = {S_IP, "netns", "exec", ns_broker, "/usr/bin/env",
                                curve ? env_secret [0] : "DROVER_X=1",
                                curve ? env_key : "DROVER_X=1", DRV_CLI_BIN, "--broker",
                                "tcp://" S_BROKER_IP ":7700", "map", "where", NULL};
        char lines [200 * 12 + 1] = "";
        for (int i = 0; i < 200; i++)
            strcat (lines, "20 again\n");
        drv_test_output_t again = drv_test_run (small, lines, NULL, 60000);
        cr_assert_eq (again.status, 0, "%s", again.err);
        back = strstr (again.out, "w1 20 again") != NULL;
        drv_test_output_free (&again);
    }
    cr_assert (back, "worker host 1 did not get work after its link came back");
    cr_assert_eq (waitpid (worker [0], NULL, WNOHANG), 0, "worker host 1's worker exited");
    if (curve) {
        char *log = s_slurp (broker_log);
        cr_assert_null (strstr (log, "auth: refused"), "%s", log);
        free (log);
    }
}

Test (cluster, link_cut_mid_map_without_curve)
{
    s_run_cluster (false);
}

Test (cluster, link_cut_mid_map_with_curve)
{
    s_run_cluster (true);
}
