"""``template-unknown-token``: control-token text the template writes is a token of this vocabulary.

"Looks like a control token" is the ``special-tokens`` check's notion (``harness.checks.special.CONTROL_LIKE``:
``<|x|>``, ``<｜x｜>``, ``[INST]``-style, ``</s>``) plus bare-angle turn markers with an underscore
(``<start_of_turn>``). Its calibration lessons hold here: plain markers are fine where they are plain text in
the model's own family — Llama-2's ``[INST]`` is text for Llama-2's tokenizer, alpaca has no markers — so a
marker is only reported when the tokenizer's own added tokens use the same delimiter family (a ``<|…|>`` marker
on a tokenizer whose control tokens are ``<|…|>``: a Llama-3 template pasted onto Qwen).

Only text rendered for a plain conversation (system, user and assistant turns, generation prompt) is read:
markers of tool or multimodal branches are left to ``harness check``'s ``special-tokens``, which sees both sides.
Measured: DeepSeek-R1-Distill-Qwen's own template writes DeepSeek-V3 tool markers its tokenizer lacks and the
published model is served that way; a source-wide rule would report a correct real model.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator

from harness.checks.special import CONTROL_LIKE
from harness.doctor.base import Context, Finding, Lint, Skip, probe
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.renderers.base import Renderer
    from harness.tokenizer import Tokenizer

#: Bare-angle turn markers (Gemma's ``<start_of_turn>``): only with an underscore (``<think>``/``<tools>`` are XML).
ANGLE_MARKER = r"</?[a-z]+(?:_[a-z]+)+>"
MARKER = re.compile(f"{CONTROL_LIKE.pattern}|{ANGLE_MARKER}")
_FAMILIES = (("bar", re.compile(r"<\|.+\|>")), ("full-width bar", re.compile(r"<｜.+｜>")),
             ("bracket", re.compile(r"\[/?[A-Za-z_]+\]")), ("angle", re.compile(r"</?[A-Za-z]+(?:_[A-Za-z]+)*>")))


def family(text: str) -> str | None:
    """The delimiter family of a marker or token: ``bar``, ``full-width bar``, ``bracket``, ``angle`` or None."""
    return next((name for name, rx in _FAMILIES if rx.fullmatch(text)), None)


def vocab_families(tok: "Tokenizer") -> frozenset[str]:
    return frozenset(f for t in tok.added_tokens if (f := family(t)) is not None)


def unknown_markers(text: str, tok: "Tokenizer") -> list[str]:
    """Markers in ``text`` that are not one token, not the bos/eos text, and of a family the vocab uses."""
    families = vocab_families(tok)
    found = {m.group() for m in MARKER.finditer(text)}
    return sorted(w for w in found if tok.token_id(w) is None and w not in (tok.bos_token, tok.eos_token)
                  and family(w) in families)


def rendered_texts(renderer: "Renderer") -> list[str]:
    """The renderer's texts for the plain probes: with and without a system message, a whole conversation and
    a generation prompt (a probe the template rejects is skipped)."""
    out = []
    for system in (False, True):
        for turns, gen in ((("user", "assistant", "user", "assistant"), False), (("user",), True)):
            try:
                out.append(renderer.render_text(probe(system, turns), add_generation_prompt=gen))
            except RenderRejected:
                continue
    return out


def template_unknown_token(ctx: Context) -> Iterator[Finding]:
    """Rule: a marker (:data:`MARKER`) in the plain-conversation rendering of the dir's template (and of each
    ``--train``/``--deploy`` template) that is not a single id of the vocabulary or its added tokens, is not the
    bos/eos text, and whose delimiter family (:func:`family`) the tokenizer's added tokens use → error."""
    targets: list[tuple[str, "Renderer"]] = []
    if ctx.template() is not None or ctx.train_spec is not None:
        pair = ctx.pair()
        targets.append((ctx.train_spec or "chat template", pair.train))
    targets += ctx.deploys()
    if not targets:
        raise Skip("the model dir has no chat template and no --train/--deploy spec was given")
    from harness.doctor.template import _template_file
    from harness.specs import parse_spec

    for name, renderer in targets:
        words = sorted({w for text in rendered_texts(renderer) for w in unknown_markers(text, ctx.tokenizer)})
        if not words:
            continue
        where = _template_file(ctx, "default") if name == "chat template" else parse_spec(name).arg
        shown = ", ".join(repr(w) for w in words[:6]) + (f" (+{len(words) - 6})" if len(words) > 6 else "")
        yield Finding("template-unknown-token", "error", where,
                      f"the {'dir' if name == 'chat template' else repr(name)} template writes {shown}, which "
                      f"look{'s' if len(words) == 1 else ''} like control tokens of this tokenizer's kind but "
                      f"{'is' if len(words) == 1 else 'are'} not in its vocabulary: each is tokenised as plain "
                      "text (several ids), not the control token the model knows",
                      "use this model's own control tokens in the template (likely a template of another model "
                      "family), or add the tokens to the tokenizer and train them",
                      (("markers", words), ("vocab_families", sorted(vocab_families(ctx.tokenizer)))))


LINTS = (Lint(
    "template-unknown-token", "error",
    "control-token text the template renders for a plain conversation is one token of the vocabulary",
    "A template written for another model family (Llama-3's <|start_header_id|> on a Qwen tokenizer) renders "
    "markers the vocabulary lacks. The tokenizer splits each into several plain-text ids, so the model never sees "
    "the control tokens it was trained on and the prompt structure is lost.",
    "use the model's own control tokens in the template", template_unknown_token),)
