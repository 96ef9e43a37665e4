"""Helpers for the image-service integration tests: a project dir owned by the
unprivileged test user, with `locald` run there as that user, and scans of
/proc for the daemon's children."""
import json
import os
import subprocess
import textwrap

from ns_util import run_as


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
