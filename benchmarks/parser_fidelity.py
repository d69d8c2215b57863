"""Agreement of the harness's parser wrappers with the engines' own upstream tests (README numbers).

Runs every case of fixtures/parsers/vllm_upstream.json and llamafactory_upstream.json through
harness.parsers, and Ollama's own tools/thinking test cases (fixtures/parsers/ollama_upstream.json) through
the Go port, and prints, per parser: cases, agree, disagree, and each disagreement with its reason.
    python benchmarks/parser_fidelity.py [--json benchmarks/parser_fidelity.json]
(`python benchmarks/fidelity_readme.py` writes README's table from that JSON.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.parsers.fidelity import UpstreamCase, check_case, load_cases  # noqa: E402

FILES = ("vllm_upstream.json", "llamafactory_upstream.json")


def builder():
    """Build (and cache) the parser a case names, with its zoo tokenizer."""
    from harness.parsers import build_reasoning_parser, build_tool_parser
    from harness.zoo import load_zoo_tokenizer

    toks: dict = {}
    parsers: dict = {}

    def build(case: UpstreamCase):
        key = (case.kind, case.parser, case.model, json.dumps(dict(case.chat_template_kwargs), sort_keys=True))
        if key not in parsers:
            tok = None
            if case.model is not None:
                tok = toks.setdefault(case.model, load_zoo_tokenizer(case.model))
            kwargs = {"chat_template_kwargs": dict(case.chat_template_kwargs)} if case.chat_template_kwargs else {}
            make = build_reasoning_parser if case.kind == "reasoning" else build_tool_parser
            parsers[key] = make(case.parser, tok, **kwargs)
        return parsers[key]

    return build


def run(files=FILES) -> dict:
    build = builder()
    table: dict = defaultdict(lambda: {"cases": 0, "agree": 0, "disagree": []})
    for name in files:
        for case in load_cases(ROOT / "fixtures" / "parsers" / name):
            label = f"{'vllm:' if name.startswith('vllm') else ''}{case.parser}" + (
                f" ({case.model})" if case.model and name.startswith("vllm") else "") + (
                " reasoning" if case.kind == "reasoning" else "")
            row = table[label]
            row["cases"] += 1
            try:
                bad = check_case(case, build)
            except Exception as e:  # noqa: BLE001 - a parser that cannot be built is a disagreement, reported
                bad = [f"{type(e).__name__}: {e}"]
            if bad:
                row["disagree"].append({"id": case.id, "why": bad, "note": case.note,
                                        "reason": case.divergence or "UNEXPLAINED"})
            else:
                row["agree"] += 1
    from harness.parsers.ollama import upstream_agreement

    for suite, cases, agree, notes in upstream_agreement():
        table[suite] = {"cases": cases, "agree": agree,
                        "disagree": [{"id": suite, "why": [notes], "note": "", "reason": "UNEXPLAINED"}]
                        if agree < cases else []}
    return dict(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the table as JSON here")
    ap.add_argument("--files", nargs="+", default=list(FILES), help="fixture files under fixtures/parsers")
    args = ap.parse_args()
    t0 = time.perf_counter()
    table = run(args.files)
    total = sum(r["cases"] for r in table.values())
    agree = sum(r["agree"] for r in table.values())
    print(f"{'parser':52} {'cases':>5} {'agree':>5} {'disagree':>8}")
    for label, row in table.items():
        print(f"{label:52} {row['cases']:5} {row['agree']:5} {len(row['disagree']):8}")
    print(f"{'total':52} {total:5} {agree:5} {total - agree:8}   ({time.perf_counter() - t0:.1f} s)")
    for label, row in table.items():
        for d in row["disagree"]:
            print(f"\n{label} {d['id']}: " + "; ".join(d["why"]) + f"\n  reason: {d['reason']}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
