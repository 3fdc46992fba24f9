/*  drv_client - the client half of libdrover (drover_client_*, drover_imap_*).

    One DEALER to the broker's client endpoint, used synchronously from
    the caller's thread: there is no background thread. Every task gets a
    tag chosen here, unique in this client, before it is sent; results are
    matched by tag, so they can be taken whatever order they come in, and
    a second result for the same tag is dropped (one result per job). The
    broker's job id arrives with the Submit's acknowledgement.

    Submits carry a sequence number that the broker's SubmitAck or Error
    echoes. drover_imap_* pipelines: it sends batches without waiting for
    their acknowledgements (up to a window) and checks them as results
    are taken.

    A socket monitor (drv_handshake) watches the connection: when the
    broker refuses this client (CURVE key not listed, wrong broker key,
    CURVE on one side only), every call that waits on the broker fails
    with DROVER_ERR_UNAUTHORIZED instead of waiting for ever.
*/

#include <errno.h>

#include "drv_auth.h"
#include "drv_codec.h"
#include "drv_handshake.h"
#include "drv_index.h"
#include "drv_metrics.h"
#include "drv_util.h"

//  Tasks per Submit message, and bytes of payload per Submit at most.
#define S_BATCH_TASKS 1024
#define S_BATCH_BYTES (4 * 1024 * 1024)
//  Submits an imap has in flight unacknowledged at most.
#define S_SUBMIT_WINDOW 16
//  Heartbeat interval towards a silent broker, in ms.
#define S_HEARTBEAT_MS 1000
//  A Submit not acknowledged this long is sent again, as it was: ZeroMQ
//  drops what it had queued on a connection that breaks, and the broker
//  knows the tags, so a resend never doubles a job.
#define S_SUBMIT_RESEND_MS 5000
//  A broker silent this long while we wait on it (pings unanswered) gets
//  a new connection: a new socket under the same routing id, and every
//  unfinished task sent again. libzmq can leave a DEALER with no usable
//  pipe after its peer is killed; a new socket is the cure.
#define S_RECONNECT_MS 10000
//  How long a send may wait for the socket to take a message.
#define S_SEND_WAIT_MS 1000
//  A socket that has taken no message for this long is made again too
//  (its connection is gone and libzmq is not making another).
#define S_SEND_STALL_MS 5000

//  One task submitted by this client.
typedef struct {
    uint64_t tag;                    //  ours
    uint64_t job_id;                 //  the broker's, 0 until acknowledged
    drover_result_t *result;         //  once it arrived, owned
    bool async;                      //  apply_async: callbacks on arrival
    drover_callback_fn *callback;    //  async success
    drover_callback_fn *error_callback;  //  async failure
    void *arg;                       //  for the callbacks
    uint64_t first_id;               //  the id first acknowledged (callers keep it)
    bool acked;                      //  a SubmitAck named this job
    char *function;                  //  kept to resend after a broker restart
    uint32_t timeout_ms;             //  likewise
    uint32_t retries;                //  likewise
    int32_t priority;                //  likewise
    int64_t run_at;                  //  likewise: not before, wall-clock ms; 0: none
    char *unique;                    //  likewise, or NULL
    bool detach;                     //  likewise
    uint8_t *payload;                //  likewise; freed once the result is in
    zmq_msg_t *frame;                //  the payload frame payload points into
                                     //  (each send shares it), or NULL: payload
                                     //  is a block of its own
    size_t size;                     //  bytes in payload
    struct _drover_imap_t *imap;     //  the unordered map it belongs to, or NULL
    size_t index;                    //  its push position in its map (a chunk's first)
    bool chunk;                      //  payload is an encoded Chunk of items
    size_t nitems;                   //  chunk: items in it
    drover_result_t **items;         //  chunk: each item's result once in, owned
    size_t items_taken;              //  chunk: items taken so far, in order
    bool future;                     //  a drover_future_t takes its result
} s_job_t;

//  One Submit awaiting its acknowledgement.
typedef struct {
    uint64_t seq;                    //  the request's sequence number
    uint64_t *tags;                  //  its tasks' tags, in order
    size_t count;                    //  entries in tags
    char *function;                  //  for notices
    bool acked;                      //  acknowledged
    bool internal;                   //  a resend nobody waits on: goes once acked
    int64_t sent_ms;                 //  when it was last sent
    bool unsent;                     //  the socket did not take it: send it again
    int resends;                     //  times sent again for want of an answer
    drover_error_t error;            //  refused with this code
    char *text;                      //  and this reason
} s_submit_t;

struct _drover_client_t {
    zsock_t *dealer;                 //  to the broker
    drv_handshake_t *handshake;      //  watches the dealer's handshakes
    zcert_t *curve_cert;             //  CURVE: our key pair, or NULL
    zcert_t *broker_cert;            //  CURVE: the broker's public key
    char *endpoint;                  //  the broker's client endpoint
    uint64_t seq;                    //  last request sequence
    uint64_t next_tag;               //  next task tag
    drv_index_t *by_tag;             //  s_job_t by tag, owns
    drv_index_t *by_id;              //  s_job_t by job_id once acknowledged, borrowed
    zhashx_t *by_first;              //  first id -> s_job_t, borrowed: a job
                                     //  whose id changed (a broker restart)
                                     //  is still found by the one callers have
    zhashx_t *submits;               //  seq -> s_submit_t, owns
    zlistx_t *ready;                 //  async s_job_t with results, borrowed
    size_t async_pending;            //  async jobs without callback yet
    zhashx_t *warned;                //  functions a notice was given for
    drover_notice_fn *notice;        //  notice handler, or NULL
    void *notice_arg;                //  its argument
    drover_progress_fn *progress;    //  progress handler, or NULL
    void *progress_arg;              //  its argument
    int ack_timeout;                 //  ms to wait for an acknowledgement
    uint64_t status_seq;             //  the Status, Wait, QueueConfig or view awaited
    drv_msg_t *status_reply;         //  its reply (StatusReply, QueueInfo, ...), once in
    uint8_t instance [DRV_INSTANCE_MAX];  //  the broker's run id, as last seen
    size_t instance_size;            //  bytes in instance; 0 before first contact
    int64_t last_heard;              //  when the broker last sent anything
    int64_t last_ping;               //  when we last sent a Heartbeat
    int64_t last_resend_check;       //  when we last looked for stuck Submits
    int64_t last_connect;            //  when the socket was last made
    int64_t refused_since;           //  the socket has not taken a send since, or 0
    char identity [40];              //  our routing id, kept across sockets
    char error [1024];               //  last error
    drover_error_t error_code;       //  last refusal code
};

struct _drover_imap_t {
    drover_client_t *client;         //  borrowed
    char *function;                  //  the function mapped
    drover_options_t options;        //  for every task
    uint8_t **payloads;              //  buffered payload copies
    zmq_msg_t **frames;              //  the payload frame holding one, for 64 KiB
                                     //  or more (DRV_FRAME_MIN): a copy, or the
                                     //  caller's block taken over; or NULL: a block
    size_t *sizes;                   //  their sizes
    size_t buffered;                 //  tasks buffered
    size_t buffered_bytes;           //  their bytes
    uint64_t *order;                 //  tags in push order
    size_t head;                     //  next to take
    size_t tail;                     //  pushed so far
    size_t capacity;                 //  entries in order
    zlistx_t *seqs;                  //  Submits not yet acknowledged
    bool each;                       //  a refused Submit's tasks get a result
                                     //  each; else the map fails (map, map_async)
    bool unordered;                  //  results are taken as they come
    size_t chunk_size;               //  pushes per job; 1: one each
    size_t batch;                    //  pushes buffered at most (payloads' room)
    zlistx_t *arrived;               //  unordered: s_job_t with results, borrowed
    size_t taken;                    //  unordered: results taken so far
};

//  ---------------------------------------------------------------------
//  Payload frames. A payload of DRV_FRAME_MIN bytes or more is held in a
//  ZeroMQ message of its own on the heap, which the job keeps for a
//  resend; every send is a copy of it (zmq_msg_copy) that shares the
//  bytes. libzmq counts the holders atomically and frees the bytes when
//  the last one lets go: the job here, or the socket's I/O thread once
//  it wrote or dropped a copy. czmq's stable API has no zframe over
//  memory of our own, hence zmq_msg_t here, not zframe_t.

//  A frame holding a copy of size bytes at data; NULL if out of memory.
static zmq_msg_t *
s_frame_copy (const void *data, size_t size)
{
    zmq_msg_t *frame = (zmq_msg_t *) malloc (sizeof *frame);
    if (frame && zmq_msg_init_size (frame, size) == -1) {
        free (frame);
        frame = NULL;
    }
    if (frame && size)
        memcpy (zmq_msg_data (frame), data, size);
    return frame;
}

//  A frame over the caller's block, handed to free_fn (data, hint) when
//  the last holder lets go. NULL if out of memory, once free_fn ran.
static zmq_msg_t *
s_frame_adopt (void *data, size_t size, drover_free_fn *free_fn, void *hint)
{
    zmq_msg_t *frame = (zmq_msg_t *) malloc (sizeof *frame);
    if (frame && zmq_msg_init_data (frame, data, size, free_fn, hint) == -1) {
        free (frame);               //  (libzmq did not call free_fn)
        frame = NULL;
    }
    if (!frame)
        free_fn (data, hint);
    return frame;
}

//  Let go of our hold on a frame; copies still queued keep the bytes.
static void
s_frame_destroy (zmq_msg_t **frame_p)
{
    if (*frame_p) {
        zmq_msg_close (*frame_p);
        free (*frame_p);
        *frame_p = NULL;
    }
}

//  Let a job's payload go: its block, or the frame it points into.
static void
s_job_payload_free (s_job_t *job)
{
    if (job->frame)
        s_frame_destroy (&job->frame);
    else
        free (job->payload);
    job->payload = NULL;
}

static void
s_job_destroy (void **item)
{
    s_job_t *job = (s_job_t *) *item;
    if (job) {
        drover_result_destroy (&job->result);
        for (size_t i = 0; job->items && i < job->nitems; i++)
            drover_result_destroy (&job->items [i]);
        free (job->items);
        free (job->function);
        free (job->unique);
        s_job_payload_free (job);
        free (job);
        *item = NULL;
    }
}

//  drv_index_hash_fn and drv_index_match_fn of by_tag and by_id.
static uint64_t
s_tag_hash (const void *item)
{
    return drv_index_mix (((const s_job_t *) item)->tag);
}

static bool
s_tag_match (const void *item, const void *key)
{
    return ((const s_job_t *) item)->tag == *(const uint64_t *) key;
}

static uint64_t
s_id_hash (const void *item)
{
    return drv_index_mix (((const s_job_t *) item)->job_id);
}

static bool
s_id_match (const void *item, const void *key)
{
    return ((const s_job_t *) item)->job_id == *(const uint64_t *) key;
}

static s_job_t *
s_by_tag (drover_client_t *self, uint64_t tag)
{
    return (s_job_t *) drv_index_find (self->by_tag, drv_index_mix (tag), s_tag_match, &tag);
}

//  The job with this id: its id now, or the first it had.
static s_job_t *
s_by_id (drover_client_t *self, uint64_t id)
{
    if (!id)
        return NULL;
    s_job_t *job = (s_job_t *) drv_index_find (self->by_id, drv_index_mix (id), s_id_match, &id);
    return job ? job : (s_job_t *) drv_util_u64_lookup (self->by_first, id);
}

//  Give a job the broker's id for it (0 as it goes), keeping the
//  indexes true: by_id holds it under that id, and by_first under the
//  first id it had while the two differ (callers keep the first). A
//  job's first id, the usual case, touches by_first not at all.
static void
s_set_id (drover_client_t *self, s_job_t *job, uint64_t id)
{
    bool was_moved = job->job_id && job->job_id != job->first_id;
    if (job->job_id)
        drv_index_remove (self->by_id, job);
    if (id && !job->first_id)
        job->first_id = id;
    job->job_id = id;
    //  Out of memory, the job is found by its tag only (a remove of a
    //  job not held finds nothing).
    if (id)
        drv_index_insert (self->by_id, job);
    bool moved = id && id != job->first_id;
    if (moved && !was_moved)
        zhashx_update (self->by_first, drv_util_u64_key (job->first_id), job);
    else
    if (was_moved && !moved && drv_util_u64_lookup (self->by_first, job->first_id) == job)
        zhashx_delete (self->by_first, drv_util_u64_key (job->first_id));
}

static void
s_submit_destroy (void **item)
{
    s_submit_t *submit = (s_submit_t *) *item;
    if (submit) {
        free (submit->tags);
        free (submit->function);
        free (submit->text);
        free (submit);
        *item = NULL;
    }
}

static int
s_fail (drover_client_t *self, drover_error_t code, int error, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    self->error_code = code;
    errno = error;
    return -1;
}

//  (Re)create the dealer, with CURVE if set, and connect it. -1 with a
//  reason in self->error.
static int
s_connect (drover_client_t *self)
{
    drv_handshake_destroy (&self->handshake);
    zsock_destroy (&self->dealer);
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->dealer)
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    zsock_set_identity (self->dealer, self->identity);
    zsock_set_linger (self->dealer, 0);
    zsock_set_sndhwm (self->dealer, 100000);
    zsock_set_rcvhwm (self->dealer, 100000);
    char err [512];
    if (self->curve_cert
        && drv_auth_client_apply (self->dealer, self->curve_cert, self->broker_cert, err,
                                  sizeof err)
               == -1)
        return s_fail (self, DROVER_ERR_NONE, EINVAL, "%s", err);
    //  Watch before connecting, so that no event is missed.
    self->handshake =
        drv_handshake_new (self->dealer, "client", self->curve_cert != NULL, err, sizeof err);
    if (!self->handshake)
        return s_fail (self, DROVER_ERR_NONE, EIO, "%s", err);
    self->last_connect = zclock_mono ();
    if (zsock_connect (self->dealer, "%s", self->endpoint) == -1)
        return s_fail (self, DROVER_ERR_NONE, EINVAL, "'%s' is not a broker endpoint",
                       self->endpoint);
    return 0;
}

//  -1 once the broker refused us, with the reason as the error.
static int
s_auth_check (drover_client_t *self)
{
    if (drv_handshake_read (self->handshake) == 0)
        return 0;
    return s_fail (self, DROVER_ERR_UNAUTHORIZED, EACCES, "%s",
                   drv_handshake_reason (self->handshake));
}

//  Send a frame, waiting at most wait_ms for the socket to take it: a
//  plain send on a DEALER without a usable connection blocks forever.
//  0 sent; 1 not taken (the frame is gone; the caller's records make it
//  go again later); -1 failed.
//  With nextra payload frames after it, each sent as a copy that shares
//  its bytes (they stay the caller's): libzmq takes a whole message once
//  it took its first part.
static int
s_send_frames (drover_client_t *self, zframe_t **frame_p, zmq_msg_t **extra, size_t nextra,
               int wait_ms)
{
    int rc = *frame_p ? 0 : -1;
    int64_t deadline = zclock_mono () + wait_ms;
    int more = nextra ? ZFRAME_MORE : 0;
    while (rc == 0 && zframe_send (frame_p, self->dealer, ZFRAME_DONTWAIT | more) == -1) {
        int64_t left = deadline - zclock_mono ();
        if (zmq_errno () != EAGAIN || left <= 0) {
            rc = zmq_errno () == EAGAIN ? 1 : -1;
            if (rc == 1 && !self->refused_since)
                self->refused_since = zclock_mono ();
            break;
        }
        zmq_pollitem_t item = {.socket = zsock_resolve (self->dealer), .events = ZMQ_POLLOUT};
        if (zmq_poll (&item, 1, left) == -1)
            rc = -1;
    }
    //  The envelope went: so do its payload frames.
    void *handle = zsock_resolve (self->dealer);
    for (size_t i = 0; rc == 0 && i < nextra; i++) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_copy (&part, extra [i]) == -1
            || zmq_msg_send (&part, handle, i + 1 < nextra ? ZMQ_SNDMORE : 0) == -1) {
            zmq_msg_close (&part);
            rc = -1;
        }
    }
    zframe_destroy (frame_p);
    if (rc == 0)
        self->refused_since = 0;
    return rc;
}

static int
s_send_frame (drover_client_t *self, zframe_t **frame_p, int wait_ms)
{
    return s_send_frames (self, frame_p, NULL, 0, wait_ms);
}

drover_client_t *
drover_client_new (const char *endpoint)
{
    if (!endpoint || !*endpoint)
        return NULL;
    drv_util_log_init ();
    drover_client_t *self = (drover_client_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    self->by_tag = drv_index_new (s_tag_hash);
    self->by_id = drv_index_new (s_id_hash);
    self->by_first = drv_util_u64_hash_new ();
    self->submits = drv_util_u64_hash_new ();
    self->ready = zlistx_new ();
    self->warned = zhashx_new ();
    if (!self->endpoint || !self->by_tag || !self->by_id || !self->by_first || !self->submits
        || !self->ready || !self->warned) {
        drover_client_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->submits, s_submit_destroy);
    zuuid_t *uuid = zuuid_new ();
    bool named = uuid != NULL;
    if (named)
        snprintf (self->identity, sizeof self->identity, "C%.24s", zuuid_str (uuid));
    zuuid_destroy (&uuid);
    if (!named || s_connect (self) == -1) {
        drover_client_destroy (&self);
        return NULL;
    }
    self->next_tag = 1;
    self->ack_timeout = 30000;
    return self;
}

void
drover_client_destroy (drover_client_t **self_p)
{
    assert (self_p);
    drover_client_t *self = *self_p;
    if (self) {
        if (self->dealer && self->seq) {
            drv_msg_t bye = {.type = DRV_MSG_BYE, .seq = ++self->seq};
            zframe_t *frame = drv_codec_encode (&bye);
            if (frame)
                zframe_send (&frame, self->dealer, ZFRAME_DONTWAIT);
            zframe_destroy (&frame);
        }
        drv_handshake_destroy (&self->handshake);
        zsock_destroy (&self->dealer);
        zcert_destroy (&self->curve_cert);
        zcert_destroy (&self->broker_cert);
        zlistx_destroy (&self->ready);
        drv_index_destroy (&self->by_id);
        zhashx_destroy (&self->by_first);
        if (self->by_tag) {
            size_t cursor = 0;
            void *job;
            while ((job = drv_index_next (self->by_tag, &cursor)))
                s_job_destroy (&job);
            drv_index_destroy (&self->by_tag);
        }
        zhashx_destroy (&self->submits);
        zhashx_destroy (&self->warned);
        drv_msg_destroy (&self->status_reply);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

const char *
drover_client_error (drover_client_t *self)
{
    return self->error;
}

drover_error_t
drover_client_error_code (drover_client_t *self)
{
    return self->error_code;
}

void
drover_client_set_ack_timeout (drover_client_t *self, int timeout_ms)
{
    self->ack_timeout = timeout_ms;
}

void
drover_client_set_notice (drover_client_t *self, drover_notice_fn *fn, void *arg)
{
    self->notice = fn;
    self->notice_arg = arg;
}

void
drover_client_set_progress (drover_client_t *self, drover_progress_fn *fn, void *arg)
{
    self->progress = fn;
    self->progress_arg = arg;
}

int
drover_client_set_curve (drover_client_t *self, const char *secret_file,
                         const char *broker_key_file)
{
    if (self->seq)
        return s_fail (self, DROVER_ERR_NONE, EINVAL,
                       "set CURVE before the client first talks to the broker");
    char err [400];
    zcert_t *cert = drv_auth_load_cert (secret_file, true, err, sizeof err);
    if (!cert)
        return s_fail (self, DROVER_ERR_NONE, EINVAL, "--curve-secret: %s", err);
    zcert_t *broker = drv_auth_load_cert (broker_key_file, false, err, sizeof err);
    if (!broker) {
        zcert_destroy (&cert);
        return s_fail (self, DROVER_ERR_NONE, EINVAL, "--broker-key: %s", err);
    }
    zcert_destroy (&self->curve_cert);
    zcert_destroy (&self->broker_cert);
    self->curve_cert = cert;
    self->broker_cert = broker;
    //  A new socket: the options count at connect time, and the old one
    //  may be half-way through a handshake without keys.
    return s_connect (self);
}

//  ---------------------------------------------------------------------
//  Receiving

static void
s_on_ack (drover_client_t *self, drv_msg_t *msg)
{
    s_submit_t *submit =
        (s_submit_t *) drv_util_u64_lookup (self->submits, msg->seq);
    if (!submit || submit->acked || submit->error)
        return;
    if (msg->njob_ids != submit->count) {
        submit->error = DROVER_ERR_MALFORMED;
        submit->text = zsys_sprintf ("broker acknowledged %zu tasks of %zu", msg->njob_ids,
                                     submit->count);
        return;
    }
    for (size_t i = 0; i < submit->count; i++) {
        s_job_t *job = s_by_tag (self, submit->tags [i]);
        if (job) {
            //  After a broker restart the resend may get a new id; the
            //  first one still finds the job (by_first).
            s_set_id (self, job, msg->job_ids [i]);
            job->acked = true;
        }
    }
    submit->acked = true;
    if (submit->internal) {
        zhashx_delete (self->submits, drv_util_u64_key (submit->seq));
        return;
    }
    if (msg->workers == 0 && self->notice && !zhashx_lookup (self->warned, submit->function)) {
        zhashx_insert (self->warned, submit->function, (void *) 1);
        char text [DRV_FUNCTION_MAX + 64];
        snprintf (text, sizeof text, "no worker offers '%s' yet; waiting", submit->function);
        self->notice (text, self->notice_arg);
    }
}

//  Split a chunk's result into its items' results. Data that is no
//  ChunkResults for every item (the broker's own results: cancelled,
//  lost) gives each item the chunk's outcome and reason.
static void
s_chunk_unpack (s_job_t *job)
{
    drover_result_t *whole = job->result;
    job->items = (drover_result_t **) calloc (job->nitems ? job->nitems : 1,
                                              sizeof (drover_result_t *));
    if (!job->items)
        return;                     //  s_take_item reports it
    size_t count = job->nitems;
    drv_result_t *parts
        = whole->size ? drv_codec_chunk_results_unpack (whole->data, whole->size, &count) : NULL;
    for (size_t i = 0; i < job->nitems; i++) {
        if (parts)
            job->items [i] = drv_util_result_new (whole->job_id, parts [i].outcome,
                                                  parts [i].data, parts [i].size,
                                                  parts [i].reason, whole->attempts);
        else
        if (whole->outcome == DROVER_OUTCOME_OK)
            job->items [i] = drv_util_result_new (whole->job_id, DROVER_OUTCOME_ERROR, NULL, 0,
                                                  "the worker sent no result for each item of "
                                                  "the chunk",
                                                  whole->attempts);
        else
            job->items [i] = drv_util_result_new (whole->job_id, whole->outcome, whole->data,
                                                  whole->size, whole->reason, whole->attempts);
    }
    free (parts);
}

//  A job's result is in (job->result, or NULL for want of memory): it
//  needs its payload no more, and goes where it is taken from.
static void
s_job_arrived (drover_client_t *self, s_job_t *job)
{
    if (!job->result)
        return;
    s_job_payload_free (job);
    if (job->chunk)
        s_chunk_unpack (job);
    if (job->async)
        zlistx_add_end (self->ready, job);
    if (job->imap)
        zlistx_add_end (job->imap->arrived, job);
}

static void
s_on_results (drover_client_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; i < msg->nresults; i++) {
        drv_result_t *in = &msg->results [i];
        s_job_t *job = s_by_tag (self, in->tag);
        if (!job || job->result)
            continue;               //  not ours, or a second result: dropped
        job->result = drv_util_result_new (in->job_id, in->outcome, in->data, in->size,
                                           in->reason, in->attempts);
        if (job->result)
            job->result->job_id = job->first_id ? job->first_id : in->job_id;
        s_job_arrived (self, job);
    }
    //  Tell the broker these are in, so it can forget them.
    uint64_t *ids = (uint64_t *) malloc (msg->nresults * sizeof (uint64_t));
    if (ids) {
        for (size_t i = 0; i < msg->nresults; i++)
            ids [i] = msg->results [i].job_id;
        drv_msg_t ack = {.type = DRV_MSG_ACK, .seq = ++self->seq, .job_ids = ids,
                         .njob_ids = msg->nresults};
        zframe_t *frame = drv_codec_encode (&ack);
        if (frame && zframe_send (&frame, self->dealer, ZFRAME_DONTWAIT) == -1)
            zframe_destroy (&frame);
        free (ids);
    }
}

//  Progress reports: to the handler, under the job ids the caller knows.
static void
s_on_progress (drover_client_t *self, drv_msg_t *msg)
{
    for (size_t i = 0; self->progress && i < msg->nprogress; i++) {
        const drv_progress_t *in = &msg->progress [i];
        s_job_t *job = s_by_id (self, in->job_id);
        if (job && job->result)
            continue;               //  its result is in: that says more
        uint64_t job_id = job && job->first_id ? job->first_id : in->job_id;
        self->progress (job_id, in->done, in->total, in->partial ? in->partial : (const uint8_t *) "",
                        in->partial ? in->size : 0, self->progress_arg);
    }
}

static void s_submit_refuse_each (drover_client_t *self, s_submit_t *submit);

static void
s_on_error (drover_client_t *self, drv_msg_t *msg)
{
    s_submit_t *submit =
        (s_submit_t *) drv_util_u64_lookup (self->submits, msg->seq);
    if (submit && !submit->acked) {
        submit->error = msg->code ? msg->code : DROVER_ERR_INTERNAL;
        submit->text = strdup (msg->text);
        //  A resend after a broker restart: nobody waits on it, so nothing
        //  would settle it. Its tasks get their results now, refused,
        //  rather than being waited on for ever.
        if (submit->internal)
            s_submit_refuse_each (self, submit);
    }
    else
    if (msg->seq && msg->seq == self->status_seq) {
        self->status_seq = 0;
        s_fail (self, msg->code, EPROTO, "broker refused: %s", msg->text);
    }
    else
        zsys_warning ("client: broker says: %s (%s)", msg->text, drover_error_name (msg->code));
}

//  Receive and handle one message, waiting up to timeout_ms (-1:
//  forever). 1 if one was handled, 0 on timeout, -1 if interrupted.
static void s_resend_all (drover_client_t *self);

//  Heartbeat the broker while we wait on it and it is silent: its reply
//  shows it is there, and a new instance id shows it restarted.
static void
s_ping (drover_client_t *self, int64_t now)
{
    if (now - self->last_heard < S_HEARTBEAT_MS || now - self->last_ping < S_HEARTBEAT_MS)
        return;
    self->last_ping = now;
    drv_msg_t ping = {.type = DRV_MSG_HEARTBEAT, .seq = ++self->seq};
    zframe_t *frame = drv_codec_encode (&ping);
    if (frame && zframe_send (&frame, self->dealer, ZFRAME_DONTWAIT) == -1)
        zframe_destroy (&frame);
}

//  Send again, once a second at most, the Submits that went unanswered
//  for S_SUBMIT_RESEND_MS while the broker is there (it answered since).
static void s_send_again (drover_client_t *self, const uint64_t *tags, size_t count,
                          uint64_t seq);

//  The Submits not yet acknowledged nor refused, in an array the caller
//  frees (NULL and *count_p 0 if none or out of memory).
static s_submit_t **
s_pending_submits (drover_client_t *self, size_t *count_p)
{
    *count_p = 0;
    size_t size = zhashx_size (self->submits);
    s_submit_t **pending = size ? (s_submit_t **) calloc (size, sizeof (s_submit_t *)) : NULL;
    if (!pending)
        return NULL;
    for (s_submit_t *submit = (s_submit_t *) zhashx_first (self->submits); submit;
         submit = (s_submit_t *) zhashx_next (self->submits))
        if (!submit->acked && !submit->error)
            pending [(*count_p)++] = submit;
    return pending;
}

static void
s_resend_stuck (drover_client_t *self, int64_t now)
{
    if (now - self->last_resend_check < S_HEARTBEAT_MS)
        return;
    self->last_resend_check = now;
    //  A snapshot: sending looks Submits up, and a zhashx lookup moves the
    //  cursor of a walk over the same table (the walk would never end).
    size_t count = 0;
    s_submit_t **pending = s_pending_submits (self, &count);
    for (size_t i = 0; i < count; i++) {
        s_submit_t *submit = pending [i];
        if (submit->acked || submit->error)
            continue;
        if (!submit->unsent
            && (now - submit->sent_ms < (S_SUBMIT_RESEND_MS << submit->resends)
                || self->last_heard <= submit->sent_ms))
            continue;
        if (!submit->unsent)
            zsys_info ("client: no acknowledgement of submit seq=%" PRIu64 " in %" PRId64
                       " ms; sending it again",
                       submit->seq, now - submit->sent_ms);
        s_send_again (self, submit->tags, submit->count, submit->seq);
        submit->sent_ms = now;
        //  Back off: a broker that is only slow gets 5, 10, 20, 40, 80 s.
        if (!submit->unsent && submit->resends < 4)
            submit->resends++;
    }
    free (pending);
}

//  A broker that answered before and has been silent for S_RECONNECT_MS
//  while we wait on it gets a new socket, and every unfinished task goes
//  again (the broker knows the tags: nothing is queued twice).

static void
s_reconnect_if_silent (drover_client_t *self, int64_t now, int64_t waiting_since)
{
    //  Silence counts only while we wait: a client that was not reading
    //  (its program busy elsewhere) has not been ignored by the broker.
    int64_t quiet_from = self->last_heard > waiting_since ? self->last_heard : waiting_since;
    bool silent = self->instance_size && now - quiet_from >= S_RECONNECT_MS
                  && now - self->last_connect >= S_RECONNECT_MS;
    bool stalled = self->refused_since && now - self->refused_since >= S_SEND_STALL_MS
                   && now - self->last_connect >= S_SEND_STALL_MS;
    if ((!silent && !stalled)
        || (zhashx_size (self->submits) == 0 && drv_index_size (self->by_tag) == 0))
        return;
    if (silent)
        zsys_info ("client: broker at %s silent for %" PRId64 " ms; connecting again",
                   self->endpoint, now - self->last_heard);
    else
        zsys_info ("client: the socket to %s has taken nothing for %" PRId64
                   " ms; connecting again",
                   self->endpoint, now - self->refused_since);
    self->refused_since = 0;
    if (s_connect (self) == -1) {
        zsys_warning ("client: cannot make a new socket for %s", self->endpoint);
        return;
    }
    s_resend_all (self);
}

static int
s_receive (drover_client_t *self, int timeout_ms)
{
    if (s_auth_check (self) == -1)
        return -1;
    zmq_pollitem_t items [2] = {{.events = ZMQ_POLLIN}, {.events = ZMQ_POLLIN}};
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    int rc;
    //  A message already queued is taken without a poll: that is one
    //  system call less per message when results stream in.
    //  What is queued already is taken first: it may be all we wait for.
    int64_t waiting_since = zclock_mono ();
    bool queued = (zsock_events (self->dealer) & ZMQ_POLLIN) != 0;
    if (queued) {
        int64_t now = zclock_mono ();
        s_ping (self, now);
        s_resend_stuck (self, now);
        rc = 1;
    }
    while (!queued) {
        int64_t now = zclock_mono ();
        s_reconnect_if_silent (self, now, waiting_since);
        s_ping (self, now);
        s_resend_stuck (self, now);
        //  s_reconnect_if_silent may have made a new socket and watch.
        items [0].socket = zsock_resolve (self->dealer);
        items [1].socket = zsock_resolve (drv_handshake_sock (self->handshake));
        int slice = S_HEARTBEAT_MS;
        if (deadline >= 0 && deadline - now < slice)
            slice = (int) (deadline > now ? deadline - now : 0);
        rc = zmq_poll (items, 2, slice);
        if (rc > 0 && (items [1].revents & ZMQ_POLLIN) && s_auth_check (self) == -1)
            return -1;
        if (rc > 0 && !(items [0].revents & ZMQ_POLLIN))
            rc = 0;                 //  connection events only
        if (rc != 0 || (deadline >= 0 && zclock_mono () >= deadline))
            break;
    }
    if (rc == -1)
        return s_fail (self, DROVER_ERR_NONE, EINTR, "interrupted");
    if (rc == 0)
        return 0;
    zframe_t *frame = zframe_recv (self->dealer);
    if (!frame)
        return s_fail (self, DROVER_ERR_NONE, EINTR, "interrupted");
    drv_msg_t *msg = NULL;
    char err [256];
    drv_limits_t limits = drv_limits_from_broker ();
    drover_error_t code = drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits,
                                            &msg, NULL, err, sizeof err);
    zframe_destroy (&frame);
    if (code) {
        zsys_warning ("client: bad message from broker: %s", err);
        return 1;
    }
    self->last_heard = zclock_mono ();
    bool restarted = false;
    if (msg->instance_size) {
        restarted = self->instance_size && (msg->instance_size != self->instance_size
                                            || memcmp (msg->instance, self->instance,
                                                       msg->instance_size) != 0);
        memcpy (self->instance, msg->instance, msg->instance_size);
        self->instance_size = msg->instance_size;
    }
    if (restarted) {
        //  What the old run acknowledged may be gone: send again every task
        //  without a result. The broker knows resent tags, so a job it kept
        //  is not doubled. Replies of the new run are handled after this.
        zsys_info ("client: broker at %s restarted; resending unfinished tasks", self->endpoint);
        s_resend_all (self);
    }
    switch (msg->type) {
        case DRV_MSG_SUBMIT_ACK: s_on_ack (self, msg); break;
        case DRV_MSG_RESULTS: s_on_results (self, msg); break;
        case DRV_MSG_ERROR: s_on_error (self, msg); break;
        case DRV_MSG_PROGRESS: s_on_progress (self, msg); break;
        case DRV_MSG_STATUS_REPLY:
        case DRV_MSG_QUEUE_INFO:
        case DRV_MSG_JOB_LIST:
        case DRV_MSG_WORKER_LIST:
        case DRV_MSG_QUEUE_LIST:
        case DRV_MSG_STATS:
            if (msg->seq == self->status_seq) {
                drv_msg_destroy (&self->status_reply);
                self->status_reply = msg;
                msg = NULL;
            }
            break;
        default: break;
    }
    drv_msg_destroy (&msg);
    return 1;
}

//  Milliseconds left until deadline (-1 stays -1: forever).
static int
s_left (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - zclock_mono ();
    return left > 0 ? (int) left : 0;
}

static int64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
}

//  ---------------------------------------------------------------------
//  Submitting

//  The delay options ask for, in ms from now: delay_ms, or until
//  run_at_ms, whichever is later.
static uint64_t
s_delay_of (const drover_options_t *options)
{
    if (!options)
        return 0;
    uint64_t delay = options->delay_ms;
    if (options->run_at_ms) {
        int64_t until = options->run_at_ms - zclock_time ();
        if (until > 0 && (uint64_t) until > delay)
            delay = (uint64_t) until;
    }
    return delay;
}

//  How s_submit_send treats the tasks it sends.
typedef enum {
    S_SEND_NEW,                      //  new tasks: record jobs and the Submit
    S_SEND_AGAIN,                    //  a pending Submit again, same seq
    S_SEND_AGAIN_NEW_SEQ             //  known jobs in a new Submit nobody waits on
} s_send_mode_t;

//  Send one Submit for count tasks with the given tags; records the jobs
//  and the pending Submit. Returns its seq, or 0 on error. held [i], if
//  given and set, is the payload frame that holds payloads [i]: it is
//  sent shared, not copied. The jobs keep copies of the payloads, unless
//  owned is given (S_SEND_NEW only): owned [i] is a malloc'd block holding
//  payloads [i], or points into held [i] when that is set, and the job
//  takes it instead (it sets both NULL; the caller frees the rest). A
//  payload of DRV_FRAME_MIN or more goes as a payload frame: held [i],
//  or else a copy, which a new job keeps.
static uint64_t
s_submit_send (drover_client_t *self, const char *function, size_t count,
               const void *const *payloads, const size_t *sizes, const uint64_t *tags,
               const drover_options_t *options, bool async, bool chunk, s_send_mode_t mode,
               uint64_t seq, uint8_t **owned, zmq_msg_t **held)
{
    if (!drv_codec_valid_function (function)) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL,
                "function name '%s' is not valid: use 1 to %d characters of A-Z a-z 0-9 _ . : / -",
                function ? function : "", DRV_FUNCTION_MAX);
        return 0;
    }
    if (count == 0) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL, "nothing to submit");
        return 0;
    }
    const char *unique = options && options->unique && *options->unique ? options->unique : NULL;
    if (unique && count != 1) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL, "a unique key goes with one task, not %zu",
                count);
        return 0;
    }
    if (unique && strlen (unique) > DRV_UNIQUE_MAX) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL, "a unique key is at most %d bytes",
                DRV_UNIQUE_MAX);
        return 0;
    }
    uint64_t delay_ms = s_delay_of (options);
    if (delay_ms > DRV_DELAY_MAX) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL, "a delay is at most 366 days, not %" PRIu64 " ms",
                delay_ms);
        return 0;
    }
    if (s_auth_check (self) == -1)
        return 0;
    drv_task_t *tasks = (drv_task_t *) calloc (count, sizeof *tasks);
    s_submit_t *submit = (s_submit_t *) calloc (1, sizeof *submit);
    if (submit) {
        submit->tags = (uint64_t *) malloc (count * sizeof (uint64_t));
        submit->function = strdup (function);
    }
    if (!tasks || !submit || !submit->tags || !submit->function) {
        free (tasks);
        void *item = submit;
        s_submit_destroy (&item);
        s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
        return 0;
    }
    //  Large payloads go in frames of their own after the envelope.
    size_t nframes = 0;
    for (size_t i = 0; i < count; i++)
        nframes += sizes [i] >= DRV_FRAME_MIN;
    //  frames: what goes after the envelope, borrowed; made [i]: the copy
    //  made here of task i's payload (others are the caller's, held),
    //  which a new task's job then keeps instead of a copy of its own.
    zmq_msg_t **frames = nframes ? (zmq_msg_t **) calloc (nframes, sizeof (zmq_msg_t *)) : NULL;
    zmq_msg_t **made = nframes ? (zmq_msg_t **) calloc (count, sizeof (zmq_msg_t *)) : NULL;
    size_t next = 0;
    for (size_t i = 0; i < count; i++) {
        bool framed = frames && made && sizes [i] >= DRV_FRAME_MIN;
        tasks [i] = (drv_task_t) {.id = tags [i], .payload = (const uint8_t *) payloads [i],
                                  .size = sizes [i], .framed = framed};
        if (!framed)
            continue;
        zmq_msg_t *frame = held ? held [i] : NULL;
        if (!frame)
            frame = made [i] = s_frame_copy (payloads [i], sizes [i]);
        if (frame)
            frames [next++] = frame;
        else
            tasks [i].framed = false;   //  (out of memory: it goes inside)
    }
    nframes = next;
    drv_msg_t msg = {
        .type = DRV_MSG_SUBMIT,
        .seq = mode == S_SEND_AGAIN ? seq : ++self->seq,
        .function = function,
        .timeout_ms = options ? options->timeout_ms : 0,
        .priority = options ? options->priority : 0,
        .retries = options ? options->retries : 0,
        .delay_ms = delay_ms,
        .unique = unique,
        .detach = options && options->detach,
        .want_progress = self->progress != NULL,
        .chunk = chunk,
        .tasks = tasks,
        .ntasks = count,
    };
    zframe_t *frame = drv_codec_encode (&msg);
    free (tasks);
    //  Only a new Submit may wait for the socket; a resend must not keep
    //  this thread from reading what the broker sends meanwhile.
    int sent = s_send_frames (self, &frame, frames, nframes,
                              mode == S_SEND_NEW ? S_SEND_WAIT_MS : 0);
    free (frames);
    //  Only new jobs keep the copies made here.
    if (made && (sent == -1 || mode != S_SEND_NEW)) {
        for (size_t i = 0; i < count; i++)
            s_frame_destroy (&made [i]);
        free (made);
        made = NULL;
    }
    if (sent == -1) {
        void *item = submit;
        s_submit_destroy (&item);
        s_fail (self, DROVER_ERR_NONE, EIO, "cannot send to the broker at %s", self->endpoint);
        return 0;
    }
    if (mode == S_SEND_AGAIN) {
        //  The record and the jobs exist already.
        void *item = submit;
        s_submit_destroy (&item);
        s_submit_t *pending = (s_submit_t *) drv_util_u64_lookup (self->submits, msg.seq);
        if (pending) {
            pending->sent_ms = zclock_mono ();
            pending->unsent = sent == 1;
        }
        return msg.seq;
    }
    submit->unsent = sent == 1;
    memcpy (submit->tags, tags, count * sizeof (uint64_t));
    submit->count = count;
    submit->seq = msg.seq;
    submit->sent_ms = zclock_mono ();
    submit->internal = mode == S_SEND_AGAIN_NEW_SEQ;
    zhashx_insert (self->submits, drv_util_u64_key (submit->seq), submit);
    if (mode == S_SEND_AGAIN_NEW_SEQ)
        return msg.seq;
    for (size_t i = 0; i < count; i++) {
        s_job_t *job = (s_job_t *) calloc (1, sizeof *job);
        if (!job)
            continue;               //  its result will be dropped
        job->tag = tags [i];
        job->async = async;
        job->function = strdup (function);
        job->timeout_ms = options ? options->timeout_ms : 0;
        job->retries = options ? options->retries : 0;
        job->priority = options ? options->priority : 0;
        job->run_at = delay_ms ? zclock_time () + (int64_t) delay_ms : 0;
        job->unique = unique ? strdup (unique) : NULL;
        job->detach = options && options->detach;
        job->chunk = chunk;
        if (owned && owned [i] && held && held [i]) {
            job->frame = held [i];
            job->payload = owned [i];
            held [i] = NULL;
            owned [i] = NULL;
        }
        else
        if (made && made [i]) {
            job->frame = made [i];
            job->payload = (uint8_t *) zmq_msg_data (made [i]);
            made [i] = NULL;
        }
        else
        if (owned && owned [i]) {
            job->payload = owned [i];
            owned [i] = NULL;
        }
        else {
            job->payload = (uint8_t *) malloc (sizes [i] ? sizes [i] : 1);
            if (job->payload && sizes [i])
                memcpy (job->payload, payloads [i], sizes [i]);
        }
        job->size = sizes [i];
        if (drv_index_insert (self->by_tag, job) == -1) {
            void *item = job;
            s_job_destroy (&item);  //  (out of memory) its result will be dropped
        }
    }
    for (size_t i = 0; made && i < count; i++)
        s_frame_destroy (&made [i]);    //  (a job that could not be made)
    free (made);
    return msg.seq;
}

//  Send these known tasks again in Submits of at most S_BATCH_TASKS: as
//  the pending Submit `seq` (all in one), or in new internal Submits.
static void
s_send_again (drover_client_t *self, const uint64_t *tags, size_t count, uint64_t seq)
{
    const void **payloads = (const void **) calloc (count, sizeof (void *));
    size_t *sizes = (size_t *) calloc (count, sizeof (size_t));
    zmq_msg_t **held = (zmq_msg_t **) calloc (count, sizeof (zmq_msg_t *));
    s_job_t *first = count ? s_by_tag (self, tags [0]) : NULL;
    if (payloads && sizes && held && first) {
        for (size_t i = 0; i < count; i++) {
            s_job_t *job = s_by_tag (self, tags [i]);
            payloads [i] = job && job->payload ? job->payload : (const void *) "";
            sizes [i] = job && job->payload ? job->size : 0;
            //  A payload frame goes again shared, not copied.
            held [i] = job && job->payload ? job->frame : NULL;
        }
        //  A delayed task keeps its time: what is left of it.
        drover_options_t options = {.timeout_ms = first->timeout_ms,
                                    .retries = first->retries,
                                    .priority = first->priority,
                                    .run_at_ms = first->run_at,
                                    .unique = first->unique,
                                    .detach = first->detach};
        s_submit_send (self, first->function, count, payloads, sizes, tags, &options, false,
                       first->chunk,
                       seq ? S_SEND_AGAIN : S_SEND_AGAIN_NEW_SEQ, seq, NULL, held);
    }
    free (payloads);
    free (sizes);
    free (held);
}

//  Can these two jobs go in one Submit?
static bool
s_same_options (const s_job_t *a, const s_job_t *b)
{
    return a->timeout_ms == b->timeout_ms && a->retries == b->retries
           && a->priority == b->priority && a->run_at == b->run_at && a->detach == b->detach
           && a->chunk == b->chunk
           && !a->unique && !b->unique
           && streq (a->function, b->function);
}

static void
s_resend_all (drover_client_t *self)
{
    //  Pending Submits go again as they were, so their waiters settle
    //  (from a snapshot: sending looks them up, see s_resend_stuck).
    size_t npending = 0;
    s_submit_t **pending = s_pending_submits (self, &npending);
    for (size_t i = 0; i < npending; i++)
        s_send_again (self, pending [i]->tags, pending [i]->count, pending [i]->seq);
    free (pending);
    //  Acknowledged jobs without a result, grouped by function and timeout.
    size_t count = 0, capacity = drv_index_size (self->by_tag);
    s_job_t **jobs = (s_job_t **) calloc (capacity ? capacity : 1, sizeof (s_job_t *));
    if (!jobs)
        return;
    size_t cursor = 0;
    s_job_t *job;
    while ((job = (s_job_t *) drv_index_next (self->by_tag, &cursor)))
        if (job->acked && !job->result)
            jobs [count++] = job;
    uint64_t *tags = (uint64_t *) calloc (S_BATCH_TASKS, sizeof (uint64_t));
    for (size_t i = 0; tags && i < count; i++) {
        if (!jobs [i] || !jobs [i]->function)
            continue;
        s_job_t *model = jobs [i];
        size_t n = 0;
        for (size_t j = i; j < count; j++) {
            if (!jobs [j] || (jobs [j] != model && !s_same_options (jobs [j], model)))
                continue;
            tags [n++] = jobs [j]->tag;
            jobs [j] = NULL;
            //  A task with a unique key goes alone.
            if (n == S_BATCH_TASKS || model->unique) {
                s_send_again (self, tags, n, 0);
                n = 0;
            }
        }
        if (n)
            s_send_again (self, tags, n, 0);
    }
    free (tags);
    free (jobs);
}

static drover_result_t *s_take (drover_client_t *self, s_job_t *job);

//  Forget the jobs of a refused or abandoned Submit.
static void
s_submit_forget (drover_client_t *self, s_submit_t *submit)
{
    for (size_t i = 0; i < submit->count; i++) {
        s_job_t *job = s_by_tag (self, submit->tags [i]);
        if (job) {
            drover_result_t *result = s_take (self, job);   //  forgets the job
            drover_result_destroy (&result);
        }
    }
    zhashx_delete (self->submits, drv_util_u64_key (submit->seq));
}

//  A refused Submit of a streaming map, or a refused resend: each of its
//  tasks gets a result of its own, DROVER_OUTCOME_REFUSED with the
//  broker's reason (under the job id it had, if any), taken in its turn
//  as any other (Pool.imap raises for that item and goes on).
//  A batch refused as too large is one task too large, or more: its
//  tasks go again one by one (Submits nobody waits on, which settle
//  themselves), so that only those fail.
static void
s_submit_refuse_each (drover_client_t *self, s_submit_t *submit)
{
    if (submit->error == DROVER_ERR_TOO_LARGE && submit->count > 1) {
        for (size_t i = 0; i < submit->count; i++)
            s_send_again (self, submit->tags + i, 1, 0);
        zhashx_delete (self->submits, drv_util_u64_key (submit->seq));
        return;
    }
    char reason [DRV_TEXT_MAX + 96];
    snprintf (reason, sizeof reason, "not queued: the broker refused it: %s",
              submit->text ? submit->text : drover_error_name (submit->error));
    for (size_t i = 0; i < submit->count; i++) {
        s_job_t *job = s_by_tag (self, submit->tags [i]);
        if (job && !job->result) {
            job->result = drv_util_result_new (job->first_id ? job->first_id : job->job_id,
                                               DROVER_OUTCOME_REFUSED, NULL, 0, reason, 0);
            s_job_arrived (self, job);
        }
    }
    zhashx_delete (self->submits, drv_util_u64_key (submit->seq));
}

//  Settle a Submit that was acknowledged or refused: 0 if acked (the
//  record goes), -1 if refused (its jobs go too), 1 if still waiting.
//  With each, a refused Submit's tasks get results of their own instead
//  (s_submit_refuse_each), and it settles as 0.
static int
s_submit_settle (drover_client_t *self, uint64_t seq, bool each)
{
    s_submit_t *submit = (s_submit_t *) drv_util_u64_lookup (self->submits, seq);
    if (!submit)
        return 0;
    if (submit->acked) {
        zhashx_delete (self->submits, drv_util_u64_key (seq));
        return 0;
    }
    if (submit->error && each) {
        s_submit_refuse_each (self, submit);
        return 0;
    }
    if (submit->error) {
        s_fail (self, submit->error, EPROTO, "broker refused: %s", submit->text);
        s_submit_forget (self, submit);
        return -1;
    }
    return 1;
}

//  Wait for a Submit's acknowledgement; each as s_submit_settle.
static int
s_submit_await (drover_client_t *self, uint64_t seq, bool each)
{
    //  A broker that answered before and is silent now may be restarting:
    //  wait for it. The timeout is for finding no broker at all.
    int64_t deadline = s_deadline (self->instance_size ? -1 : self->ack_timeout);
    int rc;
    while ((rc = s_submit_settle (self, seq, each)) == 1) {
        int left = s_left (deadline);
        if (left == 0 || s_receive (self, left) == -1) {
            s_submit_t *submit =
                (s_submit_t *) drv_util_u64_lookup (self->submits, seq);
            if (submit)
                s_submit_forget (self, submit);
            if (left == 0)
                return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                               "no answer from the broker at %s within %d ms: is drover-broker "
                               "running there?",
                               self->endpoint, self->ack_timeout);
            return -1;
        }
    }
    return rc;
}

//  Submit synchronously and return the job ids.
static int
s_submit (drover_client_t *self, const char *function, size_t count,
          const void *const *payloads, const size_t *sizes, const drover_options_t *options,
          bool async, uint64_t *job_ids)
{
    uint64_t *tags = (uint64_t *) calloc (count ? count : 1, sizeof (uint64_t));
    if (!tags)
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        tags [i] = self->next_tag++;
    uint64_t seq = s_submit_send (self, function, count, payloads, sizes, tags, options, async,
                                  false, S_SEND_NEW, 0, NULL, NULL);
    int rc = seq ? s_submit_await (self, seq, false) : -1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        s_job_t *job = s_by_tag (self, tags [i]);
        if (job_ids)
            job_ids [i] = job ? job->job_id : 0;
        if (job && options && options->detach) {
            //  Nothing will come for it here: drover_client_wait asks the
            //  broker instead.
            drover_result_t *result = s_take (self, job);
            drover_result_destroy (&result);
        }
    }
    free (tags);
    return rc;
}

int
drover_client_submit (drover_client_t *self, const char *function, const void *payload,
                      size_t size, const drover_options_t *options, uint64_t *job_id)
{
    return s_submit (self, function, 1, &payload, &size, options, false, job_id);
}

int
drover_client_submit_many (drover_client_t *self, const char *function, size_t count,
                           const void *const *payloads, const size_t *sizes,
                           const drover_options_t *options, uint64_t *job_ids)
{
    return s_submit (self, function, count, payloads, sizes, options, false, job_ids);
}

//  Take a job's result and forget the job.
static drover_result_t *
s_take (drover_client_t *self, s_job_t *job)
{
    drover_result_t *result = job->result;
    job->result = NULL;
    s_set_id (self, job, 0);
    drv_index_remove (self->by_tag, job);
    void *item = job;
    s_job_destroy (&item);
    return result;
}

//  Send a Wait for job_id; 0 or -1. A Wait the socket does not take is
//  sent again as a lost answer is (S_SUBMIT_RESEND_MS).
static int
s_send_wait (drover_client_t *self, uint64_t job_id)
{
    drv_msg_t msg = {.type = DRV_MSG_WAIT, .seq = ++self->seq, .job_ids = &job_id,
                     .njob_ids = 1, .want_progress = self->progress != NULL};
    zframe_t *frame = drv_codec_encode (&msg);
    if (s_send_frame (self, &frame, S_SEND_WAIT_MS) == -1) {
        return s_fail (self, DROVER_ERR_NONE, EIO, "cannot send to the broker at %s",
                       self->endpoint);
    }
    self->status_seq = msg.seq;
    drv_msg_destroy (&self->status_reply);
    return 0;
}

//  Wait for a job this client holds no record of: the broker answers
//  once it has finished. A broker that restarts is asked again.
static int
s_wait_remote (drover_client_t *self, uint64_t job_id, int timeout_ms,
               drover_result_t **result_p)
{
    if (s_send_wait (self, job_id) == -1)
        return -1;
    int64_t deadline = s_deadline (timeout_ms);
    int64_t found_deadline = s_deadline (self->instance_size ? -1 : self->ack_timeout);
    int64_t sent_ms = zclock_mono ();
    uint8_t instance [DRV_INSTANCE_MAX];
    size_t instance_size = self->instance_size;
    memcpy (instance, self->instance, instance_size);
    while (!self->status_reply) {
        if (self->status_seq == 0)
            return -1;              //  refused: s_on_error said why
        int left = s_left (deadline);
        if (left == 0)
            return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                           "job %" PRIu64 " has no result after %d ms", job_id, timeout_ms);
        if (s_left (found_deadline) == 0)
            return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                           "no answer from the broker at %s within %d ms: is drover-broker "
                           "running there?",
                           self->endpoint, self->ack_timeout);
        if (s_receive (self, left) == -1)
            return -1;
        if (self->instance_size && found_deadline >= 0)
            found_deadline = -1;    //  a broker is there: wait as long as asked
        //  An answer lost with a broken connection is asked for again;
        //  the broker takes a repeated Wait as the same waiter.
        if (!self->status_reply && self->status_seq
            && zclock_mono () - sent_ms >= S_SUBMIT_RESEND_MS) {
            if (s_send_wait (self, job_id) == -1)
                return -1;
            sent_ms = zclock_mono ();
        }
        if (self->instance_size
            && (instance_size != self->instance_size
                || memcmp (instance, self->instance, instance_size) != 0)) {
            //  First contact, or a new run of the broker: ask (again).
            bool first = instance_size == 0;
            instance_size = self->instance_size;
            memcpy (instance, self->instance, instance_size);
            if (!first && !self->status_reply) {
                if (s_send_wait (self, job_id) == -1)
                    return -1;
                sent_ms = zclock_mono ();
            }
        }
    }
    drv_msg_t *reply = self->status_reply;
    self->status_reply = NULL;
    self->status_seq = 0;
    int rc = 0;
    if (reply->type != DRV_MSG_STATUS_REPLY || reply->njobs != 1 || !reply->jobs [0].has_result)
        rc = s_fail (self, DROVER_ERR_MALFORMED, EPROTO,
                     "the broker answered the wait for job %" PRIu64 " without its result",
                     job_id);
    else {
        drv_result_t *in = &reply->jobs [0].result;
        *result_p = drv_util_result_new (job_id, in->outcome, in->data, in->size, in->reason,
                                         in->attempts);
        if (!*result_p)
            rc = s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
        else
            (*result_p)->chunk = reply->jobs [0].chunk && in->size > 0;
    }
    drv_msg_destroy (&reply);
    return rc;
}

int
drover_client_wait (drover_client_t *self, uint64_t job_id, int timeout_ms,
                    drover_result_t **result_p)
{
    assert (result_p);
    *result_p = NULL;
    s_job_t *job = s_by_id (self, job_id);
    if (job && job->async)
        return s_fail (self, DROVER_ERR_NONE, EINVAL,
                       "job %" PRIu64 " has callbacks: drover_client_poll runs them", job_id);
    if (job && job->future)
        return s_fail (self, DROVER_ERR_NONE, EINVAL,
                       "job %" PRIu64 " has a future: drover_future_get takes its result",
                       job_id);
    if (job && job->chunk)
        return s_fail (self, DROVER_ERR_NONE, EINVAL,
                       "job %" PRIu64 " is a chunk of a map: the map takes its results", job_id);
    if (!job)
        return s_wait_remote (self, job_id, timeout_ms, result_p);
    int64_t deadline = s_deadline (timeout_ms);
    while (!job->result) {
        int left = s_left (deadline);
        if (left == 0)
            return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                           "job %" PRIu64 " has no result after %d ms", job_id, timeout_ms);
        if (s_receive (self, left) == -1)
            return -1;
    }
    *result_p = s_take (self, job);
    return 0;
}

int
drover_client_apply (drover_client_t *self, const char *function, const void *payload,
                     size_t size, const drover_options_t *options, int timeout_ms,
                     drover_result_t **result_p)
{
    uint64_t job_id;
    if (drover_client_submit (self, function, payload, size, options, &job_id) == -1)
        return -1;
    return drover_client_wait (self, job_id, timeout_ms, result_p);
}

int
drover_client_apply_async (drover_client_t *self, const char *function, const void *payload,
                           size_t size, const drover_options_t *options,
                           drover_callback_fn *callback, drover_callback_fn *error_callback,
                           void *arg, uint64_t *job_id)
{
    if (options && options->detach)
        return s_fail (self, DROVER_ERR_INVALID, EINVAL,
                       "detach goes with drover_client_submit, not with callbacks");
    uint64_t tag = self->next_tag;
    uint64_t id = 0;
    if (s_submit (self, function, 1, &payload, &size, options, true, &id) == -1)
        return -1;
    s_job_t *job = s_by_tag (self, tag);
    if (job) {
        job->callback = callback;
        job->error_callback = error_callback;
        job->arg = arg;
        self->async_pending++;
    }
    if (job_id)
        *job_id = id;
    return 0;
}

//  Run the callbacks of async jobs whose results are in.
static int
s_run_callbacks (drover_client_t *self)
{
    int ran = 0;
    s_job_t *job;
    while ((job = (s_job_t *) zlistx_first (self->ready))) {
        zlistx_delete (self->ready, zlistx_cursor (self->ready));
        drover_callback_fn *fn = job->result->outcome == DROVER_OUTCOME_OK
                                     ? job->callback
                                     : job->error_callback;
        void *arg = job->arg;
        drover_result_t *result = s_take (self, job);   //  job is gone now
        self->async_pending--;
        if (fn)
            fn (result, arg);
        drover_result_destroy (&result);
        ran++;
    }
    return ran;
}

int
drover_client_poll (drover_client_t *self, int timeout_ms)
{
    int64_t deadline = s_deadline (timeout_ms);
    int ran = s_run_callbacks (self);
    while (ran == 0) {
        int rc = s_receive (self, s_left (deadline));
        if (rc == -1)
            return -1;
        ran = s_run_callbacks (self);
        if (rc == 0)
            break;
    }
    return ran;
}

int
drover_client_join (drover_client_t *self, int timeout_ms)
{
    int64_t deadline = s_deadline (timeout_ms);
    int ran = s_run_callbacks (self);
    while (self->async_pending) {
        int left = s_left (deadline);
        if (left == 0)
            return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                           "%zu asynchronous jobs still pending after %d ms",
                           self->async_pending, timeout_ms);
        if (s_receive (self, left) == -1)
            return -1;
        ran += s_run_callbacks (self);
    }
    return ran;
}

//  A queue as the SDK describes it, from the broker's QueueInfo.
static void
s_queue_from_info (drover_queue_t *queue, const drv_queue_info_t *in)
{
    memset (queue, 0, sizeof *queue);
    drv_util_strlcpy (queue->function, in->function, sizeof queue->function);
    queue->limit = in->limit;
    queue->paused = in->paused;
    queue->max_queue = in->max_queue;
    queue->max_queue_in_force = in->max_queue_in_force;
    queue->queued = in->queued;
    queue->delayed = in->delayed;
    queue->running = in->running;
    queue->workers = in->workers;
}

//  Send a request answered by a StatusReply, and wait for the reply
//  (the caller's) or the broker's refusal.
static int
s_request (drover_client_t *self, drv_msg_t *msg, drv_msg_t **reply_p)
{
    if (s_auth_check (self) == -1)
        return -1;
    zframe_t *frame = drv_codec_encode (msg);
    if (s_send_frame (self, &frame, self->ack_timeout) != 0)
        return s_fail (self, DROVER_ERR_NONE, EIO, "cannot send to the broker at %s",
                       self->endpoint);
    self->status_seq = msg->seq;
    drv_msg_destroy (&self->status_reply);
    int64_t deadline = s_deadline (self->ack_timeout);
    while (!self->status_reply) {
        int left = s_left (deadline);
        if (self->status_seq == 0)
            return -1;              //  refused: s_on_error said why
        if (left == 0)
            return s_fail (self, DROVER_ERR_NONE, ETIMEDOUT,
                           "no answer from the broker at %s within %d ms: is drover-broker "
                           "running there?",
                           self->endpoint, self->ack_timeout);
        if (s_receive (self, left) == -1)
            return -1;
    }
    *reply_p = self->status_reply;
    self->status_reply = NULL;
    self->status_seq = 0;
    return 0;
}

//  Send a Status or Cancel for one job and wait for its StatusReply.
static int
s_query (drover_client_t *self, drv_msg_type_t type, uint64_t job_id, drover_status_t *status)
{
    drover_status_t scratch;
    if (!status)
        status = &scratch;
    memset (status, 0, sizeof *status);
    drv_msg_t msg = {.type = type, .seq = ++self->seq, .job_ids = &job_id, .njob_ids = 1};
    drv_msg_t *reply = NULL;
    if (s_request (self, &msg, &reply) == -1)
        return -1;
    int rc = 0;
    if (reply->type != DRV_MSG_STATUS_REPLY || reply->njobs != 1)
        rc = s_fail (self, DROVER_ERR_MALFORMED, EPROTO, "broker sent %zu job states for 1",
                     reply->njobs);
    else {
        drv_jobinfo_t *info = &reply->jobs [0];
        status->job_id = info->job_id;
        status->state = info->state;
        status->attempts = info->attempts;
        drv_util_strlcpy (status->function, info->function, sizeof status->function);
        drv_util_strlcpy (status->worker, info->worker, sizeof status->worker);
        if (info->has_result)
            status->outcome = info->result.outcome;
        status->priority = info->priority;
        status->run_in_ms = info->run_in_ms;
        status->chunk = info->chunk;
        if (info->has_progress) {
            status->has_progress = true;
            status->progress_done = info->progress.done;
            status->progress_total = info->progress.total;
            status->progress_size = info->progress.size;
            size_t keep = info->progress.size < sizeof status->progress_partial
                              ? info->progress.size
                              : sizeof status->progress_partial - 1;
            //  Cut text between characters, not inside one.
            while (keep && keep < info->progress.size
                   && (info->progress.partial [keep] & 0xc0) == 0x80)
                keep--;
            if (keep)
                memcpy (status->progress_partial, info->progress.partial, keep);
            status->progress_partial [keep] = 0;
        }
        if (info->state == DROVER_JOB_UNKNOWN)
            rc = s_fail (self, DROVER_ERR_UNKNOWN_JOB, ENOENT,
                         "the broker has no job %" PRIu64 " (never submitted, or expired)",
                         job_id);
    }
    drv_msg_destroy (&reply);
    return rc;
}

int
drover_client_status (drover_client_t *self, uint64_t job_id, drover_status_t *status)
{
    assert (status);
    return s_query (self, DRV_MSG_STATUS, job_id, status);
}

int
drover_client_cancel (drover_client_t *self, uint64_t job_id, drover_status_t *status)
{
    return s_query (self, DRV_MSG_CANCEL, job_id, status);
}

//  Send a QueueConfig and fill *queue (may be NULL) from the QueueInfo.
static int
s_queue_request (drover_client_t *self, drv_queue_info_t *config, drover_queue_t *queue)
{
    if (!drv_codec_valid_function (config->function))
        return s_fail (self, DROVER_ERR_INVALID, EINVAL,
                       "function name '%s' is not valid: use 1 to %d characters of A-Z a-z 0-9 "
                       "_ . : / -",
                       config->function ? config->function : "", DRV_FUNCTION_MAX);
    drv_msg_t msg = {.type = DRV_MSG_QUEUE_CONFIG, .seq = ++self->seq, .queue = *config};
    drv_msg_t *reply = NULL;
    if (s_request (self, &msg, &reply) == -1)
        return -1;
    int rc = 0;
    if (reply->type != DRV_MSG_QUEUE_INFO)
        rc = s_fail (self, DROVER_ERR_MALFORMED, EPROTO,
                     "the broker answered a queue request with something else");
    else
    if (queue)
        s_queue_from_info (queue, &reply->queue);
    drv_msg_destroy (&reply);
    return rc;
}

int
drover_client_queue (drover_client_t *self, const char *function, drover_queue_t *queue)
{
    drv_queue_info_t config = {.function = function};
    return s_queue_request (self, &config, queue);
}

int
drover_client_set_limit (drover_client_t *self, const char *function, uint32_t limit,
                         drover_queue_t *queue)
{
    drv_queue_info_t config = {.function = function, .set_limit = true, .limit = limit};
    return s_queue_request (self, &config, queue);
}

int
drover_client_pause (drover_client_t *self, const char *function, bool paused,
                     drover_queue_t *queue)
{
    drv_queue_info_t config = {.function = function, .set_paused = true, .paused = paused};
    return s_queue_request (self, &config, queue);
}

int
drover_client_set_max_queue (drover_client_t *self, const char *function, uint64_t max_queue,
                             drover_queue_t *queue)
{
    drv_queue_info_t config = {.function = function, .set_max_queue = true,
                               .max_queue = max_queue};
    return s_queue_request (self, &config, queue);
}

void
drover_dead_destroy (drover_dead_t **jobs_p, size_t count)
{
    assert (jobs_p);
    drover_dead_t *jobs = *jobs_p;
    if (jobs) {
        for (size_t i = 0; i < count; i++) {
            free (jobs [i].reason);
            free (jobs [i].payload);
        }
        free (jobs);
        *jobs_p = NULL;
    }
}

int
drover_client_dead (drover_client_t *self, drover_dead_op_t op, uint64_t job_id,
                    drover_dead_t **jobs_p, size_t *count)
{
    assert (jobs_p && count);
    *jobs_p = NULL;
    *count = 0;
    drv_msg_t msg = {.type = DRV_MSG_DEAD, .seq = ++self->seq, .dead_op = op,
                     .job_ids = &job_id, .njob_ids = job_id ? 1 : 0};
    drv_msg_t *reply = NULL;
    if (s_request (self, &msg, &reply) == -1)
        return -1;
    drover_dead_t *jobs = (drover_dead_t *) calloc (reply->njobs ? reply->njobs : 1, sizeof *jobs);
    if (!jobs) {
        drv_msg_destroy (&reply);
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < reply->njobs; i++) {
        drv_jobinfo_t *info = &reply->jobs [i];
        jobs [i].job_id = info->job_id;
        jobs [i].attempts = info->attempts;
        jobs [i].outcome = info->has_result ? info->result.outcome : 0;
        jobs [i].chunk = info->chunk;
        drv_util_strlcpy (jobs [i].function, info->function, sizeof jobs [i].function);
        jobs [i].reason = strdup (info->has_result ? info->result.reason : "");
        jobs [i].payload = (uint8_t *) malloc (info->size + 1);
        if (jobs [i].payload) {
            if (info->size)
                memcpy (jobs [i].payload, info->payload, info->size);
            jobs [i].payload [info->size] = 0;
            jobs [i].size = info->size;
        }
    }
    *jobs_p = jobs;
    *count = reply->njobs;
    drv_msg_destroy (&reply);
    return 0;
}

//  ---------------------------------------------------------------------
//  Admin views

//  Send an admin view's query and wait for its reply, of type `type`.
//  A broker that does not know the query (older than the views) answers
//  ERR_MALFORMED: that is said plainly. `what` names the view.
static int
s_view_request (drover_client_t *self, drv_msg_t *msg, drv_msg_type_t type, const char *what,
                drv_msg_t **reply_p)
{
    msg->seq = ++self->seq;
    if (s_request (self, msg, reply_p) == -1) {
        if (self->error_code == DROVER_ERR_MALFORMED) {
            char said [sizeof self->error];
            drv_util_strlcpy (said, self->error, sizeof said);
            return s_fail (self, DROVER_ERR_MALFORMED, EPROTO,
                           "the broker at %s is too old for %s: it does not know the request "
                           "(upgrade drover-broker; %s)",
                           self->endpoint, what, said);
        }
        return -1;
    }
    if ((*reply_p)->type != type) {
        drv_msg_destroy (reply_p);
        return s_fail (self, DROVER_ERR_MALFORMED, EPROTO,
                       "the broker answered the %s request with something else", what);
    }
    return 0;
}

int
drover_client_jobs (drover_client_t *self, const drover_jobs_query_t *query,
                    drover_job_info_t **jobs_p, size_t *count, uint64_t *total)
{
    assert (jobs_p && count);
    *jobs_p = NULL;
    *count = 0;
    drover_jobs_query_t defaults = {0};
    if (!query)
        query = &defaults;
    if (query->function && !drv_codec_valid_function (query->function))
        return s_fail (self, DROVER_ERR_INVALID, EINVAL,
                       "function name '%s' is not valid: use 1 to %d characters of A-Z a-z 0-9 "
                       "_ . : / -",
                       query->function, DRV_FUNCTION_MAX);
    if (query->limit > DRV_JOBS_LIMIT_MAX || (int) query->state < DROVER_JOBS_ANY
        || (int) query->state > DROVER_JOBS_FINISHED)
        return s_fail (self, DROVER_ERR_INVALID, EINVAL,
                       "a job list holds 1 to %d jobs (0: %d), of a known state",
                       DRV_JOBS_LIMIT_MAX, DRV_JOBS_LIMIT_DEFAULT);
    drv_msg_t msg = {.type = DRV_MSG_JOBS_QUERY,
                     .jobs_query = {.function = query->function, .state = query->state,
                                    .limit = query->limit,
                                    .newest_first = query->newest_first}};
    drv_msg_t *reply = NULL;
    if (s_view_request (self, &msg, DRV_MSG_JOB_LIST, "the job list (drover jobs)", &reply) == -1)
        return -1;
    drover_job_info_t *jobs =
        (drover_job_info_t *) calloc (reply->nrows ? reply->nrows : 1, sizeof *jobs);
    if (!jobs) {
        drv_msg_destroy (&reply);
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < reply->nrows; i++) {
        const drv_job_row_t *row = &reply->rows [i];
        drover_job_info_t *job = &jobs [i];
        job->job_id = row->job_id;
        drv_util_strlcpy (job->function, row->function, sizeof job->function);
        job->state = row->state;
        job->delayed = row->delayed;
        job->priority = row->priority;
        job->attempts = row->attempts;
        drv_util_strlcpy (job->worker, row->worker, sizeof job->worker);
        job->age_ms = row->age_ms;
        job->run_in_ms = row->run_in_ms;
        job->outcome = row->outcome;
    }
    *jobs_p = jobs;
    *count = reply->nrows;
    if (total)
        *total = reply->total;
    drv_msg_destroy (&reply);
    return 0;
}

void
drover_jobs_destroy (drover_job_info_t **jobs_p)
{
    assert (jobs_p);
    free (*jobs_p);
    *jobs_p = NULL;
}

void
drover_workers_destroy (drover_worker_info_t **workers_p, size_t count)
{
    assert (workers_p);
    drover_worker_info_t *workers = *workers_p;
    if (workers) {
        for (size_t i = 0; i < count; i++) {
            for (size_t f = 0; workers [i].functions && f < workers [i].nfunctions; f++)
                free (workers [i].functions [f]);
            free (workers [i].functions);
        }
        free (workers);
        *workers_p = NULL;
    }
}

//  A routing id for people: as it is when printable, else in hex.
static void
s_identity_text (const uint8_t *identity, size_t size, char *out, size_t out_size)
{
    bool printable = size > 0;
    for (size_t i = 0; i < size; i++)
        printable = printable && identity [i] > 32 && identity [i] < 127;
    if (printable && size < out_size) {
        memcpy (out, identity, size);
        out [size] = 0;
    }
    else
    if (2 * size < out_size)
        drv_util_hex (identity, size, out);
    else
        out [0] = 0;
}

int
drover_client_workers (drover_client_t *self, drover_worker_info_t **workers_p, size_t *count,
                       size_t *total)
{
    assert (workers_p && count);
    *workers_p = NULL;
    *count = 0;
    drv_msg_t msg = {.type = DRV_MSG_WORKERS_QUERY};
    drv_msg_t *reply = NULL;
    if (s_view_request (self, &msg, DRV_MSG_WORKER_LIST, "the worker list (drover workers)",
                        &reply)
        == -1)
        return -1;
    size_t n = reply->nworker_rows;
    drover_worker_info_t *workers = (drover_worker_info_t *) calloc (n ? n : 1, sizeof *workers);
    bool ok = workers != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        const drv_worker_row_t *row = &reply->worker_rows [i];
        drover_worker_info_t *worker = &workers [i];
        drv_util_strlcpy (worker->name, row->name, sizeof worker->name);
        s_identity_text (row->identity, row->identity_size, worker->identity,
                         sizeof worker->identity);
        worker->functions = (char **) calloc (row->nfunctions ? row->nfunctions : 1,
                                              sizeof (char *));
        ok = worker->functions != NULL;
        for (size_t f = 0; ok && f < row->nfunctions; f++) {
            worker->functions [f] = strdup (row->functions [f]);
            ok = worker->functions [f] != NULL;
            worker->nfunctions = f + 1;
        }
        worker->slots = row->slots;
        worker->running = row->running;
        worker->done = row->done;
        worker->connected_ms = row->connected_ms;
        worker->heard_ms = row->heard_ms;
    }
    size_t listed_total = reply->total;
    drv_msg_destroy (&reply);
    if (!ok) {
        drover_workers_destroy (&workers, n);
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    *workers_p = workers;
    *count = n;
    if (total)
        *total = listed_total;
    return 0;
}

int
drover_client_queues (drover_client_t *self, drover_queue_t **queues_p, size_t *count,
                      size_t *total)
{
    assert (queues_p && count);
    *queues_p = NULL;
    *count = 0;
    drv_msg_t msg = {.type = DRV_MSG_QUEUES_QUERY};
    drv_msg_t *reply = NULL;
    if (s_view_request (self, &msg, DRV_MSG_QUEUE_LIST, "the queue list (drover queues)", &reply)
        == -1)
        return -1;
    drover_queue_t *queues =
        (drover_queue_t *) calloc (reply->nqueues ? reply->nqueues : 1, sizeof *queues);
    if (!queues) {
        drv_msg_destroy (&reply);
        return s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < reply->nqueues; i++)
        s_queue_from_info (&queues [i], &reply->queues [i]);
    *queues_p = queues;
    *count = reply->nqueues;
    if (total)
        *total = reply->total;
    drv_msg_destroy (&reply);
    return 0;
}

void
drover_queues_destroy (drover_queue_t **queues_p)
{
    assert (queues_p);
    free (*queues_p);
    *queues_p = NULL;
}

int
drover_client_stats (drover_client_t *self, drover_stats_t *stats)
{
    assert (stats);
    drv_msg_t msg = {.type = DRV_MSG_STATS_QUERY};
    drv_msg_t *reply = NULL;
    if (s_view_request (self, &msg, DRV_MSG_STATS, "its counters (drover stats)", &reply) == -1)
        return -1;
    *stats = reply->stats;
    drv_msg_destroy (&reply);
    return 0;
}

char *
drover_client_metrics (drover_client_t *self)
{
    drover_stats_t stats;
    drover_queue_t *queues = NULL;
    size_t count = 0, total = 0;
    if (drover_client_stats (self, &stats) == -1
        || drover_client_queues (self, &queues, &count, &total) == -1)
        return NULL;
    char *text = drv_metrics_text (&stats, queues, count, total);
    drover_queues_destroy (&queues);
    if (!text)
        s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    return text;
}

//  ---------------------------------------------------------------------
//  imap: ordered streaming map

//  Let the buffered payloads go that no job took: blocks, or frames.
static void
s_imap_release (drover_imap_t *self)
{
    for (size_t i = 0; i < self->buffered; i++) {
        if (self->frames && self->frames [i])
            s_frame_destroy (&self->frames [i]);
        else
            free (self->payloads [i]);
        self->payloads [i] = NULL;
    }
}

drover_imap_t *
drover_imap_new (drover_client_t *client, const char *function, const drover_options_t *options)
{
    if (!client)
        return NULL;
    if (!drv_codec_valid_function (function)) {
        s_fail (client, DROVER_ERR_INVALID, EINVAL,
                "function name '%s' is not valid: use 1 to %d characters of A-Z a-z 0-9 _ . : / -",
                function ? function : "", DRV_FUNCTION_MAX);
        return NULL;
    }
    if (options && (options->detach || (options->unique && *options->unique))) {
        s_fail (client, DROVER_ERR_INVALID, EINVAL,
                "a map takes neither detach nor a unique key: submit such tasks one by one");
        return NULL;
    }
    drover_imap_t *self = (drover_imap_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->client = client;
    self->function = strdup (function);
    self->payloads = (uint8_t **) calloc (S_BATCH_TASKS, sizeof (uint8_t *));
    self->frames = (zmq_msg_t **) calloc (S_BATCH_TASKS, sizeof (zmq_msg_t *));
    self->sizes = (size_t *) calloc (S_BATCH_TASKS, sizeof (size_t));
    self->seqs = zlistx_new ();
    self->chunk_size = 1;
    self->batch = S_BATCH_TASKS;
    self->each = true;
    if (options)
        self->options = *options;
    if (!self->function || !self->payloads || !self->frames || !self->sizes || !self->seqs) {
        drover_imap_destroy (&self);
        return NULL;
    }
    return self;
}

void
drover_imap_destroy (drover_imap_t **self_p)
{
    assert (self_p);
    drover_imap_t *self = *self_p;
    if (self) {
        //  Forget what this map still waits for, so the client drops it.
        for (size_t i = self->unordered ? 0 : self->head; i < self->tail; i++) {
            s_job_t *job = s_by_tag (self->client, self->order [i]);
            if (job) {
                drover_result_t *result = s_take (self->client, job);
                drover_result_destroy (&result);
            }
        }
        for (void *seq = zlistx_first (self->seqs); seq; seq = zlistx_next (self->seqs))
            zhashx_delete (self->client->submits, seq);
        s_imap_release (self);
        zlistx_destroy (&self->seqs);
        zlistx_destroy (&self->arrived);
        free (self->payloads);
        free (self->frames);
        free (self->sizes);
        free (self->order);
        free (self->function);
        free (self);
        *self_p = NULL;
    }
}

//  Settle the acknowledged Submits at the front; a refused one gives its
//  tasks their results (each), or is -1.
static int
s_imap_settle (drover_imap_t *self)
{
    void *seq;
    while ((seq = zlistx_first (self->seqs))) {
        int rc = s_submit_settle (self->client, (uint64_t) (uintptr_t) seq, self->each);
        if (rc == 1)
            break;
        zlistx_delete (self->seqs, zlistx_cursor (self->seqs));
        if (rc == -1)
            return -1;
    }
    return 0;
}

//  drover_imap_flush for a chunked map: each run of chunk_size buffered
//  pushes (the last may be shorter) is packed as one task, one job.
static int
s_imap_flush_chunks (drover_imap_t *self)
{
    size_t start = self->tail - self->buffered;
    size_t chunks = (self->buffered + self->chunk_size - 1) / self->chunk_size;
    uint8_t **packed = (uint8_t **) calloc (chunks, sizeof (uint8_t *));
    size_t *sizes = (size_t *) calloc (chunks, sizeof (size_t));
    uint64_t *tags = (uint64_t *) calloc (chunks, sizeof (uint64_t));
    bool ok = packed && sizes && tags;
    for (size_t c = 0; ok && c < chunks; c++) {
        size_t first = c * self->chunk_size;
        size_t n = self->buffered - first < self->chunk_size ? self->buffered - first
                                                              : self->chunk_size;
        packed [c] = drv_codec_chunk_pack (n, (const void *const *) self->payloads + first,
                                           self->sizes + first, &sizes [c]);
        tags [c] = self->order [start + first];
        ok = packed [c] != NULL;
    }
    uint64_t seq = 0;
    if (ok)
        seq = s_submit_send (self->client, self->function, chunks, (const void *const *) packed,
                             sizes, tags, &self->options, false, true, S_SEND_NEW, 0, packed,
                             NULL);
    for (size_t c = 0; seq && c < chunks; c++) {
        s_job_t *job = s_by_tag (self->client, tags [c]);
        if (job) {
            size_t first = c * self->chunk_size;
            job->imap = self->unordered ? self : NULL;
            job->index = start + first;
            job->nitems = self->buffered - first < self->chunk_size ? self->buffered - first
                                                                     : self->chunk_size;
        }
    }
    for (size_t c = 0; packed && c < chunks; c++)
        free (packed [c]);
    free (packed);
    free (sizes);
    free (tags);
    s_imap_release (self);
    self->buffered = 0;
    self->buffered_bytes = 0;
    if (!ok)
        return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    if (!seq)
        return -1;
    zlistx_add_end (self->seqs, (void *) (uintptr_t) seq);
    return s_imap_settle (self);
}

int
drover_imap_flush (drover_imap_t *self)
{
    if (!self->buffered)
        return 0;
    //  Keep a window of unacknowledged Submits; wait for the oldest.
    while (zlistx_size (self->seqs) >= S_SUBMIT_WINDOW) {
        uint64_t seq = (uint64_t) (uintptr_t) zlistx_first (self->seqs);
        zlistx_delete (self->seqs, zlistx_cursor (self->seqs));
        if (s_submit_await (self->client, seq, self->each) == -1)
            return -1;
    }
    if (self->chunk_size > 1)
        return s_imap_flush_chunks (self);
    uint64_t *tags = self->order + self->tail - self->buffered;
    uint64_t seq = s_submit_send (self->client, self->function, self->buffered,
                                  (const void *const *) self->payloads, self->sizes, tags,
                                  &self->options, false, false, S_SEND_NEW, 0, self->payloads,
                                  self->frames);
    for (size_t i = 0; seq && self->unordered && i < self->buffered; i++) {
        s_job_t *job = s_by_tag (self->client, tags [i]);
        if (job) {
            job->imap = self;
            job->index = self->tail - self->buffered + i;
        }
    }
    s_imap_release (self);
    self->buffered = 0;
    self->buffered_bytes = 0;
    if (!seq)
        return -1;
    zlistx_add_end (self->seqs, (void *) (uintptr_t) seq);
    return s_imap_settle (self);
}

//  Make room in the push order for one more push.
static int
s_imap_reserve (drover_imap_t *self)
{
    if (self->tail == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 1024;
        uint64_t *order = (uint64_t *) realloc (self->order, capacity * sizeof (uint64_t));
        if (!order)
            return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
        self->order = order;
        self->capacity = capacity;
    }
    return 0;
}

//  Buffer one push (after s_imap_reserve), which the map takes over:
//  payload is a block of its own, or points into frame. Sends the batch
//  once it is full.
static int
s_imap_buffer (drover_imap_t *self, uint8_t *payload, zmq_msg_t *frame, size_t size)
{
    self->payloads [self->buffered] = payload;
    self->frames [self->buffered] = frame;
    self->sizes [self->buffered] = size;
    //  In a chunked map the pushes of one chunk share its job's tag.
    bool same_chunk = self->chunk_size > 1 && self->buffered % self->chunk_size != 0;
    self->order [self->tail] = same_chunk ? self->order [self->tail - 1] : self->client->next_tag++;
    self->tail++;
    self->buffered++;
    self->buffered_bytes += size;
    if (self->buffered == self->batch
        || (self->buffered_bytes >= S_BATCH_BYTES
            && (self->chunk_size == 1 || self->buffered % self->chunk_size == 0)))
        return drover_imap_flush (self);
    return 0;
}

int
drover_imap_push (drover_imap_t *self, const void *payload, size_t size)
{
    if (s_imap_reserve (self) == -1)
        return -1;
    //  A payload that will go as a payload frame is copied into one
    //  straight away, which the job then keeps: no second copy.
    zmq_msg_t *frame = self->chunk_size == 1 && size >= DRV_FRAME_MIN
                           ? s_frame_copy (payload, size)
                           : NULL;
    uint8_t *copy = frame ? (uint8_t *) zmq_msg_data (frame) : (uint8_t *) malloc (size ? size : 1);
    if (!copy)
        return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    if (size && !frame)
        memcpy (copy, payload, size);
    return s_imap_buffer (self, copy, frame, size);
}

int
drover_imap_push_owned (drover_imap_t *self, void *data, size_t size, drover_free_fn *free_fn,
                        void *hint)
{
    if (!free_fn)
        return s_fail (self->client, DROVER_ERR_INVALID, EINVAL,
                       "an owned push needs the function that frees its payload");
    //  A small payload goes inside the envelope, and a chunk packs its
    //  items into one block: copied either way, so the caller's goes now.
    if (size < DRV_FRAME_MIN || self->chunk_size != 1) {
        int rc = drover_imap_push (self, data, size);
        free_fn (data, hint);
        return rc;
    }
    if (s_imap_reserve (self) == -1) {
        free_fn (data, hint);
        return -1;
    }
    //  From here the frame holds the block: whoever lets go of it last
    //  (a job, the buffer, a copy in flight) frees it.
    zmq_msg_t *frame = s_frame_adopt (data, size, free_fn, hint);
    if (!frame)
        return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    return s_imap_buffer (self, (uint8_t *) data, frame, size);
}

int
drover_imap_set_chunk_size (drover_imap_t *self, size_t chunk_size)
{
    if (self->tail)
        return s_fail (self->client, DROVER_ERR_INVALID, EINVAL,
                       "choose the chunk size of a map before its first push");
    if (chunk_size > DROVER_CHUNK_SIZE_MAX)
        return s_fail (self->client, DROVER_ERR_INVALID, EINVAL,
                       "a chunk size is at most %d, not %zu", DROVER_CHUNK_SIZE_MAX, chunk_size);
    chunk_size = chunk_size ? chunk_size : 1;
    //  A batch is whole chunks: as many as fit in S_BATCH_TASKS, at least one.
    size_t batch = chunk_size * (S_BATCH_TASKS / chunk_size ? S_BATCH_TASKS / chunk_size : 1);
    if (batch > self->batch) {
        uint8_t **payloads = (uint8_t **) realloc (self->payloads, batch * sizeof (uint8_t *));
        if (payloads)
            self->payloads = payloads;
        zmq_msg_t **frames = (zmq_msg_t **) realloc (self->frames, batch * sizeof (zmq_msg_t *));
        if (frames)
            self->frames = frames;
        size_t *sizes = (size_t *) realloc (self->sizes, batch * sizeof (size_t));
        if (sizes)
            self->sizes = sizes;
        if (!payloads || !frames || !sizes)
            return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    self->batch = batch;
    self->chunk_size = chunk_size;
    return 0;
}

//  Take the next item's result of a chunk job (in order) and forget the
//  job once every item's was taken. NULL (with the error set) if out of
//  memory.
static drover_result_t *
s_take_item (drover_client_t *self, s_job_t *job)
{
    drover_result_t *result = NULL;
    if (job->items && job->items_taken < job->nitems) {
        result = job->items [job->items_taken];
        job->items [job->items_taken] = NULL;
    }
    job->items_taken++;
    if (job->items_taken >= job->nitems) {
        drover_result_t *whole = s_take (self, job);
        drover_result_destroy (&whole);
    }
    if (!result)
        s_fail (self, DROVER_ERR_NONE, ENOMEM, "out of memory");
    return result;
}

int
drover_imap_set_unordered (drover_imap_t *self, bool unordered)
{
    if (self->tail)
        return s_fail (self->client, DROVER_ERR_INVALID, EINVAL,
                       "choose the order of a map before its first push");
    if (unordered && !self->arrived) {
        self->arrived = zlistx_new ();
        if (!self->arrived)
            return s_fail (self->client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    }
    self->unordered = unordered;
    return 0;
}

//  drover_imap_next_index for an unordered map: the first result in.
static int
s_imap_next_unordered (drover_imap_t *self, int timeout_ms, drover_result_t **result_p,
                       size_t *index_p)
{
    if (self->taken == self->tail)
        return 1;
    //  Send what is buffered when nothing sent is left to wait for, or
    //  when asked to wait: a caller polling with 0 between pushes keeps
    //  its batches whole.
    //  A chunked map polled with 0 sends only whole chunks.
    bool nothing_sent = self->taken >= self->tail - self->buffered
                        && self->buffered % self->chunk_size == 0;
    if (self->buffered && (timeout_ms != 0 || nothing_sent) && drover_imap_flush (self) == -1)
        return -1;
    int64_t deadline = s_deadline (timeout_ms);
    while (true) {
        if (s_imap_settle (self) == -1)
            return -1;
        s_job_t *job = (s_job_t *) zlistx_first (self->arrived);
        if (job && job->chunk) {
            if (index_p)
                *index_p = job->index + job->items_taken;
            if (job->items_taken + 1 >= job->nitems)
                zlistx_delete (self->arrived, zlistx_cursor (self->arrived));
            *result_p = s_take_item (self->client, job);
            self->taken++;
            return *result_p ? 0 : -1;
        }
        if (job) {
            zlistx_delete (self->arrived, zlistx_cursor (self->arrived));
            if (index_p)
                *index_p = job->index;
            *result_p = s_take (self->client, job);
            self->taken++;
            return 0;
        }
        int left = s_left (deadline);
        if (left == 0) {
            int rc;
            while ((rc = s_receive (self->client, 0)) == 1 && !zlistx_size (self->arrived))
                ;
            if (rc == -1)
                return -1;
            if (zlistx_size (self->arrived))
                continue;
            return s_fail (self->client, DROVER_ERR_NONE, ETIMEDOUT,
                           "no result of the map has come yet");
        }
        if (s_receive (self->client, left) == -1)
            return -1;
    }
}

int
drover_imap_next (drover_imap_t *self, int timeout_ms, drover_result_t **result_p)
{
    return drover_imap_next_index (self, timeout_ms, result_p, NULL);
}

int
drover_imap_next_index (drover_imap_t *self, int timeout_ms, drover_result_t **result_p,
                        size_t *index_p)
{
    assert (result_p);
    *result_p = NULL;
    if (self->unordered)
        return s_imap_next_unordered (self, timeout_ms, result_p, index_p);
    if (self->head == self->tail)
        return 1;
    if (index_p)
        *index_p = self->head;
    //  The next result can only come if its task was sent. A chunked map
    //  polled with 0 sends only whole chunks: the caller is still pushing.
    if (self->head >= self->tail - self->buffered) {
        if (timeout_ms == 0 && self->buffered % self->chunk_size != 0)
            return s_fail (self->client, DROVER_ERR_NONE, ETIMEDOUT,
                           "task %zu of the map waits for its chunk to fill", self->head + 1);
        if (drover_imap_flush (self) == -1)
            return -1;
    }
    int64_t deadline = s_deadline (timeout_ms);
    uint64_t tag = self->order [self->head];
    while (true) {
        if (s_imap_settle (self) == -1)
            return -1;
        s_job_t *job = s_by_tag (self->client, tag);
        if (!job)
            return s_fail (self->client, DROVER_ERR_INTERNAL, EIO,
                           "task %zu of the map was lost", self->head + 1);
        if (job->result && job->chunk) {
            //  Items of a chunk are taken in order, so the next is this one.
            *result_p = s_take_item (self->client, job);
            self->head++;
            return *result_p ? 0 : -1;
        }
        if (job->result) {
            *result_p = s_take (self->client, job);
            self->head++;
            return 0;
        }
        int left = s_left (deadline);
        if (left == 0) {
            //  Out of time: take what has arrived already, then give up.
            int rc;
            while ((rc = s_receive (self->client, 0)) == 1 && !job->result)
                ;
            if (rc == -1)
                return -1;
            if (job->result)
                continue;
            return s_fail (self->client, DROVER_ERR_NONE, ETIMEDOUT,
                           "task %zu of the map has no result yet", self->head + 1);
        }
        if (s_receive (self->client, left) == -1)
            return -1;
    }
}

size_t
drover_imap_pending (drover_imap_t *self)
{
    return self->tail - (self->unordered ? self->taken : self->head);
}

int
drover_client_map (drover_client_t *self, const char *function, size_t count,
                   const void *const *payloads, const size_t *sizes,
                   const drover_options_t *options, int timeout_ms, drover_result_t **results)
{
    return drover_client_map_chunked (self, function, count, payloads, sizes, 1, options,
                                      timeout_ms, results);
}

int
drover_client_map_chunked (drover_client_t *self, const char *function, size_t count,
                           const void *const *payloads, const size_t *sizes, size_t chunk_size,
                           const drover_options_t *options, int timeout_ms,
                           drover_result_t **results)
{
    memset (results, 0, count * sizeof *results);
    drover_imap_t *imap = drover_imap_new (self, function, options);
    if (imap)
        imap->each = false;         //  one call: a refusal fails it
    if (imap && drover_imap_set_chunk_size (imap, chunk_size) == -1)
        drover_imap_destroy (&imap);
    if (!imap)
        return -1;
    int64_t deadline = s_deadline (timeout_ms);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = drover_imap_push (imap, payloads [i], sizes [i]);
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = drover_imap_next (imap, s_left (deadline), &results [i]) == 0 ? 0 : -1;
    if (rc == -1)
        for (size_t i = 0; i < count; i++)
            drover_result_destroy (&results [i]);
    drover_imap_destroy (&imap);
    return rc;
}

//  ---------------------------------------------------------------------
//  Futures (AsyncResult): one job's result, or a whole map's, collected
//  when asked. A future's jobs are marked so that nothing else takes
//  their results; while a future waits, other jobs' results are kept in
//  the client for whoever waits on them, as with any receive.

struct _drover_future_t {
    drover_client_t *client;         //  borrowed
    uint64_t tag;                    //  apply: the job's tag; 0 for a map
    uint64_t job_id;                 //  apply: the broker's id; 0 for a map
    drover_imap_t *imap;             //  map: an unordered map collecting, or NULL
    drover_result_t **results;       //  results as they come in, owned
    size_t count;                    //  entries in results
    size_t in;                       //  results in so far
    bool broken;                     //  the client failed: error says why
    drover_error_t error_code;       //  its code
    char error [1024];               //  and its sentence
};

static drover_future_t *
s_future_new (drover_client_t *client, size_t count)
{
    drover_future_t *self = (drover_future_t *) calloc (1, sizeof *self);
    if (self)
        self->results = (drover_result_t **) calloc (count ? count : 1,
                                                     sizeof (drover_result_t *));
    if (!self || !self->results) {
        free (self);
        s_fail (client, DROVER_ERR_NONE, ENOMEM, "out of memory");
        return NULL;
    }
    self->client = client;
    self->count = count;
    return self;
}

drover_future_t *
drover_client_apply_future (drover_client_t *self, const char *function, const void *payload,
                            size_t size, const drover_options_t *options)
{
    if (options && options->detach) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL,
                "detach goes with drover_client_submit, not with a future");
        return NULL;
    }
    drover_future_t *future = s_future_new (self, 1);
    if (!future)
        return NULL;
    future->tag = self->next_tag;
    if (s_submit (self, function, 1, &payload, &size, options, false, &future->job_id) == -1) {
        drover_future_destroy (&future);
        return NULL;
    }
    s_job_t *job = s_by_tag (self, future->tag);
    if (job)
        job->future = true;
    return future;
}

drover_future_t *
drover_client_map_async (drover_client_t *self, const char *function, size_t count,
                         const void *const *payloads, const size_t *sizes, size_t chunk_size,
                         const drover_options_t *options)
{
    if (count == 0) {
        s_fail (self, DROVER_ERR_INVALID, EINVAL, "nothing to map");
        return NULL;
    }
    drover_future_t *future = s_future_new (self, count);
    if (!future)
        return NULL;
    future->imap = drover_imap_new (self, function, options);
    if (future->imap)
        future->imap->each = false; //  one call: a refusal fails it
    int rc = future->imap ? 0 : -1;
    if (rc == 0)
        rc = drover_imap_set_unordered (future->imap, true);
    if (rc == 0)
        rc = drover_imap_set_chunk_size (future->imap, chunk_size);
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = drover_imap_push (future->imap, payloads [i], sizes [i]);
    if (rc == 0)
        rc = drover_imap_flush (future->imap);
    //  Acknowledged, so that every job has its id (drover_future_cancel).
    void *seq;
    while (rc == 0 && (seq = zlistx_first (future->imap->seqs))) {
        zlistx_delete (future->imap->seqs, zlistx_cursor (future->imap->seqs));
        rc = s_submit_await (self, (uint64_t) (uintptr_t) seq, false);
    }
    if (rc == -1) {
        drover_future_destroy (&future);
        return NULL;
    }
    return future;
}

void
drover_future_destroy (drover_future_t **self_p)
{
    assert (self_p);
    drover_future_t *self = *self_p;
    if (self) {
        //  A result still to come is dropped when it does.
        s_job_t *job = self->tag ? s_by_tag (self->client, self->tag) : NULL;
        if (job) {
            drover_result_t *result = s_take (self->client, job);
            drover_result_destroy (&result);
        }
        drover_imap_destroy (&self->imap);
        for (size_t i = 0; i < self->count; i++)
            drover_result_destroy (&self->results [i]);
        free (self->results);
        free (self);
        *self_p = NULL;
    }
}

//  The client failed under the future: keep why, for drover_future_get.
static int
s_future_break (drover_future_t *self)
{
    self->broken = true;
    self->error_code = self->client->error_code;
    drv_util_strlcpy (self->error, self->client->error, sizeof self->error);
    return -1;
}

//  Take what has arrived for the future. 0, or -1 if the client failed.
static int
s_future_collect (drover_future_t *self)
{
    if (self->in == self->count || self->broken)
        return self->broken ? -1 : 0;
    if (!self->imap) {
        s_job_t *job = s_by_tag (self->client, self->tag);
        if (!job) {
            s_fail (self->client, DROVER_ERR_INTERNAL, EIO, "job %" PRIu64 " was lost",
                    self->job_id);
            return s_future_break (self);
        }
        if (job->result) {
            self->results [0] = s_take (self->client, job);
            self->in = 1;
        }
        return 0;
    }
    drover_result_t *result;
    size_t index;
    int rc;
    while (self->in < self->count
           && (rc = drover_imap_next_index (self->imap, 0, &result, &index)) != 1) {
        if (rc == -1)
            return errno == ETIMEDOUT ? 0 : s_future_break (self);
        if (index < self->count && !self->results [index]) {
            self->results [index] = result;
            self->in++;
        }
        else
            drover_result_destroy (&result);
    }
    return 0;
}

bool
drover_future_ready (drover_future_t *self)
{
    //  Take what the socket holds already, without waiting (a map's
    //  drover_imap_next_index with 0 does that itself).
    if (s_future_collect (self) == 0 && !self->imap) {
        int rc = 0;
        while (self->in < self->count && (rc = s_receive (self->client, 0)) == 1)
            s_future_collect (self);
        if (rc == -1)
            s_future_break (self);
    }
    return self->in == self->count || self->broken;
}

bool
drover_future_successful (drover_future_t *self)
{
    if (self->broken || self->in < self->count)
        return false;
    for (size_t i = 0; i < self->count; i++)
        if (!self->results [i] || self->results [i]->outcome != DROVER_OUTCOME_OK)
            return false;
    return true;
}

int
drover_future_wait (drover_future_t *self, int timeout_ms)
{
    int64_t deadline = s_deadline (timeout_ms);
    while (!drover_future_ready (self)) {
        int left = s_left (deadline);
        if (left == 0)
            return s_fail (self->client, DROVER_ERR_NONE, ETIMEDOUT,
                           "%zu of %zu results still to come after %d ms",
                           self->count - self->in, self->count, timeout_ms);
        if (s_receive (self->client, left) == -1) {
            s_future_break (self);
            break;
        }
    }
    if (self->broken) {
        self->client->error_code = self->error_code;
        drv_util_strlcpy (self->client->error, self->error, sizeof self->client->error);
        errno = EIO;
        return -1;
    }
    return 0;
}

int
drover_future_get (drover_future_t *self, int timeout_ms, const drover_result_t **result_p)
{
    if (result_p)
        *result_p = NULL;
    if (drover_future_wait (self, timeout_ms) == -1)
        return -1;
    if (result_p)
        *result_p = self->results [0];
    return 0;
}

size_t
drover_future_count (drover_future_t *self)
{
    return self->count;
}

const drover_result_t *
drover_future_result (drover_future_t *self, size_t index)
{
    return index < self->count ? self->results [index] : NULL;
}

uint64_t
drover_future_job_id (drover_future_t *self)
{
    return self->job_id;
}

int
drover_future_cancel (drover_future_t *self)
{
    drover_client_t *client = self->client;
    if (drover_future_ready (self))
        return 0;
    size_t count = 0;
    uint64_t *ids = (uint64_t *) calloc (self->count, sizeof (uint64_t));
    if (!ids)
        return s_fail (client, DROVER_ERR_NONE, ENOMEM, "out of memory");
    if (!self->imap)
        ids [count++] = self->job_id;
    else
        for (size_t i = 0; i < self->imap->tail; i++) {
            //  One id per job: the pushes of a chunk share theirs.
            if (i && self->imap->order [i] == self->imap->order [i - 1])
                continue;
            s_job_t *job
                = s_by_tag (client, self->imap->order [i]);
            if (job && job->job_id && !job->result)
                ids [count++] = job->job_id;
        }
    //  In Cancels of S_BATCH_TASKS ids at most.
    int rc = 0;
    for (size_t first = 0; rc == 0 && first < count; first += S_BATCH_TASKS) {
        size_t n = count - first < S_BATCH_TASKS ? count - first : S_BATCH_TASKS;
        drv_msg_t msg = {.type = DRV_MSG_CANCEL, .seq = ++client->seq, .job_ids = ids + first,
                         .njob_ids = n};
        drv_msg_t *reply = NULL;
        rc = s_request (client, &msg, &reply);
        if (rc == 0 && reply->type != DRV_MSG_STATUS_REPLY)
            rc = s_fail (client, DROVER_ERR_MALFORMED, EPROTO,
                         "the broker answered a cancel with something else");
        drv_msg_destroy (&reply);
    }
    free (ids);
    return rc;
}
