"""``answer-stop``: every trained answer ends with an id the deploy side stops on, and that id carries loss."""

from __future__ import annotations

from harness.checks.base import Case, Check, Failure


def answer_stop(case: Case) -> Failure | None:
    train = case.train
    stops = case.pair.deploy.stop_ids
    labels = train.labels or ()
    raw = train.extra.get("label_ids")  # LLaMA-Factory's own labels: efficient_eos puts the eos on the next id
    n = len(train.ids)
    for ans in train.answers:
        end = min(ans.end, n)
        region = list(range(ans.start, end))
        if raw is not None and end < n and raw[end] != -100 and (raw[end] != train.ids[end] or end == n - 1):
            region.append(end)  # efficient_eos: the eos label after the answer (next prompt's first id, or the final eos)
        target = (lambda j: raw[j] if raw[j] != -100 else train.ids[j]) if raw is not None else train.ids.__getitem__
        hit = next((j for j in region if target(j) in stops), None)
        tail = [target(j) for j in region[-4:]]
        tokens = {"answer_end": case.pieces(tail), "deploy_stops": case.pieces(sorted(stops))}
        if hit is None:
            names = ", ".join(repr(t["piece"]) for t in tokens["deploy_stops"]) or "none"
            return Failure("answer-stop", "error",
                           f"answer messages[{ans.message}] is trained to end with "
                           f"{''.join(t['piece'] for t in tokens['answer_end'])!r}, but the deploy side stops only on "
                           f"[{names}]: the served model will not stop where it learned to (check eos_token_id in "
                           "generation_config.json, the tokenizer eos, or the engine's stop words)",
                           case.conv, message=ans.message, tokens=tokens)
        trained = raw[hit] != -100 if raw is not None else (not labels or labels[hit])
        if not trained:
            return Failure("answer-stop", "error",
                           f"answer messages[{ans.message}] contains the stop id {train.ids[hit]} "
                           f"{case.pair.tokenizer.piece(train.ids[hit])!r} but it carries no loss: the model never "
                           "learned to emit it", case.conv, message=ans.message, tokens=tokens)
    return None


CHECKS = (Check("answer-stop", answer_stop, "trained answers end with a deploy stop id that carries loss"),)
