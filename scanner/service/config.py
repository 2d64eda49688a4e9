"""The service's configuration: one TOML file, secrets by reference to the environment.

```toml
[service]
data_dir = "/var/lib/leakscan"        # SQLite store and layer cache (embedded mode)
cache_max_size = 2147483648           # bytes the layer cache folder may hold (0: no limit; as --cache-max-size)
workers = 2                           # embedded worker processes
redis_url = "redis://127.0.0.1:6379/0"  # set: Dramatiq workers on Redis (`leakscan worker`)

[auth]
tokens_env = "LEAKSCAN_WEBHOOK_TOKENS"  # comma-separated bearer tokens (or tokens = [...])
hmac_secret_env = "LEAKSCAN_WEBHOOK_HMAC"

[registries."registry.example.com:5000"]   # the allow-list: nothing else is ever contacted
insecure = false
username = "scanner"
password_env = "REGISTRY_PASSWORD"

[notify]
url = "https://alerts.example.com/leakscan"
token_env = "ALERT_TOKEN"

[retention]                           # off unless set; the newest report of each tag is always kept
max_age_days = 90
keep_per_repository = 500
interval_minutes = 60
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import prune
from ..errors import UsageError
from ..sources.reference import Credentials, RegistryOptions
from .retention import RetentionPolicy

if TYPE_CHECKING:
    from ..engine import ScanOptions

# `leakscan serve --example-config`: a config that works as it is for a registry on this machine
# (docs/service.md: the registry's side, and the three commands).
EXAMPLE = """\
# leakscan-service.toml (leakscan serve --example-config > leakscan-service.toml)
[service]
data_dir = "leakscan-data"              # SQLite store, layer cache and fingerprint key
workers = 2                             # embedded worker processes
# redis_url = "redis://127.0.0.1:6379/0"  # scale out: `leakscan worker` processes on Redis

[auth]                                  # every sender (registry, API client) must present a token
tokens_env = "LEAKSCAN_WEBHOOK_TOKENS"  # comma-separated bearer tokens, from the environment

# The allow-list: the registries the service may contact, as HOST[:PORT] exactly as in image names.
# A loopback registry (localhost, 127.0.0.1) may answer over plain HTTP without `insecure`.
[registries."localhost:5000"]
# username = "scanner"
# password_env = "REGISTRY_PASSWORD"
# insecure = true                       # plain HTTP / unverified TLS, for a non-loopback host you trust

# [notify]                              # POST a JSON alert when a scan finds something
# url = "https://alerts.example.com/hooks/leakscan"
# token_env = "ALERT_TOKEN"

# [scan]
# secrets = ["id=deploy,env=DEPLOY_TOKEN"]  # known values to look for in every image (--secret syntax)

# [retention]                           # jobs and reports are kept forever unless this is set
# max_age_days = 90                     # delete what is older...
# keep_per_repository = 500             # ...or past the 500 newest of its repository;
# interval_minutes = 60                 # the newest report of each tag is always kept
"""


@dataclass(frozen=True)
class RegistryEntry:
    host: str
    insecure: bool = False
    credentials: Credentials | None = None


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path
    tokens: tuple[str, ...] = ()
    hmac_secret: bytes | None = None
    registries: dict[str, RegistryEntry] = field(default_factory=dict)
    redis_url: str | None = None
    workers: int = 2
    max_attempts: int = 4  # executions of one job, whatever ended them (error, worker death)
    retry_backoff: float = 2.0  # seconds before the first retry; doubled each time
    retry_backoff_max: float = 300.0
    lease: float = 30.0  # embedded: a running job whose worker stops renewing for this long is retried
    heartbeat_timeout: float = 30.0  # redis: a worker silent this long is dead and its jobs requeued
    max_body: int = 1 << 20
    max_events: int = 100
    notify_url: str | None = None
    notify_token: str | None = None
    public_url: str = ""
    secrets: tuple[str, ...] = ()  # --secret specs checked in every image
    scan_timeout: float = 1800.0
    scan_jobs: int = 1  # detector processes per scan (leakscan worker only; embedded workers scan in-process)
    index_wait: float = 2.0  # an index job looks again this often while its platform images' jobs run
    rules_path: Path | None = None  # a TOML file whose [rules] table changes the built-in rules (as --config)
    rescan_per_minute: float = 6.0  # rescans of stale reports queued at most this often, only when idle (0: never)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    # the layer cache folder's bound (scanner.prune, as the CLI's --cache-max-size); 0: none.  A
    # shared cache backend (the Redis deployment's) is not pruned by this
    cache_max_size: int = prune.MAX_BYTES

    def __repr__(self) -> str:  # the dataclass repr would print tokens and passwords
        where = f"data_dir={str(self.data_dir)!r}, registries={sorted(self.registries)}"
        return f"ServiceConfig({where}, redis={bool(self.redis_url)})"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "leakscan.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "layers"

    def scan_options(self) -> ScanOptions:
        """The scan every job runs (the cache and its timeouts aside): the rules, the known values."""
        from ..detectors import BUILTIN_RULES, RuleSet, SecretSpec, load_known_values
        from ..engine import ScanOptions

        known = load_known_values([SecretSpec.parse(s) for s in self.secrets])
        rules = RuleSet.load(BUILTIN_RULES, self.rules_path) if self.rules_path is not None else None  # None: built-in
        return ScanOptions(known=tuple(known), rules=rules)

    def fingerprint(self) -> str:
        """The rule-set fingerprint of the reports this configuration makes (engine.ruleset_fingerprint)."""
        from ..engine import ruleset_fingerprint

        return ruleset_fingerprint(self.scan_options())

    def allowed(self, host: str) -> RegistryEntry | None:
        return self.registries.get(host.lower())

    def registry_options(
        self, host: str, credentials: Credentials | None = None, authorization: str | None = None
    ) -> RegistryOptions:
        """Options for one allow-listed registry; the Docker config of the machine is never read.
        ``credentials`` or ``authorization`` (a Harbor scan request's) replace the configured ones."""
        entry = self.registries[host.lower()]
        return RegistryOptions(
            all_platforms=True,
            insecure=(entry.host,) if entry.insecure else (),
            credentials=credentials or (None if authorization else entry.credentials),
            config_dir=str(self.data_dir / "no-docker-config"),
            authorization=authorization,
        )


def _secret(section: dict[str, Any], key: str, where: str) -> str | None:
    """``key = "value"`` or ``key_env = "VAR"`` (preferred: the file then holds no secret)."""
    if f"{key}_env" in section:
        var = section[f"{key}_env"]
        value = os.environ.get(str(var))
        if value is None:
            raise UsageError(f"{where}: {key}_env names {var!r}, which is not set")
        return value
    value = section.get(key)
    return None if value is None else str(value)


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"service config: [{key}] must be a table")
    return value


def _retention(table: dict[str, Any]) -> RetentionPolicy:
    unknown = set(table) - set(RetentionPolicy.__dataclass_fields__)
    if unknown:
        raise UsageError(f"service config: [retention] has unknown keys {sorted(unknown)}")
    try:
        policy = RetentionPolicy(
            max_age_days=float(table.get("max_age_days", 0)),
            keep_per_repository=int(table.get("keep_per_repository", 0)),
            interval_minutes=float(table.get("interval_minutes", 60)),
        )
    except (TypeError, ValueError):
        raise UsageError("service config: [retention] values must be numbers") from None
    if policy.max_age_days < 0 or policy.keep_per_repository < 0 or policy.interval_minutes <= 0:
        raise UsageError("service config: [retention] values must be positive (0: no limit)")
    return policy


def load_config(path: Path | None, **overrides: Any) -> ServiceConfig:
    doc: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a readable TOML file ({type(exc).__name__})") from None
    svc, auth, notify, scan, keep = (_table(doc, k) for k in ("service", "auth", "notify", "scan", "retention"))
    tokens: list[str] = [str(t) for t in auth.get("tokens", [])]
    if "tokens_env" in auth:
        tokens += [t.strip() for t in (_secret(auth, "tokens", "[auth]") or "").split(",") if t.strip()]
    hmac_secret = _secret(auth, "hmac_secret", "[auth]")
    registries: dict[str, RegistryEntry] = {}
    for host, entry in _table(doc, "registries").items():
        if not isinstance(entry, dict):
            raise UsageError(f"service config: [registries.{host!r}] must be a table")
        password = _secret(entry, "password", f"[registries.{host!r}]")
        user = entry.get("username")
        creds = Credentials(str(user), password) if user is not None and password is not None else None
        registries[host.lower()] = RegistryEntry(host.lower(), bool(entry.get("insecure", False)), creds)
    values: dict[str, Any] = {
        "data_dir": Path(svc.get("data_dir", "leakscan-data")),
        "tokens": tuple(tokens),
        "hmac_secret": hmac_secret.encode() if hmac_secret else None,
        "registries": registries,
        "redis_url": svc.get("redis_url") or None,
        "notify_url": notify.get("url"),
        "notify_token": _secret(notify, "token", "[notify]"),
        "secrets": tuple(str(s) for s in scan.get("secrets", [])),
        "retention": _retention(keep),
    }
    for key in (
        "workers",
        "max_attempts",
        "retry_backoff",
        "retry_backoff_max",
        "lease",
        "heartbeat_timeout",
        "max_body",
        "max_events",
        "public_url",
        "index_wait",
        "rescan_per_minute",
        "cache_max_size",
    ):
        if key in svc:
            kind = type(getattr(ServiceConfig, key))
            try:
                values[key] = kind(svc[key])
            except (TypeError, ValueError):
                raise UsageError(f"service config: [service] {key} must be a {kind.__name__}") from None
    if "timeout" in scan:
        values["scan_timeout"] = float(scan["timeout"])
    if "jobs" in scan:
        values["scan_jobs"] = max(1, int(scan["jobs"]))
    if "rules" in doc:  # the service's own file carries the [rules] table, as the CLI's --config does
        values["rules_path"] = path
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = ServiceConfig(**values)
    if config.cache_max_size < 0:
        raise UsageError("service config: [service] cache_max_size must be 0 (no limit) or more bytes")
    if not config.tokens and not config.hmac_secret:
        raise UsageError("service config: [auth] has no tokens and no hmac_secret; every sender must authenticate")
    if not config.registries:
        raise UsageError("service config: [registries] is empty; list the registries the service may contact")
    return config
