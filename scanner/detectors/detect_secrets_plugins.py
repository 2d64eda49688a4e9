"""detect-secrets' plugins as a rule source, confined to this module.

Plugins are instantiated directly and asked through ``analyze_line`` about the lines that contain
one of the plugin's keywords (declared here, so that a plugin never runs on every line).  Nothing
from detect-secrets' scanning engine is used: no ``scan_line``, ``scan_file`` or
``transient_settings``, which rest on a global settings singleton.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from ..models import Severity
from .interface import Match
from .prefilter import PassDetector, prefilter_expression

MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class PluginRule:
    rule_id: str
    plugin: str  # module:class under detect_secrets.plugins, imported when a detector is made: detect-secrets
    # took a third of the start-up of a run that needs no detector (see also _OfflineRequests)
    keywords: tuple[bytes, ...]
    severity: Severity

    def load(self) -> Any:
        module, _, name = self.plugin.partition(":")
        with _offline_requests():
            return getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)


class _RequestRefused(OSError):
    pass


class _OfflineRequests(types.ModuleType):
    """What detect-secrets' modules get for ``requests`` when leakscan imports them first.

    detect-secrets imports the ``requests`` HTTP client only to verify a found secret with its
    vendor's API, which leakscan never does (it would send the secret to a third party).  That
    import, with urllib3, charset_normalizer and the codecs it loads, was about 115 ms of every
    run's start-up, before the first file.  Here its network calls raise; whatever else is asked
    of it comes from the real package, imported then.
    """

    Response = type("Response", (), {})  # in two plugins' annotations, read when they are defined
    exceptions = types.SimpleNamespace(RequestException=_RequestRefused)

    def __init__(self) -> None:
        super().__init__("requests")

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise _RequestRefused("leakscan does not verify secrets over the network")

    get = post = request = _refuse

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get("requests") is self:
            del sys.modules["requests"]
        return getattr(importlib.import_module("requests"), name)


@contextlib.contextmanager
def _offline_requests() -> Iterator[None]:
    """``requests`` is :class:`_OfflineRequests` for the imports in this block, unless something
    imported the real package before (the docker SDK does): a later import gets the real one.  Only
    in a process with one thread: another could import a package of ``requests`` meanwhile."""
    if "requests" in sys.modules or threading.active_count() > 1:
        yield
        return
    stand_in = _OfflineRequests()
    sys.modules["requests"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("requests") is stand_in:
            del sys.modules["requests"]


# Vendors our own rules do not cover yet.  Keywords are literal parts of each plugin's regexes; a
# plugin whose regexes have no distinctive literal (Discord, Twilio) would run on every line and is
# left to our own rules.
PLUGIN_RULES: tuple[PluginRule, ...] = (
    PluginRule("ds-artifactory", "artifactory:ArtifactoryDetector", (b"akc",), Severity.HIGH),
    PluginRule("ds-cloudant", "cloudant:CloudantDetector", (b"cloudant",), Severity.HIGH),
    PluginRule("ds-ibm-cloud-iam", "ibm_cloud_iam:IbmCloudIamDetector", (b"ibm",), Severity.HIGH),
    PluginRule(
        "ds-ibm-cos-hmac",
        "ibm_cos_hmac:IbmCosHmacDetector",
        (b"secret_access_key", b"secret-access-key"),
        Severity.HIGH,
    ),
    PluginRule("ds-mailchimp", "mailchimp:MailchimpDetector", (b"-us",), Severity.HIGH),
    PluginRule("ds-softlayer", "softlayer:SoftlayerDetector", (b"softlayer", b"api.softlayer.com"), Severity.HIGH),
    PluginRule("ds-square-oauth", "square_oauth:SquareOAuthDetector", (b"sq0csp-",), Severity.HIGH),
    PluginRule("ds-telegram-bot-token", "telegram_token:TelegramBotTokenDetector", (b":aa",), Severity.MEDIUM),
)


class DetectSecretsDetector(PassDetector):
    name = "pattern"
    max_match_len = MAX_LINE

    def __init__(self, rules: tuple[PluginRule, ...] = PLUGIN_RULES) -> None:
        self._plugins = [(rule, rule.load()()) for rule in rules]
        # a plugin runs only on windows where one of its own regexes may match
        patterns: list[tuple[str, int]] = []
        self._owner: list[int] = []
        for n, (_, plugin) in enumerate(self._plugins):
            for regex in getattr(plugin, "denylist", ()):
                patterns.append((regex.pattern, regex.flags & re.IGNORECASE))
                self._owner.append(n)
        self._expressions = [prefilter_expression(regex, flags) for regex, flags in patterns]

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        wanted = {self._owner[i] for i, _, _ in events}
        if not wanted:
            return
        lowered = data.lower()
        for n, (rule, plugin) in enumerate(self._plugins):
            if n not in wanted:
                continue
            lines: set[tuple[int, int]] = set()
            for keyword in rule.keywords:
                pos = lowered.find(keyword)
                while pos != -1:
                    start = data.rfind(b"\n", 0, pos) + 1
                    end = data.find(b"\n", pos)
                    end = len(data) if end == -1 else end
                    if end - start <= MAX_LINE:
                        lines.add((start, end))
                    pos = lowered.find(keyword, end)
            for start, end in sorted(lines):
                line = data[start:end].decode("utf-8", "replace")
                for potential in plugin.analyze_line(filename="", line=line, line_number=0):
                    value = potential.secret_value
                    if not value:
                        continue
                    offset = line.find(value)
                    begin = start + len(line[:offset].encode()) if offset >= 0 else start
                    raw = value.encode()
                    yield Match(
                        rule_id=rule.rule_id,
                        severity=rule.severity,
                        description=f"detect-secrets: {plugin.secret_type}",
                        start=begin,
                        end=begin + len(raw),
                        secret=raw,
                        confidence="medium",
                    )
