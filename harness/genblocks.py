"""Derive the ``{% generation %}`` training variant of a chat template by a small source transformation.

TRL and transformers train only on ``{% generation %}`` blocks (``return_assistant_tokens_mask``), but
most chat templates have none. :func:`generation_variant` adds them without touching what the template
writes: the body ``B`` of every loop over the messages (``{% for m in messages %}`` or ``loop_messages``)
that writes text becomes

    {% if m['role'] == 'assistant' %}{% generation %}B{% endgeneration %}{% else %}B{% endif %}

so each assistant message's whole rendering (role header, reasoning, content, tool calls, end-of-turn
text) is one generation block, and every other message renders exactly as before. The inserted tags copy
the whitespace control (``-``/``+``) of the tags they sit next to, so ``trim_blocks``/``lstrip_blocks``
strip the same whitespace. The block starts *before* the end of the served generation prompt (the header
is trained too), which is what TRL's own training templates do (``qwen2_5_training.jinja`` opens it on the
``\\n`` after ``<|im_start|>assistant``).

>>> generation_variant("{% for m in messages %}{{ m.content }}{% endfor %}")
"{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

__all__ = ["GenerationVariantError", "generation_variant"]

#: Iterables that hold the conversation's messages in the templates we know.
_MESSAGE_LISTS = ("messages", "loop_messages")
#: Block tags that open a body closed by ``end<tag>`` (``set`` only in its block form, without ``=``).
_OPENERS = {"for", "if", "macro", "call", "filter", "raw", "generation", "with", "autoescape", "block", "trans"}


class GenerationVariantError(ValueError):
    """The template has no loop over its messages that writes text: no variant can be derived."""


@dataclass
class _Tag:
    """One ``{% … %}`` tag: source span, name, the rest of its tokens, whitespace modifiers."""

    start: int
    end: int
    name: str
    words: list[tuple[str, str]]
    left: str  # "-", "+" or ""
    right: str


def _tags(source: str) -> list[_Tag]:
    """Every block tag of ``source`` with its char span (tokens found in order by jinja2's own lexer)."""
    lexer = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"]).lexer
    tags: list[_Tag] = []
    pos, current = 0, None
    for _, kind, value in lexer.tokeniter(source, None):
        if not value:
            continue
        at = source.find(value, pos)
        if at < 0:
            raise GenerationVariantError(f"cannot locate token {value!r} in the template source")
        pos = at + len(value)
        if kind == "block_begin":
            current = _Tag(at, -1, "", [], value.strip()[2:].strip(), "")
        elif kind == "block_end" and current is not None:
            current.end, current.right = pos, value.strip()[:-2].strip()
            tags.append(current)
            current = None
        elif current is not None and kind != "whitespace":
            if not current.name and kind == "name":
                current.name = value
            else:
                current.words.append((kind, value))
    return tags


@dataclass
class _Loop:
    head: _Tag
    close: _Tag  # the tag that ends the body: ``endfor``, or the loop's ``else``
    var: str


def _message_loops(tags: list[_Tag]) -> list[_Loop]:
    """Outermost ``for VAR in messages…`` loops, each with the tag that ends its body."""
    stack: list[tuple[_Tag, _Tag | None]] = []  # (opener, its for-else tag)
    loops: list[_Loop] = []
    for tag in tags:
        if tag.name in _OPENERS or (tag.name == "set" and ("operator", "=") not in tag.words):
            stack.append((tag, None))
        elif tag.name == "else" and stack and stack[-1][0].name == "for":
            stack[-1] = (stack[-1][0], tag)
        elif tag.name.startswith("end") and stack:
            opener, else_tag = stack.pop()
            if opener.name != "for" or any(_is_message_loop(o) for o, _ in stack if o.name == "for"):
                continue
            if _is_message_loop(opener):
                loops.append(_Loop(opener, else_tag or tag, opener.words[0][1]))
        elif tag.name in ("continue", "break"):
            inner = [o for o, _ in stack if o.name == "for"]
            if inner and _is_message_loop(inner[-1]):
                raise GenerationVariantError(f"`{{% {tag.name} %}}` in the message loop: a generation block (a call "
                                             "block) cannot hold loop controls")
    return loops


def _is_message_loop(tag: _Tag) -> bool:
    words = tag.words
    return (len(words) >= 3 and words[0][0] == "name" and words[1] == ("name", "in")
            and words[2] == ("name", words[2][1]) and words[2][1] in _MESSAGE_LISTS)


def _writes(body: str) -> bool:
    """Does a loop body write text (a ``{{ }}`` other than ``raise_exception``, or literal text)?"""
    text = re.sub(r"\{%.*?%\}|\{#.*?#\}|\{\{-?\s*raise_exception\(.*?\)\s*-?\}\}", "", body, flags=re.S)
    return bool(text.strip())


def generation_variant(source: str) -> str:
    """``source`` with each assistant message's rendering wrapped in one ``{% generation %}`` block.

    Raises GenerationVariantError when no loop over the messages writes text."""
    tags = _tags(source)
    if any(t.name == "generation" for t in tags):
        raise GenerationVariantError("the template already has {% generation %} blocks")
    loops = [lp for lp in _message_loops(tags) if _writes(source[lp.head.end:lp.close.start])]
    if not loops:
        raise GenerationVariantError("no `{% for … in messages %}` loop that writes text: cannot wrap assistant "
                                     "messages in {% generation %} blocks")
    out = source
    for lp in sorted(loops, key=lambda lp: lp.head.start, reverse=True):
        body = out[lp.head.end:lp.close.start]
        r = lp.head.right  # what stripped the body's start; the inserted tags before a body copy carry it
        left = lp.close.left  # what stripped the body's end
        wrapped = (f"{{% if {lp.var}['role'] == 'assistant' %}}{{% generation {r}%}}{body}"
                   f"{{%{left} endgeneration %}}{{% else {r}%}}{body}{{%{left} endif %}}")
        out = out[:lp.head.end] + wrapped + out[lp.close.start:]
    return out
