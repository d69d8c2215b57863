"""vLLM 0.33's real tool-call and reasoning parsers, run on CPU as its OpenAI server runs them (non-streaming).

Rule: the text a model emits goes through exactly the server's chat-completion path for a request offering the
tools with ``tool_choice="auto"`` and ``--enable-auto-tool-choice``: ``ParserManager.get_parser`` composes the
``--tool-call-parser`` / ``--reasoning-parser`` classes, one new parser instance per answer (they are stateful),
``adjust_request`` (which may turn ``skip_special_tokens`` off), ``Parser.parse`` and
``assemble_chat_message_fields``; the tokenizer is the model's transformers tokenizer wrapped as vLLM wraps it
(``get_cached_tokenizer``). Calls keep vLLM's ``arguments`` string as is; ``arguments`` is its strict
``json.loads`` (None when not JSON). This is vLLM's ``hf`` tokenizer mode: a Mistral model served with
``--tokenizer-mode mistral`` is not what this runs. An exception inside vLLM's parser raises ``ParserCrashed``.

vLLM is imported lazily, once per process (~20-30 s on CPU); install: ``pip install --no-deps -r
requirements-vllm.txt`` after torch (see the Makefile).
"""

from __future__ import annotations

import functools
import logging
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import SpecError
from harness.parsers.arguments import decode_arguments as _decode
from harness.parsers.base import ParsedCall, ParsedOutput, ReasoningParser, ToolParser

if TYPE_CHECKING:
    from harness.conversation import Tool
    from harness.tokenizer import Tokenizer

INSTALL = "pip install --no-deps -r requirements-vllm.txt (after torch==2.13.0; `make venv` does both)"


@functools.cache
def vllm_api() -> SimpleNamespace:
    """The vLLM classes the wrappers use, imported once per process; SpecError when vLLM is not installed."""
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    try:
        import vllm
        from vllm.entrypoints.openai.chat_completion.message_assembly import assemble_chat_message_fields
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.parser.parser_manager import ParserManager
        from vllm.reasoning import ReasoningParserManager
        from vllm.tokenizers.hf import get_cached_tokenizer
        from vllm.tool_parsers import ToolParserManager
    except ImportError as e:
        raise SpecError(f"vLLM parsers need the vllm package, which does not import ({e}); "
                        f"install it: {INSTALL}") from e
    # parsers log failed extractions with tracebacks (hermes on bad JSON): the harness reports them itself
    logging.getLogger("vllm").setLevel(logging.CRITICAL + 1)
    return SimpleNamespace(
        version=vllm.__version__, Request=ChatCompletionRequest, ParserManager=ParserManager,
        assemble=assemble_chat_message_fields, cached_tokenizer=functools.cache(get_cached_tokenizer),
        tool_names=tuple(ToolParserManager.list_registered()),
        reasoning_names=tuple(ReasoningParserManager.list_registered()),
    )


class ParserCrashed(RuntimeError):
    """The engine's parser raised on an answer (the server would answer HTTP 500): a finding, not an input error."""


def _request(tools: Sequence["Tool"] | Sequence[dict[str, Any]]) -> Any:
    specs = [t if isinstance(t, dict) else t.to_openai() for t in tools]
    kwargs: dict[str, Any] = {"tools": specs, "tool_choice": "auto"} if specs else {}
    return vllm_api().Request(model="harness", messages=[{"role": "user", "content": "."}], **kwargs)


class _VllmParser:
    """Shared construction: compose the server's ``Parser`` class and prove it builds for this tokenizer."""

    kind: str

    def __init__(self, parser: str, tokenizer: "Tokenizer", *, chat_template_kwargs: dict[str, Any] | None = None,
                 tool: bool) -> None:
        api = vllm_api()
        self.parser = parser
        self.model = tokenizer.name
        self._hf = api.cached_tokenizer(tokenizer.hf)  # what vLLM serves with (CachedHfTokenizer.from_pretrained)
        self._kwargs = dict(chat_template_kwargs or {})
        names = {"tool_parser_name": parser} if tool else {"reasoning_parser_name": parser}
        try:
            self._cls = api.ParserManager.get_parser(enable_auto_tools=True, tokenizer=self._hf, model_name=self.model,
                                                    **names)
            probe = self._new(_request([]))
        except SpecError:
            raise
        except Exception as e:  # noqa: BLE001 - vLLM raises KeyError/ValueError/RuntimeError here
            raise SpecError(f"vLLM {self.kind} parser {parser!r} cannot be built for model {self.model!r}: "
                            f"{type(e).__name__}: {e}; use a parser made for this model's tokens") from e
        offered = [{"type": "function", "function": {"name": "f", "description": "", "parameters": {
            "type": "object", "properties": {}}}}] if tool else []
        adjusted = probe.adjust_request(_request(offered))
        self.skip_special_tokens = adjusted.skip_special_tokens is not False

    def _new(self, request: Any) -> Any:
        return self._cls(self._hf, request.tools, chat_template_kwargs=self._kwargs, model_config=None)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "skip_special_tokens": self.skip_special_tokens, "vllm": vllm_api().version,
                "model": self.model, **({"chat_template_kwargs": self._kwargs} if self._kwargs else {})}


class VllmToolParser(_VllmParser, ToolParser):
    """``vllm serve --enable-auto-tool-choice --tool-call-parser NAME``: calls and content of one answer."""

    kind = "tool"

    def __init__(self, parser: str, tokenizer: "Tokenizer", *,
                 chat_template_kwargs: dict[str, Any] | None = None) -> None:
        self.name = f"vllm:{parser}"
        super().__init__(parser, tokenizer, chat_template_kwargs=chat_template_kwargs, tool=True)

    def parse(self, text: str, tools: Sequence["Tool"]) -> ParsedOutput:
        api = vllm_api()
        request = _request(tools)
        parser = self._new(request)
        request = parser.adjust_request(request)
        try:
            reasoning, content, calls = parser.parse(text, request, enable_auto_tools=True)
        except Exception as e:  # noqa: BLE001 - any engine exception is reported as the engine's failure
            raise ParserCrashed(f"{self.name} raised {type(e).__name__}: {e}") from e
        fields = api.assemble(request, reasoning, content, calls, enable_auto_tools=True, parser_cls=self._cls)
        out = tuple(ParsedCall(c.function.name, c.function.arguments, _decode(c.function.arguments))
                    for c in fields.tool_calls)
        return ParsedOutput(out, fields.content)


class VllmReasoningParser(_VllmParser, ReasoningParser):
    """``vllm serve --reasoning-parser NAME``: ``(reasoning_content, content)`` of one answer."""

    kind = "reasoning"

    def __init__(self, parser: str, tokenizer: "Tokenizer", *,
                 chat_template_kwargs: dict[str, Any] | None = None) -> None:
        self.name = f"vllm:{parser}"
        super().__init__(parser, tokenizer, chat_template_kwargs=chat_template_kwargs, tool=False)

    def split(self, text: str) -> tuple[str | None, str | None]:
        api = vllm_api()
        request = _request([])
        parser = self._new(request)
        request = parser.adjust_request(request)
        try:
            reasoning, content, calls = parser.parse(text, request, enable_auto_tools=True)
        except Exception as e:  # noqa: BLE001
            raise ParserCrashed(f"{self.name} raised {type(e).__name__}: {e}") from e
        fields = api.assemble(request, reasoning, content, calls, enable_auto_tools=True, parser_cls=self._cls)
        return fields.reasoning, fields.content
