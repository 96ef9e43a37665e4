"""kill -9 of the daemon: its services end with it, the next daemon restores
them on the same ports, never two copies."""
import os
import signal

from host_util import PY, host, pid_alive, processes_with_env, wait_until  # noqa: F401


def copies(host, name):
    """Live processes whose environment says they are service `name` of this test."""
    mine = set(processes_with_env("LOCALD_TEST_MARKER", host.marker))
    return sorted(p for p in processes_with_env("LOCALD_SERVICE", name) if p in mine)


def test_kill_daemon_then_up_same_ports_no_duplicates(host):
    project = host.project("phoenix", f"""
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"

        [service.worker]
        # Ignores SIGHUP: only the parent-death signal (or the next daemon's
        # leftover sweep) can end it.
        command = "trap '' HUP; while :; do sleep 0.2; done"
        port = false
    """)
    host.run("up", project, check=True)
    before = {s["name"]: s for s in host.status()["services"]}
    daemon = host.daemon_pid()
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not pid_alive(daemon), what="daemon gone")
    # The PTY hangup ends the web server (default SIGHUP).
    wait_until(lambda: not pid_alive(before["web"]["pid"]), what="web ended by the hangup")
    # The worker ignores the hangup: the parent-death signal (SIGKILL) ends its
    # main process without waiting for a next daemon.
    wait_until(lambda: not pid_alive(before["worker"]["pid"]),
               what="worker ended by the parent-death signal")

    result = host.run("up", project, check=True)
    assert host.daemon_pid() != daemon
    after = {s["name"]: s for s in host.status()["services"]}
    assert after["web"]["state"] == "ready"
    assert after["web"]["port"] == before["web"]["port"]
    assert after["web"]["pid"] != before["web"]["pid"]
    assert after["worker"]["state"] == "running"
    # The worker that ignored the hangup was ended, not duplicated.
    assert not pid_alive(before["worker"]["pid"])
    assert copies(host, "web") == [after["web"]["pid"]]
    worker_copies = copies(host, "worker")
    assert after["worker"]["pid"] in worker_copies
    # Only the new worker's shell and its current `sleep` child may exist.
    for pid in worker_copies:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        assert int(stat[3]) == after["worker"]["pid"] or pid == after["worker"]["pid"]  # session


def test_restart_of_daemon_restores_desired_state_only(host):
    project = host.project("desired", """
        [service.a]
        command = "sleep 1000"
        port = false
        [service.b]
        command = "sleep 1000"
        port = false
    """)
    host.run("up", project, check=True)
    host.run("stop", "b", cwd=project, check=True)
    daemon = host.daemon_pid()
    os.kill(daemon, signal.SIGTERM)  # graceful: services stop, desired state kept
    wait_until(lambda: not pid_alive(daemon), what="daemon exit on SIGTERM")
    states = {s["name"]: s["state"] for s in host.status()["services"]}  # autostarts a new one
    assert states["a"] in ("starting", "running")
    assert states["b"] in ("pending", "stopped") or "b" not in states
