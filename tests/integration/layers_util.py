"""Helpers for the layers integration tests: a multi-layer image that covers
owners, setuid, hardlinks, fifos, devices, whiteouts and every compression,
its expected root filesystem, and a file-by-file tree comparison."""
import os
import pathlib
import pwd
import shutil
import stat
import socket
import subprocess
import tempfile
import threading

import pytest

import oci_build as ob
from ns_util import as_user_argv, user_env

REF = "docker.io/library/layers-test:1"


def rich_layers():
    l1 = ob.Layer({
        "bin": ob.Dir(),
        "bin/su": ob.File(b"setuid-binary", mode=0o4755),
        "bin/su2": ob.Hardlink("bin/su"),
        "bin/sh": ob.Symlink("/bin/su"),
        "etc": ob.Dir(),
        "etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:999:999::/home/app:/bin/sh\n",
        "etc/todelete": "gone soon",
        "tmp": ob.Dir(mode=0o1777),
        "home": ob.Dir(),
        "home/app": ob.Dir(mode=0o750, uid=999, gid=999),
        "home/app/data": ob.File(b"app data", mode=0o600, uid=999, gid=999),
        "data": ob.Dir(),
        "data/owned100": ob.File(b"v1", uid=100, gid=101),
        "data/group": ob.File(b"g", mode=0o2755, uid=0, gid=50),
        "run": ob.Dir(),
        "run/fifo": ob.Fifo(mode=0o600),
        "dev": ob.Dir(),
        "dev/null": ob.CharDev(1, 3),
        "opq": ob.Dir(),
        "opq/old": "old",
        "opq/sub": ob.Dir(),
        "opq/sub/x": "x",
    }, compression="gzip")
    l2 = ob.Layer({
        "etc": ob.Dir(),
        "etc/.wh.todelete": b"",
        "opq": ob.Dir(mode=0o700),
        "opq/.wh..wh..opq": b"",
        "opq/new": "new",
        "data": ob.Dir(),
        "data/owned100": ob.File(b"v2", mode=0o640, uid=100, gid=101),
    }, compression="zstd")
    l3 = ob.Layer({
        "notes": ob.File(b"xattr", xattrs={"user.note": b"hello"}),
        "locked": ob.Dir(mode=0o500),
        "locked/file": ob.File(b"ro", mode=0o400),
    }, compression="none")
    return [l1, l2, l3]


# path -> (kind, mode, uid, gid, content-or-target); owners in container ids.
def expected_tree(devices: bool):
    tree = {
        "bin": ("d", 0o755, 0, 0, None),
        "bin/su": ("f", 0o4755, 0, 0, b"setuid-binary"),
        "bin/su2": ("f", 0o4755, 0, 0, b"setuid-binary"),
        "bin/sh": ("l", None, 0, 0, "/bin/su"),
        "etc": ("d", 0o755, 0, 0, None),
        "etc/passwd": ("f", 0o644, 0, 0,
                       b"root:x:0:0::/root:/bin/sh\napp:x:999:999::/home/app:/bin/sh\n"),
        "tmp": ("d", 0o1777, 0, 0, None),
        "home": ("d", 0o755, 0, 0, None),
        "home/app": ("d", 0o750, 999, 999, None),
        "home/app/data": ("f", 0o600, 999, 999, b"app data"),
        "data": ("d", 0o755, 0, 0, None),
        "data/owned100": ("f", 0o640, 100, 101, b"v2"),
        "data/group": ("f", 0o2755, 0, 50, b"g"),
        "run": ("d", 0o755, 0, 0, None),
        "run/fifo": ("p", 0o600, 0, 0, None),
        "dev": ("d", 0o755, 0, 0, None),
        "opq": ("d", 0o700, 0, 0, None),
        "opq/new": ("f", 0o644, 0, 0, b"new"),
        "notes": ("f", 0o644, 0, 0, b"xattr"),
        "locked": ("d", 0o500, 0, 0, None),
        "locked/file": ("f", 0o400, 0, 0, b"ro"),
    }
    if devices:
        tree["dev/null"] = ("c", 0o666, 0, 0, (1, 3))
    return tree


def actual_tree(root: pathlib.Path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", mode, st.st_uid, st.st_gid, None)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("f", mode, st.st_uid, st.st_gid, path.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", None, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ("p", mode, st.st_uid, st.st_gid, None)
            elif stat.S_ISCHR(st.st_mode):
                out[rel] = ("c", mode, st.st_uid, st.st_gid,
                            (os.major(st.st_rdev), os.minor(st.st_rdev)))
            else:
                out[rel] = ("?", mode, st.st_uid, st.st_gid, None)
    return out


def subid_start(user: str, path: str) -> int:
    for line in pathlib.Path(path).read_text().splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user:
            return int(parts[1])
    raise AssertionError(f"no range for {user} in {path}")


def host_ids(tree, user: str):
    """Maps container ids to host ids for the rootless container mapping."""
    pw = pwd.getpwnam(user)
    ustart = subid_start(user, "/etc/subuid")
    gstart = subid_start(user, "/etc/subgid")
    out = {}
    for rel, (kind, mode, uid, gid, data) in tree.items():
        huid = pw.pw_uid if uid == 0 else ustart + uid - 1
        hgid = pw.pw_gid if gid == 0 else gstart + gid - 1
        out[rel] = (kind, mode, huid, hgid, data)
    return out


def user_scratch(user: str) -> pathlib.Path:
    """A scratch dir under /tmp owned by `user` (the rootless runs cannot
    traverse pytest's root-only tmp_path)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="locald-layers-"))
    shutil.chown(path, user, user)
    os.chmod(path, 0o755)
    return path


def user_copy_of_binary(binary, scratch: pathlib.Path, user: str) -> pathlib.Path:
    target = scratch / "locald"
    shutil.copy2(binary, target)
    os.chmod(target, 0o755)
    return target


def run_as(user: str, argv, env):
    full = ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in env.items()], *map(str, argv)]
    return subprocess.run(full, capture_output=True, text=True, timeout=120, cwd="/tmp")


def remove_as_root(path: pathlib.Path):
    subprocess.run(["chmod", "-R", "u+rwx", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


SHELL_CONFIG = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["true"], "Env": ["PATH=/bin"]}


class Home:
    """A LOCALD_HOME and a copy of the binary usable by `user` (None: root)."""

    def __init__(self, locald_bin, user):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="locald-prune-test-"))
        os.chmod(self.dir, 0o755)
        self.user = user
        self.bin = self.dir / "locald"
        shutil.copy2(locald_bin, self.bin)
        launch = pathlib.Path(locald_bin).parent / "locald-launch"
        if launch.exists():
            shutil.copy2(launch, self.dir / "locald-launch")
        self.home = self.dir / "home"
        self.home.mkdir(mode=0o700)
        if user:
            subprocess.run(["chown", "-R", f"{user}:{user}", str(self.home)], check=True)

    def argv(self, args):
        argv = [str(self.bin), *map(str, args)]
        return as_user_argv(self.user, argv) if self.user else argv

    def env(self):
        if self.user:
            return user_env(self.user, self.home)
        env = dict(os.environ)
        env["LOCALD_HOME"] = str(self.home)
        return env

    def run(self, *args, timeout=120):
        return subprocess.run(self.argv(args), env=self.env(), cwd="/tmp", capture_output=True,
                              text=True, timeout=timeout)

    def popen(self, *args):
        return subprocess.Popen(self.argv(args), env=self.env(), cwd="/tmp",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def snapshots(self) -> pathlib.Path:
        return self.home / "data" / "snapshots"

    def snapshot_ids(self) -> set:
        if not self.snapshots.exists():
            return set()
        return {"sha256:" + p.name for p in self.snapshots.iterdir() if not p.name.startswith(".")}

    def leftovers(self) -> set:
        if not self.snapshots.exists():
            return set()
        return {p.name for p in self.snapshots.iterdir()
                if p.name.startswith(".tmp-") or p.name.startswith(".rm-")}

    def leases(self) -> list:
        leases = self.snapshots / ".leases"
        return sorted(leases.iterdir()) if leases.exists() else []

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def chain_ids(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else ob.sha256(f"{out[-1]} {d}".encode()))
    return out


def base_layer(extra=None):
    files = ob.busybox_files(applets=ob.busybox_files.__defaults__[0] + ("stat",))
    files["etc/passwd"] = "root:x:0:0:root:/root:/bin/sh\n"
    files["srv"] = ob.Dir(uid=100, gid=100)
    # Files of a subordinate owner, in a directory only it may write: the
    # rootless removal must go through the namespace.
    files["srv/private"] = ob.Dir(mode=0o500, uid=100, gid=100)
    files["srv/private/data"] = ob.File(b"secret", mode=0o400, uid=100, gid=100)
    files.update(extra or {})
    return ob.Layer(files)


class GatedProxy:
    """A TCP proxy in front of a registry whose responses wait at a gate until
    release() (fault injection: a slow network). With `held_digest`, only a
    connection that asks for that blob waits; without, every response waits
    once past its first `free_bytes` (so manifests and configs get through).
    `holding` is set when something first waits at the gate."""

    def __init__(self, upstream_port, held_digest=None, free_bytes=65536):
        self.upstream_port = upstream_port
        self.held = held_digest.split(":")[1] if held_digest else None
        self.free_bytes = free_bytes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.gate = threading.Event()
        self.holding = threading.Event()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self):
        self.gate.set()

    def close(self):
        self.closed = True
        self.gate.set()
        self.sock.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"hold": False}
            threading.Thread(target=self._pipe, args=(client, upstream, state, True),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, state, False),
                             daemon=True).start()

    def _pipe(self, src, dst, state, request_side):
        sent = 0
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if request_side:
                    if self.held and f"/blobs/sha256:{self.held}".encode() in data:
                        state["hold"] = True
                else:
                    sent += len(data)
                    if state["hold"] or (self.held is None and sent > self.free_bytes):
                        self.holding.set()
                        self.gate.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.fixture(params=["root", "rootless"])
def home(request, locald_bin, test_user):
    """A Home for root and for the unprivileged test user, in turn."""
    user = None
    if request.param == "rootless":
        user = test_user
    elif os.geteuid() != 0:
        pytest.skip("the root variant needs root")
    h = Home(locald_bin, user)
    yield h
    h.cleanup()
