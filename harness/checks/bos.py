"""``bos``: exactly the BOS the model expects, after each side's own tokenisation (doubled BOS is classic)."""

from __future__ import annotations

from harness.checks.base import Case, Check, Failure, Skip, deploy_rejected
from harness.errors import RenderRejected


def _leading(ids: tuple[int, ...], bos: int) -> int:
    n = 0
    while n < len(ids) and ids[n] == bos:
        n += 1
    return n


def bos(case: Case) -> Failure | None:
    bos_id = case.pair.tokenizer.bos_id
    if bos_id is None:
        raise Skip("the tokenizer has no BOS token")
    train = case.train
    if not train.answers:  # training trains nothing of this conversation: no answer prompt to compare
        return None
    first = train.answers[0].message
    try:
        prompt = case.prompt(first)
    except RenderRejected as exc:
        return deploy_rejected(case, "bos", first, exc)
    n_train, n_deploy = _leading(train.ids, bos_id), _leading(prompt.ids, bos_id)
    piece = case.pair.tokenizer.piece(bos_id)
    problem = None
    if n_train > 1:
        problem = f"training ids start with {n_train} BOS {piece!r} (the template writes bos_token and the trainer " \
                  "adds special tokens too)"
    elif n_deploy > 1:
        problem = f"the deploy prompt starts with {n_deploy} BOS {piece!r} (doubled: the template writes bos_token " \
                  "and the engine adds special tokens)"
    elif n_train != n_deploy:
        problem = f"training starts with {n_train} BOS and the deploy prompt with {n_deploy}"
    if problem is None:
        return None
    return Failure("bos", "error", problem, case.conv,
                   case.diff(train.ids[:train.answers[0].start], prompt, first), first, cause="bos",
                   where="start", tokens={"leading_bos": {"train": n_train, "deploy": n_deploy}})


CHECKS = (Check("bos", bos, "exactly one BOS where the model expects it, on both sides"),)
