/*  test_persist.c - tests for broker/drv_persist.

    This suite doubles as the module's usage example: drv_persist_open a
    data directory, stage changes with drv_persist_add, _attempts, _finish
    and _remove as events come, and drv_persist_commit once per burst;
    acknowledge a submit only after commit returned 0. At startup,
    drv_persist_load hands every stored job back in id order, and
    drv_persist_max_id says where new ids start.

    The crash tests are done with real processes: a child commits batches
    and is killed with SIGKILL (or kills itself), and the parent reopens
    what it left, or a copy of it with the log torn or garbled.
*/

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drv_persist.h"

//  A client routing id with NUL bytes, as ROUTER ids often have.
static const uint8_t s_client [] = {0x00, 'c', 'l', 'i', 0x00, 0xff};

//  This test's temporary directory, removed with all it holds in .fini.
static char s_root [64];

static void
s_setup (void)
{
    snprintf (s_root, sizeof s_root, "/tmp/drover-persist-XXXXXX");
    cr_assert_not_null (mkdtemp (s_root));
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path);
}

static void
s_teardown (void)
{
    if (s_root [0])
        nftw (s_root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite (persist, .init = s_setup, .fini = s_teardown);

//  A path under this test's directory, in a static buffer per slot.
static const char *
s_path (int slot, const char *name)
{
    static char paths [4][256];
    snprintf (paths [slot], sizeof paths [slot], "%s/%s", s_root, name);
    return paths [slot];
}

static drv_persist_t *
s_open (const char *dir)
{
    char err [512];
    drv_persist_t *store = drv_persist_open (dir, err, sizeof err);
    cr_assert_not_null (store, "open %s: %s", dir, err);
    return store;
}

//  ---------------------------------------------------------------------
//  A copy of every loaded job, for the tests to look at after load.

typedef struct {
    drv_record_t record;             //  as loaded; pointers into the copies
    uint8_t client [256];            //  copy of the client id
    char *function;                  //  copy of the function name
    uint8_t *payload;                //  copy of the payload
    uint8_t *result;                 //  copy of the result
    char *reason;                    //  copy of the reason
    char *unique;                    //  copy of the unique key
} s_job_t;

typedef struct {
    s_job_t jobs [64];               //  the first jobs loaded
    size_t count;                    //  jobs loaded
    size_t stop_after;               //  0, or stop load after this many
} s_loaded_t;

static uint8_t *
s_dup (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size + 1);
    cr_assert_not_null (copy);
    if (size)
        memcpy (copy, data, size);
    return copy;
}

static int
s_collect (const drv_record_t *record, void *arg)
{
    s_loaded_t *loaded = (s_loaded_t *) arg;
    cr_assert_lt (loaded->count, 64);
    s_job_t *job = &loaded->jobs [loaded->count++];
    cr_assert_not_null (record->client);
    cr_assert_not_null (record->payload);
    cr_assert_not_null (record->function);
    job->record = *record;
    memcpy (job->client, record->client, record->client_len);
    job->record.client = job->client;
    job->function = strdup (record->function);
    job->record.function = job->function;
    job->payload = s_dup (record->payload, record->size);
    job->record.payload = job->payload;
    if (record->unique) {
        job->unique = strdup (record->unique);
        job->record.unique = job->unique;
    }
    if (record->finished) {
        cr_assert_not_null (record->result);
        cr_assert_not_null (record->reason);
        job->result = s_dup (record->result, record->result_size);
        job->record.result = job->result;
        job->reason = strdup (record->reason);
        job->record.reason = job->reason;
    }
    return loaded->stop_after && loaded->count == loaded->stop_after ? -1 : 0;
}

static void
s_loaded_free (s_loaded_t *loaded)
{
    for (size_t i = 0; i < loaded->count; i++) {
        free (loaded->jobs [i].function);
        free (loaded->jobs [i].payload);
        free (loaded->jobs [i].result);
        free (loaded->jobs [i].reason);
        free (loaded->jobs [i].unique);
    }
    loaded->count = 0;
}

//  Load every job of a store into loaded (freed by the caller).
static void
s_load (drv_persist_t *store, s_loaded_t *loaded)
{
    memset (loaded, 0, sizeof *loaded);
    cr_assert_eq (drv_persist_load (store, s_collect, loaded), 0, "%s",
                  drv_persist_error (store));
}

static void
s_add (drv_persist_t *store, uint64_t id, const char *function, const void *payload,
       size_t size)
{
    drv_record_t job = {.id = id, .tag = id * 10, .client = s_client,
                        .client_len = sizeof s_client, .function = function,
                        .payload = (const uint8_t *) payload, .size = size, .timeout_ms = 5000};
    cr_assert_eq (drv_persist_add (store, &job), 0, "%s", drv_persist_error (store));
}

//  ---------------------------------------------------------------------
//  The simple cases.

Test (persist, round_trip_of_every_field_across_reopen)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 0);
    cr_assert_eq (drv_persist_staged (store), 0);

    //  Job 1: binary payload and client with NULs, the largest tag.
    const uint8_t binary [] = {0x00, 0x01, 0x00, 0xfe, 0xff, 0x00};
    drv_record_t one = {.id = 1, .tag = UINT64_MAX, .client = s_client,
                        .client_len = sizeof s_client, .function = "resize",
                        .payload = binary, .size = sizeof binary, .timeout_ms = UINT32_MAX,
                        .attempts = 0};
    //  Job 2: empty payload, empty client.
    drv_record_t two = {.id = 2, .tag = 0, .client = NULL, .client_len = 0,
                        .function = "noop", .payload = NULL, .size = 0};
    //  Job 3: a longest client id, finished later with an error.
    uint8_t long_client [255];
    for (size_t i = 0; i < sizeof long_client; i++)
        long_client [i] = (uint8_t) i;
    drv_record_t three = {.id = 3, .tag = 7, .client = long_client,
                          .client_len = sizeof long_client, .function = "thumbnail",
                          .payload = (const uint8_t *) "in", .size = 2, .timeout_ms = 1};
    cr_assert_eq (drv_persist_add (store, &one), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_add (store, &two), 0);
    cr_assert_eq (drv_persist_add (store, &three), 0);
    cr_assert_eq (drv_persist_staged (store), 3);
    cr_assert_eq (drv_persist_commit (store), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_staged (store), 0);

    cr_assert_eq (drv_persist_attempts (store, 1, 3), 0);
    const uint8_t output [] = {'o', 0x00, 'k'};
    cr_assert_eq (drv_persist_finish (store, 1, DROVER_OUTCOME_OK, output, sizeof output, NULL),
                  0);
    cr_assert_eq (drv_persist_attempts (store, 3, 2), 0);
    cr_assert_eq (drv_persist_finish (store, 3, DROVER_OUTCOME_ERROR, NULL, 0, "it broke"), 0);
    cr_assert_eq (drv_persist_staged (store), 4);
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);
    cr_assert_null (store);

    store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 3);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 3);

    drv_record_t *job = &loaded.jobs [0].record;
    cr_assert_eq (job->id, 1);
    cr_assert_eq (job->tag, UINT64_MAX);
    cr_assert_eq (job->client_len, sizeof s_client);
    cr_assert_arr_eq (job->client, s_client, sizeof s_client);
    cr_assert_str_eq (job->function, "resize");
    cr_assert_eq (job->size, 0, "finish drops the payload");
    cr_assert_eq (job->timeout_ms, UINT32_MAX);
    cr_assert_eq (job->attempts, 3);
    cr_assert (job->finished);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (job->result_size, sizeof output);
    cr_assert_arr_eq (job->result, output, sizeof output);
    cr_assert_str_eq (job->reason, "");

    job = &loaded.jobs [1].record;
    cr_assert_eq (job->id, 2);
    cr_assert_eq (job->tag, 0);
    cr_assert_eq (job->client_len, 0);
    cr_assert_str_eq (job->function, "noop");
    cr_assert_eq (job->size, 0);
    cr_assert_eq (job->timeout_ms, 0);
    cr_assert_eq (job->attempts, 0);
    cr_assert_not (job->finished);

    job = &loaded.jobs [2].record;
    cr_assert_eq (job->id, 3);
    cr_assert_eq (job->tag, 7);
    cr_assert_eq (job->client_len, 255);
    cr_assert_arr_eq (job->client, long_client, 255);
    cr_assert_str_eq (job->function, "thumbnail");
    cr_assert_eq (job->timeout_ms, 1);
    cr_assert_eq (job->attempts, 2);
    cr_assert (job->finished);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_ERROR);
    cr_assert_eq (job->result_size, 0);
    cr_assert_str_eq (job->reason, "it broke");
    s_loaded_free (&loaded);

    //  An unfinished job keeps its binary payload; a removed one goes.
    drv_record_t four = one;
    four.id = 4;
    cr_assert_eq (drv_persist_add (store, &four), 0);
    cr_assert_eq (drv_persist_remove (store, 3), 0);
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);

    store = s_open (dir);
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 3);
    cr_assert_eq (loaded.jobs [0].record.id, 1);
    cr_assert_eq (loaded.jobs [1].record.id, 2);
    job = &loaded.jobs [2].record;
    cr_assert_eq (job->id, 4);
    cr_assert_eq (job->size, sizeof binary);
    cr_assert_arr_eq (job->payload, binary, sizeof binary);
    cr_assert_not (job->finished);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

Test (persist, staged_changes_are_lost_without_commit)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    s_add (store, 1, "f", "one", 3);
    s_add (store, 2, "f", "two", 3);
    cr_assert_eq (drv_persist_commit (store), 0);

    s_add (store, 3, "f", "three", 5);
    cr_assert_eq (drv_persist_finish (store, 1, DROVER_OUTCOME_OK, "r", 1, ""), 0);
    cr_assert_eq (drv_persist_attempts (store, 2, 9), 0);
    cr_assert_eq (drv_persist_remove (store, 2), 0);
    cr_assert_eq (drv_persist_staged (store), 4);
    cr_assert_eq (drv_persist_max_id (store), 3, "staged adds count");
    drv_persist_destroy (&store);

    store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 2);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 2);
    for (size_t i = 0; i < 2; i++) {
        drv_record_t *job = &loaded.jobs [i].record;
        cr_assert_eq (job->id, i + 1);
        cr_assert_not (job->finished);
        cr_assert_eq (job->attempts, 0);
        cr_assert_eq (job->size, 3);
        cr_assert_arr_eq (job->payload, i == 0 ? "one" : "two", 3);
    }
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

Test (persist, load_is_in_id_order)
{
    drv_persist_t *store = s_open (s_path (0, "store"));
    const uint64_t ids [] = {5, 1, 9, 3, 7, 2};
    for (size_t i = 0; i < 6; i++) {
        s_add (store, ids [i], "f", &ids [i], sizeof ids [i]);
        if (i == 2)
            cr_assert_eq (drv_persist_commit (store), 0);
    }
    cr_assert_eq (drv_persist_commit (store), 0);
    cr_assert_eq (drv_persist_remove (store, 2), 0);
    cr_assert_eq (drv_persist_commit (store), 0);
    cr_assert_eq (drv_persist_max_id (store), 9);

    s_loaded_t loaded;
    s_load (store, &loaded);
    const uint64_t expected [] = {1, 3, 5, 7, 9};
    cr_assert_eq (loaded.count, 5);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq (loaded.jobs [i].record.id, expected [i]);
        cr_assert_arr_eq (loaded.jobs [i].record.payload, &expected [i], sizeof expected [i]);
    }
    s_loaded_free (&loaded);

    //  The callback can stop the load.
    memset (&loaded, 0, sizeof loaded);
    loaded.stop_after = 2;
    cr_assert_eq (drv_persist_load (store, s_collect, &loaded), -1);
    cr_assert_eq (loaded.count, 2);
    cr_assert_neq (drv_persist_error (store) [0], 0);
    s_loaded_free (&loaded);
    //  ...and a later load starts from the beginning again.
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 5);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

Test (persist, max_id_survives_removal_and_reopen)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    for (uint64_t id = 1; id <= 10; id++)
        s_add (store, id, "f", "x", 1);
    cr_assert_eq (drv_persist_commit (store), 0);
    for (uint64_t id = 1; id <= 10; id++)
        cr_assert_eq (drv_persist_remove (store, id), 0);
    cr_assert_eq (drv_persist_commit (store), 0);
    cr_assert_eq (drv_persist_max_id (store), 10);
    drv_persist_destroy (&store);

    store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 10);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 0);
    drv_persist_destroy (&store);
}

//  Size and change time of a file, or zeros if it is not there.
static struct stat
s_stat (const char *path)
{
    struct stat st;
    if (stat (path, &st))
        memset (&st, 0, sizeof st);
    return st;
}

Test (persist, commit_with_nothing_staged_is_a_no_op)
{
    const char *dir = s_path (0, "store");
    const char *wal = s_path (1, "store/jobs.db-wal");
    drv_persist_t *store = s_open (dir);
    cr_assert_eq (drv_persist_commit (store), 0);
    s_add (store, 1, "f", "x", 1);
    cr_assert_eq (drv_persist_commit (store), 0);

    //  The store is in WAL mode: the commit went to the log.
    struct stat before = s_stat (wal);
    cr_assert_gt (before.st_size, 0);
    usleep (20000);
    for (int i = 0; i < 10; i++)
        cr_assert_eq (drv_persist_commit (store), 0);
    struct stat after = s_stat (wal);
    cr_assert_eq (after.st_size, before.st_size);
    cr_assert_eq (after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    cr_assert_eq (after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    drv_persist_destroy (&store);
}

Test (persist, callers_errors_leave_the_store_usable)
{
    drv_persist_t *store = s_open (s_path (0, "store"));
    s_add (store, 1, "f", "x", 1);

    cr_assert_eq (drv_persist_finish (store, 42, DROVER_OUTCOME_OK, "r", 1, ""), -1);
    cr_assert (strstr (drv_persist_error (store), "no such job"), "%s",
               drv_persist_error (store));
    cr_assert_eq (drv_persist_attempts (store, 42, 1), -1);
    cr_assert_eq (drv_persist_remove (store, 42), -1);
    drv_record_t again = {.id = 1, .function = "f"};
    cr_assert_eq (drv_persist_add (store, &again), -1, "a duplicate id is refused");
    drv_record_t zero = {.id = 0, .function = "f"};
    cr_assert_eq (drv_persist_add (store, &zero), -1);
    drv_record_t nameless = {.id = 5};
    cr_assert_eq (drv_persist_add (store, &nameless), -1);
    cr_assert_eq (drv_persist_finish (store, 1, (drover_outcome_t) 99, NULL, 0, ""), -1);
    cr_assert_eq (drv_persist_staged (store), 1);

    //  What was staged before the refusals is still there.
    s_add (store, 2, "f", "y", 1);
    cr_assert_eq (drv_persist_commit (store), 0, "%s", drv_persist_error (store));
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 2);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

Test (persist, creates_missing_directories_private)
{
    const char *dir = s_path (0, "a/b/store");
    drv_persist_t *store = s_open (dir);
    struct stat st = s_stat (dir);
    cr_assert (S_ISDIR (st.st_mode));
    cr_assert_eq (st.st_mode & 0777, 0700);
    drv_persist_destroy (&store);

    char err [512];
    const char *file = s_path (1, "a/b/store/jobs.db");
    cr_assert_null (drv_persist_open (file, err, sizeof err));
    cr_assert (strstr (err, "not a directory"), "%s", err);
}

Test (persist, a_second_open_of_the_same_store_is_refused)
{
    //  Another process, forked before anything is open here (SQLite's
    //  state must not cross a fork), tries once this one has the store.
    const char *dir = s_path (0, "store");
    int fds [2];
    cr_assert_eq (pipe (fds), 0);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        char go, err [512];
        close (fds [1]);
        if (read (fds [0], &go, 1) != 1)
            _exit (2);
        drv_persist_t *other = drv_persist_open (dir, err, sizeof err);
        _exit (other == NULL && strstr (err, "in use by another process") ? 0 : 1);
    }
    close (fds [0]);
    drv_persist_t *store = s_open (dir);
    s_add (store, 1, "f", "x", 1);
    cr_assert_eq (drv_persist_commit (store), 0);
    cr_assert_eq (write (fds [1], "!", 1), 1);
    close (fds [1]);
    int status;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);

    //  And a second open in this process.
    char err [512];
    cr_assert_null (drv_persist_open (dir, err, sizeof err));
    cr_log_info ("%s", err);
    cr_assert (strstr (err, "in use by another process"), "%s", err);

    //  Once closed, it opens again.
    drv_persist_destroy (&store);
    store = s_open (dir);
    drv_persist_destroy (&store);
}

//  ---------------------------------------------------------------------
//  Batches for the crash tests. Batch b (from 0) adds jobs b*B+1 ..
//  (b+1)*B, counts a second attempt and finishes every job of batch b-1,
//  and removes the odd jobs of batch b-2. So which jobs are stored, and
//  how, follows from the last batch committed: the parent can check a
//  store to the byte whatever the child was doing when it died.

//  Jobs per batch in the crash tests.
#define S_BATCH 40

//  Deterministic bytes for job id (kind 0: payload, 1: result), with
//  NULs, and sizes from 0 to 1499.
static size_t
s_fill (uint64_t id, int kind, uint8_t *buffer)
{
    size_t size = (size_t) ((id * 37 + (uint64_t) kind * 11) % 1500);
    for (size_t i = 0; i < size; i++)
        buffer [i] = (uint8_t) ((id * 131 + i * 7 + (uint64_t) kind) % 251);
    return size;
}

//  What the child writes to its pipe: ~batch as it starts committing a
//  batch, then batch once the commit returned (the acknowledgement).
#define S_COMMITTING(batch) (~(uint64_t) (batch))

//  For a child that dies in the middle of writing a commit: SQLite's own
//  write calls, and how many more may go through whole. The next one
//  writes half its bytes, and the process dies of SIGKILL.
static sqlite3_syscall_ptr s_real_write, s_real_pwrite, s_real_pwrite64;
static int s_writes_left = -1;

static void
s_tear_now (int fd, const void *buffer, size_t size, off_t offset, sqlite3_syscall_ptr real)
{
    if (real == s_real_write)
        ((ssize_t (*) (int, const void *, size_t)) real) (fd, buffer, size / 2);
    else
        ((ssize_t (*) (int, const void *, size_t, off_t)) real) (fd, buffer, size / 2, offset);
    raise (SIGKILL);
}

static ssize_t
s_hook_write (int fd, const void *buffer, size_t size)
{
    if (s_writes_left == 0)
        s_tear_now (fd, buffer, size, 0, s_real_write);
    if (s_writes_left > 0)
        s_writes_left--;
    return ((ssize_t (*) (int, const void *, size_t)) s_real_write) (fd, buffer, size);
}

static ssize_t
s_hook_pwrite (int fd, const void *buffer, size_t size, off_t offset)
{
    if (s_writes_left == 0)
        s_tear_now (fd, buffer, size, offset, s_real_pwrite);
    if (s_writes_left > 0)
        s_writes_left--;
    return ((ssize_t (*) (int, const void *, size_t, off_t)) s_real_pwrite) (fd, buffer, size,
                                                                           offset);
}

static ssize_t
s_hook_pwrite64 (int fd, const void *buffer, size_t size, off_t offset)
{
    if (s_writes_left == 0)
        s_tear_now (fd, buffer, size, offset, s_real_pwrite64);
    if (s_writes_left > 0)
        s_writes_left--;
    return ((ssize_t (*) (int, const void *, size_t, off_t)) s_real_pwrite64) (fd, buffer, size,
                                                                             offset);
}

//  Route SQLite's writes through the hooks (in a child only).
static void
s_hook_writes (void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find (NULL);
    s_real_write = vfs->xGetSystemCall (vfs, "write");
    s_real_pwrite = vfs->xGetSystemCall (vfs, "pwrite");
    s_real_pwrite64 = vfs->xGetSystemCall (vfs, "pwrite64");
    if (s_real_write)
        vfs->xSetSystemCall (vfs, "write", (sqlite3_syscall_ptr) s_hook_write);
    if (s_real_pwrite)
        vfs->xSetSystemCall (vfs, "pwrite", (sqlite3_syscall_ptr) s_hook_pwrite);
    if (s_real_pwrite64)
        vfs->xSetSystemCall (vfs, "pwrite64", (sqlite3_syscall_ptr) s_hook_pwrite64);
}

//  Commit batches from where the store left off until killed, or until
//  batch `last` is committed: then die of SIGKILL at once, leaving the
//  WAL as it is. If tear >= 0, die instead in the commit of batch last,
//  with its write number tear (from 0) half done. Tells fd of each
//  commit (S_COMMITTING, then the batch number). Runs in a child; exits
//  2 or 3 on failure.
static void
s_child_commit_batches (const char *dir, int fd, uint64_t last, int tear)
{
    if (tear >= 0)
        s_hook_writes ();
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    char err [512];
    drv_persist_t *store = drv_persist_open (dir, err, sizeof err);
    if (!store) {
        fprintf (stderr, "child: %s\n", err);
        _exit (2);
    }
    static uint8_t buffer [1500];
    uint64_t max_id = drv_persist_max_id (store);
    if (max_id % S_BATCH)
        _exit (2);
    for (uint64_t batch = max_id / S_BATCH;; batch++) {
        for (uint64_t id = batch * S_BATCH + 1; id <= (batch + 1) * S_BATCH; id++) {
            uint8_t client [2] = {0, (uint8_t) id};
            drv_record_t job = {.id = id, .tag = id ^ 0xdeadbeefcafeULL, .client = client,
                                .client_len = 2, .function = id % 2 ? "odd" : "even",
                                .payload = buffer, .size = s_fill (id, 0, buffer),
                                .timeout_ms = (uint32_t) id, .attempts = 1};
            if (drv_persist_add (store, &job))
                _exit (3);
        }
        for (uint64_t id = (batch - 1) * S_BATCH + 1; batch >= 1 && id <= batch * S_BATCH;
             id++) {
            size_t size = s_fill (id, 1, buffer);
            if (drv_persist_attempts (store, id, 2)
                || drv_persist_finish (store, id, DROVER_OUTCOME_OK, buffer, size,
                                       id % 3 ? "" : "why"))
                _exit (3);
        }
        for (uint64_t id = (batch - 2) * S_BATCH + 1; batch >= 2 && id <= (batch - 1) * S_BATCH;
             id += 2)
            if (drv_persist_remove (store, id))
                _exit (3);
        uint64_t committing = S_COMMITTING (batch);
        if (fd != -1 && write (fd, &committing, sizeof committing) != sizeof committing)
            _exit (3);
        if (batch == last && tear >= 0)
            s_writes_left = tear;
        if (drv_persist_commit (store)) {
            fprintf (stderr, "child: %s\n", drv_persist_error (store));
            _exit (3);
        }
        if (batch == last)
            raise (SIGKILL);            //  or a torn commit went through
        if (fd != -1 && write (fd, &batch, sizeof batch) != sizeof batch)
            _exit (3);
    }
}

//  What the checker saw in a store.
typedef struct {
    uint64_t last;                   //  last batch committed + 1; 0: none
    size_t jobs;                     //  jobs stored
    size_t wrong;                    //  jobs not as the batches say
    uint64_t first_wrong;            //  id of the first of those
} s_check_t;

static int
s_check_job (const drv_record_t *job, void *arg)
{
    s_check_t *check = (s_check_t *) arg;
    static uint8_t buffer [1500];
    check->jobs++;
    uint64_t id = job->id;
    uint64_t batch = (id - 1) / S_BATCH;
    //  Batch last-1 is the last committed: it is unfinished, the one
    //  before finished, the older ones finished with odd ids removed.
    bool ok = check->last && batch < check->last;
    bool finished = batch + 1 < check->last;
    ok = ok && !(batch + 2 < check->last && id % 2 == 1);
    ok = ok && job->tag == (id ^ 0xdeadbeefcafeULL) && job->client_len == 2
         && job->client [0] == 0 && job->client [1] == (uint8_t) id
         && strcmp (job->function, id % 2 ? "odd" : "even") == 0
         && job->timeout_ms == (uint32_t) id && job->finished == finished
         && job->attempts == (finished ? 2u : 1u);
    if (ok && finished) {
        size_t size = s_fill (id, 1, buffer);
        ok = job->size == 0 && job->outcome == DROVER_OUTCOME_OK && job->result_size == size
             && memcmp (job->result, buffer, size) == 0
             && strcmp (job->reason, id % 3 ? "" : "why") == 0;
    }
    else
    if (ok) {
        size_t size = s_fill (id, 0, buffer);
        ok = job->size == size && memcmp (job->payload, buffer, size) == 0;
    }
    if (!ok && check->wrong++ == 0)
        check->first_wrong = id;
    return 0;
}

//  Open the store in dir, check every job against the batches, and
//  return how many batches it holds. Fails the test if anything is off.
static uint64_t
s_check_store (const char *dir)
{
    drv_persist_t *store = s_open (dir);
    uint64_t max_id = drv_persist_max_id (store);
    cr_assert_eq (max_id % S_BATCH, 0, "a batch is half there: max_id %" PRIu64, max_id);
    s_check_t check = {.last = max_id / S_BATCH};
    cr_assert_eq (drv_persist_load (store, s_check_job, &check), 0, "%s",
                  drv_persist_error (store));
    cr_assert_eq (check.wrong, 0, "%zu jobs are wrong, the first is %" PRIu64, check.wrong,
                  check.first_wrong);
    //  Every job that should be there is: B per batch, but the odd ones
    //  removed from all but the last two.
    uint64_t full = check.last < 2 ? check.last : 2;
    size_t expected = (size_t) (full * S_BATCH + (check.last - full) * (S_BATCH / 2));
    cr_assert_eq (check.jobs, expected, "%zu jobs stored, %zu expected", check.jobs, expected);
    drv_persist_destroy (&store);
    return check.last;
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test (persist, acknowledged_commits_survive_sigkill, .timeout = 10)
{
    const char *dir = s_path (0, "store");
    uint64_t stored = 0;             //  batches in the store so far
    unsigned seed = (unsigned) getpid ();
    for (int round = 0; round < 8; round++) {
        int fds [2];
        cr_assert_eq (pipe (fds), 0);
        pid_t pid = fork ();
        cr_assert_neq (pid, -1);
        if (pid == 0) {
            close (fds [0]);
            s_child_commit_batches (dir, fds [1], UINT64_MAX, -1);
        }
        close (fds [1]);
        //  From its first acknowledgement, let it commit for a random
        //  while; then, as it starts its next commit, kill it up to 1.5
        //  ms into it.
        int delay = rand_r (&seed) % 100;
        int64_t deadline = INT64_MAX;
        int64_t acked = -1, committing = -1;
        uint64_t message;
        while (read (fds [0], &message, sizeof message) == sizeof message) {
            if (message > UINT32_MAX)
                committing = (int64_t) S_COMMITTING (message);
            else {
                acked = (int64_t) message;
                if (deadline == INT64_MAX)
                    deadline = s_now_ms () + delay;
            }
            if (message > UINT32_MAX && s_now_ms () >= deadline) {
                usleep ((useconds_t) (rand_r (&seed) % 1500));
                break;
            }
        }
        kill (pid, SIGKILL);
        int status;
        cr_assert_eq (waitpid (pid, &status, 0), pid);
        cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
                   "the child ended by itself: status %d", status);
        //  What the child wrote before the kill is still in the pipe.
        while (read (fds [0], &message, sizeof message) == sizeof message)
            if (message > UINT32_MAX)
                committing = (int64_t) S_COMMITTING (message);
            else
                acked = (int64_t) message;
        close (fds [0]);
        cr_assert_geq (acked, (int64_t) stored, "the child acknowledged nothing");

        uint64_t last = s_check_store (dir);
        //  Every acknowledged batch is there; at most one more, the one
        //  being committed when the kill came.
        cr_assert_geq ((int64_t) last, acked + 1, "acknowledged batch %" PRId64 " is lost",
                       acked);
        cr_assert_leq ((int64_t) last, committing + 1);
        cr_log_info ("round %d: batches %" PRIu64 "..%" PRId64 " acknowledged, killed %s; "
                     "the store has %" PRIu64 " batches",
                     round, stored, acked,
                     committing > acked ? "during a commit" : "between commits", last);
        stored = last;
    }
}

Test (persist, a_kill_in_the_middle_of_writing_a_commit_loses_only_it)
{
    const char *dir = s_path (0, "store");
    uint64_t stored = 0;             //  batches in the store so far
    //  Die with the first write of a commit half done, or the second, ...
    //  A commit writes a 24-byte frame header and a page for each page.
    for (int tear = 0; tear < 6; tear++) {
        uint64_t target = stored + 2;
        pid_t pid = fork ();
        cr_assert_neq (pid, -1);
        if (pid == 0)
            s_child_commit_batches (dir, -1, target, tear);
        int status;
        cr_assert_eq (waitpid (pid, &status, 0), pid);
        cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL, "status %d", status);
        //  The batches before are there, the torn one is not.
        stored = s_check_store (dir);
        cr_assert_eq (stored, target, "tear at write %d", tear);
    }
}

//  ---------------------------------------------------------------------
//  Torn and garbled logs.

//  Copy file from to file to (creating it). 0 or -1.
static int
s_copy (const char *from, const char *to)
{
    int in = open (from, O_RDONLY);
    int out = open (to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char buffer [65536];
    ssize_t got = 0;
    while (in != -1 && out != -1 && (got = read (in, buffer, sizeof buffer)) > 0)
        if (write (out, buffer, (size_t) got) != got)
            got = -1;
    int rc = in == -1 || out == -1 || got < 0 ? -1 : 0;
    if (in != -1)
        close (in);
    if (out != -1)
        close (out);
    return rc;
}

static uint32_t
s_be32 (const uint8_t *bytes)
{
    return (uint32_t) bytes [0] << 24 | (uint32_t) bytes [1] << 16 | (uint32_t) bytes [2] << 8
           | bytes [3];
}

//  A store left by a child that committed `batches` batches and died of
//  SIGKILL right after the last commit, so its WAL is there, never
//  checkpointed. Finds where the last commit's frames are in the WAL.
typedef struct {
    char dir [256];                  //  the store
    off_t wal_size;                  //  bytes in its WAL
    off_t last_start;                //  offset of the last commit's first frame
    size_t frame_size;               //  bytes in a frame: 24 + page size
} s_killed_t;

static void
s_killed_store (s_killed_t *killed, uint64_t batches)
{
    snprintf (killed->dir, sizeof killed->dir, "%s/killed", s_root);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0)
        s_child_commit_batches (killed->dir, -1, batches - 1, -1);
    int status;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL, "status %d", status);

    //  The WAL: a 32-byte header (page size at 8), then frames of a
    //  24-byte header (database size at 4, set only in a commit's last
    //  frame) and a page.
    char wal [300];
    snprintf (wal, sizeof wal, "%s/jobs.db-wal", killed->dir);
    int fd = open (wal, O_RDONLY);
    cr_assert_neq (fd, -1, "the child left no WAL");
    struct stat st;
    cr_assert_eq (fstat (fd, &st), 0);
    killed->wal_size = st.st_size;
    uint8_t header [32];
    cr_assert_eq (pread (fd, header, 32, 0), 32);
    killed->frame_size = 24 + s_be32 (header + 8);
    off_t frames = (st.st_size - 32) / (off_t) killed->frame_size;
    cr_assert_eq (32 + frames * (off_t) killed->frame_size, st.st_size);
    //  The commit frames, from the end: the last is the last frame.
    off_t commits [2] = {-1, -1};
    size_t found = 0;
    for (off_t frame = frames - 1; frame >= 0 && found < 2; frame--) {
        uint8_t frame_header [24];
        off_t offset = 32 + frame * (off_t) killed->frame_size;
        cr_assert_eq (pread (fd, frame_header, 24, offset), 24);
        if (s_be32 (frame_header + 4))
            commits [found++] = offset;
    }
    close (fd);
    cr_assert_eq (found, 2);
    cr_assert_eq (commits [0], st.st_size - (off_t) killed->frame_size);
    killed->last_start = commits [1] + (off_t) killed->frame_size;
    cr_assert_lt (killed->last_start, commits [0], "the last commit has one frame only");
}

//  A copy of the killed store, in a new directory named by slot.
static const char *
s_copy_killed (s_killed_t *killed, int slot)
{
    char name [32];
    snprintf (name, sizeof name, "case-%d", slot);
    const char *dir = s_path (0, name);
    cr_assert_eq (mkdir (dir, 0700), 0);
    char from [300], to [300];
    snprintf (from, sizeof from, "%s/jobs.db", killed->dir);
    snprintf (to, sizeof to, "%s/jobs.db", dir);
    cr_assert_eq (s_copy (from, to), 0);
    snprintf (from, sizeof from, "%s/jobs.db-wal", killed->dir);
    snprintf (to, sizeof to, "%s/jobs.db-wal", dir);
    cr_assert_eq (s_copy (from, to), 0);
    return dir;
}

Test (persist, a_torn_log_tail_loses_only_the_last_commit)
{
    s_killed_t killed;
    s_killed_store (&killed, 6);
    //  As the child left it, all six batches are there.
    cr_assert_eq (s_check_store (s_copy_killed (&killed, 0)), 6);

    off_t start = killed.last_start, frame = (off_t) killed.frame_size;
    const off_t cuts [] = {start, start + 1, start + 24, start + frame / 2, start + frame,
                           killed.wal_size - frame + 10, killed.wal_size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts [0]; i++) {
        const char *dir = s_copy_killed (&killed, (int) i + 1);
        char wal [300];
        snprintf (wal, sizeof wal, "%s/jobs.db-wal", dir);
        cr_assert_eq (truncate (wal, cuts [i]), 0);
        //  Cut anywhere inside the last commit, and it is gone whole.
        cr_assert_eq (s_check_store (dir), 5, "cut at %lld", (long long) cuts [i]);
    }
}

Test (persist, a_garbled_log_tail_loses_only_the_last_commit)
{
    s_killed_t killed;
    s_killed_store (&killed, 6);
    off_t start = killed.last_start, last = killed.wal_size - (off_t) killed.frame_size;
    //  Bytes of the last commit: in its first page, its last (commit)
    //  page, the commit frame's page number, salt and checksum.
    const off_t spots [] = {start + 24 + 100, last + 24 + 5000, last + 1, last + 9, last + 20,
                            killed.wal_size - 1};
    for (size_t i = 0; i < sizeof spots / sizeof spots [0]; i++) {
        const char *dir = s_copy_killed (&killed, (int) i + 1);
        char wal [300];
        snprintf (wal, sizeof wal, "%s/jobs.db-wal", dir);
        int fd = open (wal, O_RDWR);
        cr_assert_neq (fd, -1);
        uint8_t byte;
        cr_assert_eq (pread (fd, &byte, 1, spots [i]), 1);
        byte ^= 0x5a;
        cr_assert_eq (pwrite (fd, &byte, 1, spots [i]), 1);
        close (fd);
        cr_assert_eq (s_check_store (dir), 5, "garbled at %lld", (long long) spots [i]);
    }
}

//  ---------------------------------------------------------------------
//  Refusals at open.

//  A cleanly closed store with enough jobs for some pages of 16 KiB; the
//  close checkpoints everything into jobs.db and deletes the WAL.
static void
s_make_closed_store (const char *dir)
{
    drv_persist_t *store = s_open (dir);
    uint8_t payload [1000];
    memset (payload, 'p', sizeof payload);
    for (uint64_t id = 1; id <= 400; id++)
        s_add (store, id, "f", payload, sizeof payload);
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);
    char wal [300];
    snprintf (wal, sizeof wal, "%s/jobs.db-wal", dir);
    cr_assert_eq (access (wal, F_OK), -1, "the close left a WAL");
}

//  Overwrite size bytes at offset of file with value.
static void
s_scribble (const char *path, off_t offset, uint8_t value, size_t size)
{
    uint8_t bytes [64];
    cr_assert_leq (size, sizeof bytes);
    memset (bytes, value, size);
    int fd = open (path, O_RDWR);
    cr_assert_neq (fd, -1);
    cr_assert_eq (pwrite (fd, bytes, size, offset), (ssize_t) size);
    close (fd);
}

//  Open must fail, saying the store is corrupt and what to do.
static void
s_assert_refused_as_corrupt (const char *dir)
{
    char err [512], advice [300];
    cr_assert_null (drv_persist_open (dir, err, sizeof err));
    cr_log_info ("%s", err);
    snprintf (advice, sizeof advice, "move %s aside", dir);
    cr_assert (strstr (err, "is corrupt"), "%s", err);
    cr_assert (strstr (err, advice), "%s", err);
}

Test (persist, corruption_in_the_middle_is_refused)
{
    const char *dir = s_path (0, "store");
    const char *db = s_path (1, "store/jobs.db");
    s_make_closed_store (dir);
    struct stat st = s_stat (db);
    uint8_t header [100];
    int fd = open (db, O_RDONLY);
    cr_assert_eq (pread (fd, header, 100, 0), 100);
    close (fd);
    size_t page_size = (size_t) header [16] << 8 | header [17];
    cr_assert_eq (page_size, 16384);
    off_t pages = st.st_size / (off_t) page_size;
    cr_assert_geq (pages, 8);

    //  The b-tree page header of a page in the middle.
    s_scribble (db, pages / 2 * (off_t) page_size, 0xff, 12);
    s_assert_refused_as_corrupt (dir);
    //  It stays refused: open changed nothing.
    s_assert_refused_as_corrupt (dir);
}

Test (persist, a_garbled_file_header_is_refused)
{
    const char *dir = s_path (0, "store");
    s_make_closed_store (dir);
    s_scribble (s_path (1, "store/jobs.db"), 0, 'x', 16);
    s_assert_refused_as_corrupt (dir);
}

//  Run one statement on a database with SQLite itself.
static void
s_sql (const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    cr_assert_eq (sqlite3_open (path, &db), SQLITE_OK);
    char *message = NULL;
    cr_assert_eq (sqlite3_exec (db, sql, NULL, NULL, &message), SQLITE_OK, "%s", message);
    cr_assert_eq (sqlite3_close (db), SQLITE_OK);
}

Test (persist, an_unknown_schema_version_is_refused)
{
    const char *dir = s_path (0, "store");
    s_make_closed_store (dir);
    s_sql (s_path (1, "store/jobs.db"), "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    char err [512];
    cr_assert_null (drv_persist_open (dir, err, sizeof err));
    cr_log_info ("%s", err);
    cr_assert (strstr (err, "schema version 99"), "%s", err);
    cr_assert (strstr (err, "knows only version 2"), "%s", err);
}

Test (persist, steering_fields_round_trip_across_reopen)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    drv_record_t one = {.id = 1, .tag = 1, .function = "resize", .priority = -3,
                        .run_at = 1795000000000, .unique = "report:7", .detached = true};
    drv_record_t two = {.id = 2, .tag = 2, .function = "resize", .priority = INT32_MAX,
                        .unique = "report:7", .follower = true};
    cr_assert_eq (drv_persist_add (store, &one), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_add (store, &two), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);

    store = s_open (dir);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 2);
    drv_record_t *got = &loaded.jobs [0].record;
    cr_assert_eq (got->priority, -3);
    cr_assert_eq (got->run_at, 1795000000000);
    cr_assert_str_eq (got->unique, "report:7");
    cr_assert (got->detached);
    cr_assert_not (got->follower);
    got = &loaded.jobs [1].record;
    cr_assert_eq (got->priority, INT32_MAX);
    cr_assert_eq (got->run_at, 0);
    cr_assert (got->follower);
    cr_assert_not (got->detached);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

typedef struct {
    char function [64];              //  a queue's function
    uint32_t limit;                  //  its settings as loaded
    bool paused;
    uint64_t max_queue;
} s_queue_row_t;

typedef struct {
    s_queue_row_t rows [8];          //  queues loaded, in function order
    size_t count;                    //  rows used
} s_queues_t;

static int
s_collect_queue (const char *function, uint32_t limit, bool paused, uint64_t max_queue,
                 void *arg)
{
    s_queues_t *queues = (s_queues_t *) arg;
    cr_assert_lt (queues->count, 8);
    s_queue_row_t *row = &queues->rows [queues->count++];
    snprintf (row->function, sizeof row->function, "%s", function);
    row->limit = limit;
    row->paused = paused;
    row->max_queue = max_queue;
    return 0;
}

Test (persist, queue_settings_round_trip_and_defaults_go)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    cr_assert_eq (drv_persist_queue (store, "resize", 4, true, 100), 0);
    cr_assert_eq (drv_persist_queue (store, "noop", 1, false, 0), 0);
    cr_assert_eq (drv_persist_queue (store, "gone", 2, false, 0), 0);
    cr_assert_eq (drv_persist_commit (store), 0);
    //  Changed, and back to the defaults.
    cr_assert_eq (drv_persist_queue (store, "resize", 4, false, 100), 0);
    cr_assert_eq (drv_persist_queue (store, "gone", 0, false, 0), 0);
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);

    store = s_open (dir);
    s_queues_t queues = {0};
    cr_assert_eq (drv_persist_load_queues (store, s_collect_queue, &queues), 0);
    cr_assert_eq (queues.count, 2);
    cr_assert_str_eq (queues.rows [0].function, "noop");
    cr_assert_eq (queues.rows [0].limit, 1);
    cr_assert_str_eq (queues.rows [1].function, "resize");
    cr_assert_eq (queues.rows [1].limit, 4);
    cr_assert_not (queues.rows [1].paused);
    cr_assert_eq (queues.rows [1].max_queue, 100);
    drv_persist_destroy (&store);
}

//  The schema of version 1, as drover 0.1 wrote it.
static const char *s_schema_v1 =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;"
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, client BLOB NOT NULL,"
    " function TEXT NOT NULL, payload BLOB NOT NULL, timeout_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, finished INTEGER NOT NULL, outcome INTEGER NOT NULL,"
    " result BLOB, reason TEXT, retries INTEGER NOT NULL, failures INTEGER NOT NULL,"
    " lost INTEGER NOT NULL) STRICT;"
    "INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('max_id', 2);"
    "INSERT INTO jobs VALUES (1, 10, x'6331', 'resize', x'6869', 500, 1, 0, 0, NULL, NULL,"
    " 3, 1, 0);"
    "INSERT INTO jobs VALUES (2, 20, x'6331', 'resize', x'', 0, 1, 1, 1, x'6f6b', '',"
    " 0, 0, 0);";

Test (persist, a_version_1_store_is_migrated_and_keeps_its_jobs)
{
    const char *dir = s_path (0, "old");
    cr_assert_eq (mkdir (dir, 0700), 0);
    s_sql (s_path (1, "old/jobs.db"), s_schema_v1);
    drv_persist_t *store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 2);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 2);
    drv_record_t *one = &loaded.jobs [0].record;
    cr_assert_eq (one->tag, 10);
    cr_assert_eq (one->size, 2);
    cr_assert_eq (one->timeout_ms, 500);
    cr_assert_eq (one->retries, 3);
    cr_assert_eq (one->failures, 1);
    cr_assert_eq (one->priority, 0, "new columns read as their defaults");
    cr_assert_eq (one->run_at, 0);
    cr_assert_null (one->unique);
    cr_assert_not (one->detached);
    cr_assert (loaded.jobs [1].record.finished);
    cr_assert_eq (loaded.jobs [1].record.result_size, 2);
    s_loaded_free (&loaded);
    //  The new columns and the queues table take writes.
    drv_record_t three = {.id = 3, .tag = 30, .function = "resize", .priority = 5,
                          .unique = "k"};
    cr_assert_eq (drv_persist_add (store, &three), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_queue (store, "resize", 2, false, 0), 0);
    cr_assert_eq (drv_persist_commit (store), 0, "%s", drv_persist_error (store));
    drv_persist_destroy (&store);

    //  Migrated once: it opens as version 2 from now on.
    store = s_open (dir);
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 3);
    cr_assert_eq (loaded.jobs [2].record.priority, 5);
    cr_assert_str_eq (loaded.jobs [2].record.unique, "k");
    s_loaded_free (&loaded);
    s_queues_t queues = {0};
    cr_assert_eq (drv_persist_load_queues (store, s_collect_queue, &queues), 0);
    cr_assert_eq (queues.count, 1);
    drv_persist_destroy (&store);
    sqlite3 *db = NULL;
    cr_assert_eq (sqlite3_open (s_path (1, "old/jobs.db"), &db), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq (sqlite3_prepare_v2 (db, "SELECT value FROM meta WHERE key = 'schema_version'",
                                      -1, &stmt, NULL),
                  SQLITE_OK);
    cr_assert_eq (sqlite3_step (stmt), SQLITE_ROW);
    cr_assert_eq (sqlite3_column_int (stmt, 0), 2);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
}

Test (persist, another_programs_database_is_refused)
{
    const char *dir = s_path (0, "other");
    cr_assert_eq (mkdir (dir, 0700), 0);
    s_sql (s_path (1, "other/jobs.db"), "CREATE TABLE songs (title TEXT)");
    char err [512];
    cr_assert_null (drv_persist_open (dir, err, sizeof err));
    cr_log_info ("%s", err);
    cr_assert (strstr (err, "not a drover job store"), "%s", err);
}

//  ---------------------------------------------------------------------
//  A disk that fails under a commit.

Test (persist, a_failed_commit_is_reported_and_sticks)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    s_add (store, 1, "f", "one", 3);
    cr_assert_eq (drv_persist_commit (store), 0);
    drv_persist_destroy (&store);

    //  A child whose files cannot grow by more than a few bytes: the
    //  next commit's write to the log fails, as on a full disk.
    int fds [2];
    cr_assert_eq (pipe (fds), 0);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        close (fds [0]);
        char err [512];
        drv_persist_t *child = drv_persist_open (dir, err, sizeof err);
        if (!child)
            _exit (2);
        //  Opening made the log; allow it 100 bytes more.
        struct stat wal = s_stat (s_path (1, "store/jobs.db-wal"));
        signal (SIGXFSZ, SIG_IGN);
        struct rlimit limit = {.rlim_cur = (rlim_t) wal.st_size + 100,
                               .rlim_max = RLIM_INFINITY};
        if (setrlimit (RLIMIT_FSIZE, &limit))
            _exit (2);
        uint8_t payload [20000];
        memset (payload, 'x', sizeof payload);
        drv_record_t job = {.id = 2, .function = "f", .payload = payload, .size = sizeof payload};
        if (drv_persist_add (child, &job))
            _exit (3);
        int commit = drv_persist_commit (child);
        const char *reason = drv_persist_error (child);
        if (write (fds [1], reason, strlen (reason) + 1) < 0)
            _exit (2);
        //  It sticks: nothing more is accepted.
        if (commit != -1 || drv_persist_add (child, &job) != -1
            || drv_persist_commit (child) != -1)
            _exit (4);
        drv_persist_destroy (&child);
        _exit (0);
    }
    close (fds [1]);
    int status;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    char reason [512] = "";
    cr_assert_geq (read (fds [0], reason, sizeof reason - 1), 0);
    close (fds [0]);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d: %s", status,
               reason);
    cr_log_info ("%s", reason);
    cr_assert (strstr (reason, "cannot commit"), "%s", reason);
    cr_assert (strstr (reason, "write: File too large"), "%s", reason);
    cr_assert (strstr (reason, "stop acknowledging"), "%s", reason);

    //  The store is as of the last good commit.
    store = s_open (dir);
    cr_assert_eq (drv_persist_max_id (store), 1);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 1);
    cr_assert_arr_eq (loaded.jobs [0].record.payload, "one", 3);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}

Test (persist, retries_failures_and_losses_survive_reopen)
{
    const char *dir = s_path (0, "store");
    drv_persist_t *store = s_open (dir);
    drv_record_t job = {.id = 1, .tag = 1, .client = s_client, .client_len = sizeof s_client,
                        .function = "flaky", .payload = (const uint8_t *) "p", .size = 1,
                        .retries = 4};
    cr_assert_eq (drv_persist_add (store, &job), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_counts (store, 1, 3, 2, 1), 0, "%s", drv_persist_error (store));
    cr_assert_eq (drv_persist_commit (store), 0);
    cr_assert_eq (drv_persist_counts (store, 2, 1, 1, 1), -1, "no job 2");
    drv_persist_destroy (&store);
    store = s_open (dir);
    s_loaded_t loaded;
    s_load (store, &loaded);
    cr_assert_eq (loaded.count, 1);
    cr_assert_eq (loaded.jobs [0].record.retries, 4);
    cr_assert_eq (loaded.jobs [0].record.attempts, 3);
    cr_assert_eq (loaded.jobs [0].record.failures, 2);
    cr_assert_eq (loaded.jobs [0].record.lost, 1);
    s_loaded_free (&loaded);
    drv_persist_destroy (&store);
}
