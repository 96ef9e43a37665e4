"""Build OCI image layouts for tests, without docker or any registry.

Shared by the oci-store, oci-registry and layers tests. Everything here is
deterministic (fixed mtimes, uid/gid 0, sorted entries, gzip without a
timestamp), so building the same spec twice gives byte-identical blobs.

Quick API
---------
    import oci_build as ob

    # One layer = a dict {path: content}. Content is bytes/str (a file), or
    # ob.Dir(), ob.Symlink("target"), ob.Hardlink("other/path"),
    # ob.File(b"data", mode=0o755, uid=0, gid=0), ob.Fifo(), ob.CharDev(maj, min).
    # Whiteouts are just names: {"etc/.wh.passwd": b""}, {"var/.wh..wh..opq": b""}.
    # ob.Layer(files, compression="gzip"|"zstd"|"none") or ob.Layer(raw_tar=b"…").

    layout = ob.Layout("/tmp/x")           # creates oci-layout, blobs/, index.json
    img = layout.add_image(
        layers=[ob.busybox_layer(), ob.Layer({"etc/hello": "hi\n"})],
        platform=("linux", "amd64", ""),   # os, arch, variant
        media="oci",                      # or "docker" (schema 2 types)
        config={"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
    )                                       # -> ob.Image (descriptor, digests, raw bytes)
    idx = layout.add_index([img, img_arm64], media="oci")  # multi-platform index
    layout.tag("docker.io/library/busy:1", img)            # index.json entry

    # A store is an OCI layout too: build straight into locald's store:
    layout = ob.Layout(locald_home / "data" / "store")
    # or save a layout as a tar (for `locald image load x.tar`):
    layout.to_tar("/tmp/x.tar")

Index.json entries get `org.opencontainers.image.ref.name` = the full ref
(what locald's store uses) and `io.containerd.image.name` = the full ref;
pass `ref_annotation="tag"` to `tag()` to write just the tag as skopeo does.

Objects
-------
Blob:  .digest ("sha256:…"), .size, .media_type, .data (bytes), .descriptor()
Image: .manifest (Blob), .config (Blob), .layers ([Blob]), .diff_ids, .platform,
       .descriptor() (manifest descriptor with platform)
Index: .blob (Blob), .images, .descriptor()
"""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"

MTIME = 1700000000  # fixed: builds are reproducible


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


@dataclasses.dataclass
class Blob:
    data: bytes
    media_type: str
    annotations: dict = dataclasses.field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        d.update(extra)
        return d


# ---------------------------------------------------------------- tar entries

@dataclasses.dataclass
class File:
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: dict = dataclasses.field(default_factory=dict)  # written as PAX SCHILY.xattr.*


@dataclasses.dataclass
class Dir:
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclasses.dataclass
class Symlink:
    target: str
    uid: int = 0
    gid: int = 0


@dataclasses.dataclass
class Hardlink:
    target: str  # path inside the layer, like "bin/busybox"


@dataclasses.dataclass
class Fifo:
    mode: int = 0o644


@dataclasses.dataclass
class CharDev:
    major: int
    minor: int
    mode: int = 0o666


def _tarinfo(name, spec):
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uname = info.gname = ""
    if isinstance(spec, (bytes, str)):
        spec = File(spec.encode() if isinstance(spec, str) else spec)
    if isinstance(spec, File):
        info.type = tarfile.REGTYPE
        info.size = len(spec.data)
        info.mode, info.uid, info.gid = spec.mode, spec.uid, spec.gid
        if spec.xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": (v.decode("latin-1") if isinstance(v, bytes) else v)
                                for k, v in spec.xattrs.items()}
        return info, spec.data
    if isinstance(spec, Dir):
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid = spec.mode, spec.uid, spec.gid
        return info, None
    if isinstance(spec, Symlink):
        info.type = tarfile.SYMTYPE
        info.linkname = spec.target
        info.mode, info.uid, info.gid = 0o777, spec.uid, spec.gid
        return info, None
    if isinstance(spec, Hardlink):
        info.type = tarfile.LNKTYPE
        info.linkname = spec.target
        info.mode = 0o644
        return info, None
    if isinstance(spec, Fifo):
        info.type = tarfile.FIFOTYPE
        info.mode = spec.mode
        return info, None
    if isinstance(spec, CharDev):
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor, info.mode = spec.major, spec.minor, spec.mode
        return info, None
    raise TypeError(f"unsupported entry type for {name}: {spec!r}")


def make_tar(files: dict, sort: bool = True) -> bytes:
    """A PAX tar of `files` ({path: spec}); paths are used verbatim (so
    hostile names like "../x" or "/abs" can be produced for tests).
    Keeps dict order when sort=False (for order-sensitive whiteout tests)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        items = sorted(files.items()) if sort else list(files.items())
        for name, spec in items:
            info, data = _tarinfo(name, spec)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        if shutil.which("zstd") is None:
            raise RuntimeError("the `zstd` command is needed for zstd layers (apt-get install zstd)")
        return subprocess.run(["zstd", "-q", "-c", "-3", "--no-check"], input=data,
                              capture_output=True, check=True).stdout
    raise ValueError(f"unknown compression {compression!r}")


def layer_media_type(compression: str, media: str) -> str:
    table = {
        ("oci", "gzip"): OCI_LAYER_GZIP, ("oci", "zstd"): OCI_LAYER_ZSTD, ("oci", "none"): OCI_LAYER,
        ("docker", "gzip"): DOCKER_LAYER_GZIP, ("docker", "zstd"): DOCKER_LAYER_ZSTD,
        ("docker", "none"): DOCKER_LAYER,
    }
    return table[(media, compression)]


class Layer:
    """A layer from `files` ({path: spec}) or from ready `raw_tar` bytes.
    `compression`: gzip (default), zstd or none. `media_type` overrides the
    type written in the manifest (e.g. to lie about compression)."""

    def __init__(self, files: dict = None, compression: str = "gzip", raw_tar: bytes = None,
                 media_type: str = None, sort: bool = True):
        if (files is None) == (raw_tar is None):
            raise ValueError("give exactly one of files or raw_tar")
        self.tar = raw_tar if raw_tar is not None else make_tar(files, sort=sort)
        self.compression = compression
        self.media_type_override = media_type
        self.compressed = compress(self.tar, compression)

    @property
    def diff_id(self) -> str:
        return sha256(self.tar)

    def blob(self, media: str) -> Blob:
        return Blob(self.compressed, self.media_type_override or layer_media_type(self.compression, media))


def busybox_files(applets=("sh", "ls", "cat", "echo", "true", "false", "sleep", "env", "id",
                           "mkdir", "rm", "touch", "wc", "head", "printf", "test")) -> dict:
    """bin/busybox (Debian's busybox-static) plus symlinked applets, with /etc
    and /tmp, enough to run shell commands in a container."""
    path = pathlib.Path("/bin/busybox")
    if not path.exists():
        raise RuntimeError("/bin/busybox is missing: apt-get install busybox-static")
    files = {
        "bin": Dir(),
        "bin/busybox": File(path.read_bytes(), mode=0o755),
        "etc": Dir(),
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "tmp": Dir(mode=0o1777),
        "root": Dir(mode=0o700),
    }
    for applet in applets:
        files[f"bin/{applet}"] = Symlink("busybox")
    return files


def busybox_layer(compression: str = "gzip") -> Layer:
    return Layer(busybox_files(), compression=compression)


@dataclasses.dataclass
class Image:
    manifest: Blob
    config: Blob
    layers: list
    diff_ids: list
    platform: tuple

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def descriptor(self, with_platform: bool = True) -> dict:
        d = self.manifest.descriptor()
        if with_platform:
            os_, arch, variant = self.platform
            p = {"architecture": arch, "os": os_}
            if variant:
                p["variant"] = variant
            d["platform"] = p
        return d


@dataclasses.dataclass
class Index:
    blob: Blob
    images: list

    @property
    def digest(self) -> str:
        return self.blob.digest

    def descriptor(self) -> dict:
        return self.blob.descriptor()


def make_config(layers, platform=("linux", "amd64", ""), config: dict = None,
                history: bool = True) -> bytes:
    os_, arch, variant = platform
    doc = {"created": "2023-11-14T22:13:20Z", "architecture": arch, "os": os_}
    if variant:
        doc["variant"] = variant
    doc["config"] = config if config is not None else {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}
    doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    if history:
        doc["history"] = [{"created": "2023-11-14T22:13:20Z", "created_by": f"oci_build layer {i}"}
                          for i in range(len(layers))]
    return canonical_json(doc)


def make_image(layers, platform=("linux", "amd64", ""), media="oci", config: dict = None,
               annotations: dict = None, raw_config: bytes = None) -> Image:
    """Builds (in memory) an image manifest + config for `layers` ([Layer])."""
    config_bytes = raw_config if raw_config is not None else make_config(layers, platform, config)
    config_blob = Blob(config_bytes, OCI_CONFIG if media == "oci" else DOCKER_CONFIG)
    layer_blobs = [layer.blob(media) for layer in layers]
    doc = {"schemaVersion": 2,
           "mediaType": OCI_MANIFEST if media == "oci" else DOCKER_MANIFEST,
           "config": config_blob.descriptor(),
           "layers": [b.descriptor() for b in layer_blobs]}
    if annotations:
        doc["annotations"] = annotations
    manifest = Blob(json.dumps(doc, indent=2).encode(), doc["mediaType"])
    return Image(manifest, config_blob, layer_blobs, [l.diff_id for l in layers], tuple(platform))


def make_index(images, media="oci", attestation_for=None) -> Index:
    """An index / manifest list over `images` ([Image]). With
    `attestation_for=[Image…]`, adds BuildKit-style attestation manifests
    (platform unknown/unknown) that selection must skip."""
    manifests = [img.descriptor() for img in images]
    extra_images = []
    for img in attestation_for or []:
        att_layer = Layer(raw_tar=b'{"predicateType":"https://spdx.dev/Document"}', compression="none",
                          media_type="application/vnd.in-toto+json")
        att = make_image([att_layer], platform=("unknown", "unknown", ""), media="oci")
        d = att.manifest.descriptor()
        d["platform"] = {"architecture": "unknown", "os": "unknown"}
        d["annotations"] = {"vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": img.digest}
        manifests.append(d)
        extra_images.append(att)
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX if media == "oci" else DOCKER_LIST,
           "manifests": manifests}
    blob = Blob(json.dumps(doc, indent=2).encode(), doc["mediaType"])
    return Index(blob, list(images) + extra_images)


class Layout:
    """An OCI image layout directory (created if missing). Merges into an
    existing index.json, so it can write straight into locald's store."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.root / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    def blob_path(self, digest: str) -> pathlib.Path:
        algorithm, hex_ = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_

    def write_blob(self, blob: Blob) -> Blob:
        path = self.blob_path(blob.digest)
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(blob.data)
            os.replace(tmp, path)
        return blob

    def add_image(self, layers, platform=("linux", "amd64", ""), media="oci", config=None,
                  annotations=None, raw_config=None) -> Image:
        img = make_image(layers, platform, media, config, annotations, raw_config)
        self.write_image(img)
        return img

    def write_image(self, img: Image) -> Image:
        for blob in [img.config, *img.layers, img.manifest]:
            self.write_blob(blob)
        return img

    def add_index(self, images, media="oci", attestation_for=None) -> Index:
        idx = make_index(images, media, attestation_for)
        for img in idx.images:
            self.write_image(img)
        self.write_blob(idx.blob)
        return idx

    def _read_index(self) -> dict:
        return json.loads((self.root / "index.json").read_text())

    def _write_index(self, doc: dict):
        tmp = self.root / ".index.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.root / "index.json")

    def tag(self, ref: str, target, ref_annotation: str = "full", extra_annotations=None):
        """Points `ref` (a full ref like docker.io/library/x:1) at `target`
        (Image or Index) in index.json, replacing an entry with the same name."""
        desc = target.descriptor() if isinstance(target, Index) else target.descriptor(with_platform=False)
        name = ref if ref_annotation == "full" else ref.rsplit(":", 1)[-1]
        desc["annotations"] = {"io.containerd.image.name": ref,
                               "org.opencontainers.image.ref.name": name,
                               **(extra_annotations or {})}
        doc = self._read_index()
        doc["manifests"] = [m for m in doc.get("manifests", [])
                            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name]
        doc["manifests"].append(desc)
        self._write_index(doc)
        return desc

    def to_tar(self, path):
        """Writes the layout as a tar (members `oci-layout`, `index.json`, `blobs/…`)."""
        with tarfile.open(path, "w") as tar:
            for entry in sorted(self.root.rglob("*")):
                rel = entry.relative_to(self.root).as_posix()
                tar.add(entry, arcname=rel, recursive=False)
        return path


def store_layout(locald_home) -> Layout:
    """The OCI layout of locald's store under an isolated LOCALD_HOME."""
    return Layout(pathlib.Path(locald_home) / "data" / "store")
