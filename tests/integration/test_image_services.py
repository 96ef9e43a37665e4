"""`image = "…"` services under the daemon, as the unprivileged test user:
`up` prepares the image in a child (`locald __prepare-image`), runs the
container under the normal supervisor (`locald __launch spec.json`), gates a
host service on its health check, and `stop`/`down` leave no process and no
writable layer behind. Images are built by oci_build and loaded with
`locald image load` (the registry path is covered by `container run` and
`pull` tests; a missing image here exercises the pull's failure)."""
import os
import pathlib
import shutil
import subprocess

import pytest

import oci_build as ob
from host_util import wait_until
from image_util import Project, processes
from image_util import load_image as load_oci_image
from image_util import scratch  # noqa: F401 (the fixture)

REF = "localhost/svc-test:1"
APPLETS = ("sh", "cat", "echo", "env", "sleep", "httpd", "id", "hostname", "mkdir", "kill",
           "pwd", "true", "ls", "test", "[", "touch")


def load_image(scratch):
    files = ob.busybox_files(applets=APPLETS)
    files["www"] = ob.Dir()
    files["www/index.html"] = ob.File(b"hello from the image\n")
    load_oci_image(scratch, REF, files,
                   {"Env": ["PATH=/bin", "FROM_IMAGE=image", "OVERRIDE=image", "PORT=1"],
                    "Cmd": ["/bin/sh", "-c", "echo image default cmd"], "WorkingDir": "/www"})


def layer_dirs(scratch):
    root = scratch.home / "data" / "services"
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*/layer")) if root.exists() else []


def launchers_of(scratch):
    """Live processes of this test's binary (the daemon excluded)."""
    found = []
    for pid, _, _, argv in processes():
        if "--hold-userns" in argv:
            continue  # the daemon's user namespace holder: test_image_userns_holder.py
        if argv and argv[0] == str(scratch.launch_bin):
            # The daemon runs the slim `locald-launch SPEC` when it sits next to
            # `locald` (ns::launch_command): the same mode as `locald __launch SPEC`.
            argv = [str(scratch.bin), "__launch", *argv[1:]]
        if argv and argv[0] == str(scratch.bin) and "daemon" not in argv:
            found.append((pid, argv))
    return found


TOML = """
[project]
name = "imgsvc"

[env]
OVERRIDE = "project"

[service.web]
image = "{ref}"
command = "echo FROM_IMAGE=$FROM_IMAGE OVERRIDE=$OVERRIDE PORT=$PORT HOST=$(hostname) > /out/env.txt; echo web is up; exec httpd -f -p $PORT -h /www"
env = {{ OVERRIDE = "service" }}
volumes = ["./data:/out"]
health_check = {{ http = "/index.html", interval = "200ms" }}
restart = "always"
backoff = {{ initial = "100ms", max = "200ms" }}

[service.client]
command = "echo client sees web on $LOCALD_PORT_WEB; exec sleep 600"
depends_on = {{ web = "healthy" }}
port = false
"""


def test_image_service_up_probe_logs_restart_and_down(scratch):
    load_image(scratch)
    project = Project(scratch, TOML.format(ref=REF))
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    services = project.status()
    web, client = services["web"], services["client"]
    assert web["kind"] == "image" and web["state"] == "ready", web
    assert client["kind"] == "host" and client["state"] == "running", client
    port = web["port"]
    # The probe passed and the page really is served from the image.
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read()
    assert body == b"hello from the image\n"
    # env: image < service < injected PORT; hostname = the service name; the bind
    # volume is the project's ./data.
    env_txt = (project.dir / "data" / "env.txt").read_text().split()
    assert env_txt == ["FROM_IMAGE=image", "OVERRIDE=service", f"PORT={port}", "HOST=web"]
    logs = project.run("logs", "--no-color", "web")
    assert "web is up" in logs.stdout, logs.stdout + logs.stderr
    assert f"client sees web on {port}" in project.run("logs", "--no-color", "client").stdout
    assert layer_dirs(scratch) == ["imgsvc/web/layer"]

    # Killing the container's payload: the launcher exits with 137 and the
    # restart policy brings the same service back.
    pid = web["pid"]
    children = [p for p, argv in launchers_of(scratch) if argv[1:2] == ["__launch"]]
    assert pid in children, (pid, launchers_of(scratch))
    httpd = None
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "httpd" and \
                        str(port) in (entry / "cmdline").read_text():
                    httpd = int(entry.name)
            except OSError:
                pass
    assert httpd is not None
    os.kill(httpd, 9)
    wait_until(lambda: project.status()["web"]["restarts"] >= 1 and
               project.status()["web"]["state"] == "ready", 60, 0.2, "web restarted")
    # `restart` works too (a new launcher pid, ready again).
    old_pid = project.status()["web"]["pid"]
    r = project.run("restart", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    after = project.status()["web"]
    assert after["state"] == "ready" and after["pid"] != old_pid, after

    r = project.run("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert launchers_of(scratch) == []
    wait_until(lambda: layer_dirs(scratch) == [], 30, 0.1, "writable layer removed")
    assert not pid_alive(httpd)


def pid_alive(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except OSError:
        return False


REGISTRY_TOML = """
[project]
name = "regsvc"

[service.web]
image = "{ref}"
command = ["/bin/sh", "-c", "echo MODE=$MODE > /out/mode.txt; exec httpd -f -p $PORT -h /www"]
env = {{ MODE = "{mode}" }}
volumes = ["./data:/out", "cache:/cache"]
health_check = {{ tcp = true, interval = "200ms" }}
"""


def test_pulled_image_reapply_stop_and_failures(scratch, tmp_path):
    import registry_util as ru
    with ru.Registry(tmp_path / "registry") as registry:
        files = ob.busybox_files(applets=APPLETS)
        files["www"] = ob.Dir()
        image = ob.make_image([ob.Layer(files)], config={"Env": ["PATH=/bin"]})
        registry.push_image("test/web", "1", image)
        ref = f"{registry.host}/test/web:1"
        project = Project(scratch, REGISTRY_TOML.format(ref=ref, mode="one"))

        # Not in the store: `up` pulls it from the registry (progress in the logs).
        r = project.run("up", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
        web = project.status()["web"]
        assert (web["kind"], web["state"]) == ("image", "ready"), web
        # `up` relays the preparation's steps as progress lines.
        assert f"regsvc:web: starting — pulling {ref}" in r.stdout, r.stdout
        assert f"regsvc:web: starting — unpacking {ref}" in r.stdout, r.stdout
        logs = project.run("logs", "--no-color", "web").stdout
        assert f"pulling {ref}" in logs and "unpacking" in logs, logs
        assert (project.dir / "data" / "mode.txt").read_text() == "MODE=one\n"
        volume = scratch.home / "data" / "volumes" / "regsvc-cache"
        assert volume.is_dir()

        # Re-apply with another env: the container is replaced, with the new env.
        project.write_toml(REGISTRY_TOML.format(ref=ref, mode="two"))
        r = project.run("up", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        again = project.status()["web"]
        assert again["state"] == "ready" and again["pid"] != web["pid"], again
        assert (project.dir / "data" / "mode.txt").read_text() == "MODE=two\n"
        # Unchanged config: left alone.
        assert project.run("up", timeout=60).returncode == 0
        assert project.status()["web"]["pid"] == again["pid"]

        # stop: no launcher, no writable layer.
        r = project.run("stop", "web", timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert project.status()["web"]["state"] == "stopped"
        assert [p for p, argv in launchers_of(scratch) if argv[1:2] == ["__launch"]] == []
        assert layer_dirs(scratch) == []

        # A ref the registry does not have: failed with the registry's answer.
        project.write_toml(REGISTRY_TOML.format(ref=f"{registry.host}/test/nothing:1",
                                                mode="x"))
        r = project.run("up", timeout=120)
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert project.status()["web"]["state"] == "failed"
        assert "test/nothing:1" in out and "failed" in out, out
        assert "test/nothing" in project.run("logs", "--no-color", "web").stdout
        assert layer_dirs(scratch) == []

        # A layer whose bytes do not match its digest: failed, naming the digest.
        bad = ob.make_image([ob.Layer(files), ob.Layer({"junk.bin": os.urandom(100_000)})],
                            config={"Env": ["PATH=/bin"]})
        registry.push_image("test/bad", "1", bad)
        layer = bad.layers[1]
        data = (registry.storage / "docker/registry/v2/blobs/sha256" / layer.digest[7:9] /
                layer.digest[7:] / "data")
        corrupted = bytearray(data.read_bytes())
        corrupted[100] ^= 0xFF
        data.write_bytes(bytes(corrupted))
        project.write_toml(REGISTRY_TOML.format(ref=f"{registry.host}/test/bad:1", mode="x"))
        r = project.run("up", timeout=120)
        assert r.returncode != 0
        assert project.status()["web"]["state"] == "failed"
        assert layer.digest in r.stdout + r.stderr, r.stdout + r.stderr
        assert layer_dirs(scratch) == []

    # Offline (config.toml) and not cached: failed naming what is missing.
    config = scratch.home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text("offline = true\n")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{scratch.user}:{scratch.user}", str(config)],
                       check=True)
    project.write_toml(REGISTRY_TOML.format(ref=f"{registry.host}/test/web:2", mode="x"))
    r = project.run("up", timeout=120)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "offline" in out and "test/web:2" in out, out
    # …while the cached tag still runs offline.
    project.write_toml(REGISTRY_TOML.format(ref=ref, mode="three"))
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project.dir / "data" / "mode.txt").read_text() == "MODE=three\n"


def test_missing_image_fails_with_the_pull_error(scratch):
    project = Project(scratch, """
        [service.db]
        image = "127.0.0.1:1/nothing-here:1"
        port = false
        """)
    r = project.run("up", timeout=120)
    assert r.returncode != 0
    db = project.status()["db"]
    assert db["state"] == "failed" and db["kind"] == "image", db
    r = project.run("status", "--json")
    assert "nothing-here" in r.stdout + project.run("logs", "--no-color", "db").stdout
    assert layer_dirs(scratch) == []


def test_a_killed_daemons_containers_and_layers_are_cleaned_up(scratch):
    load_image(scratch)
    project = Project(scratch, """
        [project]
        name = "crash"

        [service.web]
        image = "%s"
        command = "if [ -e /marker ]; then echo STALE LAYER; fi; touch /marker; exec httpd -f -p $PORT -h /www"
        """ % REF)
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    first = project.status()["web"]
    assert first["state"] == "ready"
    upper = scratch.home / "data" / "services" / "crash" / "web" / "layer" / "upper"
    assert (upper / "marker").exists()
    daemon_pid = int((scratch.home / "run" / "daemon.pid").read_text().split()[0])
    os.kill(daemon_pid, 9)
    # The launcher dies with the daemon (parent-death signal), its container with it.
    wait_until(lambda: not pid_alive(first["pid"]), 30, 0.05, "launcher gone")
    # The next daemon removes the old writable layer and brings the service back
    # from a fresh one.
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    second = project.status()["web"]
    assert second["state"] == "ready" and second["pid"] != first["pid"], second
    assert "STALE LAYER" not in project.run("logs", "--no-color", "web").stdout
    assert layer_dirs(scratch) == ["crash/web/layer"]
    # The old layer was moved aside at the daemon's start and is removed in the
    # background (files of subordinate ids: through the user namespace).
    services = scratch.home / "data" / "services"
    wait_until(lambda: not list(services.glob(".trash-*")), 60, 0.1, "old layers removed")
    # Only the new launcher (and its PID 1, a fork of it) is left.
    for pid, argv in launchers_of(scratch):
        if argv[1:2] == ["__launch"]:
            ppid = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            assert second["pid"] in (pid, ppid), (pid, ppid, second)


NOTIFY_C = r"""
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char** argv) {
    const char* path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) { fprintf(stderr, "no NOTIFY_SOCKET\n"); return 2; }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(addr.sun_path)) return 3;
    memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const char* msg = argc > 1 ? argv[1] : "READY=1";
    if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr*)&addr,
               offsetof(struct sockaddr_un, sun_path) + len) < 0) { perror("sendto"); return 1; }
    /* Stay alive as the rest of argv: the supervisor checks that the sender's
       pid belongs to the service when it reads the datagram, which a sender
       that already exited cannot pass. */
    if (argc > 2) { execvp(argv[2], argv + 2); perror("exec"); return 127; }
    return 0;
}
"""


def test_notify_readiness_from_inside_the_container(scratch):
    """NOTIFY_SOCKET (the supervisor's abstract socket) works from a container on
    the host network: a static sd_notify sender in the image makes it ready."""
    import shutil
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed: cannot build the static sd_notify sender")
    source = scratch.dir / "notify.c"
    source.write_text(NOTIFY_C)
    binary = scratch.dir / "notify"
    r = subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot link a static binary (libc6-dev's libc.a?): {r.stderr[-300:]}")
    files = ob.busybox_files(applets=APPLETS)
    files["bin/notify"] = ob.File(binary.read_bytes(), mode=0o755)
    load_oci_image(scratch, "localhost/notify:1", files, {"Env": ["PATH=/bin"]}, name="notify")
    toml = """
        [service.worker]
        image = "localhost/notify:1"
        command = "sleep 0.3; exec notify READY=1 sleep 600"
        port = false
        health_check = { notify = true }
        network = "%s"
        """
    project = Project(scratch, toml % "host")
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    assert project.status()["worker"]["state"] == "ready"
    assert project.run("down", timeout=120).returncode == 0
    # With network "none" the abstract socket is out of reach: refused up front.
    project.write_toml(toml % "none")
    r = project.run("up", timeout=60)
    assert r.returncode != 0
    assert "notify" in r.stderr and "none" in r.stderr, r.stdout + r.stderr


def daemon_children(scratch):
    """(pid, state, argv) of every child of this test's daemon."""
    daemon = None
    for pid, _, _, argv in processes():
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if argv[1:2] == ["daemon"] and exe == str(scratch.bin):
            daemon = pid
    if daemon is None:
        return None, []
    return daemon, [(pid, state, argv) for pid, ppid, state, argv in processes() if ppid == daemon]


def test_down_while_preparing_leaves_no_helper_behind(scratch, tmp_path):
    """`down` during the pull cancels the preparation child with SIGKILL to its
    process group; its helpers (the unpacker forked before the pull) are
    re-parented to the daemon, a child subreaper, which must reap them."""
    import registry_util as ru
    from layers_util import GatedProxy
    from ns_util import popen_as
    with ru.Registry(tmp_path / "registry") as registry:
        files = ob.busybox_files(applets=APPLETS)
        top = ob.Layer({"www": ob.Dir(), "www/big.bin": os.urandom(512 * 1024)})
        image = ob.make_image([ob.Layer(files), top], config={"Env": ["PATH=/bin"]})
        registry.push_image("test/slow", "1", image)
        proxy = GatedProxy(registry.port, held_digest=image.layers[1].digest)
        try:
            ref = f"127.0.0.1:{proxy.port}/test/slow:1"
            project = Project(scratch, REGISTRY_TOML.format(ref=ref, mode="slow"))
            up = popen_as(scratch.user, [str(scratch.bin), "up"], scratch.home,
                          cwd=str(project.dir))
            try:
                assert proxy.holding.wait(90), "the pull never reached the top layer"
                daemon, children = daemon_children(scratch)
                assert any("__prepare-image" in argv for _, _, argv in children), (daemon, children)
                r = project.run("down", timeout=90)
                assert r.returncode == 0, r.stdout + r.stderr
            finally:
                proxy.release()
                up.communicate(timeout=90)
        finally:
            proxy.close()

    def settled():
        daemon, children = daemon_children(scratch)
        return daemon is not None and not [c for c in children
                                           if c[1] == "Z" or "__prepare-image" in c[2]]
    wait_until(settled, 30, 0.1, f"no zombie or preparation left: {daemon_children(scratch)}")
    assert layer_dirs(scratch) == []


def test_cleanup_refuses_the_services_root_in_any_spelling(scratch):
    """`__prepare-image --cleanup` removes only dirs strictly inside <data>/services/:
    `services/.`, `services//` or `services/x/..` name the root (every service's layer)."""
    services = scratch.home / "data" / "services"
    keep = services / "proj" / "svc"
    keep.mkdir(parents=True)
    (keep / "spec.json").write_text("{}")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{scratch.user}:{scratch.user}", str(scratch.home)],
                       check=True)
    for spelling in (f"{services}/.", f"{services}//", f"{services}/proj/..",
                     f"{services}/./proj/..", f"{services}/proj/../"):
        r = scratch.run("__prepare-image", "--cleanup", spelling)
        assert (keep / "spec.json").exists(), (spelling, r.stderr)
        assert r.returncode != 0, (spelling, r.stdout, r.stderr)
        assert "is not a service directory" in r.stderr, (spelling, r.stderr)
    r = scratch.run("__prepare-image", "--cleanup", str(services / "proj"))
    assert r.returncode == 0, r.stderr
    assert not (services / "proj").exists()


def test_image_service_starts_after_the_binary_was_reinstalled(scratch):
    """Reinstalling the same build (cp + rename over `locald`) keeps the running
    daemon (same build id), whose /proc/self/exe then reads `locald (deleted)`:
    `__prepare-image` must still be run from the path `locald` is installed at."""
    load_image(scratch)
    project = Project(scratch, """
        [project]
        name = "reinstalled"

        [service.one]
        image = "{ref}"
        command = "echo one is up; exec sleep 600"
        port = false
        """.format(ref=REF))
    r = project.run("status")  # starts the daemon; no image service yet
    assert r.returncode == 0, r.stdout + r.stderr
    fresh = scratch.dir / "locald.new"
    shutil.copy2(scratch.bin, fresh)
    os.chmod(fresh, 0o755)
    os.rename(fresh, scratch.bin)
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + project.daemon_log()
    assert project.status()["one"]["state"] == "running"
    r = project.run("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
