/*  drv_codec - drover's own message structs and their wire form.

    The only module that knows protobuf-c. Decoding validates every field
    before it returns, so nothing the peer sent is trusted past this file;
    the drv_msg_t keeps the unpacked protobuf-c message and points into it
    (strings and bytes are not copied a second time), and frees it with
    itself. Encoding builds protobuf-c structs on the stack that point
    into the caller's data and packs them into one zframe. It is not a
    transport: no sockets here.

    Payload frames. A Submit's or Dispatch's task may carry its payload in
    a frame of its own after the envelope (drv_task_t.framed): the sender
    encodes the envelope, then sends the payloads of the framed tasks, in
    order, as further frames of the same ZeroMQ message; the receiver
    hands those frames to drv_codec_decode_frames, which points the tasks
    into them. Neither side copies such a payload into or out of the
    envelope, and the broker keeps the frame it received and sends it on
    to the worker as it is (zframe_send with ZFRAME_REUSE shares it).
*/

#ifndef DRV_CODEC_H_INCLUDED
#define DRV_CODEC_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "drover.h"

//  Message types; the numbers are the Envelope's body field numbers.
typedef enum {
    DRV_MSG_SUBMIT = 10,
    DRV_MSG_SUBMIT_ACK = 11,
    DRV_MSG_RESULTS = 12,
    DRV_MSG_STATUS = 13,
    DRV_MSG_STATUS_REPLY = 14,
    DRV_MSG_ACK = 15,
    DRV_MSG_CANCEL = 16,
    DRV_MSG_DEAD = 17,
    DRV_MSG_READY = 20,
    DRV_MSG_DISPATCH = 21,
    DRV_MSG_DONE = 22,
    DRV_MSG_PROGRESS = 23,
    DRV_MSG_HEARTBEAT = 30,
    DRV_MSG_BYE = 31,
    DRV_MSG_ERROR = 32,
    DRV_MSG_WAIT = 40,
    DRV_MSG_QUEUE_CONFIG = 41,
    DRV_MSG_QUEUE_INFO = 42,
    DRV_MSG_JOBS_QUERY = 50,
    DRV_MSG_JOB_LIST = 51,
    DRV_MSG_WORKERS_QUERY = 52,
    DRV_MSG_WORKER_LIST = 53,
    DRV_MSG_QUEUES_QUERY = 54,
    DRV_MSG_QUEUE_LIST = 55,
    DRV_MSG_STATS_QUERY = 56,
    DRV_MSG_STATS = 57
} drv_msg_type_t;

//  Longest function name, in bytes.
#define DRV_FUNCTION_MAX 255
//  Longest worker name and error text kept, in bytes.
#define DRV_NAME_MAX 255
#define DRV_TEXT_MAX 4096
//  Longest broker instance id, in bytes.
#define DRV_INSTANCE_MAX 64
//  Longest unique key, in bytes.
#define DRV_UNIQUE_MAX 255
//  Most partial output one Progress report carries, in bytes.
#define DRV_PROGRESS_PARTIAL_MAX DROVER_PROGRESS_PARTIAL_MAX
//  Longest delay a Submit may ask for: 366 days, in ms.
#define DRV_DELAY_MAX ((uint64_t) 366 * 24 * 3600 * 1000)
//  Payloads of at least this many bytes travel in frames of their own,
//  where the peer takes them; smaller ones cost less inside the envelope.
#define DRV_FRAME_MIN ((size_t) 64 * 1024)

//  A task: in a Submit (id is the client's tag, function unset) or in a
//  Dispatch (id is the job id).
typedef struct {
    uint64_t id;                 //  tag in Submit, job id in Dispatch
    const char *function;        //  Dispatch only
    const uint8_t *payload;      //  input bytes
    size_t size;                 //  bytes in payload
    uint32_t timeout_ms;         //  Dispatch only; 0: none
    uint32_t attempt;            //  Dispatch only; 1 on first dispatch
    bool chunk;                  //  Dispatch only; payload is an encoded Chunk
    bool framed;                 //  the payload travels in a frame of its own:
                                 //  encode leaves it out of the envelope (the
                                 //  caller sends it), decode points into it
    size_t frame;                //  decoded, framed: its index in msg->frames
} drv_task_t;

//  A result: in Results (broker to client), Done (worker to broker) and
//  JobInfo.
typedef struct {
    uint64_t job_id;             //  the broker's id
    uint64_t tag;                //  the client's tag (Results only)
    drover_outcome_t outcome;    //  how it ended
    const uint8_t *data;         //  output when OK
    size_t size;                 //  bytes in data
    const char *reason;          //  failure reason, "" when OK
    uint32_t attempts;           //  dispatches so far
} drv_result_t;

//  One Progress report: how far a running job has got.
typedef struct {
    uint64_t job_id;             //  the broker's id
    uint64_t done;               //  units done
    uint64_t total;              //  units in all; 0: unknown
    const uint8_t *partial;      //  partial output, or NULL
    size_t size;                 //  bytes in partial, <= DRV_PROGRESS_PARTIAL_MAX
} drv_progress_t;

//  One job's state, in StatusReply.
typedef struct {
    uint64_t job_id;             //  the broker's id
    drover_state_t state;        //  where it is
    const char *function;        //  its function
    const char *worker;          //  the worker running it, or ""
    uint32_t attempts;           //  dispatches so far
    bool has_result;             //  result is set (finished jobs)
    drv_result_t result;         //  the result, when has_result
    const uint8_t *payload;      //  the input (Dead replies), or NULL
    size_t size;                 //  bytes in payload
    int32_t priority;            //  as submitted
    uint64_t run_in_ms;          //  ms until a waiting job's time, or 0
    bool has_progress;           //  progress is set (RUNNING, reported)
    drv_progress_t progress;     //  its last Progress report (job_id unused)
    bool chunk;                  //  a map's chunk: payload a Chunk, result
                                 //  data a ChunkResults
} drv_jobinfo_t;

//  One function's queue settings and counts, in QueueConfig (settings
//  only, with set_ flags) and QueueInfo.
typedef struct {
    const char *function;        //  the function
    bool set_limit;              //  QueueConfig: change limit
    uint32_t limit;              //  running at once at most; 0: none
    bool set_paused;             //  QueueConfig: change paused
    bool paused;                 //  queued, not dispatched
    bool set_max_queue;          //  QueueConfig: change max_queue
    uint64_t max_queue;          //  own setting; 0: the broker's
    uint64_t max_queue_in_force; //  QueueInfo: what applies
    uint64_t queued;             //  QueueInfo: waiting to be dispatched
    uint64_t delayed;            //  QueueInfo: waiting for their time
    uint64_t running;            //  QueueInfo: running now
    uint32_t workers;            //  QueueInfo: workers offering it
} drv_queue_info_t;

//  Jobs listed in one JobList at most, and by default.
#define DRV_JOBS_LIMIT_MAX 10000
#define DRV_JOBS_LIMIT_DEFAULT 100

//  Which jobs a JobsQuery asks for.
typedef struct {
    const char *function;        //  only this function's, or NULL: all
    drover_jobs_filter_t state;  //  which states
    uint32_t limit;              //  at most this many; 0: the default
    bool newest_first;           //  highest id first
} drv_jobs_query_t;

//  One job in a JobList.
typedef struct {
    uint64_t job_id;             //  the broker's id
    const char *function;        //  its function
    drover_state_t state;        //  where it is
    bool delayed;                //  QUEUED and waiting for its time
    int32_t priority;            //  as submitted
    uint32_t attempts;           //  dispatches so far
    const char *worker;          //  running it, or ""
    uint64_t age_ms;             //  since submitted (or restored)
    uint64_t run_in_ms;          //  delayed: ms until its time
    drover_outcome_t outcome;    //  finished: how; else 0
} drv_job_row_t;

//  One worker in a WorkerList.
typedef struct {
    const char *name;            //  as its Ready said
    const uint8_t *identity;     //  routing id
    size_t identity_size;        //  bytes in identity
    const char **functions;      //  functions offered
    size_t nfunctions;           //  entries in functions
    uint32_t slots;              //  tasks at once
    uint32_t running;            //  tasks in flight
    uint64_t done;               //  tasks finished since its Ready
    uint64_t connected_ms;       //  since its Ready
    uint64_t heard_ms;           //  since last heard from
} drv_worker_row_t;

//  One decoded (or to-be-encoded) message. Only the fields of its type
//  are meaningful. Decoded messages own all pointed-to data; every
//  string and bytes field of one is followed by a NUL, but for payloads
//  that came in frames of their own (drv_task_t.framed).
typedef struct {
    drv_msg_type_t type;         //  which body
    uint64_t seq;                //  request sequence, echoed in replies
    const uint8_t *instance;     //  the broker's run id (broker to peers)
    size_t instance_size;        //  bytes in instance, at most DRV_INSTANCE_MAX
    const char *function;        //  SUBMIT
    uint32_t timeout_ms;         //  SUBMIT
    int32_t priority;            //  SUBMIT
    uint32_t retries;            //  SUBMIT
    uint64_t delay_ms;           //  SUBMIT
    const char *unique;          //  SUBMIT: unique key, or NULL
    bool detach;                 //  SUBMIT
    bool want_progress;          //  SUBMIT, WAIT: send Progress reports
    drv_progress_t *progress;    //  PROGRESS
    size_t nprogress;            //  entries in progress
    bool chunk;                  //  SUBMIT: every payload is an encoded Chunk
    drv_queue_info_t queue;      //  QUEUE_CONFIG, QUEUE_INFO
    drv_task_t *tasks;           //  SUBMIT, DISPATCH
    size_t ntasks;               //  entries in tasks
    drv_result_t *results;       //  RESULTS, DONE
    size_t nresults;             //  entries in results
    uint64_t *job_ids;           //  SUBMIT_ACK, STATUS, ACK, CANCEL, DEAD, WAIT (one)
    int dead_op;                 //  DEAD: 1 list, 2 retry, 3 purge
    size_t njob_ids;             //  entries in job_ids
    uint32_t workers;            //  SUBMIT_ACK
    drv_jobinfo_t *jobs;         //  STATUS_REPLY
    size_t njobs;                //  entries in jobs
    const char **functions;      //  READY
    size_t nfunctions;           //  entries in functions
    uint32_t slots;              //  READY
    const char *name;            //  READY
    bool chunks;                 //  READY: the worker runs chunked tasks
    bool payload_frames;         //  READY: the worker takes payload frames
    drover_error_t code;         //  ERROR
    const char *text;            //  ERROR
    drv_jobs_query_t jobs_query; //  JOBS_QUERY
    drv_job_row_t *rows;         //  JOB_LIST
    size_t nrows;                //  entries in rows
    drv_worker_row_t *worker_rows;  //  WORKER_LIST
    size_t nworker_rows;         //  entries in worker_rows
    drv_queue_info_t *queues;    //  QUEUE_LIST
    size_t nqueues;              //  entries in queues
    uint64_t total;              //  JOB_LIST, WORKER_LIST, QUEUE_LIST: in all
    drover_stats_t stats;        //  STATS
    void *arena;                 //  decoded: the unpacked envelope that the
                                 //  strings and bytes above point into
    zframe_t **frames;           //  decoded: the payload frames that framed
                                 //  tasks point into, owned; NULL once taken
    size_t nframes;              //  entries in frames
} drv_msg_t;

//  What a decoder accepts at most.
typedef struct {
    size_t max_message;          //  bytes in one frame
    size_t max_payload;          //  bytes in one payload or result
    size_t max_batch;            //  tasks or results in one message
} drv_limits_t;

//  The defaults: 64 MiB messages, 16 MiB payloads, 100,000 per batch.
drv_limits_t drv_limits_default (void);

//  What clients and workers accept from the broker, whose own limits
//  they do not know: up to DRV_LIMIT_CEILING for messages and payloads.
drv_limits_t drv_limits_from_broker (void);

//  The largest --max-message or --max-payload a broker takes: 1 GiB.
#define DRV_LIMIT_CEILING ((size_t) 1 << 30)

//  Decode one frame into *msg_p (the caller's, free with
//  drv_msg_destroy). On failure returns the protocol error code, sets
//  *msg_p NULL and writes a reason to err; *seq_p gets the request's seq
//  when it could be read, so an error reply can echo it. A task that
//  announces a payload frame is ERR_MALFORMED here: none follows.
drover_error_t drv_codec_decode (const void *data, size_t size, const drv_limits_t *limits,
                                 drv_msg_t **msg_p, uint64_t *seq_p, char *err,
                                 size_t err_size);

//  The same for a message whose envelope frame is followed by nframes
//  payload frames (a Submit's or a Dispatch's framed tasks, in order).
//  Takes the frames in every case (each entry is NULLed): a decoded
//  message keeps them, a failure destroys them. Frames with any other
//  message, or a count that does not match the framed tasks, are
//  ERR_MALFORMED; a frame over limits->max_payload is ERR_TOO_LARGE.
drover_error_t drv_codec_decode_frames (const void *data, size_t size, zframe_t **frames,
                                        size_t nframes, const drv_limits_t *limits,
                                        drv_msg_t **msg_p, uint64_t *seq_p, char *err,
                                        size_t err_size);

//  Encode msg into a new frame, the caller's. NULL if it does not encode
//  (a field out of range). Framed tasks go with payload_frame set and
//  their payload left out: the caller sends those payloads after it, in
//  the order of the tasks.
zframe_t *drv_codec_encode (const drv_msg_t *msg);

//  Take the block that holds the payload of task index of a decoded
//  SUBMIT or DISPATCH, to keep it without a copy: the caller's to free,
//  its size bytes followed by a NUL. The task's payload then reads ""
//  (its size is unchanged). NULL if the payload is empty (it has no
//  block) or was taken already.
uint8_t *drv_msg_take_payload (drv_msg_t *msg, size_t index);

//  Take the frame that holds the payload of framed task index of a
//  decoded SUBMIT or DISPATCH: the caller's to destroy. The task's
//  payload still points into it. NULL if the task is not framed or its
//  frame was taken already.
zframe_t *drv_msg_take_frame (drv_msg_t *msg, size_t index);

//  Free a decoded message and NULL the pointer.
void drv_msg_destroy (drv_msg_t **self_p);

//  Encode an Error reply with the given code and text.
zframe_t *drv_codec_error (uint64_t seq, drover_error_t code, const char *text);

//  The items of a chunked task's payload, decoded into one allocation
//  (free it with free): items [i] is followed by a NUL that sizes [i]
//  does not count.
typedef struct {
    size_t count;                //  items, at least 1
    const uint8_t **items;       //  each item's bytes
    size_t *sizes;               //  each item's size
} drv_chunk_t;

//  Encode count items as a Chunk message; the buffer is the caller's to
//  free, *size_p its size. NULL if out of memory.
uint8_t *drv_codec_chunk_pack (size_t count, const void *const *items, const size_t *sizes,
                               size_t *size_p);

//  Decode a Chunk; NULL if data is not one, or has no items.
drv_chunk_t *drv_codec_chunk_unpack (const void *data, size_t size);

//  Encode per-item results as a ChunkResults message (job ids, tags and
//  attempts are left out); the buffer is the caller's to free.
uint8_t *drv_codec_chunk_results_pack (const drv_result_t *results, size_t count,
                                       size_t *size_p);

//  Decode a ChunkResults of exactly *count_p results (0: any number, at
//  least one), validated (outcomes, reason lengths), into one allocation
//  the caller frees; data and reason point inside it, data followed by a
//  NUL, and *count_p says how many. NULL if data is not that.
drv_result_t *drv_codec_chunk_results_unpack (const void *data, size_t size, size_t *count_p);

//  Is name a valid function name: 1 to 255 bytes of [A-Za-z0-9_.:/-]?
bool drv_codec_valid_function (const char *name);

#endif
