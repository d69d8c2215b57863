"""What a check sees (a train/deploy pair, lazily encoded) and what it returns (a Failure or None)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from harness.diff import TokenDiff
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.renderers.base import Answer, Encoded, Renderer
    from harness.tokenizer import Tokenizer

Severity = Literal["error", "warning"]

#: The label that carries no loss (transformers / LLaMA-Factory ``IGNORE_INDEX``).
IGNORE = -100


@dataclass(frozen=True)
class Failure:
    """One check failing on one conversation. ``diff`` leads with the first diverging token."""

    check: str
    severity: Severity
    explanation: str
    conversation: "Conversation"
    diff: TokenDiff | None = None
    message: int | None = None
    tokens: dict[str, Any] = field(default_factory=dict)
    #: a cause id from ``harness.causes.CAUSES`` (what made the sides differ, computed from the data)
    cause: str = ""
    #: where the sides part, by role, not index (``system``, ``tool``, ``assistant.reasoning``,
    #: ``generation prompt``…), so failures of many conversations fall into one class
    where: str = ""
    #: further (cause, where) divergences later in the same prompt: each counts as a class of its own
    also: tuple[tuple[str, str], ...] = ()

    @property
    def pair(self) -> tuple[int | None, int | None]:
        """The first differing (training id, deploy id); for failures without a diff, the id at fault."""
        if self.diff is not None and self.diff.index is not None:
            return self.diff.first_pair
        end = self.tokens.get("end_id") if self.tokens else None
        return (end["id"] if isinstance(end, dict) else None, None)

    @property
    def key(self) -> tuple:
        """The divergence class: severity, cause, where, and the first differing id pair (for a boundary merge
        only the deploy id: which merged id training saw depends on the data)."""
        pair = self.pair
        return (self.severity, self.cause, self.where, (None, pair[1]) if self.cause == "boundary-merge" else pair)

    def keys(self) -> list[tuple]:
        """``key`` and one key per later divergence (``also``; no id pair: the diff leads with the first)."""
        return [self.key, *((self.severity, cause, where, (None, None)) for cause, where in self.also)]

    def as_class(self, cause: str, where: str) -> "Failure":
        """This failure presented for one of its later divergences."""
        if (cause, where) == (self.cause, self.where):
            return self
        from harness.causes import cause_summary

        return replace(self, cause=cause, where=where, also=(),
                       explanation=f"{cause_summary(cause)} (at {where}), after an earlier divergence in the same "
                       f"prompt: {self.explanation}")


class Skip(Exception):
    """The check does not apply to this pair (e.g. the model has no BOS): the sweep stops running it."""


class NotApplicable(Skip):
    """The check does not apply to this conversation (e.g. it offers no tools): not counted as run, the sweep
    goes on running the check on the next conversation; a check that applied to none is reported skipped."""


_UNSET: Any = object()


class PairCache:
    """What checks compute once per pair (named slots) or once per plain variant (a bounded table)."""

    __slots__ = ("added_ids", "stop_text", "stop_static", "_shapes")
    #: shape results kept before the table starts over (a sweep of many distinct shapes stays bounded)
    MAX_SHAPES = 50_000

    def __init__(self) -> None:
        self.added_ids: Any = _UNSET  # stop-advice: the deploy tokenizer's added (control) token ids
        self.stop_text: Any = _UNSET  # stop-advice: the StopText of a plain two-turn conversation (or None)
        self.stop_static: Any = _UNSET  # stop-words: the pair's stop ids and notes
        self._shapes: dict[tuple[str, Any], Any] = {}

    def per_pair(self, slot: Literal["added_ids", "stop_text", "stop_static"], compute: Callable[[], Any]) -> Any:
        """The value of ``slot``, computed on first use (an exception from ``compute`` caches nothing)."""
        value = getattr(self, slot)
        if value is _UNSET:
            value = compute()
            setattr(self, slot, value)
        return value

    def per_shape(self, check: str, shape: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per (check, shape key) — the key is a conversation's plain variant
        (:meth:`Case.plain_key`)."""
        key = (check, shape)
        if key not in self._shapes:
            value = compute()
            if len(self._shapes) > self.MAX_SHAPES:
                self._shapes.clear()
            self._shapes[key] = value
        return self._shapes[key]


@dataclass
class Pair:
    """A training renderer and a deploy renderer over one tokenizer."""

    train: "Renderer"
    deploy: "Renderer"
    cache: PairCache = field(default_factory=PairCache, repr=False, compare=False)

    @property
    def tokenizer(self) -> "Tokenizer":
        return self.train.tokenizer

    @property
    def name(self) -> str:
        return f"{self.train.spec} vs {self.deploy.spec}"

    def case(self, conv: "Conversation", *, detailed: bool = False) -> "Case":
        """``conv`` on this pair; ``detailed`` cases name every message in their TokenDiffs (reported failures)."""
        return Case(self, conv, detailed=detailed)


class Case:
    """One conversation on one pair; renders each side at most once per prompt.

    A ``detailed`` case (built for reported failures only) renders prompts with offsets and spans and names
    every message in its TokenDiffs (a render per message); the cases it makes for variants are detailed too."""

    def __init__(self, pair: Pair, conv: "Conversation", *, detailed: bool = False) -> None:
        self.pair, self.conv, self.detailed = pair, conv, detailed
        self._train: "Encoded | None" = None
        self._prompts: dict[tuple[int, bool], "Encoded"] = {}
        self._histories: dict[tuple[int, int], str | None] = {}
        self._plains: dict[int, tuple["Conversation", "Case"]] = {}  # id(conv) -> (conv, its plain Case)

    def variant(self, conv: "Conversation") -> "Case":
        """Another conversation (a variant a check builds) on the same pair, as detailed as this case."""
        return Case(self.pair, conv, detailed=self.detailed)

    def by_shape(self, check: str, conv: "Conversation", run: Callable[["Case"], "Failure | None"]) -> "Failure | None":
        """Run ``run`` on the plain variant of ``conv`` once per distinct plain variant (structural checks).

        The key is the plain variant itself, so the result never depends on which conversation met it first:
        counts are the same in any sweep order (``--jobs``, ``--shard``)."""
        return self.pair.cache.per_shape(check, self.plain_key(conv), lambda: run(self.plain(conv)))

    def plain_key(self, conv: "Conversation") -> tuple:
        """The key of the plain variant of ``conv`` (:func:`harness.conversation.plain_key`): the exact key of every
        per-shape result."""
        from harness.conversation import plain_key

        return plain_key(self.plain(conv).conv)

    def plain(self, conv: "Conversation") -> "Case":
        """The plain variant of ``conv`` (this case's conversation or a prefix of it), one Case shared by every
        structural check."""
        from harness.conversation import plain_variant

        hit = self._plains.get(id(conv))
        if hit is None:  # keyed by identity (conversations with tools are not hashable); the entry keeps conv alive
            hit = self._plains[id(conv)] = (conv, self.variant(plain_variant(conv)))
        return hit[1]

    @property
    def train(self) -> "Encoded":
        """The training encoding; raises RenderRejected when the training template refuses it."""
        if self._train is None:
            self._train = self.pair.train.render(self.conv, add_generation_prompt=False)
        return self._train

    def prompt(self, k: int, *, detail: bool = False) -> "Encoded":
        """The deploy prompt for answer ``k`` (``messages[:k]`` + generation prompt). ``detail`` (always on
        in a detailed case) adds offsets and message spans."""
        detail = detail or self.detailed
        key = (k, detail)
        if key not in self._prompts:
            self._prompts[key] = self.pair.deploy.render(self.conv.prefix(k), add_generation_prompt=True,
                                                         detail=detail)
        return self._prompts[key]

    def served_answers(self) -> "Iterator[tuple[Answer, Encoded]]":
        """Each trained answer with the deploy prompt for it; an answer whose prompt the deploy side rejects is
        left out (prompt-prefix reports that shape as ``deploy-rejects``)."""
        for ans in self.train.answers:
            try:
                prompt = self.prompt(ans.message)
            except RenderRejected:
                continue
            yield ans, prompt

    def diff(self, train_ids: Any, deploy: "Encoded", k: int | None = None) -> TokenDiff:
        """TokenDiff of training ids vs a deploy prompt (for answer ``k``), regions named per message."""
        k = len(self.conv.messages) if k is None else k
        detailed = self.detailed
        return TokenDiff.compute(train_ids, deploy.ids, piece=self.pair.tokenizer.piece, train_enc=self.train,
                                 deploy_enc=deploy,
                                 train_bounds=self.bounds(self.pair.train, len(self.conv.messages)) if detailed else None,
                                 deploy_bounds=self.bounds(self.pair.deploy, k) if detailed else None)

    def history(self, renderer: "Renderer", i: int) -> str | None:
        """``renderer``'s text of ``messages[:i]`` without generation prompt (None: rejected), once per case."""
        key = (id(renderer), i)
        if key not in self._histories:
            try:
                self._histories[key] = renderer.render_text(self.conv.prefix(i), add_generation_prompt=False)
            except RenderRejected:
                self._histories[key] = None
        return self._histories[key]

    def bounds(self, renderer: "Renderer", k: int) -> list[int]:
        """Char end of each of the first ``k`` messages in ``renderer``'s rendering (up to the first rejected)."""
        out = []
        for i in range(1, k + 1):
            text = self.history(renderer, i)
            if text is None:
                return out
            out.append(len(text))
        return out

    def pieces(self, ids: Any) -> list[dict[str, Any]]:
        return [{"id": i, "piece": self.pair.tokenizer.piece(i)} for i in ids]


@dataclass(frozen=True)
class Check:
    """A named property. ``run`` returns a Failure, None (holds) or raises Skip / NotApplicable / RenderRejected."""

    name: str
    run: Callable[[Case], Failure | None]
    doc: str = ""


def label_stream(train: "Encoded", ans: "Answer") -> list[tuple[int, int, bool]]:
    """``(position, trained id, follow-up)`` for answer ``ans``: its labelled ids, then the label that follows
    it when that label is not the input id there (efficient_eos) or is the appended final eos."""
    ids, n = train.ids, len(train.ids)
    raw = train.extra.get("label_ids")
    labels = train.labels
    out: list[tuple[int, int, bool]] = []
    end = min(ans.end, n)
    for j in range(ans.start, end):
        if raw is not None:
            if raw[j] != IGNORE:
                out.append((j, raw[j], False))
        elif labels is None or labels[j]:
            out.append((j, ids[j], False))
    if raw is not None and end < n and raw[end] != IGNORE and (raw[end] != ids[end] or end == n - 1):
        out.append((end, raw[end], True))
    return out


def deploy_rejected(case: Case, check: str, k: int, exc: RenderRejected) -> Failure:
    return Failure(check, "error",
                   f"the deploy template rejects the prompt for answer messages[{k}], a conversation the training "
                   f"side accepts: the served model would fail on a shape it was trained on ({exc.reason})",
                   case.conv, message=k, cause="deploy-rejects", where=exc.reason.split(":", 1)[0])
