"""The rule type, its validators, and a rule set with user additions and removals."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import itertools
import posixpath
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError
from ...models import Severity

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
I = re.IGNORECASE  # noqa: E741


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    regex: str
    keywords: tuple[str, ...]
    severity: Severity
    sample: str = ""
    negative: str = ""
    group: int = 0
    flags: int = 0
    validate: Callable[[bytes], bool] | None = field(default=None, compare=False)
    # a checksum or structure check that, when it passes, proves the format: severity critical
    verify: Callable[[bytes], bool] | None = field(default=None, compare=False)
    max_len: int = 512
    confidence: str = "high"  # "medium" for rules that match a value by the name it is assigned to
    paths: tuple[str, ...] = ()  # only in files whose path (or basename) matches one of these globs
    prefilter: str | None = None  # a simpler regex for the Hyperscan pass (large bounded repeats explode there)
    # given the whole match, a reason to downgrade it to low (a demo credential, an expired token)
    downgrade: Callable[[bytes], str | None] | None = field(default=None, compare=False)
    # a vendor token is random: a value that is not (one character over and over, a sorted table,
    # the alphabet in order) is refused (``random_shaped``).  False for free-form values (passwords
    # in URLs and config files), where such a value is a placeholder: reported, and downgraded.
    structure: bool = True
    vendor: str = ""  # whose credential: "generic" for a standard format (a PEM key, a password in a URL)
    reference: str = ""  # the vendor's documentation of the format (an RFC or a man page for a standard one)
    examples: tuple[str, ...] = ()  # every template the tests expand: flagged (``sample`` is the first)
    negatives: tuple[str, ...] = ()  # ... and not flagged (``negative`` is the first)

    def applies_to(self, path: str | None) -> bool:
        if path is None:
            return False
        inner = path.rpartition("!/")[2]
        base = posixpath.basename(inner)
        return any(fnmatch.fnmatchcase(base, g) or fnmatch.fnmatchcase(inner, g) for g in self.paths)

    @property
    def word_start(self) -> bool:
        """A leading \\b, checked in Python after the match so that the regex starts with a
        literal and the regex engine can skip ahead to it (a leading \\b makes it try every byte)."""
        return self.regex.startswith("\\b")

    def compile(self) -> re.Pattern[bytes]:
        regex = self.regex[2:] if self.word_start else self.regex
        return re.compile(regex.encode(), self.flags)


# --- validators ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    rb"^(?:\$\{?\w+\}?|\{\{.*\}\}|<[^>]*>|%\w+%|\*+|x+|\.+|pass(?:word)?|secret|changeme|user|token|none|null)$",
    re.IGNORECASE,
)
# what a free-form value (a password in a URL, a config file, a connection string) is when it is
# code or a template rather than a value: an identifier chain (r.password, tokenBody.clientToken,
# self.settings.db_password), a call or an index (os.environ["X"], getenv('X')), a template
# ($X, ${X}, {{x}}, <x>, %(x)s, %s), an ALL-CAPS name (SAS_KEY, DB_PASSWORD, PASSWORD), a path,
# a URL without a login, a date or a version
_REFERENCE = re.compile(
    rb"^(?:[A-Za-z_$][\w$]*(?:(?:\.|\?\.|->|::)[A-Za-z_$][\w$]*)+[;,]?"
    rb"|[\w$.\-]*[(\[].*"
    rb"|.*(?:\$\{|\{\{|\$\(|%\(\w+\)[sdr]).*"
    rb"|\$[A-Za-z_]\w*|%[sd]|<[^>]*>|\{[\w.\-]*\}"
    rb"|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,}"
    # where a secret lives, or what is plainly not one: a file path (/run/secrets/db_password),
    # a URL without a login, a date, a version
    rb"|(?:~|\.{1,2})/[a-z0-9_.\-/]+|/[a-z0-9_.\-]+/[a-z0-9_.\-/]*|[a-z][a-z0-9+.\-]*://[^@\s]*"
    rb"|\d{4}-\d\d-\d\d(?:[T ][\d:.]+Z?)?|v?\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?)$",
    re.DOTALL,
)


def not_placeholder(value: bytes) -> bool:
    """A free-form value that is a value: not a placeholder, not code, not a template."""
    return not _PLACEHOLDER.match(value) and not _REFERENCE.match(value)


def random_shaped(value: bytes) -> bool:
    """Whether ``value`` can be a randomly generated token: refuses one character over and over
    (base64 of zero bytes: ``AAAA...``), a sorted table (``AAAABBBCCDDEEEE...``, a lookup table in
    a binary), the alphabet or the digits in order, and too few distinct characters."""
    n = len(value)
    if n < 12:
        return True
    if max(value.count(c) for c in set(value)) > max(0.4 * n, 7):
        return False
    if n >= 16 and len(set(value)) < 6:
        return False
    rising = ascending = longest = 0
    for a, b in itertools.pairwise(value):
        rising += a <= b
        ascending = ascending + 1 if b == a + 1 else 0
        longest = max(longest, ascending)
    sorted_ = rising >= 0.9 * (n - 1) if n >= 24 else rising == n - 1  # a short random value can rise by chance
    return not sorted_ and longest < 7  # 8 characters in alphabet order: never random


def docker_auth(value: bytes) -> bool:
    try:
        decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    return bool(sep and user and password)


_B62 = (
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
)


_DEMO_PASSWORDS = frozenset(
    b"tiger pass password passwd pwd secret s3cr3t sekrit 123 1234 12345 123456 test testing foo bar baz qux qwerty "
    b"changeme admin root guest demo example xxx xxxx mypassword yourpassword p@ssw0rd pa55word letmein hunter2 "
    b"abc xyz abc123 password123 pass123".split()
)
_DEMO_HOSTS = re.compile(
    rb"@(?:[\w.\-]*\.)?(?:example\.(?:com|org|net)|localhost|host|hostname|server|myserver|domain)\b"
    rb"|@(?:[\w\-]+\.)*test\b|@xn--",
    re.IGNORECASE,
)
_URL_USERPASS = re.compile(rb"://([^\s:/@]*):([^\s:/@]*)@")


def demo_url(match: bytes) -> str | None:
    """Credentials in documentation URLs: scott:tiger, user:pass, anything @example.com."""
    m = _URL_USERPASS.search(match)
    if m is None:
        return None
    if why := _demo_login(m.group(1), m.group(2)):
        return why
    if _DEMO_HOSTS.search(match):
        return "an example host"
    return None


# RFC 7617 (and 2617 before it): "Aladdin" with the password "open sesame"
_RFC_BASIC = frozenset({(b"aladdin", b"open sesame")})


def demo_basic_auth(match: bytes) -> str | None:
    """An Authorization: Basic header whose login is a documented example or a demo login."""
    encoded = match.rsplit(None, 1)[-1]
    try:
        decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, _, password = decoded.partition(b":")
    if (user.lower(), password.lower()) in _RFC_BASIC:
        return "the RFC's example"
    return _demo_login(user, password)


def _demo_login(user: bytes, password: bytes) -> str | None:
    user, password = user.lower(), password.lower()
    if password in _DEMO_PASSWORDS or (user in (b"user", b"username", b"name", b"login") and len(password) < 10):
        return "a demo credential"
    if user == b"scott" or password.startswith(b"tiger"):  # Oracle's and SQLAlchemy's documented demo login
        return "a demo credential"
    return None


_SAS_EXPIRY = re.compile(rb"\bse=(\d{4})-(\d\d)-(\d\d)")


def expired_sas(match: bytes) -> str | None:
    m = _SAS_EXPIRY.search(match)
    if m is None:
        return None
    import datetime  # imports at first use here and below: every run loads the rules (start-up time)

    try:
        expiry = datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return "expired" if expiry < datetime.date.today() else None


def twitter_bearer(value: bytes) -> bool:
    """An app-only bearer token is a run of A (zero bytes, URL-safe base64) and then random text
    of its own, about 110 characters in all (developer.x.com, "OAuth 2.0 Bearer Token"): base64 of
    a binary full of zeros, or a sorted table, is a run of A that goes on as more of the same."""
    body = value.lstrip(b"A")
    return 60 <= len(value) <= 200 and len(body) >= 30 and random_shaped(body) and body.count(b"A") < 0.2 * len(body)


def base62(n: int, alphabet: bytes = _B62[0], width: int = 6) -> bytes:
    out = b""
    while n:
        n, r = divmod(n, 62)
        out = alphabet[r : r + 1] + out
    return out.rjust(width, alphabet[:1])


def crc32_base62_checksum(token: bytes) -> bool:
    """GitHub's and npm's token formats: the last 6 characters are the base62 CRC32 of the 30
    random characters before them (github.blog, 2021-04-05 and 2021-09-23)."""
    body = token.rpartition(b"_")[2]
    if len(body) != 36:
        return False
    payload, check = body[:30], body[30:]
    crc = zlib.crc32(payload) & 0xFFFFFFFF
    return any(base62(crc, alphabet) == check for alphabet in _B62)


# --- the names rule files use --------------------------------------------------------------------

# ``random_shaped`` is not called through ``Rule.validate``: it sets ``Rule.structure``, which the
# pattern detector checks itself (and which also says whether a value is free-form)
VALIDATORS: dict[str, Callable[[bytes], bool]] = {
    "random_shaped": random_shaped,
    "not_placeholder": not_placeholder,
    "docker_auth": docker_auth,
    "twitter_bearer": twitter_bearer,
}
VERIFIERS: dict[str, Callable[[bytes], bool]] = {"crc32_base62": crc32_base62_checksum}
DOWNGRADES: dict[str, Callable[[bytes], str | None]] = {
    "demo_url": demo_url,
    "demo_basic_auth": demo_basic_auth,
    "expired_sas": expired_sas,
}


def all_of(checks: tuple[Callable[[bytes], bool], ...]) -> Callable[[bytes], bool] | None:
    """One validator from several: none, the one itself, or all of them in turn."""
    if len(checks) < 2:
        return checks[0] if checks else None
    return lambda value: all(check(value) for check in checks)


# --- a rule set ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    detect_secrets: bool = True

    @classmethod
    def load(cls, builtin: Iterable[Rule], config: Path | None = None) -> RuleSet:
        """Built-in rules, with the [rules] table of a TOML config applied (see README)."""
        rules = {r.id: r for r in builtin}
        if config is None:
            return cls(tuple(rules.values()))
        import tomllib

        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config {config}: {type(exc).__name__}: {str(exc)[:160]}") from None
        table = doc.get("rules", {})
        if not isinstance(table, dict):
            raise UsageError(f"--config {config}: [rules] must be a table")
        for rule_id in table.get("disable", []):
            if rule_id not in rules:
                raise UsageError(f"--config {config}: cannot disable unknown rule {rule_id!r}")
            del rules[rule_id]
        from .loader import load_files, rule_from  # the loader builds rules: it imports this module

        files = table.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise UsageError(f"--config {config}: [rules] files must be a list of paths")
        added = load_files((config.parent / f for f in files), taken=rules)
        added += tuple(
            rule_from(spec, f"--config {config}: rules.custom[{n}]") for n, spec in enumerate(table.get("custom", []))
        )
        for rule in added:
            if rule.id in rules:
                raise UsageError(f"--config {config}: rule id {rule.id!r} is already taken")
            rules[rule.id] = rule
        return cls(tuple(rules.values()), detect_secrets=bool(table.get("detect_secrets_plugins", True)))
