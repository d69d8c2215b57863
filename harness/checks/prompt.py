"""``prompt-prefix`` and ``system``: does the served prompt equal what training put before each answer?

The rule, on ids. With P the served prompt for answer k (``messages[:k]`` + generation prompt), T the training ids
and a the index of answer k's first trained (loss-carrying) id, the property holds iff ``P == T[:len(P)]`` and
``a <= len(P) < end`` (end: where answer k's trained ids stop). A served prompt that pre-fills ids training taught
the model to produce (a role's trailing newline inside ``{% generation %}``) is consistent; one that stops short of
a makes the model emit text training never put loss on (cause ``loss-region``); any differing id is a mismatch,
whose cause is read off where the two texts part (see ``locate_cause``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from harness.checks.base import Case, Check, Failure, deploy_rejected
from harness.conversation import Conversation, Message
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.renderers.base import Answer, Encoded


def prompt_holds(prompt: tuple[int, ...], train: tuple[int, ...], ans: "Answer") -> bool:
    """``P == T[:len(P)]`` and ``a <= len(P) < end``: the served prompt is a prefix of the training ids that
    reaches the answer's first trained id and leaves some of the answer to generate."""
    n = len(prompt)
    if n < ans.start or (ans.end > ans.start and n >= ans.end):
        return False
    return train[:n] == prompt


def compare_prompt(case: Case, check: str, ans: "Answer") -> Failure | None:
    """Deploy prompt for answer ``ans`` vs the training ids (the rule above); a boundary merge is a warning."""
    train = case.train
    k = ans.message
    try:
        prompt = case.prompt(k)
    except RenderRejected as exc:
        return deploy_rejected(case, check, k, exc)
    if prompt_holds(prompt.ids, train.ids, ans):
        return None
    n = len(prompt.ids)
    if train.ids[:n] == prompt.ids:
        return _loss_region(case, check, ans, prompt)
    expected = train.ids[:max(n, ans.start)]
    same_text = prompt.text is not None and train.text is not None and train.text.startswith(prompt.text)
    if same_text:
        if _straddles(train, prompt, ans):
            return Failure(check, "warning",
                           f"boundary merge: answer messages[{k}] starts with text that merges with the generation "
                           "prompt's last token when training tokenises the whole string, so training saw an id "
                           "serving never produces (data-dependent; slot-wise trainers such as LLaMA-Factory do not "
                           "have it)", case.conv, case.diff(train.ids[:n], prompt, k), k,
                           cause="boundary-merge", where="assistant (answer start)")
        diff = case.diff(expected, prompt, k)
        if _plain_holds(case, k):
            return Failure(check, "warning",
                           f"both sides render the same text before answer messages[{k}] but tokenise it "
                           "differently, and only for this data (the same shape with plain text agrees): a trainer "
                           "that encodes pieces separately saw ids a whole-string server never produces (e.g. an "
                           "earlier answer starting with whitespace merges with the header before it when it comes "
                           "back as history)", case.conv, diff, k, cause="boundary-merge", where="history")
        bos = case.pair.tokenizer.bos_id
        cause = "bos" if bos is not None and bos in diff.first_pair else "tokenisation"
        return Failure(check, "error",
                       f"both sides render the same text before answer messages[{k}] but tokenise it differently "
                       "(segment-wise vs whole-string encoding, or special tokens added by one side)",
                       case.conv, diff, k, cause=cause, where="whole prompt")
    cause, where = locate_cause(case, ans, prompt)
    diff = case.diff(train.ids[:_served_region(train, ans, prompt)], prompt, k)
    also = later_causes(case, ans, diff, (cause, where)) if len(diff.opcodes) > 1 else ()
    return Failure(check, "error", _explain(k, cause, where, ans.rewritten), case.conv, diff, k, cause=cause,
                   where=where, also=also)


def _served_region(train: "Encoded", ans: "Answer", prompt: "Encoded") -> int:
    """How many training ids a served prompt whose text differs stands for: those before answer ``ans``'s first
    trained id, plus the leading trained ids whose text the served prompt ends with (a generation prompt that
    pre-fills the answer's start). Never the rest of the answer: aligned against a longer served prompt (a default
    system prompt injected), those ids would show as a second divergence in the generation prompt."""
    end = ans.start
    if train.offsets is None or train.text is None or prompt.text is None:
        return max(len(prompt.ids), end)
    first = train.offsets[end][0] if end < len(train.offsets) else len(train.text)
    while end < min(len(train.ids), len(prompt.ids)) and \
            prompt.text.endswith(train.text[first:train.offsets[end][1]]) and train.offsets[end][1] > first:
        end += 1
    return end


def _straddles(train: "Encoded", prompt: "Encoded", ans: "Answer") -> bool:
    """A training id from the first differing one on spans the end of the served prompt's text (texts agree):
    the whole-string tokenisation merged across the border, re-segmenting the word it runs through."""
    n = min(len(prompt.ids), len(train.ids))
    i = next((j for j in range(n) if prompt.ids[j] != train.ids[j]), n)
    if train.offsets is None or i >= len(train.offsets) or prompt.text is None:
        return ans.straddles
    border = len(prompt.text)
    if train.offsets[i][0] == train.offsets[i][1]:  # a token of no text (an added BOS) differs: no merge
        return False
    for start, end in train.offsets[i:]:  # BPE may re-segment a word before the token that runs across
        if start >= border:
            return False
        if start < border < end:
            return True
    return False


def _loss_region(case: Case, check: str, ans: "Answer", prompt: "Encoded") -> Failure:
    train, k, n = case.train, ans.message, len(prompt.ids)
    if n < ans.start:
        gap = train.ids[n:ans.start]
        text = "".join(case.pair.tokenizer.piece(i) for i in gap)
        explanation = (f"the served prompt for answer messages[{k}] is a prefix of the training ids but ends "
                       f"{len(gap)} id(s) before the first trained id: the model must emit {text!r} itself, and "
                       "training never put loss on it (the trained region starts after the served generation "
                       "prompt ends: move the text into the generation prompt, or into the trained region)")
    else:
        explanation = (f"the served prompt for answer messages[{k}] already holds the whole trained answer "
                       f"({n} ids, the answer ends at {ans.end}): serving asks the model to continue after it")
    return Failure(check, "error", explanation, case.conv, case.diff(train.ids[:max(n, ans.start)], prompt, k), k,
                   cause="loss-region", where="assistant (answer start)")


def _first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on equal prefixes: long prompts, one comparison per step
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def locate_cause(case: Case, ans: "Answer", prompt: "Encoded") -> tuple[str, str]:
    """(cause id, where) for a served prompt whose text differs from the training text before answer ``ans``.

    Rules, in order, at the first char c where the two texts part: the answer renders to nothing in training →
    ``history-messages-dropped``; c past the deploy rendering of ``messages[:k]`` without generation prompt →
    ``generation-prompt``; a message part (reasoning, system text, tool call or result) present after c on one side
    and not the other → ``history-reasoning-stripped``, ``history-system-moved``, ``tools-rendered``; c inside the
    rendering of message r: system → ``empty-system`` / ``system-text``, no system message and r == 0 →
    ``default-system`` (``tools-rendered`` when tool definitions are what differs, ``bos`` when the BOS text is), tool
    turn or call → ``tools-rendered``; a rewritten history → ``history-messages-dropped``; else ``template-text``."""
    conv, k = case.conv, ans.message
    p_text = prompt.text or ""
    t_text = (case.train.text or "")[:max(ans.char_start, len(p_text))]
    c = _first_difference(p_text, t_text)
    if ans.end <= ans.start:
        return "history-messages-dropped", "assistant (training renders nothing of this answer)"
    base = _base(case, k)
    if _in_header(base, p_text, c):
        header = p_text[len(base):]
        if header and t_text.find(header, c + 1) > c and conv.messages[k - 1:k]:  # training adds text before it
            return "template-text", f"{conv.messages[k - 1].role} (end of turn)"
        return "generation-prompt", "generation prompt"
    bos = case.pair.tokenizer.bos_token
    if bos and c == 0 and (p_text.startswith(bos) != t_text.startswith(bos)):
        return "bos", "start"
    p_rest, t_rest = p_text[c:], t_text[c:]
    for m in conv.messages[:k]:
        for part, value, cause in (("reasoning", m.reasoning, "history-reasoning-stripped"),
                                   ("content", m.content if m.role == "system" else "", "history-system-moved"),
                                   *(("tool_calls", call.name, "tools-rendered") for call in m.tool_calls),
                                   ("content", m.content if m.role == "tool" else "", "tools-rendered")):
            if value and len(value.strip()) >= 3 and (value.strip() in p_rest) != (value.strip() in t_rest):
                return cause, f"{m.role}.{part}"
    return _by_region(case, ans, c, p_rest[:2000], t_rest[:2000])


def _in_header(base: str | None, p_text: str, c: int) -> bool:
    """Char ``c`` of the served prompt lies in its generation prompt: after ``base`` (the same messages rendered
    without it), which must be a non-empty prefix followed by a header of at most 400 chars."""
    return bool(base) and p_text.startswith(base) and c >= len(base) and len(p_text) - len(base) <= 400


def _base(case: Case, k: int) -> str | None:
    """The deploy rendering of ``messages[:k]`` without the generation prompt."""
    return case.history(case.pair.deploy, k)


def _by_region(case: Case, ans: "Answer", c: int, p_seg: str, t_seg: str) -> tuple[str, str]:
    """The cause read off the message whose deploy rendering holds char ``c``, and the differing texts."""
    conv, k = case.conv, ans.message
    bounds = case.bounds(case.pair.deploy, k)
    r = next((i for i, end in enumerate(bounds) if c < end), None)
    tools = any(_mentions(p_seg, t.name) or _mentions(t_seg, t.name) for t in conv.tools) or (
        bool(conv.tools) and any(mark in seg for seg in (p_seg, t_seg) for mark in _TOOL_MARKS))
    if r is None:
        return ("history-messages-dropped", "history") if ans.rewritten else ("template-text", "after the messages")
    m = conv.messages[r]
    if ans.rewritten and m.role == "user" and conv.system is not None:
        return "history-system-moved", "user (system text placed here)"
    if m.role == "system":
        if tools:
            return "tools-rendered", "tools"
        return ("empty-system" if not m.content else "system-text"), "system"
    if r == 0 and conv.system is None:
        return ("tools-rendered", "tools") if tools else ("default-system", "system (none given)")
    if m.role == "tool" or m.tool_calls:
        return "tools-rendered", m.role + (".tool_calls" if m.tool_calls else "")
    if m.reasoning and (m.reasoning.strip() in p_seg) != (m.reasoning.strip() in t_seg):
        return "history-reasoning-stripped", f"{m.role}.reasoning"
    if ans.rewritten:
        return "history-messages-dropped", m.role
    return "template-text", m.role


#: text that only a tool-definitions block writes (with single-letter tool names, names alone say nothing)
_TOOL_MARKS = ('"parameters"', "<tools>", "# Tools", "[AVAILABLE_TOOLS]", "<|tool|>", '"type": "function"')


def _mentions(text: str, name: str) -> bool:
    """``name`` occurs in ``text`` as a whole word (tool names such as ``f`` are not letters of other words)."""
    return len(name) >= 2 and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None


def later_causes(case: Case, ans: "Answer", diff, first: tuple[str, str], limit: int = 5) -> tuple[tuple[str, str], ...]:
    """Divergences after the first one in the same prompt (each differing run of ``diff``), so fixing the first
    cause does not merely reveal the next: ``(cause, where)`` pairs other than ``first``."""
    k = ans.message
    prompt = case.prompt(k, detail=True)
    train = case.train
    if prompt.offsets is None or train.offsets is None or prompt.text is None or train.text is None:
        return ()
    base = _base(case, k)
    out: list[tuple[str, str]] = []
    for tag, a, b, c, d in diff.opcodes[1:12]:
        if c >= len(prompt.offsets) and a >= len(train.offsets):
            continue
        if tag == "delete" and 0 < c <= len(prompt.offsets):  # text only training has, after deploy token c-1
            p_char = max(0, prompt.offsets[c - 1][1] - 1)
        else:
            p_char = prompt.offsets[c][0] if c < len(prompt.offsets) else len(prompt.text)
        p_end = prompt.offsets[d - 1][1] if 0 < d <= len(prompt.offsets) and d > c else p_char
        t_char = train.offsets[a][0] if a < len(train.offsets) else len(train.text)
        t_end = train.offsets[b - 1][1] if 0 < b <= len(train.offsets) and b > a else t_char
        if not (prompt.text[p_char:p_end].strip() or train.text[t_char:t_end].strip()):
            continue  # whitespace re-tokenised next to an earlier difference: a side effect, not a divergence
        if _in_header(base, prompt.text, p_char):
            got = ("generation-prompt", "generation prompt")
        else:
            got = _by_region(case, ans, p_char, prompt.text[p_char:p_end], train.text[t_char:t_end])
        if got != first and got not in out:
            out.append(got)
        if len(out) >= limit:
            break
    return tuple(out)


def _explain(k: int, cause: str, where: str, rewritten: bool) -> str:
    from harness.causes import cause_summary

    head = (f"the deploy prompt for answer messages[{k}] differs from what training put before that answer "
            f"(at {where}): {cause_summary(cause)}")
    if rewritten:
        head += (f"; training renders the whole conversation, and there the text before answer messages[{k}] "
                 f"differs from the template's own prompt for messages[:{k}] (later turns rewrite the history)")
    return head + ". The served model sees a prompt it was not trained on"


def _plain_holds(case: Case, k: int) -> bool:
    """Does answer ``k``'s prompt agree on the plain-text variant of this conversation (same shape)?"""
    plain = case.plain(case.conv)
    try:
        return prompt_holds(plain.prompt(k).ids, plain.train.ids, plain.train.answer(k))
    except (RenderRejected, KeyError):
        return False


def whole_history(case: Case, k: int) -> bool:
    """Both sides give answer ``k`` its whole history (no training cut-off before it, no message the deploy
    side's context fitting dropped). Histories cut by truncation are the ``truncation`` check's to compare."""
    kept = case.train.extra.get("kept_messages")
    if kept is not None and not set(range(k)) <= set(kept):
        return False
    from harness.checks.truncation import deploy_limit

    if deploy_limit(case.pair.deploy) is None:
        return True
    try:
        sent = case.prompt(k).extra.get("sent_messages")
    except RenderRejected:
        return True  # compare_prompt reports the rejection
    return sent is None or tuple(sent) == tuple(range(k))


def prompt_prefix(case: Case) -> Failure | None:
    """For every answer k: the served prompt P is a prefix of the training ids T reaching the first trained id.

    The first error leads; the divergences of later answers (and later in the same prompt) ride along in ``also``."""
    failures = [f for ans in case.train.answers
                if whole_history(case, ans.message) and (f := compare_prompt(case, "prompt-prefix", ans)) is not None]
    errors = [f for f in failures if f.severity == "error"]
    if not errors:
        return failures[0] if failures else None
    lead, also = errors[0], []
    for f in errors:  # every answer's divergences: fixing the first must not merely reveal the next
        for found in ((f.cause, f.where), *f.also):
            if found != (lead.cause, lead.where) and found not in also:
                also.append(found)
    return replace(lead, also=tuple(also[:8]))


SYSTEM_TEXT = "You are a careful assistant."

#: (label, system text, cause when only this variant's prompt differs)
_VARIANTS = (("no system message", None, "default-system"), ("an empty system message", "", "empty-system"),
             ("a per-sample system message", SYSTEM_TEXT, "system-text"))


def _with_system(conv: Conversation, system: str | None) -> Conversation:
    rest = conv.messages[1:] if conv.messages and conv.messages[0].role == "system" else conv.messages
    first = next(i for i, m in enumerate(rest) if m.role == "assistant")
    head = (Message("system", system),) if system is not None else ()
    return Conversation(head + tuple(rest[:first + 1]), conv.tools)


def system(case: Case) -> Failure | None:
    """No system, an empty system and a per-sample system: the first prompt agrees on both sides.

    Fails only when the divergence depends on the system variant — an error in one variant and not another, or
    a different first differing id pair; a divergence all three share is prompt-prefix's to report.
    Structural: run once per conversation shape, on plain texts."""
    if not case.conv.assistant_indices:
        return None
    first = case.conv.assistant_indices[0]
    return case.by_shape("system", case.conv.prefix(first + 1), _system_variants)


def _system_variants(case: Case) -> Failure | None:
    found: list[tuple[str, str, Failure | None]] = []
    for label, text, cause in _VARIANTS:
        variant = case.variant(_with_system(case.conv, text))
        answers = variant.train.answers  # none when training trains nothing of it (an empty answer, no end token)
        failure = compare_prompt(variant, "system", answers[0]) if answers else None
        found.append((label, cause, failure if failure is not None and failure.severity == "error" else None))
    (_, _, none), (_, _, empty), (_, _, given) = found
    if none is None and empty is None and given is None:
        return None
    if all(f is not None for f in (none, empty, given)) and none.pair == empty.pair == given.pair:
        return None  # the same divergence whatever the system: prompt-prefix's to report
    if given is not None and none is None:  # a system message, empty or not, is what breaks it
        label, cause, failure = found[2]
        if failure.cause.startswith("history-system") or failure.cause in _KEEP:
            cause = failure.cause
    elif empty is not None and none is None:
        label, cause, failure = found[1]
    else:
        label, cause, failure = next(v for v in found if v[2] is not None)
        if failure.cause in _KEEP:
            cause = failure.cause
    return replace(failure, cause=cause, where="system",
                   explanation=f"with {label} the first prompt differs between training and serving, and not with "
                   f"every system variant: {failure.explanation}")


#: causes a system variant keeps as they are (the system variant is not what they are about)
_KEEP = ("tools-rendered", "bos", "deploy-rejects", "loss-region", "tokenisation", "generation-prompt")


CHECKS = (
    Check("prompt-prefix", prompt_prefix, "the served prompt is a prefix of the training ids reaching answer k's "
          "first trained id"),
    Check("system", system, "no / empty / per-sample system: the divergence does not depend on the system"),
)
