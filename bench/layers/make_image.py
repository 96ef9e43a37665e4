#!/usr/bin/env python3
"""Builds the layers benchmark image: 6 gzip layers, ~600 MB uncompressed,
a realistic mix of many small files, some medium and a few large ones, with
moderately compressible content (text-like words plus random noise).

Writes, under OUT:
  home/data/store/   locald's store (LOCALD_HOME=OUT/home), ref bench/layers:1
  umoci-layout/      the same blobs as an OCI layout tagged `bench` (for umoci)
  layers/N.tar.gz    each layer blob as a file (for GNU tar -xzf)
Deterministic (seeded), so every run measures the same bytes.
"""
import os
import pathlib
import random
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "integration"))
import oci_build as ob  # noqa: E402

REF = "docker.io/bench/layers:1"


def content(rng, words, size):
    out = bytearray()
    while len(out) < size:
        out += b"".join(rng.choices(words, k=256))
        out += rng.randbytes(160)  # some incompressible noise
    return bytes(out[:size])


def layer_files(index, rng, words, target_bytes):
    files = {}
    total = 0
    top = f"layer{index}"
    files[top] = ob.Dir()
    n = 0
    while total < target_bytes:
        roll = rng.random()
        if roll < 0.90:
            size = rng.randint(256, 16 * 1024)
        elif roll < 0.995:
            size = rng.randint(64 * 1024, 1024 * 1024)
        else:
            size = rng.randint(4 * 1024 * 1024, 12 * 1024 * 1024)
        d = f"{top}/d{n // 200}"
        if d not in files:
            files[d] = ob.Dir()
        name = f"{d}/f{n}"
        mode = 0o755 if n % 17 == 0 else 0o644
        files[name] = ob.File(content(rng, words, size), mode=mode, uid=(n % 3) * 500, gid=0)
        if n % 97 == 0:
            files[f"{d}/l{n}"] = ob.Symlink(f"f{n}")
        total += size
        n += 1
    return files


def main():
    out = pathlib.Path(sys.argv[1])
    per_layer = int(sys.argv[2]) if len(sys.argv) > 2 else 100 * 1024 * 1024
    rng = random.Random(20261126)
    alphabet = b"abcdefghijklmnopqrstuvwxyz_./0123456789"
    words = [bytes(rng.choices(alphabet, k=rng.randint(2, 10))) + b" " for _ in range(2048)]
    layers = []
    for i in range(6):
        layers.append(ob.Layer(layer_files(i, rng, words, per_layer), compression="gzip"))
        print(f"layer {i}: {len(layers[-1].tar) / 1e6:.0f} MB tar, "
              f"{len(layers[-1].compressed) / 1e6:.0f} MB gzip", flush=True)
    store = ob.Layout(out / "home" / "data" / "store")
    img = store.add_image(layers)
    store.tag(REF, img)
    umoci = ob.Layout(out / "umoci-layout")
    img2 = umoci.add_image(layers)
    umoci.tag("bench", img2, ref_annotation="tag")
    (out / "layers").mkdir(exist_ok=True)
    for i, layer in enumerate(layers):
        (out / "layers" / f"{i}.tar.gz").write_bytes(layer.compressed)
    print(f"image {img.manifest.digest}: "
          f"{sum(len(l.tar) for l in layers) / 1e6:.0f} MB uncompressed, "
          f"{sum(len(l.compressed) for l in layers) / 1e6:.0f} MB compressed")


if __name__ == "__main__":
    main()
