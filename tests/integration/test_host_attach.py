"""`locald attach` through a real PTY: output, input, resize, detach key."""
import os
import pty
import select
import signal
import struct
import fcntl
import termios
import time

from host_util import PY, host, pid_alive, wait_until  # noqa: F401 (fixture)

ECHO = """
    import os, shutil, signal, sys
    def winch(*_):
        size = shutil.get_terminal_size()
        print(f"size {size.columns}x{size.lines}", flush=True)
    signal.signal(signal.SIGWINCH, winch)
    print("echo service ready", flush=True)
    for line in sys.stdin:
        print("echo:" + line.strip(), flush=True)
"""


def read_until(fd, needle, timeout=60):
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {data[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    if needle not in data:
        raise AssertionError(f"{needle!r} not seen; got {data[-2000:]!r}")
    return data


def test_attach_input_output_resize_and_detach(host):
    project = host.project("attach", f"""
        [service.echo]
        command = ["{PY}", "-u", "echo.py"]
        port = false
    """, files={"echo.py": ECHO})
    host.run("up", project, check=True)
    service_pid = host.service("echo")["pid"]

    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(project)
        os.execve(host.binary, [host.binary, "attach", "echo"], host.env())
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        read_until(fd, b"detach with Ctrl-]")
        os.write(fd, b"hello through the pty\r")
        read_until(fd, b"echo:hello through the pty")
        # A resize of our terminal reaches the service (SIGWINCH, new size).
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        read_until(fd, b"size 132x40")
        # Ctrl-] detaches; the service keeps running.
        os.write(fd, b"\x1d")
        read_until(fd, b"detached")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    service = host.service("echo")
    assert service["state"] == "running"
    assert service["pid"] == service_pid and pid_alive(service_pid)
    assert "echo:hello through the pty" in host.logs("echo")


def test_attach_to_a_stopped_service_is_an_error(host):
    project = host.project("attach2", """
        [service.idle]
        command = "sleep 1000"
        port = false
    """)
    host.run("up", project, check=True)
    host.run("stop", "idle", cwd=project, check=True)
    result = host.run("attach", "idle", cwd=project)
    assert result.returncode != 0
    assert "not running" in result.stderr
