/*  fuzz_envelope_peer - the envelope decoder as clients and workers run
    it on what the broker sends (drv_limits_from_broker: the ceilings,
    since they do not know the broker's own limits).
*/

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    drv_limits_t limits = drv_limits_from_broker ();
    fuzz_decode (data, size, &limits);
    fuzz_decode_frames (data, size, &limits);     //  a worker reads Dispatch frames
    return 0;
}
