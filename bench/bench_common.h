/*  bench_common.h - what the benchmark's clients and workers share, so
    that drover and its peers run exactly the same work: the payloads, the
    handlers' computations, the checks on every result, the clock and the
    percentiles. Header-only: each bench program is one .c file.

    Payloads: the first 16 bytes carry the task's index (16 hex digits),
    the rest a fixed byte pattern. The three functions every system offers:
      echo   the result is the payload (workloads A, B, C)
      sum    the result is an 8-byte checksum of the payload (E: the
             bytes go through the broker once, the check stays cheap)
      sumsq  payload "LO HI" in decimal; the result is the sum of i*i for
             LO <= i < HI, modulo 2^64, in decimal (D)
*/

#ifndef BENCH_COMMON_H_INCLUDED
#define BENCH_COMMON_H_INCLUDED

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  The malloc settings of drover_tune_malloc, for every bench program
//  alike: blocks up to 32 MiB from the heap, up to 64 MiB of free heap
//  kept. Fresh pages cost a page fault each, and on a small virtual
//  machine that dominates moving 1 MiB payloads (workload E).
static inline void
bench_tune_malloc (void)
{
    mallopt (M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

//  Monotonic time in microseconds.
static inline int64_t
bench_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  Fill payload number index of size bytes (size >= 16).
static inline void
bench_payload (uint8_t *buffer, size_t size, uint64_t index)
{
    char head [17];
    snprintf (head, sizeof head, "%016" PRIx64, index);
    memcpy (buffer, head, size < 16 ? size : 16);
    //  Byte i is 'a' + i % 26: one period by hand, then the filled part
    //  copied after itself, a whole number of periods each time, so that
    //  making a 1 MiB payload does not cost more than moving it.
    size_t filled = size < 16 + 26 ? size : 16 + 26;
    for (size_t i = 16; i < filled; i++)
        buffer [i] = (uint8_t) ('a' + i % 26);
    while (filled < size) {
        size_t length = filled - 16;
        if (length > size - filled)
            length = size - filled;
        memcpy (buffer + filled, buffer + 16, length);
        filled += length;
    }
}

//  The checksum the sum function returns: 64-bit words added, the tail
//  bytes and the length mixed in.
static inline uint64_t
bench_checksum (const uint8_t *data, size_t size)
{
    uint64_t sum = size * 0x9e3779b97f4a7c15ull;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t word;
        memcpy (&word, data + i * 8, 8);
        sum += word;
    }
    for (size_t i = words * 8; i < size; i++)
        sum = sum * 31 + data [i];
    return sum;
}

//  Sum of i*i for lo <= i < hi, modulo 2^64. The empty asm keeps the
//  compiler from turning the loop into its closed form: the point is CPU
//  work of a known size.
static inline uint64_t
bench_sumsq (uint64_t lo, uint64_t hi)
{
    uint64_t sum = 0;
    for (uint64_t i = lo; i < hi; i++) {
        sum += i * i;
        __asm__ volatile ("" : "+r"(sum));
    }
    return sum;
}

//  The sumsq function on a "LO HI" payload; writes the decimal result
//  into out (at least 24 bytes) and returns its length, or -1.
static inline int
bench_sumsq_text (const uint8_t *payload, size_t size, char *out)
{
    char text [64];
    if (size >= sizeof text)
        return -1;
    memcpy (text, payload, size);
    text [size] = 0;
    unsigned long long lo, hi;
    if (sscanf (text, "%llu %llu", &lo, &hi) != 2)
        return -1;
    return snprintf (out, 24, "%" PRIu64, bench_sumsq (lo, hi));
}

//  Chunk number i of a D run: [i*per, (i+1)*per), as the "LO HI" payload.
static inline int
bench_chunk (char *out, size_t size, uint64_t i, uint64_t per)
{
    return snprintf (out, size, "%" PRIu64 " %" PRIu64, i * per, (i + 1) * per);
}

static int
s_bench_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  The p-th percentile (0..100) of n samples; sorts them.
static inline int64_t
bench_percentile (int64_t *samples, size_t n, double p)
{
    if (!n)
        return 0;
    qsort (samples, n, sizeof *samples, s_bench_cmp);
    size_t rank = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
    return samples [rank < n ? rank : n - 1];
}

//  Print a measurement the way bench/run reads it:
//  "RESULT tasks_per_s p50_us p99_us", empty fields as "-".
static inline void
bench_report (double tasks_per_s, int64_t p50, int64_t p99)
{
    if (p50 < 0)
        printf ("RESULT %.1f - -\n", tasks_per_s);
    else
        printf ("RESULT %.1f %" PRId64 " %" PRId64 "\n", tasks_per_s, p50, p99);
    fflush (stdout);
}

//  Die with a message: the bench programs are short-lived tools.
#define bench_die(...)                                                                    \
    do {                                                                                  \
        fprintf (stderr, __VA_ARGS__);                                                    \
        fputc ('\n', stderr);                                                             \
        exit (1);                                                                         \
    } while (0)

//  The checksum of payload number index of size bytes, as bench_checksum
//  gives it, without making the payload: payloads differ only in their
//  head, which is the checksum's first two words, so the sum of the other
//  words and the tail bytes are taken once per size from one payload made
//  in full, and the head's words added for each index. A client checks
//  a sum result against this: the same figure, without writing and
//  reading the payload a second time (a megabyte each in workload E).
//  Checked against the full computation each time the size changes. Not
//  thread-safe.
static inline uint64_t
bench_payload_checksum (size_t size, uint64_t index)
{
    static size_t model_size;        //  the size the fields below are for, 0: none
    static uint64_t rest;            //  words 2 to size / 8 - 1 added
    static uint8_t tail [8];         //  the size % 8 bytes after the last word
    if (size < 64) {
        uint8_t small [64];
        bench_payload (small, size, index);
        return bench_checksum (small, size);
    }
    char head [17];
    if (model_size != size) {
        uint8_t *model = (uint8_t *) malloc (size);
        if (!model)
            bench_die ("bench: out of memory");
        bench_payload (model, size, 0);
        rest = 0;
        for (size_t i = 2; i < size / 8; i++) {
            uint64_t word;
            memcpy (&word, model + i * 8, 8);
            rest += word;
        }
        memcpy (tail, model + size / 8 * 8, size % 8);
        model_size = size;
        //  The shortcut must give what summing every byte gives.
        uint64_t index_check = 0x0123456789abcdefull;
        bench_payload (model, size, index_check);
        if (bench_payload_checksum (size, index_check) != bench_checksum (model, size))
            bench_die ("bench: bench_payload_checksum disagrees with bench_checksum");
        free (model);
    }
    snprintf (head, sizeof head, "%016" PRIx64, index);
    uint64_t first, second;
    memcpy (&first, head, 8);
    memcpy (&second, head + 8, 8);
    uint64_t sum = size * 0x9e3779b97f4a7c15ull + first + second + rest;
    for (size_t i = 0; i < size % 8; i++)
        sum = sum * 31 + tail [i];
    return sum;
}

#endif
