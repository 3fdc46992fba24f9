/*  drv_testutil - what the end-to-end tests share: free loopback ports,
    real daemons started as child processes and always reaped, and
    running a command with input to capture its output.

    Every process started here is recorded; drv_test_reap_all (a
    Criterion .fini) stops them all, and each dies with the test process
    anyway (PR_SET_PDEATHSIG), so a failing test leaves nothing behind.
*/

#ifndef DRV_TESTUTIL_H_INCLUDED
#define DRV_TESTUTIL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "drover.h"

//  In-process handlers the SDK tests share. square: the payload is a
//  decimal number, the result its square in decimal; echo: the result is
//  the payload.
int drv_test_square (drover_task_t *task, void *arg);
int drv_test_echo (drover_task_t *task, void *arg);

//  Paths to the built programs and the test scripts.
#define DRV_BROKER_BIN DROVER_BIN_DIR "/drover-broker"
#define DRV_WORKER_BIN DROVER_BIN_DIR "/drover-worker"
#define DRV_CLI_BIN DROVER_BIN_DIR "/drover"
#define DRV_TEST_SCRIPTS DROVER_SOURCE_DIR "/tests/bin"

//  A loopback TCP port that was free a moment ago.
int drv_test_free_port (void);

//  Start argv[0] with its stderr appended to log_path (NULL: inherit);
//  returns its pid. The process is recorded for drv_test_reap_all.
pid_t drv_test_spawn (const char *const argv [], const char *log_path);

//  Send sig, wait up to timeout_ms for exit, then SIGKILL. Returns the
//  wait status, or -1 if the pid was not ours.
int drv_test_stop (pid_t pid, int sig, int timeout_ms);

//  Stop every process still recorded (SIGTERM, then SIGKILL).
void drv_test_reap_all (void);

//  Output of a finished command.
typedef struct {
    char *out;                       //  stdout, NUL-terminated
    size_t out_size;                 //  bytes in out
    char *err;                       //  stderr, NUL-terminated
    int status;                      //  exit code, or 128+signal
} drv_test_output_t;

//  Run argv with input on stdin (NULL: empty), capture stdout and stderr,
//  and wait at most timeout_ms (then SIGKILL; status 137). env entries
//  "NAME=VALUE" are added to the environment (may be NULL).
drv_test_output_t drv_test_run (const char *const argv [], const char *input,
                                const char *const env [], int timeout_ms);

//  Free an output's buffers.
void drv_test_output_free (drv_test_output_t *output);

//  A broker and workers on free loopback ports.
typedef struct {
    char clients [64];               //  client endpoint
    char workers [64];               //  worker endpoint
    pid_t broker;                    //  broker pid
    pid_t worker [8];                //  worker pids
    size_t nworkers;                 //  entries in worker
    char dir [64];                   //  temp dir with the logs
} drv_test_cluster_t;

//  Start a broker (extra flags may be NULL).
void drv_test_cluster_start (drv_test_cluster_t *cluster, const char *const broker_flags []);

//  Add a worker with slots and NULL-terminated --function definitions.
pid_t drv_test_cluster_worker (drv_test_cluster_t *cluster, int slots,
                               const char *const functions []);

//  The same with extra NULL-terminated flags (may be NULL).
pid_t drv_test_cluster_worker_flags (drv_test_cluster_t *cluster, int slots,
                                     const char *const functions [], const char *const flags []);

//  The path of the cluster's worker log number index.
void drv_test_cluster_worker_log (drv_test_cluster_t *cluster, size_t index, char *path,
                                  size_t size);

//  Start (again) the cluster's broker on its endpoints, e.g. after it
//  was killed; extra flags may be NULL.
void drv_test_cluster_restart_broker (drv_test_cluster_t *cluster,
                                      const char *const broker_flags []);

//  Start the drover CLI in the background: "drover --broker EP args..."
//  with stdin from input_path and stdout to output_path, stderr to
//  error_path. Returns its pid (reap with drv_test_stop).
pid_t drv_test_cli_spawn (drv_test_cluster_t *cluster, const char *const args [],
                          const char *input_path, const char *output_path,
                          const char *error_path);

//  Start argv[0] in the background with stdin from input_path, stdout
//  to output_path and stderr to error_path; returns its pid, recorded
//  for drv_test_reap_all (reap with drv_test_stop).
pid_t drv_test_spawn_io (const char *const argv [], const char *input_path,
                         const char *output_path, const char *error_path);

//  Stop everything and remove the temp dir.
void drv_test_cluster_stop (drv_test_cluster_t *cluster);

//  Sets up a broker before its start (limits, data directory, ...).
typedef void (drv_test_broker_fn) (drover_broker_t *broker, void *arg);

//  A new in-process broker on these endpoints, set up by configure (may
//  be NULL) and started. A broker destroyed a moment before on the same
//  ports frees them in libzmq's I/O thread, after destroy returned: the
//  start is tried again for up to 10 s. NULL if it never started, with
//  the last error in err.
drover_broker_t *drv_test_broker_rebind (const char *clients, const char *workers,
                                         drv_test_broker_fn *configure, void *arg, char *err,
                                         size_t err_size);

//  Run the drover CLI against the cluster: "drover --broker EP args...".
drv_test_output_t drv_test_cli (drv_test_cluster_t *cluster, const char *const args [],
                                const char *input, int timeout_ms);

#endif
