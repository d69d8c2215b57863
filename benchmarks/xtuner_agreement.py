"""Agreement of the ``xtuner:`` renderer with XTuner's real ``encode_fn`` driven by the transformers tokenizer.

For each (zoo model, template) and N generated conversations (no tools, no reasoning: XTuner's format has
neither): ``render()`` ids and labels equal ``encode_fn`` run on the raw transformers tokenizer (no harness
cache), the harness's piece rebuild equals those ids (no ``approximate``), and the labelled positions are
exactly the answers' ranges. Usage: python benchmarks/xtuner_agreement.py [N] [MAX_LENGTH]
"""

from __future__ import annotations

import sys

from harness.errors import RenderRejected
from harness.generate import generate
from harness.renderers.xtuner import XTunerRenderer, xtuner_tokenizer
from harness.zoo import load_zoo_tokenizer

PAIRS = (("qwen2.5", "qwen_chat"), ("qwen2.5", "internlm2_chat"), ("llama3", "llama3_chat"))


def agreement(model: str, template: str, n: int, seed: int = 0, max_length: int | None = None) -> dict[str, int]:
    tok = load_zoo_tokenizer(model)
    options = {"max_length": max_length} if max_length else {}
    r = XTunerRenderer(f"xtuner:{template}", tok, template, options)
    raw = xtuner_tokenizer(tok.hf)  # every encode through transformers itself
    out = {"conversations": 0, "ids_equal": 0, "labels_equal": 0, "rebuild_equal": 0, "labels_are_answers": 0,
           "truncated": 0, "dropped": 0}
    for conv in generate(n, seed=seed, system="any", tools=False, reasoning=False):
        ids, labels = r.encode_xtuner(conv, raw)
        out["conversations"] += 1
        try:
            e = r.render(conv)
        except RenderRejected:  # no label survives max_length: XTuner's dataset filter drops it too
            out["dropped"] += 1
            out["ids_equal"] += all(x < 0 for x in labels)
            out["labels_equal"] += all(x < 0 for x in labels)
            out["rebuild_equal"] += 1
            out["labels_are_answers"] += 1
            continue
        out["ids_equal"] += list(e.ids) == ids
        out["labels_equal"] += list(e.extra["label_ids"]) == labels and list(e.labels) == [x >= 0 for x in labels]
        out["rebuild_equal"] += not e.extra.get("approximate")
        trained = {i for a in e.answers for i in range(a.start, a.end)}
        out["labels_are_answers"] += trained == {i for i, x in enumerate(e.labels) if x}
        out["truncated"] += "kept_messages" in e.extra
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    cut = int(sys.argv[2]) if len(sys.argv) > 2 else None
    for model, template in PAIRS:
        print(model, template, f"max_length={cut}", agreement(model, template, n, max_length=cut), flush=True)
