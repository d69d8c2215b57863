"""``answer-stop``: every trained answer ends with an id the deploy side stops on, and that id carries loss.

* error (cause ``stop-mismatch``) — no id of the answer (nor its efficient_eos follow-up label) is a deploy
  stop. The fix advised (``harness.checks.stopadvice``) names an id for ``eos_token_id`` only when the
  answer's end is a control (added) token — its last one; an answer ending in plain text gets an end token
  in the template or engine stop strings instead.
* error (cause ``stop-untrained``) — the answer holds a deploy stop id that carries no loss.
"""

from __future__ import annotations

from harness.checks import stopadvice
from harness.checks.base import Case, Check, Failure, label_stream


def answer_stop(case: Case) -> Failure | None:
    train = case.train
    stops = case.pair.deploy.stop_ids
    n = len(train.ids)
    cut = train.extra.get("cut_answers", ())  # cut short by the training cut-off: their end is the truncation's
    for ans in train.answers:
        if ans.message in cut:
            continue
        stream = label_stream(train, ans)  # trained ids, with efficient_eos' follow-up eos label
        labelled = {j: i for j, i, _ in stream}
        region = [*range(ans.start, min(ans.end, n)), *(j for j, _, follow in stream if follow)]
        target = [labelled.get(j, train.ids[j]) for j in region]
        hit = next((k for k, i in enumerate(target) if i in stops), None)
        tail = target[-4:]
        tokens = {"answer_end": case.pieces(tail), "deploy_stops": case.pieces(sorted(stops))}
        if hit is None:
            names = ", ".join(repr(t["piece"]) for t in tokens["deploy_stops"]) or "none"
            control = next((i for i in reversed(target) if stopadvice.is_control(case.pair, i)), None)
            end = control if control is not None else (target[-1] if target else None)
            return Failure("answer-stop", "error",
                           f"answer messages[{ans.message}] is trained to end with "
                           f"{''.join(t['piece'] for t in tokens['answer_end'])!r}, but the deploy side stops only on "
                           f"[{names}]: the served model will not stop where it learned to. "
                           f"{stopadvice.advice(case.pair, end)}",
                           case.conv, message=ans.message, tokens=tokens, cause="stop-mismatch")
        if region[hit] not in labelled:
            stop = target[hit]
            return Failure("answer-stop", "error",
                           f"answer messages[{ans.message}] contains the stop id {stop} "
                           f"{case.pair.tokenizer.piece(stop)!r} but it carries no loss: the model never "
                           "learned to emit it", case.conv, message=ans.message, tokens=tokens, cause="stop-untrained")
    return None


CHECKS = (Check("answer-stop", answer_stop, "trained answers end with a deploy stop id that carries loss"),)
