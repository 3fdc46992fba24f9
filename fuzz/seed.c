/*  drover-fuzz-seed DIR - write valid inputs for the fuzz targets:
    DIR/envelope/ one file per message type, as the codec encodes it, and
    DIR/store/ job stores as drv_persist writes them (jobs queued,
    finished and dead), shrunk to 512-byte pages so the fuzzer's
    mutations land on the records rather than on empty space.
*/

#include <czmq.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drv_codec.h"
#include "drv_persist.h"

static const char *root;

static void
s_write (const char *kind, const char *name, const void *data, size_t size)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", root, kind);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/%s/%s", root, kind, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size || fclose (file) != 0) {
        fprintf (stderr, "drover-fuzz-seed: cannot write %s\n", path);
        exit (1);
    }
}

static void
s_envelope (const char *name, drv_msg_t msg)
{
    static const uint8_t instance [16] = "0123456789abcdef";
    msg.seq = 42;
    msg.instance = instance;
    msg.instance_size = sizeof instance;
    zframe_t *frame = drv_codec_encode (&msg);
    if (!frame) {
        fprintf (stderr, "drover-fuzz-seed: cannot encode %s\n", name);
        exit (1);
    }
    s_write ("envelope", name, zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
}

static void
s_envelopes (void)
{
    uint64_t ids [] = {1, 2, 300000};
    drv_task_t submit [] = {{.id = 1, .payload = (const uint8_t *) "12", .size = 2},
                            {.id = 2, .payload = (const uint8_t *) "", .size = 0}};
    drv_task_t dispatch [] = {{.id = 7, .function = "square", .payload = (const uint8_t *) "3",
                               .size = 1, .timeout_ms = 1000, .attempt = 1}};
    drv_result_t results [] = {
        {.job_id = 7, .tag = 1, .outcome = DROVER_OUTCOME_OK, .data = (const uint8_t *) "9",
         .size = 1, .reason = "", .attempts = 1},
        {.job_id = 8, .tag = 2, .outcome = DROVER_OUTCOME_SIGNAL, .reason = "killed by SIGSEGV",
         .attempts = 2}};
    drv_jobinfo_t jobs [] = {
        {.job_id = 7, .state = DROVER_JOB_SUCCEEDED, .function = "square", .worker = "",
         .attempts = 1, .has_result = true, .result = results [0]},
        {.job_id = 9, .state = DROVER_JOB_RUNNING, .function = "square", .worker = "host:12",
         .attempts = 1, .payload = (const uint8_t *) "4", .size = 1}};
    const char *functions [] = {"square", "upper"};
    s_envelope ("submit", (drv_msg_t) {.type = DRV_MSG_SUBMIT, .function = "square",
                                       .tasks = submit, .ntasks = 2, .timeout_ms = 500,
                                       .retries = 3});
    s_envelope ("submit-ack", (drv_msg_t) {.type = DRV_MSG_SUBMIT_ACK, .job_ids = ids,
                                           .njob_ids = 3, .workers = 2});
    s_envelope ("results", (drv_msg_t) {.type = DRV_MSG_RESULTS, .results = results,
                                        .nresults = 2});
    s_envelope ("status", (drv_msg_t) {.type = DRV_MSG_STATUS, .job_ids = ids, .njob_ids = 3});
    s_envelope ("status-reply", (drv_msg_t) {.type = DRV_MSG_STATUS_REPLY, .jobs = jobs,
                                             .njobs = 2});
    s_envelope ("ack", (drv_msg_t) {.type = DRV_MSG_ACK, .job_ids = ids, .njob_ids = 2});
    s_envelope ("cancel", (drv_msg_t) {.type = DRV_MSG_CANCEL, .job_ids = ids, .njob_ids = 1});
    s_envelope ("dead", (drv_msg_t) {.type = DRV_MSG_DEAD, .dead_op = 2, .job_ids = ids,
                                     .njob_ids = 1});
    s_envelope ("dead-all", (drv_msg_t) {.type = DRV_MSG_DEAD, .dead_op = 1});
    s_envelope ("ready", (drv_msg_t) {.type = DRV_MSG_READY, .functions = functions,
                                      .nfunctions = 2, .slots = 4, .name = "host:42"});
    s_envelope ("dispatch", (drv_msg_t) {.type = DRV_MSG_DISPATCH, .tasks = dispatch,
                                         .ntasks = 1});
    s_envelope ("done", (drv_msg_t) {.type = DRV_MSG_DONE, .results = results, .nresults = 2});
    s_envelope ("heartbeat", (drv_msg_t) {.type = DRV_MSG_HEARTBEAT});
    s_envelope ("bye", (drv_msg_t) {.type = DRV_MSG_BYE});
    s_envelope ("error", (drv_msg_t) {.type = DRV_MSG_ERROR, .code = DROVER_ERR_QUEUE_FULL,
                                      .text = "queue full: retry later"});
}

//  A job store in a temporary directory, shrunk, copied to store/name.
static void
s_store (const char *name, size_t jobs)
{
    char dir [] = "/tmp/drover-fuzz-seed-XXXXXX";
    char err [512];
    if (!mkdtemp (dir)) {
        perror ("mkdtemp");
        exit (1);
    }
    drv_persist_t *persist = drv_persist_open (dir, err, sizeof err);
    if (!persist) {
        fprintf (stderr, "drover-fuzz-seed: %s\n", err);
        exit (1);
    }
    for (uint64_t id = 1; id <= jobs; id++) {
        char payload [32];
        snprintf (payload, sizeof payload, "%" PRIu64, id * 7);
        drv_record_t record = {.id = id, .tag = id + 100, .client = (const uint8_t *) "C1",
                               .client_len = 2, .function = id % 2 ? "square" : "upper",
                               .payload = (const uint8_t *) payload, .size = strlen (payload),
                               .timeout_ms = 1000, .retries = 2};
        drv_persist_add (persist, &record);
        if (id % 3 == 1)
            drv_persist_finish (persist, id, DROVER_OUTCOME_OK, "49", 2, "");
        else
        if (id % 3 == 2)
            drv_persist_finish (persist, id, DROVER_OUTCOME_ERROR, "", 0, "exit status 1: no");
        drv_persist_counts (persist, id, 2, 1, 0);
    }
    if (drv_persist_commit (persist) == -1) {
        fprintf (stderr, "drover-fuzz-seed: %s\n", drv_persist_error (persist));
        exit (1);
    }
    drv_persist_destroy (&persist);
    char path [128];
    snprintf (path, sizeof path, "%s/jobs.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open (path, &db) != SQLITE_OK
        || sqlite3_exec (db, "PRAGMA journal_mode = DELETE; PRAGMA page_size = 512; VACUUM;",
                         NULL, NULL, NULL)
               != SQLITE_OK) {
        fprintf (stderr, "drover-fuzz-seed: cannot shrink %s: %s\n", path, sqlite3_errmsg (db));
        exit (1);
    }
    sqlite3_close (db);
    FILE *file = fopen (path, "rb");
    uint8_t *data = NULL;
    size_t size = 0;
    if (file) {
        fseek (file, 0, SEEK_END);
        size = (size_t) ftell (file);
        rewind (file);
        data = (uint8_t *) malloc (size);
        if (!data || fread (data, 1, size, file) != size)
            size = 0;
        fclose (file);
    }
    if (!size) {
        fprintf (stderr, "drover-fuzz-seed: cannot read %s\n", path);
        exit (1);
    }
    s_write ("store", name, data, size);
    free (data);
    unlink (path);
    rmdir (dir);
}

//  Configuration files as the daemons read them (drv_config): a broker's
//  and a worker's, with every kind of key.
static void
s_configs (void)
{
    const char *broker =
        "#   drover-broker\n"
        "clients = tcp://0.0.0.0:7700\n"
        "workers = tcp://0.0.0.0:7701\n"
        "data = /var/lib/drover\n"
        "max-queue = 100000\n"
        "insecure = false\n"
        "verbose = true\n";
    const char *worker =
        "broker = tcp://10.0.0.1:7701\n"
        "slots = 4\n"
        "function = \"wc=exec:wc -w\"\n"
        "function = \"upper=exec:tr a-z A-Z\"\n";
    s_write ("config", "broker.cfg", broker, strlen (broker));
    s_write ("config", "worker.cfg", worker, strlen (worker));
}

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: drover-fuzz-seed DIR\n");
        return 2;
    }
    root = argv [1];
    mkdir (root, 0755);
    s_envelopes ();
    s_store ("empty.db", 0);
    s_store ("jobs.db", 6);
    s_configs ();
    return 0;
}
