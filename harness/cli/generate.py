"""``harness generate``: write the conversations ``harness check`` sweeps, as OpenAI chat JSONL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.common import examples, flag, seed
from harness.errors import InputError


def add_generate(sub) -> None:
    gen = sub.add_parser("generate", help="write the conversations `harness check` sweeps with the same options "
                         "as OpenAI chat JSONL")
    gen.add_argument("--examples", type=examples, default=2000, help="conversations (default 2000)")
    gen.add_argument("--seed", type=seed, default=0, help="generator seed (default 0)")
    gen.add_argument("--tools", choices=("any", "on", "off"), default="any", help="tool calls in conversations")
    gen.add_argument("--reasoning", choices=("any", "on", "off"), default="off",
                     help="reasoning in assistant turns (default off; `harness check --reasoning auto` uses any when "
                          "either side's template reads reasoning, else off)")
    gen.add_argument("--output", required=True, type=Path, help="the JSONL file to write ('-' for stdout)")


def generate(args: argparse.Namespace) -> int:
    """One ``{"messages": [...], "tools": [...]}`` line per conversation (ASCII JSON, keys in order)."""
    from harness.generate import generate as conversations

    convs = conversations(args.examples, seed=args.seed, tools=flag(args.tools), reasoning=flag(args.reasoning))
    lines = (json.dumps(c.to_openai(), ensure_ascii=True) + "\n" for c in convs)
    if str(args.output) == "-":
        import sys

        sys.stdout.writelines(lines)
        return 0
    if args.output.is_dir():
        raise InputError(f"--output={str(args.output)!r}: is a directory; pass a file path")
    from harness.report import write_atomic

    try:
        write_atomic(args.output, "".join(lines))
    except OSError as exc:
        raise InputError(f"--output={str(args.output)!r}: cannot write there ({exc.strerror or type(exc).__name__}); "
                         "pass a file path in a directory you can write") from None
    return 0
