#!/usr/bin/env bash
# Start-to-exit of /bin/true in an already-unpacked rootfs, as an unprivileged
# user: locald's launcher vs bwrap (same namespaces) vs rootless runc.
# Usage (as root, after scripts/bootstrap --bench and a build):
#   bench/ns/start.sh [path/to/locald] [runs]
# Prints hyperfine's table and writes JSON results to $OUT (default /tmp/ns-bench).
set -euo pipefail
locald=${1:-$(dirname "$0")/../../build/locald}
runs=${2:-50}
user=${LOCALD_TEST_USER:-locald-test}
out=${OUT:-/tmp/ns-bench}
for tool in hyperfine bwrap runc busybox setpriv; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/bootstrap --bench)" >&2; exit 1; }
done

rm -rf "$out" && mkdir -p "$out" && chmod 755 "$out"
cp "$locald" "$out/locald" && chmod 755 "$out/locald"
root=$out/bundle/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,dev,sys}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in sh true; do ln -sf busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

# The same launcher linked with base + ns only (measurement aid, see slim_launch.cc).
build=$(dirname "$locald")
src=$(cd "$(dirname "$0")/../.." && pwd)
g++ -std=gnu++20 -O2 -D_GNU_SOURCE -I"$src/src" -I"$build/generated" "$src/bench/ns/slim_launch.cc" \
  "$build/src/ns/liblocald_ns.a" "$build/src/base/liblocald_base.a" \
  -lseccomp -lfmt -lyajl -lcrypto -o "$out/slim_launch"
printf '{"name": "bench", "rootfs": {"path": "%s"}, "args": ["/bin/true"], "seccomp_cache_dir": "%s"}\n' \
  "$root" "$out/home/run/seccomp" >"$out/spec.json"

chown -R "$user:$user" "$out"
as_user() { setpriv --reuid="$user" --regid="$user" --init-groups -- env HOME=/tmp TMPDIR=/tmp \
  LOCALD_HOME="$out/home" XDG_RUNTIME_DIR="$out/xdg" "$@"; }

# runc: a rootless spec (single id mapping of the user, generated as the user)
# running /bin/true without a terminal.
(cd "$out/bundle" && as_user runc spec --rootless)
python3 - "$out/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["/bin/true"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"), indent=2)
PY
as_user mkdir -p "$out/home" "$out/xdg"
# Warm the seccomp BPF cache once (what every later start uses).
as_user "$out/locald" container run --rootfs "$root" /bin/true

cd /tmp
as_user hyperfine --warmup 5 --runs "$runs" -N --export-json "$out/results.json" \
  -n locald "$out/locald container run --rootfs $root /bin/true" \
  -n bwrap "bwrap --unshare-user --unshare-pid --unshare-uts --unshare-ipc --unshare-cgroup --bind $root / --proc /proc --dev /dev --die-with-parent /bin/true" \
  -n runc "runc --root $out/xdg/runc run --bundle $out/bundle bench" \
  -n locald-slim "$out/slim_launch $out/spec.json"
python3 - "$out/results.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
print("medians (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
print(f"locald/bwrap = {med['locald'] / med['bwrap']:.2f}x (target <= 1.5)")
print(f"locald/runc  = {med['locald'] / med['runc']:.2f}x (target <= 0.3)")
print(f"slim/bwrap   = {med['locald-slim'] / med['bwrap']:.2f}x, slim/runc = {med['locald-slim'] / med['runc']:.2f}x")
cpu = {k: (v["user"] + v["system"]) * 1000 for k, v in r.items()}
print("mean CPU user+sys (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
PY
