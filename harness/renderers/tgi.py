"""``tgi:.`` / ``tgi:DIR`` / ``tgi:path.jinja`` — the prompt Text Generation Inference builds for ``/v1/chat/completions``.

Read from TGI's router (``router/src/infer/chat_template.rs``, ``router/src/lib.rs``, ``infer/tool_grammar.rs``):

* The template is ``tokenizer_config.json``'s ``chat_template`` (a named list: the ``default`` one for every
  request — TGI never picks ``tool_use``; without ``default`` it has no template) or the
  model dir's ``chat_template.json``; ``chat_template.jinja`` is not read. Before compiling, TGI rewrites
  ``messages[0]['content'][0]['text']`` → ``messages[0]['content']`` and ``[::-1]`` → ``|reverse`` and deletes
  ``{% generation %}`` / ``{% endgeneration %}``. A template that does not compile stops the server.
* The engine is Rust minijinja 2.8 (``Environment::new()``: **no** ``trim_blocks``/``lstrip_blocks``, lenient
  undefined), with pycompat methods (``.strip()``, ``.items()``…), ``raise_exception`` and ``strftime_now``
  (the local clock: pinned here to ``harness.sandbox.PINNED_NOW``). PyPI ``minijinja`` 2.9.0 is the same engine
  (2.8 has no Python pycompat); the contrib filters/globals and the ``d`` alias it adds are removed again.
  Its maps are serde ``BTreeMap``s, so every mapping iterates (and ``tojson``s) with **sorted keys**;
  ``tojson`` is compact and escapes ``< > & '``; ``none`` prints as ``none``.
* Messages are flattened to ``{content, role}``: text parts joined with ``""``; a message with
  ``content: null`` and ``tool_calls`` gets its calls as content, serde JSON
  ``[{"id":…,"type":"function","function":{"description":null,"name":…,"arguments":"<the arguments string as a
  JSON string>"}}]``; a message with content *and* calls keeps only the content; ``tool_call_id``, ``name`` and
  reasoning are dropped.
* With tools (``tool_choice`` auto) a ``no_tool`` function is appended, and every tool reaches the template as
  ``{"function": {"arguments": "<parameters as a JSON string>", "description", "name"}, "type"}``; the last
  message (when it has text content) gets ``"\\n---\\n" + TOOL_PROMPT`` appended — preceded by the tools' JSON
  when the template never reads ``tools``.
* ``add_generation_prompt`` is always true; a last assistant message is continued (the rendering is cut after
  its content's last occurrence and right-stripped). ``bos_token``/``eos_token`` come from
  ``tokenizer_config.json``. The prompt is tokenised with ``add_special_tokens=False``.
* Stop ids: ``generation_config.json``'s ``eos_token_id`` when it is a list, else the tokenizer's eos id.

``render(conv, add_generation_prompt=False)`` (used only to locate history in reports) renders without the
generation prompt, which TGI itself never does.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import minijinja  # noqa: F401 - imported here so a missing package is an InputError when the spec is built

from harness.errors import InputError, RenderRejected, TemplateError
from harness.limits import MAX_TEMPLATE_CHARS, Limits, mib
from harness.renderers._common import read_template_file, sha256_text, text_stop_ids
from harness.renderers._process import LineProcess, ProcessDied
from harness.renderers.engine import EngineRenderer
from harness.sandbox import PINNED_NOW, output_message

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.tokenizer import Tokenizer

#: ``default_tool_prompt()`` in router/src/lib.rs.
TOOL_PROMPT = ("\nGiven the functions available, please respond with a JSON for a function call with its proper "
               "arguments that best answers the given prompt. Respond in the format {name: function name, parameters: "
               "dictionary of argument name and its value}.Do not use variables.\n")
#: The function ``ToolGrammar::apply`` adds for ``tool_choice: auto``.
NO_TOOL = {"name": "no_tool", "description": "Open ended response with no specific tool selected",
           "parameters": {"type": "object"}}
#: What minijinja-py 2.9 registers beyond TGI's minijinja 2.8 environment (minijinja-contrib, the ``d`` alias).
_EXTRA_FILTERS = ("pluralize", "filesizeformat", "truncate", "striptags", "wordcount", "wordwrap", "datetimeformat",
                  "timeformat", "dateformat", "random", "d")
_EXTRA_GLOBALS = ("now", "lipsum", "randrange", "cycler", "joiner")
#: Instructions one render may execute before minijinja stops it (a normal render needs a few thousand).
DEFAULT_FUEL = 5_000_000


def tgi_source(source: str) -> str:
    """The template text TGI compiles (its three string rewrites)."""
    out = source.replace("messages[0]['content'][0]['text']", "messages[0]['content']")
    out = out.replace("[::-1]", "|reverse")
    return out.replace("{% generation %}", "").replace("{% endgeneration %}", "")


@dataclass(frozen=True)
class TGITemplate:
    """A compiled TGI chat template. ``origin`` names where it came from, for error messages.

    minijinja runs in a worker process (``_minijinja_worker.py``): in the harness process a Rust allocation
    failure would abort everything, and one instruction can run for seconds whatever the fuel. Each render
    gets ``limits.timeout`` seconds of CPU time, ``limits.max_output`` characters and ``limits.max_memory`` bytes."""

    source: str
    origin: str
    fuel: int = DEFAULT_FUEL
    jinja2_whitespace: bool = False  # trim_blocks + lstrip_blocks as HF sets them: a counterfactual, never TGI
    limits: Limits = field(default_factory=Limits)
    uses_tools: bool = field(init=False)
    _worker: list = field(init=False, repr=False, compare=False)  # [LineProcess | None, pid, lock]

    def __post_init__(self) -> None:
        if len(self.source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"template={self.origin!r}: the template is {len(self.source):,} characters, over the "
                                f"{mib(MAX_TEMPLATE_CHARS)} cap on template size (real chat templates are < 50 KB)")
        object.__setattr__(self, "_worker", [None, 0, threading.Lock()])
        head = self._start()
        object.__setattr__(self, "uses_tools", bool(head.get("uses_tools")))

    def _start(self) -> dict[str, Any]:
        io = LineProcess([sys.executable, "-I", str(Path(__file__).with_name("_minijinja_worker.py"))], self.limits)
        self._worker[:2] = [io, os.getpid()]
        head = self._exchange("compiling", json.dumps({
            "source": tgi_source(self.source), "fuel": self.fuel, "whitespace": self.jinja2_whitespace,
            "now": PINNED_NOW.isoformat(), "max_output": self.limits.max_output, "max_memory": self.limits.max_memory,
            "remove_filters": list(_EXTRA_FILTERS), "remove_globals": list(_EXTRA_GLOBALS)}))
        if "error" in head:
            io.close()
            self._worker[0] = None
            err = head["error"]
            raise TemplateError(
                f"template={self.origin!r}: minijinja syntax error at line {err.get('line')}: {err.get('message')}; "
                "TGI would fail to start with it. Fix the template (it must compile with minijinja, not only jinja2)")
        return head  # the worker capped its own address space before compiling

    def _exchange(self, what: str, line: str) -> dict[str, Any]:
        io = self._worker[0]
        try:
            return io.exchange([line])[0]
        except ProcessDied as died:
            self._worker[0] = None
            if died.killed:
                raise TemplateError(
                    f"template={self.origin!r}: {what} ran past the {self.limits.timeout:g} s CPU-time limit (an "
                    "endless or huge loop, or one huge operation?); fix the template, or raise the limit with "
                    "timeout=SECONDS in the spec") from None
            if died.out_of_memory:
                raise TemplateError(
                    f"template={self.origin!r}: {what} needed more than the {mib(self.limits.max_memory)} memory "
                    "cap (a template that builds huge strings or lists?); fix the template, or raise the cap with "
                    "max_memory=MIB in the spec") from None
            first = died.stderr.strip().splitlines()[-1][:200] if died.stderr.strip() else f"exit {died.returncode}"
            raise TemplateError(f"template={self.origin!r}: the minijinja worker stopped unexpectedly ({first})"
                                ) from None

    def render(self, side: str, **context: Any) -> str:
        line = json.dumps({"context": context}, ensure_ascii=False)
        with self._worker[2]:
            if self._worker[0] is None or self._worker[1] != os.getpid() or not self._worker[0].alive:
                self._start()
            reply = self._exchange("rendering", line)
        if "text" in reply:
            return reply["text"]
        err = reply["error"]
        kind = err["kind"]
        if kind == "raised":
            raise RenderRejected(side, f"raise_exception: {err['message']}")
        if kind == "fuel":
            raise TemplateError(
                f"template={self.origin!r}: rendering ran out of fuel ({self.fuel} instructions: an endless or "
                "huge loop?); fix the template's loops, or raise the limit with fuel=N in the spec")
        if kind == "output":
            raise TemplateError(output_message(self.origin, int(err["message"].split()[0]), self.limits))
        if kind == "recursion":
            raise TemplateError(f"template={self.origin!r}: infinite recursion while rendering; fix its macros")
        if kind == "memory":
            raise TemplateError(f"template={self.origin!r}: rendering needed more than the "
                                f"{mib(self.limits.max_memory)} memory cap; fix the template")
        raise RenderRejected(side, f"minijinja {err.get('mj_kind')}: {err['message']}")


@lru_cache(maxsize=32)
def compile_template(source: str, origin: str, fuel: int = DEFAULT_FUEL, jinja2_whitespace: bool = False,
                     limits: Limits | None = None) -> TGITemplate:
    return TGITemplate(source, origin, fuel, jinja2_whitespace, limits if limits is not None else Limits())


def _token_text(value: Any) -> str | None:
    """``TokenizerConfigToken``: a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _config_value(config: dict[str, Any], model_dir: Path | None) -> Any:
    """TGI's ``chat_template`` value: ``chat_template.json``'s first, else tokenizer_config.json's (str or list)."""
    value: Any = None
    if model_dir is not None and (model_dir / "chat_template.json").is_file():
        try:
            value = json.loads((model_dir / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            value = None
    return config.get("chat_template") if value is None else value


def config_template(config: dict[str, Any], model_dir: Path | None) -> str | None:
    """The template TGI takes from a model dir: ``chat_template.json`` first, else tokenizer_config.json's."""
    value = _config_value(config, model_dir)
    if isinstance(value, list):  # ChatTemplateVersions::Multiple: the one named "default", for every request
        value = next((t.get("template") for t in value if isinstance(t, dict) and t.get("name") == "default"), None)
    return value if isinstance(value, str) else None


def _no_default(config: dict[str, Any], model_dir: Path | None, spec: str, where: str) -> None:
    """Raise when the value is a named list without ``default``: TGI then starts with no chat template."""
    value = _config_value(config, model_dir)
    if isinstance(value, list):
        names = ", ".join(sorted(repr(t.get("name")) for t in value if isinstance(t, dict)))
        raise InputError(
            f"spec={spec!r}: {where} has a list of chat templates named {names or '(none)'} and none named 'default'; "
            "TGI takes only the 'default' entry (it never picks 'tool_use'), so it starts without a chat template "
            "and refuses every chat request. Add a 'default' entry, or pass the template as tgi:path/to/template.jinja")


def resolve_template(arg: str, tokenizer: "Tokenizer", spec: str) -> tuple[str, str]:
    """The template text and origin for ``tgi:.``, ``tgi:DIR`` or ``tgi:FILE``."""
    if arg == ".":
        config = dict(tokenizer.tokenizer_config)
        source = config_template(config, tokenizer.model_dir)
        if source is None:
            _no_default(config, tokenizer.model_dir, spec, repr(str(tokenizer.model_dir)))
            raise InputError(
                f"spec={spec!r}: TGI reads the chat template from tokenizer_config.json (or chat_template.json) and "
                f"{str(tokenizer.model_dir)!r} has none there (a chat_template.jinja alone is not read by TGI); put it "
                "into tokenizer_config.json, or pass the template as tgi:path/to/template.jinja")
        return source, f"{tokenizer.name}:tokenizer_config.chat_template"
    path = Path(arg).expanduser()
    if path.is_dir():
        config_path = path / "tokenizer_config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        except ValueError as exc:
            raise InputError(f"spec={spec!r}: {str(config_path)!r} is not valid JSON ({exc}); fix it") from None
        source = config_template(config, path)
        if source is None:
            _no_default(config, path, spec, repr(arg))
            raise InputError(f"spec={spec!r}: directory {arg!r} has no chat template in tokenizer_config.json or "
                             "chat_template.json; pass a .jinja file instead")
        return source, str(path)
    return read_template_file(path, f"spec={spec!r} template"), str(path)


def _sorted(value: Any) -> Any:
    """serde maps are BTreeMaps in TGI's build: give minijinja every mapping with its keys sorted."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _compact(value: Any) -> str:
    """``serde_json::to_string`` of a ``serde_json::Value`` (compact; keys sorted, as no preserve_order)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def tgi_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """``TextMessage`` dicts (keys sorted) TGI renders for ``conv`` before the tool prompt is appended."""
    return [m.memo("tgi", _tgi_message) for m in conv.messages]


def _tgi_message(message: "Message") -> dict[str, Any]:
    m = message.to_openai("request")
    content = m.get("content")
    if content is None:  # MessageBody::Tool: the calls, serialised by serde, become the content
        calls = [{"id": c["id"], "type": c["type"],
                  "function": {"description": None, "name": c["function"]["name"],
                               "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}}
                 for c in m.get("tool_calls") or ()]
        content = json.dumps(calls, ensure_ascii=False, separators=(",", ":"))
    return {"content": content, "role": m["role"]}


def tgi_tools(conv: "Conversation") -> list[dict[str, Any]] | None:
    """The tools TGI passes to the template (user tools + ``no_tool``), or None."""
    if not conv.tools:
        return None
    fns = [{"name": t.name, "description": t.description, "parameters": t.to_openai()["function"]["parameters"]}
           for t in conv.tools] + [NO_TOOL]
    return [{"function": {"arguments": _compact(f["parameters"]), "description": f["description"], "name": f["name"]},
             "type": "function"} for f in fns]


def _tools_json(tools: list[dict[str, Any]]) -> str:
    """``serde_json::to_string(&tools)`` in struct field order: type, function{description, name, arguments}."""
    return json.dumps([{"type": "function", "function": {"description": t["function"]["description"],
                                                          "name": t["function"]["name"],
                                                          "arguments": t["function"]["arguments"]}} for t in tools],
                      ensure_ascii=False, separators=(",", ":"))


class TGIRenderer(EngineRenderer):
    """Deploy side as TGI's router renders ``/v1/chat/completions`` requests (tokenised as the text is)."""

    def __init__(self, spec: str, tokenizer: "Tokenizer", template: TGITemplate,
                 extra_stops: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.template = template
        self.extra_stops = extra_stops
        config = tokenizer.tokenizer_config
        self._context = {"bos_token": _token_text(config.get("bos_token")),
                         "eos_token": _token_text(config.get("eos_token"))}

    @property
    def stop_ids(self) -> frozenset[int]:
        tok = self.tokenizer
        if isinstance(tok.generation_config.get("eos_token_id"), list):  # TGI: the list when there is one
            stops = set(tok.generation_eos_ids)
        else:
            stops = {tok.hf.eos_token_id} if tok.hf.eos_token_id is not None else set()
        return frozenset(stops | text_stop_ids(tok, self.extra_stops))

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = True) -> str:
        messages = list(tgi_messages(conv))
        tools = tgi_tools(conv)
        last = conv.messages[-1] if conv.messages else None
        if tools is not None and messages and last is not None and last.content is not None:
            extra = (f"\n---\n{TOOL_PROMPT}" if self.template.uses_tools
                     else f"\n---\n{_tools_json(tools)}\n{TOOL_PROMPT}")
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + extra}
        text = self.template.render(self.side, messages=messages, tools=_sorted(tools) if tools else None,
                                    add_generation_prompt=add_generation_prompt, **self._context)
        if messages and messages[-1]["role"] == "assistant":  # continue the final assistant message
            content = messages[-1]["content"]
            at = text.rfind(content)
            if at >= 0:
                text = text[:at + len(content)].rstrip()
        return text

    def describe(self) -> dict[str, Any]:
        import importlib.metadata as md

        import transformers

        return {
            "kind": "tgi", "spec": self.spec, "side": self.side, "engine": "tgi router (minijinja)",
            "template": self.template.origin, "template_sha256": sha256_text(self.template.source),
            "uses_tools": self.template.uses_tools, "add_special_tokens": False, "fuel": self.template.fuel,
            "stop_ids": sorted(self.stop_ids),
            "versions": {"minijinja": md.version("minijinja"), "transformers": transformers.__version__},
        }
