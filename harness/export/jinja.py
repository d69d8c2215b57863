"""``--to jinja``: the chat template a vLLM/TGI deployment serves (``--chat-template`` or chat_template.jinja).

Sources of truth: a ``jinja:`` training template is copied, with ``{% generation %}``/``{% endgeneration %}``
rewritten as ``{% if true %}``/``{% endif %}`` (same whitespace control, so the text is unchanged, and engines
without transformers' generation extension, e.g. TGI's minijinja, can parse it); a ``llamafactory:`` template
is what LLaMA-Factory's own export writes into tokenizer_config.json
(:func:`harness.renderers.llamafactory.export.export_jinja`). Refused: a training side that picks one of several
named templates per conversation (one file cannot; pin one with ``template=NAME``) or passes template
variables (``enable_thinking=false``: a served request would not carry them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from harness.export.base import Artifact, ExportRefused

if TYPE_CHECKING:
    from harness.renderers.base import Renderer
    from harness.specs import Spec

_OPEN = re.compile(r"\{%(-?)\s*generation\s*(-?)%\}")
_CLOSE = re.compile(r"\{%(-?)\s*endgeneration\s*(-?)%\}")


def strip_generation(source: str) -> str:
    """``{% generation %}`` → ``{% if true %}``, ``{% endgeneration %}`` → ``{% endif %}``, ``-`` markers kept."""
    return _CLOSE.sub(r"{%\1 endif \2%}", _OPEN.sub(r"{%\1 if true \2%}", source))


def export(train: "Renderer", spec: "Spec") -> Artifact:
    if type(train).__name__ == "LlamaFactoryRenderer":
        from harness.renderers.llamafactory.export import export_jinja

        source, _ = export_jinja(str(spec), train.tokenizer, spec.arg, dict(spec.options))
    else:
        if getattr(train, "tool_template", None) is not None:
            raise ExportRefused(f"--train {str(spec)!r}: training picks one of several named templates per "
                                "conversation (tool_use for conversations with tools), which one chat template file "
                                "cannot; pin the one you trained with, e.g. --train jinja:.,template=default")
        if getattr(train, "template_kwargs", None):
            names = ", ".join(sorted(train.template_kwargs))
            raise ExportRefused(f"--train {str(spec)!r}: training passes template variables ({names}) that a served "
                                "request would not carry; instead, write them into the template (e.g. "
                                "{% set enable_thinking = false %} at its top), train on that file and export it")
        source = strip_generation(train.template.source)
    return Artifact(text=source, filename="chat_template.jinja", deploy_kind="hf")
