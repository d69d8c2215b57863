"""Calibrate ``template-unknown-token`` (and the other template lints) on real third-party templates.

Every template of the calibration corpus (``harness.corpus.corpus``: the zoo, TRL, axolotl, LLaMA-Factory's
exports) whose family tokenizer is in the zoo is rendered as vLLM serves it (``hf:FILE``) on that tokenizer, and
the doctor's marker rule is applied to the plain-conversation renderings. Prints counts per source and every
template with a finding. ``python benchmarks/doctor_calibrate.py [--sources zoo,trl,axolotl,llamafactory]``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from harness.api import load_model
from harness.corpus import corpus
from harness.doctor.vocab import rendered_texts, unknown_markers
from harness.errors import HarnessError
from harness.specs import build_renderer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", default="zoo,trl,axolotl,llamafactory")
    parser.add_argument("--stand-in", action="store_true", help="also run templates of other families on the "
                        "qwen2.5 stand-in (a mismatched pair: findings there are expected)")
    args = parser.parse_args(argv)
    counts: Counter = Counter()
    hits = []
    for t in corpus(tuple(args.sources.split(","))):
        if not t.fits and not args.stand_in:
            counts[t.source, "stand-in (skipped)"] += 1
            continue
        if t.note.startswith("not exported"):
            counts[t.source, "not exported"] += 1
            continue
        tok = load_model(model=t.model)
        try:
            renderer = build_renderer(t.deploy, tok, side="deploy")
        except HarnessError as exc:
            counts[t.source, "refused"] += 1
            print(f"{t.id}: refused: {exc}", file=sys.stderr)
            continue
        words = sorted({w for text in rendered_texts(renderer) for w in unknown_markers(text, tok)})
        pairing = "family" if t.fits else "stand-in"
        counts[t.source, f"{pairing} {'finding' if words else 'silent'}"] += 1
        if words:
            hits.append(f"{t.id} on {t.model} ({pairing}): {words}")
    for key in sorted(counts):
        print(f"{key[0]:14} {key[1]:20} {counts[key]}")
    print("\n".join(hits) or "no findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
