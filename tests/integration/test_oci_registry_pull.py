"""`locald pull/push/login/logout` against a real docker-registry (distribution
2.8) on 127.0.0.1: plain HTTP, TLS with a generated CA in certs.d, htpasswd
Basic auth, push → pull round trips, offline pulls after the registry stops."""
import hashlib
import json
import os
import platform
import stat

import pytest

import oci_build as ob
import registry_util as ru

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


def small_image(tag_text="hello", media="oci", compression="gzip", arch=HOST_ARCH):
    layers = [ob.busybox_layer(compression=compression),
              ob.Layer({"etc/hello": f"{tag_text}\n", "app/data.bin": os.urandom(200_000)},
                       compression=compression)]
    return ob.make_image(layers, platform=("linux", arch, ""), media=media)


def assert_image_in_store(home, image):
    for blob in [image.manifest, image.config, *image.layers]:
        path = ru.store_blob(home, blob.digest)
        assert path.exists(), f"{blob.digest} missing from the store"
        assert path.read_bytes() == blob.data


@pytest.fixture
def registry(tmp_path):
    with ru.Registry(tmp_path / "registry") as r:
        yield r


@pytest.mark.parametrize("media,compression", [("oci", "gzip"), ("docker", "gzip"),
                                               ("oci", "zstd")])
def test_pull_plain_http(registry, run_locald, locald_home, media, compression):
    image = small_image(media=media, compression=compression)
    registry.push_image("test/busy", "1", image)
    ref = f"{registry.host}/test/busy:1"

    result = run_locald("pull", ref)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ref
    assert_image_in_store(locald_home, image)
    refs = ru.store_refs(locald_home)
    assert refs[ref]["digest"] == image.digest
    assert refs[ref]["mediaType"] == image.manifest.media_type
    # Not a TTY: one line per layer, naming the short digest.
    for layer in image.layers:
        assert layer.digest.split(":")[1][:12] in result.stderr

    # A second pull downloads nothing.
    again = run_locald("pull", ref)
    assert again.returncode == 0, again.stderr
    assert "0 B downloaded" in again.stderr
    assert again.stderr.count("already present") == len(image.layers) + 1  # + config

    # By digest too, quietly.
    by_digest = run_locald("pull", "-q", f"{registry.host}/test/busy@{image.digest}")
    assert by_digest.returncode == 0, by_digest.stderr
    assert by_digest.stderr == ""


def test_pull_multi_platform_index(registry, run_locald, locald_home):
    mine = small_image("mine", arch=HOST_ARCH)
    other = small_image("other", arch=OTHER_ARCH)
    index = ob.make_index([other, mine], attestation_for=[mine])
    registry.push_index("test/multi", "latest", index)

    result = run_locald("pull", f"{registry.host}/test/multi")
    assert result.returncode == 0, result.stderr
    assert ru.store_blob(locald_home, index.digest).read_bytes() == index.blob.data
    assert_image_in_store(locald_home, mine)
    assert not ru.store_blob(locald_home, other.layers[1].digest).exists()
    # The attestation manifest was skipped.
    attestation = index.images[-1]
    assert not ru.store_blob(locald_home, attestation.digest).exists()

    result = run_locald("pull", "--platform", f"linux/{OTHER_ARCH}", f"{registry.host}/test/multi")
    assert result.returncode == 0, result.stderr
    assert_image_in_store(locald_home, other)

    bad = run_locald("pull", "--platform", "linux/s390x", f"{registry.host}/test/multi")
    assert bad.returncode != 0
    assert "s390x" in bad.stderr or "platform" in bad.stderr


def test_pull_json_progress(registry, run_locald):
    image = small_image("json")
    registry.push_image("test/json", "1", image)
    result = run_locald("pull", "--json", f"{registry.host}/test/json:1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "resolving" and kinds[-1] == "done"
    done = {e["digest"] for e in events if e["event"] == "layer-done"}
    assert {l.digest for l in image.layers} | {image.config.digest} == done


def test_pull_errors(registry, run_locald):
    ref = f"{registry.host}/test/nope:latest"
    result = run_locald("pull", ref)
    assert result.returncode == 3, result.stderr
    assert f"not found: {ref} at {registry.host}" in result.stderr

    bad = run_locald("pull", "Not/A/Valid//Ref")
    assert bad.returncode != 0
    assert "reference" in bad.stderr.lower() or "invalid" in bad.stderr.lower()

    # Nothing listens on this port.
    closed = run_locald("pull", f"127.0.0.1:{ru.free_port()}/x/y:1")
    assert closed.returncode == 4, closed.stderr


def test_wrong_blob_in_registry_is_data_loss(registry, run_locald, locald_home):
    image = small_image("tamper")
    registry.push_image("test/tamper", "1", image)
    # Corrupt the layer in the registry's storage, behind its back.
    layer = image.layers[1]
    data_path = (registry.storage / "docker/registry/v2/blobs/sha256" / layer.digest[7:9] /
                 layer.digest[7:] / "data")
    corrupted = bytearray(data_path.read_bytes())
    corrupted[100] ^= 0xFF
    data_path.write_bytes(bytes(corrupted))

    result = run_locald("pull", f"{registry.host}/test/tamper:1")
    assert result.returncode == 3, result.stderr
    assert layer.digest in result.stderr
    assert not ru.store_blob(locald_home, layer.digest).exists()
    assert f"{registry.host}/test/tamper:1" not in ru.store_refs(locald_home)


def test_offline_pull_after_registry_stops(registry, run_locald, locald_home):
    image = small_image("offline")
    registry.push_image("test/off", "1", image)
    ref = f"{registry.host}/test/off:1"
    assert run_locald("pull", ref).returncode == 0
    registry.stop()

    offline = run_locald("pull", "--offline", ref)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.strip() == ref
    by_digest = run_locald("pull", "--offline", f"{registry.host}/test/off@{image.digest}")
    assert by_digest.returncode == 0, by_digest.stderr

    online = run_locald("pull", ref)
    assert online.returncode == 4, online.stderr

    missing = run_locald("pull", "--offline", f"{registry.host}/test/off:2")
    assert missing.returncode == 3
    assert f"{registry.host}/test/off:2" in missing.stderr

    # offline = true in config.toml does the same as --offline.
    config = locald_home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text("offline = true\n")
    assert run_locald("pull", ref).returncode == 0


def test_tls_registry_with_ca_in_certs_d(tmp_path, run_locald, locald_home):
    with ru.Registry(tmp_path / "tls", tls=True) as registry:
        image = small_image("tls")
        registry.push_image("test/tls", "1", image)
        ref = f"{registry.host}/test/tls:1"

        untrusted = run_locald("pull", ref)
        assert untrusted.returncode == 4, untrusted.stderr
        assert registry.host in untrusted.stderr
        assert "certificate" in untrusted.stderr.lower()

        # `insecure = true` accepts the unverified certificate.
        config = locald_home / "config"
        config.mkdir(exist_ok=True)
        (config / "config.toml").write_text(
            f'[[registry]]\nprefix = "{registry.host}"\ninsecure = true\n')
        insecure = run_locald("pull", ref)
        assert insecure.returncode == 0, insecure.stderr
        (config / "config.toml").unlink()
        for blob in [image.manifest, image.config, *image.layers]:
            os.chmod(ru.store_blob(locald_home, blob.digest), 0o644)
            ru.store_blob(locald_home, blob.digest).unlink()

        certs = locald_home / "config" / "certs.d" / registry.host
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(registry.ca_crt.read_bytes())
        trusted = run_locald("pull", ref)
        assert trusted.returncode == 0, trusted.stderr
        assert_image_in_store(locald_home, image)


def test_tls_client_certificate_from_certs_d(tmp_path, run_locald, locald_home):
    with ru.Registry(tmp_path / "mtls", tls=True, client_certs=True) as registry:
        image = small_image("mtls")
        registry.push_image("test/mtls", "1", image)
        ref = f"{registry.host}/test/mtls:1"
        certs = locald_home / "config" / "certs.d" / registry.host
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(registry.ca_crt.read_bytes())

        refused = run_locald("pull", ref)
        assert refused.returncode == 4, refused.stderr
        assert registry.host in refused.stderr

        (certs / "client.cert").write_bytes(registry.client_cert.read_bytes())
        (certs / "client.key").write_bytes(registry.client_key.read_bytes())
        accepted = run_locald("pull", ref)
        assert accepted.returncode == 0, accepted.stderr
        assert_image_in_store(locald_home, image)


def test_basic_auth_login_pull_logout(tmp_path, run_locald, locald_home):
    users = {"alice": "wonderland-42"}
    with ru.Registry(tmp_path / "auth", users=users) as registry:
        auth = ("alice", "wonderland-42")
        image = small_image("auth")
        registry.push_image("private/app", "1", image, auth=auth)
        ref = f"{registry.host}/private/app:1"

        denied = run_locald("pull", ref)
        assert denied.returncode == 1, denied.stderr
        assert f"locald login {registry.host}" in denied.stderr

        wrong = run_locald("login", registry.host, "-u", "alice", "--password-stdin",
                           input="not-the-password\n")
        assert wrong.returncode == 1, wrong.stderr
        auth_file = locald_home / "config" / "auth.json"
        assert not auth_file.exists() or registry.host not in auth_file.read_text()

        ok = run_locald("login", registry.host, "-u", "alice", "--password-stdin",
                        input="wonderland-42\n")
        assert ok.returncode == 0, ok.stderr
        assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(auth_file.parent.stat().st_mode) == 0o700
        assert "wonderland-42" not in ok.stdout + ok.stderr

        pulled = run_locald("pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        assert_image_in_store(locald_home, image)

        # Push under another name with the same credentials (mount or HEAD skip).
        pushed = run_locald("push", ref, f"{registry.host}/private/copy:2")
        assert pushed.returncode == 0, pushed.stderr
        body, _ = registry.get_manifest("private/copy", "2", auth=auth)
        assert body == image.manifest.data

        out = run_locald("logout", registry.host)
        assert out.returncode == 0, out.stderr
        again = run_locald("logout", registry.host)
        assert again.returncode == 3
        denied = run_locald("pull", f"{registry.host}/private/copy:2")
        assert denied.returncode == 1


def test_push_pull_round_trip_byte_identical(tmp_path, run_locald, locald_home):
    with ru.Registry(tmp_path / "src") as source, ru.Registry(tmp_path / "dst") as target:
        mine = small_image("round", arch=HOST_ARCH, media="docker")
        index = ob.make_index([mine], media="docker")
        source.push_index("team/app", "v1", index)
        assert run_locald("pull", f"{source.host}/team/app:v1").returncode == 0

        pushed = run_locald("push", f"{source.host}/team/app:v1", f"{target.host}/other/app:v2")
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.strip() == f"{target.host}/other/app:v2@{index.digest}"
        body, content_type = target.get_manifest("other/app", "v2")
        assert body == index.blob.data
        assert content_type == index.blob.media_type
        child, child_type = target.get_manifest("other/app", mine.digest)
        assert child == mine.manifest.data and child_type == mine.manifest.media_type
        for blob in [mine.config, *mine.layers]:
            assert target.get_blob("other/app", blob.digest) == blob.data

        # Pushing again uploads nothing.
        again = run_locald("push", f"{source.host}/team/app:v1", f"{target.host}/other/app:v2")
        assert again.returncode == 0, again.stderr
        assert "already in the registry" in again.stderr

        # And a fresh store pulls it back byte for byte.
        fresh = tmp_path / "fresh-home"
        fresh.mkdir(mode=0o700)
        back = run_locald("pull", f"{target.host}/other/app:v2", env={"LOCALD_HOME": str(fresh)})
        assert back.returncode == 0, back.stderr
        assert ru.store_blob(fresh, index.digest).read_bytes() == index.blob.data
        assert_image_in_store(fresh, mine)


def test_push_large_blob_chunked_and_mount(registry, run_locald, locald_home):
    # A 40 MiB layer goes over the 32 MiB monolithic limit: chunked PATCHes.
    big = ob.Layer(raw_tar=os.urandom(40 * 1024 * 1024), compression="none")
    image = ob.make_image([big], platform=("linux", HOST_ARCH, ""))
    layout = ob.Layout(ru.store_dir(locald_home))
    layout.write_image(image)
    layout.tag(f"{registry.host}/big/one:1", image)
    pushed = run_locald("push", f"{registry.host}/big/one:1")
    assert pushed.returncode == 0, pushed.stderr
    data = registry.get_blob("big/one", image.layers[0].digest)
    assert hashlib.sha256(data).hexdigest() == image.layers[0].digest[7:]

    # Pull it under that name, push to another repo of the same registry: mounted.
    assert run_locald("pull", f"{registry.host}/big/one:1").returncode == 0
    mounted = run_locald("push", f"{registry.host}/big/one:1", f"{registry.host}/big/two:1")
    assert mounted.returncode == 0, mounted.stderr
    assert "mounted from big/one" in mounted.stderr
    assert registry.get_blob("big/two", image.layers[0].digest) == data


def test_mirror_from_config(tmp_path, run_locald, locald_home):
    with ru.Registry(tmp_path / "mirror") as mirror:
        image = small_image("mirrored")
        mirror.push_image("cache/library/thing", "1", image)
        config = locald_home / "config"
        config.mkdir(exist_ok=True)
        # The "primary" registry does not exist at all; the mirror answers.
        (config / "config.toml").write_text(
            '[[registry]]\nprefix = "primary.invalid"\n'
            f'[[registry.mirror]]\nlocation = "{mirror.host}/cache"\n')
        result = run_locald("pull", "primary.invalid/library/thing:1")
        assert result.returncode == 0, result.stderr
        assert_image_in_store(locald_home, image)
        assert ru.store_refs(locald_home)["primary.invalid/library/thing:1"]["digest"] == image.digest


def test_two_processes_pull_the_same_image(registry, locald_bin, locald_home):
    import subprocess
    layers = [ob.Layer(raw_tar=os.urandom(6 * 1024 * 1024), compression="gzip") for _ in range(3)]
    image = ob.make_image(layers, platform=("linux", HOST_ARCH, ""))
    registry.push_image("test/race", "1", image)
    env = dict(os.environ, LOCALD_HOME=str(locald_home))
    ref = f"{registry.host}/test/race:1"
    procs = [subprocess.Popen([str(locald_bin), "pull", "-q", ref], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == ref
    assert_image_in_store(locald_home, image)
    ingest = locald_home / "data" / "ingest"
    assert not ingest.exists() or not any(ingest.iterdir())
