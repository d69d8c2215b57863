"""The few calls the CLI, the pytest plugin and users share: load a model, build pairs, check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from harness.checks import Pair
from harness.renderers._common import template_reads_reasoning
from harness.specs import build_renderer

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.runner import TargetResult
    from harness.tokenizer import Tokenizer

DEFAULT_MODEL = "qwen2.5"


def load_model(*, model: str | None = None, model_dir: str | Path | None = None) -> "Tokenizer":
    """A zoo model by name, or a user's model dir (read only, never written). Default: qwen2.5."""
    if model_dir is not None:
        from harness.tokenizer import load_tokenizer

        return load_tokenizer(Path(model_dir))
    from harness.zoo import load_zoo_tokenizer

    return load_zoo_tokenizer(model or DEFAULT_MODEL)


def make_pair(tokenizer: "Tokenizer", train: str, deploy: str) -> Pair:
    return Pair(build_renderer(train, tokenizer, side="train"), build_renderer(deploy, tokenizer, side="deploy"))


def make_pairs(tokenizer: "Tokenizer", train: str, deploys: Sequence[str]) -> list[Pair]:
    return [make_pair(tokenizer, train, d) for d in deploys]


def check(pair: Pair, conversations: Iterable["Conversation"], *, checks: Sequence[str] | None = None
          ) -> "TargetResult":
    """Run the checks over ``conversations``; failures come back shrunk."""
    from harness.runner import run_pair

    return run_pair(pair, conversations, checks=checks)


def reads_reasoning(pair: Pair) -> bool:
    """Does either side's template read reasoning (``renderers._common.template_reads_reasoning``)? The CLI then
    generates conversations with reasoning by default (``--reasoning auto``)."""
    return any(template_reads_reasoning(r) for r in (pair.train, pair.deploy))
