"""LLaMA-Factory's fixed slot templates as plain strings: what the Ollama and LMDeploy exporters translate.

A template is *fixed* when every formatter that shapes a tool-free conversation is a ``StringFormatter`` whose
slots hold ``{{content}}`` at most once and no other placeholder (``{{idx}}`` is refused), and the template is
not a ``ReasoningTemplate`` (those rewrite history: earlier answers lose their thoughts). The slot elements are
turned into text as LLaMA-Factory turns them into ids: a string as written, ``{"bos_token"}``/``{"eos_token"}``
as the (fixed-up) tokenizer's token, ``{"token": T}`` as ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.export.base import ExportRefused

if TYPE_CHECKING:
    from harness.renderers.llamafactory.renderer import LlamaFactoryRenderer

CONTENT = "{{content}}"


@dataclass(frozen=True)
class Wrap:
    """The text before and after ``{{content}}`` of one slot formatter."""

    before: str
    after: str


@dataclass(frozen=True)
class Slots:
    """A fixed LLaMA-Factory template as text: LLaMA-Factory renders turn 0 as ``prefix + system block (when
    ``system or default_system`` is non-empty) + user``, then ``user``/``assistant`` wraps per message."""

    name: str
    prefix: str
    system: Wrap
    user: Wrap
    assistant: Wrap
    default_system: str
    stop_words: tuple[str, ...]
    efficient_eos: bool
    eos_token: str


def _element_text(element: Any, hf: Any, where: str) -> str:
    if isinstance(element, str):
        return element
    if isinstance(element, set) and element <= {"bos_token", "eos_token"} and len(element) == 1:
        token = hf.bos_token if "bos_token" in element else hf.eos_token
        return token or ""
    if isinstance(element, dict) and set(element) == {"token"}:
        return str(element["token"])
    raise ExportRefused(f"{where}: slot element {element!r} has no text form; this exporter translates string "
                        "slots only")


def _wrap(formatter: Any, hf: Any, where: str, *, needs_content: bool = True) -> Wrap:
    if type(formatter).__name__ not in ("StringFormatter", "EmptyFormatter"):
        raise ExportRefused(f"{where} is a {type(formatter).__name__}, which computes its text in Python; the "
                            "target's fields hold fixed strings only")
    text = "".join(_element_text(e, hf, where) for e in formatter.slots)
    placeholders = text.count("{{")
    if text.count(CONTENT) > 1 or placeholders != text.count(CONTENT):
        raise ExportRefused(f"{where} slots {formatter.slots!r} use placeholders other than one {CONTENT} "
                            "(e.g. a turn counter {{idx}}); the target's fields hold fixed strings only")
    if CONTENT not in text:
        if needs_content:
            raise ExportRefused(f"{where} slots {formatter.slots!r} have no {CONTENT}")
        return Wrap(text, "")
    before, after = text.split(CONTENT)
    return Wrap(before, after)


def read_slots(renderer: "LlamaFactoryRenderer", what: str) -> Slots:
    """The slots of ``renderer``'s fixed-up template; ExportRefused naming the feature ``what`` cannot express."""
    t, hf, name = renderer.template, renderer.hf, renderer.template_name
    where = f"LLaMA-Factory template {name!r}"
    if type(t).__name__ == "ReasoningTemplate":
        raise ExportRefused(f"{where} is a reasoning template: it writes thoughts into answers and strips them from "
                            f"earlier answers (history rewriting), which {what} cannot express; export --to jinja "
                            "instead (LLaMA-Factory's own template, verified like every export)")
    prefix = "".join(_element_text(e, hf, f"{where} format_prefix") for e in t.format_prefix.slots)
    return Slots(
        name=str(name), prefix=prefix,
        system=_wrap(t.format_system, hf, f"{where} format_system"),
        user=_wrap(t.format_user, hf, f"{where} format_user"),
        assistant=_wrap(t.format_assistant, hf, f"{where} format_assistant"),
        default_system=t.default_system or "", stop_words=tuple(t.stop_words or ()),
        efficient_eos=bool(t.efficient_eos), eos_token=hf.eos_token or "")


def check_tools(slots: Slots, tools: str, what: str) -> None:
    """LLaMA-Factory renders tool definitions into the system block (in Python, with json.dumps) and tool calls
    with a FunctionFormatter (every template has both): refuse unless the user verifies and serves tool-free
    conversations."""
    if tools != "off":
        raise ExportRefused(f"LLaMA-Factory template {slots.name!r} renders tool definitions and tool calls in "
                            f"Python (json.dumps into the system block), which {what} cannot express; if your "
                            "training data and requests have no tools, pass --tools off to export (and verify) "
                            "for tool-free conversations")
