"""``prompt-prefix`` and ``system``: does the served prompt equal what training put before each answer?"""

from __future__ import annotations

from dataclasses import replace

from harness.checks.base import Case, Check, Failure, deploy_rejected
from harness.conversation import Conversation, Message
from harness.errors import RenderRejected


def _explain(case: Case, k: int, straddles: bool, same_text: bool, rewritten: bool = False) -> str:
    if rewritten:
        return (f"training renders the whole conversation, and there the text before answer messages[{k}] differs "
                f"from the template's own prompt for messages[:{k}] (later turns rewrite the history — reasoning "
                "stripped, system moved — or the template drops or changes messages once answered): the model was "
                "trained on one prefix and is served another")
    if straddles and same_text:
        return (f"boundary merge: answer messages[{k}] starts with text that merges with the generation prompt's "
                "last token when training tokenises the whole string, so training saw an id serving never produces "
                "(data-dependent; slot-wise trainers such as LLaMA-Factory do not have it)")
    if same_text:
        return (f"both sides render the same text before answer messages[{k}] but tokenise it differently "
                "(segment-wise vs whole-string encoding, or special tokens added by one side)")
    return (f"the deploy prompt for answer messages[{k}] differs from what training put before that answer; "
            "the served model sees a prompt it was not trained on")


def compare_prompt(case: Case, check: str, ans) -> Failure | None:
    """Deploy prompt for answer ``ans`` vs the training ids before it (a boundary merge is a warning)."""
    train = case.train
    try:
        prompt = case.prompt(ans.message)
    except RenderRejected as exc:
        return deploy_rejected(case, check, ans.message, exc)
    expected = train.ids[:ans.start]
    if prompt.ids == expected:
        return None
    same_text = prompt.text is not None and train.text is not None and prompt.text == train.text[:ans.char_start]
    straddle = ans.straddles and same_text
    if same_text and not straddle and _plain_holds(case, ans.message):
        return Failure(check, "warning",
                       f"both sides render the same text before answer messages[{ans.message}] but tokenise it "
                       "differently, and only for this data (the same shape with plain text agrees): a trainer that "
                       "encodes pieces separately saw ids a whole-string server never produces (e.g. an earlier "
                       "answer starting with whitespace merges with the header before it when it comes back as "
                       "history)", case.conv, case.diff(expected, prompt, ans.message), ans.message)
    return Failure(check, "warning" if straddle else "error",
                   _explain(case, ans.message, ans.straddles, same_text, ans.rewritten),
                   case.conv, case.diff(train.ids[:ans.start + 1] if straddle else expected, prompt, ans.message),
                   ans.message)


def _plain_holds(case: Case, k: int) -> bool:
    """Does answer ``k``'s prompt agree on the plain-text variant of this conversation (same shape)?"""
    from harness.conversation import plain_variant

    plain = case.pair.case(plain_variant(case.conv))
    try:
        ans = plain.train.answer(k)
        return plain.prompt(k).ids == plain.train.ids[:ans.start]
    except (RenderRejected, KeyError):
        return False


def prompt_prefix(case: Case) -> Failure | None:
    """For every answer k: deploy ids for messages[:k] + generation prompt == training ids before answer k."""
    for ans in case.train.answers:
        failure = compare_prompt(case, "prompt-prefix", ans)
        if failure is not None:
            return failure
    return None


SYSTEM_TEXT = "You are a careful assistant."


def _with_system(conv: Conversation, system: str | None) -> Conversation:
    rest = conv.messages[1:] if conv.messages and conv.messages[0].role == "system" else conv.messages
    first = next(i for i, m in enumerate(rest) if m.role == "assistant")
    head = (Message("system", system),) if system is not None else ()
    return Conversation(head + tuple(rest[:first + 1]), conv.tools)


def system(case: Case) -> Failure | None:
    """No system, an empty system and a per-sample system give the same first prompt on both sides.

    Structural: run once per conversation shape, on plain texts (data-dependent drift is prompt-prefix's)."""
    if not case.conv.assistant_indices:
        return None
    first = case.conv.assistant_indices[0]
    return case.pair.by_shape("system", case.conv.prefix(first + 1), _system_variants)


def _system_variants(case: Case) -> Failure | None:
    for label, text in (("no system message", None), ("an empty system message", ""),
                        ("a per-sample system message", SYSTEM_TEXT)):
        variant = case.pair.case(_with_system(case.conv, text))
        failure = compare_prompt(variant, "system", variant.train.answers[0])
        if failure is not None and failure.severity == "error":  # boundary merges are prompt-prefix's to report
            return replace(failure, explanation=f"with {label} the first prompt differs between training and "
                           "serving (a default system prompt injected on one side only, or an empty system handled "
                           "differently): " + failure.explanation)
    return None


CHECKS = (
    Check("prompt-prefix", prompt_prefix, "deploy prompt for messages[:k] == training ids before answer k"),
    Check("system", system, "no / empty / per-sample system behave the same on both sides"),
)
