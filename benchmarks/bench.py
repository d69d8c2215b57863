"""Speed and memory of a sweep: conversations per second on one core and peak RSS, per scenario.

Each scenario runs in its own process pinned to one CPU (so peak RSS is its own), on Qwen2.5 from the
zoo, over the same seeded conversations as ``harness check`` (all checks, failures shrunk).

    python benchmarks/bench.py [--examples 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "identical pair": ("jinja:.", "hf:."),
    "differing pair": ("jinja:" + str(ROOT / "fixtures/planted/prompt_newline.jinja"), "hf:."),
}
TARGETS = {"identical pair": 3000, "differing pair": 1000}


def child(name: str, examples: int, seed: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from harness.api import load_model, make_pair
    from harness.generate import generate
    from harness.runner import run_pair

    tok = load_model(model="qwen2.5")
    t0 = time.perf_counter()
    convs = list(generate(examples, seed=seed, tools="any", reasoning=False))
    gen_s = time.perf_counter() - t0
    train, deploy = SCENARIOS[name]
    pair = make_pair(tok, train, deploy)
    t1 = time.perf_counter()
    result = run_pair(pair, convs)
    run_s = time.perf_counter() - t1
    ids = sum(len(pair.train.render(c).ids) for c in convs[:200]) / 200
    print(json.dumps({"name": name, "verdict": result.verdict, "run_s": run_s, "gen_s": gen_s,
                      "tokens": ids, "messages": sum(len(c.messages) for c in convs) / len(convs),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def ollama(examples: int, seed: int) -> dict:
    """Render every deploy prompt of ``examples`` conversations through Ollama's Go text/template, batched."""
    from harness.api import load_model, make_pair
    from harness.generate import generate

    tok = load_model(model="qwen2.5")
    t0 = time.perf_counter()
    pair = make_pair(tok, "jinja:.", "ollama:" + str(ROOT / "fixtures/ollama/qwen2.5.Modelfile"))
    pair.deploy.render_texts([])  # start (and on first use build) the Go renderer
    start_s = time.perf_counter() - t0
    prompts = [c.prefix(k) for c in generate(examples, seed=seed, tools="any", reasoning=False)
               for k in c.assistant_indices]
    t1 = time.perf_counter()
    pair.deploy.render_texts(prompts)
    return {"prompts": len(prompts), "start_s": start_s, "batch_s": time.perf_counter() - t1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.examples, args.seed)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"template-harness sweep, Qwen2.5, {args.examples} conversations, one core, all checks")
    for col in ("scenario", "verdict", "msgs/conv", "train ids/conv", "sweep s", "conv/s", "target conv/s",
                "generate conv/s", "peak RSS MiB"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    for name in SCENARIOS:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--examples", str(args.examples),
                              "--seed", str(args.seed)], capture_output=True, text=True, check=True, cwd=ROOT)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        table.add_row(name, r["verdict"], f"{r['messages']:.1f}", f"{r['tokens']:.0f}", f"{r['run_s']:.2f}",
                      f"{args.examples / r['run_s']:.0f}", str(TARGETS[name]), f"{args.examples / r['gen_s']:.0f}",
                      f"{r['rss_mb']:.0f}")
    console = Console(width=160)
    console.print(table)
    o = ollama(args.examples, args.seed)
    console.print(f"Ollama (Go text/template, fixtures/ollama/qwen2.5.Modelfile): {args.examples} conversations = "
                  f"{o['prompts']} prompts rendered in one batch in {o['batch_s']:.2f} s (target < 5 s); "
                  f"renderer start {o['start_s']:.2f} s (includes the one-time Go build when not cached)")


if __name__ == "__main__":
    main()
