"""Expand the rule sample templates with random characters (see scanner/detectors/rules)."""

from __future__ import annotations

import random
import re
import secrets
import string
import uuid
from collections.abc import Callable

ALPHABETS = {
    "a": string.ascii_letters + string.digits,
    "h": "0123456789abcdef",
    "H": "0123456789ABCDEF",
    "d": string.digits,
    "b": string.ascii_letters + string.digits + "+/",
    "u": string.ascii_letters + string.digits + "_-",
    "l": string.ascii_lowercase + string.digits,
    "L": string.ascii_letters,
    "U": string.ascii_uppercase + string.digits,
    "B": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    "z": "abcdefghijklmnopqrstuvwxyz234567",
    "k": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",  # bech32
}
_choice: Callable[[str], str] = secrets.choice
_uuid: Callable[[], uuid.UUID] = uuid.uuid4


def seed(n: int | None) -> None:
    """Draw the samples from a generator seeded with ``n`` from now on, not from ``secrets``: the
    same samples in every run (``benchmarks/detection.py --seed``, to compare two trees); None:
    from ``secrets`` again."""
    global _choice, _uuid
    if n is None:
        _choice, _uuid = secrets.choice, uuid.uuid4
        return
    rng = random.Random(n)
    _choice = rng.choice
    _uuid = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # noqa: E731


_FIELD = re.compile(r"\{\{|\}\}|\{uuid\}|\{([a-zA-Z])(\d+)\}")


def _fill(m: re.Match[str]) -> str:
    token = m.group(0)
    if token in ("{{", "}}"):
        return token[0]
    if token == "{uuid}":
        return str(_uuid())
    alphabet = ALPHABETS[m.group(1)]
    # never a run of one character: some rules reject those as placeholders
    out = "".join(_choice(alphabet) for _ in range(int(m.group(2))))
    return out


def expand(template: str) -> str:
    return _FIELD.sub(_fill, template)
