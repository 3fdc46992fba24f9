/*  drv_util - small helpers every layer shares: u64-keyed hash tables,
    result records, and the names of outcomes, states and errors.
*/

#ifndef DRV_UTIL_H_INCLUDED
#define DRV_UTIL_H_INCLUDED

#include <czmq.h>

#include "drover.h"

//  A zhashx keyed by uint64_t values cast to pointers (no key copies);
//  items are not destroyed unless the caller sets a destructor.
zhashx_t *drv_util_u64_hash_new (void);

//  The key for a uint64_t in such a table.
static inline const void *
drv_util_u64_key (uint64_t value)
{
    return (const void *) (uintptr_t) value;
}

//  The item for a uint64_t key, or NULL. Zero is never a key (ids, tags
//  and sequence numbers start at 1), and zhashx takes a NULL key as
//  misuse, so a zero from the network must not reach it.
static inline void *
drv_util_u64_lookup (zhashx_t *hash, uint64_t value)
{
    return value ? zhashx_lookup (hash, drv_util_u64_key (value)) : NULL;
}

//  A new result with copies of data and reason (NULL reason means "").
//  NULL if out of memory. The caller owns it.
drover_result_t *drv_util_result_new (uint64_t job_id, drover_outcome_t outcome,
                                      const void *data, size_t size, const char *reason,
                                      uint32_t attempts);

//  Send czmq's log to stderr, unless drover_set_logstream chose already.
//  Every drover_*_new calls it.
void drv_util_log_init (void);

//  A zloop reader for an actor's pipe: $TERM (or a broken pipe) ends
//  the loop; "PING" TOKEN is answered "PONG" TOKEN, so the owner can see
//  that the loop turns (drv_util_ping); anything else is ignored.
int drv_util_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg);

//  Send "PING" and a fresh token to an actor that reads its pipe with
//  drv_util_on_pipe, and wait up to timeout_ms for the PONG with that
//  token; late PONGs for earlier pings are dropped. 0 if it came, else
//  -1. A message other than a PONG that came meanwhile (the actor's
//  report that it stopped) ends the wait and is handed to the caller in
//  *other_p, else *other_p is NULL. Only the actor's owner thread calls.
int drv_util_ping (zactor_t *actor, int timeout_ms, zmsg_t **other_p);

//  Wait up to timeout_ms (-1: forever) for the report an actor sends when
//  it stops by itself, dropping late PONGs. The report, the caller's, or
//  NULL if none came (or the actor is gone).
zmsg_t *drv_util_wait_report (zactor_t *actor, int timeout_ms);

//  Write the reason a stop report gives (or fallback) into error, of
//  error_size bytes, and destroy the report.
void drv_util_report_reason (zmsg_t **report_p, const char *fallback, char *error,
                             size_t error_size);

//  True if msg is a PONG (one that came late, for the caller to drop).
bool drv_util_is_pong (zmsg_t *msg);

//  Write bytes as lowercase hex into out (2*length+1 bytes) and return it.
char *drv_util_hex (const uint8_t *bytes, size_t length, char *out);

//  Copy at most size-1 bytes of src into dst and NUL-terminate.
void drv_util_strlcpy (char *dst, const char *src, size_t size);

#endif
