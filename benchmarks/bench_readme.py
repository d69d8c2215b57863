"""Rewrite README.md's "Speed and memory" table from a ``bench.py --json`` file (between marker comments),
so the README's numbers are measured, never typed.

    python benchmarks/bench_readme.py benchmarks/bench.json [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _readme import replace_block  # noqa: E402
from bench import rows, verdict  # noqa: E402

START, END = "<!-- bench:start (benchmarks/bench_readme.py) -->", "<!-- bench:end -->"


def table(m: dict) -> str:
    """The Markdown table and one line of conditions."""
    lines = ["| what | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {what} | **{measured}** | {target} | {verdict(passed)} |" for what, measured, target, passed in rows(m)]
    s = m["scenarios"]["identical pair"]
    lines += ["", f"Measured with `bench.py --examples {m['examples']} --seed {m['seed']}`: {s['messages']:.1f} "
              f"messages a conversation, {m['cpus']} CPUs, load average {m['load_average'][0]} at the end "
              f"(a shared machine: expect noise), Python {m['python']}."]
    return "\n".join(lines)


def rewrite(readme: str, m: dict) -> str:
    return replace_block(readme, START, END, table(m), script="bench_readme")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", type=Path)
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parent.parent / "README.md")
    args = parser.parse_args()
    m = json.loads(args.json.read_text(encoding="utf-8"))
    args.readme.write_text(rewrite(args.readme.read_text(encoding="utf-8"), m), encoding="utf-8")


if __name__ == "__main__":
    main()
