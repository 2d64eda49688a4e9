"""leakscan installs under a distribution name that is ours: ``leakscan`` on PyPI belongs to an
unrelated project (with its own ``scanner`` package and ``leakscan`` command), so every install
instruction (README, docs, recipes, Dockerfile) names ``leakscan-image`` or a checkout."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "leakscan-image"


def test_the_project_is_named_leakscan_image_and_its_command_is_leakscan() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == NAME
    assert project["scripts"] == {"leakscan": "scanner:main"}


def test_this_environment_has_it_installed_under_that_name() -> None:
    dist = importlib.metadata.distribution(NAME)
    (script,) = [e for e in dist.entry_points if e.group == "console_scripts"]
    assert (script.name, script.value) == ("leakscan", "scanner:main")
    command = Path(sys.executable).parent / "leakscan"
    proc = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("leakscan, version"), proc.stderr


def _install_lines() -> list[tuple[str, str]]:
    files = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "examples").iterdir())]
    files += sorted((ROOT / "docs").glob("*.md")) if (ROOT / "docs").is_dir() else []
    return [
        (f.name, line)
        for f in files
        for line in f.read_text().splitlines()
        if re.search(r"pip3? install\b", line) and "-r " not in line
    ]


def test_every_install_instruction_names_ours_or_a_checkout() -> None:
    lines = _install_lines()
    assert any(NAME in line for _, line in lines)  # the recipes install it by name
    for where, line in lines:
        names = re.findall(r"install\s+(?:\"\$@\"\s+|--?[\w-]+(?:=\S+)?\s+)*(\S+)", line)
        for name in names:
            name = name.strip("'\"")
            assert name.startswith((NAME, ".", "/", "git+")), f"{where}: {line.strip()}"


def test_the_dockerfile_checks_the_installed_name() -> None:
    assert f"pip show -q {NAME}" in (ROOT / "Dockerfile").read_text()
