"""``--to ollama``: an Ollama Modelfile (TEMPLATE in Go text/template, SYSTEM, PARAMETER stop) translated from a
LLaMA-Factory fixed slot template (:mod:`harness.export.slots`).

The TEMPLATE reproduces LLaMA-Factory's ``_encode`` over Ollama's ``.Messages``: the system text is
``.System`` (Ollama's collated system messages; ``SYSTEM`` is sent when a request has none) or the default
when that is empty (LLaMA-Factory trains ``system or default_system``); turn 0 gets ``prefix`` + the system
block (only when that text is non-empty) before the first user message; then each user and assistant message
inside its slot wrap. A prefix BOS is left out when the vocab makes Ollama add one (it would be doubled).
Every literal is a Go string constant (``{{ "…" }}``), so template text never needs
escaping. ``PARAMETER stop`` lists LLaMA-Factory's stop words (and the eos it trains answers to end with); it is
verified with ``eog=off``, so the Modelfile's own stops must end every answer (llama.cpp's end-of-generation
heuristic is not relied on).
Jinja training templates are refused: there is no Jinja → Go translator.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from harness.export.base import Artifact, ExportRefused
from harness.export.slots import Slots, check_tools, read_slots

if TYPE_CHECKING:
    from harness.renderers.base import Renderer

WHAT = "an Ollama Modelfile written by this exporter"
FROM_PLACEHOLDER = "./model.gguf"


def _lit(text: str) -> str:
    """``text`` as a Go template string constant (JSON string escapes are Go's too); '' for an empty text."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def _modelfile_quote(text: str, field: str) -> str:
    if '"""' in text or text.endswith('"'):
        raise ExportRefused(f"the {field} text {text[:40]!r} contains a triple quote or ends with a quote, which a "
                            "Modelfile cannot quote (it has no escapes); change that text or export --to jinja")
    return f'"""{text}"""'


def go_template(slots: Slots) -> str:
    """The TEMPLATE text for ``slots``."""
    s = slots
    system_block = _lit(s.system.before) + "{{ $system }}" + _lit(s.system.after)
    user = _lit(s.user.before) + "{{ .Content }}" + _lit(s.user.after)
    answer = _lit(s.assistant.before) + "{{ .Content }}" + _lit(s.assistant.after)
    return (
        "{{- $system := .System }}{{- if not $system }}{{ $system = " + json.dumps(s.default_system, ensure_ascii=False)
        + " }}{{ end }}{{- $first := true }}\n"
        "{{- range .Messages }}\n"
        "{{- if and $first (or (eq .Role \"user\") (eq .Role \"assistant\")) }}" + _lit(s.prefix)
        + "{{ if $system }}" + system_block + "{{ end }}{{ $first = false }}{{ end }}\n"
        "{{- if eq .Role \"user\" }}" + user + "\n"
        "{{- else if eq .Role \"assistant\" }}" + answer + "\n"
        "{{- end }}\n"
        "{{- end }}")


def export(train: "Renderer", train_spec: str, *, tools: str) -> Artifact:
    if type(train).__name__ != "LlamaFactoryRenderer":
        raise ExportRefused(f"--train {train_spec!r}: {WHAT} is translated from LLaMA-Factory's fixed slot templates "
                            "only; a Jinja template is code with no Go translator here — export --to jinja and serve "
                            "it with vLLM/TGI, or write the Modelfile by hand and check it with `harness check "
                            "--deploy ollama:Modelfile`")
    slots = read_slots(train, WHAT)
    check_tools(slots, tools, WHAT)
    bos = train.hf.bos_token
    if train.tokenizer.adds_bos and bos and slots.prefix.startswith(bos):  # Ollama adds it (vocab add_bos_token)
        slots = dataclasses.replace(slots, prefix=slots.prefix[len(bos):])
    stops = list(dict.fromkeys([*slots.stop_words, *([slots.eos_token] if slots.eos_token else [])]))
    lines = [
        f"# Exported by template-harness from --train {train_spec} (LLaMA-Factory template {slots.name!r}).",
        f"# FROM is a placeholder: replace {FROM_PLACEHOLDER} with your model's GGUF file or Ollama model name.",
        f"FROM {FROM_PLACEHOLDER}",
        "TEMPLATE " + _modelfile_quote(go_template(slots), "TEMPLATE"),
    ]
    if slots.default_system:
        lines.append("SYSTEM " + _modelfile_quote(slots.default_system, "default system"))
    for stop in stops:
        if '"' in stop or "\n" in stop:
            raise ExportRefused(f"stop word {stop!r} holds a quote or newline, which a PARAMETER line cannot quote; "
                                "export --to jinja or lmdeploy instead")
        lines.append(f'PARAMETER stop "{stop}"')
    return Artifact(text="\n".join(lines) + "\n", filename="Modelfile", deploy_kind="ollama",
                    deploy_options=",eog=off")
