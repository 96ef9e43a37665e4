"""Faults show up in `status` and the logs with the real reason, never as a hang."""
import socket

from host_util import PY, host, wait_until  # noqa: F401 (fixture)


def detail_line(host, name):
    for line in host.run("status", check=True).stdout.splitlines():
        if f":{name} " in line:
            return line
    raise AssertionError(f"{name} not in status")


def test_command_not_found_and_permission_denied(host):
    project = host.project("faults", """
        [service.missing]
        command = ["definitely-not-a-command-xyz"]
        port = false

        [service.noexec]
        command = ["./script.sh"]
        port = false

        [service.fine]
        command = "sleep 1000"
        port = false
    """, files={"script.sh": "#!/bin/sh\necho hi\n"})
    (project / "script.sh").chmod(0o644)
    result = host.run("up", project, timeout=60)
    assert result.returncode == 1, result
    status = {s["name"]: s for s in host.status()["services"]}
    assert status["missing"]["state"] == "failed"
    assert status["noexec"]["state"] == "failed"
    assert status["fine"]["state"] == "running"
    assert "not found" in detail_line(host, "missing").lower()
    assert "permission denied" in detail_line(host, "noexec").lower()
    assert "not found" in host.logs("missing").lower()
    assert "permission denied" in host.logs("noexec").lower()


def test_crash_loop_ends_failed(host):
    # `up` returns at the first crash (reported as restarting); the daemon goes
    # on restarting until max_restarts, then the service is failed.
    project = host.project("crashy", """
        [service.crash]
        command = "echo crashing; exit 2"
        port = false
        restart = "always"
        backoff = { initial = "50ms", max = "100ms" }
        max_restarts = 3
    """)
    result = host.run("up", project, timeout=120)
    assert result.returncode == 1, result
    service = host.wait_state("crash", "failed")
    assert service["restarts"] == 3
    assert service["exit_code"] == 2
    line = detail_line(host, "crash")
    assert "3" in line and "restart" in line.lower(), line
    logs = host.logs("crash")
    assert logs.count("crashing") == 4


def test_crash_before_up_is_reported_at_once_and_the_policy_goes_on(host):
    # Backoffs of ten minutes: an `up` that waited for `failed` would hit the
    # 60 s safety net below instead of returning.
    project = host.project("looping", """
        [service.crash]
        command = "echo 'boom: cannot open config.yml'; exit 3"
        port = false
        restart = "on-failure"
        backoff = { initial = "10m", max = "10m" }
        max_restarts = 4
        health_check = { exec = "true", interval = "1s" }

        [service.segv]
        command = "ulimit -c 0; echo about to crash; kill -SEGV $$"
        port = false
        restart = "always"
        backoff = { initial = "10m", max = "10m" }
        max_restarts = 2

        [service.web]
        command = "sleep 1000"
        port = false
        depends_on = { crash = "healthy" }

        [service.slow]
        command = "sleep 1.5; echo slow is ready; exec sleep 1000"
        port = false
        health_check = { log = "slow is ready", interval = "100ms", retries = 100 }

        [service.fine]
        command = "sleep 1000"
        port = false
    """)
    result = host.run("up", project, timeout=60)
    assert result.returncode == 1, result
    err = result.stderr
    assert "looping:crash exited before it was up: exited with code 3" in err, err
    assert "restart 1 of 4" in err, err
    assert "| boom: cannot open config.yml" in err, err
    assert "looping:segv exited before it was up: killed by SIGSEGV" in err, err
    assert "restart 1 of 2" in err and "| about to crash" in err, err
    assert "looping:web not started: it depends on looping:crash" in err, err
    status = {s["name"]: s for s in host.status()["services"]}
    # Services that do not depend on the crashing ones were waited for.
    assert status["slow"]["state"] == "ready", status["slow"]
    assert status["fine"]["state"] == "running", status["fine"]
    # The daemon keeps applying the restart policy: waiting out the backoff,
    # not failed.
    for name, code in (("crash", 3), ("segv", 128 + 11)):
        assert status[name]["state"] == "starting", status[name]
        assert status[name]["restarts"] == 1, status[name]
        assert status[name]["pid"] is None, status[name]
        assert status[name]["exit_code"] == code, status[name]
    assert status["web"]["state"] == "pending", status["web"]
    assert "restarting in" in host.logs("crash")
    # `restart` resets the counters and reports the new crash the same way.
    again = host.run("restart", "looping:crash", timeout=60)
    assert again.returncode == 1, again
    assert "exited with code 3" in again.stderr and "restart 1 of 4" in again.stderr, again
    assert host.logs("crash").count("boom: cannot open config.yml") == 2


def test_pinned_port_taken_names_the_holder(host):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        project = host.project("taken", f"""
            [service.web]
            command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
            port = {port}
        """)
        result = host.run("up", project, timeout=60)
        assert result.returncode == 1, result
        assert host.service("web")["state"] == "failed"
        line = detail_line(host, "web")
        assert str(port) in line and "in use" in line, line
        assert "pytest" in line or "python" in line, line  # the holder's command
    finally:
        holder.close()
