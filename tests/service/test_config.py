"""The service configuration: secrets by reference to the environment, refusals, no secret in repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.errors import UsageError
from scanner.service.config import load_config
from scanner.sources.registry import Credentials

GOOD = """
[service]
data_dir = "{data}"
workers = 3
max_attempts = 6
retry_backoff = 0.5
cache_max_size = 1000000

[auth]
tokens = ["literal-token"]
tokens_env = "T_ENV"
hmac_secret_env = "H_ENV"

[registries."Registry.Example.com:5000"]
username = "scanner"
password_env = "P_ENV"
insecure = true

[registries."other.example.com"]

[notify]
url = "https://alerts.example.com/x"
token_env = "N_ENV"

[scan]
secrets = ["id=deploy,env=DEPLOY_TOKEN"]
timeout = 60
jobs = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.toml"
    path.write_text(text.replace("{data}", str(tmp_path / "data")))
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"T_ENV": "a-token, b-token", "H_ENV": "hmac-key", "P_ENV": "reg-pass", "N_ENV": "alert-tok"}.items():
        monkeypatch.setenv(k, v)


def test_a_full_config(tmp_path: Path, env: None) -> None:
    config = load_config(write(tmp_path, GOOD), workers=1)
    assert config.tokens == ("literal-token", "a-token", "b-token")
    assert config.hmac_secret == b"hmac-key" and config.notify_token == "alert-tok"
    assert config.workers == 1 and config.max_attempts == 6 and config.retry_backoff == 0.5  # flags win
    assert config.scan_timeout == 60 and config.secrets == ("id=deploy,env=DEPLOY_TOKEN",) and config.scan_jobs == 2
    assert config.cache_max_size == 1_000_000
    entry = config.allowed("registry.example.com:5000")  # hosts are matched case-insensitively
    assert entry is not None and entry.insecure and entry.credentials == Credentials("scanner", "reg-pass")
    assert config.allowed("registry.example.com") is None and config.allowed("evil.example.com") is None
    options = config.registry_options("other.example.com")
    assert options.credentials is None and options.insecure == () and options.all_platforms
    assert options.config_dir and not Path(options.config_dir).exists()  # the Docker config is never read
    harbor = config.registry_options("registry.example.com:5000", Credentials("robot", "r"))
    assert harbor.credentials == Credentials("robot", "r") and harbor.insecure == ("registry.example.com:5000",)
    text = repr(config)
    assert not [s for s in ("a-token", "hmac-key", "reg-pass", "alert-tok", "literal-token") if s in text]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[registries."r.example.com"]\n', "no tokens and no hmac_secret"),
        ('[auth]\ntokens = ["t"]\n', "[registries] is empty"),
        ('[auth]\ntokens_env = "UNSET_VAR_X"\n[registries."r.io"]\n', "UNSET_VAR_X"),
        ("[auth\n", "not a readable TOML file"),
        ('auth = "x"\n', "[auth] must be a table"),
        ('[auth]\ntokens = ["t"]\n[registries."r.io"]\n[retention]\nkeep = 3\n', "unknown keys ['keep']"),
        ('[auth]\ntokens = ["t"]\n[registries."r.io"]\n[retention]\nmax_age_days = -1\n', "must be positive"),
        ('[auth]\ntokens = ["t"]\n[registries."r.io"]\n[retention]\nmax_age_days = "x"\n', "must be numbers"),
        ('[service]\ncache_max_size = -1\n[auth]\ntokens = ["t"]\n[registries."r.io"]\n', "cache_max_size must be 0"),
        ('[service]\ncache_max_size = "2GiB"\n[auth]\ntokens = ["t"]\n[registries."r.io"]\n', "must be a int"),
        ('[service]\nworkers = "two"\n[auth]\ntokens = ["t"]\n[registries."r.io"]\n', "workers must be a int"),
    ],
)
def test_refusals(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


def test_retention_is_off_unless_configured(tmp_path: Path) -> None:
    base = '[auth]\ntokens = ["t"]\n[registries."r.io"]\n'
    assert not load_config(write(tmp_path, base)).retention.active
    policy = load_config(write(tmp_path, base + "[retention]\nmax_age_days = 30\nkeep_per_repository = 5\n")).retention
    assert policy.active and policy.max_age_days == 30 and policy.keep_per_repository == 5
    assert policy.interval_minutes == 60


def test_the_layer_cache_bound_defaults_to_the_cli_s(tmp_path: Path) -> None:
    from scanner import prune

    config = load_config(write(tmp_path, '[auth]\ntokens = ["t"]\n[registries."r.io"]\n'))
    assert config.cache_max_size == prune.MAX_BYTES
