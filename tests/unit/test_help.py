"""What a newcomer reads first: ``serve --help`` with its defaults, and an aligned ``make help``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.cli import main

PROJECT = Path(__file__).resolve().parents[2]


def test_serve_help_shows_the_defaults(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option, default in (("--host", "127.0.0.1"), ("--port", "8000"), ("--workers", "1")):
        assert re.search(rf"{option} \w+ [^-]*\(default: {re.escape(default)}\)", text), (option, text)


def test_make_help_lists_every_documented_target_in_aligned_columns() -> None:
    make = shutil.which("make")
    assert make
    result = subprocess.run(
        [make, "--no-print-directory", "help"], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    documented = re.findall(r"^([a-z-]+):.*## ", (PROJECT / "Makefile").read_text(), flags=re.MULTILINE)
    assert [line.split()[1] for line in lines] == documented
    starts = {re.match(r"  make \S+ +", line).end() for line in lines}  # type: ignore[union-attr]
    assert len(starts) == 1, lines  # every description begins in the same column
