#!/usr/bin/env bash
# Builds and runs the host supervisor micro-benchmarks against the libraries
# of a build dir (default build-host; the root CMakeLists does not build
# bench/ yet). Results go to docs/benchmarks/host-supervisor.md by hand.
#   bench/host/log_bench.sh [BUILD_DIR] [BYTES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-host}
bytes=${2:-$((256 << 20))}
runs=${3:-5}
out=$(mktemp -d /tmp/locald-host-bench.XXXXXX)
cmake --build "$build" --target locald_host host_helper >/dev/null
flags=(-std=gnu++20 -O2 -D_GNU_SOURCE -Isrc -I"$build/generated")
libs=("$build/src/host/liblocald_host.a" "$build/src/base/liblocald_base.a" -lfmt)
g++ "${flags[@]}" bench/host/log_throughput.cc "${libs[@]}" -o "$out/host_log_throughput"
g++ "${flags[@]}" bench/host/death_latency.cc "${libs[@]}" -o "$out/host_death_latency"
helper="$build/tests/host/host_helper"
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in raw ring file super sink-ring sink-file; do
  BENCH_DIR=$out "$out/host_log_throughput" "$helper" "$bytes" "$mode" "$runs" 2>/dev/null | tail -1
done
"$out/host_death_latency" 200
rm -rf "$out"
