"""Dump Layer end to end, as the unprivileged test user: a builder image built
by oci_build (busybox + /cnb/order.toml + a shell buildpack, cnb_util.py) is
`locald image load`ed; `locald provision` runs detect and build through the
rootless launcher and dumps the launch layer and the app under
<data>/provisioned; a second run reuses it offline; a failing detect names the
phase, the buildpack and its output; `locald up` runs the `web` process on the
host with the layer env rewritten to the dump (mode "host"), or — the default
mode "container" — in a rootless container of the builder's rootfs with the
dump bound at /layers and /workspace."""
import json
import os
import pathlib
import subprocess
import urllib.request

import pytest

from cnb_util import load_builder
from host_util import wait_until
from image_util import Project, processes
from image_util import scratch  # noqa: F401 (the fixture)
from ns_util import popen_as

TOML = """
[project]
name = "cnbproj"

[service.web]
build = {{ builder = "{ref}", env = {{ BP_GREETING = "hello-build-env" }}, mode = "host" }}
port = {port}
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(scratch, port=None):
    ref = load_builder(scratch)
    project = Project(scratch, TOML.format(ref=ref, port=port or free_port()))
    (project.dir / "hello.txt").write_text("hello from the app\n")
    (project.dir / ".git").mkdir()
    (project.dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{scratch.user}:{scratch.user}", str(project.dir)],
                       check=True)
    return project


def dump_of(scratch):
    return scratch.home / "data" / "provisioned" / "cnbproj" / "web"


def test_provision_builds_dumps_and_reuses_offline(scratch):
    project = make_project(scratch)
    r = project.run("provision", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web: detect: group: examples/hello@0.1.0" in r.stdout, r.stdout
    assert "building in /workspace as 1002:1003" in r.stdout, r.stdout
    dump = dump_of(scratch)
    assert f"web: process web: serve (cwd {dump}/app)" in r.stdout, r.stdout
    assert f"web: executable {dump}/layers/examples_hello/web/bin/serve" in r.stdout, r.stdout
    # The launch layer and its toml, metadata.toml, the built app (no .git);
    # the build-only layer is not dumped.
    assert (dump / "layers" / "examples_hello" / "web" / "bin" / "serve").is_file()
    assert (dump / "layers" / "examples_hello" / "web.toml").is_file()
    assert not (dump / "layers" / "examples_hello" / "build-only").exists()
    assert "web" in (dump / "layers" / "config" / "metadata.toml").read_text()
    assert (dump / "app" / "hello.txt").read_text() == "hello from the app\n"
    assert (dump / "app" / "built.txt").read_text() == "hello-build-env"
    assert not (dump / "app" / ".git").exists()
    # Everything in the dump belongs to the user (not to a subordinate id).
    uid = int(subprocess.run(["id", "-u", scratch.user], capture_output=True, text=True,
                             check=True).stdout)
    for path in [dump, *dump.rglob("*")]:
        assert path.lstat().st_uid == uid, path
    info = json.loads((dump / "provision.json").read_text())
    assert info["group"] == ["examples/hello@0.1.0"]
    assert info["builder_digest"].startswith("sha256:")

    # Unchanged: reused, offline, nothing rebuilt.
    before = (dump / "provision.json").stat().st_ino
    r = project.run("provision", "--offline", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web: up to date" in r.stdout, r.stdout
    assert "building" not in r.stdout, r.stdout
    assert (dump / "provision.json").stat().st_ino == before

    # A changed app file rebuilds (and the dump is replaced whole).
    (project.dir / "hello.txt").write_text("changed\n")
    r = project.run("provision", "--offline", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web: provisioned" in r.stdout, r.stdout
    assert (dump / "app" / "hello.txt").read_text() == "changed\n"
    leftovers = [p.name for p in dump.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_provision_failing_detect_names_phase_buildpack_and_output(scratch):
    project = make_project(scratch)
    (project.dir / "hello.txt").unlink()
    r = project.run("provision", timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "service web: detect: no buildpack group passed" in r.stderr, r.stderr
    assert "examples/hello@0.1.0 exited 100" in r.stderr, r.stderr
    assert "this app is not for examples/hello" in r.stderr, r.stderr
    assert not dump_of(scratch).exists()


def test_provision_missing_builder_offline_is_bad_input(scratch):
    project = Project(scratch, TOML.format(ref="registry.test/absent:1", port=free_port()))
    r = project.run("provision", "--offline", timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "builder `registry.test/absent:1` is not in the local store" in r.stderr, r.stderr


UP_TOML = """
[project]
name = "cnbproj"

[env]
FROM_PROJECT = "project"

[service.web]
build = {{ builder = "{ref}", env = {{ BP_GREETING = "hello-build-env" }}, mode = "host" }}
port = {port}
"""


def proc_env(pid):
    raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


def test_up_runs_the_dump_on_the_host(scratch):
    port = free_port()
    project = make_project(scratch)
    project.write_toml(UP_TOML.format(ref="registry.test/builder:1", port=port))
    # Not provisioned yet: `up` provisions through the service's run.
    r = project.run("up", timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + project.daemon_log()
    web = project.status()["web"]
    assert web["state"] == "ready", out
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10).read()
    assert body == b"hello from the app\n"
    dump = dump_of(scratch)
    # The supervised pid is the host process itself (busybox httpd, exec'd by
    # the layer's serve script), running in the dump's app dir, as the user.
    pid = web["pid"]
    assert pathlib.Path(f"/proc/{pid}/comm").read_text().strip() in ("httpd", "busybox")
    assert os.readlink(f"/proc/{pid}/cwd") == str(dump / "app")
    uid = int(subprocess.run(["id", "-u", scratch.user], capture_output=True, text=True,
                             check=True).stdout)
    assert os.stat(f"/proc/{pid}").st_uid == uid
    env = proc_env(pid)
    layer = dump / "layers" / "examples_hello" / "web"
    assert env["WEB_HOME"] == str(layer)
    assert env["PATH"].split(":")[0] == str(layer / "bin")
    assert env["GREETING"] == "hi"
    assert env["PORT"] == str(port)
    assert env["FROM_PROJECT"] == "project"
    assert "CNB_PLATFORM_API" not in env
    logs = project.run("logs", "--no-color", "web").stdout
    # Built by the daemon's `__provision` child (progress in the log), then
    # run by `__run-provisioned`, which found the dump current.
    assert "provisioning: detect: group: examples/hello@0.1.0" in logs, logs
    assert "provisioning: build: building in /workspace as 1002:1003" in logs, logs
    assert "locald: provision: reuse:" in logs, logs
    # `up` showed the provisioning progress while the service was starting.
    assert "cnbproj:web: starting — provisioning: detect: group: examples/hello@0.1.0" in out, out
    assert f"serving hello from the app on {port}" in logs, logs

    r = project.run("stop", "web", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert project.status()["web"]["state"] == "stopped"
    wait_until(lambda: not pathlib.Path(f"/proc/{pid}").exists() or
               pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X"),
               30, 0.05, "httpd gone")
    # Started again: the dump is current, so it is reused (no build output).
    r = project.run("start", "web", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: project.status()["web"]["state"] == "ready", 60, 0.2, "web ready again")
    logs = project.run("logs", "--no-color", "web").stdout
    assert logs.count("provisioning: build: running") == 1, logs  # built once
    assert logs.count("provisioning: reuse:") == 1, logs
    second = project.status()["web"]["pid"]
    r = project.run("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: not pathlib.Path(f"/proc/{second}").exists() or
               pathlib.Path(f"/proc/{second}/stat").read_text().split()[2] in ("Z", "X"),
               30, 0.05, "second httpd gone")
    leftover = [p for p, _, _, argv in processes() if argv and "__run-provisioned" in argv]
    assert leftover == []


def test_build_env_values_never_reach_a_command_line(scratch):
    """build.env may hold credentials: the daemon hands them to its provision
    children in a 0600 file in a 0700 dir, never on a command line that every
    local user can read in `ps`."""
    project = make_project(scratch)
    project.write_toml(UP_TOML.format(ref="registry.test/builder:1", port=free_port()))
    up = popen_as(scratch.user, [str(scratch.bin), "up"], scratch.home, cwd=str(project.dir))
    seen = []
    while up.poll() is None:
        for pid, _, _, argv in processes():
            if any("hello-build-env" in arg for arg in argv):
                seen.append((pid, argv))
    out, err = up.communicate()
    assert up.returncode == 0, out + err + project.daemon_log()
    assert not seen, seen
    files = list((scratch.home / "data" / "services").glob("*/web/build-env-*.json"))
    assert len(files) == 1, files
    assert os.stat(files[0]).st_mode & 0o777 == 0o600
    assert os.stat(files[0].parent).st_mode & 0o777 == 0o700
    assert json.loads(files[0].read_text()) == {"BP_GREETING": "hello-build-env"}
    # ... and the build got them (the buildpack writes BP_GREETING into the app).
    assert (dump_of(scratch) / "app" / "built.txt").read_text() == "hello-build-env"
    project.run("down", timeout=90)


def test_up_with_a_failing_detect_fails_the_service_with_the_reason(scratch):
    project = make_project(scratch)
    project.write_toml(TOML.format(ref="registry.test/builder:1", port=free_port()))
    (project.dir / "hello.txt").unlink()
    r = project.run("up", timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out + project.daemon_log()
    assert "service web: detect: no buildpack group passed" in out, out
    assert "examples/hello@0.1.0 exited 100" in out, out
    web = project.status()["web"]
    assert web["state"] == "failed" and web["pid"] is None, web
    logs = project.run("logs", "--no-color", "web").stdout
    assert "this app is not for examples/hello" in logs, logs
    assert not dump_of(scratch).exists()
    r = project.run("down", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


CONTAINER_TOML = """
[project]
name = "cnbproj"

[env]
FROM_PROJECT = "{from_project}"

[service.web]
build = {{ builder = "{ref}", env = {{ BP_GREETING = "hello-build-env" }} }}
port = {port}

[service.probe]
build = {{ builder = "{ref}" }}
port = false
health_check = {{ log = "tmp-write=ok" }}
command = "touch /probe; echo root-write=$?; touch /workspace/probe; echo app-write=$?; touch /tmp/probe && echo tmp-write=ok; exec sleep 600"
"""


def processes_of(pid):
    return [a for p, _, _, argv in processes() if p == pid for a in argv]


def children_of(pid):
    return [p for p, ppid, _, _ in processes() if ppid == pid]


def container_process(launcher):
    """The container's payload (the layer's serve script exec'd into httpd):
    the launcher's descendant in another mount namespace."""
    try:
        own = os.readlink(f"/proc/{launcher}/ns/mnt")
    except OSError:
        return None
    queue = children_of(launcher)
    while queue:
        pid = queue.pop(0)
        try:
            comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            if os.readlink(f"/proc/{pid}/ns/mnt") != own and comm in ("httpd", "busybox"):
                return pid
        except OSError:
            continue
        queue += children_of(pid)
    return None


def gone(pid):
    return (not pathlib.Path(f"/proc/{pid}").exists() or
            pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X"))


def test_up_runs_the_default_mode_in_a_container_of_the_builder(scratch):
    port = free_port()
    project = make_project(scratch)
    project.write_toml(CONTAINER_TOML.format(ref="registry.test/builder:1", port=port,
                                             from_project="project"))
    r = project.run("up", timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + project.daemon_log()
    web = project.status()["web"]
    assert web["state"] == "ready", out
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10).read()
    assert body == b"hello from the app\n"
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/built.txt", timeout=10).read()
    assert body == b"hello-build-env"

    # The supervised pid is the launcher; the process is its child in a user
    # namespace other than the daemon's, rooted in the builder's rootfs.
    launcher = web["pid"]
    holder = wait_until(lambda: container_process(launcher), 30, 0.05, "the container process")
    [daemon] = [ppid for p, ppid, _, _ in processes() if p == launcher]
    assert "daemon" in " ".join(list(processes_of(daemon))), daemon
    daemon_ns = os.readlink(f"/proc/{daemon}/ns/user")
    assert os.readlink(f"/proc/{holder}/ns/user") != daemon_ns
    root = pathlib.Path(f"/proc/{holder}/root")
    builders = scratch.home / "data" / "builds" / "builders"
    [builder_rootfs] = [d / "rootfs" for d in builders.iterdir() if (d / "rootfs").is_dir()]
    assert (root / "cnb" / "order.toml").read_text() == \
        (builder_rootfs / "cnb" / "order.toml").read_text()
    assert os.readlink(f"/proc/{holder}/cwd") == "/workspace"
    assert (root / "layers" / "examples_hello" / "web" / "bin" / "serve").is_file()
    assert (root / "workspace" / "hello.txt").read_text() == "hello from the app\n"
    # As the builder's CNB user (1002:1003 inside: a subordinate id outside).
    uid = int(subprocess.run(["id", "-u", scratch.user], capture_output=True, text=True,
                             check=True).stdout)
    status = pathlib.Path(f"/proc/{holder}/status").read_text()
    host_uid = int(next(line for line in status.splitlines()
                        if line.startswith("Uid:")).split()[1])
    assert host_uid != uid and host_uid != 0, status
    uid_map = pathlib.Path(f"/proc/{holder}/uid_map").read_text().split()
    mapped = [(int(a), int(b), int(c)) for a, b, c in zip(*[iter(uid_map)] * 3)]
    assert any(a <= 1002 < a + c and b + 1002 - a == host_uid for a, b, c in mapped), (
        mapped, host_uid)
    # The launch env in its container form: /layers paths, not the dump's.
    env = proc_env(holder)
    layer = "/layers/examples_hello/web"
    assert env["WEB_HOME"] == layer
    assert env["PATH"].split(":")[0] == layer + "/bin"
    assert env["GREETING"] == "hi"
    assert env["PORT"] == str(port)
    assert env["FROM_PROJECT"] == "project"
    assert "CNB_PLATFORM_API" not in env
    assert str(dump_of(scratch)) not in "\n".join(env.values())
    logs = project.run("logs", "--no-color", "web").stdout
    assert "provisioning: build: building in /workspace as 1002:1003" in logs, logs
    assert f"serving hello from the app on {port}" in logs, logs
    # The rootfs is read-only: nothing the container does lands in the builder
    # (nor in the dump); /tmp is its own. `command` replaces the process.
    probe_logs = wait_until(
        lambda: (lambda t: "tmp-write=ok" in t and t)(
            project.run("logs", "--no-color", "probe").stdout), 30, 0.2, "the probe's output")
    assert "root-write=1" in probe_logs and "app-write=1" in probe_logs, probe_logs
    assert not (builder_rootfs / "probe").exists()
    assert not (builder_rootfs / "workspace" / "served-env").exists()
    assert not (builder_rootfs / "layers" / "examples_hello").exists()
    assert not (dump_of(scratch) / "app" / "served-env").exists()

    # A config change while up: stopped, provisioned (rebuilt: locald.toml is
    # an app file too) and started again with a new spec.
    project.write_toml(CONTAINER_TOML.format(ref="registry.test/builder:1", port=port,
                                             from_project="changed"))
    r = project.run("up", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    wait_until(lambda: project.status()["web"]["state"] == "ready", 60, 0.2, "web ready")
    changed = wait_until(lambda: container_process(project.status()["web"]["pid"]), 30, 0.05,
                         "the changed container")
    assert changed != holder and gone(holder)
    assert proc_env(changed)["FROM_PROJECT"] == "changed"
    holder, launcher = changed, project.status()["web"]["pid"]

    # The process dies: the restart policy starts the container again (same
    # spec, no provision).
    os.kill(holder, 9)
    wait_until(lambda: project.status()["web"]["restarts"] >= 1, 60, 0.1, "a restart")
    wait_until(lambda: project.status()["web"]["state"] == "ready", 60, 0.2, "ready again")
    revived = wait_until(lambda: container_process(project.status()["web"]["pid"]), 30, 0.05,
                         "the restarted container")
    assert revived != holder and proc_env(revived)["FROM_PROJECT"] == "changed"
    holder, launcher = revived, project.status()["web"]["pid"]

    # `locald provision` shows the process in the same (container) form.
    r = project.run("provision", "web", "--offline", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("web: process web: serve (cwd /workspace, in a container of the builder)"
            in r.stdout), r.stdout

    # The spec the launcher runs: 0600 in the service's 0700 dir.
    service_dir = scratch.home / "data" / "services" / "cnbproj" / "web"
    assert (service_dir / "spec.json").stat().st_mode & 0o777 == 0o600
    assert service_dir.stat().st_mode & 0o777 == 0o700

    r = project.run("stop", "web", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert project.status()["web"]["state"] == "stopped"
    wait_until(lambda: gone(holder) and gone(launcher), 30, 0.05, "the container gone")
    # Its spec and generated files are removed with it; the builder stays.
    wait_until(lambda: not service_dir.exists(), 30, 0.05, "the service dir removed")
    assert (builder_rootfs / "cnb" / "order.toml").is_file()
    # Started again: the dump is reused, the container runs again.
    r = project.run("start", "web", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: project.status()["web"]["state"] == "ready", 60, 0.2, "web ready again")
    logs = project.run("logs", "--no-color", "web").stdout
    # Built at `up` and after the config change; reused at `start`.
    assert logs.count("provisioning: build: running") == 2, logs
    assert logs.count("provisioning: reuse:") == 1, logs
    second = project.status()["web"]["pid"]
    inner = wait_until(lambda: container_process(second), 30, 0.05, "the second container")
    r = project.run("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: gone(second) and gone(inner), 30, 0.05, "the second container gone")
    services = scratch.home / "data" / "services" / "cnbproj"
    wait_until(lambda: not any(services.iterdir()) if services.exists() else True, 30, 0.05,
               "the service dirs removed")
    # Nothing of the service is left: no provision, no launcher (the daemon's
    # user-namespace holder, --hold-userns, lives as long as the daemon).
    leftover = [(p, argv) for p, _, _, argv in processes()
                if argv and "--hold-userns" not in argv and
                any("__provision" in a or "__launch" in a or "locald-launch" in a
                    for a in argv)]
    assert leftover == []


def test_container_mode_refuses_exec_d_naming_the_program(scratch):
    project = make_project(scratch)
    project.write_toml(f"""
[project]
name = "cnbproj"

[service.web]
build = {{ builder = "registry.test/builder:1", env = {{ BP_EXECD = "1" }} }}
port = {free_port()}
""")
    r = project.run("up", timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out + project.daemon_log()
    assert "the process needs exec.d programs (/layers/examples_hello/web/exec.d/hello)" in out, out
    assert 'build mode "container" does not run them yet; use mode = "host"' in out, out
    assert project.status()["web"]["state"] == "failed"
    leftover = [p for p, _, _, argv in processes()
                if argv and "--hold-userns" not in argv and
                any("__provision" in a or "__launch" in a or "locald-launch" in a for a in argv)]
    assert leftover == []
    r = project.run("down", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
