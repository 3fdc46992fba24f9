/*  drv_metrics - the Prometheus text format for the broker's figures.

    Names are drover_<what>, counters end in _total, every family has its
    HELP and TYPE lines and its samples together, and per-function gauges
    carry a function="..." label whose value is escaped as the format
    says (backslash, double quote, line feed).
*/

#include "drv_metrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  One family with one sample.
static void
s_family (FILE *out, const char *name, const char *type, const char *help, uint64_t value)
{
    fprintf (out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
             value);
}

//  A label value, escaped.
static void
s_label (FILE *out, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\')
            fputs ("\\\\", out);
        else
        if (*c == '"')
            fputs ("\\\"", out);
        else
        if (*c == '\n')
            fputs ("\\n", out);
        else
            fputc (*c, out);
    }
}

//  What one per-function gauge shows of a queue.
typedef uint64_t (s_queue_value_fn) (const drover_queue_t *queue);

static uint64_t s_queued (const drover_queue_t *q) { return q->queued; }
static uint64_t s_delayed (const drover_queue_t *q) { return q->delayed; }
static uint64_t s_running (const drover_queue_t *q) { return q->running; }
static uint64_t s_limit (const drover_queue_t *q) { return q->limit; }
static uint64_t s_paused (const drover_queue_t *q) { return q->paused; }
static uint64_t s_max_queue (const drover_queue_t *q) { return q->max_queue_in_force; }
static uint64_t s_workers (const drover_queue_t *q) { return q->workers; }

static void
s_per_function (FILE *out, const char *name, const char *help, s_queue_value_fn *value,
                const drover_queue_t *queues, size_t count)
{
    fprintf (out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (size_t i = 0; i < count; i++) {
        fprintf (out, "%s{function=\"", name);
        s_label (out, queues [i].function);
        fprintf (out, "\"} %" PRIu64 "\n", value (&queues [i]));
    }
}

char *
drv_metrics_text (const drover_stats_t *stats, const drover_queue_t *queues, size_t count,
                  size_t total)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    const drover_stats_t *s = stats;
    fprintf (out, "# HELP drover_uptime_seconds Seconds since the broker started.\n"
                  "# TYPE drover_uptime_seconds gauge\n"
                  "drover_uptime_seconds %" PRIu64 ".%03u\n",
             s->uptime_ms / 1000, (unsigned) (s->uptime_ms % 1000));
    s_family (out, "drover_jobs_submitted_total", "counter",
              "Jobs the broker took (each task of a submit).", s->submitted);
    s_family (out, "drover_jobs_dispatched_total", "counter",
              "Tasks sent to workers (each attempt).", s->dispatched);
    s_family (out, "drover_jobs_succeeded_total", "counter", "Jobs that finished OK.",
              s->succeeded);
    s_family (out, "drover_jobs_failed_total", "counter",
              "Jobs that finished with any other outcome but cancelled.", s->failed);
    s_family (out, "drover_jobs_cancelled_total", "counter", "Jobs cancelled by a client.",
              s->cancelled);
    s_family (out, "drover_jobs_retried_total", "counter",
              "Failed attempts queued again (--retries).", s->retried);
    s_family (out, "drover_jobs_requeued_total", "counter",
              "Running jobs queued again because their worker left or went silent.",
              s->requeued);
    s_family (out, "drover_results_redelivered_total", "counter",
              "Results sent again because the client did not acknowledge them.",
              s->redelivered);
    s_family (out, "drover_requests_rejected_total", "counter",
              "Requests refused with an error, all causes.", s->rejected);
    s_family (out, "drover_messages_malformed_total", "counter",
              "Messages that did not decode (of the rejected).", s->malformed);
    s_family (out, "drover_messages_too_large_total", "counter",
              "Messages over a size limit (of the rejected).", s->too_large);
    s_family (out, "drover_connections_cut_total", "counter",
              "Connections cut by the memory guard (--max-memory).", s->cut);
    s_family (out, "drover_clients_connected", "gauge", "Client connections now, over tcp:// or ipc://.", s->clients);
    s_family (out, "drover_workers_connected", "gauge", "Workers registered now.", s->workers);
    s_family (out, "drover_jobs_held", "gauge",
              "Jobs the broker holds: queued, delayed, running, finished and kept.", s->jobs);
    s_family (out, "drover_job_bytes_held", "gauge",
              "Bytes of jobs held, as --max-bytes counts them.", s->bytes);
    s_family (out, "drover_heap_bytes", "gauge", "Heap in use by the broker process.", s->heap);
    s_family (out, "drover_functions", "gauge", "Function queues the broker knows.",
              s->functions);
    s_family (out, "drover_dead_letters", "gauge", "Jobs that failed for good, kept.", s->dead);
    s_family (out, "drover_durable", "gauge", "1 when the broker keeps jobs on disk (--data).",
              s->durable);
    if (s->durable)
        s_family (out, "drover_store_commits_total", "counter",
                  "Commits to the durable job store (one fsync each).", s->commits);
    if (total > count)
        fprintf (out, "# drover: %zu of %zu functions shown (the reply was cut at the "
                      "broker's --max-message)\n",
                 count, total);
    s_per_function (out, "drover_queue_queued", "Jobs waiting to be dispatched.", s_queued,
                    queues, count);
    s_per_function (out, "drover_queue_delayed",
                    "Jobs waiting for their time (a delay or a retry backoff).", s_delayed,
                    queues, count);
    s_per_function (out, "drover_queue_running", "Jobs running now.", s_running, queues, count);
    s_per_function (out, "drover_queue_limit",
                    "Running at most at once across all workers; 0: no limit.", s_limit, queues,
                    count);
    s_per_function (out, "drover_queue_paused", "1 when the queue is paused.", s_paused, queues,
                    count);
    s_per_function (out, "drover_queue_max_queue", "Jobs waiting at most (the limit in force).",
                    s_max_queue, queues, count);
    s_per_function (out, "drover_queue_workers", "Workers offering the function.", s_workers,
                    queues, count);
    if (fclose (out) != 0) {
        free (text);
        return NULL;
    }
    return text;
}
