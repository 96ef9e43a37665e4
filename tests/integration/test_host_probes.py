"""Every readiness probe kind, and a probe that never passes."""
import pytest

from host_util import PY, host, wait_until  # noqa: F401 (fixture)

NOTIFY = """
    import os, socket, time
    time.sleep(0.3)
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", addr)
    print("notified", flush=True)
    time.sleep(1000)
"""


def test_every_probe_kind_gets_ready(host):
    project = host.project("probes", f"""
        [service.http]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
        health_check = {{ http = "/", interval = "200ms", retries = 100 }}

        [service.tcp]
        command = "sleep 0.5; exec {PY} -m http.server $PORT --bind 127.0.0.1"
        health_check = {{ tcp = true, interval = "200ms", retries = 100 }}

        [service.implicit]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"

        [service.exec]
        command = "sleep 0.5; touch ready.flag; exec sleep 1000"
        port = false
        health_check = {{ exec = "test -f ready.flag", interval = "200ms", retries = 100 }}

        [service.log]
        command = "sleep 0.3; echo 'server is UP now'; exec sleep 1000"
        port = false
        health_check = {{ log = "/is [A-Z]+ now/", interval = "200ms", retries = 100 }}

        [service.notify]
        command = ["{PY}", "-u", "notify.py"]
        port = false
        health_check = {{ notify = true, interval = "200ms", retries = 50 }}
    """, files={"notify.py": NOTIFY})
    result = host.run("up", project, timeout=120)
    assert result.returncode == 0, (result, host.daemon_log_tail())
    for service in host.status()["services"]:
        assert service["state"] == "ready", service
        assert service["ready_at"] is not None
    assert (project / "ready.flag").exists()
    assert "notified" in host.logs("notify")


def test_probe_that_never_passes_fails_with_the_reason(host):
    project = host.project("never", """
        [service.deaf]
        command = "sleep 1000"
        health_check = { tcp = true, interval = "100ms", timeout = "100ms", retries = 3 }
        restart = "no"
    """)
    result = host.run("up", project, timeout=120)
    assert result.returncode == 1, result
    service = host.service("deaf")
    assert service["state"] == "failed"
    human = host.run("status", check=True).stdout
    detail = human.splitlines()[1]
    assert "deaf" in detail and ("refused" in detail.lower() or "probe" in detail.lower()), human
    assert "deaf" in result.stderr
