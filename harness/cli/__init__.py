"""``harness`` console script. Exit 0 = consistent, 1 = inconsistencies found, 2 = bad usage or input.

One module per subcommand: ``check``, ``merge``, ``generate``, ``tools`` (doctor, export); ``common`` holds the
argument types they share."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rich.console import Console

from harness.cli.common import Parser, examples, one_line, seed
from harness.errors import HarnessError
from harness.limits import MAX_EXAMPLES


def _parser() -> argparse.ArgumentParser:
    from harness.cli.check import add_check
    from harness.cli.generate import add_generate
    from harness.cli.merge import add_merge
    from harness.cli.tools import add_doctor, add_export

    parser = Parser(prog="harness", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_check(sub)
    add_merge(sub)
    add_generate(sub)
    add_doctor(sub)
    add_export(sub)
    sub.add_parser("models", help="list the zoo models")
    table = sub.add_parser("lf-table", help="LLaMA-Factory templates vs their models' templates -> docs/llamafactory.md")
    table.add_argument("--examples", type=examples, default=1000,
                       help=f"conversations per template (default 1000, at most {MAX_EXAMPLES:,})")
    table.add_argument("--seed", type=seed, default=0, help="generator seed (default 0)")
    table.add_argument("--out", default="docs/llamafactory.md", help="output file, '-' for stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported)
        return exc.code if isinstance(exc.code, int) else 2
    err = Console(stderr=True, highlight=False)
    try:
        if args.command == "lf-table":
            from harness.lftable import main as lf_table

            return lf_table(examples=args.examples, seed=args.seed, out=args.out)
        if args.command == "models":
            from harness.zoo import zoo_names

            print("\n".join(zoo_names()))
            return 0
        if args.command in ("doctor", "export"):
            from harness.cli import tools

            return tools.doctor(args) if args.command == "doctor" else tools.export(args)
        out = Console(highlight=False, soft_wrap=True)
        if not out.is_terminal:
            out = Console(highlight=False, soft_wrap=True, width=200)
        if args.command == "merge":
            from harness.cli.merge import merge

            return merge(args, out)
        if args.command == "generate":
            from harness.cli.generate import generate

            return generate(args)
        from harness.cli.check import check

        return check(args, out, err)
    except HarnessError as exc:
        sys.stderr.write(f"harness: error: {one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("harness: interrupted\n")
        return 130
