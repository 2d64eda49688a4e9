"""What to do about a finding, in the words of how the secret got into the image.

Every format carries it: the table's ``fix:`` line (``summary``), JSON's ``remediation`` and
GitLab's ``solution`` (``text``), SARIF's rule ``help`` (``text`` and ``markdown``), the JUnit
failure message.  The advice follows Docker's build-secrets guidance: a secret reaches a build
through a secret mount (``RUN --mount=type=secret``), never ``COPY``, ``ARG``/``--build-arg`` or
``ENV``; a file deleted in a later layer still ships in the layer that wrote it; and a secret
that was in a pushed image must be rotated, whatever the next build does.
"""

from __future__ import annotations

import functools

from ..findings.dockerfile import history_keyword
from ..models import Finding, Status, Value, value

ROTATE = (
    "Rotate the secret: once an image that holds it was pushed or shared, anyone who pulled it has the value, "
    "and a rebuild does not take it back."
)
EXAMPLE = (
    "This looks like a documented example or placeholder; if it is not a real secret, suppress it with an "
    "[[ignore]] entry. Otherwise: "
)


@value
class Remedy(Value):
    """How to fix a finding's cause in the Dockerfile, by how the secret got into the image."""

    kind: str  # how the secret got there: copied-file, run-wrote, deleted-later, env, ...
    summary: str  # one line: what to change
    detail: str  # the Dockerfile change, in a sentence or two

    @property
    def text(self) -> str:
        return f"{self.summary} {self.detail} {ROTATE}"

    @property
    def markdown(self) -> str:
        return f"**{self.summary}**\n\n{self.detail}\n\n{ROTATE}"


_SECRET_MOUNT = (
    "Give the build the secret with `docker build --secret id=NAME,src=FILE` and read it in the one step that "
    "needs it with `RUN --mount=type=secret,id=NAME ...`: it is then never written to a layer."
)
_REMEDIES = {
    "known-secret": Remedy(
        "known-secret",
        "Your build secret is in the image: rotate it now.",
        "A value you gave `docker build --secret` was copied or written into the image. Read it only through "
        "`RUN --mount=type=secret,id=NAME` (it is mounted for that step and never saved); do not `cp`, `cat` or "
        "`echo` it into a file, and do not pass it as ARG or ENV.",
    ),
    "base-image": Remedy(
        "base-image",
        "Inherited from the base image: no instruction of this Dockerfile made that layer.",
        "Use a base image without the secret (or rebuild the base without it) and tell its maintainers; nothing "
        "in this Dockerfile removes it, since deleting the file only hides it in a new layer.",
    ),
    "deleted-later": Remedy(
        "deleted-later",
        "Deleting or overwriting the file in a later layer does not remove it: the layer that wrote it ships.",
        "Never write the secret in a step of its own: read it from `RUN --mount=type=secret,id=NAME` in the step "
        "that uses it, or build in a separate stage and `COPY --from` only the artifacts into the final stage "
        "(multi-stage build).",
    ),
    "copied-file": Remedy(
        "copied-file",
        "A COPY or ADD put the credentials file into the image.",
        "Keep the file out of the build context (.dockerignore) and out of COPY; " + _SECRET_MOUNT,
    ),
    "copied-from-stage": Remedy(
        "copied-from-stage",
        "A COPY --from brought the secret from a build stage into the final image.",
        "Copy only the build's artifacts from that stage, not its credentials or config; give the build stage the "
        "secret with `RUN --mount=type=secret,id=NAME` so it is not even in the stage's layers.",
    ),
    "run-wrote": Remedy(
        "run-wrote",
        "A RUN step wrote the secret into its layer.",
        "Read it from `RUN --mount=type=secret,id=NAME` and do not write it to a file; if a tool needs a file, "
        "mount it there (`--mount=type=secret,id=NAME,target=/path`) instead of copying it.",
    ),
    "env": Remedy(
        "env",
        "ENV keeps the value in the image config and its history (a later ENV that clears it leaves it in the "
        "history), readable by anyone who pulls the image.",
        "Remove it from ENV: give it to the container at run time (docker run -e, your orchestrator's secrets), "
        "and to a build step with `RUN --mount=type=secret,id=NAME,env=VAR`.",
    ),
    "label": Remedy(
        "label",
        "A LABEL keeps the value in the image config, readable by anyone who pulls the image.",
        "Remove the secret from LABEL (and from the `--label` of docker build); labels are for public metadata.",
    ),
    "build-arg": Remedy(
        "build-arg",
        "Build arguments are recorded in the image history (and in provenance attestations).",
        "Replace `--build-arg NAME=...` and `ARG NAME` with `docker build --secret id=NAME,env=NAME` and "
        "`RUN --mount=type=secret,id=NAME,env=NAME ...` in the step that needs it.",
    ),
    "attestation": Remedy(
        "attestation",
        "The build's provenance attestation records the value (mode=max keeps build arguments).",
        "Pass the secret with `--secret` instead of `--build-arg`; a provenance attestation never holds secret "
        "mounts' values.",
    ),
    "metadata": Remedy(
        "metadata",
        "The image's metadata holds the value.",
        "Remove it from the image config, annotations or labels the build sets; " + _SECRET_MOUNT,
    ),
    "file": Remedy(
        "file",
        "A file in the image holds the secret.",
        "Find the step that wrote it (give --dockerfile to see the line) and keep the secret out of the layers; "
        + _SECRET_MOUNT,
    ),
}


def origin(f: Finding, created_by: str | None = None) -> str:
    """How the secret got there: the key of its remedy."""
    if f.base_image:
        return "base-image"
    if f.path is None:
        field = f.field or ""
        if field.startswith("history["):  # a RUN step's build arguments, or an ENV step's values
            return "env" if f.rule_id == "metadata-secret-name" else "build-arg"
        if ".Env[" in field:
            return "env"
        if ".Labels" in field:
            return "label"
        return "attestation" if field.startswith("attestation[") else "metadata"
    if f.status in (Status.DELETED, Status.OVERWRITTEN):
        return "deleted-later"
    keyword = f.instruction.keyword if f.instruction is not None else history_keyword(created_by or "")
    if keyword in ("COPY", "ADD"):
        return "copied-from-stage" if f.instruction is not None and f.instruction.from_stage else "copied-file"
    return "run-wrote" if keyword == "RUN" else "file"


def remedy(f: Finding, created_by: str | None = None) -> Remedy:
    """The remedy for a finding; a known build secret (one you passed with --secret) says so first."""
    return _remedy(origin(f, created_by), f.secret_id is not None, f.confidence == "low")


def text_of(kind: str, f: Finding) -> str:
    """The ``text`` of the remedy of ``f``, whose :func:`origin` is ``kind``: one string for every
    finding with the same remedy (a report repeats a few texts of 600 characters for each finding;
    the JSON renderer escapes each one once)."""
    return _text(kind, f.secret_id is not None, f.confidence == "low")


@functools.cache
def _remedy(kind: str, known_secret: bool, example: bool) -> Remedy:
    found = _REMEDIES[kind]
    if known_secret and found.kind != "base-image":
        known = _REMEDIES["known-secret"]
        found = Remedy(found.kind, f"{known.summary} {found.summary}", found.detail)
    if example:
        found = Remedy(found.kind, found.summary, EXAMPLE + found.detail)
    return found


@functools.cache
def _text(kind: str, known_secret: bool, example: bool) -> str:
    return _remedy(kind, known_secret, example).text


def where(f: Finding) -> str | None:
    """``Dockerfile:12 COPY ...`` or ``base image``: the instruction behind a finding, for display."""
    if f.instruction is not None:
        text = f.instruction.text
        if f.instruction.from_stage and "--from" not in text:
            text += f" (from stage {f.instruction.from_stage})"
        return f"{f.instruction.where} {text}"
    return "base image (no instruction of the Dockerfile)" if f.base_image else None
