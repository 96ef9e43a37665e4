#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<harness>/ (small, reviewable).

Re-run after changing it: `python3 fuzz/make_seeds.py`. Tars are built with
Python's tarfile (ustar, GNU, PAX) and GNU tar (sparse), gzip/zstd with the
CLIs; everything else is literal text mirroring the unit tests' documents.
"""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def strip_padding(tar_bytes):
    """Drop record padding after the two end-of-archive blocks."""
    data = tar_bytes.rstrip(b"\0")
    end = (len(data) + 511) // 512 * 512
    return data.ljust(end, b"\0") + b"\0" * 1024


def make_tar(fmt, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return strip_padding(buf.getvalue())


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", uid=0, gid=0, pax=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = 1700000000
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    if pax:
        info.pax_headers = pax
    return info, (data if kind == tarfile.REGTYPE else None)


def layer_seeds():
    basic = [
        entry("etc/", tarfile.DIRTYPE, mode=0o755),
        entry("etc/hostname", data=b"box\n"),
        entry("usr/bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000),
        entry("usr/bin/alias", tarfile.SYMTYPE, link="tool"),
        entry("usr/bin/hard", tarfile.LNKTYPE, link="usr/bin/tool"),
        entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
        entry("run/fifo", tarfile.FIFOTYPE),
        entry("dev/null", tarfile.CHRTYPE),
    ]
    put("layer_fuzz", "ustar.tar", make_tar(tarfile.USTAR_FORMAT, basic))
    whiteouts = [
        entry("etc/.wh.passwd"),
        entry("usr/.wh..wh..opq"),
        entry("usr/lib/new", data=b"n"),
        entry(".wh.var"),
        entry("var/", tarfile.DIRTYPE),
        entry("lib/through-symlink", data=b"s"),
        entry("../../outside/evil", data=b"e"),
        entry("a/.wh..wh.plnk"),
        entry("escape/x", data=b"e"),
    ]
    put("layer_fuzz", "whiteouts.tar", make_tar(tarfile.USTAR_FORMAT, whiteouts))
    long_name = "d" * 120 + "/" + "f" * 150
    gnu = [
        entry(long_name, data=b"long"),
        entry("link-to-long", tarfile.LNKTYPE, link=long_name),
        entry("sym", tarfile.SYMTYPE, link="t" * 300),
        entry("big-ids", uid=0o7777777 + 5, gid=2**31, data=b"x"),
    ]
    put("layer_fuzz", "gnu.tar", make_tar(tarfile.GNU_FORMAT, gnu))
    pax = [
        entry("x", data=b"xattr", pax={"SCHILY.xattr.user.k": "v",
                                       "SCHILY.xattr.security.capability": "\x01\x00\x00\x02" + "\0" * 16,
                                       "SCHILY.xattr.trusted.overlay.opaque": "y"}),
        entry("ünïcode/" + "p" * 200, data=b"u", pax={"mtime": "1700000000.123456789",
                                                      "atime": "-5.5", "uid": "4294967295"}),
        entry("dir/", tarfile.DIRTYPE, mode=0, pax={"SCHILY.xattr.user.overlay.opaque": "y"}),
        entry("dir/child", data=b"c"),
    ]
    pax_tar = make_tar(tarfile.PAX_FORMAT, pax)
    put("layer_fuzz", "pax.tar", pax_tar)
    put("layer_fuzz", "pax.tar.gz", gzip.compress(pax_tar, mtime=0))
    put("layer_fuzz", "ustar-two-members.tar.gz",
        gzip.compress(pax_tar[:1024], mtime=0) + gzip.compress(pax_tar[1024:], mtime=0))
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-q", "-c", "-19"], input=make_tar(tarfile.USTAR_FORMAT, basic),
                           stdout=subprocess.PIPE, check=True).stdout
        put("layer_fuzz", "ustar.tar.zst", z)
    # GNU and PAX sparse entries, from GNU tar itself.
    with tempfile.TemporaryDirectory() as tmp:
        sparse = os.path.join(tmp, "sparse")
        with open(sparse, "wb") as f:
            f.write(b"head")
            f.seek(64 * 1024)
            f.write(b"middle")
            f.seek(200 * 1024)
            f.write(b"tail")
        for fmt, name in (("gnu", "sparse-gnu.tar"), ("pax", "sparse-pax.tar")):
            out = subprocess.run(["tar", "--sparse", f"--format={fmt}", "--mtime=@0",
                                  "--owner=0", "--group=0", "-C", tmp, "-cf", "-", "sparse"],
                                 stdout=subprocess.PIPE, check=True).stdout
            put("layer_fuzz", name, strip_padding(out))


def layer_entries_seeds():
    seeds = {
        "basic": "d etc\nf etc/hostname -> box\nl bin -> usr/bin\nd usr/bin\nu usr/bin/sh -> #!\n"
                 "h usr/bin/bash -> usr/bin/sh\np run/fifo\nc dev/null\ns run/sock\n",
        "whiteouts": "f etc/.wh.passwd\nf usr/.wh..wh..opq\nf usr/lib/new -> n\nf .wh.var\nd var\n"
                     "f a/.wh..wh.plnk\nf .wh..\nf x/.wh.\n",
        "escapes": "f ../../outside/x -> e\nf lib/../../../y -> e\nf escape/z -> e\nl up -> ../..\n"
                   "f up/outside/w -> e\nh link -> ../outside/canary\nh l2 -> escape/canary\n",
        "replace": "f a -> 1\nd a\nf a/b -> 2\nl a -> /tmp\nf a/c -> 3\nD locked\nf locked/f -> x\n"
                   "h locked/g -> locked/f\nf .wh.locked\nd locked\n",
        "xattrs": "x f -> user.k=v\nx g -> security.capability=\x01\x00\x00\x03"
                  + "\x00" * 20 + "\nx h -> trusted.overlay.opaque=y\nx i -> user.overlay.opaque=y\n",
        "hardlinks": "h a -> b\nf b -> 1\nh c -> b\nh d -> c\nf .wh.b\nh e -> b\nh f -> /\nh g -> g\n"
                     "d dir\nh h -> dir\nl s -> b\nh t -> s\n",
    }
    for name, text in seeds.items():
        put("layer_entries_fuzz", name, text)


EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
D1 = "sha256:" + hashlib.sha256(b"1").hexdigest()


# sha256 of the config oci_archive_fuzz serves when the input has none.
DEFAULT_CONFIG_HEX = "f1c6cdd9970ec550cf99058a66cec4d54374db8772997cac592b570e38669f28"


def json_seeds():
    docs = {
        "oci-manifest.json": '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},'
        '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":10,'
        '"urls":["https://x/y"],"annotations":{"a":"b"}}],"annotations":{"org.opencontainers.image.created":"now"},'
        '"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":3}}' % (EMPTY, D1, D1),
        "docker-manifest.json": '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        '"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":2},'
        '"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"%s","size":10}]}' % (EMPTY, D1),
        "oci-index.json": '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":5,'
        '"platform":{"architecture":"amd64","os":"linux"}},'
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":5,'
        '"platform":{"architecture":"arm","os":"linux","variant":"v7","os.features":["x"]}},'
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":5,'
        '"platform":{"architecture":"unknown","os":"unknown"},'
        '"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}' % (EMPTY, D1, D1),
        "docker-list.json": '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",'
        '"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"%s",'
        '"size":5,"platform":{"architecture":"x86_64","os":"linux"}}]}' % EMPTY,
        "config.json": '{"created":"2024-01-01T00:00:00Z","author":"me","architecture":"amd64","os":"linux",'
        '"config":{"User":"1000:1000","ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin","A=b"],'
        '"Entrypoint":["/bin/sh"],"Cmd":null,"Volumes":{"/data":{}},"WorkingDir":"/app",'
        '"Labels":{"k":"v"},"StopSignal":"SIGTERM"},"rootfs":{"type":"layers","diff_ids":["%s"]},'
        '"history":[{"created":"x","created_by":"y","empty_layer":true},{"comment":"c"}]}' % EMPTY,
        "schema1.json": '{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}',
        "token.json": '{"token":"abc","access_token":"def","expires_in":300,"refresh_token":"r","issued_at":"x"}',
        "no-media-type.json": '{"schemaVersion":2,"manifests":[]}',
    }
    for name, text in docs.items():
        put("oci_document_fuzz", name, text)
    put("json_fuzz", "config.json", docs["config.json"])
    put("json_fuzz", "index.json", docs["oci-index.json"])
    put("json_fuzz", "scalars.json",
        '[null,true,false,0,-0,1e308,-9223372036854775808,9223372036854775807,9223372036854775808,'
        '1.5e-300,"\\u0000\\ud83d\\ude00\\n\\"",{"":{}},[]]')
    put("json_fuzz", "deep.json", "[" * 60 + "]" * 60)
    put("json_fuzz", "utf8.json", '{"k\\u00e9":"v\xc3\xa9","dup":1}')

    legacy = ('[{"Config":"%s.json","RepoTags":["busybox:latest","localhost:5000/a/b:1"],'
              '"Layers":["abc/layer.tar"]}]') % DEFAULT_CONFIG_HEX
    put("oci_archive_fuzz", "legacy", legacy)
    put("oci_archive_fuzz", "modern",
        '[{"Config":"blobs/sha256/%s","RepoTags":null,"Layers":["blobs/sha256/%s.tar"]}]'
        '\n====\n{"busybox":{"latest":"blobs"}}' % (DEFAULT_CONFIG_HEX, "2" * 64))
    put("oci_archive_fuzz", "repositories",
        '[{"Config":"c.json","Layers":["./abc//layer.tar"]}]\n====\n{"team/app":{"v1":"abc"}}\n====\n'
        + docs["config.json"])


def text_seeds():
    refs = ["alpine", "docker.io/library/alpine:3.19", "localhost:5000/ns/repo:tag",
            "index.docker.io/x/y", "repo:tag@" + EMPTY, "repo@" + EMPTY, "[::1]:5000/a/b",
            "127.0.0.1:5001/a_b/c__d/e-f.g:v1.2-3", "Upper/case", "a" * 64,
            "sha512:" + "a" * 128, "linux/arm64/v8", "linux/amd64",
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull,push"\nBasic realm="x\\"y", Bearer realm=z',
            "dXNlcjpwYXNz", "./a//b/../c/", "/abs/path"]
    for i, r in enumerate(refs):
        put("oci_text_fuzz", f"seed{i:02}", r)
    put("oci_credentials_fuzz", "docker-config.json",
        '{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},'
        '"localhost:5000/team":{"username":"u","password":"p"},'
        '"http://registry.example.com/v2/":{"identitytoken":"t"}},"credsStore":"none"}')
    put("oci_credentials_fuzz", "bad-auth.json", '{"auths":{"docker.io":{"auth":"bm9jb2xvbg=="}}}')
    with open(os.path.join(HERE, "..", "examples", "quickstart", "locald.toml")) as f:
        put("config_toml_fuzz", "quickstart.toml", f.read())
    with open(os.path.join(HERE, "..", "docs", "manual", "config.md")) as f:
        # The manual's complete example (every key).
        put("config_toml_fuzz", "full.toml", f.read().split("```toml\n")[1].split("```")[0])
    put("config_toml_fuzz", "registries.toml",
        'offline = false\n[[registry]]\nprefix = "docker.io/library"\nlocation = "mirror.corp/lib"\n'
        'insecure = true\nblocked = false\n[[registry.mirror]]\nlocation = "127.0.0.1:5001/hub"\n'
        'insecure = true\npull-from-mirror = "digest-only"\n[[registry]]\nprefix = "*.example.com"\nblocked = true\n')
    quick = os.path.join(HERE, "..", "examples", "quickstart")
    with open(os.path.join(quick, "locald.toml")) as f, open(os.path.join(quick, ".env")) as g:
        put("config_project_fuzz", "quickstart", f.read() + "\n====\n\n====\n" + g.read())
    put("config_project_fuzz", "procfile-only",
        "\n====\nweb: python -m http.server $PORT\nworker: ./work ${GREETING}\n====\nGREETING=hi\n")
    put("config_project_fuzz", "toml-and-procfile",
        '[project]\nname = "p"\n[env]\nA = 1\nB = true\n[service.web]\ncommand = ["x"]\n'
        'env_file = [".env"]\ndepends_on = { db = "healthy", worker = "started" }\nport = 3000\n'
        '[service.db]\nimage = "postgres:15"\nvolumes = ["pgdata:/var/lib/pg", "./init:/init:ro"]\n'
        'resources = { memory = "512M", cpus = 1.5, pids = 512 }\nhealth_check = { exec = "pg_isready" }\n'
        '\n====\nworker: ./work\nweb: ignored\n====\nexport A=2\nPORT=1\n')
    with open(os.path.join(HERE, "..", "docs", "manual", "config.md")) as f:
        full = f.read().split("```toml\n")[1].split("```")[0]
    put("config_project_fuzz", "full", full.replace('env_file = [".env.web"]', 'env_file = [".env"]')
        .replace('workdir = "frontend"', 'workdir = "."'))
    with open(os.path.join(HERE, "..", "examples", "quickstart", ".env")) as f:
        put("config_dotenv_fuzz", "quickstart.env", f.read())
    put("config_dotenv_fuzz", "dialect.env",
        '\ufeffexport A=1 # comment\r\nB="multi\nline ${A} $A \\n \\$"\nC=\'lit ${A}\'\nD=${MISSING:-def}\n'
        'E=${HOME}/x\nF=$(echo hi)\n# comment\n\nG="${B:-x}"\n')
    put("config_procfile_fuzz", "Procfile",
        "web: bundle exec rails s -p $PORT\nworker:  python worker.py\n# comment\n\nrelease: ./x\n")
    for i, v in enumerate(["500ms", "1h30m", "SIGTERM", "9", "512M", "1.5Gi", "0"]):
        put("config_procfile_fuzz", f"value{i}", v)


def layout_seeds():
    """A one-image OCI layout and a docker save archive, as tars."""
    layer = make_tar(tarfile.USTAR_FORMAT, [entry("hello", data=b"hi\n")])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = ('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}'
              % diff_id).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},'
                '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}'
                % (config_digest, len(config), diff_id, len(layer))).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
             '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,'
             '"annotations":{"io.containerd.image.name":"localhost:5000/a/b:1",'
             '"org.opencontainers.image.ref.name":"1"}}]}' % (manifest_digest, len(manifest))).encode()

    def blob(digest, data):
        return entry("blobs/sha256/" + digest.split(":")[1], data=data)

    oci = [entry("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}'), entry("index.json", data=index),
           entry("blobs/", tarfile.DIRTYPE), blob(manifest_digest, manifest), blob(config_digest, config),
           blob(diff_id, layer)]
    put("oci_layout_fuzz", "oci-layout.tar", make_tar(tarfile.PAX_FORMAT, oci))
    docker_manifest = ('[{"Config":"%s.json","RepoTags":["busybox:1"],"Layers":["abc/layer.tar"]}]'
                       % config_digest.split(":")[1]).encode()
    docker = [entry("manifest.json", data=docker_manifest),
              entry("repositories", data=b'{"busybox":{"1":"abc"}}'),
              entry(config_digest.split(":")[1] + ".json", data=config),
              entry("abc/", tarfile.DIRTYPE), entry("abc/layer.tar", data=layer),
              entry("abc/VERSION", data=b"1.0")]
    put("oci_layout_fuzz", "docker-save.tar", make_tar(tarfile.USTAR_FORMAT, docker))
    put("oci_layout_fuzz", "unsafe.tar", make_tar(tarfile.USTAR_FORMAT, [
        entry("../escape", data=b"x"), entry("link", tarfile.SYMTYPE, link="/etc"),
        entry("index.json", tarfile.LNKTYPE, link="link")]))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    layer_seeds()
    layer_entries_seeds()
    layout_seeds()
    json_seeds()
    text_seeds()


if __name__ == "__main__":
    main()
