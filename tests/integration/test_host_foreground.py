"""`up --foreground`: no daemon, prefixed logs here, Ctrl-C stops everything."""
import os
import signal
import subprocess
import time

from host_util import PY, host, pid_alive, processes_with_env, wait_until  # noqa: F401


def test_foreground_ctrl_c_stops_everything(host):
    project = host.project("fg", f"""
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
        health_check = {{ tcp = true, interval = "200ms", retries = 100 }}

        [service.ticker]
        command = "while :; do echo tick; sleep 0.2; done"
        port = false
        depends_on = {{ web = "healthy" }}
    """)
    proc = host.popen("up", "--foreground", project, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output = b""
        deadline = time.monotonic() + 60
        while b"ticker | tick" not in output and time.monotonic() < deadline:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            output += chunk
        assert b"ticker | tick" in output, output
        assert b"web    | Serving HTTP" in output or b"web | Serving HTTP" in output, output
        # No daemon was started.
        assert not (host.home / "run" / "daemon.sock").exists()
        services = processes_with_env("LOCALD_TEST_MARKER", host.marker)
        assert services
        # Ctrl-C as a terminal sends it: SIGINT to the whole foreground group.
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert not [p for p in services if pid_alive(p)]


def test_foreground_exit_status_of_the_run(host):
    project = host.project("fgrun", """
        [service.ok]
        command = "echo fine"
        port = false
        restart = "no"
        [service.bad]
        command = "echo broken; exit 4"
        port = false
        restart = "no"
    """)
    result = host.run("up", "--foreground", project, timeout=60)
    assert result.returncode == 1, result
    assert "ok  | fine" in result.stdout
    assert "bad | broken" in result.stdout
    (project / "locald.toml").write_text("""
[service.ok]
command = "echo fine"
port = false
restart = "no"
""")
    result = host.run("up", "--foreground", project, timeout=60)
    assert result.returncode == 0, result
