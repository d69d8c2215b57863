"""``segments``: a trainer that encodes prompt/answer pieces one by one gets the ids whole-string
tokenisation (what serving does) gets; merges across borders and SentencePiece leading spaces break it."""

from __future__ import annotations

from harness.checks.base import Case, Check, Failure, Skip


def segments(case: Case) -> Failure | None:
    failure = _segments(case)
    if failure is None:
        return None
    plain = case.by_shape("segments", case.conv, _segments)
    if plain is None:  # the same shape with plain texts encodes the same: the data made the merge
        from dataclasses import replace

        return replace(failure, severity="warning", cause="boundary-merge", explanation=failure.explanation + " (data-dependent: this "
                       "conversation's text merges across a border; the same shape with plain text does not)")
    return failure


def _segments(case: Case) -> Failure | None:
    train = case.train
    if train.segments is None or train.extra.get("encoding") != "segments":
        raise Skip("the training side tokenises the whole string")
    tok = case.pair.tokenizer
    text = "".join(train.segments)
    add = case.pair.train.add_special_tokens
    whole = tuple(tok.encode(text, add_special_tokens=add))
    if whole == train.ids:
        return None
    from harness.diff import TokenDiff

    diff = TokenDiff.compute(train.ids, whole, piece=tok.piece, train_enc=train)
    border = _nearest_border(train.segments, (train.offsets or ())[diff.index][0] if diff.index < len(train.ids) else 0)
    return Failure("segments", "error",
                   f"encoding the {len(train.segments)} training segments one by one differs from tokenising the "
                   f"whole text near char {border} (a segment border): tokens merge across the border when the "
                   "whole string is tokenised, so the model is served ids it never saw in training",
                   case.conv, diff, cause="segment-merge", where="segment border")


def _nearest_border(segments: tuple[str, ...], char: int) -> int:
    pos, best = 0, 0
    for seg in segments:
        if abs(pos - char) < abs(best - char):
            best = pos
        pos += len(seg)
    return best


CHECKS = (Check("segments", segments, "segment-wise training ids == whole-string ids"),)
