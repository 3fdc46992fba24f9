"""pool_bench - the one-machine reference: multiprocessing.Pool(2) on
workloads A (map with chunksize=1) and B (apply_async, one at a time).

Usage:
  python3 pool_bench.py tput COUNT SIZE
  python3 pool_bench.py lat WARMUP COUNT SIZE

Payloads and the echo function match bench_common.h; every result is
checked. Prints "RESULT tasks/s p50_us p99_us" like the C programs.
"""

import multiprocessing
import sys
import time


def payload(index, size):
    head = b"%016x" % index
    tail = bytes(ord("a") + i % 26 for i in range(16, size))
    return (head + tail)[:size]


def echo(data):
    return data


def percentile(samples, p):
    samples = sorted(samples)
    rank = int(p / 100.0 * (len(samples) - 1) + 0.5)
    return samples[min(rank, len(samples) - 1)]


def tput(count, size):
    tasks = [payload(i, size) for i in range(count)]
    with multiprocessing.Pool(2) as pool:
        start = time.perf_counter()
        results = pool.map(echo, tasks, chunksize=1)
        elapsed = time.perf_counter() - start
    if results != tasks:
        sys.exit("pool_bench: a result is not its payload")
    print("RESULT %.1f - -" % (count / elapsed))


def lat(warmup, count, size):
    samples = []
    with multiprocessing.Pool(2) as pool:
        start = 0.0
        for i in range(warmup + count):
            if i == warmup:
                start = time.perf_counter()
            data = payload(i, size)
            before = time.perf_counter()
            result = pool.apply_async(echo, (data,)).get(60)
            after = time.perf_counter()
            if result != data:
                sys.exit("pool_bench: a result is not its payload")
            if i >= warmup:
                samples.append(int((after - before) * 1e6))
        elapsed = time.perf_counter() - start
    print("RESULT %.1f %d %d" % (count / elapsed, percentile(samples, 50),
                                 percentile(samples, 99)))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "tput":
        tput(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "lat":
        lat(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
