"""The calibration oracle: what the rendered *strings* alone say about a ``jinja:`` train / deploy pair.

The checks compare token ids. This module asks each check's question of the texts the two templates write
(and of which texts are tokens of the vocabulary), without running any check:

* the served prompt for answer k is a prefix of the training text and reaches the answer's first trained
  character (``prompt-prefix``, ``bos``, and the ``system`` variants);
* each answer's trained text holds the text of a token the deploy side stops on (``answer-stop``, and on
  the plain variant ``stop-words``);
* every control-looking text the templates write is one token (``special-tokens``);
* with ``encode=segments``, encoding the plain variant's segments one by one gives the whole-string ids
  (``segments``).

When a check's premises hold, the check must not report an error: only data-dependent warnings (a
boundary merge) are possible, because both sides then tokenise the same text. An error there is a false
error (a harness artefact). When a premise fails, the :class:`Finding` says which strings part and is the
string-level explanation of the error.

The training side is rendered here directly from its template, with HF/TRL semantics: ``{% generation %}``
blocks are the trained text when there is one per assistant message; otherwise answer k is the text between
``render(messages[:k], add_generation_prompt=True)`` and ``render(messages[:k+1])`` (TRL's prompt/completion
split).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from harness.conversation import Conversation, Message, plain_variant
from harness.errors import RenderRejected
from harness.renderers.jinja import dataset_messages

if TYPE_CHECKING:
    from harness.checks.base import Failure, Pair

__all__ = ["FINDINGS", "Agreement", "Finding", "Judged", "TrainView", "judge", "train_view"]

#: finding kind → what the strings show (the string-level cause of a real error).
FINDINGS: dict[str, str] = {
    "prompt-not-prefix": "the served prompt is not a prefix of the training text (history rewritten, generation "
                         "prompt or template text differs)",
    "prompt-short": "the served prompt ends before the answer's first trained character",
    "prompt-covers-answer": "the served prompt already holds the whole trained answer",
    "history-rewritten": "the training template's own prompt for the answer is not a prefix of its whole rendering, "
                         "so the trained answer cannot be located",
    "deploy-rejects": "the deploy template rejects a prompt the training side renders",
    "bos-text": "the texts start with a different number of BOS tokens, or with two",
    "no-stop-text": "an answer's trained text holds no token the deploy side stops on",
    "control-not-a-token": "the template writes control-looking text that is not one token of this tokenizer",
    "segment-structural": "encoding the plain variant's segments one by one differs from encoding its whole text",
}


@dataclass(frozen=True)
class Finding:
    """A string-level divergence: ``kind`` (a key of FINDINGS) and one line showing the strings."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class TrainView:
    """The training text and each answer's trained char range ``(message, start, end)``. ``rewritten`` holds the
    answers whose own prompt is not a prefix of the whole rendering (history rewritten by later turns): their
    start is where the two part, moved back to the start of a token text it would cut."""

    text: str
    answers: tuple[tuple[int, int, int], ...]
    finding: Finding | None = None
    rewritten: frozenset[int] = frozenset()


def _render(pair: "Pair", conv: Conversation, gen: bool):
    """The training template's rendering of ``conv`` as HF/TRL training makes it (the dataset form of the messages,
    the tokenizer's special tokens and the spec's template options), through the renderer's render cache."""
    train = pair.train
    if not hasattr(train, "_render_text") or not hasattr(train, "template_kwargs"):
        raise TypeError(f"the calibration oracle reads jinja: training sides only, not {train.spec!r}")
    return train._render_text(dataset_messages(conv), conv.tool_dicts(), gen)


def train_view(pair: "Pair", conv: Conversation) -> TrainView:
    """The training text of ``conv`` and its answers' trained char ranges; raises RenderRejected.

    ``{% generation %}`` blocks are the answers when there is one per assistant message; otherwise (no blocks, or
    blocks that do not pair one-to-one, which the harness trains by the split too) TRL's prompt/completion split."""
    result = _render(pair, conv, False)
    full, indices = result.text, conv.assistant_indices
    if pair.train.template.has_generation and len(result.generation) == len(indices):
        return TrainView(full, tuple((k, s, e) for k, (s, e) in zip(indices, result.generation)))
    answers, finding, rewritten = [], None, set()
    for k in indices:
        prompt = _render(pair, conv.prefix(k), True).text
        done = _render(pair, conv.prefix(k + 1), False).text
        end = _snap(full, len(os.path.commonprefix([done, full])), pair.tokenizer.added_tokens)
        start = len(prompt)
        if not full.startswith(prompt):
            finding = finding or Finding("history-rewritten", f"answer messages[{k}]: {_parting(prompt, full)}")
            rewritten.add(k)
            start = _snap(full, len(os.path.commonprefix([prompt, full])), pair.tokenizer.added_tokens)
        answers.append((k, start, max(end, start)))
    return TrainView(full, tuple(answers), finding, frozenset(rewritten))


def _snap(text: str, at: int, tokens: "Mapping[str, int]") -> int:
    """``at``, or the start of an added token's text that ``at`` would cut."""
    for token in tokens:
        if len(token) > 1:
            i = text.find(token, max(0, at - len(token) + 1), at + len(token) - 1)
            if 0 <= i < at:
                return i
    return at


def _parting(served: str, trained: str) -> str:
    """Where two texts part, with a little context: ``…'ctx' ▶ served 'a' | trained 'b'``."""
    i = len(os.path.commonprefix([served, trained]))
    return f"char {i}: …{served[max(0, i - 24):i]!r} ▶ served {served[i:i + 32]!r} | trained {trained[i:i + 32]!r}"


@dataclass(frozen=True)
class Judged:
    """An error a check reported, with the finding that explains it (None: a false error, harness artefact)."""

    failure: "Failure"
    finding: Finding | None


class Agreement:
    """The string-level premises of every check for one pair and conversation (computed lazily)."""

    def __init__(self, pair: "Pair", conv: Conversation) -> None:
        self.pair, self.conv = pair, conv
        self.tok = pair.tokenizer
        self._views: dict[int, TrainView | None] = {}
        self._prompts: dict[tuple[int, int], str | RenderRejected] = {}
        self._keep: list[Conversation] = []

    # -- pieces ----------------------------------------------------------------------------------------------
    def view(self, conv: Conversation) -> TrainView | None:
        """The training view of ``conv`` (None when the training template rejects it)."""
        key = id(conv)
        if key not in self._views:
            self._keep.append(conv)  # keeps ids unique while cached
            try:
                self._views[key] = train_view(self.pair, conv)
            except RenderRejected:
                self._views[key] = None
        return self._views[key]

    def served(self, conv: Conversation, k: int) -> str | RenderRejected:
        key = (id(conv), k)
        if key not in self._prompts:
            try:
                self._prompts[key] = self.pair.deploy.render_text(conv.prefix(k), add_generation_prompt=True)
            except RenderRejected as exc:
                self._prompts[key] = exc
        return self._prompts[key]

    @property
    def plain(self) -> Conversation:
        if not hasattr(self, "_plain"):
            self._plain = plain_variant(self.conv)
        return self._plain

    def _answers(self, view: TrainView, message: int | None) -> list[tuple[int, int, int]]:
        return [a for a in view.answers if message is None or a[0] == message]

    # -- premises --------------------------------------------------------------------------------------------
    def prompts(self, conv: Conversation, message: int | None = None) -> Finding | None:
        """Served prompt for each answer (or answer ``message``) is a prefix of the training text reaching its
        first trained char."""
        view = self.view(conv)
        if view is None:
            return None
        if view.finding is not None and not view.answers:
            return view.finding
        for k, start, end in self._answers(view, message):
            served = self.served(conv, k)
            if isinstance(served, RenderRejected):
                return Finding("deploy-rejects", f"answer messages[{k}]: {served.reason}")
            if not view.text.startswith(served):
                return Finding("prompt-not-prefix", f"answer messages[{k}]: {_parting(served, view.text)}")
            if len(served) < start:
                return Finding("prompt-short", f"answer messages[{k}]: served prompt ends at char {len(served)}, "
                                               f"training starts the answer at {start} "
                                               f"({view.text[len(served):start]!r} in between)")
            if start < end <= len(served):
                return Finding("prompt-covers-answer", f"answer messages[{k}]: the served prompt already holds the "
                                                       f"whole trained answer {view.text[start:end]!r}")
        return None

    def stops(self, conv: Conversation, message: int | None = None) -> Finding | None:
        """Each answer's trained text holds the text of a deploy stop token."""
        view = self.view(conv)
        if view is None:
            return None
        if view.finding is not None and not view.answers:
            return view.finding
        texts = sorted(t for t, i in self.tok.added_tokens.items() if i in self.pair.deploy.stop_ids)
        for k, start, end in self._answers(view, message):
            trained = view.text[start:end]
            if not any(t in trained for t in texts):
                return Finding("no-stop-text", f"answer messages[{k}] is trained as …{trained[-40:]!r}; the deploy "
                                               f"side stops on {texts}")
        return None

    def control(self) -> Finding | None:
        """Every control-looking text in the plain variant's training text and last served prompt is a token."""
        from harness.checks.special import CONTROL_LIKE

        view = self.view(self.plain)
        if view is None or not self.plain.assistant_indices:
            return None
        served = self.served(self.plain, self.plain.assistant_indices[-1])
        if isinstance(served, RenderRejected):
            return Finding("deploy-rejects", f"plain variant: {served.reason}")
        for side, text in (("training", view.text), ("deploy", served)):
            for match in CONTROL_LIKE.finditer(text):
                if self.tok.token_id(match.group()) is None:
                    return Finding("control-not-a-token", f"the {side} template writes {match.group()!r}, "
                                                          f"{len(self.tok.encode(match.group()))} ids")
        return None

    def segments(self, conv: Conversation) -> Finding | None:
        """With ``encode=segments``: segment-wise ids of ``conv``'s training text == whole-string ids.

        No claim when an answer's place in the training text is not the string prefix of its own prompt (history
        rewritten, answers that render to nothing): where such an answer's segment starts is no fact of the strings."""
        if getattr(self.pair.train, "encode_mode", "whole") != "segments":
            return None
        view = self.view(conv)
        if view is None or not view.answers or view.rewritten:
            return view.finding if view is not None else None
        text = view.text
        borders = sorted({0, len(text), *(p for _, a, e in view.answers for p in (a, e))})
        pieces = [text[a:b] for a, b in zip(borders, borders[1:])]
        seg = [i for piece in pieces for i in self.tok.encode(piece)]
        whole = self.tok.encode(text)
        if seg == whole:
            return None
        i = next((j for j, (x, y) in enumerate(zip(seg, whole)) if x != y), min(len(seg), len(whole)))
        piece = self.tok.piece
        return Finding("segment-structural", f"token {i}: segments {[piece(t) for t in seg[i:i + 3]]} | whole "
                                             f"{[piece(t) for t in whole[i:i + 3]]}")

    def bos(self) -> Finding | None:
        """The first served prompt agrees with training (as ``prompts``), and both texts start with the same
        number (0 or 1) of BOS tokens."""
        view = self.view(self.conv)
        if view is None or not view.answers:
            return view.finding if view is not None else None
        first = view.answers[0][0]
        found = self.prompts(self.conv, first)
        bos = self.tok.bos_token
        if found is not None or not bos:
            return found
        served = self.served(self.conv, first)
        counts = [_leading(view.text, bos) + self._added_bos(self.pair.train),
                  _leading(str(served), bos) + self._added_bos(self.pair.deploy)]
        if max(counts) > 1 or counts[0] != counts[1]:
            return Finding("bos-text", f"training starts with {counts[0]} {bos!r}, the served prompt with {counts[1]}")
        return None

    def _added_bos(self, renderer: object) -> int:
        return int(bool(getattr(renderer, "add_special_tokens", False)) and self.tok.adds_bos)

    def system(self) -> Finding | None:
        """The no / empty / per-sample system variants of the first answer (as the system check builds them)."""
        for variant in system_variants(self.conv):
            found = self.prompts(variant) or self.segments(variant)
            if found is not None:
                return found
        return None

    def premise(self, check: str, message: int | None = None) -> Finding | None:
        """Why an error of ``check`` (on answer ``message``) may be real; None when the strings say it must hold.

        A check this oracle does not know has no premise: every error it reports needs a look."""
        if check == "prompt-prefix":
            return self.prompts(self.conv, message) or self.segments(self.plain)
        if check in ("tools", "reasoning"):  # both report a served prompt that is not the training text's prefix
            return self.prompts(self.conv, message) or self.prompts(self.conv)
        if check == "system":
            return self.system()
        if check == "bos":
            return self.bos()
        if check == "answer-stop":
            return self.stops(self.conv, message)
        if check == "stop-words":
            return self.stops(self.plain)
        if check == "special-tokens":
            return self.last_rejected() or self.control()
        if check == "segments":
            return self.segments(self.plain)
        return None

    def last_rejected(self) -> Finding | None:
        """The deploy template rejects the prompt for ``conv``'s last answer."""
        if not self.conv.assistant_indices:
            return None
        k = self.conv.assistant_indices[-1]
        served = self.served(self.conv, k)
        if isinstance(served, RenderRejected):
            return Finding("deploy-rejects", f"answer messages[{k}]: {served.reason}")
        return None


def _leading(text: str, token: str) -> int:
    n = 0
    while text.startswith(token, n * len(token)):
        n += 1
    return n


def system_variants(conv: Conversation) -> list[Conversation]:
    """The plain first-answer conversation with no system, an empty one and a per-sample one (the system check's)."""
    from harness.checks.prompt import SYSTEM_TEXT

    if not conv.assistant_indices:
        return []
    base = plain_variant(conv.prefix(conv.assistant_indices[0] + 1))
    rest = base.messages[1:] if base.messages and base.messages[0].role == "system" else base.messages
    first = next(i for i, m in enumerate(rest) if m.role == "assistant")
    out = []
    for text in (None, "", SYSTEM_TEXT):
        head = (Message("system", text),) if text is not None else ()
        out.append(Conversation(head + tuple(rest[:first + 1]), base.tools))
    return out


def judge(pair: "Pair", conv: Conversation, checks: Sequence[str] | None = None) -> list[Judged] | None:
    """Run the checks on ``conv`` as ``run_pair`` does and judge every error by the strings.

    None when the training template rejects ``conv`` (counted, never failed). A check that raises Skip or
    RenderRejected reports nothing."""
    from harness.checks import CHECKS, Skip

    case = pair.case(conv)
    try:
        case.train  # noqa: B018
    except RenderRejected:
        return None
    agreement: Agreement | None = None
    out = []
    for name in checks or list(CHECKS):
        try:
            failure = CHECKS[name].run(case)
        except (Skip, RenderRejected):
            continue
        if failure is None or failure.severity != "error":
            continue
        agreement = agreement or Agreement(pair, conv)
        out.append(Judged(failure, agreement.premise(failure.check, failure.message)))
    return out
