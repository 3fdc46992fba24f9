/*  test_codec.c - tests for proto/drv_codec.

    This suite doubles as the module's usage example: build a drv_msg_t
    on the stack, drv_codec_encode it into a frame, and drv_codec_decode
    the frame's bytes back into a message that owns all its data (free it
    with drv_msg_destroy). Decoding validates every field against a
    drv_limits_t and says why it refused in a drover_error_t and a text.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "drv_codec.h"

//  A binary payload with NUL bytes inside and at its end.
static const uint8_t s_binary [] = {0x00, 0xff, 0x00, 'a', 0x7f, 0x00};

//  Encode msg, decode the frame with limits (NULL: defaults), and return
//  the decoded message, which the caller destroys.
static drv_msg_t *
s_round_trip (const drv_msg_t *msg)
{
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert_not_null (frame, "the message does not encode");
    drv_msg_t *decoded = NULL;
    uint64_t seq = 0;
    char err [256] = "";
    drover_error_t rc = drv_codec_decode (zframe_data (frame), zframe_size (frame), NULL,
                                          &decoded, &seq, err, sizeof err);
    zframe_destroy (&frame);
    cr_assert_eq (rc, DROVER_ERR_NONE, "decode refused: %s", err);
    cr_assert_not_null (decoded);
    cr_assert_eq (decoded->type, msg->type);
    cr_assert_eq (decoded->seq, msg->seq);
    cr_assert_eq (seq, msg->seq);
    return decoded;
}

//  Decode size bytes and expect code, no message and a reason. Returns
//  the seq the decoder reported.
static uint64_t
s_expect_reject (const void *data, size_t size, const drv_limits_t *limits,
                 drover_error_t code)
{
    static drv_msg_t sentinel;
    drv_msg_t *decoded = &sentinel;                 //  decode must NULL it
    uint64_t seq = 12345;
    char err [256] = "";
    drover_error_t rc = drv_codec_decode (data, size, limits, &decoded, &seq, err, sizeof err);
    cr_assert_eq (rc, code, "expected error %d, got %d (%s)", code, rc, err);
    cr_assert_null (decoded);
    cr_assert_str_not_empty (err);
    return seq;
}

//  Encode msg and expect its decoding with limits to fail with code.
static void
s_expect_reject_msg (const drv_msg_t *msg, const drv_limits_t *limits, drover_error_t code)
{
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert_not_null (frame, "the message does not encode");
    s_expect_reject (zframe_data (frame), zframe_size (frame), limits, code);
    zframe_destroy (&frame);
}

//  A SUBMIT of three tasks: text, empty, and binary with NUL bytes.
static drv_task_t s_submit_tasks [] = {
    {.id = 7, .payload = (const uint8_t *) "hello", .size = 5},
    {.id = 8, .payload = NULL, .size = 0},
    {.id = UINT64_MAX, .payload = s_binary, .size = sizeof s_binary},
};

static drv_msg_t
s_submit (void)
{
    drv_msg_t msg = {
        .type = DRV_MSG_SUBMIT,
        .seq = 42,
        .function = "resize",
        .timeout_ms = 1500,
        .tasks = s_submit_tasks,
        .ntasks = 3,
    };
    return msg;
}

//  A READY offering one function with the given slots.
static drv_msg_t
s_ready (uint32_t slots)
{
    static const char *functions [] = {"resize"};
    drv_msg_t msg = {
        .type = DRV_MSG_READY,
        .seq = 1,
        .functions = functions,
        .nfunctions = 1,
        .slots = slots,
        .name = "host:1",
    };
    return msg;
}

//  A RESULTS of one result with the given outcome.
static void
s_expect_outcome_rejected (drover_outcome_t outcome)
{
    drv_result_t result = {.job_id = 3, .tag = 4, .outcome = outcome, .reason = "x"};
    drv_msg_t msg = {.type = DRV_MSG_RESULTS, .seq = 5, .results = &result, .nresults = 1};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

//  Compare one result field by field; decoded data is NUL-terminated.
static void
s_assert_result_eq (const drv_result_t *got, const drv_result_t *want)
{
    cr_assert_eq (got->job_id, want->job_id);
    cr_assert_eq (got->tag, want->tag);
    cr_assert_eq (got->outcome, want->outcome);
    cr_assert_eq (got->size, want->size);
    cr_assert_not_null (got->data);
    if (want->size)
        cr_assert_arr_eq (got->data, want->data, want->size);
    cr_assert_eq (got->data [got->size], 0);
    cr_assert_str_eq (got->reason, want->reason ? want->reason : "");
    cr_assert_eq (got->attempts, want->attempts);
}

TestSuite (codec);

Test (codec, limits_default_are_64mib_16mib_and_100000)
{
    drv_limits_t limits = drv_limits_default ();
    cr_assert_eq (limits.max_message, 64 * 1024 * 1024);
    cr_assert_eq (limits.max_payload, 16 * 1024 * 1024);
    cr_assert_eq (limits.max_batch, 100000);
}

Test (codec, submit_round_trips_every_field)
{
    drv_msg_t msg = s_submit ();
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_str_eq (got->function, "resize");
    cr_assert_eq (got->timeout_ms, 1500);
    cr_assert_eq (got->priority, 0);
    cr_assert_eq (got->ntasks, 3);
    for (size_t i = 0; i < 3; i++) {
        const drv_task_t *task = &got->tasks [i];
        cr_assert_eq (task->id, s_submit_tasks [i].id);
        cr_assert_eq (task->size, s_submit_tasks [i].size);
        cr_assert_not_null (task->payload);
        if (task->size)
            cr_assert_arr_eq (task->payload, s_submit_tasks [i].payload, task->size);
        cr_assert_eq (task->payload [task->size], 0, "payload %zu is not NUL-terminated", i);
    }
    drv_msg_destroy (&got);
    cr_assert_null (got);
}

Test (codec, a_taken_payload_is_the_callers_and_leaves_an_empty_one)
{
    drv_msg_t msg = s_submit ();
    drv_msg_t *got = s_round_trip (&msg);
    for (size_t i = 0; i < 3; i++) {
        const drv_task_t *sent = &s_submit_tasks [i];
        uint8_t *block = drv_msg_take_payload (got, i);
        if (sent->size == 0) {
            cr_assert_null (block, "an empty payload has no block");
            continue;
        }
        cr_assert_not_null (block);
        cr_assert_arr_eq (block, sent->payload, sent->size);
        cr_assert_eq (block [sent->size], 0, "a taken payload %zu is not NUL-terminated", i);
        cr_assert_str_eq ((const char *) got->tasks [i].payload, "");
        cr_assert_eq (got->tasks [i].size, sent->size, "the size stays");
        cr_assert_null (drv_msg_take_payload (got, i), "a payload is taken once");
        free (block);
    }
    cr_assert_null (drv_msg_take_payload (got, 3), "no task 3");
    drv_msg_destroy (&got);

    drv_msg_t ack = {.type = DRV_MSG_ACK, .seq = 1, .job_ids = (uint64_t []) {1}, .njob_ids = 1};
    got = s_round_trip (&ack);
    cr_assert_null (drv_msg_take_payload (got, 0), "an Ack has no payloads");
    drv_msg_destroy (&got);
}

//  Encode msg, then decode it with these payload frames (taken).
static drover_error_t
s_decode_with (const drv_msg_t *msg, zframe_t **frames, size_t nframes, drv_msg_t **got_p,
               char *err, size_t err_size)
{
    zframe_t *frame = drv_codec_encode (msg);
    cr_assert_not_null (frame, "encode failed");
    drover_error_t code = drv_codec_decode_frames (zframe_data (frame), zframe_size (frame),
                                                   frames, nframes, NULL, got_p, NULL, err,
                                                   err_size);
    for (size_t i = 0; i < nframes; i++)
        cr_assert_null (frames [i], "frame %zu was not taken", i);
    zframe_destroy (&frame);
    return code;
}

Test (codec, framed_payloads_travel_outside_the_envelope_and_are_pointed_into)
{
    //  Tasks 0 and 2 framed, task 1 inside: frames go in the framed order.
    static const uint8_t big [] = "a payload that travels in a frame";
    drv_task_t tasks [] = {
        {.id = 7, .function = "f", .payload = big, .size = sizeof big, .framed = true},
        {.id = 8, .function = "f", .payload = s_binary, .size = sizeof s_binary},
        {.id = 9, .function = "f", .payload = s_binary, .size = 3, .framed = true},
    };
    for (int type = 0; type < 2; type++) {
        drv_msg_t msg = {.type = type ? DRV_MSG_DISPATCH : DRV_MSG_SUBMIT, .seq = 5,
                         .function = "f", .tasks = tasks, .ntasks = 3};
        zframe_t *envelope = drv_codec_encode (&msg);
        cr_assert_not_null (envelope);
        cr_assert_lt (zframe_size (envelope), 64, "a framed payload is not in the envelope");
        zframe_destroy (&envelope);

        zframe_t *frames [2] = {zframe_new (big, sizeof big), zframe_new (s_binary, 3)};
        zframe_t *first = frames [0];
        drv_msg_t *got = NULL;
        char err [256] = "";
        cr_assert_eq (s_decode_with (&msg, frames, 2, &got, err, sizeof err), DROVER_ERR_NONE,
                      "%s", err);
        cr_assert_eq (got->ntasks, 3);
        cr_assert (got->tasks [0].framed && !got->tasks [1].framed && got->tasks [2].framed);
        cr_assert_eq (got->tasks [0].payload, zframe_data (first), "not pointed into the frame");
        cr_assert_eq (got->tasks [0].size, sizeof big);
        cr_assert_arr_eq (got->tasks [1].payload, s_binary, sizeof s_binary);
        cr_assert_eq (got->tasks [2].size, 3);
        cr_assert_arr_eq (got->tasks [2].payload, s_binary, 3);

        //  A framed task's frame is taken whole; an inside one has none.
        cr_assert_null (drv_msg_take_frame (got, 1));
        zframe_t *taken = drv_msg_take_frame (got, 0);
        cr_assert_eq (taken, first);
        cr_assert_null (drv_msg_take_frame (got, 0), "a frame is taken once");
        cr_assert_null (drv_msg_take_payload (got, 0), "a framed task has no block");
        drv_msg_destroy (&got);
        cr_assert_arr_eq (zframe_data (taken), big, sizeof big, "the frame outlives the message");
        zframe_destroy (&taken);
    }
}

Test (codec, payload_frames_must_match_the_tasks_that_announce_them)
{
    drv_task_t task = {.id = 7, .payload = s_binary, .size = 3, .framed = true};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .seq = 5, .function = "f", .tasks = &task,
                        .ntasks = 1};
    drv_msg_t *got = NULL;
    char err [256] = "";

    //  Announced, but no frame: plain decode and decode_frames alike.
    zframe_t *envelope = drv_codec_encode (&submit);
    cr_assert_eq (drv_codec_decode (zframe_data (envelope), zframe_size (envelope), NULL, &got,
                                    NULL, err, sizeof err),
                  DROVER_ERR_MALFORMED);
    cr_assert_null (got);
    cr_assert (strstr (err, "0 payload frames follow the envelope, and 1 tasks"), "%s", err);
    zframe_destroy (&envelope);

    //  Two frames for one announced.
    zframe_t *two [2] = {zframe_new ("a", 1), zframe_new ("b", 1)};
    cr_assert_eq (s_decode_with (&submit, two, 2, &got, err, sizeof err), DROVER_ERR_MALFORMED);
    cr_assert_null (got);

    //  A frame after a message that has no tasks.
    drv_msg_t heartbeat = {.type = DRV_MSG_HEARTBEAT, .seq = 1};
    zframe_t *stray [1] = {zframe_new ("a", 1)};
    cr_assert_eq (s_decode_with (&heartbeat, stray, 1, &got, err, sizeof err),
                  DROVER_ERR_MALFORMED);

    //  A frame over max_payload.
    drv_limits_t limits = drv_limits_default ();
    limits.max_payload = 4;
    envelope = drv_codec_encode (&submit);
    zframe_t *large [1] = {zframe_new ("12345", 5)};
    cr_assert_eq (drv_codec_decode_frames (zframe_data (envelope), zframe_size (envelope), large,
                                           1, &limits, &got, NULL, err, sizeof err),
                  DROVER_ERR_TOO_LARGE);
    cr_assert_null (large [0]);
    cr_assert_null (got);
    zframe_destroy (&envelope);

    //  A failed envelope still takes (destroys) its frames.
    zframe_t *orphan [1] = {zframe_new ("a", 1)};
    cr_assert_eq (drv_codec_decode_frames ("\xff\xff", 2, orphan, 1, NULL, &got, NULL, err,
                                           sizeof err),
                  DROVER_ERR_MALFORMED);
    cr_assert_null (orphan [0]);
}

Test (codec, a_framed_task_with_a_payload_inside_too_is_malformed)
{
    //  Encode never writes both; a hostile peer may. By hand: Envelope
    //  {version 1, seq 5, submit {function "f", tasks [{tag 7, payload
    //  "abc", payload_frame true}]}}.
    static const uint8_t bytes [] = {
        0x08, 0x01, 0x10, 0x05, 0x52, 0x0e,             //  version, seq, submit (14)
        0x0a, 0x01, 'f', 0x12, 0x09,                    //  function, tasks (9)
        0x08, 0x07, 0x12, 0x03, 'a', 'b', 'c', 0x18, 0x01   //  tag, payload, payload_frame
    };
    zframe_t *frames [1] = {zframe_new ("abc", 3)};
    drv_msg_t *got = NULL;
    char err [256] = "";
    cr_assert_eq (drv_codec_decode_frames (bytes, sizeof bytes, frames, 1, NULL, &got, NULL,
                                           err, sizeof err),
                  DROVER_ERR_MALFORMED, "%s", err);
    cr_assert (strstr (err, "a payload frame and a payload inside"), "%s", err);
    cr_assert_null (frames [0]);
    //  The same without the flag decodes: the hand encoding is right.
    static const uint8_t plain [] = {
        0x08, 0x01, 0x10, 0x05, 0x52, 0x0c,
        0x0a, 0x01, 'f', 0x12, 0x07,
        0x08, 0x07, 0x12, 0x03, 'a', 'b', 'c'
    };
    cr_assert_eq (drv_codec_decode (plain, sizeof plain, NULL, &got, NULL, err, sizeof err),
                  DROVER_ERR_NONE, "%s", err);
    cr_assert_eq (got->ntasks, 1);
    cr_assert_str_eq ((const char *) got->tasks [0].payload, "abc");
    drv_msg_destroy (&got);
}

Test (codec, ready_round_trips_the_payload_frames_flag)
{
    const char *functions [] = {"f"};
    drv_msg_t msg = {.type = DRV_MSG_READY, .seq = 1, .functions = functions, .nfunctions = 1,
                     .slots = 1, .name = "w", .payload_frames = true};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert (got->payload_frames);
    drv_msg_destroy (&got);
    msg.payload_frames = false;
    got = s_round_trip (&msg);
    cr_assert_not (got->payload_frames, "an old worker's Ready does not take frames");
    drv_msg_destroy (&got);
}

Test (codec, submit_ack_round_trips_ids_and_workers)
{
    uint64_t ids [] = {1, 2, UINT64_MAX};
    drv_msg_t msg = {.type = DRV_MSG_SUBMIT_ACK, .seq = 43, .job_ids = ids, .njob_ids = 3,
                     .workers = 4};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->njob_ids, 3);
    cr_assert_arr_eq (got->job_ids, ids, sizeof ids);
    cr_assert_eq (got->workers, 4);
    drv_msg_destroy (&got);
}

Test (codec, results_round_trip_data_and_reasons)
{
    drv_result_t results [] = {
        {.job_id = 1, .tag = 10, .outcome = DROVER_OUTCOME_OK, .data = s_binary,
         .size = sizeof s_binary, .reason = "", .attempts = 1},
        {.job_id = 2, .tag = 11, .outcome = DROVER_OUTCOME_ERROR, .reason = "exit 3",
         .attempts = 2},
        {.job_id = 3, .tag = 12, .outcome = DROVER_OUTCOME_LOST, .reason = NULL, .attempts = 5},
    };
    drv_msg_t msg = {.type = DRV_MSG_RESULTS, .seq = 44, .results = results, .nresults = 3};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->nresults, 3);
    for (size_t i = 0; i < 3; i++)
        s_assert_result_eq (&got->results [i], &results [i]);
    drv_msg_destroy (&got);
}

Test (codec, status_round_trips_job_ids)
{
    uint64_t ids [] = {9, 1ull << 40};
    drv_msg_t msg = {.type = DRV_MSG_STATUS, .seq = 45, .job_ids = ids, .njob_ids = 2};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->njob_ids, 2);
    cr_assert_arr_eq (got->job_ids, ids, sizeof ids);
    drv_msg_destroy (&got);
}

Test (codec, ack_round_trips_job_ids)
{
    uint64_t ids [] = {3, 4, 1ull << 50};
    drv_msg_t msg = {.type = DRV_MSG_ACK, .seq = 46, .job_ids = ids, .njob_ids = 3};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->njob_ids, 3);
    cr_assert_arr_eq (got->job_ids, ids, sizeof ids);
    drv_msg_destroy (&got);
}

Test (codec, instance_round_trips_on_any_message)
{
    uint8_t instance [16] = {1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0};
    drv_msg_t msg = {.type = DRV_MSG_HEARTBEAT, .seq = 47, .instance = instance,
                     .instance_size = sizeof instance};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->instance_size, sizeof instance);
    cr_assert_arr_eq (got->instance, instance, sizeof instance);
    drv_msg_destroy (&got);
    msg.instance = NULL;
    msg.instance_size = 0;
    got = s_round_trip (&msg);
    cr_assert_eq (got->instance_size, 0, "no instance: none decoded");
    drv_msg_destroy (&got);
}

Test (codec, overlong_instance_is_invalid)
{
    uint8_t instance [DRV_INSTANCE_MAX + 1] = {0};
    drv_msg_t msg = {.type = DRV_MSG_HEARTBEAT, .instance = instance,
                     .instance_size = sizeof instance};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, status_reply_round_trips_jobs_with_and_without_result)
{
    drv_jobinfo_t jobs [] = {
        {.job_id = 5, .state = DROVER_JOB_RUNNING, .function = "resize", .worker = "host:7",
         .attempts = 1},
        {.job_id = 6, .state = DROVER_JOB_SUCCEEDED, .function = "a.b", .worker = "",
         .attempts = 2, .has_result = true, .chunk = true,
         .result = {.job_id = 6, .tag = 60, .outcome = DROVER_OUTCOME_OK, .data = s_binary,
                    .size = sizeof s_binary, .reason = "", .attempts = 2}},
    };
    drv_msg_t msg = {.type = DRV_MSG_STATUS_REPLY, .seq = 46, .jobs = jobs, .njobs = 2};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->njobs, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq (got->jobs [i].job_id, jobs [i].job_id);
        cr_assert_eq (got->jobs [i].state, jobs [i].state);
        cr_assert_str_eq (got->jobs [i].function, jobs [i].function);
        cr_assert_str_eq (got->jobs [i].worker, jobs [i].worker);
        cr_assert_eq (got->jobs [i].attempts, jobs [i].attempts);
        cr_assert_eq (got->jobs [i].has_result, jobs [i].has_result);
        cr_assert_eq (got->jobs [i].chunk, jobs [i].chunk);
    }
    s_assert_result_eq (&got->jobs [1].result, &jobs [1].result);
    drv_msg_destroy (&got);
}

Test (codec, ready_round_trips_functions_slots_and_name)
{
    const char *functions [] = {"resize", "a.b:c/d-e_f"};
    drv_msg_t msg = {.type = DRV_MSG_READY, .seq = 47, .functions = functions,
                     .nfunctions = 2, .slots = 8, .name = "host:1234"};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->nfunctions, 2);
    cr_assert_str_eq (got->functions [0], "resize");
    cr_assert_str_eq (got->functions [1], "a.b:c/d-e_f");
    cr_assert_eq (got->slots, 8);
    cr_assert_str_eq (got->name, "host:1234");
    drv_msg_destroy (&got);
}

Test (codec, dispatch_round_trips_every_task_field)
{
    drv_task_t tasks [] = {
        {.id = 100, .function = "resize", .payload = s_binary, .size = sizeof s_binary,
         .timeout_ms = 250, .attempt = 1},
        {.id = 101, .function = "a.b", .payload = NULL, .size = 0, .timeout_ms = 0,
         .attempt = 3},
    };
    drv_msg_t msg = {.type = DRV_MSG_DISPATCH, .seq = 48, .tasks = tasks, .ntasks = 2};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->ntasks, 2);
    for (size_t i = 0; i < 2; i++) {
        const drv_task_t *task = &got->tasks [i];
        cr_assert_eq (task->id, tasks [i].id);
        cr_assert_str_eq (task->function, tasks [i].function);
        cr_assert_eq (task->size, tasks [i].size);
        if (task->size)
            cr_assert_arr_eq (task->payload, tasks [i].payload, task->size);
        cr_assert_eq (task->payload [task->size], 0, "payload %zu is not NUL-terminated", i);
        cr_assert_eq (task->timeout_ms, tasks [i].timeout_ms);
        cr_assert_eq (task->attempt, tasks [i].attempt);
    }
    drv_msg_destroy (&got);
}

Test (codec, done_round_trips_results)
{
    drv_result_t results [] = {
        {.job_id = 100, .outcome = DROVER_OUTCOME_OK, .data = (const uint8_t *) "out",
         .size = 3, .reason = "", .attempts = 1},
        {.job_id = 101, .outcome = DROVER_OUTCOME_SIGNAL, .reason = "killed by SIGKILL",
         .attempts = 1},
    };
    drv_msg_t msg = {.type = DRV_MSG_DONE, .seq = 49, .results = results, .nresults = 2};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->nresults, 2);
    for (size_t i = 0; i < 2; i++)
        s_assert_result_eq (&got->results [i], &results [i]);
    drv_msg_destroy (&got);
}

Test (codec, heartbeat_round_trips)
{
    drv_msg_t msg = {.type = DRV_MSG_HEARTBEAT, .seq = 50};
    drv_msg_t *got = s_round_trip (&msg);
    drv_msg_destroy (&got);
}

Test (codec, bye_round_trips)
{
    drv_msg_t msg = {.type = DRV_MSG_BYE, .seq = 51};
    drv_msg_t *got = s_round_trip (&msg);
    drv_msg_destroy (&got);
}

Test (codec, error_round_trips_code_and_text)
{
    drv_msg_t msg = {.type = DRV_MSG_ERROR, .seq = 52, .code = DROVER_ERR_UNKNOWN_JOB,
                     .text = "no job 9"};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->code, DROVER_ERR_UNKNOWN_JOB);
    cr_assert_str_eq (got->text, "no job 9");
    drv_msg_destroy (&got);
}

Test (codec, codec_error_builds_a_decodable_error)
{
    zframe_t *frame = drv_codec_error (77, DROVER_ERR_QUEUE_FULL, "queue full: retry later");
    cr_assert_not_null (frame);
    drv_msg_t *got = NULL;
    char err [256] = "";
    cr_assert_eq (drv_codec_decode (zframe_data (frame), zframe_size (frame), NULL, &got, NULL,
                                    err, sizeof err),
                  DROVER_ERR_NONE, "%s", err);
    zframe_destroy (&frame);
    cr_assert_eq (got->type, DRV_MSG_ERROR);
    cr_assert_eq (got->seq, 77);
    cr_assert_eq (got->code, DROVER_ERR_QUEUE_FULL);
    cr_assert_str_eq (got->text, "queue full: retry later");
    drv_msg_destroy (&got);
}

Test (codec, random_garbage_is_rejected_without_crashing)
{
    srand (20240601);
    uint8_t buffer [512];
    for (int round = 0; round < 500; round++) {
        size_t size = (size_t) (rand () % (int) sizeof buffer);
        for (size_t i = 0; i < size; i++)
            buffer [i] = (uint8_t) (rand () & 0xff);
        drv_msg_t *decoded = NULL;
        char err [256] = "";
        drover_error_t rc = drv_codec_decode (buffer, size, NULL, &decoded, NULL, err,
                                              sizeof err);
        //  Garbage may by chance be a valid envelope; the decoder must
        //  never run out of its own arena doing it.
        cr_assert_neq (rc, DROVER_ERR_INTERNAL, "round %d: %s", round, err);
        if (rc == DROVER_ERR_NONE)
            cr_assert_not_null (decoded);
        else {
            cr_assert_null (decoded);
            cr_assert_str_not_empty (err, "round %d: rejected without a reason", round);
        }
        drv_msg_destroy (&decoded);
    }
}

Test (codec, every_truncation_of_a_submit_decodes_or_is_rejected)
{
    drv_msg_t msg = s_submit ();
    zframe_t *frame = drv_codec_encode (&msg);
    cr_assert_not_null (frame);
    size_t size = zframe_size (frame);
    for (size_t length = 0; length < size; length++) {
        //  A copy of exactly length bytes, so ASan sees any over-read.
        uint8_t *prefix = (uint8_t *) malloc (length ? length : 1);
        cr_assert_not_null (prefix);
        memcpy (prefix, zframe_data (frame), length);
        drv_msg_t *decoded = NULL;
        char err [256] = "";
        drover_error_t rc = drv_codec_decode (prefix, length, NULL, &decoded, NULL, err,
                                              sizeof err);
        free (prefix);
        if (rc == DROVER_ERR_NONE) {
            cr_assert_not_null (decoded);
            cr_assert_eq (decoded->type, DRV_MSG_SUBMIT);
            cr_assert_geq (decoded->ntasks, 1);
        }
        else {
            cr_assert_neq (rc, DROVER_ERR_INTERNAL, "length %zu: %s", length, err);
            cr_assert_null (decoded);
            cr_assert_str_not_empty (err);
        }
        drv_msg_destroy (&decoded);
    }
    zframe_destroy (&frame);
}

Test (codec, message_over_max_message_is_too_large_before_unpack)
{
    //  Not an envelope at all: only a size check before unpacking can
    //  call it too large rather than malformed.
    uint8_t garbage [64];
    memset (garbage, 0xff, sizeof garbage);
    drv_limits_t limits = drv_limits_default ();
    limits.max_message = sizeof garbage - 1;
    s_expect_reject (garbage, sizeof garbage, &limits, DROVER_ERR_TOO_LARGE);
}

Test (codec, message_of_exactly_max_message_is_accepted)
{
    drv_msg_t msg = s_submit ();
    zframe_t *frame = drv_codec_encode (&msg);
    drv_limits_t limits = drv_limits_default ();
    limits.max_message = zframe_size (frame);
    drv_msg_t *got = NULL;
    char err [256] = "";
    cr_assert_eq (drv_codec_decode (zframe_data (frame), zframe_size (frame), &limits, &got,
                                    NULL, err, sizeof err),
                  DROVER_ERR_NONE, "%s", err);
    zframe_destroy (&frame);
    drv_msg_destroy (&got);
}

Test (codec, payload_over_max_payload_is_too_large)
{
    drv_msg_t msg = s_submit ();
    drv_limits_t limits = drv_limits_default ();
    limits.max_payload = sizeof s_binary - 1;
    s_expect_reject_msg (&msg, &limits, DROVER_ERR_TOO_LARGE);
}

Test (codec, result_data_over_max_payload_is_too_large)
{
    drv_result_t result = {.job_id = 1, .outcome = DROVER_OUTCOME_OK, .data = s_binary,
                           .size = sizeof s_binary};
    drv_msg_t msg = {.type = DRV_MSG_DONE, .seq = 1, .results = &result, .nresults = 1};
    drv_limits_t limits = drv_limits_default ();
    limits.max_payload = sizeof s_binary - 1;
    s_expect_reject_msg (&msg, &limits, DROVER_ERR_TOO_LARGE);
}

Test (codec, more_tasks_than_max_batch_is_too_large)
{
    drv_msg_t msg = s_submit ();
    drv_limits_t limits = drv_limits_default ();
    limits.max_batch = msg.ntasks - 1;
    s_expect_reject_msg (&msg, &limits, DROVER_ERR_TOO_LARGE);
}

Test (codec, submit_with_no_tasks_is_invalid)
{
    drv_msg_t msg = s_submit ();
    msg.ntasks = 0;
    msg.tasks = NULL;
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, submit_round_trips_the_steering_fields)
{
    drv_msg_t msg = s_submit ();
    msg.priority = -7;
    msg.delay_ms = 1500;
    msg.detach = true;
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->priority, -7);
    cr_assert_eq (got->delay_ms, 1500);
    cr_assert (got->detach);
    cr_assert_null (got->unique, "no key reads as NULL");
    drv_msg_destroy (&got);
}

Test (codec, submit_with_a_unique_key_has_one_task)
{
    drv_msg_t msg = s_submit ();
    msg.unique = "report-2026-11";
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
    msg.ntasks = 1;
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_str_eq (got->unique, "report-2026-11");
    drv_msg_destroy (&got);
}

Test (codec, submit_with_an_overlong_delay_or_key_is_invalid)
{
    drv_msg_t msg = s_submit ();
    msg.delay_ms = DRV_DELAY_MAX + 1;
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
    char key [DRV_UNIQUE_MAX + 2];
    memset (key, 'k', sizeof key - 1);
    key [sizeof key - 1] = 0;
    msg = s_submit ();
    msg.ntasks = 1;
    msg.unique = key;
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, wait_and_queue_messages_round_trip)
{
    uint64_t id = 42;
    drv_msg_t wait = {.type = DRV_MSG_WAIT, .seq = 3, .job_ids = &id, .njob_ids = 1};
    drv_msg_t *got = s_round_trip (&wait);
    cr_assert_eq (got->njob_ids, 1);
    cr_assert_eq (got->job_ids [0], 42);
    drv_msg_destroy (&got);
    id = 0;
    s_expect_reject_msg (&wait, NULL, DROVER_ERR_INVALID);

    drv_msg_t config = {.type = DRV_MSG_QUEUE_CONFIG, .seq = 4,
                        .queue = {.function = "resize", .set_limit = true, .limit = 3,
                                  .set_paused = true, .paused = true}};
    got = s_round_trip (&config);
    cr_assert_str_eq (got->queue.function, "resize");
    cr_assert (got->queue.set_limit && got->queue.limit == 3);
    cr_assert (got->queue.set_paused && got->queue.paused);
    cr_assert_not (got->queue.set_max_queue);
    drv_msg_destroy (&got);
    config.queue.function = "bad name";
    s_expect_reject_msg (&config, NULL, DROVER_ERR_INVALID);

    drv_msg_t info = {.type = DRV_MSG_QUEUE_INFO, .seq = 4,
                      .queue = {.function = "resize", .limit = 3, .paused = true,
                                .max_queue = 10, .max_queue_in_force = 10, .queued = 5,
                                .delayed = 2, .running = 3, .workers = 4}};
    got = s_round_trip (&info);
    cr_assert_str_eq (got->queue.function, "resize");
    cr_assert_eq (got->queue.limit, 3);
    cr_assert (got->queue.paused);
    cr_assert_eq (got->queue.max_queue, 10);
    cr_assert_eq (got->queue.queued, 5);
    cr_assert_eq (got->queue.delayed, 2);
    cr_assert_eq (got->queue.running, 3);
    cr_assert_eq (got->queue.workers, 4);
    drv_msg_destroy (&got);
}

Test (codec, submit_with_invalid_function_is_invalid)
{
    drv_msg_t msg = s_submit ();
    msg.function = "has space";
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, bad_version_is_rejected_and_seq_reported)
{
    //  Envelope {version: 2, seq: 7, heartbeat: {}} written by hand.
    const uint8_t bytes [] = {0x08, 0x02, 0x10, 0x07, 0xf2, 0x01, 0x00};
    uint64_t seq = s_expect_reject (bytes, sizeof bytes, NULL, DROVER_ERR_BAD_VERSION);
    cr_assert_eq (seq, 7);
}

Test (codec, envelope_without_body_is_malformed)
{
    //  Envelope {version: 1, seq: 7} and nothing else.
    const uint8_t bytes [] = {0x08, 0x01, 0x10, 0x07};
    uint64_t seq = s_expect_reject (bytes, sizeof bytes, NULL, DROVER_ERR_MALFORMED);
    cr_assert_eq (seq, 7);
}

Test (codec, invalid_function_names_are_refused)
{
    char long_name [257];
    memset (long_name, 'a', 256);
    long_name [256] = 0;
    cr_assert_not (drv_codec_valid_function (""));
    cr_assert_not (drv_codec_valid_function (NULL));
    cr_assert_not (drv_codec_valid_function ("has space"));
    cr_assert_not (drv_codec_valid_function (long_name));
    cr_assert_not (drv_codec_valid_function ("a;b"));
}

Test (codec, valid_function_names_are_accepted)
{
    char long_name [256];
    memset (long_name, 'z', 255);
    long_name [255] = 0;
    cr_assert (drv_codec_valid_function ("resize"));
    cr_assert (drv_codec_valid_function ("a.b:c/d-e_f"));
    cr_assert (drv_codec_valid_function (long_name));
}

Test (codec, ready_with_zero_slots_is_invalid)
{
    drv_msg_t msg = s_ready (0);
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, ready_with_invalid_function_is_invalid)
{
    const char *functions [] = {"resize", "a;b"};
    drv_msg_t msg = s_ready (1);
    msg.functions = functions;
    msg.nfunctions = 2;
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, result_with_outcome_zero_is_invalid)
{
    s_expect_outcome_rejected ((drover_outcome_t) 0);
}

Test (codec, result_with_outcome_99_is_invalid)
{
    s_expect_outcome_rejected ((drover_outcome_t) 99);
}

Test (codec, status_with_job_id_zero_is_invalid)
{
    uint64_t ids [] = {3, 0};
    drv_msg_t msg = {.type = DRV_MSG_STATUS, .seq = 8, .job_ids = ids, .njob_ids = 2};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, dispatch_with_job_id_zero_is_invalid)
{
    drv_task_t task = {.id = 0, .function = "resize", .attempt = 1};
    drv_msg_t msg = {.type = DRV_MSG_DISPATCH, .seq = 9, .tasks = &task, .ntasks = 1};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
}

Test (codec, encode_refuses_submit_without_function)
{
    drv_msg_t msg = s_submit ();
    msg.function = NULL;
    cr_assert_null (drv_codec_encode (&msg));
}

Test (codec, progress_round_trips_reports_and_the_flags_that_ask_for_them)
{
    drv_progress_t reports [] = {
        {.job_id = 7, .done = 3, .total = 10, .partial = s_binary, .size = sizeof s_binary},
        {.job_id = 8, .done = 12345, .total = 0},
    };
    drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .seq = 9, .progress = reports, .nprogress = 2};
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->nprogress, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq (got->progress [i].job_id, reports [i].job_id);
        cr_assert_eq (got->progress [i].done, reports [i].done);
        cr_assert_eq (got->progress [i].total, reports [i].total);
        cr_assert_eq (got->progress [i].size, reports [i].size);
    }
    cr_assert_eq (memcmp (got->progress [0].partial, s_binary, sizeof s_binary), 0);
    drv_msg_destroy (&got);

    drv_task_t task = {.id = 1, .payload = s_binary, .size = 1};
    drv_msg_t submit = {.type = DRV_MSG_SUBMIT, .seq = 10, .function = "f", .tasks = &task,
                        .ntasks = 1, .want_progress = true};
    got = s_round_trip (&submit);
    cr_assert (got->want_progress);
    drv_msg_destroy (&got);
    submit.want_progress = false;
    got = s_round_trip (&submit);
    cr_assert_not (got->want_progress);
    drv_msg_destroy (&got);
    uint64_t id = 7;
    drv_msg_t wait = {.type = DRV_MSG_WAIT, .seq = 11, .job_ids = &id, .njob_ids = 1,
                      .want_progress = true};
    got = s_round_trip (&wait);
    cr_assert (got->want_progress);
    drv_msg_destroy (&got);

    drv_jobinfo_t job = {.job_id = 7, .state = DROVER_JOB_RUNNING, .function = "f",
                         .worker = "w", .has_progress = true,
                         .progress = {.done = 1, .total = 2, .partial = (const uint8_t *) "half",
                                      .size = 4}};
    drv_msg_t reply = {.type = DRV_MSG_STATUS_REPLY, .seq = 12, .jobs = &job, .njobs = 1};
    got = s_round_trip (&reply);
    cr_assert (got->jobs [0].has_progress);
    cr_assert_eq (got->jobs [0].progress.done, 1);
    cr_assert_eq (got->jobs [0].progress.total, 2);
    cr_assert_str_eq ((const char *) got->jobs [0].progress.partial, "half");
    drv_msg_destroy (&got);
}

Test (codec, progress_over_its_limits_or_past_its_total_is_refused)
{
    drv_progress_t report = {.job_id = 7, .done = 11, .total = 10};
    drv_msg_t msg = {.type = DRV_MSG_PROGRESS, .seq = 9, .progress = &report, .nprogress = 1};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
    report = (drv_progress_t) {.job_id = 0, .done = 1, .total = 10};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_INVALID);
    uint8_t *big = (uint8_t *) calloc (1, DRV_PROGRESS_PARTIAL_MAX + 1);
    report = (drv_progress_t) {.job_id = 7, .done = 1, .total = 10, .partial = big,
                               .size = DRV_PROGRESS_PARTIAL_MAX + 1};
    s_expect_reject_msg (&msg, NULL, DROVER_ERR_TOO_LARGE);
    report.size = DRV_PROGRESS_PARTIAL_MAX;
    drv_msg_t *got = s_round_trip (&msg);
    cr_assert_eq (got->progress [0].size, DRV_PROGRESS_PARTIAL_MAX);
    drv_msg_destroy (&got);
    free (big);
}

Test (codec, admin_queries_round_trip_and_bad_ones_are_refused)
{
    drv_msg_t query = {.type = DRV_MSG_JOBS_QUERY, .seq = 50,
                       .jobs_query = {.function = "resize", .state = DROVER_JOBS_DELAYED,
                                      .limit = 20, .newest_first = true}};
    drv_msg_t *decoded = s_round_trip (&query);
    cr_assert_str_eq (decoded->jobs_query.function, "resize");
    cr_assert_eq (decoded->jobs_query.state, DROVER_JOBS_DELAYED);
    cr_assert_eq (decoded->jobs_query.limit, 20);
    cr_assert (decoded->jobs_query.newest_first);
    drv_msg_destroy (&decoded);
    //  No function: every function's.
    query.jobs_query = (drv_jobs_query_t) {0};
    decoded = s_round_trip (&query);
    cr_assert_null (decoded->jobs_query.function);
    drv_msg_destroy (&decoded);
    query.jobs_query.limit = DRV_JOBS_LIMIT_MAX + 1;
    s_expect_reject_msg (&query, NULL, DROVER_ERR_INVALID);
    query.jobs_query.limit = 0;
    query.jobs_query.state = (drover_jobs_filter_t) 7;
    s_expect_reject_msg (&query, NULL, DROVER_ERR_INVALID);
    query.jobs_query.state = DROVER_JOBS_ANY;
    query.jobs_query.function = "no spaces";
    s_expect_reject_msg (&query, NULL, DROVER_ERR_INVALID);
    drv_msg_type_t empty [] = {DRV_MSG_WORKERS_QUERY, DRV_MSG_QUEUES_QUERY, DRV_MSG_STATS_QUERY};
    for (size_t i = 0; i < 3; i++) {
        drv_msg_t msg = {.type = empty [i], .seq = 51 + i};
        decoded = s_round_trip (&msg);
        drv_msg_destroy (&decoded);
    }
}

Test (codec, admin_replies_round_trip_every_field)
{
    drv_job_row_t rows [] = {
        {.job_id = 7, .function = "f", .state = DROVER_JOB_RUNNING, .priority = -3,
         .attempts = 2, .worker = "host:12", .age_ms = 4000},
        {.job_id = 9, .function = "g", .state = DROVER_JOB_QUEUED, .delayed = true,
         .worker = "", .run_in_ms = 500},
        {.job_id = 11, .function = "g", .state = DROVER_JOB_FAILED, .worker = "",
         .outcome = DROVER_OUTCOME_TIMEOUT},
    };
    drv_msg_t list = {.type = DRV_MSG_JOB_LIST, .seq = 1, .rows = rows, .nrows = 3, .total = 40};
    drv_msg_t *decoded = s_round_trip (&list);
    cr_assert_eq (decoded->nrows, 3);
    cr_assert_eq (decoded->total, 40);
    cr_assert_eq (decoded->rows [0].job_id, 7);
    cr_assert_str_eq (decoded->rows [0].worker, "host:12");
    cr_assert_eq (decoded->rows [0].priority, -3);
    cr_assert_eq (decoded->rows [0].age_ms, 4000);
    cr_assert (decoded->rows [1].delayed);
    cr_assert_eq (decoded->rows [1].run_in_ms, 500);
    cr_assert_eq (decoded->rows [2].outcome, DROVER_OUTCOME_TIMEOUT);
    cr_assert_str_eq (decoded->rows [2].function, "g");
    drv_msg_destroy (&decoded);
    //  An empty list is a list.
    list.nrows = 0;
    list.total = 0;
    decoded = s_round_trip (&list);
    cr_assert_eq (decoded->nrows, 0);
    drv_msg_destroy (&decoded);

    const char *functions [] = {"f", "g"};
    drv_worker_row_t workers [] = {
        {.name = "a:1", .identity = (const uint8_t *) "W1", .identity_size = 2,
         .functions = functions, .nfunctions = 2, .slots = 4, .running = 1, .done = 99,
         .connected_ms = 60000, .heard_ms = 200},
        {.name = "b:2", .identity = s_binary, .identity_size = sizeof s_binary,
         .functions = functions + 1, .nfunctions = 1, .slots = 1},
    };
    drv_msg_t wlist = {.type = DRV_MSG_WORKER_LIST, .seq = 2, .worker_rows = workers,
                       .nworker_rows = 2, .total = 2};
    decoded = s_round_trip (&wlist);
    cr_assert_eq (decoded->nworker_rows, 2);
    cr_assert_str_eq (decoded->worker_rows [0].name, "a:1");
    cr_assert_eq (decoded->worker_rows [0].nfunctions, 2);
    cr_assert_str_eq (decoded->worker_rows [0].functions [1], "g");
    cr_assert_eq (decoded->worker_rows [0].done, 99);
    cr_assert_eq (decoded->worker_rows [0].connected_ms, 60000);
    cr_assert_eq (decoded->worker_rows [1].identity_size, sizeof s_binary);
    cr_assert (memcmp (decoded->worker_rows [1].identity, s_binary, sizeof s_binary) == 0);
    drv_msg_destroy (&decoded);

    drv_queue_info_t queues [] = {{.function = "f", .limit = 3, .paused = true, .queued = 5,
                                   .max_queue_in_force = 10, .workers = 2},
                                  {.function = "g", .delayed = 8, .running = 1}};
    drv_msg_t qlist = {.type = DRV_MSG_QUEUE_LIST, .seq = 3, .queues = queues, .nqueues = 2,
                       .total = 5};
    decoded = s_round_trip (&qlist);
    cr_assert_eq (decoded->nqueues, 2);
    cr_assert_eq (decoded->total, 5);
    cr_assert_eq (decoded->queues [0].limit, 3);
    cr_assert (decoded->queues [0].paused);
    cr_assert_eq (decoded->queues [0].max_queue_in_force, 10);
    cr_assert_eq (decoded->queues [1].delayed, 8);
    cr_assert_str_eq (decoded->queues [1].function, "g");
    drv_msg_destroy (&decoded);

    drv_msg_t stats = {.type = DRV_MSG_STATS, .seq = 4,
                       .stats = {.uptime_ms = 1, .submitted = 2, .dispatched = 3, .succeeded = 4,
                                 .failed = 5, .cancelled = 6, .retried = 7, .requeued = 8,
                                 .redelivered = 9, .rejected = 10, .malformed = 11,
                                 .too_large = 12, .cut = 13, .clients = 14, .workers = 15,
                                 .jobs = 16, .bytes = 17, .heap = 18, .functions = 19,
                                 .dead = 20, .durable = true, .commits = 22}};
    decoded = s_round_trip (&stats);
    const drover_stats_t *got = &decoded->stats;
    uint64_t values [] = {got->uptime_ms, got->submitted, got->dispatched, got->succeeded,
                          got->failed, got->cancelled, got->retried, got->requeued,
                          got->redelivered, got->rejected, got->malformed, got->too_large,
                          got->cut, got->clients, got->workers, got->jobs, got->bytes,
                          got->heap, got->functions, got->dead, 21, got->commits};
    for (uint64_t i = 0; i < sizeof values / sizeof values [0]; i++)
        cr_assert_eq (values [i], i + 1, "counter %" PRIu64 " comes back", i + 1);
    cr_assert (got->durable);
    drv_msg_destroy (&decoded);
}

Test (codec, admin_replies_with_bad_fields_are_refused)
{
    drv_job_row_t row = {.job_id = 1, .function = "f", .worker = "",
                         .state = (drover_state_t) 9};
    drv_msg_t list = {.type = DRV_MSG_JOB_LIST, .rows = &row, .nrows = 1};
    s_expect_reject_msg (&list, NULL, DROVER_ERR_INVALID);
    char long_name [300];
    memset (long_name, 'n', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    drv_worker_row_t worker = {.name = long_name, .slots = 1};
    drv_msg_t wlist = {.type = DRV_MSG_WORKER_LIST, .worker_rows = &worker, .nworker_rows = 1};
    s_expect_reject_msg (&wlist, NULL, DROVER_ERR_INVALID);
}
