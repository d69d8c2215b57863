"""``harness export``: write the deploy artifact that reproduces the training side's prompts, verified first.

One module per target (``jinja``, ``ollama``, ``lmdeploy``) builds a candidate :class:`Artifact` or raises
:class:`ExportRefused` (exit 2) when the format cannot express the training template. The candidate is written
to a temp dir, rendered by the matching deploy renderer (``hf:``, ``ollama:``, ``lmdeploy:``) against the
training spec with every check on ``examples`` generated conversations, and written to ``--output``
(atomically) only when no check fails; otherwise the divergence classes are listed and nothing is written
(exit 1), unless ``force``.

``--output`` rule: a path inside the model dir is refused unless it is exactly the file that target is served
from there (``DIR/chat_template.jinja``, ``DIR/Modelfile``, ``DIR/chat_template.json``) — the one explicit
way to write into a model dir; the training template file itself is never overwritten.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import InputError
from harness.export.base import Artifact, ExportRefused

__all__ = ["Artifact", "ExportRefused", "ExportResult", "TARGETS", "export", "check_output"]

#: --to → the file name a deploy reads it as (the only name allowed inside a model dir)
TARGETS = {"jinja": "chat_template.jinja", "ollama": "Modelfile", "lmdeploy": "chat_template.json"}


@dataclass(frozen=True)
class ExportResult:
    """What was verified: the artifact, the check results, and whether it was written."""

    artifact: Artifact
    result: object  # harness.runner.TargetResult
    written: Path | None

    @property
    def consistent(self) -> bool:
        return not self.result.failed(False)


def check_output(output: Path, to: str, model_dir: Path | None, train_file: Path | None) -> Path:
    """The resolved ``--output``: writable, not a directory, outside the model dir (except the target's own file
    name directly in it), not the training template file. InputError naming the path and the fix otherwise."""
    target = output.expanduser().resolve()
    where = f"--output={str(output)!r}"
    if target.is_dir():
        raise InputError(f"{where}: is a directory; pass a file path, e.g. {Path(output) / TARGETS[to]}")
    if train_file is not None and target == train_file.expanduser().resolve():
        raise InputError(f"{where}: is the training template itself; write the export to another path")
    if model_dir is not None and model_dir.is_dir():
        root = model_dir.expanduser().resolve()
        if target.is_relative_to(root) and target != root / TARGETS[to]:
            raise InputError(f"{where}: is inside the model dir, which harness export writes to only as "
                             f"{root / TARGETS[to]} (the file --to {to} is served from); pass that path or one "
                             "outside the model dir")
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"{where}: its directory {str(parent)!r} does not exist; create it or pass another path")
    try:
        with tempfile.NamedTemporaryFile(prefix=".harness-write-test-", dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"{where}: cannot write there ({exc.strerror or type(exc).__name__}); pass a path in a "
                         "directory you can write") from None
    return target


def build_artifact(train_renderer, train_spec: str, to: str, *, tools: str) -> Artifact:
    """The candidate for ``to`` (ExportRefused when that format cannot express the training template)."""
    from harness.specs import parse_spec

    if to == "jinja":
        from harness.export import jinja

        return jinja.export(train_renderer, parse_spec(train_spec))
    if to == "ollama":
        from harness.export import ollama

        return ollama.export(train_renderer, train_spec, tools=tools)
    if to == "lmdeploy":
        from harness.export import lmdeploy

        return lmdeploy.export(train_renderer, train_spec, tools=tools)
    raise InputError(f"--to={to!r}: unknown target; use one of {', '.join(TARGETS)}")


def export(*, tokenizer, train: str, to: str, output: Path | None, examples: int, seed: int, tools: str = "any",
           force: bool = False, make: Callable[..., Artifact] = build_artifact) -> ExportResult:
    """Build, verify and (when consistent, or ``force``) write the artifact. ``make`` builds the candidate
    (tests plant bugs through it). Conversations: ``generate(examples, seed, tools, reasoning)`` with reasoning
    on when either side reads it, as ``harness check --reasoning auto`` does."""
    from harness.api import reads_reasoning
    from harness.checks import Pair
    from harness.generate import generate
    from harness.report import write_atomic
    from harness.runner import run_pair
    from harness.specs import build_renderer

    train_renderer = build_renderer(train, tokenizer, side="train")
    artifact = make(train_renderer, train, to, tools=tools)
    with tempfile.TemporaryDirectory(prefix="harness-export-") as tmp:
        path = Path(tmp) / artifact.filename
        path.write_text(artifact.text, encoding="utf-8")
        deploy = f"{artifact.deploy_kind}:{path}{artifact.deploy_options}"
        pair = Pair(train_renderer, build_renderer(deploy, tokenizer, side="deploy"))
        reasoning = "any" if reads_reasoning(pair) else False
        flag = {"on": True, "off": False}.get(tools, tools)
        result = run_pair(pair, generate(examples, seed=seed, tools=flag, reasoning=reasoning))
    written = None
    if output is not None and result.verdict != "error" and (force or not result.failed(False)):
        written = write_atomic(output, artifact.text)
    return ExportResult(artifact=artifact, result=result, written=written)
