/*  drv_handshake - watch a peer socket's handshakes with the broker.

    Events arrive on a PAIR connected to the monitor endpoint, two frames
    each: 6 bytes (uint16 event, uint32 value, host order) and the
    endpoint. A connection counts as "dropped" when it was made
    (CONNECTED) and ended before HANDSHAKE_SUCCEEDED, whichever events
    say so (HANDSHAKE_FAILED_NO_DETAIL, an unspecific protocol error,
    DISCONNECTED); DRV_HANDSHAKE_MAX_DROPPED of them in a row are a
    verdict. A refusal by the broker's ZAP handler and a mechanism
    mismatch are verdicts at once.
*/

#include "drv_handshake.h"

#include <stdatomic.h>
#include <unistd.h>

struct _drv_handshake_t {
    zsock_t *watched;                //  the socket watched, borrowed
    zsock_t *events;                 //  PAIR on its monitor endpoint
    const char *role;                //  "client" or "worker", static
    bool curve;                      //  the watched socket uses CURVE
    bool pending;                    //  a connection waits for its handshake
    int dropped;                     //  handshakes dropped in a row
    bool failed;                     //  the verdict is in
    char reason [512];               //  and says this
};

static void
s_fail (drv_handshake_t *self, const char *format, ...)
{
    int length = snprintf (self->reason, sizeof self->reason, "authentication failed: ");
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason + length, sizeof self->reason - (size_t) length, format, args);
    va_end (args);
    self->failed = true;
}

drv_handshake_t *
drv_handshake_new (zsock_t *sock, const char *role, bool curve, char *err, size_t err_size)
{
    static atomic_uint s_counter;
    drv_handshake_t *self = (drv_handshake_t *) calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    self->watched = sock;
    self->role = role;
    self->curve = curve;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://drover-handshake-%d-%u", (int) getpid (),
              atomic_fetch_add (&s_counter, 1));
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                 | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                 | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint, events) != 0) {
        snprintf (err, err_size, "cannot monitor the broker connection: %s",
                  zmq_strerror (zmq_errno ()));
        free (self);
        return NULL;
    }
    //  libzmq sends monitor events blocking, from its I/O thread: a full
    //  pipe would stall every connection of the context while nobody
    //  reads (an idle SDK client whose broker comes and goes). No limit
    //  on our side makes the inproc pipe unbounded; an event is a few
    //  dozen bytes, and every call that talks to the broker drains them.
    self->events = zsock_new (ZMQ_PAIR);
    if (self->events)
        zsock_set_rcvhwm (self->events, 0);
    if (!self->events || zsock_connect (self->events, "%s", endpoint) == -1) {
        snprintf (err, err_size, "cannot read the broker connection's events");
        drv_handshake_destroy (&self);
    }
    return self;
}

void
drv_handshake_destroy (drv_handshake_t **self_p)
{
    assert (self_p);
    drv_handshake_t *self = *self_p;
    if (self) {
        zmq_socket_monitor (zsock_resolve (self->watched), NULL, 0);
        zsock_destroy (&self->events);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
drv_handshake_sock (drv_handshake_t *self)
{
    return self->events;
}

const char *
drv_handshake_reason (drv_handshake_t *self)
{
    return self->reason;
}

//  A connection ended before its handshake succeeded.
static void
s_dropped (drv_handshake_t *self, const char *detail)
{
    if (!self->pending)
        return;
    self->pending = false;
    if (++self->dropped < DRV_HANDSHAKE_MAX_DROPPED)
        return;
    if (self->curve)
        s_fail (self,
                "the broker dropped the CURVE handshake %d times in a row (%s): --broker-key is "
                "probably not the broker's public certificate, or the broker does not use CURVE",
                self->dropped, detail);
    else
        //  A CURVE broker closes on a plain greeting; when it closes before
        //  this side has read its reason, the drop is all there is to see.
        s_fail (self, "the broker dropped the handshake %d times in a row (%s): it probably "
                      "requires CURVE (give this %s --curve-secret and --broker-key), or it is "
                      "not a drover broker",
                self->dropped, detail, self->role);
}

static void
s_event (drv_handshake_t *self, uint16_t event, uint32_t value)
{
    const char *flag = streq (self->role, "client") ? "--allow-clients" : "--allow-workers";
    switch (event) {
        case ZMQ_EVENT_CONNECTED:
            self->pending = true;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            self->pending = false;
            self->dropped = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            if (value == 400)
                s_fail (self,
                        "the broker does not let this %s's key in (it is not in the broker's %s "
                        "list)",
                        self->role, flag);
            else
                s_fail (self, "the broker could not check this %s's key (ZAP status %u)",
                        self->role, value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                if (self->curve)
                    s_fail (self, "the broker does not use CURVE, but this %s was given keys "
                                  "(--curve-secret)",
                            self->role);
                else
                    s_fail (self, "the broker requires CURVE: give this %s --curve-secret and "
                                  "--broker-key",
                            self->role);
            }
            else {
                char detail [64];
                snprintf (detail, sizeof detail, "protocol error 0x%x", value);
                s_dropped (self, detail);
            }
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            s_dropped (self, zmq_strerror ((int) value));
            break;
        case ZMQ_EVENT_DISCONNECTED:
            s_dropped (self, "connection closed");
            break;
        default:
            break;
    }
}

int
drv_handshake_read (drv_handshake_t *self)
{
    while (!self->failed && (zsock_events (self->events) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (self->events);
        if (!msg)
            break;
        zframe_t *head = zmsg_first (msg);
        if (head && zframe_size (head) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy (&event, zframe_data (head), sizeof event);
            memcpy (&value, zframe_data (head) + 2, sizeof value);
            s_event (self, event, value);
        }
        zmsg_destroy (&msg);
    }
    return self->failed ? -1 : 0;
}
