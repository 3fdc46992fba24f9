/*  drv_json - JSON lines for `drover --json`; see drv_json.h. */

#include <czmq.h>

#include "drv_json.h"

//  Is data valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF)?
static bool
s_utf8_valid (const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (i < size) {
        uint8_t c = data [i];
        size_t more;
        uint32_t min, code;
        if (c < 0x80) {
            i++;
            continue;
        }
        else
        if ((c & 0xe0) == 0xc0) {
            more = 1;
            min = 0x80;
            code = c & 0x1f;
        }
        else
        if ((c & 0xf0) == 0xe0) {
            more = 2;
            min = 0x800;
            code = c & 0x0f;
        }
        else
        if ((c & 0xf8) == 0xf0) {
            more = 3;
            min = 0x10000;
            code = c & 0x07;
        }
        else
            return false;
        if (size - i - 1 < more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((data [i + k] & 0xc0) != 0x80)
                return false;
            code = code << 6 | (data [i + k] & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

//  A JSON string of valid UTF-8 bytes.
static void
s_string (FILE *out, const uint8_t *data, size_t size)
{
    fputc ('"', out);
    for (size_t i = 0; i < size; i++) {
        uint8_t c = data [i];
        if (c == '"' || c == '\\')
            fprintf (out, "\\%c", c);
        else
        if (c == '\n')
            fputs ("\\n", out);
        else
        if (c == '\t')
            fputs ("\\t", out);
        else
        if (c == '\r')
            fputs ("\\r", out);
        else
        if (c < 0x20 || c == 0x7f)
            fprintf (out, "\\u%04x", c);
        else
            fputc (c, out);
    }
    fputc ('"', out);
}

static void
s_text (FILE *out, const char *text)
{
    const char *safe = text ? text : "";
    size_t size = strlen (safe);
    if (s_utf8_valid ((const uint8_t *) safe, size))
        s_string (out, (const uint8_t *) safe, size);
    else
        //  Not text: say so rather than write invalid JSON.
        s_string (out, (const uint8_t *) "(not UTF-8)", 11);
}

void
drv_json_result (FILE *out, const drover_result_t *result, size_t line)
{
    fputc ('{', out);
    if (line)
        fprintf (out, "\"line\":%zu,", line);
    fprintf (out, "\"job_id\":%" PRIu64 ",\"outcome\":", result->job_id);
    s_text (out, drover_outcome_name (result->outcome));
    if (s_utf8_valid (result->data, result->size)) {
        fputs (",\"data\":", out);
        s_string (out, result->data, result->size);
    }
    else {
        zarmour_t *armour = zarmour_new ();
        char *encoded = armour ? zarmour_encode (armour, result->data, result->size) : NULL;
        fprintf (out, ",\"data_base64\":\"%s\"", encoded ? encoded : "");
        zstr_free (&encoded);
        zarmour_destroy (&armour);
    }
    fputs (",\"reason\":", out);
    s_text (out, result->reason);
    fprintf (out, ",\"attempts\":%u}\n", result->attempts);
}

void
drv_json_job_id (FILE *out, uint64_t job_id)
{
    fprintf (out, "{\"job_id\":%" PRIu64 "}\n", job_id);
}

void
drv_json_status (FILE *out, const drover_status_t *status)
{
    fprintf (out, "{\"job_id\":%" PRIu64 ",\"state\":", status->job_id);
    s_text (out, drover_state_name (status->state));
    fputs (",\"function\":", out);
    s_text (out, status->function);
    fprintf (out, ",\"attempts\":%u,\"priority\":%d", status->attempts, status->priority);
    if (status->outcome) {
        fputs (",\"outcome\":", out);
        s_text (out, drover_outcome_name (status->outcome));
    }
    if (status->state == DROVER_JOB_RUNNING) {
        fputs (",\"worker\":", out);
        s_text (out, status->worker);
    }
    if (status->state == DROVER_JOB_QUEUED && status->run_in_ms)
        fprintf (out, ",\"run_in_ms\":%" PRIu64, status->run_in_ms);
    if (status->has_progress) {
        fprintf (out, ",\"progress\":{\"done\":%" PRIu64 ",\"total\":%" PRIu64 ",\"partial\":",
                 status->progress_done, status->progress_total);
        s_text (out, status->progress_partial);
        fprintf (out, ",\"partial_size\":%zu}", status->progress_size);
    }
    if (status->chunk)
        fputs (",\"chunk\":true", out);
    fputs ("}\n", out);
}

void
drv_json_queue (FILE *out, const drover_queue_t *queue)
{
    fputs ("{\"function\":", out);
    s_text (out, queue->function);
    fprintf (out,
             ",\"paused\":%s,\"limit\":%u,\"max_queue\":%" PRIu64 ",\"max_queue_in_force\":%" PRIu64
             ",\"queued\":%" PRIu64 ",\"delayed\":%" PRIu64 ",\"running\":%" PRIu64
             ",\"workers\":%u}\n",
             queue->paused ? "true" : "false", queue->limit, queue->max_queue,
             queue->max_queue_in_force, queue->queued, queue->delayed, queue->running,
             queue->workers);
}

//  A job's state as the views name it: "delayed" for a queued job that
//  waits for its time.
const char *
drv_json_job_state (const drover_job_info_t *job)
{
    return job->state == DROVER_JOB_QUEUED && job->delayed ? "delayed"
                                                           : drover_state_name (job->state);
}

void
drv_json_job (FILE *out, const drover_job_info_t *job)
{
    fprintf (out, "{\"job_id\":%" PRIu64 ",\"function\":", job->job_id);
    s_text (out, job->function);
    fputs (",\"state\":", out);
    s_text (out, drv_json_job_state (job));
    fprintf (out, ",\"priority\":%d,\"attempts\":%u,\"worker\":", job->priority, job->attempts);
    s_text (out, job->worker);
    fprintf (out, ",\"age_ms\":%" PRIu64 ",\"run_in_ms\":%" PRIu64, job->age_ms, job->run_in_ms);
    if (job->outcome) {
        fputs (",\"outcome\":", out);
        s_text (out, drover_outcome_name (job->outcome));
    }
    fputs ("}\n", out);
}

void
drv_json_worker (FILE *out, const drover_worker_info_t *worker)
{
    fputs ("{\"name\":", out);
    s_text (out, worker->name);
    fputs (",\"identity\":", out);
    s_text (out, worker->identity);
    fputs (",\"functions\":[", out);
    for (size_t i = 0; i < worker->nfunctions; i++) {
        if (i)
            fputc (',', out);
        s_text (out, worker->functions [i]);
    }
    fprintf (out,
             "],\"slots\":%u,\"running\":%u,\"done\":%" PRIu64 ",\"connected_ms\":%" PRIu64
             ",\"heard_ms\":%" PRIu64 "}\n",
             worker->slots, worker->running, worker->done, worker->connected_ms,
             worker->heard_ms);
}

void
drv_json_stats (FILE *out, const drover_stats_t *stats)
{
    const drover_stats_t *s = stats;
    fprintf (out,
             "{\"uptime_ms\":%" PRIu64 ",\"submitted\":%" PRIu64 ",\"dispatched\":%" PRIu64
             ",\"succeeded\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64
             ",\"retried\":%" PRIu64 ",\"requeued\":%" PRIu64 ",\"redelivered\":%" PRIu64
             ",\"rejected\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"too_large\":%" PRIu64
             ",\"cut\":%" PRIu64 ",\"clients\":%u,\"workers\":%u,\"jobs\":%" PRIu64
             ",\"bytes\":%" PRIu64 ",\"heap\":%" PRIu64 ",\"functions\":%u,\"dead\":%" PRIu64
             ",\"durable\":%s",
             s->uptime_ms, s->submitted, s->dispatched, s->succeeded, s->failed, s->cancelled,
             s->retried, s->requeued, s->redelivered, s->rejected, s->malformed, s->too_large,
             s->cut, s->clients, s->workers, s->jobs, s->bytes, s->heap, s->functions, s->dead,
             s->durable ? "true" : "false");
    if (s->durable)
        fprintf (out, ",\"commits\":%" PRIu64, s->commits);
    fputs ("}\n", out);
}
