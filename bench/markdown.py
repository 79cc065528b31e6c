"""``python -m bench.markdown bench/results/<file>.json``: a saved run as a Markdown table (for docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(path: Path) -> str:
    """The run's rows as a Markdown table, preceded by its data set."""
    run = json.loads(path.read_text())
    counts = run["dataset"]["counts"]
    lines = [
        f"{run['name']}: {counts['sessions']:,} sessions, {counts['messages']:,} messages, "
        f"{counts['users']:,} users (load average at start {run['conditions']['load_average'][0]:.1f})",
        "",
        "| scenario | workers | c | p50 ms | p99 ms | req/s | server CPU ms/req | floor p50 ms | floor p99 ms"
        " | floor tx/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in run["rows"]:
        h, f = row["http"], row["floor"]
        if not h:
            lines.append(f"| {row['scenario']} | | | {row['note']} | | | | | | | |")
            continue
        floor = f"{f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['rps']:.0f}" if f else "– | – | –"
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "–"
        lines.append(
            f"| {row['scenario']} | {row['workers']} | {row['concurrency']} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f}"
            f" | {h['rps']:.0f} | {h['cpu_ms_per_request']:.2f} | {floor} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(table(Path(name)) + "\n")
