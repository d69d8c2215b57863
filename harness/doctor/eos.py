"""``eos-generation-config``: the token that ends a trained answer is an eos id of the served model.

vLLM stops on the tokenizer's eos plus ``generation_config.json``'s ``eos_token_id`` (int or list) — the
harness's ``hf:`` renderer models exactly that set (``HFRenderer.stop_ids``); TGI reads the same two. An
answer trained to end with a token outside that set is never stopped: the model writes the next turn itself.
"""

from __future__ import annotations

from typing import Iterator

from harness.checks import stopadvice
from harness.doctor.base import Context, Finding, Lint, Skip

GENERATION_CONFIG = "generation_config.json"


def eos_generation_config(ctx: Context) -> Iterator[Finding]:
    """Rule: T = the trained end token (first control token after answer messages[1]'s content in the training
    rendering). ``generation_config.json`` with an ``eos_token_id``: error when T is neither the tokenizer eos
    nor one of those ids. No such file (or no ``eos_token_id`` in it): warning when T is not the tokenizer eos
    (engines then stop on the tokenizer eos alone)."""
    end = ctx.trained_end()
    if end is None:
        raise Skip("answers end in plain text (no control token after the answer): answer-stop advice applies, "
                   "see `harness check`")
    tok = ctx.tokenizer
    gen_ids = tok.generation_eos_ids
    has_gen = (ctx.model_dir / GENERATION_CONFIG).is_file() and tok.generation_config.get("eos_token_id") is not None
    eos = [i for i in (tok.eos_id,) if i is not None]
    if end.id in eos or end.id in gen_ids:
        return
    evidence = (("trained_end", f"{end.id} {end.piece!r}"),
                ("tokenizer_eos", f"{tok.eos_id} {tok.eos_token!r}"),
                ("generation_config.eos_token_id", list(gen_ids) if has_gen else None))
    fix = stopadvice.advice(ctx.pair(), end.id)
    if has_gen:
        yield Finding("eos-generation-config", "error", GENERATION_CONFIG,
                      f"answers are trained to end with {end.id} {end.piece!r}, which is neither the tokenizer eos "
                      f"{tok.eos_token!r} nor in generation_config.json eos_token_id {list(gen_ids)}: vLLM and TGI "
                      "never stop there", fix, evidence)
    else:
        yield Finding("eos-generation-config", "warning", "tokenizer_config.json",
                      f"answers are trained to end with {end.id} {end.piece!r}, but the tokenizer eos is "
                      f"{tok.eos_token!r} and there is no generation_config.json eos_token_id: engines that stop on "
                      "eos ids (vLLM, TGI) stop only on the tokenizer eos", fix, evidence)


LINTS = (Lint(
    "eos-generation-config", "error",
    "the trained end token is the tokenizer eos or in generation_config.json eos_token_id (warning without one)",
    "vLLM and TGI stop generation on eos ids only: the tokenizer's eos_token plus generation_config.json's "
    "eos_token_id (an int or a list). The token the chat template writes right after each assistant answer is what "
    "the model learned to emit when it is done; when it is not one of those ids the served model keeps going and "
    "writes the next user turn itself.",
    "add the trained end token's id to eos_token_id in generation_config.json (it may be a list)",
    eos_generation_config),)
