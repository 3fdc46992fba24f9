/*  test_deploy - drover as a systemd service and a Debian package.

    - The units (deploy/drover-*.service, as `cmake --install` puts them) pass
      `systemd-analyze verify` without a word and score 2.0 or lower on
      `systemd-analyze security --offline=true`. systemd-analyze missing
      is a failure that says what to install, not a skip: every machine
      that runs the tests got it from deploy/install-deps.sh.
    - The real daemons, with NOTIFY_SOCKET pointing at a datagram socket
      of the test's own, say READY=1, WATCHDOG=1 when WATCHDOG_USEC asks
      for it, and STOPPING=1 on SIGTERM; a broker that cannot bind says
      why in STATUS= and never READY=1.
    - drover_broker_ping and drover_worker_ping, which the watchdog uses.
    - The daemons run under their units' system call filters, imitated
      with seccomp by drover-test-seccomp: systemd's own check cannot
      tell that a daemon needs a call its unit denies.
    - `cpack -G DEB` makes a package with the programs, the units, the
      configuration as conffiles, the runtime libraries as dependencies
      and control scripts for the drover user; checked with dpkg-deb,
      never installed here.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drover.h"
#include "drv_testutil.h"

static char dir [64];

static void
setup (void)
{
    snprintf (dir, sizeof dir, "/tmp/drover-deploy-XXXXXX");
    cr_assert_not_null (mkdtemp (dir));
}

static void
teardown (void)
{
    drv_test_reap_all ();
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    if (system (command) != 0)
        fprintf (stderr, "cannot remove %s\n", dir);
}

//  Run a shell command line and return its output; asserts exit 0.
static drv_test_output_t
s_sh (const char *line)
{
    const char *argv [] = {"/bin/sh", "-c", line, NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 280000);
    cr_assert_eq (out.status, 0, "%s\nstdout: %s\nstderr: %s", line, out.out, out.err);
    return out;
}

//  Fail, saying what to install, when systemd-analyze is missing.
static void
s_need_systemd_analyze (void)
{
    const char *argv [] = {"/bin/sh", "-c", "systemd-analyze --version", NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 60000);
    cr_assert_eq (out.status, 0,
                  "systemd-analyze is missing: install Debian's systemd package "
                  "(sh deploy/install-deps.sh does)");
    drv_test_output_free (&out);
}

//  Install drover under DIR/root with the /usr prefix, as the package
//  lays it out, beside a copy of this machine's own units (the targets
//  the drover units order themselves after).
static void
s_stage_root (char *root, size_t size)
{
    snprintf (root, size, "%s/root", dir);
    char line [1024];
    snprintf (line, sizeof line,
              "DESTDIR='%s' cmake --install '%s' --prefix /usr >/dev/null && "
              "cp -an /usr/lib/systemd/system/. '%s/usr/lib/systemd/system/'",
              root, DROVER_BIN_DIR, root);
    drv_test_output_t out = s_sh (line);
    drv_test_output_free (&out);
}

Test (units, pass_verify_without_a_word, .init = setup, .fini = teardown, .timeout = 300)
{
    s_need_systemd_analyze ();
    char root [128];
    s_stage_root (root, sizeof root);
    char line [512];
    snprintf (line, sizeof line,
              "systemd-analyze verify --root='%s' drover-broker.service "
              "drover-worker@main.service 2>&1",
              root);
    drv_test_output_t out = s_sh (line);
    cr_assert_str_eq (out.out, "", "systemd-analyze verify says:\n%s", out.out);
    drv_test_output_free (&out);
}

Test (units, score_two_or_lower_on_security, .init = setup, .fini = teardown, .timeout = 300)
{
    s_need_systemd_analyze ();
    char root [128];
    s_stage_root (root, sizeof root);
    const char *units [] = {"drover-broker.service", "drover-worker@.service"};
    for (int i = 0; i < 2; i++) {
        char line [512];
        snprintf (line, sizeof line,
                  "systemd-analyze security --offline=true --no-pager "
                  "'%s/usr/lib/systemd/system/%s'",
                  root, units [i]);
        drv_test_output_t out = s_sh (line);
        const char *overall = strstr (out.out, "Overall exposure level for ");
        cr_assert_not_null (overall, "no overall score in:\n%s", out.out);
        const char *colon = strchr (overall, ':');
        cr_assert_not_null (colon);
        double score = strtod (colon + 1, NULL);
        cr_assert (score > 0.0 && score <= 2.0, "%s scores %.1f (at most 2.0 wanted):\n%s",
                   units [i], score, out.out);
        drv_test_output_free (&out);
    }
}

//  The tail of a log file, for a failure's message (static buffer).
static const char *
s_log_tail (const char *path)
{
    static char text [4096];
    text [0] = 0;
    FILE *file = fopen (path, "r");
    if (!file)
        return "(no log)";
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, size > (long) sizeof text - 1 ? size - (long) sizeof text + 1 : 0, SEEK_SET);
    size_t got = fread (text, 1, sizeof text - 1, file);
    text [got] = 0;
    fclose (file);
    return text;
}

//  Start program (argv after it) under the system call filter of unit,
//  a file under deploy/, with stderr to DIR/NAME.log; its pid.
static pid_t
s_spawn_filtered (const char *unit, const char *name, const char *const argv [], char *log,
                  size_t log_size)
{
    char numbers [128], line [512];
    snprintf (numbers, sizeof numbers, "%s/%s.syscalls", dir, name);
    snprintf (line, sizeof line, "'%s/unit-syscalls' '%s/deploy/%s' > '%s'", DRV_TEST_SCRIPTS,
              DROVER_SOURCE_DIR, unit, numbers);
    drv_test_output_t out = s_sh (line);
    drv_test_output_free (&out);
    const char *filtered [32] = {DROVER_BIN_DIR "/drover-test-seccomp", numbers};
    for (size_t i = 0; argv [i] && i + 3 < 32; i++)
        filtered [i + 2] = argv [i];
    snprintf (log, log_size, "%s/%s.log", dir, name);
    //  LeakSanitizer checks at exit from a ptrace'd thread, and the
    //  filter denies ptrace as the unit does: in a sanitized build these
    //  daemons go without the leak check (every other test has it).
    const char *options = getenv ("ASAN_OPTIONS");
    char *saved = options ? strdup (options) : NULL;
    char unchecked [512];
    snprintf (unchecked, sizeof unchecked, "%s%sdetect_leaks=0", saved ? saved : "",
              saved ? ":" : "");
    setenv ("ASAN_OPTIONS", unchecked, 1);
    pid_t pid = drv_test_spawn (filtered, log);
    if (saved)
        setenv ("ASAN_OPTIONS", saved, 1);
    else
        unsetenv ("ASAN_OPTIONS");
    free (saved);
    cr_assert_gt (pid, 0);
    return pid;
}

//  The daemons run under the system call filters of their units
//  (SystemCallFilter=, imitated by drover-test-seccomp): a durable
//  broker; a worker with an exec: handler, a pool handler given a
//  payload large enough to be read from the worker's memory, and
//  per-task limits; then both stop cleanly. systemd-analyze cannot tell
//  that a daemon needs a call its unit denies; this can (the broker's
//  unit once denied sched_setscheduler, and libzmq aborted at start).
Test (units, daemons_run_under_their_system_call_filters, .init = setup, .fini = teardown,
      .timeout = 300)
{
    s_need_systemd_analyze ();
    char clients [64], workers [64], data [128], plugin [512];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (data, sizeof data, "%s/data", dir);
    snprintf (plugin, sizeof plugin, "echo=plugin:%s:echo", DROVER_TEST_PLUGIN);
    const char *broker_argv [] = {DRV_BROKER_BIN, "--clients", clients, "--workers", workers,
                                  "--data", data, NULL};
    const char *worker_argv [] = {DRV_WORKER_BIN, "--broker", workers, "--slots", "2",
                                  "--max-memory", "1G", "--max-files", "256",
                                  "--function", "square=exec:awk {print($1*$1)}",
                                  "--function", plugin, NULL};
    char broker_log [192], worker_log [192];
    pid_t broker = s_spawn_filtered ("drover-broker.service", "broker", broker_argv, broker_log,
                                     sizeof broker_log);
    pid_t worker = s_spawn_filtered ("drover-worker@.service", "worker", worker_argv,
                                     worker_log, sizeof worker_log);

    const char *map [] = {DRV_CLI_BIN, "--broker", clients, "map", "square", NULL};
    drv_test_output_t out = drv_test_run (map, "1\n2\n3\n", NULL, 60000);
    cr_assert_eq (out.status, 0, "%s\nbroker:\n%s", out.err, s_log_tail (broker_log));
    cr_assert_str_eq (out.out, "1\n4\n9\n", "worker:\n%s", s_log_tail (worker_log));
    drv_test_output_free (&out);

    size_t size = 256 * 1024;
    char *payload = (char *) malloc (size + 1);
    cr_assert_not_null (payload);
    for (size_t i = 0; i < size; i++)
        payload [i] = (char) ('a' + i % 26);
    payload [size] = 0;
    const char *submit [] = {DRV_CLI_BIN, "--broker", clients, "submit", "echo", NULL};
    out = drv_test_run (submit, payload, NULL, 60000);
    cr_assert_eq (out.status, 0, "%s\nworker:\n%s", out.err, s_log_tail (worker_log));
    cr_assert_geq (out.out_size, size);
    cr_assert_eq (memcmp (out.out, payload, size), 0, "the payload came back changed");
    drv_test_output_free (&out);
    free (payload);

    int status = drv_test_stop (worker, SIGTERM, 30000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "worker exit status %d:\n%s",
               status, s_log_tail (worker_log));
    status = drv_test_stop (broker, SIGTERM, 30000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "broker exit status %d:\n%s",
               status, s_log_tail (broker_log));
}

//  A datagram socket at DIR/notify for the daemon's sd_notify.
static int
s_notify_socket (char *path, size_t size)
{
    snprintf (path, size, "%s/notify", dir);
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert (fd >= 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf (address.sun_path, sizeof address.sun_path, "%s", path);
    cr_assert_eq (bind (fd, (struct sockaddr *) &address, sizeof address), 0, "%s",
                  strerror (errno));
    return fd;
}

//  Read datagrams until one holds want, for up to timeout_ms; true if it
//  came. Every datagram read is appended to seen (for the messages).
static bool
s_await (int fd, const char *want, int timeout_ms, char *seen, size_t seen_size)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        struct pollfd item = {.fd = fd, .events = POLLIN};
        if (poll (&item, 1, (int) (deadline - zclock_mono ())) <= 0)
            continue;
        char datagram [1024];
        ssize_t size = recv (fd, datagram, sizeof datagram - 1, 0);
        if (size < 0)
            continue;
        datagram [size] = 0;
        size_t used = strlen (seen);
        snprintf (seen + used, seen_size - used, "[%s]\n", datagram);
        //  Each line of a datagram is one NAME=VALUE.
        for (char *line = strtok (datagram, "\n"); line; line = strtok (NULL, "\n"))
            if (streq (line, want))
                return true;
    }
    return false;
}

//  Start a daemon with NOTIFY_SOCKET (and WATCHDOG_USEC when given) and
//  check READY=1, WATCHDOG=1 twice, then STOPPING=1 on SIGTERM and a
//  clean exit.
static void
s_check_notify (const char *const argv [], const char *watchdog_usec)
{
    char path [128], log [128], seen [8192] = "";
    int fd = s_notify_socket (path, sizeof path);
    setenv ("NOTIFY_SOCKET", path, 1);
    if (watchdog_usec)
        setenv ("WATCHDOG_USEC", watchdog_usec, 1);
    snprintf (log, sizeof log, "%s/daemon.log", dir);
    pid_t pid = drv_test_spawn (argv, log);
    unsetenv ("NOTIFY_SOCKET");
    unsetenv ("WATCHDOG_USEC");
    cr_assert (pid > 0);
    cr_assert (s_await (fd, "READY=1", 60000, seen, sizeof seen), "no READY=1; got:\n%s", seen);
    if (watchdog_usec) {
        for (int i = 0; i < 2; i++)
            cr_assert (s_await (fd, "WATCHDOG=1", 60000, seen, sizeof seen),
                       "no WATCHDOG=1 number %d; got:\n%s", i + 1, seen);
    }
    kill (pid, SIGTERM);
    cr_assert (s_await (fd, "STOPPING=1", 60000, seen, sizeof seen),
               "no STOPPING=1 after SIGTERM; got:\n%s", seen);
    //  A second SIGTERM while it stops (an impatient operator) must not
    //  hurt: it once crashed a worker now and then.
    int status = drv_test_stop (pid, SIGTERM, 30000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "exit status %d", status);
    close (fd);
}

Test (notify, broker_says_ready_watchdog_and_stopping, .init = setup, .fini = teardown,
      .timeout = 200)
{
    char clients [128], workers [128];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (workers, sizeof workers, "ipc://%s/workers.ipc", dir);
    const char *argv [] = {DRV_BROKER_BIN, "--clients", clients, "--workers", workers, NULL};
    s_check_notify (argv, "300000");
}

Test (notify, broker_without_watchdog_says_ready_and_stopping, .init = setup,
      .fini = teardown, .timeout = 200)
{
    char clients [128], workers [128];
    snprintf (clients, sizeof clients, "ipc://%s/clients.ipc", dir);
    snprintf (workers, sizeof workers, "ipc://%s/workers.ipc", dir);
    const char *argv [] = {DRV_BROKER_BIN, "--clients", clients, "--workers", workers, NULL};
    s_check_notify (argv, NULL);
}

Test (notify, worker_says_ready_watchdog_and_stopping, .init = setup, .fini = teardown,
      .timeout = 200)
{
    //  A worker is started before its broker is there: it connects on.
    char broker [64];
    snprintf (broker, sizeof broker, "tcp://127.0.0.1:%d", drv_test_free_port ());
    const char *argv [] = {DRV_WORKER_BIN, "--broker", broker, "--function",
                           "upper=exec:tr a-z A-Z", NULL};
    s_check_notify (argv, "300000");
}

Test (notify, broker_that_cannot_bind_says_why_and_is_never_ready, .init = setup,
      .fini = teardown, .timeout = 200)
{
    char path [128], log [128], seen [8192] = "";
    int fd = s_notify_socket (path, sizeof path);
    setenv ("NOTIFY_SOCKET", path, 1);
    snprintf (log, sizeof log, "%s/broker.log", dir);
    const char *argv [] = {DRV_BROKER_BIN, "--clients", "ipc:///nonexistent/drover/c.ipc",
                           "--workers", "tcp://127.0.0.1:*", NULL};
    pid_t pid = drv_test_spawn (argv, log);
    unsetenv ("NOTIFY_SOCKET");
    int status = drv_test_stop (pid, 0, 60000);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 1, "exit status %d", status);
    //  Everything it sent is in the socket by now: read it all.
    cr_assert_not (s_await (fd, "READY=1", 500, seen, sizeof seen), "got:\n%s", seen);
    cr_assert (strstr (seen, "STATUS=cannot start: cannot bind ipc:///nonexistent"),
               "got:\n%s", seen);
    close (fd);
}

Test (notify, broker_and_worker_answer_pings, .init = setup, .fini = teardown, .timeout = 120)
{
    drover_set_logstream (NULL);
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_not_null (broker);
    cr_assert_eq (drover_broker_ping (broker, 1000), -1, "a broker not started answers");
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    for (int i = 0; i < 3; i++)
        cr_assert_eq (drover_broker_ping (broker, 30000), 0);
    //  A ping that gives up at once may leave its PONG behind: neither
    //  wait nor the next ping takes it for anything else.
    drover_broker_ping (broker, 0);
    cr_assert_eq (drover_broker_wait (broker, 200), 0, "%s", drover_broker_error (broker));
    drover_broker_ping (broker, 0);
    cr_assert_eq (drover_broker_ping (broker, 30000), 0);
    cr_assert_eq (drover_broker_wait (broker, 0), 0);

    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_not_null (worker);
    cr_assert_eq (drover_worker_add_function (worker, "upper=exec:tr a-z A-Z"), 0);
    cr_assert_eq (drover_worker_ping (worker, 1000), -1, "a worker not started answers");
    cr_assert_eq (drover_worker_start (worker), 0, "%s", drover_worker_error (worker));
    cr_assert_eq (drover_worker_ping (worker, 30000), 0);
    drover_worker_ping (worker, 0);
    cr_assert_eq (drover_worker_ping (worker, 30000), 0);
    drover_worker_stop (worker);
    cr_assert_eq (drover_worker_ping (worker, 1000), -1);
    drover_worker_destroy (&worker);

    drover_broker_stop (broker);
    cr_assert_eq (drover_broker_ping (broker, 1000), -1);
    drover_broker_destroy (&broker);
}

Test (package, deb_has_programs_units_conffiles_and_the_drover_user, .init = setup,
      .fini = teardown, .timeout = 300)
{
    char line [1024];
    snprintf (line, sizeof line,
              "cd '%s' && cpack -G DEB --config '%s/CPackConfig.cmake' -B '%s/deb' >/dev/null && "
              "ls '%s'/deb/drover_*.deb",
              dir, DROVER_BIN_DIR, dir, dir);
    drv_test_output_t out = s_sh (line);
    char deb [256];
    snprintf (deb, sizeof deb, "%.*s", (int) strcspn (out.out, "\n"), out.out);
    drv_test_output_free (&out);

    snprintf (line, sizeof line, "dpkg-deb --contents '%s'", deb);
    out = s_sh (line);
    const char *files [] = {"./usr/bin/drover-broker", "./usr/bin/drover-worker",
                            "./usr/bin/drover", "./usr/lib/systemd/system/drover-broker.service",
                            "./usr/lib/systemd/system/drover-worker@.service",
                            "./etc/drover/broker.cfg", "./etc/drover/worker.cfg",
                            "./usr/include/drover.h", "./usr/share/doc/drover/deploy.md"};
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++)
        cr_assert (strstr (out.out, files [i]), "%s is not in the package:\n%s", files [i],
                   out.out);
    cr_assert_null (strstr (out.out, "./usr/etc"), "configuration under /usr:\n%s", out.out);
    drv_test_output_free (&out);

    snprintf (line, sizeof line, "dpkg-deb --field '%s' Package Depends", deb);
    out = s_sh (line);
    const char *depends [] = {"Package: drover", "libczmq4", "libzmq5", "libprotobuf-c1",
                              "libsqlite3-0", "libsystemd0", "adduser"};
    for (size_t i = 0; i < sizeof depends / sizeof depends [0]; i++)
        cr_assert (strstr (out.out, depends [i]), "no %s in:\n%s", depends [i], out.out);
    drv_test_output_free (&out);

    //  The control scripts: well-formed shell that makes the drover user
    //  and group on configure, and removes the job store only on purge.
    snprintf (line, sizeof line,
              "cd '%s' && dpkg-deb --control '%s' control && cd control && "
              "sh -n postinst && sh -n prerm && sh -n postrm && test -x postinst && "
              "test -x postrm && cat conffiles && echo ---- && cat postinst && echo ---- && "
              "cat postrm",
              dir, deb);
    out = s_sh (line);
    cr_assert (strstr (out.out, "/etc/drover/broker.cfg\n/etc/drover/worker.cfg\n"),
               "conffiles:\n%s", out.out);
    cr_assert (strstr (out.out, "addgroup --quiet --system drover")
                   && strstr (out.out, "adduser --quiet --system --ingroup drover"),
               "postinst makes no drover user:\n%s", out.out);
    const char *postrm = strstr (out.out, "purge)");
    cr_assert (postrm && strstr (postrm, "rm -rf /var/lib/drover"), "postrm:\n%s", out.out);
    drv_test_output_free (&out);
}
