#!/usr/bin/python3
"""Cold pull of a ~250 MB, 6-layer image from a loopback docker-registry:
`locald pull` into an empty store vs `skopeo copy docker://… oci:DIR`, in the
same run, alternating, medians of N runs. Also measures the limits on this
machine: sha256 throughput (OpenSSL via hashlib) and a plain loopback HTTP
download of the same bytes from the same registry (curl to /dev/null).

usage: bench/oci/pull_bench.py [--runs N] [--locald build/locald] [--layer-mb 42]
Needs: docker-registry, skopeo (scripts/bootstrap --bench), curl.
"""
import argparse
import hashlib
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import oci_build as ob  # noqa: E402
import registry_util as ru  # noqa: E402


def timed(argv, env=None):
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--locald", default=str(ROOT / "build" / "locald"))
    parser.add_argument("--layer-mb", type=int, default=42)
    parser.add_argument("--serve", action="store_true",
                        help="push the image, print its ref, and keep the registry up until "
                             "interrupted (for profiling one tool by hand)")
    args = parser.parse_args()
    for tool in ("skopeo", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (scripts/bootstrap --bench)")

    work = pathlib.Path(tempfile.mkdtemp(prefix="locald-pull-bench-"))
    try:
        with ru.Registry(work / "registry") as registry:
            layers = [ob.Layer(raw_tar=os.urandom(args.layer_mb * 1024 * 1024), compression="gzip")
                      for _ in range(6)]
            image = ob.make_image(layers)
            registry.push_image("bench/img", "1", image)
            total = sum(b.size for b in image.layers) + image.config.size
            ref = f"{registry.host}/bench/img:1"
            if args.serve:
                print(ref, flush=True)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    return

            locald_times, skopeo_times = [], []
            for run in range(args.runs):
                home = work / f"home-{run}"
                home.mkdir(mode=0o700)
                env = dict(os.environ, LOCALD_HOME=str(home))
                locald_times.append(timed([args.locald, "pull", "-q", ref], env=env))
                oci_dir = work / f"skopeo-{run}"
                skopeo_times.append(timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                           f"docker://{ref}", f"oci:{oci_dir}:1"]))
                shutil.rmtree(home)
                shutil.rmtree(oci_dir)

            # Limits: hashing and a bare loopback HTTP download of the same bytes.
            blob = image.layers[0].data
            start = time.monotonic()
            for _ in range(4):
                hashlib.sha256(blob).hexdigest()
            sha_mbps = 4 * len(blob) / (time.monotonic() - start) / 1e6
            curl_times = []
            for _ in range(3):
                start = time.monotonic()
                for layer in image.layers:
                    subprocess.run(["curl", "-s", "-o", "/dev/null",
                                    f"{registry.url}/v2/bench/img/blobs/{layer.digest}"], check=True)
                curl_times.append(time.monotonic() - start)

        locald = statistics.median(locald_times)
        skopeo = statistics.median(skopeo_times)
        curl = statistics.median(curl_times)
        print(f"image: 6 layers, {total / 1e6:.1f} MB (gzip of random data), registry {ref}")
        print(f"locald pull   runs: {', '.join(f'{t:.2f}' for t in locald_times)}  median {locald:.2f} s"
              f"  ({total / locald / 1e6:.0f} MB/s)")
        print(f"skopeo copy   runs: {', '.join(f'{t:.2f}' for t in skopeo_times)}  median {skopeo:.2f} s"
              f"  ({total / skopeo / 1e6:.0f} MB/s)")
        print(f"ratio locald/skopeo: {locald / skopeo:.2f}")
        print(f"limit: sha256 {sha_mbps:.0f} MB/s ({total / sha_mbps / 1e6:.2f} s for the image); "
              f"loopback download (curl, sequential) median {curl:.2f} s "
              f"({total / curl / 1e6:.0f} MB/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
