/*  fuzz_common - what the envelope fuzz targets share: decode the input
    with the given limits, and check that whatever decodes encodes again
    to an envelope that decodes to the same type and seq. A failure of
    that check aborts, which libFuzzer reports as a crash.

    fuzz_decode_frames does the same for an envelope followed by payload
    frames: the first byte of the input says how many (0 to 3), and the
    rest is cut into the envelope and the frames, in equal parts.
*/

#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drv_codec.h"

//  Decode an envelope and the nframes payload frames after it (taken),
//  and check the round trip: a refusal has a reason and no message; what
//  decodes encodes again to the same type, seq and payloads.
static void
fuzz_round_trip (const uint8_t *data, size_t size, zframe_t **frames, size_t nframes,
                 const drv_limits_t *limits)
{
    drv_msg_t *msg = NULL;
    uint64_t seq = 0;
    char err [256];
    drover_error_t rc = drv_codec_decode_frames (data, size, frames, nframes, limits, &msg, &seq,
                                                 err, sizeof err);
    for (size_t i = 0; i < nframes; i++)
        if (frames [i])
            abort ();               //  the frames are taken in every case
    if (rc != DROVER_ERR_NONE) {
        if (msg || !err [0])
            abort ();
        return;
    }
    //  Again: the envelope, and a frame per framed task, in order. What we
    //  encode from a decoded message stays within the limits that message
    //  was decoded with, less what its arena dropped.
    zframe_t *frame = drv_codec_encode (msg);
    if (!frame)
        abort ();
    zframe_t *again_frames [3] = {NULL, NULL, NULL};
    size_t count = 0;
    for (size_t i = 0; i < msg->ntasks; i++)
        if (msg->tasks [i].framed && count < 3)
            again_frames [count++] = zframe_new (msg->tasks [i].payload, msg->tasks [i].size);
    if (count != nframes)
        abort ();
    drv_msg_t *again = NULL;
    drv_limits_t unlimited = drv_limits_from_broker ();
    rc = drv_codec_decode_frames (zframe_data (frame), zframe_size (frame), again_frames, count,
                                  &unlimited, &again, NULL, err, sizeof err);
    if (rc != DROVER_ERR_NONE || again->type != msg->type || again->seq != msg->seq)
        abort ();
    for (size_t i = 0; i < again->ntasks; i++)
        if (again->tasks [i].size != msg->tasks [i].size
            || memcmp (again->tasks [i].payload, msg->tasks [i].payload, msg->tasks [i].size))
            abort ();
    drv_msg_destroy (&again);
    zframe_destroy (&frame);
    drv_msg_destroy (&msg);
}

//  The whole input as one envelope.
static void
fuzz_decode (const uint8_t *data, size_t size, const drv_limits_t *limits)
{
    fuzz_round_trip (data, size, NULL, 0, limits);
}

//  The input as an envelope and payload frames (see the top).
static void
fuzz_decode_frames (const uint8_t *data, size_t size, const drv_limits_t *limits)
{
    if (size < 1)
        return;
    size_t nframes = data [0] % 4;
    data++;
    size--;
    size_t part = size / (nframes + 1);
    zframe_t *frames [3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < nframes; i++) {
        size_t start = part * (i + 1);
        size_t length = i + 1 == nframes ? size - start : part;
        frames [i] = zframe_new (data + start, length);
    }
    fuzz_round_trip (data, nframes ? part : size, frames, nframes, limits);
}

#endif
