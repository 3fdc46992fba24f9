/*  fuzz_store - the durable store's decoding of what it reads back: the
    input is written as DIR/jobs.db (an SQLite file: the store keeps jobs
    as columns, not blobs) and the job store is opened and restored from
    it, as a broker started with --data DIR does. A crafted or damaged
    file must be refused with a reason or restored, never crash or leak.
*/

#include <czmq.h>
#include <unistd.h>

#include "drv_store.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char dir [64];

//  Remove the store's files, leaving dir.
static void
s_clean (void)
{
    const char *names [] = {"jobs.db", "jobs.db-wal", "jobs.db-shm", "jobs.db-journal"};
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
        char path [128];
        snprintf (path, sizeof path, "%s/%s", dir, names [i]);
        unlink (path);
    }
}

static void
s_at_exit (void)
{
    s_clean ();
    rmdir (dir);
}

//  Count what was restored, touching each job as the broker would.
static void
s_restored (drv_job_t *job, void *arg)
{
    size_t *count = (size_t *) arg;
    (*count) += job->size + job->result_size + (job->reason ? strlen (job->reason) : 0) > 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!*dir) {
        //  In memory if the machine has /dev/shm: every open of a store
        //  syncs, and a disk would make that the fuzzer's whole time.
        const char *tmp = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf (dir, sizeof dir, "%s/drover-fuzz-store-XXXXXX", tmp);
        if (!mkdtemp (dir))
            abort ();
        atexit (s_at_exit);
    }
    s_clean ();
    char path [128];
    snprintf (path, sizeof path, "%s/jobs.db", dir);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size || fclose (file) != 0)
        abort ();
    drv_store_t *store = drv_store_new (600000, 1000000);
    if (!store)
        abort ();
    char err [512] = "";
    size_t restored = 0;
    if (drv_store_attach (store, dir, 0, s_restored, &restored, err, sizeof err) == -1
        && !err [0])
        abort ();                   //  a refusal must say why
    drv_store_destroy (&store);
    return 0;
}
