"""A stopped service leaves nothing behind — not even children that
double-forked or moved to their own session."""
import time

from host_util import host, pid_alive, processes_with_env, wait_until  # noqa: F401 (fixture)

ESCAPER = """#!/bin/sh
# A child in a new session (setsid), a double-forked grandchild (the subshell
# exits at once, orphaning it), and a plain child; then the main process waits.
setsid sh -c 'exec sleep 1001' &
( sh -c 'exec sleep 1002' & ) &
sleep 1003 &
echo "escapers started"
wait
"""


def sleepers(host):
    found = {}
    for pid in processes_with_env("LOCALD_TEST_MARKER", host.marker):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for n in ("1001", "1002", "1003"):
            if f"sleep {n}" in cmdline:
                found[n] = pid
    return found


def test_stop_ends_setsid_and_double_forked_children(host):
    project = host.project("orphans", """
        [service.escaper]
        command = ["./escaper.sh"]
        port = false
    """, files={"escaper.sh": ESCAPER})
    host.run("up", project, check=True)
    found = wait_until(lambda: (s := sleepers(host)) and len(s) == 3 and s,
                       what="all three sleepers running")
    host.run("stop", "escaper", cwd=project, check=True)
    assert host.service("escaper")["state"] == "stopped"
    # `stop` returned only once the whole run was gone.
    assert [pid for pid in found.values() if pid_alive(pid)] == []

    # Again with `down` after a restart.
    host.run("start", "escaper", cwd=project, check=True)
    found = wait_until(lambda: (s := sleepers(host)) and len(s) == 3 and s,
                       what="sleepers after restart")
    host.run("down", project, check=True)
    assert [pid for pid in found.values() if pid_alive(pid)] == []


def test_service_ignoring_sigterm_is_killed_after_stop_timeout(host):
    project = host.project("stubborn", """
        [service.stubborn]
        command = "trap '' TERM; sleep 1000 & wait; wait"
        port = false
        stop_timeout = "500ms"
    """)
    host.run("up", project, check=True)
    pid = host.service("stubborn")["pid"]
    started = time.monotonic()
    host.run("stop", "stubborn", cwd=project, check=True)
    assert not pid_alive(pid)
    assert time.monotonic() - started < 30
    assert "sleep 1000" not in " ".join(
        open(f"/proc/{p}/cmdline").read() for p in processes_with_env("LOCALD_TEST_MARKER", host.marker))
