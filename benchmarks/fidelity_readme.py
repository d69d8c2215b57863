"""Rewrite README.md's two fidelity tables from the JSON the measuring scripts write (between marker
comments), so those numbers are measured, never typed.

    python benchmarks/parser_fidelity.py --json benchmarks/parser_fidelity.json
    python benchmarks/vllm_fidelity.py --examples 477 --seed 0          # writes benchmarks/vllm_fidelity.json
    python benchmarks/fidelity_readme.py [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _readme import replace_block  # noqa: E402

HERE = Path(__file__).resolve().parent
BLOCKS = {"parser-fidelity": HERE / "parser_fidelity.json", "vllm-fidelity": HERE / "vllm_fidelity.json"}


def parser_table(table: dict) -> str:
    lines = ["| parser (zoo tokenizer) / upstream suite | cases | agree | disagree (explained, strict xfail) |",
             "|---|---:|---:|---:|"]
    for label, row in table.items():
        explained = all(d["reason"] != "UNEXPLAINED" for d in row["disagree"])
        n = len(row["disagree"])
        lines.append(f"| {label} | {row['cases']} | {row['agree']} | {n if explained else f'{n} UNEXPLAINED'} |")
    cases = sum(r["cases"] for r in table.values())
    agree = sum(r["agree"] for r in table.values())
    lines.append(f"| **total** | **{cases}** | **{agree}** | **{cases - agree}** |")
    return "\n".join(lines)


def vllm_table(m: dict) -> str:
    rows = m["rows"]
    lines = ["| target (template on zoo tokenizer) | content format | conversations | prompts | agree | both refuse "
             "| differ |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['content_format']} | {r['conversations']:,} | {r['prompts']:,} | "
                     f"{r['agree']:,} | {r['both_refuse']:,} | {r['differ']:,} |")
    convs, prompts = sum(r["conversations"] for r in rows), sum(r["prompts"] for r in rows)
    agree, differ = sum(r["agree"] for r in rows), sum(r["differ"] for r in rows)
    lines.append(f"| **total** | | **{convs:,}** | **{prompts:,}** | **{agree:,}** | | **{differ:,}** |")
    lines += ["", f"Measured with `vllm_fidelity.py --examples {m['examples']} --seed {m['seed']}`: "
              f"{agree / max(prompts, 1):.2%} of prompts agree."]
    return "\n".join(lines)


def rewrite(readme: str, name: str, body: str) -> str:
    return replace_block(readme, f"<!-- {name}:start (benchmarks/fidelity_readme.py) -->", f"<!-- {name}:end -->",
                         body, script="fidelity_readme")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    args = parser.parse_args()
    text = args.readme.read_text(encoding="utf-8")
    render = {"parser-fidelity": parser_table, "vllm-fidelity": vllm_table}
    for name, path in BLOCKS.items():
        text = rewrite(text, name, render[name](json.loads(path.read_text(encoding="utf-8"))))
    args.readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
