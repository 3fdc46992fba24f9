/*  drv_guard - keeps the broker's heap under a budget by cutting TCP
    connections that are stuck in the middle of a message.

    Why: libzmq holds every frame of a multipart message until its last
    frame arrives, and ZMQ_MAXMSGSIZE bounds each frame, not their number.
    A peer that sends frame after frame, never the last, grows the
    broker's memory with nothing delivered to the broker to see (an empty
    frame costs 2 bytes on the wire and about 64 bytes in libzmq). The
    guard watches what it can see instead: the kernel's count of bytes
    received on each connection (TCP_INFO) against the messages the
    broker got from it (the "__fd" property of each frame). When the heap
    in use is over the budget, every connection that has received more
    than a few KiB since its last complete message and completed none in
    the last check interval is shut down; libzmq then frees what it held.
    Drover peers send one frame per message, so a stuck connection is a
    broken or hostile peer, or a legitimate large message in transit while
    the broker is out of memory anyway.

    It is not a rate limiter and knows nothing of the protocol. ipc://
    connections are not watched (their peers are local users).
*/

#ifndef DRV_GUARD_H_INCLUDED
#define DRV_GUARD_H_INCLUDED

#include <czmq.h>

typedef struct _drv_guard_t drv_guard_t;

//  A guard that keeps the heap in use under max_memory bytes.
drv_guard_t *drv_guard_new (size_t max_memory);

//  Destroy the guard and NULL the pointer.
void drv_guard_destroy (drv_guard_t **self_p);

//  Watch the connections accepted on endpoint, as bound (tcp://host:port;
//  other transports are ignored). 0, or -1 if the guard watches too many.
int drv_guard_watch (drv_guard_t *self, const char *endpoint);

//  A message arrived; frame is any frame of it (its "__fd" says from where).
void drv_guard_seen (drv_guard_t *self, zframe_t *frame);

//  Check the heap; over budget, cut the stuck connections. Returns how
//  many were cut. Call it every DRV_GUARD_INTERVAL_MS.
size_t drv_guard_check (drv_guard_t *self);

//  Connections open now on endpoint, by a walk of /proc/self/fd: TCP
//  connections on tcp://host:port (as bound and watched), unix-domain
//  connections accepted on ipc://path (a file, or @name in the abstract
//  namespace); 0 for other transports. For the admin views: it costs a
//  few system calls per descriptor.
size_t drv_guard_connections (drv_guard_t *self, const char *endpoint);

//  How often drv_guard_check should run, in ms.
#define DRV_GUARD_INTERVAL_MS 100

//  Bytes of heap in use by the whole process (malloc's count, or the
//  sanitizer allocator's under AddressSanitizer).
size_t drv_guard_heap (void);

#endif
