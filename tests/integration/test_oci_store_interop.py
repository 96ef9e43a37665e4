"""Other OCI tools read what locald writes and locald reads what they write:
skopeo (containers/image) and umoci, when installed (Debian `skopeo`,
`umoci`; bench/test-only, never used by locald itself)."""
import json
import shutil
import subprocess

import pytest

import oci_build as ob

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None,
                                  reason="skopeo not installed (apt-get install skopeo)")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None,
                                 reason="umoci not installed (apt-get install umoci)")


@pytest.fixture
def stored(locald_home):
    layout = ob.store_layout(locald_home)
    amd = layout.add_image([ob.busybox_layer(), ob.Layer({"etc/x": "1"}, compression="zstd")])
    arm = layout.add_image([ob.Layer({"etc/arch": "arm"})], platform=("linux", "arm64", "v8"))
    index = layout.add_index([amd, arm], attestation_for=[amd])
    layout.tag("docker.io/library/multi:1", index)
    return {"amd": amd, "index": index}


def skopeo(*args):
    return subprocess.run(["skopeo", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=True)


@needs_skopeo
def test_skopeo_reads_the_store_in_place(run_locald, stored, locald_home):
    run_locald("tag", "multi:1", "localhost:5000/again:2", check=True)  # written by locald
    store = locald_home / "data" / "store"
    raw = skopeo("inspect", "--raw", f"oci:{store}:localhost:5000/again:2").stdout
    assert ob.sha256(raw.encode()) == stored["index"].digest
    info = json.loads(skopeo("inspect", "--override-arch", "amd64",
                             f"oci:{store}:docker.io/library/multi:1").stdout)
    assert info["Digest"] == stored["index"].digest
    assert info["Layers"] == [b.digest for b in stored["amd"].layers]


@needs_skopeo
def test_skopeo_copies_a_saved_layout_and_locald_loads_its_output(run_locald, stored, tmp_path):
    saved = tmp_path / "saved"
    run_locald("image", "save", "multi:1", "-o", saved, check=True)
    out = tmp_path / "from-skopeo"
    # skopeo picks one platform of the index unless told --all.
    skopeo("copy", "--quiet", "--all", f"oci:{saved}:1",
           f"oci:{out}:localhost/from-skopeo:1")
    home = tmp_path / "other"
    home.mkdir(mode=0o700)
    env = {"LOCALD_HOME": str(home)}
    loaded = run_locald("image", "load", out, env=env, check=True)
    assert "Loaded localhost/from-skopeo:1" in loaded.stdout
    info = json.loads(run_locald("image", "inspect", "localhost/from-skopeo:1",
                                 "--platform", "linux/amd64", "--json", env=env, check=True).stdout)
    # An OCI → OCI copy keeps the manifest bytes, so digests survive both tools.
    assert info["digest"] == stored["index"].digest
    assert info["manifest_digest"] == stored["amd"].digest


@needs_umoci
def test_umoci_lists_a_saved_layout(run_locald, stored, tmp_path):
    saved = tmp_path / "saved"
    run_locald("image", "save", "multi:1", "-o", saved, check=True)
    listed = subprocess.run(["umoci", "ls", "--layout", str(saved)], capture_output=True,
                            text=True, timeout=60, check=True).stdout.split()
    assert listed == ["1"]
