"""Pull and unpack in one command, overlapped: each layer is applied as soon as
its blob (and the config) is in the store, while later layers still download.
A real docker-registry behind a proxy that holds back the top layer's bytes
until the test lets them go (fault injection: a slow network): while it is
held, the bottom layer must already be applied. Both `locald image unpack`
(flattened, in order) and the container path (`__prepare-image`: per-layer
snapshots), as root and as the unprivileged user (whose apply runs in its user
namespace, forked before the pull's threads)."""
import glob
import pathlib
import shutil
import tempfile
import time

import pytest

import oci_build as ob
from registry_util import Registry
from layers_util import SHELL_CONFIG, GatedProxy, Home, base_layer, chain_ids
from layers_util import home  # noqa: F401 (the fixture)


@pytest.fixture
def registry():
    root = pathlib.Path(tempfile.mkdtemp(prefix="locald-pipeline-reg-"))
    try:
        with Registry(root) as r:
            yield r
    finally:
        shutil.rmtree(root, ignore_errors=True)


def two_layers():
    base = base_layer({"srv/first": ob.File(b"first\n", uid=100, gid=100)})
    top = ob.Layer({"srv/second": ob.File(b"second\n" * (1 << 18))}, compression="zstd")
    return base, top


def wait_for(predicate, what, proc):
    """Polls until `predicate()` (bounded, not a timing assertion)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited before {what}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def user_dir(home, name):
    d = home.dir / name
    d.mkdir(mode=0o755)
    if home.user:
        shutil.chown(d, home.user, home.user)
    return d


def test_image_unpack_applies_layers_while_later_ones_download(home, registry):
    base, top = two_layers()
    image = ob.make_image([base, top], config=SHELL_CONFIG)
    registry.push_image("team/app", "v1", image)
    proxy = GatedProxy(registry.port, held_digest=top.blob("oci").digest)
    out = user_dir(home, "out")
    target = out / "rootfs"
    proc = home.popen("image", "unpack", f"127.0.0.1:{proxy.port}/team/app:v1", target)
    try:
        partial = lambda: glob.glob(str(out / ".rootfs.unpack-*" / "srv" / "first"))  # noqa: E731
        wait_for(lambda: proxy.holding.is_set() and partial(), "the bottom layer applied", proc)
        # The top layer is still held back: the bottom one was applied first.
        assert not glob.glob(str(out / ".rootfs.unpack-*" / "srv" / "second"))
        assert not target.exists()
        proxy.release()
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "(2 layers," in stdout, stdout
    finally:
        proxy.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (target / "srv" / "first").read_bytes() == b"first\n"
    assert (target / "srv" / "second").stat().st_size == 7 << 18
    owner = (target / "srv" / "first").stat().st_uid
    if home.user:
        import pwd
        uid = pwd.getpwnam(home.user).pw_uid
        assert owner != uid, "uid 100 maps into the subordinate range, not the user"
    else:
        assert owner == 100
    assert not glob.glob(str(out / ".rootfs.unpack-*"))


def test_container_prepare_applies_layers_while_later_ones_download(home, registry):
    base, top = two_layers()
    image = ob.make_image([base, top], config=SHELL_CONFIG)
    registry.push_image("team/app", "v1", image)
    proxy = GatedProxy(registry.port, held_digest=top.blob("oci").digest)
    services = home.home / "data" / "services"
    services.mkdir(parents=True, mode=0o700)
    if home.user:
        for d in (home.home / "data", services):
            shutil.chown(d, home.user, home.user)
    ref = f"127.0.0.1:{proxy.port}/team/app:v1"
    proc = home.popen("__prepare-image", "--ref", ref, "--dir", services / "svc")
    try:
        applying = lambda: glob.glob(str(home.snapshots / ".tmp-*" / "fs" / "srv" / "first"))  # noqa: E731
        wait_for(lambda: proxy.holding.is_set() and applying(), "the bottom layer applied",
                 proc)
        assert home.snapshot_ids() == set(), "snapshots are committed only whole, bottom-up"
        proxy.release()
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout + stderr
    finally:
        proxy.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert home.snapshot_ids() == set(chain_ids([base.diff_id, top.diff_id]))
    assert home.leftovers() == set()
    if home.user:
        # And the image runs from those snapshots, in one more command.
        r = home.run("container", "run", ref, "cat /srv/first; wc -c < /srv/second")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["first", str(7 << 18)]


def test_rootless_container_run_pulls_and_unpacks_in_one_command(locald_bin, test_user, registry):
    home = Home(locald_bin, test_user)
    try:
        base, top = two_layers()
        registry.push_image("team/run", "v1", ob.make_image([base, top], config=SHELL_CONFIG))
        r = home.run("container", "run", f"{registry.host}/team/run:v1",
                     "stat -c %u /srv/first; cat /srv/first")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["100", "first"]
        assert home.snapshot_ids() == set(chain_ids([base.diff_id, top.diff_id]))
    finally:
        home.cleanup()


def test_bad_diff_id_while_pulling_commits_nothing(home, registry):
    base, top = two_layers()
    config = ob.make_config([base, top], config=SHELL_CONFIG)
    bad = config.replace(top.diff_id.encode(), ("sha256:" + "0" * 64).encode())
    registry.push_image("team/bad", "v1", ob.make_image([base, top], raw_config=bad))
    out = user_dir(home, "out")
    target = out / "rootfs"
    r = home.run("image", "unpack", f"{registry.host}/team/bad:v1", target)
    assert r.returncode != 0
    assert "DiffID mismatch" in r.stderr and top.blob("oci").digest in r.stderr, r.stderr
    assert not target.exists()
    assert list(out.iterdir()) == []
    services = home.home / "data" / "services"
    services.mkdir(mode=0o700)
    if home.user:
        shutil.chown(services, home.user, home.user)
    r = home.run("__prepare-image", "--ref", f"{registry.host}/team/bad:v1", "--dir",
                 services / "svc")
    assert r.returncode != 0
    assert "DiffID mismatch" in r.stdout + r.stderr
    assert home.snapshot_ids() == set()
    assert home.leftovers() == set()
