"""`locald rmi` and `locald prune` remove the layer snapshots no image needs:
two images sharing a base layer, run as containers (which creates one
snapshot per layer), then removed — as root and as the unprivileged user,
whose snapshots hold files of subordinate ids and can only be removed through
its user namespace. A container still running keeps its snapshots; a pull
running concurrently with prune is not broken."""
import json
import os
import pathlib
import shutil
import tempfile

import oci_build as ob
from layers_util import SHELL_CONFIG, GatedProxy, base_layer, chain_ids
from layers_util import home  # noqa: F401 (the fixture)
from registry_util import Registry

BASE_REF = "localhost/prune-a:1"
OTHER_REF = "localhost/prune-b:1"
def load(home, layout_dir, images):
    """Tags `images` ({ref: [layers]}) in one layout and `image load`s it."""
    layout = ob.Layout(layout_dir)
    built = {}
    for ref, layers in images.items():
        image = layout.add_image(layers=layers, config=SHELL_CONFIG)
        layout.tag(ref, image)
        built[ref] = image
    tar = layout_dir.parent / (layout_dir.name + ".tar")
    layout.to_tar(tar)
    os.chmod(tar, 0o644)
    r = home.run("image", "load", tar)
    assert r.returncode == 0, r.stderr
    return built


def run_ok(home, ref, *cmd):
    r = home.run("container", "run", ref, *cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def prepare(home, ref, name):
    """The daemon's path: snapshots + a writable layer kept in a dir under
    <data>/services (an image service that is running)."""
    services = home.home / "data" / "services"
    if not services.exists():
        services.mkdir(mode=0o700)  # the daemon creates it
        if home.user:
            shutil.chown(services, home.user, home.user)
    r = home.run("__prepare-image", "--ref", ref, "--dir", services / name)
    assert r.returncode == 0, r.stdout + r.stderr
    return services / name


def cleanup(home, directory):
    r = home.run("__prepare-image", "--cleanup", directory)
    assert r.returncode == 0, r.stdout + r.stderr


def read(home, ref, path):
    """`path` in the image's root filesystem: through a container when
    rootless; as root (this machine has no subordinate range for root, so
    containers cannot run as root here) from the snapshots, top-most first."""
    if home.user:
        return run_ok(home, ref, f"cat {path}")
    directory = prepare(home, ref, "read")
    try:
        return read_from_snapshots(home, ref, path)
    finally:
        cleanup(home, directory)


def image_chains(home, ref):
    store = home.home / "data" / "store"
    index = json.loads((store / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name", "").endswith(
                ref.split("/", 1)[1]):
            manifest = json.loads((store / "blobs" / "sha256" /
                                   m["digest"].split(":")[1]).read_text())
            config = json.loads((store / "blobs" / "sha256" /
                                 manifest["config"]["digest"].split(":")[1]).read_text())
            return chain_ids(config["rootfs"]["diff_ids"])
    raise AssertionError(f"{ref} not in the store")


def read_from_snapshots(home, ref, path):
    for chain in reversed(image_chains(home, ref)):
        f = home.snapshots / chain.split(":")[1] / "fs" / path.lstrip("/")
        if f.exists():
            return f.read_text()
    raise AssertionError(f"{path} in no snapshot of {ref}")


def test_rmi_and_prune_remove_only_unneeded_snapshots(home):
    base = base_layer()
    top_a = ob.Layer({"srv/a": "a\n"}, compression="zstd")
    top_b = ob.Layer({"srv/b": "b\n"})
    load(home, home.dir / "l1", {BASE_REF: [base, top_a], OTHER_REF: [base, top_b]})
    chains_a = chain_ids([base.diff_id, top_a.diff_id])
    chains_b = chain_ids([base.diff_id, top_b.diff_id])
    assert chains_a[0] == chains_b[0]
    assert home.snapshot_ids() == set()

    assert read(home, BASE_REF, "/srv/a") == "a\n"
    assert read(home, OTHER_REF, "/srv/b") == "b\n"
    assert home.snapshot_ids() == set(chains_a) | set(chains_b)

    # rmi A: its own snapshot goes, the shared base stays.
    r = home.run("rmi", BASE_REF)
    assert r.returncode == 0, r.stderr
    assert f"Deleted snapshot: {chains_a[1]}" in r.stdout
    assert home.snapshot_ids() == set(chains_b)
    assert read(home, OTHER_REF, "/srv/b") == "b\n"

    # A new image under B's tag: B's old top snapshot is now unreferenced
    # (rmi never saw it); prune removes it and keeps the base B2 still needs.
    top_b2 = ob.Layer({"srv/b": "b2\n"})
    load(home, home.dir / "l2", {OTHER_REF: [base, top_b2]})
    r = home.run("prune", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["removed_snapshots"] == [chains_b[1]]
    assert home.snapshot_ids() == {chains_b[0]}
    assert read(home, OTHER_REF, "/srv/b") == "b2\n"

    # Dropping the last image: the base goes with it; prune finds nothing
    # left, and the store is empty and consistent.
    r = home.run("rmi", OTHER_REF)
    assert r.returncode == 0, r.stderr
    assert home.snapshot_ids() == set()
    r = home.run("prune")
    assert r.returncode == 0, r.stderr
    assert "0 snapshots" in r.stdout
    assert home.leftovers() == set()
    assert home.leases() == []
    assert list((home.home / "data" / "store" / "blobs" / "sha256").iterdir()) == []
    r = home.run("images")
    assert r.returncode == 0, r.stderr
    assert "prune-" not in r.stdout


def test_running_container_keeps_its_snapshots(home):
    base = base_layer()
    top = ob.Layer({"srv/a": "a\n"})
    load(home, home.dir / "l1", {BASE_REF: [base, top]})
    chains = chain_ids([base.diff_id, top.diff_id])
    # An image service's writable layer (prepared by the daemon's helper,
    # which exits): its snapshots stay while the directory exists.
    service = prepare(home, BASE_REF, "svc")
    proc = None
    if home.user:
        # And a `container run` still running.
        proc = home.popen("container", "run", "-i", BASE_REF, "echo ready; read line; cat /srv/a")
    try:
        if proc:
            assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        assert home.snapshot_ids() == set(chains)
        r = home.run("rmi", BASE_REF)
        assert r.returncode == 0, r.stderr
        assert "Deleted snapshot" not in r.stdout
        r = home.run("prune")
        assert r.returncode == 0, r.stderr
        assert home.snapshot_ids() == set(chains), "a running container's layers stay"
        cleanup(home, service)
        if proc:
            r = home.run("prune")
            assert r.returncode == 0, r.stderr
            assert home.snapshot_ids() == set(chains), "the running container still uses them"
            out, err = proc.communicate("go\n", timeout=60)
            assert (proc.returncode, out) == (0, "a\n"), err
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
    # Containers gone: their leases are stale and prune removes the snapshots.
    r = home.run("prune")
    assert r.returncode == 0, r.stderr
    assert home.snapshot_ids() == set()
    assert home.leases() == []
    assert home.leftovers() == set()


def test_prune_during_a_pull_does_not_break_it(home):
    # A plain-http loopback registry, reachable by both variants.
    registry_root = pathlib.Path(tempfile.mkdtemp(prefix="locald-prune-reg-"))
    try:
        with Registry(registry_root) as registry:
            base = base_layer()
            big = ob.Layer({"srv/big": ob.File(b"0123456789abcdef" * (1 << 17))}, compression="none")
            image = ob.make_image([base, big], config=SHELL_CONFIG)
            registry.push_image("team/app", "v1", image)
            # Something for prune to remove meanwhile: an image run, then untagged
            # behind rmi's back by loading another image under its tag.
            old_top = ob.Layer({"srv/old": "old\n"})
            load(home, home.dir / "l1", {BASE_REF: [base, old_top]})
            read(home, BASE_REF, "/srv/old")
            load(home, home.dir / "l2", {BASE_REF: [base]})
            proxy = GatedProxy(registry.port)
            ref = f"127.0.0.1:{proxy.port}/team/app:v1"
            pull = home.popen("pull", ref)
            try:
                assert proxy.holding.wait(60), "the pull never reached the layers"
                r = home.run("prune")
                # Blobs wait for the pull (its lease); snapshots do not.
                assert r.returncode != 0
                assert "pull or load is in progress" in r.stderr
                old_chain = chain_ids([base.diff_id, old_top.diff_id])[1]
                assert f"Deleted snapshot: {old_chain}" in r.stdout
                proxy.release()
                out, err = pull.communicate(timeout=120)
                assert pull.returncode == 0, err
            finally:
                proxy.close()
                if pull.poll() is None:
                    pull.kill()
                    pull.wait()
            assert len(read(home, ref, "/srv/big")) == 2 << 20
            r = home.run("prune")
            assert r.returncode == 0, r.stderr
            chains = chain_ids([base.diff_id, big.diff_id])
            assert home.snapshot_ids() == set(chains)
    finally:
        shutil.rmtree(registry_root, ignore_errors=True)
