/*  drover-broker - the drover broker daemon: flags (from the command line
    and --config FILE), signals and systemd's notifications, then the
    drover_broker_* object does the work. Runs in the foreground and logs
    to stderr; SIGTERM or SIGINT stops it cleanly.
*/

#include <czmq.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "drover.h"
#include "drv_config.h"

//  The configuration file, if any: says where a bad flag came from.
static drv_config_t *s_config;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: drover-broker --clients ENDPOINT --workers ENDPOINT [OPTION]...\n"
        "Take tasks from drover clients and dispatch them to drover workers.\n"
        "\n"
        "  --clients ENDPOINT     where clients connect, e.g. tcp://127.0.0.1:7700\n"
        "  --workers ENDPOINT     where workers connect, e.g. tcp://127.0.0.1:7701\n"
        "  --data DIR             durable mode: keep jobs in DIR (SQLite); a submit is\n"
        "                         acknowledged once on disk, and a restart on DIR runs\n"
        "                         again every unfinished job and delivers every result\n"
        "                         not yet acknowledged\n"
        "  --max-payload BYTES    largest task payload or result (default 16777216)\n"
        "  --max-message BYTES    largest protocol message (default 67108864)\n"
        "  --max-queue JOBS       jobs waiting (queued or delayed) per function at most,\n"
        "                         unless set for it with drover max-queue (default\n"
        "                         10000000)\n"
        "  --max-bytes BYTES      bytes of jobs held in all: payloads, results and 512\n"
        "                         per job (default 1073741824)\n"
        "  --max-functions N      distinct functions served (default 10000)\n"
        "  --max-memory BYTES     heap in use over which connections stuck in the middle\n"
        "                         of a message are cut (default --max-bytes + 1 GiB)\n"
        "  --keep-results MS      how long finished jobs stay queryable, and detached\n"
        "                         jobs' results can be fetched with drover wait\n"
        "                         (default 600000)\n"
        "  --heartbeat MS         the workers' heartbeat interval (default 1000)\n"
        "  --liveness N           drop a worker silent for N intervals and dispatch its\n"
        "                         running tasks again (default 3)\n"
        "  --curve-secret FILE    require CURVE on both endpoints, with the broker's\n"
        "                         secret certificate FILE (PATH_secret of drover keygen);\n"
        "                         needs --allow-clients and --allow-workers\n"
        "  --allow-clients DIR    CURVE: let in clients whose public certificates are\n"
        "                         in DIR (read again whenever it changes)\n"
        "  --allow-workers DIR    CURVE: let in workers whose public certificates are\n"
        "                         in DIR; a client key cannot serve as a worker\n"
        "  --insecure             listen beyond loopback without authentication; by\n"
        "                         default, without CURVE, only tcp://127.x.x.x, [::1],\n"
        "                         localhost and ipc:// endpoints are allowed\n"
        "  --metrics ENDPOINT     serve Prometheus metrics (GET /metrics, the text\n"
        "                         format) over HTTP at ENDPOINT, e.g. 127.0.0.1:9464\n"
        "                         (or tcp://HOST:PORT, ipc://PATH);\n"
        "                         off by default. No authentication: loopback only\n"
        "                         unless --insecure, also with CURVE\n"
        "  -v, --verbose          log every submit\n"
        "  --config FILE          read flags from FILE first (czmq zconfig format): one\n"
        "                         'key = value' line per flag, the key its long name\n"
        "                         (clients = tcp://..., max-queue = 1000, insecure = true);\n"
        "                         flags on the command line replace the file's\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Endpoints are ZeroMQ endpoints; tcp://127.0.0.1:* binds a free port.\n"
        "Keys: drover keygen PATH; see docs/security.md.\n"
        "Runs in the foreground, logs to stderr, stops on SIGTERM or SIGINT. Under\n"
        "systemd (Type=notify) it says READY=1 once both endpoints are bound, and\n"
        "feeds the watchdog (WatchdogSec) while its broker thread answers.\n");
}

//  Parse a number flag in [low, high]; exits with a message naming the
//  file and key when the value came from --config.
static unsigned long long
s_number (const char *flag, const char *text, unsigned long long low, unsigned long long high)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *end || *text == '-' || value < low || value > high) {
        if (high == ULLONG_MAX)
            fprintf (stderr, "drover-broker: %s%s wants a non-negative number, not '%s'\n",
                     drv_config_origin (s_config, optind), flag, text);
        else
            fprintf (stderr, "drover-broker: %s%s wants a number from %llu to %llu, not '%s'\n",
                     drv_config_origin (s_config, optind), flag, low, high, text);
        drv_config_destroy (&s_config);
        exit (2);
    }
    return value;
}

//  Feed systemd's watchdog every interval_ms while the broker's thread
//  answers, until a signal or the broker stops by itself (-1).
static int
s_serve (drover_broker_t *broker, int64_t interval_ms)
{
    int64_t next_ms = zclock_mono ();
    int rc = 0;
    while (!zsys_interrupted && rc == 0) {
        rc = drover_broker_wait (broker, 100);
        if (rc == 0 && interval_ms && zclock_mono () >= next_ms) {
            if (drover_broker_ping (broker, (int) interval_ms) == 0)
                sd_notify (0, "WATCHDOG=1");
            else {
                zsys_warning ("broker: the broker thread did not answer within %d ms",
                              (int) interval_ms);
                sd_notify (0, "STATUS=the broker thread does not answer");
            }
            next_ms = zclock_mono () + interval_ms;
        }
    }
    return rc;
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        {"clients", required_argument, 0, 'c'},
        {"workers", required_argument, 0, 'w'},
        {"data", required_argument, 0, 'D'},
        {"max-payload", required_argument, 0, 'P'},
        {"max-message", required_argument, 0, 'M'},
        {"max-queue", required_argument, 0, 'Q'},
        {"keep-results", required_argument, 0, 'K'},
        {"max-bytes", required_argument, 0, 'B'},
        {"max-functions", required_argument, 0, 'F'},
        {"max-memory", required_argument, 0, 'm'},
        {"heartbeat", required_argument, 0, 'H'},
        {"liveness", required_argument, 0, 'L'},
        {"verbose", no_argument, 0, 'v'},
        {"insecure", no_argument, 0, 'I'},
        {"curve-secret", required_argument, 0, 'S'},
        {"allow-clients", required_argument, 0, 'C'},
        {"allow-workers", required_argument, 0, 'W'},
        {"metrics", required_argument, 0, 257},
        {"config", required_argument, 0, 256},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    drover_tune_malloc ();
    const char *clients = NULL, *workers = NULL, *data = NULL;
    const char *curve_secret = NULL, *allow_clients = NULL, *allow_workers = NULL;
    const char *metrics = NULL;
    unsigned long long max_payload = 0, max_message = 0, max_queue = 0, keep = 0;
    unsigned long long heartbeat = 1000, liveness = 3, max_bytes = 0, max_functions = 0;
    unsigned long long max_memory = 0;
    bool have_keep = false, verbose = false, insecure = false;
    const unsigned long long any = ULLONG_MAX;
    char err [512];
    //  The file's flags go first, so the command line's win.
    if (drv_config_apply (&argc, &argv, "vhV", options, &s_config, err, sizeof err) == -1) {
        fprintf (stderr, "drover-broker: %s\n", err);
        return 2;
    }
    int opt, rc = 2;
    while ((opt = getopt_long (argc, argv, "vhV", options, NULL)) != -1) {
        switch (opt) {
            case 'c': clients = optarg; break;
            case 'D': data = optarg; break;
            case 'w': workers = optarg; break;
            case 'P': max_payload = s_number ("--max-payload", optarg, 0, any); break;
            case 'M': max_message = s_number ("--max-message", optarg, 0, any); break;
            case 'Q': max_queue = s_number ("--max-queue", optarg, 0, any); break;
            case 'K':
                keep = s_number ("--keep-results", optarg, 0, UINT_MAX);
                have_keep = true;
                break;
            case 'H': heartbeat = s_number ("--heartbeat", optarg, 1, 3600000); break;
            case 'L': liveness = s_number ("--liveness", optarg, 1, 1000); break;
            case 'v': verbose = true; break;
            case 'I': insecure = true; break;
            case 'S': curve_secret = optarg; break;
            case 'C': allow_clients = optarg; break;
            case 'W': allow_workers = optarg; break;
            case 'B': max_bytes = s_number ("--max-bytes", optarg, 0, any); break;
            case 'F': max_functions = s_number ("--max-functions", optarg, 0, any); break;
            case 'm': max_memory = s_number ("--max-memory", optarg, 0, any); break;
            case 256: break;         //  --config: read by drv_config_apply
            case 257: metrics = optarg; break;
            case 'h': s_usage (stdout); rc = 0; goto done;
            case 'V':
                printf ("drover-broker %d.%d.%d (protocol %d)\n", DROVER_VERSION_MAJOR,
                        DROVER_VERSION_MINOR, DROVER_VERSION_PATCH, DROVER_PROTOCOL_VERSION);
                rc = 0;
                goto done;
            default:
                fprintf (stderr, "Try 'drover-broker --help'.\n");
                goto done;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "drover-broker: unexpected argument '%s'; try --help\n", argv [optind]);
        goto done;
    }
    if (!clients || !workers) {
        fprintf (stderr, "drover-broker: both --clients and --workers are needed, e.g.\n"
                         "  drover-broker --clients tcp://127.0.0.1:7700 --workers "
                         "tcp://127.0.0.1:7701\n");
        goto done;
    }
    if ((curve_secret || allow_clients || allow_workers)
        && !(curve_secret && allow_clients && allow_workers)) {
        fprintf (stderr, "drover-broker: CURVE needs all three of --curve-secret, "
                         "--allow-clients and --allow-workers\n");
        return 2;
    }
    zsys_init ();
    zsys_set_logident ("drover-broker");
    //  Over a file size limit, a write should fail (and the broker stop
    //  cleanly, saying why), not kill the process.
    signal (SIGXFSZ, SIG_IGN);

    drover_broker_t *broker = drover_broker_new (clients, workers);
    if (!broker) {
        fprintf (stderr, "drover-broker: out of memory\n");
        rc = 1;
        goto done;
    }
    if (max_payload)
        drover_broker_set_max_payload (broker, max_payload);
    if (max_message)
        drover_broker_set_max_message (broker, max_message);
    if (max_queue)
        drover_broker_set_max_queue (broker, max_queue);
    if (max_bytes)
        drover_broker_set_max_bytes (broker, max_bytes);
    if (max_functions)
        drover_broker_set_max_functions (broker, max_functions);
    if (max_memory)
        drover_broker_set_max_memory (broker, max_memory);
    drover_broker_set_verbose (broker, verbose);
    drover_broker_set_insecure (broker, insecure);
    drover_broker_set_data_dir (broker, data);
    if (curve_secret
        && drover_broker_set_curve (broker, curve_secret, allow_clients, allow_workers) == -1) {
        fprintf (stderr, "drover-broker: %s\n", drover_broker_error (broker));
        drover_broker_destroy (&broker);
        rc = 2;
        goto done;
    }
    if (drover_broker_set_metrics (broker, metrics) == -1) {
        fprintf (stderr, "drover-broker: %s\n", drover_broker_error (broker));
        drover_broker_destroy (&broker);
        rc = 1;
        goto done;
    }
    drover_broker_set_heartbeat (broker, (unsigned) heartbeat, (unsigned) liveness);
    if (have_keep)
        drover_broker_set_keep_results (broker, (unsigned) keep);
    if (drover_broker_start (broker) == -1) {
        fprintf (stderr, "drover-broker: %s\n", drover_broker_error (broker));
        sd_notifyf (0, "STATUS=cannot start: %s", drover_broker_error (broker));
        drover_broker_destroy (&broker);
        rc = 1;
        goto done;
    }
    //  Both endpoints are bound: systemd may start what depends on us.
    //  Without NOTIFY_SOCKET in the environment these calls do nothing.
    sd_notifyf (0, "READY=1\nSTATUS=serving clients=%s workers=%s%s%s",
                drover_broker_clients_endpoint (broker), drover_broker_workers_endpoint (broker),
                metrics ? " metrics=" : "", metrics ? drover_broker_metrics_endpoint (broker) : "");
    uint64_t watchdog_usec = 0;
    int64_t interval_ms = 0;
    if (sd_watchdog_enabled (0, &watchdog_usec) > 0)
        interval_ms = watchdog_usec / 2000 ? (int64_t) (watchdog_usec / 2000) : 1;
    //  czmq's handler sets zsys_interrupted on SIGINT and SIGTERM.
    rc = s_serve (broker, interval_ms);
    //  Stopping now: a second SIGTERM or SIGINT would interrupt the wait
    //  for our thread to finish (EINTR), and the process would exit under
    //  it. SIGKILL (systemd's, after TimeoutStopSec) still ends a stuck stop.
    signal (SIGTERM, SIG_IGN);
    signal (SIGINT, SIG_IGN);
    if (rc == -1) {
        fprintf (stderr, "drover-broker: stopped: %s\n", drover_broker_error (broker));
        sd_notifyf (0, "STOPPING=1\nSTATUS=stopped: %s", drover_broker_error (broker));
    }
    else {
        zsys_info ("broker: signal received, stopping");
        sd_notify (0, "STOPPING=1\nSTATUS=stopping on a signal");
    }
    drover_broker_destroy (&broker);
    rc = rc == 0 ? 0 : 1;
done:
    drv_config_destroy (&s_config);
    return rc;
}
