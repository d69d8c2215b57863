"""Speed and memory against targets, with a naive transformers loop as the yardstick.

Qwen2.5 from the zoo, seeded conversations as ``harness check`` generates them (all checks, failures
shrunk). Rows, each with its target and pass/fail:

* in-process sweeps pinned to one core (identical pair, planted-newline pair, LLaMA-Factory), each child
  also running the *naive loop* on the same conversations: AutoTokenizer ``apply_chat_template(...,
  tokenize=False)`` for every prompt ``messages[:k]`` (+ generation prompt) and the whole chat, each tokenised;
* whole-process ``harness check`` on one core (start-up included) against twice the naive loop's rate;
* start-up: ``harness check --examples 1`` wall time, report written (median of 3, after the harness' bytecode is
  compiled as a regular install leaves it and one warm-up fills the tokenizer verification cache, as a user's
  second run finds it);
* peak RSS of every child; 100,000 conversations with ``harness check --jobs 2`` when the option exists;
* Ollama: every deploy prompt rendered through Go's text/template in one batch.

    python benchmarks/bench.py [--examples 2000] [--big-examples 100000] [--seed 0] [--json PATH]

``--json`` also writes the numbers; ``benchmarks/bench_readme.py PATH`` turns them into README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "identical pair": ("jinja:.", "hf:."),
    "differing pair": ("jinja:" + str(ROOT / "fixtures/planted/prompt_newline.jinja"), "hf:."),
    "llamafactory pair": ("llamafactory:qwen", "hf:."),
}
RATE_TARGETS = {"identical pair": 1000, "differing pair": 800}
CHECK = [sys.executable, "-m", "harness.cli", "check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:."]


def child(name: str, examples: int, seed: int) -> None:
    """One scenario, pinned to one core: the harness sweep, then the naive loop on the same conversations."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from harness.api import load_model, make_pair
    from harness.generate import generate
    from harness.runner import run_pair

    tok = load_model(model="qwen2.5")
    convs = list(generate(examples, seed=seed, tools="any", reasoning=False))
    train, deploy = SCENARIOS[name]
    pair = make_pair(tok, train, deploy)
    t0 = time.perf_counter()
    result = run_pair(pair, convs)
    run_s = time.perf_counter() - t0
    out = {"name": name, "verdict": result.verdict, "rate": examples / run_s,
           "messages": sum(len(c.messages) for c in convs) / len(convs)}
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before transformers is loaded
    if name == "identical pair":
        out["naive_rate"] = examples / naive_loop(tok.hf, convs)
    print(json.dumps(out))


def naive_loop(hf, convs) -> float:
    """Seconds for the obvious transformers loop over ``convs``: every prompt and the whole chat, tokenised."""
    t0 = time.perf_counter()
    for conv in convs:
        request = conv.to_openai("request")
        messages, tools = request["messages"], request.get("tools")
        texts = [hf.apply_chat_template(messages[:k], tools=tools, tokenize=False, add_generation_prompt=True)
                 for k in conv.assistant_indices]
        texts.append(hf.apply_chat_template(messages, tools=tools, tokenize=False))
        for text in texts:
            hf(text, add_special_tokens=False)
    return time.perf_counter() - t0


def ollama(examples: int, seed: int) -> dict:
    """Render every deploy prompt of ``examples`` conversations through Ollama's Go text/template, batched."""
    from harness.api import load_model, make_pair
    from harness.generate import generate

    tok = load_model(model="qwen2.5")
    pair = make_pair(tok, "jinja:.", "ollama:" + str(ROOT / "fixtures/ollama/qwen2.5.Modelfile"))
    pair.deploy.render_texts([])  # start (and on first use build) the Go renderer
    prompts = [c.prefix(k) for c in generate(examples, seed=seed, tools="any", reasoning=False)
               for k in c.assistant_indices]
    t0 = time.perf_counter()
    pair.deploy.render_texts(prompts)
    return {"prompts": len(prompts), "batch_s": time.perf_counter() - t0}


def run_check(args: list[str], env: dict[str, str], *, one_core: bool) -> float:
    """Wall seconds of one ``harness check`` process (exit 0 expected: the pair is consistent)."""
    return _timed_check(args, env, one_core=one_core)[0]


def _timed_check(args: list[str], env: dict[str, str], *, one_core: bool) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one ``harness check``; CPU is what a loaded machine barely skews."""
    pin = ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[0])] if one_core and _has("taskset") else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as reports:
        t0 = time.perf_counter()
        subprocess.run([*pin, *CHECK, *args, "--report-dir", reports, "--quiet"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _has(tool: str) -> bool:
    return any((Path(p) / tool).is_file() for p in os.environ.get("PATH", "").split(os.pathsep))


def measure(examples: int, big: int, seed: int, env: dict[str, str]) -> dict:
    """Every number of the table, as a dict (the ``--json`` payload)."""
    # bytecode as a regular install leaves it (pip compiles on install; an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile ~80 modules on every start), then the warm-up fills
    # the tokenizer verification cache as a user's first run does
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "harness")], check=True,
                   stdout=subprocess.DEVNULL)
    run_check(["--examples", "1"], env, one_core=False)
    starts = [_timed_check(["--examples", "1"], env, one_core=False) for _ in range(3)]
    startup, startup_cpu = statistics.median(w for w, _ in starts), statistics.median(c for _, c in starts)
    whole = examples / run_check(["--examples", str(examples), "--seed", str(seed)], env, one_core=True)
    has_jobs = "--jobs" in subprocess.run([*CHECK[:4], "--help"], capture_output=True, text=True, env=env,
                                          cwd=ROOT).stdout
    big_s = run_check(["--jobs", "2", "--examples", str(big), "--seed", str(seed)], env, one_core=False) \
        if has_jobs else None
    checks_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # harness check processes only
    children = {}
    for name in SCENARIOS:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--examples", str(examples), "--seed",
                              str(seed)], capture_output=True, text=True, cwd=ROOT, env=env)
        if out.returncode and name == "llamafactory pair":  # the optional extra is not installed
            continue
        if out.returncode:
            raise SystemExit(f"bench: scenario {name!r} failed:\n{out.stderr[-2000:]}")
        children[name] = json.loads(out.stdout.strip().splitlines()[-1])
    batch = ollama(examples, seed)
    rss = max([checks_rss, *(c["rss_mb"] for c in children.values()),
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
    return {"examples": examples, "big_examples": big, "seed": seed, "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "scenarios": children, "naive_rate": children["identical pair"]["naive_rate"],
            "whole_process_rate": whole, "startup_s": startup, "startup_cpu_s": startup_cpu, "peak_rss_mib": rss, "jobs2_s": big_s,
            "ollama": batch}


def rows(m: dict) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, passed) for each target; passed None when not measurable."""
    s = m["scenarios"]
    lf = s["identical pair"]["rate"] / s["llamafactory pair"]["rate"] if "llamafactory pair" in s else None
    big = m["jobs2_s"]
    return [
        ("naive transformers loop (apply_chat_template + tokenise), one core", f"{m['naive_rate']:.0f} conv/s",
         "—", None),
        ("whole-process `harness check`, one core", f"{m['whole_process_rate']:.0f} conv/s",
         f"≥ 2× naive ({2 * m['naive_rate']:.0f})", m["whole_process_rate"] >= 2 * m["naive_rate"]),
        *((f"in-process {n} (`{SCENARIOS[n][0].replace(str(ROOT) + '/', '')}` vs `hf:.`), one core",
           f"{s[n]['rate']:.0f} conv/s", f"≥ {t:,}", s[n]["rate"] >= t) for n, t in RATE_TARGETS.items()),
        ("`llamafactory:qwen` vs `hf:.`: time per conversation vs `jinja:.`",
         "n/a (no llamafactory)" if lf is None else f"{lf:.2f}×", "≤ 2×", None if lf is None else lf <= 2),
        ("start-up: `harness check --examples 1`, whole process, wall (CPU user+sys)",
         f"{m['startup_s']:.2f} s" + (f" ({m['startup_cpu_s']:.2f} s)" if "startup_cpu_s" in m else ""), "≤ 1.5 s",
         m["startup_s"] <= 1.5),
        ("peak RSS (any benchmark process)", f"{m['peak_rss_mib']:.0f} MiB", "≤ 1,024 MiB", m["peak_rss_mib"] <= 1024),
        (f"{m['big_examples']:,} conversations, `harness check --jobs 2`",
         "n/a (no --jobs)" if big is None else f"{big:.0f} s", "≤ 120 s", None if big is None else big <= 120),
        (f"Ollama: {m['ollama']['prompts']:,} prompts through Go's text/template, one batch",
         f"{m['ollama']['batch_s']:.2f} s", "< 5 s", m["ollama"]["batch_s"] < 5),
    ]


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**fail**", None: "—"}[passed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--big-examples", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here (input of bench_readme.py)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.examples, args.seed)
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # start-up as users see it
    with tempfile.TemporaryDirectory() as tmp:
        env.update(HARNESS_VERIFY_CACHE_DIR=str(Path(tmp) / "verified"), PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"))
        m = measure(args.examples, args.big_examples, args.seed, env)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"template-harness, Qwen2.5, {args.examples} conversations, all checks "
                        f"(load average {m['load_average'][0]} on {m['cpus']} CPUs)")
    for col in ("what", "measured", "target", "result"):
        table.add_column(col)
    for what, measured, target, passed in rows(m):
        table.add_row(what, measured, target, verdict(passed).replace("*", ""))
    Console(width=160).print(table)
    if args.json:
        args.json.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
