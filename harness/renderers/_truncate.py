"""Training-side truncation of a tokenised conversation, as TRL's SFTTrainer applies ``max_length``.

TRL 1.16 (``trl/trainer/sft_trainer.py``, ``_prepare_dataset``, the lines after "Truncate to max_length"):
``keep_start`` (the default) slices ``input_ids[:max_length]`` and ``labels[:max_length]``; ``keep_end``
(deprecated) slices ``[-max_length:]``; then ``dataset.filter(lambda ex: any(label != -100 ...))`` drops an
example left without a trained id. Nothing else changes: no eos is re-appended, the cut may fall inside a
message or an answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from harness.errors import RenderRejected
from harness.renderers.base import Encoded

MODES = ("keep_start", "keep_end")


def truncate(enc: Encoded, max_length: int, mode: str, message_starts: Callable[[], Sequence[int]]) -> Encoded:
    """``enc`` cut to ``max_length`` ids by ``mode``. ``message_starts()`` gives each message's first char in
    ``enc.text`` (only called when something is cut) for ``kept_messages``: the messages whose char range
    meets the kept ids' chars. Answers keep only their surviving ids; answers with none are gone; answers cut
    short are listed in ``cut_answers``. Raises RenderRejected when no trained id is left (TRL drops it)."""
    n = len(enc.ids)
    if n <= max_length:
        return enc
    lo, hi = (0, max_length) if mode == "keep_start" else (n - max_length, n)
    labels = enc.labels[lo:hi] if enc.labels is not None else None
    if labels is not None and not any(labels):
        raise RenderRejected("train", f"TRL drops the example: no trained id is left after truncation to "
                                      f"max_length={max_length} ({mode})")
    offsets = enc.offsets or tuple((0, 0) for _ in enc.ids)
    text = enc.text or ""
    base, stop = offsets[lo][0], offsets[hi - 1][1]
    answers, cut = [], []
    for a in enc.answers:
        start, end = max(a.start, lo), min(a.end, hi)
        if end <= start or (labels is not None and not any(labels[start - lo:end - lo])):
            continue
        if (start, end) != (a.start, a.end):
            cut.append(a.message)
        answers.append(replace(a, start=start - lo, end=end - lo, char_start=max(a.char_start - base, 0)))
    starts = list(message_starts()) + [len(text)]
    kept = tuple(i for i in range(len(starts) - 1)
                 if starts[i] < stop and max(starts[i + 1], starts[i] + 1) > base)
    spans = tuple(replace(s, start=max(s.start, lo) - lo, end=min(s.end, hi) - lo, char_start=max(s.char_start - base, 0),
                          char_end=min(s.char_end, stop) - base)
                  for s in enc.spans if s.end > lo and s.start < hi)
    return Encoded(ids=enc.ids[lo:hi], text=text[base:stop], spans=spans, labels=labels, answers=tuple(answers),
                   offsets=tuple((a - base, b - base) for a, b in offsets[lo:hi]), segments=None,
                   extra={**enc.extra, "kept_messages": kept, "cut_answers": tuple(cut),
                          "truncation": f"TRL max_length={max_length} ({mode})"})
