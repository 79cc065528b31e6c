"""The Debian tools ``make test`` and ``make bench`` use, for a user who is not root.

Present: nothing to do, no root needed. Missing: one line saying what to install, and the
target fails (never an apt-get that cannot work, never a silent skip). As root the targets
install the package instead; CI exercises that on its fresh machine. When this suite itself
runs as root, the targets run as ``nobody`` (setpriv), so the unprivileged path is what is tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
TOOLS = [("chromium", "CHROMIUM", "chromium"), ("pgbouncer", "PGBOUNCER", "pgbouncer"), ("bench-tools", "WRK", "wrk")]


# Run from a make (``make test``), the outer make's flags and exported paths must not leak in.
OUTER_MAKE = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CHROMIUM", "PGBOUNCER", "WRK"}


def make_unprivileged(target: str, variable: str, path: str) -> subprocess.CompletedProcess[str]:
    """``make TARGET VARIABLE=PATH`` as a user who is not root."""
    return subprocess.run(
        [*AS_NOBODY, "make", "--no-print-directory", target, f"{variable}={path}"],
        cwd=PROJECT,
        env={k: v for k, v in os.environ.items() if k not in OUTER_MAKE},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("target", "variable", "package"), TOOLS)
def test_a_missing_tool_is_one_line_saying_what_to_install_and_a_failure(
    target: str, variable: str, package: str
) -> None:
    missing = f"/nonexistent/{package}"
    result = make_unprivileged(target, variable, missing)
    assert result.returncode != 0
    assert result.stdout == ""  # no apt-get attempted
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert ours == [
        f"{missing} is missing: install Debian's {package} (sudo apt-get install {package})"
        f" or set {variable}=/path/to/{package}"
    ]


@pytest.mark.parametrize(("target", "variable", "package"), TOOLS)
def test_a_present_tool_needs_no_root(target: str, variable: str, package: str) -> None:
    present = shutil.which("true")
    assert present
    result = make_unprivileged(target, variable, present)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
