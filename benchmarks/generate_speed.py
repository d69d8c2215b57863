"""Conversations per second of the generator alone (``harness.generate``), per option set.

    python benchmarks/generate_speed.py [--examples 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from harness.generate import generate

OPTION_SETS = ({}, {"tools": "any", "reasoning": "any"}, {"tools": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    table = Table(title=f"harness.generate, {args.examples:,} conversations per option set, one process")
    for col in ("options", "conversations/s", "messages/conversation"):
        table.add_column(col, justify="left" if col == "options" else "right")
    for options in OPTION_SETS:
        list(generate(100, seed=0, **options))  # warm caches
        start = time.perf_counter()
        convs = list(generate(args.examples, seed=args.seed, **options))
        rate = len(convs) / (time.perf_counter() - start)
        table.add_row(str(options or "defaults"), f"{rate:,.0f}",
                      f"{statistics.mean(len(c.messages) for c in convs[:2000]):.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
