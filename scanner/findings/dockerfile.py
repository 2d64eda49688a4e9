"""The Dockerfile behind an image: which instruction, on which line, made each history entry.

``--dockerfile PATH`` (or the Dockerfile a BuildKit provenance attestation carries) is parsed
into stages and instructions (line continuations, comments, parser directives, heredocs).  The
final stage's instructions, with those of the stages it is built ``FROM``, are lined up with the
image's history from its end: BuildKit and the legacy builder both record one history entry per
instruction.  History entries before them come from the base image: no instruction of this
Dockerfile explains them, and the report says so.  ``COPY --from=STAGE`` names its stage.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterator
from typing import Any

from ..models import Instruction, Value, compiled, value

# A Dockerfile's patterns as text, compiled when one is first parsed (re keeps them): a scan
# without --dockerfile or a provenance attestation parses none.
_DIRECTIVE = r"^#\s*(\w+)\s*=\s*(.*?)\s*$"
_HEREDOC = r"<<-?\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1"
_ASSIGNED = {"ENV", "ARG", "LABEL"}  # instructions whose values are shown masked, whatever they hold
_NOP = compiled(r"^/bin/sh -c #\(nop\)\s+")
_SHELL_RUN = compiled(r"^(?:RUN\s+)?(?:\|\d+\s+(?:\S+=\S*\s+)*)?(?:/bin/sh -c |cmd /S /C )")
_BUILD_ARGS = compiled(r"^(RUN\s+)?\|(\d+)\s+")


@value
class Stage(Value):
    """One FROM stage of a Dockerfile and its instructions."""

    index: int
    name: str | None
    base: str
    instructions: tuple[Instruction, ...]


@value
class Dockerfile(Value):
    """A parsed Dockerfile: its stages, to tie layers to the instructions that made them."""

    path: str  # as the user named it, or "Dockerfile (provenance)"
    stages: tuple[Stage, ...]

    def stage(self, ref: str) -> Stage | None:
        for s in self.stages:
            if s.name is not None and s.name.lower() == ref.lower():
                return s
        return self.stages[int(ref)] if ref.isdigit() and int(ref) < len(self.stages) else None

    def final_chain(self) -> list[Instruction]:
        """The final stage's instructions, after those of the stages it is built FROM."""
        chain: list[Stage] = []
        stage: Stage | None = self.stages[-1] if self.stages else None
        while stage is not None and stage not in chain:
            chain.append(stage)
            parent = self.stage(stage.base)
            stage = parent if parent is not None and parent.index < stage.index else None
        return [i for s in reversed(chain) for i in s.instructions]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, the instruction's text with continuations joined and comments dropped)."""
    lines = text.splitlines()
    escape = "\\"
    n = 0
    while n < len(lines) and (m := re.match(_DIRECTIVE, lines[n])):  # parser directives, before anything else
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            escape = m.group(2)
        n += 1
    while n < len(lines):
        line = lines[n]
        n += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        start, parts = n, []
        while True:
            stripped = line.rstrip()
            if stripped.endswith(escape) and n < len(lines):
                parts.append(stripped[:-1])
                line = lines[n]
                n += 1
                while line.lstrip().startswith("#") and n < len(lines):  # comments inside a continuation
                    line = lines[n]
                    n += 1
                continue
            parts.append(line)
            break
        joined = " ".join(p.strip() for p in parts)
        for m in re.finditer(_HEREDOC, joined):  # RUN <<EOF ... EOF: the body belongs to the instruction
            body = []
            while n < len(lines) and lines[n].strip() != m.group(2):
                body.append(lines[n])
                n += 1
            n += 1
            joined += "\n" + "\n".join(body)
        yield start, joined


def parse(text: str, path: str) -> Dockerfile:
    stages: list[Stage] = []
    current: list[Instruction] = []
    name: str | None = None
    base = ""
    for line, joined in _logical_lines(text):
        keyword, _, rest = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            if stages or current or base:
                stages.append(Stage(len(stages), name, base, tuple(current)))
            words = [w for w in rest.split() if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            current = []
            continue
        from_stage = None
        if keyword in ("COPY", "ADD"):
            m = re.search(r"--from=(\S+)", rest)
            from_stage = m.group(1) if m else None
        current.append(Instruction(path, line, keyword, joined.strip(), name or str(len(stages)), from_stage))
    if base or current:
        stages.append(Stage(len(stages), name, base, tuple(current)))
    resolved = []
    for s in stages:  # COPY --from=1 -> the stage's name, when it has one
        out = []
        for i in s.instructions:
            ref = i.from_stage
            target = next((t for t in stages if ref is not None and ref.isdigit() and t.index == int(ref)), None)
            if target is not None and target.name:
                i = Instruction(i.file, i.line, i.keyword, i.text, i.stage, target.name)
            out.append(i)
        resolved.append(Stage(s.index, s.name, s.base, tuple(out)))
    return Dockerfile(path, tuple(resolved))


@functools.lru_cache(maxsize=256)
def history_keyword(created_by: str) -> str:
    """The instruction a history entry records: BuildKit's ``RUN |1 A=b /bin/sh -c ...``, ``COPY
    ... # buildkit``, the legacy builder's ``/bin/sh -c #(nop)  ENV ...`` and ``/bin/sh -c ...``
    (asked again for each finding of the layer: kept)."""
    text = _NOP().sub("", created_by.strip())
    if text != created_by.strip():
        return text.split(" ", 1)[0].upper()
    if _SHELL_RUN().match(text) or _BUILD_ARGS().match(text):
        return "RUN"
    return text.split(" ", 1)[0].upper() if text else ""


def shown_instruction(created_by: str) -> str:
    """A history entry as the instruction reads: ``RUN |1 A=<redacted> /bin/sh -c cmd # buildkit``
    -> ``RUN cmd`` (the JSON report keeps the entry whole)."""
    text = _NOP().sub("", created_by.strip())
    text = re.sub(r"\s+# buildkit$", "", text)
    if history_keyword(created_by) == "RUN":
        text = "RUN " + _SHELL_RUN().sub("", text, count=1)
    return " ".join(text.split())


def _norm(text: str) -> str:
    return " ".join(text.split())


def _same(instruction: Instruction, created_by: str) -> bool:
    """Whether a history entry plausibly records this instruction (RUN: its command)."""
    if instruction.keyword != "RUN":
        return True
    command = _norm(shown_instruction(created_by).removeprefix("RUN "))
    written = _norm(re.sub(r"--\w+=\S+\s*", "", instruction.text[3:]))
    return command == written or command in written or written in command


def map_history(history: list[dict[str, Any]], dockerfile: Dockerfile) -> tuple[list[Instruction | None], list[str]]:
    """The instruction behind each history entry (None: the base image's), and warnings."""
    chain = dockerfile.final_chain()
    out: list[Instruction | None] = [None] * len(history)
    j = len(chain) - 1
    mismatched = []
    for i in range(len(history) - 1, -1, -1):
        if j < 0:
            break
        entry = history[i] if isinstance(history[i], dict) else {}
        created_by = str(entry.get("created_by") or "")
        keyword = history_keyword(created_by)
        while j >= 0 and chain[j].keyword != keyword:
            j -= 1  # an instruction that left no history entry
        if j < 0:
            break
        if not _same(chain[j], created_by):
            mismatched.append(f"{chain[j].file}:{chain[j].line}")
        out[i] = chain[j]
        j -= 1
    warnings = []
    if chain and not any(out):
        warnings.append(f"{dockerfile.path}: no instruction of its final stage matches this image's history")
    elif mismatched:
        warnings.append(
            f"{dockerfile.path}: the RUN on line(s) {', '.join(sorted(mismatched))} differs from the image's history; "
            "is this the Dockerfile the image was built from?"
        )
    return out, warnings


def assigned_key(instruction: Instruction) -> list[str]:
    """The names an ENV, ARG or LABEL instruction sets."""
    rest = instruction.text.split(" ", 1)[1] if " " in instruction.text else ""
    if "=" not in rest.split(" ", 1)[0]:  # ENV KEY value (the old form)
        return [rest.split(" ", 1)[0]] if rest else []
    return [m.group(1).strip("\"'") for m in re.finditer(r"(\"[^\"]*\"|'[^']*'|[^\s=]+)=", rest)]


def for_field(field: str, dockerfile: Dockerfile) -> Instruction | None:
    """The ENV or LABEL instruction that set a config field (``config.Env[1]`` is given with its
    name by the caller as ``Env:NAME``); None when the final stage does not set it."""
    kind, _, name = field.partition(":")
    keyword = {"Env": "ENV", "Labels": "LABEL"}.get(kind)
    for instruction in reversed(dockerfile.final_chain()):
        if instruction.keyword == keyword and name in assigned_key(instruction):
            return instruction
    return None


def masked_text(instruction: Instruction) -> str:
    """ENV, ARG and LABEL with every value replaced: the Dockerfile may hold the very secret."""
    if instruction.keyword not in _ASSIGNED:
        return _norm(instruction.text)
    return f"{instruction.keyword} " + " ".join(f"{k}=<redacted>" for k in assigned_key(instruction))


def from_provenance(docs: list[Any]) -> Dockerfile | None:
    """The Dockerfile a BuildKit provenance attestation (mode=max) carries in its source infos."""
    for doc in docs:
        for info in _infos(doc, 0):
            name = str(info.get("filename") or "Dockerfile")
            try:
                text = base64.b64decode(str(info["data"]), validate=True).decode("utf-8")
            except (binascii.Error, ValueError, KeyError):
                continue
            if "FROM" in text.upper():
                return parse(text, f"{name} (provenance)")
    return None


def _infos(node: Any, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 12:
        return
    if isinstance(node, dict):
        infos = node.get("infos")
        if isinstance(infos, list):
            for info in infos:
                if (
                    isinstance(info, dict)
                    and "data" in info
                    and str(info.get("language", "Dockerfile")) == "Dockerfile"
                ):
                    yield info
        for value in node.values():
            yield from _infos(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _infos(value, depth + 1)


# a metadata finding's field, as text: compiled for the first such finding (re keeps them)
_ENV_FIELD = r"^(?:config|container_config)\.Env\[(\d+)\]$"
_LABEL_FIELD = r"^(?:config|container_config)\.Labels(?:\.(\w+)|\[(\"(?:[^\"\\]|\\.)*\")\])$"
_HISTORY_FIELD = r"^history\[(\d+)\]"
_GENERIC_RULES = {"dotenv-secret", "metadata-secret-name", "high-entropy-assignment"}


class ImageMap:
    """One image's history and config against its Dockerfile (or against nothing: then only the
    ENV and LABEL wording applies)."""

    def __init__(self, config: dict[str, Any] | None, dockerfile: Dockerfile | None) -> None:
        self.config = config or {}
        self.dockerfile = dockerfile
        history = self.config.get("history")
        self.history: list[dict[str, Any]] = [h if isinstance(h, dict) else {} for h in history or []]
        self.by_history: list[Instruction | None] = [None] * len(self.history)
        self.warnings: list[str] = []
        if dockerfile is not None:
            self.by_history, self.warnings = map_history(self.history, dockerfile)

    def for_layer(self, index: int, layers: int) -> tuple[Instruction | None, bool]:
        """The instruction that made layer ``index``, and whether it is the base image's."""
        entries = [n for n, h in enumerate(self.history) if not h.get("empty_layer")]
        if len(entries) != layers or self.dockerfile is None:
            return None, False
        instruction = self.by_history[entries[index]]
        return instruction, instruction is None

    def _named(self, field: str) -> tuple[str, str] | None:
        """("Env" | "Labels", the variable's or label's name) for a config field."""
        if m := re.match(_ENV_FIELD, field):
            section = self.config.get(field.split(".", 1)[0]) or {}
            env = section.get("Env") if isinstance(section, dict) else None
            n = int(m.group(1))
            if isinstance(env, list) and n < len(env) and isinstance(env[n], str):
                return "Env", env[n].partition("=")[0]
            return "Env", "?"
        if m := re.match(_LABEL_FIELD, field):
            import json

            return "Labels", m.group(1) or str(json.loads(m.group(2)))
        return None

    def for_field(self, field: str) -> tuple[Instruction | None, bool]:
        """The instruction behind a metadata finding, and whether the base image set it."""
        if self.dockerfile is None:
            return None, False
        if m := re.match(_HISTORY_FIELD, field):
            n = int(m.group(1))
            instruction = self.by_history[n] if n < len(self.by_history) else None
            return instruction, instruction is None
        named = self._named(field)
        if named is None:
            return None, False
        instruction = for_field(f"{named[0]}:{named[1]}", self.dockerfile)
        return instruction, instruction is None

    def describe(self, field: str, rule_id: str, description: str) -> str:
        """ENV and LABEL findings in their own words (not "an environment file")."""
        named = self._named(field)
        if named is None:
            return description
        kind, name = named
        place = f"the ENV variable {name}" if kind == "Env" else f"the LABEL {name}"
        if rule_id in _GENERIC_RULES:
            return f"secret in {place} (kept in the image config for anyone who pulls the image)"
        return f"{description}, in {place}"
