"""The output-parser contract: what a serving engine makes of the text a model emits.

A *tool parser* turns one answer's text into structured calls plus the content left over, as the engine's
OpenAI server does before it answers the client; a *reasoning parser* splits the text into reasoning and
content. Parsers are built per deploy renderer (``DeployRenderer.tool_parser`` / ``.reasoning_parser``) and
are stateless from the caller's view: ``parse``/``split`` may be called any number of times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from harness.conversation import Tool


@dataclass(frozen=True)
class ParsedCall:
    """One call as the engine returns it: ``arguments_text`` is the JSON string the client receives,
    ``arguments`` its decoded value (None when that string is not JSON)."""

    name: str
    arguments_text: str
    arguments: Any = None


@dataclass(frozen=True)
class ParsedOutput:
    """What the engine returns for one emitted text: calls in order and the content (None: no content)."""

    calls: tuple[ParsedCall, ...]
    content: str | None


class ToolParser(ABC):
    """An engine's tool-call parser. ``name`` is how reports name it (``vllm:hermes``, ``llamafactory:qwen``,
    ``ollama``); ``skip_special_tokens`` says how the engine detokenises the output it parses."""

    name: str
    skip_special_tokens: bool = True
    #: whether the engine's prompt keeps the key order of arguments a client replays in history (vLLM parses the
    #: string into an ordered dict; Ollama decodes it into a Go map and its template prints keys sorted)
    keeps_argument_order: bool = True

    @abstractmethod
    def parse(self, text: str, tools: Sequence["Tool"]) -> ParsedOutput:
        """The calls and content the engine returns for the emitted ``text`` of a request offering ``tools``."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "skip_special_tokens": self.skip_special_tokens}


class ReasoningParser(ABC):
    """An engine's reasoning parser (``vllm:deepseek_r1``, ``vllm:qwen3``, ``ollama``)."""

    name: str
    skip_special_tokens: bool = True

    @abstractmethod
    def split(self, text: str) -> tuple[str | None, str | None]:
        """``(reasoning, content)`` as the engine returns them for the emitted ``text``."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "skip_special_tokens": self.skip_special_tokens}
