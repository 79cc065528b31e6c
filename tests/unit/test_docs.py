"""The README a newcomer reads: short, commands that run as written, links that lead somewhere, a true layout."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
DOCS = [README, PROJECT / "SECURITY.md", *sorted((PROJECT / "docs").glob("*.md"))]


def test_the_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 300


def test_every_command_names_the_virtualenvs_python() -> None:
    """``python -m app …`` typed in a fresh shell fails (no asyncpg outside .venv)."""
    for doc in (README, *sorted((PROJECT / "docs").glob("*.md"))):
        for number, line in enumerate(doc.read_text().splitlines(), start=1):
            for match in re.finditer(r"(\S*)python(3?) -m (app|bench)\b", line):
                assert match.group(1).endswith(".venv/bin/"), f"{doc.name}:{number}: {line.strip()}"


def test_local_links_lead_to_files_that_exist() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(PROJECT)} links to {target}"


def _ignored(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if "/" in pattern.rstrip("/"):
            if relative == pattern.rstrip("/"):
                return True
        elif fnmatch.fnmatch(name, pattern.rstrip("/")):
            return True
    return False


def repository_folders() -> set[str]:
    """Every folder of the working tree holding files, but hidden ones (except .ci) and what .gitignore omits."""
    patterns = [line.strip() for line in (PROJECT / ".gitignore").read_text().splitlines() if line.strip()]
    found = set()
    for root, folders, files in os.walk(PROJECT):
        relative_root = Path(root).relative_to(PROJECT).as_posix()
        folders[:] = [
            f
            for f in folders
            if (f == ".ci" or not f.startswith("."))  # editors' and tools' hidden folders are no part of it
            and not _ignored(f if relative_root == "." else f"{relative_root}/{f}", patterns)
        ]
        if relative_root != "." and any(not _ignored(f, patterns) for f in files):
            found.add(relative_root)
    return found


def layout_folders() -> set[str]:
    """The folders the Layout block of docs/development.md names (two spaces of indent per level)."""
    text = (PROJECT / "docs" / "development.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    found: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+/)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        parents[depth:] = [match.group(2).rstrip("/")]
        found.add("/".join(parents))
    return found


def test_the_layout_lists_every_folder_as_it_is() -> None:
    assert layout_folders() == repository_folders()
