"""``tool-roundtrip`` and ``reasoning-roundtrip``: what the model was trained to emit is what the server parses back.

The emitted text of a trained answer (assistant message with loss) is its trained ids (``label_stream``, with
an efficient_eos follow-up label) up to the first id the deploy side stops on — the engine stops there and
does not return it — decoded as the engine decodes output for its parser (the parser's
``skip_special_tokens``; vLLM's detokenizer is the tokenizer's own ``decode`` stream, no clean-up of spaces).

``tool-roundtrip`` (skipped when the deploy side has no tool parser; not applicable to a conversation offering
no tools). With a reasoning parser configured, the tool parser reads the content the reasoning parser leaves,
as vLLM's chat server does. Rule: ``deploy.tool_parser.parse(text, conv.tools)`` gives back the message's
``tool_calls`` — names, arguments as objects (numbers by value: JSON has one number type and Ollama returns
``3.0`` as ``3``; a number returned as a string is a difference), order and count —
compared with ``deepdiff.DeepDiff`` on ``{"function": {"name", "arguments"}}`` lists, differences reported
as paths (``tool_calls[1].function.arguments.unit``); the argument KEY ORDER of each object too (the client
replays the returned arguments: re-ordered keys re-render differently), cause ``tool-arguments-order`` — not for
an engine whose prompt re-orders replayed arguments itself (``ToolParser.keeps_argument_order``: Ollama's Go
maps print sorted keys, a prompt difference the ``tools`` check reports).
An answer without calls must parse to no calls. Content: what the parser leaves equals the message's content
under the WHITESPACE RULE: ``None`` == ``""`` and leading/trailing whitespace is ignored (templates frame calls
with newlines, vLLM's hermes keeps ``"text\\n"``); any other difference is ``tool-content`` (not judged when the
reasoning parser already split the text wrongly: that is reasoning-roundtrip's finding). The trained side is
taken as the tokenizer can write it: its Unicode normal form (Qwen's NFC) applied to every string first.

``reasoning-roundtrip`` (skipped when the deploy side has no reasoning parser). Rule: for every trained answer,
``deploy.reasoning_parser.split(text)`` gives back the message's reasoning — when the emitted text holds it;
when the training template dropped it, the expected reasoning is none — and, for an answer without calls, its
content, both under the whitespace rule. Text the parser returns entirely as reasoning (deepseek_r1 on an
answer trained without ``</think>``) is ``reasoning-swallowed``; any other difference ``reasoning-split``.

Both: a parser that raises on the emitted text is ``parser-crashed`` (the server answers HTTP 500). A finding
on an answer whose own strings hold control-token text (``<tool_call>``, ``</think>``, a stop
token: the model was trained to emit that control token mid-answer) is a warning, cause ``answer-control-text``
— data-dependent, like ``user-control-text``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import TYPE_CHECKING, Any, Iterator


from harness.checks.base import Case, Check, Failure, NotApplicable, Skip, label_stream
from harness.conversation import thaw
from harness.parsers.vllm import ParserCrashed

if TYPE_CHECKING:
    from harness.conversation import Message
    from harness.parsers.base import ParsedOutput
    from harness.renderers.base import Answer

#: cause → coarse ``where`` (conversations fall into one class whatever the call index or argument key)
_WHERE = {"tool-call-dropped": "tool_calls[*]", "tool-call-spurious": "tool_calls[*]",
          "tool-call-name": "tool_calls[*].function.name", "tool-arguments": "tool_calls[*].function.arguments",
          "tool-arguments-order": "tool_calls[*].function.arguments (key order)", "tool-content": "assistant.content"}
_SHOWN = 400  # chars of emitted text an explanation quotes


def emitted_ids(case: Case, ans: "Answer") -> list[int]:
    """The ids the model was trained to emit for ``ans``, up to (without) the first deploy stop id."""
    stops = case.pair.deploy.stop_ids
    out = []
    for _, token, _ in label_stream(case.train, ans):
        if token in stops:
            break
        out.append(token)
    return out


def emitted_text(case: Case, ans: "Answer", skip_special_tokens: bool) -> str:
    """``emitted_ids`` decoded as the engine decodes output (ids past the shared vocab are dropped)."""
    tok = case.pair.tokenizer
    size = tok.raw.get_vocab_size(with_added_tokens=True)
    return str(tok.raw.decode([i for i in emitted_ids(case, ans) if i < size], skip_special_tokens=skip_special_tokens))


def unicode_form(case: Case) -> str | None:
    """The Unicode normal form the tokenizer's normalizer applies (``NFC``…; None: none): the model cannot
    emit text outside it, so trained values are compared in it."""
    found = re.search(r"\bNFK?[CD]\b", str(case.pair.tokenizer.raw.normalizer))
    return found.group() if found else None


def normal(value: Any, form: str | None) -> Any:
    """``value`` with every string (and object key) in normal form ``form``."""
    if form is None:
        return value
    if isinstance(value, str):
        return unicodedata.normalize(form, value)  # type: ignore[arg-type]
    if isinstance(value, dict):
        return {normal(k, form): normal(v, form) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v, form) for v in value]
    return value


def control_text(case: Case, message: "Message") -> list[str]:
    """Added-token texts (``<tool_call>``, ``</think>``, ``<|im_end|>``…) inside the message's own strings: the
    model is trained to emit those control tokens mid-answer, where parsers and stops key on them."""
    blob = "\n".join([message.content or "", message.reasoning or "",
                      *(c.name + json.dumps(thaw(c.arguments), ensure_ascii=False) for c in message.tool_calls)])
    return sorted(t for t in case.pair.tokenizer.added_tokens if t in blob)


def _failure(check: str, case: Case, message: int, cause: str, where: str, explanation: str,
             control: list[str], tokens: dict[str, Any]) -> Failure:
    """An error; a warning (cause ``answer-control-text``) when the answer's own text holds control-token text."""
    if control:
        return Failure(check, "warning", f"{explanation} — the answer's own text holds control-token text "
                       f"{', '.join(map(repr, control))}, which the parser or the stop keys on ({cause})",
                       case.conv, message=message, cause="answer-control-text", where=where,
                       tokens={**tokens, "control_text": control})
    return Failure(check, "error", explanation, case.conv, message=message, cause=cause, where=where, tokens=tokens)


def trained_reasoning(message: "Message", text: str, form: str | None) -> str | None:
    """The reasoning the model was trained to emit: the message's, when the emitted text holds it (a template
    may drop it, e.g. in history turns), else none."""
    trained = normal(message.reasoning or "", form).strip()
    return trained if trained and trained in text else None


def _crashed(check: str, case: Case, message: int, text: str, exc: Exception) -> Failure:
    return _failure(check, case, message, "parser-crashed", "parser",
                    f"answer messages[{message}]: the server's parser raises on the text the model was trained to "
                    f"emit, {_show(text)}: {exc}", control_text(case, case.conv.messages[message]),
                    {"emitted": text, "error": str(exc)})


def same_text(a: str | None, b: str | None) -> bool:
    """The whitespace rule: None == "" and leading/trailing whitespace does not count."""
    return (a or "").strip() == (b or "").strip()


def _answers(case: Case) -> Iterator[tuple["Answer", "Message"]]:
    cut = case.train.extra.get("cut_answers", ())  # cut short by the training cut-off: no real end
    for ans in case.train.answers:
        if ans.message not in cut:
            yield ans, case.conv.messages[ans.message]


def _show(text: str | None) -> str:
    if text is None:
        return "None"
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"… ({len(text)} chars)"


# --- tool-roundtrip ---

def path_of(deep: str) -> str:
    """A deepdiff path (``root[0]['function']['arguments']['unit']``) as ``tool_calls[0].function.arguments.unit``."""
    from deepdiff.path import parse_path

    return "tool_calls" + "".join(_step(part) for part in parse_path(deep))


def _step(part: Any) -> str:
    """One path step: ``[2]`` for an index, ``.unit`` for a plain key, ``["a b"]`` for any other key."""
    if isinstance(part, int):
        return f"[{part}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
        return f".{part}"
    return f"[{json.dumps(part, ensure_ascii=False)}]"


def expected_calls(message: "Message") -> list[dict[str, Any]]:
    return [{"function": {"name": c.name, "arguments": thaw(c.arguments)}} for c in message.tool_calls]


def parsed_calls(out: "ParsedOutput") -> list[dict[str, Any]]:
    """The calls as a client reads them: ``arguments`` decoded from the returned JSON string (key order kept;
    a string that is not JSON stays a string)."""
    calls = []
    for c in out.calls:
        try:
            args = json.loads(c.arguments_text)
        except (TypeError, ValueError):
            args = c.arguments_text
        calls.append({"function": {"name": c.name, "arguments": args}})
    return calls


def order_paths(want: Any, got: Any, path: str) -> list[str]:
    """Paths of objects whose keys are equal as sets but come in another order (values compared equal)."""
    if isinstance(want, dict) and isinstance(got, dict):
        here = [path] if set(want) == set(got) and list(want) != list(got) else []
        return here + [p for k in want if k in got for p in order_paths(want[k], got[k], path + _step(k))]
    if isinstance(want, list) and isinstance(got, list):
        return [p for i, (a, b) in enumerate(zip(want, got)) for p in order_paths(a, b, path + _step(i))]
    return []


def call_differences(want: list[dict[str, Any]], got: list[dict[str, Any]], *, order: bool = True,
                     ) -> tuple[str, list[str]] | None:
    """``(cause, paths)`` for the calls a parser returned vs the trained ones, None when they agree."""
    from deepdiff import DeepDiff  # imports pandas when installed (~1 s): only when a round trip runs

    diff = DeepDiff(want, got, verbose_level=2, ignore_numeric_type_changes=True)
    paths = [path_of(p) for p in diff.affected_paths]
    if len(got) != len(want):
        lo, hi = sorted((len(got), len(want)))
        ends = [f"tool_calls[{i}]" for i in range(lo, hi)]
        what = "missing" if len(got) < len(want) else "added"
        return ("tool-call-dropped" if what == "missing" else "tool-call-spurious",
                [f"{p} {what}" for p in ends] + [p for p in paths if p not in ends])
    if paths:
        cause = "tool-call-name" if any(p.endswith(".function.name") for p in paths) else "tool-arguments"
        return cause, paths
    if not order:
        return None
    order_at = [p for i, (a, b) in enumerate(zip(want, got))
                for p in order_paths(a["function"]["arguments"], b["function"]["arguments"],
                                     f"tool_calls[{i}].function.arguments")]
    return ("tool-arguments-order", order_at) if order_at else None


def tool_roundtrip(case: Case) -> Failure | None:
    deploy = case.pair.deploy
    parser = deploy.tool_parser
    if parser is None:
        raise Skip("the deploy side has no tool parser (vLLM --tool-call-parser); add tool_parser=NAME to the "
                   "deploy spec, e.g. hf:.,tool_parser=hermes")
    conv = case.conv
    if not conv.tools:
        raise NotApplicable("the conversation offers no tools")
    answers = list(_answers(case))
    if not answers:
        raise NotApplicable("training puts loss on no answer of the conversation")
    thinker = deploy.reasoning_parser
    form = unicode_form(case)
    for ans, message in answers:
        text = emitted_text(case, ans, parser.skip_special_tokens)
        fed, split_ok = text, True
        if thinker is not None:
            try:
                reasoning, rest = thinker.split(text)
            except ParserCrashed as exc:
                return _crashed("tool-roundtrip", case, ans.message, text, exc)
            fed, split_ok = rest or "", same_text(reasoning, trained_reasoning(message, text, form))
        try:
            out = parser.parse(fed, conv.tools)
        except ParserCrashed as exc:
            return _crashed("tool-roundtrip", case, ans.message, fed, exc)
        want, got, content = normal(expected_calls(message), form), parsed_calls(out), normal(message.content, form)
        found = call_differences(want, got, order=parser.keeps_argument_order)
        if found is not None and not split_ok:
            found = found[0], [*found[1], f"the reasoning parser {thinker.name} split the text wrongly first "
                               "(see reasoning-roundtrip)"]
        if found is None and split_ok and not same_text(out.content, content):
            note = (" (no reasoning parser is configured: the trained reasoning comes back in the content; add "
                    "reasoning_parser=NAME to the deploy spec)") if message.reasoning and thinker is None else ""
            found = "tool-content", [f"content: trained {_show(content)}, parsed {_show(out.content)}{note}"]
        if found is None:
            continue
        cause, paths = found
        return _failure("tool-roundtrip", case, ans.message, cause, _WHERE[cause],
                        f"answer messages[{ans.message}]: the text the model was trained to emit, {_show(fed)}, "
                        f"comes back from {parser.name} as {len(got)} call(s) where training has {len(want)} "
                        f"({cause}): {'; '.join(paths)}", control_text(case, message),
                        {"parser": parser.describe(), "emitted": fed, "paths": paths, "trained_calls": want,
                         "parsed_calls": got, "trained_content": content, "parsed_content": out.content})
    return None


# --- reasoning-roundtrip ---

def reasoning_roundtrip(case: Case) -> Failure | None:
    parser = case.pair.deploy.reasoning_parser
    if parser is None:
        raise Skip("the deploy side has no reasoning parser (vLLM --reasoning-parser); add reasoning_parser=NAME "
                   "to the deploy spec, e.g. hf:.,reasoning_parser=qwen3")
    answers = list(_answers(case))
    if not answers:
        raise NotApplicable("training puts loss on no answer of the conversation")
    form = unicode_form(case)
    for ans, message in answers:
        text = emitted_text(case, ans, parser.skip_special_tokens)
        try:
            reasoning, content = parser.split(text)
        except ParserCrashed as exc:
            return _crashed("reasoning-roundtrip", case, ans.message, text, exc)
        want = trained_reasoning(message, text, form)
        trained = normal(message.reasoning or "", form).strip()
        problems = []
        if not same_text(reasoning, want):
            problems.append(f"reasoning: trained {_show(want)}, parsed {_show(reasoning)}")
        expected = normal(message.content, form)
        if not message.tool_calls and not same_text(content, expected):
            problems.append(f"content: trained {_show(expected)}, parsed {_show(content)}")
        if not problems:
            continue
        swallowed = not content and not same_text(reasoning, want) and same_text(reasoning, text)
        cause = "reasoning-swallowed" if swallowed else "reasoning-split"
        dropped = " (the training template drops this answer's reasoning)" if trained and want is None else ""
        return _failure("reasoning-roundtrip", case, ans.message, cause,
                        "assistant.reasoning" if not same_text(reasoning, want) else "assistant.content",
                        f"answer messages[{ans.message}]: the text the model was trained to emit, {_show(text)}"
                        f"{dropped}, is split by {parser.name} differently ({cause}): {'; '.join(problems)}",
                        control_text(case, message),
                        {"parser": parser.describe(), "emitted": text, "paths": problems, "trained_reasoning": want,
                         "parsed_reasoning": reasoning, "trained_content": expected, "parsed_content": content})
    return None


CHECKS = (
    Check("tool-roundtrip", tool_roundtrip, "the deploy tool parser gives back the trained calls from the trained text"),
    Check("reasoning-roundtrip", reasoning_roundtrip,
          "the deploy reasoning parser splits the trained text into the trained reasoning and content"),
)
