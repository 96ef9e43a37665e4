"""The daemon's lifecycle and the CLI surface around it: autostart, the socket's
permissions, one daemon per LOCALD_HOME, shutdown, and the exact shape of
`status --json`."""
import json
import os
import stat
import subprocess

from host_util import PY, host, pid_alive, wait_until  # noqa: F401 (fixture)

STATUS_KEYS = ["project", "name", "kind", "state", "pid", "port", "restarts", "exit_code",
               "started_at", "ready_at"]
STATES = {"pending", "starting", "ready", "running", "stopping", "stopped", "exited", "failed"}


def test_autostart_socket_is_private_and_one_daemon_per_home(host):
    result = host.run("status", "--json", check=True)
    assert json.loads(result.stdout) == {"services": []}
    run_dir = host.home / "run"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((host.home / "state").stat().st_mode) == 0o700
    sock = run_dir / "daemon.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    pid = host.daemon_pid()
    assert pid and pid_alive(pid)
    # The daemon is detached: its own session, not our child.
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) != os.getsid(0)  # session id

    # A second daemon for the same home refuses to run (status 4).
    second = host.run("daemon", timeout=30)
    assert second.returncode == 4, second
    assert second.stderr.startswith("locald: error: a locald daemon is already running"), second

    # The first one still serves.
    host.run("status", check=True)
    assert host.daemon_pid() == pid

    down = host.run("shutdown", check=True)
    assert "daemon stopped" in down.stdout
    assert not pid_alive(pid)
    assert not sock.exists()
    # Shutting down without a daemon is fine.
    again = host.run("shutdown", check=True)
    assert "no daemon" in again.stdout


def test_status_json_exact_shape(host):
    # http.server takes the port as an argument: the shell form expands $PORT.
    project = host.project("shape", f"""
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"

        [service.once]
        command = "echo done"
        port = false
        restart = "no"
    """)
    host.run("up", project, check=True)
    host.wait_state("once", "exited")
    document = host.status()
    assert list(document.keys()) == ["services"]
    by_name = {s["name"]: s for s in document["services"]}
    assert set(by_name) == {"web", "once"}
    for service in document["services"]:
        assert list(service.keys()) == STATUS_KEYS
        assert service["project"] == "shape"
        assert service["kind"] == "host"
        assert service["state"] in STATES
        assert isinstance(service["restarts"], int)
    web = by_name["web"]
    assert web["state"] == "ready"
    assert isinstance(web["pid"], int) and pid_alive(web["pid"])
    assert isinstance(web["port"], int) and 0 < web["port"] < 65536
    assert web["exit_code"] is None
    assert web["started_at"].endswith("Z") and web["ready_at"].endswith("Z")
    once = by_name["once"]
    assert once["pid"] is None
    assert once["port"] is None
    assert once["exit_code"] == 0
    assert once["ready_at"] is None or isinstance(once["ready_at"], str)


def test_config_error_starts_nothing(host):
    project = host.project("broken", """
        [service.a]
        command = "sleep 100"
        [service.b]
        command = "sleep 100"
        depends_on = ["nope"]
    """)
    result = host.run("up", project)
    assert result.returncode == 3, result
    assert "nope" in result.stderr
    assert "locald.toml" in result.stderr
    assert host.status() == {"services": []}


def test_run_uses_the_service_env_and_workdir(host):
    project = host.project("runner", f"""
        [env]
        GREETING = "hi"
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
        workdir = "sub"
    """, files={"sub/marker.txt": "x\n"})
    host.run("up", project, check=True)
    port = host.service("web")["port"]
    result = host.run("run", "web", "--", "sh", "-c",
                      'echo "$PORT $LOCALD_SERVICE $LOCALD_PROJECT $GREETING ${NOTIFY_SOCKET:-none}"; ls',
                      cwd=project, check=True)
    first, *rest = result.stdout.splitlines()
    assert first == f"{port} web runner hi none"
    assert "marker.txt" in rest
    # The exit status is the command's.
    failed = host.run("run", "web", "--", "sh", "-c", "exit 7", cwd=project)
    assert failed.returncode == 7
    # Qualified names work from anywhere.
    elsewhere = host.run("run", "runner:web", "--", "sh", "-c", "echo $LOCALD_SERVICE",
                         cwd="/", check=True)
    assert elsewhere.stdout.strip() == "web"


def test_other_build_of_the_cli_restarts_the_daemon(host, tmp_path):
    project = host.project("upgrade", """
        [service.web]
        command = "sleep 1000"
        port = false
    """)
    host.run("up", project, check=True)
    old_daemon = host.daemon_pid()
    old = host.service("web")
    # Another build: a copy without the GNU build-id note, so its id falls back
    # to the file's size and mtime and differs from ours.
    copy = tmp_path / "locald-other"
    strip = subprocess.run(["objcopy", "--remove-section=.note.gnu.build-id", host.binary,
                            str(copy)], capture_output=True)
    if strip.returncode != 0:
        import pytest
        pytest.skip(f"objcopy unavailable: {strip.stderr!r}")
    result = subprocess.run([str(copy), "status", "--json"], env=host.env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result
    assert "restarting it" in result.stderr
    new_daemon = host.daemon_pid()
    assert new_daemon != old_daemon
    assert not pid_alive(old_daemon)
    # The new daemon brought the service back on the same port.
    web = wait_until(lambda: (s := [x for x in json.loads(subprocess.run(
        [str(copy), "status", "--json"], env=host.env(), capture_output=True, text=True,
        timeout=60).stdout)["services"] if x["name"] == "web"]) and s[0]["state"] == "running"
        and s[0], what="web back after the daemon restart")
    assert web["pid"] != old["pid"]


# Libraries of the registry client, unpacker and container launcher: the daemon
# never uses them, and mapping them cost ~7 MiB of its RSS.
NOT_IN_DAEMON = ("libcurl", "libssl", "libarchive", "libseccomp", "libgnutls", "libxml2")


def daemon_exe_and_libs(pid):
    exe = os.readlink(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/maps") as f:
        libs = {line.split()[-1].rsplit("/", 1)[-1] for line in f if ".so" in line}
    return exe, libs


def test_autostarted_daemon_is_the_daemon_only_executable(host):
    sibling = os.path.join(os.path.dirname(host.binary), "locald-daemon")
    assert os.access(sibling, os.X_OK), f"{sibling} is built with locald"
    host.run("status", check=True)
    exe, libs = daemon_exe_and_libs(host.daemon_pid())
    assert os.path.basename(exe) == "locald-daemon", exe
    loaded = [lib for lib in libs if lib.startswith(NOT_IN_DAEMON)]
    assert not loaded, f"the daemon maps {loaded}"


def copy_binary(source, target):
    subprocess.run(["cp", source, str(target)], check=True)
    os.chmod(target, 0o755)


def test_lone_locald_runs_its_own_daemon(host, tmp_path):
    # One binary is enough: without locald-daemon next to it, `locald` runs
    # itself as `locald daemon`.
    lone = tmp_path / "bin" / "locald"
    lone.parent.mkdir()
    copy_binary(host.binary, lone)
    project = host.project("lone", """
        [service.web]
        command = "sleep 1000"
        port = false
    """)
    result = subprocess.run([str(lone), "up", str(project)], env=host.env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result
    exe, _ = daemon_exe_and_libs(host.daemon_pid())
    assert exe == str(lone), exe
    assert host.service("web")["state"] == "running"


def test_a_changed_daemon_executable_restarts_the_daemon(host, tmp_path):
    # locald and locald-daemon installed together; then locald-daemon is
    # replaced by another build: the next command restarts the daemon on it.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    cli = bindir / "locald"
    copy_binary(host.binary, cli)
    copy_binary(os.path.join(os.path.dirname(host.binary), "locald-daemon"),
                bindir / "locald-daemon")
    project = host.project("swap", """
        [service.web]
        command = "sleep 1000"
        port = false
    """)
    run = lambda *args: subprocess.run([str(cli), *map(str, args)], env=host.env(),  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert run("up", project).returncode == 0
    old_daemon = host.daemon_pid()
    assert daemon_exe_and_libs(old_daemon)[0] == str(bindir / "locald-daemon")
    other = tmp_path / "other"
    strip = subprocess.run(["objcopy", "--remove-section=.note.gnu.build-id",
                            str(bindir / "locald-daemon"), str(other)], capture_output=True)
    if strip.returncode != 0:
        import pytest
        pytest.skip(f"objcopy unavailable: {strip.stderr!r}")
    os.chmod(other, 0o755)
    os.rename(other, bindir / "locald-daemon")
    result = run("status", "--json")
    assert result.returncode == 0, result
    assert "restarting it" in result.stderr
    new_daemon = host.daemon_pid()
    assert new_daemon != old_daemon and not pid_alive(old_daemon)
    assert daemon_exe_and_libs(new_daemon)[0] == str(bindir / "locald-daemon")
    # Same build now: no restart.
    again = run("status")
    assert again.returncode == 0 and "restarting" not in again.stderr, again
    assert host.daemon_pid() == new_daemon
    wait_until(lambda: host.service("web")["state"] == "running", what="web restored")


def test_env_shows_the_injected_variables_when_the_project_is_up(host):
    project = host.project("envy", f"""
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
        [service.worker]
        command = "sleep 1000"
        port = false
    """, files={".env": "GREETING=hi\n"})
    # Without a daemon: no assigned port is known yet.
    before = host.run("env", "worker", cwd=project, check=True).stdout
    assert "LOCALD_PORT_WEB=" not in before
    assert not (host.home / "run" / "daemon.sock").exists()  # `env` does not start one
    host.run("up", project, check=True)
    port = host.service("web")["port"]
    after = host.run("env", "worker", "--explain", cwd=project, check=True).stdout
    lines = after.splitlines()
    assert f"LOCALD_PORT_WEB={port}  # injected by locald" in lines
    assert any(l.startswith("NOTIFY_SOCKET=") for l in lines)
    assert any(l.startswith("GREETING=hi  # ") and ".env:1" in l for l in lines)
    # It is what the running process really has.
    pid = host.service("worker")["pid"]
    environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    assert f"LOCALD_PORT_WEB={port}".encode() in environ
