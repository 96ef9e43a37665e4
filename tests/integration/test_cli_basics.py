"""The binary's surface every later command relies on."""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

import oci_build as ob
from host_util import host, wait_until  # noqa: F401 (host is a fixture)


def test_version(run_locald):
    result = run_locald("--version", check=True)
    assert result.stdout.startswith("locald ")


def test_help_lists_commands(run_locald):
    result = run_locald("--help", check=True)
    assert "commands:" in result.stdout
    assert "help" in result.stdout


def test_help_flag_before_a_command_shows_that_command(run_locald):
    assert run_locald("--help", "up", check=True).stdout.startswith("usage: locald up ")
    assert run_locald("-h", "logs", check=True).stdout.startswith("usage: locald logs ")
    assert run_locald("--help", "frobnicate").returncode == 2


def test_unknown_command_is_usage_error(run_locald):
    result = run_locald("frobnicate")
    assert result.returncode == 2
    assert result.stderr.startswith("locald: error: unknown command `frobnicate`")


def test_help_flag_after_arguments_is_not_swallowed(run_locald):
    # Only a leading --help asks for help; a later one is the command's own
    # argument (for `container run IMG cmd --help` it belongs to the payload).
    assert run_locald("config", "--help", check=True).stdout.startswith("usage: locald config")
    result = run_locald("config", "--explain", "--help")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


def test_foreground_refuses_a_project_the_daemon_runs(host):
    # `up --foreground` beside the daemon's run of the same project would start
    # a second copy of every service (two writers, two ports): refuse instead.
    project = host.project("twice", """
        [service.sleeper]
        command = "exec sleep 300"
        port = false
        """)
    host.run("up", project, check=True)
    pid = host.service("sleeper")["pid"]
    result = host.run("up", "--foreground", project, timeout=20)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("locald: error: the daemon already runs this project "
                                    "(twice:sleeper)"), result.stderr
    assert f"`locald down {project}`" in result.stderr
    assert host.service("sleeper")["pid"] == pid
    # Once it is down, the foreground run is allowed (and ends with Ctrl-C).
    host.run("down", project, check=True)
    process = host.popen("up", "--foreground", project, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # Its first line says the service was spawned; it must come through the
    # pipe at once (a quiet service once left it in the stdio buffer).
    ready, _, _ = select.select([process.stdout], [], [], 30)
    if not ready:
        process.kill()
        process.wait()
        raise AssertionError("no output from `up --foreground` through a pipe")
    assert "[locald] started: pid" in process.stdout.readline()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130


def test_run_before_up_says_to_run_up(host):
    # `locald run` of a host service needs the environment the daemon gives it;
    # before `up` it says so instead of only "no loaded project has a service".
    project = host.project("early", """
        [service.api]
        command = "exec sleep 300"
        """)
    result = host.run("run", "api", "--", "true", cwd=project)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("locald: error: project `early` is not up"), result.stderr
    assert "run `locald up` first" in result.stderr
    # A service no project has is still reported as such.
    result = host.run("run", "nosuch", "--", "true", cwd=project)
    assert result.returncode == 3
    assert "no loaded project has a service `nosuch`" in result.stderr, result.stderr


def test_up_of_a_project_without_services_says_so(host):
    # A Procfile with only comments (or a locald.toml with only [env]) starts
    # nothing; `up` must not succeed in silence.
    project = host.tmp / "empty"
    project.mkdir()
    (project / "Procfile").write_text("# web: bundle exec rails server\n")
    for args in (("up",), ("up", "--foreground")):
        result = host.run(*args, cwd=project, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr.startswith(
            "locald: note: project `empty` (" + str(project.resolve()) + ") defines no services"), \
            result.stderr


def run_on_terminal(host, *args, cwd=None, timeout=60, columns=0):
    """Runs `locald ARGS…` on a fresh pseudo-terminal (COLUMNS wide when given);
    returns (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        if columns:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        os.chdir(cwd or "/")
        os.execve(host.binary, [host.binary, *map(str, args)], host.env())
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_reapply_on_a_terminal_shows_no_time_for_unchanged_services(host):
    # The time beside a state is how long reaching it took; a service that was
    # already ready when `up` began took nothing ("ready 0ms" read as a restart).
    project = host.project("again", """
        [service.idle]
        command = "exec sleep 300"
        port = false
        """)
    host.run("up", project, check=True)
    status, output = run_on_terminal(host, "up", project)
    assert status == 0, output
    rows = [line for line in re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", output).splitlines()
            if "again:idle" in line]
    assert rows, output
    assert all(row.split() == ["again:idle", "running", "pid", f"{host.service('idle')['pid']}"]
               for row in rows), rows


@pytest.mark.parametrize("args", [("version", "x"), ("help", "up", "down")])
def test_extra_arguments_are_usage_errors(run_locald, args):
    result = run_locald(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"see `locald help {args[0]}`" in result.stderr


def test_logs_since_takes_bare_seconds_and_no_colour(host):
    # What `logs --help` and the manual promise about --since and --no-colour.
    project = host.project("talk", """
        [service.say]
        command = "echo said-it; exec sleep 300"
        port = false
        """)
    host.run("up", project, check=True)
    wait_until(lambda: "said-it" in host.logs("say"), what="the service's line")
    for since in ("3600", "1h"):
        result = host.run("logs", "--since", since, "--no-colour", "say", cwd=project, check=True)
        assert "said-it" in result.stdout
    assert host.run("logs", "--since", "1x", cwd=project).returncode == 2


def test_a_multi_line_reason_stays_on_one_line(host):
    # The holder of a pinned port is quoted with its command line, which may
    # hold newlines (`python3 -c '…'`): status rows, progress lines and the
    # terminal's redrawn rows must each stay one line.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, time\ns = socket.socket()\n"
         "s.bind(('127.0.0.1', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\n"
         "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(holder.stdout.readline())
        project = host.project("multi", f"""
            [service.svc]
            command = "exec sleep 300"
            port = {port}
            """)
        result = host.run("up", project)
        assert result.returncode == 1, result.stdout + result.stderr
        failed = [line for line in result.stdout.splitlines()
                  if line.startswith("multi:svc: failed")]
        assert len(failed) == 1 and "s.listen() print(" in failed[0], result.stdout
        assert result.stderr.count("\n") == 1, result.stderr
        assert "s.listen() print(" in result.stderr, result.stderr
        rows = host.run("status", check=True).stdout.splitlines()
        assert len(rows) == 2, rows
        assert f"port {port} is already in use by pid {holder.pid}" in rows[1], rows
        status, output = run_on_terminal(host, "up", project, columns=80)
        assert status == 1, output
        screen = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", output).replace("\r", "")
        assert [line for line in screen.splitlines() if "multi:svc" in line], output
        too_wide = [line for line in screen.splitlines()
                    if len(line) > 80 and not line.startswith("locald: multi:svc failed")]
        assert not too_wide, too_wide
    finally:
        holder.kill()
        holder.wait()


def test_logs_in_a_project_dir_name_only_its_services(host):
    # Without SERVICE, `logs` shows the current directory's project: its lines
    # read `name | …`, not `project:name` padded to another project's names.
    mine = host.project("mine", """
        [service.say]
        command = "echo from-mine; exec sleep 300"
        port = false
        """)
    other = host.project("another-project", """
        [service.with-a-long-name]
        command = "echo from-other; exec sleep 300"
        port = false
        """)
    host.run("up", mine, check=True)
    host.run("up", other, check=True)
    wait_until(lambda: "from-mine" in host.logs("mine:say"), what="mine's line")
    lines = [line for line in host.run("logs", "--no-color", cwd=mine,
                                       check=True).stdout.splitlines() if "from-" in line]
    assert len(lines) == 1 and re.fullmatch(r"\d\d:\d\d:\d\d say \| from-mine", lines[0]), lines
    # From a subdirectory of the project it is the same project.
    (mine / "sub").mkdir()
    lines = [line for line in host.run("logs", "--no-color", cwd=mine / "sub",
                                       check=True).stdout.splitlines() if "from-" in line]
    assert len(lines) == 1 and lines[0].endswith(" say | from-mine"), lines


def test_image_load_and_rmi_quiet(run_locald, tmp_path):
    # `-q` is accepted by both; `image load -q` printed the full lines anyway.
    layout = ob.Layout(tmp_path / "layout")
    image = layout.add_image([ob.Layer({"hello.txt": ob.File(b"hi\n")})])
    layout.tag("localhost/quiet/app:1", image)
    tar = layout.to_tar(tmp_path / "image.tar")
    result = run_locald("image", "load", "-q", tar, check=True)
    assert result.stdout == "localhost/quiet/app:1\n"
    result = run_locald("rmi", "-q", "localhost/quiet/app:1", check=True)
    assert result.stdout == ""
    assert run_locald("image", "inspect", "localhost/quiet/app:1").returncode == 3


def test_attach_says_when_the_service_ended(host):
    # It said "the service ended (ends:svc keeps running unless it ended)".
    project = host.project("ends", """
        [service.svc]
        command = "sleep 2; echo bye"
        port = false
        restart = "no"
        """)
    host.run("up", project, check=True)
    status, output = run_on_terminal(host, "attach", "svc", cwd=project, timeout=30)
    assert "locald: ends:svc ended (`locald status ends:svc` says how)" in output, output
    assert "keeps running" not in output, output
