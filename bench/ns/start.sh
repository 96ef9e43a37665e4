#!/usr/bin/env bash
# Start-to-exit of /bin/true in an already-unpacked rootfs, as an unprivileged
# user: locald's launcher vs bwrap (same namespaces) vs rootless runc.
# Usage (as root, after scripts/bootstrap --bench and a build; locald-launch is
# taken from the same directory as locald):
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
cp "$(dirname "$locald")/locald-launch" "$out/locald-launch" && chmod 755 "$out/locald-launch"
root=$out/bundle/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,dev,sys}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in sh true; do ln -sf busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

# The spec as the daemon writes it for a service: a state dir for the
# generated /etc files and the seccomp cache under the run dir.
mkdir -p "$out/state"
printf '{"name": "bench", "rootfs": {"path": "%s"}, "args": ["/bin/true"], "state_dir": "%s", "seccomp_cache_dir": "%s"}\n' \
  "$root" "$out/state" "$out/home/run/seccomp" >"$out/spec.json"

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
# The user namespace the daemon holds for its image services, made the same
# way: `locald-launch --hold-userns` (newuidmap/newgidmap once), its namespace
# opened by its parent, which passes `/proc/<parent>/fd/<N>` — the path shape
# the daemon puts in every image service's spec. The `locald-userns` variant
# joins it instead of running the two setuid helpers per start.
as_user python3 -c '
import os, subprocess, sys, time
holder = subprocess.Popen([sys.argv[1], "--hold-userns"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE)
line = holder.stdout.readline()
if line != b"ready\n":
    sys.exit(f"holder: {line!r}")
fd = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
print(f"/proc/{os.getpid()}/fd/{fd}", flush=True)
time.sleep(3600)
' "$out/locald-launch" >"$out/holder-path" 2>&1 </dev/null &
holder=$!
trap 'kill "$holder" 2>/dev/null' EXIT
for _ in $(seq 200); do
  [[ -s $out/holder-path ]] && break
  sleep 0.05
done
ns_path=$(cat "$out/holder-path")
[[ $ns_path == /proc/*/fd/* ]] || { echo "holder failed: $ns_path" >&2; exit 1; }
python3 - "$out/spec.json" "$out/spec-userns.json" "$ns_path" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["user_namespace"] = sys.argv[3]
json.dump(spec, open(sys.argv[2], "w"))
PY
chmod 644 "$out/spec-userns.json"

# Warm the seccomp BPF cache once (what every later start uses).
as_user "$out/locald-launch" "$out/spec.json"

# Interleaved: $rounds rounds, each running every command runs/rounds times, so
# load from other work on the machine hits all of them alike.
rounds=${ROUNDS:-5}
per_round=$(( (runs + rounds - 1) / rounds ))
cd /tmp
uptime
for round in $(seq 1 "$rounds"); do
  as_user hyperfine --warmup 3 --runs "$per_round" -N --style none \
    --export-json "$out/round-$round.json" \
    -n locald "$out/locald-launch $out/spec.json" \
    -n bwrap "bwrap --unshare-user --unshare-pid --unshare-uts --unshare-ipc --unshare-cgroup --bind $root / --proc /proc --dev /dev --die-with-parent /bin/true" \
    -n runc "runc --root $out/xdg/runc run --bundle $out/bundle bench" \
    -n locald-userns "$out/locald-launch $out/spec-userns.json" \
    -n locald-__launch "$out/locald __launch $out/spec.json" \
    -n locald-container-run "$out/locald container run --rootfs $root /bin/true" >/dev/null
done
uptime
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
times, cpu = {}, {}
for i in range(1, rounds + 1):
    for x in json.load(open(f"{out}/round-{i}.json"))["results"]:
        times.setdefault(x["command"], []).extend(x["times"])
        cpu.setdefault(x["command"], []).append(x["user"] + x["system"])
json.dump(times, open(f"{out}/results.json", "w"))
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
for k, v in times.items():
    print(f"{k:22} median {med[k]:6.2f} ms  min {min(v) * 1000:6.2f} ms  "
          f"mean CPU {statistics.mean(cpu[k]) * 1000:5.2f} ms  n={len(v)}")
print(f"locald/bwrap = {med['locald'] / med['bwrap']:.2f}x (target <= 1.5)")
print(f"locald/runc  = {med['locald'] / med['runc']:.2f}x (target <= 0.3)")
for k in ("locald-userns", "locald-__launch", "locald-container-run"):
    print(f"{k}: {med[k] / med['bwrap']:.2f}x bwrap, {med[k] / med['runc']:.2f}x runc")
PY
