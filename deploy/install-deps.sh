#!/bin/sh
# Install what building and testing drover needs, from Debian 12's
# packages, when any of it is missing: czmq/libzmq (transport),
# protobuf-c (wire), SQLite (durable mode), libsystemd (the daemons'
# sd_notify: readiness and watchdog under systemd), Criterion (tests),
# clang and its runtime libraries (the fuzz targets: gcc has no
# -fsanitize=fuzzer, and libclang-rt-14-dev holds libFuzzer); systemd
# (systemd-analyze, to verify and score the units), dpkg-dev and file
# (dpkg-shlibdeps and file, which `cpack -G DEB` uses to find the
# package's dependencies). Needs root (or sudo) for apt-get.
set -eu

packages="build-essential cmake pkg-config libzmq3-dev libczmq-dev libprotobuf-c-dev
protobuf-c-compiler libcriterion-dev libsqlite3-dev clang libclang-rt-14-dev libsystemd-dev
systemd dpkg-dev file"

missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $package"
done
[ -z "$missing" ] && exit 0

echo "drover: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
