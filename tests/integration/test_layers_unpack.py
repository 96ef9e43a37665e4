"""`locald image unpack`: the flattened rootfs of real images, compared file
by file (owners, modes, contents) with what the layers say — as root, and
as the unprivileged user inside its subuid user namespace."""
import os
import pathlib
import shutil

import pytest

import layers_util as lu
import oci_build as ob


def build_image(home, layers=None, **kwargs):
    layout = ob.store_layout(home)
    img = layout.add_image(layers or lu.rich_layers(), **kwargs)
    layout.tag(lu.REF, img)
    return img


def test_unpack_as_root_matches_the_layers(run_locald, locald_home, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("root pass: real owners and device nodes need root")
    build_image(locald_home)
    target = tmp_path / "rootfs"
    result = run_locald("image", "unpack", "--offline", lu.REF, target, check=True)
    assert "3 layers" in result.stdout
    actual = lu.actual_tree(target)
    expected = lu.expected_tree(devices=True)
    assert actual == expected
    assert os.getxattr(target / "notes", "user.note") == b"hello"
    assert os.stat(target / "bin/su").st_ino == os.stat(target / "bin/su2").st_ino


def test_unpack_after_image_load(run_locald, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("root pass")
    layout = ob.Layout(tmp_path / "layout")
    img = layout.add_image(lu.rich_layers(), media="docker")
    layout.tag(lu.REF, img)
    tar = layout.to_tar(tmp_path / "image.tar")
    run_locald("image", "load", tar, check=True)
    target = tmp_path / "rootfs"
    run_locald("image", "unpack", "--offline", lu.REF, target, check=True)
    assert lu.actual_tree(target) == lu.expected_tree(devices=True)


def test_diff_id_mismatch_leaves_nothing(run_locald, locald_home, tmp_path):
    layers = lu.rich_layers()
    layout = ob.store_layout(locald_home)
    config = ob.make_config(layers)
    bad = config.replace(layers[1].diff_id.encode(), ("sha256:" + "0" * 64).encode())
    img = layout.write_image(ob.make_image(layers, raw_config=bad))
    layout.tag(lu.REF, img)
    target = tmp_path / "rootfs"
    result = run_locald("image", "unpack", "--offline", lu.REF, target)
    assert result.returncode == 3, result.stderr
    assert "DiffID mismatch" in result.stderr
    assert layers[1].blob("oci").digest in result.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rootfs")] == []


def test_refuses_non_empty_target(run_locald, locald_home, tmp_path):
    build_image(locald_home)
    target = tmp_path / "rootfs"
    target.mkdir()
    (target / "precious").write_text("keep")
    result = run_locald("image", "unpack", "--offline", lu.REF, target)
    assert result.returncode == 3
    assert "not empty" in result.stderr
    assert (target / "precious").read_text() == "keep"


def test_missing_image_offline_names_it(run_locald, tmp_path):
    result = run_locald("image", "unpack", "--offline", "docker.io/library/nope:1", tmp_path / "r")
    assert result.returncode == 3
    assert "nope" in result.stderr


def _rootless_setup(test_user, locald_bin):
    scratch = lu.user_scratch(test_user)
    home = scratch / "home"
    home.mkdir(mode=0o700)
    build_image(home)
    for dirpath, dirnames, filenames in os.walk(home):
        for name in [dirpath, *[os.path.join(dirpath, n) for n in dirnames + filenames]]:
            shutil.chown(name, test_user, test_user)
    binary = lu.user_copy_of_binary(locald_bin, scratch, test_user)
    return scratch, home, binary


def test_rootless_unpack_keeps_owners_in_the_user_namespace(test_user, locald_bin):
    scratch, home, binary = _rootless_setup(test_user, locald_bin)
    try:
        target = scratch / "rootfs"
        result = lu.run_as(test_user, [binary, "image", "unpack", "--offline", lu.REF, target],
                           {"LOCALD_HOME": home})
        assert result.returncode == 0, result.stderr
        expected = lu.host_ids(lu.expected_tree(devices=False), test_user)
        assert lu.actual_tree(target) == expected
    finally:
        lu.remove_as_root(scratch)


def test_rootless_single_id_records_owners_in_xattr(test_user, locald_bin):
    scratch, home, binary = _rootless_setup(test_user, locald_bin)
    try:
        target = scratch / "rootfs"
        result = lu.run_as(test_user, [binary, "image", "unpack", "--offline", "--single-id",
                                       lu.REF, target], {"LOCALD_HOME": home})
        assert result.returncode == 0, result.stderr
        assert "user.rootlesscontainers" in result.stderr  # the warning says what is lost
        uid = lu.pwd.getpwnam(test_user).pw_uid
        actual = lu.actual_tree(target)
        expected = lu.expected_tree(devices=False)
        assert set(actual) == set(expected)
        for rel, (kind, mode, _, _, data) in expected.items():
            assert actual[rel][0] == kind and actual[rel][1] == mode and actual[rel][4] == data, rel
            assert actual[rel][2] == uid, rel
        # umoci's encoding: Resource{uid: 100, gid: 101}.
        assert os.getxattr(target / "data/owned100", "user.rootlesscontainers") == \
            bytes([0x08, 100, 0x10, 101])
        assert os.getxattr(target / "home/app/data", "user.rootlesscontainers") == \
            bytes([0x08, 0xE7, 0x07, 0x10, 0xE7, 0x07])
    finally:
        lu.remove_as_root(scratch)


def test_unpack_pulls_when_missing(tmp_path, run_locald):
    """Not in the store: `image unpack` pulls from the (real) registry first."""
    import registry_util as ru
    with ru.Registry(tmp_path / "registry") as registry:
        image = ob.make_image(lu.rich_layers())
        registry.push_image("test/layers", "1", image)
        ref = f"{registry.host}/test/layers:1"
        target = tmp_path / "rootfs"
        result = run_locald("image", "unpack", ref, target, timeout=120)
        assert result.returncode == 0, result.stderr
    actual = lu.actual_tree(target)
    if os.geteuid() == 0:
        assert actual == lu.expected_tree(devices=True)
    else:  # the owners are the caller's namespace ids: compare names only
        assert set(actual) == set(lu.expected_tree(devices=False))
    # Now cached: works offline too.
    again = run_locald("image", "unpack", "--offline", ref, tmp_path / "rootfs2")
    assert again.returncode == 0, again.stderr


def test_unicode_and_long_names_in_the_c_locale(run_locald, locald_home, tmp_path):
    long_name = "long/" + "a" * 200 + "/" + "b" * 250
    build_image(locald_home, [ob.Layer({"café/naïve.txt": "x", "日本": ob.Dir(), long_name: "y"})])
    target = tmp_path / "rootfs"
    result = run_locald("image", "unpack", "--offline", lu.REF, target,
                        env={"LC_ALL": "C", "LANG": "C"})
    assert result.returncode == 0, result.stderr
    assert (target / "café" / "naïve.txt").read_text() == "x"
    assert (target / "日本").is_dir()
    assert (target / long_name).read_text() == "y"
