/*  drover - the drover command line: submit a task, map over lines, ask
    for a job's state or wait for its result, steer a function's queue,
    show what the broker holds (jobs, workers, queues, stats), make CURVE
    keys. A thin program over the drover_client_* SDK. Without
    a broker, submit and map run in local mode (drv_local): a broker and a
    worker in this process for the one job, stopped at exit.

    Exit codes: 0 all tasks succeeded; 1 a task failed; 2 usage error;
    3 the broker could not be reached or refused the request (or the
    local one could not start), or SIGINT/SIGTERM stopped the wait.
*/

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <unistd.h>

#include "drover.h"
#include "drv_codec.h"
#include "drv_json.h"
#include "drv_local.h"

#define S_EXIT_FAILED 1
#define S_EXIT_USAGE 2
#define S_EXIT_BROKER 3

//  --json: results, states and queues as JSON lines on stdout.
static bool s_json;
//  Lines of a map that the broker refused to queue.
static size_t s_refused;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: drover [--broker ENDPOINT] COMMAND [ARG]... [OPTION]...\n"
        "       drover submit|map FUNCTION --function DEF... [-j N] [OPTION]...\n"
        "Submit tasks to a drover broker and collect their results.\n"
        "\n"
        "Without --broker and $DROVER_BROKER, submit and map run in local mode: a\n"
        "broker and a worker inside this process run the job (N tasks at once, with\n"
        "the functions given by --function, as drover-worker does) and stop at exit,\n"
        "also on failure, SIGINT or SIGTERM. The other commands need a broker.\n"
        "\n"
        "Commands:\n"
        "  submit FUNCTION [--data TEXT]   run one task; the payload is TEXT, or stdin\n"
        "                                  without --data. Prints the result on stdout;\n"
        "                                  with --detach, prints the job id at once.\n"
        "  map FUNCTION                    run one task per stdin line (without its\n"
        "                                  newline) and print one result line per input\n"
        "                                  line, in input order. A failed task prints an\n"
        "                                  empty line and its line number and reason on\n"
        "                                  stderr. On a terminal, a progress line on\n"
        "                                  stderr shows done, failed, running, queued,\n"
        "                                  rate and ETA.\n"
        "  wait JOB_ID                     wait for a job's result, any client's (e.g. one\n"
        "                                  submitted with --detach) and print it as submit\n"
        "                                  does; the broker keeps results for its\n"
        "                                  --keep-results\n"
        "                                  submit and wait show the task's progress\n"
        "                                  (DONE/TOTAL PCT%% TEXT) on stderr when it is a\n"
        "                                  terminal and the task reports any\n"
        "  status JOB_ID                   print a job's state (and a running task's last\n"
        "                                  progress report)\n"
        "  cancel JOB_ID                   cancel a job: a queued one is removed, a running\n"
        "                                  one is killed; its client gets 'cancelled'\n"
        "  dead [list]                     list dead letters: jobs that failed for good\n"
        "  dead show JOB_ID                show one, with its input\n"
        "  dead retry JOB_ID|all           queue them again, retries renewed\n"
        "  dead purge JOB_ID|all           forget them\n"
        "  limit FUNCTION K                run at most K tasks of FUNCTION at once across\n"
        "                                  all workers; 0 lifts the limit\n"
        "  pause FUNCTION                  take and queue FUNCTION's tasks, dispatch none\n"
        "  resume FUNCTION                 dispatch them again\n"
        "  max-queue FUNCTION N            queue at most N waiting tasks of FUNCTION (more\n"
        "                                  are refused: queue full); 0: the broker's\n"
        "  queue FUNCTION                  print FUNCTION's queue settings and counts\n"
        "  jobs                            list the jobs the broker holds (queued, delayed,\n"
        "                                  running, finished and kept), oldest first: ID,\n"
        "                                  FUNCTION, STATE, PRIO, ATTEMPTS, WORKER, AGE\n"
        "  workers                         list the connected workers: NAME, IDENTITY,\n"
        "                                  FUNCTIONS, SLOTS, RUNNING, DONE, CONNECTED, HEARD\n"
        "  queues                          list every function's queue: QUEUED, DELAYED,\n"
        "                                  RUNNING, LIMIT, PAUSED, MAX-QUEUE, WORKERS\n"
        "  stats                           print the broker's counters: uptime, jobs\n"
        "                                  submitted, dispatched, succeeded, failed,\n"
        "                                  retried; refused messages; clients, workers,\n"
        "                                  memory, store commits\n"
        "  keygen PATH                     write a new CURVE key pair: PATH, the public\n"
        "                                  certificate to hand out, and PATH_secret\n"
        "                                  (mode 0600) to keep; never overwrites\n"
        "\n"
        "Options:\n"
        "  -b, --broker ENDPOINT   the broker's client endpoint, e.g.\n"
        "                          tcp://127.0.0.1:7700; default $DROVER_BROKER\n"
        "      --curve-secret FILE this client's secret certificate (PATH_secret of\n"
        "                          keygen): talk CURVE; default $DROVER_CURVE_SECRET\n"
        "      --broker-key FILE   the broker's public certificate, for CURVE;\n"
        "                          default $DROVER_BROKER_KEY\n"
        "  -d, --data TEXT         submit: the payload\n"
        "  -t, --timeout MS        kill a task that runs longer than MS milliseconds\n"
        "  -r, --retries N         run a failed task again, up to N times (0 to 1000);\n"
        "                          waits between tries double from 0.2 s to 60 s,\n"
        "                          with jitter\n"
        "  -p, --priority N        submit, map: higher runs first (default 0); first in,\n"
        "                          first out within a priority\n"
        "  --delay MS              submit, map: dispatch no task before MS milliseconds\n"
        "  --unique KEY            submit: while a task of FUNCTION with this KEY is\n"
        "                          queued or running, attach to it and print its result\n"
        "  --detach                submit: print the job id and exit; fetch the result\n"
        "                          with drover wait JOB_ID\n"
        "  --function NAME         jobs: only NAME's jobs\n"
        "  --state STATE           jobs: only those queued, delayed, running,\n"
        "                          succeeded, failed, finished (either), or any\n"
        "  --limit N               jobs: at most N (1 to 10000; default 100); a cut\n"
        "                          list says on stderr how many there were\n"
        "  --newest                jobs: newest first\n"
        "  --prometheus            stats: the Prometheus text format, as the broker's\n"
        "                          --metrics endpoint serves it (for a textfile\n"
        "                          collector)\n"
        "  --unordered             map: print each result as it comes, not in input\n"
        "                          order (a failure still names its input line)\n"
        "  --chunk-size N          map: send N input lines per job (default 1); a\n"
        "                          worker runs the task once per line and returns\n"
        "                          their results together: less overhead for short\n"
        "                          tasks. Output, failures and the progress line's\n"
        "                          done count stay per line (running and queued are\n"
        "                          the broker's jobs); --retries reruns a failed\n"
        "                          chunk whole, --timeout is per line\n"
        "  --json                  submit, wait, map, status, cancel, the queue\n"
        "                          commands and jobs, workers, queues, stats: one JSON\n"
        "                          object per line on stdout, e.g.\n"
        "                          {\"line\":1,\"job_id\":7,\"outcome\":\"ok\",\"data\":\"1\",\n"
        "                          \"reason\":\"\",\"attempts\":1}; output that is not\n"
        "                          UTF-8 comes as \"data_base64\". Exit status as without\n"
        "                          --json.\n"
        "\n"
        "Local mode (no --broker):\n"
        "  -f, --function DEF      offer a function; repeat for more. DEF is\n"
        "                          NAME=exec:PROGRAM [ARG...] (runs once per task, split\n"
        "                          on spaces, no shell; stdin the payload, stdout the\n"
        "                          result) or NAME=plugin:PATH.so:SYMBOL (a\n"
        "                          drover_handler_fn run in prefork pool processes);\n"
        "                          see drover-worker --help\n"
        "  -j, --jobs N            tasks to run at once (default: the number of CPUs)\n"
        "  -h, --help              show this help and exit\n"
        "  -V, --version           show the version and exit\n"
        "\n"
        "Exit status: 0 every task succeeded, 1 a task failed (or wait, status: no such\n"
        "job), 2 usage error, 3 the broker could not be reached or refused the request\n"
        "(also 'authentication failed: ...': it does not let this client in; or, in\n"
        "local mode, could not start), or drover was stopped by SIGINT/SIGTERM.\n"
        "\n"
        "Examples:\n"
        "  seq 5 | drover map square -j 2 --function 'square=exec:awk {print($1*$1)}'\n"
        "  seq 5 | drover --broker tcp://127.0.0.1:7700 map square\n");
}

//  drover_notice_fn: tell the person on stderr.
static void
s_notice (const char *text, void *arg)
{
    (void) arg;
    fprintf (stderr, "drover: %s\n", text);
}

//  Read all of stdin; the caller frees. NULL on error.
static char *
s_read_stdin (size_t *size)
{
    size_t capacity = 65536, length = 0;
    char *data = (char *) malloc (capacity);
    while (data) {
        size_t got = fread (data + length, 1, capacity - length, stdin);
        length += got;
        if (got == 0)
            break;
        if (length == capacity) {
            char *bigger = (char *) realloc (data, capacity * 2);
            if (!bigger) {
                free (data);
                return NULL;
            }
            data = bigger;
            capacity *= 2;
        }
    }
    if (data && ferror (stdin)) {
        free (data);
        return NULL;
    }
    *size = length;
    return data;
}

static int s_print_result (drover_result_t *result);
static void s_print_line (drover_result_t *result, size_t line, size_t *failed);

//  A task's progress on stderr while submit or wait waits for it, when
//  stderr is a terminal: "drover: job N: done/total pct% text".
static bool s_progress_drawn;        //  a progress line is on the terminal

//  Write up to width characters of text on one line: the first line of
//  it, control characters as '?'.
static void
s_print_snippet (FILE *out, const uint8_t *text, size_t size, size_t width)
{
    size_t i = 0;
    for (; i < size && i < width && text [i] != '\n'; i++)
        fputc (text [i] < 0x20 || text [i] == 0x7f ? '?' : text [i], out);
    if (i < size && text [i] != '\n')
        fputs ("...", out);
}

//  drover_progress_fn
static void
s_show_progress (uint64_t job_id, uint64_t done, uint64_t total, const uint8_t *partial,
                 size_t size, void *arg)
{
    (void) arg;
    fprintf (stderr, "\r\033[Kdrover: job %" PRIu64 ": ", job_id);
    if (total)
        fprintf (stderr, "%" PRIu64 "/%" PRIu64 " %.0f%%", done, total, 100.0 * done / total);
    else
        fprintf (stderr, "%" PRIu64 " done", done);
    if (size) {
        fputc (' ', stderr);
        s_print_snippet (stderr, partial, size, 60);
    }
    fflush (stderr);
    s_progress_drawn = true;
}

//  Wait for a job's result, showing its progress on a terminal.
static int
s_wait_shown (drover_client_t *client, uint64_t job_id, drover_result_t **result_p)
{
    int rc = drover_client_wait (client, job_id, -1, result_p);
    if (s_progress_drawn) {
        fputs ("\r\033[K", stderr);
        fflush (stderr);
        s_progress_drawn = false;
    }
    return rc;
}

static int
s_submit (drover_client_t *client, const char *function, const char *data,
          const drover_options_t *options)
{
    size_t size = 0;
    char *input = NULL;
    if (data)
        size = strlen (data);
    else {
        input = s_read_stdin (&size);
        if (!input) {
            fprintf (stderr, "drover: cannot read the payload from stdin: %s\n", strerror (errno));
            return S_EXIT_USAGE;
        }
        data = input;
    }
    drover_result_t *result = NULL;
    uint64_t job_id = 0;
    int rc = drover_client_submit (client, function, data, size, options, &job_id);
    free (input);
    if (rc == 0 && options->detach) {
        if (s_json)
            drv_json_job_id (stdout, job_id);
        else
            printf ("%" PRIu64 "\n", job_id);
        return 0;
    }
    if (rc == 0)
        rc = s_wait_shown (client, job_id, &result);
    if (rc == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    return s_print_result (result);
}

//  drover wait JOB_ID: as submit prints it.
static int
s_wait (drover_client_t *client, uint64_t job_id)
{
    drover_result_t *result = NULL;
    if (s_wait_shown (client, job_id, &result) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return drover_client_error_code (client) == DROVER_ERR_UNKNOWN_JOB ? S_EXIT_FAILED
                                                                           : S_EXIT_BROKER;
    }
    return s_print_result (result);
}

//  A map's chunk waited for by its job id (its submitter unpacks it
//  itself): one line per item as map prints them, line N the chunk's
//  Nth. Destroys the result; the exit status.
static int
s_print_chunk (drover_result_t *result)
{
    size_t count = 0;               //  as many as there are
    drv_result_t *items = drv_codec_chunk_results_unpack (result->data, result->size, &count);
    int status = 0;
    size_t failed = 0;
    for (size_t i = 0; items && i < count; i++) {
        drover_result_t item = {.job_id = result->job_id, .outcome = items [i].outcome,
                                .data = (uint8_t *) items [i].data, .size = items [i].size,
                                .reason = (char *) items [i].reason,
                                .attempts = result->attempts};
        s_print_line (&item, i + 1, &failed);
    }
    if (!items) {
        fprintf (stderr, "drover: job %" PRIu64 " is a map's chunk, and its result holds no "
                         "item results\n",
                 result->job_id);
        status = S_EXIT_BROKER;
    }
    else
    if (failed) {
        fprintf (stderr, "drover: %zu of the %zu items of job %" PRIu64 " failed\n", failed,
                 count, result->job_id);
        status = S_EXIT_FAILED;
    }
    free (items);
    drover_result_destroy (&result);
    return status;
}

//  Print a result as submit does and destroy it; the exit status.
static int
s_print_result (drover_result_t *result)
{
    if (result->chunk)
        return s_print_chunk (result);
    int status = 0;
    if (s_json) {
        drv_json_result (stdout, result, 0);
        status = result->outcome == DROVER_OUTCOME_OK ? 0 : S_EXIT_FAILED;
    }
    else
    if (result->outcome == DROVER_OUTCOME_OK)
        fwrite (result->data, 1, result->size, stdout);
    else {
        fprintf (stderr, "drover: job %" PRIu64 " failed (%s): %s\n", result->job_id,
                 drover_outcome_name (result->outcome), result->reason);
        status = S_EXIT_FAILED;
    }
    drover_result_destroy (&result);
    return status;
}

//  Print one map result as one line; count failures.
static void
s_print_line (drover_result_t *result, size_t line, size_t *failed)
{
    s_refused += result->outcome == DROVER_OUTCOME_REFUSED;
    if (s_json) {
        drv_json_result (stdout, result, line);
        *failed += result->outcome != DROVER_OUTCOME_OK;
        return;
    }
    if (result->outcome == DROVER_OUTCOME_OK) {
        size_t size = result->size;
        if (size && result->data [size - 1] == '\n')
            size--;
        fwrite (result->data, 1, size, stdout);
    }
    else {
        fprintf (stderr, "drover: line %zu failed (%s): %s\n", line,
                 drover_outcome_name (result->outcome), result->reason);
        (*failed)++;
    }
    fputc ('\n', stdout);
}

//  The progress line of a map, on stderr when it is a terminal.
typedef struct {
    bool shown;                      //  draw it at all
    const char *function;            //  for the queue counts
    int64_t started;                 //  ms
    int64_t drawn;                   //  when last drawn
    int64_t asked;                   //  when the broker was last asked
    drover_queue_t queue;            //  its counts then
    size_t chunk_size;               //  lines per job; the broker counts jobs
} s_progress_t;

//  Redraw at most 5 times a second; ask the broker for running and queued
//  once a second. final: the last draw, ended by a newline.
static void
s_progress (s_progress_t *self, drover_client_t *client, size_t done, size_t failed,
            size_t total, bool final)
{
    if (!self->shown)
        return;
    int64_t now = zclock_mono ();
    if (!final && now - self->drawn < 200)
        return;
    self->drawn = now;
    if (!final && now - self->asked >= 1000) {
        self->asked = now;
        drover_queue_t queue;
        if (drover_client_queue (client, self->function, &queue) == 0)
            self->queue = queue;
    }
    double seconds = (now - self->started) / 1000.0;
    double rate = seconds > 0 ? done / seconds : 0;
    char eta [32] = "-";
    if (rate > 0 && total > done)
        snprintf (eta, sizeof eta, "%.0fs", (total - done) / rate);
    if (final)
        fprintf (stderr, "\r\033[Kdrover: %zu/%zu done, %zu failed, %.0f/s, %.1f s\n", done,
                 total, failed, rate, seconds);
    else
        fprintf (stderr,
                 "\r\033[Kdrover: %zu/%zu done, %zu failed, %" PRIu64 " running, %" PRIu64
                 " queued (%s, all clients%s), %.0f/s, ETA %s",
                 done, total, failed, self->queue.running, self->queue.queued, self->function,
                 self->chunk_size > 1 ? ", in jobs" : "", rate, eta);
    fflush (stderr);
}

//  Print what a map has ready; in order or, unordered, as it comes.
static int
s_map_take (drover_imap_t *imap, int timeout_ms, size_t *taken, size_t *failed)
{
    drover_result_t *result;
    size_t index;
    int got;
    while ((got = drover_imap_next_index (imap, timeout_ms, &result, &index)) == 0) {
        s_print_line (result, index + 1, failed);
        drover_result_destroy (&result);
        (*taken)++;
        if (timeout_ms != 0)
            break;
    }
    return got;
}

static int
s_map (drover_client_t *client, const char *function, const drover_options_t *options,
       bool unordered, size_t chunk_size)
{
    drover_imap_t *imap = drover_imap_new (client, function, options);
    if (!imap || (unordered && drover_imap_set_unordered (imap, true) == -1)
        || drover_imap_set_chunk_size (imap, chunk_size) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        drover_imap_destroy (&imap);
        return S_EXIT_USAGE;
    }
    s_progress_t progress = {.shown = isatty (STDERR_FILENO), .function = function,
                             .started = zclock_mono (), .chunk_size = chunk_size};
    size_t taken = 0, failed = 0, total = 0;
    char *text = NULL;
    size_t capacity = 0;
    ssize_t length;
    int rc = 0;
    while (rc == 0 && !zsys_interrupted && (length = getline (&text, &capacity, stdin)) != -1) {
        if (length && text [length - 1] == '\n')
            length--;
        rc = drover_imap_push (imap, text, (size_t) length);
        total++;
        //  Print what is ready already, so output streams.
        int got = rc == 0 ? s_map_take (imap, 0, &taken, &failed) : 0;
        if (rc == 0 && got == -1 && errno != ETIMEDOUT)
            rc = -1;
        s_progress (&progress, client, taken, failed, total, false);
    }
    free (text);
    int next = 0;
    if (zsys_interrupted) {
        errno = EINTR;
        rc = -1;
    }
    while (rc == 0 && (next = s_map_take (imap, progress.shown ? 200 : -1, &taken, &failed)) != 1) {
        if (next == -1 && !(progress.shown && errno == ETIMEDOUT))
            break;
        next = 0;
        s_progress (&progress, client, taken, failed, total, false);
    }
    fflush (stdout);
    if (total)
        s_progress (&progress, client, taken, failed, total, true);
    int status = 0;
    if (rc == -1 || next == -1) {
        fprintf (stderr, "drover: %s\n",
                 zsys_interrupted ? "interrupted" : drover_client_error (client));
        status = S_EXIT_BROKER;
    }
    else
    if (s_refused) {
        //  The broker refused a request: that is its exit status.
        fprintf (stderr, "drover: %zu of %zu tasks failed, %zu of them not queued: the broker "
                         "refused them\n",
                 failed, total, s_refused);
        status = S_EXIT_BROKER;
    }
    else
    if (failed) {
        fprintf (stderr, "drover: %zu of %zu tasks failed\n", failed, total);
        status = S_EXIT_FAILED;
    }
    drover_imap_destroy (&imap);
    return status;
}

static int
s_status (drover_client_t *client, uint64_t id, bool cancel)
{
    drover_status_t status;
    int rc = cancel ? drover_client_cancel (client, id, &status)
                    : drover_client_status (client, id, &status);
    if (rc == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return drover_client_error_code (client) == DROVER_ERR_UNKNOWN_JOB ? S_EXIT_FAILED
                                                                           : S_EXIT_BROKER;
    }
    if (s_json) {
        drv_json_status (stdout, &status);
        return 0;
    }
    if (status.outcome && status.outcome != DROVER_OUTCOME_OK)
        printf ("job %" PRIu64 ": %s (%s)\n", status.job_id, drover_state_name (status.state),
                drover_outcome_name (status.outcome));
    else
        printf ("job %" PRIu64 ": %s\n", status.job_id, drover_state_name (status.state));
    printf ("function: %s\nattempts: %u\n", status.function, status.attempts);
    if (status.chunk)
        printf ("chunk: a map's chunk, several inputs in one job\n");
    if (status.priority)
        printf ("priority: %d\n", status.priority);
    if (status.state == DROVER_JOB_QUEUED && status.run_in_ms)
        printf ("runs in: %" PRIu64 " ms\n", status.run_in_ms);
    if (status.state == DROVER_JOB_RUNNING)
        printf ("worker: %s\n", status.worker);
    if (status.has_progress) {
        if (status.progress_total)
            printf ("progress: %" PRIu64 "/%" PRIu64 " (%.0f%%)\n", status.progress_done,
                    status.progress_total,
                    100.0 * status.progress_done / status.progress_total);
        else
            printf ("progress: %" PRIu64 " done\n", status.progress_done);
        if (status.progress_size) {
            size_t shown = strlen (status.progress_partial);
            printf ("partial output: %s%s", status.progress_partial,
                    shown && status.progress_partial [shown - 1] == '\n' ? "" : "\n");
            if (shown < status.progress_size)
                printf ("(the first %zu bytes of %zu)\n", shown, status.progress_size);
        }
    }
    return 0;
}

//  Parse a job id; 0 (and a message) if it is not one.
static uint64_t
s_job_id (const char *text)
{
    char *end;
    unsigned long long id = strtoull (text, &end, 10);
    if (*end || end == text || id == 0 || *text == '-') {
        fprintf (stderr, "drover: a job id is a positive number, not '%s'\n", text);
        return 0;
    }
    return id;
}

//  drover limit|pause|resume|max-queue|queue FUNCTION [N]
static int
s_queue (drover_client_t *client, const char *command, const char *function, const char *number)
{
    unsigned long long value = 0;
    if (number) {
        char *end;
        errno = 0;
        value = strtoull (number, &end, 10);
        bool limit = streq (command, "limit");
        if (errno || *end || end == number || *number == '-'
            || (limit && value > UINT32_MAX)) {
            fprintf (stderr, "drover: %s wants a number of %s, not '%s'\n", command,
                     limit ? "tasks" : "waiting tasks", number);
            return S_EXIT_USAGE;
        }
    }
    drover_queue_t queue;
    int rc = streq (command, "limit")    ? drover_client_set_limit (client, function,
                                                                    (uint32_t) value, &queue)
             : streq (command, "pause")  ? drover_client_pause (client, function, true, &queue)
             : streq (command, "resume") ? drover_client_pause (client, function, false, &queue)
             : streq (command, "max-queue")
                 ? drover_client_set_max_queue (client, function, value, &queue)
                 : drover_client_queue (client, function, &queue);
    if (rc == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    if (s_json) {
        drv_json_queue (stdout, &queue);
        return 0;
    }
    char limit [32] = "none";
    if (queue.limit)
        snprintf (limit, sizeof limit, "%u", queue.limit);
    printf ("%s: %s, limit %s, max queue %" PRIu64 "%s\n"
            "queued %" PRIu64 ", delayed %" PRIu64 ", running %" PRIu64 ", workers %u\n",
            queue.function, queue.paused ? "paused" : "running", limit, queue.max_queue_in_force,
            queue.max_queue ? "" : " (the broker's)", queue.queued, queue.delayed, queue.running,
            queue.workers);
    return 0;
}

//  drover dead [list | show ID | retry ID|all | purge ID|all]
static int
s_dead (drover_client_t *client, int argc, char *argv [])
{
    const char *verb = argc > 0 ? argv [0] : "list";
    drover_dead_op_t op = streq (verb, "retry") ? DROVER_DEAD_RETRY
                        : streq (verb, "purge") ? DROVER_DEAD_PURGE
                                                : DROVER_DEAD_LIST;
    bool known = streq (verb, "list") || streq (verb, "show") || op != DROVER_DEAD_LIST;
    bool wants_id = !streq (verb, "list");
    if (!known || (wants_id && argc != 2) || (!wants_id && argc > 1)) {
        fprintf (stderr, "drover: write dead [list], dead show JOB_ID, dead retry JOB_ID|all "
                         "or dead purge JOB_ID|all\n");
        return S_EXIT_USAGE;
    }
    uint64_t id = 0;
    if (wants_id && !(op != DROVER_DEAD_LIST && streq (argv [1], "all"))) {
        char *end;
        id = strtoull (argv [1], &end, 10);
        if (*end || end == argv [1] || id == 0) {
            fprintf (stderr, "drover: a job id is a positive number, not '%s'\n", argv [1]);
            return S_EXIT_USAGE;
        }
    }
    drover_dead_t *jobs = NULL;
    size_t count = 0;
    if (drover_client_dead (client, op, id, &jobs, &count) == -1) {
        bool none = drover_client_error_code (client) == DROVER_ERR_UNKNOWN_JOB;
        if (none && !id) {
            printf ("no dead letters\n");
            return 0;
        }
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return none ? S_EXIT_FAILED : S_EXIT_BROKER;
    }
    for (size_t i = 0; i < count; i++) {
        drover_dead_t *job = &jobs [i];
        drv_chunk_t *chunk = streq (verb, "show") && job->chunk
                                 ? drv_codec_chunk_unpack (job->payload, job->size)
                                 : NULL;
        if (streq (verb, "show"))
            printf ("job %" PRIu64 ": dead (%s)\nfunction: %s\nattempts: %u\nreason: %s\n",
                    job->job_id, drover_outcome_name (job->outcome), job->function,
                    job->attempts, job->reason);
        if (chunk) {
            //  A map's chunk: its inputs, one per line, as map read them.
            printf ("input (a map's chunk of %zu items, one per line):\n", chunk->count);
            for (size_t item = 0; item < chunk->count; item++) {
                size_t size = chunk->sizes [item];
                if (size && chunk->items [item][size - 1] == '\n')
                    size--;
                fwrite (chunk->items [item], 1, size, stdout);
                fputc ('\n', stdout);
            }
            free (chunk);
        }
        else
        if (streq (verb, "show"))
            printf ("input (%zu bytes):\n%s%s", job->size, job->payload,
                    job->size && job->payload [job->size - 1] == '\n' ? "" : "\n");
        else
        if (op == DROVER_DEAD_LIST)
            printf ("%" PRIu64 "\t%s\t%u\t%s\t%s\n", job->job_id, job->function, job->attempts,
                    drover_outcome_name (job->outcome), job->reason);
    }
    if (op == DROVER_DEAD_RETRY)
        printf ("queued again: %zu job%s\n", count, count == 1 ? "" : "s");
    if (op == DROVER_DEAD_PURGE)
        printf ("purged: %zu job%s\n", count, count == 1 ? "" : "s");
    drover_dead_destroy (&jobs, count);
    return 0;
}

//  ---------------------------------------------------------------------
//  Admin views: aligned tables for people, JSON lines with --json.

//  A table of text cells, printed with each column as wide as its widest
//  cell; numeric columns align right, as ps does.
typedef struct {
    size_t ncols;                    //  columns
    const char *const *header;       //  ncols titles
    const bool *right;               //  ncols: align right
    char **cells;                    //  rows * ncols, owned
    size_t nrows;                    //  rows added
    size_t capacity;                 //  rows allocated
} s_table_t;

//  Add a row of ncols cells, formatted by the caller; copies them.
static void
s_table_row (s_table_t *table, const char *const *cells)
{
    if (table->nrows == table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 64;
        char **bigger = (char **) realloc (table->cells, capacity * table->ncols * sizeof (char *));
        if (!bigger)
            return;
        table->cells = bigger;
        table->capacity = capacity;
    }
    for (size_t c = 0; c < table->ncols; c++)
        table->cells [table->nrows * table->ncols + c] = strdup (cells [c] ? cells [c] : "");
    table->nrows++;
}

//  Print the table on stdout and free its cells.
static void
s_table_print (s_table_t *table)
{
    size_t width [16] = {0};
    assert (table->ncols <= 16);
    for (size_t c = 0; c < table->ncols; c++)
        width [c] = strlen (table->header [c]);
    for (size_t r = 0; r < table->nrows; r++)
        for (size_t c = 0; c < table->ncols; c++) {
            const char *cell = table->cells [r * table->ncols + c];
            size_t length = cell ? strlen (cell) : 0;
            if (length > width [c])
                width [c] = length;
        }
    for (size_t r = 0; r <= table->nrows; r++) {
        for (size_t c = 0; c < table->ncols; c++) {
            const char *cell = r == 0 ? table->header [c] : table->cells [(r - 1) * table->ncols + c];
            cell = cell ? cell : "";
            bool last = c + 1 == table->ncols;
            if (table->right [c])
                printf ("%*s%s", (int) width [c], cell, last ? "" : "  ");
            else
                printf ("%-*s%s", last ? 0 : (int) width [c], cell, last ? "" : "  ");
        }
        putchar ('\n');
    }
    for (size_t i = 0; i < table->nrows * table->ncols; i++)
        free (table->cells [i]);
    free (table->cells);
    table->cells = NULL;
    table->nrows = table->capacity = 0;
}

//  A span of time for people: 45s, 12m, 5h, 3d (as kubectl shows ages).
static char *
s_span (uint64_t ms, char *out, size_t size)
{
    uint64_t seconds = ms / 1000;
    if (seconds < 120)
        snprintf (out, size, "%" PRIu64 "s", seconds);
    else
    if (seconds < 2 * 3600)
        snprintf (out, size, "%" PRIu64 "m", seconds / 60);
    else
    if (seconds < 48 * 3600)
        snprintf (out, size, "%" PRIu64 "h", seconds / 3600);
    else
        snprintf (out, size, "%" PRIu64 "d", seconds / 86400);
    return out;
}

//  Say on stderr that a view was cut short, and how to see more.
static void
s_cut_note (const char *what, size_t shown, uint64_t total, const char *how)
{
    if (total > shown)
        fprintf (stderr, "drover: showing %zu of %" PRIu64 " %s%s\n", shown, total, what, how);
}

//  The job states drover jobs --state takes, and their filters.
static const struct {
    const char *name;
    drover_jobs_filter_t filter;
} s_job_states [] = {
    {"any", DROVER_JOBS_ANY},         {"queued", DROVER_JOBS_QUEUED},
    {"delayed", DROVER_JOBS_DELAYED}, {"running", DROVER_JOBS_RUNNING},
    {"succeeded", DROVER_JOBS_SUCCEEDED}, {"failed", DROVER_JOBS_FAILED},
    {"finished", DROVER_JOBS_FINISHED},
};

//  drover jobs [--function F] [--state S] [--limit N] [--newest]
static int
s_jobs (drover_client_t *client, const drover_jobs_query_t *query)
{
    drover_job_info_t *jobs = NULL;
    size_t count = 0;
    uint64_t total = 0;
    if (drover_client_jobs (client, query, &jobs, &count, &total) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    static const char *const header [] = {"ID", "FUNCTION", "STATE", "PRIO", "ATTEMPTS",
                                          "WORKER", "AGE"};
    static const bool right [] = {true, false, false, true, true, false, true};
    s_table_t table = {.ncols = 7, .header = header, .right = right};
    for (size_t i = 0; i < count; i++) {
        drover_job_info_t *job = &jobs [i];
        if (s_json) {
            drv_json_job (stdout, job);
            continue;
        }
        char id [24], state [64], priority [16], attempts [16], age [24];
        snprintf (id, sizeof id, "%" PRIu64, job->job_id);
        if (job->outcome && job->outcome != DROVER_OUTCOME_OK)
            snprintf (state, sizeof state, "%s (%s)", drv_json_job_state (job),
                      drover_outcome_name (job->outcome));
        else
            snprintf (state, sizeof state, "%s", drv_json_job_state (job));
        snprintf (priority, sizeof priority, "%d", job->priority);
        snprintf (attempts, sizeof attempts, "%u", job->attempts);
        const char *cells [] = {id, job->function, state, priority, attempts,
                                *job->worker ? job->worker : "-",
                                s_span (job->age_ms, age, sizeof age)};
        s_table_row (&table, cells);
    }
    if (!s_json)
        s_table_print (&table);
    s_cut_note ("jobs", count, total, "; narrow with --function and --state, or raise --limit");
    drover_jobs_destroy (&jobs);
    return 0;
}

//  drover workers
static int
s_workers (drover_client_t *client)
{
    drover_worker_info_t *workers = NULL;
    size_t count = 0, total = 0;
    if (drover_client_workers (client, &workers, &count, &total) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    static const char *const header [] = {"NAME", "IDENTITY", "FUNCTIONS", "SLOTS", "RUNNING",
                                          "DONE", "CONNECTED", "HEARD"};
    static const bool right [] = {false, false, false, true, true, true, true, true};
    s_table_t table = {.ncols = 8, .header = header, .right = right};
    for (size_t i = 0; i < count; i++) {
        drover_worker_info_t *worker = &workers [i];
        if (s_json) {
            drv_json_worker (stdout, worker);
            continue;
        }
        char functions [1024] = "", slots [16], running [16], done [24], since [24], heard [24];
        for (size_t f = 0; f < worker->nfunctions; f++) {
            size_t used = strlen (functions);
            snprintf (functions + used, sizeof functions - used, "%s%s", f ? "," : "",
                      worker->functions [f]);
        }
        snprintf (slots, sizeof slots, "%u", worker->slots);
        snprintf (running, sizeof running, "%u", worker->running);
        snprintf (done, sizeof done, "%" PRIu64, worker->done);
        const char *cells [] = {worker->name, worker->identity, functions, slots, running, done,
                                s_span (worker->connected_ms, since, sizeof since),
                                s_span (worker->heard_ms, heard, sizeof heard)};
        s_table_row (&table, cells);
    }
    if (!s_json)
        s_table_print (&table);
    s_cut_note ("workers", count, total, " (the reply is cut at the broker's --max-message)");
    drover_workers_destroy (&workers, count);
    return 0;
}

//  drover queues
static int
s_queues (drover_client_t *client)
{
    drover_queue_t *queues = NULL;
    size_t count = 0, total = 0;
    if (drover_client_queues (client, &queues, &count, &total) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    static const char *const header [] = {"FUNCTION", "QUEUED", "DELAYED", "RUNNING", "LIMIT",
                                          "PAUSED", "MAX-QUEUE", "WORKERS"};
    static const bool right [] = {false, true, true, true, true, false, true, true};
    s_table_t table = {.ncols = 8, .header = header, .right = right};
    for (size_t i = 0; i < count; i++) {
        drover_queue_t *queue = &queues [i];
        if (s_json) {
            drv_json_queue (stdout, queue);
            continue;
        }
        char queued [24], delayed [24], running [24], limit [16] = "-", max_queue [24],
            workers [16];
        snprintf (queued, sizeof queued, "%" PRIu64, queue->queued);
        snprintf (delayed, sizeof delayed, "%" PRIu64, queue->delayed);
        snprintf (running, sizeof running, "%" PRIu64, queue->running);
        if (queue->limit)
            snprintf (limit, sizeof limit, "%u", queue->limit);
        snprintf (max_queue, sizeof max_queue, "%" PRIu64, queue->max_queue_in_force);
        snprintf (workers, sizeof workers, "%u", queue->workers);
        const char *cells [] = {queue->function, queued, delayed, running, limit,
                                queue->paused ? "yes" : "no", max_queue, workers};
        s_table_row (&table, cells);
    }
    if (!s_json)
        s_table_print (&table);
    s_cut_note ("functions", count, total, " (the reply is cut at the broker's --max-message)");
    drover_queues_destroy (&queues);
    return 0;
}

//  drover stats [--prometheus]
static int
s_stats (drover_client_t *client, bool prometheus)
{
    if (prometheus) {
        char *text = drover_client_metrics (client);
        if (!text) {
            fprintf (stderr, "drover: %s\n", drover_client_error (client));
            return S_EXIT_BROKER;
        }
        fputs (text, stdout);
        free (text);
        return 0;
    }
    drover_stats_t stats;
    if (drover_client_stats (client, &stats) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        return S_EXIT_BROKER;
    }
    if (s_json) {
        drv_json_stats (stdout, &stats);
        return 0;
    }
    const drover_stats_t *s = &stats;
    char uptime [24];
    printf ("uptime               %s\n", s_span (s->uptime_ms, uptime, sizeof uptime));
    printf ("jobs submitted       %" PRIu64 "\n", s->submitted);
    printf ("jobs dispatched      %" PRIu64 "  (each attempt)\n", s->dispatched);
    printf ("jobs succeeded       %" PRIu64 "\n", s->succeeded);
    printf ("jobs failed          %" PRIu64 "\n", s->failed);
    printf ("jobs cancelled       %" PRIu64 "\n", s->cancelled);
    printf ("jobs retried         %" PRIu64 "\n", s->retried);
    printf ("jobs requeued        %" PRIu64 "  (their worker left)\n", s->requeued);
    printf ("results redelivered  %" PRIu64 "\n", s->redelivered);
    printf ("requests refused     %" PRIu64 "  (malformed %" PRIu64 ", too large %" PRIu64
            ")\n",
            s->rejected, s->malformed, s->too_large);
    printf ("connections cut      %" PRIu64 "\n", s->cut);
    printf ("clients connected    %u\n", s->clients);
    printf ("workers connected    %u\n", s->workers);
    printf ("functions            %u\n", s->functions);
    printf ("jobs held            %" PRIu64 "  (dead letters %" PRIu64 ")\n", s->jobs, s->dead);
    printf ("bytes held           %" PRIu64 "\n", s->bytes);
    printf ("heap in use          %" PRIu64 "\n", s->heap);
    if (s->durable)
        printf ("store commits        %" PRIu64 "\n", s->commits);
    else
        printf ("store commits        -  (no --data)\n");
    return 0;
}

//  Local mode: start a broker and a worker here offering the functions,
//  with jobs slots (0: one per CPU). 0, or an exit status after saying
//  what is wrong (nothing left running).
static int
s_local_start (drv_local_t **here_p, const char **functions, size_t nfunctions, long jobs,
               const char *function)
{
    if (jobs == 0) {
        long cpus = sysconf (_SC_NPROCESSORS_ONLN);
        jobs = cpus > 0 ? cpus : 1;
    }
    //  The broker and worker would log to stderr as the daemons do; the
    //  results and their reasons are what a person wants to see here.
    drover_set_logstream (NULL);
    drv_local_t *here = drv_local_new ((unsigned) jobs);
    if (!here) {
        fprintf (stderr, "drover: cannot make a directory for the local broker: %s\n",
                 strerror (errno));
        return S_EXIT_BROKER;
    }
    for (size_t i = 0; i < nfunctions; i++)
        if (drv_local_add_function (here, functions [i]) == -1) {
            fprintf (stderr, "drover: --function %s: %s\n", functions [i], drv_local_error (here));
            drv_local_destroy (&here);
            return S_EXIT_USAGE;
        }
    if (!drv_local_offers (here, function)) {
        fprintf (stderr, "drover: no --function offers '%s'\n", function);
        drv_local_destroy (&here);
        return S_EXIT_USAGE;
    }
    if (drv_local_start (here) == -1) {
        fprintf (stderr, "drover: %s\n", drv_local_error (here));
        drv_local_destroy (&here);
        return S_EXIT_BROKER;
    }
    *here_p = here;
    return 0;
}

//  Local mode: wait until the local worker offers function, so that the
//  job never waits on a worker that is still starting.
static int
s_local_wait (drover_client_t *client, const char *function)
{
    int64_t deadline = zclock_mono () + 30000;
    drover_queue_t queue;
    while (!zsys_interrupted && zclock_mono () < deadline) {
        if (drover_client_queue (client, function, &queue) == -1)
            break;
        if (queue.workers > 0)
            return 0;
        zclock_sleep (10);
    }
    fprintf (stderr, "drover: %s\n",
             zsys_interrupted ? "interrupted" : "the local worker did not start");
    return -1;
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        {"broker", required_argument, 0, 'b'},
        {"data", required_argument, 0, 'd'},
        {"timeout", required_argument, 0, 't'},
        {"retries", required_argument, 0, 'r'},
        {"priority", required_argument, 0, 'p'},
        {"delay", required_argument, 0, 'D'},
        {"unique", required_argument, 0, 'U'},
        {"detach", no_argument, 0, 'X'},
        {"function", required_argument, 0, 'f'},
        {"jobs", required_argument, 0, 'j'},
        {"unordered", no_argument, 0, 'O'},
        {"chunk-size", required_argument, 0, 'C'},
        {"curve-secret", required_argument, 0, 'S'},
        {"broker-key", required_argument, 0, 'K'},
        {"json", no_argument, 0, 'J'},
        {"state", required_argument, 0, 258},
        {"limit", required_argument, 0, 259},
        {"newest", no_argument, 0, 260},
        {"prometheus", no_argument, 0, 261},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    drover_tune_malloc ();
    const char *broker = getenv ("DROVER_BROKER");
    const char *curve_secret = getenv ("DROVER_CURVE_SECRET");
    const char *broker_key = getenv ("DROVER_BROKER_KEY");
    const char *data = NULL;
    drover_options_t task_options = {0};
    int opt;
    bool steered = false;           //  --unique or --detach: submit only
    const char *functions [64];     //  --function definitions, local mode
    size_t nfunctions = 0;          //  entries in functions
    long jobs = 0;                  //  -j, local mode; 0: not given
    bool unordered = false;         //  map: print results as they come
    drover_jobs_query_t query = {0};    //  drover jobs: which
    bool filtered = false;          //  --state, --limit or --newest given
    bool prometheus = false;        //  stats: the Prometheus text
    size_t chunk_size = 1;          //  map: input lines per job
    while ((opt = getopt_long (argc, argv, "b:d:t:r:p:f:j:hV", options, NULL)) != -1) {
        switch (opt) {
            case 'b': broker = optarg; break;
            case 'f':
                if (nfunctions == sizeof functions / sizeof functions [0]) {
                    fprintf (stderr, "drover: at most 64 --function definitions\n");
                    return S_EXIT_USAGE;
                }
                functions [nfunctions++] = optarg;
                break;
            case 'j': {
                char *end;
                jobs = strtol (optarg, &end, 10);
                if (*end || end == optarg || jobs < 1 || jobs > 4096) {
                    fprintf (stderr, "drover: -j wants 1 to 4096 tasks at once, not '%s'\n",
                             optarg);
                    return S_EXIT_USAGE;
                }
                break;
            }
            case 'S': curve_secret = optarg; break;
            case 'K': broker_key = optarg; break;
            case 'd': data = optarg; break;
            case 't': {
                char *end;
                unsigned long value = strtoul (optarg, &end, 10);
                if (*end || end == optarg || *optarg == '-' || value > UINT32_MAX) {
                    fprintf (stderr, "drover: --timeout wants milliseconds, not '%s'\n", optarg);
                    return S_EXIT_USAGE;
                }
                task_options.timeout_ms = (uint32_t) value;
                break;
            }
            case 'r': {
                char *end;
                unsigned long value = strtoul (optarg, &end, 10);
                if (*end || end == optarg || *optarg == '-' || value > 1000) {
                    fprintf (stderr, "drover: --retries wants 0 to 1000, not '%s'\n", optarg);
                    return S_EXIT_USAGE;
                }
                task_options.retries = (uint32_t) value;
                break;
            }
            case 'p': {
                char *end;
                errno = 0;
                long value = strtol (optarg, &end, 10);
                if (errno || *end || end == optarg || value < INT32_MIN || value > INT32_MAX) {
                    fprintf (stderr, "drover: --priority wants a whole number, not '%s'\n",
                             optarg);
                    return S_EXIT_USAGE;
                }
                task_options.priority = (int32_t) value;
                break;
            }
            case 'D': {
                char *end;
                errno = 0;
                unsigned long long value = strtoull (optarg, &end, 10);
                if (errno || *end || end == optarg || *optarg == '-'
                    || value > 366ULL * 24 * 3600 * 1000) {
                    fprintf (stderr, "drover: --delay wants milliseconds (up to 366 days), "
                                     "not '%s'\n",
                             optarg);
                    return S_EXIT_USAGE;
                }
                task_options.delay_ms = value;
                break;
            }
            case 'U':
                if (!*optarg || strlen (optarg) > 255) {
                    fprintf (stderr, "drover: --unique wants a key of 1 to 255 bytes\n");
                    return S_EXIT_USAGE;
                }
                task_options.unique = optarg;
                steered = true;
                break;
            case 'O':
                unordered = true;
                break;
            case 'C': {
                char *end;
                unsigned long value = strtoul (optarg, &end, 10);
                if (*end || end == optarg || *optarg == '-' || value < 1
                    || value > DROVER_CHUNK_SIZE_MAX) {
                    fprintf (stderr, "drover: --chunk-size wants 1 to %d lines per job, not "
                                     "'%s'\n",
                             DROVER_CHUNK_SIZE_MAX, optarg);
                    return S_EXIT_USAGE;
                }
                chunk_size = value;
                break;
            }
            case 'J':
                s_json = true;
                break;
            case 'X':
                task_options.detach = true;
                steered = true;
                break;
            case 258: {
                size_t i, n = sizeof s_job_states / sizeof s_job_states [0];
                for (i = 0; i < n && !streq (s_job_states [i].name, optarg); i++)
                    ;
                if (i == n) {
                    fprintf (stderr, "drover: --state wants queued, delayed, running, succeeded, "
                                     "failed, finished or any, not '%s'\n",
                             optarg);
                    return S_EXIT_USAGE;
                }
                query.state = s_job_states [i].filter;
                filtered = true;
                break;
            }
            case 259: {
                char *end;
                unsigned long value = strtoul (optarg, &end, 10);
                if (*end || end == optarg || *optarg == '-' || value < 1 || value > 10000) {
                    fprintf (stderr, "drover: --limit wants 1 to 10000 jobs, not '%s'\n", optarg);
                    return S_EXIT_USAGE;
                }
                query.limit = (uint32_t) value;
                filtered = true;
                break;
            }
            case 260:
                query.newest_first = true;
                filtered = true;
                break;
            case 261:
                prometheus = true;
                break;
            case 'h': s_usage (stdout); return 0;
            case 'V':
                printf ("drover %d.%d.%d (protocol %d)\n", DROVER_VERSION_MAJOR,
                        DROVER_VERSION_MINOR, DROVER_VERSION_PATCH, DROVER_PROTOCOL_VERSION);
                return 0;
            default:
                fprintf (stderr, "Try 'drover --help'.\n");
                return S_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return S_EXIT_USAGE;
    }
    const char *command = argv [optind];
    int args = argc - optind - 1;
    if (streq (command, "keygen")) {
        if (args != 1) {
            fprintf (stderr, "drover: keygen takes one argument, the path of the new "
                             "certificate (PATH_secret is written beside it)\n");
            return S_EXIT_USAGE;
        }
        char err [512];
        if (drover_keygen (argv [optind + 1], err, sizeof err) == -1) {
            fprintf (stderr, "drover: %s\n", err);
            return S_EXIT_FAILED;
        }
        printf ("public certificate: %s\nsecret certificate: %s_secret (keep it private)\n",
                argv [optind + 1], argv [optind + 1]);
        return 0;
    }
    bool by_id = streq (command, "status") || streq (command, "cancel")
                 || streq (command, "wait");
    bool dead = streq (command, "dead");
    bool counted = streq (command, "limit") || streq (command, "max-queue");
    bool queue = counted || streq (command, "pause") || streq (command, "resume")
                 || streq (command, "queue");
    bool view = streq (command, "jobs") || streq (command, "workers")
                || streq (command, "queues") || streq (command, "stats");
    bool known = streq (command, "submit") || streq (command, "map") || by_id || dead || queue
                 || view;
    if (!known) {
        fprintf (stderr, "drover: unknown command '%s'; the commands are submit, map, wait, "
                         "status, cancel, dead, limit, pause, resume, max-queue, queue, jobs, "
                         "workers, queues, stats and keygen\n",
                 command);
        return S_EXIT_USAGE;
    }
    if (view && args != 0) {
        fprintf (stderr, "drover: %s takes no arguments; try --help\n", command);
        return S_EXIT_USAGE;
    }
    if ((filtered || nfunctions) && streq (command, "jobs")) {
        if (nfunctions > 1) {
            fprintf (stderr, "drover: jobs takes one --function to list\n");
            return S_EXIT_USAGE;
        }
        query.function = nfunctions ? functions [0] : NULL;
        nfunctions = 0;
    }
    else
    if (filtered) {
        fprintf (stderr, "drover: --state, --limit and --newest go with jobs only\n");
        return S_EXIT_USAGE;
    }
    if (prometheus && !streq (command, "stats")) {
        fprintf (stderr, "drover: --prometheus goes with stats only\n");
        return S_EXIT_USAGE;
    }
    if (counted && args != 2) {
        fprintf (stderr, "drover: %s takes two arguments (FUNCTION %s); try --help\n", command,
                 streq (command, "limit") ? "K" : "N");
        return S_EXIT_USAGE;
    }
    if (args != 1 && !dead && !counted && !view) {
        fprintf (stderr, "drover: %s takes one argument (%s); try --help\n", command,
                 by_id ? "JOB_ID" : "FUNCTION");
        return S_EXIT_USAGE;
    }
    if (data && !streq (command, "submit")) {
        fprintf (stderr, "drover: --data goes with submit only\n");
        return S_EXIT_USAGE;
    }
    if (chunk_size > 1 && !streq (command, "map")) {
        fprintf (stderr, "drover: --chunk-size goes with map only\n");
        return S_EXIT_USAGE;
    }
    if (steered && !streq (command, "submit")) {
        fprintf (stderr, "drover: --unique and --detach go with submit only\n");
        return S_EXIT_USAGE;
    }
    bool tasks = streq (command, "submit") || streq (command, "map");
    if ((task_options.priority || task_options.delay_ms) && !tasks) {
        fprintf (stderr, "drover: --priority and --delay go with submit and map only\n");
        return S_EXIT_USAGE;
    }
    uint64_t job_id = 0;
    if (by_id && !(job_id = s_job_id (argv [optind + 1])))
        return S_EXIT_USAGE;
    bool local = !broker || !*broker;
    if (local && !tasks) {
        fprintf (stderr, "drover: no broker given: use --broker tcp://HOST:PORT or set "
                         "DROVER_BROKER (only submit and map run without one)\n");
        return S_EXIT_USAGE;
    }
    if (!local && (nfunctions || jobs)) {
        fprintf (stderr, "drover: --function and -j are for local mode, without a broker\n");
        return S_EXIT_USAGE;
    }
    const char *arg = argv [optind + 1];
    if (local && !nfunctions) {
        fprintf (stderr, "drover: no broker given and no --function to run '%s' here: use "
                         "--function '%s=exec:PROGRAM' for local mode, or --broker or "
                         "DROVER_BROKER\n",
                 arg, arg);
        return S_EXIT_USAGE;
    }
    if (local && task_options.detach) {
        fprintf (stderr, "drover: --detach needs a broker: in local mode the job ends with "
                         "drover\n");
        return S_EXIT_USAGE;
    }
    zsys_init ();
    zsys_set_logident ("drover");
    drv_local_t *here = NULL;
    if (local) {
        int status = s_local_start (&here, functions, nfunctions, jobs, arg);
        if (status)
            return status;
        broker = drv_local_endpoint (here);
    }
    drover_client_t *client = drover_client_new (broker);
    if (!client) {
        fprintf (stderr, "drover: '%s' is not a broker endpoint (e.g. tcp://127.0.0.1:7700)\n",
                 broker);
        drv_local_destroy (&here);
        return S_EXIT_USAGE;
    }
    if (curve_secret && !*curve_secret)
        curve_secret = NULL;
    if (broker_key && !*broker_key)
        broker_key = NULL;
    if (!curve_secret != !broker_key) {
        fprintf (stderr, "drover: CURVE needs both --curve-secret and --broker-key (or "
                         "DROVER_CURVE_SECRET and DROVER_BROKER_KEY)\n");
        drover_client_destroy (&client);
        return S_EXIT_USAGE;
    }
    if (curve_secret && drover_client_set_curve (client, curve_secret, broker_key) == -1) {
        fprintf (stderr, "drover: %s\n", drover_client_error (client));
        drover_client_destroy (&client);
        return S_EXIT_USAGE;
    }
    drover_client_set_notice (client, s_notice, NULL);
    drover_client_set_ack_timeout (client, 10000);
    if ((streq (command, "submit") || streq (command, "wait")) && isatty (STDERR_FILENO))
        drover_client_set_progress (client, s_show_progress, NULL);
    int status = 0;
    if (here && s_local_wait (client, arg) == -1)
        status = S_EXIT_BROKER;
    else
    if (dead)
        status = s_dead (client, args, argv + optind + 1);
    else
    if (streq (command, "submit"))
        status = s_submit (client, arg, data, &task_options);
    else
    if (streq (command, "map"))
        status = s_map (client, arg, &task_options, unordered, chunk_size);
    else
    if (queue)
        status = s_queue (client, command, arg, counted ? argv [optind + 2] : NULL);
    else
    if (streq (command, "jobs"))
        status = s_jobs (client, &query);
    else
    if (streq (command, "workers"))
        status = s_workers (client);
    else
    if (streq (command, "queues"))
        status = s_queues (client);
    else
    if (streq (command, "stats"))
        status = s_stats (client, prometheus);
    else
    if (streq (command, "wait"))
        status = s_wait (client, job_id);
    else
        status = s_status (client, job_id, streq (command, "cancel"));
    drover_client_destroy (&client);
    drv_local_destroy (&here);
    return status;
}
