"""Lints on the chat template's source and files: which file wins, the serving date, a doubled BOS.

Verified in the installed packages (transformers 5.24, lmdeploy 0.18, trl 1.16):

* transformers ``PreTrainedTokenizerBase._from_pretrained`` (tokenization_utils_base.py, "If independent chat
  template file(s) exist, they take priority over template entries in the tokenizer config"): a
  ``chat_template.jinja`` replaces tokenizer_config.json's ``chat_template``; AutoTokenizer never reads
  ``chat_template.json`` (``LEGACY_PROCESSOR_CHAT_TEMPLATE_FILE``, read by processors only). vLLM renders with
  the tokenizer's template; LMDeploy's ``HFChatTemplate`` (model.py) calls ``AutoTokenizer.apply_chat_template``.
  TGI's router reads ``chat_template.json`` first, else tokenizer_config.json, never ``chat_template.jinja``
  (``harness.renderers.tgi.config_template``).
* ``apply_chat_template(tokenize=True)`` tokenises with ``add_special_tokens=False`` (tokenization_utils_base.py);
  TRL's SFTTrainer too ("to avoid adding the BOS twice", sft_trainer.py); LMDeploy encodes with BOS then drops a
  doubled one (``Tokenizer.encode``: "Detected duplicate bos token", tokenizer.py); vLLM's chat endpoint and TGI's
  chat route tokenise with ``add_special_tokens=False`` (``harness.renderers.hf`` / ``tgi``). What doubles it:
  tokenising the rendered text with the tokenizer's default ``add_special_tokens=True`` — ``tokenizer(text)`` in a
  custom training loop, or sending the rendered prompt to a text-completion endpoint (vLLM ``/v1/completions``,
  TGI ``/generate``), which add special tokens by default.
"""

from __future__ import annotations

from typing import Iterator

import jinja2
import jinja2.meta
from jinja2 import nodes

from harness.doctor.base import Context, Finding, Lint, Skip, probe, read_json_file
from harness.errors import RenderRejected

#: Free template variables that read the clock or a serving-time date.
DATE_NAMES = frozenset({"strftime_now", "date_string", "now", "today", "current_date", "todays_date",
                        "current_time", "datetime"})


def _parse(source: str) -> nodes.Template:
    """The AST in a plain environment with the sandbox's extensions (``{% generation %}`` parses as it does there);
    without the sandbox's globals, so ``strftime_now`` counts as a free variable."""
    return _ENVIRONMENT.parse(source)


_ENVIRONMENT = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "harness.sandbox._GenerationTracker"])


def template_conflict(ctx: Context) -> Iterator[Finding]:
    """Rule: the dir holds two or more different template texts among ``chat_template.jinja``,
    tokenizer_config.json's ``chat_template`` (a string, or the ``default`` of a named list) and
    ``chat_template.json``'s → warning naming the text transformers uses and the one TGI reads."""
    from harness.renderers.tgi import config_template

    d = ctx.model_dir
    texts: dict[str, str] = {}
    if (d / "chat_template.jinja").is_file():
        texts["chat_template.jinja"] = (d / "chat_template.jinja").read_text(encoding="utf-8")
    config = dict(ctx.tokenizer.tokenizer_config)
    value = config.get("chat_template")
    if isinstance(value, list):
        value = next((t.get("template") for t in value if t.get("name") == "default"), None)
    if isinstance(value, str):
        texts["tokenizer_config.json"] = value
    if (d / "chat_template.json").is_file():
        value = read_json_file(d / "chat_template.json", "chat_template.json").get("chat_template")
        if isinstance(value, str):
            texts["chat_template.json"] = value
    if len(set(texts.values())) < 2:
        return
    hf = "chat_template.jinja" if "chat_template.jinja" in texts else "tokenizer_config.json"
    tgi = config_template(config, d)
    tgi_file = next((f for f in ("chat_template.json", "tokenizer_config.json") if texts.get(f) == tgi), "none")
    differ = sorted(f for f in texts if texts[f] != texts.get(hf))
    yield Finding("template-conflict", "warning", ", ".join(sorted(texts)),
                  f"{' and '.join(sorted(texts))} hold different chat templates: transformers (so vLLM, TRL, "
                  f"LMDeploy's HF template) uses {hf}; TGI reads {tgi_file}; {', '.join(differ)} "
                  f"differ{'s' if len(differ) == 1 else ''} from {hf}",
                  f"keep one template: copy {hf} (the one transformers trains and serves with) into "
                  f"{', '.join(differ)} or delete the stale copy",
                  (("transformers_uses", hf), ("tgi_reads", tgi_file),
                   ("chars", {f: len(t) for f, t in sorted(texts.items())})))


def template_date(ctx: Context) -> Iterator[Finding]:
    """Rule: a chat template of the dir has a free variable in :data:`DATE_NAMES` (``strftime_now(...)``,
    ``date_string``…; found with ``jinja2.meta.find_undeclared_variables`` on the parsed AST) → warning."""
    templates = ctx.tokenizer.chat_templates
    if not templates:
        raise Skip("the model dir has no chat template")
    for name, source in sorted(templates.items()):
        found = sorted(jinja2.meta.find_undeclared_variables(_parse(source)) & DATE_NAMES)
        if not found:
            continue
        yield Finding("template-date", "warning", _template_file(ctx, name),
                      f"the {name!r} chat template reads the date ({', '.join(found)}): the prompt changes with the "
                      "day it is rendered, so serving-time prompts differ from the training-time ones",
                      "pass a fixed date_string (e.g. chat_template_kwargs={\"date_string\": \"26 Jul 2024\"}) both "
                      "when rendering training data and in every serving request, or remove the date from the "
                      "template", (("template", name), ("variables", found)))


def added_prefix(ctx: Context) -> tuple[int, ...]:
    """The ids ``tokenizer("a", add_special_tokens=True)`` puts before ``"a"``'s own ids (BOS; GLM-4's
    ``[gMASK]<sop>``)."""
    tok = ctx.tokenizer
    bare = list(tok.hf("a", add_special_tokens=False)["input_ids"])
    full = list(tok.hf("a", add_special_tokens=True)["input_ids"])
    at = next((i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare), 0)
    return tuple(full[:at])


def double_bos(ctx: Context) -> Iterator[Finding]:
    """Rule: encoding ``"a"`` with ``add_special_tokens=True`` puts ids P in front (the BOS, or GLM-4's
    ``[gMASK]<sop>``), the template's AST names ``bos_token`` (P is the BOS) or holds P's text as a literal, and
    its rendering of a plain prompt starts with P's text → warning naming the paths that double it and those
    that do not."""
    source = ctx.template()
    tok = ctx.tokenizer
    if source is None:
        raise Skip("the model dir has no chat template")
    prefix = added_prefix(ctx)
    if not prefix:
        raise Skip("the tokenizer adds no special tokens in front of the text (no BOS on encode)")
    text = "".join(tok.piece(i) for i in prefix)
    ast = _parse(source)
    named = prefix[:1] == (tok.bos_id,) and any(n.name == "bos_token" for n in ast.find_all(nodes.Name))
    literal = any(isinstance(c.value, str) and text in c.value for c in ast.find_all(nodes.Const)) or \
        any(text in d.data for d in ast.find_all(nodes.TemplateData))
    if not (named or literal):
        return
    try:
        rendered = ctx.pair().deploy.render_text(probe(turns=("user",)))
    except RenderRejected:
        return
    if not rendered.startswith(text):
        return
    yield Finding("double-bos", "warning", _template_file(ctx, "default"),
                  f"the template writes {text!r} and the tokenizer adds it again when encoding with "
                  "add_special_tokens=True: tokenising the rendered text with tokenizer(text) (a custom training "
                  "loop) or sending it to a text-completion endpoint (vLLM /v1/completions, TGI /generate) doubles "
                  "it. Safe: apply_chat_template(tokenize=True), TRL's SFTTrainer, vLLM and TGI chat endpoints "
                  "(add_special_tokens=False) and LMDeploy (drops a doubled BOS)",
                  "tokenise rendered chat text with add_special_tokens=False (or use apply_chat_template(tokenize="
                  "True)); if your trainer adds them, prove it with `harness check --train "
                  "jinja:.,add_special_tokens=true --deploy hf:.`",
                  (("prefix", [f"{i} {tok.piece(i)!r}" for i in prefix]),
                   ("template_writes", "bos_token" if named else "literal")))


def _template_file(ctx: Context, name: str) -> str:
    """The file transformers loaded the template ``name`` from."""
    d = ctx.model_dir
    if name != "default" and (d / "additional_chat_templates" / f"{name}.jinja").is_file():
        return f"additional_chat_templates/{name}.jinja"
    if (d / "chat_template.jinja").is_file():
        return "chat_template.jinja"
    return "tokenizer_config.json" if "chat_template" in ctx.tokenizer.tokenizer_config else "chat_template.json"


LINTS = (
    Lint("template-conflict", "warning",
         "chat_template.jinja, tokenizer_config.json and chat_template.json hold one template text, not several",
         "transformers loads chat_template.jinja and ignores tokenizer_config.json's chat_template when the file "
         "exists (and AutoTokenizer never reads chat_template.json), while TGI reads chat_template.json, else "
         "tokenizer_config.json, never chat_template.jinja. Two different texts mean trainers and engines render "
         "different prompts from the same dir.",
         "keep one template text: copy the one you trained with into the other files or delete the stale copy",
         template_conflict),
    Lint("template-date", "warning",
         "the chat template reads no date (strftime_now, date_string, now…)",
         "A template that prints today's date (Llama 3.x's 'Today Date:') renders a different prompt every day: the "
         "training data carries the date it was rendered on and serving the date of the request, so the prompts "
         "never match token for token.",
         "pass the same fixed date_string when rendering training data and serving, or drop the date",
         template_date),
    Lint("double-bos", "warning",
         "a template that writes bos_token is not paired with a tokenizer that adds BOS (add_special_tokens=True)",
         "When the chat template writes the BOS and the tokenizer also adds one on encode, every path that "
         "tokenises the rendered text with add_special_tokens=True sees two BOS ids, a prompt the model never saw "
         "in pre-training or (if the trainer differs) in fine-tuning.",
         "tokenise rendered chat text with add_special_tokens=False everywhere", double_bos),
)
