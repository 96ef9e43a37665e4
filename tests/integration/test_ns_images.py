"""`locald container run IMAGE` with images built by oci_build and loaded into
the store (`locald image load`): Docker's Entrypoint/Cmd/Env/WorkingDir/User
semantics, and an image whose files belong to several uids."""
import os

import pytest

import oci_build as ob
from ns_util import Scratch

REF = "localhost/ns-test:1"


@pytest.fixture
def scratch(locald_bin, test_user):
    s = Scratch(locald_bin, test_user)
    yield s
    s.cleanup()


def load_image(scratch, config):
    files = ob.busybox_files(applets=ob.busybox_files.__defaults__[0] + (
        "stat", "chown", "hostname", "pwd", "tty", "stty"))
    files["etc/passwd"] = ("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                           "db:x:999:999::/var/db:/bin/sh\n")
    files["etc/group"] = "root:x:0:\napp:x:1000:\ndb:x:999:\n"
    files["home"] = ob.Dir()
    files["home/app"] = ob.Dir(uid=1000, gid=1000)
    files["var"] = ob.Dir()
    files["var/db"] = ob.Dir(mode=0o700, uid=999, gid=999)
    files["var/db/data"] = ob.File(b"db-owned\n", mode=0o600, uid=999, gid=999)
    files["srv"] = ob.Dir(uid=1000, gid=1000)
    files["srv/app.txt"] = ob.File(b"v1\n", uid=1000, gid=1000)
    top = ob.Layer({"srv/app.txt": ob.File(b"v2\n", uid=1000, gid=1000), "etc/motd": "hi\n"})
    layout = ob.Layout(scratch.dir / "layout")
    image = layout.add_image(layers=[ob.Layer(files), top], config=config)
    layout.tag(REF, image)
    tar = scratch.dir / "image.tar"
    layout.to_tar(tar)
    os.chmod(tar, 0o644)
    r = scratch.run("image", "load", tar)
    assert r.returncode == 0, r.stderr


CONFIG = {"Env": ["PATH=/bin", "FROM_IMAGE=1", "OVERRIDE=image"],
          "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo cmd $OVERRIDE"],
          "WorkingDir": "/srv", "User": "app"}


def test_entrypoint_cmd_env_workdir_user(scratch):
    load_image(scratch, CONFIG)
    r = scratch.run("container", "run", REF)
    assert (r.returncode, r.stdout) == (0, "cmd image\n"), r.stderr
    # CMD… replaces Cmd; -e beats --env-file beats the image.
    env_file = scratch.dir / "env"
    env_file.write_text("# comment\nOVERRIDE=file\nFROM_FILE=yes\n")
    os.chmod(env_file, 0o644)
    r = scratch.run("container", "run", "--env-file", env_file, "-e", "OVERRIDE=cli", REF,
                    "echo $OVERRIDE $FROM_FILE $FROM_IMAGE; id -un; pwd; cat app.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["cli yes 1", "app", "/srv", "v2"]
    # --entrypoint drops the image's Cmd; -u and -w override.
    r = scratch.run("container", "run", "--entrypoint", "/bin/id", "-u", "0", "-w", "/tmp", REF)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("uid=0(root)")
    r = scratch.run("container", "run", "--entrypoint", "/bin/sh", REF, "-c", "pwd; exit 4")
    assert (r.returncode, r.stdout) == (4, "/srv\n"), r.stderr


def test_files_of_several_uids_keep_their_owners(scratch):
    load_image(scratch, CONFIG)
    r = scratch.run("container", "run", "-u", "root", REF,
                    "stat -c '%u:%g %n' /var/db /var/db/data /srv/app.txt /home/app")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["999:999 /var/db", "999:999 /var/db/data",
                                     "1000:1000 /srv/app.txt", "1000:1000 /home/app"]
    # app cannot read db's private files; db can, and root can hand a file over.
    denied = scratch.run("container", "run", REF, "cat /var/db/data")
    assert denied.returncode != 0 and "ermission denied" in denied.stderr
    r = scratch.run("container", "run", "-u", "db", REF, "cat /var/db/data")
    assert (r.returncode, r.stdout) == (0, "db-owned\n"), r.stderr
    r = scratch.run("container", "run", "-u", "root", REF,
                    "chown app /var/db/data && chmod 711 /var/db;"
                    " stat -c %u /var/db/data")
    assert r.stdout.strip().splitlines()[-1] == "1000", r.stdout + r.stderr


def test_each_run_starts_from_the_image(scratch):
    load_image(scratch, CONFIG)
    assert scratch.run("container", "run", REF, "echo changed > /srv/app.txt").returncode == 0
    r = scratch.run("container", "run", REF, "cat /srv/app.txt")
    assert r.stdout == "v2\n"
    leftovers = list((scratch.home / "data" / "containers").iterdir()) \
        if (scratch.home / "data" / "containers").exists() else []
    assert leftovers == [], "the writable layer is removed after each run"


def test_missing_image_is_a_clear_error(scratch):
    r = scratch.run("container", "run", "localhost:1/nothing-here:1", "true", timeout=120)
    assert r.returncode != 0
    assert "nothing-here" in r.stderr


def test_image_service_has_its_own_terminal_through_attach(scratch):
    """An `image =` service's container has a real terminal (its own pty,
    relayed by the launcher to the supervisor's PTY): through `locald attach`
    an interactive shell inside sees `tty`, the attaching terminal's size and
    its changes, and takes input."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import subprocess
    import termios
    import textwrap
    import time

    import ns_util

    load_image(scratch, {"Env": ["PATH=/bin", "PS1=$ "], "Cmd": ["/bin/sh", "-i"]})
    project = scratch.dir / "proj"
    project.mkdir()
    (project / "locald.toml").write_text(textwrap.dedent(f"""
        [project]
        name = "ttysvc"

        [service.shell]
        image = "{REF}"
        port = false
        stop_signal = "HUP"  # an interactive shell ignores SIGTERM
    """).lstrip())
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{scratch.user}:{scratch.user}", str(project)],
                       check=True)

    def locald(*args, timeout=120):
        return ns_util.run_as(scratch.user, [str(scratch.bin), *args], scratch.home,
                              timeout=timeout, cwd=str(project))

    r = locald("up")
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(project)
            argv = ns_util.as_user_argv(scratch.user, [str(scratch.bin), "attach", "shell"])
            os.execvpe(argv[0], argv, ns_util.user_env(scratch.user, scratch.home))
        seen = b""

        def until(needle, timeout=30):
            nonlocal seen
            end = time.monotonic() + timeout
            while needle not in seen:
                left = end - time.monotonic()
                assert left > 0, f"no {needle!r} in {seen[-2000:]!r}"
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        chunk = b""
                    assert chunk, f"attach ended before {needle!r}: {seen[-2000:]!r}"
                    seen += chunk
            before, seen = seen.split(needle, 1)
            return before + needle

        try:
            def size_reaches(rows, cols):
                # The resize travels attach → daemon PTY → launcher (SIGWINCH)
                # → the container's pty, all asynchronously: ask until it shows.
                for attempt in range(50):
                    os.write(fd, f"stty size; echo S-$((1000+{attempt}))\r".encode())
                    got = until(f"S-{1000 + attempt}\r\n".encode())
                    if f"{rows} {cols}".encode() in got:
                        return got
                    time.sleep(0.1)
                raise AssertionError(f"the container never saw {rows}x{cols}: {got!r}")

            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            until(b"detach with Ctrl-]")
            os.kill(pid, signal.SIGWINCH)
            size_reaches(30, 100)
            os.write(fd, b"tty; echo M-$((20+1))\r")
            got = until(b"M-21\r\n")
            assert b"/dev/pts/0" in got, got
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
            os.kill(pid, signal.SIGWINCH)
            size_reaches(40, 132)
            os.write(fd, b"\x1d")
            until(b"detached")
            _, status = os.waitpid(pid, 0)
            pid = 0
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
    finally:
        locald("down")
        locald("shutdown")
