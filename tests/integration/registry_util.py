"""A real registry for the integration tests: Debian's `docker-registry`
(distribution 2.8) started on 127.0.0.1 with a free port, plain HTTP, TLS
with a CA generated here by openssl, and/or htpasswd Basic auth (bcrypt).

Also a minimal distribution-API client over urllib to put images into the
registry (and read them back) without going through locald.
"""
import base64
import hashlib
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca_and_cert(directory: pathlib.Path, host="127.0.0.1"):
    """A throwaway CA and a server certificate for `host` signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=locald test CA", "-keyout", str(ca_key), "-out", str(ca_crt))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
        "-keyout", str(key), "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca_crt, crt, key


def make_client_cert(directory: pathlib.Path, name="locald-client"):
    """A client certificate signed by the CA make_ca_and_cert left in `directory`."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "client.key", directory / "client.csr", directory / "client.cert"
    ext = directory / "client.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=clientAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", str(key), "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return crt, key


class Registry:
    """One docker-registry process. Use as a context manager or call stop()."""

    def __init__(self, root: pathlib.Path, tls: bool = False, users: dict = None,
                 client_certs: bool = False):
        if not os.path.exists(REGISTRY_BIN):
            pytest.skip("docker-registry not installed (Debian package docker-registry; "
                        "scripts/bootstrap installs it)")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.users = users or {}
        self.ca_crt = None
        self.storage = root / "storage"
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: locald-test-secret"]
        if tls:
            self.ca_crt, crt, key = make_ca_and_cert(root / "pki")
            lines += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
            if client_certs:
                # Clients must present a certificate signed by the same CA.
                self.client_cert, self.client_key = make_client_cert(root / "pki")
                lines += ["    clientcas:", f"      - {self.ca_crt}"]
        if self.users:
            if not shutil.which("htpasswd"):
                pytest.skip("htpasswd not installed (Debian package apache2-utils; "
                            "scripts/bootstrap installs it)")
            htpasswd = root / "htpasswd"
            for i, (user, password) in enumerate(self.users.items()):
                args = ["htpasswd", "-B", "-b"] + (["-c"] if i == 0 else []) + \
                       [str(htpasswd), user, password]
                subprocess.run(args, check=True, capture_output=True)
            lines += ["auth:", "  htpasswd:", "    realm: locald-test", f"    path: {htpasswd}"]
        self.config = root / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = open(root / "registry.log", "wb")
        self.process = None
        self.start()

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def url(self):
        return f"{self.scheme}://{self.host}"

    def start(self):
        self.process = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: "
                                   f"{(self.root / 'registry.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start listening")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.log.close()

    # ---- a minimal client (the test's own, to seed and inspect the registry)

    def _context(self):
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_crt))
        if getattr(self, "client_cert", None):
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def request(self, method, path, data=None, headers=None, auth=None):
        url = path if path.startswith("http") else self.url + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, context=self._context(), timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def push_blob(self, repo, data: bytes, auth=None):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", auth=auth)
        if status == 200:
            return digest
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/", auth=auth)
        assert status == 202, (status, body)
        location = headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        separator = "&" if "?" in location else "?"
        status, _, body = self.request("PUT", f"{location}{separator}digest={digest}", data=data,
                                       headers={"Content-Type": "application/octet-stream"},
                                       auth=auth)
        assert status == 201, (status, body)
        return digest

    def push_manifest(self, repo, reference, raw: bytes, media_type, auth=None):
        status, headers, body = self.request("PUT", f"/v2/{repo}/manifests/{reference}", data=raw,
                                             headers={"Content-Type": media_type}, auth=auth)
        assert status == 201, (status, body)
        return headers.get("Docker-Content-Digest")

    def push_image(self, repo, tag, image, auth=None):
        """Pushes an oci_build.Image (config, layers, manifest)."""
        for blob in [image.config, *image.layers]:
            self.push_blob(repo, blob.data, auth=auth)
        return self.push_manifest(repo, tag, image.manifest.data, image.manifest.media_type,
                                  auth=auth)

    def push_index(self, repo, tag, index, auth=None):
        for image in index.images:
            self.push_image(repo, image.digest, image, auth=auth)
        return self.push_manifest(repo, tag, index.blob.data, index.blob.media_type, auth=auth)

    def get_manifest(self, repo, reference, auth=None):
        accept = ", ".join([
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json"])
        status, headers, body = self.request("GET", f"/v2/{repo}/manifests/{reference}",
                                             headers={"Accept": accept}, auth=auth)
        assert status == 200, (status, body)
        return body, headers.get("Content-Type")

    def get_blob(self, repo, digest, auth=None):
        status, _, body = self.request("GET", f"/v2/{repo}/blobs/{digest}", auth=auth)
        assert status == 200, (status, body)
        return body


def store_dir(locald_home: pathlib.Path) -> pathlib.Path:
    return locald_home / "data" / "store"


def store_blob(locald_home: pathlib.Path, digest: str) -> pathlib.Path:
    algorithm, hexdigest = digest.split(":", 1)
    return store_dir(locald_home) / "blobs" / algorithm / hexdigest


def store_refs(locald_home: pathlib.Path) -> dict:
    """index.json of the store: {ref name: descriptor}."""
    path = store_dir(locald_home) / "index.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m
            for m in doc.get("manifests", [])}
