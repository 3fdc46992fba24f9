"""report - bench/run's table: every figure from results.csv and
memory.csv, the floors and the ceiling from floor.csv (B's floor: one
round trip of plain TCP and of ZeroMQ between two processes, under the
B table; D's ceiling: D's chunks on 2 processes sharing a counter, no
broker, under the D table; E's floor: 1 MiB payloads through a relay
process over plain TCP, under the E table), then drover's ratios
against the targets of issue 5.

Usage: python3 report.py results.csv memory.csv floor.csv counts.csv report.txt
"""

import csv
import os
import sys

UNITS = {"A": "tasks/s", "B": "tasks/s", "C": "tasks/s", "D": "speedup", "E": "MB/s"}
TITLES = {
    "A": "A throughput, 16-byte no-op tasks, 2 workers",
    "B": "B latency, one task at a time",
    "C": "C durable throughput",
    "D": "D CPU-bound map, speedup over serial",
    "E": "E 1 MiB payloads",
}
# floor.csv's round-trip rows (B), as the report names them; the relay
# row (E) has MB/s instead, the parallel row (D) a speedup.
FLOOR_NAMES = {"tcp": "plain TCP", "zeromq": "ZeroMQ"}


def number(text):
    return float(text) if text not in ("", None) else None


def main(results_path, memory_path, floor_path, counts_path, report_path):
    rows = list(csv.DictReader(open(results_path)))
    floors = {}  # B's: what -> (p50, p99)
    relay = None  # E's: MB/s through the relay
    ceiling = None  # D's: the speedup of 2 processes sharing a counter
    if os.path.exists(floor_path):
        for r in csv.DictReader(open(floor_path)):
            if r["what"] == "relay":
                relay = number(r.get("mb_per_s"))
            elif r["what"] == "parallel":
                ceiling = number(r.get("speedup"))
            else:
                floors[r["what"]] = (number(r["p50_us"]), number(r["p99_us"]))
    counts = {}
    for line in open(counts_path):
        workload, system, count = line.strip().split(",")
        counts[(workload, system)] = count
    figure = {}
    lines = []
    # The machine's load around the run (bench/run passes it): figures
    # from a busy machine compare with each other, not with a quiet run.
    load = os.environ.get("BENCH_LOAD", "").split()
    if len(load) == 2:
        cpus = os.cpu_count() or 1
        lines.append("Machine: %d CPUs, load average %s at the start, %s at the end%s" % (
            cpus, load[0], load[1],
            "" if float(load[0]) < cpus else
            " (busy before it started: compare the rows of this run with each other only)"))
    for workload in "ABCDE":
        these = [r for r in rows if r["workload"] == workload]
        if not these:
            continue
        lines.append("")
        lines.append(TITLES[workload])
        lines.append("  %-18s %9s %14s %9s %9s" % ("system", "tasks", UNITS[workload],
                                                  "p50 us", "p99 us"))
        for r in these:
            tps, p50, p99 = (number(r[k]) for k in ("tasks_per_s", "p50_us", "p99_us"))
            figure[(workload, r["system"])] = (tps, p50, p99)
            lines.append("  %-18s %9s %14s %9s %9s" % (
                r["system"], counts.get((workload, r["system"]), ""),
                ("%.2f" % tps) if workload == "D" else ("%.0f" % tps),
                "" if p50 is None else "%.0f" % p50, "" if p99 is None else "%.0f" % p99))
        if workload == "B":
            # What two processes on this machine need for one round trip
            # of 16 bytes, measured in the same run: B's floor.
            for what, (p50, p99) in floors.items():
                lines.append("  %-43s %9s %9s" % (
                    "floor: one round trip, " + FLOOR_NAMES.get(what, what),
                    "" if p50 is None else "%.0f" % p50, "" if p99 is None else "%.0f" % p99))
        if workload == "D" and ceiling is not None:
            # What 2 of this machine's CPUs give the same chunks with no
            # broker, in the same rounds: D's ceiling.
            lines.append("  ceiling: 2 processes sharing a counter, no broker   %.2f" % ceiling)
        if workload == "E" and relay is not None:
            # What plain sockets move here through one relay process in
            # the same run: E's floor.
            lines.append("  floor: 1 MiB through a relay process, plain TCP   %.0f MB/s" % relay)
    memory = {}
    if os.path.exists(memory_path):
        for r in csv.DictReader(open(memory_path)):
            memory[r["system"]] = r
    if memory:
        lines.append("")
        lines.append("Memory, jobs of 16 bytes queued with no worker (RSS of the server)")
        lines.append("  %-18s %9s %12s %12s %22s" % ("system", "jobs", "before kB", "after kB",
                                                   "bytes/job beyond payload"))
        for system, r in memory.items():
            lines.append("  %-18s %9s %12s %12s %22s" % (
                system, r["jobs"], r["rss_before_kb"], r["rss_after_kb"],
                r["bytes_per_job_beyond_payload"]))

    # The targets: (what, measured, target, met).
    checks = []

    def ratio(workload, system, peer, at_least):
        a, b = figure.get((workload, system)), figure.get((workload, peer))
        if a and b and b[0]:
            value = a[0] / b[0]
            checks.append(("%s %s / %s" % (workload, system, peer), "%.1fx" % value,
                           ">= %gx" % at_least, value >= at_least))

    def floor(workload, system, at_least, unit):
        a = figure.get((workload, system))
        if a:
            checks.append(("%s %s" % (workload, system), "%.0f %s" % (a[0], unit)
                           if workload != "D" else "%.2fx" % a[0],
                           ">= %g %s" % (at_least, unit) if workload != "D"
                           else ">= %gx" % at_least, a[0] >= at_least))

    ratio("A", "drover", "gearmand", 10)
    ratio("A", "drover", "beanstalkd", 15)
    ratio("A", "drover", "python-pool", 5)
    floor("A", "drover", 150000, "tasks/s")
    b = figure.get(("B", "drover"))
    if b and b[1] is not None:
        checks.append(("B drover p50", "%.0f us" % b[1], "<= 80 us", b[1] <= 80))
        for peer in ("gearmand", "beanstalkd"):
            p = figure.get(("B", peer))
            if p and p[1] is not None:
                checks.append(("B drover p50 vs %s" % peer, "%.0f vs %.0f us" % (b[1], p[1]),
                               "below", b[1] < p[1]))
        zeromq = floors.get("zeromq", (None, None))[0]
        if zeromq:
            checks.append("B drover p50 = %.1f ZeroMQ round trips; a brokered task needs"
                          " at least 2" % (b[1] / zeromq))
    floor("C", "drover-durable", 50000, "tasks/s")
    floor("D", "drover-2", 1.9, "")
    d = figure.get(("D", "drover-2"))
    if d and ceiling:
        checks.append("D drover-2 = %.0f%% of the machine's ceiling in the same rounds (%.2fx)"
                      % (d[0] / ceiling * 100, ceiling))
    floor("E", "drover", 1000, "MB/s")
    e = figure.get(("E", "drover"))
    if e and relay:
        checks.append("E drover = %.0f%% of the relay floor (%.0f MB/s)" % (e[0] / relay * 100,
                                                                          relay))
    if "drover" in memory:
        per = float(memory["drover"]["bytes_per_job_beyond_payload"])
        checks.append(("memory drover", "%.0f B/job" % per, "<= 300 B/job", per <= 300))
    if checks:
        lines.append("")
        lines.append("Targets (issue 5)")
        lines.append("  %-32s %20s %14s  %s" % ("what", "measured", "target", ""))
        for check in checks:
            if isinstance(check, str):  # a note, not a target
                lines.append("  " + check)
                continue
            what, measured, target, met = check
            lines.append("  %-32s %20s %14s  %s" % (what, measured, target,
                                                     "met" if met else "MISSED"))
    text = "\n".join(lines).lstrip("\n") + "\n"
    open(report_path, "w").write(text)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
