#!/usr/bin/env bash
# Layers unpack benchmark: `locald image unpack` vs `umoci unpack --rootless`
# vs GNU `tar -xzf` of each layer in turn, as an unprivileged user, on the
# same ~600 MB 6-layer image (built once by make_image.py, blobs already in
# the store: no network). Prints each run and the medians.
#
# usage (as root, to create the data and drop to the user):
#   bench/layers/run.sh [RUNS] [WORKDIR]
# env: LOCALD_BIN (default build/locald), BENCH_USER (default locald-test).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
work=${2:-/var/tmp/locald-bench-layers}
user=${BENCH_USER:-locald-test}
bin=${LOCALD_BIN:-build/locald}
command -v umoci >/dev/null || { echo "umoci missing: scripts/bootstrap --bench" >&2; exit 1; }

if [[ ! -f $work/.built ]]; then
  rm -rf "$work"
  mkdir -p "$work"
  /usr/bin/python3 bench/layers/make_image.py "$work"
  touch "$work/.built"
fi
cp "$bin" "$work/locald"
chown -R "$user:$user" "$work"
chmod 755 "$work"

as_user() { runuser -u "$user" -- env HOME=/tmp LOCALD_HOME="$work/home" "$@"; }
clean() {
  # rootless unpacks own subuid files: remove as root between runs.
  rm -rf "$work/out"
  mkdir -p "$work/out"
  chown "$user:$user" "$work/out"
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  # The blobs are "already in the store": warm them like a just-pulled image.
  cat "$work"/layers/*.tar.gz >/dev/null
}
seconds() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'
}

declare -a t_locald t_umoci t_tar
for ((i = 1; i <= runs; i++)); do
  clean
  t=$(seconds as_user "$work/locald" image unpack --offline docker.io/bench/layers:1 "$work/out/rootfs")
  t_locald+=("$t")
  clean
  t=$(seconds as_user umoci unpack --rootless --image "$work/umoci-layout:bench" "$work/out/bundle")
  t_umoci+=("$t")
  clean
  t=$(seconds as_user sh -c "mkdir $work/out/tar && for l in $work/layers/*.tar.gz; do tar -xzf \$l -C $work/out/tar; done")
  t_tar+=("$t")
  echo "run $i: locald ${t_locald[-1]}s  umoci ${t_umoci[-1]}s  tar ${t_tar[-1]}s"
done
clean
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ml=$(median "${t_locald[@]}"); mu=$(median "${t_umoci[@]}"); mt=$(median "${t_tar[@]}")
echo "median: locald ${ml}s  umoci ${mu}s  tar ${mt}s"
awk -v l="$ml" -v u="$mu" -v t="$mt" 'BEGIN { printf "ratio: locald/umoci %.3f  locald/tar %.3f\n", l / u, l / t }'
