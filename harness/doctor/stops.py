"""Deploy-side stops: stop words an engine turns into ids, and whether the deploy stops on the trained end.

Verified:

* LMDeploy 0.18 converts each ``stop_words`` entry with ``Tokenizer.indexes_containing_token`` (tokenizer.py):
  ``encode(word, add_bos=False)``; more than one id → a logged warning "can not be used as stop words" and
  **no id** (the word is dropped); one id → every vocab token containing it (``HuggingFaceTokenizer``'s). Used by
  ``AsyncEngine`` (``_stop_words``) and ``GenerationConfig.convert_stop_bad_words_to_ids`` (messages.py).
* Ollama matches stop strings on the generated text (``runner/common/stop.go``: ``FindStop`` is
  ``strings.Contains``), so a multi-token ``PARAMETER stop`` works: no finding. ``generation_config.json``'s
  ``eos_token_id`` holds ids, one token each by construction.
* The deploy side's stop ids are the renderer's ``stop_ids`` — the same set ``harness check``'s stop checks use
  (LMDeploy: stop words + eos + generation_config eos; Ollama: single-token ``PARAMETER stop`` + eos + llama.cpp's
  end-of-generation tokens, ``declared_stop_ids`` without the heuristic).
"""

from __future__ import annotations

from typing import Iterator

from harness.checks import stopadvice
from harness.checks.base import Pair
from harness.doctor.base import Context, Finding, Lint, Skip
from harness.specs import parse_spec

#: Spec kinds whose stops are the dir's eos ids (checked by ``eos-generation-config``).
EOS_ONLY_KINDS = frozenset({"hf", "llamafactory-jinja"})


def stop_word_not_single_token(ctx: Context) -> Iterator[Finding]:
    """Rule: an LMDeploy ``stop_words`` entry that encodes (LMDeploy's way) to more than one id → warning
    (LMDeploy drops it). Modelfile stops and generation_config ids: never (strings / ids)."""
    from harness.renderers.lmdeploy import LMDeployRenderer, lmdeploy_encode

    lm = [(s, r) for s, r in ctx.deploys() if isinstance(r, LMDeployRenderer)]
    if not lm:
        raise Skip("no lmdeploy: deploy spec (Ollama matches stop strings; generation_config holds ids)")
    for spec, renderer in lm:
        for word in renderer.template.stop_words or ():
            ids = lmdeploy_encode(renderer.tokenizer, word, renderer.add_special_tokens)
            if len(ids) <= 1:
                continue
            yield Finding("stop-word-not-single-token", "warning", parse_spec(spec).arg,
                          f"stop word {word!r} encodes to {len(ids)} ids {ids[:8]}: LMDeploy logs 'can not be used "
                          "as stop words' and drops it, so generation does not stop there",
                          "use a stop word that is one token of this tokenizer (the control token that ends the "
                          "answer), or add the token to the tokenizer", (("stop_word", word), ("ids", ids)))


def deploy_stop_missing(ctx: Context) -> Iterator[Finding]:
    """Rule: for each ``--deploy`` spec other than ``hf:`` (whose stops are the dir's eos ids): the trained end
    token T is not in the renderer's ``stop_ids`` → error; an Ollama Modelfile that stops on T only through
    llama.cpp's end-of-generation list (T not in ``declared_stop_ids``) → warning (as ``stop-words`` does)."""
    targets = [(s, r) for s, r in ctx.deploys() if parse_spec(s).kind not in EOS_ONLY_KINDS]
    if not targets:
        raise Skip("no --deploy spec with its own stops (ollama:, lmdeploy:, tgi:…)")
    end = ctx.trained_end()
    if end is None:
        raise Skip("answers end in plain text (no control token after the answer)")
    for spec, renderer in targets:
        stops = renderer.stop_ids
        where = parse_spec(spec).arg
        evidence = (("trained_end", f"{end.id} {end.piece!r}"), ("deploy_stop_ids", sorted(stops)))
        if end.id not in stops:
            pair = Pair(ctx.pair().train, renderer)
            yield Finding("deploy-stop-missing", "error", where,
                          f"{spec!r} stops on {sorted(stops)} but answers are trained to end with {end.id} "
                          f"{end.piece!r}: the served model runs on past its turn",
                          stopadvice.advice(pair, end.id), evidence)
            continue
        declared = renderer.declared_stop_ids
        if declared is not None and end.id not in declared:
            yield Finding("deploy-stop-missing", "warning", where,
                          f"{spec!r} does not declare {end.piece!r} as a stop: Ollama stops there only because "
                          "llama.cpp treats that token as end-of-generation by name (ollama/ollama#8363)",
                          f"add PARAMETER stop \"{end.piece}\" to the Modelfile",
                          (*evidence, ("declared_stop_ids", sorted(declared))))


LINTS = (
    Lint("stop-word-not-single-token", "warning",
         "every LMDeploy stop_words entry is one token (Ollama stop strings and generation_config ids: no rule)",
         "LMDeploy turns each stop word into token ids and silently drops a word that encodes to several ids "
         "(only a log warning), so a multi-token stop word such as '\\n### Instruction:' never stops generation. "
         "Ollama matches stop strings on the generated text, so multi-token stops work there.",
         "use single-token stop words (the model's end-of-turn control token)", stop_word_not_single_token),
    Lint("deploy-stop-missing", "error",
         "each --deploy config stops on the trained end token (warning: only llama.cpp's heuristic does)",
         "The token the chat template writes after each trained answer is where the model learned to stop. A "
         "Modelfile or LMDeploy chat_template.json whose stops (plus the engine's own eos handling) miss it lets "
         "the served model run on into a turn it invents.",
         "add the trained end token to the deploy config's stops", deploy_stop_missing),
)
