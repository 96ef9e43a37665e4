"""Logs: the last lines before exit are kept, a flood neither blocks the
producer nor corrupts the log, and `logs` filters by count and time."""
import re

from host_util import PY, host, wait_until  # noqa: F401 (fixture)

FLOOD = """
    import sys
    line = "x" * 90
    out = sys.stdout.buffer
    for i in range(3_000_000):
        out.write(b"%08d %s\\n" % (i, line.encode()))
    out.write(b"FLOOD DONE\\n")
    out.flush()
"""


def test_lines_written_right_before_exit_are_kept(host):
    project = host.project("drain", """
        [service.burst]
        command = "seq 1 2000; printf 'no newline at the end'"
        port = false
        restart = "no"
    """)
    host.run("up", project)
    host.wait_state("burst", "exited")
    out = host.logs("burst")
    numbers = [line.split("| ", 1)[1] for line in out.splitlines() if "| " in line]
    body = [n for n in numbers if not n.startswith("[locald]")]
    assert body[:2000] == [str(i) for i in range(1, 2001)]
    assert body[2000] == "no newline at the end"
    # The same lines are in the service's log file.
    log_file = host.home / "state" / "logs" / "drain" / "burst.log"
    text = log_file.read_text()
    assert " 2000\n" in text and "no newline at the end" in text


def test_log_flood_does_not_block_the_producer(host):
    project = host.project("flood", f"""
        [service.flood]
        command = ["{PY}", "-u", "flood.py"]
        port = false
        restart = "no"
    """, files={"flood.py": FLOOD})
    host.run("up", project)
    # ~300 MB through the PTY; the producer must finish (exit 0) on its own.
    service = host.wait_state("flood", ("exited", "failed"), timeout=600)
    assert service["state"] == "exited" and service["exit_code"] == 0, service
    tail = host.logs("-n", "200", "flood").splitlines()
    body = [line.split("| ", 1)[1] for line in tail if "| " in line]
    body = [b for b in body if not b.startswith("[locald]")]
    assert body[-1] == "FLOOD DONE"
    # The lines before it are intact and consecutive.
    numbered = [b for b in body[:-1] if re.fullmatch(r"\d{8} x{90}", b)]
    assert len(numbered) >= 100
    numbers = [int(b[:8]) for b in numbered]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert numbers[-1] == 2_999_999


def test_logs_filters(host):
    project = host.project("filters", """
        [service.one]
        command = "for i in 1 2 3 4 5; do echo one-$i; done; exec sleep 1000"
        port = false
        [service.two]
        command = "echo two-1; exec sleep 1000"
        port = false
    """)
    host.run("up", project, check=True)
    wait_until(lambda: "one-5" in host.logs("one") and "two-1" in host.logs("two"),
               what="output in the logs")
    both = host.run("logs", "--no-color", cwd=project, check=True).stdout
    assert "one-5" in both and "two-1" in both
    line = next(l for l in both.splitlines() if "one-3" in l)
    assert re.fullmatch(r"\d\d:\d\d:\d\d one \| one-3", line), line
    last2 = [l for l in host.logs("-n", "2", "one").splitlines()]
    assert len(last2) == 2
    assert host.logs("--since", "1h", "one").count("one-") == 5
    qualified = host.run("logs", "--no-color", "filters:two", cwd="/", check=True).stdout
    assert "two-1" in qualified and "one-" not in qualified
    bad = host.run("logs", "--since", "yesterday")
    assert bad.returncode == 2
