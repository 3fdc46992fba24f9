#!/bin/sh
# Install what is missing, build drover, square 1 to 3 in local mode (no
# daemon: drover runs a broker and workers inside itself), then start a
# broker and two workers on this machine, square the numbers 1 to 10 on
# them with `drover map`, and stop everything it started.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
cmake -S . -B build -DDROVER_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)"

echo "== drover map square -j 2 --function ... (local mode, no daemons)"
printf '1\n2\n3\n' | env -u DROVER_BROKER build/drover map square -j 2 \
    --function 'square=exec:awk {print($1*$1)}'

clients=${DROVER_CLIENTS:-tcp://127.0.0.1:7700}
workers=${DROVER_WORKERS:-tcp://127.0.0.1:7701}
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

build/drover-broker --clients "$clients" --workers "$workers" 2>broker.log &
pids="$pids $!"
for n in 1 2; do
    build/drover-worker --broker "$workers" --slots 2 --name "worker-$n" \
        --function 'square=exec:awk {print($1*$1)}' 2>"worker-$n.log" &
    pids="$pids $!"
done

echo "== seq 10 | drover map square"
seq 10 | build/drover --broker "$clients" map square
echo "== done; daemon logs are in broker.log, worker-1.log, worker-2.log"
