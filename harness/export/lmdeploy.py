"""``--to lmdeploy``: an LMDeploy ``chat_template.json`` derived from a LLaMA-Factory fixed slot template.

LMDeploy's ``BaseChatTemplate`` (see :mod:`harness.renderers.lmdeploy`) writes ``system + meta_instruction +
eosys`` when the first message is not a system message, ``box + content + end`` per message, then the
``assistant`` box; its fields are fixed strings. The mapping: ``system``/``eosys`` = the system slot's wrap,
``meta_instruction`` = the default system,
``user``/``eoh`` = the user slot's wrap (LLaMA-Factory's user slot ends with the assistant header, so
``assistant`` is the assistant slot's text before the content, usually ''), ``eoa`` = the text after it
(``efficient_eos`` puts the eos in the labels, not the text), ``separator`` = '', ``stop_words`` = the stop words + the trained eos, ``capability`` = chat.

Refused (the fields cannot say it): a Jinja training template (code: it may branch, rewrite history or render
tools), a reasoning template (history rewriting), tools (LMDeploy ignores them), a default system prompt
(LLaMA-Factory trains an *explicit empty* system message as the default; LMDeploy renders an empty system
block), a template without a default system whose system block is not bare (LMDeploy always writes one), a
template prefix with no system block to carry it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.export.base import Artifact, ExportRefused
from harness.export.slots import check_tools, read_slots

if TYPE_CHECKING:
    from harness.renderers.base import Renderer

WHAT = "LMDeploy's chat_template.json fields (fixed strings, no conditions)"
MODEL_NAME = "exported-template"  # not a built-in LMDeploy name, and no dot (see harness.renderers.lmdeploy)


def export(train: "Renderer", train_spec: str, *, tools: str) -> Artifact:
    if type(train).__name__ != "LlamaFactoryRenderer":
        from harness.renderers._common import template_reads_reasoning

        source = getattr(getattr(train, "template", None), "source", "") or ""
        if template_reads_reasoning(train):
            why = "it reads reasoning (thinking/<think>), and templates that do usually rewrite history"
        elif "tools" in source:
            why = "it renders tools, which LMDeploy's fields have no place for"
        else:
            why = "a Jinja template is code (conditions, loops), and the fields are fixed strings"
        raise ExportRefused(f"--train {train_spec!r}: {WHAT} cannot express this Jinja template: {why}; export "
                            "--to jinja and serve that template instead (vLLM/TGI --chat-template, or check it with "
                            "`harness check --deploy hf:FILE`)")
    s = read_slots(train, WHAT)
    check_tools(s, tools, WHAT)
    if s.default_system:
        raise ExportRefused(f"LLaMA-Factory template {s.name!r} has a default system prompt: it trains an explicit "
                            f"empty system message as {s.default_system[:40]!r}…, while LMDeploy renders it as an "
                            "empty system block, and its fields have no condition to say otherwise; export --to "
                            "ollama instead (its TEMPLATE can)")
    if s.system.before or s.system.after:
        raise ExportRefused(f"LLaMA-Factory template {s.name!r} writes no system block without a system prompt, but "
                            "LMDeploy always writes system + meta_instruction + eosys, so its system wrap "
                            f"{s.system.before!r}…{s.system.after!r} would appear in every prompt; export "
                            "--to ollama instead")
    if s.prefix:
        raise ExportRefused(f"LLaMA-Factory template {s.name!r} starts every conversation with {s.prefix!r}, and "
                            "LMDeploy's fields have no prefix outside the system block, which this template leaves "
                            "empty; export --to ollama instead")
    stops = list(dict.fromkeys([*s.stop_words, *([s.eos_token] if s.eos_token else [])]))
    data = {"model_name": MODEL_NAME, "system": s.system.before, "meta_instruction": s.default_system,
            "eosys": s.system.after, "user": s.user.before, "eoh": s.user.after, "assistant": s.assistant.before,
            "eoa": s.assistant.after, "separator": "", "stop_words": stops, "capability": "chat"}
    return Artifact(text=json.dumps(data, ensure_ascii=False, indent=2) + "\n", filename="chat_template.json",
                    deploy_kind="lmdeploy")
