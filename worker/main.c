/*  drover-worker - the drover worker daemon: flags (from the command line
    and --config FILE), signals and systemd's notifications, then the
    drover_worker_* object does the work. Runs in the foreground and logs
    to stderr; SIGTERM or SIGINT stops it cleanly (the broker hands its
    running tasks to other workers).
*/

#include <czmq.h>
#include <getopt.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "drover.h"
#include "drv_config.h"

//  The configuration file, if any: says where a bad flag came from.
static drv_config_t *s_config;

//  A count from 0 to max for flag name; -1 after saying what is wrong.
static long
s_count (const char *name, const char *text, long max)
{
    char *end;
    long value = strtol (text, &end, 10);
    if (*end || end == text || value < 0 || value > max) {
        fprintf (stderr, "drover-worker: %s--%s wants a number from 0 to %ld, not '%s'\n",
                 drv_config_origin (s_config, optind), name, max, text);
        return -1;
    }
    return value;
}

//  Bytes from "512M", "2G", "65536", "64MiB"; 0 if not valid.
static uint64_t
s_size (const char *text)
{
    char *end;
    unsigned long long value = strtoull (text, &end, 10);
    if (end == text)
        return 0;
    uint64_t unit = 1;
    if (*end == 'K' || *end == 'k')
        unit = 1024;
    else
    if (*end == 'M' || *end == 'm')
        unit = 1024 * 1024;
    else
    if (*end == 'G' || *end == 'g')
        unit = 1024 * 1024 * 1024;
    if (unit > 1)
        end++;
    if (unit > 1 && (streq (end, "iB") || streq (end, "B")))
        end += strlen (end);
    if (*end || value > UINT64_MAX / unit)
        return 0;
    return (uint64_t) value * unit;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: drover-worker --broker ENDPOINT --function DEF...\n"
        "Run tasks that a drover broker dispatches.\n"
        "\n"
        "  -b, --broker ENDPOINT  the broker's worker endpoint, e.g. tcp://127.0.0.1:7701\n"
        "  -f, --function DEF     offer a function; repeat for more. DEF is either\n"
        "                         NAME=exec:PROGRAM [ARG...]: PROGRAM runs once per task,\n"
        "                         split on spaces, no shell; the payload is its stdin and\n"
        "                         its stdout the result. A non-zero exit, a signal or a\n"
        "                         timeout fails the task with the tail of its stderr.\n"
        "                         It may report progress as lines \"DONE TOTAL [TEXT]\"\n"
        "                         on the descriptor $DROVER_PROGRESS_FD names (3).\n"
        "                         or NAME=plugin:PATH.so:SYMBOL: SYMBOL, a drover_handler_fn\n"
        "                         (drover.h), runs in a pool of SLOTS prefork processes;\n"
        "                         a crash fails only its own task and the process is\n"
        "                         replaced; timeouts kill the process. It may report\n"
        "                         progress with drover_task_progress.\n"
        "  -s, --slots N          tasks to run at once; pool processes (default 1)\n"
        "      --prefetch N       tasks to hold beyond SLOTS so short tasks never wait a\n"
        "                         round trip (default 0; hundreds for tiny tasks)\n"
        "      --threads          run plugin handlers on SLOTS threads, not processes:\n"
        "                         no crash isolation, timeouts or limits for them\n"
        "      --max-tasks-per-child N  replace a pool process after N tasks (default never)\n"
        "      --initializer PATH.so:SYMBOL  run int SYMBOL (void *) once in each pool\n"
        "                         process before its first task\n"
        "Per-task limits (exec: tasks and pool processes; a task that hits one fails\n"
        "with a reason that names it):\n"
        "      --max-memory SIZE  address space per task, e.g. 512M, 2G (for a pool\n"
        "                         process: on top of its size when forked)\n"
        "      --max-cpu SECONDS  CPU seconds per task\n"
        "      --max-files N      open files per task\n"
        "      --max-procs N      processes of the task's user (RLIMIT_NPROC: counted over\n"
        "                         all that user's processes; root is exempt, so as root\n"
        "                         it needs --user)\n"
        "      --user NAME        run tasks as this user (the worker must run as root)\n"
        "  -n, --name NAME        name shown by the broker (default host:pid)\n"
        "      --heartbeat MS     heartbeat interval (default 1000); match the broker's\n"
        "      --liveness N       reconnect when the broker is silent for N intervals,\n"
        "                         backing off up to 30 s between tries (default 3)\n"
        "      --curve-secret FILE\n"
        "                         talk CURVE with this worker's secret certificate\n"
        "                         (PATH_secret of drover keygen); needs --broker-key\n"
        "      --broker-key FILE  CURVE: the broker's public certificate\n"
        "      --config FILE      read flags from FILE first (czmq zconfig format): one\n"
        "                         'key = value' line per flag, the key its long name\n"
        "                         (broker = tcp://..., slots = 4, threads = true, and one\n"
        "                         function = ... line per function); flags on the command\n"
        "                         line replace the file's (--function replaces all its\n"
        "                         functions)\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Examples:\n"
        "  drover-worker --broker tcp://127.0.0.1:7701 --slots 4 \\\n"
        "      --function 'wc=exec:wc -w' --function 'upper=exec:tr a-z A-Z'\n"
        "  drover-worker --broker tcp://127.0.0.1:7701 --slots 2 --prefetch 256 \\\n"
        "      --function 'square=plugin:/usr/lib/myjobs.so:square' --max-memory 512M\n"
        "\n"
        "Runs in the foreground, logs to stderr, stops on SIGTERM or SIGINT. A worker\n"
        "the broker refuses (authentication failed: ...) exits with status 1. Under\n"
        "systemd (Type=notify) it says READY=1 once started and feeds the watchdog\n"
        "(WatchdogSec) while its worker thread answers.\n");
}

//  Run a started worker until a signal or until it stops by itself (-1,
//  e.g. refused by the broker), feeding systemd's watchdog every
//  interval_ms (0: none) while the worker's thread answers.
static int
s_serve (drover_worker_t *worker, int64_t interval_ms)
{
    int64_t next_ms = zclock_mono ();
    int rc = 0;
    while (!zsys_interrupted && rc == 0) {
        rc = drover_worker_wait (worker, 50);
        if (rc == 0 && interval_ms && zclock_mono () >= next_ms) {
            if (drover_worker_ping (worker, (int) interval_ms) == 0)
                sd_notify (0, "WATCHDOG=1");
            else {
                zsys_warning ("worker: the worker thread did not answer within %d ms",
                              (int) interval_ms);
                sd_notify (0, "STATUS=the worker thread does not answer");
            }
            next_ms = zclock_mono () + interval_ms;
        }
    }
    return rc;
}

//  Long options without a short form.
enum { S_OPT_CURVE_SECRET = 1000, S_OPT_BROKER_KEY };

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        {"broker", required_argument, 0, 'b'},
        {"function", required_argument, 0, 'f'},
        {"slots", required_argument, 0, 's'},
        {"name", required_argument, 0, 'n'},
        {"heartbeat", required_argument, 0, 'H'},
        {"liveness", required_argument, 0, 'L'},
        {"prefetch", required_argument, 0, 'P'},
        {"threads", no_argument, 0, 'T'},
        {"max-tasks-per-child", required_argument, 0, 'K'},
        {"initializer", required_argument, 0, 'I'},
        {"max-memory", required_argument, 0, 'M'},
        {"max-cpu", required_argument, 0, 'C'},
        {"max-files", required_argument, 0, 'F'},
        {"max-procs", required_argument, 0, 'R'},
        {"user", required_argument, 0, 'U'},
        {"curve-secret", required_argument, 0, S_OPT_CURVE_SECRET},
        {"broker-key", required_argument, 0, S_OPT_BROKER_KEY},
        {"config", required_argument, 0, 256},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    drover_tune_malloc ();
    const char *shortopts = "b:f:s:n:H:L:hVP:TK:I:M:C:F:R:U:";
    //  The file's flags go first, so the command line's win.
    char err [512];
    if (drv_config_apply (&argc, &argv, shortopts, options, &s_config, err, sizeof err) == -1) {
        fprintf (stderr, "drover-worker: %s\n", err);
        return 2;
    }
    //  First pass: the broker endpoint, so the worker can be created.
    const char *broker = NULL, *curve_secret = NULL, *broker_key = NULL;
    drover_worker_t *worker = NULL;
    int opt, exit_code = 2;
    while ((opt = getopt_long (argc, argv, shortopts, options, NULL)) != -1) {
        if (opt == 'b')
            broker = optarg;
        else
        if (opt == S_OPT_CURVE_SECRET)
            curve_secret = optarg;
        else
        if (opt == S_OPT_BROKER_KEY)
            broker_key = optarg;
        else
        if (opt == 'h') {
            s_usage (stdout);
            exit_code = 0;
            goto done;
        }
        else
        if (opt == 'V') {
            printf ("drover-worker %d.%d.%d (protocol %d)\n", DROVER_VERSION_MAJOR,
                    DROVER_VERSION_MINOR, DROVER_VERSION_PATCH, DROVER_PROTOCOL_VERSION);
            exit_code = 0;
            goto done;
        }
        else
        if (opt == '?') {
            fprintf (stderr, "Try 'drover-worker --help'.\n");
            goto done;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "drover-worker: unexpected argument '%s'; try --help\n", argv [optind]);
        goto done;
    }
    if (!broker) {
        fprintf (stderr, "drover-worker: --broker is needed, e.g. --broker tcp://127.0.0.1:7701\n");
        goto done;
    }
    if (!curve_secret != !broker_key) {
        fprintf (stderr, "drover-worker: CURVE needs both --curve-secret and --broker-key\n");
        goto done;
    }
    zsys_init ();
    zsys_set_logident ("drover-worker");
    worker = drover_worker_new (broker);
    if (!worker) {
        fprintf (stderr, "drover-worker: cannot create a worker for '%s'\n", broker);
        exit_code = 1;
        goto done;
    }
    int functions = 0;
    unsigned heartbeat = 1000, liveness = 3;
    optind = 0;
    while ((opt = getopt_long (argc, argv, shortopts, options, NULL)) != -1) {
        //  Where a bad value came from: "FILE: key 'slots': " or "".
        const char *where = drv_config_origin (s_config, optind);
        int rc = 0;
        if (opt == 'f') {
            rc = drover_worker_add_function (worker, optarg);
            functions++;
        }
        else
        if (opt == 's') {
            char *end;
            long slots = strtol (optarg, &end, 10);
            if (*end || end == optarg || slots <= 0) {
                fprintf (stderr, "drover-worker: %s--slots wants a positive number, not '%s'\n",
                         where, optarg);
                goto done;
            }
            rc = drover_worker_set_slots (worker, (unsigned) slots);
        }
        else
        if (opt == 'n')
            drover_worker_set_name (worker, optarg);
        else
        if (opt == 'T')
            drover_worker_set_threads (worker, true);
        else
        if (opt == 'I')
            rc = drover_worker_set_initializer_plugin (worker, optarg);
        else
        if (opt == 'U')
            rc = drover_worker_set_user (worker, optarg);
        else
        if (opt == 'M') {
            uint64_t bytes = s_size (optarg);
            if (!bytes) {
                fprintf (stderr, "drover-worker: %s--max-memory wants a size such as 512M or "
                                 "2G, not '%s'\n", where, optarg);
                goto done;
            }
            rc = drover_worker_set_max_memory (worker, bytes);
        }
        else
        if (opt == 'P' || opt == 'K' || opt == 'C' || opt == 'F' || opt == 'R') {
            const char *name = opt == 'P' ? "prefetch"
                               : opt == 'K' ? "max-tasks-per-child"
                               : opt == 'C' ? "max-cpu"
                               : opt == 'F' ? "max-files"
                                            : "max-procs";
            long value = s_count (name, optarg, opt == 'P' ? 100000 : 1000000000);
            if (value == -1)
                goto done;
            if (opt == 'P')
                rc = drover_worker_set_prefetch (worker, (unsigned) value);
            else
            if (opt == 'K')
                drover_worker_set_max_tasks_per_child (worker, (unsigned) value);
            else
            if (opt == 'C')
                drover_worker_set_max_cpu (worker, (unsigned) value);
            else
            if (opt == 'F')
                rc = drover_worker_set_max_files (worker, (unsigned) value);
            else
                drover_worker_set_max_procs (worker, (unsigned) value);
        }
        else
        if (opt == 'H' || opt == 'L') {
            char *end;
            long value = strtol (optarg, &end, 10);
            if (*end || end == optarg || value <= 0 || value > 3600000) {
                fprintf (stderr, "drover-worker: %s--%s wants a positive number, not '%s'\n",
                         where, opt == 'H' ? "heartbeat" : "liveness", optarg);
                goto done;
            }
            if (opt == 'H')
                heartbeat = (unsigned) value;
            else
                liveness = (unsigned) value;
        }
        if (rc == -1) {
            fprintf (stderr, "drover-worker: %s%s\n", where, drover_worker_error (worker));
            goto done;
        }
    }
    drover_worker_set_heartbeat (worker, heartbeat, liveness);
    if (curve_secret && drover_worker_set_curve (worker, curve_secret, broker_key) == -1) {
        fprintf (stderr, "drover-worker: %s\n", drover_worker_error (worker));
        goto done;
    }
    if (!functions) {
        fprintf (stderr, "drover-worker: offer at least one function, e.g. "
                         "--function 'upper=exec:tr a-z A-Z'\n");
        goto done;
    }
    if (drover_worker_start (worker) == -1) {
        fprintf (stderr, "drover-worker: %s\n", drover_worker_error (worker));
        sd_notifyf (0, "STATUS=cannot start: %s", drover_worker_error (worker));
        exit_code = 1;
        goto done;
    }
    //  Without NOTIFY_SOCKET in the environment these calls do nothing.
    sd_notifyf (0, "READY=1\nSTATUS=serving broker=%s functions=%d", broker, functions);
    uint64_t watchdog_usec = 0;
    int64_t interval_ms = 0;
    if (sd_watchdog_enabled (0, &watchdog_usec) > 0)
        interval_ms = watchdog_usec / 2000 ? (int64_t) (watchdog_usec / 2000) : 1;
    //  czmq's handler sets zsys_interrupted on SIGINT and SIGTERM.
    int served = s_serve (worker, interval_ms);
    //  Stopping now: a second SIGTERM or SIGINT would interrupt the wait
    //  for our thread to finish (EINTR), and the process would exit under
    //  it. SIGKILL (systemd's, after TimeoutStopSec) still ends a stuck stop.
    signal (SIGTERM, SIG_IGN);
    signal (SIGINT, SIG_IGN);
    if (served == -1) {
        //  It stopped by itself, e.g. refused by the broker.
        fprintf (stderr, "drover-worker: %s\n", drover_worker_error (worker));
        sd_notifyf (0, "STOPPING=1\nSTATUS=stopped: %s", drover_worker_error (worker));
        exit_code = 1;
        goto done;
    }
    sd_notify (0, "STOPPING=1\nSTATUS=stopping on a signal");
    exit_code = 0;
done:
    //  Leaving tells the broker, which dispatches our running tasks again.
    drover_worker_destroy (&worker);
    drv_config_destroy (&s_config);
    return exit_code;
}
