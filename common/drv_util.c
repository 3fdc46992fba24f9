/*  drv_util - small helpers every layer shares. */

#include "drv_util.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>

_Static_assert (sizeof (uintptr_t) >= sizeof (uint64_t), "job ids are stored as pointers");

//  Set once the log stream has been chosen, by us or by the user.
static atomic_bool s_log_chosen;

void
drv_util_log_init (void)
{
    bool expected = false;
    if (atomic_compare_exchange_strong (&s_log_chosen, &expected, true))
        zsys_set_logstream (stderr);
}

void
drover_set_logstream (FILE *stream)
{
    atomic_store (&s_log_chosen, true);
    zsys_set_logstream (stream);
}

void
drover_tune_malloc (void)
{
    if (getenv ("MALLOC_MMAP_THRESHOLD_") || getenv ("MALLOC_TRIM_THRESHOLD_")
        || getenv ("GLIBC_TUNABLES"))
        return;
    mallopt (M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

static size_t
s_u64_hash (const void *key)
{
    //  Fibonacci hashing spreads consecutive ids across buckets.
    return (size_t) ((uint64_t) (uintptr_t) key * 11400714819323198485ull >> 17);
}

static int
s_u64_compare (const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;
    return x < y ? -1 : x > y;
}

zhashx_t *
drv_util_u64_hash_new (void)
{
    zhashx_t *hash = zhashx_new ();
    if (!hash)
        return NULL;
    zhashx_set_key_hasher (hash, s_u64_hash);
    zhashx_set_key_comparator (hash, s_u64_compare);
    zhashx_set_key_duplicator (hash, NULL);
    zhashx_set_key_destructor (hash, NULL);
    return hash;
}

drover_result_t *
drv_util_result_new (uint64_t job_id, drover_outcome_t outcome, const void *data, size_t size,
                     const char *reason, uint32_t attempts)
{
    drover_result_t *self = (drover_result_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->job_id = job_id;
    self->outcome = outcome;
    self->attempts = attempts;
    self->size = size;
    self->data = (uint8_t *) malloc (size + 1);
    self->reason = strdup (reason ? reason : "");
    if (!self->data || !self->reason) {
        drover_result_destroy (&self);
        return NULL;
    }
    if (size)
        memcpy (self->data, data, size);
    self->data [size] = 0;
    return self;
}

void
drover_result_destroy (drover_result_t **self_p)
{
    assert (self_p);
    drover_result_t *self = *self_p;
    if (self) {
        free (self->data);
        free (self->reason);
        free (self);
        *self_p = NULL;
    }
}

int
drv_util_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    (void) arg;
    zmsg_t *msg = zmsg_recv (pipe);
    char *command = msg ? zmsg_popstr (msg) : NULL;
    bool stop = !command || streq (command, "$TERM");
    if (command && streq (command, "PING")) {
        //  The token frames go back as they came.
        if (zmsg_pushstr (msg, "PONG") == 0)
            zmsg_send (&msg, pipe);
    }
    zstr_free (&command);
    zmsg_destroy (&msg);
    return stop ? -1 : 0;
}

bool
drv_util_is_pong (zmsg_t *msg)
{
    zframe_t *first = zmsg_first (msg);
    return first && zframe_streq (first, "PONG");
}

int
drv_util_ping (zactor_t *actor, int timeout_ms, zmsg_t **other_p)
{
    static atomic_uint_fast64_t s_tokens;
    *other_p = NULL;
    char token [24];
    snprintf (token, sizeof token, "%" PRIu64, (uint64_t) atomic_fetch_add (&s_tokens, 1) + 1);
    if (zstr_sendx (actor, "PING", token, NULL) == -1)
        return -1;
    zpoller_t *poller = zpoller_new (actor, NULL);
    if (!poller)
        return -1;
    int64_t deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : 0);
    int rc = -1;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (!zpoller_wait (poller, left > 0 ? (int) left : 0))
            break;
        zmsg_t *msg = zmsg_recv (actor);
        if (!msg)
            break;
        if (!drv_util_is_pong (msg)) {
            *other_p = msg;          //  e.g. a report that the actor stopped
            break;
        }
        //  A PONG for an earlier ping that timed out is dropped.
        char *answer = zmsg_size (msg) == 2 ? zframe_strdup (zmsg_last (msg)) : NULL;
        bool ours = answer && streq (answer, token);
        zstr_free (&answer);
        zmsg_destroy (&msg);
        if (ours) {
            rc = 0;
            break;
        }
    }
    zpoller_destroy (&poller);
    return rc;
}

zmsg_t *
drv_util_wait_report (zactor_t *actor, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (actor, NULL);
    zmsg_t *report = NULL;
    int64_t deadline = zclock_mono () + timeout_ms;
    while (poller && !report) {
        int64_t left = deadline - zclock_mono ();
        if (!zpoller_wait (poller, timeout_ms < 0 ? -1 : left > 0 ? (int) left : 0))
            break;
        report = zmsg_recv (actor);
        if (!report)
            break;
        if (drv_util_is_pong (report))
            zmsg_destroy (&report);  //  a late answer to a ping
    }
    zpoller_destroy (&poller);
    return report;
}

void
drv_util_report_reason (zmsg_t **report_p, const char *fallback, char *error,
                        size_t error_size)
{
    zmsg_t *report = *report_p;
    char *status = zmsg_popstr (report);
    char *reason = zmsg_popstr (report);
    snprintf (error, error_size, "%s", reason ? reason : fallback);
    zstr_free (&status);
    zstr_free (&reason);
    zmsg_destroy (report_p);
}

char *
drv_util_hex (const uint8_t *bytes, size_t length, char *out)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t i = 0; i < length; i++) {
        out [2 * i] = digits [bytes [i] >> 4];
        out [2 * i + 1] = digits [bytes [i] & 15];
    }
    out [2 * length] = 0;
    return out;
}

void
drv_util_strlcpy (char *dst, const char *src, size_t size)
{
    if (!size)
        return;
    size_t length = src ? strnlen (src, size - 1) : 0;
    if (length)
        memcpy (dst, src, length);
    dst [length] = 0;
}

const char *
drover_outcome_name (drover_outcome_t outcome)
{
    switch (outcome) {
        case DROVER_OUTCOME_OK: return "ok";
        case DROVER_OUTCOME_ERROR: return "error";
        case DROVER_OUTCOME_SIGNAL: return "signal";
        case DROVER_OUTCOME_TIMEOUT: return "timeout";
        case DROVER_OUTCOME_NO_HANDLER: return "no handler";
        case DROVER_OUTCOME_LOST: return "lost";
        case DROVER_OUTCOME_CANCELLED: return "cancelled";
        case DROVER_OUTCOME_REFUSED: return "refused";
    }
    return "unknown";
}

const char *
drover_state_name (drover_state_t state)
{
    switch (state) {
        case DROVER_JOB_UNKNOWN: return "unknown";
        case DROVER_JOB_QUEUED: return "queued";
        case DROVER_JOB_RUNNING: return "running";
        case DROVER_JOB_SUCCEEDED: return "succeeded";
        case DROVER_JOB_FAILED: return "failed";
    }
    return "unknown";
}

const char *
drover_error_name (drover_error_t error)
{
    switch (error) {
        case DROVER_ERR_NONE: return "no error";
        case DROVER_ERR_BAD_VERSION: return "unsupported protocol version";
        case DROVER_ERR_MALFORMED: return "malformed message";
        case DROVER_ERR_TOO_LARGE: return "too large";
        case DROVER_ERR_INVALID: return "invalid request";
        case DROVER_ERR_UNKNOWN_JOB: return "unknown job";
        case DROVER_ERR_QUEUE_FULL: return "queue full";
        case DROVER_ERR_UNEXPECTED: return "unexpected message";
        case DROVER_ERR_UNAUTHORIZED: return "unauthorized";
        case DROVER_ERR_INTERNAL: return "internal broker error";
    }
    return "unknown error";
}
