"""Helpers for the image-service integration tests: a project dir owned by the
unprivileged test user, with `locald` run there as that user, and scans of
/proc for the daemon's children."""
import json
import os
import pathlib
import subprocess
import textwrap

import pytest

import oci_build as ob
from ns_util import Scratch, run_as


@pytest.fixture
def scratch(locald_bin, test_user):
    """A Scratch for the test user; its daemon is shut down afterwards."""
    s = Scratch(locald_bin, test_user)
    yield s
    s.run("shutdown", timeout=90)
    s.cleanup()


class Project:
    """A project dir owned by the test user, and `locald` run there as that user.
    Its `data/` dir is world-writable, so containers running as any uid can
    write to a bind mount of it."""

    def __init__(self, scratch, toml):
        self.scratch = scratch
        self.dir = scratch.dir / "proj"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "data", 0o777)
        (self.dir / "locald.toml").write_text(textwrap.dedent(toml).lstrip())
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{scratch.user}:{scratch.user}", str(self.dir)],
                           check=True)

    def write_toml(self, toml):
        path = self.dir / "locald.toml"
        path.write_text(textwrap.dedent(toml).lstrip())
        if os.geteuid() == 0:
            subprocess.run(["chown", f"{self.scratch.user}:{self.scratch.user}", str(path)],
                           check=True)

    def run(self, *args, timeout=90, input=None):
        return run_as(self.scratch.user, [str(self.scratch.bin), *map(str, args)],
                      self.scratch.home, timeout=timeout, cwd=str(self.dir), input=input)

    def status(self):
        r = self.run("status", "--json")
        assert r.returncode == 0, r.stderr
        return {s["name"]: s for s in json.loads(r.stdout)["services"]}

    def daemon_log(self):
        try:
            return (self.scratch.home / "state" / "daemon.log").read_text()[-4000:]
        except OSError:
            return "(no daemon.log)"


def load_image(scratch, ref, files, config, name="image"):
    """Builds a one-layer OCI image of `files` with `config`, tags it `ref`
    and `locald image load`s it as the test user."""
    layout = ob.Layout(scratch.dir / f"layout-{name}")
    image = layout.add_image(layers=[ob.Layer(files)], config=config)
    layout.tag(ref, image)
    tar = scratch.dir / f"{name}.tar"
    layout.to_tar(tar)
    os.chmod(tar, 0o644)
    r = scratch.run("image", "load", tar)
    assert r.returncode == 0, r.stderr


def processes():
    """(pid, ppid, state, argv) of every process /proc shows now."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        yield (int(entry.name), int(fields[1]), fields[0],
               [a.decode(errors="replace") for a in argv if a])
