"""What a lint is, what it finds, and what it reads: a model dir (and deploy specs), never rendered in bulk.

``Context`` loads lazily and only through the harness's own loaders (``harness.api.load_model``,
``harness.specs.build_renderer``, ``harness.renderers.ollama.modelfile``), so a bad input fails with their one-line
message (exit 2). Nothing here writes to the model dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.checks.base import Pair
    from harness.renderers.base import DeployRenderer
    from harness.tokenizer import Tokenizer

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
#: The probe conversation: two plain turns, so answer messages[1] is followed by a next turn.
PROBE = ("user", "assistant", "user", "assistant")


@dataclass(frozen=True)
class Finding:
    """One lint firing: ``file`` and ``evidence`` (name → value) say where and what was read."""

    lint: str
    severity: Severity
    file: str
    finding: str
    fix: str
    evidence: tuple[tuple[str, Any], ...] = ()

    def as_dict(self, explanation: str) -> dict[str, Any]:
        return {"id": self.lint, "severity": self.severity, "file": self.file, "finding": self.finding,
                "fix": self.fix, "explanation": explanation, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Lint:
    """A static rule: a stable kebab-case ``id``, the worst ``severity`` it reports, the rule in one line,
    a one-paragraph ``explanation`` and ``run`` (Context → findings; raises Skip when it does not apply)."""

    id: str
    severity: Severity
    rule: str
    explanation: str
    fix: str
    run: Callable[["Context"], Iterable[Finding]]


class Skip(Exception):
    """The lint does not apply to this input (no chat template, no deploy spec…): reported, not an error."""


@dataclass(frozen=True)
class TrainedEnd:
    """The first control (added) token after answer messages[1]'s content in the training rendering."""

    id: int
    piece: str


@dataclass(frozen=True)
class Context:
    """The inputs of one ``harness doctor`` run. ``shown`` names the model as the user gave it."""

    model_dir: Path
    shown: str
    tokenizer: "Tokenizer"
    train_spec: str | None = None
    deploy_specs: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def template(self) -> str | None:
        """The dir's ``default`` chat template as transformers loads it (None: the dir has none)."""
        return self.tokenizer.chat_template

    def need_template(self) -> str:
        source = self.template()
        if source is None and self.train_spec is None:
            raise Skip("the model dir has no chat template (and no --train spec was given)")
        return source or ""

    def pair(self) -> "Pair":
        """Training side (``--train``, default ``jinja:.``) and the dir's template as vLLM serves it (``hf:.``)."""
        if "pair" not in self._cache:
            from harness.checks.base import Pair
            from harness.specs import build_renderer

            self.need_template()
            train = build_renderer(self.train_spec or "jinja:.", self.tokenizer, side="train")
            deploy = build_renderer("hf:.", self.tokenizer, side="deploy") if self.template() is not None else train
            self._cache["pair"] = Pair(train, deploy)
        return self._cache["pair"]

    def deploys(self) -> list[tuple[str, "DeployRenderer"]]:
        """Each ``--deploy`` spec and its renderer (built once; a bad spec or file is exit 2 here)."""
        if "deploys" not in self._cache:
            from harness.specs import build_renderer

            self._cache["deploys"] = [(s, build_renderer(s, self.tokenizer, side="deploy")) for s in self.deploy_specs]
        return self._cache["deploys"]

    def trained_end(self) -> TrainedEnd | None:
        """The token that ends a trained assistant turn: render the probe with the training side and take the
        first control (added) token after answer messages[1]'s content — its end-of-turn token, or the next
        turn's header when the template has none (GLM-4's ``<|user|>``). None: the answer ends in plain text."""
        if "end" not in self._cache:
            self._cache["end"] = _trained_end(self.pair())
        return self._cache["end"]


def probe(with_system: bool = False, turns: tuple[str, ...] = PROBE):
    from harness.conversation import PLAIN_TEXT, Conversation

    head = [{"role": "system", "content": PLAIN_TEXT}] if with_system else []
    return Conversation.from_openai(head + [{"role": r, "content": PLAIN_TEXT} for r in turns])


def _trained_end(pair: "Pair") -> TrainedEnd | None:
    from harness.checks import stopadvice

    try:
        enc = pair.train.render(probe(), add_generation_prompt=False)
    except RenderRejected:
        return None
    spans = [s for s in enc.spans if s.message == 1 and s.part == "content"]
    if not spans:
        return None
    added = set(pair.train.tokenizer.added_tokens.values())
    for token_id in enc.ids[max(s.end for s in spans):]:
        if token_id in added or token_id >= len(pair.tokenizer):  # past the vocab: a training-only added token
            return TrainedEnd(token_id, stopadvice.piece(pair, token_id))
    return None


def read_json_file(path: Path, what: str) -> Any:
    """A small JSON file (adapter_config.json…) or InputError naming it and the fix."""
    import json

    from harness.errors import InputError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"file='{path}' : unreadable ({exc}); check permissions and encoding") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"file='{path}' : invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
                         f"fix or regenerate the {what}") from None
