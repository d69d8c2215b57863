"""``truncation``: each answer training keeps is served with the history training showed it.

A training framework that truncates long conversations (LLaMA-Factory ``cutoff_len``, TRL ``max_length``,
PaddleNLP / XTuner ``max_length``) says which messages it kept (``Encoded.extra["kept_messages"]``, absent:
all). An engine with a context limit either drops messages (Ollama ``num_ctx``: ``extra["sent_messages"]``)
or rejects the request (vLLM ``max_model_len``, LMDeploy ``session_len``: ``extra["rejected"]``). For every
answer ``k`` training keeps, the rule is: the messages before ``k`` training kept == the messages before
``k`` the deploy side sends.

* error (cause ``history-truncated``): the histories differ — the model is served a history it was never
  trained with for that answer (silent: nothing fails, the answer just gets worse).
* warning (cause ``context-rejected``): the engine refuses the prompt of an answer training trained on. No
  wrong tokens reach the model and the client gets an error it can see, so this is a capacity mismatch
  to know about, not a silent prompt divergence.

Skipped when neither side truncates (no ``kept_messages`` on this conversation and no deploy context limit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.checks.base import Case, Check, Failure, Skip, deploy_rejected
from harness.errors import RenderRejected

if TYPE_CHECKING:
    from harness.renderers.base import DeployRenderer


def deploy_limit(renderer: "DeployRenderer") -> str | None:
    """``name=value`` of the deploy side's context limit, or None."""
    limit = renderer.context_limit
    return None if limit is None else str(limit)


def _ranges(indices: tuple[int, ...]) -> str:
    """``(0, 3, 4, 5)`` → ``0,3..5``; ``()`` → ``none``."""
    if not indices:
        return "none"
    out, start, prev = [], indices[0], indices[0]
    for i in indices[1:] + (None,):
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}..{prev}")
        if i is not None:
            start = prev = i
    return ",".join(out)


def truncation(case: Case) -> Failure | None:
    train = case.train
    kept = train.extra.get("kept_messages")
    limit = deploy_limit(case.pair.deploy)
    if kept is None and limit is None:
        raise Skip("neither side truncates: no training cut-off hit and no deploy context limit")
    engine = case.pair.deploy.spec
    failures: list[Failure] = []
    for ans in train.answers:
        k = ans.message
        trained = tuple(i for i in (kept if kept is not None else range(k)) if i < k)
        try:
            prompt = case.prompt(k)
        except RenderRejected as exc:
            return deploy_rejected(case, "truncation", k, exc)
        rejected = prompt.extra.get("rejected")
        if rejected:
            failures.append(Failure(
                "truncation", "warning",
                f"{engine} rejects the request for answer messages[{k}] ({rejected}), an answer training trained "
                f"with history {_ranges(trained)}: that conversation cannot be served at this length",
                case.conv, message=k, cause="context-rejected", where="context limit",
                tokens={"prompt_ids": len(prompt.ids), "limit": limit}))
            continue
        sent = tuple(prompt.extra.get("sent_messages", range(k)))
        overflow = prompt.extra.get("overflow")
        if sent != trained or overflow:
            context = prompt.extra.get("context") or engine
            extra = (" and its prompt still exceeds the context, so the runner cuts ids or rejects it"
                     if overflow else "")
            failures.append(Failure(
                "truncation", "error",
                f"answer messages[{k}] is trained with history {_ranges(trained)} but {context} sends "
                f"{_ranges(sent)}{extra}: the served model sees a history it was never trained with for this answer",
                case.conv, message=k, cause="history-truncated", where="history",
                tokens={"trained_history": list(trained), "sent_history": list(sent), "limit": limit}))
    errors = [f for f in failures if f.severity == "error"]
    return (errors or failures)[0] if failures else None


CHECKS = (Check("truncation", truncation, "each kept answer is served with the history training showed it"),)
