"""``make bench-variants``: server-side ideas measured against each other on the ``make bench`` data.

Each variant serves the same app with one thing changed; the list's first page is
measured at concurrency 1 and 16, variants interleaved over ``BENCH_REPEAT`` rounds
(default 3). Compare the server's CPU time per request first: latency on a shared
machine moves with everybody else's load.

- ``asyncio+h11``: uvicorn's pure-Python event loop and HTTP parser.
- ``uvloop+httptools``: uvicorn's fast loop and parser (what ``loop/http=auto`` picks when installed).
- ``asyncpg reset``: asyncpg's default reset query on release (``RESET ALL`` …), which
  the app skips (``app.main.release_connection``): one round trip more per request.
- ``no access log``: uvicorn's per-request log line off.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from typing import Any

from bench import harness
from bench.harness import Report, Row
from bench.list_page import PLAN
from bench.scenarios import Context, list_scenario

VARIANTS: dict[str, list[str]] = {
    "asyncio+h11": ["--loop", "asyncio", "--http", "h11"],
    "uvloop+httptools": ["--loop", "uvloop", "--http", "httptools"],
    "uvloop+httptools, asyncpg reset": ["--loop", "uvloop", "--http", "httptools", "--asyncpg-reset"],
    "uvloop+httptools, no access log": ["--loop", "uvloop", "--http", "httptools", "--no-access-log"],
}


def serve(argv: list[str]) -> None:
    """Entry point of a variant's server process: the real app with the variant's switches."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--asyncpg-reset", action="store_true")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.asyncpg_reset:
        from app.db.engine import TenantEngine

        original = TenantEngine.start_connection_pool

        async def start(self: TenantEngine, **kwargs: Any) -> None:
            kwargs.pop("reset", None)
            await original(self, **kwargs)

        TenantEngine.start_connection_pool = start  # type: ignore[method-assign,assignment]
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        loop=args.loop,
        http=args.http,
        access_log=not args.no_access_log,
        log_level="info",
    )


def main() -> None:
    """Seed the ``make bench`` data, measure every variant in interleaved rounds, print and save."""
    repeat = int(__import__("os").environ.get("BENCH_REPEAT", "3"))
    with harness.database_server() as server:
        db, _ = asyncio.run(harness.open_database(server, "bench_list", fresh=True))
        from bench.generate import load

        loaded = asyncio.run(load(db.owner_dsn, PLAN))
        scenario = list_scenario(Context(loaded), "list, first page", loaded.power, owner=loaded.power)
        report = Report("variants", {"plan": PLAN.__dict__, "counts": loaded.counts, "rounds": repeat})
        report.conditions = harness.conditions()
        harness.print_header(report)
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for _ in range(repeat):
            for name, switches in VARIANTS.items():
                command = ["-m", "bench.variants", "serve", *switches]
                with harness.api_server(db, 1, command=command) as api:
                    for c in (1, 16):
                        figures = harness.http_run(api, scenario.requests, c)
                        runs.setdefault((name, c), []).append(figures)
                        report.add(Row(name, 1, c, figures, None))
        print("\nmedians over the rounds:")
        print(f"{'variant':<34} {'c':>3} | {'p50 ms':>7} {'req/s':>7} {'cpu ms/req':>10}")
        for (name, c), rounds in runs.items():
            p50 = statistics.median(f["p50_ms"] for f in rounds)
            rps = statistics.median(f["rps"] for f in rounds)
            cpu = statistics.median(f["cpu_ms_per_request"] for f in rounds)
            print(f"{name:<34} {c:>3} | {p50:>7.2f} {rps:>7.0f} {cpu:>10.3f}")
        print(f"saved {report.save()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        main()
