"""Answer spans on every zoo template, history rewriting included (tools and reasoning on).

The oracle is independent of how ``jinja:`` finds answers: per template it knows the text an answer
follows, the text that starts the next message, the end-of-turn marker, and what the template keeps of an
answer in the whole rendering (content, reasoning, tool calls). Each answer span must start right after an
answer header, end right before the next message (or the end), end with the end-of-turn marker, hold the
message's kept content, reasoning and tool calls, and hold no header or marker its own texts do not bring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pytest

from harness.api import load_model, make_pair
from harness.conversation import Conversation, Message
from harness.errors import RenderRejected
from harness.generate import generate

pytestmark = pytest.mark.real_tokenizer

QWEN_THINK = "<think>\n{}\n</think>"
#: Text templates write inside answers: a next message made of it proves nothing when found in a span.
ANSWER_TEMPLATE_TEXT = ("<think>\n\n</think>\n\n", "<tool_call>\n{\"name\": \"", "\"}\n</tool_call>", "[TOOL_CALLS] [")


def _never(conv: Conversation, k: int) -> bool:
    return False


def _qwen3_keeps(conv: Conversation, k: int) -> bool:
    """Qwen3: reasoning stays on answers after the last real user query (on the last one, even empty)."""
    last_query = len(conv.messages) - 1
    for i in range(len(conv.messages) - 1, -1, -1):
        c = conv.messages[i].content or ""
        if conv.messages[i].role == "user" and not (c.startswith("<tool_response>") and c.endswith("</tool_response>")):
            last_query = i
            break
    return k > last_query and (k == len(conv.messages) - 1 or bool(conv.messages[k].reasoning))


def _r1_content(m: Message) -> str:
    content = m.content or ""
    return content.split("</think>")[-1] if "</think>" in content else content


def _qwen3_content(m: Message) -> str:
    """Qwen3 without reasoning_content takes the text after ``</think>`` in the content as the content."""
    content = m.content or ""
    return content.split("</think>")[-1].lstrip("\n") if m.reasoning is None and "</think>" in content else content


@dataclass(frozen=True)
class Shape:
    """What one template does around and to an answer in the whole rendering."""

    before: tuple[str, ...]  # an answer starts right after one of these
    after: tuple[str, ...]  # the next message starts with one of these (or the text ends)
    end: str | None  # the answer ends with this (None: the template writes no end marker)
    calls: bool  # tool calls are rendered
    content_with_calls: bool = True  # content is kept on a tool-call turn
    empty_dropped: bool = False  # an answer with empty content is not rendered at all
    reasoning: Callable[[Conversation, int], bool] = _never
    content: Callable[[Message], str] = lambda m: m.content or ""


_QWEN = dict(before=("<|im_start|>assistant\n",), after=("<|im_start|>",), end="<|im_end|>\n", calls=True)
_DEEPSEEK = dict(before=("<｜Assistant｜>", "<｜tool▁outputs▁end｜>"),
                 after=("<｜User｜>", "<｜tool▁outputs▁begin｜>", "<｜Assistant｜>", "<｜tool▁output▁begin｜>",
                        "\n<｜tool▁output▁begin｜>"), end="<｜end▁of▁sentence｜>",
                 calls=False)
SHAPES: dict[str, Shape] = {
    "qwen2.5": Shape(**_QWEN),
    "qwen3": Shape(**_QWEN, reasoning=_qwen3_keeps, content=_qwen3_content),
    "qwen3-alt": Shape(**_QWEN, reasoning=_qwen3_keeps, content=_qwen3_content),
    "glm4": Shape(before=("<|assistant|>",), after=("<|user|>", "<|assistant|>", "<|observation|>", "<|tool|>"),
                  end=None, calls=False, empty_dropped=True),
    "deepseek-v3": Shape(**_DEEPSEEK),
    "deepseek-r1": Shape(**{**_DEEPSEEK, "calls": True}, content=_r1_content),
    "deepseek-r1-distill-qwen": Shape(**_DEEPSEEK, content=_r1_content),
    "llama3": Shape(before=("<|start_header_id|>assistant<|end_header_id|>\n\n",), after=("<|start_header_id|>",),
                    end="<|eot_id|>", calls=True, content_with_calls=False),
    "mistral-v3": Shape(before=("[/INST]", "[/TOOL_RESULTS]"), after=("[INST]", "[TOOL_RESULTS]", "[AVAILABLE_TOOLS]"),
                        end="</s>", calls=True, content_with_calls=False),
}


def _own_texts(m: Message) -> list[str]:
    return [m.content or "", m.reasoning or "", *(json.dumps(dict(_thaw(c.arguments)), ensure_ascii=False)
                                                 for c in m.tool_calls), *(c.name for c in m.tool_calls)]


def _thaw(value):
    from harness.conversation import thaw

    return thaw(value)


def span_problems(shape: Shape, conv: Conversation, full: str, ranges) -> list[str]:
    """Every way the spans in ``ranges`` break the oracle (empty: all right)."""
    out: list[str] = []
    prev_end = 0
    for k, s, e, _ in ranges:
        m = conv.messages[k]
        span = full[s:e]
        where = f"messages[{k}] span {s}:{e} {span[:80]!r}…"
        if s < prev_end or e < s:
            out.append(f"{where}: overlaps the previous answer or is reversed")
        prev_end = e
        content = shape.content(m)
        rendered = (not m.tool_calls or shape.content_with_calls or not shape.calls)
        if shape.empty_dropped and not content:
            if s != e:
                out.append(f"{where}: the template drops an empty answer, the span must be empty")
            continue
        if not any(full.endswith(b, 0, s) for b in shape.before):
            out.append(f"{where}: does not start right after an answer header {shape.before}")
        if e != len(full) and not any(full.startswith(a, e) for a in shape.after):
            out.append(f"{where}: does not end right before the next message {shape.after}: {full[e:e + 40]!r}")
        if shape.end is not None and not span.endswith(shape.end):
            out.append(f"{where}: does not end with the end-of-turn marker {shape.end!r}")
        if rendered and content.strip() and content.strip() not in span:
            out.append(f"{where}: does not hold its content")
        if shape.calls:
            for call in m.tool_calls:
                args = json.dumps(_thaw(call.arguments), ensure_ascii=False)
                if call.name not in span or args not in span:
                    out.append(f"{where}: does not hold tool call {call.name} {args}")
        if m.reasoning is not None:
            block = QWEN_THINK.format(m.reasoning.strip("\n"))
            kept = shape.reasoning(conv, k)
            if kept and block not in span:
                out.append(f"{where}: the template keeps this answer's reasoning, the span lacks it")
            if not kept and shape.reasoning is not _never and block in span:
                out.append(f"{where}: holds reasoning the whole rendering drops")
        own = _own_texts(m)
        markers = {x.strip() for x in (*shape.before, *shape.after, shape.end or "")} - {""}
        for marker in markers:
            allowed = sum(t.count(marker) for t in own) + (marker == (shape.end or "").strip())
            if span.count(marker) > allowed:
                out.append(f"{where}: holds {marker!r} {span.count(marker)}x, its own texts bring {allowed}")
        if k + 1 < len(conv.messages):
            nxt = (conv.messages[k + 1].content or "").strip()
            if (len(nxt) >= 4 and nxt in span and not any(nxt in t for t in own)
                    and not any(nxt in x for x in (*markers, *ANSWER_TEMPLATE_TEXT))):
                out.append(f"{where}: holds the next message's text {nxt[:40]!r}")
    return out


@pytest.fixture(scope="module", params=list(SHAPES))
def model_pair(request):
    return request.param, make_pair(load_model(model=request.param), "jinja:.", "hf:.")


#: Texts as a shrinker leaves them: empty, repeated, or template text — answers equal to each other and to
#: their end markers, user texts that look like headers.
TINY_TEXTS = ("", "", "a", "a", "\n", " ", "<think>", "</think>", "</s>", "[/INST]", "<|im_end|>\n",
              "<|im_start|>assistant\n", "x[/INST] </s>", "\n\n", "<｜end▁of▁sentence｜>", "<|assistant|>")


def _tiny(rng) -> str:
    return TINY_TEXTS[int(rng.random() * len(TINY_TEXTS))]


def test_answer_spans_hold_exactly_each_answer(model_pair):
    """Tools and reasoning on: every answer span holds its rendered answer and nothing of the next message,
    on generated (hostile) texts and on shrunk-looking ones."""
    name, pair = model_pair
    shape, train = SHAPES[name], pair.train
    n = 300 if name == "deepseek-r1" else 100  # R1's template refuses tool-call arguments as objects
    sweeps = {"generated": generate(n, seed=11, tools=True, reasoning=True, max_turns=3),
              "tiny texts": generate(n // 2, seed=12, tools="any", reasoning="any", texts=_tiny)}
    checked, problems = 0, []
    for label, convs in sweeps.items():
        for i, conv in enumerate(convs):
            try:
                result = train._text(conv, False)
            except RenderRejected:
                continue
            ranges = train.answer_ranges(conv, result.text, result.generation)
            checked += len(ranges)
            problems += [f"{label} {i}: {p}" for p in span_problems(shape, conv, result.text, ranges)]
    assert checked >= 100, f"{name}: only {checked} answers rendered"
    assert not problems, f"{name}: {len(problems)} problems in {checked} spans:\n" + "\n".join(problems[:8])


def test_mistral_stop_words_warns_only_on_answers_that_hold_the_stop_text():
    """Mistral v3 with tools: stop-words warns about an answer trained to emit ``</s>`` inside it only when
    the answer's own text holds ``</s>`` (not because its span ran over the rest of the conversation)."""
    from harness.checks.stopwords import stop_words

    pair = make_pair(load_model(model="mistral-v3"), "jinja:.", "hf:.")
    warned = 0
    for conv in generate(120, seed=3, tools=True):
        case = pair.case(conv)
        try:
            failure = stop_words(case)
        except RenderRejected:
            continue
        if failure is not None:
            warned += 1
            assert any("</s>" in t for t in _own_texts(conv.messages[failure.message])), (
                failure.explanation, conv.to_json())
    assert warned <= 3


def test_place_puts_equal_answers_in_their_own_turns():
    """Answers are placed last to first: an answer equal to a later one (shrunk texts) stays in its turn."""
    from harness.renderers._spans import place

    # Mistral v3 with tools, no system: the whole rendering lists the tools before the last user turn only
    full = "<s>[INST] [/INST] </s>[AVAILABLE_TOOLS] [t][/AVAILABLE_TOOLS][INST] [/INST] </s>"
    last = place("<s>[INST] [/INST] </s>[AVAILABLE_TOOLS] [t][/AVAILABLE_TOOLS][INST] [/INST]", " </s>", full,
                 len(full))
    assert last == (len(full) - 5, len(full))
    first = place("<s>[AVAILABLE_TOOLS] [t][/AVAILABLE_TOOLS][INST] [/INST]", " </s>", full, last[0])
    assert first == (17, 22)
    # a later user text ending like the header does not end the answer: the next answer bounds it
    assert place("[INST] u[/INST]", " a</s>", "[INST] u[/INST] a</s>[INST] u[/INST] a</s>", 36) == (15, 21)


def test_answer_start_stops_at_a_token_border_of_the_generation_prompt():
    """DeepSeek-R1: the generation prompt opens ``<think>``, the answer never repeats it; an answer whose
    text begins with ``<`` must not start inside that prompt's ``<think>`` token."""
    from harness.renderers._spans import answer_start

    history, gen = "<｜User｜>hi", "<｜Assistant｜><think>\n"
    cuts = lambda g: (0, len("<｜Assistant｜>"), len("<｜Assistant｜><think>"), len(g))  # noqa: E731
    eos = "<｜end▁of▁sentence｜>"
    done = history + "<｜Assistant｜>" + eos
    assert answer_start(done, history + gen, history, (), None, cuts) == len(history + "<｜Assistant｜>")
    done = history + "<｜Assistant｜><think>x" + eos  # the content itself starts like the prompt
    assert answer_start(done, history + gen, history, ("<think>x",), None, cuts) == len(history + "<｜Assistant｜>")
