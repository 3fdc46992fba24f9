/*  drv_json - JSON lines for `drover --json`: results, job states, queue
    settings and the admin views as one object per line, for scripts.

    Strings are written as JSON wants them (escapes for quotes, backslash
    and control characters). Task output that is not valid UTF-8 cannot
    be a JSON string: it goes as "data_base64" instead of "data".
*/

#ifndef DRV_JSON_H_INCLUDED
#define DRV_JSON_H_INCLUDED

#include <stdio.h>

#include "drover.h"

//  {"job_id":N,"outcome":"ok","data":"...","reason":"","attempts":N}
//  with "line":N first when line > 0 (drover map).
void drv_json_result (FILE *out, const drover_result_t *result, size_t line);

//  {"job_id":N} (drover submit --detach).
void drv_json_job_id (FILE *out, uint64_t job_id);

//  {"job_id":N,"state":"running","function":"f",...} (status, cancel);
//  a running job's last progress report as "progress":{"done":D,
//  "total":T,"partial":"text","partial_size":N}.
void drv_json_status (FILE *out, const drover_status_t *status);

//  {"function":"f","paused":false,"limit":0,...} (queue commands).
void drv_json_queue (FILE *out, const drover_queue_t *queue);

//  {"job_id":N,"function":"f","state":"delayed","priority":0,...} (jobs).
void drv_json_job (FILE *out, const drover_job_info_t *job);

//  A job's state as the views name it: "delayed" for a queued job that
//  waits for its time, else drover_state_name. Static.
const char *drv_json_job_state (const drover_job_info_t *job);

//  {"name":"host:1","identity":"W...","functions":["f"],...} (workers).
void drv_json_worker (FILE *out, const drover_worker_info_t *worker);

//  {"uptime_ms":N,"submitted":N,...} (stats).
void drv_json_stats (FILE *out, const drover_stats_t *stats);

#endif
