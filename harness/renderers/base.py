"""The renderer contract: a conversation in, real token ids out.

A *training* renderer encodes whole conversations that end with an assistant turn, as its framework
encodes them for the loss, and says where each answer starts and which ids carry loss. A *deploy*
renderer encodes the prompt an engine sends to the model for ``messages[:k]`` plus the generation prompt.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.parsers.base import ReasoningParser, ToolParser
    from harness.tokenizer import Tokenizer

Side = Literal["train", "deploy"]


@dataclass(frozen=True)
class Span:
    """Where one message lies in a rendering: token indices ``[start, end)`` and chars ``[char_start, char_end)``.

    ``part`` is ``content``, ``reasoning`` or ``tool_calls``; spans are found by locating the message's
    own text in the rendering, so template text between messages belongs to no span.
    """

    message: int
    part: str
    start: int
    end: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Answer:
    """One trained answer (assistant message ``message``): its tokens ``[start, end)`` in the training ids.

    ``char_start`` is where the answer text begins in the rendering; ``straddles`` is True when the token
    at ``start`` begins before ``char_start`` (a boundary merge with the generation prompt's last token);
    ``rewritten`` is True when the text before the answer is not ``render(messages[:k])`` followed by (part
    of) the generation prompt: later turns rewrote the history (system moved, reasoning stripped).
    """

    message: int
    start: int
    end: int
    char_start: int
    straddles: bool = False
    rewritten: bool = False  # the template renders messages[:k] differently once later messages follow


@dataclass(frozen=True)
class Encoded:
    """A rendering and its ids. ``labels[i]`` says whether ``ids[i]`` carries loss (training only);
    ``extra["encoding"]`` is ``"segments"`` when training encoded ``segments`` one by one, else ``"whole"``."""

    ids: tuple[int, ...]
    text: str | None = None
    spans: tuple[Span, ...] = ()
    labels: tuple[bool, ...] | None = None
    answers: tuple[Answer, ...] = ()
    offsets: tuple[tuple[int, int], ...] | None = None
    segments: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def answer(self, message: int) -> Answer:
        for a in self.answers:
            if a.message == message:
                return a
        raise KeyError(message)

    def span_at(self, index: int) -> Span | None:
        """The message span that holds token ``index``, if any."""
        for s in self.spans:
            if s.start <= index < s.end:
                return s
        return None


@dataclass(frozen=True)
class ContextLimit:
    """A deploy engine's context limit: ``name`` is the engine's own option (``num_ctx``, ``max_model_len``,
    ``session_len``), ``value`` its id count."""

    name: str
    value: int

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Renderer(ABC):
    """What every renderer provides. ``stop_ids`` are the ids the engine stops on (deploy) or the
    end-of-answer ids training appends (train); ``describe()`` is provenance for reports, not an API."""

    spec: str
    side: ClassVar[Side]
    tokenizer: "Tokenizer"
    #: whether the side tokenises with the tokenizer's special tokens (BOS/EOS) added around the text
    add_special_tokens: bool = False

    @property
    @abstractmethod
    def stop_ids(self) -> frozenset[int]: ...

    @abstractmethod
    def render(self, conv: "Conversation", *, add_generation_prompt: bool) -> Encoded: ...

    @abstractmethod
    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool) -> str: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...


class TrainRenderer(Renderer):
    """A training framework's encoding. The stop facts below explain stop-id findings (defaults: none)."""

    side: ClassVar[Side] = "train"
    #: tokens the framework added to its own tokenizer copy (ids past the shared vocab)
    added_tokens: tuple[str, ...] = ()
    #: the template's own stop words (LLaMA-Factory ``stop_words``, XTuner ``STOP_WORDS``)
    template_stop_words: tuple[str, ...] = ()
    #: ``(before, after)`` when the framework replaced the tokenizer's eos token
    replaced_eos: tuple[str, str] | None = None
    #: LLaMA-Factory ``efficient_eos``: a non-final answer's eos is only the next prompt's first label
    efficient_eos: bool = False

    def decode_extra(self, token_id: int) -> str:
        """Text of an id past the shared vocab (one of ``added_tokens``); '' when the framework adds none."""
        return ""


class DeployRenderer(Renderer):
    """An engine's prompt for ``messages[:k]`` plus the generation prompt (skeleton: ``renderers.engine``)."""

    side: ClassVar[Side] = "deploy"

    @property
    def declared_stop_ids(self) -> frozenset[int] | None:
        """Stop ids the deploy artifact itself declares, when the engine adds others (None: no separate set)."""
        return None

    @property
    def context_limit(self) -> ContextLimit | None:
        """The engine's context limit (None: it sends everything)."""
        return None

    @property
    def tool_parser(self) -> "ToolParser | None":
        """The parser the engine runs on the model's output to find tool calls (None: not configured)."""
        return None

    @property
    def reasoning_parser(self) -> "ReasoningParser | None":
        """The parser the engine runs to split reasoning from content (None: not configured)."""
        return None

    @abstractmethod
    def render(self, conv: "Conversation", *, add_generation_prompt: bool = True, detail: bool = True) -> Encoded:
        """With ``detail=False``: ids and text only, no offsets or spans (the hot path)."""
