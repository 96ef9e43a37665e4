"""images / image inspect / tag / rmi / prune against the real binary, on
images written into the store's OCI layout by oci_build (no registry)."""
import json
import os
import pathlib

import pytest

import oci_build as ob


def store_dir(home):
    return pathlib.Path(home) / "data" / "store"


@pytest.fixture
def images(locald_home):
    """Two images sharing the busybox layer, one multi-platform index with an
    attestation, one Docker schema 2 image."""
    layout = ob.store_layout(locald_home)
    busybox = ob.busybox_layer()
    amd = layout.add_image([busybox, ob.Layer({"etc/hello": "hi\n"}, compression="zstd")],
                           config={"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"],
                                   "WorkingDir": "/srv", "User": "1000",
                                   "ExposedPorts": {"8080/tcp": {}}, "Labels": {"k": "v"}})
    arm = layout.add_image([ob.Layer({"etc/arch": "arm64\n"}, compression="none")],
                           platform=("linux", "arm64", "v8"))
    index = layout.add_index([amd, arm], attestation_for=[amd])
    layout.tag("docker.io/library/busy:1", index)
    docker = layout.add_image([busybox, ob.Layer({"etc/docker": "d"})], media="docker")
    layout.tag("localhost:5000/team/app:v2", docker)
    return {"layout": layout, "amd": amd, "arm": arm, "index": index, "docker": docker}


def test_images_lists_names_tags_and_sizes(run_locald, images):
    result = run_locald("images", check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "PULLED", "SOURCE"]
    assert any(line.split()[:2] == ["busy", "1"] for line in lines[1:])
    assert any(line.split()[:2] == ["localhost:5000/team/app", "v2"] for line in lines[1:])

    listed = {item["name"]: item for item in json.loads(run_locald("images", "--json", check=True).stdout)}
    assert set(listed) == {"docker.io/library/busy:1", "localhost:5000/team/app:v2"}
    busy = listed["docker.io/library/busy:1"]
    assert busy["digest"] == images["index"].digest
    assert busy["media_type"] == ob.OCI_INDEX
    # The stored size counts every blob of every stored platform once.
    blobs = {images["index"].blob.digest: images["index"].blob.size}
    for img in images["index"].images:
        for blob in [img.manifest, img.config, *img.layers]:
            blobs[blob.digest] = blob.size
    assert busy["size"] == sum(blobs.values())


def test_images_on_an_empty_store(run_locald):
    result = run_locald("images", "--json", check=True)
    assert json.loads(result.stdout) == []


def test_inspect_picks_the_host_platform_and_shows_config(run_locald, images):
    result = run_locald("image", "inspect", "busy:1", "--json", check=True)
    info = json.loads(result.stdout)
    amd = images["amd"]
    assert info["digest"] == images["index"].digest
    assert info["manifest_digest"] == amd.digest
    assert info["platform"] == "linux/amd64"
    assert [layer["digest"] for layer in info["layers"]] == [b.digest for b in amd.layers]
    assert [layer["diff_id"] for layer in info["layers"]] == amd.diff_ids
    assert [layer["compression"] for layer in info["layers"]] == ["gzip", "zstd"]
    assert info["size"] == amd.manifest.size + amd.config.size + sum(b.size for b in amd.layers)
    assert info["config"]["config"]["Env"] == ["PATH=/bin", "A=1"]
    assert info["manifest"] == json.loads(amd.manifest.data)

    human = run_locald("image", "inspect", "busy:1", check=True).stdout
    assert "WorkingDir:    /srv" in human
    assert "User:          1000" in human
    assert "ExposedPorts:  8080/tcp" in human
    assert "Platforms:     linux/amd64, linux/arm64\n" in human  # the attestation is not offered
    assert "  k=v" in human


def test_inspect_other_platform_and_by_digest(run_locald, images):
    info = json.loads(run_locald("image", "inspect", "busy:1", "--platform", "linux/arm64/v8",
                                 "--json", check=True).stdout)
    assert info["manifest_digest"] == images["arm"].digest
    assert info["layers"][0]["compression"] == "none"
    # A digest reference resolves from the blob alone.
    by_digest = json.loads(run_locald("image", "inspect", f"localhost:5000/x@{images['docker'].digest}",
                                      "--json", check=True).stdout)
    assert by_digest["media_type"] == ob.DOCKER_MANIFEST
    missing = run_locald("image", "inspect", "busy:1", "--platform", "linux/s390x")
    assert missing.returncode == 3
    assert "no manifest for platform linux/s390x" in missing.stderr
    assert "linux/amd64, linux/arm64)" in missing.stderr


def test_inspect_errors_are_exact(run_locald, images):
    result = run_locald("image", "inspect", "nope")
    assert result.returncode == 3
    assert result.stderr == "locald: error: not found: docker.io/library/nope:latest in the local store\n"
    bad = run_locald("image", "inspect", "Busy:1")
    assert bad.returncode == 2
    assert "repository path component `Busy` must be lowercase" in bad.stderr
    platform = run_locald("image", "inspect", "busy:1", "--platform", "linux")
    assert platform.returncode == 2
    assert "expected `os/arch`" in platform.stderr


def test_tag_adds_a_name_and_keeps_provenance(run_locald, images, locald_home):
    result = run_locald("tag", "busy:1", "localhost:5000/copy:latest", check=True)
    assert "Tagged docker.io/library/busy:1 as localhost:5000/copy:latest" in result.stdout
    listed = {i["name"]: i for i in json.loads(run_locald("images", "--json", check=True).stdout)}
    assert listed["localhost:5000/copy:latest"]["digest"] == images["index"].digest
    # By digest, and onto an existing name (moves it).
    run_locald("tag", f"x@{images['docker'].digest}", "localhost:5000/copy:latest", check=True)
    listed = {i["name"]: i for i in json.loads(run_locald("images", "--json", check=True).stdout)}
    assert listed["localhost:5000/copy:latest"]["digest"] == images["docker"].digest
    assert listed["localhost:5000/copy:latest"]["source"] == f"tag:docker.io/library/x@{images['docker'].digest}"
    index = json.loads((store_dir(locald_home) / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert names.count("localhost:5000/copy:latest") == 1

    digest_dst = run_locald("tag", "busy:1", f"x@{images['docker'].digest}")
    assert digest_dst.returncode == 2
    assert "must be a tag reference" in digest_dst.stderr
    missing = run_locald("tag", "ghost", "y")
    assert missing.returncode == 3
    assert "not found: docker.io/library/ghost:latest in the local store" in missing.stderr


def test_rmi_removes_only_blobs_no_other_image_uses(run_locald, images, locald_home):
    layout = images["layout"]
    docker = images["docker"]
    shared = docker.layers[0].digest  # busybox, also used by the index's amd64 image
    own = docker.layers[1].digest
    result = run_locald("rmi", "localhost:5000/team/app:v2", check=True)
    assert "Untagged: localhost:5000/team/app:v2" in result.stdout
    assert not layout.blob_path(docker.digest).exists()
    assert not layout.blob_path(docker.config.digest).exists()
    assert not layout.blob_path(own).exists()
    assert layout.blob_path(shared).exists()
    names = [i["name"] for i in json.loads(run_locald("images", "--json", check=True).stdout)]
    assert names == ["docker.io/library/busy:1"]
    # busy:1 still fully works.
    run_locald("image", "inspect", "busy:1", check=True)

    again = run_locald("rmi", "localhost:5000/team/app:v2", "busy:1")
    assert again.returncode == 3
    assert "not found: localhost:5000/team/app:v2 in the local store" in again.stderr
    assert "Untagged: docker.io/library/busy:1" in again.stdout  # the others are still removed
    assert json.loads(run_locald("images", "--json", check=True).stdout) == []


def test_prune_removes_unreferenced_blobs_and_stale_ingests(run_locald, images, locald_home):
    layout = images["layout"]
    orphan = layout.write_blob(ob.Blob(b"nobody points here", "application/octet-stream"))
    stale = pathlib.Path(locald_home) / "data" / "ingest" / ("ab" * 32)
    stale.mkdir(parents=True)
    (stale / "data").write_bytes(b"partial")
    (stale / "ref").write_text(f"sha256:{'0' * 64}\nsha256:{'0' * 64}\n100\n")
    before = set(p.name for p in (store_dir(locald_home) / "blobs" / "sha256").iterdir())

    result = json.loads(run_locald("prune", "--json", check=True).stdout)
    assert result["removed_blobs"] == [orphan.digest]
    assert result["removed_bytes"] == orphan.size
    assert result["removed_ingests"] == [f"sha256:{'0' * 64}"]
    assert not stale.exists()
    after = set(p.name for p in (store_dir(locald_home) / "blobs" / "sha256").iterdir())
    assert before - after == {orphan.digest.split(":")[1]}

    # Dropping the name makes the rest unreferenced; the shared layer goes too.
    run_locald("rmi", "busy:1", "-q", check=True)
    result = run_locald("prune", check=True)
    assert "Removed" in result.stdout
    remaining = set(p.name for p in (store_dir(locald_home) / "blobs" / "sha256").iterdir())
    docker = images["docker"]
    assert remaining == {b.digest.split(":")[1] for b in [docker.manifest, docker.config, *docker.layers]}


def test_store_stays_a_valid_oci_layout(run_locald, images, locald_home):
    run_locald("tag", "busy:1", "busy:2", check=True)
    root = store_dir(locald_home)
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2
    for entry in index["manifests"]:
        blob = root / "blobs" / "sha256" / entry["digest"].split(":")[1]
        assert blob.stat().st_size == entry["size"]
        assert ob.sha256(blob.read_bytes()) == entry["digest"]
    entry = [m for m in index["manifests"]
             if m["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/busy:2"][0]
    assert entry["annotations"]["dev.locald.image.pulled-at"].endswith("Z")
