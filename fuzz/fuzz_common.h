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

static void
fuzz_decode (const uint8_t *data, size_t size, const drv_limits_t *limits)
{
    drv_msg_t *msg = NULL;
    uint64_t seq = 0;
    char err [256];
    drover_error_t rc = drv_codec_decode (data, size, limits, &msg, &seq, err, sizeof err);
    if (rc != DROVER_ERR_NONE) {
        //  A refusal comes with a reason and no message.
        if (msg || !err [0])
            abort ();
        return;
    }
    zframe_t *frame = drv_codec_encode (msg);
    if (!frame)
        abort ();
    //  What we encode from a decoded message stays within the limits
    //  that message was decoded with, less what its arena dropped.
    drv_msg_t *again = NULL;
    drv_limits_t unlimited = drv_limits_from_broker ();
    rc = drv_codec_decode (zframe_data (frame), zframe_size (frame), &unlimited, &again, NULL,
                           err, sizeof err);
    if (rc != DROVER_ERR_NONE || again->type != msg->type || again->seq != msg->seq)
        abort ();
    drv_msg_destroy (&again);
    zframe_destroy (&frame);
    drv_msg_destroy (&msg);
}

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
    drv_msg_t *msg = NULL;
    uint64_t seq = 0;
    char err [256];
    drover_error_t rc = drv_codec_decode_frames (data, nframes ? part : size, frames, nframes,
                                                 limits, &msg, &seq, err, sizeof err);
    for (size_t i = 0; i < nframes; i++)
        if (frames [i])
            abort ();               //  the frames are taken in every case
    if (rc != DROVER_ERR_NONE) {
        if (msg || !err [0])
            abort ();
        return;
    }
    //  Again: the envelope, and a frame per framed task, in order.
    zframe_t *frame = drv_codec_encode (msg);
    if (!frame)
        abort ();
    size_t count = 0;
    for (size_t i = 0; i < msg->ntasks; i++)
        if (msg->tasks [i].framed && count < 3)
            frames [count++] = zframe_new (msg->tasks [i].payload, msg->tasks [i].size);
    if (count != nframes)
        abort ();
    drv_msg_t *again = NULL;
    drv_limits_t unlimited = drv_limits_from_broker ();
    rc = drv_codec_decode_frames (zframe_data (frame), zframe_size (frame), frames, count,
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

#endif
