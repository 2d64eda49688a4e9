"""The registry client's safety rules, against small HTTP servers on loopback (no services needed):
a blob redirect to another host never carries the registry's credentials; a Bearer challenge is
answered from the token realm; a lying blob is an error; plain HTTP is refused for non-loopback
hosts; references and the Docker config are read as Docker reads them."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scanner import ScanOptions, scan_image
from scanner.errors import RegistryUnavailable, SourceError, UsageError
from scanner.sources import RegistryOptions, RegistrySource, open_source
from scanner.sources.registry import Credentials, Reference, docker_config_credentials
from tests.support.tars import layer_tar, oci_image, sha

SECRET_FILE = b"GITHUB_TOKEN=ghp_" + b"Zq9" * 12 + b"\n"


def _image(corrupt: bool = False) -> dict[str, bytes]:
    manifest, config, layer = oci_image(layer_tar([("app/.env", SECRET_FILE)]))
    served_layer = layer[:-8] + bytes([layer[-8] ^ 1]) + layer[-7:] if corrupt else layer  # the gzip CRC
    return {"manifest": manifest, sha(config): config, sha(layer): served_layer}


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    """A registry that wants Bearer tokens and redirects blobs to a storage host; records headers."""
    state: dict[str, Any] = {
        "storage_auth": [],
        "token_requests": [],
        "registry_auth": [],
        "corrupt": False,
        "cut": False,  # the storage host dies in the middle of the layer blob
    }

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state["storage_auth"].append(self.headers.get("Authorization"))
            image = _image(state["corrupt"])
            blob = image.get(self.path.lstrip("/"))
            self.send_response(200 if blob else 404)
            self.send_header("Content-Length", str(len(blob or b"")))
            self.end_headers()
            if blob and state["cut"] and self.path.lstrip("/") == list(image)[-1]:  # the layer
                self.wfile.write(blob[: len(blob) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(blob or b"")

    storage = _Server(Storage)

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                state["token_requests"].append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"token": "tok-123"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            auth = self.headers.get("Authorization")
            state["registry_auth"].append(auth)
            if auth != "Bearer tok-123":
                self.send_response(401)
                realm = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}/token"
                self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            image = _image(state["corrupt"])
            if "/manifests/" in self.path:
                body = image["manifest"]
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif "/blobs/" in self.path:
                digest = self.path.rsplit("/", 1)[1]
                self.send_response(307)
                # "localhost" vs "127.0.0.1": another host, as a storage bucket would be
                self.send_header("Location", f"http://localhost:{storage.httpd.server_address[1]}/{digest}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

    registry = _Server(Registry)
    state["host"] = registry.host
    yield state
    registry.close()
    storage.close()


def test_bearer_token_and_no_credentials_on_the_redirect(servers: dict[str, Any], tmp_path: Path) -> None:
    creds = Credentials("ci", "s3cret-registry-password")
    source = RegistrySource(f"{servers['host']}/team/app:1", RegistryOptions(credentials=creds))
    report = scan_image(source, ScanOptions())
    assert report.complete, report.problems
    (image,) = report.images
    assert any(f.rule_id == "github-token" for f in image.findings)
    assert servers["storage_auth"] and all(a is None for a in servers["storage_auth"])  # never forwarded
    path, auth = servers["token_requests"][0]
    assert "scope=repository%3Ateam%2Fapp%3Apull" in path and "service=test" in path
    assert auth == "Basic " + base64.b64encode(b"ci:s3cret-registry-password").decode()
    assert "s3cret" not in repr(creds)


def test_a_blob_that_does_not_match_its_digest_is_an_error(servers: dict[str, Any]) -> None:
    servers["corrupt"] = True
    with pytest.raises(SourceError, match="does not match its digest"):
        scan_image(RegistrySource(f"{servers['host']}/team/app:1"), ScanOptions())


def test_a_blob_cut_short_is_transient_never_a_half_read_layer(servers: dict[str, Any]) -> None:
    """Issue 21: a connection that ends in the middle of a layer raises RegistryUnavailable (the
    service retries the whole scan), instead of a report with a layer read halfway."""
    servers["cut"] = True
    with pytest.raises(RegistryUnavailable, match=r"download cut short|bytes where the descriptor says"):
        scan_image(RegistrySource(f"{servers['host']}/team/app:1"), ScanOptions())


def test_plain_http_is_refused_for_a_remote_registry() -> None:
    with pytest.raises(SourceError, match=r"cannot be reached over HTTPS|TLS"):
        RegistrySource("registry.invalid/team/app:1").members().__next__()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("alpine", ("docker.io", "library/alpine", "latest", None)),
        ("docker://user/app:2", ("docker.io", "user/app", "2", None)),
        ("localhost:5000/app", ("localhost:5000", "app", "latest", None)),
        ("reg.example.com/team/app:1.2", ("reg.example.com", "team/app", "1.2", None)),
        ("127.0.0.1:5000/a/b@sha256:" + "0" * 64, ("127.0.0.1:5000", "a/b", None, "sha256:" + "0" * 64)),
    ],
)
def test_references(text: str, want: tuple[str, str, str | None, str | None]) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == want


@pytest.mark.parametrize(
    "bad",
    [
        "reg.example.com/Team/app",
        "reg.example.com/app@sha256:zz",
        "app:bad tag",
        # a trailing newline: "$" would accept it, and the request or the hash check fail later
        "reg.example.com/app@sha256:" + "0" * 64 + "\n",
        "reg.example.com/app:1\n",
        "reg.example.com/app\n",
    ],
)
def test_bad_references_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        Reference.parse(bad)


def test_docker_config_auths_and_hub_key(tmp_path: Path) -> None:
    pair = base64.b64encode(b"u:p").decode()
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": pair},
                    "reg.example.com": {"username": "a", "password": "b"},
                }
            }
        )
    )
    assert docker_config_credentials("docker.io", str(tmp_path)) == Credentials("u", "p")
    assert docker_config_credentials("reg.example.com", str(tmp_path)) == Credentials("a", "b")
    assert docker_config_credentials("other.example.com", str(tmp_path)) is None


def test_docker_scheme_always_means_a_registry() -> None:
    assert isinstance(open_source("docker://localhost:1/app:1"), RegistrySource)
