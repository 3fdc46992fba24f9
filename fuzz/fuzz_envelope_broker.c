/*  fuzz_envelope_broker - the envelope decoder as the broker runs it on
    what clients and workers send: the default limits, and the workers'
    variant (a result may be as large as a message; drv_broker fails the
    job itself), and the input cut into an envelope and payload frames.
    Any input must decode or be refused, never crash.
*/

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    drv_limits_t limits = drv_limits_default ();
    fuzz_decode (data, size, &limits);
    limits.max_payload = limits.max_message;
    fuzz_decode (data, size, &limits);
    //  Tight limits reach the size checks with small inputs.
    drv_limits_t tight = {.max_message = 4096, .max_payload = 64, .max_batch = 4};
    fuzz_decode (data, size, &tight);
    //  The same bytes as an envelope followed by payload frames.
    limits = drv_limits_default ();
    fuzz_decode_frames (data, size, &limits);
    fuzz_decode_frames (data, size, &tight);
    return 0;
}
