"""Rules anchored on an assignment (scanner/detectors/anchored.py): they leave the shared
Hyperscan pass and are tried only at the values the assignment gates find, so each must find
exactly what its whole regex finds, in every layout the gates are claimed to see."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.anchored import anchored_form, anchored_forms
from scanner.detectors.patterns import PatternDetector
from scanner.detectors.prefilter import HsPass
from scanner.detectors.rules import BUILTIN_RULES, Rule
from scanner.detectors.rules.model import random_shaped
from tests.detectors.samples import expand

ANCHORED = [r for i, r in enumerate(BUILTIN_RULES) if anchored_form(i, r) is not None]
_OPERATOR = re.compile(r"""^(.*?[A-Za-z_])(["']?[ \t]*[:=][ \t]*["']?)(.*)$""", re.DOTALL)


def test_most_context_rules_are_anchored() -> None:
    context = [r for r in BUILTIN_RULES if r.confidence == "medium" and r.regex.startswith("(?:")]
    assert len(ANCHORED) >= 400
    assert len(ANCHORED) >= 0.85 * len(context)


def _truth(rule: Rule, data: bytes) -> set[tuple[int, bytes]]:
    """What the rule's whole regex finds, every place it can match (not only finditer's)."""
    regex = rule.compile()
    out = set()
    for at in range(len(data)):
        m = regex.match(data, at)
        if m is not None and m.group(1):
            out.add((m.start(1), m.group(1)))
    return out


def _layouts(example: str, rng: random.Random) -> list[str]:
    """The example as people write it: in a shell line, YAML, JSON, an INI file, after other
    assignments on the line, with blanks and quotes around the operator, at a window's edges."""
    m = _OPERATOR.match(example)
    if m is None:
        return [example]
    name, _, value = m.groups()
    value = value.strip("\"',")
    ops = ["=", " = ", ": ", ":\t", '": "', "='", " := ", '="', "\t=\t"]
    out = [example, f"export {name}={value}", f"  {name}: {value}\n", f'{{"{name}": "{value}"}}']
    out.append(f"[x]\n{name} = {value}")
    out += [f"a=1 {name}{rng.choice(ops)}{value} b=2" for _ in range(3)]
    out.append(f"other_token=short {name}={value};{name.upper()}={value}")
    out.append(f"{name}={value}")  # at the very start of a window
    return out


@pytest.mark.parametrize("rule", ANCHORED, ids=lambda r: r.id)
def test_an_anchored_rule_finds_what_its_regex_finds(rule: Rule) -> None:
    """At every place the rule's regex matches (a value its validators take), and nowhere else."""
    rng = random.Random(rule.id)
    detector = PatternDetector([rule])
    for example in rule.examples:
        for text in _layouts(expand(example), rng):
            data = text.encode()
            found = {(m.start, m.secret) for m in detector.find(data)}
            truth = {(s, v) for s, v in _truth(rule, data) if _accepted(rule, v)}
            assert found == truth, text


def _accepted(rule: Rule, value: bytes) -> bool:
    return (rule.validate is None or rule.validate(value)) and (not rule.structure or random_shaped(value))


def test_anchored_and_prefiltered_find_the_same_in_a_mixed_text() -> None:
    """The anchored detector against the same rules each with its own prefilter (the way every
    rule ran before), over a text of every anchored rule's examples in several layouts."""
    rng = random.Random(7)
    lines = []
    for rule in ANCHORED:
        for example in rule.examples:
            lines.extend(_layouts(expand(example), rng)[:4])
    rng.shuffle(lines)
    data = "\n".join(lines).encode()
    anchored = PatternDetector(ANCHORED)
    plain = PatternDetector([dataclasses.replace(r, prefilter=r.regex) for r in ANCHORED])
    assert not plain._anchored and len(anchored._anchored) == len(ANCHORED)
    got = sorted((m.rule_id, m.start, m.secret) for m in anchored.find(data))
    want = sorted((m.rule_id, m.start, m.secret) for m in plain.find(data))
    assert set(want) <= set(got)
    # anything more is a second, overlapping match of a rule at another assignment
    for rule_id, start, _ in set(got) - set(want):
        assert re.compile(next(r for r in ANCHORED if r.id == rule_id).regex.encode(), re.I).search(data, start - 200)
    assert len(want) > 1000


_ACME = r"""(?:acme)[\w.\-]{0,20}(?:token)["']?[ \t]*[:=][ \t]*["']?"""


@pytest.mark.parametrize(
    ("regex", "why"),
    [
        (r"""(?:acme)[\w.\-]{0,20}(?:token)["']?\s*[:=]\s*["']?([0-9a-f]{32})(?![\w\-])""", "newline blanks"),
        (_ACME + r"""([0-9a-f]{8})(?![\w\-])""", "value shorter than 12"),
        (_ACME + r"""([0-9a-f]{8}:[0-9a-f]{32})(?![\w\-])""", "a colon in the value"),
        (r"""(?:acme)[\w.\-]{0,20}(?:id)["']?[ \t]*[:=][ \t]*["']?([0-9a-f]{32})(?![\w\-])""", "a word no gate sees"),
        (r"""(?:acme)[\w.\-]*(?:token)["']?[ \t]*[:=][ \t]*["']?([0-9a-f]{32})(?![\w\-])""", "an unbounded head"),
        (r"""(?:acme)[\w.\-]{0,20}(?:token)["']?[ \t]*[:=][ \t]*["']?([^\s"']{32})(?![\w\-])""", "a negated class"),
        (r"""(acme)[\w.\-]{0,20}(?:token)["']?[ \t]*[:=][ \t]*["']?([0-9a-f]{32})(?![\w\-])""", "a group in the head"),
    ],
)
def test_a_rule_the_gates_cannot_be_shown_to_see_keeps_its_prefilter(regex: str, why: str) -> None:
    rule = Rule("acme-token", "Acme token", regex, ("acme",), BUILTIN_RULES[0].severity, group=1, flags=re.I)
    assert anchored_form(0, rule) is None, why
    assert len(PatternDetector([rule]).expressions()) == 1


def test_an_anchored_rule_is_tried_only_where_a_gate_fires() -> None:
    rule = Rule(
        "acme-token",
        "Acme token",
        r"""(?:acme)[\w.\-]{0,20}(?:token|key)["']?[ \t]*[:=][ \t]*["']?([0-9a-f]{32})(?![\w\-])""",
        ("acme",),
        BUILTIN_RULES[0].severity,
        group=1,
        flags=re.I,
    )
    assert anchored_form(0, rule) is not None
    detector = PatternDetector([rule])
    assert len(detector.expressions()) == 2  # the two assignment gates, no expression of its own
    value = "0123456789abcdef" * 2
    value = "".join(random.Random(1).sample(value, len(value)))
    for text in (f"ACME_TOKEN={value}", f"acme.api.key: '{value}'", f'"acmeToken" : "{value}"', f"ACME_KEY =\t{value}"):
        assert [m.secret for m in detector.find(text.encode())] == [value.encode()], text
    for text in (f"ACME_TOKEN=\n{value}", f"ACME_TOKEN={value}x", f"ACME_ID={value}", f"OTHER_TOKEN={value}"):
        assert list(detector.find(text.encode())) == [], text


def test_the_shared_pass_compiles_a_gate_once_and_gives_its_events_to_each_group() -> None:
    gate = (rb"token\s*=", 0)
    hs = HsPass([[gate], [(rb"zzz", 0), gate]])
    assert hs.scan(b"a token = b") == [[(0, 0, 9)], [(1, 0, 9)]]
    assert hs.scan(b"zzz") == [[], [(0, 0, 3)]]


def test_the_kept_analysis_is_the_analysis(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """anchored_forms keeps its answers on disk: the kept answers give the same forms, and a
    damaged file is not believed."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = anchored_forms(BUILTIN_RULES)
    kept = anchored_forms(BUILTIN_RULES)
    assert [None if f is None else (f.prefix, f.head_regex, f.value_regex, f.reach) for f in kept] == [
        None if f is None else (f.prefix, f.head_regex, f.value_regex, f.reach) for f in fresh
    ]
    (path,) = (tmp_path / "leakscan" / "hyperscan").glob("anchored-*.json")
    shapes = json.loads(path.read_text())
    shifted = [None if k is None else [k[0], k[1] - 1, k[2]] for k in shapes]  # plausible, and wrong
    for damage in ("{", json.dumps([None]), json.dumps([[10**9, 1, 1]] * len(BUILTIN_RULES)), json.dumps(shifted)):
        path.write_text(damage)
        again = anchored_forms(BUILTIN_RULES)
        assert [None if f is None else (f.prefix, f.head_regex, f.value_regex) for f in again] == [
            None if f is None else (f.prefix, f.head_regex, f.value_regex) for f in fresh
        ]


def test_the_content_scanner_finds_anchored_rules_inside_base64_too() -> None:
    import base64

    rule = next(r for r in ANCHORED if r.id == "pipedrive-api-token")
    text = expand(rule.examples[0]).encode()
    blob = base64.b64encode(b"config:\n" + text + b"\n")
    hits = ContentScanner(build_detectors([])).scan_bytes(b"data: " + blob + b"\n")
    assert any(h.rule_id == rule.id and h.encoding == "base64" for h in hits)
