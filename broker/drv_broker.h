/*  drv_broker - the broker's transport: two ROUTER sockets and one zloop.

    Clients talk to one ROUTER, workers to the other; every message is one
    frame after the routing id (see docs/protocol.md). The actor decodes,
    hands jobs to drv_store and drv_sched, sends what they decide, and
    keeps one timer armed to the soonest deadline in its data (result
    expiry, worker liveness, undelivered results). drover_broker_* in
    include/drover.h is the public face; drover-broker is a thin main.
*/

#ifndef DRV_BROKER_H_INCLUDED
#define DRV_BROKER_H_INCLUDED

#include <czmq.h>

#include "drv_codec.h"

//  What the actor needs to start. Borrowed by the actor for its life.
typedef struct {
    const char *clients_endpoint;    //  bind for clients
    const char *workers_endpoint;    //  bind for workers
    drv_limits_t limits;             //  decoder limits
    size_t max_queue;                //  jobs per function queue
    size_t max_bytes;                //  bytes of jobs held in all
    size_t max_functions;            //  distinct function queues
    size_t max_memory;               //  heap budget; 0: max_bytes + 1 GiB
    uint32_t keep_results_ms;        //  finished jobs stay queryable
    uint32_t heartbeat_ms;           //  expected worker heartbeat interval
    uint32_t liveness;               //  missed heartbeats before a worker is dead
    bool verbose;                    //  log every submit
    const char *data_dir;            //  durable mode: the job store, or NULL
    bool insecure;                   //  may bind beyond loopback without keys
    zcert_t *curve_cert;             //  CURVE: the broker's key pair, or NULL
    const char *allow_clients;       //  CURVE: client certificates let in
    const char *allow_workers;       //  CURVE: worker certificates let in
    const char *metrics_endpoint;    //  serve Prometheus metrics here, or NULL
} drv_broker_config_t;

//  The broker actor (zactor_fn). After binding it sends one message on
//  its pipe: "OK" with the two bound endpoints and the metrics one (""
//  without --metrics), or "ERROR" with a reason.
//  It ends on $TERM, or by itself when its job store fails, after sending
//  "FAILED" with a reason.
void drv_broker_actor (zsock_t *pipe, void *args);

#endif
