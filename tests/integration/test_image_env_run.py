"""`locald env` and `locald run` for `image =` services, as the unprivileged
test user: env shows what the container's process gets (image env < service
env < injected), `--explain` names each layer including the image config, and
`run SERVICE -- CMD` runs CMD in a fresh one-off container of the service's
image with its workdir, user and volumes, passing the exit status and leaving
no writable layer behind. Images are built by oci_build and loaded with
`locald image load`; no daemon is needed (none runs in most of these tests)."""
import os
import subprocess

import oci_build as ob
from image_util import Project
from image_util import load_image as load_oci_image
from image_util import scratch  # noqa: F401 (the fixture)
from ns_util import run_as

REF = "localhost/envrun-test:1"
APPLETS = ("sh", "cat", "echo", "env", "id", "pwd", "true", "ls", "kill", "touch", "grep",
           "httpd")

TOML = """
[project]
name = "envrun"

[env]
OVERRIDE = "project"

[service.web]
image = "{ref}"
command = "exec httpd -f -p $PORT -h /srv/app"
env = {{ SERVICE_ONLY = "svc", SHADOWED = "service" }}
workdir = "/srv/app"
user = "1000"
port = 4711
volumes = ["./data:/out"]
"""


def load_image(scratch):
    files = ob.busybox_files(applets=APPLETS)
    files["etc/image-release"] = ob.File(b"ID=envrun-image\n")
    files["srv"] = ob.Dir()
    files["srv/app"] = ob.Dir(mode=0o777)
    load_oci_image(scratch, REF, files,
                   {"Env": ["PATH=/bin", "FROM_IMAGE=image", "SHADOWED=image", "OVERRIDE=image"],
                    "Cmd": ["/bin/sh", "-c", "echo image default cmd"], "WorkingDir": "/"})


def env_lines(text):
    return [line for line in text.splitlines() if line]


def container_dirs(scratch):
    root = scratch.home / "data" / "containers"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_env_of_an_image_service_is_the_containers(scratch):
    load_image(scratch)
    project = Project(scratch, TOML.format(ref=REF))
    r = project.run("env", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    env = dict(line.split("=", 1) for line in env_lines(r.stdout))
    # The image's Env is the base; the service's env and [env] override it;
    # PORT is injected (pinned here: known without a daemon).
    assert env["PATH"] == "/bin"
    assert env["FROM_IMAGE"] == "image"
    assert env["SHADOWED"] == "service"
    assert env["OVERRIDE"] == "project"
    assert env["SERVICE_ONLY"] == "svc"
    assert env["PORT"] == "4711"
    assert env["LOCALD_SERVICE"] == "web" and env["LOCALD_PROJECT"] == "envrun"
    # Not this shell's environment (Docker passes none of the host's): the
    # test user's HOME and LOCALD_HOME are not in the container.
    assert "LOCALD_HOME" not in env and "HOME" not in env, env
    # The image's order first (what the process's environ holds).
    assert env_lines(r.stdout)[0] == "PATH=/bin"

    r = project.run("env", "--explain", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    explained = {line.split("=", 1)[0]: line for line in env_lines(r.stdout)}
    assert explained["FROM_IMAGE"] == f"FROM_IMAGE=image  # image config ({REF})"
    assert explained["PATH"] == f"PATH=/bin  # image config ({REF})"
    toml = project.dir / "locald.toml"
    assert explained["SHADOWED"].startswith("SHADOWED=service  # ")
    assert f"{toml}:" in explained["SHADOWED"], explained["SHADOWED"]
    assert explained["OVERRIDE"].startswith("OVERRIDE=project  # ")
    assert f"{toml}:" in explained["OVERRIDE"], explained["OVERRIDE"]
    assert explained["PORT"] == "PORT=4711  # injected by locald"
    assert "image config" not in explained["SHADOWED"]


def test_env_of_an_image_not_in_the_store_fails_clearly(scratch):
    missing = "localhost/not-loaded:9"
    project = Project(scratch, TOML.format(ref=missing))
    r = project.run("env", "web")
    assert r.returncode != 0
    assert r.stdout == ""
    assert f"the image `{missing}` is not in the local store" in r.stderr, r.stderr
    assert "never pulls" in r.stderr and "service `web`" in r.stderr, r.stderr
    # --explain still shows the other layers, and still fails.
    r = project.run("env", "--explain", "web")
    assert r.returncode != 0
    explained = {line.split("=", 1)[0]: line for line in env_lines(r.stdout)}
    assert explained["PORT"] == "PORT=4711  # injected by locald"
    assert explained["SHADOWED"].startswith("SHADOWED=service  # "), r.stdout
    assert "FROM_IMAGE" not in explained and "image config" not in r.stdout
    assert f"the image `{missing}` is not in the local store" in r.stderr, r.stderr
    # Nothing was pulled or prepared.
    assert container_dirs(scratch) == []


def test_run_executes_in_a_one_off_container_of_the_image(scratch):
    load_image(scratch)
    project = Project(scratch, TOML.format(ref=REF))
    # A file only the image has, the service's workdir and user, the service's
    # env over the image's.
    r = project.run("run", "web", "--", "sh", "-c",
                    "cat /etc/image-release; pwd; id -u; echo $SHADOWED $FROM_IMAGE $PORT")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["ID=envrun-image", "/srv/app", "1000",
                                     "service image 4711"], r.stdout
    assert container_dirs(scratch) == []
    # The service's volumes are mounted: a write lands in the project's ./data.
    r = project.run("run", "web", "--", "sh", "-c", "echo from-run > /out/run.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project.dir / "data" / "run.txt").read_text() == "from-run\n"
    # stdin is attached (pipes work, as `docker compose run`).
    r = project.run("run", "web", "--", "cat", input="piped in\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "piped in\n"
    # The exit status passes through; a signal is 128+N.
    r = project.run("run", "web", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, r.stdout + r.stderr
    r = project.run("run", "web", "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + 15, r.stdout + r.stderr
    # A command the image lacks: 127, as Docker.
    r = project.run("run", "web", "--", "no-such-command")
    assert r.returncode == 127, r.stdout + r.stderr
    # No writable layer is left behind, and nothing ran on the host: the host
    # has no /etc/image-release.
    assert container_dirs(scratch) == []
    assert not os.path.exists("/etc/image-release")


def test_run_without_cmd_runs_the_services_command_once(scratch):
    load_image(scratch)
    toml = TOML.format(ref=REF).replace('command = "exec httpd -f -p $PORT -h /srv/app"',
                                        'command = "echo once in $(pwd) as $(id -u)"')
    project = Project(scratch, toml)
    r = project.run("run", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "once in /srv/app as 1000\n"
    assert container_dirs(scratch) == []


def test_run_uses_the_daemons_port_when_it_runs_the_project(scratch):
    load_image(scratch)
    toml = TOML.format(ref=REF).replace("port = 4711\n", "")
    project = Project(scratch, toml)
    r = project.run("up", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    import json
    status = json.loads(project.run("status", "--json").stdout)
    port = next(s["port"] for s in status["services"] if s["name"] == "web")
    assert port
    r = project.run("run", "web", "--", "sh", "-c", "echo $PORT; env | grep -c NOTIFY_SOCKET")
    assert r.stdout.splitlines() == [str(port), "0"], r.stdout + r.stderr
    # `env` agrees, and shows NOTIFY_SOCKET (network host) as the service gets it.
    r = project.run("env", "--explain", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    explained = {line.split("=", 1)[0]: line for line in env_lines(r.stdout)}
    assert explained["PORT"] == f"PORT={port}  # injected by locald"
    assert explained["NOTIFY_SOCKET"].endswith("# injected by locald")
    assert explained["FROM_IMAGE"] == f"FROM_IMAGE=image  # image config ({REF})"
    # From another directory the daemon resolves `envrun:web` and its project
    # dir: CMD runs in a container of the image (a file only the image has,
    # the service's workdir and volume), never on the host.
    marker = scratch.out / "ran-on-host"  # writable by the test user
    r = run_as(scratch.user, [str(scratch.bin), "run", "envrun:web", "--", "sh", "-c",
                              f"cat /etc/image-release; pwd; echo $PORT; echo x > /out/elsewhere; "
                              f"touch {marker}"],
               scratch.home, cwd="/tmp")
    assert r.stdout.splitlines()[:3] == ["ID=envrun-image", "/srv/app", str(port)], \
        r.stdout + r.stderr
    assert r.returncode != 0  # the host path of `marker` does not exist in the container
    assert (project.dir / "data" / "elsewhere").read_text() == "x\n"
    assert not marker.exists()
    # In the project dir with its config broken, the reason is the config (not
    # "run it from its project's directory"), and still nothing runs on the host.
    toml_path = project.dir / "locald.toml"
    good = toml_path.read_text()
    toml_path.write_text(good + "\n[service.web\n")
    r = project.run("run", "web", "--", "touch", str(marker))
    assert r.returncode != 0
    assert "locald.toml" in r.stderr and "is an image service" not in r.stderr, r.stderr
    assert not marker.exists()
    toml_path.write_text(good)
    r = project.run("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_run_on_a_terminal_gives_the_container_a_terminal(scratch):
    import pty
    import select
    from ns_util import as_user_argv, user_env
    load_image(scratch)
    project = Project(scratch, TOML.format(ref=REF))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        as_user_argv(scratch.user, [str(scratch.bin), "run", "web", "--", "sh", "-c",
                                    "test -t 0 && test -t 1 && echo has-a-tty TERM=$TERM; exit 3"]),
        env=user_env(scratch.user, scratch.home), cwd=str(project.dir), stdin=slave,
        stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every writer closed the pty
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 3, out
    # TERM=xterm is the launcher's sign of the container's own terminal (an
    # inherited host pty would pass `test -t` too).
    assert b"has-a-tty TERM=xterm" in out, out
    assert container_dirs(scratch) == []


def test_run_pulls_a_missing_image_with_progress_on_stderr(scratch, tmp_path):
    import registry_util as ru
    with ru.Registry(tmp_path / "registry") as registry:
        files = ob.busybox_files(applets=APPLETS)
        files["etc/image-release"] = ob.File(b"ID=pulled-image\n")
        files["srv"] = ob.Dir()
        files["srv/app"] = ob.Dir(mode=0o777)
        image = ob.make_image([ob.Layer(files)], config={"Env": ["PATH=/bin"]})
        registry.push_image("test/envrun", "1", image)
        ref = f"{registry.host}/test/envrun:1"
        project = Project(scratch, TOML.format(ref=ref))
        # env never pulls.
        r = project.run("env", "web")
        assert r.returncode != 0 and "not in the local store" in r.stderr, r.stderr
        r = project.run("run", "web", "--", "cat", "/etc/image-release", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout == "ID=pulled-image\n"
        # The pull's progress went to stderr, one line per layer.
        layer = image.layers[0].digest
        assert layer.split(":")[1][:12] in r.stderr, r.stderr
        assert container_dirs(scratch) == []
        # Now in the store: env shows the image's layer.
        r = project.run("env", "--explain", "web")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"PATH=/bin  # image config ({ref})" in r.stdout.splitlines()
