"""The options ``leakscan scan`` and ``leakscan baseline`` share (one decorator), and how they
become the image source and the engine's ScanOptions."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import prune
from .cache import default_dir as default_cache_dir
from .detectors import DEFAULT_MIN_LENGTH, SecretSpec, load_known_values
from .engine import ScanOptions
from .errors import UsageError
from .findings.dockerfile import Dockerfile, parse
from .findings.fingerprint import load_key
from .findings.suppress import Suppressions
from .layers.limits import NestedLimits, default_jobs
from .sources import ImageSource, open_source

if TYPE_CHECKING:
    from .sources.reference import RegistryOptions

F = TypeVar("F", bound=Callable[..., Any])


def scan_options(fn: F) -> F:
    options = [
        click.argument("image"),
        click.option(
            "--secret",
            "secrets",
            multiple=True,
            metavar="id=NAME[,src=PATH|,env=VAR]",
            help="A build secret to look for, in docker build's --secret syntax. Repeatable. A file counts "
            "whole, line by line and value by value (KEY=value, key: value, JSON).",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="TOML file: [rules] disable / custom rules, [[ignore]] entries (see README).",
        ),
        click.option(
            "--dockerfile",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="The Dockerfile the image was built from: each layer and finding is tied to its instruction and "
            "line (SARIF results point at it). Default: the Dockerfile in the image's BuildKit provenance, if any.",
        ),
        click.option(
            "--min-secret-length",
            type=click.IntRange(1),
            default=DEFAULT_MIN_LENGTH,
            show_default=True,
            help="Ignore values of a secret file shorter than this many bytes.",
        ),
        click.option(
            "--max-file-size",
            type=click.IntRange(1),
            default=None,
            help="Skip (and report) files larger than this many bytes. Default: scan every file whole.",
        ),
        click.option(
            "--archive-depth",
            type=click.IntRange(0),
            default=NestedLimits().max_depth,
            show_default=True,
            help="How deep to open archives and compressed files inside the image (0: not at all).",
        ),
        click.option("--no-entropy", is_flag=True, help="Turn the entropy detector off."),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Where layer results are cached (default: $XDG_CACHE_HOME/leakscan/layers).",
        ),
        click.option("--no-cache", is_flag=True, help="Do not read or write the layer cache."),
        click.option(
            "--cache-max-size",
            type=click.IntRange(0),
            default=prune.MAX_BYTES,
            show_default=True,
            help="Bytes the cache folders may hold: once a day the files unused longest go beyond it, "
            "and any unused for 30 days (0: no limit).",
        ),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(min=1, max=64),
            default=default_jobs,
            show_default="this machine's cores",
            help="Processes running the detectors while this one decompresses and walks the layers; 1: none.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            default=3600.0,
            show_default=True,
            help="Seconds for the whole image; what is not scanned by then makes the scan incomplete.",
        ),
        click.option(
            "--platform",
            default="linux/amd64",
            show_default=True,
            metavar="OS/ARCH[/VARIANT]",
            help="Registry images: the platform to scan in a multi-platform index.",
        ),
        click.option("--all-platforms", is_flag=True, help="Registry images: scan every platform of an index."),
        click.option(
            "--insecure-registry",
            multiple=True,
            metavar="HOST[:PORT]",
            help="Allow plain HTTP and unverified TLS for this registry. Repeatable. Loopback registries "
            "(localhost, 127.0.0.1) may use HTTP without it.",
        ),
        click.option(
            "--registry-username",
            metavar="USER",
            help="Registry user; the password (or token) is read from LEAKSCAN_REGISTRY_PASSWORD. Default: the "
            "Docker config's credentials (auths, credHelpers, credsStore; DOCKER_CONFIG).",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option(
            "--verbose",
            "-v",
            is_flag=True,
            help="Log what is skipped and why, layer by layer, on standard error (never a secret).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def scan_settings(
    secrets: tuple[str, ...],
    config: Path | None,
    min_secret_length: int,
    max_file_size: int | None,
    archive_depth: int,
    no_entropy: bool,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    cache_max_size: int = prune.MAX_BYTES,
    quiet: bool = False,
    verbose: bool = False,
    timeout: float = 3600.0,
    jobs: int = 1,
    suppressions: Suppressions | None = None,
    dockerfile: Path | None = None,
    size_hint: Callable[[], int | None] = lambda: None,
) -> ScanOptions:
    specs = [SecretSpec.parse(s) for s in secrets]
    known = tuple(load_known_values(specs, min_secret_length))
    rules = None  # the built-in rules, loaded if a detector runs (a rescan from the cache runs none)
    if config is not None:
        from .detectors.rules import RuleSet
        from .detectors.rules.loader import builtin_rules

        rules = RuleSet.load(builtin_rules(), config)
    key = load_key(cache_dir or default_cache_dir(), config)  # with --no-cache too: baselines need one key
    return ScanOptions(
        known=known,
        rules=rules,
        entropy=not no_entropy,
        max_file_size=max_file_size,
        archive_depth=archive_depth,
        suppressions=suppressions or Suppressions(),
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        cache_max_bytes=cache_max_size,
        progress=None if quiet or not sys.stderr.isatty() else progress_bar(size_hint()),
        timeout=timeout,
        jobs=jobs,
        dockerfile=read_dockerfile(dockerfile) if dockerfile is not None else None,
        fingerprint_key=key.key,
    )


def read_dockerfile(path: Path) -> Dockerfile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--dockerfile {path}: cannot be read ({type(exc).__name__})") from None
    dockerfile = parse(text, str(path))
    if not dockerfile.stages:
        raise UsageError(f"--dockerfile {path}: no FROM instruction; is it a Dockerfile?")
    return dockerfile


def image_source(
    image: str,
    platform: str = "linux/amd64",
    all_platforms: bool = False,
    insecure_registry: tuple[str, ...] = (),
    registry_username: str | None = None,
) -> ImageSource:
    password = os.environ.get("LEAKSCAN_REGISTRY_PASSWORD") if registry_username else None
    if registry_username and password is None:
        raise UsageError("--registry-username needs the password in LEAKSCAN_REGISTRY_PASSWORD")
    if platform != "linux/amd64" and not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", platform):
        raise UsageError(f"--platform {platform!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")

    def options() -> RegistryOptions:  # made for a registry source only (the names' module: start-up time)
        from .sources.reference import Credentials, RegistryOptions

        creds = Credentials(registry_username, password) if registry_username and password is not None else None
        return RegistryOptions(
            platform=platform, all_platforms=all_platforms, insecure=insecure_registry, credentials=creds
        )

    return open_source(image, registry=options)


_SOURCE_KEYS = ("platform", "all_platforms", "insecure_registry", "registry_username")


def split_options(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source's options and the scan's."""
    return {k: v for k, v in kw.items() if k in _SOURCE_KEYS}, {k: v for k, v in kw.items() if k not in _SOURCE_KEYS}


def progress_bar(total: int | None = None) -> Callable[[int], None]:
    """A tqdm bar of the bytes of files scanned, on a terminal only; with the total (and so an
    ETA) when the source knows it beforehand (ImageSource.size_hint)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="scanning", leave=False, file=sys.stderr)

    def advance(n: int) -> None:
        bar.update(n)

    return advance
