"""image save / image load round trips against the real binary: OCI layout
directories and tars, byte-identical blobs, verification, hostile tars."""
import hashlib
import io
import json
import os
import pathlib
import tarfile

import pytest

import oci_build as ob


@pytest.fixture
def stored(locald_home):
    layout = ob.store_layout(locald_home)
    amd = layout.add_image([ob.busybox_layer(), ob.Layer({"etc/x": "1"}, compression="zstd")])
    arm = layout.add_image([ob.Layer({"etc/arch": "arm"})], platform=("linux", "arm", "v7"))
    index = layout.add_index([amd, arm], attestation_for=[amd])
    layout.tag("docker.io/library/multi:1", index)
    docker = layout.add_image([ob.Layer({"a": "b"}, compression="none")], media="docker")
    layout.tag("localhost:5000/dock:latest", docker)
    return {"layout": layout, "index": index, "docker": docker}


def all_blobs(root):
    root = pathlib.Path(root)
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def other_home(tmp_path):
    home = tmp_path / "other-home"
    home.mkdir(mode=0o700)
    return {"LOCALD_HOME": str(home)}, home


def test_save_dir_then_load_is_byte_identical(run_locald, stored, locald_home, tmp_path):
    out = tmp_path / "saved"
    result = run_locald("image", "save", "multi:1", "localhost:5000/dock", "-o", out, check=True)
    assert "Saved docker.io/library/multi:1" in result.stdout
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["docker.io/library/multi:1", "localhost:5000/dock:latest"]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["1", "latest"]
    assert index["manifests"][1]["mediaType"] == ob.DOCKER_MANIFEST

    source_blobs = all_blobs(locald_home / "data" / "store")
    saved = all_blobs(out)
    assert saved == source_blobs  # every stored blob is reachable from the two refs
    for name, data in saved.items():
        assert hashlib.sha256(data).hexdigest() == name

    env, home = other_home(tmp_path)
    loaded = run_locald("image", "load", out, env=env, check=True)
    assert f"Loaded docker.io/library/multi:1 ({stored['index'].digest})" in loaded.stdout
    assert all_blobs(home / "data" / "store") == source_blobs
    listed = {i["name"]: i for i in json.loads(run_locald("images", "--json", env=env, check=True).stdout)}
    assert listed["docker.io/library/multi:1"]["digest"] == stored["index"].digest
    assert listed["docker.io/library/multi:1"]["source"] == f"load:{out}"
    inspect = json.loads(run_locald("image", "inspect", "localhost:5000/dock", "--json", env=env,
                                    check=True).stdout)
    assert inspect["manifest"] == json.loads(stored["docker"].manifest.data)


def test_save_tar_then_load(run_locald, stored, locald_home, tmp_path):
    out = tmp_path / "img.tar"
    run_locald("image", "save", "multi:1", "-o", out, check=True)
    with tarfile.open(out) as tar:
        members = tar.getnames()
        assert "oci-layout" in members and "index.json" in members
        assert all(m in ("oci-layout", "index.json", "blobs") or m.startswith("blobs/") for m in members)
    assert not (tmp_path / "img.tar.partial").exists()

    env, home = other_home(tmp_path)
    run_locald("image", "load", out, env=env, check=True)
    index_blobs = {stored["index"].blob.digest}
    for img in stored["index"].images:
        index_blobs |= {b.digest for b in [img.manifest, img.config, *img.layers]}
    loaded = all_blobs(home / "data" / "store")
    assert {"sha256:" + name for name in loaded} == index_blobs
    source = all_blobs(locald_home / "data" / "store")
    assert all(source[name] == data for name, data in loaded.items())
    # No scratch directory is left in the ingest area.
    assert list((home / "data" / "ingest").iterdir()) == []


def test_save_errors(run_locald, stored, tmp_path):
    missing = run_locald("image", "save", "ghost", "-o", tmp_path / "x")
    assert missing.returncode == 3
    assert "not found: docker.io/library/ghost:latest in the local store" in missing.stderr
    no_output = run_locald("image", "save", "multi:1")
    assert no_output.returncode == 2
    run_locald("image", "save", "multi:1", "-o", tmp_path / "again", check=True)
    twice = run_locald("image", "save", "multi:1", "-o", tmp_path / "again")
    assert twice.returncode == 3
    assert "already holds an OCI layout" in twice.stderr


def test_load_verifies_every_blob(run_locald, tmp_path):
    layout = ob.Layout(tmp_path / "bad")
    img = layout.add_image([ob.Layer({"f": "good data"})])
    layout.tag("localhost/bad:1", img)
    layer_path = layout.blob_path(img.layers[0].digest)
    data = bytearray(layer_path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    layer_path.write_bytes(bytes(data))
    result = run_locald("image", "load", tmp_path / "bad")
    assert result.returncode == 3
    assert img.layers[0].digest in result.stderr
    assert "corrupt" in result.stderr
    assert json.loads(run_locald("images", "--json", check=True).stdout) == []


def test_load_refuses_missing_blobs(run_locald, tmp_path):
    layout = ob.Layout(tmp_path / "partial")
    img = layout.add_image([ob.Layer({"f": "x"})])
    layout.tag("localhost/partial:1", img)
    layout.blob_path(img.config.digest).unlink()
    result = run_locald("image", "load", tmp_path / "partial")
    assert result.returncode == 3
    assert f"lacks blob `{img.config.digest}`" in result.stderr


@pytest.mark.parametrize("member,why", [
    ("../escape", "`..` component"),
    ("/abs/escape", "absolute path"),
    ("blobs/sha256/../../../escape", "`..` component"),
])
def test_load_tar_refuses_path_traversal(run_locald, tmp_path, locald_home, member, why):
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", b'{"schemaVersion":2,"manifests":[]}'),
                           (member, b"pwned")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = run_locald("image", "load", tar_path)
    assert result.returncode == 3
    assert f"unsafe member `{member}`" in result.stderr
    assert why in result.stderr
    assert not (tmp_path / "escape").exists()
    assert not pathlib.Path("/abs/escape").exists()
    assert list((locald_home / "data" / "ingest").iterdir()) == []


def test_load_tar_refuses_symlinks(run_locald, tmp_path):
    tar_path = tmp_path / "link.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/shadow"
        tar.addfile(info)
    result = run_locald("image", "load", tar_path)
    assert result.returncode == 3
    assert "links are not allowed" in result.stderr


def test_load_skips_entries_without_a_repository_name(run_locald, tmp_path):
    """skopeo-style layouts name entries by tag only; locald cannot tell the
    repository, says so, and loads the named ones."""
    layout = ob.Layout(tmp_path / "skopeo")
    a = layout.add_image([ob.Layer({"a": "1"})])
    b = layout.add_image([ob.Layer({"b": "2"})])
    layout.tag("docker.io/library/unnamed:v1", a, ref_annotation="tag")
    index = json.loads((tmp_path / "skopeo" / "index.json").read_text())
    del index["manifests"][0]["annotations"]["io.containerd.image.name"]
    (tmp_path / "skopeo" / "index.json").write_text(json.dumps(index))
    only_tag = run_locald("image", "load", tmp_path / "skopeo")
    assert only_tag.returncode == 3
    assert f"skipped {a.digest}" in only_tag.stderr
    assert "holds no named image" in only_tag.stderr

    layout.tag("localhost/named:2", b)
    mixed = run_locald("image", "load", tmp_path / "skopeo", check=True)
    assert "Loaded localhost/named:2" in mixed.stdout
    assert f"skipped {a.digest}" in mixed.stderr


def test_load_rejects_non_layouts(run_locald, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_locald("image", "load", tmp_path / "empty")
    assert result.returncode == 3
    assert "is not an OCI image layout" in result.stderr
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00not a tar" * 100)
    result = run_locald("image", "load", garbage)
    assert result.returncode == 3
    missing = run_locald("image", "load", tmp_path / "nope")
    assert missing.returncode == 3
    assert "no such file or directory" in missing.stderr
