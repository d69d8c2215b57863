"""``harness doctor``: static lints of a model dir (and deploy configs) before any conversation is rendered.

One module per group of lints (``eos``, ``template``, ``vocab``, ``adapter``, ``stops``), the order and the run
in ``registry``. Each lint has a stable id, the worst severity it reports, its rule, an explanation and a fix;
each ``Finding`` names the file and the evidence read. Exit status: 1 when an error-level lint fires, else 0;
bad input raises the harness's InputError family (the CLI prints one line and exits 2). The model dir is read,
never written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.doctor.base import Context, Finding, Lint, Skip
from harness.doctor.registry import BY_ID, LINTS, Result, run

__all__ = ["BY_ID", "LINTS", "Context", "Finding", "Lint", "Result", "Skip", "diagnose", "load_context", "run"]


def load_context(*, model_dir: str | Path | None = None, model: str | None = None, train: str | None = None,
                 deploy: Sequence[str] = ()) -> Context:
    """Load the tokenizer (``harness.api.load_model``: a missing dir, no tokenizer files or malformed JSON is an
    InputError) and check the specs parse, before any lint runs."""
    from harness.api import load_model
    from harness.specs import parse_spec

    for spec in (train, *deploy):
        if spec is not None:
            parse_spec(spec)
    tok = load_model(model=model, model_dir=model_dir)
    shown = str(model_dir) if model_dir is not None else f"zoo:{tok.name}"
    ctx = Context(tok.model_dir, shown, tok, train, tuple(deploy))
    if ctx.template() is not None or train is not None:
        ctx.pair()  # compiles the templates: broken Jinja is bad input (exit 2), not a finding
    ctx.deploys()
    return ctx


def diagnose(**kwargs) -> tuple[Context, Result]:
    ctx = load_context(**kwargs)
    return ctx, run(ctx)
