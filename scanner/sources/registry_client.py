"""The registry client under RegistrySource: one repository of one registry over the OCI
distribution API.

- Auth: anonymous first; on 401 the ``WWW-Authenticate`` challenge is answered, Bearer (token
  from the realm, with credentials if we have them) or Basic.
- Redirects (blob storage) are followed by hand, and the ``Authorization`` header is only ever
  sent to the registry's own host.
- Every blob is verified against its digest as it is read (and its size against the descriptor):
  a mismatch is an error, never a scanned layer.  Manifests and configs are read up to a limit.
- Plain HTTP only for loopback registries and the ones marked insecure (as Docker does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..errors import RegistryError, RegistryUnavailable
from .interface import INDEX_TYPES, MANIFEST_TYPES
from .reference import Credentials, Reference, RegistryOptions, docker_config_credentials, is_loopback

ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
MAX_MANIFEST = 4 << 20  # containerd's limit for a manifest or index
MAX_CONFIG = 64 << 20
MAX_REDIRECTS = 5
CHUNK = 1 << 20
TIMEOUT = (10, 120)  # connect, read


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class Client:
    """One registry, one repository: auth, redirects, digest-checked reads."""

    def __init__(self, ref: Reference, options: RegistryOptions) -> None:
        import requests  # a dependency of the docker SDK; imported only when a registry is used

        self.requests = requests
        self.ref = ref
        self.options = options
        self.host = ref.api_host
        self.insecure = ref.registry in options.insecure or self.host in options.insecure
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "leakscan"
        self.session.trust_env = False  # no proxies or .netrc from the environment: only what we are told
        self.verify: bool | str = options.ca_bundle or not self.insecure
        self.auth_header: str | None = options.authorization
        self._creds: Credentials | None = None
        self._creds_loaded = False
        self.base = self._base_url()

    def close(self) -> None:
        self.session.close()

    def credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = self.options.credentials or docker_config_credentials(
                self.ref.registry, self.options.config_dir
            )
            self._creds_loaded = True
        return self._creds

    def _base_url(self) -> str:
        plain_ok = is_loopback(self.host) or self.insecure
        try:
            self.session.get(f"https://{self.host}/v2/", timeout=TIMEOUT, verify=self.verify, allow_redirects=False)
            return f"https://{self.host}"
        except self.requests.exceptions.SSLError:
            if not plain_ok:
                raise RegistryError(
                    f"registry {self.host}: TLS failed",
                    remedy="pass --insecure-registry HOST only for a registry you trust on this network",
                ) from None
        except self.requests.exceptions.ConnectionError:
            if not plain_ok:
                raise RegistryError(
                    f"registry {self.host} cannot be reached over HTTPS",
                    remedy="check the registry's name and this machine's network; a registry you trust that "
                    "only speaks HTTP needs --insecure-registry HOST",
                ) from None
        return f"http://{self.host}"

    def _authenticate(self, resp: Any) -> bool:
        """Answer a 401 challenge; False when there is nothing more to try."""
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = _challenge(header)
        creds = self.credentials()
        if scheme == "basic":
            if creds is None or self.auth_header is not None:
                return False
            pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self.auth_header = f"Basic {pair}"
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        if self.auth_header is not None and self.auth_header.startswith("Bearer"):
            return False  # a token was already refused
        realm = params["realm"]
        if not realm.startswith("https://") and not (realm.startswith("http://") and self._plain_realm_ok(realm)):
            raise RegistryError(f"registry {self.host}: refusing a token realm over plain HTTP ({realm[:80]})")
        query = {"scope": f"repository:{self.ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        auth = None
        if creds is not None and creds.username != "<token>":
            auth = (creds.username, creds.password)
        try:
            if creds is not None and creds.username == "<token>":
                tresp = self.session.post(
                    realm,
                    data={
                        **query,
                        "grant_type": "refresh_token",
                        "refresh_token": creds.password,
                        "client_id": "leakscan",
                    },
                    timeout=TIMEOUT,
                    verify=self.verify,
                )
            else:
                tresp = self.session.get(realm, params=query, auth=auth, timeout=TIMEOUT, verify=self.verify)
        except self.requests.exceptions.RequestException as exc:
            why = type(exc).__name__
            raise RegistryUnavailable(f"registry {self.host}: token service unreachable ({why})") from None
        if tresp.status_code in (401, 403):
            raise RegistryError(
                f"registry {self.host}: the token service refused {'the credentials' if creds else 'anonymous access'}",
                remedy="docker login, or pass --registry-username with LEAKSCAN_REGISTRY_PASSWORD",
            )
        token: Any = None
        try:
            doc = tresp.json()
            if isinstance(doc, dict):
                token = doc.get("token") or doc.get("access_token")
        except ValueError:
            pass
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {self.host}: the token service gave no token (HTTP {tresp.status_code})")
        self.auth_header = f"Bearer {token}"
        return True

    def _plain_realm_ok(self, realm: str) -> bool:
        host = urlsplit(realm).netloc
        return is_loopback(host) or host in self.options.insecure or self.insecure

    def get(self, path: str, accept: str | None = None, stream: bool = False) -> Any:
        """GET on the registry with auth; redirects to other hosts are followed without credentials."""
        url = f"{self.base}{path}"
        for attempt in range(3):
            headers = {"Accept": accept} if accept else {}
            if self.auth_header:
                headers["Authorization"] = self.auth_header
            resp = self._follow(url, headers, stream)
            if resp.status_code == 401 and attempt < 2:
                resp.close()
                if self._authenticate(resp):
                    continue
                raise RegistryError(
                    f"registry {self.host}: access to {self.ref.repository} denied (HTTP 401)",
                    remedy="docker login, or pass --registry-username with LEAKSCAN_REGISTRY_PASSWORD",
                )
            return resp
        raise RegistryError(f"registry {self.host}: authentication failed")

    def _follow(self, url: str, headers: dict[str, str], stream: bool) -> Any:
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.get(
                    url, headers=headers, stream=stream, allow_redirects=False, timeout=TIMEOUT, verify=self.verify
                )
            except self.requests.exceptions.RequestException as exc:
                raise RegistryUnavailable(f"registry {self.host}: request failed ({type(exc).__name__})") from None
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp
            location = resp.headers.get("Location")
            resp.close()
            if not location:
                raise RegistryError(f"registry {self.host}: redirect without a Location")
            url = urljoin(url, location)
            target = urlsplit(url)
            if target.scheme == "http" and not (is_loopback(target.netloc) or target.netloc in self.options.insecure):
                raise RegistryError(f"registry {self.host}: refusing a redirect to plain HTTP ({target.netloc})")
            if target.netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"registry {self.host}: too many redirects")

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest or index, digest-checked."""
        resp = self.get(f"/v2/{self.ref.repository}/manifests/{reference}", accept=ACCEPT, stream=True)
        with resp:
            self._check_status(resp, f"manifest {reference}")
            body = read_limited(resp, MAX_MANIFEST, f"manifest {reference}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"registry {self.host}: manifest {reference} does not match its digest (got {digest})")
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise RegistryError(f"registry {self.host}: manifest digest {digest} differs from the header's {header}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(f"registry {self.host}: manifest {reference} is not JSON") from None
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
            media_type = doc["mediaType"]
        return body, media_type, digest

    def blob(self, digest: str) -> Any:
        resp = self.get(f"/v2/{self.ref.repository}/blobs/{digest}", stream=True)
        self._check_status(resp, f"blob {digest}")
        return resp

    def _check_status(self, resp: Any, what: str) -> None:
        if resp.status_code == 200:
            return
        resp.close()
        if resp.status_code == 404:
            raise RegistryError(f"registry {self.host}: {self.ref.repository}: {what} not found")
        if resp.status_code in (429, 500, 502, 503, 504):
            raise RegistryUnavailable(f"registry {self.host}: {what}: HTTP {resp.status_code} (try again later)")
        raise RegistryError(f"registry {self.host}: {what}: HTTP {resp.status_code}")


def read_limited(resp: Any, limit: int, what: str) -> bytes:
    out = bytearray()
    for chunk in resp.raw.stream(CHUNK, decode_content=False):
        out += chunk
        if len(out) > limit:
            raise RegistryError(f"{what} is larger than {limit} bytes; refused")
    return bytes(out)


class LazyBlob:
    """A layer blob requested at its first read: one whose result the layer cache holds is never
    downloaded."""

    def __init__(self, client: Client, digest: str, size: int | None) -> None:
        self._client, self._digest, self._size = client, digest, size
        self._blob: VerifiedBlob | None = None

    def read(self, n: int = -1) -> bytes:
        if self._blob is None:
            where = f"registry {self._client.host}: blob {self._digest[:19]}"
            self._blob = VerifiedBlob(self._client.blob(self._digest), self._digest, self._size, where)
        return self._blob.read(n)

    def drain(self) -> None:
        if self._blob is not None:
            self._blob.drain()


class VerifiedBlob:
    """A blob's HTTP body read as a stream, hashed as it goes; the end is checked against the digest."""

    def __init__(self, resp: Any, digest: str, size: int | None, where: str) -> None:
        self._raw = resp.raw
        self._resp = resp
        self._digest = digest
        self._size = size
        self._where = where
        self._hash = hashlib.sha256()
        self._count = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        try:
            data = self._raw.read(None if n is None or n < 0 else n, decode_content=False)
        except Exception as exc:  # urllib3's errors: a cut connection is a read error, not a short layer
            # transient: the registry went away in the middle of the blob; the whole scan is worth
            # trying again (the service retries it with backoff), never a layer reported half-read
            raise RegistryUnavailable(f"{self._where}: download cut short ({type(exc).__name__})") from None
        if data:
            self._hash.update(data)
            self._count += len(data)
            if self._size is not None and self._count > self._size:
                raise RegistryError(f"{self._where}: larger than its descriptor's {self._size} bytes")
            if n is None or n < 0:
                self._finish()
            return bytes(data)
        self._finish()
        return b""

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self._resp.close()
        if self._size is not None and self._count < self._size:  # the connection ended early
            raise RegistryUnavailable(f"{self._where}: {self._count} bytes where the descriptor says {self._size}")
        if self._size is not None and self._count != self._size:
            raise RegistryError(f"{self._where}: {self._count} bytes where the descriptor says {self._size}")
        got = "sha256:" + self._hash.hexdigest()
        if got != self._digest:
            raise RegistryError(f"{self._where}: content does not match its digest (got {got})")

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
