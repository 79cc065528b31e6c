"""Entry point of ``python -m app``."""

from app.cli import run

run()
