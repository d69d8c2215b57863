"""``harness doctor`` and ``harness export``: argument glue around :mod:`harness.doctor` and :mod:`harness.export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import examples, seed, writable_dir
from harness.errors import InputError
from harness.limits import MAX_DEPLOYS


def add_doctor(sub) -> None:
    doctor = sub.add_parser("doctor", help="static lints of a model dir and its deploy configs (no conversations)")
    doctor.add_argument("dir", nargs="?", type=Path, help="a Hugging Face model dir (read only)")
    doctor.add_argument("--model", help="a zoo model name instead of DIR (see `harness models`)")
    doctor.add_argument("--train", help="training side spec whose answers' end token is checked (default jinja:.)")
    doctor.add_argument("--deploy", action="append", default=[], help="deploy spec to lint, e.g. "
                        "ollama:path/Modelfile or lmdeploy:path/chat_template.json (repeatable)")
    doctor.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    doctor.add_argument("--output", type=Path, help="write the output to this file instead of stdout")


def doctor(args: argparse.Namespace) -> int:
    """``harness doctor``: lint, print or write the table/JSON, exit 1 on an error-level finding."""
    from harness.doctor import diagnose
    from harness.doctor.output import to_json, to_table

    if (args.dir is None) == (args.model is None):
        raise InputError("harness doctor needs exactly one of DIR or --model NAME; e.g. `harness doctor ./my-finetune` "
                         "or `harness doctor --model qwen2.5`")
    if len(args.deploy) > MAX_DEPLOYS:
        raise InputError(f"--deploy is given {len(args.deploy)} times; at most {MAX_DEPLOYS} deploy specs per run")
    if args.output is not None:
        _doctor_output_ok(args.output, args.dir)
    ctx, result = diagnose(model_dir=args.dir, model=args.model, train=args.train, deploy=args.deploy)
    text = to_json(ctx, result) if args.format == "json" else to_table(ctx, result)
    if args.output is None:
        sys.stdout.write(text)
    else:
        from harness.report import write_atomic

        write_atomic(args.output.expanduser(), text)
    return result.exit_code


def add_export(sub) -> None:
    ex = sub.add_parser("export", help="write the deploy artifact (Jinja, Ollama Modelfile, LMDeploy JSON) that "
                        "reproduces the training prompts, verified first")
    src = ex.add_mutually_exclusive_group()
    src.add_argument("--model", help="a zoo model name (see `harness models`); default qwen2.5")
    src.add_argument("--model-dir", type=Path, help="a Hugging Face model dir with tokenizer files (read only)")
    ex.add_argument("--train", required=True, help="training side spec, e.g. llamafactory:qwen or jinja:.")
    ex.add_argument("--to", required=True, choices=("jinja", "ollama", "lmdeploy"), help="artifact to write")
    ex.add_argument("--output", required=True, type=Path, help="file to write (only when verified consistent)")
    ex.add_argument("--examples", type=examples, default=2000, help="conversations verified (default 2000)")
    ex.add_argument("--seed", type=seed, default=0, help="generator seed (default 0)")
    ex.add_argument("--tools", choices=("any", "on", "off"), default="any",
                    help="tool calls in the verified conversations (off: export for tool-free use only)")
    ex.add_argument("--force", action="store_true", help="write the artifact even when verification fails (exit 1)")


def export(args: argparse.Namespace) -> int:
    """``harness export``: build, verify, print what was verified, write only when consistent (or --force)."""
    from harness.api import load_model
    from harness.export import check_output, export
    from harness.specs import parse_spec

    spec = parse_spec(args.train)
    model_dir = args.model_dir
    train_file = None  # the training template file, never overwritten
    if spec.kind == "jinja":
        arg = model_dir if spec.arg == "." else Path(spec.arg).expanduser()
        train_file = arg / "chat_template.jinja" if arg is not None and arg.is_dir() else arg
        train_file = train_file if train_file is not None and train_file.is_file() else None
    output = check_output(args.output, args.to, model_dir, train_file)
    tokenizer = load_model(model=args.model, model_dir=model_dir)
    done = export(tokenizer=tokenizer, train=args.train, to=args.to, output=output, examples=args.examples,
                  seed=args.seed, tools=args.tools, force=args.force)
    r = done.result
    if r.verdict == "error":
        raise InputError(f"--train {args.train!r}: verification could not run: {r.error}")
    cells = ", ".join(f"{c.name} {c.verdict}" + (f" {c.errors or c.warnings}/{c.examples_run}"
                                                  if c.verdict in ("fail", "warn") else "") for c in r.checks)
    a = done.artifact
    print(f"verified {args.to} export of {args.train} on {tokenizer.name}: {r.examples} conversations "
          f"(seed {args.seed}, tools {args.tools}), the candidate rendered as "
          f"{a.deploy_kind}:{a.filename}{a.deploy_options} against the training side")
    print(f"checks: {cells}")
    print(f"verdict: {'consistent' if done.consistent else 'inconsistent'}")
    for c in r.checks:
        for k in c.classes if c.verdict == "fail" else ():
            if k.severity == "error":
                print(f"  divergence: {c.name} / {k.cause}{' at ' + k.where if k.where else ''} "
                      f"({k.count} conversation(s))")
    if done.written is not None:
        print(f"wrote {done.written}" + ("" if done.consistent else " (--force: NOT consistent)"))
    else:
        print(f"nothing written: the export is not consistent with {args.train}; see the divergences above "
              "(`harness check` with this artifact shows each with a counterexample), or pass --force")
    return 0 if done.consistent else 1


def _doctor_output_ok(path: Path, model_dir: Path | None) -> None:
    """--output must be writable and outside the model dir (doctor never writes there)."""
    target = path.expanduser().resolve()
    if model_dir is not None and model_dir.is_dir() and target.is_relative_to(model_dir.expanduser().resolve()):
        raise InputError(f"--output={str(path)!r}: is inside the model dir, which harness doctor never writes to; "
                         "pass a path outside it")
    if target.is_dir():
        raise InputError(f"--output={str(path)!r}: is a directory; pass a file path")
    writable_dir(target.parent)
