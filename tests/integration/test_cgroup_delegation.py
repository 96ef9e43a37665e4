"""The daemon in a cgroup v2 subtree delegated to the unprivileged test user,
the way systemd's Delegate=yes delegates one (the directory and its
cgroup.procs, cgroup.subtree_control and cgroup.threads chowned to the user)
and with the daemon alone in it, as a unit or `systemd-run --user -p
Delegate=yes locald daemon` runs it. Every run — host service or container —
gets its own cgroup below `<delegated>/locald-<daemon pid>`; the container
sees its own cgroup as `/` (cgroup namespace); a limit the machine cannot
apply is named in the service's log with why; `stop` removes the run's
cgroups; a daemon killed with SIGKILL has its whole subtree ended by the next
one. Which controllers the run cgroups get, and the daemon's and launcher's
moves into leaves, are tested on the real kernel by
tests/host/cgroup_delegation_test.cc and tests/ns/cgroup_test.cc."""
import os
import pathlib
import signal
import subprocess

import pytest

import oci_build as ob
from host_util import wait_until
from image_util import Project, load_image
from image_util import scratch  # noqa: F401 (the fixture)
from ns_util import as_user_argv, user_env

REF = "localhost/cgroup-test:1"


def cgroup2_mount():
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        if " - cgroup2 " in line:
            return pathlib.Path(line.split()[4])
    return None


def v2_cgroup_of(pid):
    """The process's cgroup v2 path (as /proc/<pid>/cgroup names it), or None."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        return None
    return None


def procs_under(directory):
    """Pids in `directory` and every cgroup below it."""
    pids = []
    for procs in directory.rglob("cgroup.procs"):
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            pass
    return pids


def remove_cgroup_tree(directory):
    if not directory.exists():
        return
    try:
        (directory / "cgroup.kill").write_text("1")
    except OSError:
        pass
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
        wait_until(lambda: _rmdir(child), timeout=10, what=f"removing {child}")
    wait_until(lambda: _rmdir(directory), timeout=10, what=f"removing {directory}")


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


@pytest.fixture
def delegated(scratch):
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: needs root to delegate a cgroup v2 subtree to the test user "
                    "(as systemd does for a unit with Delegate=yes)")
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("SKIPPED LOUDLY: this machine has no cgroup2 mount")
    directory = mount / f"locald-test-delegated-{os.getpid()}-{scratch.dir.name}"
    directory.mkdir()
    for path in (directory, directory / "cgroup.procs", directory / "cgroup.subtree_control",
                 directory / "cgroup.threads"):
        subprocess.run(["chown", f"{scratch.user}:{scratch.user}", str(path)], check=True)
    yield directory
    remove_cgroup_tree(directory)


class Daemon:
    """`locald daemon` as the test user, alone in the delegated cgroup: root
    moves the shell there, which then execs setpriv → locald (no fork)."""

    def __init__(self, scratch, cgroup):
        self.log = scratch.dir / f"daemon-{len(list(scratch.dir.glob('daemon-*.log')))}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup),
                 *as_user_argv(scratch.user, [str(scratch.bin), "daemon"])],
                env=user_env(scratch.user, scratch.home), stdout=log, stderr=log)
        self.socket = scratch.home / "run" / "daemon.sock"
        wait_until(lambda: self.socket.exists() or self.process.poll() is not None,
                   timeout=30, what="the daemon's socket")
        assert self.process.poll() is None, self.log.read_text()
        self.pid = self.process.pid
        self.parent = cgroup / f"locald-{self.pid}"

    def text(self):
        return self.log.read_text()


def load_busybox(scratch):
    load_image(scratch, REF, ob.busybox_files(applets=("sh", "cat", "echo", "sleep")),
               {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


TOML = f"""
[project]
name = "cg"

[service.host]
command = "exec sleep 600"
port = false

[service.box]
image = "{REF}"
command = "cat /proc/self/cgroup > /out/cgroup.txt; echo box is up; exec sleep 600"
volumes = ["./data:/out"]
resources = {{ memory = "64M", pids = 32 }}
port = false
"""


def run_dirs(parent, service):
    return sorted(parent.glob(f"cg_{service}-*")) if parent.exists() else []


def test_runs_and_containers_get_cgroups_in_the_delegated_subtree(scratch, delegated):
    load_busybox(scratch)
    daemon = Daemon(scratch, delegated)
    mount = cgroup2_mount()
    relative = "/" + str(daemon.parent.relative_to(mount))
    assert f"each run gets a cgroup under `{daemon.parent}`" in daemon.text()
    project = Project(scratch, TOML)
    try:
        r = project.run("up", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + daemon.text()
        status = wait_until(lambda: (s := project.status())["box"]["state"] == "running" and s,
                            timeout=60, what="box running")

        # The host service's process is in its run's cgroup.
        host_cgroup = v2_cgroup_of(status["host"]["pid"])
        assert host_cgroup and host_cgroup.startswith(relative + "/cg_host-"), host_cgroup

        # The container: its launcher and payload are in the box run's cgroup
        # (or below it), and the payload sees that cgroup as its root.
        [box_run] = run_dirs(daemon.parent, "box")
        out = project.dir / "data" / "cgroup.txt"
        wait_until(out.exists, timeout=30, what="the container's /proc/self/cgroup")
        v2_line = [line for line in out.read_text().splitlines() if line.startswith("0::")]
        assert v2_line == ["0::/"], out.read_text()
        members = procs_under(box_run)
        assert status["box"]["pid"] in members
        payload = [p for p in members
                   if pathlib.Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[:2] ==
                   [b"sleep", b"600"]]
        assert payload, f"no container payload among {members}"

        # Each limit this machine cannot apply is named, with why.
        logs = project.run("logs", "box").stdout
        controllers = (mount / "cgroup.controllers").read_text().split()
        for controller, limit in (("memory", "memory limit (64 MiB)"), ("pids", "pids limit (32)")):
            if controller in controllers:
                continue  # a pure v2 host: the next assertion checks it is applied
            assert f"{limit} is not applied" in logs, logs
        for controller, value in (("memory", str(64 << 20)), ("pids", "32")):
            if controller in controllers:
                files = list(box_run.rglob(f"{controller}.max"))
                assert any(f.read_text().strip() == value for f in files), files

        # stop ends every process of the run and removes its cgroups.
        r = project.run("stop", "box")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not box_run.exists(), timeout=30, what=f"{box_run} removed")
        assert all(not pathlib.Path(f"/proc/{p}").exists() for p in payload)
    finally:
        project.run("down", timeout=90)
    r = scratch.run("shutdown", timeout=90)
    assert r.returncode == 0, r.stderr
    daemon.process.wait(timeout=30)
    assert not daemon.parent.exists(), list(daemon.parent.rglob("*"))


def test_a_killed_daemons_subtree_is_ended_by_the_next(scratch, delegated):
    load_busybox(scratch)
    daemon = Daemon(scratch, delegated)
    project = Project(scratch, TOML)
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + daemon.text()
    wait_until(lambda: project.status()["box"]["state"] == "running", timeout=60,
               what="box running")
    old = procs_under(daemon.parent)
    assert len(old) >= 3, old  # the host service, the launcher, the container's processes

    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=30)
    # Leftovers are still there (the container ignores the PTY hangup) or
    # already dying; either way the next daemon must end them all.
    successor = Daemon(scratch, delegated)
    try:
        wait_until(lambda: not daemon.parent.exists(), timeout=30,
                   what=f"the killed daemon's {daemon.parent} removed")
        for pid in old:
            wait_until(lambda pid=pid: v2_cgroup_of(pid) is None or
                       not v2_cgroup_of(pid).startswith(
                           "/" + str(daemon.parent.relative_to(cgroup2_mount()))),
                       timeout=30, what=f"leftover pid {pid} gone")
        # The services come back under the new daemon's subtree.
        wait_until(lambda: project.status()["box"]["state"] == "running", timeout=60,
                   what="box running again")
        assert run_dirs(successor.parent, "box")
    finally:
        project.run("down", timeout=90)
        scratch.run("shutdown", timeout=90)
        successor.process.wait(timeout=30)
