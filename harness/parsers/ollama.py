"""Ollama's output parsing for a Modelfile TEMPLATE without a built-in ``PARSER`` (``ollama`` parsers).

The parsing runs in the harness's Go helper (``renderers/ollama/go/toolparse.go``, ``thinkparse.go``,
``chatparse.go``): Ollama's ``tools`` and ``thinking`` packages re-expressed from ollama/ollama at commit
fb30760 (tag v0.33.0-rc2), and ``server/routes.go`` ChatHandler's loop over the runner's chunks. Rules:

- tool calls: the tag is the first text of the template's ``{{ if .ToolCalls }}`` block (cut at ``{``;
  ``{`` when there is none); after it, each call is the earliest (longest) name *of a requested tool* and the
  first balanced JSON object after that name, whose ``arguments``/``parameters`` are the arguments. Text
  before the tag is content; with a ``{``/``[`` tag, output that does not start with it is all content.
- per chunk the server keeps content over calls (a chunk returning both loses its calls), so the text is fed
  in the chunks the runner streams: one per token of the model's tokenizer (``token_chunks``).
- reasoning: only with thinking on and both tags inferred from the ``{{ .Thinking }}`` in the range over
  ``.Messages``; the opening tag must lead the output (whitespace aside), or be the prompt's last text.
- detokenisation: llama-server renders no special token except the tool-call tag it is told to preserve,
  so ``skip_special_tokens`` is True.
- arguments: decoded into Go maps, so numbers are float64 (``3.0`` comes back as ``3``) and the text has
  sorted keys (Ollama's own top-level key order is Go's random map order).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness.parsers.base import ParsedCall, ParsedOutput, ReasoningParser, ToolParser
from harness.limits import Limits
from harness.renderers.ollama.gorender import GoTemplate

if TYPE_CHECKING:
    from harness.conversation import Tool
    from harness.tokenizer import Tokenizer

OLLAMA_COMMIT = "fb3076099 (v0.33.0-rc2)"
UPSTREAM_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "parsers" / "ollama_upstream.json"


def token_chunks(tokenizer: "Tokenizer | None", text: str) -> list[str]:
    """``text`` cut where the tokenizer's tokens end (llama-server streams one piece per token; a token
    ending inside a character waits for the rest of it). Without a tokenizer: one chunk."""
    if tokenizer is None or not text:
        return [text] if text else []
    _, offsets = tokenizer.encode_offsets(text)
    cuts = sorted({end for _, end in offsets if 0 < end < len(text)})
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _calls(reply: dict[str, Any]) -> tuple[ParsedCall, ...]:
    out = []
    for c in reply.get("calls") or ():
        out.append(ParsedCall(c["name"], c["arguments"], json.loads(c["arguments"])))
    return tuple(out)


class OllamaChat:
    """One template's parsing as ChatHandler applies it; ``think`` is the request's ``think`` switch."""

    def __init__(self, go: GoTemplate, tokenizer: "Tokenizer | None", *, think: bool) -> None:
        self.go, self.tokenizer, self.think = go, tokenizer, think

    def run(self, text: str, tool_names: Sequence[str], *, prompt: str = "", think: bool | None = None,
            ) -> dict[str, Any]:
        """The Go helper's answer: calls, content, thinking, tag, open, close."""
        req = {"op": "chat", "chunks": token_chunks(self.tokenizer, text), "tools": list(tool_names),
               "think": self.think if think is None else think, "prompt": prompt}
        return self.go.ops([req])[0]

    @property
    def tags(self) -> dict[str, str]:
        got = self.go.ops([{"op": "parse_tag"}, {"op": "infer_tags"}])
        return {"tool_tag": got[0].get("tag", ""), "think_open": got[1].get("open", ""),
                "think_close": got[1].get("close", "")}


class OllamaToolParser(ToolParser):
    """Ollama's generic tool parser (``tools.Parser``) behind ChatHandler: after the thinking parser when
    thinking is on, per token chunk, content winning over calls within a chunk."""

    name = "ollama"
    skip_special_tokens = True
    keeps_argument_order = False  # history arguments are Go maps: the template prints them with sorted keys

    def __init__(self, chat: OllamaChat) -> None:
        self.chat = chat

    def parse(self, text: str, tools: Sequence["Tool"]) -> ParsedOutput:
        reply = self.chat.run(text, [t.name for t in tools])
        return ParsedOutput(_calls(reply), reply.get("content") or None)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ollama": OLLAMA_COMMIT, "think": self.chat.think, **self.chat.tags,
                "chunks": "tokens" if self.chat.tokenizer is not None else "whole text"}


class OllamaReasoningParser(ReasoningParser):
    """Ollama's ``thinking.Parser`` with the tags ``InferTags`` finds; ``prompt`` (optional) is the rendered
    prompt: when it ends with the opening tag, the parser starts inside the reasoning."""

    name = "ollama"
    skip_special_tokens = True

    def __init__(self, chat: OllamaChat, prompt: str = "") -> None:
        self.chat, self.prompt = chat, prompt

    def split(self, text: str) -> tuple[str | None, str | None]:
        reply = self.chat.run(text, (), prompt=self.prompt, think=True)
        return reply.get("thinking") or None, reply.get("content") or None

    def after(self, prompt: str) -> "OllamaReasoningParser":
        """The same parser for an answer that follows ``prompt``."""
        return OllamaReasoningParser(self.chat, prompt)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ollama": OLLAMA_COMMIT, **self.chat.tags}


# ---------------------------------------------------------------- fidelity: Ollama's own unit tests

@lru_cache(maxsize=1)
def upstream_cases() -> dict[str, Any]:
    """``fixtures/parsers/ollama_upstream.json``: Ollama's tools/ and thinking/ test cases as data."""
    return json.loads(UPSTREAM_FIXTURE.read_text(encoding="utf-8"))


def upstream_results() -> dict[str, list[tuple[str, bool, Any, Any]]]:
    """Per suite: (case name, agrees, what the port gives, what Ollama's test wants)."""
    procs: dict[str, GoTemplate] = {}

    def _go(template: str) -> GoTemplate:  # private processes, closed at the end
        if template not in procs:
            procs[template] = GoTemplate(template, "ollama upstream test template", 0, Limits())
        return procs[template]

    try:
        return _upstream_results(_go)
    finally:
        for p in procs.values():
            p.close()


def _upstream_results(_go: Callable[[str], GoTemplate]) -> dict[str, list[tuple[str, bool, Any, Any]]]:
    suites = upstream_cases()["suites"]
    plain = _go("{{ .Prompt }}")
    out: dict[str, list[tuple[str, bool, Any, Any]]] = {}

    def add(suite: str, name: str, got: Any, want: Any) -> None:
        out.setdefault(suite, []).append((name, got == want, got, want))

    s = suites["TestParser"]
    for c in s["cases"]:
        r = _go(c["template"]).ops([{"op": "tool_steps", "chunks": c["inputs"], "tools": s["tools"]}])[0]
        got = {"content": r["content"], "calls": [{"index": x["index"], "name": x["name"],
                                                   "arguments": json.loads(x["arguments"])} for x in r["calls"] or ()]}
        add("TestParser", c["name"], got, {"content": c["content"], "calls": c["calls"]})
    for c in suites["TestParseTag"]["cases"]:
        add("TestParseTag", c["name"], _go(c["template"]).ops([{"op": "parse_tag"}])[0].get("tag"), c["want"])
    for c in suites["TestInferThinkingTags"]["cases"]:
        r = _go(c["tmplString"]).ops([{"op": "infer_tags"}])[0]
        add("TestInferThinkingTags", c["desc"], [r.get("open", ""), r.get("close", "")],
            [c["wantOpeningTag"], c["wantClosingTag"]])
    ops = [("TestDone", lambda c: {"op": "done", "tag": c["tag"], "buffer": c["buffer"] or ""},
            lambda r: r["found"], lambda c: c["want"]),
           ("TestContent", lambda c: {"op": "content", "tag": c["tag"], "buffer": c["content"] or "", "n": c["n"]},
            lambda r: r["content"], lambda c: c["want"]),
           ("TestFindTag", lambda c: {"op": "find_tag", "tag": c["tag"], "buffer": c["buffer"] or ""},
            lambda r: [r["i"], r["found"]], lambda c: [c["i"], c["found"]]),
           ("TestFindArguments", lambda c: {"op": "find_arguments", "tool": c["tool"], "buffer": c["buffer"] or ""},
            lambda r: r.get("arguments"), lambda c: c["want"])]
    for suite, req, got, want in ops:
        cases = suites[suite]["cases"]
        for c, r in zip(cases, plain.ops([req(c) for c in cases])):
            add(suite, c["name"], got(r), want(c))
    s = suites["TestExtractThinking"]
    for i, c in enumerate(s["cases"]):
        r = plain.ops([{"op": "think_steps", "chunks": [c["in"]], "open": s["tags"][0], "close": s["tags"][1]}])[0]
        add("TestExtractThinking", f"case {i}", r["steps"][0][:2], [c["wantThink"], c["wantContent"]])
    s = suites["TestThinkingStreaming"]
    for c in s["cases"]:
        r = plain.ops([{"op": "think_steps", "chunks": [st["input"] for st in c["steps"]],
                        "open": s["tags"][0], "close": s["tags"][1]}])[0]
        add("TestThinkingStreaming", c["desc"], r["steps"],
            [[st["wantThinking"], st["wantContent"], st["wantStateAfter"]] for st in c["steps"]])
    return out


def upstream_agreement() -> list[tuple[str, int, int, str]]:
    """Rows (suite, cases, agree, notes) for the fidelity table: Ollama's own test cases through the port."""
    files = {k: v["file"] for k, v in upstream_cases()["suites"].items()}
    rows = []
    for suite, results in sorted(upstream_results().items()):
        bad = [name for name, ok, _, _ in results if not ok]
        rows.append((f"ollama {files[suite]}:{suite}", len(results), len(results) - len(bad),
                     "disagree: " + "; ".join(bad) if bad else ""))
    return rows


if __name__ == "__main__":  # python -m harness.parsers.ollama: the fidelity table
    for row in upstream_agreement():
        print("\t".join(str(x) for x in row))
