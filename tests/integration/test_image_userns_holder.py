"""The daemon's held user namespace for `image =` services (podman's pause
process): the first image service starts `locald-launch --hold-userns`, a
direct child of the daemon that holds one user namespace mapped like every
container (user -> 0, subordinate range -> 1..N); every container joins it
through `/proc/<daemon>/fd/<N>` instead of running newuidmap/newgidmap.
Runs as the unprivileged test user with its subordinate range."""
import json
import os
import pathlib
import pwd
import signal
import subprocess
import time

import pytest

import oci_build as ob
from host_util import wait_until
from ns_util import as_user_argv, popen_as, run_as, user_env
from image_util import Project, processes
from image_util import load_image as load_oci_image
from image_util import scratch  # noqa: F401 (the fixture)

REF = "localhost/holder-test:1"


APPLETS = ("sh", "cat", "echo", "ls", "sleep", "id", "touch", "chown", "stat", "true")

TOML = """
[project]
name = "holder"

[service.a]
image = "{ref}"
command = "{probe_a}"
volumes = ["./data:/out"]
port = false

[service.b]
image = "{ref}"
command = "{probe_b}"
volumes = ["./data:/out"]
port = false
"""

# Each container records its maps, its user namespace and how the image's
# files (owned by several uids) look from inside, then creates a file as
# uid 1000 in its writable layer and shows its owner.
PROBE = ("cat /proc/self/uid_map > /out/$N.uid; cat /proc/self/gid_map > /out/$N.gid; "
         "ls -l /proc/self/ns/user > /out/$N.ns; ls -ln /owned > /out/$N.ls; "
         "touch /owned/new && chown 1000:1001 /owned/new && stat -c %u:%g /owned/new "
         "> /out/$N.new; echo done > /out/$N.done; exec sleep 600")


def load_image(scratch):
    files = ob.busybox_files(applets=APPLETS)
    files["owned"] = ob.Dir(mode=0o777)
    files["owned/root"] = ob.File(b"r\n", uid=0, gid=0)
    files["owned/app"] = ob.File(b"a\n", uid=1000, gid=1000)
    files["owned/db"] = ob.File(b"d\n", mode=0o600, uid=999, gid=998)
    files["owned/nobody"] = ob.File(b"n\n", uid=65534, gid=65534)
    load_oci_image(scratch, REF, files, {"Env": ["PATH=/bin"]})


def subid_map(user, path, own_id):
    """The container mapping base::container_mapping() builds, as
    /proc/PID/uid_map lines: 0 -> the user, 1.. -> the user's ranges."""
    lines = [(0, own_id, 1)]
    next_id = 1
    for line in open(path):
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] == user:
            lines.append((next_id, int(fields[1]), int(fields[2])))
            next_id += int(fields[2])
    if len(lines) == 1:
        pytest.skip(f"LOUD SKIP: {user} has no range in {path}")
    return lines


def parse_map(text):
    return [tuple(int(f) for f in line.split()) for line in text.splitlines() if line.strip()]


def ns_of(ls_line):
    return ls_line.strip().rsplit("->", 1)[1].strip()


def ppid_of(pid):
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def holders(scratch):
    """Live `--hold-userns` processes of this test's binaries."""
    ours = (str(scratch.launch_bin), str(scratch.bin))
    return [pid for pid, _, state, argv in processes()
            if "--hold-userns" in argv and argv[0] in ours and state not in ("Z", "X")]


def wait_probe(project, name):
    out = project.dir / "data"
    wait_until(lambda: (out / f"{name}.done").exists(), 60, 0.1, f"{name} probe written")
    return {k: (out / f"{name}.{k}").read_text() for k in ("uid", "gid", "ns", "ls", "new")}


def clear_probe(project, name):
    for path in (project.dir / "data").glob(f"{name}.*"):
        path.unlink()


def test_image_services_join_the_daemons_held_user_namespace(scratch):
    load_image(scratch)
    user = pwd.getpwnam(scratch.user)
    expected_uid = subid_map(scratch.user, "/etc/subuid", user.pw_uid)
    expected_gid = subid_map(scratch.user, "/etc/subgid", user.pw_gid)
    # One probe per service: its files are named after the service.
    project = Project(scratch, TOML.format(ref=REF, probe_a="N=a; " + PROBE,
                                           probe_b="N=b; " + PROBE))
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    a, b = wait_probe(project, "a"), wait_probe(project, "b")

    # The maps inside are the container mapping (as a fresh namespace's).
    for probe in (a, b):
        assert parse_map(probe["uid"]) == expected_uid, probe["uid"]
        assert parse_map(probe["gid"]) == expected_gid, probe["gid"]
    # Both containers share one user namespace: the holder's, a direct child
    # of the daemon.
    found = holders(scratch)
    assert len(found) == 1, found
    holder = found[0]
    daemon = ppid_of(holder)
    daemon_cmdline = pathlib.Path(f"/proc/{daemon}/cmdline").read_bytes()
    assert b"daemon" in daemon_cmdline, daemon_cmdline
    held = os.readlink(f"/proc/{holder}/ns/user")
    assert ns_of(a["ns"]) == ns_of(b["ns"]) == held, (a["ns"], b["ns"], held)
    assert held != os.readlink("/proc/self/ns/user")
    spec = next(scratch.home.rglob("services/holder/a/spec.json"))
    user_ns = json.loads(spec.read_text())["user_namespace"]
    assert user_ns.startswith(f"/proc/{daemon}/fd/"), user_ns
    assert os.readlink(user_ns) == held

    # File ownership through the held namespace equals a fresh namespace's
    # (`container run` maps its own): the image's uids, and a chown inside.
    fresh = scratch.run("container", "run", "--rm", "-v", f"{project.dir / 'data'}:/out", REF,
                        "/bin/sh", "-c", "N=fresh; " + PROBE.replace("; exec sleep 600", ""),
                        timeout=120)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    out = project.dir / "data"
    fresh_ls = (out / "fresh.ls").read_text()
    assert ns_of((out / "fresh.ns").read_text()) != held
    assert parse_map((out / "fresh.uid").read_text()) == expected_uid
    owners = sorted(tuple(line.split()[2:4]) for line in fresh_ls.splitlines()
                    if line.startswith("-"))
    assert owners == [("0", "0"), ("1000", "1000"), ("65534", "65534"), ("999", "998")], fresh_ls
    for probe in (a, b):
        assert probe["ls"] == fresh_ls, (probe["ls"], fresh_ls)
        assert probe["new"].strip() == (out / "fresh.new").read_text().strip() == "1000:1001"

    # The holder dies (killed): the daemon reaps it, running containers keep
    # their namespace, and the next start makes a new holder and joins it.
    os.kill(holder, signal.SIGKILL)
    wait_until(lambda: not pathlib.Path(f"/proc/{holder}").exists(), 30, 0.05,
               "the killed holder reaped by the daemon")
    assert project.status()["a"]["state"] == "running"
    r = project.run("stop", "b")
    assert r.returncode == 0, r.stdout + r.stderr
    clear_probe(project, "b")
    r = project.run("start", "b", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    b2 = wait_probe(project, "b")
    found = holders(scratch)
    assert len(found) == 1 and found[0] != holder, (found, holder)
    assert ppid_of(found[0]) == daemon
    new_held = os.readlink(f"/proc/{found[0]}/ns/user")
    assert ns_of(b2["ns"]) == new_held != held
    assert parse_map(b2["uid"]) == expected_uid and b2["ls"] == fresh_ls
    # The path in the specs did not change (same fd number, new namespace).
    assert os.readlink(user_ns) == new_held

    # `shutdown` leaves no holder.
    r = scratch.run("shutdown", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: holders(scratch) == [], 30, 0.05, "no holder after shutdown")


def test_launcher_refuses_a_namespace_mapped_otherwise(scratch):
    """A joinable namespace (ours, one level down) with another mapping — a
    single id, as `unshare --map-root-user` makes — is refused: the payload
    would see the image's files with the wrong owners."""
    if not scratch.launch_bin.exists():
        pytest.skip("LOUD SKIP: no locald-launch next to locald")
    subid_map(scratch.user, "/etc/subuid", 0)  # skips without a range
    single = popen_as(scratch.user, ["unshare", "--user", "--map-root-user", "sleep", "600"],
                      scratch.home)
    try:
        ns_path = f"/proc/{single.pid}/ns/user"
        deadline = time.time() + 10
        while (os.readlink(ns_path) == os.readlink("/proc/self/ns/user")
               or not open(f"/proc/{single.pid}/uid_map").read().strip()):
            assert time.time() < deadline, "unshare did not set up its namespace"
            time.sleep(0.05)
        spec = {"name": "wrong", "rootfs": {"path": str(scratch.rootfs)},
                "args": ["/bin/sh", "-c", "echo ran"], "env": ["PATH=/bin"],
                "user_namespace": ns_path}
        path = scratch.dir / "wrong.json"
        path.write_text(json.dumps(spec))
        os.chmod(path, 0o644)
        r = run_as(scratch.user, [str(scratch.launch_bin), str(path)], scratch.home)
        assert r.returncode != 0, r.stdout + r.stderr
        assert "ran" not in r.stdout
        assert "not as the containers' mapping" in r.stderr, r.stderr
        assert "refusing to run with other ids" in r.stderr, r.stderr
    finally:
        single.kill()
        single.wait()


def test_holder_ends_when_its_pipe_closes(scratch):
    """`locald-launch --hold-userns` on its own: reports `ready` with the
    container mapping in place, and exits when stdin reaches EOF."""
    if not scratch.launch_bin.exists():
        pytest.skip("LOUD SKIP: no locald-launch next to locald")
    user = pwd.getpwnam(scratch.user)
    expected_uid = subid_map(scratch.user, "/etc/subuid", user.pw_uid)
    proc = subprocess.Popen(as_user_argv(scratch.user, [str(scratch.launch_bin), "--hold-userns"]),
                            env=user_env(scratch.user, scratch.home), cwd="/tmp",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "ready\n", line + proc.stderr.read()
        # runuser may stay in between: find the holder itself.
        holder = proc.pid
        for pid, _, _, argv in processes():
            if argv[:2] == [str(scratch.launch_bin), "--hold-userns"]:
                holder = pid
        assert parse_map(open(f"/proc/{holder}/uid_map").read()) == expected_uid
        assert os.readlink(f"/proc/{holder}/ns/user") != os.readlink("/proc/self/ns/user")
        assert os.readlink(f"/proc/{holder}/cwd") == "/"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_holder_can_be_turned_off(scratch):
    """LOCALD_USERNS_HOLDER=0 in the daemon's environment: no holder, each
    container maps its own namespace with the same mapping."""
    load_image(scratch)
    user = pwd.getpwnam(scratch.user)
    expected_uid = subid_map(scratch.user, "/etc/subuid", user.pw_uid)
    project = Project(scratch, TOML.format(ref=REF, probe_a="N=a; " + PROBE,
                                           probe_b="N=b; " + PROBE))
    env = dict(user_env(scratch.user, scratch.home), LOCALD_USERNS_HOLDER="0")
    r = subprocess.run(as_user_argv(scratch.user, [str(scratch.bin), "up"]), env=env,
                       cwd=str(project.dir), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    a, b = wait_probe(project, "a"), wait_probe(project, "b")
    assert holders(scratch) == []
    assert ns_of(a["ns"]) != ns_of(b["ns"])
    assert parse_map(a["uid"]) == parse_map(b["uid"]) == expected_uid
    spec = next(scratch.home.rglob("services/holder/a/spec.json"))
    assert "user_namespace" not in json.loads(spec.read_text())
