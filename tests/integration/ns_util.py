"""Helpers for the launcher's integration tests: a busybox rootfs and running
the real binary as the unprivileged test user (setpriv execs directly, so
signals sent to the returned process reach locald itself)."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

APPLETS = ("sh", "ls", "cat", "echo", "id", "true", "false", "sleep", "mount", "ps", "grep",
           "kill", "hostname", "readlink", "stat", "touch", "chown", "chmod", "mkdir", "rm", "env",
           "wc", "head", "printf", "test", "umount", "ln", "tr", "cut", "dd", "seq")


def make_busybox_rootfs(root: pathlib.Path, owner: str = None, extra_passwd: str = "",
                        extra_group: str = "") -> pathlib.Path:
    """A minimal rootfs: /bin/busybox + applets, /etc/passwd with root and app (1000)."""
    if not pathlib.Path("/bin/busybox").exists():
        raise RuntimeError("/bin/busybox missing: apt-get install busybox-static")
    for sub in ("bin", "etc", "tmp", "root", "home/app", "data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        link = root / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
        "other:x:2000:2000::/:/bin/sh\n" + extra_passwd)
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nother:x:2000:\n" + extra_group)
    if owner:
        subprocess.run(["chown", "-R", f"{owner}:{owner}", str(root)], check=True)
    return root


def user_ids(name: str):
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


def as_user_argv(user: str, argv):
    """argv run as `user` (exec'd directly, no intermediate process)."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] + list(argv)


def user_env(user: str, locald_home) -> dict:
    uid, _, home = user_ids(user) if os.geteuid() == 0 else (os.geteuid(), 0, os.environ["HOME"])
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": home, "LOCALD_HOME": str(locald_home),
           "TMPDIR": "/tmp"}
    return env


def run_as(user: str, argv, locald_home, timeout=60, input=None, cwd="/tmp"):
    return subprocess.run(as_user_argv(user, argv), env=user_env(user, locald_home), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, input=input)


def popen_as(user: str, argv, locald_home, cwd="/tmp"):
    return subprocess.Popen(as_user_argv(user, argv), env=user_env(user, locald_home), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Scratch:
    """A world-traversable dir under /tmp with a copy of the binary, a rootfs and
    a LOCALD_HOME owned by the test user (pytest's tmp_path is 0700 root)."""

    def __init__(self, locald_bin, user):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="locald-ns-test-"))
        os.chmod(self.dir, 0o755)
        self.user = user
        self.bin = self.dir / "locald"
        shutil.copy2(locald_bin, self.bin)
        os.chmod(self.bin, 0o755)
        # The slim launch executable, found next to `locald` (ns::launch_command).
        self.launch_bin = self.dir / "locald-launch"
        built_launch = pathlib.Path(locald_bin).parent / "locald-launch"
        if built_launch.exists():
            shutil.copy2(built_launch, self.launch_bin)
            os.chmod(self.launch_bin, 0o755)
        self.home = self.dir / "home"
        self.home.mkdir(mode=0o700)
        self.rootfs = make_busybox_rootfs(self.dir / "rootfs")
        self.out = self.dir / "out"
        self.out.mkdir(mode=0o777)
        os.chmod(self.out, 0o777)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{user}:{user}", str(self.home), str(self.rootfs),
                            str(self.out)], check=True)

    def run(self, *args, timeout=60, input=None):
        return run_as(self.user, [str(self.bin), *map(str, args)], self.home, timeout=timeout,
                      input=input)

    def popen(self, *args):
        return popen_as(self.user, [str(self.bin), *map(str, args)], self.home)

    def container(self, *args, timeout=60, input=None):
        """`locald container run --rootfs ROOTFS ARGS…`"""
        return self.run("container", "run", "--rootfs", self.rootfs, *args, timeout=timeout,
                        input=input)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
