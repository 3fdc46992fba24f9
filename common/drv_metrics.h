/*  drv_metrics - the broker's counters and queues in the Prometheus text
    exposition format (version 0.0.4).

    One formatter for both places that show them: the broker's --metrics
    HTTP endpoint and `drover stats --prometheus` (through
    drover_client_metrics), so that a scrape and a textfile collector see
    the same names. It formats; it does not serve or ask.
*/

#ifndef DRV_METRICS_H_INCLUDED
#define DRV_METRICS_H_INCLUDED

#include "drover.h"

//  The exposition text for stats and count queues, the caller's to free;
//  NULL if out of memory. total is how many functions the broker has:
//  when more than count, a comment says the list was cut.
char *drv_metrics_text (const drover_stats_t *stats, const drover_queue_t *queues, size_t count,
                        size_t total);

#endif
