"""`locald image load` of `docker save` archives built by the tests
(docker_save_util.py): the legacy layout (<id>/layer.tar, symlinked repeats,
repositories) and the blobs/sha256 layout, as a tar and as a directory, read
into proper images (Docker schema 2 manifest, digests = diff_ids, tags from
RepoTags) that inspect and unpack; malformed archives fail naming the entry
and leave the store untouched."""
import hashlib
import os
import json
import pathlib
import platform
import tarfile

import pytest

import docker_save_util as ds
import oci_build as ob
import registry_util as ru


def two_images():
    busybox = ob.busybox_layer(compression="none")
    extra = ob.Layer({"etc/x": "one\n"}, compression="none")
    first = ds.DockerImage([busybox, extra], tags=["busy:1", "localhost:5000/team/busy:latest"],
                           config={"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"})
    # busybox again, at another position: legacy archives symlink the repeat.
    second = ds.DockerImage([ob.Layer({"etc/y": "two\n"}, compression="none"), busybox],
                            tags=["other:2"])
    return first, second


def store_blobs(home):
    root = pathlib.Path(home) / "data" / "store" / "blobs" / "sha256"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def refs(run_locald):
    return {i["name"]: i for i in json.loads(run_locald("images", "--json", check=True).stdout)}


def check_loaded(run_locald, tmp_path, image, name, source):
    inspect = json.loads(run_locald("image", "inspect", name, "--json", check=True).stdout)
    manifest = inspect["manifest"]
    assert manifest["mediaType"] == ob.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == ob.DOCKER_CONFIG
    assert manifest["config"]["digest"] == ob.sha256(image.config)
    assert manifest["config"]["size"] == len(image.config)
    assert [l["digest"] for l in manifest["layers"]] == image.diff_ids
    assert [l["size"] for l in manifest["layers"]] == [len(l.tar) for l in image.layers]
    assert {l["mediaType"] for l in manifest["layers"]} == {ob.DOCKER_LAYER}
    full = name if "/" in name else f"docker.io/library/{name}"
    listed = refs(run_locald)[full]
    assert listed["source"] == f"load:{source}"
    return inspect


@pytest.mark.parametrize("shape", ["legacy", "blobs"])
def test_load_docker_save_tar_then_inspect_and_unpack(run_locald, locald_home, tmp_path, shape):
    first, second = two_images()
    archive = ds.write_archive(tmp_path / "save.tar", [first, second], shape=shape)
    if shape == "legacy":
        with tarfile.open(archive) as tar:
            assert any(m.issym() for m in tar.getmembers())  # the repeat is a link
            assert "oci-layout" not in tar.getnames()

    result = run_locald("image", "load", archive, check=True)
    for name in ["docker.io/library/busy:1", "localhost:5000/team/busy:latest",
                 "docker.io/library/other:2"]:
        assert f"Loaded {name} (sha256:" in result.stdout, result.stdout
    check_loaded(run_locald, tmp_path, first, "busy:1", archive)
    check_loaded(run_locald, tmp_path, second, "other:2", archive)
    listed = refs(run_locald)
    assert listed["docker.io/library/busy:1"]["digest"] == \
        listed["localhost:5000/team/busy:latest"]["digest"]
    # Every stored blob is exactly what its name says; busybox is stored once.
    root = pathlib.Path(locald_home) / "data" / "store" / "blobs" / "sha256"
    for blob in root.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert store_blobs(locald_home).count(first.diff_ids[0].split(":")[1]) == 1

    target = tmp_path / "rootfs"
    run_locald("image", "unpack", "--offline", "busy:1", target, check=True)
    assert (target / "bin" / "busybox").read_bytes() == pathlib.Path("/bin/busybox").read_bytes()
    assert (target / "etc" / "x").read_text() == "one\n"
    target2 = tmp_path / "rootfs2"
    run_locald("image", "unpack", "--offline", "other:2", target2, check=True)
    assert (target2 / "etc" / "y").read_text() == "two\n"
    assert (target2 / "bin" / "sh").is_symlink()


def test_load_unpacked_docker_save_directory(run_locald, locald_home, tmp_path):
    first, second = two_images()
    archive = ds.write_archive(tmp_path / "save.tar", [first, second])
    directory = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(directory)
    run_locald("image", "load", directory, check=True)
    check_loaded(run_locald, tmp_path, second, "other:2", directory)


def test_names_from_repositories_when_repotags_are_missing(run_locald, locald_home, tmp_path):
    first, _ = two_images()
    members, manifest = ds.archive_members([first])
    manifest[0]["RepoTags"] = None
    members["manifest.json"] = json.dumps(manifest).encode()
    archive = ds.write_tar(tmp_path / "save.tar", members)
    result = run_locald("image", "load", archive, check=True)
    assert "Loaded docker.io/library/busy:1" in result.stdout


def test_unnamed_image_is_reported(run_locald, locald_home, tmp_path):
    first, _ = two_images()
    members, manifest = ds.archive_members([first])
    manifest[0]["RepoTags"] = None
    members["manifest.json"] = json.dumps(manifest).encode()
    members["repositories"] = b"{}"
    archive = ds.write_tar(tmp_path / "save.tar", members)
    result = run_locald("image", "load", archive)
    assert result.returncode != 0
    assert "no image name" in result.stderr
    assert "holds no named image" in result.stderr


def test_loaded_image_saves_and_loads_again_byte_identical(run_locald, locald_home, tmp_path):
    first, _ = two_images()
    run_locald("image", "load", ds.write_archive(tmp_path / "save.tar", [first]), check=True)
    oci = tmp_path / "oci.tar"
    run_locald("image", "save", "busy:1", "-o", oci, check=True)
    home = tmp_path / "other-home"
    home.mkdir(mode=0o700)
    run_locald("image", "load", oci, env={"LOCALD_HOME": str(home)}, check=True)
    assert store_blobs(home) == store_blobs(locald_home)


def _bad(first):
    layer_name = f"{ds._layer_id(0, first)}/layer.tar"
    config_name = f"{first.config_hex}.json"
    gz_tar = ob.compress(first.layers[1].tar, "gzip")
    other_config = ob.make_config(first.layers[:1])
    return [
        ("missing layer", {layer_name: None}, [layer_name, "manifest.json entry 0"]),
        ("tampered layer", {layer_name: first.layers[0].tar[:-1] + b"\x01"},
         [layer_name, "corrupt", first.diff_ids[0]]),
        ("compressed layer", {f"{ds._layer_id(1, first)}/layer.tar": gz_tar},
         ["gzip-compressed", "diff_id"]),
        ("not json", {"manifest.json": b"[{"}, ["manifest.json is not valid JSON"]),
        ("not a list", {"manifest.json": b'{"Config":"x"}'}, ["not a JSON array"]),
        ("no config", {"manifest.json": json.dumps([{"Layers": []}]).encode()},
         ["manifest.json entry 0 has no `Config`"]),
        ("layer count", {config_name: None, f"{hashlib.sha256(other_config).hexdigest()}.json":
                         other_config,
                         "manifest.json": json.dumps([{
                             "Config": f"{hashlib.sha256(other_config).hexdigest()}.json",
                             "Layers": [layer_name, f"{ds._layer_id(1, first)}/layer.tar"],
                             "RepoTags": ["busy:1"]}]).encode()},
         ["lists 1 diff_ids but the entry lists 2 layers"]),
        ("config renamed", {config_name: None, "f" * 64 + ".json": first.config,
                            "manifest.json": json.dumps([{"Config": "f" * 64 + ".json",
                                                          "Layers": [], "RepoTags": []}]).encode()},
         ["config `" + "f" * 64 + ".json` is corrupt"]),
        ("link escapes", {layer_name: ob.Symlink("../../etc/passwd")},
         ["leaves the archive", layer_name]),
        ("absolute link", {layer_name: ob.Symlink("/etc/passwd")},
         ["link to an absolute path", layer_name]),
        ("traversal", {"../evil": b"x"}, ["`..` component"]),
        ("bad tag", {"manifest.json": json.dumps([{"Config": config_name, "Layers": [],
                                                   "RepoTags": ["UPPER/Case:1"]}]).encode()},
         ["RepoTags `UPPER/Case:1`"]),
    ]


@pytest.mark.parametrize("case", range(12))
def test_malformed_archive_fails_naming_the_entry(run_locald, locald_home, tmp_path, case):
    first, _ = two_images()
    label, overrides, fragments = _bad(first)[case]
    archive = ds.write_archive(tmp_path / "bad.tar", [first], members=overrides)
    result = run_locald("image", "load", archive)
    assert result.returncode != 0, (label, result.stdout)
    for fragment in fragments:
        assert fragment in result.stderr, (label, result.stderr)
    assert json.loads(run_locald("images", "--json", check=True).stdout) == []
    ingest = pathlib.Path(locald_home) / "data" / "ingest"
    assert not ingest.exists() or list(ingest.iterdir()) == [], (label, list(ingest.iterdir()))


def test_loaded_docker_archive_pushes_and_pulls_back(run_locald, locald_home, tmp_path):
    """The stored schema 2 manifest with uncompressed layers is accepted by a
    real registry and comes back byte for byte into a fresh store."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image = ds.DockerImage([ob.busybox_layer(compression="none")], tags=["pushme:1"],
                           platform=("linux", arch, ""))
    run_locald("image", "load", ds.write_archive(tmp_path / "save.tar", [image]), check=True)
    manifest = json.loads(run_locald("image", "inspect", "pushme:1", "--json",
                                     check=True).stdout)["manifest"]
    with ru.Registry(tmp_path / "registry") as registry:
        remote = f"{registry.host}/team/pushme:1"
        pushed = run_locald("push", "pushme:1", remote)
        assert pushed.returncode == 0, pushed.stderr
        body, content_type = registry.get_manifest("team/pushme", "1")
        assert content_type == ob.DOCKER_MANIFEST
        assert json.loads(body) == manifest
        assert registry.get_blob("team/pushme", image.diff_ids[0]) == image.layers[0].tar
        fresh = tmp_path / "fresh-home"
        fresh.mkdir(mode=0o700)
        back = run_locald("pull", remote, env={"LOCALD_HOME": str(fresh)})
        assert back.returncode == 0, back.stderr
        assert ru.store_blob(fresh, ob.sha256(body)).read_bytes() == body


def test_rootless_container_runs_a_loaded_docker_archive(locald_bin, test_user, tmp_path):
    """The whole way as the unprivileged user: load a legacy docker save,
    then `container run` it (snapshots from the uncompressed layers)."""
    from layers_util import SHELL_CONFIG, Home

    home = Home(locald_bin, test_user)
    try:
        image = ds.DockerImage([ob.busybox_layer(compression="none"),
                                ob.Layer({"etc/x": "one\n"}, compression="none")],
                               tags=["busy:run"], config=SHELL_CONFIG)
        archive = ds.write_archive(home.dir / "save.tar", [image])
        os.chmod(archive, 0o644)
        loaded = home.run("image", "load", archive)
        assert loaded.returncode == 0, loaded.stderr
        r = home.run("container", "run", "busy:run", "cat /etc/x; ls /bin/busybox")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["one", "/bin/busybox"]
    finally:
        home.cleanup()


def test_docker_25_archive_loads_through_its_oci_layout(run_locald, locald_home, tmp_path):
    """Docker >= 25 writes an OCI layout and manifest.json side by side: the
    layout wins, so the image keeps Docker's own manifest digest."""
    layer = ob.Layer({"etc/x": "25\n"}, compression="none")
    layout = ob.Layout(tmp_path / "docker25")
    img = layout.add_image([layer])
    layout.tag("docker.io/library/new:25", img)
    (layout.root / "manifest.json").write_text(json.dumps([{
        "Config": "blobs/sha256/" + img.config.digest.split(":")[1],
        "RepoTags": ["new:25"],
        "Layers": ["blobs/sha256/" + img.layers[0].digest.split(":")[1]]}]))
    (layout.root / "repositories").write_text(json.dumps({"new": {"25": "x"}}))
    archive = layout.to_tar(tmp_path / "docker25.tar")
    result = run_locald("image", "load", archive, check=True)
    assert f"Loaded docker.io/library/new:25 ({img.digest})" in result.stdout
    inspect = json.loads(run_locald("image", "inspect", "new:25", "--json", check=True).stdout)
    assert inspect["manifest"]["mediaType"] == ob.OCI_MANIFEST
