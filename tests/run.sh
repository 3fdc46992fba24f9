#!/bin/sh
# Install what is missing, build drover twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), and run the whole
# test suite on both builds; then build the fuzz targets with clang and
# fuzz each for a bounded time. Warnings fail the build.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
jobs=$(nproc)

for variant in plain sanitize; do
    dir=build-test-$variant
    sanitize=OFF
    [ "$variant" = sanitize ] && sanitize=ON
    echo "== drover tests: $variant build ($dir)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDROVER_WERROR=ON \
        -DDROVER_SANITIZE=$sanitize >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure --timeout 600)
done

# Third stage: the libFuzzer targets (fuzz/), built with clang in a
# directory of their own; each runs for a bounded time from its seeds.
dir=build-test-fuzz
echo "== drover tests: fuzz targets ($dir)"
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDROVER_WERROR=ON \
    -DDROVER_TESTS=OFF -DDROVER_FUZZ=ON >/dev/null
cmake --build "$dir" -j "$jobs"
(cd "$dir" && ctest --output-on-failure -j "$jobs")
