#!/usr/bin/python3
"""Cold pull of a ~250 MB, 6-layer image from a loopback docker-registry:
`locald pull` into an empty store vs `skopeo copy docker://… oci:DIR`, in the
same run, alternating (which tool goes first alternates too), medians of N
runs. Also measures the limits on this machine in the same run, interleaved
with the pulls: sha256 throughput (OpenSSL via hashlib), a plain loopback
HTTP download of the same bytes from the same registry (curl to /dev/null,
sequential and six in parallel), and the same six parallel downloads written
to files and fsync'd (`sync FILE…`) — the floor for a durable pull.

usage: bench/oci/pull_bench.py [--runs N] [--locald build/locald] [--layer-mb 42]
Needs: docker-registry, skopeo (scripts/bootstrap --bench), curl.
"""
import argparse
import hashlib
import os
import pathlib
import shutil
import signal
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
                # Background jobs inherit SIGINT ignored: stop on SIGTERM too.
                signal.signal(signal.SIGTERM, signal.default_int_handler)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    return

            os.sync()  # the push's 264 MB, written back before anything is timed
            blob_urls = [f"{registry.url}/v2/bench/img/blobs/{layer.digest}"
                         for layer in image.layers]

            def curl_sequential():
                for url in blob_urls:
                    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)

            def curl_parallel(out_dir=None):
                procs = []
                for i, url in enumerate(blob_urls):
                    target = "/dev/null" if out_dir is None else str(out_dir / f"b{i}")
                    procs.append(subprocess.Popen(["curl", "-s", "-o", target, url]))
                for proc in procs:
                    if proc.wait() != 0:
                        raise SystemExit("curl failed")
                if out_dir is not None:
                    subprocess.run(["sync", *[str(out_dir / f"b{i}") for i in range(len(blob_urls))]],
                                   check=True)

            def clock(fn, *fn_args):
                start = time.monotonic()
                fn(*fn_args)
                return time.monotonic() - start

            blob = image.layers[0].data
            locald_times, skopeo_times, sha_rates = [], [], []
            curl_seq, curl_par, curl_disk = [], [], []
            loads = [os.getloadavg()[0]]
            for run in range(args.runs):
                home = work / f"home-{run}"
                home.mkdir(mode=0o700)
                env = dict(os.environ, LOCALD_HOME=str(home))
                oci_dir = work / f"skopeo-{run}"
                pulls = [
                    lambda: locald_times.append(timed([args.locald, "pull", "-q", ref], env=env)),
                    lambda: skopeo_times.append(timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                                       f"docker://{ref}", f"oci:{oci_dir}:1"])),
                ]
                for pull in (pulls if run % 2 == 0 else reversed(pulls)):
                    # Each tool starts with no dirty page cache in flight (the
                    # push, the other tool's output, other users' writes):
                    # otherwise the fsyncs of whichever runs next pay for it.
                    os.sync()
                    pull()
                shutil.rmtree(home)
                shutil.rmtree(oci_dir)
                # Limits, in the same run as the pulls.
                start = time.monotonic()
                for _ in range(2):
                    hashlib.sha256(blob).hexdigest()
                sha_rates.append(2 * len(blob) / (time.monotonic() - start) / 1e6)
                curl_seq.append(clock(curl_sequential))
                curl_par.append(clock(curl_parallel))
                disk = work / f"curl-{run}"
                disk.mkdir()
                os.sync()
                curl_disk.append(clock(curl_parallel, disk))
                shutil.rmtree(disk)
                loads.append(os.getloadavg()[0])

        locald = statistics.median(locald_times)
        skopeo = statistics.median(skopeo_times)
        sha_mbps = statistics.median(sha_rates)

        def line(name, times):
            median = statistics.median(times)
            return (f"{name:<28} runs: {', '.join(f'{t:.2f}' for t in times)}  median {median:.2f} s"
                    f"  ({total / median / 1e6:.0f} MB/s)")

        print(f"image: 6 layers, {total / 1e6:.1f} MB (gzip of random data), registry {ref}")
        print(f"load average (1 min) during the run: {', '.join(f'{l:.1f}' for l in loads)}")
        print(line("locald pull", locald_times))
        print(line("skopeo copy", skopeo_times))
        print(f"ratio locald/skopeo: {locald / skopeo:.2f}")
        print(f"limit: sha256 {sha_mbps:.0f} MB/s ({total / sha_mbps / 1e6:.2f} s of one core for the image)")
        print(line("curl sequential /dev/null", curl_seq))
        print(line("curl x6 parallel /dev/null", curl_par))
        print(line("curl x6 to files + fsync", curl_disk))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
