"""Render a reliability report (JSON lines from PIPELOOM_RELIABILITY_REPORT) as a Markdown table."""

from __future__ import annotations

import json
import sys


def render(rows: list[dict]) -> str:
    lines = ["| id | what | measured | target | met | how |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["id"]):  # stable: within an id, in the order measured
        value = r["value"]
        if isinstance(value, float):
            value = f"{value:.3g}"
        detail = str(r.get("detail") or "").replace("|", "\\|")
        lines.append(f"| {r['id']} | {r['what']} | {value} | {r['target']} | {'yes' if r['ok'] else 'NO'} | {detail} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.reliability.report REPORT.jsonl", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    sys.stdout.write(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
