"""A Docker token-auth server (the ``auth.token`` scheme of distribution), for the registry tests:
it answers ``GET /token?service=...&scope=repository:NAME:ACTIONS`` with an RS256 JWT whose
``x5c`` header carries a self-signed certificate that the registry trusts (``rootcertbundle``).
Only the user and password it is given are granted access; anyone else gets an empty grant."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ISSUER = "leakscan-test-issuer"
SERVICE = "leakscan-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    realm: str
    cert: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def self_signed(key: Any, common_name: str, *, ca: bool = False) -> Any:
    """A certificate for ``key`` signed by itself, valid from five minutes ago for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


@contextmanager
def token_server(workdir: Path, user: str, password: str) -> Iterator[TokenServer]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "leakscan-test-token", ca=True)
    workdir.mkdir(parents=True, exist_ok=True)
    pem = workdir / "token-cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    good = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            auth = self.headers.get("Authorization")
            seen.append((self.path, auth))
            granted = auth == good
            access = []
            for scope in query.get("scope", []):
                kind, repo, actions = scope.split(":")
                if granted:
                    access.append({"type": kind, "name": repo, "actions": actions.split(",")})
            t = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": user if granted else "",
                "aud": query.get("service", [""])[0],
                "exp": t + 300,
                "nbf": t - 10,
                "iat": t,
                "jti": f"{t}-{len(seen)}",
                "access": access,
            }
            signing = _b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [der]}).encode())
            signing += "." + _b64(json.dumps(claims).encode())
            signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": f"{signing}.{_b64(signature)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenServer(f"http://127.0.0.1:{httpd.server_address[1]}/token", pem, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
