/*  sum_squares - a CPU-bound job spread over processes: the sum of i*i
    for i in [0, N), computed once serially and once as CHUNKS tasks on a
    worker with one process per CPU, with the speedup printed. In Python:

        with Pool() as p:
            total = sum(p.map(chunk_sum, chunks))

    Sums are taken modulo 2^64 (unsigned overflow), the same both ways.
    Usage: sum_squares [N [CHUNKS]]; default 1,000,000,000 in 64 chunks.
    The speedup depends on the machine and what else runs on it.
*/

#include "local.h"

#include <inttypes.h>
#include <time.h>
#include <unistd.h>

//  Sum of i*i over [low, high), kept from being folded into a formula
//  or vectorized away, so it costs what a real loop costs.
static uint64_t
s_sum (uint64_t low, uint64_t high)
{
    uint64_t sum = 0;
    for (uint64_t i = low; i < high; i++) {
        sum += i * i;
        __asm__ volatile ("" : "+r"(sum));
    }
    return sum;
}

//  The task: "LOW HIGH" in, the chunk's sum out.
static int
chunk_sum (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const char *text = (const char *) drover_task_payload (task, &size);
    uint64_t low, high;
    if (sscanf (text, "%" SCNu64 " %" SCNu64, &low, &high) != 2 || low > high) {
        drover_task_fail (task, "want LOW HIGH, not '%s'", text);
        return -1;
    }
    char out [32];
    int length = snprintf (out, sizeof out, "%" PRIu64, s_sum (low, high));
    return drover_task_reply (task, out, (size_t) length);
}

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

int
main (int argc, char *argv [])
{
    uint64_t n = argc > 1 ? strtoull (argv [1], NULL, 10) : 1000000000;
    size_t chunks = argc > 2 ? strtoul (argv [2], NULL, 10) : 64;
    if (chunks < 1 || chunks > 100000 || n < chunks) {
        fprintf (stderr, "usage: sum_squares [N [CHUNKS]], N >= CHUNKS >= 1\n");
        return 2;
    }
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    local_t local;
    if (local_new (&local, (unsigned) cpus) == -1)
        return 1;
    drover_worker_add_handler (local.worker, "chunk_sum", chunk_sum, NULL);
    if (local_start (&local) == -1)
        return 1;

    double start = s_now ();
    uint64_t serial = s_sum (0, n);
    double serial_s = s_now () - start;

    char (*texts) [48] = calloc (chunks, sizeof *texts);
    const void **inputs = calloc (chunks, sizeof *inputs);
    size_t *sizes = calloc (chunks, sizeof *sizes);
    drover_result_t **results = calloc (chunks, sizeof *results);
    int rc = texts && inputs && sizes && results ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < chunks; i++) {
        uint64_t low = n / chunks * i, high = i == chunks - 1 ? n : n / chunks * (i + 1);
        sizes [i] = (size_t) snprintf (texts [i], sizeof texts [i], "%" PRIu64 " %" PRIu64,
                                       low, high);
        inputs [i] = texts [i];
    }
    start = s_now ();
    if (rc == 0)
        rc = drover_client_map (local.client, "chunk_sum", chunks, inputs, sizes, NULL, 600000,
                                results);
    uint64_t distributed = 0;
    for (size_t i = 0; rc == 0 && i < chunks; i++) {
        if (results [i]->outcome == DROVER_OUTCOME_OK)
            distributed += strtoull ((const char *) results [i]->data, NULL, 10);
        else {
            fprintf (stderr, "sum_squares: chunk %zu: %s\n", i, results [i]->reason);
            rc = 1;
        }
    }
    double distributed_s = s_now () - start;
    if (rc == -1)
        fprintf (stderr, "sum_squares: %s\n", drover_client_error (local.client));
    for (size_t i = 0; results && rc != -1 && i < chunks; i++)
        drover_result_destroy (&results [i]);
    if (rc == 0) {
        printf ("sum of squares below %" PRIu64 " (mod 2^64)\n", n);
        printf ("serial:      %" PRIu64 " in %.3f s\n", serial, serial_s);
        printf ("distributed: %" PRIu64 " in %.3f s (%zu chunks, %ld processes)\n", distributed,
                distributed_s, chunks, cpus);
        printf ("speedup: %.2fx\n", serial_s / distributed_s);
        if (serial != distributed) {
            fprintf (stderr, "sum_squares: the sums differ\n");
            rc = 1;
        }
    }
    free (texts);
    free (inputs);
    free (sizes);
    free (results);
    local_stop (&local);
    return rc == 0 ? 0 : 1;
}
