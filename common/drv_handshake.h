/*  drv_handshake - watch a client's or worker's connection handshakes
    and say when authentication failed, and why.

    A peer the broker will not let in sees no error on its socket: ZeroMQ
    just tries again, so a rejected client would wait for ever. This
    module reads the socket's monitor events (zmq_socket_monitor) and
    turns them into a verdict: the broker refused the key (ZAP status
    400), one side uses CURVE and the other does not (mechanism
    mismatch), or the broker dropped the handshake several times in a row
    without a word, which is what a wrong broker key looks like (the
    broker cannot read the HELLO and closes the link). A broker that is
    down is not a failure: no connection is made, so no handshake fails.

    Not thread-safe: use from the thread that owns the socket.
*/

#ifndef DRV_HANDSHAKE_H_INCLUDED
#define DRV_HANDSHAKE_H_INCLUDED

#include <czmq.h>

//  Failed handshakes in a row taken as a wrong broker key.
#define DRV_HANDSHAKE_MAX_DROPPED 3

typedef struct _drv_handshake_t drv_handshake_t;

//  Watch sock, before it connects. role ("client", "worker") words the
//  reasons; curve says whether sock uses CURVE. NULL with a reason in err.
drv_handshake_t *drv_handshake_new (zsock_t *sock, const char *role, bool curve, char *err,
                                    size_t err_size);

//  Stop watching and destroy; call before destroying the socket.
void drv_handshake_destroy (drv_handshake_t **self_p);

//  The socket that gets the events, to poll on. Borrowed.
zsock_t *drv_handshake_sock (drv_handshake_t *self);

//  Read the events waiting, without blocking. -1 once authentication
//  failed (and every call after), 0 otherwise.
int drv_handshake_read (drv_handshake_t *self);

//  Why authentication failed, "authentication failed: ..."; "" if it did
//  not. Borrowed.
const char *drv_handshake_reason (drv_handshake_t *self);

#endif
