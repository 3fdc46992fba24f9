#!/bin/sh
# Install what is missing, build drover twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), and run the whole
# test suite on both builds. Warnings fail the build.
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
