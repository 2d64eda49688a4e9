"""``json.dumps(obj, indent=2)``, the same text, about four times faster.

With ``indent``, the standard library leaves its C encoder for a pure-Python one that goes
through a generator per container: on a report of a thousand findings that was most of a cached
rescan's work after start-up.  Here containers are laid out in Python and every string goes
through the C ``encode_basestring``.  Anything this does not know (a non-string key, a type the
json module would reject or call ``default`` for) is left to ``json.dumps`` itself, so the
output, or the error, is always the standard library's.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring, encode_basestring_ascii  # the C functions when present
from typing import Any

_INF = float("inf")
_LONG = 96  # a string value this long is encoded once per report (a remedy's text: 600 characters)


class _Unknown(Exception):
    pass


def dumps(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Exactly ``json.dumps(obj, indent=2, ensure_ascii=ensure_ascii)``."""
    return "".join(pieces(obj, ensure_ascii=ensure_ascii))


def pieces(obj: Any, *, ensure_ascii: bool = True) -> list[str]:
    """:func:`dumps`'s text in the pieces it is made of, not joined (report.files writes them a
    batch at a time)."""
    enc = encode_basestring_ascii if ensure_ascii else encode_basestring
    try:
        leaf = _scalar(obj, enc)
        if leaf is not None:
            return [leaf]
        out: list[str] = []
        _container(obj, "\n", enc, {}, out)
        return out
    except (_Unknown, RecursionError):
        return [json.dumps(obj, indent=2, ensure_ascii=ensure_ascii)]


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _scalar(o: Any, enc: Any) -> str | None:
    """A leaf as json writes it (a str or int subclass too: an enum, say); None for a container
    (or anything else)."""
    if isinstance(o, str):
        return str(enc(o))
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    return None


def _value(v: Any, newline: str, enc: Any, keys: dict[Any, Any], out: list[str]) -> str | None:
    """Any value as json writes it at this indentation, returned (a leaf: the exact types first, by
    one lookup) or, for a container, added to ``out`` (None returned)."""
    t = type(v)
    if t is str:
        return str(enc(v))
    if t is int:
        return int.__repr__(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is float:
        return _float(v)
    leaf = _scalar(v, enc)
    if leaf is None:
        _container(v, newline, enc, keys, out)
    return leaf


def _container(o: Any, newline: str, enc: Any, keys: dict[Any, Any], out: list[str]) -> None:
    """A dict, list or tuple laid out as json's indent=2 lays it out, added to ``out`` an item at
    a time (each item's text made once; no generator per container, as json's own Python encoder
    has), the whole joined once at the end: a container's text joined at each level was a copy of
    the report per level, and in a new process the memory of each copy is new pages (2,000 page
    faults on a report of 400 findings).  ``keys``: what is made once per report, the text before
    each value of a dict of a given indentation and keys (a report repeats a finding's thirty keys
    hundreds of times: looked up once per finding, not per key), and the long string values (its
    remedies' texts)."""
    inner = newline + "  "
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        shape = (newline, *o)
        heads = keys.get(shape)
        if heads is None:
            if not all(type(k) is str for k in o):
                raise _Unknown  # json turns ints, floats, bools and None into strings: left to it
            seps = ("{" + inner,) + ("," + inner,) * (len(o) - 1)
            heads = keys[shape] = [f"{sep}{enc(k)}: " for sep, k in zip(seps, o, strict=True)]
        for head, v in zip(heads, o.values(), strict=True):
            t = type(v)  # the commonest exact types here (a finding's), without a call
            if t is str:
                if len(v) < _LONG:
                    out.append(head + enc(v))
                else:  # a remedy's text, a description: the same few for hundreds of findings
                    if (text := keys.get(v)) is None:
                        text = keys[v] = str(enc(v))
                    out.append(head + text)
            elif v is None:
                out.append(head + "null")
            elif t is int:
                out.append(head + int.__repr__(v))
            elif t is bool:
                out.append(head + ("true" if v else "false"))
            elif t is list and not v:
                out.append(head + "[]")
            else:
                out.append(head)
                if (leaf := _value(v, inner, enc, keys, out)) is not None:
                    out.append(leaf)
        out.append(newline + "}")
        return
    if isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        sep = "[" + inner
        for v in o:
            if type(v) is str:
                out.append(sep + enc(v))
            else:
                out.append(sep)
                if (leaf := _value(v, inner, enc, keys, out)) is not None:
                    out.append(leaf)
            sep = "," + inner
        out.append(newline + "]")
        return
    raise _Unknown
