/*  drover-worker - the drover worker daemon: flags, signals, then the
    drover_worker_* object does the work. Runs in the foreground and logs
    to stderr; SIGTERM or SIGINT stops it cleanly (the broker hands its
    running tasks to other workers).
*/

#include <czmq.h>
#include <getopt.h>

#include "drover.h"

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: drover-worker --broker ENDPOINT --function 'NAME=exec:PROGRAM [ARG...]'...\n"
        "Run tasks that a drover broker dispatches.\n"
        "\n"
        "  -b, --broker ENDPOINT  the broker's worker endpoint, e.g. tcp://127.0.0.1:7701\n"
        "  -f, --function DEF     offer a function; repeat for more. DEF is\n"
        "                         NAME=exec:PROGRAM [ARG...]: PROGRAM runs once per task,\n"
        "                         split on spaces, no shell; the payload is its stdin and\n"
        "                         its stdout the result. A non-zero exit, a signal or a\n"
        "                         timeout fails the task with the tail of its stderr.\n"
        "  -s, --slots N          tasks to run at once (default 1)\n"
        "  -n, --name NAME        name shown by the broker (default host:pid)\n"
        "      --heartbeat MS     heartbeat interval (default 1000); match the broker's\n"
        "      --liveness N       reconnect when the broker is silent for N intervals,\n"
        "                         backing off up to 30 s between tries (default 3)\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Example:\n"
        "  drover-worker --broker tcp://127.0.0.1:7701 --slots 4 \\\n"
        "      --function 'wc=exec:wc -w' --function 'upper=exec:tr a-z A-Z'\n"
        "\n"
        "Runs in the foreground, logs to stderr, stops on SIGTERM or SIGINT.\n");
}

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
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    //  First pass: the broker endpoint, so the worker can be created.
    const char *broker = NULL;
    int opt;
    while ((opt = getopt_long (argc, argv, "b:f:s:n:H:L:hV", options, NULL)) != -1) {
        if (opt == 'b')
            broker = optarg;
        else
        if (opt == 'h') {
            s_usage (stdout);
            return 0;
        }
        else
        if (opt == 'V') {
            printf ("drover-worker %d.%d.%d (protocol %d)\n", DROVER_VERSION_MAJOR,
                    DROVER_VERSION_MINOR, DROVER_VERSION_PATCH, DROVER_PROTOCOL_VERSION);
            return 0;
        }
        else
        if (opt == '?') {
            fprintf (stderr, "Try 'drover-worker --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "drover-worker: unexpected argument '%s'; try --help\n", argv [optind]);
        return 2;
    }
    if (!broker) {
        fprintf (stderr, "drover-worker: --broker is needed, e.g. --broker tcp://127.0.0.1:7701\n");
        return 2;
    }
    zsys_init ();
    zsys_set_logident ("drover-worker");
    drover_worker_t *worker = drover_worker_new (broker);
    if (!worker) {
        fprintf (stderr, "drover-worker: cannot create a worker for '%s'\n", broker);
        return 1;
    }
    int functions = 0;
    unsigned heartbeat = 1000, liveness = 3;
    optind = 0;
    while ((opt = getopt_long (argc, argv, "b:f:s:n:H:L:hV", options, NULL)) != -1) {
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
                fprintf (stderr, "drover-worker: --slots wants a positive number, not '%s'\n",
                         optarg);
                drover_worker_destroy (&worker);
                return 2;
            }
            rc = drover_worker_set_slots (worker, (unsigned) slots);
        }
        else
        if (opt == 'n')
            drover_worker_set_name (worker, optarg);
        else
        if (opt == 'H' || opt == 'L') {
            char *end;
            long value = strtol (optarg, &end, 10);
            if (*end || end == optarg || value <= 0 || value > 3600000) {
                fprintf (stderr, "drover-worker: --%s wants a positive number, not '%s'\n",
                         opt == 'H' ? "heartbeat" : "liveness", optarg);
                drover_worker_destroy (&worker);
                return 2;
            }
            if (opt == 'H')
                heartbeat = (unsigned) value;
            else
                liveness = (unsigned) value;
        }
        if (rc == -1) {
            fprintf (stderr, "drover-worker: %s\n", drover_worker_error (worker));
            drover_worker_destroy (&worker);
            return 2;
        }
    }
    drover_worker_set_heartbeat (worker, heartbeat, liveness);
    if (!functions) {
        fprintf (stderr, "drover-worker: offer at least one function, e.g. "
                         "--function 'upper=exec:tr a-z A-Z'\n");
        drover_worker_destroy (&worker);
        return 2;
    }
    int rc = drover_worker_run (worker);
    if (rc == -1)
        fprintf (stderr, "drover-worker: %s\n", drover_worker_error (worker));
    drover_worker_destroy (&worker);
    return rc == 0 ? 0 : 1;
}
