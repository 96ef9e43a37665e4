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

clean() {
  # rootless unpacks own subuid files: remove as root between runs.
  rm -rf "$work/out"
  mkdir -p "$work/out"
  chown "$user:$user" "$work/out"
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  # The blobs are "already in the store": warm every tool's copy, like a
  # just-pulled image.
  cat "$work"/layers/*.tar.gz "$work"/home/data/store/blobs/sha256/* \
    "$work"/umoci-layout/blobs/sha256/* >/dev/null
}
# Wall-clock and CPU (user+sys of the whole process tree) seconds of a run.
measure() {
  local out
  out=$(/usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1) || { echo "FAILED: $*" >&2; exit 1; }
  awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' <<<"$out"
}

declare -a w_locald w_umoci w_tar c_locald c_umoci c_tar
for ((i = 1; i <= runs; i++)); do
  clean
  read -r w c < <(measure runuser -u "$user" -- env HOME=/tmp LOCALD_HOME="$work/home" \
    "$work/locald" image unpack --offline docker.io/bench/layers:1 "$work/out/rootfs")
  w_locald+=("$w"); c_locald+=("$c")
  clean
  read -r w c < <(measure runuser -u "$user" -- env HOME=/tmp \
    umoci unpack --rootless --image "$work/umoci-layout:bench" "$work/out/bundle")
  w_umoci+=("$w"); c_umoci+=("$c")
  clean
  read -r w c < <(measure runuser -u "$user" -- sh -c \
    "mkdir $work/out/tar && for l in $work/layers/*.tar.gz; do tar -xzf \$l -C $work/out/tar; done")
  w_tar+=("$w"); c_tar+=("$c")
  echo "run $i: wall/cpu s: locald ${w_locald[-1]}/${c_locald[-1]}" \
    " umoci ${w_umoci[-1]}/${c_umoci[-1]}  tar ${w_tar[-1]}/${c_tar[-1]}"
done
clean
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
report() {
  local kind=$1 l=$2 u=$3 t=$4
  echo "median $kind: locald ${l}s  umoci ${u}s  tar ${t}s"
  awk -v l="$l" -v u="$u" -v t="$t" -v k="$kind" \
    'BEGIN { printf "ratio %s: locald/umoci %.3f  locald/tar %.3f\n", k, l / u, l / t }'
}
report wall "$(median "${w_locald[@]}")" "$(median "${w_umoci[@]}")" "$(median "${w_tar[@]}")"
report cpu "$(median "${c_locald[@]}")" "$(median "${c_umoci[@]}")" "$(median "${c_tar[@]}")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
