/*  fuzz_common - what the envelope fuzz targets share: decode the input
    with the given limits, and check that whatever decodes encodes again
    to an envelope that decodes to the same type and seq. A failure of
    that check aborts, which libFuzzer reports as a crash.
*/

#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <stdint.h>
#include <stdlib.h>

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

#endif
