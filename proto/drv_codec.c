/*  drv_codec - drover's own message structs and their wire form.

    Decode: size check, protobuf-c unpack, then one pass that validates
    each field. Strings and bytes are not copied again: protobuf-c has
    already copied each into a block of its own, and the unpacked message
    lives as long as the drv_msg_t that points into it. The unpack
    allocator gives every block one zeroed byte more, so bytes end in a
    NUL as strings do. The arrays of our own structs come from a single
    arena, sized once up front. A payload is thus copied once on its way
    in (out of the frame, by protobuf-c) instead of twice; a payload that
    came in a frame of its own (drv_codec_decode_frames) not at all.

    Encode: protobuf-c structs that point into the caller's data, packed
    straight into a frame of the exact size.
*/

#include "drv_codec.h"

#include <protobuf-c/protobuf-c.h>

#include "drover.pb-c.h"

//  Bump allocator over one block; see the note at the top.
typedef struct {
    char *base;                  //  the block
    size_t used;                 //  bytes handed out
    size_t cap;                  //  bytes in the block
} s_arena_t;

static void *
s_arena_alloc (s_arena_t *arena, size_t size)
{
    size_t start = (arena->used + 7) & ~(size_t) 7;
    if (start > arena->cap || size > arena->cap - start)
        return NULL;
    arena->used = start + size;
    return arena->base + start;
}

//  A bytes or string field of the unpacked envelope, kept where it is:
//  it is followed by a NUL (see s_unpack_alloc) and lives as long as the
//  message. An empty field may have no block at all. The arena is not
//  used; the name stays for the callers' sake.
static const uint8_t *
s_arena_bytes (s_arena_t *arena, const void *data, size_t size)
{
    (void) arena;
    return size && data ? (const uint8_t *) data : (const uint8_t *) "";
}

static const char *
s_arena_string (s_arena_t *arena, const char *text)
{
    return (const char *) s_arena_bytes (arena, text, text ? strlen (text) : 0);
}

//  protobuf-c's allocator for unpacking: one zeroed byte beyond each
//  block, so that a bytes field, which protobuf-c copies into a block of
//  its own, is followed by a NUL.
static void *
s_unpack_alloc (void *data, size_t size)
{
    (void) data;
    uint8_t *block = (uint8_t *) malloc (size + 1);
    if (block)
        block [size] = 0;
    return block;
}

static void
s_unpack_free (void *data, void *block)
{
    (void) data;
    free (block);
}

static ProtobufCAllocator s_unpacker = {
    .alloc = s_unpack_alloc, .free = s_unpack_free, .allocator_data = NULL
};

drv_limits_t
drv_limits_default (void)
{
    drv_limits_t limits = {
        .max_message = 64 * 1024 * 1024,
        .max_payload = 16 * 1024 * 1024,
        .max_batch = 100000,
    };
    return limits;
}

drv_limits_t
drv_limits_from_broker (void)
{
    drv_limits_t limits = {
        .max_message = DRV_LIMIT_CEILING,
        .max_payload = DRV_LIMIT_CEILING,
        .max_batch = 1000000,
    };
    return limits;
}

bool
drv_codec_valid_function (const char *name)
{
    if (!name || !*name)
        return false;
    size_t length = 0;
    for (const char *c = name; *c; c++, length++) {
        if (!(isalnum ((unsigned char) *c) || strchr ("_.:/-", *c)))
            return false;
    }
    return length <= DRV_FUNCTION_MAX;
}

//  Validation failure: format the reason and return the code.
static drover_error_t
s_reject (drover_error_t code, char *err, size_t err_size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    if (err && err_size)
        vsnprintf (err, err_size, format, args);
    va_end (args);
    return code;
}

static bool
s_valid_text (const char *text, size_t max)
{
    return !text || strnlen (text, max + 1) <= max;
}

static drover_error_t
s_check_batch (size_t count, const drv_limits_t *limits, const char *what, char *err,
               size_t err_size)
{
    if (count == 0)
        return s_reject (DROVER_ERR_INVALID, err, err_size, "%s has no entries", what);
    if (count > limits->max_batch)
        return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                         "%s has %zu entries, more than the limit of %zu", what, count,
                         limits->max_batch);
    return DROVER_ERR_NONE;
}

//  Validate and copy one protobuf Result.
static drover_error_t
s_decode_result (const Drover__Result *in, drv_result_t *out, s_arena_t *arena,
                 const drv_limits_t *limits, char *err, size_t err_size)
{
    if (in->outcome < DROVER__OUTCOME__OUTCOME_OK
        || in->outcome > DROVER__OUTCOME__OUTCOME_CANCELLED)
        return s_reject (DROVER_ERR_INVALID, err, err_size, "result for job %" PRIu64
                         " has unknown outcome %d", in->job_id, (int) in->outcome);
    if (in->job_id == 0)
        return s_reject (DROVER_ERR_INVALID, err, err_size, "result has no job id");
    if (in->data.len > limits->max_payload)
        return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                         "result of job %" PRIu64 " is %zu bytes, more than the limit of %zu",
                         in->job_id, in->data.len, limits->max_payload);
    if (!s_valid_text (in->reason, DRV_TEXT_MAX))
        return s_reject (DROVER_ERR_INVALID, err, err_size,
                         "failure reason of job %" PRIu64 " is longer than %d bytes",
                         in->job_id, DRV_TEXT_MAX);
    out->job_id = in->job_id;
    out->tag = in->tag;
    out->outcome = (drover_outcome_t) in->outcome;
    out->data = s_arena_bytes (arena, in->data.data, in->data.len);
    out->size = in->data.len;
    out->reason = s_arena_string (arena, in->reason);
    out->attempts = in->attempts;
    if (!out->data || !out->reason)
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
    return DROVER_ERR_NONE;
}

static drover_error_t
s_decode_results (Drover__Result **in, size_t count, drv_msg_t *msg, s_arena_t *arena,
                  const drv_limits_t *limits, char *err, size_t err_size)
{
    drover_error_t rc = s_check_batch (count, limits, "result batch", err, err_size);
    if (rc)
        return rc;
    msg->results = (drv_result_t *) s_arena_alloc (arena, count * sizeof (drv_result_t));
    if (!msg->results)
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
    msg->nresults = count;
    for (size_t i = 0; i < count; i++) {
        rc = s_decode_result (in [i], &msg->results [i], arena, limits, err, err_size);
        if (rc)
            return rc;
    }
    return DROVER_ERR_NONE;
}

//  Validate one progress report; its partial output stays in the envelope.
static drover_error_t
s_decode_report (const Drover__ProgressReport *in, drv_progress_t *out, s_arena_t *arena,
                 char *err, size_t err_size)
{
    if (in->job_id == 0)
        return s_reject (DROVER_ERR_INVALID, err, err_size, "progress report has no job id");
    if (in->total && in->done > in->total)
        return s_reject (DROVER_ERR_INVALID, err, err_size,
                         "progress of job %" PRIu64 " says %" PRIu64 " done of %" PRIu64,
                         in->job_id, (uint64_t) in->done, (uint64_t) in->total);
    if (in->partial.len > DRV_PROGRESS_PARTIAL_MAX)
        return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                         "partial output of job %" PRIu64 " is %zu bytes, more than %d",
                         in->job_id, in->partial.len, DRV_PROGRESS_PARTIAL_MAX);
    out->job_id = in->job_id;
    out->done = in->done;
    out->total = in->total;
    out->partial = s_arena_bytes (arena, in->partial.data, in->partial.len);
    out->size = in->partial.len;
    if (!out->partial)
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
    return DROVER_ERR_NONE;
}

static drover_error_t
s_decode_progress (const Drover__Progress *in, drv_msg_t *msg, s_arena_t *arena,
                   const drv_limits_t *limits, char *err, size_t err_size)
{
    drover_error_t rc = s_check_batch (in->n_reports, limits, "progress", err, err_size);
    if (rc)
        return rc;
    msg->progress = (drv_progress_t *) s_arena_alloc (arena, in->n_reports * sizeof (drv_progress_t));
    if (!msg->progress)
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
    msg->nprogress = in->n_reports;
    for (size_t i = 0; i < in->n_reports; i++)
        if ((rc = s_decode_report (in->reports [i], &msg->progress [i], arena, err, err_size)))
            return rc;
    return DROVER_ERR_NONE;
}

//  The job id list of a SubmitAck, Status, Ack or Cancel.
static const uint64_t *
s_id_list (const Drover__Envelope *env, size_t *count)
{
    switch (env->body_case) {
        case DROVER__ENVELOPE__BODY_SUBMIT_ACK:
            *count = env->submit_ack->n_job_ids;
            return env->submit_ack->job_ids;
        case DROVER__ENVELOPE__BODY_STATUS:
            *count = env->status->n_job_ids;
            return env->status->job_ids;
        case DROVER__ENVELOPE__BODY_ACK:
            *count = env->ack->n_job_ids;
            return env->ack->job_ids;
        case DROVER__ENVELOPE__BODY_CANCEL:
            *count = env->cancel->n_job_ids;
            return env->cancel->job_ids;
        case DROVER__ENVELOPE__BODY_DEAD:
            *count = env->dead->n_job_ids;
            return env->dead->job_ids;
        default:
            *count = 0;
            return NULL;
    }
}

//  Copy a protobuf QueueInfo into ours; names are checked, counts are
//  taken as they are.
static drover_error_t
s_decode_queue_info (const Drover__QueueInfo *in, drv_queue_info_t *out, s_arena_t *arena,
                     char *err, size_t err_size)
{
    if (!s_valid_text (in->function, DRV_FUNCTION_MAX))
        return s_reject (DROVER_ERR_INVALID, err, err_size,
                         "queue info has an overlong function name");
    *out = (drv_queue_info_t) {
        .function = s_arena_string (arena, in->function),
        .limit = in->limit,
        .paused = in->paused,
        .max_queue = in->max_queue,
        .max_queue_in_force = in->max_queue_in_force,
        .queued = in->queued,
        .delayed = in->delayed,
        .running = in->running,
        .workers = in->workers,
    };
    if (!out->function)
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
    return DROVER_ERR_NONE;
}

//  The admin views (bodies 50 to 57): validate and copy into msg.
static drover_error_t
s_decode_admin (const Drover__Envelope *env, drv_msg_t *msg, s_arena_t *arena,
                const drv_limits_t *limits, char *err, size_t err_size)
{
    drover_error_t rc = DROVER_ERR_NONE;
    switch (env->body_case) {
        case DROVER__ENVELOPE__BODY_JOBS_QUERY: {
            const Drover__JobsQuery *in = env->jobs_query;
            if (in->function && *in->function && !drv_codec_valid_function (in->function))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "function name must be 1 to %d characters of "
                                 "A-Z a-z 0-9 _ . : / -",
                                 DRV_FUNCTION_MAX);
            if ((int) in->state < DROVER_JOBS_ANY || (int) in->state > DROVER_JOBS_FINISHED)
                return s_reject (DROVER_ERR_INVALID, err, err_size, "unknown job filter %d",
                                 (int) in->state);
            if (in->limit > DRV_JOBS_LIMIT_MAX)
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "a job list holds at most %d jobs, not %u", DRV_JOBS_LIMIT_MAX,
                                 in->limit);
            msg->jobs_query.state = (drover_jobs_filter_t) in->state;
            msg->jobs_query.limit = in->limit;
            msg->jobs_query.newest_first = in->newest_first;
            if (in->function && *in->function) {
                msg->jobs_query.function = s_arena_string (arena, in->function);
                if (!msg->jobs_query.function)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_JOB_LIST: {
            const Drover__JobList *in = env->job_list;
            if (in->n_jobs > limits->max_batch)
                return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                 "job list has %zu entries, more than the limit of %zu",
                                 in->n_jobs, limits->max_batch);
            msg->rows = in->n_jobs ? (drv_job_row_t *) s_arena_alloc (
                                         arena, in->n_jobs * sizeof (drv_job_row_t))
                                   : NULL;
            if (in->n_jobs && !msg->rows)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->nrows = in->n_jobs;
            msg->total = in->total;
            for (size_t i = 0; i < in->n_jobs; i++) {
                const Drover__JobRow *row = in->jobs [i];
                if (row->state < DROVER__JOB_STATE__JOB_UNKNOWN
                    || row->state > DROVER__JOB_STATE__JOB_FAILED
                    || row->outcome < DROVER__OUTCOME__OUTCOME_NONE
                    || row->outcome > DROVER__OUTCOME__OUTCOME_CANCELLED)
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "job %" PRIu64 " has an unknown state or outcome",
                                     row->job_id);
                if (!s_valid_text (row->function, DRV_FUNCTION_MAX)
                    || !s_valid_text (row->worker, DRV_NAME_MAX))
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "job list has an overlong name");
                msg->rows [i] = (drv_job_row_t) {
                    .job_id = row->job_id,
                    .function = s_arena_string (arena, row->function),
                    .state = (drover_state_t) row->state,
                    .delayed = row->delayed,
                    .priority = row->priority,
                    .attempts = row->attempts,
                    .worker = s_arena_string (arena, row->worker),
                    .age_ms = row->age_ms,
                    .run_in_ms = row->run_in_ms,
                    .outcome = (drover_outcome_t) row->outcome,
                };
                if (!msg->rows [i].function || !msg->rows [i].worker)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_WORKER_LIST: {
            const Drover__WorkerList *in = env->worker_list;
            if (in->n_workers > limits->max_batch)
                return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                 "worker list has %zu entries, more than the limit of %zu",
                                 in->n_workers, limits->max_batch);
            msg->worker_rows = in->n_workers ? (drv_worker_row_t *) s_arena_alloc (
                                                   arena, in->n_workers * sizeof (drv_worker_row_t))
                                             : NULL;
            if (in->n_workers && !msg->worker_rows)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->nworker_rows = in->n_workers;
            msg->total = in->total;
            for (size_t i = 0; i < in->n_workers; i++) {
                const Drover__WorkerRow *row = in->workers [i];
                drv_worker_row_t *out = &msg->worker_rows [i];
                if (!s_valid_text (row->name, DRV_NAME_MAX) || row->identity.len > DRV_NAME_MAX
                    || row->n_functions > limits->max_batch)
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "worker list has an overlong name or identity");
                *out = (drv_worker_row_t) {
                    .name = s_arena_string (arena, row->name),
                    .identity = s_arena_bytes (arena, row->identity.data, row->identity.len),
                    .identity_size = row->identity.len,
                    .functions = row->n_functions ? (const char **) s_arena_alloc (
                                     arena, row->n_functions * sizeof (char *))
                                                  : NULL,
                    .nfunctions = row->n_functions,
                    .slots = row->slots,
                    .running = row->running,
                    .done = row->done,
                    .connected_ms = row->connected_ms,
                    .heard_ms = row->heard_ms,
                };
                if (!out->name || !out->identity || (row->n_functions && !out->functions))
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
                for (size_t f = 0; f < row->n_functions; f++) {
                    if (!s_valid_text (row->functions [f], DRV_FUNCTION_MAX))
                        return s_reject (DROVER_ERR_INVALID, err, err_size,
                                         "worker list has an overlong function name");
                    out->functions [f] = s_arena_string (arena, row->functions [f]);
                    if (!out->functions [f])
                        return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                         "decoder arena too small");
                }
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_QUEUE_LIST: {
            const Drover__QueueList *in = env->queue_list;
            if (in->n_queues > limits->max_batch)
                return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                 "queue list has %zu entries, more than the limit of %zu",
                                 in->n_queues, limits->max_batch);
            msg->queues = in->n_queues ? (drv_queue_info_t *) s_arena_alloc (
                                             arena, in->n_queues * sizeof (drv_queue_info_t))
                                       : NULL;
            if (in->n_queues && !msg->queues)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->nqueues = in->n_queues;
            msg->total = in->total;
            for (size_t i = 0; i < in->n_queues; i++)
                if ((rc = s_decode_queue_info (in->queues [i], &msg->queues [i], arena, err,
                                               err_size)))
                    return rc;
            break;
        }
        case DROVER__ENVELOPE__BODY_STATS: {
            const Drover__Stats *in = env->stats;
            msg->stats = (drover_stats_t) {
                .uptime_ms = in->uptime_ms,
                .submitted = in->submitted,
                .dispatched = in->dispatched,
                .succeeded = in->succeeded,
                .failed = in->failed,
                .cancelled = in->cancelled,
                .retried = in->retried,
                .requeued = in->requeued,
                .redelivered = in->redelivered,
                .rejected = in->rejected,
                .malformed = in->malformed,
                .too_large = in->too_large,
                .cut = in->cut,
                .clients = in->clients,
                .workers = in->workers,
                .jobs = in->jobs,
                .bytes = in->bytes,
                .heap = in->heap,
                .functions = in->functions,
                .dead = in->dead,
                .durable = in->durable,
                .commits = in->commits,
            };
            break;
        }
        case DROVER__ENVELOPE__BODY_WORKERS_QUERY:
        case DROVER__ENVELOPE__BODY_QUEUES_QUERY:
        case DROVER__ENVELOPE__BODY_STATS_QUERY:
            break;
        default:
            return s_reject (DROVER_ERR_MALFORMED, err, err_size,
                             "envelope has no body this broker knows (field %d)",
                             (int) env->body_case);
    }
    return DROVER_ERR_NONE;
}

//  Validate and copy the envelope's body into msg.
static drover_error_t
s_decode_body (const Drover__Envelope *env, drv_msg_t *msg, s_arena_t *arena,
               const drv_limits_t *limits, char *err, size_t err_size)
{
    drover_error_t rc = DROVER_ERR_NONE;
    switch (env->body_case) {
        case DROVER__ENVELOPE__BODY_SUBMIT: {
            const Drover__Submit *in = env->submit;
            if (!drv_codec_valid_function (in->function))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "function name must be 1 to %d characters of "
                                 "A-Z a-z 0-9 _ . : / -",
                                 DRV_FUNCTION_MAX);
            if (in->retries > 1000)
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "retries must be 0 to 1000, not %u", in->retries);
            if (in->delay_ms > DRV_DELAY_MAX)
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "delay must be at most %" PRIu64 " ms (366 days), not %" PRIu64,
                                 DRV_DELAY_MAX, (uint64_t) in->delay_ms);
            if (!s_valid_text (in->unique, DRV_UNIQUE_MAX))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "unique key is longer than %d bytes", DRV_UNIQUE_MAX);
            if ((rc = s_check_batch (in->n_tasks, limits, "submit", err, err_size)))
                return rc;
            if (in->unique && *in->unique && in->n_tasks != 1)
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "a submit with a unique key has one task, not %zu",
                                 in->n_tasks);
            msg->retries = in->retries;
            msg->delay_ms = in->delay_ms;
            msg->detach = in->detach;
            msg->want_progress = in->progress;
            msg->chunk = in->chunk;
            if (in->unique && *in->unique) {
                msg->unique = s_arena_string (arena, in->unique);
                if (!msg->unique)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            }
            msg->function = s_arena_string (arena, in->function);
            msg->timeout_ms = in->timeout_ms;
            msg->priority = in->priority;
            msg->tasks = (drv_task_t *) s_arena_alloc (arena, in->n_tasks * sizeof (drv_task_t));
            if (!msg->function || !msg->tasks)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->ntasks = in->n_tasks;
            for (size_t i = 0; i < in->n_tasks; i++) {
                const Drover__TaskSpec *spec = in->tasks [i];
                if (spec->payload.len > limits->max_payload)
                    return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                     "payload too large: task %zu is %zu bytes, the limit "
                                     "is %zu",
                                     i, spec->payload.len, limits->max_payload);
                drv_task_t *task = &msg->tasks [i];
                memset (task, 0, sizeof *task);
                task->id = spec->tag;
                task->payload = s_arena_bytes (arena, spec->payload.data, spec->payload.len);
                task->size = spec->payload.len;
                task->framed = spec->payload_frame;
                if (task->framed && task->size)
                    return s_reject (DROVER_ERR_MALFORMED, err, err_size,
                                     "task %zu has a payload frame and a payload inside", i);
                if (!task->payload)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_DISPATCH: {
            const Drover__Dispatch *in = env->dispatch;
            if ((rc = s_check_batch (in->n_tasks, limits, "dispatch", err, err_size)))
                return rc;
            msg->tasks = (drv_task_t *) s_arena_alloc (arena, in->n_tasks * sizeof (drv_task_t));
            if (!msg->tasks)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->ntasks = in->n_tasks;
            for (size_t i = 0; i < in->n_tasks; i++) {
                const Drover__Task *spec = in->tasks [i];
                if (spec->job_id == 0 || !drv_codec_valid_function (spec->function))
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "dispatched task %zu has no job id or a bad function", i);
                if (spec->payload.len > limits->max_payload)
                    return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                     "payload of job %" PRIu64 " is too large", spec->job_id);
                drv_task_t *task = &msg->tasks [i];
                memset (task, 0, sizeof *task);
                task->id = spec->job_id;
                task->function = s_arena_string (arena, spec->function);
                task->payload = s_arena_bytes (arena, spec->payload.data, spec->payload.len);
                task->size = spec->payload.len;
                task->timeout_ms = spec->timeout_ms;
                task->attempt = spec->attempt;
                task->chunk = spec->chunk;
                task->framed = spec->payload_frame;
                if (task->framed && task->size)
                    return s_reject (DROVER_ERR_MALFORMED, err, err_size,
                                     "job %" PRIu64 " has a payload frame and a payload inside",
                                     spec->job_id);
                if (!task->function || !task->payload)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_SUBMIT_ACK:
        case DROVER__ENVELOPE__BODY_STATUS:
        case DROVER__ENVELOPE__BODY_ACK:
        case DROVER__ENVELOPE__BODY_CANCEL:
        case DROVER__ENVELOPE__BODY_DEAD: {
            size_t count = 0;
            const uint64_t *ids = s_id_list (env, &count);
            bool dead = env->body_case == DROVER__ENVELOPE__BODY_DEAD;
            if (dead && (env->dead->op < DROVER__DEAD_OP__DEAD_LIST
                         || env->dead->op > DROVER__DEAD_OP__DEAD_PURGE))
                return s_reject (DROVER_ERR_INVALID, err, err_size, "unknown dead-letter op %d",
                                 (int) env->dead->op);
            if (dead)
                msg->dead_op = (int) env->dead->op;
            //  Dead takes no ids for "every dead job".
            if ((!dead || count) && (rc = s_check_batch (count, limits, "job id list", err, err_size)))
                return rc;
            msg->job_ids = (uint64_t *) s_arena_alloc (arena, (count ? count : 1) * sizeof (uint64_t));
            if (!msg->job_ids)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->njob_ids = count;
            for (size_t i = 0; i < count; i++) {
                if (ids [i] == 0)
                    return s_reject (DROVER_ERR_INVALID, err, err_size, "job id 0 is not valid");
                msg->job_ids [i] = ids [i];
            }
            if (env->body_case == DROVER__ENVELOPE__BODY_SUBMIT_ACK)
                msg->workers = env->submit_ack->workers;
            break;
        }
        case DROVER__ENVELOPE__BODY_RESULTS:
            return s_decode_results (env->results->results, env->results->n_results, msg, arena,
                                     limits, err, err_size);
        case DROVER__ENVELOPE__BODY_DONE:
            return s_decode_results (env->done->results, env->done->n_results, msg, arena,
                                     limits, err, err_size);
        case DROVER__ENVELOPE__BODY_STATUS_REPLY: {
            const Drover__StatusReply *in = env->status_reply;
            if ((rc = s_check_batch (in->n_jobs, limits, "status reply", err, err_size)))
                return rc;
            msg->jobs = (drv_jobinfo_t *) s_arena_alloc (arena, in->n_jobs * sizeof (drv_jobinfo_t));
            if (!msg->jobs)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->njobs = in->n_jobs;
            for (size_t i = 0; i < in->n_jobs; i++) {
                const Drover__JobInfo *info = in->jobs [i];
                drv_jobinfo_t *job = &msg->jobs [i];
                memset (job, 0, sizeof *job);
                if (info->state < DROVER__JOB_STATE__JOB_UNKNOWN
                    || info->state > DROVER__JOB_STATE__JOB_FAILED)
                    return s_reject (DROVER_ERR_INVALID, err, err_size, "unknown job state %d",
                                     (int) info->state);
                if (!s_valid_text (info->function, DRV_FUNCTION_MAX)
                    || !s_valid_text (info->worker, DRV_NAME_MAX))
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "job info has an overlong name");
                job->job_id = info->job_id;
                job->state = (drover_state_t) info->state;
                job->function = s_arena_string (arena, info->function);
                job->worker = s_arena_string (arena, info->worker);
                job->attempts = info->attempts;
                if (!job->function || !job->worker)
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
                if (info->payload.len > limits->max_payload)
                    return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                                     "payload of job %" PRIu64 " is too large", info->job_id);
                if (info->payload.len) {
                    job->payload = s_arena_bytes (arena, info->payload.data, info->payload.len);
                    job->size = info->payload.len;
                    if (!job->payload)
                        return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                         "decoder arena too small");
                }
                job->priority = info->priority;
                job->run_in_ms = info->run_in_ms;
                job->chunk = info->chunk;
                if (info->progress_done || info->progress_total || info->progress_partial.len) {
                    Drover__ProgressReport report = DROVER__PROGRESS_REPORT__INIT;
                    report.job_id = info->job_id ? info->job_id : 1;
                    report.done = info->progress_done;
                    report.total = info->progress_total;
                    report.partial = info->progress_partial;
                    if ((rc = s_decode_report (&report, &job->progress, arena, err, err_size)))
                        return rc;
                    job->has_progress = true;
                }
                if (info->result) {
                    job->has_result = true;
                    if ((rc = s_decode_result (info->result, &job->result, arena, limits, err,
                                               err_size)))
                        return rc;
                }
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_READY: {
            const Drover__Ready *in = env->ready;
            if ((rc = s_check_batch (in->n_functions, limits, "function list", err, err_size)))
                return rc;
            if (in->slots == 0 || in->slots > 100000)
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "slots must be 1 to 100000, not %u", in->slots);
            if (!s_valid_text (in->name, DRV_NAME_MAX))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "worker name is longer than %d bytes", DRV_NAME_MAX);
            msg->functions = (const char **) s_arena_alloc (arena, in->n_functions * sizeof (char *));
            msg->name = s_arena_string (arena, in->name);
            if (!msg->functions || !msg->name)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->nfunctions = in->n_functions;
            msg->slots = in->slots;
            msg->chunks = in->chunks;
            msg->payload_frames = in->frames;
            for (size_t i = 0; i < in->n_functions; i++) {
                if (!drv_codec_valid_function (in->functions [i]))
                    return s_reject (DROVER_ERR_INVALID, err, err_size,
                                     "offered function %zu is not a valid name", i);
                msg->functions [i] = s_arena_string (arena, in->functions [i]);
                if (!msg->functions [i])
                    return s_reject (DROVER_ERR_INTERNAL, err, err_size,
                                     "decoder arena too small");
            }
            break;
        }
        case DROVER__ENVELOPE__BODY_ERROR: {
            const Drover__Error *in = env->error;
            if (!s_valid_text (in->text, DRV_TEXT_MAX))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "error text is longer than %d bytes", DRV_TEXT_MAX);
            msg->code = (int) in->code >= 0 && (int) in->code <= (int) DROVER_ERR_INTERNAL
                            ? (drover_error_t) in->code
                            : DROVER_ERR_INTERNAL;
            msg->text = s_arena_string (arena, in->text);
            if (!msg->text)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            break;
        }
        case DROVER__ENVELOPE__BODY_WAIT:
            if (env->wait->job_id == 0)
                return s_reject (DROVER_ERR_INVALID, err, err_size, "job id 0 is not valid");
            msg->job_ids = (uint64_t *) s_arena_alloc (arena, sizeof (uint64_t));
            if (!msg->job_ids)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            msg->job_ids [0] = env->wait->job_id;
            msg->njob_ids = 1;
            msg->want_progress = env->wait->progress;
            break;
        case DROVER__ENVELOPE__BODY_PROGRESS:
            return s_decode_progress (env->progress, msg, arena, limits, err, err_size);
        case DROVER__ENVELOPE__BODY_QUEUE_CONFIG: {
            const Drover__QueueConfig *in = env->queue_config;
            if (!drv_codec_valid_function (in->function))
                return s_reject (DROVER_ERR_INVALID, err, err_size,
                                 "function name must be 1 to %d characters of "
                                 "A-Z a-z 0-9 _ . : / -",
                                 DRV_FUNCTION_MAX);
            msg->queue = (drv_queue_info_t) {
                .function = s_arena_string (arena, in->function),
                .set_limit = in->set_limit,
                .limit = in->limit,
                .set_paused = in->set_paused,
                .paused = in->paused,
                .set_max_queue = in->set_max_queue,
                .max_queue = in->max_queue,
            };
            if (!msg->queue.function)
                return s_reject (DROVER_ERR_INTERNAL, err, err_size, "decoder arena too small");
            break;
        }
        case DROVER__ENVELOPE__BODY_QUEUE_INFO:
            return s_decode_queue_info (env->queue_info, &msg->queue, arena, err, err_size);
        case DROVER__ENVELOPE__BODY_HEARTBEAT:
        case DROVER__ENVELOPE__BODY_BYE:
            break;
        case DROVER__ENVELOPE__BODY_JOBS_QUERY:
        case DROVER__ENVELOPE__BODY_JOB_LIST:
        case DROVER__ENVELOPE__BODY_WORKERS_QUERY:
        case DROVER__ENVELOPE__BODY_WORKER_LIST:
        case DROVER__ENVELOPE__BODY_QUEUES_QUERY:
        case DROVER__ENVELOPE__BODY_QUEUE_LIST:
        case DROVER__ENVELOPE__BODY_STATS_QUERY:
        case DROVER__ENVELOPE__BODY_STATS:
            return s_decode_admin (env, msg, arena, limits, err, err_size);
        default:
            return s_reject (DROVER_ERR_MALFORMED, err, err_size,
                             "envelope has no body this broker knows (field %d)",
                             (int) env->body_case);
    }
    return DROVER_ERR_NONE;
}

//  How many items an envelope holds, to size the arena.
static size_t
s_item_count (const Drover__Envelope *env)
{
    switch (env->body_case) {
        case DROVER__ENVELOPE__BODY_SUBMIT: return env->submit->n_tasks;
        case DROVER__ENVELOPE__BODY_DISPATCH: return env->dispatch->n_tasks;
        case DROVER__ENVELOPE__BODY_SUBMIT_ACK: return env->submit_ack->n_job_ids;
        case DROVER__ENVELOPE__BODY_STATUS: return env->status->n_job_ids;
        case DROVER__ENVELOPE__BODY_ACK: return env->ack->n_job_ids;
        case DROVER__ENVELOPE__BODY_CANCEL: return env->cancel->n_job_ids;
        case DROVER__ENVELOPE__BODY_DEAD: return env->dead->n_job_ids;
        case DROVER__ENVELOPE__BODY_RESULTS: return env->results->n_results;
        case DROVER__ENVELOPE__BODY_DONE: return env->done->n_results;
        case DROVER__ENVELOPE__BODY_STATUS_REPLY: return env->status_reply->n_jobs;
        case DROVER__ENVELOPE__BODY_READY: return env->ready->n_functions;
        case DROVER__ENVELOPE__BODY_PROGRESS: return env->progress->n_reports;
        case DROVER__ENVELOPE__BODY_JOB_LIST: return env->job_list->n_jobs;
        case DROVER__ENVELOPE__BODY_QUEUE_LIST: return env->queue_list->n_queues;
        case DROVER__ENVELOPE__BODY_WORKER_LIST: {
            //  A row, and each function it offers.
            size_t items = env->worker_list->n_workers;
            for (size_t i = 0; i < env->worker_list->n_workers; i++)
                items += env->worker_list->workers [i]->n_functions;
            return items;
        }
        default: return 0;
    }
}

//  Decode the envelope; framed tasks are left pointing at "".
static drover_error_t
s_decode (const void *data, size_t size, const drv_limits_t *limits, drv_msg_t **msg_p,
          uint64_t *seq_p, char *err, size_t err_size)
{
    assert (msg_p);
    *msg_p = NULL;
    if (seq_p)
        *seq_p = 0;
    drv_limits_t defaults = drv_limits_default ();
    if (!limits)
        limits = &defaults;
    if (size > limits->max_message)
        return s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                         "message of %zu bytes is larger than the limit of %zu", size,
                         limits->max_message);

    Drover__Envelope *env = drover__envelope__unpack (&s_unpacker, size, (const uint8_t *) data);
    if (!env)
        return s_reject (DROVER_ERR_MALFORMED, err, err_size,
                         "message is not a drover protocol envelope");
    if (seq_p)
        *seq_p = env->seq;
    drover_error_t rc = DROVER_ERR_NONE;
    if (env->version != DROVER_PROTOCOL_VERSION) {
        rc = s_reject (DROVER_ERR_BAD_VERSION, err, err_size,
                       "protocol version %u is not spoken here (this side speaks %d)",
                       env->version, DROVER_PROTOCOL_VERSION);
        drover__envelope__free_unpacked (env, &s_unpacker);
        return rc;
    }
    //  Each item copies at most five strings or byte fields, each needing
    //  a NUL and up to 7 bytes of alignment; arrays are at most the size
    //  of a jobinfo per item.
    if (env->instance.len > DRV_INSTANCE_MAX) {
        rc = s_reject (DROVER_ERR_INVALID, err, err_size, "instance id is longer than %d bytes",
                       DRV_INSTANCE_MAX);
        drover__envelope__free_unpacked (env, &s_unpacker);
        return rc;
    }
    size_t items = s_item_count (env);
    //  The admin views' rows fit the same budget per item.
    _Static_assert (sizeof (drv_job_row_t) <= sizeof (drv_jobinfo_t), "job row fits");
    _Static_assert (sizeof (drv_worker_row_t) <= sizeof (drv_jobinfo_t), "worker row fits");
    _Static_assert (sizeof (drv_queue_info_t) <= sizeof (drv_jobinfo_t), "queue info fits");
    size_t cap = 64 + items * (5 * 8 + sizeof (drv_jobinfo_t));
    drv_msg_t *msg = (drv_msg_t *) calloc (1, sizeof (drv_msg_t) + cap);
    if (!msg) {
        drover__envelope__free_unpacked (env, &s_unpacker);
        return s_reject (DROVER_ERR_INTERNAL, err, err_size, "out of memory");
    }
    s_arena_t arena = {.base = (char *) (msg + 1), .used = 0, .cap = cap};
    msg->type = (drv_msg_type_t) env->body_case;
    msg->seq = env->seq;
    msg->arena = env;
    if (env->instance.len) {
        msg->instance = s_arena_bytes (&arena, env->instance.data, env->instance.len);
        msg->instance_size = env->instance.len;
    }
    rc = s_decode_body (env, msg, &arena, limits, err, err_size);
    if (rc) {
        drv_msg_destroy (&msg);
        return rc;
    }
    *msg_p = msg;
    return DROVER_ERR_NONE;
}

drover_error_t
drv_codec_decode_frames (const void *data, size_t size, zframe_t **frames, size_t nframes,
                         const drv_limits_t *limits, drv_msg_t **msg_p, uint64_t *seq_p,
                         char *err, size_t err_size)
{
    assert (msg_p);
    assert (frames || nframes == 0);
    drv_limits_t defaults = drv_limits_default ();
    if (!limits)
        limits = &defaults;
    drover_error_t rc = s_decode (data, size, limits, msg_p, seq_p, err, err_size);
    drv_msg_t *msg = *msg_p;
    size_t framed = 0;
    for (size_t i = 0; msg && i < msg->ntasks; i++)
        framed += msg->tasks [i].framed;
    if (!rc && framed != nframes)
        rc = s_reject (DROVER_ERR_MALFORMED, err, err_size,
                       "%zu payload frames follow the envelope, and %zu tasks say they have one",
                       nframes, framed);
    for (size_t i = 0; !rc && i < nframes; i++)
        if (zframe_size (frames [i]) > limits->max_payload)
            rc = s_reject (DROVER_ERR_TOO_LARGE, err, err_size,
                           "payload frame %zu is %zu bytes, the limit is %zu", i,
                           zframe_size (frames [i]), limits->max_payload);
    if (!rc && nframes) {
        msg->frames = (zframe_t **) malloc (nframes * sizeof (zframe_t *));
        if (!msg->frames)
            rc = s_reject (DROVER_ERR_INTERNAL, err, err_size, "out of memory");
    }
    if (rc) {
        drv_msg_destroy (msg_p);
        for (size_t i = 0; i < nframes; i++)
            zframe_destroy (&frames [i]);
        return rc;
    }
    for (size_t i = 0, next = 0; nframes && i < msg->ntasks; i++) {
        drv_task_t *task = &msg->tasks [i];
        if (!task->framed)
            continue;
        task->frame = next;
        task->payload = zframe_data (frames [next]);
        task->size = zframe_size (frames [next]);
        if (!task->payload)
            task->payload = (const uint8_t *) "";
        msg->frames [next] = frames [next];
        frames [next] = NULL;
        next++;
    }
    msg->nframes = nframes;
    return DROVER_ERR_NONE;
}

drover_error_t
drv_codec_decode (const void *data, size_t size, const drv_limits_t *limits, drv_msg_t **msg_p,
                  uint64_t *seq_p, char *err, size_t err_size)
{
    return drv_codec_decode_frames (data, size, NULL, 0, limits, msg_p, seq_p, err, err_size);
}

zframe_t *
drv_msg_take_frame (drv_msg_t *msg, size_t index)
{
    assert (msg);
    if (index >= msg->ntasks || !msg->tasks [index].framed || !msg->frames)
        return NULL;
    zframe_t *frame = msg->frames [msg->tasks [index].frame];
    msg->frames [msg->tasks [index].frame] = NULL;
    return frame;
}

uint8_t *
drv_msg_take_payload (drv_msg_t *msg, size_t index)
{
    assert (msg);
    Drover__Envelope *env = (Drover__Envelope *) msg->arena;
    if (!env || index >= msg->ntasks)
        return NULL;
    ProtobufCBinaryData *field;
    if (msg->type == DRV_MSG_SUBMIT)
        field = &env->submit->tasks [index]->payload;
    else
    if (msg->type == DRV_MSG_DISPATCH)
        field = &env->dispatch->tasks [index]->payload;
    else
        return NULL;
    uint8_t *block = field->len ? field->data : NULL;
    if (block) {
        field->data = NULL;
        field->len = 0;
        msg->tasks [index].payload = (const uint8_t *) "";
    }
    return block;
}

void
drv_msg_destroy (drv_msg_t **self_p)
{
    assert (self_p);
    drv_msg_t *self = *self_p;
    if (self) {
        if (self->arena)
            drover__envelope__free_unpacked ((Drover__Envelope *) self->arena, &s_unpacker);
        for (size_t i = 0; self->frames && i < self->nframes; i++)
            zframe_destroy (&self->frames [i]);
        free (self->frames);
        free (self);
        *self_p = NULL;
    }
}

//  Fill a protobuf Result from ours; pointers are borrowed.
static void
s_encode_result (const drv_result_t *in, Drover__Result *out)
{
    drover__result__init (out);
    out->job_id = in->job_id;
    out->tag = in->tag;
    out->outcome = (Drover__Outcome) in->outcome;
    out->data.data = (uint8_t *) in->data;
    out->data.len = in->size;
    out->reason = (char *) (in->reason ? in->reason : "");
    out->attempts = in->attempts;
}

//  Pack an envelope into a frame of exactly its size.
static zframe_t *
s_pack (const Drover__Envelope *env)
{
    size_t size = drover__envelope__get_packed_size (env);
    zframe_t *frame = zframe_new (NULL, size);
    if (frame)
        drover__envelope__pack (env, zframe_data (frame));
    return frame;
}

//  Fill a protobuf QueueInfo from ours; pointers are borrowed.
static void
s_encode_queue_info (const drv_queue_info_t *in, Drover__QueueInfo *out)
{
    drover__queue_info__init (out);
    out->function = (char *) (in->function ? in->function : "");
    out->limit = in->limit;
    out->paused = in->paused;
    out->max_queue = in->max_queue;
    out->max_queue_in_force = in->max_queue_in_force;
    out->queued = in->queued;
    out->delayed = in->delayed;
    out->running = in->running;
    out->workers = in->workers;
}

//  Encode an admin view (bodies 50 to 57): their lists need scratch of
//  their own kinds. NULL if out of memory.
static zframe_t *
s_encode_admin (const drv_msg_t *msg, Drover__Envelope *env)
{
    Drover__JobsQuery jobs_query = DROVER__JOBS_QUERY__INIT;
    Drover__JobList job_list = DROVER__JOB_LIST__INIT;
    Drover__WorkersQuery workers_query = DROVER__WORKERS_QUERY__INIT;
    Drover__WorkerList worker_list = DROVER__WORKER_LIST__INIT;
    Drover__QueuesQuery queues_query = DROVER__QUEUES_QUERY__INIT;
    Drover__QueueList queue_list = DROVER__QUEUE_LIST__INIT;
    Drover__StatsQuery stats_query = DROVER__STATS_QUERY__INIT;
    Drover__Stats stats = DROVER__STATS__INIT;
    size_t count = msg->type == DRV_MSG_JOB_LIST      ? msg->nrows
                 : msg->type == DRV_MSG_WORKER_LIST ? msg->nworker_rows
                 : msg->type == DRV_MSG_QUEUE_LIST  ? msg->nqueues
                                                    : 0;
    size_t largest = sizeof (Drover__JobRow);
    if (sizeof (Drover__WorkerRow) > largest)
        largest = sizeof (Drover__WorkerRow);
    if (sizeof (Drover__QueueInfo) > largest)
        largest = sizeof (Drover__QueueInfo);
    void *structs = count ? malloc (count * largest) : NULL;
    void **pointers = count ? (void **) malloc (count * sizeof (void *)) : NULL;
    if (count && (!structs || !pointers)) {
        free (structs);
        free (pointers);
        return NULL;
    }
    bool valid = true;
    switch (msg->type) {
        case DRV_MSG_JOBS_QUERY:
            jobs_query.function =
                (char *) (msg->jobs_query.function ? msg->jobs_query.function : "");
            jobs_query.state = (Drover__JobFilter) msg->jobs_query.state;
            jobs_query.limit = msg->jobs_query.limit;
            jobs_query.newest_first = msg->jobs_query.newest_first;
            env->jobs_query = &jobs_query;
            break;
        case DRV_MSG_JOB_LIST: {
            Drover__JobRow *rows = (Drover__JobRow *) structs;
            for (size_t i = 0; i < msg->nrows; i++) {
                const drv_job_row_t *in = &msg->rows [i];
                drover__job_row__init (&rows [i]);
                rows [i].job_id = in->job_id;
                rows [i].function = (char *) (in->function ? in->function : "");
                rows [i].state = (Drover__JobState) in->state;
                rows [i].delayed = in->delayed;
                rows [i].priority = in->priority;
                rows [i].attempts = in->attempts;
                rows [i].worker = (char *) (in->worker ? in->worker : "");
                rows [i].age_ms = in->age_ms;
                rows [i].run_in_ms = in->run_in_ms;
                rows [i].outcome = (Drover__Outcome) in->outcome;
                pointers [i] = &rows [i];
            }
            job_list.n_jobs = msg->nrows;
            job_list.jobs = (Drover__JobRow **) pointers;
            job_list.total = msg->total;
            env->job_list = &job_list;
            break;
        }
        case DRV_MSG_WORKER_LIST: {
            Drover__WorkerRow *rows = (Drover__WorkerRow *) structs;
            for (size_t i = 0; i < msg->nworker_rows; i++) {
                const drv_worker_row_t *in = &msg->worker_rows [i];
                drover__worker_row__init (&rows [i]);
                rows [i].name = (char *) (in->name ? in->name : "");
                rows [i].identity.data = (uint8_t *) in->identity;
                rows [i].identity.len = in->identity ? in->identity_size : 0;
                rows [i].n_functions = in->nfunctions;
                rows [i].functions = (char **) in->functions;
                rows [i].slots = in->slots;
                rows [i].running = in->running;
                rows [i].done = in->done;
                rows [i].connected_ms = in->connected_ms;
                rows [i].heard_ms = in->heard_ms;
                pointers [i] = &rows [i];
            }
            worker_list.n_workers = msg->nworker_rows;
            worker_list.workers = (Drover__WorkerRow **) pointers;
            worker_list.total = (uint32_t) msg->total;
            env->worker_list = &worker_list;
            break;
        }
        case DRV_MSG_QUEUE_LIST: {
            Drover__QueueInfo *infos = (Drover__QueueInfo *) structs;
            for (size_t i = 0; i < msg->nqueues; i++) {
                s_encode_queue_info (&msg->queues [i], &infos [i]);
                pointers [i] = &infos [i];
            }
            queue_list.n_queues = msg->nqueues;
            queue_list.queues = (Drover__QueueInfo **) pointers;
            queue_list.total = (uint32_t) msg->total;
            env->queue_list = &queue_list;
            break;
        }
        case DRV_MSG_WORKERS_QUERY:
            env->workers_query = &workers_query;
            break;
        case DRV_MSG_QUEUES_QUERY:
            env->queues_query = &queues_query;
            break;
        case DRV_MSG_STATS_QUERY:
            env->stats_query = &stats_query;
            break;
        case DRV_MSG_STATS: {
            const drover_stats_t *in = &msg->stats;
            stats.uptime_ms = in->uptime_ms;
            stats.submitted = in->submitted;
            stats.dispatched = in->dispatched;
            stats.succeeded = in->succeeded;
            stats.failed = in->failed;
            stats.cancelled = in->cancelled;
            stats.retried = in->retried;
            stats.requeued = in->requeued;
            stats.redelivered = in->redelivered;
            stats.rejected = in->rejected;
            stats.malformed = in->malformed;
            stats.too_large = in->too_large;
            stats.cut = in->cut;
            stats.clients = in->clients;
            stats.workers = in->workers;
            stats.jobs = in->jobs;
            stats.bytes = in->bytes;
            stats.heap = in->heap;
            stats.functions = in->functions;
            stats.dead = in->dead;
            stats.durable = in->durable;
            stats.commits = in->commits;
            env->stats = &stats;
            break;
        }
        default:
            valid = false;
    }
    zframe_t *frame = valid ? s_pack (env) : NULL;
    free (structs);
    free (pointers);
    return frame;
}

zframe_t *
drv_codec_encode (const drv_msg_t *msg)
{
    assert (msg);
    Drover__Envelope env = DROVER__ENVELOPE__INIT;
    env.version = DROVER_PROTOCOL_VERSION;
    env.seq = msg->seq;
    env.instance.data = (uint8_t *) msg->instance;
    env.instance.len = msg->instance ? msg->instance_size : 0;
    env.body_case = (Drover__Envelope__BodyCase) msg->type;
    if (msg->type >= DRV_MSG_JOBS_QUERY && msg->type <= DRV_MSG_STATS)
        return s_encode_admin (msg, &env);

    //  Scratch for repeated messages: one array of structs and one of
    //  pointers, sized to the largest list this message has.
    size_t count = msg->ntasks > msg->nresults ? msg->ntasks : msg->nresults;
    if (msg->njobs > count)
        count = msg->njobs;
    if (msg->nprogress > count)
        count = msg->nprogress;
    void *structs = NULL;
    void **pointers = NULL;
    Drover__Result *job_results = NULL;
    if (count) {
        size_t largest = sizeof (Drover__Task) > sizeof (Drover__Result)
                             ? sizeof (Drover__Task)
                             : sizeof (Drover__Result);
        if (sizeof (Drover__JobInfo) > largest)
            largest = sizeof (Drover__JobInfo);
        if (sizeof (Drover__TaskSpec) > largest)
            largest = sizeof (Drover__TaskSpec);
        if (sizeof (Drover__ProgressReport) > largest)
            largest = sizeof (Drover__ProgressReport);
        structs = malloc (count * largest);
        pointers = (void **) malloc (count * sizeof (void *));
        if (!structs || !pointers) {
            free (structs);
            free (pointers);
            return NULL;
        }
    }

    Drover__Submit submit = DROVER__SUBMIT__INIT;
    Drover__SubmitAck submit_ack = DROVER__SUBMIT_ACK__INIT;
    Drover__Results results = DROVER__RESULTS__INIT;
    Drover__Status status = DROVER__STATUS__INIT;
    Drover__Ack ack = DROVER__ACK__INIT;
    Drover__Cancel cancel = DROVER__CANCEL__INIT;
    Drover__Dead dead = DROVER__DEAD__INIT;
    Drover__StatusReply status_reply = DROVER__STATUS_REPLY__INIT;
    Drover__Ready ready = DROVER__READY__INIT;
    Drover__Dispatch dispatch = DROVER__DISPATCH__INIT;
    Drover__Done done = DROVER__DONE__INIT;
    Drover__Progress progress = DROVER__PROGRESS__INIT;
    Drover__Heartbeat heartbeat = DROVER__HEARTBEAT__INIT;
    Drover__Bye bye = DROVER__BYE__INIT;
    Drover__Error error = DROVER__ERROR__INIT;
    Drover__Wait wait = DROVER__WAIT__INIT;
    Drover__QueueConfig queue_config = DROVER__QUEUE_CONFIG__INIT;
    Drover__QueueInfo queue_info = DROVER__QUEUE_INFO__INIT;
    bool valid = true;

    switch (msg->type) {
        case DRV_MSG_SUBMIT: {
            Drover__TaskSpec *specs = (Drover__TaskSpec *) structs;
            for (size_t i = 0; i < msg->ntasks; i++) {
                drover__task_spec__init (&specs [i]);
                specs [i].tag = msg->tasks [i].id;
                specs [i].payload_frame = msg->tasks [i].framed;
                if (!msg->tasks [i].framed) {
                    specs [i].payload.data = (uint8_t *) msg->tasks [i].payload;
                    specs [i].payload.len = msg->tasks [i].size;
                }
                pointers [i] = &specs [i];
            }
            submit.function = (char *) msg->function;
            submit.n_tasks = msg->ntasks;
            submit.tasks = (Drover__TaskSpec **) pointers;
            submit.timeout_ms = msg->timeout_ms;
            submit.priority = msg->priority;
            submit.retries = msg->retries;
            submit.delay_ms = msg->delay_ms;
            submit.unique = (char *) (msg->unique ? msg->unique : "");
            submit.detach = msg->detach;
            submit.progress = msg->want_progress;
            submit.chunk = msg->chunk;
            env.submit = &submit;
            valid = msg->function != NULL;
            break;
        }
        case DRV_MSG_DISPATCH: {
            Drover__Task *tasks = (Drover__Task *) structs;
            for (size_t i = 0; i < msg->ntasks; i++) {
                drover__task__init (&tasks [i]);
                tasks [i].job_id = msg->tasks [i].id;
                tasks [i].function = (char *) msg->tasks [i].function;
                tasks [i].payload_frame = msg->tasks [i].framed;
                if (!msg->tasks [i].framed) {
                    tasks [i].payload.data = (uint8_t *) msg->tasks [i].payload;
                    tasks [i].payload.len = msg->tasks [i].size;
                }
                tasks [i].timeout_ms = msg->tasks [i].timeout_ms;
                tasks [i].attempt = msg->tasks [i].attempt;
                tasks [i].chunk = msg->tasks [i].chunk;
                pointers [i] = &tasks [i];
                valid = valid && tasks [i].function;
            }
            dispatch.n_tasks = msg->ntasks;
            dispatch.tasks = (Drover__Task **) pointers;
            env.dispatch = &dispatch;
            break;
        }
        case DRV_MSG_RESULTS:
        case DRV_MSG_DONE: {
            Drover__Result *out = (Drover__Result *) structs;
            for (size_t i = 0; i < msg->nresults; i++) {
                s_encode_result (&msg->results [i], &out [i]);
                pointers [i] = &out [i];
            }
            if (msg->type == DRV_MSG_RESULTS) {
                results.n_results = msg->nresults;
                results.results = (Drover__Result **) pointers;
                env.results = &results;
            }
            else {
                done.n_results = msg->nresults;
                done.results = (Drover__Result **) pointers;
                env.done = &done;
            }
            break;
        }
        case DRV_MSG_SUBMIT_ACK:
            submit_ack.n_job_ids = msg->njob_ids;
            submit_ack.job_ids = msg->job_ids;
            submit_ack.workers = msg->workers;
            env.submit_ack = &submit_ack;
            break;
        case DRV_MSG_STATUS:
            status.n_job_ids = msg->njob_ids;
            status.job_ids = msg->job_ids;
            env.status = &status;
            break;
        case DRV_MSG_ACK:
            ack.n_job_ids = msg->njob_ids;
            ack.job_ids = msg->job_ids;
            env.ack = &ack;
            break;
        case DRV_MSG_CANCEL:
            cancel.n_job_ids = msg->njob_ids;
            cancel.job_ids = msg->job_ids;
            env.cancel = &cancel;
            break;
        case DRV_MSG_DEAD:
            dead.op = (Drover__DeadOp) msg->dead_op;
            dead.n_job_ids = msg->njob_ids;
            dead.job_ids = msg->job_ids;
            env.dead = &dead;
            break;
        case DRV_MSG_STATUS_REPLY: {
            Drover__JobInfo *infos = (Drover__JobInfo *) structs;
            job_results = (Drover__Result *) calloc (msg->njobs, sizeof (Drover__Result));
            if (!job_results) {
                valid = false;
                break;
            }
            for (size_t i = 0; i < msg->njobs; i++) {
                const drv_jobinfo_t *job = &msg->jobs [i];
                drover__job_info__init (&infos [i]);
                infos [i].job_id = job->job_id;
                infos [i].state = (Drover__JobState) job->state;
                infos [i].function = (char *) (job->function ? job->function : "");
                infos [i].worker = (char *) (job->worker ? job->worker : "");
                infos [i].attempts = job->attempts;
                infos [i].payload.data = (uint8_t *) job->payload;
                infos [i].payload.len = job->payload ? job->size : 0;
                infos [i].priority = job->priority;
                infos [i].run_in_ms = job->run_in_ms;
                infos [i].chunk = job->chunk;
                if (job->has_progress) {
                    infos [i].progress_done = job->progress.done;
                    infos [i].progress_total = job->progress.total;
                    infos [i].progress_partial.data = (uint8_t *) job->progress.partial;
                    infos [i].progress_partial.len = job->progress.partial ? job->progress.size : 0;
                }
                if (job->has_result) {
                    s_encode_result (&job->result, &job_results [i]);
                    infos [i].result = &job_results [i];
                }
                pointers [i] = &infos [i];
            }
            status_reply.n_jobs = msg->njobs;
            status_reply.jobs = (Drover__JobInfo **) pointers;
            env.status_reply = &status_reply;
            break;
        }
        case DRV_MSG_READY:
            ready.n_functions = msg->nfunctions;
            ready.functions = (char **) msg->functions;
            ready.slots = msg->slots;
            ready.name = (char *) (msg->name ? msg->name : "");
            ready.chunks = msg->chunks;
            ready.frames = msg->payload_frames;
            env.ready = &ready;
            break;
        case DRV_MSG_PROGRESS: {
            Drover__ProgressReport *reports = (Drover__ProgressReport *) structs;
            for (size_t i = 0; i < msg->nprogress; i++) {
                const drv_progress_t *in = &msg->progress [i];
                drover__progress_report__init (&reports [i]);
                reports [i].job_id = in->job_id;
                reports [i].done = in->done;
                reports [i].total = in->total;
                reports [i].partial.data = (uint8_t *) in->partial;
                reports [i].partial.len = in->partial ? in->size : 0;
                pointers [i] = &reports [i];
            }
            progress.n_reports = msg->nprogress;
            progress.reports = (Drover__ProgressReport **) pointers;
            env.progress = &progress;
            break;
        }
        case DRV_MSG_HEARTBEAT:
            env.heartbeat = &heartbeat;
            break;
        case DRV_MSG_BYE:
            env.bye = &bye;
            break;
        case DRV_MSG_WAIT:
            wait.job_id = msg->njob_ids ? msg->job_ids [0] : 0;
            wait.progress = msg->want_progress;
            env.wait = &wait;
            valid = msg->njob_ids == 1;
            break;
        case DRV_MSG_QUEUE_CONFIG:
            queue_config.function = (char *) msg->queue.function;
            queue_config.set_limit = msg->queue.set_limit;
            queue_config.limit = msg->queue.limit;
            queue_config.set_paused = msg->queue.set_paused;
            queue_config.paused = msg->queue.paused;
            queue_config.set_max_queue = msg->queue.set_max_queue;
            queue_config.max_queue = msg->queue.max_queue;
            env.queue_config = &queue_config;
            valid = msg->queue.function != NULL;
            break;
        case DRV_MSG_QUEUE_INFO:
            s_encode_queue_info (&msg->queue, &queue_info);
            env.queue_info = &queue_info;
            break;
        case DRV_MSG_ERROR:
            error.code = (Drover__ErrorCode) msg->code;
            error.text = (char *) (msg->text ? msg->text : "");
            env.error = &error;
            break;
        default:
            valid = false;
    }
    zframe_t *frame = valid ? s_pack (&env) : NULL;
    free (job_results);
    free (structs);
    free (pointers);
    return frame;
}

zframe_t *
drv_codec_error (uint64_t seq, drover_error_t code, const char *text)
{
    drv_msg_t msg = {.type = DRV_MSG_ERROR, .seq = seq, .code = code, .text = text};
    return drv_codec_encode (&msg);
}

//  ---------------------------------------------------------------------
//  Chunks: the payload and the result data of a chunked job.

uint8_t *
drv_codec_chunk_pack (size_t count, const void *const *items, const size_t *sizes,
                      size_t *size_p)
{
    ProtobufCBinaryData *fields
        = (ProtobufCBinaryData *) calloc (count ? count : 1, sizeof *fields);
    if (!fields)
        return NULL;
    for (size_t i = 0; i < count; i++)
        fields [i] = (ProtobufCBinaryData) {.len = sizes [i], .data = (uint8_t *) items [i]};
    Drover__Chunk chunk = DROVER__CHUNK__INIT;
    chunk.n_items = count;
    chunk.items = fields;
    size_t size = drover__chunk__get_packed_size (&chunk);
    uint8_t *packed = (uint8_t *) malloc (size ? size : 1);
    if (packed)
        drover__chunk__pack (&chunk, packed);
    free (fields);
    *size_p = size;
    return packed;
}

drv_chunk_t *
drv_codec_chunk_unpack (const void *data, size_t size)
{
    Drover__Chunk *in = drover__chunk__unpack (NULL, size, (const uint8_t *) data);
    if (!in)
        return NULL;
    //  One block: the struct, the arrays, then each item and a NUL.
    size_t bytes = sizeof (drv_chunk_t) + in->n_items * (sizeof (uint8_t *) + sizeof (size_t));
    for (size_t i = 0; i < in->n_items; i++)
        bytes += in->items [i].len + 1;
    drv_chunk_t *chunk = in->n_items ? (drv_chunk_t *) calloc (1, bytes) : NULL;
    if (chunk) {
        chunk->count = in->n_items;
        chunk->items = (const uint8_t **) (chunk + 1);
        chunk->sizes = (size_t *) (chunk->items + in->n_items);
        uint8_t *next = (uint8_t *) (chunk->sizes + in->n_items);
        for (size_t i = 0; i < in->n_items; i++) {
            if (in->items [i].len)
                memcpy (next, in->items [i].data, in->items [i].len);
            next [in->items [i].len] = 0;
            chunk->items [i] = next;
            chunk->sizes [i] = in->items [i].len;
            next += in->items [i].len + 1;
        }
    }
    drover__chunk__free_unpacked (in, NULL);
    return chunk;
}

uint8_t *
drv_codec_chunk_results_pack (const drv_result_t *results, size_t count, size_t *size_p)
{
    Drover__Result *out = (Drover__Result *) calloc (count ? count : 1, sizeof *out);
    Drover__Result **pointers = (Drover__Result **) calloc (count ? count : 1, sizeof *pointers);
    uint8_t *packed = NULL;
    if (out && pointers) {
        for (size_t i = 0; i < count; i++) {
            s_encode_result (&results [i], &out [i]);
            pointers [i] = &out [i];
        }
        Drover__ChunkResults chunk = DROVER__CHUNK_RESULTS__INIT;
        chunk.n_results = count;
        chunk.results = pointers;
        size_t size = drover__chunk_results__get_packed_size (&chunk);
        packed = (uint8_t *) malloc (size ? size : 1);
        if (packed)
            drover__chunk_results__pack (&chunk, packed);
        *size_p = size;
    }
    free (out);
    free (pointers);
    return packed;
}

drv_result_t *
drv_codec_chunk_results_unpack (const void *data, size_t size, size_t *count_p)
{
    Drover__ChunkResults *in
        = drover__chunk_results__unpack (NULL, size, (const uint8_t *) data);
    if (!in)
        return NULL;
    drv_result_t *results = NULL;
    bool valid = in->n_results > 0 && (*count_p == 0 || in->n_results == *count_p);
    size_t count = in->n_results;
    size_t bytes = count * sizeof (drv_result_t);
    for (size_t i = 0; valid && i < count; i++) {
        const Drover__Result *r = in->results [i];
        valid = r->outcome >= DROVER__OUTCOME__OUTCOME_OK
                && r->outcome <= DROVER__OUTCOME__OUTCOME_CANCELLED
                && s_valid_text (r->reason, DRV_TEXT_MAX);
        bytes += r->data.len + 1 + (r->reason ? strlen (r->reason) : 0) + 1;
    }
    if (valid)
        results = (drv_result_t *) calloc (1, bytes);
    if (results) {
        char *next = (char *) (results + count);
        for (size_t i = 0; i < count; i++) {
            const Drover__Result *r = in->results [i];
            const char *reason = r->reason ? r->reason : "";
            size_t length = strlen (reason);
            if (r->data.len)
                memcpy (next, r->data.data, r->data.len);
            next [r->data.len] = 0;
            results [i].data = (const uint8_t *) next;
            results [i].size = r->data.len;
            next += r->data.len + 1;
            memcpy (next, reason, length + 1);
            results [i].reason = next;
            next += length + 1;
            results [i].outcome = (drover_outcome_t) r->outcome;
        }
        *count_p = count;
    }
    drover__chunk_results__free_unpacked (in, NULL);
    return results;
}
