/*  drv_auth - CURVE keys and the broker's ZAP handler.

    Keys live in czmq's zcert files: drover_keygen (`drover keygen PATH`,
    here too) writes PATH (the public certificate, to hand out) and
    PATH_secret (to keep). The broker
    lets in only the public keys found in its allow-list directories, one
    list per ZAP domain ("clients", "workers"), so a key listed for one
    socket cannot use the other.

    The ZAP handler is an actor bound to inproc://zeromq.zap.01 in czmq's
    ZeroMQ context. It speaks RFC 27 and looks each key up in the store of
    the request's domain. czmq's zauth does not fit: it keeps one store for
    every domain. Each store is an in-memory zcertstore that this module
    fills and refreshes itself (see drv_auth.c for why not zcertstore's
    own disk loader). There can be one ZAP handler per ZeroMQ context, so
    one CURVE broker per process.

    Fail closed: libzmq 4.3 lets a CURVE client in when no ZAP handler
    answers, unless the socket has a ZAP domain and ZMQ_ZAP_ENFORCE_DOMAIN;
    drv_auth_server_apply sets both and checks every return code.

    This module is not the peers' side of the handshake watch (that is
    drv_handshake) and does not decide who may do what once in.
*/

#ifndef DRV_AUTH_H_INCLUDED
#define DRV_AUTH_H_INCLUDED

#include <czmq.h>

#include "drover.h"

//  ZAP domains of the broker's two sockets.
#define DRV_AUTH_CLIENTS "clients"
#define DRV_AUTH_WORKERS "workers"

//  Load a certificate from a zcert file. With secret, the file must hold a
//  secret key that matches its public key (the PATH_secret file that
//  keygen writes) and must not be readable by others; else only its
//  public key is taken. NULL with a reason in err; the caller owns the
//  certificate.
zcert_t *drv_auth_load_cert (const char *path, bool secret, char *err, size_t err_size);

//  Make sock a CURVE server with cert's keys in ZAP domain `domain`,
//  with ZMQ_ZAP_ENFORCE_DOMAIN on. Before binding. -1 with a reason if
//  any option is refused (then the socket must not be used).
int drv_auth_server_apply (zsock_t *sock, zcert_t *cert, const char *domain, char *err,
                           size_t err_size);

//  Make sock a CURVE client with cert's keys, talking to the server whose
//  public key is server's. Before connecting. -1 with a reason.
int drv_auth_client_apply (zsock_t *sock, zcert_t *cert, zcert_t *server, char *err,
                           size_t err_size);

//  The ZAP handler.
typedef struct _drv_auth_t drv_auth_t;

//  Start the handler and bind it. NULL with a reason, e.g. when another
//  handler (another CURVE broker, or zauth) holds the endpoint already.
drv_auth_t *drv_auth_new (char *err, size_t err_size);

//  Stop the handler and destroy it; logs what it allowed and refused.
void drv_auth_destroy (drv_auth_t **self_p);

//  Let in the keys of the public certificates in directory dir (and its
//  subdirectories) on ZAP domain `domain`. The directory is read again
//  whenever it changed, at the next handshake. -1 with a reason if dir
//  cannot be read. *keys is how many keys it holds now (may be NULL).
int drv_auth_allow (drv_auth_t *self, const char *domain, const char *dir, size_t *keys,
                    char *err, size_t err_size);

#endif
