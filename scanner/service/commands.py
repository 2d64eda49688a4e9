"""``leakscan serve`` and ``leakscan worker``: parse, load the config, hand over (thin)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .config import ServiceConfig

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help='Service TOML: [service], [auth], [registries."HOST"], [notify], [scan] (leakscan serve --example-config).',
)


def _load(config_path: Path | None, **overrides: object) -> ServiceConfig:
    from ..errors import LeakscanError
    from .config import load_config

    try:
        return load_config(config_path, **overrides)
    except LeakscanError as exc:
        click.echo(exc.diagnostics(), err=True)
        raise SystemExit(int(exc.exit_code)) from None


@click.command("serve")
@_CONFIG
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(0, 64), help="Embedded worker processes (default: [service] workers).")
@click.option("--redis", "redis_url", help="Redis URL: queue jobs for `leakscan worker` processes instead.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Store and layer cache.")
@click.option("--example-config", is_flag=True, help="Print a config to start from (docs/service.md) and exit.")
def serve_cmd(
    config_path: Path | None,
    host: str,
    port: int,
    workers: int | None,
    redis_url: str | None,
    data_dir: Path | None,
    example_config: bool,
) -> None:
    """Run the webhook scanning service: registries notify it of pushes, it scans each new image
    digest and serves the reports over a REST API (and the Harbor scanner adapter API).

    \b
    Start here (docs/service.md):
      leakscan serve --example-config > leakscan-service.toml
      export LEAKSCAN_WEBHOOK_TOKENS=$(openssl rand -hex 16)
      leakscan serve --config leakscan-service.toml

    \b
    Webhooks:  POST /hooks/distribution | /hooks/harbor | /hooks/dockerhub/TOKEN
    API:       GET /api/v1/jobs, /api/v1/jobs/{id|digest}, /api/v1/jobs/{id|digest}/report?format=F
    Harbor:    GET /api/v1/metadata, POST /api/v1/scan, GET /api/v1/scan/{id}/report
    Probes:    GET /healthz, /readyz, /metrics
    """
    if example_config:
        from .config import EXAMPLE

        click.echo(EXAMPLE, nl=False)
        return
    from .server import serve

    config = _load(config_path, workers=workers, redis_url=redis_url, data_dir=data_dir)
    serve(config, host, port)


@click.command("worker")
@_CONFIG
@click.option("--redis", "redis_url", help="Redis URL (default: [service] redis_url).")
def worker_cmd(config_path: Path | None, redis_url: str | None) -> None:
    """Run one scanning worker on the Redis queue (start any number, on any machine)."""
    from .server import worker

    config = _load(config_path, redis_url=redis_url)
    if not config.redis_url:
        click.echo("error: a worker needs a Redis URL ([service] redis_url or --redis)", err=True)
        raise SystemExit(2)
    worker(config)
