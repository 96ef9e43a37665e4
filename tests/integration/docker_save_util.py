"""Build `docker save` archives for tests, without docker.

Two shapes, as Docker writes them:

* legacy (Docker < 25): `<layer-id>/{VERSION,json,layer.tar}` per layer,
  `<config-hex>.json`, `manifest.json`, `repositories`; a layer that repeats
  is a symlink `<id>/layer.tar -> ../<first-id>/layer.tar`;
* blobs (Docker >= 25 without the OCI files, as other tools write it):
  `blobs/sha256/<hex>` for configs and uncompressed layers, `manifest.json`
  naming them, `repositories`.

    import docker_save_util as ds
    img = ds.DockerImage([ob.busybox_layer(), ob.Layer({"etc/x": "1"})], tags=["busy:1"])
    ds.write_archive(tmp_path / "save.tar", [img], shape="legacy")

Layers are stored uncompressed (their `.tar`), so each layer's sha256 is its
diff_id, exactly as in a real `docker save`. `members` lets a test replace
or add raw members (bytes, ob.Symlink, or None to drop one) to break things.
"""
import hashlib
import io
import json
import tarfile

import oci_build as ob


class DockerImage:
    def __init__(self, layers, tags=(), platform=("linux", "amd64", ""), config=None,
                 raw_config: bytes = None):
        self.layers = list(layers)
        self.tags = list(tags)
        self.config = raw_config if raw_config is not None else ob.make_config(
            self.layers, platform, config)

    @property
    def config_hex(self) -> str:
        return hashlib.sha256(self.config).hexdigest()

    @property
    def diff_ids(self):
        return [layer.diff_id for layer in self.layers]


def _layer_id(index_in_image: int, image: DockerImage) -> str:
    # A v1-style id: any 64 hex chars; derived from the chain like Docker does.
    chain = "".join(image.diff_ids[: index_in_image + 1])
    return hashlib.sha256(chain.encode()).hexdigest()


def archive_members(images, shape="legacy"):
    """{name: bytes | ob.Symlink} for a docker save of `images`, and the
    manifest.json document (a list) it contains."""
    members = {}
    manifest = []
    repositories = {}
    first_copy = {}  # diff_id -> member holding it
    for image in images:
        layer_names = []
        for i, layer in enumerate(image.layers):
            if shape == "legacy":
                layer_id = _layer_id(i, image)
                name = f"{layer_id}/layer.tar"
                members[f"{layer_id}/VERSION"] = b"1.0"
                members[f"{layer_id}/json"] = json.dumps({"id": layer_id}).encode()
                if layer.diff_id in first_copy and first_copy[layer.diff_id] != name:
                    members[name] = ob.Symlink("../" + first_copy[layer.diff_id])
                else:
                    members[name] = layer.tar
                    first_copy.setdefault(layer.diff_id, name)
            else:
                name = "blobs/sha256/" + layer.diff_id.split(":", 1)[1]
                members[name] = layer.tar
            layer_names.append(name)
        config_name = (f"{image.config_hex}.json" if shape == "legacy"
                       else f"blobs/sha256/{image.config_hex}")
        members[config_name] = image.config
        manifest.append({"Config": config_name, "RepoTags": image.tags or None,
                         "Layers": layer_names})
        top = layer_names[-1].split("/")[0] if shape == "legacy" else layer_names[-1].split("/")[-1]
        for tag in image.tags:
            repo, _, version = tag.rpartition(":")
            repositories.setdefault(repo, {})[version] = top
    members["manifest.json"] = json.dumps(manifest).encode()
    members["repositories"] = json.dumps(repositories).encode()
    return members, manifest


def write_tar(path, members: dict):
    """Writes `members` ({name: bytes | ob.Symlink | ob.Hardlink}) in the order
    Docker uses (layer directories first, manifest.json last)."""
    def order(name):
        return (name in ("manifest.json", "repositories"), name)

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for name in sorted(members, key=order):
            spec = members[name]
            if spec is None:
                continue
            parent = name.rsplit("/", 1)[0] if "/" in name else None
            if parent and parent not in dirs and not parent.startswith("blobs"):
                dirs.add(parent)
                info = tarfile.TarInfo(parent)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, ob.MTIME
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.mtime = ob.MTIME
            if isinstance(spec, ob.Symlink):
                info.type, info.linkname = tarfile.SYMTYPE, spec.target
                tar.addfile(info)
            elif isinstance(spec, ob.Hardlink):
                info.type, info.linkname = tarfile.LNKTYPE, spec.target
                tar.addfile(info)
            else:
                info.size, info.mode = len(spec), 0o644
                tar.addfile(info, io.BytesIO(spec))
    return path


def write_archive(path, images, shape="legacy", members=None):
    """A docker save tar of `images`; `members` overrides/adds/drops members."""
    all_members, _ = archive_members(images, shape)
    all_members.update(members or {})
    return write_tar(path, all_members)
