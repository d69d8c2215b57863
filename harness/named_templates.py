"""Which of a model dir's named chat templates renders a request — transformers' ``get_chat_template``.

A model dir may ship several templates (tokenizer_config.json ``chat_template`` as a list of
``{"name", "template"}``, or ``chat_template.jinja`` = ``default`` plus ``additional_chat_templates/NAME.jinja``).
transformers 5 renders a request with the template named by ``chat_template=NAME``; else ``tool_use`` when
``tools`` are passed (``tools is not None``) and it exists; else ``default``; else it raises ValueError. vLLM
and TRL call the same method, so serving and training pick alike.

>>> pick({"default", "tool_use"}, explicit=None, has_tools=True)
'tool_use'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from harness.errors import InputError, SpecError

DEFAULT = "default"
TOOL_USE = "tool_use"


@dataclass(frozen=True)
class Selection:
    """The template names a renderer uses: ``plain`` for requests without tools, ``tools`` for requests with
    tools. ``explicit`` is True when the spec named one (``template=NAME``)."""

    plain: str
    tools: str
    explicit: bool = False


def pick(names: Collection[str], *, explicit: str | None, has_tools: bool) -> str | None:
    """The name ``get_chat_template`` picks for one request; None where transformers raises ValueError
    (no explicit name, and neither ``tool_use`` for a tool request nor ``default``)."""
    if explicit is not None:
        return explicit if explicit in names else None
    if has_tools and TOOL_USE in names:
        return TOOL_USE
    return DEFAULT if DEFAULT in names else None


def select(names: Collection[str], explicit: str | None, *, spec: str, where: str, hint: str = "") -> Selection:
    """Resolve both kinds of request up front.

    An unknown ``explicit`` name is a SpecError naming the available ones (transformers would silently render
    the name itself as a one-line template). Without ``default`` and without an explicit name, every request
    without tools fails in transformers and vLLM: an InputError naming the templates and the fix.
    """
    available = ", ".join(repr(n) for n in sorted(names))
    if explicit is not None:
        if explicit not in names:
            raise SpecError(f"spec={spec!r}: template={explicit!r} is not a chat template of {where}; "
                            f"its templates are {available}: pick one of them")
        return Selection(explicit, explicit, explicit=True)
    plain = pick(names, explicit=None, has_tools=False)
    tools = pick(names, explicit=None, has_tools=True)
    if plain is None or tools is None:
        with_tools = (f"; requests with tools would use {TOOL_USE!r}" if tools is not None else "")
        raise InputError(
            f"spec={spec!r}: the chat templates of {where} are named {available}, none {DEFAULT!r}{hint}: "
            "transformers' apply_chat_template (and vLLM, TRL) raise ValueError 'This model has multiple chat "
            f"templates with no default specified!' for every request without tools{with_tools}. "
            "Pick the one you train or serve with: add ,template=NAME to the spec "
            f"(e.g. '{spec},template={sorted(names)[0]}')")
    return Selection(plain, tools)
