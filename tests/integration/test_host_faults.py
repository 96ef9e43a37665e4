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
