"""Helpers for the host-service integration tests (tests/integration/test_host_*.py).

Every test gets its own LOCALD_HOME (conftest's `locald_home`) and therefore its
own daemon; the `host` fixture always runs `locald shutdown` at teardown and then
checks that no process started from the test's project dirs survives."""
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

# Generous but bounded: the machine has 2 cores and runs other suites too.
WAIT = 60.0

# The services run this interpreter directly (no pyenv shim: faster, and the
# same one everywhere).
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def parse_time(text):
    """RFC 3339 UTC with milliseconds, as `status --json` writes it."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def wait_until(predicate, timeout=WAIT, interval=0.05, what="condition"):
    """Polls `predicate` until it returns a truthy value; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def processes_with_env(key, value):
    """Pids of live processes whose environment has KEY=VALUE (our own markers)."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class Host:
    """Drives the real binary for one test: `locald` with an isolated LOCALD_HOME."""

    def __init__(self, binary, home, tmp_path):
        self.binary = str(binary)
        self.home = pathlib.Path(home)
        self.tmp = pathlib.Path(tmp_path)
        # A marker every service of this test inherits, to find leftovers by env.
        self.marker = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"

    def env(self, extra=None):
        env = dict(os.environ)
        env["LOCALD_HOME"] = str(self.home)
        env["LOCALD_TEST_MARKER"] = self.marker
        env.pop("NO_COLOR", None)
        env.update(extra or {})
        return env

    def run(self, *args, cwd=None, timeout=60, check=False, env=None, input=None):
        result = subprocess.run([self.binary, *map(str, args)], cwd=cwd, env=self.env(env),
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"locald {' '.join(map(str, args))} exited "
                                 f"{result.returncode}:\nstdout:\n{result.stdout}\n"
                                 f"stderr:\n{result.stderr}\n{self.daemon_log_tail()}")
        return result

    def popen(self, *args, cwd=None, env=None, **kwargs):
        return subprocess.Popen([self.binary, *map(str, args)], cwd=cwd, env=self.env(env),
                                **kwargs)

    def project(self, name, toml, files=None):
        """Creates a project dir with `locald.toml` (dedented) and extra files."""
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "locald.toml").write_text(textwrap.dedent(toml).lstrip())
        for relative, content in (files or {}).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content).lstrip())
            if relative.endswith(".sh"):
                target.chmod(0o755)
        return path

    def status(self):
        result = self.run("status", "--json", check=True)
        return json.loads(result.stdout)

    def service(self, name, project=None):
        for service in self.status()["services"]:
            if service["name"] == name and (project is None or service["project"] == project):
                return service
        return None

    def wait_state(self, name, states, timeout=WAIT):
        if isinstance(states, str):
            states = (states,)

        def check():
            service = self.service(name)
            return service if service and service["state"] in states else None

        return wait_until(check, timeout, 0.1, f"service {name} in {states}")

    def logs(self, *args):
        return self.run("logs", "--no-color", *args, check=True).stdout

    def daemon_log_tail(self, lines=40):
        path = self.home / "state" / "daemon.log"
        try:
            return "daemon.log tail:\n" + "\n".join(path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no daemon.log)"

    def daemon_pid(self):
        try:
            return int((self.home / "run" / "daemon.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def shutdown(self):
        result = self.run("shutdown", timeout=90)
        return result


@pytest.fixture
def host(locald_bin, locald_home, tmp_path):
    h = Host(locald_bin, locald_home, tmp_path)
    yield h
    h.shutdown()
    pid = h.daemon_pid()
    if pid is not None:
        wait_until(lambda: not pid_alive(pid), 30, what="daemon exit after shutdown")
    # Nothing any service of this test started may survive shutdown.
    deadline = time.monotonic() + 30
    while processes_with_env("LOCALD_TEST_MARKER", h.marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = processes_with_env("LOCALD_TEST_MARKER", h.marker)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes left after `locald shutdown`: {leftovers}"
